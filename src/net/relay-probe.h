/* Datagram size probes on a relayed path (docs/protocol.md §7.2.1).
 *
 * Two kinds of datagram, sent through the TURN relay beside QUIC's:
 *
 *   probe: magic (8) | kind 1 | size (2, big-endian) | zeros up to size
 *   echo:  magic (8) | kind 2 | size (2, big-endian)
 *
 * The magic, 0x80 then ASCII "ferrymt", has QUIC's fixed bit clear and
 * STUN's top bits set, so neither protocol takes it for its own. A probe
 * is exactly `size` bytes long, an echo exactly FERRY_RELAY_PROBE_HEADER.
 * Pure code, no I/O. */
#ifndef FERRY_NET_RELAY_PROBE_H
#define FERRY_NET_RELAY_PROBE_H

#include <glib.h>

#define FERRY_RELAY_PROBE_MAGIC_LEN 8
#define FERRY_RELAY_PROBE_HEADER    11

typedef enum {
  FERRY_RELAY_PROBE_NONE = 0,  /* not a probe datagram: QUIC's */
  FERRY_RELAY_PROBE_BAD = 1,   /* the magic, but malformed: drop it */
  FERRY_RELAY_PROBE_PROBE = 2, /* a probe of *size bytes */
  FERRY_RELAY_PROBE_ECHO = 3,  /* the peer got our probe of *size bytes */
} FerryRelayProbeKind;

/* What data (len bytes, as received) is; *size is set for a probe or an
 * echo. */
FerryRelayProbeKind ferry_relay_probe_parse(const guint8 *data, gsize len, guint16 *size);

/* Writes into buf a probe of size bytes (buf holds size, at least
 * FERRY_RELAY_PROBE_HEADER), or with echo TRUE the 11-byte echo of one.
 * Returns the datagram's length. */
gsize ferry_relay_probe_write(guint8 *buf, guint16 size, gboolean echo);

#endif
