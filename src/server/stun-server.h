/* FerryStunServer: the STUN responder of `ferry serve` on UDP sockets.
 *
 * It answers every well-formed Binding request (RFC 8489, and classic RFC 3489 ones) with the
 * address and port the request came from, and drops everything else
 * without a word. It runs in the GMainContext it was created for and
 * keeps counters for /metrics. */
#ifndef FERRY_SERVER_STUN_SERVER_H
#define FERRY_SERVER_STUN_SERVER_H

#include <gio/gio.h>

#include <ferry/error.h>

G_BEGIN_DECLS

typedef struct _FerryStunServer FerryStunServer;

/* A server with no socket yet, dispatching in context (NULL: the global
 * default context). Free it with ferry_stun_server_free(). */
FerryStunServer *ferry_stun_server_new(GMainContext *context);

/* Binds a UDP socket on address (an IPv4 or IPv6 literal; NULL for every
 * address: one dual-stack IPv6 socket, or IPv4 only where the host has no
 * IPv6) and starts answering on it. All sockets of one server share one
 * port: port 0 picks a free one for the first socket and reuses it for
 * the next. Returns FALSE with *error set (FERRY_ERROR_INVALID for a bad
 * address, FERRY_ERROR_IO when the socket cannot be bound). */
gboolean ferry_stun_server_listen(FerryStunServer *server, const char *address, guint16 port,
                                  GError **error);

/* The UDP port the server answers on, 0 before the first listen. */
guint16 ferry_stun_server_get_port(FerryStunServer *server);

/* Counters, safe to read from any thread: datagrams that were Binding
 * requests (answered or not), responses sent (success and error), and
 * datagrams dropped (malformed, not a Binding request, or unsendable). */
guint64 ferry_stun_server_get_requests(FerryStunServer *server);
guint64 ferry_stun_server_get_responses(FerryStunServer *server);
guint64 ferry_stun_server_get_dropped(FerryStunServer *server);

/* Closes the sockets and frees the server. Call it from the thread that
 * runs its context, or once that context no longer runs. NULL is a no-op. */
void ferry_stun_server_free(FerryStunServer *server);

G_END_DECLS

#endif
