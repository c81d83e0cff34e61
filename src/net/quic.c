/* A QUIC connection on a thread of its own: ngtcp2 glue, the event loop,
 * GSO batching, close and error reporting (quic.h). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include <ferry/error.h>

#include "net/quic-private.h"
#include "net/quic-tls.h"

/* Datagrams are at most MAX_PKT bytes of UDP payload (1500-byte MTU minus
 * IPv6 and UDP headers); path MTU discovery may settle lower. A GSO batch
 * holds up to GSO_MAX_SEGS of them and at most GSO_MAX_BYTES in all (one
 * UDP super-packet must stay under 64 KiB). */
#define MAX_PKT           1452
#define GSO_MAX_SEGS      64
#define GSO_MAX_BYTES     65000
#define TXBUF_LEN         (GSO_MAX_BYTES + FERRY_QUIC_MAX_UDP_PAYLOAD)
#define MAX_VECS          8
#define SEND_BATCH_BUDGET 16  /* GSO batches before reading again */
#define RECV_BUDGET       256 /* datagrams before writing (ACKs) */
#define SCID_LEN          16
/* Keeping BBR's minimum RTT fresh (rtt_keeper_holds()). */
#define KEEPER_MIN_RTT       (10 * NGTCP2_MILLISECONDS)
#define KEEPER_EVERY         (8 * NGTCP2_SECONDS) /* BBR's minimum lasts 10 s */
#define KEEPER_DRAIN_ROUNDS  5
#define KEEPER_WINDOW_ROUNDS 10
#define KEEPER_MIN_FLIGHT    (16 * MAX_PKT)
#define REASON_MAX           256
/* Bytes of datagrams pushed and not yet read (ferry_quic_push_datagram()):
 * about a thousand full-size ones, or 65 of the largest. */
#define INBOX_BYTES        ((gsize)2 << 20)
#define CLOSE_REPEAT_NS    (10 * NGTCP2_MILLISECONDS)
#define TLS_ALERT_NO_ALPN  120
#define TLS_ALERT_INTERNAL 80

static ngtcp2_tstamp
now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (ngtcp2_tstamp)ts.tv_sec * NGTCP2_SECONDS + (ngtcp2_tstamp)ts.tv_nsec;
}

const char *
ferry_quic_cc_name(FerryQuicCC cc)
{
  switch (cc) {
  case FERRY_QUIC_CC_BBR:
    return "bbr";
  case FERRY_QUIC_CC_CUBIC:
    return "cubic";
  case FERRY_QUIC_CC_RENO:
    return "reno";
  case FERRY_QUIC_CC_BBR2:
    return "bbr2";
  case FERRY_QUIC_CC_BBR_PLAIN:
    return "bbr-plain";
  }
  return "unknown";
}

gboolean
ferry_quic_cc_parse(const char *name, FerryQuicCC *cc, GError **error)
{
  static const FerryQuicCC all[] = {FERRY_QUIC_CC_BBR, FERRY_QUIC_CC_BBR_PLAIN, FERRY_QUIC_CC_CUBIC,
                                    FERRY_QUIC_CC_RENO, FERRY_QUIC_CC_BBR2};

  for (gsize i = 0; name != NULL && i < G_N_ELEMENTS(all); i++) {
    if (g_ascii_strcasecmp(name, ferry_quic_cc_name(all[i])) == 0) {
      *cc = all[i];
      return TRUE;
    }
  }
  return ferry_set_error(
      error, FERRY_ERR_INVALID,
      "unknown congestion controller '%s': use bbr, bbr-plain, bbr2, cubic or reno",
      name != NULL ? name : "");
}

static ngtcp2_cc_algo
cc_algo(FerryQuicCC cc)
{
  switch (cc) {
  case FERRY_QUIC_CC_CUBIC:
    return NGTCP2_CC_ALGO_CUBIC;
  case FERRY_QUIC_CC_RENO:
    return NGTCP2_CC_ALGO_RENO;
  case FERRY_QUIC_CC_BBR2:
    return NGTCP2_CC_ALGO_BBR2;
  case FERRY_QUIC_CC_BBR:
  case FERRY_QUIC_CC_BBR_PLAIN:
    break;
  }
  return NGTCP2_CC_ALGO_BBR;
}

void
ferry_quic_config_init(FerryQuicConfig *c, FerryQuicRole role)
{
  memset(c, 0, sizeof(*c));
  c->role = role;
  c->alpn = FERRY_QUIC_ALPN;
  c->cc = FERRY_QUIC_CC_BBR;
  c->conn_window_bytes = 64 * 1024 * 1024;
  c->stream_window_bytes = 16 * 1024 * 1024;
  c->max_incoming_streams = 100;
  c->stream_send_buffer_bytes = 16 * 1024 * 1024;
  c->idle_timeout_ms = 30000;
  c->handshake_timeout_ms = 10000;
  c->keepalive_ms = 10000;
  c->max_udp_payload = MAX_PKT;
}

gboolean
quic_on_thread(FerryQuic *q)
{
  return g_atomic_pointer_get(&q->self) == (gpointer)g_thread_self();
}

/* Wakes the thread if it sleeps (or is about to: it sets sleeping before
 * its last look at the queues, see wait_events()). */
void
quic_wake(FerryQuic *q)
{
  guint64 one = 1;

  if (g_atomic_int_compare_and_exchange(&q->sleeping, 1, 0)) {
    ssize_t n = write(q->wake_fd, &one, sizeof(one));
    (void)n;
  }
}

void
quic_push_cmd_locked(FerryQuic *q, Cmd *cmd)
{
  cmd->next = NULL;
  if (q->cmd_tail != NULL)
    q->cmd_tail->next = cmd;
  else
    q->cmd_head = cmd;
  q->cmd_tail = cmd;
}

/* ---- ending: one place decides what the user reads ---- */

static void stream_end(FerryQuic *q, FerryQuicStream *s, gboolean aborted, guint64 code);
static void link_live(FerryQuic *q, FerryQuicStream *s);

/* The connection is over: every live stream is cut, the closed callback
 * runs once with error (NULL for a clean end; consumed). */
static void
conn_end(FerryQuic *q, FerryQuicEnd end, guint64 code, GError *error, ConnState next)
{
  if (q->end != FERRY_QUIC_END_NONE) {
    g_clear_error(&error);
    return;
  }
  q->end = end;
  q->end_code = code;
  q->state = next;
  q->tx_pending = FALSE;
  g_mutex_lock(&q->lock);
  q->ended = TRUE;
  q->end_pub = end;
  q->end_code_pub = code;
  g_mutex_unlock(&q->lock);
  /* streams still waiting for an ID end like the others */
  while (!g_queue_is_empty(&q->pending_open))
    link_live(q, g_queue_pop_head(&q->pending_open));
  while (q->all_head != NULL)
    stream_end(q, q->all_head, TRUE, 0);
  if (error != NULL)
    g_debug("QUIC connection ended: %s", error->message);
  if (q->cfg.callbacks.closed != NULL)
    q->cfg.callbacks.closed(q, error, q->cfg.user_data);
  g_clear_error(&error);
}

static GError *
tls_alert_error(guint8 alert, gboolean from_peer, const char *alpn)
{
  const char *name = gnutls_alert_get_name((gnutls_alert_description_t)alert);

  if (alert == TLS_ALERT_NO_ALPN)
    return g_error_new(FERRY_ERROR, FERRY_ERROR_VERSION,
                       "QUIC handshake failed: %s (TLS alert %u, %s); both ends need a ferry "
                       "that speaks %s — upgrade the older one",
                       from_peer ? "the peer refused our application protocol"
                                 : "the peer does not offer our application protocol",
                       alert, name != NULL ? name : "no application protocol", alpn);
  return g_error_new(FERRY_ERROR, FERRY_ERROR_CRYPTO,
                     "QUIC handshake failed: %s TLS alert %u (%s); check that both ends run "
                     "a current ferry, then try again",
                     from_peer ? "the peer sent" : "we sent", alert,
                     name != NULL ? name : "unknown alert");
}

/* The peer closed (we are draining): say why in the user's terms. */
static void
end_by_peer(FerryQuic *q)
{
  ngtcp2_connection_close_error ccerr;
  g_autofree char *reason = NULL;
  GError *error = NULL;
  FerryQuicEnd end = FERRY_QUIC_END_PEER;

  ngtcp2_conn_get_connection_close_error(q->conn, &ccerr);
  reason = ccerr.reason != NULL
               ? g_utf8_make_valid((const char *)ccerr.reason, (gssize)ccerr.reasonlen)
               : g_strdup("");
  if (ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION) {
    if (ccerr.error_code != 0)
      error = g_error_new(FERRY_ERROR, FERRY_ERROR_FAILED,
                          "the peer closed the connection with code %" G_GUINT64_FORMAT "%s%s",
                          ccerr.error_code, *reason ? ": " : "", reason);
  } else if ((ccerr.error_code & ~(guint64)0xff) == NGTCP2_CRYPTO_ERROR) {
    end = FERRY_QUIC_END_HANDSHAKE;
    error = tls_alert_error((guint8)(ccerr.error_code & 0xff), TRUE, q->alpn);
  } else if (ccerr.error_code == NGTCP2_APPLICATION_ERROR) {
    error = g_error_new(FERRY_ERROR, FERRY_ERROR_FAILED,
                        "the peer closed the connection during the handshake%s%s",
                        *reason ? ": " : "", reason);
  } else if (ccerr.error_code != NGTCP2_NO_ERROR) {
    end = FERRY_QUIC_END_PROTOCOL;
    error = g_error_new(FERRY_ERROR, FERRY_ERROR_INVALID,
                        "the peer reported QUIC error 0x%" G_GINT64_MODIFIER "x%s%s; the two "
                        "ends disagree about the protocol — check that both run a current ferry",
                        ccerr.error_code, *reason ? ": " : "", reason);
  }
  conn_end(q, end, ccerr.error_code, error, ST_DONE);
}

static void send_datagrams(FerryQuic *q, const guint8 *buf, gsize len, gsize seg);

/* We end the connection: CONNECTION_CLOSE carrying ccerr goes out, and is
 * repeated to packets that still arrive for a few PTOs. */
static void
end_by_us(FerryQuic *q, const ngtcp2_connection_close_error *ccerr, FerryQuicEnd end, GError *error)
{
  ngtcp2_ssize n = 0;
  ngtcp2_tstamp ts = now_ns();

  if (q->conn != NULL && !ngtcp2_conn_is_in_draining_period(q->conn) &&
      !ngtcp2_conn_is_in_closing_period(q->conn))
    n = ngtcp2_conn_write_connection_close(q->conn, NULL, NULL, q->close_pkt, sizeof(q->close_pkt),
                                           ccerr, ts);
  if (n > 0) {
    q->close_len = (gsize)n;
    q->close_sent_ts = ts;
    q->close_deadline = ts + 3 * ngtcp2_conn_get_pto(q->conn);
    conn_end(q, end, ccerr->error_code, error, ST_CLOSING);
    send_datagrams(q, q->close_pkt, q->close_len, 0);
  } else {
    conn_end(q, end, ccerr->error_code, error, ST_DONE);
  }
}

/* ngtcp2 said no: a fatal library error, a TLS failure or a protocol
 * violation by the peer. */
static void
end_by_error(FerryQuic *q, int rv)
{
  ngtcp2_connection_close_error ccerr;
  GError *error;
  FerryQuicEnd end;

  if (rv == NGTCP2_ERR_DRAINING) {
    end_by_peer(q);
    return;
  }
  ngtcp2_connection_close_error_default(&ccerr);
  if (rv == NGTCP2_ERR_CRYPTO) {
    guint8 alert = ngtcp2_conn_get_tls_alert(q->conn);
    if (alert == 0)
      alert = TLS_ALERT_INTERNAL;
    ngtcp2_connection_close_error_set_transport_error_tls_alert(&ccerr, alert, NULL, 0);
    end = FERRY_QUIC_END_HANDSHAKE;
    error = tls_alert_error(alert, FALSE, q->alpn);
  } else if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    end = FERRY_QUIC_END_HANDSHAKE_TIMEOUT;
    error = g_error_new(FERRY_ERROR, FERRY_ERROR_IO,
                        "the QUIC handshake did not finish within %u ms: the peer does not "
                        "answer on this path; check that UDP is not blocked, or try again",
                        q->cfg.handshake_timeout_ms);
    conn_end(q, end, 0, error, ST_DONE);
    return;
  } else {
    ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, rv, NULL, 0);
    end = FERRY_QUIC_END_PROTOCOL;
    error = g_error_new(FERRY_ERROR, FERRY_ERROR_INVALID,
                        "the QUIC connection failed: %s; the peer broke the protocol or "
                        "runs an incompatible ferry",
                        ngtcp2_strerror(rv));
  }
  end_by_us(q, &ccerr, end, error);
}

static void
end_by_transport(FerryQuic *q, int neg_errno)
{
  conn_end(q, FERRY_QUIC_END_IO, 0,
           g_error_new(FERRY_ERROR, FERRY_ERROR_IO,
                       "the network path of the QUIC connection failed: %s; run the same "
                       "command again to reconnect",
                       g_strerror(-neg_errno)),
           ST_DONE);
}

static void
local_close(FerryQuic *q, guint64 code, const char *reason)
{
  ngtcp2_connection_close_error ccerr;
  gsize len = reason != NULL ? MIN(strlen(reason), (gsize)REASON_MAX) : 0;

  if (q->end != FERRY_QUIC_END_NONE)
    return;
  ngtcp2_connection_close_error_default(&ccerr);
  ngtcp2_connection_close_error_set_application_error(&ccerr, code, (const uint8_t *)reason, len);
  end_by_us(q, &ccerr, FERRY_QUIC_END_LOCAL, NULL);
}

/* ---- sending ---- */

/* Hands one batch to the transport. Returns FALSE when the transport is
 * full (the batch stays in txbuf as pending) or broken. */
static gboolean
transport_send(FerryQuic *q, const guint8 *buf, gsize len, gsize seg)
{
  int rc = q->t->vtable->send(q->t, buf, len, len > seg ? seg : 0);

  if (rc == -EAGAIN) {
    if (buf == q->txbuf) {
      q->tx_pending = TRUE;
      q->tx_pending_len = len;
      q->tx_pending_seg = seg;
    }
    return FALSE;
  }
  if (rc < 0) {
    end_by_transport(q, rc);
    return FALSE;
  }
  q->send_calls++;
  q->bytes_sent += len;
  q->dgrams_sent += seg > 0 ? (len + seg - 1) / seg : 1;
  return TRUE;
}

static void
send_datagrams(FerryQuic *q, const guint8 *buf, gsize len, gsize seg)
{
  transport_send(q, buf, len, seg > 0 ? seg : len);
}

static void
activate(FerryQuic *q, FerryQuicStream *s)
{
  if (s->active)
    return;
  s->active = TRUE;
  s->act_next = NULL;
  s->act_prev = q->act_tail;
  if (q->act_tail != NULL)
    q->act_tail->act_next = s;
  else
    q->act_head = s;
  q->act_tail = s;
}

static void
deactivate(FerryQuic *q, FerryQuicStream *s)
{
  if (!s->active)
    return;
  if (s->act_prev != NULL)
    s->act_prev->act_next = s->act_next;
  else
    q->act_head = s->act_next;
  if (s->act_next != NULL)
    s->act_next->act_prev = s->act_prev;
  else
    q->act_tail = s->act_prev;
  s->act_prev = s->act_next = NULL;
  s->active = FALSE;
}

/* After a write: back of the line (round robin), or off it when done. */
static void
requeue(FerryQuic *q, FerryQuicStream *s)
{
  deactivate(q, s);
  if (quic_stream_sendable(s))
    activate(q, s);
}

static void
stream_shut_write(FerryQuic *q, FerryQuicStream *s)
{
  gboolean notify;

  deactivate(q, s);
  g_mutex_lock(&q->lock);
  s->write_shut = TRUE;
  notify = s->want_writable;
  s->want_writable = FALSE;
  g_mutex_unlock(&q->lock);
  s->blocked = TRUE;
  if (notify && q->cfg.callbacks.stream_writable != NULL)
    q->cfg.callbacks.stream_writable(q, s, q->cfg.user_data);
}

/* The size to offer ngtcp2 for the next packet. Datagrams above 1452
 * bytes wait for the end of the handshake: ngtcp2 pads Initial packets to
 * the whole room, and until then the peer may still take datagrams
 * through libnice, which carries at most
 * FERRY_QUIC_CALLBACK_MAX_DATAGRAM (a lost Initial costs a 1 s PTO). */
static gsize
packet_room(FerryQuic *q)
{
  gsize room = __atomic_load_n(&q->tx_room, __ATOMIC_RELAXED);
  if (room > MAX_PKT && !ngtcp2_conn_get_handshake_completed(q->conn))
    return MAX_PKT;
  return room;
}

/* Keeping BBR's minimum RTT fresh. ngtcp2 0.12's BBR v1 keeps up to twice
 * the path's bandwidth-delay product (BDP) in flight; with a bottleneck
 * queue of one BDP, common on long paths, that queue never empties, no RTT
 * sample comes back at the path's minimum, and every 10 s BBR goes to
 * ProbeRTT: four packets in flight for 200 ms and a round, ~0.35 s of next
 * to nothing at 100 ms (measured in lab/wan-bench, docs/wan.md). When 8 s
 * went by without a sample at the minimum, the sender holds new stream data
 * back while more than 0.9 BDP is in flight, for five rounds at most or
 * until such a sample comes: the queue drains while the link stays busy,
 * and BBR's minimum is renewed before it expires. The bandwidth is the
 * largest delivery rate ngtcp2 reported in the last 10-20 minimum RTTs.
 * Retransmissions, ACKs and control frames are never held; paths under
 * 10 ms (LAN, loopback) are left alone. Returns TRUE to hold. */
static gboolean
rtt_keeper_holds(FerryQuic *q, const ngtcp2_conn_stat *st, ngtcp2_tstamp ts)
{
  if (q->cfg.cc != FERRY_QUIC_CC_BBR || st->min_rtt == UINT64_MAX || st->min_rtt < KEEPER_MIN_RTT)
    return FALSE;
  if (ts >= q->keeper_window_end) {
    q->keeper_bw_prev = q->keeper_bw;
    q->keeper_bw = 0;
    q->keeper_window_end = ts + KEEPER_WINDOW_ROUNDS * st->min_rtt;
  }
  q->keeper_bw = MAX(q->keeper_bw, st->delivery_rate_sec);
  /* Only sustained sending counts: while next to nothing is in flight
   * (idle, keep-alives, a receiver deciding) the 8 s do not run. */
  if (q->keeper_drain_end == 0 && st->bytes_in_flight < KEEPER_MIN_FLIGHT) {
    q->keeper_min_seen = ts;
    return FALSE;
  }
  if (q->keeper_min_seen == 0 || st->latest_rtt <= st->min_rtt) {
    if (q->keeper_drain_end != 0)
      g_debug("quic: an RTT sample at the minimum (%.1f ms) after draining %.0f ms",
              (double)st->latest_rtt / NGTCP2_MILLISECONDS,
              (double)(ts - q->keeper_drain_start) / NGTCP2_MILLISECONDS);
    q->keeper_min_seen = ts;
    q->keeper_drain_end = 0;
    return FALSE;
  }
  if (q->keeper_drain_end == 0) {
    if (ts - q->keeper_min_seen < KEEPER_EVERY)
      return FALSE;
    g_debug("quic: no RTT sample at the minimum (%.1f ms) for %.1f s: draining the queue",
            (double)st->min_rtt / NGTCP2_MILLISECONDS,
            (double)(ts - q->keeper_min_seen) / NGTCP2_SECONDS);
    q->keeper_drain_start = ts;
    q->keeper_drain_end = ts + KEEPER_DRAIN_ROUNDS * st->min_rtt;
  }
  if (ts >= q->keeper_drain_end) {
    g_debug("quic: draining brought no RTT sample at the minimum: trying again in 8 s");
    q->keeper_min_seen = ts;
    q->keeper_drain_end = 0;
    return FALSE;
  }
  guint64 bdp = MAX(q->keeper_bw, q->keeper_bw_prev) * st->min_rtt / NGTCP2_SECONDS;
  return st->bytes_in_flight >= MAX(bdp - bdp / 10, KEEPER_MIN_FLIGHT);
}

/* Before each packet: notes a window fallen to 4 packets (BBR's ProbeRTT,
 * or persistent congestion) and asks the RTT keeper. Returns TRUE to hold
 * new stream data back. */
static gboolean
hold_stream_data(FerryQuic *q, ngtcp2_tstamp ts)
{
  ngtcp2_conn_stat st;

  ngtcp2_conn_get_conn_stat(q->conn, &st);
  gboolean floor = q->hs_done && st.cwnd <= 4 * st.max_tx_udp_payload_size;
  if (floor && !q->cwnd_at_floor)
    g_debug("quic: the congestion window fell to %" G_GUINT64_FORMAT
            " bytes (ProbeRTT or persistent congestion)",
            (guint64)st.cwnd);
  q->cwnd_at_floor = floor;
  return rtt_keeper_holds(q, &st, ts);
}

/* Writes one packet into dest from the streams in line. Returns its size,
 * 0 when nothing can be sent now, or a negative ngtcp2 error. */
static ngtcp2_ssize
write_one(FerryQuic *q, guint8 *dest, ngtcp2_tstamp ts)
{
  ngtcp2_vec vec[MAX_VECS];
  gboolean hold = hold_stream_data(q, ts);

  for (;;) {
    FerryQuicStream *s = hold ? NULL : q->act_head;
    ngtcp2_ssize ndatalen = -1, n;
    gboolean fin = FALSE;
    gsize nvec = 0, total = 0;
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_NONE;

    if (s != NULL) {
      nvec = quic_stream_next(s, vec, MAX_VECS, &fin, &total);
      flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
    }
    n = ngtcp2_conn_writev_stream(q->conn, NULL, NULL, dest, packet_room(q), &ndatalen, flags,
                                  s != NULL ? s->id : -1, vec, nvec, ts);
    if (s != NULL && ndatalen >= 0) {
      quic_stream_advance(s, (gsize)ndatalen);
      q->stream_bytes_sent += (guint64)ndatalen;
      if (fin && (gsize)ndatalen == total)
        s->fin_sent = TRUE;
    }
    switch (n) {
    case NGTCP2_ERR_WRITE_MORE:
      requeue(q, s);
      continue;
    case NGTCP2_ERR_STREAM_DATA_BLOCKED:
      s->blocked = TRUE;
      deactivate(q, s);
      continue;
    case NGTCP2_ERR_STREAM_SHUT_WR:
    case NGTCP2_ERR_STREAM_NOT_FOUND:
      stream_shut_write(q, s);
      continue;
    default:
      break;
    }
    if (s != NULL && n >= 0)
      requeue(q, s);
    return n;
  }
}

/* Sends packets until congestion control, pacing, flow control or the
 * transport says stop, in batches of equal-size datagrams: one sendmsg
 * with UDP_SEGMENT each when the transport can, else one sendmmsg. A
 * shorter packet ends a batch (GSO allows it only last); a longer one
 * (path MTU probe) starts the next. ngtcp2 0.12 has no aggregate writer,
 * so this is the hand-made equivalent. Returns TRUE when it sent
 * anything. */
static gboolean
write_packets(FerryQuic *q)
{
  gboolean sent = FALSE;

  if (q->conn == NULL || q->state != ST_OPEN)
    return FALSE;
  if (q->tx_pending) {
    if (!transport_send(q, q->txbuf, q->tx_pending_len, q->tx_pending_seg))
      return FALSE;
    q->tx_pending = FALSE;
    sent = TRUE;
  }
  for (int batch = 0; batch < SEND_BATCH_BUDGET; batch++) {
    ngtcp2_tstamp ts = now_ns();
    gsize limit = MIN(ngtcp2_conn_get_send_quantum(q->conn), (gsize)GSO_MAX_BYTES);
    gsize off = 0, seg = 0;
    guint nseg = 0;
    gboolean more = TRUE;

    for (;;) {
      ngtcp2_ssize n = write_one(q, q->txbuf + off, ts);

      if (n < 0) {
        end_by_error(q, (int)n);
        return TRUE;
      }
      if (n == 0) {
        more = FALSE;
        break;
      }
      if (nseg == 0) {
        seg = (gsize)n;
      } else if ((gsize)n > seg) {
        /* a bigger packet cannot join this batch: send the batch, keep the
         * packet as the first of the next one */
        if (!transport_send(q, q->txbuf, off, seg) && q->state != ST_OPEN)
          return TRUE;
        q->tx_pending = FALSE;
        memmove(q->txbuf, q->txbuf + off, (gsize)n);
        off = 0;
        nseg = 0;
        seg = (gsize)n;
      }
      off += (gsize)n;
      nseg++;
      if ((gsize)n < seg || nseg >= GSO_MAX_SEGS || off + q->cfg.max_udp_payload > limit)
        break;
    }
    if (off > 0) {
      gboolean ok = transport_send(q, q->txbuf, off, seg);
      sent = TRUE;
      ngtcp2_conn_update_pkt_tx_time(q->conn, ts);
      if (!ok)
        return sent;
    }
    if (!more)
      break;
  }
  return sent;
}

/* ---- receiving ---- */

static gboolean create_server_conn(FerryQuic *q, const guint8 *data, gsize len);

static void
on_datagram(gpointer ctx, const guint8 *data, gsize len)
{
  FerryQuic *q = ctx;
  int rv;

  q->dgrams_received++;
  q->bytes_received += len;
  switch (q->state) {
  case ST_WAIT_INITIAL:
    if (!create_server_conn(q, data, len))
      return;
    break;
  case ST_OPEN:
    break;
  case ST_CLOSING:
    if (q->close_len > 0 && q->rx_ts - q->close_sent_ts >= CLOSE_REPEAT_NS) {
      send_datagrams(q, q->close_pkt, q->close_len, 0);
      q->close_sent_ts = q->rx_ts;
    }
    return;
  case ST_DONE:
    return;
  }
  rv = ngtcp2_conn_read_pkt(q->conn, &q->path, NULL, data, len, q->rx_ts);
  if (rv != 0)
    end_by_error(q, rv);
}

static gboolean
read_datagrams(FerryQuic *q)
{
  guint total = 0;
  guint64 head, tail;
  guint8 *inbox;

  if (q->t->vtable->recv != NULL && q->state != ST_DONE) {
    while (total < RECV_BUDGET && q->state != ST_DONE) {
      int n;
      q->rx_ts = now_ns();
      n = q->t->vtable->recv(q->t, on_datagram, q);
      if (n < 0) {
        end_by_transport(q, n);
        break;
      }
      if (n == 0)
        break;
      total += (guint)n;
    }
  }
  inbox = g_atomic_pointer_get(&q->inbox);
  if (inbox == NULL)
    return total > 0;
  head = q->inbox_head;
  tail = __atomic_load_n(&q->inbox_tail, __ATOMIC_ACQUIRE);
  q->rx_ts = now_ns();
  while (head != tail && total < RECV_BUDGET) {
    gsize at = (gsize)(head % INBOX_BYTES);
    guint16 len = 0;
    if (INBOX_BYTES - at >= sizeof(len))
      memcpy(&len, inbox + at, sizeof(len));
    if (len == 0) { /* the rest of the ring was too short: go round */
      head += INBOX_BYTES - at;
      continue;
    }
    if (q->state != ST_DONE)
      on_datagram(q, inbox + at + sizeof(len), len);
    head += sizeof(len) + len;
    total++;
  }
  __atomic_store_n(&q->inbox_head, head, __ATOMIC_RELEASE);
  return total > 0;
}

gboolean
ferry_quic_push_datagram(FerryQuic *q, const guint8 *data, gsize len)
{
  guint64 head, tail;
  guint16 len16 = (guint16)len;
  gsize at, skip;

  if (len == 0 || len > MAX(q->t->max_recv_datagram, FERRY_QUIC_CALLBACK_MAX_DATAGRAM))
    return FALSE;
  g_mutex_lock(&q->inbox_lock);
  if (q->inbox == NULL)
    g_atomic_pointer_set(&q->inbox, g_malloc(INBOX_BYTES));
  head = __atomic_load_n(&q->inbox_head, __ATOMIC_ACQUIRE);
  tail = q->inbox_tail;
  at = (gsize)(tail % INBOX_BYTES);
  /* A datagram never wraps: where it does not fit before the end, a zero
   * length (if there is room for one) tells the reader to go round. */
  skip = INBOX_BYTES - at < sizeof(len16) + len ? INBOX_BYTES - at : 0;
  if (tail + skip + sizeof(len16) + len - head > INBOX_BYTES) {
    g_mutex_unlock(&q->inbox_lock);
    return FALSE;
  }
  if (skip >= sizeof(len16))
    memset(q->inbox + at, 0, sizeof(len16));
  at = (at + skip) % INBOX_BYTES;
  memcpy(q->inbox + at, &len16, sizeof(len16));
  memcpy(q->inbox + at + sizeof(len16), data, len);
  __atomic_store_n(&q->inbox_tail, tail + skip + sizeof(len16) + len, __ATOMIC_RELEASE);
  g_mutex_unlock(&q->inbox_lock);
  quic_wake(q);
  return TRUE;
}

/* ---- ngtcp2 callbacks (the connection's thread, inside ngtcp2 calls) ---- */

static ngtcp2_conn *
get_conn(ngtcp2_crypto_conn_ref *ref)
{
  return ((FerryQuic *)ref->user_data)->conn;
}

static void
cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
  if (gnutls_rnd(GNUTLS_RND_NONCE, dest, len) != 0)
    g_error("GnuTLS cannot produce random bytes");
}

static int
cb_get_new_connection_id(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                         void *user_data)
{
  if (gnutls_rnd(GNUTLS_RND_NONCE, cid->data, cidlen) != 0 ||
      gnutls_rnd(GNUTLS_RND_NONCE, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  cid->datalen = cidlen;
  return 0;
}

static int
cb_handshake_completed(ngtcp2_conn *conn, void *user_data)
{
  FerryQuic *q = user_data;

  q->hs_done = TRUE;
  q->hs_announce = TRUE;
  return 0;
}

static int
cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id, uint64_t offset,
                    const uint8_t *data, size_t datalen, void *user_data, void *stream_user_data)
{
  FerryQuic *q = user_data;
  FerryQuicStream *s = stream_user_data;

  if (s == NULL || s->ended)
    return 0;
  q->stream_bytes_received += datalen;
  if (q->cfg.callbacks.stream_data != NULL)
    q->cfg.callbacks.stream_data(q, s, data, datalen, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0,
                                 q->cfg.user_data);
  if (!q->cfg.manual_flow_control && datalen > 0) {
    ngtcp2_conn_extend_max_stream_offset(conn, stream_id, datalen);
    ngtcp2_conn_extend_max_offset(conn, datalen);
  }
  return 0;
}

static int
cb_acked_stream_data_offset(ngtcp2_conn *conn, int64_t stream_id, uint64_t offset, uint64_t datalen,
                            void *user_data, void *stream_user_data)
{
  FerryQuic *q = user_data;
  FerryQuicStream *s = stream_user_data;

  if (s == NULL || s->ended)
    return 0;
  quic_stream_acked(s, offset + datalen);
  s->acked_unreported += datalen;
  if (!s->in_acked) {
    s->in_acked = TRUE;
    s->acked_next = q->acked;
    q->acked = ferry_quic_stream_ref(s);
  }
  return 0;
}

static void
link_live(FerryQuic *q, FerryQuicStream *s)
{
  s->all_prev = NULL;
  s->all_next = q->all_head;
  if (q->all_head != NULL)
    q->all_head->all_prev = s;
  q->all_head = s;
}

static int
cb_stream_open(ngtcp2_conn *conn, int64_t stream_id, void *user_data)
{
  FerryQuic *q = user_data;
  FerryQuicStream *s;

  if (!ngtcp2_is_bidi_stream(stream_id))
    return 0;
  s = quic_stream_new(q, NULL);
  s->remote = TRUE;
  __atomic_store_n(&s->id, stream_id, __ATOMIC_RELEASE);
  ngtcp2_conn_set_stream_user_data(conn, stream_id, s);
  link_live(q, s);
  if (q->cfg.callbacks.stream_opened != NULL)
    q->cfg.callbacks.stream_opened(q, s, q->cfg.user_data);
  return 0;
}

static int
cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id, uint64_t app_error_code,
                void *user_data, void *stream_user_data)
{
  FerryQuic *q = user_data;
  FerryQuicStream *s = stream_user_data;
  gboolean aborted = (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) != 0;

  if (!ngtcp2_conn_is_local_stream(conn, stream_id) && ngtcp2_is_bidi_stream(stream_id))
    ngtcp2_conn_extend_max_streams_bidi(conn, 1);
  if (s != NULL)
    stream_end(q, s, aborted, aborted ? app_error_code : 0);
  return 0;
}

static int
cb_extend_max_stream_data(ngtcp2_conn *conn, int64_t stream_id, uint64_t max_data, void *user_data,
                          void *stream_user_data)
{
  FerryQuic *q = user_data;
  FerryQuicStream *s = stream_user_data;

  if (s != NULL && !s->ended && !s->write_shut) {
    s->blocked = FALSE;
    if (quic_stream_sendable(s))
      activate(q, s);
  }
  return 0;
}

static void log_printf(void *user_data, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* FERRY_QUIC_DEBUG=1: ngtcp2's own trace on stderr. */
static void
log_printf(void *user_data, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* ---- streams on the thread ---- */

static void
unlink_live(FerryQuic *q, FerryQuicStream *s)
{
  if (s->all_prev != NULL)
    s->all_prev->all_next = s->all_next;
  else
    q->all_head = s->all_next;
  if (s->all_next != NULL)
    s->all_next->all_prev = s->all_prev;
  s->all_prev = s->all_next = NULL;
}

static void
stream_end(FerryQuic *q, FerryQuicStream *s, gboolean aborted, guint64 code)
{
  if (s->ended)
    return;
  s->ended = TRUE;
  if (q->conn != NULL && s->id >= 0)
    q->lost_closed += ngtcp2_conn_get_stream_loss_count(q->conn, s->id);
  deactivate(q, s);
  g_mutex_lock(&q->lock);
  s->closed = TRUE;
  s->queued = 0;
  s->want_writable = FALSE;
  g_mutex_unlock(&q->lock);
  if (q->cfg.callbacks.stream_closed != NULL)
    q->cfg.callbacks.stream_closed(q, s, aborted, code, q->cfg.user_data);
  quic_stream_free_tx(s);
  unlink_live(q, s);
  ferry_quic_stream_unref(s);
}

static void
open_pending_streams(FerryQuic *q)
{
  FerryQuicStream *s;

  if (q->conn == NULL || q->state != ST_OPEN)
    return;
  while ((s = g_queue_peek_head(&q->pending_open)) != NULL) {
    int64_t id;
    int rv = ngtcp2_conn_open_bidi_stream(q->conn, &id, s);
    if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED)
      return;
    g_queue_pop_head(&q->pending_open);
    if (rv != 0) {
      end_by_error(q, rv);
      ferry_quic_stream_unref(s);
      return;
    }
    __atomic_store_n(&s->id, id, __ATOMIC_RELEASE);
    link_live(q, s);
    if (quic_stream_sendable(s))
      activate(q, s);
  }
}

/* Acknowledged bytes leave the senders' budgets in one locked pass, and
 * writers that were turned away hear about the room. */
static void
flush_acked(FerryQuic *q)
{
  while (q->acked != NULL) {
    FerryQuicStream *s = q->acked;
    gboolean notify = FALSE;

    q->acked = s->acked_next;
    s->in_acked = FALSE;
    g_mutex_lock(&q->lock);
    if (!s->closed) {
      s->queued -= MIN(s->queued, s->acked_unreported);
      /* Room is reported once a quarter of the buffer is free, not at
       * every acknowledgement: the writer then comes back with a large
       * write instead of many small ones. */
      if (s->want_writable &&
          s->queued <= q->cfg.stream_send_buffer_bytes - q->cfg.stream_send_buffer_bytes / 4) {
        s->want_writable = FALSE;
        notify = TRUE;
      }
    }
    g_mutex_unlock(&q->lock);
    s->acked_unreported = 0;
    if (notify && q->cfg.callbacks.stream_writable != NULL)
      q->cfg.callbacks.stream_writable(q, s, q->cfg.user_data);
    ferry_quic_stream_unref(s);
  }
}

/* ---- commands from other threads ---- */

static void
run_cmd(FerryQuic *q, Cmd *cmd)
{
  FerryQuicStream *s = cmd->s;

  switch (cmd->type) {
  case CMD_OPEN:
    if (q->end != FERRY_QUIC_END_NONE) {
      g_mutex_lock(&q->lock);
      s->closed = TRUE;
      g_mutex_unlock(&q->lock);
      ferry_quic_stream_unref(s);
    } else {
      g_queue_push_tail(&q->pending_open, s);
    }
    cmd->s = NULL;
    break;
  case CMD_RESET:
    if (s->ended)
      break;
    if (s->id < 0) {
      if (g_queue_remove(&q->pending_open, s)) {
        link_live(q, s);
        stream_end(q, s, TRUE, cmd->n);
      }
    } else if (q->conn != NULL && q->state == ST_OPEN) {
      ngtcp2_conn_shutdown_stream(q->conn, s->id, cmd->n);
      stream_shut_write(q, s);
    }
    break;
  case CMD_CONSUME:
    if (q->conn != NULL && q->state == ST_OPEN) {
      if (!s->ended && s->id >= 0)
        ngtcp2_conn_extend_max_stream_offset(q->conn, s->id, cmd->n);
      ngtcp2_conn_extend_max_offset(q->conn, cmd->n);
    }
    break;
  case CMD_CLOSE:
    local_close(q, cmd->n, cmd->reason);
    break;
  case CMD_CALL:
    cmd->fn(q, cmd->data);
    g_mutex_lock(&q->lock);
    cmd->done = TRUE;
    g_cond_broadcast(&q->cond);
    g_mutex_unlock(&q->lock);
    return; /* the caller owns a CALL command */
  }
  if (cmd->s != NULL)
    ferry_quic_stream_unref(cmd->s);
  g_free(cmd->reason);
  g_free(cmd);
}

/* Takes queued commands and written data in one locked pass. Returns TRUE
 * when there was anything; *stop tells that ferry_quic_free() waits. */
static gboolean
take_commands(FerryQuic *q, gboolean *stop)
{
  Cmd *cmds;
  GPtrArray *dirty = NULL;
  gboolean any;

  g_mutex_lock(&q->lock);
  cmds = q->cmd_head;
  q->cmd_head = q->cmd_tail = NULL;
  /* The dirty list is taken apart here, under the lock: once a stream's
   * dirty flag is cleared, a writer may put it on the next list at once,
   * reusing dirty_next, so the links must not be followed after unlocking. */
  for (FerryQuicStream *s = q->dirty; s != NULL; s = s->dirty_next) {
    if (dirty == NULL)
      dirty = g_ptr_array_sized_new(8);
    g_ptr_array_add(dirty, s); /* takes the list's reference */
    s->dirty = FALSE;
    if (!s->closed)
      quic_stream_take_locked(s);
  }
  q->dirty = NULL;
  *stop = q->stop;
  g_mutex_unlock(&q->lock);
  any = cmds != NULL || dirty != NULL;

  while (cmds != NULL) {
    Cmd *next = cmds->next;
    run_cmd(q, cmds);
    cmds = next;
  }
  for (guint i = 0; dirty != NULL && i < dirty->len; i++) {
    FerryQuicStream *s = dirty->pdata[i];
    if (quic_stream_sendable(s))
      activate(q, s);
    ferry_quic_stream_unref(s);
  }
  if (dirty != NULL)
    g_ptr_array_free(dirty, TRUE);
  return any;
}

/* ---- set-up ---- */

static void
fill_callbacks(ngtcp2_callbacks *cb, gboolean server)
{
  memset(cb, 0, sizeof(*cb));
  if (server)
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = ngtcp2_crypto_recv_retry_cb;
  }
  cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb->rand = cb_rand;
  cb->get_new_connection_id = cb_get_new_connection_id;
  cb->handshake_completed = cb_handshake_completed;
  cb->recv_stream_data = cb_recv_stream_data;
  cb->acked_stream_data_offset = cb_acked_stream_data_offset;
  cb->stream_open = cb_stream_open;
  cb->stream_close = cb_stream_close;
  cb->extend_max_stream_data = cb_extend_max_stream_data;
}

static void
fill_settings(FerryQuic *q, ngtcp2_settings *settings, ngtcp2_transport_params *params)
{
  ngtcp2_settings_default(settings);
  settings->initial_ts = now_ns();
  settings->cc_algo = cc_algo(q->cfg.cc);
  settings->max_tx_udp_payload_size = q->cfg.max_udp_payload;
  /* Above 1452 bytes the caller knows the path takes it (same host):
   * use that size from the start instead of probing up from 1200. */
  settings->no_tx_udp_payload_size_shaping = q->cfg.max_udp_payload > MAX_PKT;
  settings->handshake_timeout = (ngtcp2_duration)q->cfg.handshake_timeout_ms * NGTCP2_MILLISECONDS;
  if (g_getenv("FERRY_QUIC_DEBUG") != NULL)
    settings->log_printf = log_printf;

  ngtcp2_transport_params_default(params);
  params->initial_max_stream_data_bidi_local = q->cfg.stream_window_bytes;
  params->initial_max_stream_data_bidi_remote = q->cfg.stream_window_bytes;
  params->initial_max_stream_data_uni = 0;
  params->initial_max_data = q->cfg.conn_window_bytes;
  params->initial_max_streams_bidi = q->cfg.max_incoming_streams;
  params->initial_max_streams_uni = 0;
  params->max_idle_timeout = (ngtcp2_duration)q->cfg.idle_timeout_ms * NGTCP2_MILLISECONDS;
  params->max_udp_payload_size = q->t->max_recv_datagram;
  params->disable_active_migration = 1;
}

static gboolean
finish_conn_setup(FerryQuic *q, GError **error)
{
  q->tls = ferry_quic_tls_session_new(q->cfg.role == FERRY_QUIC_SERVER, q->cred, q->alpn,
                                      &q->conn_ref, error);
  if (q->tls == NULL)
    return FALSE;
  ngtcp2_conn_set_tls_native_handle(q->conn, q->tls);
  if (q->cfg.keepalive_ms > 0)
    ngtcp2_conn_set_keep_alive_timeout(q->conn,
                                       (ngtcp2_duration)q->cfg.keepalive_ms * NGTCP2_MILLISECONDS);
  q->state = ST_OPEN;
  return TRUE;
}

static gboolean
random_cid(ngtcp2_cid *cid)
{
  cid->datalen = SCID_LEN;
  return gnutls_rnd(GNUTLS_RND_NONCE, cid->data, SCID_LEN) == 0;
}

static gboolean
create_client_conn(FerryQuic *q, GError **error)
{
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid dcid, scid;
  int rv;

  fill_callbacks(&cb, FALSE);
  fill_settings(q, &settings, &params);
  if (!random_cid(&dcid) || !random_cid(&scid))
    return ferry_set_error(error, FERRY_ERR_CRYPTO, "no random bytes for QUIC connection IDs");
  rv = ngtcp2_conn_client_new(&q->conn, &dcid, &scid, &q->path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                              &params, NULL, q);
  if (rv != 0)
    return ferry_set_error(error, FERRY_ERR_INVALID, "cannot create the QUIC connection: %s",
                           ngtcp2_strerror(rv));
  return finish_conn_setup(q, error);
}

/* A server's connection starts from the client's first Initial packet:
 * its connection IDs are the server's to answer to. */
static gboolean
create_server_conn(FerryQuic *q, const guint8 *data, gsize len)
{
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_pkt_hd hd;
  ngtcp2_cid scid;
  GError *error = NULL;
  int rv;

  if (ngtcp2_accept(&hd, data, len) != 0)
    return FALSE;
  fill_callbacks(&cb, TRUE);
  fill_settings(q, &settings, &params);
  params.original_dcid = hd.dcid;
  if (!random_cid(&scid))
    return FALSE;
  rv = ngtcp2_conn_server_new(&q->conn, &hd.scid, &scid, &q->path, hd.version, &cb, &settings,
                              &params, NULL, q);
  if (rv != 0) {
    q->conn = NULL;
    return FALSE;
  }
  if (!finish_conn_setup(q, &error)) {
    conn_end(q, FERRY_QUIC_END_HANDSHAKE, 0, error, ST_DONE);
    return FALSE;
  }
  return TRUE;
}

/* ---- the loop ---- */

static void
announce_handshake(FerryQuic *q)
{
  ngtcp2_connection_close_error ccerr;

  if (!q->hs_announce || q->state != ST_OPEN)
    return;
  q->hs_announce = FALSE;
  if (!ferry_quic_tls_alpn_is(q->tls, q->alpn)) {
    ngtcp2_connection_close_error_default(&ccerr);
    ngtcp2_connection_close_error_set_transport_error_tls_alert(&ccerr, TLS_ALERT_NO_ALPN, NULL, 0);
    end_by_us(q, &ccerr, FERRY_QUIC_END_HANDSHAKE,
              tls_alert_error(TLS_ALERT_NO_ALPN, FALSE, q->alpn));
    return;
  }
  if (q->cfg.callbacks.handshake_done != NULL)
    q->cfg.callbacks.handshake_done(q, q->cfg.user_data);
}

static void
handle_timers(FerryQuic *q)
{
  ngtcp2_tstamp ts = now_ns();
  int rv;

  switch (q->state) {
  case ST_WAIT_INITIAL:
    if (ts >= q->created_ts + (ngtcp2_tstamp)q->cfg.handshake_timeout_ms * NGTCP2_MILLISECONDS)
      conn_end(q, FERRY_QUIC_END_HANDSHAKE_TIMEOUT, 0,
               g_error_new(FERRY_ERROR, FERRY_ERROR_IO,
                           "no QUIC client reached us within %u ms; check that UDP is not "
                           "blocked between the two ends, or try again",
                           q->cfg.handshake_timeout_ms),
               ST_DONE);
    return;
  case ST_OPEN:
    if (ngtcp2_conn_get_expiry(q->conn) > ts)
      return;
    rv = ngtcp2_conn_handle_expiry(q->conn, ts);
    if (rv == NGTCP2_ERR_IDLE_CLOSE)
      conn_end(q, FERRY_QUIC_END_IDLE_TIMEOUT, 0,
               g_error_new(FERRY_ERROR, FERRY_ERROR_IO,
                           "nothing heard from the peer for %u ms (QUIC idle timeout): it "
                           "stopped or the network path broke; run the same command again to "
                           "resume",
                           q->cfg.idle_timeout_ms),
               ST_DONE);
    else if (rv != 0)
      end_by_error(q, rv);
    return;
  case ST_CLOSING:
    if (ts >= q->close_deadline)
      q->state = ST_DONE;
    return;
  case ST_DONE:
    return;
  }
}

static ngtcp2_tstamp
next_deadline(FerryQuic *q)
{
  switch (q->state) {
  case ST_WAIT_INITIAL:
    return q->created_ts + (ngtcp2_tstamp)q->cfg.handshake_timeout_ms * NGTCP2_MILLISECONDS;
  case ST_OPEN:
    return ngtcp2_conn_get_expiry(q->conn);
  case ST_CLOSING:
    return q->close_deadline;
  case ST_DONE:
    break;
  }
  return UINT64_MAX;
}

static gboolean
has_work_locked(FerryQuic *q)
{
  return q->cmd_head != NULL || q->dirty != NULL || q->stop;
}

/* Sleeps until a datagram, a command, a free transport or a deadline. The
 * sleeping flag goes up before the last look at the queues, so a writer
 * that queues after that look sees it and writes the eventfd. */
static void
wait_events(FerryQuic *q)
{
  struct pollfd pfd[2];
  nfds_t n = 0;
  ngtcp2_tstamp deadline = next_deadline(q), ts;
  struct timespec tmo, *ptmo = NULL;
  gboolean work;

  pfd[n++] = (struct pollfd){.fd = q->wake_fd, .events = POLLIN};
  if (q->t->fd >= 0 && q->state != ST_DONE)
    pfd[n++] = (struct pollfd){.fd = q->t->fd, .events = POLLIN | (q->tx_pending ? POLLOUT : 0)};

  g_atomic_int_set(&q->sleeping, 1);
  g_mutex_lock(&q->lock);
  work = has_work_locked(q);
  g_mutex_unlock(&q->lock);
  if (!work && g_atomic_pointer_get(&q->inbox) != NULL)
    work = __atomic_load_n(&q->inbox_tail, __ATOMIC_ACQUIRE) != q->inbox_head;
  if (work) {
    g_atomic_int_set(&q->sleeping, 0);
    return;
  }
  if (deadline != UINT64_MAX) {
    ts = now_ns();
    deadline = deadline > ts ? deadline - ts : 0;
    tmo.tv_sec = (time_t)(deadline / NGTCP2_SECONDS);
    tmo.tv_nsec = (long)(deadline % NGTCP2_SECONDS);
    ptmo = &tmo;
  }
  if (ppoll(pfd, n, ptmo, NULL) < 0 && errno != EINTR)
    g_warning("QUIC connection thread: ppoll failed: %s", g_strerror(errno));
  g_atomic_int_set(&q->sleeping, 0);
  if (pfd[0].revents & POLLIN) {
    guint64 v;
    ssize_t r = read(q->wake_fd, &v, sizeof(v));
    (void)r;
  }
}

static gpointer
conn_thread(gpointer data)
{
  FerryQuic *q = data;

  g_atomic_pointer_set(&q->self, g_thread_self());
  /* Pacing asks for sleeps of tens of microseconds: without this the
   * kernel may stretch each by its default 50 us of timer slack. */
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  for (;;) {
    gboolean busy, stop = FALSE;

    busy = take_commands(q, &stop);
    if (stop) {
      local_close(q, 0, "");
      break;
    }
    busy |= read_datagrams(q);
    announce_handshake(q);
    open_pending_streams(q);
    handle_timers(q);
    busy |= write_packets(q);
    flush_acked(q);
    if (q->cfg.callbacks.round_done != NULL)
      q->cfg.callbacks.round_done(q, q->cfg.user_data);
    if (!busy)
      wait_events(q);
  }
  return NULL;
}

FerryQuic *
ferry_quic_new(const FerryQuicConfig *config, FerryQuicTransport *transport, GError **error)
{
  FerryQuic *q;

  g_return_val_if_fail(config != NULL && transport != NULL, NULL);
  if (config->alpn == NULL || *config->alpn == '\0' || strlen(config->alpn) > 255 ||
      config->stream_send_buffer_bytes == 0 || config->idle_timeout_ms == 0 ||
      config->handshake_timeout_ms == 0 || config->max_udp_payload < 1200 ||
      config->max_udp_payload > FERRY_QUIC_MAX_UDP_PAYLOAD ||
      (config->start_udp_payload != 0 &&
       (config->start_udp_payload < 1200 || config->start_udp_payload > config->max_udp_payload))) {
    ferry_quic_transport_free(transport);
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "bad QUIC settings: the application protocol must be 1-255 bytes, the send "
                    "buffer and timeouts above 0 and the datagram sizes 1200-%d bytes (the "
                    "starting one at most the largest); start from ferry_quic_config_init()",
                    FERRY_QUIC_MAX_UDP_PAYLOAD);
    return NULL;
  }
  q = g_new0(FerryQuic, 1);
  q->cfg = *config;
  q->alpn = g_strdup(config->alpn);
  q->cfg.alpn = q->alpn;
  if (transport->can_gso && config->no_gso)
    transport->can_gso = FALSE;
  q->t = transport;
  q->tx_room = config->start_udp_payload ? config->start_udp_payload : config->max_udp_payload;
  q->wake_fd = -1;
  g_mutex_init(&q->lock);
  g_cond_init(&q->cond);
  g_mutex_init(&q->inbox_lock);
  g_queue_init(&q->pending_open);
  q->conn_ref.get_conn = get_conn;
  q->conn_ref.user_data = q;
  q->path.local.addr = (ngtcp2_sockaddr *)&transport->local;
  q->path.local.addrlen = transport->local_len;
  q->path.remote.addr = (ngtcp2_sockaddr *)&transport->remote;
  q->path.remote.addrlen = transport->remote_len;
  q->txbuf = g_malloc(TXBUF_LEN);
  q->created_ts = now_ns();
  q->state = ST_WAIT_INITIAL;

  q->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (q->wake_fd < 0) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot create an eventfd for the QUIC connection: %s",
                    g_strerror(errno));
    goto fail;
  }
  if (config->role == FERRY_QUIC_SERVER)
    q->cred = ferry_quic_tls_make_credentials(error);
  else if (gnutls_certificate_allocate_credentials(&q->cred) != 0)
    q->cred = NULL;
  if (q->cred == NULL) {
    if (error != NULL && *error == NULL)
      ferry_set_error(error, FERRY_ERR_CRYPTO, "cannot allocate TLS credentials for QUIC");
    goto fail;
  }
  if (config->role == FERRY_QUIC_CLIENT && !create_client_conn(q, error))
    goto fail;
  q->thread =
      g_thread_try_new(config->role == FERRY_QUIC_SERVER ? "ferry-quic-srv" : "ferry-quic-cli",
                       conn_thread, q, error);
  if (q->thread == NULL)
    goto fail;
  return q;

fail:
  ferry_quic_free(q);
  return NULL;
}

static void
free_streams(FerryQuic *q)
{
  while (q->all_head != NULL) {
    FerryQuicStream *s = q->all_head;
    unlink_live(q, s);
    ferry_quic_stream_unref(s);
  }
  while (q->acked != NULL) {
    FerryQuicStream *s = q->acked;
    q->acked = s->acked_next;
    ferry_quic_stream_unref(s);
  }
  while (q->dirty != NULL) {
    FerryQuicStream *s = q->dirty;
    q->dirty = s->dirty_next;
    ferry_quic_stream_unref(s);
  }
  while (!g_queue_is_empty(&q->pending_open))
    ferry_quic_stream_unref(g_queue_pop_head(&q->pending_open));
  while (q->cmd_head != NULL) {
    Cmd *cmd = q->cmd_head;
    q->cmd_head = cmd->next;
    if (cmd->s != NULL)
      ferry_quic_stream_unref(cmd->s);
    g_free(cmd->reason);
    g_free(cmd);
  }
}

void
ferry_quic_free(FerryQuic *q)
{
  if (q == NULL)
    return;
  g_return_if_fail(!quic_on_thread(q));
  if (q->thread != NULL) {
    guint64 one = 1;
    ssize_t n;
    g_mutex_lock(&q->lock);
    q->stop = TRUE;
    g_mutex_unlock(&q->lock);
    n = write(q->wake_fd, &one, sizeof(one));
    (void)n;
    g_thread_join(q->thread);
  }
  free_streams(q);
  if (q->conn != NULL)
    ngtcp2_conn_del(q->conn);
  if (q->tls != NULL)
    gnutls_deinit(q->tls);
  if (q->cred != NULL)
    gnutls_certificate_free_credentials(q->cred);
  ferry_quic_transport_free(q->t);
  if (q->wake_fd >= 0)
    close(q->wake_fd);
  g_free(q->inbox);
  g_free(q->txbuf);
  g_free(q->alpn);
  g_mutex_clear(&q->lock);
  g_cond_clear(&q->cond);
  g_mutex_clear(&q->inbox_lock);
  g_free(q);
}

void
ferry_quic_close(FerryQuic *q, guint64 app_code, const char *reason)
{
  Cmd *cmd = g_new0(Cmd, 1);

  cmd->type = CMD_CLOSE;
  cmd->n = app_code;
  cmd->reason = g_strdup(reason != NULL ? reason : "");
  g_mutex_lock(&q->lock);
  quic_push_cmd_locked(q, cmd);
  g_mutex_unlock(&q->lock);
  quic_wake(q);
}

/* Runs fn on the connection's thread and waits for it (at once when
 * already there). */
static void
run_on_thread(FerryQuic *q, void (*fn)(FerryQuic *q, gpointer data), gpointer data)
{
  Cmd cmd = {.type = CMD_CALL, .fn = fn, .data = data};

  if (q->thread == NULL || quic_on_thread(q)) {
    fn(q, data);
    return;
  }
  g_mutex_lock(&q->lock);
  quic_push_cmd_locked(q, &cmd);
  g_mutex_unlock(&q->lock);
  quic_wake(q);
  g_mutex_lock(&q->lock);
  while (!cmd.done)
    g_cond_wait(&q->cond, &q->lock);
  g_mutex_unlock(&q->lock);
}

typedef struct {
  const char *label;
  guint8 *out;
  gsize len;
  GError *error;
  gboolean ok;
} ExportCall;

static void
do_export(FerryQuic *q, gpointer data)
{
  ExportCall *e = data;

  if (!q->hs_done || q->tls == NULL) {
    ferry_set_error(&e->error, FERRY_ERR_STATE,
                    "the QUIC handshake is not done yet: keying material comes after it");
    return;
  }
  e->ok = ferry_quic_tls_export(q->tls, e->label, e->out, e->len, &e->error);
}

gboolean
ferry_quic_export_keying_material(FerryQuic *q, const char *label, guint8 *out, gsize len,
                                  GError **error)
{
  ExportCall e = {.label = label, .out = out, .len = len};

  run_on_thread(q, do_export, &e);
  if (!e.ok)
    g_propagate_error(error, e.error);
  return e.ok;
}

static void
do_info(FerryQuic *q, gpointer data)
{
  FerryQuicInfo *info = data;
  ngtcp2_conn_stat st;

  memset(info, 0, sizeof(*info));
  info->handshake_done = q->hs_done;
  info->end = q->end;
  info->cc_name = ferry_quic_cc_name(q->cfg.cc);
  info->bytes_sent = q->bytes_sent;
  info->bytes_received = q->bytes_received;
  info->datagrams_sent = q->dgrams_sent;
  info->datagrams_received = q->dgrams_received;
  info->send_calls = q->send_calls;
  info->stream_bytes_sent = q->stream_bytes_sent;
  info->stream_bytes_received = q->stream_bytes_received;
  info->packets_lost = q->lost_closed;
  info->gso = q->t->can_gso;
  if (q->conn == NULL)
    return;
  for (FerryQuicStream *s = q->all_head; s != NULL; s = s->all_next)
    if (s->id >= 0)
      info->packets_lost += ngtcp2_conn_get_stream_loss_count(q->conn, s->id);
  ngtcp2_conn_get_conn_stat(q->conn, &st);
  info->smoothed_rtt_us = st.smoothed_rtt / NGTCP2_MICROSECONDS;
  info->min_rtt_us = st.min_rtt == UINT64_MAX ? 0 : st.min_rtt / NGTCP2_MICROSECONDS;
  info->latest_rtt_us = st.latest_rtt / NGTCP2_MICROSECONDS;
  info->cwnd_bytes = st.cwnd;
  info->bytes_in_flight = st.bytes_in_flight;
  info->pacing_rate_bps = (guint64)(st.pacing_rate * NGTCP2_SECONDS);
  info->max_udp_payload = ngtcp2_conn_get_path_max_tx_udp_payload_size(q->conn);
  info->udp_payload = MIN(info->max_udp_payload, packet_room(q));
}

void
ferry_quic_get_info(FerryQuic *q, FerryQuicInfo *info)
{
  run_on_thread(q, do_info, info);
}

void
ferry_quic_set_udp_payload(FerryQuic *q, gsize size)
{
  size = CLAMP(size, 1200, q->cfg.max_udp_payload);
  __atomic_store_n(&q->tx_room, size, __ATOMIC_RELAXED);
  quic_wake(q);
}

FerryQuicEnd
ferry_quic_get_end(FerryQuic *q, guint64 *app_code)
{
  FerryQuicEnd end;

  g_mutex_lock(&q->lock);
  end = q->end_pub;
  if (app_code != NULL)
    *app_code = q->end_code_pub;
  g_mutex_unlock(&q->lock);
  return end;
}

FerryQuicRole
ferry_quic_get_role(FerryQuic *q)
{
  return q->cfg.role;
}
