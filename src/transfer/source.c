/* FerrySource: the sender's scanned tree, shared by every receiver. */
#include <stdlib.h>
#include <string.h>

#include "transfer/transfer-private.h"

void
ferry_send_options_init(FerrySendOptions *o)
{
  memset(o, 0, sizeof *o);
}

static void
entry_free(gpointer p)
{
  FerrySourceEntry *e = p;
  g_free(e->path);
  g_free(e->link_target);
  g_free(e);
}

static void
issue_clear(gpointer p)
{
  FerryScanIssue *i = p;
  g_free((char *)i->path);
  g_free((char *)i->reason);
}

typedef struct {
  gboolean skip;
  GError **error;
} IssueCtx;

static gboolean
on_issue(const FerryScanIssue *issue, gpointer data)
{
  IssueCtx *ctx = data;
  if (ctx->skip)
    return TRUE;
  /* The scanner words its reasons for the skipping case; here nothing is
   * skipped, the send stops. */
  char *reason = g_strdup(issue->reason);
  static const char *const tails[] = {"; its contents are skipped", "; skipped",
                                      ", so it is skipped"};
  for (guint i = 0; i < G_N_ELEMENTS(tails); i++) {
    char *at = strstr(reason, tails[i]);
    if (at != NULL)
      *at = '\0';
  }
  ferry_set_error(ctx->error, issue->code,
                  "cannot send '%s': %s (fix that, or use --skip-errors to send the rest)",
                  issue->path, reason);
  g_free(reason);
  return FALSE;
}

/* The transfer id names the same paths sent with the same chunking, so a
 * sender started again with the same command offers the same transfer and
 * its receivers resume: SHA-256("ferry-transfer-v1" ‖ 0 ‖ u32be chunk size
 * ‖ each argument's absolute path ‖ 0). */
static void
make_id(FerrySource *src, const char *const *paths)
{
  gnutls_hash_hd_t h;
  guint8 cs[4] = {src->chunk_size >> 24, src->chunk_size >> 16, src->chunk_size >> 8,
                  src->chunk_size};
  gnutls_hash_init(&h, GNUTLS_DIG_SHA256);
  gnutls_hash(h, "ferry-transfer-v1", 18);
  gnutls_hash(h, cs, 4);
  for (guint i = 0; paths[i] != NULL; i++) {
    char *abs = realpath(paths[i], NULL);
    const char *p = abs != NULL ? abs : paths[i];
    gnutls_hash(h, p, strlen(p) + 1);
    free(abs);
  }
  gnutls_hash_deinit(h, src->transfer_id);
  ferry_transfer_id_to_hex(src->transfer_id, src->id_hex);
}

FerrySource *
ferry_source_new(const char *const *paths, const FerrySendOptions *options, GError **error)
{
  FerrySendOptions defaults;
  if (options == NULL) {
    ferry_send_options_init(&defaults);
    options = &defaults;
  }
  if (options->chunk_size != 0 && !ferry_chunk_size_is_valid(options->chunk_size)) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "chunk size %u is not a power of two between 64 KiB and 64 MiB",
                    options->chunk_size);
    return NULL;
  }
  if (options->streams > FERRY_TRANSFER_MAX_STREAMS) {
    ferry_set_error(error, FERRY_ERR_INVALID, "%u data streams is too many (at most %d)",
                    options->streams, FERRY_TRANSFER_MAX_STREAMS);
    return NULL;
  }
  FerryScanner *scanner = ferry_scanner_new(paths, error);
  if (scanner == NULL)
    return NULL;

  FerrySource *src = g_new0(FerrySource, 1);
  src->chunk_size = options->chunk_size != 0 ? options->chunk_size : FERRY_CHUNK_SIZE_DEFAULT;
  src->streams = options->streams != 0 ? options->streams : FERRY_TRANSFER_DEFAULT_STREAMS;
  src->skip_errors = options->skip_errors;
  src->limit_rate = options->limit_rate;
  src->entries = g_ptr_array_new_with_free_func(entry_free);
  src->dirs = g_ptr_array_new_with_free_func(g_free);
  src->root_names = g_ptr_array_new_with_free_func(g_free);
  src->issues = g_array_new(FALSE, TRUE, sizeof(FerryScanIssue));
  g_array_set_clear_func(src->issues, issue_clear);
  make_id(src, paths);

  GError *scan_error = NULL;
  IssueCtx ctx = {options->skip_errors, &scan_error};
  ferry_scanner_set_issue_func(scanner, on_issue, &ctx);
  const FerryEntry *e;
  int rc;
  const char *last_dir = NULL;
  while ((rc = ferry_scanner_next(scanner, &e)) == 1) {
    FerrySourceEntry *se = g_new0(FerrySourceEntry, 1);
    se->type = e->type;
    se->mode = e->mode;
    se->mtime_ns = e->mtime_ns;
    se->size = e->size;
    se->path = g_strdup(e->path);
    se->link_target = g_strdup(e->link_target);
    if (last_dir == NULL || strcmp(last_dir, e->source_dir) != 0) {
      g_ptr_array_add(src->dirs, g_strdup(e->source_dir));
      last_dir = g_ptr_array_index(src->dirs, src->dirs->len - 1);
    }
    se->source_dir = last_dir;
    if (e->depth == 0)
      g_ptr_array_add(src->root_names, g_strdup(e->path));
    switch (e->type) {
    case FERRY_ENTRY_FILE:
      src->files++;
      src->bytes += e->size;
      break;
    case FERRY_ENTRY_DIR:
      src->n_dirs++;
      break;
    case FERRY_ENTRY_SYMLINK:
      src->symlinks++;
      break;
    }
    g_ptr_array_add(src->entries, se);
  }
  if (rc < 0) {
    if (scan_error != NULL)
      g_propagate_error(error, scan_error);
    else
      ferry_set_error(error, rc, "the scan stopped");
    ferry_scanner_free(scanner);
    ferry_source_free(src);
    return NULL;
  }
  guint n;
  const FerryScanIssue *issues = ferry_scanner_issues(scanner, &n);
  for (guint i = 0; i < n; i++) {
    FerryScanIssue copy = issues[i];
    copy.path = g_strdup(issues[i].path);
    copy.reason = g_strdup(issues[i].reason);
    g_array_append_val(src->issues, copy);
  }
  ferry_scanner_free(scanner);
  return src;
}

void
ferry_source_free(FerrySource *src)
{
  if (src == NULL)
    return;
  g_ptr_array_unref(src->entries);
  g_ptr_array_unref(src->dirs);
  g_ptr_array_unref(src->root_names);
  g_array_unref(src->issues);
  g_free(src);
}

void
ferry_source_get_summary(FerrySource *src, FerryTransferSummary *s)
{
  memset(s, 0, sizeof *s);
  memcpy(s->id, src->id_hex, sizeof s->id);
  s->chunk_size = src->chunk_size;
  s->files = src->files;
  s->dirs = src->n_dirs;
  s->symlinks = src->symlinks;
  s->bytes = src->bytes;
  s->n_roots = src->root_names->len;
  s->n_names = MIN(src->root_names->len, FERRY_TRANSFER_MAX_OFFER_NAMES);
  for (guint i = 0; i < s->n_names; i++)
    s->names[i] = g_ptr_array_index(src->root_names, i);
}

const FerryScanIssue *
ferry_source_get_issues(FerrySource *src, guint *n_issues)
{
  *n_issues = src->issues->len;
  return (const FerryScanIssue *)(gpointer)src->issues->data;
}

void
ferry_source_add_raw_entry(FerrySource *src, FerryEntryType type, const char *path,
                           const char *link_target, guint64 size)
{
  FerrySourceEntry *se = g_new0(FerrySourceEntry, 1);
  se->type = type;
  se->mode = type == FERRY_ENTRY_DIR ? 0755 : 0644;
  se->path = g_strdup(path);
  se->link_target = g_strdup(link_target);
  se->size = size;
  se->source_dir = src->dirs->len > 0 ? g_ptr_array_index(src->dirs, 0) : "/";
  g_ptr_array_add(src->entries, se);
  if (type == FERRY_ENTRY_FILE) {
    src->files++;
    src->bytes += size;
  }
}
