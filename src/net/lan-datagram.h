/* The datagrams of LAN discovery (docs/protocol.md §9).
 *
 * Two kinds of one-line ASCII datagrams, fields separated by one space:
 *
 *   FERRY-LAN 1 Q <nameplate>
 *   FERRY-LAN 1 A <nameplate> <port> <instance> <server-nameplate> [<server-tag>]
 *
 * A receiver multicasts a query (Q) for the nameplate it was given; a
 * sender holding that nameplate answers (A) unicast, and also multicasts
 * the answer unsolicited about once a second. The answer names the TCP
 * port of the sender's own rendezvous, a random 64-bit instance (16
 * lowercase hex digits) that tells two senders apart, and the nameplate
 * the sender holds on that rendezvous, and — from a sender whose code is
 * also on a `ferry serve` — a tag of that server's URL (16 hex digits,
 * see lan.c's server_tag()), so that a receiver racing that server against
 * the LAN takes only answers about the same code. Nothing in them is
 * secret.
 *
 * Numbers are decimal without leading zeros; nameplates 1..999999, ports
 * 1..65535. The encoding is canonical: what parses formats back to the
 * same bytes. Pure code, no I/O. */
#ifndef FERRY_NET_LAN_DATAGRAM_H
#define FERRY_NET_LAN_DATAGRAM_H

#include <glib.h>

#include <ferry/error.h>

/* No valid datagram is longer ("FERRY-LAN 1 A 999999 65535 <16> 999999 <16>"). */
#define FERRY_LAN_DATAGRAM_MAX 80

typedef enum {
  FERRY_LAN_QUERY = 'Q',
  FERRY_LAN_ANSWER = 'A',
} FerryLanKind;

typedef struct {
  FerryLanKind kind;
  guint32 nameplate;        /* 1..FERRY_NAMEPLATE_MAX */
  guint16 port;             /* answers: the rendezvous's TCP port */
  guint64 instance;         /* answers: which sender */
  guint32 server_nameplate; /* answers: the nameplate on that rendezvous */
  guint64 server_tag;       /* answers: the tag of the sender's server, 0: none */
} FerryLanDatagram;

/* Decodes len bytes into *out. Returns 0, FERRY_ERR_TOO_LONG over
 * FERRY_LAN_DATAGRAM_MAX bytes, FERRY_ERR_VERSION for "FERRY-LAN <n>"
 * with another version, or FERRY_ERR_INVALID for anything else that is
 * not exactly one of the two forms. */
int ferry_lan_datagram_parse(const guint8 *data, gsize len, FerryLanDatagram *out);

/* Writes the datagram for d into buf (no NUL is counted; one is written
 * when there is room). Returns the length, FERRY_ERR_INVALID when a field
 * is out of range or the kind unknown, or FERRY_ERR_TOO_LONG when size is
 * too small (FERRY_LAN_DATAGRAM_MAX + 1 is always enough). */
int ferry_lan_datagram_format(const FerryLanDatagram *d, char *buf, gsize size);

#endif
