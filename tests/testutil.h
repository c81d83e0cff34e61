/* Helpers shared by the tests that start a real `ferry serve`. */
#ifndef FERRY_TESTS_TESTUTIL_H
#define FERRY_TESTS_TESTUTIL_H

#include <gio/gio.h>

typedef struct {
  GSubprocess *proc;
  guint port;
} TestServer;

/* Starts $FERRY_EXE serve --listen LISTEN --no-stun [ARGS…, NULL]; it dies
 * with the test process. srv->port is the port it listens on. */
void test_server_start(TestServer *srv, const char *listen, ...) G_GNUC_NULL_TERMINATED;
void test_server_stop(TestServer *srv);
/* "http://127.0.0.1:PORT"; free it. */
char *test_server_url(guint port);
/* A port on 127.0.0.1 that was free for both TCP and UDP a moment ago
 * (TURN and STUN listen on both). */
guint test_free_port(void);

/* A real coturn on 127.0.0.1 with use-auth-secret (REST credentials:
 * username "EXPIRY:ID", password base64(HMAC-SHA1(secret, username))),
 * its state in a temporary directory; it dies with the test process. */
typedef struct {
  GSubprocess *proc;
  char *dir;
  guint port;     /* TURN over UDP and TCP */
  guint tls_port; /* TURN over TLS; 0 unless asked and openssl is there */
  char *secret;
} TestCoturn;

/* Starts one (with a TLS port too when tls is TRUE and openssl can make a
 * certificate for turn.ferry.test). FALSE when turnserver is not
 * installed: the caller skips. Aborts the test if it does not start. */
gboolean test_coturn_start(TestCoturn *c, gboolean tls);
void test_coturn_stop(TestCoturn *c);

/* Runs the default main context until pred holds or seconds pass. */
#define WAIT_FOR(pred, seconds)                                                                    \
  G_STMT_START                                                                                     \
  {                                                                                                \
    gint64 deadline_ = g_get_monotonic_time() + (seconds)*G_USEC_PER_SEC;                          \
    while (!(pred) && g_get_monotonic_time() < deadline_)                                          \
      g_main_context_iteration(NULL, FALSE) || (g_usleep(1000), 0);                                \
    if (!(pred))                                                                                   \
      g_error("timed out after %ds waiting for: %s", (int)(seconds), #pred);                       \
  }                                                                                                \
  G_STMT_END

#endif
