/* ferry-pipe: an authenticated byte pipe between two processes.
 *
 *   ferry-pipe send             prints a code on stderr, waits for the receiver
 *   ferry-pipe receive CODE     connects to the sender holding CODE
 *
 * Both copy their stdin into one bidirectional QUIC stream and the
 * stream into their stdout, so `ferry-pipe send < file` and
 * `ferry-pipe receive CODE > copy` move a file. The server comes from
 * FERRY_SERVER (or --server URL as the first arguments). Only the public
 * API (<ferry/ferry.h>, pkg-config ferry) is used. */
#include <stdio.h>
#include <string.h>

#include <gio/gunixinputstream.h>

#include <ferry/ferry.h>

#define CHUNK (256 * 1024)

typedef struct {
  GMainLoop *loop;
  FerryListener *listener;
  FerryConnection *conn;
  FerryStream *stream;
  GInputStream *in;
  guint8 *buf;
  gsize buf_len, buf_off; /* bytes read from stdin not yet written to the stream */
  gboolean in_eof;
  gboolean reading;
  gboolean peer_fin;
  int status;
} Pipe;

static void read_stdin(Pipe *p);

/* Ends the main loop with status; message (may be NULL) goes to stderr. */
static void
quit(Pipe *p, int status, const char *message)
{
  if (message != NULL)
    fprintf(stderr, "ferry-pipe: %s\n", message);
  p->status = status;
  g_main_loop_quit(p->loop);
}

/* Writes what stdin gave to the stream; returns FALSE on a short write. */
static gboolean
flush(Pipe *p)
{
  while (p->buf_off < p->buf_len) {
    GError *error = NULL;
    gssize n = ferry_stream_write(p->stream, p->buf + p->buf_off, p->buf_len - p->buf_off, &error);
    if (n < 0) {
      quit(p, 1, error->message);
      g_error_free(error);
      return FALSE;
    }
    if (n == 0)
      return FALSE;
    p->buf_off += (gsize)n;
  }
  return TRUE;
}

static void
on_read(GObject *source, GAsyncResult *res, gpointer data)
{
  Pipe *p = data;
  GError *error = NULL;
  gssize n = g_input_stream_read_finish(p->in, res, &error);

  p->reading = FALSE;
  if (n < 0) {
    quit(p, 1, "cannot read stdin");
    g_error_free(error);
    return;
  }
  if (n == 0) {
    p->in_eof = TRUE;
    ferry_stream_finish(p->stream);
    return;
  }
  p->buf_len = (gsize)n;
  p->buf_off = 0;
  if (flush(p))
    read_stdin(p);
}

static void
read_stdin(Pipe *p)
{
  if (p->reading || p->in_eof)
    return;
  p->reading = TRUE;
  g_input_stream_read_async(p->in, p->buf, CHUNK, G_PRIORITY_DEFAULT, NULL, on_read, p);
}

static void
on_data(FerryStream *s, const guint8 *data, gsize len, gboolean fin, gpointer user_data)
{
  Pipe *p = user_data;
  if (len > 0 && fwrite(data, 1, len, stdout) != len)
    quit(p, 1, "cannot write stdout");
  if (fin) {
    fflush(stdout);
    p->peer_fin = TRUE;
  }
}

static void
on_writable(FerryStream *s, gpointer user_data)
{
  Pipe *p = user_data;
  if (!p->reading && p->buf_off < p->buf_len && flush(p))
    read_stdin(p);
}

static void
on_stream_closed(FerryStream *s, const GError *error, gpointer user_data)
{
  Pipe *p = user_data;
  /* Once both directions have ended, the peer closes the connection as
   * soon as it has read everything, which may come before its
   * acknowledgement of our last bytes: the stream then ends as reset, and
   * that is the end of a good run, not a failure. */
  if (error != NULL && !(p->peer_fin && p->in_eof))
    quit(p, 1, error->message);
  else
    quit(p, 0, NULL);
}

static const FerryStreamHandlers stream_handlers = {on_data, on_writable, on_stream_closed};

static void
use_stream(Pipe *p, FerryStream *s)
{
  p->stream = s;
  ferry_stream_set_handlers(s, &stream_handlers, p);
  read_stdin(p);
}

static void
on_stream_opened(FerryConnection *conn, FerryStream *s, gpointer user_data)
{
  Pipe *p = user_data;
  if (p->stream == NULL)
    use_stream(p, s);
}

static void
on_conn_closed(FerryConnection *conn, const GError *error, gpointer user_data)
{
  Pipe *p = user_data;
  if (error != NULL)
    quit(p, 1, error->message);
  else if (p->peer_fin && p->in_eof)
    quit(p, 0, NULL); /* the peer closed after both directions ended */
  else
    quit(p, 1, "the other side closed the connection before the end");
}

static const FerryConnectionHandlers conn_handlers = {on_stream_opened, on_conn_closed};

static void
report_path(FerryConnection *conn)
{
  if (g_getenv("FERRY_PIPE_VERBOSE") != NULL) {
    char *line = ferry_connection_path_to_string(conn);
    fprintf(stderr, "ferry-pipe: %s\n", line);
    g_free(line);
  }
}

static void
on_code(FerryListener *l, const char *code, gpointer user_data)
{
  fprintf(stderr, "%s\n", code);
}

static void
on_connection(FerryListener *l, FerryConnection *conn, gpointer user_data)
{
  Pipe *p = user_data;
  if (p->conn != NULL) {
    ferry_connection_free(conn);
    return;
  }
  p->conn = conn;
  report_path(conn);
  ferry_connection_set_handlers(conn, &conn_handlers, p);
  ferry_listener_stop(l);
}

static void
on_failed(FerryListener *l, const char *peer, const GError *error, gpointer user_data)
{
  fprintf(stderr, "ferry-pipe: %s\n", error->message);
}

static void
on_listener_closed(FerryListener *l, const GError *error, gpointer user_data)
{
  Pipe *p = user_data;
  if (error != NULL && p->conn == NULL)
    quit(p, 1, error->message);
}

static const FerryListenerHandlers listener_handlers = {on_code, on_connection, on_failed,
                                                        on_listener_closed};

static void
on_connected(GObject *source, GAsyncResult *res, gpointer user_data)
{
  Pipe *p = user_data;
  GError *error = NULL;
  p->conn = ferry_connect_finish(res, &error);
  if (p->conn == NULL) {
    quit(p, 1, error->message);
    g_error_free(error);
    return;
  }
  report_path(p->conn);
  ferry_connection_set_handlers(p->conn, &conn_handlers, p);
  FerryStream *s = ferry_connection_open_stream(p->conn, &stream_handlers, p, &error);
  if (s == NULL) {
    quit(p, 1, error->message);
    g_error_free(error);
    return;
  }
  use_stream(p, s);
}

int
main(int argc, char **argv)
{
  Pipe p = {0};
  FerryConnectOptions options;
  GError *error = NULL;
  int i = 1;

  ferry_log_init(FALSE);
  ferry_connect_options_init(&options);
  if (argc > 2 && strcmp(argv[1], "--server") == 0) {
    options.server_url = argv[2];
    i = 3;
  }
  gboolean send = argc == i + 1 && strcmp(argv[i], "send") == 0;
  gboolean receive = argc == i + 2 && strcmp(argv[i], "receive") == 0;
  if (!send && !receive) {
    fprintf(stderr, "usage: ferry-pipe [--server URL] send\n"
                    "       ferry-pipe [--server URL] receive CODE\n");
    return 2;
  }
  p.loop = g_main_loop_new(NULL, FALSE);
  p.in = g_unix_input_stream_new(0, FALSE);
  p.buf = g_malloc(CHUNK);
  if (send) {
    p.listener = ferry_listener_new(&options, &listener_handlers, &p, &error);
    if (p.listener == NULL) {
      fprintf(stderr, "ferry-pipe: %s\n", error->message);
      return 1;
    }
  } else {
    ferry_connect_async(&options, argv[i + 1], NULL, on_connected, &p);
  }
  g_main_loop_run(p.loop);
  /* let the peer see our last acknowledgements before the connection goes */
  if (p.conn != NULL)
    ferry_connection_close(p.conn, "done");
  ferry_connection_free(p.conn);
  ferry_listener_free(p.listener);
  g_object_unref(p.in);
  g_free(p.buf);
  g_main_loop_unref(p.loop);
  return p.status;
}
