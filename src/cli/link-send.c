/* ferry send --link: see link.h.
 *
 * A producer thread turns the scanned paths into the upload's bytes (the
 * file itself, or a tar of everything; sealed when --encrypt) and writes
 * them into a pipe; libsoup streams the pipe to PUT /r/NAME on the main
 * thread with the exact Content-Length, which the scan gives in advance.
 * The PUT's answer comes only when the downloads are over; meanwhile a
 * second request follows the relay's status stream (§10.5) to show the
 * downloader's progress. A file that changes size while it is read stops
 * the upload short, so the downloader sees a cut transfer, never a mixed
 * file. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include <gio/gunixinputstream.h>
#include <glib-unix.h>
#include <libsoup/soup.h>

#include "commands.h"
#include "core/linkcrypt.h"
#include "core/tar.h"
#include "link.h"
#include "progress.h"

#define PRODUCE_CHUNK (1024 * 1024)

typedef struct {
  FerryEntryType type;
  char *path; /* as scanned: starts with the root's name */
  char *link;
  const char *source_dir; /* owned by LinkSend.dirs */
  guint64 size;
  guint32 mode;
  gint64 mtime;
} Item;

typedef struct {
  CliSettings *s;
  CliOutput *out;
  GMainLoop *loop;
  GCancellable *cancel;
  GPtrArray *items; /* Item * */
  GPtrArray *dirs;  /* char *: source directories */
  gboolean folder;  /* a tar of everything, not one file as it is */
  guint64 plain_size, upload_size;
  guint8 key[FERRY_LINK_KEY_BYTES];
  char *name;       /* the relay NAME */
  char *link;       /* what the receiver gets, with #k= when encrypted */
  char *upload_url; /* the PUT's URL */
  char *status_url; /* the status stream's URL */
  int fds[2];       /* the pipe: producer writes [1], libsoup reads [0] */
  GThread *producer;
  GMutex lock;
  GError *produce_error; /* under lock */
  SoupSession *session;
  guint64 delivered;
  guint64 downloads_done;
  gint64 started_us;
  gboolean accepted; /* the server took the upload: the link was given */
  gboolean sending;  /* a download started */
  gboolean interrupted;
  int status;
} LinkSend;

static void
item_free(gpointer p)
{
  Item *it = p;
  g_free(it->path);
  g_free(it->link);
  g_free(it);
}

/* ---- what is sent ------------------------------------------------------------ */

/* A name for the relay: 8 random characters, a dash, and the first root's
 * name made of [A-Za-z0-9._-]. The random part keeps links from being
 * guessed and two uploads of one name apart. */
static char *
relay_name(const char *root, gboolean many)
{
  static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
  GString *n = g_string_new(NULL);
  for (int i = 0; i < 8; i++)
    g_string_append_c(n, alphabet[g_random_int_range(0, (gint32)sizeof alphabet - 1)]);
  g_string_append_c(n, '-');
  const char *base = many ? "files" : root;
  for (const char *p = base; *p != '\0' && n->len < 60; p++) {
    char c = *p;
    gboolean ok = g_ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
    if (ok)
      g_string_append_c(n, c);
    else if (n->str[n->len - 1] != '_')
      g_string_append_c(n, '_');
  }
  if (n->str[n->len - 1] == '-')
    g_string_append(n, "file");
  return g_string_free(n, FALSE);
}

/* Scans paths into st->items; the tar or file size follows. */
static gboolean
scan(LinkSend *st, char **paths, GError **error)
{
  FerryScanner *sc = ferry_scanner_new((const char *const *)paths, error);
  if (sc == NULL)
    return FALSE;
  const FerryEntry *e;
  int rc;
  while ((rc = ferry_scanner_next(sc, &e)) == 1) {
    Item *it = g_new0(Item, 1);
    it->type = e->type;
    it->path = g_strdup(e->path);
    it->link = g_strdup(e->link_target);
    it->size = e->size;
    it->mode = e->mode;
    it->mtime = e->mtime_ns / 1000000000;
    const char *dir = NULL;
    for (guint i = 0; i < st->dirs->len && dir == NULL; i++)
      if (strcmp(st->dirs->pdata[i], e->source_dir) == 0)
        dir = st->dirs->pdata[i];
    if (dir == NULL) {
      dir = g_strdup(e->source_dir);
      g_ptr_array_add(st->dirs, (gpointer)dir);
    }
    it->source_dir = dir;
    g_ptr_array_add(st->items, it);
  }
  guint n_issues = 0;
  const FerryScanIssue *issues = ferry_scanner_issues(sc, &n_issues);
  for (guint i = 0; i < n_issues; i++)
    cli_output_warn(st->out, "skipped %s: %s", issues[i].path, issues[i].reason);
  if (n_issues > 0 && !st->s->skip_errors) {
    ferry_set_error(error, FERRY_ERR_IO,
                    "%u entries cannot be sent (above): fix them, or pass --skip-errors to "
                    "send the rest",
                    n_issues);
    ferry_scanner_free(sc);
    return FALSE;
  }
  ferry_scanner_free(sc);
  if (rc < 0)
    return ferry_set_error(error, rc, "the scan stopped: %s", ferry_strerror(rc));
  if (st->items->len == 0)
    return ferry_set_error(error, FERRY_ERR_NOT_FOUND, "nothing to send");

  const Item *first = st->items->pdata[0];
  st->folder = !(st->items->len == 1 && first->type == FERRY_ENTRY_FILE);
  if (!st->folder) {
    st->plain_size = first->size;
  } else {
    st->plain_size = 2 * FERRY_TAR_BLOCK;
    for (guint i = 0; i < st->items->len; i++) {
      const Item *it = st->items->pdata[i];
      FerryTarEntry te = {it->path, FERRY_TAR_FILE, it->size, it->mode, it->mtime, it->link};
      te.type = it->type == FERRY_ENTRY_DIR       ? FERRY_TAR_DIR
                : it->type == FERRY_ENTRY_SYMLINK ? FERRY_TAR_SYMLINK
                                                  : FERRY_TAR_FILE;
      st->plain_size += ferry_tar_entry_size(&te);
    }
  }
  st->upload_size = st->s->encrypt ? ferry_link_sealed_size(st->plain_size) : st->plain_size;
  st->name = relay_name(first->path, paths[1] != NULL);
  return TRUE;
}

/* ---- the producer thread ------------------------------------------------------ */

typedef struct {
  LinkSend *st;
  FerryLinkCipher *cipher;
  GByteArray *buf;
} Producer;

/* Writes the buffer into the pipe (non-blocking), waiting for room while
 * the upload is not cancelled: a stopped upload never leaves this thread
 * blocked. */
static gboolean
flush(Producer *p, GError **error)
{
  gsize at = 0;
  while (at < p->buf->len) {
    if (g_cancellable_is_cancelled(p->st->cancel))
      return ferry_set_error(error, FERRY_ERR_STATE, "the upload was stopped");
    ssize_t n = write(p->st->fds[1], p->buf->data + at, p->buf->len - at);
    if (n < 0 && errno == EAGAIN) {
      struct pollfd pfd = {p->st->fds[1], POLLOUT, 0};
      poll(&pfd, 1, 200);
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return ferry_set_error(error, FERRY_ERR_STATE, "the upload stopped (%s)", g_strerror(errno));
    at += (gsize)n;
  }
  g_byte_array_set_size(p->buf, 0);
  return TRUE;
}

static gboolean
put(Producer *p, const guint8 *data, gsize len, GError **error)
{
  if (p->cipher != NULL) {
    if (!ferry_link_cipher_feed(p->cipher, data, len, p->buf, error))
      return FALSE;
  } else {
    g_byte_array_append(p->buf, data, (guint)len);
  }
  return p->buf->len < PRODUCE_CHUNK || flush(p, error);
}

/* Sends exactly it->size bytes of the file, or fails naming the change. */
static gboolean
put_file(Producer *p, const Item *it, GError **error)
{
  int fd = ferry_entry_open(it->source_dir, it->path, error);
  if (fd < 0)
    return FALSE;
  guint8 *block = g_malloc(PRODUCE_CHUNK);
  guint64 left = it->size;
  gboolean ok = TRUE;
  while (ok) {
    ssize_t n = read(fd, block, left > 0 ? MIN(left, PRODUCE_CHUNK) : 1);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      ok = ferry_set_error(error, FERRY_ERR_IO, "cannot read %s: %s", it->path, g_strerror(errno));
    } else if (n == 0 && left > 0) {
      ok = ferry_set_error(error, FERRY_ERR_CORRUPT,
                           "%s shrank while it was being sent: the upload was stopped so that "
                           "nobody gets a mixed file; send it again when it is settled",
                           it->path);
    } else if (n > 0 && left == 0) {
      ok = ferry_set_error(error, FERRY_ERR_CORRUPT,
                           "%s grew while it was being sent: the upload was stopped so that "
                           "nobody gets a mixed file; send it again when it is settled",
                           it->path);
    } else if (n == 0) {
      break;
    } else {
      left -= (guint64)n;
      ok = put(p, block, (gsize)n, error);
    }
  }
  g_free(block);
  close(fd);
  return ok;
}

static gboolean
produce(Producer *p, GError **error)
{
  LinkSend *st = p->st;
  if (!st->folder)
    return put_file(p, st->items->pdata[0], error);
  for (guint i = 0; i < st->items->len; i++) {
    const Item *it = st->items->pdata[i];
    FerryTarEntry te = {it->path, FERRY_TAR_FILE, it->size, it->mode, it->mtime, it->link};
    te.type = it->type == FERRY_ENTRY_DIR       ? FERRY_TAR_DIR
              : it->type == FERRY_ENTRY_SYMLINK ? FERRY_TAR_SYMLINK
                                                : FERRY_TAR_FILE;
    GByteArray *h = g_byte_array_new();
    ferry_tar_write_header(h, &te);
    gboolean ok = put(p, h->data, h->len, error);
    g_byte_array_unref(h);
    if (!ok || (te.type == FERRY_TAR_FILE && !put_file(p, it, error)))
      return FALSE;
    GByteArray *pad = g_byte_array_new();
    ferry_tar_write_padding(pad, te.size);
    ok = pad->len == 0 || put(p, pad->data, pad->len, error);
    g_byte_array_unref(pad);
    if (!ok)
      return FALSE;
  }
  GByteArray *end = g_byte_array_new();
  ferry_tar_write_end(end);
  gboolean ok = put(p, end->data, end->len, error);
  g_byte_array_unref(end);
  return ok;
}

static gpointer
producer_main(gpointer data)
{
  LinkSend *st = data;
  Producer p = {st, NULL, g_byte_array_sized_new(PRODUCE_CHUNK + FERRY_LINK_SEALED)};
  GError *error = NULL;
  gboolean ok = TRUE;

  if (st->s->encrypt)
    ok = (p.cipher = ferry_link_cipher_new(st->key, TRUE, 0, &error)) != NULL;
  ok = ok && produce(&p, &error);
  if (ok && p.cipher != NULL)
    ok = ferry_link_cipher_finish(p.cipher, p.buf, &error);
  ok = ok && flush(&p, &error);
  if (!ok) {
    g_mutex_lock(&st->lock);
    st->produce_error = error;
    g_mutex_unlock(&st->lock);
  }
  close(st->fds[1]);
  st->fds[1] = -1;
  ferry_link_cipher_free(p.cipher);
  g_byte_array_unref(p.buf);
  return NULL;
}

/* ---- the requests -------------------------------------------------------------- */

/* The server's base URL (http or https, no path) from --server. */
static char *
base_url(const char *server, GError **error)
{
  g_autoptr(GUri) uri = g_uri_parse(server, G_URI_FLAGS_NONE, NULL);
  const char *scheme = uri != NULL ? g_uri_get_scheme(uri) : NULL;
  const char *http = NULL;
  if (scheme != NULL &&
      (g_ascii_strcasecmp(scheme, "http") == 0 || g_ascii_strcasecmp(scheme, "ws") == 0))
    http = "http";
  else if (scheme != NULL &&
           (g_ascii_strcasecmp(scheme, "https") == 0 || g_ascii_strcasecmp(scheme, "wss") == 0))
    http = "https";
  if (http == NULL || g_uri_get_host(uri) == NULL) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "the server '%s' is not an http://, https://, ws:// or wss:// URL", server);
    return NULL;
  }
  g_autoptr(GUri) base = g_uri_build(G_URI_FLAGS_NONE, http, NULL, g_uri_get_host(uri),
                                     g_uri_get_port(uri), "", NULL, NULL);
  return g_uri_to_string(base);
}

static int
status_for_http(guint code)
{
  switch (code) {
  case SOUP_STATUS_REQUEST_TIMEOUT:
    return FERRY_EXIT_TIMED_OUT;
  case SOUP_STATUS_BAD_GATEWAY:
    return FERRY_EXIT_PEER_LOST;
  default:
    return FERRY_EXIT_FAILURE;
  }
}

/* One line of the relay's status stream. */
static void
on_status_line(LinkSend *st, const char *line)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  if (!json_parser_load_from_data(parser, line, -1, NULL) ||
      !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
    return;
  JsonObject *o = json_node_get_object(json_parser_get_root(parser));
  const char *state = json_object_get_string_member_with_default(o, "state", "");
  if (strcmp(state, "sending") == 0 && !st->sending) {
    st->sending = TRUE;
    st->started_us = g_get_monotonic_time(); /* the rate counts from the first download */
  }
  guint64 delivered = (guint64)json_object_get_int_member_with_default(o, "delivered", 0);
  guint64 started = (guint64)json_object_get_int_member_with_default(o, "downloads_started", 0);
  st->downloads_done = (guint64)json_object_get_int_member_with_default(o, "downloads_done", 0);
  JsonBuilder *b = cli_output_event(st->out, "progress");
  if (b != NULL) {
    cli_json_add_string(b, "state", state);
    json_builder_set_member_name(b, "delivered");
    json_builder_add_int_value(b, (gint64)delivered);
    json_builder_set_member_name(b, "total");
    json_builder_add_int_value(b, (gint64)st->upload_size);
    cli_output_emit(st->out, b);
  } else if (strcmp(state, "sending") == 0 && delivered != st->delivered) {
    g_autofree char *got = cli_format_bytes(delivered);
    g_autofree char *all = cli_format_bytes(st->upload_size);
    cli_output_say(st->out, "downloading: %s of %s (%u started)", got, all, (guint)started);
  }
  st->delivered = delivered;
}

typedef struct {
  LinkSend *st;
  GDataInputStream *in;
} StatusReader;

static void
on_status_read(GObject *source, GAsyncResult *result, gpointer user_data)
{
  StatusReader *r = user_data;
  gsize len = 0;
  char *line = g_data_input_stream_read_line_finish_utf8(r->in, result, &len, NULL);
  if (line == NULL) {
    g_object_unref(r->in);
    g_free(r);
    return;
  }
  on_status_line(r->st, line);
  g_free(line);
  g_data_input_stream_read_line_async(r->in, G_PRIORITY_DEFAULT, r->st->cancel, on_status_read, r);
}

static void
on_status_sent(GObject *source, GAsyncResult *result, gpointer user_data)
{
  LinkSend *st = user_data;
  SoupMessage *msg = soup_session_get_async_result_message(SOUP_SESSION(source), result);
  GInputStream *in = soup_session_send_finish(SOUP_SESSION(source), result, NULL);
  if (in == NULL)
    return;
  /* Any answer is read to its end (never closed unread: libsoup would
   * block on it); lines that are not status objects are ignored, so an
   * older server without the status stream costs nothing. */
  (void)msg;
  StatusReader *r = g_new0(StatusReader, 1);
  r->st = st;
  r->in = g_data_input_stream_new(in);
  g_object_unref(in);
  g_data_input_stream_read_line_async(r->in, G_PRIORITY_DEFAULT, st->cancel, on_status_read, r);
}

/* The upload's answer: code and body, or error when there is none. Takes
 * body and error. */
static void
put_done(LinkSend *st, guint code, GBytes *body, GError *error)
{
  g_mutex_lock(&st->lock);
  GError *produce_error = g_steal_pointer(&st->produce_error);
  g_mutex_unlock(&st->lock);

  if (st->interrupted) {
    cli_output_fail(st->out, FERRY_EXIT_INTERRUPTED,
                    "interrupted: the upload was stopped and the link no longer works; send "
                    "again for a new link");
    st->status = FERRY_EXIT_INTERRUPTED;
  } else if (produce_error != NULL && produce_error->code != FERRY_ERROR_STATE) {
    /* a file that changed or cannot be read: the server only saw a cut */
    st->status =
        produce_error->code == FERRY_ERROR_CORRUPT ? FERRY_EXIT_VERIFY : FERRY_EXIT_LOCAL_FILE;
    cli_output_fail(st->out, st->status, "%s", produce_error->message);
  } else if (body == NULL) {
    st->status = code == 0 ? FERRY_EXIT_NO_SERVER : FERRY_EXIT_FAILURE;
    cli_output_fail(st->out, st->status,
                    "the upload to %s failed: %s; check the server address and that it runs "
                    "with --relay-secret",
                    st->s->server, error->message);
  } else if (code != SOUP_STATUS_OK) {
    g_autofree char *text = g_strndup(g_bytes_get_data(body, NULL), g_bytes_get_size(body));
    g_strstrip(text);
    st->status = status_for_http(code);
    if (code == SOUP_STATUS_UNAUTHORIZED)
      cli_output_fail(st->out, st->status,
                      "the server refused the upload (HTTP 401): %s; give its relay secret with "
                      "--relay-token or FERRY_RELAY_TOKEN",
                      text);
    else
      cli_output_fail(st->out, st->status, "the server ended the upload (HTTP %u): %s", code, text);
  } else {
    double secs = (g_get_monotonic_time() - st->started_us) / 1e6;
    g_autofree char *size = cli_format_bytes(st->plain_size);
    g_autofree char *rate = cli_format_rate(secs > 0 ? st->upload_size / secs : 0);
    JsonBuilder *b = cli_output_event(st->out, "finished");
    if (b != NULL) {
      json_builder_set_member_name(b, "bytes");
      json_builder_add_int_value(b, (gint64)st->plain_size);
      json_builder_set_member_name(b, "seconds");
      json_builder_add_double_value(b, secs);
      cli_output_emit(st->out, b);
    } else {
      cli_output_say(st->out, "delivered %s in %.1f s (%s)%s", size, secs, rate,
                     st->s->encrypt ? ", encrypted end to end" : "");
    }
    st->status = FERRY_EXIT_OK;
  }
  g_clear_error(&produce_error);
  g_clear_error(&error);
  if (body != NULL)
    g_bytes_unref(body);
  g_cancellable_cancel(st->cancel); /* the status stream */
  g_main_loop_quit(st->loop);
}

typedef struct {
  LinkSend *st;
  guint code;
  GInputStream *in;
} PutAnswer;

static void
on_put_body(GObject *source, GAsyncResult *result, gpointer user_data)
{
  PutAnswer *a = user_data;
  GError *error = NULL;
  GBytes *body = g_input_stream_read_bytes_finish(G_INPUT_STREAM(source), result, &error);
  put_done(a->st, a->code, body, error);
  g_object_unref(a->in);
  g_free(a);
}

/* The answer's headers are in (they come when the downloads are over, or
 * at once for a refusal): its one line of text follows. The stream is
 * read without closing it through libsoup, which would wait for the rest
 * of a request the server refused. */
static void
on_put_sent(GObject *source, GAsyncResult *result, gpointer user_data)
{
  LinkSend *st = user_data;
  GError *error = NULL;
  SoupMessage *msg = soup_session_get_async_result_message(SOUP_SESSION(source), result);
  GInputStream *in = soup_session_send_finish(SOUP_SESSION(source), result, &error);
  if (in == NULL) {
    put_done(st, soup_message_get_status(msg), NULL, error);
    return;
  }
  PutAnswer *a = g_new0(PutAnswer, 1);
  a->st = st;
  a->code = soup_message_get_status(msg);
  a->in = in;
  g_input_stream_read_bytes_async(in, 64 * 1024, G_PRIORITY_DEFAULT, NULL, on_put_body, a);
}

static void print_link(LinkSend *st);

/* The server took the upload (its 100 Continue, or body bytes went out):
 * only now is the link worth giving, and its status stream worth
 * following. msg may be NULL. */
static void
on_accepted(SoupMessage *msg, gpointer user_data)
{
  LinkSend *st = user_data;
  if (st->accepted)
    return;
  st->accepted = TRUE;
  print_link(st);
  SoupMessage *smsg = soup_message_new("GET", st->status_url);
  if (st->s->relay_token != NULL) {
    g_autofree char *auth = g_strdup_printf("Bearer %s", st->s->relay_token);
    soup_message_headers_replace(soup_message_get_request_headers(smsg), "Authorization", auth);
  }
  soup_session_send_async(st->session, smsg, G_PRIORITY_LOW, st->cancel, on_status_sent, st);
  g_object_unref(smsg);
}

static void
on_wrote_body(SoupMessage *msg, guint chunk_size, gpointer user_data)
{
  on_accepted(msg, user_data);
}

static gboolean
on_signal(gpointer user_data)
{
  LinkSend *st = user_data;
  if (st->interrupted) {
    g_main_loop_quit(st->loop);
    return G_SOURCE_CONTINUE;
  }
  st->interrupted = TRUE;
  g_cancellable_cancel(st->cancel);
  return G_SOURCE_CONTINUE;
}

static void
print_link(LinkSend *st)
{
  g_autofree char *size = cli_format_bytes(st->plain_size);
  JsonBuilder *b = cli_output_event(st->out, "link");
  if (b != NULL) {
    cli_json_add_string(b, "url", st->link);
    cli_json_add_string(b, "name", st->name);
    json_builder_set_member_name(b, "size");
    json_builder_add_int_value(b, (gint64)st->plain_size);
    json_builder_set_member_name(b, "encrypted");
    json_builder_add_boolean_value(b, st->s->encrypt);
    cli_output_emit(st->out, b);
    return;
  }
  if (st->s->quiet) {
    printf("%s\n", st->link);
    fflush(stdout);
    return;
  }
  printf("Link: %s\n", st->link);
  if (isatty(STDOUT_FILENO)) {
    g_autofree char *qr = cli_qr_text(st->link);
    if (qr != NULL)
      fputs(qr, stdout);
  }
  printf("Open it in a browser, or: curl -OJ '%s'%s, or: ferry receive '%s'\n", st->link,
         st->s->encrypt ? " (encrypted: curl gets ciphertext)" : "", st->link);
  fflush(stdout);
  guint downloads = st->s->downloads ? st->s->downloads : 1;
  cli_output_say(st->out, "Sending %s%s as %s%s; waiting for %u %s (Ctrl-C to stop)", size,
                 !st->folder      ? ""
                 : st->s->encrypt ? " (a tar of the folder)"
                                  : " (a tar of the folder; browsers get a zip)",
                 st->name, st->s->encrypt ? ", encrypted end to end" : "", downloads,
                 downloads == 1 ? "download" : "downloads");
}

int
cli_link_send(CliSettings *s, char **paths, gboolean verbose)
{
  LinkSend st = {.s = s, .fds = {-1, -1}};
  GError *error = NULL;
  CliOutputOptions oo = {.sending = TRUE, .quiet = s->quiet, .json = s->json, .verbose = verbose};

  st.out = cli_output_new(&oo);
  st.items = g_ptr_array_new_with_free_func(item_free);
  st.dirs = g_ptr_array_new_with_free_func(g_free);
  st.cancel = g_cancellable_new();
  st.loop = g_main_loop_new(NULL, FALSE);
  g_mutex_init(&st.lock);
  signal(SIGPIPE, SIG_IGN);

  g_autofree char *base = NULL;
  if (s->server == NULL) {
    st.status = FERRY_EXIT_USAGE;
    cli_output_fail(st.out, st.status,
                    "--link uploads to a ferry serve's HTTP relay: give it with --server URL "
                    "(and its relay secret with --relay-token)");
    goto out;
  }
  if ((base = base_url(s->server, &error)) == NULL) {
    st.status = FERRY_EXIT_USAGE;
    goto fail;
  }
  if (!scan(&st, paths, &error)) {
    st.status = error->code == FERRY_ERROR_NOT_FOUND ? FERRY_EXIT_USAGE : FERRY_EXIT_LOCAL_FILE;
    goto fail;
  }

  GString *q = g_string_new(NULL);
  if (st.folder)
    g_string_append(q, "&kind=folder");
  if (s->encrypt)
    g_string_append_printf(q, "&encrypted=1&size=%" G_GUINT64_FORMAT, st.plain_size);
  if (s->downloads > 1)
    g_string_append_printf(q, "&downloads=%u", s->downloads);
  st.upload_url = g_strdup_printf("%s/r/%s%s%s", base, st.name, q->len > 0 ? "?" : "",
                                  q->len > 0 ? q->str + 1 : "");
  st.status_url = g_strdup_printf("%s/r/%s?status=1", base, st.name);
  g_string_free(q, TRUE);
  if (s->encrypt) {
    if (gnutls_rnd(GNUTLS_RND_KEY, st.key, sizeof st.key) < 0) {
      st.status = FERRY_EXIT_FAILURE;
      ferry_set_error(&error, FERRY_ERR_CRYPTO, "cannot draw a random key");
      goto fail;
    }
    g_autofree char *k = ferry_link_key_encode(st.key);
    st.link = g_strdup_printf("%s/r/%s#k=%s", base, st.name, k);
  } else {
    st.link = g_strdup_printf("%s/r/%s", base, st.name);
  }

  if (!g_unix_open_pipe(st.fds, FD_CLOEXEC, &error) ||
      !g_unix_set_fd_nonblocking(st.fds[1], TRUE, &error)) {
    st.status = FERRY_EXIT_FAILURE;
    goto fail;
  }
  fcntl(st.fds[1], F_SETPIPE_SZ, 1024 * 1024);
  st.session = soup_session_new_with_options("timeout", 0, "idle-timeout", 0, NULL);
  /* A 401 is the answer to report, not a challenge to retry. */
  soup_session_remove_feature_by_type(st.session, SOUP_TYPE_AUTH_MANAGER);
  SoupMessage *msg = soup_message_new("PUT", st.upload_url);
  SoupMessageHeaders *h = soup_message_get_request_headers(msg);
  if (s->relay_token != NULL) {
    g_autofree char *auth = g_strdup_printf("Bearer %s", s->relay_token);
    soup_message_headers_replace(h, "Authorization", auth);
  }
  soup_message_headers_set_expectations(h, SOUP_EXPECTATION_CONTINUE);
  GInputStream *body = g_unix_input_stream_new(st.fds[0], TRUE);
  st.fds[0] = -1;
  soup_message_set_request_body(
      msg, st.folder && !s->encrypt ? "application/x-tar" : "application/octet-stream", body,
      (gssize)st.upload_size);
  g_object_unref(body);

  st.started_us = g_get_monotonic_time();
  st.producer = g_thread_new("ferry-link", producer_main, &st);
  g_signal_connect(msg, "got-informational", G_CALLBACK(on_accepted), &st);
  g_signal_connect(msg, "wrote-body-data", G_CALLBACK(on_wrote_body), &st);
  soup_session_send_async(st.session, msg, G_PRIORITY_DEFAULT, st.cancel, on_put_sent, &st);
  g_object_unref(msg);
  if (st.upload_size == 0)
    on_accepted(NULL, &st);

  guint sigint = g_unix_signal_add(SIGINT, on_signal, &st);
  guint sigterm = g_unix_signal_add(SIGTERM, on_signal, &st);
  g_main_loop_run(st.loop);
  g_source_remove(sigint);
  g_source_remove(sigterm);
  soup_session_abort(st.session);
  goto out;

fail:
  cli_output_fail(st.out, st.status, "%s", error->message);
  g_error_free(error);
out:
  g_cancellable_cancel(st.cancel);
  if (st.producer != NULL)
    g_thread_join(st.producer); /* it sees the cancel within 200 ms */
  if (st.fds[0] >= 0)
    close(st.fds[0]);
  if (st.fds[1] >= 0)
    close(st.fds[1]);
  g_clear_error(&st.produce_error);
  g_clear_object(&st.session);
  g_object_unref(st.cancel);
  g_main_loop_unref(st.loop);
  g_ptr_array_unref(st.items);
  g_ptr_array_unref(st.dirs);
  g_free(st.name);
  g_free(st.link);
  g_free(st.upload_url);
  g_free(st.status_url);
  g_mutex_clear(&st.lock);
  cli_output_free(st.out);
  return st.status;
}
