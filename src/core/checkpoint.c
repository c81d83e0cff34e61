/* Checkpoints: the in-memory resume state, its canonical binary encoding
 * (a pure decoder that trusts nothing), and atomic, rate-limited saving.
 *
 * Layout (all integers big-endian; docs/protocol.md has the table):
 *
 *   "FERRYCKP" · u16 version (1) · u16 flags (0) · 32-byte transfer id ·
 *   u32 chunk size · u32 file count · file records · 32-byte SHA-256 of
 *   everything before it
 *
 *   file record: u16 path length · path · u64 size · u8 flags (bit 0:
 *   root known) · 32-byte root (zero if unknown) · u32 bitmap length ·
 *   bitmap · u32 verified count · 32-byte hash of each verified chunk in
 *   index order
 *
 * Every optional or redundant part has exactly one allowed value
 * (reserved bits zero, unknown root zero, bitmap padding zero, counts
 * equal to what they count), so the encoding is canonical and any
 * disagreement is a sign of damage. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/checkpoint.h"

#define HEADER_LEN  (FERRY_CHECKPOINT_MAGIC_LEN + 2 + 2 + FERRY_TRANSFER_ID_LEN + 4 + 4)
#define TRAILER_LEN FERRY_HASH_LEN
/* A file record with a 1-byte path, a 0-byte file and nothing verified. */
#define MIN_FILE_LEN  (2 + 1 + 8 + 1 + FERRY_HASH_LEN + 4 + 4)
#define FILE_HAS_ROOT 0x01

struct _FerryCheckpointWriter {
  char *path;
  gint64 interval_us;
  gint64 last_us;
  gboolean tried;
};

static void
file_free(gpointer data)
{
  FerryCheckpointFile *file = data;

  g_free(file->path);
  g_free(file->verified);
  g_free(file->hashes);
  g_free(file);
}

FerryCheckpoint *
ferry_checkpoint_new(const guint8 transfer_id[FERRY_TRANSFER_ID_LEN], guint32 chunk_size)
{
  g_return_val_if_fail(transfer_id != NULL, NULL);
  g_return_val_if_fail(ferry_chunk_size_is_valid(chunk_size), NULL);

  FerryCheckpoint *cp = g_new0(FerryCheckpoint, 1);
  memcpy(cp->transfer_id, transfer_id, FERRY_TRANSFER_ID_LEN);
  cp->chunk_size = chunk_size;
  cp->files = g_ptr_array_new_with_free_func(file_free);
  cp->by_path = g_hash_table_new(g_str_hash, g_str_equal);
  return cp;
}

void
ferry_checkpoint_free(FerryCheckpoint *cp)
{
  if (cp == NULL)
    return;
  g_hash_table_destroy(cp->by_path);
  g_ptr_array_free(cp->files, TRUE);
  g_free(cp);
}

/* A relative path a receiver could use as is: non-empty UTF-8 without
 * NUL, not absolute, and no empty, "." or ".." component. The transfer
 * layer applies its full safe-path rules as well; this keeps a tampered
 * checkpoint from carrying a path that is obviously unusable. */
static gboolean
path_is_clean(const char *path, size_t len)
{
  if (len == 0 || len > FERRY_CHECKPOINT_MAX_PATH || !g_utf8_validate(path, (gssize)len, NULL))
    return FALSE;
  for (size_t start = 0; start <= len;) {
    size_t n = 0;
    while (start + n < len && path[start + n] != '/')
      n++;
    if (n == 0 || (n == 1 && path[start] == '.') ||
        (n == 2 && path[start] == '.' && path[start + 1] == '.'))
      return FALSE;
    start += n + 1;
  }
  return TRUE;
}

/* Adds a file whose path has been checked; NULL if it is a duplicate or
 * the limits would be exceeded. Takes ownership of path. */
static FerryCheckpointFile *
add_file(FerryCheckpoint *cp, char *path, guint64 size)
{
  guint64 n_chunks = ferry_chunk_count(size, cp->chunk_size);

  if (g_hash_table_contains(cp->by_path, path) || cp->files->len >= FERRY_CHECKPOINT_MAX_FILES ||
      n_chunks > FERRY_CHECKPOINT_MAX_CHUNKS - cp->total_chunks || size > (guint64)G_MAXINT64) {
    g_free(path);
    return NULL;
  }
  FerryCheckpointFile *file = g_new0(FerryCheckpointFile, 1);
  file->path = path;
  file->size = size;
  file->n_chunks = n_chunks;
  file->verified = g_malloc0((gsize)(n_chunks + 7) / 8 + 1);
  g_ptr_array_add(cp->files, file);
  g_hash_table_insert(cp->by_path, file->path, file);
  cp->total_chunks += n_chunks;
  return file;
}

FerryCheckpointFile *
ferry_checkpoint_add_file(FerryCheckpoint *cp, const char *path, guint64 size, const guint8 *root)
{
  g_return_val_if_fail(cp != NULL && path != NULL, NULL);

  if (!path_is_clean(path, strlen(path)))
    return NULL;
  FerryCheckpointFile *file = add_file(cp, g_strdup(path), size);
  if (file != NULL && root != NULL)
    ferry_checkpoint_file_set_root(file, root);
  return file;
}

FerryCheckpointFile *
ferry_checkpoint_find_file(const FerryCheckpoint *cp, const char *path)
{
  g_return_val_if_fail(cp != NULL && path != NULL, NULL);
  return g_hash_table_lookup(cp->by_path, path);
}

static gboolean
bit_get(const guint8 *bitmap, guint64 index)
{
  return (bitmap[index / 8] >> (7 - index % 8)) & 1;
}

void
ferry_checkpoint_file_set_verified(FerryCheckpointFile *file, guint64 index,
                                   const guint8 hash[FERRY_HASH_LEN])
{
  g_return_if_fail(file != NULL && hash != NULL);
  g_return_if_fail(index < file->n_chunks);

  if (file->hashes == NULL)
    file->hashes = g_malloc0((gsize)file->n_chunks * FERRY_HASH_LEN);
  if (!bit_get(file->verified, index)) {
    file->verified[index / 8] |= (guint8)(0x80 >> (index % 8));
    file->n_verified++;
  }
  memcpy(file->hashes + index * FERRY_HASH_LEN, hash, FERRY_HASH_LEN);
}

void
ferry_checkpoint_file_clear_verified(FerryCheckpointFile *file, guint64 index)
{
  g_return_if_fail(file != NULL);
  g_return_if_fail(index < file->n_chunks);

  if (!bit_get(file->verified, index))
    return;
  file->verified[index / 8] &= (guint8) ~(0x80 >> (index % 8));
  file->n_verified--;
  memset(file->hashes + index * FERRY_HASH_LEN, 0, FERRY_HASH_LEN);
}

gboolean
ferry_checkpoint_file_is_verified(const FerryCheckpointFile *file, guint64 index)
{
  g_return_val_if_fail(file != NULL, FALSE);
  return index < file->n_chunks && bit_get(file->verified, index);
}

const guint8 *
ferry_checkpoint_file_get_hash(const FerryCheckpointFile *file, guint64 index)
{
  if (!ferry_checkpoint_file_is_verified(file, index))
    return NULL;
  return file->hashes + index * FERRY_HASH_LEN;
}

void
ferry_checkpoint_file_set_root(FerryCheckpointFile *file, const guint8 root[FERRY_HASH_LEN])
{
  g_return_if_fail(file != NULL && root != NULL);
  file->has_root = TRUE;
  memcpy(file->root, root, FERRY_HASH_LEN);
}

gboolean
ferry_checkpoint_equal(const FerryCheckpoint *a, const FerryCheckpoint *b)
{
  g_return_val_if_fail(a != NULL && b != NULL, FALSE);

  if (memcmp(a->transfer_id, b->transfer_id, FERRY_TRANSFER_ID_LEN) != 0 ||
      a->chunk_size != b->chunk_size || a->files->len != b->files->len)
    return FALSE;
  for (guint i = 0; i < a->files->len; i++) {
    const FerryCheckpointFile *fa = a->files->pdata[i], *fb = b->files->pdata[i];
    if (strcmp(fa->path, fb->path) != 0 || fa->size != fb->size || fa->has_root != fb->has_root ||
        memcmp(fa->root, fb->root, FERRY_HASH_LEN) != 0 || fa->n_verified != fb->n_verified ||
        memcmp(fa->verified, fb->verified, (gsize)(fa->n_chunks + 7) / 8) != 0)
      return FALSE;
    for (guint64 c = 0; c < fa->n_chunks && fa->n_verified > 0; c++) {
      if (bit_get(fa->verified, c) && memcmp(fa->hashes + c * FERRY_HASH_LEN,
                                             fb->hashes + c * FERRY_HASH_LEN, FERRY_HASH_LEN) != 0)
        return FALSE;
    }
  }
  return TRUE;
}

static void
put_u16(GByteArray *out, guint16 v)
{
  guint8 b[2] = {(guint8)(v >> 8), (guint8)v};
  g_byte_array_append(out, b, sizeof b);
}

static void
put_u32(GByteArray *out, guint32 v)
{
  guint8 b[4] = {(guint8)(v >> 24), (guint8)(v >> 16), (guint8)(v >> 8), (guint8)v};
  g_byte_array_append(out, b, sizeof b);
}

static void
put_u64(GByteArray *out, guint64 v)
{
  put_u32(out, (guint32)(v >> 32));
  put_u32(out, (guint32)v);
}

guint8 *
ferry_checkpoint_encode(const FerryCheckpoint *cp, gsize *len)
{
  gsize total = HEADER_LEN + TRAILER_LEN;
  static const guint8 zero_hash[FERRY_HASH_LEN];

  g_return_val_if_fail(cp != NULL && len != NULL, NULL);

  for (guint i = 0; i < cp->files->len; i++) {
    const FerryCheckpointFile *file = cp->files->pdata[i];
    total += MIN_FILE_LEN - 1 + strlen(file->path) + (file->n_chunks + 7) / 8 +
             file->n_verified * FERRY_HASH_LEN;
  }
  GByteArray *out = g_byte_array_sized_new((guint)MIN(total, G_MAXUINT));
  g_byte_array_append(out, (const guint8 *)FERRY_CHECKPOINT_MAGIC, FERRY_CHECKPOINT_MAGIC_LEN);
  put_u16(out, FERRY_CHECKPOINT_VERSION);
  put_u16(out, 0);
  g_byte_array_append(out, cp->transfer_id, FERRY_TRANSFER_ID_LEN);
  put_u32(out, cp->chunk_size);
  put_u32(out, cp->files->len);
  for (guint i = 0; i < cp->files->len; i++) {
    const FerryCheckpointFile *file = cp->files->pdata[i];
    size_t path_len = strlen(file->path);
    guint32 bitmap_len = (guint32)((file->n_chunks + 7) / 8);

    put_u16(out, (guint16)path_len);
    g_byte_array_append(out, (const guint8 *)file->path, (guint)path_len);
    put_u64(out, file->size);
    g_byte_array_append(out, (const guint8[]){file->has_root ? FILE_HAS_ROOT : 0}, 1);
    g_byte_array_append(out, file->has_root ? file->root : zero_hash, FERRY_HASH_LEN);
    put_u32(out, bitmap_len);
    g_byte_array_append(out, file->verified, bitmap_len);
    put_u32(out, (guint32)file->n_verified);
    for (guint64 c = 0; c < file->n_chunks && file->n_verified > 0; c++) {
      if (bit_get(file->verified, c))
        g_byte_array_append(out, file->hashes + c * FERRY_HASH_LEN, FERRY_HASH_LEN);
    }
  }
  guint8 checksum[FERRY_HASH_LEN];
  ferry_chunk_hash(out->data, out->len, checksum);
  g_byte_array_append(out, checksum, sizeof checksum);
  g_assert(out->len == total);
  *len = out->len;
  return g_byte_array_free(out, FALSE);
}

/* A cursor over untrusted bytes: every read checks what is left. */
typedef struct {
  const guint8 *p;
  size_t left;
} Reader;

static const guint8 *
take(Reader *r, size_t n)
{
  if (n > r->left)
    return NULL;
  const guint8 *p = r->p;
  r->p += n;
  r->left -= n;
  return p;
}

static gboolean
take_u8(Reader *r, guint8 *v)
{
  const guint8 *p = take(r, 1);
  if (p == NULL)
    return FALSE;
  *v = p[0];
  return TRUE;
}

static gboolean
take_u16(Reader *r, guint16 *v)
{
  const guint8 *p = take(r, 2);
  if (p == NULL)
    return FALSE;
  *v = (guint16)(p[0] << 8 | p[1]);
  return TRUE;
}

static gboolean
take_u32(Reader *r, guint32 *v)
{
  const guint8 *p = take(r, 4);
  if (p == NULL)
    return FALSE;
  *v = (guint32)p[0] << 24 | (guint32)p[1] << 16 | (guint32)p[2] << 8 | p[3];
  return TRUE;
}

static gboolean
take_u64(Reader *r, guint64 *v)
{
  guint32 hi, lo;
  if (!take_u32(r, &hi) || !take_u32(r, &lo))
    return FALSE;
  *v = (guint64)hi << 32 | lo;
  return TRUE;
}

static guint64
popcount_bytes(const guint8 *p, size_t n)
{
  guint64 count = 0;
  for (size_t i = 0; i < n; i++)
    count += (guint64)__builtin_popcount(p[i]);
  return count;
}

#define FAIL(code, why)                                                                            \
  do {                                                                                             \
    *reason = (why);                                                                               \
    return (code);                                                                                 \
  } while (0)

/* Decodes one file record into cp. Returns 0 or a FerryErr and *reason. */
static int
decode_file(Reader *r, FerryCheckpoint *cp, const char **reason)
{
  guint16 path_len;
  guint64 size;
  guint8 flags;
  guint32 bitmap_len, n_verified;
  const guint8 *path, *root, *bitmap, *hashes;

  if (!take_u16(r, &path_len) || (path = take(r, path_len)) == NULL)
    FAIL(FERRY_ERR_INVALID, "a path is longer than the data left");
  if (path_len > FERRY_CHECKPOINT_MAX_PATH)
    FAIL(FERRY_ERR_TOO_LONG, "a path is longer than 4096 bytes");
  if (!path_is_clean((const char *)path, path_len))
    FAIL(FERRY_ERR_INVALID,
         "a path is empty, absolute, not UTF-8, or has empty, '.' or '..' parts");
  if (!take_u64(r, &size) || !take_u8(r, &flags) || (root = take(r, FERRY_HASH_LEN)) == NULL ||
      !take_u32(r, &bitmap_len))
    FAIL(FERRY_ERR_INVALID, "a file record is cut short");
  if (size > (guint64)G_MAXINT64)
    FAIL(FERRY_ERR_INVALID, "a file size is larger than any file can be");
  if ((flags & ~FILE_HAS_ROOT) != 0)
    FAIL(FERRY_ERR_INVALID, "a file record has unknown flags set");

  guint64 n_chunks = ferry_chunk_count(size, cp->chunk_size);
  if (bitmap_len != (n_chunks + 7) / 8)
    FAIL(FERRY_ERR_INVALID, "a chunk bitmap length does not match the file size");
  if ((bitmap = take(r, bitmap_len)) == NULL)
    FAIL(FERRY_ERR_INVALID, "a chunk bitmap is longer than the data left");
  if (n_chunks % 8 != 0 && (bitmap[bitmap_len - 1] & (0xff >> (n_chunks % 8))) != 0)
    FAIL(FERRY_ERR_INVALID, "a chunk bitmap marks chunks past the end of its file");
  if (!take_u32(r, &n_verified))
    FAIL(FERRY_ERR_INVALID, "a file record is cut short");
  if (n_verified != popcount_bytes(bitmap, bitmap_len))
    FAIL(FERRY_ERR_INVALID, "a verified-chunk count does not match its bitmap");
  if ((hashes = take(r, (size_t)n_verified * FERRY_HASH_LEN)) == NULL)
    FAIL(FERRY_ERR_INVALID, "more chunk hashes are announced than the data holds");
  if (!(flags & FILE_HAS_ROOT)) {
    static const guint8 zero[FERRY_HASH_LEN];
    if (memcmp(root, zero, FERRY_HASH_LEN) != 0)
      FAIL(FERRY_ERR_INVALID, "a file has a root hash but is marked as having none");
  }
  if (n_chunks > FERRY_CHECKPOINT_MAX_CHUNKS - cp->total_chunks)
    FAIL(FERRY_ERR_TOO_LONG, "the files have more chunks than a checkpoint may hold");

  /* add_file() fails here only on a duplicate: every limit is checked. */
  FerryCheckpointFile *file = add_file(cp, g_strndup((const char *)path, path_len), size);
  if (file == NULL)
    FAIL(FERRY_ERR_INVALID, "a path appears twice");
  memcpy(file->verified, bitmap, bitmap_len);
  file->n_verified = n_verified;
  if (flags & FILE_HAS_ROOT)
    ferry_checkpoint_file_set_root(file, root);
  if (n_verified > 0) {
    file->hashes = g_malloc0((gsize)n_chunks * FERRY_HASH_LEN);
    for (guint64 c = 0, k = 0; c < n_chunks; c++) {
      if (bit_get(bitmap, c))
        memcpy(file->hashes + c * FERRY_HASH_LEN, hashes + (k++) * FERRY_HASH_LEN, FERRY_HASH_LEN);
    }
  }
  /* Every chunk verified and a root expected: they must agree, or the
   * record is not what a receiver wrote. */
  if (file->has_root && n_verified == n_chunks) {
    guint8 root_now[FERRY_HASH_LEN];
    ferry_root_hash(cp->chunk_size, size, file->hashes, root_now);
    if (memcmp(root_now, file->root, FERRY_HASH_LEN) != 0)
      FAIL(FERRY_ERR_INVALID, "a complete file's chunk hashes do not give its root hash");
  }
  return 0;
}

static int
decode(const uint8_t *data, size_t len, FerryCheckpoint **out, const char **reason)
{
  Reader r = {data, len};
  guint16 version, flags;
  guint32 chunk_size, n_files;
  const guint8 *magic, *transfer_id;
  guint8 checksum[FERRY_HASH_LEN];

  if (len < HEADER_LEN + TRAILER_LEN)
    FAIL(FERRY_ERR_INVALID, "it is too short to be a checkpoint");
  magic = take(&r, FERRY_CHECKPOINT_MAGIC_LEN);
  if (memcmp(magic, FERRY_CHECKPOINT_MAGIC, FERRY_CHECKPOINT_MAGIC_LEN) != 0)
    FAIL(FERRY_ERR_INVALID, "it is not a ferry checkpoint (wrong magic)");
  take_u16(&r, &version);
  if (version != FERRY_CHECKPOINT_VERSION)
    FAIL(FERRY_ERR_VERSION, "it has a format version this ferry does not read");
  ferry_chunk_hash(data, len - TRAILER_LEN, checksum);
  if (memcmp(checksum, data + len - TRAILER_LEN, TRAILER_LEN) != 0)
    FAIL(FERRY_ERR_CORRUPT, "its checksum does not match (torn, truncated or tampered)");
  r.left -= TRAILER_LEN;

  take_u16(&r, &flags);
  transfer_id = take(&r, FERRY_TRANSFER_ID_LEN);
  take_u32(&r, &chunk_size);
  take_u32(&r, &n_files);
  if (flags != 0)
    FAIL(FERRY_ERR_INVALID, "it has unknown header flags set");
  if (!ferry_chunk_size_is_valid(chunk_size))
    FAIL(FERRY_ERR_INVALID, "its chunk size is not a power of two from 64 KiB to 64 MiB");
  if (n_files > FERRY_CHECKPOINT_MAX_FILES)
    FAIL(FERRY_ERR_TOO_LONG, "it lists more files than a checkpoint may hold");
  if (n_files > r.left / MIN_FILE_LEN)
    FAIL(FERRY_ERR_INVALID, "it announces more files than the data holds");

  FerryCheckpoint *cp = ferry_checkpoint_new(transfer_id, chunk_size);
  for (guint32 i = 0; i < n_files; i++) {
    int rc = decode_file(&r, cp, reason);
    if (rc < 0) {
      ferry_checkpoint_free(cp);
      return rc;
    }
  }
  if (r.left != 0) {
    ferry_checkpoint_free(cp);
    FAIL(FERRY_ERR_INVALID, "it has bytes after the last file record");
  }
  *out = cp;
  return 0;
}

int
ferry_checkpoint_decode_explain(const uint8_t *data, size_t len, FerryCheckpoint **out,
                                const char **reason)
{
  const char *why = NULL;

  g_return_val_if_fail(data != NULL || len == 0, FERRY_ERR_INVALID);
  g_return_val_if_fail(out != NULL, FERRY_ERR_INVALID);

  int rc = decode(data, len, out, &why);
  if (reason != NULL)
    *reason = why;
  return rc;
}

int
ferry_checkpoint_decode(const uint8_t *data, size_t len, FerryCheckpoint **out)
{
  return ferry_checkpoint_decode_explain(data, len, out, NULL);
}

/* Temporary files are named ".BASE.PID.RANDOM.tmp" beside the target, so
 * a later process can tell whose they are and remove them only once
 * their writer is gone. */
static char *
temp_prefix(const char *path, char **dir)
{
  char *base = g_path_get_basename(path);
  char *prefix = g_strdup_printf(".%s.", base);

  *dir = g_path_get_dirname(path);
  g_free(base);
  return prefix;
}

static gboolean
write_all(int fd, const guint8 *data, gsize len)
{
  while (len > 0) {
    ssize_t n = write(fd, data, MIN(len, (gsize)1 << 30));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return FALSE;
    data += n;
    len -= (gsize)n;
  }
  return TRUE;
}

static gboolean
save_failed(GError **error, const char *path, const char *step, int err)
{
  return ferry_set_error(error, FERRY_ERR_IO,
                         "cannot save checkpoint %s: %s: %s; the previous checkpoint is kept", path,
                         step, g_strerror(err));
}

static gboolean
write_atomically(const char *path, const guint8 *data, gsize len, GError **error)
{
  char *dir, *prefix = temp_prefix(path, &dir), *tmp = NULL;
  int fd = -1, dir_fd, err;
  gboolean ok = FALSE;

  for (int attempt = 0; fd < 0 && attempt < 16; attempt++) {
    g_free(tmp);
    tmp = g_strdup_printf("%s/%s%ld.%08x.tmp", dir, prefix, (long)getpid(), g_random_int());
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
      break;
  }
  if (fd < 0) {
    save_failed(error, path, "creating a temporary file", errno);
    goto out;
  }
  if (!write_all(fd, data, len)) {
    save_failed(error, path, "writing", errno);
    goto fail;
  }
  if (fsync(fd) < 0) {
    save_failed(error, path, "fsync", errno);
    goto fail;
  }
  err = close(fd) < 0 ? errno : 0;
  fd = -1;
  if (err != 0) {
    save_failed(error, path, "closing", err);
    goto fail;
  }
  if (rename(tmp, path) < 0) {
    save_failed(error, path, "renaming", errno);
    goto fail;
  }
  /* The rename is durable only once the directory entry is on disk. */
  dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0 || fsync(dir_fd) < 0) {
    ferry_set_error(error, FERRY_ERR_IO,
                    "cannot make checkpoint %s durable: syncing its directory: %s; it will be "
                    "saved again",
                    path, g_strerror(errno));
    if (dir_fd >= 0)
      close(dir_fd);
    goto out;
  }
  close(dir_fd);
  ok = TRUE;
  goto out;

fail:
  if (fd >= 0)
    close(fd);
  unlink(tmp);
out:
  g_free(tmp);
  g_free(prefix);
  g_free(dir);
  return ok;
}

gboolean
ferry_checkpoint_save(const FerryCheckpoint *cp, const char *path, GError **error)
{
  gsize len;

  g_return_val_if_fail(cp != NULL && path != NULL, FALSE);

  guint8 *data = ferry_checkpoint_encode(cp, &len);
  gboolean ok;
  if (len > FERRY_CHECKPOINT_MAX_SIZE)
    ok = ferry_set_error(error, FERRY_ERR_TOO_LONG,
                         "cannot save checkpoint %s: it would take %" G_GSIZE_FORMAT
                         " bytes, more than the 1 GiB limit; use a larger chunk size",
                         path, len);
  else
    ok = write_atomically(path, data, len, error);
  g_free(data);
  return ok;
}

/* Parses "PID.XXXXXXXX.tmp" (what follows the prefix); returns the PID or
 * 0 if name is not one of our temporary files. */
static pid_t
temp_owner(const char *rest)
{
  char *end;
  guint64 pid = g_ascii_strtoull(rest, &end, 10);

  if (end == rest || !g_ascii_isdigit(rest[0]) || pid == 0 || pid > G_MAXINT32 || *end != '.')
    return 0;
  for (int i = 1; i <= 8; i++) {
    if (!g_ascii_isxdigit(end[i]))
      return 0;
  }
  return strcmp(end + 9, ".tmp") == 0 ? (pid_t)pid : 0;
}

guint
ferry_checkpoint_clean_stale(const char *path)
{
  char *dir, *prefix = temp_prefix(path, &dir);
  GDir *d = g_dir_open(dir, 0, NULL);
  const char *name;
  guint removed = 0;

  while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
    if (!g_str_has_prefix(name, prefix))
      continue;
    pid_t pid = temp_owner(name + strlen(prefix));
    if (pid == 0 || pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
      continue;
    char *stale = g_build_filename(dir, name, NULL);
    if (unlink(stale) == 0) {
      g_debug("removed %s, left by a checkpoint writer that no longer runs", stale);
      removed++;
    }
    g_free(stale);
  }
  if (d != NULL)
    g_dir_close(d);
  g_free(prefix);
  g_free(dir);
  return removed;
}

FerryCheckpoint *
ferry_checkpoint_load(const char *path, GError **error)
{
  char *data = NULL;
  gsize len = 0;
  struct stat st;
  FerryCheckpoint *cp = NULL;
  const char *reason = NULL;

  g_return_val_if_fail(path != NULL, NULL);

  ferry_checkpoint_clean_stale(path);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    ferry_set_error(error, errno == ENOENT ? FERRY_ERR_NOT_FOUND : FERRY_ERR_IO,
                    "cannot read checkpoint %s: %s", path, g_strerror(errno));
    return NULL;
  }
  if (fstat(fd, &st) < 0) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot read checkpoint %s: %s", path, g_strerror(errno));
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    ferry_set_error(error, FERRY_ERR_IO,
                    "cannot read checkpoint %s: it is not a regular file (remove it or choose "
                    "another output directory)",
                    path);
    goto out;
  }
  if ((guint64)st.st_size > FERRY_CHECKPOINT_MAX_SIZE) {
    ferry_set_error(error, FERRY_ERR_TOO_LONG,
                    "checkpoint %s is unusable: it is larger than 1 GiB; ignoring it (the "
                    "transfer resumes without it and the next save replaces it)",
                    path);
    goto out;
  }
  data = g_malloc((gsize)st.st_size + 1);
  while (len < (gsize)st.st_size) {
    ssize_t n = read(fd, data + len, (gsize)st.st_size - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      ferry_set_error(error, FERRY_ERR_IO, "cannot read checkpoint %s: %s", path,
                      g_strerror(errno));
      goto out;
    }
    if (n == 0)
      break;
    len += (gsize)n;
  }
  int rc = ferry_checkpoint_decode_explain((const uint8_t *)data, len, &cp, &reason);
  if (rc < 0)
    ferry_set_error(error, rc,
                    "checkpoint %s is unusable: %s; ignoring it (the transfer resumes without "
                    "it and the next save replaces it)",
                    path, reason);
out:
  g_free(data);
  close(fd);
  return cp;
}

FerryCheckpointWriter *
ferry_checkpoint_writer_new(const char *path, guint interval_ms)
{
  g_return_val_if_fail(path != NULL, NULL);

  FerryCheckpointWriter *writer = g_new0(FerryCheckpointWriter, 1);
  writer->path = g_strdup(path);
  writer->interval_us = (gint64)interval_ms * 1000;
  ferry_checkpoint_clean_stale(path);
  return writer;
}

gboolean
ferry_checkpoint_writer_maybe_save(FerryCheckpointWriter *writer, const FerryCheckpoint *cp,
                                   gboolean *saved, GError **error)
{
  gint64 now = g_get_monotonic_time();

  g_return_val_if_fail(writer != NULL && cp != NULL, FALSE);

  if (saved != NULL)
    *saved = FALSE;
  if (writer->tried && now - writer->last_us < writer->interval_us)
    return TRUE;
  if (!ferry_checkpoint_writer_flush(writer, cp, error))
    return FALSE;
  if (saved != NULL)
    *saved = TRUE;
  return TRUE;
}

gboolean
ferry_checkpoint_writer_flush(FerryCheckpointWriter *writer, const FerryCheckpoint *cp,
                              GError **error)
{
  g_return_val_if_fail(writer != NULL && cp != NULL, FALSE);

  writer->tried = TRUE;
  writer->last_us = g_get_monotonic_time();
  return ferry_checkpoint_save(cp, writer->path, error);
}

void
ferry_checkpoint_writer_free(FerryCheckpointWriter *writer)
{
  if (writer == NULL)
    return;
  g_free(writer->path);
  g_free(writer);
}
