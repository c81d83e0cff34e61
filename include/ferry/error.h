/* Errors shared by every layer of ferry.
 *
 * Pure decoders (src/core) return 0 or a negative FerryErr code, so a
 * fuzzer needs nothing but the return value. Functions that touch GIO
 * report a GError in the FERRY_ERROR domain whose code is the matching
 * positive FerryError value (FERRY_ERROR_x == -FERRY_ERR_x). */
#ifndef FERRY_ERROR_H
#define FERRY_ERROR_H

#include <glib.h>

#if defined(FERRY_COMPILATION)
#define FERRY_API __attribute__((visibility("default")))
#else
#define FERRY_API
#endif

G_BEGIN_DECLS

typedef enum {
  FERRY_ERR_INVALID = -1,     /* malformed input: bad syntax, bad field */
  FERRY_ERR_TOO_LONG = -2,    /* input over a documented size limit */
  FERRY_ERR_UNSAFE_PATH = -3, /* a path that could escape its root */
  FERRY_ERR_CORRUPT = -4,     /* checksum or hash mismatch */
  FERRY_ERR_VERSION = -5,     /* a format or protocol version we do not speak */
  FERRY_ERR_AUTH = -6,        /* authentication failed (wrong code, bad MAC) */
  FERRY_ERR_CRYPTO = -7,      /* a crypto primitive refused its input */
  FERRY_ERR_IO = -8,          /* the operating system said no */
  FERRY_ERR_NOT_FOUND = -9,   /* no such thing */
  FERRY_ERR_EXISTS = -10,     /* would overwrite something that exists */
  FERRY_ERR_STATE = -11,      /* called at the wrong moment */
  FERRY_ERR_AMBIGUOUS = -12,  /* input that could mean more than one thing */
} FerryErr;

typedef enum {
  FERRY_ERROR_FAILED = 0,
  FERRY_ERROR_INVALID = -FERRY_ERR_INVALID,
  FERRY_ERROR_TOO_LONG = -FERRY_ERR_TOO_LONG,
  FERRY_ERROR_UNSAFE_PATH = -FERRY_ERR_UNSAFE_PATH,
  FERRY_ERROR_CORRUPT = -FERRY_ERR_CORRUPT,
  FERRY_ERROR_VERSION = -FERRY_ERR_VERSION,
  FERRY_ERROR_AUTH = -FERRY_ERR_AUTH,
  FERRY_ERROR_CRYPTO = -FERRY_ERR_CRYPTO,
  FERRY_ERROR_IO = -FERRY_ERR_IO,
  FERRY_ERROR_NOT_FOUND = -FERRY_ERR_NOT_FOUND,
  FERRY_ERROR_EXISTS = -FERRY_ERR_EXISTS,
  FERRY_ERROR_STATE = -FERRY_ERR_STATE,
  FERRY_ERROR_AMBIGUOUS = -FERRY_ERR_AMBIGUOUS,
} FerryError;

#define FERRY_ERROR (ferry_error_quark())
FERRY_API GQuark ferry_error_quark(void);

/* A short English description of a FerryErr (negative) code; static. */
FERRY_API const char *ferry_strerror(int code);

/* Sets *error (if error is not NULL) from a negative FerryErr code, with
 * a printf-style message. Returns FALSE so callers can `return
 * ferry_set_error(...)`. */
FERRY_API gboolean ferry_set_error(GError **error, int code, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

G_END_DECLS

#endif
