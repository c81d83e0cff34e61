/* Encrypted links (src/core/linkcrypt.h) as `ferry receive URL` reads
 * them off the network: an opener fed any bytes returns only its
 * documented errors, hands out at most as many bytes as it took, and
 * gives the same bytes and verdict however the stream is cut (the first
 * input byte picks the cut). The key decoder takes the same input as
 * text. Seeds include real sealed streams under the fixed key below. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/linkcrypt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const guint8 fuzz_key[FERRY_LINK_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8};

static void
check(int ok)
{
  if (!ok)
    abort();
}

/* Opens data in pieces of step bytes (0: all at once); returns the error
 * code (0 for success) and fills out. */
static int
open_all(const uint8_t *data, size_t size, size_t step, GByteArray *out)
{
  GError *error = NULL;
  FerryLinkCipher *c = ferry_link_cipher_new(fuzz_key, FALSE, 0, &error);
  check(c != NULL);
  gboolean ok = TRUE;
  if (step == 0)
    step = size > 0 ? size : 1;
  for (size_t at = 0; ok && at < size; at += step)
    ok = ferry_link_cipher_feed(c, data + at, MIN(step, size - at), out, &error);
  if (ok)
    ok = ferry_link_cipher_finish(c, out, &error);
  int code = 0;
  if (!ok) {
    check(error != NULL && error->domain == FERRY_ERROR);
    code = error->code;
    check(code == FERRY_ERROR_AUTH || code == FERRY_ERROR_INVALID);
    g_error_free(error);
  }
  ferry_link_cipher_free(c);
  return code;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  size_t step = data[0];
  data++;
  size--;

  GByteArray *whole = g_byte_array_new();
  GByteArray *cut = g_byte_array_new();
  int a = open_all(data, size, 0, whole);
  int b = open_all(data, size, step, cut);
  check(a == b);
  check(whole->len <= size);
  /* what was handed out before a failure may differ by the records held
   * back, but never the bytes themselves */
  gsize common = MIN(whole->len, cut->len);
  check(memcmp(whole->data, cut->data, common) == 0);
  if (a == 0)
    check(whole->len == cut->len);
  g_byte_array_unref(whole);
  g_byte_array_unref(cut);

  char *text = g_strndup((const char *)data, MIN(size, 64));
  guint8 key[FERRY_LINK_KEY_BYTES];
  GError *error = NULL;
  if (ferry_link_key_decode(text, key, &error)) {
    char *again = ferry_link_key_encode(key);
    check(strlen(again) == 43);
    g_free(again);
  } else {
    check(error != NULL && error->code == FERRY_ERROR_INVALID);
    g_error_free(error);
  }
  g_free(text);
  return 0;
}
