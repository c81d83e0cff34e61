/* Birthday punching on the wire: see punch-wire.h and docs/protocol.md
 * §7.4. */
#include <arpa/inet.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "net/punch-wire.h"

static const guint8 magic[FERRY_PUNCH_MAGIC_LEN] = {0x80, 'f', 'e', 'r', 'r', 'y', 'p', 'n'};

#define KIND_PROBE 1
#define KIND_ACK   2
#define TAG_LABEL  "ferry punch v1"

FerryPunchPacketKind
ferry_punch_packet_parse(const guint8 *data, gsize len, guint8 tag[FERRY_PUNCH_TAG_LEN])
{
  if (len < sizeof magic || memcmp(data, magic, sizeof magic) != 0)
    return FERRY_PUNCH_PACKET_NONE;
  if (len != FERRY_PUNCH_PACKET_LEN)
    return FERRY_PUNCH_PACKET_BAD;
  guint8 kind = data[FERRY_PUNCH_MAGIC_LEN];
  if (kind != KIND_PROBE && kind != KIND_ACK)
    return FERRY_PUNCH_PACKET_BAD;
  memcpy(tag, data + FERRY_PUNCH_MAGIC_LEN + 1, FERRY_PUNCH_TAG_LEN);
  return kind == KIND_PROBE ? FERRY_PUNCH_PACKET_PROBE : FERRY_PUNCH_PACKET_ACK;
}

gsize
ferry_punch_packet_write(guint8 buf[FERRY_PUNCH_PACKET_LEN], gboolean ack,
                         const guint8 tag[FERRY_PUNCH_TAG_LEN])
{
  memcpy(buf, magic, sizeof magic);
  buf[FERRY_PUNCH_MAGIC_LEN] = ack ? KIND_ACK : KIND_PROBE;
  memcpy(buf + FERRY_PUNCH_MAGIC_LEN + 1, tag, FERRY_PUNCH_TAG_LEN);
  return FERRY_PUNCH_PACKET_LEN;
}

void
ferry_punch_tag(const guint8 key[FERRY_PUNCH_KEY_LEN], gboolean sender, gboolean ack,
                guint8 tag[FERRY_PUNCH_TAG_LEN])
{
  guint8 msg[sizeof TAG_LABEL + 1];

  memcpy(msg, TAG_LABEL, sizeof TAG_LABEL - 1);
  msg[sizeof TAG_LABEL - 1] = sender ? 's' : 'r';
  msg[sizeof TAG_LABEL] = ack ? KIND_ACK : KIND_PROBE;
  crypto_generichash(tag, FERRY_PUNCH_TAG_LEN, msg, sizeof msg, key, FERRY_PUNCH_KEY_LEN);
}

/* A dotted IPv4 address and, with want_port, ":PORT" (1..65535, digits
 * only, no leading zero): nothing before, after or in between. */
static gboolean
parse_address(const char *text, gboolean want_port, struct sockaddr_in *addr)
{
  char ip[INET_ADDRSTRLEN];
  const char *colon = strchr(text, ':');
  gsize n = want_port ? (colon != NULL ? (gsize)(colon - text) : 0) : strlen(text);

  if (n == 0 || n >= sizeof ip || (!want_port && colon != NULL))
    return FALSE;
  memcpy(ip, text, n);
  ip[n] = '\0';
  if (inet_pton(AF_INET, ip, &addr->sin_addr) != 1)
    return FALSE;
  if (want_port) {
    const char *p = colon + 1;
    guint port = 0;
    if (*p == '\0' || *p == '0' || strlen(p) > 5)
      return FALSE; /* one spelling per port: no leading zero */
    for (; *p != '\0'; p++) {
      if (!g_ascii_isdigit(*p))
        return FALSE;
      port = port * 10 + (guint)(*p - '0');
    }
    if (port == 0 || port > 65535)
      return FALSE;
    addr->sin_port = htons((guint16)port);
  }
  return TRUE;
}

gboolean
ferry_punch_line_parse(const char *text, FerryPunchMapping *mapping, struct sockaddr_in *addr)
{
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  if (strcmp(text, "punch none") == 0) {
    *mapping = FERRY_PUNCH_MAPPING_UNKNOWN;
    return TRUE;
  }
  if (g_str_has_prefix(text, "punch eim ") && parse_address(text + 10, TRUE, addr)) {
    *mapping = FERRY_PUNCH_MAPPING_EIM;
    return TRUE;
  }
  if (g_str_has_prefix(text, "punch edm ") && parse_address(text + 10, FALSE, addr)) {
    *mapping = FERRY_PUNCH_MAPPING_EDM;
    return TRUE;
  }
  memset(addr, 0, sizeof *addr);
  return FALSE;
}

void
ferry_punch_line_write(char buf[FERRY_PUNCH_LINE_MAX], FerryPunchMapping mapping,
                       const struct sockaddr_in *addr)
{
  char ip[INET_ADDRSTRLEN];

  if (mapping == FERRY_PUNCH_MAPPING_UNKNOWN || addr == NULL ||
      inet_ntop(AF_INET, &addr->sin_addr, ip, sizeof ip) == NULL) {
    g_strlcpy(buf, "punch none", FERRY_PUNCH_LINE_MAX);
    return;
  }
  if (mapping == FERRY_PUNCH_MAPPING_EIM)
    g_snprintf(buf, FERRY_PUNCH_LINE_MAX, "punch eim %s:%u", ip, ntohs(addr->sin_port));
  else
    g_snprintf(buf, FERRY_PUNCH_LINE_MAX, "punch edm %s", ip);
}
