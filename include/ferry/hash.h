/* Chunk hashing: SHA-256 per fixed-size chunk and a per-file root hash.
 *
 * A file of S bytes hashed with chunk size C (a power of two, 64 KiB to
 * 64 MiB) has N = ceil(S / C) chunks; chunk i covers bytes [i*C, min(S,
 * (i+1)*C)). A 0-byte file has no chunks. Its root hash is
 *
 *   SHA-256("ferry-root-v1" || u64be(C) || u64be(S) || H(0) || … || H(N-1))
 *
 * where "ferry-root-v1" is those 13 ASCII bytes without a terminator and
 * H(i) is the 32-byte SHA-256 of chunk i. The root names the content, the
 * chunking and the length at once, so two files agree on their root only
 * if every chunk does. */
#ifndef FERRY_HASH_H
#define FERRY_HASH_H

#include <stddef.h>
#include <stdint.h>

#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_HASH_LEN       32
#define FERRY_HASH_HEX_LEN   (2 * FERRY_HASH_LEN)
#define FERRY_CHUNK_SIZE_MIN (64u * 1024)
#define FERRY_CHUNK_SIZE_MAX (64u * 1024 * 1024)
/* Picked with bench-hash --sweep: hashing speed is flat (±5%) from 64 KiB
 * to 64 MiB, so the checkpoint decides. 1 MiB is the smallest size at
 * which the whole checkpoint of a 100 GiB transfer (3.3 MB) saves with
 * fsync in about 10 ms, 1% of the 1 s save interval; 64 KiB needs 53 MB
 * and 160 ms. Larger chunks only make resume and repair coarser. */
#define FERRY_CHUNK_SIZE_DEFAULT (1024u * 1024)
#define FERRY_ROOT_TAG           "ferry-root-v1"

/* The hashes of one file: its chunking, every chunk hash and the root. */
typedef struct {
  guint32 chunk_size;
  guint64 size;         /* bytes hashed */
  guint64 n_chunks;     /* ceil(size / chunk_size) */
  guint8 *chunk_hashes; /* n_chunks × FERRY_HASH_LEN bytes; NULL if n_chunks is 0 */
  guint8 root[FERRY_HASH_LEN];
} FerryFileHash;

/* Called by a FerryHasher once per chunk, in order, as soon as the chunk's
 * last byte has been fed (the last, shorter chunk only at finish). len is
 * the chunk's length; hash is valid only during the call. */
typedef void (*FerryChunkFunc)(guint64 index, guint32 len, const guint8 hash[FERRY_HASH_LEN],
                               gpointer user_data);

typedef struct _FerryHasher FerryHasher;

/* TRUE if size is a power of two between FERRY_CHUNK_SIZE_MIN and
 * FERRY_CHUNK_SIZE_MAX. */
FERRY_API gboolean ferry_chunk_size_is_valid(guint64 size);

/* Parses a chunk size as a user writes it: a decimal number of bytes with
 * an optional binary unit K, M or G (also KiB, MiB, GiB; any case), e.g.
 * "4M", "1MiB", "262144". Returns TRUE and sets *out, or FALSE with
 * FERRY_ERROR_INVALID and a message that quotes text and states the valid
 * range. */
FERRY_API gboolean ferry_chunk_size_parse(const char *text, guint32 *out, GError **error);

/* The number of chunks of a file of size bytes: ceil(size / chunk_size). */
FERRY_API guint64 ferry_chunk_count(guint64 size, guint32 chunk_size);

/* Writes the SHA-256 of len bytes at data (len may be 0) to out. */
FERRY_API void ferry_chunk_hash(const void *data, size_t len, guint8 out[FERRY_HASH_LEN]);

/* Writes the root hash (see the top of this file) of a file of size bytes
 * to out. chunk_hashes holds ferry_chunk_count(size, chunk_size) hashes
 * back to back (may be NULL when that count is 0). */
FERRY_API void ferry_root_hash(guint32 chunk_size, guint64 size, const guint8 *chunk_hashes,
                               guint8 out[FERRY_HASH_LEN]);

/* Writes hash as 64 lowercase hex digits and a NUL to out. */
FERRY_API void ferry_hash_to_hex(const guint8 hash[FERRY_HASH_LEN],
                                 char out[FERRY_HASH_HEX_LEN + 1]);

/* A streaming hasher for chunk_size (which must be valid). func (may be
 * NULL) hears about each chunk as it completes. Free with
 * ferry_hasher_finish() or ferry_hasher_free(). */
FERRY_API FerryHasher *ferry_hasher_new(guint32 chunk_size, FerryChunkFunc func,
                                        gpointer user_data);

/* Feeds the next len bytes of the file; any split of the input gives the
 * same hashes. */
FERRY_API void ferry_hasher_update(FerryHasher *hasher, const void *data, size_t len);

/* Ends the input: hashes the last partial chunk, computes the root and
 * frees hasher. Returns the result; free it with ferry_file_hash_free(). */
FERRY_API FerryFileHash *ferry_hasher_finish(FerryHasher *hasher);

/* Frees a hasher without finishing it. NULL is allowed. */
FERRY_API void ferry_hasher_free(FerryHasher *hasher);

/* Hashes the regular file at path in chunks of chunk_size (which must be
 * valid), reading with large pread()s on n_threads threads at once (0:
 * one per CPU, at most 8). Returns the hashes (free with
 * ferry_file_hash_free()), or NULL and sets error: FERRY_ERROR_IO when the
 * file cannot be opened or read or is not a regular file, and
 * FERRY_ERROR_STATE when it changed size or mtime while being hashed. The
 * message names path and the reason. */
FERRY_API FerryFileHash *ferry_hash_file(const char *path, guint32 chunk_size, guint n_threads,
                                         GError **error);

/* Frees a FerryFileHash. NULL is allowed. */
FERRY_API void ferry_file_hash_free(FerryFileHash *hash);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(FerryFileHash, ferry_file_hash_free)

G_END_DECLS

#endif
