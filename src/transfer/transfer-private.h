/* What the sender, the receiver and the shared parts of a FerryTransfer
 * know of each other. */
#ifndef FERRY_TRANSFER_PRIVATE_H
#define FERRY_TRANSFER_PRIVATE_H

#include <gnutls/crypto.h>

#include <ferry/transfer.h>

#include "core/checkpoint.h"
#include "transfer/wire.h"

G_BEGIN_DECLS

/* For ferry_set_error(): the code of FERRY_ERROR_FAILED. */
#define FERRY_ERR_FAILED 0

/* One entry of a FerrySource: what the scan saw. */
typedef struct {
  FerryEntryType type;
  guint32 mode;
  gint64 mtime_ns;
  guint64 size;
  char *path;
  char *link_target;
  const char *source_dir; /* shared, owned by the source */
} FerrySourceEntry;

struct _FerrySource {
  guint8 transfer_id[FERRY_TRANSFER_ID_LEN];
  char id_hex[FERRY_TRANSFER_ID_HEX_LEN + 1];
  guint32 chunk_size;
  guint streams;
  gboolean skip_errors;
  guint64 limit_rate;    /* bytes/s per receiver, 0: none */
  GPtrArray *entries;    /* FerrySourceEntry *, in scan order */
  GPtrArray *dirs;       /* char *: the source_dir strings */
  GPtrArray *root_names; /* char * */
  GArray *issues;        /* FerryScanIssue with owned strings */
  guint64 files, n_dirs, symlinks, bytes;
};

/* Tests only: appends an entry as given, unchecked, so that a test can
 * play a hostile sender. */
void ferry_source_add_raw_entry(FerrySource *src, FerryEntryType type, const char *path,
                                const char *link_target, guint64 size);

typedef struct _SendState SendState;
typedef struct _RecvState RecvState;

struct _FerryTransfer {
  gboolean is_sender;
  FerryConnection *conn;
  FerryTransferHandlers handlers;
  gpointer user_data;
  char id_hex[FERRY_TRANSFER_ID_HEX_LEN + 1];
  FerryTransferProgress progress;
  char *current_path;
  gboolean finished;
  guint finish_idle;
  GError *finish_error;
  SendState *send;
  RecvState *recv;
  /* While this says TRUE (a DECLINE or ABORT not yet acknowledged by the
   * peer), the finished handler waits, at most LINGER_MS: its caller
   * usually frees the connection, which would drop those last words. */
  gboolean (*lingering)(FerryTransfer *t);
  gint64 linger_until;  /* 0 unless finished by ferry_transfer_finish_linger() */
  FerryStream *ctl_ref; /* a reference on the control stream, for lingering */
};

/* Ends the transfer once: the finished handler runs from an idle (never
 * inside a ferry_*() call) with error (taken; NULL for success). */
void ferry_transfer_finish(FerryTransfer *t, GError *error);
/* Like ferry_transfer_finish(), after t->lingering() turns FALSE. */
void ferry_transfer_finish_linger(FerryTransfer *t, GError *error);
void ferry_transfer_set_current(FerryTransfer *t, const char *path, guint64 size, guint64 done);
void ferry_transfer_emit_file(FerryTransfer *t, FerryFileStatus status, FerryEntryType type,
                              const char *path, const char *final_path, guint64 size,
                              const char *message);

void ferry_send_state_free(SendState *s);
void ferry_recv_state_free(RecvState *r);
void ferry_send_cancel(FerryTransfer *t);
void ferry_recv_cancel(FerryTransfer *t);
void ferry_recv_accept(FerryTransfer *t);
void ferry_recv_decline(FerryTransfer *t, const char *reason);
const char *ferry_recv_checkpoint_path(FerryTransfer *t);

/* The short hex id of a full transfer id. */
void ferry_transfer_id_to_hex(const guint8 id[FERRY_TRANSFER_ID_LEN],
                              char out[FERRY_TRANSFER_ID_HEX_LEN + 1]);

/* Checkpoint store (store.c): the checkpoint and its description for a
 * key (ferry_store_key()), in dir (NULL: the default). */
char *ferry_store_key(const char *id_hex, const char *out_dir);
char *ferry_store_dir(const char *dir);
char *ferry_store_checkpoint_path(const char *dir, const char *key);
/* Writes the description beside the checkpoint: out_dir, totals. */
gboolean ferry_store_write_info(const char *dir, const char *key, const char *out_dir,
                                guint64 files, guint64 bytes, GError **error);
/* The out_dir recorded for id_hex, or NULL. */
char *ferry_store_read_out_dir(const char *dir, const char *key);
void ferry_store_remove(const char *dir, const char *key);
/* Takes the lock of key (KEY.lock, flock()): returns its fd, to be
 * closed to release it, or -1 with FERRY_ERROR_EXISTS when another
 * process holds it (or FERRY_ERROR_IO). */
int ferry_store_lock(const char *dir, const char *key, GError **error);
/* The hidden name beside a file's final place that holds its bytes until
 * they are verified: ".NAME.ID.ferry-part" (or a hashed name when that
 * would be too long). */
char *ferry_store_part_path(const char *path, const char *id_hex);
/* Removes the file relpath beneath rootfd without following symlinks on
 * the way; quiet when it is not there. */
void ferry_store_unlink_beneath(int rootfd, const char *relpath);

G_END_DECLS

#endif
