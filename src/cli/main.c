/* ferry: the command-line entry point. Dispatches to one subcommand. */
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include <ferry/ferry.h>

#include "commands.h"

static const FerryCommand commands[] = {
    {"version", "print ferry's version", cmd_version},
    /* manifest and safe paths */
    {"scan", "list what would be sent: files, directories, symlinks", cmd_scan},
    /* chunk hashing and checkpoints */
    {"hash", "print the chunk and root hashes of files", cmd_hash},
    /* join codes and PAKE */
    {"code", "make or check a join code", cmd_code},
    /* server */
    {"serve", "run the rendezvous server (signaling, STUN, TURN credentials)", cmd_serve},
    /* send and receive */
    {"send", "offer files and folders: prints a code for the receivers", cmd_send},
    {"host", "the same as send", cmd_send},
    {"receive", "receive what the sender holding a code offers", cmd_receive},
    {"join", "the same as receive", cmd_receive},
    {"checkpoint", "list or delete the checkpoints of unfinished receives", cmd_checkpoint},
};

static gboolean opt_verbose;

void
cli_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("ferry: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

gboolean
cli_parse(int *argc, char ***argv, const char *params, const char *summary, const char *description,
          const GOptionEntry *entries)
{
  GOptionContext *ctx = g_option_context_new(params);
  GOptionEntry common[] = {
      {"verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose,
       "Print debug messages (also: FERRY_DEBUG=all)", NULL},
      G_OPTION_ENTRY_NULL,
  };
  GError *error = NULL;
  gboolean ok;

  if (summary != NULL)
    g_option_context_set_summary(ctx, summary);
  if (description != NULL)
    g_option_context_set_description(ctx, description);
  if (entries != NULL)
    g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_add_main_entries(ctx, common, NULL);
  ok = g_option_context_parse(ctx, argc, argv, &error);
  g_option_context_free(ctx);
  if (!ok) {
    cli_error("%s (see '%s --help')", error->message, g_get_prgname());
    g_error_free(error);
    return FALSE;
  }
  ferry_log_init(opt_verbose);
  return TRUE;
}

static void
print_usage(FILE *out)
{
  fprintf(out, "Usage: ferry COMMAND [OPTION…] [ARG…]\n\n"
               "Move files between people, directly: verified, resumable, encrypted.\n\n"
               "Commands:\n");
  for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
    fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\nRun 'ferry COMMAND --help' for a command's options.\n"
               "Options:\n"
               "  -h, --help     show this help\n"
               "  -V, --version  print the version\n");
}

int
main(int argc, char **argv)
{
  setlocale(LC_ALL, "");
  ferry_log_init(FALSE);

  if (argc < 2) {
    print_usage(stderr);
    return FERRY_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
    print_usage(stdout);
    return FERRY_EXIT_OK;
  }
  if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0)
    name = "version";

  for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
    if (strcmp(commands[i].name, name) == 0) {
      char *prgname = g_strdup_printf("ferry %s", commands[i].name);
      g_set_prgname(prgname);
      g_free(prgname);
      return commands[i].run(argc - 1, argv + 1);
    }
  }
  cli_error("unknown command '%s' (run 'ferry --help' for the list)", name);
  return FERRY_EXIT_USAGE;
}
