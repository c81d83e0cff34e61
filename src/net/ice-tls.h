/* A local TLS tunnel for one turns: server.
 *
 * libnice 0.1.21 speaks plain TCP to a TURN server even when asked for
 * TURN-TLS (it only wraps the Google and Microsoft pseudo-TLS). So FerryIce
 * points libnice's TURN-TCP at a listener on 127.0.0.1 and this tunnel
 * carries each connection to the real server inside TLS (GIO with
 * glib-networking), checking its certificate against the system's CAs and
 * the URL's host or servername= (unless insecure=1). Runs on the
 * thread-default main context of its creator. */
#ifndef FERRY_NET_ICE_TLS_H
#define FERRY_NET_ICE_TLS_H

#include "net/ice.h"

G_BEGIN_DECLS

typedef struct _FerryIceTlsTunnel FerryIceTlsTunnel;

/* Called when a connection to the server failed and no other connection
 * is open or under way: libnice will not notice (it waits for its TURN
 * request to time out, or for ever when the connection was reset). */
typedef void (*FerryIceTlsFailedFunc)(FerryIceTlsTunnel *tunnel, gpointer user_data);

/* Listens on 127.0.0.1 on a free port for turn (host, port, servername,
 * insecure are copied). Returns NULL with FERRY_ERROR_IO if it cannot
 * listen, or if GIO has no TLS backend (glib-networking missing). Free with
 * ferry_ice_tls_tunnel_free(). */
FerryIceTlsTunnel *ferry_ice_tls_tunnel_new(const FerryIceTurnServer *turn, GError **error);

/* Sets (or with NULL clears) what to call when the server cannot be had. */
void ferry_ice_tls_tunnel_set_failed_func(FerryIceTlsTunnel *tunnel,
                                          FerryIceTlsFailedFunc on_failed, gpointer user_data);

/* The local port libnice should connect to (on 127.0.0.1). */
guint16 ferry_ice_tls_tunnel_get_port(FerryIceTlsTunnel *tunnel);

/* Why the last connection to the server failed (connect or TLS
 * handshake), or NULL; owned by tunnel. */
const GError *ferry_ice_tls_tunnel_get_error(FerryIceTlsTunnel *tunnel);

/* Stops listening and cancels every connection. Connections finish
 * unwinding on the main context; done (may be NULL) runs there once the
 * last is gone (possibly before this returns). */
void ferry_ice_tls_tunnel_free(FerryIceTlsTunnel *tunnel, GDestroyNotify done, gpointer done_data);

G_END_DECLS

#endif
