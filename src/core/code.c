/* Join codes: generate, format and parse "<nameplate>-<word>-<word>-<word>". */
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include <sodium.h>

#include <ferry/code.h>

/* How much of a bad token an error message quotes. */
#define QUOTE_MAX 24

static gboolean
is_space(unsigned char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Between the parts of a code: any whitespace, and the punctuation people
 * use instead of '-'. */
static gboolean
is_separator(unsigned char c)
{
  return c == '-' || c == '_' || c == '.' || is_space(c);
}

static gboolean
is_digit(unsigned char c)
{
  return c >= '0' && c <= '9';
}

static gboolean
is_letter(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static unsigned char
lower(unsigned char c)
{
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Lowercases at most size - 1 bytes of word into buf; returns FALSE when
 * the word does not fit. */
static gboolean
lower_copy(char *buf, size_t size, const char *word, size_t len)
{
  if (len >= size)
    return FALSE;
  for (size_t i = 0; i < len; i++)
    buf[i] = (char)lower((unsigned char)word[i]);
  buf[len] = '\0';
  return TRUE;
}

static void
fill_password(FerryCode *code)
{
  char *p = code->password;
  for (unsigned i = 0; i < code->n_words; i++) {
    const char *w = ferry_wordlist[code->words[i]];
    size_t n = strlen(w);
    if (i > 0)
      *p++ = '-';
    memcpy(p, w, n);
    p += n;
  }
  *p = '\0';
}

int
ferry_code_generate(FerryCode *code, unsigned n_words)
{
  if (n_words < FERRY_CODE_MIN_WORDS || n_words > FERRY_CODE_MAX_WORDS)
    return FERRY_ERR_INVALID;
  if (sodium_init() < 0)
    return FERRY_ERR_CRYPTO;
  memset(code, 0, sizeof *code);
  code->n_words = n_words;
  for (unsigned i = 0; i < n_words; i++)
    code->words[i] = (uint16_t)randombytes_uniform(FERRY_WORDLIST_COUNT);
  fill_password(code);
  return 0;
}

int
ferry_code_set_nameplate(FerryCode *code, uint32_t nameplate)
{
  if (nameplate < 1 || nameplate > FERRY_NAMEPLATE_MAX)
    return FERRY_ERR_INVALID;
  code->nameplate = nameplate;
  return 0;
}

int
ferry_code_format(const FerryCode *code, char *buf, size_t size)
{
  size_t len = 0;

  if (code->n_words < FERRY_CODE_MIN_WORDS || code->n_words > FERRY_CODE_MAX_WORDS ||
      code->nameplate > FERRY_NAMEPLATE_MAX)
    return FERRY_ERR_INVALID;
  for (unsigned i = 0; i < code->n_words; i++)
    if (code->words[i] >= FERRY_WORDLIST_COUNT)
      return FERRY_ERR_INVALID;

  char tmp[FERRY_CODE_TEXT_SIZE];
  if (code->nameplate != 0)
    len = (size_t)g_snprintf(tmp, sizeof tmp, "%u-", (unsigned)code->nameplate);
  for (unsigned i = 0; i < code->n_words; i++) {
    const char *w = ferry_wordlist[code->words[i]];
    size_t n = strlen(w);
    if (i > 0)
      tmp[len++] = '-';
    memcpy(tmp + len, w, n);
    len += n;
  }
  tmp[len] = '\0';
  if (len + 1 > size)
    return FERRY_ERR_TOO_LONG;
  memcpy(buf, tmp, len + 1);
  return (int)len;
}

int
ferry_word_lookup(const char *word, size_t len)
{
  char key[FERRY_WORD_MAX_LEN + 1];
  size_t lo = 0, hi = FERRY_WORDLIST_COUNT;

  if (len < FERRY_WORD_MIN_LEN || !lower_copy(key, sizeof key, word, len))
    return FERRY_ERR_NOT_FOUND;
  for (size_t i = 0; i < len; i++)
    if (!is_letter((unsigned char)word[i]))
      return FERRY_ERR_NOT_FOUND;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int cmp = strcmp(key, ferry_wordlist[mid]);
    if (cmp == 0)
      return (int)mid;
    if (cmp < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return FERRY_ERR_NOT_FOUND;
}

/* The distance, computed row by row; once every entry of a row exceeds
 * bound the result can only be larger, so it stops and returns bound + 1. */
static unsigned
distance_bounded(const char *a, size_t alen, const char *b, size_t blen, unsigned bound)
{
  /* Three rows of the dynamic-programming table: two back for swaps. */
  unsigned rows[3][FERRY_WORD_DISTANCE_MAX + 1];
  unsigned *prev2 = rows[0], *prev = rows[1], *cur = rows[2];

  for (size_t j = 0; j <= blen; j++)
    prev[j] = (unsigned)j;
  for (size_t i = 1; i <= alen; i++) {
    unsigned row_min = cur[0] = (unsigned)i;
    for (size_t j = 1; j <= blen; j++) {
      unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
      unsigned best = MIN(prev[j] + 1, cur[j - 1] + 1);
      best = MIN(best, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        best = MIN(best, prev2[j - 2] + 1);
      cur[j] = best;
      row_min = MIN(row_min, best);
    }
    /* A swap reaches back two rows, so stop only when both exceed bound. */
    if (row_min > bound && i > 1) {
      unsigned prev_min = UINT_MAX;
      for (size_t j = 0; j <= blen; j++)
        prev_min = MIN(prev_min, prev[j]);
      if (prev_min > bound)
        return bound + 1;
    }
    unsigned *t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return MIN(prev[blen], bound + 1);
}

unsigned
ferry_word_distance(const char *a, size_t alen, const char *b, size_t blen)
{
  if (alen > FERRY_WORD_DISTANCE_MAX || blen > FERRY_WORD_DISTANCE_MAX)
    return UINT_MAX;
  return distance_bounded(a, alen, b, blen, UINT_MAX - 1);
}

int
ferry_word_nearest(const char *word, size_t len)
{
  char key[FERRY_WORD_MAX_LEN + 3];
  unsigned best = 3;
  int best_index = FERRY_ERR_NOT_FOUND, ties = 0;

  /* A word more than two letters longer than the longest list word is
   * more than two edits from all of them. */
  if (!lower_copy(key, sizeof key, word, len))
    return FERRY_ERR_NOT_FOUND;
  /* Cheap filters first: an edit changes the length by at most one, and
   * each letter of a list word that the input lacks costs at least one
   * edit (the bag distance is a lower bound of the edit distance). */
  uint8_t have[256] = {0};
  for (size_t j = 0; j < len; j++)
    have[(unsigned char)key[j]]++;
  for (size_t i = 0; i < FERRY_WORDLIST_COUNT; i++) {
    const char *w = ferry_wordlist[i];
    size_t wlen = strlen(w);
    if (wlen > len + 2 || len > wlen + 2)
      continue;
    uint8_t left[256];
    unsigned missing = 0;
    for (size_t j = 0; j < wlen; j++)
      left[(unsigned char)w[j]] = have[(unsigned char)w[j]];
    for (size_t j = 0; j < wlen; j++) {
      unsigned char c = (unsigned char)w[j];
      if (left[c] > 0)
        left[c]--;
      else
        missing++;
    }
    if (missing > 2)
      continue;
    unsigned d = distance_bounded(key, len, w, wlen, 2);
    if (d < best) {
      best = d;
      best_index = (int)i;
      ties = 0;
    } else if (d == best && d <= 2) {
      ties++;
    }
  }
  if (best > 2)
    return FERRY_ERR_NOT_FOUND;
  return ties > 0 ? FERRY_ERR_AMBIGUOUS : best_index;
}

/* Quotes up to QUOTE_MAX bytes of a token for a message; tokens only ever
 * hold ASCII letters and digits, so the quote is printable. */
static const char *
quote(char buf[QUOTE_MAX + 4], const char *s, size_t len)
{
  if (len > QUOTE_MAX) {
    memcpy(buf, s, QUOTE_MAX);
    memcpy(buf + QUOTE_MAX, "...", 4);
  } else {
    memcpy(buf, s, len);
    buf[len] = '\0';
  }
  return buf;
}

static int fail(FerryCodeDiag *diag, int err, unsigned position, int suggestion, const char *fmt,
                ...) G_GNUC_PRINTF(5, 6);

/* Fills diag (when there is one) and returns err. */
static int
fail(FerryCodeDiag *diag, int err, unsigned position, int suggestion, const char *fmt, ...)
{
  if (diag != NULL) {
    va_list ap;
    diag->position = position;
    diag->suggestion = suggestion;
    va_start(ap, fmt);
    g_vsnprintf(diag->message, sizeof diag->message, fmt, ap);
    va_end(ap);
  }
  return err;
}

#define EXAMPLE "like 7-ocean-tiger-piano"

typedef struct {
  const char *start;
  size_t len;
} Token;

/* Checks the first token, the nameplate: decimal digits, 1..999999, no
 * leading zero. */
static int
parse_nameplate(const Token *t, uint32_t *out, FerryCodeDiag *diag)
{
  char q[QUOTE_MAX + 4];
  uint32_t value = 0;
  gboolean digits = FALSE, letters = FALSE;

  for (size_t i = 0; i < t->len; i++) {
    digits |= is_digit((unsigned char)t->start[i]);
    letters |= is_letter((unsigned char)t->start[i]);
  }
  if (!digits)
    return fail(diag, FERRY_ERR_INVALID, 0, -1,
                "the code has no number in front: a code starts with the number the sender "
                "was given, " EXAMPLE);
  if (letters)
    return fail(diag, FERRY_ERR_INVALID, 0, -1,
                "'%s' mixes the number and a word: put a '-' between them, " EXAMPLE,
                quote(q, t->start, t->len));
  if (t->start[0] == '0') {
    gboolean all_zero = TRUE;
    for (size_t i = 0; i < t->len; i++)
      all_zero &= t->start[i] == '0';
    if (all_zero)
      return fail(diag, FERRY_ERR_INVALID, 0, -1,
                  "the number in front of the code cannot be 0: check the code with the sender");
    return fail(diag, FERRY_ERR_INVALID, 0, -1,
                "the number '%s' starts with 0, which a code's number never does: check the "
                "code with the sender",
                quote(q, t->start, t->len));
  }
  if (t->len > 6)
    return fail(diag, FERRY_ERR_INVALID, 0, -1,
                "the number '%s' is too long: a code's number has at most 6 digits; check the "
                "code with the sender",
                quote(q, t->start, t->len));
  for (size_t i = 0; i < t->len; i++)
    value = value * 10 + (uint32_t)(t->start[i] - '0');
  *out = value;
  return 0;
}

/* Checks one word token and returns its list index, or an error whose
 * message suggests the nearest list word when there is a clear one. */
static int
parse_word(const Token *t, unsigned position, FerryCodeDiag *diag)
{
  char q[QUOTE_MAX + 4];
  gboolean digits = FALSE;

  for (size_t i = 0; i < t->len; i++)
    digits |= is_digit((unsigned char)t->start[i]);
  if (digits)
    return fail(diag, FERRY_ERR_INVALID, position, -1,
                "'%s' (word %u) has a digit in it: only the first part of a code is a number, "
                "the rest are words, " EXAMPLE,
                quote(q, t->start, t->len), position);

  int index = ferry_word_lookup(t->start, t->len);
  if (index >= 0)
    return index;

  quote(q, t->start, t->len);
  for (size_t i = 0; q[i] != '\0'; i++)
    q[i] = (char)lower((unsigned char)q[i]);
  int near = ferry_word_nearest(t->start, t->len);
  if (near >= 0)
    return fail(diag, FERRY_ERR_INVALID, position, near,
                "'%s' is not a code word — did you mean '%s'?", q, ferry_wordlist[near]);
  return fail(diag, FERRY_ERR_INVALID, position, -1,
              "'%s' is not a code word: check the code with the sender", q);
}

int
ferry_code_parse(const char *text, size_t len, FerryCode *code, FerryCodeDiag *diag)
{
  Token tokens[FERRY_CODE_MAX_INPUT / 2 + 1];
  size_t n_tokens = 0;
  FerryCode out = {0};
  int ret;

  if (diag != NULL) {
    diag->position = 0;
    diag->suggestion = -1;
    diag->message[0] = '\0';
  }
  if (len > FERRY_CODE_MAX_INPUT)
    return fail(diag, FERRY_ERR_TOO_LONG, 0, -1,
                "the code is %zu bytes long; a code is at most %d: copy just the code, " EXAMPLE,
                len, FERRY_CODE_MAX_INPUT);

  const char *input = text;
  while (len > 0 && is_space((unsigned char)text[0]))
    text++, len--;
  while (len > 0 && is_space((unsigned char)text[len - 1]))
    len--;

  /* Split on runs of separators; refuse any byte that belongs in no code. */
  for (size_t i = 0; i < len;) {
    unsigned char c = (unsigned char)text[i];
    if (is_separator(c)) {
      i++;
      continue;
    }
    if (!is_letter(c) && !is_digit(c)) {
      if (c >= 0x21 && c < 0x7f)
        return fail(
            diag, FERRY_ERR_INVALID, 0, -1,
            "unexpected '%c' at byte %zu of the code: separate its parts with '-', " EXAMPLE, c,
            (size_t)(text + i - input) + 1);
      return fail(diag, FERRY_ERR_INVALID, 0, -1,
                  "unexpected byte 0x%02x at byte %zu of the code: a code has only digits, "
                  "letters and '-', " EXAMPLE,
                  c, (size_t)(text + i - input) + 1);
    }
    size_t start = i;
    while (i < len && (is_letter((unsigned char)text[i]) || is_digit((unsigned char)text[i])))
      i++;
    tokens[n_tokens].start = text + start;
    tokens[n_tokens].len = i - start;
    n_tokens++;
  }
  if (n_tokens == 0)
    return fail(diag, FERRY_ERR_INVALID, 0, -1,
                "the code is empty: type the code the sender gave you, " EXAMPLE);

  ret = parse_nameplate(&tokens[0], &out.nameplate, diag);
  if (ret < 0)
    return ret;

  size_t n_words = n_tokens - 1;
  for (size_t i = 1; i < n_tokens; i++) {
    ret = parse_word(&tokens[i], (unsigned)i, diag);
    if (ret < 0)
      return ret;
    if (i <= FERRY_CODE_MAX_WORDS)
      out.words[i - 1] = (uint16_t)ret;
  }
  if (n_words < FERRY_CODE_MIN_WORDS || n_words > FERRY_CODE_MAX_WORDS)
    return fail(diag, FERRY_ERR_INVALID, 0, -1,
                "the code has %zu word%s after the number; a code has %d to %d (usually %d), "
                "%s: check the code with the sender",
                n_words, n_words == 1 ? "" : "s", FERRY_CODE_MIN_WORDS, FERRY_CODE_MAX_WORDS,
                FERRY_CODE_DEFAULT_WORDS, EXAMPLE);
  out.n_words = (unsigned)n_words;
  fill_password(&out);
  *code = out;
  return 0;
}
