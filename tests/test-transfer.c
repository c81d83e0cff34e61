/* The transfer engine end to end through the public API: a real ferry
 * serve, a listener, a receiver, real files on disk. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ferry/ferry.h>

#include "core/checkpoint.h"
#include "transfer/transfer-private.h"
#include "testutil.h"

static TestServer srv;
static char *server_url;
static char *ckpt_dir;

typedef struct Run_ {
  /* sender */
  FerrySource *source;
  FerryListener *listener;
  FerryTransfer *send;
  char *code;
  gboolean send_done;
  GError *send_error;
  /* receiver */
  FerryReceiveOptions ropts;
  FerryTransfer *recv;
  gboolean recv_done;
  GError *recv_error;
  gboolean decline;
  gboolean cancel_after_first_chunk;
  guint64 offered_files, offered_bytes;
  GPtrArray *events;                    /* "status path -> final" */
  void (*after_scan)(struct Run_ *run); /* between the scan and the send */
  const char *grow;                     /* the file after_scan changes */
  char *tmp;
} Run;

static void
on_send_finished(FerryTransfer *t, const GError *error, gpointer data)
{
  Run *run = data;
  (void)t;
  run->send_done = TRUE;
  if (error != NULL)
    run->send_error = g_error_copy(error);
}

static const FerryTransferHandlers send_handlers = {NULL, NULL, on_send_finished};

static void
on_code(FerryListener *l, const char *code, gpointer data)
{
  Run *run = data;
  (void)l;
  run->code = g_strdup(code);
}

static void
on_connection(FerryListener *l, FerryConnection *conn, gpointer data)
{
  Run *run = data;
  (void)l;
  run->send = ferry_transfer_send(run->source, conn, &send_handlers, run);
}

static void
on_failed(FerryListener *l, const char *peer, const GError *error, gpointer data)
{
  (void)l, (void)peer, (void)data;
  g_test_message("attempt failed: %s", error->message);
}

static const FerryListenerHandlers listener_handlers = {on_code, on_connection, on_failed, NULL};

static void
on_offer(FerryTransfer *t, const FerryTransferSummary *s, gpointer data)
{
  Run *run = data;
  run->offered_files = s->files;
  run->offered_bytes = s->bytes;
  if (run->decline)
    ferry_transfer_decline(t, "not today");
  else
    ferry_transfer_accept(t);
}

static void
on_file(FerryTransfer *t, const FerryFileEvent *ev, gpointer data)
{
  Run *run = data;
  static const char *names[] = {"done", "renamed", "same", "skipped"};
  (void)t;
  g_ptr_array_add(run->events, g_strdup_printf("%s %s -> %s", names[ev->status], ev->path,
                                               ev->final_path ? ev->final_path : "-"));
}

static void
on_recv_finished(FerryTransfer *t, const GError *error, gpointer data)
{
  Run *run = data;
  (void)t;
  run->recv_done = TRUE;
  if (error != NULL)
    run->recv_error = g_error_copy(error);
}

static const FerryTransferHandlers recv_handlers = {on_offer, on_file, on_recv_finished};

static void
on_connected(GObject *src, GAsyncResult *res, gpointer data)
{
  Run *run = data;
  GError *error = NULL;
  (void)src;
  FerryConnection *conn = ferry_connect_finish(res, &error);
  g_assert_no_error(error);
  run->recv = ferry_transfer_receive(conn, &run->ropts, &recv_handlers, run, &error);
  g_assert_no_error(error);
}

static void
options(FerryConnectOptions *o)
{
  ferry_connect_options_init(o);
  o->server_url = server_url;
}

/* Sends paths to out_dir; returns when both sides finished. */
static void
run_transfer(Run *run, const char *const *paths, const FerrySendOptions *sopts, const char *out_dir)
{
  GError *error = NULL;
  FerryConnectOptions o;
  options(&o);
  run->events = g_ptr_array_new_with_free_func(g_free);
  run->source = ferry_source_new(paths, sopts, &error);
  g_assert_no_error(error);
  if (run->after_scan != NULL)
    run->after_scan(run);
  run->listener = ferry_listener_new(&o, &listener_handlers, run, &error);
  g_assert_no_error(error);
  WAIT_FOR(run->code != NULL, 10);
  if (run->ropts.out_dir == NULL)
    run->ropts.out_dir = out_dir;
  run->ropts.checkpoint_dir = ckpt_dir;
  ferry_connect_async(&o, run->code, NULL, on_connected, run);
  WAIT_FOR(run->recv_done && run->send_done, 60);
}

static void
run_clear(Run *run)
{
  ferry_transfer_free(run->send);
  ferry_transfer_free(run->recv);
  ferry_listener_free(run->listener);
  ferry_source_free(run->source);
  g_clear_error(&run->send_error);
  g_clear_error(&run->recv_error);
  g_ptr_array_unref(run->events);
  g_free(run->code);
}

static void
write_file(const char *path, gsize size, guint seed)
{
  guint8 *buf = g_malloc(size + 1);
  GRand *r = g_rand_new_with_seed(seed);
  for (gsize i = 0; i < size; i++)
    buf[i] = (guint8)g_rand_int(r);
  g_rand_free(r);
  g_assert_true(g_file_set_contents(path, (const char *)buf, (gssize)size, NULL));
  g_free(buf);
}

static void
assert_same_file(const char *a, const char *b)
{
  char *da, *db;
  gsize la, lb;
  g_assert_true(g_file_get_contents(a, &da, &la, NULL));
  g_assert_true(g_file_get_contents(b, &db, &lb, NULL));
  g_assert_cmpuint(la, ==, lb);
  g_assert_true(memcmp(da, db, la) == 0);
  g_free(da);
  g_free(db);
}

static char *
make_tmp(void)
{
  char *tmp = g_dir_make_tmp("ferry-transfer-XXXXXX", NULL);
  g_assert_nonnull(tmp);
  /* g_get_user_state_dir() is read once per process: each test names its
   * checkpoint folder itself. */
  g_free(ckpt_dir);
  ckpt_dir = g_build_filename(tmp, "state", "ferry", "checkpoints", NULL);
  return tmp;
}

static void
rm_rf(const char *path)
{
  char *argv[] = {"rm", "-rf", (char *)path, NULL};
  g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL, NULL);
}

/* A tree: sizes 0, 1, chunk ± 1, several chunks; an empty folder; unicode
 * names; a mode; a symlink. */
static void
test_tree(void)
{
  char *tmp = make_tmp();
  char *src = g_build_filename(tmp, "src", "tree", NULL);
  char *out = g_build_filename(tmp, "out", NULL);
  char *p;
  g_assert_cmpint(g_mkdir_with_parents(src, 0755), ==, 0);
  const gsize sizes[] = {0, 1, 65535, 65536, 65537, 300000};
  for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
    char name[32];
    g_snprintf(name, sizeof name, "f%u", i);
    p = g_build_filename(src, name, NULL);
    write_file(p, sizes[i], i + 1);
    g_free(p);
  }
  p = g_build_filename(src, "empty dir", NULL);
  g_assert_cmpint(mkdir(p, 0750), ==, 0);
  g_free(p);
  p = g_build_filename(src, "naïve ünïcödé", "日本.txt", NULL);
  char *d = g_path_get_dirname(p);
  g_assert_cmpint(mkdir(d, 0755), ==, 0);
  write_file(p, 1000, 99);
  g_assert_cmpint(chmod(p, 0640), ==, 0);
  g_free(d);
  g_free(p);
  p = g_build_filename(src, "link", NULL);
  g_assert_cmpint(symlink("f1", p), ==, 0);
  g_free(p);

  const char *paths[] = {src, NULL};
  FerrySendOptions so;
  ferry_send_options_init(&so);
  so.chunk_size = 65536;
  Run run = {0};
  ferry_receive_options_init(&run.ropts);
  run_transfer(&run, paths, &so, out);
  g_assert_no_error(run.send_error);
  g_assert_no_error(run.recv_error);
  g_assert_cmpuint(run.offered_files, ==, 7);
  g_assert_cmpuint(run.offered_bytes, ==, 0 + 1 + 65535 + 65536 + 65537 + 300000 + 1000);

  for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
    char name[32];
    g_snprintf(name, sizeof name, "tree/f%u", i);
    char *a = g_build_filename(tmp, "src", name, NULL);
    char *b = g_build_filename(out, name, NULL);
    assert_same_file(a, b);
    g_free(a);
    g_free(b);
  }
  struct stat st;
  p = g_build_filename(out, "tree", "naïve ünïcödé", "日本.txt", NULL);
  g_assert_cmpint(stat(p, &st), ==, 0);
  g_assert_cmpint(st.st_mode & 0777, ==, 0640);
  g_assert_cmpint(st.st_size, ==, 1000);
  g_free(p);
  p = g_build_filename(out, "tree", "empty dir", NULL);
  g_assert_cmpint(stat(p, &st), ==, 0);
  g_assert_true(S_ISDIR(st.st_mode));
  g_assert_cmpint(st.st_mode & 0777, ==, 0750);
  g_free(p);
  p = g_build_filename(out, "tree", "link", NULL);
  char *target = g_file_read_link(p, NULL);
  g_assert_cmpstr(target, ==, "f1");
  g_free(target);
  g_free(p);
  /* No temporary names left behind, no checkpoint kept. */
  char *argv[] = {"sh", "-c", "find . -name '*.ferry-part' | wc -l", NULL};
  char *outp = NULL;
  g_assert_true(
      g_spawn_sync(out, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &outp, NULL, NULL, NULL));
  g_assert_cmpstr(g_strstrip(outp), ==, "0");
  g_free(outp);
  GPtrArray *list = ferry_checkpoints_list(ckpt_dir, NULL);
  g_assert_cmpuint(list->len, ==, 0);
  g_ptr_array_unref(list);

  /* Again into the same folder: every file exists with other content or
   * the same; nothing is overwritten. */
  run_clear(&run);
  Run again = {0};
  ferry_receive_options_init(&again.ropts);
  run_transfer(&again, paths, &so, out);
  g_assert_no_error(again.recv_error);
  gboolean renamed = FALSE;
  for (guint i = 0; i < again.events->len; i++)
    if (strstr(g_ptr_array_index(again.events, i), "renamed tree/f5 -> tree/f5 (1)") != NULL)
      renamed = TRUE;
  g_assert_true(renamed);
  p = g_build_filename(out, "tree", "f5 (1)", NULL);
  g_assert_true(g_file_test(p, G_FILE_TEST_IS_REGULAR));
  g_free(p);
  run_clear(&again);

  rm_rf(tmp);
  g_free(src);
  g_free(out);
  g_free(tmp);
}

static void
test_decline(void)
{
  char *tmp = make_tmp();
  char *src = g_build_filename(tmp, "a.bin", NULL);
  char *out = g_build_filename(tmp, "out", NULL);
  write_file(src, 5000, 7);
  const char *paths[] = {src, NULL};
  Run run = {0};
  ferry_receive_options_init(&run.ropts);
  run.decline = TRUE;
  run_transfer(&run, paths, NULL, out);
  g_assert_error(run.send_error, FERRY_ERROR, FERRY_ERROR_STATE);
  g_assert_nonnull(strstr(run.send_error->message, "not today"));
  g_assert_error(run.recv_error, FERRY_ERROR, FERRY_ERROR_STATE);
  char *p = g_build_filename(out, "a.bin", NULL);
  g_assert_false(g_file_test(p, G_FILE_TEST_EXISTS));
  g_free(p);
  run_clear(&run);
  rm_rf(tmp);
  g_free(src);
  g_free(out);
  g_free(tmp);
}

/* A partial file from an earlier attempt: verified chunks are kept, a
 * corrupted one is sent again, and the result is exact. */
static void
run_resume(gboolean change_source)
{
  char *tmp = make_tmp();
  char *src = g_build_filename(tmp, "big.bin", NULL);
  char *out = g_build_filename(tmp, "out", NULL);
  write_file(src, 10 * 65536 + 123, 42);
  const char *paths[] = {src, NULL};
  FerrySendOptions so;
  ferry_send_options_init(&so);
  so.chunk_size = 65536;

  /* First run completes; fake an interrupted one from its checkpoint by
   * building the state a killed receiver leaves: a checkpoint with chunks
   * 0-6 verified and the partial file, chunk 3 damaged on disk. */
  GError *error = NULL;
  FerrySource *source = ferry_source_new(paths, &so, &error);
  g_assert_no_error(error);
  FerryTransferSummary sum;
  ferry_source_get_summary(source, &sum);
  char *id = g_strdup(sum.id);
  ferry_source_free(source);

  Run first = {0};
  ferry_receive_options_init(&first.ropts);
  run_transfer(&first, paths, &so, out);
  g_assert_no_error(first.recv_error);
  run_clear(&first);
  char *final = g_build_filename(out, "big.bin", NULL);
  assert_same_file(src, final);

  /* The partial: the file moved back to its temporary name, truncated
   * after chunk 6, chunk 3 damaged. */
  char *part_name = g_strdup_printf(".big.bin.%s.ferry-part", id);
  char *part = g_build_filename(out, part_name, NULL);
  g_assert_cmpint(rename(final, part), ==, 0);
  g_assert_cmpint(truncate(part, 7 * 65536), ==, 0);
  int fd = open(part, O_WRONLY);
  g_assert_cmpint(pwrite(fd, "XXXX", 4, 3 * 65536 + 10), ==, 4);
  close(fd);
  /* The checkpoint the killed receiver would have saved: chunks 0-6
   * verified (3 is damaged on disk, which the receiver must notice). The
   * full transfer id is SHA-256("ferry-transfer-v1" NUL, u32be chunk size,
   * the absolute path NUL) (docs/protocol.md §8). */
  char *state_dir = g_strdup(ckpt_dir);
  g_assert_cmpint(g_mkdir_with_parents(state_dir, 0700), ==, 0);
  char *out_digest = g_compute_checksum_for_string(G_CHECKSUM_SHA256, out, -1);
  char *key = g_strdup_printf("%s-%.8s", id, out_digest);
  g_free(out_digest);
  char *info = g_strdup_printf("%s/%s.info", state_dir, key);
  char *info_text =
      g_strdup_printf("[checkpoint]\nout_dir=%s\nfiles=1\nbytes=%d\n", out, 10 * 65536 + 123);
  g_assert_true(g_file_set_contents(info, info_text, -1, NULL));
  GChecksum *sum_id = g_checksum_new(G_CHECKSUM_SHA256);
  guint8 cs[4] = {0, 1, 0, 0};
  g_checksum_update(sum_id, (const guchar *)"ferry-transfer-v1", 18);
  g_checksum_update(sum_id, cs, 4);
  g_checksum_update(sum_id, (const guchar *)src, (gssize)strlen(src) + 1);
  guint8 tid[32];
  gsize tid_len = sizeof tid;
  g_checksum_get_digest(sum_id, tid, &tid_len);
  g_checksum_free(sum_id);
  FerryFileHash *h = ferry_hash_file(src, 65536, 1, &error);
  g_assert_no_error(error);
  FerryCheckpoint *cp = ferry_checkpoint_new(tid, 65536);
  FerryCheckpointFile *cf = ferry_checkpoint_add_file(cp, "big.bin", 10 * 65536 + 123, NULL);
  for (guint i = 0; i < 7; i++)
    ferry_checkpoint_file_set_verified(cf, i, h->chunk_hashes + 32 * i);
  char *ckpt = g_strdup_printf("%s/%s.ckpt", state_dir, key);
  g_free(key);
  g_assert_true(ferry_checkpoint_save(cp, ckpt, &error));
  ferry_checkpoint_free(cp);
  ferry_file_hash_free(h);
  if (change_source) {
    /* The source's chunk 1 changes (same size) after the partial was
     * verified: the sender must send it again, the receiver take it. */
    int sfd = open(src, O_WRONLY);
    g_assert_cmpint(pwrite(sfd, "changed", 7, 65536 + 100), ==, 7);
    close(sfd);
  }

  Run second = {0};
  ferry_receive_options_init(&second.ropts);
  run_transfer(&second, paths, &so, out);
  g_assert_no_error(second.send_error);
  g_assert_no_error(second.recv_error);
  FerryTransferProgress pr;
  ferry_transfer_get_progress(second.recv, &pr);
  /* Six chunks were kept (3 was damaged; 1 changed at the source), the
   * rest moved. */
  g_assert_cmpuint(pr.bytes_resumed, ==, (change_source ? 5 : 6) * 65536);
  g_assert_cmpuint(pr.bytes_done, ==, 10 * 65536 + 123);
  run_clear(&second);
  g_free(final);
  final = g_build_filename(out, "big.bin", NULL);
  assert_same_file(src, final);
  g_assert_false(g_file_test(part, G_FILE_TEST_EXISTS));
  g_assert_false(g_file_test(ckpt, G_FILE_TEST_EXISTS));
  g_free(ckpt);
  g_free(info_text);
  g_free(info);
  g_free(state_dir);
  g_free(part);
  g_free(part_name);
  g_free(final);
  g_free(id);
  rm_rf(tmp);
  g_free(src);
  g_free(out);
  g_free(tmp);
}

static void
grow_file(Run *run)
{
  FILE *f = fopen(run->grow, "a");
  g_assert_nonnull(f);
  fputs("more", f);
  fclose(f);
}

/* A source file that changes after the scan is never sent mixed: the
 * transfer stops and says which file (or, with skip_errors, skips it and
 * sends the rest). */
static void
test_source_changed(void)
{
  for (int skip = 0; skip < 2; skip++) {
    char *tmp = make_tmp();
    char *dir = g_build_filename(tmp, "d", NULL);
    char *a = g_build_filename(dir, "a.bin", NULL);
    char *b = g_build_filename(dir, "b.bin", NULL);
    char *out = g_build_filename(tmp, "out", NULL);
    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    write_file(a, 100000, 1);
    write_file(b, 1000, 2);
    const char *paths[] = {dir, NULL};
    FerrySendOptions so;
    ferry_send_options_init(&so);
    so.skip_errors = skip;
    Run run = {0};
    ferry_receive_options_init(&run.ropts);
    run.after_scan = grow_file;
    run.grow = a;
    run_transfer(&run, paths, &so, out);
    char *got_a = g_build_filename(out, "d", "a.bin", NULL);
    char *got_b = g_build_filename(out, "d", "b.bin", NULL);
    g_assert_false(g_file_test(got_a, G_FILE_TEST_EXISTS));
    if (!skip) {
      g_assert_error(run.send_error, FERRY_ERROR, FERRY_ERROR_IO);
      g_assert_nonnull(strstr(run.send_error->message, "d/a.bin"));
      g_assert_nonnull(strstr(run.send_error->message, "changed"));
      g_assert_nonnull(run.recv_error);
      g_assert_nonnull(strstr(run.recv_error->message, "changed"));
    } else {
      g_assert_no_error(run.send_error);
      g_assert_no_error(run.recv_error);
      assert_same_file(b, got_b);
      gboolean skipped = FALSE;
      for (guint i = 0; i < run.events->len; i++)
        skipped |= g_str_has_prefix(g_ptr_array_index(run.events, i), "skipped d/a.bin");
      g_assert_true(skipped);
    }
    run_clear(&run);
    rm_rf(tmp);
    g_free(got_a);
    g_free(got_b);
    g_free(dir);
    g_free(a);
    g_free(b);
    g_free(out);
    g_free(tmp);
  }
}

/* One receiver per transfer and folder: the checkpoint's lock. */
static void
test_store_lock(void)
{
  char *tmp = make_tmp();
  GError *error = NULL;
  int a = ferry_store_lock(ckpt_dir, "0123456789abcdef-01234567", &error);
  g_assert_no_error(error);
  g_assert_cmpint(a, >=, 0);
  int b = ferry_store_lock(ckpt_dir, "0123456789abcdef-01234567", &error);
  g_assert_cmpint(b, ==, -1);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_EXISTS);
  g_assert_nonnull(strstr(error->message, "already receiving"));
  g_clear_error(&error);
  int c = ferry_store_lock(ckpt_dir, "0123456789abcdef-76543210", &error);
  g_assert_cmpint(c, >=, 0);
  close(a);
  b = ferry_store_lock(ckpt_dir, "0123456789abcdef-01234567", &error);
  g_assert_no_error(error);
  g_assert_cmpint(b, >=, 0);
  close(b);
  close(c);
  rm_rf(tmp);
  g_free(tmp);
}

static void
fake_checkpoint(const char *key, const char *out, gint64 age_s)
{
  guint8 tid[32] = {1};
  char *base = g_build_filename(ckpt_dir, key, NULL);
  char *info = g_strconcat(base, ".info", NULL);
  char *ckpt = g_strconcat(base, ".ckpt", NULL);
  char *text = g_strdup_printf("[checkpoint]\nout_dir=%s\nfiles=1\nbytes=10\n", out);
  g_assert_cmpint(g_mkdir_with_parents(ckpt_dir, 0700), ==, 0);
  g_assert_true(g_file_set_contents(info, text, -1, NULL));
  FerryCheckpoint *cp = ferry_checkpoint_new(tid, 65536);
  ferry_checkpoint_add_file(cp, "x", 10, NULL);
  g_assert_true(ferry_checkpoint_save(cp, ckpt, NULL));
  ferry_checkpoint_free(cp);
  struct timespec when[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
  g_assert_cmpint(utimensat(AT_FDCWD, info, when, 0), ==, 0);
  g_assert_cmpint(utimensat(AT_FDCWD, ckpt, when, 0), ==, 0);
  g_free(text);
  g_free(info);
  g_free(ckpt);
  g_free(base);
}

/* Checkpoints expire: one untouched for 8 days is gone once a receive
 * starts; one from an hour ago stays. */
static void
test_checkpoint_expiry(void)
{
  char *tmp = make_tmp();
  char *src = g_build_filename(tmp, "a.txt", NULL);
  char *out = g_build_filename(tmp, "out", NULL);
  write_file(src, 10, 3);
  fake_checkpoint("0123456789abcdef-00000001", out, 8 * 24 * 3600);
  fake_checkpoint("0123456789abcdef-00000002", out, 3600);
  GPtrArray *before = ferry_checkpoints_list(ckpt_dir, NULL);
  g_assert_cmpuint(before->len, ==, 2);
  g_ptr_array_unref(before);
  const char *paths[] = {src, NULL};
  Run run = {0};
  ferry_receive_options_init(&run.ropts);
  run_transfer(&run, paths, NULL, out);
  g_assert_no_error(run.recv_error);
  GPtrArray *after = ferry_checkpoints_list(ckpt_dir, NULL);
  g_assert_cmpuint(after->len, ==, 1);
  g_assert_cmpstr(((FerryCheckpointInfo *)after->pdata[0])->key, ==, "0123456789abcdef-00000002");
  g_ptr_array_unref(after);
  run_clear(&run);
  rm_rf(tmp);
  g_free(src);
  g_free(out);
  g_free(tmp);
}

/* A hostile sender: each path below is refused before anything is
 * written, and nothing appears outside the output folder. */
static void
test_resume(void)
{
  run_resume(FALSE);
}

static void
test_resume_source_changed(void)
{
  run_resume(TRUE);
}

/* Nothing to send (an empty folder is something; an empty manifest comes
 * from --skip-errors over only unreadable things): both sides end. */
static void
test_empty_manifest(void)
{
  char *tmp = make_tmp();
  char *fifo = g_build_filename(tmp, "fifo", NULL);
  char *out = g_build_filename(tmp, "out", NULL);
  g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
  const char *paths[] = {fifo, NULL};
  FerrySendOptions so;
  ferry_send_options_init(&so);
  so.skip_errors = TRUE;
  Run run = {0};
  ferry_receive_options_init(&run.ropts);
  run_transfer(&run, paths, &so, out);
  g_assert_no_error(run.send_error);
  g_assert_no_error(run.recv_error);
  run_clear(&run);
  rm_rf(tmp);
  g_free(fifo);
  g_free(out);
  g_free(tmp);
}

static void
test_hostile_paths(void)
{
  static const struct {
    FerryEntryType type;
    const char *path, *target;
  } cases[][2] = {
      {{FERRY_ENTRY_FILE, "../escape.txt", NULL}},
      {{FERRY_ENTRY_FILE, "/tmp/ferry-test-absolute.txt", NULL}},
      {{FERRY_ENTRY_FILE, "a/../../escape.txt", NULL}},
      {{FERRY_ENTRY_FILE, "a\\..\\..\\escape.txt", NULL}},
      {{FERRY_ENTRY_SYMLINK, "ln", ".."}, {FERRY_ENTRY_FILE, "ln/escape.txt", NULL}},
      {{FERRY_ENTRY_FILE, "Same.txt", NULL}, {FERRY_ENTRY_FILE, "same.TXT", NULL}},
  };
  for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
    char *tmp = make_tmp();
    char *src = g_build_filename(tmp, "ok.txt", NULL);
    char *out = g_build_filename(tmp, "out", NULL);
    write_file(src, 10, 1);
    const char *paths[] = {src, NULL};
    GError *error = NULL;
    FerryConnectOptions o;
    options(&o);
    Run run = {0};
    ferry_receive_options_init(&run.ropts);
    run.events = g_ptr_array_new_with_free_func(g_free);
    run.source = ferry_source_new(paths, NULL, &error);
    g_assert_no_error(error);
    for (guint i = 0; i < 2 && cases[c][i].path != NULL; i++)
      ferry_source_add_raw_entry(run.source, cases[c][i].type, cases[c][i].path, cases[c][i].target,
                                 cases[c][i].type == FERRY_ENTRY_FILE ? 10 : 0);
    run.listener = ferry_listener_new(&o, &listener_handlers, &run, &error);
    g_assert_no_error(error);
    WAIT_FOR(run.code != NULL, 10);
    run.ropts.out_dir = out;
    run.ropts.checkpoint_dir = ckpt_dir;
    ferry_connect_async(&o, run.code, NULL, on_connected, &run);
    WAIT_FOR(run.recv_done && run.send_done, 30);
    g_assert_error(run.recv_error, FERRY_ERROR, FERRY_ERROR_UNSAFE_PATH);
    g_assert_nonnull(strstr(run.recv_error->message, "nothing was written outside"));
    g_assert_nonnull(run.send_error);
    /* Only the one honest file (and the output folder) exist. */
    char *argv[] = {"sh", "-c", "find . -mindepth 1 | sort | tr '\\n' ' '", NULL};
    char *listing = NULL;
    g_assert_true(
        g_spawn_sync(tmp, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &listing, NULL, NULL, NULL));
    g_test_message("case %u: %s / left: %s", c, run.recv_error->message, listing);
    g_assert_null(strstr(listing, "escape"));
    g_assert_false(g_file_test("/tmp/ferry-test-absolute.txt", G_FILE_TEST_EXISTS));
    g_free(listing);
    run_clear(&run);
    rm_rf(tmp);
    g_free(src);
    g_free(out);
    g_free(tmp);
  }
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  test_server_start(&srv, "127.0.0.1:0", NULL);
  server_url = test_server_url(srv.port);
  g_test_add_func("/transfer/tree", test_tree);
  g_test_add_func("/transfer/decline", test_decline);
  g_test_add_func("/transfer/resume-verifies-partial", test_resume);
  g_test_add_func("/transfer/resume-source-changed", test_resume_source_changed);
  g_test_add_func("/transfer/empty-manifest", test_empty_manifest);
  g_test_add_func("/transfer/source-changed", test_source_changed);
  g_test_add_func("/transfer/store-lock", test_store_lock);
  g_test_add_func("/transfer/checkpoint-expiry", test_checkpoint_expiry);
  g_test_add_func("/transfer/hostile-paths-refused", test_hostile_paths);
  int rc = g_test_run();
  test_server_stop(&srv);
  g_free(server_url);
  return rc;
}
