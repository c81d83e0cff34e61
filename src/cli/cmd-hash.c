/* ferry hash: the root hash and chunk hashes of files, exactly as a
 * receiver verifies them, one line per file. */
#include <stdio.h>

#include <ferry/ferry.h>

#include <ferry/hash.h>

#include "commands.h"

/* Writes a path given on the command line with control characters and
 * backslashes escaped, so every file stays on one line of output. */
static void
put_path(const char *s)
{
  for (; *s != '\0'; s++) {
    guchar c = (guchar)*s;
    if (c < 0x20 || c == 0x7f || c == '\\')
      printf("\\x%02x", c);
    else
      putchar(c);
  }
}

int
cmd_hash(int argc, char **argv)
{
  char *opt_chunk_size = NULL;
  gboolean opt_chunks = FALSE;
  guint32 chunk_size = FERRY_CHUNK_SIZE_DEFAULT;
  GOptionEntry entries[] = {
      {"chunk-size", 0, 0, G_OPTION_ARG_STRING, &opt_chunk_size,
       "Chunk size: a power of two from 64K to 64M (default 1M)", "SIZE"},
      {"chunks", 0, 0, G_OPTION_ARG_NONE, &opt_chunks, "Also print each chunk's index and SHA-256",
       NULL},
      G_OPTION_ENTRY_NULL,
  };
  GError *error = NULL;
  int status = FERRY_EXIT_OK;

  if (!cli_parse(
          &argc, &argv, "FILE… - print each file's root hash", NULL,
          "Prints \"ROOTHASH  N chunks  SIZE  PATH\" per file. Each chunk's hash is its SHA-256;\n"
          "the root hash is SHA-256(\"ferry-root-v1\" || u64be chunk size || u64be file size ||\n"
          "the chunk hashes), the value a receiver checks the whole file against.\n",
          entries))
    goto usage;
  if (opt_chunk_size != NULL && !ferry_chunk_size_parse(opt_chunk_size, &chunk_size, &error)) {
    cli_error("--chunk-size: %s", error->message);
    g_error_free(error);
    goto usage;
  }
  if (argc < 2) {
    cli_error("name at least one file to hash (see 'ferry hash --help')");
    goto usage;
  }

  for (int i = 1; i < argc; i++) {
    char hex[FERRY_HASH_HEX_LEN + 1];
    g_autoptr(FerryFileHash) hash = ferry_hash_file(argv[i], chunk_size, 0, &error);
    if (hash == NULL) {
      cli_error("%s", error->message);
      g_clear_error(&error);
      status = FERRY_EXIT_FAILURE;
      continue;
    }
    ferry_hash_to_hex(hash->root, hex);
    printf("%s  %" G_GUINT64_FORMAT " chunks  %" G_GUINT64_FORMAT "  ", hex, hash->n_chunks,
           hash->size);
    put_path(argv[i]);
    putchar('\n');
    for (guint64 c = 0; opt_chunks && c < hash->n_chunks; c++) {
      ferry_hash_to_hex(hash->chunk_hashes + c * FERRY_HASH_LEN, hex);
      printf("  chunk %" G_GUINT64_FORMAT "  %s\n", c, hex);
    }
  }
  if (fflush(stdout) != 0) {
    cli_error("cannot write the hashes to standard output");
    status = FERRY_EXIT_FAILURE;
  }
  g_free(opt_chunk_size);
  return status;

usage:
  g_free(opt_chunk_size);
  return FERRY_EXIT_USAGE;
}
