/* Helpers shared by the tests that start a real `ferry serve`. */
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#include <glib/gstdio.h>

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
  g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);

  for (int attempt = 0; attempt < 50; attempt++) {
    g_autoptr(GSocket) tcp = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, 0, NULL);
    g_autoptr(GSocket) udp = g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, 0, NULL);
    g_autoptr(GSocketAddress) any = g_inet_socket_address_new(lo, 0);
    g_autoptr(GSocketAddress) bound = NULL;
    g_autoptr(GSocketAddress) same = NULL;
    guint16 port;

    g_assert_true(g_socket_bind(tcp, any, FALSE, NULL));
    bound = g_socket_get_local_address(tcp, NULL);
    port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
    same = g_inet_socket_address_new(lo, port);
    if (g_socket_bind(udp, same, FALSE, NULL))
      return port;
  }
  g_error("no port free for both TCP and UDP on 127.0.0.1");
  return 0;
}

/* A self-signed certificate for turn.ferry.test; FALSE without openssl. */
static gboolean
make_certificate(const char *dir)
{
  g_autofree char *openssl = g_find_program_in_path("openssl");
  g_autofree char *key = g_build_filename(dir, "key.pem", NULL);
  g_autofree char *cert = g_build_filename(dir, "cert.pem", NULL);
  const char *argv[] = {openssl,
                        "req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:prime256v1",
                        "-nodes",
                        "-keyout",
                        key,
                        "-out",
                        cert,
                        "-days",
                        "1",
                        "-subj",
                        "/CN=turn.ferry.test",
                        NULL};
  int status = 0;

  if (openssl == NULL)
    return FALSE;
  if (!g_spawn_sync(NULL, (char **)argv, NULL,
                    G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL,
                    &status, NULL))
    return FALSE;
  return g_spawn_check_wait_status(status, NULL);
}

static gboolean
coturn_try_start(TestCoturn *c, gboolean tls)
{
  g_autofree char *log = g_build_filename(c->dir, "turnserver.log", NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GSubprocessLauncher) l = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_NONE);
  g_autoptr(GError) error = NULL;
  /* Relay ports below the kernel's ephemeral range, busy with other tests. */
  guint min_port = (guint)g_test_rand_int_range(20000, 32000);

  c->port = test_free_port();
  do
    c->tls_port = tls ? test_free_port() : 0;
  while (tls && c->tls_port == c->port);
#define ARG(...) g_ptr_array_add(argv, g_strdup_printf(__VA_ARGS__))
  ARG("turnserver");
  ARG("-n");
  ARG("--log-file=stdout");
  ARG("--simple-log");
  ARG("--listening-ip=127.0.0.1");
  ARG("--relay-ip=127.0.0.1");
  ARG("--listening-port=%u", c->port);
  ARG("--allow-loopback-peers");
  ARG("--no-dtls");
  ARG("--no-cli");
  ARG("--realm=ferry.test");
  ARG("--use-auth-secret");
  ARG("--static-auth-secret=%s", c->secret);
  ARG("--min-port=%u", min_port);
  ARG("--max-port=%u", min_port + 199);
  ARG("--pidfile=%s/turnserver.pid", c->dir);
  ARG("--userdb=%s/turndb", c->dir);
  if (tls) {
    ARG("--tls-listening-port=%u", c->tls_port);
    ARG("--cert=%s/cert.pem", c->dir);
    ARG("--pkey=%s/key.pem", c->dir);
  } else {
    ARG("--no-tls");
  }
#undef ARG
  g_ptr_array_add(argv, NULL);

  g_subprocess_launcher_set_stdout_file_path(l, log);
  g_subprocess_launcher_set_flags(l, G_SUBPROCESS_FLAGS_STDERR_MERGE);
  /* a failing test must not leave coturn behind */
  g_subprocess_launcher_set_child_setup(l, die_with_parent, NULL, NULL);
  c->proc = g_subprocess_launcher_spawnv(l, (const char *const *)argv->pdata, &error);
  g_assert_no_error(error);

  for (int i = 0; i < 200; i++) {
    g_autofree char *text = NULL;
    g_usleep(50000);
    if (!g_file_get_contents(log, &text, NULL, NULL))
      continue;
    if (strstr(text, "Address already in use") != NULL)
      break;
    if (strstr(text, "Total General servers") != NULL)
      return TRUE;
  }
  g_subprocess_force_exit(c->proc);
  g_subprocess_wait(c->proc, NULL, NULL);
  g_clear_object(&c->proc);
  return FALSE;
}

gboolean
test_coturn_start(TestCoturn *c, gboolean tls)
{
  g_autofree char *bin = g_find_program_in_path("turnserver");

  memset(c, 0, sizeof *c);
  if (bin == NULL)
    return FALSE;
  c->dir = g_dir_make_tmp("ferry-turn-XXXXXX", NULL);
  g_assert_nonnull(c->dir);
  c->secret = g_strdup_printf("ferry-test-%08x", g_test_rand_int());
  tls = tls && make_certificate(c->dir);
  for (int attempt = 0; attempt < 3; attempt++)
    if (coturn_try_start(c, tls))
      return TRUE;
  g_error("turnserver did not start; see %s/turnserver.log", c->dir);
  return FALSE;
}

void
test_coturn_stop(TestCoturn *c)
{
  const char *files[] = {"turnserver.log", "turnserver.pid", "turndb", "cert.pem", "key.pem"};

  if (c->proc != NULL) {
    g_subprocess_send_signal(c->proc, SIGTERM);
    g_subprocess_wait(c->proc, NULL, NULL);
    g_clear_object(&c->proc);
  }
  for (guint i = 0; i < G_N_ELEMENTS(files) && c->dir != NULL; i++) {
    g_autofree char *p = g_build_filename(c->dir, files[i], NULL);
    g_unlink(p);
  }
  if (c->dir != NULL)
    g_rmdir(c->dir);
  g_clear_pointer(&c->dir, g_free);
  g_clear_pointer(&c->secret, g_free);
}
