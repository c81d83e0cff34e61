/* ferry serve: run the rendezvous server until SIGTERM or Ctrl-C. */
#include <stdio.h>
#include <stdlib.h>

#include <glib-unix.h>

#include <ferry/ferry.h>

#include "commands.h"
#include <ferry/server.h>

/* Parses "90", "90s", "10m", "24h", "7d" into seconds. */
static gboolean
parse_duration(const char *option, const char *value, int *out)
{
  char *end;
  guint64 n = g_ascii_strtoull(value, &end, 10);
  guint64 mult = 1;

  if (end == value)
    goto bad;
  if (*end == 's')
    end++;
  else if (*end == 'm')
    mult = 60, end++;
  else if (*end == 'h')
    mult = 3600, end++;
  else if (*end == 'd')
    mult = 86400, end++;
  if (*end != '\0' || n * mult > G_MAXINT || n == 0)
    goto bad;
  *out = (int)(n * mult);
  return TRUE;
bad:
  cli_error("%s '%s' is not a duration: use seconds or a number with s, m, h or d (e.g. 10m)",
            option, value);
  return FALSE;
}

/* Parses "8388608", "512K", "8M", "4G" (powers of 1024; a trailing "iB"
 * or "B" is allowed) into bytes; zero_ok lets 0 mean "no limit". */
static gboolean
parse_size(const char *option, const char *value, gboolean zero_ok, guint64 *out)
{
  char *end;
  guint64 n = g_ascii_strtoull(value, &end, 10);
  guint shift = 0;

  if (end == value)
    goto bad;
  switch (g_ascii_toupper(*end)) {
  case 'K':
    shift = 10, end++;
    break;
  case 'M':
    shift = 20, end++;
    break;
  case 'G':
    shift = 30, end++;
    break;
  case 'T':
    shift = 40, end++;
    break;
  default:
    break;
  }
  if (shift > 0 && *end == 'i')
    end++;
  if (*end == 'B' || *end == 'b')
    end++;
  if (*end != '\0' || (n == 0 && !zero_ok) || n > (G_MAXUINT64 >> shift))
    goto bad;
  *out = n << shift;
  return TRUE;
bad:
  cli_error("%s '%s' is not a size: use bytes or a number with K, M, G or T (e.g. 8M)%s", option,
            value, zero_ok ? "; 0 means no limit" : "");
  return FALSE;
}

static gboolean
drained(gpointer user_data)
{
  g_main_loop_quit(user_data);
  return G_SOURCE_REMOVE;
}

typedef struct {
  FerryServer *server;
  GMainLoop *loop;
  gboolean draining;
} ServeState;

static gboolean
on_signal(gpointer user_data)
{
  ServeState *st = user_data;
  if (st->draining) {
    g_message("second signal: stopping now");
    g_main_loop_quit(st->loop);
    return G_SOURCE_CONTINUE;
  }
  st->draining = TRUE;
  g_message("shutting down: telling clients, then stopping (again to stop at once)");
  ferry_server_drain(st->server, drained, st->loop);
  return G_SOURCE_CONTINUE;
}

int
cmd_serve(int argc, char **argv)
{
  FerryServerConfig cfg;
  g_autofree char *session_ttl = NULL, *code_ttl = NULL, *idle = NULL, *cred_ttl = NULL;
  g_autofree char *relay_ttl = NULL, *relay_idle = NULL, *relay_window = NULL,
                  *relay_max_size = NULL, *relay_resume = NULL;
  int relay_max = -1, relay_max_downloads = -1;
  double relay_ip_rate = -1;
  int max_recv = -1, max_sessions = -1, max_conns = -1, max_conns_ip = -1, max_msg = -1;
  int stun_port = -2;
  int drain = -1, grace = -1;
  double ip_connect = -1, ip_session = -1, ip_join = -1, msg_rate = -1;
  gboolean no_stun = FALSE, quiet = FALSE;

  ferry_server_config_init(&cfg);
  GOptionEntry entries[] = {
      {"listen", 'l', 0, G_OPTION_ARG_STRING, &cfg.listen,
       "Address to listen on (default 0.0.0.0:8080; env FERRY_LISTEN)", "HOST:PORT"},
      {"tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &cfg.tls_cert, "PEM certificate: serve wss/https",
       "FILE"},
      {"tls-key", 0, 0, G_OPTION_ARG_FILENAME, &cfg.tls_key, "PEM private key for --tls-cert",
       "FILE"},
      {"stun-port", 0, 0, G_OPTION_ARG_INT, &stun_port,
       "UDP port of the built-in STUN responder (default 3478, 0: any free port); it answers on "
       "PORT+1 too, for NAT mapping tests",
       "PORT"},
      {"no-stun", 0, 0, G_OPTION_ARG_NONE, &no_stun, "Do not run the STUN responder", NULL},
      {"turn-server", 0, 0, G_OPTION_ARG_STRING_ARRAY, &cfg.turn_servers,
       "TURN server for peers, repeatable: turn:HOST[:PORT][?transport=tcp] or turns:HOST[:PORT]",
       "URL"},
      {"turn-static-auth-secret", 0, 0, G_OPTION_ARG_STRING, &cfg.turn_secret,
       "coturn's static-auth-secret (better: env FERRY_TURN_STATIC_AUTH_SECRET)", "SECRET"},
      {"turn-cred-ttl", 0, 0, G_OPTION_ARG_STRING, &cred_ttl,
       "Lifetime of minted TURN credentials (default 1h)", "DURATION"},
      {"session-ttl", 0, 0, G_OPTION_ARG_STRING, &session_ttl,
       "Longest a session may live (default 24h)", "DURATION"},
      {"code-ttl", 0, 0, G_OPTION_ARG_STRING, &code_ttl,
       "How long a code waits for receivers (default 10m)", "DURATION"},
      {"max-receivers-per-sender", 0, 0, G_OPTION_ARG_INT, &max_recv,
       "Receivers one sender may have at once (default 10)", "N"},
      {"max-sessions", 0, 0, G_OPTION_ARG_INT, &max_sessions, "Live sessions (default 10000)", "N"},
      {"max-connections", 0, 0, G_OPTION_ARG_INT, &max_conns,
       "WebSocket connections (default 20000)", "N"},
      {"max-connections-per-ip", 0, 0, G_OPTION_ARG_INT, &max_conns_ip,
       "WebSocket connections one client address may hold at once (default 64)", "N"},
      {"max-message-bytes", 0, 0, G_OPTION_ARG_INT, &max_msg,
       "Largest message a client may send (default 65536)", "BYTES"},
      {"ip-connect-rate", 0, 0, G_OPTION_ARG_DOUBLE, &ip_connect,
       "New connections per client address per minute (default 120, 0: no limit)", "N"},
      {"ip-session-rate", 0, 0, G_OPTION_ARG_DOUBLE, &ip_session,
       "New sessions per client address per minute (default 30, 0: no limit)", "N"},
      {"ip-join-rate", 0, 0, G_OPTION_ARG_DOUBLE, &ip_join,
       "Joins per client address per minute (default 60; failed joins cost 5; 0: no limit)", "N"},
      {"message-rate", 0, 0, G_OPTION_ARG_DOUBLE, &msg_rate,
       "Messages per connection per second (default 50, 0: no limit)", "N"},
      {"idle-timeout", 0, 0, G_OPTION_ARG_STRING, &idle,
       "Close connections silent this long; pinged at half (default 2m)", "DURATION"},
      {"trust-proxy", 0, 0, G_OPTION_ARG_NONE, &cfg.trust_proxy,
       "Take the client address from X-Forwarded-For (only behind your own proxy)", NULL},
      {"store", 0, 0, G_OPTION_ARG_STRING, &cfg.store,
       "Session store: memory (default) or redis://HOST:PORT to share sessions between "
       "instances (env FERRY_STORE)",
       "URL"},
      {"reconnect-grace", 0, 0, G_OPTION_ARG_INT, &grace,
       "Seconds a client that lost its connection may resume its place (default 30, 0: off)",
       "SECONDS"},
      {"quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet,
       "Log only warnings and errors, not every connection's events", NULL},
      {"drain-timeout", 0, 0, G_OPTION_ARG_INT, &drain,
       "Seconds SIGTERM waits for clients to leave (default 5)", "SECONDS"},
      {"relay-secret", 0, 0, G_OPTION_ARG_STRING, &cfg.relay_secret,
       "Turn the HTTP relay (/r/NAME) on; uploads need this secret "
       "(better: env FERRY_RELAY_SECRET)",
       "SECRET"},
      {"relay-anonymous", 0, 0, G_OPTION_ARG_NONE, &cfg.relay_anonymous,
       "Turn the HTTP relay on and take uploads without a secret", NULL},
      {"relay-ttl", 0, 0, G_OPTION_ARG_STRING, &relay_ttl,
       "How long an upload waits for its downloader (default 10m)", "DURATION"},
      {"relay-idle-timeout", 0, 0, G_OPTION_ARG_STRING, &relay_idle,
       "End a relay that moves no byte this long while downloading (default 2m)", "DURATION"},
      {"relay-window", 0, 0, G_OPTION_ARG_STRING, &relay_window,
       "Bytes held in memory per relay (default 8M)", "SIZE"},
      {"relay-max", 0, 0, G_OPTION_ARG_INT, &relay_max, "Relays at once (default 16)", "N"},
      {"relay-max-size", 0, 0, G_OPTION_ARG_STRING, &relay_max_size,
       "Largest file relayed (default 0: no limit)", "SIZE"},
      {"relay-max-downloads", 0, 0, G_OPTION_ARG_INT, &relay_max_downloads,
       "Most downloads one link may serve (its downloads=N; default 10)", "N"},
      {"relay-resume-wait", 0, 0, G_OPTION_ARG_STRING, &relay_resume,
       "How long a broken download may take to resume with Range (default 60s)", "DURATION"},
      {"relay-ip-rate", 0, 0, G_OPTION_ARG_DOUBLE, &relay_ip_rate,
       "Relay uploads started per minute per client address (default 30; 0: no limit)", "N"},
      G_OPTION_ENTRY_NULL,
  };
  if (!cli_parse(&argc, &argv, "- run the rendezvous server", NULL,
                 "Matches senders with receivers by the number at the start of a code and relays\n"
                 "their encrypted handshake messages; file bytes never pass through it.\n"
                 "Endpoints: WebSocket /v1 (signaling), /health, /metrics (Prometheus), and with\n"
                 "--relay-secret the HTTP relay /r/NAME (curl -T FILE up, browser or curl down).\n"
                 "See docs/protocol.md and docs/deploy.md.",
                 entries))
    return FERRY_EXIT_USAGE;
  ferry_log_show_events(!quiet);
  if (argc > 1) {
    cli_error("ferry serve takes no arguments ('%s'); see 'ferry serve --help'", argv[1]);
    return FERRY_EXIT_USAGE;
  }

  if (cfg.listen == NULL && g_getenv("FERRY_LISTEN") != NULL)
    cfg.listen = g_strdup(g_getenv("FERRY_LISTEN"));
  if (cfg.store == NULL && g_getenv("FERRY_STORE") != NULL)
    cfg.store = g_strdup(g_getenv("FERRY_STORE"));
  if (cfg.turn_secret == NULL && g_getenv("FERRY_TURN_STATIC_AUTH_SECRET") != NULL)
    cfg.turn_secret = g_strdup(g_getenv("FERRY_TURN_STATIC_AUTH_SECRET"));
  if (cfg.relay_secret == NULL && g_getenv("FERRY_RELAY_SECRET") != NULL)
    cfg.relay_secret = g_strdup(g_getenv("FERRY_RELAY_SECRET"));
  if ((relay_ttl && !parse_duration("--relay-ttl", relay_ttl, &cfg.relay_ttl)) ||
      (relay_idle &&
       !parse_duration("--relay-idle-timeout", relay_idle, &cfg.relay_idle_timeout)) ||
      (relay_window && !parse_size("--relay-window", relay_window, FALSE, &cfg.relay_window)) ||
      (relay_resume &&
       !parse_duration("--relay-resume-wait", relay_resume, &cfg.relay_resume_wait)) ||
      (relay_max_size &&
       !parse_size("--relay-max-size", relay_max_size, TRUE, &cfg.relay_max_size)))
    return FERRY_EXIT_USAGE;
  if (relay_window &&
      (cfg.relay_window < 64 * 1024 || cfg.relay_window > G_GUINT64_CONSTANT(1) << 30)) {
    cli_error("--relay-window must be between 64K and 1G");
    return FERRY_EXIT_USAGE;
  }
  if ((session_ttl && !parse_duration("--session-ttl", session_ttl, &cfg.session_ttl)) ||
      (code_ttl && !parse_duration("--code-ttl", code_ttl, &cfg.code_ttl)) ||
      (idle && !parse_duration("--idle-timeout", idle, &cfg.idle_timeout)) ||
      (cred_ttl && !parse_duration("--turn-cred-ttl", cred_ttl, &cfg.turn_cred_ttl)))
    return FERRY_EXIT_USAGE;
  struct {
    const char *name;
    int value, min, max;
    guint *target;
  } ints[] = {
      {"--max-receivers-per-sender", max_recv, 1, 1000000, &cfg.max_receivers},
      {"--max-sessions", max_sessions, 1, 999999, &cfg.max_sessions},
      {"--max-connections", max_conns, 1, G_MAXINT, &cfg.max_connections},
      {"--max-connections-per-ip", max_conns_ip, 1, G_MAXINT, &cfg.max_connections_per_ip},
      {"--max-message-bytes", max_msg, 256, 1024 * 1024, &cfg.max_message_bytes},
      {"--relay-max", relay_max, 1, 100000, &cfg.relay_max},
      {"--relay-max-downloads", relay_max_downloads, 1, 1000, &cfg.relay_max_downloads},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(ints); i++) {
    if (ints[i].value == -1)
      continue;
    if (ints[i].value < ints[i].min || ints[i].value > ints[i].max) {
      cli_error("%s must be between %d and %d", ints[i].name, ints[i].min, ints[i].max);
      return FERRY_EXIT_USAGE;
    }
    *ints[i].target = (guint)ints[i].value;
  }
  if (ip_connect >= 0)
    cfg.ip_connect_rate = ip_connect;
  if (ip_session >= 0)
    cfg.ip_session_rate = ip_session;
  if (msg_rate >= 0)
    cfg.message_rate = msg_rate;
  if (ip_join >= 0)
    cfg.ip_join_rate = ip_join;
  if (relay_ip_rate >= 0)
    cfg.relay_ip_rate = relay_ip_rate;
  if (drain >= 0)
    cfg.drain_timeout = drain;
  if (grace >= 0)
    cfg.reconnect_grace = grace;
  if (no_stun)
    cfg.stun_port = -1;
  else if (stun_port != -2) {
    if (stun_port < 0 || stun_port > 65535) {
      cli_error("--stun-port must be 0..65535 (or use --no-stun)");
      return FERRY_EXIT_USAGE;
    }
    cfg.stun_port = stun_port;
  }

  GError *error = NULL;
  ServeState st = {0};
  st.server = ferry_server_new(&cfg, &error);
  if (st.server == NULL) {
    cli_error("%s", error->message);
    g_error_free(error);
    return FERRY_EXIT_FAILURE;
  }
  printf("ferry serve: listening on %s://%s (port %u): WebSocket /v1, /health, /metrics\n",
         cfg.tls_cert ? "https" : "http", cfg.listen ? cfg.listen : "0.0.0.0:8080",
         ferry_server_get_port(st.server));
  if (ferry_server_get_stun_second_port(st.server) != 0)
    printf("ferry serve: STUN on udp ports %u and %u\n", ferry_server_get_stun_port(st.server),
           ferry_server_get_stun_second_port(st.server));
  else if (ferry_server_get_stun_port(st.server) != 0)
    printf("ferry serve: STUN on udp port %u\n", ferry_server_get_stun_port(st.server));
  printf("ferry serve: store %s\n", cfg.store ? cfg.store : "memory");
  if ((cfg.relay_secret != NULL && *cfg.relay_secret != '\0') || cfg.relay_anonymous)
    printf("ferry serve: HTTP relay on at /r/NAME (%s)\n",
           cfg.relay_anonymous ? "anonymous uploads" : "uploads need the relay secret");
  fflush(stdout);

  st.loop = g_main_loop_new(NULL, FALSE);
  guint sigterm = g_unix_signal_add(SIGTERM, on_signal, &st);
  guint sigint = g_unix_signal_add(SIGINT, on_signal, &st);
  g_main_loop_run(st.loop);
  g_source_remove(sigterm);
  g_source_remove(sigint);
  ferry_server_free(st.server);
  g_main_loop_unref(st.loop);
  g_message("stopped");
  g_free(cfg.listen);
  g_free(cfg.tls_cert);
  g_free(cfg.tls_key);
  g_strfreev(cfg.turn_servers);
  g_free(cfg.turn_secret);
  g_free(cfg.store);
  g_free(cfg.relay_secret);
  return FERRY_EXIT_OK;
}
