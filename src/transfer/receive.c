/* The receiver's side of a transfer (docs/protocol.md §8).
 *
 * Nothing the sender says is trusted: every path goes through the
 * safe-path checks and a FerryPathSet before anything is created, every
 * write goes through openat() beneath the output directory, every chunk's
 * SHA-256 is computed here and compared with the header's before the
 * chunk counts, and a file's bytes stay under a hidden temporary name
 * until its root hash matches; only then is it renamed into place.
 *
 * The checkpoint (core/checkpoint.h) records the verified chunks. On a
 * resumed transfer each chunk the old checkpoint calls verified is read
 * back from disk and hashed again before it is believed; the sender is
 * then told which chunks are held (WANT) and sends the others. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/safepath.h"
#include "transfer/transfer-private.h"

#define SAVE_INTERVAL_MS 1000
#define CLOSE_WAIT_MS    3000 /* after DONE, for the sender to close */
#define CLOSE_DELAY_MS   300
/* Bytes a data stream may carry ahead of the ENTRY they belong to. */
#define MAX_HELD (64u << 20)

typedef struct {
  FerryWireEntry e;
  guint64 n_chunks;
  FerryCheckpointFile *ck; /* files only */
  char *part;              /* the temporary name, beneath the output directory */
  int fd;
  gboolean has_root;
  guint8 root[FERRY_HASH_LEN];
  gboolean in_place; /* already complete at its final path (resume): nothing to rename */
  gboolean done;
} RecvFile;

typedef struct {
  RecvState *r;
  FerryStream *stream;
  int kind; /* 0 until the first byte */
  guint8 hdr[FERRY_WIRE_CHUNK_HEADER];
  guint hdr_len;
  FerryWireChunk chunk;
  guint32 got;
  RecvFile *file;
  gboolean skip; /* the chunk's bytes are dropped (file failed, chunk already held) */
  gnutls_hash_hd_t digest;
  GByteArray *held; /* bytes for an entry not announced yet */
} RecvStream;

typedef enum {
  PHASE_WAIT_OFFER,
  PHASE_OFFERED,
  PHASE_RECEIVING,
  PHASE_DONE_SENT,
  PHASE_OVER
} Phase;

struct _RecvState {
  FerryTransfer *t;
  char *out_dir;
  char *store_dir;
  gboolean overwrite, skip_errors, check_space;
  int rootfd;
  Phase phase;
  RecvStream *ctl;
  GPtrArray *streams; /* RecvStream * */
  FerryWireReader reader;
  GByteArray *ctl_out;
  FerryWireOffer offer;
  gboolean resume;
  FerryCheckpoint *cp, *old_cp;
  FerryCheckpointWriter *writer;
  char *ckpt_key; /* ferry_store_key(): transfer id and output folder */
  int lock_fd;    /* holds the checkpoint's lock while we receive; -1 */
  char *ckpt_path;
  GPtrArray *files; /* RecvFile *, by entry id */
  FerryPathSet *paths;
  gboolean manifest_ended;
  guint pending; /* file entries not yet done */
  guint timer;
  /* The folder the last file went into: files of one folder come together,
   * so walking the path beneath the root once per folder is enough. */
  char *dir_rel;
  int dir_fd;
};

static void stream_feed(RecvStream *rs, const guint8 *data, gsize len);
static void check_all_done(RecvState *r);

static void
ctl_flush(RecvState *r)
{
  if (r->ctl == NULL || r->ctl_out->len == 0)
    return;
  gssize n = ferry_stream_write(r->ctl->stream, r->ctl_out->data, r->ctl_out->len, NULL);
  if (n > 0)
    g_byte_array_remove_range(r->ctl_out, 0, (guint)n);
}

static void
save_checkpoint(RecvState *r, gboolean now)
{
  GError *error = NULL;
  gboolean ok;
  if (r->writer == NULL)
    return;
  ok = now ? ferry_checkpoint_writer_flush(r->writer, r->cp, &error)
           : ferry_checkpoint_writer_maybe_save(r->writer, r->cp, NULL, &error);
  if (!ok) {
    g_warning("cannot save the checkpoint: %s", error->message);
    g_error_free(error);
  }
}

/* A DECLINE or ABORT not yet acknowledged by the sender. */
static gboolean
recv_lingering(FerryTransfer *t)
{
  RecvState *r = t->recv;
  return r->ctl != NULL && (r->ctl_out->len > 0 || ferry_stream_get_queued(r->ctl->stream) > 0);
}

static gboolean
close_later(gpointer data)
{
  RecvState *r = data;
  r->timer = 0;
  ferry_connection_close(r->t->conn, "transfer over");
  return G_SOURCE_REMOVE;
}

static void fail(RecvState *r, int code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* Ends the transfer with an error: the checkpoint is saved so the same
 * command can resume, and the sender is told why. */
static void
fail(RecvState *r, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  if (r->phase == PHASE_OVER) {
    g_free(msg);
    return;
  }
  save_checkpoint(r, TRUE);
  if (r->ctl != NULL) {
    ferry_wire_put_message(r->ctl_out, FERRY_FRAME_ABORT, 0, msg);
    ctl_flush(r);
  }
  r->phase = PHASE_OVER;
  GError *error = NULL;
  ferry_set_error(&error, code, "%s", msg);
  g_free(msg);
  ferry_transfer_finish_linger(r->t, error);
}

/* ---- files ---------------------------------------------------------------- */

static guint32
chunk_len(RecvState *r, const RecvFile *f, guint64 index)
{
  guint64 off = index * r->offer.chunk_size;
  return (guint32)MIN((guint64)r->offer.chunk_size, f->e.size - off);
}

static void
file_close(RecvFile *f)
{
  if (f->fd >= 0)
    close(f->fd);
  f->fd = -1;
}

static void
recv_file_free(gpointer p)
{
  RecvFile *f = p;
  file_close(f);
  ferry_wire_entry_clear(&f->e);
  g_free(f->part);
  g_free(f);
}

static void
file_finished(RecvState *r, guint32 id, RecvFile *f, FerryFileStatus status, const char *final,
              const char *message)
{
  f->done = TRUE;
  file_close(f);
  if (f->e.type == FERRY_ENTRY_FILE)
    r->pending--;
  ferry_wire_put_file_ok(r->ctl_out, id, (guint8)status);
  ferry_transfer_emit_file(r->t, status, f->e.type, f->e.path, final, f->e.size, message);
  ctl_flush(r);
}

/* A file that cannot be kept: with skip_errors it is dropped and the rest
 * goes on; otherwise the transfer ends (checkpoint saved). */
static void
file_fail(RecvState *r, guint32 id, RecvFile *f, int code, const char *message)
{
  if (f->ck != NULL)
    for (guint64 i = 0; i < f->n_chunks; i++)
      ferry_checkpoint_file_clear_verified(f->ck, i);
  file_close(f);
  if (f->part != NULL)
    ferry_store_unlink_beneath(r->rootfd, f->part);
  if (!r->skip_errors) {
    fail(r, code, "%s", message);
    return;
  }
  file_finished(r, id, f, FERRY_FILE_SKIPPED, NULL, message);
  check_all_done(r);
}

/* The folder holding relpath, opened beneath the root without following
 * symlinks (created when missing), and relpath's last component. The fd
 * belongs to the cache: do not close it. */
static int
dir_for(RecvState *r, const char *relpath, const char **base, GError **error)
{
  const char *slash = strrchr(relpath, '/');
  *base = slash != NULL ? slash + 1 : relpath;
  gsize n = slash != NULL ? (gsize)(slash - relpath) : 0;
  if (n == 0)
    return r->rootfd;
  if (r->dir_rel != NULL && strlen(r->dir_rel) == n && memcmp(r->dir_rel, relpath, n) == 0)
    return r->dir_fd;
  char *dir = g_strndup(relpath, n);
  int fd =
      ferry_openat_beneath(r->rootfd, dir, O_RDONLY | O_DIRECTORY, 0, FERRY_BENEATH_MKDIRS, error);
  if (fd < 0) {
    g_free(dir);
    return -1;
  }
  if (r->dir_rel != NULL)
    close(r->dir_fd);
  g_free(r->dir_rel);
  r->dir_rel = dir;
  r->dir_fd = fd;
  return fd;
}

/* Opens the temporary file (creating it and its directories). */
static gboolean
file_open(RecvState *r, guint32 id, RecvFile *f)
{
  GError *error = NULL;
  const char *base;
  if (f->fd >= 0)
    return TRUE;
  int dfd = dir_for(r, f->part, &base, &error);
  if (dfd >= 0) {
    f->fd = openat(dfd, base, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    struct stat st;
    if (f->fd < 0) {
      ferry_set_error(&error, FERRY_ERR_IO, "%s", g_strerror(errno));
    } else if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ferry_set_error(&error, FERRY_ERR_UNSAFE_PATH, "its temporary name is not a regular file");
      file_close(f);
    }
  }
  if (f->fd < 0) {
    char *msg =
        g_strdup_printf("cannot write '%s' in %s: %s", f->e.path, r->out_dir, error->message);
    file_fail(r, id, f, FERRY_ERR_IO, msg);
    g_free(msg);
    g_error_free(error);
    return FALSE;
  }
  return TRUE;
}

/* "name (2).ext" for the n-th alternative of path. */
static char *
alternative_name(const char *path, guint n)
{
  const char *slash = strrchr(path, '/');
  const char *base = slash != NULL ? slash + 1 : path;
  const char *dot = strrchr(base, '.');
  if (dot == NULL || dot == base)
    dot = base + strlen(base);
  return g_strdup_printf("%.*s (%u)%s", (int)(dot - path), path, n, dot);
}

/* Every chunk verified and the root known: check the root, give the file
 * its mode and time, and rename it into place. */
static void
file_complete(RecvState *r, guint32 id, RecvFile *f)
{
  if (f->done || !f->has_root || f->ck->n_verified != f->n_chunks)
    return;
  guint8 root[FERRY_HASH_LEN];
  ferry_root_hash(r->offer.chunk_size, f->e.size, f->ck->hashes, root);
  if (memcmp(root, f->root, FERRY_HASH_LEN) != 0) {
    char *msg =
        g_strdup_printf("'%s' did not verify: its root hash differs from the sender's", f->e.path);
    file_fail(r, id, f, FERRY_ERR_CORRUPT, msg);
    g_free(msg);
    return;
  }
  ferry_checkpoint_file_set_root(f->ck, root);
  if (f->in_place) {
    file_finished(r, id, f, FERRY_FILE_SAME, f->e.path, NULL);
    check_all_done(r);
    return;
  }
  if (!file_open(r, id, f))
    return;
  struct timespec times[2] = {{0, UTIME_OMIT},
                              {f->e.mtime_ns / 1000000000, f->e.mtime_ns % 1000000000}};
  fchmod(f->fd, f->e.mode & 0777);
  futimens(f->fd, times);
  file_close(f);

  GError *error = NULL;
  const char *part_base, *base;
  int dfd = dir_for(r, f->part, &part_base, &error);
  char *final = g_strdup(f->e.path);
  FerryFileStatus status = FERRY_FILE_DONE;
  for (guint n = 1; dfd >= 0; n++) {
    base = strrchr(final, '/') != NULL ? strrchr(final, '/') + 1 : final;
    if (renameat2(dfd, part_base, dfd, base, r->overwrite ? 0 : RENAME_NOREPLACE) == 0)
      break;
    if (errno != EEXIST || n > 999) {
      ferry_set_error(&error, FERRY_ERR_IO, "%s", g_strerror(errno));
      break;
    }
    g_free(final);
    final = alternative_name(f->e.path, n);
    status = FERRY_FILE_RENAMED;
  }
  if (error != NULL) {
    char *msg = g_strdup_printf("cannot put '%s' in place in %s: %s", f->e.path, r->out_dir,
                                error->message);
    g_clear_error(&error);
    g_free(final);
    file_fail(r, id, f, FERRY_ERR_IO, msg);
    g_free(msg);
    return;
  }
  file_finished(r, id, f, status, final,
                status == FERRY_FILE_RENAMED ? "a different file had that name" : NULL);
  g_free(final);
  save_checkpoint(r, FALSE);
  check_all_done(r);
}

/* Reads chunk index of fd and checks it against hash. */
static gboolean
chunk_on_disk_matches(RecvState *r, int fd, const RecvFile *f, guint64 index, const guint8 *hash,
                      guint8 *buf)
{
  guint32 len = chunk_len(r, f, index);
  gsize got = 0;
  while (got < len) {
    ssize_t n = pread(fd, buf + got, len - got, (off_t)(index * r->offer.chunk_size + got));
    if (n <= 0)
      return FALSE;
    got += (gsize)n;
  }
  guint8 h[FERRY_HASH_LEN];
  ferry_chunk_hash(buf, len, h);
  return memcmp(h, hash, FERRY_HASH_LEN) == 0;
}

/* Resume: takes over what the old checkpoint says is verified for this
 * file, but only chunks whose bytes on disk still hash right. */
static void
file_resume(RecvState *r, RecvFile *f)
{
  FerryCheckpointFile *old =
      r->old_cp != NULL ? ferry_checkpoint_find_file(r->old_cp, f->e.path) : NULL;
  if (old == NULL || old->size != f->e.size || old->n_verified == 0)
    return;
  /* A file finished last time sits at its final name. */
  const char *where = f->part;
  gboolean complete = old->has_root && old->n_verified == old->n_chunks;
  if (complete && ferry_exists_beneath(r->rootfd, f->part, NULL, NULL) != 1)
    where = f->e.path;
  int fd = ferry_openat_beneath(r->rootfd, where, O_RDONLY, 0, FERRY_BENEATH_NONE, NULL);
  if (fd < 0)
    return;
  guint8 *buf = g_malloc(r->offer.chunk_size);
  guint64 good = 0;
  for (guint64 i = 0; i < old->n_chunks; i++) {
    const guint8 *h = ferry_checkpoint_file_get_hash(old, i);
    if (h != NULL && chunk_on_disk_matches(r, fd, f, i, h, buf)) {
      ferry_checkpoint_file_set_verified(f->ck, i, h);
      r->t->progress.bytes_done += chunk_len(r, f, i);
      r->t->progress.bytes_resumed += chunk_len(r, f, i);
      good++;
    }
  }
  g_free(buf);
  close(fd);
  if (where != f->part) {
    if (good == f->n_chunks) {
      f->in_place = TRUE;
    } else {
      /* Not ours any more: start again under the temporary name. */
      for (guint64 i = 0; i < f->n_chunks; i++)
        if (ferry_checkpoint_file_is_verified(f->ck, i)) {
          ferry_checkpoint_file_clear_verified(f->ck, i);
          r->t->progress.bytes_done -= chunk_len(r, f, i);
          r->t->progress.bytes_resumed -= chunk_len(r, f, i);
        }
    }
  }
}

/* ---- the manifest ---------------------------------------------------------- */

static void
on_entry(RecvState *r, const guint8 *p, guint32 len)
{
  RecvFile *f = g_new0(RecvFile, 1);
  const char *other = NULL, *reason = NULL;
  f->fd = -1;
  if (ferry_wire_get_entry(p, len, &f->e) != 0 || f->e.id != r->files->len || r->manifest_ended) {
    recv_file_free(f);
    fail(r, FERRY_ERR_INVALID, "the sender sent a malformed manifest entry");
    return;
  }
  guint32 id = f->e.id;
  int rc = ferry_path_set_add(r->paths, f->e.path, strlen(f->e.path), f->e.type == FERRY_ENTRY_DIR,
                              &other, &reason);
  if (rc != 0) {
    char *shown = g_strescape(f->e.path, NULL);
    recv_file_free(f);
    fail(r, FERRY_ERR_UNSAFE_PATH,
         "the sender offered the path '%s', which is refused (%s%s%s); nothing was written "
         "outside %s",
         shown, reason != NULL ? reason : ferry_strerror(rc),
         other != NULL ? " — clashes with " : "", other != NULL ? other : "", r->out_dir);
    g_free(shown);
    return;
  }
  g_ptr_array_add(r->files, f);
  GError *error = NULL;
  switch (f->e.type) {
  case FERRY_ENTRY_DIR:
    if (!ferry_mkdir_beneath(r->rootfd, f->e.path, 0755, &error)) {
      char *msg = g_strdup_printf("cannot create the folder '%s' in %s: %s", f->e.path, r->out_dir,
                                  error->message);
      g_error_free(error);
      f->done = TRUE;
      if (!r->skip_errors)
        fail(r, FERRY_ERR_IO, "%s", msg);
      else
        ferry_transfer_emit_file(r->t, FERRY_FILE_SKIPPED, f->e.type, f->e.path, NULL, 0, msg);
      g_free(msg);
    }
    return;
  case FERRY_ENTRY_SYMLINK:
    return; /* made at the end, once nothing can be written through it */
  case FERRY_ENTRY_FILE:
    break;
  }
  r->pending++;
  f->n_chunks = ferry_chunk_count(f->e.size, r->offer.chunk_size);
  f->part = ferry_store_part_path(f->e.path, r->t->id_hex);
  f->ck = ferry_checkpoint_add_file(r->cp, f->e.path, f->e.size, NULL);
  if (f->ck == NULL) {
    fail(r, FERRY_ERR_TOO_LONG, "the transfer is too large to keep a checkpoint of");
    return;
  }
  if (r->resume) {
    file_resume(r, f);
    ferry_wire_put_want(r->ctl_out, id, f->ck);
  }
  /* Data for this entry may have come first on a data stream. */
  for (guint i = 0; i < r->streams->len && r->phase == PHASE_RECEIVING; i++) {
    RecvStream *rs = g_ptr_array_index(r->streams, i);
    if (rs->held != NULL) {
      GByteArray *held = rs->held;
      rs->held = NULL;
      stream_feed(rs, held->data, held->len);
      g_byte_array_unref(held);
    }
  }
}

/* The last file is in: make the symlinks, give folders their modes and
 * times (deepest first, so that a read-only folder is filled first), drop
 * the checkpoint and tell the sender. */
static void
check_all_done(RecvState *r)
{
  if (r->phase != PHASE_RECEIVING || !r->manifest_ended || r->pending > 0)
    return;
  for (guint i = 0; i < r->files->len; i++) {
    RecvFile *f = g_ptr_array_index(r->files, i);
    if (f->e.type != FERRY_ENTRY_SYMLINK || f->done)
      continue;
    const char *base;
    GError *error = NULL;
    int dfd = dir_for(r, f->e.path, &base, &error); /* the cache's: not closed here */
    char *msg = NULL;
    if (dfd < 0) {
      msg = g_strdup_printf("cannot make the link '%s': %s", f->e.path, error->message);
      g_error_free(error);
    } else {
      struct stat st;
      if (r->overwrite && fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
        unlinkat(dfd, base, 0);
      if (symlinkat(f->e.link_target, dfd, base) != 0)
        msg = g_strdup_printf(
            "cannot make the link '%s': %s%s", f->e.path, g_strerror(errno),
            errno == EEXIST ? " (something has that name; --overwrite replaces a link)" : "");
    }
    f->done = TRUE;
    ferry_transfer_emit_file(r->t, msg != NULL ? FERRY_FILE_SKIPPED : FERRY_FILE_DONE, f->e.type,
                             f->e.path, f->e.path, 0, msg);
    g_free(msg);
  }
  for (guint i = r->files->len; i-- > 0;) {
    RecvFile *f = g_ptr_array_index(r->files, i);
    if (f->e.type != FERRY_ENTRY_DIR)
      continue;
    int dfd = ferry_openat_beneath(r->rootfd, f->e.path, O_RDONLY | O_DIRECTORY, 0,
                                   FERRY_BENEATH_NONE, NULL);
    if (dfd >= 0) {
      struct timespec times[2] = {{0, UTIME_OMIT},
                                  {f->e.mtime_ns / 1000000000, f->e.mtime_ns % 1000000000}};
      fchmod(dfd, f->e.mode & 0777);
      futimens(dfd, times);
      close(dfd);
    }
  }
  g_clear_pointer(&r->writer, ferry_checkpoint_writer_free);
  ferry_store_remove(r->store_dir, r->ckpt_key);
  ferry_wire_put_empty(r->ctl_out, FERRY_FRAME_DONE);
  ctl_flush(r);
  ferry_transfer_set_current(r->t, NULL, 0, 0);
  r->phase = PHASE_DONE_SENT;
  r->timer = g_timeout_add(CLOSE_WAIT_MS, close_later, r);
}

/* ---- data streams ---------------------------------------------------------- */

static void
disk_error(RecvState *r, guint32 id, RecvFile *f, int err)
{
  if (err == ENOSPC || err == EDQUOT) {
    struct statvfs vfs;
    guint64 free_bytes = fstatvfs(r->rootfd, &vfs) == 0 ? (guint64)vfs.f_bavail * vfs.f_frsize : 0;
    guint64 left = r->t->progress.bytes_total - r->t->progress.bytes_done;
    char *need = g_format_size_full(left, G_FORMAT_SIZE_IEC_UNITS);
    char *have = g_format_size_full(free_bytes, G_FORMAT_SIZE_IEC_UNITS);
    fail(r, FERRY_ERR_IO,
         "disk full: %s has %s free and the transfer needs %s more; free some space and run the "
         "same command again to resume (the verified part is kept)",
         r->out_dir, have, need);
    g_free(need);
    g_free(have);
    return;
  }
  char *msg =
      g_strdup_printf("cannot write '%s' in %s: %s", f->e.path, r->out_dir, g_strerror(err));
  file_fail(r, id, f, FERRY_ERR_IO, msg);
  g_free(msg);
}

/* The sender sends a chunk we hold only when its hash differs from ours:
 * its file changed since our copy was verified. Ours stops counting; a
 * file complete in place goes back to its temporary name first, so the
 * new bytes never land on a file the user may already use. */
static gboolean
chunk_replaced(RecvState *r, guint32 id, RecvFile *f, guint64 index)
{
  if (f->in_place) {
    GError *error = NULL;
    const char *base, *part_base;
    int dfd = dir_for(r, f->part, &part_base, &error);
    base = strrchr(f->e.path, '/') != NULL ? strrchr(f->e.path, '/') + 1 : f->e.path;
    if (dfd < 0 || renameat2(dfd, base, dfd, part_base, RENAME_NOREPLACE) != 0) {
      char *msg = g_strdup_printf("cannot take '%s' back to update it: %s", f->e.path,
                                  error != NULL ? error->message : g_strerror(errno));
      g_clear_error(&error);
      file_fail(r, id, f, FERRY_ERR_IO, msg);
      g_free(msg);
      return FALSE;
    }
    f->in_place = FALSE;
  }
  if (ferry_checkpoint_file_is_verified(f->ck, index)) {
    guint32 len = chunk_len(r, f, index);
    ferry_checkpoint_file_clear_verified(f->ck, index);
    r->t->progress.bytes_done -= len;
    r->t->progress.bytes_resumed -= len;
  }
  return TRUE;
}

/* The header is complete: check it against the manifest. Returns FALSE
 * when the stream must wait for the entry (bytes held) or failed. */
static gboolean
chunk_begin(RecvStream *rs, const guint8 *rest, gsize rest_len)
{
  RecvState *r = rs->r;
  FerryWireChunk *c = &rs->chunk;
  if (ferry_wire_get_chunk_header(rs->hdr, FERRY_WIRE_CHUNK_HEADER, c) != 0) {
    fail(r, FERRY_ERR_INVALID, "the sender sent a malformed chunk header");
    return FALSE;
  }
  if (c->file_id >= r->files->len) {
    if (r->manifest_ended) {
      fail(r, FERRY_ERR_INVALID, "the sender sent a chunk of entry %u, which it never announced",
           c->file_id);
      return FALSE;
    }
    rs->held = g_byte_array_sized_new(FERRY_WIRE_CHUNK_HEADER + (guint)rest_len);
    g_byte_array_append(rs->held, rs->hdr, FERRY_WIRE_CHUNK_HEADER);
    g_byte_array_append(rs->held, rest, (guint)rest_len);
    rs->hdr_len = 0;
    return FALSE;
  }
  RecvFile *f = g_ptr_array_index(r->files, c->file_id);
  if (f->e.type != FERRY_ENTRY_FILE || c->index >= f->n_chunks ||
      c->len != chunk_len(r, f, c->index)) {
    fail(r, FERRY_ERR_INVALID, "the sender sent a chunk that does not fit '%s'", f->e.path);
    return FALSE;
  }
  rs->file = f;
  rs->got = 0;
  rs->skip = f->done;
  if (!rs->skip && (f->in_place || ferry_checkpoint_file_is_verified(f->ck, c->index)) &&
      !chunk_replaced(r, c->file_id, f, c->index))
    rs->skip = TRUE;
  if (!rs->skip && !file_open(r, c->file_id, f))
    rs->skip = TRUE;
  if (!rs->skip)
    gnutls_hash_init(&rs->digest, GNUTLS_DIG_SHA256);
  ferry_transfer_set_current(r->t, f->e.path, f->e.size, c->index * r->offer.chunk_size);
  return r->phase == PHASE_RECEIVING;
}

static void
chunk_end(RecvStream *rs)
{
  RecvState *r = rs->r;
  RecvFile *f = rs->file;
  FerryWireChunk *c = &rs->chunk;
  if (rs->skip)
    return;
  guint8 h[FERRY_HASH_LEN];
  gnutls_hash_deinit(rs->digest, h);
  rs->digest = NULL;
  if (f->done)
    return; /* failed meanwhile */
  if (memcmp(h, c->hash, FERRY_HASH_LEN) != 0) {
    char *msg = g_strdup_printf("chunk %" G_GUINT64_FORMAT " of '%s' did not verify (SHA-256 "
                                "differs from the sender's)",
                                c->index, f->e.path);
    file_fail(r, c->file_id, f, FERRY_ERR_CORRUPT, msg);
    g_free(msg);
    return;
  }
  ferry_checkpoint_file_set_verified(f->ck, c->index, h);
  r->t->progress.bytes_done += c->len;
  save_checkpoint(r, FALSE);
  file_complete(r, c->file_id, f);
}

static void
stream_feed(RecvStream *rs, const guint8 *data, gsize len)
{
  RecvState *r = rs->r;
  if (rs->held != NULL) {
    if (rs->held->len + len > MAX_HELD) {
      fail(r, FERRY_ERR_INVALID, "the sender sent %u bytes for an entry it did not announce",
           rs->held->len);
      return;
    }
    g_byte_array_append(rs->held, data, (guint)len);
    return;
  }
  while (len > 0 && r->phase == PHASE_RECEIVING) {
    if (rs->hdr_len < FERRY_WIRE_CHUNK_HEADER) {
      gsize take = MIN(len, (gsize)(FERRY_WIRE_CHUNK_HEADER - rs->hdr_len));
      memcpy(rs->hdr + rs->hdr_len, data, take);
      rs->hdr_len += (guint)take;
      data += take;
      len -= take;
      if (rs->hdr_len == FERRY_WIRE_CHUNK_HEADER && !chunk_begin(rs, data, len))
        return;
      continue;
    }
    gsize take = MIN(len, (gsize)(rs->chunk.len - rs->got));
    if (!rs->skip) {
      off_t at = (off_t)(rs->chunk.index * r->offer.chunk_size + rs->got);
      gsize w = 0;
      while (w < take) {
        ssize_t n = pwrite(rs->file->fd, data + w, take - w, at + (off_t)w);
        if (n < 0 && errno == EINTR)
          continue;
        if (n < 0) {
          int err = errno;
          gnutls_hash_deinit(rs->digest, NULL);
          rs->digest = NULL;
          rs->skip = TRUE;
          disk_error(r, rs->chunk.file_id, rs->file, err);
          break;
        }
        w += (gsize)n;
      }
      if (!rs->skip)
        gnutls_hash(rs->digest, data, take);
    }
    rs->got += (guint32)take;
    data += take;
    len -= take;
    if (rs->got == rs->chunk.len) {
      chunk_end(rs);
      rs->hdr_len = 0;
    }
  }
}

/* ---- the control stream ---------------------------------------------------- */

static void
on_offer(RecvState *r, const guint8 *p, guint32 len)
{
  if (r->phase != PHASE_WAIT_OFFER) {
    fail(r, FERRY_ERR_INVALID, "the sender sent a second offer");
    return;
  }
  int rc = ferry_wire_get_offer(p, len, &r->offer);
  if (rc != 0) {
    fail(r, rc,
         rc == FERRY_ERR_VERSION
             ? "the sender speaks another version of the transfer protocol; update ferry "
               "on both sides"
             : "the sender sent a malformed offer");
    return;
  }
  ferry_transfer_id_to_hex(r->offer.transfer_id, r->t->id_hex);
  r->ckpt_key = ferry_store_key(r->t->id_hex, r->out_dir);
  r->ckpt_path = ferry_store_checkpoint_path(r->store_dir, r->ckpt_key);
  r->t->progress.bytes_total = r->offer.bytes;
  r->t->progress.files_total = r->offer.files;
  r->phase = PHASE_OFFERED;
  FerryTransferSummary sum = {{0},
                              r->offer.chunk_size,
                              r->offer.files,
                              r->offer.dirs,
                              r->offer.symlinks,
                              r->offer.bytes,
                              r->offer.n_names,
                              r->offer.n_roots,
                              {NULL}};
  memcpy(sum.id, r->t->id_hex, sizeof sum.id);
  for (guint i = 0; i < r->offer.n_names; i++)
    sum.names[i] = r->offer.names[i];
  if (r->t->handlers.offer != NULL)
    r->t->handlers.offer(r->t, &sum, r->t->user_data);
  else
    ferry_recv_accept(r->t);
}

static void
on_frame(RecvState *r, guint8 type, const guint8 *p, guint32 len)
{
  guint32 id;
  char *msg = NULL;
  guint8 root[FERRY_HASH_LEN];
  if (type == FERRY_FRAME_OFFER) {
    on_offer(r, p, len);
    return;
  }
  if (r->phase != PHASE_RECEIVING && type != FERRY_FRAME_ABORT) {
    fail(r, FERRY_ERR_INVALID, "the sender sent a frame (type 0x%02x) out of turn", type);
    return;
  }
  switch (type) {
  case FERRY_FRAME_ENTRY:
    on_entry(r, p, len);
    return;
  case FERRY_FRAME_FILE_END: {
    if (ferry_wire_get_file_end(p, len, &id, root) != 0 || id >= r->files->len) {
      fail(r, FERRY_ERR_INVALID, "the sender sent a malformed FILE_END");
      return;
    }
    RecvFile *f = g_ptr_array_index(r->files, id);
    if (f->e.type != FERRY_ENTRY_FILE || f->has_root) {
      fail(r, FERRY_ERR_INVALID, "the sender sent FILE_END twice or for no file");
      return;
    }
    f->has_root = TRUE;
    memcpy(f->root, root, FERRY_HASH_LEN);
    file_complete(r, id, f);
    return;
  }
  case FERRY_FRAME_FILE_FAILED: {
    if (ferry_wire_get_message(p, len, TRUE, &id, &msg) != 0 || id >= r->files->len) {
      fail(r, FERRY_ERR_INVALID, "the sender sent a malformed FILE_FAILED");
      return;
    }
    RecvFile *f = g_ptr_array_index(r->files, id);
    if (f->e.type == FERRY_ENTRY_FILE && !f->done) {
      char *why = g_strdup_printf("the sender skipped it: %s", msg);
      /* The sender decides whether this ends the transfer (it sends ABORT). */
      gboolean skip = r->skip_errors;
      r->skip_errors = TRUE;
      file_fail(r, id, f, FERRY_ERR_IO, why);
      r->skip_errors = skip;
      g_free(why);
    }
    g_free(msg);
    return;
  }
  case FERRY_FRAME_MANIFEST_END:
    if (ferry_wire_get_u32(p, len, &id) != 0 || id != r->files->len || r->manifest_ended) {
      fail(r, FERRY_ERR_INVALID, "the sender's manifest does not add up");
      return;
    }
    r->manifest_ended = TRUE;
    check_all_done(r);
    return;
  case FERRY_FRAME_ABORT:
    if (ferry_wire_get_message(p, len, FALSE, NULL, &msg) != 0)
      msg = g_strdup("no reason given");
    if (r->phase == PHASE_DONE_SENT) {
      g_free(msg);
      return;
    }
    fail(r, FERRY_ERR_FAILED, "%s%s",
         g_str_has_prefix(msg, "the sender stopped") ? "" : "the sender stopped: ", msg);
    g_free(msg);
    return;
  default:
    fail(r, FERRY_ERR_INVALID, "the sender sent an unknown frame (type 0x%02x)", type);
    return;
  }
}

static void
ctl_feed(RecvState *r, const guint8 *data, gsize len)
{
  guint8 type;
  const guint8 *p;
  guint32 n;
  int rc;
  ferry_wire_reader_feed(&r->reader, data, len);
  while (r->phase != PHASE_OVER && r->phase != PHASE_DONE_SENT &&
         (rc = ferry_wire_reader_next(&r->reader, &type, &p, &n)) == 1)
    on_frame(r, type, p, n);
  if (r->phase != PHASE_OVER && rc < 0)
    fail(r, FERRY_ERR_INVALID, "the sender sent a frame that is too long");
  ctl_flush(r); /* WANTs and FILE_OKs answered on the way */
}

static void
stream_in(FerryStream *stream, const guint8 *data, gsize len, gboolean fin, gpointer user_data)
{
  RecvStream *rs = user_data;
  RecvState *r = rs->r;
  (void)stream, (void)fin;
  if (r->phase == PHASE_OVER || len == 0)
    return;
  if (rs->kind == 0) {
    rs->kind = data[0];
    data++, len--;
    if (rs->kind == FERRY_WIRE_KIND_CONTROL && r->ctl == NULL) {
      r->ctl = rs;
      r->t->ctl_ref = ferry_stream_ref(rs->stream);
    } else if (rs->kind != FERRY_WIRE_KIND_DATA || r->ctl == NULL) {
      fail(r, FERRY_ERR_INVALID, "the sender opened a stream of unknown kind");
      return;
    }
  }
  if (rs->kind == FERRY_WIRE_KIND_CONTROL)
    ctl_feed(r, data, len);
  else if (r->phase == PHASE_RECEIVING)
    stream_feed(rs, data, len);
  else if (r->phase != PHASE_DONE_SENT)
    fail(r, FERRY_ERR_INVALID, "the sender sent data before the offer was accepted");
}

static void
stream_writable(FerryStream *stream, gpointer user_data)
{
  RecvStream *rs = user_data;
  (void)stream;
  if (rs == rs->r->ctl)
    ctl_flush(rs->r);
}

static void
stream_closed(FerryStream *stream, const GError *error, gpointer user_data)
{
  RecvStream *rs = user_data;
  (void)stream;
  if (error != NULL && rs->r->phase != PHASE_OVER && rs->r->phase != PHASE_DONE_SENT)
    fail(rs->r, FERRY_ERR_FAILED, "a stream from the sender broke: %s", error->message);
}

static const FerryStreamHandlers stream_handlers = {stream_in, stream_writable, stream_closed};

static void
recv_stream_free(gpointer p)
{
  RecvStream *rs = p;
  if (rs->digest != NULL)
    gnutls_hash_deinit(rs->digest, NULL);
  if (rs->held != NULL)
    g_byte_array_unref(rs->held);
  g_free(rs);
}

static void
conn_stream_opened(FerryConnection *conn, FerryStream *stream, gpointer user_data)
{
  RecvState *r = user_data;
  RecvStream *rs = g_new0(RecvStream, 1);
  (void)conn;
  rs->r = r;
  rs->stream = stream;
  g_ptr_array_add(r->streams, rs);
  ferry_stream_set_handlers(stream, &stream_handlers, rs);
}

static void
conn_closed(FerryConnection *conn, const GError *error, gpointer user_data)
{
  RecvState *r = user_data;
  (void)conn;
  if (r->phase == PHASE_DONE_SENT) {
    r->phase = PHASE_OVER;
    ferry_transfer_finish(r->t, NULL);
  } else if (r->phase != PHASE_OVER) {
    save_checkpoint(r, TRUE);
    r->phase = PHASE_OVER;
    GError *e = NULL;
    ferry_set_error(&e, FERRY_ERR_FAILED, "the sender left before the end (%s)%s",
                    error != NULL ? error->message : "it closed the connection",
                    r->writer != NULL ? "; the verified part is kept: run ferry receive again with "
                                        "a new code from the sender to continue"
                                      : "");
    ferry_transfer_finish(r->t, e);
  }
}

static const FerryConnectionHandlers conn_handlers = {conn_stream_opened, conn_closed};

/* ---- the API --------------------------------------------------------------- */

void
ferry_receive_options_init(FerryReceiveOptions *o)
{
  memset(o, 0, sizeof *o);
  o->check_space = TRUE;
}

FerryTransfer *
ferry_transfer_receive(FerryConnection *conn, const FerryReceiveOptions *options,
                       const FerryTransferHandlers *handlers, gpointer user_data, GError **error)
{
  FerryReceiveOptions defaults;
  if (options == NULL) {
    ferry_receive_options_init(&defaults);
    options = &defaults;
  }
  const char *out = options->out_dir != NULL ? options->out_dir : ".";
  int rootfd = ferry_outdir_open(out, TRUE, error);
  if (rootfd < 0) {
    ferry_connection_free(conn);
    return NULL;
  }
  if (faccessat(rootfd, ".", W_OK, AT_EACCESS) != 0) {
    ferry_set_error(error, FERRY_ERR_IO,
                    "cannot write into %s: %s; choose another folder with --out", out,
                    g_strerror(errno));
    close(rootfd);
    ferry_connection_free(conn);
    return NULL;
  }
  /* Expired checkpoints go first (7 days by default), as documented. */
  if (options->checkpoint_ttl >= 0)
    ferry_checkpoints_clean(options->checkpoint_dir, options->checkpoint_ttl != 0
                                                         ? options->checkpoint_ttl
                                                         : FERRY_CHECKPOINT_DEFAULT_TTL);
  FerryTransfer *t = g_new0(FerryTransfer, 1);
  RecvState *r = g_new0(RecvState, 1);
  t->conn = conn;
  if (handlers != NULL)
    t->handlers = *handlers;
  t->user_data = user_data;
  t->recv = r;
  t->lingering = recv_lingering;
  r->t = t;
  r->rootfd = rootfd;
  r->lock_fd = -1;
  char *abs = g_canonicalize_filename(out, NULL);
  r->out_dir = abs;
  r->store_dir = options->checkpoint_dir != NULL ? g_strdup(options->checkpoint_dir) : NULL;
  r->overwrite = options->overwrite;
  r->skip_errors = options->skip_errors;
  r->check_space = options->check_space;
  r->streams = g_ptr_array_new_with_free_func(recv_stream_free);
  r->files = g_ptr_array_new_with_free_func(recv_file_free);
  r->ctl_out = g_byte_array_new();
  r->paths = ferry_path_set_new();
  ferry_wire_reader_init(&r->reader);
  ferry_connection_set_handlers(conn, &conn_handlers, r);
  return t;
}

void
ferry_recv_accept(FerryTransfer *t)
{
  RecvState *r = t->recv;
  if (r->phase != PHASE_OFFERED)
    return;
  GError *error = NULL;
  /* One receiver per transfer and folder: a second would share the
   * temporary files and the checkpoint. */
  r->lock_fd = ferry_store_lock(r->store_dir, r->ckpt_key, &error);
  if (r->lock_fd < 0) {
    ferry_wire_put_message(r->ctl_out, FERRY_FRAME_DECLINE, 0,
                           "the receiver is already receiving this transfer into that folder");
    ctl_flush(r);
    r->phase = PHASE_OVER;
    ferry_transfer_finish_linger(t, error);
    return;
  }
  char *recorded = ferry_store_read_out_dir(r->store_dir, r->ckpt_key);
  if (recorded != NULL && strcmp(recorded, r->out_dir) == 0) {
    r->old_cp = ferry_checkpoint_load(r->ckpt_path, &error);
    if (r->old_cp == NULL) {
      if (!g_error_matches(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND))
        g_warning("ignoring the checkpoint %s: %s", r->ckpt_path, error->message);
      g_clear_error(&error);
    } else if (r->old_cp->chunk_size != r->offer.chunk_size ||
               memcmp(r->old_cp->transfer_id, r->offer.transfer_id, FERRY_TRANSFER_ID_LEN) != 0) {
      g_clear_pointer(&r->old_cp, ferry_checkpoint_free);
    }
  }
  g_free(recorded);
  r->resume = r->old_cp != NULL;

  if (r->check_space) {
    struct statvfs vfs;
    guint64 held = 0;
    for (guint i = 0; r->old_cp != NULL && i < r->old_cp->files->len; i++) {
      FerryCheckpointFile *f = g_ptr_array_index(r->old_cp->files, i);
      held += MIN(f->n_verified * (guint64)r->offer.chunk_size, f->size);
    }
    guint64 need = r->offer.bytes > held ? r->offer.bytes - held : 0;
    if (fstatvfs(r->rootfd, &vfs) == 0 && (guint64)vfs.f_bavail * vfs.f_frsize < need) {
      char *n = g_format_size_full(need, G_FORMAT_SIZE_IEC_UNITS);
      char *h = g_format_size_full((guint64)vfs.f_bavail * vfs.f_frsize, G_FORMAT_SIZE_IEC_UNITS);
      ferry_wire_put_message(r->ctl_out, FERRY_FRAME_DECLINE, 0,
                             "the receiver does not have enough disk space");
      ctl_flush(r);
      r->phase = PHASE_OVER;
      ferry_set_error(&error, FERRY_ERR_IO,
                      "not enough space in %s: the transfer needs %s and %s is free; free some "
                      "space or choose another folder with --out",
                      r->out_dir, n, h);
      g_free(n);
      g_free(h);
      ferry_transfer_finish_linger(t, error);
      return;
    }
  }
  r->cp = ferry_checkpoint_new(r->offer.transfer_id, r->offer.chunk_size);
  if (!ferry_store_write_info(r->store_dir, r->ckpt_key, r->out_dir, r->offer.files, r->offer.bytes,
                              &error)) {
    g_warning("transfer not resumable: %s", error->message);
    g_clear_error(&error);
  } else {
    r->writer = ferry_checkpoint_writer_new(r->ckpt_path, SAVE_INTERVAL_MS);
  }
  ferry_wire_put_u8(r->ctl_out, FERRY_FRAME_ACCEPT, r->resume ? FERRY_ACCEPT_RESUME : 0);
  ctl_flush(r);
  r->phase = PHASE_RECEIVING;
  t->progress.started_us = g_get_monotonic_time();
}

void
ferry_recv_decline(FerryTransfer *t, const char *reason)
{
  RecvState *r = t->recv;
  if (r->phase != PHASE_OFFERED)
    return;
  ferry_wire_put_message(r->ctl_out, FERRY_FRAME_DECLINE, 0, reason != NULL ? reason : "declined");
  ctl_flush(r);
  r->phase = PHASE_OVER;
  GError *error = NULL;
  ferry_set_error(&error, FERRY_ERR_STATE, "declined: %s", reason != NULL ? reason : "declined");
  ferry_transfer_finish_linger(t, error);
}

void
ferry_recv_cancel(FerryTransfer *t)
{
  RecvState *r = t->recv;
  if (r->phase == PHASE_OVER)
    return;
  fail(r, FERRY_ERR_FAILED, "the receiver stopped (interrupted)");
  g_clear_error(&t->finish_error);
  t->finish_error = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_CANCELLED, "interrupted");
}

const char *
ferry_recv_checkpoint_path(FerryTransfer *t)
{
  return t->recv->ckpt_path;
}

void
ferry_recv_state_free(RecvState *r)
{
  if (r->timer != 0)
    g_source_remove(r->timer);
  if (r->writer != NULL && r->phase != PHASE_DONE_SENT)
    save_checkpoint(r, TRUE);
  g_clear_pointer(&r->writer, ferry_checkpoint_writer_free);
  g_ptr_array_unref(r->streams);
  g_ptr_array_unref(r->files);
  g_byte_array_unref(r->ctl_out);
  ferry_wire_reader_clear(&r->reader);
  ferry_wire_offer_clear(&r->offer);
  ferry_path_set_free(r->paths);
  ferry_checkpoint_free(r->cp);
  ferry_checkpoint_free(r->old_cp);
  if (r->lock_fd >= 0)
    close(r->lock_fd);
  if (r->dir_rel != NULL)
    close(r->dir_fd);
  g_free(r->dir_rel);
  if (r->rootfd >= 0)
    close(r->rootfd);
  g_free(r->out_dir);
  g_free(r->store_dir);
  g_free(r->ckpt_key);
  g_free(r->ckpt_path);
  g_free(r);
}
