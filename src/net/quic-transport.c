/* The callback transport (quic-transport.h): datagrams out through a
 * function, in through ferry_quic_push_datagram(). */
#include <netinet/in.h>
#include <string.h>

#include "net/quic-transport.h"

typedef struct {
  FerryQuicTransport base;
  FerryQuicSendFunc send;
  gpointer user_data;
  GDestroyNotify destroy;
} CallbackTransport;

static int
callback_send(FerryQuicTransport *t, const guint8 *buf, gsize len, gsize segment)
{
  CallbackTransport *ct = (CallbackTransport *)t;

  if (segment == 0 || segment >= len) {
    ct->send(buf, len, ct->user_data);
    return 0;
  }
  for (gsize off = 0; off < len; off += segment)
    ct->send(buf + off, MIN(segment, len - off), ct->user_data);
  return 0;
}

static void
callback_free(FerryQuicTransport *t)
{
  CallbackTransport *ct = (CallbackTransport *)t;

  if (ct->destroy != NULL)
    ct->destroy(ct->user_data);
  g_free(ct);
}

static const FerryQuicTransportVTable callback_vtable = {
    .send = callback_send,
    .recv = NULL,
    .free = callback_free,
};

/* QUIC wants a path even when there is no socket: two fixed loopback
 * addresses stand for "us" and "the peer" and never change. */
static void
fake_address(struct sockaddr_storage *ss, socklen_t *len, guint16 port)
{
  struct sockaddr_in *sin = (struct sockaddr_in *)ss;

  memset(ss, 0, sizeof(*ss));
  sin->sin_family = AF_INET;
  sin->sin_port = g_htons(port);
  sin->sin_addr.s_addr = g_htonl(INADDR_LOOPBACK);
  *len = sizeof(*sin);
}

FerryQuicTransport *
ferry_quic_callback_transport_new(FerryQuicSendFunc send, gpointer user_data,
                                  GDestroyNotify destroy)
{
  CallbackTransport *ct;

  g_return_val_if_fail(send != NULL, NULL);
  ct = g_new0(CallbackTransport, 1);
  ct->base.vtable = &callback_vtable;
  ct->base.fd = -1;
  ct->base.can_gso = FALSE;
  ct->base.max_recv_datagram = FERRY_QUIC_CALLBACK_MAX_DATAGRAM;
  fake_address(&ct->base.local, &ct->base.local_len, 1);
  fake_address(&ct->base.remote, &ct->base.remote_len, 2);
  ct->send = send;
  ct->user_data = user_data;
  ct->destroy = destroy;
  return &ct->base;
}

void
ferry_quic_transport_free(FerryQuicTransport *t)
{
  if (t != NULL)
    t->vtable->free(t);
}
