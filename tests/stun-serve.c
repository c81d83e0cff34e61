/* stun-serve [ADDRESS [PORT]]: runs a FerryStunServer for tests that
 * drive it with other programs' STUN clients. Prints the UDP port it
 * answers on, then serves until SIGTERM or SIGINT, and on the way out
 * prints its counters as "requests=N responses=N dropped=N". ADDRESS
 * defaults to 127.0.0.1 ("any" listens on every address), PORT to 0. */
#include <stdio.h>
#include <stdlib.h>

#include <glib-unix.h>

#include <ferry/ferry.h>

#include "server/stun-server.h"

static gboolean
on_signal(gpointer data)
{
  g_main_loop_quit(data);
  return G_SOURCE_CONTINUE;
}

int
main(int argc, char **argv)
{
  const char *address = argc > 1 ? argv[1] : "127.0.0.1";
  guint16 port = argc > 2 ? (guint16)strtoul(argv[2], NULL, 10) : 0;
  GMainLoop *loop = g_main_loop_new(NULL, FALSE);
  FerryStunServer *server = ferry_stun_server_new(NULL);
  GError *error = NULL;
  guint term, intr;

  ferry_log_init(FALSE);
  if (g_strcmp0(address, "any") == 0)
    address = NULL;
  if (!ferry_stun_server_listen(server, address, port, &error)) {
    fprintf(stderr, "stun-serve: %s\n", error->message);
    g_error_free(error);
    ferry_stun_server_free(server);
    g_main_loop_unref(loop);
    return 1;
  }
  printf("%u\n", ferry_stun_server_get_port(server));
  fflush(stdout);

  term = g_unix_signal_add(SIGTERM, on_signal, loop);
  intr = g_unix_signal_add(SIGINT, on_signal, loop);
  g_main_loop_run(loop);
  g_source_remove(term);
  g_source_remove(intr);

  printf("requests=%" G_GUINT64_FORMAT " responses=%" G_GUINT64_FORMAT " dropped=%" G_GUINT64_FORMAT
         "\n",
         ferry_stun_server_get_requests(server), ferry_stun_server_get_responses(server),
         ferry_stun_server_get_dropped(server));
  ferry_stun_server_free(server);
  g_main_loop_unref(loop);
  return 0;
}
