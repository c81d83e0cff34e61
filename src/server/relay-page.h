/* The HTML a browser sees at /r/NAME (docs/protocol.md §10): what is on
 * offer and a button to fetch it. Everything is inline; the page loads
 * nothing from anywhere else. */
#ifndef FERRY_SERVER_RELAY_PAGE_H
#define FERRY_SERVER_RELAY_PAGE_H

#include <glib.h>

typedef struct {
  const char *name; /* the relay's NAME, also the file name offered */
  gint64 size;      /* bytes a download gets, or -1 when not known yet */
} FerryRelayPage;

/* Returns the landing page for page (free with g_free()) and sets *csp to
 * the Content-Security-Policy it needs (static, not freed). */
char *ferry_relay_page_render(const FerryRelayPage *page, const char **csp);

#endif
