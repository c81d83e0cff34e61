/* `ferry send --link` and `ferry receive URL`: files through the HTTP
 * relay of a `ferry serve` (docs/protocol.md §10), for receivers with only
 * a browser or curl, and back.
 *
 * The sender uploads one file as it is, or several files and folders as
 * one tar stream (§10.6), optionally sealed with a key that only the
 * link's #fragment carries (§10.7); it prints the link and a QR code and
 * waits until the downloads are done. The receiver downloads a link,
 * decrypts and unpacks what needs it, and resumes a cut single-file
 * download with Range while the server still holds the bytes. */
#ifndef FERRY_CLI_LINK_H
#define FERRY_CLI_LINK_H

#include "settings.h"

/* Uploads paths (absolute, NULL-terminated) as s says. Returns the exit
 * status, having told the user everything. */
int cli_link_send(CliSettings *s, char **paths, gboolean verbose);

/* TRUE when what the user typed for a code is an http(s) link instead. */
gboolean cli_link_is_url(const char *arg);

/* Downloads url into s->out_dir. Returns the exit status. */
int cli_link_receive(CliSettings *s, const char *url, gboolean verbose);

/* The QR code of text as lines of Unicode half blocks (light modules
 * drawn, for a dark terminal), with a quiet zone; NULL if it cannot be
 * made. Free with g_free(). */
char *cli_qr_text(const char *text);

#endif
