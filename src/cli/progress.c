/* Progress lines, events and summaries of ferry send / receive. See
 * progress.h. */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "commands.h"

#define TICK_MS     100                  /* live lines: at most 10 updates a second */
#define PLAIN_EVERY (2 * G_USEC_PER_SEC) /* plain lines: one every 2 s at most */
#define JSON_EVERY  (G_USEC_PER_SEC / 2) /* progress events: at most 2 a second */
#define RATE_WINDOW 32                   /* samples (3.2 s) behind the live rate */
#define BAR_WIDTH   20

struct _CliTrack {
  CliOutput *out;
  FerryTransfer *transfer;
  guint number;
  FerryConnectionPath path;
  /* the live rate: a ring of (time, bytes moved) samples */
  gint64 ring_t[RATE_WINDOW];
  guint64 ring_b[RATE_WINDOW];
  guint ring_n, ring_head;
  /* --benchmark: the rate of each whole second since data began to move */
  GArray *rates;       /* double */
  gint64 second_start; /* when data began to move */
  gint64 second_t;
  guint64 second_b;
  gint64 last_plain_us;
  gint64 last_json_us;
  guint64 last_json_bytes;
  guint64 last_plain_bytes;
};

struct _CliOutput {
  CliOutputOptions o;
  gboolean live;     /* standard error is a terminal: redraw lines in place */
  gboolean utf8;     /* the locale can show the bar's block characters */
  guint drawn;       /* live lines on the screen now */
  GPtrArray *tracks; /* CliTrack * */
  guint timer;
};

/* ---- formatting ------------------------------------------------------------ */

/* Three significant digits: "1.00", "12.3", "487". */
static char *
three_digits(double v, const char *unit)
{
  if (v < 9.995)
    return g_strdup_printf("%.2f %s", v, unit);
  if (v < 99.95)
    return g_strdup_printf("%.1f %s", v, unit);
  return g_strdup_printf("%.0f %s", v, unit);
}

char *
cli_format_bytes(guint64 bytes)
{
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = (double)bytes;
  if (bytes < 1024)
    return g_strdup_printf("%" G_GUINT64_FORMAT " B", bytes);
  for (guint i = 0; i < G_N_ELEMENTS(units); i++) {
    v /= 1024;
    if (v < 999.5 || i + 1 == G_N_ELEMENTS(units))
      return three_digits(v, units[i]);
  }
  return NULL;
}

char *
cli_format_rate(double r)
{
  static const char *const units[] = {"kB/s", "MB/s", "GB/s", "TB/s"};
  if (!(r >= 0) || r > 1e30)
    r = 0;
  if (r < 1000)
    return g_strdup_printf("%.0f B/s", r);
  for (guint i = 0; i < G_N_ELEMENTS(units); i++) {
    r /= 1000;
    if (r < 999.5 || i + 1 == G_N_ELEMENTS(units))
      return three_digits(r, units[i]);
  }
  return NULL;
}

static char *
format_seconds(double s)
{
  if (s < 10)
    return g_strdup_printf("%.1f s", s);
  if (s < 60)
    return g_strdup_printf("%.0f s", s);
  guint64 t = (guint64)(s + 0.5);
  if (t < 3600)
    return g_strdup_printf("%" G_GUINT64_FORMAT ":%02u", t / 60, (guint)(t % 60));
  return g_strdup_printf("%" G_GUINT64_FORMAT ":%02u:%02u", t / 3600, (guint)(t / 60 % 60),
                         (guint)(t % 60));
}

char *
cli_display(const char *s)
{
  GString *out = g_string_new(NULL);
  while (*s != '\0') {
    gunichar c = g_utf8_get_char_validated(s, -1);
    if (c == (gunichar)-1 || c == (gunichar)-2 || c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
      g_string_append_printf(out, "\\x%02x", (guchar)*s);
      s++;
      continue;
    }
    const char *next = g_utf8_next_char(s);
    if (c == '\\')
      g_string_append_c(out, '\\');
    g_string_append_len(out, s, next - s);
    s = next;
  }
  return g_string_free(out, FALSE);
}

char *
cli_summary_text(const FerryTransferSummary *sum)
{
  GString *s = g_string_new(NULL);
  g_autofree char *size = cli_format_bytes(sum->bytes);

  g_string_append_printf(s, "%" G_GUINT64_FORMAT " %s", sum->files,
                         sum->files == 1 ? "file" : "files");
  if (sum->dirs > 0)
    g_string_append_printf(s, ", %" G_GUINT64_FORMAT " %s", sum->dirs,
                           sum->dirs == 1 ? "folder" : "folders");
  if (sum->symlinks > 0)
    g_string_append_printf(s, ", %" G_GUINT64_FORMAT " %s", sum->symlinks,
                           sum->symlinks == 1 ? "symlink" : "symlinks");
  g_string_append_printf(s, ", %s", size);
  for (guint i = 0; i < sum->n_names; i++) {
    g_autofree char *name = cli_display(sum->names[i]);
    g_string_append_printf(s, "%s%s", i == 0 ? ": " : ", ", name);
  }
  if (sum->n_roots > sum->n_names)
    g_string_append_printf(s, " [+%u more]", sum->n_roots - sum->n_names);
  return g_string_free(s, FALSE);
}

/* ---- exit statuses ---------------------------------------------------------- */

/* The engine reports a full disk as FERRY_ERROR_IO whose message says
 * so (with the bytes needed and free). */
static gboolean
is_disk_full(const char *message)
{
  static const char *const signs[] = {"not enough space", "No space left", "disk full"};
  for (guint i = 0; i < G_N_ELEMENTS(signs); i++)
    if (strstr(message, signs[i]) != NULL)
      return TRUE;
  return FALSE;
}

int
cli_exit_for_error(const GError *e, CliStage stage)
{
  if (e == NULL)
    return FERRY_EXIT_OK;
  if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return FERRY_EXIT_INTERRUPTED;
  if (e->domain != FERRY_ERROR)
    return FERRY_EXIT_FAILURE;
  switch ((FerryError)e->code) {
  case FERRY_ERROR_AUTH:
    return FERRY_EXIT_WRONG_CODE;
  case FERRY_ERROR_NOT_FOUND:
    return stage == CLI_STAGE_CONNECT ? FERRY_EXIT_NO_SUCH_CODE : FERRY_EXIT_LOCAL_FILE;
  case FERRY_ERROR_IO:
    if (stage == CLI_STAGE_CONNECT)
      return FERRY_EXIT_NO_SERVER;
    return is_disk_full(e->message) ? FERRY_EXIT_DISK_FULL : FERRY_EXIT_LOCAL_FILE;
  case FERRY_ERROR_FAILED:
    return FERRY_EXIT_PEER_LOST;
  case FERRY_ERROR_STATE:
    return stage == CLI_STAGE_TRANSFER ? FERRY_EXIT_DECLINED : FERRY_EXIT_FAILURE;
  case FERRY_ERROR_EXISTS:
    return FERRY_EXIT_LOCAL_FILE;
  case FERRY_ERROR_CORRUPT:
  case FERRY_ERROR_UNSAFE_PATH:
    return FERRY_EXIT_VERIFY;
  case FERRY_ERROR_INVALID:
    return stage == CLI_STAGE_CONNECT ? FERRY_EXIT_USAGE : FERRY_EXIT_FAILURE;
  default:
    return FERRY_EXIT_FAILURE;
  }
}

/* ---- plain output ------------------------------------------------------------ */

static gboolean human(CliOutput *out);

/* Removes the live lines from the screen so that a message can be
 * printed; the next tick draws them again below it. */
static void
clear_live(CliOutput *out)
{
  if (out->drawn == 0)
    return;
  fputc('\r', stderr);
  if (out->drawn > 1)
    fprintf(stderr, "\033[%uA", out->drawn - 1);
  fputs("\033[J", stderr);
  out->drawn = 0;
}

static void vsay(CliOutput *out, const char *prefix, const char *fmt, va_list ap)
    G_GNUC_PRINTF(3, 0);

static void
vsay(CliOutput *out, const char *prefix, const char *fmt, va_list ap)
{
  clear_live(out);
  fflush(stdout);
  fputs(prefix, stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  fflush(stderr);
}

void
cli_output_say(CliOutput *out, const char *fmt, ...)
{
  va_list ap;
  if (!human(out))
    return;
  va_start(ap, fmt);
  vsay(out, "", fmt, ap);
  va_end(ap);
}

void
cli_output_warn(CliOutput *out, const char *fmt, ...)
{
  va_list ap;
  if (out->o.quiet)
    return;
  va_start(ap, fmt);
  vsay(out, "ferry: warning: ", fmt, ap);
  va_end(ap);
}

void
cli_output_fail(CliOutput *out, int exit_status, const char *fmt, ...)
{
  g_autofree char *message = NULL;
  va_list ap;
  va_start(ap, fmt);
  message = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  clear_live(out);
  fflush(stdout);
  cli_error("%s", message);
  JsonBuilder *b = cli_output_event(out, "error");
  if (b != NULL) {
    json_builder_set_member_name(b, "exit");
    json_builder_add_int_value(b, exit_status);
    cli_json_add_string(b, "message", message);
    cli_output_emit(out, b);
  }
}

static gboolean
human(CliOutput *out)
{
  return !out->o.quiet && !out->o.json;
}

/* ---- JSON events ------------------------------------------------------------- */

JsonBuilder *
cli_output_event(CliOutput *out, const char *event)
{
  if (!out->o.json)
    return NULL;
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "event");
  json_builder_add_string_value(b, event);
  return b;
}

void
cli_output_emit(CliOutput *out, JsonBuilder *b)
{
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  g_autoptr(JsonGenerator) gen = json_generator_new();
  json_generator_set_root(gen, root);
  g_autofree char *text = json_generator_to_data(gen, NULL);
  fputs(text, stdout);
  fputc('\n', stdout);
  fflush(stdout);
  g_object_unref(b);
}

void
cli_json_add_string(JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name(b, name);
  if (value == NULL) {
    json_builder_add_null_value(b);
    return;
  }
  g_autofree char *valid = g_utf8_make_valid(value, -1);
  json_builder_add_string_value(b, valid);
}

static void
add_uint(JsonBuilder *b, const char *name, guint64 v)
{
  json_builder_set_member_name(b, name);
  json_builder_add_int_value(b, (gint64)MIN(v, (guint64)G_MAXINT64));
}

/* Rates go out as whole bytes a second: the fraction means nothing, and
 * json-glib would print it with 17 digits. */
static void
add_rate(JsonBuilder *b, const char *name, double v)
{
  add_uint(b, name, v >= 0 && v < 1e18 ? (guint64)(v + 0.5) : 0);
}

static void
add_double(JsonBuilder *b, const char *name, double v)
{
  json_builder_set_member_name(b, name);
  json_builder_add_double_value(b,
                                v >= 0 && v < 1e15 ? (double)(gint64)(v * 1000 + 0.5) / 1000 : 0);
}

/* ---- connections and offers -------------------------------------------------- */

static char *
prefix(CliOutput *out, guint number)
{
  return out->o.numbered ? g_strdup_printf("[%u] ", number) : g_strdup("");
}

void
cli_output_connected(CliOutput *out, guint number, FerryConnection *conn)
{
  FerryConnectionPath path;
  g_autofree char *line = ferry_connection_path_to_string(conn);
  g_autofree char *pre = prefix(out, number);

  ferry_connection_get_path(conn, &path);
  JsonBuilder *b = cli_output_event(out, "connected");
  if (b != NULL) {
    add_uint(b, "peer", number);
    cli_json_add_string(b, "path", line);
    json_builder_set_member_name(b, "relayed");
    json_builder_add_boolean_value(b, path.relayed);
    add_uint(b, "connect_ms", (guint64)MAX(path.connect_ms, 0));
    cli_output_emit(out, b);
    return;
  }
  if (out->o.verbose)
    cli_output_say(out, "%sconnected: %s", pre, line);
  else if (out->o.sending && out->o.numbered)
    cli_output_say(out, "%sreceiver connected (%s)", pre, path.relayed ? "relay" : "direct");
  else if (out->o.sending)
    cli_output_say(out, "receiver %u connected (%s)", number, path.relayed ? "relay" : "direct");
  else
    cli_output_say(out, "connected to the sender (%s)", path.relayed ? "relay" : "direct");
}

void
cli_output_offer(CliOutput *out, const FerryTransferSummary *sum)
{
  JsonBuilder *b = cli_output_event(out, "offer");
  if (b == NULL)
    return;
  cli_json_add_string(b, "id", sum->id);
  add_uint(b, "files", sum->files);
  add_uint(b, "dirs", sum->dirs);
  add_uint(b, "symlinks", sum->symlinks);
  add_uint(b, "bytes", sum->bytes);
  add_uint(b, "chunk_size", sum->chunk_size);
  json_builder_set_member_name(b, "names");
  json_builder_begin_array(b);
  for (guint i = 0; i < sum->n_names; i++) {
    g_autofree char *valid = g_utf8_make_valid(sum->names[i], -1);
    json_builder_add_string_value(b, valid);
  }
  json_builder_end_array(b);
  add_uint(b, "roots", sum->n_roots);
  cli_output_emit(out, b);
}

/* ---- tracking transfers ------------------------------------------------------ */

static guint64
moved(const FerryTransferProgress *p)
{
  return p->bytes_done > p->bytes_resumed ? p->bytes_done - p->bytes_resumed : 0;
}

/* Bytes a second over the last few samples (0 until there are two). */
static double
live_rate(const CliTrack *t)
{
  if (t->ring_n < 2)
    return t->ring_n == 1 && t->ring_t[0] > t->second_start
               ? (double)t->ring_b[0] * G_USEC_PER_SEC / (double)(t->ring_t[0] - t->second_start)
               : 0;
  guint newest = (t->ring_head + RATE_WINDOW - 1) % RATE_WINDOW;
  guint oldest = (t->ring_head + RATE_WINDOW - t->ring_n) % RATE_WINDOW;
  gint64 dt = t->ring_t[newest] - t->ring_t[oldest];
  if (dt <= 0)
    return 0;
  return (double)(t->ring_b[newest] - t->ring_b[oldest]) * G_USEC_PER_SEC / (double)dt;
}

static void
sample(CliTrack *t, const FerryTransferProgress *p, gint64 now)
{
  guint64 b = moved(p);
  if (p->started_us == 0)
    return;
  t->ring_t[t->ring_head] = now;
  t->ring_b[t->ring_head] = b;
  t->ring_head = (t->ring_head + 1) % RATE_WINDOW;
  if (t->ring_n < RATE_WINDOW)
    t->ring_n++;
  if (t->second_t == 0) {
    t->second_start = p->started_us;
    t->second_t = p->started_us;
    t->second_b = 0;
  }
  if (now - t->second_t >= G_USEC_PER_SEC) {
    double r = (double)(b - t->second_b) * G_USEC_PER_SEC / (double)(now - t->second_t);
    g_array_append_val(t->rates, r);
    t->second_t = now;
    t->second_b = b;
  }
}

static guint
terminal_width(void)
{
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
    return ws.ws_col;
  return 80;
}

/* Keeps the last columns of s (already safe for a terminal) so that it
 * takes at most width columns, marking the cut with "…". */
static char *
fit_left(const char *s, guint width)
{
  glong n = g_utf8_strlen(s, -1);
  if (width == 0)
    return g_strdup("");
  if ((guint)n <= width)
    return g_strdup(s);
  return g_strconcat("…", g_utf8_offset_to_pointer(s, n - (glong)width + 1), NULL);
}

static char *
track_line(CliOutput *out, CliTrack *t, const FerryTransferProgress *p, gboolean live)
{
  GString *s = g_string_new(NULL);
  g_autofree char *pre = prefix(out, t->number);
  g_autofree char *done = cli_format_bytes(p->bytes_done);
  g_autofree char *total = cli_format_bytes(p->bytes_total);
  double rate = live_rate(t);
  double frac = p->bytes_total > 0 ? (double)p->bytes_done / (double)p->bytes_total : 0;
  const char *kind = t->path.relayed ? "relay" : "direct";

  if (p->started_us == 0 && p->bytes_done == 0) {
    g_string_append_printf(s, "%s%s, %s", pre,
                           out->o.sending ? "waiting for the receiver to accept" : "starting",
                           kind);
    return g_string_free(s, FALSE);
  }
  frac = CLAMP(frac, 0, 1);
  g_string_append(s, pre);
  if (live) {
    guint full = (guint)(frac * BAR_WIDTH);
    if (!out->utf8)
      g_string_append_c(s, '[');
    for (guint i = 0; i < BAR_WIDTH; i++)
      g_string_append(s, i < full ? (out->utf8 ? "█" : "#") : (out->utf8 ? "░" : "-"));
    if (!out->utf8)
      g_string_append_c(s, ']');
    g_string_append_c(s, ' ');
  }
  g_string_append_printf(s, "%3u%% %s / %s", (guint)(frac * 100), done, total);
  if (out->o.sending && p->bytes_done >= p->bytes_total) {
    g_string_append_printf(s, ", %s, waiting for the receiver to verify", kind);
    return g_string_free(s, FALSE);
  }
  if (rate > 0) {
    g_autofree char *r = cli_format_rate(rate);
    g_string_append_printf(s, ", %s", r);
  }
  if (rate > 0 && p->bytes_total > p->bytes_done) {
    g_autofree char *eta = format_seconds((double)(p->bytes_total - p->bytes_done) / rate);
    g_string_append_printf(s, ", ETA %s", eta);
  }
  g_string_append_printf(s, ", %s", kind);
  if (live && p->current_path != NULL) {
    g_autofree char *name = cli_display(p->current_path);
    glong used = g_utf8_strlen(s->str, -1) + 2;
    guint width = terminal_width() - 1;
    if ((guint)used + 8 <= width) {
      g_autofree char *fitted = fit_left(name, width - (guint)used);
      g_string_append_printf(s, "  %s", fitted);
    }
  }
  return g_string_free(s, FALSE);
}

static void
json_progress(CliOutput *out, CliTrack *t, const FerryTransferProgress *p)
{
  JsonBuilder *b = cli_output_event(out, "progress");
  add_uint(b, "peer", t->number);
  add_uint(b, "bytes_done", p->bytes_done);
  add_uint(b, "bytes_total", p->bytes_total);
  add_uint(b, "files_done", p->files_done);
  add_uint(b, "files_total", p->files_total);
  add_rate(b, "rate", live_rate(t));
  cli_output_emit(out, b);
}

/* The timer: samples every transfer and draws what the mode asks for. */
static gboolean
tick(gpointer user_data)
{
  CliOutput *out = user_data;
  gint64 now = g_get_monotonic_time();
  gboolean draw = out->live && human(out);

  if (draw)
    clear_live(out);
  for (guint i = 0; i < out->tracks->len; i++) {
    CliTrack *t = out->tracks->pdata[i];
    FerryTransferProgress p;
    ferry_transfer_get_progress(t->transfer, &p);
    sample(t, &p, now);
    if (out->o.json) {
      if (now - t->last_json_us >= JSON_EVERY && p.bytes_done != t->last_json_bytes) {
        json_progress(out, t, &p);
        t->last_json_us = now;
        t->last_json_bytes = p.bytes_done;
      }
    } else if (draw) {
      g_autofree char *line = track_line(out, t, &p, TRUE);
      fprintf(stderr, "%s%s\033[K", out->drawn > 0 ? "\n" : "", line);
      out->drawn++;
    } else if (human(out) && now - t->last_plain_us >= PLAIN_EVERY &&
               p.bytes_done != t->last_plain_bytes && p.started_us != 0) {
      g_autofree char *line = track_line(out, t, &p, FALSE);
      fprintf(stderr, "%s\n", line);
      t->last_plain_us = now;
      t->last_plain_bytes = p.bytes_done;
    }
  }
  fflush(stderr);
  return G_SOURCE_CONTINUE;
}

CliOutput *
cli_output_new(const CliOutputOptions *options)
{
  CliOutput *out = g_new0(CliOutput, 1);
  const char *term = g_getenv("TERM");
  out->o = *options;
  out->live = isatty(STDERR_FILENO) && term != NULL && strcmp(term, "dumb") != 0;
  out->utf8 = g_get_charset(NULL);
  out->tracks = g_ptr_array_new();
  return out;
}

static void
track_free(CliTrack *t)
{
  g_array_unref(t->rates);
  g_free(t);
}

void
cli_output_free(CliOutput *out)
{
  if (out == NULL)
    return;
  clear_live(out);
  if (out->timer != 0)
    g_source_remove(out->timer);
  for (guint i = 0; i < out->tracks->len; i++)
    track_free(out->tracks->pdata[i]);
  g_ptr_array_unref(out->tracks);
  g_free(out);
}

CliTrack *
cli_output_track(CliOutput *out, FerryTransfer *transfer, guint number)
{
  CliTrack *t = g_new0(CliTrack, 1);
  t->out = out;
  t->transfer = transfer;
  t->number = number;
  t->rates = g_array_new(FALSE, FALSE, sizeof(double));
  ferry_connection_get_path(ferry_transfer_get_connection(transfer), &t->path);
  g_ptr_array_add(out->tracks, t);
  if (out->timer == 0)
    out->timer = g_timeout_add(TICK_MS, tick, out);
  return t;
}

static const char *
status_name(FerryFileStatus status)
{
  switch (status) {
  case FERRY_FILE_DONE:
    return "done";
  case FERRY_FILE_RENAMED:
    return "renamed";
  case FERRY_FILE_SAME:
    return "same";
  case FERRY_FILE_SKIPPED:
    return "skipped";
  }
  return "unknown";
}

void
cli_output_file(CliOutput *out, CliTrack *t, const FerryFileEvent *e)
{
  JsonBuilder *b = cli_output_event(out, "file");
  if (b != NULL) {
    add_uint(b, "peer", t->number);
    cli_json_add_string(b, "status", status_name(e->status));
    cli_json_add_string(b, "path", e->path);
    cli_json_add_string(b, "final_path", e->final_path);
    add_uint(b, "size", e->size);
    cli_json_add_string(b, "message", e->message);
    cli_output_emit(out, b);
    return;
  }
  g_autofree char *pre = prefix(out, t->number);
  g_autofree char *path = cli_display(e->path);
  g_autofree char *final = e->final_path != NULL ? cli_display(e->final_path) : NULL;
  g_autofree char *size = cli_format_bytes(e->size);
  switch (e->status) {
  case FERRY_FILE_SKIPPED:
    cli_output_warn(out, "%sskipped %s: %s", pre, path,
                    e->message != NULL ? e->message : "no reason given");
    break;
  case FERRY_FILE_RENAMED:
    if (!out->o.sending)
      cli_output_say(out, "%s%s exists and differs: saved as %s", pre, path,
                     final != NULL ? final : "another name");
    break;
  case FERRY_FILE_DONE:
    if (out->o.verbose && e->type == FERRY_ENTRY_FILE)
      cli_output_say(out, "%s%s %s (%s)", pre, out->o.sending ? "sent" : "received", path, size);
    break;
  case FERRY_FILE_SAME:
    if (out->o.verbose && e->type == FERRY_ENTRY_FILE)
      cli_output_say(out, "%s%s: the same file is already there", pre, path);
    break;
  }
}

static int
compare_doubles(gconstpointer a, gconstpointer b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void
print_benchmark(CliOutput *out, CliTrack *t, const FerryConnectionPath *path, JsonBuilder *b)
{
  GArray *r = t->rates;
  double lo = 0, mid = 0, hi = 0;

  if (r->len > 0) {
    g_array_sort(r, compare_doubles);
    lo = g_array_index(r, double, 0);
    hi = g_array_index(r, double, r->len - 1);
    mid =
        r->len % 2
            ? g_array_index(r, double, r->len / 2)
            : (g_array_index(r, double, r->len / 2 - 1) + g_array_index(r, double, r->len / 2)) / 2;
  }
  if (b != NULL) {
    json_builder_set_member_name(b, "benchmark");
    json_builder_begin_object(b);
    add_uint(b, "samples", r->len);
    add_rate(b, "rate_min", lo);
    add_rate(b, "rate_median", mid);
    add_rate(b, "rate_max", hi);
    add_uint(b, "connect_ms", (guint64)MAX(path->connect_ms, 0));
    add_uint(b, "ice_ms", (guint64)MAX(path->ice_ms, 0));
    add_uint(b, "rtt_us", path->rtt_us);
    cli_json_add_string(b, "congestion_control", path->congestion_control);
    json_builder_end_object(b);
    return;
  }
  g_autofree char *pre = prefix(out, t->number);
  g_autofree char *slo = cli_format_rate(lo);
  g_autofree char *smid = cli_format_rate(mid);
  g_autofree char *shi = cli_format_rate(hi);
  g_autofree char *rates = r->len > 0
                               ? g_strdup_printf("1-s rates min %s, median %s, max %s (%u samples)",
                                                 slo, smid, shi, r->len)
                               : g_strdup("1-s rates: none (the transfer took less than a second)");
  /* explicitly asked for: printed even with --quiet */
  clear_live(out);
  fprintf(stderr,
          "%sbenchmark: %s; connected in %" G_GINT64_FORMAT " ms (ICE %" G_GINT64_FORMAT
          " ms), rtt %.1f ms, %s\n",
          pre, rates, path->connect_ms, path->ice_ms, (double)path->rtt_us / 1000,
          path->congestion_control);
}

void
cli_output_finished(CliOutput *out, CliTrack *t, const GError *error)
{
  FerryTransferProgress p;
  FerryConnectionPath path;
  gint64 now = g_get_monotonic_time();

  ferry_transfer_get_progress(t->transfer, &p);
  sample(t, &p, now);
  ferry_connection_get_path(ferry_transfer_get_connection(t->transfer), &path);
  if (path.congestion_control[0] == '\0')
    path = t->path;
  g_ptr_array_remove(out->tracks, t);
  if (out->tracks->len == 0 && out->timer != 0) {
    g_source_remove(out->timer);
    out->timer = 0;
  }
  clear_live(out);

  if (error == NULL) {
    gint64 end = p.finished_us != 0 ? p.finished_us : now;
    double secs = p.started_us != 0 ? (double)(end - p.started_us) / G_USEC_PER_SEC : 0;
    double rate = secs > 0 ? (double)moved(&p) / secs : 0;
    const char *kind = path.relayed ? "relay" : "direct";
    JsonBuilder *b = cli_output_event(out, "done");
    if (b != NULL) {
      add_uint(b, "peer", t->number);
      add_uint(b, "files", p.files_done);
      add_uint(b, "skipped", p.files_failed);
      add_uint(b, "bytes", p.bytes_done);
      add_uint(b, "bytes_resumed", p.bytes_resumed);
      add_double(b, "seconds", secs);
      add_rate(b, "rate", rate);
      cli_json_add_string(b, "path", kind);
      json_builder_set_member_name(b, "verified");
      json_builder_add_boolean_value(b, TRUE);
      if (out->o.benchmark)
        print_benchmark(out, t, &path, b);
      cli_output_emit(out, b);
    } else {
      g_autofree char *pre = prefix(out, t->number);
      g_autofree char *bytes = cli_format_bytes(p.bytes_done);
      g_autofree char *srate = cli_format_rate(rate);
      g_autofree char *stime = format_seconds(secs);
      g_autofree char *resumed = cli_format_bytes(p.bytes_resumed);
      g_autoptr(GString) extra = g_string_new(NULL);
      if (p.files_failed > 0)
        g_string_append_printf(extra, ", %" G_GUINT64_FORMAT " skipped", p.files_failed);
      if (p.bytes_resumed > 0)
        g_string_append_printf(extra, ", %s were already there", resumed);
      cli_output_say(out, "%s%s %" G_GUINT64_FORMAT " %s, %s in %s (%s)%s, %s, verified", pre,
                     out->o.sending ? "sent" : "received", p.files_done,
                     p.files_done == 1 ? "file" : "files", bytes, stime, srate, extra->str, kind);
      if (out->o.benchmark)
        print_benchmark(out, t, &path, NULL);
    }
  }
  track_free(t);
}
