/* Fuzz target: the WebSocket frame decoder of `ferry serve`. The input is
 * decoded whole and again in pieces whose sizes come from the input
 * itself; both must give the same events and the same verdict, and what
 * is accepted must obey RFC 6455 (bounded, valid UTF-8, valid codes). */
#include <stdint.h>
#include <string.h>

#include "server/ws.h"

#define MAX_MESSAGE 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A running digest of the events, so two runs can be compared cheaply. */
static guint64
mix(guint64 h, const guint8 *p, gsize len)
{
  for (gsize i = 0; i < len; i++)
    h = (h ^ p[i]) * 1099511628211ULL;
  return (h ^ len) * 1099511628211ULL;
}

static int
run(const guint8 *data, gsize size, guint8 step_seed, guint64 *digest, guint *events)
{
  FerryWsParser p;
  gsize pos = 0;
  int ret = 0;

  ferry_ws_parser_init(&p, MAX_MESSAGE);
  *digest = 14695981039346656037ULL;
  *events = 0;
  while (pos < size) {
    gsize step = step_seed == 0 ? size - pos : 1 + (gsize)((step_seed + pos) % 13);
    gsize avail = MIN(step, size - pos), used = 0;
    FerryWsEvent ev;
    ret = ferry_ws_parser_feed(&p, data + pos, avail, &used, &ev);
    if (used > avail)
      __builtin_trap();
    pos += used;
    if (ret < 0) {
      const char *reason;
      guint16 code = ferry_ws_parser_error(&p, &reason);
      if ((code != 1002 && code != 1007 && code != 1009) || reason == NULL)
        __builtin_trap();
      break;
    }
    if (ret == 0) {
      if (used != avail)
        __builtin_trap();
      continue;
    }
    (*events)++;
    if (ev.opcode == FERRY_WS_TEXT || ev.opcode == FERRY_WS_BINARY) {
      if (ev.len > MAX_MESSAGE)
        __builtin_trap();
      if (ev.opcode == FERRY_WS_TEXT && !ferry_ws_utf8_valid(ev.data, ev.len))
        __builtin_trap();
    } else if (ev.len > 125) {
      __builtin_trap();
    }
    if (ev.opcode == FERRY_WS_CLOSE && ev.close_code < 1000)
      __builtin_trap();
    guint8 tag[3] = {(guint8)ev.opcode, (guint8)(ev.close_code >> 8), (guint8)ev.close_code};
    *digest = mix(mix(*digest, tag, sizeof tag), ev.data, ev.len);
  }
  ferry_ws_parser_clear(&p);
  return ret;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  guint64 d1, d2;
  guint n1, n2;

  if (size == 0)
    return 0;
  int r1 = run(data + 1, size - 1, 0, &d1, &n1);
  int r2 = run(data + 1, size - 1, data[0] | 1, &d2, &n2);
  if ((r1 < 0) != (r2 < 0) || (r1 < 0 && r1 != r2) || d1 != d2 || n1 != n2)
    __builtin_trap();

  /* A server frame of the same bytes has the length the header promises. */
  GByteArray *out = g_byte_array_new();
  ferry_ws_frame_append(out, FERRY_WS_BINARY, data, size);
  gsize hlen = size < 126 ? 2 : size <= 0xFFFF ? 4 : 10;
  if (out->len != hlen + size || memcmp(out->data + hlen, data, size) != 0)
    __builtin_trap();
  g_byte_array_unref(out);
  return 0;
}
