/* Safe paths: validation of peer paths, case-insensitive collisions, and
 * writes beneath an output directory that symlinks cannot redirect. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "core/safepath.h"

/* ---- validation ---- */

typedef struct {
  const char *path;
  gsize len; /* 0: strlen(path) */
  int code;
  const char *reason;
} Case;

static void
check_cases(const Case *cases, gsize n)
{
  for (gsize i = 0; i < n; i++) {
    const char *reason = "untouched";
    gsize len = cases[i].len != 0 ? cases[i].len : strlen(cases[i].path);
    int rc = ferry_path_validate(cases[i].path, len, &reason);
    if (rc != cases[i].code || g_strcmp0(reason, cases[i].reason) != 0) {
      char *shown = g_strescape(cases[i].path, NULL);
      g_test_message("path '%s': got %d (%s), wanted %d (%s)", shown, rc, reason, cases[i].code,
                     cases[i].reason);
      g_free(shown);
    }
    g_assert_cmpint(rc, ==, cases[i].code);
    g_assert_cmpstr(reason, ==, cases[i].reason);
  }
}

static void
test_accepts_good_paths(void)
{
  static const Case cases[] = {
      {"a", 0, 0, NULL},
      {"a/b/c", 0, 0, NULL},
      {"photos/2024/IMG_0001.JPG", 0, 0, NULL},
      {".hidden/.config", 0, 0, NULL},
      {"a..b/...", 0, 0, NULL},
      {"with space/and-dash_and.dot", 0, 0, NULL},
      {"caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/\xd1\x84\xd0\xb0\xd0\xb9\xd0\xbb.txt", 0,
       0, NULL},
      {"emoji \xf0\x9f\x9a\xa2", 0, 0, NULL},
  };
  check_cases(cases, G_N_ELEMENTS(cases));
}

static void
test_rejects_absolute(void)
{
  static const Case cases[] = {
      {"/etc/passwd", 0, FERRY_ERR_UNSAFE_PATH, "path is absolute (starts with '/')"},
      {"/", 0, FERRY_ERR_UNSAFE_PATH, "path is absolute (starts with '/')"},
      {"//server/share", 0, FERRY_ERR_UNSAFE_PATH, "path is absolute (starts with '/')"},
  };
  check_cases(cases, G_N_ELEMENTS(cases));
}

static void
test_rejects_dotdot(void)
{
  static const Case cases[] = {
      {"..", 0, FERRY_ERR_UNSAFE_PATH, "path component is '..'"},
      {"../etc/passwd", 0, FERRY_ERR_UNSAFE_PATH, "path component is '..'"},
      {"a/../../b", 0, FERRY_ERR_UNSAFE_PATH, "path component is '..'"},
      {"a/..", 0, FERRY_ERR_UNSAFE_PATH, "path component is '..'"},
  };
  check_cases(cases, G_N_ELEMENTS(cases));
}

static void
test_rejects_dot(void)
{
  static const Case cases[] = {
      {".", 0, FERRY_ERR_UNSAFE_PATH, "path component is '.'"},
      {"./a", 0, FERRY_ERR_UNSAFE_PATH, "path component is '.'"},
      {"a/./b", 0, FERRY_ERR_UNSAFE_PATH, "path component is '.'"},
      {"a/.", 0, FERRY_ERR_UNSAFE_PATH, "path component is '.'"},
  };
  check_cases(cases, G_N_ELEMENTS(cases));
}

static void
test_rejects_empty_components(void)
{
  static const Case cases[] = {
      {"", 0, FERRY_ERR_INVALID, "path is empty"},
      {"a//b", 0, FERRY_ERR_UNSAFE_PATH, "path has an empty component ('//')"},
      {"a/", 0, FERRY_ERR_UNSAFE_PATH, "path ends with '/'"},
      {"a/b//", 0, FERRY_ERR_UNSAFE_PATH, "path has an empty component ('//')"},
  };
  check_cases(cases, G_N_ELEMENTS(cases));
  g_assert_cmpint(ferry_path_validate(NULL, 0, NULL), ==, FERRY_ERR_INVALID);
}

static void
test_rejects_nul_and_controls(void)
{
  static const Case cases[] = {
      {"a\0b", 3, FERRY_ERR_INVALID, "path contains a NUL byte"},
      {"\0", 1, FERRY_ERR_INVALID, "path contains a NUL byte"},
      {"a\nb", 0, FERRY_ERR_INVALID, "path contains a control character"},
      {"\x01", 0, FERRY_ERR_INVALID, "path contains a control character"},
      {"x\x1f", 0, FERRY_ERR_INVALID, "path contains a control character"},
      {"tab\there", 0, FERRY_ERR_INVALID, "path contains a control character"},
      {"del\x7f", 0, FERRY_ERR_INVALID, "path contains a control character"},
      {"esc\x1b[2J", 0, FERRY_ERR_INVALID, "path contains a control character"},
      {"c1 \xc2\x9b"
       "31m",
       0, FERRY_ERR_INVALID, "path contains a control character"},
      {"nel\xc2\x85", 0, FERRY_ERR_INVALID, "path contains a control character"},
  };
  check_cases(cases, G_N_ELEMENTS(cases));
  /* U+00A0 is the first code point after the C1 range: allowed. */
  g_assert_cmpint(ferry_path_validate("nbsp\xc2\xa0", 6, NULL), ==, 0);
}

static void
test_rejects_backslash(void)
{
  static const Case cases[] = {
      {"a\\b", 0, FERRY_ERR_UNSAFE_PATH, "path contains a backslash"},
      {"..\\..\\windows", 0, FERRY_ERR_UNSAFE_PATH, "path contains a backslash"},
      {"\\", 0, FERRY_ERR_UNSAFE_PATH, "path contains a backslash"},
  };
  check_cases(cases, G_N_ELEMENTS(cases));
}

static void
test_rejects_invalid_utf8(void)
{
  static const Case cases[] = {
      {"\xff", 0, FERRY_ERR_INVALID, "path is not valid UTF-8"},
      {"truncated\xc3", 0, FERRY_ERR_INVALID, "path is not valid UTF-8"},
      {"overlong\xc0\xaf", 0, FERRY_ERR_INVALID, "path is not valid UTF-8"},
      {"surrogate\xed\xa0\x80", 0, FERRY_ERR_INVALID, "path is not valid UTF-8"},
      {"a/latin1-caf\xe9", 0, FERRY_ERR_INVALID, "path is not valid UTF-8"},
  };
  check_cases(cases, G_N_ELEMENTS(cases));
}

static void
test_length_limits(void)
{
  char *name255 = g_strnfill(255, 'n');
  char *name256 = g_strnfill(256, 'n');
  const char *reason;

  g_assert_cmpint(ferry_path_validate(name255, 255, &reason), ==, 0);
  g_assert_cmpint(ferry_path_validate(name256, 256, &reason), ==, FERRY_ERR_TOO_LONG);
  g_assert_cmpstr(reason, ==, "a path component is longer than 255 bytes");

  /* 16 components of 255 bytes and 15 slashes = 4095; one more byte = 4096. */
  GString *path = g_string_new(NULL);
  for (int i = 0; i < 16; i++)
    g_string_append_printf(path, "%s%s", i ? "/" : "", name255);
  g_assert_cmpuint(path->len, ==, 4095);
  g_assert_cmpint(ferry_path_validate(path->str, path->len, &reason), ==, 0);
  g_string_append(path, "/");
  g_string_append(path, "x");
  g_assert_cmpuint(path->len, ==, 4097);
  g_assert_cmpint(ferry_path_validate(path->str, path->len, &reason), ==, FERRY_ERR_TOO_LONG);
  g_assert_cmpstr(reason, ==, "path is longer than 4096 bytes");
  g_string_truncate(path, 4096);
  g_assert_cmpint(ferry_path_validate(path->str, path->len, &reason), ==, FERRY_ERR_UNSAFE_PATH);
  g_assert_cmpstr(reason, ==, "path ends with '/'");

  g_string_free(path, TRUE);
  g_free(name255);
  g_free(name256);
}

/* ---- collision set ---- */

static int
set_add(FerryPathSet *set, const char *path, gboolean is_dir, const char **other,
        const char **reason)
{
  return ferry_path_set_add(set, path, strlen(path), is_dir, other, reason);
}

static void
test_collision_case(void)
{
  FerryPathSet *set = ferry_path_set_new();
  const char *other, *reason;

  g_assert_cmpint(set_add(set, "photos", TRUE, &other, &reason), ==, 0);
  g_assert_null(other);
  g_assert_null(reason);
  g_assert_cmpint(set_add(set, "photos/A.JPG", FALSE, &other, &reason), ==, 0);
  g_assert_cmpint(set_add(set, "photos/a.jpg", FALSE, &other, &reason), ==, FERRY_ERR_AMBIGUOUS);
  g_assert_cmpstr(other, ==, "photos/A.JPG");
  g_assert_cmpstr(reason, ==, "name differs only in case or Unicode form from an earlier one");
  /* A collision of the directory prefix names the earlier directory. */
  g_assert_cmpint(set_add(set, "Photos/a.jpg", FALSE, &other, &reason), ==, FERRY_ERR_AMBIGUOUS);
  g_assert_cmpstr(other, ==, "photos");
  g_assert_cmpint(set_add(set, "PHOTOS/new/deeper.txt", FALSE, &other, NULL), ==,
                  FERRY_ERR_AMBIGUOUS);
  g_assert_cmpstr(other, ==, "photos");
  /* Different names are fine. */
  g_assert_cmpint(set_add(set, "photos/b.jpg", FALSE, &other, &reason), ==, 0);
  g_assert_cmpuint(ferry_path_set_size(set), ==, 3);
  ferry_path_set_free(set);
}

static void
test_collision_unicode(void)
{
  FerryPathSet *set = ferry_path_set_new();
  const char *other;

  /* "café" precomposed (NFC) and decomposed (NFD: e + U+0301). */
  g_assert_cmpint(set_add(set, "caf\xc3\xa9.txt", FALSE, &other, NULL), ==, 0);
  g_assert_cmpint(set_add(set, "cafe\xcc\x81.txt", FALSE, &other, NULL), ==, FERRY_ERR_AMBIGUOUS);
  g_assert_cmpstr(other, ==, "caf\xc3\xa9.txt");
  /* Non-ASCII case: "ÄRGER" against "ärger". */
  g_assert_cmpint(set_add(set, "\xc3\xa4rger/x", FALSE, &other, NULL), ==, 0);
  g_assert_cmpint(set_add(set, "\xc3\x84RGER/y", FALSE, &other, NULL), ==, FERRY_ERR_AMBIGUOUS);
  g_assert_cmpstr(other, ==, "\xc3\xa4rger");
  /* The Kelvin sign folds to ASCII 'k'. */
  g_assert_cmpint(set_add(set, "k", FALSE, &other, NULL), ==, 0);
  g_assert_cmpint(set_add(set, "\xe2\x84\xaa", FALSE, &other, NULL), ==, FERRY_ERR_AMBIGUOUS);
  g_assert_cmpstr(other, ==, "k");
  ferry_path_set_free(set);
}

static void
test_duplicates_and_kinds(void)
{
  FerryPathSet *set = ferry_path_set_new();
  const char *other, *reason;

  g_assert_cmpint(set_add(set, "a/b/c", FALSE, &other, &reason), ==, 0);
  /* "a" and "a/b" were added implicitly as directories; listing them is fine once. */
  g_assert_cmpint(set_add(set, "a", TRUE, &other, &reason), ==, 0);
  g_assert_cmpint(set_add(set, "a", TRUE, &other, &reason), ==, FERRY_ERR_EXISTS);
  g_assert_cmpstr(other, ==, "a");
  g_assert_cmpstr(reason, ==, "path is listed twice");
  g_assert_cmpint(set_add(set, "a/b/c", FALSE, &other, &reason), ==, FERRY_ERR_EXISTS);
  g_assert_cmpstr(reason, ==, "path is listed twice");
  /* "a/b" is a directory: it cannot also be a file. */
  g_assert_cmpint(set_add(set, "a/b", FALSE, &other, &reason), ==, FERRY_ERR_EXISTS);
  g_assert_cmpstr(other, ==, "a/b");
  g_assert_cmpstr(reason, ==, "path was used earlier as a directory");
  /* "a/b/c" is a file: nothing can be inside it. */
  g_assert_cmpint(set_add(set, "a/b/c/d", FALSE, &other, &reason), ==, FERRY_ERR_EXISTS);
  g_assert_cmpstr(other, ==, "a/b/c");
  g_assert_cmpstr(reason, ==, "a parent directory was listed earlier as a file");
  /* A refused path changes nothing. */
  g_assert_cmpuint(ferry_path_set_size(set), ==, 2);
  g_assert_cmpint(set_add(set, "A/x", FALSE, &other, &reason), ==, FERRY_ERR_AMBIGUOUS);
  g_assert_cmpint(set_add(set, "a/x", FALSE, &other, &reason), ==, 0);
  ferry_path_set_free(set);
}

static void
test_set_validates(void)
{
  FerryPathSet *set = ferry_path_set_new();
  const char *other = "untouched", *reason;

  g_assert_cmpint(set_add(set, "../x", FALSE, &other, &reason), ==, FERRY_ERR_UNSAFE_PATH);
  g_assert_null(other);
  g_assert_cmpstr(reason, ==, "path component is '..'");
  g_assert_cmpint(ferry_path_set_add(set, "a\0b", 3, FALSE, &other, &reason), ==,
                  FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_path_set_size(set), ==, 0);
  ferry_path_set_free(set);
}

/* ---- writing beneath an output directory ---- */

typedef struct {
  char *base;   /* temporary directory holding everything */
  char *out;    /* base/out: the output directory */
  char *victim; /* base/victim: where an attacker wants writes to land */
  char *victim_file;
  int outfd;
} Fixture;

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  if (flag == FTW_DP || flag == FTW_D)
    chmod(path, 0700);
  return remove(path);
}

static void
rm_rf(const char *path)
{
  nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void
fixture_setup(Fixture *fx, gconstpointer data)
{
  GError *error = NULL;
  fx->base = g_dir_make_tmp("ferry-safepath-XXXXXX", &error);
  g_assert_no_error(error);
  fx->out = g_build_filename(fx->base, "out", NULL);
  fx->victim = g_build_filename(fx->base, "victim", NULL);
  fx->victim_file = g_build_filename(fx->base, "victimfile", NULL);
  g_assert_cmpint(g_mkdir(fx->victim, 0755), ==, 0);
  g_assert_true(g_file_set_contents(fx->victim_file, "secret", -1, NULL));
  fx->outfd = ferry_outdir_open(fx->out, TRUE, &error);
  g_assert_no_error(error);
  g_assert_cmpint(fx->outfd, >=, 0);
}

static void
fixture_teardown(Fixture *fx, gconstpointer data)
{
  close(fx->outfd);
  rm_rf(fx->base);
  g_free(fx->base);
  g_free(fx->out);
  g_free(fx->victim);
  g_free(fx->victim_file);
}

static char *
out_path(Fixture *fx, const char *rel)
{
  return g_build_filename(fx->out, rel, NULL);
}

static void
plant_symlink(Fixture *fx, const char *target, const char *rel)
{
  char *link = out_path(fx, rel);
  g_assert_cmpint(symlink(target, link), ==, 0);
  g_free(link);
}

static guint
count_dir(const char *path)
{
  GDir *dir = g_dir_open(path, 0, NULL);
  guint n = 0;
  g_assert_nonnull(dir);
  while (g_dir_read_name(dir) != NULL)
    n++;
  g_dir_close(dir);
  return n;
}

static void
assert_victim_untouched(Fixture *fx)
{
  char *contents;
  g_assert_cmpuint(count_dir(fx->victim), ==, 0);
  g_assert_true(g_file_get_contents(fx->victim_file, &contents, NULL, NULL));
  g_assert_cmpstr(contents, ==, "secret");
  g_free(contents);
}

static void
test_writes_beneath(Fixture *fx, gconstpointer data)
{
  GError *error = NULL;
  char *contents;

  int fd = ferry_openat_beneath(fx->outfd, "x/y/z.txt", O_WRONLY | O_CREAT | O_EXCL, 0644,
                                FERRY_BENEATH_MKDIRS, &error);
  g_assert_no_error(error);
  g_assert_cmpint(fd, >=, 0);
  g_assert_cmpint(write(fd, "hello", 5), ==, 5);
  g_assert_cmpint(fcntl(fd, F_GETFL) & O_NONBLOCK, ==, 0);
  g_assert_cmpint(fcntl(fd, F_GETFD) & FD_CLOEXEC, ==, FD_CLOEXEC);
  close(fd);
  char *path = out_path(fx, "x/y/z.txt");
  g_assert_true(g_file_get_contents(path, &contents, NULL, NULL));
  g_assert_cmpstr(contents, ==, "hello");
  g_free(contents);
  g_free(path);

  /* O_EXCL on an existing file. */
  fd = ferry_openat_beneath(fx->outfd, "x/y/z.txt", O_WRONLY | O_CREAT | O_EXCL, 0644,
                            FERRY_BENEATH_NONE, &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_EXISTS);
  g_assert_nonnull(strstr(error->message, "'x/y/z.txt' already exists"));
  g_clear_error(&error);

  /* Without MKDIRS a missing parent is reported by name. */
  fd = ferry_openat_beneath(fx->outfd, "nope/z.txt", O_WRONLY | O_CREAT, 0644, FERRY_BENEATH_NONE,
                            &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND);
  g_assert_cmpstr(error->message, ==, "cannot open 'nope/z.txt': 'nope' does not exist");
  g_clear_error(&error);

  /* Reading back works the same way. */
  fd = ferry_openat_beneath(fx->outfd, "x/y/z.txt", O_RDONLY, 0, FERRY_BENEATH_NONE, &error);
  g_assert_no_error(error);
  char buf[8] = {0};
  g_assert_cmpint(read(fd, buf, sizeof buf), ==, 5);
  g_assert_cmpstr(buf, ==, "hello");
  close(fd);

  /* O_TRUNC still empties an ordinary file. */
  fd = ferry_openat_beneath(fx->outfd, "x/y/z.txt", O_WRONLY | O_TRUNC, 0, FERRY_BENEATH_NONE,
                            &error);
  g_assert_no_error(error);
  struct stat st;
  g_assert_cmpint(fstat(fd, &st), ==, 0);
  g_assert_cmpint(st.st_size, ==, 0);
  close(fd);

  /* A directory when asked for one. */
  fd =
      ferry_openat_beneath(fx->outfd, "x/y", O_RDONLY | O_DIRECTORY, 0, FERRY_BENEATH_NONE, &error);
  g_assert_no_error(error);
  close(fd);
  fd = ferry_openat_beneath(fx->outfd, "x/y", O_RDONLY, 0, FERRY_BENEATH_NONE, &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_assert_cmpstr(error->message, ==,
                  "cannot open 'x/y': it is a directory, not a regular file; move it away");
  g_clear_error(&error);
}

static void
test_refuses_unsafe_relpath(Fixture *fx, gconstpointer data)
{
  GError *error = NULL;

  int fd =
      ferry_openat_beneath(fx->outfd, "../victimfile", O_WRONLY, 0, FERRY_BENEATH_NONE, &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_assert_cmpstr(error->message, ==, "cannot open '../victimfile': path component is '..'");
  g_clear_error(&error);

  fd = ferry_openat_beneath(fx->outfd, fx->victim_file, O_WRONLY, 0, FERRY_BENEATH_NONE, &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_clear_error(&error);

  g_assert_false(ferry_mkdir_beneath(fx->outfd, "a/../../victim/x", 0755, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_clear_error(&error);

  fd = ferry_openat_beneath(fx->outfd, "ctl\nname", O_WRONLY | O_CREAT, 0644, FERRY_BENEATH_NONE,
                            &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_cmpstr(error->message, ==,
                  "cannot open 'ctl\\nname': path contains a control character");
  g_clear_error(&error);
  assert_victim_untouched(fx);
}

/* The attack this module exists for: a symlink planted inside the output
 * directory (by an earlier transfer, another user, or the peer itself via
 * a symlink entry) must never redirect a write outside it. */
static void
test_symlink_attack(Fixture *fx, gconstpointer data)
{
  GError *error = NULL;
  struct stat st;

  plant_symlink(fx, fx->victim, "sub");
  plant_symlink(fx, fx->victim_file, "f");
  char *dir_a = out_path(fx, "a");
  g_assert_cmpint(g_mkdir(dir_a, 0755), ==, 0);
  g_free(dir_a);
  plant_symlink(fx, fx->victim, "a/b");

  int fd = ferry_openat_beneath(fx->outfd, "sub/x", O_WRONLY | O_CREAT | O_TRUNC, 0644,
                                FERRY_BENEATH_MKDIRS, &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_assert_cmpstr(error->message, ==,
                  "cannot open 'sub/x': 'sub' is a symbolic link and ferry never follows "
                  "symlinks inside a transfer's directory; remove the link or choose another "
                  "directory");
  g_clear_error(&error);

  fd = ferry_openat_beneath(fx->outfd, "f", O_WRONLY | O_CREAT | O_TRUNC, 0644, FERRY_BENEATH_NONE,
                            &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_assert_nonnull(strstr(error->message, "'f' is a symbolic link"));
  g_clear_error(&error);

  fd = ferry_openat_beneath(fx->outfd, "f", O_WRONLY | O_CREAT | O_EXCL, 0644, FERRY_BENEATH_NONE,
                            &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_clear_error(&error);

  /* Reading through the link is refused too (the sender reopens this way). */
  fd = ferry_openat_beneath(fx->outfd, "f", O_RDONLY, 0, FERRY_BENEATH_NONE, &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_clear_error(&error);

  /* Deeper, with directories to create below the link. */
  fd = ferry_openat_beneath(fx->outfd, "a/b/c/d.txt", O_WRONLY | O_CREAT, 0644,
                            FERRY_BENEATH_MKDIRS, &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_assert_nonnull(strstr(error->message, "'a/b' is a symbolic link"));
  g_clear_error(&error);

  g_assert_false(ferry_mkdir_beneath(fx->outfd, "sub/y", 0755, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_clear_error(&error);
  g_assert_false(ferry_mkdir_beneath(fx->outfd, "sub", 0755, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_clear_error(&error);

  g_assert_false(ferry_rename_beneath(fx->outfd, "sub/x.part", "sub/x", FALSE, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_clear_error(&error);

  g_assert_cmpint(ferry_exists_beneath(fx->outfd, "sub/x", NULL, &error), ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_clear_error(&error);
  g_assert_cmpint(ferry_exists_beneath(fx->outfd, "f", &st, &error), ==, 1);
  g_assert_no_error(error);
  g_assert_true(S_ISLNK(st.st_mode));

  /* Renaming a finished file over the link replaces the link itself
   * (only when overwriting was asked for), never the file it points at. */
  fd = ferry_openat_beneath(fx->outfd, "f.part", O_WRONLY | O_CREAT | O_EXCL, 0644,
                            FERRY_BENEATH_NONE, &error);
  g_assert_no_error(error);
  g_assert_cmpint(write(fd, "mine", 4), ==, 4);
  close(fd);
  g_assert_false(ferry_rename_beneath(fx->outfd, "f.part", "f", FALSE, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_EXISTS);
  g_clear_error(&error);
  g_assert_true(ferry_rename_beneath(fx->outfd, "f.part", "f", TRUE, &error));
  g_assert_no_error(error);
  g_assert_cmpint(ferry_exists_beneath(fx->outfd, "f", &st, &error), ==, 1);
  g_assert_true(S_ISREG(st.st_mode));

  assert_victim_untouched(fx);
}

static void
test_refuses_fifo_and_hardlink(Fixture *fx, gconstpointer data)
{
  GError *error = NULL;
  char *fifo = out_path(fx, "pipe");
  char *hard = out_path(fx, "hard");

  g_assert_cmpint(mkfifo(fifo, 0644), ==, 0);
  /* Would block forever without a reader if opened naively. */
  int fd = ferry_openat_beneath(fx->outfd, "pipe", O_WRONLY | O_CREAT | O_TRUNC, 0644,
                                FERRY_BENEATH_NONE, &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_assert_nonnull(strstr(error->message, "'pipe' is a FIFO (named pipe)"));
  g_clear_error(&error);
  fd = ferry_openat_beneath(fx->outfd, "pipe", O_RDONLY, 0, FERRY_BENEATH_NONE, &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_assert_cmpstr(
      error->message, ==,
      "cannot open 'pipe': it is a FIFO (named pipe), not a regular file; move it away");
  g_clear_error(&error);

  /* A hard link to a file outside: readable, but never written. */
  g_assert_cmpint(link(fx->victim_file, hard), ==, 0);
  fd = ferry_openat_beneath(fx->outfd, "hard", O_WRONLY | O_TRUNC, 0, FERRY_BENEATH_NONE, &error);
  g_assert_cmpint(fd, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_assert_nonnull(strstr(error->message, "has 2 hard links"));
  g_clear_error(&error);
  fd = ferry_openat_beneath(fx->outfd, "hard", O_RDONLY, 0, FERRY_BENEATH_NONE, &error);
  g_assert_no_error(error);
  close(fd);

  assert_victim_untouched(fx);
  g_free(fifo);
  g_free(hard);
}

static void
test_mkdir_rename_exists(Fixture *fx, gconstpointer data)
{
  GError *error = NULL;
  struct stat st;

  g_assert_true(ferry_mkdir_beneath(fx->outfd, "d1/d2/d3", 0750, &error));
  g_assert_no_error(error);
  g_assert_true(ferry_mkdir_beneath(fx->outfd, "d1/d2/d3", 0750, &error));
  g_assert_no_error(error);
  g_assert_cmpint(ferry_exists_beneath(fx->outfd, "d1/d2/d3", &st, &error), ==, 1);
  g_assert_true(S_ISDIR(st.st_mode));
  g_assert_cmpint(ferry_exists_beneath(fx->outfd, "d1/none", NULL, &error), ==, 0);
  g_assert_cmpint(ferry_exists_beneath(fx->outfd, "none/deeper/x", NULL, &error), ==, 0);
  g_assert_no_error(error);

  int fd = ferry_openat_beneath(fx->outfd, "d1/file", O_WRONLY | O_CREAT, 0644, FERRY_BENEATH_NONE,
                                &error);
  g_assert_no_error(error);
  close(fd);
  g_assert_false(ferry_mkdir_beneath(fx->outfd, "d1/file", 0755, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_assert_nonnull(strstr(error->message, "'d1/file' is a regular file"));
  g_clear_error(&error);
  g_assert_cmpint(ferry_exists_beneath(fx->outfd, "d1/file/x", NULL, &error), ==, -1);
  g_assert_nonnull(error);
  g_clear_error(&error);

  g_assert_true(ferry_rename_beneath(fx->outfd, "d1/file", "d1/final", FALSE, &error));
  g_assert_no_error(error);
  g_assert_cmpint(ferry_exists_beneath(fx->outfd, "d1/file", NULL, &error), ==, 0);
  g_assert_cmpint(ferry_exists_beneath(fx->outfd, "d1/final", NULL, &error), ==, 1);
  g_assert_false(ferry_rename_beneath(fx->outfd, "d1/final", "d1/d2/final", FALSE, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_cmpstr(error->message, ==,
                  "cannot rename 'd1/final' to 'd1/d2/final': they are not in the same directory");
  g_clear_error(&error);
  g_assert_false(ferry_rename_beneath(fx->outfd, "d1/missing", "d1/other", FALSE, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND);
  g_clear_error(&error);
}

static void
test_outdir_open(void)
{
  GError *error = NULL;
  char *base = g_dir_make_tmp("ferry-outdir-XXXXXX", &error);
  char *missing = g_build_filename(base, "missing", NULL);
  char *nested = g_build_filename(base, "new", "deeper", NULL);
  char *file = g_build_filename(base, "file", NULL);

  g_assert_cmpint(ferry_outdir_open(missing, FALSE, &error), ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND);
  g_assert_nonnull(strstr(error->message, missing));
  g_assert_nonnull(strstr(error->message, "does not exist; create it"));
  g_clear_error(&error);

  int fd = ferry_outdir_open(nested, TRUE, &error);
  g_assert_no_error(error);
  g_assert_cmpint(fd, >=, 0);
  g_assert_true(g_file_test(nested, G_FILE_TEST_IS_DIR));
  close(fd);

  g_assert_true(g_file_set_contents(file, "", 0, NULL));
  g_assert_cmpint(ferry_outdir_open(file, FALSE, &error), ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_EXISTS);
  g_assert_nonnull(strstr(error->message, "is not a directory"));
  g_clear_error(&error);

  rm_rf(base);
  g_free(base);
  g_free(missing);
  g_free(nested);
  g_free(file);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/core/safepath/accepts-good-paths", test_accepts_good_paths);
  g_test_add_func("/core/safepath/rejects-absolute", test_rejects_absolute);
  g_test_add_func("/core/safepath/rejects-dotdot", test_rejects_dotdot);
  g_test_add_func("/core/safepath/rejects-dot", test_rejects_dot);
  g_test_add_func("/core/safepath/rejects-empty-components", test_rejects_empty_components);
  g_test_add_func("/core/safepath/rejects-nul-and-controls", test_rejects_nul_and_controls);
  g_test_add_func("/core/safepath/rejects-backslash", test_rejects_backslash);
  g_test_add_func("/core/safepath/rejects-invalid-utf8", test_rejects_invalid_utf8);
  g_test_add_func("/core/safepath/length-limits", test_length_limits);
  g_test_add_func("/core/safepath/collision-case", test_collision_case);
  g_test_add_func("/core/safepath/collision-unicode", test_collision_unicode);
  g_test_add_func("/core/safepath/duplicates-and-kinds", test_duplicates_and_kinds);
  g_test_add_func("/core/safepath/set-validates", test_set_validates);
  g_test_add("/core/safepath/writes-beneath", Fixture, NULL, fixture_setup, test_writes_beneath,
             fixture_teardown);
  g_test_add("/core/safepath/refuses-unsafe-relpath", Fixture, NULL, fixture_setup,
             test_refuses_unsafe_relpath, fixture_teardown);
  g_test_add("/core/safepath/symlink-attack", Fixture, NULL, fixture_setup, test_symlink_attack,
             fixture_teardown);
  g_test_add("/core/safepath/refuses-fifo-and-hardlink", Fixture, NULL, fixture_setup,
             test_refuses_fifo_and_hardlink, fixture_teardown);
  g_test_add("/core/safepath/mkdir-rename-exists", Fixture, NULL, fixture_setup,
             test_mkdir_rename_exists, fixture_teardown);
  g_test_add_func("/core/safepath/outdir-open", test_outdir_open);
  return g_test_run();
}
