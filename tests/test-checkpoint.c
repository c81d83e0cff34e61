/* Checkpoints: round trips, every kind of damage rejected, atomic saves
 * that survive kill -9 at any moment, the writer's rate limit and the
 * clean-up of temporary files left by killed writers. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "core/checkpoint.h"

#define C64K (64u * 1024)

static void
fill_hash(guint8 hash[FERRY_HASH_LEN], guint64 a, guint64 b)
{
  for (int i = 0; i < FERRY_HASH_LEN; i++)
    hash[i] = (guint8)(a * 31 + b * 7 + (guint64)i * 13);
}

/* A checkpoint with every kind of file: empty, partly verified, complete
 * with a matching root, expected root but nothing verified. */
static FerryCheckpoint *
sample_checkpoint(void)
{
  guint8 id[FERRY_TRANSFER_ID_LEN], hash[FERRY_HASH_LEN], root[FERRY_HASH_LEN];
  for (int i = 0; i < FERRY_TRANSFER_ID_LEN; i++)
    id[i] = (guint8)(0xa0 + i);
  FerryCheckpoint *cp = ferry_checkpoint_new(id, C64K);

  ferry_root_hash(C64K, 0, NULL, root);
  g_assert_nonnull(ferry_checkpoint_add_file(cp, "empty.txt", 0, root));

  FerryCheckpointFile *partial =
      ferry_checkpoint_add_file(cp, "dir/partial.bin", 9 * C64K + 3, NULL);
  g_assert_nonnull(partial);
  g_assert_cmpuint(partial->n_chunks, ==, 10);
  for (guint64 c = 0; c < 10; c += 3) {
    fill_hash(hash, 1, c);
    ferry_checkpoint_file_set_verified(partial, c, hash);
  }

  FerryCheckpointFile *done = ferry_checkpoint_add_file(cp, "dir/sub/done", 4 * C64K, NULL);
  guint8 hashes[4 * FERRY_HASH_LEN];
  for (guint64 c = 0; c < 4; c++) {
    fill_hash(hashes + c * FERRY_HASH_LEN, 2, c);
    ferry_checkpoint_file_set_verified(done, c, hashes + c * FERRY_HASH_LEN);
  }
  ferry_root_hash(C64K, 4 * C64K, hashes, root);
  ferry_checkpoint_file_set_root(done, root);

  fill_hash(root, 3, 3);
  g_assert_nonnull(ferry_checkpoint_add_file(cp, "ünïcode name", 1, root));
  return cp;
}

static guint8 *
encode(const FerryCheckpoint *cp, gsize *len)
{
  return ferry_checkpoint_encode(cp, len);
}

/* Recomputes the trailing checksum, so a test reaches the field checks
 * behind it. */
static void
reseal(guint8 *data, gsize len)
{
  ferry_chunk_hash(data, len - FERRY_HASH_LEN, data + len - FERRY_HASH_LEN);
}

static int
decode_rc(const guint8 *data, gsize len, const char **reason)
{
  FerryCheckpoint *cp = NULL;
  int rc = ferry_checkpoint_decode_explain(data, len, &cp, reason);
  if (rc == 0)
    g_assert_nonnull(cp);
  else
    g_assert_null(cp);
  ferry_checkpoint_free(cp);
  return rc;
}

static void
test_round_trip(void)
{
  g_autoptr(FerryCheckpoint) cp = sample_checkpoint();
  g_autoptr(FerryCheckpoint) back = NULL;
  gsize len, len2;
  g_autofree guint8 *data = encode(cp, &len);

  g_assert_cmpint(ferry_checkpoint_decode(data, len, &back), ==, 0);
  g_assert_true(ferry_checkpoint_equal(cp, back));
  g_autofree guint8 *again = encode(back, &len2);
  g_assert_cmpmem(data, len, again, len2);

  FerryCheckpointFile *partial = ferry_checkpoint_find_file(back, "dir/partial.bin");
  g_assert_nonnull(partial);
  g_assert_cmpuint(partial->n_verified, ==, 4);
  for (guint64 c = 0; c < 10; c++) {
    guint8 hash[FERRY_HASH_LEN];
    fill_hash(hash, 1, c);
    g_assert_cmpint(ferry_checkpoint_file_is_verified(partial, c), ==, c % 3 == 0);
    if (c % 3 == 0)
      g_assert_cmpmem(ferry_checkpoint_file_get_hash(partial, c), FERRY_HASH_LEN, hash,
                      FERRY_HASH_LEN);
    else
      g_assert_null(ferry_checkpoint_file_get_hash(partial, c));
  }
  g_assert_false(ferry_checkpoint_file_is_verified(partial, 10));
  g_assert_true(ferry_checkpoint_find_file(back, "ünïcode name")->has_root);
  g_assert_false(partial->has_root);

  /* A checkpoint without files round-trips too. */
  guint8 id[FERRY_TRANSFER_ID_LEN] = {1};
  g_autoptr(FerryCheckpoint) none = ferry_checkpoint_new(id, FERRY_CHUNK_SIZE_MAX);
  g_autoptr(FerryCheckpoint) none_back = NULL;
  g_autofree guint8 *none_data = encode(none, &len);
  g_assert_cmpint(ferry_checkpoint_decode(none_data, len, &none_back), ==, 0);
  g_assert_true(ferry_checkpoint_equal(none, none_back));
  g_assert_false(ferry_checkpoint_equal(none, cp));
}

static void
test_set_and_clear_verified(void)
{
  g_autoptr(FerryCheckpoint) cp = sample_checkpoint();
  g_autoptr(FerryCheckpoint) other = sample_checkpoint();
  FerryCheckpointFile *f = ferry_checkpoint_find_file(cp, "dir/partial.bin");
  guint8 hash[FERRY_HASH_LEN];

  fill_hash(hash, 9, 9);
  ferry_checkpoint_file_set_verified(f, 1, hash);
  g_assert_cmpuint(f->n_verified, ==, 5);
  g_assert_false(ferry_checkpoint_equal(cp, other));
  ferry_checkpoint_file_set_verified(f, 1, hash); /* again: no double count */
  g_assert_cmpuint(f->n_verified, ==, 5);
  ferry_checkpoint_file_clear_verified(f, 1);
  ferry_checkpoint_file_clear_verified(f, 2); /* was not verified */
  g_assert_cmpuint(f->n_verified, ==, 4);
  g_assert_true(ferry_checkpoint_equal(cp, other));

  /* The same bitmap with another hash is another state. */
  fill_hash(hash, 9, 9);
  ferry_checkpoint_file_set_verified(f, 0, hash);
  g_assert_false(ferry_checkpoint_equal(cp, other));
}

static void
test_add_file_rejects(void)
{
  guint8 id[FERRY_TRANSFER_ID_LEN] = {0};
  g_autoptr(FerryCheckpoint) cp = ferry_checkpoint_new(id, C64K);
  const char *unsafe[] = {"", "/etc/passwd", "../x", "a/../b", "a//b", "a/./b", "a/", ".", "\xff"};

  for (gsize i = 0; i < G_N_ELEMENTS(unsafe); i++)
    g_assert_null(ferry_checkpoint_add_file(cp, unsafe[i], 1, NULL));
  g_assert_nonnull(ferry_checkpoint_add_file(cp, "a/b..c/.d", 1, NULL));
  g_assert_null(ferry_checkpoint_add_file(cp, "a/b..c/.d", 1, NULL));
  g_assert_null(ferry_checkpoint_add_file(cp, "huge", (guint64)G_MAXINT64 + 1, NULL));
  /* More chunks than a checkpoint may hold. */
  g_assert_null(
      ferry_checkpoint_add_file(cp, "many", (FERRY_CHECKPOINT_MAX_CHUNKS + 1) * C64K, NULL));
  g_assert_nonnull(
      ferry_checkpoint_add_file(cp, "max", (FERRY_CHECKPOINT_MAX_CHUNKS - 1) * C64K, NULL));
  g_assert_null(ferry_checkpoint_add_file(cp, "one more", 2 * C64K, NULL));
  g_assert_cmpuint(cp->files->len, ==, 2);
}

/* Flipping any bits of any single byte is caught: by the magic, the
 * version or the checksum. */
static void
test_rejects_every_byte_flip(void)
{
  g_autoptr(FerryCheckpoint) cp = sample_checkpoint();
  gsize len;
  g_autofree guint8 *data = encode(cp, &len);
  const guint8 masks[] = {0x01, 0x80, 0xff};

  for (gsize i = 0; i < len; i++) {
    for (gsize m = 0; m < G_N_ELEMENTS(masks); m++) {
      data[i] ^= masks[m];
      int rc = decode_rc(data, len, NULL);
      data[i] ^= masks[m];
      if (i < FERRY_CHECKPOINT_MAGIC_LEN)
        g_assert_cmpint(rc, ==, FERRY_ERR_INVALID);
      else if (i < FERRY_CHECKPOINT_MAGIC_LEN + 2)
        g_assert_cmpint(rc, ==, FERRY_ERR_VERSION);
      else
        g_assert_cmpint(rc, ==, FERRY_ERR_CORRUPT);
    }
  }
  g_assert_cmpint(decode_rc(data, len, NULL), ==, 0);
}

static void
test_rejects_every_truncation(void)
{
  g_autoptr(FerryCheckpoint) cp = sample_checkpoint();
  gsize len;
  g_autofree guint8 *data = encode(cp, &len);

  for (gsize n = 0; n < len; n++) {
    /* A copy of exactly n bytes, so ASan sees any read past the end. */
    g_autofree guint8 *cut = g_memdup2(data, n);
    g_assert_cmpint(decode_rc(cut, n, NULL), <, 0);
  }
  g_autofree guint8 *longer = g_malloc(len + 1);
  memcpy(longer, data, len);
  longer[len] = 0;
  g_assert_cmpint(decode_rc(longer, len + 1, NULL), <, 0);
}

static void
test_rejects_version_and_magic(void)
{
  g_autoptr(FerryCheckpoint) cp = sample_checkpoint();
  gsize len;
  g_autofree guint8 *data = encode(cp, &len);
  const char *reason = NULL;

  for (guint v = 0; v < 4; v++) {
    if (v == FERRY_CHECKPOINT_VERSION)
      continue;
    data[8] = 0;
    data[9] = (guint8)v;
    reseal(data, len);
    g_assert_cmpint(decode_rc(data, len, &reason), ==, FERRY_ERR_VERSION);
    g_assert_nonnull(strstr(reason, "version"));
  }
  data[9] = FERRY_CHECKPOINT_VERSION;
  memcpy(data, "FERRYCKQ", 8);
  reseal(data, len);
  g_assert_cmpint(decode_rc(data, len, &reason), ==, FERRY_ERR_INVALID);
  g_assert_nonnull(strstr(reason, "magic"));
}

/* An independent writer of the format, for records the encoder would
 * never produce. */
typedef struct {
  GByteArray *b;
} Enc;

static void
enc_u8(Enc *e, guint8 v)
{
  g_byte_array_append(e->b, &v, 1);
}

static void
enc_u16(Enc *e, guint16 v)
{
  enc_u8(e, (guint8)(v >> 8));
  enc_u8(e, (guint8)v);
}

static void
enc_u32(Enc *e, guint32 v)
{
  enc_u16(e, (guint16)(v >> 16));
  enc_u16(e, (guint16)v);
}

static void
enc_u64(Enc *e, guint64 v)
{
  enc_u32(e, (guint32)(v >> 32));
  enc_u32(e, (guint32)v);
}

static void
enc_bytes(Enc *e, const void *p, gsize n)
{
  g_byte_array_append(e->b, p, (guint)n);
}

static void
enc_fill(Enc *e, guint8 byte, gsize n)
{
  for (gsize i = 0; i < n; i++)
    enc_u8(e, byte);
}

static Enc
enc_header(guint32 chunk_size, guint32 n_files)
{
  Enc e = {g_byte_array_new()};
  enc_bytes(&e, "FERRYCKP", 8);
  enc_u16(&e, 1);
  enc_u16(&e, 0);
  enc_fill(&e, 0x42, 32);
  enc_u32(&e, chunk_size);
  enc_u32(&e, n_files);
  return e;
}

/* A file record: path, size, flags, root byte, bitmap, verified count,
 * then n_hashes hashes. */
static void
enc_file(Enc *e, const char *path, gsize path_len, guint64 size, guint8 flags, guint8 root_byte,
         const guint8 *bitmap, guint32 bitmap_len, guint32 n_verified, guint32 n_hashes)
{
  enc_u16(e, (guint16)path_len);
  enc_bytes(e, path, path_len);
  enc_u64(e, size);
  enc_u8(e, flags);
  enc_fill(e, root_byte, 32);
  enc_u32(e, bitmap_len);
  enc_bytes(e, bitmap, bitmap_len);
  enc_u32(e, n_verified);
  for (guint32 i = 0; i < n_hashes; i++) {
    guint8 hash[FERRY_HASH_LEN];
    fill_hash(hash, 5, i);
    enc_bytes(e, hash, sizeof hash);
  }
}

/* Seals e and returns what decoding it gives, with its reason. */
static int
enc_decode(Enc *e, const char **reason)
{
  enc_fill(e, 0, FERRY_HASH_LEN);
  reseal(e->b->data, e->b->len);
  int rc = decode_rc(e->b->data, e->b->len, reason);
  g_byte_array_free(e->b, TRUE);
  return rc;
}

static void
test_hand_built_matches_encoder(void)
{
  /* A file of 10 chunks with chunks 0, 3, 6, 9 verified: bits 1001 0010 01. */
  const guint8 bitmap[2] = {0x92, 0x40};
  Enc e = enc_header(C64K, 1);
  enc_file(&e, "dir/partial.bin", 15, 9 * C64K + 3, 0, 0, bitmap, 2, 4, 4);
  enc_fill(&e, 0, FERRY_HASH_LEN);
  reseal(e.b->data, e.b->len);

  guint8 id[FERRY_TRANSFER_ID_LEN], hash[FERRY_HASH_LEN];
  memset(id, 0x42, sizeof id);
  g_autoptr(FerryCheckpoint) cp = ferry_checkpoint_new(id, C64K);
  FerryCheckpointFile *f = ferry_checkpoint_add_file(cp, "dir/partial.bin", 9 * C64K + 3, NULL);
  for (guint64 c = 0, k = 0; c < 10; c += 3, k++) {
    fill_hash(hash, 5, k);
    ferry_checkpoint_file_set_verified(f, c, hash);
  }
  gsize len;
  g_autofree guint8 *data = encode(cp, &len);
  g_assert_cmpmem(data, len, e.b->data, e.b->len);
  g_byte_array_free(e.b, TRUE);
}

static void
expect_rejected(Enc e, int want, const char *reason_part)
{
  const char *reason = NULL;
  int rc = enc_decode(&e, &reason);
  g_assert_cmpint(rc, ==, want);
  g_assert_nonnull(reason);
  if (strstr(reason, reason_part) == NULL)
    g_error("reason \"%s\" lacks \"%s\"", reason, reason_part);
}

static void
test_rejects_inconsistent_fields(void)
{
  const guint8 one[1] = {0x80}, pad[1] = {0x81}, none[1] = {0}, full[1] = {0xf0};
  const guint8 two_zero[2] = {0};
  Enc e;

  e = enc_header(C64K, 1000);
  enc_file(&e, "a", 1, 1, 0, 0, none, 1, 0, 0);
  expect_rejected(e, FERRY_ERR_INVALID, "more files than the data");

  e = enc_header(C64K, G_MAXUINT32);
  expect_rejected(e, FERRY_ERR_TOO_LONG, "more files than a checkpoint");

  e = enc_header(C64K, 2);
  enc_file(&e, "a", 1, 1, 0, 0, none, 1, 0, 0);
  enc_u16(&e, 60000);
  enc_fill(&e, 'x', 60);
  expect_rejected(e, FERRY_ERR_INVALID, "path is longer than the data");

  e = enc_header(C64K, 1);
  enc_u16(&e, 5000);
  enc_fill(&e, 'x', 5000 + 55);
  expect_rejected(e, FERRY_ERR_TOO_LONG, "longer than 4096");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, 1, 0, 0, one, 1, 1, 0);
  expect_rejected(e, FERRY_ERR_INVALID, "more chunk hashes");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, 1, 0, 0, one, 1, 2, 2);
  expect_rejected(e, FERRY_ERR_INVALID, "count does not match");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, 1, 0, 0, one, 1, G_MAXUINT32, 0);
  expect_rejected(e, FERRY_ERR_INVALID, "count does not match");

  e = enc_header(C64K, 1);
  enc_u16(&e, 1);
  enc_u8(&e, 'a');
  enc_u64(&e, 1);
  enc_u8(&e, 0);
  enc_fill(&e, 0, 32);
  enc_u32(&e, G_MAXUINT32);
  enc_fill(&e, 0, 8);
  expect_rejected(e, FERRY_ERR_INVALID, "bitmap length does not match");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, 4 * C64K, 0, 0, two_zero, 2, 0, 0);
  expect_rejected(e, FERRY_ERR_INVALID, "bitmap length does not match");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, 1, 0, 0, pad, 1, 2, 2);
  expect_rejected(e, FERRY_ERR_INVALID, "past the end");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, 1, 0x02, 0, none, 1, 0, 0);
  expect_rejected(e, FERRY_ERR_INVALID, "unknown flags");

  e = enc_header(C64K, 1);
  e.b->data[10] = 0x80;
  enc_file(&e, "a", 1, 1, 0, 0, none, 1, 0, 0);
  expect_rejected(e, FERRY_ERR_INVALID, "header flags");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, 1, 0, 0x11, none, 1, 0, 0);
  expect_rejected(e, FERRY_ERR_INVALID, "marked as having none");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, 4 * C64K, 0x01, 0x11, full, 1, 4, 4);
  expect_rejected(e, FERRY_ERR_INVALID, "do not give its root");

  e = enc_header(C64K, 2);
  enc_file(&e, "a/b", 3, 1, 0, 0, none, 1, 0, 0);
  enc_file(&e, "a/b", 3, 1, 0, 0, none, 1, 0, 0);
  expect_rejected(e, FERRY_ERR_INVALID, "appears twice");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, (guint64)G_MAXINT64 + 1, 0, 0, none, 1, 0, 0);
  expect_rejected(e, FERRY_ERR_INVALID, "larger than any file");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, 1, 0, 0, none, 1, 0, 0);
  enc_u8(&e, 0);
  expect_rejected(e, FERRY_ERR_INVALID, "after the last file");

  e = enc_header(C64K, 1);
  enc_file(&e, "a", 1, 1, 0, 0, none, 1, 0, 0);
  g_byte_array_set_size(e.b, e.b->len - 1);
  expect_rejected(e, FERRY_ERR_INVALID, "cut short");

  const guint32 bad_sizes[] = {0, 1000, 32 * 1024, 128u << 20, (64u << 10) + 1};
  for (gsize i = 0; i < G_N_ELEMENTS(bad_sizes); i++) {
    e = enc_header(bad_sizes[i], 0);
    expect_rejected(e, FERRY_ERR_INVALID, "chunk size");
  }

  const char *unsafe[] = {"/etc/passwd", "../x",     "a/../b", "a//b", "a/./b",
                          "a/",          "\xff\xfe", "a\0b",   ""};
  for (gsize i = 0; i < G_N_ELEMENTS(unsafe); i++) {
    gsize n = i == 7 ? 3 : strlen(unsafe[i]);
    e = enc_header(C64K, 1);
    enc_file(&e, unsafe[i], n, 1, 0, 0, none, 1, 0, 0);
    expect_rejected(e, FERRY_ERR_INVALID, "path");
  }

  /* More chunks than a checkpoint may hold: a zero bitmap of 8 MiB. */
  guint64 n_chunks = FERRY_CHECKPOINT_MAX_CHUNKS + 8;
  g_autofree guint8 *zeros = g_malloc0(n_chunks / 8);
  e = enc_header(C64K, 1);
  enc_file(&e, "big", 3, n_chunks * C64K, 0, 0, zeros, (guint32)(n_chunks / 8), 0, 0);
  expect_rejected(e, FERRY_ERR_TOO_LONG, "more chunks");
}

static char *
make_dir(void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp("ferry-test-checkpoint-XXXXXX", &error);
  g_assert_no_error(error);
  return dir;
}

static void
remove_dir(const char *dir)
{
  GDir *d = g_dir_open(dir, 0, NULL);
  const char *name;
  while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
    g_autofree char *p = g_build_filename(dir, name, NULL);
    g_unlink(p);
  }
  if (d != NULL)
    g_dir_close(d);
  g_rmdir(dir);
}

static int
cmp_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* names (a GPtrArray of strings) sorted and joined by spaces; frees names. */
static char *
sorted_join(GPtrArray *names)
{
  g_ptr_array_sort(names, cmp_names);
  g_ptr_array_add(names, NULL);
  char *joined = g_strjoinv(" ", (char **)names->pdata);
  g_ptr_array_free(names, TRUE);
  return joined;
}

/* The names in dir, sorted and joined by spaces. */
static char *
list_dir(const char *dir)
{
  GDir *d = g_dir_open(dir, 0, NULL);
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  const char *name;
  while ((name = g_dir_read_name(d)) != NULL)
    g_ptr_array_add(names, g_strdup(name));
  g_dir_close(d);
  return sorted_join(names);
}

static void
test_save_and_load(void)
{
  g_autofree char *dir = make_dir();
  g_autofree char *path = g_build_filename(dir, "cp", NULL);
  g_autoptr(FerryCheckpoint) cp = sample_checkpoint();
  GError *error = NULL;

  g_assert_null(ferry_checkpoint_load(path, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND);
  g_assert_nonnull(strstr(error->message, path));
  g_clear_error(&error);

  g_assert_true(ferry_checkpoint_save(cp, path, &error));
  g_assert_no_error(error);
  g_autofree char *names = list_dir(dir);
  g_assert_cmpstr(names, ==, "cp");
  g_autoptr(FerryCheckpoint) back = ferry_checkpoint_load(path, &error);
  g_assert_no_error(error);
  g_assert_true(ferry_checkpoint_equal(cp, back));

  /* Damaged on disk: reported with the reason and the way on, not used. */
  char *data;
  gsize len;
  g_assert_true(g_file_get_contents(path, &data, &len, NULL));
  data[len / 2] ^= 0x20;
  g_assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
  g_assert_null(ferry_checkpoint_load(path, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_CORRUPT);
  g_assert_nonnull(strstr(error->message, path));
  g_assert_nonnull(strstr(error->message, "checksum"));
  g_assert_nonnull(strstr(error->message, "ignoring it"));
  g_clear_error(&error);

  g_assert_true(g_file_set_contents(path, data, (gssize)(len - 7), NULL));
  g_assert_null(ferry_checkpoint_load(path, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_CORRUPT);
  g_clear_error(&error);
  g_free(data);

  g_assert_true(g_file_set_contents(path, "", 0, NULL));
  g_assert_null(ferry_checkpoint_load(path, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "too short"));
  g_clear_error(&error);

  /* A save replaces whatever damaged file is there. */
  g_assert_true(ferry_checkpoint_save(cp, path, &error));
  g_autoptr(FerryCheckpoint) again = ferry_checkpoint_load(path, &error);
  g_assert_no_error(error);
  g_assert_true(ferry_checkpoint_equal(cp, again));
  remove_dir(dir);
}

static void
test_save_error_keeps_old(void)
{
  g_autofree char *dir = make_dir();
  g_autofree char *path = g_build_filename(dir, "no-such-dir", "cp", NULL);
  g_autoptr(FerryCheckpoint) cp = sample_checkpoint();
  GError *error = NULL;

  g_assert_false(ferry_checkpoint_save(cp, path, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_IO);
  g_assert_nonnull(strstr(error->message, path));
  g_assert_nonnull(strstr(error->message, g_strerror(ENOENT)));
  g_assert_nonnull(strstr(error->message, "previous checkpoint is kept"));
  g_clear_error(&error);
  remove_dir(dir);
}

/* Generation g of the checkpoint the kill test writes: about 300 KB, and
 * every byte of the state depends on g, so a mix of two generations
 * cannot pass for either. */
#define KILL_CHUNKS 12000

static FerryCheckpoint *
generation(guint64 g)
{
  guint8 id[FERRY_TRANSFER_ID_LEN] = {0}, hash[FERRY_HASH_LEN];
  for (int i = 0; i < 8; i++)
    id[i] = (guint8)(g >> (56 - 8 * i));
  FerryCheckpoint *cp = ferry_checkpoint_new(id, C64K);
  FerryCheckpointFile *f = ferry_checkpoint_add_file(cp, "data.bin", KILL_CHUNKS * C64K, NULL);
  for (guint64 c = 0; c < KILL_CHUNKS; c++) {
    if ((c + g) % 4 == 0)
      continue;
    fill_hash(hash, g, c);
    ferry_checkpoint_file_set_verified(f, c, hash);
  }
  return cp;
}

static guint64
generation_of(const FerryCheckpoint *cp)
{
  guint64 g = 0;
  for (int i = 0; i < 8; i++)
    g = g << 8 | cp->transfer_id[i];
  return g;
}

/* The child: saves generations start, start+1, … as fast as it can and
 * reports each one on fd once its save has returned. */
G_GNUC_NORETURN static void
writer_child(const char *path, guint64 start, int fd)
{
  gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  for (guint64 g = start; g_get_monotonic_time() < deadline; g++) {
    FerryCheckpoint *cp = generation(g);
    if (!ferry_checkpoint_save(cp, path, NULL))
      _exit(3);
    ferry_checkpoint_free(cp);
    if (write(fd, &g, sizeof g) != sizeof g)
      _exit(4);
  }
  _exit(0);
}

static void
test_kill_9_leaves_old_or_new(void)
{
  g_autofree char *dir = make_dir();
  g_autofree char *path = g_build_filename(dir, "cp", NULL);
  GError *error = NULL;
  guint64 current = 0;
  guint interrupted = 0, rounds = 50;
  gint64 deadline = g_get_monotonic_time() + 8 * G_USEC_PER_SEC;

  {
    g_autoptr(FerryCheckpoint) first = generation(0);
    g_assert_true(ferry_checkpoint_save(first, path, &error));
  }
  for (guint round = 0; round < rounds && g_get_monotonic_time() < deadline; round++) {
    int fds[2];
    g_assert_cmpint(pipe(fds), ==, 0);
    pid_t pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
      close(fds[0]);
      writer_child(path, current + 1, fds[1]);
    }
    close(fds[1]);
    g_usleep((gulong)g_test_rand_int_range(0, 25000));
    kill(pid, SIGKILL);
    int status;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));

    /* The last generation the child reported as committed. */
    guint64 g, committed = current;
    while (read(fds[0], &g, sizeof g) == sizeof g)
      committed = g;
    close(fds[0]);

    interrupted += ferry_checkpoint_clean_stale(path);
    g_autoptr(FerryCheckpoint) cp = ferry_checkpoint_load(path, &error);
    g_assert_no_error(error);
    guint64 found = generation_of(cp);
    g_assert_cmpuint(found, >=, committed);
    g_assert_cmpuint(found, <=, committed + 1);
    g_autoptr(FerryCheckpoint) want = generation(found);
    g_assert_true(ferry_checkpoint_equal(cp, want));

    g_autofree char *names = list_dir(dir);
    g_assert_cmpstr(names, ==, "cp");
    current = found;
  }
  g_test_message(
      "%u kills landed mid-save (temp file left and cleaned); last generation %" G_GUINT64_FORMAT,
      interrupted, current);
  remove_dir(dir);
}

static void
test_writer_rate_limit(void)
{
  g_autofree char *dir = make_dir();
  g_autofree char *path = g_build_filename(dir, "cp", NULL);
  GError *error = NULL;
  gboolean saved = FALSE;
  g_autoptr(FerryCheckpoint) gen1 = generation(1);
  g_autoptr(FerryCheckpoint) gen2 = generation(2);
  g_autoptr(FerryCheckpoint) gen3 = generation(3);

  /* An hour between saves: the first call saves, the next does not,
   * flush always does. */
  FerryCheckpointWriter *w = ferry_checkpoint_writer_new(path, 3600 * 1000);
  g_assert_true(ferry_checkpoint_writer_maybe_save(w, gen1, &saved, &error));
  g_assert_no_error(error);
  g_assert_true(saved);
  g_assert_true(ferry_checkpoint_writer_maybe_save(w, gen2, &saved, &error));
  g_assert_false(saved);
  g_assert_true(ferry_checkpoint_writer_maybe_save(w, gen3, &saved, &error));
  g_assert_false(saved);
  {
    g_autoptr(FerryCheckpoint) on_disk = ferry_checkpoint_load(path, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(generation_of(on_disk), ==, 1);
  }
  g_assert_true(ferry_checkpoint_writer_flush(w, gen3, &error));
  {
    g_autoptr(FerryCheckpoint) on_disk = ferry_checkpoint_load(path, &error);
    g_assert_cmpuint(generation_of(on_disk), ==, 3);
  }
  ferry_checkpoint_writer_free(w);

  /* No interval: every call saves. */
  w = ferry_checkpoint_writer_new(path, 0);
  for (guint64 g = 1; g <= 3; g++) {
    g_autoptr(FerryCheckpoint) cp = generation(g);
    g_assert_true(ferry_checkpoint_writer_maybe_save(w, cp, &saved, &error));
    g_assert_true(saved);
    g_autoptr(FerryCheckpoint) on_disk = ferry_checkpoint_load(path, &error);
    g_assert_cmpuint(generation_of(on_disk), ==, g);
  }
  ferry_checkpoint_writer_free(w);

  /* Once the interval has passed, the next call saves again. */
  w = ferry_checkpoint_writer_new(path, 20);
  g_assert_true(ferry_checkpoint_writer_maybe_save(w, gen1, &saved, &error));
  g_assert_true(saved);
  g_usleep(30 * 1000);
  g_assert_true(ferry_checkpoint_writer_maybe_save(w, gen2, &saved, &error));
  g_assert_true(saved);
  ferry_checkpoint_writer_free(w);

  /* Failed saves are reported and rate limited too. */
  g_autofree char *bad = g_build_filename(dir, "missing", "cp", NULL);
  w = ferry_checkpoint_writer_new(bad, 3600 * 1000);
  g_assert_false(ferry_checkpoint_writer_maybe_save(w, gen1, &saved, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_IO);
  g_assert_false(saved);
  g_clear_error(&error);
  g_assert_true(ferry_checkpoint_writer_maybe_save(w, gen1, &saved, &error));
  g_assert_false(saved);
  ferry_checkpoint_writer_free(w);
  remove_dir(dir);
}

static pid_t
dead_pid(void)
{
  pid_t pid = fork();
  g_assert_cmpint(pid, >=, 0);
  if (pid == 0)
    _exit(0);
  g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
  return pid;
}

static void
touch(const char *dir, const char *name)
{
  g_autofree char *p = g_build_filename(dir, name, NULL);
  g_assert_true(g_file_set_contents(p, "partial", -1, NULL));
}

static void
test_stale_temp_cleanup(void)
{
  g_autofree char *dir = make_dir();
  g_autofree char *path = g_build_filename(dir, "cp", NULL);
  pid_t dead = dead_pid();
  g_autofree char *stale = g_strdup_printf(".cp.%d.0123abcd.tmp", (int)dead);
  g_autofree char *stale2 = g_strdup_printf(".cp.%d.ffffffff.tmp", (int)dead);
  g_autofree char *mine = g_strdup_printf(".cp.%d.0123abcd.tmp", (int)getpid());
  g_autofree char *other = g_strdup_printf(".other.%d.0123abcd.tmp", (int)dead);
  GError *error = NULL;

  touch(dir, stale);
  touch(dir, stale2);
  touch(dir, mine);  /* this process is alive: maybe mid-save */
  touch(dir, other); /* another checkpoint's temp file */
  touch(dir, ".cp.notapid.0123abcd.tmp");
  touch(dir, ".cp.12.0123abcd.tmpx");
  touch(dir, "cp.tmp");

  g_assert_cmpuint(ferry_checkpoint_clean_stale(path), ==, 2);
  g_autofree char *names = list_dir(dir);
  GPtrArray *want = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(want, g_strdup(mine));
  g_ptr_array_add(want, g_strdup(other));
  g_ptr_array_add(want, g_strdup(".cp.notapid.0123abcd.tmp"));
  g_ptr_array_add(want, g_strdup(".cp.12.0123abcd.tmpx"));
  g_ptr_array_add(want, g_strdup("cp.tmp"));
  g_autofree char *want_sorted = sorted_join(want);
  g_assert_cmpstr(names, ==, want_sorted);

  /* load() and writer_new() clean up before they start. */
  touch(dir, stale);
  g_assert_null(ferry_checkpoint_load(path, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND);
  g_clear_error(&error);
  g_autofree char *stale_path = g_build_filename(dir, stale, NULL);
  g_assert_false(g_file_test(stale_path, G_FILE_TEST_EXISTS));
  touch(dir, stale);
  ferry_checkpoint_writer_free(ferry_checkpoint_writer_new(path, 1000));
  g_assert_false(g_file_test(stale_path, G_FILE_TEST_EXISTS));
  remove_dir(dir);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/core/checkpoint/round-trip", test_round_trip);
  g_test_add_func("/core/checkpoint/set-and-clear-verified", test_set_and_clear_verified);
  g_test_add_func("/core/checkpoint/add-file-rejects", test_add_file_rejects);
  g_test_add_func("/core/checkpoint/rejects-every-byte-flip", test_rejects_every_byte_flip);
  g_test_add_func("/core/checkpoint/rejects-every-truncation", test_rejects_every_truncation);
  g_test_add_func("/core/checkpoint/rejects-version-and-magic", test_rejects_version_and_magic);
  g_test_add_func("/core/checkpoint/hand-built-matches-encoder", test_hand_built_matches_encoder);
  g_test_add_func("/core/checkpoint/rejects-inconsistent-fields", test_rejects_inconsistent_fields);
  g_test_add_func("/core/checkpoint/save-and-load", test_save_and_load);
  g_test_add_func("/core/checkpoint/save-error-keeps-old", test_save_error_keeps_old);
  g_test_add_func("/core/checkpoint/kill-9-leaves-old-or-new", test_kill_9_leaves_old_or_new);
  g_test_add_func("/core/checkpoint/writer-rate-limit", test_writer_rate_limit);
  g_test_add_func("/core/checkpoint/stale-temp-cleanup", test_stale_temp_cleanup);
  return g_test_run();
}
