/* Connections taken over from libsoup (see relay-conn.h).
 *
 * libsoup reads a request through a buffering stream; stealing the
 * connection hands that stream over, and whatever it holds past the
 * headers is the start of the body. For a plain socket those bytes are
 * drained into `early`, the socket's fd is duplicated and libsoup's
 * stream closed, so every later read and write is one system call on the
 * fd. A TLS connection stays a GIOStream (the TLS layer is GIO's). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>

#include "server/relay-conn.h"

#define EARLY_MAX (64 * 1024)

struct _FerryRelayConn {
  int fd;            /* plain socket, or -1 */
  GIOStream *tls;    /* TLS stream, or NULL */
  GByteArray *early; /* read before the takeover, served first */
  gsize early_off;
  FerryRelayConnReady ready;
  gpointer user_data;
  GIOCondition want;
  GSource *fd_source; /* plain: one source, its fd tag changed as wanted */
  gpointer fd_tag;
  GSource *in_source; /* TLS: pollable sources, made on demand */
  GSource *out_source;
};

typedef struct {
  GSource base;
  FerryRelayConn *conn;
} FdSource;

static gboolean
fd_dispatch(GSource *source, GSourceFunc callback, gpointer user_data)
{
  FerryRelayConn *c = ((FdSource *)source)->conn;
  (void)callback;
  (void)user_data;
  if (c->ready != NULL)
    c->ready(c, c->user_data);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs fd_funcs = {NULL, NULL, fd_dispatch, NULL, NULL, NULL};

FerryRelayConn *
ferry_relay_conn_steal(SoupServerMessage *msg, GError **error)
{
  /* libsoup keeps a TLS connection's GTlsConnection under its own
   * stream: tell the two apart by the scheme the request arrived with. */
  const char *scheme = g_uri_get_scheme(soup_server_message_get_uri(msg));
  gboolean plain = g_ascii_strcasecmp(scheme, "https") != 0;
  GIOStream *stream;

  g_object_ref(msg);
  stream = soup_server_message_steal_connection(msg);
  g_object_unref(msg);
  if (stream == NULL) {
    g_set_error_literal(error, G_IO_ERROR, G_IO_ERROR_CLOSED, "the connection is gone");
    return NULL;
  }
  FerryRelayConn *c = g_new0(FerryRelayConn, 1);
  c->fd = -1;
  c->early = g_byte_array_new();
  if (!plain) {
    /* Its buffering stream stays in front and serves what it holds first. */
    c->tls = stream;
    return c;
  }
  GInputStream *in = g_io_stream_get_input_stream(stream);
  if (G_IS_POLLABLE_INPUT_STREAM(in)) {
    guint8 buf[16384];
    gssize n;
    while (c->early->len < EARLY_MAX &&
           (n = g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(in), buf,
                                                         sizeof buf, NULL, NULL)) > 0)
      g_byte_array_append(c->early, buf, (guint)n);
  }
  GSocket *s = g_object_get_data(G_OBJECT(stream), "GSocket");
  if (s != NULL)
    c->fd = fcntl(g_socket_get_fd(s), F_DUPFD_CLOEXEC, 0);
  int saved = errno;
  g_io_stream_close(stream, NULL, NULL); /* libsoup's fd; the duplicate stays */
  g_object_unref(stream);
  if (c->fd < 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(saved), "cannot take the socket over: %s",
                s == NULL ? "libsoup did not give it" : g_strerror(saved));
    g_byte_array_unref(c->early);
    g_free(c);
    return NULL;
  }
  g_unix_set_fd_nonblocking(c->fd, TRUE, NULL);
  c->fd_source = g_source_new(&fd_funcs, sizeof(FdSource));
  ((FdSource *)c->fd_source)->conn = c;
  g_source_attach(c->fd_source, g_main_context_get_thread_default());
  return c;
}

static void
drop_source(GSource **source)
{
  if (*source == NULL)
    return;
  g_source_destroy(*source);
  g_source_unref(*source);
  *source = NULL;
}

void
ferry_relay_conn_free(FerryRelayConn *c)
{
  if (c == NULL)
    return;
  drop_source(&c->fd_source);
  drop_source(&c->in_source);
  drop_source(&c->out_source);
  if (c->fd >= 0)
    close(c->fd);
  if (c->tls != NULL) {
    g_io_stream_close(c->tls, NULL, NULL);
    g_object_unref(c->tls);
  }
  g_byte_array_unref(c->early);
  g_free(c);
}

static gssize
gio_result(gssize n, GError *error)
{
  if (n >= 0)
    return n;
  gboolean again = g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  g_clear_error(&error);
  return again ? FERRY_RELAY_IO_AGAIN : FERRY_RELAY_IO_ERROR;
}

gssize
ferry_relay_conn_read(FerryRelayConn *c, guint8 *buf, gsize len)
{
  if (c->early_off < c->early->len) {
    gsize n = MIN(len, c->early->len - c->early_off);
    memcpy(buf, c->early->data + c->early_off, n);
    c->early_off += n;
    return (gssize)n;
  }
  if (c->fd >= 0) {
    gssize n;
    do
      n = recv(c->fd, buf, len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
      return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? FERRY_RELAY_IO_AGAIN : FERRY_RELAY_IO_ERROR;
  }
  GError *error = NULL;
  GInputStream *in = g_io_stream_get_input_stream(c->tls);
  gssize n =
      g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(in), buf, len, NULL, &error);
  return gio_result(n, error);
}

gssize
ferry_relay_conn_write(FerryRelayConn *c, const guint8 *buf, gsize len)
{
  if (c->fd >= 0) {
    gssize n;
    do
      n = send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
      return n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? FERRY_RELAY_IO_AGAIN : FERRY_RELAY_IO_ERROR;
  }
  GError *error = NULL;
  GOutputStream *out = g_io_stream_get_output_stream(c->tls);
  gssize n = g_pollable_output_stream_write_nonblocking(G_POLLABLE_OUTPUT_STREAM(out), buf, len,
                                                        NULL, &error);
  return gio_result(n, error);
}

void
ferry_relay_conn_shutdown_write(FerryRelayConn *c)
{
  if (c->fd >= 0)
    shutdown(c->fd, SHUT_WR);
  else
    g_output_stream_close(g_io_stream_get_output_stream(c->tls), NULL, NULL);
}

void
ferry_relay_conn_set_ready(FerryRelayConn *c, FerryRelayConnReady ready, gpointer user_data)
{
  c->ready = ready;
  c->user_data = user_data;
}

static gboolean
tls_ready(GObject *stream, gpointer user_data)
{
  FerryRelayConn *c = user_data;
  /* One-shot: the next want() makes a new source if still wanted. */
  if (G_IS_POLLABLE_INPUT_STREAM(stream))
    drop_source(&c->in_source);
  else
    drop_source(&c->out_source);
  GIOCondition want = c->want;
  c->want = 0;
  if (c->ready != NULL)
    c->ready(c, c->user_data);
  else
    ferry_relay_conn_want(c, want);
  return G_SOURCE_REMOVE;
}

void
ferry_relay_conn_want(FerryRelayConn *c, GIOCondition cond)
{
  cond &= G_IO_IN | G_IO_OUT;
  if (c->fd_source != NULL) {
    /* Bytes read before the takeover are ready at once. */
    gboolean early = (cond & G_IO_IN) && c->early_off < c->early->len;
    g_source_set_ready_time(c->fd_source, early ? 0 : -1);
    if (cond == 0 && c->fd_tag != NULL) {
      g_source_remove_unix_fd(c->fd_source, c->fd_tag);
      c->fd_tag = NULL;
    } else if (cond != 0 && c->fd_tag == NULL) {
      c->fd_tag = g_source_add_unix_fd(c->fd_source, c->fd, cond);
    } else if (cond != 0 && cond != c->want) {
      g_source_modify_unix_fd(c->fd_source, c->fd_tag, cond);
    }
    c->want = cond;
    return;
  }
  c->want = cond;
  if ((cond & G_IO_IN) && c->in_source == NULL) {
    c->in_source = g_pollable_input_stream_create_source(
        G_POLLABLE_INPUT_STREAM(g_io_stream_get_input_stream(c->tls)), NULL);
    g_source_set_callback(c->in_source, (GSourceFunc)(void (*)(void))tls_ready, c, NULL);
    g_source_attach(c->in_source, g_main_context_get_thread_default());
  } else if (!(cond & G_IO_IN)) {
    drop_source(&c->in_source);
  }
  if ((cond & G_IO_OUT) && c->out_source == NULL) {
    c->out_source = g_pollable_output_stream_create_source(
        G_POLLABLE_OUTPUT_STREAM(g_io_stream_get_output_stream(c->tls)), NULL);
    g_source_set_callback(c->out_source, (GSourceFunc)(void (*)(void))tls_ready, c, NULL);
    g_source_attach(c->out_source, g_main_context_get_thread_default());
  } else if (!(cond & G_IO_OUT)) {
    drop_source(&c->out_source);
  }
}
