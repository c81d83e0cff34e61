/* TURN credentials (coturn REST-API scheme) and TURN server URLs.
 *
 * The expected passwords were computed independently with python3:
 *   base64.b64encode(hmac.new(SECRET, USERNAME, hashlib.sha1).digest()) */
#include <ferry/ferry.h>

#include "server/turn.h"

#include <string.h>

static void
test_password_vectors(void)
{
  static const struct {
    const char *secret, *username, *password;
  } v[] = {
      {"ferry-test-secret", "1700086400:peer-1", "0y9Cpj4/QmnT+ttIgndWZ7RteGQ="},
      {"north", "1234567890:alice", "VqaISA+2BxkCw1VepQhRdTergGA="},
      {"s3cr3t with spaces & \xc3\xbc", "4102444800:x", "v4P6rwKT6+1XBxRYX4Zv9mqFvpI="},
  };

  for (size_t i = 0; i < G_N_ELEMENTS(v); i++) {
    GError *error = NULL;
    char *p = ferry_turn_password(v[i].secret, v[i].username, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(p, ==, v[i].password);
    g_free(p);
  }
}

static void
test_mint(void)
{
  GError *error = NULL;
  FerryTurnConfig *config = ferry_turn_config_new("ferry-test-secret", 86400, &error);
  FerryTurnCredentials *creds;

  g_assert_no_error(error);
  g_assert_true(ferry_turn_config_add_url(config, "turn:turn.example.org", &error));
  g_assert_true(ferry_turn_config_add_url(config, "TURNS:[2001:DB8::1]?transport=tcp", &error));
  g_assert_no_error(error);
  g_assert_cmpuint(ferry_turn_config_get_n_urls(config), ==, 2);

  creds = ferry_turn_config_mint(config, "peer-1", 1700000000, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(creds->username, ==, "1700086400:peer-1");
  g_assert_cmpstr(creds->credential, ==, "0y9Cpj4/QmnT+ttIgndWZ7RteGQ=");
  g_assert_cmpuint(creds->ttl, ==, 86400);
  g_assert_cmpint(creds->expires, ==, 1700086400);
  g_assert_cmpuint(g_strv_length(creds->urls), ==, 2);
  g_assert_cmpstr(creds->urls[0], ==, "turn:turn.example.org:3478");
  g_assert_cmpstr(creds->urls[1], ==, "turns:[2001:db8::1]:5349?transport=tcp");
  ferry_turn_credentials_free(creds);

  /* the username is EXPIRY:PEERID with EXPIRY = now + ttl, every time */
  creds = ferry_turn_config_mint(config, "A.b_c~d-9", 5, &error);
  g_assert_cmpstr(creds->username, ==, "86405:A.b_c~d-9");
  ferry_turn_credentials_free(creds);
  ferry_turn_credentials_free(NULL);
  ferry_turn_config_free(config);
}

static void
test_mint_errors(void)
{
  GError *error = NULL;
  FerryTurnConfig *config;
  char *long_id = g_strnfill(FERRY_TURN_MAX_PEER_ID + 1, 'a');
  char *max_id = g_strnfill(FERRY_TURN_MAX_PEER_ID, 'a');
  const char *bad_ids[] = {"", "a:b", "a b", "a/b", "ä", "a\nb", long_id};
  FerryTurnCredentials *creds;

  g_assert_null(ferry_turn_config_new("", 3600, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "static-auth-secret"));
  g_clear_error(&error);
  g_assert_null(ferry_turn_config_new(NULL, 3600, &error));
  g_clear_error(&error);
  g_assert_null(ferry_turn_config_new("s", FERRY_TURN_MIN_TTL - 1, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "59 seconds"));
  g_clear_error(&error);
  g_assert_null(ferry_turn_config_new("s", FERRY_TURN_MAX_TTL + 1, &error));
  g_clear_error(&error);

  config = ferry_turn_config_new("s", FERRY_TURN_MIN_TTL, &error);
  g_assert_no_error(error);
  /* no URL yet */
  g_assert_null(ferry_turn_config_mint(config, "peer", 0, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_assert_nonnull(strstr(error->message, "--turn-server"));
  g_clear_error(&error);

  g_assert_true(ferry_turn_config_add_url(config, "turn:127.0.0.1", &error));
  g_assert_false(ferry_turn_config_add_url(config, "stun:127.0.0.1", &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_clear_error(&error);
  g_assert_cmpuint(ferry_turn_config_get_n_urls(config), ==, 1);

  for (size_t i = 0; i < G_N_ELEMENTS(bad_ids); i++) {
    g_assert_null(ferry_turn_config_mint(config, bad_ids[i], 0, &error));
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
    g_clear_error(&error);
  }
  g_assert_null(ferry_turn_config_mint(config, NULL, 0, &error));
  g_clear_error(&error);
  creds = ferry_turn_config_mint(config, max_id, 0, &error);
  g_assert_no_error(error);
  ferry_turn_credentials_free(creds);

  ferry_turn_config_free(config);
  ferry_turn_config_free(NULL);
  g_free(long_id);
  g_free(max_id);
}

static void
test_url_good(void)
{
  static const struct {
    const char *in, *canonical, *host;
    guint16 port;
    gboolean secure;
    FerryTurnTransport transport;
  } v[] = {
      {"turn:turn.example.org", "turn:turn.example.org:3478", "turn.example.org", 3478, FALSE,
       FERRY_TURN_TRANSPORT_DEFAULT},
      {"turn:127.0.0.1:3479", "turn:127.0.0.1:3479", "127.0.0.1", 3479, FALSE,
       FERRY_TURN_TRANSPORT_DEFAULT},
      {"turn:relay-1.Example.ORG:80?transport=tcp", "turn:relay-1.example.org:80?transport=tcp",
       "relay-1.example.org", 80, FALSE, FERRY_TURN_TRANSPORT_TCP},
      {"turn:h?transport=UDP", "turn:h:3478?transport=udp", "h", 3478, FALSE,
       FERRY_TURN_TRANSPORT_UDP},
      {"turns:turn.example.org", "turns:turn.example.org:5349", "turn.example.org", 5349, TRUE,
       FERRY_TURN_TRANSPORT_DEFAULT},
      {"turns:turn.example.org:443?transport=tcp", "turns:turn.example.org:443?transport=tcp",
       "turn.example.org", 443, TRUE, FERRY_TURN_TRANSPORT_TCP},
      {"turn:[::1]", "turn:[::1]:3478", "::1", 3478, FALSE, FERRY_TURN_TRANSPORT_DEFAULT},
      {"turns:[2001:db8::1]:65535?transport=tcp", "turns:[2001:db8::1]:65535?transport=tcp",
       "2001:db8::1", 65535, TRUE, FERRY_TURN_TRANSPORT_TCP},
      {"turn:[::ffff:192.0.2.1]:1", "turn:[::ffff:192.0.2.1]:1", "::ffff:192.0.2.1", 1, FALSE,
       FERRY_TURN_TRANSPORT_DEFAULT},
  };

  for (size_t i = 0; i < G_N_ELEMENTS(v); i++) {
    FerryTurnUrl url;
    GError *error = NULL;
    char *s;

    g_test_message("%s", v[i].in);
    g_assert_true(ferry_turn_url_parse(v[i].in, &url, &error));
    g_assert_no_error(error);
    g_assert_cmpstr(url.host, ==, v[i].host);
    g_assert_cmpuint(url.port, ==, v[i].port);
    g_assert_cmpint(url.secure, ==, v[i].secure);
    g_assert_cmpint(url.transport, ==, v[i].transport);
    s = ferry_turn_url_to_string(&url);
    g_assert_cmpstr(s, ==, v[i].canonical);
    ferry_turn_url_clear(&url);
    /* the canonical form parses to itself */
    g_assert_true(ferry_turn_url_parse(s, &url, &error));
    g_assert_cmpstr(url.host, ==, v[i].host);
    ferry_turn_url_clear(&url);
    g_free(s);
  }
}

static void
test_url_bad(void)
{
  static const struct {
    const char *in, *why;
  } v[] = {
      {"", "turn: or turns:"},
      {"stun:stun.example.org", "turn: or turns:"},
      {"http://turn.example.org", "turn: or turns:"},
      {"turn://turn.example.org", "no '//'"},
      {"turn:", "no host"},
      {"turn:?transport=udp", "no host"},
      {"turn::3478", "not a DNS name"},
      {"turn:user@turn.example.org", "'@'"},
      {"turn:turn.example.org:", "port"},
      {"turn:turn.example.org:0", "port"},
      {"turn:turn.example.org:65536", "port"},
      {"turn:turn.example.org:123456", "port"},
      {"turn:turn.example.org:-1", "port"},
      {"turn:turn.example.org:34a", "port"},
      {"turn:turn.example.org:+80", "port"},
      {"turn:2001:db8::1", "in brackets"},
      {"turn:2001:db8::1:3478", "in brackets"},
      {"turn:[2001:db8::1", "'[' without ']'"},
      {"turn:[not-v6]:3478", "not an IPv6"},
      {"turn:[192.0.2.1]", "not an IPv6"},
      {"turn:[::1]x", "only ':PORT'"},
      {"turn:[::1]:", "port"},
      {"turn:bad_host", "not a DNS name"},
      {"turn:-bad.example", "not a DNS name"},
      {"turn:bad-.example", "not a DNS name"},
      {"turn:a..b", "not a DNS name"},
      {"turn:.a", "not a DNS name"},
      {"turn:a b", "not a DNS name"},
      {"turn:turn.example.org/path", "not a DNS name"},
      {"turn:turn.example.org?", "only query"},
      {"turn:turn.example.org?foo=bar", "only query"},
      {"turn:turn.example.org?transport=sctp", "udp or tcp"},
      {"turn:turn.example.org?transport=udp&x=1", "udp or tcp"},
      {"turn:turn.example.org?transport=", "udp or tcp"},
      {"turns:turn.example.org?transport=udp", "DTLS"},
  };

  for (size_t i = 0; i < G_N_ELEMENTS(v); i++) {
    FerryTurnUrl url;
    GError *error = NULL;
    char *named = g_strdup_printf("bad TURN server URL '%s': ", v[i].in);

    g_test_message("%s", v[i].in);
    g_assert_false(ferry_turn_url_parse(v[i].in, &url, &error));
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
    g_assert_true(g_str_has_prefix(error->message, named));
    g_assert_nonnull(strstr(error->message, v[i].why));
    ferry_turn_url_clear(&url);
    g_clear_error(&error);
    g_free(named);
  }
}

static void
test_url_long_labels(void)
{
  FerryTurnUrl url;
  GError *error = NULL;
  char *label63 = g_strnfill(63, 'a'), *label64 = g_strnfill(64, 'a');
  char *ok = g_strdup_printf("turn:%s.example", label63);
  char *bad = g_strdup_printf("turn:%s.example", label64);
  GString *huge = g_string_new("turn:");

  g_assert_true(ferry_turn_url_parse(ok, &url, &error));
  ferry_turn_url_clear(&url);
  g_assert_false(ferry_turn_url_parse(bad, &url, &error));
  ferry_turn_url_clear(&url);
  g_clear_error(&error);
  /* a name over 253 bytes */
  for (int i = 0; i < 5; i++)
    g_string_append_printf(huge, "%s.", label63);
  g_string_append(huge, "x");
  g_assert_false(ferry_turn_url_parse(huge->str, &url, &error));
  ferry_turn_url_clear(&url);
  g_clear_error(&error);

  g_string_free(huge, TRUE);
  g_free(label63);
  g_free(label64);
  g_free(ok);
  g_free(bad);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/server/turn/password-vectors", test_password_vectors);
  g_test_add_func("/server/turn/mint", test_mint);
  g_test_add_func("/server/turn/mint-errors", test_mint_errors);
  g_test_add_func("/server/turn/url/good", test_url_good);
  g_test_add_func("/server/turn/url/bad", test_url_bad);
  g_test_add_func("/server/turn/url/long-labels", test_url_long_labels);
  return g_test_run();
}
