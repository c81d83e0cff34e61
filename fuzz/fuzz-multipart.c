/* The HTTP relay's multipart/form-data reader (src/server/relay-multipart.h)
 * fed any request body: it returns only its documented codes, never hands
 * on more bytes than it was fed, and gives the same bytes and the same
 * verdict however the body is cut into pieces (the first input byte picks
 * the cut). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/relay-multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BOUNDARY "ferryfuzzboundary"

static void
check(int ok)
{
  if (!ok)
    abort();
}

static void
collect(const guint8 *data, gsize len, gpointer user_data)
{
  g_byte_array_append(user_data, data, (guint)len);
}

/* Feeds body in pieces of step bytes (0: all at once); returns the verdict
 * (finish's code, or the first feed error) and fills out. */
static int
run(const guint8 *body, size_t len, size_t step, GByteArray *out)
{
  FerryMultipart *mp = ferry_multipart_new(BOUNDARY, collect, out);
  int rc = 0;
  check(mp != NULL);
  for (size_t off = 0; off < len && rc == 0;) {
    size_t n = step == 0 ? len - off : MIN(step, len - off);
    rc = ferry_multipart_feed(mp, body + off, n);
    check(rc == 0 || rc == FERRY_ERR_TOO_LONG || rc == FERRY_ERR_INVALID);
    off += n;
  }
  if (rc == 0) {
    rc = ferry_multipart_finish(mp);
    check(rc == 0 || rc == FERRY_ERR_NOT_FOUND || rc == FERRY_ERR_INVALID);
  }
  ferry_multipart_free(mp);
  return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  size_t step = (size_t)data[0] % 64 + 1;
  const guint8 *body = data + 1;
  size_t len = size - 1;
  GByteArray *whole = g_byte_array_new(), *pieces = g_byte_array_new();
  int a = run(body, len, 0, whole);
  int b = run(body, len, step, pieces);
  check(whole->len <= len && pieces->len <= len);
  /* A malformed body may be noticed at a different byte depending on the
   * cut; a well-formed one must come out the same. */
  if (a == 0 || b == 0) {
    check(a == b);
    check(whole->len == pieces->len && memcmp(whole->data, pieces->data, whole->len) == 0);
  }
  check(ferry_multipart_new("", collect, whole) == NULL);
  g_byte_array_unref(whole);
  g_byte_array_unref(pieces);
  return 0;
}
