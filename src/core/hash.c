/* Chunk hashing: SHA-256 per chunk through GnuTLS (SHA-NI where the CPU
 * has it), the per-file root hash, a streaming hasher and a parallel
 * file hasher. The definitions are in hash.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include <ferry/hash.h>

/* How much one pread() asks for: small enough that the copy stays in L2
 * cache until SHA-256 reads it, large enough that syscalls are noise. */
#define READ_BLOCK  (256u * 1024)
#define MAX_THREADS 8

struct _FerryHasher {
  guint32 chunk_size;
  guint32 in_chunk; /* bytes of the current chunk fed so far */
  guint64 size;
  gnutls_hash_hd_t digest;
  GByteArray *hashes;
  FerryChunkFunc func;
  gpointer user_data;
};

/* GnuTLS can only fail to hash SHA-256 when it cannot allocate memory;
 * like GLib on out-of-memory, there is nothing sensible to continue with. */
static void
check_gnutls(int rc, const char *what)
{
  if (rc < 0)
    g_error("GnuTLS %s failed: %s", what, gnutls_strerror(rc));
}

static void
put_u64be(guint8 *p, guint64 v)
{
  for (int i = 7; i >= 0; i--) {
    p[i] = (guint8)v;
    v >>= 8;
  }
}

gboolean
ferry_chunk_size_is_valid(guint64 size)
{
  return size >= FERRY_CHUNK_SIZE_MIN && size <= FERRY_CHUNK_SIZE_MAX && (size & (size - 1)) == 0;
}

gboolean
ferry_chunk_size_parse(const char *text, guint32 *out, GError **error)
{
  static const struct {
    const char *name;
    guint shift;
  } units[] = {
      {"", 0}, {"b", 0}, {"k", 10}, {"kib", 10}, {"m", 20}, {"mib", 20}, {"g", 30}, {"gib", 30},
  };
  const char *end;
  guint64 value = 0;
  gboolean known_unit = FALSE;

  g_return_val_if_fail(text != NULL && out != NULL, FALSE);

  for (end = text; g_ascii_isdigit(*end); end++) {
    if (value > (G_MAXUINT64 - 9) / 10) {
      value = G_MAXUINT64;
      continue;
    }
    value = value * 10 + (guint64)(*end - '0');
  }
  if (end == text)
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "'%s' is not a chunk size: write a number of bytes with an optional "
                           "unit, such as 1M, 4MiB or 262144",
                           text);
  for (size_t i = 0; i < G_N_ELEMENTS(units); i++) {
    if (g_ascii_strcasecmp(end, units[i].name) == 0) {
      known_unit = TRUE;
      value = value > (G_MAXUINT64 >> units[i].shift) ? G_MAXUINT64 : value << units[i].shift;
      break;
    }
  }
  if (!known_unit)
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "'%s' is not a chunk size: unknown unit '%s' (use K, KiB, M, MiB, G, "
                           "GiB or none for bytes)",
                           text, end);
  if (!ferry_chunk_size_is_valid(value))
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "chunk size '%s' is not allowed: it must be a power of two between "
                           "64 KiB and 64 MiB (65536 to 67108864 bytes), such as 256K, 1M or 4M",
                           text);
  *out = (guint32)value;
  return TRUE;
}

guint64
ferry_chunk_count(guint64 size, guint32 chunk_size)
{
  g_return_val_if_fail(chunk_size > 0, 0);
  return size / chunk_size + (size % chunk_size != 0);
}

void
ferry_chunk_hash(const void *data, size_t len, guint8 out[FERRY_HASH_LEN])
{
  check_gnutls(gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, out), "SHA-256");
}

void
ferry_root_hash(guint32 chunk_size, guint64 size, const guint8 *chunk_hashes,
                guint8 out[FERRY_HASH_LEN])
{
  gnutls_hash_hd_t digest;
  guint8 header[sizeof FERRY_ROOT_TAG - 1 + 16];
  guint64 n_chunks = ferry_chunk_count(size, chunk_size);

  g_return_if_fail(n_chunks == 0 || chunk_hashes != NULL);

  memcpy(header, FERRY_ROOT_TAG, sizeof FERRY_ROOT_TAG - 1);
  put_u64be(header + sizeof FERRY_ROOT_TAG - 1, chunk_size);
  put_u64be(header + sizeof FERRY_ROOT_TAG - 1 + 8, size);
  check_gnutls(gnutls_hash_init(&digest, GNUTLS_DIG_SHA256), "SHA-256 init");
  check_gnutls(gnutls_hash(digest, header, sizeof header), "SHA-256");
  /* gnutls_hash() takes a size_t; feed huge hash lists in slices. */
  for (guint64 done = 0; done < n_chunks;) {
    guint64 n = MIN(n_chunks - done, (guint64)1 << 20);
    check_gnutls(gnutls_hash(digest, chunk_hashes + done * FERRY_HASH_LEN, n * FERRY_HASH_LEN),
                 "SHA-256");
    done += n;
  }
  gnutls_hash_deinit(digest, out);
}

void
ferry_hash_to_hex(const guint8 hash[FERRY_HASH_LEN], char out[FERRY_HASH_HEX_LEN + 1])
{
  static const char digits[] = "0123456789abcdef";

  for (int i = 0; i < FERRY_HASH_LEN; i++) {
    out[2 * i] = digits[hash[i] >> 4];
    out[2 * i + 1] = digits[hash[i] & 15];
  }
  out[FERRY_HASH_HEX_LEN] = '\0';
}

FerryHasher *
ferry_hasher_new(guint32 chunk_size, FerryChunkFunc func, gpointer user_data)
{
  g_return_val_if_fail(ferry_chunk_size_is_valid(chunk_size), NULL);

  FerryHasher *hasher = g_new0(FerryHasher, 1);
  hasher->chunk_size = chunk_size;
  hasher->hashes = g_byte_array_new();
  hasher->func = func;
  hasher->user_data = user_data;
  check_gnutls(gnutls_hash_init(&hasher->digest, GNUTLS_DIG_SHA256), "SHA-256 init");
  return hasher;
}

/* Closes the current chunk: gnutls_hash_output() also resets the digest
 * for the next one. */
static void
hasher_emit(FerryHasher *hasher)
{
  guint8 hash[FERRY_HASH_LEN];
  guint64 index = hasher->hashes->len / FERRY_HASH_LEN;

  gnutls_hash_output(hasher->digest, hash);
  g_byte_array_append(hasher->hashes, hash, sizeof hash);
  if (hasher->func != NULL)
    hasher->func(index, hasher->in_chunk, hash, hasher->user_data);
  hasher->in_chunk = 0;
}

void
ferry_hasher_update(FerryHasher *hasher, const void *data, size_t len)
{
  const guint8 *p = data;

  g_return_if_fail(hasher != NULL);
  g_return_if_fail(data != NULL || len == 0);

  while (len > 0) {
    size_t take = MIN(len, (size_t)(hasher->chunk_size - hasher->in_chunk));
    check_gnutls(gnutls_hash(hasher->digest, p, take), "SHA-256");
    hasher->in_chunk += (guint32)take;
    hasher->size += take;
    p += take;
    len -= take;
    if (hasher->in_chunk == hasher->chunk_size)
      hasher_emit(hasher);
  }
}

FerryFileHash *
ferry_hasher_finish(FerryHasher *hasher)
{
  g_return_val_if_fail(hasher != NULL, NULL);

  if (hasher->in_chunk > 0)
    hasher_emit(hasher);

  FerryFileHash *result = g_new0(FerryFileHash, 1);
  result->chunk_size = hasher->chunk_size;
  result->size = hasher->size;
  result->n_chunks = hasher->hashes->len / FERRY_HASH_LEN;
  if (result->n_chunks > 0)
    result->chunk_hashes = g_byte_array_free(hasher->hashes, FALSE);
  else
    g_byte_array_free(hasher->hashes, TRUE);
  hasher->hashes = NULL;
  ferry_root_hash(result->chunk_size, result->size, result->chunk_hashes, result->root);
  ferry_hasher_free(hasher);
  return result;
}

void
ferry_hasher_free(FerryHasher *hasher)
{
  if (hasher == NULL)
    return;
  gnutls_hash_deinit(hasher->digest, NULL);
  if (hasher->hashes != NULL)
    g_byte_array_free(hasher->hashes, TRUE);
  g_free(hasher);
}

void
ferry_file_hash_free(FerryFileHash *hash)
{
  if (hash == NULL)
    return;
  g_free(hash->chunk_hashes);
  g_free(hash);
}

/* One file hashed by several threads: each worker claims the next
 * unhashed chunk, reads it with pread() and stores its hash at its index,
 * so the result does not depend on the number of threads or their
 * timing. The first error stops every worker. */
typedef struct {
  int fd;
  const char *path;
  guint32 chunk_size;
  guint64 size;
  guint64 n_chunks;
  guint8 *hashes;
  atomic_uint_fast64_t next;
  atomic_bool failed;
  GMutex lock; /* guards error */
  GError *error;
} FileJob;

/* Keeps the first error (taking ownership of err) and stops the workers. */
static void
job_fail(FileJob *job, GError *err)
{
  g_mutex_lock(&job->lock);
  if (job->error == NULL)
    job->error = err;
  else
    g_error_free(err);
  g_mutex_unlock(&job->lock);
  atomic_store(&job->failed, TRUE);
}

static gboolean
hash_one_chunk(FileJob *job, gnutls_hash_hd_t digest, guint8 *buf, guint64 index)
{
  guint64 offset = index * job->chunk_size;
  guint64 end = MIN(offset + job->chunk_size, job->size);

  while (offset < end) {
    size_t want = (size_t)MIN(end - offset, (guint64)READ_BLOCK);
    ssize_t n = pread(job->fd, buf, want, (off_t)offset);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      job_fail(job, g_error_new(FERRY_ERROR, FERRY_ERROR_IO, "cannot read %s: %s", job->path,
                                g_strerror(errno)));
      return FALSE;
    }
    if (n == 0) {
      job_fail(job, g_error_new(FERRY_ERROR, FERRY_ERROR_STATE,
                                "%s became shorter while it was being hashed; hash it again "
                                "once nothing writes to it",
                                job->path));
      return FALSE;
    }
    check_gnutls(gnutls_hash(digest, buf, (size_t)n), "SHA-256");
    offset += (guint64)n;
  }
  gnutls_hash_output(digest, job->hashes + index * FERRY_HASH_LEN);
  return TRUE;
}

static gpointer
file_worker(gpointer data)
{
  FileJob *job = data;
  gnutls_hash_hd_t digest;
  guint8 *buf = g_malloc(MIN((guint64)READ_BLOCK, job->chunk_size));

  check_gnutls(gnutls_hash_init(&digest, GNUTLS_DIG_SHA256), "SHA-256 init");
  while (!atomic_load(&job->failed)) {
    guint64 index = atomic_fetch_add(&job->next, 1);
    if (index >= job->n_chunks || !hash_one_chunk(job, digest, buf, index))
      break;
  }
  gnutls_hash_deinit(digest, NULL);
  g_free(buf);
  return NULL;
}

static gboolean
same_file_state(const struct stat *a, const struct stat *b)
{
  return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

FerryFileHash *
ferry_hash_file(const char *path, guint32 chunk_size, guint n_threads, GError **error)
{
  struct stat before, after;
  FileJob job = {.path = path, .chunk_size = chunk_size};
  FerryFileHash *result = NULL;

  g_return_val_if_fail(path != NULL, NULL);
  g_return_val_if_fail(ferry_chunk_size_is_valid(chunk_size), NULL);

  job.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (job.fd < 0) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot open %s: %s", path, g_strerror(errno));
    return NULL;
  }
  if (fstat(job.fd, &before) < 0) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot read %s: %s", path, g_strerror(errno));
    goto out;
  }
  if (!S_ISREG(before.st_mode)) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot hash %s: %s", path,
                    S_ISDIR(before.st_mode) ? "it is a directory (name the files in it)"
                                            : "it is not a regular file");
    goto out;
  }
  posix_fadvise(job.fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  job.size = (guint64)before.st_size;
  job.n_chunks = ferry_chunk_count(job.size, chunk_size);
  job.hashes = job.n_chunks > 0 ? g_malloc(job.n_chunks * FERRY_HASH_LEN) : NULL;
  atomic_init(&job.next, 0);
  atomic_init(&job.failed, FALSE);
  g_mutex_init(&job.lock);

  if (n_threads == 0)
    n_threads = MIN(g_get_num_processors(), MAX_THREADS);
  n_threads = (guint)MIN((guint64)n_threads, MAX(job.n_chunks, 1));
  if (n_threads <= 1) {
    file_worker(&job);
  } else {
    GThread *threads[MAX_THREADS];
    n_threads = MIN(n_threads, MAX_THREADS);
    for (guint i = 0; i < n_threads; i++)
      threads[i] = g_thread_new("ferry-hash", file_worker, &job);
    for (guint i = 0; i < n_threads; i++)
      g_thread_join(threads[i]);
  }
  g_mutex_clear(&job.lock);

  if (job.error == NULL && fstat(job.fd, &after) == 0 && !same_file_state(&before, &after))
    g_set_error(&job.error, FERRY_ERROR, FERRY_ERROR_STATE,
                "%s changed while it was being hashed; hash it again once nothing writes to it",
                path);
  if (job.error != NULL) {
    g_propagate_error(error, job.error);
    g_free(job.hashes);
    goto out;
  }

  result = g_new0(FerryFileHash, 1);
  result->chunk_size = chunk_size;
  result->size = job.size;
  result->n_chunks = job.n_chunks;
  result->chunk_hashes = job.hashes;
  ferry_root_hash(chunk_size, job.size, job.hashes, result->root);

out:
  close(job.fd);
  return result;
}
