/* Helpers shared by the tests that start a real `ferry serve`. */
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include "testutil.h"

static void
die_with_parent(gpointer data)
{
  prctl(PR_SET_PDEATHSIG, SIGKILL);
}

void
test_server_start(TestServer *srv, const char *listen, ...)
{
  GPtrArray *argv = g_ptr_array_new();
  va_list ap;
  const char *arg;
  GError *error = NULL;

  g_ptr_array_add(argv, (char *)g_getenv("FERRY_EXE"));
  g_ptr_array_add(argv, "serve");
  g_ptr_array_add(argv, "--listen");
  g_ptr_array_add(argv, (char *)listen);
  g_ptr_array_add(argv, "--no-stun");
  va_start(ap, listen);
  while ((arg = va_arg(ap, const char *)) != NULL)
    g_ptr_array_add(argv, (char *)arg);
  va_end(ap);
  g_ptr_array_add(argv, NULL);
  GSubprocessLauncher *l = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  /* a test that fails must not leave servers behind */
  g_subprocess_launcher_set_child_setup(l, die_with_parent, NULL, NULL);
  srv->proc = g_subprocess_launcher_spawnv(l, (const char *const *)argv->pdata, &error);
  g_object_unref(l);
  g_assert_no_error(error);
  g_ptr_array_free(argv, TRUE);

  GDataInputStream *in = g_data_input_stream_new(g_subprocess_get_stdout_pipe(srv->proc));
  char *line = g_data_input_stream_read_line(in, NULL, NULL, &error);
  g_assert_no_error(error);
  g_assert_nonnull(line);
  const char *p = strstr(line, "(port ");
  g_assert_nonnull(p);
  srv->port = (guint)g_ascii_strtoull(p + 6, NULL, 10);
  g_free(line);
  g_object_unref(in);
}

void
test_server_stop(TestServer *srv)
{
  g_subprocess_force_exit(srv->proc);
  g_subprocess_wait(srv->proc, NULL, NULL);
  g_clear_object(&srv->proc);
}

char *
test_server_url(guint port)
{
  return g_strdup_printf("http://127.0.0.1:%u", port);
}

guint
test_free_port(void)
{
  GSocket *s = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, NULL);
  GInetAddress *lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
  GSocketAddress *a = g_inet_socket_address_new(lo, 0);
  g_assert_true(g_socket_bind(s, a, TRUE, NULL));
  GSocketAddress *bound = g_socket_get_local_address(s, NULL);
  guint port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
  g_object_unref(bound);
  g_object_unref(a);
  g_object_unref(lo);
  g_object_unref(s);
  return port;
}
