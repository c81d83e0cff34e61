/* The word list of join codes: 2048 words, sorted by strcmp(), generated
 * by tools/make-wordlist.py into wordlist.c (see there for its source and
 * licence). Each word is 3 to FERRY_WORD_MAX_LEN lowercase ASCII letters;
 * any two differ by at least two edits and in their first four letters. */
#ifndef FERRY_WORDLIST_H
#define FERRY_WORDLIST_H

#include <stddef.h>

#include <ferry/error.h>

#define FERRY_WORDLIST_COUNT 2048 /* a power of two: 11 bits a word */
#define FERRY_WORD_MIN_LEN   3
#define FERRY_WORD_MAX_LEN   6

/* The words, static and sorted; ferry_wordlist_count == FERRY_WORDLIST_COUNT. */
FERRY_API extern const char *const ferry_wordlist[FERRY_WORDLIST_COUNT];
FERRY_API extern const size_t ferry_wordlist_count;

#endif
