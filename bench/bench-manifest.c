/* bench-manifest: how fast ferry's scanner lists a tree of many small
 * files, next to find(1) doing the same work (stat of every entry, one
 * line each) on the same tree in the same run.
 *
 *   bench-manifest [N_FILES]    (default 100000, in 100 directories)
 *
 * Builds the tree under /tmp, scans it once to warm the cache, then takes
 * the median of 5 timed runs of each and prints files/s and the ratio.
 * find's time includes starting the process and formatting its lines
 * (about a millisecond and a little CPU); the scanner's is the walk. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <ferry/manifest.h>

#define RUNS 5

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove(path);
}

static void
make_tree(const char *root, guint n_files, guint n_dirs)
{
  for (guint d = 0; d < n_dirs; d++) {
    char *dir = g_strdup_printf("%s/dir%03u", root, d);
    if (g_mkdir(dir, 0755) < 0)
      g_error("cannot create %s: %s", dir, g_strerror(errno));
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
    for (guint i = d; i < n_files; i += n_dirs) {
      char name[32];
      g_snprintf(name, sizeof name, "file%07u.txt", i);
      int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
      if (fd < 0 || write(fd, name, 8) != 8)
        g_error("cannot create %s/%s: %s", dir, name, g_strerror(errno));
      close(fd);
    }
    close(dirfd);
    g_free(dir);
  }
}

static double
time_scan(const char *root, guint64 *files)
{
  const char *paths[] = {root, NULL};
  GError *error = NULL;
  gint64 start = g_get_monotonic_time();
  FerryScanner *scanner = ferry_scanner_new(paths, &error);
  if (scanner == NULL)
    g_error("%s", error->message);
  const FerryEntry *entry;
  while (ferry_scanner_next(scanner, &entry) == 1)
    ;
  double secs = (g_get_monotonic_time() - start) / 1e6;
  *files = ferry_scanner_totals(scanner)->files;
  ferry_scanner_free(scanner);
  return secs;
}

static double
time_find(const char *root)
{
  const char *argv[] = {"find", root, "-printf", "%s %T@ %m %p\n", NULL};
  GError *error = NULL;
  int status;
  int devnull = open("/dev/null", O_WRONLY);
  gint64 start = g_get_monotonic_time();
  GPid pid;
  if (!g_spawn_async_with_fds(NULL, (char **)argv, NULL,
                              G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, -1,
                              devnull, -1, &error))
    g_error("cannot run find: %s", error->message);
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    g_error("find failed");
  double secs = (g_get_monotonic_time() - start) / 1e6;
  g_spawn_close_pid(pid);
  close(devnull);
  return secs;
}

static int
compare_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double
median(double *v)
{
  qsort(v, RUNS, sizeof v[0], compare_double);
  return v[RUNS / 2];
}

int
main(int argc, char **argv)
{
  guint n_files = argc > 1 ? (guint)strtoul(argv[1], NULL, 10) : 100000;
  GError *error = NULL;
  char *base = g_dir_make_tmp("ferry-bench-manifest-XXXXXX", &error);
  if (base == NULL)
    g_error("%s", error->message);
  char *root = g_build_filename(base, "tree", NULL);
  g_mkdir(root, 0755);

  printf("creating %u files in 100 directories under %s ...\n", n_files, base);
  make_tree(root, n_files, 100);

  guint64 files = 0;
  double ours[RUNS], theirs[RUNS];
  time_scan(root, &files);
  time_find(root);
  for (int i = 0; i < RUNS; i++) {
    ours[i] = time_scan(root, &files);
    theirs[i] = time_find(root);
  }
  if (files != n_files)
    g_error("scanner found %" G_GUINT64_FORMAT " files, expected %u", files, n_files);
  double m_ours = median(ours), m_theirs = median(theirs);
  printf("ferry scanner: %8.1f ms  %10.0f files/s  (median of %d)\n", m_ours * 1e3,
         n_files / m_ours, RUNS);
  printf("find -printf:  %8.1f ms  %10.0f files/s  (median of %d)\n", m_theirs * 1e3,
         n_files / m_theirs, RUNS);
  printf("ratio: ferry is %.2fx the speed of find\n", m_theirs / m_ours);

  nftw(base, remove_one, 16, FTW_DEPTH | FTW_PHYS);
  g_free(root);
  g_free(base);
  return 0;
}
