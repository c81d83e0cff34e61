/* Safe paths: the receive side's defence against a hostile manifest.
 *
 * Every relative path a peer sends goes through ferry_path_validate()
 * (pure, fuzzable), then through a FerryPathSet that catches names which
 * would land on the same file of a case-insensitive or
 * normalisation-insensitive file system, and is finally opened with
 * ferry_openat_beneath(), which walks one component at a time with
 * O_NOFOLLOW so that a symlink planted inside the output directory can
 * never redirect a write. The rules are written out in docs/protocol.md
 * ("Paths"). */
#ifndef FERRY_CORE_SAFEPATH_H
#define FERRY_CORE_SAFEPATH_H

#include <sys/stat.h>
#include <sys/types.h>

#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_PATH_MAX      4096 /* bytes in a relative path, without a terminator */
#define FERRY_PATH_NAME_MAX 255  /* bytes in one component */

/* Checks that the len bytes at path form a safe relative path: non-empty
 * components joined by single '/', none of them "." or "..", no leading
 * '/', no NUL, control character (U+0000-U+001F, U+007F-U+009F) or
 * backslash, valid UTF-8, components of at most FERRY_PATH_NAME_MAX bytes
 * and at most FERRY_PATH_MAX bytes in all. Such a path can only name
 * something inside the directory it is resolved against.
 *
 * Returns 0, FERRY_ERR_UNSAFE_PATH (could escape or alias another path),
 * FERRY_ERR_TOO_LONG or FERRY_ERR_INVALID (not text we accept). When
 * reason is not NULL it is set to a static English phrase such as
 * "path component is '..'" (and to NULL on success). */
int ferry_path_validate(const char *path, gsize len, const char **reason);

/* A set of relative paths received so far, to find the ones that would
 * collide on a case-insensitive file system ("Photos/a.jpg" after
 * "photos/A.JPG"), and paths that clash with an earlier one ("a/b" after
 * the file "a", or the same path twice). Comparison is per component, on
 * the NFC form case-folded by g_utf8_casefold(), so a collision of a
 * directory prefix counts too. Free with ferry_path_set_free(). */
typedef struct FerryPathSet FerryPathSet;

FerryPathSet *ferry_path_set_new(void);
void ferry_path_set_free(FerryPathSet *set);

/* Validates the len bytes at path (as ferry_path_validate() does) and
 * adds them to set, as a directory when is_dir is TRUE. Parent
 * directories are added implicitly; adding a directory that is already
 * there implicitly is not a clash.
 *
 * Returns 0 when added; a ferry_path_validate() code; FERRY_ERR_AMBIGUOUS
 * when a component differs from an earlier one only in case or Unicode
 * normalisation; FERRY_ERR_EXISTS when the path was added before or one
 * of the two needs a directory where the other has a file. On a clash,
 * *other (when not NULL) points at the earlier path or directory prefix
 * it clashes with (owned by set, valid until it is freed) and *reason
 * (when not NULL) at a static phrase; both are NULL otherwise. */
int ferry_path_set_add(FerryPathSet *set, const char *path, gsize len, gboolean is_dir,
                       const char **other, const char **reason);

/* The number of paths added explicitly (not implicit parents). */
guint ferry_path_set_size(const FerryPathSet *set);

/* Opens (creating it and its parents first when create is TRUE) the
 * directory a transfer writes into, following symlinks in path because
 * the user named it. Returns an O_DIRECTORY|O_CLOEXEC file descriptor the
 * caller closes, or -1 with error set. */
int ferry_outdir_open(const char *path, gboolean create, GError **error);

typedef enum {
  FERRY_BENEATH_NONE = 0,
  FERRY_BENEATH_MKDIRS = 1 << 0, /* create missing parent directories (mode 0777 & ~umask) */
} FerryBeneathFlags;

/* Opens relpath beneath the directory rootfd: validates relpath, opens
 * each parent component with openat(O_NOFOLLOW|O_DIRECTORY) (creating it
 * with mkdirat under FERRY_BENEATH_MKDIRS) and the last one with
 * flags|O_NOFOLLOW|O_CLOEXEC and mode. A symlink anywhere on the way is
 * refused, so nothing outside rootfd can be read or written through one.
 * The result must be a regular file (a directory if flags has
 * O_DIRECTORY); a FIFO or device planted in its place is refused without
 * blocking. Returns a file descriptor the caller closes, or -1 with error
 * set (FERRY_ERROR_UNSAFE_PATH for a symlink or a bad path,
 * FERRY_ERROR_NOT_FOUND, FERRY_ERROR_EXISTS for O_EXCL, FERRY_ERROR_IO). */
int ferry_openat_beneath(int rootfd, const char *relpath, int flags, mode_t mode,
                         FerryBeneathFlags how, GError **error);

/* Creates the directory relpath and any missing parents beneath rootfd
 * (mode & ~umask for each), refusing symlinks on the way as
 * ferry_openat_beneath() does. An existing directory is success. Returns
 * FALSE with error set otherwise. */
gboolean ferry_mkdir_beneath(int rootfd, const char *relpath, mode_t mode, GError **error);

/* Renames from_rel to to_rel beneath rootfd; both must be in the same
 * directory (a temporary name becoming the final one), whose parents are
 * walked without following symlinks. Unless overwrite is TRUE an existing
 * to_rel is left alone and FERRY_ERROR_EXISTS is reported. Returns FALSE
 * with error set on failure. */
gboolean ferry_rename_beneath(int rootfd, const char *from_rel, const char *to_rel,
                              gboolean overwrite, GError **error);

/* Looks relpath up beneath rootfd without following any symlink (a
 * symlink as the last component is reported as existing, with its own
 * lstat data). Returns 1 if it exists (filling *st when not NULL), 0 if
 * it or a parent does not, -1 with error set if a parent is a symlink or
 * not a directory, or on an I/O error. */
int ferry_exists_beneath(int rootfd, const char *relpath, struct stat *st, GError **error);

G_END_DECLS

#endif
