/* The landing page of the HTTP relay: see relay-page.h. */
#include "server/relay-page.h"

#include <string.h>

/* The page a browser sees: what is offered and a button (a plain link) to
 * fetch it. Inline CSS only; nothing is loaded from anywhere. */
char *
ferry_relay_page_render(const FerryRelayPage *info, const char **csp)
{
  char *name = g_markup_escape_text(info->name, -1);
  char *size = NULL;
  if (info->size >= 0) {
    char *human = g_format_size((guint64)info->size);
    size = g_strdup_printf("%s (%" G_GINT64_FORMAT " bytes)", human, info->size);
    g_free(human);
  } else {
    size = g_strdup("size not known until the end");
  }
  char *page = g_strdup_printf(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>%s — ferry</title><style>"
      "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#222;margin:0;"
      "display:flex;min-height:100vh;align-items:center;justify-content:center}"
      "main{background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.1);"
      "padding:2em 2.5em;max-width:32em;text-align:center}"
      "h1{font-size:1.3em;word-break:break-all;margin:0 0 .4em}"
      ".size{color:#666;margin:0 0 1.5em}"
      "a.button{display:inline-block;background:#2563eb;color:#fff;text-decoration:none;"
      "padding:.8em 2em;border-radius:8px;font-weight:600}"
      "a.button:hover{background:#1d4ed8}"
      ".note{color:#888;font-size:.85em;margin-top:1.5em}"
      "</style></head><body><main>"
      "<h1>%s</h1><p class=\"size\">%s</p>"
      "<a class=\"button\" href=\"?download=1\" download=\"%s\">Download</a>"
      "<p class=\"note\">Sent with ferry. The file streams straight from the sender: "
      "this link works once.</p>"
      "</main></body></html>\n",
      name, name, size, name);
  *csp = "default-src 'none'; style-src 'unsafe-inline'";
  g_free(name);
  g_free(size);
  return page;
}

void
ferry_relay_page_worker_handler(SoupServer *soup, SoupServerMessage *msg, const char *path,
                                GHashTable *query, gpointer user_data)
{
  (void)soup;
  (void)path;
  (void)query;
  (void)user_data;
  static const char text[] = "this server has no service worker for encrypted links yet\n";
  soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, NULL);
  soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_STATIC, text,
                                   sizeof text - 1);
}
