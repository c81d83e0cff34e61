/* Fuzz target: the checkpoint decoder on arbitrary bytes, as they are and
 * with a valid trailing checksum written over their last 32 bytes (so
 * mutations reach the field checks behind the checksum). Whatever the
 * decoder accepts must encode back to exactly the same bytes (the
 * encoding is canonical) and decode again to an equal checkpoint. */
#include <stdint.h>
#include <string.h>

#include "core/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const uint8_t *data, size_t size)
{
  FerryCheckpoint *cp = NULL, *again = NULL;
  gsize len;

  if (ferry_checkpoint_decode(data, size, &cp) != 0)
    return;
  guint8 *encoded = ferry_checkpoint_encode(cp, &len);
  if (len != size || memcmp(encoded, data, size) != 0)
    g_error("checkpoint re-encoding differs from its input (%zu vs %zu bytes)", len, size);
  if (ferry_checkpoint_decode(encoded, len, &again) != 0 || !ferry_checkpoint_equal(cp, again))
    g_error("checkpoint does not survive encode/decode");
  g_free(encoded);
  ferry_checkpoint_free(again);
  ferry_checkpoint_free(cp);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  check(data, size);
  if (size >= FERRY_HASH_LEN) {
    guint8 *sealed = g_memdup2(data, size);
    ferry_chunk_hash(sealed, size - FERRY_HASH_LEN, sealed + size - FERRY_HASH_LEN);
    check(sealed, size);
    g_free(sealed);
  }
  return 0;
}
