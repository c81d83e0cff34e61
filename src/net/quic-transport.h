/* How a QUIC connection (net/quic.h) reaches its peer: a small vtable.
 *
 * A transport moves whole UDP datagrams and nothing else. Two exist:
 * net/udp.h, a UDP socket read and written by the connection's own thread
 * with recvmmsg/GRO and sendmsg/GSO (a direct ICE pair whose socket was
 * taken over), and the callback transport below, which hands each outgoing
 * datagram to a function and is fed incoming ones by the caller with
 * ferry_quic_push_datagram() (a relayed ICE pair: nice_agent_send() out,
 * libnice's receive callback in). The QUIC code above is the same for both.
 *
 * Every vtable function is called on the connection's thread only. */
#ifndef FERRY_NET_QUIC_TRANSPORT_H
#define FERRY_NET_QUIC_TRANSPORT_H

#include <sys/socket.h>

#include <glib.h>

G_BEGIN_DECLS

typedef struct _FerryQuicTransport FerryQuicTransport;

/* Hands one received datagram to the QUIC connection; data is valid during
 * the call only. */
typedef void (*FerryQuicDeliverFunc)(gpointer ctx, const guint8 *data, gsize len);

typedef struct {
  /* Sends buf[0..len) as one datagram when segment is 0 or len <= segment,
   * otherwise as consecutive datagrams of segment bytes each, the last one
   * possibly shorter (segment > 0 with several datagrams only when can_gso
   * is set or the transport splits the buffer itself). Returns 0 when the
   * datagrams left or were dropped (UDP semantics: QUIC recovers), -EAGAIN
   * when the transport cannot take them now (poll fd for POLLOUT, then call
   * again with the same buffer), or another negative errno when the
   * transport is broken for good. */
  int (*send)(FerryQuicTransport *t, const guint8 *buf, gsize len, gsize segment);
  /* Reads what is waiting without blocking and hands each QUIC datagram to
   * deliver. Returns the number of datagrams delivered (0: nothing was
   * waiting) or a negative errno when the transport is broken for good.
   * NULL for transports fed only by ferry_quic_push_datagram(). */
  int (*recv)(FerryQuicTransport *t, FerryQuicDeliverFunc deliver, gpointer ctx);
  /* Releases the transport (the connection owns it). */
  void (*free)(FerryQuicTransport *t);
} FerryQuicTransportVTable;

/* The common head of every transport; implementations embed it first. */
struct _FerryQuicTransport {
  const FerryQuicTransportVTable *vtable;
  int fd;                  /* polled for POLLIN (and POLLOUT after -EAGAIN); -1: none */
  gboolean can_gso;        /* send() takes several segments in one call */
  gsize max_recv_datagram; /* the largest datagram it can receive (>= 1200) */
  struct sockaddr_storage local, remote; /* the path as QUIC sees it */
  socklen_t local_len, remote_len;
};

/* Sends one datagram to the peer; called on the connection's thread. The
 * datagram is valid during the call only; what the function does with it
 * (nice_agent_send(), a test's lossy pipe) is up to it, and a datagram it
 * drops is simply lost. */
typedef void (*FerryQuicSendFunc)(const guint8 *data, gsize len, gpointer user_data);

/* The callback transport: outgoing datagrams go to send(user_data), one
 * call each; incoming ones are pushed with ferry_quic_push_datagram().
 * destroy (may be NULL) is called on user_data when the transport is freed.
 * It advertises a maximum incoming datagram of
 * FERRY_QUIC_CALLBACK_MAX_DATAGRAM bytes; the caller may raise
 * max_recv_datagram (up to FERRY_QUIC_MAX_UDP_PAYLOAD) before
 * ferry_quic_new() where its path carries more. Returns a transport that the
 * caller gives to ferry_quic_new(), which then owns it. */
#define FERRY_QUIC_CALLBACK_MAX_DATAGRAM 1500
FerryQuicTransport *ferry_quic_callback_transport_new(FerryQuicSendFunc send, gpointer user_data,
                                                      GDestroyNotify destroy);

/* Frees a transport that was never given to ferry_quic_new(). */
void ferry_quic_transport_free(FerryQuicTransport *t);

G_END_DECLS

#endif
