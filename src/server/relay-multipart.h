/* A streaming reader of multipart/form-data request bodies (RFC 7578) for
 * the HTTP relay: it finds the first part that carries a file (a
 * Content-Disposition with a filename) and hands that part's bytes on as
 * they arrive, holding back only what could be the start of a boundary.
 * Pure: no I/O, so it can be fed any bytes (and fuzzed). */
#ifndef FERRY_SERVER_RELAY_MULTIPART_H
#define FERRY_SERVER_RELAY_MULTIPART_H

#include <glib.h>

#include <ferry/error.h>

/* Longest boundary RFC 2046 allows, and the most part-header bytes read. */
#define FERRY_MULTIPART_MAX_BOUNDARY 70
#define FERRY_MULTIPART_MAX_HEADERS  8192

typedef struct _FerryMultipart FerryMultipart;

/* Receives bytes of the file part, in order; the pointer is valid only
 * during the call. */
typedef void (*FerryMultipartData)(const guint8 *data, gsize len, gpointer user_data);

/* A reader for the boundary parameter of the request's Content-Type.
 * NULL if boundary is empty or longer than FERRY_MULTIPART_MAX_BOUNDARY.
 * Free with ferry_multipart_free(). */
FerryMultipart *ferry_multipart_new(const char *boundary, FerryMultipartData data,
                                    gpointer user_data);
void ferry_multipart_free(FerryMultipart *mp);

/* Feeds the next len bytes of the body. Returns 0, or FERRY_ERR_TOO_LONG
 * when a part's headers exceed FERRY_MULTIPART_MAX_HEADERS, or
 * FERRY_ERR_INVALID for a body that is not multipart with this boundary.
 * After an error the reader stays failed. */
int ferry_multipart_feed(FerryMultipart *mp, const guint8 *data, gsize len);

/* The body has ended. Returns 0 when a file part was read to its closing
 * boundary, FERRY_ERR_NOT_FOUND when the body held no file part, and
 * FERRY_ERR_INVALID when it ended inside one (or the reader had failed). */
int ferry_multipart_finish(FerryMultipart *mp);

/* TRUE once the file part has ended (the rest of the body is ignored). */
gboolean ferry_multipart_file_done(const FerryMultipart *mp);

#endif
