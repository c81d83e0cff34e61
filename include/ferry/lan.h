/* LAN mode: finding a sender on the local network, with no server.
 *
 * A sender with no `ferry serve` to meet at runs the rendezvous itself
 * (ferry_server_new() on an ephemeral port) and announces it here: UDP
 * multicast on port FERRY_LAN_PORT, to FERRY_LAN_GROUP_IPV4 and, on every
 * multicast-capable interface, the link-local FERRY_LAN_GROUP_IPV6. A
 * receiver asks the same groups for the code's number and connects to
 * whoever answers through that sender's rendezvous; the PAKE and the
 * encryption above are the same as with a server (docs/protocol.md §9).
 *
 * The announcements carry nothing secret: the number the receiver types,
 * the rendezvous's TCP port and nameplate, and a random instance id. The
 * words of a code never leave the process.
 *
 * Because every sender's own rendezvous hands out the same first
 * nameplates, the number shown to people on the LAN is drawn at random
 * (1..999) instead, and the answer says which nameplate it maps to; the
 * rare sender that draws the same number as another is told apart by its
 * instance id, and a receiver tries each in turn.
 *
 * Threading: as connection.h — callbacks run on the thread-default
 * GMainContext of the caller, never inside a ferry_*() call. */
#ifndef FERRY_LAN_H
#define FERRY_LAN_H

#include <gio/gio.h>

#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_LAN_PORT       41414
#define FERRY_LAN_GROUP_IPV4 "239.255.41.41"
#define FERRY_LAN_GROUP_IPV6 "ff02::4141:feed"
/* How long `ferry receive` looks for a sender by default. */
#define FERRY_LAN_DEFAULT_TIMEOUT_MS 3000

typedef struct _FerryLanAnnouncer FerryLanAnnouncer;

/* Starts announcing the sender whose listener got code (as the code
 * handler reports it) from the rendezvous listening on TCP port on this
 * machine: joins the groups on every interface that can take them
 * (interfaces that come up later are joined as they appear), answers
 * queries for the code's LAN number and announces it about once a second.
 * Returns NULL with FERRY_ERROR_INVALID when code does not parse, or
 * FERRY_ERROR_IO when no UDP socket can be bound to FERRY_LAN_PORT. Free
 * with ferry_lan_announcer_free(), which stops the announcements. */
FERRY_API FerryLanAnnouncer *ferry_lan_announcer_new(const char *code, guint port, GError **error);

/* As ferry_lan_announcer_new(), announcing under number instead of a
 * random one (0: draw one). A sender whose code is also on the `ferry
 * serve` at server_url (NULL: none) announces that code's number and a tag
 * of the server's URL, so one code works both ways (docs/protocol.md §9.3). */
FERRY_API FerryLanAnnouncer *ferry_lan_announcer_new_full(const char *code, guint port,
                                                          guint number, const char *server_url,
                                                          GError **error);

/* The code to give to receivers on the LAN: the listener's words behind
 * the LAN number ("437-ocean-tiger-piano"). Owned by announcer. */
FERRY_API const char *ferry_lan_announcer_get_code(FerryLanAnnouncer *announcer);

FERRY_API void ferry_lan_announcer_free(FerryLanAnnouncer *announcer);

/* A sender found on the LAN, at one of its addresses. */
typedef struct {
  guint64 instance; /* which sender: the same for each of its addresses */
  char *server_url; /* its rendezvous: "ws://192.0.2.7:40123", "ws://[fe80::1%25eth0]:40123" */
  char *code;       /* the code to give ferry_connect_async() with server_url */
} FerryLanSender;

FERRY_API void ferry_lan_sender_free(FerryLanSender *sender);

/* Looks for the senders announcing code's number (code as the user typed
 * it; only the number is sent): queries every half second and listens for
 * announcements, until a short while after the first answer or until
 * timeout_ms. callback runs once; call ferry_lan_lookup_finish() from it. */
FERRY_API void ferry_lan_lookup_async(const char *code, guint timeout_ms, GCancellable *cancellable,
                                      GAsyncReadyCallback callback, gpointer user_data);

/* Returns the senders found (FerryLanSender *, freed with the array:
 * g_ptr_array_unref()): the one that answered first first, each sender's
 * IPv4 address before its IPv6 ones. Try them in turn; once one of a
 * sender's addresses was reached (any error but FERRY_ERROR_IO), skip its
 * other ones. Or NULL with an error:
 *   INVALID    the code does not parse (the parser's message);
 *   NOT_FOUND  nobody answered in time;
 *   IO         no socket could be opened to ask;
 *   G_IO_ERROR_CANCELLED  cancelled. */
FERRY_API GPtrArray *ferry_lan_lookup_finish(GAsyncResult *result, GError **error);

/* As ferry_lan_lookup_async(), but ends at most grace_ms after the first
 * answer (ferry_lan_lookup_async(): 300 ms) — as long again as that answer
 * took, 30 ms at least, since other senders with the same number answer
 * about as fast — and, with server_url, takes only senders whose code is on that
 * server too: for racing the LAN against a server. Finish with
 * ferry_lan_lookup_finish(). */
FERRY_API void ferry_lan_lookup_full_async(const char *code, guint timeout_ms, guint grace_ms,
                                           const char *server_url, GCancellable *cancellable,
                                           GAsyncReadyCallback callback, gpointer user_data);

G_END_DECLS

#endif
