/* The HTTP relay of `ferry serve` (docs/protocol.md §10): a sender uploads
 * with plain HTTP to /r/NAME (PUT, or a multipart POST), one receiver
 * downloads from the same URL with a browser or curl (once, or up to N
 * times), and the server streams the bytes from one to the others while
 * holding at most a window of them in memory. Nothing touches the disk. */
#ifndef FERRY_SERVER_RELAY_H
#define FERRY_SERVER_RELAY_H

#include <libsoup/soup.h>

#include "server/metrics.h"
#include <ferry/server.h>

#define FERRY_RELAY_MAX_NAME 64

typedef struct _FerryRelayHub FerryRelayHub;

/* The relays of one server. cfg's relay_* fields are copied; metrics (not
 * owned) gets the refusals. Free with ferry_relay_hub_free(), before the
 * SoupServer it serves is disconnected. */
FerryRelayHub *ferry_relay_hub_new(const FerryServerConfig *cfg, FerryMetrics *metrics);
void ferry_relay_hub_free(FerryRelayHub *hub);

/* TRUE when uploads are accepted (a secret is set, or anonymous uploads). */
gboolean ferry_relay_hub_enabled(const FerryRelayHub *hub);

/* SoupServer handlers for "/r", user_data = the hub: the early one checks
 * an upload's headers (auth, name, limits) before its body is read and
 * starts streaming it; the other answers downloads and finishes uploads. */
void ferry_relay_early_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                               GHashTable *query, gpointer hub);
void ferry_relay_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                         GHashTable *query, gpointer hub);

/* Takes no new uploads (503 relay-draining) and calls idle once no relay
 * is in progress (at once if none is). Relays still running go on until
 * the hub is freed, which cuts them. */
void ferry_relay_hub_drain(FerryRelayHub *hub, GSourceFunc idle, gpointer user_data);

/* Relays in progress. */
guint ferry_relay_hub_count(const FerryRelayHub *hub);

/* Appends the relay's counters and gauges in Prometheus text format. */
void ferry_relay_hub_render_metrics(const FerryRelayHub *hub, GString *out);

/* TRUE if name is 1 to 64 characters of [A-Za-z0-9._-] and not "." or "..". */
gboolean ferry_relay_name_valid(const char *name);

#endif
