/* Birthday punching: see punch.h and docs/protocol.md §7.4. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <sodium.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ferry/error.h>

#include "core/stun.h"
#include "net/punch.h"

#define TICK_MS         10
#define SPRAY_PER_TICK  64
#define MAX_PROVEN      4096
#define RECV_BUF        2048
#define PORT_LOW        1024
#define DEFAULT_MAP_MS  2000
#define DEFAULT_PEER_MS 3000
#define FD_SPARE        128 /* descriptors left for everything else */

/* When the mapping test asks again (ms after it started) and when the EDM
 * side's sockets probe again (ms after the punch started): quick at first,
 * then backing off, so a lost datagram costs little and a long attempt
 * stays a few thousand datagrams. */
static const guint stun_times[] = {0, 200, 600, 1400};
static const guint probe_times[] = {0, 200, 600, 1400, 3000};

typedef enum {
  PHASE_MAPPING,   /* resolving the servers, asking them */
  PHASE_WAIT_PEER, /* our line is sent; the peer's has not come */
  PHASE_ACTIVE,    /* sending probes */
  PHASE_LISTEN,    /* receiver: sending is over, still taking the sender's packets */
  PHASE_OVER,      /* nothing more: handed over, or no punch */
} Phase;

typedef struct {
  FerryPunch *p;
  guint index;
  int fd;
  GSource *watch;
} Sock;

/* A name lookup under way: p is cleared when the punch is freed first. */
typedef struct {
  FerryPunch *p;
  guint i;
} Lookup;

struct _FerryPunch {
  gboolean sender;
  guint n_sockets, n_ports, send_ms, mapping_ms, peer_ms;
  GMainContext *ctx;
  FerryPunchHandlers h;
  gpointer user_data;
  Phase phase;
  gint64 created_us, phase_us;

  /* the mapping test: servers[a] and servers[b], asked from socks[0] */
  GCancellable *cancel;
  GPtrArray *lookups; /* Lookup* under way */
  gboolean chosen;
  guint n_hosts;
  guint16 ports[FERRY_PUNCH_MAX_SERVERS];
  struct sockaddr_in servers[FERRY_PUNCH_MAX_SERVERS];
  gboolean resolved[FERRY_PUNCH_MAX_SERVERS];
  int a, b;
  guint8 txid[2][FERRY_STUN_TXID_SIZE];
  gboolean answered[2];
  struct sockaddr_in mapped[2];
  guint stun_round; /* rounds asked so far: the next is due at stun_times[stun_round] */
  guint stun_sent;  /* datagrams the kernel took, for the log */

  FerryPunchMapping mine, peers;
  struct sockaddr_in my_addr, peer_addr;
  gboolean have_peer;
  gboolean many; /* probing the peer's mapping (from 256 sockets, or from one if both EIM) */

  GPtrArray *socks; /* Sock*; [0] is the mapping test's socket */
  GSource *tick;
  guint8 probe_tag[FERRY_PUNCH_TAG_LEN], ack_tag[FERRY_PUNCH_TAG_LEN];
  guint8 peer_probe_tag[FERRY_PUNCH_TAG_LEN], peer_ack_tag[FERRY_PUNCH_TAG_LEN];
  guint8 *sprayed; /* bitmap of the ports sprayed */
  guint n_sprayed, probe_round, sent;
  /* Proven: (socket, address) pairs a tagged packet came through. With no
   * NAT on one side every one of the other side's sockets gets through,
   * and the sender may pick any of them: none may be forgotten. */
  GArray *proven;
};

static gboolean sock_readable(gint fd, GIOCondition cond, gpointer data);

static gint64
elapsed_ms(gint64 since_us)
{
  return (g_get_monotonic_time() - since_us) / 1000;
}

static gboolean
same_addr(const struct sockaddr_in *x, const struct sockaddr_in *y)
{
  return x->sin_addr.s_addr == y->sin_addr.s_addr && x->sin_port == y->sin_port;
}

static Sock *
sock_open(FerryPunch *p, GError **error)
{
  struct sockaddr_in any = {.sin_family = AF_INET};
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

  if (fd < 0 || bind(fd, (struct sockaddr *)&any, sizeof any) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    ferry_set_error(error, FERRY_ERR_IO, "cannot open a UDP socket for hole punching: %s",
                    g_strerror(e));
    return NULL;
  }
  Sock *s = g_new0(Sock, 1);
  s->p = p;
  s->index = p->socks->len;
  s->fd = fd;
  s->watch = g_unix_fd_source_new(fd, G_IO_IN);
  g_source_set_callback(s->watch, G_SOURCE_FUNC(sock_readable), s, NULL);
  g_source_attach(s->watch, p->ctx);
  g_ptr_array_add(p->socks, s);
  return s;
}

static void
sock_close(gpointer data)
{
  Sock *s = data;
  if (s->watch != NULL) {
    g_source_destroy(s->watch);
    g_source_unref(s->watch);
  }
  if (s->fd >= 0)
    close(s->fd);
  g_free(s);
}

static void
send_to(FerryPunch *p, Sock *s, const struct sockaddr_in *to, gboolean ack)
{
  guint8 buf[FERRY_PUNCH_PACKET_LEN];
  gsize n = ferry_punch_packet_write(buf, ack, ack ? p->ack_tag : p->probe_tag);
  if (sendto(s->fd, buf, n, 0, (const struct sockaddr *)to, sizeof *to) == (ssize_t)n)
    p->sent++;
}

/* Stops every source and closes every socket but the one handed over. */
static void
stop_all(FerryPunch *p)
{
  p->phase = PHASE_OVER;
  if (p->tick != NULL) {
    g_source_destroy(p->tick);
    g_clear_pointer(&p->tick, g_source_unref);
  }
  g_cancellable_cancel(p->cancel);
  g_ptr_array_set_size(p->socks, 0);
}

/* No path from this punch: the sender stops; a receiver stops only when
 * nothing was ever to be punched (it_ran FALSE), else it keeps listening
 * for a sender that found a path just in time. */
static void
give_up(FerryPunch *p, gboolean it_ran, const char *why)
{
  if (!p->sender && it_ran) {
    p->phase = PHASE_LISTEN;
    if (p->tick != NULL) {
      g_source_destroy(p->tick);
      g_clear_pointer(&p->tick, g_source_unref);
    }
    return;
  }
  stop_all(p);
  if (p->h.over != NULL)
    p->h.over(p, why, p->user_data);
}

/* Hands socket s, connected to from, to the caller (the handler may free
 * p: nothing touches it afterwards). */
static void
hand_over(FerryPunch *p, Sock *s, const struct sockaddr_in *from, const guint8 *data, gsize len)
{
  int fd = s->fd;
  struct sockaddr_in peer = *from;

  s->fd = -1;
  if (connect(fd, (const struct sockaddr *)&peer, sizeof peer) < 0)
    g_debug("punch: connect: %s", g_strerror(errno));
  stop_all(p);
  if (p->sender)
    p->h.ready(p, fd, &peer, p->user_data);
  else
    p->h.datagram(p, fd, &peer, data, len, p->user_data);
}

/* ---- the mapping test --------------------------------------------------- */

static void
send_line(FerryPunch *p)
{
  char line[FERRY_PUNCH_LINE_MAX];
  ferry_punch_line_write(line, p->mine, &p->my_addr);
  g_debug("punch: our mapping: %s (%u STUN requests)", line, p->stun_sent);
  p->phase = PHASE_WAIT_PEER;
  p->phase_us = g_get_monotonic_time();
  if (p->h.line != NULL)
    p->h.line(p, line, p->user_data);
}

static void
mapping_done(FerryPunch *p, FerryPunchMapping m)
{
  p->mine = m;
  if (m == FERRY_PUNCH_MAPPING_EIM)
    p->my_addr = p->mapped[0];
  else if (m == FERRY_PUNCH_MAPPING_EDM) {
    p->my_addr = p->mapped[0];
    p->my_addr.sin_port = 0;
  }
  send_line(p);
}

/* Picks two servers: the first one resolved, and the next at another
 * address (else at another port of the same one). */
static void
choose_servers(FerryPunch *p)
{
  p->chosen = TRUE;
  p->a = p->b = -1;
  for (guint i = 0; i < p->n_hosts; i++) {
    if (!p->resolved[i])
      continue;
    if (p->a < 0)
      p->a = (int)i;
    else if (p->b < 0 && p->servers[i].sin_addr.s_addr != p->servers[p->a].sin_addr.s_addr)
      p->b = (int)i;
  }
  for (guint i = 0; p->a >= 0 && p->b < 0 && i < p->n_hosts; i++)
    if (p->resolved[i] && !same_addr(&p->servers[i], &p->servers[p->a]))
      p->b = (int)i;
  p->phase_us = g_get_monotonic_time();
  if (p->b < 0) {
    mapping_done(p, FERRY_PUNCH_MAPPING_UNKNOWN);
    return;
  }
  char x[INET_ADDRSTRLEN], y[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &p->servers[p->a].sin_addr, x, sizeof x);
  inet_ntop(AF_INET, &p->servers[p->b].sin_addr, y, sizeof y);
  g_debug("punch: mapping test with %s:%u and %s:%u", x, ntohs(p->servers[p->a].sin_port), y,
          ntohs(p->servers[p->b].sin_port));
}

static void
set_server(FerryPunch *p, guint i, GInetAddress *ia)
{
  p->servers[i].sin_family = AF_INET;
  memcpy(&p->servers[i].sin_addr, g_inet_address_to_bytes(ia), 4);
  p->servers[i].sin_port = htons(p->ports[i]);
  p->resolved[i] = TRUE;
}

static void
on_resolved(GObject *source, GAsyncResult *res, gpointer data)
{
  Lookup *lk = data;
  GList *list = g_resolver_lookup_by_name_finish(G_RESOLVER(source), res, NULL);
  FerryPunch *p = lk->p;

  if (p != NULL) {
    g_ptr_array_remove_fast(p->lookups, lk);
    for (GList *l = list; l != NULL; l = l->next)
      if (g_inet_address_get_family(l->data) == G_SOCKET_FAMILY_IPV4) {
        set_server(p, lk->i, l->data);
        break;
      }
  }
  g_resolver_free_addresses(list);
  g_free(lk);
}

static void
stun_ask(FerryPunch *p)
{
  for (int k = 0; k < 2; k++) {
    guint8 buf[64];
    int n;
    if (p->answered[k])
      continue;
    n = ferry_stun_build_binding_request(p->txid[k], buf, sizeof buf);
    const struct sockaddr_in *to = &p->servers[k == 0 ? p->a : p->b];
    if (n > 0 && sendto(((Sock *)p->socks->pdata[0])->fd, buf, (size_t)n, 0,
                        (const struct sockaddr *)to, sizeof *to) == n)
      p->stun_sent++;
  }
}

static void
stun_answer(FerryPunch *p, const guint8 *data, gsize len)
{
  guint8 id[FERRY_STUN_ID_SIZE];
  struct sockaddr_storage mapped;

  if (p->phase != PHASE_MAPPING || p->b < 0 ||
      ferry_stun_parse_binding_response(data, len, id, &mapped) != 0 || mapped.ss_family != AF_INET)
    return;
  for (int k = 0; k < 2; k++) {
    if (p->answered[k] || memcmp(id + 4, p->txid[k], FERRY_STUN_TXID_SIZE) != 0)
      continue;
    p->answered[k] = TRUE;
    memcpy(&p->mapped[k], &mapped, sizeof p->mapped[k]);
  }
  if (!p->answered[0] || !p->answered[1])
    return;
  if (same_addr(&p->mapped[0], &p->mapped[1]))
    mapping_done(p, FERRY_PUNCH_MAPPING_EIM);
  else if (p->mapped[0].sin_addr.s_addr == p->mapped[1].sin_addr.s_addr)
    mapping_done(p, FERRY_PUNCH_MAPPING_EDM);
  else
    mapping_done(p, FERRY_PUNCH_MAPPING_UNKNOWN); /* two public addresses: which one? */
}

/* ---- punching ----------------------------------------------------------- */

/* How many more sockets this process may open and still keep FD_SPARE
 * descriptors for everything else (files being sent, other receivers'
 * connections). The soft limit is raised to the hard one first if that
 * is needed: 256 sockets do not fit under the usual 1024 with a busy
 * sender. */
static guint
fd_room(guint want)
{
  struct rlimit rl;
  guint open_now = 0;
  GDir *d = g_dir_open("/proc/self/fd", 0, NULL);

  if (d == NULL || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    if (d != NULL)
      g_dir_close(d);
    return want;
  }
  while (g_dir_read_name(d) != NULL)
    open_now++;
  g_dir_close(d);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < open_now + want + FD_SPARE &&
      rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur == RLIM_INFINITY)
    return want;
  if (rl.rlim_cur <= open_now + FD_SPARE)
    return 0;
  return (guint)MIN((rlim_t)want, rl.rlim_cur - open_now - FD_SPARE);
}

/* Returns FALSE when there is nothing to punch (the over handler ran and
 * may have freed p). */
static gboolean
start_punch(FerryPunch *p)
{
  GError *error = NULL;
  gboolean edm_eim = p->mine == FERRY_PUNCH_MAPPING_EDM && p->peers == FERRY_PUNCH_MAPPING_EIM;
  gboolean eim_edm = p->mine == FERRY_PUNCH_MAPPING_EIM && p->peers == FERRY_PUNCH_MAPPING_EDM;
  /* Both EIM: each knows the other's mapping, and one probe each way opens
   * both filters (ICE does the same with server-reflexive candidates, but
   * libnice nominates only once its other checks are over, ~2 s later).
   * Not behind one address: there ICE's host pair is the better path. */
  gboolean eim_eim = p->mine == FERRY_PUNCH_MAPPING_EIM && p->peers == FERRY_PUNCH_MAPPING_EIM &&
                     p->my_addr.sin_addr.s_addr != p->peer_addr.sin_addr.s_addr;
  if (!edm_eim && !eim_edm && !eim_eim) {
    give_up(p, FALSE,
            "nothing to punch: both sides behind one address, a mapping not known, or both "
            "endpoint-dependent");
    return FALSE;
  }
  p->many = !eim_edm; /* probing the peer's mapping, from 256 sockets or from one */
  p->phase = PHASE_ACTIVE;
  p->phase_us = g_get_monotonic_time();
  if (p->many) {
    guint n = edm_eim ? p->socks->len + fd_room(p->n_sockets - p->socks->len) : 1;
    while (p->socks->len < n && sock_open(p, &error) != NULL)
      ;
    if (error != NULL) {
      g_debug("punch: %u sockets: %s", p->socks->len, error->message);
      g_error_free(error);
    }
  } else {
    p->sprayed = g_malloc0(65536 / 8);
  }
  g_debug("punch: %s (%u sockets)", p->many ? "probing the peer's mapping" : "spraying ports",
          p->socks->len);
  return TRUE;
}

static void
spray(FerryPunch *p)
{
  Sock *s = p->socks->pdata[0];
  struct sockaddr_in to = p->peer_addr;

  for (guint i = 0; i < SPRAY_PER_TICK && p->n_sprayed < p->n_ports; i++) {
    guint port;
    do
      port = (guint)g_random_int_range(PORT_LOW, 65536);
    while (p->sprayed[port / 8] & (1u << (port % 8)));
    p->sprayed[port / 8] |= (guint8)(1u << (port % 8));
    p->n_sprayed++;
    to.sin_port = htons((guint16)port);
    send_to(p, s, &to, FALSE);
  }
}

static gboolean
on_tick(gpointer data)
{
  FerryPunch *p = data;

  switch (p->phase) {
  case PHASE_MAPPING:
    if (!p->chosen) {
      if (p->lookups->len == 0 || elapsed_ms(p->created_us) >= p->mapping_ms)
        choose_servers(p);
      return G_SOURCE_CONTINUE;
    }
    if (elapsed_ms(p->created_us) >= p->mapping_ms) {
      mapping_done(p, FERRY_PUNCH_MAPPING_UNKNOWN);
      return G_SOURCE_CONTINUE;
    }
    /* One round at each of stun_times, whether or not the kernel took it
     * (an unreachable server must not turn this into a send every tick). */
    if (p->b >= 0 && p->stun_round < G_N_ELEMENTS(stun_times) &&
        elapsed_ms(p->phase_us) >= stun_times[p->stun_round]) {
      p->stun_round++;
      stun_ask(p);
    }
    return G_SOURCE_CONTINUE;
  case PHASE_WAIT_PEER:
    if (p->have_peer)
      return start_punch(p) ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
    if (elapsed_ms(p->phase_us) >= p->peer_ms) {
      give_up(p, FALSE, "the other side sent no punch line");
      return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
  case PHASE_ACTIVE:
    if (elapsed_ms(p->phase_us) >= p->send_ms) {
      char why[64];
      g_snprintf(why, sizeof why, "no reply within %.1f s", p->send_ms / 1000.0);
      give_up(p, TRUE, why);
      return G_SOURCE_REMOVE;
    }
    if (!p->many) {
      spray(p);
    } else if (p->probe_round < G_N_ELEMENTS(probe_times) &&
               elapsed_ms(p->phase_us) >= probe_times[p->probe_round]) {
      p->probe_round++;
      for (guint i = 0; i < p->socks->len; i++)
        send_to(p, p->socks->pdata[i], &p->peer_addr, FALSE);
    }
    return G_SOURCE_CONTINUE;
  case PHASE_LISTEN:
  case PHASE_OVER:
    break;
  }
  return G_SOURCE_REMOVE;
}

typedef struct {
  guint sock;
  struct sockaddr_in from;
} Proven;

static gboolean
proven(FerryPunch *p, Sock *s, const struct sockaddr_in *from)
{
  for (guint i = 0; i < p->proven->len; i++) {
    const Proven *e = &g_array_index(p->proven, Proven, i);
    if (e->sock == s->index && same_addr(&e->from, from))
      return TRUE;
  }
  return FALSE;
}

static void
prove(FerryPunch *p, Sock *s, const struct sockaddr_in *from)
{
  if (p->proven->len >= MAX_PROVEN || proven(p, s, from))
    return;
  Proven e = {s->index, *from};
  g_array_append_val(p->proven, e);
}

/* One datagram on s. Returns FALSE once the punch handed a socket over
 * (p may be gone). */
static gboolean
take(FerryPunch *p, Sock *s, const guint8 *data, gsize len, const struct sockaddr_in *from)
{
  guint8 tag[FERRY_PUNCH_TAG_LEN];

  switch (ferry_punch_packet_parse(data, len, tag)) {
  case FERRY_PUNCH_PACKET_PROBE:
    if (sodium_memcmp(tag, p->peer_probe_tag, sizeof tag) != 0)
      return TRUE;
    prove(p, s, from);
    send_to(p, s, from, TRUE);
    return TRUE;
  case FERRY_PUNCH_PACKET_ACK:
    if (sodium_memcmp(tag, p->peer_ack_tag, sizeof tag) != 0)
      return TRUE;
    prove(p, s, from);
    if (p->sender) {
      g_debug("punch: path after %" G_GINT64_FORMAT " ms, %u datagrams sent",
              elapsed_ms(p->created_us), p->sent);
      hand_over(p, s, from, NULL, 0);
      return FALSE;
    }
    send_to(p, s, from, TRUE);
    return TRUE;
  case FERRY_PUNCH_PACKET_BAD:
    return TRUE;
  case FERRY_PUNCH_PACKET_NONE:
    break;
  }
  if (s->index == 0 && p->phase == PHASE_MAPPING) {
    stun_answer(p, data, len);
    return TRUE;
  }
  if (!p->sender && proven(p, s, from)) {
    g_debug("punch: the sender's first packet after %" G_GINT64_FORMAT " ms",
            elapsed_ms(p->created_us));
    hand_over(p, s, from, data, len);
    return FALSE;
  }
  return TRUE;
}

static gboolean
sock_readable(gint fd, GIOCondition cond, gpointer data)
{
  Sock *s = data;
  guint8 buf[RECV_BUF];
  (void)cond;

  for (int i = 0; i < 64; i++) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&ss, &sl);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      continue; /* ICMP errors: ignored, as QUIC does */
    }
    if (ss.ss_family != AF_INET)
      continue;
    if (!take(s->p, s, buf, (gsize)n, (struct sockaddr_in *)&ss))
      return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

/* ---- the object --------------------------------------------------------- */

FerryPunch *
ferry_punch_new(const FerryPunchConfig *config, const FerryPunchHandlers *handlers,
                gpointer user_data, GError **error)
{
  FerryPunch *p = g_new0(FerryPunch, 1);

  p->sender = config->sender;
  p->n_sockets = config->sockets ? config->sockets : FERRY_PUNCH_DEFAULT_SOCKETS;
  p->n_ports = MIN(config->ports ? config->ports : FERRY_PUNCH_DEFAULT_PORTS, 65536 - PORT_LOW);
  p->send_ms = config->send_ms ? config->send_ms : FERRY_PUNCH_DEFAULT_SEND_MS;
  p->mapping_ms = config->mapping_ms ? config->mapping_ms : DEFAULT_MAP_MS;
  p->peer_ms = config->peer_ms ? config->peer_ms : DEFAULT_PEER_MS;
  p->ctx =
      config->ctx != NULL ? g_main_context_ref(config->ctx) : g_main_context_ref_thread_default();
  p->h = *handlers;
  p->user_data = user_data;
  p->created_us = p->phase_us = g_get_monotonic_time();
  p->a = p->b = -1;
  p->socks = g_ptr_array_new_with_free_func(sock_close);
  p->lookups = g_ptr_array_new();
  p->proven = g_array_new(FALSE, FALSE, sizeof(Proven));
  p->cancel = g_cancellable_new();
  ferry_punch_tag(config->key, p->sender, FALSE, p->probe_tag);
  ferry_punch_tag(config->key, p->sender, TRUE, p->ack_tag);
  ferry_punch_tag(config->key, !p->sender, FALSE, p->peer_probe_tag);
  ferry_punch_tag(config->key, !p->sender, TRUE, p->peer_ack_tag);
  randombytes_buf(p->txid, sizeof p->txid);
  if (sock_open(p, error) == NULL) {
    ferry_punch_free(p);
    return NULL;
  }
  p->tick = g_timeout_source_new(TICK_MS);
  g_source_set_callback(p->tick, on_tick, p, NULL);
  g_source_attach(p->tick, p->ctx);

  /* Resolve the servers (literal addresses at once); the tick asks two. */
  GResolver *resolver = g_resolver_get_default();
  p->n_hosts = MIN(config->n_servers, FERRY_PUNCH_MAX_SERVERS);
  g_main_context_push_thread_default(p->ctx);
  for (guint i = 0; i < p->n_hosts; i++) {
    p->ports[i] = config->server_ports[i];
    GInetAddress *ia = g_inet_address_new_from_string(config->server_hosts[i]);
    if (ia != NULL) {
      if (g_inet_address_get_family(ia) == G_SOCKET_FAMILY_IPV4)
        set_server(p, i, ia);
      g_object_unref(ia);
      continue;
    }
    Lookup *lk = g_new0(Lookup, 1);
    lk->p = p;
    lk->i = i;
    g_ptr_array_add(p->lookups, lk);
    g_resolver_lookup_by_name_async(resolver, config->server_hosts[i], p->cancel, on_resolved, lk);
  }
  g_main_context_pop_thread_default(p->ctx);
  g_object_unref(resolver);
  return p;
}

gboolean
ferry_punch_set_peer(FerryPunch *p, const char *line, GError **error)
{
  FerryPunchMapping m;
  struct sockaddr_in addr;

  if (!ferry_punch_line_parse(line, &m, &addr))
    return ferry_set_error(error, FERRY_ERR_INVALID, "malformed punch line \"%.40s\"", line);
  if (p->have_peer)
    return TRUE;
  p->have_peer = TRUE;
  p->peers = m;
  p->peer_addr = addr;
  return TRUE;
}

FerryPunchMapping
ferry_punch_get_mapping(FerryPunch *p)
{
  return p->mine;
}

guint
ferry_punch_get_sent(FerryPunch *p)
{
  return p->sent;
}

gint64
ferry_punch_get_elapsed_ms(FerryPunch *p)
{
  return elapsed_ms(p->created_us);
}

void
ferry_punch_free(FerryPunch *p)
{
  if (p == NULL)
    return;
  stop_all(p);
  for (guint i = 0; i < p->lookups->len; i++)
    ((Lookup *)p->lookups->pdata[i])->p = NULL;
  g_ptr_array_free(p->lookups, TRUE);
  g_ptr_array_free(p->socks, TRUE);
  g_array_free(p->proven, TRUE);
  g_object_unref(p->cancel);
  g_free(p->sprayed);
  g_main_context_unref(p->ctx);
  sodium_memzero(p, sizeof *p);
  g_free(p);
}
