/* The signaling client against a real `ferry serve`: round trips, the
 * server's errors passed on verbatim, reconnect with backoff, giving up,
 * resume after a cut connection, and a server that stops answering. */
#include <signal.h>
#include <string.h>

#include <gio/gio.h>

#include <ferry/error.h>

#include "testutil.h"

#include "net/signal-client.h"

/* What one client saw. */
typedef struct {
  GPtrArray *messages; /* JSON texts */
  GArray *states;      /* FerrySignalClientState */
  GArray *attempts;
  char *last_error;
} Seen;

static void
seen_init(Seen *s)
{
  s->messages = g_ptr_array_new_with_free_func(g_free);
  s->states = g_array_new(FALSE, FALSE, sizeof(int));
  s->attempts = g_array_new(FALSE, FALSE, sizeof(guint));
  s->last_error = NULL;
}

static void
seen_clear(Seen *s)
{
  g_ptr_array_free(s->messages, TRUE);
  g_array_free(s->states, TRUE);
  g_array_free(s->attempts, TRUE);
  g_free(s->last_error);
}

static void
on_message(FerrySignalClient *client, JsonObject *msg, gpointer user_data)
{
  Seen *s = user_data;
  JsonNode *node = json_node_new(JSON_NODE_OBJECT);
  json_node_set_object(node, msg);
  g_ptr_array_add(s->messages, json_to_string(node, FALSE));
  json_node_unref(node);
}

static void
on_state(FerrySignalClient *client, FerrySignalClientState state, guint attempt,
         const GError *error, gpointer user_data)
{
  Seen *s = user_data;
  int st = state;
  g_array_append_val(s->states, st);
  g_array_append_val(s->attempts, attempt);
  if (error != NULL) {
    g_free(s->last_error);
    s->last_error = g_strdup(error->message);
  }
}

static const char *
find_message(Seen *s, const char *needle)
{
  for (guint i = 0; i < s->messages->len; i++)
    if (strstr(s->messages->pdata[i], needle) != NULL)
      return s->messages->pdata[i];
  return NULL;
}

static gboolean
has_state(Seen *s, FerrySignalClientState want, guint min_count)
{
  guint n = 0;
  for (guint i = 0; i < s->states->len; i++)
    if (g_array_index(s->states, int, i) == (int)want)
      n++;
  return n >= min_count;
}

static FerrySignalClient *
client_new(const char *url, Seen *seen)
{
  GError *error = NULL;
  FerrySignalClient *c = ferry_signal_client_new(url, &error);
  g_assert_no_error(error);
  seen_init(seen);
  ferry_signal_client_set_handlers(c, on_message, on_state, seen);
  return c;
}

static void
test_url_normalise(void)
{
  static const struct {
    const char *in, *out;
  } good[] = {
      {"http://example.org", "ws://example.org/v1"},
      {"https://example.org/", "wss://example.org/v1"},
      {"ws://127.0.0.1:8080", "ws://127.0.0.1:8080/v1"},
      {"wss://[::1]:9/custom", "wss://[::1]:9/custom"},
      {"HTTPS://Example.org:443", "wss://example.org:443/v1"},
  };
  static const char *bad[] = {"",        "example.org", "ftp://example.org",
                              "http://", "http//x",     "mailto:a@b"};
  for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
    GError *error = NULL;
    char *out = ferry_signal_url_normalise(good[i].in, &error);
    g_assert_no_error(error);
    char *lower = g_ascii_strdown(out, -1);
    g_assert_cmpstr(lower, ==, good[i].out);
    g_free(lower);
    g_free(out);
  }
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    GError *error = NULL;
    g_assert_null(ferry_signal_url_normalise(bad[i], &error));
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "server"));
    g_error_free(error);
  }
}

static void
test_round_trip_and_verbatim_errors(void)
{
  TestServer srv;
  Seen a, b;
  test_server_start(&srv, "127.0.0.1:0", NULL);
  char *url = test_server_url(srv.port);
  FerrySignalClient *sender = client_new(url, &a);
  FerrySignalClient *receiver = client_new(url, &b);

  /* queued before the connection exists: must go out once connected */
  ferry_signal_client_claim(sender, 0);
  ferry_signal_client_start(sender);
  WAIT_FOR(find_message(&a, "\"claimed\""), 5);
  g_assert_cmpstr(ferry_signal_client_get_peer(sender), ==, "s");
  g_assert_nonnull(find_message(&a, "\"nameplate\":\"1\""));

  ferry_signal_client_start(receiver);
  ferry_signal_client_join(receiver, "424242");
  WAIT_FOR(find_message(&b, "\"error\""), 5);
  /* the server's sentence, unchanged */
  g_assert_nonnull(find_message(&b, "no sender is waiting with code 424242-"));

  ferry_signal_client_join(receiver, "1");
  WAIT_FOR(find_message(&b, "\"joined\""), 5);
  g_assert_cmpstr(ferry_signal_client_get_peer(receiver), ==, "r1");
  ferry_signal_client_send(receiver, "s", json_from_string("{\"pake\":\"AAEC\"}", NULL));
  WAIT_FOR(find_message(&a, "\"message\""), 5);
  g_assert_nonnull(
      find_message(&a, "\"type\":\"message\",\"from\":\"r1\",\"body\":{\"pake\":\"AAEC\"}}"));

  /* a deliberate close ends the membership at once */
  ferry_signal_client_close(receiver);
  WAIT_FOR(find_message(&a, "\"peer-left\""), 5);

  ferry_signal_client_free(sender);
  ferry_signal_client_free(receiver);
  seen_clear(&a);
  seen_clear(&b);
  g_free(url);
  test_server_stop(&srv);
}

static void
test_reconnect_with_backoff(void)
{
  guint port = test_free_port();
  char *url = test_server_url(port);
  char *listen = g_strdup_printf("127.0.0.1:%u", port);
  Seen a;
  FerrySignalClient *c = client_new(url, &a);
  TestServer srv;

  ferry_signal_client_set_retry(c, 20, 50, 400);
  ferry_signal_client_start(c);
  WAIT_FOR(has_state(&a, FERRY_SIGNAL_CLIENT_RECONNECTING, 3), 10);
  g_assert_nonnull(strstr(a.last_error, "cannot connect to the server at ws://127.0.0.1:"));
  g_assert_false(has_state(&a, FERRY_SIGNAL_CLIENT_CONNECTED, 1));

  test_server_start(&srv, listen, NULL);
  WAIT_FOR(has_state(&a, FERRY_SIGNAL_CLIENT_CONNECTED, 1), 10);
  /* attempts counted up while retrying */
  guint max_attempt = 0;
  for (guint i = 0; i < a.attempts->len; i++)
    max_attempt = MAX(max_attempt, g_array_index(a.attempts, guint, i));
  g_assert_cmpuint(max_attempt, >=, 3);

  ferry_signal_client_free(c);
  seen_clear(&a);
  test_server_stop(&srv);
  g_free(url);
  g_free(listen);
}

static void
test_gives_up(void)
{
  char *url = test_server_url(test_free_port());
  Seen a;
  FerrySignalClient *c = client_new(url, &a);

  ferry_signal_client_set_retry(c, 2, 20, 40);
  ferry_signal_client_start(c);
  WAIT_FOR(has_state(&a, FERRY_SIGNAL_CLIENT_CLOSED, 1), 10);
  g_assert_nonnull(strstr(a.last_error, "gave up after 3 attempts"));
  g_assert_nonnull(strstr(a.last_error, url + strlen("http://")));

  ferry_signal_client_free(c);
  seen_clear(&a);
  g_free(url);
}

static void
test_refusal_verbatim(void)
{
  TestServer srv;
  Seen a, b;
  test_server_start(&srv, "127.0.0.1:0", "--ip-connect-rate", "1", NULL);
  char *url = test_server_url(srv.port);
  FerrySignalClient *first = client_new(url, &a);
  FerrySignalClient *second = client_new(url, &b);

  ferry_signal_client_start(first);
  WAIT_FOR(has_state(&a, FERRY_SIGNAL_CLIENT_CONNECTED, 1), 5);
  ferry_signal_client_set_retry(second, 0, 10, 10);
  ferry_signal_client_start(second);
  WAIT_FOR(has_state(&b, FERRY_SIGNAL_CLIENT_CLOSED, 1), 5);
  g_assert_nonnull(strstr(b.last_error, "refused: too many connections from your address"));

  ferry_signal_client_free(first);
  ferry_signal_client_free(second);
  seen_clear(&a);
  seen_clear(&b);
  g_free(url);
  test_server_stop(&srv);
}

/* A TCP proxy whose connections the test can cut, as a network blink
 * would. */
typedef struct {
  GSocketService *service;
  guint port;
  guint upstream;
  GPtrArray *streams; /* GIOStream, both ends of every proxied connection */
} Proxy;

static gboolean
proxy_incoming(GSocketService *service, GSocketConnection *conn, GObject *source, gpointer data)
{
  Proxy *p = data;
  GSocketClient *client = g_socket_client_new();
  g_socket_client_set_enable_proxy(client, FALSE);
  GSocketConnection *up =
      g_socket_client_connect_to_host(client, "127.0.0.1", (guint16)p->upstream, NULL, NULL);
  g_object_unref(client);
  if (up == NULL)
    return TRUE;
  g_ptr_array_add(p->streams, g_object_ref(conn));
  g_ptr_array_add(p->streams, up);
  g_io_stream_splice_async(G_IO_STREAM(conn), G_IO_STREAM(up), G_IO_STREAM_SPLICE_NONE,
                           G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  return TRUE;
}

static void
proxy_start(Proxy *p, guint upstream)
{
  GError *error = NULL;
  p->service = g_socket_service_new();
  p->upstream = upstream;
  p->streams = g_ptr_array_new_with_free_func(g_object_unref);
  GInetAddress *lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  GSocketAddress *addr = g_inet_socket_address_new(lo, 0);
  GSocketAddress *effective = NULL;
  g_socket_listener_add_address(G_SOCKET_LISTENER(p->service), addr, G_SOCKET_TYPE_STREAM,
                                G_SOCKET_PROTOCOL_TCP, NULL, &effective, &error);
  g_assert_no_error(error);
  p->port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(effective));
  g_object_unref(effective);
  g_object_unref(addr);
  g_object_unref(lo);
  g_signal_connect(p->service, "incoming", G_CALLBACK(proxy_incoming), p);
  g_socket_service_start(p->service);
}

static void
proxy_cut(Proxy *p)
{
  for (guint i = 0; i < p->streams->len; i++)
    g_io_stream_close(p->streams->pdata[i], NULL, NULL);
  g_ptr_array_set_size(p->streams, 0);
}

static void
proxy_stop(Proxy *p)
{
  proxy_cut(p);
  g_socket_service_stop(p->service);
  g_socket_listener_close(G_SOCKET_LISTENER(p->service));
  g_object_unref(p->service);
  g_ptr_array_free(p->streams, TRUE);
}

static void
test_resume_after_cut(void)
{
  TestServer srv;
  Proxy proxy;
  Seen a, b;
  test_server_start(&srv, "127.0.0.1:0", NULL);
  proxy_start(&proxy, srv.port);
  char *direct = test_server_url(srv.port);
  char *via = test_server_url(proxy.port);
  FerrySignalClient *sender = client_new(direct, &a);
  FerrySignalClient *receiver = client_new(via, &b);
  ferry_signal_client_set_retry(receiver, 10, 50, 200);

  ferry_signal_client_start(sender);
  ferry_signal_client_claim(sender, 0);
  WAIT_FOR(find_message(&a, "\"claimed\""), 5);
  ferry_signal_client_start(receiver);
  ferry_signal_client_join(receiver, "1");
  WAIT_FOR(find_message(&b, "\"joined\""), 5);
  WAIT_FOR(find_message(&a, "\"peer-joined\""), 5);

  proxy_cut(&proxy);
  WAIT_FOR(has_state(&b, FERRY_SIGNAL_CLIENT_RECONNECTING, 1), 5);
  ferry_signal_client_send(sender, "r1", json_from_string("\"sent while you were away\"", NULL));
  /* and the receiver writes while disconnected: queued, sent after resume */
  ferry_signal_client_send(receiver, "s", json_from_string("\"written while away\"", NULL));

  WAIT_FOR(find_message(&b, "\"resumed\""), 10);
  WAIT_FOR(find_message(&b, "sent while you were away"), 5);
  WAIT_FOR(find_message(&a, "written while away"), 5);
  g_assert_cmpstr(ferry_signal_client_get_peer(receiver), ==, "r1");
  g_assert_null(find_message(&a, "\"peer-left\""));
  g_assert_true(has_state(&b, FERRY_SIGNAL_CLIENT_CONNECTED, 2));

  ferry_signal_client_free(sender);
  ferry_signal_client_free(receiver);
  seen_clear(&a);
  seen_clear(&b);
  proxy_stop(&proxy);
  g_free(direct);
  g_free(via);
  test_server_stop(&srv);
}

static void
test_detects_silent_server(void)
{
  TestServer srv;
  Seen a;
  test_server_start(&srv, "127.0.0.1:0", NULL);
  char *url = test_server_url(srv.port);
  FerrySignalClient *c = client_new(url, &a);
  ferry_signal_client_set_keepalive(c, 200);
  ferry_signal_client_set_retry(c, 50, 50, 100);

  ferry_signal_client_start(c);
  ferry_signal_client_claim(c, 0);
  WAIT_FOR(find_message(&a, "\"claimed\""), 5);

  /* The server freezes: TCP stays up, nothing answers. */
  kill(atoi(g_subprocess_get_identifier(srv.proc)), SIGSTOP);
  WAIT_FOR(has_state(&a, FERRY_SIGNAL_CLIENT_RECONNECTING, 1), 5);
  g_assert_nonnull(strstr(a.last_error, "stopped answering"));
  kill(atoi(g_subprocess_get_identifier(srv.proc)), SIGCONT);
  WAIT_FOR(find_message(&a, "\"resumed\""), 15);
  g_assert_cmpstr(ferry_signal_client_get_peer(c), ==, "s");

  ferry_signal_client_free(c);
  seen_clear(&a);
  g_free(url);
  test_server_stop(&srv);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/net/signal-client/url-normalise", test_url_normalise);
  g_test_add_func("/net/signal-client/round-trip-and-verbatim-errors",
                  test_round_trip_and_verbatim_errors);
  g_test_add_func("/net/signal-client/reconnect-with-backoff", test_reconnect_with_backoff);
  g_test_add_func("/net/signal-client/gives-up", test_gives_up);
  g_test_add_func("/net/signal-client/refusal-verbatim", test_refusal_verbatim);
  g_test_add_func("/net/signal-client/resume-after-cut", test_resume_after_cut);
  g_test_add_func("/net/signal-client/detects-silent-server", test_detects_silent_server);
  return g_test_run();
}
