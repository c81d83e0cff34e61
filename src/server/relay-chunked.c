/* Chunked body decoder (see relay-chunked.h).
 *
 * A body is chunks "SIZE[;ext]\r\nDATA\r\n", then "0[;ext]\r\n", then
 * trailer lines and an empty line. Line ends must be CRLF: a bare LF is
 * refused rather than guessed at, since two readers that split a body
 * differently is how request smuggling starts. */
#include "server/relay-chunked.h"

enum {
  CH_SIZE,    /* hex digits of a chunk size */
  CH_EXT,     /* after the size: extensions up to CR */
  CH_SIZE_LF, /* the LF after a size line's CR */
  CH_DATA,    /* payload */
  CH_DATA_CR, /* the CRLF after a chunk's payload */
  CH_DATA_LF,
  CH_TRAILER,  /* at the start of a trailer line (or the final empty one) */
  CH_TLINE,    /* inside a trailer line, up to CR */
  CH_TLINE_LF, /* the LF ending a trailer line */
  CH_END_LF,   /* the LF of the final empty line */
  CH_DONE,
  CH_FAILED,
};

#define MAX_SIZE_DIGITS 15 /* 2^60: far beyond any upload, far from overflow */

void
ferry_chunked_init(FerryChunked *dec)
{
  dec->state = CH_SIZE;
  dec->left = 0;
  dec->line = 0;
  dec->digits = 0;
  dec->error = 0;
}

gboolean
ferry_chunked_done(const FerryChunked *dec)
{
  return dec->state == CH_DONE;
}

static gssize
fail(FerryChunked *dec, int code)
{
  dec->state = CH_FAILED;
  dec->error = code;
  return code;
}

gssize
ferry_chunked_feed(FerryChunked *dec, const guint8 *in, gsize len, FerryChunkedData data,
                   gpointer user_data)
{
  gsize i = 0;

  if (dec->state == CH_FAILED)
    return dec->error;
  while (i < len && dec->state != CH_DONE) {
    guint8 c = in[i];
    switch (dec->state) {
    case CH_SIZE:
      if (g_ascii_isxdigit(c)) {
        if (++dec->digits > MAX_SIZE_DIGITS)
          return fail(dec, FERRY_ERR_TOO_LONG);
        dec->left = dec->left * 16 + (guint64)g_ascii_xdigit_value((char)c);
      } else if (dec->digits == 0) {
        return fail(dec, FERRY_ERR_INVALID);
      } else if (c == '\r') {
        dec->state = CH_SIZE_LF;
      } else if (c == ';' || c == ' ' || c == '\t') {
        dec->state = CH_EXT;
      } else {
        return fail(dec, FERRY_ERR_INVALID);
      }
      if (++dec->line > FERRY_CHUNKED_MAX_LINE)
        return fail(dec, FERRY_ERR_TOO_LONG);
      i++;
      break;
    case CH_EXT:
      if (c == '\r')
        dec->state = CH_SIZE_LF;
      else if (c == '\n' || c == 0)
        return fail(dec, FERRY_ERR_INVALID);
      if (++dec->line > FERRY_CHUNKED_MAX_LINE)
        return fail(dec, FERRY_ERR_TOO_LONG);
      i++;
      break;
    case CH_SIZE_LF:
      if (c != '\n')
        return fail(dec, FERRY_ERR_INVALID);
      i++;
      dec->line = 0;
      dec->digits = 0;
      dec->state = dec->left > 0 ? CH_DATA : CH_TRAILER;
      break;
    case CH_DATA: {
      gsize n = (gsize)MIN(dec->left, (guint64)(len - i));
      data(in + i, n, user_data);
      i += n;
      dec->left -= n;
      if (dec->left == 0)
        dec->state = CH_DATA_CR;
      break;
    }
    case CH_DATA_CR:
      if (c != '\r')
        return fail(dec, FERRY_ERR_INVALID);
      dec->state = CH_DATA_LF;
      i++;
      break;
    case CH_DATA_LF:
      if (c != '\n')
        return fail(dec, FERRY_ERR_INVALID);
      dec->state = CH_SIZE;
      i++;
      break;
    case CH_TRAILER:
      dec->state = c == '\r' ? CH_END_LF : CH_TLINE;
      if (c == '\n' || c == ':' || c == ' ' || c == '\t')
        return fail(dec, FERRY_ERR_INVALID);
      if (++dec->line > FERRY_CHUNKED_MAX_TRAILERS)
        return fail(dec, FERRY_ERR_TOO_LONG);
      i++;
      break;
    case CH_TLINE:
      if (c == '\r')
        dec->state = CH_TLINE_LF;
      else if (c == '\n' || c == 0)
        return fail(dec, FERRY_ERR_INVALID);
      if (++dec->line > FERRY_CHUNKED_MAX_TRAILERS)
        return fail(dec, FERRY_ERR_TOO_LONG);
      i++;
      break;
    case CH_TLINE_LF:
    case CH_END_LF:
      if (c != '\n')
        return fail(dec, FERRY_ERR_INVALID);
      dec->state = dec->state == CH_END_LF ? CH_DONE : CH_TRAILER;
      i++;
      break;
    default:
      return fail(dec, FERRY_ERR_INVALID);
    }
  }
  return (gssize)i;
}
