/* The PAKE between a sender and a receiver over a real `ferry serve`, and
 * the sealed channel after it: the right code gives both sides one key and
 * a channel the server cannot read; a wrong code fails on both sides. The
 * receiver may seal messages as soon as it has answered (before the
 * sender's confirmation); the sender opens them only with the right code. */
#include <string.h>

#include <ferry/error.h>

#include "net/peer-link.h"
#include "testutil.h"

typedef struct {
  const char *name;
  FerrySignalClient *sig;
  FerryPeerLink *link;
  const char *words;
  char nameplate[16];
  gboolean ready;
  gboolean confirmed_at_ready; /* ferry_peer_link_is_ready() when ready came */
  const char *send_on_ready;   /* sealed and sent from the ready handler */
  GError *error;
  GPtrArray *secrets; /* texts received through the link */
  GPtrArray *raw;     /* bodies as the server delivered them */
} Side;

static void
on_ready(FerryPeerLink *link, gpointer data)
{
  Side *s = data;
  g_assert_false(s->ready); /* once */
  s->ready = TRUE;
  s->confirmed_at_ready = ferry_peer_link_is_ready(link);
  if (s->send_on_ready != NULL)
    ferry_peer_link_send_secret(link, s->send_on_ready, strlen(s->send_on_ready));
}

static void
on_failed(FerryPeerLink *link, const GError *error, gpointer data)
{
  Side *s = data;
  g_assert_null(s->error);
  s->error = g_error_copy(error);
}

static void
on_secret(FerryPeerLink *link, const char *text, gsize len, gpointer data)
{
  g_assert_cmpuint(strlen(text), ==, len);
  g_ptr_array_add(((Side *)data)->secrets, g_strdup(text));
}

static const FerryPeerLinkHandlers handlers = {on_ready, on_failed, on_secret};

/* Signaling messages: the sender makes a link for each receiver that
 * joins; every relayed body goes to the link. */
static void
on_message(FerrySignalClient *sig, JsonObject *msg, gpointer data)
{
  Side *s = data;
  const char *type = json_object_get_string_member_with_default(msg, "type", "");

  if (strcmp(type, "claimed") == 0) {
    g_strlcpy(s->nameplate, json_object_get_string_member(msg, "nameplate"), sizeof s->nameplate);
  } else if (strcmp(type, "joined") == 0) {
    s->link = ferry_peer_link_new(sig, FERRY_PAKE_RECEIVER, "s",
                                  json_object_get_string_member(msg, "peer"), s->nameplate,
                                  s->words, &handlers, s);
  } else if (strcmp(type, "peer-joined") == 0) {
    const char *peer = json_object_get_string_member(msg, "peer");
    s->link = ferry_peer_link_new(sig, FERRY_PAKE_SENDER, peer, peer, s->nameplate, s->words,
                                  &handlers, s);
    ferry_peer_link_start(s->link);
  } else if (strcmp(type, "message") == 0) {
    JsonNode *body = json_object_get_member(msg, "body");
    g_ptr_array_add(s->raw, json_to_string(body, FALSE));
    g_assert_nonnull(s->link);
    g_assert_true(ferry_peer_link_handle(s->link, body));
  }
}

static void
side_init(Side *s, const char *name, const char *url, const char *words)
{
  GError *error = NULL;
  memset(s, 0, sizeof *s);
  s->name = name;
  s->words = words;
  s->secrets = g_ptr_array_new_with_free_func(g_free);
  s->raw = g_ptr_array_new_with_free_func(g_free);
  s->sig = ferry_signal_client_new(url, &error);
  g_assert_no_error(error);
  ferry_signal_client_set_handlers(s->sig, on_message, NULL, s);
  ferry_signal_client_start(s->sig);
}

static void
side_clear(Side *s)
{
  ferry_peer_link_free(s->link);
  ferry_signal_client_free(s->sig);
  g_clear_error(&s->error);
  g_ptr_array_free(s->secrets, TRUE);
  g_ptr_array_free(s->raw, TRUE);
}

static void
pair_up_early(Side *sender, Side *receiver, const char *url, const char *sender_words,
              const char *receiver_words, const char *receiver_early)
{
  side_init(sender, "sender", url, sender_words);
  ferry_signal_client_claim(sender->sig, 0);
  WAIT_FOR(sender->nameplate[0] != '\0', 5);
  side_init(receiver, "receiver", url, receiver_words);
  receiver->send_on_ready = receiver_early;
  g_strlcpy(receiver->nameplate, sender->nameplate, sizeof receiver->nameplate);
  ferry_signal_client_join(receiver->sig, sender->nameplate);
}

static void
pair_up(Side *sender, Side *receiver, const char *url, const char *sender_words,
        const char *receiver_words)
{
  pair_up_early(sender, receiver, url, sender_words, receiver_words, NULL);
}

/* Each test: a fresh ferry serve, and a sender and a receiver on it. */
typedef struct {
  TestServer srv;
  char *url;
  Side a, b;
} Pair;

static void
pair_setup(Pair *p, gconstpointer data)
{
  test_server_start(&p->srv, "127.0.0.1:0", NULL);
  p->url = test_server_url(p->srv.port);
}

static void
pair_teardown(Pair *p, gconstpointer data)
{
  side_clear(&p->a);
  side_clear(&p->b);
  g_free(p->url);
  test_server_stop(&p->srv);
}

static void
test_right_code(Pair *p, gconstpointer data)
{
  pair_up(&p->a, &p->b, p->url, "ocean-tiger-piano", "ocean-tiger-piano");
  WAIT_FOR(p->a.ready && p->b.ready, 10);
  g_assert_no_error(p->a.error);
  g_assert_no_error(p->b.error);

  guint8 ka[FERRY_LINK_KEY_LEN], kb[FERRY_LINK_KEY_LEN], other[FERRY_LINK_KEY_LEN];
  g_assert_true(ferry_peer_link_derive_key(p->a.link, "ferry-v1 quic-auth", ka));
  g_assert_true(ferry_peer_link_derive_key(p->b.link, "ferry-v1 quic-auth", kb));
  g_assert_true(ferry_peer_link_derive_key(p->b.link, "something else", other));
  g_assert_cmpmem(ka, sizeof ka, kb, sizeof kb);
  g_assert_true(memcmp(ka, other, sizeof ka) != 0);

  const char *cand = "a=candidate:1 1 UDP 2013266431 192.0.2.7 50000 typ host";
  ferry_peer_link_send_secret(p->b.link, cand, strlen(cand));
  ferry_peer_link_send_secret(p->a.link, "end-of-candidates", 17);
  WAIT_FOR(p->a.secrets->len == 1 && p->b.secrets->len == 1, 5);
  g_assert_cmpstr(p->a.secrets->pdata[0], ==, cand);
  g_assert_cmpstr(p->b.secrets->pdata[0], ==, "end-of-candidates");
  /* what the server relayed holds no address and no words */
  for (guint i = 0; i < p->a.raw->len; i++) {
    g_assert_null(strstr(p->a.raw->pdata[i], "192.0.2.7"));
    g_assert_null(strstr(p->a.raw->pdata[i], "tiger"));
  }
  g_assert_nonnull(strstr(p->a.raw->pdata[p->a.raw->len - 1], "\"t\":\"box\""));
}

/* The receiver seals its first message from its ready handler, which comes
 * before the sender's confirmation: it travels right behind its answer, and
 * the sender, ready after checking that answer, opens it. */
static void
test_receiver_early(Pair *p, gconstpointer data)
{
  const char *cand = "creds abcd 0123456789abcdef012345";
  pair_up_early(&p->a, &p->b, p->url, "ocean-tiger-piano", "ocean-tiger-piano", cand);
  WAIT_FOR(p->a.secrets->len == 1 && ferry_peer_link_is_ready(p->b.link), 10);
  g_assert_true(p->b.ready);
  g_assert_false(p->b.confirmed_at_ready); /* keyed before the confirmation */
  g_assert_true(p->a.confirmed_at_ready);  /* the sender: after checking the tag */
  g_assert_cmpstr(p->a.secrets->pdata[0], ==, cand);
  /* the sender got the box right after the receiver's answer, before any
   * other body */
  g_assert_cmpuint(p->a.raw->len, ==, 2);
  g_assert_nonnull(strstr(p->a.raw->pdata[0], "\"t\":\"pake\""));
  g_assert_nonnull(strstr(p->a.raw->pdata[1], "\"t\":\"box\""));
  g_assert_null(strstr(p->a.raw->pdata[1], "0123456789abcdef"));
  /* the early key is the confirmed one */
  guint8 ka[FERRY_LINK_KEY_LEN], kb[FERRY_LINK_KEY_LEN];
  g_assert_true(ferry_peer_link_derive_key(p->a.link, "ferry-v1 quic-auth", ka));
  g_assert_true(ferry_peer_link_derive_key(p->b.link, "ferry-v1 quic-auth", kb));
  g_assert_cmpmem(ka, sizeof ka, kb, sizeof kb);
  ferry_peer_link_send_secret(p->a.link, "end", 3);
  WAIT_FOR(p->b.secrets->len == 1, 5);
  g_assert_cmpstr(p->b.secrets->pdata[0], ==, "end");
}

static void
test_wrong_code(Pair *p, gconstpointer data)
{
  pair_up_early(&p->a, &p->b, p->url, "ocean-tiger-piano", "ocean-tiger-pilot",
                "creds abcd 0123456789abcdef012345");
  WAIT_FOR(p->a.error != NULL && p->b.error != NULL, 10);
  g_assert_false(p->a.ready);
  /* the receiver was keyed (and sealed a message) before it learnt the
   * code was wrong; the sender never opened it, and the receiver's link is
   * dead: no key to derive */
  g_assert_true(p->b.ready);
  g_assert_false(ferry_peer_link_is_ready(p->b.link));
  g_assert_cmpuint(p->a.secrets->len, ==, 0);
  g_assert_false(ferry_peer_link_derive_key(p->b.link, "x", (guint8[FERRY_LINK_KEY_LEN]){0}));
  g_assert_error(p->a.error, FERRY_ERROR, FERRY_ERROR_AUTH);
  g_assert_error(p->b.error, FERRY_ERROR, FERRY_ERROR_AUTH);
  g_assert_nonnull(strstr(p->b.error->message, "the code did not match"));
  g_assert_nonnull(strstr(p->a.error->message, "the code did not match"));
  guint8 k[FERRY_LINK_KEY_LEN];
  g_assert_false(ferry_peer_link_derive_key(p->a.link, "x", k));
}

static void
test_tampered_box(Pair *p, gconstpointer data)
{
  pair_up(&p->a, &p->b, p->url, "ocean-tiger-piano", "ocean-tiger-piano");
  WAIT_FOR(p->a.ready && p->b.ready, 10);
  /* A box sealed under another key (as a server forging one would) */
  JsonNode *forged =
      json_from_string("{\"t\":\"box\",\"v\":1,\"n\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                       "\"c\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
                       NULL);
  g_assert_true(ferry_peer_link_handle(p->a.link, forged));
  json_node_unref(forged);
  g_assert_error(p->a.error, FERRY_ERROR, FERRY_ERROR_CORRUPT);
  g_assert_cmpuint(p->a.secrets->len, ==, 0);
}

static void
test_replayed_box(Pair *p, gconstpointer data)
{
  pair_up(&p->a, &p->b, p->url, "ocean-tiger-piano", "ocean-tiger-piano");
  WAIT_FOR(p->a.ready && p->b.ready, 10);
  ferry_peer_link_send_secret(p->b.link, "first", 5);
  ferry_peer_link_send_secret(p->b.link, "second", 6);
  WAIT_FOR(p->a.secrets->len == 2, 5);
  g_assert_cmpstr(p->a.secrets->pdata[0], ==, "first");
  g_assert_cmpstr(p->a.secrets->pdata[1], ==, "second");
  /* The server (or anyone relaying) delivers the first box again. */
  JsonNode *again = json_from_string(p->a.raw->pdata[p->a.raw->len - 2], NULL);
  g_assert_true(ferry_peer_link_handle(p->a.link, again));
  json_node_unref(again);
  g_assert_error(p->a.error, FERRY_ERROR, FERRY_ERROR_CORRUPT);
  g_assert_nonnull(strstr(p->a.error->message, "replayed"));
  g_assert_cmpuint(p->a.secrets->len, ==, 2);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add("/net/peer-link/right-code", Pair, NULL, pair_setup, test_right_code, pair_teardown);
  g_test_add("/net/peer-link/receiver-early", Pair, NULL, pair_setup, test_receiver_early,
             pair_teardown);
  g_test_add("/net/peer-link/wrong-code", Pair, NULL, pair_setup, test_wrong_code, pair_teardown);
  g_test_add("/net/peer-link/tampered-box", Pair, NULL, pair_setup, test_tampered_box,
             pair_teardown);
  g_test_add("/net/peer-link/replayed-box", Pair, NULL, pair_setup, test_replayed_box,
             pair_teardown);
  return g_test_run();
}
