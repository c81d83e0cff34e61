/* Chunk hashing: SHA-256 vectors, the root hash definition, streaming in
 * any split, chunk boundaries, the file API and chunk size parsing. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <ferry/hash.h>

#define C64K (64u * 1024)

static char *
hex(const guint8 *hash)
{
  char buf[FERRY_HASH_HEX_LEN + 1];
  ferry_hash_to_hex(hash, buf);
  return g_strdup(buf);
}

static void
assert_hex(const guint8 *hash, const char *want)
{
  g_autofree char *got = hex(hash);
  g_assert_cmpstr(got, ==, want);
}

static guint8 *
pattern(gsize len)
{
  guint8 *data = g_malloc(len + 1);
  for (gsize i = 0; i < len; i++)
    data[i] = (guint8)(i % 251);
  return data;
}

static guint8 *
random_bytes(gsize len)
{
  guint8 *data = g_malloc(len + 1);
  for (gsize i = 0; i < len; i++)
    data[i] = (guint8)g_test_rand_int_range(0, 256);
  return data;
}

static void
test_sha256_vectors(void)
{
  guint8 h[FERRY_HASH_LEN];

  ferry_chunk_hash("abc", 3, h);
  assert_hex(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  ferry_chunk_hash("", 0, h);
  assert_hex(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  ferry_chunk_hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, h);
  assert_hex(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* Vectors computed independently with Python's hashlib from the
 * definition in hash.h. */
static void
test_root_vectors(void)
{
  guint8 root[FERRY_HASH_LEN];
  g_autofree guint8 *data = pattern(200000);

  ferry_root_hash(1u << 20, 0, NULL, root);
  assert_hex(root, "eea079c691bfd2613928a89e86d2de83afef01aca57836cf8b1fe576e689773f");
  ferry_root_hash(C64K, 0, NULL, root);
  assert_hex(root, "b06c0a2b7277909d1c9b44f425e627b82c3645f78cac7c71fac4aa6a8c35a188");

  FerryHasher *hasher = ferry_hasher_new(C64K, NULL, NULL);
  ferry_hasher_update(hasher, data, 200000);
  g_autoptr(FerryFileHash) h64 = ferry_hasher_finish(hasher);
  g_assert_cmpuint(h64->n_chunks, ==, 4);
  assert_hex(h64->root, "004e8bb249dbe069453e9734dd1f387c8ec5d1a4c925c0b1be47154ce30bfb49");

  hasher = ferry_hasher_new(1u << 20, NULL, NULL);
  ferry_hasher_update(hasher, data, 200000);
  g_autoptr(FerryFileHash) h1m = ferry_hasher_finish(hasher);
  g_assert_cmpuint(h1m->n_chunks, ==, 1);
  assert_hex(h1m->root, "ba0839c65541996bfc3737ecd84e25efba581b5b19dc922dba8b455cd3864641");
}

typedef struct {
  GArray *lens;
  GByteArray *hashes;
} Seen;

static void
on_chunk(guint64 index, guint32 len, const guint8 hash[FERRY_HASH_LEN], gpointer user_data)
{
  Seen *seen = user_data;
  g_assert_cmpuint(index, ==, seen->lens->len);
  g_array_append_val(seen->lens, len);
  g_byte_array_append(seen->hashes, hash, FERRY_HASH_LEN);
}

static void
seen_init(Seen *seen)
{
  seen->lens = g_array_new(FALSE, FALSE, sizeof(guint32));
  seen->hashes = g_byte_array_new();
}

static void
seen_clear(Seen *seen)
{
  g_array_free(seen->lens, TRUE);
  g_byte_array_free(seen->hashes, TRUE);
}

static void
assert_same_hash(const FerryFileHash *a, const FerryFileHash *b)
{
  g_assert_cmpuint(a->chunk_size, ==, b->chunk_size);
  g_assert_cmpuint(a->size, ==, b->size);
  g_assert_cmpuint(a->n_chunks, ==, b->n_chunks);
  if (a->n_chunks > 0)
    g_assert_cmpmem(a->chunk_hashes, a->n_chunks * FERRY_HASH_LEN, b->chunk_hashes,
                    b->n_chunks * FERRY_HASH_LEN);
  g_assert_cmpmem(a->root, FERRY_HASH_LEN, b->root, FERRY_HASH_LEN);
}

static void
test_streaming_random_splits(void)
{
  gsize len = 17 * C64K + 12345;
  g_autofree guint8 *data = random_bytes(len);

  FerryHasher *hasher = ferry_hasher_new(C64K, NULL, NULL);
  ferry_hasher_update(hasher, data, len);
  g_autoptr(FerryFileHash) whole = ferry_hasher_finish(hasher);
  g_assert_cmpuint(whole->n_chunks, ==, 18);

  for (int round = 0; round < 20; round++) {
    Seen seen;
    seen_init(&seen);
    hasher = ferry_hasher_new(C64K, on_chunk, &seen);
    for (gsize off = 0; off < len;) {
      /* Mix empty, tiny, odd and multi-chunk pieces. */
      gsize n;
      switch (g_test_rand_int_range(0, 4)) {
      case 0:
        n = (gsize)g_test_rand_int_range(0, 3);
        break;
      case 1:
        n = (gsize)g_test_rand_int_range(1, 5000);
        break;
      case 2:
        n = (gsize)g_test_rand_int_range(C64K - 10, C64K + 10);
        break;
      default:
        n = (gsize)g_test_rand_int_range(1, 3 * C64K);
        break;
      }
      n = MIN(n, len - off);
      ferry_hasher_update(hasher, data + off, n);
      off += n;
    }
    g_autoptr(FerryFileHash) split = ferry_hasher_finish(hasher);
    assert_same_hash(whole, split);
    g_assert_cmpuint(seen.lens->len, ==, whole->n_chunks);
    g_assert_cmpmem(seen.hashes->data, seen.hashes->len, whole->chunk_hashes,
                    whole->n_chunks * FERRY_HASH_LEN);
    seen_clear(&seen);
  }
}

/* Files of sizes around chunk boundaries: the right number of chunks,
 * each the right length, each hash the SHA-256 of exactly its bytes. */
static void
test_chunk_boundaries(void)
{
  const gsize sizes[] = {0, 1, C64K - 1, C64K, C64K + 1, 2 * C64K, 2 * C64K + 1, 5 * C64K - 3};
  g_autofree guint8 *data = random_bytes(5 * C64K);

  for (gsize s = 0; s < G_N_ELEMENTS(sizes); s++) {
    gsize size = sizes[s];
    guint64 want_chunks = (size + C64K - 1) / C64K;
    Seen seen;
    seen_init(&seen);

    FerryHasher *hasher = ferry_hasher_new(C64K, on_chunk, &seen);
    ferry_hasher_update(hasher, data, size);
    /* Chunks that end inside the input are reported before finish. */
    g_assert_cmpuint(seen.lens->len, ==, size / C64K);
    g_autoptr(FerryFileHash) h = ferry_hasher_finish(hasher);

    g_assert_cmpuint(ferry_chunk_count(size, C64K), ==, want_chunks);
    g_assert_cmpuint(h->n_chunks, ==, want_chunks);
    g_assert_cmpuint(h->size, ==, size);
    g_assert_cmpuint(seen.lens->len, ==, want_chunks);
    for (guint64 i = 0; i < want_chunks; i++) {
      guint8 expect[FERRY_HASH_LEN];
      gsize off = i * C64K, n = MIN(C64K, size - off);
      g_assert_cmpuint(g_array_index(seen.lens, guint32, i), ==, n);
      ferry_chunk_hash(data + off, n, expect);
      g_assert_cmpmem(h->chunk_hashes + i * FERRY_HASH_LEN, FERRY_HASH_LEN, expect, FERRY_HASH_LEN);
    }
    guint8 root[FERRY_HASH_LEN];
    ferry_root_hash(C64K, size, h->chunk_hashes, root);
    g_assert_cmpmem(h->root, FERRY_HASH_LEN, root, FERRY_HASH_LEN);
    seen_clear(&seen);
  }
}

/* The root binds the chunk size: the same bytes in one chunk of the same
 * hash give another root under another chunk size. */
static void
test_root_binds_size_and_chunking(void)
{
  g_autofree guint8 *data = g_malloc0(C64K + 1);
  guint8 root_a[FERRY_HASH_LEN], root_b[FERRY_HASH_LEN];
  g_autoptr(FerryFileHash) a = NULL;
  g_autoptr(FerryFileHash) b = NULL;

  FerryHasher *hasher = ferry_hasher_new(C64K, NULL, NULL);
  ferry_hasher_update(hasher, data, 100);
  a = ferry_hasher_finish(hasher);
  hasher = ferry_hasher_new(2 * C64K, NULL, NULL);
  ferry_hasher_update(hasher, data, 100);
  b = ferry_hasher_finish(hasher);
  g_assert_cmpmem(a->chunk_hashes, FERRY_HASH_LEN, b->chunk_hashes, FERRY_HASH_LEN);
  g_assert_false(memcmp(a->root, b->root, FERRY_HASH_LEN) == 0);

  ferry_root_hash(C64K, 0, NULL, root_a);
  ferry_root_hash(2 * C64K, 0, NULL, root_b);
  g_assert_false(memcmp(root_a, root_b, FERRY_HASH_LEN) == 0);
}

static char *
write_temp_file(const guint8 *data, gsize len)
{
  GError *error = NULL;
  char *path = NULL;
  int fd = g_file_open_tmp("ferry-test-hash-XXXXXX", &path, &error);
  g_assert_no_error(error);
  close(fd);
  g_file_set_contents(path, (const char *)data, (gssize)len, &error);
  g_assert_no_error(error);
  return path;
}

static void
test_zero_byte_file(void)
{
  GError *error = NULL;
  g_autofree char *path = write_temp_file((const guint8 *)"", 0);

  g_autoptr(FerryFileHash) h = ferry_hash_file(path, 1u << 20, 0, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(h->size, ==, 0);
  g_assert_cmpuint(h->n_chunks, ==, 0);
  g_assert_null(h->chunk_hashes);
  assert_hex(h->root, "eea079c691bfd2613928a89e86d2de83afef01aca57836cf8b1fe576e689773f");

  g_autoptr(FerryFileHash) s = ferry_hasher_finish(ferry_hasher_new(1u << 20, NULL, NULL));
  assert_same_hash(h, s);
  g_unlink(path);
}

static void
test_file_equals_streaming(void)
{
  const gsize sizes[] = {1, C64K, 3 * C64K + 777, 40 * C64K};
  const guint threads[] = {1, 2, 3, 0};

  for (gsize s = 0; s < G_N_ELEMENTS(sizes); s++) {
    g_autofree guint8 *data = random_bytes(sizes[s]);
    g_autofree char *path = write_temp_file(data, sizes[s]);

    FerryHasher *hasher = ferry_hasher_new(C64K, NULL, NULL);
    ferry_hasher_update(hasher, data, sizes[s]);
    g_autoptr(FerryFileHash) streamed = ferry_hasher_finish(hasher);

    for (gsize t = 0; t < G_N_ELEMENTS(threads); t++) {
      GError *error = NULL;
      g_autoptr(FerryFileHash) h = ferry_hash_file(path, C64K, threads[t], &error);
      g_assert_no_error(error);
      assert_same_hash(streamed, h);
    }
    g_unlink(path);
  }
}

static void
test_file_errors(void)
{
  GError *error = NULL;
  g_autofree char *dir = g_dir_make_tmp("ferry-test-hash-XXXXXX", &error);
  g_assert_no_error(error);
  g_autofree char *missing = g_build_filename(dir, "missing.bin", NULL);

  g_assert_null(ferry_hash_file(missing, C64K, 0, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_IO);
  g_assert_nonnull(strstr(error->message, missing));
  g_assert_nonnull(strstr(error->message, g_strerror(ENOENT)));
  g_clear_error(&error);

  g_assert_null(ferry_hash_file(dir, C64K, 0, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_IO);
  g_assert_nonnull(strstr(error->message, dir));
  g_assert_nonnull(strstr(error->message, "directory"));
  g_clear_error(&error);
  g_rmdir(dir);
}

typedef struct {
  const char *path;
  gint stop;
} Appender;

static gpointer
append_until_stopped(gpointer data)
{
  Appender *a = data;
  guint8 block[4096] = {0};
  int fd = open(a->path, O_WRONLY | O_APPEND);
  g_assert_cmpint(fd, >=, 0);
  while (!g_atomic_int_get(&a->stop)) {
    g_assert_cmpint(write(fd, block, sizeof block), ==, sizeof block);
    g_usleep(200);
  }
  close(fd);
  return NULL;
}

/* A file that grows while it is hashed is reported, not hashed as if it
 * had one length. The appender writes every 0.2 ms, so some attempt must
 * overlap a write; each attempt either fails that way or succeeds. */
static void
test_file_changed_while_hashing(void)
{
  g_autofree guint8 *data = random_bytes(8u << 20);
  g_autofree char *path = write_temp_file(data, 8u << 20);
  Appender a = {path, 0};
  gboolean reported = FALSE;

  GThread *thread = g_thread_new("appender", append_until_stopped, &a);
  for (int attempt = 0; attempt < 50 && !reported; attempt++) {
    GError *error = NULL;
    FerryFileHash *h = ferry_hash_file(path, C64K, 0, &error);
    if (h != NULL) {
      ferry_file_hash_free(h);
      continue;
    }
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
    g_assert_nonnull(strstr(error->message, path));
    g_assert_nonnull(strstr(error->message, "while it was being hashed"));
    g_error_free(error);
    reported = TRUE;
  }
  g_atomic_int_set(&a.stop, 1);
  g_thread_join(thread);
  g_assert_true(reported);
  g_unlink(path);
}

static void
test_chunk_size_parse(void)
{
  static const struct {
    const char *text;
    guint32 want;
  } good[] = {
      {"65536", 65536},   {"64K", 65536},         {"64k", 65536},     {"64KiB", 65536},
      {"1M", 1u << 20},   {"1MiB", 1u << 20},     {"4mib", 4u << 20}, {"262144", 262144},
      {"64M", 64u << 20}, {"1048576B", 1u << 20},
  };
  static const struct {
    const char *text;
    const char *says;
  } bad[] = {
      {"", "not a chunk size"},
      {"abc", "not a chunk size"},
      {"-1M", "not a chunk size"},
      {" 1M", "not a chunk size"},
      {"1M ", "unknown unit"},
      {"4MB", "unknown unit 'MB'"},
      {"3M", "between 64 KiB and 64 MiB"},
      {"32K", "between 64 KiB and 64 MiB"},
      {"128M", "between 64 KiB and 64 MiB"},
      {"1G", "between 64 KiB and 64 MiB"},
      {"0", "between 64 KiB and 64 MiB"},
      {"99999999999999999999999999M", "between 64 KiB and 64 MiB"},
      {"18014398509481984K", "between 64 KiB and 64 MiB"},
  };

  for (gsize i = 0; i < G_N_ELEMENTS(good); i++) {
    GError *error = NULL;
    guint32 size = 0;
    g_assert_true(ferry_chunk_size_parse(good[i].text, &size, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(size, ==, good[i].want);
  }
  for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
    GError *error = NULL;
    guint32 size = 12345;
    g_assert_false(ferry_chunk_size_parse(bad[i].text, &size, &error));
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
    g_assert_cmpuint(size, ==, 12345);
    g_autofree char *quoted = g_strdup_printf("'%s'", bad[i].text);
    g_assert_nonnull(strstr(error->message, quoted));
    if (strstr(error->message, bad[i].says) == NULL)
      g_error("message for '%s' lacks \"%s\": %s", bad[i].text, bad[i].says, error->message);
    g_clear_error(&error);
  }
  g_assert_true(ferry_chunk_size_is_valid(FERRY_CHUNK_SIZE_DEFAULT));
}

static void
test_hex(void)
{
  guint8 h[FERRY_HASH_LEN];
  char buf[FERRY_HASH_HEX_LEN + 1];

  for (int i = 0; i < FERRY_HASH_LEN; i++)
    h[i] = (guint8)(i * 8 + 7);
  ferry_hash_to_hex(h, buf);
  g_assert_cmpstr(buf, ==, "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/core/hash/sha256-vectors", test_sha256_vectors);
  g_test_add_func("/core/hash/root-vectors", test_root_vectors);
  g_test_add_func("/core/hash/streaming-random-splits", test_streaming_random_splits);
  g_test_add_func("/core/hash/chunk-boundaries", test_chunk_boundaries);
  g_test_add_func("/core/hash/root-binds-size-and-chunking", test_root_binds_size_and_chunking);
  g_test_add_func("/core/hash/zero-byte-file", test_zero_byte_file);
  g_test_add_func("/core/hash/file-equals-streaming", test_file_equals_streaming);
  g_test_add_func("/core/hash/file-errors", test_file_errors);
  g_test_add_func("/core/hash/file-changed-while-hashing", test_file_changed_while_hashing);
  g_test_add_func("/core/hash/chunk-size-parse", test_chunk_size_parse);
  g_test_add_func("/core/hash/hex", test_hex);
  return g_test_run();
}
