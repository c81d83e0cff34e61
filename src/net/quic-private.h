/* Internals shared by quic.c (the connection thread) and quic-stream.c
 * (stream send queues and the stream API). Not for use outside src/net.
 *
 * Locking: fields marked "lock" are guarded by FerryQuic.lock and touched
 * from any thread; fields marked "thread" belong to the connection's
 * thread alone. */
#ifndef FERRY_NET_QUIC_PRIVATE_H
#define FERRY_NET_QUIC_PRIVATE_H

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "net/quic.h"

G_BEGIN_DECLS

/* A piece of a stream's send queue: inline bytes or a GBytes. */
typedef struct Chunk Chunk;
struct Chunk {
  Chunk *next;
  guint64 off; /* stream offset of data[0], set when the thread takes it */
  gsize len, cap;
  const guint8 *data;
  GBytes *bytes; /* NULL: data points at store */
  guint8 store[];
};

struct _FerryQuicStream {
  gint ref;
  FerryQuic *q;
  gint64 id; /* -1 until opened; written by the thread, read atomically */
  gpointer user_data;

  /* lock */
  Chunk *in_head, *in_tail; /* written, not yet taken by the thread */
  gsize queued;             /* written and not yet acknowledged */
  gboolean fin_requested, reset_requested, write_shut, closed;
  gboolean want_writable;
  gboolean dirty; /* on FerryQuic.dirty (holding a reference) */
  FerryQuicStream *dirty_next;

  /* thread */
  Chunk *tx_head, *tx_tail; /* taken, not yet acknowledged */
  Chunk *tx_cur;            /* holds the next byte to send; NULL when all were */
  gsize tx_cur_off;
  guint64 end_off, sent_off, acked_off;
  gsize acked_unreported;
  gboolean fin_pending, fin_sent, blocked, ended, remote;
  gboolean active, in_acked;
  FerryQuicStream *act_prev, *act_next; /* streams with something to send */
  FerryQuicStream *all_prev, *all_next; /* live streams (holding a reference) */
  FerryQuicStream *acked_next;          /* acknowledged since last flush (ref) */
};

typedef enum {
  CMD_OPEN,
  CMD_RESET,
  CMD_CONSUME,
  CMD_CLOSE,
  CMD_CALL,
} CmdType;

typedef struct Cmd Cmd;
struct Cmd {
  Cmd *next;
  CmdType type;
  FerryQuicStream *s;                      /* OPEN, RESET, CONSUME: holds a reference */
  guint64 n;                               /* RESET/CLOSE: error code; CONSUME: bytes */
  char *reason;                            /* CLOSE */
  void (*fn)(FerryQuic *q, gpointer data); /* CALL: runs on the thread */
  gpointer data;
  gboolean done; /* CALL: set under lock when fn has run */
};

typedef enum {
  ST_WAIT_INITIAL, /* server: no client packet yet */
  ST_OPEN,
  ST_CLOSING, /* we sent CONNECTION_CLOSE; repeat it to stragglers */
  ST_DONE,
} ConnState;

struct _FerryQuic {
  FerryQuicConfig cfg;
  char *alpn;
  FerryQuicTransport *t;
  GThread *thread;
  gpointer self; /* the connection's GThread, set by itself */
  int wake_fd;
  gint sleeping;

  GMutex lock;
  GCond cond;
  /* lock */
  Cmd *cmd_head, *cmd_tail;
  FerryQuicStream *dirty;
  gboolean stop;
  gboolean ended;
  FerryQuicEnd end_pub;
  guint64 end_code_pub;

  /* ferry_quic_push_datagram(): a ring of INBOX_BYTES holding each
   * datagram as a 2-byte length and its bytes. Producers hold inbox_lock,
   * the thread reads without it (head and tail are atomics: byte counts
   * that only grow; their place in the ring is the count modulo its size). */
  GMutex inbox_lock;
  guint8 *inbox;
  guint64 inbox_head, inbox_tail;
  /* The largest packet to write now (ferry_quic_set_udp_payload()). */
  gsize tx_room;

  /* thread */
  ngtcp2_conn *conn;
  gnutls_session_t tls;
  gnutls_certificate_credentials_t cred;
  ngtcp2_crypto_conn_ref conn_ref;
  ngtcp2_path path;
  ConnState state;
  ngtcp2_tstamp created_ts, rx_ts, close_deadline, close_sent_ts;
  guint8 *txbuf;
  gsize tx_pending_len, tx_pending_seg;
  gboolean tx_pending;
  guint8 close_pkt[1500];
  gsize close_len;
  gboolean hs_done, hs_announce;
  FerryQuicEnd end;
  guint64 end_code;
  FerryQuicStream *act_head, *act_tail;
  FerryQuicStream *all_head;
  FerryQuicStream *acked;
  GQueue pending_open; /* FerryQuicStream *, waiting for a stream ID (ref) */
  guint64 bytes_sent, bytes_received, dgrams_sent, dgrams_received, send_calls;
  guint64 stream_bytes_sent, stream_bytes_received, lost_closed;
  /* Keeping BBR's minimum RTT fresh (quic.c, rtt_keeper_holds()). */
  guint64 keeper_bw, keeper_bw_prev; /* bytes per second */
  ngtcp2_tstamp keeper_window_end, keeper_min_seen, keeper_drain_start, keeper_drain_end;
  gboolean cwnd_at_floor; /* the window is at 4 packets or less (logged once each time) */
};

/* quic.c */
gboolean quic_on_thread(FerryQuic *q);
void quic_wake(FerryQuic *q);
/* Queues cmd (lock held by the caller) */
void quic_push_cmd_locked(FerryQuic *q, Cmd *cmd);

/* quic-stream.c */
FerryQuicStream *quic_stream_new(FerryQuic *q, gpointer user_data);
/* Moves written chunks and FIN to the thread's side (lock held). */
void quic_stream_take_locked(FerryQuicStream *s);
gboolean quic_stream_sendable(FerryQuicStream *s);
/* Fills up to max vectors with the next unsent bytes; sets *fin when they
 * end the stream and FIN is due. Returns the vector count. */
gsize quic_stream_next(FerryQuicStream *s, ngtcp2_vec *v, gsize max, gboolean *fin, gsize *total);
void quic_stream_advance(FerryQuicStream *s, gsize n);
/* The peer acknowledged everything below upto: frees those chunks. */
void quic_stream_acked(FerryQuicStream *s, guint64 upto);
void quic_stream_free_tx(FerryQuicStream *s);

G_END_DECLS

#endif
