/* Birthday punching's decoders (src/net/punch-wire.h) on any bytes: a punch
 * datagram is "not ours" exactly when the magic is missing, and what parses
 * writes back to the same bytes; a line that parses writes back to the very
 * same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/punch-wire.h"

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
  guint8 tag[FERRY_PUNCH_TAG_LEN], buf[FERRY_PUNCH_PACKET_LEN];
  FerryPunchPacketKind kind = ferry_punch_packet_parse(data, size, tag);
  int magic = size >= FERRY_PUNCH_MAGIC_LEN && data[0] == 0x80 && memcmp(data + 1, "ferrypn", 7) == 0;

  check((kind == FERRY_PUNCH_PACKET_NONE) == !magic);
  if (kind == FERRY_PUNCH_PACKET_PROBE || kind == FERRY_PUNCH_PACKET_ACK) {
    check(size == FERRY_PUNCH_PACKET_LEN);
    ferry_punch_packet_write(buf, kind == FERRY_PUNCH_PACKET_ACK, tag);
    check(memcmp(buf, data, size) == 0);
  }

  /* the same bytes as a line (NUL-terminated copy) */
  char *text = g_strndup((const char *)data, size);
  FerryPunchMapping m;
  struct sockaddr_in addr;
  if (strlen(text) == size && ferry_punch_line_parse(text, &m, &addr)) {
    char line[FERRY_PUNCH_LINE_MAX];
    ferry_punch_line_write(line, m, &addr);
    check(strcmp(line, text) == 0);
  }
  g_free(text);
  return 0;
}
