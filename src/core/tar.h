/* Tar streams: how a folder travels over the HTTP relay.
 *
 * The writer makes POSIX ustar blocks of 512 bytes, with a pax extended
 * header ('x') in front of an entry whose path does not fit ustar's
 * name/prefix split, whose size is 8 GiB or more, whose link target is
 * over 100 bytes or whose mtime does not fit 11 octal digits. Paths are
 * relative, '/'-separated UTF-8; a directory's path ends in '/'. The
 * writer only appends bytes, so a sender can compute the exact size of
 * the whole tar from its scan (ferry_tar_entry_size()) before it sends
 * the first byte.
 *
 * The reader is a push parser for untrusted input: it takes any slices of
 * a stream, checks every header (checksum, numeric fields, pax records,
 * safe paths, no path twice, nothing beneath a file or symlink) and hands
 * files, directories and symlinks to callbacks, with file data passed
 * straight from the caller's buffers. Its memory is bounded: one 512-byte
 * block, at most 64 KiB of pax or GNU long-name data, and the set of
 * paths seen (at most FERRY_TAR_MAX_ENTRIES entries). The rules are
 * written out in docs/protocol.md. */
#ifndef FERRY_CORE_TAR_H
#define FERRY_CORE_TAR_H

#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_TAR_BLOCK       512
#define FERRY_TAR_PAX_MAX     (64 * 1024) /* bytes of pax or GNU long-name data per entry */
#define FERRY_TAR_MAX_ENTRIES (1u << 22)  /* entries a reader accepts in one stream */

typedef enum { FERRY_TAR_FILE, FERRY_TAR_DIR, FERRY_TAR_SYMLINK } FerryTarType;

typedef struct {
  const char *path; /* relative, '/'-separated UTF-8; a directory's ends in '/' */
  FerryTarType type;
  guint64 size;     /* data bytes; 0 unless a file */
  guint32 mode;     /* permission bits, <= 07777 */
  gint64 mtime;     /* seconds since the epoch */
  const char *link; /* symlink target; NULL unless a symlink */
} FerryTarEntry;

/* ---- writer ---- */

/* Appends the header block(s) of e to out: a pax extended header first
 * when one is needed (see above), then the ustar header. A directory's
 * path gets a trailing '/' if it has none. The caller then appends the
 * e->size data bytes of a file and ferry_tar_write_padding(). The caller
 * has checked the path (ferry_path_validate()); the link target must be
 * non-empty text without NUL. */
void ferry_tar_write_header(GByteArray *out, const FerryTarEntry *e);

/* Appends the zeros that follow size bytes of data up to the next
 * 512-byte boundary (none when size is a multiple of 512). */
void ferry_tar_write_padding(GByteArray *out, guint64 size);

/* Appends the end of the archive: two zero blocks (1024 bytes). */
void ferry_tar_write_end(GByteArray *out);

/* Returns the bytes e takes in the stream: its header(s), its data and
 * its padding. The sum over all entries plus 1024 is the tar's size. */
guint64 ferry_tar_entry_size(const FerryTarEntry *e);

/* ---- reader ---- */

/* Called for each entry, in stream order: entry() once with the header
 * (e and its strings stay valid until entry_end() returns), data() zero
 * or more times with the file's bytes (never with len 0; the total is
 * e->size), then entry_end() once. A callback may be NULL. A callback
 * that returns FALSE stops the reader: it should set *error, or the
 * reader sets FERRY_ERROR_STATE "stopped". */
typedef struct {
  gboolean (*entry)(const FerryTarEntry *e, gpointer user, GError **error);
  gboolean (*data)(const guint8 *data, gsize len, gpointer user, GError **error);
  gboolean (*entry_end)(gpointer user, GError **error);
} FerryTarCallbacks;

typedef struct FerryTarReader FerryTarReader;

/* A new reader calling cb (copied) with user. Free with
 * ferry_tar_reader_free(). */
FerryTarReader *ferry_tar_reader_new(const FerryTarCallbacks *cb, gpointer user);

/* Parses the next len bytes of the stream, calling the callbacks for
 * what they complete. Returns FALSE with error set on the first problem
 * (and for every later call): FERRY_ERROR_CORRUPT for a bad header
 * checksum; FERRY_ERROR_UNSAFE_PATH for a path that is absolute, has a
 * '..' or is otherwise refused by ferry_path_validate(), or that would
 * go beneath a file or symlink; FERRY_ERROR_EXISTS for a path given
 * twice; FERRY_ERROR_AMBIGUOUS for a name that differs from an earlier
 * one only in case or Unicode form; FERRY_ERROR_TOO_LONG for pax or long
 * name data over FERRY_TAR_PAX_MAX or more than FERRY_TAR_MAX_ENTRIES
 * entries; FERRY_ERROR_INVALID for anything else it does not accept
 * (bad fields, hard links, devices, FIFOs, sparse files, bytes after the
 * end); or the error of a callback that returned FALSE. Each message
 * names the entry and the byte offset of its header. */
gboolean ferry_tar_reader_feed(FerryTarReader *r, const guint8 *data, gsize len, GError **error);

/* Returns TRUE when the stream fed so far ended with the two zero end
 * blocks (only zero bytes may follow them). Otherwise FALSE with
 * FERRY_ERROR_INVALID naming the byte offset where the stream was cut
 * (or the error that stopped an earlier feed). */
gboolean ferry_tar_reader_finish(FerryTarReader *r, GError **error);

/* Frees r; NULL is ignored. */
void ferry_tar_reader_free(FerryTarReader *r);

G_END_DECLS

#endif
