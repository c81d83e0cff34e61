/* Manifest: a lazy, deterministic scan of the sender's paths. See
 * manifest.h for the contract. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ferry/manifest.h>
#include "core/safepath.h"

#define DENTS_BUF_SIZE (64 * 1024)

typedef struct {
  char *arg;        /* as given on the command line, for messages */
  char *name;       /* the root's name: the basename of its real path */
  char *source_dir; /* absolute directory holding it */
} Root;

/* One directory being listed: its names were read and sorted when it was
 * opened; next is the one to stat on the next step. */
typedef struct {
  int fd;
  GPtrArray *names; /* sorted; the strings live in chunk */
  GStringChunk *chunk;
  guint next;
  gsize prefix_len; /* bytes of scanner->path that belong to this directory, with its '/' */
  guint depth;      /* depth of the entries it lists */
  guint root;
} Frame;

struct FerryScanner {
  Root *roots;
  guint n_roots;
  guint next_root;
  GArray *stack; /* of Frame, the innermost last */
  GString *path;
  char link_target[PATH_MAX + 1];
  char *dents; /* getdents64 buffer */
  FerryEntry entry;
  /* The entry just returned is a directory whose listing is read on the
   * next call: this is what makes the scan lazy. */
  gboolean descend;
  dev_t descend_dev;
  ino_t descend_ino;
  FerryScanTotals totals;
  GArray *issues; /* of FerryScanIssue, strings owned */
  FerryScanIssueFunc issue_func;
  gpointer issue_data;
  int stopped; /* negative code once an issue function said stop */
};

static void
frame_clear(Frame *frame)
{
  if (frame->fd >= 0)
    close(frame->fd);
  g_ptr_array_free(frame->names, TRUE);
  g_string_chunk_free(frame->chunk);
}

static void
issue_clear(gpointer data)
{
  FerryScanIssue *issue = data;
  g_free((char *)issue->path);
  g_free((char *)issue->reason);
}

/* Records an issue about the current scanner->path and tells the issue
 * function. Returns 0 to go on, or the issue's code when the function
 * chose to stop (and remembers that). */
static int
add_issue(FerryScanner *scanner, FerryScanIssueKind kind, int code, char *reason)
{
  FerryScanIssue issue = {kind, code, g_strndup(scanner->path->str, scanner->path->len), reason};
  g_array_append_val(scanner->issues, issue);
  scanner->totals.issues++;
  if (scanner->issue_func != NULL && !scanner->issue_func(&issue, scanner->issue_data)) {
    scanner->stopped = code;
    return code;
  }
  return 0;
}

/* ---- the command-line arguments ---- */

static gboolean
root_init(Root *root, const char *arg, GError **error)
{
  char *copy = g_strdup(arg);
  gsize len = strlen(copy);
  char *real = NULL, *name = NULL, *dir = NULL;
  gboolean ok = FALSE;
  struct stat st;

  if (len == 0) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "an empty path was given; name a file or directory to scan");
    goto out;
  }
  while (len > 1 && copy[len - 1] == '/')
    copy[--len] = '\0';
  const char *slash = strrchr(copy, '/');
  const char *base = slash != NULL ? slash + 1 : copy;

  if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(copy, "/") == 0) {
    /* "." has no name of its own: use the real directory's. */
    real = realpath(copy, NULL);
    if (real == NULL)
      goto os_error;
    if (strcmp(real, "/") == 0) {
      ferry_set_error(error, FERRY_ERR_INVALID,
                      "refusing to send '%s', the whole file system; name the directories in it "
                      "to send instead",
                      arg);
      goto out;
    }
    name = g_path_get_basename(real);
    dir = g_path_get_dirname(real);
  } else {
    char *parent = slash == NULL   ? g_strdup(".")
                   : slash == copy ? g_strdup("/")
                                   : g_strndup(copy, (gsize)(slash - copy));
    real = realpath(parent, NULL);
    g_free(parent);
    if (real == NULL)
      goto os_error;
    name = g_strdup(base);
    dir = g_strdup(real);
  }

  char *full = g_build_filename(dir, name, NULL);
  int rc = fstatat(AT_FDCWD, full, &st, AT_SYMLINK_NOFOLLOW);
  g_free(full);
  if (rc < 0)
    goto os_error;

  const char *reason;
  rc = ferry_path_validate(name, strlen(name), &reason);
  if (rc < 0) {
    char *shown = g_strescape(name, NULL);
    ferry_set_error(error, rc,
                    "cannot send '%s': its name '%s' would be refused by a receiver (%s); "
                    "rename it first",
                    arg, shown, reason);
    g_free(shown);
    goto out;
  }
  root->arg = g_strdup(arg);
  root->name = g_steal_pointer(&name);
  root->source_dir = g_steal_pointer(&dir);
  ok = TRUE;
  goto out;

os_error:;
  int e = errno;
  ferry_set_error(error, e == ENOENT ? FERRY_ERR_NOT_FOUND : FERRY_ERR_IO,
                  "cannot scan '%s': %s; check the path", arg, g_strerror(e));
out:
  free(real);
  g_free(copy);
  g_free(name);
  g_free(dir);
  return ok;
}

FerryScanner *
ferry_scanner_new(const char *const *paths, GError **error)
{
  guint n = paths != NULL ? g_strv_length((char **)paths) : 0;
  if (n == 0) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "nothing to scan: name at least one file or directory");
    return NULL;
  }

  FerryScanner *scanner = g_new0(FerryScanner, 1);
  scanner->roots = g_new0(Root, n);
  scanner->stack = g_array_new(FALSE, FALSE, sizeof(Frame));
  scanner->issues = g_array_new(FALSE, FALSE, sizeof(FerryScanIssue));
  g_array_set_clear_func(scanner->issues, issue_clear);
  scanner->path = g_string_sized_new(256);

  GHashTable *names = g_hash_table_new(g_str_hash, g_str_equal);
  gboolean ok = TRUE;
  for (guint i = 0; i < n && ok; i++) {
    ok = root_init(&scanner->roots[i], paths[i], error);
    if (!ok)
      break;
    scanner->n_roots++;
    const Root *earlier = g_hash_table_lookup(names, scanner->roots[i].name);
    if (earlier != NULL) {
      ferry_set_error(error, FERRY_ERR_AMBIGUOUS,
                      "'%s' and '%s' would both be sent as '%s'; rename one, or send them in "
                      "separate transfers",
                      earlier->arg, paths[i], earlier->name);
      ok = FALSE;
    }
    g_hash_table_insert(names, scanner->roots[i].name, &scanner->roots[i]);
  }
  g_hash_table_destroy(names);
  if (!ok) {
    ferry_scanner_free(scanner);
    return NULL;
  }
  return scanner;
}

void
ferry_scanner_free(FerryScanner *scanner)
{
  if (scanner == NULL)
    return;
  for (guint i = 0; i < scanner->stack->len; i++)
    frame_clear(&g_array_index(scanner->stack, Frame, i));
  g_array_free(scanner->stack, TRUE);
  for (guint i = 0; i < scanner->n_roots; i++) {
    g_free(scanner->roots[i].arg);
    g_free(scanner->roots[i].name);
    g_free(scanner->roots[i].source_dir);
  }
  g_free(scanner->roots);
  g_array_free(scanner->issues, TRUE);
  g_string_free(scanner->path, TRUE);
  g_free(scanner->dents);
  g_free(scanner);
}

void
ferry_scanner_set_issue_func(FerryScanner *scanner, FerryScanIssueFunc func, gpointer user_data)
{
  scanner->issue_func = func;
  scanner->issue_data = user_data;
}

const FerryScanTotals *
ferry_scanner_totals(const FerryScanner *scanner)
{
  return &scanner->totals;
}

const FerryScanIssue *
ferry_scanner_issues(const FerryScanner *scanner, guint *n_issues)
{
  *n_issues = scanner->issues->len;
  return (const FerryScanIssue *)(void *)scanner->issues->data;
}

/* ---- the walk ---- */

static int
compare_names(gconstpointer a, gconstpointer b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static Frame *
frame_push(FerryScanner *scanner, int fd, gsize prefix_len, guint depth, guint root)
{
  Frame frame = {fd, g_ptr_array_new(), g_string_chunk_new(1024), 0, prefix_len, depth, root};
  g_array_append_val(scanner->stack, frame);
  return &g_array_index(scanner->stack, Frame, scanner->stack->len - 1);
}

/* The root's frame lists its parent directory with the root's name as the
 * only name, so a root is examined exactly like any other entry. */
static int
push_root(FerryScanner *scanner)
{
  guint index = scanner->next_root++;
  const Root *root = &scanner->roots[index];

  g_string_assign(scanner->path, root->name);
  int fd = open(root->source_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return add_issue(scanner, e == ENOENT ? FERRY_SCAN_ISSUE_CHANGED : FERRY_SCAN_ISSUE_UNREADABLE,
                     e == ENOENT ? FERRY_ERR_NOT_FOUND : FERRY_ERR_IO,
                     g_strdup_printf("cannot open its directory '%s': %s; skipped",
                                     root->source_dir, g_strerror(e)));
  }
  Frame *frame = frame_push(scanner, fd, 0, 0, index);
  g_ptr_array_add(frame->names, g_string_chunk_insert(frame->chunk, root->name));
  return 0;
}

/* Reads every name of the directory fd (but "." and "..") into frame and
 * sorts them bytewise. getdents64 straight into one reused buffer: no
 * DIR stream to allocate per directory, and fd stays usable for the
 * fstatat calls that follow. Returns 0 or an errno value. */
static int
read_names(FerryScanner *scanner, Frame *frame)
{
  if (scanner->dents == NULL)
    scanner->dents = g_malloc(DENTS_BUF_SIZE);
  for (;;) {
    ssize_t n = getdents64(frame->fd, scanner->dents, DENTS_BUF_SIZE);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      g_ptr_array_sort(frame->names, compare_names);
      return e;
    }
    if (n == 0)
      break;
    for (ssize_t off = 0; off < n;) {
      struct dirent64 *d = (struct dirent64 *)(void *)(scanner->dents + off);
      off += d->d_reclen;
      const char *name = d->d_name;
      if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))
        continue;
      g_ptr_array_add(frame->names, g_string_chunk_insert(frame->chunk, name));
    }
  }
  g_ptr_array_sort(frame->names, compare_names);
  return 0;
}

/* Opens and lists the directory just returned as an entry (the last name
 * taken from the innermost frame), checking it is still the directory
 * that was stat'ed: O_NOFOLLOW refuses a symlink put in its place, and
 * the device and inode numbers catch any other swap. */
static int
descend(FerryScanner *scanner)
{
  Frame *parent = &g_array_index(scanner->stack, Frame, scanner->stack->len - 1);
  const char *name = g_ptr_array_index(parent->names, parent->next - 1);
  guint depth = parent->depth + 1, root = parent->root;
  struct stat st;

  g_string_truncate(scanner->path, parent->prefix_len);
  g_string_append(scanner->path, name);
  int fd = openat(parent->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT)
      return add_issue(scanner, FERRY_SCAN_ISSUE_CHANGED, FERRY_ERR_NOT_FOUND,
                       g_strdup("directory disappeared during the scan; its contents are skipped"));
    if (e == ELOOP || e == ENOTDIR)
      return add_issue(scanner, FERRY_SCAN_ISSUE_CHANGED, FERRY_ERR_UNSAFE_PATH,
                       g_strdup("directory was replaced during the scan (by a symlink or a file); "
                                "its contents are skipped"));
    return add_issue(scanner, FERRY_SCAN_ISSUE_UNREADABLE, FERRY_ERR_IO,
                     g_strdup_printf("cannot open directory: %s; its contents are skipped (check "
                                     "its permissions)",
                                     g_strerror(e)));
  }
  if (fstat(fd, &st) < 0 || st.st_dev != scanner->descend_dev ||
      st.st_ino != scanner->descend_ino) {
    close(fd);
    return add_issue(scanner, FERRY_SCAN_ISSUE_CHANGED, FERRY_ERR_UNSAFE_PATH,
                     g_strdup("directory was replaced during the scan; its contents are skipped"));
  }
  g_string_append_c(scanner->path, '/');
  Frame *frame = frame_push(scanner, fd, scanner->path->len, depth, root);
  scanner->totals.dirs_read++;
  int e = read_names(scanner, frame);
  if (e != 0)
    return add_issue(
        scanner, FERRY_SCAN_ISSUE_UNREADABLE, FERRY_ERR_IO,
        g_strdup_printf("cannot list directory: %s; its contents are skipped", g_strerror(e)));
  return 0;
}

static const char *
special_reason(mode_t mode)
{
  if (S_ISFIFO(mode))
    return "is a FIFO (named pipe)";
  if (S_ISSOCK(mode))
    return "is a socket";
  if (S_ISCHR(mode))
    return "is a character device";
  if (S_ISBLK(mode))
    return "is a block device";
  return "is not a regular file";
}

/* Examines name in frame and fills scanner->entry. Returns 1 for an entry,
 * 0 when it was skipped as an issue, or a negative code to stop. */
static int
examine(FerryScanner *scanner, Frame *frame, const char *name)
{
  struct stat st;
  const char *reason;
  FerryEntry *entry = &scanner->entry;

  g_string_truncate(scanner->path, frame->prefix_len);
  g_string_append(scanner->path, name);

  /* A name every receiver would refuse is better reported here, once,
   * than discovered by each receiver. Roots were checked already. */
  if (frame->depth > 0) {
    int rc = ferry_path_validate(name, strlen(name), &reason);
    if (rc == 0 && scanner->path->len > FERRY_PATH_MAX) {
      rc = FERRY_ERR_TOO_LONG;
      reason = "path is longer than 4096 bytes";
    }
    if (rc < 0)
      return add_issue(
          scanner, FERRY_SCAN_ISSUE_BAD_NAME, rc,
          g_strdup_printf("%s; receivers refuse such a name, rename it to send it", reason));
  }

  if (fstatat(frame->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    int e = errno;
    if (e == ENOENT)
      return add_issue(scanner, FERRY_SCAN_ISSUE_CHANGED, FERRY_ERR_NOT_FOUND,
                       g_strdup("disappeared during the scan"));
    return add_issue(scanner, FERRY_SCAN_ISSUE_UNREADABLE, FERRY_ERR_IO,
                     g_strdup_printf("cannot read its attributes: %s", g_strerror(e)));
  }

  entry->link_target = NULL;
  entry->size = 0;
  if (S_ISREG(st.st_mode)) {
    /* Mode bits cannot tell (ACLs, capabilities); the kernel can, for
     * about a tenth of the cost of the fstatat. */
    if (faccessat(frame->fd, name, R_OK, AT_EACCESS) < 0) {
      int e = errno;
      return add_issue(
          scanner, FERRY_SCAN_ISSUE_UNREADABLE, FERRY_ERR_IO,
          g_strdup_printf("cannot be read: %s; skipped (check its permissions)", g_strerror(e)));
    }
    entry->type = FERRY_ENTRY_FILE;
    entry->size = (guint64)st.st_size;
    scanner->totals.files++;
    scanner->totals.bytes += entry->size;
  } else if (S_ISDIR(st.st_mode)) {
    entry->type = FERRY_ENTRY_DIR;
    scanner->descend = TRUE;
    scanner->descend_dev = st.st_dev;
    scanner->descend_ino = st.st_ino;
    scanner->totals.dirs++;
  } else if (S_ISLNK(st.st_mode)) {
    ssize_t n = readlinkat(frame->fd, name, scanner->link_target, PATH_MAX);
    if (n < 0) {
      int e = errno;
      return add_issue(scanner, FERRY_SCAN_ISSUE_UNREADABLE, FERRY_ERR_IO,
                       g_strdup_printf("cannot read the symlink: %s", g_strerror(e)));
    }
    scanner->link_target[n] = '\0';
    entry->type = FERRY_ENTRY_SYMLINK;
    entry->link_target = scanner->link_target;
    scanner->totals.symlinks++;
  } else {
    return add_issue(scanner, FERRY_SCAN_ISSUE_SPECIAL, FERRY_ERR_INVALID,
                     g_strdup_printf("%s; only regular files, directories and symlinks are sent, "
                                     "so it is skipped",
                                     special_reason(st.st_mode)));
  }
  entry->path = scanner->path->str;
  entry->source_dir = scanner->roots[frame->root].source_dir;
  entry->root = frame->root;
  entry->depth = frame->depth;
  entry->mode = st.st_mode & 07777;
  entry->mtime_ns = (gint64)st.st_mtim.tv_sec * G_GINT64_CONSTANT(1000000000) + st.st_mtim.tv_nsec;
  return 1;
}

int
ferry_scanner_next(FerryScanner *scanner, const FerryEntry **entry_out)
{
  int rc;

  *entry_out = NULL;
  for (;;) {
    if (scanner->stopped < 0)
      return scanner->stopped;
    if (scanner->descend) {
      scanner->descend = FALSE;
      if ((rc = descend(scanner)) < 0)
        return rc;
      continue;
    }
    if (scanner->stack->len == 0) {
      if (scanner->next_root == scanner->n_roots)
        return 0;
      if ((rc = push_root(scanner)) < 0)
        return rc;
      continue;
    }
    Frame *frame = &g_array_index(scanner->stack, Frame, scanner->stack->len - 1);
    if (frame->next == frame->names->len) {
      frame_clear(frame);
      g_array_set_size(scanner->stack, scanner->stack->len - 1);
      continue;
    }
    const char *name = g_ptr_array_index(frame->names, frame->next);
    frame->next++;
    rc = examine(scanner, frame, name);
    if (rc == 1) {
      *entry_out = &scanner->entry;
      return 1;
    }
    if (rc < 0)
      return rc;
  }
}

int
ferry_entry_open(const char *source_dir, const char *path, GError **error)
{
  int dirfd = open(source_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    int e = errno;
    ferry_set_error(error, e == ENOENT ? FERRY_ERR_NOT_FOUND : FERRY_ERR_IO,
                    "cannot open '%s' in '%s': the directory cannot be opened: %s", path,
                    source_dir, g_strerror(e));
    return -1;
  }
  int fd = ferry_openat_beneath(dirfd, path, O_RDONLY, 0, FERRY_BENEATH_NONE, error);
  close(dirfd);
  return fd;
}
