/* The client side of ferry's signaling protocol (docs/protocol.md), used by
 * `ferry send`/`receive` and the library.
 *
 * It connects to a `ferry serve`, keeps the connection alive, reconnects
 * with exponential backoff when it drops and, when it was in a session,
 * resumes its place with the server's token so nothing is lost. Everything
 * the server says, errors included, reaches the caller as the server wrote
 * it, so the user reads the server's own words. Runs on the thread-default
 * main context of the thread that created it. */
#ifndef FERRY_NET_SIGNAL_CLIENT_H
#define FERRY_NET_SIGNAL_CLIENT_H

#include <json-glib/json-glib.h>

typedef enum {
  FERRY_SIGNAL_CLIENT_CONNECTING,   /* first connection under way */
  FERRY_SIGNAL_CLIENT_CONNECTED,    /* the server said welcome (or resumed us) */
  FERRY_SIGNAL_CLIENT_RECONNECTING, /* lost or refused; waiting to try again */
  FERRY_SIGNAL_CLIENT_CLOSED,       /* closed by us, or retries exhausted */
} FerrySignalClientState;

typedef struct _FerrySignalClient FerrySignalClient;

/* A message from the server: every type except welcome, ping and pong,
 * which the client handles itself. msg is valid during the call only. */
typedef void (*FerrySignalMessageFunc)(FerrySignalClient *client, JsonObject *msg,
                                       gpointer user_data);

/* The connection's state changed. attempt counts the retries since the
 * last good connection; error says why the connection was lost or given
 * up (NULL when there is nothing to say) and is valid during the call. */
typedef void (*FerrySignalStateFunc)(FerrySignalClient *client, FerrySignalClientState state,
                                     guint attempt, const GError *error, gpointer user_data);

/* Turns what a user typed for --server into the WebSocket URL of the
 * signaling endpoint: http→ws, https→wss, path "/v1" when none is given.
 * Returns NULL with FERRY_ERROR_INVALID naming the problem and the accepted
 * forms. The caller frees the result. */
char *ferry_signal_url_normalise(const char *url, GError **error);

/* A client for url (any form ferry_signal_url_normalise() accepts). NULL
 * with error set when the URL is not usable. Nothing happens until
 * ferry_signal_client_start(). Free with ferry_signal_client_free(). */
FerrySignalClient *ferry_signal_client_new(const char *url, GError **error);

void ferry_signal_client_set_handlers(FerrySignalClient *client, FerrySignalMessageFunc on_message,
                                      FerrySignalStateFunc on_state, gpointer user_data);

/* Retry policy: at most max_retries attempts in a row (0: none), waiting
 * initial_ms, then doubling up to max_ms (with ±20 % jitter); a server's
 * Retry-After is honoured when longer. Defaults: 8, 500 ms, 10 s, but only
 * 2 retries before the first welcome (a server never reached is more likely
 * a wrong address than a blink); setting a policy here applies it to the
 * first connection too. */
void ferry_signal_client_set_retry(FerrySignalClient *client, guint max_retries, guint initial_ms,
                                   guint max_ms);

/* The client pings the server after interval_ms of silence and counts the
 * connection dead when nothing arrives within another interval_ms (then
 * reconnects). Default 15 s. */
void ferry_signal_client_set_keepalive(FerrySignalClient *client, guint interval_ms);

void ferry_signal_client_start(FerrySignalClient *client);

/* Sends one message. While not connected, messages wait (in order) and go
 * out once the connection is back. */
void ferry_signal_client_claim(FerrySignalClient *client, guint max_receivers);
void ferry_signal_client_join(FerrySignalClient *client, const char *nameplate);
/* body is consumed. to: a peer id or "*". */
void ferry_signal_client_send(FerrySignalClient *client, const char *to, JsonNode *body);
void ferry_signal_client_release(FerrySignalClient *client);
void ferry_signal_client_leave(FerrySignalClient *client);

/* This client's peer id in its session ("s", "r1", …), NULL outside one. */
const char *ferry_signal_client_get_peer(FerrySignalClient *client);
FerrySignalClientState ferry_signal_client_get_state(FerrySignalClient *client);

/* Closes the connection with 1000 (a deliberate goodbye: the server ends
 * our membership at once) and stops retrying. */
void ferry_signal_client_close(FerrySignalClient *client);

void ferry_signal_client_free(FerrySignalClient *client);

#endif
