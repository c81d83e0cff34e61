/* ferry receive URL: see link.h.
 *
 * One file goes to a hidden ".NAME.ferry-part" in the output folder and
 * is renamed into place only when every byte arrived (and, for an
 * encrypted link, every record authenticated). A cut download keeps the
 * part; the same command then asks the server for the rest with Range —
 * for an encrypted link from the start of the first record not yet
 * written, so only authenticated plaintext is ever kept. A folder (a tar)
 * unpacks into a hidden ".NAME.ferry-part/" folder through core's tar
 * reader, which refuses unsafe paths, with every file opened beneath its
 * parent's descriptor (O_NOFOLLOW); its top-level entries move into place
 * at the end, under a new name rather than over anything there. A folder
 * that is cut starts again from the beginning. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <glib-unix.h>
#include <libsoup/soup.h>

#include "commands.h"
#include "core/linkcrypt.h"
#include "core/tar.h"
#include "link.h"
#include "progress.h"

#define READ_CHUNK (1024 * 1024)

typedef struct {
  char *path;
  guint32 mode;
  gint64 mtime;
} DirMode;

typedef struct {
  CliSettings *s;
  CliOutput *out;
  GMainLoop *loop;
  GCancellable *cancel;
  SoupSession *session;
  GInputStream *body;
  char *url;  /* without the fragment */
  char *name; /* the relay NAME */
  gboolean encrypted;
  guint8 key[FERRY_LINK_KEY_BYTES];
  FerryLinkCipher *cipher;
  GByteArray *plain; /* the cipher's output */
  int dir_fd;        /* the output folder */
  char *part;        /* ".NAME.ferry-part" */
  /* one file */
  int part_fd;
  guint64 have; /* plaintext bytes in the part before this request */
  guint64 written;
  /* a folder */
  gboolean folder;
  FerryTarReader *tar;
  int stage_fd; /* the part folder */
  int file_fd;  /* the file being unpacked */
  /* the entry being unpacked: a copy, since the reader's lives only as
   * long as the feed that parsed its header */
  char *entry_path;
  guint32 entry_mode;
  gint64 entry_mtime;
  GArray *dirs; /* DirMode: applied at the end, deepest first */
  guint64 files;
  /* the response */
  gint64 expected; /* bytes of body, -1 unknown */
  guint64 received;
  char *filename; /* the file's final name */
  gint64 started_us, said_us;
  gboolean interrupted;
  int status;
} LinkReceive;

gboolean
cli_link_is_url(const char *arg)
{
  return g_str_has_prefix(arg, "http://") || g_str_has_prefix(arg, "https://");
}

static void fail(LinkReceive *st, int status, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void
fail(LinkReceive *st, int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *text = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  if (st->status == 0 || st->status == -1) {
    st->status = status;
    cli_output_fail(st->out, status, "%s", text);
  }
  g_main_loop_quit(st->loop);
}

/* ---- unpacking a folder ------------------------------------------------------- */

/* Opens the folder that holds path's last component, beneath the stage
 * folder, making missing folders on the way, and sets *name to that last
 * component (without a directory's trailing '/'; free it). Returns an fd
 * to close, or -1 with error. */
static int
open_parent(LinkReceive *st, const char *path, char **name, GError **error)
{
  g_auto(GStrv) parts = g_strsplit(path, "/", -1);
  guint n = g_strv_length(parts);
  while (n > 0 && parts[n - 1][0] == '\0')
    n--; /* a directory's trailing '/' */
  int fd = dup(st->stage_fd);
  for (guint i = 0; fd >= 0 && i + 1 < n; i++) {
    int next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && mkdirat(fd, parts[i], 0700) == 0)
      next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0)
      ferry_set_error(error, FERRY_ERR_IO, "cannot make the folder for %s: %s", path,
                      g_strerror(errno));
    close(fd);
    fd = next;
  }
  *name = g_strdup(n > 0 ? parts[n - 1] : "");
  return fd;
}

static gboolean
on_tar_entry(const FerryTarEntry *e, gpointer user, GError **error)
{
  LinkReceive *st = user;
  g_autofree char *name = NULL;
  int parent = open_parent(st, e->path, &name, error);
  if (parent < 0)
    return FALSE;
  gboolean ok = TRUE;
  if (e->type == FERRY_TAR_DIR) {
    if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST)
      ok = ferry_set_error(error, FERRY_ERR_IO, "cannot make %s: %s", e->path, g_strerror(errno));
    DirMode d = {g_strdup(e->path), e->mode, e->mtime};
    g_array_append_val(st->dirs, d);
  } else if (e->type == FERRY_TAR_SYMLINK) {
    if (symlinkat(e->link, parent, name) < 0)
      ok = ferry_set_error(error, FERRY_ERR_IO, "cannot make the link %s: %s", e->path,
                           g_strerror(errno));
  } else {
    st->file_fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (st->file_fd < 0)
      ok = ferry_set_error(error, FERRY_ERR_IO, "cannot write %s: %s", e->path, g_strerror(errno));
    st->files++;
  }
  close(parent);
  g_free(st->entry_path);
  st->entry_path = g_strdup(e->path);
  st->entry_mode = e->mode;
  st->entry_mtime = e->mtime;
  return ok;
}

static gboolean
write_all(int fd, const guint8 *data, gsize len, guint64 offset, const char *what, GError **error)
{
  while (len > 0) {
    ssize_t n = pwrite(fd, data, len, (off_t)offset);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return ferry_set_error(error, errno == ENOSPC ? FERRY_ERR_TOO_LONG : FERRY_ERR_IO,
                             "cannot write %s: %s", what, g_strerror(errno));
    data += n;
    len -= (gsize)n;
    offset += (guint64)n;
  }
  return TRUE;
}

static gboolean
on_tar_data(const guint8 *data, gsize len, gpointer user, GError **error)
{
  LinkReceive *st = user;
  off_t at = lseek(st->file_fd, 0, SEEK_CUR);
  if (!write_all(st->file_fd, data, len, (guint64)at, st->entry_path, error))
    return FALSE;
  lseek(st->file_fd, (off_t)len, SEEK_CUR);
  st->written += len;
  return TRUE;
}

static gboolean
on_tar_entry_end(gpointer user, GError **error)
{
  LinkReceive *st = user;
  if (st->file_fd >= 0) {
    struct timespec t[2] = {{st->entry_mtime, 0}, {st->entry_mtime, 0}};
    fchmod(st->file_fd, st->entry_mode & 0777);
    futimens(st->file_fd, t);
    close(st->file_fd);
    st->file_fd = -1;
  }
  g_clear_pointer(&st->entry_path, g_free);
  return TRUE;
}

static const FerryTarCallbacks tar_callbacks = {on_tar_entry, on_tar_data, on_tar_entry_end};

/* Removes what is beneath fd's folder name (no symlink is followed). */
static void
remove_tree(int dir_fd, const char *name)
{
  int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    DIR *d = fdopendir(fd);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        continue;
      if (unlinkat(fd, de->d_name, 0) < 0 && (errno == EISDIR || errno == EPERM))
        remove_tree(fd, de->d_name);
    }
    if (d != NULL)
      closedir(d);
    else
      close(fd);
  }
  unlinkat(dir_fd, name, AT_REMOVEDIR);
}

/* "name", else "name (1)", "name (2)"… (before the extension of a file). */
static char *
free_name(const char *name, gboolean is_dir, guint n)
{
  if (n == 0)
    return g_strdup(name);
  const char *dot = is_dir ? NULL : strrchr(name, '.');
  if (dot == NULL || dot == name)
    return g_strdup_printf("%s (%u)", name, n);
  return g_strdup_printf("%.*s (%u)%s", (int)(dot - name), name, n, dot);
}

/* Renames from_fd/from into the output folder as name, or a free variant
 * of it ("name (1)"…; a file is replaced with --overwrite); returns the
 * name used (free with g_free()), or NULL with error. */
static char *
move_into_place(LinkReceive *st, int from_fd, const char *from, const char *name, gboolean is_dir,
                GError **error)
{
  for (guint n = 0; n < 1000; n++) {
    char *target = free_name(name, is_dir, n);
    unsigned flags = st->s->overwrite && !is_dir ? 0 : RENAME_NOREPLACE;
    if (renameat2(from_fd, from, st->dir_fd, target, flags) == 0)
      return target;
    int e = errno;
    g_free(target);
    if (e != EEXIST && e != ENOTEMPTY) {
      ferry_set_error(error, FERRY_ERR_IO, "cannot put %s in place: %s", name, g_strerror(e));
      return NULL;
    }
  }
  ferry_set_error(error, FERRY_ERR_EXISTS, "%s (1) … (999) all exist: clean up the folder", name);
  return NULL;
}

/* The folder is complete: modes and times of its folders, then its
 * top-level entries into place. */
static gboolean
finish_folder(LinkReceive *st, GString *placed, GError **error)
{
  for (guint i = st->dirs->len; i-- > 0;) {
    const DirMode *d = &g_array_index(st->dirs, DirMode, i);
    g_autofree char *name = NULL;
    int parent = open_parent(st, d->path, &name, NULL);
    if (parent < 0)
      continue;
    struct timespec t[2] = {{d->mtime, 0}, {d->mtime, 0}};
    fchmodat(parent, name, (d->mode & 0777) | 0700, 0);
    utimensat(parent, name, t, AT_SYMLINK_NOFOLLOW);
    close(parent);
  }
  int fd = dup(st->stage_fd);
  DIR *dir = fdopendir(fd);
  if (dir == NULL)
    return ferry_set_error(error, FERRY_ERR_IO, "cannot list %s: %s", st->part, g_strerror(errno));
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  struct dirent *de;
  while ((de = readdir(dir)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      g_ptr_array_add(names, g_strdup(de->d_name));
  closedir(dir);
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < names->len; i++) {
    struct stat sb;
    gboolean is_dir = fstatat(st->stage_fd, names->pdata[i], &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                      S_ISDIR(sb.st_mode);
    char *used = move_into_place(st, st->stage_fd, names->pdata[i], names->pdata[i], is_dir, error);
    ok = used != NULL;
    if (ok)
      g_string_append_printf(placed, "%s%s%s", placed->len > 0 ? ", " : "", used,
                             is_dir ? "/" : "");
    g_free(used);
  }
  g_ptr_array_unref(names);
  if (ok)
    unlinkat(st->dir_fd, st->part, AT_REMOVEDIR);
  return ok;
}

/* ---- the download ----------------------------------------------------------------- */

static gboolean
consume_plain(LinkReceive *st, const guint8 *data, gsize len, GError **error)
{
  if (len == 0)
    return TRUE;
  if (st->folder)
    return ferry_tar_reader_feed(st->tar, data, len, error);
  if (!write_all(st->part_fd, data, len, st->have + st->written, st->part, error))
    return FALSE;
  st->written += len;
  return TRUE;
}

static gboolean
consume(LinkReceive *st, const guint8 *data, gsize len, GError **error)
{
  if (st->cipher == NULL)
    return consume_plain(st, data, len, error);
  g_byte_array_set_size(st->plain, 0);
  return ferry_link_cipher_feed(st->cipher, data, len, st->plain, error) &&
         consume_plain(st, st->plain->data, st->plain->len, error);
}

static void
say_progress(LinkReceive *st, gboolean force)
{
  gint64 now = g_get_monotonic_time();
  if (!force && now - st->said_us < G_USEC_PER_SEC)
    return;
  st->said_us = now;
  JsonBuilder *b = cli_output_event(st->out, "progress");
  if (b != NULL) {
    json_builder_set_member_name(b, "received");
    json_builder_add_int_value(b, (gint64)st->received);
    json_builder_set_member_name(b, "total");
    json_builder_add_int_value(b, st->expected);
    cli_output_emit(st->out, b);
  }
}

static int
exit_for(const GError *error)
{
  if (error->domain != FERRY_ERROR)
    return FERRY_EXIT_PEER_LOST;
  switch (error->code) {
  case FERRY_ERROR_AUTH:
  case FERRY_ERROR_CORRUPT:
  case FERRY_ERROR_UNSAFE_PATH:
  case FERRY_ERROR_INVALID:
  case FERRY_ERROR_AMBIGUOUS:
  case FERRY_ERROR_EXISTS:
    return FERRY_EXIT_VERIFY;
  case FERRY_ERROR_TOO_LONG:
    return FERRY_EXIT_DISK_FULL;
  default:
    return FERRY_EXIT_LOCAL_FILE;
  }
}

static void
finish(LinkReceive *st)
{
  GError *error = NULL;
  if (st->expected >= 0 && st->received != (guint64)st->expected) {
    fail(st, FERRY_EXIT_PEER_LOST,
         "the download was cut after %" G_GUINT64_FORMAT " of %" G_GINT64_FORMAT
         " bytes; what arrived is kept: run the same command again to continue",
         st->received, st->expected);
    return;
  }
  if (st->cipher != NULL) {
    g_byte_array_set_size(st->plain, 0);
    if (!ferry_link_cipher_finish(st->cipher, st->plain, &error) ||
        !consume_plain(st, st->plain->data, st->plain->len, &error)) {
      fail(st, exit_for(error), "%s", error->message);
      g_error_free(error);
      return;
    }
  }
  GString *placed = g_string_new(NULL);
  gboolean ok;
  if (st->folder) {
    ok = ferry_tar_reader_finish(st->tar, &error) && finish_folder(st, placed, &error);
  } else {
    mode_t mask = umask(0);
    umask(mask);
    fchmod(st->part_fd, 0666 & ~mask);
    ok = fsync(st->part_fd) == 0 ||
         ferry_set_error(&error, FERRY_ERR_IO, "cannot write %s: %s", st->part, g_strerror(errno));
    close(st->part_fd);
    st->part_fd = -1;
    char *used = ok ? move_into_place(st, st->dir_fd, st->part, st->filename, FALSE, &error) : NULL;
    ok = used != NULL;
    if (ok)
      g_string_append(placed, used);
    g_free(used);
  }
  if (!ok) {
    fail(st, exit_for(error), "%s", error->message);
    g_error_free(error);
    g_string_free(placed, TRUE);
    return;
  }
  double secs = (g_get_monotonic_time() - st->started_us) / 1e6;
  g_autofree char *size = cli_format_bytes(st->folder ? st->written : st->have + st->written);
  g_autofree char *rate = cli_format_rate(secs > 0 ? st->received / secs : 0);
  JsonBuilder *b = cli_output_event(st->out, "finished");
  if (b != NULL) {
    cli_json_add_string(b, "saved", placed->str);
    json_builder_set_member_name(b, "bytes");
    json_builder_add_int_value(b, (gint64)(st->folder ? st->written : st->have + st->written));
    json_builder_set_member_name(b, "encrypted");
    json_builder_add_boolean_value(b, st->encrypted);
    cli_output_emit(st->out, b);
  } else {
    g_autofree char *files =
        st->folder ? g_strdup_printf(", %" G_GUINT64_FORMAT " files", st->files) : g_strdup("");
    cli_output_say(st->out, "received %s%s in %.1f s (%s)%s: %s", size, files, secs, rate,
                   st->encrypted ? ", decrypted and authenticated" : ", length checked",
                   placed->str);
  }
  g_string_free(placed, TRUE);
  st->status = FERRY_EXIT_OK;
  g_main_loop_quit(st->loop);
}

static void
on_read(GObject *source, GAsyncResult *result, gpointer user_data)
{
  LinkReceive *st = user_data;
  GError *error = NULL;
  GBytes *chunk = g_input_stream_read_bytes_finish(G_INPUT_STREAM(source), result, &error);

  if (chunk == NULL) {
    if (st->interrupted)
      fail(st, FERRY_EXIT_INTERRUPTED,
           "interrupted; what arrived is kept: run the same command again to continue");
    else
      fail(st, FERRY_EXIT_PEER_LOST,
           "the download broke after %" G_GUINT64_FORMAT " bytes (%s); what arrived is kept: "
           "run the same command again to continue",
           st->received, error->message);
    g_error_free(error);
    return;
  }
  gsize n = g_bytes_get_size(chunk);
  if (n == 0) {
    g_bytes_unref(chunk);
    finish(st);
    return;
  }
  st->received += n;
  gboolean ok = consume(st, g_bytes_get_data(chunk, NULL), n, &error);
  g_bytes_unref(chunk);
  if (!ok) {
    fail(st, exit_for(error), "%s", error->message);
    g_error_free(error);
    return;
  }
  say_progress(st, FALSE);
  g_input_stream_read_bytes_async(st->body, READ_CHUNK, G_PRIORITY_DEFAULT, st->cancel, on_read,
                                  st);
}

/* The file name the server gives, else the relay's name; never a path. */
static char *
name_from_disposition(SoupMessage *msg, const char *fallback)
{
  GHashTable *params = NULL;
  char *name = NULL;
  if (soup_message_headers_get_content_disposition(soup_message_get_response_headers(msg), NULL,
                                                   &params)) {
    const char *f = g_hash_table_lookup(params, "filename");
    if (f != NULL && *f != '\0' && strchr(f, '/') == NULL && strcmp(f, ".") != 0 &&
        strcmp(f, "..") != 0)
      name = g_strdup(f);
    g_hash_table_destroy(params);
  }
  return name != NULL ? name : g_strdup(fallback);
}

static void
on_error_body(GObject *source, GAsyncResult *result, gpointer user_data)
{
  LinkReceive *st = user_data;
  SoupMessage *msg = soup_session_get_async_result_message(SOUP_SESSION(source), result);
  GBytes *body = soup_session_send_and_read_finish(SOUP_SESSION(source), result, NULL);
  guint code = soup_message_get_status(msg);
  g_autofree char *text =
      body != NULL ? g_strndup(g_bytes_get_data(body, NULL), g_bytes_get_size(body)) : NULL;
  if (text != NULL)
    g_strstrip(text);
  int status = code == SOUP_STATUS_NOT_FOUND || code == SOUP_STATUS_GONE ? FERRY_EXIT_NO_SUCH_CODE
                                                                         : FERRY_EXIT_FAILURE;
  fail(st, status, "the server answered HTTP %u: %s", code,
       text != NULL && *text != '\0' ? text : soup_message_get_reason_phrase(msg));
  if (body != NULL)
    g_bytes_unref(body);
}

static void
on_response(GObject *source, GAsyncResult *result, gpointer user_data)
{
  LinkReceive *st = user_data;
  GError *error = NULL;
  SoupMessage *msg = soup_session_get_async_result_message(SOUP_SESSION(source), result);
  st->body = soup_session_send_finish(SOUP_SESSION(source), result, &error);
  if (st->body == NULL) {
    fail(st, st->interrupted ? FERRY_EXIT_INTERRUPTED : FERRY_EXIT_NO_SERVER,
         "cannot download %s: %s", st->url, error->message);
    g_error_free(error);
    return;
  }
  guint code = soup_message_get_status(msg);
  SoupMessageHeaders *h = soup_message_get_response_headers(msg);
  if (code != SOUP_STATUS_OK && code != SOUP_STATUS_PARTIAL_CONTENT) {
    g_clear_object(&st->body);
    /* the refusal's one line of text, for the user */
    SoupMessage *again = soup_message_new("GET", st->url);
    soup_session_send_and_read_async(st->session, again, G_PRIORITY_DEFAULT, st->cancel,
                                     on_error_body, st);
    g_object_unref(again);
    return;
  }
  const char *type = soup_message_headers_get_content_type(h, NULL);
  const char *kind = soup_message_headers_get_one(h, "X-Ferry-Kind");
  st->folder = (type != NULL && strcmp(type, "application/x-tar") == 0) ||
               (kind != NULL && strcmp(kind, "folder") == 0);
  st->expected = soup_message_headers_get_content_length(h);
  if (soup_message_headers_get_encoding(h) != SOUP_ENCODING_CONTENT_LENGTH)
    st->expected = -1;
  g_autofree char *served = name_from_disposition(msg, st->name);
  if (st->encrypted && g_str_has_suffix(served, ".ferry-enc"))
    served[strlen(served) - strlen(".ferry-enc")] = '\0';
  st->filename = g_steal_pointer(&served);

  guint64 first_record = 0;
  if (code == SOUP_STATUS_PARTIAL_CONTENT && st->have > 0 && !st->folder) {
    goffset start = -1, end = -1, total = -1;
    guint64 want = st->encrypted
                       ? FERRY_LINK_HEADER_LEN + st->have / FERRY_LINK_RECORD * FERRY_LINK_SEALED
                       : st->have;
    if (!soup_message_headers_get_content_range(h, &start, &end, &total) ||
        (guint64)start != want) {
      fail(st, FERRY_EXIT_FAILURE,
           "the server resumed at byte %" G_GOFFSET_FORMAT ", not %" G_GUINT64_FORMAT
           ": remove %s and download again",
           start, want, st->part);
      return;
    }
    first_record = st->have / FERRY_LINK_RECORD;
    cli_output_say(st->out, "resuming after %" G_GUINT64_FORMAT " bytes already here", st->have);
  } else if (st->have > 0 && !st->folder) {
    /* the server sent everything again: start over */
    if (ftruncate(st->part_fd, 0) < 0) {
      fail(st, FERRY_EXIT_LOCAL_FILE, "cannot reuse %s: %s", st->part, g_strerror(errno));
      return;
    }
    st->have = 0;
  }
  if (st->encrypted &&
      (st->cipher = ferry_link_cipher_new(st->key, FALSE, first_record, &error)) == NULL) {
    fail(st, FERRY_EXIT_FAILURE, "%s", error->message);
    g_error_free(error);
    return;
  }
  if (st->folder) {
    if (st->part_fd >= 0) {
      close(st->part_fd);
      st->part_fd = -1;
      unlinkat(st->dir_fd, st->part, 0);
    }
    remove_tree(st->dir_fd, st->part);
    if (mkdirat(st->dir_fd, st->part, 0700) < 0 ||
        (st->stage_fd =
             openat(st->dir_fd, st->part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
      fail(st, FERRY_EXIT_LOCAL_FILE, "cannot make %s: %s", st->part, g_strerror(errno));
      return;
    }
    st->tar = ferry_tar_reader_new(&tar_callbacks, st);
  }
  g_autofree char *size = st->expected >= 0 ? cli_format_bytes((guint64)st->expected) : NULL;
  cli_output_say(st->out, "Receiving %s%s%s%s", st->filename, st->folder ? " (a folder)" : "",
                 size != NULL ? ", " : "", size != NULL ? size : "");
  g_input_stream_read_bytes_async(st->body, READ_CHUNK, G_PRIORITY_DEFAULT, st->cancel, on_read,
                                  st);
}

static gboolean
on_signal(gpointer user_data)
{
  LinkReceive *st = user_data;
  if (st->interrupted) {
    g_main_loop_quit(st->loop);
    return G_SOURCE_CONTINUE;
  }
  st->interrupted = TRUE;
  g_cancellable_cancel(st->cancel);
  return G_SOURCE_CONTINUE;
}

/* Splits url into the link proper, the relay NAME and the key. */
static gboolean
parse_link(LinkReceive *st, const char *url, GError **error)
{
  g_autoptr(GUri) uri = g_uri_parse(url, G_URI_FLAGS_ENCODED_FRAGMENT, NULL);
  const char *path = uri != NULL ? g_uri_get_path(uri) : NULL;
  if (path == NULL || !g_str_has_prefix(path, "/r/") || path[3] == '\0' ||
      strchr(path + 3, '/') != NULL)
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "'%s' is not a ferry link: links look like https://SERVER/r/NAME "
                           "(with #k=… when encrypted)",
                           url);
  for (const char *p = path + 3; *p != '\0'; p++)
    if (!g_ascii_isalnum(*p) && *p != '.' && *p != '_' && *p != '-')
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "the link's name '%s' has characters no ferry link has: copy the "
                             "link again",
                             path + 3);
  st->name = g_strdup(path + 3);
  const char *fragment = g_uri_get_fragment(uri);
  if (fragment != NULL && *fragment != '\0') {
    g_auto(GStrv) params = g_strsplit(fragment, "&", -1);
    for (guint i = 0; params[i] != NULL; i++)
      if (g_str_has_prefix(params[i], "k=")) {
        if (!ferry_link_key_decode(params[i] + 2, st->key, error))
          return FALSE;
        st->encrypted = TRUE;
      }
  }
  g_autoptr(GUri) bare = g_uri_build(G_URI_FLAGS_NONE, g_uri_get_scheme(uri), NULL,
                                     g_uri_get_host(uri), g_uri_get_port(uri), path, NULL, NULL);
  st->url = g_uri_to_string(bare);
  return TRUE;
}

int
cli_link_receive(CliSettings *s, const char *url, gboolean verbose)
{
  LinkReceive st = {.s = s, .dir_fd = -1, .part_fd = -1, .stage_fd = -1, .file_fd = -1};
  GError *error = NULL;
  CliOutputOptions oo = {.quiet = s->quiet, .json = s->json, .verbose = verbose};

  st.status = -1;
  st.out = cli_output_new(&oo);
  st.loop = g_main_loop_new(NULL, FALSE);
  st.cancel = g_cancellable_new();
  st.plain = g_byte_array_new();
  st.dirs = g_array_new(FALSE, FALSE, sizeof(DirMode));

  if (!parse_link(&st, url, &error)) {
    st.status = FERRY_EXIT_USAGE;
    cli_output_fail(st.out, st.status, "%s", error->message);
    g_error_free(error);
    goto out;
  }
  const char *dir = s->out_dir != NULL ? s->out_dir : ".";
  if (g_mkdir_with_parents(dir, 0755) < 0 ||
      (st.dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    st.status = FERRY_EXIT_LOCAL_FILE;
    cli_output_fail(st.out, st.status,
                    "cannot use the output folder %s: %s; give another with "
                    "--out DIR",
                    dir, g_strerror(errno));
    goto out;
  }
  st.part = g_strdup_printf(".%s.ferry-part", st.name);

  /* A part file from a cut download: continue after what it holds (for
   * an encrypted link, after its last whole record). */
  SoupMessage *msg = soup_message_new("GET", st.url);
  SoupMessageHeaders *h = soup_message_get_request_headers(msg);
  st.part_fd = openat(st.dir_fd, st.part, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  struct stat sb;
  if (st.part_fd >= 0 && fstat(st.part_fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
    guint64 have = (guint64)sb.st_size;
    if (st.encrypted)
      have -= have % FERRY_LINK_RECORD;
    if (have > 0 && ftruncate(st.part_fd, (off_t)have) == 0) {
      st.have = have;
      guint64 from = st.encrypted
                         ? FERRY_LINK_HEADER_LEN + have / FERRY_LINK_RECORD * FERRY_LINK_SEALED
                         : have;
      soup_message_headers_set_range(h, (goffset)from, -1);
    }
  }
  soup_message_headers_replace(h, "Accept", "*/*");
  st.session = soup_session_new_with_options("timeout", 0, "idle-timeout", 0, NULL);
  st.started_us = g_get_monotonic_time();
  soup_session_send_async(st.session, msg, G_PRIORITY_DEFAULT, st.cancel, on_response, &st);
  g_object_unref(msg);

  guint sigint = g_unix_signal_add(SIGINT, on_signal, &st);
  guint sigterm = g_unix_signal_add(SIGTERM, on_signal, &st);
  g_main_loop_run(st.loop);
  g_source_remove(sigint);
  g_source_remove(sigterm);

out:
  if (st.status != FERRY_EXIT_OK && st.folder && st.dir_fd >= 0)
    remove_tree(st.dir_fd, st.part); /* a folder starts again from the beginning */
  if (st.status != FERRY_EXIT_OK && !st.folder && st.part_fd >= 0 && st.have + st.written == 0)
    unlinkat(st.dir_fd, st.part, 0); /* nothing to keep */
  if (st.file_fd >= 0)
    close(st.file_fd);
  if (st.part_fd >= 0)
    close(st.part_fd);
  if (st.stage_fd >= 0)
    close(st.stage_fd);
  if (st.dir_fd >= 0)
    close(st.dir_fd);
  for (guint i = 0; i < st.dirs->len; i++)
    g_free(g_array_index(st.dirs, DirMode, i).path);
  g_array_unref(st.dirs);
  ferry_tar_reader_free(st.tar);
  ferry_link_cipher_free(st.cipher);
  g_byte_array_unref(st.plain);
  g_clear_object(&st.body);
  g_clear_object(&st.session);
  g_object_unref(st.cancel);
  g_main_loop_unref(st.loop);
  g_free(st.url);
  g_free(st.name);
  g_free(st.part);
  g_free(st.filename);
  g_free(st.entry_path);
  cli_output_free(st.out);
  return st.status < 0 ? FERRY_EXIT_FAILURE : st.status;
}
