/* An authenticated connection to whoever holds a code.
 *
 * The sender opens a FerryListener: it claims a nameplate on a `ferry
 * serve`, draws the code's words and reports the whole code. Each receiver
 * that calls ferry_connect_async() with that code runs the PAKE with the
 * sender over the server (a wrong code fails on both sides and nothing
 * else happens), the two exchange ICE credentials and candidates sealed
 * under the PAKE key, ICE finds a path (direct UDP, or relayed through a
 * TURN server), and a QUIC connection runs over it. Before any application
 * byte moves, each side proves the PAKE key bound to this very QUIC
 * session (docs/protocol.md §7). Only then does the caller get a
 * FerryConnection: streams of bytes both ways, and what path they take.
 *
 * Threading: every callback runs on the thread-default GMainContext of the
 * thread that called ferry_listener_new() or ferry_connect_async(); call
 * every function from that thread. Callbacks never run inside a ferry_*()
 * call. */
#ifndef FERRY_CONNECTION_H
#define FERRY_CONNECTION_H

#include <gio/gio.h>

#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_CONNECT_DEFAULT_MAX_FAILURES 3
#define FERRY_CONNECT_DEFAULT_TIMEOUT_MS   60000

/* What both sides are made from. ferry_connect_options_init() sets the
 * defaults; the caller then changes fields. Strings are borrowed: the
 * functions that take the options copy what they keep. */
typedef struct {
  /* The `ferry serve` to meet at: http://, https://, ws:// or wss://.
   * NULL: the FERRY_SERVER environment variable. */
  const char *server_url;
  /* More STUN and TURN servers besides those the server hands out
   * (NULL-terminated, may be NULL): "stun:HOST[:PORT]",
   * "turn:USER:PASS@HOST[:PORT][?transport=tcp]",
   * "turns:USER:PASS@HOST[:PORT][?servername=NAME][&insecure=1]". */
  const char *const *ice_servers;
  gboolean force_relay;      /* relayed paths only (tests a TURN server) */
  gboolean no_relay;         /* never through a TURN server */
  gboolean include_loopback; /* also 127.0.0.1 and ::1 (same machine); default TRUE */
  /* Sender: wrong codes tolerated before the code is closed; default 3. */
  guint max_failures;
  /* Sender: words in the code (2..8); default 3. */
  guint code_words;
  /* Sender: the code's words ("ocean-tiger-piano") to use instead of
   * drawing new ones, so that a second listener at another rendezvous
   * offers the same code; NULL: draw them. */
  const char *words;
  /* Sender: receivers that may be joined at once; default 1. */
  guint max_receivers;
  /* QUIC: congestion controller "bbr", "bbr-plain", "cubic", "reno" or "bbr2" (NULL:
   * "bbr" on a direct path, "bbr2" through a TURN relay); flow-control windows and the number of
   * streams the peer may open; 0 keeps the defaults (64 MiB, 16 MiB, 100). */
  const char *congestion_control;
  guint64 conn_window_bytes;
  guint64 stream_window_bytes;
  guint64 max_incoming_streams;
  /* ICE: from gathering to "no working path"; default 30000. */
  guint ice_timeout_ms;
  /* QUIC: handshake and idle timeouts; defaults 10000 and 5000 (a vanished
   * peer is noticed that fast; keep-alives go every quarter of it). */
  guint quic_handshake_timeout_ms;
  guint quic_idle_timeout_ms;
  /* From a receiver's join (or ferry_connect_async()) to an authenticated
   * connection, at most; default 60000. */
  guint connect_timeout_ms;
  /* Receiver: called when the sender already serves max_receivers others
   * and this receiver waits its turn (position 1: next), again as the line
   * moves and every few seconds; the wait does not count against
   * connect_timeout_ms. May be NULL. */
  void (*queued)(guint position, gpointer user_data);
  gpointer queued_user_data;
  /* Sender: max_receivers above is how many are served at once; more
   * receivers may join the code and wait in line for a free slot. */
} FerryConnectOptions;

FERRY_API void ferry_connect_options_init(FerryConnectOptions *options);

typedef struct _FerryConnection FerryConnection;
typedef struct _FerryStream FerryStream;
typedef struct _FerryListener FerryListener;

/* ---- the path a connection takes ---------------------------------------- */

typedef struct {
  gboolean relayed;        /* a TURN server carries the data */
  char local_type[8];      /* "host", "srflx", "prflx", "relay", or "punched" (protocol §7.4) */
  char remote_type[8];     /* the same, for the peer's candidate */
  char local_address[64];  /* "192.0.2.2:50123", "[2001:db8::1]:4000" */
  char remote_address[64]; /* where our packets go */
  char turn_server[272];   /* our TURN server in use, "" when none or unknown */
  guint64 rtt_us;          /* smoothed round-trip time of the QUIC connection */
  char congestion_control[16]; /* "bbr", "bbr-plain", "cubic", … */
  gint64 ice_ms;               /* time ICE took to find the path */
  gint64 connect_ms;           /* from the start to the authenticated connection */
  guint32 datagram_bytes;      /* the largest QUIC datagram we send now (UDP payload) */
} FerryConnectionPath;

/* Fills *path with where the connection's packets go and how it is doing. */
FERRY_API void ferry_connection_get_path(FerryConnection *conn, FerryConnectionPath *path);

/* One line for the user, e.g. "direct: host 127.0.0.1:40001 <-> host
 * 127.0.0.1:40002, rtt 0.2 ms, bbr, 32000-byte datagrams". Free it with
 * g_free(). */
FERRY_API char *ferry_connection_path_to_string(FerryConnection *conn);

/* ---- connections and streams -------------------------------------------- */

typedef struct {
  /* The peer opened stream; set its handlers now with
   * ferry_stream_set_handlers(). */
  void (*stream_opened)(FerryConnection *conn, FerryStream *stream, gpointer user_data);
  /* The connection is over: error NULL when either side closed it
   * normally; otherwise what happened. Called once. */
  void (*closed)(FerryConnection *conn, const GError *error, gpointer user_data);
} FerryConnectionHandlers;

typedef struct {
  /* In-order bytes from the peer; fin is TRUE with the last ones (len may
   * be 0 then). data is valid during the call only. The peer may send
   * more once this returns: a slow handler slows the peer down. */
  void (*data)(FerryStream *stream, const guint8 *data, gsize len, gboolean fin,
               gpointer user_data);
  /* A short write can go on now. */
  void (*writable)(FerryStream *stream, gpointer user_data);
  /* The stream is over: error NULL when both sides finished it and every
   * byte we wrote was acknowledged; otherwise it was reset or cut. */
  void (*closed)(FerryStream *stream, const GError *error, gpointer user_data);
} FerryStreamHandlers;

/* Sets what is called for conn (handlers copied). Set them in the
 * callback that hands over the connection: events that arrive before are
 * held, not lost. */
FERRY_API void ferry_connection_set_handlers(FerryConnection *conn,
                                             const FerryConnectionHandlers *handlers,
                                             gpointer user_data);

/* Opens a bidirectional stream. Returns it (owned by conn: valid until its
 * closed handler returns, longer with ferry_stream_ref()), or NULL with
 * FERRY_ERROR_STATE once the connection has ended. */
FERRY_API FerryStream *ferry_connection_open_stream(FerryConnection *conn,
                                                    const FerryStreamHandlers *handlers,
                                                    gpointer user_data, GError **error);

/* Closes the connection: bytes not yet acknowledged are dropped, the
 * closed handler follows with a NULL error. reason (may be NULL) is sent
 * to the peer. */
FERRY_API void ferry_connection_close(FerryConnection *conn, const char *reason);

/* The code word "sender" or "receiver" for this side. Static. */
FERRY_API const char *ferry_connection_get_role(FerryConnection *conn);

/* Closes the connection if needed and frees it, its streams included. No
 * handler runs afterwards. Not from one of conn's own handlers. */
FERRY_API void ferry_connection_free(FerryConnection *conn);

FERRY_API void ferry_stream_set_handlers(FerryStream *stream, const FerryStreamHandlers *handlers,
                                         gpointer user_data);

/* Writes up to len bytes (copied) and returns how many were taken: fewer
 * (even 0) when the stream's send buffer is full — the writable handler
 * says when to go on. Returns -1 with FERRY_ERROR_STATE once the stream
 * or the connection has ended. */
FERRY_API gssize ferry_stream_write(FerryStream *stream, const void *data, gsize len,
                                    GError **error);

/* Queues all of bytes (referenced, not copied) or nothing: returns FALSE
 * without setting error when the send buffer is full (the writable handler
 * says when to try again), FALSE with FERRY_ERROR_STATE once the stream or
 * the connection has ended. For large writes this saves a copy. */
FERRY_API gboolean ferry_stream_write_bytes(FerryStream *stream, GBytes *bytes, GError **error);

/* Ends our direction after the bytes written (the peer sees fin). */
FERRY_API void ferry_stream_finish(FerryStream *stream);

/* Abandons both directions; the peer sees app_error_code. */
FERRY_API void ferry_stream_reset(FerryStream *stream, guint64 app_error_code);

/* Bytes written and not yet acknowledged by the peer. */
FERRY_API gsize ferry_stream_get_queued(FerryStream *stream);

FERRY_API FerryConnection *ferry_stream_get_connection(FerryStream *stream);
FERRY_API FerryStream *ferry_stream_ref(FerryStream *stream);
/* Drops a reference; the stream stays usable while conn lives and a
 * reference is held. */
FERRY_API void ferry_stream_unref(FerryStream *stream);

/* ---- the sender: a code and whoever comes with it ---------------------- */

typedef struct {
  /* The code to give to receivers ("7-ocean-tiger-piano"), once the
   * server has allocated its number. */
  void (*code)(FerryListener *listener, const char *code, gpointer user_data);
  /* An authenticated connection to a receiver; the caller owns it (free
   * it with ferry_connection_free()) and should set its handlers now. */
  void (*connection)(FerryListener *listener, FerryConnection *conn, gpointer user_data);
  /* One receiver's attempt failed (wrong code, no path, it left, …); the
   * listener goes on accepting others unless closed follows. peer is the
   * server's name for the receiver ("r1"). */
  void (*attempt_failed)(FerryListener *listener, const char *peer, const GError *error,
                         gpointer user_data);
  /* No more receivers will be accepted: too many wrong codes, the server
   * refused or ended the session, or it cannot be reached. Connections
   * already handed over carry on. Called once. */
  void (*closed)(FerryListener *listener, const GError *error, gpointer user_data);
} FerryListenerHandlers;

/* Starts a listener: connects to the server, claims a nameplate, draws
 * the words. Returns NULL with FERRY_ERROR_INVALID when the options cannot
 * work (no server URL, a malformed STUN/TURN URL, an unknown congestion
 * controller, force_relay with no_relay). Free with ferry_listener_free(). */
FERRY_API FerryListener *ferry_listener_new(const FerryConnectOptions *options,
                                            const FerryListenerHandlers *handlers,
                                            gpointer user_data, GError **error);

/* Makes two listeners that offer one code (the second made with
 * options.words = the first's words, at another rendezvous) share their
 * limits: max_receivers counts the receivers of both, and max_failures
 * the wrong codes tried through either. Until either is freed. */
FERRY_API void ferry_listener_share_slots(FerryListener *listener, FerryListener *other);

/* The code, NULL until the code handler was called. Owned by listener. */
FERRY_API const char *ferry_listener_get_code(FerryListener *listener);

/* Stops accepting receivers: frees the nameplate on the server. */
FERRY_API void ferry_listener_stop(FerryListener *listener);

/* Frees the listener, the attempts still under way and the session on the
 * server (receivers still connecting are told the sender left).
 * Connections already handed over are not affected. */
FERRY_API void ferry_listener_free(FerryListener *listener);

/* ---- the receiver ------------------------------------------------------- */

/* Connects to the sender holding code (what the user typed: any case and
 * separators). callback runs once on the calling thread's main context;
 * call ferry_connect_finish() from it. */
FERRY_API void ferry_connect_async(const FerryConnectOptions *options, const char *code,
                                   GCancellable *cancellable, GAsyncReadyCallback callback,
                                   gpointer user_data);

/* Returns the authenticated connection (free it with
 * ferry_connection_free()), or NULL with an error that names what failed,
 * in the FERRY_ERROR domain unless cancelled (G_IO_ERROR_CANCELLED):
 *   INVALID   the code does not parse (the parser's message, e.g. a
 *             "did you mean"), or the options cannot work;
 *   NOT_FOUND the server's refusal in its own words (no sender with that
 *             number, session full, …);
 *   AUTH      the code did not match, or the channel binding failed;
 *   FAILED    no working path between the peers (ICE's message), the QUIC
 *             handshake failed, the sender left, or the time ran out;
 *   IO        the server cannot be reached. */
FERRY_API FerryConnection *ferry_connect_finish(GAsyncResult *result, GError **error);

/* Checks options as ferry_listener_new() and ferry_connect_async() do
 * (STUN/TURN URLs, congestion controller, contradictions), without
 * connecting. Returns FALSE with FERRY_ERROR_INVALID naming the problem. */
FERRY_API gboolean ferry_connect_options_check(const FerryConnectOptions *options, GError **error);

/* Asks the `ferry serve` at url (any form server_url takes) for its
 * welcome, joining nothing: for a receiver that races a server against
 * the local network (ferry_lan_lookup_full_async()). callback runs once;
 * call ferry_server_probe_finish() from it. */
FERRY_API void ferry_server_probe_async(const char *url, GCancellable *cancellable,
                                        GAsyncReadyCallback callback, gpointer user_data);

/* TRUE when the server answered; else FALSE with FERRY_ERROR_IO (it cannot
 * be reached: the message says why), FERRY_ERROR_INVALID (the URL is not
 * usable) or G_IO_ERROR_CANCELLED. */
FERRY_API gboolean ferry_server_probe_finish(GAsyncResult *result, GError **error);

G_END_DECLS

#endif
