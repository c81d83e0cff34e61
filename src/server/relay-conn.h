/* A client connection the HTTP relay has taken over from libsoup once the
 * request's headers are read, so that the relay moves the body bytes
 * itself: a plain socket is read and written with recv/send in large
 * pieces, a TLS one (--tls-cert) through its pollable GIO streams. All
 * I/O is non-blocking; readiness is reported on the thread-default main
 * context. */
#ifndef FERRY_SERVER_RELAY_CONN_H
#define FERRY_SERVER_RELAY_CONN_H

#include <libsoup/soup.h>

typedef struct _FerryRelayConn FerryRelayConn;

/* Called when the connection may be read or written (whatever was asked
 * with ferry_relay_conn_want()). */
typedef void (*FerryRelayConnReady)(FerryRelayConn *conn, gpointer user_data);

/* Results of ferry_relay_conn_read() and _write() besides a byte count. */
#define FERRY_RELAY_IO_AGAIN (-1) /* would block: ask for readiness */
#define FERRY_RELAY_IO_ERROR (-2) /* the connection is broken */

/* Takes msg's connection from libsoup (call it from a handler, with the
 * request's headers read; msg gets no more signals). Bytes libsoup had
 * read past the headers are kept and read first. NULL with error set when
 * libsoup has no connection to give. Free with ferry_relay_conn_free(). */
FerryRelayConn *ferry_relay_conn_steal(SoupServerMessage *msg, GError **error);

/* Closes the connection (without a response) and frees it. */
void ferry_relay_conn_free(FerryRelayConn *conn);

/* Reads up to len bytes: returns how many (0 at the end of the stream),
 * FERRY_RELAY_IO_AGAIN or FERRY_RELAY_IO_ERROR. */
gssize ferry_relay_conn_read(FerryRelayConn *conn, guint8 *buf, gsize len);

/* Writes up to len bytes: returns how many were taken, FERRY_RELAY_IO_AGAIN
 * or FERRY_RELAY_IO_ERROR. */
gssize ferry_relay_conn_write(FerryRelayConn *conn, const guint8 *buf, gsize len);

/* Sends the end of the stream (a FIN; for TLS a close_notify). */
void ferry_relay_conn_shutdown_write(FerryRelayConn *conn);

/* Sets the callback and which of G_IO_IN / G_IO_OUT to wait for (0: none).
 * Level-triggered: ready keeps being called while the condition holds. */
void ferry_relay_conn_set_ready(FerryRelayConn *conn, FerryRelayConnReady ready,
                                gpointer user_data);
void ferry_relay_conn_want(FerryRelayConn *conn, GIOCondition cond);

#endif
