/* Checkpoints: what a receiver knows it has, so a transfer can resume.
 *
 * A checkpoint names the transfer (a 32-byte id and the chunk size) and,
 * per file, its relative path, size, expected root hash if known, and
 * which chunks are verified together with each verified chunk's hash.
 * On disk it is a versioned, length-checked binary record sealed with a
 * SHA-256 checksum (the byte layout is in docs/protocol.md), replaced
 * atomically (temp file, fsync, rename, fsync of the directory), so a
 * crash at any moment leaves either the old or the new checkpoint. A
 * checkpoint that is damaged in any way is reported and ignored, never
 * trusted. */
#ifndef FERRY_CORE_CHECKPOINT_H
#define FERRY_CORE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include <ferry/hash.h>

G_BEGIN_DECLS

#define FERRY_CHECKPOINT_MAGIC     "FERRYCKP"
#define FERRY_CHECKPOINT_MAGIC_LEN 8
#define FERRY_CHECKPOINT_VERSION   1
#define FERRY_TRANSFER_ID_LEN      32
/* Limits every decoder and builder enforces. MAX_CHUNKS bounds the sum of
 * all files' chunk counts (the memory a decoded checkpoint may need: 32
 * bytes per chunk, 2 GiB at most); at the default 1 MiB chunks that is a
 * 64 TiB transfer. */
#define FERRY_CHECKPOINT_MAX_FILES  (1u << 22)
#define FERRY_CHECKPOINT_MAX_PATH   4096
#define FERRY_CHECKPOINT_MAX_CHUNKS ((guint64)1 << 26)
#define FERRY_CHECKPOINT_MAX_SIZE   ((gsize)1 << 30) /* largest file load() reads */

typedef struct {
  char *path;                  /* relative, '/'-separated, UTF-8 */
  guint64 size;                /* bytes */
  gboolean has_root;           /* whether root is known */
  guint8 root[FERRY_HASH_LEN]; /* expected root hash; zero when unknown */
  guint64 n_chunks;            /* ferry_chunk_count(size, chunk_size) */
  guint64 n_verified;          /* set bits in verified */
  guint8 *verified; /* bitmap, (n_chunks + 7) / 8 bytes; chunk i is bit 7 - i % 8 of byte i / 8 */
  guint8 *hashes;   /* n_chunks × 32 bytes, valid where verified; NULL until one is */
} FerryCheckpointFile;

typedef struct {
  guint8 transfer_id[FERRY_TRANSFER_ID_LEN];
  guint32 chunk_size;
  GPtrArray *files;     /* FerryCheckpointFile *, in transfer order; read-only */
  GHashTable *by_path;  /* private: path → file */
  guint64 total_chunks; /* private: sum of the files' n_chunks */
} FerryCheckpoint;

typedef struct _FerryCheckpointWriter FerryCheckpointWriter;

/* A new, empty checkpoint for a transfer; chunk_size must be valid.
 * Free with ferry_checkpoint_free(). */
FERRY_API FerryCheckpoint *ferry_checkpoint_new(const guint8 transfer_id[FERRY_TRANSFER_ID_LEN],
                                                guint32 chunk_size);

/* Frees cp and its files. NULL is allowed. */
FERRY_API void ferry_checkpoint_free(FerryCheckpoint *cp);

/* Appends a file with no verified chunks. root may be NULL (not known
 * yet). Returns the file (owned by cp), or NULL if path is not a clean
 * relative path (empty, absolute, with "", "." or ".." components, not
 * UTF-8, longer than FERRY_CHECKPOINT_MAX_PATH), is already present, or
 * the file or chunk count would exceed the limits above. */
FERRY_API FerryCheckpointFile *ferry_checkpoint_add_file(FerryCheckpoint *cp, const char *path,
                                                         guint64 size, const guint8 *root);

/* The file with this path, or NULL. Owned by cp. */
FERRY_API FerryCheckpointFile *ferry_checkpoint_find_file(const FerryCheckpoint *cp,
                                                          const char *path);

/* Records that chunk index of file has been verified with hash. */
FERRY_API void ferry_checkpoint_file_set_verified(FerryCheckpointFile *file, guint64 index,
                                                  const guint8 hash[FERRY_HASH_LEN]);

/* Forgets that chunk index was verified (e.g. its bytes on disk turned
 * out damaged). */
FERRY_API void ferry_checkpoint_file_clear_verified(FerryCheckpointFile *file, guint64 index);

/* Whether chunk index of file is verified. */
FERRY_API gboolean ferry_checkpoint_file_is_verified(const FerryCheckpointFile *file,
                                                     guint64 index);

/* The verified hash of chunk index, or NULL if it is not verified.
 * Owned by file. */
FERRY_API const guint8 *ferry_checkpoint_file_get_hash(const FerryCheckpointFile *file,
                                                       guint64 index);

/* Sets the expected root hash of file. */
FERRY_API void ferry_checkpoint_file_set_root(FerryCheckpointFile *file,
                                              const guint8 root[FERRY_HASH_LEN]);

/* TRUE if a and b hold the same transfer, files, verified chunks and
 * hashes. */
FERRY_API gboolean ferry_checkpoint_equal(const FerryCheckpoint *a, const FerryCheckpoint *b);

/* Encodes cp in the on-disk format. Returns a new buffer (g_free()) and
 * sets *len. The encoding is canonical: decoding it and encoding again
 * gives the same bytes. */
FERRY_API guint8 *ferry_checkpoint_encode(const FerryCheckpoint *cp, gsize *len);

/* Decodes len bytes at data. A pure function: on success returns 0 and
 * sets *out (free with ferry_checkpoint_free()); otherwise returns
 *   FERRY_ERR_INVALID  wrong magic, a field out of range, a count or
 *                      length larger than the data, inconsistent fields
 *   FERRY_ERR_VERSION  a format version this code does not read
 *   FERRY_ERR_CORRUPT  the trailing checksum does not match (torn or
 *                      tampered)
 *   FERRY_ERR_TOO_LONG more files or chunks than the limits above
 * and leaves *out untouched. */
FERRY_API int ferry_checkpoint_decode(const uint8_t *data, size_t len, FerryCheckpoint **out);

/* Like ferry_checkpoint_decode(); on failure also sets *reason (if not
 * NULL) to a static English phrase saying what is wrong. */
FERRY_API int ferry_checkpoint_decode_explain(const uint8_t *data, size_t len,
                                              FerryCheckpoint **out, const char **reason);

/* Atomically replaces the checkpoint at path with cp: writes a temporary
 * file in the same directory (O_EXCL, named after path and this process),
 * fsyncs it, renames it over path and fsyncs the directory. Returns FALSE
 * with FERRY_ERROR_IO (the old checkpoint, if any, is intact) or
 * FERRY_ERROR_TOO_LONG. */
FERRY_API gboolean ferry_checkpoint_save(const FerryCheckpoint *cp, const char *path,
                                         GError **error);

/* Loads the checkpoint at path after removing stale temporary files of
 * killed writers (ferry_checkpoint_clean_stale()). Returns it (free with
 * ferry_checkpoint_free()), or NULL and sets error: FERRY_ERROR_NOT_FOUND
 * if there is none; FERRY_ERROR_INVALID, _VERSION, _CORRUPT or _TOO_LONG
 * if it is damaged, with the reason (the caller treats that as "no
 * checkpoint"; the next save replaces it); FERRY_ERROR_IO if it cannot be
 * read. */
FERRY_API FerryCheckpoint *ferry_checkpoint_load(const char *path, GError **error);

/* Removes temporary files left beside path by writers that no longer run
 * (killed mid-save). Returns how many it removed. */
FERRY_API guint ferry_checkpoint_clean_stale(const char *path);

/* A writer that saves to path at most once per interval_ms milliseconds.
 * Removes stale temporary files first. Free with
 * ferry_checkpoint_writer_free(). */
FERRY_API FerryCheckpointWriter *ferry_checkpoint_writer_new(const char *path, guint interval_ms);

/* Saves cp unless the writer saved (or tried to) less than interval_ms
 * ago. Sets *saved (if not NULL) to whether it wrote. Returns FALSE and
 * sets error if a save failed; failed attempts are rate limited too. */
FERRY_API gboolean ferry_checkpoint_writer_maybe_save(FerryCheckpointWriter *writer,
                                                      const FerryCheckpoint *cp, gboolean *saved,
                                                      GError **error);

/* Saves cp now, whatever the interval (at the end of a transfer, on
 * pause or on exit). Returns FALSE and sets error if the save failed. */
FERRY_API gboolean ferry_checkpoint_writer_flush(FerryCheckpointWriter *writer,
                                                 const FerryCheckpoint *cp, GError **error);

/* Frees writer (it does not save). NULL is allowed. */
FERRY_API void ferry_checkpoint_writer_free(FerryCheckpointWriter *writer);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(FerryCheckpoint, ferry_checkpoint_free)

G_END_DECLS

#endif
