/*
 * test_spmeta.c - SP metadata: content, escaping, parameter errors, and
 * validity against the OASIS metadata schema (xmllint, offline through
 * t/fixtures/xsd/catalog.xml).
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
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "crypto/spkey.h"
#include "saml/authnreq.h"
#include "saml/spmeta.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif
#define SP TOP_SRCDIR "/t/fixtures/sp/"
#define METADATA_XSD "/usr/share/xml/opensaml/saml-schema-metadata-2.0.xsd"

static apr_pool_t *pool;
static const btsso_cert_t *cert_current, *cert_next;

static int setup(void **state)
{
    btsso_spkey_t *k;

    apr_pool_create(&pool, NULL);
    xmlInitParser();
    if (btsso_spkey_load(pool, SP "sp-current.key", SP "sp-current.crt",
                         &k) != NULL) {
        return -1;
    }
    cert_current = btsso_spkey_cert(k);
    if (btsso_spkey_load(pool, SP "sp-next.key", SP "sp-next.crt",
                         &k) != NULL) {
        return -1;
    }
    cert_next = btsso_spkey_cert(k);
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy(pool);
    xmlCleanupParser();
    return 0;
}

static int schema_check(const char *xml)
{
    char *path = apr_pstrdup(pool, "/tmp/btsso-spmeta-XXXXXX");
    int fd = mkstemp(path);
    const char *cmd;
    int rc;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, xml, strlen(xml)), (ssize_t)strlen(xml));
    close(fd);
    cmd = apr_psprintf(pool, "XML_CATALOG_FILES='%s' xmllint --nonet --noout "
                       "--schema '%s' '%s' >/dev/null 2>&1",
                       TOP_SRCDIR "/t/fixtures/xsd/catalog.xml", METADATA_XSD,
                       path);
    rc = system(cmd);
    unlink(path);
    return rc;
}

static btsso_spmeta_t full_params(void)
{
    btsso_spmeta_t md;

    memset(&md, 0, sizeof(md));
    md.entity_id = "https://portal.example.com/sso";
    md.acs_url = "https://portal.example.com/sso/acs";
    md.slo_url = "https://portal.example.com/sso/slo";
    md.signing_current = cert_current;
    md.signing_next = cert_next;
    md.encryption = cert_current;
    md.want_assertions_signed = 1;
    md.authn_requests_signed = 1;
    md.org_name = "Example & Co";
    md.org_url = "https://example.com/";
    md.contact_type = "support";
    md.contact_name = "Help Desk";
    md.contact_email = "help@example.com";
    return md;
}

/* XPath over the metadata with md: and ds: bound. */
typedef struct {
    xmlDocPtr doc;
    xmlXPathContextPtr ctx;
} md_doc_t;

static md_doc_t open_md(const char *xml)
{
    md_doc_t d;

    d.doc = xmlReadMemory(xml, (int)strlen(xml), "md.xml", NULL,
                          XML_PARSE_NONET);
    assert_non_null(d.doc);
    d.ctx = xmlXPathNewContext(d.doc);
    xmlXPathRegisterNs(d.ctx, (const xmlChar *)"md",
                       (const xmlChar *)"urn:oasis:names:tc:SAML:2.0:metadata");
    xmlXPathRegisterNs(d.ctx, (const xmlChar *)"ds",
                       (const xmlChar *)"http://www.w3.org/2000/09/xmldsig#");
    return d;
}

static void close_md(md_doc_t d)
{
    xmlXPathFreeContext(d.ctx);
    xmlFreeDoc(d.doc);
}

static int count(md_doc_t d, const char *expr)
{
    xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, d.ctx);
    int n;

    assert_non_null(o);
    n = o->nodesetval != NULL ? o->nodesetval->nodeNr : 0;
    xmlXPathFreeObject(o);
    return n;
}

static const char *string_of(md_doc_t d, const char *expr)
{
    char *full = apr_psprintf(pool, "string(%s)", expr);
    xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)full, d.ctx);
    const char *s;

    assert_non_null(o);
    s = apr_pstrdup(pool, (const char *)o->stringval);
    xmlXPathFreeObject(o);
    return s;
}

static void test_full_metadata(void **state)
{
    btsso_spmeta_t params = full_params();
    const char *xml = NULL;
    md_doc_t d;

    assert_null(btsso_spmeta_build(pool, &params, &xml));
    assert_true(strncmp(xml, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 38)
                == 0);
    assert_int_equal(schema_check(xml), 0);

    d = open_md(xml);
    assert_string_equal(string_of(d, "/md:EntityDescriptor/@entityID"),
                        "https://portal.example.com/sso");
    assert_int_equal(count(d, "/md:EntityDescriptor/md:SPSSODescriptor"), 1);
    assert_string_equal(string_of(d, "//md:SPSSODescriptor/"
                                     "@protocolSupportEnumeration"),
                        "urn:oasis:names:tc:SAML:2.0:protocol");
    assert_string_equal(string_of(d, "//md:SPSSODescriptor/"
                                     "@AuthnRequestsSigned"), "true");
    assert_string_equal(string_of(d, "//md:SPSSODescriptor/"
                                     "@WantAssertionsSigned"), "true");

    /* signing: current then next; encryption: current */
    assert_int_equal(count(d, "//md:KeyDescriptor[@use='signing']"), 2);
    assert_string_equal(string_of(d, "(//md:KeyDescriptor[@use='signing'])[1]"
                                     "/ds:KeyInfo/ds:X509Data/"
                                     "ds:X509Certificate"),
                        btsso_cert_b64(pool, cert_current));
    assert_string_equal(string_of(d, "(//md:KeyDescriptor[@use='signing'])[2]"
                                     "//ds:X509Certificate"),
                        btsso_cert_b64(pool, cert_next));
    assert_int_equal(count(d, "//md:KeyDescriptor[@use='encryption']"), 1);
    assert_string_equal(string_of(d, "//md:KeyDescriptor[@use='encryption']"
                                     "//ds:X509Certificate"),
                        btsso_cert_b64(pool, cert_current));
    assert_int_equal(count(d, "//md:KeyDescriptor[@use='encryption']/"
                              "md:EncryptionMethod"), 5);
    assert_string_equal(string_of(d, "(//md:EncryptionMethod)[1]/@Algorithm"),
                        BTSSO_ENC_AES256_GCM);
    assert_string_equal(string_of(d, "(//md:EncryptionMethod)[2]/@Algorithm"),
                        BTSSO_ENC_AES128_GCM);
    assert_string_equal(string_of(d, "(//md:EncryptionMethod)[3]/@Algorithm"),
                        BTSSO_ENC_AES256_CBC);
    assert_string_equal(string_of(d, "(//md:EncryptionMethod)[4]/@Algorithm"),
                        BTSSO_ENC_AES128_CBC);
    assert_string_equal(string_of(d, "(//md:EncryptionMethod)[5]/@Algorithm"),
                        BTSSO_ENC_RSA_OAEP);

    assert_int_equal(count(d, "//md:SingleLogoutService[@Binding='urn:oasis:"
                              "names:tc:SAML:2.0:bindings:HTTP-Redirect' and "
                              "@Location='https://portal.example.com/sso/"
                              "slo']"), 1);
    /* /slo serves HTTP-POST too, listed after Redirect */
    assert_int_equal(count(d, "//md:SingleLogoutService[@Binding='urn:oasis:"
                              "names:tc:SAML:2.0:bindings:HTTP-POST' and "
                              "@Location='https://portal.example.com/sso/"
                              "slo']"), 1);
    assert_int_equal(count(d, "//md:SingleLogoutService[1][@Binding='urn:"
                              "oasis:names:tc:SAML:2.0:bindings:HTTP-"
                              "Redirect']"), 1);
    assert_int_equal(count(d, "//md:NameIDFormat"), 3);
    assert_int_equal(count(d, "//md:NameIDFormat[.='" BTSSO_NAMEID_EMAIL
                              "']"), 1);
    assert_int_equal(count(d, "//md:NameIDFormat[.='"
                              BTSSO_NAMEID_UNSPECIFIED "']"), 1);
    assert_int_equal(count(d, "//md:NameIDFormat[.='" BTSSO_NAMEID_PERSISTENT
                              "']"), 1);
    assert_int_equal(count(d, "//md:AssertionConsumerService"), 1);
    assert_int_equal(count(d, "//md:AssertionConsumerService[@Binding='urn:"
                              "oasis:names:tc:SAML:2.0:bindings:HTTP-POST' "
                              "and @Location='https://portal.example.com/sso/"
                              "acs' and @index='0' and @isDefault='true']"),
                     1);

    assert_string_equal(string_of(d, "//md:Organization/md:OrganizationName"),
                        "Example & Co");
    assert_string_equal(string_of(d, "//md:Organization/"
                                     "md:OrganizationDisplayName"),
                        "Example & Co");
    assert_string_equal(string_of(d, "//md:OrganizationURL/@xml:lang"), "en");
    assert_string_equal(string_of(d, "//md:ContactPerson/@contactType"),
                        "support");
    assert_string_equal(string_of(d, "//md:ContactPerson/md:GivenName"),
                        "Help Desk");
    assert_string_equal(string_of(d, "//md:ContactPerson/md:EmailAddress"),
                        "mailto:help@example.com");
    close_md(d);
}

static void test_minimal_metadata(void **state)
{
    btsso_spmeta_t params;
    const char *xml;
    md_doc_t d;

    /* No SP key at all: unsigned AuthnRequests, no KeyDescriptor. */
    memset(&params, 0, sizeof(params));
    params.entity_id = "https://portal.example.com/sso/acct42";
    params.acs_url = "https://portal.example.com/sso/acs/acct42";
    assert_null(btsso_spmeta_build(pool, &params, &xml));
    assert_int_equal(schema_check(xml), 0);
    d = open_md(xml);
    assert_int_equal(count(d, "//md:KeyDescriptor"), 0);
    assert_int_equal(count(d, "//md:SingleLogoutService"), 0);
    assert_int_equal(count(d, "//md:Organization"), 0);
    assert_int_equal(count(d, "//md:ContactPerson"), 0);
    assert_string_equal(string_of(d, "//md:SPSSODescriptor/"
                                     "@AuthnRequestsSigned"), "false");
    assert_string_equal(string_of(d, "//md:SPSSODescriptor/"
                                     "@WantAssertionsSigned"), "false");
    close_md(d);

    /* Current signing key only, no encryption, contact without name. */
    params.signing_current = cert_current;
    params.authn_requests_signed = 1;
    params.contact_email = "mailto:ops@example.com";
    assert_null(btsso_spmeta_build(pool, &params, &xml));
    assert_int_equal(schema_check(xml), 0);
    d = open_md(xml);
    assert_int_equal(count(d, "//md:KeyDescriptor[@use='signing']"), 1);
    assert_int_equal(count(d, "//md:KeyDescriptor[@use='encryption']"), 0);
    assert_int_equal(count(d, "//md:EncryptionMethod"), 0);
    assert_string_equal(string_of(d, "//md:ContactPerson/@contactType"),
                        "technical");
    assert_string_equal(string_of(d, "//md:EmailAddress"),
                        "mailto:ops@example.com");
    assert_int_equal(count(d, "//md:GivenName"), 0);
    close_md(d);
}

static void test_values_are_escaped(void **state)
{
    btsso_spmeta_t params = full_params();
    const char *xml;
    md_doc_t d;

    params.entity_id = "urn:x\"/><md:IDPSSODescriptor/><x a=\"";
    params.org_name = "<b>Evil</b> & \"Co\"";
    params.org_display_name = "Display ]]> name";
    assert_null(btsso_spmeta_build(pool, &params, &xml));
    assert_int_equal(schema_check(xml), 0);
    d = open_md(xml);
    assert_int_equal(count(d, "//md:IDPSSODescriptor"), 0);
    assert_string_equal(string_of(d, "/md:EntityDescriptor/@entityID"),
                        params.entity_id);
    assert_string_equal(string_of(d, "//md:OrganizationName"),
                        params.org_name);
    assert_string_equal(string_of(d, "//md:OrganizationDisplayName"),
                        params.org_display_name);
    close_md(d);
}

static void assert_param_error(const btsso_spmeta_t *params, const char *what)
{
    const char *xml = NULL;
    btsso_error_t *e = btsso_spmeta_build(pool, params, &xml);

    if (e == NULL) {
        fail_msg("built metadata, expected an error about %s", what);
    }
    assert_string_equal(e->code, "bad_metadata_params");
    assert_int_equal(e->status, 500);
    if (strstr(e->detail, what) == NULL) {
        fail_msg("detail '%s' does not name '%s'", e->detail, what);
    }
    assert_null(xml);
}

static void test_param_errors(void **state)
{
    btsso_spmeta_t m;
    char *long_id;

    m = full_params();
    m.entity_id = NULL;
    assert_param_error(&m, "entityID");
    m = full_params();
    m.entity_id = "";
    assert_param_error(&m, "entityID");
    m = full_params();
    long_id = apr_palloc(pool, 1100);
    memset(long_id, 'a', 1099);
    long_id[1099] = '\0';
    m.entity_id = long_id;
    assert_param_error(&m, "entityID");
    m = full_params();
    m.entity_id = "caf\xe9";
    assert_param_error(&m, "entityID");
    m = full_params();
    m.acs_url = NULL;
    assert_param_error(&m, "ACS URL");
    m = full_params();
    m.acs_url = "/sso/acs";
    assert_param_error(&m, "ACS URL");
    m = full_params();
    m.slo_url = "javascript:alert(1)";
    assert_param_error(&m, "SLO URL");
    m = full_params();
    m.slo_url = "https://portal.example.com/a b";
    assert_param_error(&m, "SLO URL");
    m = full_params();
    m.signing_current = NULL;
    assert_param_error(&m, "next signing certificate");
    m = full_params();
    m.signing_current = NULL;
    m.signing_next = NULL;
    assert_param_error(&m, "AuthnRequestsSigned");
    m = full_params();
    m.org_url = NULL;
    assert_param_error(&m, "organization");
    m = full_params();
    m.org_name = NULL;
    assert_param_error(&m, "organization");
    m = full_params();
    m.org_name = NULL;
    m.org_url = NULL;
    m.org_display_name = "Display";
    assert_param_error(&m, "organization display name");
    m = full_params();
    m.contact_email = NULL;
    assert_param_error(&m, "contact");
    m = full_params();
    m.contact_type = "sales";
    assert_param_error(&m, "contact type");
}

static void test_schema_check_can_fail(void **state)
{
    /* An SPSSODescriptor without AssertionConsumerService is invalid: the
     * check must say so, or the tests above prove nothing. */
    assert_int_not_equal(schema_check(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:"
        "metadata\" entityID=\"x\"><md:SPSSODescriptor "
        "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"
        "</md:EntityDescriptor>"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_metadata),
        cmocka_unit_test(test_minimal_metadata),
        cmocka_unit_test(test_values_are_escaped),
        cmocka_unit_test(test_param_errors),
        cmocka_unit_test(test_schema_check_can_fail),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, setup, teardown);
}
