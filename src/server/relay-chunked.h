/* A streaming decoder of HTTP/1.1 chunked request bodies (RFC 9112 §7.1)
 * for the HTTP relay, which reads upload bodies off the socket itself. It
 * hands on the payload as it arrives and stops at the end of the message
 * (the last chunk and its trailers), so bytes after it are left unread.
 * Pure: no I/O, so it can be fed any bytes (and fuzzed). */
#ifndef FERRY_SERVER_RELAY_CHUNKED_H
#define FERRY_SERVER_RELAY_CHUNKED_H

#include <glib.h>

#include <ferry/error.h>

/* Longest chunk-size line (size and extensions) and trailer section read. */
#define FERRY_CHUNKED_MAX_LINE     4096
#define FERRY_CHUNKED_MAX_TRAILERS 8192

/* Receives payload bytes, in order; the pointer is into the fed bytes and
 * valid only during the call. */
typedef void (*FerryChunkedData)(const guint8 *data, gsize len, gpointer user_data);

typedef struct {
  int state;
  guint64 left; /* payload bytes left in the current chunk */
  gsize line;   /* bytes of the current size line or trailer section */
  int digits;   /* hex digits of the current size */
  int error;    /* 0, or the code the decoder failed with */
} FerryChunked;

/* Readies dec for a new body (the caller embeds the struct; nothing to
 * clear). */
void ferry_chunked_init(FerryChunked *dec);

/* Decodes the next len bytes of the body, calling data for the payload in
 * them. Returns how many bytes it consumed — all of them, or fewer once
 * the body has ended — or FERRY_ERR_INVALID for bytes that are not chunked
 * framing (a bad size, a missing CRLF), FERRY_ERR_TOO_LONG for a size
 * line or trailer section over its limit or a size over 2^60. After an
 * error the decoder stays failed. */
gssize ferry_chunked_feed(FerryChunked *dec, const guint8 *in, gsize len, FerryChunkedData data,
                          gpointer user_data);

/* TRUE once the last chunk and its trailers have been read. */
gboolean ferry_chunked_done(const FerryChunked *dec);

#endif
