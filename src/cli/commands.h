/* The ferry command table: each subcommand is one cmd-*.c file with one
 * entry point that parses its own options (GOptionContext) and returns
 * the process exit status. */
#ifndef FERRY_CLI_COMMANDS_H
#define FERRY_CLI_COMMANDS_H

#include <glib.h>

/* Exit statuses shared by every command. */
enum {
  FERRY_EXIT_OK = 0,
  FERRY_EXIT_FAILURE = 1, /* the operation failed; the message says why */
  FERRY_EXIT_USAGE = 2,   /* bad command line */
  /* send and receive */
  FERRY_EXIT_WRONG_CODE = 3,    /* the code did not match (PAKE failed) */
  FERRY_EXIT_NO_SERVER = 4,     /* the ferry server cannot be reached */
  FERRY_EXIT_PEER_LOST = 5,     /* the peer vanished, the connection broke, no path */
  FERRY_EXIT_DECLINED = 6,      /* the receiver declined the offer */
  FERRY_EXIT_DISK_FULL = 7,     /* not enough space for the files */
  FERRY_EXIT_LOCAL_FILE = 8,    /* a local file cannot be read or written */
  FERRY_EXIT_VERIFY = 9,        /* data did not verify, or an unsafe path was offered */
  FERRY_EXIT_INTERRUPTED = 10,  /* Ctrl-C or SIGTERM; a checkpoint is kept */
  FERRY_EXIT_NO_SUCH_CODE = 11, /* the server knows no sender with that number */
  FERRY_EXIT_TIMED_OUT = 12,    /* --ttl ran out with receivers still owed */
};

typedef int (*FerryCommandFunc)(int argc, char **argv);

typedef struct {
  const char *name;
  const char *summary;
  FerryCommandFunc run;
} FerryCommand;

int cmd_version(int argc, char **argv);
/* manifest and safe paths */
int cmd_scan(int argc, char **argv);
/* chunk hashing and checkpoints */
int cmd_hash(int argc, char **argv);
/* join codes and PAKE */
int cmd_code(int argc, char **argv);
/* server */
int cmd_serve(int argc, char **argv);
/* send and receive */
int cmd_send(int argc, char **argv);
int cmd_receive(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);

/* Parses argv with a GOptionContext built from params ("FILE… - what it
 * does"), an optional summary (shown before the options) and description
 * (after them) and the command's entries (may be NULL), adding --verbose;
 * prints errors in the house style and sets up logging. Returns FALSE
 * (after printing why) on a bad command line; the caller then exits with
 * FERRY_EXIT_USAGE. */
gboolean cli_parse(int *argc, char ***argv, const char *params, const char *summary,
                   const char *description, const GOptionEntry *entries);

/* Prints "ferry: error: <message>" to stderr. */
void cli_error(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

#endif
