/*
 * test_response.c - the SAML Response validator against valid, interop
 * (pysaml2) and hostile fixtures from t/lib/samlgen.py, at a fixed clock.
 *
 * Fixtures: t/fixtures/responses/NAME.b64, regenerated with
 *   /usr/bin/python3 t/lib/samlgen.py --out t/fixtures/responses
 * All were built at FIXED_NOW (2026-01-15T12:00:00Z); tests validate at
 * FIXED_NOW + 10 s unless they move the clock on purpose.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "saml/response.h"
#include "saml/xmlsec_glue.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif

#define FIXED_NOW_SEC   1768478400    /* 2026-01-15T12:00:00Z */
#define IDP_ENTITY_ID   "https://idp.example.test/saml/metadata"
#define SP_ENTITY_ID    "https://portal.example.test/sso"
#define ACS_URL         "https://portal.example.test/sso/acs"
#define REQUEST_ID      "_req-4f1c2a9e0b7d"
#define SKEW            180

static apr_pool_t *root_pool;
static apr_pool_t *pool;
static const btsso_cert_t *cert_rsa, *cert_rsa_next, *cert_ec, *cert_attacker;
static btsso_sp_key_t *sp_key_current, *sp_key_next;

/* ---- helpers ------------------------------------------------------------ */

static char *slurp(apr_pool_t *p, const char *rel, apr_size_t *len)
{
    const char *path = apr_pstrcat(p, TOP_SRCDIR, "/", rel, NULL);
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;
    apr_size_t n;

    if (apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                      APR_FPROT_OS_DEFAULT, p) != APR_SUCCESS) {
        fail_msg("cannot open %s", path);
    }
    assert_int_equal(apr_file_info_get(&fi, APR_FINFO_SIZE, f), APR_SUCCESS);
    n = (apr_size_t)fi.size;
    buf = apr_palloc(p, n + 1);
    assert_int_equal(apr_file_read_full(f, buf, n, &n), APR_SUCCESS);
    buf[n] = '\0';
    apr_file_close(f);
    if (len != NULL) {
        *len = n;
    }
    return buf;
}

static const btsso_cert_t *load_der(const char *name)
{
    btsso_cert_t *c = apr_pcalloc(root_pool, sizeof(*c));
    apr_size_t len;

    c->der = (const unsigned char *)slurp(root_pool,
                                          apr_pstrcat(root_pool,
                                                      "t/fixtures/keys/",
                                                      name, NULL), &len);
    c->der_len = len;
    return c;
}

static btsso_sp_key_t *load_sp_key(const char *name)
{
    btsso_sp_key_t *k;
    apr_size_t len;
    const char *pem = slurp(root_pool, apr_pstrcat(root_pool,
                                                   "t/fixtures/sp/", name,
                                                   NULL), &len);

    assert_null(btsso_sp_key_load(root_pool, pem, len, &k));
    return k;
}

static apr_array_header_t *certs(int n, ...)
{
    apr_array_header_t *a = apr_array_make(pool, n, sizeof(btsso_cert_t *));
    va_list ap;
    int i;

    va_start(ap, n);
    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(a, const btsso_cert_t *) = va_arg(ap,
                                                         const btsso_cert_t *);
    }
    va_end(ap);
    return a;
}

static apr_array_header_t *keys(int n, ...)
{
    apr_array_header_t *a = apr_array_make(pool, n, sizeof(btsso_sp_key_t *));
    va_list ap;
    int i;

    va_start(ap, n);
    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(a, btsso_sp_key_t *) = va_arg(ap, btsso_sp_key_t *);
    }
    va_end(ap);
    return a;
}

static apr_time_t at(long offset_sec)
{
    return apr_time_from_sec((apr_time_t)FIXED_NOW_SEC + offset_sec);
}

/* The expectation the fixtures are built for. */
static btsso_response_expect_t expect(void)
{
    btsso_response_expect_t ex;

    memset(&ex, 0, sizeof(ex));
    ex.sp_entity_id = SP_ENTITY_ID;
    ex.acs_url = ACS_URL;
    ex.idp_entity_id = IDP_ENTITY_ID;
    ex.trusted_certs = certs(3, cert_rsa, cert_rsa_next, cert_ec);
    ex.sp_keys = keys(1, sp_key_current);
    ex.now = at(10);
    ex.clock_skew = SKEW;
    ex.allow_idp_initiated = 1;
    return ex;
}

static const char *fixture(const char *name, apr_size_t *len)
{
    return slurp(pool, apr_pstrcat(pool, "t/fixtures/responses/", name,
                                   ".b64", NULL), len);
}

/* Non-zero: run() goes the global ACS's way, one parse for the Issuer
 * peek and the validation. */
static int run_loaded;

static btsso_error_t *run(const char *name, const btsso_response_expect_t *ex,
                          btsso_assertion_t **out)
{
    apr_size_t len;
    const char *b64 = fixture(name, &len);
    btsso_response_doc_t *d;
    btsso_error_t *e;
    const char *issuer;

    if (!run_loaded) {
        return btsso_response_validate(pool, b64, len, ex, out);
    }
    *out = NULL;
    if ((e = btsso_response_load(pool, b64, len, 0, 0, &d)) != NULL) {
        return e;
    }
    (void)btsso_response_doc_issuer(pool, d, &issuer);
    return btsso_response_validate_doc(pool, d, ex, out);
}

/* 0 when `name` yields `code` (NULL: accepted); otherwise prints why. */
static int check_code(const char *name, const btsso_response_expect_t *ex,
                      const char *code)
{
    btsso_assertion_t *a = NULL;
    btsso_error_t *e = run(name, ex, &a);

    if (code == NULL) {
        if (e != NULL || a == NULL) {
            print_error("%s: expected success, got %s\n", name,
                        btsso_error_line(pool, e));
            return 1;
        }
        return 0;
    }
    if (e == NULL) {
        print_error("%s: expected %s, but it was ACCEPTED\n", name, code);
        return 1;
    }
    if (strcmp(e->code, code) != 0 || a != NULL || e->message == NULL
        || !(e->status == 400 || e->status == 403 || e->status == 413
             || e->status == 500)) {
        print_error("%s: expected %s, got %s (status %d)\n", name, code,
                    btsso_error_line(pool, e), e->status);
        return 1;
    }
    return 0;
}

static void expect_code(const char *name, const btsso_response_expect_t *ex,
                        const char *code)
{
    if (check_code(name, ex, code) != 0) {
        fail_msg("%s: unexpected outcome", name);
    }
}

/* ---- the fixture table ------------------------------------------------- */

typedef struct case_t {
    const char *name;
    int solicited;        /* validate expecting REQUEST_ID */
    const char *code;     /* NULL: must be accepted */
} case_t;

static const case_t cases[] = {
    /* valid */
    { "ok_assertion_signed", 0, NULL },
    { "ok_response_signed", 0, NULL },
    { "ok_both_signed", 1, NULL },
    { "ok_sp_initiated", 1, NULL },
    { "ok_rsa_sha384", 0, NULL },
    { "ok_rsa_sha512", 0, NULL },
    { "ok_ecdsa_sha256", 0, NULL },
    { "ok_next_cert", 0, NULL },
    { "ok_no_keyinfo", 0, NULL },
    { "ok_one_time_use", 0, NULL },
    { "ok_no_response_issuer", 0, NULL },
    { "ok_comment_split", 0, NULL },
    { "ok_enc_aes128_gcm", 0, NULL },
    { "ok_enc_aes256_gcm", 1, NULL },
    { "ok_enc_aes128_cbc", 0, NULL },
    { "ok_enc_aes256_cbc_response_signed", 0, NULL },
    /* interop: pysaml2's IdP */
    { "pysaml2_response_signed", 1, NULL },
    { "pysaml2_assertion_signed", 1, NULL },
    { "pysaml2_both_signed", 1, NULL },
    { "pysaml2_encrypted", 1, NULL },
    { "pysaml2_rsa_sha1", 1, "sig_algorithm" },
    { "pysaml2_encrypted_3des", 1, "enc_algorithm" },
    /* parsing and structure */
    { "bad_doctype", 0, "dtd_forbidden" },
    { "bad_xxe", 0, "dtd_forbidden" },
    { "bad_not_xml", 0, "not_xml" },
    { "bad_wrong_root", 0, "not_response" },
    { "bad_xml_id", 0, "xml_id_forbidden" },
    { "bad_two_assertions", 0, "multiple_assertions" },
    { "bad_assertion_in_advice", 0, "multiple_assertions" },
    { "bad_no_assertion", 0, "no_assertion" },
    { "bad_enc_two_assertions", 0, "decrypt_failed" },
    /* signature wrapping */
    { "xsw1", 0, "multiple_assertions" },
    { "xsw2", 0, "multiple_assertions" },
    { "xsw3", 0, "multiple_assertions" },
    { "xsw4", 0, "multiple_assertions" },
    { "xsw5", 0, "multiple_assertions" },
    { "xsw6", 0, "multiple_assertions" },
    { "xsw7", 0, "multiple_assertions" },
    { "xsw8", 0, "multiple_assertions" },
    { "xsw_dup_id_wrapper", 0, "duplicate_id" },
    { "xsw_ref_to_response", 0, "sig_reference" },
    /* signatures */
    { "sig_unsigned", 0, "not_signed" },
    { "sig_enc_unsigned", 0, "decrypt_failed" },
    { "sig_tampered_nameid", 0, "sig_invalid" },
    { "sig_tampered_response", 0, "sig_invalid" },
    { "sig_cert_faking", 0, "sig_invalid" },
    { "sig_response_untrusted_assertion_ok", 0, "sig_invalid" },
    { "sig_retrieval_method", 0, "sig_keyinfo_forbidden" },
    { "sig_rsa_sha1", 0, "sig_algorithm" },
    { "sig_digest_sha1", 0, "sig_algorithm" },
    { "sig_c14n_inclusive", 0, "sig_transform" },
    { "sig_c14n_with_comments", 0, "sig_transform" },
    { "sig_xpath_transform", 0, "sig_transform" },
    { "sig_two_references", 0, "sig_reference" },
    { "sig_ref_empty_uri", 0, "sig_reference" },
    { "sig_two_signatures", 0, "sig_multiple" },
    { "sig_in_extensions", 0, "sig_misplaced" },
    { "sig_object", 0, "sig_structure" },
    /* protocol */
    { "st_responder", 0, "status_not_success" },
    { "iss_wrong_assertion_issuer", 0, "issuer_mismatch" },
    { "iss_wrong_response_issuer", 0, "issuer_mismatch" },
    { "dst_wrong_destination", 0, "destination_mismatch" },
    { "dst_signed_without_destination", 0, "destination_missing" },
    { "sc_wrong_recipient", 0, "recipient_mismatch" },
    { "sc_no_bearer", 0, "no_bearer" },
    { "sc_no_not_on_or_after", 0, "confirmation_no_expiry" },
    { "sc_expired", 0, "confirmation_expired" },
    { "sc_not_yet", 0, "confirmation_not_yet_valid" },
    { "cond_wrong_audience", 0, "audience_mismatch" },
    { "cond_no_audience", 0, "audience_missing" },
    { "cond_missing", 0, "conditions_missing" },
    { "cond_unknown", 0, "condition_unknown" },
    { "irt_wrong", 1, "in_response_to_mismatch" },
    { "time_issued_in_future", 0, "issued_in_future" },
    { "subj_no_name_id", 0, "no_name_id" },
    { "subj_name_id_child", 0, "bad_name_id" },
    { "authn_missing", 0, "no_authn_statement" },
    { "enc_wrong_key", 0, "decrypt_failed" },
    { "enc_rsa_1_5", 0, "enc_algorithm" },
    { "cond_not_yet_valid", 0, "not_yet_valid" },
    { "cond_expired", 0, "expired" },
    { "bad_assertion_in_extensions", 0, "assertion_misplaced" },
    { "bad_id_xpointer", 0, "malformed" },
    { "enc_cipher_reference", 0, "decrypt_failed" },
    { "sig_hmac", 0, "sig_algorithm" },
    { "iss_assertion_without_issuer", 0, "no_issuer" },
    { "subj_empty_name_id", 0, "bad_name_id" },
    { "authn_session_expired", 0, "session_expired" },
    { "ok_enc_sibling_key", 0, NULL },
    { "enc_tampered_ciphertext", 0, "decrypt_failed" },
    { "enc_doctype_inside", 0, "decrypt_failed" },
    { NULL, 0, NULL }
};

static void test_all_fixtures(void **state)
{
    int i, failures = 0;

    for (i = 0; cases[i].name != NULL; i++) {
        btsso_response_expect_t ex = expect();

        if (cases[i].solicited) {
            ex.in_response_to = REQUEST_ID;
        }
        failures += check_code(cases[i].name, &ex, cases[i].code);
    }
    assert_int_equal(failures, 0);
}

/* Every fixture samlgen.py wrote is in the table above: a new hostile
 * layout cannot be added without saying what it must yield. */
static void test_every_fixture_is_checked(void **state)
{
    char *index = slurp(pool, "t/fixtures/responses/INDEX", NULL);
    char *line, *last;
    int i, found, count = 0;

    for (line = apr_strtok(index, "\n", &last); line != NULL;
         line = apr_strtok(NULL, "\n", &last)) {
        if (*line == '#' || *line == '\0') {
            continue;
        }
        count++;
        found = 0;
        for (i = 0; cases[i].name != NULL; i++) {
            if (strcmp(cases[i].name, line) == 0) {
                found = 1;
            }
        }
        if (!found) {
            fail_msg("fixture %s has no expected outcome in test_response.c",
                     line);
        }
    }
    assert_int_equal(count, (int)(sizeof(cases) / sizeof(cases[0])) - 1);
}

static void test_loaded_once_same_answers(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_response_doc_t *d;
    btsso_assertion_t *a;
    const char *b64, *issuer;
    apr_size_t len;
    int i, failures = 0;

    run_loaded = 1;
    for (i = 0; cases[i].name != NULL; i++) {
        btsso_response_expect_t e2 = expect();

        if (cases[i].solicited) {
            e2.in_response_to = REQUEST_ID;
        }
        failures += check_code(cases[i].name, &e2, cases[i].code);
    }
    run_loaded = 0;
    assert_int_equal(failures, 0);

    /* the peek on the loaded document is the peek on the input */
    b64 = fixture("ok_assertion_signed", &len);
    assert_null(btsso_response_load(pool, b64, len, 0, 0, &d));
    assert_null(btsso_response_doc_issuer(pool, d, &issuer));
    assert_string_equal(issuer, IDP_ENTITY_ID);
    /* a document validates once: a second pass would see its IDs twice */
    assert_null(btsso_response_validate_doc(pool, d, &ex, &a));
    assert_non_null(a);
    assert_non_null(btsso_response_validate_doc(pool, d, &ex, &a));
    assert_null(a);
    /* the load applies the bounds */
    assert_string_equal(btsso_response_load(pool, b64, len, 16, 0,
                                            &d)->code, "too_large");
    assert_null(d);
}

/* The account cache hands the validator certificates with their public
 * key loaded once (ready_key): every fixture must get the same answer. */
static apr_status_t free_ready_key(void *data)
{
    btsso_cert_key_free(data);
    return APR_SUCCESS;
}

static const btsso_cert_t *ready(const btsso_cert_t *c)
{
    btsso_cert_t *d = apr_pmemdup(pool, c, sizeof(*c));

    d->ready_key = btsso_cert_key_load(c);
    assert_non_null(d->ready_key);
    apr_pool_cleanup_register(pool, d->ready_key, free_ready_key,
                              apr_pool_cleanup_null);
    return d;
}

static void test_ready_keys_same_answers(void **state)
{
    int i, failures = 0;

    for (i = 0; cases[i].name != NULL; i++) {
        btsso_response_expect_t ex = expect();

        ex.trusted_certs = certs(3, ready(cert_rsa), ready(cert_rsa_next),
                                 ready(cert_ec));
        if (cases[i].solicited) {
            ex.in_response_to = REQUEST_ID;
        }
        failures += check_code(cases[i].name, &ex, cases[i].code);
    }
    assert_int_equal(failures, 0);
    {
        btsso_response_expect_t ex = expect();

        ex.trusted_certs = certs(1, ready(cert_attacker));
        expect_code("sig_cert_faking", &ex, NULL);
        expect_code("ok_assertion_signed", &ex, "sig_invalid");
        ex.trusted_certs = certs(1, ready(cert_rsa));
        expect_code("ok_next_cert", &ex, "sig_invalid");
        ex.trusted_certs = certs(1, ready(cert_ec));
        expect_code("ok_assertion_signed", &ex, "sig_invalid");
        expect_code("ok_ecdsa_sha256", &ex, NULL);
    }
}

/* ---- what a valid response yields --------------------------------------- */

static void test_fields_of_valid_response(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    const btsso_attribute_t *mail, *member;

    ex.in_response_to = REQUEST_ID;
    assert_null(run("ok_both_signed", &ex, &a));
    assert_string_equal(a->issuer, IDP_ENTITY_ID);
    assert_string_equal(a->name_id, "alice@example.com");
    assert_string_equal(a->name_id_format,
                        "urn:oasis:names:tc:SAML:1.1:nameid-format:"
                        "emailAddress");
    assert_string_equal(a->assertion_id, "_assert-20260115120000");
    assert_string_equal(a->response_id, "_resp-20260115120000");
    assert_string_equal(a->in_response_to, REQUEST_ID);
    assert_string_equal(a->session_index, "_session-assert-20260115120000");
    assert_true(a->response_signed);
    assert_true(a->assertion_signed);
    assert_false(a->was_encrypted);
    assert_true(a->issue_instant == at(0));
    assert_true(a->authn_instant == at(-10));
    assert_true(a->session_not_on_or_after == at(8 * 3600));
    /* the replay-cache expiry: the latest NotOnOrAfter (both +300 s) */
    assert_true(a->assertion_not_on_or_after == at(300));
    assert_int_equal(a->attributes->nelts, 3);
    mail = btsso_assertion_attribute(a, "mail");
    assert_non_null(mail);
    assert_int_equal(mail->values->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(mail->values, 0, const char *),
                        "alice@example.com");
    member = btsso_assertion_attribute(a, "memberOf");
    assert_non_null(member);
    assert_int_equal(member->values->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(member->values, 0, const char *),
                        "staff");
    assert_string_equal(APR_ARRAY_IDX(member->values, 1, const char *),
                        "admins");
    assert_null(btsso_assertion_attribute(a, "nope"));
}

static void test_signed_parts_reported(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;

    assert_null(run("ok_response_signed", &ex, &a));
    assert_true(a->response_signed);
    assert_false(a->assertion_signed);
    assert_null(run("ok_assertion_signed", &ex, &a));
    assert_false(a->response_signed);
    assert_true(a->assertion_signed);
    assert_null(a->in_response_to);
}

/* CVE-2017-11427 family: a comment inside NameID or an AttributeValue
 * must not truncate the value. */
static void test_comment_split_reads_full_text(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    const btsso_attribute_t *mail;

    assert_null(run("ok_comment_split", &ex, &a));
    assert_string_equal(a->name_id, "user@evil.com.good.com");
    mail = btsso_assertion_attribute(a, "mail");
    assert_non_null(mail);
    assert_string_equal(APR_ARRAY_IDX(mail->values, 0, const char *),
                        "user@evil.com.good.com");
}

static void test_encrypted_fields(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;

    assert_null(run("ok_enc_aes128_gcm", &ex, &a));
    assert_true(a->was_encrypted);
    assert_true(a->assertion_signed);
    assert_string_equal(a->name_id, "alice@example.com");
    assert_null(run("ok_enc_aes256_cbc_response_signed", &ex, &a));
    assert_true(a->was_encrypted);
    assert_true(a->response_signed);
    assert_false(a->assertion_signed);
    ex.in_response_to = REQUEST_ID;
    assert_null(run("pysaml2_encrypted", &ex, &a));
    assert_string_equal(a->name_id, "alice@example.com");
    assert_non_null(btsso_assertion_attribute(a, "mail"));
}

static void test_pysaml2_fields(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    const btsso_attribute_t *member;

    ex.in_response_to = REQUEST_ID;
    assert_null(run("pysaml2_both_signed", &ex, &a));
    assert_string_equal(a->name_id, "alice@example.com");
    assert_string_equal(a->in_response_to, REQUEST_ID);
    member = btsso_assertion_attribute(a, "memberOf");
    assert_non_null(member);
    assert_int_equal(member->values->nelts, 2);
    assert_true(a->assertion_not_on_or_after > ex.now);
}

/* ---- configuration-dependent outcomes -------------------------------- */

static void test_sha1_only_when_enabled(void **state)
{
    btsso_response_expect_t ex = expect();
    unsigned int sig = 0, dig = 0;

    expect_code("sig_rsa_sha1", &ex, "sig_algorithm");
    assert_int_equal(btsso_response_alg_parse("rsa-sha1", &sig, &dig), 0);
    assert_int_equal(btsso_response_alg_parse("RSA-SHA256", &sig, &dig), 0);
    assert_int_equal(btsso_response_alg_parse("md5", &sig, &dig), -1);
    assert_int_equal(sig, BTSSO_SIG_RSA_SHA1 | BTSSO_SIG_RSA_SHA256);
    assert_int_equal(dig, BTSSO_DIGEST_SHA1 | BTSSO_DIGEST_SHA256);
    ex.sig_algs = sig;
    ex.digest_algs = dig;
    expect_code("sig_rsa_sha1", &ex, NULL);
    /* and the narrowed list now refuses what the default allowed */
    expect_code("ok_rsa_sha384", &ex, "sig_algorithm");
    ex.in_response_to = REQUEST_ID;
    expect_code("pysaml2_rsa_sha1", &ex, NULL);
}

static void test_certificate_choice(void **state)
{
    btsso_response_expect_t ex = expect();

    /* only the account's certificates count: the attacker's, embedded in
     * KeyInfo, is trusted only when the caller says so */
    ex.trusted_certs = certs(1, cert_attacker);
    expect_code("sig_cert_faking", &ex, NULL);
    expect_code("ok_assertion_signed", &ex, "sig_invalid");
    /* rollover: signed with the next key, only the old one trusted */
    ex.trusted_certs = certs(1, cert_rsa);
    expect_code("ok_next_cert", &ex, "sig_invalid");
    ex.trusted_certs = certs(2, cert_rsa, cert_rsa_next);
    expect_code("ok_next_cert", &ex, NULL);
    /* no usable certificate at all */
    ex.trusted_certs = certs(0);
    expect_code("ok_assertion_signed", &ex, "no_usable_certificate");
    ex.trusted_certs = NULL;
    expect_code("ok_assertion_signed", &ex, "no_usable_certificate");
    /* KeyInfo names the RSA cert; an EC-only trust list cannot verify it */
    ex.trusted_certs = certs(1, cert_ec);
    expect_code("ok_assertion_signed", &ex, "sig_invalid");
    expect_code("ok_ecdsa_sha256", &ex, NULL);
}

static void test_decryption_keys(void **state)
{
    btsso_response_expect_t ex = expect();

    ex.sp_keys = NULL;
    expect_code("ok_enc_aes128_gcm", &ex, "decrypt_no_key");
    ex.sp_keys = keys(1, sp_key_next);
    expect_code("ok_enc_aes128_gcm", &ex, "decrypt_failed");
    /* SP key rollover: every configured key is tried */
    ex.sp_keys = keys(2, sp_key_next, sp_key_current);
    expect_code("ok_enc_aes128_gcm", &ex, NULL);
    expect_code("enc_wrong_key", &ex, NULL);
}

/* Every failure from the key transport to the authentication of the
 * decrypted Assertion is one answer (no decryption oracle): status, code,
 * message and detail all equal, whatever went wrong. */
static void test_decrypt_uniform_answer(void **state)
{
    static const char *const names[] = {
        "enc_tampered_ciphertext",   /* wrong padding / garbage */
        "enc_doctype_inside",        /* decrypts to a DOCTYPE */
        "bad_enc_two_assertions",    /* decrypts to a nested assertion */
        "sig_enc_unsigned",          /* decrypts to an unsigned one */
        NULL
    };
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a = NULL;
    btsso_error_t *first, *e;
    int i;

    (void)state;
    first = run(names[0], &ex, &a);
    assert_non_null(first);
    assert_string_equal(first->code, "decrypt_failed");
    assert_int_equal(first->status, 403);
    for (i = 1; names[i] != NULL; i++) {
        e = run(names[i], &ex, &a);
        assert_non_null(e);
        assert_null(a);
        assert_string_equal(e->code, first->code);
        assert_int_equal(e->status, first->status);
        assert_string_equal(e->message, first->message);
        assert_string_equal(e->detail, first->detail);
    }
    /* encrypted for another SP key (OAEP fails): the same answer */
    for (i = 0; i < 2; i++) {
        ex.sp_keys = keys(1, sp_key_next);
        e = run(i == 0 ? "ok_enc_aes128_cbc" : "ok_enc_aes128_gcm", &ex, &a);
        assert_non_null(e);
        assert_string_equal(e->code, first->code);
        assert_int_equal(e->status, first->status);
        assert_string_equal(e->message, first->message);
        assert_string_equal(e->detail, first->detail);
    }
}

/* The fixture's XML with its EncryptedKey element repeated `copies`
 * more times right after itself. */
static const char *with_key_copies(const char *name, int copies,
                                   apr_size_t *len)
{
    const char *xml = slurp(pool, apr_pstrcat(pool, "t/fixtures/responses/",
                                              name, ".xml", NULL), NULL);
    const char *s = strstr(xml, "<xenc:EncryptedKey");
    const char *e = strstr(xml, "</xenc:EncryptedKey>");
    apr_size_t ek_len;
    char *out, *o;
    int i;

    assert_non_null(s);
    assert_non_null(e);
    e += strlen("</xenc:EncryptedKey>");
    ek_len = (apr_size_t)(e - s);
    *len = strlen(xml) + ek_len * (apr_size_t)copies;
    out = o = apr_palloc(pool, *len + 1);
    memcpy(o, xml, (apr_size_t)(e - xml));
    o += e - xml;
    for (i = 0; i < copies; i++) {
        memcpy(o, s, ek_len);
        o += ek_len;
    }
    strcpy(o, e);
    return out;
}

static btsso_error_t *run_copies(int copies,
                                 const btsso_response_expect_t *ex)
{
    btsso_assertion_t *a = NULL;
    apr_size_t len;
    const char *xml = with_key_copies("ok_enc_aes128_gcm", copies, &len);

    return btsso_response_validate(pool, xml, len, ex, &a);
}

/* More EncryptedKey elements than SP keys: refused (before any RSA
 * operation), whatever the keys hold. */
static void test_encrypted_key_count(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_error_t *e;

    (void)state;
    assert_null(run_copies(0, &ex));               /* the fixture as is */
    e = run_copies(1, &ex);                        /* 2 keys, 1 SP key */
    assert_non_null(e);
    assert_string_equal(e->code, "too_many_encrypted_keys");
    assert_int_equal(e->status, 403);
    e = run_copies(419, &ex);                      /* 420 keys */
    assert_non_null(e);
    assert_string_equal(e->code, "too_many_encrypted_keys");
    ex.sp_keys = keys(2, sp_key_next, sp_key_current);
    assert_null(run_copies(1, &ex));               /* 2 keys, 2 SP keys */
    e = run_copies(2, &ex);                        /* 3 keys, 2 SP keys */
    assert_non_null(e);
    assert_string_equal(e->code, "too_many_encrypted_keys");
}

static void test_in_response_to(void **state)
{
    btsso_response_expect_t ex = expect();

    /* solicited response, but we expected no request */
    expect_code("ok_sp_initiated", &ex, "in_response_to_unexpected");
    /* we sent a request; an unsolicited response does not answer it */
    ex.in_response_to = REQUEST_ID;
    expect_code("ok_assertion_signed", &ex, "in_response_to_mismatch");
    expect_code("ok_sp_initiated", &ex, NULL);
    ex.in_response_to = "_another-request";
    expect_code("ok_sp_initiated", &ex, "in_response_to_mismatch");
    /* IdP-initiated disallowed */
    ex.in_response_to = NULL;
    ex.allow_idp_initiated = 0;
    expect_code("ok_assertion_signed", &ex, "unsolicited");
    ex.in_response_to = REQUEST_ID;
    expect_code("ok_sp_initiated", &ex, NULL);
}

static void test_expectation_mismatches(void **state)
{
    btsso_response_expect_t ex = expect();

    ex.sp_entity_id = "https://portal.example.test/sso/acct42";
    expect_code("ok_assertion_signed", &ex, "audience_mismatch");
    ex = expect();
    ex.acs_url = "https://portal.example.test/sso/acs/acct42";
    expect_code("ok_assertion_signed", &ex, "destination_mismatch");
    expect_code("ok_no_response_issuer", &ex, "destination_mismatch");
    ex = expect();
    ex.idp_entity_id = "https://other-idp.example.test/";
    expect_code("ok_assertion_signed", &ex, "issuer_mismatch");
    ex = expect();
    ex.idp_entity_id = NULL;
    expect_code("ok_assertion_signed", &ex, "bad_expectation");
}

/* ---- the clock ---------------------------------------------------------- */

static void test_time_window(void **state)
{
    btsso_response_expect_t ex = expect();

    /* NotBefore = -60 s, NotOnOrAfter = +300 s, IssueInstant = 0 */
    ex.now = at(-60 - SKEW - 1);
    expect_code("ok_assertion_signed", &ex, "issued_in_future");
    ex.now = at(-SKEW + 1);                   /* inside the skew */
    expect_code("ok_assertion_signed", &ex, NULL);
    ex.now = at(-SKEW - 1);
    expect_code("ok_assertion_signed", &ex, "issued_in_future");
    ex.now = at(300 + SKEW - 1);              /* late, inside the skew */
    expect_code("ok_assertion_signed", &ex, NULL);
    ex.now = at(300 + SKEW);                  /* NotOnOrAfter + skew */
    expect_code("ok_assertion_signed", &ex, "confirmation_expired");
    ex.now = at(3600);
    expect_code("ok_assertion_signed", &ex, "confirmation_expired");
    /* with no skew, the exact edges */
    ex.clock_skew = 0;
    ex.now = at(299);
    expect_code("ok_assertion_signed", &ex, NULL);
    ex.now = at(300);
    expect_code("ok_assertion_signed", &ex, "confirmation_expired");
    ex.now = at(0);
    expect_code("ok_assertion_signed", &ex, NULL);
    ex.now = at(-1);
    expect_code("ok_assertion_signed", &ex, "issued_in_future");
    /* the future-dated fixture is fine once its time has come */
    ex.clock_skew = SKEW;
    ex.now = at(3600);
    expect_code("time_issued_in_future", &ex, "confirmation_expired");
    /* the SubjectConfirmation with NotBefore +600 s becomes valid */
    ex.now = at(600 - SKEW + 10);
    expect_code("sc_not_yet", &ex, NULL);
}

static void test_conditions_window(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    btsso_error_t *e;
    apr_size_t len;
    char *xml, *nb;

    /* sc_expired: SubjectConfirmationData NotOnOrAfter -600 s while the
     * Conditions still run to +300 s: the bearer check alone refuses. */
    expect_code("sc_expired", &ex, "confirmation_expired");
    /* Moving a signed Conditions NotBefore breaks the signature: the time
     * checks never see unsigned times. */
    xml = slurp(pool, "t/fixtures/responses/ok_assertion_signed.xml", &len);
    nb = strstr(xml, "NotBefore=\"2026-01-15T11:59:00Z\"");
    assert_non_null(nb);
    memcpy(nb, "NotBefore=\"2026-01-15T12:59:00Z\"", 32);
    e = btsso_response_validate(pool, xml, len, &ex, &a);
    assert_non_null(e);
    assert_string_equal(e->code, "sig_invalid");
    /* Conditions NotBefore +600 s (IssueInstant 0): refused until
     * NotBefore - skew, accepted from then on */
    ex.now = at(600 - SKEW - 1);
    expect_code("cond_not_yet_valid", &ex, "not_yet_valid");
    ex.now = at(600 - SKEW);
    expect_code("cond_not_yet_valid", &ex, NULL);
    /* Conditions NotOnOrAfter -600 s: expired beyond the skew ... */
    ex.now = at(10);
    expect_code("cond_expired", &ex, "expired");
    /* ... but accepted while inside it */
    ex.now = at(-600 + 10);
    ex.clock_skew = 600;
    expect_code("cond_expired", &ex, NULL);
    ex.clock_skew = 0;
    ex.now = at(-600);
    expect_code("cond_expired", &ex, "issued_in_future");
}

/* ---- input handling ----------------------------------------------------- */

static void test_input_bounds(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    btsso_error_t *e;
    apr_size_t len;
    const char *b64 = fixture("ok_assertion_signed", &len);
    const char *xml;
    char *big;

    e = btsso_response_validate(pool, "", 0, &ex, &a);
    assert_string_equal(e->code, "empty");
    assert_int_equal(e->status, 400);
    e = btsso_response_validate(pool, NULL, 0, &ex, &a);
    assert_string_equal(e->code, "empty");
    e = btsso_response_validate(pool, "   \n", 4, &ex, &a);
    assert_string_equal(e->code, "empty");
    e = btsso_response_validate(pool, "PD94bWwg*mVyc2lvbj0i", 20, &ex, &a);
    assert_string_equal(e->code, "bad_base64");
    e = btsso_response_validate(pool, "PD94b", 5, &ex, &a);
    assert_string_equal(e->code, "bad_base64");
    e = btsso_response_validate(pool, "PD9=4bWw", 8, &ex, &a);
    assert_string_equal(e->code, "bad_base64");
    /* bounded before decoding */
    ex.max_size = len - 10;
    e = btsso_response_validate(pool, b64, len, &ex, &a);
    assert_string_equal(e->code, "too_large");
    assert_int_equal(e->status, 413);
    /* and after */
    ex.max_size = 0;
    ex.max_xml_size = len / 2;
    e = btsso_response_validate(pool, b64, len, &ex, &a);
    assert_string_equal(e->code, "too_large");
    /* the default bound */
    ex.max_xml_size = 0;
    big = apr_palloc(pool, BTSSO_RESPONSE_DEFAULT_MAX_B64 + 1);
    memset(big, 'A', BTSSO_RESPONSE_DEFAULT_MAX_B64 + 1);
    e = btsso_response_validate(pool, big, BTSSO_RESPONSE_DEFAULT_MAX_B64 + 1,
                                &ex, &a);
    assert_string_equal(e->code, "too_large");
    /* raw XML is accepted as well (same checks) */
    xml = slurp(pool, "t/fixtures/responses/ok_assertion_signed.xml", &len);
    assert_null(btsso_response_validate(pool, xml, len, &ex, &a));
}

static void test_entity_attacks_in_raw_xml(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    btsso_error_t *e;
    const char *laughs =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE lolz [<!ENTITY lol \"lol\">"
        "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\""
        " ID=\"x\" Version=\"2.0\">&lol3;</samlp:Response>";
    const char *external =
        "<!DOCTYPE r SYSTEM \"http://127.0.0.1:9/evil.dtd\">"
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\""
        "/>";
    const char *param_entity =
        "<!DOCTYPE r [<!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;]>"
        "<r/>";

    e = btsso_response_validate(pool, laughs, strlen(laughs), &ex, &a);
    assert_string_equal(e->code, "dtd_forbidden");
    e = btsso_response_validate(pool, external, strlen(external), &ex, &a);
    assert_string_equal(e->code, "dtd_forbidden");
    e = btsso_response_validate(pool, param_entity, strlen(param_entity), &ex,
                                &a);
    assert_string_equal(e->code, "dtd_forbidden");
    e = btsso_response_validate(pool, "<a><b></a>", 10, &ex, &a);
    assert_string_equal(e->code, "not_xml");
    assert_non_null(strstr(e->detail, "line 1"));
}

static void test_malformed_headers(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    btsso_error_t *e;
    const char *no_version =
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\""
        " ID=\"r1\" IssueInstant=\"2026-01-15T12:00:00Z\"/>";
    const char *bad_time =
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\""
        " ID=\"r1\" Version=\"2.0\" IssueInstant=\"yesterday\"/>";
    const char *status =
        "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\""
        " ID=\"r1\" Version=\"2.0\" IssueInstant=\"2026-01-15T12:00:00.123Z\">"
        "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:"
        "status:Requester\"><samlp:StatusCode Value=\"urn:oasis:names:tc:"
        "SAML:2.0:status:NoPassive\"/></samlp:StatusCode></samlp:Status>"
        "</samlp:Response>";

    e = btsso_response_validate(pool, no_version, strlen(no_version), &ex, &a);
    assert_string_equal(e->code, "malformed");
    e = btsso_response_validate(pool, bad_time, strlen(bad_time), &ex, &a);
    assert_string_equal(e->code, "malformed");
    assert_non_null(strstr(e->detail, "IssueInstant"));
    e = btsso_response_validate(pool, status, strlen(status), &ex, &a);
    assert_string_equal(e->code, "status_not_success");
    assert_int_equal(e->status, 403);
    assert_non_null(strstr(e->detail, "status:Requester"));
    assert_non_null(strstr(e->detail, "status:NoPassive"));
}

static void test_status_detail(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    btsso_error_t *e = run("st_responder", &ex, &a);

    assert_non_null(e);
    assert_non_null(strstr(e->detail, "status:Responder"));
    assert_non_null(strstr(e->detail, "status:AuthnFailed"));
    assert_non_null(strstr(e->detail, "wrong password"));
}

/* Operator detail names the element/ID/time, never key material. */
static void test_error_detail_content(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    btsso_error_t *e;

    e = run("sig_tampered_nameid", &ex, &a);
    assert_non_null(strstr(e->detail, "_assert-20260115120000"));
    assert_null(strstr(e->detail, "MII"));
    assert_null(strstr(e->detail, "BEGIN"));
    ex.now = at(3600);
    e = run("ok_assertion_signed", &ex, &a);
    assert_non_null(strstr(e->detail, "2026-01-15T12:05:00Z"));
    assert_non_null(strstr(e->message, "clock"));
    e = run("xsw_ref_to_response", &ex, &a);
    assert_non_null(strstr(e->detail, "#_resp-20260115120000"));
}

/* ---- control characters and Issuer Format (issue 8, items 1 and 11c) ---
 * Signed fixtures from t/fixtures/responses-injection/generate.py. */

static btsso_error_t *run_injection(const char *name, btsso_assertion_t **a)
{
    btsso_response_expect_t ex = expect();
    apr_size_t len;
    const char *b64 = slurp(pool, apr_pstrcat(pool,
                                              "t/fixtures/responses-injection/",
                                              name, ".b64", NULL), &len);

    return btsso_response_validate(pool, b64, len, &ex, a);
}

static void test_control_characters_refused(void **state)
{
    static const struct {
        const char *name;
        const char *code;
    } refused[] = {
        { "ctl_nameid_crlf", "bad_name_id" },
        { "ctl_nameid_lf", "bad_name_id" },
        { "ctl_nameid_tab", "bad_name_id" },
        { "ctl_nameid_del", "bad_name_id" },
        { "ctl_nameid_c1", "bad_name_id" },
        { "ctl_nameid_u2028", "bad_name_id" },
        { "ctl_nameid_format_lf", "bad_name_id" },
        { "ctl_attr_value_crlf", "bad_attribute" },
        { "ctl_attr_second_value_lf", "bad_attribute" },
        { "ctl_attr_name_lf", "bad_attribute" },
        { "ctl_assertion_issuer_crlf", "bad_issuer" },
        { "ctl_assertion_issuer_format", "issuer_format" },
        { "ctl_response_issuer_format", "issuer_format" },
    };
    btsso_assertion_t *a = NULL;
    btsso_error_t *e;
    size_t i;

    e = run_injection("ctl_ok_entity_format", &a);
    if (e != NULL) {
        fail_msg("ctl_ok_entity_format: %s", btsso_error_line(pool, e));
    }
    assert_string_equal(a->name_id, "alice@example.com");
    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        a = NULL;
        e = run_injection(refused[i].name, &a);
        if (e == NULL || strcmp(e->code, refused[i].code) != 0) {
            fail_msg("%s: expected %s, got %s", refused[i].name,
                     refused[i].code,
                     e != NULL ? btsso_error_line(pool, e) : "ACCEPTED");
        }
        assert_int_equal(e->status, 403);
        assert_null(a);
        /* the operator detail never carries the raw control character */
        assert_null(strpbrk(e->detail, "\r\n"));
    }
}

/* peek_issuer (the global ACS finds the account by it) refuses a control
 * character too, rather than looking an account up with it. */
static void test_peek_issuer_control_characters(void **state)
{
    const char *xml = "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:"
                      "SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:"
                      "SAML:2.0:assertion\"><saml:Issuer>https://idp&#10;"
                      "X-BTSSO-Account: v</saml:Issuer></samlp:Response>";
    const char *issuer = "unset";
    btsso_error_t *e;

    e = btsso_response_peek_issuer(pool, xml, strlen(xml), 0, &issuer);
    assert_non_null(e);
    assert_string_equal(e->code, "bad_issuer");
    assert_null(issuer);
}

static void test_peek_issuer(void **state)
{
    const char *no_issuer = "<samlp:Response xmlns:samlp=\"urn:oasis:names:"
                            "tc:SAML:2.0:protocol\"/>";
    const char *issuer;
    apr_size_t len;
    const char *b64 = fixture("ok_assertion_signed", &len);
    btsso_error_t *e;

    assert_null(btsso_response_peek_issuer(pool, b64, len, 0, &issuer));
    assert_string_equal(issuer, IDP_ENTITY_ID);
    b64 = fixture("ok_no_response_issuer", &len);
    assert_null(btsso_response_peek_issuer(pool, b64, len, 0, &issuer));
    assert_string_equal(issuer, IDP_ENTITY_ID);
    b64 = fixture("iss_wrong_response_issuer", &len);
    assert_null(btsso_response_peek_issuer(pool, b64, len, 0, &issuer));
    assert_string_equal(issuer, "https://evil.example/idp");
    b64 = fixture("bad_doctype", &len);
    e = btsso_response_peek_issuer(pool, b64, len, 0, &issuer);
    assert_string_equal(e->code, "dtd_forbidden");
    assert_null(issuer);
    b64 = fixture("ok_assertion_signed", &len);
    e = btsso_response_peek_issuer(pool, b64, len, 100, &issuer);
    assert_string_equal(e->code, "too_large");
    e = btsso_response_peek_issuer(pool, "<x/>", 4, 0, &issuer);
    assert_string_equal(e->code, "not_response");
    e = btsso_response_peek_issuer(
        pool, no_issuer, strlen(no_issuer), 0, &issuer);
    assert_string_equal(e->code, "no_issuer");
}

/* Every truncation of a valid response is refused (and none crashes). */
static void test_truncations_refused(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    btsso_error_t *e;
    apr_size_t len, cut;
    const char *xml = slurp(pool, "t/fixtures/responses/ok_both_signed.xml",
                            &len);

    ex.in_response_to = REQUEST_ID;
    assert_null(btsso_response_validate(pool, xml, len, &ex, &a));
    for (cut = 1; cut < len - 1; cut += 41) {
        e = btsso_response_validate(pool, xml, cut, &ex, &a);
        if (e == NULL) {
            fail_msg("a response cut at byte %" APR_SIZE_T_FMT " of %"
                     APR_SIZE_T_FMT " was accepted", cut, len);
        }
        assert_null(a);
    }
}

/* Flip one byte at a time through a signed response: whatever still
 * passes (a byte in the unsigned KeyInfo, say) must yield exactly the
 * facts of the original; nothing signed can change unnoticed. */
static void test_byte_flips_cannot_change_facts(void **state)
{
    btsso_response_expect_t ex = expect();
    btsso_assertion_t *a;
    btsso_error_t *e;
    apr_size_t len, pos;
    const char *orig = slurp(pool, "t/fixtures/responses/ok_both_signed.xml",
                             &len);
    char *xml = apr_pmemdup(pool, orig, len + 1);
    int accepted = 0, refused = 0;

    ex.in_response_to = REQUEST_ID;
    for (pos = 0; pos < len; pos += 7) {
        char saved = xml[pos];
        const btsso_attribute_t *mail;

        xml[pos] = (char)(saved ^ 0x04);
        e = btsso_response_validate(pool, xml, len, &ex, &a);
        xml[pos] = saved;
        if (e != NULL) {
            refused++;
            continue;
        }
        accepted++;
        mail = btsso_assertion_attribute(a, "mail");
        if (strcmp(a->name_id, "alice@example.com") != 0 || mail == NULL
            || strcmp(APR_ARRAY_IDX(mail->values, 0, const char *),
                      "alice@example.com") != 0
            || strcmp(a->assertion_id, "_assert-20260115120000") != 0
            || a->assertion_not_on_or_after != at(300)) {
            fail_msg("flipping byte %" APR_SIZE_T_FMT " changed the facts "
                     "of an accepted response", pos);
        }
    }
    /* the signed part dominates the document */
    assert_true(refused > 2 * accepted);
}

/* The core never logs: hostile input (every fixture, and byte flips
 * that break namespaces inside xmlsec's c14n) writes nothing to stderr,
 * which is httpd's error log. */
static void test_silent_on_hostile_input(void **state)
{
    FILE *capture = tmpfile();
    int saved, i;
    long size;

    assert_non_null(capture);
    fflush(stderr);
    saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(capture), 2) >= 0);
    for (i = 0; cases[i].name != NULL; i++) {
        btsso_response_expect_t ex = expect();

        ex.in_response_to = cases[i].solicited ? REQUEST_ID : NULL;
        (void)check_code(cases[i].name, &ex, cases[i].code);
    }
    test_byte_flips_cannot_change_facts(state);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(capture, 0, SEEK_END);
    size = ftell(capture);
    fclose(capture);
    assert_int_equal(size, 0);
}

static void test_sp_key_load_errors(void **state)
{
    btsso_sp_key_t *k;
    btsso_error_t *e;
    apr_size_t len;
    const char *crt = slurp(pool, "t/fixtures/sp/sp-current.crt", &len);

    e = btsso_sp_key_load(pool, "garbage", 7, &k);
    assert_string_equal(e->code, "bad_private_key");
    assert_null(k);
    e = btsso_sp_key_load(pool, NULL, 0, &k);
    assert_string_equal(e->code, "bad_private_key");
    e = btsso_sp_key_load(pool, crt, len, &k);
    assert_non_null(e);
    assert_string_equal(e->code, "bad_private_key");
}

/* ---- runner --------------------------------------------------------------- */

static int setup(void **state)
{
    return apr_pool_create(&pool, root_pool) == APR_SUCCESS ? 0 : -1;
}

static int teardown(void **state)
{
    apr_pool_destroy(pool);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_all_fixtures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loaded_once_same_answers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ready_keys_same_answers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_every_fixture_is_checked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fields_of_valid_response, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_signed_parts_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_comment_split_reads_full_text,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_encrypted_fields, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pysaml2_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sha1_only_when_enabled, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_certificate_choice, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_decryption_keys, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_decrypt_uniform_answer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_encrypted_key_count, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_in_response_to, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expectation_mismatches, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_time_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditions_window, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_input_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entity_attacks_in_raw_xml, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_malformed_headers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_status_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_detail_content, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_peek_issuer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_characters_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_peek_issuer_control_characters,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncations_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_byte_flips_cannot_change_facts,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_on_hostile_input, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sp_key_load_errors, setup,
                                        teardown),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&root_pool, NULL);
    if (btsso_xmlsec_init(root_pool) != NULL) {
        fprintf(stderr, "xmlsec init failed\n");
        return 1;
    }
    /* idempotent: a second init only counts */
    if (btsso_xmlsec_init(root_pool) != NULL) {
        return 1;
    }
    cert_rsa = load_der("resp-idp-rsa.der");
    cert_rsa_next = load_der("resp-idp-rsa-next.der");
    cert_ec = load_der("resp-idp-ec.der");
    cert_attacker = load_der("resp-attacker.der");
    sp_key_current = load_sp_key("sp-current.key");
    sp_key_next = load_sp_key("sp-next.key");
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(root_pool);
    btsso_xmlsec_shutdown();
    btsso_xmlsec_shutdown();
    apr_terminate();
    return rc;
}
