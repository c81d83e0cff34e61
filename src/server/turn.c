/* TURN server URLs and coturn REST-API credentials. */
#include "server/turn.h"

#include <string.h>

#include <gio/gio.h>
#include <gnutls/crypto.h>

#define SHA1_SIZE 20

static gboolean
bad_url(GError **error, const char *text, const char *why)
{
  return ferry_set_error(error, FERRY_ERR_INVALID, "bad TURN server URL '%s': %s", text, why);
}

/* A DNS name as RFC 1123 allows it (which covers dotted IPv4 too):
 * labels of letters, digits and inner hyphens, 1 to 63 bytes each. */
static gboolean
is_hostname(const char *s, size_t len)
{
  size_t label = 0;

  if (len == 0 || len > 253)
    return FALSE;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-')
        return FALSE;
      label = 0;
    } else if (g_ascii_isalnum(c) || (c == '-' && label > 0)) {
      if (++label > 63)
        return FALSE;
    } else {
      return FALSE;
    }
  }
  return label > 0 && s[len - 1] != '-';
}

static gboolean
parse_port(const char *s, size_t len, guint16 *port)
{
  guint v = 0;

  if (len == 0 || len > 5)
    return FALSE;
  for (size_t i = 0; i < len; i++) {
    if (!g_ascii_isdigit(s[i]))
      return FALSE;
    v = v * 10 + (guint)(s[i] - '0');
  }
  if (v == 0 || v > 65535)
    return FALSE;
  *port = (guint16)v;
  return TRUE;
}

static gboolean
parse_host_port(const char *text, const char *hp, size_t len, FerryTurnUrl *url, GError **error)
{
  const char *colon;
  size_t hlen;

  if (len == 0)
    return bad_url(error, text, "no host (write turn:HOST[:PORT], e.g. turn:turn.example.org)");
  if (memchr(hp, '@', len) != NULL)
    return bad_url(error, text,
                   "a user name ('@') does not belong in it; ferry mints the credentials");

  if (hp[0] == '[') {
    const char *close = memchr(hp, ']', len);
    char *inside;
    GInetAddress *inet;

    if (close == NULL)
      return bad_url(error, text, "'[' without ']' (write an IPv6 address as [2001:db8::1])");
    inside = g_strndup(hp + 1, (gsize)(close - hp - 1));
    inet = g_inet_address_new_from_string(inside);
    if (inet == NULL || g_inet_address_get_family(inet) != G_SOCKET_FAMILY_IPV6) {
      g_clear_object(&inet);
      g_free(inside);
      return bad_url(error, text, "what is in brackets is not an IPv6 address");
    }
    g_object_unref(inet);
    url->host = g_ascii_strdown(inside, -1);
    g_free(inside);
    hlen = (size_t)(close - hp) + 1;
    if (hlen < len && hp[hlen] != ':')
      return bad_url(error, text, "only ':PORT' may follow ']'");
    colon = hlen < len ? hp + hlen : NULL;
  } else {
    colon = memchr(hp, ':', len);
    if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon - hp) - 1) != NULL)
      return bad_url(error, text,
                     "an IPv6 address must be in brackets (e.g. turn:[2001:db8::1]:3478)");
    hlen = colon != NULL ? (size_t)(colon - hp) : len;
    if (!is_hostname(hp, hlen))
      return bad_url(error, text,
                     "the host is not a DNS name or an IP address (letters, digits, '-' and "
                     "'.' only)");
    url->host = g_ascii_strdown(hp, (gssize)hlen);
  }

  url->port = url->secure ? FERRY_TURN_DEFAULT_TLS_PORT : FERRY_TURN_DEFAULT_PORT;
  if (colon != NULL && !parse_port(colon + 1, len - (size_t)(colon - hp) - 1, &url->port))
    return bad_url(error, text, "the port must be a number from 1 to 65535");
  return TRUE;
}

static gboolean
parse_query(const char *text, const char *q, FerryTurnUrl *url, GError **error)
{
  static const char key[] = "transport=";

  if (g_ascii_strncasecmp(q, key, sizeof key - 1) != 0)
    return bad_url(error, text, "the only query it may have is ?transport=udp or ?transport=tcp");
  q += sizeof key - 1;
  if (g_ascii_strcasecmp(q, "udp") == 0)
    url->transport = FERRY_TURN_TRANSPORT_UDP;
  else if (g_ascii_strcasecmp(q, "tcp") == 0)
    url->transport = FERRY_TURN_TRANSPORT_TCP;
  else
    return bad_url(error, text, "transport must be udp or tcp");
  if (url->secure && url->transport == FERRY_TURN_TRANSPORT_UDP)
    return bad_url(error, text,
                   "turns: over UDP would be DTLS, which ferry does not use (write "
                   "turns:HOST?transport=tcp, or turn:HOST?transport=udp)");
  return TRUE;
}

gboolean
ferry_turn_url_parse(const char *text, FerryTurnUrl *url, GError **error)
{
  const char *rest, *q;

  memset(url, 0, sizeof *url);
  if (g_ascii_strncasecmp(text, "turns:", 6) == 0) {
    url->secure = TRUE;
    rest = text + 6;
  } else if (g_ascii_strncasecmp(text, "turn:", 5) == 0) {
    rest = text + 5;
  } else {
    return bad_url(error, text,
                   "it must start with turn: or turns: (e.g. turn:turn.example.org:3478)");
  }
  if (rest[0] == '/')
    return bad_url(error, text, "TURN URLs have no '//' (write turn:HOST[:PORT], RFC 7065)");

  q = strchr(rest, '?');
  if (!parse_host_port(text, rest, q != NULL ? (size_t)(q - rest) : strlen(rest), url, error))
    return FALSE;
  return q == NULL || parse_query(text, q + 1, url, error);
}

void
ferry_turn_url_clear(FerryTurnUrl *url)
{
  g_free(url->host);
  memset(url, 0, sizeof *url);
}

char *
ferry_turn_url_to_string(const FerryTurnUrl *url)
{
  gboolean v6 = strchr(url->host, ':') != NULL;
  const char *transport = url->transport == FERRY_TURN_TRANSPORT_UDP   ? "?transport=udp"
                          : url->transport == FERRY_TURN_TRANSPORT_TCP ? "?transport=tcp"
                                                                       : "";

  return g_strdup_printf("%s:%s%s%s:%u%s", url->secure ? "turns" : "turn", v6 ? "[" : "", url->host,
                         v6 ? "]" : "", url->port, transport);
}

char *
ferry_turn_password(const char *secret, const char *username, GError **error)
{
  guchar mac[SHA1_SIZE];
  int r;

  r = gnutls_hmac_fast(GNUTLS_MAC_SHA1, secret, strlen(secret), username, strlen(username), mac);
  if (r < 0) {
    ferry_set_error(error, FERRY_ERR_CRYPTO,
                    "cannot compute HMAC-SHA1 for a TURN credential: %s (check the system's "
                    "crypto policy allows HMAC-SHA1)",
                    gnutls_strerror(r));
    return NULL;
  }
  return g_base64_encode(mac, sizeof mac);
}

struct _FerryTurnConfig {
  char *secret;
  guint ttl;
  GPtrArray *urls; /* of char *, canonical form */
};

FerryTurnConfig *
ferry_turn_config_new(const char *secret, guint ttl, GError **error)
{
  FerryTurnConfig *config;

  if (secret == NULL || secret[0] == '\0') {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "the TURN secret is empty: give the static-auth-secret from coturn's "
                    "configuration");
    return NULL;
  }
  if (ttl < FERRY_TURN_MIN_TTL || ttl > FERRY_TURN_MAX_TTL) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "a TURN credential lifetime of %u seconds is out of range (give %u to %u "
                    "seconds)",
                    ttl, FERRY_TURN_MIN_TTL, FERRY_TURN_MAX_TTL);
    return NULL;
  }
  config = g_new0(FerryTurnConfig, 1);
  config->secret = g_strdup(secret);
  config->ttl = ttl;
  config->urls = g_ptr_array_new_with_free_func(g_free);
  return config;
}

gboolean
ferry_turn_config_add_url(FerryTurnConfig *config, const char *url, GError **error)
{
  FerryTurnUrl parsed;
  gboolean ok = ferry_turn_url_parse(url, &parsed, error);

  if (ok)
    g_ptr_array_add(config->urls, ferry_turn_url_to_string(&parsed));
  ferry_turn_url_clear(&parsed);
  return ok;
}

guint
ferry_turn_config_get_n_urls(const FerryTurnConfig *config)
{
  return config->urls->len;
}

void
ferry_turn_config_free(FerryTurnConfig *config)
{
  if (config == NULL)
    return;
  explicit_bzero(config->secret, strlen(config->secret));
  g_free(config->secret);
  g_ptr_array_unref(config->urls);
  g_free(config);
}

static gboolean
is_peer_id(const char *s)
{
  size_t n = strlen(s);

  if (n == 0 || n > FERRY_TURN_MAX_PEER_ID)
    return FALSE;
  for (size_t i = 0; i < n; i++)
    if (!g_ascii_isalnum(s[i]) && strchr("._~-", s[i]) == NULL)
      return FALSE;
  return TRUE;
}

/* coturn checks only that EXPIRY is still ahead of its own clock and that
 * the HMAC matches; the peer ID after the colon is for its logs. Keeping
 * the ID to a plain alphabet keeps the username a valid STUN USERNAME and
 * safe in JSON and in coturn's log lines. */
FerryTurnCredentials *
ferry_turn_config_mint(const FerryTurnConfig *config, const char *peer_id, gint64 now_unix,
                       GError **error)
{
  FerryTurnCredentials *creds;
  char *username, *password;

  if (peer_id == NULL || !is_peer_id(peer_id)) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "cannot mint TURN credentials for peer '%s': a peer ID is 1 to %d of "
                    "A-Z a-z 0-9 . _ ~ -",
                    peer_id != NULL ? peer_id : "(null)", FERRY_TURN_MAX_PEER_ID);
    return NULL;
  }
  if (config->urls->len == 0) {
    ferry_set_error(error, FERRY_ERR_STATE,
                    "cannot mint TURN credentials: no TURN server URL is configured (add one "
                    "with --turn-server turn:HOST)");
    return NULL;
  }

  username = g_strdup_printf("%" G_GINT64_FORMAT ":%s", now_unix + config->ttl, peer_id);
  password = ferry_turn_password(config->secret, username, error);
  if (password == NULL) {
    g_free(username);
    return NULL;
  }

  creds = g_new0(FerryTurnCredentials, 1);
  creds->urls = g_new0(char *, config->urls->len + 1);
  for (guint i = 0; i < config->urls->len; i++)
    creds->urls[i] = g_strdup(g_ptr_array_index(config->urls, i));
  creds->username = username;
  creds->credential = password;
  creds->ttl = config->ttl;
  creds->expires = now_unix + config->ttl;
  return creds;
}

void
ferry_turn_credentials_free(FerryTurnCredentials *creds)
{
  if (creds == NULL)
    return;
  g_strfreev(creds->urls);
  g_free(creds->username);
  g_free(creds->credential);
  g_free(creds);
}
