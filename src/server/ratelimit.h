/* Token buckets for the server's rate limits. A bucket holds at most
 * `burst` tokens and refills at `rate` tokens a second; an empty bucket
 * refuses. The caller embeds the struct; zero-initialised means full. */
#ifndef FERRY_SERVER_RATELIMIT_H
#define FERRY_SERVER_RATELIMIT_H

#include <glib.h>

typedef struct {
  double tokens;
  gint64 last_us; /* 0: never used, full */
} FerryBucket;

/* Takes one token at monotonic time now_us; TRUE if there was one. A rate
 * of 0 disables the limit (always TRUE). */
gboolean ferry_bucket_take(FerryBucket *b, double rate, double burst, gint64 now_us);

/* Whether the bucket has refilled completely by now_us, so its owner can be
 * forgotten without changing any future decision. */
gboolean ferry_bucket_is_full(const FerryBucket *b, double rate, double burst, gint64 now_us);

/* Seconds until the next token, for a Retry-After hint (at least 1). */
int ferry_bucket_retry_after(const FerryBucket *b, double rate);

#endif
