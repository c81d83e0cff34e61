/* Tar streams: a ustar/pax writer and a bounded push parser. */
#include "core/tar.h"

#include <stdarg.h>
#include <string.h>

#include "core/safepath.h"

/* ustar header layout (POSIX.1-1988 as extended by POSIX.1-2001). */
#define OFF_NAME     0
#define LEN_NAME     100
#define OFF_MODE     100
#define OFF_UID      108
#define OFF_GID      116
#define OFF_SIZE     124
#define OFF_MTIME    136
#define OFF_CHKSUM   148
#define OFF_TYPE     156
#define OFF_LINKNAME 157
#define LEN_LINKNAME 100
#define OFF_MAGIC    257
#define OFF_VERSION  263
#define OFF_DEVMAJOR 329
#define OFF_DEVMINOR 337
#define OFF_PREFIX   345
#define LEN_PREFIX   155

#define OCTAL11_MAX  G_GUINT64_CONSTANT(077777777777) /* largest value in 11 octal digits */

/* ---- writer ---- */

static guint64
round_block(guint64 n)
{
  return (n + FERRY_TAR_BLOCK - 1) / FERRY_TAR_BLOCK * FERRY_TAR_BLOCK;
}

/* The path as written: a directory's always ends in '/'. Free it. */
static char *
written_path(const FerryTarEntry *e)
{
  gsize len = strlen(e->path);
  if (e->type == FERRY_TAR_DIR && (len == 0 || e->path[len - 1] != '/'))
    return g_strconcat(e->path, "/", NULL);
  return g_strdup(e->path);
}

/* Where path splits into ustar prefix and name: the index of the '/'
 * between them, 0 when the whole path fits name, -1 when it does not fit
 * at all. The name part may not be empty, so a directory's trailing '/'
 * is never the split point. */
static gssize
ustar_split(const char *path, gsize len)
{
  if (len <= LEN_NAME)
    return 0;
  gsize lo = len - LEN_NAME - 1;
  for (gsize i = lo; i <= LEN_PREFIX && i + 1 < len; i++)
    if (path[i] == '/' && i > 0)
      return (gssize)i;
  return -1;
}

static gboolean
mtime_fits_octal(gint64 mtime)
{
  return mtime >= 0 && (guint64)mtime <= OCTAL11_MAX;
}

static gboolean
needs_pax(const FerryTarEntry *e, const char *path)
{
  gsize len = strlen(path);
  return ustar_split(path, len) < 0 || (e->type == FERRY_TAR_FILE && e->size > OCTAL11_MAX) ||
         (e->type == FERRY_TAR_SYMLINK && e->link != NULL && strlen(e->link) > LEN_LINKNAME) ||
         !mtime_fits_octal(e->mtime);
}

/* Appends one pax record "LEN KEY=VALUE\n", where LEN counts the whole
 * record including its own digits. */
static void
pax_record(GString *pax, const char *key, const char *value)
{
  gsize body = 1 + strlen(key) + 1 + strlen(value) + 1; /* ' ' key '=' value '\n' */
  gsize total = body + 1;
  for (;;) {
    char digits[24];
    gsize n = (gsize)g_snprintf(digits, sizeof digits, "%" G_GSIZE_FORMAT, total);
    if (n + body == total)
      break;
    total = n + body;
  }
  g_string_append_printf(pax, "%" G_GSIZE_FORMAT " %s=%s\n", total, key, value);
}

static GString *
pax_data(const FerryTarEntry *e, const char *path)
{
  GString *pax = g_string_new(NULL);
  gsize len = strlen(path);
  if (ustar_split(path, len) < 0)
    pax_record(pax, "path", path);
  if (e->type == FERRY_TAR_SYMLINK && e->link != NULL && strlen(e->link) > LEN_LINKNAME)
    pax_record(pax, "linkpath", e->link);
  if (e->type == FERRY_TAR_FILE && e->size > OCTAL11_MAX) {
    char v[32];
    g_snprintf(v, sizeof v, "%" G_GUINT64_FORMAT, e->size);
    pax_record(pax, "size", v);
  }
  if (!mtime_fits_octal(e->mtime)) {
    char v[32];
    g_snprintf(v, sizeof v, "%" G_GINT64_FORMAT, e->mtime);
    pax_record(pax, "mtime", v);
  }
  return pax;
}

/* Writes value into a field of width bytes: octal digits and a NUL when
 * it fits, GNU base-256 (first byte 0x80 or 0xff, two's complement big
 * endian) otherwise. The pax header carries the value for POSIX readers;
 * base-256 is what GNU tar, bsdtar and Python write in its place. */
static void
put_number(guint8 *field, gsize width, gint64 value)
{
  guint64 max = (G_GUINT64_CONSTANT(1) << (3 * (width - 1))) - 1;
  if (value >= 0 && (guint64)value <= max) {
    g_snprintf((char *)field, width, "%0*" G_GINT64_MODIFIER "o", (int)(width - 1), (guint64)value);
    return;
  }
  guint64 v = (guint64)value;
  for (gsize i = width; i-- > 1;) {
    field[i] = (guint8)(v & 0xff);
    v = value < 0 ? (v >> 8) | G_GUINT64_CONSTANT(0xff00000000000000) : v >> 8;
  }
  field[0] = value < 0 ? 0xff : 0x80;
}

static void
put_string(guint8 *field, gsize width, const char *s, gsize len)
{
  memcpy(field, s, MIN(len, width));
}

static void
put_checksum(guint8 *h)
{
  guint sum = 0;
  memset(h + OFF_CHKSUM, ' ', 8);
  for (gsize i = 0; i < FERRY_TAR_BLOCK; i++)
    sum += h[i];
  g_snprintf((char *)h + OFF_CHKSUM, 7, "%06o", sum);
  h[OFF_CHKSUM + 7] = ' ';
}

static void
ustar_header(GByteArray *out, const char *path, char type, guint32 mode, guint64 size, gint64 mtime,
             const char *link)
{
  guint8 h[FERRY_TAR_BLOCK] = {0};
  gsize len = strlen(path);
  gssize split = ustar_split(path, len);

  if (split > 0) {
    put_string(h + OFF_PREFIX, LEN_PREFIX, path, (gsize)split);
    put_string(h + OFF_NAME, LEN_NAME, path + split + 1, len - (gsize)split - 1);
  } else {
    /* Fits, or a pax record carries it and this is only a placeholder. */
    put_string(h + OFF_NAME, LEN_NAME, path, len);
  }
  put_number(h + OFF_MODE, 8, mode & 07777);
  put_number(h + OFF_UID, 8, 0);
  put_number(h + OFF_GID, 8, 0);
  put_number(h + OFF_SIZE, 12, (gint64)size);
  put_number(h + OFF_MTIME, 12, mtime);
  h[OFF_TYPE] = (guint8)type;
  if (link != NULL)
    put_string(h + OFF_LINKNAME, LEN_LINKNAME, link, strlen(link));
  memcpy(h + OFF_MAGIC, "ustar", 6);
  memcpy(h + OFF_VERSION, "00", 2);
  put_number(h + OFF_DEVMAJOR, 8, 0);
  put_number(h + OFF_DEVMINOR, 8, 0);
  put_checksum(h);
  g_byte_array_append(out, h, sizeof h);
}

void
ferry_tar_write_header(GByteArray *out, const FerryTarEntry *e)
{
  g_return_if_fail(out != NULL && e != NULL && e->path != NULL);
  char *path = written_path(e);
  guint64 size = e->type == FERRY_TAR_FILE ? e->size : 0;
  gint64 mtime = e->mtime;

  if (needs_pax(e, path)) {
    GString *pax = pax_data(e, path);
    gint64 pax_mtime = mtime_fits_octal(mtime) ? mtime : 0;
    ustar_header(out, "././@PaxHeader", 'x', 0644, pax->len, pax_mtime, NULL);
    g_byte_array_append(out, (const guint8 *)pax->str, (guint)pax->len);
    ferry_tar_write_padding(out, pax->len);
    g_string_free(pax, TRUE);
  }
  char type = e->type == FERRY_TAR_DIR ? '5' : e->type == FERRY_TAR_SYMLINK ? '2' : '0';
  ustar_header(out, path, type, e->mode, size, mtime,
               e->type == FERRY_TAR_SYMLINK ? e->link : NULL);
  g_free(path);
}

void
ferry_tar_write_padding(GByteArray *out, guint64 size)
{
  static const guint8 zeros[FERRY_TAR_BLOCK];
  guint rest = (guint)(size % FERRY_TAR_BLOCK);
  if (rest != 0)
    g_byte_array_append(out, zeros, FERRY_TAR_BLOCK - rest);
}

void
ferry_tar_write_end(GByteArray *out)
{
  static const guint8 zeros[2 * FERRY_TAR_BLOCK];
  g_byte_array_append(out, zeros, sizeof zeros);
}

guint64
ferry_tar_entry_size(const FerryTarEntry *e)
{
  char *path = written_path(e);
  guint64 total = FERRY_TAR_BLOCK;
  if (needs_pax(e, path)) {
    GString *pax = pax_data(e, path);
    total += FERRY_TAR_BLOCK + round_block(pax->len);
    g_string_free(pax, TRUE);
  }
  g_free(path);
  if (e->type == FERRY_TAR_FILE)
    total += round_block(e->size);
  return total;
}

/* ---- reader ---- */

typedef enum {
  ST_HEADER, /* collecting a header block */
  ST_META,   /* collecting the data of a pax ('x', 'g') or GNU long name ('L', 'K') header */
  ST_DATA,   /* passing a file's data to the callback */
  ST_PAD,    /* skipping the zeros after data */
  ST_END,    /* after the two end blocks: only zeros may follow */
  ST_FAILED,
} State;

struct FerryTarReader {
  FerryTarCallbacks cb;
  gpointer user;
  State state;
  GError *failure; /* why ST_FAILED, repeated to later calls */

  guint8 block[FERRY_TAR_BLOCK];
  gsize fill;        /* bytes in block, or in meta */
  guint64 offset;    /* stream bytes consumed */
  guint64 hdr_start; /* offset of the current entry's first header */
  gboolean zero_seen;

  guint64 left; /* data or padding bytes still to come */
  guint64 size; /* data size of the current file */

  char meta_type;
  guint8 *meta; /* FERRY_TAR_PAX_MAX bytes, allocated on first use */
  gsize meta_len;

  /* Overrides from pax or GNU headers for the next entry. */
  char *pax_path, *pax_link, *long_name, *long_link;
  gboolean has_size, has_mtime;
  guint64 pax_size;
  gint64 pax_mtime;

  /* The current entry (valid until entry_end() returns): kept here, not
   * on the stack, since its data may come in later feeds. */
  char *path;
  char *link;
  FerryTarEntry entry;

  FerryPathSet *paths;
  guint entries;
};

FerryTarReader *
ferry_tar_reader_new(const FerryTarCallbacks *cb, gpointer user)
{
  FerryTarReader *r = g_new0(FerryTarReader, 1);
  if (cb != NULL)
    r->cb = *cb;
  r->user = user;
  r->paths = ferry_path_set_new();
  return r;
}

static void
clear_overrides(FerryTarReader *r)
{
  g_clear_pointer(&r->pax_path, g_free);
  g_clear_pointer(&r->pax_link, g_free);
  g_clear_pointer(&r->long_name, g_free);
  g_clear_pointer(&r->long_link, g_free);
  r->has_size = r->has_mtime = FALSE;
}

void
ferry_tar_reader_free(FerryTarReader *r)
{
  if (r == NULL)
    return;
  clear_overrides(r);
  g_free(r->path);
  g_free(r->link);
  g_free(r->meta);
  g_clear_error(&r->failure);
  ferry_path_set_free(r->paths);
  g_free(r);
}

/* A name as a message shows it: UTF-8 as it is, control characters and
 * invalid bytes escaped, cut after about 200 bytes. Free it. */
static char *
shown_name(const char *name)
{
  gboolean valid = g_utf8_validate(name, -1, NULL);
  GString *s = g_string_new(NULL);
  for (const guchar *p = (const guchar *)name; *p != '\0'; p++) {
    if (s->len >= 200 && (*p & 0xc0) != 0x80) {
      g_string_append(s, "...");
      break;
    }
    if (*p < 0x20 || *p == 0x7f || (!valid && *p >= 0x80))
      g_string_append_printf(s, "\\%03o", *p);
    else
      g_string_append_c(s, (char)*p);
  }
  return g_string_free(s, FALSE);
}

static gboolean
overrides_pending(const FerryTarReader *r)
{
  return r->pax_path != NULL || r->long_name != NULL || r->has_size || r->has_mtime ||
         r->pax_link != NULL || r->long_link != NULL;
}

/* Records the first failure and copies it to error. The message starts
 * with what is known of the entry and the offset of its header. */
static gboolean G_GNUC_PRINTF(4, 5)
    fail(FerryTarReader *r, GError **error, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  const char *name = r->path != NULL ? r->path : r->pax_path != NULL ? r->pax_path : r->long_name;
  if (name != NULL) {
    char *shown = shown_name(name);
    ferry_set_error(&r->failure, code, "tar entry '%s' (header at byte %" G_GUINT64_FORMAT "): %s",
                    shown, r->hdr_start, msg);
    g_free(shown);
  } else if (r->hdr_start != G_MAXUINT64) {
    ferry_set_error(&r->failure, code, "tar header at byte %" G_GUINT64_FORMAT ": %s", r->hdr_start,
                    msg);
  } else {
    ferry_set_error(&r->failure, code, "tar stream: %s", msg);
  }
  g_free(msg);
  r->state = ST_FAILED;
  if (error != NULL)
    *error = g_error_copy(r->failure);
  return FALSE;
}

/* A callback said FALSE: keep its error (or say it stopped us). */
static gboolean
stopped(FerryTarReader *r, GError *cb_error, GError **error)
{
  if (cb_error == NULL)
    ferry_set_error(&cb_error, FERRY_ERR_STATE, "tar reader stopped by its caller");
  r->failure = cb_error;
  r->state = ST_FAILED;
  if (error != NULL)
    *error = g_error_copy(cb_error);
  return FALSE;
}

/* Parses a numeric header field: octal digits (leading spaces allowed)
 * ended by NUL, space or the field's end, or GNU base-256 when the first
 * byte has its high bit set. FALSE if neither. */
static gboolean
parse_number(const guint8 *f, gsize width, gint64 *out)
{
  if (f[0] & 0x80) {
    if (f[0] != 0x80 && f[0] != 0xff)
      return FALSE;
    gboolean neg = f[0] == 0xff;
    /* Only 8 bytes fit a gint64: the rest must be sign extension. */
    for (gsize i = 1; i + 8 < width; i++)
      if (f[i] != (neg ? 0xff : 0x00))
        return FALSE;
    guint64 v = 0;
    for (gsize i = width - MIN(width - 1, 8); i < width; i++)
      v = (v << 8) | f[i];
    if (width - 1 < 8 && neg)
      v |= G_MAXUINT64 << (8 * (width - 1));
    if ((gint64)v < 0 && !neg)
      return FALSE;
    if ((gint64)v >= 0 && neg)
      return FALSE;
    *out = (gint64)v;
    return TRUE;
  }
  gsize i = 0;
  while (i < width && f[i] == ' ')
    i++;
  gsize start = i;
  guint64 v = 0;
  while (i < width && f[i] >= '0' && f[i] <= '7') {
    if (v > (G_MAXINT64 >> 3))
      return FALSE;
    v = (v << 3) | (guint64)(f[i] - '0');
    i++;
  }
  if (i == start)
    return FALSE;
  for (; i < width; i++)
    if (f[i] != '\0' && f[i] != ' ')
      return FALSE;
  *out = (gint64)v;
  return TRUE;
}

static gboolean
all_zero(const guint8 *p, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (p[i] != 0)
      return FALSE;
  return TRUE;
}

/* The sum of the header's bytes with the checksum field read as spaces,
 * as unsigned bytes (POSIX) or as signed chars (some old writers). */
static gboolean
checksum_ok(const guint8 *h)
{
  gint64 want;
  if (!parse_number(h + OFF_CHKSUM, 8, &want))
    return FALSE;
  gint64 usum = 0, ssum = 0;
  for (gsize i = 0; i < FERRY_TAR_BLOCK; i++) {
    guint8 c = (i >= OFF_CHKSUM && i < OFF_CHKSUM + 8) ? ' ' : h[i];
    usum += c;
    ssum += (gint8)c;
  }
  return want == usum || want == ssum;
}

static char *
field_string(const guint8 *f, gsize width)
{
  const guint8 *nul = memchr(f, 0, width);
  return g_strndup((const char *)f, nul != NULL ? (gsize)(nul - f) : width);
}

/* Parses a pax value of "size" or "mtime": decimal, optionally signed and
 * (for mtime) with a fraction that is dropped. */
static gboolean
parse_decimal(const char *s, gsize len, gboolean allow_sign_fraction, gint64 *out)
{
  gsize i = 0;
  gboolean neg = FALSE;
  if (allow_sign_fraction && i < len && s[i] == '-') {
    neg = TRUE;
    i++;
  }
  gsize start = i;
  guint64 v = 0;
  while (i < len && g_ascii_isdigit(s[i])) {
    if (v > (guint64)(G_MAXINT64 - 9) / 10)
      return FALSE;
    v = v * 10 + (guint64)(s[i] - '0');
    i++;
  }
  if (i == start)
    return FALSE;
  if (allow_sign_fraction && i < len && s[i] == '.') {
    i++;
    while (i < len && g_ascii_isdigit(s[i]))
      i++;
  }
  if (i != len)
    return FALSE;
  *out = neg ? -(gint64)v : (gint64)v;
  return TRUE;
}

/* Parses the records of a pax header ('x' local, 'g' global). A local
 * header's path, linkpath, size and mtime apply to the next entry; other
 * keys are ignored, except GNU sparse maps, which would change what the
 * data means. A global header may not set path, linkpath or size (it
 * would apply to every entry); its other keys are ignored. */
static gboolean
parse_pax(FerryTarReader *r, gboolean global, GError **error)
{
  const char *p = (const char *)r->meta;
  gsize len = r->meta_len, pos = 0;

  while (pos < len) {
    gsize i = pos, reclen = 0;
    while (i < len && g_ascii_isdigit(p[i]) && i - pos < 8)
      reclen = reclen * 10 + (gsize)(p[i++] - '0');
    if (i == pos || i >= len || p[i] != ' ' || reclen <= i - pos + 1 || reclen > len - pos ||
        p[pos + reclen - 1] != '\n')
      return fail(r, error, FERRY_ERR_INVALID,
                  "malformed pax record at offset %" G_GSIZE_FORMAT
                  " of its extended header; the tar is damaged",
                  pos);
    const char *key = p + i + 1;
    const char *end = p + pos + reclen - 1; /* the '\n' */
    const char *eq = memchr(key, '=', (gsize)(end - key));
    if (eq == NULL || eq == key)
      return fail(r, error, FERRY_ERR_INVALID,
                  "pax record at offset %" G_GSIZE_FORMAT " has no 'key='; the tar is damaged",
                  pos);
    gsize klen = (gsize)(eq - key);
    const char *val = eq + 1;
    gsize vlen = (gsize)(end - val);
#define KEY_IS(s) (klen == sizeof(s) - 1 && memcmp(key, s, klen) == 0)
    if (klen > 11 && memcmp(key, "GNU.sparse.", 11) == 0)
      return fail(r, error, FERRY_ERR_INVALID,
                  "sparse files are not accepted; make the tar again without --sparse");
    if (global && (KEY_IS("path") || KEY_IS("linkpath") || KEY_IS("size")))
      return fail(r, error, FERRY_ERR_INVALID,
                  "a global pax header sets '%.*s' for every entry, which is not accepted",
                  (int)klen, key);
    if (!global && (KEY_IS("path") || KEY_IS("linkpath"))) {
      if (memchr(val, 0, vlen) != NULL)
        return fail(r, error, FERRY_ERR_INVALID, "pax %.*s has a NUL byte", (int)klen, key);
      char **slot = KEY_IS("path") ? &r->pax_path : &r->pax_link;
      g_free(*slot);
      /* An empty value cancels the override (POSIX). */
      *slot = vlen > 0 ? g_strndup(val, vlen) : NULL;
    } else if (!global && KEY_IS("size")) {
      gint64 v;
      if (!parse_decimal(val, vlen, FALSE, &v))
        return fail(r, error, FERRY_ERR_INVALID, "pax size '%.*s' is not a number",
                    (int)MIN(vlen, 32), val);
      r->pax_size = (guint64)v;
      r->has_size = TRUE;
    } else if (!global && KEY_IS("mtime")) {
      gint64 v;
      if (!parse_decimal(val, vlen, TRUE, &v))
        return fail(r, error, FERRY_ERR_INVALID, "pax mtime '%.*s' is not a number",
                    (int)MIN(vlen, 32), val);
      r->pax_mtime = v;
      r->has_mtime = TRUE;
    }
#undef KEY_IS
    pos += reclen;
  }
  return TRUE;
}

/* The end of a pax or long-name header's data. */
static gboolean
meta_done(FerryTarReader *r, GError **error)
{
  switch (r->meta_type) {
  case 'x':
  case 'g':
    if (!parse_pax(r, r->meta_type == 'g', error))
      return FALSE;
    break;
  case 'L':
  case 'K': {
    const guint8 *nul = memchr(r->meta, 0, r->meta_len);
    gsize n = nul != NULL ? (gsize)(nul - r->meta) : r->meta_len;
    char **slot = r->meta_type == 'L' ? &r->long_name : &r->long_link;
    g_free(*slot);
    *slot = g_strndup((const char *)r->meta, n);
    break;
  }
  default:
    g_assert_not_reached();
  }
  r->fill = 0;
  r->left = round_block(r->meta_len) - r->meta_len;
  r->size = 0;
  r->state = r->left > 0 ? ST_PAD : ST_HEADER;
  return TRUE;
}

static const char *
type_refusal(char t)
{
  switch (t) {
  case '1':
    return "is a hard link (type '1'); make the tar again with --hard-dereference";
  case '3':
  case '4':
    return "is a device node; only files, directories and symlinks are accepted";
  case '6':
    return "is a FIFO; only files, directories and symlinks are accepted";
  case 'S':
    return "is a GNU sparse file; make the tar again without --sparse";
  case 'M':
  case 'V':
    return "is part of a multi-volume archive, which is not accepted";
  default:
    return "has a type that is not accepted (only files, directories and symlinks are)";
  }
}

/* Checks the final path of an entry and normalises it: a leading "./"
 * is dropped (tars made with `tar -C DIR -c .`), a directory's path ends
 * in '/'. Returns the path (owned by the caller), NULL when the entry is
 * the "./" directory itself (skipped), or NULL with *failed set. */
static char *
check_path(FerryTarReader *r, const char *raw, FerryTarType type, gboolean *failed, GError **error)
{
  const char *p = raw;
  *failed = FALSE;
  while (p[0] == '.' && p[1] == '/')
    p += 2;
  gsize len = strlen(p);
  gboolean slash = len > 0 && p[len - 1] == '/';
  if ((len == 0 && p != raw) || (len == 1 && p[0] == '.')) {
    if (type == FERRY_TAR_DIR)
      return NULL;
  }
  r->path = g_strdup(raw);
  if (slash && type != FERRY_TAR_DIR) {
    *failed = TRUE;
    fail(r, error, FERRY_ERR_INVALID, "a %s path may not end in '/' (a directory has type '5')",
         type == FERRY_TAR_FILE ? "file" : "symlink");
    return NULL;
  }
  gsize clen = slash ? len - 1 : len;
  const char *reason = NULL, *other = NULL;
  int rc = ferry_path_validate(p, clen, &reason);
  if (rc == 0) {
    if (r->entries >= FERRY_TAR_MAX_ENTRIES) {
      *failed = TRUE;
      fail(r, error, FERRY_ERR_TOO_LONG, "more than %u entries; send fewer files per link",
           FERRY_TAR_MAX_ENTRIES);
      return NULL;
    }
    rc = ferry_path_set_add(r->paths, p, clen, type == FERRY_TAR_DIR, &other, &reason);
  }
  if (rc < 0) {
    *failed = TRUE;
    const char *advice = "a tar sent over ferry holds relative paths inside one folder";
    if (rc == FERRY_ERR_EXISTS && g_str_has_prefix(reason, "a parent")) {
      rc = FERRY_ERR_UNSAFE_PATH; /* it would go through a file or symlink */
      advice = "nothing may be put beneath a file or symlink";
    } else if (rc == FERRY_ERR_EXISTS) {
      advice = "a tar sent over ferry holds each path once";
    } else if (rc == FERRY_ERR_AMBIGUOUS) {
      advice = "such names collide on macOS and Windows; rename one of them";
    }
    if (other != NULL) {
      char *shown = shown_name(other);
      fail(r, error, rc, "%s ('%s'); %s", reason, shown, advice);
      g_free(shown);
    } else {
      fail(r, error, rc, "%s; %s", reason, advice);
    }
    return NULL;
  }
  r->entries++;
  g_free(r->path);
  r->path = NULL;
  return type == FERRY_TAR_DIR && !slash ? g_strconcat(p, "/", NULL) : g_strdup(p);
}

/* A complete header block that is not an end block. */
static gboolean
header_done(FerryTarReader *r, GError **error)
{
  const guint8 *h = r->block;
  gint64 size, mode, mtime;

  if (!checksum_ok(h))
    return fail(r, error, FERRY_ERR_CORRUPT,
                "header checksum does not match; the tar is damaged or is not a tar");
  gboolean posix = memcmp(h + OFF_MAGIC,
                          "ustar\0"
                          "00",
                          8) == 0;
  gboolean gnu = memcmp(h + OFF_MAGIC, "ustar  \0", 8) == 0;
  if (!posix && !gnu)
    return fail(r, error, FERRY_ERR_INVALID,
                "not a ustar, pax or GNU tar header (old v7 tars are not accepted)");
  if (!parse_number(h + OFF_SIZE, 12, &size) || size < 0)
    return fail(r, error, FERRY_ERR_INVALID, "the size field is not a number");
  char t = (char)h[OFF_TYPE];

  if (t == 'x' || t == 'g' || t == 'L' || t == 'K') {
    if ((guint64)size > FERRY_TAR_PAX_MAX)
      return fail(r, error, FERRY_ERR_TOO_LONG,
                  "%s header of %" G_GINT64_FORMAT " bytes is over the %d-byte limit",
                  t == 'x' || t == 'g' ? "pax extended" : "GNU long name", size, FERRY_TAR_PAX_MAX);
    if (r->meta == NULL)
      r->meta = g_malloc(FERRY_TAR_PAX_MAX);
    r->meta_type = t;
    r->meta_len = (gsize)size;
    r->fill = 0;
    r->state = ST_META;
    return size > 0 ? TRUE : meta_done(r, error);
  }

  /* pax path > GNU long name > ustar prefix + name (the prefix field
   * holds other data in GNU headers). */
  char *raw;
  if (r->pax_path != NULL)
    raw = g_strdup(r->pax_path);
  else if (r->long_name != NULL)
    raw = g_strdup(r->long_name);
  else {
    char *name = field_string(h + OFF_NAME, LEN_NAME);
    char *prefix = posix ? field_string(h + OFF_PREFIX, LEN_PREFIX) : g_strdup("");
    raw = prefix[0] != '\0' ? g_strconcat(prefix, "/", name, NULL) : g_strdup(name);
    g_free(name);
    g_free(prefix);
  }

  FerryTarType type;
  if (t == '0' || t == '\0' || t == '7')
    type = FERRY_TAR_FILE;
  else if (t == '5')
    type = FERRY_TAR_DIR;
  else if (t == '2')
    type = FERRY_TAR_SYMLINK;
  else {
    r->path = raw;
    return fail(r, error, FERRY_ERR_INVALID, "%s", type_refusal(t));
  }

  if (!parse_number(h + OFF_MODE, 8, &mode) || mode < 0 ||
      !parse_number(h + OFF_MTIME, 12, &mtime)) {
    r->path = raw;
    return fail(r, error, FERRY_ERR_INVALID, "the %s field is not a number",
                !parse_number(h + OFF_MODE, 8, &mode) ? "mode" : "mtime");
  }
  if (r->has_size)
    size = (gint64)r->pax_size;
  if (r->has_mtime)
    mtime = r->pax_mtime;
  if (type != FERRY_TAR_FILE && size != 0) {
    r->path = raw;
    return fail(r, error, FERRY_ERR_INVALID, "a %s entry with %" G_GINT64_FORMAT " bytes of data",
                type == FERRY_TAR_DIR ? "directory" : "symlink", size);
  }
  char *link = NULL;
  if (type == FERRY_TAR_SYMLINK) {
    link = r->pax_link != NULL    ? g_strdup(r->pax_link)
           : r->long_link != NULL ? g_strdup(r->long_link)
                                  : field_string(h + OFF_LINKNAME, LEN_LINKNAME);
  }
  clear_overrides(r);

  gboolean failed;
  char *path = check_path(r, raw, type, &failed, error);
  g_free(raw);
  if (failed) {
    g_free(link);
    return FALSE;
  }
  if (path == NULL) { /* "./" itself */
    g_free(link);
    r->state = ST_HEADER;
    r->fill = 0;
    return TRUE;
  }
  r->path = path;
  r->link = link;
  if (link != NULL && (link[0] == '\0' || strlen(link) > FERRY_PATH_MAX))
    return fail(r, error, FERRY_ERR_INVALID, "symlink target is %s",
                link[0] == '\0' ? "empty" : "over 4096 bytes");

  r->entry = (FerryTarEntry){
      .path = path,
      .type = type,
      .size = (guint64)size,
      .mode = (guint32)(mode & 07777),
      .mtime = mtime,
      .link = link,
  };
  GError *cb_error = NULL;
  if (r->cb.entry != NULL && !r->cb.entry(&r->entry, r->user, &cb_error))
    return stopped(r, cb_error, error);
  r->fill = 0;
  r->size = (guint64)size;
  r->left = (guint64)size;
  r->state = ST_DATA;
  return TRUE;
}

/* The current entry's data is complete: tell the caller, then skip the
 * padding. */
static gboolean
entry_done(FerryTarReader *r, GError **error)
{
  GError *cb_error = NULL;
  if (r->cb.entry_end != NULL && !r->cb.entry_end(r->user, &cb_error))
    return stopped(r, cb_error, error);
  g_clear_pointer(&r->path, g_free);
  g_clear_pointer(&r->link, g_free);
  r->left = round_block(r->size) - r->size;
  r->state = r->left > 0 ? ST_PAD : ST_HEADER;
  return TRUE;
}

static gboolean
block_done(FerryTarReader *r, GError **error)
{
  r->fill = 0;
  if (all_zero(r->block, FERRY_TAR_BLOCK)) {
    if (overrides_pending(r))
      return fail(r, error, FERRY_ERR_INVALID,
                  "an extended header is followed by the end of the archive, not an entry");
    if (r->zero_seen)
      r->state = ST_END;
    r->zero_seen = TRUE;
    return TRUE;
  }
  if (r->zero_seen)
    return fail(r, error, FERRY_ERR_INVALID,
                "a lone zero block inside the archive; the tar is damaged");
  return header_done(r, error);
}

gboolean
ferry_tar_reader_feed(FerryTarReader *r, const guint8 *data, gsize len, GError **error)
{
  g_return_val_if_fail(r != NULL && (data != NULL || len == 0), FALSE);

  while (len > 0) {
    gsize n;
    switch (r->state) {
    case ST_FAILED:
      if (error != NULL)
        *error = g_error_copy(r->failure);
      return FALSE;
    case ST_HEADER:
      if (r->fill == 0 && !r->zero_seen && !overrides_pending(r))
        r->hdr_start = r->offset;
      n = MIN(len, FERRY_TAR_BLOCK - r->fill);
      memcpy(r->block + r->fill, data, n);
      r->fill += n;
      r->offset += n;
      data += n;
      len -= n;
      if (r->fill == FERRY_TAR_BLOCK && !block_done(r, error))
        return FALSE;
      break;
    case ST_META:
      n = MIN(len, r->meta_len - r->fill);
      memcpy(r->meta + r->fill, data, n);
      r->fill += n;
      r->offset += n;
      data += n;
      len -= n;
      if (r->fill == r->meta_len && !meta_done(r, error))
        return FALSE;
      break;
    case ST_DATA:
      n = (gsize)MIN((guint64)len, r->left);
      if (n > 0) {
        GError *cb_error = NULL;
        r->offset += n;
        r->left -= n;
        if (r->cb.data != NULL && !r->cb.data(data, n, r->user, &cb_error))
          return stopped(r, cb_error, error);
        data += n;
        len -= n;
      }
      if (r->left == 0 && !entry_done(r, error))
        return FALSE;
      break;
    case ST_PAD:
      n = (gsize)MIN((guint64)len, r->left);
      r->offset += n;
      r->left -= n;
      data += n;
      len -= n;
      if (r->left == 0)
        r->state = ST_HEADER;
      break;
    case ST_END:
      if (!all_zero(data, len)) {
        r->hdr_start = G_MAXUINT64;
        return fail(r, error, FERRY_ERR_INVALID,
                    "bytes after the end of the archive (at byte %" G_GUINT64_FORMAT
                    "); the tar holds something else too",
                    r->offset);
      }
      r->offset += len;
      len = 0;
      break;
    }
  }
  /* A directory, symlink or empty file completes with its header. */
  if (r->state == ST_DATA && r->left == 0 && !entry_done(r, error))
    return FALSE;
  return TRUE;
}

gboolean
ferry_tar_reader_finish(FerryTarReader *r, GError **error)
{
  g_return_val_if_fail(r != NULL, FALSE);
  if (r->state == ST_FAILED) {
    if (error != NULL)
      *error = g_error_copy(r->failure);
    return FALSE;
  }
  if (r->state == ST_END)
    return TRUE;
  const char *where;
  char *detail = NULL;
  if (r->state == ST_DATA) {
    detail = g_strdup_printf("inside the data (%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                             " bytes came)",
                             r->size - r->left, r->size);
    where = detail;
  } else if (r->state == ST_PAD) {
    where = "inside the padding after an entry's data";
  } else if (r->state == ST_META) {
    where = "inside an extended header";
  } else if (r->zero_seen) {
    where = "after only one of the two end blocks";
  } else if (r->fill > 0) {
    where = "inside a header block";
  } else {
    where = "before the end-of-archive blocks";
  }
  if (r->state != ST_DATA)
    r->hdr_start = G_MAXUINT64; /* the message names the offset itself */
  gboolean ok = fail(r, error, FERRY_ERR_INVALID,
                     "cut at byte %" G_GUINT64_FORMAT
                     " %s; the upload or download did not finish, send it again",
                     r->offset, where);
  g_free(detail);
  return ok;
}
