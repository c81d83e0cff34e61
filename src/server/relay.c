/* The HTTP relay: one upload streamed to one download (see relay.h).
 *
 * A Relay joins an upload message (PUT or multipart POST to /r/NAME) and,
 * once one comes, a download message (GET /r/NAME). libsoup hands us the
 * upload body in 8 KiB "got-chunk" signals (the body is not accumulated);
 * the bytes are gathered into chunks of STAGE_CHUNK, queued until the
 * downloader comes, then appended to its response body, which libsoup
 * writes out and drops ("wrote-body-data"). `held` counts every byte the
 * server has but the downloader has not been sent: when it reaches the
 * window the upload is paused (libsoup stops reading the socket, so TCP
 * pushes back on the uploader), and it resumes at half the window.
 *
 * An upload's answer is the end of the story: 200 once the downloader has
 * every byte, or an error naming what went wrong. While its body is still
 * being read libsoup cannot answer, so a failure then takes the connection
 * over, writes the error itself and drains the rest (lingering close) so
 * the client reads the error rather than a reset. A download that cannot
 * be finished (the uploader vanished) is cut without the final bytes,
 * which every HTTP client reports as an incomplete transfer. */
#include <string.h>
#include <sys/socket.h>

#include <gio/gio.h>
#include <libsoup/soup.h>
#include <sodium.h>

#include "server/relay-multipart.h"
#include "server/relay-page.h"
#include "server/relay.h"

#define STAGE_CHUNK       (256 * 1024)
#define LINGER_SECONDS    5
#define SWEEP_INTERVAL_S  1
#define RELAY_DATA_KEY    "ferry-relay"
#define ENABLE_RELAY_HINT "start ferry serve with --relay-secret SECRET (or FERRY_RELAY_SECRET)"

typedef struct Relay Relay;

struct _FerryRelayHub {
  char *secret; /* NULL: no secret */
  gboolean anonymous;
  int ttl;
  int idle_timeout;
  guint64 window;
  guint64 max_size;
  guint max;
  FerryMetrics *metrics;
  GHashTable *relays; /* name → Relay (a reference) */
  GSList *lingering;  /* Linger */
  guint sweep_id;
  guint64 started, completed, failed, bytes;
};

struct Relay {
  FerryRelayHub *hub;
  int refs;
  char *name;
  gboolean listed; /* in hub->relays: the name is taken */

  SoupServerMessage *up; /* a reference; NULL once answered or cut */
  FerryMultipart *mp;    /* multipart POST */
  gint64 length;         /* file size from the PUT's Content-Length; -1 unknown */
  guint64 received;
  gboolean eof;        /* every byte of the file has arrived */
  gboolean up_paused;  /* we paused its body: the window is full */
  gboolean body_done;  /* libsoup has read the whole request body */
  gboolean up_waiting; /* its handler ran and paused it: the answer waits */
  gboolean delivered;  /* the download ended well before the handler ran */

  SoupServerMessage *down; /* a reference; NULL before a downloader and after */
  gboolean down_came;      /* one download per link */
  guint64 sent;
  guint64 out_pending; /* appended to the download body, not yet written */

  GByteArray *stage; /* received, not yet a chunk */
  GQueue queued;     /* GBytes chunks waiting for the downloader */
  guint64 held;      /* stage + queued + out_pending */

  gint64 created_us;
  gint64 progress_us;
  gboolean done; /* counted as completed or failed */
};

/* --- answers --- */

/* A text answer: the problem and the fix, one line. slug (may be NULL)
 * counts it under ferry_refusals_total. */
static void
answer_text(FerryRelayHub *hub, SoupServerMessage *msg, guint status, const char *slug,
            const char *text)
{
  char *body = g_strconcat(text, "\n", NULL);
  if (slug != NULL) {
    ferry_metrics_refusal(hub->metrics, slug);
    soup_message_headers_replace(soup_server_message_get_response_headers(msg),
                                 "X-Ferry-Error-Code", slug);
  }
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Cache-Control",
                               "no-store");
  soup_server_message_set_status(msg, status, NULL);
  soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_TAKE, body,
                                   strlen(body));
}

/* --- lingering close of a connection we took over --- */

typedef struct {
  FerryRelayHub *hub;
  GIOStream *stream;
  GSource *source;
  guint timer;
} Linger;

static void
linger_free(Linger *l)
{
  if (l->source != NULL) {
    g_source_destroy(l->source);
    g_source_unref(l->source);
  }
  g_clear_handle_id(&l->timer, g_source_remove);
  g_io_stream_close(l->stream, NULL, NULL);
  g_object_unref(l->stream);
  g_free(l);
}

static void
linger_end(Linger *l)
{
  l->hub->lingering = g_slist_remove(l->hub->lingering, l);
  linger_free(l);
}

static gboolean
linger_timeout(gpointer user_data)
{
  Linger *l = user_data;
  l->timer = 0;
  linger_end(l);
  return G_SOURCE_REMOVE;
}

static gboolean
linger_readable(GObject *stream, gpointer user_data)
{
  Linger *l = user_data;
  guint8 buf[16384];
  GError *error = NULL;
  gssize n;

  while ((n = g_pollable_input_stream_read_nonblocking(G_POLLABLE_INPUT_STREAM(stream), buf,
                                                       sizeof buf, NULL, &error)) > 0)
    ;
  if (n < 0 && g_error_matches(error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
    g_error_free(error);
    return G_SOURCE_CONTINUE;
  }
  g_clear_error(&error);
  g_source_unref(l->source);
  l->source = NULL;
  linger_end(l);
  return G_SOURCE_REMOVE;
}

/* Takes msg's connection from libsoup; with a response (status > 0) writes
 * it, then reads and drops what the client still sends until it closes or
 * LINGER_SECONDS pass. Without one the connection is just closed. */
static void
take_over_and_close(FerryRelayHub *hub, SoupServerMessage *msg, guint status, const char *text)
{
  g_object_ref(msg);
  /* Cutting: shut the socket first, or libsoup, letting go of a chunked
   * body, writes its last chunk and the cut transfer looks complete. */
  GSocket *cut = status == 0 ? soup_server_message_get_socket(msg) : NULL;
  if (cut != NULL)
    g_socket_shutdown(cut, TRUE, TRUE, NULL);
  GIOStream *stream = soup_server_message_steal_connection(msg);
  g_object_unref(msg);
  if (stream == NULL)
    return;
  if (status == 0) {
    g_io_stream_close(stream, NULL, NULL);
    g_object_unref(stream);
    return;
  }
  char *resp = g_strdup_printf("HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                               status, soup_status_get_phrase(status), strlen(text) + 1, text);
  GOutputStream *out = g_io_stream_get_output_stream(stream);
  if (G_IS_POLLABLE_OUTPUT_STREAM(out))
    g_pollable_output_stream_write_nonblocking(G_POLLABLE_OUTPUT_STREAM(out), resp, strlen(resp),
                                               NULL, NULL);
  g_free(resp);
  GSocket *sock = g_object_get_data(G_OBJECT(stream), "GSocket");
  if (sock != NULL && G_IS_SOCKET_CONNECTION(stream))
    g_socket_shutdown(sock, FALSE, TRUE, NULL);

  GInputStream *in = g_io_stream_get_input_stream(stream);
  Linger *l = g_new0(Linger, 1);
  l->hub = hub;
  l->stream = stream;
  if (G_IS_POLLABLE_INPUT_STREAM(in)) {
    l->source = g_pollable_input_stream_create_source(G_POLLABLE_INPUT_STREAM(in), NULL);
    g_source_set_callback(l->source, (GSourceFunc)(void (*)(void))linger_readable, l, NULL);
    g_source_attach(l->source, g_main_context_get_thread_default());
  }
  l->timer = g_timeout_add_seconds(LINGER_SECONDS, linger_timeout, l);
  hub->lingering = g_slist_prepend(hub->lingering, l);
}

/* --- relays --- */

static Relay *
relay_ref(Relay *r)
{
  r->refs++;
  return r;
}

static void
relay_unref(Relay *r)
{
  if (--r->refs > 0)
    return;
  g_queue_clear_full(&r->queued, (GDestroyNotify)g_bytes_unref);
  g_byte_array_unref(r->stage);
  ferry_multipart_free(r->mp);
  g_free(r->name);
  g_free(r);
}

/* Frees the name for a new upload. */
static void
relay_unlist(Relay *r)
{
  if (!r->listed)
    return;
  r->listed = FALSE;
  g_hash_table_remove(r->hub->relays, r->name); /* drops the table's reference */
}

static void
relay_count_end(Relay *r, gboolean ok)
{
  if (r->done)
    return;
  r->done = TRUE;
  if (ok)
    r->hub->completed++;
  else
    r->hub->failed++;
}

/* Lets go of the upload message: no more signals reach this relay. */
static SoupServerMessage *
detach_up(Relay *r)
{
  SoupServerMessage *up = r->up;
  if (up == NULL)
    return NULL;
  r->up = NULL;
  g_signal_handlers_disconnect_by_data(up, r);
  g_object_set_data(G_OBJECT(up), RELAY_DATA_KEY, NULL);
  relay_unref(r);
  return up; /* the caller owns the message reference */
}

static SoupServerMessage *
detach_down(Relay *r)
{
  SoupServerMessage *down = r->down;
  if (down == NULL)
    return NULL;
  r->down = NULL;
  g_signal_handlers_disconnect_by_data(down, r);
  relay_unref(r);
  return down;
}

/* Tells the uploader how it ended: status and text. After its handler ran
 * that is an ordinary answer; while its body is still coming the
 * connection is taken over (see the top of this file). */
static void
finish_upload(Relay *r, guint status, const char *slug, const char *text)
{
  gboolean waiting = r->up_waiting, body_done = r->body_done;
  SoupServerMessage *up = detach_up(r);
  if (up == NULL)
    return;
  if (body_done) {
    /* Set before the handler runs, the answer makes libsoup skip it. */
    answer_text(r->hub, up, status, slug, text);
    if (waiting)
      soup_server_message_unpause(up);
  } else {
    if (slug != NULL)
      ferry_metrics_refusal(r->hub->metrics, slug);
    take_over_and_close(r->hub, up, status, text);
  }
  g_object_unref(up);
}

/* Ends a relay that cannot go on: the uploader hears status and text, a
 * downloader's transfer is cut short, and the name is free again. */
static void
relay_fail(Relay *r, guint status, const char *slug, const char *text)
{
  relay_ref(r);
  g_info("event=relay-fail name=%s received=%" G_GUINT64_FORMAT " sent=%" G_GUINT64_FORMAT
         " reason=%s",
         r->name, r->received, r->sent, slug);
  relay_count_end(r, FALSE);
  relay_unlist(r);
  finish_upload(r, status, slug, text);
  SoupServerMessage *down = detach_down(r);
  if (down != NULL) {
    take_over_and_close(r->hub, down, 0, NULL);
    g_object_unref(down);
  }
  relay_unref(r);
}

/* Hands staged bytes on: to the downloader's body when there is one
 * (waking its writer if it had run dry), else to the queue. */
static void
flush_stage(Relay *r)
{
  if (r->stage->len == 0)
    return;
  GBytes *chunk = g_byte_array_free_to_bytes(r->stage);
  r->stage = g_byte_array_sized_new(STAGE_CHUNK);
  if (r->down == NULL) {
    g_queue_push_tail(&r->queued, chunk);
    return;
  }
  gboolean idle = r->out_pending == 0;
  r->out_pending += g_bytes_get_size(chunk);
  soup_message_body_append_bytes(soup_server_message_get_response_body(r->down), chunk);
  g_bytes_unref(chunk);
  if (idle)
    soup_server_message_unpause(r->down);
}

/* The file is complete: everything staged goes out and the download body
 * is closed (libsoup then writes the last chunk of a chunked answer). */
static void
relay_eof(Relay *r)
{
  if (r->eof)
    return;
  r->eof = TRUE;
  r->length = (gint64)r->received;
  flush_stage(r);
  if (r->down != NULL) {
    soup_message_body_complete(soup_server_message_get_response_body(r->down));
    soup_server_message_unpause(r->down);
  }
}

static void
relay_input(Relay *r, const guint8 *data, gsize len)
{
  FerryRelayHub *hub = r->hub;

  if (r->up == NULL || r->eof)
    return;
  if (hub->max_size > 0 && r->received + len > hub->max_size) {
    char *text = g_strdup_printf("%s is larger than this server's relay limit of %" G_GUINT64_FORMAT
                                 " bytes (--relay-max-size); send it with ferry send, or split it",
                                 r->name, hub->max_size);
    relay_fail(r, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "relay-too-large", text);
    g_free(text);
    return;
  }
  g_byte_array_append(r->stage, data, (guint)len);
  r->received += len;
  r->held += len;
  r->progress_us = g_get_monotonic_time();
  if (r->stage->len >= STAGE_CHUNK || (r->down != NULL && r->out_pending == 0))
    flush_stage(r);
  if (r->held >= hub->window && !r->up_paused && r->up != NULL) {
    r->up_paused = TRUE;
    soup_server_message_pause(r->up);
  }
}

static void
on_multipart_data(const guint8 *data, gsize len, gpointer user_data)
{
  relay_input(user_data, data, len);
}

static void
on_up_chunk(SoupServerMessage *msg, GBytes *chunk, gpointer user_data)
{
  Relay *r = user_data;
  gsize len;
  const guint8 *data = g_bytes_get_data(chunk, &len);

  if (r->mp == NULL) {
    relay_input(r, data, len);
    return;
  }
  relay_ref(r);
  int rc = ferry_multipart_feed(r->mp, data, len);
  if (rc < 0 && r->up != NULL) {
    relay_fail(r, SOUP_STATUS_BAD_REQUEST, "relay-bad-form",
               rc == FERRY_ERR_TOO_LONG
                   ? "a part's headers in this form are over 8 KiB; upload with curl -T FILE or "
                     "curl -F file=@FILE"
                   : "this body is not multipart/form-data with the boundary its Content-Type "
                     "names; upload with curl -T FILE or curl -F file=@FILE");
  } else if (ferry_multipart_file_done(r->mp)) {
    relay_eof(r);
  }
  relay_unref(r);
}

/* libsoup 3.2 takes a chunked body cut at a chunk boundary (the client
 * died) for a complete one. A client that really finished waits for our
 * answer with its connection open; one that died has closed it, and the
 * end of its stream is all that is left to read. */
static gboolean
peer_closed(SoupServerMessage *msg)
{
  GSocket *sock = soup_server_message_get_socket(msg);
  char c;
  return sock != NULL && recv(g_socket_get_fd(sock), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static void
on_up_body(SoupServerMessage *msg, gpointer user_data)
{
  Relay *r = user_data;

  r->body_done = TRUE;
  if (soup_message_headers_get_encoding(soup_server_message_get_request_headers(msg)) !=
          SOUP_ENCODING_CONTENT_LENGTH &&
      peer_closed(msg)) {
    relay_fail(r, SOUP_STATUS_BAD_REQUEST, "relay-upload-cut",
               "the upload ended without its last chunk; upload again");
    return;
  }
  if (r->mp != NULL && ferry_multipart_finish(r->mp) != 0) {
    int rc = ferry_multipart_finish(r->mp);
    relay_fail(r, SOUP_STATUS_BAD_REQUEST, "relay-bad-form",
               rc == FERRY_ERR_NOT_FOUND
                   ? "this form has no file in it; upload with curl -F file=@FILE (or curl -T "
                     "FILE)"
                   : "this form ended inside its file part; upload again");
    return;
  }
  relay_eof(r);
}

/* The upload message ended before we answered it: the uploader went away
 * (or libsoup gave up on its connection). */
static void
on_up_finished(SoupServerMessage *msg, gpointer user_data)
{
  Relay *r = user_data;
  relay_ref(r);
  SoupServerMessage *up = detach_up(r);
  if (!r->eof)
    relay_fail(r, 0, "relay-upload-cut", "the uploader went away");
  else if (r->down == NULL && !r->done)
    relay_fail(r, 0, "relay-upload-cut", "the uploader went away before a download");
  g_clear_object(&up);
  relay_unref(r);
}

/* --- downloads --- */

static void
on_down_wrote(SoupServerMessage *msg, guint n, gpointer user_data)
{
  Relay *r = user_data;
  FerryRelayHub *hub = r->hub;

  r->sent += n;
  r->out_pending -= n;
  r->held -= n;
  hub->bytes += n;
  r->progress_us = g_get_monotonic_time();
  if (r->out_pending == 0)
    flush_stage(r);
  if (r->up_paused && r->up != NULL && r->held <= hub->window / 2) {
    r->up_paused = FALSE;
    soup_server_message_unpause(r->up);
  }
}

static void
on_down_finished(SoupServerMessage *msg, gpointer user_data)
{
  Relay *r = user_data;
  relay_ref(r);
  gboolean ok =
      r->eof && r->sent == r->received && soup_server_message_get_status(msg) == SOUP_STATUS_OK;
  g_object_unref(detach_down(r));
  if (ok) {
    char *text = g_strdup_printf("%s: %" G_GUINT64_FORMAT " bytes delivered to the downloader",
                                 r->name, r->sent);
    g_info("event=relay-done name=%s bytes=%" G_GUINT64_FORMAT, r->name, r->sent);
    relay_count_end(r, TRUE);
    relay_unlist(r);
    /* A form's epilogue may still be coming: its handler answers then. */
    if (r->up != NULL && !r->body_done)
      r->delivered = TRUE;
    else
      finish_upload(r, SOUP_STATUS_OK, NULL, text);
    g_free(text);
  } else {
    char *text = g_strdup_printf("the downloader of %s disconnected after %" G_GUINT64_FORMAT
                                 " bytes; the relay is over — upload again and share the new link",
                                 r->name, r->sent);
    relay_fail(r, SOUP_STATUS_BAD_GATEWAY, "relay-download-cut", text);
    g_free(text);
  }
  relay_unref(r);
}

static gboolean
wants_html(SoupServerMessage *msg, GHashTable *query)
{
  const char *dl = query != NULL ? g_hash_table_lookup(query, "download") : NULL;
  if (dl != NULL && strcmp(dl, "0") != 0)
    return FALSE;
  const char *accept =
      soup_message_headers_get_list(soup_server_message_get_request_headers(msg), "Accept");
  return accept != NULL && strstr(accept, "text/html") != NULL;
}

static void
answer_landing(Relay *r, SoupServerMessage *msg)
{
  FerryRelayPage info = {.name = r->name, .size = r->length};
  const char *csp = NULL;
  char *page = ferry_relay_page_render(&info, &csp);
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(h, "Cache-Control", "no-store");
  soup_message_headers_replace(h, "Content-Security-Policy", csp);
  soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response(msg, "text/html; charset=utf-8", SOUP_MEMORY_TAKE, page,
                                   strlen(page));
}

static void
start_download(Relay *r, SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  char *disposition = g_strdup_printf("attachment; filename=\"%s\"", r->name);

  r->down_came = TRUE;
  r->down = g_object_ref(msg);
  relay_ref(r);
  soup_message_headers_replace(h, "Content-Disposition", disposition);
  soup_message_headers_replace(h, "Content-Type", "application/octet-stream");
  soup_message_headers_replace(h, "Cache-Control", "no-store");
  soup_message_headers_replace(h, "X-Content-Type-Options", "nosniff");
  g_free(disposition);
  if (r->length >= 0)
    soup_message_headers_set_content_length(h, r->length);
  else
    soup_message_headers_set_encoding(h, SOUP_ENCODING_CHUNKED);
  soup_message_body_set_accumulate(soup_server_message_get_response_body(msg), FALSE);
  soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
  g_signal_connect(msg, "wrote-body-data", G_CALLBACK(on_down_wrote), r);
  g_signal_connect(msg, "finished", G_CALLBACK(on_down_finished), r);
  r->progress_us = g_get_monotonic_time();

  SoupMessageBody *body = soup_server_message_get_response_body(msg);
  GBytes *chunk;
  while ((chunk = g_queue_pop_head(&r->queued)) != NULL) {
    r->out_pending += g_bytes_get_size(chunk);
    soup_message_body_append_bytes(body, chunk);
    g_bytes_unref(chunk);
  }
  flush_stage(r);
  if (r->eof)
    soup_message_body_complete(body);
  g_info("event=relay-download name=%s", r->name);
}

/* --- requests --- */

gboolean
ferry_relay_name_valid(const char *name)
{
  gsize n = strlen(name);
  if (n == 0 || n > FERRY_RELAY_MAX_NAME || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return FALSE;
  for (const char *p = name; *p != '\0'; p++)
    if (!g_ascii_isalnum(*p) && *p != '.' && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

/* NAME of "/r/NAME", or NULL (with a 400 answered) when it is not one. */
static const char *
name_of(FerryRelayHub *hub, SoupServerMessage *msg, const char *path)
{
  const char *name = g_str_has_prefix(path, "/r/") ? path + 3 : "";
  if (ferry_relay_name_valid(name))
    return name;
  answer_text(hub, msg, SOUP_STATUS_BAD_REQUEST, "relay-bad-name",
              "a relay link is /r/NAME, NAME being 1 to 64 letters, digits, '.', '_' or '-' "
              "(for example /r/holiday-photos.tar)");
  return NULL;
}

/* The secret, from "Authorization: Bearer SECRET" or "?token=SECRET",
 * compared in constant time (over hashes, so lengths leak nothing). */
static gboolean
authorized(FerryRelayHub *hub, SoupServerMessage *msg, GHashTable *query)
{
  if (hub->anonymous)
    return TRUE;
  const char *given = NULL;
  const char *auth =
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Authorization");
  if (auth != NULL && g_ascii_strncasecmp(auth, "Bearer ", 7) == 0)
    given = auth + 7;
  else if (query != NULL)
    given = g_hash_table_lookup(query, "token");
  if (given == NULL)
    return FALSE;
  guint8 a[32], b[32];
  crypto_generichash(a, sizeof a, (const guint8 *)given, strlen(given), NULL, 0);
  crypto_generichash(b, sizeof b, (const guint8 *)hub->secret, strlen(hub->secret), NULL, 0);
  return sodium_memcmp(a, b, sizeof a) == 0;
}

static void
answer_off(FerryRelayHub *hub, SoupServerMessage *msg)
{
  answer_text(hub, msg, SOUP_STATUS_NOT_FOUND, "relay-off",
              "the HTTP relay is off on this server; " ENABLE_RELAY_HINT
              ", or --relay-anonymous to take uploads without one");
}

void
ferry_relay_early_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                          GHashTable *query, gpointer user_data)
{
  FerryRelayHub *hub = user_data;
  const char *method = soup_server_message_get_method(msg);
  SoupMessageHeaders *req = soup_server_message_get_request_headers(msg);

  if (method != SOUP_METHOD_PUT && method != SOUP_METHOD_POST)
    return;
  /* Nothing of an upload is ever kept whole, refused or not. */
  soup_message_body_set_accumulate(soup_server_message_get_request_body(msg), FALSE);
  if (!ferry_relay_hub_enabled(hub)) {
    answer_off(hub, msg);
    return;
  }
  if (!authorized(hub, msg, query)) {
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "WWW-Authenticate",
                                 "Bearer realm=\"ferry relay\"");
    answer_text(hub, msg, SOUP_STATUS_UNAUTHORIZED, "relay-unauthorized",
                "uploading to this relay needs its secret: add -H 'Authorization: Bearer "
                "SECRET' (or ?token=SECRET) with the secret ferry serve was given "
                "(--relay-secret)");
    return;
  }
  const char *name = name_of(hub, msg, path);
  if (name == NULL)
    return;
  if (g_hash_table_contains(hub->relays, name)) {
    char *text = g_strdup_printf(
        "the name %s is in use by another upload; pick another name, or wait until it ends", name);
    answer_text(hub, msg, SOUP_STATUS_CONFLICT, "relay-name-taken", text);
    g_free(text);
    return;
  }
  if (g_hash_table_size(hub->relays) >= hub->max) {
    char *text = g_strdup_printf("the server is relaying %u uploads, the most it allows "
                                 "(--relay-max); try again in a while",
                                 g_hash_table_size(hub->relays));
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Retry-After",
                                 "30");
    answer_text(hub, msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "relay-busy", text);
    g_free(text);
    return;
  }
  gint64 length = -1;
  if (method == SOUP_METHOD_PUT &&
      soup_message_headers_get_encoding(req) == SOUP_ENCODING_CONTENT_LENGTH)
    length = soup_message_headers_get_content_length(req);
  if (hub->max_size > 0 && length > 0 && (guint64)length > hub->max_size) {
    char *text = g_strdup_printf("%s is larger than this server's relay limit of %" G_GUINT64_FORMAT
                                 " bytes (--relay-max-size); send it with ferry send, or split it",
                                 name, hub->max_size);
    answer_text(hub, msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "relay-too-large", text);
    g_free(text);
    return;
  }
  char *boundary = NULL;
  if (method == SOUP_METHOD_POST) {
    GHashTable *params = NULL;
    const char *type = soup_message_headers_get_content_type(req, &params);
    const char *b = params != NULL ? g_hash_table_lookup(params, "boundary") : NULL;
    if (type != NULL && g_ascii_strcasecmp(type, "multipart/form-data") == 0 && b != NULL &&
        *b != '\0' && strlen(b) <= FERRY_MULTIPART_MAX_BOUNDARY)
      boundary = g_strdup(b);
    g_clear_pointer(&params, g_hash_table_destroy);
    if (boundary == NULL) {
      answer_text(hub, msg, SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE, "relay-bad-form",
                  "a POST upload must be multipart/form-data with a boundary; use curl -F "
                  "file=@FILE (or PUT with curl -T FILE)");
      return;
    }
  }

  Relay *r = g_new0(Relay, 1);
  r->hub = hub;
  r->refs = 2; /* the table and the upload */
  r->name = g_strdup(name);
  r->listed = TRUE;
  r->up = g_object_ref(msg);
  r->length = length;
  r->stage = g_byte_array_sized_new(STAGE_CHUNK);
  g_queue_init(&r->queued);
  r->created_us = r->progress_us = g_get_monotonic_time();
  if (boundary != NULL)
    r->mp = ferry_multipart_new(boundary, on_multipart_data, r);
  g_free(boundary);
  g_hash_table_insert(hub->relays, r->name, r);
  g_object_set_data(G_OBJECT(msg), RELAY_DATA_KEY, r);
  g_signal_connect(msg, "got-chunk", G_CALLBACK(on_up_chunk), r);
  g_signal_connect(msg, "got-body", G_CALLBACK(on_up_body), r);
  g_signal_connect(msg, "finished", G_CALLBACK(on_up_finished), r);
  hub->started++;
  g_info("event=relay-upload name=%s length=%" G_GINT64_FORMAT, r->name, length);
}

void
ferry_relay_handler(SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
                    gpointer user_data)
{
  FerryRelayHub *hub = user_data;
  const char *method = soup_server_message_get_method(msg);

  if (method == SOUP_METHOD_PUT || method == SOUP_METHOD_POST) {
    Relay *r = g_object_get_data(G_OBJECT(msg), RELAY_DATA_KEY);
    if (r == NULL) {
      answer_text(hub, msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "relay-lost",
                  "this upload lost its relay; upload again");
      return;
    }
    if (r->delivered) {
      char *text = g_strdup_printf("%s: %" G_GUINT64_FORMAT " bytes delivered to the downloader",
                                   r->name, r->sent);
      finish_upload(r, SOUP_STATUS_OK, NULL, text);
      g_free(text);
      return;
    }
    /* The whole body is in: the answer waits for the downloader. */
    r->up_waiting = TRUE;
    soup_server_message_pause(msg);
    return;
  }
  if (method != SOUP_METHOD_GET) {
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow",
                                 "GET, PUT, POST");
    answer_text(hub, msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL,
                "a relay link takes GET (download), PUT or POST (upload)");
    return;
  }
  if (!ferry_relay_hub_enabled(hub)) {
    answer_off(hub, msg);
    return;
  }
  const char *name = name_of(hub, msg, path);
  if (name == NULL)
    return;
  Relay *r = g_hash_table_lookup(hub->relays, name);
  if (r == NULL) {
    char *text = g_strdup_printf("nothing is being sent as %s here: a link works only while "
                                 "its upload runs, and once; ask the sender for a new link",
                                 name);
    answer_text(hub, msg, SOUP_STATUS_NOT_FOUND, "relay-not-found", text);
    g_free(text);
    return;
  }
  if (r->down_came) {
    char *text = g_strdup_printf("%s is being downloaded already, and a link works once; ask "
                                 "the sender to upload it again",
                                 name);
    answer_text(hub, msg, SOUP_STATUS_GONE, "relay-taken", text);
    g_free(text);
    return;
  }
  if (wants_html(msg, query)) {
    answer_landing(r, msg);
    return;
  }
  start_download(r, msg);
}

/* --- timers and the hub --- */

static gboolean
sweep(gpointer user_data)
{
  FerryRelayHub *hub = user_data;
  gint64 now = g_get_monotonic_time();
  GList *all = g_hash_table_get_values(hub->relays);

  for (GList *l = all; l != NULL; l = l->next)
    relay_ref(l->data);
  for (GList *l = all; l != NULL; l = l->next) {
    Relay *r = l->data;
    if (!r->listed)
      continue;
    if (!r->down_came && now - r->created_us > (gint64)hub->ttl * G_USEC_PER_SEC) {
      char *text = g_strdup_printf("no one downloaded %s within %d s (--relay-ttl); upload again "
                                   "and share the link sooner",
                                   r->name, hub->ttl);
      relay_fail(r, SOUP_STATUS_REQUEST_TIMEOUT, "relay-expired", text);
      g_free(text);
    } else if (r->down_came && now - r->progress_us > (gint64)hub->idle_timeout * G_USEC_PER_SEC) {
      char *text = g_strdup_printf("%s: no byte moved for %d s (--relay-idle-timeout); the relay "
                                   "is over — upload again",
                                   r->name, hub->idle_timeout);
      relay_fail(r, SOUP_STATUS_REQUEST_TIMEOUT, "relay-idle", text);
      g_free(text);
    }
  }
  g_list_free_full(all, (GDestroyNotify)relay_unref);
  return G_SOURCE_CONTINUE;
}

static void
unlisted(gpointer data)
{
  relay_unref(data);
}

FerryRelayHub *
ferry_relay_hub_new(const FerryServerConfig *cfg, FerryMetrics *metrics)
{
  FerryRelayHub *hub = g_new0(FerryRelayHub, 1);
  hub->secret =
      cfg->relay_secret != NULL && *cfg->relay_secret != '\0' ? g_strdup(cfg->relay_secret) : NULL;
  hub->anonymous = cfg->relay_anonymous;
  hub->ttl = cfg->relay_ttl;
  hub->idle_timeout = cfg->relay_idle_timeout;
  hub->window = MAX(cfg->relay_window, (guint64)STAGE_CHUNK);
  hub->max_size = cfg->relay_max_size;
  hub->max = cfg->relay_max;
  hub->metrics = metrics;
  hub->relays = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, unlisted);
  hub->sweep_id = g_timeout_add_seconds(SWEEP_INTERVAL_S, sweep, hub);
  return hub;
}

gboolean
ferry_relay_hub_enabled(const FerryRelayHub *hub)
{
  return hub->secret != NULL || hub->anonymous;
}

void
ferry_relay_hub_free(FerryRelayHub *hub)
{
  if (hub == NULL)
    return;
  g_clear_handle_id(&hub->sweep_id, g_source_remove);
  GList *all = g_hash_table_get_values(hub->relays);
  for (GList *l = all; l != NULL; l = l->next) {
    Relay *r = relay_ref(l->data);
    relay_unlist(r);
    SoupServerMessage *m = detach_up(r);
    g_clear_object(&m);
    m = detach_down(r);
    g_clear_object(&m);
    relay_unref(r);
  }
  g_list_free(all);
  g_slist_free_full(hub->lingering, (GDestroyNotify)linger_free);
  g_hash_table_destroy(hub->relays);
  g_free(hub->secret);
  g_free(hub);
}

void
ferry_relay_hub_render_metrics(const FerryRelayHub *hub, GString *out)
{
  g_string_append_printf(
      out,
      "# HELP ferry_relays HTTP relays in progress (uploads waiting or streaming).\n"
      "# TYPE ferry_relays gauge\nferry_relays %u\n"
      "# HELP ferry_relays_total HTTP relay uploads accepted.\n"
      "# TYPE ferry_relays_total counter\nferry_relays_total %" G_GUINT64_FORMAT "\n"
      "# HELP ferry_relays_completed_total HTTP relays whose downloader got every byte.\n"
      "# TYPE ferry_relays_completed_total counter\n"
      "ferry_relays_completed_total %" G_GUINT64_FORMAT "\n"
      "# HELP ferry_relays_failed_total HTTP relays that ended early.\n"
      "# TYPE ferry_relays_failed_total counter\nferry_relays_failed_total %" G_GUINT64_FORMAT "\n"
      "# HELP ferry_relay_bytes_total Bytes sent to HTTP relay downloaders.\n"
      "# TYPE ferry_relay_bytes_total counter\nferry_relay_bytes_total %" G_GUINT64_FORMAT "\n",
      g_hash_table_size(hub->relays), hub->started, hub->completed, hub->failed, hub->bytes);
}
