/* LAN discovery datagrams (src/net/lan-datagram.h) as a sender or a
 * receiver reads them off the network: whatever the bytes, the decoder
 * returns 0 or one of its documented errors; what it accepts has every
 * field in range and formats back to exactly the bytes it came from; and
 * a datagram of the right magic with any other version is told apart as
 * FERRY_ERR_VERSION. */
#include <stdlib.h>
#include <string.h>

#include <ferry/code.h>

#include "net/lan-datagram.h"

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
  FerryLanDatagram d;
  char buf[FERRY_LAN_DATAGRAM_MAX + 1];
  int rc = ferry_lan_datagram_parse(data, size, &d);

  if (size > FERRY_LAN_DATAGRAM_MAX) {
    check(rc == FERRY_ERR_TOO_LONG);
    return 0;
  }
  check(rc == 0 || rc == FERRY_ERR_INVALID || rc == FERRY_ERR_VERSION);
  if (rc == FERRY_ERR_VERSION)
    check(size > 10 && memcmp(data, "FERRY-LAN ", 10) == 0 && data[10] >= '0' && data[10] <= '9' &&
          !(data[10] == '1' && (size == 11 || data[11] == ' ')));
  if (rc != 0)
    return 0;

  check(d.kind == FERRY_LAN_QUERY || d.kind == FERRY_LAN_ANSWER);
  check(d.nameplate >= 1 && d.nameplate <= FERRY_NAMEPLATE_MAX);
  if (d.kind == FERRY_LAN_ANSWER)
    check(d.port != 0 && d.server_nameplate >= 1 && d.server_nameplate <= FERRY_NAMEPLATE_MAX);
  else
    check(d.port == 0 && d.instance == 0 && d.server_nameplate == 0);

  int n = ferry_lan_datagram_format(&d, buf, sizeof buf);
  check(n > 0 && (size_t)n == size && memcmp(buf, data, size) == 0);
  /* one byte short of room is refused, never cut */
  check(ferry_lan_datagram_format(&d, buf, (size_t)n) == FERRY_ERR_TOO_LONG);
  return 0;
}
