/* ferry receive (alias join): connects to the sender holding a code,
 * shows what it offers, and receives it once accepted.
 *
 * The offer (counts, size, top-level names) is shown before anything is
 * written; -y accepts it, a terminal on standard input is asked, and
 * anything else declines with a message saying to use -y. Verified chunks
 * are kept in a checkpoint, so a receive that is interrupted or cut
 * continues where it stopped when run again.
 *
 * With no server configured anywhere (LAN mode) the sender is looked for
 * on the local network first (ferry_lan_lookup_async()), and the
 * connection goes through the rendezvous it runs itself; if several
 * senders answer to the same number, each is tried in turn (a wrong one
 * fails the PAKE, and nothing else happens). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>

#include <ferry/ferry.h>

#include "commands.h"
#include "link.h"
#include "progress.h"
#include "settings.h"

#define RETRY_BACKOFF_MAX_MS 30000
/* In a race with the server, how long the LAN lookup waits for more
 * addresses of a sender once one answered. */
#define LAN_RACE_GRACE_MS 30

typedef struct {
  CliSettings s;
  CliOutput *out;
  GMainLoop *loop;
  GCancellable *cancel;
  FerryTransfer *transfer;
  CliTrack *track;
  char *code;          /* as typed, for messages */
  char *resume_id;     /* --resume: the full id of the checkpoint */
  GString *answer;     /* what was typed at "Accept?" so far */
  GPtrArray *lan;      /* LAN mode: FerryLanSender *, the senders to try */
  guint lan_next;      /* the next one to try */
  guint64 lan_reached; /* a sender that answered a connection (its other addresses are skipped) */
  gboolean lan_skip;
  GError *lan_error; /* the most telling failure so far */
  /* With a server and the LAN both possible, both are asked at once and
   * the first to answer is used (see start_race()). */
  GCancellable *race;    /* the race under way, NULL when none */
  gboolean server_down;  /* the server did not answer the race */
  GError *server_error;  /* why the server did not answer */
  gboolean server_tried; /* a connection through the server was tried */
  gboolean lan_tried;    /* the LAN was looked at */
  guint stdin_watch;
  gboolean offered;     /* the offer arrived */
  gboolean declined;    /* we declined (status already set and reported) */
  gboolean interrupted; /* Ctrl-C */
  int status;
  /* reconnecting after a lost connection (--max-retries) */
  char *accepted_id; /* the transfer accepted once: later offers must be it */
  guint attempt;     /* reconnects so far */
  guint retry_source;
  guint queue_place; /* our place in the sender's line, 0 when not waiting */
} Receive;

static void
quit(Receive *st, int status)
{
  st->status = status;
  g_main_loop_quit(st->loop);
}

/* ---- the offer ---------------------------------------------------------------- */

static void
stop_asking(Receive *st)
{
  if (st->stdin_watch != 0) {
    g_source_remove(st->stdin_watch);
    st->stdin_watch = 0;
  }
}

static void
accept_offer(Receive *st)
{
  stop_asking(st);
  if (st->accepted_id == NULL)
    st->accepted_id = g_strdup(ferry_transfer_get_id(st->transfer));
  ferry_transfer_accept(st->transfer);
  st->track = cli_output_track(st->out, st->transfer, 1);
}

static void
decline_offer(Receive *st, const char *reason, const char *message)
{
  stop_asking(st);
  st->declined = TRUE;
  st->status = FERRY_EXIT_DECLINED;
  ferry_transfer_decline(st->transfer, reason);
  cli_output_fail(st->out, FERRY_EXIT_DECLINED, "%s", message);
}

/* Reads the answer to "Accept? [y/N]" as it is typed, without blocking
 * the main loop (the connection lives on it). */
static gboolean
on_stdin(gint fd, GIOCondition condition, gpointer user_data)
{
  Receive *st = user_data;
  char buf[256];
  ssize_t n = read(fd, buf, sizeof buf);

  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return G_SOURCE_CONTINUE;
  if (n > 0) {
    g_string_append_len(st->answer, buf, n);
    if (memchr(buf, '\n', (size_t)n) == NULL)
      return G_SOURCE_CONTINUE;
  }
  st->stdin_watch = 0;
  char *nl = strchr(st->answer->str, '\n');
  if (nl != NULL)
    *nl = '\0';
  g_strstrip(st->answer->str);
  if (g_ascii_strcasecmp(st->answer->str, "y") == 0 ||
      g_ascii_strcasecmp(st->answer->str, "yes") == 0) {
    accept_offer(st);
  } else {
    if (n <= 0)
      fputc('\n', stderr);
    decline_offer(st, "the receiver declined", "declined: nothing was received");
  }
  return G_SOURCE_REMOVE;
}

/* The checkpoint of transfer id, if this machine has one: how much of it
 * is here already. */
static void
say_resume_state(Receive *st, const char *id)
{
  g_autoptr(GPtrArray) list = ferry_checkpoints_list(NULL, NULL);
  for (guint i = 0; list != NULL && i < list->len; i++) {
    FerryCheckpointInfo *info = list->pdata[i];
    if (strcmp(info->id, id) != 0 || info->damaged)
      continue;
    g_autofree char *have = cli_format_bytes(info->bytes_verified);
    g_autofree char *all = cli_format_bytes(info->bytes_total);
    g_autofree char *dir = cli_display(info->out_dir);
    cli_output_say(st->out, "resuming: %s of %s are already verified in %s", have, all, dir);
    return;
  }
}

static void
on_offer(FerryTransfer *transfer, const FerryTransferSummary *sum, gpointer user_data)
{
  Receive *st = user_data;
  g_autofree char *what = cli_summary_text(sum);

  st->offered = TRUE;
  cli_output_offer(st->out, sum);
  if (st->accepted_id != NULL) {
    /* Reconnected: the user accepted this transfer already. */
    if (strcmp(sum->id, st->accepted_id) != 0) {
      g_autofree char *msg = g_strdup_printf(
          "after reconnecting, the sender offers another transfer (%s, not %s): stopped", sum->id,
          st->accepted_id);
      decline_offer(st, "the receiver expected the transfer it was receiving", msg);
      return;
    }
    cli_output_say(st->out, "reconnected: continuing from what is verified");
    accept_offer(st);
    return;
  }
  if (st->resume_id != NULL && strcmp(sum->id, st->resume_id) != 0) {
    g_autofree char *msg =
        g_strdup_printf("the sender offers transfer %s, not %s (--resume): ask for the right "
                        "code, or leave --resume out to receive it anyway",
                        sum->id, st->resume_id);
    decline_offer(st, "the receiver expected another transfer", msg);
    return;
  }
  cli_output_say(st->out, "Receive %s", what);
  say_resume_state(st, sum->id);
  if (st->s.yes) {
    accept_offer(st);
    return;
  }
  if (!isatty(STDIN_FILENO)) {
    decline_offer(st, "the receiver could not be asked (no terminal; it must use -y)",
                  "cannot ask whether to accept the offer: standard input is not a terminal; "
                  "run again with -y to accept without asking");
    return;
  }
  if (st->s.quiet || st->s.json) {
    /* the offer line was not shown: show it with the question */
    fprintf(stderr, "Receive %s\n", what);
  }
  fputs("Accept? [y/N] ", stderr);
  fflush(stderr);
  st->answer = g_string_new(NULL);
  st->stdin_watch = g_unix_fd_add(STDIN_FILENO, G_IO_IN | G_IO_HUP | G_IO_ERR, on_stdin, st);
}

/* ---- the transfer -------------------------------------------------------------- */

static void
on_file(FerryTransfer *transfer, const FerryFileEvent *event, gpointer user_data)
{
  Receive *st = user_data;
  if (st->track != NULL)
    cli_output_file(st->out, st->track, event);
}

static void
say_interrupted(Receive *st)
{
  FerryTransferProgress p;
  const char *checkpoint = ferry_transfer_get_checkpoint_path(st->transfer);

  ferry_transfer_get_progress(st->transfer, &p);
  if (!st->offered || p.bytes_done == 0 || checkpoint == NULL) {
    cli_output_fail(st->out, FERRY_EXIT_INTERRUPTED, "interrupted: nothing was received");
    return;
  }
  g_autofree char *done = cli_format_bytes(p.bytes_done);
  g_autofree char *total = cli_format_bytes(p.bytes_total);
  g_autofree char *path = cli_display(checkpoint);
  cli_output_fail(st->out, FERRY_EXIT_INTERRUPTED,
                  "interrupted: %s of %s verified, checkpoint saved (%s); run the same `ferry "
                  "receive` with a new code from the sender to continue",
                  done, total, path);
}

static void start_connect(Receive *st);

static gboolean
reconnect_cb(gpointer user_data)
{
  Receive *st = user_data;
  st->retry_source = 0;
  g_clear_pointer(&st->lan, g_ptr_array_unref);
  st->lan_next = 0;
  st->lan_skip = FALSE;
  g_clear_error(&st->lan_error);
  st->offered = FALSE;
  st->server_tried = st->lan_tried = FALSE;
  start_connect(st);
  return G_SOURCE_REMOVE;
}

/* The connection was lost after the offer was accepted (or a reconnect
 * failed): tries again after a backoff, within --max-retries. Returns
 * FALSE when the budget is spent. */
static gboolean
schedule_reconnect(Receive *st, const char *why)
{
  if (st->attempt >= st->s.max_retries)
    return FALSE;
  st->attempt++;
  guint64 delay = st->s.retry_backoff_ms;
  for (guint i = 1; i < st->attempt && delay < RETRY_BACKOFF_MAX_MS; i++)
    delay *= 2;
  delay = MIN(delay, RETRY_BACKOFF_MAX_MS);
  cli_output_say(st->out, "connection lost (%s): reconnecting in %.1f s (attempt %u of %u)…", why,
                 delay / 1000.0, st->attempt, st->s.max_retries);
  JsonBuilder *b = cli_output_event(st->out, "reconnecting");
  if (b != NULL) {
    cli_json_add_string(b, "reason", why);
    json_builder_set_member_name(b, "attempt");
    json_builder_add_int_value(b, st->attempt);
    json_builder_set_member_name(b, "max_retries");
    json_builder_add_int_value(b, st->s.max_retries);
    json_builder_set_member_name(b, "delay_ms");
    json_builder_add_int_value(b, (gint64)delay);
    cli_output_emit(st->out, b);
  }
  st->retry_source = g_timeout_add((guint)delay, reconnect_cb, st);
  return TRUE;
}

static void
on_finished(FerryTransfer *transfer, const GError *error, gpointer user_data)
{
  Receive *st = user_data;
  int status = cli_exit_for_error(error, CLI_STAGE_TRANSFER);

  stop_asking(st);
  if (st->track != NULL) {
    cli_output_finished(st->out, st->track, error);
    st->track = NULL;
  }
  if (st->declined) {
    quit(st, FERRY_EXIT_DECLINED);
    return;
  }
  if (error != NULL && status == FERRY_EXIT_PEER_LOST && st->accepted_id != NULL &&
      !st->interrupted && schedule_reconnect(st, error->message)) {
    ferry_transfer_free(st->transfer); /* allowed from finished */
    st->transfer = NULL;
    return;
  }
  if (status == FERRY_EXIT_INTERRUPTED) {
    say_interrupted(st);
  } else if (error != NULL) {
    FerryTransferProgress p;
    ferry_transfer_get_progress(transfer, &p);
    gboolean kept = p.bytes_done > 0 && ferry_transfer_get_checkpoint_path(transfer) != NULL &&
                    (status == FERRY_EXIT_PEER_LOST || status == FERRY_EXIT_DISK_FULL ||
                     status == FERRY_EXIT_LOCAL_FILE);
    if (kept) {
      g_autofree char *done = cli_format_bytes(p.bytes_done);
      cli_output_fail(st->out, status,
                      "%s; the %s verified so far are kept: run `ferry receive %s` again while "
                      "the sender waits (or with a new code from it) to continue",
                      error->message, done, st->code);
    } else {
      cli_output_fail(st->out, status, "%s", error->message);
    }
  }
  quit(st, status);
}

static const FerryTransferHandlers transfer_handlers = {
    .offer = on_offer,
    .file = on_file,
    .finished = on_finished,
};

/* ---- connecting ---------------------------------------------------------------- */

static void on_connected(GObject *source, GAsyncResult *result, gpointer user_data);
static void on_lan_found(GObject *source, GAsyncResult *result, gpointer user_data);
static gboolean try_next_sender(Receive *st);
static void on_queued(guint position, gpointer user_data);

/* Says which way the sender was found: "lan" or "server". */
static void
say_rendezvous(Receive *st, const char *via, const char *text)
{
  JsonBuilder *b = cli_output_event(st->out, "rendezvous");
  if (b != NULL) {
    cli_json_add_string(b, "via", via);
    if (strcmp(via, "server") == 0)
      cli_json_add_string(b, "server", st->s.server);
    cli_output_emit(st->out, b);
    return;
  }
  cli_output_say(st->out, "%s", text);
}

static void
connect_via_server(Receive *st)
{
  FerryConnectOptions co;
  cli_settings_connect_options(&st->s, &co);
  co.queued = on_queued;
  co.queued_user_data = st;
  st->server_tried = TRUE;
  ferry_connect_async(&co, st->code, st->cancel, on_connected, st);
}

static void
lookup_lan(Receive *st)
{
  st->lan_tried = TRUE;
  if (st->s.server == NULL)
    cli_output_say(st->out, "looking for the sender on the local network…");
  ferry_lan_lookup_async(st->code, FERRY_LAN_DEFAULT_TIMEOUT_MS, st->cancel, on_lan_found, st);
}

/* Ends the race: the other contestant is cancelled and its answer, when
 * it comes, is ignored. */
static void
end_race(Receive *st)
{
  GCancellable *race = g_steal_pointer(&st->race);
  g_cancellable_cancel(race);
  g_object_unref(race);
}

static void
on_race_server(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Receive *st = user_data;
  GError *error = NULL;

  if (ferry_server_probe_finish(result, &error)) {
    if (st->race == NULL)
      return;
    end_race(st);
    g_autofree char *text = g_strdup_printf("the server %s answered first", st->s.server);
    say_rendezvous(st, "server", text);
    connect_via_server(st);
    return;
  }
  if (st->race == NULL || g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_error_free(error);
    return;
  }
  /* The server is out: any sender on the LAN is the only hope. */
  st->server_down = TRUE;
  g_clear_error(&st->server_error);
  st->server_error = error;
  end_race(st);
  lookup_lan(st);
}

static void
on_race_lan(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Receive *st = user_data;
  GError *error = NULL;
  GPtrArray *found = ferry_lan_lookup_finish(result, &error);

  if (st->race == NULL || g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    g_clear_error(&error);
    if (found != NULL)
      g_ptr_array_unref(found);
    return;
  }
  if (found != NULL) {
    end_race(st);
    say_rendezvous(st, "lan",
                   "found the sender on this network (LAN) before the server answered: "
                   "connecting without it");
    st->lan = found;
    if (!try_next_sender(st))
      connect_via_server(st);
    return;
  }
  g_clear_error(&error); /* the LAN is silent: the server decides */
}

/* Asks the server and the local network at once; the first to answer is
 * used (the other is cancelled): on one LAN that is the LAN, elsewhere the
 * server. If that way then fails, the other is tried (on_connected()). */
static void
start_race(Receive *st)
{
  st->race = g_cancellable_new();
  st->server_down = FALSE;
  g_clear_error(&st->server_error);
  ferry_server_probe_async(st->s.server, st->race, on_race_server, st);
  ferry_lan_lookup_full_async(st->code, FERRY_LAN_DEFAULT_TIMEOUT_MS, LAN_RACE_GRACE_MS,
                              st->s.server, st->race, on_race_lan, st);
}

/* The sender serves as many receivers as it may: we wait our turn. */
static void
on_queued(guint position, gpointer user_data)
{
  Receive *st = user_data;
  if (position == st->queue_place)
    return;
  st->queue_place = position;
  cli_output_say(st->out, "the sender is busy with other receivers: waiting, number %u in line…",
                 position);
  JsonBuilder *b = cli_output_event(st->out, "queued");
  if (b != NULL) {
    json_builder_set_member_name(b, "position");
    json_builder_add_int_value(b, position);
    cli_output_emit(st->out, b);
  }
}

/* LAN mode: connects through the next sender found, skipping the other
 * addresses of one that was reached already. Returns FALSE when none is
 * left. */
static gboolean
try_next_sender(Receive *st)
{
  while (st->lan_next < st->lan->len) {
    const FerryLanSender *s = st->lan->pdata[st->lan_next++];
    if (st->lan_skip && s->instance == st->lan_reached)
      continue;
    FerryConnectOptions co;
    cli_settings_connect_options(&st->s, &co);
    co.server_url = s->server_url;
    co.queued = on_queued;
    co.queued_user_data = st;
    g_debug("lan: trying the sender at %s", s->server_url);
    ferry_connect_async(&co, s->code, st->cancel, on_connected, st);
    return TRUE;
  }
  return FALSE;
}

/* LAN mode: remembers why an attempt failed. A failure past the server
 * (wrong code, no path) says more than an unreachable address, and means
 * that sender was reached. Takes error. */
static void
keep_lan_error(Receive *st, GError *error)
{
  const FerryLanSender *s = st->lan->pdata[st->lan_next - 1];
  gboolean reached = !g_error_matches(error, FERRY_ERROR, FERRY_ERROR_IO);

  if (reached) {
    st->lan_reached = s->instance;
    st->lan_skip = TRUE;
  }
  if (st->lan_error == NULL || reached) {
    g_clear_error(&st->lan_error);
    st->lan_error = error;
  } else {
    g_error_free(error);
  }
}

static void
on_lan_found(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Receive *st = user_data;
  GError *error = NULL;

  st->lan = ferry_lan_lookup_finish(result, &error);
  if (st->lan != NULL && st->server_error != NULL)
    say_rendezvous(st, "lan",
                   st->server_down ? "the server cannot be reached; found the sender on this "
                                     "network (LAN)"
                                   : "found the sender on this network (LAN)");
  if (st->lan != NULL && try_next_sender(st))
    return;
  if (st->accepted_id != NULL && !st->interrupted &&
      !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED) &&
      schedule_reconnect(st, "the sender does not answer on the local network")) {
    g_clear_error(&error);
    return;
  }
  if (g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    cli_output_fail(st->out, FERRY_EXIT_INTERRUPTED,
                    "interrupted before the connection was set up");
    quit(st, FERRY_EXIT_INTERRUPTED);
  } else if (st->accepted_id != NULL &&
             (error == NULL || g_error_matches(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND))) {
    cli_output_fail(st->out, FERRY_EXIT_NO_SUCH_CODE,
                    "the sender no longer answers on this network (gave up after %u reconnects); "
                    "the verified part is kept: run `ferry receive %s` again when it is back "
                    "(or with a new code from it)",
                    st->attempt, st->code);
    quit(st, FERRY_EXIT_NO_SUCH_CODE);
  } else if ((error == NULL || g_error_matches(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND)) &&
             st->server_error != NULL) {
    /* The server's own words first: it was asked before the LAN. */
    int status = cli_exit_for_error(st->server_error, CLI_STAGE_CONNECT);
    cli_output_fail(st->out, status, "%s; and no sender with that number answered on this network",
                    st->server_error->message);
    quit(st, status);
  } else if (error == NULL || g_error_matches(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND)) {
    cli_output_fail(st->out, FERRY_EXIT_NO_SUCH_CODE,
                    "no sender with that code on this network; if the sender is elsewhere, "
                    "both sides need --server URL");
    quit(st, FERRY_EXIT_NO_SUCH_CODE);
  } else {
    cli_output_fail(st->out, FERRY_EXIT_FAILURE, "%s; or give a server with --server URL",
                    error->message);
    quit(st, FERRY_EXIT_FAILURE);
  }
  g_clear_error(&error);
}

static void
on_connected(GObject *source, GAsyncResult *result, gpointer user_data)
{
  Receive *st = user_data;
  GError *error = NULL;
  FerryConnection *conn = ferry_connect_finish(result, &error);

  if (conn == NULL && st->lan != NULL && !st->interrupted &&
      !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    keep_lan_error(st, error);
    if (try_next_sender(st))
      return;
    error = g_steal_pointer(&st->lan_error);
    /* Found on the LAN but not reachable there: the server may still work. */
    if (st->s.server != NULL && !st->server_tried &&
        !g_error_matches(error, FERRY_ERROR, FERRY_ERROR_AUTH)) {
      cli_output_say(st->out, "%s; trying through the server", error->message);
      g_error_free(error);
      g_clear_pointer(&st->lan, g_ptr_array_unref);
      connect_via_server(st);
      return;
    }
  }
  /* The server knows no such number: the sender may be on this network
   * without the server. */
  if (conn == NULL && st->lan == NULL && st->s.server != NULL && !st->s.no_lan && !st->lan_tried &&
      !st->interrupted && g_error_matches(error, FERRY_ERROR, FERRY_ERROR_NOT_FOUND)) {
    cli_output_say(st->out, "the server has no sender with that number; looking on this network…");
    g_clear_error(&st->server_error);
    st->server_error = error;
    lookup_lan(st);
    return;
  }
  if (conn == NULL && st->accepted_id != NULL && !st->interrupted) {
    int status = cli_exit_for_error(error, CLI_STAGE_CONNECT);
    /* Reconnecting: a path or a server that is not back yet is worth
     * another try; a wrong code or a sender that is gone is not. */
    if ((status == FERRY_EXIT_PEER_LOST || status == FERRY_EXIT_NO_SERVER) &&
        schedule_reconnect(st, error->message)) {
      g_error_free(error);
      return;
    }
  }
  if (conn == NULL) {
    int status = cli_exit_for_error(error, CLI_STAGE_CONNECT);
    if (status == FERRY_EXIT_INTERRUPTED)
      cli_output_fail(st->out, status, "interrupted before the connection was set up");
    else if (st->accepted_id != NULL)
      cli_output_fail(st->out, status,
                      "%s (gave up after %u reconnects); the verified part is kept: run `ferry "
                      "receive %s` again to continue",
                      error->message, st->attempt, st->code);
    else
      cli_output_fail(st->out, status, "%s", error->message);
    g_error_free(error);
    quit(st, status);
    return;
  }
  cli_output_connected(st->out, 1, conn);
  if (st->interrupted) {
    ferry_connection_free(conn);
    cli_output_fail(st->out, FERRY_EXIT_INTERRUPTED, "interrupted: nothing was received");
    quit(st, FERRY_EXIT_INTERRUPTED);
    return;
  }

  FerryReceiveOptions ro;
  ferry_receive_options_init(&ro);
  ro.out_dir = st->s.out_dir;
  ro.overwrite = st->s.overwrite;
  ro.skip_errors = st->s.skip_errors;
  st->transfer = ferry_transfer_receive(conn, &ro, &transfer_handlers, st, &error);
  if (st->transfer == NULL) {
    cli_output_fail(st->out, FERRY_EXIT_LOCAL_FILE, "%s", error->message);
    g_error_free(error);
    quit(st, FERRY_EXIT_LOCAL_FILE);
  }
}

static gboolean
on_signal(gpointer user_data)
{
  Receive *st = user_data;
  if (st->interrupted) {
    if (st->transfer != NULL && st->offered)
      say_interrupted(st);
    quit(st, FERRY_EXIT_INTERRUPTED);
    return G_SOURCE_CONTINUE;
  }
  st->interrupted = TRUE;
  if (st->retry_source != 0) {
    g_source_remove(st->retry_source);
    st->retry_source = 0;
    cli_output_fail(st->out, FERRY_EXIT_INTERRUPTED,
                    "interrupted while reconnecting; the verified part is kept: run `ferry "
                    "receive %s` again to continue",
                    st->code);
    quit(st, FERRY_EXIT_INTERRUPTED);
    return G_SOURCE_CONTINUE;
  }
  if (st->race != NULL) {
    end_race(st);
    cli_output_fail(st->out, FERRY_EXIT_INTERRUPTED, "interrupted while looking for the sender");
    quit(st, FERRY_EXIT_INTERRUPTED);
    return G_SOURCE_CONTINUE;
  }
  if (st->transfer != NULL)
    ferry_transfer_cancel(st->transfer);
  else
    g_cancellable_cancel(st->cancel);
  return G_SOURCE_CONTINUE;
}

/* Finds the sender (on the LAN when no server is configured) and
 * connects to it. */
static void
start_connect(Receive *st)
{
  if (st->s.server == NULL)
    lookup_lan(st);
  else if (st->s.no_lan || st->s.force_relay)
    connect_via_server(st);
  else
    start_race(st);
}

/* --resume ID: the checkpoint it names, whose directory the files go to. */
static gboolean
find_checkpoint(Receive *st)
{
  GError *error = NULL;
  g_autoptr(GPtrArray) list = ferry_checkpoints_list(NULL, &error);
  FerryCheckpointInfo *found = NULL;
  guint n = 0;

  if (list == NULL) {
    cli_error("cannot list the checkpoints for --resume: %s", error->message);
    g_error_free(error);
    return FALSE;
  }
  for (guint i = 0; i < list->len; i++) {
    FerryCheckpointInfo *info = list->pdata[i];
    if (g_str_has_prefix(info->id, st->s.resume)) {
      found = info;
      n++;
    }
  }
  if (n == 0) {
    cli_error("no checkpoint has the id '%s': 'ferry checkpoint list' shows them (or leave "
              "--resume out: a receive resumes by itself into the same --out)",
              st->s.resume);
    return FALSE;
  }
  if (n > 1) {
    cli_error("'%s' matches %u checkpoints: give more digits of the id (see 'ferry checkpoint "
              "list')",
              st->s.resume, n);
    return FALSE;
  }
  if (found->damaged) {
    cli_error("checkpoint %s is damaged and cannot be resumed: delete it with 'ferry checkpoint "
              "delete %s'",
              found->id, found->id);
    return FALSE;
  }
  if (st->s.out_dir != NULL) {
    g_autofree char *want = g_canonicalize_filename(st->s.out_dir, NULL);
    g_autofree char *have = g_canonicalize_filename(found->out_dir, NULL);
    if (strcmp(want, have) != 0) {
      cli_error("checkpoint %s belongs to %s, not %s: leave --out out (or give that directory)",
                found->id, have, want);
      return FALSE;
    }
  } else {
    st->s.out_dir = g_strdup(found->out_dir);
  }
  st->resume_id = g_strdup(found->id);
  return TRUE;
}

/* The code from the arguments: usually one, but "7 ocean tiger piano"
 * typed as four is the same code. Returns NULL after printing why. */
static char *
code_from_args(int argc, char **argv)
{
  FerryCode code;
  FerryCodeDiag diag;
  int first = 1;

  if (first < argc && strcmp(argv[first], "--") == 0)
    first++;
  if (first >= argc) {
    cli_error("give the code the sender shows, e.g. 'ferry receive 7-ocean-tiger-piano'");
    return NULL;
  }
  char *text = g_strjoinv(" ", argv + first);
  if (cli_link_is_url(text))
    return text; /* a link of ferry send --link */
  if (ferry_code_parse(text, strlen(text), &code, &diag) < 0) {
    cli_error("%s", diag.message);
    g_free(text);
    return NULL;
  }
  return text;
}

static const char description[] =
    "Connects to the sender holding CODE, shows what it offers and asks whether to accept\n"
    "it. CODE may also be a link of `ferry send --link` (https://SERVER/r/NAME[#k=KEY]):\n"
    "it is downloaded (decrypted, and unpacked when it is a folder) into --out; a cut\n"
    "download of one file continues where it stopped when run again.\n"
    "(-y accepts without asking; without a terminal, -y is needed). Every chunk is verified\n"
    "before it counts and every file before it is put in place; an existing different file\n"
    "is kept and the new one saved under another name unless --overwrite. An interrupted\n"
    "receive keeps a checkpoint: run it again (same --out) to continue. Settings also come\n"
    "from $XDG_CONFIG_HOME/ferry/config (group [ferry]) and FERRY_SERVER,\n"
    "FERRY_STUN_SERVER, FERRY_TURN_SERVER; flags win. With no server anywhere, the\n"
    "sender is looked for on this network (LAN mode, UDP port " G_STRINGIFY(
        FERRY_LAN_PORT) ").\n"
                        "\n"
                        "Exit status: 0 received and verified; 1 other failure; 2 bad command "
                        "line, config or\n"
                        "code; 3 wrong code; 4 server unreachable; 5 sender vanished or no path; 6 "
                        "declined;\n"
                        "7 disk full; 8 file not writable; 9 verification failed or unsafe path "
                        "offered;\n"
                        "10 interrupted; 11 no such code on the server (or, in LAN mode, on this "
                        "network).";

int
cmd_receive(int argc, char **argv)
{
  Receive st = {0};

  cli_settings_init(&st.s);
  gboolean verbose = cli_settings_verbose(argc, argv);
  if (!cli_parse(&argc, &argv, "CODE - receive what the sender holding CODE offers", NULL,
                 description, cli_settings_entries(&st.s, CLI_SCOPE_RECEIVE)) ||
      !cli_settings_resolve(&st.s, CLI_SCOPE_RECEIVE) ||
      (st.code = code_from_args(argc, argv)) == NULL ||
      (st.s.resume != NULL && !find_checkpoint(&st))) {
    cli_settings_clear(&st.s);
    g_free(st.code);
    return FERRY_EXIT_USAGE;
  }

  if (cli_link_is_url(st.code)) {
    int link_status = cli_link_receive(&st.s, st.code, verbose);
    cli_settings_clear(&st.s);
    g_free(st.code);
    return link_status;
  }

  CliOutputOptions oo = {
      .sending = FALSE,
      .quiet = st.s.quiet,
      .json = st.s.json,
      .verbose = verbose,
      .benchmark = st.s.benchmark,
  };
  st.out = cli_output_new(&oo);
  st.loop = g_main_loop_new(NULL, FALSE);
  st.cancel = g_cancellable_new();

  /* Options that cannot work fail now, as a connection would, before the
   * race asks anyone anything. */
  FerryConnectOptions co;
  GError *error = NULL;
  cli_settings_connect_options(&st.s, &co);
  if (st.s.server != NULL && !ferry_connect_options_check(&co, &error)) {
    st.status = cli_exit_for_error(error, CLI_STAGE_CONNECT);
    cli_output_fail(st.out, st.status, "%s", error->message);
    g_error_free(error);
    goto out;
  }
  start_connect(&st);
  guint sigint = g_unix_signal_add(SIGINT, on_signal, &st);
  guint sigterm = g_unix_signal_add(SIGTERM, on_signal, &st);
  g_main_loop_run(st.loop);
  g_source_remove(sigint);
  g_source_remove(sigterm);

out:
  stop_asking(&st);
  cli_output_free(st.out); /* and a track left by a second Ctrl-C */
  if (st.transfer != NULL)
    ferry_transfer_free(st.transfer);
  g_object_unref(st.cancel);
  g_main_loop_unref(st.loop);
  if (st.answer != NULL)
    g_string_free(st.answer, TRUE);
  int status = st.status;
  if (st.lan != NULL)
    g_ptr_array_unref(st.lan);
  g_clear_error(&st.lan_error);
  g_clear_error(&st.server_error);
  if (st.race != NULL)
    end_race(&st);
  g_free(st.code);
  g_free(st.resume_id);
  g_free(st.accepted_id);
  if (st.retry_source != 0)
    g_source_remove(st.retry_source);
  cli_settings_clear(&st.s);
  return status;
}
