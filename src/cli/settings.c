/* Settings of ferry send / ferry receive: flags, environment, config
 * file; and the sender's resume records. See settings.h. */
#include "settings.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <glib/gstdio.h>

#include "commands.h"

typedef enum {
  KIND_STRING,   /* any non-empty text */
  KIND_PATH,     /* a file name */
  KIND_LIST,     /* repeatable; a ';' list in the file, ',' in the environment */
  KIND_BOOL,     /* a flag; true/false in the file */
  KIND_COUNT,    /* a whole number in [min, max] */
  KIND_SIZE,     /* bytes with an optional K, M, G unit, in [min, max] */
  KIND_MS,       /* milliseconds, or a number with ms, s or m, in [min, max] */
  KIND_DURATION, /* seconds, or a number with s, m, h or d; 0 allowed */
  KIND_CHUNK,    /* a chunk size: ferry_chunk_size_parse() */
  KIND_CC,       /* a congestion controller's name */
} Kind;

typedef struct {
  const char *name;
  char short_name;
  Kind kind;
  CliScope scope;
  gboolean in_file; /* may be set in the config file */
  const char *env;  /* environment variable, or NULL */
  guint64 min, max;
  const char *arg;
  const char *help;
} Setting;

/* One row per CliSettingId, in that order. */
static const Setting table[CLI_N_SETTINGS] = {
    [CLI_SET_SERVER] = {"server", 0, KIND_STRING, CLI_SCOPE_BOTH, TRUE, "FERRY_SERVER", 0, 0, "URL",
                        "The ferry serve to meet at: https://HOST or ws://HOST:PORT"},
    [CLI_SET_STUN_SERVER] = {"stun-server", 0, KIND_LIST, CLI_SCOPE_BOTH, TRUE, "FERRY_STUN_SERVER",
                             0, 0, "URL", "Another STUN server, repeatable: [stun:]HOST[:PORT]"},
    [CLI_SET_TURN_SERVER] = {"turn-server", 0, KIND_LIST, CLI_SCOPE_BOTH, TRUE, "FERRY_TURN_SERVER",
                             0, 0, "URL",
                             "Another TURN server, repeatable: "
                             "turn:USER:PASS@HOST[:PORT][?transport=tcp] or turns:…"},
    [CLI_SET_FORCE_RELAY] = {"force-relay", 0, KIND_BOOL, CLI_SCOPE_BOTH, TRUE, NULL, 0, 0, NULL,
                             "Use only relayed paths (through a TURN server)"},
    [CLI_SET_NO_RELAY] = {"no-relay", 0, KIND_BOOL, CLI_SCOPE_BOTH, TRUE, NULL, 0, 0, NULL,
                          "Never go through a TURN server"},
    [CLI_SET_NO_LAN] = {"no-lan", 0, KIND_BOOL, CLI_SCOPE_BOTH, TRUE, NULL, 0, 0, NULL,
                        "With a server: do not also use the local network (no announcement, "
                        "no lookup)"},
    [CLI_SET_CONNECT_TIMEOUT] = {"connect-timeout", 0, KIND_MS, CLI_SCOPE_BOTH, TRUE, NULL, 100,
                                 3600000, "MS",
                                 "Longest a connection may take to set up (default 60000)"},
    [CLI_SET_QUIC_CC] = {"quic-cc", 0, KIND_CC, CLI_SCOPE_BOTH, TRUE, NULL, 0, 0, "NAME",
                         "QUIC congestion controller: bbr, bbr-plain, bbr2, cubic or reno (default "
                         "bbr, through a relay bbr2)"},
    [CLI_SET_QUIC_CONN_WINDOW] = {"quic-conn-window", 0, KIND_SIZE, CLI_SCOPE_BOTH, TRUE, NULL,
                                  64 * 1024, G_GUINT64_CONSTANT(1) << 32, "SIZE",
                                  "QUIC connection flow-control window (default 64M)"},
    [CLI_SET_QUIC_STREAM_WINDOW] = {"quic-stream-window", 0, KIND_SIZE, CLI_SCOPE_BOTH, TRUE, NULL,
                                    64 * 1024, G_GUINT64_CONSTANT(1) << 32, "SIZE",
                                    "QUIC per-stream flow-control window (default 16M)"},
    [CLI_SET_QUIC_MAX_STREAMS] = {"quic-max-streams", 0, KIND_COUNT, CLI_SCOPE_BOTH, TRUE, NULL, 8,
                                  100000, "N", "Streams the peer may open (default 100)"},
    [CLI_SET_QUIC_IDLE_TIMEOUT] = {"quic-idle-timeout", 0, KIND_MS, CLI_SCOPE_BOTH, TRUE, NULL,
                                   1000, 3600000, "MS",
                                   "Close a silent connection after this long (default 5000; "
                                   "keep-alives go every quarter of it)"},
    [CLI_SET_QUIC_HANDSHAKE_TIMEOUT] = {"quic-handshake-timeout", 0, KIND_MS, CLI_SCOPE_BOTH, TRUE,
                                        NULL, 100, 600000, "MS",
                                        "Longest the QUIC handshake may take (default 10000)"},
    [CLI_SET_CODE_WORDS] = {"code-words", 0, KIND_COUNT, CLI_SCOPE_SEND, TRUE, NULL,
                            FERRY_CODE_MIN_WORDS, FERRY_CODE_MAX_WORDS, "N",
                            "Words in the code, 2 to 8 (default 3)"},
    [CLI_SET_MAX_RECEIVERS] = {"max-receivers", 0, KIND_COUNT, CLI_SCOPE_SEND, TRUE, NULL, 1, 1000,
                               "N", "Receivers to serve, also at once, before exiting (default 1)"},
    [CLI_SET_CHUNK_SIZE] = {"chunk-size", 0, KIND_CHUNK, CLI_SCOPE_SEND, TRUE, NULL, 0, 0, "SIZE",
                            "Chunk size: a power of two from 64K to 64M (default 1M)"},
    [CLI_SET_PARALLEL] = {"parallel", 0, KIND_COUNT, CLI_SCOPE_SEND, TRUE, NULL, 1,
                          FERRY_TRANSFER_MAX_STREAMS, "N",
                          "Data streams per receiver, 1 to 64 (default 4)"},
    [CLI_SET_LIMIT_RATE] = {"limit-rate", 0, KIND_SIZE, CLI_SCOPE_SEND, TRUE, NULL, 1024,
                            G_GUINT64_CONSTANT(1) << 40, "SIZE",
                            "Send at most SIZE bytes per second to each receiver, e.g. 10M "
                            "(default: no limit)"},
    [CLI_SET_TTL] = {"ttl", 0, KIND_DURATION, CLI_SCOPE_SEND, TRUE, NULL, 0, 0, "DURATION",
                     "How long the code waits for receivers: 30m, 2h… (default 1h; 0: no limit)"},
    [CLI_SET_KEEP] = {"keep", 0, KIND_BOOL, CLI_SCOPE_SEND, TRUE, NULL, 0, 0, NULL,
                      "Serve receivers until stopped (Ctrl-C), not just --max-receivers"},
    [CLI_SET_RESUME] = {"resume", 0, KIND_STRING, CLI_SCOPE_BOTH, FALSE, NULL, 0, 0, "ID",
                        "Resume transfer ID: send its paths again / receive into its checkpoint's "
                        "directory"},
    [CLI_SET_OUT] = {"out", 'o', KIND_PATH, CLI_SCOPE_RECEIVE, TRUE, NULL, 0, 0, "DIR",
                     "Where the files go (default: the current directory)"},
    [CLI_SET_OVERWRITE] = {"overwrite", 0, KIND_BOOL, CLI_SCOPE_RECEIVE, TRUE, NULL, 0, 0, NULL,
                           "Replace existing different files (else: save under a new name)"},
    [CLI_SET_YES] = {"yes", 'y', KIND_BOOL, CLI_SCOPE_RECEIVE, TRUE, NULL, 0, 0, NULL,
                     "Accept the offer without asking"},
    [CLI_SET_SKIP_ERRORS] = {"skip-errors", 0, KIND_BOOL, CLI_SCOPE_BOTH, TRUE, NULL, 0, 0, NULL,
                             "Skip a file that cannot be read or written, instead of stopping"},
    [CLI_SET_QUIET] = {"quiet", 'q', KIND_BOOL, CLI_SCOPE_BOTH, TRUE, NULL, 0, 0, NULL,
                       "Print only errors (and, when sending, the code)"},
    [CLI_SET_JSON] = {"json", 0, KIND_BOOL, CLI_SCOPE_BOTH, TRUE, NULL, 0, 0, NULL,
                      "Print events as JSON, one object per line, on standard output"},
    [CLI_SET_BENCHMARK] = {"benchmark", 0, KIND_BOOL, CLI_SCOPE_BOTH, TRUE, NULL, 0, 0, NULL,
                           "Also print throughput statistics and the connection set-up time"},
    [CLI_SET_MAX_RETRIES] = {"max-retries", 0, KIND_COUNT, CLI_SCOPE_RECEIVE, TRUE, NULL, 0, 1000,
                             "N",
                             "Reconnect this many times after the connection is lost mid-transfer, "
                             "continuing from the checkpoint (default 5; 0: never)"},
    [CLI_SET_RETRY_BACKOFF] = {"retry-backoff", 0, KIND_MS, CLI_SCOPE_RECEIVE, TRUE, NULL, 100,
                               600000, "MS",
                               "Wait before the first reconnect, doubling each time up to 30 s "
                               "(default 1000)"},
    [CLI_SET_LINK] = {"link", 0, KIND_BOOL, CLI_SCOPE_SEND, FALSE, NULL, 0, 0, NULL,
                      "Upload to the server's HTTP relay and print a download link (and a QR "
                      "code) for a browser or curl, instead of a code"},
    [CLI_SET_ENCRYPT] = {"encrypt", 0, KIND_BOOL, CLI_SCOPE_SEND, TRUE, NULL, 0, 0, NULL,
                         "With --link: encrypt before uploading; the key is only in the link's "
                         "#fragment, never sent to the server"},
    [CLI_SET_DOWNLOADS] = {"downloads", 0, KIND_COUNT, CLI_SCOPE_SEND, TRUE, NULL, 1, 1000, "N",
                           "With --link: how many downloads the link serves (default 1)"},
    [CLI_SET_RELAY_TOKEN] = {"relay-token", 0, KIND_STRING, CLI_SCOPE_SEND, TRUE,
                             "FERRY_RELAY_TOKEN", 0, 0, "TOKEN",
                             "With --link: the server's --relay-secret (or a token made with it)"},
};

void
cli_settings_init(CliSettings *s)
{
  memset(s, 0, sizeof *s);
  s->max_receivers = 1;
  s->ttl_seconds = 3600;
  s->max_retries = 5;
  s->retry_backoff_ms = 1000;
}

void
cli_settings_clear(CliSettings *s)
{
  g_free(s->server);
  g_strfreev(s->ice_servers);
  g_free(s->quic_cc);
  g_free(s->resume);
  g_free(s->out_dir);
  g_free(s->relay_token);
  g_free(s->config_path);
  for (int i = 0; i < CLI_N_SETTINGS; i++) {
    g_free(s->raw[i]);
    g_strfreev(s->raw_list[i]);
  }
  g_free(s->entries);
  memset(s, 0, sizeof *s);
}

const GOptionEntry *
cli_settings_entries(CliSettings *s, CliScope scope)
{
  guint n = 0;

  g_free(s->entries);
  s->entries = g_new0(GOptionEntry, CLI_N_SETTINGS + 1);
  for (int i = 0; i < CLI_N_SETTINGS; i++) {
    const Setting *t = &table[i];
    GOptionEntry *e = &s->entries[n];
    if ((t->scope & scope) == 0)
      continue;
    e->long_name = t->name;
    e->short_name = t->short_name;
    e->description = t->help;
    e->arg_description = t->arg;
    if (t->kind == KIND_BOOL) {
      e->arg = G_OPTION_ARG_NONE;
      e->arg_data = &s->raw_bool[i];
    } else if (t->kind == KIND_LIST) {
      e->arg = G_OPTION_ARG_STRING_ARRAY;
      e->arg_data = &s->raw_list[i];
    } else {
      e->arg = t->kind == KIND_PATH ? G_OPTION_ARG_FILENAME : G_OPTION_ARG_STRING;
      e->arg_data = &s->raw[i];
    }
    n++;
  }
  return s->entries;
}

/* ---- parsing values ------------------------------------------------------- */

/* Splits "12.5K" style text into a whole number and a unit suffix. */
static gboolean
split_number(const char *text, guint64 *n, const char **unit)
{
  char *end;
  if (!g_ascii_isdigit(*text))
    return FALSE;
  errno = 0;
  *n = g_ascii_strtoull(text, &end, 10);
  if (errno != 0)
    return FALSE;
  *unit = end;
  return TRUE;
}

static gboolean
parse_count(const char *text, guint64 *out)
{
  const char *unit;
  return split_number(text, out, &unit) && *unit == '\0';
}

/* Bytes: a whole number with an optional binary unit K, M, G or T (also
 * KiB, KB…; any case). */
static gboolean
parse_size(const char *text, guint64 *out)
{
  const char *unit;
  guint64 n, mult = 1;
  if (!split_number(text, &n, &unit))
    return FALSE;
  switch (g_ascii_tolower(*unit)) {
  case '\0':
    break;
  case 'k':
    mult = G_GUINT64_CONSTANT(1) << 10;
    break;
  case 'm':
    mult = G_GUINT64_CONSTANT(1) << 20;
    break;
  case 'g':
    mult = G_GUINT64_CONSTANT(1) << 30;
    break;
  case 't':
    mult = G_GUINT64_CONSTANT(1) << 40;
    break;
  default:
    return FALSE;
  }
  if (*unit != '\0') {
    unit++;
    if (g_ascii_strcasecmp(unit, "ib") != 0 && g_ascii_strcasecmp(unit, "b") != 0 && *unit != '\0')
      return FALSE;
  }
  if (n > G_MAXUINT64 / mult)
    return FALSE;
  *out = n * mult;
  return TRUE;
}

/* Milliseconds, or a number with ms, s or m. */
static gboolean
parse_ms(const char *text, guint64 *out)
{
  const char *unit;
  guint64 n, mult;
  if (!split_number(text, &n, &unit))
    return FALSE;
  if (*unit == '\0' || strcmp(unit, "ms") == 0)
    mult = 1;
  else if (strcmp(unit, "s") == 0)
    mult = 1000;
  else if (strcmp(unit, "m") == 0)
    mult = 60000;
  else
    return FALSE;
  if (n > G_MAXUINT32 / mult)
    return FALSE;
  *out = n * mult;
  return TRUE;
}

gboolean
cli_parse_duration(const char *text, gint64 *seconds)
{
  const char *unit;
  guint64 n, mult;
  if (!split_number(text, &n, &unit))
    return FALSE;
  if (*unit == '\0' || strcmp(unit, "s") == 0)
    mult = 1;
  else if (strcmp(unit, "m") == 0)
    mult = 60;
  else if (strcmp(unit, "h") == 0)
    mult = 3600;
  else if (strcmp(unit, "d") == 0)
    mult = 86400;
  else
    return FALSE;
  if (n > (guint64)G_MAXINT32 / mult)
    return FALSE;
  *seconds = (gint64)(n * mult);
  return TRUE;
}

static gboolean
parse_bool(const char *text, gboolean *out)
{
  static const char *const yes[] = {"true", "yes", "on", "1", NULL};
  static const char *const no[] = {"false", "no", "off", "0", NULL};
  g_autofree char *lower = g_ascii_strdown(text, -1);
  *out = g_strv_contains(yes, lower);
  return *out || g_strv_contains(no, lower);
}

/* ---- the config file ------------------------------------------------------ */

typedef struct {
  char *path;
  GKeyFile *kf;
  GHashTable *lines; /* key in [ferry] → line number (GUINT_TO_POINTER) */
} ConfigFile;

static void
config_clear(ConfigFile *c)
{
  g_free(c->path);
  if (c->kf != NULL)
    g_key_file_unref(c->kf);
  if (c->lines != NULL)
    g_hash_table_unref(c->lines);
}

static int
find_setting(const char *name)
{
  for (int i = 0; i < CLI_N_SETTINGS; i++)
    if (strcmp(table[i].name, name) == 0)
      return i;
  return -1;
}

/* GKeyFile names no line when it refuses a file, so the lines are checked
 * here first, the same way it reads them, to point at the one that is
 * wrong. Also refuses what GKeyFile would accept but ferry would ignore:
 * other groups, unknown keys. */
static gboolean
config_check_lines(ConfigFile *c, const char *text)
{
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  gboolean in_ferry = FALSE, in_group = FALSE;

  for (guint i = 0; lines[i] != NULL; i++) {
    guint lineno = i + 1;
    char *line = g_strstrip(lines[i]);
    if (*line == '\0' || *line == '#')
      continue;
    if (*line == '[') {
      if (strcmp(line, "[ferry]") != 0) {
        cli_error("%s:%u: unknown group %s: ferry reads only [ferry] (the settings of send and "
                  "receive); rename or remove it",
                  c->path, lineno, line);
        return FALSE;
      }
      in_ferry = in_group = TRUE;
      continue;
    }
    char *eq = strchr(line, '=');
    if (eq == NULL) {
      cli_error("%s:%u: '%s' is neither [group], key=value nor a # comment; fix or remove the line",
                c->path, lineno, line);
      return FALSE;
    }
    if (!in_group) {
      cli_error("%s:%u: '%s' comes before any group: put a line [ferry] above it", c->path, lineno,
                line);
      return FALSE;
    }
    *eq = '\0';
    char *key = g_strstrip(line);
    if (in_ferry) {
      int id = find_setting(key);
      if (id < 0) {
        cli_error("%s:%u: unknown key '%s': keys are the long options of ferry send and ferry "
                  "receive without the dashes (server, turn-server, parallel, out…; see 'ferry "
                  "send --help')",
                  c->path, lineno, key);
        return FALSE;
      }
      if (!table[id].in_file) {
        cli_error("%s:%u: '%s' cannot be set in the config file: pass --%s on the command line",
                  c->path, lineno, key, key);
        return FALSE;
      }
      g_hash_table_insert(c->lines, g_strdup(key), GUINT_TO_POINTER(lineno));
    }
  }
  return TRUE;
}

/* Reads the config file if there is one. Returns FALSE after printing why
 * when it exists and is bad. */
static gboolean
config_load(ConfigFile *c)
{
  g_autofree char *text = NULL;
  GError *error = NULL;
  gsize len;

  c->path = g_build_filename(g_get_user_config_dir(), "ferry", "config", NULL);
  c->lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  if (!g_file_get_contents(c->path, &text, &len, &error)) {
    gboolean missing = g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
    if (!missing)
      cli_error("cannot read the config file %s: %s; fix its permissions or remove it", c->path,
                error->message);
    g_error_free(error);
    g_clear_pointer(&c->path, g_free);
    return missing;
  }
  if (!config_check_lines(c, text))
    return FALSE;
  c->kf = g_key_file_new();
  if (!g_key_file_load_from_data(c->kf, text, len, G_KEY_FILE_NONE, &error)) {
    cli_error("the config file %s cannot be read: %s; fix it (see ferry(1), FILES)", c->path,
              error->message);
    g_error_free(error);
    return FALSE;
  }
  return TRUE;
}

static guint
config_line(const ConfigFile *c, const char *key)
{
  return GPOINTER_TO_UINT(g_hash_table_lookup(c->lines, key));
}

/* ---- resolving ------------------------------------------------------------ */

/* Where a setting's value came from, for messages: "--parallel",
 * "FERRY_SERVER", "/home/u/.config/ferry/config:3: parallel". */
static char *
source_label(const CliSettings *s, const ConfigFile *c, int id)
{
  switch (s->source[id]) {
  case CLI_FROM_ENV:
    return g_strdup(table[id].env);
  case CLI_FROM_FILE:
    return g_strdup_printf("%s:%u: %s", c->path, config_line(c, table[id].name), table[id].name);
  case CLI_FROM_DEFAULT:
  case CLI_FROM_FLAG:
    break;
  }
  return g_strdup_printf("--%s", table[id].name);
}

/* Takes each setting's text from the first source that has it: flag,
 * environment, file. Sets raw/raw_list/raw_bool and source. */
static gboolean
gather(CliSettings *s, const ConfigFile *c, CliScope scope)
{
  for (int i = 0; i < CLI_N_SETTINGS; i++) {
    const Setting *t = &table[i];
    const char *env = t->env != NULL ? g_getenv(t->env) : NULL;
    GError *error = NULL;

    if ((t->scope & scope) == 0)
      continue;
    if (s->raw[i] != NULL || s->raw_list[i] != NULL || s->raw_bool[i]) {
      s->source[i] = CLI_FROM_FLAG;
      continue;
    }
    if (env != NULL && *env != '\0') {
      s->source[i] = CLI_FROM_ENV;
      if (t->kind == KIND_LIST)
        s->raw_list[i] = g_strsplit(env, ",", -1);
      else
        s->raw[i] = g_strdup(env);
      continue;
    }
    if (c->kf == NULL || !g_key_file_has_key(c->kf, "ferry", t->name, NULL))
      continue;
    s->source[i] = CLI_FROM_FILE;
    if (t->kind == KIND_LIST)
      s->raw_list[i] = g_key_file_get_string_list(c->kf, "ferry", t->name, NULL, &error);
    else
      s->raw[i] = g_key_file_get_string(c->kf, "ferry", t->name, &error);
    if (error != NULL) {
      g_autofree char *label = source_label(s, c, i);
      cli_error("%s: %s; fix the value", label, error->message);
      g_error_free(error);
      return FALSE;
    }
    if (t->kind == KIND_BOOL && !parse_bool(s->raw[i], &s->raw_bool[i])) {
      g_autofree char *label = source_label(s, c, i);
      cli_error("%s '%s' is neither true nor false: write true or false", label, s->raw[i]);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean bad_value(const CliSettings *s, const ConfigFile *c, int id, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);

/* A size limit as the user writes it: 64K, 4G, 1024G. */
static void
size_label(guint64 n, char *buf, gsize size)
{
  if (n > 0 && n % (G_GUINT64_CONSTANT(1) << 30) == 0)
    g_snprintf(buf, size, "%" G_GUINT64_FORMAT "G", n >> 30);
  else if (n > 0 && n % (1 << 20) == 0)
    g_snprintf(buf, size, "%" G_GUINT64_FORMAT "M", n >> 20);
  else if (n > 0 && n % 1024 == 0)
    g_snprintf(buf, size, "%" G_GUINT64_FORMAT "K", n >> 10);
  else
    g_snprintf(buf, size, "%" G_GUINT64_FORMAT, n);
}

static gboolean
bad_value(const CliSettings *s, const ConfigFile *c, int id, const char *fmt, ...)
{
  g_autofree char *label = source_label(s, c, id);
  g_autofree char *what = NULL;
  va_list ap;
  va_start(ap, fmt);
  what = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  cli_error("%s '%s' %s", label, s->raw[id], what);
  return FALSE;
}

/* Adds the list items of setting id to urls, putting scheme in front of
 * an item that has none. */
static gboolean
add_servers(const CliSettings *s, const ConfigFile *c, int id, const char *const *schemes,
            GPtrArray *urls)
{
  char **items = s->raw_list[id];
  for (guint i = 0; items != NULL && items[i] != NULL; i++) {
    g_autofree char *item = g_strstrip(g_strdup(items[i]));
    gboolean has_scheme = FALSE;
    if (*item == '\0') {
      g_autofree char *label = source_label(s, c, id);
      cli_error("%s: an empty server URL; write %s:HOST[:PORT]", label, schemes[0]);
      return FALSE;
    }
    for (guint k = 0; schemes[k] != NULL; k++)
      if (g_str_has_prefix(item, schemes[k]) && item[strlen(schemes[k])] == ':')
        has_scheme = TRUE;
    g_ptr_array_add(urls, has_scheme ? g_strdup(item) : g_strconcat(schemes[0], ":", item, NULL));
  }
  return TRUE;
}

/* Converts the text of every setting in scope into its field. */
static gboolean
convert(CliSettings *s, const ConfigFile *c, CliScope scope)
{
  guint64 n = 0;

  for (int i = 0; i < CLI_N_SETTINGS; i++) {
    const Setting *t = &table[i];
    const char *text = s->raw[i];
    if ((t->scope & scope) == 0 || text == NULL)
      continue;
    switch (t->kind) {
    case KIND_STRING:
    case KIND_PATH:
    case KIND_CC:
      if (*text == '\0')
        return bad_value(s, c, i, "is empty: give a value or leave the option out");
      break;
    case KIND_COUNT:
      if (!parse_count(text, &n) || n < t->min || n > t->max)
        return bad_value(s, c, i,
                         "is not a whole number from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
                         t->min, t->max);
      break;
    case KIND_SIZE:
      if (!parse_size(text, &n) || n < t->min || n > t->max) {
        char lo[32], hi[32];
        size_label(t->min, lo, sizeof lo);
        size_label(t->max, hi, sizeof hi);
        return bad_value(s, c, i,
                         "is not a size from %s to %s (bytes, or a number with K, M or G, "
                         "e.g. 16M)",
                         lo, hi);
      }
      break;
    case KIND_MS:
      if (!parse_ms(text, &n) || n < t->min || n > t->max)
        return bad_value(s, c, i,
                         "is not a time from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                         " ms (milliseconds, or a number with ms, s or m)",
                         t->min, t->max);
      break;
    case KIND_DURATION: {
      gint64 secs;
      if (!cli_parse_duration(text, &secs))
        return bad_value(s, c, i,
                         "is not a duration: use seconds or a number with s, m, h or d "
                         "(e.g. 30m), or 0 for no limit");
      n = (guint64)secs;
      break;
    }
    case KIND_CHUNK: {
      guint32 size;
      GError *error = NULL;
      if (!ferry_chunk_size_parse(text, &size, &error)) {
        g_autofree char *label = source_label(s, c, i);
        cli_error("%s: %s", label, error->message);
        g_error_free(error);
        return FALSE;
      }
      n = size;
      break;
    }
    case KIND_LIST:
    case KIND_BOOL:
      break;
    }
    switch ((CliSettingId)i) {
    case CLI_SET_SERVER:
      s->server = g_strdup(text);
      break;
    case CLI_SET_CONNECT_TIMEOUT:
      s->connect_timeout_ms = (guint)n;
      break;
    case CLI_SET_QUIC_CC: {
      static const char *const known[] = {"bbr", "bbr-plain", "bbr2", "cubic", "reno", NULL};
      g_autofree char *lower = g_ascii_strdown(text, -1);
      if (!g_strv_contains(known, lower))
        return bad_value(s, c, i,
                         "is no congestion controller: use bbr, bbr-plain, bbr2, cubic or reno");
      s->quic_cc = g_steal_pointer(&lower);
      break;
    }
    case CLI_SET_QUIC_CONN_WINDOW:
      s->quic_conn_window = n;
      break;
    case CLI_SET_QUIC_STREAM_WINDOW:
      s->quic_stream_window = n;
      break;
    case CLI_SET_QUIC_MAX_STREAMS:
      s->quic_max_streams = n;
      break;
    case CLI_SET_QUIC_IDLE_TIMEOUT:
      s->quic_idle_timeout_ms = (guint)n;
      break;
    case CLI_SET_QUIC_HANDSHAKE_TIMEOUT:
      s->quic_handshake_timeout_ms = (guint)n;
      break;
    case CLI_SET_CODE_WORDS:
      s->code_words = (guint)n;
      break;
    case CLI_SET_MAX_RECEIVERS:
      s->max_receivers = (guint)n;
      break;
    case CLI_SET_CHUNK_SIZE:
      s->chunk_size = (guint32)n;
      break;
    case CLI_SET_PARALLEL:
      s->parallel = (guint)n;
      break;
    case CLI_SET_LIMIT_RATE:
      s->limit_rate = n;
      break;
    case CLI_SET_TTL:
      s->ttl_seconds = (gint64)n;
      break;
    case CLI_SET_RESUME:
      s->resume = g_ascii_strdown(text, -1);
      break;
    case CLI_SET_OUT:
      s->out_dir = g_strdup(text);
      break;
    case CLI_SET_MAX_RETRIES:
      s->max_retries = (guint)n;
      break;
    case CLI_SET_RETRY_BACKOFF:
      s->retry_backoff_ms = (guint)n;
      break;
    case CLI_SET_DOWNLOADS:
      s->downloads = (guint)n;
      break;
    case CLI_SET_RELAY_TOKEN:
      s->relay_token = g_strdup(text);
      break;
    default:
      break;
    }
  }

  gboolean *flags[CLI_N_SETTINGS] = {
      [CLI_SET_FORCE_RELAY] = &s->force_relay,
      [CLI_SET_NO_RELAY] = &s->no_relay,
      [CLI_SET_NO_LAN] = &s->no_lan,
      [CLI_SET_KEEP] = &s->keep,
      [CLI_SET_OVERWRITE] = &s->overwrite,
      [CLI_SET_YES] = &s->yes,
      [CLI_SET_SKIP_ERRORS] = &s->skip_errors,
      [CLI_SET_QUIET] = &s->quiet,
      [CLI_SET_JSON] = &s->json,
      [CLI_SET_BENCHMARK] = &s->benchmark,
      [CLI_SET_LINK] = &s->link,
      [CLI_SET_ENCRYPT] = &s->encrypt,
  };
  for (int i = 0; i < CLI_N_SETTINGS; i++)
    if (flags[i] != NULL && (table[i].scope & scope) != 0)
      *flags[i] = s->raw_bool[i];

  static const char *const stun[] = {"stun", NULL};
  static const char *const turn[] = {"turn", "turns", NULL};
  GPtrArray *urls = g_ptr_array_new_with_free_func(g_free);
  if (!add_servers(s, c, CLI_SET_STUN_SERVER, stun, urls) ||
      !add_servers(s, c, CLI_SET_TURN_SERVER, turn, urls)) {
    g_ptr_array_free(urls, TRUE);
    return FALSE;
  }
  g_ptr_array_add(urls, NULL);
  s->ice_servers = (char **)g_ptr_array_free(urls, FALSE);

  if (s->force_relay && s->no_relay) {
    g_autofree char *a = source_label(s, c, CLI_SET_FORCE_RELAY);
    g_autofree char *b = source_label(s, c, CLI_SET_NO_RELAY);
    cli_error("%s and %s contradict each other: give one", a, b);
    return FALSE;
  }
  if (s->quiet && s->json) {
    g_autofree char *a = source_label(s, c, CLI_SET_QUIET);
    cli_error("%s and --json do not go together: --json already prints only events", a);
    return FALSE;
  }
  return TRUE;
}

gboolean
cli_settings_resolve(CliSettings *s, CliScope scope)
{
  ConfigFile c = {0};
  gboolean ok = config_load(&c) && gather(s, &c, scope) && convert(s, &c, scope);
  if (ok && c.kf != NULL)
    s->config_path = g_strdup(c.path);
  config_clear(&c);
  return ok;
}

void
cli_settings_connect_options(const CliSettings *s, FerryConnectOptions *o)
{
  ferry_connect_options_init(o);
  o->server_url = s->server;
  o->ice_servers = (const char *const *)s->ice_servers;
  o->force_relay = s->force_relay;
  o->no_relay = s->no_relay;
  o->max_receivers = s->max_receivers;
  if (s->code_words != 0)
    o->code_words = s->code_words;
  o->congestion_control = s->quic_cc;
  o->conn_window_bytes = s->quic_conn_window;
  o->stream_window_bytes = s->quic_stream_window;
  o->max_incoming_streams = s->quic_max_streams;
  o->quic_idle_timeout_ms = s->quic_idle_timeout_ms;
  o->quic_handshake_timeout_ms = s->quic_handshake_timeout_ms;
  if (s->connect_timeout_ms != 0)
    o->connect_timeout_ms = s->connect_timeout_ms;
}

gboolean
cli_settings_verbose(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0)
      break;
    if (strcmp(a, "--verbose") == 0)
      return TRUE;
    if (a[0] == '-' && a[1] != '-' && a[1] != '\0' && strspn(a + 1, "vqy") == strlen(a + 1) &&
        strchr(a, 'v') != NULL)
      return TRUE;
  }
  return FALSE;
}

/* ---- the sender's resume records ------------------------------------------ */

void
cli_send_record_clear(CliSendRecord *r)
{
  g_strfreev(r->paths);
  memset(r, 0, sizeof *r);
}

char *
cli_send_records_dir(void)
{
  return g_build_filename(g_get_user_state_dir(), "ferry", "sends", NULL);
}

static gboolean
is_hex_id(const char *s, gsize max)
{
  gsize n = strlen(s);
  if (n == 0 || n > max)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isxdigit(s[i]) || g_ascii_isupper(s[i]))
      return FALSE;
  return TRUE;
}

/* A path as a key-file string that survives any bytes: C escapes, but
 * UTF-8 names stay readable. */
static char *
escape_path(const char *path)
{
  char high[129];
  if (!g_utf8_validate(path, -1, NULL))
    return g_strescape(path, NULL);
  for (int i = 0; i < 128; i++)
    high[i] = (char)(0x80 + i);
  high[128] = '\0';
  return g_strescape(path, high);
}

gboolean
cli_send_record_save(const char *id, const char *const *paths, guint32 chunk_size, GError **error)
{
  g_autofree char *dir = cli_send_records_dir();
  g_autofree char *file = NULL;
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GPtrArray) escaped = g_ptr_array_new_with_free_func(g_free);

  if (!is_hex_id(id, FERRY_TRANSFER_ID_HEX_LEN))
    return ferry_set_error(error, FERRY_ERR_INVALID, "'%s' is not a transfer id", id);
  if (g_mkdir_with_parents(dir, 0700) < 0)
    return ferry_set_error(error, FERRY_ERR_IO, "cannot create %s: %s", dir, g_strerror(errno));
  for (guint i = 0; paths[i] != NULL; i++)
    g_ptr_array_add(escaped, escape_path(paths[i]));
  g_key_file_set_string_list(kf, "send", "paths", (const char *const *)escaped->pdata,
                             escaped->len);
  g_key_file_set_uint64(kf, "send", "chunk-size", chunk_size);
  g_key_file_set_int64(kf, "send", "saved", g_get_real_time() / G_USEC_PER_SEC);
  file = g_build_filename(dir, id, NULL);
  if (!g_key_file_save_to_file(kf, file, error))
    return FALSE;
  return TRUE;
}

gboolean
cli_send_record_load(const char *id, CliSendRecord *r, GError **error)
{
  g_autofree char *dir = cli_send_records_dir();
  g_autofree char *match = NULL;
  g_autofree char *file = NULL;
  g_autoptr(GKeyFile) kf = g_key_file_new();
  g_autoptr(GString) others = g_string_new(NULL);
  g_auto(GStrv) escaped = NULL;
  GError *local = NULL;
  GDir *d;
  const char *name;
  guint n_matches = 0;

  memset(r, 0, sizeof *r);
  if (!is_hex_id(id, FERRY_TRANSFER_ID_HEX_LEN))
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "'%s' is not a transfer id: ferry send prints it as 'transfer ID' (up "
                           "to %d hex digits)",
                           id, FERRY_TRANSFER_ID_HEX_LEN);
  d = g_dir_open(dir, 0, NULL);
  while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
    if (!is_hex_id(name, FERRY_TRANSFER_ID_HEX_LEN) || !g_str_has_prefix(name, id))
      continue;
    if (n_matches++ == 0)
      match = g_strdup(name);
    else
      g_string_append_printf(others, "%s%s", others->len > 0 ? ", " : "", name);
  }
  if (d != NULL)
    g_dir_close(d);
  if (n_matches == 0)
    return ferry_set_error(error, FERRY_ERR_NOT_FOUND,
                           "no earlier send with id '%s' in %s: send the same paths again "
                           "(they give the same transfer id)",
                           id, dir);
  if (n_matches > 1)
    return ferry_set_error(error, FERRY_ERR_AMBIGUOUS,
                           "'%s' matches several sends (%s, %s): give more digits of the id", id,
                           match, others->str);
  file = g_build_filename(dir, match, NULL);
  if (!g_key_file_load_from_file(kf, file, G_KEY_FILE_NONE, &local)) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "the record of send %s (%s) cannot be read: %s; delete it and send the same "
                    "paths again",
                    match, file, local->message);
    g_error_free(local);
    return FALSE;
  }
  escaped = g_key_file_get_string_list(kf, "send", "paths", NULL, NULL);
  guint64 chunk = g_key_file_get_uint64(kf, "send", "chunk-size", NULL);
  if (escaped == NULL || escaped[0] == NULL || !ferry_chunk_size_is_valid(chunk))
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "the record of send %s (%s) is damaged; delete it and send the same "
                           "paths again",
                           match, file);
  g_strlcpy(r->id, match, sizeof r->id);
  r->chunk_size = (guint32)chunk;
  r->saved = g_key_file_get_int64(kf, "send", "saved", NULL);
  r->paths = g_new0(char *, g_strv_length(escaped) + 1);
  for (guint i = 0; escaped[i] != NULL; i++)
    r->paths[i] = g_strcompress(escaped[i]);
  return TRUE;
}

guint
cli_send_records_clean(gint64 ttl_seconds)
{
  g_autofree char *dir = cli_send_records_dir();
  gint64 now = g_get_real_time() / G_USEC_PER_SEC;
  GDir *d = g_dir_open(dir, 0, NULL);
  const char *name;
  guint n = 0;

  if (d == NULL)
    return 0;
  while ((name = g_dir_read_name(d)) != NULL) {
    g_autofree char *file = g_build_filename(dir, name, NULL);
    GStatBuf st;
    if (!is_hex_id(name, FERRY_TRANSFER_ID_HEX_LEN) || g_stat(file, &st) < 0)
      continue;
    if (ttl_seconds > 0 && now - (gint64)st.st_mtime <= ttl_seconds)
      continue;
    if (g_unlink(file) == 0)
      n++;
  }
  g_dir_close(d);
  return n;
}
