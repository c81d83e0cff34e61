/* The HTTP relay's chunked body decoder (src/server/relay-chunked.h) fed
 * any bytes: it returns only its documented codes, never hands on more
 * bytes than it was fed nor consumes more than it was given, and gives the
 * same payload and the same verdict however the body is cut into pieces
 * (the first input byte picks the cut). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/relay-chunked.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

/* Feeds body in pieces of step bytes (0: all at once); returns the first
 * error, 1 when the body ended (*used: bytes consumed in all), else 0. */
static int
run(const guint8 *body, size_t len, size_t step, GByteArray *out, size_t *used)
{
  FerryChunked dec;
  ferry_chunked_init(&dec);
  *used = 0;
  for (size_t off = 0; off < len;) {
    size_t n = step == 0 ? len - off : MIN(step, len - off);
    gssize rc = ferry_chunked_feed(&dec, body + off, n, collect, out);
    if (rc < 0) {
      check(rc == FERRY_ERR_INVALID || rc == FERRY_ERR_TOO_LONG);
      check(ferry_chunked_feed(&dec, body, len, collect, out) == rc);
      return (int)rc;
    }
    check((size_t)rc <= n);
    *used += (size_t)rc;
    if (ferry_chunked_done(&dec)) {
      check(ferry_chunked_feed(&dec, body, len, collect, out) == 0);
      return 1;
    }
    check((size_t)rc == n);
    off += n;
  }
  return 0;
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
  size_t used_whole, used_pieces;
  int a = run(body, len, 0, whole, &used_whole);
  int b = run(body, len, step, pieces, &used_pieces);
  check(whole->len <= len && pieces->len <= len);
  check(a == b);
  if (a >= 0) {
    check(whole->len == pieces->len && memcmp(whole->data, pieces->data, whole->len) == 0);
    if (a == 1)
      check(used_whole == used_pieces);
  }
  g_byte_array_unref(whole);
  g_byte_array_unref(pieces);
  return 0;
}
