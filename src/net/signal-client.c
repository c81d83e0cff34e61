/* Signaling client: connect, keep alive, reconnect, resume (signal-client.h). */
#include <string.h>

#include <libsoup/soup.h>

#include <ferry/error.h>

#include "net/signal-client.h"

#define MAX_QUEUED 1024
/* Acknowledge (and ask for confirmation) every this many messages, so
 * neither side's replay buffer grows without bound. */
#define ACK_EVERY 32

typedef struct {
  char *text;
  gboolean session; /* send/release/leave: counted and kept until confirmed */
} Outgoing;

static void
outgoing_free(Outgoing *o)
{
  g_free(o->text);
  g_free(o);
}

/* Tries for a first connection: a server never reached is most likely a
 * wrong address or down, not a network blink. */
#define FIRST_CONNECT_RETRIES 2

struct _FerrySignalClient {
  char *url;
  SoupSession *session;
  SoupWebsocketConnection *ws;
  GCancellable *cancel;
  SoupMessage *pending_msg; /* the handshake under way */
  FerrySignalClientState state;

  FerrySignalMessageFunc on_message;
  FerrySignalStateFunc on_state;
  gpointer user_data;

  guint max_retries, initial_ms, max_ms;
  guint first_retries; /* before any welcome: FIRST_CONNECT_RETRIES unless set */
  guint attempt;
  guint retry_id;
  guint keepalive_ms;
  guint keepalive_id;
  gint64 last_rx_us;
  gboolean ping_outstanding;

  GQueue queue; /* Outgoing, waiting for a connection */
  /* Reliability across reconnects (see docs/protocol.md, "resume"): the
   * last session envelope number seen, and the session messages sent that
   * the server has not confirmed yet, numbered from 1 per membership. */
  guint64 last_seq;
  guint64 tx_count;
  guint64 tx_confirmed;
  GQueue unconfirmed;     /* char *, message tx_confirmed+1 first */
  gboolean welcomed;      /* the current connection got its welcome */
  gboolean ever_welcomed; /* some connection did: a blink, not a wrong address */
  gboolean give_up;       /* the last answer will not change by waiting */
  gboolean resuming;      /* a resume is in flight: hold the queue */
  char *token;            /* resume token of our session membership */
  char *peer;
  gboolean closing; /* ferry_signal_client_close() was called */
};

char *
ferry_signal_url_normalise(const char *url, GError **error)
{
  static const struct {
    const char *from, *to;
  } schemes[] = {{"http", "ws"}, {"https", "wss"}, {"ws", "ws"}, {"wss", "wss"}};
  g_autoptr(GUri) uri = NULL;
  GError *local = NULL;
  const char *to = NULL;

  if (url == NULL || *url == '\0') {
    ferry_set_error(error, FERRY_ERR_INVALID, "no server given: use --server URL or FERRY_SERVER");
    return NULL;
  }
  uri = g_uri_parse(url, G_URI_FLAGS_NONE, &local);
  if (uri == NULL) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "server '%s' is not a URL: write it as wss://HOST, https://HOST or "
                    "ws://HOST:PORT",
                    url);
    g_error_free(local);
    return NULL;
  }
  for (size_t i = 0; i < G_N_ELEMENTS(schemes); i++)
    if (g_ascii_strcasecmp(g_uri_get_scheme(uri), schemes[i].from) == 0)
      to = schemes[i].to;
  if (to == NULL || g_uri_get_host(uri) == NULL || *g_uri_get_host(uri) == '\0') {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "server '%s': use an http://, https://, ws:// or wss:// URL with a host name",
                    url);
    return NULL;
  }
  const char *path = g_uri_get_path(uri);
  if (path == NULL || *path == '\0' || strcmp(path, "/") == 0)
    path = "/v1";
  GUri *ws = g_uri_build(G_URI_FLAGS_NONE, to, NULL, g_uri_get_host(uri), g_uri_get_port(uri), path,
                         g_uri_get_query(uri), NULL);
  char *text = g_uri_to_string(ws);
  g_uri_unref(ws);
  return text;
}

static const char *
env_first(const char *a, const char *b)
{
  const char *v = g_getenv(a);
  if (v == NULL || *v == '\0')
    v = g_getenv(b);
  return v != NULL && *v != '\0' ? v : NULL;
}

/* Proxies come from the usual environment variables (http_proxy,
 * https_proxy, all_proxy, no_proxy) and nowhere else: the desktop-wide
 * resolver (libproxy) is slow to start, and a rendezvous server is
 * normally reached directly. NULL when no proxy is set. */
static GProxyResolver *
proxy_from_env(void)
{
  const char *http = env_first("http_proxy", "HTTP_PROXY");
  const char *https = env_first("https_proxy", "HTTPS_PROXY");
  const char *all = env_first("all_proxy", "ALL_PROXY");
  const char *no = env_first("no_proxy", "NO_PROXY");

  if (http == NULL && https == NULL && all == NULL)
    return NULL;
  char **ignore = no ? g_strsplit_set(no, ", ", -1) : NULL;
  GProxyResolver *r = g_simple_proxy_resolver_new(all, ignore);
  if (http != NULL) {
    g_simple_proxy_resolver_set_uri_proxy(G_SIMPLE_PROXY_RESOLVER(r), "http", http);
    g_simple_proxy_resolver_set_uri_proxy(G_SIMPLE_PROXY_RESOLVER(r), "ws", http);
  }
  if (https != NULL) {
    g_simple_proxy_resolver_set_uri_proxy(G_SIMPLE_PROXY_RESOLVER(r), "https", https);
    g_simple_proxy_resolver_set_uri_proxy(G_SIMPLE_PROXY_RESOLVER(r), "wss", https);
  }
  g_strfreev(ignore);
  return r;
}

FerrySignalClient *
ferry_signal_client_new(const char *url, GError **error)
{
  char *ws_url = ferry_signal_url_normalise(url, error);
  if (ws_url == NULL)
    return NULL;

  FerrySignalClient *c = g_new0(FerrySignalClient, 1);
  c->url = ws_url;
  GProxyResolver *proxy = proxy_from_env();
  c->session = soup_session_new_with_options("user-agent", "ferry", "timeout", 30, "proxy-resolver",
                                             proxy, NULL);
  g_clear_object(&proxy);
  c->state = FERRY_SIGNAL_CLIENT_CLOSED;
  c->max_retries = 8;
  c->first_retries = FIRST_CONNECT_RETRIES;
  c->initial_ms = 500;
  c->max_ms = 10000;
  c->keepalive_ms = 15000;
  return c;
}

void
ferry_signal_client_set_handlers(FerrySignalClient *c, FerrySignalMessageFunc on_message,
                                 FerrySignalStateFunc on_state, gpointer user_data)
{
  c->on_message = on_message;
  c->on_state = on_state;
  c->user_data = user_data;
}

void
ferry_signal_client_set_retry(FerrySignalClient *c, guint max_retries, guint initial_ms,
                              guint max_ms)
{
  c->max_retries = max_retries;
  c->first_retries = max_retries;
  c->initial_ms = initial_ms > 0 ? initial_ms : 1;
  c->max_ms = max_ms >= c->initial_ms ? max_ms : c->initial_ms;
}

void
ferry_signal_client_set_keepalive(FerrySignalClient *c, guint interval_ms)
{
  c->keepalive_ms = interval_ms > 0 ? interval_ms : 1;
}

static void
set_state(FerrySignalClient *c, FerrySignalClientState state, const GError *error)
{
  c->state = state;
  if (c->on_state != NULL)
    c->on_state(c, state, c->attempt, error, c->user_data);
}

static void connect_now(FerrySignalClient *c);

static gboolean
retry_cb(gpointer user_data)
{
  FerrySignalClient *c = user_data;
  c->retry_id = 0;
  connect_now(c);
  return G_SOURCE_REMOVE;
}

static void
drop_ws(FerrySignalClient *c)
{
  g_clear_handle_id(&c->keepalive_id, g_source_remove);
  if (c->ws != NULL) {
    g_signal_handlers_disconnect_by_data(c->ws, c);
    if (soup_websocket_connection_get_state(c->ws) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_close(c->ws, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, NULL);
    g_clear_object(&c->ws);
  }
  c->welcomed = FALSE;
  c->resuming = FALSE;
}

/* The connection is gone or was refused: try again after a backoff, or
 * give up once the budget is spent. retry_after_s is the server's hint. */
static void
lost(FerrySignalClient *c, const GError *why, guint retry_after_s)
{
  drop_ws(c);
  if (c->closing)
    return;
  /* A server never reached is most likely a wrong address or a server that
   * is down: a couple of quick tries, not the whole reconnect budget. */
  guint budget = c->ever_welcomed ? c->max_retries : MIN(c->max_retries, c->first_retries);
  if (c->give_up && why != NULL) {
    set_state(c, FERRY_SIGNAL_CLIENT_CLOSED, why);
    return;
  }
  if (c->attempt >= budget) {
    GError *error = NULL;
    if (why != NULL)
      error = g_error_new(FERRY_ERROR, FERRY_ERROR_IO,
                          "%s (gave up after %u attempts; check the server address, or try "
                          "again later)",
                          why->message, c->attempt + 1);
    set_state(c, FERRY_SIGNAL_CLIENT_CLOSED, error);
    g_clear_error(&error);
    return;
  }
  guint64 delay = c->initial_ms;
  for (guint i = 0; i < c->attempt && delay < c->max_ms; i++)
    delay *= 2;
  if (delay > c->max_ms)
    delay = c->max_ms;
  delay = delay * (80 + g_random_int_range(0, 41)) / 100;
  if ((guint64)retry_after_s * 1000 > delay)
    delay = (guint64)retry_after_s * 1000;
  c->attempt++;
  set_state(c, FERRY_SIGNAL_CLIENT_RECONNECTING, why);
  c->retry_id = g_timeout_add((guint)delay, retry_cb, c);
}

static void
send_text_now(FerrySignalClient *c, const char *text)
{
  soup_websocket_connection_send_text(c->ws, text);
}

static void send_ping(FerrySignalClient *c, const char *type);

static void
flush_queue(FerrySignalClient *c)
{
  Outgoing *o;
  while (c->ws != NULL && c->welcomed && !c->resuming &&
         (o = g_queue_pop_head(&c->queue)) != NULL) {
    send_text_now(c, o->text);
    if (o->session && c->token != NULL) {
      c->tx_count++;
      g_queue_push_tail(&c->unconfirmed, g_steal_pointer(&o->text));
      if (c->tx_count % ACK_EVERY == 0)
        send_ping(c, "ping");
    }
    outgoing_free(o);
  }
}

static void
enqueue(FerrySignalClient *c, char *text, gboolean session)
{
  Outgoing *o = g_new(Outgoing, 1);
  o->text = text;
  o->session = session;
  if (c->queue.length >= MAX_QUEUED) {
    g_warning("signaling: %u messages are waiting for the server; dropping the oldest",
              c->queue.length);
    outgoing_free(g_queue_pop_head(&c->queue));
  }
  g_queue_push_tail(&c->queue, o);
  flush_queue(c);
}

/* The server has received our session messages up to number n. */
static void
confirm(FerrySignalClient *c, guint64 n)
{
  while (c->tx_confirmed < n && !g_queue_is_empty(&c->unconfirmed)) {
    g_free(g_queue_pop_head(&c->unconfirmed));
    c->tx_confirmed++;
  }
}

static void
new_membership(FerrySignalClient *c)
{
  c->last_seq = 0;
  c->tx_count = 0;
  c->tx_confirmed = 0;
  g_queue_clear_full(&c->unconfirmed, g_free);
}

static void
send_ping(FerrySignalClient *c, const char *type)
{
  char *text =
      g_strdup_printf("{\"type\":\"%s\",\"ack\":%" G_GUINT64_FORMAT "}", type, c->last_seq);
  send_text_now(c, text);
  g_free(text);
}

static char *
object_text(JsonBuilder *b)
{
  JsonNode *root = json_builder_get_root(b);
  char *s = json_to_string(root, FALSE);
  json_node_unref(root);
  g_object_unref(b);
  return s;
}

static gboolean
keepalive_cb(gpointer user_data)
{
  FerrySignalClient *c = user_data;
  gint64 silent_ms = (g_get_monotonic_time() - c->last_rx_us) / 1000;

  if (c->ws == NULL)
    return G_SOURCE_CONTINUE;
  if (c->ping_outstanding && silent_ms >= 2 * (gint64)c->keepalive_ms) {
    GError *error =
        g_error_new(FERRY_ERROR, FERRY_ERROR_IO, "the server at %s stopped answering", c->url);
    c->keepalive_id = 0;
    lost(c, error, 0);
    g_error_free(error);
    return G_SOURCE_REMOVE;
  }
  if (!c->ping_outstanding && silent_ms >= (gint64)c->keepalive_ms) {
    c->ping_outstanding = TRUE;
    send_ping(c, "ping");
  }
  return G_SOURCE_CONTINUE;
}

static void
handle_server_message(FerrySignalClient *c, JsonObject *msg)
{
  const char *type = json_object_get_string_member_with_default(msg, "type", "");

  if (strcmp(type, "welcome") == 0) {
    gint64 version = json_object_get_int_member_with_default(msg, "version", 0);
    if (version != 1) {
      GError *error = g_error_new(FERRY_ERROR, FERRY_ERROR_VERSION,
                                  "the server at %s speaks signaling version %" G_GINT64_FORMAT
                                  ", this ferry speaks 1: update one of them",
                                  c->url, version);
      c->closing = TRUE;
      drop_ws(c);
      set_state(c, FERRY_SIGNAL_CLIENT_CLOSED, error);
      g_error_free(error);
      return;
    }
    c->welcomed = TRUE;
    c->ever_welcomed = TRUE;
    c->attempt = 0;
    if (c->token != NULL) {
      JsonBuilder *b = json_builder_new();
      json_builder_begin_object(b);
      json_builder_set_member_name(b, "type");
      json_builder_add_string_value(b, "resume");
      json_builder_set_member_name(b, "version");
      json_builder_add_int_value(b, 1);
      json_builder_set_member_name(b, "token");
      json_builder_add_string_value(b, c->token);
      json_builder_set_member_name(b, "last_seq");
      json_builder_add_int_value(b, (gint64)c->last_seq);
      json_builder_end_object(b);
      char *text = object_text(b);
      c->resuming = TRUE;
      send_text_now(c, text);
      g_free(text);
      return; /* CONNECTED once the server answers "resumed" */
    }
    set_state(c, FERRY_SIGNAL_CLIENT_CONNECTED, NULL);
    flush_queue(c);
    return;
  }
  if (json_object_has_member(msg, "seq")) {
    gint64 seq = json_object_get_int_member_with_default(msg, "seq", 0);
    if (seq <= (gint64)c->last_seq)
      return; /* seen before the connection was lost */
    c->last_seq = (guint64)seq;
    if (c->last_seq % ACK_EVERY == 0)
      send_ping(c, "ping");
  }
  if (strcmp(type, "ping") == 0) {
    send_ping(c, "pong");
    return;
  }
  if (strcmp(type, "pong") == 0) {
    if (json_object_has_member(msg, "received"))
      confirm(c, (guint64)json_object_get_int_member_with_default(msg, "received", 0));
    return;
  }
  if (strcmp(type, "claimed") == 0 || strcmp(type, "joined") == 0) {
    g_free(c->token);
    g_free(c->peer);
    c->token = g_strdup(json_object_get_string_member_with_default(msg, "token", ""));
    c->peer = g_strdup(json_object_get_string_member_with_default(msg, "peer", ""));
    if (*c->token == '\0')
      g_clear_pointer(&c->token, g_free);
    new_membership(c);
  } else if (strcmp(type, "resumed") == 0) {
    /* Resend what the server did not get, in order, then what waited. */
    confirm(c, (guint64)json_object_get_int_member_with_default(msg, "received", 0));
    for (GList *l = c->unconfirmed.head; l != NULL; l = l->next)
      send_text_now(c, l->data);
    if (json_object_get_boolean_member_with_default(msg, "lost", FALSE))
      g_warning("signaling: the server could not keep every message sent while we were away");
    c->resuming = FALSE;
    set_state(c, FERRY_SIGNAL_CLIENT_CONNECTED, NULL);
    flush_queue(c);
  } else if (strcmp(type, "left") == 0 || strcmp(type, "session-ended") == 0) {
    g_clear_pointer(&c->token, g_free);
    g_clear_pointer(&c->peer, g_free);
    new_membership(c);
  } else if (strcmp(type, "error") == 0 && c->resuming) {
    /* The session did not survive our absence: tell the caller, who
     * decides whether to start again. */
    c->resuming = FALSE;
    g_clear_pointer(&c->token, g_free);
    g_clear_pointer(&c->peer, g_free);
    new_membership(c);
    set_state(c, FERRY_SIGNAL_CLIENT_CONNECTED, NULL);
    flush_queue(c);
  } else if (strcmp(type, "closing") == 0) {
    /* The server is going away; the close that follows triggers a retry. */
  }
  if (c->on_message != NULL)
    c->on_message(c, msg, c->user_data);
}

static void
on_message(SoupWebsocketConnection *ws, gint type, GBytes *message, gpointer user_data)
{
  FerrySignalClient *c = user_data;
  gsize len;
  const char *data = g_bytes_get_data(message, &len);
  JsonParser *parser = json_parser_new_immutable();

  c->last_rx_us = g_get_monotonic_time();
  c->ping_outstanding = FALSE;
  if (type == SOUP_WEBSOCKET_DATA_TEXT &&
      json_parser_load_from_data(parser, data, (gssize)len, NULL) &&
      JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser)))
    handle_server_message(c, json_node_get_object(json_parser_get_root(parser)));
  else
    g_warning("signaling: the server sent something that is not a JSON object; ignored");
  g_object_unref(parser);
}

static void
on_closed(SoupWebsocketConnection *ws, gpointer user_data)
{
  FerrySignalClient *c = user_data;
  const char *reason = soup_websocket_connection_get_close_data(ws);
  gushort code = soup_websocket_connection_get_close_code(ws);
  GError *error =
      g_error_new(FERRY_ERROR, FERRY_ERROR_IO, "lost the connection to the server at %s%s%s",
                  c->url, reason && *reason ? ": " : "", reason ? reason : "");
  guint retry_after = code == SOUP_WEBSOCKET_CLOSE_GOING_AWAY ? 1 : 0;
  lost(c, error, retry_after);
  g_error_free(error);
}

static void
connected(GObject *source, GAsyncResult *res, gpointer user_data)
{
  FerrySignalClient *c = user_data;
  SoupMessage *msg = c->pending_msg;
  GError *local = NULL;
  SoupWebsocketConnection *ws =
      soup_session_websocket_connect_finish(SOUP_SESSION(source), res, &local);

  if (g_error_matches(local, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
    /* The client is being freed or closed: touch nothing of it. */
    g_error_free(local);
    return;
  }
  c->pending_msg = NULL;
  if (ws == NULL) {
    guint status = soup_message_get_status(msg);
    SoupMessageHeaders *h = soup_message_get_response_headers(msg);
    const char *said = h ? soup_message_headers_get_one(h, "X-Ferry-Error") : NULL;
    const char *ra = h ? soup_message_headers_get_one(h, "Retry-After") : NULL;
    GError *error;
    if (said != NULL)
      error =
          g_error_new(FERRY_ERROR, FERRY_ERROR_IO, "the server at %s refused: %s", c->url, said);
    else if (status >= 400)
      error = g_error_new(FERRY_ERROR, FERRY_ERROR_IO,
                          "the server at %s answered HTTP %u %s: is it a ferry server?", c->url,
                          status, soup_status_get_phrase(status));
    else
      error = g_error_new(FERRY_ERROR, FERRY_ERROR_IO, "cannot connect to the server at %s: %s",
                          c->url, local->message);
    g_error_free(local);
    g_object_unref(msg);
    /* 4xx other than 429 will not get better by waiting. */
    if (status >= 400 && status < 500 && status != 429)
      c->give_up = TRUE;
    lost(c, error, ra ? (guint)g_ascii_strtoull(ra, NULL, 10) : 0);
    g_error_free(error);
    return;
  }
  g_object_unref(msg);
  c->ws = ws;
  c->last_rx_us = g_get_monotonic_time();
  c->ping_outstanding = FALSE;
  soup_websocket_connection_set_max_incoming_payload_size(ws, 4 * 1024 * 1024);
  g_signal_connect(ws, "message", G_CALLBACK(on_message), c);
  g_signal_connect(ws, "closed", G_CALLBACK(on_closed), c);
  c->keepalive_id = g_timeout_add(MAX(c->keepalive_ms / 4, 10), keepalive_cb, c);
}

static void
connect_now(FerrySignalClient *c)
{
  /* Kept (c->pending_msg) so a refusal's status and headers can be read. */
  c->pending_msg = soup_message_new("GET", c->url);
  g_clear_object(&c->cancel);
  c->cancel = g_cancellable_new();
  soup_session_websocket_connect_async(c->session, c->pending_msg, NULL, NULL, G_PRIORITY_DEFAULT,
                                       c->cancel, connected, c);
}

void
ferry_signal_client_start(FerrySignalClient *c)
{
  if (c->state != FERRY_SIGNAL_CLIENT_CLOSED || c->closing)
    return;
  c->attempt = 0;
  set_state(c, FERRY_SIGNAL_CLIENT_CONNECTING, NULL);
  connect_now(c);
}

static JsonBuilder *
begin(const char *type)
{
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "type");
  json_builder_add_string_value(b, type);
  return b;
}

static void
finish(FerrySignalClient *c, JsonBuilder *b, gboolean session)
{
  json_builder_end_object(b);
  enqueue(c, object_text(b), session);
}

void
ferry_signal_client_claim(FerrySignalClient *c, guint max_receivers)
{
  JsonBuilder *b = begin("claim");
  json_builder_set_member_name(b, "version");
  json_builder_add_int_value(b, 1);
  if (max_receivers > 0) {
    json_builder_set_member_name(b, "max_receivers");
    json_builder_add_int_value(b, max_receivers);
  }
  finish(c, b, FALSE);
}

void
ferry_signal_client_join(FerrySignalClient *c, const char *nameplate)
{
  JsonBuilder *b = begin("join");
  json_builder_set_member_name(b, "version");
  json_builder_add_int_value(b, 1);
  json_builder_set_member_name(b, "nameplate");
  json_builder_add_string_value(b, nameplate);
  finish(c, b, FALSE);
}

void
ferry_signal_client_send(FerrySignalClient *c, const char *to, JsonNode *body)
{
  JsonBuilder *b = begin("send");
  json_builder_set_member_name(b, "to");
  json_builder_add_string_value(b, to);
  json_builder_set_member_name(b, "body");
  json_builder_add_value(b, body);
  finish(c, b, TRUE);
}

void
ferry_signal_client_release(FerrySignalClient *c)
{
  finish(c, begin("release"), TRUE);
}

void
ferry_signal_client_leave(FerrySignalClient *c)
{
  finish(c, begin("leave"), TRUE);
}

const char *
ferry_signal_client_get_peer(FerrySignalClient *c)
{
  return c->peer;
}

FerrySignalClientState
ferry_signal_client_get_state(FerrySignalClient *c)
{
  return c->state;
}

/* A closed client's last connection stays alive until the server has
 * answered its close frame (or 2 s have passed): dropping it at once would
 * lose the frame, and the server would take a deliberate goodbye for a
 * dropped network and keep the membership for its reconnect grace. */
typedef struct {
  SoupWebsocketConnection *ws;
  gulong handler;
  guint timer;
} Goodbye;

static void
goodbye_done(Goodbye *g)
{
  g_clear_handle_id(&g->timer, g_source_remove);
  g_signal_handler_disconnect(g->ws, g->handler);
  g_object_unref(g->ws);
  g_free(g);
}

static void
goodbye_closed(SoupWebsocketConnection *ws, gpointer data)
{
  goodbye_done(data);
}

static gboolean
goodbye_timeout(gpointer data)
{
  Goodbye *g = data;
  g->timer = 0;
  goodbye_done(g);
  return G_SOURCE_REMOVE;
}

void
ferry_signal_client_close(FerrySignalClient *c)
{
  c->closing = TRUE;
  g_clear_handle_id(&c->retry_id, g_source_remove);
  if (c->cancel != NULL)
    g_cancellable_cancel(c->cancel);
  g_clear_object(&c->pending_msg);
  g_clear_handle_id(&c->keepalive_id, g_source_remove);
  if (c->ws != NULL) {
    g_signal_handlers_disconnect_by_data(c->ws, c);
    if (soup_websocket_connection_get_state(c->ws) == SOUP_WEBSOCKET_STATE_OPEN) {
      Goodbye *g = g_new0(Goodbye, 1);
      g->ws = g_steal_pointer(&c->ws);
      g->handler = g_signal_connect(g->ws, "closed", G_CALLBACK(goodbye_closed), g);
      g->timer = g_timeout_add(2000, goodbye_timeout, g);
      soup_websocket_connection_close(g->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
    } else {
      g_clear_object(&c->ws);
    }
  }
  if (c->state != FERRY_SIGNAL_CLIENT_CLOSED)
    set_state(c, FERRY_SIGNAL_CLIENT_CLOSED, NULL);
}

void
ferry_signal_client_free(FerrySignalClient *c)
{
  if (c == NULL)
    return;
  c->on_state = NULL;
  c->on_message = NULL;
  ferry_signal_client_close(c);
  g_clear_object(&c->cancel);
  g_clear_object(&c->session);
  g_queue_clear_full(&c->queue, (GDestroyNotify)outgoing_free);
  g_queue_clear_full(&c->unconfirmed, g_free);
  g_free(c->token);
  g_free(c->peer);
  g_free(c->url);
  g_free(c);
}
