/* QUIC streams: the send queue each stream keeps until the peer
 * acknowledges its bytes, and the stream API (quic.h).
 *
 * A write lands on the stream's "in" list under the connection's lock; the
 * connection's thread moves the whole list to its own "tx" list once per
 * loop turn, hands ngtcp2 vectors that point into it, and frees chunks as
 * acknowledgements arrive. Large writes are copied outside the lock, small
 * ones are appended to the last chunk, so neither side waits for the
 * other for long. */
#include <string.h>

#include <ferry/error.h>

#include "net/quic-private.h"

#define CHUNK_SIZE  (64 * 1024)
#define CHUNK_SMALL (16 * 1024)
#define SMALL_WRITE (16 * 1024)

static Chunk *
chunk_new(gsize cap)
{
  Chunk *c = g_malloc(sizeof(Chunk) + cap);

  c->next = NULL;
  c->off = 0;
  c->len = 0;
  c->cap = cap;
  c->data = c->store;
  c->bytes = NULL;
  return c;
}

static void
chunk_free(Chunk *c)
{
  if (c->bytes != NULL)
    g_bytes_unref(c->bytes);
  g_free(c);
}

static void
chunk_list_free(Chunk *c)
{
  while (c != NULL) {
    Chunk *next = c->next;
    chunk_free(c);
    c = next;
  }
}

FerryQuicStream *
quic_stream_new(FerryQuic *q, gpointer user_data)
{
  FerryQuicStream *s = g_new0(FerryQuicStream, 1);

  s->ref = 1;
  s->q = q;
  s->id = -1;
  s->user_data = user_data;
  return s;
}

FerryQuicStream *
ferry_quic_stream_ref(FerryQuicStream *s)
{
  g_atomic_int_inc(&s->ref);
  return s;
}

void
ferry_quic_stream_unref(FerryQuicStream *s)
{
  if (s == NULL || !g_atomic_int_dec_and_test(&s->ref))
    return;
  chunk_list_free(s->in_head);
  chunk_list_free(s->tx_head);
  g_free(s);
}

void
quic_stream_take_locked(FerryQuicStream *s)
{
  if (s->in_head != NULL) {
    for (Chunk *c = s->in_head; c != NULL; c = c->next) {
      c->off = s->end_off;
      s->end_off += c->len;
    }
    if (s->tx_tail != NULL)
      s->tx_tail->next = s->in_head;
    else
      s->tx_head = s->in_head;
    if (s->tx_cur == NULL) {
      s->tx_cur = s->in_head;
      s->tx_cur_off = 0;
    }
    s->tx_tail = s->in_tail;
    s->in_head = s->in_tail = NULL;
  }
  if (s->fin_requested)
    s->fin_pending = TRUE;
}

gboolean
quic_stream_sendable(FerryQuicStream *s)
{
  return s->id >= 0 && !s->blocked && !s->ended && !s->write_shut &&
         (s->sent_off < s->end_off || (s->fin_pending && !s->fin_sent));
}

gsize
quic_stream_next(FerryQuicStream *s, ngtcp2_vec *v, gsize max, gboolean *fin, gsize *total)
{
  Chunk *c = s->tx_cur;
  gsize off = s->tx_cur_off, n = 0;

  *total = 0;
  for (; c != NULL && n < max; c = c->next, off = 0, n++) {
    v[n].base = (uint8_t *)c->data + off;
    v[n].len = c->len - off;
    *total += v[n].len;
  }
  *fin = c == NULL && s->fin_pending && !s->fin_sent;
  return n;
}

void
quic_stream_advance(FerryQuicStream *s, gsize n)
{
  s->sent_off += n;
  while (n > 0) {
    gsize left = s->tx_cur->len - s->tx_cur_off;
    if (n < left) {
      s->tx_cur_off += n;
      return;
    }
    n -= left;
    s->tx_cur = s->tx_cur->next;
    s->tx_cur_off = 0;
  }
}

void
quic_stream_acked(FerryQuicStream *s, guint64 upto)
{
  s->acked_off = upto;
  while (s->tx_head != NULL && s->tx_head->off + s->tx_head->len <= upto &&
         s->tx_head != s->tx_cur) {
    Chunk *c = s->tx_head;
    s->tx_head = c->next;
    if (s->tx_head == NULL)
      s->tx_tail = NULL;
    chunk_free(c);
  }
}

void
quic_stream_free_tx(FerryQuicStream *s)
{
  chunk_list_free(s->tx_head);
  s->tx_head = s->tx_tail = s->tx_cur = NULL;
  s->tx_cur_off = 0;
}

FerryQuicStream *
ferry_quic_stream_open(FerryQuic *q, gpointer user_data, GError **error)
{
  FerryQuicStream *s;
  Cmd *cmd;

  g_mutex_lock(&q->lock);
  if (q->ended || q->stop) {
    g_mutex_unlock(&q->lock);
    ferry_set_error(error, FERRY_ERR_STATE,
                    "cannot open a stream: the QUIC connection has ended; connect again");
    return NULL;
  }
  s = quic_stream_new(q, user_data);
  cmd = g_new0(Cmd, 1);
  cmd->type = CMD_OPEN;
  cmd->s = ferry_quic_stream_ref(s);
  quic_push_cmd_locked(q, cmd);
  g_mutex_unlock(&q->lock);
  quic_wake(q);
  return s;
}

static gboolean
refuse_write(FerryQuicStream *s, GError **error)
{
  const char *why = s->q->ended          ? "the QUIC connection has ended"
                    : s->closed          ? "it is closed"
                    : s->write_shut      ? "the peer stopped reading it"
                    : s->reset_requested ? "it was reset"
                    : s->fin_requested   ? "it was finished"
                                         : NULL;
  if (why == NULL)
    return FALSE;
  ferry_set_error(error, FERRY_ERR_STATE, "cannot write to QUIC stream %" G_GINT64_FORMAT ": %s",
                  (gint64)__atomic_load_n(&s->id, __ATOMIC_RELAXED), why);
  return TRUE;
}

/* Links new chunks to the stream's "in" list (lock held) and puts the
 * stream on the dirty list. Returns TRUE when the thread must be woken. */
static gboolean
append_locked(FerryQuicStream *s, Chunk *head, Chunk *tail)
{
  FerryQuic *q = s->q;

  if (head != NULL) {
    if (s->in_tail != NULL)
      s->in_tail->next = head;
    else
      s->in_head = head;
    s->in_tail = tail;
  }
  if (s->dirty)
    return FALSE;
  s->dirty = TRUE;
  s->dirty_next = q->dirty;
  q->dirty = ferry_quic_stream_ref(s);
  return TRUE;
}

gssize
ferry_quic_stream_write(FerryQuicStream *s, const void *data, gsize len, GError **error)
{
  FerryQuic *q = s->q;
  const guint8 *p = data;
  gsize bound = q->cfg.stream_send_buffer_bytes, n, done = 0;
  Chunk *head = NULL, *tail = NULL;
  gboolean wake;

  g_mutex_lock(&q->lock);
  if (refuse_write(s, error)) {
    g_mutex_unlock(&q->lock);
    return -1;
  }
  n = s->queued < bound ? MIN(len, bound - s->queued) : 0;
  if (n < len)
    s->want_writable = TRUE;
  if (n == 0) {
    g_mutex_unlock(&q->lock);
    return 0;
  }
  s->queued += n;
  /* small writes go straight into the room left in the last chunk */
  if (n <= SMALL_WRITE && s->in_tail != NULL && s->in_tail->bytes == NULL &&
      s->in_tail->cap > s->in_tail->len) {
    done = MIN(n, s->in_tail->cap - s->in_tail->len);
    memcpy(s->in_tail->store + s->in_tail->len, p, done);
    s->in_tail->len += done;
  }
  if (done == n) {
    wake = append_locked(s, NULL, NULL);
    g_mutex_unlock(&q->lock);
    if (wake)
      quic_wake(q);
    return (gssize)n;
  }
  g_mutex_unlock(&q->lock);

  while (done < n) {
    gsize left = n - done;
    Chunk *c = chunk_new(left >= CHUNK_SMALL ? CHUNK_SIZE : CHUNK_SMALL);
    c->len = MIN(left, c->cap);
    memcpy(c->store, p + done, c->len);
    done += c->len;
    if (tail != NULL)
      tail->next = c;
    else
      head = c;
    tail = c;
  }

  g_mutex_lock(&q->lock);
  if (s->closed || q->ended) {
    g_mutex_unlock(&q->lock);
    chunk_list_free(head);
    return (gssize)n; /* taken, and lost with the stream like any queued byte */
  }
  wake = append_locked(s, head, tail);
  g_mutex_unlock(&q->lock);
  if (wake)
    quic_wake(q);
  return (gssize)n;
}

gboolean
ferry_quic_stream_write_bytes(FerryQuicStream *s, GBytes *bytes, GError **error)
{
  FerryQuic *q = s->q;
  gsize size = g_bytes_get_size(bytes);
  Chunk *c;
  gboolean wake;

  if (size == 0)
    return TRUE;
  g_mutex_lock(&q->lock);
  if (refuse_write(s, error)) {
    g_mutex_unlock(&q->lock);
    return FALSE;
  }
  /* all or nothing; a buffer larger than the bound goes alone */
  if (s->queued > 0 && s->queued + size > q->cfg.stream_send_buffer_bytes) {
    s->want_writable = TRUE;
    g_mutex_unlock(&q->lock);
    return FALSE;
  }
  c = chunk_new(0);
  c->bytes = g_bytes_ref(bytes);
  c->data = g_bytes_get_data(bytes, NULL);
  c->len = size;
  s->queued += size;
  wake = append_locked(s, c, c);
  g_mutex_unlock(&q->lock);
  if (wake)
    quic_wake(q);
  return TRUE;
}

void
ferry_quic_stream_finish(FerryQuicStream *s)
{
  FerryQuic *q = s->q;
  gboolean wake = FALSE;

  g_mutex_lock(&q->lock);
  if (!s->fin_requested && !s->closed) {
    s->fin_requested = TRUE;
    wake = append_locked(s, NULL, NULL);
  }
  g_mutex_unlock(&q->lock);
  if (wake)
    quic_wake(q);
}

static void
push_stream_cmd(FerryQuicStream *s, CmdType type, guint64 n)
{
  FerryQuic *q = s->q;
  Cmd *cmd = g_new0(Cmd, 1);

  cmd->type = type;
  cmd->s = ferry_quic_stream_ref(s);
  cmd->n = n;
  g_mutex_lock(&q->lock);
  if (type == CMD_RESET)
    s->reset_requested = TRUE;
  quic_push_cmd_locked(q, cmd);
  g_mutex_unlock(&q->lock);
  quic_wake(q);
}

void
ferry_quic_stream_reset(FerryQuicStream *s, guint64 app_error_code)
{
  push_stream_cmd(s, CMD_RESET, app_error_code);
}

void
ferry_quic_stream_consume(FerryQuicStream *s, gsize n)
{
  if (n > 0)
    push_stream_cmd(s, CMD_CONSUME, n);
}

gint64
ferry_quic_stream_get_id(FerryQuicStream *s)
{
  return __atomic_load_n(&s->id, __ATOMIC_ACQUIRE);
}

FerryQuic *
ferry_quic_stream_get_connection(FerryQuicStream *s)
{
  return s->q;
}

gpointer
ferry_quic_stream_get_user_data(FerryQuicStream *s)
{
  return g_atomic_pointer_get(&s->user_data);
}

void
ferry_quic_stream_set_user_data(FerryQuicStream *s, gpointer user_data)
{
  g_atomic_pointer_set(&s->user_data, user_data);
}

gsize
ferry_quic_stream_get_queued(FerryQuicStream *s)
{
  gsize n;

  g_mutex_lock(&s->q->lock);
  n = s->queued;
  g_mutex_unlock(&s->q->lock);
  return n;
}
