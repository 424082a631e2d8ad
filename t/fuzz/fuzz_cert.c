/*
 * fuzz_cert.c - libFuzzer harness for the certificate loader
 * (crypto/cert.c): btsso_cert_parse() on an uploaded PEM or DER file and
 * btsso_cert_parse_b64() on the text of a <ds:X509Certificate>.
 *
 * The input is given to both.  Checked: a parsed certificate has DER, a
 * 64-digit lowercase fingerprint, a subject, an issuer and a key type;
 * its PEM and base64 forms parse back to the same DER and fingerprint.
 */
#include "fuzz_common.h"

#include "crypto/cert.h"

static void roundtrip(apr_pool_t *p, const btsso_cert_t *c)
{
    const char *pem, *b64;
    btsso_cert_t *again = NULL;

    FUZZ_CHECK(c->der != NULL && c->der_len > 0);
    FUZZ_CHECK(c->sha256 != NULL && strlen(c->sha256) == 64
               && strspn(c->sha256, "0123456789abcdef") == 64);
    FUZZ_CHECK(btsso_cert_is_fingerprint(c->sha256));
    FUZZ_CHECK(c->subject != NULL && c->issuer != NULL
               && c->key_type != NULL);
    (void)btsso_cert_is_valid_at(c, apr_time_from_sec(1768478400));

    pem = btsso_cert_pem(p, c);
    FUZZ_CHECK(pem != NULL);
    FUZZ_CHECK(btsso_cert_parse(p, pem, strlen(pem), &again) == NULL);
    FUZZ_CHECK(again->der_len == c->der_len
               && memcmp(again->der, c->der, c->der_len) == 0
               && strcmp(again->sha256, c->sha256) == 0);
    b64 = btsso_cert_b64(p, c);
    FUZZ_CHECK(b64 != NULL);
    again = NULL;
    FUZZ_CHECK(btsso_cert_parse_b64(p, b64, &again) == NULL);
    FUZZ_CHECK(again->der_len == c->der_len
               && memcmp(again->der, c->der, c->der_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    btsso_cert_t *c = NULL;
    btsso_error_t *e;
    uint8_t *copy;
    char *text;

    if (apr_pool_create(&p, fuzz_root_pool()) != APR_SUCCESS) {
        abort();
    }
    /* an exact-size copy: ASan sees any read past size */
    copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    e = btsso_cert_parse(p, copy, size, &c);
    if (e == NULL) {
        FUZZ_CHECK(c != NULL);
        roundtrip(p, c);
    } else {
        FUZZ_CHECK(e->code != NULL && e->message != NULL);
        /* unreadable, or readable with a key too weak or of another kind
         * (issue 8, item 11a) */
        FUZZ_CHECK(strcmp(e->code, "bad_certificate") == 0
                   || strcmp(e->code, "weak_key") == 0
                   || strcmp(e->code, "key_unsupported") == 0);
    }
    free(copy);

    text = apr_pstrndup(p, (const char *)data, size);
    c = NULL;
    e = btsso_cert_parse_b64(p, text, &c);
    if (e == NULL) {
        FUZZ_CHECK(c != NULL);
        roundtrip(p, c);
    } else {
        FUZZ_CHECK(e->code != NULL && e->message != NULL);
    }
    apr_pool_destroy(p);
    return 0;
}
