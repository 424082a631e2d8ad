/*
 * fuzz_response.c - libFuzzer harness for btsso_response_validate() and
 * btsso_response_peek_issuer() (saml/response.c), the SAMLResponse an
 * attacker posts to the ACS.
 *
 * The input is the SAMLResponse value (XML as is, or base64), at the
 * expectation t/unit/test_response.c uses with a fixed clock and the
 * fixtures' trusted IdP keys (resp-idp-rsa, -rsa-next, -ec) and SP
 * decryption key (sp-current), so the seeds from t/fixtures/responses
 * verify and the fuzzer starts from inside the signed paths.  An optional
 * control block (fuzz_common.h) varies the expectation:
 *   opt[0] bit 0: expect REQUEST_ID; bit 1: refuse IdP-initiated;
 *          bit 2: no SP key; bit 3: only the attacker's certificate;
 *          bit 4: allow SHA-1 algorithms; bit 7: ignored (a flag byte
 *          without a NUL)
 *   opt[1..2]: clock offset from FIXED_NOW in minutes, 0x8080 being 0
 *   opt[3]: clock skew in seconds
 * Checked: an accepted response names what it was validated against and
 * says which signature verified; an error carries a code, a message and
 * one of the documented statuses.
 */
#define FUZZ_LIBXML 1
#include "fuzz_common.h"

#include "saml/response.h"
#include "saml/xmlsec_glue.h"

#define FIXED_NOW_SEC   1768478400    /* 2026-01-15T12:00:00Z */
#define IDP_ENTITY_ID   "https://idp.example.test/saml/metadata"
#define SP_ENTITY_ID    "https://portal.example.test/sso"
#define ACS_URL         "https://portal.example.test/sso/acs"
#define REQUEST_ID      "_req-4f1c2a9e0b7d"

static apr_array_header_t *trusted, *untrusted, *sp_keys;
static int verbose;

static const btsso_cert_t *load_der(apr_pool_t *p, const char *name)
{
    btsso_cert_t *c = apr_pcalloc(p, sizeof(*c));
    size_t len;

    c->der = (const unsigned char *)fuzz_slurp(
        p, apr_pstrcat(p, "t/fixtures/keys/", name, NULL), &len);
    c->der_len = len;
    return c;
}

static void setup(void)
{
    apr_pool_t *p = fuzz_root_pool();
    btsso_sp_key_t *k;
    size_t len;
    const char *pem;

    if (btsso_xmlsec_init(p) != NULL) {
        abort();
    }
    trusted = apr_array_make(p, 3, sizeof(const btsso_cert_t *));
    APR_ARRAY_PUSH(trusted, const btsso_cert_t *) =
        load_der(p, "resp-idp-rsa.der");
    APR_ARRAY_PUSH(trusted, const btsso_cert_t *) =
        load_der(p, "resp-idp-rsa-next.der");
    APR_ARRAY_PUSH(trusted, const btsso_cert_t *) =
        load_der(p, "resp-idp-ec.der");
    untrusted = apr_array_make(p, 1, sizeof(const btsso_cert_t *));
    APR_ARRAY_PUSH(untrusted, const btsso_cert_t *) =
        load_der(p, "resp-attacker.der");
    pem = fuzz_slurp(p, "t/fixtures/sp/sp-current.key", &len);
    if (btsso_sp_key_load(p, pem, len, &k) != NULL) {
        abort();
    }
    sp_keys = apr_array_make(p, 1, sizeof(btsso_sp_key_t *));
    APR_ARRAY_PUSH(sp_keys, btsso_sp_key_t *) = k;
}

static int status_ok(int s)
{
    return s == 400 || s == 403 || s == 413 || s == 500;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    FUZZ_LSAN_OFF();
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    setup();
    fuzz_trap_libxml_stderr();
    FUZZ_LSAN_ON();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    fuzz_input_t in;
    btsso_response_expect_t ex;
    btsso_assertion_t *a = NULL;
    btsso_error_t *e;
    const char *issuer = NULL;
    unsigned flags;
    int minutes;

    if (apr_pool_create(&p, fuzz_root_pool()) != APR_SUCCESS) {
        abort();
    }
    fuzz_split(p, data, size, &in);
    flags = fuzz_opt(&in, 0);
    minutes = fuzz_opt_offset(&in, 1);

    memset(&ex, 0, sizeof(ex));
    ex.sp_entity_id = SP_ENTITY_ID;
    ex.acs_url = ACS_URL;
    ex.idp_entity_id = IDP_ENTITY_ID;
    ex.trusted_certs = (flags & 8) ? untrusted : trusted;
    ex.sp_keys = (flags & 4) ? NULL : sp_keys;
    ex.now = apr_time_from_sec((apr_time_t)FIXED_NOW_SEC + 10
                               + (apr_time_t)minutes * 60);
    ex.clock_skew = in.opt_len > 3 ? (int)fuzz_opt(&in, 3) : 180;
    ex.in_response_to = (flags & 1) ? REQUEST_ID : NULL;
    ex.allow_idp_initiated = !(flags & 2);
    if (flags & 16) {
        ex.sig_algs = BTSSO_SIG_DEFAULT | BTSSO_SIG_RSA_SHA1
                      | BTSSO_SIG_ECDSA_SHA1;
        ex.digest_algs = BTSSO_DIGEST_DEFAULT | BTSSO_DIGEST_SHA1;
    }

    e = btsso_response_validate(p, in.msg, in.msg_len, &ex, &a);
    if (verbose) {
        /* FUZZ_VERBOSE=1: which check each input reached (corpus review) */
        fprintf(stderr, "fuzz_response: flags %02x minutes %d: %s\n", flags,
                minutes, e == NULL ? "ACCEPTED" : e->code);
    }
    if (e == NULL) {
        FUZZ_CHECK(a != NULL);
        FUZZ_CHECK(!(flags & 8));          /* nothing the attacker signed */
        FUZZ_CHECK(a->response_signed || a->assertion_signed);
        FUZZ_CHECK(a->issuer != NULL
                   && strcmp(a->issuer, IDP_ENTITY_ID) == 0);
        FUZZ_CHECK(a->name_id != NULL && a->name_id[0] != '\0');
        FUZZ_CHECK(a->assertion_id != NULL);
        FUZZ_CHECK(a->attributes != NULL);
        if (ex.in_response_to != NULL) {
            FUZZ_CHECK(a->in_response_to != NULL
                       && strcmp(a->in_response_to, REQUEST_ID) == 0);
        } else {
            FUZZ_CHECK(a->in_response_to == NULL);
        }
        FUZZ_CHECK(a->assertion_not_on_or_after + apr_time_from_sec(
                       ex.clock_skew) >= ex.now);
        (void)btsso_assertion_attribute(a, "mail");
    } else {
        FUZZ_CHECK(a == NULL);
        FUZZ_CHECK(e->code != NULL && e->message != NULL);
        FUZZ_CHECK(status_ok(e->status));
    }

    e = btsso_response_peek_issuer(p, in.msg, in.msg_len, 0, &issuer);
    if (e == NULL) {
        FUZZ_CHECK(issuer != NULL);
    } else {
        FUZZ_CHECK(e->code != NULL && status_ok(e->status));
    }
    apr_pool_destroy(p);
    return 0;
}
