/* Tar to zip, on the fly: what a browser gets for a folder link.
 *
 * A folder goes over the relay as a tar (core/tar.h); browsers and
 * desktops open zips, so the server turns the tar into a zip while it
 * streams, never holding file data beyond what one feed produces. Each
 * tar entry becomes a stored (method 0) zip entry with flag bit 3 (CRC-32
 * and sizes in a data descriptor after the data, because the CRC is known
 * only then) and bit 11 (UTF-8 name); directories are entries whose name
 * ends in '/', symlinks are S_IFLNK entries whose data is the target.
 * Version made by is 3 (Unix) so the mode travels in the external
 * attributes; the mtime is a DOS time in UTC plus an extended timestamp
 * (0x5455) extra. ZIP64 records appear where a size or offset reaches
 * 0xFFFFFFFF (the tar header gives a file's size before its data, so the
 * local header already knows) and at the end when the directory needs
 * them. The converter remembers one central directory record per entry,
 * at most FERRY_TAR_ZIP_CENTRAL_MAX bytes of them. The layout is written
 * out in docs/protocol.md. */
#ifndef FERRY_SERVER_RELAY_ZIP_H
#define FERRY_SERVER_RELAY_ZIP_H

#include "core/tar.h"

G_BEGIN_DECLS

#define FERRY_TAR_ZIP_CENTRAL_MAX (64u * 1024 * 1024) /* bytes of central directory kept */

typedef struct FerryTarZip FerryTarZip;

/* A converter at the start of a tar stream. Free with
 * ferry_tar_zip_free(). */
FerryTarZip *ferry_tar_zip_new(void);

/* Makes every entry and the end use ZIP64 records, as a file over 4 GiB
 * or an archive past 4 GiB would; the zip stays valid. Tests use it to
 * check those records without writing 4 GiB. Call it before the first
 * feed. */
void ferry_tar_zip_set_zip64(FerryTarZip *z, gboolean always);

/* Parses the next len bytes of the tar and appends to out the zip bytes
 * they complete (headers, file data as it comes, data descriptors).
 * Returns FALSE with error set if the tar is refused (the errors of
 * ferry_tar_reader_feed()) or the central directory would pass
 * FERRY_TAR_ZIP_CENTRAL_MAX (FERRY_ERROR_TOO_LONG); the zip is then
 * unusable and every later call fails the same way. */
gboolean ferry_tar_zip_feed(FerryTarZip *z, const guint8 *tar, gsize len, GByteArray *out,
                            GError **error);

/* Appends the central directory and end records to out. Returns FALSE
 * with error set (and appends nothing) if the tar did not end properly
 * (ferry_tar_reader_finish()) or an earlier feed failed. */
gboolean ferry_tar_zip_finish(FerryTarZip *z, GByteArray *out, GError **error);

/* Frees z; NULL is ignored. */
void ferry_tar_zip_free(FerryTarZip *z);

G_END_DECLS

#endif
