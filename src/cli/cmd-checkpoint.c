/* ferry checkpoint: the checkpoints unfinished receives left behind
 * (list, delete one, delete the old ones, delete all). Deleting a
 * checkpoint deletes its partial files too; finished files are never
 * touched. clean and clean-all also drop the sender's records of old
 * sends (what `ferry send --resume ID` reads). */
#include <stdio.h>
#include <string.h>

#include <ferry/ferry.h>

#include "commands.h"
#include "progress.h"
#include "settings.h"

static char *
age_text(gint64 mtime)
{
  gint64 age = g_get_real_time() / G_USEC_PER_SEC - mtime;
  if (age < 0)
    age = 0;
  if (age < 60)
    return g_strdup_printf("%" G_GINT64_FORMAT "s", age);
  if (age < 3600)
    return g_strdup_printf("%" G_GINT64_FORMAT "m", age / 60);
  if (age < 2 * 86400)
    return g_strdup_printf("%" G_GINT64_FORMAT "h", age / 3600);
  return g_strdup_printf("%" G_GINT64_FORMAT "d", age / 86400);
}

static char *
default_dir(void)
{
  return g_build_filename(g_get_user_state_dir(), "ferry", "checkpoints", NULL);
}

static void
print_json(const FerryCheckpointInfo *info)
{
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  cli_json_add_string(b, "id", info->id);
  cli_json_add_string(b, "key", info->key);
  cli_json_add_string(b, "path", info->path);
  cli_json_add_string(b, "out_dir", info->out_dir);
  json_builder_set_member_name(b, "files");
  json_builder_add_int_value(b, (gint64)info->files);
  json_builder_set_member_name(b, "bytes_total");
  json_builder_add_int_value(b, (gint64)info->bytes_total);
  json_builder_set_member_name(b, "bytes_verified");
  json_builder_add_int_value(b, (gint64)info->bytes_verified);
  json_builder_set_member_name(b, "mtime");
  json_builder_add_int_value(b, info->mtime);
  json_builder_set_member_name(b, "damaged");
  json_builder_add_boolean_value(b, info->damaged);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  g_autofree char *text = json_to_string(root, FALSE);
  printf("%s\n", text);
}

static int
list(gboolean json)
{
  GError *error = NULL;
  g_autoptr(GPtrArray) all = ferry_checkpoints_list(NULL, &error);
  g_autofree char *dir = default_dir();

  if (all == NULL) {
    cli_error("cannot list the checkpoints in %s: %s", dir, error->message);
    g_error_free(error);
    return FERRY_EXIT_FAILURE;
  }
  if (all->len == 0 && !json) {
    printf("no checkpoints in %s: nothing is waiting to be resumed\n", dir);
    return FERRY_EXIT_OK;
  }
  if (!json)
    printf("%-25s  %-26s  %5s  %s\n", "ID", "VERIFIED / TOTAL", "AGE", "OUT DIR");
  for (guint i = 0; i < all->len; i++) {
    FerryCheckpointInfo *info = all->pdata[i];
    if (json) {
      print_json(info);
      continue;
    }
    g_autofree char *age = age_text(info->mtime);
    g_autofree char *out_dir = cli_display(info->out_dir != NULL ? info->out_dir : "?");
    g_autofree char *have = cli_format_bytes(info->bytes_verified);
    g_autofree char *total = cli_format_bytes(info->bytes_total);
    g_autofree char *amount =
        info->damaged
            ? g_strdup("damaged: delete it")
            : g_strdup_printf("%s / %s (%.0f%%)", have, total,
                              info->bytes_total > 0
                                  ? 100.0 * (double)info->bytes_verified / (double)info->bytes_total
                                  : 100.0);
    printf("%-25s  %-26s  %5s  %s\n", info->key, amount, age, out_dir);
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error("cannot write the list to standard output");
    return FERRY_EXIT_FAILURE;
  }
  return FERRY_EXIT_OK;
}

static int delete (const char *id)
{
  GError *error = NULL;
  if (!ferry_checkpoint_delete(NULL, id, &error)) {
    cli_error("%s (see 'ferry checkpoint list')", error->message);
    g_error_free(error);
    return FERRY_EXIT_FAILURE;
  }
  printf("deleted checkpoint %s and its partial files\n", id);
  return FERRY_EXIT_OK;
}

static int
clean(gint64 ttl, const char *ttl_text)
{
  guint n = ferry_checkpoints_clean(NULL, ttl);
  guint sends = cli_send_records_clean(ttl);
  if (ttl == 0)
    printf("deleted %u %s and %u %s of earlier sends\n", n, n == 1 ? "checkpoint" : "checkpoints",
           sends, sends == 1 ? "record" : "records");
  else
    printf("deleted %u %s and %u send %s older than %s\n", n, n == 1 ? "checkpoint" : "checkpoints",
           sends, sends == 1 ? "record" : "records", ttl_text);
  return FERRY_EXIT_OK;
}

static const char description[] =
    "Actions:\n"
    "  list         the checkpoints: id, verified and total bytes, age, output directory\n"
    "  delete ID    one checkpoint (a unique prefix of its id is enough) and its partial files\n"
    "  clean        those older than --ttl (default 7d), and old records of sends\n"
    "  clean-all    all of them\n"
    "\n"
    "A receive that stops before the end leaves a checkpoint (under\n"
    "$XDG_STATE_HOME/ferry/checkpoints) so that running it again moves only what is missing.";

int
cmd_checkpoint(int argc, char **argv)
{
  gboolean json = FALSE;
  g_autofree char *ttl_text = NULL;
  GOptionEntry entries[] = {
      {"json", 0, 0, G_OPTION_ARG_NONE, &json, "list: one JSON object per checkpoint and line",
       NULL},
      {"ttl", 0, 0, G_OPTION_ARG_STRING, &ttl_text,
       "clean: delete what is older than this (default 7d): 90m, 12h, 3d…", "DURATION"},
      G_OPTION_ENTRY_NULL,
  };
  gint64 ttl = FERRY_CHECKPOINT_DEFAULT_TTL;

  if (!cli_parse(&argc, &argv, "list | delete ID | clean | clean-all - manage checkpoints", NULL,
                 description, entries))
    return FERRY_EXIT_USAGE;
  const char *action = argc > 1 ? argv[1] : NULL;
  int n_args = argc - 2;
  if (action == NULL) {
    cli_error("say what to do: list, delete ID, clean or clean-all (see 'ferry checkpoint "
              "--help')");
    return FERRY_EXIT_USAGE;
  }
  if (ttl_text != NULL && (!cli_parse_duration(ttl_text, &ttl) || ttl == 0)) {
    cli_error("--ttl '%s' is not a duration: use seconds or a number with s, m, h or d (e.g. "
              "3d); to delete everything use clean-all",
              ttl_text);
    return FERRY_EXIT_USAGE;
  }
  if (ttl_text != NULL && strcmp(action, "clean") != 0) {
    cli_error("--ttl goes with clean only");
    return FERRY_EXIT_USAGE;
  }
  if (json && strcmp(action, "list") != 0) {
    cli_error("--json goes with list only");
    return FERRY_EXIT_USAGE;
  }
  if (strcmp(action, "delete") == 0) {
    if (n_args != 1) {
      cli_error("delete takes one checkpoint id: ferry checkpoint delete ID (see 'ferry "
                "checkpoint list')");
      return FERRY_EXIT_USAGE;
    }
    return delete (argv[2]);
  }
  if (strcmp(action, "list") != 0 && strcmp(action, "clean") != 0 &&
      strcmp(action, "clean-all") != 0) {
    cli_error("unknown action '%s': use list, delete ID, clean or clean-all", action);
    return FERRY_EXIT_USAGE;
  }
  if (n_args > 0) {
    cli_error("%s takes no arguments ('%s')", action, argv[2]);
    return FERRY_EXIT_USAGE;
  }
  if (strcmp(action, "list") == 0)
    return list(json);
  if (strcmp(action, "clean") == 0)
    return clean(ttl, ttl_text != NULL ? ttl_text : "7d");
  return clean(0, NULL);
}
