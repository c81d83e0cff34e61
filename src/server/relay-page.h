/* The HTML a browser sees at /r/NAME (docs/protocol.md §10): what is on
 * offer and a button to fetch it. A file's or a folder's page is plain
 * links (the folder's button asks for a zip, a second link for the tar)
 * and has no script. An encrypted link's page (§10.7) decrypts in the
 * browser with WebCrypto, with the key from the URL fragment, streaming to
 * disk through the service worker /relay-sw.js (also served from here) or,
 * without one, through memory. Everything is inline or comes from this
 * server; the pages load nothing from anywhere else. */
#ifndef FERRY_SERVER_RELAY_PAGE_H
#define FERRY_SERVER_RELAY_PAGE_H

#include <libsoup/soup.h>

typedef struct {
  const char *name;   /* the relay's NAME, also the file name offered */
  gint64 size;        /* bytes a download gets, or -1 when not known yet */
  gboolean folder;    /* the upload is a tar of a folder: offer a zip (tar when encrypted) */
  gboolean encrypted; /* the upload is ciphertext (§10.6): the page decrypts in the browser */
} FerryRelayPage;

/* Returns the landing page for page (free with g_free()) and sets *csp to
 * the Content-Security-Policy it needs (static, not freed): no script for
 * a file or folder, the page's own inline script (by hash) and this
 * server for an encrypted link. */
char *ferry_relay_page_render(const FerryRelayPage *page, const char **csp);

/* SoupServer handler for GET /relay-sw.js: the service worker an
 * encrypted link's landing page registers (scope /r/) to decrypt a
 * download as it streams to disk. Other methods get 405. */
void ferry_relay_page_worker_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                                     GHashTable *query, gpointer user_data);

#endif
