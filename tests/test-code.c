/* Join codes: the word list, generation, formatting and forgiving parsing. */
#include <limits.h>
#include <string.h>

#include <ferry/code.h>

static int
index_of(const char *word)
{
  int i = ferry_word_lookup(word, strlen(word));
  g_assert_cmpint(i, >=, 0);
  return i;
}

static void
test_wordlist_size(void)
{
  g_assert_cmpuint(ferry_wordlist_count, ==, 2048);
  g_assert_cmpuint(FERRY_WORDLIST_COUNT, ==, 2048);
  /* 2048 is 2^11: three words carry 33 bits. */
  g_assert_cmpuint(FERRY_WORDLIST_COUNT & (FERRY_WORDLIST_COUNT - 1), ==, 0);
}

static void
test_wordlist_sorted_distinct_letters(void)
{
  for (size_t i = 0; i < FERRY_WORDLIST_COUNT; i++) {
    const char *w = ferry_wordlist[i];
    size_t n = strlen(w);
    g_assert_cmpuint(n, >=, FERRY_WORD_MIN_LEN);
    g_assert_cmpuint(n, <=, FERRY_WORD_MAX_LEN);
    for (size_t j = 0; j < n; j++)
      g_assert_true(w[j] >= 'a' && w[j] <= 'z');
    if (i > 0)
      g_assert_cmpint(strcmp(ferry_wordlist[i - 1], w), <, 0);
  }
}

/* Every pair is at least two edits apart (so one typo never lands on
 * another word) and differs in its first four letters. */
static void
test_wordlist_min_distance(void)
{
  unsigned min = UINT_MAX;
  for (size_t i = 0; i < FERRY_WORDLIST_COUNT; i++) {
    const char *a = ferry_wordlist[i];
    size_t alen = strlen(a);
    for (size_t j = i + 1; j < FERRY_WORDLIST_COUNT; j++) {
      const char *b = ferry_wordlist[j];
      size_t blen = strlen(b);
      unsigned d = ferry_word_distance(a, alen, b, blen);
      if (d < min)
        min = d;
      if (d < 2)
        g_error("'%s' and '%s' are only %u edit apart", a, b, d);
      if (strncmp(a, b, 4) == 0)
        g_error("'%s' and '%s' share their first four letters", a, b);
    }
  }
  g_assert_cmpuint(min, ==, 2);
}

static void
test_distance(void)
{
  g_assert_cmpuint(ferry_word_distance("kitten", 6, "sitting", 7), ==, 3);
  g_assert_cmpuint(ferry_word_distance("tiger", 5, "tigre", 5), ==, 1);  /* swap */
  g_assert_cmpuint(ferry_word_distance("tiger", 5, "tigers", 6), ==, 1); /* insert */
  g_assert_cmpuint(ferry_word_distance("tiger", 5, "tier", 4), ==, 1);   /* delete */
  g_assert_cmpuint(ferry_word_distance("tiger", 5, "tiler", 5), ==, 1);  /* change */
  g_assert_cmpuint(ferry_word_distance("", 0, "abc", 3), ==, 3);
  g_assert_cmpuint(ferry_word_distance("abc", 3, "abc", 3), ==, 0);
  /* Optimal string alignment: no edit of a swapped pair. */
  g_assert_cmpuint(ferry_word_distance("ca", 2, "abc", 3), ==, 3);
  char long_word[FERRY_WORD_DISTANCE_MAX + 1];
  memset(long_word, 'a', sizeof long_word);
  g_assert_cmpuint(ferry_word_distance(long_word, sizeof long_word, "a", 1), ==, UINT_MAX);
}

static void
test_lookup(void)
{
  g_assert_cmpint(ferry_word_lookup("tiger", 5), >=, 0);
  g_assert_cmpstr(ferry_wordlist[ferry_word_lookup("TiGeR", 5)], ==, "tiger");
  g_assert_cmpint(ferry_word_lookup(ferry_wordlist[0], strlen(ferry_wordlist[0])), ==, 0);
  g_assert_cmpint(ferry_word_lookup(ferry_wordlist[2047], strlen(ferry_wordlist[2047])), ==, 2047);
  g_assert_cmpint(ferry_word_lookup("tigerx", 6), ==, FERRY_ERR_NOT_FOUND);
  g_assert_cmpint(ferry_word_lookup("tigers", 5), ==, index_of("tiger")); /* len counts */
  g_assert_cmpint(ferry_word_lookup("", 0), ==, FERRY_ERR_NOT_FOUND);
  g_assert_cmpint(ferry_word_lookup("tigerlily", 9), ==, FERRY_ERR_NOT_FOUND);
  g_assert_cmpint(ferry_word_lookup("ti-er", 5), ==, FERRY_ERR_NOT_FOUND);
  /* An embedded NUL is not the end of the word. */
  g_assert_cmpint(ferry_word_lookup("off\0\0\0", 6), ==, FERRY_ERR_NOT_FOUND);
  g_assert_cmpint(ferry_word_lookup("tiger\0", 6), ==, FERRY_ERR_NOT_FOUND);
}

static void
test_nearest(void)
{
  g_assert_cmpint(ferry_word_nearest("tigre", 5), ==, index_of("tiger"));
  g_assert_cmpint(ferry_word_nearest("OCAEN", 5), ==, index_of("ocean"));
  g_assert_cmpint(ferry_word_nearest("pianno", 6), ==, index_of("piano"));
  g_assert_cmpint(ferry_word_nearest("xqxqxqxq", 8), ==, FERRY_ERR_NOT_FOUND);
  g_assert_cmpint(ferry_word_nearest("abcdefghij", 10), ==, FERRY_ERR_NOT_FOUND);

  /* Some input two edits from several words is ambiguous: find one by
   * search so the test does not depend on the list's contents. */
  gboolean found_tie = FALSE;
  char probe[4] = "aaa";
  for (int a = 0; a < 26 && !found_tie; a++)
    for (int b = 0; b < 26 && !found_tie; b++) {
      probe[0] = (char)('a' + a);
      probe[1] = (char)('a' + b);
      probe[2] = 'x';
      int r = ferry_word_nearest(probe, 3);
      if (r == FERRY_ERR_AMBIGUOUS)
        found_tie = TRUE;
      else if (r >= 0)
        g_assert_cmpuint(
            ferry_word_distance(probe, 3, ferry_wordlist[r], strlen(ferry_wordlist[r])), <=, 2);
    }
  g_assert_true(found_tie);
}

/* ferry_word_nearest() takes shortcuts; it must agree with a plain search
 * over ferry_word_distance() on random typos of list words and on random
 * strings. */
static void
test_nearest_matches_brute_force(void)
{
  for (int round = 0; round < 1000; round++) {
    char probe[9];
    size_t len;
    if (round % 2 == 0) {
      /* A list word with one or two random edits. */
      const char *w = ferry_wordlist[g_test_rand_int_range(0, FERRY_WORDLIST_COUNT)];
      len = strlen(w);
      memcpy(probe, w, len);
      for (int e = g_test_rand_int_range(1, 3); e > 0; e--) {
        size_t at = (size_t)g_test_rand_int_range(0, (gint32)len);
        char c = (char)('a' + g_test_rand_int_range(0, 26));
        switch (g_test_rand_int_range(0, 3)) {
        case 0:
          probe[at] = c;
          break;
        case 1:
          if (len < 8) {
            memmove(probe + at + 1, probe + at, len - at);
            probe[at] = c;
            len++;
          }
          break;
        default:
          if (len > 1) {
            memmove(probe + at, probe + at + 1, len - at - 1);
            len--;
          }
        }
      }
    } else {
      len = (size_t)g_test_rand_int_range(1, 9);
      for (size_t i = 0; i < len; i++)
        probe[i] = (char)('a' + g_test_rand_int_range(0, 26));
    }

    unsigned best = UINT_MAX;
    int best_index = -1, ties = 0;
    for (int i = 0; i < FERRY_WORDLIST_COUNT; i++) {
      unsigned d = ferry_word_distance(probe, len, ferry_wordlist[i], strlen(ferry_wordlist[i]));
      if (d < best)
        best = d, best_index = i, ties = 0;
      else if (d == best)
        ties++;
    }
    int want = best > 2 ? FERRY_ERR_NOT_FOUND : ties > 0 ? FERRY_ERR_AMBIGUOUS : best_index;
    int got = ferry_word_nearest(probe, len);
    if (got != want)
      g_error("nearest('%.*s') = %d, brute force says %d", (int)len, probe, got, want);
  }
}

/* Draws 16384 eight-word codes (131072 words, 64 per list word on
 * average): every word must turn up and none far too often. The chance
 * that a fair generator misses a word is about 2048 * e^-64. */
static void
test_generate_uses_whole_list(void)
{
  guint *counts = g_new0(guint, FERRY_WORDLIST_COUNT);
  FerryCode code;

  for (int i = 0; i < 16384; i++) {
    g_assert_cmpint(ferry_code_generate(&code, 8), ==, 0);
    g_assert_cmpuint(code.nameplate, ==, 0);
    for (unsigned w = 0; w < code.n_words; w++)
      counts[code.words[w]]++;
  }
  guint min = G_MAXUINT, max = 0;
  for (size_t i = 0; i < FERRY_WORDLIST_COUNT; i++) {
    min = MIN(min, counts[i]);
    max = MAX(max, counts[i]);
  }
  g_assert_cmpuint(min, >, 0);
  g_assert_cmpuint(max, <, 160); /* mean 64, standard deviation 8 */
  g_free(counts);
}

static void
test_generate_counts(void)
{
  FerryCode code;
  g_assert_cmpint(ferry_code_generate(&code, 1), ==, FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_code_generate(&code, 9), ==, FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_code_generate(&code, 0), ==, FERRY_ERR_INVALID);
  for (unsigned n = FERRY_CODE_MIN_WORDS; n <= FERRY_CODE_MAX_WORDS; n++) {
    g_assert_cmpint(ferry_code_generate(&code, n), ==, 0);
    g_assert_cmpuint(code.n_words, ==, n);
    /* The password is the words joined by '-'. */
    char **parts = g_strsplit(code.password, "-", -1);
    g_assert_cmpuint(g_strv_length(parts), ==, n);
    for (unsigned i = 0; i < n; i++)
      g_assert_cmpstr(parts[i], ==, ferry_wordlist[code.words[i]]);
    g_strfreev(parts);
  }
}

static void
test_nameplate(void)
{
  FerryCode code;
  g_assert_cmpint(ferry_code_generate(&code, 3), ==, 0);
  g_assert_cmpint(ferry_code_set_nameplate(&code, 0), ==, FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_code_set_nameplate(&code, 1000000), ==, FERRY_ERR_INVALID);
  g_assert_cmpint(ferry_code_set_nameplate(&code, 999999), ==, 0);
  g_assert_cmpint(ferry_code_set_nameplate(&code, 1), ==, 0);
  g_assert_cmpuint(code.nameplate, ==, 1);
}

static void
test_round_trip(void)
{
  for (int i = 0; i < 500; i++) {
    FerryCode code, back;
    FerryCodeDiag diag;
    char text[FERRY_CODE_TEXT_SIZE];
    unsigned n = FERRY_CODE_MIN_WORDS + (unsigned)i % 7;

    g_assert_cmpint(ferry_code_generate(&code, n), ==, 0);
    g_assert_cmpint(ferry_code_set_nameplate(&code, 1 + (uint32_t)g_test_rand_int_range(0, 999999)),
                    ==, 0);
    int len = ferry_code_format(&code, text, sizeof text);
    g_assert_cmpint(len, ==, (int)strlen(text));
    g_assert_cmpint(ferry_code_parse(text, (size_t)len, &back, &diag), ==, 0);
    g_assert_cmpuint(back.nameplate, ==, code.nameplate);
    g_assert_cmpuint(back.n_words, ==, code.n_words);
    g_assert_cmpmem(back.words, n * sizeof back.words[0], code.words, n * sizeof code.words[0]);
    g_assert_cmpstr(back.password, ==, code.password);
  }
}

static void
test_format(void)
{
  FerryCode code = {0};
  char text[FERRY_CODE_TEXT_SIZE];

  code.n_words = 3;
  code.words[0] = (uint16_t)index_of("ocean");
  code.words[1] = (uint16_t)index_of("tiger");
  code.words[2] = (uint16_t)index_of("piano");
  g_assert_cmpint(ferry_code_format(&code, text, sizeof text), ==, 17);
  g_assert_cmpstr(text, ==, "ocean-tiger-piano");
  code.nameplate = 7;
  g_assert_cmpint(ferry_code_format(&code, text, sizeof text), ==, 19);
  g_assert_cmpstr(text, ==, "7-ocean-tiger-piano");
  g_assert_cmpint(ferry_code_format(&code, text, 20), ==, 19);
  g_assert_cmpint(ferry_code_format(&code, text, 19), ==, FERRY_ERR_TOO_LONG);
  g_assert_cmpint(ferry_code_format(&code, text, 0), ==, FERRY_ERR_TOO_LONG);

  /* The longest code fits FERRY_CODE_TEXT_SIZE. */
  int longest = 0;
  for (int i = 0; i < FERRY_WORDLIST_COUNT; i++)
    if (strlen(ferry_wordlist[i]) == FERRY_WORD_MAX_LEN)
      longest = i;
  code.nameplate = FERRY_NAMEPLATE_MAX;
  code.n_words = FERRY_CODE_MAX_WORDS;
  for (int i = 0; i < FERRY_CODE_MAX_WORDS; i++)
    code.words[i] = (uint16_t)longest;
  g_assert_cmpint(ferry_code_format(&code, text, sizeof text), ==, 6 + 8 * 7);

  code.n_words = 1;
  g_assert_cmpint(ferry_code_format(&code, text, sizeof text), ==, FERRY_ERR_INVALID);
  code.n_words = 3;
  code.words[1] = FERRY_WORDLIST_COUNT;
  g_assert_cmpint(ferry_code_format(&code, text, sizeof text), ==, FERRY_ERR_INVALID);
}

static void
assert_parses(const char *text, uint32_t nameplate, const char *password)
{
  FerryCode code;
  FerryCodeDiag diag;
  int ret = ferry_code_parse(text, strlen(text), &code, &diag);
  if (ret != 0)
    g_error("'%s' did not parse: %s", text, diag.message);
  g_assert_cmpuint(code.nameplate, ==, nameplate);
  g_assert_cmpstr(code.password, ==, password);
}

static void
test_parse_forgiving(void)
{
  assert_parses("7-ocean-tiger-piano", 7, "ocean-tiger-piano");
  assert_parses("7-OCEAN-Tiger-piAno", 7, "ocean-tiger-piano");
  assert_parses("  7 ocean tiger piano\n", 7, "ocean-tiger-piano");
  assert_parses("7_ocean_tiger_piano", 7, "ocean-tiger-piano");
  assert_parses("7.ocean.tiger.piano", 7, "ocean-tiger-piano");
  assert_parses("7 - ocean -- tiger__. piano", 7, "ocean-tiger-piano");
  assert_parses("\t7-ocean-tiger-piano-\r\n", 7, "ocean-tiger-piano");
  assert_parses("-7-ocean-tiger-piano", 7, "ocean-tiger-piano");
  assert_parses("999999-ocean-tiger", 999999, "ocean-tiger");
  assert_parses("1-ocean-tiger-piano-river-apple-tiger-ocean-piano", 1,
                "ocean-tiger-piano-river-apple-tiger-ocean-piano");

  /* Not NUL-terminated: only len bytes count. */
  FerryCode code;
  g_assert_cmpint(ferry_code_parse("7-ocean-tiger-pianoXYZ", 19, &code, NULL), ==, 0);
  g_assert_cmpstr(code.password, ==, "ocean-tiger-piano");
}

static void
assert_rejects(const char *text, size_t len, int err, unsigned position, const char *in_message)
{
  FerryCode code;
  FerryCodeDiag diag;

  memset(&code, 0x5a, sizeof code);
  int ret = ferry_code_parse(text, len, &code, &diag);
  if (ret != err)
    g_error("'%.*s': got %d (%s), wanted %d", (int)MIN(len, 80), text, ret, diag.message, err);
  g_assert_cmpuint(diag.position, ==, position);
  if (strstr(diag.message, in_message) == NULL)
    g_error("'%.*s': message \"%s\" lacks \"%s\"", (int)MIN(len, 80), text, diag.message,
            in_message);
  /* The code is untouched on failure, and a NULL diag is fine. */
  g_assert_cmpuint(code.nameplate, ==, 0x5a5a5a5a);
  g_assert_cmpint(ferry_code_parse(text, len, &code, NULL), ==, err);
}

static void
test_parse_bad_input(void)
{
#define R(text, err, pos, msg) assert_rejects(text, strlen(text), err, pos, msg)
  R("", FERRY_ERR_INVALID, 0, "the code is empty");
  R("   \n", FERRY_ERR_INVALID, 0, "the code is empty");
  R("-- . _", FERRY_ERR_INVALID, 0, "the code is empty");
  R("ocean-tiger-piano", FERRY_ERR_INVALID, 0, "no number in front");
  R("7ocean-tiger-piano", FERRY_ERR_INVALID, 0, "'7ocean' mixes the number and a word");
  R("0-ocean-tiger-piano", FERRY_ERR_INVALID, 0, "cannot be 0");
  R("000-ocean-tiger-piano", FERRY_ERR_INVALID, 0, "cannot be 0");
  R("07-ocean-tiger-piano", FERRY_ERR_INVALID, 0, "'07' starts with 0");
  R("1000000-ocean-tiger-piano", FERRY_ERR_INVALID, 0, "at most 6 digits");
  R("99999999999999999999999-ocean-tiger", FERRY_ERR_INVALID, 0, "at most 6 digits");
  R("7", FERRY_ERR_INVALID, 0, "has 0 words after the number");
  R("7-ocean", FERRY_ERR_INVALID, 0, "has 1 word after the number; a code has 2 to 8");
  R("7-ocean-tiger-piano-ocean-tiger-piano-ocean-tiger-piano", FERRY_ERR_INVALID, 0, "has 9 words");
  R("7-ocean-5-piano", FERRY_ERR_INVALID, 2, "'5' (word 2) has a digit");
  R("7-oc3an-tiger-piano", FERRY_ERR_INVALID, 1, "'oc3an' (word 1) has a digit");
  R("7-ocean,tiger-piano", FERRY_ERR_INVALID, 0, "unexpected ',' at byte 8");
  R("7-ocean/tiger-piano", FERRY_ERR_INVALID, 0, "unexpected '/'");
  R("7-oc\xc3\xa9"
    "an-tiger",
    FERRY_ERR_INVALID, 0, "unexpected byte 0xc3 at byte 5");
  R("7-ocean-tiger-piano\x01", FERRY_ERR_INVALID, 0, "unexpected byte 0x01");
  assert_rejects("7-ocean\0-tiger-piano", 20, FERRY_ERR_INVALID, 0, "unexpected byte 0x00");
  R("7-ocean-xqzzvk-piano", FERRY_ERR_INVALID, 2, "'xqzzvk' is not a code word: check the code");
  R("7-ocean-tigerlilyfoxglove-piano", FERRY_ERR_INVALID, 2, "is not a code word");
  R("7-ocean-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-piano", FERRY_ERR_INVALID, 2,
    "'aaaaaaaaaaaaaaaaaaaaaaaa...' is not a code word");

  /* Over the bound: refused before looking, whatever the content. */
  char big[FERRY_CODE_MAX_INPUT + 1];
  memset(big, ' ', sizeof big);
  memcpy(big, "7-ocean-tiger-piano", 19);
  assert_rejects(big, sizeof big, FERRY_ERR_TOO_LONG, 0, "at most 256");
  /* Exactly at the bound is fine. */
  FerryCode code;
  g_assert_cmpint(ferry_code_parse(big, FERRY_CODE_MAX_INPUT, &code, NULL), ==, 0);
#undef R
}

static void
test_parse_suggests(void)
{
  FerryCode code;
  FerryCodeDiag diag;

  g_assert_cmpint(ferry_code_parse("7-ocean-tigre-piano", 19, &code, &diag), ==, FERRY_ERR_INVALID);
  g_assert_cmpuint(diag.position, ==, 2);
  g_assert_cmpint(diag.suggestion, ==, index_of("tiger"));
  g_assert_cmpstr(diag.message, ==, "'tigre' is not a code word — did you mean 'tiger'?");

  /* Lowercased in the message, as the word would be in the code. */
  g_assert_cmpint(ferry_code_parse("7-OCAEN-tiger-piano", 19, &code, &diag), ==, FERRY_ERR_INVALID);
  g_assert_cmpuint(diag.position, ==, 1);
  g_assert_cmpstr(diag.message, ==, "'ocaen' is not a code word — did you mean 'ocean'?");

  /* Never corrected silently, even when the suggestion is certain. */
  g_assert_cmpint(ferry_code_parse("7-ocean-tiger-pianno", 20, &code, &diag), ==,
                  FERRY_ERR_INVALID);
  g_assert_cmpint(diag.suggestion, ==, index_of("piano"));

  /* Only the first bad word is reported. */
  g_assert_cmpint(ferry_code_parse("7-ocaen-tigre-piano", 19, &code, &diag), ==, FERRY_ERR_INVALID);
  g_assert_cmpint(diag.suggestion, ==, index_of("ocean"));

  /* No suggestion when nothing is within two edits. */
  g_assert_cmpint(ferry_code_parse("7-ocean-xqzzvk-piano", 20, &code, &diag), ==,
                  FERRY_ERR_INVALID);
  g_assert_cmpint(diag.suggestion, ==, -1);
  g_assert_null(strstr(diag.message, "did you mean"));
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/core/code/wordlist/size", test_wordlist_size);
  g_test_add_func("/core/code/wordlist/sorted-distinct-letters",
                  test_wordlist_sorted_distinct_letters);
  g_test_add_func("/core/code/wordlist/min-distance", test_wordlist_min_distance);
  g_test_add_func("/core/code/distance", test_distance);
  g_test_add_func("/core/code/lookup", test_lookup);
  g_test_add_func("/core/code/nearest", test_nearest);
  g_test_add_func("/core/code/nearest-matches-brute-force", test_nearest_matches_brute_force);
  g_test_add_func("/core/code/generate/uses-whole-list", test_generate_uses_whole_list);
  g_test_add_func("/core/code/generate/word-counts", test_generate_counts);
  g_test_add_func("/core/code/nameplate", test_nameplate);
  g_test_add_func("/core/code/format", test_format);
  g_test_add_func("/core/code/round-trip", test_round_trip);
  g_test_add_func("/core/code/parse/forgiving", test_parse_forgiving);
  g_test_add_func("/core/code/parse/bad-input", test_parse_bad_input);
  g_test_add_func("/core/code/parse/suggests", test_parse_suggests);
  return g_test_run();
}
