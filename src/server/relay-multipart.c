/* Streaming multipart/form-data reader (see relay-multipart.h).
 *
 * Every delimiter is "\r\n--BOUNDARY"; the body is read as if it began
 * with "\r\n", so the first delimiter (which has no CRLF before it) needs
 * no special case. Bytes that might be the start of a delimiter are kept
 * in `pending` until the next feed decides; everything else of the file
 * part goes straight to the callback. */
#include <string.h>

#include "server/relay-multipart.h"

typedef enum {
  MP_PREAMBLE, /* before the first delimiter */
  MP_AFTER,    /* just after a delimiter: "\r\n" (a part) or "--" (the end) */
  MP_HEADERS,  /* a part's headers, up to the empty line */
  MP_SKIP,     /* a part that is not the file */
  MP_FILE,     /* the file part */
  MP_END,      /* the file has ended or the closing delimiter was seen */
  MP_FAILED,
} MpState;

struct _FerryMultipart {
  MpState state;
  char delim[FERRY_MULTIPART_MAX_BOUNDARY + 5]; /* "\r\n--" + boundary */
  gsize delim_len;
  GByteArray *pending;
  gboolean saw_file;
  gboolean file_done;
  FerryMultipartData data;
  gpointer user_data;
};

FerryMultipart *
ferry_multipart_new(const char *boundary, FerryMultipartData data, gpointer user_data)
{
  gsize n = boundary != NULL ? strlen(boundary) : 0;
  if (n == 0 || n > FERRY_MULTIPART_MAX_BOUNDARY)
    return NULL;
  FerryMultipart *mp = g_new0(FerryMultipart, 1);
  memcpy(mp->delim, "\r\n--", 4);
  memcpy(mp->delim + 4, boundary, n);
  mp->delim_len = n + 4;
  mp->pending = g_byte_array_new();
  g_byte_array_append(mp->pending, (const guint8 *)"\r\n", 2);
  mp->data = data;
  mp->user_data = user_data;
  return mp;
}

void
ferry_multipart_free(FerryMultipart *mp)
{
  if (mp == NULL)
    return;
  g_byte_array_unref(mp->pending);
  g_free(mp);
}

/* Does this header block's Content-Disposition name a file? Header names
 * are case-insensitive; "filename=" and "filename*=" both count. */
static gboolean
headers_have_filename(const char *h, gsize len)
{
  gsize i = 0;
  while (i < len) {
    const char *line = h + i;
    const char *eol = memchr(line, '\n', len - i);
    gsize line_len = eol != NULL ? (gsize)(eol - line) : len - i;
    static const char name[] = "content-disposition:";
    if (line_len > sizeof name - 1 && g_ascii_strncasecmp(line, name, sizeof name - 1) == 0) {
      char *value = g_ascii_strdown(line + sizeof name - 1, (gssize)(line_len - (sizeof name - 1)));
      gboolean found = strstr(value, "filename") != NULL;
      g_free(value);
      if (found)
        return TRUE;
    }
    i += line_len + 1;
  }
  return FALSE;
}

/* Processes what is in pending; returns FALSE when it needs more bytes. */
static gboolean
step(FerryMultipart *mp, int *err)
{
  guint8 *buf = mp->pending->data;
  gsize len = mp->pending->len;

  switch (mp->state) {
  case MP_PREAMBLE:
  case MP_SKIP:
  case MP_FILE: {
    const guint8 *hit = memmem(buf, len, mp->delim, mp->delim_len);
    gsize keep = 0, upto;
    if (hit != NULL) {
      upto = (gsize)(hit - buf);
    } else {
      /* Hold back only a tail that could begin a delimiter. */
      keep = MIN(len, mp->delim_len - 1);
      while (keep > 0 && memcmp(buf + len - keep, mp->delim, keep) != 0)
        keep--;
      upto = len - keep;
    }
    if (mp->state == MP_FILE && upto > 0)
      mp->data(buf, upto, mp->user_data);
    if (hit == NULL) {
      g_byte_array_remove_range(mp->pending, 0, (guint)upto);
      return FALSE;
    }
    g_byte_array_remove_range(mp->pending, 0, (guint)(upto + mp->delim_len));
    if (mp->state == MP_FILE) {
      mp->file_done = TRUE;
      mp->state = MP_END;
    } else {
      mp->state = MP_AFTER;
    }
    return TRUE;
  }
  case MP_AFTER:
    if (len < 2)
      return FALSE;
    if (buf[0] == '-' && buf[1] == '-') {
      mp->state = MP_END;
    } else {
      /* Transport padding (spaces, tabs) may sit before the CRLF. */
      gsize i = 0;
      while (i < len && (buf[i] == ' ' || buf[i] == '\t'))
        i++;
      if (i + 2 > len)
        return FALSE;
      if (buf[i] != '\r' || buf[i + 1] != '\n') {
        *err = FERRY_ERR_INVALID;
        return FALSE;
      }
      g_byte_array_remove_range(mp->pending, 0, (guint)(i + 2));
      mp->state = MP_HEADERS;
    }
    return TRUE;
  case MP_HEADERS: {
    const guint8 *end = memmem(buf, len, "\r\n\r\n", 4);
    /* A part with no headers at all starts with the empty line. */
    gsize hlen;
    if (len >= 2 && buf[0] == '\r' && buf[1] == '\n')
      end = buf, hlen = 0;
    else if (end != NULL)
      hlen = (gsize)(end - buf) + 2;
    else
      hlen = 0;
    if (end == NULL) {
      if (len > FERRY_MULTIPART_MAX_HEADERS)
        *err = FERRY_ERR_TOO_LONG;
      return FALSE;
    }
    if (hlen > FERRY_MULTIPART_MAX_HEADERS) {
      *err = FERRY_ERR_TOO_LONG;
      return FALSE;
    }
    gboolean file = !mp->saw_file && headers_have_filename((const char *)buf, hlen);
    g_byte_array_remove_range(mp->pending, 0, (guint)(hlen + 2));
    if (file)
      mp->saw_file = TRUE;
    mp->state = file ? MP_FILE : MP_SKIP;
    return TRUE;
  }
  case MP_END:
    g_byte_array_set_size(mp->pending, 0);
    return FALSE;
  case MP_FAILED:
    return FALSE;
  }
  return FALSE;
}

int
ferry_multipart_feed(FerryMultipart *mp, const guint8 *data, gsize len)
{
  int err = 0;

  if (mp->state == MP_FAILED)
    return FERRY_ERR_INVALID;
  if (mp->state == MP_END)
    return 0;
  g_byte_array_append(mp->pending, data, (guint)len);
  while (step(mp, &err))
    ;
  if (err != 0) {
    mp->state = MP_FAILED;
    g_byte_array_set_size(mp->pending, 0);
  }
  return err;
}

int
ferry_multipart_finish(FerryMultipart *mp)
{
  if (mp->file_done)
    return 0;
  if (mp->state == MP_FAILED || mp->saw_file)
    return FERRY_ERR_INVALID;
  return FERRY_ERR_NOT_FOUND;
}

gboolean
ferry_multipart_file_done(const FerryMultipart *mp)
{
  return mp->file_done;
}
