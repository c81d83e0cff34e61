/* QUIC connections (src/net/quic.h) over loopback UDP and over a lossy
 * callback pipe: handshake and exporter, ALPN, bulk and many-stream
 * transfers checked byte for byte, resets, closes, a vanished peer, and
 * STUN kept away from QUIC. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/udp.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ferry/error.h>

#include "net/quic.h"
#include "net/udp.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define MIB                (1024 * 1024)
#define BULK_BYTES         (SANITIZED ? 8 * MIB : 64 * MIB)
#define LOSSY_BYTES        (SANITIZED ? 1 * MIB : 4 * MIB)
#define NSTREAMS           100
#define STREAM_BYTES       (SANITIZED ? 32 * 1024 : 256 * 1024)
#define SERVER_MAX_STREAMS 8
#define WAIT_S             60
#define THREAD_BYTES       (SANITIZED ? 1 * MIB : 8 * MIB)
#define THREAD_WINDOW      (64 * 1024)

static const char *self_path;

/* ---- deterministic bytes: byte i of stream "seed" depends on (seed, i) only ---- */

static guint64
mix(guint64 x)
{
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

static void
pattern(guint64 seed, guint64 off, guint8 *buf, gsize len)
{
  while (len > 0) {
    guint64 w = mix((seed << 40) ^ (off / 8));
    gsize skip = off % 8, n = MIN(8 - skip, len);
    memcpy(buf, (guint8 *)&w + skip, n);
    buf += n;
    off += n;
    len -= n;
  }
}

static void
pattern_digest(guint64 seed, gsize len, guint8 out[32])
{
  g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
  guint8 *buf = g_malloc(len);
  gsize out_len = 32;

  pattern(seed, 0, buf, len);
  g_checksum_update(sum, buf, len);
  g_checksum_get_digest(sum, out, &out_len);
  g_free(buf);
}

/* ---- the harness: both ends' state under one lock ---- */

typedef enum {
  MODE_IDLE,   /* only handshake and close */
  MODE_BULK,   /* one stream, both directions, pattern bytes */
  MODE_MANY,   /* client: NSTREAMS streams; server: reply with a digest */
  MODE_RESET,  /* client resets its stream after a while */
  MODE_THREAD, /* the test's own thread writes; the server credits by hand */
} Mode;

typedef struct Harness Harness;

typedef struct {
  Harness *h;
  const char *name;
  FerryQuic *q;
  gboolean server;
  gboolean handshake;
  gboolean closed;
  GError *error;
  guint8 exported_cb[32];
  gboolean exported_cb_ok;
  guint streams_closed_ok, streams_aborted;
  guint64 last_abort_code;
  guint live_streams, max_live_streams;
  guint filtered;
  guint8 filtered_first;
} Side;

typedef struct {
  Side *side;
  FerryQuicStream *s;
  guint64 tx_seed, tx_total, tx_off;
  guint8 buf[64 * 1024];
  gsize buf_len, buf_off;
  gboolean tx_fin;
  guint64 rx_seed, rx_off, rx_expected;
  gboolean rx_fin;
  GChecksum *rx_sum;
  guint8 reply[32];
  gsize reply_len;
  guint index;
  gint resetting; /* set before ferry_quic_stream_reset(): write errors expected */
} Flow;

struct Harness {
  GMutex m;
  GCond c;
  Mode mode;
  Side client, server;
  char *failure;
  guint64 bulk_bytes;
  GPtrArray *flows;
  guint many_ok;
  /* MODE_THREAD */
  guint writable;
  guint64 received;
  gpointer consumed; /* a byte count in a pointer, read atomically by the server */
  FerryQuicStream *server_stream;
};

static void fail(Harness *h, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
fail(Harness *h, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  g_mutex_lock(&h->m);
  if (h->failure == NULL)
    h->failure = g_strdup_vprintf(fmt, ap);
  g_cond_broadcast(&h->c);
  g_mutex_unlock(&h->m);
  va_end(ap);
}

#define WAIT_UNTIL(h, expr)                                                                        \
  ({                                                                                               \
    gint64 end_ = g_get_monotonic_time() + WAIT_S * G_TIME_SPAN_SECOND;                            \
    gboolean ok_;                                                                                  \
    const char *failure_;                                                                          \
    g_mutex_lock(&(h)->m);                                                                         \
    while (!(ok_ = (expr)) && (h)->failure == NULL && g_cond_wait_until(&(h)->c, &(h)->m, end_))   \
      ;                                                                                            \
    ok_ = (expr);                                                                                  \
    failure_ = (h)->failure;                                                                       \
    g_mutex_unlock(&(h)->m);                                                                       \
    g_assert_cmpstr(failure_, ==, NULL);                                                           \
    ok_;                                                                                           \
  })

static Flow *
flow_new(Side *side, FerryQuicStream *s)
{
  Flow *f = g_new0(Flow, 1);

  f->side = side;
  f->s = s;
  g_mutex_lock(&side->h->m);
  g_ptr_array_add(side->h->flows, f);
  g_cond_broadcast(&side->h->c);
  g_mutex_unlock(&side->h->m);
  ferry_quic_stream_set_user_data(s, f);
  return f;
}

static void
flow_free(gpointer data)
{
  Flow *f = data;

  if (f->rx_sum != NULL)
    g_checksum_free(f->rx_sum);
  g_free(f);
}

/* Writes pattern bytes until the queue is full; called again from
 * stream_writable. Connection thread only. */
static void
flow_pump(Flow *f)
{
  while (f->tx_off < f->tx_total) {
    gssize n;
    GError *error = NULL;

    if (f->buf_off == f->buf_len) {
      f->buf_len = (gsize)MIN((guint64)sizeof(f->buf), f->tx_total - f->tx_off);
      f->buf_off = 0;
      pattern(f->tx_seed, f->tx_off, f->buf, f->buf_len);
    }
    n = ferry_quic_stream_write(f->s, f->buf + f->buf_off, f->buf_len - f->buf_off, &error);
    if (n < 0 && g_atomic_int_get(&f->resetting)) {
      g_error_free(error);
      return;
    }
    if (n < 0) {
      fail(f->side->h, "%s: write failed: %s", f->side->name, error->message);
      g_error_free(error);
      return;
    }
    f->buf_off += (gsize)n;
    f->tx_off += (guint64)n;
    if (f->buf_off < f->buf_len)
      return;
  }
  if (!f->tx_fin) {
    f->tx_fin = TRUE;
    ferry_quic_stream_finish(f->s);
  }
}

/* ---- callbacks (connection threads) ---- */

static void
on_handshake(FerryQuic *q, gpointer user_data)
{
  Side *side = user_data;
  Harness *h = side->h;
  GError *error = NULL;

  side->exported_cb_ok =
      ferry_quic_export_keying_material(q, "EXPORTER-ferry-test", side->exported_cb, 32, &error);
  g_clear_error(&error);
  if (!side->server && h->mode == MODE_BULK) {
    Flow *f = flow_new(side, ferry_quic_stream_open(q, NULL, &error));
    f->tx_seed = 1;
    f->tx_total = h->bulk_bytes;
    f->rx_seed = 2;
    f->rx_expected = h->bulk_bytes;
    flow_pump(f);
  } else if (!side->server && h->mode == MODE_MANY) {
    for (guint i = 0; i < NSTREAMS; i++) {
      FerryQuicStream *s = ferry_quic_stream_open(q, NULL, &error);
      Flow *f = flow_new(side, s);
      guint8 *payload = g_malloc(STREAM_BYTES);
      g_autoptr(GBytes) bytes = NULL;

      f->index = i;
      f->tx_seed = 1000 + i;
      f->tx_total = STREAM_BYTES;
      pattern(f->tx_seed, 0, payload, STREAM_BYTES);
      bytes = g_bytes_new_take(payload, STREAM_BYTES);
      if (!ferry_quic_stream_write_bytes(s, bytes, &error))
        fail(h, "client: stream %u: write_bytes refused", i);
      f->tx_off = STREAM_BYTES;
      f->tx_fin = TRUE;
      ferry_quic_stream_finish(s);
    }
  } else if (!side->server && h->mode == MODE_RESET) {
    Flow *f = flow_new(side, ferry_quic_stream_open(q, NULL, &error));
    f->tx_seed = 5;
    f->tx_total = G_MAXUINT64 / 2; /* never done: the reset comes first */
    flow_pump(f);
  }
  g_mutex_lock(&h->m);
  side->handshake = TRUE;
  g_cond_broadcast(&h->c);
  g_mutex_unlock(&h->m);
}

static void
on_stream_opened(FerryQuic *q, FerryQuicStream *s, gpointer user_data)
{
  Side *side = user_data;
  Harness *h = side->h;
  Flow *f = flow_new(side, ferry_quic_stream_ref(s));

  g_mutex_lock(&h->m);
  side->live_streams++;
  side->max_live_streams = MAX(side->max_live_streams, side->live_streams);
  g_mutex_unlock(&h->m);
  if (h->mode == MODE_BULK) {
    f->tx_seed = 2;
    f->tx_total = h->bulk_bytes;
    f->rx_seed = 1;
    f->rx_expected = h->bulk_bytes;
    flow_pump(f);
  } else if (h->mode == MODE_MANY || h->mode == MODE_RESET) {
    f->rx_sum = g_checksum_new(G_CHECKSUM_SHA256);
  } else if (h->mode == MODE_THREAD) {
    f->rx_seed = 3;
    f->rx_expected = THREAD_BYTES;
    g_mutex_lock(&h->m);
    h->server_stream = ferry_quic_stream_ref(s);
    g_cond_broadcast(&h->c);
    g_mutex_unlock(&h->m);
  }
}

static void
on_stream_data(FerryQuic *q, FerryQuicStream *s, const guint8 *data, gsize len, gboolean fin,
               gpointer user_data)
{
  Side *side = user_data;
  Flow *f = ferry_quic_stream_get_user_data(s);

  if (f == NULL) {
    fail(side->h, "%s: data on a stream without a flow", side->name);
    return;
  }
  if (side->h->mode == MODE_THREAD && side->server) {
    guint64 credit = (guint64)(gsize)g_atomic_pointer_get(&side->h->consumed) + THREAD_WINDOW;
    if (f->rx_off + len > credit)
      fail(side->h,
           "server: %" G_GUINT64_FORMAT " bytes arrived with only %" G_GUINT64_FORMAT
           " credited: manual flow control leaks",
           f->rx_off + len, credit);
  }
  if (f->rx_sum != NULL) {
    g_checksum_update(f->rx_sum, data, len);
  } else if (f->rx_expected > 0) {
    guint8 expect[4096];
    for (gsize done = 0; done < len;) {
      gsize n = MIN(len - done, sizeof(expect));
      pattern(f->rx_seed, f->rx_off + done, expect, n);
      if (memcmp(expect, data + done, n) != 0) {
        fail(side->h, "%s: byte mismatch near offset %" G_GUINT64_FORMAT, side->name,
             f->rx_off + done);
        return;
      }
      done += n;
    }
  } else if (len > 0) {
    if (f->reply_len + len > sizeof(f->reply)) {
      fail(side->h, "%s: reply too long", side->name);
      return;
    }
    memcpy(f->reply + f->reply_len, data, len);
    f->reply_len += len;
  }
  f->rx_off += len;
  if (side->h->mode == MODE_THREAD && side->server) {
    g_mutex_lock(&side->h->m);
    side->h->received = f->rx_off;
    g_cond_broadcast(&side->h->c);
    g_mutex_unlock(&side->h->m);
  }
  if (!fin)
    return;
  f->rx_fin = TRUE;
  if (f->rx_sum != NULL) {
    guint8 digest[32];
    gsize dlen = sizeof(digest);
    GError *error = NULL;
    g_checksum_get_digest(f->rx_sum, digest, &dlen);
    if (ferry_quic_stream_write(s, digest, dlen, &error) != (gssize)dlen) {
      fail(side->h, "%s: cannot queue the digest: %s", side->name,
           error != NULL ? error->message : "short write");
      g_clear_error(&error);
    }
    ferry_quic_stream_finish(s);
  } else if (f->rx_expected > 0 && f->rx_off != f->rx_expected) {
    fail(side->h, "%s: FIN after %" G_GUINT64_FORMAT " bytes, expected %" G_GUINT64_FORMAT,
         side->name, f->rx_off, f->rx_expected);
  } else if (f->tx_total == 0 && !f->tx_fin) {
    /* a stream we only read: finish our side so it can close */
    f->tx_fin = TRUE;
    ferry_quic_stream_finish(s);
  }
}

static void
on_stream_writable(FerryQuic *q, FerryQuicStream *s, gpointer user_data)
{
  Flow *f = ferry_quic_stream_get_user_data(s);
  Harness *h = ((Side *)user_data)->h;

  if (h->mode == MODE_THREAD) {
    g_mutex_lock(&h->m);
    h->writable++;
    g_cond_broadcast(&h->c);
    g_mutex_unlock(&h->m);
  } else if (f != NULL) {
    flow_pump(f);
  }
}

static void
on_stream_closed(FerryQuic *q, FerryQuicStream *s, gboolean aborted, guint64 code,
                 gpointer user_data)
{
  Side *side = user_data;
  Harness *h = side->h;
  Flow *f = ferry_quic_stream_get_user_data(s);
  gboolean many_ok = FALSE;

  if (!aborted && f != NULL && h->mode == MODE_MANY && !side->server) {
    guint8 want[32];
    pattern_digest(f->tx_seed, STREAM_BYTES, want);
    if (f->reply_len != 32 || memcmp(want, f->reply, 32) != 0)
      fail(h, "client: stream %u: the server's digest does not match what was sent", f->index);
    else
      many_ok = TRUE;
  }
  if (!aborted && f != NULL && f->rx_expected > 0 && (!f->rx_fin || f->rx_off != f->rx_expected))
    fail(h, "%s: stream closed after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes",
         side->name, f->rx_off, f->rx_expected);
  g_mutex_lock(&h->m);
  if (f != NULL && f->s != NULL) {
    ferry_quic_stream_unref(f->s);
    f->s = NULL;
  }
  if (aborted) {
    side->streams_aborted++;
    side->last_abort_code = code;
  } else {
    side->streams_closed_ok++;
  }
  if (many_ok)
    h->many_ok++;
  if (side->server)
    side->live_streams--;
  g_cond_broadcast(&h->c);
  g_mutex_unlock(&h->m);
}

static void
on_closed(FerryQuic *q, const GError *error, gpointer user_data)
{
  Side *side = user_data;

  g_mutex_lock(&side->h->m);
  side->closed = TRUE;
  if (error != NULL)
    side->error = g_error_copy(error);
  g_cond_broadcast(&side->h->c);
  g_mutex_unlock(&side->h->m);
}

static void
on_filtered(const guint8 *data, gsize len, const struct sockaddr *from, socklen_t from_len,
            gpointer user_data)
{
  Side *side = user_data;

  g_mutex_lock(&side->h->m);
  side->filtered++;
  side->filtered_first = data[0];
  g_cond_broadcast(&side->h->c);
  g_mutex_unlock(&side->h->m);
}

static void
side_config(Side *side, FerryQuicConfig *c, FerryQuicRole role)
{
  ferry_quic_config_init(c, role);
  c->callbacks.handshake_done = on_handshake;
  c->callbacks.stream_opened = on_stream_opened;
  c->callbacks.stream_data = on_stream_data;
  c->callbacks.stream_writable = on_stream_writable;
  c->callbacks.stream_closed = on_stream_closed;
  c->callbacks.closed = on_closed;
  c->user_data = side;
}

static void
harness_init(Harness *h, Mode mode)
{
  memset(h, 0, sizeof(*h));
  g_mutex_init(&h->m);
  g_cond_init(&h->c);
  h->mode = mode;
  h->client.h = h->server.h = h;
  h->client.name = "client";
  h->server.name = "server";
  h->server.server = TRUE;
  h->flows = g_ptr_array_new_with_free_func(flow_free);
  h->bulk_bytes = BULK_BYTES;
}

static void
harness_clear(Harness *h)
{
  ferry_quic_free(h->client.q);
  ferry_quic_free(h->server.q);
  for (guint i = 0; i < h->flows->len; i++) {
    Flow *f = h->flows->pdata[i];
    if (f->s != NULL)
      ferry_quic_stream_unref(f->s);
  }
  g_ptr_array_unref(h->flows);
  if (h->server_stream != NULL)
    ferry_quic_stream_unref(h->server_stream);
  g_clear_error(&h->client.error);
  g_clear_error(&h->server.error);
  g_free(h->failure);
  g_mutex_clear(&h->m);
  g_cond_clear(&h->c);
}

/* ---- loopback UDP ---- */

static int
udp_bound(struct sockaddr_in *addr)
{
  socklen_t len = sizeof(*addr);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint(fd, >=, 0);
  memset(addr, 0, sizeof(*addr));
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  g_assert_cmpint(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), ==, 0);
  g_assert_cmpint(getsockname(fd, (struct sockaddr *)addr, &len), ==, 0);
  return fd;
}

typedef struct {
  int client_fd, server_fd;
  struct sockaddr_in client_addr, server_addr;
  FerryQuicTransport *server_t;
} UdpPair;

/* Server: unconnected, told the client's address. Client: connected. */
static void
start_udp(Harness *h, UdpPair *p, FerryQuicConfig *cc, FerryQuicConfig *sc)
{
  GError *error = NULL;
  FerryQuicTransport *t;

  p->client_fd = udp_bound(&p->client_addr);
  p->server_fd = udp_bound(&p->server_addr);
  g_assert_cmpint(connect(p->client_fd, (struct sockaddr *)&p->server_addr, sizeof(p->server_addr)),
                  ==, 0);
  p->server_t = ferry_udp_transport_new(p->server_fd, (struct sockaddr *)&p->client_addr,
                                        sizeof(p->client_addr), FERRY_UDP_CLOSE_FD, &error);
  g_assert_no_error(error);
  ferry_udp_transport_set_filter(p->server_t, on_filtered, &h->server);
  h->server.q = ferry_quic_new(sc, p->server_t, &error);
  g_assert_no_error(error);
  t = ferry_udp_transport_new(p->client_fd, NULL, 0, FERRY_UDP_CLOSE_FD, &error);
  g_assert_no_error(error);
  h->client.q = ferry_quic_new(cc, t, &error);
  g_assert_no_error(error);
}

static void
test_handshake_exporter(void)
{
  Harness h;
  UdpPair p;
  FerryQuicConfig cc, sc;
  guint8 a[32], b[32], other[32];
  GError *error = NULL;
  FerryQuicInfo info;
  guint64 code = 99;

  harness_init(&h, MODE_IDLE);
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h.server, &sc, FERRY_QUIC_SERVER);
  start_udp(&h, &p, &cc, &sc);
  g_assert_true(WAIT_UNTIL(&h, h.client.handshake && h.server.handshake));

  g_assert_true(
      ferry_quic_export_keying_material(h.client.q, "EXPORTER-ferry-test", a, 32, &error));
  g_assert_no_error(error);
  g_assert_true(
      ferry_quic_export_keying_material(h.server.q, "EXPORTER-ferry-test", b, 32, &error));
  g_assert_no_error(error);
  g_assert_cmpmem(a, 32, b, 32);
  /* the same value from inside the callbacks, on the connection threads */
  g_assert_true(h.client.exported_cb_ok && h.server.exported_cb_ok);
  g_assert_cmpmem(a, 32, h.client.exported_cb, 32);
  g_assert_cmpmem(a, 32, h.server.exported_cb, 32);
  g_assert_true(ferry_quic_export_keying_material(h.client.q, "EXPORTER-other", other, 32, &error));
  g_assert_true(memcmp(a, other, 32) != 0);

  ferry_quic_get_info(h.client.q, &info);
  g_assert_true(info.handshake_done);
  g_assert_cmpstr(info.cc_name, ==, "bbr");
  g_assert_cmpuint(info.datagrams_sent, >, 0);
  g_assert_cmpuint(info.datagrams_received, >, 0);
  g_assert_cmpuint(info.smoothed_rtt_us, >, 0);
  g_assert_cmpuint(info.cwnd_bytes, >, 0);
  g_assert_cmpint(info.end, ==, FERRY_QUIC_END_NONE);

  /* a clean close: code 0 is no error on either side */
  ferry_quic_close(h.client.q, 0, "done");
  g_assert_true(WAIT_UNTIL(&h, h.client.closed && h.server.closed));
  g_assert_null(h.client.error);
  g_assert_null(h.server.error);
  g_assert_cmpint(ferry_quic_get_end(h.client.q, NULL), ==, FERRY_QUIC_END_LOCAL);
  g_assert_cmpint(ferry_quic_get_end(h.server.q, &code), ==, FERRY_QUIC_END_PEER);
  g_assert_cmpuint(code, ==, 0);
  g_assert_null(ferry_quic_stream_open(h.client.q, NULL, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_clear_error(&error);
  harness_clear(&h);
}

static void
test_close_code_reason(void)
{
  Harness h;
  UdpPair p;
  FerryQuicConfig cc, sc;
  guint64 code = 0;

  harness_init(&h, MODE_IDLE);
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h.server, &sc, FERRY_QUIC_SERVER);
  start_udp(&h, &p, &cc, &sc);
  g_assert_true(WAIT_UNTIL(&h, h.client.handshake && h.server.handshake));
  ferry_quic_close(h.server.q, 7, "shutting down for the night");
  g_assert_true(WAIT_UNTIL(&h, h.client.closed && h.server.closed));
  g_assert_null(h.server.error);
  g_assert_error(h.client.error, FERRY_ERROR, FERRY_ERROR_FAILED);
  g_assert_nonnull(strstr(h.client.error->message, "code 7"));
  g_assert_nonnull(strstr(h.client.error->message, "shutting down for the night"));
  g_assert_cmpint(ferry_quic_get_end(h.client.q, &code), ==, FERRY_QUIC_END_PEER);
  g_assert_cmpuint(code, ==, 7);
  harness_clear(&h);
}

static void
test_alpn_mismatch(void)
{
  Harness h;
  UdpPair p;
  FerryQuicConfig cc, sc;

  harness_init(&h, MODE_IDLE);
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h.server, &sc, FERRY_QUIC_SERVER);
  sc.alpn = "other/1";
  start_udp(&h, &p, &cc, &sc);
  g_assert_true(WAIT_UNTIL(&h, h.client.closed && h.server.closed));
  g_assert_false(h.client.handshake);
  g_assert_false(h.server.handshake);
  g_assert_error(h.client.error, FERRY_ERROR, FERRY_ERROR_VERSION);
  g_assert_nonnull(strstr(h.client.error->message, "QUIC handshake failed"));
  g_assert_nonnull(strstr(h.client.error->message, "ferry/1"));
  g_assert_error(h.server.error, FERRY_ERROR, FERRY_ERROR_VERSION);
  g_assert_cmpint(ferry_quic_get_end(h.client.q, NULL), ==, FERRY_QUIC_END_HANDSHAKE);
  g_assert_cmpint(ferry_quic_get_end(h.server.q, NULL), ==, FERRY_QUIC_END_HANDSHAKE);
  harness_clear(&h);
}

static void
test_handshake_timeout(void)
{
  Harness h;
  FerryQuicConfig cc;
  struct sockaddr_in addr, nowhere;
  GError *error = NULL;
  guint8 out[32];
  FerryQuicTransport *t;
  int fd, gone;

  harness_init(&h, MODE_IDLE);
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  cc.handshake_timeout_ms = 300;
  /* a port nobody listens on any more: ICMP errors come back, and are ignored */
  gone = udp_bound(&nowhere);
  close(gone);
  fd = udp_bound(&addr);
  g_assert_cmpint(connect(fd, (struct sockaddr *)&nowhere, sizeof(nowhere)), ==, 0);
  t = ferry_udp_transport_new(fd, NULL, 0, FERRY_UDP_CLOSE_FD, &error);
  g_assert_no_error(error);
  h.client.q = ferry_quic_new(&cc, t, &error);
  g_assert_no_error(error);
  g_assert_false(ferry_quic_export_keying_material(h.client.q, "EXPORTER-x", out, 32, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_clear_error(&error);
  g_assert_true(WAIT_UNTIL(&h, h.client.closed));
  g_assert_error(h.client.error, FERRY_ERROR, FERRY_ERROR_IO);
  g_assert_nonnull(strstr(h.client.error->message, "handshake"));
  g_assert_cmpint(ferry_quic_get_end(h.client.q, NULL), ==, FERRY_QUIC_END_HANDSHAKE_TIMEOUT);
  harness_clear(&h);
}

/* Runs MODE_BULK over UDP (datagrams up to `payload` bytes, 0: the
 * default) and checks that every byte arrived both ways; the caller checks
 * the rest and clears h. */
static void
run_bulk(Harness *h, UdpPair *p, gsize payload, FerryQuicInfo *ci, FerryQuicInfo *si)
{
  FerryQuicConfig cc, sc;

  harness_init(h, MODE_BULK);
  side_config(&h->client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h->server, &sc, FERRY_QUIC_SERVER);
  if (payload > 0)
    cc.max_udp_payload = sc.max_udp_payload = payload;
  start_udp(h, p, &cc, &sc);
  g_assert_true(
      WAIT_UNTIL(h, h->client.streams_closed_ok == 1 && h->server.streams_closed_ok == 1));
  ferry_quic_get_info(h->client.q, ci);
  ferry_quic_get_info(h->server.q, si);
  g_assert_cmpuint(ci->stream_bytes_sent, ==, BULK_BYTES);
  g_assert_cmpuint(ci->stream_bytes_received, ==, BULK_BYTES);
  g_assert_cmpuint(si->stream_bytes_sent, ==, BULK_BYTES);
  g_assert_cmpuint(si->stream_bytes_received, ==, BULK_BYTES);
}

static void
test_bulk_bidirectional(void)
{
  Harness h;
  UdpPair p;
  FerryQuicInfo ci, si;
  FerryUdpStats st;

  run_bulk(&h, &p, 0, &ci, &si);
  g_assert_cmpuint(ci.bytes_sent, >, BULK_BYTES);
  ferry_udp_transport_get_stats(p.server_t, &st);
  g_assert_cmpuint(st.datagrams_in, >=, si.datagrams_received); /* more may arrive meanwhile */
  g_assert_cmpuint(st.stun_filtered, ==, 0);
  if (st.gso)
    g_assert_cmpuint(st.syscalls_out, <, st.datagrams_out);
  g_test_message("%u MiB each way: client sent %" G_GUINT64_FORMAT
                 " datagrams in %" G_GUINT64_FORMAT " calls, %" G_GUINT64_FORMAT
                 " lost; rtt %" G_GUINT64_FORMAT " us",
                 (guint)(BULK_BYTES / MIB), ci.datagrams_sent, ci.send_calls, ci.packets_lost,
                 ci.smoothed_rtt_us);
  g_assert_false(h.client.closed || h.server.closed);
  harness_clear(&h);
}

/* On loopback the whole transfer goes in datagrams of 32000 bytes once
 * the handshake is done (which itself keeps to 1452), far fewer than at
 * 1452 bytes. */
static void
test_large_datagrams(void)
{
  Harness h;
  UdpPair p;
  FerryQuicInfo ci, si;

  run_bulk(&h, &p, 32000, &ci, &si);
  g_assert_cmpuint(ci.datagrams_sent, <, BULK_BYTES / 8000);
  g_assert_cmpuint(si.datagrams_sent, <, BULK_BYTES / 8000);
  g_assert_false(h.client.closed || h.server.closed);
  harness_clear(&h);
}

/* Loopback is this host (its MTU, less headers, capped); a documentation
 * address no interface here holds is not. */
static void
test_udp_same_host_payload(void)
{
  struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(9)};
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(9)};

  inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
  g_assert_cmpuint(ferry_udp_same_host_payload(-1, (struct sockaddr *)&v4, sizeof v4, 32000), ==,
                   32000);
  g_assert_cmpuint(ferry_udp_same_host_payload(-1, (struct sockaddr *)&v4, sizeof v4, 2000), ==,
                   2000);
  inet_pton(AF_INET, "198.51.100.7", &v4.sin_addr);
  g_assert_cmpuint(ferry_udp_same_host_payload(-1, (struct sockaddr *)&v4, sizeof v4, 32000), ==,
                   0);
  v6.sin6_addr = in6addr_loopback;
  int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  gboolean have_v6 = fd >= 0 && bind(fd, (struct sockaddr *)&v6, sizeof v6) == 0;
  if (fd >= 0)
    close(fd);
  if (have_v6)
    g_assert_cmpuint(ferry_udp_same_host_payload(-1, (struct sockaddr *)&v6, sizeof v6, 32000), ==,
                     32000);

  /* A link-local address of ours, given without its interface (as ICE
   * hands it over): the socket's own interface is used. */
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) != 0)
    return;
  for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
    if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET6 ||
        !IN6_IS_ADDR_LINKLOCAL(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
      continue;
    struct sockaddr_in6 ll = *(struct sockaddr_in6 *)i->ifa_addr;
    ll.sin6_port = 0;
    fd = socket(AF_INET6, SOCK_DGRAM, 0);
    g_assert_cmpint(fd, >=, 0);
    if (bind(fd, (struct sockaddr *)&ll, sizeof ll) == 0) {
      ll.sin6_port = htons(9);
      ll.sin6_scope_id = 0;
      g_assert_cmpuint(ferry_udp_same_host_payload(-1, (struct sockaddr *)&ll, sizeof ll, 32000),
                       ==, 0);
      g_assert_cmpuint(ferry_udp_same_host_payload(fd, (struct sockaddr *)&ll, sizeof ll, 32000), >,
                       1452);
    }
    close(fd);
    break;
  }
  freeifaddrs(ifs);
}

static void
test_many_streams(void)
{
  Harness h;
  UdpPair p;
  FerryQuicConfig cc, sc;

  harness_init(&h, MODE_MANY);
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h.server, &sc, FERRY_QUIC_SERVER);
  sc.max_incoming_streams = SERVER_MAX_STREAMS;
  start_udp(&h, &p, &cc, &sc);
  g_assert_true(WAIT_UNTIL(&h, h.many_ok == NSTREAMS));
  g_assert_true(WAIT_UNTIL(&h, h.server.streams_closed_ok == NSTREAMS));
  g_assert_cmpuint(h.client.streams_closed_ok, ==, NSTREAMS);
  g_assert_cmpuint(h.client.streams_aborted, ==, 0);
  /* the peer never had more streams open than it allowed */
  g_assert_cmpuint(h.server.max_live_streams, <=, SERVER_MAX_STREAMS);
  g_assert_cmpuint(h.server.max_live_streams, >, 1);
  harness_clear(&h);
}

static void
test_stream_reset(void)
{
  Harness h;
  UdpPair p;
  FerryQuicConfig cc, sc;
  Flow *f;
  GError *error = NULL;
  guint8 out[8];

  harness_init(&h, MODE_RESET);
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h.server, &sc, FERRY_QUIC_SERVER);
  start_udp(&h, &p, &cc, &sc);
  g_assert_true(WAIT_UNTIL(&h, h.client.handshake && h.flows->len >= 2));
  g_mutex_lock(&h.m);
  f = h.flows->pdata[0];
  g_mutex_unlock(&h.m);
  g_atomic_int_set(&f->resetting, 1);
  ferry_quic_stream_reset(f->s, 42);
  g_assert_true(WAIT_UNTIL(&h, h.server.streams_aborted == 1 && h.client.streams_aborted == 1));
  g_assert_cmpuint(h.server.last_abort_code, ==, 42);
  g_assert_cmpuint(h.client.streams_closed_ok, ==, 0);
  g_mutex_lock(&h.m);
  g_assert_null(f->s); /* dropped in stream_closed */
  g_mutex_unlock(&h.m);
  /* the connection lives on */
  g_assert_false(h.client.closed || h.server.closed);
  g_assert_true(ferry_quic_export_keying_material(h.client.q, "EXPORTER-x", out, 8, &error));
  g_assert_no_error(error);
  harness_clear(&h);
}

/* ---- the callback transport, 5 % of datagrams dropped each way ---- */

typedef struct {
  GMutex m; /* held while pushing, so "to" can be cut before it is freed */
  FerryQuic *to;
  guint32 rng;
  guint loss; /* percent */
  guint dropped, passed;
  gboolean raised;                     /* set by the test when it lets datagrams grow */
  gsize longest, longest_before_raise; /* datagram sizes seen */
} LossyPipe;

static void
lossy_send(const guint8 *data, gsize len, gpointer user_data)
{
  LossyPipe *pipe = user_data;

  pipe->rng = pipe->rng * 1664525u + 1013904223u;
  g_mutex_lock(&pipe->m);
  pipe->longest = MAX(pipe->longest, len);
  if (!pipe->raised)
    pipe->longest_before_raise = MAX(pipe->longest_before_raise, len);
  if ((pipe->rng >> 8) % 100 < pipe->loss || pipe->to == NULL) {
    pipe->dropped++;
  } else {
    pipe->passed++;
    ferry_quic_push_datagram(pipe->to, data, len);
  }
  g_mutex_unlock(&pipe->m);
}

static void
pipe_connect(LossyPipe *pipe, FerryQuic *to)
{
  g_mutex_lock(&pipe->m);
  pipe->to = to;
  g_mutex_unlock(&pipe->m);
}

static guint
pipe_count(LossyPipe *pipe, gboolean dropped)
{
  guint n;

  g_mutex_lock(&pipe->m);
  n = dropped ? pipe->dropped : pipe->passed;
  g_mutex_unlock(&pipe->m);
  return n;
}

static void
test_lossy_callback(void)
{
  Harness h;
  FerryQuicConfig cc, sc;
  LossyPipe to_server = {.rng = 1, .loss = 5}, to_client = {.rng = 2, .loss = 5};

  GError *error = NULL;
  FerryQuicInfo ci;

  harness_init(&h, MODE_BULK);
  h.bulk_bytes = LOSSY_BYTES;
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h.server, &sc, FERRY_QUIC_SERVER);
  cc.max_udp_payload = sc.max_udp_payload = 1300; /* room for TURN framing */
  h.server.q =
      ferry_quic_new(&sc, ferry_quic_callback_transport_new(lossy_send, &to_client, NULL), &error);
  g_assert_no_error(error);
  g_mutex_init(&to_server.m);
  g_mutex_init(&to_client.m);
  pipe_connect(&to_server, h.server.q);
  h.client.q =
      ferry_quic_new(&cc, ferry_quic_callback_transport_new(lossy_send, &to_server, NULL), &error);
  g_assert_no_error(error);
  pipe_connect(&to_client, h.client.q);

  g_assert_true(WAIT_UNTIL(&h, h.client.streams_closed_ok == 1 && h.server.streams_closed_ok == 1));
  ferry_quic_get_info(h.client.q, &ci);
  g_assert_cmpuint(ci.stream_bytes_received, ==, LOSSY_BYTES);
  g_assert_false(ci.gso);
  g_assert_cmpuint(ci.max_udp_payload, <=, 1300);
  g_assert_cmpuint(ci.max_udp_payload, >=, 1200);
  g_assert_cmpuint(pipe_count(&to_server, TRUE), >, 0);
  g_assert_cmpuint(ci.packets_lost, >, 0);
  g_test_message("lossy pipe: %u/%u datagrams to the server dropped, client saw %" G_GUINT64_FORMAT
                 " packets lost",
                 pipe_count(&to_server, TRUE), pipe_count(&to_server, FALSE), ci.packets_lost);
  /* cut both pipes before either end is freed */
  pipe_connect(&to_server, NULL);
  pipe_connect(&to_client, NULL);
  harness_clear(&h);
  g_mutex_clear(&to_server.m);
  g_mutex_clear(&to_client.m);
}

/* A path whose size is probed (a relay on this host): packets keep to
 * 1452 bytes until ferry_quic_set_udp_payload(), then grow to what it
 * allows, never past the config's max_udp_payload; the other direction,
 * not raised, stays small. The receiver takes the large datagrams through
 * its inbox, which goes round many times. */
static void
test_grow_udp_payload(void)
{
  Harness h;
  FerryQuicConfig cc, sc;
  LossyPipe to_server = {.rng = 1}, to_client = {.rng = 2};
  GError *error = NULL;
  FerryQuicTransport *ct, *st;
  FerryQuicInfo ci, si;

  harness_init(&h, MODE_BULK);
  h.bulk_bytes = 4 * LOSSY_BYTES;
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h.server, &sc, FERRY_QUIC_SERVER);
  cc.max_udp_payload = sc.max_udp_payload = 16000;
  cc.start_udp_payload = sc.start_udp_payload = 1452;
  st = ferry_quic_callback_transport_new(lossy_send, &to_client, NULL);
  ct = ferry_quic_callback_transport_new(lossy_send, &to_server, NULL);
  st->max_recv_datagram = ct->max_recv_datagram = 16000;
  g_mutex_init(&to_server.m);
  g_mutex_init(&to_client.m);
  h.server.q = ferry_quic_new(&sc, st, &error);
  g_assert_no_error(error);
  pipe_connect(&to_server, h.server.q);
  h.client.q = ferry_quic_new(&cc, ct, &error);
  g_assert_no_error(error);
  pipe_connect(&to_client, h.client.q);

  g_assert_true(WAIT_UNTIL(&h, h.client.handshake));
  g_mutex_lock(&to_server.m);
  to_server.raised = TRUE;
  g_mutex_unlock(&to_server.m);
  ferry_quic_set_udp_payload(h.client.q, 60000); /* capped at 16000 */
  g_assert_true(WAIT_UNTIL(&h, h.client.streams_closed_ok == 1 && h.server.streams_closed_ok == 1));
  ferry_quic_get_info(h.client.q, &ci);
  ferry_quic_get_info(h.server.q, &si);
  g_assert_cmpuint(si.stream_bytes_received, ==, 4 * LOSSY_BYTES);
  g_assert_cmpuint(ci.stream_bytes_received, ==, 4 * LOSSY_BYTES);
  g_assert_cmpuint(ci.udp_payload, ==, 16000);
  g_assert_cmpuint(si.udp_payload, ==, 1452);
  g_mutex_lock(&to_server.m);
  g_assert_cmpuint(to_server.longest_before_raise, <=, 1452);
  g_assert_cmpuint(to_server.longest, >, 1452);
  g_assert_cmpuint(to_server.longest, <=, 16000);
  g_assert_cmpuint(to_server.dropped, ==, 0);
  g_mutex_unlock(&to_server.m);
  g_mutex_lock(&to_client.m);
  g_assert_cmpuint(to_client.passed, >, 0);
  g_assert_cmpuint(to_client.longest, <=, 1452);
  g_mutex_unlock(&to_client.m);
  g_test_message("client datagrams: %u, the longest %" G_GSIZE_FORMAT " bytes",
                 pipe_count(&to_server, FALSE), to_server.longest);
  pipe_connect(&to_server, NULL);
  pipe_connect(&to_client, NULL);
  harness_clear(&h);
  g_mutex_clear(&to_server.m);
  g_mutex_clear(&to_client.m);
}

/* ---- STUN on the QUIC socket ---- */

static gsize
make_stun(guint8 *buf, guint16 type, guint8 tid_byte)
{
  guint32 cookie = htonl(0x2112A442u);

  memset(buf, 0, 28);
  buf[0] = (guint8)(type >> 8);
  buf[1] = (guint8)type;
  buf[3] = 8; /* one attribute of 4 bytes + header */
  memcpy(buf + 4, &cookie, 4);
  memset(buf + 8, tid_byte, 12);
  buf[20] = 0x80; /* FINGERPRINT-like attribute type, ignored */
  buf[21] = 0x28;
  buf[23] = 4;
  return 28;
}

static void
test_stun_filtered(void)
{
  Harness h;
  UdpPair p;
  FerryQuicConfig cc, sc;
  FerryUdpStats st;
  guint8 stun[28], junk[64];
  struct sockaddr_in other;
  int ofd;

  /* the classifier itself */
  make_stun(stun, 0x0011, 7);
  g_assert_true(ferry_udp_is_stun(stun, sizeof(stun)));
  g_assert_false(ferry_udp_is_stun(stun, sizeof(stun) - 1));
  memcpy(junk, stun, sizeof(stun));
  junk[5] ^= 1; /* wrong cookie: a greased QUIC packet can look like this */
  g_assert_false(ferry_udp_is_stun(junk, sizeof(stun)));
  junk[0] = 0x40;
  g_assert_false(ferry_udp_is_stun(junk, sizeof(stun)));

  harness_init(&h, MODE_BULK);
  h.bulk_bytes = 1 * MIB;
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h.server, &sc, FERRY_QUIC_SERVER);
  start_udp(&h, &p, &cc, &sc);
  g_assert_true(WAIT_UNTIL(&h, h.client.handshake && h.server.handshake));

  /* keepalive-like STUN from the peer's own address, mid-transfer */
  for (guint i = 0; i < 5; i++) {
    make_stun(stun, 0x0011, (guint8)i);
    g_assert_cmpint(send(p.client_fd, stun, sizeof(stun), 0), ==, sizeof(stun));
  }
  /* QUIC-looking junk from a stranger */
  ofd = udp_bound(&other);
  memset(junk, 0x5a, sizeof(junk));
  junk[0] = 0x45;
  for (guint i = 0; i < 3; i++)
    g_assert_cmpint(sendto(ofd, junk, sizeof(junk), 0, (struct sockaddr *)&p.server_addr,
                           sizeof(p.server_addr)),
                    ==, sizeof(junk));
  close(ofd);

  g_assert_true(WAIT_UNTIL(&h, h.server.filtered == 5));
  g_assert_cmpuint(h.server.filtered_first, ==, 0x00);
  g_assert_true(WAIT_UNTIL(&h, h.client.streams_closed_ok == 1 && h.server.streams_closed_ok == 1));
  ferry_udp_transport_get_stats(p.server_t, &st);
  g_assert_cmpuint(st.stun_filtered, ==, 5);
  g_assert_cmpuint(st.foreign, ==, 3);
  g_assert_false(h.client.closed || h.server.closed);
  harness_clear(&h);
}

/* ---- a peer that vanishes: a child process killed with SIGKILL ---- */

static int
run_peer(const char *client_port)
{
  struct sockaddr_in me, client;
  FerryQuicConfig sc;
  FerryQuicTransport *t;
  FerryQuic *q;
  GError *error = NULL;
  int fd = udp_bound(&me);

  memset(&client, 0, sizeof(client));
  client.sin_family = AF_INET;
  client.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  client.sin_port = htons((guint16)atoi(client_port));
  ferry_quic_config_init(&sc, FERRY_QUIC_SERVER);
  sc.idle_timeout_ms = 1000;
  t = ferry_udp_transport_new(fd, (struct sockaddr *)&client, sizeof(client), FERRY_UDP_CLOSE_FD,
                              &error);
  g_assert_no_error(error);
  q = ferry_quic_new(&sc, t, &error);
  g_assert_no_error(error);
  printf("%u\n", ntohs(me.sin_port));
  fflush(stdout);
  g_usleep(30 * G_USEC_PER_SEC); /* killed long before */
  ferry_quic_free(q);
  return 0;
}

static void
test_peer_vanishes(void)
{
  Harness h;
  FerryQuicConfig cc;
  struct sockaddr_in me, peer;
  g_autofree char *port = NULL;
  char *argv[4];
  char line[32] = "";
  GPid pid;
  int out_fd, fd, one = 1;
  GError *error = NULL;
  FerryQuicTransport *t;
  ssize_t n;

  fd = udp_bound(&me);
  port = g_strdup_printf("%u", ntohs(me.sin_port));
  argv[0] = (char *)self_path;
  argv[1] = (char *)"--quic-peer";
  argv[2] = port;
  argv[3] = NULL;
  g_assert_true(g_spawn_async_with_pipes(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &pid, NULL,
                                         &out_fd, NULL, &error));
  g_assert_no_error(error);
  n = read(out_fd, line, sizeof(line) - 1);
  close(out_fd);
  g_assert_cmpint(n, >, 0);

  memset(&peer, 0, sizeof(peer));
  peer.sin_family = AF_INET;
  peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  peer.sin_port = htons((guint16)atoi(line));
  g_assert_cmpint(connect(fd, (struct sockaddr *)&peer, sizeof(peer)), ==, 0);

  /* ICMP "port unreachable" for the dead peer then lands on the error
   * queue, as on a socket GLib made: it must be drained, not fatal */
  g_assert_cmpint(setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof(one)), ==, 0);
  harness_init(&h, MODE_IDLE);
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  cc.idle_timeout_ms = 1000;
  t = ferry_udp_transport_new(fd, NULL, 0, FERRY_UDP_CLOSE_FD, &error);
  g_assert_no_error(error);
  h.client.q = ferry_quic_new(&cc, t, &error);
  g_assert_no_error(error);
  g_assert_true(WAIT_UNTIL(&h, h.client.handshake));

  kill(pid, SIGKILL);
  g_spawn_close_pid(pid);
  g_assert_true(WAIT_UNTIL(&h, h.client.closed));
  g_assert_error(h.client.error, FERRY_ERROR, FERRY_ERROR_IO);
  g_assert_nonnull(strstr(h.client.error->message, "idle timeout"));
  g_assert_cmpint(ferry_quic_get_end(h.client.q, NULL), ==, FERRY_QUIC_END_IDLE_TIMEOUT);
  harness_clear(&h);
}

/* Writes from the test's thread with backpressure, while the server
 * credits the sender only as this thread says: it may never receive more
 * than consumed + its window. */
static void
test_write_from_thread(void)
{
  Harness h;
  UdpPair p;
  FerryQuicConfig cc, sc;
  FerryQuicStream *s;
  GError *error = NULL;
  guint8 buf[100 * 1024];
  guint64 off = 0, consumed = 0;
  guint short_writes = 0;

  harness_init(&h, MODE_THREAD);
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h.server, &sc, FERRY_QUIC_SERVER);
  cc.stream_send_buffer_bytes = 256 * 1024;
  sc.manual_flow_control = TRUE;
  sc.stream_window_bytes = THREAD_WINDOW;
  sc.conn_window_bytes = 2 * THREAD_WINDOW;
  start_udp(&h, &p, &cc, &sc);
  s = ferry_quic_stream_open(h.client.q, NULL, &error);
  g_assert_no_error(error);
  flow_new(&h.client, ferry_quic_stream_ref(s))->tx_fin = TRUE; /* reads the server's FIN */

  while (off < THREAD_BYTES || consumed < THREAD_BYTES) {
    guint seen_writable;
    guint64 seen_received;
    if (off < THREAD_BYTES) {
      gsize want = (gsize)MIN((guint64)sizeof(buf), THREAD_BYTES - off);
      gssize n;
      pattern(3, off, buf, want);
      n = ferry_quic_stream_write(s, buf, want, &error);
      g_assert_no_error(error);
      off += (guint64)n;
      if (off == THREAD_BYTES)
        ferry_quic_stream_finish(s);
      if ((gsize)n == want)
        continue;
      short_writes++;
    }
    /* credit what the server holds, then wait for room or bytes */
    g_mutex_lock(&h.m);
    seen_writable = h.writable;
    seen_received = h.received;
    if (h.received > consumed) {
      gsize more = (gsize)(h.received - consumed);
      consumed = h.received;
      g_atomic_pointer_set(&h.consumed, (gpointer)(gsize)consumed);
      g_mutex_unlock(&h.m);
      ferry_quic_stream_consume(h.server_stream, more);
      continue;
    }
    g_mutex_unlock(&h.m);
    g_assert_true(WAIT_UNTIL(&h, h.writable != seen_writable || h.received != seen_received));
  }
  g_assert_true(WAIT_UNTIL(&h, h.server.streams_closed_ok == 1 && h.client.streams_closed_ok == 1));
  g_assert_cmpuint(h.received, ==, THREAD_BYTES);
  g_assert_cmpuint(short_writes, >, 0); /* the send queue bound was felt */
  g_assert_cmpuint(ferry_quic_stream_get_queued(s), ==, 0);
  ferry_quic_stream_unref(s);
  harness_clear(&h);
}

static void
test_cc_choice(void)
{
  Harness h;
  UdpPair p;
  FerryQuicConfig cc, sc;
  FerryQuicInfo info;
  FerryQuicCC algo = FERRY_QUIC_CC_BBR;
  GError *error = NULL;

  g_assert_true(ferry_quic_cc_parse("CUBIC", &algo, &error));
  g_assert_cmpint(algo, ==, FERRY_QUIC_CC_CUBIC);
  g_assert_true(ferry_quic_cc_parse("bbr-plain", &algo, &error));
  g_assert_cmpint(algo, ==, FERRY_QUIC_CC_BBR_PLAIN);
  g_assert_cmpstr(ferry_quic_cc_name(algo), ==, "bbr-plain");
  g_assert_false(ferry_quic_cc_parse("vegas", &algo, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "bbr, bbr-plain, bbr2, cubic or reno"));
  g_clear_error(&error);

  harness_init(&h, MODE_BULK);
  h.bulk_bytes = 2 * MIB;
  side_config(&h.client, &cc, FERRY_QUIC_CLIENT);
  side_config(&h.server, &sc, FERRY_QUIC_SERVER);
  cc.cc = FERRY_QUIC_CC_CUBIC;
  sc.cc = FERRY_QUIC_CC_RENO;
  start_udp(&h, &p, &cc, &sc);
  g_assert_true(WAIT_UNTIL(&h, h.client.streams_closed_ok == 1 && h.server.streams_closed_ok == 1));
  ferry_quic_get_info(h.client.q, &info);
  g_assert_cmpstr(info.cc_name, ==, "cubic");
  ferry_quic_get_info(h.server.q, &info);
  g_assert_cmpstr(info.cc_name, ==, "reno");
  harness_clear(&h);
}

static int
int_opt(int fd, int level, int opt)
{
  int v = -1;
  socklen_t len = sizeof(v);

  g_assert_cmpint(getsockopt(fd, level, opt, &v, &len), ==, 0);
  return v;
}

/* libnice's socket is taken over through a dup(): when QUIC is done with
 * it, GRO and MTU discovery must be as libnice left them. */
static void
test_udp_hands_socket_back(void)
{
  struct sockaddr_in addr, peer;
  GError *error = NULL;
  FerryQuicTransport *t;
  FerryUdpStats st;
  int fd = udp_bound(&addr), gro, mtu;

  peer = addr;
  gro = int_opt(fd, SOL_UDP, UDP_GRO);
  mtu = int_opt(fd, IPPROTO_IP, IP_MTU_DISCOVER);
  t = ferry_udp_transport_new(dup(fd), (struct sockaddr *)&peer, sizeof(peer), FERRY_UDP_CLOSE_FD,
                              &error);
  g_assert_no_error(error);
  ferry_udp_transport_get_stats(t, &st);
  if (st.gro)
    g_assert_cmpint(int_opt(fd, SOL_UDP, UDP_GRO), !=, gro);
  g_assert_cmpint(int_opt(fd, IPPROTO_IP, IP_MTU_DISCOVER), ==, IP_PMTUDISC_PROBE);
  ferry_quic_transport_free(t);
  g_assert_cmpint(int_opt(fd, SOL_UDP, UDP_GRO), ==, gro);
  g_assert_cmpint(int_opt(fd, IPPROTO_IP, IP_MTU_DISCOVER), ==, mtu);

  /* not a UDP socket: refused with a message that says so */
  g_assert_null(ferry_udp_transport_new(-1, NULL, 0, FERRY_UDP_NONE, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "UDP socket"));
  g_clear_error(&error);
  /* unconnected and no peer given */
  g_assert_null(ferry_udp_transport_new(fd, NULL, 0, FERRY_UDP_NONE, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_clear_error(&error);
  close(fd);
}

int
main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "--quic-peer") == 0)
    return run_peer(argv[2]);
  self_path = argv[0];
  signal(SIGPIPE, SIG_IGN);
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/net/udp/hands-socket-back", test_udp_hands_socket_back);
  g_test_add_func("/net/quic/handshake-exporter", test_handshake_exporter);
  g_test_add_func("/net/quic/close-code-reason", test_close_code_reason);
  g_test_add_func("/net/quic/alpn-mismatch", test_alpn_mismatch);
  g_test_add_func("/net/quic/handshake-timeout", test_handshake_timeout);
  g_test_add_func("/net/quic/bulk-bidirectional", test_bulk_bidirectional);
  g_test_add_func("/net/quic/many-streams", test_many_streams);
  g_test_add_func("/net/quic/large-datagrams", test_large_datagrams);
  g_test_add_func("/net/udp/same-host-payload", test_udp_same_host_payload);
  g_test_add_func("/net/quic/stream-reset", test_stream_reset);
  g_test_add_func("/net/quic/lossy-callback", test_lossy_callback);
  g_test_add_func("/net/quic/grow-udp-payload", test_grow_udp_payload);
  g_test_add_func("/net/quic/stun-filtered", test_stun_filtered);
  g_test_add_func("/net/quic/peer-vanishes", test_peer_vanishes);
  g_test_add_func("/net/quic/write-from-thread", test_write_from_thread);
  g_test_add_func("/net/quic/cc-choice", test_cc_choice);
  return g_test_run();
}
