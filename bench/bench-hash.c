/* bench-hash FILE [--chunk-size SIZE] [--threads N] [--runs N] [--sweep]
 *
 * How fast ferry hashes a file that is in the page cache, next to the
 * alternatives it was measured against in the same run: the same work
 * read through mmap() instead of pread(), one thread instead of all, the
 * streaming hasher, and raw SHA-256 on a buffer already in cache (the
 * ceiling). --sweep times every chunk size from 64 KiB to 64 MiB, with the
 * size and save time of the checkpoint a receiver of a 100 GiB transfer
 * would rewrite at that chunk size — the two costs the default balances.
 * Prints medians of --runs runs (default 3) in MB/s (10^6 bytes/s). */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "core/checkpoint.h"
#include <ferry/hash.h>

static guint64 file_size;

static double
median(double *v, int n)
{
  for (int i = 1; i < n; i++) {
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  }
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef double (*RunFunc)(const char *path, guint32 chunk_size, guint threads);

static double
run_file_api(const char *path, guint32 chunk_size, guint threads)
{
  GError *error = NULL;
  gint64 start = g_get_monotonic_time();
  FerryFileHash *h = ferry_hash_file(path, chunk_size, threads, &error);
  gint64 end = g_get_monotonic_time();
  if (h == NULL) {
    fprintf(stderr, "bench-hash: %s\n", error->message);
    exit(1);
  }
  ferry_file_hash_free(h);
  return (double)file_size / (double)(end - start);
}

static double
run_streaming(const char *path, guint32 chunk_size, guint threads)
{
  int fd = open(path, O_RDONLY);
  guint8 *buf = g_malloc(256 * 1024);
  gint64 start = g_get_monotonic_time();
  FerryHasher *hasher = ferry_hasher_new(chunk_size, NULL, NULL);
  ssize_t n;
  while ((n = read(fd, buf, 256 * 1024)) > 0)
    ferry_hasher_update(hasher, buf, (size_t)n);
  ferry_file_hash_free(ferry_hasher_finish(hasher));
  gint64 end = g_get_monotonic_time();
  close(fd);
  g_free(buf);
  return (double)file_size / (double)(end - start);
}

/* The design not taken: the same parallel chunk loop over an mmap() of
 * the file. */
typedef struct {
  const guint8 *map;
  guint32 chunk_size;
  guint64 n_chunks;
  guint8 *hashes;
  atomic_uint_fast64_t next;
} MapJob;

static gpointer
map_worker(gpointer data)
{
  MapJob *job = data;
  for (;;) {
    guint64 i = atomic_fetch_add(&job->next, 1);
    if (i >= job->n_chunks)
      return NULL;
    guint64 off = i * job->chunk_size;
    ferry_chunk_hash(job->map + off, (size_t)MIN(job->chunk_size, file_size - off),
                     job->hashes + i * FERRY_HASH_LEN);
  }
}

static double
run_mmap(const char *path, guint32 chunk_size, guint threads)
{
  int fd = open(path, O_RDONLY);
  MapJob job = {.chunk_size = chunk_size, .n_chunks = ferry_chunk_count(file_size, chunk_size)};
  GThread *t[16];
  guint8 root[FERRY_HASH_LEN];
  gint64 start = g_get_monotonic_time();

  job.map = mmap(NULL, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  madvise((void *)job.map, file_size, MADV_SEQUENTIAL);
  job.hashes = g_malloc(job.n_chunks * FERRY_HASH_LEN);
  atomic_init(&job.next, 0);
  for (guint i = 0; i < threads; i++)
    t[i] = g_thread_new("map", map_worker, &job);
  for (guint i = 0; i < threads; i++)
    g_thread_join(t[i]);
  ferry_root_hash(chunk_size, file_size, job.hashes, root);
  munmap((void *)job.map, file_size);
  gint64 end = g_get_monotonic_time();
  close(fd);
  g_free(job.hashes);
  return (double)file_size / (double)(end - start);
}

static double
run_raw(const char *path, guint32 chunk_size, guint threads)
{
  gsize len = 1u << 20, total = 512u << 20;
  guint8 *buf = g_malloc(len), out[FERRY_HASH_LEN];
  memset(buf, 0x5a, len);
  gint64 start = g_get_monotonic_time();
  for (gsize done = 0; done < total; done += len)
    ferry_chunk_hash(buf, len, out);
  gint64 end = g_get_monotonic_time();
  g_free(buf);
  return (double)total / (double)(end - start);
}

static double
measure(RunFunc run, const char *path, guint32 chunk_size, guint threads, int runs)
{
  double v[32];
  runs = CLAMP(runs, 1, 32);
  for (int i = 0; i < runs; i++)
    v[i] = run(path, chunk_size, threads);
  return median(v, runs);
}

/* The checkpoint of a 100 GiB transfer with every chunk verified: its
 * size and how long one atomic save (with fsync) takes on the disk that
 * holds /tmp. */
static void
checkpoint_cost(guint32 chunk_size, gsize *bytes, double *ms)
{
  guint8 id[FERRY_TRANSFER_ID_LEN] = {0}, hash[FERRY_HASH_LEN];
  guint64 size = (guint64)100 << 30;
  FerryCheckpoint *cp = ferry_checkpoint_new(id, chunk_size);
  FerryCheckpointFile *f = ferry_checkpoint_add_file(cp, "big.iso", size, NULL);
  char *dir = g_dir_make_tmp("ferry-bench-hash-XXXXXX", NULL);
  char *path = g_build_filename(dir, "cp", NULL);

  for (guint64 c = 0; c < f->n_chunks; c++) {
    memcpy(hash, &c, sizeof c);
    memset(hash + sizeof c, 0x33, sizeof hash - sizeof c);
    ferry_checkpoint_file_set_verified(f, c, hash);
  }
  g_free(ferry_checkpoint_encode(cp, bytes));
  gint64 start = g_get_monotonic_time();
  if (!ferry_checkpoint_save(cp, path, NULL))
    fprintf(stderr, "bench-hash: cannot save a checkpoint in %s\n", dir);
  *ms = (double)(g_get_monotonic_time() - start) / 1000.0;
  g_unlink(path);
  g_rmdir(dir);
  g_free(path);
  g_free(dir);
  ferry_checkpoint_free(cp);
}

int
main(int argc, char **argv)
{
  char *opt_chunk = NULL;
  int opt_threads = 0, opt_runs = 3;
  gboolean opt_sweep = FALSE;
  GOptionEntry entries[] = {
      {"chunk-size", 0, 0, G_OPTION_ARG_STRING, &opt_chunk, "Chunk size (default 1M)", "SIZE"},
      {"threads", 0, 0, G_OPTION_ARG_INT, &opt_threads, "Threads (default: one per CPU)", "N"},
      {"runs", 0, 0, G_OPTION_ARG_INT, &opt_runs, "Runs per figure (median)", "N"},
      {"sweep", 0, 0, G_OPTION_ARG_NONE, &opt_sweep, "Time every chunk size", NULL},
      G_OPTION_ENTRY_NULL,
  };
  GOptionContext *ctx = g_option_context_new("FILE - how fast ferry hashes a cached file");
  GError *error = NULL;
  guint32 chunk_size = FERRY_CHUNK_SIZE_DEFAULT;
  struct stat st;

  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc != 2 ||
      (opt_chunk != NULL && !ferry_chunk_size_parse(opt_chunk, &chunk_size, &error))) {
    fprintf(stderr, "bench-hash: %s (see --help)\n", error ? error->message : "name one FILE");
    return 2;
  }
  g_option_context_free(ctx);
  const char *path = argv[1];
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
    fprintf(stderr, "bench-hash: %s is not a non-empty regular file\n", path);
    return 2;
  }
  file_size = (guint64)st.st_size;
  guint threads = opt_threads > 0 ? (guint)opt_threads : MIN(g_get_num_processors(), 8);

  /* Warm the page cache, so every figure measures hashing, not the disk. */
  run_streaming(path, chunk_size, 1);

  printf("file %s, %.1f MiB, chunk size %u KiB, %u threads, median of %d runs\n", path,
         (double)file_size / 1048576.0, chunk_size / 1024, threads, opt_runs);
  if (!opt_sweep) {
    printf("  %-46s %7.0f MB/s\n", "ferry_hash_file, pread (ferry hash)",
           measure(run_file_api, path, chunk_size, threads, opt_runs));
    printf("  %-46s %7.0f MB/s\n", "same loop over mmap (the design not taken)",
           measure(run_mmap, path, chunk_size, threads, opt_runs));
    printf("  %-46s %7.0f MB/s\n", "ferry_hash_file, pread, 1 thread",
           measure(run_file_api, path, chunk_size, 1, opt_runs));
    printf("  %-46s %7.0f MB/s\n", "same loop over mmap, 1 thread",
           measure(run_mmap, path, chunk_size, 1, opt_runs));
    printf("  %-46s %7.0f MB/s\n", "streaming hasher, 256 KiB read()s, 1 thread",
           measure(run_streaming, path, chunk_size, 1, opt_runs));
    printf("  %-46s %7.0f MB/s\n", "raw SHA-256 of a cached 1 MiB buffer, 1 thread",
           measure(run_raw, path, chunk_size, 1, opt_runs));
    return 0;
  }
  printf("  %-10s %10s %10s %16s %14s\n", "chunk", "MB/s", "1 thread", "100 GiB ckpt",
         "save (fsync)");
  for (guint32 cs = FERRY_CHUNK_SIZE_MIN; cs <= FERRY_CHUNK_SIZE_MAX; cs *= 2) {
    gsize bytes;
    double ms;
    double all = measure(run_file_api, path, cs, threads, opt_runs);
    double one = measure(run_file_api, path, cs, 1, opt_runs);
    checkpoint_cost(cs, &bytes, &ms);
    printf("  %7u KiB %10.0f %10.0f %13.2f MB %11.1f ms%s\n", cs / 1024, all, one,
           (double)bytes / 1e6, ms, cs == FERRY_CHUNK_SIZE_DEFAULT ? "  (default)" : "");
  }
  g_free(opt_chunk);
  return 0;
}
