/* The UDP transport for QUIC (net/quic-transport.h) over a socket the
 * connection's thread owns while the connection lives.
 *
 * Built for speed: recvmmsg with UDP GRO (many datagrams per system call),
 * sendmsg with a UDP_SEGMENT control message (up to 64 datagrams of one
 * size per call), large socket buffers (SO_*BUFFORCE when allowed). ICMP
 * errors (ECONNREFUSED, host unreachable, and the IP_RECVERR error queue)
 * are drained and ignored, as QUIC must: they are easy to forge.
 *
 * The socket may be shared with ICE: a direct pair's socket taken over from
 * libnice (nice_agent_get_selected_socket()) still receives libnice's STUN
 * keepalives and checks. Datagrams that are STUN (RFC 5389: first two bits
 * zero, magic cookie, consistent length) never reach QUIC: they go to the
 * filter function, or are dropped. Datagrams from any address but the
 * peer's are dropped when the socket is not connected. */
#ifndef FERRY_NET_UDP_H
#define FERRY_NET_UDP_H

#include "net/quic-transport.h"

G_BEGIN_DECLS

typedef enum {
  FERRY_UDP_NONE = 0,
  FERRY_UDP_CLOSE_FD = 1 << 0, /* close the socket when the transport is freed */
  FERRY_UDP_NO_GSO = 1 << 1,   /* never send with UDP_SEGMENT (for comparisons) */
  FERRY_UDP_NO_GRO = 1 << 2,   /* never ask for UDP GRO on receive */
} FerryUdpFlags;

/* A non-QUIC datagram that arrived on the socket (STUN); called on the
 * connection's thread, data valid during the call only. */
typedef void (*FerryUdpFilterFunc)(const guint8 *data, gsize len, const struct sockaddr *from,
                                   socklen_t from_len, gpointer user_data);

/* Counters, readable from any thread while the transport works. */
typedef struct {
  guint64 datagrams_in;  /* delivered to QUIC */
  guint64 datagrams_out; /* handed to the kernel */
  guint64 stun_filtered; /* STUN datagrams kept away from QUIC */
  guint64 foreign;       /* dropped: not from the peer's address */
  guint64 send_dropped;  /* the kernel refused them (ICMP errors, no buffer) */
  guint64 syscalls_out;  /* sendmsg/sendmmsg calls */
  guint64 syscalls_in;   /* recvmmsg calls that returned data */
  gboolean gso;          /* UDP_SEGMENT in use */
  gboolean gro;          /* UDP_GRO in use */
} FerryUdpStats;

/* A transport over the UDP socket fd (IPv4 or IPv6, bound). peer is where
 * the datagrams go; NULL when fd is connected (its peer is used). The
 * socket is made non-blocking, given large buffers, GRO, and "probe" path
 * MTU discovery (DF set, kernel cache ignored: QUIC finds the MTU itself).
 * When the transport is freed, the options that would confuse a later owner
 * (GRO, MTU discovery, O_NONBLOCK) are put back — with or without
 * FERRY_UDP_CLOSE_FD, as fd may be a dup() of libnice's socket — so the
 * socket can be handed back to libnice.
 * Returns NULL with FERRY_ERROR_INVALID or FERRY_ERROR_IO when fd is not a
 * usable UDP socket. Give the result to ferry_quic_new(), which owns it. */
FerryQuicTransport *ferry_udp_transport_new(int fd, const struct sockaddr *peer, socklen_t peer_len,
                                            FerryUdpFlags flags, GError **error);

/* Sets where STUN datagrams go (func NULL: dropped). Call before the
 * transport is given to ferry_quic_new(). */
void ferry_udp_transport_set_filter(FerryQuicTransport *t, FerryUdpFilterFunc func,
                                    gpointer user_data);

void ferry_udp_transport_get_stats(FerryQuicTransport *t, FerryUdpStats *stats);

/* Whether a and b are the same IPv4 or IPv6 address and port; an IPv6
 * scope of 0 (libnice's remote candidates carry none) matches any. */
gboolean ferry_udp_same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Gives the socket fd send and receive buffers of 16 MiB (past
 * net.core.[rw]mem_max where the process may, else up to it): the
 * kernel's default (~200 KiB) holds only a dozen large datagrams. */
void ferry_udp_raise_buffers(int fd);

/* The largest UDP payload worth sending to peer from the socket fd when
 * the peer is on this very host (its address is one of ours): packets to
 * it never leave the machine, so the kernel's MTU for the route (the
 * loopback device's, 64 KiB) is the path MTU, exactly. Capped at `cap`.
 * A link-local IPv6 peer without a scope is taken to be on fd's
 * interface (fd may be -1 where there is no socket yet). Returns 0 when peer is not on this host or
 * the MTU cannot be read: then nothing is known beyond a link's first hop, and QUIC's own path MTU
 * discovery decides. */
gsize ferry_udp_same_host_payload(int fd, const struct sockaddr *peer, socklen_t peer_len,
                                  gsize cap);

/* TRUE when data[0..len) is a STUN message (RFC 5389 header checks). QUIC
 * packets never pass: ngtcp2 may clear the QUIC fixed bit ("greasing"), so
 * a first byte of 0-3 alone does not tell STUN from QUIC. */
gboolean ferry_udp_is_stun(const guint8 *data, gsize len);

G_END_DECLS

#endif
