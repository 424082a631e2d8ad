/*
 * spkey.h - the SP's own signing key and certificate.
 *
 * Loaded once at startup from the files BTSSOSPPrivateKey and
 * BTSSOSPCertificate name (and the "Next" pair for rollover).  No OpenSSL
 * type crosses this header except through btsso_spkey_evp_pkey(), which
 * exists for crypto-internal users only.  The key is freed by a cleanup on
 * the pool it was loaded into.
 */
#ifndef BTSSO_SPKEY_H
#define BTSSO_SPKEY_H

#include <apr_pools.h>
#include "core/btsso_error.h"
#include "crypto/cert.h"

/* Signature algorithm URIs (RFC 6931) used by the Redirect binding and
 * XML signatures. */
#define BTSSO_SIGALG_RSA_SHA1     "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
#define BTSSO_SIGALG_RSA_SHA256   "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#define BTSSO_SIGALG_RSA_SHA384   "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384"
#define BTSSO_SIGALG_RSA_SHA512   "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"
#define BTSSO_SIGALG_ECDSA_SHA256 "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
#define BTSSO_SIGALG_ECDSA_SHA384 "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
#define BTSSO_SIGALG_ECDSA_SHA512 "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"

typedef struct btsso_spkey_t btsso_spkey_t;

/*
 * Load an unencrypted PEM private key (PKCS#8 "PRIVATE KEY", or the
 * traditional "RSA PRIVATE KEY"/"EC PRIVATE KEY") and its PEM certificate,
 * and check they belong together.  Supported keys: RSA of at least 2048
 * bits, EC on P-256, P-384 or P-521.
 *
 * Errors (all 500, as they are configuration mistakes; detail names the
 * file): key_unreadable / cert_unreadable (cannot open or read),
 * key_encrypted (the key needs a pass phrase: mod_btsso never prompts),
 * key_invalid (not a PEM private key), key_unsupported (type or size),
 * bad_certificate (from btsso_cert_parse), key_mismatch (names both files).
 */
btsso_error_t *btsso_spkey_load(apr_pool_t *p, const char *key_file,
                                const char *cert_file, btsso_spkey_t **out);

/* The same from PEM bytes in memory; the names only go into error
 * details ("BTSSOSPPrivateKey", a file name, ...). */
btsso_error_t *btsso_spkey_load_pem(apr_pool_t *p,
                                    const char *key_pem, apr_size_t key_len,
                                    const char *key_name,
                                    const char *cert_pem, apr_size_t cert_len,
                                    const char *cert_name,
                                    btsso_spkey_t **out);

/* The certificate, as published in SP metadata. */
const btsso_cert_t *btsso_spkey_cert(const btsso_spkey_t *key);

/* "RSA" or "EC". */
const char *btsso_spkey_type(const btsso_spkey_t *key);

/* The algorithm used when the caller names none: RSA-SHA256 for RSA keys,
 * ECDSA with SHA-256/384/512 for P-256/P-384/P-521. */
const char *btsso_spkey_default_sigalg(const btsso_spkey_t *key);

/* Non-zero when this key can sign with sigalg_uri (SHA-1 never). */
int btsso_spkey_supports_sigalg(const btsso_spkey_t *key,
                                const char *sigalg_uri);

/*
 * Sign data with the algorithm sigalg_uri (NULL: the key's default).
 * RSA: PKCS#1 v1.5.  ECDSA: the XML-DSig form, r || s as two big-endian
 * integers of the curve's size (not DER).  The signature is pool memory.
 * Errors: sigalg_unsupported (500: unknown URI, SHA-1, or a URI for another
 * key type), sign_failed (500).
 */
btsso_error_t *btsso_spkey_sign(apr_pool_t *p, const btsso_spkey_t *key,
                                const void *data, apr_size_t len,
                                const char *sigalg_uri,
                                const unsigned char **sig_out,
                                apr_size_t *sig_len_out);

/*
 * Verify a signature over data made with sigalg_uri by the key of cert,
 * in the formats btsso_spkey_sign produces (the counterpart used for
 * Redirect-binding signatures from an IdP).  NULL when valid.
 * rsa-sha1 is understood here (never for signing) so that an operator
 * may allow it for an old IdP: the caller's allowed list decides.
 * Errors: sigalg_unsupported (403: unknown URI, or not matching the
 * certificate's key type), bad_certificate (403), sig_invalid (403),
 * verify_failed (500: OpenSSL could not set up the check).
 */
btsso_error_t *btsso_sig_verify(apr_pool_t *p, const btsso_cert_t *cert,
                                const void *data, apr_size_t len,
                                const char *sigalg_uri,
                                const unsigned char *sig, apr_size_t sig_len);

/*
 * The OpenSSL EVP_PKEY * of the key, for crypto-internal users only
 * (decryption of EncryptedAssertion).  Owned by the spkey: do not free.
 */
void *btsso_spkey_evp_pkey(const btsso_spkey_t *key);

#endif /* BTSSO_SPKEY_H */
