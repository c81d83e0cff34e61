/* ferry — peer-to-peer file transfer: the public API.
 *
 * Programs that use libferry include this header only. Every function
 * that can fail on I/O takes a trailing GError ** in the FERRY_ERROR
 * domain; the caller frees what a function returns unless its comment
 * says otherwise. */
#ifndef FERRY_FERRY_H
#define FERRY_FERRY_H

#include <ferry/error.h>
#include <ferry/code.h>
#include <ferry/hash.h>
#include <ferry/manifest.h>
#include <ferry/server.h>
#include <ferry/connection.h>
#include <ferry/transfer.h>
#include <ferry/lan.h>

G_BEGIN_DECLS

/* The library's version as "MAJOR.MINOR.PATCH"; a static string. */
FERRY_API const char *ferry_version(void);

/* Sets up ferry's log writer: warnings and errors go to stderr as
 * "ferry: ...", debug messages only when verbose is TRUE or the
 * FERRY_DEBUG environment variable names the domain ("all", or a
 * comma-separated list such as "core,net"). Safe to call more than once. */
FERRY_API void ferry_log_init(gboolean verbose);

/* Also prints informational messages — a server's events, one logfmt line
 * each ("ts=… domain=ferry-server event=claim ip=… …") — without verbose. */
FERRY_API void ferry_log_show_events(gboolean show);

G_END_DECLS

#endif
