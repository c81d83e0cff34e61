/* Manifest: the scanner's entries, order, issues and laziness, on real
 * trees made in a temporary directory. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <ferry/manifest.h>

typedef struct {
  char *base; /* a fresh temporary directory */
} Fixture;

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove(path);
}

static void
fixture_setup(Fixture *fx, gconstpointer data)
{
  GError *error = NULL;
  fx->base = g_dir_make_tmp("ferry-manifest-XXXXXX", &error);
  g_assert_no_error(error);
}

static void
fixture_teardown(Fixture *fx, gconstpointer data)
{
  nftw(fx->base, remove_one, 16, FTW_DEPTH | FTW_PHYS);
  g_free(fx->base);
}

static char *
at(Fixture *fx, const char *rel)
{
  return g_build_filename(fx->base, rel, NULL);
}

static void
put_file(Fixture *fx, const char *rel, const char *contents)
{
  char *path = at(fx, rel);
  g_assert_true(g_file_set_contents(path, contents, -1, NULL));
  g_free(path);
}

static void
put_dir(Fixture *fx, const char *rel)
{
  char *path = at(fx, rel);
  g_assert_cmpint(g_mkdir(path, 0755), ==, 0);
  g_free(path);
}

static void
put_symlink(Fixture *fx, const char *target, const char *rel)
{
  char *path = at(fx, rel);
  g_assert_cmpint(symlink(target, path), ==, 0);
  g_free(path);
}

static char *
describe(const FerryEntry *e)
{
  switch (e->type) {
  case FERRY_ENTRY_FILE:
    return g_strdup_printf("f %s %" G_GUINT64_FORMAT, e->path, e->size);
  case FERRY_ENTRY_DIR:
    return g_strdup_printf("d %s", e->path);
  case FERRY_ENTRY_SYMLINK:
    return g_strdup_printf("l %s -> %s", e->path, e->link_target);
  }
  g_assert_not_reached();
}

/* Scans paths to the end; returns the entries as describe() lines (a
 * NULL-terminated strv) and the last return code in *rc. */
static char **
scan_lines(const char *const *paths, FerryScanner **scanner_out, int *rc_out)
{
  GError *error = NULL;
  FerryScanner *scanner = ferry_scanner_new(paths, &error);
  g_assert_no_error(error);
  GPtrArray *lines = g_ptr_array_new();
  const FerryEntry *entry;
  int rc;
  while ((rc = ferry_scanner_next(scanner, &entry)) == 1)
    g_ptr_array_add(lines, describe(entry));
  g_assert_null(entry);
  g_ptr_array_add(lines, NULL);
  if (rc_out != NULL)
    *rc_out = rc;
  else
    g_assert_cmpint(rc, ==, 0);
  if (scanner_out != NULL)
    *scanner_out = scanner;
  else
    ferry_scanner_free(scanner);
  return (char **)g_ptr_array_free(lines, FALSE);
}

static void
assert_lines(char **got, const char *const *want)
{
  char *g = g_strjoinv("\n", got), *w = g_strjoinv("\n", (char **)want);
  g_assert_cmpstr(g, ==, w);
  g_free(g);
  g_free(w);
}

static void
test_files_and_dirs(Fixture *fx, gconstpointer data)
{
  put_dir(fx, "root");
  put_file(fx, "root/a.txt", "hello");
  put_dir(fx, "root/b");
  put_file(fx, "root/b/c.txt", "");
  put_dir(fx, "root/empty");
  char *a = at(fx, "root/a.txt");
  g_assert_cmpint(chmod(a, 0640), ==, 0);
  struct stat st;
  g_assert_cmpint(lstat(a, &st), ==, 0);

  char *root = at(fx, "root");
  const char *paths[] = {root, NULL};
  GError *error = NULL;
  FerryScanner *scanner = ferry_scanner_new(paths, &error);
  g_assert_no_error(error);
  const FerryEntry *e;

  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 1);
  g_assert_cmpint(e->type, ==, FERRY_ENTRY_DIR);
  g_assert_cmpstr(e->path, ==, "root");
  g_assert_cmpuint(e->depth, ==, 0);
  g_assert_cmpuint(e->size, ==, 0);
  g_assert_cmpstr(e->source_dir, ==, fx->base);

  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 1);
  g_assert_cmpint(e->type, ==, FERRY_ENTRY_FILE);
  g_assert_cmpstr(e->path, ==, "root/a.txt");
  g_assert_cmpuint(e->depth, ==, 1);
  g_assert_cmpuint(e->size, ==, 5);
  g_assert_cmpuint(e->mode, ==, 0640);
  g_assert_cmpint(e->mtime_ns, ==, (gint64)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec);
  g_assert_null(e->link_target);

  /* The sender can reopen what it scanned. */
  int fd = ferry_entry_open(e->source_dir, e->path, &error);
  g_assert_no_error(error);
  char buf[16] = {0};
  g_assert_cmpint(read(fd, buf, sizeof buf), ==, 5);
  g_assert_cmpstr(buf, ==, "hello");
  close(fd);

  static const char *const rest[] = {"d root/b", "f root/b/c.txt 0", "d root/empty"};
  for (guint i = 0; i < G_N_ELEMENTS(rest); i++) {
    g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 1);
    char *line = describe(e);
    g_assert_cmpstr(line, ==, rest[i]);
    g_free(line);
  }
  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 0);
  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 0);

  const FerryScanTotals *t = ferry_scanner_totals(scanner);
  g_assert_cmpuint(t->files, ==, 2);
  g_assert_cmpuint(t->dirs, ==, 3);
  g_assert_cmpuint(t->symlinks, ==, 0);
  g_assert_cmpuint(t->bytes, ==, 5);
  g_assert_cmpuint(t->issues, ==, 0);
  g_assert_cmpuint(t->dirs_read, ==, 3);
  ferry_scanner_free(scanner);
  g_free(a);
  g_free(root);
}

static void
test_root_names(Fixture *fx, gconstpointer data)
{
  put_dir(fx, "photos");
  put_dir(fx, "photos/sub");
  put_file(fx, "photos/sub/b.txt", "xyz");
  char *trailing = g_strconcat(fx->base, "/photos/", NULL);
  char *dotted = g_strconcat(fx->base, "/photos/sub/..", NULL);
  char *file = at(fx, "photos/sub/b.txt");

  const char *p1[] = {trailing, file, NULL};
  char **lines = scan_lines(p1, NULL, NULL);
  static const char *const want1[] = {"d photos", "d photos/sub", "f photos/sub/b.txt 3",
                                      "f b.txt 3", NULL};
  assert_lines(lines, want1);
  g_strfreev(lines);

  const char *p2[] = {dotted, NULL};
  lines = scan_lines(p2, NULL, NULL);
  g_assert_cmpstr(lines[0], ==, "d photos");
  g_strfreev(lines);

  /* "." is the current directory's real name. */
  char *cwd = g_get_current_dir();
  char *sub = at(fx, "photos/sub");
  g_assert_cmpint(chdir(sub), ==, 0);
  const char *p3[] = {".", "./b.txt", NULL};
  GError *error = NULL;
  FerryScanner *scanner = ferry_scanner_new(p3, &error);
  g_assert_no_error(error);
  const FerryEntry *e;
  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 1);
  g_assert_cmpstr(e->path, ==, "sub");
  g_assert_true(g_str_has_suffix(e->source_dir, "/photos"));
  g_assert_true(g_path_is_absolute(e->source_dir));
  ferry_scanner_free(scanner);
  g_assert_cmpint(chdir(cwd), ==, 0);

  const char *p4[] = {"/", NULL};
  g_assert_null(ferry_scanner_new(p4, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_cmpstr(error->message, ==,
                  "refusing to send '/', the whole file system; name the directories in it to "
                  "send instead");
  g_clear_error(&error);

  const char *p5[] = {"", NULL};
  g_assert_null(ferry_scanner_new(p5, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_cmpstr(error->message, ==, "an empty path was given; name a file or directory to scan");
  g_clear_error(&error);

  const char *p6[] = {NULL};
  g_assert_null(ferry_scanner_new(p6, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_clear_error(&error);

  g_free(cwd);
  g_free(sub);
  g_free(trailing);
  g_free(dotted);
  g_free(file);
}

static void
test_duplicate_basenames(Fixture *fx, gconstpointer data)
{
  put_dir(fx, "x");
  put_dir(fx, "y");
  put_dir(fx, "x/data");
  put_file(fx, "y/data", "");
  char *a = at(fx, "x/data"), *b = at(fx, "y/data");
  const char *paths[] = {a, b, NULL};
  GError *error = NULL;

  g_assert_null(ferry_scanner_new(paths, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_AMBIGUOUS);
  char *want = g_strdup_printf("'%s' and '%s' would both be sent as 'data'; rename one, or send "
                               "them in separate transfers",
                               a, b);
  g_assert_cmpstr(error->message, ==, want);
  g_clear_error(&error);
  g_free(want);
  g_free(a);
  g_free(b);
}

static void
test_missing_path(Fixture *fx, gconstpointer data)
{
  put_file(fx, "there", "");
  char *there = at(fx, "there"), *missing = at(fx, "not-there");
  char *missing_parent = at(fx, "no-dir/file");
  const char *paths[] = {there, missing, NULL};
  GError *error = NULL;

  g_assert_null(ferry_scanner_new(paths, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND);
  char *want =
      g_strdup_printf("cannot scan '%s': No such file or directory; check the path", missing);
  g_assert_cmpstr(error->message, ==, want);
  g_clear_error(&error);
  g_free(want);

  const char *paths2[] = {missing_parent, NULL};
  g_assert_null(ferry_scanner_new(paths2, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND);
  g_assert_nonnull(strstr(error->message, missing_parent));
  g_clear_error(&error);
  g_free(there);
  g_free(missing);
  g_free(missing_parent);
}

static void
test_symlink_not_followed(Fixture *fx, gconstpointer data)
{
  put_dir(fx, "root");
  put_dir(fx, "outside");
  put_file(fx, "outside/secret.txt", "do not list me");
  put_symlink(fx, "../outside", "root/to-outside");
  put_symlink(fx, "nowhere/at/all", "root/dangling");
  put_symlink(fx, "root", "toplink");
  char *root = at(fx, "root"), *toplink = at(fx, "toplink");
  const char *paths[] = {root, toplink, NULL};
  FerryScanner *scanner;

  char **lines = scan_lines(paths, &scanner, NULL);
  static const char *const want[] = {"d root", "l root/dangling -> nowhere/at/all",
                                     "l root/to-outside -> ../outside", "l toplink -> root", NULL};
  assert_lines(lines, want);
  const FerryScanTotals *t = ferry_scanner_totals(scanner);
  g_assert_cmpuint(t->symlinks, ==, 3);
  g_assert_cmpuint(t->files, ==, 0);
  g_assert_cmpuint(t->dirs_read, ==, 1);

  /* Reopening through a symlink is refused. */
  GError *error = NULL;
  g_assert_cmpint(ferry_entry_open(fx->base, "root/to-outside/secret.txt", &error), ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
  g_clear_error(&error);

  ferry_scanner_free(scanner);
  g_strfreev(lines);
  g_free(root);
  g_free(toplink);
}

static gboolean
collect_issue(const FerryScanIssue *issue, gpointer user_data)
{
  g_ptr_array_add(user_data, g_strdup_printf("%d %s: %s", issue->kind, issue->path, issue->reason));
  return TRUE;
}

static void
test_fifo_skipped(Fixture *fx, gconstpointer data)
{
  put_dir(fx, "root");
  put_file(fx, "root/a", "1");
  put_file(fx, "root/z", "2");
  char *fifo = at(fx, "root/pipe"), *root = at(fx, "root");
  g_assert_cmpint(mkfifo(fifo, 0644), ==, 0);
  const char *paths[] = {root, NULL};
  GError *error = NULL;
  GPtrArray *seen = g_ptr_array_new_with_free_func(g_free);

  FerryScanner *scanner = ferry_scanner_new(paths, &error);
  g_assert_no_error(error);
  ferry_scanner_set_issue_func(scanner, collect_issue, seen);
  const FerryEntry *e;
  GPtrArray *lines = g_ptr_array_new_with_free_func(g_free);
  int rc;
  while ((rc = ferry_scanner_next(scanner, &e)) == 1)
    g_ptr_array_add(lines, describe(e));
  g_assert_cmpint(rc, ==, 0);
  g_assert_cmpuint(lines->len, ==, 3);
  g_assert_cmpstr(lines->pdata[2], ==, "f root/z 1");

  guint n;
  const FerryScanIssue *issues = ferry_scanner_issues(scanner, &n);
  g_assert_cmpuint(n, ==, 1);
  g_assert_cmpint(issues[0].kind, ==, FERRY_SCAN_ISSUE_SPECIAL);
  g_assert_cmpint(issues[0].code, ==, FERRY_ERR_INVALID);
  g_assert_cmpstr(issues[0].path, ==, "root/pipe");
  g_assert_cmpstr(issues[0].reason, ==,
                  "is a FIFO (named pipe); only regular files, directories and symlinks are sent, "
                  "so it is skipped");
  g_assert_cmpuint(seen->len, ==, 1);
  g_assert_true(g_str_has_prefix(seen->pdata[0], "0 root/pipe: is a FIFO"));
  g_assert_cmpuint(ferry_scanner_totals(scanner)->issues, ==, 1);
  ferry_scanner_free(scanner);
  g_ptr_array_free(lines, TRUE);
  g_ptr_array_free(seen, TRUE);
  g_free(fifo);
  g_free(root);
}

static gboolean
stop_at_issue(const FerryScanIssue *issue, gpointer user_data)
{
  return FALSE;
}

static void
test_issue_can_stop(Fixture *fx, gconstpointer data)
{
  put_dir(fx, "root");
  put_file(fx, "root/z", "2");
  char *fifo = at(fx, "root/pipe"), *root = at(fx, "root");
  g_assert_cmpint(mkfifo(fifo, 0644), ==, 0);
  const char *paths[] = {root, NULL};
  const FerryEntry *e;

  FerryScanner *scanner = ferry_scanner_new(paths, NULL);
  ferry_scanner_set_issue_func(scanner, stop_at_issue, NULL);
  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 1);
  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, FERRY_ERR_INVALID);
  g_assert_null(e);
  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, FERRY_ERR_INVALID);
  ferry_scanner_free(scanner);
  g_free(fifo);
  g_free(root);
}

static void
test_bad_names_skipped(Fixture *fx, gconstpointer data)
{
  put_dir(fx, "root");
  put_file(fx, "root/back\\slash", "");
  put_file(fx, "root/ctl\x01name", "");
  put_file(fx, "root/latin1-caf\xe9", "");
  put_dir(fx, "root/bad\\dir");
  put_file(fx, "root/bad\\dir/inside", "");
  put_file(fx, "root/fine", "");
  char *root = at(fx, "root");
  const char *paths[] = {root, NULL};
  FerryScanner *scanner;

  char **lines = scan_lines(paths, &scanner, NULL);
  static const char *const want[] = {"d root", "f root/fine 0", NULL};
  assert_lines(lines, want);
  guint n;
  const FerryScanIssue *issues = ferry_scanner_issues(scanner, &n);
  g_assert_cmpuint(n, ==, 4);
  for (guint i = 0; i < n; i++)
    g_assert_cmpint(issues[i].kind, ==, FERRY_SCAN_ISSUE_BAD_NAME);
  /* In name order: "back\\slash", "bad\\dir", "ctl\x01name", "latin1-caf\xe9". */
  g_assert_cmpstr(issues[0].path, ==, "root/back\\slash");
  g_assert_cmpint(issues[0].code, ==, FERRY_ERR_UNSAFE_PATH);
  g_assert_cmpstr(issues[0].reason, ==,
                  "path contains a backslash; receivers refuse such a name, rename it to send it");
  g_assert_cmpstr(issues[1].path, ==, "root/bad\\dir");
  g_assert_cmpstr(issues[2].path, ==, "root/ctl\x01name");
  g_assert_cmpint(issues[2].code, ==, FERRY_ERR_INVALID);
  g_assert_cmpstr(issues[3].path, ==, "root/latin1-caf\xe9");
  g_assert_true(g_str_has_prefix(issues[3].reason, "path is not valid UTF-8"));
  ferry_scanner_free(scanner);
  g_strfreev(lines);
  g_free(root);
}

/* Unreadable entries are reported, not fatal. As root, permissions never
 * refuse, so the scan runs in a child that has dropped to nobody
 * (65534); it sends its entries and issues back through a pipe. */
static void
test_unreadable_reported(Fixture *fx, gconstpointer data)
{
  put_dir(fx, "root");
  put_file(fx, "root/ok.txt", "ok");
  put_file(fx, "root/locked.txt", "no");
  put_dir(fx, "root/secret");
  put_file(fx, "root/secret/inside.txt", "hidden");
  char *locked = at(fx, "root/locked.txt"), *secret = at(fx, "root/secret");
  char *root = at(fx, "root");
  g_assert_cmpint(chmod(fx->base, 0755), ==, 0);
  g_assert_cmpint(chmod(locked, 0), ==, 0);
  g_assert_cmpint(chmod(secret, 0), ==, 0);

  int fds[2];
  g_assert_cmpint(pipe(fds), ==, 0);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  g_assert_cmpint(pid, >=, 0);
  if (pid == 0) {
    close(fds[0]);
    if (geteuid() == 0 && (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0))
      _exit(77);
    const char *paths[] = {root, NULL};
    FerryScanner *scanner = ferry_scanner_new(paths, NULL);
    if (scanner == NULL)
      _exit(1);
    GString *out = g_string_new(NULL);
    const FerryEntry *e;
    while (ferry_scanner_next(scanner, &e) == 1) {
      char *line = describe(e);
      g_string_append_printf(out, "%s\n", line);
      g_free(line);
    }
    guint n;
    const FerryScanIssue *issues = ferry_scanner_issues(scanner, &n);
    for (guint i = 0; i < n; i++)
      g_string_append_printf(out, "issue %d %s: %s\n", issues[i].kind, issues[i].path,
                             issues[i].reason);
    gboolean ok = write(fds[1], out->str, out->len) == (ssize_t)out->len;
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  GString *got = g_string_new(NULL);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0)
    g_string_append_len(got, buf, n);
  close(fds[0]);
  int status;
  g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
  chmod(secret, 0755);
  chmod(locked, 0644);
  g_assert_true(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) {
    g_test_skip("cannot drop root privileges to test permission errors");
  } else {
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    g_assert_cmpstr(got->str, ==,
                    "d root\n"
                    "f root/ok.txt 2\n"
                    "d root/secret\n"
                    "issue 1 root/locked.txt: cannot be read: Permission denied; skipped (check "
                    "its permissions)\n"
                    "issue 1 root/secret: cannot open directory: Permission denied; its contents "
                    "are skipped (check its permissions)\n");
  }
  g_string_free(got, TRUE);
  g_free(locked);
  g_free(secret);
  g_free(root);
}

static void
test_deterministic_order(Fixture *fx, gconstpointer data)
{
  /* Created in an order unlike the expected one. */
  static const char *const files[] = {"root/zeta",
                                      "root/B",
                                      "root/a.txt",
                                      "root/_under",
                                      "root/a/x",
                                      "root/a-b",
                                      "root/\xc3\xa9t\xc3\xa9",
                                      "root/a/A",
                                      "root/Z/1"};
  put_dir(fx, "root");
  put_dir(fx, "root/a");
  put_dir(fx, "root/Z");
  for (guint i = 0; i < G_N_ELEMENTS(files); i++)
    put_file(fx, files[i], "");
  char *root = at(fx, "root");
  const char *paths[] = {root, NULL};

  char **first = scan_lines(paths, NULL, NULL);
  /* Bytewise: "B" < "Z" < "_under" < "a" < "a-b" < "a.txt" < "zeta" <
   * "\xc3..." (a prefix sorts first), each directory's contents right
   * after it. */
  static const char *const want[] = {"d root",
                                     "f root/B 0",
                                     "d root/Z",
                                     "f root/Z/1 0",
                                     "f root/_under 0",
                                     "d root/a",
                                     "f root/a/A 0",
                                     "f root/a/x 0",
                                     "f root/a-b 0",
                                     "f root/a.txt 0",
                                     "f root/zeta 0",
                                     "f root/\xc3\xa9t\xc3\xa9 0",
                                     NULL};
  assert_lines(first, want);
  char **second = scan_lines(paths, NULL, NULL);
  assert_lines(second, (const char *const *)first);
  g_strfreev(first);
  g_strfreev(second);
  g_free(root);
}

static void
test_deep_tree(Fixture *fx, gconstpointer data)
{
  GString *rel = g_string_new("deep");
  GPtrArray *want = g_ptr_array_new_with_free_func(g_free);
  put_dir(fx, rel->str);
  g_ptr_array_add(want, g_strdup("d deep"));
  for (int level = 1; level <= 10; level++) {
    char *file = g_strdup_printf("%s/file%d", rel->str, level);
    put_file(fx, file, "x");
    g_string_append_printf(rel, "/level%d", level);
    put_dir(fx, rel->str);
    g_ptr_array_add(want, g_strdup_printf("f %s 1", file));
    g_ptr_array_add(want, g_strdup_printf("d %s", rel->str));
    g_free(file);
  }
  g_ptr_array_add(want, NULL);
  char *root = at(fx, "deep");
  const char *paths[] = {root, NULL};
  FerryScanner *scanner;

  char **lines = scan_lines(paths, &scanner, NULL);
  assert_lines(lines, (const char *const *)want->pdata);
  g_assert_cmpuint(ferry_scanner_totals(scanner)->dirs, ==, 11);
  g_assert_cmpuint(ferry_scanner_totals(scanner)->files, ==, 10);
  ferry_scanner_free(scanner);
  g_strfreev(lines);
  g_ptr_array_free(want, TRUE);
  g_string_free(rel, TRUE);
  g_free(root);
}

/* Pathological: 20,000 tiny files, 10,000 of them in one directory and
 * the rest spread over 100 directories (bench-manifest scans 100,000; the
 * test stays quick under ASan on a busy machine). Checks every one is
 * listed once, in order, with the right totals. */
static void
test_many_files(Fixture *fx, gconstpointer data)
{
  const guint big = 10000, dirs = 100, per_dir = 100;
  char *root = at(fx, "many");
  char *flat = at(fx, "many/flat");
  g_assert_cmpint(g_mkdir(root, 0755), ==, 0);
  g_assert_cmpint(g_mkdir(flat, 0755), ==, 0);
  int flatfd = open(flat, O_RDONLY | O_DIRECTORY);
  for (guint i = 0; i < big; i++) {
    char name[32];
    g_snprintf(name, sizeof name, "f%06u", (i * 7919u) % big);
    int fd = openat(flatfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
    g_assert_cmpint(fd, >=, 0);
    close(fd);
  }
  close(flatfd);
  for (guint d = 0; d < dirs; d++) {
    char *dir = g_strdup_printf("%s/d%03u", root, d);
    g_assert_cmpint(g_mkdir(dir, 0755), ==, 0);
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    for (guint i = 0; i < per_dir; i++) {
      char name[32];
      g_snprintf(name, sizeof name, "%u.dat", i);
      int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
      g_assert_cmpint(write(fd, "x", 1), ==, 1);
      close(fd);
    }
    close(dirfd);
    g_free(dir);
  }

  const char *paths[] = {root, NULL};
  FerryScanner *scanner = ferry_scanner_new(paths, NULL);
  const FerryEntry *e;
  guint n_entries = 0;
  char *prev = g_strdup("");
  guint prev_depth = 0;
  while (ferry_scanner_next(scanner, &e) == 1) {
    n_entries++;
    /* Siblings in bytewise order: with equal depth, paths ascend. */
    if (e->depth == prev_depth && e->depth == 2)
      g_assert_cmpint(strcmp(prev, e->path), <, 0);
    g_free(prev);
    prev = g_strdup(e->path);
    prev_depth = e->depth;
  }
  const FerryScanTotals *t = ferry_scanner_totals(scanner);
  g_assert_cmpuint(t->files, ==, big + dirs * per_dir);
  g_assert_cmpuint(t->dirs, ==, 1 + 1 + dirs);
  g_assert_cmpuint(t->bytes, ==, dirs * per_dir);
  g_assert_cmpuint(n_entries, ==, t->files + t->dirs);
  ferry_scanner_free(scanner);
  g_free(prev);
  g_free(root);
  g_free(flat);
}

/* The scan is lazy: a directory's listing is read only when the walk gets
 * there, after the entries before it have been handed out. Proven two
 * ways: the count of listings read, and a file created in a directory
 * after the scan started but before the walk reached it is listed. */
static void
test_lazy(Fixture *fx, gconstpointer data)
{
  put_dir(fx, "root");
  put_dir(fx, "root/a");
  put_file(fx, "root/a/x", "");
  put_dir(fx, "root/b");
  char *root = at(fx, "root");
  const char *paths[] = {root, NULL};
  FerryScanner *scanner = ferry_scanner_new(paths, NULL);
  const FerryScanTotals *t = ferry_scanner_totals(scanner);
  const FerryEntry *e;

  g_assert_cmpuint(t->dirs_read, ==, 0);
  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 1);
  g_assert_cmpstr(e->path, ==, "root");
  g_assert_cmpuint(t->dirs_read, ==, 0);
  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 1);
  g_assert_cmpstr(e->path, ==, "root/a");
  g_assert_cmpuint(t->dirs_read, ==, 1);

  /* root/b has not been read yet: what appears in it now is listed. */
  put_file(fx, "root/b/late", "");
  GPtrArray *rest = g_ptr_array_new_with_free_func(g_free);
  while (ferry_scanner_next(scanner, &e) == 1)
    g_ptr_array_add(rest, describe(e));
  g_ptr_array_add(rest, NULL);
  static const char *const want[] = {"f root/a/x 0", "d root/b", "f root/b/late 0", NULL};
  assert_lines((char **)rest->pdata, want);
  g_assert_cmpuint(t->dirs_read, ==, 3);
  ferry_scanner_free(scanner);
  g_ptr_array_free(rest, TRUE);
  g_free(root);
}

/* A directory swapped for a symlink between being listed as an entry and
 * being opened is reported, and what the symlink points at is not read. */
static void
test_dir_swapped_for_symlink(Fixture *fx, gconstpointer data)
{
  put_dir(fx, "root");
  put_dir(fx, "root/d");
  put_file(fx, "root/d/mine", "");
  put_dir(fx, "elsewhere");
  put_file(fx, "elsewhere/secret", "");
  char *root = at(fx, "root"), *d = at(fx, "root/d"), *moved = at(fx, "moved");
  const char *paths[] = {root, NULL};
  FerryScanner *scanner = ferry_scanner_new(paths, NULL);
  const FerryEntry *e;

  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 1);
  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 1);
  g_assert_cmpstr(e->path, ==, "root/d");
  g_assert_cmpint(rename(d, moved), ==, 0);
  put_symlink(fx, "../elsewhere", "root/d");
  g_assert_cmpint(ferry_scanner_next(scanner, &e), ==, 0);

  guint n;
  const FerryScanIssue *issues = ferry_scanner_issues(scanner, &n);
  g_assert_cmpuint(n, ==, 1);
  g_assert_cmpint(issues[0].kind, ==, FERRY_SCAN_ISSUE_CHANGED);
  g_assert_cmpstr(issues[0].path, ==, "root/d");
  g_assert_cmpstr(issues[0].reason, ==,
                  "directory was replaced during the scan (by a symlink or a file); its contents "
                  "are skipped");
  ferry_scanner_free(scanner);
  g_free(root);
  g_free(d);
  g_free(moved);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
#define ADD(name, func)                                                                            \
  g_test_add("/core/manifest/" name, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD("files-and-dirs", test_files_and_dirs);
  ADD("root-names", test_root_names);
  ADD("duplicate-basenames", test_duplicate_basenames);
  ADD("missing-path", test_missing_path);
  ADD("symlink-not-followed", test_symlink_not_followed);
  ADD("fifo-skipped", test_fifo_skipped);
  ADD("issue-can-stop", test_issue_can_stop);
  ADD("bad-names-skipped", test_bad_names_skipped);
  ADD("unreadable-reported", test_unreadable_reported);
  ADD("deterministic-order", test_deterministic_order);
  ADD("deep-tree", test_deep_tree);
  ADD("many-files", test_many_files);
  ADD("lazy", test_lazy);
  ADD("dir-swapped-for-symlink", test_dir_swapped_for_symlink);
#undef ADD
  return g_test_run();
}
