/* One QUIC connection to one peer (ngtcp2 0.12 + GnuTLS), over a transport
 * (net/quic-transport.h: a UDP socket or a datagram callback).
 *
 * Threading. Each FerryQuic runs on a thread of its own, started by
 * ferry_quic_new() and joined by ferry_quic_free(). That thread owns the
 * ngtcp2 connection, the TLS session and the transport: it reads datagrams
 * in batches, runs timers with nanosecond deadlines, and writes packets in
 * GSO batches; nothing on the packet path locks, allocates or wakes another
 * thread per packet (the lock is taken once per loop turn). Every callback
 * below is called on that thread, so stream data is handed over without a
 * copy — a callback must not block for long and must not call
 * ferry_quic_free(). All other functions may be called from any thread,
 * callbacks included: calls that change something are queued to the
 * connection's thread (and wake it), queries that need the connection run
 * on it and wait for the answer. To get events onto a GMainContext,
 * g_main_context_invoke() from the callbacks.
 *
 * Security. Certificates are throw-away and not checked: the TLS session
 * encrypts, the caller authenticates by binding its PAKE key to
 * ferry_quic_export_keying_material(), which is identical on both ends of
 * this connection and nowhere else. ALPN "ferry/1" is mandatory on both
 * sides; TLS 1.3 only.
 *
 * Streams are bidirectional. Writes are copied into (or, with
 * ferry_quic_stream_write_bytes(), referenced by) a per-stream send queue
 * that keeps every byte until the peer acknowledges it; the queue is
 * bounded (stream_send_buffer_bytes), a write that does not fit is short,
 * and the stream_writable callback says when to write again. A stream ends
 * when both sides have finished (FIN) their direction, or one resets it:
 * call ferry_quic_stream_finish() on streams the peer opened too, even with
 * nothing to say, or the peer cannot open more streams. */
#ifndef FERRY_NET_QUIC_H
#define FERRY_NET_QUIC_H

#include "net/quic-transport.h"

G_BEGIN_DECLS

#define FERRY_QUIC_ALPN "ferry/1"

/* The largest max_udp_payload a FerryQuicConfig may ask for: what fits in
 * one UDP datagram of a 64 KiB loopback MTU, and in one GSO send. */
#define FERRY_QUIC_MAX_UDP_PAYLOAD 65000

typedef struct _FerryQuic FerryQuic;
typedef struct _FerryQuicStream FerryQuicStream;

typedef enum {
  FERRY_QUIC_CLIENT,
  FERRY_QUIC_SERVER,
} FerryQuicRole;

/* Congestion controllers (ngtcp2's). */
typedef enum {
  FERRY_QUIC_CC_BBR,
  FERRY_QUIC_CC_CUBIC,
  FERRY_QUIC_CC_RENO,
  FERRY_QUIC_CC_BBR2,
  FERRY_QUIC_CC_BBR_PLAIN, /* ngtcp2's BBR v1 alone: FERRY_QUIC_CC_BBR without the RTT keeper */
} FerryQuicCC;

/* Why a connection ended. */
typedef enum {
  FERRY_QUIC_END_NONE,              /* not ended */
  FERRY_QUIC_END_LOCAL,             /* we closed it: ferry_quic_close() or _free() */
  FERRY_QUIC_END_PEER,              /* the peer closed it with an application code */
  FERRY_QUIC_END_HANDSHAKE,         /* the TLS handshake failed on either side (ALPN included) */
  FERRY_QUIC_END_HANDSHAKE_TIMEOUT, /* no handshake within handshake_timeout_ms */
  FERRY_QUIC_END_IDLE_TIMEOUT,      /* nothing heard from the peer for idle_timeout_ms */
  FERRY_QUIC_END_PROTOCOL,          /* a QUIC protocol error, found by us or the peer */
  FERRY_QUIC_END_IO,                /* the transport failed */
} FerryQuicEnd;

typedef struct {
  /* The handshake completed; the exporter works from now on. */
  void (*handshake_done)(FerryQuic *q, gpointer user_data);
  /* The peer opened s. The pointer stays valid until stream_closed for it
   * returns; ferry_quic_stream_ref() it to keep it longer. */
  void (*stream_opened)(FerryQuic *q, FerryQuicStream *s, gpointer user_data);
  /* In-order bytes of s; fin is TRUE with the last ones (len may then be
   * 0). data is valid during the call only. Unless manual_flow_control is
   * set, the peer may send len more bytes once this returns. */
  void (*stream_data)(FerryQuic *q, FerryQuicStream *s, const guint8 *data, gsize len, gboolean fin,
                      gpointer user_data);
  /* A write on s was short (or refused) and room has been made since. */
  void (*stream_writable)(FerryQuic *q, FerryQuicStream *s, gpointer user_data);
  /* s is over: both directions finished and our bytes acknowledged
   * (aborted FALSE), or reset by either side or cut by the connection's end
   * (aborted TRUE; app_error_code is the peer's or ours, 0 when none). */
  void (*stream_closed)(FerryQuic *q, FerryQuicStream *s, gboolean aborted, guint64 app_error_code,
                        gpointer user_data);
  /* The connection is over, called once. error is NULL when we closed it,
   * or the peer closed it with application code 0; otherwise it says what
   * happened in the FERRY_ERROR domain (see ferry_quic_get_end()). */
  void (*closed)(FerryQuic *q, const GError *error, gpointer user_data);
  /* Optional: the I/O thread finished one round of reading, timers and
   * writing. Callbacks above that ran in that round may be acted on in
   * one go from here (e.g. one wake-up of another thread per round
   * instead of one per datagram). Runs on the I/O thread. */
  void (*round_done)(FerryQuic *q, gpointer user_data);
} FerryQuicCallbacks;

typedef struct {
  FerryQuicRole role;
  const char *alpn; /* default FERRY_QUIC_ALPN; copied */
  /* Default BBR: ngtcp2's BBR v1 with ferry's RTT keeper on paths of 10 ms
   * or more (when no RTT sample came back at the path's minimum for 8 s,
   * the bottleneck's queue is let drain for a few rounds, so that BBR need
   * not stop for ProbeRTT; rtt_keeper_holds() in quic.c). */
  FerryQuicCC cc;
  /* Flow control: how much the peer may send before we read it, on the
   * whole connection and on each stream (quic_conn_window_bytes,
   * quic_stream_window_bytes), and how many streams it may have open at
   * once (quic_max_incoming_streams). */
  guint64 conn_window_bytes;    /* default 64 MiB */
  guint64 stream_window_bytes;  /* default 16 MiB */
  guint64 max_incoming_streams; /* default 100 */
  /* Bytes written to a stream and not yet acknowledged, at most. */
  gsize stream_send_buffer_bytes; /* default 16 MiB */
  guint idle_timeout_ms;          /* default 30000 */
  guint handshake_timeout_ms;     /* default 10000 */
  guint keepalive_ms;             /* PING after this much quiet; default 10000, 0: never */
  /* The largest datagram we send (UDP payload), default 1452; path MTU
   * discovery may settle lower. Lower it for relayed paths, whose TURN
   * framing needs room (36 bytes for a Send indication). Up to
   * FERRY_QUIC_MAX_UDP_PAYLOAD only where the path is known to carry it
   * (loopback: a 64 KiB MTU): datagrams that size are sent from the
   * first packet on, with no discovery, and the peer's max_udp_payload_size
   * transport parameter still caps them. */
  gsize max_udp_payload;
  /* When not 0, packets stay at most this size until
   * ferry_quic_set_udp_payload() allows more, up to max_udp_payload (which
   * still sets ngtcp2's limits): for a path whose size is being probed. */
  gsize start_udp_payload;
  /* When TRUE, received bytes are credited back to the peer only by
   * ferry_quic_stream_consume(): a slow consumer pushes back. */
  gboolean manual_flow_control;
  /* Never batch datagrams with GSO (comparisons). */
  gboolean no_gso;
  FerryQuicCallbacks callbacks;
  gpointer user_data;
} FerryQuicConfig;

/* Connection figures; see ferry_quic_get_info(). */
typedef struct {
  gboolean handshake_done;
  FerryQuicEnd end;
  const char *cc_name; /* "bbr", "bbr-plain", "cubic", "reno", "bbr2"; static */
  guint64 smoothed_rtt_us, min_rtt_us, latest_rtt_us;
  guint64 cwnd_bytes, bytes_in_flight;
  guint64 pacing_rate_bps;            /* bytes per second, 0 when the controller sets none */
  gsize max_udp_payload;              /* ngtcp2's datagram size (grows with path MTU discovery) */
  gsize udp_payload;                  /* the largest packet written now (at most the above) */
  guint64 bytes_sent, bytes_received; /* UDP payload */
  guint64 datagrams_sent, datagrams_received; /* received: handed to ngtcp2 */
  guint64 send_calls;                         /* transport send() calls (one per GSO batch) */
  guint64 packets_lost;                       /* packets carrying stream data declared lost */
  guint64 stream_bytes_sent;                  /* distinct application bytes handed to QUIC */
  guint64 stream_bytes_received;
  gboolean gso;
} FerryQuicInfo;

/* Fills c with the defaults for role. */
void ferry_quic_config_init(FerryQuicConfig *c, FerryQuicRole role);

/* Starts a connection over transport (owned by the connection from now
 * on, even on failure) and its thread. A client sends its first packet at
 * once; a server waits for the client's first packet. Returns NULL with
 * FERRY_ERROR_CRYPTO (TLS set-up) or FERRY_ERROR_INVALID (config), or
 * FERRY_ERROR_IO when no thread can be started. Free with
 * ferry_quic_free(). */
FerryQuic *ferry_quic_new(const FerryQuicConfig *config, FerryQuicTransport *transport,
                          GError **error);

/* Closes the connection if it is still open (as ferry_quic_close(q, 0,
 * "")), stops its thread and frees everything; the closed callback may run
 * during the call, on the connection's thread. Afterwards the only call
 * allowed on its streams is ferry_quic_stream_unref(). Never from a
 * callback. */
void ferry_quic_free(FerryQuic *q);

/* Closes the connection: CONNECTION_CLOSE with app_code and reason (at
 * most 256 bytes of it are sent) goes to the peer; bytes not yet
 * acknowledged are dropped. The closed callback follows with a NULL
 * error. Safe to call more than once, and after the end. */
void ferry_quic_close(FerryQuic *q, guint64 app_code, const char *reason);

/* Lets packets grow to size bytes (1200 to the config's max_udp_payload)
 * once the handshake is done: the caller has seen the path carry that
 * much. Any thread. */
void ferry_quic_set_udp_payload(FerryQuic *q, gsize size);

/* Hands a datagram received for this connection to it (callback
 * transport, or datagrams that arrived before a socket was taken over).
 * Copies data; any thread. Returns FALSE when it was dropped: longer than
 * the transport's max_recv_datagram, or the queue is full. */
gboolean ferry_quic_push_datagram(FerryQuic *q, const guint8 *data, gsize len);

/* The TLS exporter (RFC 8446 section 7.5, empty context) for label: len
 * bytes into out, equal on both ends of this connection. Returns FALSE
 * with FERRY_ERROR_STATE before the handshake is done, FERRY_ERROR_CRYPTO
 * when TLS refuses. */
gboolean ferry_quic_export_keying_material(FerryQuic *q, const char *label, guint8 *out, gsize len,
                                           GError **error);

/* Fills info with the connection's current figures. */
void ferry_quic_get_info(FerryQuic *q, FerryQuicInfo *info);

/* Why the connection ended (FERRY_QUIC_END_NONE while it lives). With
 * app_code non-NULL, stores the application or transport error code the
 * closing side sent (0 when none). */
FerryQuicEnd ferry_quic_get_end(FerryQuic *q, guint64 *app_code);

FerryQuicRole ferry_quic_get_role(FerryQuic *q);

/* Opens a bidirectional stream. It gets its QUIC stream ID as soon as the
 * handshake is done and the peer's stream limit allows; until then writes
 * queue. Returns a reference the caller drops with
 * ferry_quic_stream_unref(), or NULL with FERRY_ERROR_STATE once the
 * connection has ended. */
FerryQuicStream *ferry_quic_stream_open(FerryQuic *q, gpointer user_data, GError **error);

FerryQuicStream *ferry_quic_stream_ref(FerryQuicStream *s);
void ferry_quic_stream_unref(FerryQuicStream *s);

/* Queues up to len bytes of data (copied) and returns how many were taken:
 * fewer than len (even 0) when the send queue is full — stream_writable
 * will be called when there is room. Returns -1 with FERRY_ERROR_STATE
 * when the stream is finished, reset or closed, or the connection ended.
 * Writes to one stream from several threads at once interleave. */
gssize ferry_quic_stream_write(FerryQuicStream *s, const void *data, gsize len, GError **error);

/* Like ferry_quic_stream_write() but without a copy: takes a reference on
 * bytes, all or nothing. Returns TRUE when queued; FALSE with no error when
 * the queue is full (wait for stream_writable), FALSE with
 * FERRY_ERROR_STATE as for a write. */
gboolean ferry_quic_stream_write_bytes(FerryQuicStream *s, GBytes *bytes, GError **error);

/* Ends our direction (FIN after the queued bytes). */
void ferry_quic_stream_finish(FerryQuicStream *s);

/* Abandons both directions with app_error_code (RESET_STREAM and
 * STOP_SENDING). Queued bytes are dropped. */
void ferry_quic_stream_reset(FerryQuicStream *s, guint64 app_error_code);

/* With manual_flow_control: n received bytes of s are dealt with, the peer
 * may send n more. Credit every byte stream_data delivered, even after the
 * stream closed: they count against the connection's window too. */
void ferry_quic_stream_consume(FerryQuicStream *s, gsize n);

/* The QUIC stream ID, -1 while the stream waits to be opened. */
gint64 ferry_quic_stream_get_id(FerryQuicStream *s);
FerryQuic *ferry_quic_stream_get_connection(FerryQuicStream *s);
gpointer ferry_quic_stream_get_user_data(FerryQuicStream *s);
void ferry_quic_stream_set_user_data(FerryQuicStream *s, gpointer user_data);
/* Bytes written and not yet acknowledged by the peer. */
gsize ferry_quic_stream_get_queued(FerryQuicStream *s);

const char *ferry_quic_cc_name(FerryQuicCC cc);
/* Parses "bbr", "bbr-plain", "cubic", "reno" or "bbr2" (any case). Returns FALSE with
 * FERRY_ERROR_INVALID listing the names otherwise. */
gboolean ferry_quic_cc_parse(const char *name, FerryQuicCC *cc, GError **error);

G_END_DECLS

#endif
