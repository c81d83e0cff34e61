/* STUN Binding on bytes (RFC 8489, and classic RFC 3489 clients as its
 * section 11 asks): the decoder for requests and the encoders for the
 * responses ferry's STUN responder sends back.
 *
 * Nothing here touches a socket, so a fuzzer can drive it directly; the
 * UDP side is server/stun-server.h. */
#ifndef FERRY_CORE_STUN_H
#define FERRY_CORE_STUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_STUN_HEADER_SIZE     20
#define FERRY_STUN_TXID_SIZE       12
#define FERRY_STUN_ID_SIZE         16
#define FERRY_STUN_MAGIC_COOKIE    0x2112A442u
#define FERRY_STUN_FINGERPRINT_XOR 0x5354554Eu

/* Message types (method and class folded together, RFC 8489 section 5). */
#define FERRY_STUN_BINDING_REQUEST 0x0001
#define FERRY_STUN_BINDING_SUCCESS 0x0101
#define FERRY_STUN_BINDING_ERROR   0x0111

/* Attribute types this code reads or writes. */
#define FERRY_STUN_ATTR_MAPPED_ADDRESS           0x0001
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

/* What a well-formed Binding request asks for.
 *
 * classic is TRUE for an RFC 3489 client (no magic cookie): its answer
 * echoes all 16 bytes of id, carries MAPPED-ADDRESS instead of
 * XOR-MAPPED-ADDRESS and no FINGERPRINT (RFC 8489 section 11). id holds
 * header bytes 4..19 as received, which every response copies: the magic
 * cookie and the 12-byte transaction ID of an RFC 8489 request, or the
 * 16-byte transaction ID of a classic one.
 *
 * error_code says how it must be answered: 0 with a success response,
 * 400 (it carries credentials, which this responder does not use) or 420
 * (it carries comprehension-required attributes we do not understand,
 * listed in unknown[0..n_unknown)) with an error response.
 * has_fingerprint is only ever set for RFC 8489 requests. */
typedef struct {
  gboolean classic;
  uint8_t id[FERRY_STUN_ID_SIZE];
  gboolean has_fingerprint;
  int error_code;
  unsigned n_unknown;
  uint16_t unknown[FERRY_STUN_MAX_UNKNOWN];
} FerryStunRequest;

/* The CRC-32 (ISO-HDLC, the one zlib computes) of buf[0..len). */
uint32_t ferry_stun_crc32(const uint8_t *buf, size_t len);

/* Decodes one datagram as a STUN Binding request into *out.
 *
 * A datagram whose bytes 4..7 are not the magic cookie is taken as a
 * classic RFC 3489 request (out->classic): the same header, length and
 * attribute framing rules apply, but a FINGERPRINT in it is just an
 * optional attribute we ignore (RFC 3489 has none, so nothing to check).
 *
 * Returns 0 for a well-formed Binding request (out->error_code then says
 * whether to answer with success or an error), or a negative FerryErr:
 *   FERRY_ERR_INVALID  shorter than a header, top two bits set, a type
 *                      other than Binding request, a length field that
 *                      is not a multiple of 4 or does not match the
 *                      datagram, an attribute running past the end, a
 *                      FINGERPRINT of the wrong size or not last (RFC
 *                      8489 requests only);
 *   FERRY_ERR_CORRUPT  a FINGERPRINT that does not match the bytes (RFC
 *                      8489 requests only).
 * A negative return means: drop the datagram, send nothing. */
int ferry_stun_parse_binding_request(const uint8_t *buf, size_t len, FerryStunRequest *out);

/* Checks the framing every RFC 8489 STUN message shares (sections 5, 14
 * and 14.7): header, magic cookie, length, attribute bounds, and a
 * FINGERPRINT that, if present, is last and matches.
 *
 * Returns the message type (0..0x3FFF) or a negative FerryErr as for
 * ferry_stun_parse_binding_request(), or FERRY_ERR_VERSION when there is
 * no magic cookie. */
int ferry_stun_message_check(const uint8_t *buf, size_t len);

/* Writes the Binding success response to req (which must have
 * error_code 0) into out, echoing req->id. For an RFC 8489 request:
 * XOR-MAPPED-ADDRESS of mapped, then SOFTWARE if software is not NULL,
 * then FINGERPRINT. For a classic request: MAPPED-ADDRESS of mapped (family
 * 0x01 for IPv4, 0x02 and 16 bytes for IPv6, as RFC 8489 defines it), then
 * SOFTWARE, and no FINGERPRINT. mapped is AF_INET or AF_INET6; an
 * IPv4-mapped IPv6 address is written as IPv4. software is at most
 * FERRY_STUN_MAX_SOFTWARE bytes; in a classic response it is padded with
 * spaces to a multiple of 4, since RFC 3489 knows no attribute padding.
 *
 * Returns the number of bytes written, or FERRY_ERR_STATE (req->error_code
 * is not 0), FERRY_ERR_INVALID (mapped is not an IPv4/IPv6 address) or
 * FERRY_ERR_TOO_LONG (cap too small, or software too long). */
int ferry_stun_build_binding_response(const FerryStunRequest *req, const struct sockaddr *mapped,
                                      const char *software, uint8_t *out, size_t cap);

/* Writes the Binding error response req asks for (req->error_code 400 or
 * 420), echoing req->id: ERROR-CODE with a short reason, UNKNOWN-ATTRIBUTES
 * for 420, then SOFTWARE (if not NULL) and, for an RFC 8489 request,
 * FINGERPRINT. For a classic request every attribute length is a multiple
 * of 4 as RFC 3489 requires: the reason and SOFTWARE are padded with
 * spaces, and an odd list of unknown types repeats its first one.
 *
 * Returns the number of bytes written, FERRY_ERR_STATE if req->error_code
 * is not 400 or 420, or FERRY_ERR_TOO_LONG as above. */
int ferry_stun_build_error_response(const FerryStunRequest *req, const char *software, uint8_t *out,
                                    size_t cap);

/* Writes an RFC 8489 Binding request with transaction ID txid and a
 * FINGERPRINT (28 bytes) into out. Returns the number of bytes written or
 * FERRY_ERR_TOO_LONG when cap is too small. */
int ferry_stun_build_binding_request(const uint8_t txid[FERRY_STUN_TXID_SIZE], uint8_t *out,
                                     size_t cap);

/* Decodes a Binding success response, of either form: copies header bytes
 * 4..19 to id and the mapped address to *mapped (a sockaddr_in or
 * sockaddr_in6), read from XOR-MAPPED-ADDRESS when the magic cookie is
 * there (RFC 8489 framing and FINGERPRINT checked), else from
 * MAPPED-ADDRESS (a classic RFC 3489 response).
 *
 * Returns 0, a negative FerryErr from ferry_stun_message_check() (bar
 * FERRY_ERR_VERSION), FERRY_ERR_INVALID (not a Binding success response,
 * or a malformed address attribute) or FERRY_ERR_NOT_FOUND (no address
 * attribute of the form's kind). */
int ferry_stun_parse_binding_response(const uint8_t *buf, size_t len,
                                      uint8_t id[FERRY_STUN_ID_SIZE],
                                      struct sockaddr_storage *mapped);

G_END_DECLS

#endif
