/* A peer link: the PAKE between a sender and one receiver, run over the
 * signaling server, and afterwards a sealed channel for the small messages
 * (ICE credentials and candidates) that must not be readable by the server.
 *
 * Protocol (docs/protocol.md §6). Bodies of signaling "send" messages:
 *   sender → receiver  {"t":"pake","v":1,"sid":B64(16),"msg":B64(share)}
 *   receiver → sender  {"t":"pake","v":1,"msg":B64(share),"confirm":B64(tag)}
 *   sender → receiver  {"t":"confirm","v":1,"confirm":B64(tag)}   (or "pake-failed")
 *   either way         {"t":"box","v":1,"n":B64(24),"c":B64(ciphertext)}
 * The receiver only ever answers the sender's share, so a receiver cannot be
 * used as an oracle, and the sender learns at most one guess per join.
 *
 * A link lives on the thread-default main context of its signaling client;
 * callbacks come from ferry_peer_link_handle() or ferry_peer_link_start(). */
#ifndef FERRY_NET_PEER_LINK_H
#define FERRY_NET_PEER_LINK_H

#include <json-glib/json-glib.h>

#include "core/pake.h"
#include "net/signal-client.h"

#define FERRY_LINK_KEY_LEN 32

typedef struct _FerryPeerLink FerryPeerLink;

typedef struct {
  /* Sealed messages may go out now. The sender: the PAKE succeeded (the
   * receiver's confirmation is verified). The receiver: as soon as it has
   * answered the sender's share, one round trip before the sender's
   * confirmation arrives, so that what it sends travels with its answer;
   * what it seals only a sender holding the same key can open, and
   * nothing comes in sealed before the confirmation (the sender sends that
   * first). A wrong code still ends in failed. */
  void (*ready)(FerryPeerLink *link, gpointer user_data);
  /* The PAKE failed (wrong code, tampering) or the peer broke the protocol;
   * error says which, in words for the user. Called at most once; the link
   * is dead afterwards. */
  void (*failed)(FerryPeerLink *link, const GError *error, gpointer user_data);
  /* A sealed message from the peer, decrypted and authenticated. */
  void (*secret)(FerryPeerLink *link, const char *text, gsize len, gpointer user_data);
} FerryPeerLinkHandlers;

/* A link to peer_id ("s" for a receiver, "rN" for a sender) through sig
 * (not owned; it must outlive the link). words is the canonical
 * "word-word-word" of the code; nameplate is its number, which together
 * with the receiver's peer id forms the PAKE's channel identifier. */
FerryPeerLink *ferry_peer_link_new(FerrySignalClient *sig, FerryPakeRole role, const char *peer_id,
                                   const char *receiver_id, const char *nameplate,
                                   const char *words, const FerryPeerLinkHandlers *handlers,
                                   gpointer user_data);

/* The sender speaks first: sends its share. A receiver's start does
 * nothing (it answers the sender's share). */
void ferry_peer_link_start(FerryPeerLink *link);

/* Feeds the body of a "message" from this link's peer. Returns FALSE when
 * the body is not part of the link protocol (the caller may handle it). */
gboolean ferry_peer_link_handle(FerryPeerLink *link, JsonNode *body);

/* Seals text under the link key and sends it to the peer. Only after
 * ready. */
void ferry_peer_link_send_secret(FerryPeerLink *link, const char *text, gsize len);

/* A key for purpose (e.g. "ferry-v1 quic-auth") derived from the PAKE key;
 * only after ready. Returns FALSE before. */
gboolean ferry_peer_link_derive_key(FerryPeerLink *link, const char *purpose,
                                    guint8 out[FERRY_LINK_KEY_LEN]);

const char *ferry_peer_link_get_peer(FerryPeerLink *link);
/* TRUE while sealed messages may be sent (from ready until failure). */
gboolean ferry_peer_link_is_keyed(FerryPeerLink *link);

/* TRUE once the PAKE is confirmed on this side (for a receiver: after the
 * sender's confirmation, later than ready). */
gboolean ferry_peer_link_is_ready(FerryPeerLink *link);

void ferry_peer_link_free(FerryPeerLink *link);

#endif
