/* The settings of `ferry send` and `ferry receive`: command-line flags,
 * the environment and the config file, merged into one struct.
 *
 * Every setting has one long option name, and that name is also its key
 * in the config file ($XDG_CONFIG_HOME/ferry/config, group [ferry]). A
 * flag beats the environment (FERRY_SERVER, FERRY_STUN_SERVER,
 * FERRY_TURN_SERVER: comma-separated lists), which beats the file, which
 * beats the built-in default. Values are checked wherever they come from,
 * and a bad one is reported with its source: "--parallel", "FERRY_SERVER"
 * or "FILE:LINE: parallel".
 *
 * This file also keeps the sender's resume records
 * ($XDG_STATE_HOME/ferry/sends/ID): what `ferry send --resume ID` sends
 * again. */
#ifndef FERRY_CLI_SETTINGS_H
#define FERRY_CLI_SETTINGS_H

#include <ferry/ferry.h>

/* Which command a setting belongs to. */
typedef enum {
  CLI_SCOPE_SEND = 1 << 0,
  CLI_SCOPE_RECEIVE = 1 << 1,
  CLI_SCOPE_BOTH = CLI_SCOPE_SEND | CLI_SCOPE_RECEIVE,
} CliScope;

/* The index of each setting in the table of settings.c. */
typedef enum {
  CLI_SET_SERVER,
  CLI_SET_STUN_SERVER,
  CLI_SET_TURN_SERVER,
  CLI_SET_FORCE_RELAY,
  CLI_SET_NO_RELAY,
  CLI_SET_NO_LAN,
  CLI_SET_CONNECT_TIMEOUT,
  CLI_SET_QUIC_CC,
  CLI_SET_QUIC_CONN_WINDOW,
  CLI_SET_QUIC_STREAM_WINDOW,
  CLI_SET_QUIC_MAX_STREAMS,
  CLI_SET_QUIC_IDLE_TIMEOUT,
  CLI_SET_QUIC_HANDSHAKE_TIMEOUT,
  CLI_SET_CODE_WORDS,
  CLI_SET_MAX_RECEIVERS,
  CLI_SET_CHUNK_SIZE,
  CLI_SET_PARALLEL,
  CLI_SET_LIMIT_RATE,
  CLI_SET_TTL,
  CLI_SET_KEEP,
  CLI_SET_RESUME,
  CLI_SET_OUT,
  CLI_SET_OVERWRITE,
  CLI_SET_YES,
  CLI_SET_SKIP_ERRORS,
  CLI_SET_QUIET,
  CLI_SET_JSON,
  CLI_SET_BENCHMARK,
  CLI_SET_MAX_RETRIES,
  CLI_SET_RETRY_BACKOFF,
  CLI_SET_LINK,
  CLI_SET_ENCRYPT,
  CLI_SET_DOWNLOADS,
  CLI_SET_RELAY_TOKEN,
  CLI_N_SETTINGS,
} CliSettingId;

/* Where a setting's value came from. */
typedef enum {
  CLI_FROM_DEFAULT,
  CLI_FROM_FILE,
  CLI_FROM_ENV,
  CLI_FROM_FLAG,
} CliSource;

typedef struct {
  /* connection */
  char *server;       /* NULL: none given anywhere */
  char **ice_servers; /* "stun:…" and "turn:…" URLs, NULL-terminated (may be empty) */
  gboolean force_relay;
  gboolean no_relay;
  gboolean no_lan; /* never the local network: the server only */
  /* ferry send --link: through the server's HTTP relay */
  gboolean link;
  gboolean encrypt;
  guint downloads;          /* 0: the server's default (1) */
  char *relay_token;        /* the relay secret or a token minted with it */
  guint connect_timeout_ms; /* 0: the library's default */
  char *quic_cc;            /* NULL: the library's default */
  guint64 quic_conn_window;
  guint64 quic_stream_window;
  guint64 quic_max_streams;
  guint quic_idle_timeout_ms;
  guint quic_handshake_timeout_ms;
  /* transfer */
  guint code_words;    /* 0: the library's default */
  guint max_receivers; /* at least 1 */
  guint32 chunk_size;  /* 0: the library's default */
  guint parallel;      /* 0: the library's default */
  guint64 limit_rate;  /* bytes/s per receiver; 0: no limit */
  gint64 ttl_seconds;  /* 0: no limit */
  gboolean keep;
  char *resume; /* an id or a prefix of one, NULL when not given */
  char *out_dir;
  gboolean overwrite;
  gboolean yes;
  gboolean skip_errors;
  guint max_retries;      /* receiver: reconnects after a lost connection (default 5) */
  guint retry_backoff_ms; /* receiver: first wait before one, doubling (default 1000) */
  /* output */
  gboolean quiet;
  gboolean json;
  gboolean benchmark;

  CliSource source[CLI_N_SETTINGS];
  char *config_path; /* the config file that was read, NULL when there was none */

  /* private: what the option parser wrote */
  char *raw[CLI_N_SETTINGS];
  char **raw_list[CLI_N_SETTINGS];
  gboolean raw_bool[CLI_N_SETTINGS];
  GOptionEntry *entries;
} CliSettings;

/* Sets every field to its default. Clear with cli_settings_clear(). */
void cli_settings_init(CliSettings *settings);
void cli_settings_clear(CliSettings *settings);

/* The option entries (NULL-terminated, owned by settings) of every
 * setting in scope, writing into settings; hand them to cli_parse(). */
const GOptionEntry *cli_settings_entries(CliSettings *settings, CliScope scope);

/* After cli_parse(): reads the config file and the environment for what
 * the flags left unset and checks every value. Returns FALSE (after
 * printing why with cli_error()) on a bad value or a bad config file. */
gboolean cli_settings_resolve(CliSettings *settings, CliScope scope);

/* Fills options from settings (strings borrowed from settings). */
void cli_settings_connect_options(const CliSettings *settings, FerryConnectOptions *options);

/* Whether argv (before cli_parse(), which takes it out) asks for
 * --verbose: "-v", "--verbose", or -v among other short flags ("-yv").
 * Stops at "--". */
gboolean cli_settings_verbose(int argc, char **argv);

/* Parses a duration as users write it: seconds, or a number followed by
 * s, m, h or d ("90", "30m", "2h", "7d"); "0" is allowed. Returns FALSE
 * on anything else. */
gboolean cli_parse_duration(const char *text, gint64 *seconds);

/* ---- the sender's resume records ------------------------------------------ */

/* What one send was made of. */
typedef struct {
  char id[FERRY_TRANSFER_ID_HEX_LEN + 1];
  char **paths; /* absolute, NULL-terminated */
  guint32 chunk_size;
  gint64 saved; /* seconds since the epoch */
} CliSendRecord;

void cli_send_record_clear(CliSendRecord *record);

/* The directory of the records: $XDG_STATE_HOME/ferry/sends. g_free() it. */
char *cli_send_records_dir(void);

/* Saves (replacing) the record of transfer id. Returns FALSE with error
 * set when it cannot be written. */
gboolean cli_send_record_save(const char *id, const char *const *paths, guint32 chunk_size,
                              GError **error);

/* Loads the record whose id is id or starts with it. Returns FALSE with
 * FERRY_ERROR_NOT_FOUND, _AMBIGUOUS (two ids share the prefix) or
 * _INVALID (a damaged record), each message naming the way out. */
gboolean cli_send_record_load(const char *id, CliSendRecord *record, GError **error);

/* Deletes the records saved more than ttl_seconds ago (0: all). Returns
 * how many were deleted. */
guint cli_send_records_clean(gint64 ttl_seconds);

#endif
