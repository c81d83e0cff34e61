/* Birthday punching on the wire (docs/protocol.md §7.4): the punch
 * datagrams and the sealed "punch" lines. Pure code, no I/O.
 *
 * A punch datagram is 25 bytes:
 *
 *   magic (8) | kind (1) | tag (16)
 *
 * The magic, 0x80 then ASCII "ferrypn", has QUIC's fixed bit clear and
 * STUN's top bits set (as the relay probes', §7.2.1), so neither protocol
 * takes it for its own. kind 1 is a probe, kind 2 an ack. The tag proves
 * the datagram comes from the peer of this connection: the first 16 bytes
 * of BLAKE2b keyed with a key derived from the PAKE, over the label
 * "ferry punch v1", the sender's role ('s' sender, 'r' receiver) and the
 * kind.
 *
 * The line each side sends through the sealed peer link once it knows its
 * own NAT mapping:
 *
 *   punch eim A.B.C.D:PORT   one mapping for every destination: this one
 *   punch edm A.B.C.D        a new mapping per destination, at this address
 *   punch none               not known (or nothing to punch) */
#ifndef FERRY_NET_PUNCH_WIRE_H
#define FERRY_NET_PUNCH_WIRE_H

#include <glib.h>
#include <netinet/in.h>

#define FERRY_PUNCH_MAGIC_LEN  8
#define FERRY_PUNCH_TAG_LEN    16
#define FERRY_PUNCH_KEY_LEN    32
#define FERRY_PUNCH_PACKET_LEN (FERRY_PUNCH_MAGIC_LEN + 1 + FERRY_PUNCH_TAG_LEN)
#define FERRY_PUNCH_LINE_MAX   40 /* "punch eim 255.255.255.255:65535" and room */

typedef enum {
  FERRY_PUNCH_PACKET_NONE = 0, /* not a punch datagram */
  FERRY_PUNCH_PACKET_BAD,      /* the magic, but malformed: drop it */
  FERRY_PUNCH_PACKET_PROBE,
  FERRY_PUNCH_PACKET_ACK,
} FerryPunchPacketKind;

/* How a NAT maps one local socket (RFC 4787 section 4.1). */
typedef enum {
  FERRY_PUNCH_MAPPING_UNKNOWN = 0,
  FERRY_PUNCH_MAPPING_EIM, /* endpoint-independent: one outside address and port */
  FERRY_PUNCH_MAPPING_EDM, /* endpoint-dependent ("symmetric"): a new port per destination */
} FerryPunchMapping;

/* What data (len bytes, as received) is; for a probe or an ack its tag is
 * copied to tag. */
FerryPunchPacketKind ferry_punch_packet_parse(const guint8 *data, gsize len,
                                              guint8 tag[FERRY_PUNCH_TAG_LEN]);

/* Writes a probe (or with ack TRUE an ack) carrying tag into buf; returns
 * FERRY_PUNCH_PACKET_LEN. */
gsize ferry_punch_packet_write(guint8 buf[FERRY_PUNCH_PACKET_LEN], gboolean ack,
                               const guint8 tag[FERRY_PUNCH_TAG_LEN]);

/* The tag the side `sender` puts on packets of kind ack/probe, under key. */
void ferry_punch_tag(const guint8 key[FERRY_PUNCH_KEY_LEN], gboolean sender, gboolean ack,
                     guint8 tag[FERRY_PUNCH_TAG_LEN]);

/* Parses a whole line ("punch eim 198.51.100.7:40000", "punch edm
 * 203.0.113.9", "punch none"). *addr gets the address (port 0 for edm;
 * zeroed for none). Returns FALSE for anything else, including an address
 * that is not a dotted IPv4 address or a port outside 1..65535. */
gboolean ferry_punch_line_parse(const char *text, FerryPunchMapping *mapping,
                                struct sockaddr_in *addr);

/* Writes the line for mapping and addr into buf (FERRY_PUNCH_LINE_MAX
 * bytes, NUL-terminated). */
void ferry_punch_line_write(char buf[FERRY_PUNCH_LINE_MAX], FerryPunchMapping mapping,
                            const struct sockaddr_in *addr);

#endif
