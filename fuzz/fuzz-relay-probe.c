/* Datagram size probes (src/net/relay-probe.h) as they arrive through a
 * relay: whatever the bytes, the parser says "not ours" exactly when the
 * magic is missing; what it takes as a probe or an echo has a size in
 * range and writes back to the very same bytes (a probe's padding taken as
 * zeros). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/relay-probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
  if (!ok)
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  guint16 n = 0;
  FerryRelayProbeKind kind = ferry_relay_probe_parse(data, size, &n);
  int magic =
      size >= FERRY_RELAY_PROBE_MAGIC_LEN && data[0] == 0x80 && memcmp(data + 1, "ferrymt", 7) == 0;

  check((kind == FERRY_RELAY_PROBE_NONE) == !magic);
  if (kind != FERRY_RELAY_PROBE_PROBE && kind != FERRY_RELAY_PROBE_ECHO)
    return 0;
  check(n >= FERRY_RELAY_PROBE_HEADER);
  guint8 *buf = malloc(n);
  gsize len = ferry_relay_probe_write(buf, n, kind == FERRY_RELAY_PROBE_ECHO);
  check(len == size);
  check(memcmp(buf, data, FERRY_RELAY_PROBE_HEADER) == 0);
  free(buf);
  return 0;
}
