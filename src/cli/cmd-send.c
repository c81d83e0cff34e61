/* ferry send (alias host): offers files and folders under a code and
 * sends them to each receiver that comes with it.
 *
 * The paths are scanned once (FerrySource) and the code claimed on the
 * server (FerryListener); each authenticated connection the listener
 * hands over gets its own FerryTransfer. The command ends once
 * --max-receivers receivers have finished (or declined), when --ttl runs
 * out, when the server closes the code, or on Ctrl-C. A receiver that
 * fails is reported and may come back with the same code: its checkpoint
 * makes the second try move only what is missing.
 *
 * With no server configured anywhere (LAN mode) the rendezvous runs in
 * this process (FerryServer on an ephemeral port of every IPv4 address)
 * and the code is announced on the local network (FerryLanAnnouncer):
 * receivers here find it with no setup, and everything above the
 * rendezvous — PAKE, ICE, QUIC — is the same. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <glib-unix.h>

#include <ferry/ferry.h>

#include "commands.h"
#include "link.h"
#include "progress.h"
#include "settings.h"

typedef struct _Send Send;

typedef struct {
  Send *send;
  guint number;
  FerryTransfer *transfer;
  CliTrack *track;
} Receiver;

struct _Send {
  CliSettings s;
  CliOutput *out;
  GMainLoop *loop;
  FerrySource *source;
  FerryListener *listener;
  /* With a server: the same code at our own rendezvous, announced on the
   * LAN under the server code's number, so receivers there need no server. */
  FerryListener *twin;
  FerryServer *rendezvous;      /* LAN mode or twin: our own rendezvous, else NULL */
  FerryLanAnnouncer *announcer; /* LAN mode or twin: while receivers may come */
  guint fallback;               /* idle source: the server failed, LAN mode instead */
  char *rendezvous_url;
  GPtrArray *receivers; /* Receiver *: transfers under way */
  char id[FERRY_TRANSFER_ID_HEX_LEN + 1];
  char *receive_command; /* what to run on the other side, with the code */
  guint next_number;
  guint done;           /* receivers that got everything */
  guint declined;       /* receivers that said no */
  gboolean stopping;    /* no more receivers will be taken */
  gboolean interrupted; /* Ctrl-C */
  gboolean cut;         /* Ctrl-C stopped transfers under way */
  gboolean timed_out;   /* --ttl ran out */
  int listener_status;  /* the exit status of the listener's end, 0 if it ended well */
  guint ttl_timer;
  gint64 deadline; /* wall-clock seconds when the code stops being valid; 0: none */
};

static void check_end(Send *st);
static gboolean start_rendezvous(Send *st, GError **error);

static void
stop_listeners(Send *st)
{
  ferry_listener_stop(st->listener);
  if (st->twin != NULL)
    ferry_listener_stop(st->twin);
}

/* A word for the shell: quoted only when it needs to be. */
static char *
shell_word(const char *s)
{
  for (const char *p = s; *p != '\0'; p++)
    if (!g_ascii_isalnum(*p) && strchr("-_./:@%+=,", *p) == NULL)
      return g_shell_quote(s);
  return g_strdup(s);
}

static char *
deadline_text(const Send *st)
{
  char buf[32];
  time_t t = (time_t)st->deadline;
  struct tm tm;
  if (st->deadline == 0 || localtime_r(&t, &tm) == NULL ||
      strftime(buf, sizeof buf, "%H:%M", &tm) == 0)
    return NULL;
  return g_strdup(buf);
}

/* "90s", "30m", "2h", "7d": the largest unit that divides seconds. */
static char *
duration_text(gint64 seconds)
{
  if (seconds % 86400 == 0)
    return g_strdup_printf("%" G_GINT64_FORMAT "d", seconds / 86400);
  if (seconds % 3600 == 0)
    return g_strdup_printf("%" G_GINT64_FORMAT "h", seconds / 3600);
  if (seconds % 60 == 0)
    return g_strdup_printf("%" G_GINT64_FORMAT "m", seconds / 60);
  return g_strdup_printf("%" G_GINT64_FORMAT "s", seconds);
}

/* ---- the transfers ---------------------------------------------------------- */

static void
receiver_free(Receiver *r)
{
  ferry_transfer_free(r->transfer);
  g_free(r);
}

static void
on_file(FerryTransfer *transfer, const FerryFileEvent *event, gpointer user_data)
{
  Receiver *r = user_data;
  cli_output_file(r->send->out, r->track, event);
}

static void
on_finished(FerryTransfer *transfer, const GError *error, gpointer user_data)
{
  Receiver *r = user_data;
  Send *st = r->send;
  int status = cli_exit_for_error(error, CLI_STAGE_TRANSFER);
  g_autofree char *pre = st->s.max_receivers > 1 || st->s.keep
                             ? g_strdup_printf("receiver %u: ", r->number)
                             : g_strdup("");

  cli_output_finished(st->out, r->track, error);
  r->track = NULL;
  if (error == NULL) {
    st->done++;
  } else if (status == FERRY_EXIT_INTERRUPTED) {
    /* we cancelled it; the summary comes at the end */
  } else if (status == FERRY_EXIT_DECLINED) {
    st->declined++;
    cli_output_fail(st->out, status, "%s%s", pre, error->message);
  } else {
    g_autofree char *until = deadline_text(st);
    cli_output_fail(st->out, status, "%s%s", pre, error->message);
    if (!st->stopping)
      cli_output_say(st->out,
                     "the code stays valid%s%s: the receiver can run the same command again "
                     "(%s); only what is missing will move",
                     until != NULL ? " until " : "", until != NULL ? until : "",
                     st->receive_command);
  }
  g_ptr_array_remove(st->receivers, r);
  receiver_free(r);
  check_end(st);
}

static const FerryTransferHandlers transfer_handlers = {
    .file = on_file,
    .finished = on_finished,
};

/* ---- the listener ----------------------------------------------------------- */

/* LAN mode: announces the code on the local network, under the number
 * people there will type. Returns that code, or NULL after stopping the
 * send with the reason. */
static const char *
announce_code(Send *st, const char *code)
{
  GError *error = NULL;
  st->announcer = ferry_lan_announcer_new(code, ferry_server_get_port(st->rendezvous), &error);
  if (st->announcer == NULL) {
    st->listener_status = FERRY_EXIT_FAILURE;
    cli_output_fail(st->out, st->listener_status, "%s", error->message);
    g_error_free(error);
    st->stopping = TRUE;
    stop_listeners(st);
    check_end(st);
    return NULL;
  }
  return ferry_lan_announcer_get_code(st->announcer);
}

/* The twin's code: the words are the server code's, and the LAN hears
 * the server code's number. */
static void
on_twin_code(FerryListener *listener, const char *code, gpointer user_data)
{
  Send *st = user_data;
  FerryCode server_code;
  FerryCodeDiag diag;
  GError *error = NULL;
  const char *shown = ferry_listener_get_code(st->listener);

  if (shown == NULL || ferry_code_parse(shown, strlen(shown), &server_code, &diag) < 0)
    return;
  st->announcer = ferry_lan_announcer_new_full(code, ferry_server_get_port(st->rendezvous),
                                               server_code.nameplate, st->s.server, &error);
  if (st->announcer == NULL) {
    cli_output_warn(st->out, "the code is offered through the server only: %s", error->message);
    g_error_free(error);
    ferry_listener_stop(st->twin);
    return;
  }
  cli_output_say(st->out, "also offered on this network: receivers here connect without the "
                          "server (--no-lan to stop that)");
}

static void
on_twin_closed(FerryListener *listener, const GError *error, gpointer user_data)
{
  Send *st = user_data;
  if (error != NULL && !st->stopping)
    cli_output_warn(st->out, "the code is no longer offered on this network: %s", error->message);
  g_clear_pointer(&st->announcer, ferry_lan_announcer_free);
}

static void on_connection(FerryListener *listener, FerryConnection *conn, gpointer user_data);
static void on_attempt_failed(FerryListener *listener, const char *peer, const GError *error,
                              gpointer user_data);

static const FerryListenerHandlers twin_handlers = {
    .code = on_twin_code,
    .connection = on_connection,
    .attempt_failed = on_attempt_failed,
    .closed = on_twin_closed,
};

/* With a server: offers the same code on the local network too (see
 * Send.twin). Failing that only costs the LAN, so it is a warning. */
static void
start_twin(Send *st, const char *code)
{
  FerryCode parsed;
  FerryCodeDiag diag;
  GError *error = NULL;

  if (ferry_code_parse(code, strlen(code), &parsed, &diag) < 0)
    return;
  if (!start_rendezvous(st, &error)) {
    cli_output_warn(st->out, "the code is offered through the server only: %s", error->message);
    g_error_free(error);
    return;
  }
  FerryConnectOptions co;
  cli_settings_connect_options(&st->s, &co);
  co.server_url = st->rendezvous_url;
  co.words = parsed.password;
  st->twin = ferry_listener_new(&co, &twin_handlers, st, &error);
  if (st->twin == NULL) {
    cli_output_warn(st->out, "the code is offered through the server only: %s", error->message);
    g_error_free(error);
    return;
  }
  ferry_listener_share_slots(st->listener, st->twin);
}

static void
on_code(FerryListener *listener, const char *code, gpointer user_data)
{
  Send *st = user_data;
  g_autofree char *server = shell_word(st->s.server != NULL ? st->s.server : "");
  gboolean lan_only = st->rendezvous != NULL;

  if (lan_only && (code = announce_code(st, code)) == NULL)
    return;
  st->receive_command = g_strdup_printf("ferry receive%s%s %s", lan_only ? "" : " --server ",
                                        lan_only ? "" : server, code);
  JsonBuilder *b = cli_output_event(st->out, "code");
  if (b != NULL) {
    cli_json_add_string(b, "code", code);
    cli_json_add_string(b, "id", st->id);
    cli_json_add_string(b, "command", st->receive_command);
    if (st->rendezvous != NULL) {
      json_builder_set_member_name(b, "lan");
      json_builder_add_boolean_value(b, TRUE);
    }
    if (st->deadline != 0) {
      json_builder_set_member_name(b, "expires");
      json_builder_add_int_value(b, st->deadline);
    }
    cli_output_emit(st->out, b);
    return;
  }
  if (st->s.quiet) {
    printf("%s\n", code);
  } else {
    printf("Code: %s\n", code);
    printf("On the other side run: %s\n", st->receive_command);
  }
  fflush(stdout);
  if (lan_only && st->s.server == NULL)
    cli_output_say(st->out, "no server configured: receivers on this network can use this code "
                            "(LAN mode); for the internet use --server");
  else if (lan_only)
    cli_output_say(st->out, "receivers on this network can use this code (LAN mode); the "
                            "server could not be reached");
  /* --force-relay tests the server's TURN, which our own rendezvous lacks */
  if (!lan_only && !st->s.no_lan && !st->s.force_relay)
    start_twin(st, code);
}

static void
on_connection(FerryListener *listener, FerryConnection *conn, gpointer user_data)
{
  Send *st = user_data;
  Receiver *r;

  if (st->stopping) {
    ferry_connection_close(conn, "the sender is stopping");
    ferry_connection_free(conn);
    return;
  }
  r = g_new0(Receiver, 1);
  r->send = st;
  r->number = ++st->next_number;
  cli_output_connected(st->out, r->number, conn);
  r->transfer = ferry_transfer_send(st->source, conn, &transfer_handlers, r);
  r->track = cli_output_track(st->out, r->transfer, r->number);
  g_ptr_array_add(st->receivers, r);
}

static void
on_attempt_failed(FerryListener *listener, const char *peer, const GError *error,
                  gpointer user_data)
{
  Send *st = user_data;
  if (g_error_matches(error, FERRY_ERROR, FERRY_ERROR_AUTH))
    cli_output_warn(st->out, "someone tried a wrong code: %s", error->message);
  else
    cli_output_warn(st->out, "a receiver could not connect: %s", error->message);
}

static const FerryListenerHandlers listener_handlers;

/* The server could not be reached before it gave a code: offer the code
 * on the local network instead (LAN mode), as if no server were set. */
static gboolean
fall_back_to_lan(gpointer user_data)
{
  Send *st = user_data;
  GError *error = NULL;

  st->fallback = 0;
  g_clear_pointer(&st->listener, ferry_listener_free);
  FerryConnectOptions co;
  cli_settings_connect_options(&st->s, &co);
  if (start_rendezvous(st, &error)) {
    co.server_url = st->rendezvous_url;
    st->listener = ferry_listener_new(&co, &listener_handlers, st, &error);
  }
  if (st->listener == NULL) {
    st->listener_status = FERRY_EXIT_FAILURE;
    cli_output_fail(st->out, st->listener_status, "%s", error->message);
    g_error_free(error);
    st->stopping = TRUE;
    check_end(st);
  }
  return G_SOURCE_REMOVE;
}

static void
on_listener_closed(FerryListener *listener, const GError *error, gpointer user_data)
{
  Send *st = user_data;
  if (error != NULL && !st->stopping && st->receive_command == NULL && st->s.server != NULL &&
      !st->s.no_lan && st->rendezvous == NULL &&
      g_error_matches(error, FERRY_ERROR, FERRY_ERROR_IO)) {
    cli_output_warn(st->out, "%s; offering the code on this network only (LAN mode)",
                    error->message);
    st->fallback = g_idle_add(fall_back_to_lan, st);
    return;
  }
  if (error != NULL && !st->stopping) {
    st->listener_status = cli_exit_for_error(error, CLI_STAGE_CONNECT);
    if (st->listener_status == FERRY_EXIT_USAGE)
      st->listener_status = FERRY_EXIT_FAILURE;
    cli_output_fail(st->out, st->listener_status, "%s", error->message);
  }
  st->stopping = TRUE;
  check_end(st);
}

static const FerryListenerHandlers listener_handlers = {
    .code = on_code,
    .connection = on_connection,
    .attempt_failed = on_attempt_failed,
    .closed = on_listener_closed,
};

/* ---- ending ------------------------------------------------------------------ */

static gboolean
all_served(const Send *st)
{
  return !st->s.keep && st->done + st->declined >= st->s.max_receivers;
}

/* Decides whether the command is over: when every receiver owed is
 * served, the code is released; once nothing more can come and no
 * transfer is under way, the loop ends. */
static void
check_end(Send *st)
{
  if (!st->stopping && all_served(st)) {
    st->stopping = TRUE;
    stop_listeners(st);
    /* Every receiver owed is served: what is left are connections to
     * receivers that vanished (killed, then came back under a new
     * connection), which would only end at their idle timeout. */
    for (guint i = 0; i < st->receivers->len; i++)
      ferry_transfer_cancel(((Receiver *)st->receivers->pdata[i])->transfer);
  }
  if (st->stopping)
    g_clear_pointer(&st->announcer, ferry_lan_announcer_free);
  if (st->stopping && st->receivers->len == 0)
    g_main_loop_quit(st->loop);
}

static int
final_status(Send *st)
{
  if (st->interrupted)
    return st->s.keep && !st->cut ? FERRY_EXIT_OK : FERRY_EXIT_INTERRUPTED;
  if (all_served(st))
    return st->declined > 0 ? FERRY_EXIT_DECLINED : FERRY_EXIT_OK;
  if (st->listener_status != 0)
    return st->listener_status;
  if (st->timed_out)
    return st->s.keep ? FERRY_EXIT_OK : FERRY_EXIT_TIMED_OUT;
  return st->s.keep ? FERRY_EXIT_OK : FERRY_EXIT_FAILURE;
}

static gboolean
on_ttl(gpointer user_data)
{
  Send *st = user_data;
  g_autofree char *ttl = duration_text(st->s.ttl_seconds);
  st->ttl_timer = 0;
  if (st->stopping)
    return G_SOURCE_REMOVE;
  st->timed_out = TRUE;
  st->stopping = TRUE;
  stop_listeners(st);
  if (st->s.keep)
    cli_output_say(st->out, "the code expired (--ttl %s): %u receivers served", ttl, st->done);
  else if (st->receivers->len > 0)
    cli_output_say(st->out,
                   "the code expired (--ttl %s); letting the %u transfers under way finish", ttl,
                   st->receivers->len);
  check_end(st);
  return G_SOURCE_REMOVE;
}

static gboolean
on_signal(gpointer user_data)
{
  Send *st = user_data;
  if (st->interrupted) {
    g_main_loop_quit(st->loop);
    return G_SOURCE_CONTINUE;
  }
  st->interrupted = TRUE;
  st->stopping = TRUE;
  stop_listeners(st);
  st->cut = st->receivers->len > 0;
  if (st->receivers->len == 1)
    cli_output_say(st->out, "interrupted: stopping the transfer (again to quit at once)");
  else if (st->receivers->len > 1)
    cli_output_say(st->out, "interrupted: stopping %u transfers (again to quit at once)",
                   st->receivers->len);
  for (guint i = 0; i < st->receivers->len; i++)
    ferry_transfer_cancel(((Receiver *)st->receivers->pdata[i])->transfer);
  check_end(st);
  return G_SOURCE_CONTINUE;
}

/* ---- setting up -------------------------------------------------------------- */

/* LAN mode: a rendezvous of our own on an ephemeral port of every IPv4
 * address, no STUN (peers on one network meet on host candidates), and
 * no limits of its own: --ttl and --max-receivers are enforced here. */
static gboolean
start_rendezvous(Send *st, GError **error)
{
  FerryServerConfig cfg;
  ferry_server_config_init(&cfg);
  cfg.listen = (char *)"0.0.0.0:0";
  cfg.stun_port = -1;
  cfg.code_ttl = G_MAXINT / 4;
  cfg.session_ttl = G_MAXINT / 4;
  cfg.max_receivers = MAX(cfg.max_receivers, st->s.max_receivers);
  st->rendezvous = ferry_server_new(&cfg, error);
  if (st->rendezvous == NULL) {
    g_prefix_error(error, "cannot start the local rendezvous for LAN mode: ");
    return FALSE;
  }
  st->rendezvous_url = g_strdup_printf("ws://127.0.0.1:%u", ferry_server_get_port(st->rendezvous));
  return TRUE;
}

static int
source_status(const GError *error)
{
  if (error->domain == FERRY_ERROR &&
      (error->code == FERRY_ERROR_INVALID || error->code == FERRY_ERROR_AMBIGUOUS ||
       error->code == FERRY_ERROR_UNSAFE_PATH))
    return FERRY_EXIT_USAGE;
  return FERRY_EXIT_LOCAL_FILE;
}

/* The paths to send, absolute: from the command line, or from the record
 * of an earlier send with --resume. Returns NULL after printing why. */
static char **
paths_to_send(Send *st, int argc, char **argv)
{
  int first = 1;
  if (first < argc && strcmp(argv[first], "--") == 0)
    first++;
  if (st->s.resume != NULL) {
    CliSendRecord rec;
    GError *error = NULL;
    if (first < argc) {
      cli_error("--resume sends the paths of an earlier send again: give --resume ID or paths, "
                "not both");
      return NULL;
    }
    if (!cli_send_record_load(st->s.resume, &rec, &error)) {
      cli_error("%s", error->message);
      g_error_free(error);
      return NULL;
    }
    if (st->s.source[CLI_SET_CHUNK_SIZE] == CLI_FROM_FLAG && st->s.chunk_size != rec.chunk_size) {
      cli_error("--resume %s sends with the chunk size it was made with (%u bytes): leave "
                "--chunk-size out",
                rec.id, rec.chunk_size);
      cli_send_record_clear(&rec);
      return NULL;
    }
    st->s.chunk_size = rec.chunk_size;
    char **paths = g_steal_pointer(&rec.paths);
    cli_send_record_clear(&rec);
    return paths;
  }
  if (first >= argc) {
    cli_error("name at least one file or folder to send (see 'ferry send --help')");
    return NULL;
  }
  char **paths = g_new0(char *, (gsize)(argc - first) + 1);
  for (int i = first; i < argc; i++)
    paths[i - first] = g_canonicalize_filename(argv[i], NULL);
  return paths;
}

static void
report_scan_issues(Send *st)
{
  guint n = 0;
  const FerryScanIssue *issues = ferry_source_get_issues(st->source, &n);
  for (guint i = 0; i < n; i++) {
    g_autofree char *path = cli_display(issues[i].path);
    cli_output_warn(st->out, "skipped %s: %s", path, issues[i].reason);
  }
}

static const char description[] =
    "Scans the files and folders named, prints a code and waits for receivers: each runs\n"
    "'ferry receive CODE' and, once it accepts, gets everything, verified chunk by chunk.\n"
    "A receiver that fails may come back with the same code while it is valid, and only\n"
    "what is missing moves again. Settings also come from $XDG_CONFIG_HOME/ferry/config\n"
    "(group [ferry], keys = long options) and FERRY_SERVER, FERRY_STUN_SERVER,\n"
    "FERRY_TURN_SERVER; flags win. With no server anywhere, the code works on this\n"
    "network only (LAN mode: the sender announces it on UDP port " G_STRINGIFY(
        FERRY_LAN_PORT) ").\n"
                        "\n"
                        "Exit status: 0 all receivers served; 1 other failure; 2 bad command line "
                        "or config;\n"
                        "3 wrong code; 4 server unreachable; 5 receiver vanished; 6 declined; 8 "
                        "file not\n"
                        "readable; 10 interrupted; 12 --ttl ran out with receivers still owed.";

int
cmd_send(int argc, char **argv)
{
  Send st = {0};
  GError *error = NULL;
  g_auto(GStrv) paths = NULL;
  int status;

  cli_settings_init(&st.s);
  gboolean verbose = cli_settings_verbose(argc, argv);
  if (!cli_parse(&argc, &argv, "PATH… - send files and folders to whoever holds the code", NULL,
                 description, cli_settings_entries(&st.s, CLI_SCOPE_SEND)) ||
      !cli_settings_resolve(&st.s, CLI_SCOPE_SEND) ||
      (paths = paths_to_send(&st, argc, argv)) == NULL) {
    cli_settings_clear(&st.s);
    return FERRY_EXIT_USAGE;
  }
  if (st.s.keep && st.s.source[CLI_SET_TTL] == CLI_FROM_DEFAULT)
    st.s.ttl_seconds = 0;
  if (!st.s.link && (st.s.source[CLI_SET_ENCRYPT] == CLI_FROM_FLAG ||
                     st.s.source[CLI_SET_DOWNLOADS] == CLI_FROM_FLAG)) {
    cli_error("--encrypt and --downloads go with --link (an upload to the server's HTTP relay); "
              "codes are always encrypted end to end");
    cli_settings_clear(&st.s);
    return FERRY_EXIT_USAGE;
  }
  if (st.s.link) {
    status = cli_link_send(&st.s, paths, verbose);
    cli_settings_clear(&st.s);
    return status;
  }

  CliOutputOptions oo = {
      .sending = TRUE,
      .quiet = st.s.quiet,
      .json = st.s.json,
      .verbose = verbose,
      .benchmark = st.s.benchmark,
      .numbered = st.s.max_receivers > 1 || st.s.keep,
  };
  st.out = cli_output_new(&oo);
  st.receivers = g_ptr_array_new();
  st.loop = g_main_loop_new(NULL, FALSE);

  FerrySendOptions so;
  ferry_send_options_init(&so);
  so.chunk_size = st.s.chunk_size;
  so.streams = st.s.parallel;
  so.limit_rate = st.s.limit_rate;
  so.skip_errors = st.s.skip_errors;
  st.source = ferry_source_new((const char *const *)paths, &so, &error);
  if (st.source == NULL) {
    status = source_status(error);
    cli_output_fail(st.out, status, "%s", error->message);
    g_error_free(error);
    goto out;
  }
  report_scan_issues(&st);

  FerryConnectOptions co;
  cli_settings_connect_options(&st.s, &co);
  if (st.s.server == NULL) {
    if (!start_rendezvous(&st, &error)) {
      status = FERRY_EXIT_FAILURE;
      cli_output_fail(st.out, status, "%s", error->message);
      g_error_free(error);
      goto out;
    }
    co.server_url = st.rendezvous_url;
  }
  st.listener = ferry_listener_new(&co, &listener_handlers, &st, &error);
  if (st.listener == NULL) {
    status = cli_exit_for_error(error, CLI_STAGE_CONNECT);
    cli_output_fail(st.out, status, "%s", error->message);
    g_error_free(error);
    goto out;
  }

  FerryTransferSummary sum;
  ferry_source_get_summary(st.source, &sum);
  g_strlcpy(st.id, sum.id, sizeof st.id);
  if (!cli_send_record_save(st.id, (const char *const *)paths, sum.chunk_size, &error)) {
    cli_output_warn(st.out,
                    "cannot save how to resume this send (%s); to resume, send the same "
                    "paths again",
                    error->message);
    g_clear_error(&error);
  }
  {
    g_autofree char *what = cli_summary_text(&sum);
    cli_output_say(st.out, "Sending %s", what);
    cli_output_say(st.out, "transfer %s: resume with `ferry send --resume %.8s` or the same paths",
                   st.id, st.id);
  }
  if (st.s.ttl_seconds > 0) {
    st.deadline = g_get_real_time() / G_USEC_PER_SEC + st.s.ttl_seconds;
    st.ttl_timer = g_timeout_add_seconds((guint)st.s.ttl_seconds, on_ttl, &st);
  }
  guint sigint = g_unix_signal_add(SIGINT, on_signal, &st);
  guint sigterm = g_unix_signal_add(SIGTERM, on_signal, &st);
  g_main_loop_run(st.loop);
  g_source_remove(sigint);
  g_source_remove(sigterm);
  if (st.ttl_timer != 0)
    g_source_remove(st.ttl_timer);

  status = final_status(&st);
  if (st.interrupted && status == FERRY_EXIT_OK)
    cli_output_say(st.out, "stopped: %u %s served", st.done,
                   st.done == 1 ? "receiver" : "receivers");
  else if (status == FERRY_EXIT_INTERRUPTED && st.s.keep)
    cli_output_fail(st.out, status,
                    "interrupted: %u served, the transfers under way stopped; run the same ferry "
                    "send (or --resume %.8s) for a new code, and receivers continue where they "
                    "stopped",
                    st.done, st.id);
  else if (status == FERRY_EXIT_INTERRUPTED)
    cli_output_fail(st.out, status,
                    "interrupted: %u of %u receivers served; run the same ferry send (or "
                    "--resume %.8s) for a new code, and receivers continue where they stopped",
                    st.done, st.s.max_receivers, st.id);
  else if (status == FERRY_EXIT_TIMED_OUT) {
    g_autofree char *ttl = duration_text(st.s.ttl_seconds);
    cli_output_fail(st.out, status,
                    "the code expired (--ttl %s) with %u of %u receivers served; run the same "
                    "ferry send for a new code (--ttl 0 waits without limit)",
                    ttl, st.done, st.s.max_receivers);
  } else if (status == FERRY_EXIT_FAILURE && st.listener_status == 0)
    cli_output_fail(st.out, status, "the code was closed with %u of %u receivers served", st.done,
                    st.s.max_receivers);

out:
  for (guint i = 0; st.receivers != NULL && i < st.receivers->len; i++)
    receiver_free(st.receivers->pdata[i]);
  if (st.receivers != NULL)
    g_ptr_array_unref(st.receivers);
  if (st.fallback != 0)
    g_source_remove(st.fallback);
  ferry_listener_free(st.twin);
  ferry_listener_free(st.listener);
  ferry_lan_announcer_free(st.announcer);
  if (st.rendezvous != NULL)
    ferry_server_free(st.rendezvous);
  g_free(st.rendezvous_url);
  ferry_source_free(st.source);
  cli_output_free(st.out);
  if (st.loop != NULL)
    g_main_loop_unref(st.loop);
  g_free(st.receive_command);
  cli_settings_clear(&st.s);
  return status;
}
