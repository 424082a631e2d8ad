/*
 * test_mdsig.c - metadata signatures, validUntil and cacheDuration
 * (saml/mdsig.h), and the refresh schedule (store/refresh.h), over the
 * fixtures of t/fixtures/metadata/signed (make.py there signs them):
 * genuine, tampered, signed by another key, and the wrapping shapes a
 * metadata signature must not fall for.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "saml/metadata.h"
#include "saml/mdsig.h"
#include "saml/xmlsec_glue.h"
#include "store/refresh.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif
#define SIGNED TOP_SRCDIR "/t/fixtures/metadata/signed/"
#define KEYS TOP_SRCDIR "/t/fixtures/keys/"
#define ENTITY "https://idp.signed.example.test/idp"

static apr_pool_t *root;
static btsso_cert_t *cert_rsa, *cert_next, *cert_attacker;

static char *slurp(apr_pool_t *p, const char *path, apr_size_t *len)
{
    char *buf = NULL;
    apr_file_t *f;
    apr_finfo_t fi;

    assert_int_equal(apr_file_open(&f, path, APR_READ, 0, p), APR_SUCCESS);
    assert_int_equal(apr_file_info_get(&fi, APR_FINFO_SIZE, f), APR_SUCCESS);
    *len = (apr_size_t)fi.size;
    buf = apr_palloc(p, *len + 1);
    assert_int_equal(apr_file_read_full(f, buf, *len, len), APR_SUCCESS);
    buf[*len] = '\0';
    apr_file_close(f);
    return buf;
}

static btsso_cert_t *load_cert(const char *name)
{
    apr_size_t len;
    char *der = slurp(root, apr_pstrcat(root, KEYS, name, NULL), &len);
    btsso_cert_t *c = NULL;

    assert_null(btsso_cert_parse(root, der, len, &c));
    return c;
}

static apr_array_header_t *certs(apr_pool_t *p, int n, ...)
{
    apr_array_header_t *a = apr_array_make(p, n, sizeof(btsso_cert_t *));
    va_list ap;
    int i;

    va_start(ap, n);
    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(a, btsso_cert_t *) = va_arg(ap, btsso_cert_t *);
    }
    va_end(ap);
    return a;
}

/* parse (by entityID) and inspect */
static btsso_error_t *inspect(apr_pool_t *p, const char *name,
                              const apr_array_header_t *trusted,
                              btsso_md_trust_t *t)
{
    apr_size_t len;
    char *xml = slurp(p, apr_pstrcat(p, SIGNED, name, NULL), &len);
    btsso_idp_metadata_t *md = NULL;
    btsso_error_t *e = btsso_metadata_parse(p, xml, len, 0, ENTITY, &md);

    if (e != NULL) {
        return e;
    }
    return btsso_metadata_trust(p, md, trusted, 0, 0, t);
}

static void test_genuine_signature(void **state)
{
    apr_pool_t *p;
    btsso_md_trust_t t;

    apr_pool_create(&p, root);
    assert_null(inspect(p, "signed.xml", certs(p, 1, cert_rsa), &t));
    assert_int_equal(t.signature, BTSSO_MDSIG_VERIFIED);
    assert_string_equal(t.signer, cert_rsa->sha256);
    /* the second trusted certificate verifies as well as the first */
    assert_null(inspect(p, "signed.xml", certs(p, 2, cert_attacker,
                                               cert_rsa), &t));
    assert_int_equal(t.signature, BTSSO_MDSIG_VERIFIED);
    /* nothing to check with: found, not judged */
    assert_null(inspect(p, "signed.xml", NULL, &t));
    assert_int_equal(t.signature, BTSSO_MDSIG_UNCHECKED);
    /* a federation's signature over the whole aggregate covers the entity */
    assert_null(inspect(p, "signed-aggregate.xml", certs(p, 1, cert_rsa),
                        &t));
    assert_int_equal(t.signature, BTSSO_MDSIG_VERIFIED);
    apr_pool_destroy(p);
}

static void test_refused_signatures(void **state)
{
    static const char *const hostile[] = {
        "tampered.xml",          /* content changed after signing */
        "other-key.xml",         /* signed, by a key nobody trusts */
        "wrapped-moved.xml",     /* the signature moved onto a forgery */
        "retrieval-method.xml",  /* KeyInfo points elsewhere */
        "two-signatures.xml",
        "inclusive-c14n.xml",
        NULL
    };
    apr_pool_t *p;
    btsso_md_trust_t t;
    int i;

    apr_pool_create(&p, root);
    for (i = 0; hostile[i] != NULL; i++) {
        btsso_error_t *e = inspect(p, hostile[i], certs(p, 2, cert_rsa,
                                                        cert_next), &t);
        if (e != NULL) {
            fail_msg("%s: %s", hostile[i], btsso_error_line(p, e));
        }
        if (t.signature != BTSSO_MDSIG_FAILED) {
            fail_msg("%s: signature %s, expected failed", hostile[i],
                     btsso_mdsig_name(t.signature));
        }
        assert_non_null(t.detail);
        assert_null(t.signer);
    }
    /* an unsigned twin first, the genuine signed entity after it: the
     * parser consumes the first, which nothing signs, so the document
     * counts as unsigned (its certificates get no role), never as signed */
    assert_null(inspect(p, "wrapped-duplicate.xml", certs(p, 1, cert_rsa),
                        &t));
    assert_int_equal(t.signature, BTSSO_MDSIG_NONE);
    apr_pool_destroy(p);
}

static void test_times(void **state)
{
    apr_pool_t *p;
    btsso_md_trust_t t;
    btsso_error_t *e;

    apr_pool_create(&p, root);
    assert_null(inspect(p, "times.xml", NULL, &t));
    assert_int_equal(t.signature, BTSSO_MDSIG_NONE);
    assert_int_equal(apr_time_sec(t.valid_until), 1953448800LL);
    assert_int_equal(apr_time_sec(t.cache_duration), 6 * 3600);
    /* the earliest validUntil and the shortest cacheDuration of the entity
     * and what encloses it */
    assert_null(inspect(p, "times-nested.xml", NULL, &t));
    assert_int_equal(apr_time_sec(t.valid_until), 1893456000LL);
    assert_int_equal(apr_time_sec(t.cache_duration), 90);
    e = inspect(p, "bad-valid-until.xml", NULL, &t);
    assert_non_null(e);
    assert_string_equal(e->code, "bad_valid_until");
    assert_int_equal(e->status, 422);
    apr_pool_destroy(p);
}

static void test_schedule(void **state)
{
    apr_interval_time_t six_h = apr_time_from_sec(6 * 3600);
    apr_time_t now = apr_time_from_sec(1000000);
    btsso_md_trust_t t;

    memset(&t, 0, sizeof(t));
    assert_int_equal(btsso_refresh_next_ok(six_h, &t, now), now + six_h);
    /* cacheDuration shorter: sooner; never sooner than interval/60 */
    t.cache_duration = apr_time_from_sec(600);
    assert_int_equal(btsso_refresh_next_ok(six_h, &t, now),
                     now + apr_time_from_sec(600));
    t.cache_duration = apr_time_from_sec(1);
    assert_int_equal(btsso_refresh_next_ok(six_h, &t, now),
                     now + apr_time_from_sec(360));
    assert_int_equal(btsso_refresh_next_ok(apr_time_from_sec(2), &t, now),
                     now + apr_time_from_sec(1));
    /* validUntil first: half the time left */
    t.cache_duration = 0;
    t.valid_until = now + apr_time_from_sec(7200);
    assert_int_equal(btsso_refresh_next_ok(six_h, &t, now),
                     now + apr_time_from_sec(3600));
    /* back-off: doubling from interval/60, capped at the interval (an
     * hour at least) */
    assert_int_equal(btsso_refresh_next_failed(six_h, 1, now),
                     now + apr_time_from_sec(360));
    assert_int_equal(btsso_refresh_next_failed(six_h, 3, now),
                     now + apr_time_from_sec(1440));
    assert_int_equal(btsso_refresh_next_failed(six_h, 50, now), now + six_h);
    assert_int_equal(btsso_refresh_next_failed(apr_time_from_sec(2), 4, now),
                     now + apr_time_from_sec(8));
    assert_int_equal(btsso_refresh_next_failed(apr_time_from_sec(2), 40,
                                               now),
                     now + apr_time_from_sec(3600));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_genuine_signature),
        cmocka_unit_test(test_refused_signatures),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_schedule),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&root, NULL);
    btsso_xml_init();
    if (btsso_xmlsec_init(root) != NULL) {
        fprintf(stderr, "xmlsec init failed\n");
        return 1;
    }
    cert_rsa = load_cert("resp-idp-rsa.der");
    cert_next = load_cert("resp-idp-rsa-next.der");
    cert_attacker = load_cert("resp-attacker.der");
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(root);
    btsso_xmlsec_shutdown();
    apr_terminate();
    return rc;
}
