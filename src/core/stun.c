/* STUN Binding on bytes: request decoder, response encoders, CRC-32.
 * Both RFC 8489 messages and classic RFC 3489 ones (no magic cookie). */
#include "core/stun.h"

#include <string.h>
#include <netinet/in.h>

#define ATTR_HEADER_SIZE 4
#define FINGERPRINT_SIZE (ATTR_HEADER_SIZE + 4)

#define PAD4(n)          (((size_t)(n) + 3) & ~(size_t)3)

static uint16_t
rd16(const uint8_t *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t
rd32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
wr16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void
wr32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* The reflected CRC-32 table (polynomial 0xEDB88320), built once. */
static uint32_t crc_table[256];

static void
crc_table_init(void)
{
  static gsize done = 0;

  if (g_once_init_enter(&done)) {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++)
        c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      crc_table[i] = c;
    }
    g_once_init_leave(&done, 1);
  }
}

uint32_t
ferry_stun_crc32(const uint8_t *buf, size_t len)
{
  uint32_t c = 0xFFFFFFFFu;

  crc_table_init();
  for (size_t i = 0; i < len; i++)
    c = crc_table[(c ^ buf[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

/* Walks the attributes of a message whose framing was already checked. */
typedef struct {
  const uint8_t *buf;
  size_t len;
  size_t off;
} AttrIter;

static void
attr_iter_init(AttrIter *it, const uint8_t *buf, size_t len)
{
  it->buf = buf;
  it->len = len;
  it->off = FERRY_STUN_HEADER_SIZE;
}

/* Returns 1 and the next attribute, 0 at the end, or FERRY_ERR_INVALID
 * when the attribute header or its padded value runs past the end. */
static int
attr_iter_next(AttrIter *it, uint16_t *type, const uint8_t **value, uint16_t *vlen)
{
  size_t left = it->len - it->off, padded;

  if (left == 0)
    return 0;
  if (left < ATTR_HEADER_SIZE)
    return FERRY_ERR_INVALID;
  *type = rd16(it->buf + it->off);
  *vlen = rd16(it->buf + it->off + 2);
  padded = PAD4(*vlen);
  if (padded > left - ATTR_HEADER_SIZE)
    return FERRY_ERR_INVALID;
  *value = it->buf + it->off + ATTR_HEADER_SIZE;
  it->off += ATTR_HEADER_SIZE + padded;
  return 1;
}

/* The framing both forms share: header, length and attribute bounds.
 * An RFC 8489 message must also carry the magic cookie and obey the
 * FINGERPRINT rules; a classic RFC 3489 one has no FINGERPRINT, so an
 * attribute of that type in it is just one more optional attribute. */
static int
check_framing(const uint8_t *buf, size_t len, gboolean classic)
{
  AttrIter it;
  const uint8_t *value;
  uint16_t type, vlen;
  gboolean seen_fingerprint = FALSE;
  int r;

  if (len < FERRY_STUN_HEADER_SIZE || (buf[0] & 0xC0) != 0)
    return FERRY_ERR_INVALID;
  if (!classic && rd32(buf + 4) != FERRY_STUN_MAGIC_COOKIE)
    return FERRY_ERR_VERSION;
  if (rd16(buf + 2) % 4 != 0 || rd16(buf + 2) != len - FERRY_STUN_HEADER_SIZE)
    return FERRY_ERR_INVALID;

  attr_iter_init(&it, buf, len);
  while ((r = attr_iter_next(&it, &type, &value, &vlen)) > 0) {
    if (classic)
      continue;
    if (seen_fingerprint)
      return FERRY_ERR_INVALID;
    if (type == FERRY_STUN_ATTR_FINGERPRINT) {
      size_t at = (size_t)(value - buf) - ATTR_HEADER_SIZE;
      if (vlen != 4)
        return FERRY_ERR_INVALID;
      if ((ferry_stun_crc32(buf, at) ^ FERRY_STUN_FINGERPRINT_XOR) != rd32(value))
        return FERRY_ERR_CORRUPT;
      seen_fingerprint = TRUE;
    }
  }
  if (r < 0)
    return r;
  return rd16(buf);
}

int
ferry_stun_message_check(const uint8_t *buf, size_t len)
{
  return check_framing(buf, len, FALSE);
}

/* Whether a message of at least a header's length is a classic RFC 3489
 * one: its transaction ID takes the place of the magic cookie. */
static gboolean
is_classic(const uint8_t *buf, size_t len)
{
  return len >= FERRY_STUN_HEADER_SIZE && rd32(buf + 4) != FERRY_STUN_MAGIC_COOKIE;
}

/* Attributes that only make sense with credentials. This responder has
 * none, so it can neither check nor produce them. */
static gboolean
is_credential_attr(uint16_t type)
{
  switch (type) {
  case FERRY_STUN_ATTR_USERNAME:
  case FERRY_STUN_ATTR_MESSAGE_INTEGRITY:
  case FERRY_STUN_ATTR_REALM:
  case FERRY_STUN_ATTR_NONCE:
  case FERRY_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
  case FERRY_STUN_ATTR_PASSWORD_ALGORITHM:
  case FERRY_STUN_ATTR_USERHASH:
    return TRUE;
  default:
    return FALSE;
  }
}

/* A Binding request needs no attribute at all, so every comprehension-
 * required type (below 0x8000) other than the credential ones is one we
 * do not understand and must name in a 420 response (RFC 8489 section
 * 6.3.1). Comprehension-optional ones (SOFTWARE and the like) are
 * ignored, as the RFC asks. RFC 3489 draws the same line at 0x7FFF, so a
 * classic request is sorted the same way. */
int
ferry_stun_parse_binding_request(const uint8_t *buf, size_t len, FerryStunRequest *out)
{
  AttrIter it;
  const uint8_t *value;
  uint16_t type, vlen;
  gboolean credentials = FALSE, classic = is_classic(buf, len);
  int r;

  r = check_framing(buf, len, classic);
  if (r < 0)
    return r;
  if (r != FERRY_STUN_BINDING_REQUEST)
    return FERRY_ERR_INVALID;

  memset(out, 0, sizeof *out);
  out->classic = classic;
  memcpy(out->id, buf + 4, FERRY_STUN_ID_SIZE);
  attr_iter_init(&it, buf, len);
  while (attr_iter_next(&it, &type, &value, &vlen) > 0) {
    if (type == FERRY_STUN_ATTR_FINGERPRINT) {
      out->has_fingerprint = !classic;
    } else if (is_credential_attr(type)) {
      credentials = TRUE;
    } else if (type < 0x8000) {
      gboolean listed = FALSE;
      for (unsigned i = 0; i < out->n_unknown; i++)
        listed = listed || out->unknown[i] == type;
      if (!listed && out->n_unknown < FERRY_STUN_MAX_UNKNOWN)
        out->unknown[out->n_unknown++] = type;
    }
  }
  if (credentials)
    out->error_code = 400;
  else if (out->n_unknown > 0)
    out->error_code = 420;
  return 0;
}

/* A bounded writer: every put checks the room left, so the encoders
 * cannot write past cap whatever they are asked to write. */
typedef struct {
  uint8_t *out;
  size_t cap;
  size_t len;
  gboolean overflow;
} Writer;

/* The header with a zero length (set when the message is finished):
 * an RFC 8489 response carries the magic cookie and the request's 12-byte
 * transaction ID, a classic one the request's 16-byte ID. */
static void
writer_header(Writer *w, uint16_t type, const FerryStunRequest *req)
{
  if (w->cap < FERRY_STUN_HEADER_SIZE) {
    w->overflow = TRUE;
    return;
  }
  wr16(w->out, type);
  wr16(w->out + 2, 0);
  memcpy(w->out + 4, req->id, FERRY_STUN_ID_SIZE);
  if (!req->classic)
    wr32(w->out + 4, FERRY_STUN_MAGIC_COOKIE);
  w->len = FERRY_STUN_HEADER_SIZE;
}

/* Appends one attribute with zero padding and returns a pointer to its
 * value for the caller to fill, or NULL if it does not fit. */
static uint8_t *
writer_attr(Writer *w, uint16_t type, size_t vlen)
{
  size_t padded = PAD4(vlen);
  uint8_t *p;

  if (w->overflow || vlen > 0xFFFF || w->cap - w->len < ATTR_HEADER_SIZE + padded) {
    w->overflow = TRUE;
    return NULL;
  }
  p = w->out + w->len;
  wr16(p, type);
  wr16(p + 2, (uint16_t)vlen);
  memset(p + ATTR_HEADER_SIZE, 0, padded);
  w->len += ATTR_HEADER_SIZE + padded;
  return p + ATTR_HEADER_SIZE;
}

/* Appends an attribute whose value is head bytes (left for the caller to
 * fill through the returned pointer; NULL if it does not fit) followed by
 * text. RFC 8489 pads with zeros outside the value's length; RFC 3489 has
 * no padding, so in a classic message the text is padded with spaces and
 * the length covers them. */
static uint8_t *
writer_text_attr(Writer *w, uint16_t type, size_t head, const char *text, gboolean classic)
{
  size_t n = strlen(text), vlen = classic ? PAD4(head + n) : head + n;
  uint8_t *v = writer_attr(w, type, vlen);

  if (v != NULL) {
    memcpy(v + head, text, n);
    memset(v + head + n, classic ? ' ' : 0, vlen - head - n);
  }
  return v;
}

static void
writer_software(Writer *w, const char *software, gboolean classic)
{
  if (software == NULL)
    return;
  if (strlen(software) > FERRY_STUN_MAX_SOFTWARE) {
    w->overflow = TRUE;
    return;
  }
  writer_text_attr(w, FERRY_STUN_ATTR_SOFTWARE, 0, software, classic);
}

/* Sets the length field and, for RFC 8489, appends FINGERPRINT: it goes
 * last and covers the header with its final length, so the length field
 * is set before the CRC is taken. */
static int
writer_finish(Writer *w, gboolean classic)
{
  size_t at = w->len;
  uint8_t *v;

  if (w->overflow)
    return FERRY_ERR_TOO_LONG;
  if (classic) {
    wr16(w->out + 2, (uint16_t)(at - FERRY_STUN_HEADER_SIZE));
    return (int)w->len;
  }
  if (w->cap - w->len < FINGERPRINT_SIZE)
    return FERRY_ERR_TOO_LONG;
  wr16(w->out + 2, (uint16_t)(at + FINGERPRINT_SIZE - FERRY_STUN_HEADER_SIZE));
  v = writer_attr(w, FERRY_STUN_ATTR_FINGERPRINT, 4);
  wr32(v, ferry_stun_crc32(w->out, at) ^ FERRY_STUN_FINGERPRINT_XOR);
  return (int)w->len;
}

/* A request carries no attribute but FINGERPRINT, so a server that
 * demultiplexes STUN from other traffic (coturn, libnice) knows it. */
int
ferry_stun_build_binding_request(const uint8_t txid[FERRY_STUN_TXID_SIZE], uint8_t *out, size_t cap)
{
  Writer w = {out, cap, 0, FALSE};
  FerryStunRequest req = {0};

  memcpy(req.id + 4, txid, FERRY_STUN_TXID_SIZE);
  writer_header(&w, FERRY_STUN_BINDING_REQUEST, &req);
  return writer_finish(&w, FALSE);
}

/* An RFC 8489 client is told its address XORed with the magic cookie and
 * transaction ID (so NATs that rewrite addresses in payloads leave it
 * alone); a classic client only knows MAPPED-ADDRESS, in the clear. */
int
ferry_stun_build_binding_response(const FerryStunRequest *req, const struct sockaddr *mapped,
                                  const char *software, uint8_t *out, size_t cap)
{
  Writer w = {out, cap, 0, FALSE};
  uint8_t key[FERRY_STUN_ID_SIZE], addr[16];
  size_t alen;
  uint16_t port;
  uint8_t *v;

  if (req->error_code != 0)
    return FERRY_ERR_STATE;
  if (mapped == NULL)
    return FERRY_ERR_INVALID;
  if (mapped->sa_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)mapped;
    memcpy(addr, &sin->sin_addr, 4);
    alen = 4;
    port = ntohs(sin->sin_port);
  } else if (mapped->sa_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)mapped;
    /* A dual-stack socket sees an IPv4 client as ::ffff:a.b.c.d; the
     * client asked from an IPv4 address, so it is told an IPv4 one. */
    if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
      memcpy(addr, sin6->sin6_addr.s6_addr + 12, 4);
      alen = 4;
    } else {
      memcpy(addr, &sin6->sin6_addr, 16);
      alen = 16;
    }
    port = ntohs(sin6->sin6_port);
  } else {
    return FERRY_ERR_INVALID;
  }

  if (req->classic) {
    memset(key, 0, sizeof key);
  } else {
    wr32(key, FERRY_STUN_MAGIC_COOKIE);
    memcpy(key + 4, req->id + 4, FERRY_STUN_TXID_SIZE);
  }

  writer_header(&w, FERRY_STUN_BINDING_SUCCESS, req);
  v = writer_attr(
      &w, req->classic ? FERRY_STUN_ATTR_MAPPED_ADDRESS : FERRY_STUN_ATTR_XOR_MAPPED_ADDRESS,
      4 + alen);
  if (v != NULL) {
    v[1] = alen == 4 ? 0x01 : 0x02;
    wr16(v + 2, port ^ rd16(key));
    for (size_t i = 0; i < alen; i++)
      v[4 + i] = addr[i] ^ key[i];
  }
  writer_software(&w, software, req->classic);
  return writer_finish(&w, req->classic);
}

int
ferry_stun_build_error_response(const FerryStunRequest *req, const char *software, uint8_t *out,
                                size_t cap)
{
  Writer w = {out, cap, 0, FALSE};
  const char *reason;
  uint8_t *v;

  if (req->error_code == 400)
    reason = "Credentials not supported";
  else if (req->error_code == 420)
    reason = "Unknown Attribute";
  else
    return FERRY_ERR_STATE;

  writer_header(&w, FERRY_STUN_BINDING_ERROR, req);
  v = writer_text_attr(&w, FERRY_STUN_ATTR_ERROR_CODE, 4, reason, req->classic);
  if (v != NULL) {
    v[2] = (uint8_t)(req->error_code / 100);
    v[3] = (uint8_t)(req->error_code % 100);
  }
  if (req->error_code == 420) {
    unsigned n = MIN(req->n_unknown, FERRY_STUN_MAX_UNKNOWN);
    /* RFC 3489 wants a list of a multiple of 4 bytes: an odd one repeats
     * its first type (FERRY_STUN_MAX_UNKNOWN is even, so it stays within
     * the bound). */
    unsigned listed = req->classic && n % 2 == 1 ? n + 1 : n;
    v = writer_attr(&w, FERRY_STUN_ATTR_UNKNOWN_ATTRIBUTES, 2 * (size_t)listed);
    for (unsigned i = 0; v != NULL && i < listed; i++)
      wr16(v + 2 * i, req->unknown[i < n ? i : 0]);
  }
  writer_software(&w, software, req->classic);
  return writer_finish(&w, req->classic);
}

int
ferry_stun_parse_binding_response(const uint8_t *buf, size_t len, uint8_t id[FERRY_STUN_ID_SIZE],
                                  struct sockaddr_storage *mapped)
{
  AttrIter it;
  const uint8_t *value;
  uint16_t type, vlen;
  uint8_t key[FERRY_STUN_ID_SIZE];
  gboolean classic = is_classic(buf, len);
  int r;

  r = check_framing(buf, len, classic);
  if (r < 0)
    return r;
  if (r != FERRY_STUN_BINDING_SUCCESS)
    return FERRY_ERR_INVALID;
  memcpy(id, buf + 4, FERRY_STUN_ID_SIZE);
  /* XOR-MAPPED-ADDRESS is keyed by cookie and transaction ID, which are
   * header bytes 4..19; MAPPED-ADDRESS is XORed with nothing. */
  if (classic)
    memset(key, 0, sizeof key);
  else
    memcpy(key, buf + 4, sizeof key);

  attr_iter_init(&it, buf, len);
  while (attr_iter_next(&it, &type, &value, &vlen) > 0) {
    uint16_t port;
    if (type != (classic ? FERRY_STUN_ATTR_MAPPED_ADDRESS : FERRY_STUN_ATTR_XOR_MAPPED_ADDRESS))
      continue;
    if (vlen < 4)
      return FERRY_ERR_INVALID;
    port = rd16(value + 2) ^ rd16(key);
    memset(mapped, 0, sizeof *mapped);
    if (value[1] == 0x01 && vlen == 8) {
      struct sockaddr_in *sin = (struct sockaddr_in *)mapped;
      sin->sin_family = AF_INET;
      sin->sin_port = htons(port);
      for (int i = 0; i < 4; i++)
        ((uint8_t *)&sin->sin_addr)[i] = value[4 + i] ^ key[i];
    } else if (value[1] == 0x02 && vlen == 20) {
      struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)mapped;
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(port);
      for (int i = 0; i < 16; i++)
        sin6->sin6_addr.s6_addr[i] = value[4 + i] ^ key[i];
    } else {
      return FERRY_ERR_INVALID;
    }
    return 0;
  }
  return FERRY_ERR_NOT_FOUND;
}
