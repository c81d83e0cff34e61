/* FerryIce: one libnice agent with one stream of one component, configured
 * for ferry (RFC 5245/8445 mode, trickle, regular nomination, no ICE-TCP,
 * no UPnP, no consent freshness, binding-indication keepalives).
 *
 * libnice emits its signals from inside its own API calls (even inside
 * nice_agent_gather_candidates()). The handlers here only record what
 * happened; the caller's callbacks run later from an idle source, so a
 * callback may call any ferry_ice_*() function, ferry_ice_free() included. */
#include "net/ice.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nice/agent.h>
#include <nice/interfaces.h>

#include <ferry/error.h>

#include "net/ice-tls.h"
#include "net/udp.h"

#define COMPONENT 1

typedef struct {
  char *name; /* canonical URL, for messages and FerryIcePath */
  char *host; /* what libnice is given (the tunnel's 127.0.0.1 for TLS) */
  guint16 port;
  NiceRelayType type;
  FerryIceTlsTunnel *tunnel;
  GInetSocketAddress *server; /* the server itself; NULL when given by name */
} Relay;

struct _FerryIce {
  GMainContext *ctx;
  guint refs;
  gboolean closed;

  gboolean force_relay;
  gboolean ipv4, ipv6, include_loopback;
  gboolean server_lo4, server_lo6; /* a STUN or UDP TURN server is on our loopback */
  gboolean have_lo4, have_lo6;     /* loopback addresses were gathered */
  guint timeout_ms;
  GPtrArray *relays; /* Relay* */

  NiceAgent *agent;
  guint stream_id;
  char *ufrag, *pwd;
  FerryIceState state;
  gint64 start_us;
  gint64 ready_us;

  /* Local candidates not yet handed to the caller. */
  GQueue out;
  gboolean gathering_done;
  gboolean eoc_sent;
  guint n_local[4];

  /* What the peer sent; candidates wait in pending until we started and
   * know its credentials. */
  char *remote_ufrag, *remote_pwd;
  gboolean remote_applied;
  GSList *pending; /* NiceCandidate*, newest first */
  guint n_remote_total;
  guint n_remote[4];
  gboolean remote_eoc, remote_eoc_applied;

  NiceCandidate *sel_local, *sel_remote; /* copies, at READY */
  const Relay *sel_relay;                /* our TURN server when sel_local is a relay */
  GError *failure;
  gboolean outcome_reported;
  gboolean taken;

  GSource *dispatch;
  GSource *timer;

  FerryIceCandidateFunc on_candidate;
  FerryIceOutcomeFunc on_outcome;
  gpointer user_data;
  FerryIceRecvFunc on_recv;
  gpointer recv_data;
};

static const char *const type_names[] = {"host", "srflx", "prflx", "relay"};

const char *
ferry_ice_candidate_type_to_string(FerryIceCandidateType type)
{
  return (guint)type < G_N_ELEMENTS(type_names) ? type_names[type] : "unknown";
}

static FerryIceCandidateType
type_from_nice(NiceCandidateType t)
{
  switch (t) {
  case NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE:
    return FERRY_ICE_CANDIDATE_SRFLX;
  case NICE_CANDIDATE_TYPE_PEER_REFLEXIVE:
    return FERRY_ICE_CANDIDATE_PRFLX;
  case NICE_CANDIDATE_TYPE_RELAYED:
    return FERRY_ICE_CANDIDATE_RELAY;
  case NICE_CANDIDATE_TYPE_HOST:
  default:
    return FERRY_ICE_CANDIDATE_HOST;
  }
}

static void
relay_free(gpointer p)
{
  Relay *r = p;
  g_free(r->name);
  g_free(r->host);
  g_clear_object(&r->server);
  g_free(r);
}

static void
ice_unref(FerryIce *ice)
{
  if (--ice->refs > 0)
    return;
  g_queue_clear_full(&ice->out, g_free);
  g_slist_free_full(ice->pending, (GDestroyNotify)nice_candidate_free);
  g_clear_pointer(&ice->sel_local, nice_candidate_free);
  g_clear_pointer(&ice->sel_remote, nice_candidate_free);
  g_clear_error(&ice->failure);
  g_free(ice->ufrag);
  g_free(ice->pwd);
  g_free(ice->remote_ufrag);
  g_free(ice->remote_pwd);
  g_main_context_unref(ice->ctx);
  g_free(ice);
}

static void
cancel_source(GSource **source)
{
  if (*source != NULL) {
    g_source_destroy(*source);
    g_source_unref(*source);
    *source = NULL;
  }
}

/* Runs the caller's callbacks for whatever the libnice handlers recorded:
 * the queued local candidates, then end-of-candidates, then the outcome.
 * A callback may free ice: ice->closed stops the rest. */
static gboolean
dispatch_cb(gpointer data)
{
  FerryIce *ice = data;
  char *line;

  g_source_unref(ice->dispatch);
  ice->dispatch = NULL;
  ice->refs++;
  while (!ice->closed && (line = g_queue_pop_head(&ice->out)) != NULL) {
    if (ice->on_candidate != NULL)
      ice->on_candidate(ice, line, ice->user_data);
    g_free(line);
  }
  if (!ice->closed && ice->gathering_done && !ice->eoc_sent) {
    ice->eoc_sent = TRUE;
    if (ice->on_candidate != NULL)
      ice->on_candidate(ice, NULL, ice->user_data);
  }
  if (!ice->closed && !ice->outcome_reported &&
      (ice->state == FERRY_ICE_READY || ice->state == FERRY_ICE_FAILED)) {
    ice->outcome_reported = TRUE;
    if (ice->on_outcome != NULL)
      ice->on_outcome(ice, ice->state, ice->failure, ice->user_data);
  }
  ice_unref(ice);
  return G_SOURCE_REMOVE;
}

static void
schedule_dispatch(FerryIce *ice)
{
  if (ice->dispatch != NULL || ice->closed)
    return;
  ice->dispatch = g_idle_source_new();
  g_source_set_priority(ice->dispatch, G_PRIORITY_DEFAULT);
  g_source_set_callback(ice->dispatch, dispatch_cb, ice, NULL);
  g_source_attach(ice->dispatch, ice->ctx);
}

/* "2 host, 1 srflx" or "none". */
static char *
describe_counts(const guint counts[4])
{
  GString *s = g_string_new(NULL);
  for (guint i = 0; i < 4; i++)
    if (counts[i] > 0)
      g_string_append_printf(s, "%s%u %s", s->len > 0 ? ", " : "", counts[i], type_names[i]);
  if (s->len == 0)
    g_string_append(s, "none");
  return g_string_free(s, FALSE);
}

/* The message a user reads when no pair works: what was tried and the way
 * out that fits what was missing. */
static GError *
make_failure(FerryIce *ice, gboolean timed_out)
{
  g_autofree char *local = describe_counts(ice->n_local);
  g_autofree char *remote = describe_counts(ice->n_remote);
  GString *msg = g_string_new("no working path between the two peers");
  guint n_local = 0;

  for (guint i = 0; i < 4; i++)
    n_local += ice->n_local[i];
  if (timed_out)
    g_string_append_printf(msg, " within %.1f s", ice->timeout_ms / 1000.0);
  g_string_append_printf(msg, ": tried %u local candidate%s (%s) and %u remote (%s)", n_local,
                         n_local == 1 ? "" : "s", local, ice->n_remote_total, remote);
  if (ice->remote_ufrag == NULL)
    g_string_append(msg, "; the other peer's ICE credentials never arrived (is it still running?)");
  else if (ice->n_remote_total == 0)
    g_string_append(msg, "; the other peer sent no candidates (is it still running?)");

  if (ice->relays->len == 0) {
    g_string_append(msg, "; if one side is behind a strict firewall, use a TURN server "
                         "(--turn-server)");
  } else if (ice->n_local[FERRY_ICE_CANDIDATE_RELAY] == 0) {
    gboolean explained = FALSE;
    g_string_append(msg, "; no relay candidate came from the TURN server");
    for (guint i = 0; i < ice->relays->len; i++) {
      Relay *r = ice->relays->pdata[i];
      const GError *terr = r->tunnel != NULL ? ferry_ice_tls_tunnel_get_error(r->tunnel) : NULL;
      g_string_append_printf(msg, "%s %s", i == 0 ? "" : ",", r->name);
      if (terr != NULL) {
        g_string_append_printf(msg, " (%s)", terr->message);
        explained = TRUE;
      }
    }
    if (!explained)
      g_string_append(msg, ": check its address, port and credentials");
  } else {
    g_string_append(msg, "; the other peer could not reach our TURN relay either: check that "
                         "the TURN server lets peers reach each other");
  }
  GError *error = g_error_new_literal(FERRY_ERROR, FERRY_ERROR_FAILED, msg->str);
  g_string_free(msg, TRUE);
  return error;
}

static void
set_failed(FerryIce *ice, gboolean timed_out)
{
  if (ice->state == FERRY_ICE_READY || ice->state == FERRY_ICE_FAILED)
    return;
  ice->state = FERRY_ICE_FAILED;
  ice->failure = make_failure(ice, timed_out);
  cancel_source(&ice->timer);
  g_debug("ICE failed: %s", ice->failure->message);
  schedule_dispatch(ice);
}

static const Relay *relay_of(FerryIce *ice, const NiceCandidate *cand);

/* A relayed pair's datagrams come and go through the libnice UDP socket
 * the TURN allocation was made from (the relay candidate's base), whose
 * kernel buffers are the default ~200 KiB: a burst from the relay
 * overflows that and is lost. The agent does not hand that socket out, so
 * it is found among the process's descriptors by its address and given
 * big buffers. */
static void
raise_relay_base_buffers(const NiceCandidate *relay)
{
  struct sockaddr_storage base;
  GDir *dir = g_dir_open("/proc/self/fd", 0, NULL);

  memset(&base, 0, sizeof base);
  nice_address_copy_to_sockaddr(&relay->base_addr, (struct sockaddr *)&base);
  for (const char *name; dir != NULL && (name = g_dir_read_name(dir)) != NULL;) {
    int fd = atoi(name), type = 0;
    struct sockaddr_storage mine;
    socklen_t len = sizeof mine, type_len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 && type == SOCK_DGRAM &&
        getsockname(fd, (struct sockaddr *)&mine, &len) == 0 &&
        ferry_udp_same_address(&mine, &base))
      ferry_udp_raise_buffers(fd);
  }
  if (dir != NULL)
    g_dir_close(dir);
}

static void
set_ready(FerryIce *ice)
{
  NiceCandidate *local = NULL, *remote = NULL;

  if (ice->state != FERRY_ICE_CONNECTING)
    return;
  if (!nice_agent_get_selected_pair(ice->agent, ice->stream_id, COMPONENT, &local, &remote))
    return; /* READY always comes with a pair; wait for the next change if not */
  ice->sel_local = nice_candidate_copy(local);
  ice->sel_remote = nice_candidate_copy(remote);
  if (local->type == NICE_CANDIDATE_TYPE_RELAYED) {
    ice->sel_relay = relay_of(ice, local);
    if (ice->sel_relay == NULL || ice->sel_relay->type == NICE_RELAY_TYPE_TURN_UDP)
      raise_relay_base_buffers(local);
  }
  ice->state = FERRY_ICE_READY;
  ice->ready_us = g_get_monotonic_time();
  cancel_source(&ice->timer);
  schedule_dispatch(ice);
}

static gboolean
timeout_cb(gpointer data)
{
  FerryIce *ice = data;

  g_source_unref(ice->timer);
  ice->timer = NULL;
  set_failed(ice, TRUE);
  return G_SOURCE_REMOVE;
}

static void
on_new_candidate(NiceAgent *agent, NiceCandidate *cand, gpointer data)
{
  FerryIce *ice = data;
  char *line;

  if (cand->stream_id != ice->stream_id || cand->component_id != COMPONENT ||
      cand->type == NICE_CANDIDATE_TYPE_PEER_REFLEXIVE ||
      cand->transport != NICE_CANDIDATE_TRANSPORT_UDP)
    return;
  line = nice_agent_generate_local_candidate_sdp(agent, cand);
  ice->n_local[type_from_nice(cand->type)]++;
  g_queue_push_tail(&ice->out, line);
  schedule_dispatch(ice);
}

static void
on_gathering_done(NiceAgent *agent, guint stream_id, gpointer data)
{
  FerryIce *ice = data;

  if (stream_id != ice->stream_id)
    return;
  ice->gathering_done = TRUE;
  /* Not one local candidate (a TURN server that refused us with
   * force_relay): nothing can ever work, so say so now rather than at the
   * timeout. libnice itself waits for the timeout in trickle mode. */
  if (ice->n_local[0] + ice->n_local[1] + ice->n_local[2] + ice->n_local[3] == 0)
    set_failed(ice, FALSE);
  schedule_dispatch(ice);
}

static void
on_state_changed(NiceAgent *agent, guint stream_id, guint component_id, guint state, gpointer data)
{
  FerryIce *ice = data;

  if (stream_id != ice->stream_id || component_id != COMPONENT)
    return;
  g_debug("ICE component state: %s", nice_component_state_to_string(state));
  if (state == NICE_COMPONENT_STATE_READY)
    set_ready(ice);
  else if (state == NICE_COMPONENT_STATE_FAILED)
    set_failed(ice, FALSE);
}

static void
on_nice_recv(NiceAgent *agent, guint stream_id, guint component_id, guint len, gchar *buf,
             gpointer data)
{
  FerryIce *ice = data;

  if (!ice->closed && !ice->taken && ice->on_recv != NULL)
    ice->on_recv(ice, (const guint8 *)buf, len, ice->recv_data);
}

static GInetSocketAddress *
to_gaddress(const NiceAddress *addr)
{
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  nice_address_copy_to_sockaddr(addr, (struct sockaddr *)&ss);
  return G_INET_SOCKET_ADDRESS(g_socket_address_new_from_native(
      &ss, nice_address_ip_version(addr) == 6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in)));
}

static gboolean
is_loopback(const NiceAddress *addr)
{
  g_autoptr(GInetSocketAddress) a = to_gaddress(addr);
  return g_inet_address_get_is_loopback(g_inet_socket_address_get_address(a));
}

/* Neither loopback nor link-local: an address peers can meet on. */
static gboolean
is_routable(const NiceAddress *addr)
{
  g_autoptr(GInetSocketAddress) a = to_gaddress(addr);
  GInetAddress *ip = g_inet_socket_address_get_address(a);
  return !g_inet_address_get_is_loopback(ip) && !g_inet_address_get_is_link_local(ip);
}

/* Whether a STUN or TURN server's host (an address or a name) is this
 * machine's loopback in the IP version given (4 or 6). */
static gboolean
host_is_loopback(const char *host, int version)
{
  g_autoptr(GInetAddress) a = g_inet_address_new_from_string(host);

  if (a == NULL)
    return g_ascii_strcasecmp(host, "localhost") == 0;
  return g_inet_address_get_is_loopback(a) &&
         g_inet_address_get_family(a) ==
             (version == 6 ? G_SOCKET_FAMILY_IPV6 : G_SOCKET_FAMILY_IPV4);
}

/* Whether our loopback addresses of this IP version are gathered. */
static gboolean
loopback_wanted(FerryIce *ice, int version, gboolean routable)
{
  return !routable || (version == 6 ? ice->server_lo6 : ice->server_lo4);
}

/* Local addresses to gather on. libnice gathers every non-loopback address
 * by itself, but only as long as nobody calls
 * nice_agent_add_local_address(); adding 127.0.0.1 then limits it to that
 * one. So we enumerate the addresses ourselves and add them; the family
 * filters go the same way.
 *
 * Loopback is added only where it can help. A loopback candidate reaches
 * only a peer on this very host (network namespace), which also has our
 * other addresses, and the kernel carries those over the loopback device
 * just the same. Towards any other host its pairs cannot work, and they cost
 * about 2 s: libnice 0.1.21 gives a host candidate the local preference of
 * its address's position in nice_interfaces_get_local_ips(), which lists
 * loopback last, so these pairs outrank every real one; it holds READY back
 * while a pair ranked above the nominated one is still in progress; and
 * their checks fail only when the retransmissions run out, as a socket
 * bound to 127.0.0.1 is pinned to the loopback device (IP_UNICAST_IF) and
 * its sends to other hosts vanish without an error. So loopback is added
 * when the machine has no other address to meet on (no address of an
 * allowed family that is neither loopback nor link-local) and, per IP
 * version, when a STUN or UDP TURN server is on the loopback: libnice pins
 * every host socket to its interface the same way, so only a loopback one
 * reaches such a server. */
static guint
add_local_addresses(FerryIce *ice)
{
  GList *ips = nice_interfaces_get_local_ips(ice->include_loopback);
  GArray *addrs = g_array_new(FALSE, FALSE, sizeof(NiceAddress));
  gboolean routable = FALSE;
  guint added = 0;

  for (GList *l = ips; l != NULL; l = l->next) {
    NiceAddress addr;
    int version;

    if (!nice_address_set_from_string(&addr, l->data))
      continue;
    version = nice_address_ip_version(&addr);
    if ((version == 4 && !ice->ipv4) || (version == 6 && !ice->ipv6))
      continue;
    routable = routable || is_routable(&addr);
    g_array_append_val(addrs, addr);
  }
  g_list_free_full(ips, g_free);

  for (guint i = 0; i < addrs->len && added < NICE_CANDIDATE_MAX_LOCAL_ADDRESSES; i++) {
    NiceAddress *addr = &g_array_index(addrs, NiceAddress, i);
    int version = nice_address_ip_version(addr);

    if (is_loopback(addr)) {
      if (!loopback_wanted(ice, version, routable))
        continue;
      if (version == 6)
        ice->have_lo6 = TRUE;
      else
        ice->have_lo4 = TRUE;
    }
    nice_agent_add_local_address(ice->agent, addr);
    added++;
  }
  g_array_unref(addrs);
  return added;
}

/* A turns: server cannot be reached. With only relays allowed and every
 * one of them a TLS relay that failed, nothing is left to wait for. */
static void
on_tunnel_failed(FerryIceTlsTunnel *tunnel, gpointer data)
{
  FerryIce *ice = data;

  if (!ice->force_relay || ice->n_local[FERRY_ICE_CANDIDATE_RELAY] > 0)
    return;
  for (guint i = 0; i < ice->relays->len; i++) {
    Relay *r = ice->relays->pdata[i];
    if (r->tunnel == NULL || ferry_ice_tls_tunnel_get_error(r->tunnel) == NULL)
      return;
  }
  set_failed(ice, FALSE);
}

static gboolean
add_relays(FerryIce *ice, const FerryIceConfig *config, GError **error)
{
  for (guint i = 0; i < config->turn_servers->len; i++) {
    const FerryIceTurnServer *turn = config->turn_servers->pdata[i];
    Relay *r = g_new0(Relay, 1);

    g_ptr_array_add(ice->relays, r);
    r->name = ferry_ice_turn_server_to_string(turn);
    r->server =
        G_INET_SOCKET_ADDRESS(g_inet_socket_address_new_from_string(turn->host, turn->port));
    if (turn->transport == FERRY_ICE_TRANSPORT_TLS) {
      r->tunnel = ferry_ice_tls_tunnel_new(turn, error);
      if (r->tunnel == NULL)
        return FALSE;
      ferry_ice_tls_tunnel_set_failed_func(r->tunnel, on_tunnel_failed, ice);
      r->host = g_strdup("127.0.0.1");
      r->port = ferry_ice_tls_tunnel_get_port(r->tunnel);
      r->type = NICE_RELAY_TYPE_TURN_TCP;
    } else {
      r->host = g_strdup(turn->host);
      r->port = turn->port;
      r->type = turn->transport == FERRY_ICE_TRANSPORT_TCP ? NICE_RELAY_TYPE_TURN_TCP
                                                           : NICE_RELAY_TYPE_TURN_UDP;
    }
    if (!nice_agent_set_relay_info(ice->agent, ice->stream_id, COMPONENT, r->host, r->port,
                                   turn->username, turn->credential, r->type))
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "TURN server %s was refused by libnice; check its address", r->name);
  }
  return TRUE;
}

FerryIce *
ferry_ice_new(const FerryIceConfig *config, GError **error)
{
  FerryIce *ice;
  gboolean relay = !config->no_relay && config->turn_servers->len > 0;

  if (config->force_relay && config->no_relay) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "forcing the relay and refusing it at once leaves no path: drop one of the "
                    "two options");
    return NULL;
  }
  if (config->force_relay && !relay) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "forcing the relay needs a TURN server: give one with --turn-server or use "
                    "a signaling server that hands one out");
    return NULL;
  }
  if (!config->ipv4 && !config->ipv6) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "with both IPv4 and IPv6 turned off there is nothing to connect with: "
                    "allow at least one");
    return NULL;
  }

  ice = g_new0(FerryIce, 1);
  ice->refs = 1;
  ice->ctx = g_main_context_ref_thread_default();
  ice->force_relay = config->force_relay;
  ice->ipv4 = config->ipv4;
  ice->ipv6 = config->ipv6;
  ice->include_loopback = config->include_loopback;
  ice->timeout_ms = config->timeout_ms > 0 ? config->timeout_ms : FERRY_ICE_DEFAULT_TIMEOUT_MS;
  ice->relays = g_ptr_array_new_with_free_func(relay_free);
  g_queue_init(&ice->out);

  /* Consent freshness (RFC 7675) stays off, as it is construction-only: its
   * checks need answers that a taken-over socket no longer gives. */
  ice->agent =
      nice_agent_new_full(ice->ctx, NICE_COMPATIBILITY_RFC5245,
                          NICE_AGENT_OPTION_REGULAR_NOMINATION | NICE_AGENT_OPTION_ICE_TRICKLE);
  g_object_set(ice->agent, "controlling-mode", config->role == FERRY_ICE_CONTROLLING, "ice-tcp",
               FALSE, "ice-udp", TRUE, "upnp", FALSE, "keepalive-conncheck", FALSE, "force-relay",
               config->force_relay, NULL);
  nice_agent_set_software(ice->agent, "ferry");
  for (guint i = 0; i < config->stun_servers->len; i++) {
    const FerryIceStunServer *stun = config->stun_servers->pdata[i];
    if (i > 0) {
      g_debug("libnice uses one STUN server: ignoring %s:%u", stun->host, stun->port);
      continue;
    }
    g_object_set(ice->agent, "stun-server", stun->host, "stun-server-port", (guint)stun->port,
                 NULL);
    ice->server_lo4 = host_is_loopback(stun->host, 4);
    ice->server_lo6 = host_is_loopback(stun->host, 6);
  }
  /* A TURN server over TCP or TLS is reached from any address: libnice
   * does not pin its TCP sockets to an interface. */
  for (guint i = 0; relay && i < config->turn_servers->len; i++) {
    const FerryIceTurnServer *turn = config->turn_servers->pdata[i];
    if (turn->transport == FERRY_ICE_TRANSPORT_UDP) {
      ice->server_lo4 |= host_is_loopback(turn->host, 4);
      ice->server_lo6 |= host_is_loopback(turn->host, 6);
    }
  }

  ice->stream_id = nice_agent_add_stream(ice->agent, 1);
  nice_agent_set_stream_name(ice->agent, ice->stream_id, "application");
  nice_agent_get_local_credentials(ice->agent, ice->stream_id, &ice->ufrag, &ice->pwd);
  nice_agent_attach_recv(ice->agent, ice->stream_id, COMPONENT, ice->ctx, on_nice_recv, ice);

  g_signal_connect(ice->agent, "new-candidate-full", G_CALLBACK(on_new_candidate), ice);
  g_signal_connect(ice->agent, "candidate-gathering-done", G_CALLBACK(on_gathering_done), ice);
  g_signal_connect(ice->agent, "component-state-changed", G_CALLBACK(on_state_changed), ice);

  if (relay && !add_relays(ice, config, error)) {
    ferry_ice_free(ice);
    return NULL;
  }
  return ice;
}

void
ferry_ice_set_handlers(FerryIce *ice, FerryIceCandidateFunc on_candidate,
                       FerryIceOutcomeFunc on_outcome, gpointer user_data)
{
  ice->on_candidate = on_candidate;
  ice->on_outcome = on_outcome;
  ice->user_data = user_data;
}

void
ferry_ice_set_recv_handler(FerryIce *ice, FerryIceRecvFunc on_recv, gpointer user_data)
{
  ice->on_recv = on_recv;
  ice->recv_data = user_data;
}

const char *
ferry_ice_get_local_ufrag(FerryIce *ice)
{
  return ice->ufrag;
}

const char *
ferry_ice_get_local_pwd(FerryIce *ice)
{
  return ice->pwd;
}

FerryIceState
ferry_ice_get_state(FerryIce *ice)
{
  return ice->state;
}

/* The peer's loopback candidates name this host: they can lead to the peer
 * only when it shares this host, and then it has our other addresses too.
 * Unless we gathered loopback of that IP version ourselves (see
 * add_local_addresses()), they are dropped; their checks would go to our
 * own loopback and, ranked first, hold READY back until they fail. Relayed
 * candidates stay: a TURN server here may relay from 127.0.0.1. Returns
 * what is left of list. */
static GSList *
drop_unreachable_loopback(FerryIce *ice, GSList *list)
{
  GSList *l = list;

  while (l != NULL) {
    NiceCandidate *cand = l->data;
    GSList *next = l->next;
    int version = nice_address_ip_version(&cand->addr);

    if (cand->type != NICE_CANDIDATE_TYPE_RELAYED && is_loopback(&cand->addr) &&
        !(version == 6 ? ice->have_lo6 : ice->have_lo4)) {
      char ip[NICE_ADDRESS_STRING_LEN];
      nice_address_to_string(&cand->addr, ip);
      g_debug("ignoring the other peer's loopback ICE candidate %s: we have an address it can "
              "reach instead",
              ip);
      nice_candidate_free(cand);
      list = g_slist_delete_link(list, l);
    }
    l = next;
  }
  return list;
}

/* Hands what the peer sent to libnice once both the gathering has started
 * and the peer's credentials are known: credentials first, then the
 * candidates in the order they came, then end-of-candidates. */
static void
apply_remote(FerryIce *ice)
{
  if (ice->state != FERRY_ICE_CONNECTING || ice->remote_ufrag == NULL)
    return;
  if (!ice->remote_applied) {
    nice_agent_set_remote_credentials(ice->agent, ice->stream_id, ice->remote_ufrag,
                                      ice->remote_pwd);
    ice->remote_applied = TRUE;
  }
  if (ice->pending != NULL) {
    GSList *list = drop_unreachable_loopback(ice, g_slist_reverse(ice->pending));
    ice->pending = NULL;
    if (list != NULL)
      nice_agent_set_remote_candidates(ice->agent, ice->stream_id, COMPONENT, list);
    g_slist_free_full(list, (GDestroyNotify)nice_candidate_free);
  }
  if (ice->remote_eoc && !ice->remote_eoc_applied) {
    ice->remote_eoc_applied = TRUE;
    nice_agent_peer_candidate_gathering_done(ice->agent, ice->stream_id);
  }
}

gboolean
ferry_ice_start(FerryIce *ice, GError **error)
{
  if (ice->state != FERRY_ICE_NEW)
    return ferry_set_error(error, FERRY_ERR_STATE, "ICE was started already");
  if (add_local_addresses(ice) == 0)
    return ferry_set_error(
        error, FERRY_ERR_IO, "no usable network address (%s%s%s): connect to a network%s",
        ice->ipv4 ? "IPv4" : "", ice->ipv4 && ice->ipv6 ? ", " : "", ice->ipv6 ? "IPv6" : "",
        ice->include_loopback ? "" : ", or allow loopback for a local test");
  ice->state = FERRY_ICE_CONNECTING;
  ice->start_us = g_get_monotonic_time();
  if (!nice_agent_gather_candidates(ice->agent, ice->stream_id)) {
    ice->state = FERRY_ICE_FAILED;
    return ferry_set_error(error, FERRY_ERR_IO,
                           "cannot open a UDP socket on any local address: check the network "
                           "settings and firewall of this machine");
  }
  ice->timer = g_timeout_source_new(ice->timeout_ms);
  g_source_set_callback(ice->timer, timeout_cb, ice, NULL);
  g_source_attach(ice->timer, ice->ctx);
  apply_remote(ice);
  return TRUE;
}

static gboolean
valid_ice_chars(const char *s, gsize min, gsize max)
{
  gsize n = strlen(s);
  if (n < min || n > max)
    return FALSE;
  for (; *s != '\0'; s++)
    if (!g_ascii_isalnum(*s) && *s != '+' && *s != '/')
      return FALSE;
  return TRUE;
}

gboolean
ferry_ice_set_remote_credentials(FerryIce *ice, const char *ufrag, const char *pwd, GError **error)
{
  if (ufrag == NULL || pwd == NULL || !valid_ice_chars(ufrag, 4, 256) ||
      !valid_ice_chars(pwd, 22, 256))
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "the other peer's ICE credentials are malformed (ufrag: 4-256, "
                           "password: 22-256 characters from A-Z a-z 0-9 + /): is it a "
                           "compatible ferry?");
  if (ice->remote_ufrag != NULL) {
    if (strcmp(ice->remote_ufrag, ufrag) == 0 && strcmp(ice->remote_pwd, pwd) == 0)
      return TRUE;
    return ferry_set_error(error, FERRY_ERR_STATE,
                           "the other peer changed its ICE credentials (an ICE restart), which "
                           "ferry does not do: start the transfer again");
  }
  ice->remote_ufrag = g_strdup(ufrag);
  ice->remote_pwd = g_strdup(pwd);
  apply_remote(ice);
  return TRUE;
}

static gboolean
all_digits(const char *s)
{
  if (*s == '\0')
    return FALSE;
  for (; *s != '\0'; s++)
    if (!g_ascii_isdigit(*s))
      return FALSE;
  return TRUE;
}

/* Checks a candidate line's shape before libnice's parser sees it (that
 * parser trusts its input): "candidate:FOUNDATION 1 UDP|TCP PRIORITY ADDR
 * PORT typ TYPE [NAME VALUE]...". Sets *tcp for a TCP candidate. */
static gboolean
check_candidate(const char *body, gboolean *tcp, const char **why)
{
  g_auto(GStrv) tok = g_strsplit(body, " ", -1);
  guint n = g_strv_length(tok);
  g_autoptr(GInetAddress) addr = NULL;

  if (n < 8 || (n - 8) % 2 != 0) {
    *why = "wrong number of fields";
    return FALSE;
  }
  if (!valid_ice_chars(tok[0], 1, 32)) {
    *why = "bad foundation";
    return FALSE;
  }
  if (strcmp(tok[1], "1") != 0) {
    *why = "component is not 1";
    return FALSE;
  }
  if (g_ascii_strcasecmp(tok[2], "UDP") == 0)
    *tcp = FALSE;
  else if (g_ascii_strncasecmp(tok[2], "TCP", 3) == 0)
    *tcp = TRUE;
  else {
    *why = "transport is neither UDP nor TCP";
    return FALSE;
  }
  if (!all_digits(tok[3]) || strlen(tok[3]) > 10 || g_ascii_strtoull(tok[3], NULL, 10) == 0 ||
      g_ascii_strtoull(tok[3], NULL, 10) > G_MAXUINT32) {
    *why = "bad priority";
    return FALSE;
  }
  addr = g_inet_address_new_from_string(tok[4]);
  if (addr == NULL) {
    *why = "the address is not an IP address";
    return FALSE;
  }
  if (!all_digits(tok[5]) || strlen(tok[5]) > 5 || g_ascii_strtoull(tok[5], NULL, 10) > 65535 ||
      (!*tcp && g_ascii_strtoull(tok[5], NULL, 10) == 0)) {
    *why = "bad port";
    return FALSE;
  }
  if (strcmp(tok[6], "typ") != 0 ||
      (strcmp(tok[7], "host") != 0 && strcmp(tok[7], "srflx") != 0 &&
       strcmp(tok[7], "prflx") != 0 && strcmp(tok[7], "relay") != 0)) {
    *why = "bad candidate type";
    return FALSE;
  }
  for (guint i = 8; i < n; i += 2) {
    if (strcmp(tok[i], "raddr") == 0) {
      g_autoptr(GInetAddress) raddr = g_inet_address_new_from_string(tok[i + 1]);
      if (raddr == NULL) {
        *why = "raddr is not an IP address";
        return FALSE;
      }
    } else if (strcmp(tok[i], "rport") == 0) {
      if (!all_digits(tok[i + 1]) || strlen(tok[i + 1]) > 5 ||
          g_ascii_strtoull(tok[i + 1], NULL, 10) > 65535) {
        *why = "bad rport";
        return FALSE;
      }
    }
  }
  return TRUE;
}

gboolean
ferry_ice_add_remote_candidate(FerryIce *ice, const char *candidate, GError **error)
{
  g_autofree char *line = NULL;
  const char *body;
  const char *why = NULL;
  gboolean tcp = FALSE;
  NiceCandidate *cand;

  if (ice->state == FERRY_ICE_READY || ice->state == FERRY_ICE_FAILED)
    return TRUE;
  if (candidate == NULL || strlen(candidate) > FERRY_ICE_MAX_CANDIDATE_LEN)
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "a remote ICE candidate is missing or longer than %d bytes: is the "
                           "other peer a compatible ferry?",
                           FERRY_ICE_MAX_CANDIDATE_LEN);
  line = g_strstrip(g_strdup(candidate));
  body = g_str_has_prefix(line, "a=") ? line + 2 : line;
  if (!g_str_has_prefix(body, "candidate:") || !check_candidate(body + 10, &tcp, &why))
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "malformed remote ICE candidate '%s' (%s): is the other peer a "
                           "compatible ferry?",
                           line, why != NULL ? why : "no candidate: prefix");
  if (tcp) {
    g_debug("ignoring remote ICE-TCP candidate '%s'", line);
    return TRUE;
  }
  if (ice->n_remote_total >= FERRY_ICE_MAX_REMOTE)
    return ferry_set_error(error, FERRY_ERR_TOO_LONG,
                           "the other peer sent more than %d ICE candidates: is it a compatible "
                           "ferry?",
                           FERRY_ICE_MAX_REMOTE);
  {
    g_autofree char *sdp = g_strconcat("a=", body, NULL);
    cand = nice_agent_parse_remote_candidate_sdp(ice->agent, ice->stream_id, sdp);
  }
  if (cand == NULL)
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "malformed remote ICE candidate '%s': is the other peer a compatible "
                           "ferry?",
                           line);
  ice->n_remote_total++;
  ice->n_remote[type_from_nice(cand->type)]++;
  ice->pending = g_slist_prepend(ice->pending, cand);
  apply_remote(ice);
  return TRUE;
}

void
ferry_ice_remote_end_of_candidates(FerryIce *ice)
{
  ice->remote_eoc = TRUE;
  apply_remote(ice);
}

/* The configured TURN server a local relay candidate came from. Only the
 * agent's own candidate knows it: libnice 0.1.21's nice_candidate_copy()
 * drops the link (and nice_candidate_relay_address() then crashes). */
static const Relay *
relay_of(FerryIce *ice, const NiceCandidate *cand)
{
  NiceAddress server;
  char ip[NICE_ADDRESS_STRING_LEN];

  nice_candidate_relay_address(cand, &server);
  nice_address_to_string(&server, ip);
  for (guint i = 0; i < ice->relays->len; i++) {
    const Relay *r = ice->relays->pdata[i];
    if (r->port == nice_address_get_port(&server) && g_ascii_strcasecmp(r->host, ip) == 0)
      return r;
  }
  /* A TURN server given by name: libnice resolved it, we did not. */
  return ice->relays->len == 1 ? ice->relays->pdata[0] : NULL;
}

gboolean
ferry_ice_get_path(FerryIce *ice, FerryIcePath *path, GError **error)
{
  memset(path, 0, sizeof *path);
  if (ice->state != FERRY_ICE_READY)
    return ferry_set_error(error, FERRY_ERR_STATE, "ICE has not found a path yet");
  path->local_type = type_from_nice(ice->sel_local->type);
  path->remote_type = type_from_nice(ice->sel_remote->type);
  path->local = to_gaddress(&ice->sel_local->addr);
  path->remote = to_gaddress(&ice->sel_remote->addr);
  path->relayed = path->local_type == FERRY_ICE_CANDIDATE_RELAY ||
                  path->remote_type == FERRY_ICE_CANDIDATE_RELAY;
  path->direct_socket = path->local_type != FERRY_ICE_CANDIDATE_RELAY &&
                        ice->sel_local->transport == NICE_CANDIDATE_TRANSPORT_UDP;
  if (ice->sel_relay != NULL) {
    path->turn_server = g_strdup(ice->sel_relay->name);
    if (ice->sel_relay->server != NULL)
      path->turn_address = g_object_ref(ice->sel_relay->server);
  }
  path->elapsed_ms = (ice->ready_us - ice->start_us) / 1000;
  return TRUE;
}

void
ferry_ice_path_clear(FerryIcePath *path)
{
  g_clear_object(&path->local);
  g_clear_object(&path->remote);
  g_clear_object(&path->turn_address);
  g_clear_pointer(&path->turn_server, g_free);
}

static char *
address_string(GInetSocketAddress *a)
{
  g_autofree char *ip = g_inet_address_to_string(g_inet_socket_address_get_address(a));
  gboolean v6 = strchr(ip, ':') != NULL;
  return g_strdup_printf("%s%s%s:%u", v6 ? "[" : "", ip, v6 ? "]" : "",
                         g_inet_socket_address_get_port(a));
}

char *
ferry_ice_path_to_string(const FerryIcePath *path)
{
  g_autofree char *l = address_string(path->local);
  g_autofree char *r = address_string(path->remote);
  g_autofree char *via =
      path->turn_server != NULL ? g_strdup_printf(" via %s", path->turn_server) : g_strdup("");

  return g_strdup_printf("%s%s: %s %s <-> %s %s (UDP)", path->relayed ? "relayed" : "direct", via,
                         ferry_ice_candidate_type_to_string(path->local_type), l,
                         ferry_ice_candidate_type_to_string(path->remote_type), r);
}

/* Makes libnice stop watching the component's sockets. A NULL recv
 * callback alone is not enough: libnice 0.1.21 keeps each socket's GSource
 * on the component's context (nice_agent_attach_recv() moves the sources
 * only when the context changes) and, with no callback, its handler
 * (component_io_cb() in agent.c) reads nothing and stays: while a datagram
 * waits, the caller's context spins at full CPU and starves its idle
 * sources. Once the caller stops reading the taken socket (its QUIC
 * connection closed), any late packet (a TURN server's answer to libnice's
 * own retransmissions, a peer's check) waits there for good. So the
 * sources move to a context of their own that nobody runs; libnice's timers
 * stay on ice->ctx, and the agent keeps a reference to the new context. */
static void
park_sockets(FerryIce *ice)
{
  GMainContext *parked = g_main_context_new();

  nice_agent_attach_recv(ice->agent, ice->stream_id, COMPONENT, parked, NULL, NULL);
  g_main_context_unref(parked);
}

GSocket *
ferry_ice_take_socket(FerryIce *ice, GSocketAddress **remote, GError **error)
{
  g_autoptr(GSocket) theirs = NULL;
  GSocket *mine;
  GError *local = NULL;
  int fd;

  if (remote != NULL)
    *remote = NULL;
  if (ice->state != FERRY_ICE_READY) {
    ferry_set_error(error, FERRY_ERR_STATE, "ICE has not found a path yet");
    return NULL;
  }
  if (ice->taken) {
    ferry_set_error(error, FERRY_ERR_STATE, "the ICE socket was taken already");
    return NULL;
  }
  if (ice->sel_local->type == NICE_CANDIDATE_TYPE_RELAYED ||
      ice->sel_local->transport != NICE_CANDIDATE_TRANSPORT_UDP)
    return NULL;
  theirs = nice_agent_get_selected_socket(ice->agent, ice->stream_id, COMPONENT);
  if (theirs == NULL)
    return NULL;
  fd = fcntl(g_socket_get_fd(theirs), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    ferry_set_error(error, FERRY_ERR_IO, "cannot duplicate the ICE socket: %s", g_strerror(e));
    return NULL;
  }
  mine = g_socket_new_from_fd(fd, &local);
  if (mine == NULL) {
    close(fd);
    ferry_set_error(error, FERRY_ERR_IO, "cannot use the ICE socket: %s", local->message);
    g_error_free(local);
    return NULL;
  }
  park_sockets(ice);
  ice->taken = TRUE;
  if (remote != NULL)
    *remote = G_SOCKET_ADDRESS(to_gaddress(&ice->sel_remote->addr));
  return mine;
}

static gboolean
check_sendable(FerryIce *ice, GError **error)
{
  if (ice->state != FERRY_ICE_READY)
    return ferry_set_error(error, FERRY_ERR_STATE, "cannot send: ICE has not found a path yet");
  if (ice->taken)
    return ferry_set_error(error, FERRY_ERR_STATE,
                           "cannot send through ICE: its socket was taken over");
  return TRUE;
}

gboolean
ferry_ice_send(FerryIce *ice, const void *buf, gsize len, GError **error)
{
  if (!check_sendable(ice, error))
    return FALSE;
  if (len > G_MAXUINT16 ||
      nice_agent_send(ice->agent, ice->stream_id, COMPONENT, (guint)len, buf) != (gint)len)
    return ferry_set_error(error, FERRY_ERR_IO,
                           "cannot send a %zu-byte datagram to the other peer through ICE", len);
  return TRUE;
}

gint
ferry_ice_send_batch(FerryIce *ice, const GOutputVector *datagrams, guint n, GError **error)
{
  g_autofree NiceOutputMessage *msgs = NULL;
  GError *local = NULL;
  gint sent;

  if (!check_sendable(ice, error))
    return -1;
  if (n == 0)
    return 0;
  msgs = g_new(NiceOutputMessage, n);
  for (guint i = 0; i < n; i++) {
    msgs[i].buffers = (GOutputVector *)&datagrams[i];
    msgs[i].n_buffers = 1;
  }
  sent = nice_agent_send_messages_nonblocking(ice->agent, ice->stream_id, COMPONENT, msgs, n, NULL,
                                              &local);
  if (sent < 0) {
    if (g_error_matches(local, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      g_error_free(local);
      return 0;
    }
    ferry_set_error(error, FERRY_ERR_IO, "cannot send to the other peer through ICE: %s",
                    local != NULL ? local->message : "unknown error");
    g_clear_error(&local);
    return -1;
  }
  return sent;
}

/* What outlives a freed FerryIce: the agent until libnice has released the
 * TURN allocations, then the TLS tunnels until their connections are gone. */
typedef struct {
  NiceAgent *agent;
  GPtrArray *relays;
  guint tunnels_left;
  GDestroyNotify done;
  gpointer done_data;
} Closer;

static void
closer_tunnel_done(gpointer data)
{
  Closer *c = data;

  if (--c->tunnels_left > 0)
    return;
  g_ptr_array_unref(c->relays);
  if (c->done != NULL)
    c->done(c->done_data);
  g_free(c);
}

static void
on_agent_closed(GObject *source, GAsyncResult *res, gpointer data)
{
  Closer *c = data;

  g_object_unref(c->agent);
  c->agent = NULL;
  /* One extra count so that tunnels finishing at once do not end it early. */
  c->tunnels_left = 1;
  for (guint i = 0; i < c->relays->len; i++) {
    Relay *r = c->relays->pdata[i];
    if (r->tunnel != NULL) {
      c->tunnels_left++;
      ferry_ice_tls_tunnel_free(g_steal_pointer(&r->tunnel), closer_tunnel_done, c);
    }
  }
  closer_tunnel_done(c);
}

static void
discard_recv(NiceAgent *agent, guint stream_id, guint component_id, guint len, gchar *buf,
             gpointer data)
{
}

void
ferry_ice_free_full(FerryIce *ice, GDestroyNotify done, gpointer done_data)
{
  Closer *c;

  if (ice == NULL) {
    if (done != NULL)
      done(done_data);
    return;
  }
  ice->closed = TRUE;
  cancel_source(&ice->dispatch);
  cancel_source(&ice->timer);
  g_signal_handlers_disconnect_by_data(ice->agent, ice);
  /* libnice must go on reading to see the TURN servers' answers to its
   * deallocations, but ice is gone: drop what still comes. A taken socket
   * stays the caller's (the deallocations then go unanswered and libnice
   * gives up on them after about two seconds). */
  if (!ice->taken)
    nice_agent_attach_recv(ice->agent, ice->stream_id, COMPONENT, ice->ctx, discard_recv, NULL);

  /* The tunnels outlive ice (libnice needs them to deallocate). */
  for (guint i = 0; i < ice->relays->len; i++) {
    Relay *r = ice->relays->pdata[i];
    if (r->tunnel != NULL)
      ferry_ice_tls_tunnel_set_failed_func(r->tunnel, NULL, NULL);
  }

  c = g_new0(Closer, 1);
  c->agent = g_steal_pointer(&ice->agent);
  c->relays = g_steal_pointer(&ice->relays);
  c->done = done;
  c->done_data = done_data;
  nice_agent_close_async(c->agent, on_agent_closed, c);
  ice_unref(ice);
}

void
ferry_ice_free(FerryIce *ice)
{
  ferry_ice_free_full(ice, NULL, NULL);
}
