/* TLS 1.3 for QUIC connections (net/quic.h): GnuTLS sessions configured
 * for ngtcp2, throw-away certificates, the keying-material exporter.
 *
 * Peers are not authenticated here: certificates are self-signed, made at
 * run time and never checked. Who is on the other end is proven later by
 * binding the PAKE key to this connection's exporter output. */
#ifndef FERRY_NET_QUIC_TLS_H
#define FERRY_NET_QUIC_TLS_H

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <glib.h>

G_BEGIN_DECLS

/* TLS 1.3 only, AES-GCM first (fastest here), no middlebox compatibility
 * mode (QUIC forbids it). */
#define FERRY_QUIC_TLS_PRIORITY                                                                    \
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"        \
  "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:%DISABLE_TLS13_COMPAT_MODE"

/* Credentials holding a fresh self-signed ECDSA P-256 certificate (a day
 * of validity, CN "ferry"). Returns NULL with FERRY_ERROR_CRYPTO when GnuTLS
 * refuses. Free with gnutls_certificate_free_credentials(). */
gnutls_certificate_credentials_t ferry_quic_tls_make_credentials(GError **error);

/* A client or server session for ngtcp2: TLS 1.3 only, ALPN alpn
 * mandatory, no session tickets, the QUIC transport-parameter extension
 * registered. ref must outlive the session (the crypto helpers find the
 * connection through it). Returns NULL with FERRY_ERROR_CRYPTO naming the
 * step that failed. The caller frees it with gnutls_deinit(). */
gnutls_session_t ferry_quic_tls_session_new(gboolean server, gnutls_certificate_credentials_t cred,
                                            const char *alpn, ngtcp2_crypto_conn_ref *ref,
                                            GError **error);

/* TRUE when the handshake selected exactly alpn. */
gboolean ferry_quic_tls_alpn_is(gnutls_session_t session, const char *alpn);

/* The RFC 5705 / RFC 8446 exporter with an empty context: len bytes into
 * out, the same on both ends of one connection. Returns FALSE with
 * FERRY_ERROR_CRYPTO when GnuTLS refuses. */
gboolean ferry_quic_tls_export(gnutls_session_t session, const char *label, guint8 *out, gsize len,
                               GError **error);

G_END_DECLS

#endif
