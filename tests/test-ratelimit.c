/* Token buckets behind the server's rate limits, on a fake clock. */
#include "server/ratelimit.h"

static void
test_burst_then_refuse(void)
{
  FerryBucket b = {0};
  gint64 t = 1000000;
  for (int i = 0; i < 5; i++)
    g_assert_true(ferry_bucket_take(&b, 1.0, 5, t));
  g_assert_false(ferry_bucket_take(&b, 1.0, 5, t));
  g_assert_cmpint(ferry_bucket_retry_after(&b, 1.0), ==, 1);
}

static void
test_refills_at_rate(void)
{
  FerryBucket b = {0};
  gint64 t = 1000000;
  for (int i = 0; i < 3; i++)
    g_assert_true(ferry_bucket_take(&b, 0.5, 3, t));
  g_assert_false(ferry_bucket_take(&b, 0.5, 3, t + 1000000)); /* 0.5 token */
  g_assert_true(ferry_bucket_take(&b, 0.5, 3, t + 2000001));  /* 1 token */
  g_assert_false(ferry_bucket_take(&b, 0.5, 3, t + 2000002));
  g_assert_false(ferry_bucket_is_full(&b, 0.5, 3, t + 3000000));
  g_assert_true(ferry_bucket_is_full(&b, 0.5, 3, t + 9000000));
}

static void
test_never_exceeds_burst(void)
{
  FerryBucket b = {0};
  g_assert_true(ferry_bucket_take(&b, 10, 2, 1));
  /* an hour later the bucket holds 2, not 36000 */
  gint64 t = 3600LL * G_USEC_PER_SEC;
  g_assert_true(ferry_bucket_take(&b, 10, 2, t));
  g_assert_true(ferry_bucket_take(&b, 10, 2, t));
  g_assert_false(ferry_bucket_take(&b, 10, 2, t));
}

static void
test_zero_rate_disables(void)
{
  FerryBucket b = {0};
  for (int i = 0; i < 1000; i++)
    g_assert_true(ferry_bucket_take(&b, 0, 0, 5));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/server/ratelimit/burst-then-refuse", test_burst_then_refuse);
  g_test_add_func("/server/ratelimit/refills-at-rate", test_refills_at_rate);
  g_test_add_func("/server/ratelimit/never-exceeds-burst", test_never_exceeds_burst);
  g_test_add_func("/server/ratelimit/zero-rate-disables", test_zero_rate_disables);
  return g_test_run();
}
