/* bench-serve: a load generator for rendezvous servers.
 *
 *   bench-serve [OPTIONS] HOST:PORT idle N
 *   bench-serve [OPTIONS] HOST:PORT pairs N CONCURRENCY
 *
 * `idle` opens N WebSocket connections to ws://HOST:PORT/v1 (at most
 * --inflight handshakes at a time, so a short listen backlog is not what is
 * measured) and waits for every server's first message. After --settle-ms
 * it prints a line with, given --server-pid, the server's VmRSS before and
 * now (KiB per idle connection) and its CPU time per connection accepted;
 * it holds them --hold-ms longer (another run can load the server
 * meanwhile), closes them and prints the RSS once more.
 *
 * `pairs` runs N sender/receiver rendezvous, CONCURRENCY at a time: the
 * sender connects and asks for a nameplate, the receiver connects and
 * joins it, the receiver sends one message to the sender; a pair has met
 * when that message reaches the sender. Then both close with 1000. Prints
 * pairs/s, p50/p99 latency (sender's connect to the message's arrival)
 * and, with --server-pid, the server's CPU time per pair.
 *
 * --proto picks the server's protocol: `ferry` (docs/protocol.md §2:
 * claim/claimed, join/joined, send/message) or `wormhole`, the
 * magic-wormhole mailbox server's (bind, allocate/allocated,
 * claim/claimed, open, add/message, release, close), so ferry serve can be
 * measured next to it in the same run.
 *
 * The client is hand-written for speed: non-blocking sockets in one epoll
 * set driven from a GLib main loop, the smallest RFC 6455 client (fixed key,
 * masked frames, unfragmented messages) and a JSON reader that only picks
 * string members out of the server's messages. One core of it handles many
 * times the load a server on the other core can, so the figures are the
 * server's; the client's own CPU time is printed to show it. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib.h>

/* RFC 6455 §1.3's example key and the accept value it must produce. */
#define WS_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* A stand-in for a 35-byte PAKE share, as each protocol carries it. */
#define FERRY_BODY    "{\"pake\":\"AQEBlp2Bp/5hj75v6hSxi1SofOI39KYTnYACkF6Gnn9uG2Q=\"}"
#define WORMHOLE_BODY "010101969d81a7fe618fbe6fea14b18b54a87ce237f4a6139d8002905e869e7f6e1b64"

typedef enum { PROTO_FERRY, PROTO_WORMHOLE } Proto;
typedef enum { ROLE_IDLE, ROLE_SENDER, ROLE_RECEIVER } Role;
typedef enum { ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING, ST_DEAD } State;

typedef struct Pair Pair;

typedef struct Conn {
  int fd;
  State state;
  Role role;
  Pair *pair;
  guint8 *in;
  gsize in_len, in_cap;
  guint8 *out;
  gsize out_off, out_len, out_cap;
  gboolean polling_out;
  gboolean welcomed;
} Conn;

struct Pair {
  Conn *s, *r;
  gint64 start_us;
  char nameplate[16];
  char side_s[16], side_r[16];
};

static struct {
  Proto proto;
  struct sockaddr_storage addr;
  socklen_t addr_len;
  char host_header[300];
  int epfd;
  GMainLoop *loop;
  GPtrArray *graveyard; /* Conns closed during an epoll batch */
  GHashTable *conns;    /* every Conn not yet in the graveyard */
  GHashTable *pairs;    /* every Pair that has not met */
  guint32 rng;
  int server_pid;
  int inflight_max;
  int settle_ms;
  int hold_ms;
  double max_seconds;

  /* idle */
  int idle_target, idle_started, idle_welcomed, idle_handshaking;
  Conn **idle_conns;

  /* pairs */
  int pairs_target, pairs_started, pairs_met, concurrency;
  double *latency_ms;
  gint64 pairs_start_us, pairs_end_us;
  gboolean stopping;
} g;

static void fail(const char *fmt, ...) G_GNUC_PRINTF(1, 2) G_GNUC_NORETURN;

static void
fail(const char *fmt, ...)
{
  va_list ap;
  fputs("bench-serve: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

static guint32
rng_next(void)
{
  g.rng ^= g.rng << 13;
  g.rng ^= g.rng >> 17;
  g.rng ^= g.rng << 5;
  return g.rng;
}

/* --- the server process, seen through /proc --- */

static long
server_rss_kib(void)
{
  char path[64], *text = NULL;
  long kib = -1;

  if (g.server_pid <= 0)
    return -1;
  g_snprintf(path, sizeof path, "/proc/%d/status", g.server_pid);
  if (!g_file_get_contents(path, &text, NULL, NULL))
    fail("cannot read %s: is --server-pid %d the server's process id?", path, g.server_pid);
  const char *p = strstr(text, "\nVmRSS:");
  if (p != NULL)
    kib = strtol(p + 7, NULL, 10);
  g_free(text);
  return kib;
}

/* utime + stime of the server, in milliseconds. */
static double
server_cpu_ms(void)
{
  char path[64], *text = NULL;
  unsigned long ut = 0, st = 0;

  if (g.server_pid <= 0)
    return -1;
  g_snprintf(path, sizeof path, "/proc/%d/stat", g.server_pid);
  if (!g_file_get_contents(path, &text, NULL, NULL))
    fail("cannot read %s: is --server-pid %d the server's process id?", path, g.server_pid);
  /* The command name may hold spaces; fields 14 and 15 follow its ')'. */
  const char *p = strrchr(text, ')');
  if (p == NULL ||
      sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
    fail("cannot parse %s", path);
  g_free(text);
  return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* A TcpExt counter of /proc/net/netstat (the whole host's): the SYNs and
 * handshakes dropped because a listen queue was full show a server whose
 * listen backlog is too short for its load. */
static long
tcpext_counter(const char *name)
{
  char *text = NULL;
  long value = -1;

  if (!g_file_get_contents("/proc/net/netstat", &text, NULL, NULL))
    return -1;
  char **lines = g_strsplit(text, "\n", -1);
  for (int i = 0; lines[i] != NULL && lines[i + 1] != NULL; i++) {
    if (!g_str_has_prefix(lines[i], "TcpExt:") || !g_str_has_prefix(lines[i + 1], "TcpExt:"))
      continue;
    char **names = g_strsplit(lines[i], " ", -1);
    char **values = g_strsplit(lines[i + 1], " ", -1);
    for (int j = 0; names[j] != NULL && values[j] != NULL; j++)
      if (strcmp(names[j], name) == 0)
        value = strtol(values[j], NULL, 10);
    g_strfreev(names);
    g_strfreev(values);
    break;
  }
  g_strfreev(lines);
  g_free(text);
  return value;
}

static double
self_cpu_ms(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

/* --- connections --- */

static void
epoll_set(Conn *c, int op, gboolean out)
{
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(g.epfd, op, c->fd, &ev) < 0)
    fail("epoll_ctl: %s", g_strerror(errno));
  c->polling_out = out;
}

static void
conn_free(Conn *c)
{
  g_free(c->in);
  g_free(c->out);
  g_free(c);
}

/* The fd is closed now; the Conn is freed after the current epoll batch,
 * which may still hold events for it. */
static void
conn_destroy(Conn *c)
{
  if (c->state == ST_DEAD)
    return;
  close(c->fd);
  c->fd = -1;
  c->state = ST_DEAD;
  g_hash_table_remove(g.conns, c);
  g_ptr_array_add(g.graveyard, c);
}

static Conn *
conn_new(Role role, Pair *pair)
{
  Conn *c = g_new0(Conn, 1);
  int one = 1;

  c->role = role;
  c->pair = pair;
  c->fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0)
    fail("socket: %s (too many open files? lower N or raise the hard RLIMIT_NOFILE)",
         g_strerror(errno));
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&g.addr, g.addr_len) < 0 && errno != EINPROGRESS)
    fail("connect to %s: %s (is the server running? out of local ports?)", g.host_header,
         g_strerror(errno));
  c->state = ST_CONNECTING;
  epoll_set(c, EPOLL_CTL_ADD, TRUE);
  g_hash_table_add(g.conns, c);
  return c;
}

static void
out_append(Conn *c, const void *data, gsize len)
{
  if (c->out_off > 0 && c->out_off == c->out_len)
    c->out_off = c->out_len = 0;
  if (c->out_len + len > c->out_cap) {
    c->out_cap = MAX(c->out_cap * 2, c->out_len + len + 256);
    c->out = g_realloc(c->out, c->out_cap);
  }
  memcpy(c->out + c->out_len, data, len);
  c->out_len += len;
}

/* Writes what is queued; asks epoll for writability only while some is
 * left. Returns FALSE if the connection broke. */
static gboolean
conn_flush(Conn *c)
{
  while (c->out_off < c->out_len) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      break;
    if (n < 0)
      return FALSE;
    c->out_off += (gsize)n;
  }
  gboolean pending = c->out_off < c->out_len;
  if (pending != c->polling_out)
    epoll_set(c, EPOLL_CTL_MOD, pending);
  return TRUE;
}

/* Queues one masked frame (RFC 6455 §5.2); every client frame is masked. */
static void
ws_send(Conn *c, guint8 opcode, const void *data, gsize len)
{
  guint8 hdr[14];
  gsize h = 0;

  hdr[h++] = 0x80 | opcode;
  if (len < 126) {
    hdr[h++] = 0x80 | (guint8)len;
  } else if (len < 65536) {
    hdr[h++] = 0x80 | 126;
    hdr[h++] = (guint8)(len >> 8);
    hdr[h++] = (guint8)len;
  } else {
    hdr[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      hdr[h++] = (guint8)((guint64)len >> (8 * i));
  }
  guint32 key = rng_next();
  guint8 *mask = hdr + h;
  memcpy(mask, &key, 4);
  h += 4;
  out_append(c, hdr, h);
  gsize at = c->out_len;
  out_append(c, data, len);
  for (gsize i = 0; i < len; i++)
    c->out[at + i] ^= mask[i & 3];
}

static void
ws_send_text(Conn *c, const char *text)
{
  ws_send(c, 0x1, text, strlen(text));
}

static void ws_send_printf(Conn *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
ws_send_printf(Conn *c, const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = g_vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  ws_send(c, 0x1, buf, (gsize)n);
}

/* Starts the closing handshake: a close frame with 1000 (normal), then
 * wait for the server's close frame or EOF. */
static void
ws_close(Conn *c)
{
  static const guint8 normal[2] = {0x03, 0xe8};
  if (c->state != ST_OPEN)
    return;
  ws_send(c, 0x8, normal, sizeof normal);
  c->state = ST_CLOSING;
}

/* --- a minimal JSON reader: a string member anywhere in the text --- */

static gboolean
json_str(const char *json, const char *key, char *out, gsize size)
{
  char pat[40];
  g_snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *p = strstr(json, pat);
  if (p == NULL)
    return FALSE;
  p += strlen(pat);
  while (*p == ' ')
    p++;
  if (*p++ != ':')
    return FALSE;
  while (*p == ' ')
    p++;
  if (*p++ != '"')
    return FALSE;
  gsize n = 0;
  while (p[n] != '\0' && p[n] != '"')
    n++;
  if (n >= size)
    return FALSE;
  memcpy(out, p, n);
  out[n] = '\0';
  return TRUE;
}

/* --- the two protocols --- */

static void pair_start(void);
static void pairs_finish(void);

static void
pair_met(Pair *p)
{
  gint64 now = g_get_monotonic_time();
  g.latency_ms[g.pairs_met++] = (double)(now - p->start_us) / 1000.0;
  Conn *both[2] = {p->s, p->r};
  for (int i = 0; i < 2; i++) {
    Conn *c = both[i];
    if (g.proto == PROTO_WORMHOLE) {
      /* What a wormhole client does when done: free the nameplate and the
       * mailbox, so the server's tables stay small. */
      ws_send_text(c, "{\"type\":\"release\"}");
      ws_send_text(c, "{\"type\":\"close\",\"mood\":\"happy\"}");
    }
    ws_close(c);
    c->pair = NULL;
    /* the sender is flushed by on_epoll once its message is handled */
    if (c != both[0] && !conn_flush(c))
      conn_destroy(c);
  }
  g_hash_table_remove(g.pairs, p);
  if (g.pairs_met == g.pairs_target ||
      (g.max_seconds > 0 && now - g.pairs_start_us > (gint64)(g.max_seconds * 1e6))) {
    pairs_finish();
    return;
  }
  if (g.pairs_started < g.pairs_target)
    pair_start();
}

static void
unexpected(Conn *c, const char *msg)
{
  fail("%s got an unexpected message from the server: %s",
       c->role == ROLE_SENDER     ? "sender"
       : c->role == ROLE_RECEIVER ? "receiver"
                                  : "idle client",
       msg);
}

/* Ferry, docs/protocol.md §2: sender claim → claimed{nameplate}; receiver
 * join → joined, then send to "s"; the sender gets peer-joined, then the
 * message. */
static void
ferry_on_message(Conn *c, const char *msg, const char *type)
{
  Pair *p = c->pair;

  if (strcmp(type, "welcome") == 0) {
    if (c->role == ROLE_SENDER)
      ws_send_text(c, "{\"type\":\"claim\",\"version\":1}");
    else
      ws_send_printf(c, "{\"type\":\"join\",\"version\":1,\"nameplate\":\"%s\"}", p->nameplate);
  } else if (c->role == ROLE_SENDER && strcmp(type, "claimed") == 0) {
    if (!json_str(msg, "nameplate", p->nameplate, sizeof p->nameplate))
      unexpected(c, msg);
    p->r = conn_new(ROLE_RECEIVER, p);
  } else if (c->role == ROLE_SENDER && strcmp(type, "peer-joined") == 0) {
    /* the receiver is in; its message follows */
  } else if (c->role == ROLE_SENDER && strcmp(type, "message") == 0) {
    pair_met(p);
  } else if (c->role == ROLE_RECEIVER && strcmp(type, "joined") == 0) {
    ws_send_text(c, "{\"type\":\"send\",\"to\":\"s\",\"body\":" FERRY_BODY "}");
  } else if (strcmp(type, "ping") == 0) {
    ws_send_text(c, "{\"type\":\"pong\"}");
  } else {
    unexpected(c, msg);
  }
}

/* magic-wormhole mailbox server: sender bind + allocate → allocated
 * {nameplate} → claim → claimed{mailbox} → open; receiver bind + claim →
 * claimed{mailbox} → open + add. Every command is also answered by an
 * "ack", and an added message is echoed to both sides. */
static void
wormhole_on_message(Conn *c, const char *msg, const char *type)
{
  Pair *p = c->pair;
  char mailbox[64], side[16];
  const char *own = c->role == ROLE_SENDER ? p->side_s : p->side_r;

  if (strcmp(type, "ack") == 0 || strcmp(type, "pong") == 0) {
    /* bookkeeping answers */
  } else if (strcmp(type, "welcome") == 0) {
    ws_send_printf(c, "{\"type\":\"bind\",\"appid\":\"ferry.bench/serve\",\"side\":\"%s\"}", own);
    if (c->role == ROLE_SENDER)
      ws_send_text(c, "{\"type\":\"allocate\"}");
    else
      ws_send_printf(c, "{\"type\":\"claim\",\"nameplate\":\"%s\"}", p->nameplate);
  } else if (c->role == ROLE_SENDER && strcmp(type, "allocated") == 0) {
    if (!json_str(msg, "nameplate", p->nameplate, sizeof p->nameplate))
      unexpected(c, msg);
    ws_send_printf(c, "{\"type\":\"claim\",\"nameplate\":\"%s\"}", p->nameplate);
    p->r = conn_new(ROLE_RECEIVER, p);
  } else if (strcmp(type, "claimed") == 0) {
    if (!json_str(msg, "mailbox", mailbox, sizeof mailbox))
      unexpected(c, msg);
    ws_send_printf(c, "{\"type\":\"open\",\"mailbox\":\"%s\"}", mailbox);
    if (c->role == ROLE_RECEIVER)
      ws_send_text(c, "{\"type\":\"add\",\"phase\":\"pake\",\"body\":\"" WORMHOLE_BODY "\"}");
  } else if (strcmp(type, "message") == 0) {
    if (!json_str(msg, "side", side, sizeof side))
      unexpected(c, msg);
    if (c->role == ROLE_SENDER && strcmp(side, p->side_r) == 0)
      pair_met(p);
  } else {
    unexpected(c, msg);
  }
}

static void
on_text(Conn *c, const char *msg)
{
  char type[32];

  if (c->state == ST_CLOSING)
    return; /* session-ended, closed, released, … on the way out */
  if (!json_str(msg, "type", type, sizeof type) || strcmp(type, "error") == 0 ||
      strstr(msg, "\"type\": \"error\"") != NULL)
    unexpected(c, msg);
  if (c->role == ROLE_IDLE) {
    if (!c->welcomed) {
      c->welcomed = TRUE;
      g.idle_welcomed++;
      g.idle_handshaking--;
    } else if (strcmp(type, "ping") == 0 && g.proto == PROTO_FERRY) {
      ws_send_text(c, "{\"type\":\"pong\"}");
    }
    return;
  }
  if (g.proto == PROTO_FERRY)
    ferry_on_message(c, msg, type);
  else
    wormhole_on_message(c, msg, type);
}

/* Parses the server's frames in c->in (server frames are not masked);
 * returns how many bytes were consumed. */
static gsize
parse_frames(Conn *c, gsize off)
{
  while (c->state != ST_DEAD && c->in_len - off >= 2) {
    guint8 *f = c->in + off;
    guint64 len = f[1] & 0x7f;
    gsize hdr = 2;
    if (f[1] & 0x80)
      fail("the server sent a masked frame");
    if (len == 126) {
      if (c->in_len - off < 4)
        break;
      len = (guint64)f[2] << 8 | f[3];
      hdr = 4;
    } else if (len == 127) {
      if (c->in_len - off < 10)
        break;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = len << 8 | f[2 + i];
      hdr = 10;
    }
    if (c->in_len - off - hdr < len)
      break;
    guint8 opcode = f[0] & 0x0f;
    if (!(f[0] & 0x80) || opcode == 0x0)
      fail("the server sent a fragmented message; bench-serve reads whole ones only");
    guint8 *payload = f + hdr;
    off += hdr + (gsize)len;
    if (opcode == 0x1) {
      /* c->in always has a byte to spare for the terminator */
      guint8 saved = payload[len];
      payload[len] = '\0';
      on_text(c, (const char *)payload);
      if (c->state != ST_DEAD)
        payload[len] = saved;
    } else if (opcode == 0x8) {
      if (c->state == ST_CLOSING) {
        conn_destroy(c);
      } else {
        fail("the server closed a connection (close code %u) before its work was done",
             len >= 2 ? (guint)(payload[0] << 8 | payload[1]) : 1005);
      }
    } else if (opcode == 0x9) {
      ws_send(c, 0xA, payload, (gsize)len);
    }
  }
  return off;
}

/* The 101 answer; whatever follows the header is already frames. */
static gsize
parse_handshake(Conn *c)
{
  c->in[c->in_len] = '\0';
  char *end = strstr((char *)c->in, "\r\n\r\n");
  if (end == NULL)
    return 0;
  *end = '\0';
  if (strncmp((char *)c->in, "HTTP/1.1 101", 12) != 0) {
    char *eol = strstr((char *)c->in, "\r\n");
    if (eol != NULL)
      *eol = '\0';
    char *why = strcasestr(eol != NULL ? eol + 2 : "", "X-Ferry-Error:");
    fail("the server refused the WebSocket handshake: %s%s%s (raise the server's limits for "
         "the benchmark)",
         (char *)c->in, why != NULL ? "; " : "", why != NULL ? strtok(why, "\r") : "");
  }
  if (strstr((char *)c->in, WS_ACCEPT) == NULL)
    fail("the server's 101 answer lacks the right Sec-WebSocket-Accept");
  c->state = ST_OPEN;
  return (gsize)(end + 4 - (char *)c->in);
}

static void
conn_readable(Conn *c)
{
  for (;;) {
    if (c->in_cap - c->in_len < 4096 + 1) {
      c->in_cap = MAX(c->in_cap * 2, 8192);
      c->in = g_realloc(c->in, c->in_cap);
    }
    gsize room = c->in_cap - c->in_len - 1;
    ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN)
      break;
    if (n <= 0) {
      if (c->state == ST_CLOSING) {
        conn_destroy(c);
        return;
      }
      fail("the server dropped a connection (%s) %s", n == 0 ? "EOF" : g_strerror(errno),
           c->state == ST_HANDSHAKE ? "during the WebSocket handshake"
                                    : "before its work was done");
    }
    c->in_len += (gsize)n;
    if ((gsize)n < room)
      break;
  }
  gsize off = 0;
  if (c->state == ST_HANDSHAKE) {
    off = parse_handshake(c);
    if (c->state == ST_HANDSHAKE)
      return;
  }
  off = parse_frames(c, off);
  if (c->state == ST_DEAD)
    return;
  memmove(c->in, c->in + off, c->in_len - off);
  c->in_len -= off;
}

static void
conn_writable(Conn *c)
{
  if (c->state == ST_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
      fail("connect to %s: %s (is the server running? is its listen backlog full?)", g.host_header,
           g_strerror(err));
    char req[512];
    int n = g_snprintf(req, sizeof req,
                       "GET /v1 HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       g.host_header);
    out_append(c, req, (gsize)n);
    c->state = ST_HANDSHAKE;
  }
}

static void idle_fill(void);

static gboolean
on_epoll(int fd, GIOCondition cond, gpointer user_data)
{
  struct epoll_event evs[256];
  int n = epoll_wait(g.epfd, evs, G_N_ELEMENTS(evs), 0);

  for (int i = 0; i < n; i++) {
    Conn *c = evs[i].data.ptr;
    if (c->state == ST_DEAD)
      continue;
    if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
      conn_writable(c);
    if (c->state != ST_CONNECTING && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
      conn_readable(c);
    if (c->state != ST_DEAD && !conn_flush(c)) {
      if (c->state != ST_CLOSING)
        fail("cannot write to the server: %s", g_strerror(errno));
      conn_destroy(c);
    }
  }
  g_ptr_array_set_size(g.graveyard, 0);
  if (g.idle_target > 0)
    idle_fill();
  return G_SOURCE_CONTINUE;
}

/* --- idle mode --- */

static long overflows_start;
static int idle_n;
static long idle_rss_before;
static double idle_cpu_ms; /* the server's, to accept and greet them all */
static gint64 idle_start_us, idle_done_us;

static gboolean
idle_after_close(gpointer user_data)
{
  if (g.server_pid > 0)
    printf("idle-closed rss_closed_kib=%ld\n", server_rss_kib());
  g_main_loop_quit(g.loop);
  return G_SOURCE_REMOVE;
}

static gboolean
idle_close(gpointer user_data)
{
  for (int i = 0; i < idle_n; i++) {
    g_hash_table_remove(g.conns, g.idle_conns[i]);
    close(g.idle_conns[i]->fd);
    conn_free(g.idle_conns[i]);
  }
  g.idle_target = 0;
  g_timeout_add(g.settle_ms, idle_after_close, NULL);
  return G_SOURCE_REMOVE;
}

/* Every connection is open and greeted, and the server has had
 * --settle-ms to finish its work: its RSS now is what they cost. The line
 * is printed at once, so a script can load the server further while they
 * are held (--hold-ms). */
static gboolean
idle_measure(gpointer user_data)
{
  long rss_held = server_rss_kib();
  double secs = (double)(idle_done_us - idle_start_us) / 1e6;

  idle_n = g.idle_target;
  printf("idle conns=%d connect_s=%.2f conns_per_s=%.0f", idle_n, secs, idle_n / secs);
  if (g.server_pid > 0)
    printf(" rss_before_kib=%ld rss_held_kib=%ld kib_per_conn=%.2f server_cpu_us_per_conn=%.0f",
           idle_rss_before, rss_held, (double)(rss_held - idle_rss_before) / idle_n,
           idle_cpu_ms * 1000.0 / idle_n);
  printf(" client_cpu_ms=%.0f listen_overflows=%ld\n", self_cpu_ms(),
         tcpext_counter("ListenOverflows") - overflows_start);
  fflush(stdout);
  g_timeout_add(g.hold_ms, idle_close, NULL);
  return G_SOURCE_REMOVE;
}

static void
idle_fill(void)
{
  while (g.idle_started < g.idle_target && g.idle_handshaking < g.inflight_max) {
    g.idle_conns[g.idle_started++] = conn_new(ROLE_IDLE, NULL);
    g.idle_handshaking++;
  }
  if (g.idle_welcomed == g.idle_target && idle_done_us == 0) {
    idle_done_us = g_get_monotonic_time();
    idle_cpu_ms += server_cpu_ms();
    g_timeout_add(g.settle_ms, idle_measure, NULL);
  }
}

/* --- pairs mode --- */

static void
pair_start(void)
{
  Pair *p = g_new0(Pair, 1);
  g_hash_table_add(g.pairs, p);
  p->start_us = g_get_monotonic_time();
  g_snprintf(p->side_s, sizeof p->side_s, "%08xa", rng_next());
  g_snprintf(p->side_r, sizeof p->side_r, "%08xb", rng_next());
  g.pairs_started++;
  p->s = conn_new(ROLE_SENDER, p);
}

static double cpu_server_start, cpu_self_start;

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void
pairs_finish(void)
{
  if (g.stopping)
    return;
  g.stopping = TRUE;
  g.pairs_end_us = g_get_monotonic_time();
  double server_ms = server_cpu_ms() - cpu_server_start;
  double self_ms = self_cpu_ms() - cpu_self_start;
  double secs = (double)(g.pairs_end_us - g.pairs_start_us) / 1e6;
  int n = g.pairs_met;

  if (n == 0)
    fail("no pair met within %.0f s", g.max_seconds);
  qsort(g.latency_ms, (size_t)n, sizeof(double), cmp_double);
  printf("pairs n=%d concurrency=%d seconds=%.2f pairs_per_s=%.0f p50_ms=%.2f p99_ms=%.2f "
         "client_cpu_us_per_pair=%.0f",
         n, g.concurrency, secs, n / secs, g.latency_ms[n / 2],
         g.latency_ms[MIN(n - 1, (int)(n * 0.99))], self_ms * 1000.0 / n);
  if (g.server_pid > 0)
    printf(" server_cpu_us_per_pair=%.0f server_cpu_share=%.2f", server_ms * 1000.0 / n,
           server_ms / 1000.0 / secs);
  printf(" listen_overflows=%ld%s\n", tcpext_counter("ListenOverflows") - overflows_start,
         n < g.pairs_target ? " stopped_by=max-seconds" : "");
  g_main_loop_quit(g.loop);
}

static gboolean
on_deadline(gpointer user_data)
{
  if (g.pairs_target > 0) {
    pairs_finish();
  } else if (idle_done_us == 0) {
    fail("only %d of %d idle connections got the server's first message in %.0f s", g.idle_welcomed,
         g.idle_target, g.max_seconds);
  }
  return G_SOURCE_REMOVE;
}

/* Raises the soft RLIMIT_NOFILE to the hard one; fails if that is still
 * short of what the run needs. */
static void
raise_fd_limit(long need)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    fail("getrlimit: %s", g_strerror(errno));
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
      fail("setrlimit(RLIMIT_NOFILE, %lu): %s", (unsigned long)rl.rlim_max, g_strerror(errno));
  }
  if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need)
    fail("this run needs %ld file descriptors but the hard limit (ulimit -Hn) is %lu: raise it "
         "(as root: ulimit -Hn %ld, or LimitNOFILE= / limits.conf) or ask for fewer connections",
         need, (unsigned long)rl.rlim_cur, need);
}

static void
parse_target(const char *text)
{
  const char *colon = strrchr(text, ':');
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;

  if (colon == NULL || colon == text)
    fail("'%s' is not HOST:PORT (for example 127.0.0.1:8080)", text);
  char *host = g_strndup(text, (gsize)(colon - text));
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    host[strlen(host) - 1] = '\0';
    memmove(host, host + 1, strlen(host));
  }
  int rc = getaddrinfo(host, colon + 1, &hints, &ai);
  if (rc != 0)
    fail("cannot resolve '%s': %s", text, gai_strerror(rc));
  memcpy(&g.addr, ai->ai_addr, ai->ai_addrlen);
  g.addr_len = ai->ai_addrlen;
  freeaddrinfo(ai);
  g_strlcpy(g.host_header, text, sizeof g.host_header);
  g_free(host);
}

static long
parse_count(const char *text, const char *what, long min, long max)
{
  guint64 v;
  if (!g_ascii_string_to_unsigned(text, 10, (guint64)min, (guint64)max, &v, NULL))
    fail("%s '%s' is not a number from %ld to %ld", what, text, min, max);
  return (long)v;
}

int
main(int argc, char **argv)
{
  char *proto = NULL;
  int server_pid = 0, inflight = 8, settle_ms = 1000, hold_ms = 0;
  double max_seconds = 0;
  GOptionEntry entries[] = {
      {"proto", 0, 0, G_OPTION_ARG_STRING, &proto,
       "Server protocol: ferry (default) or wormhole (magic-wormhole mailbox)", "NAME"},
      {"server-pid", 0, 0, G_OPTION_ARG_INT, &server_pid,
       "Read the server's RSS and CPU time from /proc/PID", "PID"},
      {"inflight", 0, 0, G_OPTION_ARG_INT, &inflight,
       "idle: handshakes in progress at once (default 8: some servers' listen backlog is 10)", "N"},
      {"settle-ms", 0, 0, G_OPTION_ARG_INT, &settle_ms,
       "idle: wait before each RSS reading (default 1000)", "MS"},
      {"hold-ms", 0, 0, G_OPTION_ARG_INT, &hold_ms,
       "idle: keep the connections open this long after the RSS reading (default 0)", "MS"},
      {"max-seconds", 0, 0, G_OPTION_ARG_DOUBLE, &max_seconds,
       "pairs: stop after this long and report what met; idle: give up (default 60 for idle)", "S"},
      {NULL}};
  GOptionContext *ctx =
      g_option_context_new("HOST:PORT idle N | HOST:PORT pairs N CONCURRENCY - load a "
                           "rendezvous server");
  GError *error = NULL;

  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error) || argc < 4 ||
      (strcmp(argv[2], "idle") == 0 && argc != 4) || (strcmp(argv[2], "pairs") == 0 && argc != 5) ||
      (strcmp(argv[2], "idle") != 0 && strcmp(argv[2], "pairs") != 0)) {
    fprintf(stderr, "bench-serve: %s (see --help)\n",
            error ? error->message : "give HOST:PORT idle N, or HOST:PORT pairs N CONCURRENCY");
    return 2;
  }
  g_option_context_free(ctx);
  if (proto == NULL || strcmp(proto, "ferry") == 0)
    g.proto = PROTO_FERRY;
  else if (strcmp(proto, "wormhole") == 0)
    g.proto = PROTO_WORMHOLE;
  else
    fail("--proto %s: use ferry or wormhole", proto);
  g_free(proto);

  signal(SIGPIPE, SIG_IGN);
  parse_target(argv[1]);
  g.server_pid = server_pid;
  g.inflight_max = MAX(inflight, 1);
  g.settle_ms = MAX(settle_ms, 0);
  g.hold_ms = MAX(hold_ms, 0);
  g.rng = (guint32)g_get_real_time() | 1;
  g.graveyard = g_ptr_array_new_with_free_func((GDestroyNotify)conn_free);
  g.conns = g_hash_table_new(NULL, NULL);
  g.pairs = g_hash_table_new_full(NULL, NULL, g_free, NULL);
  g.epfd = epoll_create1(EPOLL_CLOEXEC);
  g.loop = g_main_loop_new(NULL, FALSE);
  g_unix_fd_add(g.epfd, G_IO_IN, on_epoll, NULL);

  overflows_start = tcpext_counter("ListenOverflows");
  if (strcmp(argv[2], "idle") == 0) {
    g.idle_target = (int)parse_count(argv[3], "N", 1, 1000000);
    raise_fd_limit(g.idle_target + 64L);
    g.max_seconds = max_seconds > 0 ? max_seconds : 60;
    g.idle_conns = g_new0(Conn *, g.idle_target);
    idle_rss_before = server_rss_kib();
    idle_cpu_ms = -server_cpu_ms();
    idle_start_us = g_get_monotonic_time();
    g_timeout_add((guint)(g.max_seconds * 1000), on_deadline, NULL);
    idle_fill();
  } else {
    g.pairs_target = (int)parse_count(argv[3], "N", 1, 100000000);
    g.concurrency = (int)parse_count(argv[4], "CONCURRENCY", 1, 100000);
    /* two sockets a pair in flight, and as many again still closing */
    raise_fd_limit(g.concurrency * 4L + 64);
    g.max_seconds = max_seconds;
    g.latency_ms = g_new(double, g.pairs_target);
    cpu_server_start = server_cpu_ms();
    cpu_self_start = self_cpu_ms();
    g.pairs_start_us = g_get_monotonic_time();
    if (max_seconds > 0)
      g_timeout_add((guint)(max_seconds * 1000), on_deadline, NULL);
    while (g.pairs_started < MIN(g.concurrency, g.pairs_target))
      pair_start();
  }
  g_main_loop_run(g.loop);

  /* Whatever is still in flight (pairs past the time limit, closing
   * handshakes) is dropped. */
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init(&it, g.conns);
  while (g_hash_table_iter_next(&it, &key, NULL)) {
    close(((Conn *)key)->fd);
    conn_free(key);
  }
  g_hash_table_destroy(g.conns);
  g_hash_table_destroy(g.pairs);
  g_ptr_array_free(g.graveyard, TRUE);
  g_free(g.latency_ms);
  g_free(g.idle_conns);
  g_main_loop_unref(g.loop);
  close(g.epfd);
  fflush(stdout);
  return 0;
}
