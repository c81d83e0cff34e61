/* What a FerryTransfer does the same on both sides: progress, the end,
 * and handing calls to the sender or the receiver. */
#include <string.h>

#include "transfer/transfer-private.h"

void
ferry_transfer_id_to_hex(const guint8 id[FERRY_TRANSFER_ID_LEN],
                         char out[FERRY_TRANSFER_ID_HEX_LEN + 1])
{
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < FERRY_TRANSFER_ID_HEX_LEN / 2; i++) {
    out[2 * i] = digits[id[i] >> 4];
    out[2 * i + 1] = digits[id[i] & 0xf];
  }
  out[FERRY_TRANSFER_ID_HEX_LEN] = '\0';
}

#define LINGER_MS 2000

static gboolean
finish_idle(gpointer data)
{
  FerryTransfer *t = data;
  if (t->linger_until != 0 && t->lingering != NULL && t->lingering(t) &&
      g_get_monotonic_time() < t->linger_until)
    return G_SOURCE_CONTINUE;
  GError *error = g_steal_pointer(&t->finish_error);
  t->finish_idle = 0;
  if (t->handlers.finished != NULL)
    t->handlers.finished(t, error, t->user_data);
  g_clear_error(&error);
  return G_SOURCE_REMOVE;
}

/* Marks t finished with error (taken) and schedules the finished handler:
 * from an idle, or polled every 10 ms while t->lingering() holds (at most
 * LINGER_MS) when linger is TRUE. */
static void
finish(FerryTransfer *t, GError *error, gboolean linger)
{
  if (t->finished) {
    g_clear_error(&error);
    return;
  }
  t->finished = TRUE;
  t->progress.finished_us = g_get_monotonic_time();
  t->finish_error = error;
  g_clear_pointer(&t->current_path, g_free);
  if (linger) {
    t->linger_until = g_get_monotonic_time() + LINGER_MS * 1000;
    t->finish_idle = g_timeout_add(10, finish_idle, t);
  } else {
    t->finish_idle = g_idle_add(finish_idle, t);
  }
}

void
ferry_transfer_finish(FerryTransfer *t, GError *error)
{
  finish(t, error, FALSE);
}

void
ferry_transfer_finish_linger(FerryTransfer *t, GError *error)
{
  finish(t, error, TRUE);
}

void
ferry_transfer_set_current(FerryTransfer *t, const char *path, guint64 size, guint64 done)
{
  if (path == NULL) {
    g_clear_pointer(&t->current_path, g_free);
  } else if (t->current_path == NULL || strcmp(t->current_path, path) != 0) {
    g_free(t->current_path);
    t->current_path = g_strdup(path);
  }
  t->progress.current_size = size;
  t->progress.current_done = done;
}

void
ferry_transfer_emit_file(FerryTransfer *t, FerryFileStatus status, FerryEntryType type,
                         const char *path, const char *final_path, guint64 size,
                         const char *message)
{
  FerryFileEvent ev = {status, type, path, final_path, size, message};
  if (status == FERRY_FILE_SKIPPED)
    t->progress.files_failed++;
  else if (type == FERRY_ENTRY_FILE)
    t->progress.files_done++;
  if (t->handlers.file != NULL)
    t->handlers.file(t, &ev, t->user_data);
}

void
ferry_transfer_get_progress(FerryTransfer *t, FerryTransferProgress *p)
{
  *p = t->progress;
  p->current_path = t->current_path;
}

FerryConnection *
ferry_transfer_get_connection(FerryTransfer *t)
{
  return t->conn;
}

const char *
ferry_transfer_get_id(FerryTransfer *t)
{
  return t->id_hex;
}

const char *
ferry_transfer_get_checkpoint_path(FerryTransfer *t)
{
  return t->is_sender ? NULL : ferry_recv_checkpoint_path(t);
}

void
ferry_transfer_accept(FerryTransfer *t)
{
  g_return_if_fail(!t->is_sender);
  ferry_recv_accept(t);
}

void
ferry_transfer_decline(FerryTransfer *t, const char *reason)
{
  g_return_if_fail(!t->is_sender);
  ferry_recv_decline(t, reason);
}

void
ferry_transfer_cancel(FerryTransfer *t)
{
  if (t->finished)
    return;
  if (t->is_sender)
    ferry_send_cancel(t);
  else
    ferry_recv_cancel(t);
}

void
ferry_transfer_free(FerryTransfer *t)
{
  if (t == NULL)
    return;
  if (t->finish_idle != 0)
    g_source_remove(t->finish_idle);
  g_clear_error(&t->finish_error);
  /* The connection goes first so that no stream handler runs into a
   * half-freed state. */
  if (t->ctl_ref != NULL)
    ferry_stream_unref(t->ctl_ref);
  ferry_connection_free(t->conn);
  if (t->send != NULL)
    ferry_send_state_free(t->send);
  if (t->recv != NULL)
    ferry_recv_state_free(t->recv);
  g_free(t->current_path);
  g_free(t);
}
