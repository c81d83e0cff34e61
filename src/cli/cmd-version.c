/* ferry version: the version of the program and of the libraries it uses. */
#include <stdio.h>

#include <gnutls/gnutls.h>
#include <sodium.h>

#include <ferry/ferry.h>

#include "commands.h"

int
cmd_version(int argc, char **argv)
{
  if (!cli_parse(&argc, &argv, "- print ferry's version", NULL, NULL, NULL))
    return FERRY_EXIT_USAGE;

  printf("ferry %s\n", ferry_version());
  printf("  glib %u.%u.%u, gnutls %s, libsodium %s\n", glib_major_version, glib_minor_version,
         glib_micro_version, gnutls_check_version(NULL), sodium_version_string());
  return FERRY_EXIT_OK;
}
