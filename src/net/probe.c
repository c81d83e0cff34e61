/* ferry_server_probe_async(): does a `ferry serve` answer? (connection.h)
 *
 * A receiver that has a server and may also find the sender on the local
 * network asks both at once and goes with whichever answers first. For
 * the server, "answers" means its welcome on the signaling WebSocket:
 * the same connection a join would use, so a server that answers here is
 * one a join can reach. */
#include <ferry/connection.h>

#include "net/signal-client.h"

typedef struct {
  GTask *task;
  FerrySignalClient *sig;
  gulong cancel_id;
  gboolean done;
} Probe;

static gboolean
probe_free(gpointer data)
{
  Probe *p = data;
  ferry_signal_client_free(p->sig);
  g_object_unref(p->task);
  g_free(p);
  return G_SOURCE_REMOVE;
}

/* Returns the task's result once; the client is freed from an idle
 * callback, since this runs inside its own callbacks. */
static void
probe_end(Probe *p, GError *error)
{
  if (p->done) {
    g_clear_error(&error);
    return;
  }
  p->done = TRUE;
  g_cancellable_disconnect(g_task_get_cancellable(p->task), p->cancel_id);
  p->cancel_id = 0;
  if (error != NULL)
    g_task_return_error(p->task, error);
  else
    g_task_return_boolean(p->task, TRUE);
  ferry_signal_client_set_handlers(p->sig, NULL, NULL, NULL);
  ferry_signal_client_close(p->sig);
  g_idle_add(probe_free, p);
}

static void
probe_state(FerrySignalClient *sig, FerrySignalClientState state, guint attempt,
            const GError *error, gpointer user_data)
{
  Probe *p = user_data;
  (void)sig;
  (void)attempt;
  if (state == FERRY_SIGNAL_CLIENT_CONNECTED)
    probe_end(p, NULL);
  else if (state == FERRY_SIGNAL_CLIENT_CLOSED || state == FERRY_SIGNAL_CLIENT_RECONNECTING)
    probe_end(p, g_error_new_literal(FERRY_ERROR, FERRY_ERROR_IO,
                                     error != NULL ? error->message
                                                   : "the ferry server closed the connection"));
}

static gboolean
probe_cancelled_idle(gpointer data)
{
  Probe *p = data;
  probe_end(p, g_error_new_literal(G_IO_ERROR, G_IO_ERROR_CANCELLED, "cancelled"));
  return G_SOURCE_REMOVE;
}

static void
probe_cancelled(GCancellable *cancellable, gpointer data)
{
  (void)cancellable;
  g_idle_add(probe_cancelled_idle, data);
}

void
ferry_server_probe_async(const char *url, GCancellable *cancellable, GAsyncReadyCallback callback,
                         gpointer user_data)
{
  GError *error = NULL;
  GTask *task = g_task_new(NULL, cancellable, callback, user_data);
  g_task_set_source_tag(task, ferry_server_probe_async);

  FerrySignalClient *sig = ferry_signal_client_new(url, &error);
  if (sig == NULL) {
    g_task_return_error(task, error);
    g_object_unref(task);
    return;
  }
  Probe *p = g_new0(Probe, 1);
  p->task = task;
  p->sig = sig;
  ferry_signal_client_set_retry(sig, 0, 100, 100);
  ferry_signal_client_set_handlers(sig, NULL, probe_state, p);
  if (cancellable != NULL)
    p->cancel_id = g_cancellable_connect(cancellable, G_CALLBACK(probe_cancelled), p, NULL);
  ferry_signal_client_start(sig);
}

gboolean
ferry_server_probe_finish(GAsyncResult *result, GError **error)
{
  g_return_val_if_fail(g_task_is_valid(result, NULL), FALSE);
  return g_task_propagate_boolean(G_TASK(result), error);
}
