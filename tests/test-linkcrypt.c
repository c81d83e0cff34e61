/* Encrypted links (src/core/linkcrypt.h): round trips at the record
 * boundaries, sizes both ways, tampering of every kind refused, resuming
 * in the middle, the key's text form, and a check of the format against
 * an independent implementation of docs/protocol.md §10.7 in Python
 * (python3-cryptography's AESGCM), both directions. */
#include <glib/gstdio.h>
#include <string.h>

#include "core/linkcrypt.h"

static const gsize sizes[] = {0,
                              1,
                              FERRY_LINK_RECORD - 1,
                              FERRY_LINK_RECORD,
                              FERRY_LINK_RECORD + 1,
                              3 * FERRY_LINK_RECORD,
                              3 * FERRY_LINK_RECORD + 12345};

static guint8 key[FERRY_LINK_KEY_BYTES];

static GBytes *
random_bytes(gsize n)
{
  guint8 *p = g_malloc(n + 1);
  for (gsize i = 0; i < n; i++)
    p[i] = (guint8)g_random_int();
  return g_bytes_new_take(p, n);
}

/* Runs data through a cipher in slices of step bytes; NULL with *error on
 * failure. */
static GByteArray *
run(gboolean encrypt, guint64 first, const guint8 *data, gsize len, gsize step, GError **error)
{
  FerryLinkCipher *c = ferry_link_cipher_new(key, encrypt, first, error);
  GByteArray *out = g_byte_array_new();
  gboolean ok = c != NULL;
  for (gsize at = 0; ok && at < len; at += step)
    ok = ferry_link_cipher_feed(c, data + at, MIN(step, len - at), out, error);
  if (ok)
    ok = ferry_link_cipher_finish(c, out, error);
  ferry_link_cipher_free(c);
  if (!ok)
    g_clear_pointer(&out, g_byte_array_unref);
  return out;
}

static void
test_round_trip(void)
{
  const gsize steps[] = {1 << 20, 65536, 7000, 1};
  for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
    g_autoptr(GBytes) plain = random_bytes(sizes[i]);
    gsize n;
    const guint8 *p = g_bytes_get_data(plain, &n);
    for (guint s = 0; s < G_N_ELEMENTS(steps); s++) {
      if (steps[s] == 1 && n > 70000)
        continue;
      GError *error = NULL;
      g_autoptr(GByteArray) sealed = run(TRUE, 0, p, n, steps[s], &error);
      g_assert_no_error(error);
      g_assert_cmpuint(sealed->len, ==, ferry_link_sealed_size(n));
      g_assert_cmpmem(sealed->data, 8, "FRYLNK01", 8);
      guint64 back = G_MAXUINT64;
      g_assert_true(ferry_link_plain_size(sealed->len, &back));
      g_assert_cmpuint(back, ==, n);
      g_autoptr(GByteArray) opened = run(FALSE, 0, sealed->data, sealed->len, steps[s], &error);
      g_assert_no_error(error);
      g_assert_cmpmem(opened->data, opened->len, p, n);
    }
  }
}

static void
test_sizes(void)
{
  guint64 plain;
  /* every size below three records and some large ones map back */
  for (guint64 n = 0; n < 3 * FERRY_LINK_RECORD + 40; n += 1 + n / 50) {
    g_assert_true(ferry_link_plain_size(ferry_link_sealed_size(n), &plain));
    g_assert_cmpuint(plain, ==, n);
  }
  g_assert_true(ferry_link_plain_size(ferry_link_sealed_size(G_GUINT64_CONSTANT(1) << 40), &plain));
  g_assert_cmpuint(plain, ==, G_GUINT64_CONSTANT(1) << 40);
  /* sizes nothing encrypts to */
  g_assert_false(ferry_link_plain_size(0, &plain));
  g_assert_false(ferry_link_plain_size(23, &plain));
  g_assert_false(ferry_link_plain_size(8 + 16 + FERRY_LINK_RECORD, &plain));
  g_assert_false(ferry_link_plain_size(8 + 16 + FERRY_LINK_SEALED - 1, &plain));
}

/* Opening sealed (changed by the caller) fails; returns the error. */
static GError *
open_fails(const GByteArray *sealed)
{
  GError *error = NULL;
  GByteArray *out = run(FALSE, 0, sealed->data, sealed->len, 4096, &error);
  g_assert_null(out);
  g_assert_nonnull(error);
  return error;
}

static void
test_tampering(void)
{
  gsize n = 2 * FERRY_LINK_RECORD + 100;
  g_autoptr(GBytes) plain = random_bytes(n);
  GError *error = NULL;
  g_autoptr(GByteArray) sealed = run(TRUE, 0, g_bytes_get_data(plain, NULL), n, 1 << 20, &error);
  g_assert_no_error(error);

  /* one flipped bit anywhere in a record */
  const gsize flips[] = {8, 8 + FERRY_LINK_SEALED + 5, sealed->len - 1};
  for (guint i = 0; i < G_N_ELEMENTS(flips); i++) {
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_byte_array_append(bad, sealed->data, sealed->len);
    bad->data[flips[i]] ^= 0x10;
    error = open_fails(bad);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_AUTH);
    g_assert_nonnull(strstr(error->message, "failed authentication"));
    g_clear_error(&error);
  }
  /* the header */
  {
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_byte_array_append(bad, sealed->data, sealed->len);
    bad->data[3] = 'X';
    error = open_fails(bad);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
    g_assert_nonnull(strstr(error->message, "not a ferry encrypted link"));
    g_clear_error(&error);
  }
  /* cut at a record boundary: the last record is missing */
  {
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_byte_array_append(bad, sealed->data, 8 + 2 * FERRY_LINK_SEALED);
    error = open_fails(bad);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_AUTH);
    g_assert_nonnull(strstr(error->message, "cut short"));
    g_clear_error(&error);
  }
  /* cut after one full record: that record is then taken as the last and fails */
  {
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_byte_array_append(bad, sealed->data, 8 + FERRY_LINK_SEALED + 16 + 100);
    error = open_fails(bad);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_AUTH);
    g_clear_error(&error);
  }
  /* two records swapped */
  {
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_byte_array_append(bad, sealed->data, 8);
    g_byte_array_append(bad, sealed->data + 8 + FERRY_LINK_SEALED, FERRY_LINK_SEALED);
    g_byte_array_append(bad, sealed->data + 8, FERRY_LINK_SEALED);
    g_byte_array_append(bad, sealed->data + 8 + 2 * FERRY_LINK_SEALED,
                        sealed->len - 8 - 2 * FERRY_LINK_SEALED);
    error = open_fails(bad);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_AUTH);
    g_clear_error(&error);
  }
  /* bytes appended after the last record */
  {
    g_autoptr(GByteArray) bad = g_byte_array_new();
    g_byte_array_append(bad, sealed->data, sealed->len);
    g_byte_array_append(bad, (const guint8 *)"junk", 4);
    error = open_fails(bad);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_AUTH);
    g_clear_error(&error);
  }
  /* another key */
  {
    key[0] ^= 1;
    error = open_fails(sealed);
    g_assert_error(error, FERRY_ERROR, FERRY_ERROR_AUTH);
    g_clear_error(&error);
    key[0] ^= 1;
  }
}

/* Resuming: opening from record k on gives the plaintext from k * 65536. */
static void
test_resume(void)
{
  gsize n = 3 * FERRY_LINK_RECORD + 777;
  g_autoptr(GBytes) plain = random_bytes(n);
  const guint8 *p = g_bytes_get_data(plain, NULL);
  GError *error = NULL;
  g_autoptr(GByteArray) sealed = run(TRUE, 0, p, n, 1 << 20, &error);
  g_assert_no_error(error);
  for (guint64 k = 1; k <= 3; k++) {
    gsize from = 8 + k * FERRY_LINK_SEALED;
    g_autoptr(GByteArray) opened =
        run(FALSE, k, sealed->data + from, sealed->len - from, 5000, &error);
    g_assert_no_error(error);
    g_assert_cmpmem(opened->data, opened->len, p + k * FERRY_LINK_RECORD,
                    n - k * FERRY_LINK_RECORD);
  }
  /* starting at the wrong record fails */
  gsize from = 8 + FERRY_LINK_SEALED;
  GByteArray *out = run(FALSE, 2, sealed->data + from, sealed->len - from, 5000, &error);
  g_assert_null(out);
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_AUTH);
  g_clear_error(&error);
}

static void
test_key_text(void)
{
  guint8 back[FERRY_LINK_KEY_BYTES];
  GError *error = NULL;
  g_autofree char *text = ferry_link_key_encode(key);
  g_assert_cmpuint(strlen(text), ==, 43);
  g_assert_null(strpbrk(text, "+/="));
  g_assert_true(ferry_link_key_decode(text, back, &error));
  g_assert_no_error(error);
  g_assert_cmpmem(back, sizeof back, key, sizeof key);

  g_assert_false(ferry_link_key_decode("abc", back, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "not 43"));
  g_clear_error(&error);
  char bad[44];
  memcpy(bad, text, 44);
  bad[10] = '*';
  g_assert_false(ferry_link_key_decode(bad, back, &error));
  g_assert_error(error, FERRY_ERROR, FERRY_ERROR_INVALID);
  g_assert_nonnull(strstr(error->message, "'*'"));
  g_clear_error(&error);
}

/* The Python side of the cross-check, written from the protocol text. */
static const char python_fle1[] =
    "import sys, os, base64\n"
    "from cryptography.hazmat.primitives.ciphers.aead import AESGCM\n"
    "mode, keytext, src, dst = sys.argv[1:5]\n"
    "key = base64.urlsafe_b64decode(keytext + '=')\n"
    "a = AESGCM(key); H = b'FRYLNK01'; R = 65536\n"
    "def nonce(i, last): return i.to_bytes(8, 'big') + (1 if last else 0).to_bytes(4, 'big')\n"
    "data = open(src, 'rb').read()\n"
    "if mode == 'seal':\n"
    "    out = [H]; i = 0; at = 0\n"
    "    while len(data) - at >= R:\n"
    "        out.append(a.encrypt(nonce(i, False), data[at:at+R], H)); i += 1; at += R\n"
    "    out.append(a.encrypt(nonce(i, True), data[at:], H))\n"
    "    open(dst, 'wb').write(b''.join(out))\n"
    "else:\n"
    "    assert data[:8] == H\n"
    "    body = data[8:]; out = []; i = 0\n"
    "    while len(body) > R + 16:\n"
    "        out.append(a.decrypt(nonce(i, False), body[:R+16], H)); body = body[R+16:]; i += 1\n"
    "    out.append(a.decrypt(nonce(i, True), body, H))\n"
    "    open(dst, 'wb').write(b''.join(out))\n";

static void
python(const char *mode, const char *src, const char *dst)
{
  g_autofree char *keytext = ferry_link_key_encode(key);
  const char *argv[] = {"python3", "-c", python_fle1, mode, keytext, src, dst, NULL};
  GError *error = NULL;
  int status = 0;
  g_autofree char *err = NULL;
  gboolean ok = g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, &err,
                             &status, &error);
  g_assert_no_error(error);
  g_assert_true(ok);
  if (!g_spawn_check_wait_status(status, NULL))
    g_error("python3 %s failed (python3-cryptography comes from scripts/install-deps.sh): %s", mode,
            err);
}

static void
test_python_cross_check(void)
{
  g_autofree char *dir = g_dir_make_tmp("ferry-linkcrypt-XXXXXX", NULL);
  g_autofree char *plain_path = g_build_filename(dir, "plain", NULL);
  g_autofree char *sealed_path = g_build_filename(dir, "sealed", NULL);
  g_autofree char *opened_path = g_build_filename(dir, "opened", NULL);
  for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
    g_autoptr(GBytes) plain = random_bytes(sizes[i]);
    gsize n;
    const guint8 *p = g_bytes_get_data(plain, &n);
    GError *error = NULL;
    g_assert_true(g_file_set_contents(plain_path, (const char *)p, (gssize)n, NULL));

    /* ours sealed, Python opens */
    g_autoptr(GByteArray) sealed = run(TRUE, 0, p, n, 1 << 20, &error);
    g_assert_no_error(error);
    g_assert_true(
        g_file_set_contents(sealed_path, (const char *)sealed->data, (gssize)sealed->len, NULL));
    python("open", sealed_path, opened_path);
    g_autofree char *got = NULL;
    gsize got_len = 0;
    g_assert_true(g_file_get_contents(opened_path, &got, &got_len, NULL));
    g_assert_cmpmem(got, got_len, p, n);

    /* Python sealed, ours opens */
    python("seal", plain_path, sealed_path);
    g_autofree char *theirs = NULL;
    gsize theirs_len = 0;
    g_assert_true(g_file_get_contents(sealed_path, &theirs, &theirs_len, NULL));
    g_assert_cmpuint(theirs_len, ==, ferry_link_sealed_size(n));
    g_autoptr(GByteArray) opened = run(FALSE, 0, (const guint8 *)theirs, theirs_len, 10000, &error);
    g_assert_no_error(error);
    g_assert_cmpmem(opened->data, opened->len, p, n);
  }
  g_remove(plain_path);
  g_remove(sealed_path);
  g_remove(opened_path);
  g_rmdir(dir);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  for (guint i = 0; i < sizeof key; i++)
    key[i] = (guint8)g_random_int();
  g_test_add_func("/core/linkcrypt/round-trip", test_round_trip);
  g_test_add_func("/core/linkcrypt/sizes", test_sizes);
  g_test_add_func("/core/linkcrypt/tampering", test_tampering);
  g_test_add_func("/core/linkcrypt/resume", test_resume);
  g_test_add_func("/core/linkcrypt/key-text", test_key_text);
  g_test_add_func("/core/linkcrypt/python-cross-check", test_python_cross_check);
  return g_test_run();
}
