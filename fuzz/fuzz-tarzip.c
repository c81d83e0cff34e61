/* Tar to zip (src/server/relay-zip.h) fed any stream: the same zip bytes
 * and verdict however the tar is cut (the first input byte seeds the cut
 * sizes), only documented error codes, finish adds nothing when it
 * fails, and an accepted tar gives a zip whose end record, central
 * directory and local headers agree with each other. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/relay-zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
  if (!ok)
    abort();
}

static guint64
le(const guint8 *p, int n)
{
  guint64 v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = (v << 8) | p[i];
  return v;
}

/* Walks the zip from its end: the end record (and the ZIP64 one when
 * the end record says so) locates the central directory, whose records
 * each point at a local header with the same name. */
static void
check_zip(const guint8 *z, gsize len)
{
  check(len >= 22 && le(z + len - 22, 4) == 0x06054b50);
  const guint8 *end = z + len - 22;
  guint64 entries = le(end + 10, 2), cd_size = le(end + 12, 4), cd_off = le(end + 16, 4);
  if (entries == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) {
    check(len >= 22 + 20 + 56 && le(end - 20, 4) == 0x07064b50);
    guint64 at = le(end - 20 + 8, 8);
    check(at == len - 22 - 20 - 56 && le(z + at, 4) == 0x06064b50);
    entries = le(z + at + 32, 8);
    cd_size = le(z + at + 40, 8);
    cd_off = le(z + at + 48, 8);
  }
  check(cd_off <= len && cd_size <= len - cd_off);
  const guint8 *p = z + cd_off, *stop = p + cd_size;
  for (guint64 i = 0; i < entries; i++) {
    check(stop - p >= 46 && le(p, 4) == 0x02014b50 && le(p + 8, 2) == 0x0808);
    guint64 nlen = le(p + 28, 2), xlen = le(p + 30, 2), off = le(p + 42, 4);
    check((guint64)(stop - p) >= 46 + nlen + xlen);
    if (off == 0xffffffff) {
      /* The ZIP64 extra's last field is the offset. */
      const guint8 *x = p + 46 + nlen;
      check(xlen >= 4 && le(x, 2) == 1);
      off = le(x + 4 + le(x + 2, 2) - 8, 8);
    }
    check(off + 30 + nlen <= cd_off && le(z + off, 4) == 0x04034b50);
    check(le(z + off + 26, 2) == nlen && memcmp(z + off + 30, p + 46, nlen) == 0);
    p += 46 + nlen + xlen;
  }
  check(p == stop);
}

/* Converts the tar in pieces (seed 0: all at once), with ZIP64 records
 * everywhere when zip64; returns the error code (0 when accepted). */
static int
run(const guint8 *tar, size_t len, guint seed, gboolean zip64, GByteArray *out)
{
  FerryTarZip *z = ferry_tar_zip_new();
  GError *error = NULL;
  gboolean ok = TRUE;
  guint32 x = seed * 2654435761u + 1;
  ferry_tar_zip_set_zip64(z, zip64);
  for (size_t off = 0; ok && off < len;) {
    x = x * 1103515245u + 12345u;
    size_t n = seed == 0 ? len : 1 + (x >> 16) % (seed % 4 == 0 ? 3 : 700);
    n = MIN(n, len - off);
    ok = ferry_tar_zip_feed(z, tar + off, n, out, &error);
    off += n;
  }
  if (ok) {
    guint before = out->len;
    ok = ferry_tar_zip_finish(z, out, &error);
    check(ok || out->len == before);
  }
  int code = 0;
  if (!ok) {
    check(error != NULL && error->domain == FERRY_ERROR && error->message[0] != '\0');
    code = error->code;
    check(code == FERRY_ERROR_INVALID || code == FERRY_ERROR_TOO_LONG ||
          code == FERRY_ERROR_UNSAFE_PATH || code == FERRY_ERROR_CORRUPT ||
          code == FERRY_ERROR_EXISTS || code == FERRY_ERROR_AMBIGUOUS);
    g_error_free(error);
  } else {
    check_zip(out->data, out->len);
  }
  ferry_tar_zip_free(z);
  return code;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  /* The first byte's low bit asks for ZIP64 records everywhere. */
  gboolean zip64 = (data[0] & 1) != 0;
  GByteArray *a = g_byte_array_new(), *b = g_byte_array_new();
  int whole = run(data + 1, size - 1, 0, zip64, a);
  int pieces = run(data + 1, size - 1, (guint)data[0] + 1, zip64, b);
  check(whole == pieces);
  check(a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0));
  g_byte_array_unref(a);
  g_byte_array_unref(b);
  return 0;
}
