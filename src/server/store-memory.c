/* The in-process store: hash tables, and delivery as a direct call. */
#include <stdio.h>
#include <string.h>

#include <ferry/error.h>

#include "server/store.h"

typedef struct {
  char *session_id;
  char nameplate[16]; /* "" once released */
  guint receivers;    /* present now */
  guint joined;       /* ever, for receiver numbers */
  guint max_receivers;
  gint64 code_deadline_us;
  gint64 session_deadline_us;
} MemSession;

typedef struct {
  FerryStore base;
  GHashTable *by_id;        /* session id → MemSession (owned) */
  GHashTable *by_nameplate; /* nameplate → MemSession */
  GHashTable *subscribed;   /* session id → count */
  guint lowest_free;        /* no nameplate below this is free */
} MemStore;

static void
mem_session_free(MemSession *s)
{
  g_free(s->session_id);
  g_free(s);
}

static void
drop_nameplate(MemStore *m, MemSession *s)
{
  if (s->nameplate[0] == '\0')
    return;
  g_hash_table_remove(m->by_nameplate, s->nameplate);
  guint n = (guint)g_ascii_strtoull(s->nameplate, NULL, 10);
  if (n < m->lowest_free)
    m->lowest_free = n;
  s->nameplate[0] = '\0';
}

/* Expired entries are removed lazily, when they would be looked at. */
static void
expire(MemStore *m, MemSession *s, gint64 now)
{
  if (s->nameplate[0] != '\0' && now >= s->code_deadline_us)
    drop_nameplate(m, s);
}

static void
mem_claim(FerryStore *store, const char *session_id, guint max_receivers, gint64 code_ttl_ms,
          gint64 session_ttl_ms, FerryStoreClaimFunc cb, gpointer user_data)
{
  MemStore *m = (MemStore *)store;
  gint64 now = g_get_monotonic_time();
  char name[16];
  guint n;

  for (n = m->lowest_free;; n++) {
    g_snprintf(name, sizeof name, "%u", n);
    MemSession *other = g_hash_table_lookup(m->by_nameplate, name);
    if (other == NULL)
      break;
    expire(m, other, now);
    if (other->nameplate[0] == '\0')
      break;
  }
  if (n > 999999) { /* codes have at most six digits in front */
    cb("too-many-sessions", NULL, user_data);
    return;
  }
  m->lowest_free = n + 1;

  MemSession *s = g_new0(MemSession, 1);
  s->session_id = g_strdup(session_id);
  g_strlcpy(s->nameplate, name, sizeof s->nameplate);
  s->max_receivers = max_receivers;
  s->code_deadline_us = now + code_ttl_ms * 1000;
  s->session_deadline_us = now + session_ttl_ms * 1000;
  g_hash_table_replace(m->by_id, s->session_id, s);
  g_hash_table_replace(m->by_nameplate, s->nameplate, s);
  cb(NULL, s->nameplate, user_data);
}

static void
mem_join(FerryStore *store, const char *nameplate, FerryStoreJoinFunc cb, gpointer user_data)
{
  MemStore *m = (MemStore *)store;
  MemSession *s = g_hash_table_lookup(m->by_nameplate, nameplate);

  if (s != NULL)
    expire(m, s, g_get_monotonic_time());
  if (s == NULL || s->nameplate[0] == '\0') {
    cb("no-such-nameplate", NULL, 0, 0, user_data);
    return;
  }
  if (s->receivers >= s->max_receivers) {
    cb("session-full", NULL, 0, s->max_receivers, user_data);
    return;
  }
  s->receivers++;
  s->joined++;
  cb(NULL, s->session_id, s->joined, s->max_receivers, user_data);
}

static void
mem_release(FerryStore *store, const char *session_id, const char *nameplate)
{
  MemStore *m = (MemStore *)store;
  MemSession *s = g_hash_table_lookup(m->by_id, session_id);
  if (s != NULL)
    drop_nameplate(m, s);
}

static void
mem_leave(FerryStore *store, const char *session_id)
{
  MemStore *m = (MemStore *)store;
  MemSession *s = g_hash_table_lookup(m->by_id, session_id);
  if (s != NULL && s->receivers > 0)
    s->receivers--;
}

static void
mem_end(FerryStore *store, const char *session_id, const char *nameplate)
{
  MemStore *m = (MemStore *)store;
  MemSession *s = g_hash_table_lookup(m->by_id, session_id);
  if (s == NULL)
    return;
  drop_nameplate(m, s);
  g_hash_table_remove(m->by_id, session_id);
}

static void
mem_publish(FerryStore *store, const char *session_id, FerryStoreKind kind, const char *from,
            const char *to, const char *envelope)
{
  MemStore *m = (MemStore *)store;
  if (g_hash_table_contains(m->subscribed, session_id))
    store->deliver(session_id, kind, from, to, envelope, store->deliver_data);
}

static void
mem_subscribe(FerryStore *store, const char *session_id)
{
  MemStore *m = (MemStore *)store;
  guint n = GPOINTER_TO_UINT(g_hash_table_lookup(m->subscribed, session_id));
  g_hash_table_replace(m->subscribed, g_strdup(session_id), GUINT_TO_POINTER(n + 1));
}

static void
mem_unsubscribe(FerryStore *store, const char *session_id)
{
  MemStore *m = (MemStore *)store;
  guint n = GPOINTER_TO_UINT(g_hash_table_lookup(m->subscribed, session_id));
  if (n <= 1)
    g_hash_table_remove(m->subscribed, session_id);
  else
    g_hash_table_replace(m->subscribed, g_strdup(session_id), GUINT_TO_POINTER(n - 1));
}

static gint64
mem_count_sessions(FerryStore *store)
{
  return g_hash_table_size(((MemStore *)store)->by_id);
}

static void
mem_free(FerryStore *store)
{
  MemStore *m = (MemStore *)store;
  g_hash_table_destroy(m->by_nameplate);
  g_hash_table_destroy(m->by_id);
  g_hash_table_destroy(m->subscribed);
  g_free(m);
}

static const FerryStoreVTable mem_vtable = {
    .claim = mem_claim,
    .join = mem_join,
    .release = mem_release,
    .leave = mem_leave,
    .end = mem_end,
    .publish = mem_publish,
    .subscribe = mem_subscribe,
    .unsubscribe = mem_unsubscribe,
    .count_sessions = mem_count_sessions,
    .free = mem_free,
};

FerryStore *
ferry_store_memory_new(FerryStoreDeliverFunc deliver, gpointer user_data)
{
  MemStore *m = g_new0(MemStore, 1);
  m->base.vt = &mem_vtable;
  m->base.deliver = deliver;
  m->base.deliver_data = user_data;
  m->by_id = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)mem_session_free);
  m->by_nameplate = g_hash_table_new(g_str_hash, g_str_equal);
  m->subscribed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  m->lowest_free = 1;
  return &m->base;
}

FerryStore *
ferry_store_new(const char *url, FerryStoreDeliverFunc deliver, gpointer user_data, GError **error)
{
  if (url == NULL || *url == '\0' || strcmp(url, "memory") == 0)
    return ferry_store_memory_new(deliver, user_data);
  if (g_str_has_prefix(url, "redis://"))
    return ferry_store_redis_new(url, deliver, user_data, error);
  ferry_set_error(error, FERRY_ERR_INVALID,
                  "unknown --store '%s': use 'memory' or 'redis://HOST:PORT'", url);
  return NULL;
}

void
ferry_store_free(FerryStore *store)
{
  if (store != NULL)
    store->vt->free(store);
}
