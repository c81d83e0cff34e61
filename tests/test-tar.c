/* Tar streams and tar to zip: the writer checked by GNU tar, the reader
 * fed tars made by GNU tar and hostile ones, any slicing giving the same
 * result; the zip made from a tar checked by Python's zipfile and unzip. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "core/tar.h"
#include "server/relay-zip.h"

/* ---- helpers ---- */

static char *
make_tmpdir(void)
{
  GError *error = NULL;
  char *dir = g_dir_make_tmp("ferry-tar-XXXXXX", &error);
  g_assert_no_error(error);
  return dir;
}

static void
rm_rf(const char *dir)
{
  char *argv[] = {"rm", "-rf", (char *)dir, NULL};
  g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
}

/* Runs argv in cwd (NULL: here); returns its stdout (free it), fails the
 * test unless it exits 0. */
static char *
run(const char *cwd, const char *const *argv)
{
  char *out = NULL, *err = NULL;
  int status;
  GError *error = NULL;
  g_spawn_sync(cwd, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err, &status,
               &error);
  g_assert_no_error(error);
  if (!g_spawn_check_wait_status(status, NULL))
    g_error("%s failed: %s%s", argv[0], out, err);
  g_free(err);
  return out;
}

static void
write_file(const char *path, const void *data, gsize len)
{
  GError *error = NULL;
  g_file_set_contents(path, data, (gssize)len, &error);
  g_assert_no_error(error);
}

static void
fix_checksum(guint8 *h)
{
  guint sum = 0;
  memset(h + 148, ' ', 8);
  for (int i = 0; i < 512; i++)
    sum += h[i];
  g_snprintf((char *)h + 148, 7, "%06o", sum);
  h[155] = ' ';
}

/* What a reader reported: one line per entry, and each file's bytes. */
typedef struct {
  GString *log;
  GHashTable *data; /* path -> GByteArray */
  GByteArray *cur;
  char *cur_path;
  guint64 cur_size;
  int stop_at; /* entry() returns FALSE at this entry number, -1 never */
  int count;
} Collect;

static void
collect_init(Collect *c)
{
  c->log = g_string_new(NULL);
  c->data =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_byte_array_unref);
  c->cur = NULL;
  c->cur_path = NULL;
  c->stop_at = -1;
  c->count = 0;
}

static void
collect_clear(Collect *c)
{
  g_string_free(c->log, TRUE);
  g_hash_table_destroy(c->data);
  g_free(c->cur_path);
  if (c->cur != NULL)
    g_byte_array_unref(c->cur);
}

static gboolean
on_entry(const FerryTarEntry *e, gpointer user, GError **error)
{
  Collect *c = user;
  g_assert_null(c->cur);
  if (c->count++ == c->stop_at) {
    g_set_error(error, FERRY_ERROR, FERRY_ERROR_STATE, "stop at %s", e->path);
    return FALSE;
  }
  g_string_append_printf(c->log, "%c %s %" G_GUINT64_FORMAT " %o %" G_GINT64_FORMAT "%s%s\n",
                         "fds"[e->type], e -> path, e -> size, e -> mode, e -> mtime,
                         e -> link != NULL ? " -> " : "", e->link != NULL ? e->link : "");
  g_assert_true((e->link != NULL) == (e->type == FERRY_TAR_SYMLINK));
  c->cur = g_byte_array_new();
  c->cur_path = g_strdup(e->path);
  c->cur_size = e->size;
  return TRUE;
}

static gboolean
on_data(const guint8 *data, gsize len, gpointer user, GError **error)
{
  Collect *c = user;
  (void)error;
  g_assert_nonnull(c->cur);
  g_assert_cmpuint(len, >, 0);
  g_byte_array_append(c->cur, data, (guint)len);
  g_assert_cmpuint(c->cur->len, <=, c->cur_size);
  return TRUE;
}

static gboolean
on_entry_end(gpointer user, GError **error)
{
  Collect *c = user;
  (void)error;
  g_assert_nonnull(c->cur);
  g_assert_cmpuint(c->cur->len, ==, c->cur_size);
  g_hash_table_insert(c->data, c->cur_path, c->cur);
  c->cur = NULL;
  c->cur_path = NULL;
  return TRUE;
}

static const FerryTarCallbacks collect_cb = {on_entry, on_data, on_entry_end};

/* Feeds tar to a new reader in slices of step bytes (0: random sizes
 * from 1 to 3000), then finishes. Returns TRUE or FALSE with error. */
static gboolean
read_tar(Collect *c, const guint8 *tar, gsize len, gsize step, GError **error)
{
  FerryTarReader *r = ferry_tar_reader_new(&collect_cb, c);
  gboolean ok = TRUE;
  for (gsize pos = 0; ok && pos < len;) {
    gsize n = step != 0 ? step : (gsize)g_test_rand_int_range(1, 3000);
    n = MIN(n, len - pos);
    ok = ferry_tar_reader_feed(r, tar + pos, n, error);
    pos += n;
  }
  if (ok)
    ok = ferry_tar_reader_finish(r, error);
  ferry_tar_reader_free(r);
  return ok;
}

/* Reads a whole tar that must be refused; returns the error. */
static GError *
refused(const guint8 *tar, gsize len)
{
  Collect c;
  GError *error = NULL;
  collect_init(&c);
  g_assert_false(read_tar(&c, tar, len, 0, &error));
  g_assert_nonnull(error);
  g_assert_true(error->domain == FERRY_ERROR);
  g_test_message("refused: %s", error->message);
  collect_clear(&c);
  return error;
}

static void
assert_error(GError *error, int code, const char *part1, const char *part2)
{
  g_assert_nonnull(error);
  if (error->code != code || strstr(error->message, part1) == NULL ||
      (part2 != NULL && strstr(error->message, part2) == NULL))
    g_error("unexpected error %d: %s (wanted %d with '%s' and '%s')", error->code, error->message,
            code, part1, part2 != NULL ? part2 : "");
  g_error_free(error);
}

/* ---- a sample tree written with the writer ---- */

#define T0 1700000000

static char *
repeat(char ch, gsize n)
{
  char *s = g_malloc(n + 1);
  memset(s, ch, n);
  s[n] = '\0';
  return s;
}

typedef struct {
  FerryTarEntry e;
  char *content; /* file bytes (size e.size) */
} Item;

/* Every kind of entry: directories (one empty), files of 0, 6, 512 and
 * 1000 bytes, a unicode name, a 150-byte path (ustar prefix split), a
 * 245-byte path (pax), a symlink and one with a 150-byte target (pax). */
static GArray *
sample_items(void)
{
  GArray *items = g_array_new(FALSE, TRUE, sizeof(Item));
  char *d60 = repeat('d', 60), *f85 = repeat('f', 85), *x120 = repeat('x', 120),
       *y120 = repeat('y', 120), *t150 = repeat('t', 150);
  struct {
    FerryTarType type;
    char *path;
    guint32 mode;
    gsize size;
    char *link;
  } spec[] = {
      {FERRY_TAR_DIR, g_strdup("top/"), 0755, 0, NULL},
      {FERRY_TAR_DIR, g_strdup("top/empty/"), 0700, 0, NULL},
      {FERRY_TAR_FILE, g_strdup("top/a.txt"), 0644, 6, NULL},
      {FERRY_TAR_FILE, g_strdup("top/zero"), 0600, 0, NULL},
      {FERRY_TAR_FILE, g_strdup("top/block"), 0640, 512, NULL},
      {FERRY_TAR_FILE, g_strdup("top/exec.sh"), 0755, 1000, NULL},
      {FERRY_TAR_FILE, g_strdup("top/caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.txt"), 0644, 7, NULL},
      {FERRY_TAR_DIR, g_strdup_printf("top/%s/", d60), 0755, 0, NULL},
      {FERRY_TAR_FILE, g_strdup_printf("top/%s/%s", d60, f85), 0644, 3, NULL},
      {FERRY_TAR_DIR, g_strdup_printf("top/%s/", x120), 0755, 0, NULL},
      {FERRY_TAR_FILE, g_strdup_printf("top/%s/%s", x120, y120), 0644, 5, NULL},
      {FERRY_TAR_SYMLINK, g_strdup("top/link"), 0777, 0, g_strdup("a.txt")},
      {FERRY_TAR_SYMLINK, g_strdup("top/longlink"), 0777, 0, g_strdup_printf("%s/../x", t150)},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(spec); i++) {
    Item it = {{0}, NULL};
    it.e.path = spec[i].path;
    it.e.type = spec[i].type;
    it.e.mode = spec[i].mode;
    it.e.size = spec[i].size;
    it.e.mtime = T0 + (gint64)i * 1000;
    it.e.link = spec[i].link;
    it.content = g_malloc(spec[i].size + 1);
    for (gsize k = 0; k < spec[i].size; k++)
      it.content[k] = (char)('A' + (k * 7 + i) % 26);
    g_array_append_val(items, it);
  }
  g_free(d60);
  g_free(f85);
  g_free(x120);
  g_free(y120);
  g_free(t150);
  return items;
}

static void
free_items(GArray *items)
{
  for (guint i = 0; i < items->len; i++) {
    Item *it = &g_array_index(items, Item, i);
    g_free((char *)it->e.path);
    g_free((char *)it->e.link);
    g_free(it->content);
  }
  g_array_free(items, TRUE);
}

/* Writes items as a tar, checking that each entry takes exactly
 * ferry_tar_entry_size() bytes. */
static GByteArray *
write_items(GArray *items)
{
  GByteArray *out = g_byte_array_new();
  guint64 predicted = 0;
  for (guint i = 0; i < items->len; i++) {
    Item *it = &g_array_index(items, Item, i);
    guint before = out->len;
    ferry_tar_write_header(out, &it->e);
    g_byte_array_append(out, (guint8 *)it->content, (guint)it->e.size);
    ferry_tar_write_padding(out, it->e.size);
    g_assert_cmpuint(out->len - before, ==, ferry_tar_entry_size(&it->e));
    g_assert_cmpuint(out->len % 512, ==, 0);
    predicted += ferry_tar_entry_size(&it->e);
  }
  ferry_tar_write_end(out);
  g_assert_cmpuint(out->len, ==, predicted + 1024);
  return out;
}

/* ---- writer ---- */

static void
test_gnu_tar_extracts_writer(void)
{
  GArray *items = sample_items();
  GByteArray *tar = write_items(items);
  char *dir = make_tmpdir();
  char *file = g_build_filename(dir, "t.tar", NULL);
  char *dest = g_build_filename(dir, "out", NULL);
  write_file(file, tar->data, tar->len);
  g_assert_cmpint(g_mkdir(dest, 0755), ==, 0);

  /* tar -t lists every path as written. */
  const char *list_argv[] = {"tar", "-tf", file, NULL};
  char *listing = run(NULL, list_argv);
  GString *want = g_string_new(NULL);
  for (guint i = 0; i < items->len; i++)
    g_string_append_printf(want, "%s\n", g_array_index(items, Item, i).e.path);
  g_assert_cmpstr(listing, ==, want->str);
  g_free(listing);
  g_string_free(want, TRUE);

  /* tar -tv shows modes and sizes (and says nothing on stderr). */
  const char *verbose_argv[] = {"tar", "--numeric-owner", "-tvf", file, NULL};
  char *verbose = run(NULL, verbose_argv);
  const char *lines[] = {
      "^-rwxr-xr-x 0/0 +1000 \\S+ \\S+ top/exec\\.sh$",
      "^drwx------ 0/0 +0 \\S+ \\S+ top/empty/$",
      "^-rw-r----- 0/0 +512 \\S+ \\S+ top/block$",
      "^lrwxrwxrwx 0/0 +0 \\S+ \\S+ top/link -> a\\.txt$",
      "^lrwxrwxrwx 0/0 +0 \\S+ \\S+ top/longlink -> t{150}/\\.\\./x$",
      "^-rw-r--r-- 0/0 +5 \\S+ \\S+ top/x{120}/y{120}$",
  };
  for (gsize i = 0; i < G_N_ELEMENTS(lines); i++)
    if (!g_regex_match_simple(lines[i], verbose, G_REGEX_MULTILINE, 0))
      g_error("tar -tv output has no line matching %s:\n%s", lines[i], verbose);
  g_free(verbose);

  const char *x_argv[] = {"tar", "-x", "-p", "--no-same-owner", "-f", file, "-C", dest, NULL};
  g_free(run(NULL, x_argv));
  for (guint i = 0; i < items->len; i++) {
    Item *it = &g_array_index(items, Item, i);
    char *path = g_build_filename(dest, it->e.path, NULL);
    struct stat st;
    g_assert_cmpint(lstat(path, &st), ==, 0);
    if (it->e.type == FERRY_TAR_FILE) {
      char *got;
      gsize len;
      g_assert_true(S_ISREG(st.st_mode));
      g_assert_true(g_file_get_contents(path, &got, &len, NULL));
      g_assert_cmpmem(got, len, it->content, it->e.size);
      g_free(got);
    } else if (it->e.type == FERRY_TAR_DIR) {
      g_assert_true(S_ISDIR(st.st_mode));
    } else {
      g_assert_true(S_ISLNK(st.st_mode));
      char *target = g_file_read_link(path, NULL);
      g_assert_cmpstr(target, ==, it->e.link);
      g_free(target);
    }
    if (it->e.type != FERRY_TAR_SYMLINK) {
      g_assert_cmpuint(st.st_mode & 07777, ==, it->e.mode);
      /* GNU tar sets a directory's mtime after filling it. */
      g_assert_cmpint(st.st_mtime, ==, it->e.mtime);
    }
    g_free(path);
  }
  rm_rf(dir);
  g_free(file);
  g_free(dest);
  g_free(dir);
  g_byte_array_unref(tar);
  free_items(items);
}

/* A 9 GiB file: only its header is written, into a sparse file that GNU
 * tar lists (it seeks over the data). The size needs pax and base-256. */
static void
test_huge_size_header(void)
{
  guint64 size = G_GUINT64_CONSTANT(9) << 30;
  FerryTarEntry e = {"big/huge.bin", FERRY_TAR_FILE, size, 0644, T0, NULL};
  FerryTarEntry small = e;
  small.size = (G_GUINT64_CONSTANT(8) << 30) - 1; /* the largest 11 octal digits hold */
  GByteArray *hdr = g_byte_array_new();

  ferry_tar_write_header(hdr, &small);
  g_assert_cmpuint(hdr->len, ==, 512);
  g_assert_cmpuint(ferry_tar_entry_size(&small), ==, 512 + (G_GUINT64_CONSTANT(8) << 30));
  g_byte_array_set_size(hdr, 0);

  ferry_tar_write_header(hdr, &e);
  g_assert_cmpuint(hdr->len, ==, 3 * 512); /* pax header, pax records, ustar header */
  g_assert_cmpuint(ferry_tar_entry_size(&e), ==, 3 * 512 + size);
  g_assert_nonnull(g_strstr_len((char *)hdr->data + 512, 512, "19 size=9663676416\n"));
  g_assert_cmpuint(hdr->data[1024 + 124], ==, 0x80); /* base-256 in the ustar field too */

  char *dir = make_tmpdir();
  char *file = g_build_filename(dir, "huge.tar", NULL);
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(write(fd, hdr->data, hdr->len), ==, (gssize)hdr->len);
  static const guint8 end[1024];
  g_assert_cmpint(pwrite(fd, end, sizeof end, (off_t)(hdr->len + size)), ==, 1024);
  close(fd);
  const char *argv[] = {"tar", "--numeric-owner", "-tvf", file, NULL};
  char *listing = run(NULL, argv);
  g_assert_nonnull(strstr(listing, " 9663676416 "));
  g_assert_nonnull(strstr(listing, " big/huge.bin\n"));
  g_free(listing);
  rm_rf(dir);
  g_free(file);
  g_free(dir);

  /* The reader sees the size from the pax record, then the cut. */
  Collect c;
  GError *error = NULL;
  collect_init(&c);
  FerryTarReader *r = ferry_tar_reader_new(&collect_cb, &c);
  g_assert_true(ferry_tar_reader_feed(r, hdr->data, hdr->len, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(c.log->str, ==, "f big/huge.bin 9663676416 644 1700000000\n");
  g_assert_false(ferry_tar_reader_finish(r, &error));
  assert_error(error, FERRY_ERROR_INVALID, "cut at byte 1536", "0 of 9663676416 bytes came");
  error = NULL;
  ferry_tar_reader_free(r);
  collect_clear(&c);
  g_byte_array_unref(hdr);
}

/* An mtime before 1970 or after 2242 goes into pax too. */
static void
test_mtime_out_of_range(void)
{
  FerryTarEntry e = {"old", FERRY_TAR_FILE, 0, 0644, -86400, NULL};
  GByteArray *tar = g_byte_array_new();
  ferry_tar_write_header(tar, &e);
  g_assert_cmpuint(tar->len, ==, ferry_tar_entry_size(&e));
  g_assert_cmpuint(tar->len, ==, 1536);
  ferry_tar_write_end(tar);
  Collect c;
  GError *error = NULL;
  collect_init(&c);
  g_assert_true(read_tar(&c, tar->data, tar->len, 0, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(c.log->str, ==, "f old 0 644 -86400\n");
  collect_clear(&c);
  g_byte_array_unref(tar);
}

/* ---- reader ---- */

static void
test_reads_own_tar_any_slicing(void)
{
  GArray *items = sample_items();
  GByteArray *tar = write_items(items);
  Collect whole;
  GError *error = NULL;
  collect_init(&whole);
  g_assert_true(read_tar(&whole, tar->data, tar->len, tar->len, &error));
  g_assert_no_error(error);

  /* The reader reports exactly what was written. */
  GString *want = g_string_new(NULL);
  for (guint i = 0; i < items->len; i++) {
    Item *it = &g_array_index(items, Item, i);
    g_string_append_printf(want, "%c %s %" G_GUINT64_FORMAT " %o %" G_GINT64_FORMAT "%s%s\n",
                           "fds"[it->e.type], it -> e.path, it->e.size, it->e.mode, it->e.mtime,
                           it->e.link != NULL ? " -> " : "", it->e.link != NULL ? it->e.link : "");
    GByteArray *got = g_hash_table_lookup(whole.data, it->e.path);
    g_assert_nonnull(got);
    g_assert_cmpmem(got->data, got->len, it->content, it->e.size);
  }
  g_assert_cmpstr(whole.log->str, ==, want->str);
  g_string_free(want, TRUE);

  /* 1-byte slices, random slices, and 10240-byte zero padding at the end
   * (what GNU tar's blocking adds) all give the same. */
  gsize steps[] = {1, 0, 0, 0, 511, 513};
  for (gsize s = 0; s < G_N_ELEMENTS(steps); s++) {
    Collect c;
    collect_init(&c);
    g_assert_true(read_tar(&c, tar->data, tar->len, steps[s], &error));
    g_assert_no_error(error);
    g_assert_cmpstr(c.log->str, ==, whole.log->str);
    collect_clear(&c);
  }
  g_byte_array_set_size(tar, tar->len + 10240);
  memset(tar->data + tar->len - 10240, 0, 10240);
  Collect padded;
  collect_init(&padded);
  g_assert_true(read_tar(&padded, tar->data, tar->len, 0, &error));
  g_assert_cmpstr(padded.log->str, ==, whole.log->str);
  collect_clear(&padded);

  collect_clear(&whole);
  g_byte_array_unref(tar);
  free_items(items);
}

/* Makes a tree on disk, tars it with GNU tar in fmt, and returns the tar
 * and the expected reader log. */
static GBytes *
gnu_tar_of_tree(const char *fmt, char **want_log)
{
  char *dir = make_tmpdir();
  char *top = g_build_filename(dir, "photos", NULL);
  /* ustar cannot hold a 110-byte component; GNU and pax can. */
  char *long_dir = repeat('L', strcmp(fmt, "ustar") == 0 ? 95 : 110);
  char *sub = g_build_filename(top, "sub", long_dir, NULL);
  g_assert_cmpint(g_mkdir_with_parents(sub, 0755), ==, 0);
  char *empty = g_build_filename(top, "empty", NULL);
  g_assert_cmpint(g_mkdir(empty, 0700), ==, 0);
  char *a = g_build_filename(top, "a.jpg", NULL);
  char *u = g_build_filename(top, "\xc3\xa9t\xc3\xa9.txt", NULL);
  char *deep = g_build_filename(sub, "file-in-long-dir.bin", NULL);
  char *ln = g_build_filename(top, "link", NULL);
  GString *big = g_string_new(NULL);
  for (int i = 0; i < 3000; i++)
    g_string_append_printf(big, "%d,", i);
  write_file(a, big->str, big->len);
  write_file(u, "unicode", 7);
  write_file(deep, "deep", 4);
  g_assert_cmpint(symlink("a.jpg", ln), ==, 0);
  g_assert_cmpint(chmod(a, 0640), ==, 0);
  g_assert_cmpint(chmod(deep, 0600), ==, 0);

  char *file = g_build_filename(dir, "t.tar", NULL);
  char *fmtopt = g_strdup_printf("--format=%s", fmt);
  const char *argv[] = {"tar", fmtopt,   "--sort=name", "--mtime=@1600000000", "-C", dir, "-cf",
                        file,  "photos", NULL};
  g_free(run(NULL, argv));
  char *data;
  gsize len;
  g_assert_true(g_file_get_contents(file, &data, &len, NULL));

  *want_log = g_strdup_printf("d photos/ 0 755 1600000000\n"
                              "f photos/a.jpg %" G_GSIZE_FORMAT " 640 1600000000\n"
                              "d photos/empty/ 0 700 1600000000\n"
                              "s photos/link 0 777 1600000000 -> a.jpg\n"
                              "d photos/sub/ 0 755 1600000000\n"
                              "d photos/sub/%s/ 0 755 1600000000\n"
                              "f photos/sub/%s/file-in-long-dir.bin 4 600 1600000000\n"
                              "f photos/\xc3\xa9t\xc3\xa9.txt 7 644 1600000000\n",
                              big->len, long_dir, long_dir);
  rm_rf(dir);
  g_string_free(big, TRUE);
  g_free(fmtopt);
  g_free(file);
  g_free(ln);
  g_free(deep);
  g_free(u);
  g_free(a);
  g_free(empty);
  g_free(sub);
  g_free(long_dir);
  g_free(top);
  g_free(dir);
  return g_bytes_new_take(data, len);
}

static void
test_reads_gnu_tar(gconstpointer fmt)
{
  char *want;
  umask(022);
  GBytes *tar = gnu_tar_of_tree(fmt, &want);
  gsize len;
  const guint8 *data = g_bytes_get_data(tar, &len);
  gsize steps[] = {len, 1, 0};
  for (gsize s = 0; s < G_N_ELEMENTS(steps); s++) {
    Collect c;
    GError *error = NULL;
    collect_init(&c);
    g_assert_true(read_tar(&c, data, len, steps[s], &error));
    g_assert_no_error(error);
    g_assert_cmpstr(c.log->str, ==, want);
    GByteArray *deep = NULL;
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, c.data);
    while (g_hash_table_iter_next(&it, &k, &v))
      if (g_str_has_suffix(k, "/file-in-long-dir.bin"))
        deep = v;
    g_assert_nonnull(deep);
    g_assert_cmpmem(deep->data, deep->len, "deep", 4);
    GByteArray *a = g_hash_table_lookup(c.data, "photos/a.jpg");
    g_assert_cmpmem(a->data, 6, "0,1,2,", 6);
    collect_clear(&c);
  }
  g_free(want);
  g_bytes_unref(tar);
}

/* `tar -C DIR -c .` makes "./" and "./a": the "./" entry is skipped and
 * the prefix dropped. */
static void
test_dot_slash_prefix(void)
{
  GByteArray *tar = g_byte_array_new();
  FerryTarEntry dot = {"./", FERRY_TAR_DIR, 0, 0755, T0, NULL};
  FerryTarEntry a = {"./a", FERRY_TAR_FILE, 2, 0644, T0, NULL};
  ferry_tar_write_header(tar, &dot);
  ferry_tar_write_header(tar, &a);
  g_byte_array_append(tar, (const guint8 *)"hi", 2);
  ferry_tar_write_padding(tar, 2);
  ferry_tar_write_end(tar);
  Collect c;
  GError *error = NULL;
  collect_init(&c);
  g_assert_true(read_tar(&c, tar->data, tar->len, 0, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(c.log->str, ==, "f a 2 644 1700000000\n");
  collect_clear(&c);
  g_byte_array_unref(tar);
}

/* ---- hostile tars ---- */

/* A tar of the given entries (files get size zero bytes of 'x'). */
static GByteArray *
tar_of(const FerryTarEntry *entries, gsize n, gboolean end)
{
  GByteArray *tar = g_byte_array_new();
  for (gsize i = 0; i < n; i++) {
    ferry_tar_write_header(tar, &entries[i]);
    if (entries[i].type == FERRY_TAR_FILE) {
      for (guint64 k = 0; k < entries[i].size; k++)
        g_byte_array_append(tar, (const guint8 *)"x", 1);
      ferry_tar_write_padding(tar, entries[i].size);
    }
  }
  if (end)
    ferry_tar_write_end(tar);
  return tar;
}

static GError *
refused_entries(const FerryTarEntry *entries, gsize n)
{
  GByteArray *tar = tar_of(entries, n, TRUE);
  GError *error = refused(tar->data, tar->len);
  g_byte_array_unref(tar);
  return error;
}

static void
test_rejects_unsafe_paths(void)
{
  FerryTarEntry dotdot[] = {{"top/", FERRY_TAR_DIR, 0, 0755, T0, NULL},
                            {"top/../../etc/passwd", FERRY_TAR_FILE, 3, 0644, T0, NULL}};
  assert_error(refused_entries(dotdot, 2), FERRY_ERROR_UNSAFE_PATH,
               "tar entry 'top/../../etc/passwd' (header at byte 512)", "'..'");

  FerryTarEntry abs[] = {{"/etc/passwd", FERRY_TAR_FILE, 3, 0644, T0, NULL}};
  assert_error(refused_entries(abs, 1), FERRY_ERROR_UNSAFE_PATH, "'/etc/passwd'", "absolute");

  FerryTarEntry link_dotdot[] = {{"../evil", FERRY_TAR_SYMLINK, 0, 0777, T0, "/etc"}};
  assert_error(refused_entries(link_dotdot, 1), FERRY_ERROR_UNSAFE_PATH, "'../evil'", "'..'");

  /* A symlink, then a file through it: the write would leave the tree. */
  FerryTarEntry through[] = {{"top/l", FERRY_TAR_SYMLINK, 0, 0777, T0, "/etc"},
                             {"top/l/passwd", FERRY_TAR_FILE, 3, 0644, T0, NULL}};
  assert_error(refused_entries(through, 2), FERRY_ERROR_UNSAFE_PATH, "'top/l/passwd'",
               "beneath a file or symlink");

  FerryTarEntry twice[] = {{"top/a", FERRY_TAR_FILE, 1, 0644, T0, NULL},
                           {"top/a", FERRY_TAR_SYMLINK, 0, 0777, T0, "/etc/shadow"}};
  assert_error(refused_entries(twice, 2), FERRY_ERROR_EXISTS, "'top/a' (header at byte 1024)",
               "listed twice");

  FerryTarEntry cased[] = {{"top/L", FERRY_TAR_SYMLINK, 0, 0777, T0, "/etc"},
                           {"top/l/x", FERRY_TAR_FILE, 1, 0644, T0, NULL}};
  assert_error(refused_entries(cased, 2), FERRY_ERROR_AMBIGUOUS, "'top/l/x'", "in case");

  FerryTarEntry nul_ctrl[] = {{"top/a\nb", FERRY_TAR_FILE, 1, 0644, T0, NULL}};
  assert_error(refused_entries(nul_ctrl, 1), FERRY_ERROR_INVALID, "'top/a\\012b'", "control");

  FerryTarEntry slash_file[] = {{"top/", FERRY_TAR_FILE, 1, 0644, T0, NULL}};
  assert_error(refused_entries(slash_file, 1), FERRY_ERROR_INVALID, "'top/'", "may not end");

  FerryTarEntry empty_link[] = {{"top/l", FERRY_TAR_SYMLINK, 0, 0777, T0, ""}};
  assert_error(refused_entries(empty_link, 1), FERRY_ERROR_INVALID, "'top/l'", "target is empty");
}

/* A pax path with '..' is checked like a ustar one (the ustar name it
 * replaces is harmless). */
static void
test_rejects_pax_path_dotdot(void)
{
  char *comp = repeat('p', 120);
  char *path = g_strdup_printf("top/%s/../../../%s", comp, comp);
  FerryTarEntry e[] = {{path, FERRY_TAR_FILE, 1, 0644, T0, NULL}};
  GByteArray *tar = tar_of(e, 1, TRUE);
  g_assert_cmpuint(tar->len, ==, 512 * 6); /* pax header, records, ustar header, data, end */
  assert_error(refused(tar->data, tar->len), FERRY_ERROR_UNSAFE_PATH, "(header at byte 0)", "'..'");
  g_byte_array_unref(tar);
  g_free(path);
  g_free(comp);
}

static void
test_rejects_bad_checksum(void)
{
  FerryTarEntry e[] = {{"top/", FERRY_TAR_DIR, 0, 0755, T0, NULL},
                       {"top/a", FERRY_TAR_FILE, 3, 0644, T0, NULL}};
  GByteArray *tar = tar_of(e, 2, TRUE);
  tar->data[512 + 10] ^= 1; /* a byte of the second header's name */
  assert_error(refused(tar->data, tar->len), FERRY_ERROR_CORRUPT,
               "tar header at byte 512: header checksum does not match", NULL);
  g_byte_array_unref(tar);
}

static void
test_rejects_cut_stream(void)
{
  FerryTarEntry e[] = {{"top/", FERRY_TAR_DIR, 0, 0755, T0, NULL},
                       {"top/a", FERRY_TAR_FILE, 3000, 0644, T0, NULL}};
  GByteArray *tar = tar_of(e, 2, TRUE);
  /* tar->len is 512 + 512 + 3072 + 1024. */
  struct {
    gsize cut;
    const char *part1, *part2;
  } cuts[] = {
      {0, "cut at byte 0", "before the end-of-archive blocks"},
      {700, "cut at byte 700", "inside a header block"},
      {2024, "tar entry 'top/a' (header at byte 512): cut at byte 2024", "1000 of 3000 bytes came"},
      {4050, "cut at byte 4050", "padding"},
      {4096, "cut at byte 4096", "before the end-of-archive blocks"},
      {4608, "cut at byte 4608", "only one of the two end blocks"},
  };
  for (gsize i = 0; i < G_N_ELEMENTS(cuts); i++)
    assert_error(refused(tar->data, cuts[i].cut), FERRY_ERROR_INVALID, cuts[i].part1,
                 cuts[i].part2);
  /* Whole, it reads; then junk after the end is refused. */
  Collect c;
  GError *error = NULL;
  collect_init(&c);
  g_assert_true(read_tar(&c, tar->data, tar->len, 0, &error));
  collect_clear(&c);
  g_byte_array_append(tar, (const guint8 *)"junk", 4);
  assert_error(refused(tar->data, tar->len), FERRY_ERROR_INVALID, "at byte 5120",
               "after the end of the archive");
  g_byte_array_unref(tar);
}

/* Overwrites the header at off with typeflag t and a new checksum. */
static void
retype(GByteArray *tar, gsize off, char t)
{
  tar->data[off + 156] = (guint8)t;
  fix_checksum(tar->data + off);
}

static void
test_rejects_huge_pax(void)
{
  /* A pax header claiming 64 KiB + 1 bytes is refused at its header. */
  FerryTarEntry e[] = {{"top/a", FERRY_TAR_FILE, FERRY_TAR_PAX_MAX + 1, 0644, T0, NULL}};
  GByteArray *tar = tar_of(e, 1, TRUE);
  retype(tar, 0, 'x');
  assert_error(refused(tar->data, tar->len), FERRY_ERROR_TOO_LONG, "tar header at byte 0",
               "pax extended header of 65537 bytes is over the 65536-byte limit");
  retype(tar, 0, 'L');
  assert_error(refused(tar->data, tar->len), FERRY_ERROR_TOO_LONG, "GNU long name header", NULL);
  g_byte_array_unref(tar);

  /* A 4097-byte path in pax fits the limit but not the path rules. */
  GString *p = g_string_new("top");
  while (p->len < 4097)
    g_string_append(p, "/abcdefgh");
  FerryTarEntry lp[] = {{p->str, FERRY_TAR_FILE, 0, 0644, T0, NULL}};
  assert_error(refused_entries(lp, 1), FERRY_ERROR_TOO_LONG, "(header at byte 0)", NULL);
  g_string_free(p, TRUE);
}

static void
test_rejects_other_types(void)
{
  struct {
    char t;
    const char *why;
  } types[] = {{'1', "hard link"}, {'3', "device node"},  {'4', "device node"}, {'6', "FIFO"},
               {'S', "sparse"},    {'V', "multi-volume"}, {'Q', "not accepted"}};
  for (gsize i = 0; i < G_N_ELEMENTS(types); i++) {
    FerryTarEntry e[] = {{"top/", FERRY_TAR_DIR, 0, 0755, T0, NULL},
                         {"top/dev", FERRY_TAR_FILE, 0, 0644, T0, NULL}};
    GByteArray *tar = tar_of(e, 2, TRUE);
    retype(tar, 512, types[i].t);
    assert_error(refused(tar->data, tar->len), FERRY_ERROR_INVALID,
                 "tar entry 'top/dev' (header at byte 512)", types[i].why);
    g_byte_array_unref(tar);
  }
}

/* Malformed fields and pax records. */
static void
test_rejects_bad_fields(void)
{
  FerryTarEntry e[] = {{"top/a", FERRY_TAR_FILE, 3, 0644, T0, NULL}};
  GByteArray *tar = tar_of(e, 1, TRUE);
  memcpy(tar->data + 124, "0000000009x\0", 12); /* size */
  fix_checksum(tar->data);
  assert_error(refused(tar->data, tar->len), FERRY_ERROR_INVALID, "size field", NULL);
  g_byte_array_unref(tar);

  tar = tar_of(e, 1, TRUE);
  memcpy(tar->data + 257, "ustaR\0", 6); /* magic */
  fix_checksum(tar->data);
  assert_error(refused(tar->data, tar->len), FERRY_ERROR_INVALID, "not a ustar", NULL);
  g_byte_array_unref(tar);

  /* A directory with data is refused. */
  FerryTarEntry d[] = {{"top/", FERRY_TAR_FILE, 3, 0644, T0, NULL}};
  tar = tar_of(d, 1, TRUE);
  retype(tar, 0, '5');
  assert_error(refused(tar->data, tar->len), FERRY_ERROR_INVALID, "directory entry with 3 bytes",
               NULL);
  g_byte_array_unref(tar);

  /* pax records: bad length, no '=', sparse, global path. */
  const char *records[] = {"99 path=x\n", "8 pathx\n", "22 GNU.sparse.major=1\n", "11 path=ab\n"};
  const char *whys[] = {"malformed pax record", "no 'key='", "sparse files", "global pax header"};
  for (gsize i = 0; i < G_N_ELEMENTS(records); i++) {
    gsize rlen = strlen(records[i]);
    FerryTarEntry x[] = {{"hdr", FERRY_TAR_FILE, rlen, 0644, T0, NULL},
                         {"top/a", FERRY_TAR_FILE, 0, 0644, T0, NULL}};
    tar = tar_of(x, 2, TRUE);
    memcpy(tar->data + 512, records[i], rlen);
    retype(tar, 0, i == 3 ? 'g' : 'x');
    assert_error(refused(tar->data, tar->len), FERRY_ERROR_INVALID, "header at byte 0", whys[i]);
    g_byte_array_unref(tar);
  }

  /* A pax header with nothing after it but the end. */
  FerryTarEntry lonely[] = {{"hdr", FERRY_TAR_FILE, 11, 0644, T0, NULL}};
  tar = tar_of(lonely, 1, TRUE);
  memcpy(tar->data + 512, "11 path=ab\n", 11);
  retype(tar, 0, 'x');
  assert_error(refused(tar->data, tar->len), FERRY_ERROR_INVALID, "'ab'",
               "followed by the end of the archive");
  g_byte_array_unref(tar);
}

/* `git archive` starts with a global pax header holding a comment: it is
 * read and ignored. */
static void
test_global_comment_ignored(void)
{
  const char rec[] = "52 comment=0123456789abcdef0123456789abcdef01234567\n";
  FerryTarEntry e[] = {{"pax_global_header", FERRY_TAR_FILE, sizeof rec - 1, 0644, T0, NULL},
                       {"top/a", FERRY_TAR_FILE, 1, 0644, T0, NULL}};
  GByteArray *tar = tar_of(e, 2, TRUE);
  memcpy(tar->data + 512, rec, sizeof rec - 1);
  retype(tar, 0, 'g');
  Collect c;
  GError *error = NULL;
  collect_init(&c);
  g_assert_true(read_tar(&c, tar->data, tar->len, 0, &error));
  g_assert_no_error(error);
  g_assert_cmpstr(c.log->str, ==, "f top/a 1 644 1700000000\n");
  collect_clear(&c);
  g_byte_array_unref(tar);
}

/* A callback that says FALSE stops the reader, and its error is the one
 * reported (then and on every later call). */
static void
test_callback_stops(void)
{
  GArray *items = sample_items();
  GByteArray *tar = write_items(items);
  Collect c;
  GError *error = NULL;
  collect_init(&c);
  c.stop_at = 2;
  FerryTarReader *r = ferry_tar_reader_new(&collect_cb, &c);
  g_assert_false(ferry_tar_reader_feed(r, tar->data, tar->len, &error));
  assert_error(error, FERRY_ERROR_STATE, "stop at top/a.txt", NULL);
  error = NULL;
  g_assert_false(ferry_tar_reader_feed(r, tar->data, 10, &error));
  assert_error(error, FERRY_ERROR_STATE, "stop at top/a.txt", NULL);
  error = NULL;
  g_assert_false(ferry_tar_reader_finish(r, &error));
  assert_error(error, FERRY_ERROR_STATE, "stop at top/a.txt", NULL);
  error = NULL;
  ferry_tar_reader_free(r);
  g_assert_cmpuint(g_hash_table_size(c.data), ==, 2);
  collect_clear(&c);
  g_byte_array_unref(tar);
  free_items(items);
}

/* Every single-byte change to a small tar is either refused or read
 * without trouble (ASan checks the rest), never a crash. */
static void
test_byte_flips(void)
{
  GArray *items = sample_items();
  GByteArray *tar = write_items(items);
  guint accepted = 0;
  for (guint i = 0; i < tar->len; i += 7) {
    guint8 saved = tar->data[i];
    tar->data[i] ^= (guint8)(1 + i % 255);
    Collect c;
    GError *error = NULL;
    collect_init(&c);
    if (read_tar(&c, tar->data, tar->len, 0, &error))
      accepted++;
    else
      g_assert_nonnull(error);
    g_clear_error(&error);
    collect_clear(&c);
    tar->data[i] = saved;
  }
  g_assert_cmpuint(accepted, >, 0); /* changes to file data are accepted */
  g_byte_array_unref(tar);
  free_items(items);
}

/* ---- tar to zip ---- */

/* Converts tar in slices of step bytes (0: random), checking that a
 * feed never adds more than its own bytes plus one entry's headers and
 * descriptors. Returns the zip, or NULL with error set. */
static GByteArray *
tar_to_zip(const guint8 *tar, gsize len, gsize step, gboolean zip64, GError **error)
{
  FerryTarZip *z = ferry_tar_zip_new();
  GByteArray *out = g_byte_array_new();
  gboolean ok = TRUE;
  ferry_tar_zip_set_zip64(z, zip64);
  for (gsize pos = 0; ok && pos < len;) {
    gsize n = step != 0 ? step : (gsize)g_test_rand_int_range(1, 5000);
    n = MIN(n, len - pos);
    guint before = out->len;
    ok = ferry_tar_zip_feed(z, tar + pos, n, out, error);
    /* Headers of 512-byte tar blocks, each with a path of <= 4096 bytes. */
    g_assert_cmpuint(out->len - before, <=, n + (n / 512 + 1) * (30 + 4096 + 29 + 24 + 4096));
    pos += n;
  }
  if (ok)
    ok = ferry_tar_zip_finish(z, out, error);
  ferry_tar_zip_free(z);
  if (!ok) {
    g_byte_array_unref(out);
    return NULL;
  }
  return out;
}

/* Python's zipfile reads the zip (testzip() checks every CRC) and prints
 * one line per entry; it also walks each local header and data
 * descriptor, which zipfile itself skips, and checks them against the
 * central directory. */
static const char zip_check_py[] =
    "import sys, zipfile, struct, hashlib\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "z = zipfile.ZipFile(sys.argv[1])\n"
    "assert z.testzip() is None\n"
    "def extras(ex):\n"
    "    p, out = 0, {}\n"
    "    while p + 4 <= len(ex):\n"
    "        k, n = struct.unpack('<HH', ex[p:p+4]); out[k] = ex[p+4:p+4+n]; p += 4 + n\n"
    "    assert p == len(ex), 'extra field overruns'\n"
    "    return out\n"
    "for i in z.infolist():\n"
    "    o = i.header_offset\n"
    "    sig, need, flags, meth, t, d, crc, cs, us, nl, xl = struct.unpack('<IHHHHHIIIHH', "
    "raw[o:o+30])\n"
    "    assert sig == 0x04034b50 and crc == 0 and meth == 0 and flags == 0x808\n"
    "    assert raw[o+30:o+30+nl].decode() == i.filename\n"
    "    lx = extras(raw[o+30+nl:o+30+nl+xl])\n"
    "    z64 = 1 in lx\n"
    "    assert (cs, us) == ((0xffffffff, 0xffffffff) if z64 else (0, 0)) and need == (45 if z64 "
    "else 20)\n"
    "    if z64: assert lx[1] == bytes(16)\n"
    "    q = o + 30 + nl + xl + i.compress_size\n"
    "    dd = struct.unpack('<IIQQ' if z64 else '<IIII', raw[q:q+(24 if z64 else 16)])\n"
    "    assert dd == (0x08074b50, i.CRC, i.file_size, i.file_size), dd\n"
    "    cx = extras(i.extra)\n"
    "    ts = struct.unpack('<bi', cx[0x5455])[1] if 0x5455 in cx else None\n"
    "    assert struct.unpack('<bi', lx[0x5455])[1] == ts\n"
    "    data = z.read(i)\n"
    "    print('%s|%d|%o|%x|%d|%d|%04d-%02d-%02d %02d:%02d:%02d|%s|%s|%d|%d' % (i.filename, "
    "i.file_size, i.external_attr >> 16, i.flag_bits, i.compress_type, i.create_system, "
    "*i.date_time, ts, hashlib.sha256(data).hexdigest()[:16], z64, 1 in cx))\n";

/* The lines zip_check_py should print for what a reader collected. */
static char *
expected_zip_lines(Collect *c, gboolean zip64)
{
  GString *want = g_string_new(NULL);
  char **lines = g_strsplit(c->log->str, "\n", -1);
  for (char **l = lines; *l != NULL && **l != '\0'; l++) {
    char type, path[8192], link[8192] = "";
    guint64 size;
    guint mode;
    gint64 mtime;
    int n = sscanf(*l, "%c %8191s %" G_GUINT64_FORMAT " %o %" G_GINT64_FORMAT " -> %8191s", &type,
                   path, &size, &mode, &mtime, link);
    g_assert_cmpint(n, >=, 5);
    GByteArray *data = g_hash_table_lookup(c->data, path);
    char *sha = type == 's' ? g_compute_checksum_for_string(G_CHECKSUM_SHA256, link, -1)
                            : g_compute_checksum_for_data(G_CHECKSUM_SHA256, data->data, data->len);
    GDateTime *t = g_date_time_new_from_unix_utc(mtime);
    char *when = g_date_time_format(t, "%Y-%m-%d %H:%M:%S");
    g_string_append_printf(
        want, "%s|%" G_GSIZE_FORMAT "|%o|808|0|3|%s|%" G_GINT64_FORMAT "|%.16s|%d|%d\n", path,
        type == 's' ? strlen(link) : (gsize)size,
        (type == 'f'   ? 0100000u
         : type == 'd' ? 040000u
                       : 0120000u) |
            mode,
        when, mtime, sha, zip64 ? 1 : 0, zip64 ? 1 : 0);
    g_free(when);
    g_date_time_unref(t);
    g_free(sha);
  }
  g_strfreev(lines);
  return g_string_free(want, FALSE);
}

/* A tree with spaces or none in names (sscanf above splits at spaces). */
static void
check_zip_of_gnu_tar(gboolean zip64)
{
  char *want_log;
  umask(022);
  GBytes *tar = gnu_tar_of_tree("pax", &want_log);
  gsize len;
  const guint8 *data = g_bytes_get_data(tar, &len);
  Collect c;
  GError *error = NULL;
  collect_init(&c);
  g_assert_true(read_tar(&c, data, len, 0, &error));
  g_assert_cmpstr(c.log->str, ==, want_log);

  GByteArray *zip = tar_to_zip(data, len, 0, zip64, &error);
  g_assert_no_error(error);
  char *dir = make_tmpdir();
  char *file = g_build_filename(dir, "t.zip", NULL);
  write_file(file, zip->data, zip->len);

  const char *py_argv[] = {"python3", "-c", zip_check_py, file, NULL};
  char *got = run(NULL, py_argv);
  char *want = expected_zip_lines(&c, zip64);
  g_assert_cmpstr(got, ==, want);
  g_free(got);
  g_free(want);

  /* The end records: ZIP64 ones only when asked for. */
  const guint8 *end = zip->data + zip->len - 22;
  g_assert_cmpmem(end, 4, "PK\x05\x06", 4);
  g_assert_cmpuint(end[10] | end[11] << 8, ==, zip64 ? 0xffff : 8);
  g_assert_cmpint(memcmp(end - 20, "PK\x06\x07", 4) == 0, ==, zip64);
  if (zip64)
    g_assert_cmpmem(end - 76, 4, "PK\x06\x06", 4);

  char *unzip = g_find_program_in_path("unzip");
  if (unzip == NULL) {
    g_test_message("unzip is not installed: only Python's zipfile checked the zip");
  } else {
    const char *t_argv[] = {"unzip", "-t", file, NULL};
    char *tested = run(NULL, t_argv);
    g_assert_nonnull(strstr(tested, "No errors detected in compressed data"));
    g_free(tested);
    char *dest = g_build_filename(dir, "out", NULL);
    const char *x_argv[] = {"unzip", "-q", file, "-d", dest, NULL};
    g_free(run(NULL, x_argv));
    struct stat st;
    char *p = g_build_filename(dest, "photos", "a.jpg", NULL);
    g_assert_cmpint(lstat(p, &st), ==, 0);
    g_assert_cmpuint(st.st_mode & 07777, ==, 0640);
    g_assert_cmpint(st.st_mtime, ==, 1600000000);
    GByteArray *a = g_hash_table_lookup(c.data, "photos/a.jpg");
    char *content;
    gsize clen;
    g_assert_true(g_file_get_contents(p, &content, &clen, NULL));
    g_assert_cmpmem(content, clen, a->data, a->len);
    g_free(content);
    g_free(p);
    p = g_build_filename(dest, "photos", "link", NULL);
    g_assert_cmpint(lstat(p, &st), ==, 0);
    g_assert_true(S_ISLNK(st.st_mode));
    char *target = g_file_read_link(p, NULL);
    g_assert_cmpstr(target, ==, "a.jpg");
    g_free(target);
    g_free(p);
    p = g_build_filename(dest, "photos", "empty", NULL);
    g_assert_cmpint(lstat(p, &st), ==, 0);
    g_assert_true(S_ISDIR(st.st_mode));
    g_assert_cmpuint(st.st_mode & 07777, ==, 0700);
    g_free(p);
    p = g_build_filename(dest, "photos", "\xc3\xa9t\xc3\xa9.txt", NULL);
    g_assert_true(g_file_get_contents(p, &content, &clen, NULL));
    g_assert_cmpmem(content, clen, "unicode", 7);
    g_free(content);
    g_free(p);
    g_free(dest);
  }
  g_free(unzip);
  rm_rf(dir);
  g_free(file);
  g_free(dir);
  g_byte_array_unref(zip);
  collect_clear(&c);
  g_free(want_log);
  g_bytes_unref(tar);
}

static void
test_zip_of_gnu_tar(void)
{
  check_zip_of_gnu_tar(FALSE);
}

static void
test_zip64_records(void)
{
  check_zip_of_gnu_tar(TRUE);
}

/* 1-byte, random and whole feeds make the same zip; inside a file's data
 * each feed's bytes come straight out. */
static void
test_zip_streams(void)
{
  GArray *items = sample_items();
  GByteArray *tar = write_items(items);
  GError *error = NULL;
  GByteArray *whole = tar_to_zip(tar->data, tar->len, tar->len, FALSE, &error);
  g_assert_no_error(error);
  gsize steps[] = {1, 0, 0, 512, 1000};
  for (gsize s = 0; s < G_N_ELEMENTS(steps); s++) {
    GByteArray *z = tar_to_zip(tar->data, tar->len, steps[s], FALSE, &error);
    g_assert_no_error(error);
    g_assert_cmpmem(z->data, z->len, whole->data, whole->len);
    g_byte_array_unref(z);
  }

  FerryTarEntry big = {"d/big", FERRY_TAR_FILE, 100000, 0644, T0, NULL};
  GByteArray *t = tar_of(&big, 1, TRUE);
  FerryTarZip *z = ferry_tar_zip_new();
  GByteArray *out = g_byte_array_new();
  g_assert_true(ferry_tar_zip_feed(z, t->data, 512, out, &error));
  g_assert_cmpuint(out->len, ==, 30 + 5 + 9); /* the local header */
  for (int i = 0; i < 10; i++) {
    guint before = out->len;
    g_assert_true(ferry_tar_zip_feed(z, t->data + 512 + i * 7000, 7000, out, &error));
    g_assert_cmpuint(out->len - before, ==, 7000);
  }
  ferry_tar_zip_free(z);
  g_byte_array_unref(out);
  g_byte_array_unref(t);
  g_byte_array_unref(whole);
  g_byte_array_unref(tar);
  free_items(items);
}

static void
test_zip_refuses_bad_tars(void)
{
  FerryTarEntry e[] = {{"top/", FERRY_TAR_DIR, 0, 0755, T0, NULL},
                       {"top/a", FERRY_TAR_FILE, 3000, 0644, T0, NULL}};
  GByteArray *tar = tar_of(e, 2, TRUE);
  GError *error = NULL;

  /* Cut: finish fails and adds nothing. */
  FerryTarZip *z = ferry_tar_zip_new();
  GByteArray *out = g_byte_array_new();
  g_assert_true(ferry_tar_zip_feed(z, tar->data, 2024, out, &error));
  guint len = out->len;
  g_assert_false(ferry_tar_zip_finish(z, out, &error));
  assert_error(error, FERRY_ERROR_INVALID, "tar entry 'top/a'", "cut at byte 2024");
  error = NULL;
  g_assert_cmpuint(out->len, ==, len);
  ferry_tar_zip_free(z);
  g_byte_array_unref(out);

  /* Whole, it converts once; a second finish is refused. */
  z = ferry_tar_zip_new();
  out = g_byte_array_new();
  g_assert_true(ferry_tar_zip_feed(z, tar->data, tar->len, out, &error));
  g_assert_true(ferry_tar_zip_finish(z, out, &error));
  len = out->len;
  g_assert_false(ferry_tar_zip_finish(z, out, &error));
  assert_error(error, FERRY_ERROR_STATE, "already finished", NULL);
  error = NULL;
  g_assert_cmpuint(out->len, ==, len);
  ferry_tar_zip_free(z);
  g_byte_array_unref(out);
  g_byte_array_unref(tar);

  /* Unsafe path: the feed fails, and so does every later call. */
  FerryTarEntry evil[] = {{"top/", FERRY_TAR_DIR, 0, 0755, T0, NULL},
                          {"top/../../x", FERRY_TAR_FILE, 3, 0644, T0, NULL}};
  tar = tar_of(evil, 2, TRUE);
  z = ferry_tar_zip_new();
  out = g_byte_array_new();
  g_assert_false(ferry_tar_zip_feed(z, tar->data, tar->len, out, &error));
  assert_error(error, FERRY_ERROR_UNSAFE_PATH, "'top/../../x'", "'..'");
  error = NULL;
  g_assert_false(ferry_tar_zip_finish(z, out, &error));
  assert_error(error, FERRY_ERROR_UNSAFE_PATH, "'top/../../x'", "'..'");
  error = NULL;
  ferry_tar_zip_free(z);
  g_byte_array_unref(out);
  g_byte_array_unref(tar);
}

/* Entries with 4000-byte paths fill the 64 MiB central directory after
 * about 16,000 of them; the next one is refused with the limit named. */
static void
test_zip_central_limit(void)
{
  GString *prefix = g_string_new("top");
  char *comp = repeat('c', 250);
  while (prefix->len < 3900)
    g_string_append_printf(prefix, "/%s", comp);
  FerryTarZip *z = ferry_tar_zip_new();
  GByteArray *tar = g_byte_array_new(), *out = g_byte_array_new();
  GError *error = NULL;
  gboolean ok = TRUE;
  guint i;
  for (i = 0; ok && i < 20000; i++) {
    char *path = g_strdup_printf("%s/%08u", prefix->str, i);
    FerryTarEntry e = {path, FERRY_TAR_FILE, 0, 0644, T0, NULL};
    g_byte_array_set_size(tar, 0);
    g_byte_array_set_size(out, 0);
    ferry_tar_write_header(tar, &e);
    ok = ferry_tar_zip_feed(z, tar->data, tar->len, out, &error);
    g_free(path);
  }
  g_assert_false(ok);
  guint per_entry = 46 + (guint)prefix->len + 9 + 9;
  g_assert_cmpuint(i - 1, ==, FERRY_TAR_ZIP_CENTRAL_MAX / per_entry);
  assert_error(error, FERRY_ERROR_TOO_LONG, "would pass 64 MiB", "download it as a tar instead");
  error = NULL;
  ferry_tar_zip_free(z);
  g_byte_array_unref(tar);
  g_byte_array_unref(out);
  g_free(comp);
  g_string_free(prefix, TRUE);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/core/tar/gnu-tar-extracts-writer", test_gnu_tar_extracts_writer);
  g_test_add_func("/core/tar/huge-size-header", test_huge_size_header);
  g_test_add_func("/core/tar/mtime-out-of-range", test_mtime_out_of_range);
  g_test_add_func("/core/tar/reads-own-tar-any-slicing", test_reads_own_tar_any_slicing);
  g_test_add_data_func("/core/tar/reads-gnu-tar-pax", "pax", test_reads_gnu_tar);
  g_test_add_data_func("/core/tar/reads-gnu-tar-gnu", "gnu", test_reads_gnu_tar);
  g_test_add_data_func("/core/tar/reads-gnu-tar-ustar", "ustar", test_reads_gnu_tar);
  g_test_add_func("/core/tar/dot-slash-prefix", test_dot_slash_prefix);
  g_test_add_func("/core/tar/rejects-unsafe-paths", test_rejects_unsafe_paths);
  g_test_add_func("/core/tar/rejects-pax-path-dotdot", test_rejects_pax_path_dotdot);
  g_test_add_func("/core/tar/rejects-bad-checksum", test_rejects_bad_checksum);
  g_test_add_func("/core/tar/rejects-cut-stream", test_rejects_cut_stream);
  g_test_add_func("/core/tar/rejects-huge-pax", test_rejects_huge_pax);
  g_test_add_func("/core/tar/rejects-other-types", test_rejects_other_types);
  g_test_add_func("/core/tar/rejects-bad-fields", test_rejects_bad_fields);
  g_test_add_func("/core/tar/global-comment-ignored", test_global_comment_ignored);
  g_test_add_func("/core/tar/callback-stops", test_callback_stops);
  g_test_add_func("/core/tar/byte-flips", test_byte_flips);
  g_test_add_func("/server/tarzip/zip-of-gnu-tar", test_zip_of_gnu_tar);
  g_test_add_func("/server/tarzip/zip64-records", test_zip64_records);
  g_test_add_func("/server/tarzip/streams", test_zip_streams);
  g_test_add_func("/server/tarzip/refuses-bad-tars", test_zip_refuses_bad_tars);
  g_test_add_func("/server/tarzip/central-limit", test_zip_central_limit);
  return g_test_run();
}
