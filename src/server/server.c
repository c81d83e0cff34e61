/* `ferry serve`: HTTP, WebSocket signaling, guardrails and metrics.
 *
 * Every client is one Conn. A sender's "claim" opens a session in the
 * store and gets a nameplate; a receiver's "join" adds it to that session.
 * Messages between members are published to the session through the store
 * and delivered by whichever instance holds the recipient (deliver()). All
 * limits are checked here, before any state changes, and each refusal is
 * an "error" message to the client plus a counter in /metrics. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>
#include <sodium.h>

#include "ferry-config.h"

#include <ferry/error.h>

#include "server/metrics.h"
#include "server/ratelimit.h"
#include "server/relay-page.h"
#include "server/relay.h"
#include <ferry/server.h>
#include "server/signal-msg.h"
#include "server/store.h"
#include "server/stun-server.h"
#include "server/turn.h"
#include "server/ws.h"

#define SWEEP_INTERVAL_MS    1000
#define IP_IDLE_EVICT_US     (10 * G_USEC_PER_SEC)
#define HISTORY_MAX_MESSAGES 128
#define HISTORY_MAX_BYTES    (256 * 1024)
/* How many bytes may wait for a client that does not read before it is
 * dropped (counted as the refusal "slow-reader"): at least this, or 16 of
 * the largest messages. Replayed history (256 KiB at most) fits well. */
#define OUTPUT_QUEUE_MIN (1024 * 1024)

typedef struct {
  FerryBucket connects;
  FerryBucket sessions;
  FerryBucket joins;
  guint conns;
  gint64 last_us;
} IpState;

typedef struct Conn Conn;

/* The WebSocket under a Conn: libsoup's SoupWebsocketConnection for wss
 * (--tls-cert), or a FerryWsConn on the server's epoll hub for plain
 * connections. Both are reference counted; attach routes the link's
 * messages and its end to a Conn, detach stops that. */
typedef struct {
  void (*send_text)(gpointer link, const char *text);
  void (*close)(gpointer link, gushort code, const char *reason);
  gboolean (*is_open)(gpointer link);
  gushort (*close_code)(gpointer link); /* from the client's close frame; 0 if none */
  void (*attach)(gpointer link, Conn *c);
  void (*detach)(gpointer link, Conn *c);
  gpointer (*ref)(gpointer link);
  void (*unref)(gpointer link);
} LinkOps;

struct Conn {
  FerryServer *server;
  const LinkOps *ops;
  gpointer link; /* NULL while the client is away */
  char *ip;
  char *host; /* the host name the client used to reach us */
  int refcount;
  gboolean closed;

  char *session_id; /* NULL until claim/join succeeds */
  char peer[FERRY_SIGNAL_MAX_PEER + 1];
  char nameplate[FERRY_SIGNAL_MAX_NAMEPLATE + 1]; /* sender: "" once released */
  gboolean is_sender;
  gboolean pending; /* a claim or join is with the store */
  char *pending_sid;
  char token[33]; /* proves a reconnecting client owned this membership */
  guint receivers_seen;
  gint64 code_deadline_us;
  gint64 session_deadline_us;

  FerryBucket messages;
  gint64 last_activity_us;
  gboolean ping_sent;

  /* While the client is away (link == NULL) its membership is kept for
   * --reconnect-grace. Session envelopes carry a sequence number and stay
   * in `history` until the client acknowledges them, so a client that
   * resumes gets exactly what it missed, even what was written into a
   * connection that was already dead. rx_count counts the session messages
   * (send, release, leave) received, so the client can resend the rest. */
  gint64 away_since_us;
  guint64 tx_seq;
  GQueue history; /* HistoryEntry, oldest first */
  gsize history_bytes;
  guint64 history_dropped_upto; /* seqs up to this were dropped unacked */
  guint64 rx_count;
};

typedef struct {
  guint64 seq;
  char *text;
} HistoryEntry;

static void
history_entry_free(HistoryEntry *e)
{
  g_free(e->text);
  g_free(e);
}

struct _FerryServer {
  FerryServerConfig cfg;
  SoupServer *soup;
  FerryStore *store;
  FerryMetrics metrics;
  GHashTable *ips;      /* address → IpState */
  GHashTable *conns;    /* Conn set */
  GHashTable *sessions; /* session id → GPtrArray of local Conn */
  FerryWsHub *hub;      /* plain ws:// connections; NULL with --tls-cert */
  GHashTable *away;     /* token → Conn whose client is away (owns a ref) */
  guint local_sessions; /* sessions whose sender is connected here */
  guint sweep_id;
  gboolean draining;
  GSourceFunc drain_done;
  gpointer drain_data;
  guint drain_timer;
  guint port;
  FerryStunServer *stun;
  guint stun_port_value;
  /* The same responder on a second port: a client asking both learns
   * whether its NAT maps each destination anew (docs/protocol.md §7.4). */
  FerryStunServer *stun2;
  guint stun2_port_value;
  FerryTurnConfig *turn;
  FerryRelayHub *relay; /* HTTP relay at /r/NAME */
  gboolean relays_idle; /* draining: no relay is in progress any more */
};

/* Draining ends once every WebSocket client has left and every HTTP relay
 * has finished (or at the drain deadline). */
static void
drain_check(FerryServer *s)
{
  if (s->draining && g_hash_table_size(s->conns) == 0 && s->relays_idle && s->drain_done != NULL) {
    GSourceFunc done = s->drain_done;
    s->drain_done = NULL;
    g_clear_handle_id(&s->drain_timer, g_source_remove);
    done(s->drain_data);
  }
}

static gboolean
relays_drained(gpointer user_data)
{
  FerryServer *s = user_data;
  s->relays_idle = TRUE;
  drain_check(s);
  return G_SOURCE_REMOVE;
}

void
ferry_server_config_init(FerryServerConfig *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->stun_port = 3478;
  cfg->turn_cred_ttl = 3600;
  cfg->session_ttl = 24 * 3600;
  cfg->code_ttl = 600;
  cfg->max_receivers = 10;
  cfg->max_sessions = 10000;
  cfg->max_connections = 20000;
  cfg->max_message_bytes = 65536;
  cfg->ip_connect_rate = 120;
  cfg->ip_session_rate = 30;
  cfg->ip_join_rate = 60;
  cfg->max_connections_per_ip = 64;
  cfg->message_rate = 50;
  cfg->idle_timeout = 120;
  cfg->drain_timeout = 5;
  cfg->reconnect_grace = 30;
  cfg->relay_ttl = 600;
  cfg->relay_idle_timeout = 120;
  cfg->relay_window = 8 * 1024 * 1024;
  cfg->relay_max = 16;
  cfg->relay_max_downloads = 10;
  cfg->relay_resume_wait = 60;
  cfg->relay_ip_rate = 30;
}

static Conn *
conn_ref(Conn *c)
{
  c->refcount++;
  return c;
}

static void
conn_unref(Conn *c)
{
  if (--c->refcount > 0)
    return;
  if (c->link != NULL)
    c->ops->unref(c->link);
  g_free(c->ip);
  g_free(c->host);
  g_free(c->session_id);
  g_free(c->pending_sid);
  g_queue_clear_full(&c->history, (GDestroyNotify)history_entry_free);
  g_free(c);
}

static void
send_text(Conn *c, const char *text)
{
  if (c->closed || c->link == NULL || !c->ops->is_open(c->link))
    return;
  c->ops->send_text(c->link, text);
}

/* Sends an "error" message and counts the refusal under its slug. */
static void
refuse(Conn *c, const char *slug, const char *text)
{
  char *json = ferry_signal_error_json(slug, text);
  ferry_metrics_refusal(&c->server->metrics, slug);
  g_info("event=refuse ip=%s reason=%s", c->ip, slug);
  send_text(c, json);
  g_free(json);
}

static void
refuse_and_close(Conn *c, const char *slug, const char *text, gushort code)
{
  refuse(c, slug, text);
  if (!c->closed && c->link != NULL && c->ops->is_open(c->link))
    c->ops->close(c->link, code, slug);
}

/* A small JSON object writer for the server's own messages. */
static char *
json_object_text(const char *first_key, ...)
{
  JsonBuilder *b = json_builder_new();
  va_list ap;
  const char *key = first_key;

  json_builder_begin_object(b);
  va_start(ap, first_key);
  while (key != NULL) {
    char kind = (char)va_arg(ap, int);
    json_builder_set_member_name(b, key);
    if (kind == 's')
      json_builder_add_string_value(b, va_arg(ap, const char *));
    else if (kind == 'i')
      json_builder_add_int_value(b, va_arg(ap, gint64));
    else if (kind == 'b')
      json_builder_add_boolean_value(b, va_arg(ap, int));
    else if (kind == 'n') /* a JsonNode, consumed */
      json_builder_add_value(b, va_arg(ap, JsonNode *));
    key = va_arg(ap, const char *);
  }
  va_end(ap);
  json_builder_end_object(b);
  JsonNode *root = json_builder_get_root(b);
  char *s = json_to_string(root, FALSE);
  json_node_unref(root);
  g_object_unref(b);
  return s;
}

/* 32 hex digits from libsodium's CSPRNG: session ids and resume tokens
 * must not be guessable. */
static void
random_hex(char out[33])
{
  guint8 raw[16];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2hex(out, 33, raw, sizeof raw);
}

/* Whom a limit counts: an IPv4 address, or an IPv6 /64 (one host usually
 * holds a whole /64, and fresh addresses from it must not mean fresh
 * limits). The caller frees the result. */
static char *
ip_key(const char *ip)
{
  GInetAddress *a = g_inet_address_new_from_string(ip);
  if (a == NULL || g_inet_address_get_family(a) != G_SOCKET_FAMILY_IPV6) {
    g_clear_object(&a);
    return g_strdup(ip);
  }
  guint8 bytes[16];
  memcpy(bytes, g_inet_address_to_bytes(a), 16);
  g_object_unref(a);
  memset(bytes + 8, 0, 8);
  GInetAddress *prefix = g_inet_address_new_from_bytes(bytes, G_SOCKET_FAMILY_IPV6);
  char *text = g_inet_address_to_string(prefix);
  char *key = g_strconcat(text, "/64", NULL);
  g_free(text);
  g_object_unref(prefix);
  return key;
}

static IpState *
ip_lookup(FerryServer *s, const char *ip)
{
  g_autofree char *key = ip_key(ip);
  return g_hash_table_lookup(s->ips, key);
}

static IpState *
ip_state(FerryServer *s, const char *ip)
{
  char *key = ip_key(ip);
  IpState *st = g_hash_table_lookup(s->ips, key);
  if (st == NULL) {
    st = g_new0(IpState, 1);
    g_hash_table_insert(s->ips, key, st);
  } else {
    g_free(key);
  }
  st->last_us = g_get_monotonic_time();
  return st;
}

/* --- sessions on this instance --- */

static void
local_add(FerryServer *s, Conn *c)
{
  GPtrArray *members = g_hash_table_lookup(s->sessions, c->session_id);
  if (members == NULL) {
    members = g_ptr_array_new();
    g_hash_table_insert(s->sessions, g_strdup(c->session_id), members);
  }
  g_ptr_array_add(members, c);
  s->store->vt->subscribe(s->store, c->session_id);
}

static void
local_remove(FerryServer *s, Conn *c)
{
  GPtrArray *members = g_hash_table_lookup(s->sessions, c->session_id);
  if (members != NULL) {
    g_ptr_array_remove(members, c);
    if (members->len == 0)
      g_hash_table_remove(s->sessions, c->session_id);
  }
  s->store->vt->unsubscribe(s->store, c->session_id);
}

/* Takes a connection out of its session: a receiver frees its slot and
 * the others hear "peer-left"; the sender ends the session for everyone. */
static void
leave_session(Conn *c, const char *reason)
{
  FerryServer *s = c->server;
  char *sid = c->session_id;

  if (sid == NULL)
    return;
  if (c->is_sender) {
    char *env = json_object_text("type", 's', "session-ended", "reason", 's', reason, NULL);
    s->store->vt->publish(s->store, sid, FERRY_STORE_END, c->peer, "*", env);
    g_free(env);
    s->store->vt->end(s->store, sid, c->nameplate);
    s->local_sessions--;
    ferry_metrics_gauge(&s->metrics, FERRY_GAUGE_SESSIONS, s->local_sessions);
  } else {
    char *env = json_object_text("type", 's', "peer-left", "peer", 's', c->peer, "reason", 's',
                                 reason, NULL);
    s->store->vt->publish(s->store, sid, FERRY_STORE_LEFT, c->peer, "*", env);
    g_free(env);
    s->store->vt->leave(s->store, sid);
  }
  g_info("event=leave session=%.8s peer=%s reason=\"%s\"", sid, c->peer, reason);
  local_remove(s, c);
  c->session_id = NULL;
  c->nameplate[0] = '\0';
  c->is_sender = FALSE;
  g_free(sid);
}

/* Numbers a session envelope for this member, keeps it until acked, and
 * sends it if the client is connected. envelope starts with '{'. */
static void
deliver_to(Conn *c, const char *envelope)
{
  HistoryEntry *e = g_new(HistoryEntry, 1);
  e->seq = ++c->tx_seq;
  e->text = g_strdup_printf("{\"seq\":%" G_GUINT64_FORMAT ",%s", e->seq, envelope + 1);
  g_queue_push_tail(&c->history, e);
  c->history_bytes += strlen(e->text);
  while (c->history.length > HISTORY_MAX_MESSAGES || c->history_bytes > HISTORY_MAX_BYTES) {
    HistoryEntry *old = g_queue_pop_head(&c->history);
    c->history_bytes -= strlen(old->text);
    c->history_dropped_upto = old->seq;
    history_entry_free(old);
  }
  send_text(c, e->text);
}

/* The client has everything up to seq. */
static void
history_ack(Conn *c, guint64 seq)
{
  HistoryEntry *e;
  while ((e = g_queue_peek_head(&c->history)) != NULL && e->seq <= seq) {
    g_queue_pop_head(&c->history);
    c->history_bytes -= strlen(e->text);
    history_entry_free(e);
  }
}

static void
deliver(const char *session_id, FerryStoreKind kind, const char *from, const char *to,
        const char *envelope, gpointer user_data)
{
  FerryServer *s = user_data;
  GPtrArray *members = g_hash_table_lookup(s->sessions, session_id);
  if (members == NULL)
    return;

  /* Work on a copy: an END removes members from the live array. */
  GPtrArray *snapshot = g_ptr_array_copy(members, (GCopyFunc)(void (*)(void))conn_ref, NULL);
  g_ptr_array_set_free_func(snapshot, (GDestroyNotify)(void (*)(void))conn_unref);
  for (guint i = 0; i < snapshot->len; i++) {
    Conn *c = snapshot->pdata[i];
    if (c->session_id == NULL || strcmp(c->peer, from) == 0)
      continue;
    if (strcmp(to, "*") != 0 && strcmp(to, c->peer) != 0)
      continue;
    if (kind == FERRY_STORE_JOINED && !c->is_sender)
      continue;
    deliver_to(c, envelope);
    ferry_metrics_count(&s->metrics, FERRY_COUNT_RELAYED);
    if (kind == FERRY_STORE_JOINED)
      c->receivers_seen++;
    if (kind == FERRY_STORE_END && !c->is_sender) {
      /* The session is gone: drop the membership without telling anyone. */
      local_remove(s, c);
      g_clear_pointer(&c->session_id, g_free);
    }
  }
  g_ptr_array_free(snapshot, TRUE);
}

/* --- claim and join --- */

static JsonNode *ice_servers_json(Conn *c);

static void
claim_done(const char *err, const char *nameplate, gpointer user_data)
{
  Conn *c = user_data;
  FerryServer *s = c->server;

  char *sid = c->pending_sid;
  c->pending_sid = NULL;
  c->pending = FALSE;
  if (err != NULL || c->closed) {
    if (err != NULL && strcmp(err, "too-many-sessions") == 0)
      refuse(c, err, "every code number is in use; try again later or use another server");
    else if (err != NULL)
      refuse(c, err, "the server's session store is not available; try again in a moment");
    else /* the client went away while the store worked */
      s->store->vt->end(s->store, sid, nameplate);
    g_free(sid);
    conn_unref(c);
    return;
  }
  gint64 now = g_get_monotonic_time();
  c->session_id = sid;
  random_hex(c->token);
  c->is_sender = TRUE;
  g_strlcpy(c->peer, "s", sizeof c->peer);
  g_strlcpy(c->nameplate, nameplate, sizeof c->nameplate);
  c->code_deadline_us = now + (gint64)s->cfg.code_ttl * G_USEC_PER_SEC;
  c->session_deadline_us = now + (gint64)s->cfg.session_ttl * G_USEC_PER_SEC;
  local_add(s, c);
  s->local_sessions++;
  ferry_metrics_gauge(&s->metrics, FERRY_GAUGE_SESSIONS, s->local_sessions);
  ferry_metrics_count(&s->metrics, FERRY_COUNT_SESSIONS);

  char *reply = json_object_text(
      "type", 's', "claimed", "nameplate", 's', nameplate, "peer", 's', "s", "token", 's', c->token,
      "code_ttl", 'i', (gint64)s->cfg.code_ttl, "session_ttl", 'i', (gint64)s->cfg.session_ttl,
      "reconnect_grace", 'i', (gint64)s->cfg.reconnect_grace, "ice_servers", 'n',
      ice_servers_json(c), NULL);
  send_text(c, reply);
  g_free(reply);
  g_info("event=claim ip=%s nameplate=%s session=%.8s", c->ip, nameplate, c->session_id);
  conn_unref(c);
}

static void
handle_claim(Conn *c, const FerrySignalMsg *m)
{
  FerryServer *s = c->server;
  guint maxr = s->cfg.max_receivers;

  if (s->draining) {
    refuse(c, "server-closing", "the server is shutting down; try again in a moment");
    return;
  }
  if (s->local_sessions >= s->cfg.max_sessions) {
    refuse(c, "too-many-sessions",
           "the server has as many sessions as it allows; try again later or use another server");
    return;
  }
  IpState *ip = ip_state(s, c->ip);
  if (!ferry_bucket_take(&ip->sessions, s->cfg.ip_session_rate / 60.0, s->cfg.ip_session_rate,
                         g_get_monotonic_time())) {
    refuse(c, "rate-limited",
           "too many new codes from your address; wait a minute before starting another send");
    return;
  }
  if (m->max_receivers > 0 && m->max_receivers < maxr)
    maxr = m->max_receivers;

  char sid[33];
  random_hex(sid);
  c->pending_sid = g_strdup(sid);
  c->pending = TRUE;
  s->store->vt->claim(s->store, sid, maxr, (gint64)s->cfg.code_ttl * 1000,
                      (gint64)s->cfg.session_ttl * 1000, claim_done, conn_ref(c));
}

static void
join_done(const char *err, const char *session_id, guint receiver_no, guint max_receivers,
          gpointer user_data)
{
  Conn *c = user_data;
  FerryServer *s = c->server;
  char text[256];

  c->pending = FALSE;
  if (c->closed) {
    if (err == NULL)
      s->store->vt->leave(s->store, session_id);
    conn_unref(c);
    return;
  }
  if (err != NULL) {
    if (strcmp(err, "no-such-nameplate") == 0)
      g_snprintf(text, sizeof text,
                 "no sender is waiting with code %s-…: check the number at the start of the "
                 "code, or ask the sender for a new code (codes expire)",
                 c->nameplate);
    else if (strcmp(err, "session-full") == 0)
      g_snprintf(text, sizeof text,
                 "code %s-… already has as many receivers as its sender allows (%u); ask the "
                 "sender to allow more (--max-receivers)",
                 c->nameplate, max_receivers);
    else
      g_snprintf(text, sizeof text,
                 "the server's session store is not available; try again in a moment");
    refuse(c, err, text);
    c->nameplate[0] = '\0';
    /* Guessing nameplates costs more than joining one that exists. */
    IpState *ip = ip_state(s, c->ip);
    for (int i = 0; i < 4; i++)
      ferry_bucket_take(&ip->joins, s->cfg.ip_join_rate / 60.0, s->cfg.ip_join_rate,
                        g_get_monotonic_time());
    conn_unref(c);
    return;
  }

  c->session_id = g_strdup(session_id);
  random_hex(c->token);
  g_snprintf(c->peer, sizeof c->peer, "r%u", receiver_no);
  c->nameplate[0] = '\0';
  local_add(s, c);
  ferry_metrics_count(&s->metrics, FERRY_COUNT_JOINS);

  char *reply = json_object_text("type", 's', "joined", "peer", 's', c->peer, "token", 's',
                                 c->token, "reconnect_grace", 'i', (gint64)s->cfg.reconnect_grace,
                                 "ice_servers", 'n', ice_servers_json(c), NULL);
  send_text(c, reply);
  g_free(reply);
  char *env = json_object_text("type", 's', "peer-joined", "peer", 's', c->peer, NULL);
  s->store->vt->publish(s->store, c->session_id, FERRY_STORE_JOINED, c->peer, "s", env);
  g_free(env);
  g_info("event=join ip=%s session=%.8s peer=%s", c->ip, c->session_id, c->peer);
  conn_unref(c);
}

static void
handle_join(Conn *c, const FerrySignalMsg *m)
{
  if (c->server->draining) {
    refuse(c, "server-closing", "the server is shutting down; try again in a moment");
    return;
  }
  IpState *ip = ip_state(c->server, c->ip);
  double rate = c->server->cfg.ip_join_rate;
  if (!ferry_bucket_take(&ip->joins, rate / 60.0, rate, g_get_monotonic_time())) {
    refuse(c, "rate-limited",
           "too many attempts to join from your address; wait a minute and check the code");
    return;
  }
  g_strlcpy(c->nameplate, m->nameplate, sizeof c->nameplate);
  c->pending = TRUE;
  c->server->store->vt->join(c->server->store, m->nameplate, join_done, conn_ref(c));
}

static void
handle_send(Conn *c, const FerrySignalMsg *m)
{
  FerryServer *s = c->server;

  if (strcmp(m->to, c->peer) == 0) {
    refuse(c, "bad-field", "\"to\" names yourself; send to another peer or \"*\"");
    return;
  }
  /* body is JSON produced by json-glib, from is our own peer id: the
   * envelope can be assembled as text without re-parsing. */
  char *env =
      g_strdup_printf("{\"type\":\"message\",\"from\":\"%s\",\"body\":%s}", c->peer, m->body);
  s->store->vt->publish(s->store, c->session_id, FERRY_STORE_MSG, c->peer, m->to, env);
  g_free(env);
}

static void handle_resume(Conn *n, const FerrySignalMsg *m);

static void
handle_message(Conn *c, const char *data, gsize len)
{
  FerryServer *s = c->server;
  FerrySignalMsg m;
  const char *slug, *why;

  if (ferry_signal_msg_parse(data, len, &m, &slug, &why) < 0) {
    refuse(c, slug, why);
    return;
  }
  if (c->session_id != NULL && (m.type == FERRY_SIGNAL_SEND || m.type == FERRY_SIGNAL_RELEASE ||
                                m.type == FERRY_SIGNAL_LEAVE))
    c->rx_count++;
  if (m.has_ack)
    history_ack(c, m.ack);
  if (c->pending && m.type != FERRY_SIGNAL_PING && m.type != FERRY_SIGNAL_PONG) {
    refuse(c, "out-of-order", "wait for the answer to your claim or join first");
    goto out;
  }
  switch (m.type) {
  case FERRY_SIGNAL_CLAIM:
  case FERRY_SIGNAL_JOIN:
    if (c->session_id != NULL) {
      refuse(c, "out-of-order", "this connection is already in a session; leave it first");
      break;
    }
    if (m.type == FERRY_SIGNAL_CLAIM)
      handle_claim(c, &m);
    else
      handle_join(c, &m);
    break;
  case FERRY_SIGNAL_SEND:
    if (c->session_id == NULL)
      refuse(c, "out-of-order", "\"send\" needs a session: claim or join first");
    else
      handle_send(c, &m);
    break;
  case FERRY_SIGNAL_RELEASE:
    if (c->session_id == NULL || !c->is_sender) {
      refuse(c, "out-of-order", "only the sender of a session can release its nameplate");
      break;
    }
    if (c->nameplate[0] != '\0') {
      s->store->vt->release(s->store, c->session_id, c->nameplate);
      c->nameplate[0] = '\0';
    }
    send_text(c, "{\"type\":\"released\"}");
    break;
  case FERRY_SIGNAL_LEAVE:
    if (c->session_id == NULL) {
      refuse(c, "out-of-order", "not in a session");
      break;
    }
    leave_session(c, c->is_sender ? "the sender left" : "the receiver left");
    send_text(c, "{\"type\":\"left\"}");
    break;
  case FERRY_SIGNAL_RESUME:
    if (c->session_id != NULL) {
      refuse(c, "out-of-order", "this connection is already in a session");
      break;
    }
    handle_resume(c, &m);
    break;
  case FERRY_SIGNAL_PING:
    if (c->session_id != NULL) {
      char *pong =
          g_strdup_printf("{\"type\":\"pong\",\"received\":%" G_GUINT64_FORMAT "}", c->rx_count);
      send_text(c, pong);
      g_free(pong);
    } else {
      send_text(c, "{\"type\":\"pong\"}");
    }
    break;
  case FERRY_SIGNAL_PONG:
    break;
  }
out:
  ferry_signal_msg_clear(&m);
}

/* --- WebSocket plumbing --- */

/* A whole message from the client, from either kind of link. */
static void
conn_message(Conn *c, gboolean text, const char *data, gsize len)
{
  FerryServer *s = c->server;
  gint64 now = g_get_monotonic_time();

  c->last_activity_us = now;
  c->ping_sent = FALSE;
  ferry_metrics_count(&s->metrics, FERRY_COUNT_MESSAGES);

  if (!ferry_bucket_take(&c->messages, s->cfg.message_rate, s->cfg.message_rate * 2, now)) {
    refuse(c, "rate-limited", "too many messages; slow down");
    return;
  }
  if (!text) {
    refuse(c, "bad-json", "messages are JSON text frames, not binary");
    return;
  }
  if (len > s->cfg.max_message_bytes) {
    char msg[128];
    g_snprintf(msg, sizeof msg, "message of %" G_GSIZE_FORMAT " bytes is over the limit of %u", len,
               s->cfg.max_message_bytes);
    refuse(c, "too-large", msg);
    return;
  }
  conn_ref(c);
  handle_message(c, data, len);
  conn_unref(c);
}

static void conn_drop(Conn *c);

/* --- the two kinds of link --- */

static void
on_soup_message(SoupWebsocketConnection *ws, gint type, GBytes *message, gpointer user_data)
{
  gsize len;
  const char *data = g_bytes_get_data(message, &len);
  conn_message(user_data, type == SOUP_WEBSOCKET_DATA_TEXT, data, len);
}

static void
on_soup_closed(SoupWebsocketConnection *ws, gpointer user_data)
{
  conn_drop(user_data);
}

static void
soup_link_send_text(gpointer link, const char *text)
{
  soup_websocket_connection_send_text(link, text);
}

static void
soup_link_close(gpointer link, gushort code, const char *reason)
{
  soup_websocket_connection_close(link, code, reason);
}

static gboolean
soup_link_is_open(gpointer link)
{
  return soup_websocket_connection_get_state(link) == SOUP_WEBSOCKET_STATE_OPEN;
}

static gushort
soup_link_close_code(gpointer link)
{
  return soup_websocket_connection_get_close_code(link);
}

static void
soup_link_attach(gpointer link, Conn *c)
{
  g_signal_connect(link, "message", G_CALLBACK(on_soup_message), c);
  g_signal_connect(link, "closed", G_CALLBACK(on_soup_closed), c);
}

static void
soup_link_detach(gpointer link, Conn *c)
{
  g_signal_handlers_disconnect_by_data(link, c);
}

static const LinkOps soup_link_ops = {
    soup_link_send_text, soup_link_close,  soup_link_is_open, soup_link_close_code,
    soup_link_attach,    soup_link_detach, g_object_ref,      g_object_unref,
};

static void
on_raw_message(FerryWsConn *ws, gboolean text, const guint8 *data, gsize len, gpointer user_data)
{
  conn_message(user_data, text, (const char *)data, len);
}

static void
on_raw_closed(FerryWsConn *ws, gpointer user_data)
{
  Conn *c = user_data;
  if (ferry_ws_conn_get_end(ws) == FERRY_WS_END_OVERFLOW) {
    ferry_metrics_refusal(&c->server->metrics, "slow-reader");
    g_info("event=refuse ip=%s reason=slow-reader", c->ip);
  }
  conn_drop(c);
}

static const FerryWsHandlers raw_handlers = {on_raw_message, on_raw_closed};

static void
raw_link_send_text(gpointer link, const char *text)
{
  ferry_ws_conn_send_text(link, text, strlen(text));
}

static void
raw_link_close(gpointer link, gushort code, const char *reason)
{
  ferry_ws_conn_close(link, code, reason);
}

static gboolean
raw_link_is_open(gpointer link)
{
  return ferry_ws_conn_is_open(link);
}

static gushort
raw_link_close_code(gpointer link)
{
  return ferry_ws_conn_get_close_code(link);
}

static void
raw_link_attach(gpointer link, Conn *c)
{
  ferry_ws_conn_set_handlers(link, &raw_handlers, c);
}

static void
raw_link_detach(gpointer link, Conn *c)
{
  ferry_ws_conn_set_handlers(link, NULL, NULL);
}

static gpointer
raw_link_ref(gpointer link)
{
  return ferry_ws_conn_ref(link);
}

static void
raw_link_unref(gpointer link)
{
  ferry_ws_conn_unref(link);
}

static const LinkOps raw_link_ops = {
    raw_link_send_text, raw_link_close,  raw_link_is_open, raw_link_close_code,
    raw_link_attach,    raw_link_detach, raw_link_ref,     raw_link_unref,
};

/* The client's connection is gone. A member of a session is kept for
 * --reconnect-grace, so a client whose network blinked can "resume" with
 * its token and lose nothing; everyone else is forgotten now. */
static void
conn_drop(Conn *c)
{
  FerryServer *s = c->server;

  if (c->closed || c->link == NULL)
    return;
  c->ops->detach(c->link, c);
  IpState *ip = ip_lookup(s, c->ip);
  if (ip != NULL && ip->conns > 0)
    ip->conns--;
  g_hash_table_remove(s->conns, c);
  gushort close_code = c->ops->close_code(c->link);
  g_info("event=disconnect ip=%s code=%u connections=%u", c->ip, close_code,
         g_hash_table_size(s->conns));
  /* A client that closed with 1000 (normal) left on purpose; any other
   * ending (no close frame, an error, a dead network) may be a blink. */
  gboolean clean = close_code == SOUP_WEBSOCKET_CLOSE_NORMAL;
  if (c->session_id != NULL && s->cfg.reconnect_grace > 0 && !s->draining && !clean) {
    c->ops->unref(g_steal_pointer(&c->link));
    c->away_since_us = g_get_monotonic_time();
    g_hash_table_insert(s->away, c->token, c); /* takes the connection's ref */
    g_info("event=away session=%.8s peer=%s", c->session_id, c->peer);
  } else {
    leave_session(c, c->is_sender ? "the sender disconnected" : "the receiver disconnected");
    c->closed = TRUE;
  }
  ferry_metrics_gauge(&s->metrics, FERRY_GAUGE_CONNECTIONS, g_hash_table_size(s->conns));
  drain_check(s);
  if (c->closed)
    conn_unref(c);
}

/* The grace period is over (or the server is stopping): the membership
 * ends as if the client had disconnected just now. */
static void
away_expire(Conn *c)
{
  g_hash_table_steal(c->server->away, c->token);
  leave_session(c, c->is_sender ? "the sender disconnected" : "the receiver disconnected");
  c->closed = TRUE;
  conn_unref(c);
}

/* A client came back with its token: its new connection takes over the
 * old membership (same peer id, same session), and what it missed while
 * away is delivered in order. */
static void
handle_resume(Conn *n, const FerrySignalMsg *m)
{
  FerryServer *s = n->server;
  Conn *a = g_hash_table_lookup(s->away, m->token);

  if (a == NULL) {
    refuse(n, "no-such-session",
           "that session is gone (it ended, its reconnect grace period ran out, or the server "
           "restarted); start the transfer again");
    return;
  }
  g_hash_table_steal(s->away, a->token);
  a->ops = n->ops;
  a->link = a->ops->ref(n->link);
  n->ops->detach(n->link, n);
  a->ops->attach(a->link, a);
  g_free(a->ip);
  a->ip = g_strdup(n->ip);
  g_free(a->host);
  a->host = g_strdup(n->host);
  a->last_activity_us = g_get_monotonic_time();
  a->ping_sent = FALSE;
  a->away_since_us = 0;
  g_hash_table_remove(s->conns, n);
  g_hash_table_add(s->conns, a); /* the ip's connection count moves with it */
  n->closed = TRUE;
  conn_unref(n);

  history_ack(a, m->last_seq);
  gboolean lost = m->last_seq < a->history_dropped_upto;
  char *reply = json_object_text("type", 's', "resumed", "peer", 's', a->peer, "nameplate", 's',
                                 a->nameplate, "received", 'i', (gint64)a->rx_count, "missed", 'i',
                                 (gint64)a->history.length, "lost", 'b', lost, NULL);
  send_text(a, reply);
  g_free(reply);
  for (GList *l = a->history.head; l != NULL; l = l->next)
    send_text(a, ((HistoryEntry *)l->data)->text);
  ferry_metrics_count(&s->metrics, FERRY_COUNT_RESUMES);
  g_info("event=resume session=%.8s peer=%s", a->session_id, a->peer);
}

/* The client's address: the peer of the TCP connection, or with
 * --trust-proxy the last address in X-Forwarded-For (the one our own proxy
 * appended; earlier entries are whatever the client claimed). */
static char *
client_ip(FerryServer *s, SoupServerMessage *msg)
{
  if (s->cfg.trust_proxy) {
    const char *xff = soup_message_headers_get_list(soup_server_message_get_request_headers(msg),
                                                    "X-Forwarded-For");
    if (xff != NULL && *xff != '\0') {
      const char *last = strrchr(xff, ',');
      char *ip = g_strstrip(g_strdup(last ? last + 1 : xff));
      if (*ip != '\0' && g_hostname_is_ip_address(ip))
        return ip;
      g_free(ip);
    }
  }
  const char *host = soup_server_message_get_remote_host(msg);
  return g_strdup(host ? host : "unknown");
}

static void
http_refuse(FerryServer *s, SoupServerMessage *msg, guint status, const char *slug,
            const char *text, int retry_after)
{
  char *body = ferry_signal_error_json(slug, text);
  ferry_metrics_refusal(&s->metrics, slug);
  if (retry_after > 0) {
    char ra[16];
    g_snprintf(ra, sizeof ra, "%d", retry_after);
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Retry-After", ra);
  }
  /* Clients that cannot read a refused handshake's body (libsoup's cannot)
   * find the same words in headers. */
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "X-Ferry-Error-Code",
                               slug);
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "X-Ferry-Error",
                               text);
  /* A refused client gets no keep-alive: it holds nothing of ours. */
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection",
                               "close");
  soup_server_message_set_status(msg, status, NULL);
  soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_TAKE, body, strlen(body));
}

/* Runs before the WebSocket handshake: refusing here costs no upgrade. */
static void
ws_early_handler(SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
                 gpointer user_data)
{
  FerryServer *s = user_data;
  g_autofree char *ip = client_ip(s, msg);

  if (s->draining) {
    http_refuse(s, msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "server-closing",
                "the server is shutting down; try again in a moment", 5);
    return;
  }
  if (g_hash_table_size(s->conns) >= s->cfg.max_connections) {
    http_refuse(s, msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "too-many-connections",
                "the server has as many connections as it allows; try again later", 10);
    return;
  }
  IpState *st = ip_state(s, ip);
  double rate = s->cfg.ip_connect_rate / 60.0;
  if (st->conns >= s->cfg.max_connections_per_ip) {
    char text[160];
    g_snprintf(text, sizeof text,
               "your address already holds %u connections, the most this server allows; close "
               "some first",
               st->conns);
    http_refuse(s, msg, 429, "too-many-connections", text, 10);
    return;
  }
  if (!ferry_bucket_take(&st->connects, rate, s->cfg.ip_connect_rate, g_get_monotonic_time())) {
    http_refuse(s, msg, 429, "rate-limited",
                "too many connections from your address; wait a minute",
                ferry_bucket_retry_after(&st->connects, rate));
    return;
  }
}

/* A client is upgraded: it becomes a Conn on link (whose reference the
 * Conn takes) and hears "welcome". */
static void
conn_open(FerryServer *s, char *ip, char *host, const LinkOps *ops, gpointer link)
{
  Conn *c = g_new0(Conn, 1);

  c->server = s;
  c->ops = ops;
  c->link = link;
  c->ip = ip;
  c->host = host;
  c->refcount = 1;
  c->last_activity_us = g_get_monotonic_time();
  ip_state(s, c->ip)->conns++;
  g_hash_table_add(s->conns, c);
  ferry_metrics_count(&s->metrics, FERRY_COUNT_CONNECTIONS);
  ferry_metrics_gauge(&s->metrics, FERRY_GAUGE_CONNECTIONS, g_hash_table_size(s->conns));
  g_info("event=connect ip=%s connections=%u", c->ip, g_hash_table_size(s->conns));
  ops->attach(link, c);
  send_text(c, "{\"type\":\"welcome\",\"version\":1,\"server\":\"ferry/" FERRY_VERSION "\"}");
}

/* wss:// (--tls-cert): libsoup keeps the connection. */
static void
ws_handler(SoupServer *soup, SoupServerMessage *msg, const char *path, SoupWebsocketConnection *ws,
           gpointer user_data)
{
  FerryServer *s = user_data;

  /* libsoup drops a connection whose frame is far over the limit; frames
   * just over it get our own "too-large" answer and the connection lives. */
  soup_websocket_connection_set_max_incoming_payload_size(ws,
                                                          (guint64)s->cfg.max_message_bytes * 4);
  conn_open(s, client_ip(s, msg), g_strdup(g_uri_get_host(soup_server_message_get_uri(msg))),
            &soup_link_ops, g_object_ref(ws));
}

/* The 101 response is written: take the socket from libsoup and hand it to
 * the epoll hub. Whatever libsoup already read past the request is the
 * client's first frames, so it goes along. */
static void
ws_upgraded(SoupServerMessage *msg, gpointer user_data)
{
  FerryServer *s = user_data;
  char *ip = client_ip(s, msg);
  char *host = g_strdup(g_uri_get_host(soup_server_message_get_uri(msg)));
  GByteArray *early = g_byte_array_new();
  int fd = -1;

  g_object_ref(msg);
  GIOStream *stream = soup_server_message_steal_connection(msg);
  GSocket *sock = stream != NULL ? g_object_get_data(G_OBJECT(stream), "GSocket") : NULL;
  if (sock != NULL) {
    GInputStream *in = g_io_stream_get_input_stream(stream);
    if (G_IS_POLLABLE_INPUT_STREAM(in)) {
      guint8 buf[4096];
      gssize n;
      while ((n = g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(in), buf,
                                                           sizeof buf, NULL, NULL)) > 0)
        g_byte_array_append(early, buf, (guint)n);
    }
    fd = fcntl(g_socket_get_fd(sock), F_DUPFD_CLOEXEC, 0);
  }
  if (stream != NULL)
    g_io_stream_close(stream, NULL, NULL); /* libsoup's fd; ours stays open */
  g_clear_object(&stream);
  g_object_unref(msg);
  if (fd < 0) {
    g_warning("cannot take over an upgraded connection from %s: %s; it is dropped", ip,
              sock == NULL ? "libsoup did not give its socket" : g_strerror(errno));
    g_free(ip);
    g_free(host);
    g_byte_array_unref(early);
    return;
  }
  FerryWsConn *raw = ferry_ws_conn_new(s->hub, fd, early->data, early->len, NULL, NULL);
  g_byte_array_unref(early);
  conn_open(s, ip, host, &raw_link_ops, raw);
}

/* ws://: answers the handshake (or refuses it: 400 and why), then waits
 * for the 101 to be written, as libsoup's own WebSocket handler does. */
static void
ws_upgrade_handler(SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
                   gpointer user_data)
{
  GError *error = NULL;

  if (!soup_websocket_server_check_handshake(msg, NULL, NULL, NULL, &error)) {
    g_info("event=bad-handshake reason=\"%s\"", error->message);
    g_error_free(error);
  }
  if (soup_websocket_server_process_handshake(msg, NULL, NULL, NULL, NULL))
    g_signal_connect(msg, "wrote-informational", G_CALLBACK(ws_upgraded), user_data);
}

/* --- /health and /metrics --- */

static void
health_handler(SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
               gpointer user_data)
{
  FerryServer *s = user_data;
  char *body = g_strdup_printf("{\"status\":\"%s\",\"connections\":%u,\"sessions\":%u}\n",
                               s->draining ? "draining" : "ok", g_hash_table_size(s->conns),
                               s->local_sessions);
  soup_server_message_set_status(msg, s->draining ? 503 : 200, NULL);
  soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_TAKE, body, strlen(body));
}

static void
metrics_handler(SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
                gpointer user_data)
{
  FerryServer *s = user_data;
  ferry_metrics_gauge(&s->metrics, FERRY_GAUGE_IP_ENTRIES, g_hash_table_size(s->ips));
  GString *text = g_string_new(NULL);
  char *body = ferry_metrics_render(&s->metrics);
  g_string_append(text, body);
  g_free(body);
  ferry_relay_hub_render_metrics(s->relay, text);
  body = g_string_free(text, FALSE);
  soup_server_message_set_status(msg, 200, NULL);
  soup_server_message_set_response(msg, "text/plain; version=0.0.4", SOUP_MEMORY_TAKE, body,
                                   strlen(body));
}

static void
default_handler(SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
                gpointer user_data)
{
  static const char body[] = "ferry rendezvous server: WebSocket signaling at /v1, HTTP relay "
                             "at /r/NAME, see also /health and /metrics\n";
  soup_server_message_set_status(msg, strcmp(path, "/") == 0 ? 200 : 404, NULL);
  soup_server_message_set_response(msg, "text/plain", SOUP_MEMORY_STATIC, body, sizeof body - 1);
}

/* --- timers: idle connections, code and session lifetimes, per-IP state --- */

static void
sweep_conn(Conn *c, gint64 now)
{
  FerryServer *s = c->server;
  gint64 idle_us = (gint64)s->cfg.idle_timeout * G_USEC_PER_SEC;

  if (c->session_id != NULL && c->is_sender) {
    if (now >= c->session_deadline_us) {
      refuse(c, "session-expired",
             "this session reached the server's session lifetime; start again");
      leave_session(c, "the session reached its lifetime");
    } else if (c->nameplate[0] != '\0' && now >= c->code_deadline_us) {
      if (c->receivers_seen == 0) {
        refuse(c, "code-expired",
               "nobody used the code in time; run ferry send again for a new code");
        leave_session(c, "the code expired");
      } else {
        s->store->vt->release(s->store, c->session_id, c->nameplate);
        c->nameplate[0] = '\0';
        send_text(c, "{\"type\":\"released\",\"reason\":\"code-ttl\"}");
      }
    }
  }
  /* A ping always comes before the close, however coarse the sweep. */
  if (c->ping_sent && now - c->last_activity_us > idle_us) {
    refuse_and_close(c, "idle-timeout", "no message (or pong) for too long; reconnect",
                     SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION);
  } else if (!c->ping_sent && now - c->last_activity_us > idle_us / 2) {
    c->ping_sent = TRUE;
    send_text(c, "{\"type\":\"ping\"}");
  }
}

static gboolean
sweep(gpointer user_data)
{
  FerryServer *s = user_data;
  gint64 now = g_get_monotonic_time();
  GHashTableIter it;
  gpointer key, value;

  GPtrArray *all = g_ptr_array_new_with_free_func((GDestroyNotify)(void (*)(void))conn_unref);
  g_hash_table_iter_init(&it, s->conns);
  while (g_hash_table_iter_next(&it, &key, NULL))
    g_ptr_array_add(all, conn_ref(key));
  for (guint i = 0; i < all->len; i++)
    if (!((Conn *)all->pdata[i])->closed)
      sweep_conn(all->pdata[i], now);
  g_ptr_array_free(all, TRUE);

  GPtrArray *expired = g_ptr_array_new();
  g_hash_table_iter_init(&it, s->away);
  while (g_hash_table_iter_next(&it, NULL, &value)) {
    Conn *c = value;
    if (now - c->away_since_us > (gint64)s->cfg.reconnect_grace * G_USEC_PER_SEC)
      g_ptr_array_add(expired, c);
    else if (c->is_sender && now >= c->session_deadline_us)
      g_ptr_array_add(expired, c);
  }
  for (guint i = 0; i < expired->len; i++)
    away_expire(expired->pdata[i]);
  g_ptr_array_free(expired, TRUE);

  /* Per-IP state is forgotten once it has no connection and its buckets
   * are full again, so it can change no future decision. */
  g_hash_table_iter_init(&it, s->ips);
  while (g_hash_table_iter_next(&it, &key, &value)) {
    IpState *st = value;
    if (st->conns == 0 && now - st->last_us > IP_IDLE_EVICT_US &&
        ferry_bucket_is_full(&st->connects, s->cfg.ip_connect_rate / 60.0, s->cfg.ip_connect_rate,
                             now) &&
        ferry_bucket_is_full(&st->sessions, s->cfg.ip_session_rate / 60.0, s->cfg.ip_session_rate,
                             now) &&
        ferry_bucket_is_full(&st->joins, s->cfg.ip_join_rate / 60.0, s->cfg.ip_join_rate, now))
      g_hash_table_iter_remove(&it);
  }
  return G_SOURCE_CONTINUE;
}

/* The ICE servers a peer should use, as a JSON array of RTCIceServer-like
 * objects: our own STUN responder (at the host name the client used to
 * reach us) and, when configured, TURN with fresh credentials for this
 * peer. */
static JsonNode *
ice_servers_json(Conn *c)
{
  FerryServer *s = c->server;
  JsonArray *arr = json_array_new();
  JsonNode *node = json_node_new(JSON_NODE_ARRAY);

  if (s->stun != NULL && c->host != NULL) {
    JsonObject *o = json_object_new();
    JsonArray *urls = json_array_new();
    gboolean v6 = strchr(c->host, ':') != NULL;
    guint ports[2] = {s->stun_port_value, s->stun2_port_value}; /* the second: 0 if none */
    for (guint i = 0; i < G_N_ELEMENTS(ports) && ports[i] != 0; i++) {
      char *url =
          g_strdup_printf("stun:%s%s%s:%u", v6 ? "[" : "", c->host, v6 ? "]" : "", ports[i]);
      json_array_add_string_element(urls, url);
      g_free(url);
    }
    json_object_set_array_member(o, "urls", urls);
    json_array_add_object_element(arr, o);
  }
  if (s->turn != NULL) {
    GError *error = NULL;
    char peer_id[48];
    g_snprintf(peer_id, sizeof peer_id, "%.8s.%s", c->session_id, c->peer);
    FerryTurnCredentials *cred =
        ferry_turn_config_mint(s->turn, peer_id, g_get_real_time() / G_USEC_PER_SEC, &error);
    if (cred != NULL) {
      JsonObject *o = json_object_new();
      JsonArray *urls = json_array_new();
      for (char **u = cred->urls; *u != NULL; u++)
        json_array_add_string_element(urls, *u);
      json_object_set_array_member(o, "urls", urls);
      json_object_set_string_member(o, "username", cred->username);
      json_object_set_string_member(o, "credential", cred->credential);
      json_object_set_int_member(o, "ttl", cred->ttl);
      json_array_add_object_element(arr, o);
      ferry_turn_credentials_free(cred);
    } else {
      g_warning("cannot mint TURN credentials: %s", error->message);
      g_error_free(error);
    }
  }
  json_node_take_array(node, arr);
  return node;
}

static GSocketAddress *
parse_listen(const char *text, GError **error)
{
  const char *colon = strrchr(text, ':');
  g_autofree char *host = NULL;
  guint64 port;

  if (colon == NULL || colon[1] == '\0' ||
      !g_ascii_string_to_unsigned(colon + 1, 10, 0, 65535, &port, NULL)) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "--listen '%s' is not HOST:PORT (for example 0.0.0.0:8080 or [::]:8080)", text);
    return NULL;
  }
  host = g_strndup(text, colon - text);
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    host[strlen(host) - 1] = '\0';
    memmove(host, host + 1, strlen(host));
  }
  if (host[0] == '\0')
    return g_inet_socket_address_new_from_string("0.0.0.0", (guint)port);
  GSocketAddress *addr = g_inet_socket_address_new_from_string(host, (guint)port);
  if (addr == NULL)
    ferry_set_error(
        error, FERRY_ERR_INVALID,
        "--listen '%s': '%s' is not an IP address (use 0.0.0.0, [::] or a local address)", text,
        host);
  return addr;
}

static gboolean
setup_turn(FerryServer *s, GError **error)
{
  if (s->cfg.turn_servers == NULL || s->cfg.turn_servers[0] == NULL)
    return TRUE;
  if (s->cfg.turn_secret == NULL || *s->cfg.turn_secret == '\0')
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "--turn-server needs --turn-static-auth-secret (the secret coturn was "
                           "started with: static-auth-secret=…)");
  s->turn = ferry_turn_config_new(s->cfg.turn_secret, (guint)s->cfg.turn_cred_ttl, error);
  if (s->turn == NULL)
    return FALSE;
  for (char **u = s->cfg.turn_servers; *u != NULL; u++)
    if (!ferry_turn_config_add_url(s->turn, *u, error))
      return FALSE;
  return TRUE;
}

FerryServer *
ferry_server_new(const FerryServerConfig *cfg, GError **error)
{
  FerryServer *s = g_new0(FerryServer, 1);
  g_autoptr(GSocketAddress) addr = NULL;
  GError *local = NULL;

  s->cfg = *cfg;
  s->cfg.listen = g_strdup(cfg->listen ? cfg->listen : "0.0.0.0:8080");
  s->cfg.tls_cert = g_strdup(cfg->tls_cert);
  s->cfg.tls_key = g_strdup(cfg->tls_key);
  s->cfg.turn_servers = g_strdupv(cfg->turn_servers);
  s->cfg.turn_secret = g_strdup(cfg->turn_secret);
  s->cfg.store = g_strdup(cfg->store);
  s->cfg.relay_secret = g_strdup(cfg->relay_secret);
  ferry_metrics_init(&s->metrics);
  s->relay = ferry_relay_hub_new(&s->cfg, &s->metrics);
  s->ips = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  s->conns = g_hash_table_new(NULL, NULL);
  s->sessions =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_ptr_array_unref);
  s->away = g_hash_table_new(g_str_hash, g_str_equal);

  if (!setup_turn(s, error))
    goto fail;
  addr = parse_listen(s->cfg.listen, error);
  if (addr == NULL)
    goto fail;
  if ((s->cfg.tls_cert == NULL) != (s->cfg.tls_key == NULL)) {
    ferry_set_error(error, FERRY_ERR_INVALID, "--tls-cert and --tls-key go together: give both");
    goto fail;
  }
  s->store = ferry_store_new(s->cfg.store, deliver, s, error);
  if (s->store == NULL)
    goto fail;

  s->soup = soup_server_new("server-header", "ferry/" FERRY_VERSION, NULL);
  if (s->cfg.tls_cert != NULL) {
    GTlsCertificate *cert =
        g_tls_certificate_new_from_files(s->cfg.tls_cert, s->cfg.tls_key, &local);
    if (cert == NULL) {
      ferry_set_error(error, FERRY_ERR_INVALID, "cannot load --tls-cert %s / --tls-key %s: %s",
                      s->cfg.tls_cert, s->cfg.tls_key, local->message);
      g_error_free(local);
      goto fail;
    }
    soup_server_set_tls_certificate(s->soup, cert);
    g_object_unref(cert);
  }
  soup_server_add_early_handler(s->soup, "/v1", ws_early_handler, s, NULL);
  if (s->cfg.tls_cert != NULL) {
    soup_server_add_websocket_handler(s->soup, "/v1", NULL, NULL, ws_handler, s, NULL);
  } else {
    s->hub = ferry_ws_hub_new((gsize)s->cfg.max_message_bytes * 4,
                              MAX(OUTPUT_QUEUE_MIN, (gsize)s->cfg.max_message_bytes * 16), error);
    if (s->hub == NULL)
      goto fail;
    soup_server_add_handler(s->soup, "/v1", ws_upgrade_handler, s, NULL);
  }
  soup_server_add_handler(s->soup, "/health", health_handler, s, NULL);
  soup_server_add_handler(s->soup, "/metrics", metrics_handler, s, NULL);
  soup_server_add_early_handler(s->soup, "/r", ferry_relay_early_handler, s->relay, NULL);
  soup_server_add_handler(s->soup, "/r", ferry_relay_handler, s->relay, NULL);
  soup_server_add_handler(s->soup, "/relay-sw.js", ferry_relay_page_worker_handler, NULL, NULL);
  soup_server_add_handler(s->soup, NULL, default_handler, s, NULL);

  if (!soup_server_listen(s->soup, addr, s->cfg.tls_cert ? SOUP_SERVER_LISTEN_HTTPS : 0, &local)) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot listen on %s: %s (use --listen HOST:PORT)",
                    s->cfg.listen, local->message);
    g_error_free(local);
    goto fail;
  }
  /* GSocketListener listens with a backlog of 10 ("listen-backlog"): a
   * burst of connects overflows it and the kernel drops SYNs that clients
   * resend only after a second. listen() on a listening socket only
   * resizes its queue (g_socket_set_listen_backlog() refuses by then). */
  GSList *socks = soup_server_get_listeners(s->soup);
  for (GSList *l = socks; l != NULL; l = l->next)
    if (listen(g_socket_get_fd(l->data), SOMAXCONN) < 0)
      g_warning("cannot enlarge the listen queue of %s: %s; bursts of connections may wait",
                s->cfg.listen, g_strerror(errno));
  g_slist_free(socks);
  GSList *uris = soup_server_get_uris(s->soup);
  if (uris != NULL)
    s->port = (guint)g_uri_get_port(uris->data);
  g_slist_free_full(uris, (GDestroyNotify)g_uri_unref);

  if (s->cfg.stun_port >= 0) {
    const char *host =
        g_inet_address_to_string(g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(addr)));
    s->stun = ferry_stun_server_new(g_main_context_get_thread_default());
    gboolean any = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
    if (!ferry_stun_server_listen(s->stun, any ? NULL : host, (guint16)s->cfg.stun_port, error)) {
      g_free((char *)host);
      g_prefix_error(error, "STUN responder (--stun-port %d, -1 turns it off): ", s->cfg.stun_port);
      goto fail;
    }
    s->stun_port_value = ferry_stun_server_get_port(s->stun);
    ferry_metrics_set_stun(&s->metrics, s->stun);
    /* The second port is a help, not a must: taken, the server runs
     * without it and clients just cannot punch through symmetric NATs
     * unless a TURN server gives them a second address to ask. */
    if (s->stun_port_value < 65535) {
      GError *e2 = NULL;
      guint16 p2 = s->cfg.stun_port == 0 ? 0 : (guint16)(s->stun_port_value + 1);
      s->stun2 = ferry_stun_server_new(g_main_context_get_thread_default());
      if (ferry_stun_server_listen(s->stun2, any ? NULL : host, p2, &e2)) {
        s->stun2_port_value = ferry_stun_server_get_port(s->stun2);
      } else {
        g_warning("no second STUN port (%u): %s; clients behind endpoint-dependent NATs will "
                  "need the relay unless a TURN server is configured",
                  p2, e2->message);
        g_clear_error(&e2);
        g_clear_pointer(&s->stun2, ferry_stun_server_free);
      }
    }
    g_free((char *)host);
  }
  s->sweep_id = g_timeout_add(SWEEP_INTERVAL_MS, sweep, s);
  return s;

fail:
  ferry_server_free(s);
  return NULL;
}

guint
ferry_server_get_port(FerryServer *server)
{
  return server->port;
}

guint
ferry_server_get_stun_port(FerryServer *server)
{
  return server->stun_port_value;
}

guint
ferry_server_get_stun_second_port(FerryServer *server)
{
  return server->stun2_port_value;
}

static gboolean
drain_timeout(gpointer user_data)
{
  FerryServer *s = user_data;
  s->drain_timer = 0;
  if (s->drain_done != NULL) {
    GSourceFunc done = s->drain_done;
    s->drain_done = NULL;
    done(s->drain_data);
  }
  return G_SOURCE_REMOVE;
}

void
ferry_server_drain(FerryServer *s, GSourceFunc done, gpointer user_data)
{
  GHashTableIter it;
  gpointer key;

  s->draining = TRUE;
  s->drain_done = done;
  s->drain_data = user_data;
  GList *away = g_hash_table_get_values(s->away);
  for (GList *l = away; l != NULL; l = l->next)
    away_expire(l->data);
  g_list_free(away);
  g_message("event=drain connections=%u relays=%u timeout=%ds", g_hash_table_size(s->conns),
            ferry_relay_hub_count(s->relay), s->cfg.drain_timeout);
  s->drain_timer = g_timeout_add_seconds((guint)s->cfg.drain_timeout, drain_timeout, s);
  s->relays_idle = FALSE;
  ferry_relay_hub_drain(s->relay, relays_drained, s); /* may call drain_check: done */
  if (s->drain_done == NULL)
    return;

  GPtrArray *all = g_ptr_array_new();
  g_hash_table_iter_init(&it, s->conns);
  while (g_hash_table_iter_next(&it, &key, NULL))
    g_ptr_array_add(all, key);
  for (guint i = 0; i < all->len; i++) {
    Conn *c = all->pdata[i];
    send_text(c, "{\"type\":\"closing\",\"reason\":\"the server is shutting down\","
                 "\"retry_after\":5}");
    if (c->link != NULL && c->ops->is_open(c->link))
      c->ops->close(c->link, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "server shutting down");
  }
  g_ptr_array_free(all, TRUE);
}

void
ferry_server_free(FerryServer *s)
{
  if (s == NULL)
    return;
  g_clear_handle_id(&s->sweep_id, g_source_remove);
  g_clear_handle_id(&s->drain_timer, g_source_remove);
  /* Relays let go of their messages before libsoup closes them. */
  g_clear_pointer(&s->relay, ferry_relay_hub_free);
  if (s->soup != NULL) {
    soup_server_disconnect(s->soup);
    g_clear_object(&s->soup);
  }
  /* Connections still open are dropped without leaving their sessions
   * politely: the process is going away. */
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init(&it, s->conns);
  while (g_hash_table_iter_next(&it, &key, NULL)) {
    Conn *c = key;
    c->closed = TRUE;
    c->ops->detach(c->link, c);
    g_hash_table_iter_remove(&it);
    conn_unref(c);
  }
  g_hash_table_iter_init(&it, s->away);
  while (g_hash_table_iter_next(&it, NULL, &key)) {
    g_hash_table_iter_steal(&it);
    ((Conn *)key)->closed = TRUE;
    conn_unref(key);
  }
  ferry_ws_hub_free(s->hub);
  g_hash_table_destroy(s->away);
  g_hash_table_destroy(s->sessions);
  g_hash_table_destroy(s->conns);
  g_hash_table_destroy(s->ips);
  ferry_store_free(s->store);
  ferry_stun_server_free(s->stun);
  ferry_stun_server_free(s->stun2);
  ferry_turn_config_free(s->turn);
  ferry_metrics_clear(&s->metrics);
  g_free(s->cfg.listen);
  g_free(s->cfg.tls_cert);
  g_free(s->cfg.tls_key);
  g_strfreev(s->cfg.turn_servers);
  g_free(s->cfg.turn_secret);
  g_free(s->cfg.store);
  g_free(s->cfg.relay_secret);
  g_free(s);
}
