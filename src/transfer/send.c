/* The sender's side of a transfer (docs/protocol.md §8).
 *
 * The control stream carries the offer, then the manifest one ENTRY at a
 * time while the data streams already carry the first files: nothing is
 * hashed before it is sent. Chunks are read in order, one file after the
 * other, each data stream taking the next chunk when it has written its
 * last, so a big file spreads over every stream and small files go out
 * back to back with no round trip between them. A file's root hash is
 * known once its last chunk has been read; FILE_END then carries it.
 *
 * On a resumed transfer the receiver answers each ENTRY with a WANT that
 * lists the chunks it holds verified, with their hashes. The sender reads
 * and hashes those chunks too (it needs them for the root) and sends only
 * the ones whose hash differs: a source that changed since is sent again,
 * never mixed. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transfer/transfer-private.h"

#define CTL_AHEAD      (256 * 1024) /* manifest bytes queued ahead of the control stream */
#define CLOSE_DELAY_MS 300          /* to let an ABORT reach the peer before the close */

typedef struct {
  SendState *s;
  FerryStream *stream;
  GBytes *frame;   /* the CHUNK frame waiting for room */
  guint64 payload; /* file bytes in buf */
  gboolean busy;
  gboolean finished;
} DataStream;

typedef struct {
  int fd;
  guint64 n_chunks;
  guint64 next_chunk; /* the next to read */
  guint8 *hashes;     /* n_chunks × 32, filled as chunks are read */
  struct stat st;     /* at open */
  gboolean ended;     /* FILE_END or FILE_FAILED queued */
  gboolean has_want;
  guint64 want_n;
  guint8 *want_bitmap;
  guint8 *want_hashes; /* indexed by chunk: n_chunks × 32 when want_n > 0 */
} SendFile;

typedef enum { PHASE_OFFERED, PHASE_SENDING, PHASE_DRAINING, PHASE_OVER } Phase;

struct _SendState {
  FerryTransfer *t;
  FerrySource *src;
  FerryStream *ctl;
  FerryWireReader reader;
  GByteArray *ctl_out;
  Phase phase;
  gboolean resume;
  guint n_entries;
  guint next_entry; /* ENTRY frames queued so far */
  guint sched;      /* the entry whose chunks are being read */
  SendFile *files;
  DataStream *data;
  guint n_data;
  guint close_timer;
  guint rate_timer;           /* --limit-rate: resumes sending when the budget allows */
  gint64 rate_start;          /* monotonic us of the first chunk sent under the limit */
  guint64 rate_sent;          /* file bytes sent since */
  gboolean manifest_end_sent; /* for an empty manifest, which has no last entry */
};

static void pump(SendState *s);
static void ctl_flush(SendState *s);

static void fail(SendState *s, int code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Ends the transfer with an error; tells the receiver why when it may
 * still hear. */
static void
fail(SendState *s, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  if (s->phase != PHASE_OVER && s->ctl != NULL) {
    ferry_wire_put_message(s->ctl_out, FERRY_FRAME_ABORT, 0, msg);
    ctl_flush(s); /* the rest when writable */
  }
  s->phase = PHASE_OVER;
  GError *error = NULL;
  ferry_set_error(&error, code, "%s", msg);
  g_free(msg);
  ferry_transfer_finish_linger(s->t, error);
}

/* An ABORT not yet acknowledged by the receiver. */
static gboolean
send_lingering(FerryTransfer *t)
{
  SendState *s = t->send;
  return s->ctl != NULL && (s->ctl_out->len > 0 || ferry_stream_get_queued(s->ctl) > 0);
}

static gboolean
close_later(gpointer data)
{
  SendState *s = data;
  s->close_timer = 0;
  ferry_connection_close(s->t->conn, "transfer over");
  return G_SOURCE_REMOVE;
}

static void
ctl_flush(SendState *s)
{
  if (s->ctl_out->len == 0 || s->ctl == NULL)
    return;
  GError *error = NULL;
  gssize n = ferry_stream_write(s->ctl, s->ctl_out->data, s->ctl_out->len, &error);
  if (n < 0) {
    g_clear_error(&error);
    return; /* the stream's closed handler reports it */
  }
  if (n > 0)
    g_byte_array_remove_range(s->ctl_out, 0, (guint)n);
}

/* ---- reading the files ------------------------------------------------- */

static void
file_close(SendFile *f)
{
  if (f->fd >= 0)
    close(f->fd);
  f->fd = -1;
  g_clear_pointer(&f->hashes, g_free);
  g_clear_pointer(&f->want_bitmap, g_free);
  g_clear_pointer(&f->want_hashes, g_free);
}

/* A file could not be sent as scanned. With skip_errors the receiver is
 * told to drop it and the rest goes on; otherwise the transfer stops. */
static void
file_fail(SendState *s, guint id, const char *why)
{
  FerrySourceEntry *e = g_ptr_array_index(s->src->entries, id);
  SendFile *f = &s->files[id];
  char *msg = g_strdup_printf("cannot send '%s': %s", e->path, why);
  file_close(f);
  f->ended = TRUE;
  if (!s->src->skip_errors) {
    fail(s, FERRY_ERR_IO, "%s (use --skip-errors to send the rest)", msg);
  } else {
    ferry_wire_put_message(s->ctl_out, FERRY_FRAME_FILE_FAILED, id, msg);
    ferry_transfer_emit_file(s->t, FERRY_FILE_SKIPPED, e->type, e->path, NULL, e->size, msg);
  }
  g_free(msg);
}

static gboolean
same_source(const struct stat *st, const FerrySourceEntry *e)
{
  gint64 mtime = (gint64)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
  return (guint64)st->st_size == e->size && mtime == e->mtime_ns;
}

/* After the last chunk: the file must still be what was scanned, then its
 * root goes out. */
static void
file_end(SendState *s, guint id)
{
  FerrySourceEntry *e = g_ptr_array_index(s->src->entries, id);
  SendFile *f = &s->files[id];
  struct stat st;
  if (f->fd >= 0 && (fstat(f->fd, &st) != 0 || !same_source(&st, e) || st.st_ino != f->st.st_ino)) {
    file_fail(s, id, "it changed while it was being sent; send it again once it is stable");
    return;
  }
  guint8 root[FERRY_HASH_LEN];
  ferry_root_hash(s->src->chunk_size, e->size, f->hashes, root);
  ferry_wire_put_file_end(s->ctl_out, id, root);
  file_close(f);
  f->ended = TRUE;
}

static gboolean
file_open(SendState *s, guint id)
{
  FerrySourceEntry *e = g_ptr_array_index(s->src->entries, id);
  SendFile *f = &s->files[id];
  GError *error = NULL;
  f->fd = ferry_entry_open(e->source_dir, e->path, &error);
  if (f->fd < 0) {
    file_fail(s, id, error->message);
    g_error_free(error);
    return FALSE;
  }
  if (fstat(f->fd, &f->st) != 0 || !same_source(&f->st, e)) {
    file_fail(s, id, "it changed after it was scanned; send it again");
    return FALSE;
  }
  posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  f->n_chunks = ferry_chunk_count(e->size, s->src->chunk_size);
  f->hashes = g_malloc0(MAX(f->n_chunks, 1) * FERRY_HASH_LEN);
  return TRUE;
}

/* Fills ds with the next chunk to send. Returns FALSE when there is none
 * now (all sent, or the next file awaits its WANT). */
static gboolean
next_job(SendState *s, DataStream *ds)
{
  while (s->phase == PHASE_SENDING && s->sched < s->next_entry) {
    guint id = s->sched;
    FerrySourceEntry *e = g_ptr_array_index(s->src->entries, id);
    SendFile *f = &s->files[id];
    if (e->type != FERRY_ENTRY_FILE || f->ended) {
      s->sched++;
      continue;
    }
    if (s->resume && !f->has_want)
      return FALSE;
    if (f->fd < 0 && !file_open(s, id))
      continue;
    if (f->next_chunk == f->n_chunks) {
      file_end(s, id);
      continue;
    }
    guint64 i = f->next_chunk;
    guint64 off = i * s->src->chunk_size;
    guint32 len = (guint32)MIN((guint64)s->src->chunk_size, e->size - off);
    /* One buffer per CHUNK frame, handed to QUIC without a copy. */
    guint8 *frame = g_malloc(FERRY_WIRE_CHUNK_HEADER + (gsize)len);
    guint8 *data = frame + FERRY_WIRE_CHUNK_HEADER;
    gsize got = 0;
    while (got < len) {
      ssize_t n = pread(f->fd, data + got, len - got, (off_t)(off + got));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      got += (gsize)n;
    }
    if (got < len) {
      g_free(frame);
      file_fail(s, id, got == 0 && errno != 0 ? g_strerror(errno) : "it shrank while being sent");
      continue;
    }
    FerryWireChunk c = {id, i, len, {0}};
    ferry_chunk_hash(data, len, c.hash);
    memcpy(f->hashes + i * FERRY_HASH_LEN, c.hash, FERRY_HASH_LEN);
    f->next_chunk++;
    ferry_transfer_set_current(s->t, e->path, e->size, off + len);
    if (f->want_n > 0 && (f->want_bitmap[i / 8] >> (7 - i % 8) & 1) &&
        memcmp(f->want_hashes + i * FERRY_HASH_LEN, c.hash, FERRY_HASH_LEN) == 0) {
      /* The receiver holds this very chunk. */
      s->t->progress.bytes_done += len;
      s->t->progress.bytes_resumed += len;
      g_free(frame);
      continue;
    }
    ferry_wire_chunk_header(frame, &c);
    ds->frame = g_bytes_new_take(frame, FERRY_WIRE_CHUNK_HEADER + (gsize)len);
    ds->payload = len;
    ds->busy = TRUE;
    if (f->next_chunk == f->n_chunks)
      file_end(s, id);
    return TRUE;
  }
  return FALSE;
}

static gboolean
rate_resume(gpointer data)
{
  SendState *s = data;
  s->rate_timer = 0;
  pump(s);
  return G_SOURCE_REMOVE;
}

/* With a rate limit: whether another chunk may be read now. The budget
 * is the limit times the time since the first chunk (plus a quarter
 * second's worth, so sending starts at once); when it is spent, a timer
 * comes back once it allows more. */
static gboolean
rate_allows(SendState *s)
{
  guint64 rate = s->src->limit_rate;
  if (rate == 0)
    return TRUE;
  gint64 now = g_get_monotonic_time();
  if (s->rate_start == 0)
    s->rate_start = now;
  double budget = (double)rate * (double)(now - s->rate_start) / 1e6 + (double)rate / 4;
  if ((double)s->rate_sent < budget)
    return TRUE;
  if (s->rate_timer == 0) {
    double wait_ms = ((double)s->rate_sent - budget) * 1000.0 / (double)rate;
    s->rate_timer = g_timeout_add((guint)MIN(wait_ms + 1, 1000.0), rate_resume, s);
  }
  return FALSE;
}

/* Writes what ds holds; takes the next chunk when done (and the rate
 * limit allows). */
static void
data_pump(SendState *s, DataStream *ds)
{
  while (s->phase == PHASE_SENDING && !ds->finished) {
    if (!ds->busy && (!rate_allows(s) || !next_job(s, ds)))
      return;
    if (s->phase != PHASE_SENDING)
      return;
    GError *error = NULL;
    if (!ferry_stream_write_bytes(ds->stream, ds->frame, &error)) {
      if (error == NULL)
        return; /* full: writable calls again */
      fail(s, FERRY_ERR_FAILED, "the connection to the receiver broke: %s", error->message);
      g_error_free(error);
      return;
    }
    g_clear_pointer(&ds->frame, g_bytes_unref);
    ds->busy = FALSE;
    s->t->progress.bytes_done += ds->payload;
    s->rate_sent += ds->payload;
  }
}

static gboolean
all_sent(SendState *s)
{
  if (s->next_entry < s->n_entries || s->sched < s->n_entries)
    return FALSE;
  for (guint i = 0; i < s->n_data; i++)
    if (s->data[i].busy)
      return FALSE;
  return TRUE;
}

static void
pump(SendState *s)
{
  if (s->phase == PHASE_OVER)
    return;
  /* The manifest runs ahead of the data, bounded; the data streams take
   * chunks of announced files until each is blocked (its writable handler
   * comes back here) or nothing is announced that can be sent now. */
  if (s->phase == PHASE_SENDING && s->n_entries == 0 && !s->manifest_end_sent) {
    ferry_wire_put_u32(s->ctl_out, FERRY_FRAME_MANIFEST_END, 0);
    s->manifest_end_sent = TRUE;
  }
  while (s->phase == PHASE_SENDING) {
    while (s->next_entry < s->n_entries && s->ctl_out->len < CTL_AHEAD) {
      FerrySourceEntry *e = g_ptr_array_index(s->src->entries, s->next_entry);
      FerryWireEntry we = {s->next_entry,         e->type, e->mode,
                           e->mtime_ns,           e->size, (char *)e->path,
                           (char *)e->link_target};
      ferry_wire_put_entry(s->ctl_out, &we);
      if (++s->next_entry == s->n_entries)
        ferry_wire_put_u32(s->ctl_out, FERRY_FRAME_MANIFEST_END, s->n_entries);
    }
    ctl_flush(s);
    gboolean blocked = FALSE;
    for (guint i = 0; i < s->n_data && s->phase == PHASE_SENDING; i++) {
      data_pump(s, &s->data[i]);
      blocked |= s->data[i].busy;
    }
    if (s->phase == PHASE_SENDING && all_sent(s)) {
      s->phase = PHASE_DRAINING;
      ferry_transfer_set_current(s->t, NULL, 0, 0);
      for (guint i = 0; i < s->n_data; i++) {
        s->data[i].finished = TRUE;
        ferry_stream_finish(s->data[i].stream);
      }
    }
    if (blocked || s->next_entry == s->n_entries || s->ctl_out->len >= CTL_AHEAD)
      break;
  }
  ctl_flush(s);
}

/* ---- data streams ------------------------------------------------------ */

static void
data_writable(FerryStream *stream, gpointer data)
{
  DataStream *ds = data;
  (void)stream;
  pump(ds->s);
}

static void
data_in(FerryStream *stream, const guint8 *data, gsize len, gboolean fin, gpointer user_data)
{
  (void)stream, (void)fin, (void)user_data;
  if (len > 0) {
    DataStream *ds = user_data;
    fail(ds->s, FERRY_ERR_INVALID, "the receiver sent bytes on a data stream");
  }
}

static void
data_closed(FerryStream *stream, const GError *error, gpointer data)
{
  DataStream *ds = data;
  (void)stream;
  if (error != NULL && ds->s->phase != PHASE_OVER)
    fail(ds->s, FERRY_ERR_FAILED, "a data stream to the receiver broke: %s", error->message);
}

static const FerryStreamHandlers data_handlers = {data_in, data_writable, data_closed};

static gboolean
open_data_streams(SendState *s)
{
  s->n_data = s->src->streams;
  s->data = g_new0(DataStream, s->n_data);
  for (guint i = 0; i < s->n_data; i++) {
    DataStream *ds = &s->data[i];
    GError *error = NULL;
    ds->s = s;
    ds->stream = ferry_connection_open_stream(s->t->conn, &data_handlers, ds, &error);
    if (ds->stream == NULL) {
      fail(s, FERRY_ERR_FAILED, "cannot open a data stream: %s", error->message);
      g_error_free(error);
      return FALSE;
    }
    guint8 kind = FERRY_WIRE_KIND_DATA;
    ferry_stream_write(ds->stream, &kind, 1, NULL);
  }
  return TRUE;
}

/* ---- the control stream ------------------------------------------------ */

static void
on_want(SendState *s, const guint8 *p, guint32 len)
{
  FerryWireWant w;
  if (ferry_wire_get_want(p, len, &w) != 0 || w.file_id >= s->next_entry) {
    fail(s, FERRY_ERR_INVALID, "the receiver sent a malformed WANT");
    return;
  }
  FerrySourceEntry *e = g_ptr_array_index(s->src->entries, w.file_id);
  SendFile *f = &s->files[w.file_id];
  if (e->type != FERRY_ENTRY_FILE || f->has_want) {
    fail(s, FERRY_ERR_INVALID, "the receiver sent a WANT for entry %u twice or for no file",
         w.file_id);
    return;
  }
  f->has_want = TRUE;
  if (w.n_set > 0 && w.n_chunks == ferry_chunk_count(e->size, s->src->chunk_size)) {
    f->want_n = w.n_chunks;
    f->want_bitmap = g_memdup2(w.bitmap, (gsize)(w.n_chunks + 7) / 8);
    f->want_hashes = g_malloc0((gsize)w.n_chunks * FERRY_HASH_LEN);
    const guint8 *h = w.hashes;
    for (guint64 i = 0; i < w.n_chunks; i++)
      if (ferry_wire_want_has(&w, i)) {
        memcpy(f->want_hashes + i * FERRY_HASH_LEN, h, FERRY_HASH_LEN);
        h += FERRY_HASH_LEN;
      }
  }
}

static void
on_frame(SendState *s, guint8 type, const guint8 *p, guint32 len)
{
  char *msg = NULL;
  guint32 id;
  guint8 u8;
  switch (type) {
  case FERRY_FRAME_ACCEPT:
    if (s->phase != PHASE_OFFERED || ferry_wire_get_u8(p, len, &u8) != 0) {
      fail(s, FERRY_ERR_INVALID, "the receiver sent an unexpected ACCEPT");
      return;
    }
    s->resume = (u8 & FERRY_ACCEPT_RESUME) != 0;
    s->phase = PHASE_SENDING;
    s->t->progress.started_us = g_get_monotonic_time();
    if (open_data_streams(s))
      pump(s);
    return;
  case FERRY_FRAME_DECLINE:
    if (ferry_wire_get_message(p, len, FALSE, NULL, &msg) != 0)
      msg = g_strdup("no reason given");
    s->phase = PHASE_OVER;
    {
      GError *error = NULL;
      ferry_set_error(
          &error, FERRY_ERR_STATE, "%s%s",
          g_str_has_prefix(msg, "the receiver declined") ? "" : "the receiver declined: ", msg);
      ferry_transfer_finish(s->t, error);
    }
    g_free(msg);
    return;
  case FERRY_FRAME_WANT:
    if (!s->resume) {
      fail(s, FERRY_ERR_INVALID, "the receiver sent a WANT without resuming");
      return;
    }
    on_want(s, p, len);
    pump(s);
    return;
  case FERRY_FRAME_FILE_OK:
    if (ferry_wire_get_file_ok(p, len, &id, &u8) != 0 || id >= s->next_entry ||
        u8 > FERRY_FILE_SKIPPED) {
      fail(s, FERRY_ERR_INVALID, "the receiver sent a malformed FILE_OK");
      return;
    }
    {
      FerrySourceEntry *e = g_ptr_array_index(s->src->entries, id);
      ferry_transfer_emit_file(s->t, (FerryFileStatus)u8, e->type, e->path, NULL, e->size,
                               u8 == FERRY_FILE_SKIPPED ? "the receiver skipped it" : NULL);
    }
    return;
  case FERRY_FRAME_DONE:
    if (s->phase != PHASE_DRAINING && s->phase != PHASE_SENDING) {
      fail(s, FERRY_ERR_INVALID, "the receiver said DONE before the end");
      return;
    }
    s->phase = PHASE_OVER;
    ferry_stream_finish(s->ctl);
    s->close_timer = g_timeout_add(CLOSE_DELAY_MS, close_later, s);
    ferry_transfer_finish(s->t, NULL);
    return;
  case FERRY_FRAME_ABORT:
    if (ferry_wire_get_message(p, len, FALSE, NULL, &msg) != 0)
      msg = g_strdup("no reason given");
    s->phase = PHASE_OVER;
    {
      GError *error = NULL;
      ferry_set_error(
          &error, FERRY_ERR_FAILED, "%s%s",
          g_str_has_prefix(msg, "the receiver stopped") ? "" : "the receiver stopped: ", msg);
      ferry_transfer_finish(s->t, error);
    }
    g_free(msg);
    return;
  default:
    fail(s, FERRY_ERR_INVALID, "the receiver sent an unknown frame (type 0x%02x)", type);
    return;
  }
}

static void
ctl_in(FerryStream *stream, const guint8 *data, gsize len, gboolean fin, gpointer user_data)
{
  SendState *s = user_data;
  guint8 type;
  const guint8 *p;
  guint32 n;
  int rc;
  (void)stream;
  if (s->phase == PHASE_OVER)
    return;
  ferry_wire_reader_feed(&s->reader, data, len);
  while (s->phase != PHASE_OVER && (rc = ferry_wire_reader_next(&s->reader, &type, &p, &n)) == 1)
    on_frame(s, type, p, n);
  if (s->phase != PHASE_OVER && rc < 0)
    fail(s, FERRY_ERR_INVALID, "the receiver sent a frame that is too long");
  else if (s->phase != PHASE_OVER && fin)
    fail(s, FERRY_ERR_FAILED, "the receiver ended the control stream before the end");
}

static void
ctl_writable(FerryStream *stream, gpointer user_data)
{
  SendState *s = user_data;
  (void)stream;
  if (s->phase == PHASE_OVER)
    ctl_flush(s); /* an ABORT on its way */
  else
    pump(s);
}

static void
ctl_closed(FerryStream *stream, const GError *error, gpointer user_data)
{
  SendState *s = user_data;
  (void)stream;
  if (s->phase != PHASE_OVER)
    fail(s, FERRY_ERR_FAILED, "the receiver left before the end%s%s", error != NULL ? ": " : "",
         error != NULL ? error->message : "");
}

static const FerryStreamHandlers ctl_handlers = {ctl_in, ctl_writable, ctl_closed};

/* ---- the connection ---------------------------------------------------- */

static void
conn_stream_opened(FerryConnection *conn, FerryStream *stream, gpointer user_data)
{
  (void)conn, (void)user_data;
  ferry_stream_reset(stream, 1); /* receivers open no streams */
}

static void
conn_closed(FerryConnection *conn, const GError *error, gpointer user_data)
{
  SendState *s = user_data;
  (void)conn;
  if (s->phase != PHASE_OVER) {
    s->phase = PHASE_OVER;
    GError *e = NULL;
    ferry_set_error(&e, FERRY_ERR_FAILED, "the receiver left before the end: %s",
                    error != NULL ? error->message : "it closed the connection");
    ferry_transfer_finish(s->t, e);
  }
}

static const FerryConnectionHandlers conn_handlers = {conn_stream_opened, conn_closed};

FerryTransfer *
ferry_transfer_send(FerrySource *src, FerryConnection *conn, const FerryTransferHandlers *handlers,
                    gpointer user_data)
{
  FerryTransfer *t = g_new0(FerryTransfer, 1);
  SendState *s = g_new0(SendState, 1);
  t->is_sender = TRUE;
  t->conn = conn;
  if (handlers != NULL)
    t->handlers = *handlers;
  t->user_data = user_data;
  memcpy(t->id_hex, src->id_hex, sizeof t->id_hex);
  t->send = s;
  t->lingering = send_lingering;
  t->progress.bytes_total = src->bytes;
  t->progress.files_total = src->files;
  s->t = t;
  s->src = src;
  s->n_entries = src->entries->len;
  s->files = g_new0(SendFile, MAX(s->n_entries, 1));
  for (guint i = 0; i < s->n_entries; i++)
    s->files[i].fd = -1;
  s->ctl_out = g_byte_array_new();
  ferry_wire_reader_init(&s->reader);
  ferry_connection_set_handlers(conn, &conn_handlers, s);

  GError *error = NULL;
  s->ctl = ferry_connection_open_stream(conn, &ctl_handlers, s, &error);
  if (s->ctl != NULL)
    t->ctl_ref = ferry_stream_ref(s->ctl);
  if (s->ctl == NULL) {
    s->phase = PHASE_OVER;
    ferry_set_error(&error, FERRY_ERR_FAILED, "the connection ended before the transfer began");
    ferry_transfer_finish(t, error);
    return t;
  }
  FerryTransferSummary sum;
  ferry_source_get_summary(src, &sum);
  FerryWireOffer offer = {{0},       sum.chunk_size, sum.files,   sum.dirs, sum.symlinks,
                          sum.bytes, sum.n_roots,    sum.n_names, {NULL}};
  memcpy(offer.transfer_id, src->transfer_id, FERRY_TRANSFER_ID_LEN);
  for (guint i = 0; i < sum.n_names; i++)
    offer.names[i] = (char *)sum.names[i];
  guint8 kind = FERRY_WIRE_KIND_CONTROL;
  g_byte_array_append(s->ctl_out, &kind, 1);
  ferry_wire_put_offer(s->ctl_out, &offer);
  ctl_flush(s);
  return t;
}

void
ferry_send_cancel(FerryTransfer *t)
{
  SendState *s = t->send;
  if (s->phase == PHASE_OVER)
    return;
  fail(s, FERRY_ERR_FAILED, "the sender stopped (interrupted)");
  g_clear_error(&t->finish_error);
  t->finish_error = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_CANCELLED, "interrupted");
}

void
ferry_send_state_free(SendState *s)
{
  if (s->close_timer != 0)
    g_source_remove(s->close_timer);
  if (s->rate_timer != 0)
    g_source_remove(s->rate_timer);
  for (guint i = 0; i < s->n_entries; i++)
    file_close(&s->files[i]);
  g_free(s->files);
  for (guint i = 0; i < s->n_data; i++)
    g_clear_pointer(&s->data[i].frame, g_bytes_unref);
  g_free(s->data);
  g_byte_array_unref(s->ctl_out);
  ferry_wire_reader_clear(&s->reader);
  g_free(s);
}
