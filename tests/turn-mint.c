/* turn-mint SECRET PEER_ID TTL URL [NOW]: prints the TURN credentials
 * ferry would hand peer PEER_ID, one "key=value" per line (username,
 * credential, expires, url). NOW (unix seconds) defaults to the clock;
 * a past NOW mints credentials that have already run out. */
#include <stdio.h>
#include <stdlib.h>

#include <ferry/ferry.h>

#include "server/turn.h"

int
main(int argc, char **argv)
{
  FerryTurnConfig *config;
  FerryTurnCredentials *creds;
  GError *error = NULL;
  gint64 now;

  if (argc < 5 || argc > 6) {
    fprintf(stderr, "usage: turn-mint SECRET PEER_ID TTL URL [NOW]\n");
    return 2;
  }
  now = argc == 6 ? g_ascii_strtoll(argv[5], NULL, 10) : g_get_real_time() / G_USEC_PER_SEC;
  config = ferry_turn_config_new(argv[1], (guint)strtoul(argv[3], NULL, 10), &error);
  if (config == NULL || !ferry_turn_config_add_url(config, argv[4], &error) ||
      (creds = ferry_turn_config_mint(config, argv[2], now, &error)) == NULL) {
    fprintf(stderr, "turn-mint: %s\n", error->message);
    ferry_turn_config_free(config);
    return 1;
  }
  printf("username=%s\ncredential=%s\nexpires=%" G_GINT64_FORMAT "\n", creds->username,
         creds->credential, creds->expires);
  for (char **u = creds->urls; *u != NULL; u++)
    printf("url=%s\n", *u);
  ferry_turn_credentials_free(creds);
  ferry_turn_config_free(config);
  return 0;
}
