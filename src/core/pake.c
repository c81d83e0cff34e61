/* CPace over ristretto255 (draft-irtf-cfrg-cpace) with key confirmation.
 *
 * Inputs as the draft names them: PRS = the code's words, CI = the
 * channel id, sid = the session id. ADa and ADb are the three header bytes
 * of each side's share message (version, type, role), so the roles and the
 * protocol version are part of the ISK transcript: a message reflected back
 * to its sender, or a share from another session, never yields a key the
 * peer can confirm. */
#include <string.h>

#include <sodium.h>

#include "core/pake.h"

#define DSI               "CPaceRistretto255"
#define DSI_ISK           "CPaceRistretto255_ISK"
#define MAC_KEY_PREFIX    "CPaceMac"
#define SESSION_KEY_LABEL "ferry session key"
#define SHA512_BLOCK      128
#define HEADER_LEN        3
#define TRANSCRIPT_LEN    (2 * (1 + 32 + 1 + HEADER_LEN))

typedef enum {
  STATE_NEW,
  STATE_STARTED,
  STATE_FINISHED,
  STATE_VERIFIED,
  STATE_FAILED,
} PakeState;

struct _FerryPake {
  FerryPakeRole role;
  PakeState state;
  uint8_t sid[FERRY_PAKE_MAX_SID];
  size_t sid_len;
  uint8_t g[32];                       /* generator: a function of the password */
  uint8_t y[32];                       /* this side's secret scalar */
  uint8_t own_msg[FERRY_PAKE_MSG_LEN]; /* this side's share message */
  uint8_t peer_tag[32];                /* the confirmation tag the peer must send */
  uint8_t session_key[FERRY_PAKE_KEY_LEN];
};

int
ferry_pake_msg_decode(const uint8_t *buf, size_t len, FerryPakeMsg *msg)
{
  if (len == 0)
    return FERRY_ERR_INVALID;
  if (buf[0] != FERRY_PAKE_VERSION)
    return FERRY_ERR_VERSION;
  if (len < FERRY_PAKE_MSG_LEN)
    return FERRY_ERR_INVALID;
  if (len > FERRY_PAKE_MSG_LEN)
    return FERRY_ERR_TOO_LONG;
  if (buf[1] != FERRY_PAKE_MSG_SHARE && buf[1] != FERRY_PAKE_MSG_CONFIRM)
    return FERRY_ERR_INVALID;
  if (buf[2] != FERRY_PAKE_INITIATOR && buf[2] != FERRY_PAKE_RESPONDER)
    return FERRY_ERR_INVALID;
  if (buf[1] == FERRY_PAKE_MSG_SHARE && !crypto_core_ristretto255_is_valid_point(buf + HEADER_LEN))
    return FERRY_ERR_INVALID;
  msg->version = buf[0];
  msg->type = buf[1];
  msg->role = buf[2];
  memcpy(msg->body, buf + HEADER_LEN, sizeof msg->body);
  return 0;
}

void
ferry_pake_msg_encode(const FerryPakeMsg *msg, uint8_t out[FERRY_PAKE_MSG_LEN])
{
  out[0] = msg->version;
  out[1] = msg->type;
  out[2] = msg->role;
  memcpy(out + HEADER_LEN, msg->body, sizeof msg->body);
}

/* The draft's prepend_len(): the length as unsigned LEB128. Returns the
 * number of bytes written to out (at most 10). */
static size_t
leb128(size_t n, uint8_t out[10])
{
  size_t i = 0;
  do {
    out[i] = (uint8_t)(n & 0x7f);
    n >>= 7;
    if (n != 0)
      out[i] |= 0x80;
    i++;
  } while (n != 0);
  return i;
}

/* Feeds prepend_len(data) to a SHA-512 computation. */
static void
hash_lv(crypto_hash_sha512_state *st, const uint8_t *data, size_t len)
{
  uint8_t prefix[10];
  crypto_hash_sha512_update(st, prefix, leb128(len, prefix));
  if (len > 0)
    crypto_hash_sha512_update(st, data, len);
}

int
ferry_cpace_generator(const uint8_t *prs, size_t prs_len, const uint8_t *ci, size_t ci_len,
                      const uint8_t *sid, size_t sid_len, uint8_t g[32])
{
  static const uint8_t zeros[SHA512_BLOCK];
  uint8_t prefix[10], hash[crypto_hash_sha512_BYTES];
  crypto_hash_sha512_state st;

  /* The zero padding fills the first hash block after DSI and PRS, so
   * that block does not depend on anything public that varies (CI, sid). */
  size_t used = 1 + (leb128(prs_len, prefix) + prs_len) + (1 + strlen(DSI));
  size_t zpad = used < SHA512_BLOCK ? SHA512_BLOCK - used : 0;

  crypto_hash_sha512_init(&st);
  hash_lv(&st, (const uint8_t *)DSI, strlen(DSI));
  hash_lv(&st, prs, prs_len);
  hash_lv(&st, zeros, zpad);
  hash_lv(&st, ci, ci_len);
  hash_lv(&st, sid, sid_len);
  crypto_hash_sha512_final(&st, hash);
  crypto_core_ristretto255_from_hash(g, hash);
  sodium_memzero(hash, sizeof hash);
  sodium_memzero(&st, sizeof st);
  return 0;
}

void
ferry_cpace_isk(const uint8_t *sid, size_t sid_len, const uint8_t k[32], const uint8_t ya[32],
                const uint8_t *ada, size_t ada_len, const uint8_t yb[32], const uint8_t *adb,
                size_t adb_len, uint8_t isk[64])
{
  crypto_hash_sha512_state st;

  crypto_hash_sha512_init(&st);
  hash_lv(&st, (const uint8_t *)DSI_ISK, strlen(DSI_ISK));
  hash_lv(&st, sid, sid_len);
  hash_lv(&st, k, 32);
  hash_lv(&st, ya, 32);
  hash_lv(&st, ada, ada_len);
  hash_lv(&st, yb, 32);
  hash_lv(&st, adb, adb_len);
  crypto_hash_sha512_final(&st, isk);
  sodium_memzero(&st, sizeof st);
}

/* transcript_ir(Ya, ADa, Yb, ADb) from the two share messages, initiator's
 * first: each message is header (= AD) then point (= Y). */
static void
transcript(const uint8_t *init_msg, const uint8_t *resp_msg, uint8_t out[TRANSCRIPT_LEN])
{
  const uint8_t *msgs[2] = {init_msg, resp_msg};
  uint8_t *p = out;
  for (int i = 0; i < 2; i++) {
    *p++ = 32;
    memcpy(p, msgs[i] + HEADER_LEN, 32);
    p += 32;
    *p++ = HEADER_LEN;
    memcpy(p, msgs[i], HEADER_LEN);
    p += HEADER_LEN;
  }
}

/* Tag = HMAC-SHA-512-256(mac_key, prepend_len(label) || transcript), where
 * label names the side that sends the tag: a tag never verifies as the
 * other side's, so reflecting a confirmation back fails too. */
static void
confirm_tag(const uint8_t mac_key[64], FerryPakeRole sender, const uint8_t *tr, uint8_t out[32])
{
  const char *label = sender == FERRY_PAKE_INITIATOR ? "initiator" : "responder";
  uint8_t len = (uint8_t)strlen(label);
  crypto_auth_hmacsha512256_state st;

  crypto_auth_hmacsha512256_init(&st, mac_key, 64);
  crypto_auth_hmacsha512256_update(&st, &len, 1);
  crypto_auth_hmacsha512256_update(&st, (const uint8_t *)label, len);
  crypto_auth_hmacsha512256_update(&st, tr, TRANSCRIPT_LEN);
  crypto_auth_hmacsha512256_final(&st, out);
  sodium_memzero(&st, sizeof st);
}

FerryPake *
ferry_pake_new(FerryPakeRole role, const char *password, size_t len, const uint8_t *sid,
               size_t sid_len, const char *channel_id)
{
  size_t ci_len = channel_id != NULL ? strlen(channel_id) : 0;

  if (role != FERRY_PAKE_INITIATOR && role != FERRY_PAKE_RESPONDER)
    return NULL;
  if (password == NULL || len == 0 || len > FERRY_PAKE_MAX_PASSWORD)
    return NULL;
  if (sid_len > FERRY_PAKE_MAX_SID || (sid == NULL && sid_len > 0))
    return NULL;
  if (ci_len > FERRY_PAKE_MAX_CHANNEL_ID)
    return NULL;
  if (sodium_init() < 0)
    return NULL;

  FerryPake *pake = g_new0(FerryPake, 1);
  pake->role = role;
  pake->state = STATE_NEW;
  if (sid_len > 0)
    memcpy(pake->sid, sid, sid_len);
  pake->sid_len = sid_len;
  ferry_cpace_generator((const uint8_t *)password, len, (const uint8_t *)channel_id, ci_len,
                        pake->sid, sid_len, pake->g);
  return pake;
}

void
ferry_pake_free(FerryPake *pake)
{
  if (pake == NULL)
    return;
  sodium_memzero(pake, sizeof *pake);
  g_free(pake);
}

int
ferry_pake_start_with_scalar(FerryPake *pake, const uint8_t y[32], uint8_t msg_out[], size_t *len)
{
  if (pake->state != STATE_NEW)
    return FERRY_ERR_STATE;
  if (*len < FERRY_PAKE_MSG_LEN)
    return FERRY_ERR_INVALID;

  FerryPakeMsg msg = {FERRY_PAKE_VERSION, FERRY_PAKE_MSG_SHARE, (uint8_t)pake->role, {0}};
  memcpy(pake->y, y, sizeof pake->y);
  int ret = crypto_scalarmult_ristretto255(msg.body, pake->y, pake->g);
  sodium_memzero(pake->g, sizeof pake->g);
  if (ret != 0) {
    sodium_memzero(pake->y, sizeof pake->y);
    pake->state = STATE_FAILED;
    return FERRY_ERR_CRYPTO;
  }
  ferry_pake_msg_encode(&msg, pake->own_msg);
  memcpy(msg_out, pake->own_msg, FERRY_PAKE_MSG_LEN);
  *len = FERRY_PAKE_MSG_LEN;
  pake->state = STATE_STARTED;
  return 0;
}

int
ferry_pake_start(FerryPake *pake, uint8_t msg_out[], size_t *len)
{
  uint8_t y[32];

  if (pake->state != STATE_NEW)
    return FERRY_ERR_STATE;
  crypto_core_ristretto255_scalar_random(y);
  int ret = ferry_pake_start_with_scalar(pake, y, msg_out, len);
  sodium_memzero(y, sizeof y);
  return ret;
}

static int
fail(FerryPake *pake, int err)
{
  sodium_memzero(pake->y, sizeof pake->y);
  sodium_memzero(pake->peer_tag, sizeof pake->peer_tag);
  sodium_memzero(pake->session_key, sizeof pake->session_key);
  pake->state = STATE_FAILED;
  return err;
}

int
ferry_pake_finish(FerryPake *pake, const uint8_t *peer_msg, size_t peer_len, uint8_t confirm_out[],
                  size_t *len)
{
  FerryPakeMsg peer;
  uint8_t k[32], isk[64], mac_key[64], tr[TRANSCRIPT_LEN];
  uint8_t peer_wire[FERRY_PAKE_MSG_LEN];
  crypto_hash_sha512_state st;
  int ret;

  if (pake->state != STATE_STARTED)
    return FERRY_ERR_STATE;
  if (*len < FERRY_PAKE_MSG_LEN)
    return FERRY_ERR_INVALID;
  ret = ferry_pake_msg_decode(peer_msg, peer_len, &peer);
  if (ret < 0)
    return fail(pake, ret);
  if (peer.type != FERRY_PAKE_MSG_SHARE)
    return fail(pake, FERRY_ERR_INVALID);
  if (peer.role == pake->role)
    return fail(pake, FERRY_ERR_AUTH);
  if (crypto_scalarmult_ristretto255(k, pake->y, peer.body) != 0)
    return fail(pake, FERRY_ERR_CRYPTO);
  sodium_memzero(pake->y, sizeof pake->y);

  ferry_pake_msg_encode(&peer, peer_wire);
  const uint8_t *init_msg = pake->role == FERRY_PAKE_INITIATOR ? pake->own_msg : peer_wire;
  const uint8_t *resp_msg = pake->role == FERRY_PAKE_INITIATOR ? peer_wire : pake->own_msg;
  ferry_cpace_isk(pake->sid, pake->sid_len, k, init_msg + HEADER_LEN, init_msg, HEADER_LEN,
                  resp_msg + HEADER_LEN, resp_msg, HEADER_LEN, isk);
  sodium_memzero(k, sizeof k);
  transcript(init_msg, resp_msg, tr);

  /* mac_key as the draft suggests: SHA-512("CPaceMac" || sid || ISK). */
  crypto_hash_sha512_init(&st);
  crypto_hash_sha512_update(&st, (const uint8_t *)MAC_KEY_PREFIX, strlen(MAC_KEY_PREFIX));
  crypto_hash_sha512_update(&st, pake->sid, pake->sid_len);
  crypto_hash_sha512_update(&st, isk, sizeof isk);
  crypto_hash_sha512_final(&st, mac_key);
  sodium_memzero(&st, sizeof st);

  /* The session key: HMAC-SHA-512-256(ISK, "ferry session key"). */
  crypto_auth_hmacsha512256_state hst;
  crypto_auth_hmacsha512256_init(&hst, isk, sizeof isk);
  crypto_auth_hmacsha512256_update(&hst, (const uint8_t *)SESSION_KEY_LABEL,
                                   strlen(SESSION_KEY_LABEL));
  crypto_auth_hmacsha512256_final(&hst, pake->session_key);
  sodium_memzero(&hst, sizeof hst);
  sodium_memzero(isk, sizeof isk);

  FerryPakeMsg confirm = {FERRY_PAKE_VERSION, FERRY_PAKE_MSG_CONFIRM, (uint8_t)pake->role, {0}};
  confirm_tag(mac_key, pake->role, tr, confirm.body);
  confirm_tag(mac_key, peer.role, tr, pake->peer_tag);
  sodium_memzero(mac_key, sizeof mac_key);
  ferry_pake_msg_encode(&confirm, confirm_out);
  *len = FERRY_PAKE_MSG_LEN;
  pake->state = STATE_FINISHED;
  return 0;
}

int
ferry_pake_verify(FerryPake *pake, const uint8_t *peer_confirm, size_t len)
{
  FerryPakeMsg peer;
  int ret;

  if (pake->state != STATE_FINISHED)
    return FERRY_ERR_STATE;
  ret = ferry_pake_msg_decode(peer_confirm, len, &peer);
  if (ret < 0)
    return fail(pake, ret);
  if (peer.type != FERRY_PAKE_MSG_CONFIRM)
    return fail(pake, FERRY_ERR_INVALID);
  if (peer.role == pake->role)
    return fail(pake, FERRY_ERR_AUTH);
  if (crypto_verify_32(peer.body, pake->peer_tag) != 0)
    return fail(pake, FERRY_ERR_AUTH);
  sodium_memzero(pake->peer_tag, sizeof pake->peer_tag);
  pake->state = STATE_VERIFIED;
  return 0;
}

int
ferry_pake_session_key(const FerryPake *pake, uint8_t out[FERRY_PAKE_KEY_LEN])
{
  if (pake->state != STATE_VERIFIED)
    return FERRY_ERR_STATE;
  memcpy(out, pake->session_key, FERRY_PAKE_KEY_LEN);
  return 0;
}

int
ferry_pake_unconfirmed_key(const FerryPake *pake, uint8_t out[FERRY_PAKE_KEY_LEN])
{
  if (pake->state != STATE_FINISHED && pake->state != STATE_VERIFIED)
    return FERRY_ERR_STATE;
  memcpy(out, pake->session_key, FERRY_PAKE_KEY_LEN);
  return 0;
}
