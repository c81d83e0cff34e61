/* Manifest: what a sender offers, found by scanning the paths on its
 * command line.
 *
 * A FerryScanner walks its roots lazily, one directory listing at a time,
 * and hands out entries as it goes: the first entry is available before
 * the rest of the tree has been read, so a transfer can start while a
 * huge tree is still being scanned. Order is deterministic: roots in the
 * order given, then depth-first with names sorted bytewise inside each
 * directory, every directory before its contents.
 *
 * Each root is named by its basename ("./photos/" -> "photos"), and
 * entry paths are '/'-separated below that name ("photos/2024/a.jpg").
 * Symlinks are recorded with their target, never followed. FIFOs,
 * sockets, devices, unreadable entries and names a receiver would refuse
 * are skipped and reported as issues; they never stop the scan unless the
 * issue callback asks for that. Every directory is opened relative to its
 * parent's fd with O_NOFOLLOW, so a directory swapped for a symlink during
 * the scan is reported, not followed. */
#ifndef FERRY_MANIFEST_H
#define FERRY_MANIFEST_H

#include <ferry/error.h>

G_BEGIN_DECLS

typedef enum {
  FERRY_ENTRY_FILE,
  FERRY_ENTRY_DIR,
  FERRY_ENTRY_SYMLINK,
} FerryEntryType;

/* One scanned entry. Strings are owned by the scanner: path and
 * link_target are valid until the next ferry_scanner_next() call,
 * source_dir until ferry_scanner_free(). */
typedef struct {
  FerryEntryType type;
  const char *path;        /* relative, '/'-separated, starts with the root's name */
  const char *link_target; /* symlinks: the target bytes, unresolved; NULL otherwise */
  const char *source_dir;  /* absolute directory that holds this entry's root */
  guint root;              /* index of the root (command-line argument) */
  guint depth;             /* 0 for a root, 1 for its children, ... */
  guint64 size;            /* bytes for files; 0 for directories and symlinks */
  guint32 mode;            /* permission bits (st_mode & 07777) */
  gint64 mtime_ns;         /* modification time, nanoseconds since the epoch */
} FerryEntry;

typedef enum {
  FERRY_SCAN_ISSUE_SPECIAL,    /* FIFO, socket or device: not sent */
  FERRY_SCAN_ISSUE_UNREADABLE, /* permission denied or an I/O error */
  FERRY_SCAN_ISSUE_CHANGED,    /* vanished or replaced while being scanned */
  FERRY_SCAN_ISSUE_BAD_NAME,   /* a name every receiver would refuse */
} FerryScanIssueKind;

/* Something skipped during the scan. Strings are owned by the scanner
 * and live until ferry_scanner_free(). */
typedef struct {
  FerryScanIssueKind kind;
  int code;           /* negative FerryErr: FERRY_ERR_IO, _INVALID, _NOT_FOUND, ... */
  const char *path;   /* relative path as an entry would have had it */
  const char *reason; /* e.g. "is a FIFO (named pipe); only ... are sent" */
} FerryScanIssue;

/* Called once per issue, in scan order. Return TRUE to skip the entry and
 * go on, FALSE to stop: ferry_scanner_next() then returns issue->code. */
typedef gboolean (*FerryScanIssueFunc)(const FerryScanIssue *issue, gpointer user_data);

/* Counts so far, updated by each ferry_scanner_next() call. */
typedef struct {
  guint64 files;
  guint64 dirs;
  guint64 symlinks;
  guint64 bytes;     /* sum of file sizes */
  guint64 issues;    /* entries skipped */
  guint64 dirs_read; /* directory listings read so far */
} FerryScanTotals;

typedef struct FerryScanner FerryScanner;

/* Prepares a scan of the NULL-terminated list paths (at least one).
 * Checks every argument up front without reading any directory: it must
 * exist, must not be "/" (the whole file system), its name must be one a
 * receiver accepts, and no two may share a name. "." and ".." stand for
 * the directory's real name. Returns NULL with error set
 * (FERRY_ERROR_NOT_FOUND, _INVALID, _UNSAFE_PATH, _AMBIGUOUS for two
 * arguments with one name) naming the argument; free the scanner with
 * ferry_scanner_free(). */
FERRY_API FerryScanner *ferry_scanner_new(const char *const *paths, GError **error);

FERRY_API void ferry_scanner_free(FerryScanner *scanner);

/* Sets the function told of each issue (besides the list kept by
 * ferry_scanner_issues()); NULL means "skip and go on". */
FERRY_API void ferry_scanner_set_issue_func(FerryScanner *scanner, FerryScanIssueFunc func,
                                            gpointer user_data);

/* Produces the next entry into *entry_out (owned by the scanner, valid
 * until the next call). Reads at most one directory listing per call.
 * Returns 1 for an entry, 0 when the scan is over (and on every later
 * call), or the negative FerryErr code of an issue the issue function
 * chose to stop at (and the same code on every later call). */
FERRY_API int ferry_scanner_next(FerryScanner *scanner, const FerryEntry **entry_out);

/* Counts of what has been produced so far. */
FERRY_API const FerryScanTotals *ferry_scanner_totals(const FerryScanner *scanner);

/* The issues met so far, in order; *n_issues receives their number. Owned
 * by the scanner; the array may move on the next ferry_scanner_next(). */
FERRY_API const FerryScanIssue *ferry_scanner_issues(const FerryScanner *scanner, guint *n_issues);

/* Opens a scanned file again for reading, later, without trusting that
 * nothing changed: source_dir and path as in its FerryEntry; every
 * component below source_dir is opened with O_NOFOLLOW, and the result
 * must still be a regular file. Returns an fd (O_RDONLY|O_CLOEXEC) the
 * caller closes, or -1 with error set. */
FERRY_API int ferry_entry_open(const char *source_dir, const char *path, GError **error);

G_END_DECLS

#endif
