/* The TLS tunnel FerryIce puts in front of a turns: server (see ice-tls.h
 * for why). One Link per TCP connection libnice opens: connect to the
 * server, TLS handshake, then splice the two streams until either closes. */
#include "net/ice-tls.h"

#include <ferry/error.h>

struct _FerryIceTlsTunnel {
  GSocketService *service;
  char *host;
  guint16 port;
  char *servername;
  gboolean insecure;
  char *name; /* the turns: URL, for messages */
  guint16 local_port;
  GError *error;
  GList *links;
  gboolean freed;
  FerryIceTlsFailedFunc on_failed;
  gpointer user_data;
  GDestroyNotify done;
  gpointer done_data;
};

typedef struct {
  FerryIceTlsTunnel *tunnel;
  GSocketConnection *local;
  GSocketConnection *remote;
  GIOStream *tls;
  GCancellable *cancel;
} Link;

static void
tunnel_finish(FerryIceTlsTunnel *t)
{
  GDestroyNotify done = t->done;
  gpointer done_data = t->done_data;

  g_clear_error(&t->error);
  g_free(t->host);
  g_free(t->servername);
  g_free(t->name);
  g_free(t);
  if (done != NULL)
    done(done_data);
}

/* Ends a link: closes both sockets (libnice sees the TURN connection end)
 * and frees it; the last link of a freed tunnel frees the tunnel. */
static void
link_finish(Link *link)
{
  FerryIceTlsTunnel *t = link->tunnel;

  if (link->remote != NULL)
    g_io_stream_close(G_IO_STREAM(link->remote), NULL, NULL);
  g_io_stream_close(G_IO_STREAM(link->local), NULL, NULL);
  g_clear_object(&link->tls);
  g_clear_object(&link->remote);
  g_clear_object(&link->local);
  g_clear_object(&link->cancel);
  t->links = g_list_remove(t->links, link);
  g_free(link);
  if (t->freed && t->links == NULL)
    tunnel_finish(t);
}

static void
link_fail(Link *link, GError *error, gboolean tls)
{
  FerryIceTlsTunnel *t = link->tunnel;

  if (!g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_clear_error(&t->error);
    g_set_error(&t->error, FERRY_ERROR, FERRY_ERROR_IO, "%s TURN server %s failed: %s%s",
                tls ? "TLS with" : "connecting to", t->name, error->message,
                g_error_matches(error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE)
                    ? "; name the certificate's host with ?servername=, or add ?insecure=1 "
                      "only on a network you trust"
                    : "");
    g_debug("%s", t->error->message);
  }
  g_error_free(error);
  if (t->freed) {
    link_finish(link); /* may free t */
    return;
  }
  link_finish(link);
  if (t->links == NULL && t->error != NULL && t->on_failed != NULL)
    t->on_failed(t, t->user_data);
}

static void
on_splice_done(GObject *source, GAsyncResult *res, gpointer user_data)
{
  Link *link = user_data;
  GError *error = NULL;

  if (!g_io_stream_splice_finish(res, &error)) {
    g_debug("TURN TLS tunnel to %s closed: %s", link->tunnel->name, error->message);
    g_error_free(error);
  }
  link_finish(link);
}

static void
on_handshake(GObject *source, GAsyncResult *res, gpointer user_data)
{
  Link *link = user_data;
  GError *error = NULL;

  if (!g_tls_connection_handshake_finish(G_TLS_CONNECTION(source), res, &error)) {
    link_fail(link, error, TRUE);
    return;
  }
  g_io_stream_splice_async(G_IO_STREAM(link->local), link->tls,
                           G_IO_STREAM_SPLICE_CLOSE_STREAM1 | G_IO_STREAM_SPLICE_CLOSE_STREAM2 |
                               G_IO_STREAM_SPLICE_WAIT_FOR_BOTH,
                           G_PRIORITY_DEFAULT, link->cancel, on_splice_done, link);
}

static gboolean
accept_any_certificate(GTlsConnection *conn, GTlsCertificate *cert, GTlsCertificateFlags errors,
                       gpointer user_data)
{
  return TRUE;
}

static void
on_connected(GObject *source, GAsyncResult *res, gpointer user_data)
{
  Link *link = user_data;
  FerryIceTlsTunnel *t = link->tunnel;
  GError *error = NULL;
  g_autoptr(GSocketConnectable) identity = NULL;

  link->remote = g_socket_client_connect_finish(G_SOCKET_CLIENT(source), res, &error);
  if (link->remote == NULL) {
    link_fail(link, error, FALSE);
    return;
  }
  identity = g_network_address_new(t->servername != NULL ? t->servername : t->host, t->port);
  link->tls = g_tls_client_connection_new(G_IO_STREAM(link->remote), identity, &error);
  if (link->tls == NULL) {
    link_fail(link, error, TRUE);
    return;
  }
  if (t->insecure)
    g_signal_connect(link->tls, "accept-certificate", G_CALLBACK(accept_any_certificate), NULL);
  g_tls_connection_handshake_async(G_TLS_CONNECTION(link->tls), G_PRIORITY_DEFAULT, link->cancel,
                                   on_handshake, link);
}

static gboolean
on_incoming(GSocketService *service, GSocketConnection *connection, GObject *source,
            gpointer user_data)
{
  FerryIceTlsTunnel *t = user_data;
  Link *link = g_new0(Link, 1);
  g_autoptr(GSocketClient) client = g_socket_client_new();
  g_autoptr(GSocketConnectable) server = g_network_address_new(t->host, t->port);

  link->tunnel = t;
  link->local = g_object_ref(connection);
  link->cancel = g_cancellable_new();
  t->links = g_list_prepend(t->links, link);
  g_socket_client_set_timeout(client, 10);
  g_socket_client_connect_async(client, server, link->cancel, on_connected, link);
  return TRUE;
}

FerryIceTlsTunnel *
ferry_ice_tls_tunnel_new(const FerryIceTurnServer *turn, GError **error)
{
  FerryIceTlsTunnel *t;
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  g_autoptr(GSocketAddress) addr = g_inet_socket_address_new(lo, 0);
  g_autoptr(GSocketAddress) effective = NULL;
  g_autoptr(GError) local = NULL;
  g_autofree char *name = ferry_ice_turn_server_to_string(turn);

  if (!g_tls_backend_supports_tls(g_tls_backend_get_default())) {
    ferry_set_error(error, FERRY_ERR_IO,
                    "TURN server %s needs TLS, but GIO has no TLS support here: install "
                    "glib-networking, or use turn:…?transport=tcp",
                    name);
    return NULL;
  }
  t = g_new0(FerryIceTlsTunnel, 1);
  t->host = g_strdup(turn->host);
  t->port = turn->port;
  t->servername = g_strdup(turn->servername);
  t->insecure = turn->insecure;
  t->name = g_steal_pointer(&name);
  t->service = g_socket_service_new();
  if (!g_socket_listener_add_address(G_SOCKET_LISTENER(t->service), addr, G_SOCKET_TYPE_STREAM,
                                     G_SOCKET_PROTOCOL_TCP, NULL, &effective, &local)) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot listen on 127.0.0.1 for the TLS tunnel to %s: %s",
                    t->name, local->message);
    g_clear_object(&t->service);
    tunnel_finish(t);
    return NULL;
  }
  t->local_port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(effective));
  g_signal_connect(t->service, "incoming", G_CALLBACK(on_incoming), t);
  g_socket_service_start(t->service);
  return t;
}

void
ferry_ice_tls_tunnel_set_failed_func(FerryIceTlsTunnel *tunnel, FerryIceTlsFailedFunc on_failed,
                                     gpointer user_data)
{
  tunnel->on_failed = on_failed;
  tunnel->user_data = user_data;
}

guint16
ferry_ice_tls_tunnel_get_port(FerryIceTlsTunnel *tunnel)
{
  return tunnel->local_port;
}

const GError *
ferry_ice_tls_tunnel_get_error(FerryIceTlsTunnel *tunnel)
{
  return tunnel->error;
}

void
ferry_ice_tls_tunnel_free(FerryIceTlsTunnel *tunnel, GDestroyNotify done, gpointer done_data)
{
  if (tunnel == NULL) {
    if (done != NULL)
      done(done_data);
    return;
  }
  tunnel->freed = TRUE;
  tunnel->done = done;
  tunnel->done_data = done_data;
  g_signal_handlers_disconnect_by_data(tunnel->service, tunnel);
  g_socket_service_stop(tunnel->service);
  g_socket_listener_close(G_SOCKET_LISTENER(tunnel->service));
  g_clear_object(&tunnel->service);
  if (tunnel->links == NULL) {
    tunnel_finish(tunnel);
    return;
  }
  /* Cancelling may finish a link (and with the last one the tunnel) at
   * once, so walk a copy and hold the cancellables. */
  GPtrArray *cancels = g_ptr_array_new_with_free_func(g_object_unref);
  for (GList *l = tunnel->links; l != NULL; l = l->next)
    g_ptr_array_add(cancels, g_object_ref(((Link *)l->data)->cancel));
  for (guint i = 0; i < cancels->len; i++)
    g_cancellable_cancel(cancels->pdata[i]);
  g_ptr_array_unref(cancels);
}
