/* Join codes: "<nameplate>-<word>-<word>-<word>".
 *
 * The nameplate (1..999999, decimal, no leading zero) is allocated by the
 * server and is the only part it sees; the words, drawn here from the
 * 2048-word list with a CSPRNG, are the PAKE password. Parsing is forgiving
 * about case and separators but never corrects a word silently: an unknown
 * word is an error that names the nearest list word when one is clearly
 * meant. Everything here is pure (no I/O) and returns negative FerryErr
 * codes, so it can be fuzzed in isolation. */
#ifndef FERRY_CODE_H
#define FERRY_CODE_H

#include <stddef.h>
#include <stdint.h>

#include <ferry/error.h>

#include <ferry/wordlist.h>

G_BEGIN_DECLS

#define FERRY_CODE_MIN_WORDS     2
#define FERRY_CODE_MAX_WORDS     8
#define FERRY_CODE_DEFAULT_WORDS 3
#define FERRY_NAMEPLATE_MAX      999999u
/* Longest input ferry_code_parse() looks at, in bytes. */
#define FERRY_CODE_MAX_INPUT 256
/* Room for the longest canonical code and its NUL:
 * "999999" + 8 × ("-" + 6 letters) + NUL. */
#define FERRY_CODE_TEXT_SIZE 64
/* Room for the longest password ("word-…-word", 8 words) and its NUL. */
#define FERRY_CODE_PASSWORD_SIZE (FERRY_CODE_MAX_WORDS * (FERRY_WORD_MAX_LEN + 1))

/* A parsed or freshly generated code; a plain value, embed it anywhere. */
typedef struct {
  uint32_t nameplate;                   /* 1..FERRY_NAMEPLATE_MAX; 0 = not assigned yet */
  unsigned n_words;                     /* FERRY_CODE_MIN_WORDS..FERRY_CODE_MAX_WORDS */
  uint16_t words[FERRY_CODE_MAX_WORDS]; /* indices into ferry_wordlist */
  /* The PAKE password: the words, lowercase, joined by '-'; NUL-ended. */
  char password[FERRY_CODE_PASSWORD_SIZE];
} FerryCode;

/* Why a parse failed, for a message to the user. */
typedef struct {
  unsigned position; /* N for a problem with the Nth word, 0 for the nameplate or the whole input */
  int suggestion;    /* ferry_wordlist index of a "did you mean", or -1 */
  char message[192]; /* one line naming the problem and the way out */
} FerryCodeDiag;

/* Fills code with n_words words drawn uniformly from the list with
 * libsodium's CSPRNG and nameplate 0. Returns 0, or FERRY_ERR_INVALID when
 * n_words is outside FERRY_CODE_MIN_WORDS..FERRY_CODE_MAX_WORDS, or
 * FERRY_ERR_CRYPTO when libsodium cannot be initialised. */
FERRY_API int ferry_code_generate(FerryCode *code, unsigned n_words);

/* Sets the nameplate the server allocated. Returns 0, or FERRY_ERR_INVALID
 * when it is outside 1..FERRY_NAMEPLATE_MAX. */
FERRY_API int ferry_code_set_nameplate(FerryCode *code, uint32_t nameplate);

/* Writes the canonical text of code into buf: "7-ocean-tiger-piano", or just
 * the words ("ocean-tiger-piano") while the nameplate is 0. Returns the
 * length (without the NUL), or FERRY_ERR_TOO_LONG when size is too small
 * (FERRY_CODE_TEXT_SIZE is always enough), or FERRY_ERR_INVALID for a code
 * that no parse or generate produced. */
FERRY_API int ferry_code_format(const FerryCode *code, char *buf, size_t size);

/* Parses what a person typed: case-insensitive, words separated by any
 * run of '-', ' ', '_', '.', surrounding whitespace ignored. text need not
 * be NUL-terminated; len over FERRY_CODE_MAX_INPUT is refused. Returns 0
 * and fills code, or a negative code and (when diag is not NULL) fills
 * diag:
 *   FERRY_ERR_TOO_LONG  input over FERRY_CODE_MAX_INPUT bytes;
 *   FERRY_ERR_INVALID   empty, no or a bad nameplate, a character that
 *                       belongs in no code, an unknown word (diag names the
 *                       nearest word when there is one clear candidate),
 *                       or fewer than 2 / more than 8 words. */
FERRY_API int ferry_code_parse(const char *text, size_t len, FerryCode *code, FerryCodeDiag *diag);

/* Index of word (len bytes, any case) in ferry_wordlist, or
 * FERRY_ERR_NOT_FOUND. */
FERRY_API int ferry_word_lookup(const char *word, size_t len);

/* The list word nearest to word (any case) in Damerau-Levenshtein distance,
 * if it is at most 2 edits away and no other word is as near. Returns its
 * index, FERRY_ERR_NOT_FOUND when nothing is within 2 edits, or
 * FERRY_ERR_AMBIGUOUS when two or more words tie. */
FERRY_API int ferry_word_nearest(const char *word, size_t len);

/* Optimal-string-alignment (restricted Damerau-Levenshtein) distance,
 * byte for byte: inserting, deleting or changing one letter, or swapping
 * two adjacent letters, costs one. Both strings must be at most
 * FERRY_WORD_DISTANCE_MAX bytes; for longer ones it returns UINT_MAX. */
#define FERRY_WORD_DISTANCE_MAX 32
FERRY_API unsigned ferry_word_distance(const char *a, size_t alen, const char *b, size_t blen);

G_END_DECLS

#endif
