/* GnuTLS for QUIC: sessions, throw-away certificates, exporter (quic-tls.h). */
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <ferry/error.h>

#include "net/quic-tls.h"

#define CERT_VALIDITY_S (24 * 3600)

gnutls_certificate_credentials_t
ferry_quic_tls_make_credentials(GError **error)
{
  gnutls_x509_privkey_t key = NULL;
  gnutls_x509_crt_t crt = NULL;
  gnutls_certificate_credentials_t cred = NULL;
  guint8 serial[16];
  time_t now = time(NULL);
  const char *step;
  int rv;

  step = "generate a key";
  rv = gnutls_x509_privkey_init(&key);
  if (rv == 0)
    rv = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                      GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
  if (rv != 0)
    goto fail;
  step = "build a certificate";
  rv = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
  serial[0] &= 0x7f; /* a positive serial number */
  if (rv == 0)
    rv = gnutls_x509_crt_init(&crt);
  if (rv == 0)
    rv = gnutls_x509_crt_set_version(crt, 3);
  if (rv == 0)
    rv = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
  if (rv == 0)
    rv = gnutls_x509_crt_set_activation_time(crt, now - 3600);
  if (rv == 0)
    rv = gnutls_x509_crt_set_expiration_time(crt, now + CERT_VALIDITY_S);
  if (rv == 0)
    rv = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "ferry", 5);
  if (rv == 0)
    rv = gnutls_x509_crt_set_key(crt, key);
  if (rv == 0)
    rv = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
  if (rv != 0)
    goto fail;
  step = "load the certificate";
  rv = gnutls_certificate_allocate_credentials(&cred);
  if (rv == 0)
    rv = gnutls_certificate_set_x509_key(cred, &crt, 1, key);
  if (rv != 0)
    goto fail;
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  return cred;

fail:
  ferry_set_error(error, FERRY_ERR_CRYPTO, "cannot %s for the QUIC connection: %s (GnuTLS %s)",
                  step, gnutls_strerror(rv), gnutls_check_version(NULL));
  if (cred != NULL)
    gnutls_certificate_free_credentials(cred);
  if (crt != NULL)
    gnutls_x509_crt_deinit(crt);
  if (key != NULL)
    gnutls_x509_privkey_deinit(key);
  return NULL;
}

gnutls_session_t
ferry_quic_tls_session_new(gboolean server, gnutls_certificate_credentials_t cred, const char *alpn,
                           ngtcp2_crypto_conn_ref *ref, GError **error)
{
  gnutls_session_t session = NULL;
  gnutls_datum_t proto = {(unsigned char *)alpn, (unsigned int)strlen(alpn)};
  const char *err_pos = NULL;
  const char *step = "create a TLS session";
  int rv;

  rv = gnutls_init(&session, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_ENABLE_EARLY_DATA |
                                 GNUTLS_NO_END_OF_EARLY_DATA | GNUTLS_NO_TICKETS);
  if (rv != 0)
    goto fail;
  step = "set the TLS 1.3 priorities";
  rv = gnutls_priority_set_direct(session, FERRY_QUIC_TLS_PRIORITY, &err_pos);
  if (rv != 0)
    goto fail;
  step = "prepare TLS for QUIC";
  rv = server ? ngtcp2_crypto_gnutls_configure_server_session(session)
              : ngtcp2_crypto_gnutls_configure_client_session(session);
  if (rv != 0) {
    rv = GNUTLS_E_INTERNAL_ERROR;
    goto fail;
  }
  gnutls_session_set_ptr(session, ref);
  step = "set the certificate";
  rv = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred);
  if (rv != 0)
    goto fail;
  step = "set the application protocol";
  rv = gnutls_alpn_set_protocols(session, &proto, 1, GNUTLS_ALPN_MANDATORY);
  if (rv != 0)
    goto fail;
  return session;

fail:
  ferry_set_error(error, FERRY_ERR_CRYPTO, "cannot %s for the QUIC connection: %s", step,
                  gnutls_strerror(rv));
  if (session != NULL)
    gnutls_deinit(session);
  return NULL;
}

gboolean
ferry_quic_tls_alpn_is(gnutls_session_t session, const char *alpn)
{
  gnutls_datum_t sel = {NULL, 0};

  if (gnutls_alpn_get_selected_protocol(session, &sel) != 0)
    return FALSE;
  return sel.size == strlen(alpn) && memcmp(sel.data, alpn, sel.size) == 0;
}

gboolean
ferry_quic_tls_export(gnutls_session_t session, const char *label, guint8 *out, gsize len,
                      GError **error)
{
  int rv = gnutls_prf_rfc5705(session, strlen(label), label, 0, NULL, len, (char *)out);

  if (rv != 0)
    return ferry_set_error(error, FERRY_ERR_CRYPTO,
                           "cannot export keying material '%s' from the QUIC connection: %s", label,
                           gnutls_strerror(rv));
  return TRUE;
}
