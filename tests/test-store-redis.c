/* The session stores held to one behaviour: the same checks run against
 * the memory store and the Redis store, where two Redis stores on one
 * real redis-server stand in for two `ferry serve` instances (A and B;
 * for memory, A and B are the same store). Then what only Redis has: URL
 * and reachability errors, databases, IPv6, and surviving a Redis
 * restart. */
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <gio/gio.h>
#include <hiredis/hiredis.h>

#include <ferry/error.h>

#include "server/store.h"
#include "testutil.h"

#define WAIT_MS 5000
#define HOUR_MS 3600000

/* --- the redis-server under test --- */

static char *redis_exe; /* NULL: not installed, Redis tests skip */
static GPid redis_pid;  /* 0 while stopped */
static guint redis_port;
static char *redis_url;

static void
die_with_parent(gpointer data)
{
  prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* A blocking connection for set-up and for playing a foreign publisher. */
static redisContext *
redis_sync(const char *host, guint port)
{
  struct timeval tv = {1, 0};
  redisContext *c = redisConnectWithTimeout(host, (int)port, tv);
  if (c != NULL && c->err != 0) {
    redisFree(c);
    return NULL;
  }
  return c;
}

static gboolean
redis_ping(const char *host, guint port)
{
  redisContext *c = redis_sync(host, port);
  gboolean ok = FALSE;
  if (c != NULL) {
    redisReply *rep = redisCommand(c, "PING");
    ok = rep != NULL && rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0;
    if (rep != NULL)
      freeReplyObject(rep);
    redisFree(c);
  }
  return ok;
}

/* Starts redis-server on redis_port (loopback, IPv6 too where it can),
 * with nothing saved to disk; it dies with this process however that
 * ends. */
static void
redis_start(void)
{
  g_autofree char *port = g_strdup_printf("%u", redis_port);
  const char *argv[] = {redis_exe,     "--port", port, "--bind",       "127.0.0.1",
                        "-::1",        "--save", "",   "--appendonly", "no",
                        "--daemonize", "no",     NULL};
  GError *error = NULL;

  g_assert_true(g_spawn_async(g_get_tmp_dir(), (char **)argv, NULL,
                              G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
                                  G_SPAWN_STDERR_TO_DEV_NULL,
                              die_with_parent, NULL, &redis_pid, &error));
  g_assert_no_error(error);
  for (int i = 0; i < 250 && !redis_ping("127.0.0.1", redis_port); i++)
    g_usleep(20000);
  if (!redis_ping("127.0.0.1", redis_port))
    g_error("redis-server on port %u did not answer PING within 5 s", redis_port);
}

static void
redis_stop(void)
{
  if (redis_pid == 0)
    return;
  kill(redis_pid, SIGKILL);
  waitpid(redis_pid, NULL, 0);
  g_spawn_close_pid(redis_pid);
  redis_pid = 0;
}

static void
redis_run(const char *cmd, const char *arg1, const char *arg2)
{
  redisContext *c = redis_sync("127.0.0.1", redis_port);
  g_assert_nonnull(c);
  const char *argv[] = {cmd, arg1, arg2};
  int argc = arg1 == NULL ? 1 : arg2 == NULL ? 2 : 3;
  redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
  g_assert_nonnull(rep);
  g_assert_cmpint(rep->type, !=, REDIS_REPLY_ERROR);
  freeReplyObject(rep);
  redisFree(c);
}

/* --- what the store logs --- */

static gboolean allow_store_warnings;
static GPtrArray *store_log; /* "LEVEL: text" of ferry-server warnings and messages */

static void
record_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
  g_ptr_array_add(
      store_log,
      g_strdup_printf("%s: %s", (level & G_LOG_LEVEL_WARNING) ? "warning" : "message", message));
  g_test_message("%s: %s", domain, message);
}

static gboolean
fatal_filter(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
  return !(allow_store_warnings && g_strcmp0(domain, "ferry-server") == 0 &&
           (level & G_LOG_LEVEL_WARNING));
}

static guint
log_count(const char *pattern)
{
  guint n = 0;
  for (guint i = 0; i < store_log->len; i++)
    n += g_pattern_match_simple(pattern, store_log->pdata[i]);
  return n;
}

/* --- waiting, bounded --- */

typedef gboolean (*CondFunc)(gpointer data);

static gboolean
set_flag(gpointer p)
{
  *(gboolean *)p = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the main context until cond holds; a test that would hang fails
 * instead, naming what it waited for. */
static void
wait_for(CondFunc cond, gpointer data, guint ms, const char *what)
{
  gboolean timed_out = FALSE;
  GSource *t = g_timeout_source_new(ms);
  g_source_set_callback(t, set_flag, &timed_out, NULL);
  g_source_attach(t, NULL);
  while (!cond(data) && !timed_out)
    g_main_context_iteration(NULL, TRUE);
  g_source_destroy(t);
  g_source_unref(t);
  if (!cond(data))
    g_error("%s: nothing after %u ms waiting for %s", g_test_get_path(), ms, what);
}

static gboolean
never(gpointer data)
{
  return *(gboolean *)data;
}

/* Lets the main context run for ms (for TTLs to pass). */
static void
pump(guint ms)
{
  gboolean done = FALSE;
  GSource *t = g_timeout_source_new(ms);
  g_source_set_callback(t, set_flag, &done, NULL);
  g_source_attach(t, NULL);
  wait_for(never, &done, ms + WAIT_MS, "a timer");
  g_source_destroy(t);
  g_source_unref(t);
}

/* --- results and deliveries --- */

typedef struct {
  guint calls;
  char *err;
  char *value; /* nameplate, or session id */
  guint no;
  guint max;
} Result;

static GPtrArray *results; /* every Result of a test, freed after its stores */

static void
result_free(Result *r)
{
  g_free(r->err);
  g_free(r->value);
  g_free(r);
}

static Result *
result_new(void)
{
  Result *r = g_new0(Result, 1);
  g_ptr_array_add(results, r);
  return r;
}

static gboolean
result_done(gpointer data)
{
  return ((Result *)data)->calls > 0;
}

static void
claim_cb(const char *err, const char *nameplate, gpointer user_data)
{
  Result *r = user_data;
  g_assert_cmpuint(++r->calls, ==, 1);
  r->err = g_strdup(err);
  r->value = g_strdup(nameplate);
}

static void
join_cb(const char *err, const char *session_id, guint receiver_no, guint max_receivers,
        gpointer user_data)
{
  Result *r = user_data;
  g_assert_cmpuint(++r->calls, ==, 1);
  r->err = g_strdup(err);
  r->value = g_strdup(session_id);
  r->no = receiver_no;
  r->max = max_receivers;
}

static Result *
claim_ttl(FerryStore *s, const char *sid, guint max, gint64 code_ttl_ms)
{
  Result *r = result_new();
  s->vt->claim(s, sid, max, code_ttl_ms, HOUR_MS, claim_cb, r);
  wait_for(result_done, r, WAIT_MS, "a claim");
  return r;
}

static const char *
claim_ok(FerryStore *s, const char *sid, guint max)
{
  Result *r = claim_ttl(s, sid, max, HOUR_MS);
  g_assert_null(r->err);
  g_assert_nonnull(r->value);
  return r->value;
}

static Result *
join(FerryStore *s, const char *nameplate)
{
  Result *r = result_new();
  s->vt->join(s, nameplate, join_cb, r);
  wait_for(result_done, r, WAIT_MS, "a join");
  return r;
}

static void
assert_joined(FerryStore *s, const char *nameplate, const char *sid, guint no, guint max)
{
  Result *r = join(s, nameplate);
  g_assert_null(r->err);
  g_assert_cmpstr(r->value, ==, sid);
  g_assert_cmpuint(r->no, ==, no);
  g_assert_cmpuint(r->max, ==, max);
}

static void
assert_join_fails(FerryStore *s, const char *nameplate, const char *err)
{
  Result *r = join(s, nameplate);
  g_assert_cmpstr(r->err, ==, err);
  g_assert_null(r->value);
}

/* Fire-and-forget calls (release, leave, end) travel on the calling
 * store's connection; one answered round trip on that store proves they
 * have been done before another store looks. */
static void
settle(FerryStore *s)
{
  assert_join_fails(s, "settle", "no-such-nameplate");
}

typedef struct {
  char *sid;
  FerryStoreKind kind;
  char *from;
  char *to;
  char *envelope;
} Msg;

static void
msg_free(Msg *m)
{
  g_free(m->sid);
  g_free(m->from);
  g_free(m->to);
  g_free(m->envelope);
  g_free(m);
}

typedef struct {
  GPtrArray *msgs;
  GHashTable *markers;      /* envelopes of messages from "sync", kept out of msgs */
  FerryStore **free_on_bye; /* frees *this when an envelope "bye" arrives */
} Sink;

static void
sink_init(Sink *k)
{
  k->msgs = g_ptr_array_new_with_free_func((GDestroyNotify)msg_free);
  k->markers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  k->free_on_bye = NULL;
}

static void
sink_clear(Sink *k)
{
  g_ptr_array_free(k->msgs, TRUE);
  g_hash_table_destroy(k->markers);
}

static void
deliver(const char *session_id, FerryStoreKind kind, const char *from, const char *to,
        const char *envelope, gpointer user_data)
{
  Sink *k = user_data;
  if (strcmp(from, "sync") == 0) {
    g_hash_table_add(k->markers, g_strdup(envelope));
    return;
  }
  Msg *m = g_new0(Msg, 1);
  m->sid = g_strdup(session_id);
  m->kind = kind;
  m->from = g_strdup(from);
  m->to = g_strdup(to);
  m->envelope = g_strdup(envelope);
  g_ptr_array_add(k->msgs, m);
  if (k->free_on_bye != NULL && strcmp(envelope, "bye") == 0) {
    ferry_store_free(*k->free_on_bye);
    *k->free_on_bye = NULL;
  }
}

typedef struct {
  Sink *sink;
  guint n;
} SinkCount;

static gboolean
sink_has(gpointer data)
{
  SinkCount *sc = data;
  return sc->sink->msgs->len >= sc->n;
}

static void
wait_msgs(Sink *k, guint n)
{
  SinkCount sc = {k, n};
  wait_for(sink_has, &sc, WAIT_MS, "a delivery");
}

/* --- fixture: stores A and B --- */

typedef struct {
  FerryStore *a;
  FerryStore *b; /* == a for memory */
  Sink sa;
  Sink sb;
} Fixture;

static const char backend_memory[] = "memory";
static const char backend_redis[] = "redis";

static void
fixture_setup(Fixture *f, gconstpointer backend)
{
  GError *error = NULL;

  results = g_ptr_array_new_with_free_func((GDestroyNotify)result_free);
  store_log = g_ptr_array_new_with_free_func(g_free);
  allow_store_warnings = FALSE;
  g_test_log_set_fatal_handler(fatal_filter, NULL); /* GLib resets it for every test */
  sink_init(&f->sa);
  sink_init(&f->sb);
  if (backend == backend_memory) {
    f->a = f->b = ferry_store_memory_new(deliver, &f->sa);
    return;
  }
  if (redis_exe == NULL) {
    g_test_skip("redis-server is not installed: run scripts/install-deps.sh");
    return;
  }
  if (redis_pid == 0)
    redis_start();
  redis_run("FLUSHALL", NULL, NULL);
  f->a = ferry_store_redis_new(redis_url, deliver, &f->sa, &error);
  g_assert_no_error(error);
  f->b = ferry_store_redis_new(redis_url, deliver, &f->sb, &error);
  g_assert_no_error(error);
}

static void
fixture_teardown(Fixture *f, gconstpointer backend)
{
  if (f->b != f->a)
    ferry_store_free(f->b);
  ferry_store_free(f->a);
  sink_clear(&f->sa);
  sink_clear(&f->sb);
  g_ptr_array_free(results, TRUE);
  g_ptr_array_free(store_log, TRUE);
}

static Sink *
sink_of(Fixture *f, FerryStore *s)
{
  return s == f->a ? &f->sa : &f->sb;
}

static guint sync_serial;

typedef struct {
  Sink *sink;
  const char *marker;
} SinkMarker;

static gboolean
sink_has_marker(gpointer data)
{
  SinkMarker *sm = data;
  return g_hash_table_contains(sm->sink->markers, sm->marker);
}

/* Returns once s hears its own publication on sid, that is once its
 * subscription is live (in Redis: confirmed). Markers never reach msgs. */
static void
sync_sub(Fixture *f, FerryStore *s, const char *sid)
{
  g_autofree char *marker = g_strdup_printf("sync-%u", ++sync_serial);
  SinkMarker sm = {sink_of(f, s), marker};

  s->vt->publish(s, sid, FERRY_STORE_MSG, "sync", "sync", marker);
  wait_for(sink_has_marker, &sm, WAIT_MS, "a store to hear itself");
}

/* Returns once everything published before the call has reached s, if it
 * ever will: Redis writes a publication to every subscriber before it
 * reads the next command, and a connection delivers in order. */
static void
barrier(Fixture *f, FerryStore *s)
{
  g_autofree char *sid = g_strdup_printf("barrier-%u", ++sync_serial);
  s->vt->subscribe(s, sid);
  sync_sub(f, s, sid);
  s->vt->unsubscribe(s, sid);
}

static void
assert_msg(Msg *m, const char *sid, FerryStoreKind kind, const char *from, const char *to,
           const char *envelope)
{
  g_assert_cmpstr(m->sid, ==, sid);
  g_assert_cmpint(m->kind, ==, kind);
  g_assert_cmpstr(m->from, ==, from);
  g_assert_cmpstr(m->to, ==, to);
  g_assert_cmpstr(m->envelope, ==, envelope);
}

/* --- behaviour both stores share --- */

static void
test_claim_lowest(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  g_assert_cmpstr(claim_ok(f->a, "s1", 1), ==, "1");
  g_assert_cmpstr(claim_ok(f->b, "s2", 1), ==, "2");
  g_assert_cmpstr(claim_ok(f->a, "s3", 1), ==, "3");
  f->b->vt->release(f->b, "s1", "1");
  settle(f->b);
  g_assert_cmpstr(claim_ok(f->a, "s4", 1), ==, "1");
  g_assert_cmpstr(claim_ok(f->b, "s5", 1), ==, "4");
  f->a->vt->end(f->a, "s2", "2");
  settle(f->a);
  g_assert_cmpstr(claim_ok(f->b, "s6", 1), ==, "2");
}

/* Claims sent from both instances at once, none waiting for another:
 * every one gets its own nameplate, and together they fill 1..n. */
static void
test_claim_concurrent(Fixture *f, gconstpointer backend)
{
  enum { N = 40 };
  Result *r[N];
  g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

  if (f->a == NULL)
    return;
  for (int i = 0; i < N; i++) {
    g_autofree char *sid = g_strdup_printf("c%d", i);
    FerryStore *s = i % 2 ? f->b : f->a;
    r[i] = result_new();
    s->vt->claim(s, sid, 1, HOUR_MS, HOUR_MS, claim_cb, r[i]);
  }
  for (int i = 0; i < N; i++) {
    wait_for(result_done, r[i], WAIT_MS, "a claim");
    g_assert_null(r[i]->err);
    g_assert_true(g_hash_table_add(seen, r[i]->value));
  }
  for (int i = 1; i <= N; i++) {
    g_autofree char *np = g_strdup_printf("%d", i);
    g_assert_true(g_hash_table_contains(seen, np));
  }
}

static void
test_join_counts_receivers(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  const char *np = claim_ok(f->a, "s1", 2);
  assert_joined(f->b, np, "s1", 1, 2);
  assert_joined(f->a, np, "s1", 2, 2);
  Result *full = join(f->b, np);
  g_assert_cmpstr(full->err, ==, "session-full");
  g_assert_null(full->value);
  g_assert_cmpuint(full->max, ==, 2);

  /* a receiver leaves: its slot is free again, numbers keep counting */
  f->a->vt->leave(f->a, "s1");
  settle(f->a);
  assert_joined(f->b, np, "s1", 3, 2);
  g_assert_cmpstr(join(f->b, np)->err, ==, "session-full");

  /* leaving more often than joining never makes room beyond max */
  for (int i = 0; i < 4; i++)
    f->b->vt->leave(f->b, "s1");
  f->b->vt->leave(f->b, "no-such-session");
  settle(f->b);
  assert_joined(f->a, np, "s1", 4, 2);
  assert_joined(f->a, np, "s1", 5, 2);
  g_assert_cmpstr(join(f->a, np)->err, ==, "session-full");
}

static void
test_zero_receivers_is_full(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  const char *np = claim_ok(f->a, "s1", 0);
  Result *r = join(f->b, np);
  g_assert_cmpstr(r->err, ==, "session-full");
  g_assert_cmpuint(r->max, ==, 0);
}

static void
test_unknown_nameplate(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  assert_join_fails(f->b, "1", "no-such-nameplate");
  g_assert_cmpstr(claim_ok(f->a, "s1", 1), ==, "1");
  const char *odd[] = {"2", "01", "0", "", " 1", "1 ", "x\ty", "ünï", "999999999999"};
  for (guint i = 0; i < G_N_ELEMENTS(odd); i++)
    assert_join_fails(f->b, odd[i], "no-such-nameplate");
}

static void
test_expired_nameplate(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  Result *r = claim_ttl(f->a, "s1", 2, 500);
  g_assert_cmpstr(r->value, ==, "1");
  assert_joined(f->b, "1", "s1", 1, 2);
  pump(700);
  assert_join_fails(f->b, "1", "no-such-nameplate");
  assert_join_fails(f->a, "1", "no-such-nameplate");
  /* the expired nameplate is the lowest free one again */
  g_assert_cmpstr(claim_ok(f->b, "s2", 1), ==, "1");
  assert_joined(f->a, "1", "s2", 1, 1);
}

static void
test_release_keeps_session(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  g_assert_cmpstr(claim_ok(f->a, "s1", 3), ==, "1");
  assert_joined(f->b, "1", "s1", 1, 3);

  /* releasing someone else's nameplate does nothing */
  f->b->vt->release(f->b, "s9", "1");
  settle(f->b);
  assert_joined(f->b, "1", "s1", 2, 3);

  f->a->vt->release(f->a, "s1", "1");
  settle(f->a);
  assert_join_fails(f->b, "1", "no-such-nameplate");

  /* the nameplate goes to a new session; ending the old one leaves it be */
  g_assert_cmpstr(claim_ok(f->b, "s2", 1), ==, "1");
  f->a->vt->end(f->a, "s1", "1");
  settle(f->a);
  assert_joined(f->b, "1", "s2", 1, 1);
}

static void
test_end_frees_nameplate(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  g_assert_cmpstr(claim_ok(f->a, "s1", 1), ==, "1");
  g_assert_cmpstr(claim_ok(f->a, "s2", 1), ==, "2");
  f->b->vt->end(f->b, "s1", "1");
  settle(f->b);
  assert_join_fails(f->a, "1", "no-such-nameplate");
  assert_joined(f->a, "2", "s2", 1, 1);
  g_assert_cmpstr(claim_ok(f->b, "s3", 1), ==, "1");
  /* ending twice, or ending what never was, is harmless */
  f->b->vt->end(f->b, "s1", "1");
  f->b->vt->end(f->b, "never", "7");
  settle(f->b);
  assert_joined(f->a, "1", "s3", 1, 1);
}

static gboolean
count_is(gpointer data)
{
  gpointer *args = data;
  FerryStore *s = args[0];
  return s->vt->count_sessions(s) == GPOINTER_TO_INT(args[1]);
}

static void
wait_count(FerryStore *s, int n)
{
  gpointer args[] = {s, GINT_TO_POINTER(n)};
  /* the Redis store refreshes its count at most once a second */
  for (int i = 0; i < 60 && !count_is(args); i++)
    pump(50);
  g_assert_cmpint(s->vt->count_sessions(s), ==, n);
}

static void
test_count_sessions(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  claim_ok(f->a, "s1", 1);
  claim_ok(f->b, "s2", 1);
  claim_ok(f->a, "s3", 1);
  f->a->vt->release(f->a, "s3", "3"); /* a released nameplate still has a session */
  settle(f->a);
  wait_count(f->a, 3);
  f->b->vt->end(f->b, "s1", "1");
  settle(f->b);
  wait_count(f->a, 2);
  wait_count(f->b, 2);
}

static void
test_publish_reaches_subscribers(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  gboolean two = f->a != f->b;
  Sink *ka = sink_of(f, f->a), *kb = sink_of(f, f->b);

  f->a->vt->subscribe(f->a, "s1");
  f->b->vt->subscribe(f->b, "s1");
  sync_sub(f, f->a, "s1");
  sync_sub(f, f->b, "s1");

  f->b->vt->publish(f->b, "s1", FERRY_STORE_MSG, "r1", "s", "hello");
  wait_msgs(ka, 1);
  wait_msgs(kb, 1);
  barrier(f, f->a);
  barrier(f, f->b);
  g_assert_cmpuint(ka->msgs->len, ==, 1);
  g_assert_cmpuint(kb->msgs->len, ==, 1);
  assert_msg(ka->msgs->pdata[0], "s1", FERRY_STORE_MSG, "r1", "s", "hello");
  if (two)
    assert_msg(kb->msgs->pdata[0], "s1", FERRY_STORE_MSG, "r1", "s", "hello");

  /* a session nobody here subscribed to is not delivered */
  f->b->vt->publish(f->b, "other", FERRY_STORE_MSG, "r1", "s", "elsewhere");

  /* A stops listening, B still hears */
  f->a->vt->unsubscribe(f->a, "s1");
  f->b->vt->publish(f->b, "s1", FERRY_STORE_LEFT, "r2", "*", "second");
  if (two) {
    wait_msgs(kb, 2);
    barrier(f, f->a);
    g_assert_cmpuint(ka->msgs->len, ==, 1);
    assert_msg(kb->msgs->pdata[1], "s1", FERRY_STORE_LEFT, "r2", "*", "second");
  } else {
    /* one store subscribed twice and unsubscribed once still listens */
    wait_msgs(ka, 2);
    assert_msg(ka->msgs->pdata[1], "s1", FERRY_STORE_LEFT, "r2", "*", "second");
  }

  /* nobody listens */
  f->b->vt->unsubscribe(f->b, "s1");
  guint na = ka->msgs->len, nb = kb->msgs->len;
  f->b->vt->publish(f->b, "s1", FERRY_STORE_END, "s", "*", "third");
  barrier(f, f->b);
  barrier(f, f->a);
  g_assert_cmpuint(ka->msgs->len, ==, na);
  g_assert_cmpuint(kb->msgs->len, ==, nb);

  /* unsubscribing more than subscribing is harmless */
  f->a->vt->unsubscribe(f->a, "s1");
  f->a->vt->unsubscribe(f->a, "never");
}

static void
test_subscriptions_are_counted(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  f->a->vt->subscribe(f->a, "s1");
  f->a->vt->subscribe(f->a, "s1");
  sync_sub(f, f->a, "s1");
  f->a->vt->unsubscribe(f->a, "s1");
  f->b->vt->publish(f->b, "s1", FERRY_STORE_MSG, "r1", "s", "still");
  wait_msgs(&f->sa, 1);
  f->a->vt->unsubscribe(f->a, "s1");
  f->b->vt->publish(f->b, "s1", FERRY_STORE_MSG, "r1", "s", "gone");
  barrier(f, f->b);
  barrier(f, f->a);
  g_assert_cmpuint(f->sa.msgs->len, ==, 1);
  assert_msg(f->sa.msgs->pdata[0], "s1", FERRY_STORE_MSG, "r1", "s", "still");
}

/* What an instance publishes right after subscribing comes back to it:
 * a receiver that joins and announces itself hears the answer. */
static void
test_own_publication_after_subscribe(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  for (int i = 0; i < 5; i++) {
    g_autofree char *sid = g_strdup_printf("fresh-%d", i);
    f->b->vt->subscribe(f->b, sid);
    f->b->vt->publish(f->b, sid, FERRY_STORE_JOINED, "r1", "s", "joined");
    f->b->vt->publish(f->b, sid, FERRY_STORE_MSG, "r1", "s", "after");
    Sink *k = sink_of(f, f->b);
    wait_msgs(k, 2 * (i + 1));
    assert_msg(k->msgs->pdata[2 * i], sid, FERRY_STORE_JOINED, "r1", "s", "joined");
    assert_msg(k->msgs->pdata[2 * i + 1], sid, FERRY_STORE_MSG, "r1", "s", "after");
    f->b->vt->unsubscribe(f->b, sid);
  }
}

static void
test_fields_survive(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  g_autofree char *big = g_strnfill(200000, 'x');
  const char *envelopes[] = {
      "",
      "plain",
      "tab\there",
      "\t\t\t",
      "line\nbreak\r\nend\n",
      "ünïcødé ✓ 🚀 日本語",
      "{\"type\":\"message\",\"from\":\"r1\",\"body\":{\"a\":\"x\\ty\"}}",
      "0\tfake\theader\t",
      big,
  };
  const char *from[] = {"s", "r1", "r12345", ""};
  const char *to[] = {"*", "s", "r2", ""};
  guint n = 0;

  f->a->vt->subscribe(f->a, "s1");
  sync_sub(f, f->a, "s1");
  for (guint kind = FERRY_STORE_MSG; kind <= FERRY_STORE_END; kind++)
    for (guint e = 0; e < G_N_ELEMENTS(envelopes); e++, n++)
      f->b->vt->publish(f->b, "s1", kind, from[(kind + e) % 4], to[e % 4], envelopes[e]);
  wait_msgs(&f->sa, n);
  n = 0;
  for (guint kind = FERRY_STORE_MSG; kind <= FERRY_STORE_END; kind++)
    for (guint e = 0; e < G_N_ELEMENTS(envelopes); e++, n++)
      assert_msg(f->sa.msgs->pdata[n], "s1", kind, from[(kind + e) % 4], to[e % 4], envelopes[e]);
  barrier(f, f->a);
  g_assert_cmpuint(f->sa.msgs->len, ==, n);
}

/* --- Redis only --- */

static void
assert_bad_url(const char *url, const char *why)
{
  GError *error = NULL;
  FerryStore *s = ferry_store_redis_new(url, deliver, NULL, &error);
  g_assert_null(s);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_autofree char *head = g_strdup_printf("bad --store '%s': ", url);
  g_assert_true(g_str_has_prefix(error->message, head));
  g_assert_nonnull(strstr(error->message, why));
  g_assert_nonnull(strstr(error->message, "use redis://HOST:PORT[/DB]"));
  g_error_free(error);
}

static void
test_bad_url(void)
{
  assert_bad_url("redis://", "no host");
  assert_bad_url("redis:///0", "no host");
  assert_bad_url("http://127.0.0.1:6379", "the scheme must be redis://");
  assert_bad_url("127.0.0.1:6379", "the scheme must be redis://");
  assert_bad_url("redis://127.0.0.1:0", "the port must be 1-65535");
  assert_bad_url("redis:host", "the scheme must be redis://");
  assert_bad_url("redis://127.0.0.1:65536", "65536");
  assert_bad_url("redis://127.0.0.1:port", "port");
  assert_bad_url("redis://[::1", "[::1");
  assert_bad_url("redis://127.0.0.1:6379/x", "the database must be a number");
  assert_bad_url("redis://127.0.0.1:6379/-1", "the database must be a number");
  assert_bad_url("redis://127.0.0.1:6379/1/2", "the database must be a number");
  assert_bad_url("redis://user:secret@127.0.0.1:6379", "passwords are not supported");
  assert_bad_url("redis://127.0.0.1:6379/0?timeout=1", "options");
  assert_bad_url("", "the scheme must be redis://");
}

static void
test_unreachable(void)
{
  GError *error = NULL;
  guint port = test_free_port();
  g_autofree char *url = g_strdup_printf("redis://127.0.0.1:%u", port);
  g_autofree char *want = g_strdup_printf(
      "cannot reach Redis at 127.0.0.1:%u: Connection refused; start redis-server or fix --store",
      port);

  g_assert_null(ferry_store_redis_new(url, deliver, NULL, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_IO);
  g_assert_cmpstr(error->message, ==, want);
  g_clear_error(&error);

  /* the same through ferry_store_new, as `ferry serve --store` calls it */
  g_assert_null(ferry_store_new(url, deliver, NULL, &error));
  g_assert_cmpstr(error->message, ==, want);
  g_clear_error(&error);

  /* IPv6 literals keep their brackets in messages */
  g_autofree char *url6 = g_strdup_printf("redis://[::1]:%u/3", port);
  g_assert_null(ferry_store_redis_new(url6, deliver, NULL, &error));
  g_autofree char *where6 = g_strdup_printf("cannot reach Redis at [::1]:%u: ", port);
  g_assert_true(g_str_has_prefix(error->message, where6));
  g_clear_error(&error);

  /* no port means 6379 */
  FerryStore *s = ferry_store_redis_new("redis://127.0.0.2", deliver, NULL, &error);
  if (s != NULL)
    ferry_store_free(s); /* someone runs a Redis there: the default port was used */
  else
    g_assert_true(g_str_has_prefix(error->message, "cannot reach Redis at 127.0.0.2:6379: "));
  g_clear_error(&error);
}

static void
test_database(Fixture *f, gconstpointer backend)
{
  GError *error = NULL;
  Sink k;
  sink_init(&k);

  if (f->a == NULL)
    return;
  g_assert_cmpstr(claim_ok(f->a, "s1", 1), ==, "1");

  g_autofree char *url1 = g_strdup_printf("redis://127.0.0.1:%u/1", redis_port);
  FerryStore *d1 = ferry_store_redis_new(url1, deliver, &k, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(claim_ok(d1, "t1", 1), ==, "1");
  assert_join_fails(d1, "2", "no-such-nameplate");
  assert_joined(d1, "1", "t1", 1, 1);
  assert_joined(f->b, "1", "s1", 1, 1);
  ferry_store_free(d1);

  g_autofree char *url0 = g_strdup_printf("redis://127.0.0.1:%u/", redis_port);
  FerryStore *d0 = ferry_store_redis_new(url0, deliver, &k, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(claim_ok(d0, "s2", 1), ==, "2");
  ferry_store_free(d0);

  g_autofree char *bad = g_strdup_printf("redis://127.0.0.1:%u/99999", redis_port);
  g_assert_null(ferry_store_redis_new(bad, deliver, &k, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_autofree char *want =
      g_strdup_printf("Redis at 127.0.0.1:%u has no database 99999 (", redis_port);
  g_assert_true(g_str_has_prefix(error->message, want));
  g_assert_true(g_str_has_suffix(error->message, "); use a smaller number in --store"));
  g_clear_error(&error);
  sink_clear(&k);
}

static void
test_ipv6(Fixture *f, gconstpointer backend)
{
  GError *error = NULL;
  Sink k;
  sink_init(&k);

  if (f->a == NULL)
    return;
  if (!redis_ping("::1", redis_port)) {
    g_test_skip("no IPv6 loopback here");
    sink_clear(&k);
    return;
  }
  g_assert_cmpstr(claim_ok(f->a, "s1", 1), ==, "1");
  g_autofree char *url = g_strdup_printf("redis://[::1]:%u", redis_port);
  FerryStore *s6 = ferry_store_redis_new(url, deliver, &k, &error);
  g_assert_no_error(error);
  assert_joined(s6, "1", "s1", 1, 1);
  g_assert_cmpstr(claim_ok(s6, "s2", 1), ==, "2");
  ferry_store_free(s6);
  sink_clear(&k);
}

static void
test_malformed_payload(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  f->a->vt->subscribe(f->a, "s1");
  sync_sub(f, f->a, "s1");
  allow_store_warnings = TRUE;
  const char *bad[] = {"", "x", "4\ta\tb\tc", "0\tonly-from", "0\tfrom\tto", "a\tb\tc\td"};
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++)
    redis_run("PUBLISH", "ferry:c:s1", bad[i]);
  redis_run("PUBLISH", "ferry:c:s1", "3\ts\t*\tfine");
  wait_msgs(&f->sa, 1);
  barrier(f, f->a);
  g_assert_cmpuint(f->sa.msgs->len, ==, 1);
  assert_msg(f->sa.msgs->pdata[0], "s1", FERRY_STORE_END, "s", "*", "fine");
  g_assert_cmpuint(log_count("warning: dropped a malformed message on Redis channel ferry:c:s1 *"),
                   ==, G_N_ELEMENTS(bad));
}

/* Freeing the store answers what is pending, once, and nothing after. */
static void
test_free_with_pending(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  Result *c = result_new(), *j = result_new();
  f->a->vt->claim(f->a, "s1", 1, HOUR_MS, HOUR_MS, claim_cb, c);
  f->a->vt->join(f->a, "1", join_cb, j);
  f->a->vt->subscribe(f->a, "s1");
  f->a->vt->publish(f->a, "s1", FERRY_STORE_MSG, "s", "*", "held");
  ferry_store_free(f->a);
  f->a = NULL;
  g_assert_cmpuint(c->calls, ==, 1);
  g_assert_cmpstr(c->err, ==, "store-unavailable");
  g_assert_cmpuint(j->calls, ==, 1);
  g_assert_cmpstr(j->err, ==, "store-unavailable");
  pump(100);
  g_assert_cmpuint(f->sa.msgs->len, ==, 0);
}

typedef struct {
  Result *res;
  FerryStore **store;
} FreeInCb;

static void
claim_then_free(const char *err, const char *nameplate, gpointer user_data)
{
  FreeInCb *x = user_data;
  claim_cb(err, nameplate, x->res);
  ferry_store_free(*x->store);
  *x->store = NULL;
}

static void
test_free_in_callback(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  FreeInCb x = {result_new(), &f->a};
  Result *second = result_new();
  f->a->vt->claim(f->a, "s1", 1, HOUR_MS, HOUR_MS, claim_then_free, &x);
  f->a->vt->claim(f->a, "s2", 1, HOUR_MS, HOUR_MS, claim_cb, second);
  wait_for(result_done, second, WAIT_MS, "the second claim");
  g_assert_null(f->a);
  g_assert_null(x.res->err);
  g_assert_cmpstr(x.res->value, ==, "1");
  g_assert_cmpstr(second->err, ==, "store-unavailable");

  /* and from inside a delivery */
  f->sb.free_on_bye = &f->b;
  f->b->vt->subscribe(f->b, "s1");
  sync_sub(f, f->b, "s1");
  f->b->vt->publish(f->b, "s1", FERRY_STORE_MSG, "s", "*", "bye");
  f->b->vt->publish(f->b, "s1", FERRY_STORE_MSG, "s", "*", "after");
  wait_msgs(&f->sb, 1);
  g_assert_null(f->b);
  pump(100);
  g_assert_cmpuint(f->sb.msgs->len, ==, 1);
}

typedef struct {
  FerryStore *s;
  const char *sid;
  Result *last;
} Retry;

/* Claims again every 100 ms until one succeeds; every failure on the way
 * must be store-unavailable. */
static gboolean
claim_succeeds(gpointer data)
{
  Retry *rt = data;
  if (rt->last != NULL && rt->last->calls > 0 && rt->last->err == NULL)
    return TRUE;
  if (rt->last == NULL || rt->last->calls > 0) {
    if (rt->last != NULL)
      g_assert_cmpstr(rt->last->err, ==, "store-unavailable");
    rt->last = result_new();
    rt->s->vt->claim(rt->s, rt->sid, 1, HOUR_MS, HOUR_MS, claim_cb, rt->last);
    pump(100);
  }
  return FALSE;
}

static void
test_restart(Fixture *f, gconstpointer backend)
{
  if (f->a == NULL)
    return;
  g_assert_cmpstr(claim_ok(f->a, "s1", 1), ==, "1");
  f->a->vt->subscribe(f->a, "s1");
  sync_sub(f, f->a, "s1");

  allow_store_warnings = TRUE;
  redis_stop();
  Result *r = claim_ttl(f->a, "s2", 1, HOUR_MS);
  g_assert_cmpstr(r->err, ==, "store-unavailable");
  g_assert_cmpstr(join(f->b, "1")->err, ==, "store-unavailable");
  g_assert_cmpint(f->a->vt->count_sessions(f->a), ==, -1);
  /* what is subscribed while Redis is away is subscribed once it is back */
  f->b->vt->subscribe(f->b, "s3");
  f->a->vt->release(f->a, "s1", "1");
  f->a->vt->publish(f->a, "s1", FERRY_STORE_MSG, "s", "*", "lost");
  pump(200);
  redis_start();

  Retry ra = {f->a, "s4", NULL}, rb = {f->b, "s5", NULL};
  wait_for(claim_succeeds, &ra, 20000, "store A to reach the restarted Redis");
  wait_for(claim_succeeds, &rb, 20000, "store B to reach the restarted Redis");
  g_assert_cmpstr(ra.last->value, ==, "1"); /* the restarted Redis was empty */
  g_assert_cmpstr(rb.last->value, ==, "2");
  assert_joined(f->a, "2", "s5", 1, 1);

  /* both subscriptions, the old one of A and the new one of B, are live */
  sync_sub(f, f->a, "s1");
  sync_sub(f, f->b, "s3");
  g_ptr_array_set_size(f->sa.msgs, 0); /* "lost" may or may not have made it */
  f->b->vt->publish(f->b, "s1", FERRY_STORE_MSG, "r1", "s", "back");
  f->a->vt->publish(f->a, "s3", FERRY_STORE_MSG, "s", "r1", "also");
  wait_msgs(&f->sa, 1);
  wait_msgs(&f->sb, 1);
  assert_msg(f->sa.msgs->pdata[0], "s1", FERRY_STORE_MSG, "r1", "s", "back");
  assert_msg(f->sb.msgs->pdata[0], "s3", FERRY_STORE_MSG, "s", "r1", "also");
  wait_count(f->a, 2);

  /* one warning per store for the outage, and word when it is over */
  g_autofree char *lost = g_strdup_printf("warning: lost Redis at 127.0.0.1:%u (*", redis_port);
  g_autofree char *back =
      g_strdup_printf("message: Redis at 127.0.0.1:%u is reachable again", redis_port);
  g_assert_cmpuint(log_count(lost), ==, 2);
  g_assert_cmpuint(log_count(back), ==, 2);
  g_assert_cmpuint(log_count("warning: *"), ==, 2);
}

static void
add_test(const char *backend, const char *name, void (*fn)(Fixture *, gconstpointer))
{
  g_autofree char *path = g_strdup_printf("/server/store/%s/%s", backend, name);
  g_test_add(path, Fixture, backend, fixture_setup, fn, fixture_teardown);
}

static void
add_both(const char *name, void (*fn)(Fixture *, gconstpointer))
{
  add_test(backend_memory, name, fn);
  add_test(backend_redis, name, fn);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_log_set_handler("ferry-server", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_FLAG_FATAL,
                    record_log, NULL);
  redis_exe = g_find_program_in_path("redis-server");
  redis_port = test_free_port();
  redis_url = g_strdup_printf("redis://127.0.0.1:%u", redis_port);

  add_both("claim-lowest", test_claim_lowest);
  add_both("claim-concurrent", test_claim_concurrent);
  add_both("join-counts-receivers", test_join_counts_receivers);
  add_both("zero-receivers-is-full", test_zero_receivers_is_full);
  add_both("unknown-nameplate", test_unknown_nameplate);
  add_both("expired-nameplate", test_expired_nameplate);
  add_both("release-keeps-session", test_release_keeps_session);
  add_both("end-frees-nameplate", test_end_frees_nameplate);
  add_both("count-sessions", test_count_sessions);
  add_both("publish-reaches-subscribers", test_publish_reaches_subscribers);
  add_both("subscriptions-are-counted", test_subscriptions_are_counted);
  add_both("own-publication-after-subscribe", test_own_publication_after_subscribe);
  add_both("fields-survive", test_fields_survive);
  g_test_add_func("/server/store/redis/bad-url", test_bad_url);
  g_test_add_func("/server/store/redis/unreachable", test_unreachable);
  add_test(backend_redis, "database", test_database);
  add_test(backend_redis, "ipv6", test_ipv6);
  add_test(backend_redis, "malformed-payload", test_malformed_payload);
  add_test(backend_redis, "free-with-pending", test_free_with_pending);
  add_test(backend_redis, "free-in-callback", test_free_in_callback);
  add_test(backend_redis, "restart", test_restart);

  int ret = g_test_run();
  redis_stop();
  g_free(redis_url);
  g_free(redis_exe);
  return ret;
}
