/* Where receivers keep their checkpoints: $XDG_STATE_HOME/ferry/checkpoints
 * holds ID.ckpt (core/checkpoint.h) and ID.info (a GKeyFile naming the
 * output directory and the totals), and partial files sit beside their
 * final place under hidden names until they verify. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/safepath.h"
#include "transfer/transfer-private.h"

#define INFO_GROUP "checkpoint"

char *
ferry_store_dir(const char *dir)
{
  if (dir != NULL)
    return g_strdup(dir);
  return g_build_filename(g_get_user_state_dir(), "ferry", "checkpoints", NULL);
}

char *
ferry_store_key(const char *id_hex, const char *out_dir)
{
  char *digest = g_compute_checksum_for_string(G_CHECKSUM_SHA256, out_dir, -1);
  char *key = g_strdup_printf("%s-%.8s", id_hex, digest);
  g_free(digest);
  return key;
}

static char *
store_file(const char *dir, const char *key, const char *ext)
{
  char *d = ferry_store_dir(dir);
  char *name = g_strconcat(key, ext, NULL);
  char *path = g_build_filename(d, name, NULL);
  g_free(d);
  g_free(name);
  return path;
}

char *
ferry_store_checkpoint_path(const char *dir, const char *key)
{
  return store_file(dir, key, ".ckpt");
}

gboolean
ferry_store_write_info(const char *dir, const char *key, const char *out_dir, guint64 files,
                       guint64 bytes, GError **error)
{
  char *d = ferry_store_dir(dir);
  if (g_mkdir_with_parents(d, 0700) != 0) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot create %s: %s", d, g_strerror(errno));
    g_free(d);
    return FALSE;
  }
  g_free(d);
  GKeyFile *kf = g_key_file_new();
  g_key_file_set_string(kf, INFO_GROUP, "out_dir", out_dir);
  g_key_file_set_uint64(kf, INFO_GROUP, "files", files);
  g_key_file_set_uint64(kf, INFO_GROUP, "bytes", bytes);
  char *path = store_file(dir, key, ".info");
  GError *e = NULL;
  gboolean ok = g_key_file_save_to_file(kf, path, &e);
  if (!ok) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot write %s: %s", path, e->message);
    g_error_free(e);
  }
  g_free(path);
  g_key_file_free(kf);
  return ok;
}

static GKeyFile *
read_info(const char *dir, const char *key)
{
  char *path = store_file(dir, key, ".info");
  GKeyFile *kf = g_key_file_new();
  gboolean ok = g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, NULL);
  g_free(path);
  if (!ok) {
    g_key_file_free(kf);
    return NULL;
  }
  return kf;
}

char *
ferry_store_read_out_dir(const char *dir, const char *key)
{
  GKeyFile *kf = read_info(dir, key);
  if (kf == NULL)
    return NULL;
  char *out = g_key_file_get_string(kf, INFO_GROUP, "out_dir", NULL);
  g_key_file_free(kf);
  return out;
}

void
ferry_store_remove(const char *dir, const char *key)
{
  char *ckpt = store_file(dir, key, ".ckpt");
  char *info = store_file(dir, key, ".info");
  ferry_checkpoint_clean_stale(ckpt);
  unlink(ckpt);
  unlink(info);
  char *lock = store_file(dir, key, ".lock");
  unlink(lock);
  g_free(lock);
  g_free(ckpt);
  g_free(info);
}

int
ferry_store_lock(const char *dir, const char *key, GError **error)
{
  char *d = ferry_store_dir(dir);
  char *path = store_file(dir, key, ".lock");
  int fd = -1;
  if (g_mkdir_with_parents(d, 0700) != 0 ||
      (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
    ferry_set_error(error, FERRY_ERR_IO, "cannot create %s: %s", path, g_strerror(errno));
  } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ferry_set_error(error, FERRY_ERR_EXISTS,
                    "another ferry receive is already receiving this transfer into the same "
                    "folder (lock %s); wait for it, or use another --out",
                    path);
    close(fd);
    fd = -1;
  }
  g_free(d);
  g_free(path);
  return fd;
}

char *
ferry_store_part_path(const char *path, const char *id_hex)
{
  const char *slash = strrchr(path, '/');
  const char *base = slash != NULL ? slash + 1 : path;
  int dir_len = slash != NULL ? (int)(slash - path + 1) : 0;
  /* ".NAME.ID.ferry-part" must stay within a component's 255 bytes. */
  if (strlen(base) + FERRY_TRANSFER_ID_HEX_LEN + 13 <= 255)
    return g_strdup_printf("%.*s.%s.%s.ferry-part", dir_len, path, base, id_hex);
  char *digest = g_compute_checksum_for_string(G_CHECKSUM_SHA256, base, -1);
  char *part = g_strdup_printf("%.*s.ferry-%.32s.%s.ferry-part", dir_len, path, digest, id_hex);
  g_free(digest);
  return part;
}

void
ferry_store_unlink_beneath(int rootfd, const char *relpath)
{
  char *dir = g_path_get_dirname(relpath);
  char *base = g_path_get_basename(relpath);
  int dfd = strcmp(dir, ".") == 0 ? dup(rootfd)
                                  : ferry_openat_beneath(rootfd, dir, O_RDONLY | O_DIRECTORY, 0,
                                                         FERRY_BENEATH_NONE, NULL);
  if (dfd >= 0) {
    unlinkat(dfd, base, 0);
    close(dfd);
  }
  g_free(dir);
  g_free(base);
}

/* ---- the public checkpoint list ----------------------------------------- */

static void
info_free(gpointer p)
{
  FerryCheckpointInfo *i = p;
  g_free(i->path);
  g_free(i->out_dir);
  g_free(i);
}

/* "<16 hex>-<8 hex>", lowercase. */
static gboolean
is_key(const char *name, gsize len)
{
  if (len != FERRY_CHECKPOINT_KEY_LEN || name[FERRY_TRANSFER_ID_HEX_LEN] != '-')
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (i != FERRY_TRANSFER_ID_HEX_LEN && (!g_ascii_isxdigit(name[i]) || g_ascii_isupper(name[i])))
      return FALSE;
  return TRUE;
}

GPtrArray *
ferry_checkpoints_list(const char *dir, GError **error)
{
  GPtrArray *list = g_ptr_array_new_with_free_func(info_free);
  char *d = ferry_store_dir(dir);
  GError *e = NULL;
  GDir *gd = g_dir_open(d, 0, &e);
  if (gd == NULL) {
    gboolean missing = g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT);
    if (!missing) {
      ferry_set_error(error, FERRY_ERR_IO, "cannot read %s: %s", d, e->message);
      g_ptr_array_unref(list);
      list = NULL;
    }
    g_error_free(e);
    g_free(d);
    return list;
  }
  const char *name;
  while ((name = g_dir_read_name(gd)) != NULL) {
    gsize n = strlen(name);
    if (n < 6 || strcmp(name + n - 5, ".info") != 0 || !is_key(name, n - 5))
      continue;
    FerryCheckpointInfo *info = g_new0(FerryCheckpointInfo, 1);
    memcpy(info->id, name, FERRY_TRANSFER_ID_HEX_LEN);
    memcpy(info->key, name, FERRY_CHECKPOINT_KEY_LEN);
    info->path = ferry_store_checkpoint_path(dir, info->key);
    GKeyFile *kf = read_info(dir, info->key);
    if (kf != NULL) {
      info->out_dir = g_key_file_get_string(kf, INFO_GROUP, "out_dir", NULL);
      info->files = g_key_file_get_uint64(kf, INFO_GROUP, "files", NULL);
      info->bytes_total = g_key_file_get_uint64(kf, INFO_GROUP, "bytes", NULL);
      g_key_file_free(kf);
    }
    char *info_path = store_file(dir, info->key, ".info");
    struct stat st;
    if (stat(info->path, &st) == 0 || stat(info_path, &st) == 0)
      info->mtime = st.st_mtime;
    g_free(info_path);
    FerryCheckpoint *cp = ferry_checkpoint_load(info->path, NULL);
    if (cp != NULL) {
      for (guint i = 0; i < cp->files->len; i++) {
        FerryCheckpointFile *f = g_ptr_array_index(cp->files, i);
        for (guint64 c = 0; c < f->n_chunks; c++)
          if (ferry_checkpoint_file_is_verified(f, c))
            info->bytes_verified += MIN((guint64)cp->chunk_size, f->size - c * cp->chunk_size);
      }
      ferry_checkpoint_free(cp);
    } else if (g_file_test(info->path, G_FILE_TEST_EXISTS) || info->out_dir == NULL) {
      info->damaged = TRUE;
    }
    g_ptr_array_add(list, info);
  }
  g_dir_close(gd);
  g_free(d);
  return list;
}

/* Removes a checkpoint and the partial files it describes. */
static void
delete_one(const char *dir, const FerryCheckpointInfo *info)
{
  FerryCheckpoint *cp = ferry_checkpoint_load(info->path, NULL);
  if (cp != NULL && info->out_dir != NULL) {
    int rootfd = ferry_outdir_open(info->out_dir, FALSE, NULL);
    if (rootfd >= 0) {
      for (guint i = 0; i < cp->files->len; i++) {
        FerryCheckpointFile *f = g_ptr_array_index(cp->files, i);
        char *part = ferry_store_part_path(f->path, info->id);
        ferry_store_unlink_beneath(rootfd, part);
        g_free(part);
      }
      close(rootfd);
    }
  }
  ferry_checkpoint_free(cp);
  ferry_store_remove(dir, info->key);
}

gboolean
ferry_checkpoint_delete(const char *dir, const char *id, GError **error)
{
  GPtrArray *list = ferry_checkpoints_list(dir, error);
  if (list == NULL)
    return FALSE;
  const FerryCheckpointInfo *found = NULL;
  guint matches = 0;
  for (guint i = 0; i < list->len; i++) {
    const FerryCheckpointInfo *info = g_ptr_array_index(list, i);
    if (id[0] != '\0' && g_str_has_prefix(info->key, id)) {
      found = info;
      matches++;
    }
  }
  gboolean ok = matches == 1;
  if (matches == 0)
    ferry_set_error(error, FERRY_ERR_NOT_FOUND,
                    "no checkpoint with id '%s' (see 'ferry checkpoint list')", id);
  else if (matches > 1)
    ferry_set_error(error, FERRY_ERR_AMBIGUOUS,
                    "%u checkpoints start with '%s'; give more of the id", matches, id);
  else
    delete_one(dir, found);
  g_ptr_array_unref(list);
  return ok;
}

guint
ferry_checkpoints_clean(const char *dir, gint64 ttl_seconds)
{
  GPtrArray *list = ferry_checkpoints_list(dir, NULL);
  guint n = 0;
  gint64 now = g_get_real_time() / G_USEC_PER_SEC;
  for (guint i = 0; list != NULL && i < list->len; i++) {
    const FerryCheckpointInfo *info = g_ptr_array_index(list, i);
    if (ttl_seconds == 0 || now - info->mtime > ttl_seconds) {
      delete_one(dir, info);
      n++;
    }
  }
  if (list != NULL)
    g_ptr_array_unref(list);
  return n;
}
