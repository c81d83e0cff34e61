/* ferry's log writer.
 *
 * GLib structured logging, formatted for people: "ferry: message" for
 * warnings and errors, "ferry[domain] +12.345ms: message" for debug
 * output. Debug output is off unless --verbose was given or FERRY_DEBUG
 * names the domain: FERRY_DEBUG=all, or FERRY_DEBUG=core,net (a name
 * matches the log domain "ferry-core" as well as "core"). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ferry/ferry.h>

static gboolean log_verbose;
static gboolean log_events;
static char **log_debug_domains;
static gint64 log_start_us;

static gboolean
debug_enabled_for(const char *domain)
{
  if (log_verbose)
    return TRUE;
  if (log_debug_domains == NULL)
    return FALSE;
  for (char **d = log_debug_domains; *d != NULL; d++) {
    if (strcmp(*d, "all") == 0)
      return TRUE;
    if (domain == NULL)
      continue;
    if (strcmp(*d, domain) == 0)
      return TRUE;
    if (g_str_has_prefix(domain, "ferry-") && strcmp(*d, domain + 6) == 0)
      return TRUE;
  }
  return FALSE;
}

static GLogWriterOutput
ferry_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  const char *message = NULL, *domain = NULL;

  for (gsize i = 0; i < n_fields; i++) {
    if (strcmp(fields[i].key, "MESSAGE") == 0)
      message = fields[i].value;
    else if (strcmp(fields[i].key, "GLIB_DOMAIN") == 0)
      domain = fields[i].value;
  }
  if (message == NULL)
    message = "(no message)";

  if ((level & G_LOG_LEVEL_INFO) && log_events && !log_verbose) {
    /* A server's events: one logfmt line each, with a UTC timestamp. */
    GDateTime *now = g_date_time_new_now_utc();
    char *ts = g_date_time_format_iso8601(now);
    fprintf(stderr, "ts=%s domain=%s %s\n", ts, domain ? domain : "?", message);
    g_free(ts);
    g_date_time_unref(now);
    return G_LOG_WRITER_HANDLED;
  }
  if (level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) {
    if (!debug_enabled_for(domain))
      return G_LOG_WRITER_HANDLED;
    double ms = (g_get_monotonic_time() - log_start_us) / 1000.0;
    fprintf(stderr, "ferry[%s] +%.3fms: %s\n", domain ? domain : "?", ms, message);
    return G_LOG_WRITER_HANDLED;
  }

  const char *prefix = "";
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    prefix = "error: ";
  else if (level & G_LOG_LEVEL_WARNING)
    prefix = "warning: ";
  fprintf(stderr, "ferry: %s%s\n", prefix, message);
  return G_LOG_WRITER_HANDLED;
}

void
ferry_log_show_events(gboolean show)
{
  log_events = show;
}

void
ferry_log_init(gboolean verbose)
{
  static gsize once;

  log_verbose = verbose;
  if (g_once_init_enter(&once)) {
    const char *env = g_getenv("FERRY_DEBUG");
    log_start_us = g_get_monotonic_time();
    if (env != NULL && *env != '\0')
      log_debug_domains = g_strsplit_set(env, ", ", -1);
    g_log_set_writer_func(ferry_log_writer, NULL, NULL);
    g_once_init_leave(&once, 1);
  }
}
