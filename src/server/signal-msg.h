/* Decoding the messages a client sends to `ferry serve` (protocol v1).
 *
 * A pure function on bytes, so it can be fuzzed: it never allocates more
 * than the input justifies and reports every problem as a slug (for the
 * client's "error" message and the refusal counter) and a sentence. */
#ifndef FERRY_SERVER_SIGNAL_MSG_H
#define FERRY_SERVER_SIGNAL_MSG_H

#include <glib.h>

#define FERRY_SIGNAL_VERSION       1
#define FERRY_SIGNAL_MAX_NAMEPLATE 6  /* "999999", as join codes allow */
#define FERRY_SIGNAL_MAX_PEER      11 /* "s", "r1" … "r4294967295" */

typedef enum {
  FERRY_SIGNAL_CLAIM = 1, /* sender: allocate a nameplate, open a session */
  FERRY_SIGNAL_JOIN,      /* receiver: join the session behind a nameplate */
  FERRY_SIGNAL_SEND,      /* relay "body" to one peer or to every other peer */
  FERRY_SIGNAL_RELEASE,   /* sender: free the nameplate, keep the session */
  FERRY_SIGNAL_LEAVE,     /* leave the session (the sender's leave ends it) */
  FERRY_SIGNAL_PING,      /* answered with "pong" */
  FERRY_SIGNAL_PONG,      /* answer to the server's "ping" */
  FERRY_SIGNAL_RESUME,    /* take a membership back after a disconnect */
} FerrySignalType;

typedef struct {
  FerrySignalType type;
  int version;         /* claim, join: the protocol version asked for */
  guint max_receivers; /* claim: 0 = the server's limit */
  char nameplate[FERRY_SIGNAL_MAX_NAMEPLATE + 1];
  char to[FERRY_SIGNAL_MAX_PEER + 1]; /* send: a peer id or "*" */
  char *body;                         /* send: the body re-serialised as JSON (owned) */
  char token[33];                     /* resume: 32 lowercase hex digits */
  guint64 last_seq;                   /* resume: the last "seq" the client received */
  gboolean has_ack;                   /* ping, pong: "ack" was given */
  guint64 ack;                        /* ping, pong: the client has every "seq" up to this */
} FerrySignalMsg;

/* Parses one text frame. On success fills *out (release it with
 * ferry_signal_msg_clear()) and returns 0. On failure returns a negative
 * FerryErr and points *slug at a static error slug ("bad-json",
 * "unknown-type", "bad-field", "bad-version") and *why at a static
 * sentence; *out is then cleared. */
int ferry_signal_msg_parse(const char *data, gsize len, FerrySignalMsg *out, const char **slug,
                           const char **why);

void ferry_signal_msg_clear(FerrySignalMsg *msg);

/* Whether a string is a well-formed nameplate: 1–9 decimal digits, no
 * leading zero. */
gboolean ferry_signal_nameplate_valid(const char *s);

/* Returns a newly allocated JSON text {"type":"error","code":slug,
 * "message":text}; the caller frees it. */
char *ferry_signal_error_json(const char *slug, const char *text);

#endif
