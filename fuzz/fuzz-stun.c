/* STUN datagrams as the responder sees them: whatever the bytes, the
 * decoder returns, and every request it accepts gets a response of
 * bounded size, in the request's own form, carrying the same transaction
 * ID (and, for success, the address it was built from): a well-formed
 * RFC 8489 message with FINGERPRINT for an RFC 8489 request, a classic
 * RFC 3489 one (16-byte ID, MAPPED-ADDRESS, attribute lengths multiples
 * of 4, no FINGERPRINT) for a classic request. */
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "core/stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
  if (!ok)
    abort();
}

static uint16_t
rd16(const uint8_t *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}

/* The framing a response of req's form must have; returns its type. */
static int
check_form(const FerryStunRequest *req, const uint8_t *out, int n)
{
  check(n > 0 && n <= FERRY_STUN_MAX_RESPONSE);
  check(memcmp(out + 4, req->id, FERRY_STUN_ID_SIZE) == 0);
  if (!req->classic)
    return ferry_stun_message_check(out, (size_t)n);

  check(ferry_stun_message_check(out, (size_t)n) == FERRY_ERR_VERSION);
  check(rd16(out + 2) == n - FERRY_STUN_HEADER_SIZE);
  for (int off = FERRY_STUN_HEADER_SIZE; off < n;) {
    uint16_t vlen = rd16(out + off + 2);
    check(vlen % 4 == 0 && rd16(out + off) != FERRY_STUN_ATTR_FINGERPRINT);
    off += 4 + vlen;
    check(off <= n);
  }
  return rd16(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  FerryStunRequest req;
  uint8_t out[FERRY_STUN_MAX_RESPONSE], id[FERRY_STUN_ID_SIZE];
  const uint8_t *txid;
  struct sockaddr_storage mapped, got;
  int n;

  memset(&mapped, 0, sizeof mapped);
  if (ferry_stun_parse_binding_request(data, size, &req) != 0)
    return 0;
  check(req.error_code == 0 || req.error_code == 400 || req.error_code == 420);
  check(req.n_unknown <= FERRY_STUN_MAX_UNKNOWN);
  check(memcmp(req.id, data + 4, FERRY_STUN_ID_SIZE) == 0);
  check(req.classic == (((uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 |
                         (uint32_t)data[6] << 8 | data[7]) != FERRY_STUN_MAGIC_COOKIE));
  check(!(req.classic && req.has_fingerprint));

  if (req.error_code != 0) {
    n = ferry_stun_build_error_response(&req, "ferry/fuzz", out, sizeof out);
    check(check_form(&req, out, n) == FERRY_STUN_BINDING_ERROR);
    check(ferry_stun_build_binding_response(&req, (const struct sockaddr *)&mapped, NULL, out,
                                            sizeof out) == FERRY_ERR_STATE);
    return 0;
  }

  /* Answer as if the request came from an address made of its own
   * transaction ID: IPv6 when its first byte is odd, else IPv4. */
  txid = req.id + 4;
  if (txid[0] & 1) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&mapped;
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, txid, 12);
    memcpy((uint8_t *)&sin6->sin6_addr + 12, txid, 4);
    memcpy(&sin6->sin6_port, txid + 4, 2);
  } else {
    struct sockaddr_in *sin = (struct sockaddr_in *)&mapped;
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, txid, 4);
    memcpy(&sin->sin_port, txid + 4, 2);
  }
  n = ferry_stun_build_binding_response(&req, (struct sockaddr *)&mapped, "ferry/fuzz", out,
                                        sizeof out);
  check(check_form(&req, out, n) == FERRY_STUN_BINDING_SUCCESS);
  check(rd16(out + FERRY_STUN_HEADER_SIZE) ==
        (req.classic ? FERRY_STUN_ATTR_MAPPED_ADDRESS : FERRY_STUN_ATTR_XOR_MAPPED_ADDRESS));
  check(ferry_stun_parse_binding_response(out, (size_t)n, id, &got) == 0);
  check(memcmp(id, req.id, FERRY_STUN_ID_SIZE) == 0);
  if (mapped.ss_family == AF_INET6 &&
      IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&mapped)->sin6_addr)) {
    check(got.ss_family == AF_INET);
  } else if (mapped.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)&got, *b = (const void *)&mapped;
    check(got.ss_family == AF_INET6);
    check(memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0 && a->sin6_port == b->sin6_port);
  } else {
    const struct sockaddr_in *a = (const void *)&got, *b = (const void *)&mapped;
    check(got.ss_family == AF_INET);
    check(a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port);
  }
  return 0;
}
