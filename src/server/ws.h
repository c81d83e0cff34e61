/* WebSocket (RFC 6455) server connections without libsoup.
 *
 * libsoup keeps two or three GSources per open WebSocket, and GLib walks
 * every source and polls every fd on each main-loop iteration: with ten
 * thousand idle clients the server spends its time polling them. Here
 * libsoup still does HTTP and the upgrade; the plain-TCP connections it
 * hands over are then driven from one epoll fd watched by one GSource, so
 * an iteration costs what the ready connections cost.
 *
 * Two parts: FerryWsParser, a pure decoder of client frames (fuzzable),
 * with ferry_ws_frame_append() to write server frames; and FerryWsHub /
 * FerryWsConn, the epoll-driven connections. Single-threaded: everything
 * runs in the GMainContext the hub was created in. */
#ifndef FERRY_SERVER_WS_H
#define FERRY_SERVER_WS_H

#include <glib.h>

#define FERRY_WS_CLOSE_NORMAL         1000
#define FERRY_WS_CLOSE_GOING_AWAY     1001
#define FERRY_WS_CLOSE_PROTOCOL_ERROR 1002
#define FERRY_WS_CLOSE_NO_STATUS      1005 /* a close frame without a code */
#define FERRY_WS_CLOSE_BAD_DATA       1007 /* text that is not UTF-8 */
#define FERRY_WS_CLOSE_POLICY         1008
#define FERRY_WS_CLOSE_TOO_BIG        1009

typedef enum {
  FERRY_WS_CONTINUATION = 0x0,
  FERRY_WS_TEXT = 0x1,
  FERRY_WS_BINARY = 0x2,
  FERRY_WS_CLOSE = 0x8,
  FERRY_WS_PING = 0x9,
  FERRY_WS_PONG = 0xA,
} FerryWsOpcode;

/* What one call of ferry_ws_parser_feed() produced: a whole message (text
 * or binary, its fragments joined) or one control frame. data is owned by
 * the parser and valid until the next feed. For FERRY_WS_CLOSE, data is
 * the reason and close_code the code (FERRY_WS_CLOSE_NO_STATUS if none). */
typedef struct {
  FerryWsOpcode opcode;
  const guint8 *data;
  gsize len;
  guint16 close_code;
} FerryWsEvent;

/* Decoder state for the frames of one client. Embed it; _init/_clear. */
typedef struct {
  gsize max_message; /* bound on an assembled message; over it → 1009 */
  guint8 hdr[14];
  guint hdr_len, hdr_need;
  gboolean in_payload;
  guint8 opcode;
  gboolean fin;
  guint8 mask[4];
  guint64 payload_left;
  guint mask_pos;
  GByteArray *msg;   /* the data message being assembled (allocated on demand) */
  guint8 msg_opcode; /* its opcode; 0 while no message is open */
  gboolean msg_done; /* msg was handed out: empty it on the next feed */
  guint8 ctrl[125];
  guint ctrl_len;
  int error;
  guint16 error_code;
  const char *error_reason;
} FerryWsParser;

void ferry_ws_parser_init(FerryWsParser *p, gsize max_message);
void ferry_ws_parser_clear(FerryWsParser *p);

/* Decodes client frames from data (any split of the byte stream is fine).
 * Stops after the first event: returns 1 with *ev set, or 0 once all of
 * data is used without completing one. *consumed says how many bytes were
 * used either way; call again with the rest. Returns FERRY_ERR_INVALID for
 * a protocol error (close code 1002, or 1007 for text that is not UTF-8)
 * or FERRY_ERR_TOO_LONG for a message over max_message (1009); the code
 * and a short reason are then in ferry_ws_parser_error(), and every later
 * call returns the same error. */
int ferry_ws_parser_feed(FerryWsParser *p, const guint8 *data, gsize len, gsize *consumed,
                         FerryWsEvent *ev);

/* The close code and reason for the error the parser stopped on (static
 * text); 0 and NULL if it has not failed. */
guint16 ferry_ws_parser_error(const FerryWsParser *p, const char **reason);

/* TRUE when data[0..len) is well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF; NUL is allowed). */
gboolean ferry_ws_utf8_valid(const guint8 *data, gsize len);

/* Appends one unmasked server frame (FIN set) to out. */
void ferry_ws_frame_append(GByteArray *out, FerryWsOpcode opcode, const void *payload, gsize len);

/* Appends a close frame carrying code and reason (cut to fit 125 bytes on
 * a character boundary); code 0 sends a close frame with no payload. */
void ferry_ws_close_append(GByteArray *out, guint16 code, const char *reason);

/* --- connections driven by one epoll fd --- */

typedef struct FerryWsHub FerryWsHub;
typedef struct FerryWsConn FerryWsConn;

/* How a connection ended, for logs and counters. */
typedef enum {
  FERRY_WS_END_NONE,     /* still open */
  FERRY_WS_END_CLOSED,   /* close handshake done (either side began it) */
  FERRY_WS_END_EOF,      /* the peer closed TCP without a close handshake */
  FERRY_WS_END_ERROR,    /* a socket error */
  FERRY_WS_END_PROTOCOL, /* the client broke RFC 6455 or a size bound */
  FERRY_WS_END_TIMEOUT,  /* our close frame got no answer in time */
  FERRY_WS_END_OVERFLOW, /* the client read too slowly: its queue passed the bound */
} FerryWsEnd;

/* message: a whole text or binary message (data valid during the call).
 * closed: the connection is gone; called once, from the hub's dispatch
 * (never from inside a ferry_ws_conn_*() call). Either may unref the
 * connection or call anything in this API. */
typedef struct {
  void (*message)(FerryWsConn *conn, gboolean text, const guint8 *data, gsize len,
                  gpointer user_data);
  void (*closed)(FerryWsConn *conn, gpointer user_data);
} FerryWsHandlers;

/* A hub in the thread-default GMainContext. max_message bounds assembled
 * messages (1009 above it); max_queued bounds the bytes waiting to be
 * written to one client (the connection is dropped above it). Returns
 * NULL with error set if epoll is not available. Free with
 * ferry_ws_hub_free(), which drops every connection without calling its
 * closed handler. */
FerryWsHub *ferry_ws_hub_new(gsize max_message, gsize max_queued, GError **error);
void ferry_ws_hub_free(FerryWsHub *hub);
/* Connections dropped because their output queue passed max_queued. */
guint64 ferry_ws_hub_get_overflows(FerryWsHub *hub);

/* Takes over fd, a non-blocking TCP socket after the 101 response;
 * pending holds bytes already read from it (may be NULL). The hub closes
 * fd when the connection ends. Returns a connection with one reference
 * for the caller (ferry_ws_conn_unref); never NULL — a failure to watch
 * the fd ends the connection at once (FERRY_WS_END_ERROR). */
FerryWsConn *ferry_ws_conn_new(FerryWsHub *hub, int fd, const guint8 *pending, gsize pending_len,
                               const FerryWsHandlers *handlers, gpointer user_data);
FerryWsConn *ferry_ws_conn_ref(FerryWsConn *conn);
void ferry_ws_conn_unref(FerryWsConn *conn);
/* Replaces the handlers and their user_data (NULL handlers: none). */
void ferry_ws_conn_set_handlers(FerryWsConn *conn, const FerryWsHandlers *handlers,
                                gpointer user_data);
/* Queues a text message. Does nothing once a close frame was sent. */
void ferry_ws_conn_send_text(FerryWsConn *conn, const char *text, gsize len);
/* Begins the close handshake with code and reason; the connection ends
 * when the client answers (or after a few seconds). */
void ferry_ws_conn_close(FerryWsConn *conn, guint16 code, const char *reason);
/* TRUE until a close frame was sent or the connection ended. */
gboolean ferry_ws_conn_is_open(FerryWsConn *conn);
/* The code of the client's close frame; 0 if none came. */
guint16 ferry_ws_conn_get_close_code(FerryWsConn *conn);
FerryWsEnd ferry_ws_conn_get_end(FerryWsConn *conn);

#endif
