/* CPace (draft-irtf-cfrg-cpace) over ristretto255 and SHA-512, with
 * explicit key confirmation: turns the words of a join code into a 32-byte
 * key that both sides hold only if they typed the same words.
 *
 * Flow (the initiator is the sender, the responder the receiver; both
 * sides make the same calls in the same order, whoever speaks first):
 *
 *   pake = ferry_pake_new(role, password, len, sid, sid_len, channel_id);
 *   ferry_pake_start(pake, msg, &n)           -> send msg (a share)
 *   ferry_pake_finish(pake, peer_msg, ..., confirm, &n) -> send confirm
 *   ferry_pake_verify(pake, peer_confirm, ...) -> 0 means same password
 *   ferry_pake_session_key(pake, key)
 *   ferry_pake_free(pake)
 *
 * Any failure of finish or verify is final: the object refuses every later
 * call with FERRY_ERR_STATE, so one session is at most one password guess
 * for an attacker. The exact bytes are in docs/protocol.md. */
#ifndef FERRY_CORE_PAKE_H
#define FERRY_CORE_PAKE_H

#include <stddef.h>
#include <stdint.h>

#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_PAKE_VERSION        1
#define FERRY_PAKE_MSG_LEN        35 /* version, type, role, 32-byte body */
#define FERRY_PAKE_KEY_LEN        32
#define FERRY_PAKE_MAX_PASSWORD   256
#define FERRY_PAKE_MAX_SID        64
#define FERRY_PAKE_MAX_CHANNEL_ID 256

typedef enum {
  FERRY_PAKE_INITIATOR = 1, /* the sender: A in the draft */
  FERRY_PAKE_RESPONDER = 2, /* the receiver: B in the draft */
} FerryPakeRole;

#define FERRY_PAKE_SENDER   FERRY_PAKE_INITIATOR
#define FERRY_PAKE_RECEIVER FERRY_PAKE_RESPONDER

typedef enum {
  FERRY_PAKE_MSG_SHARE = 1,   /* body: the public share Y, a ristretto255 encoding */
  FERRY_PAKE_MSG_CONFIRM = 2, /* body: the key-confirmation tag */
} FerryPakeMsgType;

/* One PAKE message, decoded. */
typedef struct {
  uint8_t version; /* FERRY_PAKE_VERSION */
  uint8_t type;    /* a FerryPakeMsgType */
  uint8_t role;    /* the FerryPakeRole of the side that sent it */
  uint8_t body[32];
} FerryPakeMsg;

/* Decodes one message of exactly FERRY_PAKE_MSG_LEN bytes. Pure. Returns 0,
 * or FERRY_ERR_VERSION (first byte is not FERRY_PAKE_VERSION),
 * FERRY_ERR_TOO_LONG (longer than FERRY_PAKE_MSG_LEN), or FERRY_ERR_INVALID
 * (empty or short, unknown type or role, or a share whose body is not a
 * valid ristretto255 encoding; the identity's encoding is valid here and
 * refused later by ferry_pake_finish()). */
int ferry_pake_msg_decode(const uint8_t *buf, size_t len, FerryPakeMsg *msg);

/* Encodes msg into out. */
void ferry_pake_msg_encode(const FerryPakeMsg *msg, uint8_t out[FERRY_PAKE_MSG_LEN]);

typedef struct _FerryPake FerryPake;

/* A new PAKE session. password (len bytes, 1..FERRY_PAKE_MAX_PASSWORD) is
 * the canonical "word-word-word" of the code; sid (0..FERRY_PAKE_MAX_SID
 * bytes, NULL when 0) is the session id both sides got from the server;
 * channel_id (NUL-terminated, at most FERRY_PAKE_MAX_CHANNEL_ID bytes, NULL
 * for none) is the draft's CI, which both sides must also agree on. The
 * password is not kept. Returns NULL on an argument outside those limits
 * or when libsodium cannot start; free with ferry_pake_free(). */
FerryPake *ferry_pake_new(FerryPakeRole role, const char *password, size_t len, const uint8_t *sid,
                          size_t sid_len, const char *channel_id);

/* Zeroes every secret and frees pake; NULL is allowed. */
void ferry_pake_free(FerryPake *pake);

/* Draws the secret scalar and writes this side's share message to msg_out.
 * *len holds the size of msg_out on entry and the message length on
 * return. Returns 0, FERRY_ERR_STATE (already started), FERRY_ERR_INVALID
 * (msg_out smaller than FERRY_PAKE_MSG_LEN) or FERRY_ERR_CRYPTO. */
int ferry_pake_start(FerryPake *pake, uint8_t msg_out[], size_t *len);

/* ferry_pake_start() with the secret scalar y given (32 bytes, little
 * endian, 1..L-1) instead of drawn: only for test vectors and known-answer
 * tests. A scalar used twice, or one anybody can guess, gives the password
 * away. Returns as ferry_pake_start(), and FERRY_ERR_CRYPTO for y = 0. */
int ferry_pake_start_with_scalar(FerryPake *pake, const uint8_t y[32], uint8_t msg_out[],
                                 size_t *len);

/* Takes the peer's share, derives the keys and writes this side's
 * confirmation message to confirm_out (*len in/out as for start).
 * Returns 0, or FERRY_ERR_STATE (not started, or already finished or
 * failed), FERRY_ERR_INVALID (confirm_out too small, a malformed message,
 * or not a share), FERRY_ERR_VERSION, FERRY_ERR_TOO_LONG, FERRY_ERR_AUTH
 * (the message claims this side's own role: a reflection) or
 * FERRY_ERR_CRYPTO (the peer's share is the identity). Every error but
 * STATE and a too small buffer fails the session. */
int ferry_pake_finish(FerryPake *pake, const uint8_t *peer_msg, size_t peer_len,
                      uint8_t confirm_out[], size_t *len);

/* Checks the peer's confirmation message. Returns 0 when the peer derived
 * the same key (so typed the same code), FERRY_ERR_AUTH when it did not (or
 * the message claims this side's role), FERRY_ERR_STATE before finish or
 * after a failure, or a decoding error (FERRY_ERR_INVALID for a
 * share instead of a confirmation). Every error but STATE fails the
 * session. */
int ferry_pake_verify(FerryPake *pake, const uint8_t *peer_confirm, size_t len);

/* Copies the 32-byte session key to out. Returns 0, or FERRY_ERR_STATE
 * unless ferry_pake_verify() has succeeded. */
int ferry_pake_session_key(const FerryPake *pake, uint8_t out[FERRY_PAKE_KEY_LEN]);

/* The same key as soon as ferry_pake_finish() has taken the peer's share,
 * before the peer's confirmation: to seal what only a peer holding that key
 * (so one that typed the same code) can open, one round trip sooner.
 * Nothing the peer sends may be trusted until ferry_pake_verify() succeeds.
 * Returns 0, or FERRY_ERR_STATE before finish or after a failure. */
int ferry_pake_unconfirmed_key(const FerryPake *pake, uint8_t out[FERRY_PAKE_KEY_LEN]);

/* CPace's building blocks, exposed so that tests can check them against
 * the draft's test vectors.
 *
 * ferry_cpace_generator: g = from_hash(SHA-512(lv_cat("CPaceRistretto255",
 * PRS, zero padding, CI, sid))) as a 32-byte encoding. Returns 0. */
int ferry_cpace_generator(const uint8_t *prs, size_t prs_len, const uint8_t *ci, size_t ci_len,
                          const uint8_t *sid, size_t sid_len, uint8_t g[32]);

/* ferry_cpace_isk: ISK = SHA-512(lv_cat("CPaceRistretto255_ISK", sid, K) ||
 * lv_cat(Ya, ADa) || lv_cat(Yb, ADb)), the initiator-responder transcript. */
void ferry_cpace_isk(const uint8_t *sid, size_t sid_len, const uint8_t k[32], const uint8_t ya[32],
                     const uint8_t *ada, size_t ada_len, const uint8_t yb[32], const uint8_t *adb,
                     size_t adb_len, uint8_t isk[64]);

G_END_DECLS

#endif
