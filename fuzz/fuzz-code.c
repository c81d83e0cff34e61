/* Fuzz target: ferry_code_parse() on arbitrary text. Checks that a code
 * that parses prints canonically and parses back to itself, and that a
 * failure always comes with a message in valid UTF-8. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ferry/code.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  FerryCode code, again;
  FerryCodeDiag diag;
  char text[FERRY_CODE_TEXT_SIZE];

  int ret = ferry_code_parse((const char *)data, size, &code, &diag);
  if (ret == 0) {
    int len = ferry_code_format(&code, text, sizeof text);
    if (len <= 0 || (size_t)len != strlen(text))
      abort();
    if (ferry_code_parse(text, (size_t)len, &again, NULL) != 0)
      abort();
    if (memcmp(&code, &again, sizeof code) != 0)
      abort();
    if (code.nameplate < 1 || code.nameplate > FERRY_NAMEPLATE_MAX)
      abort();
  } else {
    if (ret != FERRY_ERR_INVALID && ret != FERRY_ERR_TOO_LONG)
      abort();
    if (diag.message[0] == '\0' || !g_utf8_validate(diag.message, -1, NULL))
      abort();
    if (diag.suggestion >= FERRY_WORDLIST_COUNT)
      abort();
  }

  /* The word helpers on the raw bytes, too. */
  if (size <= FERRY_WORD_DISTANCE_MAX) {
    int i = ferry_word_lookup((const char *)data, size);
    if (i >= FERRY_WORDLIST_COUNT)
      abort();
    int n = ferry_word_nearest((const char *)data, size);
    if (i >= 0 && n != i)
      abort();
  }
  return 0;
}
