/*
 * test_cert.c - certificate parsing (PEM, DER, base64), facts and errors.
 *
 * The expected fingerprints, names and dates were printed by the openssl
 * command line when the test keys were made (t/fixtures/keys/FINGERPRINTS,
 * `openssl x509 -noout -subject -dates -nameopt RFC2253`), not by the code
 * under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "crypto/cert.h"
#include "core/b64.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif
#define KEYS TOP_SRCDIR "/t/fixtures/keys/"

/* `openssl x509 -noout -fingerprint -sha256` output */
#define FP_OKTA "75:93:D7:34:42:27:57:E2:FC:2E:03:48:A0:62:58:F0:86:4F:27:B5:" \
                "45:58:A4:E5:6C:CD:A4:48:EB:D8:36:98"
#define FP_EC "16:C5:D9:B7:76:57:CD:46:47:C0:A9:D9:ED:AD:B8:79:42:B6:7E:29:" \
              "EE:96:39:4E:4D:29:13:A5:20:F1:38:8C"
#define FP_EXPIRED "DD:D0:31:B3:31:2D:DA:FF:FA:F2:A1:2C:71:E6:F1:C8:80:FE:64:" \
                   "01:BE:A0:5A:D7:A1:A0:9A:28:7A:33:08:2C"
#define FP_NOTYET "54:C0:D7:23:53:3D:94:A6:B1:4C:3A:0C:9B:07:BE:9D:F7:47:17:" \
                  "62:38:43:E3:DE:81:C5:3F:02:FB:0C:33:57"
#define OKTA_DN "CN=example-test,OU=SSOProvider,O=Okta Test,L=San Francisco," \
                "ST=California,C=US"

static apr_pool_t *pool;

static int setup(void **state)
{
    apr_pool_create(&pool, NULL);
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy(pool);
    return 0;
}

/* "AB:CD:..." -> "abcd...", independently of the code under test */
static const char *fp_hex(const char *openssl_fp)
{
    char *out = apr_palloc(pool, strlen(openssl_fp) + 1);
    char *w = out;

    for (; *openssl_fp != '\0'; openssl_fp++) {
        if (*openssl_fp == ':') {
            continue;
        }
        *w++ = (char)(*openssl_fp >= 'A' && *openssl_fp <= 'F'
                      ? *openssl_fp - 'A' + 'a' : *openssl_fp);
    }
    *w = '\0';
    return out;
}

static char *slurp(const char *path, apr_size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL) {
        fail_msg("cannot open %s", path);
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = apr_palloc(pool, (apr_size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fail_msg("cannot read %s", path);
    }
    fclose(f);
    buf[n] = '\0';
    *len = (apr_size_t)n;
    return buf;
}

static btsso_cert_t *parse_ok(const void *data, apr_size_t len)
{
    btsso_cert_t *c = NULL;
    btsso_error_t *e = btsso_cert_parse(pool, data, len, &c);

    if (e != NULL) {
        fail_msg("%s", btsso_error_line(pool, e));
    }
    assert_non_null(c);
    return c;
}

static btsso_cert_t *parse_file_ok(const char *name)
{
    apr_size_t len;
    char *data = slurp(apr_pstrcat(pool, KEYS, name, NULL), &len);

    return parse_ok(data, len);
}

/* Asserts the error and that its detail holds `detail_part`. */
static void parse_fails(const void *data, apr_size_t len,
                        const char *detail_part)
{
    btsso_cert_t *c = NULL;
    btsso_error_t *e = btsso_cert_parse(pool, data, len, &c);

    if (e == NULL) {
        fail_msg("parse succeeded, expected \"%s\"", detail_part);
    }
    assert_null(c);
    assert_string_equal(e->code, "bad_certificate");
    assert_int_equal(e->status, 422);
    assert_non_null(e->message);
    assert_non_null(e->detail);
    if (strstr(e->detail, detail_part) == NULL) {
        fail_msg("detail \"%s\" lacks \"%s\"", e->detail, detail_part);
    }
}

static void b64_fails(const char *b64, const char *detail_part)
{
    btsso_cert_t *c = NULL;
    btsso_error_t *e = btsso_cert_parse_b64(pool, b64, &c);

    if (e == NULL) {
        fail_msg("b64 parse succeeded, expected \"%s\"", detail_part);
    }
    assert_null(c);
    assert_string_equal(e->code, "bad_certificate");
    assert_int_equal(e->status, 422);
    assert_non_null(e->detail);
    if (strstr(e->detail, detail_part) == NULL) {
        fail_msg("detail \"%s\" lacks \"%s\"", e->detail, detail_part);
    }
}

/* The base64 body of a PEM file, with its line breaks. */
static const char *pem_body(const char *name)
{
    apr_size_t len;
    char *pem = slurp(apr_pstrcat(pool, KEYS, name, NULL), &len);
    char *start = strstr(pem, "-----\n");
    char *end = strstr(pem, "-----END");

    assert_non_null(start);
    assert_non_null(end);
    start += 6;
    return apr_pstrmemdup(pool, start, (apr_size_t)(end - start));
}

static void test_pem(void **state)
{
    btsso_cert_t *c = parse_file_ok("okta.crt");
    apr_size_t der_len;
    char *der = slurp(KEYS "okta.der", &der_len);

    assert_string_equal(c->sha256, fp_hex(FP_OKTA));
    assert_string_equal(c->subject, OKTA_DN);
    assert_string_equal(c->issuer, OKTA_DN);
    assert_string_equal(c->key_type, "RSA 2048");
    assert_int_equal(c->der_len, der_len);
    assert_memory_equal(c->der, der, der_len);
    assert_true(btsso_cert_is_fingerprint(c->sha256));
}

static void test_der(void **state)
{
    btsso_cert_t *c = parse_file_ok("okta.der");

    assert_string_equal(c->sha256, fp_hex(FP_OKTA));
    assert_string_equal(c->subject, OKTA_DN);
    assert_int_equal(c->not_before, apr_time_from_sec(1795854981));
    assert_int_equal(c->not_after, apr_time_from_sec(2426574981));
}

static void test_pem_with_leading_text(void **state)
{
    btsso_cert_t *c = parse_file_ok("okta-with-text.pem");

    assert_string_equal(c->sha256, fp_hex(FP_OKTA));
}

static void test_pem_chain_takes_first(void **state)
{
    btsso_cert_t *c = parse_file_ok("chain-okta-entra.pem");

    assert_string_equal(c->sha256, fp_hex(FP_OKTA));
}

static void test_pem_crlf(void **state)
{
    apr_size_t len;
    char *pem = slurp(KEYS "okta.crt", &len);
    char *crlf = apr_palloc(pool, len * 2 + 1);
    apr_size_t i;
    apr_size_t n = 0;

    for (i = 0; i < len; i++) {
        if (pem[i] == '\n') {
            crlf[n++] = '\r';
        }
        crlf[n++] = pem[i];
    }
    assert_string_equal(parse_ok(crlf, n)->sha256, fp_hex(FP_OKTA));
}

static void test_ec_and_rsa3072_key_types(void **state)
{
    btsso_cert_t *ec = parse_file_ok("ec-p256.crt");

    assert_string_equal(ec->key_type, "EC P-256");
    assert_string_equal(ec->sha256, fp_hex(FP_EC));
    assert_string_equal(ec->subject, "CN=ec.example.test,O=EC Test");
    assert_string_equal(parse_file_ok("shib-signing-2.crt")->key_type,
                        "RSA 3072");
}

static void test_private_key_refused(void **state)
{
    apr_size_t len;
    char *key = slurp(KEYS "okta.key", &len);
    char *cert = slurp(KEYS "okta.crt", &len);
    const char *bundle;
    btsso_cert_t *c = NULL;
    btsso_error_t *e;

    parse_fails(key, strlen(key), "private key");
    /* a certificate followed by its key is refused too */
    bundle = apr_pstrcat(pool, cert, key, NULL);
    parse_fails(bundle, strlen(bundle), "private key");
    /* and nothing of the key is echoed */
    e = btsso_cert_parse(pool, key, strlen(key), &c);
    assert_non_null(e);
    assert_null(strstr(e->detail, "MII"));
    assert_null(strstr(btsso_error_line(pool, e), "MII"));
}

static void test_pem_other_block_refused(void **state)
{
    const char *crl = apr_pstrcat(pool, "-----BEGIN X509 CRL-----\n",
                                  pem_body("okta.crt"),
                                  "-----END X509 CRL-----\n", NULL);

    parse_fails(crl, strlen(crl), "\"X509 CRL\", not a CERTIFICATE");
}

static void test_pem_broken(void **state)
{
    apr_size_t len;
    char *pem = slurp(KEYS "okta.crt", &len);
    char *cut = apr_pstrmemdup(pool, pem, len / 2);
    char *bad = apr_pstrdup(pool, pem);

    parse_fails(cut, strlen(cut), "truncated PEM");
    bad[100] = '*';
    parse_fails(bad, len, "could not be decoded");
}

static void test_der_truncated(void **state)
{
    apr_size_t len;
    char *der = slurp(KEYS "okta.der", &len);

    parse_fails(der, len - 10, "truncated DER");
    parse_fails(der, 4, "truncated DER");
}

static void test_der_trailing_data(void **state)
{
    apr_size_t len;
    char *der = slurp(KEYS "okta.der", &len);
    char *longer = apr_palloc(pool, len + 3);

    memcpy(longer, der, len);
    memcpy(longer + len, "xyz", 3);
    parse_fails(longer, len + 3, "3 bytes of trailing data");
}

static void test_garbage(void **state)
{
    static const unsigned char not_cert[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };
    static const char text[] = "hello, this is not a certificate";

    parse_fails(text, sizeof(text) - 1, "neither PEM");
    parse_fails(not_cert, sizeof(not_cert), "not an X.509 certificate");
    parse_fails("", 0, "empty");
    parse_fails(NULL, 0, "empty");
}

static void test_b64_whitespace(void **state)
{
    const char *body = pem_body("okta.crt");   /* 64-column lines */
    const char *spaced = apr_pstrcat(pool, "\n\t  ", body, "  \r\n", NULL);
    btsso_cert_t *c = NULL;
    btsso_error_t *e = btsso_cert_parse_b64(pool, spaced, &c);

    assert_null(e);
    assert_string_equal(c->sha256, fp_hex(FP_OKTA));
}

static void test_b64_errors(void **state)
{
    const char *body = pem_body("okta.crt");
    char *bad = apr_pstrdup(pool, body);
    char *cut = apr_pstrmemdup(pool, body, 102);   /* 101 symbols + \n */

    bad[10] = '!';
    b64_fails(bad, "invalid character 0x21 at offset 10");
    b64_fails(cut, "truncated");
    b64_fails("  \n ", "empty");
    b64_fails(NULL, "empty");
    b64_fails("QQ==QQ==", "after '=' padding");
    /* valid base64 of something that is not a certificate */
    b64_fails("aGVsbG8gd29ybGQ=", "not DER");
    /* base64 of the first 600 bytes of the DER (800 symbols) */
    b64_fails(apr_pstrmemdup(pool, btsso_cert_b64(pool,
                                                  parse_file_ok("okta.crt")),
                             800),
              "truncated DER");
}

static void test_pem_and_b64_output(void **state)
{
    btsso_cert_t *c = parse_file_ok("okta.der");
    const char *pem = btsso_cert_pem(pool, c);
    const char *b64 = btsso_cert_b64(pool, c);
    const char *line;
    apr_size_t len;
    char *file = slurp(KEYS "okta.crt", &len);

    /* openssl writes the same 64-column PEM */
    assert_string_equal(pem, file);
    assert_null(strchr(b64, '\n'));
    for (line = pem; *line != '\0'; line = strchr(line, '\n') + 1) {
        assert_true(strchr(line, '\n') - line <= 64);
    }
    assert_string_equal(parse_ok(pem, strlen(pem))->sha256, fp_hex(FP_OKTA));
    {
        btsso_cert_t *again = NULL;
        assert_null(btsso_cert_parse_b64(pool, b64, &again));
        assert_string_equal(again->sha256, fp_hex(FP_OKTA));
    }
}

static void test_validity_window(void **state)
{
    btsso_cert_t *expired = parse_file_ok("expired.crt");
    btsso_cert_t *notyet = parse_file_ok("notyet.crt");
    apr_time_t nb = apr_time_from_sec(1577836800);     /* 2020-01-01Z */
    apr_time_t na = apr_time_from_sec(1609459200);     /* 2021-01-01Z */

    assert_string_equal(expired->sha256, fp_hex(FP_EXPIRED));
    assert_string_equal(notyet->sha256, fp_hex(FP_NOTYET));
    assert_string_equal(expired->subject,
                        "O=BTSSO Test,CN=expired.example.test");
    assert_int_equal(expired->not_before, nb);
    assert_int_equal(expired->not_after, na);
    assert_int_equal(notyet->not_before, apr_time_from_sec(2208988800));
    assert_int_equal(notyet->not_after, apr_time_from_sec(2366841600));

    assert_false(btsso_cert_is_valid_at(expired, nb - 1));
    assert_true(btsso_cert_is_valid_at(expired, nb));
    assert_true(btsso_cert_is_valid_at(expired, na));
    assert_false(btsso_cert_is_valid_at(expired, na + 1));
    assert_false(btsso_cert_is_valid_at(expired, apr_time_now()));
    assert_false(btsso_cert_is_valid_at(notyet, apr_time_now()));
    assert_true(btsso_cert_is_valid_at(notyet, apr_time_from_sec(2300000000)));
    assert_false(btsso_cert_is_valid_at(NULL, nb));
}

static void test_roles(void **state)
{
    btsso_cert_role_e r = BTSSO_ROLE_NONE;

    assert_string_equal(btsso_cert_role_name(BTSSO_ROLE_PRIMARY), "primary");
    assert_string_equal(btsso_cert_role_name(BTSSO_ROLE_SECONDARY),
                        "secondary");
    assert_string_equal(btsso_cert_role_name(BTSSO_ROLE_NONE), "none");
    assert_int_equal(btsso_cert_role_parse("primary", &r), 0);
    assert_int_equal(r, BTSSO_ROLE_PRIMARY);
    assert_int_equal(btsso_cert_role_parse("secondary", &r), 0);
    assert_int_equal(r, BTSSO_ROLE_SECONDARY);
    assert_int_equal(btsso_cert_role_parse("none", &r), 0);
    assert_int_equal(r, BTSSO_ROLE_NONE);
    r = BTSSO_ROLE_PRIMARY;
    assert_int_equal(btsso_cert_role_parse("Primary", &r), -1);
    assert_int_equal(btsso_cert_role_parse("primary ", &r), -1);
    assert_int_equal(btsso_cert_role_parse("", &r), -1);
    assert_int_equal(btsso_cert_role_parse(NULL, &r), -1);
    assert_int_equal(r, BTSSO_ROLE_PRIMARY);
}

static void test_is_fingerprint(void **state)
{
    const char *lower = fp_hex(FP_OKTA);
    char *upper = apr_pstrdup(pool, lower);
    char *p;

    for (p = upper; *p; p++) {
        if (*p >= 'a' && *p <= 'f') {
            *p = (char)(*p - 'a' + 'A');
        }
    }
    assert_true(btsso_cert_is_fingerprint(lower));
    assert_true(btsso_cert_is_fingerprint(upper));
    assert_false(btsso_cert_is_fingerprint(FP_OKTA));          /* colons */
    assert_false(btsso_cert_is_fingerprint(apr_pstrmemdup(pool, lower, 63)));
    assert_false(btsso_cert_is_fingerprint(apr_pstrcat(pool, lower, "0",
                                                       NULL)));
    upper[5] = 'g';
    assert_false(btsso_cert_is_fingerprint(upper));
    assert_false(btsso_cert_is_fingerprint(""));
    assert_false(btsso_cert_is_fingerprint(NULL));
}

/* ---- key strength (issue 8, item 11a) ----------------------------------- */

/* A self-signed certificate (DER, pool) for a freshly made key. */
static const unsigned char *self_signed(EVP_PKEY *k, apr_size_t *len)
{
    X509 *x = X509_new();
    X509_NAME *n;
    unsigned char *der = NULL, *copy;
    int l;

    assert_non_null(k);
    assert_non_null(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                               (const unsigned char *)"weak", -1, -1, 0);
    X509_set_issuer_name(x, n);
    assert_true(X509_sign(x, k, EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519
                                ? NULL : EVP_sha256()) > 0);
    l = i2d_X509(x, &der);
    assert_true(l > 0);
    copy = apr_pmemdup(pool, der, (apr_size_t)l);
    OPENSSL_free(der);
    X509_free(x);
    EVP_PKEY_free(k);
    *len = (apr_size_t)l;
    return copy;
}

static void expect_key_refused(EVP_PKEY *k, const char *code,
                               const char *detail_part)
{
    apr_size_t len;
    const unsigned char *der = self_signed(k, &len);
    btsso_cert_t *c = NULL;
    btsso_error_t *e = btsso_cert_parse(pool, der, len, &c);

    assert_non_null(e);
    assert_string_equal(e->code, code);
    assert_int_equal(e->status, 422);
    assert_null(c);
    assert_non_null(strstr(e->detail, detail_part));
    /* read back from the store (base64): still readable, never usable */
    assert_null(btsso_cert_parse_b64(pool, btsso_b64_encode(pool, der, len), &c));
    assert_non_null(c);
    assert_false(c->key_strong);
    assert_false(btsso_cert_is_valid_at(c, apr_time_now()));
    e = btsso_cert_check_key(pool, c);
    assert_non_null(e);
    assert_string_equal(e->code, code);
}

static void expect_key_accepted(EVP_PKEY *k, int bits)
{
    apr_size_t len;
    const unsigned char *der = self_signed(k, &len);
    btsso_cert_t *c = NULL;

    assert_null(btsso_cert_parse(pool, der, len, &c));
    assert_true(c->key_strong);
    assert_int_equal(c->key_bits, bits);
    assert_null(btsso_cert_check_key(pool, c));
    assert_true(btsso_cert_is_valid_at(c, apr_time_now()));
}

static void test_key_strength(void **state)
{
    expect_key_refused(EVP_RSA_gen(1024), "weak_key", "RSA 1024");
    expect_key_refused(EVP_RSA_gen(2047), "weak_key", "RSA 2047");
    expect_key_refused(EVP_EC_gen("secp224r1"), "weak_key", "P-224");
    expect_key_refused(EVP_EC_gen("prime192v1"), "weak_key", "P-192");
    expect_key_refused(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"),
                       "key_unsupported", "Ed25519");
    expect_key_accepted(EVP_RSA_gen(2048), 2048);
    expect_key_accepted(EVP_EC_gen("prime256v1"), 256);
    expect_key_accepted(EVP_EC_gen("secp384r1"), 384);
    /* the fixtures keep working */
    assert_true(parse_file_ok("okta.crt")->key_strong);
    assert_true(parse_file_ok("ec-p256.crt")->key_strong);
}

#if !defined(__SANITIZE_ADDRESS__)
/* What 200 ready keys of c really hold once each verified a signature
 * (glibc's count of bytes in use), per key. */
static size_t measured_key_bytes(const btsso_cert_t *c)
{
    enum { N = 200 };
    btsso_cert_key_t *k[N];
    unsigned char sig[1024] = { 1 };
    struct mallinfo2 before, after;
    int i;

    for (i = 0; i < 2; i++) {           /* OpenSSL's lazy set-up first */
        btsso_cert_key_t *w = btsso_cert_key_load(c);
        EVP_MD_CTX *m = EVP_MD_CTX_new();

        EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, (EVP_PKEY *)w);
        (void)EVP_DigestVerify(m, sig, (size_t)EVP_PKEY_get_size(
            (EVP_PKEY *)w), (const unsigned char *)"x", 1);
        EVP_MD_CTX_free(m);
        ERR_clear_error();
        btsso_cert_key_free(w);
    }
    before = mallinfo2();
    for (i = 0; i < N; i++) {
        EVP_MD_CTX *m = EVP_MD_CTX_new();

        k[i] = btsso_cert_key_load(c);
        assert_non_null(k[i]);
        EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, (EVP_PKEY *)k[i]);
        (void)EVP_DigestVerify(m, sig, (size_t)EVP_PKEY_get_size(
            (EVP_PKEY *)k[i]), (const unsigned char *)"x", 1);
        EVP_MD_CTX_free(m);
        ERR_clear_error();     /* the bogus signature's error entries */
    }
    after = mallinfo2();
    for (i = 0; i < N; i++) {
        btsso_cert_key_free(k[i]);
    }
    return (after.uordblks - before.uordblks) / N;
}
#endif

/* The account cache charges a key at btsso_cert_key_cost: never less than
 * what the key holds, and not wildly more. */
static void test_key_cost(void **state)
{
#if defined(__SANITIZE_ADDRESS__)
    skip();     /* ASan's allocator: mallinfo2 says nothing */
#else
    const char *files[] = { "okta.crt", "ec-p256.crt", "shib-signing-2.crt" };
    size_t i;

    for (i = 0; i < sizeof(files) / sizeof(*files); i++) {
        btsso_cert_t *c = parse_file_ok(files[i]);
        size_t real = measured_key_bytes(c);
        apr_size_t cost = btsso_cert_key_cost(c);

        print_message("%s (%s): %zu bytes held, charged %zu\n", files[i],
                      c->key_type, real, (size_t)cost);
        assert_true(real <= cost);
        assert_true(cost <= real + real / 2);
    }
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pem),
        cmocka_unit_test(test_der),
        cmocka_unit_test(test_pem_with_leading_text),
        cmocka_unit_test(test_pem_chain_takes_first),
        cmocka_unit_test(test_pem_crlf),
        cmocka_unit_test(test_ec_and_rsa3072_key_types),
        cmocka_unit_test(test_private_key_refused),
        cmocka_unit_test(test_pem_other_block_refused),
        cmocka_unit_test(test_pem_broken),
        cmocka_unit_test(test_der_truncated),
        cmocka_unit_test(test_der_trailing_data),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_b64_whitespace),
        cmocka_unit_test(test_b64_errors),
        cmocka_unit_test(test_pem_and_b64_output),
        cmocka_unit_test(test_validity_window),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_is_fingerprint),
        cmocka_unit_test(test_key_strength),
        cmocka_unit_test(test_key_cost),
    };

    apr_initialize();
    atexit(apr_terminate);
    return cmocka_run_group_tests(tests, setup, teardown);
}
