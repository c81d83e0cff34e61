/* FerryStunServer: Binding requests in, the client's address out, on UDP
 * (XOR-MAPPED-ADDRESS for RFC 8489 clients, MAPPED-ADDRESS for classic
 * RFC 3489 ones). */
#include "ferry-config.h"

#include "server/stun-server.h"
#include "core/stun.h"

#include <stdatomic.h>
#include <string.h>
#include <netinet/in.h>

/* A datagram this long is not a STUN request we would answer; reading
 * one byte more than the largest accepted size tells a truncated datagram
 * from a complete one without looking at MSG_TRUNC. */
#define MAX_REQUEST 1500

/* Datagrams handled per wake-up before other sources get their turn. */
#define BURST    64

#define SOFTWARE "ferry/" FERRY_VERSION

typedef struct {
  FerryStunServer *server;
  GSocket *socket;
  GSource *source;
} Listener;

struct _FerryStunServer {
  GMainContext *context;
  GPtrArray *listeners;
  guint16 port;
  _Atomic guint64 requests;
  _Atomic guint64 responses;
  _Atomic guint64 dropped;
};

static void
listener_free(gpointer data)
{
  Listener *l = data;

  g_source_destroy(l->source);
  g_source_unref(l->source);
  g_socket_close(l->socket, NULL);
  g_object_unref(l->socket);
  g_free(l);
}

FerryStunServer *
ferry_stun_server_new(GMainContext *context)
{
  FerryStunServer *server = g_new0(FerryStunServer, 1);

  server->context = context != NULL ? g_main_context_ref(context) : NULL;
  server->listeners = g_ptr_array_new_with_free_func(listener_free);
  return server;
}

void
ferry_stun_server_free(FerryStunServer *server)
{
  if (server == NULL)
    return;
  g_ptr_array_unref(server->listeners);
  if (server->context != NULL)
    g_main_context_unref(server->context);
  g_free(server);
}

static void
count(_Atomic guint64 *counter)
{
  atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* One datagram: answer it if it is a Binding request (RFC 8489 or classic
 * RFC 3489, each in its own form), else count it as dropped. The response
 * goes back to the address the datagram came from, from the socket it
 * arrived on, so the client sees the address it asked. */
static void
handle_datagram(FerryStunServer *server, GSocket *socket, GSocketAddress *from, const uint8_t *buf,
                size_t len)
{
  FerryStunRequest req;
  struct sockaddr_storage native;
  uint8_t out[FERRY_STUN_MAX_RESPONSE];
  GError *error = NULL;
  int n;

  if (len > MAX_REQUEST || ferry_stun_parse_binding_request(buf, len, &req) < 0) {
    count(&server->dropped);
    return;
  }
  count(&server->requests);

  if (!g_socket_address_to_native(from, &native, sizeof native, NULL)) {
    count(&server->dropped);
    return;
  }
  if (req.error_code != 0)
    n = ferry_stun_build_error_response(&req, SOFTWARE, out, sizeof out);
  else
    n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&native, SOFTWARE, out,
                                          sizeof out);
  if (n < 0) {
    count(&server->dropped);
    return;
  }
  if (g_socket_send_to(socket, from, (const char *)out, (gsize)n, NULL, &error) < 0) {
    g_debug("STUN response not sent: %s", error->message);
    g_clear_error(&error);
    count(&server->dropped);
    return;
  }
  count(&server->responses);
}

static gboolean
on_readable(GSocket *socket, GIOCondition condition, gpointer data)
{
  Listener *l = data;
  uint8_t buf[MAX_REQUEST + 1];

  for (int i = 0; i < BURST; i++) {
    GSocketAddress *from = NULL;
    GError *error = NULL;
    gssize n = g_socket_receive_from(socket, &from, (char *)buf, sizeof buf, NULL, &error);

    if (n < 0) {
      /* Anything but "no more datagrams" (an ICMP error reported on the
       * socket, say) ends this round; the source stays. */
      if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        g_debug("STUN receive: %s", error->message);
      g_error_free(error);
      break;
    }
    if (from != NULL)
      handle_datagram(l->server, socket, from, buf, (size_t)n);
    else
      count(&l->server->dropped);
    g_clear_object(&from);
  }
  return G_SOURCE_CONTINUE;
}

static GSocket *
bind_socket(GInetAddress *inet, guint16 port, gboolean dual_stack, GError **error)
{
  GSocketFamily family = g_inet_address_get_family(inet);
  GSocket *socket;
  GSocketAddress *sa;
  gboolean ok;

  socket = g_socket_new(family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, error);
  if (socket == NULL)
    return NULL;
  /* An explicit IPv6 address means that address only, so that "::" and
   * "0.0.0.0" can both be listed; no address means both families. */
  if (family == G_SOCKET_FAMILY_IPV6 &&
      !g_socket_set_option(socket, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? 0 : 1, error)) {
    g_object_unref(socket);
    return NULL;
  }
  g_socket_set_blocking(socket, FALSE);
  sa = g_inet_socket_address_new(inet, port);
  ok = g_socket_bind(socket, sa, FALSE, error);
  g_object_unref(sa);
  if (!ok) {
    g_object_unref(socket);
    return NULL;
  }
  return socket;
}

/* "192.0.2.1:3478" or "[2001:db8::1]:3478". */
static char *
format_endpoint(const char *host, guint16 port)
{
  if (strchr(host, ':') != NULL)
    return g_strdup_printf("[%s]:%u", host, port);
  return g_strdup_printf("%s:%u", host, port);
}

gboolean
ferry_stun_server_listen(FerryStunServer *server, const char *address, guint16 port, GError **error)
{
  GInetAddress *inet;
  GSocket *socket;
  GSocketAddress *local;
  GError *local_error = NULL;
  Listener *l;
  char *shown, *where;

  if (port == 0)
    port = server->port;
  else if (server->port != 0 && port != server->port)
    return ferry_set_error(error, FERRY_ERR_STATE,
                           "cannot listen for STUN on port %u: this responder already answers "
                           "on port %u (use one port for every address)",
                           port, server->port);

  if (address == NULL) {
    inet = g_inet_address_new_any(G_SOCKET_FAMILY_IPV6);
    socket = bind_socket(inet, port, TRUE, &local_error);
    if (socket == NULL && !g_error_matches(local_error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE)) {
      /* No IPv6 on this host (no module, or disabled): IPv4 alone. A port
       * in use is reported as such, not papered over with IPv4. */
      g_debug("STUN: no dual-stack socket (%s), using IPv4 only", local_error->message);
      g_clear_error(&local_error);
      g_object_unref(inet);
      inet = g_inet_address_new_any(G_SOCKET_FAMILY_IPV4);
      socket = bind_socket(inet, port, FALSE, &local_error);
    }
  } else {
    inet = g_inet_address_new_from_string(address);
    if (inet == NULL)
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "cannot listen for STUN on '%s': not an IP address (give an IPv4 "
                             "or IPv6 literal such as 0.0.0.0 or ::)",
                             address);
    socket = bind_socket(inet, port, FALSE, &local_error);
  }

  shown = g_inet_address_to_string(inet);
  g_object_unref(inet);
  if (socket == NULL) {
    where = format_endpoint(shown, port);
    ferry_set_error(error, FERRY_ERR_IO,
                    "cannot listen for STUN on UDP %s: %s (choose another address or port, or "
                    "stop the program that holds it)",
                    where, local_error->message);
    g_free(where);
    g_error_free(local_error);
    g_free(shown);
    return FALSE;
  }

  if (server->port == 0) {
    local = g_socket_get_local_address(socket, NULL);
    if (local != NULL)
      server->port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(local));
    g_clear_object(&local);
  }
  where = format_endpoint(shown, server->port);
  g_debug("STUN responder on UDP %s", where);
  g_free(where);
  g_free(shown);

  l = g_new0(Listener, 1);
  l->server = server;
  l->socket = socket;
  l->source = g_socket_create_source(socket, G_IO_IN, NULL);
  g_source_set_callback(l->source, G_SOURCE_FUNC(on_readable), l, NULL);
  g_source_set_name(l->source, "ferry STUN responder");
  g_source_attach(l->source, server->context);
  g_ptr_array_add(server->listeners, l);
  return TRUE;
}

guint16
ferry_stun_server_get_port(FerryStunServer *server)
{
  return server->port;
}

guint64
ferry_stun_server_get_requests(FerryStunServer *server)
{
  return atomic_load_explicit(&server->requests, memory_order_relaxed);
}

guint64
ferry_stun_server_get_responses(FerryStunServer *server)
{
  return atomic_load_explicit(&server->responses, memory_order_relaxed);
}

guint64
ferry_stun_server_get_dropped(FerryStunServer *server)
{
  return atomic_load_explicit(&server->dropped, memory_order_relaxed);
}
