/* The WebSocket framer and the epoll-driven connections of `ferry serve`
 * (src/server/ws.c): frames as RFC 6455 defines them, every way a client
 * can break the protocol, and the close handshake over a real socket. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ferry/error.h>

#include "server/ws.h"

static const guint8 MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends a client frame: masked unless told otherwise, with the header
 * byte b0 given whole (FIN, RSV bits, opcode) so tests can break it. */
static void
client_frame(GByteArray *out, guint8 b0, gboolean masked, const void *payload, gsize len)
{
  guint8 hdr[14];
  gsize h = 0;
  const guint8 *p = payload;

  hdr[h++] = b0;
  if (len < 126) {
    hdr[h++] = (guint8)len;
  } else if (len <= 0xFFFF) {
    hdr[h++] = 126;
    hdr[h++] = (guint8)(len >> 8);
    hdr[h++] = (guint8)len;
  } else {
    hdr[h++] = 127;
    for (int k = 0; k < 8; k++)
      hdr[h++] = (guint8)((guint64)len >> (56 - 8 * k));
  }
  if (masked) {
    hdr[1] |= 0x80;
    memcpy(hdr + h, MASK, 4);
    h += 4;
  }
  g_byte_array_append(out, hdr, (guint)h);
  for (gsize k = 0; k < len; k++) {
    guint8 b = masked ? p[k] ^ MASK[k & 3] : p[k];
    g_byte_array_append(out, &b, 1);
  }
}

typedef struct {
  GPtrArray *events; /* "T:text", "B:len", "P:ping", "O:pong", "C:code:reason" */
  int error;
  guint16 error_code;
} Parsed;

/* Runs bytes through a parser in pieces of `step` bytes (0: all at once)
 * and records what came out. */
static Parsed
parse(const GByteArray *in, gsize step, gsize max_message)
{
  FerryWsParser p;
  Parsed r = {g_ptr_array_new_with_free_func(g_free), 0, 0};
  gsize pos = 0;

  ferry_ws_parser_init(&p, max_message);
  while (pos < in->len && r.error == 0) {
    gsize avail = step == 0 ? in->len - pos : MIN(step, in->len - pos);
    gsize used = 0;
    FerryWsEvent ev;
    int ret = ferry_ws_parser_feed(&p, in->data + pos, avail, &used, &ev);
    g_assert_cmpuint(used, <=, avail);
    pos += used;
    if (ret < 0) {
      r.error = ret;
      r.error_code = ferry_ws_parser_error(&p, NULL);
    } else if (ret == 1) {
      char *s;
      if (ev.opcode == FERRY_WS_TEXT)
        s = g_strdup_printf("T:%.*s", (int)ev.len, ev.data);
      else if (ev.opcode == FERRY_WS_BINARY)
        s = g_strdup_printf("B:%zu", ev.len);
      else if (ev.opcode == FERRY_WS_PING)
        s = g_strdup_printf("P:%.*s", (int)ev.len, ev.data);
      else if (ev.opcode == FERRY_WS_PONG)
        s = g_strdup_printf("O:%.*s", (int)ev.len, ev.data);
      else
        s = g_strdup_printf("C:%u:%.*s", ev.close_code, (int)ev.len, ev.data);
      g_ptr_array_add(r.events, s);
    } else {
      g_assert_cmpuint(used, ==, avail);
    }
  }
  ferry_ws_parser_clear(&p);
  return r;
}

/* The same events whatever the split: whole, byte by byte, in sevens. */
static Parsed
parse_all_ways(const GByteArray *in, gsize max_message)
{
  Parsed whole = parse(in, 0, max_message);
  for (gsize step = 1; step <= 7; step += 6) {
    Parsed split = parse(in, step, max_message);
    g_assert_cmpint(split.error, ==, whole.error);
    g_assert_cmpuint(split.events->len, ==, whole.events->len);
    for (guint i = 0; i < whole.events->len; i++)
      g_assert_cmpstr(split.events->pdata[i], ==, whole.events->pdata[i]);
    g_ptr_array_unref(split.events);
  }
  return whole;
}

static void
assert_events(Parsed *r, int error, guint16 code, const char *const *want)
{
  guint n = g_strv_length((char **)want);
  g_assert_cmpint(r->error, ==, error);
  g_assert_cmpuint(r->error_code, ==, code);
  g_assert_cmpuint(r->events->len, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpstr(r->events->pdata[i], ==, want[i]);
  g_ptr_array_unref(r->events);
}

static void
test_masked_text(void)
{
  GByteArray *in = g_byte_array_new();
  client_frame(in, 0x81, TRUE, "hello", 5);
  client_frame(in, 0x81, TRUE, "", 0);
  client_frame(in, 0x81, TRUE, "ünï", strlen("ünï"));
  Parsed r = parse_all_ways(in, 1024);
  assert_events(&r, 0, 0, (const char *const[]){"T:hello", "T:", "T:ünï", NULL});
  g_byte_array_unref(in);
}

static void
test_lengths(void)
{
  /* 125 fits the 7-bit length, 126 and 65535 take 16 bits, 65536 64. */
  gsize sizes[] = {125, 126, 65535, 65536};
  GByteArray *in = g_byte_array_new();
  for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
    guint8 *buf = g_malloc0(sizes[i]);
    client_frame(in, 0x82, TRUE, buf, sizes[i]);
    g_free(buf);
  }
  Parsed r = parse(in, 0, 100000);
  assert_events(&r, 0, 0, (const char *const[]){"B:125", "B:126", "B:65535", "B:65536", NULL});
  g_byte_array_unref(in);
}

static void
test_fragments_with_control_between(void)
{
  GByteArray *in = g_byte_array_new();
  client_frame(in, 0x01, TRUE, "frag", 4); /* text, FIN clear */
  client_frame(in, 0x89, TRUE, "p1", 2);   /* ping in the middle */
  client_frame(in, 0x00, TRUE, "men", 3);  /* continuation */
  client_frame(in, 0x8A, TRUE, "", 0);     /* pong in the middle */
  client_frame(in, 0x80, TRUE, "ted", 3);  /* last continuation */
  client_frame(in, 0x81, TRUE, "next", 4);
  Parsed r = parse_all_ways(in, 1024);
  assert_events(&r, 0, 0, (const char *const[]){"P:p1", "O:", "T:fragmented", "T:next", NULL});
  g_byte_array_unref(in);
}

static void
test_utf8_split_across_fragments(void)
{
  /* "é" is C3 A9: a character cut between two fragments is still valid. */
  GByteArray *in = g_byte_array_new();
  client_frame(in, 0x01, TRUE, "caf\xC3", 4);
  client_frame(in, 0x80, TRUE, "\xA9", 1);
  Parsed r = parse_all_ways(in, 1024);
  assert_events(&r, 0, 0, (const char *const[]){"T:café", NULL});
  g_byte_array_unref(in);
}

static void
expect_protocol_error(guint8 b0, gboolean masked, const char *payload, gsize len, guint16 code)
{
  GByteArray *in = g_byte_array_new();
  client_frame(in, 0x81, TRUE, "ok", 2);
  client_frame(in, b0, masked, payload, len);
  client_frame(in, 0x81, TRUE, "never", 5);
  Parsed r = parse_all_ways(in, 1024);
  assert_events(&r, code == FERRY_WS_CLOSE_TOO_BIG ? FERRY_ERR_TOO_LONG : FERRY_ERR_INVALID, code,
                (const char *const[]){"T:ok", NULL});
  g_byte_array_unref(in);
}

static void
test_bad_frames(void)
{
  expect_protocol_error(0x81, FALSE, "hi", 2, FERRY_WS_CLOSE_PROTOCOL_ERROR); /* unmasked */
  expect_protocol_error(0xC1, TRUE, "hi", 2, FERRY_WS_CLOSE_PROTOCOL_ERROR);  /* RSV1 */
  expect_protocol_error(0xA1, TRUE, "hi", 2, FERRY_WS_CLOSE_PROTOCOL_ERROR);  /* RSV2 */
  expect_protocol_error(0x91, TRUE, "hi", 2, FERRY_WS_CLOSE_PROTOCOL_ERROR);  /* RSV3 */
  for (guint8 op = 3; op <= 7; op++)
    expect_protocol_error(0x80 | op, TRUE, "x", 1, FERRY_WS_CLOSE_PROTOCOL_ERROR);
  for (guint8 op = 0xB; op <= 0xF; op++)
    expect_protocol_error(0x80 | op, TRUE, "x", 1, FERRY_WS_CLOSE_PROTOCOL_ERROR);
  expect_protocol_error(0x09, TRUE, "x", 1, FERRY_WS_CLOSE_PROTOCOL_ERROR); /* fragmented ping */
  expect_protocol_error(0x80, TRUE, "x", 1, FERRY_WS_CLOSE_PROTOCOL_ERROR); /* lone continuation */
  expect_protocol_error(0x81, TRUE, "\xC3(", 2, FERRY_WS_CLOSE_BAD_DATA);   /* bad UTF-8 */
  expect_protocol_error(0x81, TRUE, "\xED\xA0\x80", 3, FERRY_WS_CLOSE_BAD_DATA); /* surrogate */
  expect_protocol_error(0x81, TRUE, "\xC0\xAF", 2, FERRY_WS_CLOSE_BAD_DATA);     /* overlong */
  expect_protocol_error(0x88, TRUE, "\x03", 1, FERRY_WS_CLOSE_PROTOCOL_ERROR);   /* 1-byte close */
  expect_protocol_error(0x88, TRUE, "\x03\xED", 2, FERRY_WS_CLOSE_PROTOCOL_ERROR); /* code 1005 */
  expect_protocol_error(0x88, TRUE, "\x03\xE8\xFF", 3, FERRY_WS_CLOSE_BAD_DATA);   /* bad reason */

  char big[126];
  memset(big, 'x', sizeof big);
  expect_protocol_error(0x89, TRUE, big, sizeof big, FERRY_WS_CLOSE_PROTOCOL_ERROR); /* long ping */

  /* A new message while a fragmented one is open. */
  GByteArray *in = g_byte_array_new();
  client_frame(in, 0x01, TRUE, "a", 1);
  client_frame(in, 0x81, TRUE, "b", 1);
  Parsed r = parse_all_ways(in, 1024);
  assert_events(&r, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR, (const char *const[]){NULL});
  g_byte_array_unref(in);

  /* A 64-bit length with its top bit set. */
  guint8 raw[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
  in = g_byte_array_new();
  g_byte_array_append(in, raw, sizeof raw);
  r = parse_all_ways(in, 1024);
  assert_events(&r, FERRY_ERR_INVALID, FERRY_WS_CLOSE_PROTOCOL_ERROR, (const char *const[]){NULL});
  g_byte_array_unref(in);
}

static void
test_oversize(void)
{
  char buf[1025];
  memset(buf, 'a', sizeof buf);
  /* One frame over the bound (1024 here) is refused from its header alone. */
  expect_protocol_error(0x81, TRUE, buf, 1025, FERRY_WS_CLOSE_TOO_BIG);

  /* Exactly the bound is fine; fragments adding up past it are not. */
  GByteArray *in = g_byte_array_new();
  client_frame(in, 0x82, TRUE, buf, 100);
  client_frame(in, 0x02, TRUE, buf, 60);
  client_frame(in, 0x80, TRUE, buf, 41);
  Parsed r = parse_all_ways(in, 100);
  assert_events(&r, FERRY_ERR_TOO_LONG, FERRY_WS_CLOSE_TOO_BIG,
                (const char *const[]){"B:100", NULL});
  g_byte_array_unref(in);

  /* The header of a 2^62-byte frame is refused without allocating it. */
  guint8 raw[] = {0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  in = g_byte_array_new();
  g_byte_array_append(in, raw, sizeof raw);
  r = parse_all_ways(in, 100);
  assert_events(&r, FERRY_ERR_TOO_LONG, FERRY_WS_CLOSE_TOO_BIG, (const char *const[]){NULL});
  g_byte_array_unref(in);
}

static void
test_close_frames(void)
{
  GByteArray *in = g_byte_array_new();
  client_frame(in, 0x88, TRUE,
               "\x03\xE8"
               "bye",
               5);
  client_frame(in, 0x88, TRUE, "", 0);
  client_frame(in, 0x88, TRUE, "\x0F\xA0", 2); /* 4000: an application's code */
  Parsed r = parse_all_ways(in, 1024);
  assert_events(&r, 0, 0, (const char *const[]){"C:1000:bye", "C:1005:", "C:4000:", NULL});
  g_byte_array_unref(in);
}

static void
test_server_frames(void)
{
  GByteArray *out = g_byte_array_new();
  ferry_ws_frame_append(out, FERRY_WS_TEXT, "hi", 2);
  const guint8 small[] = {0x81, 0x02, 'h', 'i'};
  g_assert_cmpmem(out->data, out->len, small, sizeof small);

  g_byte_array_set_size(out, 0);
  guint8 *big = g_malloc0(70000);
  ferry_ws_frame_append(out, FERRY_WS_BINARY, big, 300);
  g_assert_cmpuint(out->len, ==, 4 + 300);
  g_assert_cmpuint(out->data[1], ==, 126);
  g_assert_cmpuint((out->data[2] << 8) | out->data[3], ==, 300);
  g_byte_array_set_size(out, 0);
  ferry_ws_frame_append(out, FERRY_WS_BINARY, big, 70000);
  g_assert_cmpuint(out->len, ==, 10 + 70000);
  g_assert_cmpuint(out->data[1], ==, 127);
  g_assert_cmpuint((out->data[7] << 16) | (out->data[8] << 8) | out->data[9], ==, 70000);
  g_free(big);

  /* A close reason is cut to 123 bytes, never inside a character. */
  g_byte_array_set_size(out, 0);
  GString *reason = g_string_new("x");
  for (int i = 0; i < 100; i++)
    g_string_append(reason, "é");
  ferry_ws_close_append(out, 1001, reason->str);
  g_assert_cmpuint(out->data[0], ==, 0x88);
  g_assert_cmpuint(out->data[1], <=, 125);
  g_assert_cmpuint((out->data[2] << 8) | out->data[3], ==, 1001);
  g_assert_true(ferry_ws_utf8_valid(out->data + 4, out->data[1] - 2));
  g_assert_cmpuint(out->data[1], ==, 2 + 1 + 2 * 61);
  g_string_free(reason, TRUE);
  g_byte_array_unref(out);
}

/* --- connections over a socketpair --- */

typedef struct {
  FerryWsHub *hub;
  FerryWsConn *conn;
  int peer; /* the client's end */
  GPtrArray *messages;
  gboolean closed;
  FerryWsEnd end;
} Fixture;

static void
on_message(FerryWsConn *conn, gboolean text, const guint8 *data, gsize len, gpointer user_data)
{
  Fixture *f = user_data;
  g_ptr_array_add(f->messages, g_strdup_printf("%c:%.*s", text ? 'T' : 'B', (int)len, data));
  if (len == 4 && memcmp(data, "echo", 4) == 0)
    ferry_ws_conn_send_text(conn, "echoed", 6);
}

static void
on_closed(FerryWsConn *conn, gpointer user_data)
{
  Fixture *f = user_data;
  f->closed = TRUE;
  f->end = ferry_ws_conn_get_end(conn);
}

static const FerryWsHandlers handlers = {on_message, on_closed};

static void
fixture_setup(Fixture *f, const GByteArray *early, gsize max_queued)
{
  int sv[2];
  g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  f->hub = ferry_ws_hub_new(1024, max_queued, NULL);
  g_assert_nonnull(f->hub);
  f->messages = g_ptr_array_new_with_free_func(g_free);
  f->closed = FALSE;
  f->peer = sv[1];
  f->conn = ferry_ws_conn_new(f->hub, sv[0], early ? early->data : NULL, early ? early->len : 0,
                              &handlers, f);
}

static void
fixture_teardown(Fixture *f)
{
  ferry_ws_conn_unref(f->conn);
  ferry_ws_hub_free(f->hub);
  g_ptr_array_unref(f->messages);
  close(f->peer);
}

static void
pump_until(gboolean (*done)(Fixture *f), Fixture *f)
{
  for (int i = 0; i < 2000 && !done(f); i++)
    g_main_context_iteration(NULL, TRUE);
  g_assert_true(done(f));
}

static gboolean
have_two_messages(Fixture *f)
{
  return f->messages->len >= 2;
}

static gboolean
is_closed(Fixture *f)
{
  return f->closed;
}

static void
client_send(Fixture *f, guint8 b0, const void *payload, gsize len)
{
  GByteArray *b = g_byte_array_new();
  client_frame(b, b0, TRUE, payload, len);
  g_assert_cmpint(write(f->peer, b->data, b->len), ==, (gssize)b->len);
  g_byte_array_unref(b);
}

/* Reads what the server sent until it closes its end. */
static GByteArray *
read_to_eof(Fixture *f)
{
  GByteArray *got = g_byte_array_new();
  guint8 buf[4096];
  ssize_t n;
  while ((n = read(f->peer, buf, sizeof buf)) > 0)
    g_byte_array_append(got, buf, (guint)n);
  return got;
}

static void
test_conn_echo_ping_and_client_close(void)
{
  Fixture f;
  /* The first frame arrives with the handshake bytes, before the hub
   * watches the socket; it must still come first. */
  GByteArray *early = g_byte_array_new();
  client_frame(early, 0x81, TRUE, "early", 5);
  fixture_setup(&f, early, 1 << 20);
  g_byte_array_unref(early);

  client_send(&f, 0x81, "echo", 4);
  pump_until(have_two_messages, &f);
  g_assert_cmpstr(f.messages->pdata[0], ==, "T:early");
  g_assert_cmpstr(f.messages->pdata[1], ==, "T:echo");
  client_send(&f, 0x89, "pp", 2);
  client_send(&f, 0x88, "\x03\xE8ok", 4);
  pump_until(is_closed, &f);
  g_assert_cmpint(f.end, ==, FERRY_WS_END_CLOSED);
  g_assert_cmpuint(ferry_ws_conn_get_close_code(f.conn), ==, 1000);
  g_assert_false(ferry_ws_conn_is_open(f.conn));

  /* echoed, the pong, then the close echoed with the client's code. */
  GByteArray *got = read_to_eof(&f);
  const guint8 want[] = {0x81, 6, 'e', 'c', 'h',  'o', 'e',  'd',
                         0x8A, 2, 'p', 'p', 0x88, 2,   0x03, 0xE8};
  g_assert_cmpmem(got->data, got->len, want, sizeof want);
  g_byte_array_unref(got);
  fixture_teardown(&f);
}

static void
test_conn_server_close(void)
{
  Fixture f;
  fixture_setup(&f, NULL, 1 << 20);
  ferry_ws_conn_send_text(f.conn, "bye", 3);
  ferry_ws_conn_close(f.conn, FERRY_WS_CLOSE_GOING_AWAY, "server shutting down");
  g_assert_false(ferry_ws_conn_is_open(f.conn));
  ferry_ws_conn_send_text(f.conn, "late", 4); /* dropped: the close is out */
  g_assert_false(f.closed);                   /* waits for the client's answer */

  guint8 buf[256];
  ssize_t n = read(f.peer, buf, sizeof buf);
  g_assert_cmpint(n, ==, 5 + 2 + 2 + 20);
  g_assert_cmpmem(buf, 5,
                  "\x81\x03"
                  "bye",
                  5);
  g_assert_cmpuint(buf[5], ==, 0x88);
  g_assert_cmpuint((buf[7] << 8) | buf[8], ==, 1001);
  g_assert_cmpmem(buf + 9, 20, "server shutting down", 20);

  client_send(&f, 0x81, "ignored", 7);
  client_send(&f, 0x88, "\x03\xE9", 2);
  pump_until(is_closed, &f);
  g_assert_cmpint(f.end, ==, FERRY_WS_END_CLOSED);
  g_assert_cmpuint(ferry_ws_conn_get_close_code(f.conn), ==, 1001);
  g_assert_cmpuint(f.messages->len, ==, 0);
  fixture_teardown(&f);
}

static void
test_conn_protocol_error_closes_1002(void)
{
  Fixture f;
  fixture_setup(&f, NULL, 1 << 20);
  guint8 unmasked[] = {0x81, 0x02, 'h', 'i'};
  g_assert_cmpint(write(f.peer, unmasked, sizeof unmasked), ==, sizeof unmasked);
  pump_until(is_closed, &f);
  g_assert_cmpint(f.end, ==, FERRY_WS_END_PROTOCOL);
  g_assert_cmpuint(ferry_ws_conn_get_close_code(f.conn), ==, 0);
  GByteArray *got = read_to_eof(&f);
  g_assert_cmpuint(got->len, >=, 4);
  g_assert_cmpuint(got->data[0], ==, 0x88);
  g_assert_cmpuint((got->data[2] << 8) | got->data[3], ==, 1002);
  g_byte_array_unref(got);
  fixture_teardown(&f);
}

static void
test_conn_oversize_closes_1009(void)
{
  Fixture f;
  fixture_setup(&f, NULL, 1 << 20);
  char big[2000];
  memset(big, 'a', sizeof big);
  client_send(&f, 0x81, big, sizeof big);
  pump_until(is_closed, &f);
  g_assert_cmpint(f.end, ==, FERRY_WS_END_PROTOCOL);
  GByteArray *got = read_to_eof(&f);
  g_assert_cmpuint((got->data[2] << 8) | got->data[3], ==, 1009);
  g_byte_array_unref(got);
  fixture_teardown(&f);
}

static void
test_conn_eof(void)
{
  Fixture f;
  fixture_setup(&f, NULL, 1 << 20);
  shutdown(f.peer, SHUT_WR);
  pump_until(is_closed, &f);
  g_assert_cmpint(f.end, ==, FERRY_WS_END_EOF);
  g_assert_cmpuint(ferry_ws_conn_get_close_code(f.conn), ==, 0);
  fixture_teardown(&f);
}

static void
test_conn_slow_reader_is_dropped(void)
{
  Fixture f;
  fixture_setup(&f, NULL, 64 * 1024);
  char msg[1000];
  memset(msg, 'm', sizeof msg);
  /* The client reads nothing: the socket buffers fill, then the queue. */
  for (int i = 0; i < 10000 && !f.closed; i++) {
    ferry_ws_conn_send_text(f.conn, msg, sizeof msg);
    if (ferry_ws_conn_get_end(f.conn) != FERRY_WS_END_NONE)
      break;
  }
  g_assert_cmpint(ferry_ws_conn_get_end(f.conn), ==, FERRY_WS_END_OVERFLOW);
  g_assert_false(f.closed); /* the handler runs from the main loop, not from send */
  pump_until(is_closed, &f);
  g_assert_cmpuint(ferry_ws_hub_get_overflows(f.hub), ==, 1);
  fixture_teardown(&f);
}

/* A client that sends its close while it reads nothing must not keep its
 * connection (and queued bytes) for ever: the close timeout ends it. */
static void
test_conn_close_while_not_reading_times_out(void)
{
  Fixture f;
  fixture_setup(&f, NULL, 16 * 1024 * 1024);
  char msg[10000];
  memset(msg, 'q', sizeof msg);
  for (int i = 0; i < 400; i++)
    ferry_ws_conn_send_text(f.conn, msg, sizeof msg);
  g_assert_cmpint(ferry_ws_conn_get_end(f.conn), ==, FERRY_WS_END_NONE);
  client_send(&f, 0x88, "\x03\xE8", 2);
  pump_until(is_closed, &f);
  g_assert_cmpint(f.end, ==, FERRY_WS_END_TIMEOUT);
  fixture_teardown(&f);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/server/ws/masked-text", test_masked_text);
  g_test_add_func("/server/ws/lengths-7-16-64", test_lengths);
  g_test_add_func("/server/ws/fragments-with-control-between", test_fragments_with_control_between);
  g_test_add_func("/server/ws/utf8-split-across-fragments", test_utf8_split_across_fragments);
  g_test_add_func("/server/ws/bad-frames", test_bad_frames);
  g_test_add_func("/server/ws/oversize", test_oversize);
  g_test_add_func("/server/ws/close-frames", test_close_frames);
  g_test_add_func("/server/ws/server-frames", test_server_frames);
  g_test_add_func("/server/ws/conn/echo-ping-client-close", test_conn_echo_ping_and_client_close);
  g_test_add_func("/server/ws/conn/server-close", test_conn_server_close);
  g_test_add_func("/server/ws/conn/protocol-error-1002", test_conn_protocol_error_closes_1002);
  g_test_add_func("/server/ws/conn/oversize-1009", test_conn_oversize_closes_1009);
  g_test_add_func("/server/ws/conn/eof", test_conn_eof);
  g_test_add_func("/server/ws/conn/slow-reader-dropped", test_conn_slow_reader_is_dropped);
  g_test_add_func("/server/ws/conn/close-while-not-reading-times-out",
                  test_conn_close_while_not_reading_times_out);
  return g_test_run();
}
