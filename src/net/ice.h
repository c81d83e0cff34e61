/* ICE for ferry: a full RFC 8445 agent (libnice) with trickle, wrapped for
 * the connection layer.
 *
 * A FerryIce finds a working path between two peers. Each side creates one
 * (the sender controlling, the receiver controlled), sends its credentials
 * and, one by one, its candidates to the other over the signaling channel,
 * and feeds in what the other sends, in any order. The outcome arrives once:
 * READY with the selected pair, or FAILED with a message for the user. The
 * data path then either takes the UDP socket over (direct pairs) or sends
 * and receives through the agent (relayed pairs), so a QUIC connection can
 * run over either.
 *
 * Everything runs on the thread-default GMainContext of the thread that
 * called ferry_ice_new(); call every function from that thread. Callbacks
 * never run inside a ferry_ice_*() call: they come from that context. */
#ifndef FERRY_NET_ICE_H
#define FERRY_NET_ICE_H

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define FERRY_ICE_DEFAULT_STUN_PORT  3478
#define FERRY_ICE_DEFAULT_TURNS_PORT 5349
#define FERRY_ICE_DEFAULT_TIMEOUT_MS 30000
#define FERRY_ICE_MAX_TURN_SERVERS   8  /* libnice's limit per component */
#define FERRY_ICE_MAX_REMOTE         64 /* remote candidates accepted per agent */
#define FERRY_ICE_MAX_CANDIDATE_LEN  512

typedef enum {
  FERRY_ICE_CONTROLLING, /* the sender: nominates the pair */
  FERRY_ICE_CONTROLLED,  /* a receiver */
} FerryIceRole;

typedef enum {
  FERRY_ICE_TRANSPORT_UDP,
  FERRY_ICE_TRANSPORT_TCP,
  FERRY_ICE_TRANSPORT_TLS, /* turns: TCP with TLS */
} FerryIceTransport;

/* One STUN server, as "HOST:PORT", "HOST" (port 3478), "[V6]:PORT" or
 * "stun:HOST[:PORT]". */
typedef struct {
  char *host; /* an IPv6 address without brackets */
  guint16 port;
} FerryIceStunServer;

/* One TURN server URL (RFC 7065 with the usual extensions):
 *   turn:[USER:PASS@]HOST[:PORT][?transport=udp|tcp]        default port 3478
 *   turns:[USER:PASS@]HOST[:PORT][?servername=NAME][&insecure=1]   TLS, 5349
 * USER and PASS may be percent-encoded (a TURN REST username "EXPIRY:ID" is
 * written EXPIRY%3AID). servername= is the name the TLS certificate must
 * carry (and the SNI sent) when HOST is an address or another name;
 * insecure=1 accepts any certificate (testing only). */
typedef struct {
  FerryIceTransport transport;
  char *host;       /* lower case; an IPv6 address without brackets */
  guint16 port;     /* as written, or the scheme's default */
  char *username;   /* NULL if the URL has none */
  char *credential; /* NULL if the URL has none */
  char *servername; /* turns: only; NULL: HOST */
  gboolean insecure;
} FerryIceTurnServer;

/* Parses a TURN URL into *turn (clear it with ferry_ice_turn_server_clear()
 * afterwards, also after a failure). Returns FALSE with FERRY_ERROR_INVALID
 * and a message naming the URL, the problem and the accepted form. */
gboolean ferry_ice_turn_server_parse(const char *url, FerryIceTurnServer *turn, GError **error);
void ferry_ice_turn_server_clear(FerryIceTurnServer *turn);

/* The URL in canonical form, with its port and without credentials:
 * "turn:127.0.0.1:3478?transport=tcp", "turns:[::1]:5349?insecure=1".
 * The caller frees it with g_free(). */
char *ferry_ice_turn_server_to_string(const FerryIceTurnServer *turn);

/* Parses a STUN server into *stun (clear with ferry_ice_stun_server_clear()).
 * Returns FALSE with FERRY_ERROR_INVALID naming the text and the accepted
 * forms. */
gboolean ferry_ice_stun_server_parse(const char *text, FerryIceStunServer *stun, GError **error);
void ferry_ice_stun_server_clear(FerryIceStunServer *stun);

/* What a FerryIce is made from. The caller embeds it: ferry_ice_config_init()
 * sets the defaults (IPv4 and IPv6, no loopback, 30 s, controlling) and
 * ferry_ice_config_clear() frees what the add functions put in it.
 * ferry_ice_new() copies what it needs. */
typedef struct {
  FerryIceRole role;
  GPtrArray *stun_servers; /* FerryIceStunServer*; libnice uses the first */
  GPtrArray *turn_servers; /* FerryIceTurnServer*, each with credentials */
  gboolean force_relay;    /* use relayed candidates only (needs a TURN server) */
  gboolean no_relay;       /* ignore every TURN server */
  gboolean ipv4;
  gboolean ipv6;
  gboolean include_loopback; /* allow 127.0.0.1 and ::1: gathered when the machine has no
                                other address, or a STUN or UDP TURN server is on them */
  guint timeout_ms;          /* from ferry_ice_start() to FAILED; 0: the default */
} FerryIceConfig;

void ferry_ice_config_init(FerryIceConfig *config);
void ferry_ice_config_clear(FerryIceConfig *config);

/* Adds a STUN server (any form ferry_ice_stun_server_parse() accepts).
 * Returns FALSE with *error set if it does not parse. */
gboolean ferry_ice_config_add_stun(FerryIceConfig *config, const char *server, GError **error);

/* Adds a TURN server from its URL. username and credential (either may be
 * NULL) replace those written in the URL; a TURN server without both is
 * refused, as is a ninth one. Returns FALSE with FERRY_ERROR_INVALID. */
gboolean ferry_ice_config_add_turn(FerryIceConfig *config, const char *url, const char *username,
                                   const char *credential, GError **error);

/* Adds the servers of a signaling server's `ice_servers`: a JSON array of
 * {"urls": [...] or "...", "username": ..., "credential": ...}. stun: and
 * turn:/turns: URLs are added; other schemes (stuns:, future ones) are
 * skipped. Returns FALSE with FERRY_ERROR_INVALID naming the entry at
 * fault; servers before it stay added. */
gboolean ferry_ice_config_add_ice_servers(FerryIceConfig *config, JsonNode *ice_servers,
                                          GError **error);

/* The same from JSON text. */
gboolean ferry_ice_config_add_ice_servers_json(FerryIceConfig *config, const char *json,
                                               GError **error);

typedef enum {
  FERRY_ICE_NEW,        /* created, ferry_ice_start() not called yet */
  FERRY_ICE_CONNECTING, /* gathering and checking */
  FERRY_ICE_READY,      /* a pair is selected: data may flow */
  FERRY_ICE_FAILED,     /* no working pair, or the timeout passed */
} FerryIceState;

typedef enum {
  FERRY_ICE_CANDIDATE_HOST,
  FERRY_ICE_CANDIDATE_SRFLX,
  FERRY_ICE_CANDIDATE_PRFLX,
  FERRY_ICE_CANDIDATE_RELAY,
} FerryIceCandidateType;

/* "host", "srflx", "prflx", "relay". */
const char *ferry_ice_candidate_type_to_string(FerryIceCandidateType type);

/* The selected pair, as ferry_ice_get_path() reports it. */
typedef struct {
  FerryIceCandidateType local_type;
  FerryIceCandidateType remote_type;
  GInetSocketAddress *local;  /* for a local relay candidate: the address on the TURN server */
  GInetSocketAddress *remote; /* where our packets go */
  gboolean relayed;           /* either candidate is a relay: a TURN server carries the data */
  gboolean
      direct_socket; /* our side sends from a plain UDP socket: ferry_ice_take_socket() works */
  char *turn_server; /* our TURN server in use (canonical URL); NULL when our side is not
                      * relayed, or with several TURN servers given by name */
  GInetSocketAddress *turn_address; /* that server's address; NULL when given by name */
  gint64 elapsed_ms; /* from ferry_ice_start() to READY */
} FerryIcePath;

void ferry_ice_path_clear(FerryIcePath *path);

/* One line for the user: "direct: host 192.0.2.2:50123 <-> srflx
 * 203.0.113.9:40000 (UDP)" or "relayed via turn:…: relay … <-> host …".
 * The caller frees it with g_free(). */
char *ferry_ice_path_to_string(const FerryIcePath *path);

typedef struct _FerryIce FerryIce;

/* A local candidate to send to the peer, as an SDP attribute line
 * ("a=candidate:1 1 UDP 2013266431 192.0.2.2 50123 typ host"); NULL once
 * all are out (end-of-candidates). Valid during the call only. */
typedef void (*FerryIceCandidateFunc)(FerryIce *ice, const char *candidate, gpointer user_data);

/* The outcome, called once: READY (see ferry_ice_get_path()) or FAILED with
 * error set (FERRY_ERROR_FAILED, valid during the call): "no working path
 * between the two peers[ within T s]: tried N local candidates (2 host, 1
 * srflx) and M remote (…); <the way out that fits>". */
typedef void (*FerryIceOutcomeFunc)(FerryIce *ice, FerryIceState state, const GError *error,
                                    gpointer user_data);

/* One datagram from the peer through the agent. data is valid during the
 * call only. */
typedef void (*FerryIceRecvFunc)(FerryIce *ice, const guint8 *data, gsize len, gpointer user_data);

/* A new agent for config (copied). Returns NULL with FERRY_ERROR_INVALID
 * for a contradictory config (force_relay without a TURN server, force_relay
 * with no_relay, neither IPv4 nor IPv6), or FERRY_ERROR_IO when a TLS relay
 * tunnel cannot listen. Free with ferry_ice_free(). */
FerryIce *ferry_ice_new(const FerryIceConfig *config, GError **error);

void ferry_ice_set_handlers(FerryIce *ice, FerryIceCandidateFunc on_candidate,
                            FerryIceOutcomeFunc on_outcome, gpointer user_data);

/* Datagrams that reach the agent go to on_recv (NULL: dropped) until the
 * socket is taken over. May be called at any time. */
void ferry_ice_set_recv_handler(FerryIce *ice, FerryIceRecvFunc on_recv, gpointer user_data);

/* This side's ICE username fragment and password, to send to the peer
 * before or with the candidates. Known from ferry_ice_new() on; owned by
 * ice. */
const char *ferry_ice_get_local_ufrag(FerryIce *ice);
const char *ferry_ice_get_local_pwd(FerryIce *ice);

/* Starts gathering (candidates then trickle out through on_candidate) and
 * the overall timeout. Returns FALSE with FERRY_ERROR_IO when no local
 * address can be used, FERRY_ERROR_STATE if called twice. */
gboolean ferry_ice_start(FerryIce *ice, GError **error);

/* The peer's credentials. Candidates that arrive before them are kept
 * until they come. Returns FALSE with FERRY_ERROR_INVALID for malformed
 * credentials (ufrag 4-256, pwd 22-256 ICE characters) or
 * FERRY_ERROR_STATE if different ones were set already (an ICE restart is
 * not supported). */
gboolean ferry_ice_set_remote_credentials(FerryIce *ice, const char *ufrag, const char *pwd,
                                          GError **error);

/* One remote candidate line, with or without the "a=" prefix. TCP
 * candidates (ICE-TCP is off) and candidates arriving after READY or
 * FAILED are ignored (returns TRUE). Returns FALSE with FERRY_ERROR_INVALID
 * for a malformed line, FERRY_ERROR_TOO_LONG past FERRY_ICE_MAX_REMOTE
 * candidates. */
gboolean ferry_ice_add_remote_candidate(FerryIce *ice, const char *candidate, GError **error);

/* The peer sent all its candidates: once every check has failed, the
 * outcome is FAILED at once instead of at the timeout. */
void ferry_ice_remote_end_of_candidates(FerryIce *ice);

FerryIceState ferry_ice_get_state(FerryIce *ice);

/* Fills *path (clear it with ferry_ice_path_clear()) with the selected pair.
 * Returns FALSE with FERRY_ERROR_STATE before READY. */
gboolean ferry_ice_get_path(FerryIce *ice, FerryIcePath *path, GError **error);

/* Hands the UDP socket of a direct pair to the caller: libnice stops
 * reading it (the recv handler falls silent) and the caller may use it from
 * any thread. Returns a new GSocket on a duplicate of the descriptor, so it
 * stays open after ferry_ice_free() (the caller unrefs it), and sets
 * *remote (may be NULL; the caller unrefs it) to the peer's address.
 * libnice keeps sending keepalives on it while ice lives, and the peer's
 * keepalives keep arriving: STUN packets, first byte 0-3, to be dropped.
 *
 * When: the controlling side may take it at READY. The controlled side
 * reaches READY as soon as it answers the nominating check, while the
 * controlling side may still need an answer to a check of its own: it is
 * safest to take the socket once the first datagram from the peer came
 * through the recv handler (proof that the peer is READY too).
 *
 * Returns NULL without an error when the pair is not direct (our side is
 * relayed, see FerryIcePath.direct_socket): use ferry_ice_send() and the
 * recv handler then. Returns NULL with FERRY_ERROR_STATE before READY or
 * when taken already, FERRY_ERROR_IO if the descriptor cannot be
 * duplicated. */
GSocket *ferry_ice_take_socket(FerryIce *ice, GSocketAddress **remote, GError **error);

/* Sends one datagram to the peer through the agent (any pair, relayed or
 * not, until the socket is taken). Unlike the rest of this API, the two
 * send functions may be called from another thread (the QUIC I/O thread of
 * a relayed pair) once READY was reported and until ferry_ice_free():
 * libnice serialises its sends under the agent lock, and the state they
 * check no longer changes after READY. Returns FALSE with FERRY_ERROR_STATE
 * when not READY or taken, FERRY_ERROR_IO when libnice cannot send it
 * (a TURN-TCP connection that dropped). */
gboolean ferry_ice_send(FerryIce *ice, const void *buf, gsize len, GError **error);

/* Sends up to n datagrams without blocking. Returns how many went out
 * (0 when the socket would block; try again later), or -1 with *error set
 * as ferry_ice_send() does. */
gint ferry_ice_send_batch(FerryIce *ice, const GOutputVector *datagrams, guint n, GError **error);

/* Frees ice; no callback runs afterwards. TURN allocations are released
 * in the background: the libnice agent lives on until the TURN servers
 * answered (or timed out) on ice's main context, so keep iterating it.
 * done (may be NULL) is called there when everything is gone. NULL ice is a
 * no-op. */
void ferry_ice_free_full(FerryIce *ice, GDestroyNotify done, gpointer done_data);
void ferry_ice_free(FerryIce *ice);

G_END_DECLS

#endif
