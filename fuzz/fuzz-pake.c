/* Fuzz target: PAKE messages. Decodes the input as a message, then plays
 * it against a real session, either as raw messages or as a mask XORed
 * over the genuine ones. The oracle: a session verifies only when the
 * messages it got are exactly the genuine ones, and then both sides hold
 * the same key.
 *
 * Input: mode byte, then two 35-byte messages (share, confirmation).
 *   mode bit 0: the side under attack (1 = initiator, 0 = responder);
 *   mode bit 1: the messages are masks over the peer's genuine ones. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/pake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t sid[16] = "fuzz-session-sid";
static const char password[] = "ocean-tiger-piano";

static void
check_decode(const uint8_t *buf, size_t len)
{
  FerryPakeMsg msg;
  uint8_t again[FERRY_PAKE_MSG_LEN];
  int ret = ferry_pake_msg_decode(buf, len, &msg);
  if (ret == 0) {
    ferry_pake_msg_encode(&msg, again);
    if (len != FERRY_PAKE_MSG_LEN || memcmp(again, buf, len) != 0)
      abort();
  } else if (ret != FERRY_ERR_INVALID && ret != FERRY_ERR_VERSION && ret != FERRY_ERR_TOO_LONG) {
    abort();
  }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint8_t share_a[FERRY_PAKE_MSG_LEN], share_b[FERRY_PAKE_MSG_LEN];
  uint8_t confirm_v[FERRY_PAKE_MSG_LEN], confirm_p[FERRY_PAKE_MSG_LEN];
  uint8_t in_share[FERRY_PAKE_MSG_LEN], in_confirm[FERRY_PAKE_MSG_LEN];
  uint8_t key_v[FERRY_PAKE_KEY_LEN], key_p[FERRY_PAKE_KEY_LEN];
  size_t n, share_len, confirm_len;

  check_decode(data, size);
  if (size < 1)
    return 0;

  gboolean attack_initiator = (data[0] & 1) != 0, masks = (data[0] & 2) != 0;
  const uint8_t *rest = data + 1;
  size_t rest_len = size - 1;

  FerryPake *a =
      ferry_pake_new(FERRY_PAKE_INITIATOR, password, strlen(password), sid, sizeof sid, "fuzz");
  FerryPake *b =
      ferry_pake_new(FERRY_PAKE_RESPONDER, password, strlen(password), sid, sizeof sid, "fuzz");
  if (a == NULL || b == NULL)
    abort();
  n = sizeof share_a;
  if (ferry_pake_start(a, share_a, &n) != 0)
    abort();
  n = sizeof share_b;
  if (ferry_pake_start(b, share_b, &n) != 0)
    abort();
  FerryPake *victim = attack_initiator ? a : b, *peer = attack_initiator ? b : a;
  const uint8_t *victim_share = attack_initiator ? share_a : share_b;
  const uint8_t *peer_share = attack_initiator ? share_b : share_a;

  /* The peer is honest: it finishes with the victim's genuine share. */
  n = sizeof confirm_p;
  if (ferry_pake_finish(peer, victim_share, FERRY_PAKE_MSG_LEN, confirm_p, &n) != 0)
    abort();

  gboolean genuine;
  if (masks) {
    uint8_t mask[2 * FERRY_PAKE_MSG_LEN] = {0};
    memcpy(mask, rest, MIN(rest_len, sizeof mask));
    for (size_t i = 0; i < FERRY_PAKE_MSG_LEN; i++) {
      in_share[i] = peer_share[i] ^ mask[i];
      in_confirm[i] = confirm_p[i] ^ mask[FERRY_PAKE_MSG_LEN + i];
    }
    share_len = confirm_len = FERRY_PAKE_MSG_LEN;
    uint8_t any = 0;
    for (size_t i = 0; i < sizeof mask; i++)
      any |= mask[i];
    genuine = any == 0;
  } else {
    share_len = MIN(rest_len, FERRY_PAKE_MSG_LEN);
    memcpy(in_share, rest, share_len);
    confirm_len = MIN(rest_len - share_len, FERRY_PAKE_MSG_LEN);
    memcpy(in_confirm, rest + share_len, confirm_len);
    check_decode(in_share, share_len);
    check_decode(in_confirm, confirm_len);
    genuine = FALSE;
  }

  n = sizeof confirm_v;
  int ret = ferry_pake_finish(victim, in_share, share_len, confirm_v, &n);
  if (ferry_pake_session_key(victim, key_v) != FERRY_ERR_STATE)
    abort();
  if (ret == 0) {
    ret = ferry_pake_verify(victim, in_confirm, confirm_len);
    if ((ret == 0) != genuine)
      abort();
    if (ret == 0) {
      if (ferry_pake_verify(peer, confirm_v, FERRY_PAKE_MSG_LEN) != 0)
        abort();
      if (ferry_pake_session_key(victim, key_v) != 0 || ferry_pake_session_key(peer, key_p) != 0)
        abort();
      if (memcmp(key_v, key_p, sizeof key_v) != 0)
        abort();
    } else if (ferry_pake_session_key(victim, key_v) != FERRY_ERR_STATE) {
      abort();
    }
  } else {
    if (genuine)
      abort();
    if (ferry_pake_verify(victim, in_confirm, confirm_len) != FERRY_ERR_STATE)
      abort();
  }
  ferry_pake_free(a);
  ferry_pake_free(b);
  return 0;
}
