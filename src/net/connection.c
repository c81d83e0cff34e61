/* An authenticated connection to whoever holds a code (include/ferry/connection.h).
 *
 * One FerryConnection is made per sender–receiver pair and walks through:
 * signaling (the receiver joins, the sender sees peer-joined) → the PAKE
 * (net/peer-link.h) → ICE credentials and candidates through the link's
 * sealed channel → ICE (net/ice.h) → QUIC over the selected pair (the
 * sender is the QUIC client, the receiver the server) → the channel
 * binding on QUIC stream 0 → handed to the caller. The wire format of each
 * step is in docs/protocol.md §6 and §7.
 *
 * The QUIC layer runs its own thread; its callbacks only turn events into
 * queue entries, and a GSource on the caller's main context delivers them
 * in order. Until the binding is verified, application events are held. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include <ferry/code.h>
#include <ferry/connection.h>

#include "net/ice.h"
#include "net/peer-link.h"
#include "net/punch.h"
#include "net/quic.h"
#include "net/relay-probe.h"
#include "net/signal-client.h"
#include "net/udp.h"

#define AUTH_LABEL       "ferry-v1 quic-auth"
#define PUNCH_LABEL      "ferry-v1 punch"
#define EXPORTER_LABEL   "EXPORTER-ferry-v1-binding"
#define AUTH_MAC_LEN     crypto_auth_hmacsha256_BYTES
#define APP_ERR_AUTH     0x100 /* CONNECTION_CLOSE: the channel binding failed */
#define MAX_EARLY        64    /* datagrams kept until QUIC exists */
#define IDLE_TIMEOUT_MS  5000  /* QUIC: silence before a connection counts as dead */
#define MAX_SECRET_LINES 256   /* sealed ICE messages accepted per attempt */
#define ERR_FAILED       0     /* FERRY_ERROR_FAILED as a negated code */
#define GAVE_UP_MAX      400   /* bytes of a "gave-up" reason sent or taken */
/* The largest datagram to a peer on this same host (loopback MTU 64 KiB):
 * two fill one GSO send. */
#define SAME_HOST_DATAGRAM 32000
/* A relayed path whose every hop stays on this host (a TURN server on
 * loopback) may carry larger datagrams than 1452 bytes; how large depends
 * on the TURN server (coturn reads at most 16 KiB), so each side probes
 * its direction with these sizes and grows to the largest the peer echoes
 * (protocol.md §7.2.1). */
#define RELAY_PROBE_MAX 32000
static const guint16 relay_probe_sizes[] = {RELAY_PROBE_MAX, 16000, 8000};

/* ---- options ------------------------------------------------------------ */

void
ferry_connect_options_init(FerryConnectOptions *o)
{
  memset(o, 0, sizeof *o);
  o->include_loopback = TRUE;
  o->max_failures = FERRY_CONNECT_DEFAULT_MAX_FAILURES;
  o->code_words = FERRY_CODE_DEFAULT_WORDS;
  o->max_receivers = 1;
  o->connect_timeout_ms = FERRY_CONNECT_DEFAULT_TIMEOUT_MS;
}

/* The options as both sides keep them: copied, checked, shared by the
 * listener and its connections (reference counted with g_rc_box). */
typedef struct {
  char *url;
  char *words; /* sender: the code's words, given instead of drawn (NULL: draw) */
  GStrv ice_servers;
  gboolean force_relay, no_relay, include_loopback;
  guint max_failures, code_words, max_receivers;
  FerryQuicCC cc;
  gboolean cc_chosen; /* the caller named it: used on every path */
  guint64 conn_window, stream_window, max_streams;
  guint ice_timeout_ms, hs_timeout_ms, idle_timeout_ms, connect_timeout_ms;
  void (*queued)(guint position, gpointer user_data);
  gpointer queued_user_data;
} Opts;

static void
opts_clear(gpointer p)
{
  Opts *o = p;
  g_free(o->url);
  g_free(o->words);
  g_strfreev(o->ice_servers);
}

/* Builds an ICE config from the options plus a server's ice_servers. */
static gboolean
opts_ice_config(const Opts *o, FerryIceRole role, JsonNode *server_ice, FerryIceConfig *cfg,
                GError **error)
{
  ferry_ice_config_init(cfg);
  cfg->role = role;
  cfg->force_relay = o->force_relay;
  cfg->no_relay = o->no_relay;
  cfg->include_loopback = o->include_loopback;
  cfg->timeout_ms = o->ice_timeout_ms;
  for (guint i = 0; o->ice_servers != NULL && o->ice_servers[i] != NULL; i++) {
    const char *s = o->ice_servers[i];
    gboolean ok = g_str_has_prefix(s, "turn:") || g_str_has_prefix(s, "turns:")
                      ? ferry_ice_config_add_turn(cfg, s, NULL, NULL, error)
                      : ferry_ice_config_add_stun(cfg, s, error);
    if (!ok)
      return FALSE;
  }
  if (server_ice != NULL && !ferry_ice_config_add_ice_servers(cfg, server_ice, error))
    return FALSE;
  return TRUE;
}

static Opts *
opts_new(const FerryConnectOptions *in, GError **error)
{
  FerryConnectOptions defaults;
  const char *url;
  Opts *o;

  if (in == NULL) {
    ferry_connect_options_init(&defaults);
    in = &defaults;
  }
  url = in->server_url != NULL ? in->server_url : g_getenv("FERRY_SERVER");
  if (url == NULL || *url == '\0') {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "no ferry server given: pass its URL (--server https://HOST) or set "
                    "FERRY_SERVER");
    return NULL;
  }
  o = g_rc_box_new0(Opts);
  o->url = ferry_signal_url_normalise(url, error);
  o->ice_servers = g_strdupv((char **)in->ice_servers);
  o->force_relay = in->force_relay;
  o->no_relay = in->no_relay;
  o->include_loopback = in->include_loopback;
  o->max_failures = in->max_failures ? in->max_failures : FERRY_CONNECT_DEFAULT_MAX_FAILURES;
  o->queued = in->queued;
  o->queued_user_data = in->queued_user_data;
  o->code_words = in->code_words ? in->code_words : FERRY_CODE_DEFAULT_WORDS;
  o->words = g_strdup(in->words);
  o->max_receivers = in->max_receivers ? in->max_receivers : 1;
  o->conn_window = in->conn_window_bytes;
  o->stream_window = in->stream_window_bytes;
  o->max_streams = in->max_incoming_streams;
  o->ice_timeout_ms = in->ice_timeout_ms;
  o->hs_timeout_ms = in->quic_handshake_timeout_ms;
  o->idle_timeout_ms = in->quic_idle_timeout_ms;
  o->connect_timeout_ms =
      in->connect_timeout_ms ? in->connect_timeout_ms : FERRY_CONNECT_DEFAULT_TIMEOUT_MS;
  o->cc = FERRY_QUIC_CC_BBR;
  if (o->url == NULL)
    goto fail;
  o->cc_chosen = in->congestion_control != NULL;
  if (o->cc_chosen && !ferry_quic_cc_parse(in->congestion_control, &o->cc, error))
    goto fail;
  if (o->code_words < FERRY_CODE_MIN_WORDS || o->code_words > FERRY_CODE_MAX_WORDS) {
    ferry_set_error(error, FERRY_ERR_INVALID, "a code has %d to %d words, not %u",
                    FERRY_CODE_MIN_WORDS, FERRY_CODE_MAX_WORDS, o->code_words);
    goto fail;
  }
  /* Let ICE judge the servers and the relay flags now, not after a join. */
  {
    FerryIceConfig cfg;
    gboolean ok = opts_ice_config(o, FERRY_ICE_CONTROLLING, NULL, &cfg, error);
    if (ok && o->force_relay && o->no_relay)
      ok = ferry_set_error(error, FERRY_ERR_INVALID,
                           "--force-relay and --no-relay contradict each other: give one");
    ferry_ice_config_clear(&cfg);
    if (!ok)
      goto fail;
  }
  return o;
fail:
  g_rc_box_release_full(o, opts_clear);
  return NULL;
}

gboolean
ferry_connect_options_check(const FerryConnectOptions *options, GError **error)
{
  Opts *o = opts_new(options, error);
  if (o == NULL)
    return FALSE;
  g_rc_box_release_full(o, opts_clear);
  return TRUE;
}

/* ---- connection state --------------------------------------------------- */

typedef enum {
  EV_HANDSHAKE,
  EV_OPENED,
  EV_DATA,
  EV_WRITABLE,
  EV_STREAM_CLOSED,
  EV_CLOSED,
} EvKind;

typedef struct {
  EvKind kind;
  FerryStream *s;   /* a reference */
  GByteArray *data; /* EV_DATA: bytes of one or more stream_data callbacks */
  gboolean fin;
  gboolean aborted;
  guint64 code;
  GError *error;
} Ev;

typedef enum {
  CONN_SIGNALING, /* waiting for the server or the PAKE */
  CONN_ICE,       /* the link is ready, ICE is looking for a path */
  CONN_QUIC,      /* QUIC handshake and channel binding */
  CONN_OPEN,      /* authenticated, handed over */
  CONN_FAILED,
} ConnState;

struct _FerryStream {
  gint ref;
  FerryConnection *conn;
  FerryQuicStream *qs;
  FerryStreamHandlers h;
  gpointer user_data;
  gboolean auth;   /* stream 0: the channel binding */
  gboolean closed; /* the closed event was delivered */
};

struct _FerryConnection {
  Opts *opts;
  gboolean sender;
  ConnState state;
  GMainContext *ctx;
  gint64 started_us;

  /* handshake */
  FerryListener *listener; /* sender side: the listener that made us */
  FerryListener *slot_of;  /* sender side, handed over: whose receiver slot we hold */
  GTask *task;             /* receiver side */
  FerrySignalClient *sig;  /* receiver side: ours; sender side: the listener's */
  char *peer;              /* the server's name for the peer ("s", "r1") */
  char *receiver_id;       /* "rN" */
  char *nameplate;
  char *words;
  JsonNode *server_ice; /* ice_servers from claimed/joined */
  FerryPeerLink *link;
  FerryIce *ice;
  guint n_secrets;
  /* ICE round: 1 with every candidate type; 2, after round 1 failed (on
   * either side), with relayed candidates only. */
  guint ice_round;
  char *round1_error; /* why round 1 failed, for the message if round 2 fails too */
  GSource *round2_source;
  GPtrArray *early; /* GBytes: datagrams that came before QUIC */
  /* Birthday punching beside ICE (net/punch.h): while it may still give a
   * direct path, the sender does not start QUIC on a relayed ICE pair
   * (ready_held) and the receiver waits for the sender's first datagram,
   * whichever way it comes. */
  FerryPunch *punch;
  gboolean ready_held;
  char *ice_failure; /* ICE gave up while the punch still ran: the message, if it does too */
  GSource *timeout_source;
  GSource *cancel_source;
  GSource *free_source; /* deferred free after a failure */
  GSource *sig_source;  /* receiver: frees the signaling client once it has left */

  /* QUIC */
  FerryQuic *quic;
  gboolean direct;
  gboolean peer_gave_up;  /* the peer's "gave-up" line ended this attempt */
  gboolean relay_on_host; /* relayed, and every hop of ours on this host: probe */
  gsize relay_payload;    /* the largest probe the peer echoed, 0 before */
  FerryConnectionPath path;
  guint8 auth_key[FERRY_LINK_KEY_LEN];
  guint8 expect_mac[AUTH_MAC_LEN];
  guint8 peer_mac[AUTH_MAC_LEN];
  gsize peer_mac_len;
  gboolean peer_mac_fin;
  gboolean handshake_done;
  gboolean mac_sent;
  FerryStream *auth_stream;

  /* events from the QUIC thread */
  GMutex lock;
  GQueue events; /* Ev*, under lock */
  GQueue spare;  /* GByteArray* of DATA_PIECE bytes for data events, under lock */
  GSource *dispatch;
  gint wake_pending;   /* data queued; wake the main context at the round's end */
  GQueue held;         /* Ev*: application events before delivery starts */
  gboolean delivering; /* the caller has the connection */
  gboolean closed_delivered;
  GHashTable *streams; /* FerryStream* → NULL: the references conn holds */
  FerryConnectionHandlers h;
  gpointer user_data;
};

struct _FerryListener {
  Opts *opts;
  FerryListenerHandlers h;
  gpointer user_data;
  FerrySignalClient *sig;
  FerryCode code;
  char *code_text;
  char *nameplate;
  JsonNode *server_ice;
  GHashTable *attempts;   /* peer id → FerryConnection* under way */
  GHashTable *serving;    /* FerryConnection* handed over and not yet over */
  FerryListener *partner; /* shares max_receivers with us (ferry_listener_share_slots()) */
  GQueue waiting;         /* char *: peers that joined while every slot was taken */
  GSource *queue_source;  /* re-sends the waiting peers their place */
  GSource *next_source;   /* starts the next waiting peer (from an idle) */
  guint failures;
  gboolean stopping; /* no more joins accepted */
  gboolean closed;   /* the closed handler ran */
  GError *close_error;
};

static void conn_fail(FerryConnection *c, int code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void conn_free_internal(FerryConnection *c);
static void listener_attempt_done(FerryListener *l, FerryConnection *c, const GError *error);
static void conn_release_slot(FerryConnection *c);
static void start_ice(FerryConnection *c);
static void schedule_round2(FerryConnection *c);
static void on_link_secret_round(FerryConnection *c, const char *text);
static void listener_schedule_next(FerryListener *l);

static void
drop_source(GSource **source)
{
  if (*source != NULL) {
    g_source_destroy(*source);
    g_clear_pointer(source, g_source_unref);
  }
}

static void
ev_free(Ev *e)
{
  if (e->s != NULL)
    ferry_stream_unref(e->s);
  if (e->data != NULL)
    g_byte_array_unref(e->data);
  g_clear_error(&e->error);
  g_free(e);
}

/* Most data arrive one datagram at a time: consecutive data of one stream
 * are appended to the event already waiting (up to a bound), and the main
 * context is woken only when the queue goes from empty to not empty, so a
 * busy stream costs one wake-up and one copy per batch, not per packet.
 * Each data event's buffer holds DATA_PIECE bytes from the start (growing
 * one by realloc copied every byte again) and is used again once
 * delivered: a few stay spare, so the pages are not faulted in anew. */
#define DATA_PIECE            (1024 * 1024)
#define MAX_SPARE_PIECES      8
#define MAX_COALESCE_LOOKBACK 64

/* Frees a delivered event; its data buffer becomes a spare one. */
static void
ev_recycle(FerryConnection *c, Ev *e)
{
  GByteArray *piece = e->data;
  if (piece != NULL && piece->len <= DATA_PIECE) {
    e->data = NULL;
    g_byte_array_set_size(piece, 0);
    g_mutex_lock(&c->lock);
    if (c->spare.length < MAX_SPARE_PIECES) {
      g_queue_push_head(&c->spare, piece);
      piece = NULL;
    }
    g_mutex_unlock(&c->lock);
    if (piece != NULL)
      g_byte_array_unref(piece);
  }
  ev_free(e);
}

/* ---- streams ------------------------------------------------------------ */

static FerryStream *
stream_new(FerryConnection *c, FerryQuicStream *qs)
{
  FerryStream *s = g_new0(FerryStream, 1);
  s->ref = 1;
  s->conn = c;
  s->qs = qs;
  return s;
}

FerryStream *
ferry_stream_ref(FerryStream *s)
{
  g_atomic_int_inc(&s->ref);
  return s;
}

void
ferry_stream_unref(FerryStream *s)
{
  if (s == NULL || !g_atomic_int_dec_and_test(&s->ref))
    return;
  if (s->qs != NULL)
    ferry_quic_stream_unref(s->qs);
  g_free(s);
}

void
ferry_stream_set_handlers(FerryStream *s, const FerryStreamHandlers *h, gpointer user_data)
{
  if (h != NULL)
    s->h = *h;
  else
    memset(&s->h, 0, sizeof s->h);
  s->user_data = user_data;
}

gssize
ferry_stream_write(FerryStream *s, const void *data, gsize len, GError **error)
{
  if (s->qs == NULL || s->closed || s->conn->quic == NULL) {
    ferry_set_error(error, FERRY_ERR_STATE, "cannot write: the stream has ended");
    return -1;
  }
  return ferry_quic_stream_write(s->qs, data, len, error);
}

gboolean
ferry_stream_write_bytes(FerryStream *s, GBytes *bytes, GError **error)
{
  if (s->qs == NULL || s->closed || s->conn->quic == NULL) {
    ferry_set_error(error, FERRY_ERR_STATE, "cannot write: the stream has ended");
    return FALSE;
  }
  return ferry_quic_stream_write_bytes(s->qs, bytes, error);
}

void
ferry_stream_finish(FerryStream *s)
{
  if (s->qs != NULL && !s->closed)
    ferry_quic_stream_finish(s->qs);
}

void
ferry_stream_reset(FerryStream *s, guint64 app_error_code)
{
  if (s->qs != NULL && !s->closed)
    ferry_quic_stream_reset(s->qs, app_error_code);
}

gsize
ferry_stream_get_queued(FerryStream *s)
{
  return s->qs != NULL ? ferry_quic_stream_get_queued(s->qs) : 0;
}

FerryConnection *
ferry_stream_get_connection(FerryStream *s)
{
  return s->conn;
}

/* ---- QUIC callbacks: on the QUIC thread, they only queue ---------------- */

static GByteArray *
take_piece(FerryConnection *c)
{
  g_mutex_lock(&c->lock);
  GByteArray *piece = g_queue_pop_head(&c->spare);
  g_mutex_unlock(&c->lock);
  return piece != NULL ? piece : g_byte_array_sized_new(DATA_PIECE);
}

static void
post_full(FerryConnection *c, EvKind kind, FerryStream *s, const guint8 *buf, gsize len,
          gboolean fin, gboolean aborted, guint64 code, const GError *error)
{
  g_mutex_lock(&c->lock);
  /* The stream's latest event, if it is data, takes these bytes too: the
   * streams of a transfer interleave packet by packet, so looking only at
   * the tail would make one event per datagram. */
  if (kind == EV_DATA) {
    guint looked = 0;
    for (GList *l = c->events.tail; l != NULL && looked < MAX_COALESCE_LOOKBACK;
         l = l->prev, looked++) {
      Ev *e = l->data;
      if (e->s != s)
        continue;
      if (e->kind == EV_DATA && !e->fin && e->data->len + len <= DATA_PIECE) {
        g_byte_array_append(e->data, buf, (guint)len);
        e->fin = fin;
        g_mutex_unlock(&c->lock);
        return;
      }
      break;
    }
  }
  g_mutex_unlock(&c->lock);

  Ev *e = g_new0(Ev, 1);
  e->kind = kind;
  e->s = s != NULL ? ferry_stream_ref(s) : NULL;
  if (kind == EV_DATA) {
    e->data = len <= DATA_PIECE ? take_piece(c) : g_byte_array_sized_new((guint)len);
    g_byte_array_append(e->data, buf, (guint)len);
  }
  e->fin = fin;
  e->aborted = aborted;
  e->code = code;
  e->error = error != NULL ? g_error_copy(error) : NULL;
  g_mutex_lock(&c->lock);
  gboolean was_empty = g_queue_is_empty(&c->events);
  g_queue_push_tail(&c->events, e);
  g_mutex_unlock(&c->lock);
  /* Data and room to write come in the I/O thread's rounds: the main
   * context is woken once at the end of the round (q_round_done), so it
   * finds the whole round's bytes in one event per stream. */
  if (kind == EV_DATA || kind == EV_WRITABLE)
    g_atomic_int_set(&c->wake_pending, 1);
  else if (was_empty)
    g_source_set_ready_time(c->dispatch, 0);
}

static void
q_round_done(FerryQuic *q, gpointer data)
{
  FerryConnection *c = data;
  if (g_atomic_int_compare_and_exchange(&c->wake_pending, 1, 0))
    g_source_set_ready_time(c->dispatch, 0);
}

static void
post(FerryConnection *c, EvKind kind, FerryStream *s, gboolean fin, gboolean aborted, guint64 code,
     const GError *error)
{
  post_full(c, kind, s, NULL, 0, fin, aborted, code, error);
}

static void
q_handshake_done(FerryQuic *q, gpointer data)
{
  post(data, EV_HANDSHAKE, NULL, FALSE, FALSE, 0, NULL);
}

static void
q_stream_opened(FerryQuic *q, FerryQuicStream *qs, gpointer data)
{
  FerryConnection *c = data;
  FerryStream *s = stream_new(c, ferry_quic_stream_ref(qs));
  s->auth = ferry_quic_stream_get_id(qs) == 0;
  ferry_quic_stream_set_user_data(qs, s);
  post(c, EV_OPENED, s, FALSE, FALSE, 0, NULL);
  ferry_stream_unref(s); /* the event holds it now; then conn->streams */
}

static void
q_stream_data(FerryQuic *q, FerryQuicStream *qs, const guint8 *buf, gsize len, gboolean fin,
              gpointer data)
{
  FerryStream *s = ferry_quic_stream_get_user_data(qs);
  if (s != NULL)
    post_full(data, EV_DATA, s, buf, len, fin, FALSE, 0, NULL);
}

static void
q_stream_writable(FerryQuic *q, FerryQuicStream *qs, gpointer data)
{
  FerryStream *s = ferry_quic_stream_get_user_data(qs);
  if (s != NULL)
    post(data, EV_WRITABLE, s, FALSE, FALSE, 0, NULL);
}

static void
q_stream_closed(FerryQuic *q, FerryQuicStream *qs, gboolean aborted, guint64 code, gpointer data)
{
  FerryStream *s = ferry_quic_stream_get_user_data(qs);
  if (s != NULL)
    post(data, EV_STREAM_CLOSED, s, FALSE, aborted, code, NULL);
}

static void
q_closed(FerryQuic *q, const GError *error, gpointer data)
{
  post(data, EV_CLOSED, NULL, FALSE, FALSE, 0, error);
}

/* ---- the channel binding ------------------------------------------------ */

/* MAC = HMAC-SHA-256(key = BLAKE2b(K, "ferry-v1 quic-auth"),
 *                    "sender" or "receiver" ‖ TLS exporter (32 bytes)). */
static void
binding_mac(const guint8 key[FERRY_LINK_KEY_LEN], const char *role, const guint8 exporter[32],
            guint8 out[AUTH_MAC_LEN])
{
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, key, FERRY_LINK_KEY_LEN);
  crypto_auth_hmacsha256_update(&st, (const guint8 *)role, strlen(role));
  crypto_auth_hmacsha256_update(&st, exporter, 32);
  crypto_auth_hmacsha256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

static void conn_authenticated(FerryConnection *c);

/* Moves the binding on after any relevant event: send ours once the
 * handshake is done and stream 0 exists, verify the peer's once its 32
 * bytes and fin are in. */
static void
auth_progress(FerryConnection *c)
{
  GError *error = NULL;

  if (c->state != CONN_QUIC || !c->handshake_done)
    return;
  if (!c->mac_sent) {
    guint8 exporter[32], mine[AUTH_MAC_LEN];
    if (!c->sender && c->auth_stream == NULL)
      return; /* the receiver answers on the sender's stream 0 */
    if (!ferry_quic_export_keying_material(c->quic, EXPORTER_LABEL, exporter, sizeof exporter,
                                           &error)) {
      conn_fail(c, FERRY_ERR_CRYPTO, "cannot bind the code to the QUIC connection: %s",
                error->message);
      g_error_free(error);
      return;
    }
    binding_mac(c->auth_key, c->sender ? "sender" : "receiver", exporter, mine);
    binding_mac(c->auth_key, c->sender ? "receiver" : "sender", exporter, c->expect_mac);
    sodium_memzero(exporter, sizeof exporter);
    if (c->sender) {
      FerryStream *s = stream_new(c, NULL);
      s->auth = TRUE;
      s->qs = ferry_quic_stream_open(c->quic, s, &error);
      if (s->qs == NULL) {
        g_free(s);
        conn_fail(c, ERR_FAILED, "the QUIC connection ended during authentication: %s",
                  error->message);
        g_error_free(error);
        return;
      }
      c->auth_stream = s;
      g_hash_table_add(c->streams, s);
    }
    if (ferry_quic_stream_write(c->auth_stream->qs, mine, sizeof mine, NULL) !=
        (gssize)sizeof mine) {
      conn_fail(c, ERR_FAILED, "the QUIC connection ended during authentication");
      return;
    }
    ferry_quic_stream_finish(c->auth_stream->qs);
    c->mac_sent = TRUE;
  }
  if (c->peer_mac_fin) {
    if (c->peer_mac_len != AUTH_MAC_LEN || crypto_verify_32(c->peer_mac, c->expect_mac) != 0) {
      ferry_quic_close(c->quic, APP_ERR_AUTH, "channel binding failed");
      conn_fail(c, FERRY_ERR_AUTH,
                "the other side could not prove it holds the code on this connection: someone "
                "may be relaying or intercepting it; nothing was sent. Get a new code and try "
                "again");
      return;
    }
    conn_authenticated(c);
  }
}

static void
auth_data(FerryConnection *c, const guint8 *data, gsize len, gboolean fin)
{
  if (c->peer_mac_len > sizeof c->peer_mac || len > sizeof c->peer_mac - c->peer_mac_len) {
    c->peer_mac_len = sizeof c->peer_mac + 1; /* too long: fails the check */
  } else if (len > 0) {
    memcpy(c->peer_mac + c->peer_mac_len, data, len);
    c->peer_mac_len += len;
  }
  if (fin)
    c->peer_mac_fin = TRUE;
}

/* ---- delivering events on the main context ------------------------------ */

static GError *
stream_error(gboolean aborted, guint64 code)
{
  if (!aborted)
    return NULL;
  return g_error_new(FERRY_ERROR, FERRY_ERROR_FAILED,
                     "the stream was reset (application error %" G_GUINT64_FORMAT ")", code);
}

/* Delivers one application event to the caller's handlers. */
static void
deliver(FerryConnection *c, Ev *e)
{
  FerryStream *s = e->s;
  switch (e->kind) {
  case EV_OPENED:
    if (c->h.stream_opened != NULL)
      c->h.stream_opened(c, s, c->user_data);
    else
      ferry_quic_stream_reset(s->qs, 0);
    break;
  case EV_DATA: {
    gsize len = e->data->len;
    const guint8 *p = e->data->data;
    if (s->h.data != NULL && !s->closed)
      s->h.data(s, p, len, e->fin, s->user_data);
    if (len > 0 && s->qs != NULL)
      ferry_quic_stream_consume(s->qs, len);
    break;
  }
  case EV_WRITABLE:
    if (s->h.writable != NULL && !s->closed)
      s->h.writable(s, s->user_data);
    break;
  case EV_STREAM_CLOSED: {
    GError *error = stream_error(e->aborted, e->code);
    if (!s->closed) {
      s->closed = TRUE;
      if (s->h.closed != NULL)
        s->h.closed(s, error, s->user_data);
    }
    g_clear_error(&error);
    g_hash_table_remove(c->streams, s);
    break;
  }
  case EV_CLOSED:
    conn_release_slot(c);
    if (!c->closed_delivered) {
      c->closed_delivered = TRUE;
      if (c->h.closed != NULL)
        c->h.closed(c, e->error, c->user_data);
    }
    break;
  case EV_HANDSHAKE:
    break;
  }
}

/* ---- datagram size probes on a relayed path (protocol.md §7.2.1) ------- */

static void
send_relay_probes(FerryConnection *c)
{
  guint8 *buf;

  if (!c->relay_on_host || c->ice == NULL)
    return;
  buf = g_malloc(RELAY_PROBE_MAX);
  for (guint i = 0; i < G_N_ELEMENTS(relay_probe_sizes); i++)
    ferry_ice_send(c->ice, buf, ferry_relay_probe_write(buf, relay_probe_sizes[i], FALSE), NULL);
  g_free(buf);
}

/* A probe or an echo of one: returns FALSE for any other datagram. A
 * probe is echoed only where our own hops stay on this host too, so a
 * size grows only when the whole path is known to be here. */
static gboolean
take_relay_probe(FerryConnection *c, const guint8 *data, gsize len)
{
  guint8 echo[FERRY_RELAY_PROBE_HEADER];
  guint16 size = 0;
  FerryRelayProbeKind kind = ferry_relay_probe_parse(data, len, &size);

  if (kind == FERRY_RELAY_PROBE_NONE)
    return FALSE;
  if (kind == FERRY_RELAY_PROBE_PROBE && c->relay_on_host) {
    ferry_ice_send(c->ice, echo, ferry_relay_probe_write(echo, size, TRUE), NULL);
  } else if (kind == FERRY_RELAY_PROBE_ECHO && c->relay_on_host && c->quic != NULL &&
             size > c->relay_payload) {
    gboolean ours = FALSE;
    for (guint i = 0; i < G_N_ELEMENTS(relay_probe_sizes); i++)
      ours |= relay_probe_sizes[i] == size;
    if (ours) {
      c->relay_payload = size;
      ferry_quic_set_udp_payload(c->quic, size);
      g_info("the relayed path carries %u-byte datagrams", size);
    }
  }
  return TRUE;
}

/* Whether packets to a stay on this host: it is one of our addresses. */
static gboolean
on_host(GInetSocketAddress *a)
{
  struct sockaddr_storage ss;

  return a != NULL && g_socket_address_to_native(G_SOCKET_ADDRESS(a), &ss, sizeof ss, NULL) &&
         ferry_udp_same_host_payload(
             -1, (struct sockaddr *)&ss,
             (socklen_t)g_socket_address_get_native_size(G_SOCKET_ADDRESS(a)),
             RELAY_PROBE_MAX) == RELAY_PROBE_MAX;
}

/* Whether our hops of a relayed path stay on this host: the address our
 * packets go to, and our TURN server when we send through one. */
static gboolean
relay_hops_on_host(const FerryIcePath *ip)
{
  return on_host(ip->remote) &&
         (ip->local_type != FERRY_ICE_CANDIDATE_RELAY || on_host(ip->turn_address));
}

/* A QUIC event while authenticating: the binding's own events are used
 * here. Returns FALSE for an application event the caller must get
 * later. */
static gboolean
handle_auth_event(FerryConnection *c, Ev *e)
{
  switch (e->kind) {
  case EV_HANDSHAKE:
    c->handshake_done = TRUE;
    /* Again, now that the peer surely listens. */
    send_relay_probes(c);
    auth_progress(c);
    return TRUE;
  case EV_OPENED:
    if (!e->s->auth)
      return FALSE;
    if (!c->sender && c->auth_stream == NULL) {
      c->auth_stream = e->s;
      auth_progress(c);
    }
    return TRUE;
  case EV_DATA:
    if (!e->s->auth)
      return FALSE;
    {
      gsize len = e->data->len;
      const guint8 *p = e->data->data;
      auth_data(c, p, len, e->fin);
      if (len > 0)
        ferry_quic_stream_consume(e->s->qs, len);
    }
    auth_progress(c);
    return TRUE;
  case EV_WRITABLE:
    return e->s->auth;
  case EV_STREAM_CLOSED:
    if (!e->s->auth)
      return FALSE;
    if (e->aborted)
      conn_fail(c, FERRY_ERR_AUTH,
                "the other side gave up the authentication of the QUIC connection: check that "
                "both sides use the same code");
    return TRUE;
  case EV_CLOSED: {
    guint64 app = 0;
    FerryQuicEnd end = ferry_quic_get_end(c->quic, &app);
    if (end == FERRY_QUIC_END_PEER && app == APP_ERR_AUTH)
      conn_fail(c, FERRY_ERR_AUTH,
                "the other side refused this connection: it could not verify that we hold the "
                "code on it (someone may be relaying or intercepting it); get a new code and try "
                "again");
    else
      conn_fail(c, ERR_FAILED, "the QUIC connection to the other side failed: %s",
                e->error != NULL ? e->error->message : "it was closed during the handshake");
    return TRUE;
  }
  }
  return FALSE;
}

/* Takes e: uses it, holds it for later, or frees it. */
static void
handle_event(FerryConnection *c, Ev *e)
{
  gboolean used = FALSE;

  if (e->kind == EV_OPENED && e->s != NULL && !g_hash_table_contains(c->streams, e->s))
    g_hash_table_add(c->streams, ferry_stream_ref(e->s));
  if (e->s != NULL && e->s->auth && e->kind == EV_STREAM_CLOSED && c->state != CONN_QUIC) {
    if (c->auth_stream == e->s)
      c->auth_stream = NULL;
    g_hash_table_remove(c->streams, e->s);
    used = TRUE;
  } else if (c->state == CONN_FAILED) {
    if (e->kind == EV_STREAM_CLOSED)
      g_hash_table_remove(c->streams, e->s);
    used = TRUE;
  } else if (c->state != CONN_OPEN || e->kind == EV_HANDSHAKE || (e->s != NULL && e->s->auth)) {
    used = c->state == CONN_OPEN || handle_auth_event(c, e);
  }
  if (used) {
    ev_recycle(c, e);
  } else if (!c->delivering) {
    g_queue_push_tail(&c->held, e);
  } else {
    deliver(c, e);
    ev_recycle(c, e);
  }
}

static gboolean
dispatch_cb(gpointer data)
{
  FerryConnection *c = data;

  g_source_set_ready_time(c->dispatch, -1);
  while (c->delivering && !g_queue_is_empty(&c->held)) {
    Ev *e = g_queue_pop_head(&c->held);
    deliver(c, e);
    ev_recycle(c, e);
  }
  for (;;) {
    g_mutex_lock(&c->lock);
    Ev *e = g_queue_pop_head(&c->events);
    g_mutex_unlock(&c->lock);
    if (e == NULL)
      break;
    handle_event(c, e);
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
dispatch_source_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
  return callback(data);
}

static GSourceFuncs dispatch_funcs = {NULL, NULL, dispatch_source_dispatch, NULL, NULL, NULL};

/* ---- making and freeing ------------------------------------------------- */

static FerryConnection *
conn_new(Opts *opts, gboolean sender)
{
  FerryConnection *c = g_new0(FerryConnection, 1);
  c->opts = g_rc_box_acquire(opts);
  c->sender = sender;
  c->ctx = g_main_context_ref_thread_default();
  c->started_us = g_get_monotonic_time();
  g_mutex_init(&c->lock);
  g_queue_init(&c->events);
  g_queue_init(&c->spare);
  g_queue_init(&c->held);
  c->streams = g_hash_table_new_full(NULL, NULL, (GDestroyNotify)ferry_stream_unref, NULL);
  c->early = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
  c->dispatch = g_source_new(&dispatch_funcs, sizeof(GSource));
  g_source_set_callback(c->dispatch, dispatch_cb, c, NULL);
  g_source_set_name(c->dispatch, "ferry connection events");
  g_source_attach(c->dispatch, c->ctx);
  return c;
}

/* Frees everything of the handshake that an open connection no longer
 * needs. */
static void
conn_drop_handshake(FerryConnection *c)
{
  drop_source(&c->timeout_source);
  drop_source(&c->cancel_source);
  g_clear_pointer(&c->link, ferry_peer_link_free);
  if (c->sender)
    c->sig = NULL;
  g_clear_pointer(&c->server_ice, json_node_unref);
  g_clear_pointer(&c->words, g_free);
  g_clear_pointer(&c->punch, ferry_punch_free);
  g_ptr_array_set_size(c->early, 0);
}

static void
conn_free_internal(FerryConnection *c)
{
  conn_release_slot(c);
  drop_source(&c->round2_source);
  g_clear_pointer(&c->round1_error, g_free);
  g_clear_pointer(&c->ice_failure, g_free);
  drop_source(&c->free_source);
  drop_source(&c->sig_source);
  conn_drop_handshake(c);
  g_clear_pointer(&c->sig, ferry_signal_client_free);
  if (c->quic != NULL)
    ferry_quic_free(c->quic); /* joins its thread: no callback after this */
  c->quic = NULL;
  g_clear_pointer(&c->ice, ferry_ice_free);
  g_source_destroy(c->dispatch);
  g_source_unref(c->dispatch);
  g_queue_clear_full(&c->events, (GDestroyNotify)ev_free);
  g_queue_clear_full(&c->held, (GDestroyNotify)ev_free);
  g_hash_table_destroy(c->streams);
  g_ptr_array_free(c->early, TRUE);
  g_clear_object(&c->task);
  sodium_memzero(c->auth_key, sizeof c->auth_key);
  g_free(c->peer);
  g_free(c->receiver_id);
  g_free(c->nameplate);
  g_queue_clear_full(&c->spare, (GDestroyNotify)g_byte_array_unref);
  g_mutex_clear(&c->lock);
  g_main_context_unref(c->ctx);
  g_rc_box_release_full(c->opts, opts_clear);
  g_free(c);
}

static gboolean
deferred_free(gpointer data)
{
  FerryConnection *c = data;
  g_clear_pointer(&c->free_source, g_source_unref);
  conn_free_internal(c);
  return G_SOURCE_REMOVE;
}

/* The attempt is over without a connection: tell whoever waits, once,
 * and free everything from the main loop (we may be inside a callback of
 * the link, ICE or the signaling client). */
static void
conn_fail(FerryConnection *c, int code, const char *fmt, ...)
{
  GError *error;
  va_list ap;

  if (c->state == CONN_FAILED || c->state == CONN_OPEN)
    return;
  c->state = CONN_FAILED;
  va_start(ap, fmt);
  char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  /* Tell the peer why (docs/protocol.md §7.1): whichever side gives up
   * first, the other reports the reason, not just our leaving. */
  if (c->link != NULL && !c->peer_gave_up && ferry_peer_link_is_keyed(c->link)) {
    char *line = g_strdup_printf("gave-up %.*s", GAVE_UP_MAX, msg);
    ferry_peer_link_send_secret(c->link, line, strlen(line));
    g_free(line);
  }
  error = g_error_new_literal(FERRY_ERROR, -code, msg);
  g_free(msg);
  g_debug("connection to %s failed: %s", c->peer ? c->peer : "the sender", error->message);
  drop_source(&c->timeout_source);
  if (c->quic != NULL)
    ferry_quic_close(c->quic, code == FERRY_ERR_AUTH ? APP_ERR_AUTH : 1, "giving up");
  if (c->listener != NULL) {
    listener_attempt_done(c->listener, c, error);
  } else if (c->task != NULL) {
    GTask *task = g_steal_pointer(&c->task);
    g_task_return_error(task, error);
    g_object_unref(task);
    error = NULL;
  }
  g_clear_error(&error);
  /* A receiver leaves the session first, so that its place is free for
   * the next try at once; "left" (or 1 s) then frees everything. */
  if (!c->sender && c->sig != NULL) {
    ferry_signal_client_leave(c->sig);
    c->free_source = g_timeout_source_new(1000);
  } else {
    c->free_source = g_idle_source_new();
  }
  g_source_set_callback(c->free_source, deferred_free, c, NULL);
  g_source_attach(c->free_source, c->ctx);
}

static void
conn_cancel_error(FerryConnection *c)
{
  if (c->state == CONN_FAILED || c->state == CONN_OPEN)
    return;
  if (c->task != NULL) {
    GTask *task = g_steal_pointer(&c->task);
    g_task_return_new_error(task, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                            "connecting to the sender was cancelled");
    g_object_unref(task);
  }
  conn_fail(c, ERR_FAILED, "cancelled");
}

static gboolean
on_timeout(gpointer data)
{
  FerryConnection *c = data;
  g_clear_pointer(&c->timeout_source, g_source_unref);
  if (c->state == CONN_SIGNALING && c->sig != NULL &&
      ferry_signal_client_get_state(c->sig) != FERRY_SIGNAL_CLIENT_CONNECTED) {
    conn_fail(c, FERRY_ERR_IO,
              "no connection within %.0f s: the ferry server %s does not answer; check the "
              "address (--server) or try again later",
              c->opts->connect_timeout_ms / 1000.0, c->opts->url);
    return G_SOURCE_REMOVE;
  }
  const char *where = c->state == CONN_SIGNALING ? "the code exchange (PAKE) with the other side"
                      : c->state == CONN_ICE     ? "finding a network path (ICE)"
                                                 : "the QUIC handshake";
  conn_fail(c, ERR_FAILED,
            "no connection within %.0f s: stuck in %s; check that the other side is still "
            "running and try again",
            c->opts->connect_timeout_ms / 1000.0, where);
  return G_SOURCE_REMOVE;
}

static void
conn_start_timer(FerryConnection *c)
{
  c->timeout_source = g_timeout_source_new(c->opts->connect_timeout_ms);
  g_source_set_callback(c->timeout_source, on_timeout, c, NULL);
  g_source_attach(c->timeout_source, c->ctx);
}

/* The binding verified: the connection is the caller's now. */
static void
conn_authenticated(FerryConnection *c)
{
  c->state = CONN_OPEN;
  c->path.connect_ms = (g_get_monotonic_time() - c->started_us) / 1000;
  if (!c->sender && c->sig != NULL)
    ferry_signal_client_leave(c->sig);
  conn_drop_handshake(c);
  sodium_memzero(c->auth_key, sizeof c->auth_key);
  if (c->listener != NULL) {
    FerryListener *l = c->listener;
    listener_attempt_done(l, c, NULL);
    c->listener = NULL;
    if (l->h.connection != NULL)
      l->h.connection(l, c, l->user_data);
    c->delivering = TRUE;
    g_source_set_ready_time(c->dispatch, 0);
  } else {
    GTask *task = g_steal_pointer(&c->task);
    g_task_return_pointer(task, c, (GDestroyNotify)ferry_connection_free);
    g_object_unref(task);
  }
}

/* ---- QUIC over the ICE path --------------------------------------------- */

static void
ice_send_cb(const guint8 *data, gsize len, gpointer user_data)
{
  FerryConnection *c = user_data;
  /* On the QUIC thread: ice outlives the QUIC connection (freed after
   * ferry_quic_free()), and libnice's send path takes the agent lock. */
  ferry_ice_send(c->ice, data, len, NULL);
}

static void
fill_address(char *buf, gsize size, GInetSocketAddress *a)
{
  if (a == NULL) {
    g_strlcpy(buf, "?", size);
    return;
  }
  char *ip = g_inet_address_to_string(g_inet_socket_address_get_address(a));
  guint port = g_inet_socket_address_get_port(a);
  if (strchr(ip, ':') != NULL)
    g_snprintf(buf, size, "[%s]:%u", ip, port);
  else
    g_snprintf(buf, size, "%s:%u", ip, port);
  g_free(ip);
}

static void run_quic(FerryConnection *c, FerryQuicTransport *t, gsize datagram);

/* QUIC on the path ICE selected. */
static void
start_quic(FerryConnection *c)
{
  FerryQuicTransport *t = NULL;
  FerryIcePath ip;
  GError *error = NULL;
  gsize datagram = 0;

  g_clear_pointer(&c->punch, ferry_punch_free);
  if (!ferry_ice_get_path(c->ice, &ip, &error)) {
    conn_fail(c, ERR_FAILED, "%s", error->message);
    g_error_free(error);
    return;
  }
  c->path.relayed = ip.relayed;
  g_strlcpy(c->path.local_type, ferry_ice_candidate_type_to_string(ip.local_type),
            sizeof c->path.local_type);
  g_strlcpy(c->path.remote_type, ferry_ice_candidate_type_to_string(ip.remote_type),
            sizeof c->path.remote_type);
  fill_address(c->path.local_address, sizeof c->path.local_address, ip.local);
  fill_address(c->path.remote_address, sizeof c->path.remote_address, ip.remote);
  g_strlcpy(c->path.turn_server, ip.turn_server ? ip.turn_server : "", sizeof c->path.turn_server);
  c->path.ice_ms = ip.elapsed_ms;
  c->relay_on_host = ip.relayed && relay_hops_on_host(&ip);
  ferry_ice_path_clear(&ip);

  GSocketAddress *remote = NULL;
  GSocket *sock = ferry_ice_take_socket(c->ice, &remote, &error);
  if (sock != NULL) {
    struct sockaddr_storage ss;
    int fd = dup(g_socket_get_fd(sock));
    gboolean ok = fd >= 0 && g_socket_address_to_native(remote, &ss, sizeof ss, &error);
    if (ok) {
      socklen_t len = (socklen_t)g_socket_address_get_native_size(remote);
      datagram = ferry_udp_same_host_payload(fd, (struct sockaddr *)&ss, len, SAME_HOST_DATAGRAM);
      t = ferry_udp_transport_new(fd, (struct sockaddr *)&ss, len, FERRY_UDP_CLOSE_FD, &error);
    }
    if (t == NULL && fd >= 0)
      close(fd);
    if (fd < 0)
      ferry_set_error(&error, FERRY_ERR_IO, "cannot take over the UDP socket: %s",
                      g_strerror(errno));
    g_object_unref(sock);
    g_clear_object(&remote);
    if (t == NULL) {
      conn_fail(c, FERRY_ERR_IO, "%s", error->message);
      g_error_free(error);
      return;
    }
    c->direct = TRUE;
  } else if (error != NULL) {
    conn_fail(c, ERR_FAILED, "%s", error->message);
    g_error_free(error);
    return;
  } else {
    t = ferry_quic_callback_transport_new(ice_send_cb, c, NULL);
    if (c->relay_on_host) {
      t->max_recv_datagram = RELAY_PROBE_MAX;
      datagram = RELAY_PROBE_MAX;
    }
  }
  run_quic(c, t, datagram);
}

/* QUIC over t, the transport of the path chosen; datagram is the largest
 * UDP payload the path may carry (0: QUIC's default). */
static void
run_quic(FerryConnection *c, FerryQuicTransport *t, gsize datagram)
{
  FerryQuicConfig qc;
  GError *error = NULL;

  ferry_quic_config_init(&qc, c->sender ? FERRY_QUIC_CLIENT : FERRY_QUIC_SERVER);
  qc.cc = c->opts->cc;
  /* Through a TURN relay the bottleneck is often the relay itself, with
   * shallow socket buffers (coturn's are 64 KiB). BBR v1 does not slow
   * down for loss: through coturn on loopback it kept a queue there and
   * lost about one datagram in five (bench/connect.sh, 215,000 drops for
   * 3 GiB). BBR v2 takes loss as a signal: 10,800 drops, and faster. */
  if (c->path.relayed && !c->opts->cc_chosen)
    qc.cc = FERRY_QUIC_CC_BBR2;
  if (c->opts->conn_window)
    qc.conn_window_bytes = c->opts->conn_window;
  if (c->opts->stream_window)
    qc.stream_window_bytes = c->opts->stream_window;
  if (c->opts->max_streams)
    qc.max_incoming_streams = c->opts->max_streams;
  if (c->opts->hs_timeout_ms)
    qc.handshake_timeout_ms = c->opts->hs_timeout_ms;
  /* A peer that vanished (killed, unplugged) is noticed after the idle
   * timeout; keep-alives every quarter of it keep a quiet but living
   * connection (a receiver still deciding) open. */
  qc.idle_timeout_ms = c->opts->idle_timeout_ms ? c->opts->idle_timeout_ms : IDLE_TIMEOUT_MS;
  qc.keepalive_ms = qc.idle_timeout_ms / 4;
  qc.manual_flow_control = TRUE;
  if (datagram > qc.max_udp_payload) {
    /* Through a relay, that size is allowed only once a probe shows it. */
    qc.start_udp_payload = c->relay_on_host ? qc.max_udp_payload : 0;
    qc.max_udp_payload = datagram;
  }
  qc.callbacks.handshake_done = q_handshake_done;
  qc.callbacks.stream_opened = q_stream_opened;
  qc.callbacks.stream_data = q_stream_data;
  qc.callbacks.stream_writable = q_stream_writable;
  qc.callbacks.stream_closed = q_stream_closed;
  qc.callbacks.closed = q_closed;
  qc.callbacks.round_done = q_round_done;
  qc.user_data = c;
  g_strlcpy(c->path.congestion_control, ferry_quic_cc_name(qc.cc),
            sizeof c->path.congestion_control);
  c->state = CONN_QUIC;
  c->quic = ferry_quic_new(&qc, t, &error);
  if (c->quic == NULL) {
    conn_fail(c, ERR_FAILED, "cannot start QUIC: %s", error->message);
    g_error_free(error);
    return;
  }
  for (guint i = 0; i < c->early->len; i++) {
    gsize len;
    const guint8 *p = g_bytes_get_data(c->early->pdata[i], &len);
    ferry_quic_push_datagram(c->quic, p, len);
  }
  g_ptr_array_set_size(c->early, 0);
  send_relay_probes(c);
}

/* Datagrams through the agent: to QUIC when it runs, else kept. The
 * receiver (QUIC server) of a direct pair takes the socket over at the
 * first one — proof that the sender is READY too (net/ice.h). */
static void
on_ice_recv(FerryIce *ice, const guint8 *data, gsize len, gpointer user_data)
{
  FerryConnection *c = user_data;
  if (!c->direct && take_relay_probe(c, data, len))
    return;
  if (c->quic != NULL) {
    ferry_quic_push_datagram(c->quic, data, len);
    return;
  }
  if (c->state == CONN_FAILED || c->early->len >= MAX_EARLY)
    return;
  g_ptr_array_add(c->early, g_bytes_new(data, len));
  if (c->state == CONN_ICE && ferry_ice_get_state(ice) == FERRY_ICE_READY)
    start_quic(c);
}

static void
on_ice_candidate(FerryIce *ice, const char *candidate, gpointer user_data)
{
  FerryConnection *c = user_data;
  /* After a failure (a wrong code found while still gathering) nothing
   * more goes out: the link is dead. */
  if (c->link == NULL || c->state == CONN_FAILED || !ferry_peer_link_is_keyed(c->link))
    return;
  gboolean r2 = c->ice_round == 2;
  if (candidate == NULL) {
    ferry_peer_link_send_secret(c->link, r2 ? "end2" : "end", r2 ? 4 : 3);
    return;
  }
  char *line = g_strconcat(r2 ? "cand2 " : "cand ", candidate, NULL);
  ferry_peer_link_send_secret(c->link, line, strlen(line));
  g_free(line);
}

static void
on_ice_outcome(FerryIce *ice, FerryIceState state, const GError *error, gpointer user_data)
{
  FerryConnection *c = user_data;
  if (c->state != CONN_ICE)
    return;
  if (state == FERRY_ICE_FAILED) {
    const char *why = error != NULL ? error->message : "ICE failed";
    if (c->ice_round == 1 && !c->opts->no_relay && !c->opts->force_relay) {
      c->round1_error = g_strdup(why);
      schedule_round2(c); /* not from inside the agent's own callback */
      return;
    }
    char *msg = c->round1_error != NULL
                    ? g_strdup_printf("%s; then a try through the TURN relay only failed too: %s",
                                      c->round1_error, why)
                    : g_strdup(why);
    if (c->punch != NULL) {
      c->ice_failure = msg; /* the punch may still find a path */
      return;
    }
    conn_fail(c, ERR_FAILED, "%s", msg);
    g_free(msg);
    return;
  }
  FerryIcePath ip;
  if (!ferry_ice_get_path(ice, &ip, NULL))
    return;
  gboolean direct = ip.direct_socket;
  ferry_ice_path_clear(&ip);
  /* A punch under way may still give a direct path: the sender holds a
   * relayed pair until it is over; the receiver waits for the sender's
   * first datagram, as it always does on a direct pair. */
  if (!direct && c->punch != NULL) {
    if (c->sender)
      c->ready_held = TRUE;
    else if (c->early->len > 0)
      start_quic(c);
    return;
  }
  /* The receiver of a direct pair waits for the sender's first datagram
   * (unless one came already). */
  if (c->sender || !direct || c->early->len > 0)
    start_quic(c);
}

/* ---- birthday punching -------------------------------------------------- */

static void
punch_line(FerryPunch *p, const char *line, gpointer user_data)
{
  FerryConnection *c = user_data;
  if (c->link != NULL && c->state != CONN_FAILED && ferry_peer_link_is_keyed(c->link))
    ferry_peer_link_send_secret(c->link, line, strlen(line));
}

/* QUIC on the socket the punch made work, fd connected to peer; data is
 * the sender's first datagram when we are the receiver. */
static void
start_quic_punched(FerryConnection *c, int fd, const struct sockaddr_in *peer, const guint8 *data,
                   gsize len)
{
  GError *error = NULL;
  struct sockaddr_in local;
  socklen_t sl = sizeof local;
  GSocketAddress *a;

  c->path.ice_ms = ferry_punch_get_elapsed_ms(c->punch);
  g_clear_pointer(&c->punch, ferry_punch_free);
  c->ready_held = FALSE;
  FerryQuicTransport *t = ferry_udp_transport_new(fd, NULL, 0, FERRY_UDP_CLOSE_FD, &error);
  if (t == NULL) {
    close(fd);
    conn_fail(c, FERRY_ERR_IO, "%s", error->message);
    g_error_free(error);
    return;
  }
  c->direct = TRUE;
  c->path.relayed = FALSE;
  g_strlcpy(c->path.local_type, "punched", sizeof c->path.local_type);
  g_strlcpy(c->path.remote_type, "punched", sizeof c->path.remote_type);
  if (getsockname(fd, (struct sockaddr *)&local, &sl) == 0) {
    a = g_socket_address_new_from_native(&local, sl);
    fill_address(c->path.local_address, sizeof c->path.local_address, G_INET_SOCKET_ADDRESS(a));
    g_object_unref(a);
  }
  a = g_socket_address_new_from_native((gpointer)peer, sizeof *peer);
  fill_address(c->path.remote_address, sizeof c->path.remote_address, G_INET_SOCKET_ADDRESS(a));
  g_object_unref(a);
  c->path.turn_server[0] = '\0';
  /* ICE has nothing left to do: its checks and relay allocations go. */
  g_clear_pointer(&c->ice, ferry_ice_free);
  g_ptr_array_set_size(c->early, 0);
  if (data != NULL)
    g_ptr_array_add(c->early, g_bytes_new(data, len));
  g_info("direct path by hole punching: %s", c->path.remote_address);
  run_quic(c, t, 0);
}

static void
punch_datagram(FerryPunch *p, int fd, const struct sockaddr_in *peer, const guint8 *data, gsize len,
               gpointer user_data)
{
  FerryConnection *c = user_data;
  if (c->state != CONN_ICE) {
    close(fd);
    g_clear_pointer(&c->punch, ferry_punch_free);
    return;
  }
  start_quic_punched(c, fd, peer, data, len);
}

static void
punch_ready(FerryPunch *p, int fd, const struct sockaddr_in *peer, gpointer user_data)
{
  punch_datagram(p, fd, peer, NULL, 0, user_data);
}

/* Nothing from the punch: go on as ICE alone would. */
static void
punch_over(FerryPunch *p, const char *why, gpointer user_data)
{
  FerryConnection *c = user_data;
  g_debug("punch: %s", why);
  g_clear_pointer(&c->punch, ferry_punch_free);
  if (c->state != CONN_ICE)
    return;
  if (c->ice_failure != NULL) {
    conn_fail(c, ERR_FAILED, "%s; hole punching found no path either", c->ice_failure);
  } else if (c->ready_held) {
    c->ready_held = FALSE;
    start_quic(c);
  }
}

static const FerryPunchHandlers punch_handlers = {punch_line, punch_ready, punch_datagram,
                                                  punch_over};

/* The servers of the mapping test: every STUN server (ferry serve answers
 * on two ports), and the TURN servers reached over UDP (a TURN server
 * answers plain Binding requests too). */
static void
start_punch(FerryConnection *c)
{
  FerryIceConfig cfg;
  FerryPunchConfig pc = {0};
  GError *error = NULL;

  if (!opts_ice_config(c->opts, FERRY_ICE_CONTROLLING, c->server_ice, &cfg, NULL)) {
    ferry_ice_config_clear(&cfg);
    return;
  }
  for (guint i = 0; i < cfg.stun_servers->len && pc.n_servers < FERRY_PUNCH_MAX_SERVERS; i++) {
    FerryIceStunServer *st = cfg.stun_servers->pdata[i];
    pc.server_hosts[pc.n_servers] = st->host;
    pc.server_ports[pc.n_servers++] = st->port;
  }
  for (guint i = 0; i < cfg.turn_servers->len && pc.n_servers < FERRY_PUNCH_MAX_SERVERS; i++) {
    FerryIceTurnServer *tu = cfg.turn_servers->pdata[i];
    if (tu->transport != FERRY_ICE_TRANSPORT_UDP || c->opts->no_relay)
      continue; /* --no-relay: not a packet to a TURN server */
    pc.server_hosts[pc.n_servers] = tu->host;
    pc.server_ports[pc.n_servers++] = tu->port;
  }
  pc.sender = c->sender;
  pc.ctx = c->ctx;
  if (pc.n_servers >= 2 && ferry_peer_link_derive_key(c->link, PUNCH_LABEL, pc.key)) {
    c->punch = ferry_punch_new(&pc, &punch_handlers, c, &error);
    if (c->punch == NULL) {
      g_debug("no hole punching: %s", error->message);
      g_error_free(error);
    }
  }
  sodium_memzero(pc.key, sizeof pc.key);
  ferry_ice_config_clear(&cfg);
}

/* ---- the link: PAKE, then sealed ICE messages --------------------------- */

static void
on_link_ready(FerryPeerLink *link, gpointer user_data)
{
  FerryConnection *c = user_data;

  if (!ferry_peer_link_derive_key(link, AUTH_LABEL, c->auth_key)) {
    conn_fail(c, FERRY_ERR_STATE, "the PAKE key is missing");
    return;
  }
  c->ice_round = 1;
  start_ice(c);
  if (c->state != CONN_ICE)
    return;
  if (!c->opts->force_relay)
    start_punch(c);
  /* Without a punch of ours, say so: the peer need not wait for us. */
  if (c->punch == NULL)
    punch_line(NULL, "punch none", c);
}

/* Makes the agent of the current round, sends our credentials and starts
 * gathering (candidates go out as they come). */
static void
start_ice(FerryConnection *c)
{
  FerryIceConfig cfg;
  GError *error = NULL;
  gboolean ok = opts_ice_config(c->opts, c->sender ? FERRY_ICE_CONTROLLING : FERRY_ICE_CONTROLLED,
                                c->server_ice, &cfg, &error);
  if (ok && c->ice_round == 2)
    cfg.force_relay = TRUE;
  if (!ok || (c->ice = ferry_ice_new(&cfg, &error)) == NULL) {
    ferry_ice_config_clear(&cfg);
    if (c->round1_error != NULL)
      conn_fail(c, ERR_FAILED, "%s; a try through a TURN relay only was not possible: %s",
                c->round1_error, error->message);
    else
      conn_fail(c, error->code == FERRY_ERROR_INVALID ? FERRY_ERR_INVALID : ERR_FAILED, "%s",
                error->message);
    g_error_free(error);
    return;
  }
  ferry_ice_config_clear(&cfg);
  c->state = CONN_ICE;
  ferry_ice_set_handlers(c->ice, on_ice_candidate, on_ice_outcome, c);
  ferry_ice_set_recv_handler(c->ice, on_ice_recv, c);
  char *creds = g_strdup_printf("%s %s %s", c->ice_round == 2 ? "creds2" : "creds",
                                ferry_ice_get_local_ufrag(c->ice), ferry_ice_get_local_pwd(c->ice));
  ferry_peer_link_send_secret(c->link, creds, strlen(creds));
  g_free(creds);
  if (!ferry_ice_start(c->ice, &error)) {
    conn_fail(c, ERR_FAILED, "%s", error->message);
    g_error_free(error);
  }
}

/* Round 2: ICE with every candidate type found no working pair (this
 * happens behind some NAT pairs although a relay path exists: libnice's
 * checks of the relayed pairs can run out before both sides' TURN
 * permissions are in place). Both sides start again with relayed
 * candidates only — whichever side fails first tells the other with its
 * "creds2" line, and the other switches at once (docs/protocol.md §7.1). */
static void
switch_to_round2(FerryConnection *c)
{
  if (c->ice_round != 1 || c->state != CONN_ICE)
    return;
  drop_source(&c->round2_source);
  c->ice_round = 2;
  if (c->round1_error == NULL)
    c->round1_error = g_strdup("the other side found no working path");
  g_clear_pointer(&c->ice, ferry_ice_free);
  g_ptr_array_set_size(c->early, 0);
  g_info("no direct path: trying again through the TURN relay only");
  start_ice(c);
}

static gboolean
round2_cb(gpointer data)
{
  FerryConnection *c = data;
  g_clear_pointer(&c->round2_source, g_source_unref);
  switch_to_round2(c);
  return G_SOURCE_REMOVE;
}

static void
schedule_round2(FerryConnection *c)
{
  if (c->round2_source != NULL)
    return;
  c->round2_source = g_idle_source_new();
  g_source_set_callback(c->round2_source, round2_cb, c, NULL);
  g_source_attach(c->round2_source, c->ctx);
}

static void
on_link_failed(FerryPeerLink *link, const GError *error, gpointer user_data)
{
  FerryConnection *c = user_data;
  conn_fail(c, -(int)error->code, "%s", error->message);
}

/* A peer's words made safe to show: valid UTF-8, every control or format
 * character (C0, C1 such as CSI, bidi overrides) turned into a space. */
static char *
printable_reason(const char *text, gsize len)
{
  char *valid = g_utf8_make_valid(text, (gssize)len);
  GString *out = g_string_sized_new(strlen(valid));
  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
    gunichar ch = g_utf8_get_char(p);
    if (g_unichar_iscntrl(ch) || g_unichar_type(ch) == G_UNICODE_FORMAT)
      g_string_append_c(out, ' ');
    else
      g_string_append_unichar(out, ch);
  }
  g_free(valid);
  return g_string_free(out, FALSE);
}

/* One sealed ICE message (docs/protocol.md §7.1): "creds UFRAG PWD",
 * "cand a=candidate:…", "end", or "gave-up REASON" (the peer ended the
 * attempt; its bounded, printable reason is shown). Unknown words are
 * ignored, for later versions. */
static void
on_link_secret(FerryPeerLink *link, const char *text, gsize len, gpointer user_data)
{
  FerryConnection *c = user_data;

  if (g_str_has_prefix(text, "gave-up ")) {
    char *why = printable_reason(text + 8, MIN(len - 8, (gsize)GAVE_UP_MAX));
    c->peer_gave_up = TRUE;
    conn_fail(c, ERR_FAILED, "the %s gave up: %s", c->sender ? "receiver" : "sender", why);
    g_free(why);
    return;
  }
  if (c->ice == NULL || c->state != CONN_ICE) {
    g_debug("ICE message dropped (state %d, ice %p): %.40s", c->state, (void *)c->ice, text);
    return;
  }
  g_debug("ICE message: %.80s", text);
  if (++c->n_secrets > MAX_SECRET_LINES) {
    conn_fail(c, FERRY_ERR_TOO_LONG, "the other side sent over %d ICE messages; giving up",
              MAX_SECRET_LINES);
    return;
  }
  if (g_str_has_prefix(text, "punch ")) {
    GError *error = NULL;
    if (c->punch != NULL && !ferry_punch_set_peer(c->punch, text, &error)) {
      conn_fail(c, FERRY_ERR_INVALID, "the other side sent a bad ICE message: %s", error->message);
      g_error_free(error);
    }
    return;
  }
  /* Lines of round 2 ("creds2", "cand2", "end2"): the other side's round
   * 1 failed, so ours stops too. Lines of a round we left are dropped. */
  gboolean r2_line = g_str_has_prefix(text, "creds2 ") || g_str_has_prefix(text, "cand2 ") ||
                     strcmp(text, "end2") == 0;
  if (r2_line && c->ice_round == 1 && !c->opts->no_relay)
    switch_to_round2(c);
  if (c->ice == NULL || c->state != CONN_ICE || r2_line != (c->ice_round == 2))
    return;
  if (r2_line) {
    const char *sp = strchr(text, ' ');
    char *plain = sp != NULL ? g_strdup_printf("%.*s%s", (int)(sp - text - 1), text, sp)
                             : g_strndup(text, strlen(text) - 1);
    on_link_secret_round(c, plain);
    g_free(plain);
    return;
  }
  on_link_secret_round(c, text);
}

static void
on_link_secret_round(FerryConnection *c, const char *text)
{
  GError *error = NULL;
  gboolean ok = TRUE;

  if (g_str_has_prefix(text, "creds ")) {
    char **f = g_strsplit(text + 6, " ", 3);
    if (g_strv_length(f) == 2)
      ok = ferry_ice_set_remote_credentials(c->ice, f[0], f[1], &error);
    else
      ok = ferry_set_error(&error, FERRY_ERR_INVALID, "malformed ICE credentials");
    g_strfreev(f);
  } else if (g_str_has_prefix(text, "cand ")) {
    ok = ferry_ice_add_remote_candidate(c->ice, text + 5, &error);
  } else if (strcmp(text, "end") == 0) {
    ferry_ice_remote_end_of_candidates(c->ice);
  }
  if (!ok) {
    conn_fail(c, FERRY_ERR_INVALID, "the other side sent a bad ICE message: %s", error->message);
    g_error_free(error);
  }
}

static const FerryPeerLinkHandlers link_handlers = {on_link_ready, on_link_failed, on_link_secret};

static void
conn_start_link(FerryConnection *c)
{
  c->link = ferry_peer_link_new(c->sig, c->sender ? FERRY_PAKE_SENDER : FERRY_PAKE_RECEIVER,
                                c->peer, c->receiver_id, c->nameplate, c->words, &link_handlers, c);
  if (c->sender)
    ferry_peer_link_start(c->link);
}

/* ---- FerryConnection, public -------------------------------------------- */

void
ferry_connection_set_handlers(FerryConnection *c, const FerryConnectionHandlers *h,
                              gpointer user_data)
{
  if (h != NULL)
    c->h = *h;
  else
    memset(&c->h, 0, sizeof c->h);
  c->user_data = user_data;
}

FerryStream *
ferry_connection_open_stream(FerryConnection *c, const FerryStreamHandlers *h, gpointer user_data,
                             GError **error)
{
  if (c->state != CONN_OPEN || c->quic == NULL || c->closed_delivered) {
    ferry_set_error(error, FERRY_ERR_STATE, "cannot open a stream: the connection has ended");
    return NULL;
  }
  FerryStream *s = stream_new(c, NULL);
  ferry_stream_set_handlers(s, h, user_data);
  s->qs = ferry_quic_stream_open(c->quic, s, error);
  if (s->qs == NULL) {
    g_free(s);
    return NULL;
  }
  g_hash_table_add(c->streams, s);
  return s;
}

void
ferry_connection_close(FerryConnection *c, const char *reason)
{
  if (c->quic != NULL)
    ferry_quic_close(c->quic, 0, reason != NULL ? reason : "");
}

const char *
ferry_connection_get_role(FerryConnection *c)
{
  return c->sender ? "sender" : "receiver";
}

void
ferry_connection_free(FerryConnection *c)
{
  if (c == NULL)
    return;
  conn_free_internal(c);
}

void
ferry_connection_get_path(FerryConnection *c, FerryConnectionPath *path)
{
  *path = c->path;
  if (c->quic != NULL) {
    FerryQuicInfo info;
    ferry_quic_get_info(c->quic, &info);
    path->rtt_us = info.smoothed_rtt_us;
    path->datagram_bytes = (guint32)info.udp_payload;
    if (info.cc_name != NULL)
      g_strlcpy(path->congestion_control, info.cc_name, sizeof path->congestion_control);
  }
}

char *
ferry_connection_path_to_string(FerryConnection *c)
{
  FerryConnectionPath p;
  ferry_connection_get_path(c, &p);
  GString *s = g_string_new(p.relayed ? "relayed" : "direct");
  if (p.relayed && p.turn_server[0] != '\0')
    g_string_append_printf(s, " via %s", p.turn_server);
  g_string_append_printf(s, ": %s %s <-> %s %s, rtt %.1f ms, %s", p.local_type, p.local_address,
                         p.remote_type, p.remote_address, p.rtt_us / 1000.0, p.congestion_control);
  if (p.datagram_bytes > 0)
    g_string_append_printf(s, ", %u-byte datagrams", p.datagram_bytes);
  return g_string_free(s, FALSE);
}

/* ---- the receiver ------------------------------------------------------- */

static gboolean
deferred_sig_free(gpointer data)
{
  FerryConnection *c = data;
  g_clear_pointer(&c->sig_source, g_source_unref);
  g_clear_pointer(&c->sig, ferry_signal_client_free);
  return G_SOURCE_REMOVE;
}

static const char *
server_error_text(JsonObject *msg)
{
  return json_object_get_string_member_with_default(msg, "message", "the server refused");
}

static void
receiver_on_message(FerrySignalClient *sig, JsonObject *msg, gpointer user_data)
{
  FerryConnection *c = user_data;
  const char *type = json_object_get_string_member_with_default(msg, "type", "");

  if (strcmp(type, "left") == 0) {
    /* our leave went through: the client can go (not from inside its own
     * callback) */
    GSource **src = c->state == CONN_FAILED ? &c->free_source : &c->sig_source;
    GSourceFunc fn = c->state == CONN_FAILED ? deferred_free : deferred_sig_free;
    drop_source(src);
    *src = g_idle_source_new();
    g_source_set_callback(*src, fn, c, NULL);
    g_source_attach(*src, c->ctx);
    return;
  }
  if (c->state == CONN_FAILED || c->state == CONN_OPEN)
    return;
  if (strcmp(type, "joined") == 0 && c->link == NULL) {
    c->receiver_id = g_strdup(json_object_get_string_member_with_default(msg, "peer", ""));
    JsonNode *ice = json_object_get_member(msg, "ice_servers");
    c->server_ice = ice != NULL ? json_node_copy(ice) : NULL;
    conn_start_link(c);
  } else if (strcmp(type, "message") == 0 && c->link != NULL) {
    if (g_strcmp0(json_object_get_string_member_with_default(msg, "from", ""), "s") != 0)
      return;
    JsonNode *body = json_object_get_member(msg, "body");
    JsonObject *o =
        body != NULL && JSON_NODE_HOLDS_OBJECT(body) ? json_node_get_object(body) : NULL;
    if (o != NULL && json_object_has_member(o, "queued")) {
      /* The sender serves others first; we wait, and the wait is not
       * counted against the connect timeout. Not secret, not trusted
       * for anything but this message. */
      gint64 pos = json_object_get_int_member_with_default(o, "queued", 0);
      drop_source(&c->timeout_source);
      conn_start_timer(c);
      if (c->opts->queued != NULL && pos > 0)
        c->opts->queued((guint)MIN(pos, G_MAXUINT), c->opts->queued_user_data);
      return;
    }
    ferry_peer_link_handle(c->link, body);
  } else if (strcmp(type, "session-ended") == 0 && c->state < CONN_QUIC) {
    conn_fail(c, ERR_FAILED,
              "the sender left before the connection was set up (%s); ask them to send again",
              json_object_get_string_member_with_default(msg, "reason", "no reason given"));
  } else if (strcmp(type, "error") == 0) {
    const char *slug = json_object_get_string_member_with_default(msg, "code", "");
    conn_fail(c,
              strcmp(slug, "no-such-nameplate") == 0 || strcmp(slug, "code-expired") == 0
                  ? FERRY_ERR_NOT_FOUND
                  : ERR_FAILED,
              "%s", server_error_text(msg));
  }
}

static void
on_signal_state(FerrySignalClient *sig, FerrySignalClientState state, guint attempt,
                const GError *error, gpointer user_data)
{
  FerryConnection *c = user_data;
  if (state == FERRY_SIGNAL_CLIENT_CLOSED && c->state < CONN_QUIC) {
    if (error != NULL && strstr(error->message, c->opts->url) != NULL)
      conn_fail(c, FERRY_ERR_IO, "%s", error->message); /* it names the server already */
    else
      conn_fail(c, FERRY_ERR_IO, "lost the ferry server %s: %s", c->opts->url,
                error != NULL ? error->message : "the connection was closed");
  }
}

static gboolean
on_cancelled(GCancellable *cancellable, gpointer data)
{
  conn_cancel_error(data);
  return G_SOURCE_REMOVE;
}

void
ferry_connect_async(const FerryConnectOptions *options, const char *code_text,
                    GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new(NULL, cancellable, callback, user_data);
  GError *error = NULL;
  FerryCode code;
  FerryCodeDiag diag;
  Opts *opts;
  char np[16];

  g_task_set_source_tag(task, ferry_connect_async);
  if (code_text == NULL)
    code_text = "";
  int rc = ferry_code_parse(code_text, strlen(code_text), &code, &diag);
  if (rc < 0) {
    g_task_return_new_error(task, FERRY_ERROR, -rc, "%s", diag.message);
    g_object_unref(task);
    return;
  }
  opts = opts_new(options, &error);
  if (opts == NULL) {
    g_task_return_error(task, error);
    g_object_unref(task);
    return;
  }
  FerryConnection *c = conn_new(opts, FALSE);
  g_rc_box_release_full(opts, opts_clear);
  c->task = task;
  c->peer = g_strdup("s");
  g_snprintf(np, sizeof np, "%u", code.nameplate);
  c->nameplate = g_strdup(np);
  c->words = g_strdup(code.password);
  sodium_memzero(&code, sizeof code);
  c->sig = ferry_signal_client_new(c->opts->url, &error);
  if (c->sig == NULL) {
    conn_fail(c, FERRY_ERR_INVALID, "%s", error->message);
    g_error_free(error);
    return;
  }
  if (cancellable != NULL) {
    c->cancel_source = g_cancellable_source_new(cancellable);
    g_source_set_callback(c->cancel_source, (GSourceFunc)(void (*)(void))on_cancelled, c, NULL);
    g_source_attach(c->cancel_source, c->ctx);
  }
  ferry_signal_client_set_handlers(c->sig, receiver_on_message, on_signal_state, c);
  ferry_signal_client_start(c->sig);
  ferry_signal_client_join(c->sig, c->nameplate);
  conn_start_timer(c);
}

FerryConnection *
ferry_connect_finish(GAsyncResult *result, GError **error)
{
  FerryConnection *c = g_task_propagate_pointer(G_TASK(result), error);
  if (c != NULL) {
    c->delivering = TRUE;
    g_source_set_ready_time(c->dispatch, 0);
  }
  return c;
}

/* ---- the sender --------------------------------------------------------- */

static void
listener_close(FerryListener *l, GError *error)
{
  if (l->closed) {
    g_clear_error(&error);
    return;
  }
  l->closed = TRUE;
  l->stopping = TRUE;
  if (l->h.closed != NULL)
    l->h.closed(l, error, l->user_data);
  g_clear_error(&error);
}

/* Too many wrong codes: the nameplate is released, and the listener
 * closes when the server confirms. */
static void
listener_close_code(FerryListener *l, guint failures)
{
  if (l->stopping)
    return;
  l->stopping = TRUE;
  l->close_error = g_error_new(FERRY_ERROR, FERRY_ERROR_AUTH,
                               "%u wrong codes were tried: the code is closed to protect it; run "
                               "again for a new code",
                               failures);
  ferry_signal_client_release(l->sig);
}

/* Called by an attempt when it ends, with error NULL when it succeeded. */
static void
listener_attempt_done(FerryListener *l, FerryConnection *c, const GError *error)
{
  g_hash_table_steal(l->attempts, c->peer);
  c->listener = NULL;
  if (error == NULL) {
    c->slot_of = l;
    g_hash_table_add(l->serving, c);
    return;
  }
  listener_schedule_next(l);
  if (l->partner != NULL)
    listener_schedule_next(l->partner);
  if (l->h.attempt_failed != NULL)
    l->h.attempt_failed(l, c->peer, error, l->user_data);
  if (!g_error_matches(error, FERRY_ERROR, FERRY_ERROR_AUTH))
    return;
  /* Partners offer one code: wrong guesses through either count together. */
  guint failures = ++l->failures + (l->partner != NULL ? l->partner->failures : 0);
  if (failures >= l->opts->max_failures) {
    listener_close_code(l, failures);
    if (l->partner != NULL)
      listener_close_code(l->partner, failures);
  }
}

/* ---- receivers over the limit wait their turn ---------------------------- */

/* max_receivers bounds the receivers served at once: those connecting and
 * those handed over whose connection is not over yet. A receiver that
 * joins beyond that waits in line and is told its place (and told again
 * every QUEUE_NOTICE_MS, which keeps its connect timeout from running out);
 * when a slot frees, the first in line gets its PAKE. */
#define QUEUE_NOTICE_MS 5000
#define QUEUE_EXTRA     8 /* waiting receivers the server may hold for us */

static guint
listener_busy(const FerryListener *l)
{
  return g_hash_table_size(l->attempts) + g_hash_table_size(l->serving);
}

static gboolean
listener_full(FerryListener *l)
{
  guint busy = listener_busy(l) + (l->partner != NULL ? listener_busy(l->partner) : 0);
  return busy >= l->opts->max_receivers;
}

static void
listener_start_attempt(FerryListener *l, const char *peer)
{
  FerryConnection *c = conn_new(l->opts, TRUE);
  c->listener = l;
  c->sig = l->sig;
  c->peer = g_strdup(peer);
  c->receiver_id = g_strdup(peer);
  c->nameplate = g_strdup(l->nameplate);
  c->words = g_strdup(l->code.password);
  c->server_ice = l->server_ice != NULL ? json_node_copy(l->server_ice) : NULL;
  g_hash_table_insert(l->attempts, c->peer, c);
  conn_start_timer(c);
  conn_start_link(c);
}

static gboolean
queue_notice_cb(gpointer data)
{
  FerryListener *l = data;
  guint pos = 1;
  for (GList *w = l->waiting.head; w != NULL; w = w->next, pos++) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "queued");
    json_builder_add_int_value(b, pos);
    json_builder_set_member_name(b, "serving");
    json_builder_add_int_value(b, listener_busy(l) +
                                      (l->partner != NULL ? listener_busy(l->partner) : 0));
    json_builder_end_object(b);
    ferry_signal_client_send(l->sig, w->data, json_builder_get_root(b)); /* takes the node */
  }
  if (g_queue_is_empty(&l->waiting)) {
    g_clear_pointer(&l->queue_source, g_source_unref);
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

/* Tells every waiting peer its place now, and keeps telling them. */
static void
listener_tell_waiting(FerryListener *l)
{
  queue_notice_cb(l);
  if (!g_queue_is_empty(&l->waiting) && l->queue_source == NULL) {
    l->queue_source = g_timeout_source_new(QUEUE_NOTICE_MS);
    g_source_set_callback(l->queue_source, queue_notice_cb, l, NULL);
    g_source_attach(l->queue_source, g_main_context_get_thread_default());
  }
}

static gboolean
listener_next_cb(gpointer data)
{
  FerryListener *l = data;
  g_clear_pointer(&l->next_source, g_source_unref);
  gboolean moved = FALSE;
  while (!l->stopping && !g_queue_is_empty(&l->waiting) && !listener_full(l)) {
    char *peer = g_queue_pop_head(&l->waiting);
    listener_start_attempt(l, peer);
    g_free(peer);
    moved = TRUE;
  }
  if (moved)
    listener_tell_waiting(l);
  return G_SOURCE_REMOVE;
}

/* A slot may have freed: the next in line goes, from an idle (this may
 * run inside ferry_connection_free()). */
static void
listener_schedule_next(FerryListener *l)
{
  if (l->next_source != NULL || g_queue_is_empty(&l->waiting))
    return;
  l->next_source = g_idle_source_new();
  g_source_set_callback(l->next_source, listener_next_cb, l, NULL);
  g_source_attach(l->next_source, g_main_context_get_thread_default());
}

static void
conn_release_slot(FerryConnection *c)
{
  FerryListener *l = c->slot_of;
  if (l == NULL)
    return;
  c->slot_of = NULL;
  g_hash_table_remove(l->serving, c);
  listener_schedule_next(l);
  if (l->partner != NULL)
    listener_schedule_next(l->partner);
}

static void
listener_on_message(FerrySignalClient *sig, JsonObject *msg, gpointer user_data)
{
  FerryListener *l = user_data;
  const char *type = json_object_get_string_member_with_default(msg, "type", "");
  const char *peer = json_object_get_string_member_with_default(msg, "peer", "");

  if (strcmp(type, "claimed") == 0 && l->code_text == NULL) {
    const char *np = json_object_get_string_member_with_default(msg, "nameplate", "");
    char buf[FERRY_CODE_TEXT_SIZE];
    guint64 n = g_ascii_strtoull(np, NULL, 10);
    if (ferry_code_set_nameplate(&l->code, (uint32_t)MIN(n, G_MAXUINT32)) < 0 ||
        ferry_code_format(&l->code, buf, sizeof buf) < 0) {
      listener_close(l, g_error_new(FERRY_ERROR, FERRY_ERROR_VERSION,
                                    "the server allocated nameplate '%s', which is no code number; "
                                    "is it a ferry serve of this version?",
                                    np));
      return;
    }
    l->nameplate = g_strdup(np);
    l->code_text = g_strdup(buf);
    JsonNode *ice = json_object_get_member(msg, "ice_servers");
    l->server_ice = ice != NULL ? json_node_copy(ice) : NULL;
    if (l->h.code != NULL)
      l->h.code(l, l->code_text, l->user_data);
  } else if (strcmp(type, "peer-joined") == 0 && *peer != '\0') {
    if (l->stopping || g_hash_table_contains(l->attempts, peer) ||
        g_queue_find_custom(&l->waiting, peer, (GCompareFunc)strcmp) != NULL)
      return;
    if (listener_full(l)) {
      g_queue_push_tail(&l->waiting, g_strdup(peer));
      listener_tell_waiting(l);
    } else {
      listener_start_attempt(l, peer);
    }
  } else if (strcmp(type, "message") == 0) {
    const char *from = json_object_get_string_member_with_default(msg, "from", "");
    FerryConnection *c = g_hash_table_lookup(l->attempts, from);
    if (c != NULL && c->link != NULL)
      ferry_peer_link_handle(c->link, json_object_get_member(msg, "body"));
  } else if (strcmp(type, "peer-left") == 0) {
    GList *w = g_queue_find_custom(&l->waiting, peer, (GCompareFunc)strcmp);
    if (w != NULL) {
      g_free(w->data);
      g_queue_delete_link(&l->waiting, w);
      listener_tell_waiting(l);
    }
    FerryConnection *c = g_hash_table_lookup(l->attempts, peer);
    /* Once QUIC runs, the receiver may leave the server at any moment
     * (it closes signaling when it is authenticated first). */
    if (c != NULL && c->state < CONN_QUIC)
      conn_fail(c, ERR_FAILED,
                "receiver %s left before the connection was set up (%s); still waiting for "
                "others",
                peer, json_object_get_string_member_with_default(msg, "reason", "no reason given"));
  } else if (strcmp(type, "released") == 0) {
    if (l->close_error != NULL)
      listener_close(l, g_steal_pointer(&l->close_error));
    else if (l->stopping)
      listener_close(l, NULL);
    else
      listener_close(l, g_error_new(FERRY_ERROR, FERRY_ERROR_FAILED,
                                    "the server closed the code (%s); run again for a new code",
                                    json_object_get_string_member_with_default(msg, "reason",
                                                                               "no reason given")));
  } else if (strcmp(type, "error") == 0) {
    const char *slug = json_object_get_string_member_with_default(msg, "code", "");
    if (l->code_text == NULL || strcmp(slug, "code-expired") == 0 ||
        strcmp(slug, "session-expired") == 0 || strcmp(slug, "server-closing") == 0)
      listener_close(l,
                     g_error_new_literal(FERRY_ERROR, FERRY_ERROR_FAILED, server_error_text(msg)));
    else
      g_debug("server: %s", server_error_text(msg));
  }
}

static void
listener_on_state(FerrySignalClient *sig, FerrySignalClientState state, guint attempt,
                  const GError *error, gpointer user_data)
{
  FerryListener *l = user_data;
  if (state == FERRY_SIGNAL_CLIENT_CLOSED && !l->closed) {
    if (error != NULL && strstr(error->message, l->opts->url) != NULL)
      listener_close(l, g_error_new_literal(FERRY_ERROR, FERRY_ERROR_IO, error->message));
    else
      listener_close(l, g_error_new(FERRY_ERROR, FERRY_ERROR_IO, "lost the ferry server %s: %s",
                                    l->opts->url,
                                    error != NULL ? error->message : "the connection was closed"));
  }
}

FerryListener *
ferry_listener_new(const FerryConnectOptions *options, const FerryListenerHandlers *handlers,
                   gpointer user_data, GError **error)
{
  Opts *opts = opts_new(options, error);
  if (opts == NULL)
    return NULL;
  FerryListener *l = g_new0(FerryListener, 1);
  l->opts = opts;
  if (handlers != NULL)
    l->h = *handlers;
  l->user_data = user_data;
  l->attempts = g_hash_table_new(g_str_hash, g_str_equal);
  l->serving = g_hash_table_new(NULL, NULL);
  g_queue_init(&l->waiting);
  if (opts->words != NULL) {
    /* The number is the server's to give; 1 only makes the text parse. */
    g_autofree char *text = g_strdup_printf("1-%s", opts->words);
    FerryCodeDiag diag;
    if (ferry_code_parse(text, strlen(text), &l->code, &diag) < 0) {
      ferry_set_error(error, FERRY_ERR_INVALID, "the code words '%s' do not work: %s", opts->words,
                      diag.message);
      ferry_listener_free(l);
      return NULL;
    }
  } else {
    int rc = ferry_code_generate(&l->code, opts->code_words);
    if (rc < 0) {
      ferry_set_error(error, rc, "cannot draw the code's words: %s", ferry_strerror(rc));
      ferry_listener_free(l);
      return NULL;
    }
  }
  l->sig = ferry_signal_client_new(opts->url, error);
  if (l->sig == NULL) {
    ferry_listener_free(l);
    return NULL;
  }
  ferry_signal_client_set_handlers(l->sig, listener_on_message, listener_on_state, l);
  ferry_signal_client_start(l->sig);
  /* Room on the server for a line of waiting receivers too. */
  ferry_signal_client_claim(l->sig, opts->max_receivers + QUEUE_EXTRA);
  return l;
}

void
ferry_listener_share_slots(FerryListener *listener, FerryListener *other)
{
  g_return_if_fail(listener != other && listener->partner == NULL && other->partner == NULL);
  listener->partner = other;
  other->partner = listener;
}

const char *
ferry_listener_get_code(FerryListener *l)
{
  return l->code_text;
}

void
ferry_listener_stop(FerryListener *l)
{
  if (l->stopping)
    return;
  l->stopping = TRUE;
  if (l->sig != NULL)
    ferry_signal_client_release(l->sig);
}

void
ferry_listener_free(FerryListener *l)
{
  GHashTableIter it;
  gpointer value;

  if (l == NULL)
    return;
  if (l->partner != NULL)
    l->partner->partner = NULL;
  g_hash_table_iter_init(&it, l->attempts);
  while (g_hash_table_iter_next(&it, NULL, &value)) {
    FerryConnection *c = value;
    c->listener = NULL;
    g_hash_table_iter_steal(&it);
    conn_free_internal(c);
  }
  g_hash_table_destroy(l->attempts);
  g_hash_table_iter_init(&it, l->serving);
  while (g_hash_table_iter_next(&it, &value, NULL))
    ((FerryConnection *)value)->slot_of = NULL;
  g_hash_table_destroy(l->serving);
  g_queue_clear_full(&l->waiting, g_free);
  drop_source(&l->queue_source);
  drop_source(&l->next_source);
  if (l->sig != NULL)
    ferry_signal_client_free(l->sig);
  g_clear_pointer(&l->server_ice, json_node_unref);
  g_clear_error(&l->close_error);
  sodium_memzero(&l->code, sizeof l->code);
  g_free(l->code_text);
  g_free(l->nameplate);
  g_rc_box_release_full(l->opts, opts_clear);
  g_free(l);
}
