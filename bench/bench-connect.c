/* bench-connect: an authenticated connection through a code, then bytes.
 *
 *   bench-connect [OPTIONS] send            prints "code CODE" on stdout, waits
 *                                           for one receiver, sends --bytes
 *   bench-connect [OPTIONS] receive CODE    connects, reads until the end
 *
 * The sender opens one stream on the authenticated connection and writes
 * --bytes of application data into it (0: only the connection); the
 * receiver measures what the user of libferry sees:
 *   connect   from calling ferry_connect_async() with the code to the
 *             authenticated FerryConnection handed over (PAKE over the
 *             server, sealed ICE exchange, ICE checks, QUIC handshake,
 *             channel binding); the path reports ICE's own share;
 *   transfer  application bytes from the first to the last (fin), in MB/s
 *             (10^6 bytes per second), and the CPU seconds the process
 *             spent meanwhile (every thread, libferry's QUIC thread too).
 * The receiver prints one "result key=value ..." line on stdout and the
 * path line (ferry_connection_path_to_string) as "path ..."; the sender
 * prints "sender key=value ..." when its stream has closed. Only the
 * public API (<ferry/ferry.h>) is used, as examples/ferry-pipe does.
 *
 * Options: --server URL (default $FERRY_SERVER), --force-relay, --no-relay,
 * --bytes N (sender; default 1 GiB), --cc bbr|cubic|reno|bbr2,
 * --timeout S (give up after S seconds; default 120). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <ferry/ferry.h>

#define BLOCK (1024 * 1024)

typedef struct {
  GMainLoop *loop;
  gboolean sender;
  guint64 bytes; /* sender: to send */
  FerryListener *listener;
  FerryConnection *conn;
  FerryStream *stream;
  guint8 *block;
  guint64 sent;
  gboolean finished;
  /* receiver */
  gint64 connect_start_us, connected_us, first_us, last_us;
  guint64 received;
  double cpu_start, cpu_end;
  gboolean reported;
  int status;
} Bench;

/* CPU seconds (user + system) of the whole process so far. */
static double
cpu_seconds(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void
quit(Bench *b, int status, const char *message)
{
  if (message != NULL)
    fprintf(stderr, "bench-connect: %s\n", message);
  if (b->status == 0)
    b->status = status;
  g_main_loop_quit(b->loop);
}

static gboolean
on_timeout(gpointer data)
{
  quit(data, 1, "timed out: no connection or not every byte within --timeout seconds");
  return G_SOURCE_REMOVE;
}

/* ---- the sender --------------------------------------------------------- */

/* Writes until the stream's buffer is full or every byte is taken. The
 * same block goes out again and again, by reference (the zero-copy write a
 * program sending its own buffers would use). */
static void
pump(Bench *b)
{
  while (b->sent < b->bytes) {
    GError *error = NULL;
    gsize want = (gsize)MIN((guint64)BLOCK, b->bytes - b->sent);
    GBytes *piece = g_bytes_new_static(b->block, want);
    gboolean taken = ferry_stream_write_bytes(b->stream, piece, &error);
    g_bytes_unref(piece);
    if (error != NULL) {
      quit(b, 1, error->message);
      g_error_free(error);
      return;
    }
    if (!taken)
      return;
    b->sent += (guint64)want;
  }
  if (!b->finished) {
    b->finished = TRUE;
    ferry_stream_finish(b->stream);
  }
}

static void
on_sender_data(FerryStream *s, const guint8 *data, gsize len, gboolean fin, gpointer user_data)
{
}

static void
on_writable(FerryStream *s, gpointer user_data)
{
  pump(user_data);
}

static void
on_sender_stream_closed(FerryStream *s, const GError *error, gpointer user_data)
{
  Bench *b = user_data;
  b->cpu_end = cpu_seconds();
  if (error != NULL) {
    quit(b, 1, error->message);
    return;
  }
  printf("sender bytes=%" G_GUINT64_FORMAT " cpu_s=%.3f\n", b->sent, b->cpu_end - b->cpu_start);
  fflush(stdout);
  quit(b, 0, NULL);
}

static const FerryStreamHandlers sender_stream_handlers = {on_sender_data, on_writable,
                                                           on_sender_stream_closed};

static void
on_conn_closed(FerryConnection *conn, const GError *error, gpointer user_data)
{
  Bench *b = user_data;
  if (b->reported || (b->finished && error == NULL))
    quit(b, 0, NULL); /* every byte was through: how it ends does not matter */
  else
    quit(b, 1, error != NULL ? error->message : "the other side closed the connection early");
}

static const FerryConnectionHandlers sender_conn_handlers = {NULL, on_conn_closed};

static void
on_code(FerryListener *l, const char *code, gpointer user_data)
{
  printf("code %s\n", code);
  fflush(stdout);
}

static void
on_connection(FerryListener *l, FerryConnection *conn, gpointer user_data)
{
  Bench *b = user_data;
  GError *error = NULL;

  if (b->conn != NULL) {
    ferry_connection_free(conn);
    return;
  }
  b->conn = conn;
  ferry_listener_stop(l);
  char *line = ferry_connection_path_to_string(conn);
  fprintf(stderr, "bench-connect: sender path: %s\n", line);
  g_free(line);
  ferry_connection_set_handlers(conn, &sender_conn_handlers, b);
  b->cpu_start = cpu_seconds();
  b->stream = ferry_connection_open_stream(conn, &sender_stream_handlers, b, &error);
  if (b->stream == NULL) {
    quit(b, 1, error->message);
    g_error_free(error);
    return;
  }
  pump(b);
}

static void
on_attempt_failed(FerryListener *l, const char *peer, const GError *error, gpointer user_data)
{
  quit(user_data, 1, error->message);
}

static void
on_listener_closed(FerryListener *l, const GError *error, gpointer user_data)
{
  Bench *b = user_data;
  if (error != NULL && b->conn == NULL)
    quit(b, 1, error->message);
}

static const FerryListenerHandlers listener_handlers = {on_code, on_connection, on_attempt_failed,
                                                        on_listener_closed};

/* ---- the receiver ------------------------------------------------------- */

static void
report(Bench *b)
{
  FerryConnectionPath path;
  double connect_ms = (double)(b->connected_us - b->connect_start_us) / 1000.0;
  double secs = (double)(b->last_us - b->first_us) / 1e6;

  ferry_connection_get_path(b->conn, &path);
  char *line = ferry_connection_path_to_string(b->conn);
  printf("path %s\n", line);
  g_free(line);
  /* ICE's share is measured by the library from its start to the
   * selected pair; the rest is the PAKE and the sealed exchange over the
   * server before it, and the QUIC handshake and binding after it. */
  printf("result relayed=%d connect_ms=%.1f lib_connect_ms=%" G_GINT64_FORMAT
         " ice_ms=%" G_GINT64_FORMAT " other_ms=%.1f bytes=%" G_GUINT64_FORMAT
         " secs=%.4f mbps=%.1f cpu_s=%.3f first_byte_ms=%.1f rtt_us=%" G_GUINT64_FORMAT "\n",
         path.relayed ? 1 : 0, connect_ms, path.connect_ms, path.ice_ms,
         connect_ms - (double)path.ice_ms, b->received, secs,
         secs > 0 ? (double)b->received / secs / 1e6 : 0.0, b->cpu_end - b->cpu_start,
         b->first_us > 0 ? (double)(b->first_us - b->connected_us) / 1000.0 : 0.0, path.rtt_us);
  fflush(stdout);
  b->reported = TRUE;
}

static void
on_receiver_data(FerryStream *s, const guint8 *data, gsize len, gboolean fin, gpointer user_data)
{
  Bench *b = user_data;
  if (len > 0 && b->first_us == 0) {
    b->first_us = g_get_monotonic_time();
    b->cpu_start = cpu_seconds();
  }
  b->received += len;
  if (fin) {
    b->last_us = g_get_monotonic_time();
    b->cpu_end = cpu_seconds();
    if (b->first_us == 0)
      b->first_us = b->last_us;
    report(b);
    ferry_stream_finish(s);
  }
}

static void
on_receiver_stream_closed(FerryStream *s, const GError *error, gpointer user_data)
{
  Bench *b = user_data;
  if (b->reported)
    quit(b, 0, NULL);
  else
    quit(b, 1, error != NULL ? error->message : "the stream ended before its last byte");
}

static const FerryStreamHandlers receiver_stream_handlers = {on_receiver_data, NULL,
                                                             on_receiver_stream_closed};

static void
on_stream_opened(FerryConnection *conn, FerryStream *s, gpointer user_data)
{
  Bench *b = user_data;
  if (b->stream != NULL) {
    ferry_stream_reset(s, 1);
    return;
  }
  b->stream = s;
  ferry_stream_set_handlers(s, &receiver_stream_handlers, b);
}

static const FerryConnectionHandlers receiver_conn_handlers = {on_stream_opened, on_conn_closed};

static void
on_connected(GObject *source, GAsyncResult *res, gpointer user_data)
{
  Bench *b = user_data;
  GError *error = NULL;

  b->conn = ferry_connect_finish(res, &error);
  b->connected_us = g_get_monotonic_time();
  if (b->conn == NULL) {
    quit(b, 1, error->message);
    g_error_free(error);
    return;
  }
  ferry_connection_set_handlers(b->conn, &receiver_conn_handlers, b);
}

int
main(int argc, char **argv)
{
  Bench b = {0};
  FerryConnectOptions options;
  GError *error = NULL;
  char *server = NULL, *cc = NULL;
  gboolean force_relay = FALSE, no_relay = FALSE;
  gint64 bytes = 1024 * 1024 * 1024;
  gint timeout_s = 120;
  GOptionEntry entries[] = {
      {"server", 0, 0, G_OPTION_ARG_STRING, &server, "the ferry serve to meet at", "URL"},
      {"force-relay", 0, 0, G_OPTION_ARG_NONE, &force_relay, "relayed paths only", NULL},
      {"no-relay", 0, 0, G_OPTION_ARG_NONE, &no_relay, "never through a TURN server", NULL},
      {"bytes", 0, 0, G_OPTION_ARG_INT64, &bytes, "bytes to send (sender; 0: connect only)", "N"},
      {"cc", 0, 0, G_OPTION_ARG_STRING, &cc, "congestion controller", "NAME"},
      {"timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s, "give up after S seconds", "S"},
      {NULL}};
  GOptionContext *ctx = g_option_context_new("send | receive CODE");

  g_option_context_add_main_entries(ctx, entries, NULL);
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "bench-connect: %s; see bench-connect --help\n", error->message);
    return 2;
  }
  g_option_context_free(ctx);
  b.sender = argc == 2 && strcmp(argv[1], "send") == 0;
  gboolean receive = argc == 3 && strcmp(argv[1], "receive") == 0;
  if ((!b.sender && !receive) || bytes < 0 || timeout_s <= 0) {
    fprintf(stderr, "usage: bench-connect [OPTIONS] send | receive CODE (see --help)\n");
    return 2;
  }

  ferry_log_init(FALSE);
  ferry_connect_options_init(&options);
  options.server_url = server;
  options.force_relay = force_relay;
  options.no_relay = no_relay;
  options.congestion_control = cc;
  b.bytes = (guint64)bytes;
  b.loop = g_main_loop_new(NULL, FALSE);
  g_timeout_add_seconds((guint)timeout_s, on_timeout, &b);

  if (b.sender) {
    b.block = g_malloc(BLOCK);
    for (gsize i = 0; i < BLOCK; i += sizeof(guint32)) {
      guint32 r = g_random_int();
      memcpy(b.block + i, &r, sizeof r);
    }
    b.listener = ferry_listener_new(&options, &listener_handlers, &b, &error);
    if (b.listener == NULL) {
      fprintf(stderr, "bench-connect: %s\n", error->message);
      return 1;
    }
  } else {
    b.connect_start_us = g_get_monotonic_time();
    ferry_connect_async(&options, argv[2], NULL, on_connected, &b);
  }
  g_main_loop_run(b.loop);

  if (b.conn != NULL)
    ferry_connection_close(b.conn, "done");
  ferry_connection_free(b.conn);
  ferry_listener_free(b.listener);
  g_free(b.block);
  g_free(server);
  g_free(cc);
  g_main_loop_unref(b.loop);
  return b.status;
}
