/*
 * test_authnreq.c - AuthnRequest / LogoutRequest / LogoutResponse building,
 * the HTTP-Redirect binding encoder and decoder, and Redirect signatures.
 *
 * Messages are schema-validated with xmllint against the OASIS protocol
 * schema (offline, through t/fixtures/xsd/catalog.xml); RSA signatures are
 * checked with the openssl command line on the exact signed octets.
 */
#include <ctype.h>
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
#include <openssl/evp.h>

#include "core/b64.h"
#include "saml/authnreq.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif
#define SP TOP_SRCDIR "/t/fixtures/sp/"
#define PROTOCOL_XSD "/usr/share/xml/opensaml/saml-schema-protocol-2.0.xsd"

#define IDP_SSO "https://idp.example.org/sso"
#define IDP_SLO "https://idp.example.org/slo"
#define SP_ENTITY "https://portal.example.com/sso"
#define SP_ACS "https://portal.example.com/sso/acs"

static apr_pool_t *pool;
static btsso_spkey_t *sp_current, *sp_next, *sp_ec;
/* 2023-11-14T22:13:20Z */
static const apr_time_t NOW = APR_INT64_C(1700000000) * APR_USEC_PER_SEC;

/* A time when every fixture certificate is valid (they were made with a
 * century of validity; NOW above predates them). */
static apr_time_t valid_now(void)
{
    return btsso_spkey_cert(sp_current)->not_before
        + APR_INT64_C(86400) * APR_USEC_PER_SEC;
}

static int setup(void **state)
{
    apr_pool_create(&pool, NULL);
    xmlInitParser();
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
    xmlCleanupParser();
    return 0;
}

/* Deterministic "random" source: 0x00, 0x01, 0x02, ... */
static int counting_random(void *baton, unsigned char *buf, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        buf[i] = (unsigned char)i;
    }
    return 0;
}

static int failing_random(void *baton, unsigned char *buf, apr_size_t len)
{
    return -1;
}

static const char *write_temp(const void *data, size_t len)
{
    char *path = apr_pstrdup(pool, "/tmp/btsso-authnreq-XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

/* xmllint against the OASIS schema, offline: 0 when valid. */
static int schema_check(const char *xml)
{
    const char *file = write_temp(xml, strlen(xml));
    const char *cmd = apr_psprintf(pool, "XML_CATALOG_FILES='%s' xmllint "
                                   "--nonet --noout --schema '%s' '%s' "
                                   ">/dev/null 2>&1",
                                   TOP_SRCDIR "/t/fixtures/xsd/catalog.xml",
                                   PROTOCOL_XSD, file);
    int rc = system(cmd);

    unlink(file);
    return rc;
}

static xmlDocPtr parse(const char *xml)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "msg.xml", NULL,
                                  XML_PARSE_NONET);

    assert_non_null(doc);
    return doc;
}

static const char *prop(xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
    const char *out = v != NULL ? apr_pstrdup(pool, (const char *)v) : NULL;

    xmlFree(v);
    return out;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
    xmlNodePtr n;

    for (n = parent->children; n != NULL; n = n->next) {
        if (n->type == XML_ELEMENT_NODE
            && strcmp((const char *)n->name, name) == 0) {
            return n;
        }
    }
    fail_msg("no child element %s", name);
    return NULL;
}

static const char *text_of(xmlNodePtr n)
{
    xmlChar *v = xmlNodeGetContent(n);
    const char *out = apr_pstrdup(pool, (const char *)v);

    xmlFree(v);
    return out;
}

static btsso_authnreq_t basic_request(void)
{
    btsso_authnreq_t req;

    memset(&req, 0, sizeof(req));
    req.sp_entity_id = SP_ENTITY;
    req.idp_sso_url = IDP_SSO;
    req.acs_url = SP_ACS;
    return req;
}

static void test_authnreq_content(void **state)
{
    btsso_authnreq_t req = basic_request();
    btsso_saml_msg_t *msg = NULL;
    xmlDocPtr doc;
    xmlNodePtr root, policy;

    assert_null(btsso_authnreq_build(pool, &req, NOW, counting_random, NULL,
                                     &msg));
    assert_string_equal(msg->id, "_000102030405060708090a0b0c0d0e0f");
    assert_null(msg->url);
    assert_null(strstr(msg->xml, "<?xml"));
    assert_int_equal(schema_check(msg->xml), 0);

    doc = parse(msg->xml);
    root = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)root->name, "AuthnRequest");
    assert_string_equal((const char *)root->ns->href,
                        "urn:oasis:names:tc:SAML:2.0:protocol");
    assert_string_equal(prop(root, "ID"), msg->id);
    assert_string_equal(prop(root, "Version"), "2.0");
    assert_string_equal(prop(root, "IssueInstant"), "2023-11-14T22:13:20Z");
    assert_string_equal(prop(root, "Destination"), IDP_SSO);
    assert_string_equal(prop(root, "AssertionConsumerServiceURL"), SP_ACS);
    assert_string_equal(prop(root, "ProtocolBinding"),
                        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST");
    assert_null(prop(root, "ForceAuthn"));
    assert_string_equal(text_of(child(root, "Issuer")), SP_ENTITY);
    policy = child(root, "NameIDPolicy");
    assert_string_equal(prop(policy, "Format"), BTSSO_NAMEID_UNSPECIFIED);
    assert_string_equal(prop(policy, "AllowCreate"), "true");
    xmlFreeDoc(doc);

    req.nameid_format = BTSSO_NAMEID_EMAIL;
    req.force_authn = 1;
    req.is_passive = 1;
    assert_null(btsso_authnreq_build(pool, &req, NOW, NULL, NULL, &msg));
    assert_int_equal(strlen(msg->id), 33);
    assert_int_equal(schema_check(msg->xml), 0);
    doc = parse(msg->xml);
    root = xmlDocGetRootElement(doc);
    assert_string_equal(prop(root, "ForceAuthn"), "true");
    assert_string_equal(prop(root, "IsPassive"), "true");
    assert_string_equal(prop(child(root, "NameIDPolicy"), "Format"),
                        BTSSO_NAMEID_EMAIL);
    xmlFreeDoc(doc);
}

/* The policy's opt-in RequestedAuthnContext: schema-valid (after
 * NameIDPolicy), Comparison exact, one ClassRef per class in order. */
static void test_requested_authn_context(void **state)
{
    btsso_authnreq_t req = basic_request();
    apr_array_header_t *classes = apr_array_make(pool, 2,
                                                 sizeof(const char *));
    btsso_saml_msg_t *msg = NULL;
    xmlDocPtr doc;
    xmlNodePtr root, rac, c;
    int n = 0;

    req.requested_classes = classes;    /* empty: no element */
    assert_null(btsso_authnreq_build(pool, &req, NOW, NULL, NULL, &msg));
    assert_null(strstr(msg->xml, "RequestedAuthnContext"));

    APR_ARRAY_PUSH(classes, const char *) =
        "http://schemas.microsoft.com/claims/multipleauthn";
    APR_ARRAY_PUSH(classes, const char *) =
        "urn:oasis:names:tc:SAML:2.0:ac:classes:X509";
    assert_null(btsso_authnreq_build(pool, &req, NOW, NULL, NULL, &msg));
    assert_int_equal(schema_check(msg->xml), 0);
    doc = parse(msg->xml);
    root = xmlDocGetRootElement(doc);
    rac = child(root, "RequestedAuthnContext");
    assert_non_null(rac);
    assert_string_equal(prop(rac, "Comparison"), "exact");
    for (c = rac->children; c != NULL; c = c->next) {
        if (c->type != XML_ELEMENT_NODE) {
            continue;
        }
        assert_string_equal((const char *)c->name, "AuthnContextClassRef");
        assert_string_equal((const char *)c->ns->href,
                            "urn:oasis:names:tc:SAML:2.0:assertion");
        assert_string_equal(text_of(c), APR_ARRAY_IDX(classes, n,
                                                      const char *));
        n++;
    }
    assert_int_equal(n, 2);
    xmlFreeDoc(doc);

    /* a class that is not UTF-8 is a build error, never garbage XML */
    APR_ARRAY_PUSH(classes, const char *) = "urn:\xff\xfe";
    assert_non_null(btsso_authnreq_build(pool, &req, NOW, NULL, NULL, &msg));
}

static void test_random_ids_differ(void **state)
{
    btsso_authnreq_t req = basic_request();
    btsso_saml_msg_t *a, *b;

    assert_null(btsso_authnreq_build(pool, &req, NOW, NULL, NULL, &a));
    assert_null(btsso_authnreq_build(pool, &req, NOW, NULL, NULL, &b));
    assert_string_not_equal(a->id, b->id);
    assert_int_equal(a->id[0], '_');
    assert_int_equal(strspn(a->id + 1, "0123456789abcdef"), 32);
}

static void test_values_are_escaped(void **state)
{
    btsso_authnreq_t req = basic_request();
    btsso_saml_msg_t *msg;
    xmlDocPtr doc;
    xmlNodePtr root;
    const char *evil = "urn:x\"><Evil a='1'/>&amp;<!--";

    req.sp_entity_id = evil;
    req.nameid_format = "urn:f\" Injected=\"1";
    assert_null(btsso_authnreq_build(pool, &req, NOW, NULL, NULL, &msg));
    doc = parse(msg->xml);
    root = xmlDocGetRootElement(doc);
    assert_string_equal(text_of(child(root, "Issuer")), evil);
    assert_string_equal(prop(child(root, "NameIDPolicy"), "Format"),
                        req.nameid_format);
    assert_null(prop(child(root, "NameIDPolicy"), "Injected"));
    xmlFreeDoc(doc);
    assert_null(strstr(msg->xml, "<Evil"));
}

static void assert_build_error(const btsso_authnreq_t *req, const char *code)
{
    btsso_saml_msg_t *msg = NULL;
    btsso_error_t *e = btsso_authnreq_build(pool, req, NOW, NULL, NULL, &msg);

    if (e == NULL) {
        fail_msg("built a request, expected %s", code);
    }
    assert_string_equal(e->code, code);
    assert_int_equal(e->status, 500);
    assert_null(msg);
}

static void test_build_errors(void **state)
{
    btsso_authnreq_t req;
    btsso_saml_msg_t *msg = NULL;
    btsso_error_t *e;

    req = basic_request();
    req.sp_entity_id = NULL;
    assert_build_error(&req, "bad_message_params");
    req = basic_request();
    req.sp_entity_id = "";
    assert_build_error(&req, "bad_message_params");
    req = basic_request();
    req.sp_entity_id = "bad\xff\xfeutf8";
    assert_build_error(&req, "bad_message_params");
    req = basic_request();
    req.idp_sso_url = "javascript:alert(1)";
    assert_build_error(&req, "bad_endpoint");
    req = basic_request();
    req.idp_sso_url = "https://idp.example.org/sso#frag";
    assert_build_error(&req, "bad_endpoint");
    req = basic_request();
    req.idp_sso_url = "https://idp.example.org/sso\r\nX: y";
    assert_build_error(&req, "bad_endpoint");
    req = basic_request();
    req.acs_url = NULL;
    assert_build_error(&req, "bad_endpoint");

    req = basic_request();
    e = btsso_authnreq_build(pool, &req, NOW, failing_random, NULL, &msg);
    assert_non_null(e);
    assert_string_equal(e->code, "no_random");
    assert_null(msg);
}

/* The query part of a URL built for IDP_SSO. */
static const char *query_of(const char *url)
{
    const char *q = strchr(url, '?');

    assert_non_null(q);
    return q + 1;
}

static apr_array_header_t *certs_of(int n, ...)
{
    apr_array_header_t *a = apr_array_make(pool, n, sizeof(btsso_cert_t *));
    va_list ap;
    int i;

    va_start(ap, n);
    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(a, const btsso_cert_t *) =
            btsso_spkey_cert(va_arg(ap, btsso_spkey_t *));
    }
    va_end(ap);
    return a;
}

static void test_redirect_unsigned_roundtrip(void **state)
{
    btsso_authnreq_t req = basic_request();
    btsso_saml_msg_t *msg;
    btsso_redirect_msg_t *in = NULL;
    btsso_error_t *e;

    assert_null(btsso_authnreq_redirect(pool, &req, "/app/x?a=b c&d", NULL,
                                        NULL, NOW, NULL, NULL, &msg));
    assert_true(strncmp(msg->url, IDP_SSO "?SAMLRequest=",
                        strlen(IDP_SSO "?SAMLRequest=")) == 0);
    assert_non_null(strstr(msg->url,
                           "&RelayState=%2Fapp%2Fx%3Fa%3Db%20c%26d"));
    assert_null(strstr(msg->url, "SigAlg"));
    assert_null(strstr(msg->url, "Signature"));

    assert_null(btsso_redirect_decode(pool, query_of(msg->url), 0, &in));
    assert_string_equal(in->param, "SAMLRequest");
    assert_string_equal(in->xml, msg->xml);
    assert_int_equal(in->xml_len, strlen(msg->xml));
    assert_string_equal(in->relay_state, "/app/x?a=b c&d");
    assert_null(in->sigalg);
    assert_null(in->signature);
    assert_null(in->signed_octets);

    e = btsso_redirect_verify(pool, in, certs_of(1, sp_current), NULL,
                              valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "unsigned");
    assert_int_equal(e->status, 403);

    /* no RelayState at all */
    assert_null(btsso_authnreq_redirect(pool, &req, NULL, NULL, NULL, NOW,
                                        NULL, NULL, &msg));
    assert_null(strstr(msg->url, "RelayState"));
    assert_null(btsso_redirect_decode(pool, query_of(msg->url), 0, &in));
    assert_null(in->relay_state);
}

static void test_redirect_joins_existing_query(void **state)
{
    btsso_authnreq_t req = basic_request();
    btsso_saml_msg_t *msg;

    req.idp_sso_url = "https://idp.example.org/sso?tenant=a%20b";
    assert_null(btsso_authnreq_redirect(pool, &req, NULL, NULL, NULL, NOW,
                                        NULL, NULL, &msg));
    assert_true(strncmp(msg->url, "https://idp.example.org/sso?tenant=a%20b"
                        "&SAMLRequest=", 53) == 0);
    req.idp_sso_url = "https://idp.example.org/sso?";
    assert_null(btsso_authnreq_redirect(pool, &req, NULL, NULL, NULL, NOW,
                                        NULL, NULL, &msg));
    assert_true(strncmp(msg->url, "https://idp.example.org/sso?SAMLRequest=",
                        40) == 0);
}

/* Split a signed URL into the signed octets and the decoded signature. */
static void split_signed(const char *url, const char **signed_octets,
                         unsigned char **sig, apr_size_t *sig_len)
{
    const char *q = query_of(url);
    const char *s = strstr(q, "&Signature=");
    char *b64;
    apr_size_t b64_len;

    assert_non_null(s);
    *signed_octets = apr_pstrmemdup(pool, q, (apr_size_t)(s - q));
    s += strlen("&Signature=");
    assert_null(btsso_pct_decode(pool, s, strlen(s), &b64, &b64_len));
    assert_null(btsso_b64_decode(pool, b64, b64_len, sig, sig_len));
}

static int openssl_cli_verify(const char *cert_file, const char *data,
                              const unsigned char *sig, size_t sig_len)
{
    const char *data_file = write_temp(data, strlen(data));
    const char *sig_file = write_temp(sig, sig_len);
    const char *pub_file = apr_pstrcat(pool, data_file, ".pub", NULL);
    const char *cmd;
    int rc;

    cmd = apr_psprintf(pool, "openssl x509 -in '%s' -pubkey -noout > '%s' && "
                       "openssl dgst -sha256 -verify '%s' -signature '%s' "
                       "'%s' >/dev/null 2>&1", cert_file, pub_file, pub_file,
                       sig_file, data_file);
    rc = system(cmd);
    unlink(data_file);
    unlink(sig_file);
    unlink(pub_file);
    return rc;
}

static void test_redirect_signed_exact_octets(void **state)
{
    btsso_authnreq_t req = basic_request();
    btsso_saml_msg_t *msg;
    btsso_redirect_msg_t *in;
    const char *signed_octets;
    unsigned char *sig;
    apr_size_t sig_len;

    assert_null(btsso_authnreq_redirect(pool, &req, "/app", sp_current, NULL,
                                        NOW, NULL, NULL, &msg));
    /* Parameter order of bindings 3.4.4.1, algorithm URL-encoded. */
    assert_non_null(strstr(msg->url, "&RelayState=%2Fapp&SigAlg=http%3A%2F%2F"
                           "www.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256"
                           "&Signature="));
    split_signed(msg->url, &signed_octets, &sig, &sig_len);
    assert_true(strncmp(signed_octets, "SAMLRequest=", 12) == 0);
    assert_int_equal(sig_len, 256);
    assert_int_equal(openssl_cli_verify(SP "sp-current.crt", signed_octets,
                                        sig, sig_len), 0);
    assert_int_not_equal(openssl_cli_verify(SP "sp-next.crt", signed_octets,
                                            sig, sig_len), 0);
    assert_int_not_equal(openssl_cli_verify(SP "sp-current.crt",
                                            apr_pstrcat(pool, signed_octets,
                                                        "x", NULL),
                                            sig, sig_len), 0);

    /* The decoder reconstructs exactly these octets. */
    assert_null(btsso_redirect_decode(pool, query_of(msg->url), 0, &in));
    assert_string_equal(in->signed_octets, signed_octets);
    assert_int_equal(in->signed_len, strlen(signed_octets));
    assert_string_equal(in->sigalg, BTSSO_SIGALG_RSA_SHA256);
    assert_int_equal(in->signature_len, 256);
    assert_memory_equal(in->signature, sig, sig_len);
}

static void test_redirect_verify(void **state)
{
    btsso_logoutresp_t resp;
    btsso_saml_msg_t *msg;
    btsso_redirect_msg_t *in;
    apr_array_header_t *allowed;
    btsso_error_t *e;
    const char *q, *reordered, *tampered;
    char *rs, *sg;

    memset(&resp, 0, sizeof(resp));
    resp.sp_entity_id = SP_ENTITY;
    resp.destination = IDP_SLO;
    resp.in_response_to = "_abc";
    assert_null(btsso_logoutresp_redirect(pool, &resp, "/bye", sp_current,
                                          BTSSO_SIGALG_RSA_SHA512, NOW, NULL,
                                          NULL, &msg));
    q = query_of(msg->url);
    assert_null(btsso_redirect_decode(pool, q, 0, &in));
    assert_string_equal(in->param, "SAMLResponse");

    /* The right certificate anywhere in the list. */
    assert_null(btsso_redirect_verify(pool, in, certs_of(1, sp_current),
                                      NULL, valid_now()));
    assert_null(btsso_redirect_verify(pool, in, certs_of(2, sp_next,
                                                         sp_current),
                                      NULL, valid_now()));
    e = btsso_redirect_verify(pool, in, certs_of(1, sp_next), NULL, valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "sig_invalid");
    e = btsso_redirect_verify(pool, in, certs_of(2, sp_next, sp_ec), NULL,
                              valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "sig_invalid");
    e = btsso_redirect_verify(pool, in, certs_of(1, sp_ec), NULL, valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_unsupported");

    /* No certificate, or only expired / not yet valid ones. */
    e = btsso_redirect_verify(pool, in, certs_of(0), NULL, valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "no_usable_certificate");
    e = btsso_redirect_verify(pool, in, NULL, NULL, valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "no_usable_certificate");
    e = btsso_redirect_verify(pool, in, certs_of(1, sp_current), NULL,
                              btsso_spkey_cert(sp_current)->not_after
                              + APR_USEC_PER_SEC);
    assert_non_null(e);
    assert_string_equal(e->code, "no_usable_certificate");
    e = btsso_redirect_verify(pool, in, certs_of(1, sp_current), NULL,
                              btsso_spkey_cert(sp_current)->not_before
                              - APR_USEC_PER_SEC);
    assert_non_null(e);
    assert_string_equal(e->code, "no_usable_certificate");

    /* The caller's algorithm list rules. */
    allowed = apr_array_make(pool, 1, sizeof(const char *));
    APR_ARRAY_PUSH(allowed, const char *) = BTSSO_SIGALG_RSA_SHA256;
    e = btsso_redirect_verify(pool, in, certs_of(1, sp_current), allowed,
                              valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_not_allowed");
    APR_ARRAY_PUSH(allowed, const char *) = BTSSO_SIGALG_RSA_SHA512;
    assert_null(btsso_redirect_verify(pool, in, certs_of(1, sp_current),
                                      allowed, valid_now()));

    /* Parameters in another order: the signed octets are canonical. */
    rs = strstr(q, "&RelayState=");
    sg = strstr(q, "&SigAlg=");
    reordered = apr_pstrcat(pool, sg + 1, "&",
                            apr_pstrmemdup(pool, q, (apr_size_t)(rs - q)),
                            apr_pstrmemdup(pool, rs, (apr_size_t)(sg - rs)),
                            "&foo=bar", NULL);
    assert_null(btsso_redirect_decode(pool, reordered, 0, &in));
    assert_null(btsso_redirect_verify(pool, in, certs_of(1, sp_current),
                                      NULL, valid_now()));

    /* Same RelayState, encoded differently: not the signed octets. */
    tampered = apr_pstrcat(pool, apr_pstrmemdup(pool, q, (apr_size_t)(rs - q)),
                           "&RelayState=%2fbye", sg, NULL);
    assert_null(btsso_redirect_decode(pool, tampered, 0, &in));
    assert_string_equal(in->relay_state, "/bye");
    e = btsso_redirect_verify(pool, in, certs_of(1, sp_current), NULL, valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "sig_invalid");

    /* Another RelayState. */
    tampered = apr_pstrcat(pool, apr_pstrmemdup(pool, q, (apr_size_t)(rs - q)),
                           "&RelayState=%2Fevil", sg, NULL);
    assert_null(btsso_redirect_decode(pool, tampered, 0, &in));
    e = btsso_redirect_verify(pool, in, certs_of(1, sp_current), NULL, valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "sig_invalid");

    /* RelayState dropped. */
    tampered = apr_pstrcat(pool, apr_pstrmemdup(pool, q, (apr_size_t)(rs - q)),
                           sg, NULL);
    assert_null(btsso_redirect_decode(pool, tampered, 0, &in));
    e = btsso_redirect_verify(pool, in, certs_of(1, sp_current), NULL, valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "sig_invalid");

    /* '+' left unencoded in Signature and SAMLResponse by a sloppy
     * sender: still the same base64, and the raw octets still verify
     * when the signer signed them that way. */
    {
        char *plus = apr_pstrdup(pool, q);
        char *at;

        while ((at = strstr(plus, "%2B")) != NULL) {
            at[0] = '+';
            memmove(at + 1, at + 3, strlen(at + 3) + 1);
        }
        assert_non_null(strchr(plus, '+'));
        assert_null(btsso_redirect_decode(pool, plus, 0, &in));
        assert_string_equal(in->xml, msg->xml);
        assert_int_equal(in->signature_len, 256);
    }

    /* SHA-1 is not allowed by default even when it would verify. */
    in->sigalg = BTSSO_SIGALG_RSA_SHA1;
    e = btsso_redirect_verify(pool, in, certs_of(1, sp_current), NULL, valid_now());
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_not_allowed");
}

static void test_redirect_ecdsa(void **state)
{
    btsso_logoutreq_t lr;
    btsso_saml_msg_t *msg;
    btsso_redirect_msg_t *in;

    memset(&lr, 0, sizeof(lr));
    lr.sp_entity_id = SP_ENTITY;
    lr.destination = IDP_SLO;
    lr.name_id = "alice@example.com";
    assert_null(btsso_logoutreq_redirect(pool, &lr, NULL, sp_ec, NULL, NOW,
                                         NULL, NULL, &msg));
    assert_non_null(strstr(msg->url, "ecdsa-sha256"));
    assert_null(btsso_redirect_decode(pool, query_of(msg->url), 0, &in));
    assert_int_equal(in->signature_len, 64);
    assert_null(btsso_redirect_verify(pool, in, certs_of(2, sp_current,
                                                         sp_ec), NULL, valid_now()));
    assert_non_null(btsso_redirect_verify(pool, in, certs_of(1, sp_current),
                                          NULL, valid_now()));
}

static void test_redirect_encode_errors(void **state)
{
    const char *url = NULL;
    btsso_error_t *e;
    char *long_rs = apr_palloc(pool, 3000);

    e = btsso_redirect_encode(pool, IDP_SSO, "SAMLArt", "<x/>", NULL, NULL,
                              NULL, &url);
    assert_non_null(e);
    assert_string_equal(e->code, "bad_message_params");
    e = btsso_redirect_encode(pool, IDP_SSO, "SAMLRequest", "", NULL, NULL,
                              NULL, &url);
    assert_non_null(e);
    assert_string_equal(e->code, "bad_message_params");
    e = btsso_redirect_encode(pool, "ftp://idp/", "SAMLRequest", "<x/>", NULL,
                              NULL, NULL, &url);
    assert_non_null(e);
    assert_string_equal(e->code, "bad_endpoint");
    e = btsso_redirect_encode(pool, IDP_SSO, "SAMLRequest", "<x/>", NULL,
                              sp_current, BTSSO_SIGALG_ECDSA_SHA256, &url);
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_unsupported");
    memset(long_rs, 'a', 2999);
    long_rs[2999] = '\0';
    e = btsso_redirect_encode(pool, IDP_SSO, "SAMLRequest", "<x/>", long_rs,
                              NULL, NULL, &url);
    assert_non_null(e);
    assert_string_equal(e->code, "bad_message_params");
    assert_null(url);
}

static void test_logout_messages(void **state)
{
    btsso_logoutreq_t lr;
    btsso_logoutresp_t resp;
    btsso_saml_msg_t *msg;
    xmlDocPtr doc;
    xmlNodePtr root, n, status;

    memset(&lr, 0, sizeof(lr));
    lr.sp_entity_id = SP_ENTITY;
    lr.destination = IDP_SLO;
    lr.name_id = "alice@example.com";
    lr.name_id_format = BTSSO_NAMEID_EMAIL;
    lr.name_qualifier = "https://idp.example.org";
    lr.sp_name_qualifier = SP_ENTITY;
    lr.session_index = "_sess1";
    assert_null(btsso_logoutreq_build(pool, &lr, NOW, counting_random, NULL,
                                      &msg));
    assert_int_equal(schema_check(msg->xml), 0);
    doc = parse(msg->xml);
    root = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)root->name, "LogoutRequest");
    assert_string_equal(prop(root, "ID"), "_000102030405060708090a0b0c0d0e0f");
    assert_string_equal(prop(root, "Destination"), IDP_SLO);
    assert_string_equal(prop(root, "IssueInstant"), "2023-11-14T22:13:20Z");
    assert_string_equal(text_of(child(root, "Issuer")), SP_ENTITY);
    n = child(root, "NameID");
    assert_string_equal(text_of(n), "alice@example.com");
    assert_string_equal(prop(n, "Format"), BTSSO_NAMEID_EMAIL);
    assert_string_equal(prop(n, "NameQualifier"), "https://idp.example.org");
    assert_string_equal(prop(n, "SPNameQualifier"), SP_ENTITY);
    assert_string_equal((const char *)n->ns->href,
                        "urn:oasis:names:tc:SAML:2.0:assertion");
    assert_string_equal(text_of(child(root, "SessionIndex")), "_sess1");
    xmlFreeDoc(doc);

    /* Optional parts left out */
    lr.name_id_format = NULL;
    lr.name_qualifier = NULL;
    lr.sp_name_qualifier = NULL;
    lr.session_index = NULL;
    assert_null(btsso_logoutreq_build(pool, &lr, NOW, NULL, NULL, &msg));
    assert_int_equal(schema_check(msg->xml), 0);
    assert_null(strstr(msg->xml, "SessionIndex"));
    assert_null(strstr(msg->xml, "Format"));
    lr.name_id = NULL;
    assert_non_null(btsso_logoutreq_build(pool, &lr, NOW, NULL, NULL, &msg));

    memset(&resp, 0, sizeof(resp));
    resp.sp_entity_id = SP_ENTITY;
    resp.destination = IDP_SLO;
    resp.in_response_to = "_req42";
    assert_null(btsso_logoutresp_build(pool, &resp, NOW, NULL, NULL, &msg));
    assert_int_equal(schema_check(msg->xml), 0);
    doc = parse(msg->xml);
    root = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)root->name, "LogoutResponse");
    assert_string_equal(prop(root, "InResponseTo"), "_req42");
    status = child(root, "Status");
    assert_string_equal(prop(child(status, "StatusCode"), "Value"),
                        BTSSO_STATUS_SUCCESS);
    xmlFreeDoc(doc);

    resp.status_code = BTSSO_STATUS_RESPONDER;
    resp.status_message = "session <unknown>";
    assert_null(btsso_logoutresp_build(pool, &resp, NOW, NULL, NULL, &msg));
    assert_int_equal(schema_check(msg->xml), 0);
    doc = parse(msg->xml);
    status = child(xmlDocGetRootElement(doc), "Status");
    assert_string_equal(prop(child(status, "StatusCode"), "Value"),
                        BTSSO_STATUS_RESPONDER);
    assert_string_equal(text_of(child(status, "StatusMessage")),
                        "session <unknown>");
    xmlFreeDoc(doc);

    resp.in_response_to = NULL;
    assert_non_null(btsso_logoutresp_build(pool, &resp, NOW, NULL, NULL,
                                           &msg));
}

static void test_schema_check_can_fail(void **state)
{
    /* Guard for the guard: an invalid message must be caught. */
    assert_int_not_equal(schema_check(
        "<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:"
        "protocol\" ID=\"_1\" Version=\"2.0\" IssueInstant=\"yesterday\"/>"),
        0);
}

/* An encoded SAML parameter value for xml, as the binding carries it. */
static const char *encoded(const char *xml, apr_size_t len)
{
    unsigned char *d;
    apr_size_t dlen;
    const char *b64;

    assert_null(btsso_deflate_raw(pool, xml, len, &d, &dlen));
    b64 = btsso_b64_encode(pool, d, dlen);
    return btsso_pct_encode(pool, b64, strlen(b64));
}

static void assert_decode_error(const char *query, apr_size_t max_xml,
                                const char *code, int status)
{
    btsso_redirect_msg_t *in = NULL;
    btsso_error_t *e = btsso_redirect_decode(pool, query, max_xml, &in);

    if (e == NULL) {
        fail_msg("decoded '%.60s...', expected %s", query, code);
    }
    assert_string_equal(e->code, code);
    assert_int_equal(e->status, status);
    assert_null(in);
}

static void test_decode_errors(void **state)
{
    const char *m = encoded("<x/>", 4);
    char *big;
    apr_size_t big_len = 10 * 1024 * 1024;
    btsso_redirect_msg_t *in;

    assert_decode_error("", 0, "no_saml_message", 400);
    assert_decode_error(NULL, 0, "no_saml_message", 400);
    assert_decode_error("RelayState=x", 0, "no_saml_message", 400);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=", m, "&SAMLResponse=",
                                    m, NULL), 0, "no_saml_message", 400);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=", m, "&SAMLRequest=",
                                    m, NULL), 0, "duplicate_parameter", 400);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=", m,
                                    "&RelayState=a&RelayState=b", NULL), 0,
                        "duplicate_parameter", 400);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=", m, "&SigAlg=x",
                                    NULL), 0, "bad_signature_params", 400);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=", m, "&Signature=AAAA",
                                    NULL), 0, "bad_signature_params", 400);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=", m,
                                    "&SigAlg=x&Signature=", NULL), 0,
                        "bad_signature_params", 400);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=", m,
                                    "&SigAlg=x&Signature=!!!", NULL), 0,
                        "bad_base64", 400);
    assert_decode_error("SAMLRequest=%zz", 0, "bad_encoding", 400);
    assert_decode_error("SAMLRequest=not*base64", 0, "bad_base64", 400);
    /* valid base64, not DEFLATE */
    assert_decode_error("SAMLRequest=PHg%2BPC94Pg%3D%3D", 0, "inflate_failed",
                        400);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=", m,
                                    "&SAMLEncoding=urn%3Afoo", NULL), 0,
                        "unsupported_encoding", 400);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=", m,
                                    "&RelayState=%g1", NULL), 0,
                        "bad_encoding", 400);

    /* the DEFLATE URN is fine */
    assert_null(btsso_redirect_decode(pool, apr_pstrcat(pool, "SAMLRequest=",
        m, "&SAMLEncoding=urn%3Aoasis%3Anames%3Atc%3ASAML%3A2.0%3Abindings"
        "%3AURL-Encoding%3ADEFLATE", NULL), 0, &in));
    assert_string_equal(in->xml, "<x/>");

    /* decompression bomb: 10 MiB of spaces deflate to ~10 KiB */
    big = apr_palloc(pool, big_len);
    memset(big, ' ', big_len);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=",
                                    encoded(big, big_len), NULL), 0,
                        "too_large", 413);
    /* within the size bound but beyond the ratio bound */
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=",
                                    encoded(big, 200 * 1024), NULL), 0,
                        "too_large", 413);
    /* a caller's tighter bound */
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=",
                                    encoded(big, 2000), NULL), 1000,
                        "too_large", 413);
    /* an overlong parameter is refused before decoding */
    big[big_len - 1] = '\0';
    memset(big, 'A', big_len - 1);
    assert_decode_error(apr_pstrcat(pool, "SAMLRequest=", big, NULL), 0,
                        "too_large", 413);
}

/* ---- the encodings underneath (core/b64.h) --------------------------- */

static void test_base64(void **state)
{
    /* RFC 4648 section 10 vectors */
    static const char *plain[] = { "", "f", "fo", "foo", "foob", "fooba",
                                   "foobar" };
    static const char *coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==",
                                   "Zm9vYmE=", "Zm9vYmFy" };
    static const char *bad[] = { "Zg=", "Zg===", "Z===", "Z", "Zm9vY",
                                 "Zm9v=Zg==", "Zg==Zg==", "Zm8=x", "Zm9v!",
                                 "Zm9v-_", "=", "Zm\x80v", NULL };
    unsigned char *out;
    apr_size_t out_len;
    btsso_error_t *e;
    size_t i;

    for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        assert_string_equal(btsso_b64_encode(pool, plain[i], strlen(plain[i])),
                            coded[i]);
        assert_null(btsso_b64_decode(pool, coded[i], strlen(coded[i]), &out,
                                     &out_len));
        assert_int_equal(out_len, strlen(plain[i]));
        assert_memory_equal(out, plain[i], out_len);
        assert_int_equal(out[out_len], '\0');
    }
    /* line breaks and indentation from XML text or PEM bodies */
    assert_null(btsso_b64_decode(pool, " Zm9v\r\n\tYmFy \n", 14, &out,
                                 &out_len));
    assert_int_equal(out_len, 6);
    assert_memory_equal(out, "foobar", 6);
    for (i = 0; bad[i] != NULL; i++) {
        e = btsso_b64_decode(pool, bad[i], strlen(bad[i]), &out, &out_len);
        if (e == NULL) {
            fail_msg("decoded invalid base64 '%s'", bad[i]);
        }
        assert_string_equal(e->code, "bad_base64");
        assert_int_equal(e->status, 400);
    }
}

/* The decoder against OpenSSL's, on random octets of every length up to
 * 600, with XML whitespace inserted anywhere (the four-octet fast path and
 * the one-octet path must agree wherever a quantum starts), and with one
 * octet spoiled (refused, whatever the position). */
static void test_base64_random(void **state)
{
    unsigned char plain[600], *out;
    char coded[2000], spaced[4000];
    apr_size_t out_len, len, n, j, k;
    unsigned int seed = 12345;
    btsso_error_t *e;

    for (len = 0; len <= sizeof(plain); len++) {
        const char *c;

        for (j = 0; j < len; j++) {
            plain[j] = (unsigned char)(rand_r(&seed) >> 7);
        }
        n = (apr_size_t)EVP_EncodeBlock((unsigned char *)coded, plain,
                                        (int)len);
        c = btsso_b64_encode(pool, plain, len);
        assert_int_equal(strlen(c), n);
        assert_memory_equal(c, coded, n);
        for (j = k = 0; j < n; j++) {
            if (rand_r(&seed) % 5 == 0) {
                spaced[k++] = " \t\r\n"[rand_r(&seed) % 4];
            }
            spaced[k++] = coded[j];
        }
        assert_null(btsso_b64_decode(pool, spaced, k, &out, &out_len));
        assert_int_equal(out_len, len);
        assert_memory_equal(out, plain, len);
        if (n > 0) {
            spaced[rand_r(&seed) % k] = "!-_.*\x80"[rand_r(&seed) % 6];
            e = btsso_b64_decode(pool, spaced, k, &out, &out_len);
            assert_non_null(e);
            assert_string_equal(e->code, "bad_base64");
        }
    }
}

static void test_percent_encoding(void **state)
{
    static const unsigned char bin[] = { 0x00, 0xff, ' ', '+', '/', '=' };
    char *out;
    apr_size_t out_len;

    assert_string_equal(btsso_pct_encode(pool, "AZaz09-._~", 10),
                        "AZaz09-._~");
    assert_string_equal(btsso_pct_encode(pool, "a b+c/d?e&f=g#h%", 16),
                        "a%20b%2Bc%2Fd%3Fe%26f%3Dg%23h%25");
    assert_string_equal(btsso_pct_encode(pool, bin, sizeof(bin)),
                        "%00%FF%20%2B%2F%3D");
    assert_null(btsso_pct_decode(pool, "a+b%2Bc%2fd%00e", 15, &out,
                                 &out_len));
    assert_int_equal(out_len, 9);
    assert_memory_equal(out, "a b+c/d\0e", 9);
    assert_non_null(btsso_pct_decode(pool, "abc%", 4, &out, &out_len));
    assert_non_null(btsso_pct_decode(pool, "abc%4", 5, &out, &out_len));
    assert_non_null(btsso_pct_decode(pool, "%4g", 3, &out, &out_len));
    assert_string_equal(btsso_pct_decode(pool, "%", 1, &out,
                                         &out_len)->code, "bad_encoding");
}

/* The decoding octet by octet, as it was before it went run by run: 1 and
 * the octets, or 0 for a malformed escape. */
static int pct_decode_reference(const char *s, size_t len, char *out,
                                size_t *out_len)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++) {
        if (s[i] == '%') {
            char hex[3] = { 0, 0, 0 };
            char *end;

            if (len - i < 3 || !isxdigit((unsigned char)s[i + 1])
                || !isxdigit((unsigned char)s[i + 2])) {
                return 0;
            }
            hex[0] = s[i + 1];
            hex[1] = s[i + 2];
            out[n++] = (char)strtol(hex, &end, 16);
            i += 2;
        }
        else {
            out[n++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    *out_len = n;
    return 1;
}

static void test_pct_decode_matches_reference(void **state)
{
    static const char alphabet[] = "aZ09+/=%%%+++2BfF3Dg\0";
    char in[96], want[96];
    unsigned int seed = 12345;
    int round;

    for (round = 0; round < 200000; round++) {
        size_t len, i, want_len = 0, out_len = 0;
        char *out = NULL;
        btsso_error_t *err;
        int ok;

        seed = seed * 1103515245u + 12345u;
        len = (seed >> 16) % sizeof(in);
        for (i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        ok = pct_decode_reference(in, len, want, &want_len);
        err = btsso_pct_decode(pool, in, len, &out, &out_len);
        if (!ok) {
            assert_non_null(err);
            assert_string_equal(err->code, "bad_encoding");
            continue;
        }
        assert_null(err);
        assert_int_equal(out_len, want_len);
        assert_memory_equal(out, want, want_len);
        assert_int_equal(out[out_len], '\0');
    }
}

static void test_deflate_inflate(void **state)
{
    static const char text[] = "<samlp:AuthnRequest ID=\"_1\"/>";
    unsigned char *d, *x, *garbage;
    apr_size_t dlen, xlen;
    btsso_error_t *e;

    assert_null(btsso_deflate_raw(pool, text, strlen(text), &d, &dlen));
    /* raw DEFLATE: no zlib header (0x78 ..) */
    assert_int_not_equal(d[0], 0x78);
    assert_null(btsso_inflate_raw(pool, d, dlen, 1000, 100, &x, &xlen));
    assert_int_equal(xlen, strlen(text));
    assert_string_equal((char *)x, text);

    /* exactly at the size bound is fine, one below is not */
    assert_null(btsso_inflate_raw(pool, d, dlen, strlen(text), 0, &x, &xlen));
    e = btsso_inflate_raw(pool, d, dlen, strlen(text) - 1, 0, &x, &xlen);
    assert_non_null(e);
    assert_string_equal(e->code, "too_large");
    assert_int_equal(e->status, 413);

    /* truncated stream */
    e = btsso_inflate_raw(pool, d, dlen - 2, 1000, 100, &x, &xlen);
    assert_non_null(e);
    assert_string_equal(e->code, "inflate_failed");
    assert_int_equal(e->status, 400);

    /* trailing garbage after the end of the stream */
    garbage = apr_palloc(pool, dlen + 3);
    memcpy(garbage, d, dlen);
    memcpy(garbage + dlen, "xyz", 3);
    e = btsso_inflate_raw(pool, garbage, dlen + 3, 1000, 100, &x, &xlen);
    assert_non_null(e);
    assert_string_equal(e->code, "inflate_failed");

    /* not DEFLATE at all */
    e = btsso_inflate_raw(pool, "\xff\xff\xff\xff", 4, 1000, 100, &x, &xlen);
    assert_non_null(e);
    assert_string_equal(e->code, "inflate_failed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authnreq_content),
        cmocka_unit_test(test_requested_authn_context),
        cmocka_unit_test(test_random_ids_differ),
        cmocka_unit_test(test_values_are_escaped),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_redirect_unsigned_roundtrip),
        cmocka_unit_test(test_redirect_joins_existing_query),
        cmocka_unit_test(test_redirect_signed_exact_octets),
        cmocka_unit_test(test_redirect_verify),
        cmocka_unit_test(test_redirect_ecdsa),
        cmocka_unit_test(test_redirect_encode_errors),
        cmocka_unit_test(test_logout_messages),
        cmocka_unit_test(test_schema_check_can_fail),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_base64_random),
        cmocka_unit_test(test_percent_encoding),
        cmocka_unit_test(test_pct_decode_matches_reference),
        cmocka_unit_test(test_deflate_inflate),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, setup, teardown);
}
