/* TURN for `ferry serve`: the TURN server URLs it hands to peers and the
 * short-lived credentials it mints for them.
 *
 * ferry relays nothing itself: coturn does, configured with
 * `use-auth-secret` and `static-auth-secret=SECRET` (the "TURN REST API"
 * scheme). ferry and coturn share SECRET; a credential is
 *   username   = "EXPIRY:PEERID"   (EXPIRY: unix time when it runs out)
 *   credential = base64(HMAC-SHA1(SECRET, username))
 * and coturn accepts it until EXPIRY without ever talking to ferry. */
#ifndef FERRY_SERVER_TURN_H
#define FERRY_SERVER_TURN_H

#include <glib.h>

#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_TURN_DEFAULT_PORT     3478
#define FERRY_TURN_DEFAULT_TLS_PORT 5349
#define FERRY_TURN_DEFAULT_TTL      86400
#define FERRY_TURN_MIN_TTL          60
#define FERRY_TURN_MAX_TTL          (7 * 86400)
#define FERRY_TURN_MAX_PEER_ID      128

typedef enum {
  FERRY_TURN_TRANSPORT_DEFAULT = 0, /* no ?transport=: UDP for turn:, TCP for turns: */
  FERRY_TURN_TRANSPORT_UDP,
  FERRY_TURN_TRANSPORT_TCP,
} FerryTurnTransport;

/* One TURN server URL (RFC 7065), as `--turn-server` accepts it:
 *   turn:HOST[:PORT][?transport=udp|tcp]    (default port 3478)
 *   turns:HOST[:PORT][?transport=tcp]       (TLS, default port 5349)
 * HOST is a DNS name, an IPv4 address or an IPv6 address in brackets. */
typedef struct {
  gboolean secure; /* turns: */
  char *host;      /* lower case; an IPv6 address without its brackets */
  guint16 port;    /* as written, or the default for the scheme */
  FerryTurnTransport transport;
} FerryTurnUrl;

/* Parses text into *url (which the caller clears with
 * ferry_turn_url_clear(), also after a failure). Returns FALSE with
 * FERRY_ERROR_INVALID and a message naming the URL and what to write
 * instead. */
gboolean ferry_turn_url_parse(const char *text, FerryTurnUrl *url, GError **error);

/* Frees what *url holds and zeroes it. */
void ferry_turn_url_clear(FerryTurnUrl *url);

/* The URL in one canonical form, always with its port:
 * "turn:turn.example.org:3478?transport=udp", "turns:[2001:db8::1]:5349".
 * The caller frees it with g_free(). */
char *ferry_turn_url_to_string(const FerryTurnUrl *url);

/* base64(HMAC-SHA1(secret, username)): the password coturn expects for
 * username under `use-auth-secret`. The caller frees it with g_free().
 * Returns NULL with FERRY_ERROR_CRYPTO if GnuTLS refuses HMAC-SHA1. */
char *ferry_turn_password(const char *secret, const char *username, GError **error);

/* Everything needed to mint credentials: the shared secret, their
 * lifetime and the URLs of the TURN servers that share the secret. */
typedef struct _FerryTurnConfig FerryTurnConfig;

/* A config with no URL yet. secret must not be empty; ttl (seconds) must
 * lie in [FERRY_TURN_MIN_TTL, FERRY_TURN_MAX_TTL]. Returns NULL with
 * FERRY_ERROR_INVALID otherwise. Free with ferry_turn_config_free(). */
FerryTurnConfig *ferry_turn_config_new(const char *secret, guint ttl, GError **error);

/* Parses url (see ferry_turn_url_parse()) and adds it to the list handed
 * to peers. Returns FALSE with *error set if it is not a valid URL. */
gboolean ferry_turn_config_add_url(FerryTurnConfig *config, const char *url, GError **error);

/* How many URLs were added. */
guint ferry_turn_config_get_n_urls(const FerryTurnConfig *config);

/* Wipes the secret and frees the config. NULL is a no-op. */
void ferry_turn_config_free(FerryTurnConfig *config);

/* What a peer gets: the fields of a WebRTC RTCIceServer plus the TTL, so
 * the signaling layer can send it as {urls, username, credential, ttl}. */
typedef struct {
  char **urls;      /* NULL-terminated, canonical form */
  char *username;   /* "EXPIRY:PEERID" */
  char *credential; /* base64(HMAC-SHA1(secret, username)) */
  guint ttl;        /* seconds from minting to EXPIRY */
  gint64 expires;   /* EXPIRY, unix time */
} FerryTurnCredentials;

/* Mints credentials for peer_id valid from now_unix (seconds since the
 * epoch, normally g_get_real_time() / G_USEC_PER_SEC) for the config's
 * TTL. peer_id is 1 to FERRY_TURN_MAX_PEER_ID characters from
 * [A-Za-z0-9._~-]. Returns NULL with FERRY_ERROR_INVALID for a bad
 * peer_id, FERRY_ERROR_STATE if the config has no URL, or
 * FERRY_ERROR_CRYPTO. Free with ferry_turn_credentials_free(). */
FerryTurnCredentials *ferry_turn_config_mint(const FerryTurnConfig *config, const char *peer_id,
                                             gint64 now_unix, GError **error);

/* Frees credentials (NULL is a no-op). */
void ferry_turn_credentials_free(FerryTurnCredentials *creds);

G_END_DECLS

#endif
