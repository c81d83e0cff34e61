/* Decoder for client → server signaling messages (see docs/protocol.md). */
#include <string.h>

#include <json-glib/json-glib.h>

#include <ferry/error.h>

#include "server/signal-msg.h"

/* JSON nesting is bounded before json-glib sees the text: its parser is
 * recursive, and a frame of 64 KiB of '[' must not cost a deep stack. */
#define MAX_DEPTH 32

static gboolean
depth_ok(const char *data, gsize len)
{
  int depth = 0;
  gboolean in_string = FALSE, escaped = FALSE;

  for (gsize i = 0; i < len; i++) {
    char c = data[i];
    if (in_string) {
      if (escaped)
        escaped = FALSE;
      else if (c == '\\')
        escaped = TRUE;
      else if (c == '"')
        in_string = FALSE;
      continue;
    }
    if (c == '"')
      in_string = TRUE;
    else if (c == '\'' || c == '/')
      return FALSE; /* json-glib's extensions (quotes, comments) would hide nesting */
    else if (c == '{' || c == '[') {
      if (++depth > MAX_DEPTH)
        return FALSE;
    } else if (c == '}' || c == ']')
      depth--;
  }
  return TRUE;
}

gboolean
ferry_signal_nameplate_valid(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > FERRY_SIGNAL_MAX_NAMEPLATE || s[0] == '0')
    return FALSE;
  for (size_t i = 0; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return FALSE;
  return TRUE;
}

static gboolean
peer_valid(const char *s)
{
  if (strcmp(s, "*") == 0 || strcmp(s, "s") == 0)
    return TRUE;
  return s[0] == 'r' && ferry_signal_nameplate_valid(s + 1) && strlen(s) <= FERRY_SIGNAL_MAX_PEER;
}

static int
fail(FerrySignalMsg *out, const char **slug, const char **why, const char *s, const char *w)
{
  ferry_signal_msg_clear(out);
  *slug = s;
  *why = w;
  return g_str_equal(s, "bad-version") ? FERRY_ERR_VERSION : FERRY_ERR_INVALID;
}

/* Reads an optional string member into buf; FALSE when it is present but
 * not a string or too long, or absent while required. */
static gboolean
get_string(JsonObject *obj, const char *name, char *buf, gsize cap, gboolean required)
{
  JsonNode *node = json_object_get_member(obj, name);
  if (node == NULL)
    return !required;
  if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_STRING)
    return FALSE;
  const char *s = json_node_get_string(node);
  if (strlen(s) >= cap)
    return FALSE;
  g_strlcpy(buf, s, cap);
  return TRUE;
}

static gboolean
get_int(JsonObject *obj, const char *name, gint64 lo, gint64 hi, gint64 *value)
{
  JsonNode *node = json_object_get_member(obj, name);
  if (node == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_INT64)
    return FALSE;
  gint64 v = json_node_get_int(node);
  if (v < lo || v > hi)
    return FALSE;
  *value = v;
  return TRUE;
}

int
ferry_signal_msg_parse(const char *data, gsize len, FerrySignalMsg *out, const char **slug,
                       const char **why)
{
  static const struct {
    const char *name;
    FerrySignalType type;
  } types[] = {
      {"claim", FERRY_SIGNAL_CLAIM}, {"join", FERRY_SIGNAL_JOIN},
      {"send", FERRY_SIGNAL_SEND},   {"release", FERRY_SIGNAL_RELEASE},
      {"leave", FERRY_SIGNAL_LEAVE}, {"ping", FERRY_SIGNAL_PING},
      {"pong", FERRY_SIGNAL_PONG},   {"resume", FERRY_SIGNAL_RESUME},
  };
  JsonParser *parser;
  JsonObject *obj;
  char type[16] = "";
  int ret = 0;

  memset(out, 0, sizeof *out);
  if (len == 0 || memchr(data, '\0', len) != NULL || !g_utf8_validate(data, len, NULL))
    return fail(out, slug, why, "bad-json", "a message must be UTF-8 JSON text");
  if (!depth_ok(data, len))
    return fail(out, slug, why, "bad-json",
                "JSON nested too deeply, or not plain JSON (no comments or single quotes)");

  parser = json_parser_new_immutable();
  if (!json_parser_load_from_data(parser, data, (gssize)len, NULL)) {
    g_object_unref(parser);
    return fail(out, slug, why, "bad-json", "a message must be one JSON object");
  }
  JsonNode *root = json_parser_get_root(parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root)) {
    g_object_unref(parser);
    return fail(out, slug, why, "bad-json", "a message must be one JSON object");
  }
  obj = json_node_get_object(root);

  if (!get_string(obj, "type", type, sizeof type, TRUE)) {
    ret = fail(out, slug, why, "bad-field", "\"type\" must be a string");
    goto done;
  }
  out->type = 0;
  for (size_t i = 0; i < G_N_ELEMENTS(types); i++)
    if (strcmp(type, types[i].name) == 0)
      out->type = types[i].type;
  if (out->type == 0) {
    ret = fail(out, slug, why, "unknown-type",
               "unknown message type (expected claim, join, resume, send, release, leave, ping, "
               "pong)");
    goto done;
  }

  if (out->type == FERRY_SIGNAL_CLAIM || out->type == FERRY_SIGNAL_JOIN ||
      out->type == FERRY_SIGNAL_RESUME) {
    gint64 version = -1, maxr = 0;
    if (!get_int(obj, "version", 0, G_MAXINT, &version) || version < 0) {
      ret = fail(out, slug, why, "bad-field", "\"version\" (an integer) is required");
      goto done;
    }
    if (version != FERRY_SIGNAL_VERSION) {
      ret = fail(out, slug, why, "bad-version",
                 "this server speaks signaling protocol version 1; update ferry");
      goto done;
    }
    out->version = (int)version;
    if (!get_int(obj, "max_receivers", 1, 1000000, &maxr)) {
      ret = fail(out, slug, why, "bad-field", "\"max_receivers\" must be an integer ≥ 1");
      goto done;
    }
    out->max_receivers = (guint)maxr;
  }
  if (out->type == FERRY_SIGNAL_JOIN) {
    if (!get_string(obj, "nameplate", out->nameplate, sizeof out->nameplate, TRUE) ||
        !ferry_signal_nameplate_valid(out->nameplate)) {
      ret = fail(out, slug, why, "bad-field",
                 "\"nameplate\" must be the number at the start of the code, such as \"7\"");
      goto done;
    }
  }
  if (out->type == FERRY_SIGNAL_RESUME) {
    gboolean hex =
        get_string(obj, "token", out->token, sizeof out->token, TRUE) && strlen(out->token) == 32;
    for (int i = 0; hex && i < 32; i++)
      hex = g_ascii_isxdigit(out->token[i]) && !g_ascii_isupper(out->token[i]);
    if (!hex) {
      ret =
          fail(out, slug, why, "bad-field",
               "\"token\" must be the 32 hex digits the server gave in \"claimed\" or \"joined\"");
      goto done;
    }
  }
  if (out->type == FERRY_SIGNAL_RESUME) {
    gint64 seq = 0;
    if (!get_int(obj, "last_seq", 0, G_MAXINT64, &seq)) {
      ret = fail(out, slug, why, "bad-field", "\"last_seq\" must be an integer ≥ 0");
      goto done;
    }
    out->last_seq = (guint64)seq;
  }
  if (out->type == FERRY_SIGNAL_PING || out->type == FERRY_SIGNAL_PONG) {
    gint64 ack = -1;
    if (!get_int(obj, "ack", 0, G_MAXINT64, &ack)) {
      ret = fail(out, slug, why, "bad-field", "\"ack\" must be an integer ≥ 0");
      goto done;
    }
    out->has_ack = ack >= 0;
    out->ack = out->has_ack ? (guint64)ack : 0;
  }
  if (out->type == FERRY_SIGNAL_SEND) {
    JsonNode *body = json_object_get_member(obj, "body");
    if (!get_string(obj, "to", out->to, sizeof out->to, TRUE) || !peer_valid(out->to)) {
      ret =
          fail(out, slug, why, "bad-field", "\"to\" must be a peer id (\"s\", \"r1\", …) or \"*\"");
      goto done;
    }
    if (body == NULL) {
      ret = fail(out, slug, why, "bad-field", "\"body\" is required");
      goto done;
    }
    out->body = json_to_string(body, FALSE);
  }

done:
  g_object_unref(parser);
  return ret;
}

void
ferry_signal_msg_clear(FerrySignalMsg *msg)
{
  g_clear_pointer(&msg->body, g_free);
  memset(msg, 0, sizeof *msg);
}

char *
ferry_signal_error_json(const char *slug, const char *text)
{
  JsonBuilder *b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "type");
  json_builder_add_string_value(b, "error");
  json_builder_set_member_name(b, "code");
  json_builder_add_string_value(b, slug);
  json_builder_set_member_name(b, "message");
  json_builder_add_string_value(b, text);
  json_builder_end_object(b);
  JsonNode *root = json_builder_get_root(b);
  char *s = json_to_string(root, FALSE);
  json_node_unref(root);
  g_object_unref(b);
  return s;
}
