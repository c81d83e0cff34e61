/* Encrypted links: see linkcrypt.h and docs/protocol.md §10.7. */
#include "core/linkcrypt.h"

#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

struct FerryLinkCipher {
  gnutls_aead_cipher_hd_t aead;
  gboolean encrypt;
  gboolean header_done; /* written (sealer) or checked (opener) */
  gboolean failed;
  guint64 record;  /* index of the next record */
  GByteArray *buf; /* plaintext not yet sealed, or sealed bytes not yet opened */
};

guint64
ferry_link_sealed_size(guint64 plain)
{
  return FERRY_LINK_HEADER_LEN + plain + FERRY_LINK_TAG * (plain / FERRY_LINK_RECORD + 1);
}

gboolean
ferry_link_plain_size(guint64 sealed, guint64 *plain)
{
  if (sealed < FERRY_LINK_HEADER_LEN + FERRY_LINK_TAG)
    return FALSE;
  guint64 body = sealed - FERRY_LINK_HEADER_LEN - FERRY_LINK_TAG;
  guint64 full = body / FERRY_LINK_SEALED;
  guint64 rest = body - full * FERRY_LINK_SEALED;
  if (rest >= FERRY_LINK_RECORD)
    return FALSE;
  *plain = full * FERRY_LINK_RECORD + rest;
  return TRUE;
}

char *
ferry_link_key_encode(const guint8 key[FERRY_LINK_KEY_BYTES])
{
  char *text = g_base64_encode(key, FERRY_LINK_KEY_BYTES);
  gsize n = strlen(text);
  while (n > 0 && text[n - 1] == '=')
    text[--n] = '\0';
  for (char *p = text; *p != '\0'; p++)
    *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
  return text;
}

gboolean
ferry_link_key_decode(const char *text, guint8 key[FERRY_LINK_KEY_BYTES], GError **error)
{
  gsize n = strlen(text);
  while (n > 0 && text[n - 1] == '=')
    n--;
  if (n != 43)
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "the key in the link has %zu characters, not 43: copy the whole link, "
                           "including everything after '#k='",
                           n);
  char std[45];
  for (gsize i = 0; i < n; i++) {
    char c = text[i];
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    if (!g_ascii_isalnum(c) && c != '+' && c != '/')
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "the key in the link has a character that is not base64url ('%c' "
                             "at %zu): copy the link again",
                             text[i], i + 1);
    std[i] = c;
  }
  std[43] = '=';
  std[44] = '\0';
  gsize len = 0;
  guchar *raw = g_base64_decode(std, &len);
  gboolean ok = len == FERRY_LINK_KEY_BYTES;
  if (ok)
    memcpy(key, raw, FERRY_LINK_KEY_BYTES);
  g_free(raw);
  if (!ok)
    return ferry_set_error(error, FERRY_ERR_INVALID,
                           "the key in the link does not decode to 32 "
                           "bytes: copy the link again");
  return TRUE;
}

FerryLinkCipher *
ferry_link_cipher_new(const guint8 key[FERRY_LINK_KEY_BYTES], gboolean encrypt,
                      guint64 first_record, GError **error)
{
  FerryLinkCipher *c = g_new0(FerryLinkCipher, 1);
  gnutls_datum_t k = {(unsigned char *)key, FERRY_LINK_KEY_BYTES};
  int rc = gnutls_aead_cipher_init(&c->aead, GNUTLS_CIPHER_AES_256_GCM, &k);
  if (rc < 0) {
    ferry_set_error(error, FERRY_ERR_CRYPTO, "AES-256-GCM is not available: %s",
                    gnutls_strerror(rc));
    g_free(c);
    return NULL;
  }
  c->encrypt = encrypt;
  c->record = first_record;
  c->header_done = first_record > 0;
  c->buf = g_byte_array_sized_new(FERRY_LINK_SEALED + FERRY_LINK_HEADER_LEN);
  return c;
}

static void
nonce_for(guint64 record, gboolean last, guint8 nonce[12])
{
  for (int i = 0; i < 8; i++)
    nonce[i] = (guint8)(record >> (56 - 8 * i));
  nonce[8] = nonce[9] = nonce[10] = 0;
  nonce[11] = last ? 1 : 0;
}

/* Seals (or opens) len bytes as the next record onto out. */
static gboolean
crypt_record(FerryLinkCipher *c, const guint8 *data, gsize len, gboolean last, GByteArray *out,
             GError **error)
{
  guint8 nonce[12];
  gsize at = out->len, n = c->encrypt ? len + FERRY_LINK_TAG : len - FERRY_LINK_TAG;
  int rc;

  nonce_for(c->record, last, nonce);
  g_byte_array_set_size(out, (guint)(at + n));
  if (c->encrypt)
    rc = gnutls_aead_cipher_encrypt(c->aead, nonce, sizeof nonce, FERRY_LINK_HEADER,
                                    FERRY_LINK_HEADER_LEN, FERRY_LINK_TAG, data, len,
                                    out->data + at, &n);
  else
    rc = gnutls_aead_cipher_decrypt(c->aead, nonce, sizeof nonce, FERRY_LINK_HEADER,
                                    FERRY_LINK_HEADER_LEN, FERRY_LINK_TAG, data, len,
                                    out->data + at, &n);
  if (rc < 0) {
    g_byte_array_set_size(out, (guint)at);
    c->failed = TRUE;
    if (c->encrypt)
      return ferry_set_error(error, FERRY_ERR_CRYPTO,
                             "cannot encrypt record %" G_GUINT64_FORMAT ": %s", c->record,
                             gnutls_strerror(rc));
    return ferry_set_error(error, FERRY_ERR_AUTH,
                           "the download failed authentication at record %" G_GUINT64_FORMAT
                           " (byte %" G_GUINT64_FORMAT " of the plaintext): it was changed or "
                           "cut on the way, or the key in the link is wrong",
                           c->record, c->record * FERRY_LINK_RECORD);
  }
  c->record++;
  return TRUE;
}

static gboolean
failed_again(GError **error)
{
  return ferry_set_error(error, FERRY_ERR_STATE, "the encrypted stream already failed");
}

gboolean
ferry_link_cipher_feed(FerryLinkCipher *c, const guint8 *data, gsize len, GByteArray *out,
                       GError **error)
{
  if (c->failed)
    return failed_again(error);
  if (c->encrypt) {
    if (!c->header_done) {
      g_byte_array_append(out, (const guint8 *)FERRY_LINK_HEADER, FERRY_LINK_HEADER_LEN);
      c->header_done = TRUE;
    }
    /* A full record is never the last one (the last has < 65536 bytes),
     * so it can go at once. */
    while (len > 0) {
      gsize take = MIN(len, FERRY_LINK_RECORD - c->buf->len);
      if (c->buf->len == 0 && take == FERRY_LINK_RECORD) {
        if (!crypt_record(c, data, take, FALSE, out, error))
          return FALSE;
      } else {
        g_byte_array_append(c->buf, data, (guint)take);
        if (c->buf->len == FERRY_LINK_RECORD) {
          if (!crypt_record(c, c->buf->data, c->buf->len, FALSE, out, error))
            return FALSE;
          g_byte_array_set_size(c->buf, 0);
        }
      }
      data += take;
      len -= take;
    }
    return TRUE;
  }

  g_byte_array_append(c->buf, data, (guint)len);
  gsize at = 0;
  if (!c->header_done) {
    if (c->buf->len < FERRY_LINK_HEADER_LEN)
      return TRUE;
    if (memcmp(c->buf->data, FERRY_LINK_HEADER, FERRY_LINK_HEADER_LEN) != 0) {
      c->failed = TRUE;
      return ferry_set_error(error, FERRY_ERR_INVALID,
                             "this download is not a ferry encrypted link (no FRYLNK01 header): "
                             "drop the '#k=…' part of the link if it was sent unencrypted");
    }
    c->header_done = TRUE;
    at = FERRY_LINK_HEADER_LEN;
  }
  /* Only a record followed by more bytes is known not to be the last. */
  while (c->buf->len - at > FERRY_LINK_SEALED) {
    if (!crypt_record(c, c->buf->data + at, FERRY_LINK_SEALED, FALSE, out, error))
      return FALSE;
    at += FERRY_LINK_SEALED;
  }
  g_byte_array_remove_range(c->buf, 0, (guint)at);
  return TRUE;
}

gboolean
ferry_link_cipher_finish(FerryLinkCipher *c, GByteArray *out, GError **error)
{
  if (c->failed)
    return failed_again(error);
  if (c->encrypt) {
    if (!c->header_done) {
      g_byte_array_append(out, (const guint8 *)FERRY_LINK_HEADER, FERRY_LINK_HEADER_LEN);
      c->header_done = TRUE;
    }
    gboolean ok = crypt_record(c, c->buf->data, c->buf->len, TRUE, out, error);
    g_byte_array_set_size(c->buf, 0);
    c->failed = TRUE; /* nothing may follow the last record */
    return ok;
  }
  if (!c->header_done || c->buf->len < FERRY_LINK_TAG || c->buf->len >= FERRY_LINK_SEALED) {
    c->failed = TRUE;
    return ferry_set_error(error, FERRY_ERR_AUTH,
                           "the download was cut short after %" G_GUINT64_FORMAT
                           " records: run the same command again",
                           c->record);
  }
  gboolean ok = crypt_record(c, c->buf->data, c->buf->len, TRUE, out, error);
  g_byte_array_set_size(c->buf, 0);
  c->failed = TRUE;
  return ok;
}

guint64
ferry_link_cipher_records(const FerryLinkCipher *c)
{
  return c->record;
}

void
ferry_link_cipher_free(FerryLinkCipher *c)
{
  if (c == NULL)
    return;
  gnutls_aead_cipher_deinit(c->aead);
  g_byte_array_unref(c->buf);
  g_free(c);
}
