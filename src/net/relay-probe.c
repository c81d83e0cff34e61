/* Datagram size probes on a relayed path: see relay-probe.h and
 * docs/protocol.md §7.2.1. */
#include <string.h>

#include "net/relay-probe.h"

static const guint8 magic[FERRY_RELAY_PROBE_MAGIC_LEN] = {0x80, 'f', 'e', 'r', 'r', 'y', 'm', 't'};

#define KIND_PROBE 1
#define KIND_ECHO  2

FerryRelayProbeKind
ferry_relay_probe_parse(const guint8 *data, gsize len, guint16 *size)
{
  if (len < sizeof magic || memcmp(data, magic, sizeof magic) != 0)
    return FERRY_RELAY_PROBE_NONE;
  if (len < FERRY_RELAY_PROBE_HEADER)
    return FERRY_RELAY_PROBE_BAD;
  guint16 n = (guint16)(data[9] << 8 | data[10]);
  if (n < FERRY_RELAY_PROBE_HEADER)
    return FERRY_RELAY_PROBE_BAD;
  if (data[8] == KIND_PROBE && len == n) {
    *size = n;
    return FERRY_RELAY_PROBE_PROBE;
  }
  if (data[8] == KIND_ECHO && len == FERRY_RELAY_PROBE_HEADER) {
    *size = n;
    return FERRY_RELAY_PROBE_ECHO;
  }
  return FERRY_RELAY_PROBE_BAD;
}

gsize
ferry_relay_probe_write(guint8 *buf, guint16 size, gboolean echo)
{
  g_return_val_if_fail(size >= FERRY_RELAY_PROBE_HEADER, 0);
  memcpy(buf, magic, sizeof magic);
  buf[8] = echo ? KIND_ECHO : KIND_PROBE;
  buf[9] = (guint8)(size >> 8);
  buf[10] = (guint8)size;
  if (echo)
    return FERRY_RELAY_PROBE_HEADER;
  memset(buf + FERRY_RELAY_PROBE_HEADER, 0, size - FERRY_RELAY_PROBE_HEADER);
  return size;
}
