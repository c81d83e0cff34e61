/* ferry scan: lists what `ferry send` would offer for the same paths,
 * one line per entry as the scan goes, then a summary. */
#include <stdio.h>
#include <string.h>

#include <ferry/ferry.h>

#include <ferry/manifest.h>

#include "commands.h"

static gboolean opt_json;

/* Writes s for a terminal: valid UTF-8 as it is, but control characters,
 * bytes that are not UTF-8 and backslashes escaped, so a hostile file
 * name cannot move the cursor or fake a line of output. */
static void
put_display(FILE *out, const char *s)
{
  while (*s != '\0') {
    gunichar c = g_utf8_get_char_validated(s, -1);
    if (c == (gunichar)-1 || c == (gunichar)-2 || c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
      fprintf(out, "\\x%02x", (guchar)*s);
      s++;
      continue;
    }
    const char *next = g_utf8_next_char(s);
    if (c == '\\')
      fputc('\\', out);
    fwrite(s, 1, (size_t)(next - s), out);
    s = next;
  }
}

/* Writes s as a JSON string. JSON text is Unicode, so a byte that is not
 * UTF-8 (only possible in issue paths and symlink targets) becomes
 * U+FFFD. */
static void
put_json_string(FILE *out, const char *s)
{
  fputc('"', out);
  while (*s != '\0') {
    gunichar c = g_utf8_get_char_validated(s, -1);
    if (c == (gunichar)-1 || c == (gunichar)-2) {
      fputs("\\ufffd", out);
      s++;
      continue;
    }
    const char *next = g_utf8_next_char(s);
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", (char)c);
    else if (c < 0x20 || c == 0x7f)
      fprintf(out, "\\u%04x", c);
    else
      fwrite(s, 1, (size_t)(next - s), out);
    s = next;
  }
  fputc('"', out);
}

static const char *
issue_kind_name(FerryScanIssueKind kind)
{
  switch (kind) {
  case FERRY_SCAN_ISSUE_SPECIAL:
    return "special";
  case FERRY_SCAN_ISSUE_UNREADABLE:
    return "unreadable";
  case FERRY_SCAN_ISSUE_CHANGED:
    return "changed";
  case FERRY_SCAN_ISSUE_BAD_NAME:
    return "bad-name";
  }
  return "other";
}

/* Issues are warnings on stderr in both modes; with --json they are also
 * objects in the output stream, in scan order. */
static gboolean
report_issue(const FerryScanIssue *issue, gpointer user_data)
{
  fflush(stdout);
  fputs("ferry: warning: skipped '", stderr);
  put_display(stderr, issue->path);
  fprintf(stderr, "': %s\n", issue->reason);
  if (opt_json) {
    fprintf(stdout,
            "{\"type\":\"skipped\",\"kind\":\"%s\",\"path\":", issue_kind_name(issue->kind));
    put_json_string(stdout, issue->path);
    fputs(",\"reason\":", stdout);
    put_json_string(stdout, issue->reason);
    fputs("}\n", stdout);
  }
  return TRUE;
}

static void
print_entry(const FerryEntry *entry)
{
  static const char *const type_names[] = {"file", "dir", "symlink"};
  static const char type_letters[] = {'f', 'd', 'l'};

  if (opt_json) {
    printf("{\"type\":\"%s\",\"path\":", type_names[entry->type]);
    put_json_string(stdout, entry->path);
    printf(",\"size\":%" G_GUINT64_FORMAT ",\"mode\":\"%04o\",\"mtime_ns\":%" G_GINT64_FORMAT,
           entry->size, (unsigned)entry->mode, entry->mtime_ns);
    if (entry->link_target != NULL) {
      fputs(",\"target\":", stdout);
      put_json_string(stdout, entry->link_target);
    }
    fputs("}\n", stdout);
    return;
  }
  printf("%c %04o %12" G_GUINT64_FORMAT " ", type_letters[entry->type], (unsigned)entry->mode,
         entry->size);
  put_display(stdout, entry->path);
  if (entry->link_target != NULL) {
    fputs(" -> ", stdout);
    put_display(stdout, entry->link_target);
  }
  fputc('\n', stdout);
}

static void
print_summary(const FerryScanTotals *t)
{
  if (opt_json) {
    printf("{\"type\":\"summary\",\"files\":%" G_GUINT64_FORMAT ",\"dirs\":%" G_GUINT64_FORMAT
           ",\"symlinks\":%" G_GUINT64_FORMAT ",\"bytes\":%" G_GUINT64_FORMAT
           ",\"skipped\":%" G_GUINT64_FORMAT "}\n",
           t->files, t->dirs, t->symlinks, t->bytes, t->issues);
    return;
  }
  char *human = g_format_size_full(t->bytes, G_FORMAT_SIZE_IEC_UNITS);
  printf("%" G_GUINT64_FORMAT " %s, %" G_GUINT64_FORMAT " %s, %" G_GUINT64_FORMAT " %s, "
         "%" G_GUINT64_FORMAT " %s (%s)",
         t->files, t->files == 1 ? "file" : "files", t->dirs,
         t->dirs == 1 ? "directory" : "directories", t->symlinks,
         t->symlinks == 1 ? "symlink" : "symlinks", t->bytes, t->bytes == 1 ? "byte" : "bytes",
         human);
  if (t->issues > 0)
    printf("; %" G_GUINT64_FORMAT " skipped (see the warnings)", t->issues);
  putchar('\n');
  g_free(human);
}

int
cmd_scan(int argc, char **argv)
{
  GOptionEntry entries[] = {
      {"json", 0, 0, G_OPTION_ARG_NONE, &opt_json, "Print one JSON object per line", NULL},
      G_OPTION_ENTRY_NULL,
  };
  if (!cli_parse(&argc, &argv, "PATH… - list what would be sent", NULL,
                 "Scans the files and directories named, as 'ferry send' would, without sending\n"
                 "anything. Symlinks are listed, not followed; FIFOs, sockets, devices and\n"
                 "unreadable entries are skipped with a warning.\n\n"
                 "Each line: type (f file, d directory, l symlink), permissions, size, path.",
                 entries))
    return FERRY_EXIT_USAGE;

  int first = 1;
  if (first < argc && strcmp(argv[first], "--") == 0)
    first++;
  if (first >= argc) {
    cli_error("name at least one file or directory to scan (see 'ferry scan --help')");
    return FERRY_EXIT_USAGE;
  }

  GError *error = NULL;
  const char **paths = g_new0(const char *, (gsize)(argc - first) + 1);
  for (int i = first; i < argc; i++)
    paths[i - first] = argv[i];
  FerryScanner *scanner = ferry_scanner_new(paths, &error);
  g_free(paths);
  if (scanner == NULL) {
    cli_error("%s", error->message);
    g_error_free(error);
    return FERRY_EXIT_FAILURE;
  }
  ferry_scanner_set_issue_func(scanner, report_issue, NULL);

  const FerryEntry *entry;
  int rc;
  while ((rc = ferry_scanner_next(scanner, &entry)) == 1)
    print_entry(entry);
  print_summary(ferry_scanner_totals(scanner));
  ferry_scanner_free(scanner);

  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error("cannot write the listing to standard output");
    return FERRY_EXIT_FAILURE;
  }
  return rc == 0 ? FERRY_EXIT_OK : FERRY_EXIT_FAILURE;
}
