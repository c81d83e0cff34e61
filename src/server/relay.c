/* The HTTP relay: one upload streamed to its downloads (see relay.h).
 *
 * libsoup reads the request line and headers; once they pass the checks
 * (the early handler for uploads, the handler for downloads) the relay
 * takes the connection over (relay-conn.c) and moves the bytes itself:
 * libsoup's 8 KiB body signals cost more than the copy they carry.
 *
 * The upload's body (its Content-Length, chunked framing and multipart
 * form decoded here) goes into a ring of --relay-window bytes. Every byte
 * of the ring has an absolute offset in the file: [base, end) is held.
 * Each download sends from its own position; bytes behind the slowest
 * download in progress stay as history, so a download that broke can
 * come back with "Range: bytes=N-" while byte N is still held, and are
 * overwritten only when the upload needs the room. The window thus bounds
 * history and unsent bytes together; when it is full of bytes some
 * download still needs, the upload is not read (TCP pushes back on the
 * uploader). Before any download, and between downloads while more may
 * come, nothing is dropped, so byte 0 stays for the next downloader.
 *
 * Everything is non-blocking and level-triggered on the main context:
 * whenever a connection of a relay is ready, relay_pump() reads what fits,
 * writes what each download can take, and says what to wait for next.
 *
 * The upload's answer is the end of the story: 200 once the downloads
 * have every byte, or an error naming what went wrong, written on the
 * connection, which is then closed after the client closes or 5 s (it may
 * still be sending its body). A download that cannot be finished is cut
 * without its final bytes (or last chunk), which every HTTP client
 * reports as an incomplete transfer. */
#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>
#include <libsoup/soup.h>
#include <sodium.h>

#include "ferry-config.h"

#include "server/ratelimit.h"
#include "server/relay-chunked.h"
#include "server/relay-conn.h"
#include "server/relay-multipart.h"
#include "server/relay-page.h"
#include "server/relay-zip.h"
#include "server/relay.h"

#define READ_PIECE        (4 * 1024 * 1024)  /* most bytes one recv asks for */
#define PUMP_BUDGET       (16 * 1024 * 1024) /* most bytes one pump moves per connection */
#define DECODE_PIECE      (256 * 1024)       /* raw bytes read for the chunked/form decoders */
#define DECODE_SLACK      256                /* a form may release held-back bytes */
#define CHUNK_OUT         (1024 * 1024)      /* largest chunk a chunked download writes */
#define ZIP_FEED          (256 * 1024)       /* tar bytes turned into zip at a time */
#define LINGER_SECONDS    5
#define TICK_MS           500
#define ENABLE_RELAY_HINT "start ferry serve with --relay-secret SECRET (or FERRY_RELAY_SECRET)"

typedef struct Relay Relay;

struct _FerryRelayHub {
  char *secret; /* NULL: no secret */
  gboolean anonymous;
  gboolean trust_proxy;
  int ttl;
  int idle_timeout;
  int resume_wait;
  guint64 window;
  guint64 max_size;
  guint max;
  guint max_downloads;
  double ip_rate; /* uploads per minute per client address; 0: no limit */
  FerryMetrics *metrics;
  GHashTable *relays; /* name → Relay (a reference) */
  GHashTable *ips;    /* client address → FerryBucket */
  GSList *lingering;  /* Linger */
  guint tick_id;
  guint ticks;
  gboolean draining;
  GSourceFunc idle;
  gpointer idle_data;
  guint64 started, completed, failed, bytes, downloads, resumed;
};

typedef enum { DOWN_ACTIVE, DOWN_CUT, DOWN_DONE, DOWN_FAILED } DownState;

typedef struct {
  Relay *r;
  FerryRelayConn *conn;
  DownState state;
  GByteArray *pend; /* response headers and chunk framing, before more body */
  gsize pend_off;
  guint64 pos;      /* offset of the next file byte to send */
  gboolean chunked; /* no length known: chunked framing */
  gboolean in_chunk;
  guint64 chunk_left;
  gboolean ending; /* the last chunk (or the last byte) is queued */
  gint64 cut_us;
  FerryTarZip *zip; /* ?format=zip: the tar becomes a zip on the way */
  GByteArray *zout; /* zip bytes made, sent from zout_off */
  gsize zout_off;
  gboolean zip_finished;
} Down;

typedef enum { FRAME_LENGTH, FRAME_CHUNKED } Framing;

typedef enum { STATE_WAITING, STATE_SENDING, STATE_DONE, STATE_FAILED } RelayState;

struct Relay {
  FerryRelayHub *hub;
  int refs;
  char *name;
  gboolean listed; /* in hub->relays: the name is taken */
  RelayState state;
  char *error;

  /* the upload */
  FerryRelayConn *up; /* NULL once answered or gone */
  Framing framing;
  guint64 body_left; /* FRAME_LENGTH: body bytes still to come */
  FerryChunked chunked;
  FerryMultipart *mp;
  gboolean body_done;
  guint8 *raw; /* DECODE_PIECE bytes for the decoders */
  gboolean folder, encrypted;
  guint downloads_max;

  /* the file */
  gint64 length; /* -1 until known */
  guint64 received;
  gboolean eof;
  guint8 *ring;
  guint64 base, end; /* held: [base, end) at ring[offset % window] */

  /* the downloads */
  GPtrArray *downs; /* Down */
  guint downloads_started, downloads_done;

  GPtrArray *watchers; /* SoupServerMessage of ?status=1 streams */
  gint64 created_us;
  gint64 progress_us;
  gboolean pumping;
};

static void relay_pump(Relay *r);

/* --- answers through libsoup --- */

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
  /* A refused upload's body was never read: the connection cannot carry
   * another request, and a client waiting on 100-continue learns so. */
  if (soup_server_message_get_method(msg) != SOUP_METHOD_GET)
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Connection",
                                 "close");
  soup_server_message_set_status(msg, status, NULL);
  soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_TAKE, body,
                                   strlen(body));
}

/* --- closing a connection we own: a last answer, then lingering --- */

typedef struct {
  FerryRelayHub *hub;
  FerryRelayConn *conn;
  GByteArray *out;
  gsize off;
  gboolean shut;
  guint timer;
} Linger;

static void
linger_free(Linger *l)
{
  g_clear_handle_id(&l->timer, g_source_remove);
  ferry_relay_conn_free(l->conn);
  g_byte_array_unref(l->out);
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

/* Writes what is left of the answer, then reads and drops what the client
 * still sends until it closes: closing with unread bytes would reset the
 * connection, and the client could lose the answer. */
static void
linger_ready(FerryRelayConn *conn, gpointer user_data)
{
  Linger *l = user_data;
  while (l->off < l->out->len) {
    gssize n = ferry_relay_conn_write(conn, l->out->data + l->off, l->out->len - l->off);
    if (n == FERRY_RELAY_IO_AGAIN) {
      ferry_relay_conn_want(conn, G_IO_OUT);
      return;
    }
    if (n < 0) {
      linger_end(l);
      return;
    }
    l->off += (gsize)n;
  }
  if (!l->shut) {
    l->shut = TRUE;
    ferry_relay_conn_shutdown_write(conn);
  }
  guint8 buf[16384];
  gssize n;
  while ((n = ferry_relay_conn_read(conn, buf, sizeof buf)) > 0)
    ;
  if (n == FERRY_RELAY_IO_AGAIN) {
    ferry_relay_conn_want(conn, G_IO_IN);
    return;
  }
  linger_end(l);
}

/* Takes conn: writes response (may be NULL: just the end of the stream),
 * then lingers as above for at most LINGER_SECONDS. */
static void
linger_start(FerryRelayHub *hub, FerryRelayConn *conn, GByteArray *response)
{
  Linger *l = g_new0(Linger, 1);
  l->hub = hub;
  l->conn = conn;
  l->out = response != NULL ? response : g_byte_array_new();
  l->timer = g_timeout_add_seconds(LINGER_SECONDS, linger_timeout, l);
  hub->lingering = g_slist_prepend(hub->lingering, l);
  ferry_relay_conn_set_ready(conn, linger_ready, l);
  linger_ready(conn, l);
}

/* A whole text/plain response on a connection we own. */
static GByteArray *
text_response(guint status, const char *slug, const char *text)
{
  char *head = g_strdup_printf("HTTP/1.1 %u %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                               "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                               "%s%s%sConnection: close\r\n\r\n%s\n",
                               status, soup_status_get_phrase(status), strlen(text) + 1,
                               slug != NULL ? "X-Ferry-Error-Code: " : "", slug != NULL ? slug : "",
                               slug != NULL ? "\r\n" : "", text);
  GByteArray *out = g_byte_array_new_take((guint8 *)head, strlen(head));
  return out;
}

/* --- relays --- */

static Relay *
relay_ref(Relay *r)
{
  r->refs++;
  return r;
}

static void
down_free(Down *d)
{
  ferry_relay_conn_free(d->conn);
  g_byte_array_unref(d->pend);
  if (d->zip != NULL)
    ferry_tar_zip_free(d->zip);
  if (d->zout != NULL)
    g_byte_array_unref(d->zout);
  g_free(d);
}

static void
relay_unref(Relay *r)
{
  if (--r->refs > 0)
    return;
  g_ptr_array_unref(r->downs);
  g_ptr_array_unref(r->watchers);
  ferry_relay_conn_free(r->up);
  ferry_multipart_free(r->mp);
  g_free(r->raw);
  g_free(r->ring);
  g_free(r->error);
  g_free(r->name);
  g_free(r);
}

static const char *
state_name(RelayState s)
{
  switch (s) {
  case STATE_WAITING:
    return "waiting";
  case STATE_SENDING:
    return "sending";
  case STATE_DONE:
    return "done";
  default:
    return "failed";
  }
}

/* Bytes the furthest download has been sent (the "delivered" of the
 * status stream). */
static guint64
relay_delivered(const Relay *r)
{
  guint64 most = 0;
  for (guint i = 0; i < r->downs->len; i++) {
    const Down *d = r->downs->pdata[i];
    most = MAX(most, d->pos);
  }
  return most;
}

static void
json_escape(GString *s, const char *text)
{
  for (const char *p = text; *p != '\0'; p++) {
    guchar c = (guchar)*p;
    if (c == '"' || c == '\\')
      g_string_append_printf(s, "\\%c", c);
    else if (c < 0x20)
      g_string_append_printf(s, "\\u%04x", c);
    else
      g_string_append_c(s, (char)c);
  }
}

/* One line of the status stream (docs/protocol.md §10.5). */
static char *
status_line(const Relay *r)
{
  GString *s = g_string_new("{\"name\":\"");
  json_escape(s, r->name);
  g_string_append_printf(
      s,
      "\",\"state\":\"%s\",\"received\":%" G_GUINT64_FORMAT ",\"delivered\":%" G_GUINT64_FORMAT
      ",\"downloads_started\":%u,\"downloads_done\":%u,\"size\":%" G_GINT64_FORMAT,
      state_name(r->state), r->received, relay_delivered(r), r->downloads_started,
      r->downloads_done, r->length);
  if (r->error != NULL) {
    g_string_append(s, ",\"error\":\"");
    json_escape(s, r->error);
    g_string_append_c(s, '"');
  }
  g_string_append(s, "}\n");
  return g_string_free(s, FALSE);
}

static void
on_watcher_finished(SoupServerMessage *msg, gpointer user_data)
{
  Relay *r = user_data;
  g_signal_handlers_disconnect_by_data(msg, r);
  g_ptr_array_remove_fast(r->watchers, msg); /* drops the reference */
  relay_unref(r);
}

/* Sends a status line to every watcher; the last one ends their streams. */
static void
relay_notify(Relay *r)
{
  if (r->watchers->len == 0)
    return;
  char *line = status_line(r);
  gboolean last = r->state == STATE_DONE || r->state == STATE_FAILED;
  for (guint i = 0; i < r->watchers->len; i++) {
    SoupServerMessage *msg = r->watchers->pdata[i];
    SoupMessageBody *body = soup_server_message_get_response_body(msg);
    soup_message_body_append(body, SOUP_MEMORY_COPY, line, strlen(line));
    if (last)
      soup_message_body_complete(body);
    soup_server_message_unpause(msg);
  }
  g_free(line);
}

static void
relay_set_state(Relay *r, RelayState state)
{
  if (r->state == state)
    return;
  r->state = state;
  relay_notify(r);
}

/* Frees the name for a new upload; tells a draining hub when the last
 * relay is over. */
static void
relay_unlist(Relay *r)
{
  if (!r->listed)
    return;
  r->listed = FALSE;
  FerryRelayHub *hub = r->hub;
  g_hash_table_remove(hub->relays, r->name); /* drops the table's reference */
  if (hub->draining && g_hash_table_size(hub->relays) == 0 && hub->idle != NULL) {
    GSourceFunc idle = hub->idle;
    hub->idle = NULL;
    idle(hub->idle_data);
  }
}

/* Ends the relay: the uploader hears status and text (status 0: the
 * connection is just closed), downloads still running are cut, watchers
 * hear the end, and the name is free again. */
static void
relay_end(Relay *r, gboolean ok, guint status, const char *slug, const char *text)
{
  FerryRelayHub *hub = r->hub;
  if (r->state == STATE_DONE || r->state == STATE_FAILED)
    return;
  relay_ref(r);
  g_info("event=relay-%s name=%s received=%" G_GUINT64_FORMAT " delivered=%" G_GUINT64_FORMAT
         " reason=%s",
         ok ? "done" : "fail", r->name, r->received, relay_delivered(r), slug ? slug : "ok");
  if (ok)
    hub->completed++;
  else
    hub->failed++;
  if (slug != NULL)
    ferry_metrics_refusal(hub->metrics, slug);
  if (!ok)
    r->error = g_strdup(text);
  if (r->up != NULL) {
    FerryRelayConn *up = g_steal_pointer(&r->up);
    if (status == 0)
      ferry_relay_conn_free(up);
    else
      linger_start(hub, up, text_response(status, slug, text));
  }
  for (guint i = 0; i < r->downs->len; i++) {
    Down *d = r->downs->pdata[i];
    if (d->conn != NULL && d->state != DOWN_DONE)
      g_clear_pointer(&d->conn, ferry_relay_conn_free);
    if (d->state == DOWN_ACTIVE || d->state == DOWN_CUT)
      d->state = DOWN_FAILED;
  }
  g_clear_pointer(&r->ring, g_free);
  relay_set_state(r, ok ? STATE_DONE : STATE_FAILED);
  /* Their last line is queued: libsoup writes it and ends the streams. */
  for (guint i = 0; i < r->watchers->len; i++) {
    g_signal_handlers_disconnect_by_data(r->watchers->pdata[i], r);
    relay_unref(r);
  }
  g_ptr_array_set_size(r->watchers, 0);
  relay_unlist(r);
  relay_unref(r);
}

static void
relay_fail(Relay *r, guint status, const char *slug, const char *text)
{
  relay_end(r, FALSE, status, slug, text);
}

/* The lowest offset some download may still need: bytes below it can be
 * overwritten. Without a download in progress nothing is dropped while
 * another download may still come. */
static guint64
relay_floor(const Relay *r)
{
  guint64 floor = G_MAXUINT64;
  for (guint i = 0; i < r->downs->len; i++) {
    const Down *d = r->downs->pdata[i];
    if (d->state == DOWN_ACTIVE || d->state == DOWN_CUT)
      floor = MIN(floor, d->pos);
  }
  if (floor != G_MAXUINT64)
    return floor;
  return r->downloads_started < r->downloads_max ? r->base : r->end;
}

/* How many more file bytes may be read now. Before the first download
 * the whole window may fill; once downloads run, the upload reads ahead
 * of the slowest by at most half the window, so at least the other half
 * stays as history a broken download can resume from. */
static guint64
relay_room(const Relay *r)
{
  guint64 floor = MAX(relay_floor(r), r->base);
  guint64 ahead = r->end - MIN(floor, r->end);
  guint64 limit = r->downloads_started > 0 ? r->hub->window / 2 : r->hub->window;
  return limit > ahead ? limit - ahead : 0;
}

/* Appends file bytes at `end`, overwriting the oldest history if needed
 * (the caller checked relay_room()). */
static void
ring_append(Relay *r, const guint8 *data, gsize len)
{
  guint64 window = r->hub->window;
  while (len > 0) {
    gsize at = (gsize)(r->end % window);
    gsize n = MIN(len, (gsize)window - at);
    memcpy(r->ring + at, data, n);
    data += n;
    len -= n;
    r->end += n;
  }
  if (r->end - r->base > window)
    r->base = r->end - window;
}

/* The file is complete: downloads can write their last bytes. */
static void
relay_eof(Relay *r)
{
  if (r->eof)
    return;
  r->eof = TRUE;
  r->length = (gint64)r->end;
  relay_notify(r);
}

/* Counts n decoded file bytes; FALSE (and the relay failed) when they
 * take the file over --relay-max-size. */
static gboolean
relay_count_input(Relay *r, gsize n)
{
  FerryRelayHub *hub = r->hub;
  if (hub->max_size > 0 && r->received + n > hub->max_size) {
    char *text = g_strdup_printf("%s is larger than this server's relay limit of %" G_GUINT64_FORMAT
                                 " bytes (--relay-max-size); send it with ferry send, or split it",
                                 r->name, hub->max_size);
    relay_fail(r, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "relay-too-large", text);
    g_free(text);
    return FALSE;
  }
  r->received += n;
  r->progress_us = g_get_monotonic_time();
  return TRUE;
}

static void
on_file_bytes(const guint8 *data, gsize len, gpointer user_data)
{
  Relay *r = user_data;
  if (r->eof || r->ring == NULL || len == 0 || !relay_count_input(r, len))
    return;
  ring_append(r, data, len);
}

static void
on_body_bytes(const guint8 *data, gsize len, gpointer user_data)
{
  Relay *r = user_data;
  if (r->mp == NULL) {
    on_file_bytes(data, len, r);
    return;
  }
  int rc = ferry_multipart_feed(r->mp, data, len);
  if (rc < 0) {
    relay_fail(r, SOUP_STATUS_BAD_REQUEST, "relay-bad-form",
               rc == FERRY_ERR_TOO_LONG
                   ? "a part's headers in this form are over 8 KiB; upload with curl -T FILE or "
                     "curl -F file=@FILE"
                   : "this body is not multipart/form-data with the boundary its Content-Type "
                     "names; upload with curl -T FILE or curl -F file=@FILE");
  } else if (ferry_multipart_file_done(r->mp)) {
    relay_eof(r);
  }
}

/* The request body has been read to its end. */
static void
up_body_done(Relay *r)
{
  r->body_done = TRUE;
  if (r->mp != NULL && !ferry_multipart_file_done(r->mp)) {
    int rc = ferry_multipart_finish(r->mp);
    if (rc != 0) {
      relay_fail(r, SOUP_STATUS_BAD_REQUEST, "relay-bad-form",
                 rc == FERRY_ERR_NOT_FOUND
                     ? "this form has no file in it; upload with curl -F file=@FILE (or curl -T "
                       "FILE)"
                     : "this form ended inside its file part; upload again");
      return;
    }
  }
  relay_eof(r);
}

/* Reads the upload while the window has room. FALSE once the relay ended. */
static gboolean
up_pump(Relay *r)
{
  gsize moved = 0;

  while (r->up != NULL && !r->body_done && moved < PUMP_BUDGET) {
    guint64 room = r->eof ? DECODE_PIECE : relay_room(r);
    gssize n;
    if (r->framing == FRAME_LENGTH && r->mp == NULL) {
      /* The fast path: straight from the socket into the ring. */
      gsize at = (gsize)(r->end % r->hub->window);
      gsize want = (gsize)MIN(MIN(room, r->body_left), (guint64)(r->hub->window - at));
      want = MIN(want, (gsize)READ_PIECE);
      if (want == 0)
        break;
      n = ferry_relay_conn_read(r->up, r->ring + at, want);
      if (n > 0) {
        if (!relay_count_input(r, (gsize)n))
          return FALSE;
        r->end += (guint64)n;
        if (r->end - r->base > r->hub->window)
          r->base = r->end - r->hub->window;
        r->body_left -= (guint64)n;
        if (r->body_left == 0)
          up_body_done(r);
      }
    } else {
      if (room <= DECODE_SLACK)
        break;
      gsize want = (gsize)MIN(room - DECODE_SLACK, (guint64)DECODE_PIECE);
      if (r->framing == FRAME_LENGTH)
        want = (gsize)MIN((guint64)want, r->body_left);
      n = ferry_relay_conn_read(r->up, r->raw, want);
      if (n > 0) {
        if (r->framing == FRAME_LENGTH) {
          r->body_left -= (guint64)n;
          on_body_bytes(r->raw, (gsize)n, r);
          if (r->state == STATE_FAILED)
            return FALSE;
          if (r->body_left == 0)
            up_body_done(r);
        } else {
          gssize used = ferry_chunked_feed(&r->chunked, r->raw, (gsize)n, on_body_bytes, r);
          if (r->state == STATE_FAILED)
            return FALSE;
          if (used < 0) {
            relay_fail(r, SOUP_STATUS_BAD_REQUEST, "relay-bad-chunked",
                       "this upload's chunked body is malformed; upload again with curl -T FILE");
            return FALSE;
          }
          if (ferry_chunked_done(&r->chunked))
            up_body_done(r);
        }
      }
    }
    if (r->state == STATE_FAILED)
      return FALSE;
    if (n == FERRY_RELAY_IO_AGAIN)
      break;
    if (n <= 0) {
      relay_fail(r, 0, "relay-upload-cut",
                 r->framing == FRAME_CHUNKED
                     ? "the upload ended without its last chunk; upload again"
                     : "the uploader went away before the end of its body; upload again");
      return FALSE;
    }
    moved += (gsize)n;
  }
  return TRUE;
}

/* --- downloads --- */

static gssize
down_write(Down *d, const guint8 *data, gsize len)
{
  return ferry_relay_conn_write(d->conn, data, len);
}

/* A download's connection broke: it may come back with a Range request
 * for --relay-resume-wait; its position keeps its bytes in the window. */
static void
down_cut(Down *d)
{
  Relay *r = d->r;
  g_clear_pointer(&d->conn, ferry_relay_conn_free);
  d->state = d->zip != NULL ? DOWN_FAILED : DOWN_CUT; /* a zip cannot resume */
  d->cut_us = g_get_monotonic_time();
  g_info("event=relay-download-cut name=%s at=%" G_GUINT64_FORMAT, r->name, d->pos);
  relay_notify(r);
}

static void
down_done(Down *d)
{
  Relay *r = d->r;
  d->state = DOWN_DONE;
  r->downloads_done++;
  linger_start(r->hub, g_steal_pointer(&d->conn), NULL);
  g_info("event=relay-download-done name=%s bytes=%" G_GUINT64_FORMAT, r->name, d->pos);
  relay_notify(r);
}

/* The bytes this download sends next: *data and the contiguous length
 * there; returns how many are ready in all. For a zip download, tar bytes
 * from the ring are converted when its output has all gone out. FALSE in
 * *ok when the tar cannot be converted. */
static guint64
down_avail(Down *d, const guint8 **data, gsize *contiguous, gboolean *ok)
{
  Relay *r = d->r;
  guint64 window = r->hub->window;
  *ok = TRUE;
  if (d->zip == NULL) {
    gsize at = (gsize)(d->pos % window);
    *data = r->ring + at;
    *contiguous = (gsize)MIN(r->end - d->pos, window - at);
    return r->end - d->pos;
  }
  if (d->zout_off == d->zout->len) {
    GError *error = NULL;
    g_byte_array_set_size(d->zout, 0);
    d->zout_off = 0;
    if (d->pos < r->end) {
      gsize at = (gsize)(d->pos % window);
      gsize n = (gsize)MIN(MIN(r->end - d->pos, window - at), (guint64)ZIP_FEED);
      *ok = ferry_tar_zip_feed(d->zip, r->ring + at, n, d->zout, &error);
      d->pos += n;
    } else if (r->eof && !d->zip_finished) {
      *ok = ferry_tar_zip_finish(d->zip, d->zout, &error);
      d->zip_finished = TRUE;
    }
    if (!*ok) {
      g_info("event=relay-zip-fail name=%s reason=\"%s\"", r->name, error->message);
      g_error_free(error);
    }
  }
  *data = d->zout->data + d->zout_off;
  *contiguous = d->zout->len - d->zout_off;
  return *contiguous;
}

/* Writes what the download can take; sets what its connection waits for. */
static void
down_pump(Down *d)
{
  Relay *r = d->r;
  FerryRelayHub *hub = r->hub;
  gsize moved = 0;

  while (moved < PUMP_BUDGET) {
    gssize n;
    const guint8 *data = NULL;
    gsize contiguous = 0;
    gboolean ok = TRUE;
    guint64 avail = d->pend_off < d->pend->len ? 0 : down_avail(d, &data, &contiguous, &ok);
    if (d->pend_off == d->pend->len && !ok) {
      /* A tar the converter refuses: the zip is cut short, never resumed. */
      g_clear_pointer(&d->conn, ferry_relay_conn_free);
      d->state = DOWN_FAILED;
      relay_notify(r);
      return;
    }
    gboolean finished =
        r->eof && d->pos == r->end && avail == 0 && (d->zip == NULL || d->zip_finished);
    if (d->pend_off < d->pend->len) {
      n = down_write(d, d->pend->data + d->pend_off, d->pend->len - d->pend_off);
      if (n > 0) {
        d->pend_off += (gsize)n;
        if (d->pend_off == d->pend->len) {
          g_byte_array_set_size(d->pend, 0);
          d->pend_off = 0;
        }
        continue;
      }
    } else if (avail > 0 && (!d->chunked || d->chunk_left > 0)) {
      gsize len = contiguous;
      if (d->chunked)
        len = (gsize)MIN((guint64)len, d->chunk_left);
      n = down_write(d, data, len);
      if (n > 0) {
        if (d->zip != NULL)
          d->zout_off += (gsize)n;
        else
          d->pos += (guint64)n;
        if (d->chunked)
          d->chunk_left -= (guint64)n;
        hub->bytes += (guint64)n;
        r->progress_us = g_get_monotonic_time();
        moved += (gsize)n;
        continue;
      }
    } else if (avail > 0) {
      /* The next chunk: its size line (after the previous chunk's CRLF). */
      guint64 k = MIN(avail, (guint64)CHUNK_OUT);
      char line[32];
      int m = g_snprintf(line, sizeof line, "%s%" G_GINT64_MODIFIER "x\r\n",
                         d->in_chunk ? "\r\n" : "", k);
      g_byte_array_append(d->pend, (const guint8 *)line, (guint)m);
      d->in_chunk = TRUE;
      d->chunk_left = k;
      continue;
    } else if (finished) {
      if (d->chunked && !d->ending) {
        const char *last = d->in_chunk ? "\r\n0\r\n\r\n" : "0\r\n\r\n";
        g_byte_array_append(d->pend, (const guint8 *)last, (guint)strlen(last));
        d->ending = TRUE;
        continue;
      }
      down_done(d);
      return;
    } else if (d->zip != NULL && (d->pos < r->end || (r->eof && !d->zip_finished))) {
      continue; /* the converter took tar bytes and has no output yet */
    } else {
      /* Nothing to send yet: watch for the client going away meanwhile
       * (a write would show it otherwise). */
      guint8 probe[512];
      gssize p = ferry_relay_conn_read(d->conn, probe, sizeof probe);
      if (p == 0 || p == FERRY_RELAY_IO_ERROR) {
        down_cut(d);
        return;
      }
      ferry_relay_conn_want(d->conn, G_IO_IN);
      return;
    }
    if (n == FERRY_RELAY_IO_AGAIN) {
      ferry_relay_conn_want(d->conn, G_IO_OUT);
      return;
    }
    down_cut(d);
    return;
  }
  ferry_relay_conn_want(d->conn, G_IO_OUT);
}

/* Decides whether the relay is over: every download that started is done
 * or failed, and no other download can still come (all were used, or byte
 * 0 has left the window). */
static void
relay_check_end(Relay *r)
{
  if (r->state == STATE_DONE || r->state == STATE_FAILED)
    return;
  guint running = 0;
  guint64 cut_at = 0;
  for (guint i = 0; i < r->downs->len; i++) {
    Down *d = r->downs->pdata[i];
    if (d->state == DOWN_ACTIVE || d->state == DOWN_CUT)
      running++;
    if (d->state == DOWN_FAILED)
      cut_at = MAX(cut_at, d->pos);
  }
  if (running > 0 || r->downloads_started == 0)
    return;
  gboolean more_possible = r->downloads_started < r->downloads_max && r->base == 0;
  if (r->downloads_done == 0) {
    if (more_possible)
      return;
    char *text = g_strdup_printf(
        "the downloader of %s disconnected after %" G_GUINT64_FORMAT
        " bytes and did not resume within %d s (--relay-resume-wait); the relay is over — upload "
        "again and share the new link",
        r->name, cut_at, r->hub->resume_wait);
    relay_fail(r, SOUP_STATUS_BAD_GATEWAY, "relay-download-cut", text);
    g_free(text);
    return;
  }
  if (!r->eof || more_possible)
    return;
  char *text = r->downloads_done == 1
                   ? g_strdup_printf("%s: %" G_GINT64_FORMAT " bytes delivered to the downloader",
                                     r->name, r->length)
                   : g_strdup_printf("%s: %" G_GINT64_FORMAT " bytes delivered to %u downloaders",
                                     r->name, r->length, r->downloads_done);
  relay_end(r, TRUE, SOUP_STATUS_OK, NULL, text);
  g_free(text);
}

/* Moves what can be moved and sets what every connection waits for. */
static void
relay_pump(Relay *r)
{
  if (r->pumping || r->state == STATE_DONE || r->state == STATE_FAILED)
    return;
  relay_ref(r);
  r->pumping = TRUE;
  if (up_pump(r)) {
    for (guint i = 0; i < r->downs->len; i++) {
      Down *d = r->downs->pdata[i];
      if (d->state == DOWN_ACTIVE)
        down_pump(d);
    }
    /* Downloads made room: the upload is read again on its next wake-up. */
    if (r->up != NULL) {
      gboolean reading = !r->body_done && (r->eof || relay_room(r) > DECODE_SLACK);
      ferry_relay_conn_want(r->up, reading ? G_IO_IN : 0);
    }
  }
  r->pumping = FALSE;
  relay_check_end(r);
  relay_unref(r);
}

static void
on_conn_ready(FerryRelayConn *conn, gpointer user_data)
{
  (void)conn;
  relay_pump(user_data);
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
answer_unauthorized(FerryRelayHub *hub, SoupServerMessage *msg)
{
  soup_message_headers_replace(soup_server_message_get_response_headers(msg), "WWW-Authenticate",
                               "Bearer realm=\"ferry relay\"");
  answer_text(hub, msg, SOUP_STATUS_UNAUTHORIZED, "relay-unauthorized",
              "uploading to this relay needs its secret: add -H 'Authorization: Bearer "
              "SECRET' (or ?token=SECRET) with the secret ferry serve was given "
              "(--relay-secret)");
}

static void
answer_off(FerryRelayHub *hub, SoupServerMessage *msg)
{
  answer_text(hub, msg, SOUP_STATUS_NOT_FOUND, "relay-off",
              "the HTTP relay is off on this server; " ENABLE_RELAY_HINT
              ", or --relay-anonymous to take uploads without one");
}

/* The client's address: the last X-Forwarded-For entry behind a trusted
 * proxy (--trust-proxy), else the peer's. */
static char *
client_address(FerryRelayHub *hub, SoupServerMessage *msg)
{
  if (hub->trust_proxy) {
    const char *xff = soup_message_headers_get_list(soup_server_message_get_request_headers(msg),
                                                    "X-Forwarded-For");
    if (xff != NULL && *xff != '\0') {
      const char *last = strrchr(xff, ',');
      char *ip = g_strstrip(g_strdup(last ? last + 1 : xff));
      if (*ip != '\0' && g_hostname_is_ip_address(ip))
        return ip;
      g_free(ip);
    }
  }
  const char *host = soup_server_message_get_remote_host(msg);
  return g_strdup(host ? host : "unknown");
}

/* Takes one upload token from the client's bucket; answers 429 if none. */
static gboolean
rate_ok(FerryRelayHub *hub, SoupServerMessage *msg)
{
  if (hub->ip_rate <= 0)
    return TRUE;
  char *ip = client_address(hub, msg);
  FerryBucket *b = g_hash_table_lookup(hub->ips, ip);
  if (b == NULL) {
    b = g_new0(FerryBucket, 1);
    g_hash_table_insert(hub->ips, g_strdup(ip), b);
  }
  double rate = hub->ip_rate / 60.0;
  gboolean ok = ferry_bucket_take(b, rate, MAX(hub->ip_rate, 1.0), g_get_monotonic_time());
  if (!ok) {
    char ra[16];
    g_snprintf(ra, sizeof ra, "%d", ferry_bucket_retry_after(b, rate));
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Retry-After", ra);
    char *text = g_strdup_printf("your address (%s) started more uploads than this server allows "
                                 "(%g a minute, --relay-ip-rate); try again in %s s",
                                 ip, hub->ip_rate, ra);
    answer_text(hub, msg, 429, "relay-rate-limited", text);
    g_free(text);
  }
  g_free(ip);
  return ok;
}

static gboolean
query_flag(GHashTable *query, const char *key)
{
  const char *v = query != NULL ? g_hash_table_lookup(query, key) : NULL;
  return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

static void
take_upload(FerryRelayHub *hub, SoupServerMessage *msg, Relay *r, gboolean expect_continue)
{
  GError *error = NULL;
  r->up = ferry_relay_conn_steal(msg, &error);
  if (r->up == NULL) {
    g_info("event=relay-upload-lost name=%s reason=\"%s\"", r->name, error->message);
    g_error_free(error);
    r->body_done = TRUE;
    relay_fail(r, 0, "relay-upload-cut", "the uploader went away");
    return;
  }
  ferry_relay_conn_set_ready(r->up, on_conn_ready, r);
  if (expect_continue) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    /* A fresh connection has room for 25 bytes; if not, it is broken. */
    if (ferry_relay_conn_write(r->up, (const guint8 *)cont, sizeof cont - 1) !=
        (gssize)(sizeof cont - 1)) {
      relay_fail(r, 0, "relay-upload-cut", "the uploader went away");
      return;
    }
  }
  (void)hub;
  relay_pump(r);
}

void
ferry_relay_early_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                          GHashTable *query, gpointer user_data)
{
  FerryRelayHub *hub = user_data;
  const char *method = soup_server_message_get_method(msg);
  SoupMessageHeaders *req = soup_server_message_get_request_headers(msg);
  (void)soup;

  if (method != SOUP_METHOD_PUT && method != SOUP_METHOD_POST)
    return;
  /* Nothing of an upload is ever kept whole, refused or not. */
  soup_message_body_set_accumulate(soup_server_message_get_request_body(msg), FALSE);
  if (!ferry_relay_hub_enabled(hub)) {
    answer_off(hub, msg);
    return;
  }
  if (!authorized(hub, msg, query)) {
    answer_unauthorized(hub, msg);
    return;
  }
  const char *name = name_of(hub, msg, path);
  if (name == NULL)
    return;
  if (hub->draining) {
    soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Retry-After", "5");
    answer_text(hub, msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "relay-draining",
                "this server is shutting down and takes no new uploads; upload again in a "
                "moment (to this server once restarted, or another)");
    return;
  }
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
  guint downloads = 1;
  const char *dl = query != NULL ? g_hash_table_lookup(query, "downloads") : NULL;
  if (dl != NULL) {
    char *end;
    guint64 v = g_ascii_strtoull(dl, &end, 10);
    if (end == dl || *end != '\0' || v < 1 || v > hub->max_downloads) {
      char *text = g_strdup_printf("downloads=%s: a link serves 1 to %u downloads on this server "
                                   "(--relay-max-downloads); give a number in that range",
                                   dl, hub->max_downloads);
      answer_text(hub, msg, SOUP_STATUS_BAD_REQUEST, "relay-bad-downloads", text);
      g_free(text);
      return;
    }
    downloads = (guint)v;
  }
  SoupEncoding encoding = soup_message_headers_get_encoding(req);
  guint64 body_length = encoding == SOUP_ENCODING_CONTENT_LENGTH
                            ? (guint64)soup_message_headers_get_content_length(req)
                            : 0;
  gint64 length =
      method == SOUP_METHOD_PUT && encoding != SOUP_ENCODING_CHUNKED ? (gint64)body_length : -1;
  if (hub->max_size > 0 && length > 0 && (guint64)length > hub->max_size) {
    char *text = g_strdup_printf("%s is larger than this server's relay limit of %" G_GUINT64_FORMAT
                                 " bytes (--relay-max-size); send it with ferry send, or split it",
                                 name, hub->max_size);
    answer_text(hub, msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, "relay-too-large", text);
    g_free(text);
    return;
  }
  char *boundary = NULL;
  const char *type = NULL;
  GHashTable *params = NULL;
  type = soup_message_headers_get_content_type(req, &params);
  gboolean tar = type != NULL && g_ascii_strcasecmp(type, "application/x-tar") == 0;
  if (method == SOUP_METHOD_POST) {
    const char *b = params != NULL ? g_hash_table_lookup(params, "boundary") : NULL;
    if (type != NULL && g_ascii_strcasecmp(type, "multipart/form-data") == 0 && b != NULL &&
        *b != '\0' && strlen(b) <= FERRY_MULTIPART_MAX_BOUNDARY)
      boundary = g_strdup(b);
  }
  g_clear_pointer(&params, g_hash_table_destroy);
  if (method == SOUP_METHOD_POST && boundary == NULL) {
    answer_text(hub, msg, SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE, "relay-bad-form",
                "a POST upload must be multipart/form-data with a boundary; use curl -F "
                "file=@FILE (or PUT with curl -T FILE)");
    return;
  }
  if (!rate_ok(hub, msg)) {
    g_free(boundary);
    return;
  }

  Relay *r = g_new0(Relay, 1);
  r->hub = hub;
  r->refs = 1; /* the table's */
  r->name = g_strdup(name);
  r->listed = TRUE;
  r->length = length;
  r->framing = encoding == SOUP_ENCODING_CHUNKED ? FRAME_CHUNKED : FRAME_LENGTH;
  r->body_left = body_length;
  ferry_chunked_init(&r->chunked);
  r->folder =
      tar || g_strcmp0(query != NULL ? g_hash_table_lookup(query, "kind") : NULL, "folder") == 0;
  r->encrypted = query_flag(query, "encrypted");
  r->downloads_max = downloads;
  r->ring = g_malloc((gsize)hub->window);
  if (r->framing == FRAME_CHUNKED || boundary != NULL)
    r->raw = g_malloc(DECODE_PIECE);
  r->downs = g_ptr_array_new_with_free_func((GDestroyNotify)down_free);
  r->watchers = g_ptr_array_new_with_free_func(g_object_unref);
  r->created_us = r->progress_us = g_get_monotonic_time();
  if (boundary != NULL)
    r->mp = ferry_multipart_new(boundary, on_file_bytes, r);
  g_free(boundary);
  g_hash_table_insert(hub->relays, r->name, r);
  hub->started++;
  g_info("event=relay-upload name=%s length=%" G_GINT64_FORMAT " folder=%d encrypted=%d "
         "downloads=%u",
         r->name, length, r->folder, r->encrypted, downloads);
  gboolean expect = (soup_message_headers_get_expectations(req) & SOUP_EXPECTATION_CONTINUE) != 0;
  relay_ref(r);
  if (body_length == 0 && r->framing == FRAME_LENGTH) {
    r->body_done = TRUE;
    take_upload(hub, msg, r, FALSE);
    if (r->mp != NULL)
      up_body_done(r);
    else
      relay_eof(r);
  } else {
    take_upload(hub, msg, r, expect);
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
  FerryRelayPage info = {
      .name = r->name, .size = r->length, .folder = r->folder, .encrypted = r->encrypted};
  const char *csp = NULL;
  char *page = ferry_relay_page_render(&info, &csp);
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_replace(h, "Cache-Control", "no-store");
  soup_message_headers_replace(h, "Content-Security-Policy", csp);
  soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response(msg, "text/html; charset=utf-8", SOUP_MEMORY_TAKE, page,
                                   strlen(page));
}

/* The file name a download is saved as: NAME, with .tar for a folder or
 * .ferry-enc for ciphertext unless NAME ends so already. */
static char *
download_filename(const Relay *r)
{
  const char *suffix = r->encrypted ? ".ferry-enc" : r->folder ? ".tar" : "";
  if (g_str_has_suffix(r->name, suffix))
    return g_strdup(r->name);
  return g_strconcat(r->name, suffix, NULL);
}

/* The response headers of a download starting at byte `from`. */
static void
down_headers(Down *d, guint64 from, gboolean partial)
{
  Relay *r = d->r;
  char *filename = download_filename(r);
  const char *type = r->encrypted ? "application/octet-stream"
                     : r->folder  ? "application/x-tar"
                                  : "application/octet-stream";
  if (d->zip != NULL) {
    char *stem = g_str_has_suffix(filename, ".tar") ? g_strndup(filename, strlen(filename) - 4)
                                                    : g_strdup(filename);
    g_free(filename);
    filename = g_strconcat(stem, ".zip", NULL);
    g_free(stem);
    type = "application/zip";
  }
  GString *h = g_string_new(NULL);
  g_string_append_printf(h, "HTTP/1.1 %s\r\nContent-Type: %s\r\n",
                         partial ? "206 Partial Content" : "200 OK", type);
  g_string_append_printf(h, "Content-Disposition: attachment; filename=\"%s\"\r\n", filename);
  /* says what the bytes are even when they are ciphertext */
  if (r->folder && d->zip == NULL)
    g_string_append(h, "X-Ferry-Kind: folder\r\n");
  if (r->length >= 0 && d->zip == NULL) {
    g_string_append_printf(h, "Content-Length: %" G_GUINT64_FORMAT "\r\nAccept-Ranges: bytes\r\n",
                           (guint64)r->length - from);
    if (partial)
      g_string_append_printf(h,
                             "Content-Range: bytes %" G_GUINT64_FORMAT "-%" G_GINT64_FORMAT
                             "/%" G_GINT64_FORMAT "\r\n",
                             from, r->length - 1, r->length);
  } else {
    g_string_append(h, "Transfer-Encoding: chunked\r\n");
    d->chunked = TRUE;
  }
  g_string_append(h, "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                     "Server: ferry/" FERRY_VERSION "\r\nConnection: close\r\n\r\n");
  g_byte_array_set_size(d->pend, 0);
  g_byte_array_append(d->pend, (const guint8 *)h->str, (guint)h->len);
  d->pend_off = 0;
  d->in_chunk = FALSE;
  d->chunk_left = 0;
  d->ending = FALSE;
  g_string_free(h, TRUE);
  g_free(filename);
}

/* Parses "bytes=N-" (or "bytes=N-M" reaching the last byte of a file of
 * length); -1 when there is no Range header, -2 when it asks for
 * something else. */
static gint64
range_start(SoupServerMessage *msg, gint64 length)
{
  const char *range =
      soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Range");
  if (range == NULL)
    return -1;
  if (!g_str_has_prefix(range, "bytes=") || !g_ascii_isdigit(range[6]))
    return -2;
  char *end;
  guint64 from = g_ascii_strtoull(range + 6, &end, 10);
  if (*end != '-' || from > G_MAXINT64)
    return -2;
  end++;
  if (*end != '\0') {
    char *stop;
    guint64 to = g_ascii_strtoull(end, &stop, 10);
    if (*stop != '\0' || length < 0 || to + 1 < (guint64)length)
      return -2;
  }
  return (gint64)from;
}

static void
start_download(Relay *r, SoupServerMessage *msg, Down *d, guint64 from, gboolean partial)
{
  GError *error = NULL;
  FerryRelayConn *conn = ferry_relay_conn_steal(msg, &error);
  if (conn == NULL) {
    g_info("event=relay-download-lost name=%s reason=\"%s\"", r->name, error->message);
    g_error_free(error);
    if (d->state != DOWN_CUT) {
      d->state = DOWN_CUT;
      d->cut_us = g_get_monotonic_time();
    }
    return;
  }
  d->conn = conn;
  d->state = DOWN_ACTIVE;
  d->pos = from;
  down_headers(d, from, partial);
  ferry_relay_conn_set_ready(conn, on_conn_ready, r);
  r->progress_us = g_get_monotonic_time();
  relay_set_state(r, STATE_SENDING);
  relay_pump(r);
}

static void
answer_status(Relay *r, SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
  soup_message_headers_set_encoding(h, SOUP_ENCODING_CHUNKED);
  soup_message_headers_replace(h, "Content-Type", "application/x-ndjson");
  soup_message_headers_replace(h, "Cache-Control", "no-store");
  soup_message_body_set_accumulate(soup_server_message_get_response_body(msg), FALSE);
  soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
  g_ptr_array_add(r->watchers, g_object_ref(msg));
  g_signal_connect(msg, "finished", G_CALLBACK(on_watcher_finished), relay_ref(r));
  char *line = status_line(r);
  soup_message_body_append(soup_server_message_get_response_body(msg), SOUP_MEMORY_TAKE, line,
                           strlen(line));
}

static void
answer_download(FerryRelayHub *hub, Relay *r, SoupServerMessage *msg, GHashTable *query)
{
  const char *format = query != NULL ? g_hash_table_lookup(query, "format") : NULL;
  gboolean zip = format != NULL && strcmp(format, "zip") == 0;
  if (zip) {
    gboolean refused = TRUE;
    if (r->encrypted) {
      answer_text(hub, msg, SOUP_STATUS_CONFLICT, "relay-zip-encrypted",
                  "this link is encrypted end to end, so the server cannot make a zip of it; "
                  "download without format=zip and decrypt (the landing page or ferry receive "
                  "URL does both)");
    } else if (!r->folder) {
      answer_text(hub, msg, SOUP_STATUS_CONFLICT, "relay-zip-not-folder",
                  "this link is a single file, not a folder, so there is no zip of it; download "
                  "without format=zip");
    } else if (range_start(msg, r->length) != -1) {
      answer_text(hub, msg, SOUP_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE, "relay-cannot-resume",
                  "a zip is made on the fly and cannot be resumed; download it again from the "
                  "start (without -C / -c), or download the tar (without format=zip), which can");
    } else {
      refused = FALSE;
    }
    if (refused)
      return;
  }
  gint64 from = range_start(msg, r->length);
  if (from == -2) {
    answer_text(hub, msg, SOUP_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE, "relay-bad-range",
                "this relay resumes only with 'Range: bytes=N-' (curl -C -, wget -c); download "
                "without a range, or with that one");
    return;
  }
  Down *cut = NULL;
  for (guint i = 0; i < r->downs->len && cut == NULL; i++)
    if (((Down *)r->downs->pdata[i])->state == DOWN_CUT)
      cut = r->downs->pdata[i];
  if (from >= 0) {
    char *text = NULL;
    const char *slug = NULL;
    if (r->length < 0) {
      slug = "relay-cannot-resume";
      text = g_strdup_printf("the size of %s is not known yet (it is uploaded chunked or as a "
                             "form), so this relay cannot resume a download of it; download it "
                             "again from the start (without -C / -c)",
                             r->name);
    } else if ((guint64)from < r->base || (guint64)from > r->end || from >= r->length) {
      slug = "relay-resume-gone";
      text = g_strdup_printf("byte %" G_GINT64_FORMAT " of %s is no longer held by this server "
                             "(it keeps bytes %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                             " of %" G_GINT64_FORMAT " now, --relay-window); ask the sender to "
                             "upload it again",
                             from, r->name, r->base, r->end, r->length);
    } else if (cut == NULL && r->downloads_started >= r->downloads_max) {
      slug = "relay-taken";
      text = g_strdup_printf("%s is being downloaded already (%u of %u downloads) and no download "
                             "of it is waiting to resume; ask the sender to upload it again",
                             r->name, r->downloads_started, r->downloads_max);
    }
    if (slug != NULL) {
      SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
      if (r->length >= 0) {
        char cr[48];
        g_snprintf(cr, sizeof cr, "bytes */%" G_GINT64_FORMAT, r->length);
        soup_message_headers_replace(h, "Content-Range", cr);
      }
      answer_text(hub, msg,
                  strcmp(slug, "relay-taken") == 0 ? SOUP_STATUS_GONE
                                                   : SOUP_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE,
                  slug, text);
      g_free(text);
      return;
    }
    if (cut != NULL) {
      hub->resumed++;
      g_info("event=relay-resume name=%s from=%" G_GINT64_FORMAT, r->name, from);
      start_download(r, msg, cut, (guint64)from, TRUE);
      return;
    }
  } else if (r->downloads_started >= r->downloads_max) {
    char *text =
        r->downloads_max == 1
            ? g_strdup_printf("%s is being downloaded already, and a link works once; ask "
                              "the sender to upload it again",
                              r->name)
            : g_strdup_printf("%s has had all its %u downloads; ask the sender to upload it again",
                              r->name, r->downloads_max);
    answer_text(hub, msg, SOUP_STATUS_GONE, "relay-taken", text);
    g_free(text);
    return;
  } else if (r->base > 0) {
    char *text = g_strdup_printf(
        "the start of %s has already left this server (it holds the last %" G_GUINT64_FORMAT
        " bytes, --relay-window, and other downloads have moved past them); every download of "
        "a link must start before that — ask the sender to upload it again",
        r->name, r->hub->window);
    answer_text(hub, msg, SOUP_STATUS_GONE, "relay-window-passed", text);
    g_free(text);
    return;
  }
  Down *d = g_new0(Down, 1);
  d->r = r;
  d->pend = g_byte_array_new();
  if (zip) {
    d->zip = ferry_tar_zip_new();
    d->zout = g_byte_array_new();
    d->chunked = TRUE;
  }
  g_ptr_array_add(r->downs, d);
  r->downloads_started++;
  hub->downloads++;
  g_info("event=relay-download name=%s from=%" G_GINT64_FORMAT, r->name, MAX(from, 0));
  start_download(r, msg, d, (guint64)MAX(from, 0), from >= 0);
}

void
ferry_relay_handler(SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query,
                    gpointer user_data)
{
  FerryRelayHub *hub = user_data;
  const char *method = soup_server_message_get_method(msg);
  (void)soup;

  if (method == SOUP_METHOD_PUT || method == SOUP_METHOD_POST) {
    /* Accepted uploads were taken over in the early handler. */
    answer_text(hub, msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "relay-lost",
                "this upload lost its relay; upload again");
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
  gboolean status = query_flag(query, "status");
  if (status && !authorized(hub, msg, query)) {
    answer_unauthorized(hub, msg);
    return;
  }
  Relay *r = g_hash_table_lookup(hub->relays, name);
  if (r == NULL) {
    char *text = g_strdup_printf("nothing is being sent as %s here: a link works only while "
                                 "its upload runs; ask the sender for a new link",
                                 name);
    answer_text(hub, msg, SOUP_STATUS_NOT_FOUND, "relay-not-found", text);
    g_free(text);
    return;
  }
  if (status)
    answer_status(r, msg);
  else if (wants_html(msg, query))
    answer_landing(r, msg);
  else
    answer_download(hub, r, msg, query);
}

/* --- timers and the hub --- */

/* Every TICK_MS: status lines, and once a second the deadlines. */
static void
relay_tick(Relay *r, gint64 now, gboolean deadlines)
{
  FerryRelayHub *hub = r->hub;
  relay_notify(r);
  if (!deadlines || !r->listed)
    return;
  gboolean active = FALSE;
  for (guint i = 0; i < r->downs->len; i++) {
    Down *d = r->downs->pdata[i];
    if (d->state == DOWN_CUT && now - d->cut_us > (gint64)hub->resume_wait * G_USEC_PER_SEC) {
      d->state = DOWN_FAILED;
      relay_notify(r);
    }
    active |= d->state == DOWN_ACTIVE;
  }
  gboolean expired = now - r->created_us > (gint64)hub->ttl * G_USEC_PER_SEC;
  if (r->downloads_started == 0 && expired) {
    char *text = g_strdup_printf("no one downloaded %s within %d s (--relay-ttl); upload again "
                                 "and share the link sooner",
                                 r->name, hub->ttl);
    relay_fail(r, SOUP_STATUS_REQUEST_TIMEOUT, "relay-expired", text);
    g_free(text);
    return;
  }
  if (active && now - r->progress_us > (gint64)hub->idle_timeout * G_USEC_PER_SEC) {
    char *text = g_strdup_printf("%s: no byte moved for %d s (--relay-idle-timeout); the relay "
                                 "is over — upload again",
                                 r->name, hub->idle_timeout);
    relay_fail(r, SOUP_STATUS_REQUEST_TIMEOUT, "relay-idle", text);
    g_free(text);
    return;
  }
  /* Downloads that may still come stop waiting at --relay-ttl. */
  if (expired && r->downloads_done > 0 && r->downloads_started < r->downloads_max)
    r->downloads_max = r->downloads_started;
  relay_check_end(r);
}

static gboolean
tick(gpointer user_data)
{
  FerryRelayHub *hub = user_data;
  gint64 now = g_get_monotonic_time();
  gboolean deadlines = hub->ticks++ % (1000 / TICK_MS) == 0;
  GList *all = g_hash_table_get_values(hub->relays);

  for (GList *l = all; l != NULL; l = l->next)
    relay_ref(l->data);
  for (GList *l = all; l != NULL; l = l->next)
    relay_tick(l->data, now, deadlines);
  g_list_free_full(all, (GDestroyNotify)relay_unref);
  if (deadlines && hub->ip_rate > 0) {
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, hub->ips);
    while (g_hash_table_iter_next(&it, NULL, &value))
      if (ferry_bucket_is_full(value, hub->ip_rate / 60.0, MAX(hub->ip_rate, 1.0), now))
        g_hash_table_iter_remove(&it);
  }
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
  hub->trust_proxy = cfg->trust_proxy;
  hub->ttl = cfg->relay_ttl;
  hub->idle_timeout = cfg->relay_idle_timeout;
  hub->resume_wait = cfg->relay_resume_wait;
  hub->window = MAX(cfg->relay_window, (guint64)64 * 1024);
  hub->max_size = cfg->relay_max_size;
  hub->max = cfg->relay_max;
  hub->max_downloads = MAX(cfg->relay_max_downloads, 1u);
  hub->ip_rate = cfg->relay_ip_rate;
  hub->metrics = metrics;
  hub->relays = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, unlisted);
  hub->ips = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  hub->tick_id = g_timeout_add(TICK_MS, tick, hub);
  return hub;
}

gboolean
ferry_relay_hub_enabled(const FerryRelayHub *hub)
{
  return hub->secret != NULL || hub->anonymous;
}

void
ferry_relay_hub_drain(FerryRelayHub *hub, GSourceFunc idle, gpointer user_data)
{
  hub->draining = TRUE;
  hub->idle = NULL;
  g_message("event=relay-drain relays=%u", g_hash_table_size(hub->relays));
  if (g_hash_table_size(hub->relays) == 0) {
    idle(user_data);
    return;
  }
  hub->idle = idle;
  hub->idle_data = user_data;
}

guint
ferry_relay_hub_count(const FerryRelayHub *hub)
{
  return g_hash_table_size(hub->relays);
}

void
ferry_relay_hub_free(FerryRelayHub *hub)
{
  if (hub == NULL)
    return;
  g_clear_handle_id(&hub->tick_id, g_source_remove);
  hub->idle = NULL;
  GList *all = g_hash_table_get_values(hub->relays);
  for (GList *l = all; l != NULL; l = l->next) {
    Relay *r = relay_ref(l->data);
    relay_fail(r, 0, "relay-server-stopped", "the server stopped");
    relay_unref(r);
  }
  g_list_free(all);
  g_slist_free_full(hub->lingering, (GDestroyNotify)linger_free);
  g_hash_table_destroy(hub->relays);
  g_hash_table_destroy(hub->ips);
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
      "# HELP ferry_relays_completed_total HTTP relays whose downloads got every byte.\n"
      "# TYPE ferry_relays_completed_total counter\n"
      "ferry_relays_completed_total %" G_GUINT64_FORMAT "\n"
      "# HELP ferry_relays_failed_total HTTP relays that ended early.\n"
      "# TYPE ferry_relays_failed_total counter\nferry_relays_failed_total %" G_GUINT64_FORMAT "\n"
      "# HELP ferry_relay_downloads_total HTTP relay downloads started (resumptions not counted).\n"
      "# TYPE ferry_relay_downloads_total counter\n"
      "ferry_relay_downloads_total %" G_GUINT64_FORMAT "\n"
      "# HELP ferry_relay_resumes_total HTTP relay downloads resumed with a Range request.\n"
      "# TYPE ferry_relay_resumes_total counter\nferry_relay_resumes_total %" G_GUINT64_FORMAT "\n"
      "# HELP ferry_relay_bytes_total Bytes sent to HTTP relay downloaders.\n"
      "# TYPE ferry_relay_bytes_total counter\nferry_relay_bytes_total %" G_GUINT64_FORMAT "\n",
      g_hash_table_size(hub->relays), hub->started, hub->completed, hub->failed, hub->downloads,
      hub->resumed, hub->bytes);
}
