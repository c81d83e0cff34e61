/* Where `ferry serve` keeps sessions and nameplates, and how it routes
 * messages between the members of a session.
 *
 * Two implementations: memory (one process, the default) and Redis
 * (several `ferry serve` instances behind one name share nameplates, and
 * pub/sub carries each session's messages to whichever instance holds the
 * recipient). The server never touches state except through this table,
 * so both behave the same. Results come back through callbacks, exactly
 * once each, possibly before the call returns. */
#ifndef FERRY_SERVER_STORE_H
#define FERRY_SERVER_STORE_H

#include <glib.h>

typedef struct _FerryStore FerryStore;

/* What a published envelope means to the instances that deliver it. */
typedef enum {
  FERRY_STORE_MSG = 0, /* a client's "send": deliver to `to` ("*": all but `from`) */
  FERRY_STORE_JOINED,  /* a receiver joined: deliver to the sender */
  FERRY_STORE_LEFT,    /* a receiver left: deliver to all but `from` */
  FERRY_STORE_END,     /* the session is over: deliver to every receiver, then drop them */
} FerryStoreKind;

/* Called for every envelope published to a session this instance is
 * subscribed to (including its own publications). */
typedef void (*FerryStoreDeliverFunc)(const char *session_id, FerryStoreKind kind, const char *from,
                                      const char *to, const char *envelope, gpointer user_data);

/* err is NULL on success, else an error slug ("no-such-nameplate",
 * "session-full", "too-many-sessions", "store-unavailable"). */
typedef void (*FerryStoreClaimFunc)(const char *err, const char *nameplate, gpointer user_data);
typedef void (*FerryStoreJoinFunc)(const char *err, const char *session_id, guint receiver_no,
                                   guint max_receivers, gpointer user_data);

typedef struct {
  /* Allocates the lowest free nameplate for a new session; it stays
   * joinable for code_ttl_ms unless released, the session record lives for
   * session_ttl_ms unless ended. */
  void (*claim)(FerryStore *store, const char *session_id, guint max_receivers, gint64 code_ttl_ms,
                gint64 session_ttl_ms, FerryStoreClaimFunc cb, gpointer user_data);
  /* Adds a receiver to the session behind a nameplate, if it has room. */
  void (*join)(FerryStore *store, const char *nameplate, FerryStoreJoinFunc cb, gpointer user_data);
  /* Frees the nameplate (no more joins); the session goes on. */
  void (*release)(FerryStore *store, const char *session_id, const char *nameplate);
  /* A receiver left: its slot is free again. */
  void (*leave)(FerryStore *store, const char *session_id);
  /* The session is over: frees its nameplate and record. */
  void (*end)(FerryStore *store, const char *session_id, const char *nameplate);
  void (*publish)(FerryStore *store, const char *session_id, FerryStoreKind kind, const char *from,
                  const char *to, const char *envelope);
  void (*subscribe)(FerryStore *store, const char *session_id);
  void (*unsubscribe)(FerryStore *store, const char *session_id);
  /* Number of sessions in the store (all instances), or -1 if unknown. */
  gint64 (*count_sessions)(FerryStore *store);
  void (*free)(FerryStore *store);
} FerryStoreVTable;

struct _FerryStore {
  const FerryStoreVTable *vt;
  FerryStoreDeliverFunc deliver;
  gpointer deliver_data;
};

/* A store for one process. Never fails. Free with ferry_store_free(). */
FerryStore *ferry_store_memory_new(FerryStoreDeliverFunc deliver, gpointer user_data);

/* A store in Redis at url ("redis://HOST:PORT[/DB]"), connected on the
 * thread-default main context. NULL with error set when the URL is bad or
 * Redis cannot be reached. */
FerryStore *ferry_store_redis_new(const char *url, FerryStoreDeliverFunc deliver,
                                  gpointer user_data, GError **error);

/* Creates the store a --store value names: NULL or "memory" for memory,
 * "redis://…" for Redis. */
FerryStore *ferry_store_new(const char *url, FerryStoreDeliverFunc deliver, gpointer user_data,
                            GError **error);

void ferry_store_free(FerryStore *store);

#endif
