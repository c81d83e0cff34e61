/* PAKE over signaling, then a sealed channel (see peer-link.h). */
#include <string.h>

#include <sodium.h>

#include <ferry/error.h>

#include "net/peer-link.h"

#define SID_LEN 16

typedef enum {
  LINK_NEW,
  LINK_WAIT_REPLY,   /* sender: share sent, waiting for the receiver's share + tag */
  LINK_WAIT_CONFIRM, /* receiver: answered, waiting for the sender's tag */
  LINK_READY,
  LINK_DEAD,
} LinkState;

struct _FerryPeerLink {
  FerrySignalClient *sig;
  FerryPakeRole role;
  char *peer;
  char *channel_id;
  char *words;
  FerryPake *pake;
  LinkState state;
  gboolean keyed; /* the box keys are set (a receiver's before LINK_READY) */
  guint8 key[FERRY_PAKE_KEY_LEN];
  guint8 tx_key[crypto_secretbox_KEYBYTES];
  guint8 rx_key[crypto_secretbox_KEYBYTES];
  guint64 tx_seq, rx_seq; /* sealed messages are numbered from 0 each way */
  FerryPeerLinkHandlers handlers;
  gpointer user_data;
};

FerryPeerLink *
ferry_peer_link_new(FerrySignalClient *sig, FerryPakeRole role, const char *peer_id,
                    const char *receiver_id, const char *nameplate, const char *words,
                    const FerryPeerLinkHandlers *handlers, gpointer user_data)
{
  FerryPeerLink *l = g_new0(FerryPeerLink, 1);
  l->sig = sig;
  l->role = role;
  l->peer = g_strdup(peer_id);
  l->channel_id = g_strdup_printf("ferry-v1 %s %s", nameplate, receiver_id);
  l->words = g_strdup(words);
  l->handlers = *handlers;
  l->user_data = user_data;
  l->state = LINK_NEW;
  return l;
}

static void
fail(FerryPeerLink *l, int code, const char *message)
{
  if (l->state == LINK_DEAD)
    return;
  l->state = LINK_DEAD;
  l->keyed = FALSE;
  g_clear_pointer(&l->pake, ferry_pake_free);
  sodium_memzero(l->key, sizeof l->key);
  sodium_memzero(l->tx_key, sizeof l->tx_key);
  sodium_memzero(l->rx_key, sizeof l->rx_key);
  GError *error = g_error_new_literal(FERRY_ERROR, -code, message);
  if (l->handlers.failed != NULL)
    l->handlers.failed(l, error, l->user_data);
  g_error_free(error);
}

static void
add_b64(JsonBuilder *b, const char *name, const guint8 *data, gsize len)
{
  char *text = g_base64_encode(data, len);
  json_builder_set_member_name(b, name);
  json_builder_add_string_value(b, text);
  g_free(text);
}

static JsonBuilder *
body_begin(const char *t)
{
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "t");
  json_builder_add_string_value(b, t);
  json_builder_set_member_name(b, "v");
  json_builder_add_int_value(b, 1);
  return b;
}

static void
body_send(FerryPeerLink *l, JsonBuilder *b)
{
  json_builder_end_object(b);
  ferry_signal_client_send(l->sig, l->peer, json_builder_get_root(b));
  g_object_unref(b);
}

/* Reads a base64 member of exactly want bytes (want 0: 1..max bytes). */
static gboolean
get_b64(JsonObject *o, const char *name, guint8 *out, gsize want, gsize max, gsize *got)
{
  const char *text = json_object_get_string_member_with_default(o, name, NULL);
  gsize len = 0;
  if (text == NULL || strlen(text) > 4 * ((max + 2) / 3) + 4)
    return FALSE;
  guchar *raw = g_base64_decode(text, &len);
  gboolean ok = want ? len == want : (len >= 1 && len <= max);
  if (ok)
    memcpy(out, raw, len);
  if (got != NULL)
    *got = len;
  g_free(raw);
  return ok;
}

/* Keys for each direction of the sealed channel and for other purposes:
 * BLAKE2b-256 keyed with the PAKE key over a purpose label. */
static void
derive(const guint8 key[FERRY_PAKE_KEY_LEN], const char *purpose, guint8 *out, gsize len)
{
  crypto_generichash(out, len, (const guint8 *)purpose, strlen(purpose), key, FERRY_PAKE_KEY_LEN);
}

/* The box keys from l->key. */
static void
set_box_keys(FerryPeerLink *l)
{
  gboolean sender = l->role == FERRY_PAKE_SENDER;
  derive(l->key, sender ? "ferry-v1 box sender" : "ferry-v1 box receiver", l->tx_key,
         sizeof l->tx_key);
  derive(l->key, sender ? "ferry-v1 box receiver" : "ferry-v1 box sender", l->rx_key,
         sizeof l->rx_key);
  l->keyed = TRUE;
}

/* The PAKE is confirmed. A receiver that was keyed early has had its ready
 * call already. */
static void
become_ready(FerryPeerLink *l)
{
  gboolean was_keyed = l->keyed;
  ferry_pake_session_key(l->pake, l->key);
  g_clear_pointer(&l->pake, ferry_pake_free);
  set_box_keys(l);
  l->state = LINK_READY;
  if (!was_keyed && l->handlers.ready != NULL)
    l->handlers.ready(l, l->user_data);
}

static gboolean
new_pake(FerryPeerLink *l, const guint8 sid[SID_LEN])
{
  l->pake = ferry_pake_new(l->role, l->words, strlen(l->words), sid, SID_LEN, l->channel_id);
  if (l->pake == NULL) {
    fail(l, FERRY_ERR_INVALID, "the code's words cannot be used for the handshake");
    return FALSE;
  }
  return TRUE;
}

void
ferry_peer_link_start(FerryPeerLink *l)
{
  guint8 sid[SID_LEN], msg[FERRY_PAKE_MSG_LEN];
  gsize n = sizeof msg;

  if (l->role != FERRY_PAKE_SENDER || l->state != LINK_NEW)
    return;
  randombytes_buf(sid, sizeof sid);
  if (!new_pake(l, sid))
    return;
  if (ferry_pake_start(l->pake, msg, &n) < 0) {
    fail(l, FERRY_ERR_CRYPTO, "the handshake could not start");
    return;
  }
  JsonBuilder *b = body_begin("pake");
  add_b64(b, "sid", sid, sizeof sid);
  add_b64(b, "msg", msg, n);
  body_send(l, b);
  l->state = LINK_WAIT_REPLY;
}

static const char wrong_code[] =
    "the code did not match: the other side typed different words (or someone guessed); check "
    "the code and try again";

/* Receiver: the sender's share arrived; answer with our share and tag. */
static void
receiver_on_pake(FerryPeerLink *l, JsonObject *o)
{
  guint8 sid[SID_LEN], peer_msg[FERRY_PAKE_MSG_LEN], msg[FERRY_PAKE_MSG_LEN], tag[64];
  gsize n = sizeof msg, tn = sizeof tag;

  if (l->state != LINK_NEW) {
    fail(l, FERRY_ERR_STATE, "the sender started the handshake twice; start again");
    return;
  }
  if (!get_b64(o, "sid", sid, SID_LEN, SID_LEN, NULL) ||
      !get_b64(o, "msg", peer_msg, FERRY_PAKE_MSG_LEN, FERRY_PAKE_MSG_LEN, NULL)) {
    fail(l, FERRY_ERR_INVALID, "the sender's handshake message is malformed");
    return;
  }
  if (!new_pake(l, sid))
    return;
  if (ferry_pake_start(l->pake, msg, &n) < 0 ||
      ferry_pake_finish(l->pake, peer_msg, sizeof peer_msg, tag, &tn) < 0) {
    fail(l, FERRY_ERR_AUTH, "the sender's handshake message was refused (tampered with?)");
    return;
  }
  JsonBuilder *b = body_begin("pake");
  add_b64(b, "msg", msg, n);
  add_b64(b, "confirm", tag, tn);
  body_send(l, b);
  l->state = LINK_WAIT_CONFIRM;
  /* Our key is known now: what we seal from here on follows our answer
   * to the sender, a round trip before its confirmation reaches us. */
  if (ferry_pake_unconfirmed_key(l->pake, l->key) == 0) {
    set_box_keys(l);
    if (l->handlers.ready != NULL)
      l->handlers.ready(l, l->user_data);
  }
}

/* Sender: the receiver's share and tag arrived. */
static void
sender_on_pake(FerryPeerLink *l, JsonObject *o)
{
  guint8 peer_msg[FERRY_PAKE_MSG_LEN], peer_tag[64], tag[64];
  gsize tn = sizeof tag, ptn = 0;

  if (l->state != LINK_WAIT_REPLY) {
    fail(l, FERRY_ERR_STATE, "the receiver answered out of turn");
    return;
  }
  if (!get_b64(o, "msg", peer_msg, FERRY_PAKE_MSG_LEN, FERRY_PAKE_MSG_LEN, NULL) ||
      !get_b64(o, "confirm", peer_tag, 0, sizeof peer_tag, &ptn)) {
    fail(l, FERRY_ERR_INVALID, "the receiver's handshake message is malformed");
    return;
  }
  if (ferry_pake_finish(l->pake, peer_msg, sizeof peer_msg, tag, &tn) < 0 ||
      ferry_pake_verify(l->pake, peer_tag, ptn) < 0) {
    /* Tell the receiver plainly; the tag is not sent, so nothing about our
     * key leaks to a guesser. */
    body_send(l, body_begin("pake-failed"));
    fail(l, FERRY_ERR_AUTH, wrong_code);
    return;
  }
  JsonBuilder *b = body_begin("confirm");
  add_b64(b, "confirm", tag, tn);
  body_send(l, b);
  become_ready(l);
}

static void
receiver_on_confirm(FerryPeerLink *l, JsonObject *o)
{
  guint8 tag[64];
  gsize tn = 0;

  if (l->state != LINK_WAIT_CONFIRM) {
    fail(l, FERRY_ERR_STATE, "the sender confirmed out of turn");
    return;
  }
  if (!get_b64(o, "confirm", tag, 0, sizeof tag, &tn) || ferry_pake_verify(l->pake, tag, tn) < 0) {
    fail(l, FERRY_ERR_AUTH, wrong_code);
    return;
  }
  become_ready(l);
}

static void
on_box(FerryPeerLink *l, JsonObject *o)
{
  guint8 nonce[crypto_secretbox_NONCEBYTES];
  const char *c64 = json_object_get_string_member_with_default(o, "c", NULL);
  gsize clen = 0;

  if (l->state != LINK_READY || c64 == NULL ||
      !get_b64(o, "n", nonce, sizeof nonce, sizeof nonce, NULL)) {
    g_warning("signaling: a sealed message from %s arrived out of place; ignored", l->peer);
    return;
  }
  guchar *c = g_base64_decode(c64, &clen);
  if (clen < crypto_secretbox_MACBYTES) {
    g_free(c);
    fail(l, FERRY_ERR_CORRUPT, "a sealed message from the peer is damaged");
    return;
  }
  gsize plen = clen - crypto_secretbox_MACBYTES;
  char *p = g_malloc(plen + 1);
  if (crypto_secretbox_open_easy((guchar *)p, c, clen, nonce, l->rx_key) != 0 || plen < 8) {
    g_free(c);
    g_free(p);
    fail(l, FERRY_ERR_CORRUPT, "a sealed message from the peer failed authentication");
    return;
  }
  p[plen] = '\0';
  g_free(c);
  /* The sequence number inside the box: whoever relays the boxes (the
   * server) cannot replay, drop-and-reorder or reflect them unnoticed. */
  guint64 seq = 0;
  for (int i = 0; i < 8; i++)
    seq = seq << 8 | (guint8)p[i];
  if (seq != l->rx_seq) {
    sodium_memzero(p, plen);
    g_free(p);
    fail(l, FERRY_ERR_CORRUPT,
         "a sealed message from the peer was replayed or arrived out of order");
    return;
  }
  l->rx_seq++;
  if (l->handlers.secret != NULL)
    l->handlers.secret(l, p + 8, plen - 8, l->user_data);
  sodium_memzero(p, plen);
  g_free(p);
}

gboolean
ferry_peer_link_handle(FerryPeerLink *l, JsonNode *body)
{
  if (body == NULL || !JSON_NODE_HOLDS_OBJECT(body))
    return FALSE;
  JsonObject *o = json_node_get_object(body);
  const char *t = json_object_get_string_member_with_default(o, "t", NULL);
  if (t == NULL)
    return FALSE;
  if (l->state == LINK_DEAD)
    return TRUE;
  if (json_object_get_int_member_with_default(o, "v", 0) != 1) {
    fail(l, FERRY_ERR_VERSION, "the peer runs an incompatible ferry; update both sides");
    return TRUE;
  }
  gboolean sender = l->role == FERRY_PAKE_SENDER;
  if (strcmp(t, "pake") == 0)
    sender ? sender_on_pake(l, o) : receiver_on_pake(l, o);
  else if (strcmp(t, "confirm") == 0 && !sender)
    receiver_on_confirm(l, o);
  else if (strcmp(t, "pake-failed") == 0 && !sender)
    fail(l, FERRY_ERR_AUTH, wrong_code);
  else if (strcmp(t, "box") == 0)
    on_box(l, o);
  else
    return FALSE;
  return TRUE;
}

void
ferry_peer_link_send_secret(FerryPeerLink *l, const char *text, gsize len)
{
  guint8 nonce[crypto_secretbox_NONCEBYTES];

  g_return_if_fail(l->state != LINK_DEAD && l->keyed);
  randombytes_buf(nonce, sizeof nonce);
  guchar *plain = g_malloc(8 + len);
  for (int i = 0; i < 8; i++)
    plain[i] = (guchar)(l->tx_seq >> (56 - 8 * i));
  memcpy(plain + 8, text, len);
  l->tx_seq++;
  guchar *c = g_malloc(8 + len + crypto_secretbox_MACBYTES);
  crypto_secretbox_easy(c, plain, 8 + len, nonce, l->tx_key);
  sodium_memzero(plain, 8 + len);
  g_free(plain);
  JsonBuilder *b = body_begin("box");
  add_b64(b, "n", nonce, sizeof nonce);
  add_b64(b, "c", c, 8 + len + crypto_secretbox_MACBYTES);
  body_send(l, b);
  g_free(c);
}

gboolean
ferry_peer_link_derive_key(FerryPeerLink *l, const char *purpose, guint8 out[FERRY_LINK_KEY_LEN])
{
  if (l->state == LINK_DEAD || !l->keyed)
    return FALSE;
  derive(l->key, purpose, out, FERRY_LINK_KEY_LEN);
  return TRUE;
}

const char *
ferry_peer_link_get_peer(FerryPeerLink *l)
{
  return l->peer;
}

gboolean
ferry_peer_link_is_keyed(FerryPeerLink *l)
{
  return l->state != LINK_DEAD && l->keyed;
}

gboolean
ferry_peer_link_is_ready(FerryPeerLink *l)
{
  return l->state == LINK_READY;
}

void
ferry_peer_link_free(FerryPeerLink *l)
{
  if (l == NULL)
    return;
  g_clear_pointer(&l->pake, ferry_pake_free);
  sodium_memzero(l->key, sizeof l->key);
  sodium_memzero(l->tx_key, sizeof l->tx_key);
  sodium_memzero(l->rx_key, sizeof l->rx_key);
  g_free(l->peer);
  g_free(l->channel_id);
  sodium_memzero(l->words, strlen(l->words));
  g_free(l->words);
  g_free(l);
}
