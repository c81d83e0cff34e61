/* Token buckets (see ratelimit.h). */
#include <math.h>

#include "server/ratelimit.h"

static double
level(const FerryBucket *b, double rate, double burst, gint64 now_us)
{
  if (b->last_us == 0)
    return burst;
  double t = b->tokens + (double)(now_us - b->last_us) / 1e6 * rate;
  return t > burst ? burst : t;
}

gboolean
ferry_bucket_take(FerryBucket *b, double rate, double burst, gint64 now_us)
{
  if (rate <= 0)
    return TRUE;
  if (burst < 1)
    burst = 1;
  double t = level(b, rate, burst, now_us);
  b->last_us = now_us;
  if (t < 1) {
    b->tokens = t;
    return FALSE;
  }
  b->tokens = t - 1;
  return TRUE;
}

gboolean
ferry_bucket_is_full(const FerryBucket *b, double rate, double burst, gint64 now_us)
{
  if (rate <= 0 || b->last_us == 0)
    return TRUE;
  return level(b, rate, burst < 1 ? 1 : burst, now_us) >= (burst < 1 ? 1 : burst);
}

int
ferry_bucket_retry_after(const FerryBucket *b, double rate)
{
  if (rate <= 0)
    return 1;
  double wait = (1 - b->tokens) / rate;
  return wait < 1 ? 1 : (int)ceil(wait);
}
