/* WebSocket server connections without libsoup: see ws.h for why. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <glib-unix.h>

#include <ferry/error.h>

#include "server/ws.h"

#define READ_CHUNK       (64 * 1024)
#define EPOLL_BATCH      256
#define CLOSE_TIMEOUT_S  5
#define MAX_CONTROL      125
#define WRITE_SPIN_LIMIT 16

/* --- the frame decoder --- */

void
ferry_ws_parser_init(FerryWsParser *p, gsize max_message)
{
  memset(p, 0, sizeof *p);
  p->max_message = max_message;
  p->hdr_need = 2;
}

void
ferry_ws_parser_clear(FerryWsParser *p)
{
  if (p->msg != NULL)
    g_byte_array_unref(p->msg);
  p->msg = NULL;
}

guint16
ferry_ws_parser_error(const FerryWsParser *p, const char **reason)
{
  if (reason != NULL)
    *reason = p->error_reason;
  return p->error_code;
}

static int
fail(FerryWsParser *p, int err, guint16 code, const char *reason)
{
  p->error = err;
  p->error_code = code;
  p->error_reason = reason;
  return err;
}

gboolean
ferry_ws_utf8_valid(const guint8 *s, gsize len)
{
  gsize i = 0;

  while (i < len) {
    guint8 c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    guint n;
    guint32 cp, min;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return FALSE;
    }
    if (len - i <= n)
      return FALSE;
    for (guint k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return FALSE;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return FALSE;
    i += n + 1;
  }
  return TRUE;
}

static gboolean
close_code_valid(guint16 code)
{
  /* RFC 6455 §7.4: 1004–1006 and 1015 must not be sent; 1016–2999 are
   * reserved for future standards; 3000–4999 belong to applications. */
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

/* The first two header bytes are in: check what they promise and work out
 * how long the whole header is. */
static int
header_start(FerryWsParser *p)
{
  guint8 b0 = p->hdr[0], b1 = p->hdr[1];
  guint8 op = b0 & 0x0F;
  guint len7 = b1 & 0x7F;

  if (b0 & 0x70)
    return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR,
                "reserved bits set (no extension was negotiated)");
  if (!(b1 & 0x80))
    return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR,
                "client frames must be masked");
  switch (op) {
  case FERRY_WS_CONTINUATION:
  case FERRY_WS_TEXT:
  case FERRY_WS_BINARY:
    break;
  case FERRY_WS_CLOSE:
  case FERRY_WS_PING:
  case FERRY_WS_PONG:
    if (!(b0 & 0x80))
      return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame");
    if (len7 > MAX_CONTROL)
      return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR,
                  "control frame over 125 bytes");
    break;
  default:
    return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR, "unknown opcode");
  }
  p->opcode = op;
  p->fin = (b0 & 0x80) != 0;
  p->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
  return 0;
}

/* The whole header is in: take the payload length and the mask, and check
 * the frame fits in the message it belongs to. */
static int
header_done(FerryWsParser *p)
{
  guint len7 = p->hdr[1] & 0x7F;
  guint64 len = len7;
  guint pos = 2;

  if (len7 == 126) {
    len = ((guint64)p->hdr[2] << 8) | p->hdr[3];
    pos = 4;
  } else if (len7 == 127) {
    len = 0;
    for (guint k = 0; k < 8; k++)
      len = (len << 8) | p->hdr[2 + k];
    pos = 10;
    if (len >> 63)
      return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR,
                  "payload length has its top bit set");
  }
  memcpy(p->mask, p->hdr + pos, 4);
  p->payload_left = len;
  p->mask_pos = 0;
  p->ctrl_len = 0;

  if (p->opcode == FERRY_WS_CONTINUATION && p->msg_opcode == 0)
    return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR,
                "continuation frame without a message to continue");
  if ((p->opcode == FERRY_WS_TEXT || p->opcode == FERRY_WS_BINARY) && p->msg_opcode != 0)
    return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR,
                "new message before the previous one's last fragment");
  if (p->opcode < FERRY_WS_CLOSE) {
    gsize have = p->msg != NULL ? p->msg->len : 0;
    if (len > p->max_message || have + len > p->max_message)
      return fail(p, FERRY_ERR_TOO_LONG, FERRY_WS_CLOSE_TOO_BIG, "message too big");
    if (p->opcode != FERRY_WS_CONTINUATION)
      p->msg_opcode = p->opcode;
    if (p->msg == NULL)
      p->msg = g_byte_array_new();
  }
  p->in_payload = TRUE;
  return 0;
}

static void
unmask_into(FerryWsParser *p, guint8 *dst, const guint8 *src, gsize n)
{
  for (gsize k = 0; k < n; k++) {
    dst[k] = src[k] ^ p->mask[p->mask_pos];
    p->mask_pos = (p->mask_pos + 1) & 3;
  }
}

/* The frame's payload is all in: turn it into an event, or return 0 for a
 * fragment that is not the last. */
static int
frame_done(FerryWsParser *p, FerryWsEvent *ev)
{
  p->in_payload = FALSE;
  p->hdr_len = 0;
  p->hdr_need = 2;

  if (p->opcode >= FERRY_WS_CLOSE) {
    ev->opcode = p->opcode;
    ev->data = p->ctrl;
    ev->len = p->ctrl_len;
    ev->close_code = 0;
    if (p->opcode == FERRY_WS_CLOSE) {
      if (p->ctrl_len == 1)
        return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR,
                    "close frame with a one-byte payload");
      if (p->ctrl_len == 0) {
        ev->close_code = FERRY_WS_CLOSE_NO_STATUS;
      } else {
        ev->close_code = (guint16)((p->ctrl[0] << 8) | p->ctrl[1]);
        if (!close_code_valid(ev->close_code))
          return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
        if (!ferry_ws_utf8_valid(p->ctrl + 2, p->ctrl_len - 2))
          return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_BAD_DATA, "close reason is not UTF-8");
        ev->data = p->ctrl + 2;
        ev->len = p->ctrl_len - 2;
      }
    }
    return 1;
  }
  if (!p->fin)
    return 0;
  if (p->msg_opcode == FERRY_WS_TEXT && !ferry_ws_utf8_valid(p->msg->data, p->msg->len))
    return fail(p, FERRY_ERR_INVALID, FERRY_WS_CLOSE_BAD_DATA, "text message is not UTF-8");
  ev->opcode = p->msg_opcode;
  ev->data = p->msg->data;
  ev->len = p->msg->len;
  ev->close_code = 0;
  p->msg_done = TRUE;
  return 1;
}

int
ferry_ws_parser_feed(FerryWsParser *p, const guint8 *data, gsize len, gsize *consumed,
                     FerryWsEvent *ev)
{
  gsize i = 0;
  int r;

  *consumed = 0;
  if (p->error != 0)
    return p->error;
  if (p->msg_done) {
    p->msg_done = FALSE;
    p->msg_opcode = 0;
    /* Keep a small buffer for the next message, not a huge one. */
    if (p->msg->len > 4096)
      g_clear_pointer(&p->msg, g_byte_array_unref);
    else
      g_byte_array_set_size(p->msg, 0);
  }
  for (;;) {
    if (!p->in_payload) {
      if (i == len)
        break;
      gsize n = MIN(len - i, (gsize)(p->hdr_need - p->hdr_len));
      memcpy(p->hdr + p->hdr_len, data + i, n);
      p->hdr_len += (guint)n;
      i += n;
      if (p->hdr_len == 2 && p->hdr_need == 2 && (r = header_start(p)) < 0)
        goto out;
      if (p->hdr_len < p->hdr_need)
        continue;
      if ((r = header_done(p)) < 0)
        goto out;
    }
    if (p->payload_left > 0) {
      if (i == len)
        break;
      gsize n = (gsize)MIN((guint64)(len - i), p->payload_left);
      if (p->opcode >= FERRY_WS_CLOSE) {
        unmask_into(p, p->ctrl + p->ctrl_len, data + i, n);
        p->ctrl_len += (guint)n;
      } else {
        guint old = p->msg->len;
        g_byte_array_set_size(p->msg, old + (guint)n);
        unmask_into(p, p->msg->data + old, data + i, n);
      }
      i += n;
      p->payload_left -= n;
      if (p->payload_left > 0)
        continue;
    }
    if ((r = frame_done(p, ev)) != 0)
      goto out;
  }
  r = 0;
out:
  *consumed = i;
  return r;
}

static void
frame_header(guint8 hdr[10], gsize *hlen, FerryWsOpcode opcode, gsize len)
{
  hdr[0] = 0x80 | (guint8)opcode;
  if (len < 126) {
    hdr[1] = (guint8)len;
    *hlen = 2;
  } else if (len <= 0xFFFF) {
    hdr[1] = 126;
    hdr[2] = (guint8)(len >> 8);
    hdr[3] = (guint8)len;
    *hlen = 4;
  } else {
    hdr[1] = 127;
    for (int k = 0; k < 8; k++)
      hdr[2 + k] = (guint8)((guint64)len >> (56 - 8 * k));
    *hlen = 10;
  }
}

void
ferry_ws_frame_append(GByteArray *out, FerryWsOpcode opcode, const void *payload, gsize len)
{
  guint8 hdr[10];
  gsize hlen;

  frame_header(hdr, &hlen, opcode, len);
  g_byte_array_append(out, hdr, (guint)hlen);
  if (len > 0)
    g_byte_array_append(out, payload, (guint)len);
}

/* The close payload: code and as much of reason as fits, cut on a
 * character boundary. Returns its length (0 when code is 0). */
static gsize
close_payload(guint8 buf[MAX_CONTROL], guint16 code, const char *reason)
{
  if (code == 0)
    return 0;
  buf[0] = (guint8)(code >> 8);
  buf[1] = (guint8)code;
  gsize rlen = reason != NULL ? strlen(reason) : 0;
  if (rlen > MAX_CONTROL - 2) {
    rlen = MAX_CONTROL - 2;
    while (rlen > 0 && ((guint8)reason[rlen] & 0xC0) == 0x80)
      rlen--;
  }
  if (rlen > 0)
    memcpy(buf + 2, reason, rlen);
  return 2 + rlen;
}

void
ferry_ws_close_append(GByteArray *out, guint16 code, const char *reason)
{
  guint8 buf[MAX_CONTROL];
  ferry_ws_frame_append(out, FERRY_WS_CLOSE, buf, close_payload(buf, code, reason));
}

/* --- connections --- */

struct FerryWsHub {
  int epfd;
  GSource *source;
  GMainContext *ctx;
  gsize max_message, max_queued;
  guint8 *rbuf;
  GHashTable *conns; /* every connection whose fd is open (the hub's ref) */
  GPtrArray *ended;  /* ended, closed handler not yet called (the hub's ref) */
  GPtrArray *fresh;  /* new connections with bytes read before the handover */
  GSource *idle;     /* runs those lists when no dispatch will */
  gboolean in_dispatch;
  guint64 overflows;
};

struct FerryWsConn {
  FerryWsHub *hub; /* NULL once the hub is gone */
  int fd;          /* -1 once ended */
  int refcount;
  FerryWsParser parser;
  GByteArray *out; /* bytes not yet written, from out_pos (NULL when empty) */
  gsize out_pos;
  guint32 events; /* what epoll watches for */
  gboolean close_sent, close_received, end_when_flushed;
  guint16 close_code;
  FerryWsEnd end, end_after_flush;
  GBytes *pending; /* read by the HTTP layer past the handshake */
  GSource *close_timer;
  const FerryWsHandlers *handlers;
  gpointer user_data;
};

static void run_ended(FerryWsHub *hub);
static void run_fresh(FerryWsHub *hub);

static gboolean
idle_run(gpointer user_data)
{
  FerryWsHub *hub = user_data;
  g_source_unref(hub->idle);
  hub->idle = NULL;
  run_fresh(hub);
  run_ended(hub);
  return G_SOURCE_REMOVE;
}

/* Makes sure the lists of fresh and ended connections are looked at soon,
 * from the main loop rather than from inside the caller. */
static void
hub_kick(FerryWsHub *hub)
{
  if (hub->in_dispatch || hub->idle != NULL)
    return;
  hub->idle = g_idle_source_new();
  g_source_set_callback(hub->idle, idle_run, hub, NULL);
  g_source_attach(hub->idle, hub->ctx);
}

/* The connection is over: close its fd now, call its closed handler from
 * the hub's own dispatch (never from inside an API call). */
static void
conn_end(FerryWsConn *c, FerryWsEnd end)
{
  FerryWsHub *hub = c->hub;

  if (c->fd < 0)
    return;
  c->end = end;
  if (hub != NULL)
    epoll_ctl(hub->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  if (c->out != NULL)
    g_clear_pointer(&c->out, g_byte_array_unref);
  if (c->close_timer != NULL) {
    g_source_destroy(c->close_timer);
    g_clear_pointer(&c->close_timer, g_source_unref);
  }
  if (hub == NULL)
    return;
  g_hash_table_steal(hub->conns, c);
  g_ptr_array_add(hub->ended, c); /* the hub's ref moves along */
  hub_kick(hub);
}

static void
run_ended(FerryWsHub *hub)
{
  while (hub->ended->len > 0) {
    FerryWsConn *c = g_ptr_array_steal_index(hub->ended, 0);
    if (c->handlers != NULL && c->handlers->closed != NULL)
      c->handlers->closed(c, c->user_data);
    c->hub = NULL; /* it needs the hub no more */
    ferry_ws_conn_unref(c);
  }
}

/* Reading stops once the client's close frame is in or the connection is
 * only flushing its last bytes; writing is watched while bytes wait. */
static gboolean
conn_reading(FerryWsConn *c)
{
  return !c->close_received && !c->end_when_flushed;
}

static void
update_watch(FerryWsConn *c)
{
  if (c->fd < 0 || c->hub == NULL)
    return;
  struct epoll_event ev = {
      .events = (conn_reading(c) ? EPOLLIN : 0) | (c->out != NULL ? EPOLLOUT : 0), .data.ptr = c};
  if (ev.events == c->events)
    return;
  c->events = ev.events;
  epoll_ctl(c->hub->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes as much of the queue as the socket takes. */
static void
flush_out(FerryWsConn *c)
{
  for (int spin = 0; c->out != NULL && spin < WRITE_SPIN_LIMIT; spin++) {
    ssize_t n = send(c->fd, c->out->data + c->out_pos, c->out->len - c->out_pos, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      conn_end(c, FERRY_WS_END_ERROR);
      return;
    }
    c->out_pos += (gsize)n;
    if (c->out_pos == c->out->len) {
      g_clear_pointer(&c->out, g_byte_array_unref);
      c->out_pos = 0;
    } else if (c->out_pos >= 64 * 1024 && c->out_pos >= c->out->len / 2) {
      /* Drop what was sent: a client reading just fast enough to keep the
       * queue from emptying must not make the array grow for ever. */
      g_byte_array_remove_range(c->out, 0, (guint)c->out_pos);
      c->out_pos = 0;
    }
  }
  if (c->fd >= 0 && c->out == NULL && c->end_when_flushed)
    conn_end(c, c->end_after_flush);
  update_watch(c);
}

/* Sends header + payload: straight to the socket when nothing is queued
 * (the common case, no copy), the rest into the bounded queue. */
static void
conn_write(FerryWsConn *c, FerryWsOpcode opcode, const void *payload, gsize len)
{
  guint8 hdr[10];
  gsize hlen, done = 0;

  if (c->fd < 0)
    return;
  frame_header(hdr, &hlen, opcode, len);
  if (c->out == NULL) {
    struct iovec iov[2] = {{hdr, hlen}, {(void *)payload, len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len > 0 ? 2 : 1};
    ssize_t n;
    do
      n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      conn_end(c, FERRY_WS_END_ERROR);
      return;
    }
    done = n > 0 ? (gsize)n : 0;
    if (done == hlen + len) {
      if (c->end_when_flushed)
        conn_end(c, c->end_after_flush);
      return;
    }
  }
  gsize queued = c->out != NULL ? c->out->len - c->out_pos : 0;
  if (c->hub != NULL && queued + hlen + len - done > c->hub->max_queued) {
    c->hub->overflows++;
    conn_end(c, FERRY_WS_END_OVERFLOW);
    return;
  }
  if (c->out == NULL) {
    c->out = g_byte_array_sized_new((guint)(hlen + len - done));
    c->out_pos = 0;
  }
  if (done < hlen)
    g_byte_array_append(c->out, hdr + done, (guint)(hlen - done));
  gsize pdone = done > hlen ? done - hlen : 0;
  if (len > pdone)
    g_byte_array_append(c->out, (const guint8 *)payload + pdone, (guint)(len - pdone));
  update_watch(c);
}

static gboolean
close_timeout(gpointer user_data)
{
  FerryWsConn *c = user_data;
  g_clear_pointer(&c->close_timer, g_source_unref);
  conn_end(c, FERRY_WS_END_TIMEOUT);
  return G_SOURCE_REMOVE;
}

/* Sends our close frame. end_now: do not wait for the client's answer
 * (it already sent its own, or it broke the protocol). */
static void
send_close(FerryWsConn *c, guint16 code, const char *reason, gboolean end_now, FerryWsEnd end)
{
  guint8 buf[MAX_CONTROL];

  if (c->fd < 0 || c->close_sent)
    return;
  c->close_sent = TRUE;
  if (end_now) {
    c->end_when_flushed = TRUE;
    c->end_after_flush = end;
  }
  /* Also when ending now: a client that never reads would otherwise keep
   * its queued bytes, its descriptor and a connection slot for ever. */
  if (c->hub != NULL) {
    c->close_timer = g_timeout_source_new_seconds(CLOSE_TIMEOUT_S);
    g_source_set_callback(c->close_timer, close_timeout, c, NULL);
    g_source_attach(c->close_timer, c->hub->ctx);
  }
  conn_write(c, FERRY_WS_CLOSE, buf, close_payload(buf, code, reason));
  if (c->fd >= 0 && c->out == NULL && c->end_when_flushed)
    conn_end(c, end);
}

static void
on_event(FerryWsConn *c, const FerryWsEvent *ev)
{
  switch (ev->opcode) {
  case FERRY_WS_TEXT:
  case FERRY_WS_BINARY:
    if (!c->close_sent && c->handlers != NULL && c->handlers->message != NULL)
      c->handlers->message(c, ev->opcode == FERRY_WS_TEXT, ev->data, ev->len, c->user_data);
    break;
  case FERRY_WS_PING:
    if (!c->close_sent)
      conn_write(c, FERRY_WS_PONG, ev->data, ev->len);
    break;
  case FERRY_WS_CLOSE:
    c->close_received = TRUE;
    c->close_code = ev->close_code;
    if (c->close_sent) {
      /* The answer to our close: the handshake is done. */
      c->end_after_flush = FERRY_WS_END_CLOSED;
      c->end_when_flushed = TRUE;
      if (c->out == NULL)
        conn_end(c, FERRY_WS_END_CLOSED);
    } else {
      send_close(c, ev->close_code == FERRY_WS_CLOSE_NO_STATUS ? 0 : ev->close_code, NULL, TRUE,
                 FERRY_WS_END_CLOSED);
    }
    break;
  default:
    break;
  }
}

static void conn_feed(FerryWsConn *c, const guint8 *p, gsize left);

/* The bytes read before the handover come before anything read now. */
static void
feed_pending(FerryWsConn *c)
{
  GBytes *b = g_steal_pointer(&c->pending);
  gsize len;

  if (b == NULL)
    return;
  const guint8 *data = g_bytes_get_data(b, &len);
  if (c->fd >= 0)
    conn_feed(c, data, len);
  g_bytes_unref(b);
}

static void
conn_readable(FerryWsConn *c)
{
  FerryWsHub *hub = c->hub;
  ssize_t n;

  feed_pending(c);
  if (c->fd < 0 || c->close_received)
    return;

  do
    n = recv(c->fd, hub->rbuf, READ_CHUNK, 0);
  while (n < 0 && errno == EINTR);
  if (n == 0) {
    conn_end(c, FERRY_WS_END_EOF);
    return;
  }
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      conn_end(c, FERRY_WS_END_ERROR);
    return;
  }
  conn_feed(c, hub->rbuf, (gsize)n);
}

/* Decodes and acts on bytes from the client, until they run out or the
 * connection stops reading. */
static void
conn_feed(FerryWsConn *c, const guint8 *p, gsize left)
{
  while (left > 0 && c->fd >= 0 && !c->close_received) {
    FerryWsEvent ev;
    gsize used;
    int r = ferry_ws_parser_feed(&c->parser, p, left, &used, &ev);
    p += used;
    left -= used;
    if (r < 0) {
      const char *reason;
      guint16 code = ferry_ws_parser_error(&c->parser, &reason);
      if (c->close_sent)
        conn_end(c, FERRY_WS_END_PROTOCOL);
      else
        send_close(c, code, reason, TRUE, FERRY_WS_END_PROTOCOL);
      return;
    }
    if (r == 0)
      break;
    on_event(c, &ev);
  }
}

static void
run_fresh(FerryWsHub *hub)
{
  while (hub->fresh->len > 0) {
    FerryWsConn *c = g_ptr_array_steal_index(hub->fresh, 0);
    feed_pending(c);
    ferry_ws_conn_unref(c);
  }
}

static gboolean
hub_dispatch(gint fd, GIOCondition cond, gpointer user_data)
{
  FerryWsHub *hub = user_data;
  struct epoll_event evs[EPOLL_BATCH];

  int n = epoll_wait(hub->epfd, evs, EPOLL_BATCH, 0);
  hub->in_dispatch = TRUE;
  /* Every connection in this batch stays alive until the batch is done,
   * whatever the handlers of the others do to it. */
  for (int i = 0; i < n; i++)
    ferry_ws_conn_ref(evs[i].data.ptr);
  for (int i = 0; i < n; i++) {
    FerryWsConn *c = evs[i].data.ptr;
    if (c->fd >= 0 && (evs[i].events & EPOLLOUT))
      flush_out(c);
    if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
      if (conn_reading(c))
        conn_readable(c);
      else if (evs[i].events & (EPOLLHUP | EPOLLERR))
        conn_end(c, c->end_when_flushed ? c->end_after_flush : FERRY_WS_END_EOF);
    }
    update_watch(c);
  }
  for (int i = 0; i < n; i++)
    ferry_ws_conn_unref(evs[i].data.ptr);
  run_ended(hub);
  hub->in_dispatch = FALSE;
  return G_SOURCE_CONTINUE;
}

FerryWsHub *
ferry_ws_hub_new(gsize max_message, gsize max_queued, GError **error)
{
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot create an epoll instance: %s", g_strerror(errno));
    return NULL;
  }
  FerryWsHub *hub = g_new0(FerryWsHub, 1);
  hub->epfd = epfd;
  hub->max_message = max_message;
  hub->max_queued = max_queued;
  hub->rbuf = g_malloc(READ_CHUNK);
  hub->conns = g_hash_table_new(NULL, NULL);
  hub->ended = g_ptr_array_new();
  hub->fresh = g_ptr_array_new();
  hub->ctx = g_main_context_ref_thread_default();
  hub->source = g_unix_fd_source_new(epfd, G_IO_IN);
  g_source_set_callback(hub->source, (GSourceFunc)(void (*)(void))hub_dispatch, hub, NULL);
  g_source_attach(hub->source, hub->ctx);
  return hub;
}

void
ferry_ws_hub_free(FerryWsHub *hub)
{
  GHashTableIter it;
  gpointer key;

  if (hub == NULL)
    return;
  GPtrArray *all = g_ptr_array_new();
  g_hash_table_iter_init(&it, hub->conns);
  while (g_hash_table_iter_next(&it, &key, NULL))
    g_ptr_array_add(all, key);
  for (guint i = 0; i < all->len; i++) {
    FerryWsConn *c = all->pdata[i];
    c->handlers = NULL;
    conn_end(c, FERRY_WS_END_CLOSED);
  }
  g_ptr_array_free(all, TRUE);
  for (guint i = 0; i < hub->ended->len; i++) {
    FerryWsConn *c = hub->ended->pdata[i];
    c->hub = NULL;
    ferry_ws_conn_unref(c);
  }
  g_ptr_array_free(hub->ended, TRUE);
  for (guint i = 0; i < hub->fresh->len; i++)
    ferry_ws_conn_unref(hub->fresh->pdata[i]);
  g_ptr_array_free(hub->fresh, TRUE);
  if (hub->idle != NULL) {
    g_source_destroy(hub->idle);
    g_source_unref(hub->idle);
  }
  g_source_destroy(hub->source);
  g_source_unref(hub->source);
  g_main_context_unref(hub->ctx);
  g_hash_table_destroy(hub->conns);
  close(hub->epfd);
  g_free(hub->rbuf);
  g_free(hub);
}

guint64
ferry_ws_hub_get_overflows(FerryWsHub *hub)
{
  return hub->overflows;
}

FerryWsConn *
ferry_ws_conn_new(FerryWsHub *hub, int fd, const guint8 *pending, gsize pending_len,
                  const FerryWsHandlers *handlers, gpointer user_data)
{
  FerryWsConn *c = g_new0(FerryWsConn, 1);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

  c->events = EPOLLIN;
  c->hub = hub;
  c->fd = fd;
  c->refcount = 2; /* the caller's and the hub's */
  c->handlers = handlers;
  c->user_data = user_data;
  ferry_ws_parser_init(&c->parser, hub->max_message);
  g_hash_table_add(hub->conns, c);
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
      epoll_ctl(hub->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
    g_warning("cannot watch a WebSocket connection: %s; it is dropped", g_strerror(errno));
    conn_end(c, FERRY_WS_END_ERROR);
    return c;
  }
  /* Bytes the HTTP layer read past the handshake are the client's first
   * frames. They are acted on from the main loop, once the caller has its
   * connection in hand, like everything the client sends later. */
  if (pending_len > 0) {
    c->pending = g_bytes_new(pending, pending_len);
    g_ptr_array_add(hub->fresh, ferry_ws_conn_ref(c));
    hub_kick(hub);
  }
  return c;
}

FerryWsConn *
ferry_ws_conn_ref(FerryWsConn *c)
{
  c->refcount++;
  return c;
}

void
ferry_ws_conn_unref(FerryWsConn *c)
{
  if (--c->refcount > 0)
    return;
  ferry_ws_parser_clear(&c->parser);
  if (c->out != NULL)
    g_byte_array_unref(c->out);
  if (c->pending != NULL)
    g_bytes_unref(c->pending);
  g_free(c);
}

void
ferry_ws_conn_set_handlers(FerryWsConn *c, const FerryWsHandlers *handlers, gpointer user_data)
{
  c->handlers = handlers;
  c->user_data = user_data;
}

void
ferry_ws_conn_send_text(FerryWsConn *c, const char *text, gsize len)
{
  if (c->fd < 0 || c->close_sent)
    return;
  conn_write(c, FERRY_WS_TEXT, text, len);
}

void
ferry_ws_conn_close(FerryWsConn *c, guint16 code, const char *reason)
{
  send_close(c, code, reason, c->close_received, FERRY_WS_END_CLOSED);
}

gboolean
ferry_ws_conn_is_open(FerryWsConn *c)
{
  return c->fd >= 0 && !c->close_sent;
}

guint16
ferry_ws_conn_get_close_code(FerryWsConn *c)
{
  return c->close_code;
}

FerryWsEnd
ferry_ws_conn_get_end(FerryWsConn *c)
{
  return c->end;
}
