/* `ferry serve`: the rendezvous server.
 *
 * One libsoup server on one port: the WebSocket signaling endpoint /v1,
 * the HTTP relay /r/NAME, /health and /metrics; beside it the STUN
 * responder. Signaling matches a sender with its receivers by nameplate
 * and relays their messages; it never sees file bytes or the words of a
 * code. The HTTP relay (off by default) streams one plain-HTTP upload to
 * one download for receivers who have only a browser or curl. */
#ifndef FERRY_SERVER_H
#define FERRY_SERVER_H

#include <glib.h>

#include <ferry/error.h>

typedef struct {
  char *listen;   /* "HOST:PORT", "[::]:PORT" or ":PORT" */
  char *tls_cert; /* PEM files: both set → wss/https */
  char *tls_key;
  int stun_port;                /* UDP port of the STUN responder; -1: off */
  char **turn_servers;          /* turn:/turns: URLs handed to peers */
  char *turn_secret;            /* coturn static-auth-secret */
  int turn_cred_ttl;            /* seconds */
  int session_ttl;              /* seconds a session may live */
  int code_ttl;                 /* seconds a nameplate waits for receivers */
  guint max_receivers;          /* per sender */
  guint max_sessions;           /* live sessions (this instance's senders) */
  guint max_connections;        /* WebSocket connections */
  guint max_connections_per_ip; /* held at once by one client address */
  guint max_message_bytes;
  double ip_connect_rate; /* connections per IP per minute; 0: no limit */
  double ip_session_rate; /* sessions created per IP per minute */
  double ip_join_rate;    /* joins per IP per minute; a failed join costs 5 */
  double message_rate;    /* messages per connection per second */
  int idle_timeout;       /* seconds without a message before a close */
  gboolean trust_proxy;   /* take the client address from X-Forwarded-For */
  char *store;            /* NULL/"memory" or "redis://HOST:PORT" */
  int drain_timeout;      /* seconds SIGTERM waits for clients to leave */
  int reconnect_grace;    /* seconds a disconnected member may "resume"; 0: off */
  /* HTTP relay (/r/NAME): off unless relay_secret is set or relay_anonymous */
  char *relay_secret;        /* uploads need it (Bearer or ?token=) */
  gboolean relay_anonymous;  /* uploads need no secret */
  int relay_ttl;             /* seconds an upload waits for its downloader */
  int relay_idle_timeout;    /* seconds a relay may move no byte once downloading */
  guint64 relay_window;      /* bytes held in memory per relay */
  guint64 relay_max_size;    /* largest file relayed; 0: no limit */
  guint relay_max;           /* relays at once */
  guint relay_max_downloads; /* most downloads=N an upload may ask for */
  int relay_resume_wait;     /* seconds a cut download may take to resume */
  double relay_ip_rate;      /* uploads started per IP per minute; 0: no limit */
} FerryServerConfig;

/* Fills cfg with the documented defaults (strings NULL = default). */
FERRY_API void ferry_server_config_init(FerryServerConfig *cfg);

typedef struct _FerryServer FerryServer;

/* Creates the server and starts listening on the thread-default main
 * context. NULL with error set when an address is in use, a certificate
 * does not load or the store cannot be reached. cfg is copied. */
FERRY_API FerryServer *ferry_server_new(const FerryServerConfig *cfg, GError **error);

/* The TCP port actually listened on (useful with port 0). */
FERRY_API guint ferry_server_get_port(FerryServer *server);
/* The STUN responder's UDP port, 0 if off. */
FERRY_API guint ferry_server_get_stun_port(FerryServer *server);
/* Its second UDP port (the first + 1, or any free one with port 0), 0 if
 * off or taken: clients ask both to tell their NAT's mapping behaviour. */
FERRY_API guint ferry_server_get_stun_second_port(FerryServer *server);

/* Stops accepting, tells every client the server is going away, and calls
 * done once every connection is closed or drain_timeout has passed. */
FERRY_API void ferry_server_drain(FerryServer *server, GSourceFunc done, gpointer user_data);

FERRY_API void ferry_server_free(FerryServer *server);

#endif
