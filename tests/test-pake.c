/* CPace: the draft's test vectors, the message encoding, and every way a
 * session must fail (wrong password, tampering, replay, reflection, bad
 * points, wrong order of calls). */
#include <string.h>

#include <sodium.h>

#include "core/pake.h"

#define PW "ocean-tiger-piano"
#define CI "ferry/1 test 7"

static const uint8_t sid1[16] = "session-one-1234";
static const uint8_t sid2[16] = "session-two-5678";

static void
unhex(const char *hex, uint8_t *out, size_t len)
{
  size_t bin_len = 0;
  g_assert_cmpint(sodium_hex2bin(out, len, hex, strlen(hex), NULL, &bin_len, NULL), ==, 0);
  g_assert_cmpuint(bin_len, ==, len);
}

/* Test vectors of draft-irtf-cfrg-cpace, "Test vector for CPace using group
 * ristretto255 and hash SHA-512". */
static void
test_draft_vectors(void)
{
  const uint8_t prs[] = "Password";
  uint8_t ci[24], sid[16], g[32], want_g[32], ya[32], yb[32], want_ya[32], want_yb[32];
  uint8_t big_ya[32], big_yb[32], k_a[32], k_b[32], want_k[32], isk[64], want_isk[64];
  const uint8_t ada[] = "ADa", adb[] = "ADb";

  unhex("0b415f696e69746961746f720b425f726573706f6e646572", ci, sizeof ci);
  unhex("7e4b4791d6a8ef019b936c79fb7f2c57", sid, sizeof sid);
  unhex("222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56", want_g, 32);
  unhex("da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08", ya, 32);
  unhex("d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157", want_ya, 32);
  unhex("d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d", yb, 32);
  unhex("3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258", want_yb, 32);
  unhex("80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc9887c8b40f", want_k, 32);
  unhex("b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dcae7b35cd"
        "2b38950a39dfd5d4a79164614c2984f7daa460b588c1e80c3fa2068af7900447",
        want_isk, 64);

  g_assert_cmpint(ferry_cpace_generator(prs, 8, ci, sizeof ci, sid, sizeof sid, g), ==, 0);
  g_assert_cmpmem(g, 32, want_g, 32);
  g_assert_cmpint(crypto_scalarmult_ristretto255(big_ya, ya, g), ==, 0);
  g_assert_cmpmem(big_ya, 32, want_ya, 32);
  g_assert_cmpint(crypto_scalarmult_ristretto255(big_yb, yb, g), ==, 0);
  g_assert_cmpmem(big_yb, 32, want_yb, 32);
  g_assert_cmpint(crypto_scalarmult_ristretto255(k_a, ya, big_yb), ==, 0);
  g_assert_cmpint(crypto_scalarmult_ristretto255(k_b, yb, big_ya), ==, 0);
  g_assert_cmpmem(k_a, 32, want_k, 32);
  g_assert_cmpmem(k_b, 32, want_k, 32);
  ferry_cpace_isk(sid, sizeof sid, k_a, big_ya, ada, 3, big_yb, adb, 3, isk);
  g_assert_cmpmem(isk, 64, want_isk, 64);
}

/* ferry's own known answers: a whole session with the draft's scalars, as
 * written out in docs/protocol.md for anyone writing a compatible peer.
 * The tags and the session key were checked against an independent
 * computation (Python's hashlib/hmac) from the ISK. */
static void
test_known_answers(void)
{
  const char *ci = "ferry/1 example";
  uint8_t sid[16], ya[32], yb[32], sa[35], sb[35], ca[35], cb[35], ka[32], kb[32];
  uint8_t want_sa[35], want_sb[35], want_ca[35], want_cb[35], want_key[32], zero[32] = {0};
  size_t n;

  for (int i = 0; i < 16; i++)
    sid[i] = (uint8_t)i;
  unhex("da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08", ya, 32);
  unhex("d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d", yb, 32);
  unhex("010101969d81a7fe618fbe6fea14b18b54a87ce237f4a6139d8002905e869e7f6e1b64", want_sa, 35);
  unhex("010102ced5c9e0be999ab15ed48d8afd4b68158545c0af97cfc04ab7da8ad99ccd7d52", want_sb, 35);
  unhex("0102015ee0289cc0dacc74183d78a2f3c9b53c119a5c8b0bf1e05ce44fe00ad73595c0", want_ca, 35);
  unhex("010202cf88b44c86d42ab752b695e880ce978b947508e5d0afcc8a06c03c37fa7987eb", want_cb, 35);
  unhex("8d69258db2ecfc2d91055dc73d6d5b3cc45d63fde79d5ba81832e837f4d294e9", want_key, 32);

  FerryPake *a = ferry_pake_new(FERRY_PAKE_INITIATOR, PW, strlen(PW), sid, sizeof sid, ci);
  FerryPake *b = ferry_pake_new(FERRY_PAKE_RESPONDER, PW, strlen(PW), sid, sizeof sid, ci);
  n = sizeof sa;
  g_assert_cmpint(ferry_pake_start_with_scalar(a, ya, sa, &n), ==, 0);
  n = sizeof sb;
  g_assert_cmpint(ferry_pake_start_with_scalar(b, yb, sb, &n), ==, 0);
  g_assert_cmpmem(sa, 35, want_sa, 35);
  g_assert_cmpmem(sb, 35, want_sb, 35);
  n = sizeof ca;
  g_assert_cmpint(ferry_pake_finish(a, sb, sizeof sb, ca, &n), ==, 0);
  n = sizeof cb;
  g_assert_cmpint(ferry_pake_finish(b, sa, sizeof sa, cb, &n), ==, 0);
  g_assert_cmpmem(ca, 35, want_ca, 35);
  g_assert_cmpmem(cb, 35, want_cb, 35);
  /* before the confirmations: the confirmed key only through the unconfirmed way */
  g_assert_cmpint(ferry_pake_session_key(a, ka), ==, FERRY_ERR_STATE);
  g_assert_cmpint(ferry_pake_unconfirmed_key(b, kb), ==, 0);
  g_assert_cmpmem(kb, 32, want_key, 32);
  g_assert_cmpint(ferry_pake_verify(a, cb, sizeof cb), ==, 0);
  g_assert_cmpint(ferry_pake_verify(b, ca, sizeof ca), ==, 0);
  g_assert_cmpint(ferry_pake_session_key(a, ka), ==, 0);
  g_assert_cmpint(ferry_pake_session_key(b, kb), ==, 0);
  g_assert_cmpmem(ka, 32, want_key, 32);
  g_assert_cmpmem(kb, 32, want_key, 32);
  ferry_pake_free(a);
  ferry_pake_free(b);

  /* The zero scalar would make the identity: refused. */
  a = ferry_pake_new(FERRY_PAKE_INITIATOR, PW, strlen(PW), sid, sizeof sid, ci);
  n = sizeof sa;
  g_assert_cmpint(ferry_pake_start_with_scalar(a, zero, sa, &n), ==, FERRY_ERR_CRYPTO);
  g_assert_cmpint(ferry_pake_start_with_scalar(a, ya, sa, &n), ==, FERRY_ERR_STATE);
  ferry_pake_free(a);
}

/* A long password needs a two-byte length and no zero padding. */
static void
test_generator_long_password(void)
{
  char pw[200];
  uint8_t g1[32], g2[32];
  memset(pw, 'a', sizeof pw);
  g_assert_cmpint(ferry_cpace_generator((uint8_t *)pw, sizeof pw, NULL, 0, NULL, 0, g1), ==, 0);
  pw[199] = 'b';
  g_assert_cmpint(ferry_cpace_generator((uint8_t *)pw, sizeof pw, NULL, 0, NULL, 0, g2), ==, 0);
  g_assert_true(crypto_core_ristretto255_is_valid_point(g1));
  g_assert_cmpint(memcmp(g1, g2, 32), !=, 0);
}

static void
test_msg_decode(void)
{
  uint8_t buf[FERRY_PAKE_MSG_LEN + 1];
  FerryPakeMsg msg = {FERRY_PAKE_VERSION, FERRY_PAKE_MSG_SHARE, FERRY_PAKE_INITIATOR, {0}};
  FerryPakeMsg out;

  /* A share carries a valid point: use the ristretto255 base point. */
  crypto_scalarmult_ristretto255_base(msg.body, (const uint8_t[32]){1});
  ferry_pake_msg_encode(&msg, buf);
  g_assert_cmpint(ferry_pake_msg_decode(buf, FERRY_PAKE_MSG_LEN, &out), ==, 0);
  g_assert_cmpuint(out.version, ==, 1);
  g_assert_cmpuint(out.type, ==, FERRY_PAKE_MSG_SHARE);
  g_assert_cmpuint(out.role, ==, FERRY_PAKE_INITIATOR);
  g_assert_cmpmem(out.body, 32, msg.body, 32);

  g_assert_cmpint(ferry_pake_msg_decode(buf, 0, &out), ==, FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_pake_msg_decode(buf, 1, &out), ==, FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_pake_msg_decode(buf, FERRY_PAKE_MSG_LEN - 1, &out), ==, FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_pake_msg_decode(buf, FERRY_PAKE_MSG_LEN + 1, &out), ==, FERRY_ERR_TOO_LONG);

  for (int v = 0; v < 256; v++) {
    buf[0] = (uint8_t)v;
    g_assert_cmpint(ferry_pake_msg_decode(buf, FERRY_PAKE_MSG_LEN, &out), ==,
                    v == 1 ? 0 : FERRY_ERR_VERSION);
    /* A later version may be longer: the version is judged first. */
    if (v != 1)
      g_assert_cmpint(ferry_pake_msg_decode(buf, 3, &out), ==, FERRY_ERR_VERSION);
  }
  buf[0] = 1;
  for (int t = 0; t < 256; t++) {
    buf[1] = (uint8_t)t;
    g_assert_cmpint(ferry_pake_msg_decode(buf, FERRY_PAKE_MSG_LEN, &out), ==,
                    t == 1 || t == 2 ? 0 : FERRY_ERR_INVALID);
  }
  buf[1] = FERRY_PAKE_MSG_SHARE;
  for (int r = 0; r < 256; r++) {
    buf[2] = (uint8_t)r;
    g_assert_cmpint(ferry_pake_msg_decode(buf, FERRY_PAKE_MSG_LEN, &out), ==,
                    r == 1 || r == 2 ? 0 : FERRY_ERR_INVALID);
  }
  buf[2] = FERRY_PAKE_RESPONDER;

  /* Not a point: all 0xff; and the field prime p itself (a non-canonical
   * encoding of 0). */
  memset(buf + 3, 0xff, 32);
  g_assert_cmpint(ferry_pake_msg_decode(buf, FERRY_PAKE_MSG_LEN, &out), ==, FERRY_ERR_INVALID);
  unhex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", buf + 3, 32);
  g_assert_cmpint(ferry_pake_msg_decode(buf, FERRY_PAKE_MSG_LEN, &out), ==, FERRY_ERR_INVALID);
  /* A confirmation's body is a tag: any bytes. */
  buf[1] = FERRY_PAKE_MSG_CONFIRM;
  g_assert_cmpint(ferry_pake_msg_decode(buf, FERRY_PAKE_MSG_LEN, &out), ==, 0);
  /* The identity is a valid encoding; ferry_pake_finish() refuses it. */
  buf[1] = FERRY_PAKE_MSG_SHARE;
  memset(buf + 3, 0, 32);
  g_assert_cmpint(ferry_pake_msg_decode(buf, FERRY_PAKE_MSG_LEN, &out), ==, 0);
}

typedef struct {
  FerryPake *a, *b;
  uint8_t share_a[FERRY_PAKE_MSG_LEN], share_b[FERRY_PAKE_MSG_LEN];
  uint8_t confirm_a[FERRY_PAKE_MSG_LEN], confirm_b[FERRY_PAKE_MSG_LEN];
} Pair;

static void
pair_start(Pair *p, const char *pw_a, const char *pw_b, const uint8_t *sid_a, const uint8_t *sid_b,
           const char *ci_a, const char *ci_b)
{
  size_t n;
  p->a = ferry_pake_new(FERRY_PAKE_INITIATOR, pw_a, strlen(pw_a), sid_a, 16, ci_a);
  p->b = ferry_pake_new(FERRY_PAKE_RESPONDER, pw_b, strlen(pw_b), sid_b, 16, ci_b);
  g_assert_nonnull(p->a);
  g_assert_nonnull(p->b);
  n = sizeof p->share_a;
  g_assert_cmpint(ferry_pake_start(p->a, p->share_a, &n), ==, 0);
  g_assert_cmpuint(n, ==, FERRY_PAKE_MSG_LEN);
  n = sizeof p->share_b;
  g_assert_cmpint(ferry_pake_start(p->b, p->share_b, &n), ==, 0);
  g_assert_cmpuint(n, ==, FERRY_PAKE_MSG_LEN);
}

static void
pair_finish(Pair *p)
{
  size_t n = sizeof p->confirm_a;
  g_assert_cmpint(ferry_pake_finish(p->a, p->share_b, sizeof p->share_b, p->confirm_a, &n), ==, 0);
  g_assert_cmpuint(n, ==, FERRY_PAKE_MSG_LEN);
  n = sizeof p->confirm_b;
  g_assert_cmpint(ferry_pake_finish(p->b, p->share_a, sizeof p->share_a, p->confirm_b, &n), ==, 0);
}

static void
pair_clear(Pair *p)
{
  ferry_pake_free(p->a);
  ferry_pake_free(p->b);
}

static void
test_same_password(void)
{
  Pair p, q;
  uint8_t ka[32], kb[32], kq[32];
  const uint8_t zero[32] = {0};

  pair_start(&p, PW, PW, sid1, sid1, CI, CI);
  g_assert_cmpuint(p.share_a[2], ==, FERRY_PAKE_INITIATOR);
  g_assert_cmpuint(p.share_b[2], ==, FERRY_PAKE_RESPONDER);
  pair_finish(&p);
  g_assert_cmpint(ferry_pake_verify(p.a, p.confirm_b, sizeof p.confirm_b), ==, 0);
  g_assert_cmpint(ferry_pake_verify(p.b, p.confirm_a, sizeof p.confirm_a), ==, 0);
  g_assert_cmpint(ferry_pake_session_key(p.a, ka), ==, 0);
  g_assert_cmpint(ferry_pake_session_key(p.b, kb), ==, 0);
  g_assert_cmpmem(ka, 32, kb, 32);
  g_assert_cmpint(memcmp(ka, zero, 32), !=, 0);
  /* The two confirmations differ: each names its sender. */
  g_assert_cmpint(memcmp(p.confirm_a + 3, p.confirm_b + 3, 32), !=, 0);

  /* A second run with the same inputs gives a fresh key. */
  pair_start(&q, PW, PW, sid1, sid1, CI, CI);
  pair_finish(&q);
  g_assert_cmpint(ferry_pake_verify(q.a, q.confirm_b, sizeof q.confirm_b), ==, 0);
  g_assert_cmpint(ferry_pake_session_key(q.a, kq), ==, 0);
  g_assert_cmpint(memcmp(ka, kq, 32), !=, 0);
  pair_clear(&p);
  pair_clear(&q);
}

/* The responder may get the initiator's share before it starts or
 * finishes; only the calls on each object are ordered. */
static void
test_order_independent(void)
{
  Pair p;
  uint8_t ka[32], kb[32];
  size_t n;

  pair_start(&p, PW, PW, sid1, sid1, NULL, NULL);
  n = sizeof p.confirm_b;
  g_assert_cmpint(ferry_pake_finish(p.b, p.share_a, sizeof p.share_a, p.confirm_b, &n), ==, 0);
  n = sizeof p.confirm_a;
  g_assert_cmpint(ferry_pake_finish(p.a, p.share_b, sizeof p.share_b, p.confirm_a, &n), ==, 0);
  g_assert_cmpint(ferry_pake_verify(p.b, p.confirm_a, sizeof p.confirm_a), ==, 0);
  g_assert_cmpint(ferry_pake_verify(p.a, p.confirm_b, sizeof p.confirm_b), ==, 0);
  g_assert_cmpint(ferry_pake_session_key(p.a, ka), ==, 0);
  g_assert_cmpint(ferry_pake_session_key(p.b, kb), ==, 0);
  g_assert_cmpmem(ka, 32, kb, 32);
  pair_clear(&p);
}

/* Runs a pair to the end and checks that both sides refuse the other's
 * confirmation and hold no key. */
static void
assert_both_fail(Pair *p)
{
  uint8_t k[32], ka[32], kb[32];
  pair_finish(p);
  /* each side's unconfirmed key is its own: the other's sealing opens nothing */
  g_assert_cmpint(ferry_pake_unconfirmed_key(p->a, ka), ==, 0);
  g_assert_cmpint(ferry_pake_unconfirmed_key(p->b, kb), ==, 0);
  g_assert_true(memcmp(ka, kb, sizeof ka) != 0);
  g_assert_cmpint(ferry_pake_verify(p->a, p->confirm_b, sizeof p->confirm_b), ==, FERRY_ERR_AUTH);
  g_assert_cmpint(ferry_pake_verify(p->b, p->confirm_a, sizeof p->confirm_a), ==, FERRY_ERR_AUTH);
  g_assert_cmpint(ferry_pake_session_key(p->a, k), ==, FERRY_ERR_STATE);
  g_assert_cmpint(ferry_pake_session_key(p->b, k), ==, FERRY_ERR_STATE);
  g_assert_cmpint(ferry_pake_unconfirmed_key(p->a, k), ==, FERRY_ERR_STATE); /* failed */
  pair_clear(p);
}

static void
test_wrong_password(void)
{
  Pair p;
  pair_start(&p, PW, "ocean-tiger-pianos", sid1, sid1, CI, CI);
  assert_both_fail(&p);
  /* Case matters at this level: the code parser canonicalises first. */
  pair_start(&p, PW, "Ocean-tiger-piano", sid1, sid1, CI, CI);
  assert_both_fail(&p);
}

static void
test_different_sid_or_channel(void)
{
  Pair p;
  pair_start(&p, PW, PW, sid1, sid2, CI, CI);
  assert_both_fail(&p);
  pair_start(&p, PW, PW, sid1, sid1, CI, "ferry/1 test 8");
  assert_both_fail(&p);
  pair_start(&p, PW, PW, sid1, sid1, CI, NULL);
  assert_both_fail(&p);
}

/* Flips every bit of the initiator's share on its way to the responder:
 * the responder either refuses the message outright, with the code that
 * fits the field, or ends up with a key that neither side confirms. */
static void
test_tampered_share(void)
{
  for (size_t byte = 0; byte < FERRY_PAKE_MSG_LEN; byte++) {
    for (int bit = 0; bit < 8; bit++) {
      Pair p;
      uint8_t bad[FERRY_PAKE_MSG_LEN];
      size_t n = sizeof p.confirm_b;

      pair_start(&p, PW, PW, sid1, sid1, CI, CI);
      memcpy(bad, p.share_a, sizeof bad);
      bad[byte] ^= (uint8_t)(1u << bit);
      int ret = ferry_pake_finish(p.b, bad, sizeof bad, p.confirm_b, &n);
      if (byte == 0)
        g_assert_cmpint(ret, ==, FERRY_ERR_VERSION);
      else if (byte == 1 || byte == 2) /* no one-bit flip of 1 is another valid type or role */
        g_assert_cmpint(ret, ==, FERRY_ERR_INVALID);
      if (ret < 0) {
        g_assert_true(ret == FERRY_ERR_VERSION || ret == FERRY_ERR_INVALID ||
                      ret == FERRY_ERR_AUTH || ret == FERRY_ERR_CRYPTO);
        /* The failure is final. */
        g_assert_cmpint(ferry_pake_finish(p.b, p.share_a, sizeof p.share_a, p.confirm_b, &n), ==,
                        FERRY_ERR_STATE);
        pair_clear(&p);
        continue;
      }
      g_assert_cmpuint(byte, >=, 3);
      n = sizeof p.confirm_a;
      g_assert_cmpint(ferry_pake_finish(p.a, p.share_b, sizeof p.share_b, p.confirm_a, &n), ==, 0);
      g_assert_cmpint(ferry_pake_verify(p.a, p.confirm_b, sizeof p.confirm_b), ==, FERRY_ERR_AUTH);
      g_assert_cmpint(ferry_pake_verify(p.b, p.confirm_a, sizeof p.confirm_a), ==, FERRY_ERR_AUTH);
      pair_clear(&p);
    }
  }
}

static void
test_tampered_confirm(void)
{
  for (size_t byte = 0; byte < FERRY_PAKE_MSG_LEN; byte++) {
    Pair p;
    uint8_t k[32];

    pair_start(&p, PW, PW, sid1, sid1, CI, CI);
    pair_finish(&p);
    p.confirm_b[byte] ^= 0x20;
    int ret = ferry_pake_verify(p.a, p.confirm_b, sizeof p.confirm_b);
    if (byte == 0)
      g_assert_cmpint(ret, ==, FERRY_ERR_VERSION);
    else if (byte == 1 || byte == 2)
      g_assert_cmpint(ret, ==, FERRY_ERR_INVALID);
    else
      g_assert_cmpint(ret, ==, FERRY_ERR_AUTH);
    g_assert_cmpint(ferry_pake_session_key(p.a, k), ==, FERRY_ERR_STATE);
    /* No second try, even with the genuine message. */
    p.confirm_b[byte] ^= 0x20;
    g_assert_cmpint(ferry_pake_verify(p.a, p.confirm_b, sizeof p.confirm_b), ==, FERRY_ERR_STATE);
    pair_clear(&p);
  }
}

/* Messages recorded from one session and played into another (same
 * password, same or different sid) give nothing the victim will confirm. */
static void
test_replay_from_other_session(void)
{
  for (int same_sid = 0; same_sid < 2; same_sid++) {
    Pair old, now;
    size_t n;
    uint8_t confirm[FERRY_PAKE_MSG_LEN];

    pair_start(&old, PW, PW, sid1, sid1, CI, CI);
    pair_finish(&old);
    g_assert_cmpint(ferry_pake_verify(old.a, old.confirm_b, sizeof old.confirm_b), ==, 0);

    const uint8_t *sid = same_sid ? sid1 : sid2;
    pair_start(&now, PW, PW, sid, sid, CI, CI);
    /* To the initiator: the old responder's share, then its confirmation. */
    n = sizeof confirm;
    g_assert_cmpint(ferry_pake_finish(now.a, old.share_b, sizeof old.share_b, confirm, &n), ==, 0);
    g_assert_cmpint(ferry_pake_verify(now.a, old.confirm_b, sizeof old.confirm_b), ==,
                    FERRY_ERR_AUTH);
    /* To the responder: the old initiator's messages. */
    n = sizeof confirm;
    g_assert_cmpint(ferry_pake_finish(now.b, old.share_a, sizeof old.share_a, confirm, &n), ==, 0);
    g_assert_cmpint(ferry_pake_verify(now.b, old.confirm_a, sizeof old.confirm_a), ==,
                    FERRY_ERR_AUTH);
    pair_clear(&old);
    pair_clear(&now);
  }
}

/* A side's own messages sent back to it. As they are, the role byte gives
 * them away; with the role byte rewritten, the roles in the transcript and
 * in the confirmation label still make the tag fail. */
static void
test_reflection(void)
{
  Pair p;
  uint8_t confirm[FERRY_PAKE_MSG_LEN], mirrored[FERRY_PAKE_MSG_LEN];
  size_t n = sizeof confirm;

  pair_start(&p, PW, PW, sid1, sid1, CI, CI);
  g_assert_cmpint(ferry_pake_finish(p.a, p.share_a, sizeof p.share_a, confirm, &n), ==,
                  FERRY_ERR_AUTH);
  pair_clear(&p);

  for (int role = FERRY_PAKE_INITIATOR; role <= FERRY_PAKE_RESPONDER; role++) {
    pair_start(&p, PW, PW, sid1, sid1, CI, CI);
    FerryPake *victim = role == FERRY_PAKE_INITIATOR ? p.a : p.b;
    const uint8_t *own = role == FERRY_PAKE_INITIATOR ? p.share_a : p.share_b;
    uint8_t other_role = role == FERRY_PAKE_INITIATOR ? FERRY_PAKE_RESPONDER : FERRY_PAKE_INITIATOR;

    memcpy(mirrored, own, sizeof mirrored);
    mirrored[2] = other_role;
    n = sizeof confirm;
    g_assert_cmpint(ferry_pake_finish(victim, mirrored, sizeof mirrored, confirm, &n), ==, 0);
    memcpy(mirrored, confirm, sizeof mirrored);
    mirrored[2] = other_role;
    g_assert_cmpint(ferry_pake_verify(victim, mirrored, sizeof mirrored), ==, FERRY_ERR_AUTH);
    pair_clear(&p);
  }

  /* The confirmation reflected as it is: refused by its role byte. */
  pair_start(&p, PW, PW, sid1, sid1, CI, CI);
  pair_finish(&p);
  g_assert_cmpint(ferry_pake_verify(p.a, p.confirm_a, sizeof p.confirm_a), ==, FERRY_ERR_AUTH);
  pair_clear(&p);
}

static void
test_bad_points(void)
{
  Pair p;
  uint8_t msg[FERRY_PAKE_MSG_LEN] = {FERRY_PAKE_VERSION, FERRY_PAKE_MSG_SHARE,
                                     FERRY_PAKE_RESPONDER};
  uint8_t confirm[FERRY_PAKE_MSG_LEN];
  size_t n = sizeof confirm;

  /* The identity (all zeros): a valid encoding, refused as a share. */
  pair_start(&p, PW, PW, sid1, sid1, CI, CI);
  g_assert_cmpint(ferry_pake_finish(p.a, msg, sizeof msg, confirm, &n), ==, FERRY_ERR_CRYPTO);
  g_assert_cmpint(ferry_pake_finish(p.a, p.share_b, sizeof p.share_b, confirm, &n), ==,
                  FERRY_ERR_STATE);
  pair_clear(&p);

  /* Not an encoding at all. */
  memset(msg + 3, 0xff, 32);
  pair_start(&p, PW, PW, sid1, sid1, CI, CI);
  n = sizeof confirm;
  g_assert_cmpint(ferry_pake_finish(p.a, msg, sizeof msg, confirm, &n), ==, FERRY_ERR_INVALID);
  pair_clear(&p);

  /* A confirmation where a share belongs, and a share where a
   * confirmation belongs. */
  pair_start(&p, PW, PW, sid1, sid1, CI, CI);
  uint8_t fake_confirm[FERRY_PAKE_MSG_LEN];
  memcpy(fake_confirm, p.share_b, sizeof fake_confirm);
  fake_confirm[1] = FERRY_PAKE_MSG_CONFIRM;
  n = sizeof confirm;
  g_assert_cmpint(ferry_pake_finish(p.a, fake_confirm, sizeof fake_confirm, confirm, &n), ==,
                  FERRY_ERR_INVALID);
  n = sizeof confirm;
  g_assert_cmpint(ferry_pake_finish(p.b, p.share_a, sizeof p.share_a, confirm, &n), ==, 0);
  g_assert_cmpint(ferry_pake_verify(p.b, p.share_a, sizeof p.share_a), ==, FERRY_ERR_INVALID);
  pair_clear(&p);
}

static void
test_state(void)
{
  uint8_t msg[FERRY_PAKE_MSG_LEN], confirm[FERRY_PAKE_MSG_LEN], k[32];
  size_t n = sizeof msg;
  Pair p;

  FerryPake *a = ferry_pake_new(FERRY_PAKE_INITIATOR, PW, strlen(PW), sid1, 16, CI);
  g_assert_cmpint(ferry_pake_session_key(a, k), ==, FERRY_ERR_STATE);
  g_assert_cmpint(ferry_pake_finish(a, msg, sizeof msg, confirm, &n), ==, FERRY_ERR_STATE);
  g_assert_cmpint(ferry_pake_verify(a, msg, sizeof msg), ==, FERRY_ERR_STATE);
  n = FERRY_PAKE_MSG_LEN - 1;
  g_assert_cmpint(ferry_pake_start(a, msg, &n), ==, FERRY_ERR_INVALID);
  n = sizeof msg;
  g_assert_cmpint(ferry_pake_start(a, msg, &n), ==, 0);
  g_assert_cmpint(ferry_pake_start(a, msg, &n), ==, FERRY_ERR_STATE);
  ferry_pake_free(a);

  /* The key is not available between finish and verify. */
  pair_start(&p, PW, PW, sid1, sid1, CI, CI);
  n = FERRY_PAKE_MSG_LEN - 1;
  g_assert_cmpint(ferry_pake_finish(p.a, p.share_b, sizeof p.share_b, confirm, &n), ==,
                  FERRY_ERR_INVALID); /* buffer too small: not a failure */
  pair_finish(&p);
  g_assert_cmpint(ferry_pake_session_key(p.a, k), ==, FERRY_ERR_STATE);
  n = sizeof confirm;
  g_assert_cmpint(ferry_pake_finish(p.a, p.share_b, sizeof p.share_b, confirm, &n), ==,
                  FERRY_ERR_STATE);
  g_assert_cmpint(ferry_pake_verify(p.a, p.confirm_b, sizeof p.confirm_b), ==, 0);
  g_assert_cmpint(ferry_pake_verify(p.a, p.confirm_b, sizeof p.confirm_b), ==, FERRY_ERR_STATE);
  g_assert_cmpint(ferry_pake_session_key(p.a, k), ==, 0);
  pair_clear(&p);

  /* Arguments outside the limits. */
  char long_pw[FERRY_PAKE_MAX_PASSWORD + 1];
  char long_ci[FERRY_PAKE_MAX_CHANNEL_ID + 2];
  uint8_t long_sid[FERRY_PAKE_MAX_SID + 1] = {0};
  memset(long_pw, 'a', sizeof long_pw);
  memset(long_ci, 'c', sizeof long_ci);
  long_ci[sizeof long_ci - 1] = '\0';
  g_assert_null(ferry_pake_new(3, PW, strlen(PW), sid1, 16, CI));
  g_assert_null(ferry_pake_new(FERRY_PAKE_INITIATOR, PW, 0, sid1, 16, CI));
  g_assert_null(ferry_pake_new(FERRY_PAKE_INITIATOR, NULL, 3, sid1, 16, CI));
  g_assert_null(ferry_pake_new(FERRY_PAKE_INITIATOR, long_pw, sizeof long_pw, sid1, 16, CI));
  g_assert_null(
      ferry_pake_new(FERRY_PAKE_INITIATOR, PW, strlen(PW), long_sid, sizeof long_sid, CI));
  g_assert_null(ferry_pake_new(FERRY_PAKE_INITIATOR, PW, strlen(PW), NULL, 4, CI));
  g_assert_null(ferry_pake_new(FERRY_PAKE_INITIATOR, PW, strlen(PW), sid1, 16, long_ci));
  a = ferry_pake_new(FERRY_PAKE_INITIATOR, long_pw, FERRY_PAKE_MAX_PASSWORD, NULL, 0, NULL);
  g_assert_nonnull(a);
  ferry_pake_free(a);
  ferry_pake_free(NULL);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_assert_cmpint(sodium_init(), >=, 0);
  g_test_add_func("/core/pake/draft-test-vectors", test_draft_vectors);
  g_test_add_func("/core/pake/known-answers", test_known_answers);
  g_test_add_func("/core/pake/generator-long-password", test_generator_long_password);
  g_test_add_func("/core/pake/msg/decode", test_msg_decode);
  g_test_add_func("/core/pake/same-password", test_same_password);
  g_test_add_func("/core/pake/order-independent", test_order_independent);
  g_test_add_func("/core/pake/wrong-password-fails-both", test_wrong_password);
  g_test_add_func("/core/pake/different-sid-or-channel-fails", test_different_sid_or_channel);
  g_test_add_func("/core/pake/tampered-share", test_tampered_share);
  g_test_add_func("/core/pake/tampered-confirm", test_tampered_confirm);
  g_test_add_func("/core/pake/replay-from-other-session", test_replay_from_other_session);
  g_test_add_func("/core/pake/reflection", test_reflection);
  g_test_add_func("/core/pake/bad-points", test_bad_points);
  g_test_add_func("/core/pake/state", test_state);
  return g_test_run();
}
