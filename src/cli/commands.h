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
