/* FerryIce on loopback: two agents in one process that trickle their
 * candidates to each other through a simulated signaling channel (random
 * delays, credentials after the candidates), a direct pair taken over and
 * used with plain sockets, relayed pairs through a real coturn (UDP, TCP,
 * TLS), a clear failure when no path exists, and the URL and ice_servers
 * parsers. */
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <gnutls/crypto.h>
#include <nice/interfaces.h>

#include <ferry/error.h>

#include "net/ice.h"
#include "testutil.h"

#define N_DATAGRAMS 1000
#define GUARD_MS    15000

/* ---- a coturn of our own ------------------------------------------------ */

typedef TestCoturn Coturn;

static Coturn *coturn;

/* NULL (and the calling test skipped) without coturn. */
static Coturn *
coturn_get(void)
{
  if (coturn != NULL)
    return coturn;
  coturn = g_new0(Coturn, 1);
  if (!test_coturn_start(coturn, TRUE)) {
    g_clear_pointer(&coturn, g_free);
    g_test_skip("coturn (turnserver) is not installed: apt install coturn");
    return NULL;
  }
  return coturn;
}

static void
coturn_stop(void)
{
  if (coturn == NULL)
    return;
  test_coturn_stop(coturn);
  g_clear_pointer(&coturn, g_free);
}

/* TURN REST credentials, as `ferry serve` mints them: username
 * "EXPIRY:ID", password base64(HMAC-SHA1(secret, username)). */
static void
coturn_credentials(Coturn *c, char **username, char **password)
{
  guint8 mac[20];
  *username =
      g_strdup_printf("%" G_GINT64_FORMAT ":ice-test", g_get_real_time() / G_USEC_PER_SEC + 3600);
  g_assert_cmpint(gnutls_hmac_fast(GNUTLS_MAC_SHA1, c->secret, strlen(c->secret), *username,
                                   strlen(*username), mac),
                  ==, 0);
  *password = g_base64_encode(mac, sizeof mac);
}

/* The ice_servers a signaling server would send for url. */
static char *
coturn_ice_servers(Coturn *c, const char *url)
{
  g_autofree char *user = NULL;
  g_autofree char *pass = NULL;
  coturn_credentials(c, &user, &pass);
  return g_strdup_printf("[{\"urls\": [\"stuns:ignored.example\", \"%s\"], \"username\": \"%s\", "
                         "\"credential\": \"%s\", \"ttl\": 3600}]",
                         url, user, pass);
}

/* ---- two peers and a signaling channel ---------------------------------- */

typedef struct Peer Peer;

struct Peer {
  FerryIce *ice;
  Peer *other;
  gboolean creds_last; /* send the credentials after end-of-candidates */
  guint max_delay_ms;  /* each signaling message waits 0..max_delay_ms */
  guint n_sent;        /* candidates sent */
  guint n_early;       /* candidates that reached us before the credentials */
  gboolean eoc;        /* our end-of-candidates went out */
  gboolean have_creds; /* the other's credentials reached us */
  gboolean done;
  FerryIceState outcome;
  char *error;
  /* the relayed echo */
  guint next; /* controlling: the datagram awaited back */
  guint received;
  GSource *resend;
};

typedef enum { MSG_CREDS, MSG_CAND, MSG_EOC } MsgKind;

typedef struct {
  Peer *to;
  MsgKind kind;
  char *a, *b;
} Msg;

static guint in_flight;

static gboolean
deliver(gpointer data)
{
  Msg *m = data;
  g_autoptr(GError) error = NULL;

  in_flight--;
  if (m->to->ice != NULL) {
    switch (m->kind) {
    case MSG_CREDS:
      g_assert_true(ferry_ice_set_remote_credentials(m->to->ice, m->a, m->b, &error));
      m->to->have_creds = TRUE;
      break;
    case MSG_CAND:
      if (!m->to->have_creds)
        m->to->n_early++;
      g_assert_true(ferry_ice_add_remote_candidate(m->to->ice, m->a, &error));
      break;
    case MSG_EOC:
      ferry_ice_remote_end_of_candidates(m->to->ice);
      break;
    }
    g_assert_no_error(error);
  }
  g_free(m->a);
  g_free(m->b);
  g_free(m);
  return G_SOURCE_REMOVE;
}

static void
send_msg(Peer *to, MsgKind kind, const char *a, const char *b, guint delay_ms)
{
  Msg *m = g_new0(Msg, 1);
  m->to = to;
  m->kind = kind;
  m->a = g_strdup(a);
  m->b = g_strdup(b);
  in_flight++;
  g_timeout_add(delay_ms, deliver, m);
}

static guint
random_delay(Peer *p)
{
  return p->max_delay_ms > 0 ? (guint)g_test_rand_int_range(0, (gint32)p->max_delay_ms + 1) : 0;
}

static void
send_creds(Peer *p, guint delay)
{
  send_msg(p->other, MSG_CREDS, ferry_ice_get_local_ufrag(p->ice), ferry_ice_get_local_pwd(p->ice),
           delay);
}

static void
on_candidate(FerryIce *ice, const char *candidate, gpointer user_data)
{
  Peer *p = user_data;

  g_assert_false(p->eoc);
  if (candidate != NULL) {
    g_assert_true(g_str_has_prefix(candidate, "a=candidate:"));
    p->n_sent++;
    send_msg(p->other, MSG_CAND, candidate, NULL, random_delay(p));
    return;
  }
  p->eoc = TRUE;
  send_msg(p->other, MSG_EOC, NULL, NULL, p->max_delay_ms);
  if (p->creds_last)
    send_creds(p, p->max_delay_ms + 20);
}

static void
on_outcome(FerryIce *ice, FerryIceState state, const GError *error, gpointer user_data)
{
  Peer *p = user_data;

  g_assert_false(p->done);
  p->done = TRUE;
  p->outcome = state;
  if (state == FERRY_ICE_FAILED) {
    g_assert_nonnull(error);
    p->error = g_strdup(error->message);
  } else {
    g_assert_cmpint(state, ==, FERRY_ICE_READY);
    g_assert_null(error);
  }
}

static gboolean
guard_cb(gpointer data)
{
  *(gboolean *)data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the main context until *flag (or the guard: a failed test). */
static void
run_until(const gboolean *flag, const char *what)
{
  gboolean expired = FALSE;
  guint guard = g_timeout_add(GUARD_MS, guard_cb, &expired);
  while (!*flag && !expired)
    g_main_context_iteration(NULL, TRUE);
  if (expired)
    g_error("gave up waiting for %s after %d ms", what, GUARD_MS);
  g_source_remove(guard);
}

static gboolean both_done;
static Peer *cur_pair;

static void
on_outcome_pair(FerryIce *ice, FerryIceState state, const GError *error, gpointer user_data)
{
  on_outcome(ice, state, error, user_data);
  both_done = cur_pair[0].done && cur_pair[1].done;
}

static FerryIce *
make_ice(FerryIceConfig *cfg, Peer *p)
{
  g_autoptr(GError) error = NULL;
  FerryIce *ice = ferry_ice_new(cfg, &error);
  g_assert_no_error(error);
  g_assert_nonnull(ice);
  p->ice = ice;
  ferry_ice_set_handlers(ice, on_candidate, on_outcome_pair, p);
  return ice;
}

/* Both peers exchange everything and run to their outcome. */
static void
connect_pair(Peer p[2], FerryIceConfig cfg[2])
{
  g_autoptr(GError) error = NULL;

  p[0].other = &p[1];
  p[1].other = &p[0];
  cur_pair = p;
  both_done = FALSE;
  for (int i = 0; i < 2; i++)
    make_ice(&cfg[i], &p[i]);
  for (int i = 0; i < 2; i++) {
    if (!p[i].creds_last)
      send_creds(&p[i], random_delay(&p[i]));
    g_assert_true(ferry_ice_start(p[i].ice, &error));
    g_assert_no_error(error);
  }
  run_until(&both_done, "both ICE outcomes");
}

static gboolean freed_flag;

static void
on_freed(gpointer data)
{
  (*(guint *)data)--;
  freed_flag = *(guint *)data == 0;
}

/* Frees the agents and waits until libnice released everything (TURN
 * allocations included) and the signaling messages still in flight are
 * delivered, so nothing leaks. */
static void
free_pair(Peer p[2])
{
  guint left = 2;

  for (int i = 0; i < 2; i++)
    if (p[i].resend != NULL) {
      g_source_destroy(p[i].resend);
      g_clear_pointer(&p[i].resend, g_source_unref);
    }
  freed_flag = FALSE;
  for (int i = 0; i < 2; i++) {
    ferry_ice_free_full(p[i].ice, on_freed, &left);
    p[i].ice = NULL;
  }
  run_until(&freed_flag, "the agents to close");
  while (in_flight > 0)
    g_main_context_iteration(NULL, TRUE);
  for (int i = 0; i < 2; i++)
    g_free(p[i].error);
}

static void
loopback_config(FerryIceConfig *cfg, FerryIceRole role)
{
  ferry_ice_config_init(cfg);
  cfg->role = role;
  cfg->include_loopback = TRUE;
  cfg->timeout_ms = 10000;
}

/* Datagram i of a stream: a QUIC-like first byte (>= 0x40, so never taken
 * for STUN), a sequence number and a pattern that depends on both. */
static gsize
fill_datagram(guint8 *buf, guint i, guint salt)
{
  gsize len = 8 + (i * 37u + salt) % 1192u;
  buf[0] = 0x40 | (guint8)(i & 0x3f);
  buf[1] = (guint8)salt;
  buf[2] = (guint8)(i >> 8);
  buf[3] = (guint8)i;
  for (gsize k = 4; k < len; k++)
    buf[k] = (guint8)(i * 131u + k * 7u + salt);
  return len;
}

static void
check_datagram(const guint8 *got, gsize len, guint i, guint salt)
{
  guint8 want[1200];
  gsize want_len = fill_datagram(want, i, salt);
  g_assert_cmpmem(got, len, want, want_len);
}

/* Receives the next non-STUN datagram; counts the STUN ones skipped. */
static gssize
recv_data(GSocket *sock, guint8 *buf, gsize size, guint *stun)
{
  for (;;) {
    g_autoptr(GError) error = NULL;
    gssize n = g_socket_receive(sock, (char *)buf, size, NULL, &error);
    g_assert_no_error(error);
    if (n > 0 && buf[0] < 4) {
      (*stun)++;
      continue;
    }
    return n;
  }
}

static void
test_direct_loopback(void)
{
  Peer p[2] = {{0}};
  FerryIceConfig cfg[2];
  FerryIcePath path[2];
  GSocket *sock[2];
  g_autoptr(GSocketAddress) remote0 = NULL;
  g_autoptr(GSocketAddress) remote1 = NULL;
  GSocketAddress *remote[2];
  g_autoptr(GError) error = NULL;
  guint8 buf[2048];
  guint stun = 0;

  loopback_config(&cfg[0], FERRY_ICE_CONTROLLING);
  loopback_config(&cfg[1], FERRY_ICE_CONTROLLED);
  /* Candidates race each other and the credentials come last, so every
   * candidate waits for them. */
  for (int i = 0; i < 2; i++) {
    p[i].creds_last = TRUE;
    p[i].max_delay_ms = 30;
  }
  connect_pair(p, cfg);

  for (int i = 0; i < 2; i++) {
    g_autofree char *s = NULL;
    g_assert_cmpint(p[i].outcome, ==, FERRY_ICE_READY);
    g_assert_cmpint(ferry_ice_get_state(p[i].ice), ==, FERRY_ICE_READY);
    g_assert_cmpuint(p[i].n_sent, >, 0);
    g_assert_true(p[i].eoc);
    g_assert_true(ferry_ice_get_path(p[i].ice, &path[i], &error));
    g_assert_no_error(error);
    g_assert_cmpint(path[i].local_type, ==, FERRY_ICE_CANDIDATE_HOST);
    g_assert_cmpint(path[i].remote_type, ==, FERRY_ICE_CANDIDATE_HOST);
    g_assert_false(path[i].relayed);
    g_assert_true(path[i].direct_socket);
    g_assert_null(path[i].turn_server);
    s = ferry_ice_path_to_string(&path[i]);
    g_assert_true(g_str_has_prefix(s, "direct: host "));
    g_test_message("peer %d: %s, READY after %" G_GINT64_FORMAT " ms; %u candidates sent, %u "
                   "arrived before the credentials",
                   i, s, path[i].elapsed_ms, p[i].n_sent, p[i].n_early);
  }
  /* The candidates that came before the credentials were kept, not lost. */
  g_assert_cmpuint(p[0].n_early + p[1].n_early, >, 0);
  /* Each side's pair is the mirror of the other's. */
  g_assert_true(g_inet_address_equal(g_inet_socket_address_get_address(path[0].local),
                                     g_inet_socket_address_get_address(path[1].remote)));
  g_assert_cmpuint(g_inet_socket_address_get_port(path[0].local), ==,
                   g_inet_socket_address_get_port(path[1].remote));

  sock[0] = ferry_ice_take_socket(p[0].ice, &remote0, &error);
  g_assert_no_error(error);
  sock[1] = ferry_ice_take_socket(p[1].ice, &remote1, &error);
  g_assert_no_error(error);
  g_assert_nonnull(sock[0]);
  g_assert_nonnull(sock[1]);
  remote[0] = remote0;
  remote[1] = remote1;
  g_assert_cmpuint(g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(remote[0])), ==,
                   g_inet_socket_address_get_port(path[0].remote));
  /* Taking twice, or sending through the agent afterwards, is refused. */
  g_assert_null(ferry_ice_take_socket(p[0].ice, NULL, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_clear_error(&error);
  g_assert_false(ferry_ice_send(p[0].ice, "x", 1, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_clear_error(&error);

  for (int i = 0; i < 2; i++) {
    g_socket_set_blocking(sock[i], TRUE);
    g_socket_set_timeout(sock[i], 5);
  }
  /* 1,000 datagrams each way in lock step, byte-exact. */
  for (guint i = 0; i < N_DATAGRAMS; i++) {
    for (int dir = 0; dir < 2; dir++) {
      guint8 out[1200];
      gsize len = fill_datagram(out, i, (guint)dir);
      gssize n;
      g_assert_cmpint(g_socket_send_to(sock[dir], remote[dir], (char *)out, len, NULL, &error), ==,
                      (gssize)len);
      g_assert_no_error(error);
      n = recv_data(sock[1 - dir], buf, sizeof buf, &stun);
      check_datagram(buf, (gsize)n, i, (guint)dir);
    }
  }
  g_test_message("%u STUN keepalives skipped on the taken sockets", stun);

  /* The taken sockets outlive the agents. */
  free_pair(p);
  {
    guint8 out[1200];
    gsize len = fill_datagram(out, 7, 9);
    gssize n;
    g_assert_cmpint(g_socket_send_to(sock[0], remote[0], (char *)out, len, NULL, &error), ==,
                    (gssize)len);
    n = recv_data(sock[1], buf, sizeof buf, &stun);
    check_datagram(buf, (gsize)n, 7, 9);
  }
  for (int i = 0; i < 2; i++) {
    g_object_unref(sock[i]);
    ferry_ice_path_clear(&path[i]);
    ferry_ice_config_clear(&cfg[i]);
  }
}

/* The relayed echo: peer 0 sends datagram i, peer 1 echoes every datagram
 * back, peer 0 checks it and sends i + 1. A datagram lost on the way is
 * sent again after 500 ms. */
static void
relay_send(Peer *p, guint i, guint salt)
{
  guint8 out[1200];
  gsize len = fill_datagram(out, i, salt);
  g_autoptr(GError) error = NULL;
  g_assert_true(ferry_ice_send(p->ice, out, len, &error));
  g_assert_no_error(error);
}

static gboolean echo_done;

static gboolean
resend_cb(gpointer data)
{
  Peer *p = data;
  relay_send(p, p->next, 0);
  return G_SOURCE_CONTINUE;
}

static void
arm_resend(Peer *p)
{
  if (p->resend != NULL) {
    g_source_destroy(p->resend);
    g_source_unref(p->resend);
  }
  p->resend = g_timeout_source_new(500);
  g_source_set_callback(p->resend, resend_cb, p, NULL);
  g_source_attach(p->resend, NULL);
}

static void
on_recv_echo(FerryIce *ice, const guint8 *data, gsize len, gpointer user_data)
{
  Peer *p = user_data;
  guint i;

  g_assert_cmpuint(len, >=, 4);
  i = (guint)data[2] << 8 | data[3];
  if (p->next == G_MAXUINT) { /* the echoing side */
    check_datagram(data, len, i, 0);
    p->received++;
    relay_send(p, i, 1);
    return;
  }
  if (i != p->next)
    return; /* a duplicate after a resend */
  check_datagram(data, len, i, 1);
  p->received++;
  p->next++;
  if (p->next == N_DATAGRAMS) {
    echo_done = TRUE;
    g_source_destroy(p->resend);
    g_clear_pointer(&p->resend, g_source_unref);
    return;
  }
  relay_send(p, p->next, 0);
  arm_resend(p);
}

/* Two peers forced through coturn by the TURN URL template (%p: its
 * UDP/TCP port, %t: its TLS port), given as a signaling server would. */
/* UDP sockets of this process whose receive buffer is over 1 MiB. */
static guint
big_udp_sockets(void)
{
  GDir *dir = g_dir_open("/proc/self/fd", 0, NULL);
  guint n = 0;

  g_assert_nonnull(dir);
  for (const char *name; (name = g_dir_read_name(dir)) != NULL;) {
    int fd = atoi(name), type = 0, size = 0;
    socklen_t len = sizeof type, size_len = sizeof size;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_DGRAM &&
        getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, &size_len) == 0 && size > (1 << 20))
      n++;
  }
  g_dir_close(dir);
  return n;
}

static void
run_relay(const char *template)
{
  Coturn *c = coturn_get();
  Peer p[2] = {{0}};
  FerryIceConfig cfg[2];
  FerryIcePath path;
  FerryIceTurnServer turn;
  g_autoptr(GError) error = NULL;
  g_autofree char *url = NULL;
  g_autofree char *canon = NULL;
  gboolean tls = strstr(template, "%t") != NULL;

  if (c == NULL)
    return;
  if (tls && c->tls_port == 0) {
    g_test_skip("openssl is not installed: no certificate for a TLS TURN server");
    return;
  }
  {
    g_autofree char *port = g_strdup_printf("%u", tls ? c->tls_port : c->port);
    GString *s = g_string_new(template);
    g_string_replace(s, tls ? "%t" : "%p", port, 0);
    url = g_string_free(s, FALSE);
  }
  g_assert_true(ferry_ice_turn_server_parse(url, &turn, &error));
  canon = ferry_ice_turn_server_to_string(&turn);
  ferry_ice_turn_server_clear(&turn);

  for (int i = 0; i < 2; i++) {
    g_autofree char *json = coturn_ice_servers(c, url);
    loopback_config(&cfg[i], i == 0 ? FERRY_ICE_CONTROLLING : FERRY_ICE_CONTROLLED);
    cfg[i].force_relay = TRUE;
    g_assert_true(ferry_ice_config_add_ice_servers_json(&cfg[i], json, &error));
    g_assert_no_error(error);
    g_assert_cmpuint(cfg[i].turn_servers->len, ==, 1);
    p[i].max_delay_ms = 20;
  }
  connect_pair(p, cfg);

  for (int i = 0; i < 2; i++) {
    g_autofree char *s = NULL;
    if (p[i].outcome != FERRY_ICE_READY)
      g_error("peer %d: %s", i, p[i].error);
    g_assert_true(ferry_ice_get_path(p[i].ice, &path, &error));
    g_assert_cmpint(path.local_type, ==, FERRY_ICE_CANDIDATE_RELAY);
    g_assert_cmpint(path.remote_type, ==, FERRY_ICE_CANDIDATE_RELAY);
    g_assert_true(path.relayed);
    g_assert_false(path.direct_socket);
    g_assert_cmpstr(path.turn_server, ==, canon);
    s = ferry_ice_path_to_string(&path);
    g_assert_true(g_str_has_prefix(s, "relayed via "));
    g_test_message("peer %d: %s, READY after %" G_GINT64_FORMAT " ms", i, s, path.elapsed_ms);
    ferry_ice_path_clear(&path);
    /* A relayed pair has no socket to take: data goes through the agent. */
    g_assert_null(ferry_ice_take_socket(p[i].ice, NULL, &error));
    g_assert_no_error(error);
  }

  echo_done = FALSE;
  p[0].next = 0;
  p[1].next = G_MAXUINT;
  ferry_ice_set_recv_handler(p[0].ice, on_recv_echo, &p[0]);
  ferry_ice_set_recv_handler(p[1].ice, on_recv_echo, &p[1]);
  gint64 t0 = g_get_monotonic_time();
  relay_send(&p[0], 0, 0);
  arm_resend(&p[0]);
  run_until(&echo_done, "the relayed echo");
  gint64 t1 = g_get_monotonic_time();
  g_assert_cmpuint(p[0].received, ==, N_DATAGRAMS);
  g_assert_cmpuint(p[1].received, >=, N_DATAGRAMS);
  /* Over UDP to the relay, each agent's host socket that carries it got
   * big buffers (a burst from the relay would overflow the default); not
   * over TCP or TLS. */
  if (strstr(template, "transport=tcp") == NULL && !tls)
    g_assert_cmpuint(big_udp_sockets(), >=, 2);
  else
    g_assert_cmpuint(big_udp_sockets(), ==, 0);

  free_pair(p);
  g_test_message("echo %d ms, close %d ms", (int)((t1 - t0) / 1000),
                 (int)((g_get_monotonic_time() - t1) / 1000));
  for (int i = 0; i < 2; i++)
    ferry_ice_config_clear(&cfg[i]);
}

static void
test_relay_udp(void)
{
  run_relay("turn:127.0.0.1:%p");
}

static void
test_relay_tcp(void)
{
  run_relay("turn:127.0.0.1:%p?transport=tcp");
}

static void
test_relay_tls(void)
{
  run_relay("turns:127.0.0.1:%t?insecure=1");
}

/* ---- failures ------------------------------------------------------------ */

static guint n_local_seen;

static void
count_candidate(FerryIce *ice, const char *candidate, gpointer user_data)
{
  if (candidate != NULL)
    n_local_seen++;
}

static gboolean one_done;
static char *one_error;

static void
on_one_outcome(FerryIce *ice, FerryIceState state, const GError *error, gpointer user_data)
{
  g_assert_false(one_done);
  g_assert_cmpint(state, ==, FERRY_ICE_FAILED);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_FAILED);
  one_error = g_strdup(error->message);
  one_done = TRUE;
}

static void
on_one_freed(gpointer data)
{
  *(gboolean *)data = TRUE;
}

/* Runs one agent against a peer that exists only on paper (credentials and
 * the given candidate lines) until it fails; returns the message. */
static char *
run_alone(FerryIceConfig *cfg, const char *const *remote, gboolean eoc)
{
  g_autoptr(GError) error = NULL;
  FerryIce *ice = ferry_ice_new(cfg, &error);
  gboolean freed = FALSE;

  g_assert_no_error(error);
  n_local_seen = 0;
  one_done = FALSE;
  ferry_ice_set_handlers(ice, count_candidate, on_one_outcome, NULL);
  g_assert_true(ferry_ice_set_remote_credentials(ice, "abcd", "abcdefghijklmnopqrstuv", &error));
  for (guint i = 0; remote != NULL && remote[i] != NULL; i++)
    g_assert_true(ferry_ice_add_remote_candidate(ice, remote[i], &error));
  if (eoc)
    ferry_ice_remote_end_of_candidates(ice);
  g_assert_true(ferry_ice_start(ice, &error));
  g_assert_no_error(error);
  run_until(&one_done, "the ICE failure");
  g_assert_cmpint(ferry_ice_get_state(ice), ==, FERRY_ICE_FAILED);
  ferry_ice_free_full(ice, on_one_freed, &freed);
  run_until(&freed, "the agent to close");
  return g_steal_pointer(&one_error);
}

/* A UDP port that swallows everything and never answers, on an address
 * ICE checks from this host: its first IPv4 address other than loopback
 * (the agent then gathers no loopback, and drops loopback candidates of
 * the peer), else 127.0.0.1. Sets *address (free it) and *port. */
static GSocket *
silent_socket(char **address, guint16 *port)
{
  GSocket *s = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, NULL);
  GList *ips = nice_interfaces_get_local_ips(FALSE);
  g_autoptr(GInetAddress) ip = NULL;
  g_autoptr(GSocketAddress) any = NULL;
  g_autoptr(GSocketAddress) bound = NULL;

  for (GList *l = ips; l != NULL && ip == NULL; l = l->next) {
    GInetAddress *a = g_inet_address_new_from_string(l->data);
    if (a != NULL && g_inet_address_get_family(a) == G_SOCKET_FAMILY_IPV4 &&
        !g_inet_address_get_is_loopback(a) && !g_inet_address_get_is_link_local(a))
      ip = g_object_ref(a);
    g_clear_object(&a);
  }
  g_list_free_full(ips, g_free);
  if (ip == NULL)
    ip = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  any = g_inet_socket_address_new(ip, 0);
  g_assert_true(g_socket_bind(s, any, FALSE, NULL));
  bound = g_socket_get_local_address(s, NULL);
  *port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
  *address = g_inet_address_to_string(ip);
  g_socket_set_blocking(s, FALSE);
  return s;
}

/* Datagrams waiting on s: the agent's connectivity checks. */
static guint
checks_received(GSocket *s)
{
  guint8 buf[1500];
  guint n = 0;

  while (g_socket_receive(s, (gchar *)buf, sizeof buf, NULL, NULL) > 0)
    n++;
  return n;
}

static void
test_fails_at_timeout(void)
{
  FerryIceConfig cfg;
  guint16 port;
  g_autofree char *address = NULL;
  GSocket *silent = silent_socket(&address, &port);
  g_autofree char *cand =
      g_strdup_printf("a=candidate:1 1 UDP 2130706431 %s %u typ host", address, port);
  const char *remote[] = {cand, NULL};
  g_autofree char *msg = NULL;

  loopback_config(&cfg, FERRY_ICE_CONTROLLING);
  cfg.timeout_ms = 800;
  /* No end-of-candidates: only the timeout can end it. */
  msg = run_alone(&cfg, remote, FALSE);
  g_test_message("%s", msg);
  g_assert_true(g_str_has_prefix(msg, "no working path between the two peers within 0.8 s: "
                                      "tried "));
  g_assert_nonnull(strstr(msg, " and 1 remote (1 host)"));
  g_assert_nonnull(strstr(msg, "use a TURN server (--turn-server)"));
  g_assert_cmpuint(n_local_seen, >, 0);
  {
    g_autofree char *want = g_strdup_printf("tried %u local candidate%s (%u host)", n_local_seen,
                                            n_local_seen == 1 ? "" : "s", n_local_seen);
    g_assert_nonnull(strstr(msg, want));
  }
  /* The pair was really checked: the checks went unanswered. */
  g_assert_cmpuint(checks_received(silent), >, 0);
  g_object_unref(silent);
  ferry_ice_config_clear(&cfg);
}

static void
test_fails_after_end_of_candidates(void)
{
  FerryIceConfig cfg;
  guint16 port;
  g_autofree char *address = NULL;
  GSocket *silent = silent_socket(&address, &port);
  g_autofree char *cand =
      g_strdup_printf("a=candidate:1 1 UDP 2130706431 %s %u typ host", address, port);
  const char *remote[] = {cand, NULL};
  g_autofree char *msg = NULL;

  loopback_config(&cfg, FERRY_ICE_CONTROLLED);
  cfg.timeout_ms = 1000;
  msg = run_alone(&cfg, remote, TRUE);
  g_test_message("%s", msg);
  g_assert_true(g_str_has_prefix(msg, "no working path between the two peers"));
  g_assert_nonnull(strstr(msg, " and 1 remote (1 host)"));
  g_assert_nonnull(strstr(msg, "--turn-server"));
  /* The pair was really checked: the checks went unanswered. */
  g_assert_cmpuint(checks_received(silent), >, 0);
  g_object_unref(silent);
  ferry_ice_config_clear(&cfg);
}

static void
test_fails_without_candidates(void)
{
  FerryIceConfig cfg;
  g_autofree char *msg = NULL;

  loopback_config(&cfg, FERRY_ICE_CONTROLLING);
  cfg.timeout_ms = 600;
  msg = run_alone(&cfg, NULL, FALSE);
  g_assert_nonnull(
      strstr(msg, "and 0 remote (none); the other peer sent no candidates (is it still running?)"));
  ferry_ice_config_clear(&cfg);
}

/* A relay that cannot be had: the message says which TURN server and why. */
static char *
run_bad_relay(const char *url, const char *username, const char *password)
{
  FerryIceConfig cfg;
  g_autoptr(GError) error = NULL;
  char *msg;

  loopback_config(&cfg, FERRY_ICE_CONTROLLING);
  cfg.force_relay = TRUE;
  /* Longer than the test may take: without a relay candidate the failure
   * comes as soon as the gathering ends. */
  cfg.timeout_ms = 60000;
  g_assert_true(ferry_ice_config_add_turn(&cfg, url, username, password, &error));
  g_assert_no_error(error);
  msg = run_alone(&cfg, NULL, TRUE);
  g_test_message("%s", msg);
  g_assert_true(g_str_has_prefix(msg, "no working path between the two peers: tried 0 local "
                                      "candidates (none)"));
  ferry_ice_config_clear(&cfg);
  return msg;
}

static void
test_turn_wrong_password(void)
{
  Coturn *c = coturn_get();
  g_autofree char *user = NULL;
  g_autofree char *pass = NULL;
  g_autofree char *url = NULL;
  g_autofree char *msg = NULL;
  g_autofree char *want = NULL;

  if (c == NULL)
    return;
  coturn_credentials(c, &user, &pass);
  url = g_strdup_printf("turn:127.0.0.1:%u", c->port);
  msg = run_bad_relay(url, user, "not-the-password");
  want = g_strdup_printf("no relay candidate came from the TURN server %s: check its address, "
                         "port and credentials",
                         url);
  g_assert_nonnull(strstr(msg, want));
  g_assert_null(strstr(msg, "not-the-password"));
  g_assert_nonnull(strstr(msg, "tried 0 local candidates (none)"));
}

static void
test_turn_tls_untrusted(void)
{
  Coturn *c = coturn_get();
  g_autofree char *user = NULL;
  g_autofree char *pass = NULL;
  g_autofree char *url = NULL;
  g_autofree char *msg = NULL;

  if (c == NULL)
    return;
  if (c->tls_port == 0) {
    g_test_skip("openssl is not installed: no certificate for a TLS TURN server");
    return;
  }
  coturn_credentials(c, &user, &pass);
  /* The right name, but a self-signed certificate no CA vouches for. */
  url = g_strdup_printf("turns:127.0.0.1:%u?servername=turn.ferry.test", c->tls_port);
  msg = run_bad_relay(url, user, pass);
  g_assert_nonnull(strstr(msg, "no relay candidate came from the TURN server turns:127.0.0.1:"));
  g_assert_nonnull(strstr(msg, "(TLS with TURN server turns:127.0.0.1:"));
  g_assert_nonnull(strstr(msg, "?insecure=1 only on a network you trust"));
}

/* ---- what a peer sends is checked ---------------------------------------- */

static void
test_remote_input(void)
{
  FerryIceConfig cfg;
  g_autoptr(GError) error = NULL;
  FerryIce *ice;
  FerryIcePath path;
  gboolean freed = FALSE;
  g_autofree char *long_line = NULL;
  const char *bad[] = {
      "",
      "x",
      "candidate:1 1 UDP 1 127.0.0.1 9",
      "a=candidate:1 2 UDP 2130706431 127.0.0.1 9 typ host",
      "candidate:1 1 UDP 2130706431 peer.local 9 typ host",
      "candidate:1 1 UDP 2130706431 127.0.0.1 99999 typ host",
      "candidate:1 1 UDP 2130706431 127.0.0.1 0 typ host",
      "candidate:1 1 UDP 2130706431 127.0.0.1 9 typ bogus",
      "candidate:1 1 SCTP 2130706431 127.0.0.1 9 typ host",
      "candidate:1 1 UDP 2130706431 127.0.0.1 9 typ host raddr",
      "candidate:1 1 UDP 0 127.0.0.1 9 typ host",
      "candidate:1 1 UDP 99999999999 127.0.0.1 9 typ host",
      "candidate:1 1 UDP 1 127.0.0.1 9 typ srflx raddr nowhere rport 1",
      "candidate:f*o 1 UDP 1 127.0.0.1 9 typ host",
      "a=ice-ufrag:abcd",
  };

  loopback_config(&cfg, FERRY_ICE_CONTROLLED);
  ice = ferry_ice_new(&cfg, &error);
  g_assert_no_error(error);
  g_assert_cmpint(ferry_ice_get_state(ice), ==, FERRY_ICE_NEW);
  g_assert_cmpuint(strlen(ferry_ice_get_local_ufrag(ice)), >=, 4);
  g_assert_cmpuint(strlen(ferry_ice_get_local_pwd(ice)), >=, 22);

  /* Credentials. */
  g_assert_false(ferry_ice_set_remote_credentials(ice, "ab", "abcdefghijklmnopqrstuv", &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_clear_error(&error);
  g_assert_false(ferry_ice_set_remote_credentials(ice, "abcd", "short", &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_clear_error(&error);
  g_assert_false(ferry_ice_set_remote_credentials(ice, "ab d", "abcdefghijklmnopqrstuv", &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_clear_error(&error);
  g_assert_true(ferry_ice_set_remote_credentials(ice, "abcd", "abcdefghijklmnopqrstuv", &error));
  g_assert_true(ferry_ice_set_remote_credentials(ice, "abcd", "abcdefghijklmnopqrstuv", &error));
  g_assert_false(ferry_ice_set_remote_credentials(ice, "abce", "abcdefghijklmnopqrstuv", &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_assert_nonnull(strstr(error->message, "start the transfer again"));
  g_clear_error(&error);

  /* Candidates. */
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    if (ferry_ice_add_remote_candidate(ice, bad[i], &error))
      g_error("accepted malformed candidate '%s'", bad[i]);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "compatible ferry"));
    g_clear_error(&error);
  }
  long_line = g_strnfill(FERRY_ICE_MAX_CANDIDATE_LEN + 1, 'a');
  g_assert_false(ferry_ice_add_remote_candidate(ice, long_line, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_clear_error(&error);
  /* ICE-TCP candidates are ignored, not refused. */
  g_assert_true(ferry_ice_add_remote_candidate(
      ice, "candidate:2 1 TCP 1015022079 127.0.0.1 9 typ host tcptype active", &error));
  g_assert_no_error(error);
  /* Good lines: with or without "a=", line ends, extension attributes. */
  g_assert_true(ferry_ice_add_remote_candidate(
      ice, "a=candidate:1 1 UDP 2130706431 127.0.0.1 1 typ host", &error));
  g_assert_true(ferry_ice_add_remote_candidate(
      ice, "candidate:1 1 udp 2130706431 ::1 2 typ host generation 0\r\n", &error));
  g_assert_true(ferry_ice_add_remote_candidate(
      ice, "candidate:3 1 UDP 1694498815 192.0.2.9 3 typ srflx raddr 10.0.0.2 rport 4", &error));
  g_assert_no_error(error);
  for (guint i = 3; i < FERRY_ICE_MAX_REMOTE; i++) {
    g_autofree char *line =
        g_strdup_printf("candidate:1 1 UDP 2130706431 127.0.0.1 %u typ host", 1000 + i);
    g_assert_true(ferry_ice_add_remote_candidate(ice, line, &error));
  }
  g_assert_false(ferry_ice_add_remote_candidate(
      ice, "candidate:1 1 UDP 2130706431 127.0.0.1 999 typ host", &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_TOO_LONG);
  g_clear_error(&error);

  /* Nothing to use before READY. */
  g_assert_false(ferry_ice_get_path(ice, &path, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_clear_error(&error);
  g_assert_null(ferry_ice_take_socket(ice, NULL, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_clear_error(&error);
  g_assert_false(ferry_ice_send(ice, "x", 1, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_clear_error(&error);

  ferry_ice_free_full(ice, on_one_freed, &freed);
  run_until(&freed, "the agent to close");
  ferry_ice_config_clear(&cfg);
}

static void
test_start_twice(void)
{
  FerryIceConfig cfg;
  g_autoptr(GError) error = NULL;
  FerryIce *ice;
  gboolean freed = FALSE;

  loopback_config(&cfg, FERRY_ICE_CONTROLLING);
  ice = ferry_ice_new(&cfg, &error);
  g_assert_true(ferry_ice_start(ice, &error));
  g_assert_cmpint(ferry_ice_get_state(ice), ==, FERRY_ICE_CONNECTING);
  g_assert_false(ferry_ice_start(ice, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  /* Freed while gathering: no callback afterwards, nothing leaks. */
  ferry_ice_set_handlers(ice, NULL, on_one_outcome, NULL);
  ferry_ice_free_full(ice, on_one_freed, &freed);
  run_until(&freed, "the agent to close");
  ferry_ice_config_clear(&cfg);
}

static void
test_config_errors(void)
{
  FerryIceConfig cfg;
  g_autoptr(GError) error = NULL;

  ferry_ice_config_init(&cfg);
  cfg.force_relay = TRUE;
  g_assert_null(ferry_ice_new(&cfg, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "needs a TURN server"));
  g_clear_error(&error);

  g_assert_true(ferry_ice_config_add_turn(&cfg, "turn:u:p@127.0.0.1", NULL, NULL, &error));
  cfg.no_relay = TRUE;
  g_assert_null(ferry_ice_new(&cfg, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_clear_error(&error);

  cfg.force_relay = FALSE;
  cfg.no_relay = FALSE;
  cfg.ipv4 = FALSE;
  cfg.ipv6 = FALSE;
  g_assert_null(ferry_ice_new(&cfg, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "allow at least one"));
  ferry_ice_config_clear(&cfg);
}

/* ---- URLs and ice_servers ---------------------------------------------------- */

static void
test_turn_url_good(void)
{
  static const struct {
    const char *url;
    FerryIceTransport transport;
    const char *host;
    guint port;
    const char *user, *pass, *servername;
    gboolean insecure;
    const char *canonical;
  } cases[] = {
      {"turn:turn.example.org", FERRY_ICE_TRANSPORT_UDP, "turn.example.org", 3478, NULL, NULL, NULL,
       FALSE, "turn:turn.example.org:3478"},
      {"turn:Turn.Example.ORG:3479?transport=tcp", FERRY_ICE_TRANSPORT_TCP, "turn.example.org",
       3479, NULL, NULL, NULL, FALSE, "turn:turn.example.org:3479?transport=tcp"},
      {"turn:h?transport=UDP", FERRY_ICE_TRANSPORT_UDP, "h", 3478, NULL, NULL, NULL, FALSE,
       "turn:h:3478"},
      {"turns:turn.example.org", FERRY_ICE_TRANSPORT_TLS, "turn.example.org", 5349, NULL, NULL,
       NULL, FALSE, "turns:turn.example.org:5349"},
      {"turns:turn.example.org:443?transport=tcp", FERRY_ICE_TRANSPORT_TLS, "turn.example.org", 443,
       NULL, NULL, NULL, FALSE, "turns:turn.example.org:443"},
      {"turn:[2001:DB8::1]:3478", FERRY_ICE_TRANSPORT_UDP, "2001:db8::1", 3478, NULL, NULL, NULL,
       FALSE, "turn:[2001:db8::1]:3478"},
      {"turns:[::1]?servername=Turn.Ferry.Test&insecure=1", FERRY_ICE_TRANSPORT_TLS, "::1", 5349,
       NULL, NULL, "turn.ferry.test", TRUE,
       "turns:[::1]:5349?servername=turn.ferry.test&insecure=1"},
      {"turns:192.0.2.1:5349?insecure=0", FERRY_ICE_TRANSPORT_TLS, "192.0.2.1", 5349, NULL, NULL,
       NULL, FALSE, "turns:192.0.2.1:5349"},
      {"turn:user:p%40ss@127.0.0.1:3478", FERRY_ICE_TRANSPORT_UDP, "127.0.0.1", 3478, "user",
       "p@ss", NULL, FALSE, "turn:127.0.0.1:3478"},
      {"turn:1700000000%3Apeer:c2Vj:cmV0@[::1]:9?transport=tcp", FERRY_ICE_TRANSPORT_TCP, "::1", 9,
       "1700000000:peer", "c2Vj:cmV0", NULL, FALSE, "turn:[::1]:9?transport=tcp"},
      {"TURN://relay.example:80", FERRY_ICE_TRANSPORT_UDP, "relay.example", 80, NULL, NULL, NULL,
       FALSE, "turn:relay.example:80"},
  };

  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    FerryIceTurnServer t;
    g_autoptr(GError) error = NULL;
    g_autofree char *canon = NULL;

    if (!ferry_ice_turn_server_parse(cases[i].url, &t, &error))
      g_error("%s: %s", cases[i].url, error->message);
    g_assert_cmpint(t.transport, ==, cases[i].transport);
    g_assert_cmpstr(t.host, ==, cases[i].host);
    g_assert_cmpuint(t.port, ==, cases[i].port);
    g_assert_cmpstr(t.username, ==, cases[i].user);
    g_assert_cmpstr(t.credential, ==, cases[i].pass);
    g_assert_cmpstr(t.servername, ==, cases[i].servername);
    g_assert_cmpint(t.insecure, ==, cases[i].insecure);
    canon = ferry_ice_turn_server_to_string(&t);
    g_assert_cmpstr(canon, ==, cases[i].canonical);
    ferry_ice_turn_server_clear(&t);
  }
}

static void
test_turn_url_bad(void)
{
  static const struct {
    const char *url;
    const char *message;
  } cases[] = {
      {"http://turn.example.org",
       "'http://turn.example.org': a TURN URL starts with turn: or turns:"},
      {"stun:h", "starts with turn: or turns:"},
      {"turn:", "'' is not a host name or IP address"},
      {"turn:ho st", "is not a host name"},
      {"turn:h:0", "'0' is not a port number (1-65535)"},
      {"turn:h:70000", "'70000' is not a port number"},
      {"turn:h:12ab", "'12ab' is not a port number"},
      {"turn:h:", "'' is not a port number"},
      {"turn:2001:db8::1", "must be written in brackets, as in [2001:db8::1]:3478"},
      {"turn:[2001:db8::1", "has no closing ']'"},
      {"turn:[1.2.3.4]:3478", "'1.2.3.4' in brackets is not an IPv6 address"},
      {"turn:[::1]x", "unexpected 'x' after the IPv6 address"},
      {"turn:h?transport=sctp", "transport must be udp or tcp, not 'sctp'"},
      {"turns:h?transport=udp", "transport=udp is not possible; use turn:HOST:PORT for UDP"},
      {"turn:h?servername=x", "servername= only applies to TLS"},
      {"turn:h?insecure=1", "insecure= only applies to TLS"},
      {"turns:h?insecure=maybe", "insecure must be 1 or 0, not 'maybe'"},
      {"turns:h?servername=bad/name", "servername 'bad/name' is not a host name"},
      {"turns:h?foo=bar", "unknown option 'foo' (known: transport, servername, insecure)"},
      {"turn:h?", "nothing after '?'"},
      {"turn:user@h", "credentials in a URL are written USER:PASS@ before the host"},
      {"turn:user:@h", "the user name or password is empty"},
      {"turn:u:p%zz@h", "badly percent-encoded"},
  };

  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    FerryIceTurnServer t;
    g_autoptr(GError) error = NULL;

    if (ferry_ice_turn_server_parse(cases[i].url, &t, &error))
      g_error("accepted bad TURN URL '%s'", cases[i].url);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
    if (strstr(error->message, cases[i].message) == NULL)
      g_error("'%s': message '%s' lacks '%s'", cases[i].url, error->message, cases[i].message);
    g_assert_true(g_str_has_prefix(error->message, "TURN server '"));
    ferry_ice_turn_server_clear(&t);
  }

  /* A password never appears in a message. */
  {
    FerryIceTurnServer t;
    g_autoptr(GError) error = NULL;
    g_assert_false(ferry_ice_turn_server_parse("turn:user:hunter2@bad host", &t, &error));
    g_assert_null(strstr(error->message, "hunter2"));
    g_assert_nonnull(strstr(error->message, "'turn:bad host'"));
    ferry_ice_turn_server_clear(&t);
  }
}

static void
test_stun_url(void)
{
  static const struct {
    const char *text;
    const char *host;
    guint port;
  } good[] = {
      {"stun.example.org", "stun.example.org", 3478},
      {"stun:Stun.Example.org:19302", "stun.example.org", 19302},
      {"stun://h:1", "h", 1},
      {"[::1]:3478", "::1", 3478},
      {"127.0.0.1:5000", "127.0.0.1", 5000},
  };
  static const struct {
    const char *text;
    const char *message;
  } bad[] = {
      {"stuns:h", "STUN over TLS (stuns:) is not supported; use stun:HOST:PORT"},
      {"turn:h", "not a STUN server"},
      {"http://h", "not a STUN server"},
      {"h:0", "not a port number"},
      {"stun:u:p@h", "takes no user name or options"},
      {"stun:h?x=1", "takes no user name or options"},
      {"::1", "in brackets"},
      {"", "is not a host name"},
  };

  for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
    FerryIceStunServer s;
    g_autoptr(GError) error = NULL;
    if (!ferry_ice_stun_server_parse(good[i].text, &s, &error))
      g_error("%s: %s", good[i].text, error->message);
    g_assert_cmpstr(s.host, ==, good[i].host);
    g_assert_cmpuint(s.port, ==, good[i].port);
    ferry_ice_stun_server_clear(&s);
  }
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    FerryIceStunServer s;
    g_autoptr(GError) error = NULL;
    if (ferry_ice_stun_server_parse(bad[i].text, &s, &error))
      g_error("accepted bad STUN server '%s'", bad[i].text);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
    if (strstr(error->message, bad[i].message) == NULL)
      g_error("'%s': message '%s' lacks '%s'", bad[i].text, error->message, bad[i].message);
    ferry_ice_stun_server_clear(&s);
  }
}

static void
test_config_turn(void)
{
  FerryIceConfig cfg;
  g_autoptr(GError) error = NULL;
  FerryIceTurnServer *t;

  ferry_ice_config_init(&cfg);
  g_assert_false(ferry_ice_config_add_turn(&cfg, "turn:h", NULL, NULL, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "'turn:h:3478' needs a user name and a password"));
  g_clear_error(&error);
  g_assert_false(ferry_ice_config_add_turn(&cfg, "turn:h", "u", NULL, &error));
  g_clear_error(&error);

  /* Given credentials replace the URL's. */
  g_assert_true(ferry_ice_config_add_turn(&cfg, "turn:a:b@h", "u", "p", &error));
  t = cfg.turn_servers->pdata[0];
  g_assert_cmpstr(t->username, ==, "u");
  g_assert_cmpstr(t->credential, ==, "p");
  for (guint i = 1; i < FERRY_ICE_MAX_TURN_SERVERS; i++)
    g_assert_true(ferry_ice_config_add_turn(&cfg, "turn:a:b@h", NULL, NULL, &error));
  g_assert_no_error(error);
  g_assert_false(ferry_ice_config_add_turn(&cfg, "turn:a:b@h", NULL, NULL, &error));
  g_assert_nonnull(strstr(error->message, "at most 8 TURN servers"));
  ferry_ice_config_clear(&cfg);
}

static void
test_ice_servers_json(void)
{
  FerryIceConfig cfg;
  g_autoptr(GError) error = NULL;
  FerryIceStunServer *s;
  FerryIceTurnServer *t;
  static const struct {
    const char *json;
    const char *message;
  } bad[] = {
      {"not json", "ice_servers is not valid JSON"},
      {"{}", "ice_servers is not a JSON array"},
      {"[1]", "ice_servers[0] is not an object"},
      {"[{\"urls\": \"stun:h\"}, {}]", "ice_servers[1] has no \"urls\""},
      {"[{\"urls\": [1]}]", "ice_servers[0].urls[0] is not a string"},
      {"[{\"urls\": {}}]", "ice_servers[0].urls is neither a string nor an array"},
      {"[{\"urls\": \"turn:h\"}]",
       "ice_servers[0]: TURN server 'turn:h:3478' needs a user name and a password"},
      {"[{\"urls\": \"turn:h\", \"username\": 5, \"credential\": \"c\"}]",
       "ice_servers[0].username is not a string"},
      {"[{\"urls\": \"turn:h\", \"username\": \"u\", \"credential\": []}]",
       "ice_servers[0].credential is not a string"},
      {"[{\"urls\": \"turn:h:0\", \"username\": \"u\", \"credential\": \"c\"}]",
       "ice_servers[0]: TURN server 'turn:h:0': '0' is not a port number"},
      {"[{\"urls\": \"stun:h:x\"}]", "ice_servers[0]: STUN server 'stun:h:x'"},
  };

  ferry_ice_config_init(&cfg);
  g_assert_true(ferry_ice_config_add_ice_servers_json(
      &cfg,
      "[{\"urls\": \"stun:127.0.0.1:3478\"},"
      " {\"urls\": [\"turn:127.0.0.1:3478\", \"turns:t.example:443?transport=tcp\", "
      "\"stuns:x\", \"https://x\"], \"username\": \"1700000000:s\", \"credential\": \"c\", "
      "\"ttl\": 86400},"
      " {\"urls\": [], \"username\": null}]",
      &error));
  g_assert_no_error(error);
  g_assert_cmpuint(cfg.stun_servers->len, ==, 1);
  s = cfg.stun_servers->pdata[0];
  g_assert_cmpstr(s->host, ==, "127.0.0.1");
  g_assert_cmpuint(s->port, ==, 3478);
  g_assert_cmpuint(cfg.turn_servers->len, ==, 2);
  t = cfg.turn_servers->pdata[0];
  g_assert_cmpint(t->transport, ==, FERRY_ICE_TRANSPORT_UDP);
  g_assert_cmpstr(t->username, ==, "1700000000:s");
  g_assert_cmpstr(t->credential, ==, "c");
  t = cfg.turn_servers->pdata[1];
  g_assert_cmpint(t->transport, ==, FERRY_ICE_TRANSPORT_TLS);
  g_assert_cmpstr(t->host, ==, "t.example");
  g_assert_cmpuint(t->port, ==, 443);
  g_assert_cmpstr(t->username, ==, "1700000000:s");
  ferry_ice_config_clear(&cfg);

  /* An empty list is fine: no servers. */
  ferry_ice_config_init(&cfg);
  g_assert_true(ferry_ice_config_add_ice_servers_json(&cfg, "[]", &error));
  g_assert_cmpuint(cfg.stun_servers->len + cfg.turn_servers->len, ==, 0);
  ferry_ice_config_clear(&cfg);

  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    ferry_ice_config_init(&cfg);
    if (ferry_ice_config_add_ice_servers_json(&cfg, bad[i].json, &error))
      g_error("accepted bad ice_servers %s", bad[i].json);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
    if (strstr(error->message, bad[i].message) == NULL)
      g_error("%s: message '%s' lacks '%s'", bad[i].json, error->message, bad[i].message);
    g_clear_error(&error);
    ferry_ice_config_clear(&cfg);
  }
}

/* ---- which local addresses are gathered ---- */

typedef struct {
  gboolean eoc;
  gboolean loopback4; /* a host candidate on 127.0.0.1 */
  gboolean routable;  /* one on an address peers on other hosts can reach */
} Gathered;

static void
on_gathered(FerryIce *ice, const char *candidate, gpointer user_data)
{
  Gathered *g = user_data;
  if (candidate == NULL) {
    g->eoc = TRUE;
    return;
  }
  if (strstr(candidate, " typ host") == NULL)
    return;
  if (strstr(candidate, " 127.0.0.1 ") != NULL)
    g->loopback4 = TRUE;
  else if (strstr(candidate, " ::1 ") == NULL && strstr(candidate, " fe80:") == NULL)
    g->routable = TRUE;
}

static void
on_gathered_outcome(FerryIce *ice, FerryIceState state, const GError *error, gpointer user_data)
{
}

/* Gathers with loopback allowed and, if stun is not NULL, that STUN
 * server; returns what came out. */
static Gathered
gather_with(const char *stun)
{
  FerryIceConfig cfg;
  Gathered g = {FALSE, FALSE, FALSE};
  g_autoptr(GError) error = NULL;

  loopback_config(&cfg, FERRY_ICE_CONTROLLING);
  cfg.ipv6 = FALSE;
  if (stun != NULL)
    g_assert_true(ferry_ice_config_add_stun(&cfg, stun, &error));
  FerryIce *ice = ferry_ice_new(&cfg, &error);
  g_assert_no_error(error);
  ferry_ice_set_handlers(ice, on_gathered, on_gathered_outcome, &g);
  g_assert_true(ferry_ice_start(ice, &error));
  run_until(&g.eoc, "the end of gathering");
  ferry_ice_free(ice);
  ferry_ice_config_clear(&cfg);
  return g;
}

/* On a host with an address to meet on, 127.0.0.1 is not gathered (its
 * pairs with other hosts only time out, and hold READY back ~2 s), unless
 * the STUN server is on loopback, which only a loopback socket reaches. */
static void
test_loopback_only_where_it_helps(void)
{
  Gathered plain = gather_with(NULL);
  if (!plain.routable) {
    g_assert_true(plain.loopback4); /* nothing else to meet on */
    g_test_skip("this host has no IPv4 address besides loopback");
    return;
  }
  g_assert_false(plain.loopback4);
  /* A STUN server on loopback that never answers: gathering ends at its
   * timeout, with the host candidates known. */
  Gathered stun = gather_with("127.0.0.1:9");
  g_assert_true(stun.loopback4);
  g_assert_true(stun.routable);
}

int
main(int argc, char **argv)
{
  int rc;

  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/net/ice/turn-url/good", test_turn_url_good);
  g_test_add_func("/net/ice/turn-url/bad", test_turn_url_bad);
  g_test_add_func("/net/ice/stun-url", test_stun_url);
  g_test_add_func("/net/ice/config/turn-credentials", test_config_turn);
  g_test_add_func("/net/ice/config/ice-servers-json", test_ice_servers_json);
  g_test_add_func("/net/ice/config/contradictions", test_config_errors);
  g_test_add_func("/net/ice/remote-input-checked", test_remote_input);
  g_test_add_func("/net/ice/start-twice-and-free-while-gathering", test_start_twice);
  g_test_add_func("/net/ice/direct-loopback-takeover", test_direct_loopback);
  g_test_add_func("/net/ice/fails/at-timeout", test_fails_at_timeout);
  g_test_add_func("/net/ice/fails/after-end-of-candidates", test_fails_after_end_of_candidates);
  g_test_add_func("/net/ice/fails/peer-sent-nothing", test_fails_without_candidates);
  g_test_add_func("/net/ice/relay/udp", test_relay_udp);
  g_test_add_func("/net/ice/relay/tcp", test_relay_tcp);
  g_test_add_func("/net/ice/gather/loopback-only-where-it-helps",
                  test_loopback_only_where_it_helps);
  g_test_add_func("/net/ice/relay/tls", test_relay_tls);
  g_test_add_func("/net/ice/relay/wrong-password", test_turn_wrong_password);
  g_test_add_func("/net/ice/relay/tls-untrusted-certificate", test_turn_tls_untrusted);
  rc = g_test_run();
  coturn_stop();
  return rc;
}
