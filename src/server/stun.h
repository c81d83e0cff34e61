/* STUN Binding on bytes (RFC 8489): the decoder for requests and the
 * encoder for the responses ferry's STUN responder sends back.
 *
 * Nothing here touches a socket, so a fuzzer can drive it directly; the
 * UDP side is server/stun-server.h. */
#ifndef FERRY_SERVER_STUN_H
#define FERRY_SERVER_STUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_STUN_HEADER_SIZE     20
#define FERRY_STUN_TXID_SIZE       12
#define FERRY_STUN_MAGIC_COOKIE    0x2112A442u
#define FERRY_STUN_FINGERPRINT_XOR 0x5354554Eu

/* Message types (method and class folded together, RFC 8489 section 5). */
#define FERRY_STUN_BINDING_REQUEST 0x0001
#define FERRY_STUN_BINDING_SUCCESS 0x0101
#define FERRY_STUN_BINDING_ERROR   0x0111

/* Attribute types this code reads or writes. */
#define FERRY_STUN_ATTR_USERNAME                 0x0006
#define FERRY_STUN_ATTR_MESSAGE_INTEGRITY        0x0008
#define FERRY_STUN_ATTR_ERROR_CODE               0x0009
#define FERRY_STUN_ATTR_UNKNOWN_ATTRIBUTES       0x000A
#define FERRY_STUN_ATTR_REALM                    0x0014
#define FERRY_STUN_ATTR_NONCE                    0x0015
#define FERRY_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 0x001C
#define FERRY_STUN_ATTR_PASSWORD_ALGORITHM       0x001D
#define FERRY_STUN_ATTR_USERHASH                 0x001E
#define FERRY_STUN_ATTR_XOR_MAPPED_ADDRESS       0x0020
#define FERRY_STUN_ATTR_SOFTWARE                 0x8022
#define FERRY_STUN_ATTR_FINGERPRINT              0x8028

/* At most this many unknown comprehension-required attribute types are
 * listed in a 420 response; a request with more gets the first ones. */
#define FERRY_STUN_MAX_UNKNOWN 8

/* Longest SOFTWARE value the encoder writes (bytes, before padding). */
#define FERRY_STUN_MAX_SOFTWARE 64

/* No response the encoder writes is longer than this, whatever the
 * request held: the responder can never be used as an amplifier beyond
 * a fixed number of bytes per request. */
#define FERRY_STUN_MAX_RESPONSE 200

/* What a well-formed Binding request asks for. error_code says how it
 * must be answered: 0 with a success response, 400 (it carries
 * credentials, which this responder does not use) or 420 (it carries
 * comprehension-required attributes we do not understand, listed in
 * unknown[0..n_unknown)) with an error response. */
typedef struct {
  uint8_t txid[FERRY_STUN_TXID_SIZE];
  gboolean has_fingerprint;
  int error_code;
  unsigned n_unknown;
  uint16_t unknown[FERRY_STUN_MAX_UNKNOWN];
} FerryStunRequest;

/* The CRC-32 (ISO-HDLC, the one zlib computes) of buf[0..len). */
uint32_t ferry_stun_crc32(const uint8_t *buf, size_t len);

/* Decodes one datagram as a STUN Binding request into *out.
 *
 * Returns 0 for a well-formed Binding request (out->error_code then says
 * whether to answer with success or an error), or a negative FerryErr:
 *   FERRY_ERR_INVALID  shorter than a header, top two bits set, a type
 *                      other than Binding request, a length field that
 *                      is not a multiple of 4 or does not match the
 *                      datagram, an attribute running past the end, a
 *                      FINGERPRINT of the wrong size or not last;
 *   FERRY_ERR_VERSION  no magic cookie (a classic RFC 3489 client);
 *   FERRY_ERR_CORRUPT  a FINGERPRINT that does not match the bytes.
 * A negative return means: drop the datagram, send nothing. */
int ferry_stun_parse_binding_request(const uint8_t *buf, size_t len, FerryStunRequest *out);

/* Checks the framing every STUN message shares (RFC 8489 sections 5,
 * 14 and 14.7): header, magic cookie, length, attribute bounds, and a
 * FINGERPRINT that, if present, is last and matches.
 *
 * Returns the message type (0..0x3FFF) or a negative FerryErr as for
 * ferry_stun_parse_binding_request(). */
int ferry_stun_message_check(const uint8_t *buf, size_t len);

/* Writes a Binding success response for transaction txid into out:
 * XOR-MAPPED-ADDRESS of mapped (AF_INET or AF_INET6; an IPv4-mapped
 * IPv6 address is written as IPv4), then SOFTWARE if software is not
 * NULL (at most FERRY_STUN_MAX_SOFTWARE bytes), then FINGERPRINT.
 *
 * Returns the number of bytes written, or FERRY_ERR_INVALID (mapped is
 * not an IPv4/IPv6 address) or FERRY_ERR_TOO_LONG (cap too small, or
 * software too long). */
int ferry_stun_build_binding_response(const uint8_t txid[FERRY_STUN_TXID_SIZE],
                                      const struct sockaddr *mapped, const char *software,
                                      uint8_t *out, size_t cap);

/* Writes the Binding error response req asks for (req->error_code 400 or
 * 420): ERROR-CODE with a short reason, UNKNOWN-ATTRIBUTES for 420, then
 * SOFTWARE (if not NULL) and FINGERPRINT.
 *
 * Returns the number of bytes written, FERRY_ERR_STATE if req->error_code
 * is not 400 or 420, or FERRY_ERR_TOO_LONG as above. */
int ferry_stun_build_error_response(const FerryStunRequest *req, const char *software, uint8_t *out,
                                    size_t cap);

/* Decodes a Binding success response: copies its transaction ID to txid
 * and its XOR-MAPPED-ADDRESS to *mapped (a sockaddr_in or sockaddr_in6).
 *
 * Returns 0, a negative FerryErr from ferry_stun_message_check(),
 * FERRY_ERR_INVALID (not a Binding success response, or a malformed
 * XOR-MAPPED-ADDRESS) or FERRY_ERR_NOT_FOUND (no XOR-MAPPED-ADDRESS). */
int ferry_stun_parse_binding_response(const uint8_t *buf, size_t len,
                                      uint8_t txid[FERRY_STUN_TXID_SIZE],
                                      struct sockaddr_storage *mapped);

G_END_DECLS

#endif
