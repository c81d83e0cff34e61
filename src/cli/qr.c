/* QR codes in the terminal for `ferry send --link` (libqrencode). */
#include <qrencode.h>

#include "link.h"

char *
cli_qr_text(const char *text)
{
  QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
  if (qr == NULL)
    return NULL;
  const int quiet = 2, w = qr->width, side = w + 2 * quiet;
  GString *out = g_string_new(NULL);
  /* Two rows of modules per line. Light modules (and the quiet zone) are
   * drawn, so that a terminal's dark background makes the dark ones. */
  for (int y = 0; y < side; y += 2) {
    for (int x = 0; x < side; x++) {
      gboolean dark[2];
      for (int i = 0; i < 2; i++) {
        int mx = x - quiet, my = y + i - quiet;
        dark[i] = mx >= 0 && my >= 0 && mx < w && my < w && (qr->data[my * w + mx] & 1) != 0;
      }
      if (y + 1 >= side)
        dark[1] = TRUE; /* past the bottom: nothing drawn */
      g_string_append(out, !dark[0] && !dark[1] ? "\u2588"
                           : !dark[0]           ? "\u2580"
                           : !dark[1]           ? "\u2584"
                                                : " ");
    }
    g_string_append_c(out, '\n');
  }
  QRcode_free(qr);
  return g_string_free(out, FALSE);
}
