/* The FERRY_ERROR domain and the text for each FerryErr code. */
#include "ferry-config.h"

#include <ferry/ferry.h>

G_DEFINE_QUARK(ferry - error - quark, ferry_error)

const char *
ferry_version(void)
{
  return FERRY_VERSION;
}

const char *
ferry_strerror(int code)
{
  switch ((FerryErr)code) {
  case FERRY_ERR_INVALID:
    return "malformed input";
  case FERRY_ERR_TOO_LONG:
    return "input too long";
  case FERRY_ERR_UNSAFE_PATH:
    return "unsafe path";
  case FERRY_ERR_CORRUPT:
    return "data corrupt (checksum mismatch)";
  case FERRY_ERR_VERSION:
    return "unsupported version";
  case FERRY_ERR_AUTH:
    return "authentication failed";
  case FERRY_ERR_CRYPTO:
    return "cryptographic operation failed";
  case FERRY_ERR_IO:
    return "input/output error";
  case FERRY_ERR_NOT_FOUND:
    return "not found";
  case FERRY_ERR_EXISTS:
    return "already exists";
  case FERRY_ERR_STATE:
    return "operation not valid in this state";
  case FERRY_ERR_AMBIGUOUS:
    return "ambiguous input";
  }
  return code == 0 ? "success" : "unknown error";
}

gboolean
ferry_set_error(GError **error, int code, const char *fmt, ...)
{
  va_list ap;
  char *msg;
  int gcode = code < 0 ? -code : FERRY_ERROR_FAILED;

  if (error == NULL)
    return FALSE;
  va_start(ap, fmt);
  msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error_literal(error, FERRY_ERROR, gcode, msg);
  g_free(msg);
  return FALSE;
}
