/* Fuzz target: the decoder of client → server signaling messages. */
#include <stdint.h>
#include <string.h>

#include "server/signal-msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  FerrySignalMsg msg;
  const char *slug = NULL, *why = NULL;

  if (ferry_signal_msg_parse((const char *)data, size, &msg, &slug, &why) == 0) {
    /* Whatever is accepted is well-formed by the server's own rules. */
    if (msg.type == FERRY_SIGNAL_JOIN && !ferry_signal_nameplate_valid(msg.nameplate))
      __builtin_trap();
    if (msg.type == FERRY_SIGNAL_SEND && (msg.body == NULL || msg.to[0] == '\0'))
      __builtin_trap();
    ferry_signal_msg_clear(&msg);
  } else if (slug == NULL || why == NULL || strlen(why) == 0) {
    __builtin_trap();
  }
  return 0;
}
