/* Encoding and decoding of LAN discovery datagrams: see lan-datagram.h and
 * docs/protocol.md §9. */
#include <string.h>

#include <ferry/code.h>

#include "net/lan-datagram.h"

#define MAGIC "FERRY-LAN "

/* A cursor over the datagram's bytes. */
typedef struct {
  const guint8 *p;
  const guint8 *end;
} Reader;

/* Reads a decimal number without a leading zero, at most max, ending at a
 * space or the end of the datagram (not consumed). */
static gboolean
read_number(Reader *r, guint64 max, guint64 *value)
{
  guint64 v = 0;
  const guint8 *start = r->p;

  while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
    if (r->p == start + 1 && *start == '0')
      return FALSE;
    v = v * 10 + (guint64)(*r->p - '0');
    if (v > max)
      return FALSE;
    r->p++;
  }
  if (r->p == start)
    return FALSE;
  *value = v;
  return TRUE;
}

/* Exactly 16 lowercase hex digits. */
static gboolean
read_instance(Reader *r, guint64 *value)
{
  guint64 v = 0;

  if (r->end - r->p < 16)
    return FALSE;
  for (int i = 0; i < 16; i++) {
    guint8 c = *r->p++;
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return FALSE;
    v = (v << 4) | (guint64)d;
  }
  *value = v;
  return TRUE;
}

static gboolean
read_space(Reader *r)
{
  if (r->p >= r->end || *r->p != ' ')
    return FALSE;
  r->p++;
  return TRUE;
}

int
ferry_lan_datagram_parse(const guint8 *data, gsize len, FerryLanDatagram *out)
{
  Reader r = {data, data + len};
  guint64 version, nameplate, port = 0, server_nameplate = 0, instance = 0, tag = 0;
  FerryLanDatagram d = {0};

  if (len > FERRY_LAN_DATAGRAM_MAX)
    return FERRY_ERR_TOO_LONG;
  if (len < strlen(MAGIC) || memcmp(data, MAGIC, strlen(MAGIC)) != 0)
    return FERRY_ERR_INVALID;
  r.p += strlen(MAGIC);
  if (!read_number(&r, G_MAXUINT32, &version))
    return FERRY_ERR_INVALID;
  if (version != 1)
    return FERRY_ERR_VERSION;
  if (!read_space(&r) || r.p >= r.end)
    return FERRY_ERR_INVALID;
  d.kind = (FerryLanKind)*r.p++;
  if (d.kind != FERRY_LAN_QUERY && d.kind != FERRY_LAN_ANSWER)
    return FERRY_ERR_INVALID;
  if (!read_space(&r) || !read_number(&r, FERRY_NAMEPLATE_MAX, &nameplate) || nameplate == 0)
    return FERRY_ERR_INVALID;
  if (d.kind == FERRY_LAN_ANSWER) {
    if (!read_space(&r) || !read_number(&r, G_MAXUINT16, &port) || port == 0 || !read_space(&r) ||
        !read_instance(&r, &instance) || !read_space(&r) ||
        !read_number(&r, FERRY_NAMEPLATE_MAX, &server_nameplate) || server_nameplate == 0)
      return FERRY_ERR_INVALID;
    if (r.p != r.end && (!read_space(&r) || !read_instance(&r, &tag) || tag == 0))
      return FERRY_ERR_INVALID;
  }
  if (r.p != r.end)
    return FERRY_ERR_INVALID;
  d.nameplate = (guint32)nameplate;
  d.port = (guint16)port;
  d.instance = instance;
  d.server_nameplate = (guint32)server_nameplate;
  d.server_tag = tag;
  *out = d;
  return 0;
}

int
ferry_lan_datagram_format(const FerryLanDatagram *d, char *buf, gsize size)
{
  int n;

  if (d->nameplate < 1 || d->nameplate > FERRY_NAMEPLATE_MAX)
    return FERRY_ERR_INVALID;
  if (d->kind == FERRY_LAN_QUERY) {
    n = g_snprintf(buf, size, MAGIC "1 Q %u", d->nameplate);
  } else if (d->kind == FERRY_LAN_ANSWER) {
    if (d->port == 0 || d->server_nameplate < 1 || d->server_nameplate > FERRY_NAMEPLATE_MAX)
      return FERRY_ERR_INVALID;
    if (d->server_tag != 0)
      n = g_snprintf(buf, size,
                     MAGIC "1 A %u %u %016" G_GINT64_MODIFIER "x %u %016" G_GINT64_MODIFIER "x",
                     d->nameplate, d->port, d->instance, d->server_nameplate, d->server_tag);
    else
      n = g_snprintf(buf, size, MAGIC "1 A %u %u %016" G_GINT64_MODIFIER "x %u", d->nameplate,
                     d->port, d->instance, d->server_nameplate);
  } else {
    return FERRY_ERR_INVALID;
  }
  if (n < 0 || (gsize)n >= size)
    return FERRY_ERR_TOO_LONG;
  return n;
}
