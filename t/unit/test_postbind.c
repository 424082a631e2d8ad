/*
 * test_postbind.c - the HTTP-POST binding (saml/postbind.c) and the XML
 * signature check of POSTed logout messages (btsso_logout_parse_verified,
 * saml/xmldsig.h): our enveloped signatures verify and are where the
 * schema wants them; the page escapes every value and its CSP nonce and
 * form-action fit; and every forged, unsigned, re-signed or wrapped
 * logout message is refused with its precise code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "core/b64.h"
#include "saml/authnreq.h"
#include "saml/logout.h"
#include "saml/postbind.h"
#include "saml/xmldsig.h"
#include "saml/xmlparse.h"
#include "saml/xmlsec_glue.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif
#define SP TOP_SRCDIR "/t/fixtures/sp/"
#define PROTOCOL_XSD "/usr/share/xml/opensaml/saml-schema-protocol-2.0.xsd"

#define IDP_SSO "https://IdP.Example.org:8443/sso?tenant=a&x=1"
#define IDP_SLO "https://idp.example.org/slo"
#define SP_ENTITY "https://portal.example.com/sso"
#define SP_ACS "https://portal.example.com/sso/acs"

static apr_pool_t *pool;
static btsso_spkey_t *sp_current, *sp_next, *sp_ec;
static const apr_time_t NOW = APR_INT64_C(1700000000) * APR_USEC_PER_SEC;

static int setup(void **state)
{
    apr_pool_create(&pool, NULL);
    if (btsso_spkey_load(pool, SP "sp-current.key", SP "sp-current.crt",
                         &sp_current) != NULL
        || btsso_spkey_load(pool, SP "sp-next.key", SP "sp-next.crt",
                            &sp_next) != NULL
        || btsso_spkey_load(pool, SP "sp-ec.key", SP "sp-ec.crt",
                            &sp_ec) != NULL) {
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy(pool);
    return 0;
}

static apr_array_header_t *certs_of(const btsso_spkey_t *k)
{
    apr_array_header_t *a = apr_array_make(pool, 1, sizeof(void *));

    APR_ARRAY_PUSH(a, const btsso_cert_t *) = btsso_spkey_cert(k);
    return a;
}

/* A LogoutRequest as an IdP would send it (we play the IdP with one of our
 * fixture keys: the signature code does not care who signs). */
static const char *idp_logout_request(const char *id)
{
    return apr_psprintf(pool,
        "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:"
        "protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" "
        "ID=\"%s\" Version=\"2.0\" IssueInstant=\"2023-11-14T22:13:10Z\" "
        "Destination=\"https://portal.example.com/sso/slo\">"
        "<saml:Issuer>https://idp.example.org/saml</saml:Issuer>"
        "<saml:NameID>ann@example.com</saml:NameID>"
        "<samlp:SessionIndex>_s1</samlp:SessionIndex>"
        "</samlp:LogoutRequest>", id);
}

static const char *signed_request(const btsso_spkey_t *k, const char *id)
{
    const char *out = NULL;
    btsso_error_t *e = btsso_post_sign(pool, idp_logout_request(id), k, NULL,
                                       &out);

    assert_null(e);
    assert_non_null(out);
    return out;
}

static btsso_error_t *verify(const char *xml, const btsso_spkey_t *trust,
                             btsso_logout_msg_t **m)
{
    return btsso_logout_parse_verified(pool, xml, strlen(xml), 0,
                                       certs_of(trust), 0, 0, m);
}

static void expect_refused(const char *xml, const char *code)
{
    btsso_logout_msg_t *m = NULL;
    btsso_error_t *e = verify(xml, sp_current, &m);

    if (e == NULL) {
        fail_msg("accepted, expected %s: %s", code, xml);
    }
    if (strcmp(e->code, code) != 0) {
        fail_msg("refused with %s (%s), expected %s", e->code,
                 e->detail ? e->detail : "", code);
    }
    assert_null(m);
}

/* s with the first occurrence of from replaced by to */
static const char *replace(const char *s, const char *from, const char *to)
{
    const char *at = strstr(s, from);

    assert_non_null(at);
    return apr_pstrcat(pool, apr_pstrmemdup(pool, s, (apr_size_t)(at - s)),
                       to, at + strlen(from), NULL);
}

static const char *signature_of(const char *xml)
{
    const char *b = strstr(xml, "<ds:Signature");
    const char *e = strstr(xml, "</ds:Signature>");

    assert_non_null(b);
    assert_non_null(e);
    return apr_pstrmemdup(pool, b, (apr_size_t)(e - b)
                          + strlen("</ds:Signature>"));
}

/* ---- signing and verifying -------------------------------------------- */

static void test_signed_request_verifies(void **state)
{
    btsso_logout_msg_t *m = NULL;
    const char *xml = signed_request(sp_current, "_req1");

    assert_null(verify(xml, sp_current, &m));
    assert_non_null(m);
    assert_int_equal(m->kind, BTSSO_LOGOUT_REQUEST);
    assert_string_equal(m->id, "_req1");
    assert_string_equal(m->name_id, "ann@example.com");
    assert_string_equal(m->issuer, "https://idp.example.org/saml");
    /* the parts of the signature we promise */
    assert_non_null(strstr(xml, "Algorithm=\"http://www.w3.org/2001/10/"
                                "xml-exc-c14n#\""));
    assert_non_null(strstr(xml, "enveloped-signature"));
    assert_non_null(strstr(xml, "Algorithm=\"http://www.w3.org/2001/04/"
                                "xmlenc#sha256\""));
    assert_non_null(strstr(xml, "URI=\"#_req1\""));
    assert_non_null(strstr(xml, "<ds:X509Certificate>"));
    /* right after the Issuer, as the schema orders it */
    assert_non_null(strstr(xml, "</saml:Issuer><ds:Signature"));
}

static void test_ec_key_signs(void **state)
{
    btsso_logout_msg_t *m = NULL;
    const char *xml = signed_request(sp_ec, "_ec1");

    assert_non_null(strstr(xml, "ecdsa-sha256"));
    assert_null(verify(xml, sp_ec, &m));
    assert_non_null(m);
}

static void test_unsigned_refused(void **state)
{
    expect_refused(idp_logout_request("_u1"), "not_signed");
}

static void test_other_key_refused(void **state)
{
    expect_refused(signed_request(sp_next, "_o1"), "sig_invalid");
}

static void test_altered_refused(void **state)
{
    const char *xml = signed_request(sp_current, "_a1");

    expect_refused(replace(xml, "ann@example.com", "bob@example.com"),
                   "sig_invalid");
    /* a SessionIndex removed: every session of the NameID would end */
    expect_refused(replace(xml, "<samlp:SessionIndex>_s1</samlp:"
                           "SessionIndex>", ""), "sig_invalid");
}

static void test_reference_to_other_id_refused(void **state)
{
    /* The signature is genuine but for another message: re-labelling the
     * root breaks the tie between the Reference and what is consumed. */
    const char *xml = signed_request(sp_current, "_r1");

    expect_refused(replace(xml, "ID=\"_r1\"", "ID=\"_r2\""),
                   "sig_reference");
}

static void test_wrapped_refused(void **state)
{
    /* The genuine signed request hidden in an Extensions element of an
     * unsigned forged one that carries the same ID. */
    const char *good = signed_request(sp_current, "_w1");
    const char *forged = idp_logout_request("_w1");
    const char *wrapped = replace(forged, "</saml:Issuer>",
        apr_pstrcat(pool, "</saml:Issuer><samlp:Extensions>", good,
                    "</samlp:Extensions>", NULL));

    expect_refused(replace(wrapped, "<saml:NameID>ann@",
                           "<saml:NameID>eve@"), "duplicate_id");
    /* The same with the forged root under another ID, its signature
     * copied from the genuine message: the inner signed element is a
     * second signed element. */
    expect_refused(replace(replace(wrapped, "ID=\"_w1\"", "ID=\"_w9\""),
                           "</saml:Issuer>", apr_pstrcat(pool,
                           "</saml:Issuer>", signature_of(good), NULL)),
                   "sig_misplaced");
    /* Two signatures directly on the root. */
    expect_refused(replace(good, "</saml:Issuer>", apr_pstrcat(pool,
                           "</saml:Issuer>", signature_of(good), NULL)),
                   "sig_multiple");
}

static void test_keyinfo_retrieval_refused(void **state)
{
    const char *xml = signed_request(sp_current, "_k1");

    expect_refused(replace(xml, "<ds:KeyInfo>", "<ds:KeyInfo>"
                           "<ds:RetrievalMethod URI=\"http://127.0.0.1:9/k\""
                           "/>"), "sig_keyinfo_forbidden");
}

static void test_xml_id_refused(void **state)
{
    const char *xml = signed_request(sp_current, "_x1");

    expect_refused(replace(xml, "<saml:NameID>", "<saml:NameID xml:id=\"_x"
                           "1\">"), "xml_id_forbidden");
}

static void test_dtd_refused_before_signature(void **state)
{
    expect_refused(apr_pstrcat(pool, "<!DOCTYPE x [<!ENTITY e \"y\">]>",
                               signed_request(sp_current, "_d1"), NULL),
                   "dtd_forbidden");
}

static void test_signed_authnrequest_schema_valid(void **state)
{
    btsso_authnreq_t req;
    btsso_saml_msg_t *msg = NULL;
    const char *xml = NULL, *file, *cmd;
    xmlDocPtr doc = NULL;
    char path[] = "/tmp/btsso-postbind-XXXXXX";
    int fd;

    memset(&req, 0, sizeof(req));
    req.sp_entity_id = SP_ENTITY;
    req.idp_sso_url = IDP_SSO;
    req.acs_url = SP_ACS;
    assert_null(btsso_authnreq_build(pool, &req, NOW, NULL, NULL, &msg));
    assert_null(btsso_post_sign(pool, msg->xml, sp_current, NULL, &xml));
    assert_null(btsso_xml_parse(pool, xml, strlen(xml), 0, "x", &doc));
    assert_null(btsso_xmldsig_verify_root(pool, doc, certs_of(sp_current),
                                          0, 0, "AuthnRequest", NULL));
    xmlFreeDoc(doc);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, xml, strlen(xml)), (ssize_t)strlen(xml));
    close(fd);
    file = path;
    if (access(PROTOCOL_XSD, R_OK) == 0) {
        cmd = apr_psprintf(pool, "XML_CATALOG_FILES='%s' xmllint --nonet "
                           "--noout --schema '%s' '%s' >/dev/null 2>&1",
                           TOP_SRCDIR "/t/fixtures/xsd/catalog.xml",
                           PROTOCOL_XSD, file);
        assert_int_equal(system(cmd), 0);
    }
    unlink(file);
}

/* ---- the page --------------------------------------------------------- */

static int counting_random(void *baton, unsigned char *buf, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        buf[i] = (unsigned char)(i + 1);
    }
    return 0;
}

static void test_page(void **state)
{
    btsso_post_page_t *pg = NULL;
    const char *xml = "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:"
        "SAML:2.0:protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:"
        "assertion\" ID=\"_p1\" Version=\"2.0\" IssueInstant=\"2023-11-14T"
        "22:13:10Z\"><saml:Issuer>x&amp;y</saml:Issuer>"
        "</samlp:AuthnRequest>";
    const char *nonce, *b64;

    assert_null(btsso_post_page(pool, IDP_SSO, NULL, "SAMLRequest", xml,
                                "\"><script>alert(1)</script>", NULL, NULL,
                                counting_random, NULL, &pg));
    nonce = btsso_b64_encode(pool, "\x01\x02\x03\x04\x05\x06\x07\x08\x09"
                             "\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
    assert_string_equal(pg->nonce, nonce);
    assert_string_equal(pg->csp, apr_pstrcat(pool, "default-src 'none'; "
                        "script-src 'nonce-", nonce, "'; form-action "
                        "https://idp.example.org:8443; base-uri 'none'; "
                        "frame-ancestors 'none'", NULL));
    assert_non_null(strstr(pg->html, "action=\"https://IdP.Example.org:8443"
                           "/sso?tenant=a&amp;x=1\""));
    assert_non_null(strstr(pg->html, "value=\"&quot;&gt;&lt;script&gt;"
                           "alert(1)&lt;/script&gt;\""));
    assert_null(strstr(pg->html, "<script>alert"));
    assert_non_null(strstr(pg->html, apr_pstrcat(pool, "<script nonce=\"",
                                                 nonce, "\">", NULL)));
    assert_non_null(strstr(pg->html, "<noscript>"));
    b64 = btsso_b64_encode(pool, xml, strlen(xml));
    assert_non_null(strstr(pg->html, apr_pstrcat(pool, "name=\"SAMLRequest\" "
                                                 "value=\"", b64, "\"",
                                                 NULL)));
    /* one <script> element only */
    assert_null(strstr(strstr(pg->html, "<script") + 1, "<script"));

    /* signed with a key */
    assert_null(btsso_post_page(pool, IDP_SSO, NULL, "SAMLRequest", xml, NULL,
                                sp_current, NULL, NULL, NULL, &pg));
    assert_null(strstr(pg->csp, "portal"));
    /* the SP's own origin too, for the IdP's redirect back to us */
    assert_null(btsso_post_page(pool, IDP_SSO, "https://Portal.example.com"
                                "/base", "SAMLRequest", xml, NULL, NULL,
                                NULL, NULL, NULL, &pg));
    assert_non_null(strstr(pg->csp, "; form-action https://idp.example.org:"
                           "8443 https://portal.example.com; "));
    assert_null(btsso_post_page(pool, "https://portal.example.com/x",
                                "https://portal.example.com/", "SAMLRequest",
                                xml, NULL, NULL, NULL, NULL, NULL, &pg));
    assert_non_null(strstr(pg->csp, "; form-action https://portal.example."
                           "com; "));
    assert_null(strstr(pg->html, "RelayState"));
    assert_non_null(pg->nonce);
    assert_true(strlen(pg->nonce) == 24);
}

static void test_page_refusals(void **state)
{
    btsso_post_page_t *pg = NULL;
    const char *xml = idp_logout_request("_z");

    assert_string_equal(btsso_post_page(pool, "ftp://idp/x", NULL,
                                        "SAMLRequest", xml, NULL, NULL,
                                        NULL, NULL, NULL, &pg)->code,
                        "bad_endpoint");
    assert_string_equal(btsso_post_page(pool, "https://idp/x#f", NULL,
                                        "SAMLRequest", xml, NULL, NULL,
                                        NULL, NULL, NULL, &pg)->code,
                        "bad_endpoint");
    assert_string_equal(btsso_post_page(pool, "https://idp/x", NULL, "Other",
                                        xml, NULL, NULL, NULL, NULL, NULL,
                                        &pg)->code, "bad_message_params");
    assert_null(pg);
}

static void test_origin(void **state)
{
    const char *o = NULL;

    assert_null(btsso_post_origin(pool, "HTTPS://IDP.example.ORG/x?y", &o));
    assert_string_equal(o, "https://idp.example.org");
    assert_null(btsso_post_origin(pool, "http://127.0.0.1:8080/sso", &o));
    assert_string_equal(o, "http://127.0.0.1:8080");
    assert_null(btsso_post_origin(pool, "https://[::1]:9443/sso", &o));
    assert_string_equal(o, "https://[::1]:9443");
    assert_non_null(btsso_post_origin(pool, "https://u:p@idp/x", &o));
    assert_non_null(btsso_post_origin(pool, "/relative", &o));
    assert_non_null(btsso_post_origin(pool, "https://a;b/x", &o));
    assert_non_null(btsso_post_origin(pool, "javascript:alert(1)", &o));
}

static void test_decode(void **state)
{
    const char *xml = NULL;
    apr_size_t len = 0;
    char *big;

    assert_null(btsso_post_decode(pool, "PHg+PC94Pg==\r\n", 14, 0, &xml,
                                  &len));
    assert_string_equal(xml, "<x></x>");
    assert_int_equal(len, 7);
    assert_string_equal(btsso_post_decode(pool, "PHg+*", 5, 0, &xml,
                                          &len)->code, "bad_base64");
    assert_string_equal(btsso_post_decode(pool, "", 0, 0, &xml,
                                          &len)->code, "empty");
    big = apr_palloc(pool, BTSSO_POST_MAX_B64 + 5);
    memset(big, 'A', BTSSO_POST_MAX_B64 + 4);
    big[BTSSO_POST_MAX_B64 + 4] = '\0';
    assert_int_equal(btsso_post_decode(pool, big, BTSSO_POST_MAX_B64 + 4, 0,
                                       &xml, &len)->status, 413);
}

int main(void)
{
    apr_pool_t *root_pool;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_request_verifies),
        cmocka_unit_test(test_ec_key_signs),
        cmocka_unit_test(test_unsigned_refused),
        cmocka_unit_test(test_other_key_refused),
        cmocka_unit_test(test_altered_refused),
        cmocka_unit_test(test_reference_to_other_id_refused),
        cmocka_unit_test(test_wrapped_refused),
        cmocka_unit_test(test_keyinfo_retrieval_refused),
        cmocka_unit_test(test_xml_id_refused),
        cmocka_unit_test(test_dtd_refused_before_signature),
        cmocka_unit_test(test_signed_authnrequest_schema_valid),
        cmocka_unit_test(test_page),
        cmocka_unit_test(test_page_refusals),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_decode),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&root_pool, NULL);
    btsso_xml_init();
    if (btsso_xmlsec_init(root_pool) != NULL) {
        fprintf(stderr, "xmlsec init failed\n");
        return 1;
    }
    rc = cmocka_run_group_tests(tests, setup, teardown);
    btsso_xmlsec_shutdown();
    apr_pool_destroy(root_pool);
    apr_terminate();
    return rc;
}
