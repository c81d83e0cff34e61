/* Fuzz target: safe paths. The whole input is validated as one path (so
 * NUL bytes and newlines reach the validator); then, split at '\n', each
 * piece is added to a FerryPathSet (odd pieces as directories). Accepted
 * paths must obey every rule independently re-checked here, and the set
 * must refuse an exact repeat and an ASCII case variant of what it took. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/safepath.h"

static void
check_accepted(const char *p, size_t len)
{
  if (len == 0 || len > FERRY_PATH_MAX || p[0] == '/' || !g_utf8_validate_len(p, len, NULL))
    abort();
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len) {
      unsigned char c = (unsigned char)p[i];
      if (c < 0x20 || c == 0x7f || c == '\\')
        abort();
      if (c != '/')
        continue;
    }
    size_t n = i - start;
    if (n == 0 || n > FERRY_PATH_NAME_MAX)
      abort();
    if ((n == 1 && p[start] == '.') || (n == 2 && p[start] == '.' && p[start + 1] == '.'))
      abort();
    start = i + 1;
  }
}

static int
validate(const char *p, size_t len)
{
  const char *reason = "untouched";
  int rc = ferry_path_validate(p, len, &reason);
  if (rc != 0 && rc != FERRY_ERR_INVALID && rc != FERRY_ERR_TOO_LONG && rc != FERRY_ERR_UNSAFE_PATH)
    abort();
  if ((rc == 0) != (reason == NULL))
    abort();
  if (rc == 0)
    check_accepted(p, len);
  return rc;
}

/* other must be a whole-component prefix of p (EXISTS) or differ from
 * the prefix of p with as many components (AMBIGUOUS). */
static void
check_clash(const char *p, size_t len, int rc, const char *other)
{
  if (other == NULL || ferry_path_validate(other, strlen(other), NULL) != 0)
    abort();
  size_t olen = strlen(other);
  int is_prefix = olen <= len && memcmp(p, other, olen) == 0 && (olen == len || p[olen] == '/');
  if (rc == FERRY_ERR_EXISTS && !is_prefix)
    abort();
  if (rc == FERRY_ERR_AMBIGUOUS && is_prefix)
    abort();
}

static void
add_piece(FerryPathSet *set, const char *p, size_t len, gboolean is_dir)
{
  const char *other, *reason;
  guint before = ferry_path_set_size(set);
  int valid = ferry_path_validate(p, len, NULL);
  int rc = ferry_path_set_add(set, p, len, is_dir, &other, &reason);

  if (valid != 0) {
    if (rc != valid || other != NULL || ferry_path_set_size(set) != before)
      abort();
    return;
  }
  if (rc == FERRY_ERR_EXISTS || rc == FERRY_ERR_AMBIGUOUS) {
    check_clash(p, len, rc, other);
    if (reason == NULL || ferry_path_set_size(set) != before)
      abort();
    return;
  }
  if (rc != 0 || ferry_path_set_size(set) != before + 1)
    abort();

  /* The same path again is a repeat. */
  if (ferry_path_set_add(set, p, len, is_dir, &other, &reason) != FERRY_ERR_EXISTS)
    abort();
  /* Flipping the case of every ASCII letter makes a name that folds the
   * same but is spelt differently: a collision, if any letter changed. */
  char *variant = g_memdup2(p, len);
  gboolean changed = FALSE;
  for (size_t i = 0; i < len; i++) {
    char c = variant[i];
    if (g_ascii_isalpha(c)) {
      variant[i] = g_ascii_isupper(c) ? g_ascii_tolower(c) : g_ascii_toupper(c);
      changed = TRUE;
    }
  }
  if (changed &&
      ferry_path_set_add(set, variant, len, is_dir, &other, &reason) != FERRY_ERR_AMBIGUOUS)
    abort();
  g_free(variant);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *text = (const char *)data;
  validate(text, size);

  FerryPathSet *set = ferry_path_set_new();
  size_t start = 0;
  guint index = 0;
  for (size_t i = 0; i <= size; i++) {
    if (i < size && text[i] != '\n')
      continue;
    validate(text + start, i - start);
    add_piece(set, text + start, i - start, (index++ & 1) != 0);
    start = i + 1;
  }
  ferry_path_set_free(set);
  return 0;
}
