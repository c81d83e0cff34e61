/* What ferry send and ferry receive print while they work.
 *
 * One CliOutput per command renders every transfer it tracks: on a
 * terminal (standard error) one live line per transfer, redrawn at most
 * ten times a second, with a bar, percent, bytes, rate, ETA, the path kind
 * (direct/relay) and the file moving now; elsewhere a plain line every two
 * seconds at most. Then a summary per transfer ("received 3 files, 1.00
 * GiB in 2.1 s (487 MB/s), direct, verified") and, with --benchmark, the
 * 1-s rates and the connection set-up time.
 *
 * With --json nothing but events goes to standard output, one JSON object
 * per line ({"event":"progress",…}, at most two a second per transfer);
 * human text and the live lines are left out, errors still go to standard
 * error. With --quiet only errors (and what the caller prints itself). */
#ifndef FERRY_CLI_PROGRESS_H
#define FERRY_CLI_PROGRESS_H

#include <json-glib/json-glib.h>

#include <ferry/ferry.h>

typedef struct _CliOutput CliOutput;
typedef struct _CliTrack CliTrack;

typedef struct {
  gboolean sending; /* words: "sent" or "received" */
  gboolean quiet;
  gboolean json;
  gboolean verbose;
  gboolean benchmark;
  gboolean numbered; /* prefix each transfer's lines with "[N] " */
} CliOutputOptions;

/* Where an error happened, for its exit status. */
typedef enum {
  CLI_STAGE_CONNECT,  /* reaching the server, the PAKE, ICE, QUIC */
  CLI_STAGE_TRANSFER, /* ferry_transfer_*: files, the peer, verification */
} CliStage;

/* The exit status (commands.h) for error at stage. */
int cli_exit_for_error(const GError *error, CliStage stage);

CliOutput *cli_output_new(const CliOutputOptions *options);
/* Frees out and the tracks still in it. */
void cli_output_free(CliOutput *out);

/* A line of human text on standard error, after the live lines are
 * cleared; nothing with --quiet or --json. */
void cli_output_say(CliOutput *out, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* "ferry: warning: …" on standard error unless --quiet. */
void cli_output_warn(CliOutput *out, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* "ferry: error: …" on standard error, and with --json an "error" event
 * carrying exit_status. */
void cli_output_fail(CliOutput *out, int exit_status, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* With --json: a builder with an object begun and its "event" member set;
 * add members, then cli_output_emit(). NULL without --json. */
JsonBuilder *cli_output_event(CliOutput *out, const char *event);
/* Ends the object, prints it as one line on standard output and frees
 * builder. */
void cli_output_emit(CliOutput *out, JsonBuilder *builder);
/* Adds a string member, made valid UTF-8 (file names need not be). */
void cli_json_add_string(JsonBuilder *builder, const char *name, const char *value);

/* A peer's connection is up: the path line (the whole path with -v, its
 * kind without) or a "connected" event. number names the peer. */
void cli_output_connected(CliOutput *out, guint number, FerryConnection *conn);

/* "3 files, 2 folders, 1.20 GiB: photos, notes.txt [+3 more]", names
 * made safe for a terminal. g_free() it. */
char *cli_summary_text(const FerryTransferSummary *summary);
/* With --json, an "offer" event for summary. */
void cli_output_offer(CliOutput *out, const FerryTransferSummary *summary);

/* Starts showing transfer's progress (transfer must outlive the track;
 * see cli_output_finished()). number names the peer. */
CliTrack *cli_output_track(CliOutput *out, FerryTransfer *transfer, guint number);
/* A file event of the tracked transfer: a line with -v (renamed and
 * skipped files always), a "file" event with --json. */
void cli_output_file(CliOutput *out, CliTrack *track, const FerryFileEvent *event);
/* The tracked transfer is over: with error NULL prints its summary (and
 * the benchmark figures) or a "done" event. Frees track; call it before
 * the transfer is freed. */
void cli_output_finished(CliOutput *out, CliTrack *track, const GError *error);

/* Sizes for people: "1.00 GiB", "487 MB/s". g_free() them. */
char *cli_format_bytes(guint64 bytes);
char *cli_format_rate(double bytes_per_second);
/* s made safe for a terminal: control characters, backslashes and bytes
 * that are not UTF-8 escaped. g_free() it. */
char *cli_display(const char *s);

#endif
