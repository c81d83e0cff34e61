/* The Redis store: several `ferry serve` instances share nameplates and
 * sessions through one Redis, and pub/sub carries each session's messages
 * to whichever instance holds the recipient.
 *
 * Keys (all in the database the URL names):
 *   ferry:np:<nameplate>  string: session id, expires after the code TTL
 *   ferry:s:<session id>  hash: max_receivers, receivers, joined, nameplate;
 *                         expires after the session TTL
 *   ferry:sessions        sorted set: session id scored by its expiry (ms
 *                         since the epoch), for count_sessions
 * Channel ferry:c:<session id> carries "KIND\tFROM\tTO\tENVELOPE".
 *
 * Every change that reads before it writes is one Lua script, so two
 * instances can never hand out the same nameplate or overfill a session.
 * The scripts name keys they compute, which plain Redis allows and Redis
 * Cluster does not: point --store at one primary.
 *
 * Two connections: one for commands, one for SUBSCRIBE (a subscribed
 * connection can run nothing else). Either may drop at any time; the store
 * then answers "store-unavailable", warns once, and reconnects with
 * backoff, subscribing again to every channel still wanted. */
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <ferry/error.h>

#include "server/store.h"

#define NAMEPLATE_PREFIX "ferry:np:"
#define SESSION_PREFIX   "ferry:s:"
#define CHANNEL_PREFIX   "ferry:c:"
#define SESSIONS_KEY     "ferry:sessions"

#define SYNC_TIMEOUT_SEC 2                    /* start-up check: connect and PING */
#define STALL_US         (5 * G_USEC_PER_SEC) /* no answer this long: drop the connection */
#define BACKOFF_MIN_MS   500                  /* first reconnect delay, doubled per failure */
#define BACKOFF_MAX_MS   10000                /* longest reconnect delay */
#define COUNT_MAX_AGE_US G_USEC_PER_SEC       /* count_sessions asks Redis at most this often */
#define TICK_MS          1000                 /* watchdog period */

/* Lowest free nameplate from 1 up, taken with SET NX so that concurrent
 * claims from other instances can never both win one. ARGV: session id,
 * max receivers, code TTL ms, session TTL ms, now ms, session expiry ms. */
static const char claim_lua[] =
    "local sid = ARGV[1]\n"
    "for i = 1, 999999 do\n"
    "  if redis.call('SET', '" NAMEPLATE_PREFIX "' .. i, sid, 'NX', 'PX', ARGV[3]) then\n"
    "    local key = '" SESSION_PREFIX "' .. sid\n"
    "    redis.call('DEL', key)\n"
    "    redis.call('HSET', key, 'max_receivers', ARGV[2], 'receivers', 0, 'joined', 0,\n"
    "               'nameplate', i)\n"
    "    redis.call('PEXPIRE', key, ARGV[4])\n"
    "    redis.call('ZREMRANGEBYSCORE', '" SESSIONS_KEY "', '-inf', ARGV[5])\n"
    "    redis.call('ZADD', '" SESSIONS_KEY "', ARGV[6], sid)\n"
    "    return tostring(i)\n"
    "  end\n"
    "end\n"
    "return redis.error_reply('too-many-sessions')\n";

/* Returns {error slug or "", session id, receiver number, max receivers}.
 * ARGV: nameplate. */
static const char join_lua[] =
    "local sid = redis.call('GET', '" NAMEPLATE_PREFIX "' .. ARGV[1])\n"
    "if not sid then return {'no-such-nameplate', '', 0, 0} end\n"
    "local key = '" SESSION_PREFIX "' .. sid\n"
    "local v = redis.call('HMGET', key, 'receivers', 'max_receivers')\n"
    "local n, max = tonumber(v[1]), tonumber(v[2])\n"
    "if not n or not max then return {'no-such-nameplate', '', 0, 0} end\n"
    "if n >= max then return {'session-full', '', 0, max} end\n"
    "redis.call('HINCRBY', key, 'receivers', 1)\n"
    "return {'', sid, redis.call('HINCRBY', key, 'joined', 1), max}\n";

/* Deletes a nameplate only while it still names this session: once it has
 * expired another session may own it. Tries the nameplate the session
 * record remembers and the one the caller passed. ARGV: session id,
 * nameplate. */
#define DROP_NAMEPLATE_LUA                                                                         \
  "local function drop(np)\n"                                                                      \
  "  if np and redis.call('GET', '" NAMEPLATE_PREFIX "' .. np) == ARGV[1] then\n"                  \
  "    redis.call('DEL', '" NAMEPLATE_PREFIX "' .. np)\n"                                          \
  "  end\n"                                                                                        \
  "end\n"                                                                                          \
  "drop(redis.call('HGET', '" SESSION_PREFIX "' .. ARGV[1], 'nameplate'))\n"                       \
  "drop(ARGV[2])\n"

static const char release_lua[] = DROP_NAMEPLATE_LUA "return 0\n";

static const char end_lua[] =
    DROP_NAMEPLATE_LUA "redis.call('DEL', '" SESSION_PREFIX "' .. ARGV[1])\n"
                       "redis.call('ZREM', '" SESSIONS_KEY "', ARGV[1])\n"
                       "return 0\n";

/* Never below zero, and never recreating an expired record. ARGV: session id. */
static const char leave_lua[] =
    "local key = '" SESSION_PREFIX "' .. ARGV[1]\n"
    "local n = tonumber(redis.call('HGET', key, 'receivers'))\n"
    "if n and n > 0 then redis.call('HINCRBY', key, 'receivers', -1) end\n"
    "return 0\n";

/* ARGV: now ms. */
static const char count_lua[] =
    "redis.call('ZREMRANGEBYSCORE', '" SESSIONS_KEY "', '-inf', ARGV[1])\n"
    "return redis.call('ZCARD', '" SESSIONS_KEY "')\n";

typedef struct _RedisStore RedisStore;
typedef struct _Watch Watch;

/* One async connection and what the watchdog and reconnection need. */
typedef struct {
  RedisStore *r;
  redisAsyncContext *ac; /* NULL while down */
  gboolean up;           /* connected */
  gint64 opened_us;      /* when ac was created */
  guint outstanding;     /* replies awaited */
  gint64 progress_us;    /* last reply, or the send that ended a quiet spell */
  const char *drop_reason;
  guint backoff_ms; /* delay before the next reconnect attempt */
  GSource *retry;   /* reconnect timer */
} Conn;

/* Drives one hiredis async context from a GMainContext. Unlike the
 * adapter hiredis ships, it notices when a write handler has freed the
 * context and then leaves it alone. */
struct _Watch {
  GSource source;
  GPollFD pfd;
  redisAsyncContext *ac; /* NULL once hiredis has let go of it */
  RedisStore *r;         /* holds a reference until then */
  Conn *conn;
};

/* A session this instance is subscribed to. Publications from this
 * instance wait in held until Redis has confirmed the subscription, so an
 * instance always hears what it says and every reply that follows. */
typedef struct {
  guint refs;           /* local subscribers */
  guint subs_in_flight; /* SUBSCRIBEs not yet confirmed */
  GPtrArray *held;      /* GString payloads to publish once confirmed */
} Channel;

struct _RedisStore {
  FerryStore base;
  gint refs; /* the owner's, one per live connection, and short-lived ones */
  gboolean freed;
  gboolean outage;     /* warned that Redis is gone, not yet back */
  gboolean complained; /* warned about a refused command since the last connect */
  char *host;
  int port;
  guint db;
  char *where; /* "HOST:PORT" for messages */
  GMainContext *ctx;
  Conn cmd;
  Conn sub;
  GHashTable *channels; /* session id → Channel */
  GSource *tick;
  gint64 count; /* -1: unknown */
  gint64 count_asked_us;
  gboolean count_in_flight;
};

/* A claim or join awaiting its reply. */
typedef struct {
  RedisStore *r;
  FerryStoreClaimFunc claim;
  FerryStoreJoinFunc join;
  gpointer user_data;
} Op;

static void conn_open(RedisStore *r, Conn *c);

static RedisStore *
store_ref(RedisStore *r)
{
  r->refs++;
  return r;
}

static void
store_unref(RedisStore *r)
{
  if (--r->refs > 0)
    return;
  g_hash_table_destroy(r->channels);
  g_main_context_unref(r->ctx);
  g_free(r->host);
  g_free(r->where);
  g_free(r);
}

static void
channel_free(Channel *ch)
{
  g_ptr_array_free(ch->held, TRUE);
  g_free(ch);
}

static void
held_free(gpointer p)
{
  g_string_free(p, TRUE);
}

/* --- GMainContext glue for hiredis --- */

static void
watch_add_read(void *data)
{
  ((Watch *)data)->pfd.events |= G_IO_IN;
}

static void
watch_del_read(void *data)
{
  ((Watch *)data)->pfd.events &= ~G_IO_IN;
}

static void
watch_add_write(void *data)
{
  ((Watch *)data)->pfd.events |= G_IO_OUT;
}

static void
watch_del_write(void *data)
{
  ((Watch *)data)->pfd.events &= ~G_IO_OUT;
}

static gboolean
watch_prepare(GSource *source, gint *timeout)
{
  *timeout = -1;
  return FALSE;
}

static gboolean
watch_check(GSource *source)
{
  Watch *w = (Watch *)source;
  return (w->pfd.revents & (w->pfd.events | G_IO_ERR | G_IO_HUP | G_IO_NVAL)) != 0;
}

static gboolean
watch_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
  Watch *w = (Watch *)source;
  gushort rev = w->pfd.revents;

  w->pfd.revents = 0;
  if (w->ac != NULL && (rev & G_IO_OUT))
    redisAsyncHandleWrite(w->ac);
  if (w->ac != NULL && (rev & (G_IO_IN | G_IO_ERR | G_IO_HUP | G_IO_NVAL)))
    redisAsyncHandleRead(w->ac);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs watch_funcs = {
    .prepare = watch_prepare,
    .check = watch_check,
    .dispatch = watch_dispatch,
};

static void conn_lost(RedisStore *r, Conn *c, const char *reason, gboolean was_up);

/* hiredis calls this just before it frees the context, whatever the
 * reason: an error, the watchdog, or the store being freed. Pending
 * replies have all been answered (with NULL) by then. */
static void
watch_cleanup(void *data)
{
  Watch *w = data;
  RedisStore *r = w->r;
  Conn *c = w->conn;
  redisAsyncContext *ac = w->ac;

  w->ac = NULL;
  if (ac != NULL && c->ac == ac) {
    gboolean was_up = c->up;
    const char *reason = ac->err != 0 && ac->errstr != NULL && ac->errstr[0] != '\0'
                             ? ac->errstr
                             : (c->drop_reason != NULL ? c->drop_reason : "connection closed");
    c->ac = NULL;
    c->up = FALSE;
    c->outstanding = 0;
    c->drop_reason = NULL;
    if (!r->freed)
      conn_lost(r, c, reason, was_up);
  }
  g_source_destroy(&w->source);
  g_source_unref(&w->source);
  store_unref(r);
}

static void
watch_new(RedisStore *r, Conn *c, redisAsyncContext *ac)
{
  Watch *w = (Watch *)g_source_new(&watch_funcs, sizeof(Watch));
  g_source_set_static_name(&w->source, "ferry redis");
  w->ac = ac;
  w->r = store_ref(r);
  w->conn = c;
  w->pfd.fd = ac->c.fd;
  g_source_add_poll(&w->source, &w->pfd);
  ac->ev.data = w;
  ac->ev.addRead = watch_add_read;
  ac->ev.delRead = watch_del_read;
  ac->ev.addWrite = watch_add_write;
  ac->ev.delWrite = watch_del_write;
  ac->ev.cleanup = watch_cleanup;
  g_source_attach(&w->source, r->ctx);
}

/* --- connections --- */

static GSource *
timer_new(RedisStore *r, guint ms, GSourceFunc fn, gpointer data)
{
  GSource *t = g_timeout_source_new(ms);
  g_source_set_callback(t, fn, data, NULL);
  g_source_attach(t, r->ctx);
  return t;
}

static void
timer_clear(GSource **t)
{
  if (*t != NULL) {
    g_source_destroy(*t);
    g_source_unref(*t);
    *t = NULL;
  }
}

static void
conn_sent(Conn *c)
{
  if (c->outstanding++ == 0)
    c->progress_us = g_get_monotonic_time();
}

static void
conn_answered(Conn *c)
{
  if (c->outstanding > 0)
    c->outstanding--;
  c->progress_us = g_get_monotonic_time();
}

static gboolean
retry_cb(gpointer data)
{
  Conn *c = data;
  RedisStore *r = store_ref(c->r);

  timer_clear(&c->retry);
  conn_open(r, c);
  store_unref(r);
  return G_SOURCE_REMOVE;
}

static void send_subscribe(RedisStore *r, const char *session_id, Channel *ch);

static void flush_held(RedisStore *r, const char *session_id, Channel *ch);

/* A connection is gone (or never came up): warn once per outage, let the
 * channels forget subscriptions that were in flight, and try again later. */
static void
conn_lost(RedisStore *r, Conn *c, const char *reason, gboolean was_up)
{
  if (!r->outage) {
    r->outage = TRUE;
    g_warning("lost Redis at %s (%s): new and joining sessions fail with store-unavailable "
              "until it is back; reconnecting",
              r->where, reason);
  }
  if (c == &r->sub) {
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init(&it, r->channels);
    while (g_hash_table_iter_next(&it, &key, &value)) {
      Channel *ch = value;
      ch->subs_in_flight = 0;
      flush_held(r, key, ch);
      if (ch->refs == 0)
        g_hash_table_iter_remove(&it);
    }
  }
  guint delay = was_up ? BACKOFF_MIN_MS : c->backoff_ms;
  c->backoff_ms = MIN(delay * 2, BACKOFF_MAX_MS);
  timer_clear(&c->retry);
  c->retry = timer_new(r, delay, retry_cb, c);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
  Watch *w = ac->ev.data;
  RedisStore *r = w->r;
  Conn *c = w->conn;

  if (status != REDIS_OK || r->freed)
    return; /* on failure hiredis frees the context next: watch_cleanup follows */
  c->up = TRUE;
  c->backoff_ms = BACKOFF_MIN_MS;
  redisEnableKeepAlive((redisContext *)&ac->c);
  if (r->cmd.up && r->sub.up) {
    r->complained = FALSE;
    if (r->outage) {
      r->outage = FALSE;
      g_message("Redis at %s is reachable again", r->where);
    }
  }
}

static void on_plain_reply(redisAsyncContext *ac, void *reply, void *privdata);
static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata);

static void
conn_open(RedisStore *r, Conn *c)
{
  redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);

  if (ac == NULL) {
    conn_lost(r, c, "out of memory", FALSE);
    return;
  }
  if (ac->err != 0) {
    char *reason = g_strdup(ac->errstr);
    redisAsyncFree(ac);
    conn_lost(r, c, reason, FALSE);
    g_free(reason);
    return;
  }
  c->ac = ac;
  watch_new(r, c, ac);
  c->up = FALSE;
  c->opened_us = g_get_monotonic_time();
  c->outstanding = 0;
  c->drop_reason = NULL;
  redisAsyncSetConnectCallback(ac, on_connect);

  if (c == &r->cmd && r->db != 0) {
    char db[16];
    g_snprintf(db, sizeof db, "%u", r->db);
    const char *argv[] = {"SELECT", db};
    if (redisAsyncCommandArgv(ac, on_plain_reply, r, 2, argv, NULL) == REDIS_OK)
      conn_sent(c);
  }
  if (c == &r->sub) {
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init(&it, r->channels);
    while (g_hash_table_iter_next(&it, &key, &value))
      if (((Channel *)value)->refs > 0)
        send_subscribe(r, key, value);
  }
}

/* Drops a connection that has not answered for STALL_US (a host that
 * vanished without closing the socket, or a Redis that hangs): its
 * callers hear "store-unavailable" now rather than never. */
static void
conn_watchdog(Conn *c, gint64 now)
{
  if (c->ac == NULL)
    return;
  if (!c->up && now - c->opened_us > STALL_US)
    c->drop_reason = "no connection after 5 s";
  else if (c->outstanding > 0 && now - c->progress_us > STALL_US)
    c->drop_reason = "no answer for 5 s";
  else
    return;
  redisAsyncFree(c->ac);
}

static gboolean
tick_cb(gpointer data)
{
  RedisStore *r = store_ref(data);
  gint64 now = g_get_monotonic_time();

  conn_watchdog(&r->cmd, now);
  if (!r->freed)
    conn_watchdog(&r->sub, now);
  store_unref(r);
  return G_SOURCE_CONTINUE;
}

/* --- commands --- */

/* Queues a command on the command connection. FALSE when Redis is down,
 * in which case fn will not be called. */
static gboolean
cmd_send(RedisStore *r, redisCallbackFn *fn, gpointer privdata, int argc, const char **argv,
         const size_t *argvlen)
{
  if (r->freed || r->cmd.ac == NULL)
    return FALSE;
  if (redisAsyncCommandArgv(r->cmd.ac, fn, privdata, argc, argv, argvlen) != REDIS_OK)
    return FALSE;
  conn_sent(&r->cmd);
  return TRUE;
}

/* Logs a reply that is neither what the scripts return nor a dropped
 * connection (an OOM or READONLY Redis, say), once until the next reconnect. */
static void
complain(RedisStore *r, const char *what, const redisReply *reply)
{
  if (r->complained)
    return;
  r->complained = TRUE;
  g_warning("Redis at %s refused %s: %s; check its logs and memory, and that --store names a "
            "writable primary",
            r->where, what,
            reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply type");
}

static void
on_plain_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
  RedisStore *r = privdata;
  redisReply *rep = reply;

  conn_answered(&r->cmd);
  if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
    complain(r, "a command", rep);
}

static void
send_script(RedisStore *r, const char *script, int nargs, const char **args)
{
  const char *argv[8] = {"EVAL", script, "0"};

  g_assert(nargs <= 5);
  memcpy(argv + 3, args, nargs * sizeof *args);
  cmd_send(r, on_plain_reply, r, 3 + nargs, argv, NULL);
}

static void
on_claim_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
  Op *op = privdata;
  RedisStore *r = op->r;
  redisReply *rep = reply;
  FerryStoreClaimFunc cb = op->claim;
  gpointer user_data = op->user_data;

  g_free(op);
  conn_answered(&r->cmd);
  if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
    cb(NULL, rep->str, user_data);
    return;
  }
  if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "too-many-sessions")) {
    cb("too-many-sessions", NULL, user_data);
    return;
  }
  if (rep != NULL)
    complain(r, "a claim", rep);
  cb("store-unavailable", NULL, user_data);
}

static void
redis_claim(FerryStore *store, const char *session_id, guint max_receivers, gint64 code_ttl_ms,
            gint64 session_ttl_ms, FerryStoreClaimFunc cb, gpointer user_data)
{
  RedisStore *r = (RedisStore *)store;
  char maxr[16], code_ttl[24], session_ttl[24], now[24], expiry[24];
  gint64 now_ms = g_get_real_time() / 1000;

  /* Redis refuses PX 0; a zero TTL means "already over" either way. */
  code_ttl_ms = MAX(code_ttl_ms, 1);
  session_ttl_ms = MAX(session_ttl_ms, 1);
  g_snprintf(maxr, sizeof maxr, "%u", max_receivers);
  g_snprintf(code_ttl, sizeof code_ttl, "%" G_GINT64_FORMAT, code_ttl_ms);
  g_snprintf(session_ttl, sizeof session_ttl, "%" G_GINT64_FORMAT, session_ttl_ms);
  g_snprintf(now, sizeof now, "%" G_GINT64_FORMAT, now_ms);
  g_snprintf(expiry, sizeof expiry, "%" G_GINT64_FORMAT, now_ms + session_ttl_ms);

  Op *op = g_new0(Op, 1);
  op->r = r;
  op->claim = cb;
  op->user_data = user_data;
  const char *argv[] = {"EVAL",   claim_lua,   "0", session_id, maxr,
                        code_ttl, session_ttl, now, expiry};
  if (!cmd_send(r, on_claim_reply, op, G_N_ELEMENTS(argv), argv, NULL)) {
    g_free(op);
    cb("store-unavailable", NULL, user_data);
  }
}

static gboolean
is_int(const redisReply *rep)
{
  return rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0 && rep->integer <= G_MAXUINT;
}

static void
on_join_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
  Op *op = privdata;
  RedisStore *r = op->r;
  redisReply *rep = reply;
  FerryStoreJoinFunc cb = op->join;
  gpointer user_data = op->user_data;

  g_free(op);
  conn_answered(&r->cmd);
  if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 4 &&
      rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING &&
      is_int(rep->element[2]) && is_int(rep->element[3])) {
    const char *err = rep->element[0]->str;
    guint no = (guint)rep->element[2]->integer;
    guint max = (guint)rep->element[3]->integer;
    if (strcmp(err, "no-such-nameplate") == 0)
      cb("no-such-nameplate", NULL, 0, 0, user_data);
    else if (strcmp(err, "session-full") == 0)
      cb("session-full", NULL, 0, max, user_data);
    else
      cb(NULL, rep->element[1]->str, no, max, user_data);
    return;
  }
  if (rep != NULL)
    complain(r, "a join", rep);
  cb("store-unavailable", NULL, 0, 0, user_data);
}

static void
redis_join(FerryStore *store, const char *nameplate, FerryStoreJoinFunc cb, gpointer user_data)
{
  RedisStore *r = (RedisStore *)store;
  Op *op = g_new0(Op, 1);
  op->r = r;
  op->join = cb;
  op->user_data = user_data;
  const char *argv[] = {"EVAL", join_lua, "0", nameplate};
  if (!cmd_send(r, on_join_reply, op, G_N_ELEMENTS(argv), argv, NULL)) {
    g_free(op);
    cb("store-unavailable", NULL, 0, 0, user_data);
  }
}

static void
redis_release(FerryStore *store, const char *session_id, const char *nameplate)
{
  const char *args[] = {session_id, nameplate != NULL ? nameplate : ""};
  send_script((RedisStore *)store, release_lua, 2, args);
}

static void
redis_leave(FerryStore *store, const char *session_id)
{
  const char *args[] = {session_id};
  send_script((RedisStore *)store, leave_lua, 1, args);
}

static void
redis_end(FerryStore *store, const char *session_id, const char *nameplate)
{
  const char *args[] = {session_id, nameplate != NULL ? nameplate : ""};
  send_script((RedisStore *)store, end_lua, 2, args);
}

/* --- pub/sub --- */

static void
send_publish(RedisStore *r, const char *session_id, const GString *payload)
{
  char *channel = g_strconcat(CHANNEL_PREFIX, session_id, NULL);
  const char *argv[] = {"PUBLISH", channel, payload->str};
  size_t lens[] = {7, strlen(channel), payload->len};

  cmd_send(r, on_plain_reply, r, 3, argv, lens);
  g_free(channel);
}

static void
flush_held(RedisStore *r, const char *session_id, Channel *ch)
{
  for (guint i = 0; i < ch->held->len; i++)
    send_publish(r, session_id, ch->held->pdata[i]);
  g_ptr_array_set_size(ch->held, 0);
}

/* Sends SUBSCRIBE for a channel on the subscriber connection, if there is one. */
static void
send_subscribe(RedisStore *r, const char *session_id, Channel *ch)
{
  char *channel = g_strconcat(CHANNEL_PREFIX, session_id, NULL);
  const char *argv[] = {"SUBSCRIBE", channel};

  if (r->sub.ac != NULL &&
      redisAsyncCommandArgv(r->sub.ac, on_sub_reply, r, 2, argv, NULL) == REDIS_OK) {
    ch->subs_in_flight++;
    conn_sent(&r->sub);
  }
  g_free(channel);
}

static void
redis_publish(FerryStore *store, const char *session_id, FerryStoreKind kind, const char *from,
              const char *to, const char *envelope)
{
  RedisStore *r = (RedisStore *)store;

  g_return_if_fail(kind <= FERRY_STORE_END);
  g_return_if_fail(strchr(from, '\t') == NULL && strchr(to, '\t') == NULL);
  if (r->freed)
    return;

  GString *payload = g_string_new(NULL);
  g_string_printf(payload, "%d\t%s\t%s\t%s", (int)kind, from, to, envelope);
  Channel *ch = g_hash_table_lookup(r->channels, session_id);
  if (ch != NULL && ch->refs > 0 && ch->subs_in_flight > 0) {
    g_ptr_array_add(ch->held, payload);
    return;
  }
  send_publish(r, session_id, payload);
  g_string_free(payload, TRUE);
}

static void
redis_subscribe(FerryStore *store, const char *session_id)
{
  RedisStore *r = (RedisStore *)store;
  Channel *ch = g_hash_table_lookup(r->channels, session_id);

  if (r->freed)
    return;
  if (ch == NULL) {
    ch = g_new0(Channel, 1);
    ch->held = g_ptr_array_new_with_free_func(held_free);
    g_hash_table_insert(r->channels, g_strdup(session_id), ch);
  }
  if (ch->refs++ == 0)
    send_subscribe(r, session_id, ch);
}

static void
redis_unsubscribe(FerryStore *store, const char *session_id)
{
  RedisStore *r = (RedisStore *)store;
  Channel *ch = g_hash_table_lookup(r->channels, session_id);

  if (r->freed || ch == NULL || ch->refs == 0)
    return;
  if (--ch->refs > 0)
    return;
  if (r->sub.ac != NULL) {
    char *channel = g_strconcat(CHANNEL_PREFIX, session_id, NULL);
    const char *argv[] = {"UNSUBSCRIBE", channel};
    if (redisAsyncCommandArgv(r->sub.ac, NULL, NULL, 2, argv, NULL) == REDIS_OK)
      conn_sent(&r->sub);
    g_free(channel);
  }
  flush_held(r, session_id, ch);
  if (ch->subs_in_flight == 0)
    g_hash_table_remove(r->channels, session_id);
}

/* Splits "KIND\tFROM\tTO\tENVELOPE". FALSE for anything else, including
 * NUL bytes, which no C string could carry on. */
static gboolean
decode_payload(const char *p, size_t len, FerryStoreKind *kind, char **from, char **to,
               const char **envelope)
{
  const char *end = p + len;
  const char *t1, *t2, *t3;

  if (memchr(p, '\0', len) != NULL || len < 4 || p[0] < '0' || p[0] > '0' + FERRY_STORE_END ||
      p[1] != '\t')
    return FALSE;
  t1 = p + 1;
  t2 = memchr(t1 + 1, '\t', end - (t1 + 1));
  if (t2 == NULL)
    return FALSE;
  t3 = memchr(t2 + 1, '\t', end - (t2 + 1));
  if (t3 == NULL)
    return FALSE;
  *kind = (FerryStoreKind)(p[0] - '0');
  *from = g_strndup(t1 + 1, t2 - (t1 + 1));
  *to = g_strndup(t2 + 1, t3 - (t2 + 1));
  *envelope = t3 + 1;
  return TRUE;
}

static void
on_message(RedisStore *r, const redisReply *channel, const redisReply *payload)
{
  const char *session_id = channel->str + strlen(CHANNEL_PREFIX);
  Channel *ch = g_hash_table_lookup(r->channels, session_id);
  FerryStoreKind kind;
  char *from, *to;
  const char *envelope;

  if (ch == NULL || ch->refs == 0)
    return; /* unsubscribed here while the message was on its way */
  if (payload->type != REDIS_REPLY_STRING ||
      !decode_payload(payload->str, payload->len, &kind, &from, &to, &envelope)) {
    g_warning("dropped a malformed message on Redis channel %s (%zu bytes): expected "
              "KIND<tab>FROM<tab>TO<tab>ENVELOPE; is another program publishing on " CHANNEL_PREFIX
              "*?",
              channel->str, payload->type == REDIS_REPLY_STRING ? payload->len : 0);
    return;
  }
  r->base.deliver(session_id, kind, from, to, envelope, r->base.deliver_data);
  g_free(from);
  g_free(to);
}

/* Every reply on the subscriber connection: subscribe and unsubscribe
 * confirmations and messages. NULL when the connection goes away. */
static void
on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
  RedisStore *r = privdata;
  redisReply *rep = reply;

  if (rep == NULL || r->freed)
    return;
  r->sub.progress_us = g_get_monotonic_time();
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
      rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING ||
      !g_str_has_prefix(rep->element[1]->str, CHANNEL_PREFIX))
    return;
  const char *type = rep->element[0]->str;
  if (strcmp(type, "message") == 0) {
    on_message(r, rep->element[1], rep->element[2]);
    return;
  }
  conn_answered(&r->sub);
  if (strcmp(type, "subscribe") != 0)
    return;
  const char *session_id = rep->element[1]->str + strlen(CHANNEL_PREFIX);
  Channel *ch = g_hash_table_lookup(r->channels, session_id);
  if (ch == NULL || ch->subs_in_flight == 0 || --ch->subs_in_flight > 0)
    return;
  if (ch->refs > 0)
    flush_held(r, session_id, ch);
  else
    g_hash_table_remove(r->channels, session_id);
}

/* --- count, free --- */

static void
on_count_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
  RedisStore *r = privdata;
  redisReply *rep = reply;

  conn_answered(&r->cmd);
  r->count_in_flight = FALSE;
  if (rep != NULL && rep->type == REDIS_REPLY_INTEGER) {
    r->count = rep->integer;
    return;
  }
  r->count = -1;
  if (rep != NULL)
    complain(r, "a session count", rep);
}

/* The count is as Redis last told it, asked again when it is over a
 * second old: -1 until the first answer and while Redis is unreachable. */
static gint64
redis_count_sessions(FerryStore *store)
{
  RedisStore *r = (RedisStore *)store;
  gint64 now = g_get_monotonic_time();

  if (r->freed)
    return -1;
  if (!r->count_in_flight &&
      (r->count_asked_us == 0 || now - r->count_asked_us >= COUNT_MAX_AGE_US)) {
    char now_ms[24];
    g_snprintf(now_ms, sizeof now_ms, "%" G_GINT64_FORMAT, g_get_real_time() / 1000);
    const char *argv[] = {"EVAL", count_lua, "0", now_ms};
    r->count_asked_us = now;
    if (cmd_send(r, on_count_reply, r, G_N_ELEMENTS(argv), argv, NULL))
      r->count_in_flight = TRUE;
    else
      r->count = -1;
  }
  return r->count;
}

/* Claims and joins still waiting hear "store-unavailable" before this
 * returns (or, when called from inside one of this store's callbacks, as
 * soon as that callback returns). Nothing is called after that. */
static void
redis_free(FerryStore *store)
{
  RedisStore *r = (RedisStore *)store;

  if (r->freed)
    return;
  r->freed = TRUE;
  timer_clear(&r->tick);
  timer_clear(&r->cmd.retry);
  timer_clear(&r->sub.retry);
  if (r->sub.ac != NULL)
    redisAsyncFree(r->sub.ac);
  if (r->cmd.ac != NULL)
    redisAsyncFree(r->cmd.ac);
  store_unref(r);
}

static const FerryStoreVTable redis_vtable = {
    .claim = redis_claim,
    .join = redis_join,
    .release = redis_release,
    .leave = redis_leave,
    .end = redis_end,
    .publish = redis_publish,
    .subscribe = redis_subscribe,
    .unsubscribe = redis_unsubscribe,
    .count_sessions = redis_count_sessions,
    .free = redis_free,
};

/* --- creation --- */

static gboolean
bad_url(GError **error, const char *url, const char *why)
{
  return ferry_set_error(error, FERRY_ERR_INVALID,
                         "bad --store '%s': %s; use redis://HOST:PORT[/DB], e.g. "
                         "redis://127.0.0.1:6379/0",
                         url, why);
}

/* Fills host, port and db from "redis://HOST[:PORT][/DB]" (an IPv6
 * literal in brackets). */
static gboolean
parse_url(RedisStore *r, const char *url, GError **error)
{
  g_autoptr(GError) parse_error = NULL;
  g_autoptr(GUri) uri = NULL;
  guint64 db = 0;

  if (!g_str_has_prefix(url, "redis://"))
    return bad_url(error, url, "the scheme must be redis://");
  uri = g_uri_parse(url, G_URI_FLAGS_NONE, &parse_error);
  if (uri == NULL)
    return bad_url(error, url, parse_error->message);
  if (g_strcmp0(g_uri_get_scheme(uri), "redis") != 0)
    return bad_url(error, url, "the scheme must be redis://");
  if (g_uri_get_host(uri) == NULL || g_uri_get_host(uri)[0] == '\0')
    return bad_url(error, url, "no host");
  if (g_uri_get_userinfo(uri) != NULL)
    return bad_url(error, url, "user names and passwords are not supported");
  if (g_uri_get_query(uri) != NULL || g_uri_get_fragment(uri) != NULL)
    return bad_url(error, url, "options (?…, #…) are not supported");
  if (g_uri_get_port(uri) == 0)
    return bad_url(error, url, "the port must be 1-65535");
  const char *path = g_uri_get_path(uri);
  if (path[0] != '\0' && strcmp(path, "/") != 0 &&
      !g_ascii_string_to_unsigned(path + 1, 10, 0, G_MAXINT, &db, NULL))
    return bad_url(error, url, "the database must be a number (0, 1, …)");

  r->host = g_strdup(g_uri_get_host(uri));
  r->port = g_uri_get_port(uri) > 0 ? g_uri_get_port(uri) : 6379;
  r->db = (guint)db;
  r->where = strchr(r->host, ':') != NULL ? g_strdup_printf("[%s]:%d", r->host, r->port)
                                          : g_strdup_printf("%s:%d", r->host, r->port);
  return TRUE;
}

/* One blocking round trip at start-up, so that a wrong --store fails
 * before the server accepts anyone rather than on the first send. */
static gboolean
check_reachable(RedisStore *r, GError **error)
{
  struct timeval tv = {SYNC_TIMEOUT_SEC, 0};
  redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
  redisReply *rep = NULL;
  gboolean ok = FALSE;

  if (c == NULL || c->err != 0) {
    ferry_set_error(error, FERRY_ERR_IO,
                    "cannot reach Redis at %s: %s; start redis-server or fix --store", r->where,
                    c != NULL ? c->errstr : "out of memory");
    goto out;
  }
  redisSetTimeout(c, tv);
  rep = redisCommand(c, "PING");
  if (rep == NULL) {
    ferry_set_error(error, FERRY_ERR_IO,
                    "cannot reach Redis at %s: %s; start redis-server or fix --store", r->where,
                    c->errstr);
    goto out;
  }
  if (rep->type == REDIS_REPLY_ERROR) {
    ferry_set_error(error, FERRY_ERR_IO,
                    "Redis at %s refused PING: %s; ferry needs a Redis without a password — fix "
                    "its settings or --store",
                    r->where, rep->str);
    goto out;
  }
  if (r->db != 0) {
    freeReplyObject(rep);
    rep = redisCommand(c, "SELECT %u", r->db);
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
      ferry_set_error(error, FERRY_ERR_INVALID,
                      "Redis at %s has no database %u (%s); use a smaller number in --store",
                      r->where, r->db, rep != NULL ? rep->str : c->errstr);
      goto out;
    }
  }
  ok = TRUE;
out:
  if (rep != NULL)
    freeReplyObject(rep);
  if (c != NULL)
    redisFree(c);
  return ok;
}

FerryStore *
ferry_store_redis_new(const char *url, FerryStoreDeliverFunc deliver, gpointer user_data,
                      GError **error)
{
  RedisStore *r = g_new0(RedisStore, 1);

  r->base.vt = &redis_vtable;
  r->base.deliver = deliver;
  r->base.deliver_data = user_data;
  r->refs = 1;
  r->count = -1;
  r->ctx = g_main_context_ref_thread_default();
  r->channels =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)channel_free);
  r->cmd.r = r;
  r->sub.r = r;
  r->cmd.backoff_ms = BACKOFF_MIN_MS;
  r->sub.backoff_ms = BACKOFF_MIN_MS;
  if (!parse_url(r, url, error) || !check_reachable(r, error)) {
    r->freed = TRUE;
    store_unref(r);
    return NULL;
  }
  conn_open(r, &r->cmd);
  conn_open(r, &r->sub);
  r->tick = timer_new(r, TICK_MS, tick_cb, r);
  return &r->base;
}
