/*
 * cert.h - X.509 certificates as the rest of mod_btsso sees them.
 *
 * No OpenSSL type leaks through this header: a certificate is its DER bytes
 * plus the facts an administrator is shown (subject, SHA-256 fingerprint,
 * validity window).  Signature code turns the DER back into a key itself,
 * or takes the ready public key a long-lived holder (the account cache)
 * loaded once with btsso_cert_key_load().
 */
#ifndef BTSSO_CERT_H
#define BTSSO_CERT_H

#include <apr_pools.h>
#include <apr_time.h>
#include "core/btsso_error.h"

/* An opaque, reference-counted public key (an OpenSSL EVP_PKEY inside),
 * immutable once loaded, so any number of threads may verify with it. */
typedef struct btsso_cert_key_t btsso_cert_key_t;

typedef struct btsso_cert_t {
    const unsigned char *der;   /* DER encoding, pool-owned */
    apr_size_t der_len;
    const char *sha256;         /* lowercase hex of SHA-256(DER), 64 chars */
    const char *subject;        /* one line, RFC 2253 ("CN=idp,O=Example") */
    const char *issuer;         /* one line, RFC 2253 */
    apr_time_t not_before;      /* APR time (microseconds since the epoch) */
    apr_time_t not_after;
    const char *key_type;       /* "RSA 2048", "EC P-256", ... */
    int key_bits;               /* RSA modulus / EC group order bits */
    int key_strong;             /* RSA >= 2048 or EC >= P-256 (below) */
    btsso_cert_key_t *ready_key; /* NULL, or the public key loaded once by
                                    whoever owns this copy (and frees it) */
} btsso_cert_t;

/* The weakest IdP keys accepted: RSA (or RSA-PSS) moduli, EC curves. */
#define BTSSO_CERT_MIN_RSA_BITS 2048
#define BTSSO_CERT_MIN_EC_BITS  256

typedef enum {
    BTSSO_ROLE_NONE = 0,
    BTSSO_ROLE_PRIMARY = 1,
    BTSSO_ROLE_SECONDARY = 2
} btsso_cert_role_e;

/* Parse one certificate, PEM ("-----BEGIN CERTIFICATE-----") or DER, told
 * apart by content: what an administrator uploads.  Errors:
 * "bad_certificate" (422) with a precise detail (not PEM nor DER,
 * truncated, trailing garbage, not a certificate), and those of
 * btsso_cert_check_key(): a weak key is refused at the door. */
btsso_error_t *btsso_cert_parse(apr_pool_t *p, const void *data,
                                apr_size_t len, btsso_cert_t **out);

/* Parse the base64 text of a <ds:X509Certificate> (whitespace allowed).
 * The key's strength is NOT checked here (stored certificates are read
 * with it and must stay readable, and shown); a caller taking in a new
 * certificate calls btsso_cert_check_key().  A weak one is never usable
 * for verification anyway (btsso_cert_is_valid_at). */
btsso_error_t *btsso_cert_parse_b64(apr_pool_t *p, const char *b64,
                                    btsso_cert_t **out);

/* NULL when the key is RSA of at least 2048 bits or EC of at least 256
 * (P-256, P-384, P-521).  Errors (422): "weak_key" (RSA or EC below that,
 * DSA), "key_unsupported" (any other key type: no signature algorithm
 * mod_btsso accepts could use it).  The detail names the key. */
btsso_error_t *btsso_cert_check_key(apr_pool_t *p, const btsso_cert_t *c);

/* PEM text (with header/footer lines, 64-column body). */
const char *btsso_cert_pem(apr_pool_t *p, const btsso_cert_t *c);

/* Base64 DER on one line, as <ds:X509Certificate> content. */
const char *btsso_cert_b64(apr_pool_t *p, const btsso_cert_t *c);

/* Non-zero when now lies inside [not_before, not_after] and the key is
 * strong enough (key_strong): the one test every "usable certificate"
 * decision goes through, so a weak key is never used to verify. */
int btsso_cert_is_valid_at(const btsso_cert_t *c, apr_time_t now);

/* The certificate's public key, loaded from its DER (NULL when it cannot
 * be), for a holder that verifies many signatures with it.  Freed with
 * btsso_cert_key_free (NULL is fine). */
btsso_cert_key_t *btsso_cert_key_load(const btsso_cert_t *c);
void btsso_cert_key_free(btsso_cert_key_t *k);

/* The heap bytes a key loaded from c holds once it has verified a
 * signature (OpenSSL 3 caches the RSA Montgomery context in the key at
 * the first use), measured with glibc's mallinfo2 (docs/performance.md):
 * about 1.9 KiB for RSA 2048, 3.0 KiB for RSA 4096, 2.3-2.5 KiB for EC
 * P-256. */
apr_size_t btsso_cert_key_cost(const btsso_cert_t *c);

/* "primary", "secondary", "none" */
const char *btsso_cert_role_name(btsso_cert_role_e role);
/* 0 on success, -1 for anything but those three words. */
int btsso_cert_role_parse(const char *s, btsso_cert_role_e *out);

/* Non-zero when s is 64 lowercase or uppercase hex digits. */
int btsso_cert_is_fingerprint(const char *s);

#endif /* BTSSO_CERT_H */
