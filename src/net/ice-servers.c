/* ICE server configuration: STUN and TURN server URLs, their credentials,
 * and the `ice_servers` JSON a signaling server hands out. Pure parsing, no
 * network. */
#include "net/ice.h"

#include <string.h>

#include <ferry/error.h>

static gboolean
is_host_char(char c)
{
  return g_ascii_isalnum(c) || c == '-' || c == '.' || c == '_';
}

/* A DNS name or an IPv4 address (IPv6 goes in brackets, checked apart). */
static gboolean
valid_host(const char *host)
{
  if (*host == '\0' || strlen(host) > 253 || *host == '.' || *host == '-')
    return FALSE;
  for (const char *p = host; *p != '\0'; p++)
    if (!is_host_char(*p))
      return FALSE;
  return TRUE;
}

static gboolean
parse_port(const char *text, guint16 *port)
{
  guint64 v;
  if (*text == '\0' || strlen(text) > 5)
    return FALSE;
  for (const char *p = text; *p != '\0'; p++)
    if (!g_ascii_isdigit(*p))
      return FALSE;
  v = g_ascii_strtoull(text, NULL, 10);
  if (v == 0 || v > 65535)
    return FALSE;
  *port = (guint16)v;
  return TRUE;
}

/* Splits "HOST[:PORT]" or "[V6][:PORT]" (what follows a scheme and any
 * userinfo). Sets *host (lower case, brackets removed) and *port (or
 * default_port). what names the whole input for messages. */
static gboolean
parse_hostport(const char *text, guint16 default_port, const char *what, const char *form,
               char **host, guint16 *port, GError **error)
{
  g_autofree char *h = NULL;
  const char *port_text = NULL;

  if (text[0] == '[') {
    const char *end = strchr(text, ']');
    g_autoptr(GInetAddress) addr = NULL;
    if (end == NULL)
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "%s: the IPv6 address has no closing ']'; write %s", what, form);
    h = g_strndup(text + 1, end - text - 1);
    addr = g_inet_address_new_from_string(h);
    if (addr == NULL || g_inet_address_get_family(addr) != G_SOCKET_FAMILY_IPV6)
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "%s: '%s' in brackets is not an IPv6 address; write %s", what, h,
                             form);
    if (end[1] == ':')
      port_text = end + 2;
    else if (end[1] != '\0')
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "%s: unexpected '%s' after the IPv6 address; write %s", what, end + 1,
                             form);
  } else {
    const char *colon = strchr(text, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL)
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "%s: an IPv6 address must be written in brackets, as in "
                             "[2001:db8::1]:3478; write %s",
                             what, form);
    h = colon != NULL ? g_strndup(text, colon - text) : g_strdup(text);
    if (colon != NULL)
      port_text = colon + 1;
    if (!valid_host(h))
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "%s: '%s' is not a host name or IP address; write %s", what, h, form);
  }
  if (port_text != NULL) {
    if (!parse_port(port_text, port))
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "%s: '%s' is not a port number (1-65535); write %s", what, port_text,
                             form);
  } else {
    *port = default_port;
  }
  *host = g_ascii_strdown(h, -1);
  return TRUE;
}

static gboolean
has_prefix_ci(const char *text, const char *prefix)
{
  return g_ascii_strncasecmp(text, prefix, strlen(prefix)) == 0;
}

#define STUN_FORM "HOST:PORT, [IPv6]:PORT or stun:HOST:PORT"

gboolean
ferry_ice_stun_server_parse(const char *text, FerryIceStunServer *stun, GError **error)
{
  g_autofree char *what = g_strdup_printf("STUN server '%s'", text);
  const char *rest = text;

  memset(stun, 0, sizeof *stun);
  if (has_prefix_ci(text, "stuns:"))
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "%s: STUN over TLS (stuns:) is not supported; use stun:HOST:PORT", what);
  if (has_prefix_ci(text, "stun:")) {
    rest = text + 5;
    if (g_str_has_prefix(rest, "//"))
      rest += 2;
  } else if (strstr(text, "://") != NULL || has_prefix_ci(text, "turn")) {
    return ferry_set_error(error, FERRY_ERR_INVALID, "%s: not a STUN server; write %s", what,
                           STUN_FORM);
  }
  if (strchr(rest, '?') != NULL || strchr(rest, '@') != NULL)
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "%s: a STUN server takes no user name or options; write %s", what,
                           STUN_FORM);
  return parse_hostport(rest, FERRY_ICE_DEFAULT_STUN_PORT, what, STUN_FORM, &stun->host,
                        &stun->port, error);
}

void
ferry_ice_stun_server_clear(FerryIceStunServer *stun)
{
  g_clear_pointer(&stun->host, g_free);
  stun->port = 0;
}

static void
stun_server_free(gpointer p)
{
  ferry_ice_stun_server_clear(p);
  g_free(p);
}

#define TURN_FORM                                                                                  \
  "turn:[USER:PASS@]HOST[:PORT][?transport=udp|tcp] or "                                           \
  "turns:[USER:PASS@]HOST[:PORT][?servername=NAME][&insecure=1]"

/* One "key=value" of a TURN URL's query. */
static gboolean
turn_query_param(FerryIceTurnServer *turn, gboolean secure, const char *param, const char *what,
                 GError **error)
{
  const char *eq = strchr(param, '=');
  g_autofree char *key = eq != NULL ? g_strndup(param, eq - param) : g_strdup(param);
  const char *value = eq != NULL ? eq + 1 : "";

  if (g_ascii_strcasecmp(key, "transport") == 0) {
    if (g_ascii_strcasecmp(value, "tcp") == 0) {
      if (!secure)
        turn->transport = FERRY_ICE_TRANSPORT_TCP;
    } else if (g_ascii_strcasecmp(value, "udp") == 0) {
      if (secure)
        return ferry_set_error(error, FERRY_ERR_INVALID,
                               "%s: turns: runs over TLS on TCP, so transport=udp is not "
                               "possible; use turn:HOST:PORT for UDP",
                               what);
      turn->transport = FERRY_ICE_TRANSPORT_UDP;
    } else {
      return ferry_set_error(error, FERRY_ERR_INVALID, "%s: transport must be udp or tcp, not '%s'",
                             what, value);
    }
  } else if (g_ascii_strcasecmp(key, "servername") == 0) {
    if (!secure)
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "%s: servername= only applies to TLS; use turns: or drop it", what);
    if (!valid_host(value))
      return ferry_set_error(error, FERRY_ERR_INVALID, "%s: servername '%s' is not a host name",
                             what, value);
    g_free(turn->servername);
    turn->servername = g_ascii_strdown(value, -1);
  } else if (g_ascii_strcasecmp(key, "insecure") == 0) {
    if (!secure)
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "%s: insecure= only applies to TLS; use turns: or drop it", what);
    if (g_strcmp0(value, "1") == 0 || g_ascii_strcasecmp(value, "true") == 0)
      turn->insecure = TRUE;
    else if (g_strcmp0(value, "0") == 0 || g_ascii_strcasecmp(value, "false") == 0)
      turn->insecure = FALSE;
    else
      return ferry_set_error(error, FERRY_ERR_INVALID, "%s: insecure must be 1 or 0, not '%s'",
                             what, value);
  } else {
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "%s: unknown option '%s' (known: transport, servername, insecure)", what,
                           key);
  }
  return TRUE;
}

/* Percent-decodes a user name or password; NULL if it is malformed or
 * decodes to something with a NUL. */
static char *
unescape_userinfo(const char *text, gsize len)
{
  g_autofree char *raw = g_strndup(text, len);
  return g_uri_unescape_string(raw, NULL);
}

gboolean
ferry_ice_turn_server_parse(const char *url, FerryIceTurnServer *turn, GError **error)
{
  g_autofree char *what = NULL;
  g_autofree char *authority = NULL;
  const char *rest, *query, *at;
  gboolean secure;

  memset(turn, 0, sizeof *turn);
  if (has_prefix_ci(url, "turns:")) {
    secure = TRUE;
    rest = url + 6;
  } else if (has_prefix_ci(url, "turn:")) {
    secure = FALSE;
    rest = url + 5;
  } else {
    what = g_strdup_printf("TURN server '%s'", url);
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "%s: a TURN URL starts with turn: or turns:; write %s", what, TURN_FORM);
  }
  turn->transport = secure ? FERRY_ICE_TRANSPORT_TLS : FERRY_ICE_TRANSPORT_UDP;
  if (g_str_has_prefix(rest, "//"))
    rest += 2;

  query = strchr(rest, '?');
  authority = query != NULL ? g_strndup(rest, query - rest) : g_strdup(rest);
  at = strrchr(authority, '@');
  if (at != NULL) {
    const char *colon = memchr(authority, ':', at - authority);
    /* Credentials stay out of every message. */
    what = g_strdup_printf("TURN server '%s%s%s'", secure ? "turns:" : "turn:", at + 1,
                           query != NULL ? query : "");
    if (colon == NULL || colon == authority)
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "%s: credentials in a URL are written USER:PASS@ before the host",
                             what);
    turn->username = unescape_userinfo(authority, colon - authority);
    turn->credential = unescape_userinfo(colon + 1, at - colon - 1);
    if (turn->username == NULL || turn->credential == NULL || *turn->username == '\0' ||
        *turn->credential == '\0')
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "%s: the user name or password is empty or badly percent-encoded",
                             what);
  } else {
    what = g_strdup_printf("TURN server '%s'", url);
  }

  if (!parse_hostport(at != NULL ? at + 1 : authority,
                      secure ? FERRY_ICE_DEFAULT_TURNS_PORT : FERRY_ICE_DEFAULT_STUN_PORT, what,
                      TURN_FORM, &turn->host, &turn->port, error))
    return FALSE;

  if (query != NULL) {
    g_auto(GStrv) params = g_strsplit(query + 1, "&", -1);
    if (params[0] == NULL)
      return ferry_set_error(error, FERRY_ERR_INVALID, "%s: nothing after '?'; write %s", what,
                             TURN_FORM);
    for (char **p = params; *p != NULL; p++)
      if (!turn_query_param(turn, secure, *p, what, error))
        return FALSE;
  }
  return TRUE;
}

void
ferry_ice_turn_server_clear(FerryIceTurnServer *turn)
{
  g_clear_pointer(&turn->host, g_free);
  g_clear_pointer(&turn->username, g_free);
  if (turn->credential != NULL)
    memset(turn->credential, 0, strlen(turn->credential));
  g_clear_pointer(&turn->credential, g_free);
  g_clear_pointer(&turn->servername, g_free);
  turn->port = 0;
  turn->insecure = FALSE;
  turn->transport = FERRY_ICE_TRANSPORT_UDP;
}

static void
turn_server_free(gpointer p)
{
  ferry_ice_turn_server_clear(p);
  g_free(p);
}

char *
ferry_ice_turn_server_to_string(const FerryIceTurnServer *turn)
{
  gboolean v6 = strchr(turn->host, ':') != NULL;
  GString *s = g_string_new(turn->transport == FERRY_ICE_TRANSPORT_TLS ? "turns:" : "turn:");
  char sep = '?';

  g_string_append_printf(s, "%s%s%s:%u", v6 ? "[" : "", turn->host, v6 ? "]" : "", turn->port);
  if (turn->transport == FERRY_ICE_TRANSPORT_TCP) {
    g_string_append(s, "?transport=tcp");
    sep = '&';
  }
  if (turn->servername != NULL) {
    g_string_append_printf(s, "%cservername=%s", sep, turn->servername);
    sep = '&';
  }
  if (turn->insecure)
    g_string_append_printf(s, "%cinsecure=1", sep);
  return g_string_free(s, FALSE);
}

void
ferry_ice_config_init(FerryIceConfig *config)
{
  memset(config, 0, sizeof *config);
  config->role = FERRY_ICE_CONTROLLING;
  config->stun_servers = g_ptr_array_new_with_free_func(stun_server_free);
  config->turn_servers = g_ptr_array_new_with_free_func(turn_server_free);
  config->ipv4 = TRUE;
  config->ipv6 = TRUE;
  config->timeout_ms = FERRY_ICE_DEFAULT_TIMEOUT_MS;
}

void
ferry_ice_config_clear(FerryIceConfig *config)
{
  g_clear_pointer(&config->stun_servers, g_ptr_array_unref);
  g_clear_pointer(&config->turn_servers, g_ptr_array_unref);
}

gboolean
ferry_ice_config_add_stun(FerryIceConfig *config, const char *server, GError **error)
{
  FerryIceStunServer *stun = g_new0(FerryIceStunServer, 1);
  if (!ferry_ice_stun_server_parse(server, stun, error)) {
    stun_server_free(stun);
    return FALSE;
  }
  g_ptr_array_add(config->stun_servers, stun);
  return TRUE;
}

gboolean
ferry_ice_config_add_turn(FerryIceConfig *config, const char *url, const char *username,
                          const char *credential, GError **error)
{
  FerryIceTurnServer *turn = g_new0(FerryIceTurnServer, 1);
  g_autofree char *canon = NULL;

  if (!ferry_ice_turn_server_parse(url, turn, error))
    goto fail;
  canon = ferry_ice_turn_server_to_string(turn);
  if (username != NULL) {
    g_free(turn->username);
    turn->username = g_strdup(username);
  }
  if (credential != NULL) {
    g_free(turn->credential);
    turn->credential = g_strdup(credential);
  }
  if (turn->username == NULL || turn->credential == NULL || *turn->username == '\0' ||
      *turn->credential == '\0') {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "TURN server '%s' needs a user name and a password: write them in the URL "
                    "(turn:USER:PASS@HOST) or give them with it",
                    canon);
    goto fail;
  }
  if (config->turn_servers->len >= FERRY_ICE_MAX_TURN_SERVERS) {
    ferry_set_error(error, FERRY_ERR_INVALID,
                    "TURN server '%s': at most %d TURN servers can be used; drop some", canon,
                    FERRY_ICE_MAX_TURN_SERVERS);
    goto fail;
  }
  g_ptr_array_add(config->turn_servers, turn);
  return TRUE;

fail:
  turn_server_free(turn);
  return FALSE;
}

/* One RTCIceServer-like object: its URLs share its credentials. */
static gboolean
add_ice_server(FerryIceConfig *config, JsonNode *node, guint index, GError **error)
{
  JsonObject *obj;
  JsonNode *urls, *user_node, *cred_node;
  const char *username = NULL, *credential = NULL;
  g_autoptr(GPtrArray) list = g_ptr_array_new();

  if (!JSON_NODE_HOLDS_OBJECT(node))
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "ice_servers[%u] is not an object with \"urls\"", index);
  obj = json_node_get_object(node);
  urls = json_object_get_member(obj, "urls");
  if (urls == NULL)
    return ferry_set_error(error, FERRY_ERR_INVALID, "ice_servers[%u] has no \"urls\"", index);
  if (JSON_NODE_HOLDS_VALUE(urls) && json_node_get_value_type(urls) == G_TYPE_STRING) {
    g_ptr_array_add(list, (gpointer)json_node_get_string(urls));
  } else if (JSON_NODE_HOLDS_ARRAY(urls)) {
    JsonArray *arr = json_node_get_array(urls);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
      JsonNode *u = json_array_get_element(arr, i);
      if (!JSON_NODE_HOLDS_VALUE(u) || json_node_get_value_type(u) != G_TYPE_STRING)
        return ferry_set_error(error, FERRY_ERR_INVALID, "ice_servers[%u].urls[%u] is not a string",
                               index, i);
      g_ptr_array_add(list, (gpointer)json_node_get_string(u));
    }
  } else {
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "ice_servers[%u].urls is neither a string nor an array of strings",
                           index);
  }

  user_node = json_object_get_member(obj, "username");
  cred_node = json_object_get_member(obj, "credential");
  if (user_node != NULL && !JSON_NODE_HOLDS_NULL(user_node)) {
    if (!JSON_NODE_HOLDS_VALUE(user_node) || json_node_get_value_type(user_node) != G_TYPE_STRING)
      return ferry_set_error(error, FERRY_ERR_INVALID, "ice_servers[%u].username is not a string",
                             index);
    username = json_node_get_string(user_node);
  }
  if (cred_node != NULL && !JSON_NODE_HOLDS_NULL(cred_node)) {
    if (!JSON_NODE_HOLDS_VALUE(cred_node) || json_node_get_value_type(cred_node) != G_TYPE_STRING)
      return ferry_set_error(error, FERRY_ERR_INVALID, "ice_servers[%u].credential is not a string",
                             index);
    credential = json_node_get_string(cred_node);
  }

  for (guint i = 0; i < list->len; i++) {
    const char *url = list->pdata[i];
    g_autoptr(GError) local = NULL;
    gboolean ok;

    if (has_prefix_ci(url, "stun:"))
      ok = ferry_ice_config_add_stun(config, url, &local);
    else if (has_prefix_ci(url, "turn:") || has_prefix_ci(url, "turns:"))
      ok = ferry_ice_config_add_turn(config, url, username, credential, &local);
    else {
      g_debug("ice_servers[%u]: skipping '%s' (not a stun: or turn: URL)", index, url);
      continue;
    }
    if (!ok)
      return ferry_set_error(error, FERRY_ERR_INVALID, "ice_servers[%u]: %s", index,
                             local->message);
  }
  return TRUE;
}

gboolean
ferry_ice_config_add_ice_servers(FerryIceConfig *config, JsonNode *ice_servers, GError **error)
{
  JsonArray *arr;

  if (ice_servers == NULL || !JSON_NODE_HOLDS_ARRAY(ice_servers))
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "ice_servers is not a JSON array of {\"urls\": …} objects");
  arr = json_node_get_array(ice_servers);
  for (guint i = 0; i < json_array_get_length(arr); i++)
    if (!add_ice_server(config, json_array_get_element(arr, i), i, error))
      return FALSE;
  return TRUE;
}

gboolean
ferry_ice_config_add_ice_servers_json(FerryIceConfig *config, const char *json, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new();
  g_autoptr(GError) local = NULL;

  if (!json_parser_load_from_data(parser, json, -1, &local))
    return ferry_set_error(error, FERRY_ERR_INVALID, "ice_servers is not valid JSON: %s",
                           local->message);
  return ferry_ice_config_add_ice_servers(config, json_parser_get_root(parser), error);
}
