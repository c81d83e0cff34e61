/* Encrypted links (docs/protocol.md §10.7): what `ferry send --link
 * --encrypt` uploads to the HTTP relay, and what `ferry receive URL` and
 * the relay's landing page decrypt.
 *
 * A random 256-bit key travels only in the link's fragment
 * ("#k=" + base64url). The stream is the 8 bytes "FRYLNK01", then the
 * plaintext cut into records of 65536 bytes (the last one shorter, maybe
 * empty), each sealed with AES-256-GCM under the key with the header as
 * additional data and the nonce = record index (8 bytes big-endian) ‖ a
 * 4-byte big-endian flag that is 1 on the last record only. Reordered,
 * cut, extended or altered streams fail authentication; nothing
 * decrypted from a record is handed out before its tag checked. */
#ifndef FERRY_CORE_LINKCRYPT_H
#define FERRY_CORE_LINKCRYPT_H

#include <ferry/error.h>

G_BEGIN_DECLS

#define FERRY_LINK_KEY_BYTES  32
#define FERRY_LINK_HEADER     "FRYLNK01"
#define FERRY_LINK_HEADER_LEN 8
#define FERRY_LINK_RECORD     65536 /* plaintext bytes in every record but the last */
#define FERRY_LINK_TAG        16
#define FERRY_LINK_SEALED     (FERRY_LINK_RECORD + FERRY_LINK_TAG)

/* Bytes of the encrypted stream for plain bytes of plaintext. */
guint64 ferry_link_sealed_size(guint64 plain);

/* The plaintext size of an encrypted stream of sealed bytes: TRUE and
 * *plain, or FALSE when no plaintext encrypts to that size. */
gboolean ferry_link_plain_size(guint64 sealed, guint64 *plain);

/* The key as it appears after "#k=": 43 characters of base64url without
 * padding. Free with g_free(). */
char *ferry_link_key_encode(const guint8 key[FERRY_LINK_KEY_BYTES]);

/* Reads a key written by ferry_link_key_encode() (padding '=' and the
 * '+' '/' alphabet are accepted too). Returns FALSE with
 * FERRY_ERROR_INVALID naming what is wrong. */
gboolean ferry_link_key_decode(const char *text, guint8 key[FERRY_LINK_KEY_BYTES], GError **error);

typedef struct FerryLinkCipher FerryLinkCipher;

/* A streaming sealer (encrypt TRUE) or opener. first_record > 0 starts in
 * the middle of a stream, at that record (for resuming a download: feed
 * the sealed bytes from offset FERRY_LINK_HEADER_LEN + first_record *
 * FERRY_LINK_SEALED); the header is then neither written nor expected.
 * Returns NULL with FERRY_ERROR_CRYPTO if the cipher cannot be set up.
 * Free with ferry_link_cipher_free(). */
FerryLinkCipher *ferry_link_cipher_new(const guint8 key[FERRY_LINK_KEY_BYTES], gboolean encrypt,
                                       guint64 first_record, GError **error);

/* Takes the next len bytes of the input and appends to out what they
 * complete: sealed records (and the header first), or opened plaintext.
 * An opener holds back up to one record until it knows whether it is the
 * last. Returns FALSE with FERRY_ERROR_AUTH when a record fails its tag
 * (altered, reordered, or a wrong key), FERRY_ERROR_INVALID for a bad
 * header; every later call fails too. */
gboolean ferry_link_cipher_feed(FerryLinkCipher *c, const guint8 *data, gsize len, GByteArray *out,
                                GError **error);

/* The input ended: a sealer appends the last record; an opener opens the
 * record it held as the last one. Returns FALSE with FERRY_ERROR_AUTH
 * when the stream was cut (or, as above, altered). */
gboolean ferry_link_cipher_finish(FerryLinkCipher *c, GByteArray *out, GError **error);

/* Records completed so far (sealed or opened). */
guint64 ferry_link_cipher_records(const FerryLinkCipher *c);

void ferry_link_cipher_free(FerryLinkCipher *c);

G_END_DECLS

#endif
