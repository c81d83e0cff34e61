/* STUN datagrams as the responder sees them: whatever the bytes, the
 * decoder returns, and every request it accepts gets a response that is
 * itself a well-formed STUN message of bounded size, carrying the same
 * transaction ID (and, for success, the address it was built from). */
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "server/stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
  if (!ok)
    abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  FerryStunRequest req;
  uint8_t out[FERRY_STUN_MAX_RESPONSE], txid[FERRY_STUN_TXID_SIZE];
  struct sockaddr_storage mapped, got;
  int n;

  if (ferry_stun_parse_binding_request(data, size, &req) != 0)
    return 0;
  check(req.error_code == 0 || req.error_code == 400 || req.error_code == 420);
  check(req.n_unknown <= FERRY_STUN_MAX_UNKNOWN);
  check(memcmp(req.txid, data + 8, FERRY_STUN_TXID_SIZE) == 0);

  if (req.error_code != 0) {
    n = ferry_stun_build_error_response(&req, "ferry/fuzz", out, sizeof out);
    check(n > 0 && n <= FERRY_STUN_MAX_RESPONSE);
    check(ferry_stun_message_check(out, (size_t)n) == FERRY_STUN_BINDING_ERROR);
    check(memcmp(out + 8, req.txid, FERRY_STUN_TXID_SIZE) == 0);
    return 0;
  }

  /* Answer as if the request came from an address made of its own
   * transaction ID: IPv6 when its first byte is odd, else IPv4. */
  memset(&mapped, 0, sizeof mapped);
  if (req.txid[0] & 1) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&mapped;
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, req.txid, 12);
    memcpy((uint8_t *)&sin6->sin6_addr + 12, req.txid, 4);
    memcpy(&sin6->sin6_port, req.txid + 4, 2);
  } else {
    struct sockaddr_in *sin = (struct sockaddr_in *)&mapped;
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, req.txid, 4);
    memcpy(&sin->sin_port, req.txid + 4, 2);
  }
  n = ferry_stun_build_binding_response(req.txid, (struct sockaddr *)&mapped, "ferry/fuzz", out,
                                        sizeof out);
  check(n > 0 && n <= FERRY_STUN_MAX_RESPONSE);
  check(ferry_stun_parse_binding_response(out, (size_t)n, txid, &got) == 0);
  check(memcmp(txid, req.txid, FERRY_STUN_TXID_SIZE) == 0);
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
