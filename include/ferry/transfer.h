/* Transfers: files and folders over an authenticated FerryConnection.
 *
 * The sender builds a FerrySource from the paths on its command line (a
 * scan of the tree; nothing is hashed up front) and hands each receiver's
 * connection to ferry_transfer_send(). The receiver hands its connection
 * to ferry_transfer_receive(), is shown the offer (file count, total
 * size, top-level names) and accepts or declines it. Once accepted, the
 * manifest streams over a control stream while several data streams carry
 * the files in chunks; the receiver checks every chunk's SHA-256 before it
 * counts, writes into temporary names beneath its output directory, and
 * renames each file into place only when its root hash (<ferry/hash.h>)
 * matches. A checkpoint of the verified chunks lets a killed or cut
 * transfer continue later: only missing chunks move again, and chunks on
 * disk are read back and checked before they are trusted. The wire format
 * is docs/protocol.md §8.
 *
 * Threading: as <ferry/connection.h>: callbacks run on the thread-default
 * main context of the caller, never inside a ferry_*() call. */
#ifndef FERRY_TRANSFER_H
#define FERRY_TRANSFER_H

#include <ferry/connection.h>
#include <ferry/error.h>
#include <ferry/manifest.h>

G_BEGIN_DECLS

#define FERRY_TRANSFER_DEFAULT_STREAMS 4
#define FERRY_TRANSFER_MAX_STREAMS     64
#define FERRY_TRANSFER_ID_HEX_LEN      16 /* the short id users type: --resume ID */
#define FERRY_TRANSFER_MAX_OFFER_NAMES 8

typedef struct _FerrySource FerrySource;
typedef struct _FerryTransfer FerryTransfer;

/* What a sender offers: shown to the receiver before it accepts. */
typedef struct {
  char id[FERRY_TRANSFER_ID_HEX_LEN + 1]; /* short transfer id (hex) */
  guint32 chunk_size;
  guint64 files;
  guint64 dirs;
  guint64 symlinks;
  guint64 bytes; /* sum of the file sizes */
  guint n_names; /* top-level names carried (at most FERRY_TRANSFER_MAX_OFFER_NAMES) */
  guint n_roots; /* top-level names in all */
  const char *names[FERRY_TRANSFER_MAX_OFFER_NAMES]; /* valid during the callback */
} FerryTransferSummary;

/* How far a transfer is. Bytes count file content only. */
typedef struct {
  guint64 bytes_total;   /* the offer's bytes */
  guint64 bytes_done;    /* receiver: verified; sender: handed to QUIC */
  guint64 bytes_resumed; /* part of bytes_done that did not move (resume) */
  guint64 files_total;
  guint64 files_done;       /* verified and in place (sender: as the receiver reports) */
  guint64 files_failed;     /* skipped or failed */
  const char *current_path; /* the file moving now, NULL between files; valid until the next call */
  guint64 current_size;
  guint64 current_done;
  gint64 started_us;  /* g_get_monotonic_time() when data began to move, 0 before */
  gint64 finished_us; /* when the transfer ended, 0 before */
} FerryTransferProgress;

typedef enum {
  FERRY_FILE_DONE,    /* verified and in place */
  FERRY_FILE_RENAMED, /* verified, in place under another name (target existed) */
  FERRY_FILE_SAME,    /* the same content was already there: nothing moved */
  FERRY_FILE_SKIPPED, /* not sent or not written; message says why */
} FerryFileStatus;

/* One entry finished, either way. Strings valid during the callback. */
typedef struct {
  FerryFileStatus status;
  FerryEntryType type;
  const char *path;       /* as offered, e.g. "photos/2024/a.jpg" */
  const char *final_path; /* where it landed below the output directory (receiver) */
  guint64 size;
  const char *message; /* why it was skipped, or NULL */
} FerryFileEvent;

typedef struct {
  /* Receiver only: the sender's offer. Answer with ferry_transfer_accept()
   * or ferry_transfer_decline(), now or later. */
  void (*offer)(FerryTransfer *transfer, const FerryTransferSummary *summary, gpointer user_data);
  /* An entry finished (any status). */
  void (*file)(FerryTransfer *transfer, const FerryFileEvent *event, gpointer user_data);
  /* The transfer is over: error NULL when every file arrived verified
   * (or was skipped with skip_errors). Otherwise in the FERRY_ERROR
   * domain:
   *   FAILED    the peer vanished or the connection broke
   *   STATE     the receiver declined (message has its reason)
   *   IO        a file could not be read or written (disk full: message
   *             has needed and free bytes)
   *   CORRUPT   a chunk or file did not verify
   *   UNSAFE_PATH the sender offered a path the receiver refuses
   *   EXISTS    a target exists and the receiver may not overwrite it
   * or G_IO_ERROR_CANCELLED after ferry_transfer_cancel(). Called once;
   * the transfer may be freed from it. */
  void (*finished)(FerryTransfer *transfer, const GError *error, gpointer user_data);
} FerryTransferHandlers;

/* ---- the sender --------------------------------------------------------- */

typedef struct {
  guint32 chunk_size;   /* 0: FERRY_CHUNK_SIZE_DEFAULT; else a valid chunk size */
  guint streams;        /* data streams per receiver; 0: FERRY_TRANSFER_DEFAULT_STREAMS */
  gboolean skip_errors; /* an unreadable or changing file is skipped, not fatal */
  guint64 limit_rate;   /* file bytes per second to each receiver, at most; 0: no limit */
} FerrySendOptions;

FERRY_API void ferry_send_options_init(FerrySendOptions *options);

/* Scans paths (NULL-terminated, at least one) as <ferry/manifest.h>
 * does and keeps the list of entries for every receiver. An issue met in
 * the scan (unreadable, special file) is an error unless skip_errors, in
 * which case it is counted in the summary and skipped. Returns NULL with
 * error set. Free with ferry_source_free() after every transfer using it
 * is freed. */
FERRY_API FerrySource *ferry_source_new(const char *const *paths, const FerrySendOptions *options,
                                        GError **error);
FERRY_API void ferry_source_free(FerrySource *source);
/* What the source offers (names valid while source lives). */
FERRY_API void ferry_source_get_summary(FerrySource *source, FerryTransferSummary *summary);
/* The entries skipped while scanning (the scanner's issues). */
FERRY_API const FerryScanIssue *ferry_source_get_issues(FerrySource *source, guint *n_issues);

/* Sends source over conn (taken over: freed with the transfer). Returns
 * the transfer; free it with ferry_transfer_free(). */
FERRY_API FerryTransfer *ferry_transfer_send(FerrySource *source, FerryConnection *conn,
                                             const FerryTransferHandlers *handlers,
                                             gpointer user_data);

/* ---- the receiver ------------------------------------------------------- */

typedef struct {
  const char *out_dir;  /* where files land; NULL: the current directory */
  gboolean overwrite;   /* replace an existing different file (else: a renamed target) */
  gboolean skip_errors; /* a file that cannot be written is skipped, not fatal */
  /* Where checkpoints live; NULL: $XDG_STATE_HOME/ferry/checkpoints. */
  const char *checkpoint_dir;
  /* Check that out_dir has room for the offer before accepting. Default TRUE. */
  gboolean check_space;
  /* Checkpoints (and their partial files) not touched for this many
   * seconds are deleted when a receive starts; 0: the default
   * (FERRY_CHECKPOINT_DEFAULT_TTL), negative: never. */
  gint64 checkpoint_ttl;
} FerryReceiveOptions;

FERRY_API void ferry_receive_options_init(FerryReceiveOptions *options);

/* Receives over conn (taken over). Opens (creating it) the output
 * directory first: returns NULL with error set (conn freed) when it cannot
 * be opened or written. Free with ferry_transfer_free(). */
FERRY_API FerryTransfer *ferry_transfer_receive(FerryConnection *conn,
                                                const FerryReceiveOptions *options,
                                                const FerryTransferHandlers *handlers,
                                                gpointer user_data, GError **error);

/* Answers the offer. */
FERRY_API void ferry_transfer_accept(FerryTransfer *transfer);
FERRY_API void ferry_transfer_decline(FerryTransfer *transfer, const char *reason);

/* ---- both --------------------------------------------------------------- */

FERRY_API void ferry_transfer_get_progress(FerryTransfer *transfer,
                                           FerryTransferProgress *progress);
/* The connection carrying the transfer (for its path). */
FERRY_API FerryConnection *ferry_transfer_get_connection(FerryTransfer *transfer);
/* The short transfer id ("3f9a0c…", FERRY_TRANSFER_ID_HEX_LEN hex digits);
 * receiver: "" until the offer arrived. */
FERRY_API const char *ferry_transfer_get_id(FerryTransfer *transfer);
/* Receiver: the checkpoint file of this transfer (NULL before the offer). */
FERRY_API const char *ferry_transfer_get_checkpoint_path(FerryTransfer *transfer);
/* Stops: the receiver saves its checkpoint; the peer is told; finished
 * follows with G_IO_ERROR_CANCELLED. */
FERRY_API void ferry_transfer_cancel(FerryTransfer *transfer);
/* Frees the transfer and its connection. Not from its own handlers except
 * finished. */
FERRY_API void ferry_transfer_free(FerryTransfer *transfer);

/* ---- checkpoints -------------------------------------------------------- */

/* A checkpoint's name: the transfer id, '-', 8 hex digits naming the
 * output folder (one transfer received into two folders keeps two). */
#define FERRY_CHECKPOINT_KEY_LEN (FERRY_TRANSFER_ID_HEX_LEN + 9)

/* One saved receiver checkpoint. */
typedef struct {
  char id[FERRY_TRANSFER_ID_HEX_LEN + 1]; /* the transfer id */
  char key[FERRY_CHECKPOINT_KEY_LEN + 1]; /* the id and the folder: unique */
  char *path;                             /* the checkpoint file */
  char *out_dir;                          /* where the partial files are */
  guint64 files;
  guint64 bytes_total;
  guint64 bytes_verified;
  gint64 mtime;     /* last saved, seconds since the epoch */
  gboolean damaged; /* unreadable: only delete/clean make sense */
} FerryCheckpointInfo;

/* Lists the checkpoints in dir (NULL: the default). Returns an array of
 * FerryCheckpointInfo * (free with g_ptr_array_unref()). */
FERRY_API GPtrArray *ferry_checkpoints_list(const char *dir, GError **error);
/* Deletes the checkpoint whose key starts with id (a transfer id, a key,
 * or a unique prefix) and its partial files. Returns FALSE with FERRY_ERROR_NOT_FOUND or
 * _AMBIGUOUS. */
FERRY_API gboolean ferry_checkpoint_delete(const char *dir, const char *id, GError **error);
/* Deletes checkpoints (and their partial files) older than ttl_seconds;
 * 0 deletes all. Returns how many were deleted. */
FERRY_API guint ferry_checkpoints_clean(const char *dir, gint64 ttl_seconds);

#define FERRY_CHECKPOINT_DEFAULT_TTL (7 * 24 * 3600)

G_END_DECLS

#endif
