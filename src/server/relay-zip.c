/* Tar to zip, on the fly (APPNOTE 6.3.x: stored entries, data
 * descriptors, ZIP64, Info-ZIP's Unix attributes and 0x5455 timestamps). */
#include "server/relay-zip.h"

#include <string.h>
#include <zlib.h>

#define SIG_LOCAL        0x04034b50u
#define SIG_DESCRIPTOR   0x08074b50u
#define SIG_CENTRAL      0x02014b50u
#define SIG_ZIP64_END    0x06064b50u
#define SIG_ZIP64_LOCATE 0x07064b50u
#define SIG_END          0x06054b50u

#define FLAGS            0x0808u /* bit 3: data descriptor; bit 11: UTF-8 names */
#define MADE_BY          0x032du /* Unix, APPNOTE 4.5 */
#define NEEDS_ZIP64      45u
#define NEEDS_STORED     20u
#define MAX32            G_GUINT64_CONSTANT(0xffffffff)
#define MAX16            0xffffu

#define EXTRA_ZIP64      0x0001u
#define EXTRA_TIMESTAMP  0x5455u

#define S_IFREG_         0100000u
#define S_IFDIR_         0040000u
#define S_IFLNK_         0120000u

struct FerryTarZip {
  FerryTarReader *reader;
  GByteArray *out; /* the caller's, during a feed */
  GByteArray *central;
  guint64 offset; /* zip bytes produced so far */
  guint64 entries;
  gboolean always_zip64;
  gboolean finished;

  /* The entry being converted. */
  char *name;
  guint64 local_offset;
  guint64 size;
  guint32 crc;
  gboolean zip64; /* its local header has a ZIP64 extra: 8-byte descriptor sizes */
  guint16 dos_time, dos_date;
  gint64 mtime;
  guint32 attributes;
};

static void
put16(GByteArray *b, guint v)
{
  guint8 x[2] = {(guint8)v, (guint8)(v >> 8)};
  g_byte_array_append(b, x, 2);
}

static void
put32(GByteArray *b, guint64 v)
{
  guint8 x[4] = {(guint8)v, (guint8)(v >> 8), (guint8)(v >> 16), (guint8)(v >> 24)};
  g_byte_array_append(b, x, 4);
}

static void
put64(GByteArray *b, guint64 v)
{
  put32(b, v & MAX32);
  put32(b, v >> 32);
}

/* Appends len bytes to the caller's output and counts them. */
static void
emit(FerryTarZip *z, const guint8 *data, gsize len)
{
  g_byte_array_append(z->out, data, (guint)len);
  z->offset += len;
}

/* DOS date and time (2-second steps) of mtime in UTC, clamped to the
 * years DOS can express (1980-2107). */
static void
dos_datetime(gint64 mtime, guint16 *dtime, guint16 *ddate)
{
  const gint64 lo = 315532800;  /* 1980-01-01 00:00:00 UTC */
  const gint64 hi = 4354819198; /* 2107-12-31 23:59:58 UTC */
  GDateTime *t = g_date_time_new_from_unix_utc(CLAMP(mtime, lo, hi));
  *dtime = (guint16)((g_date_time_get_hour(t) << 11) | (g_date_time_get_minute(t) << 5) |
                     (g_date_time_get_second(t) / 2));
  *ddate = (guint16)(((g_date_time_get_year(t) - 1980) << 9) | (g_date_time_get_month(t) << 5) |
                     g_date_time_get_day_of_month(t));
  g_date_time_unref(t);
}

static gboolean
timestamp_fits(gint64 mtime)
{
  return mtime >= G_MININT32 && mtime <= G_MAXINT32;
}

static guint
central_record_size(const FerryTarZip *z, gsize name_len, gboolean sizes64, gboolean offset64)
{
  guint extra = 0;
  if (sizes64 || offset64)
    extra += 4 + (sizes64 ? 16 : 0) + (offset64 ? 8 : 0);
  if (timestamp_fits(z->mtime))
    extra += 9;
  return 46 + (guint)name_len + extra;
}

static gboolean
on_entry(const FerryTarEntry *e, gpointer user, GError **error)
{
  FerryTarZip *z = user;
  gsize name_len = strlen(e->path);
  guint64 size = e->type == FERRY_TAR_SYMLINK ? strlen(e->link) : e->size;

  z->mtime = e->mtime;
  z->local_offset = z->offset;
  z->size = size;
  z->zip64 = z->always_zip64 || size >= MAX32;
  gboolean offset64 = z->always_zip64 || z->local_offset >= MAX32;
  if ((guint64)z->central->len + central_record_size(z, name_len, z->zip64, offset64) >
      FERRY_TAR_ZIP_CENTRAL_MAX)
    return ferry_set_error(error, FERRY_ERR_TOO_LONG,
                           "cannot zip '%s': the folder has too many entries for a zip made on "
                           "the fly (its directory would pass %u MiB after %" G_GUINT64_FORMAT
                           " entries); download it as a tar instead (without ?format=zip)",
                           e->path, FERRY_TAR_ZIP_CENTRAL_MAX >> 20, z->entries);
  g_free(z->name);
  z->name = g_strdup(e->path);
  z->crc = 0;
  dos_datetime(e->mtime, &z->dos_time, &z->dos_date);
  guint32 mode = e->mode & 07777;
  switch (e->type) {
  case FERRY_TAR_FILE:
    z->attributes = (S_IFREG_ | mode) << 16;
    break;
  case FERRY_TAR_DIR:
    z->attributes = ((S_IFDIR_ | mode) << 16) | 0x10; /* MS-DOS directory bit */
    break;
  case FERRY_TAR_SYMLINK:
    z->attributes = (S_IFLNK_ | mode) << 16;
    break;
  }

  GByteArray *h = g_byte_array_sized_new(30 + (guint)name_len + 29);
  guint extra = (z->zip64 ? 20 : 0) + (timestamp_fits(e->mtime) ? 9 : 0);
  put32(h, SIG_LOCAL);
  put16(h, z->zip64 ? NEEDS_ZIP64 : NEEDS_STORED);
  put16(h, FLAGS);
  put16(h, 0); /* stored */
  put16(h, z->dos_time);
  put16(h, z->dos_date);
  put32(h, 0);                    /* CRC-32: in the data descriptor */
  put32(h, z->zip64 ? MAX32 : 0); /* compressed size: likewise */
  put32(h, z->zip64 ? MAX32 : 0); /* uncompressed size */
  put16(h, (guint)name_len);
  put16(h, extra);
  g_byte_array_append(h, (const guint8 *)e->path, (guint)name_len);
  if (z->zip64) {
    put16(h, EXTRA_ZIP64);
    put16(h, 16);
    put64(h, 0);
    put64(h, 0);
  }
  if (timestamp_fits(e->mtime)) {
    put16(h, EXTRA_TIMESTAMP);
    put16(h, 5);
    g_byte_array_append(h, (const guint8 *)"\x01", 1); /* mtime present */
    put32(h, (guint32)(gint32)e->mtime);
  }
  emit(z, h->data, h->len);
  g_byte_array_unref(h);

  if (e->type == FERRY_TAR_SYMLINK) {
    z->crc = (guint32)crc32(0, (const Bytef *)e->link, (uInt)size);
    emit(z, (const guint8 *)e->link, size);
  }
  return TRUE;
}

static gboolean
on_data(const guint8 *data, gsize len, gpointer user, GError **error)
{
  FerryTarZip *z = user;
  (void)error;
  for (gsize done = 0; done < len;) {
    uInt n = (uInt)MIN(len - done, (gsize)1 << 30);
    z->crc = (guint32)crc32(z->crc, data + done, n);
    done += n;
  }
  emit(z, data, len);
  return TRUE;
}

static gboolean
on_entry_end(gpointer user, GError **error)
{
  FerryTarZip *z = user;
  (void)error;
  GByteArray *d = g_byte_array_sized_new(24);
  put32(d, SIG_DESCRIPTOR);
  put32(d, z->crc);
  if (z->zip64) {
    put64(d, z->size);
    put64(d, z->size);
  } else {
    put32(d, z->size);
    put32(d, z->size);
  }
  emit(z, d->data, d->len);
  g_byte_array_unref(d);

  /* The central record, with a ZIP64 extra holding exactly the fields
   * that are 0xFFFFFFFF in the fixed part, in APPNOTE's order. */
  gboolean sizes64 = z->always_zip64 || z->size >= MAX32;
  gboolean offset64 = z->always_zip64 || z->local_offset >= MAX32;
  gsize name_len = strlen(z->name);
  GByteArray *c = z->central;
  guint extra = (sizes64 || offset64 ? 4 + (sizes64 ? 16 : 0) + (offset64 ? 8 : 0) : 0) +
                (timestamp_fits(z->mtime) ? 9 : 0);
  put32(c, SIG_CENTRAL);
  put16(c, MADE_BY);
  put16(c, sizes64 || offset64 ? NEEDS_ZIP64 : NEEDS_STORED);
  put16(c, FLAGS);
  put16(c, 0);
  put16(c, z->dos_time);
  put16(c, z->dos_date);
  put32(c, z->crc);
  put32(c, sizes64 ? MAX32 : z->size);
  put32(c, sizes64 ? MAX32 : z->size);
  put16(c, (guint)name_len);
  put16(c, extra);
  put16(c, 0); /* comment */
  put16(c, 0); /* disk */
  put16(c, 0); /* internal attributes */
  put32(c, z->attributes);
  put32(c, offset64 ? MAX32 : z->local_offset);
  g_byte_array_append(c, (const guint8 *)z->name, (guint)name_len);
  if (sizes64 || offset64) {
    put16(c, EXTRA_ZIP64);
    put16(c, (sizes64 ? 16 : 0) + (offset64 ? 8 : 0));
    if (sizes64) {
      put64(c, z->size);
      put64(c, z->size);
    }
    if (offset64)
      put64(c, z->local_offset);
  }
  if (timestamp_fits(z->mtime)) {
    put16(c, EXTRA_TIMESTAMP);
    put16(c, 5);
    g_byte_array_append(c, (const guint8 *)"\x01", 1);
    put32(c, (guint32)(gint32)z->mtime);
  }
  z->entries++;
  g_clear_pointer(&z->name, g_free);
  return TRUE;
}

static const FerryTarCallbacks zip_callbacks = {on_entry, on_data, on_entry_end};

FerryTarZip *
ferry_tar_zip_new(void)
{
  FerryTarZip *z = g_new0(FerryTarZip, 1);
  z->reader = ferry_tar_reader_new(&zip_callbacks, z);
  z->central = g_byte_array_new();
  return z;
}

void
ferry_tar_zip_set_zip64(FerryTarZip *z, gboolean always)
{
  z->always_zip64 = always;
}

gboolean
ferry_tar_zip_feed(FerryTarZip *z, const guint8 *tar, gsize len, GByteArray *out, GError **error)
{
  g_return_val_if_fail(z != NULL && out != NULL, FALSE);
  z->out = out;
  gboolean ok = ferry_tar_reader_feed(z->reader, tar, len, error);
  z->out = NULL;
  return ok;
}

gboolean
ferry_tar_zip_finish(FerryTarZip *z, GByteArray *out, GError **error)
{
  g_return_val_if_fail(z != NULL && out != NULL, FALSE);
  if (z->finished)
    return ferry_set_error(error, FERRY_ERR_STATE, "the zip was already finished");
  if (!ferry_tar_reader_finish(z->reader, error))
    return FALSE;
  z->finished = TRUE;

  guint64 cd_offset = z->offset, cd_size = z->central->len;
  z->out = out;
  emit(z, z->central->data, z->central->len);
  gboolean zip64 = z->always_zip64 || z->entries >= MAX16 || cd_size >= MAX32 || cd_offset >= MAX32;
  GByteArray *e = g_byte_array_sized_new(98);
  if (zip64) {
    guint64 end64_offset = z->offset;
    put32(e, SIG_ZIP64_END);
    put64(e, 44); /* size of the rest of this record */
    put16(e, MADE_BY);
    put16(e, NEEDS_ZIP64);
    put32(e, 0); /* this disk */
    put32(e, 0); /* disk of the central directory */
    put64(e, z->entries);
    put64(e, z->entries);
    put64(e, cd_size);
    put64(e, cd_offset);
    put32(e, SIG_ZIP64_LOCATE);
    put32(e, 0);
    put64(e, end64_offset);
    put32(e, 1); /* disks */
  }
  put32(e, SIG_END);
  put16(e, 0);
  put16(e, 0);
  put16(e, zip64 && (z->always_zip64 || z->entries >= MAX16) ? MAX16 : (guint)z->entries);
  put16(e, zip64 && (z->always_zip64 || z->entries >= MAX16) ? MAX16 : (guint)z->entries);
  put32(e, zip64 && (z->always_zip64 || cd_size >= MAX32) ? MAX32 : cd_size);
  put32(e, zip64 && (z->always_zip64 || cd_offset >= MAX32) ? MAX32 : cd_offset);
  put16(e, 0); /* comment */
  emit(z, e->data, e->len);
  g_byte_array_unref(e);
  z->out = NULL;
  return TRUE;
}

void
ferry_tar_zip_free(FerryTarZip *z)
{
  if (z == NULL)
    return;
  ferry_tar_reader_free(z->reader);
  g_byte_array_unref(z->central);
  g_free(z->name);
  g_free(z);
}
