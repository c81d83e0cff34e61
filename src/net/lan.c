/* LAN discovery: the sender's announcer and the receiver's lookup (see
 * include/ferry/lan.h and docs/protocol.md §9).
 *
 * Both sides speak the datagrams of lan-datagram.h over plain UDP
 * sockets. Multicast goes out once per interface (IP_MULTICAST_IF), since
 * the kernel would otherwise pick only the default-route one; the
 * loopback interface is included for IPv4 so that two terminals on a
 * machine with no network at all still find each other (lo lacks the
 * MULTICAST flag, but Linux delivers group traffic sent out of it). */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <ferry/code.h>
#include <ferry/lan.h>

#include "net/lan-datagram.h"
#include "net/signal-client.h"

#define ANNOUNCE_INTERVAL_MS 1000
#define QUERY_INTERVAL_MS    500
#define GRACE_MS             300 /* after the first answer, for others with the same number */
#define GRACE_MIN_MS         30 /* … but no longer than that answer took, nor shorter than this */
#define ANSWER_RATE          20 /* answers per second at most, and the burst */
#define READ_BURST           32 /* datagrams read per wake-up */
#define MAX_FOUND            32 /* addresses of senders remembered per lookup */
#define LAN_NAMEPLATE_MAX    999

/* The tag of a `ferry serve` URL in answers: the first 8 bytes
 * (big-endian) of SHA-256("ferry-lan-server " + the URL as
 * ferry_signal_url_normalise() gives it), never 0 (a 0 becomes 1). 0 when
 * url is NULL or does not parse. */
static guint64
server_tag(const char *url)
{
  g_autofree char *norm = url != NULL ? ferry_signal_url_normalise(url, NULL) : NULL;
  guint8 digest[32];
  gsize len = sizeof digest;
  guint64 tag = 0;

  if (norm == NULL)
    return 0;
  GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(sum, (const guchar *)"ferry-lan-server ", 17);
  g_checksum_update(sum, (const guchar *)norm, (gssize)strlen(norm));
  g_checksum_get_digest(sum, digest, &len);
  g_checksum_free(sum);
  for (int i = 0; i < 8; i++)
    tag = tag << 8 | digest[i];
  return tag != 0 ? tag : 1;
}

/* ---- interfaces and sockets ------------------------------------------------ */

typedef struct {
  guint index;
  struct in_addr addr4; /* IPv4: the interface's first address */
} Iface;

/* The interfaces that can carry the groups of family: up, and either
 * multicast-capable or (IPv4 only) the loopback. */
static GArray *
list_ifaces(int family)
{
  GArray *out = g_array_new(FALSE, TRUE, sizeof(Iface));
  struct ifaddrs *all = NULL;

  if (getifaddrs(&all) < 0)
    return out;
  for (struct ifaddrs *ifa = all; ifa != NULL; ifa = ifa->ifa_next) {
    gboolean loopback = (ifa->ifa_flags & IFF_LOOPBACK) != 0;
    if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != family || !(ifa->ifa_flags & IFF_UP))
      continue;
    gboolean multicast = (ifa->ifa_flags & IFF_MULTICAST) != 0;
    gboolean usable = family == AF_INET ? multicast || loopback : multicast && !loopback;
    if (!usable)
      continue;
    Iface f = {if_nametoindex(ifa->ifa_name), {0}};
    gboolean seen = f.index == 0;
    for (guint i = 0; i < out->len && !seen; i++)
      seen = g_array_index(out, Iface, i).index == f.index;
    if (seen)
      continue;
    if (family == AF_INET)
      f.addr4 = ((const struct sockaddr_in *)(const void *)ifa->ifa_addr)->sin_addr;
    g_array_append_val(out, f);
  }
  freeifaddrs(all);
  return out;
}

/* A non-blocking UDP socket bound to port on the wildcard address (IPv6:
 * IPv6 only). With port FERRY_LAN_PORT the address is shared
 * (SO_REUSEADDR/SO_REUSEPORT): every sender and receiver on the machine
 * gets its own copy of each group datagram. */
static GSocket *
open_socket(GSocketFamily family, guint port, GError **error)
{
  g_autoptr(GSocket) s = g_socket_new(family, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, error);
  if (s == NULL)
    return NULL;
  if (family == G_SOCKET_FAMILY_IPV6 &&
      !g_socket_set_option(s, IPPROTO_IPV6, IPV6_V6ONLY, 1, error))
    return NULL;
  if (port != 0 && !g_socket_set_option(s, SOL_SOCKET, SO_REUSEPORT, 1, error))
    return NULL;
  g_autoptr(GInetAddress) any = g_inet_address_new_any(family);
  g_autoptr(GSocketAddress) addr = g_inet_socket_address_new(any, (guint16)port);
  if (!g_socket_bind(s, addr, port != 0, error))
    return NULL;
  g_socket_set_blocking(s, FALSE);
  g_socket_set_multicast_ttl(s, 1);
  g_socket_set_multicast_loopback(s, TRUE);
  return g_steal_pointer(&s);
}

/* Joins the family's group on every interface not in joined yet. */
static void
join_groups(GSocket *s, GHashTable *joined)
{
  GSocketFamily family = g_socket_get_family(s);
  g_autoptr(GInetAddress) group = g_inet_address_new_from_string(
      family == G_SOCKET_FAMILY_IPV4 ? FERRY_LAN_GROUP_IPV4 : FERRY_LAN_GROUP_IPV6);
  g_autoptr(GArray) ifaces = list_ifaces(family == G_SOCKET_FAMILY_IPV4 ? AF_INET : AF_INET6);

  for (guint i = 0; i < ifaces->len; i++) {
    guint index = g_array_index(ifaces, Iface, i).index;
    char name[IF_NAMESIZE];
    GError *error = NULL;
    if (g_hash_table_contains(joined, GUINT_TO_POINTER(index)) ||
        if_indextoname(index, name) == NULL)
      continue;
    if (!g_socket_join_multicast_group(s, group, FALSE, name, &error) &&
        !g_error_matches(error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE)) {
      g_debug("lan: cannot join the group on %s: %s", name, error->message);
      g_clear_error(&error);
      continue;
    }
    g_clear_error(&error);
    g_hash_table_add(joined, GUINT_TO_POINTER(index));
  }
}

/* Sends text to the family's group out of every interface that can carry
 * it. Failures (an interface without a route, a link going down) are
 * only logged: the next round tries again. */
static void
send_to_groups(GSocket *s, const char *text, gsize len)
{
  GSocketFamily family = g_socket_get_family(s);
  gboolean v4 = family == G_SOCKET_FAMILY_IPV4;
  g_autoptr(GInetAddress) group =
      g_inet_address_new_from_string(v4 ? FERRY_LAN_GROUP_IPV4 : FERRY_LAN_GROUP_IPV6);
  g_autoptr(GArray) ifaces = list_ifaces(v4 ? AF_INET : AF_INET6);

  for (guint i = 0; i < ifaces->len; i++) {
    const Iface *f = &g_array_index(ifaces, Iface, i);
    g_autoptr(GSocketAddress) to = NULL;
    GError *error = NULL;
    if (v4) {
      struct ip_mreqn req = {.imr_address = f->addr4, .imr_ifindex = (int)f->index};
      if (setsockopt(g_socket_get_fd(s), IPPROTO_IP, IP_MULTICAST_IF, &req, sizeof req) < 0)
        continue;
      to = g_inet_socket_address_new(group, FERRY_LAN_PORT);
    } else {
      if (!g_socket_set_option(s, IPPROTO_IPV6, IPV6_MULTICAST_IF, (gint)f->index, NULL))
        continue;
      to = g_object_new(G_TYPE_INET_SOCKET_ADDRESS, "address", group, "port", FERRY_LAN_PORT,
                        "scope-id", f->index, NULL);
    }
    if (g_socket_send_to(s, to, text, len, NULL, &error) < 0) {
      g_debug("lan: cannot send to the group on interface %u: %s", f->index, error->message);
      g_error_free(error);
    }
  }
}

typedef void (*DatagramFunc)(gpointer owner, GSocket *s, GSocketAddress *from,
                             const FerryLanDatagram *d);

typedef struct {
  gpointer owner;
  DatagramFunc func;
} Reading;

/* Reads what is waiting on a socket, at most READ_BURST datagrams per
 * wake-up, and hands every well-formed one to its owner; anything else is
 * dropped unseen. */
static gboolean
on_readable(GSocket *s, GIOCondition condition, gpointer user_data)
{
  Reading *r = user_data;
  guint8 buf[512];

  for (int i = 0; i < READ_BURST; i++) {
    GSocketAddress *from = NULL;
    FerryLanDatagram d;
    gssize n = g_socket_receive_from(s, &from, (char *)buf, sizeof buf, NULL, NULL);
    if (n < 0)
      break;
    if (from != NULL && G_IS_INET_SOCKET_ADDRESS(from) &&
        ferry_lan_datagram_parse(buf, (gsize)n, &d) == 0)
      r->func(r->owner, s, from, &d);
    g_clear_object(&from);
  }
  return G_SOURCE_CONTINUE;
}

/* Watches s on context for owner. Returns the attached source. */
static GSource *
watch_socket(GSocket *s, GMainContext *context, gpointer owner, DatagramFunc func)
{
  GSource *src = g_socket_create_source(s, G_IO_IN, NULL);
  Reading *r = g_new(Reading, 1);
  r->owner = owner;
  r->func = func;
  g_source_set_callback(src, (GSourceFunc)(GCallback)on_readable, r, g_free);
  g_source_attach(src, context);
  return src;
}

static void
unwatch(GSource **src)
{
  if (*src == NULL)
    return;
  g_source_destroy(*src);
  g_source_unref(*src);
  *src = NULL;
}

static GSource *
add_timeout(GMainContext *context, guint ms, GSourceFunc func, gpointer data)
{
  GSource *src = g_timeout_source_new(ms);
  g_source_set_callback(src, func, data, NULL);
  g_source_attach(src, context);
  return src;
}

/* ---- the announcer ------------------------------------------------------------ */

struct _FerryLanAnnouncer {
  GMainContext *context;
  GSocket *sock[2]; /* IPv4, IPv6 on FERRY_LAN_PORT; either may be NULL */
  GSource *watch[2];
  GHashTable *joined[2]; /* interface indexes whose group membership is held */
  GSource *timer;
  char code[FERRY_CODE_TEXT_SIZE];
  guint32 nameplate;
  char answer[FERRY_LAN_DATAGRAM_MAX + 1];
  gsize answer_len;
  double tokens; /* answers that may go out now */
  gint64 refilled_us;
};

static gboolean
may_answer(FerryLanAnnouncer *a)
{
  gint64 now = g_get_monotonic_time();
  a->tokens = MIN((double)ANSWER_RATE,
                  a->tokens + (double)(now - a->refilled_us) * ANSWER_RATE / G_USEC_PER_SEC);
  a->refilled_us = now;
  if (a->tokens < 1.0)
    return FALSE;
  a->tokens -= 1.0;
  return TRUE;
}

static void
announcer_datagram(gpointer owner, GSocket *s, GSocketAddress *from, const FerryLanDatagram *d)
{
  FerryLanAnnouncer *a = owner;
  if (d->kind != FERRY_LAN_QUERY || d->nameplate != a->nameplate || !may_answer(a))
    return;
  if (g_socket_send_to(s, from, a->answer, a->answer_len, NULL, NULL) < 0)
    g_debug("lan: cannot answer a query");
}

static gboolean
announce(gpointer user_data)
{
  FerryLanAnnouncer *a = user_data;
  for (int i = 0; i < 2; i++) {
    if (a->sock[i] == NULL)
      continue;
    join_groups(a->sock[i], a->joined[i]);
    send_to_groups(a->sock[i], a->answer, a->answer_len);
  }
  return G_SOURCE_CONTINUE;
}

FerryLanAnnouncer *
ferry_lan_announcer_new(const char *code, guint port, GError **error)
{
  return ferry_lan_announcer_new_full(code, port, 0, NULL, error);
}

FerryLanAnnouncer *
ferry_lan_announcer_new_full(const char *code, guint port, guint number, const char *server_url,
                             GError **error)
{
  FerryCode parsed;
  FerryCodeDiag diag;
  GError *errs[2] = {NULL, NULL};

  if (ferry_code_parse(code, strlen(code), &parsed, &diag) < 0) {
    ferry_set_error(error, FERRY_ERR_INVALID, "%s", diag.message);
    return NULL;
  }
  if (port == 0 || port > G_MAXUINT16) {
    ferry_set_error(error, FERRY_ERR_INVALID, "the rendezvous port %u is no TCP port", port);
    return NULL;
  }

  FerryLanAnnouncer *a = g_new0(FerryLanAnnouncer, 1);
  FerryLanDatagram d = {
      .kind = FERRY_LAN_ANSWER,
      .nameplate =
          number != 0 ? (guint32)number : (guint32)g_random_int_range(1, LAN_NAMEPLATE_MAX + 1),
      .port = (guint16)port,
      .instance = (guint64)g_random_int() << 32 | g_random_int(),
      .server_nameplate = parsed.nameplate,
      .server_tag = server_tag(server_url),
  };
  a->nameplate = d.nameplate;
  a->answer_len = (gsize)ferry_lan_datagram_format(&d, a->answer, sizeof a->answer);
  ferry_code_set_nameplate(&parsed, d.nameplate);
  ferry_code_format(&parsed, a->code, sizeof a->code);
  a->context = g_main_context_ref_thread_default();
  a->tokens = ANSWER_RATE;
  a->refilled_us = g_get_monotonic_time();

  GSocketFamily families[2] = {G_SOCKET_FAMILY_IPV4, G_SOCKET_FAMILY_IPV6};
  for (int i = 0; i < 2; i++) {
    a->joined[i] = g_hash_table_new(NULL, NULL);
    a->sock[i] = open_socket(families[i], FERRY_LAN_PORT, &errs[i]);
    if (a->sock[i] != NULL)
      a->watch[i] = watch_socket(a->sock[i], a->context, a, announcer_datagram);
  }
  if (a->sock[0] == NULL && a->sock[1] == NULL) {
    ferry_set_error(error, FERRY_ERR_IO,
                    "cannot listen for receivers on UDP port %d (%s); receivers on this network "
                    "cannot find this sender: use --server",
                    FERRY_LAN_PORT, errs[0]->message);
    g_clear_error(&errs[0]);
    g_clear_error(&errs[1]);
    ferry_lan_announcer_free(a);
    return NULL;
  }
  if (errs[0] != NULL || errs[1] != NULL)
    g_debug("lan: announcing on one family only: %s",
            (errs[0] != NULL ? errs[0] : errs[1])->message);
  g_clear_error(&errs[0]);
  g_clear_error(&errs[1]);
  announce(a);
  a->timer = add_timeout(a->context, ANNOUNCE_INTERVAL_MS, announce, a);
  return a;
}

const char *
ferry_lan_announcer_get_code(FerryLanAnnouncer *announcer)
{
  return announcer->code;
}

void
ferry_lan_announcer_free(FerryLanAnnouncer *announcer)
{
  FerryLanAnnouncer *a = announcer;
  if (a == NULL)
    return;
  unwatch(&a->timer);
  for (int i = 0; i < 2; i++) {
    unwatch(&a->watch[i]);
    if (a->sock[i] != NULL)
      g_socket_close(a->sock[i], NULL);
    g_clear_object(&a->sock[i]);
    g_clear_pointer(&a->joined[i], g_hash_table_unref);
  }
  g_main_context_unref(a->context);
  g_free(a);
}

/* ---- the lookup --------------------------------------------------------------- */

/* One address at which one sender answered. */
typedef struct {
  guint64 instance;
  guint order; /* senders in the order they first answered */
  int rank;    /* 0 IPv4, 1 IPv6, 2 IPv6 link-local: lower is tried first */
  char *url;
  guint32 server_nameplate;
} Found;

typedef struct {
  GTask *task;
  GMainContext *context;
  FerryCode code;
  char query[FERRY_LAN_DATAGRAM_MAX + 1];
  gsize query_len;
  GSocket *ask[2];    /* ephemeral ports: queries out, answers in */
  GSocket *listen[2]; /* FERRY_LAN_PORT: unsolicited announcements */
  GHashTable *joined[2];
  GSource *watch[4];
  GSource *query_timer, *deadline, *grace, *cancelled;
  guint grace_ms;  /* how long to wait for others after the first answer */
  gint64 asked_us; /* when the first query went out */
  guint64 tag;     /* only answers with this server tag; 0: any */
  GArray *found;   /* Found */
  guint senders;   /* distinct instances in found */
} Lookup;

void
ferry_lan_sender_free(FerryLanSender *sender)
{
  if (sender == NULL)
    return;
  g_free(sender->server_url);
  g_free(sender->code);
  g_free(sender);
}

/* Where a sender's rendezvous is, seen from here: its TCP port at the
 * address its answer came from. Returns the URL and sets *rank. */
static char *
url_for(GInetSocketAddress *from, guint port, int *rank)
{
  GInetAddress *ip = g_inet_socket_address_get_address(from);
  g_autofree char *text = g_inet_address_to_string(ip);
  char name[IF_NAMESIZE];

  if (g_inet_address_get_family(ip) == G_SOCKET_FAMILY_IPV4) {
    *rank = 0;
    return g_strdup_printf("ws://%s:%u", text, port);
  }
  guint32 scope = g_inet_socket_address_get_scope_id(from);
  if (g_inet_address_get_is_link_local(ip) && scope != 0 && if_indextoname(scope, name) != NULL) {
    *rank = 2;
    return g_strdup_printf("ws://[%s%%25%s]:%u", text, name, port);
  }
  *rank = 1;
  return g_strdup_printf("ws://[%s]:%u", text, port);
}

static gint
found_compare(gconstpointer a, gconstpointer b)
{
  const Found *x = a, *y = b;
  if (x->order != y->order)
    return x->order < y->order ? -1 : 1;
  return x->rank - y->rank;
}

static void
lookup_free(Lookup *l)
{
  unwatch(&l->query_timer);
  unwatch(&l->deadline);
  unwatch(&l->grace);
  unwatch(&l->cancelled);
  for (int i = 0; i < 4; i++)
    unwatch(&l->watch[i]);
  for (int i = 0; i < 2; i++) {
    g_clear_object(&l->ask[i]);
    g_clear_object(&l->listen[i]);
    g_clear_pointer(&l->joined[i], g_hash_table_unref);
  }
  for (guint i = 0; i < l->found->len; i++)
    g_free(g_array_index(l->found, Found, i).url);
  g_array_unref(l->found);
  g_main_context_unref(l->context);
  g_free(l);
}

/* Ends the lookup with what was found, or with error (taken). */
static void
lookup_end(Lookup *l, GError *error)
{
  GTask *task = l->task;

  if (error == NULL && l->found->len == 0)
    error = g_error_new(FERRY_ERROR, FERRY_ERROR_NOT_FOUND,
                        "no sender with the number %u answered on the local network",
                        l->code.nameplate);
  if (error != NULL) {
    g_task_return_error(task, error);
  } else {
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)ferry_lan_sender_free);
    g_array_sort(l->found, found_compare);
    for (guint i = 0; i < l->found->len; i++) {
      const Found *f = &g_array_index(l->found, Found, i);
      FerryCode code = l->code;
      char text[FERRY_CODE_TEXT_SIZE];
      FerryLanSender *s = g_new0(FerryLanSender, 1);
      ferry_code_set_nameplate(&code, f->server_nameplate);
      ferry_code_format(&code, text, sizeof text);
      s->instance = f->instance;
      s->server_url = g_strdup(f->url);
      s->code = g_strdup(text);
      g_ptr_array_add(out, s);
    }
    g_task_return_pointer(task, out, (GDestroyNotify)g_ptr_array_unref);
  }
  lookup_free(l);
  g_object_unref(task);
}

static gboolean
on_deadline(gpointer user_data)
{
  lookup_end(user_data, NULL);
  return G_SOURCE_REMOVE;
}

static gboolean
on_cancelled(GCancellable *cancellable, gpointer user_data)
{
  GError *error = NULL;
  g_cancellable_set_error_if_cancelled(cancellable, &error);
  lookup_end(user_data, error);
  return G_SOURCE_REMOVE;
}

static gboolean
send_query(gpointer user_data)
{
  Lookup *l = user_data;
  for (int i = 0; i < 2; i++)
    if (l->ask[i] != NULL)
      send_to_groups(l->ask[i], l->query, l->query_len);
  return G_SOURCE_CONTINUE;
}

static void
lookup_datagram(gpointer owner, GSocket *s, GSocketAddress *from, const FerryLanDatagram *d)
{
  Lookup *l = owner;
  int rank;

  if (d->kind != FERRY_LAN_ANSWER || d->nameplate != l->code.nameplate ||
      (l->tag != 0 && d->server_tag != l->tag))
    return;
  char *url = url_for(G_INET_SOCKET_ADDRESS(from), d->port, &rank);
  guint order = l->senders;
  for (guint i = 0; i < l->found->len; i++) {
    const Found *f = &g_array_index(l->found, Found, i);
    if (f->instance != d->instance)
      continue;
    order = f->order;
    if (strcmp(f->url, url) == 0) {
      g_free(url);
      return;
    }
  }
  if (l->found->len >= MAX_FOUND) {
    g_free(url);
    return;
  }
  if (order == l->senders)
    l->senders++;
  Found f = {d->instance, order, rank, url, d->server_nameplate};
  g_array_append_val(l->found, f);
  /* Others with the same number answer about as fast as the first did:
   * on a LAN within milliseconds, across a long link in about its round
   * trip. Waiting as long again as the first answer took (30 ms at least,
   * grace_ms at most) hears them without holding every lookup for the
   * full grace. */
  if (l->grace == NULL) {
    gint64 took_ms = (g_get_monotonic_time() - l->asked_us) / 1000;
    guint wait = (guint)MIN((gint64)l->grace_ms, MAX(took_ms, GRACE_MIN_MS));
    g_debug("lan: first answer after %" G_GINT64_FORMAT " ms (%s); waiting %u ms for others",
            took_ms, url, wait);
    l->grace = add_timeout(l->context, wait, on_deadline, l);
  }
}

void
ferry_lan_lookup_async(const char *code, guint timeout_ms, GCancellable *cancellable,
                       GAsyncReadyCallback callback, gpointer user_data)
{
  ferry_lan_lookup_full_async(code, timeout_ms, GRACE_MS, NULL, cancellable, callback, user_data);
}

void
ferry_lan_lookup_full_async(const char *code, guint timeout_ms, guint grace_ms,
                            const char *server_url, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  Lookup *l = g_new0(Lookup, 1);
  FerryCodeDiag diag;
  GError *error = NULL;
  int n = 0;

  l->task = g_task_new(NULL, cancellable, callback, user_data);
  g_task_set_source_tag(l->task, ferry_lan_lookup_async);
  l->grace_ms = grace_ms;
  l->tag = server_tag(server_url);
  l->context = g_main_context_ref_thread_default();
  l->found = g_array_new(FALSE, TRUE, sizeof(Found));
  if (ferry_code_parse(code, strlen(code), &l->code, &diag) < 0) {
    lookup_end(l, g_error_new(FERRY_ERROR, FERRY_ERROR_INVALID, "%s", diag.message));
    return;
  }
  FerryLanDatagram q = {.kind = FERRY_LAN_QUERY, .nameplate = l->code.nameplate};
  l->query_len = (gsize)ferry_lan_datagram_format(&q, l->query, sizeof l->query);

  GSocketFamily families[2] = {G_SOCKET_FAMILY_IPV4, G_SOCKET_FAMILY_IPV6};
  for (int i = 0; i < 2; i++) {
    l->joined[i] = g_hash_table_new(NULL, NULL);
    l->ask[i] = open_socket(families[i], 0, error == NULL ? &error : NULL);
    if (l->ask[i] != NULL)
      l->watch[n++] = watch_socket(l->ask[i], l->context, l, lookup_datagram);
    /* hearing announcements is a bonus: queries alone find every sender */
    l->listen[i] = open_socket(families[i], FERRY_LAN_PORT, NULL);
    if (l->listen[i] != NULL) {
      join_groups(l->listen[i], l->joined[i]);
      l->watch[n++] = watch_socket(l->listen[i], l->context, l, lookup_datagram);
    }
  }
  if (l->ask[0] == NULL && l->ask[1] == NULL) {
    GError *e = g_error_new(FERRY_ERROR, FERRY_ERROR_IO,
                            "cannot open a UDP socket to look for the sender on the local "
                            "network: %s",
                            error->message);
    g_error_free(error);
    lookup_end(l, e);
    return;
  }
  g_clear_error(&error);
  if (cancellable != NULL) {
    l->cancelled = g_cancellable_source_new(cancellable);
    g_source_set_callback(l->cancelled, (GSourceFunc)(GCallback)on_cancelled, l, NULL);
    g_source_attach(l->cancelled, l->context);
  }
  l->asked_us = g_get_monotonic_time();
  g_debug("lan: asking for nameplate %u", (guint)l->code.nameplate);
  send_query(l);
  l->query_timer = add_timeout(l->context, QUERY_INTERVAL_MS, send_query, l);
  l->deadline = add_timeout(l->context, MAX(timeout_ms, 1), on_deadline, l);
}

GPtrArray *
ferry_lan_lookup_finish(GAsyncResult *result, GError **error)
{
  g_return_val_if_fail(g_task_is_valid(result, NULL), NULL);
  return g_task_propagate_pointer(G_TASK(result), error);
}
