/* Birthday punching: a direct UDP path through an endpoint-dependent
 * ("symmetric") NAT on one side and an endpoint-independent one on the
 * other, where ICE alone needs a relay (docs/protocol.md §7.4).
 *
 * Each side first learns how its NAT maps one UDP socket: it asks two STUN
 * servers at different addresses for its mapped address. The same address
 * and port from both means endpoint-independent (EIM), the same address
 * with different ports endpoint-dependent (EDM). It tells the peer with a
 * sealed "punch" line (the line handler), and feeds the peer's line in
 * with ferry_punch_set_peer(). When both are EIM at different addresses,
 * each probes the other's mapping from that one socket (plain hole
 * punching, quicker than libnice's nomination). When one side is EDM and
 * the other EIM:
 *
 *   - the EDM side opens many sockets (256) and sends tagged probes from
 *     each to the peer's known mapping: each socket gets its own outside
 *     port, which nobody can predict;
 *   - the EIM side sends probes from its one socket to many random ports
 *     (4096) of the EDM side's public address: each opens its own NAT's
 *     filter for that port.
 *
 * With 256 × 4096 / 64512 ≈ 16 expected meetings, some probe lands on a
 * port that is open both ways. Whoever gets a probe answers with an ack;
 * the receiver answers an ack with an ack; the sender (QUIC client) takes
 * the first ack it gets as a working path (the ready handler) and starts
 * QUIC on that socket. The receiver keeps every socket open until a
 * datagram that is not a punch packet (the sender's first QUIC packet)
 * arrives from an address that proved itself with a tagged packet (the
 * datagram handler), or until it is freed.
 *
 * Everything runs on the GMainContext given at creation; handlers run from
 * it, never inside a ferry_punch_*() call. A handler may free the punch. */
#ifndef FERRY_NET_PUNCH_H
#define FERRY_NET_PUNCH_H

#include <gio/gio.h>
#include <netinet/in.h>

#include "net/punch-wire.h"

G_BEGIN_DECLS

#define FERRY_PUNCH_DEFAULT_SOCKETS 256  /* EDM side */
#define FERRY_PUNCH_DEFAULT_PORTS   4096 /* EIM side: distinct ports sprayed */
#define FERRY_PUNCH_DEFAULT_SEND_MS 5000 /* sending stops after this */
#define FERRY_PUNCH_MAX_SERVERS     4

typedef struct _FerryPunch FerryPunch;

typedef struct {
  gboolean sender;                 /* the QUIC client: decides the path */
  guint8 key[FERRY_PUNCH_KEY_LEN]; /* derived from the PAKE key; tags */
  /* STUN servers for the mapping test, "HOST" and port; names are
   * resolved, IPv4 only. Two at different addresses are needed. */
  const char *server_hosts[FERRY_PUNCH_MAX_SERVERS];
  guint16 server_ports[FERRY_PUNCH_MAX_SERVERS];
  guint n_servers;
  guint sockets;     /* 0: FERRY_PUNCH_DEFAULT_SOCKETS */
  guint ports;       /* 0: FERRY_PUNCH_DEFAULT_PORTS */
  guint send_ms;     /* 0: FERRY_PUNCH_DEFAULT_SEND_MS */
  guint mapping_ms;  /* the mapping test gives up after; 0: 2000 */
  guint peer_ms;     /* waiting for the peer's line, after ours; 0: 3000 */
  GMainContext *ctx; /* NULL: the thread-default context */
} FerryPunchConfig;

typedef struct {
  /* Send this line to the peer through the sealed link. */
  void (*line)(FerryPunch *p, const char *line, gpointer user_data);
  /* Sender: probes went both ways on fd with peer: the socket (connected
   * to peer) is the caller's now. */
  void (*ready)(FerryPunch *p, int fd, const struct sockaddr_in *peer, gpointer user_data);
  /* Receiver: the sender's first datagram that is not a punch packet (its
   * QUIC packet) came on fd from peer: fd (connected) is the caller's. */
  void (*datagram)(FerryPunch *p, int fd, const struct sockaddr_in *peer, const guint8 *data,
                   gsize len, gpointer user_data);
  /* No path will come from this punch: why is a short reason ("the mapping
   * is not known", "no reply within 5 s"). The receiver gets it only when
   * there is nothing to punch; afterwards it keeps listening. */
  void (*over)(FerryPunch *p, const char *why, gpointer user_data);
} FerryPunchHandlers;

/* Starts the mapping test. Returns NULL with FERRY_ERROR_IO when no UDP
 * socket can be made. */
FerryPunch *ferry_punch_new(const FerryPunchConfig *config, const FerryPunchHandlers *handlers,
                            gpointer user_data, GError **error);

/* The peer's line (docs/protocol.md §7.4). Returns FALSE with
 * FERRY_ERROR_INVALID for a malformed line; a second line is ignored. */
gboolean ferry_punch_set_peer(FerryPunch *p, const char *line, GError **error);

/* Our mapping as measured (UNKNOWN before the test ends). */
FerryPunchMapping ferry_punch_get_mapping(FerryPunch *p);

/* How many punch datagrams were sent, and since when the punch runs. */
guint ferry_punch_get_sent(FerryPunch *p);
gint64 ferry_punch_get_elapsed_ms(FerryPunch *p);

/* Closes every socket not handed over and stops. */
void ferry_punch_free(FerryPunch *p);

G_END_DECLS

#endif
