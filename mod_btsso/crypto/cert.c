/*
 * cert.c - X.509 certificates: parse PEM or DER once, keep the DER and the
 * facts an administrator is shown, and let no OpenSSL object outlive the
 * call that made it.
 */
#include <limits.h>
#include <string.h>
#include <time.h>

#include <apr_strings.h>
#include <apr_base64.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto/cert.h"
#include "core/b64.h"

#define CERT_ERR_CODE    "bad_certificate"
#define CERT_ERR_STATUS  422
#define CERT_ERR_MESSAGE "The certificate could not be read."

#define PEM_BEGIN "-----BEGIN "
#define PEM_DASHES "-----"

static btsso_error_t *cert_error(apr_pool_t *p, const char *detail)
{
    return btsso_error_make(p, CERT_ERR_STATUS, CERT_ERR_CODE,
                            CERT_ERR_MESSAGE, "%s", detail);
}

/* memmem is a GNU extension; the inputs here are small, so a plain scan. */
static const char *find_bytes(const char *hay, apr_size_t hay_len,
                              const char *needle)
{
    apr_size_t n = strlen(needle);
    apr_size_t i;

    if (n == 0 || hay_len < n) {
        return NULL;
    }
    for (i = 0; i + n <= hay_len; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

/* ---- base64 --------------------------------------------------------------- */

/*
 * Strict decode (core/b64): whitespace anywhere is skipped (XML
 * pretty-printers wrap the text), anything else outside the alphabet,
 * misplaced padding or an incomplete final group is refused, so a damaged
 * certificate is reported as such instead of being silently shortened.
 */
static btsso_error_t *b64_decode_strict(apr_pool_t *p, const char *s,
                                        unsigned char **out,
                                        apr_size_t *out_len)
{
    apr_size_t slen = strlen(s);
    btsso_error_t *err;

    if (strspn(s, " \t\r\n\f\v") == slen) {
        return cert_error(p, "empty: no base64 data");
    }
    err = btsso_b64_decode(p, s, slen, out, out_len);
    if (err != NULL) {
        return cert_error(p, apr_pstrcat(p, "bad base64: ",
                                         err->detail ? err->detail
                                                     : err->message, NULL));
    }
    return NULL;
}

/* ---- facts from an X509 -------------------------------------------------- */

static const char *name_rfc2253(apr_pool_t *p, const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const char *result = NULL;
    char *mem = NULL;
    long mem_len;

    if (bio == NULL) {
        return NULL;
    }
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        mem_len = BIO_get_mem_data(bio, &mem);
        if (mem_len >= 0) {
            result = apr_pstrmemdup(p, mem ? mem : "", (apr_size_t)mem_len);
        }
    }
    BIO_free(bio);
    return result;
}

static int asn1_time_to_apr(const ASN1_TIME *t, apr_time_t *out)
{
    struct tm tm;
    time_t secs;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        return -1;
    }
    secs = timegm(&tm);
    if (secs == (time_t)-1) {
        return -1;
    }
    *out = apr_time_from_sec(secs);
    return 0;
}

static const char *key_type_name(apr_pool_t *p, X509 *x)
{
    EVP_PKEY *pkey = X509_get0_pubkey(x);   /* borrowed, not freed */
    int id;

    if (pkey == NULL) {
        return "unknown";
    }
    id = EVP_PKEY_get_base_id(pkey);
    switch (id) {
    case EVP_PKEY_RSA:
        return apr_psprintf(p, "RSA %d", EVP_PKEY_get_bits(pkey));
    case EVP_PKEY_RSA_PSS:
        return apr_psprintf(p, "RSA-PSS %d", EVP_PKEY_get_bits(pkey));
    case EVP_PKEY_DSA:
        return apr_psprintf(p, "DSA %d", EVP_PKEY_get_bits(pkey));
    case EVP_PKEY_ED25519:
        return "Ed25519";
    case EVP_PKEY_ED448:
        return "Ed448";
    case EVP_PKEY_EC: {
        char group[80];
        size_t glen = 0;
        const char *nist;
        int nid;

        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                            group, sizeof(group), &glen)) {
            return apr_psprintf(p, "EC %d", EVP_PKEY_get_bits(pkey));
        }
        nid = OBJ_txt2nid(group);
        nist = nid != NID_undef ? EC_curve_nid2nist(nid) : NULL;
        return apr_psprintf(p, "EC %s", nist != NULL ? nist : group);
    }
    default:
        return apr_pstrdup(p, OBJ_nid2sn(id) != NULL ? OBJ_nid2sn(id)
                                                     : "unknown");
    }
}

/* Key size in bits and whether it meets the IdP minimum. */
static void key_strength(X509 *x, int *bits, int *strong)
{
    EVP_PKEY *pkey = X509_get0_pubkey(x);   /* borrowed, not freed */

    *bits = 0;
    *strong = 0;
    if (pkey == NULL) {
        return;
    }
    *bits = EVP_PKEY_get_bits(pkey);
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        *strong = *bits >= BTSSO_CERT_MIN_RSA_BITS;
        break;
    case EVP_PKEY_EC:
        *strong = *bits >= BTSSO_CERT_MIN_EC_BITS;
        break;
    default:
        break;
    }
}

/*
 * Length of the outermost DER element (header + content) when it can be read
 * from its header; 0 when the header itself is not DER.  Used only to tell
 * "truncated" from "trailing data" from "not a certificate" in errors.
 */
static apr_size_t der_outer_length(const unsigned char *d, apr_size_t len)
{
    apr_size_t content = 0;
    apr_size_t nbytes;
    apr_size_t i;

    if (len < 2 || d[0] != 0x30) {
        return 0;
    }
    if (d[1] < 0x80) {
        return 2 + d[1];
    }
    nbytes = d[1] & 0x7f;
    if (nbytes == 0 || nbytes > 4 || len < 2 + nbytes) {
        return 0;
    }
    for (i = 0; i < nbytes; i++) {
        content = (content << 8) | d[2 + i];
    }
    return 2 + nbytes + content;
}

static btsso_error_t *cert_from_der(apr_pool_t *p, const unsigned char *der,
                                    apr_size_t der_len, btsso_cert_t **out)
{
    btsso_error_t *err = NULL;
    const unsigned char *cursor = der;
    X509 *x = NULL;
    btsso_cert_t *c;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    apr_size_t outer;
    char *hex;
    unsigned int i;

    outer = der_outer_length(der, der_len);
    if (outer == 0) {
        err = cert_error(p, "not DER: the data does not start with an "
                            "ASN.1 SEQUENCE");
        goto done;
    }
    if (outer > der_len) {
        err = cert_error(p, apr_psprintf(p,
            "truncated DER: the certificate declares %" APR_SIZE_T_FMT
            " bytes but only %" APR_SIZE_T_FMT " are present",
            outer, der_len));
        goto done;
    }
    if (der_len > (apr_size_t)LONG_MAX) {
        err = cert_error(p, "DER too large");
        goto done;
    }
    x = d2i_X509(NULL, &cursor, (long)der_len);
    if (x == NULL) {
        err = cert_error(p, "DER is not an X.509 certificate");
        goto done;
    }
    if ((apr_size_t)(cursor - der) != der_len) {
        err = cert_error(p, apr_psprintf(p,
            "%" APR_SIZE_T_FMT " bytes of trailing data after the DER "
            "certificate", der_len - (apr_size_t)(cursor - der)));
        goto done;
    }

    c = apr_pcalloc(p, sizeof(*c));
    c->der = apr_pmemdup(p, der, der_len);
    c->der_len = der_len;

    if (!EVP_Digest(der, der_len, md, &md_len, EVP_sha256(), NULL)) {
        err = cert_error(p, "SHA-256 of the certificate failed");
        goto done;
    }
    hex = apr_palloc(p, md_len * 2 + 1);
    for (i = 0; i < md_len; i++) {
        static const char digits[] = "0123456789abcdef";
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0x0f];
    }
    hex[md_len * 2] = '\0';
    c->sha256 = hex;

    c->subject = name_rfc2253(p, X509_get_subject_name(x));
    c->issuer = name_rfc2253(p, X509_get_issuer_name(x));
    if (c->subject == NULL || c->issuer == NULL) {
        err = cert_error(p, "subject or issuer name could not be printed");
        goto done;
    }
    if (asn1_time_to_apr(X509_get0_notBefore(x), &c->not_before) != 0
        || asn1_time_to_apr(X509_get0_notAfter(x), &c->not_after) != 0) {
        err = cert_error(p, "validity dates could not be read");
        goto done;
    }
    c->key_type = key_type_name(p, x);
    key_strength(x, &c->key_bits, &c->key_strong);
    *out = c;

done:
    X509_free(x);
    return err;
}

/* ---- ready keys ------------------------------------------------------------ */

/* The handle is the EVP_PKEY itself: OpenSSL 3 keys are reference counted
 * and safe to share between threads once built. */
btsso_cert_key_t *btsso_cert_key_load(const btsso_cert_t *c)
{
    const unsigned char *cursor;
    EVP_PKEY *pkey;
    X509 *x;

    if (c == NULL || c->der == NULL || c->der_len > (apr_size_t)LONG_MAX) {
        return NULL;
    }
    cursor = c->der;
    x = d2i_X509(NULL, &cursor, (long)c->der_len);
    if (x == NULL) {
        return NULL;
    }
    pkey = X509_get_pubkey(x);          /* a reference of its own */
    X509_free(x);
    return (btsso_cert_key_t *)pkey;
}

void btsso_cert_key_free(btsso_cert_key_t *k)
{
    EVP_PKEY_free((EVP_PKEY *)k);
}

/* Fitted, rounded up, to what mallinfo2() counted for keys of each kind
 * loaded by btsso_cert_key_load and used for one verification (OpenSSL
 * 3.0, glibc; t/unit/test_cert.c test_key_cost checks it): RSA 2048 about
 * 1,830-1,900 bytes, 3072 2,420-2,500, 4096 3,050; EC P-256 2,290-2,500
 * (its verification leaves more behind from one run to the next). */
apr_size_t btsso_cert_key_cost(const btsso_cert_t *c)
{
    apr_size_t bits = c->key_bits > 0 ? (apr_size_t)c->key_bits : 2048;

    if (c->key_type != NULL && strncmp(c->key_type, "EC", 2) == 0) {
        return 2304 + bits * 2;
    }
    return 768 + bits * 5 / 8;
}

/* ---- PEM ------------------------------------------------------------------- */

static btsso_error_t *cert_from_pem(apr_pool_t *p, const char *text,
                                    apr_size_t len, btsso_cert_t **out)
{
    btsso_error_t *err = NULL;
    BIO *bio = NULL;
    char *name = NULL;
    char *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;

    /* A private key has no business in a certificate upload: refuse the
     * whole input, even a key bundled after the certificate, so nobody
     * stores or forwards it by mistake.  Nothing of it is echoed. */
    if (find_bytes(text, len, "PRIVATE KEY" PEM_DASHES) != NULL) {
        err = cert_error(p, "the PEM data contains a private key; upload "
                            "only the certificate");
        goto done;
    }
    if (find_bytes(text, len, "-----END ") == NULL) {
        err = cert_error(p, "truncated PEM: no -----END line");
        goto done;
    }
    if (len > (apr_size_t)INT_MAX) {
        err = cert_error(p, "PEM too large");
        goto done;
    }
    bio = BIO_new_mem_buf(text, (int)len);
    if (bio == NULL) {
        err = cert_error(p, "out of memory reading PEM");
        goto done;
    }
    /* Reads the first PEM block; leading text (as "openssl x509 -text"
     * prints) is skipped, and in a chain the first block is the leaf. */
    if (!PEM_read_bio(bio, &name, &header, &der, &der_len)) {
        err = cert_error(p, "PEM block could not be decoded (bad base64 "
                            "body or mismatched BEGIN/END lines)");
        goto done;
    }
    if (strcmp(name, PEM_STRING_X509) != 0
        && strcmp(name, PEM_STRING_X509_OLD) != 0) {
        err = cert_error(p, apr_psprintf(p,
            "the PEM block is a \"%s\", not a CERTIFICATE", name));
        goto done;
    }
    if (der_len <= 0) {
        err = cert_error(p, "empty PEM certificate block");
        goto done;
    }
    err = cert_from_der(p, der, (apr_size_t)der_len, out);

done:
    BIO_free(bio);
    OPENSSL_free(name);
    OPENSSL_free(header);
    if (der != NULL) {
        OPENSSL_clear_free(der, (size_t)der_len);
    }
    return err;
}

/* ---- public ---------------------------------------------------------------- */

/* PEM or DER, whatever the key. */
static btsso_error_t *cert_parse_any(apr_pool_t *p, const void *data,
                                     apr_size_t len, btsso_cert_t **out)
{
    const unsigned char *bytes = data;

    *out = NULL;
    if (data == NULL || len == 0) {
        return cert_error(p, "empty certificate data");
    }
    /* DER is one SEQUENCE whose header gives the exact length; PEM is text
     * with a BEGIN line somewhere (leading commentary is common in exported
     * files, and may itself start with the byte '0' == 0x30). */
    if (der_outer_length(bytes, len) == len) {
        return cert_from_der(p, bytes, len, out);
    }
    if (find_bytes(data, len, PEM_BEGIN) != NULL) {
        return cert_from_pem(p, data, len, out);
    }
    if (bytes[0] == 0x30) {
        /* Looks like DER whose length does not match: say how. */
        return cert_from_der(p, bytes, len, out);
    }
    return cert_error(p, "neither PEM (no -----BEGIN line) nor DER (no "
                         "ASN.1 SEQUENCE at the start)");
}

btsso_error_t *btsso_cert_parse(apr_pool_t *p, const void *data,
                                apr_size_t len, btsso_cert_t **out)
{
    btsso_cert_t *c = NULL;
    btsso_error_t *err = cert_parse_any(p, data, len, &c);

    *out = NULL;
    if (err == NULL) {
        err = btsso_cert_check_key(p, c);
    }
    if (err == NULL) {
        *out = c;
    }
    return err;
}

btsso_error_t *btsso_cert_check_key(apr_pool_t *p, const btsso_cert_t *c)
{
    const char *type = c->key_type != NULL ? c->key_type : "unknown";

    if (c->key_strong) {
        return NULL;
    }
    if (strncmp(type, "RSA", 3) == 0 || strncmp(type, "EC ", 3) == 0
        || strncmp(type, "DSA", 3) == 0) {
        return btsso_error_make(p, 422, "weak_key",
            "The certificate's key is too weak: identity provider "
            "certificates need an RSA key of at least 2048 bits or an EC "
            "key of P-256 or stronger.",
            "%s key (%d bits) in certificate %s (%s); the minimum is RSA "
            "%d or EC P-256", type, c->key_bits,
            c->sha256 != NULL ? c->sha256 : "?",
            c->subject != NULL ? c->subject : "?", BTSSO_CERT_MIN_RSA_BITS);
    }
    return btsso_error_make(p, 422, "key_unsupported",
        "The certificate's key type is not supported: identity provider "
        "certificates need an RSA key of at least 2048 bits or an EC key of "
        "P-256 or stronger.",
        "%s key in certificate %s (%s): no accepted signature algorithm "
        "uses it", type, c->sha256 != NULL ? c->sha256 : "?",
        c->subject != NULL ? c->subject : "?");
}

btsso_error_t *btsso_cert_parse_b64(apr_pool_t *p, const char *b64,
                                    btsso_cert_t **out)
{
    btsso_error_t *err;
    unsigned char *der = NULL;
    apr_size_t der_len = 0;

    *out = NULL;
    if (b64 == NULL) {
        return cert_error(p, "empty: no base64 data");
    }
    err = b64_decode_strict(p, b64, &der, &der_len);
    if (err != NULL) {
        return err;
    }
    return cert_from_der(p, der, der_len, out);
}

const char *btsso_cert_pem(apr_pool_t *p, const btsso_cert_t *c)
{
    const char *body = btsso_b64_encode(p, c->der, c->der_len);
    apr_size_t body_len = strlen(body);
    apr_size_t lines = (body_len + 63) / 64;
    static const char begin[] = "-----BEGIN CERTIFICATE-----\n";
    static const char end[] = "-----END CERTIFICATE-----\n";
    char *pem = apr_palloc(p, sizeof(begin) - 1 + body_len + lines
                              + sizeof(end));
    char *w = pem;
    apr_size_t off;

    memcpy(w, begin, sizeof(begin) - 1);
    w += sizeof(begin) - 1;
    for (off = 0; off < body_len; off += 64) {
        apr_size_t n = body_len - off < 64 ? body_len - off : 64;
        memcpy(w, body + off, n);
        w += n;
        *w++ = '\n';
    }
    memcpy(w, end, sizeof(end));   /* includes the NUL */
    return pem;
}

const char *btsso_cert_b64(apr_pool_t *p, const btsso_cert_t *c)
{
    return btsso_b64_encode(p, c->der, c->der_len);
}

int btsso_cert_is_valid_at(const btsso_cert_t *c, apr_time_t now)
{
    return c != NULL && c->key_strong && now >= c->not_before
           && now <= c->not_after;
}

const char *btsso_cert_role_name(btsso_cert_role_e role)
{
    switch (role) {
    case BTSSO_ROLE_PRIMARY:
        return "primary";
    case BTSSO_ROLE_SECONDARY:
        return "secondary";
    case BTSSO_ROLE_NONE:
    default:
        return "none";
    }
}

int btsso_cert_role_parse(const char *s, btsso_cert_role_e *out)
{
    if (s == NULL) {
        return -1;
    }
    if (strcmp(s, "primary") == 0) {
        *out = BTSSO_ROLE_PRIMARY;
    }
    else if (strcmp(s, "secondary") == 0) {
        *out = BTSSO_ROLE_SECONDARY;
    }
    else if (strcmp(s, "none") == 0) {
        *out = BTSSO_ROLE_NONE;
    }
    else {
        return -1;
    }
    return 0;
}

int btsso_cert_is_fingerprint(const char *s)
{
    int i;

    if (s == NULL) {
        return 0;
    }
    for (i = 0; i < 64; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')
              || (ch >= 'A' && ch <= 'F'))) {
            return 0;
        }
    }
    return s[64] == '\0';
}
