/* Birthday punching (src/net/punch.h, punch-wire.h): the wire formats, the
 * NAT mapping test against ferry's own STUN responder, and the punch's
 * spraying side with this test as the peer behind the "symmetric" NAT —
 * real sockets and real packets on loopback. Through real NATs (nftables
 * in namespaces) it is tests/test-nat.sh that shows a path being made. */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ferry/error.h>

#include "net/punch.h"
#include "server/stun-server.h"

static const guint8 key[FERRY_PUNCH_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

/* ---- wire --------------------------------------------------------------- */

static void
test_packet(void)
{
  guint8 tag[FERRY_PUNCH_TAG_LEN], t2[FERRY_PUNCH_TAG_LEN], buf[64], got[FERRY_PUNCH_TAG_LEN];

  ferry_punch_tag(key, TRUE, FALSE, tag);
  g_assert_cmpuint(ferry_punch_packet_write(buf, FALSE, tag), ==, FERRY_PUNCH_PACKET_LEN);
  g_assert_cmpmem(buf, 8,
                  "\x80"
                  "ferrypn",
                  8);
  g_assert_cmpint(ferry_punch_packet_parse(buf, FERRY_PUNCH_PACKET_LEN, got), ==,
                  FERRY_PUNCH_PACKET_PROBE);
  g_assert_cmpmem(got, sizeof got, tag, sizeof tag);
  ferry_punch_packet_write(buf, TRUE, tag);
  g_assert_cmpint(ferry_punch_packet_parse(buf, FERRY_PUNCH_PACKET_LEN, got), ==,
                  FERRY_PUNCH_PACKET_ACK);
  /* the magic with anything else wrong: ours, but bad */
  g_assert_cmpint(ferry_punch_packet_parse(buf, FERRY_PUNCH_PACKET_LEN - 1, got), ==,
                  FERRY_PUNCH_PACKET_BAD);
  g_assert_cmpint(ferry_punch_packet_parse(buf, 8, got), ==, FERRY_PUNCH_PACKET_BAD);
  buf[8] = 3;
  g_assert_cmpint(ferry_punch_packet_parse(buf, FERRY_PUNCH_PACKET_LEN, got), ==,
                  FERRY_PUNCH_PACKET_BAD);
  /* QUIC, STUN, a relay probe: not ours */
  memset(buf, 0xC3, sizeof buf);
  g_assert_cmpint(ferry_punch_packet_parse(buf, sizeof buf, got), ==, FERRY_PUNCH_PACKET_NONE);
  memcpy(buf,
         "\x80"
         "ferrymt",
         8);
  g_assert_cmpint(ferry_punch_packet_parse(buf, FERRY_PUNCH_PACKET_LEN, got), ==,
                  FERRY_PUNCH_PACKET_NONE);
  g_assert_cmpint(ferry_punch_packet_parse(buf, 3, got), ==, FERRY_PUNCH_PACKET_NONE);

  /* a tag differs by role, by kind and by key */
  ferry_punch_tag(key, FALSE, FALSE, t2);
  g_assert_true(memcmp(tag, t2, sizeof tag) != 0);
  ferry_punch_tag(key, TRUE, TRUE, t2);
  g_assert_true(memcmp(tag, t2, sizeof tag) != 0);
  guint8 other[FERRY_PUNCH_KEY_LEN] = {9};
  ferry_punch_tag(other, TRUE, FALSE, t2);
  g_assert_true(memcmp(tag, t2, sizeof tag) != 0);
  ferry_punch_tag(key, TRUE, FALSE, t2);
  g_assert_cmpmem(tag, sizeof tag, t2, sizeof t2);
}

static void
test_line(void)
{
  FerryPunchMapping m;
  struct sockaddr_in a;
  char buf[FERRY_PUNCH_LINE_MAX];

  g_assert_true(ferry_punch_line_parse("punch eim 198.51.100.7:40000", &m, &a));
  g_assert_cmpint(m, ==, FERRY_PUNCH_MAPPING_EIM);
  g_assert_cmpuint(ntohs(a.sin_port), ==, 40000);
  g_assert_cmpuint(ntohl(a.sin_addr.s_addr), ==, 0xC6336407u);
  ferry_punch_line_write(buf, m, &a);
  g_assert_cmpstr(buf, ==, "punch eim 198.51.100.7:40000");

  g_assert_true(ferry_punch_line_parse("punch edm 203.0.113.9", &m, &a));
  g_assert_cmpint(m, ==, FERRY_PUNCH_MAPPING_EDM);
  g_assert_cmpuint(a.sin_port, ==, 0);
  ferry_punch_line_write(buf, m, &a);
  g_assert_cmpstr(buf, ==, "punch edm 203.0.113.9");

  g_assert_true(ferry_punch_line_parse("punch none", &m, &a));
  g_assert_cmpint(m, ==, FERRY_PUNCH_MAPPING_UNKNOWN);
  ferry_punch_line_write(buf, m, &a);
  g_assert_cmpstr(buf, ==, "punch none");
  ferry_punch_line_write(buf, FERRY_PUNCH_MAPPING_EIM, NULL);
  g_assert_cmpstr(buf, ==, "punch none");

  static const char *const bad[] = {
      "punch eim 198.51.100.7",
      "punch eim 198.51.100.7:0",
      "punch eim 198.51.100.7:65536",
      "punch eim 198.51.100.7:+80",
      "punch eim 198.51.100.7:",
      "punch eim :80",
      "punch eim 198.51.100:80",
      "punch eim [::1]:80",
      "punch eim 198.51.100.7:80 ",
      "punch edm 203.0.113.9:4000",
      "punch edm ",
      "punch edm 203.0.113.999",
      "punch none ",
      "punch",
      "punch maybe 1.2.3.4",
      "punch eim 198.51.100.7:123456",
      "punch eim 198.51.100.7:04000",
      "punch eim 198.051.100.7:80",
  };
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_assert_false(ferry_punch_line_parse(bad[i], &m, &a));
  }
}

/* ---- live ---------------------------------------------------------------- */

typedef struct {
  GMainContext *ctx;
  FerryPunch *p;
  char *line;
  int fd;
  struct sockaddr_in peer;
  GByteArray *data;
  char *over;
  gint64 started_us;
} Run;

static void
on_line(FerryPunch *p, const char *line, gpointer user_data)
{
  Run *r = user_data;
  g_assert_null(r->line);
  r->line = g_strdup(line);
}

static void
on_ready(FerryPunch *p, int fd, const struct sockaddr_in *peer, gpointer user_data)
{
  Run *r = user_data;
  g_assert_cmpint(r->fd, <, 0);
  r->fd = fd;
  r->peer = *peer;
}

static void
on_datagram(FerryPunch *p, int fd, const struct sockaddr_in *peer, const guint8 *data, gsize len,
            gpointer user_data)
{
  Run *r = user_data;
  on_ready(p, fd, peer, user_data);
  r->data = g_byte_array_new();
  g_byte_array_append(r->data, data, (guint)len);
}

static void
on_over(FerryPunch *p, const char *why, gpointer user_data)
{
  Run *r = user_data;
  g_assert_null(r->over);
  r->over = g_strdup(why);
  ferry_punch_free(r->p); /* allowed from a handler */
  r->p = NULL;
}

static const FerryPunchHandlers handlers = {on_line, on_ready, on_datagram, on_over};

static void
run_init(Run *r)
{
  memset(r, 0, sizeof *r);
  r->ctx = g_main_context_default();
  r->fd = -1;
  r->started_us = g_get_monotonic_time();
}

static void
run_clear(Run *r)
{
  ferry_punch_free(r->p);
  g_free(r->line);
  g_free(r->over);
  if (r->data != NULL)
    g_byte_array_unref(r->data);
  if (r->fd >= 0)
    close(r->fd);
}

/* Iterates until *done or 10 s. */
static void
spin_until(gboolean (*done)(Run *), Run *r)
{
  gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
  while (!done(r) && g_get_monotonic_time() < end)
    if (!g_main_context_iteration(r->ctx, FALSE))
      g_usleep(1000);
}

static gboolean
has_line(Run *r)
{
  return r->line != NULL;
}

static gboolean
has_over(Run *r)
{
  return r->over != NULL;
}

static FerryStunServer *
stun_on_loopback(guint16 *port)
{
  GError *error = NULL;
  FerryStunServer *s = ferry_stun_server_new(NULL);
  g_assert_true(ferry_stun_server_listen(s, "127.0.0.1", 0, &error));
  g_assert_no_error(error);
  *port = ferry_stun_server_get_port(s);
  return s;
}

static FerryPunch *
punch_new(Run *r, gboolean sender, const char *h1, guint16 p1, const char *h2, guint16 p2)
{
  FerryPunchConfig c = {0};
  GError *error = NULL;

  c.sender = sender;
  memcpy(c.key, key, sizeof key);
  c.server_hosts[0] = h1;
  c.server_ports[0] = p1;
  c.server_hosts[1] = h2;
  c.server_ports[1] = p2;
  c.n_servers = h2 != NULL ? 2 : 1;
  c.mapping_ms = 500;
  c.peer_ms = 500;
  c.send_ms = 1500;
  FerryPunch *p = ferry_punch_new(&c, &handlers, r, &error);
  g_assert_no_error(error);
  g_assert_nonnull(p);
  return p;
}

/* ferry's STUN responder twice on 127.0.0.1: two servers for the mapping
 * test, which then finds no NAT (EIM at the socket's own address). */
typedef struct {
  FerryStunServer *s1, *s2;
  guint16 p1, p2;
} Stun2;

static void
stun2_start(Stun2 *st)
{
  st->s1 = stun_on_loopback(&st->p1);
  st->s2 = stun_on_loopback(&st->p2);
}

static void
stun2_stop(Stun2 *st)
{
  ferry_stun_server_free(st->s1);
  ferry_stun_server_free(st->s2);
}

/* A punch asking st, once its mapping test has ended (its line is r->line). */
static void
run_mapped(Run *r, const Stun2 *st, gboolean sender)
{
  run_init(r);
  r->p = punch_new(r, sender, "127.0.0.1", st->p1, "127.0.0.1", st->p2);
  spin_until(has_line, r);
  g_assert_nonnull(r->line);
}

/* Two servers (ferry's STUN responder twice) see the same 127.0.0.1:PORT:
 * no NAT maps endpoint-independently. The name "localhost" resolves. */
static void
test_mapping_eim(void)
{
  Stun2 st;
  Run r;
  FerryPunchMapping m;
  struct sockaddr_in a;

  stun2_start(&st);
  run_init(&r);
  r.p = punch_new(&r, TRUE, "127.0.0.1", st.p1, "localhost", st.p2);
  g_assert_null(r.line); /* never from inside a call */
  spin_until(has_line, &r);
  g_assert_nonnull(r.line);
  g_assert_true(g_str_has_prefix(r.line, "punch eim 127.0.0.1:"));
  g_assert_true(ferry_punch_line_parse(r.line, &m, &a));
  g_assert_cmpint(ferry_punch_get_mapping(r.p), ==, FERRY_PUNCH_MAPPING_EIM);
  g_assert_cmpuint(ferry_stun_server_get_responses(st.s1), >=, 1);
  g_assert_cmpuint(ferry_stun_server_get_responses(st.s2), >=, 1);

  /* the peer is EIM too: nothing to punch, said at once */
  g_assert_true(ferry_punch_set_peer(r.p, "punch eim 127.0.0.1:9", NULL));
  spin_until(has_over, &r);
  g_assert_nonnull(r.over);
  g_assert_nonnull(strstr(r.over, "nothing to punch"));
  g_assert_null(r.p);
  run_clear(&r);
  stun2_stop(&st);
}

/* One server answers, the other is silent: the mapping is not known after
 * mapping_ms, the line says so; with one server only, at once. A bad peer
 * line is an error; a silent peer ends the punch after peer_ms. */
static void
test_mapping_unknown(void)
{
  guint16 p1;
  FerryStunServer *s1 = stun_on_loopback(&p1);
  int silent = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  GError *error = NULL;
  Run r;

  g_assert_cmpint(bind(silent, (struct sockaddr *)&sa, sizeof sa), ==, 0);
  g_assert_cmpint(getsockname(silent, (struct sockaddr *)&sa, &sl), ==, 0);

  run_init(&r);
  r.p = punch_new(&r, FALSE, "127.0.0.1", p1, "127.0.0.1", ntohs(sa.sin_port));
  spin_until(has_line, &r);
  g_assert_cmpstr(r.line, ==, "punch none");
  g_assert_cmpint((g_get_monotonic_time() - r.started_us) / 1000, >=, 500);
  g_assert_false(ferry_punch_set_peer(r.p, "punch eim 1.2.3.4", &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "punch eim 1.2.3.4"));
  g_clear_error(&error);
  spin_until(has_over, &r);
  g_assert_nonnull(strstr(r.over, "sent no punch line"));
  run_clear(&r);

  run_init(&r);
  r.p = punch_new(&r, FALSE, "127.0.0.1", p1, NULL, 0);
  spin_until(has_line, &r);
  g_assert_cmpstr(r.line, ==, "punch none");
  g_assert_cmpint((g_get_monotonic_time() - r.started_us) / 1000, <, 400);
  run_clear(&r);
  close(silent);
  ferry_stun_server_free(s1);
}

/* The "symmetric" peer, played by this test: many sockets on 127.0.0.1,
 * each with a port nobody announced. */
typedef struct {
  int fds[256];
  guint n;
} Many;

static void
many_open(Many *m, guint n)
{
  m->n = n;
  for (guint i = 0; i < n; i++) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    m->fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    g_assert_cmpint(bind(m->fds[i], (struct sockaddr *)&a, sizeof a), ==, 0);
  }
}

static void
many_close(Many *m)
{
  for (guint i = 0; i < m->n; i++)
    close(m->fds[i]);
}

/* Reads every socket once; returns the index of one that got a packet of
 * kind (with from set), or -1. */
static int
many_take(Many *m, FerryPunchPacketKind kind, const guint8 *want_tag, struct sockaddr_in *from)
{
  int hit = -1;
  for (guint i = 0; i < m->n; i++) {
    guint8 buf[64], tag[FERRY_PUNCH_TAG_LEN];
    socklen_t sl = sizeof *from;
    ssize_t n;
    while ((n = recvfrom(m->fds[i], buf, sizeof buf, 0, (struct sockaddr *)from, &sl)) > 0) {
      if (ferry_punch_packet_parse(buf, (gsize)n, tag) == kind &&
          memcmp(tag, want_tag, sizeof tag) == 0 && hit < 0)
        hit = (int)i;
      sl = sizeof *from;
    }
  }
  return hit;
}

/* Iterates the punch's context until one of m's sockets gets a packet of
 * kind from the side `sender` (5 s at most); returns its index or -1. */
static int
many_wait(Many *m, Run *r, FerryPunchPacketKind kind, gboolean sender, struct sockaddr_in *from)
{
  guint8 tag[FERRY_PUNCH_TAG_LEN];
  gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
  int hit = -1;

  ferry_punch_tag(key, sender, kind == FERRY_PUNCH_PACKET_ACK, tag);
  while (hit < 0 && r->over == NULL && g_get_monotonic_time() < end) {
    g_main_context_iteration(r->ctx, FALSE);
    hit = many_take(m, kind, tag, from);
  }
  return hit;
}

static void
send_packet(int fd, const struct sockaddr_in *to, gboolean ack, gboolean sender,
            const guint8 *with_key)
{
  guint8 tag[FERRY_PUNCH_TAG_LEN], buf[FERRY_PUNCH_PACKET_LEN];
  ferry_punch_tag(with_key, sender, ack, tag);
  ferry_punch_packet_write(buf, ack, tag);
  g_assert_cmpint(sendto(fd, buf, sizeof buf, 0, (const struct sockaddr *)to, sizeof *to), ==,
                  sizeof buf);
}

static gboolean
has_fd(Run *r)
{
  return r->fd >= 0 || r->over != NULL;
}

/* Sender on the EIM side: it sprays 127.0.0.1's ports; one of the peer's
 * 256 sockets gets a probe, answers with an ack, and the sender hands that
 * very path over — after ignoring an ack under another key. */
static void
test_spray_sender(void)
{
  Stun2 st;
  guint8 wrong[FERRY_PUNCH_KEY_LEN] = {7};
  struct sockaddr_in from, mapped;
  FerryPunchMapping m;
  Many many;
  Run r;

  stun2_start(&st);
  many_open(&many, 256);
  run_mapped(&r, &st, TRUE);
  g_assert_true(ferry_punch_line_parse(r.line, &m, &mapped));
  g_assert_true(ferry_punch_set_peer(r.p, "punch edm 127.0.0.1", NULL));
  int hit = many_wait(&many, &r, FERRY_PUNCH_PACKET_PROBE, TRUE, &from);
  g_assert_cmpint(hit, >=, 0);
  g_assert_true(from.sin_port == mapped.sin_port); /* from the socket it announced */
  g_assert_cmpuint(ferry_punch_get_sent(r.p), >=, 1);

  send_packet(many.fds[hit], &from, TRUE, FALSE, wrong);
  for (int i = 0; i < 50; i++)
    g_main_context_iteration(r.ctx, FALSE), g_usleep(1000);
  g_assert_cmpint(r.fd, <, 0);
  send_packet(many.fds[hit], &from, TRUE, FALSE, key);
  spin_until(has_fd, &r);
  g_assert_null(r.over);
  g_assert_cmpint(r.fd, >=, 0);

  /* the socket is connected to the socket that answered */
  struct sockaddr_in at;
  socklen_t sl = sizeof at;
  g_assert_cmpint(getsockname(many.fds[hit], (struct sockaddr *)&at, &sl), ==, 0);
  g_assert_true(r.peer.sin_port == at.sin_port);
  g_assert_cmpint(send(r.fd, "quic", 4, 0), ==, 4);
  char buf[16];
  g_usleep(20000);
  g_assert_cmpint(recv(many.fds[hit], buf, sizeof buf, 0), ==, 4);
  g_assert_cmpmem(buf, 4, "quic", 4);

  run_clear(&r);
  many_close(&many);
  stun2_stop(&st);
}

static gboolean
has_data(Run *r)
{
  return r->data != NULL || r->over != NULL;
}

/* Receiver on the EIM side: it answers an ack with an ack, ignores a
 * stranger's datagram, and hands over the socket at the sender's first
 * non-punch datagram, with that datagram. A sender that never answers
 * leaves it listening (no over), until freed. */
static void
test_spray_receiver(void)
{
  Stun2 st;
  struct sockaddr_in from;
  Many many;
  Run r;

  stun2_start(&st);
  many_open(&many, 256);
  run_mapped(&r, &st, FALSE);
  g_assert_true(ferry_punch_set_peer(r.p, "punch edm 127.0.0.1", NULL));
  int hit = many_wait(&many, &r, FERRY_PUNCH_PACKET_PROBE, FALSE, &from);
  g_assert_cmpint(hit, >=, 0);

  /* a stranger first: not proven, dropped */
  int stranger = many.fds[(hit + 1) % 256];
  g_assert_cmpint(sendto(stranger, "quic", 4, 0, (struct sockaddr *)&from, sizeof from), ==, 4);
  send_packet(many.fds[hit], &from, TRUE, TRUE, key);
  g_assert_cmpint(many_wait(&many, &r, FERRY_PUNCH_PACKET_ACK, FALSE, &from), ==, hit);
  g_assert_null(r.data);

  g_assert_cmpint(
      sendto(many.fds[hit], "\xc0quic-initial", 13, 0, (struct sockaddr *)&from, sizeof from), ==,
      13);
  spin_until(has_data, &r);
  g_assert_null(r.over);
  g_assert_nonnull(r.data);
  g_assert_cmpmem(r.data->data, r.data->len, "\xc0quic-initial", 13);
  g_assert_cmpint(r.fd, >=, 0);
  run_clear(&r);

  /* nobody answers: the receiver stops sending after send_ms but stays */
  run_mapped(&r, &st, FALSE);
  g_assert_true(ferry_punch_set_peer(r.p, "punch edm 127.0.0.1", NULL));
  gint64 end = g_get_monotonic_time() + 2500 * 1000;
  while (g_get_monotonic_time() < end)
    g_main_context_iteration(r.ctx, FALSE), g_usleep(1000);
  g_assert_null(r.over);
  guint sent = ferry_punch_get_sent(r.p);
  g_assert_cmpuint(sent, ==, FERRY_PUNCH_DEFAULT_PORTS);
  run_clear(&r);

  many_close(&many);
  stun2_stop(&st);
}

/* Both EIM at different addresses: the punch probes the peer's announced
 * mapping from its one socket (here the peer is a socket of this test on
 * 127.0.0.2), and the peer's ack makes the path. */
static void
test_eim_eim(void)
{
  Stun2 st;
  struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000002)}, from;
  socklen_t sl = sizeof peer;
  char line[FERRY_PUNCH_LINE_MAX];
  Many many;
  Run r;

  stun2_start(&st);
  many_open(&many, 1);
  close(many.fds[0]);
  many.fds[0] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  g_assert_cmpint(bind(many.fds[0], (struct sockaddr *)&peer, sizeof peer), ==, 0);
  g_assert_cmpint(getsockname(many.fds[0], (struct sockaddr *)&peer, &sl), ==, 0);
  ferry_punch_line_write(line, FERRY_PUNCH_MAPPING_EIM, &peer);

  run_mapped(&r, &st, TRUE);
  g_assert_true(g_str_has_prefix(r.line, "punch eim 127.0.0.1:"));
  g_assert_true(ferry_punch_set_peer(r.p, line, NULL));
  g_assert_cmpint(many_wait(&many, &r, FERRY_PUNCH_PACKET_PROBE, TRUE, &from), ==, 0);
  send_packet(many.fds[0], &from, TRUE, FALSE, key);
  spin_until(has_fd, &r);
  g_assert_cmpint(r.fd, >=, 0);
  g_assert_true(r.peer.sin_addr.s_addr == peer.sin_addr.s_addr && r.peer.sin_port == peer.sin_port);
  g_assert_cmpuint(ferry_punch_get_sent(r.p), >=, 1);
  run_clear(&r);
  many_close(&many);
  stun2_stop(&st);
}

/* A sender nobody answers gives up after send_ms with a reason. */
static void
test_no_reply(void)
{
  Stun2 st;
  Run r;

  stun2_start(&st);
  run_mapped(&r, &st, TRUE);
  g_assert_true(ferry_punch_set_peer(r.p, "punch edm 127.0.0.1", NULL));
  spin_until(has_over, &r);
  g_assert_nonnull(r.over);
  g_assert_cmpstr(r.over, ==, "no reply within 1.5 s");
  g_assert_cmpint(r.fd, <, 0);
  run_clear(&r);
  stun2_stop(&st);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/net/punch/wire/packet", test_packet);
  g_test_add_func("/net/punch/wire/line", test_line);
  g_test_add_func("/net/punch/mapping/eim", test_mapping_eim);
  g_test_add_func("/net/punch/mapping/unknown", test_mapping_unknown);
  g_test_add_func("/net/punch/spray/sender", test_spray_sender);
  g_test_add_func("/net/punch/spray/receiver", test_spray_receiver);
  g_test_add_func("/net/punch/spray/no-reply", test_no_reply);
  g_test_add_func("/net/punch/eim-eim", test_eim_eim);
  return g_test_run();
}
