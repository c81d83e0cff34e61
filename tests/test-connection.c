/* The connection library (include/ferry/connection.h) end to end on
 * loopback, with a real `ferry serve` and, for the relayed path, a real
 * coturn whose credentials the server mints: a direct and a relayed
 * connection that move 1 MiB each way byte-exact, a wrong code, a code
 * closed after three wrong ones, a receiver that vanishes after the PAKE,
 * and a clear failure when no path exists. */
#include <signal.h>
#include <string.h>

#include <glib/gstdio.h>

#include <ferry/ferry.h>

#include "net/peer-link.h"
#include "testutil.h"

#define PAYLOAD (1024 * 1024)

/* ---- the two sides ------------------------------------------------------ */

typedef struct {
  FerryListener *listener;
  char *code;
  GPtrArray *conns;    /* FerryConnection* handed over */
  GPtrArray *failures; /* char*: attempt_failed messages */
  GError *closed_error;
  gboolean closed;
} Sender;

/* One stream's bytes: what is still to write, what came back. */
typedef struct {
  FerryStream *s;
  GByteArray *out; /* still to write */
  gsize out_off;
  gboolean finish_when_done;
  GByteArray *in;
  gboolean fin;
  gboolean closed;
  gboolean echo; /* the sender side: write back what arrives */
} Flow;

static void
flow_pump(Flow *f)
{
  while (f->out_off < f->out->len) {
    GError *error = NULL;
    gssize n =
        ferry_stream_write(f->s, f->out->data + f->out_off, f->out->len - f->out_off, &error);
    g_assert_no_error(error);
    if (n <= 0)
      return;
    f->out_off += (gsize)n;
  }
  if (f->finish_when_done) {
    f->finish_when_done = FALSE;
    ferry_stream_finish(f->s);
  }
}

static void
flow_data(FerryStream *s, const guint8 *data, gsize len, gboolean fin, gpointer user_data)
{
  Flow *f = user_data;
  g_byte_array_append(f->in, data, (guint)len);
  if (fin)
    f->fin = TRUE;
  if (f->echo) {
    g_byte_array_append(f->out, data, (guint)len);
    if (fin)
      f->finish_when_done = TRUE;
    flow_pump(f);
  }
}

static void
flow_writable(FerryStream *s, gpointer user_data)
{
  flow_pump(user_data);
}

static void
flow_closed(FerryStream *s, const GError *error, gpointer user_data)
{
  g_assert_no_error(error);
  ((Flow *)user_data)->closed = TRUE;
}

static const FerryStreamHandlers flow_handlers = {flow_data, flow_writable, flow_closed};

static Flow *
flow_new(FerryStream *s, gboolean echo)
{
  Flow *f = g_new0(Flow, 1);
  f->s = ferry_stream_ref(s);
  f->out = g_byte_array_new();
  f->in = g_byte_array_new();
  f->echo = echo;
  return f;
}

static void
flow_free(Flow *f)
{
  ferry_stream_unref(f->s);
  g_byte_array_unref(f->out);
  g_byte_array_unref(f->in);
  g_free(f);
}

static Flow *echo_flow; /* the sender's side of the one stream */

static void
on_stream_opened(FerryConnection *conn, FerryStream *s, gpointer user_data)
{
  g_assert_null(echo_flow);
  echo_flow = flow_new(s, TRUE);
  ferry_stream_set_handlers(s, &flow_handlers, echo_flow);
}

static const FerryConnectionHandlers sender_conn_handlers = {on_stream_opened, NULL};

static void
on_code(FerryListener *l, const char *code, gpointer data)
{
  ((Sender *)data)->code = g_strdup(code);
}

static void
on_connection(FerryListener *l, FerryConnection *conn, gpointer data)
{
  ferry_connection_set_handlers(conn, &sender_conn_handlers, data);
  g_ptr_array_add(((Sender *)data)->conns, conn);
}

static void
on_attempt_failed(FerryListener *l, const char *peer, const GError *error, gpointer data)
{
  g_test_message("sender: %s failed: %s", peer, error->message);
  g_ptr_array_add(((Sender *)data)->failures, g_strdup(error->message));
}

static void
on_closed(FerryListener *l, const GError *error, gpointer data)
{
  Sender *s = data;
  s->closed = TRUE;
  s->closed_error = error != NULL ? g_error_copy(error) : NULL;
}

static const FerryListenerHandlers listener_handlers = {on_code, on_connection, on_attempt_failed,
                                                        on_closed};

static void
sender_start(Sender *s, const FerryConnectOptions *o)
{
  GError *error = NULL;
  memset(s, 0, sizeof *s);
  s->conns = g_ptr_array_new_with_free_func((GDestroyNotify)ferry_connection_free);
  s->failures = g_ptr_array_new_with_free_func(g_free);
  s->listener = ferry_listener_new(o, &listener_handlers, s, &error);
  g_assert_no_error(error);
  WAIT_FOR(s->code != NULL || s->closed, 10);
  g_assert_nonnull(s->code);
}

static void
sender_clear(Sender *s)
{
  ferry_listener_free(s->listener);
  g_ptr_array_free(s->conns, TRUE);
  g_ptr_array_free(s->failures, TRUE);
  g_clear_error(&s->closed_error);
  g_free(s->code);
}

typedef struct {
  gboolean done;
  FerryConnection *conn;
  GError *error;
} Receiver;

static void
on_connected(GObject *source, GAsyncResult *result, gpointer data)
{
  Receiver *r = data;
  r->conn = ferry_connect_finish(result, &r->error);
  r->done = TRUE;
}

static void
receive(Receiver *r, const FerryConnectOptions *o, const char *code)
{
  memset(r, 0, sizeof *r);
  ferry_connect_async(o, code, NULL, on_connected, r);
}

static void
receiver_clear(Receiver *r)
{
  ferry_connection_free(r->conn);
  g_clear_error(&r->error);
}

static void
options_for(FerryConnectOptions *o, const char *url)
{
  ferry_connect_options_init(o);
  o->server_url = url;
  o->connect_timeout_ms = 15000;
}

static guint32
datagram_bytes(FerryConnection *conn)
{
  FerryConnectionPath path;
  ferry_connection_get_path(conn, &path);
  return path.datagram_bytes;
}

/* Connects, sends 1 MiB through one stream, gets it echoed back, and
 * returns the receiver's path line (free it). */
static char *
round_trip(const FerryConnectOptions *so, const FerryConnectOptions *ro, gboolean expect_relayed)
{
  Sender s;
  Receiver r;
  GError *error = NULL;
  FerryConnectionPath path;

  echo_flow = NULL;
  sender_start(&s, so);
  receive(&r, ro, s.code);
  WAIT_FOR(r.done && s.conns->len == 1, 20);
  g_assert_no_error(r.error);
  g_assert_nonnull(r.conn);
  g_assert_cmpstr(ferry_connection_get_role(r.conn), ==, "receiver");
  g_assert_cmpstr(ferry_connection_get_role(s.conns->pdata[0]), ==, "sender");

  ferry_connection_get_path(r.conn, &path);
  g_assert_cmpint(path.relayed, ==, expect_relayed);
  if (expect_relayed)
    g_assert_true(strcmp(path.local_type, "relay") == 0 || strcmp(path.remote_type, "relay") == 0);
  /* No controller named: BBR, and BBR v2 through a relay. */
  g_assert_cmpstr(path.congestion_control, ==, expect_relayed ? "bbr2" : "bbr");
  char *line = ferry_connection_path_to_string(r.conn);
  g_test_message("path: %s", line);
  g_assert_true(g_str_has_prefix(line, expect_relayed ? "relayed" : "direct: "));

  Flow *f = flow_new(ferry_connection_open_stream(r.conn, &flow_handlers, NULL, &error), FALSE);
  g_assert_no_error(error);
  ferry_stream_set_handlers(f->s, &flow_handlers, f);
  g_byte_array_set_size(f->out, PAYLOAD);
  for (gsize i = 0; i < PAYLOAD; i += 4) {
    guint32 v = g_test_rand_int();
    memcpy(f->out->data + i, &v, 4);
  }
  f->finish_when_done = TRUE;
  flow_pump(f);
  WAIT_FOR(f->fin && f->closed && echo_flow != NULL && echo_flow->closed, 20);
  g_assert_cmpuint(echo_flow->in->len, ==, PAYLOAD);
  g_assert_cmpmem(echo_flow->in->data, echo_flow->in->len, f->out->data, f->out->len);
  g_assert_cmpmem(f->in->data, f->in->len, f->out->data, f->out->len);
  if (expect_relayed) {
    /* The tests' coturn is on loopback: every hop is on this host, so
     * each side's probes let its datagrams grow past 1452 bytes (to 16000:
     * coturn reads at most 16 KiB). */
    WAIT_FOR(datagram_bytes(r.conn) > 1452 && datagram_bytes(s.conns->pdata[0]) > 1452, 5);
    g_assert_cmpuint(datagram_bytes(r.conn), <=, 32000);
  } else {
    g_assert_cmpuint(datagram_bytes(r.conn), >=, 1200);
  }

  flow_free(f);
  g_clear_pointer(&echo_flow, flow_free);
  receiver_clear(&r);
  sender_clear(&s);
  return line;
}

/* ---- tests -------------------------------------------------------------- */

static void
test_direct(void)
{
  TestServer srv;
  FerryConnectOptions o;
  test_server_start(&srv, "127.0.0.1:0", NULL);
  g_autofree char *url = test_server_url(srv.port);
  options_for(&o, url);
  g_autofree char *line = round_trip(&o, &o, FALSE);
  g_assert_nonnull(strstr(line, "host"));
  test_server_stop(&srv);
}

static void
test_relayed(void)
{
  TestServer srv;
  FerryConnectOptions o;
  TestCoturn turn;

  if (!test_coturn_start(&turn, FALSE)) {
    g_test_skip("coturn (turnserver) is not installed: apt install coturn");
    return;
  }
  g_autofree char *turn_url = g_strdup_printf("turn:127.0.0.1:%u", turn.port);
  test_server_start(&srv, "127.0.0.1:0", "--turn-server", turn_url, "--turn-static-auth-secret",
                    turn.secret, NULL);
  g_autofree char *url = test_server_url(srv.port);
  options_for(&o, url);
  o.force_relay = TRUE;
  g_autofree char *line = round_trip(&o, &o, TRUE);
  g_assert_nonnull(strstr(line, "relay"));
  test_server_stop(&srv);
  test_coturn_stop(&turn);
}

static void
wrong_code_for(const char *code, char wrong[FERRY_CODE_TEXT_SIZE])
{
  FerryCode right, other;
  g_assert_cmpint(ferry_code_parse(code, strlen(code), &right, NULL), ==, 0);
  do
    g_assert_cmpint(ferry_code_generate(&other, 3), ==, 0);
  while (strcmp(other.password, right.password) == 0);
  g_assert_cmpint(ferry_code_set_nameplate(&other, right.nameplate), ==, 0);
  g_assert_cmpint(ferry_code_format(&other, wrong, FERRY_CODE_TEXT_SIZE), >, 0);
}

static void
test_wrong_code(void)
{
  TestServer srv;
  FerryConnectOptions o;
  Sender s;
  Receiver r;
  char wrong[FERRY_CODE_TEXT_SIZE];

  test_server_start(&srv, "127.0.0.1:0", NULL);
  g_autofree char *url = test_server_url(srv.port);
  options_for(&o, url);
  sender_start(&s, &o);
  wrong_code_for(s.code, wrong); /* the same number, other words */
  receive(&r, &o, wrong);
  WAIT_FOR(r.done && s.failures->len == 1, 10);
  g_assert_null(r.conn);
  g_assert_error(r.error, FERRY_ERROR, FERRY_ERROR_AUTH);
  g_assert_nonnull(strstr(r.error->message, "the code did not match"));
  g_assert_nonnull(strstr(s.failures->pdata[0], "the code did not match"));
  g_assert_cmpuint(s.conns->len, ==, 0);
  g_assert_false(s.closed); /* one wrong code does not close it */
  receiver_clear(&r);

  /* the right code still works afterwards */
  echo_flow = NULL;
  receive(&r, &o, s.code);
  WAIT_FOR(r.done && s.conns->len == 1, 15);
  g_assert_no_error(r.error);
  receiver_clear(&r);
  sender_clear(&s);
  test_server_stop(&srv);
}

static void
test_code_closed(void)
{
  TestServer srv;
  FerryConnectOptions o;
  Sender s;
  Receiver r;
  char wrong[FERRY_CODE_TEXT_SIZE];

  test_server_start(&srv, "127.0.0.1:0", NULL);
  g_autofree char *url = test_server_url(srv.port);
  options_for(&o, url);
  sender_start(&s, &o);
  for (guint i = 1; i <= 3; i++) {
    wrong_code_for(s.code, wrong);
    receive(&r, &o, wrong);
    WAIT_FOR(r.done && s.failures->len == i, 10);
    g_assert_error(r.error, FERRY_ERROR, FERRY_ERROR_AUTH);
    receiver_clear(&r);
  }
  WAIT_FOR(s.closed, 10);
  g_assert_error(s.closed_error, FERRY_ERROR, FERRY_ERROR_AUTH);
  g_assert_cmpstr(s.closed_error->message, ==,
                  "3 wrong codes were tried: the code is closed to protect it; run again for a "
                  "new code");
  /* even the right code is refused now, by the server */
  receive(&r, &o, s.code);
  WAIT_FOR(r.done, 10);
  g_assert_error(r.error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND);
  g_assert_nonnull(strstr(r.error->message, "no sender is waiting with code"));
  receiver_clear(&r);
  sender_clear(&s);
  test_server_stop(&srv);
}

/* A receiver that runs the PAKE with the right code and vanishes. */
typedef struct {
  FerrySignalClient *sig;
  FerryPeerLink *link;
  char *nameplate;
  char *words;
  gboolean ready;
  gboolean left;
} Ghost;

static void
ghost_ready(FerryPeerLink *link, gpointer data)
{
  ((Ghost *)data)->ready = TRUE;
}

static const FerryPeerLinkHandlers ghost_handlers = {ghost_ready, NULL, NULL};

static void
ghost_message(FerrySignalClient *sig, JsonObject *msg, gpointer data)
{
  Ghost *g = data;
  const char *type = json_object_get_string_member_with_default(msg, "type", "");
  if (strcmp(type, "joined") == 0)
    g->link = ferry_peer_link_new(sig, FERRY_PAKE_RECEIVER, "s",
                                  json_object_get_string_member(msg, "peer"), g->nameplate,
                                  g->words, &ghost_handlers, g);
  else if (strcmp(type, "left") == 0)
    g->left = TRUE;
  else if (strcmp(type, "message") == 0 && g->link != NULL)
    ferry_peer_link_handle(g->link, json_object_get_member(msg, "body"));
}

static void
test_peer_vanishes(void)
{
  TestServer srv;
  FerryConnectOptions o;
  Sender s;
  Receiver r;
  Ghost g = {0};
  FerryCode code;
  GError *error = NULL;

  test_server_start(&srv, "127.0.0.1:0", NULL);
  g_autofree char *url = test_server_url(srv.port);
  options_for(&o, url);
  sender_start(&s, &o);
  g_assert_cmpint(ferry_code_parse(s.code, strlen(s.code), &code, NULL), ==, 0);
  g.nameplate = g_strdup_printf("%u", code.nameplate);
  g.words = g_strdup(code.password);
  g.sig = ferry_signal_client_new(url, &error);
  g_assert_no_error(error);
  ferry_signal_client_set_handlers(g.sig, ghost_message, NULL, &g);
  ferry_signal_client_start(g.sig);
  ferry_signal_client_join(g.sig, g.nameplate);
  WAIT_FOR(g.ready, 10);
  /* gone right after the PAKE: the sender is in the middle of ICE */
  g_clear_pointer(&g.link, ferry_peer_link_free);
  ferry_signal_client_leave(g.sig);
  WAIT_FOR(g.left, 5);
  ferry_signal_client_free(g.sig);
  WAIT_FOR(s.failures->len == 1, 10);
  g_assert_nonnull(strstr(s.failures->pdata[0], "left before the connection was set up"));
  g_assert_false(s.closed);

  /* and the sender still serves the next receiver */
  echo_flow = NULL;
  receive(&r, &o, s.code);
  WAIT_FOR(r.done && s.conns->len == 1, 15);
  g_assert_no_error(r.error);
  receiver_clear(&r);
  sender_clear(&s);
  g_free(g.nameplate);
  g_free(g.words);
  test_server_stop(&srv);
}

static void
test_no_path(void)
{
  TestServer srv;
  FerryConnectOptions o;
  Sender s;
  Receiver r;
  /* a TURN server nobody listens on, and nothing but relays allowed */
  guint port = test_free_port();
  g_autofree char *turn = g_strdup_printf("turn:user:pass@127.0.0.1:%u", port);
  const char *servers[] = {turn, NULL};

  test_server_start(&srv, "127.0.0.1:0", NULL);
  g_autofree char *url = test_server_url(srv.port);
  options_for(&o, url);
  o.force_relay = TRUE;
  o.ice_servers = servers;
  o.ice_timeout_ms = 1500;
  sender_start(&s, &o);
  gint64 t0 = g_get_monotonic_time();
  receive(&r, &o, s.code);
  WAIT_FOR(r.done && s.failures->len == 1, 12);
  g_test_message("receiver: %s (after %.1f s)", r.error->message,
                 (g_get_monotonic_time() - t0) / 1e6);
  g_assert_error(r.error, FERRY_ERROR, FERRY_ERROR_FAILED);
  g_assert_true(g_str_has_prefix(r.error->message, "no working path between the two peers"));
  /* the sender's own ICE result, or (when the receiver's ran out first)
   * the receiver's, sent to it sealed */
  const char *sf = s.failures->pdata[0];
  g_test_message("sender: %s", sf);
  g_assert_true(
      g_str_has_prefix(sf, "no working path between the two peers") ||
      g_str_has_prefix(sf, "the receiver gave up: no working path between the two peers"));
  g_assert_cmpuint(s.conns->len, ==, 0);
  receiver_clear(&r);
  sender_clear(&s);
  test_server_stop(&srv);
}

static void
test_bad_input(void)
{
  FerryConnectOptions o;
  Receiver r;
  GError *error = NULL;

  ferry_connect_options_init(&o);
  o.server_url = "http://127.0.0.1:9";
  receive(&r, &o, "7-ocean-tigre-piano");
  WAIT_FOR(r.done, 5);
  g_assert_error(r.error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_cmpstr(r.error->message, ==, "'tigre' is not a code word — did you mean 'tiger'?");
  receiver_clear(&r);

  o.congestion_control = "vegas";
  g_assert_null(ferry_listener_new(&o, &listener_handlers, NULL, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_clear_error(&error);
  o.congestion_control = NULL;
  o.force_relay = o.no_relay = TRUE;
  g_assert_null(ferry_listener_new(&o, &listener_handlers, NULL, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_clear_error(&error);
}

static void
on_queued(guint position, gpointer data)
{
  guint *last = data;
  *last = position;
}

/* max_receivers 1: a second receiver waits in line (told its place) while
 * the first is served, and gets its turn once the first connection is
 * freed. */
static void
test_queue(void)
{
  TestServer srv;
  test_server_start(&srv, "127.0.0.1:0", NULL);
  char *url = test_server_url(srv.port);
  FerryConnectOptions so, ro;
  options_for(&so, url);
  options_for(&ro, url);
  ro.connect_timeout_ms = 8000;
  Sender s;
  sender_start(&s, &so);

  Receiver first, second;
  receive(&first, &ro, s.code);
  WAIT_FOR(first.done && s.conns->len == 1, 20);
  g_assert_no_error(first.error);

  guint place = 0;
  FerryConnectOptions wo = ro;
  wo.queued = on_queued;
  wo.queued_user_data = &place;
  receive(&second, &wo, s.code);
  WAIT_FOR(place == 1, 20);
  /* Waiting longer than its connect timeout does not end it: the sender's
   * notices keep it alive. */
  gint64 until = g_get_monotonic_time() + 9 * G_USEC_PER_SEC;
  WAIT_FOR(g_get_monotonic_time() > until, 12);
  g_assert_false(second.done);
  g_assert_cmpuint(s.conns->len, ==, 1);

  /* The first is over: the second is served. */
  g_ptr_array_remove_index(s.conns, 0);
  WAIT_FOR(second.done && s.conns->len == 1, 20);
  g_assert_no_error(second.error);
  g_assert_nonnull(second.conn);

  receiver_clear(&first);
  receiver_clear(&second);
  sender_clear(&s);
  test_server_stop(&srv);
  g_free(url);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  ferry_log_init(FALSE);
  g_test_add_func("/net/connection/bad-input", test_bad_input);
  g_test_add_func("/net/connection/direct", test_direct);
  g_test_add_func("/net/connection/relayed", test_relayed);
  g_test_add_func("/net/connection/wrong-code", test_wrong_code);
  g_test_add_func("/net/connection/code-closed", test_code_closed);
  g_test_add_func("/net/connection/peer-vanishes", test_peer_vanishes);
  g_test_add_func("/net/connection/no-path", test_no_path);
  g_test_add_func("/net/connection/queue", test_queue);
  return g_test_run();
}
