/* The STUN responder: Binding request decoder, response encoders, and a
 * live FerryStunServer answering a plain UDP socket, for RFC 8489 clients
 * and classic RFC 3489 ones.
 *
 * Byte vectors: the XOR-MAPPED-ADDRESS values are those of RFC 5769
 * sections 2.2 and 2.3; the whole messages and their FINGERPRINTs were
 * computed independently with python3 (struct, zlib.crc32, ipaddress).
 * The classic vectors were laid out by hand from RFC 3489 section 11 and
 * RFC 8489 section 14.1 (MAPPED-ADDRESS, family 0x02 for IPv6) and written
 * out with python3 struct.pack and ipaddress; the classic request is the
 * one libnice's stun_usage_bind_run() sent in a capture. */
#include <ferry/ferry.h>

#include "core/stun.h"
#include "server/stun-server.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

static const uint8_t rfc5769_txid[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                         0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

/* RFC 5769 section 2.1: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
 * MESSAGE-INTEGRITY, FINGERPRINT. */
static const uint8_t rfc5769_request[108] = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf};

/* A Binding request with SOFTWARE "ferry-test" and FINGERPRINT. */
static const uint8_t request_fp[44] = {
    0x00, 0x01, 0x00, 0x18, 0x21, 0x12, 0xa4, 0x42, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x80, 0x22, 0x00, 0x0a, 0x66, 0x65, 0x72, 0x72, 0x79, 0x2d,
    0x74, 0x65, 0x73, 0x74, 0x00, 0x00, 0x80, 0x28, 0x00, 0x04, 0xed, 0x8c, 0xbe, 0x86};

/* Success responses for 192.0.2.1:32853 and
 * [2001:db8:1234:5678:11:2233:4455:6677]:32853, no SOFTWARE. */
static const uint8_t response_v4[40] = {0x01, 0x01, 0x00, 0x14, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7,
                                        0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
                                        0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12,
                                        0xa6, 0x43, 0x80, 0x28, 0x00, 0x04, 0x7d, 0x28, 0x1f, 0x59};

static const uint8_t response_v6[52] = {
    0x01, 0x01, 0x00, 0x20, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc,
    0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02,
    0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4,
    0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x80, 0x28, 0x00, 0x04, 0x68, 0xd5, 0xc9, 0x50};

static const uint8_t cookie[4] = {0x21, 0x12, 0xa4, 0x42};

/* A classic RFC 3489 Binding request with no attributes: a 16-byte
 * transaction ID where the magic cookie would be. */
static const uint8_t classic_id[16] = {0x9d, 0x83, 0xa0, 0x34, 0xdb, 0xce, 0x2e, 0xc3,
                                       0x2d, 0x57, 0xed, 0x3b, 0x99, 0x3c, 0x7e, 0xc5};
static const uint8_t classic_request[20] = {0x00, 0x01, 0x00, 0x00, 0x9d, 0x83, 0xa0,
                                            0x34, 0xdb, 0xce, 0x2e, 0xc3, 0x2d, 0x57,
                                            0xed, 0x3b, 0x99, 0x3c, 0x7e, 0xc5};

/* Classic success responses to it: MAPPED-ADDRESS (in the clear) of
 * 192.0.2.1:32853, of [2001:db8:1234:5678:11:2233:4455:6677]:32853, and of
 * [::1]:4242 followed by SOFTWARE "ferry/1.2.3" padded with one space;
 * no FINGERPRINT. */
static const uint8_t classic_response_v4[32] = {
    0x01, 0x01, 0x00, 0x0c, 0x9d, 0x83, 0xa0, 0x34, 0xdb, 0xce, 0x2e, 0xc3, 0x2d, 0x57, 0xed, 0x3b,
    0x99, 0x3c, 0x7e, 0xc5, 0x00, 0x01, 0x00, 0x08, 0x00, 0x01, 0x80, 0x55, 0xc0, 0x00, 0x02, 0x01};

static const uint8_t classic_response_v6[44] = {
    0x01, 0x01, 0x00, 0x18, 0x9d, 0x83, 0xa0, 0x34, 0xdb, 0xce, 0x2e, 0xc3, 0x2d, 0x57, 0xed,
    0x3b, 0x99, 0x3c, 0x7e, 0xc5, 0x00, 0x01, 0x00, 0x14, 0x00, 0x02, 0x80, 0x55, 0x20, 0x01,
    0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};

static const uint8_t classic_response_sw[60] = {
    0x01, 0x01, 0x00, 0x28, 0x9d, 0x83, 0xa0, 0x34, 0xdb, 0xce, 0x2e, 0xc3, 0x2d, 0x57, 0xed,
    0x3b, 0x99, 0x3c, 0x7e, 0xc5, 0x00, 0x01, 0x00, 0x14, 0x00, 0x02, 0x10, 0x92, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x80,
    0x22, 0x00, 0x0c, 0x66, 0x65, 0x72, 0x72, 0x79, 0x2f, 0x31, 0x2e, 0x32, 0x2e, 0x33, 0x20};

/* Classic error responses, no SOFTWARE: 420 for one unknown type 0x0003
 * (listed twice, RFC 3489 wants an even count) and 400; the reasons are
 * padded with spaces to a multiple of 4 inside their length. */
static const uint8_t classic_error_420[56] = {
    0x01, 0x11, 0x00, 0x24, 0x9d, 0x83, 0xa0, 0x34, 0xdb, 0xce, 0x2e, 0xc3, 0x2d, 0x57,
    0xed, 0x3b, 0x99, 0x3c, 0x7e, 0xc5, 0x00, 0x09, 0x00, 0x18, 0x00, 0x00, 0x04, 0x14,
    'U',  'n',  'k',  'n',  'o',  'w',  'n',  ' ',  'A',  't',  't',  'r',  'i',  'b',
    'u',  't',  'e',  ' ',  ' ',  ' ',  0x00, 0x0a, 0x00, 0x04, 0x00, 0x03, 0x00, 0x03};

static const uint8_t classic_error_400[56] = {
    0x01, 0x11, 0x00, 0x24, 0x9d, 0x83, 0xa0, 0x34, 0xdb, 0xce, 0x2e, 0xc3, 0x2d, 0x57,
    0xed, 0x3b, 0x99, 0x3c, 0x7e, 0xc5, 0x00, 0x09, 0x00, 0x20, 0x00, 0x00, 0x04, 0x00,
    'C',  'r',  'e',  'd',  'e',  'n',  't',  'i',  'a',  'l',  's',  ' ',  'n',  'o',
    't',  ' ',  's',  'u',  'p',  'p',  'o',  'r',  't',  'e',  'd',  ' ',  ' ',  ' '};

/* Builds a request in buf: header with txid, then raw attribute bytes,
 * then (if fingerprint) a correct FINGERPRINT; returns its length. */
static size_t
make_request(uint8_t *buf, const uint8_t txid[12], const uint8_t *attrs, size_t alen,
             gboolean fingerprint)
{
  size_t len = 20 + alen, body = alen + (fingerprint ? 8 : 0);

  buf[0] = 0x00;
  buf[1] = 0x01;
  buf[2] = (uint8_t)(body >> 8);
  buf[3] = (uint8_t)body;
  buf[4] = 0x21;
  buf[5] = 0x12;
  buf[6] = 0xa4;
  buf[7] = 0x42;
  memcpy(buf + 8, txid, 12);
  if (alen > 0)
    memcpy(buf + 20, attrs, alen);
  if (fingerprint) {
    uint32_t crc = ferry_stun_crc32(buf, len) ^ FERRY_STUN_FINGERPRINT_XOR;
    const uint8_t fp[8] = {0x80,
                           0x28,
                           0x00,
                           0x04,
                           (uint8_t)(crc >> 24),
                           (uint8_t)(crc >> 16),
                           (uint8_t)(crc >> 8),
                           (uint8_t)crc};
    memcpy(buf + len, fp, 8);
    len += 8;
  }
  return len;
}

/* Builds a classic request in buf: header with the 16-byte id, then raw
 * attribute bytes; returns its length. */
static size_t
make_classic(uint8_t *buf, const uint8_t id[16], const uint8_t *attrs, size_t alen)
{
  buf[0] = 0x00;
  buf[1] = 0x01;
  buf[2] = (uint8_t)(alen >> 8);
  buf[3] = (uint8_t)alen;
  memcpy(buf + 4, id, 16);
  if (alen > 0)
    memcpy(buf + 20, attrs, alen);
  return 20 + alen;
}

/* The decoded form of a request this file built; it must be well formed. */
static FerryStunRequest
parsed(const uint8_t *buf, size_t len)
{
  FerryStunRequest req;

  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, 0);
  return req;
}

/* A plain RFC 8489 request for txid, decoded. */
static FerryStunRequest
modern_request(const uint8_t txid[12])
{
  uint8_t buf[20];

  return parsed(buf, make_request(buf, txid, NULL, 0, FALSE));
}

static void
test_crc32(void)
{
  const uint8_t check[] = "123456789";

  g_assert_cmphex(ferry_stun_crc32(check, 9), ==, 0xCBF43926u);
  g_assert_cmphex(ferry_stun_crc32(check, 0), ==, 0);
  g_assert_cmphex(ferry_stun_crc32(rfc5769_request, 100) ^ FERRY_STUN_FINGERPRINT_XOR, ==,
                  0xe57a3bcfu);
}

static void
test_parse_plain(void)
{
  uint8_t buf[64];
  FerryStunRequest req;
  size_t len = make_request(buf, rfc5769_txid, NULL, 0, FALSE);

  g_assert_cmpuint(len, ==, 20);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, 0);
  g_assert_false(req.classic);
  g_assert_cmpmem(req.id, 4, cookie, 4);
  g_assert_cmpmem(req.id + 4, 12, rfc5769_txid, 12);
  g_assert_false(req.has_fingerprint);
  g_assert_cmpint(req.error_code, ==, 0);
  g_assert_cmpuint(req.n_unknown, ==, 0);
}

static void
test_parse_fingerprint(void)
{
  FerryStunRequest req;
  const uint8_t txid[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  uint8_t buf[64];

  g_assert_cmpint(ferry_stun_parse_binding_request(request_fp, sizeof request_fp, &req), ==, 0);
  g_assert_cmpmem(req.id + 4, 12, txid, 12);
  g_assert_true(req.has_fingerprint);
  g_assert_cmpint(req.error_code, ==, 0);

  /* make_request's FINGERPRINT agrees with the independent vector */
  g_assert_cmpuint(make_request(buf, txid, request_fp + 20, 16, TRUE), ==, sizeof request_fp);
  g_assert_cmpmem(buf, sizeof request_fp, request_fp, sizeof request_fp);
}

static void
test_parse_rfc5769_credentials(void)
{
  FerryStunRequest req;

  /* Well formed and its FINGERPRINT checks out, but it carries USERNAME
   * and MESSAGE-INTEGRITY: answered with 400. */
  g_assert_cmpint(ferry_stun_parse_binding_request(rfc5769_request, sizeof rfc5769_request, &req),
                  ==, 0);
  g_assert_true(req.has_fingerprint);
  g_assert_cmpint(req.error_code, ==, 400);
  g_assert_cmpmem(req.id + 4, 12, rfc5769_txid, 12);
}

static void
test_parse_unknown_attributes(void)
{
  /* CHANGE-REQUEST, PRIORITY, PRIORITY again, ICE-CONTROLLED (optional) */
  const uint8_t attrs[] = {0x00, 0x03, 0x00, 0x04, 0, 0,    0, 6, 0x00, 0x24, 0x00, 0x04,
                           1,    2,    3,    4,    0, 0x24, 0, 4, 5,    6,    7,    8,
                           0x80, 0x29, 0x00, 0x08, 1, 2,    3, 4, 5,    6,    7,    8};
  const uint8_t optional[] = {0x80, 0x29, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8};
  uint8_t buf[128];
  FerryStunRequest req;
  size_t len;

  len = make_request(buf, rfc5769_txid, attrs, sizeof attrs, TRUE);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, 0);
  g_assert_cmpint(req.error_code, ==, 420);
  g_assert_cmpuint(req.n_unknown, ==, 2);
  g_assert_cmphex(req.unknown[0], ==, 0x0003);
  g_assert_cmphex(req.unknown[1], ==, 0x0024);

  len = make_request(buf, rfc5769_txid, optional, sizeof optional, FALSE);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, 0);
  g_assert_cmpint(req.error_code, ==, 0);
}

static void
test_parse_username_only(void)
{
  const uint8_t attrs[] = {0x00, 0x06, 0x00, 0x03, 'b', 'o', 'b', 0};
  uint8_t buf[64];
  FerryStunRequest req;
  size_t len = make_request(buf, rfc5769_txid, attrs, sizeof attrs, FALSE);

  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, 0);
  g_assert_cmpint(req.error_code, ==, 400);
}

static void
test_parse_malformed(void)
{
  FerryStunRequest req;
  uint8_t buf[128];
  uint32_t crc;
  size_t len;

  /* short header */
  g_assert_cmpint(ferry_stun_parse_binding_request(request_fp, 0, &req), ==, FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_stun_parse_binding_request(request_fp, 19, &req), ==, FERRY_ERR_INVALID);

  /* first two bits set (not STUN: e.g. RTP or a TURN ChannelData) */
  len = make_request(buf, rfc5769_txid, NULL, 0, FALSE);
  buf[0] = 0x40;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, FERRY_ERR_INVALID);
  buf[0] = 0x80;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, FERRY_ERR_INVALID);

  /* wrong types: success response, error response, indication, Allocate */
  const uint16_t types[] = {0x0101, 0x0111, 0x0011, 0x0003, 0x0000};
  for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
    len = make_request(buf, rfc5769_txid, NULL, 0, FALSE);
    buf[0] = (uint8_t)(types[i] >> 8);
    buf[1] = (uint8_t)types[i];
    g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, FERRY_ERR_INVALID);
  }

  /* length field: not a multiple of 4, more or less than what follows */
  memcpy(buf, request_fp, sizeof request_fp);
  buf[3] = 0x17;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, sizeof request_fp, &req), ==,
                  FERRY_ERR_INVALID);
  buf[3] = 0x1c;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, sizeof request_fp, &req), ==,
                  FERRY_ERR_INVALID);
  buf[3] = 0x14;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, sizeof request_fp, &req), ==,
                  FERRY_ERR_INVALID);
  /* a datagram cut short, or with trailing bytes */
  g_assert_cmpint(ferry_stun_parse_binding_request(request_fp, sizeof request_fp - 4, &req), ==,
                  FERRY_ERR_INVALID);
  memcpy(buf, request_fp, sizeof request_fp);
  memset(buf + sizeof request_fp, 0, 4);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, sizeof request_fp + 4, &req), ==,
                  FERRY_ERR_INVALID);

  /* truncated attribute: value length runs past the end (also once padded) */
  const uint8_t long_value[] = {0x80, 0x22, 0x00, 0x08, 'a', 'b', 'c', 'd'};
  len = make_request(buf, rfc5769_txid, long_value, sizeof long_value, FALSE);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, FERRY_ERR_INVALID);
  const uint8_t pad_past[] = {0x80, 0x22, 0x00, 0x05, 'a', 'b', 'c', 'd'};
  len = make_request(buf, rfc5769_txid, pad_past, sizeof pad_past, FALSE);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, FERRY_ERR_INVALID);

  /* bad fingerprint: a flipped bit before it, or in it */
  memcpy(buf, request_fp, sizeof request_fp);
  buf[25] ^= 0x20;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, sizeof request_fp, &req), ==,
                  FERRY_ERR_CORRUPT);
  memcpy(buf, request_fp, sizeof request_fp);
  buf[sizeof request_fp - 1] ^= 1;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, sizeof request_fp, &req), ==,
                  FERRY_ERR_CORRUPT);
  /* a different transaction ID changes the CRC too */
  memcpy(buf, request_fp, sizeof request_fp);
  buf[12] ^= 0xff;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, sizeof request_fp, &req), ==,
                  FERRY_ERR_CORRUPT);

  /* FINGERPRINT of the wrong size */
  const uint8_t fp8[] = {0x80, 0x28, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0};
  len = make_request(buf, rfc5769_txid, fp8, sizeof fp8, FALSE);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, FERRY_ERR_INVALID);

  /* an attribute after FINGERPRINT, with a FINGERPRINT that matches the
   * header's final length (so only its position is wrong) */
  const uint8_t after[] = {0x80, 0x22, 0x00, 0x04, 'x', 'y', 'z', 'w'};
  len = make_request(buf, rfc5769_txid, NULL, 0, FALSE);
  buf[3] = 8 + sizeof after;
  crc = ferry_stun_crc32(buf, len) ^ FERRY_STUN_FINGERPRINT_XOR;
  memcpy(buf + len, ((const uint8_t[]){0x80, 0x28, 0x00, 0x04}), 4);
  buf[len + 4] = (uint8_t)(crc >> 24);
  buf[len + 5] = (uint8_t)(crc >> 16);
  buf[len + 6] = (uint8_t)(crc >> 8);
  buf[len + 7] = (uint8_t)crc;
  memcpy(buf + len + 8, after, sizeof after);
  len += 8 + sizeof after;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, FERRY_ERR_INVALID);
  /* the same bytes without the trailing attribute would be fine */
  buf[3] = 8;
  crc = ferry_stun_crc32(buf, 20) ^ FERRY_STUN_FINGERPRINT_XOR;
  buf[24] = (uint8_t)(crc >> 24);
  buf[25] = (uint8_t)(crc >> 16);
  buf[26] = (uint8_t)(crc >> 8);
  buf[27] = (uint8_t)crc;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, 28, &req), ==, 0);
}

static void
test_parse_classic(void)
{
  /* FINGERPRINT-typed with a wrong CRC and not last, then SERVER/SOFTWARE */
  const uint8_t optional[] = {0x80, 0x28, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef,
                              0x80, 0x22, 0x00, 0x04, 'r',  'f',  'c',  '!'};
  /* CHANGE-REQUEST, RESPONSE-ADDRESS, CHANGE-REQUEST again */
  const uint8_t unknown[] = {0x00, 0x03, 0x00, 0x04, 0, 0,    0,    0,    0x00, 0x02, 0x00, 0x08,
                             0,    1,    0x0d, 0x96, 1, 2,    3,    4,    0x00, 0x03, 0x00, 0x04,
                             0,    0,    0,    6,    0, 0x06, 0x00, 0x04, 'b',  'o',  'b',  '!'};
  FerryStunRequest req;
  uint8_t buf[128];
  size_t len;

  /* what libnice's stun_usage_bind_run() sends */
  g_assert_cmpint(ferry_stun_parse_binding_request(classic_request, sizeof classic_request, &req),
                  ==, 0);
  g_assert_true(req.classic);
  g_assert_cmpmem(req.id, 16, classic_id, 16);
  g_assert_false(req.has_fingerprint);
  g_assert_cmpint(req.error_code, ==, 0);
  g_assert_cmpuint(req.n_unknown, ==, 0);

  /* one bit off the magic cookie: a classic request, not a dropped one */
  len = make_request(buf, rfc5769_txid, NULL, 0, FALSE);
  buf[7] ^= 1;
  req = parsed(buf, len);
  g_assert_true(req.classic);
  g_assert_cmpmem(req.id, 16, buf + 4, 16);

  /* RFC 3489 has no FINGERPRINT: 0x8028 is an optional attribute like any
   * other, wherever it is and whatever it holds */
  req = parsed(buf, make_classic(buf, classic_id, optional, sizeof optional));
  g_assert_true(req.classic);
  g_assert_false(req.has_fingerprint);
  g_assert_cmpint(req.error_code, ==, 0);

  /* comprehension-required types get a 420, credentials a 400, as for
   * RFC 8489 requests */
  req = parsed(buf, make_classic(buf, classic_id, unknown, sizeof unknown - 8));
  g_assert_true(req.classic);
  g_assert_cmpint(req.error_code, ==, 420);
  g_assert_cmpuint(req.n_unknown, ==, 2);
  g_assert_cmphex(req.unknown[0], ==, 0x0003);
  g_assert_cmphex(req.unknown[1], ==, 0x0002);
  req = parsed(buf, make_classic(buf, classic_id, unknown, sizeof unknown));
  g_assert_cmpint(req.error_code, ==, 400);
}

static void
test_parse_classic_malformed(void)
{
  const uint16_t types[] = {0x0101, 0x0111, 0x0002, 0x0011, 0x0003, 0x0000};
  const uint8_t long_value[] = {0x80, 0x22, 0x00, 0x08, 'a', 'b', 'c', 'd'};
  const uint8_t pad_past[] = {0x80, 0x22, 0x00, 0x05, 'a', 'b', 'c', 'd'};
  const uint8_t no_value[] = {0x00, 0x06, 0x00, 0x04};
  FerryStunRequest req;
  uint8_t buf[64];
  size_t len;

  /* short header */
  g_assert_cmpint(ferry_stun_parse_binding_request(classic_request, 19, &req), ==,
                  FERRY_ERR_INVALID);

  /* first two bits set */
  memcpy(buf, classic_request, 20);
  buf[0] = 0x40;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, 20, &req), ==, FERRY_ERR_INVALID);
  buf[0] = 0x80;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, 20, &req), ==, FERRY_ERR_INVALID);

  /* not a Binding request: responses, Shared Secret request, indication */
  for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
    memcpy(buf, classic_request, 20);
    buf[0] = (uint8_t)(types[i] >> 8);
    buf[1] = (uint8_t)types[i];
    g_assert_cmpint(ferry_stun_parse_binding_request(buf, 20, &req), ==, FERRY_ERR_INVALID);
  }

  /* length field: more than what follows, less (trailing bytes), not a
   * multiple of 4 */
  memcpy(buf, classic_request, 20);
  memset(buf + 20, 0, 8);
  buf[3] = 4;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, 20, &req), ==, FERRY_ERR_INVALID);
  buf[3] = 0;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, 24, &req), ==, FERRY_ERR_INVALID);
  buf[3] = 2;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, 22, &req), ==, FERRY_ERR_INVALID);

  /* attributes running past the end: value, padding, missing value */
  len = make_classic(buf, classic_id, long_value, sizeof long_value);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, FERRY_ERR_INVALID);
  len = make_classic(buf, classic_id, pad_past, sizeof pad_past);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, FERRY_ERR_INVALID);
  len = make_classic(buf, classic_id, no_value, sizeof no_value);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, len, &req), ==, FERRY_ERR_INVALID);
}

static void
fill_v4(struct sockaddr_in *sin, const char *ip, guint16 port)
{
  memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  g_assert_cmpint(inet_pton(AF_INET, ip, &sin->sin_addr), ==, 1);
}

static void
fill_v6(struct sockaddr_in6 *sin6, const char *ip, guint16 port)
{
  memset(sin6, 0, sizeof *sin6);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  g_assert_cmpint(inet_pton(AF_INET6, ip, &sin6->sin6_addr), ==, 1);
}

static void
test_build_vectors(void)
{
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  uint8_t out[FERRY_STUN_MAX_RESPONSE];
  FerryStunRequest req = modern_request(rfc5769_txid);
  int n;

  fill_v4(&sin, "192.0.2.1", 32853);
  n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin, NULL, out, sizeof out);
  g_assert_cmpmem(out, n, response_v4, sizeof response_v4);

  fill_v6(&sin6, "2001:db8:1234:5678:11:2233:4455:6677", 32853);
  n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin6, NULL, out, sizeof out);
  g_assert_cmpmem(out, n, response_v6, sizeof response_v6);

  /* an IPv4 client seen through a dual-stack socket is answered in IPv4 */
  fill_v6(&sin6, "::ffff:192.0.2.1", 32853);
  n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin6, NULL, out, sizeof out);
  g_assert_cmpmem(out, n, response_v4, sizeof response_v4);
}

static void
test_build_with_software_round_trip(void)
{
  struct sockaddr_in6 sin6;
  struct sockaddr_storage got;
  uint8_t out[FERRY_STUN_MAX_RESPONSE], id[16];
  FerryStunRequest req = modern_request(rfc5769_txid);
  int n;

  fill_v6(&sin6, "::1", 4242);
  n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin6, "ferry/1.2.3", out,
                                        sizeof out);
  /* 20 header + 24 XOR-MAPPED-ADDRESS + 16 SOFTWARE + 8 FINGERPRINT */
  g_assert_cmpint(n, ==, 68);
  g_assert_cmpmem(out + 44, 4, ((const uint8_t[]){0x80, 0x22, 0x00, 0x0b}), 4);
  g_assert_cmpmem(out + 48, 12, "ferry/1.2.3\0", 12);
  g_assert_cmpint(ferry_stun_message_check(out, (size_t)n), ==, FERRY_STUN_BINDING_SUCCESS);
  g_assert_cmpint(ferry_stun_parse_binding_response(out, (size_t)n, id, &got), ==, 0);
  g_assert_cmpmem(id, 4, cookie, 4);
  g_assert_cmpmem(id + 4, 12, rfc5769_txid, 12);
  g_assert_cmpint(got.ss_family, ==, AF_INET6);
  g_assert_cmpmem(&((struct sockaddr_in6 *)&got)->sin6_addr, 16, &sin6.sin6_addr, 16);
  g_assert_cmpuint(ntohs(((struct sockaddr_in6 *)&got)->sin6_port), ==, 4242);
}

static void
test_build_errors(void)
{
  struct sockaddr_in sin;
  struct sockaddr_storage unix_addr;
  uint8_t out[FERRY_STUN_MAX_RESPONSE];
  char *long_software = g_strnfill(FERRY_STUN_MAX_SOFTWARE + 1, 'x');
  FerryStunRequest req = modern_request(rfc5769_txid), refused = req;

  fill_v4(&sin, "192.0.2.1", 32853);
  /* every capacity below the size needed is refused, none overruns */
  for (size_t cap = 0; cap < sizeof response_v4; cap++) {
    memset(out, 0xAA, sizeof out);
    g_assert_cmpint(
        ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin, NULL, out, cap), ==,
        FERRY_ERR_TOO_LONG);
    for (size_t i = cap; i < sizeof out; i++)
      g_assert_cmphex(out[i], ==, 0xAA);
  }
  g_assert_cmpint(ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin, NULL, out,
                                                    sizeof response_v4),
                  ==, (int)sizeof response_v4);

  memset(&unix_addr, 0, sizeof unix_addr);
  unix_addr.ss_family = AF_UNIX;
  g_assert_cmpint(
      ferry_stun_build_binding_response(&req, (struct sockaddr *)&unix_addr, NULL, out, sizeof out),
      ==, FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_stun_build_binding_response(&req, NULL, NULL, out, sizeof out), ==,
                  FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin, long_software,
                                                    out, sizeof out),
                  ==, FERRY_ERR_TOO_LONG);
  /* a request that must be refused gets no success response */
  refused.error_code = 400;
  g_assert_cmpint(
      ferry_stun_build_binding_response(&refused, (struct sockaddr *)&sin, NULL, out, sizeof out),
      ==, FERRY_ERR_STATE);
  g_free(long_software);
}

static void
test_error_responses(void)
{
  FerryStunRequest req = modern_request(rfc5769_txid);
  uint8_t out[FERRY_STUN_MAX_RESPONSE], id[16];
  struct sockaddr_storage got;
  char *software = g_strnfill(FERRY_STUN_MAX_SOFTWARE, 's');
  int n;

  g_assert_cmpint(ferry_stun_build_error_response(&req, NULL, out, sizeof out), ==,
                  FERRY_ERR_STATE);

  req.error_code = 420;
  req.n_unknown = 2;
  req.unknown[0] = 0x0003;
  req.unknown[1] = 0x0024;
  n = ferry_stun_build_error_response(&req, NULL, out, sizeof out);
  g_assert_cmpint(n, >, 0);
  g_assert_cmpint(ferry_stun_message_check(out, (size_t)n), ==, FERRY_STUN_BINDING_ERROR);
  g_assert_cmpmem(out + 8, 12, rfc5769_txid, 12);
  /* ERROR-CODE: class 4, number 20, "Unknown Attribute" (17 bytes) */
  g_assert_cmpmem(out + 20, 8, ((const uint8_t[]){0x00, 0x09, 0x00, 21, 0, 0, 4, 20}), 8);
  g_assert_cmpmem(out + 28, 17, "Unknown Attribute", 17);
  /* UNKNOWN-ATTRIBUTES after the padded reason */
  g_assert_cmpmem(out + 48, 8, ((const uint8_t[]){0x00, 0x0a, 0x00, 0x04, 0x00, 0x03, 0x00, 0x24}),
                  8);
  g_assert_cmpint(n, ==, 48 + 8 + 8);
  /* an error response is not a success response */
  g_assert_cmpint(ferry_stun_parse_binding_response(out, (size_t)n, id, &got), ==,
                  FERRY_ERR_INVALID);

  req.error_code = 400;
  n = ferry_stun_build_error_response(&req, NULL, out, sizeof out);
  g_assert_cmpint(ferry_stun_message_check(out, (size_t)n), ==, FERRY_STUN_BINDING_ERROR);
  g_assert_cmpmem(out + 24, 4, ((const uint8_t[]){0, 0, 4, 0}), 4);

  /* the largest responses stay within the bound */
  req.error_code = 420;
  req.n_unknown = FERRY_STUN_MAX_UNKNOWN;
  n = ferry_stun_build_error_response(&req, software, out, sizeof out);
  g_assert_cmpint(n, >, 0);
  g_assert_cmpint(n, <=, FERRY_STUN_MAX_RESPONSE);
  req.error_code = 400;
  n = ferry_stun_build_error_response(&req, software, out, sizeof out);
  g_assert_cmpint(n, >, 0);
  g_free(software);
}

static void
test_parse_response_errors(void)
{
  uint8_t id[16], buf[64];
  struct sockaddr_storage got;
  size_t len = make_request(buf, rfc5769_txid, NULL, 0, TRUE);
  /* XOR-MAPPED-ADDRESS 192.0.2.1:32853 (RFC 5769), MAPPED-ADDRESS of
   * family 3 */
  const uint8_t xor_mapped[] = {0x00, 0x20, 0x00, 0x08, 0x00, 0x01,
                                0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43};
  const uint8_t bad_family[] = {0x00, 0x01, 0x00, 0x08, 0x00, 0x03, 0x80, 0x55, 192, 0, 2, 1};

  g_assert_cmpint(ferry_stun_parse_binding_response(buf, len, id, &got), ==, FERRY_ERR_INVALID);
  buf[1] = 0x01;
  buf[0] = 0x01;
  /* the FINGERPRINT no longer matches the changed type */
  g_assert_cmpint(ferry_stun_parse_binding_response(buf, len, id, &got), ==, FERRY_ERR_CORRUPT);
  len = make_request(buf, rfc5769_txid, NULL, 0, FALSE);
  buf[0] = 0x01;
  g_assert_cmpint(ferry_stun_parse_binding_response(buf, len, id, &got), ==, FERRY_ERR_NOT_FOUND);

  /* classic: a request is not a response; a classic response reads
   * MAPPED-ADDRESS only, so XOR-MAPPED-ADDRESS alone is not found */
  g_assert_cmpint(
      ferry_stun_parse_binding_response(classic_request, sizeof classic_request, id, &got), ==,
      FERRY_ERR_INVALID);
  len = make_classic(buf, classic_id, xor_mapped, sizeof xor_mapped);
  buf[0] = 0x01;
  g_assert_cmpint(ferry_stun_parse_binding_response(buf, len, id, &got), ==, FERRY_ERR_NOT_FOUND);
  len = make_classic(buf, classic_id, bad_family, sizeof bad_family);
  buf[0] = 0x01;
  g_assert_cmpint(ferry_stun_parse_binding_response(buf, len, id, &got), ==, FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_stun_parse_binding_response(classic_response_v4, 31, id, &got), ==,
                  FERRY_ERR_INVALID);
}

/* The attribute lengths of a classic message, which must all be multiples
 * of 4 (RFC 3489 has no padding); returns how many attributes it has. */
static unsigned
check_classic_lengths(const uint8_t *buf, size_t len)
{
  unsigned count = 0;

  g_assert_cmpuint(len, >=, 20);
  g_assert_cmpuint((size_t)(buf[2] << 8 | buf[3]), ==, len - 20);
  for (size_t off = 20; off < len; count++) {
    size_t vlen = (size_t)(buf[off + 2] << 8 | buf[off + 3]);
    g_assert_cmpuint(vlen % 4, ==, 0);
    /* FINGERPRINT has no place in a classic message */
    g_assert_cmphex(buf[off] << 8 | buf[off + 1], !=, FERRY_STUN_ATTR_FINGERPRINT);
    off += 4 + vlen;
    g_assert_cmpuint(off, <=, len);
  }
  return count;
}

static void
test_build_classic_vectors(void)
{
  FerryStunRequest req = parsed(classic_request, sizeof classic_request);
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  struct sockaddr_storage got;
  uint8_t out[FERRY_STUN_MAX_RESPONSE], id[16];
  char *software = g_strnfill(FERRY_STUN_MAX_SOFTWARE - 1, 's');
  int n;

  fill_v4(&sin, "192.0.2.1", 32853);
  n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin, NULL, out, sizeof out);
  g_assert_cmpmem(out, n, classic_response_v4, sizeof classic_response_v4);

  fill_v6(&sin6, "2001:db8:1234:5678:11:2233:4455:6677", 32853);
  n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin6, NULL, out, sizeof out);
  g_assert_cmpmem(out, n, classic_response_v6, sizeof classic_response_v6);

  fill_v6(&sin6, "::ffff:192.0.2.1", 32853);
  n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin6, NULL, out, sizeof out);
  g_assert_cmpmem(out, n, classic_response_v4, sizeof classic_response_v4);

  fill_v6(&sin6, "::1", 4242);
  n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin6, "ferry/1.2.3", out,
                                        sizeof out);
  g_assert_cmpmem(out, n, classic_response_sw, sizeof classic_response_sw);
  g_assert_cmpuint(check_classic_lengths(out, (size_t)n), ==, 2);

  /* it decodes back; it is not an RFC 8489 message */
  g_assert_cmpint(ferry_stun_parse_binding_response(out, (size_t)n, id, &got), ==, 0);
  g_assert_cmpmem(id, 16, classic_id, 16);
  g_assert_cmpint(got.ss_family, ==, AF_INET6);
  g_assert_cmpmem(&((struct sockaddr_in6 *)&got)->sin6_addr, 16, &sin6.sin6_addr, 16);
  g_assert_cmpuint(ntohs(((struct sockaddr_in6 *)&got)->sin6_port), ==, 4242);
  g_assert_cmpint(ferry_stun_message_check(out, (size_t)n), ==, FERRY_ERR_VERSION);

  /* every capacity below the size needed is refused, none overruns */
  fill_v4(&sin, "192.0.2.1", 32853);
  for (size_t cap = 0; cap < sizeof classic_response_v4; cap++) {
    memset(out, 0xAA, sizeof out);
    g_assert_cmpint(
        ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin, NULL, out, cap), ==,
        FERRY_ERR_TOO_LONG);
    for (size_t i = cap; i < sizeof out; i++)
      g_assert_cmphex(out[i], ==, 0xAA);
  }

  /* SOFTWARE of 63 bytes takes one space; the largest success fits */
  fill_v6(&sin6, "2001:db8::1", 1);
  n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&sin6, software, out, sizeof out);
  g_assert_cmpint(n, ==, 20 + 24 + 4 + 64);
  g_assert_cmpint(n, <=, FERRY_STUN_MAX_RESPONSE);
  g_assert_cmphex(out[n - 1], ==, ' ');
  g_assert_cmpuint(check_classic_lengths(out, (size_t)n), ==, 2);
  g_free(software);
}

static void
test_classic_error_responses(void)
{
  const uint8_t change_request[] = {0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0};
  const uint8_t username[] = {0x00, 0x06, 0x00, 0x04, 'b', 'o', 'b', '!'};
  char *software = g_strnfill(FERRY_STUN_MAX_SOFTWARE, 's');
  uint8_t buf[64], out[FERRY_STUN_MAX_RESPONSE];
  FerryStunRequest req;
  int n;

  req = parsed(buf, make_classic(buf, classic_id, change_request, sizeof change_request));
  n = ferry_stun_build_error_response(&req, NULL, out, sizeof out);
  g_assert_cmpmem(out, n, classic_error_420, sizeof classic_error_420);

  req = parsed(buf, make_classic(buf, classic_id, username, sizeof username));
  n = ferry_stun_build_error_response(&req, NULL, out, sizeof out);
  g_assert_cmpmem(out, n, classic_error_400, sizeof classic_error_400);

  /* seven unknown types: eight listed, the first repeated at the end */
  req.error_code = 420;
  req.n_unknown = 7;
  for (unsigned i = 0; i < 7; i++)
    req.unknown[i] = (uint16_t)(0x0100 + i);
  n = ferry_stun_build_error_response(&req, NULL, out, sizeof out);
  g_assert_cmpuint(check_classic_lengths(out, (size_t)n), ==, 2);
  g_assert_cmpmem(out + 48, 4, ((const uint8_t[]){0x00, 0x0a, 0x00, 16}), 4);
  g_assert_cmpmem(out + 64, 4, ((const uint8_t[]){0x01, 0x06, 0x01, 0x00}), 4);

  /* the largest classic errors stay within the bound and keep RFC 3489
   * lengths */
  req.n_unknown = FERRY_STUN_MAX_UNKNOWN;
  n = ferry_stun_build_error_response(&req, software, out, sizeof out);
  g_assert_cmpint(n, >, 0);
  g_assert_cmpint(n, <=, FERRY_STUN_MAX_RESPONSE);
  g_assert_cmpuint(check_classic_lengths(out, (size_t)n), ==, 3);
  req.error_code = 400;
  n = ferry_stun_build_error_response(&req, software, out, sizeof out);
  g_assert_cmpint(n, >, 0);
  g_assert_cmpuint(check_classic_lengths(out, (size_t)n), ==, 2);
  g_free(software);
}

/* ---- live server ---- */

typedef struct {
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  FerryStunServer *server;
} Live;

static gpointer
run_loop(gpointer data)
{
  Live *live = data;

  g_main_context_push_thread_default(live->context);
  g_main_loop_run(live->loop);
  g_main_context_pop_thread_default(live->context);
  return NULL;
}

static void
live_start(Live *live)
{
  live->context = g_main_context_new();
  live->loop = g_main_loop_new(live->context, FALSE);
  live->server = ferry_stun_server_new(live->context);
}

static void
live_run(Live *live)
{
  live->thread = g_thread_new("stun-server", run_loop, live);
}

static void
live_stop(Live *live)
{
  if (live->thread != NULL) {
    g_main_loop_quit(live->loop);
    g_thread_join(live->thread);
  }
  ferry_stun_server_free(live->server);
  g_main_loop_unref(live->loop);
  g_main_context_unref(live->context);
}

/* A plain UDP client socket bound to loopback of the given family. */
static int
client_socket(int family, struct sockaddr_storage *self, socklen_t *self_len)
{
  int fd = socket(family, SOCK_DGRAM, 0);
  struct sockaddr_storage ss;
  socklen_t sl;

  g_assert_cmpint(fd, >=, 0);
  memset(&ss, 0, sizeof ss);
  if (family == AF_INET) {
    fill_v4((struct sockaddr_in *)&ss, "127.0.0.1", 0);
    sl = sizeof(struct sockaddr_in);
  } else {
    fill_v6((struct sockaddr_in6 *)&ss, "::1", 0);
    sl = sizeof(struct sockaddr_in6);
  }
  g_assert_cmpint(bind(fd, (struct sockaddr *)&ss, sl), ==, 0);
  *self_len = sizeof *self;
  g_assert_cmpint(getsockname(fd, (struct sockaddr *)self, self_len), ==, 0);
  return fd;
}

static void
send_to_server(int fd, int family, guint16 port, const uint8_t *buf, size_t len)
{
  struct sockaddr_storage to;
  socklen_t tl;

  memset(&to, 0, sizeof to);
  if (family == AF_INET) {
    fill_v4((struct sockaddr_in *)&to, "127.0.0.1", port);
    tl = sizeof(struct sockaddr_in);
  } else {
    fill_v6((struct sockaddr_in6 *)&to, "::1", port);
    tl = sizeof(struct sockaddr_in6);
  }
  g_assert_cmpint(sendto(fd, buf, len, 0, (struct sockaddr *)&to, tl), ==, (ssize_t)len);
}

/* Waits for one datagram (up to 10 s, a generous bound for a loaded
 * machine under ASan) and returns its length. */
static size_t
receive(int fd, uint8_t *buf, size_t cap)
{
  struct pollfd p = {fd, POLLIN, 0};
  ssize_t n;

  g_assert_cmpint(poll(&p, 1, 10000), ==, 1);
  n = recv(fd, buf, cap, 0);
  g_assert_cmpint(n, >, 0);
  return (size_t)n;
}

static void
check_mapped(const uint8_t *buf, size_t len, const uint8_t id[16],
             const struct sockaddr_storage *self)
{
  struct sockaddr_storage got;
  uint8_t got_id[16];

  g_assert_cmpint(ferry_stun_parse_binding_response(buf, len, got_id, &got), ==, 0);
  g_assert_cmpmem(got_id, 16, id, 16);
  g_assert_cmpint(got.ss_family, ==, self->ss_family);
  if (self->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)&got, *b = (const void *)self;
    g_assert_cmpuint(a->sin_addr.s_addr, ==, b->sin_addr.s_addr);
    g_assert_cmpuint(a->sin_port, ==, b->sin_port);
  } else {
    const struct sockaddr_in6 *a = (const void *)&got, *b = (const void *)self;
    g_assert_cmpmem(&a->sin6_addr, 16, &b->sin6_addr, 16);
    g_assert_cmpuint(a->sin6_port, ==, b->sin6_port);
  }
  /* the responder names itself */
  g_assert_nonnull(memmem(buf, len, "ferry/", 6));
}

static gboolean
have_ipv6_loopback(void)
{
  int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  struct sockaddr_in6 sin6;
  gboolean ok;

  if (fd < 0)
    return FALSE;
  fill_v6(&sin6, "::1", 0);
  ok = bind(fd, (struct sockaddr *)&sin6, sizeof sin6) == 0;
  close(fd);
  return ok;
}

/* Answers a valid request with the client's own address; drops garbage
 * without a reply and counts it; then still answers, classic requests in
 * their own form. */
static void
live_exchange(Live *live, int family)
{
  struct sockaddr_storage self;
  socklen_t self_len;
  uint8_t req[64], resp[512];
  const uint8_t txid1[12] = "first-txid!", txid2[12] = "second-txid", txid3[12] = "third-txid!";
  const uint8_t garbage[] = "GET / HTTP/1.1\r\nHost: stun\r\n\r\n";
  const uint8_t change_request[] = {0x00, 0x03, 0x00, 0x04, 0, 0, 0, 6};
  uint8_t bad_classic[24];
  guint16 port = ferry_stun_server_get_port(live->server);
  guint64 dropped = ferry_stun_server_get_dropped(live->server);
  guint64 requests = ferry_stun_server_get_requests(live->server);
  guint64 responses = ferry_stun_server_get_responses(live->server);
  int fd = client_socket(family, &self, &self_len);
  size_t len, n;

  len = make_request(req, txid1, NULL, 0, TRUE);
  send_to_server(fd, family, port, req, len);
  n = receive(fd, resp, sizeof resp);
  check_mapped(resp, n, req + 4, &self);
  g_assert_cmpuint(n, <=, FERRY_STUN_MAX_RESPONSE);

  /* garbage, a truncated request, a response and a classic request whose
   * length field is off, then a valid request: datagrams on one socket
   * are handled in order, so the first reply being the one for txid2
   * shows that the four others got none */
  send_to_server(fd, family, port, garbage, sizeof garbage);
  send_to_server(fd, family, port, req, len - 1);
  send_to_server(fd, family, port, response_v4, sizeof response_v4);
  memcpy(bad_classic, classic_request, 20);
  memset(bad_classic + 20, 0, 4);
  bad_classic[3] = 8;
  send_to_server(fd, family, port, bad_classic, sizeof bad_classic);
  len = make_request(req, txid2, NULL, 0, FALSE);
  send_to_server(fd, family, port, req, len);
  n = receive(fd, resp, sizeof resp);
  check_mapped(resp, n, req + 4, &self);
  g_assert_cmpuint(ferry_stun_server_get_dropped(live->server), ==, dropped + 4);

  /* an unknown comprehension-required attribute gets a 420 */
  len = make_request(req, txid3, change_request, sizeof change_request, TRUE);
  send_to_server(fd, family, port, req, len);
  n = receive(fd, resp, sizeof resp);
  g_assert_cmpint(ferry_stun_message_check(resp, n), ==, FERRY_STUN_BINDING_ERROR);
  g_assert_cmpmem(resp + 8, 12, txid3, 12);
  g_assert_cmpmem(resp + 24, 4, ((const uint8_t[]){0, 0, 4, 20}), 4);

  /* a classic request (libnice's) is told its address in MAPPED-ADDRESS,
   * under its own 16-byte ID, without FINGERPRINT */
  send_to_server(fd, family, port, classic_request, sizeof classic_request);
  n = receive(fd, resp, sizeof resp);
  check_mapped(resp, n, classic_id, &self);
  g_assert_cmphex(resp[20] << 8 | resp[21], ==, FERRY_STUN_ATTR_MAPPED_ADDRESS);
  g_assert_cmpuint(check_classic_lengths(resp, n), ==, 2);
  g_assert_cmpuint(n, <=, FERRY_STUN_MAX_RESPONSE);

  /* and a classic CHANGE-REQUEST gets a classic 420 */
  len = make_classic(req, classic_id, change_request, sizeof change_request);
  send_to_server(fd, family, port, req, len);
  n = receive(fd, resp, sizeof resp);
  g_assert_cmpmem(resp, 2, ((const uint8_t[]){0x01, 0x11}), 2);
  g_assert_cmpmem(resp + 4, 16, classic_id, 16);
  g_assert_cmpmem(resp + 24, 4, ((const uint8_t[]){0, 0, 4, 20}), 4);
  g_assert_cmpuint(check_classic_lengths(resp, n), ==, 3);

  g_assert_cmpuint(ferry_stun_server_get_requests(live->server), ==, requests + 5);
  /* the server counts a response once sendto() returns, which may be
   * just after the client has it */
  for (int i = 0; i < 1000 && ferry_stun_server_get_responses(live->server) < responses + 5; i++)
    g_usleep(10000);
  g_assert_cmpuint(ferry_stun_server_get_responses(live->server), ==, responses + 5);
  close(fd);
}

static void
test_live_ipv4(void)
{
  Live live;
  GError *error = NULL;

  live_start(&live);
  g_assert_cmpuint(ferry_stun_server_get_port(live.server), ==, 0);
  g_assert_true(ferry_stun_server_listen(live.server, "127.0.0.1", 0, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(ferry_stun_server_get_port(live.server), !=, 0);
  live_run(&live);
  live_exchange(&live, AF_INET);
  live_stop(&live);
}

static void
test_live_ipv6(void)
{
  Live live;
  GError *error = NULL;

  if (!have_ipv6_loopback()) {
    g_test_skip("no IPv6 loopback on this host");
    return;
  }
  live_start(&live);
  /* both loopbacks on one port: IPv4 first picks it, ::1 reuses it */
  g_assert_true(ferry_stun_server_listen(live.server, "127.0.0.1", 0, &error));
  g_assert_no_error(error);
  g_assert_true(ferry_stun_server_listen(live.server, "::1", 0, &error));
  g_assert_no_error(error);
  live_run(&live);
  live_exchange(&live, AF_INET6);
  live_exchange(&live, AF_INET);
  live_stop(&live);
}

static void
test_live_any_address(void)
{
  Live live;
  GError *error = NULL;

  live_start(&live);
  g_assert_true(ferry_stun_server_listen(live.server, NULL, 0, &error));
  g_assert_no_error(error);
  live_run(&live);
  /* on a dual-stack socket the IPv4 client is still told an IPv4 address */
  live_exchange(&live, AF_INET);
  if (have_ipv6_loopback())
    live_exchange(&live, AF_INET6);
  live_stop(&live);
}

static void
test_listen_errors(void)
{
  FerryStunServer *server = ferry_stun_server_new(NULL);
  FerryStunServer *other = ferry_stun_server_new(NULL);
  GError *error = NULL;
  guint16 port;
  char *text;

  g_assert_false(ferry_stun_server_listen(server, "stun.example.org", 0, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "'stun.example.org'"));
  g_clear_error(&error);

  g_assert_true(ferry_stun_server_listen(server, "127.0.0.1", 0, &error));
  port = ferry_stun_server_get_port(server);

  /* the port is taken: the message names the address and the way out */
  g_assert_false(ferry_stun_server_listen(other, "127.0.0.1", port, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_IO);
  text = g_strdup_printf("UDP 127.0.0.1:%u", port);
  g_assert_nonnull(strstr(error->message, text));
  g_assert_nonnull(strstr(error->message, "choose another"));
  g_free(text);
  g_clear_error(&error);

  /* every address, the port held on 127.0.0.1: an error, not an
   * IPv4-only fallback that would hide it */
  g_assert_false(ferry_stun_server_listen(other, NULL, port, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_IO);
  g_clear_error(&error);

  /* one server, one port */
  g_assert_false(
      ferry_stun_server_listen(server, "127.0.0.2", port == 65535 ? 1 : port + 1, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_clear_error(&error);

  ferry_stun_server_free(other);
  ferry_stun_server_free(server);
  ferry_stun_server_free(NULL);
}

/* The punch's mapping test asks with this request: ferry's own decoder
 * (the responder's) takes it as a plain RFC 8489 Binding request. */
static void
test_build_request(void)
{
  const uint8_t txid[FERRY_STUN_TXID_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  uint8_t buf[64];
  FerryStunRequest req;

  int n = ferry_stun_build_binding_request(txid, buf, sizeof buf);
  g_assert_cmpint(n, ==, 28);
  g_assert_cmpint(ferry_stun_message_check(buf, (size_t)n), ==, FERRY_STUN_BINDING_REQUEST);
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, (size_t)n, &req), ==, 0);
  g_assert_false(req.classic);
  g_assert_true(req.has_fingerprint);
  g_assert_cmpint(req.error_code, ==, 0);
  g_assert_cmpmem(req.id + 4, FERRY_STUN_TXID_SIZE, txid, sizeof txid);
  buf[n - 1] ^= 1;
  g_assert_cmpint(ferry_stun_parse_binding_request(buf, (size_t)n, &req), ==, FERRY_ERR_CORRUPT);
  g_assert_cmpint(ferry_stun_build_binding_request(txid, buf, 27), ==, FERRY_ERR_TOO_LONG);
  g_assert_cmpint(ferry_stun_build_binding_request(txid, buf, 10), ==, FERRY_ERR_TOO_LONG);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/server/stun/crc32", test_crc32);
  g_test_add_func("/server/stun/parse/plain", test_parse_plain);
  g_test_add_func("/server/stun/parse/fingerprint", test_parse_fingerprint);
  g_test_add_func("/server/stun/parse/rfc5769-credentials-400", test_parse_rfc5769_credentials);
  g_test_add_func("/server/stun/parse/unknown-attributes-420", test_parse_unknown_attributes);
  g_test_add_func("/server/stun/parse/username-400", test_parse_username_only);
  g_test_add_func("/server/stun/parse/malformed", test_parse_malformed);
  g_test_add_func("/server/stun/parse/classic", test_parse_classic);
  g_test_add_func("/server/stun/parse/classic-malformed", test_parse_classic_malformed);
  g_test_add_func("/server/stun/build/vectors", test_build_vectors);
  g_test_add_func("/server/stun/build/software-round-trip", test_build_with_software_round_trip);
  g_test_add_func("/server/stun/build/errors", test_build_errors);
  g_test_add_func("/server/stun/build/error-responses", test_error_responses);
  g_test_add_func("/server/stun/build/classic-vectors", test_build_classic_vectors);
  g_test_add_func("/server/stun/build/classic-error-responses", test_classic_error_responses);
  g_test_add_func("/server/stun/parse-response/errors", test_parse_response_errors);
  g_test_add_func("/server/stun/build/request", test_build_request);
  g_test_add_func("/server/stun/live/ipv4", test_live_ipv4);
  g_test_add_func("/server/stun/live/ipv6", test_live_ipv6);
  g_test_add_func("/server/stun/live/any-address", test_live_any_address);
  g_test_add_func("/server/stun/live/listen-errors", test_listen_errors);
  return g_test_run();
}
