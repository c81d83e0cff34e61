/* /metrics in the Prometheus text format (see metrics.h). */
#include <string.h>

#include "server/metrics.h"

static const struct {
  const char *name, *help;
} counter_info[FERRY_COUNT_N] = {
    [FERRY_COUNT_CONNECTIONS] = {"ferry_connections_total", "WebSocket connections accepted."},
    [FERRY_COUNT_SESSIONS] = {"ferry_sessions_total", "Sessions opened by senders."},
    [FERRY_COUNT_JOINS] = {"ferry_joins_total", "Receivers that joined a session."},
    [FERRY_COUNT_MESSAGES] = {"ferry_messages_total", "Messages received from clients."},
    [FERRY_COUNT_RELAYED] = {"ferry_messages_relayed_total", "Messages delivered to clients."},
    [FERRY_COUNT_RESUMES] = {"ferry_resumes_total", "Clients that resumed after a disconnect."},
};

static const struct {
  const char *name, *help;
} gauge_info[FERRY_GAUGE_N] = {
    [FERRY_GAUGE_CONNECTIONS] = {"ferry_connections", "WebSocket connections open now."},
    [FERRY_GAUGE_SESSIONS] = {"ferry_sessions", "Sessions whose sender is connected here."},
    [FERRY_GAUGE_IP_ENTRIES] = {"ferry_rate_limit_entries",
                                "Client addresses with rate-limit state."},
};

void
ferry_metrics_init(FerryMetrics *m)
{
  memset(m, 0, sizeof *m);
  m->refusals = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
}

void
ferry_metrics_clear(FerryMetrics *m)
{
  g_clear_pointer(&m->refusals, g_hash_table_destroy);
}

void
ferry_metrics_count(FerryMetrics *m, FerryCounter c)
{
  m->counters[c]++;
}

void
ferry_metrics_gauge(FerryMetrics *m, FerryGauge g, guint64 value)
{
  m->gauges[g] = value;
}

void
ferry_metrics_refusal(FerryMetrics *m, const char *reason)
{
  guint64 *n = g_hash_table_lookup(m->refusals, reason);
  if (n == NULL) {
    n = g_new0(guint64, 1);
    g_hash_table_insert(m->refusals, g_strdup(reason), n);
  }
  (*n)++;
}

void
ferry_metrics_set_stun(FerryMetrics *m, FerryStunServer *stun)
{
  m->stun = stun;
}

char *
ferry_metrics_render(const FerryMetrics *m)
{
  GString *out = g_string_new(NULL);

  for (int i = 0; i < FERRY_COUNT_N; i++)
    g_string_append_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %" G_GUINT64_FORMAT "\n",
                           counter_info[i].name, counter_info[i].help, counter_info[i].name,
                           counter_info[i].name, m->counters[i]);
  for (int i = 0; i < FERRY_GAUGE_N; i++)
    g_string_append_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %" G_GUINT64_FORMAT "\n",
                           gauge_info[i].name, gauge_info[i].help, gauge_info[i].name,
                           gauge_info[i].name, m->gauges[i]);

  g_string_append(out, "# HELP ferry_refusals_total Requests refused, by reason.\n"
                       "# TYPE ferry_refusals_total counter\n");
  GList *keys = g_list_sort(g_hash_table_get_keys(m->refusals), (GCompareFunc)strcmp);
  for (GList *k = keys; k != NULL; k = k->next)
    g_string_append_printf(out, "ferry_refusals_total{reason=\"%s\"} %" G_GUINT64_FORMAT "\n",
                           (const char *)k->data,
                           *(guint64 *)g_hash_table_lookup(m->refusals, k->data));
  g_list_free(keys);

  if (m->stun != NULL) {
    g_string_append_printf(
        out,
        "# HELP ferry_stun_requests_total STUN Binding requests received.\n"
        "# TYPE ferry_stun_requests_total counter\nferry_stun_requests_total %" G_GUINT64_FORMAT
        "\n# HELP ferry_stun_responses_total STUN responses sent.\n"
        "# TYPE ferry_stun_responses_total counter\nferry_stun_responses_total %" G_GUINT64_FORMAT
        "\n# HELP ferry_stun_dropped_total STUN datagrams dropped as malformed.\n"
        "# TYPE ferry_stun_dropped_total counter\nferry_stun_dropped_total %" G_GUINT64_FORMAT "\n",
        ferry_stun_server_get_requests(m->stun), ferry_stun_server_get_responses(m->stun),
        ferry_stun_server_get_dropped(m->stun));
  }
  return g_string_free(out, FALSE);
}
