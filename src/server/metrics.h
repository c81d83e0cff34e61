/* Counters and gauges of `ferry serve`, rendered in the Prometheus text
 * exposition format for /metrics. Single-threaded: touched only from the
 * server's main context (STUN counters are read from the responder). */
#ifndef FERRY_SERVER_METRICS_H
#define FERRY_SERVER_METRICS_H

#include <glib.h>

#include "server/stun-server.h"

typedef enum {
  FERRY_COUNT_CONNECTIONS, /* WebSocket connections accepted */
  FERRY_COUNT_SESSIONS,    /* sessions opened (claims) */
  FERRY_COUNT_JOINS,       /* receivers joined */
  FERRY_COUNT_MESSAGES,    /* frames received from clients */
  FERRY_COUNT_RELAYED,     /* envelopes delivered to clients */
  FERRY_COUNT_RESUMES,     /* members that came back after a disconnect */
  FERRY_COUNT_N,
} FerryCounter;

typedef enum {
  FERRY_GAUGE_CONNECTIONS,
  FERRY_GAUGE_SESSIONS,
  FERRY_GAUGE_IP_ENTRIES,
  FERRY_GAUGE_N,
} FerryGauge;

typedef struct {
  guint64 counters[FERRY_COUNT_N];
  guint64 gauges[FERRY_GAUGE_N];
  GHashTable *refusals; /* slug → guint64 count */
  FerryStunServer *stun;
} FerryMetrics;

void ferry_metrics_init(FerryMetrics *m);
void ferry_metrics_clear(FerryMetrics *m);
void ferry_metrics_count(FerryMetrics *m, FerryCounter c);
void ferry_metrics_gauge(FerryMetrics *m, FerryGauge g, guint64 value);
/* Counts one refusal under its reason (the error slug sent to the client). */
void ferry_metrics_refusal(FerryMetrics *m, const char *reason);
/* The STUN responder whose counters /metrics shows (not owned). */
void ferry_metrics_set_stun(FerryMetrics *m, FerryStunServer *stun);
/* The exposition text; the caller frees it. */
char *ferry_metrics_render(const FerryMetrics *m);

#endif
