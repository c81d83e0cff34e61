/* ferry code: draw fresh code words, or check a code someone typed. */
#include <stdio.h>
#include <string.h>

#include <ferry/ferry.h>

#include "commands.h"
#include <ferry/code.h>

static int
check_code(const char *text)
{
  FerryCode code;
  FerryCodeDiag diag;
  char canonical[FERRY_CODE_TEXT_SIZE];

  if (ferry_code_parse(text, strlen(text), &code, &diag) < 0) {
    cli_error("%s", diag.message);
    return FERRY_EXIT_FAILURE;
  }
  if (ferry_code_format(&code, canonical, sizeof canonical) < 0) {
    cli_error("cannot print the code '%s' (this is a bug in ferry; please report it)", text);
    return FERRY_EXIT_FAILURE;
  }
  printf("%s\n", canonical);
  return FERRY_EXIT_OK;
}

static int
new_words(int n_words)
{
  FerryCode code;
  char words[FERRY_CODE_TEXT_SIZE];

  if (ferry_code_generate(&code, (unsigned)n_words) < 0 ||
      ferry_code_format(&code, words, sizeof words) < 0) {
    cli_error("cannot draw random words: libsodium did not start (is /dev/urandom readable?)");
    return FERRY_EXIT_FAILURE;
  }
  printf("%s\n", words);
  fprintf(stderr,
          "ferry: when you send, the server puts a number in front: the code will look like "
          "42-%s\n",
          words);
  return FERRY_EXIT_OK;
}

int
cmd_code(int argc, char **argv)
{
  int n_words = G_MININT; /* G_MININT: not given */
  char *check = NULL;
  GOptionEntry entries[] = {
      {"words", 'w', 0, G_OPTION_ARG_INT, &n_words, "Number of words (2 to 8; default 3)", "N"},
      {"check", 'c', 0, G_OPTION_ARG_STRING, &check,
       "Check a code (like 7-ocean-tiger-piano) and print it canonically", "CODE"},
      G_OPTION_ENTRY_NULL,
  };
  int ret;

  if (!cli_parse(&argc, &argv, "- make or check a join code",
                 "Prints fresh random code words, or checks a code someone typed and prints it "
                 "the way ferry reads it.",
                 NULL, entries)) {
    g_free(check);
    return FERRY_EXIT_USAGE;
  }

  if (argc > 1) {
    cli_error("unexpected argument '%s' (to check a code: ferry code --check CODE)", argv[1]);
    ret = FERRY_EXIT_USAGE;
  } else if (check != NULL && n_words != G_MININT) {
    cli_error("--words and --check do not go together: a code to check has its own words");
    ret = FERRY_EXIT_USAGE;
  } else if (check != NULL) {
    ret = check_code(check);
  } else if (n_words != G_MININT &&
             (n_words < FERRY_CODE_MIN_WORDS || n_words > FERRY_CODE_MAX_WORDS)) {
    cli_error("--words must be %d to %d (got %d)", FERRY_CODE_MIN_WORDS, FERRY_CODE_MAX_WORDS,
              n_words);
    ret = FERRY_EXIT_USAGE;
  } else {
    ret = new_words(n_words != G_MININT ? n_words : FERRY_CODE_DEFAULT_WORDS);
  }
  g_free(check);
  return ret;
}
