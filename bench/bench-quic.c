/* bench-quic: bytes over one QUIC connection on loopback between two
 * processes (sender on CPU 0, receiver on CPU 1), next to the same bytes
 * over TLS 1.3 on TCP (GnuTLS, the same AES-128-GCM) and over plain TCP,
 * measured in the same run. Prints MB/s (10^6 bytes/s) as the median of
 * --runs runs, seen by the receiver from the first byte to the last.
 *
 *   bench-quic [--bytes N] [--runs N] [--cc bbr|cubic|reno|bbr2] [--streams N]
 *              [--no-gso] [--only quic|tls|tcp]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <ferry/error.h>

#include "net/quic-tls.h"
#include "net/quic.h"
#include "net/udp.h"

#define PIECE    (1024 * 1024)
#define TCP_BUF  (256 * 1024)
#define WAIT_S   120
#define MAX_RUNS 15

typedef struct {
  guint64 bytes;
  guint runs;
  guint streams;
  FerryQuicCC cc;
  gboolean no_gso;
  gsize datagram; /* 0: ferry_quic_config_init()'s */
  const char *only;
} Opts;

/* What the receiver tells the parent. */
typedef struct {
  gboolean ok;
  double secs;
  guint64 bytes;
  FerryQuicInfo info;
  char cipher[32];
  double cpu; /* receiver's CPU seconds (user + system) over the whole run */
} Result;

static void
pin(int cpu)
{
  cpu_set_t set;
  long n = sysconf(_SC_NPROCESSORS_ONLN);

  CPU_ZERO(&set);
  CPU_SET(cpu % (n > 0 ? n : 1), &set);
  sched_setaffinity(0, sizeof(set), &set);
}

static int
bound_socket(int type, struct sockaddr_in *addr)
{
  socklen_t len = sizeof(*addr);
  int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0), one = 1;

  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(addr, 0, sizeof(*addr));
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof(*addr)) != 0 ||
      getsockname(fd, (struct sockaddr *)addr, &len) != 0) {
    fprintf(stderr, "bench-quic: cannot bind a loopback socket: %s\n", g_strerror(errno));
    exit(2);
  }
  return fd;
}

/* CPU seconds this process used so far (all threads). */
static double
cpu_s(void)
{
  struct rusage ru;

  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double
now_s(void)
{
  return (double)g_get_monotonic_time() / G_USEC_PER_SEC;
}

/* ---- QUIC ---- */

typedef struct {
  GMutex m;
  GCond c;
  const Opts *o;
  /* receiver */
  double t0, t1;
  guint64 bytes;
  guint fins;
  /* sender */
  GBytes *piece;
  guint closed_streams, aborted;
  gboolean done, closed;
} Bench;

typedef struct {
  Bench *b;
  FerryQuicStream *s;
  guint64 left;
} Sender;

static void
signal_done(Bench *b)
{
  g_mutex_lock(&b->m);
  b->done = TRUE;
  g_cond_broadcast(&b->c);
  g_mutex_unlock(&b->m);
}

static gboolean
wait_flag(Bench *b, gboolean *flag, int secs)
{
  gint64 end = g_get_monotonic_time() + (gint64)secs * G_TIME_SPAN_SECOND;
  gboolean ok;

  g_mutex_lock(&b->m);
  while (!*flag && g_cond_wait_until(&b->c, &b->m, end))
    ;
  ok = *flag;
  g_mutex_unlock(&b->m);
  return ok;
}

static void
recv_opened(FerryQuic *q, FerryQuicStream *s, gpointer user_data)
{
  ferry_quic_stream_finish(s); /* nothing to say back */
}

static void
recv_data(FerryQuic *q, FerryQuicStream *s, const guint8 *data, gsize len, gboolean fin,
          gpointer user_data)
{
  Bench *b = user_data;

  if (b->t0 == 0)
    b->t0 = now_s();
  b->bytes += len;
  if (fin && ++b->fins == b->o->streams) {
    b->t1 = now_s();
    signal_done(b);
  }
}

static void
on_closed(FerryQuic *q, const GError *error, gpointer user_data)
{
  Bench *b = user_data;

  if (error != NULL)
    fprintf(stderr, "bench-quic: %s\n", error->message);
  g_mutex_lock(&b->m);
  b->closed = TRUE;
  g_cond_broadcast(&b->c);
  g_mutex_unlock(&b->m);
}

static void
send_pump(Sender *snd)
{
  while (snd->left > 0) {
    gsize n = (gsize)MIN(snd->left, (guint64)PIECE);
    GBytes *piece =
        n == PIECE ? g_bytes_ref(snd->b->piece) : g_bytes_new_from_bytes(snd->b->piece, 0, n);
    GError *error = NULL;
    gboolean ok = ferry_quic_stream_write_bytes(snd->s, piece, &error);

    g_bytes_unref(piece);
    if (error != NULL) {
      fprintf(stderr, "bench-quic: %s\n", error->message);
      g_error_free(error);
      return;
    }
    if (!ok)
      return; /* stream_writable comes back */
    snd->left -= n;
  }
  ferry_quic_stream_finish(snd->s);
}

static void
send_writable(FerryQuic *q, FerryQuicStream *s, gpointer user_data)
{
  send_pump(ferry_quic_stream_get_user_data(s));
}

static void
send_handshake(FerryQuic *q, gpointer user_data)
{
  Bench *b = user_data;
  guint n = b->o->streams;

  for (guint i = 0; i < n; i++) {
    Sender *snd = g_new0(Sender, 1);
    snd->b = b;
    snd->left = b->o->bytes / n + (i == 0 ? b->o->bytes % n : 0);
    snd->s = ferry_quic_stream_open(q, snd, NULL);
    send_pump(snd);
  }
}

static void
send_closed_stream(FerryQuic *q, FerryQuicStream *s, gboolean aborted, guint64 code,
                   gpointer user_data)
{
  Bench *b = user_data;
  Sender *snd = ferry_quic_stream_get_user_data(s);

  if (snd == NULL)
    return;
  ferry_quic_stream_unref(snd->s);
  g_free(snd);
  ferry_quic_stream_set_user_data(s, NULL);
  if (aborted)
    b->aborted++;
  if (++b->closed_streams == b->o->streams)
    signal_done(b);
}

static FerryQuic *
quic_start(Bench *b, FerryQuicRole role, int fd, const struct sockaddr_in *peer)
{
  FerryQuicConfig c;
  FerryQuicTransport *t;
  GError *error = NULL;
  FerryQuic *q;

  ferry_quic_config_init(&c, role);
  c.cc = b->o->cc;
  c.no_gso = b->o->no_gso;
  if (b->o->datagram > 0)
    c.max_udp_payload = b->o->datagram;
  c.user_data = b;
  c.callbacks.closed = on_closed;
  if (role == FERRY_QUIC_SERVER) {
    c.callbacks.stream_opened = recv_opened;
    c.callbacks.stream_data = recv_data;
  } else {
    c.callbacks.handshake_done = send_handshake;
    c.callbacks.stream_writable = send_writable;
    c.callbacks.stream_closed = send_closed_stream;
  }
  t = ferry_udp_transport_new(fd, (const struct sockaddr *)peer, sizeof(*peer), FERRY_UDP_CLOSE_FD,
                              &error);
  q = t != NULL ? ferry_quic_new(&c, t, &error) : NULL;
  if (q == NULL) {
    fprintf(stderr, "bench-quic: %s\n", error->message);
    exit(2);
  }
  return q;
}

static void
bench_init(Bench *b, const Opts *o)
{
  memset(b, 0, sizeof(*b));
  g_mutex_init(&b->m);
  g_cond_init(&b->c);
  b->o = o;
}

static Result
quic_receiver(const Opts *o, int fd, const struct sockaddr_in *peer)
{
  Bench b;
  Result r = {0};
  FerryQuic *q;

  bench_init(&b, o);
  q = quic_start(&b, FERRY_QUIC_SERVER, fd, peer);
  if (wait_flag(&b, &b.done, WAIT_S)) {
    r.ok = TRUE;
    r.secs = b.t1 - b.t0;
    r.bytes = b.bytes;
  }
  ferry_quic_get_info(q, &r.info);
  wait_flag(&b, &b.closed, 5); /* the sender closes once all is acknowledged */
  ferry_quic_free(q);
  return r;
}

static gboolean
quic_sender(const Opts *o, int fd, const struct sockaddr_in *peer, FerryQuicInfo *info)
{
  Bench b;
  FerryQuic *q;
  guint8 *buf = g_malloc(PIECE);
  gboolean ok;

  gnutls_rnd(GNUTLS_RND_NONCE, buf, PIECE);
  bench_init(&b, o);
  b.piece = g_bytes_new_take(buf, PIECE);
  q = quic_start(&b, FERRY_QUIC_CLIENT, fd, peer);
  ok = wait_flag(&b, &b.done, WAIT_S) && b.aborted == 0;
  ferry_quic_get_info(q, info);
  ferry_quic_close(q, 0, "bench done");
  ferry_quic_free(q);
  g_bytes_unref(b.piece);
  return ok;
}

/* ---- TLS over TCP, and plain TCP ---- */

static gnutls_session_t
tls_session(gboolean server, gnutls_certificate_credentials_t cred, int fd)
{
  gnutls_session_t s;
  int rv;

  gnutls_init(&s, server ? GNUTLS_SERVER : GNUTLS_CLIENT);
  gnutls_priority_set_direct(s, FERRY_QUIC_TLS_PRIORITY, NULL);
  gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
  gnutls_transport_set_int(s, fd);
  do
    rv = gnutls_handshake(s);
  while (rv < 0 && !gnutls_error_is_fatal(rv));
  if (rv < 0) {
    fprintf(stderr, "bench-quic: TLS handshake failed: %s\n", gnutls_strerror(rv));
    exit(2);
  }
  return s;
}

static Result
tcp_receiver(int lfd, gboolean tls)
{
  Result r = {0};
  int fd = accept(lfd, NULL, NULL);
  guint8 *buf = g_malloc(TCP_BUF);
  gnutls_certificate_credentials_t cred = NULL;
  gnutls_session_t s = NULL;
  double t0 = 0;

  if (tls) {
    cred = ferry_quic_tls_make_credentials(NULL);
    s = tls_session(TRUE, cred, fd);
    g_strlcpy(r.cipher, gnutls_cipher_get_name(gnutls_cipher_get(s)), sizeof(r.cipher));
  }
  for (;;) {
    ssize_t n = tls ? gnutls_record_recv(s, buf, TCP_BUF) : read(fd, buf, TCP_BUF);
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED || (n < 0 && errno == EINTR))
      continue;
    if (n <= 0)
      break;
    if (t0 == 0)
      t0 = now_s();
    r.bytes += (guint64)n;
  }
  r.secs = now_s() - t0;
  r.ok = TRUE;
  if (s != NULL)
    gnutls_deinit(s);
  if (cred != NULL)
    gnutls_certificate_free_credentials(cred);
  close(fd);
  g_free(buf);
  return r;
}

static gboolean
tcp_sender(const Opts *o, const struct sockaddr_in *addr, gboolean tls)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  guint8 *buf = g_malloc(PIECE);
  gnutls_certificate_credentials_t cred = NULL;
  gnutls_session_t s = NULL;
  guint64 left = o->bytes;

  gnutls_rnd(GNUTLS_RND_NONCE, buf, PIECE);
  if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0) {
    fprintf(stderr, "bench-quic: connect: %s\n", g_strerror(errno));
    return FALSE;
  }
  if (tls) {
    gnutls_certificate_allocate_credentials(&cred);
    s = tls_session(FALSE, cred, fd);
  }
  while (left > 0) {
    gsize want = (gsize)MIN(left, (guint64)PIECE);
    ssize_t n = tls ? gnutls_record_send(s, buf, want) : write(fd, buf, want);
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED || (n < 0 && errno == EINTR))
      continue;
    if (n <= 0) {
      fprintf(stderr, "bench-quic: send failed\n");
      return FALSE;
    }
    left -= (guint64)n;
  }
  if (tls) {
    gnutls_bye(s, GNUTLS_SHUT_WR);
    gnutls_deinit(s);
    gnutls_certificate_free_credentials(cred);
  }
  shutdown(fd, SHUT_WR);
  close(fd);
  g_free(buf);
  return TRUE;
}

/* ---- runs ---- */

typedef enum { KIND_QUIC, KIND_TLS, KIND_TCP } Kind;

/* One run: a child process receives on CPU 1, this one sends on CPU 0. */
static Result
run_once(const Opts *o, Kind kind, FerryQuicInfo *sender_info, double *sender_cpu, double *wall)
{
  double cpu0 = cpu_s(), t0 = now_s();
  struct sockaddr_in raddr, saddr;
  int rfd, sfd = -1, pfd[2];
  Result r = {0};
  pid_t pid;
  ssize_t n;

  if (kind == KIND_QUIC) {
    rfd = bound_socket(SOCK_DGRAM, &raddr);
    sfd = bound_socket(SOCK_DGRAM, &saddr);
  } else {
    rfd = bound_socket(SOCK_STREAM, &raddr);
    listen(rfd, 1);
  }
  if (pipe(pfd) != 0)
    exit(2);
  pid = fork();
  if (pid == 0) {
    pin(1);
    close(pfd[0]);
    if (sfd >= 0)
      close(sfd);
    r = kind == KIND_QUIC ? quic_receiver(o, rfd, &saddr) : tcp_receiver(rfd, kind == KIND_TLS);
    r.cpu = cpu_s();
    n = write(pfd[1], &r, sizeof(r));
    _exit(n == sizeof(r) ? 0 : 1);
  }
  pin(0);
  close(pfd[1]);
  close(rfd);
  if (kind == KIND_QUIC)
    quic_sender(o, sfd, &raddr, sender_info);
  else
    tcp_sender(o, &raddr, kind == KIND_TLS);
  n = read(pfd[0], &r, sizeof(r));
  close(pfd[0]);
  waitpid(pid, NULL, 0);
  *sender_cpu = cpu_s() - cpu0;
  *wall = now_s() - t0;
  if (n != sizeof(r) || !r.ok || r.bytes != o->bytes) {
    fprintf(stderr,
            "bench-quic: a run failed (%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
            " bytes arrived)\n",
            r.bytes, o->bytes);
    r.ok = FALSE;
  }
  return r;
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Runs kind o->runs times; prints and returns the median MB/s. */
static double
series(const Opts *o, Kind kind, const char *label)
{
  double mbps[MAX_RUNS], sorted[MAX_RUNS], median;
  FerryQuicInfo si = {0};
  Result last = {0};
  GString *runs = g_string_new(NULL);
  double scpu = 0, wall = 0;

  for (guint i = 0; i < o->runs; i++) {
    last = run_once(o, kind, &si, &scpu, &wall);
    if (!last.ok)
      exit(1);
    mbps[i] = (double)last.bytes / last.secs / 1e6;
    g_string_append_printf(runs, "%s%.0f", i ? " " : "", mbps[i]);
  }
  memcpy(sorted, mbps, sizeof(double) * o->runs);
  qsort(sorted, o->runs, sizeof(double), cmp_double);
  median = sorted[o->runs / 2];
  printf("%-40s %6.0f MB/s  (runs: %s)\n", label, median, runs->str);
  printf("  last run: %.2f s wall, CPU sender %.2f s (%.0f%%), receiver %.2f s (%.0f%%)\n", wall,
         scpu, 100 * scpu / wall, last.cpu, 100 * last.cpu / wall);
  if (kind == KIND_QUIC)
    printf("  last run, sender: %" G_GUINT64_FORMAT " datagrams in %" G_GUINT64_FORMAT
           " send calls (%.1f per call), %" G_GUINT64_FORMAT " lost, srtt %" G_GUINT64_FORMAT
           " us, min rtt %" G_GUINT64_FORMAT " us, cwnd %" G_GUINT64_FORMAT
           " KiB, datagram %zu B; receiver got %" G_GUINT64_FORMAT " datagrams\n",
           si.datagrams_sent, si.send_calls,
           si.send_calls ? (double)si.datagrams_sent / (double)si.send_calls : 0.0, si.packets_lost,
           si.smoothed_rtt_us, si.min_rtt_us, si.cwnd_bytes / 1024, si.max_udp_payload,
           last.info.datagrams_received);
  else if (kind == KIND_TLS)
    printf("  cipher %s, 16 KiB records\n", last.cipher);
  g_string_free(runs, TRUE);
  return median;
}

int
main(int argc, char **argv)
{
  Opts o = {.bytes = 1024ull * 1024 * 1024, .runs = 3, .streams = 1, .cc = FERRY_QUIC_CC_BBR};
  g_autofree char *cc = NULL, *only = NULL;
  gint64 bytes = 0;
  gint runs = 0, streams = 0, datagram = 0;
  gboolean no_gso = FALSE;
  GOptionEntry entries[] = {
      {"bytes", 0, 0, G_OPTION_ARG_INT64, &bytes, "bytes per run (default 1 GiB)", "N"},
      {"runs", 0, 0, G_OPTION_ARG_INT, &runs, "runs of each (default 3)", "N"},
      {"cc", 0, 0, G_OPTION_ARG_STRING, &cc, "congestion controller (default bbr)", "NAME"},
      {"streams", 0, 0, G_OPTION_ARG_INT, &streams, "QUIC streams in parallel (default 1)", "N"},
      {"no-gso", 0, 0, G_OPTION_ARG_NONE, &no_gso, "send QUIC datagrams one by one", NULL},
      {"datagram", 0, 0, G_OPTION_ARG_INT, &datagram,
       "largest QUIC datagram (default 1452; up to 65000 on loopback)", "BYTES"},
      {"only", 0, 0, G_OPTION_ARG_STRING, &only, "run only quic, tls or tcp", "KIND"},
      {NULL},
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- QUIC against TLS/TCP on loopback");
  GError *error = NULL;
  double quic = 0, tls = 0, tcp = 0;
  g_autofree char *label = NULL;

  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error) ||
      (cc != NULL && !ferry_quic_cc_parse(cc, &o.cc, &error))) {
    fprintf(stderr, "bench-quic: %s\n", error->message);
    return 2;
  }
  if (bytes > 0)
    o.bytes = (guint64)bytes;
  if (runs > 0)
    o.runs = MIN((guint)runs, MAX_RUNS);
  if (streams > 0)
    o.streams = (guint)streams;
  o.no_gso = no_gso;
  o.datagram = datagram > 0 ? (gsize)datagram : 0;
  o.only = only;
  signal(SIGPIPE, SIG_IGN);

  printf("%.2f GiB over loopback per run; sender on CPU 0, receiver on CPU 1 (%ld CPUs); "
         "median of %u runs\n",
         (double)o.bytes / (1024.0 * 1024 * 1024), sysconf(_SC_NPROCESSORS_ONLN), o.runs);
  label = g_strdup_printf("QUIC (ngtcp2, %s, %s, %u stream%s):", ferry_quic_cc_name(o.cc),
                          o.no_gso ? "no GSO" : "GSO", o.streams, o.streams > 1 ? "s" : "");
  if (o.only == NULL || strcmp(o.only, "quic") == 0)
    quic = series(&o, KIND_QUIC, label);
  if (o.only == NULL || strcmp(o.only, "tls") == 0)
    tls = series(&o, KIND_TLS, "TLS 1.3 over TCP (GnuTLS):");
  if (o.only == NULL || strcmp(o.only, "tcp") == 0)
    tcp = series(&o, KIND_TCP, "plain TCP (no encryption):");
  if (quic > 0 && tls > 0)
    printf("%-40s %6.2f\n", "ratio QUIC / TLS-over-TCP:", quic / tls);
  (void)tcp;
  return 0;
}
