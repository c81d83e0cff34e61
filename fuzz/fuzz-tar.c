/* The tar reader (src/core/tar.h) fed any stream: it reports only its
 * documented error codes, always with a message; every entry it accepts
 * has a path ferry_path_validate() accepts (after the directory's '/'),
 * a mode <= 07777 and exactly its size in data; and the same entries,
 * bytes and verdict come out however the stream is cut (the first input
 * byte seeds the cut sizes). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/safepath.h"
#include "core/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
  if (!ok)
    abort();
}

typedef struct {
  GChecksum *sum; /* of every entry and byte reported */
  gboolean in_entry;
  guint64 size, got;
} Seen;

static gboolean
on_entry(const FerryTarEntry *e, gpointer user, GError **error)
{
  Seen *s = user;
  gsize len = strlen(e->path);
  check(!s->in_entry && len > 0);
  gboolean slash = e->path[len - 1] == '/';
  check(slash == (e->type == FERRY_TAR_DIR));
  check(ferry_path_validate(e->path, slash ? len - 1 : len, NULL) == 0);
  check(e->mode <= 07777);
  check(e->type == FERRY_TAR_FILE || e->size == 0);
  check((e->link != NULL) == (e->type == FERRY_TAR_SYMLINK));
  if (e->link != NULL)
    check(e->link[0] != '\0' && strlen(e->link) <= FERRY_PATH_MAX);
  char *line = g_strdup_printf("%d %s %" G_GUINT64_FORMAT " %o %" G_GINT64_FORMAT " %s\n", e->type,
                               e->path, e->size, e->mode, e->mtime, e->link ? e->link : "");
  g_checksum_update(s->sum, (const guchar *)line, -1);
  g_free(line);
  s->in_entry = TRUE;
  s->size = e->size;
  s->got = 0;
  (void)error;
  return TRUE;
}

static gboolean
on_data(const guint8 *data, gsize len, gpointer user, GError **error)
{
  Seen *s = user;
  check(s->in_entry && len > 0 && s->got + len <= s->size);
  s->got += len;
  g_checksum_update(s->sum, data, (gssize)len);
  (void)error;
  return TRUE;
}

static gboolean
on_entry_end(gpointer user, GError **error)
{
  Seen *s = user;
  check(s->in_entry && s->got == s->size);
  s->in_entry = FALSE;
  g_checksum_update(s->sum, (const guchar *)"end\n", -1);
  (void)error;
  return TRUE;
}

/* Reads the stream in pieces (seed 0: all at once); returns the error
 * code (0 when accepted) and the digest of what was reported. */
static int
run(const guint8 *tar, size_t len, guint seed, char **digest)
{
  static const FerryTarCallbacks cb = {on_entry, on_data, on_entry_end};
  Seen s = {g_checksum_new(G_CHECKSUM_SHA256), FALSE, 0, 0};
  FerryTarReader *r = ferry_tar_reader_new(&cb, &s);
  GError *error = NULL;
  gboolean ok = TRUE;
  guint32 x = seed * 2654435761u + 1;
  for (size_t off = 0; ok && off < len;) {
    x = x * 1103515245u + 12345u;
    size_t n = seed == 0 ? len : 1 + (x >> 16) % (seed % 4 == 0 ? 3 : 700);
    n = MIN(n, len - off);
    ok = ferry_tar_reader_feed(r, tar + off, n, &error);
    off += n;
  }
  if (ok)
    ok = ferry_tar_reader_finish(r, &error);
  int code = 0;
  if (!ok) {
    check(error != NULL && error->domain == FERRY_ERROR && error->message[0] != '\0');
    code = error->code;
    check(code == FERRY_ERROR_INVALID || code == FERRY_ERROR_TOO_LONG ||
          code == FERRY_ERROR_UNSAFE_PATH || code == FERRY_ERROR_CORRUPT ||
          code == FERRY_ERROR_EXISTS || code == FERRY_ERROR_AMBIGUOUS);
    g_error_free(error);
  } else {
    check(error == NULL && !s.in_entry);
  }
  ferry_tar_reader_free(r);
  *digest = g_strdup(g_checksum_get_string(s.sum));
  g_checksum_free(s.sum);
  return code;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  guint seed = (guint)data[0] + 1;
  char *a, *b;
  int whole = run(data + 1, size - 1, 0, &a);
  int pieces = run(data + 1, size - 1, seed, &b);
  check(whole == pieces);
  check(strcmp(a, b) == 0);
  g_free(a);
  g_free(b);
  return 0;
}
