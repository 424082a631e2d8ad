/*
 * cert.h - X.509 certificates as the rest of mod_btsso sees them.
 *
 * No OpenSSL type leaks through this header: a certificate is its DER bytes
 * plus the facts an administrator is shown (subject, SHA-256 fingerprint,
 * validity window).  Signature code turns the DER back into a key itself.
 */
#ifndef BTSSO_CERT_H
#define BTSSO_CERT_H

#include <apr_pools.h>
#include <apr_time.h>
#include "core/btsso_error.h"

typedef struct btsso_cert_t {
    const unsigned char *der;   /* DER encoding, pool-owned */
    apr_size_t der_len;
    const char *sha256;         /* lowercase hex of SHA-256(DER), 64 chars */
    const char *subject;        /* one line, RFC 2253 ("CN=idp,O=Example") */
    const char *issuer;         /* one line, RFC 2253 */
    apr_time_t not_before;      /* APR time (microseconds since the epoch) */
    apr_time_t not_after;
    const char *key_type;       /* "RSA 2048", "EC P-256", ... */
} btsso_cert_t;

typedef enum {
    BTSSO_ROLE_NONE = 0,
    BTSSO_ROLE_PRIMARY = 1,
    BTSSO_ROLE_SECONDARY = 2
} btsso_cert_role_e;

/* Parse one certificate, PEM ("-----BEGIN CERTIFICATE-----") or DER, told
 * apart by content.  Errors: "bad_certificate" (422) with a precise detail
 * (not PEM nor DER, truncated, trailing garbage, not a certificate). */
btsso_error_t *btsso_cert_parse(apr_pool_t *p, const void *data,
                                apr_size_t len, btsso_cert_t **out);

/* Parse the base64 text of a <ds:X509Certificate> (whitespace allowed). */
btsso_error_t *btsso_cert_parse_b64(apr_pool_t *p, const char *b64,
                                    btsso_cert_t **out);

/* PEM text (with header/footer lines, 64-column body). */
const char *btsso_cert_pem(apr_pool_t *p, const btsso_cert_t *c);

/* Base64 DER on one line, as <ds:X509Certificate> content. */
const char *btsso_cert_b64(apr_pool_t *p, const btsso_cert_t *c);

/* Non-zero when now lies inside [not_before, not_after]. */
int btsso_cert_is_valid_at(const btsso_cert_t *c, apr_time_t now);

/* "primary", "secondary", "none" */
const char *btsso_cert_role_name(btsso_cert_role_e role);
/* 0 on success, -1 for anything but those three words. */
int btsso_cert_role_parse(const char *s, btsso_cert_role_e *out);

/* Non-zero when s is 64 lowercase or uppercase hex digits. */
int btsso_cert_is_fingerprint(const char *s);

#endif /* BTSSO_CERT_H */
