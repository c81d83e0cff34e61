/* Safe paths: validation of peer-supplied relative paths, case-insensitive
 * collision detection, and writes that cannot be redirected by symlinks.
 * See safepath.h for the contracts. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/safepath.h"

static int
refuse(const char **reason, int code, const char *why)
{
  if (reason != NULL)
    *reason = why;
  return code;
}

/* One pass over the bytes checks the structure (components) and the
 * characters together; UTF-8 validity is a second pass, done only when the
 * cheap checks passed. A path that passes cannot name anything outside the
 * directory it is resolved against: it is relative, and every component is
 * an ordinary name (no "..", no "."), so no normalisation is left to do. */
int
ferry_path_validate(const char *path, gsize len, const char **reason)
{
  gsize start = 0;

  if (reason != NULL)
    *reason = NULL;
  if (path == NULL || len == 0)
    return refuse(reason, FERRY_ERR_INVALID, "path is empty");
  if (len > FERRY_PATH_MAX)
    return refuse(reason, FERRY_ERR_TOO_LONG, "path is longer than 4096 bytes");
  if (path[0] == '/')
    return refuse(reason, FERRY_ERR_UNSAFE_PATH, "path is absolute (starts with '/')");

  for (gsize i = 0; i <= len; i++) {
    if (i < len) {
      guchar c = (guchar)path[i];
      if (c == '\0')
        return refuse(reason, FERRY_ERR_INVALID, "path contains a NUL byte");
      if (c < 0x20 || c == 0x7f)
        return refuse(reason, FERRY_ERR_INVALID, "path contains a control character");
      if (c == '\\')
        return refuse(reason, FERRY_ERR_UNSAFE_PATH, "path contains a backslash");
      /* U+0080..U+009F (C1 controls) are encoded as C2 80..C2 9F. */
      if (c == 0xc2 && i + 1 < len && (guchar)path[i + 1] >= 0x80 && (guchar)path[i + 1] <= 0x9f)
        return refuse(reason, FERRY_ERR_INVALID, "path contains a control character");
      if (c != '/')
        continue;
    }
    gsize n = i - start;
    if (n == 0)
      return refuse(reason, FERRY_ERR_UNSAFE_PATH,
                    i == len ? "path ends with '/'" : "path has an empty component ('//')");
    if (n == 1 && path[start] == '.')
      return refuse(reason, FERRY_ERR_UNSAFE_PATH, "path component is '.'");
    if (n == 2 && path[start] == '.' && path[start + 1] == '.')
      return refuse(reason, FERRY_ERR_UNSAFE_PATH, "path component is '..'");
    if (n > FERRY_PATH_NAME_MAX)
      return refuse(reason, FERRY_ERR_TOO_LONG, "a path component is longer than 255 bytes");
    start = i + 1;
  }
  if (!g_utf8_validate_len(path, len, NULL))
    return refuse(reason, FERRY_ERR_INVALID, "path is not valid UTF-8");
  return 0;
}

/* ---- collision set ----
 *
 * A trie of components keyed by their folded form. Each node keeps the
 * original bytes of the path up to itself, so a clash can name the earlier
 * path exactly as the peer sent it. Adding a path only walks nodes that
 * exist and creates nodes below the first missing one; every check happens
 * before the first creation, so a refused path leaves the set unchanged. */

typedef struct PathNode PathNode;
struct PathNode {
  char *path;           /* original bytes of the full path to this node */
  gsize name_off;       /* where this node's own component starts in path */
  GHashTable *children; /* folded component -> PathNode, NULL until needed */
  gboolean is_dir;
  gboolean is_explicit; /* added as a path, not only as someone's parent */
};

struct FerryPathSet {
  PathNode root;
  guint count;
};

static void
path_node_free(gpointer data)
{
  PathNode *node = data;
  if (node->children != NULL)
    g_hash_table_destroy(node->children);
  g_free(node->path);
  g_free(node);
}

/* NFC, then case-fold, then NFC again: folding can decompose characters,
 * and a name must fold to one form however its bytes were composed.
 * Plain ASCII, the common case, skips the Unicode tables. */
static char *
fold_component(const char *name, gsize n)
{
  gboolean ascii = TRUE;
  for (gsize i = 0; i < n && ascii; i++)
    ascii = ((guchar)name[i] & 0x80) == 0;
  if (ascii) {
    char *s = g_strndup(name, n);
    for (gsize i = 0; i < n; i++)
      s[i] = g_ascii_tolower(s[i]);
    return s;
  }
  char *nfc = g_utf8_normalize(name, n, G_NORMALIZE_NFC);
  char *folded = g_utf8_casefold(nfc, -1);
  char *result = g_utf8_normalize(folded, -1, G_NORMALIZE_NFC);
  g_free(nfc);
  g_free(folded);
  return result;
}

FerryPathSet *
ferry_path_set_new(void)
{
  FerryPathSet *set = g_new0(FerryPathSet, 1);
  set->root.is_dir = TRUE;
  return set;
}

void
ferry_path_set_free(FerryPathSet *set)
{
  if (set == NULL)
    return;
  if (set->root.children != NULL)
    g_hash_table_destroy(set->root.children);
  g_free(set);
}

guint
ferry_path_set_size(const FerryPathSet *set)
{
  return set->count;
}

static int
clash(const PathNode *node, const char **other, const char **reason, int code, const char *why)
{
  if (other != NULL)
    *other = node->path;
  return refuse(reason, code, why);
}

int
ferry_path_set_add(FerryPathSet *set, const char *path, gsize len, gboolean is_dir,
                   const char **other, const char **reason)
{
  PathNode *node = &set->root;
  gsize start = 0;

  if (other != NULL)
    *other = NULL;
  int rc = ferry_path_validate(path, len, reason);
  if (rc < 0)
    return rc;

  while (start < len) {
    const char *slash = memchr(path + start, '/', len - start);
    gsize end = slash != NULL ? (gsize)(slash - path) : len;
    gboolean last = slash == NULL;
    gsize n = end - start;
    char *key = fold_component(path + start, n);
    PathNode *child = node->children != NULL ? g_hash_table_lookup(node->children, key) : NULL;

    if (child != NULL) {
      g_free(key);
      gsize child_n = strlen(child->path) - child->name_off;
      if (child_n != n || memcmp(child->path + child->name_off, path + start, n) != 0)
        return clash(child, other, reason, FERRY_ERR_AMBIGUOUS,
                     "name differs only in case or Unicode form from an earlier one");
      if (!last && !child->is_dir)
        return clash(child, other, reason, FERRY_ERR_EXISTS,
                     "a parent directory was listed earlier as a file");
      if (last) {
        if (child->is_explicit)
          return clash(child, other, reason, FERRY_ERR_EXISTS, "path is listed twice");
        if (!is_dir)
          return clash(child, other, reason, FERRY_ERR_EXISTS,
                       "path was used earlier as a directory");
        child->is_explicit = TRUE;
        set->count++;
        return 0;
      }
    } else {
      child = g_new0(PathNode, 1);
      child->path = g_strndup(path, end);
      child->name_off = start;
      child->is_dir = last ? is_dir : TRUE;
      child->is_explicit = last;
      if (node->children == NULL)
        node->children = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, path_node_free);
      g_hash_table_insert(node->children, key, child);
      if (last) {
        set->count++;
        return 0;
      }
    }
    node = child;
    start = end + 1;
  }
  g_assert_not_reached();
}

/* ---- writing beneath a directory ---- */

int
ferry_outdir_open(const char *path, gboolean create, GError **error)
{
  if (create && g_mkdir_with_parents(path, 0777) < 0) {
    int e = errno;
    ferry_set_error(error, FERRY_ERR_IO, "cannot create output directory '%s': %s", path,
                    g_strerror(e));
    return -1;
  }
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT)
      ferry_set_error(error, FERRY_ERR_NOT_FOUND,
                      "output directory '%s' does not exist; create it or name another one", path);
    else if (e == ENOTDIR)
      ferry_set_error(error, FERRY_ERR_EXISTS,
                      "output directory '%s' is not a directory; name a directory", path);
    else
      ferry_set_error(error, FERRY_ERR_IO, "cannot open output directory '%s': %s", path,
                      g_strerror(e));
  }
  return fd;
}

static const char *
describe_type(mode_t mode)
{
  if (S_ISLNK(mode))
    return "a symbolic link";
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISREG(mode))
    return "a regular file";
  if (S_ISFIFO(mode))
    return "a FIFO (named pipe)";
  if (S_ISSOCK(mode))
    return "a socket";
  return "a device";
}

/* Turns a failed openat/mkdirat of the component path[0..end) (named name,
 * in dirfd) into a message that says what is in the way. A symlink is
 * called out as such, because that is the attack this file exists for. */
static void
explain_failure(int dirfd, const char *name, const char *what, const char *path, gsize end, int e,
                GError **error)
{
  struct stat st;

  if ((e == ELOOP || e == ENOTDIR || e == ENXIO || e == EISDIR || e == EEXIST) &&
      fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) {
      ferry_set_error(error, FERRY_ERR_UNSAFE_PATH,
                      "cannot %s '%s': '%.*s' is a symbolic link and ferry never follows symlinks "
                      "inside a transfer's directory; remove the link or choose another directory",
                      what, path, (int)end, path);
      return;
    }
    if (e == EEXIST) {
      ferry_set_error(error, FERRY_ERR_EXISTS,
                      "cannot %s '%s': '%.*s' already exists; move it away or allow overwriting",
                      what, path, (int)end, path);
      return;
    }
    ferry_set_error(error, FERRY_ERR_UNSAFE_PATH,
                    "cannot %s '%s': '%.*s' is %s, not what ferry expected there; move it away",
                    what, path, (int)end, path, describe_type(st.st_mode));
    return;
  }
  if (e == ENOENT)
    ferry_set_error(error, FERRY_ERR_NOT_FOUND, "cannot %s '%s': '%.*s' does not exist", what, path,
                    (int)end, path);
  else
    ferry_set_error(error, FERRY_ERR_IO, "cannot %s '%s': %s", what, path, g_strerror(e));
}

static gboolean
check_path(const char *relpath, const char *what, GError **error)
{
  const char *reason;
  if (relpath == NULL)
    return ferry_set_error(error, FERRY_ERR_INVALID, "cannot %s a path that is missing", what);
  int rc = ferry_path_validate(relpath, strlen(relpath), &reason);
  if (rc == 0)
    return TRUE;
  char *shown = g_strescape(relpath, NULL);
  ferry_set_error(error, rc, "cannot %s '%s': %s", what, shown, reason);
  g_free(shown);
  return FALSE;
}

/* Walks the parent components of relpath (already validated) from rootfd,
 * one openat(O_NOFOLLOW|O_DIRECTORY) each, creating missing ones when
 * mkdirs is TRUE. Returns the fd of the last parent -- rootfd itself when
 * relpath has a single component, so close it only if it differs -- and
 * sets *last_off to where the last component starts; -1 on error. */
static int
open_parent(int rootfd, const char *relpath, gboolean mkdirs, mode_t dmode, const char *what,
            gsize *last_off, GError **error)
{
  int dirfd = rootfd;
  gsize start = 0;
  const char *slash;
  char name[FERRY_PATH_NAME_MAX + 1];

  while ((slash = strchr(relpath + start, '/')) != NULL) {
    gsize end = (gsize)(slash - relpath);
    memcpy(name, relpath + start, end - start);
    name[end - start] = '\0';

    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && mkdirs) {
      if (mkdirat(dirfd, name, dmode) == 0 || errno == EEXIST)
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
      explain_failure(dirfd, name, what, relpath, end, errno, error);
      if (dirfd != rootfd)
        close(dirfd);
      return -1;
    }
    if (dirfd != rootfd)
      close(dirfd);
    dirfd = fd;
    start = end + 1;
  }
  *last_off = start;
  return dirfd;
}

static void
close_parent(int dirfd, int rootfd)
{
  if (dirfd >= 0 && dirfd != rootfd)
    close(dirfd);
}

/* O_NONBLOCK is added so that a FIFO planted where a file should be is
 * opened (and then refused) instead of blocking the receiver forever; it
 * is cleared again before the fd is returned. A file with other hard links
 * is refused for writing: it could be someone else's file linked into the
 * output directory. O_TRUNC is therefore held back until the checks have
 * passed, or opening alone would already have emptied that file. */
int
ferry_openat_beneath(int rootfd, const char *relpath, int flags, mode_t mode, FerryBeneathFlags how,
                     GError **error)
{
  gsize last;
  struct stat st;

  if (!check_path(relpath, "open", error))
    return -1;
  int dirfd =
      open_parent(rootfd, relpath, (how & FERRY_BENEATH_MKDIRS) != 0, 0777, "open", &last, error);
  if (dirfd < 0)
    return -1;

  int open_flags = (flags & ~O_TRUNC) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
  int fd = openat(dirfd, relpath + last, open_flags, mode);
  if (fd < 0) {
    explain_failure(dirfd, relpath + last, "open", relpath, strlen(relpath), errno, error);
    close_parent(dirfd, rootfd);
    return -1;
  }
  close_parent(dirfd, rootfd);

  gboolean want_dir = (flags & O_DIRECTORY) != 0;
  gboolean writing = (flags & O_ACCMODE) != O_RDONLY;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    ferry_set_error(error, FERRY_ERR_IO, "cannot open '%s': %s", relpath, g_strerror(e));
    return -1;
  }
  if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    close(fd);
    ferry_set_error(error, FERRY_ERR_UNSAFE_PATH,
                    "cannot open '%s': it is %s, not %s; move it away", relpath,
                    describe_type(st.st_mode), want_dir ? "a directory" : "a regular file");
    return -1;
  }
  if (writing && !want_dir && st.st_nlink > 1) {
    close(fd);
    ferry_set_error(error, FERRY_ERR_UNSAFE_PATH,
                    "cannot write '%s': it has %lu hard links and ferry does not write into a "
                    "file shared with other names; move it away",
                    relpath, (unsigned long)st.st_nlink);
    return -1;
  }
  if ((flags & O_TRUNC) != 0 && writing && ftruncate(fd, 0) < 0) {
    int e = errno;
    close(fd);
    ferry_set_error(error, FERRY_ERR_IO, "cannot truncate '%s': %s", relpath, g_strerror(e));
    return -1;
  }
  if ((flags & O_NONBLOCK) == 0) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
      int e = errno;
      close(fd);
      ferry_set_error(error, FERRY_ERR_IO, "cannot open '%s': %s", relpath, g_strerror(e));
      return -1;
    }
  }
  return fd;
}

gboolean
ferry_mkdir_beneath(int rootfd, const char *relpath, mode_t mode, GError **error)
{
  gsize last;
  struct stat st;

  if (!check_path(relpath, "create directory", error))
    return FALSE;
  int dirfd = open_parent(rootfd, relpath, TRUE, mode, "create directory", &last, error);
  if (dirfd < 0)
    return FALSE;
  const char *name = relpath + last;
  gboolean ok = TRUE;
  if (mkdirat(dirfd, name, mode) < 0) {
    int e = errno;
    if (e == EEXIST && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
      ok = TRUE;
    else {
      explain_failure(dirfd, name, "create directory", relpath, strlen(relpath),
                      e == EEXIST ? ENOTDIR : e, error);
      ok = FALSE;
    }
  }
  close_parent(dirfd, rootfd);
  return ok;
}

gboolean
ferry_rename_beneath(int rootfd, const char *from_rel, const char *to_rel, gboolean overwrite,
                     GError **error)
{
  gsize last;

  if (!check_path(from_rel, "rename", error) || !check_path(to_rel, "rename to", error))
    return FALSE;
  const char *from_slash = strrchr(from_rel, '/');
  const char *to_slash = strrchr(to_rel, '/');
  gsize from_dir = from_slash != NULL ? (gsize)(from_slash - from_rel) : 0;
  gsize to_dir = to_slash != NULL ? (gsize)(to_slash - to_rel) : 0;
  if (from_dir != to_dir || memcmp(from_rel, to_rel, from_dir) != 0)
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "cannot rename '%s' to '%s': they are not in the same directory",
                           from_rel, to_rel);

  int dirfd = open_parent(rootfd, from_rel, FALSE, 0, "rename", &last, error);
  if (dirfd < 0)
    return FALSE;
  const char *to_name = to_rel + last;
  gboolean ok = TRUE;
  if (renameat2(dirfd, from_rel + last, dirfd, to_name, overwrite ? 0 : RENAME_NOREPLACE) < 0) {
    int e = errno;
    if (e == EEXIST)
      ferry_set_error(error, FERRY_ERR_EXISTS,
                      "cannot rename '%s' to '%s': '%s' already exists; move it away or allow "
                      "overwriting",
                      from_rel, to_rel, to_rel);
    else if (e == ENOENT)
      ferry_set_error(error, FERRY_ERR_NOT_FOUND, "cannot rename '%s' to '%s': '%s' does not exist",
                      from_rel, to_rel, from_rel);
    else
      ferry_set_error(error, FERRY_ERR_IO, "cannot rename '%s' to '%s': %s", from_rel, to_rel,
                      g_strerror(e));
    ok = FALSE;
  }
  close_parent(dirfd, rootfd);
  return ok;
}

int
ferry_exists_beneath(int rootfd, const char *relpath, struct stat *st, GError **error)
{
  gsize last;
  struct stat local;
  GError *local_error = NULL;

  if (!check_path(relpath, "look up", error))
    return -1;
  int dirfd = open_parent(rootfd, relpath, FALSE, 0, "look up", &last, &local_error);
  if (dirfd < 0) {
    if (g_error_matches(local_error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND)) {
      g_error_free(local_error);
      return 0;
    }
    g_propagate_error(error, local_error);
    return -1;
  }
  int result = 1;
  if (fstatat(dirfd, relpath + last, st != NULL ? st : &local, AT_SYMLINK_NOFOLLOW) < 0) {
    int e = errno;
    if (e == ENOENT) {
      result = 0;
    } else {
      ferry_set_error(error, FERRY_ERR_IO, "cannot look up '%s': %s", relpath, g_strerror(e));
      result = -1;
    }
  }
  close_parent(dirfd, rootfd);
  return result;
}
