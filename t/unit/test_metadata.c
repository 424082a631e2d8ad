/*
 * test_metadata.c - IdP metadata parsing over fixtures shaped like the real
 * exports of ADFS, Entra ID, Okta, Google Workspace, Keycloak, Shibboleth
 * and SimpleSAMLphp, and over broken and hostile documents.
 *
 * Certificate fingerprints are the ones `openssl x509 -noout -fingerprint
 * -sha256` printed when the test keys were made (t/fixtures/keys/
 * FINGERPRINTS); the test turns them into lowercase hex itself.
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

#include <iconv.h>

#include <libxml/c14n.h>
#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/xmlIO.h>

#include "saml/metadata.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif
#define MDDIR TOP_SRCDIR "/t/fixtures/metadata/"
#define KEYS TOP_SRCDIR "/t/fixtures/keys/"

#define FP_ADFS_SIGNING "87:22:49:0F:94:9A:30:B9:F1:11:3B:F8:D5:48:80:3D:" \
    "13:C5:5C:2B:4E:9D:D9:EB:F9:30:15:2E:DB:63:00:F0"
#define FP_ADFS_ENCRYPTION "C4:CE:40:64:2B:0B:42:61:19:C7:44:E6:B7:6F:AD:" \
    "91:41:59:AC:FE:5B:BA:2A:6C:22:00:55:5D:30:E3:82:5F"
#define FP_ENTRA "D0:18:94:97:54:CD:5F:55:C2:F4:70:E2:44:38:B1:F4:3A:D6:82:" \
    "07:7C:61:2D:4C:6D:B4:CF:F7:DB:92:B7:93"
#define FP_OKTA "75:93:D7:34:42:27:57:E2:FC:2E:03:48:A0:62:58:F0:86:4F:27:B5:" \
    "45:58:A4:E5:6C:CD:A4:48:EB:D8:36:98"
#define FP_GOOGLE "42:BE:FF:02:28:B0:07:FE:50:07:8D:7E:A6:06:EC:E6:12:0B:34:" \
    "77:AE:00:A9:8F:15:1B:39:7F:F3:87:0A:92"
#define FP_KEYCLOAK "20:91:FD:E1:15:B5:67:53:48:E2:79:A5:50:CF:C0:E6:18:38:" \
    "8F:4E:86:91:60:95:F5:FD:6C:F0:7A:AE:1F:D3"
#define FP_SHIB1 "96:0F:23:D2:A7:CE:E2:34:5D:4C:42:04:CB:3D:D2:3B:D2:29:C5:" \
    "70:1F:64:1E:4C:47:5A:30:1D:D6:EF:F2:C5"
#define FP_SHIB2 "9A:8B:F4:CE:5F:3D:BE:F8:B9:8D:14:DD:30:98:98:E3:49:37:19:" \
    "A6:10:A7:A4:02:B5:68:4B:54:E0:4C:5F:68"
#define FP_SSP "9A:23:8A:B5:64:FC:C7:D8:68:D2:52:EA:36:F1:BF:67:8F:77:BD:50:" \
    "DC:93:0C:0C:3B:57:6E:32:E3:18:FA:44"
#define FP_AGG_IDP1 "E8:49:55:88:5A:96:8C:00:24:25:8F:EF:3C:27:36:D5:F2:2C:" \
    "8F:B9:0A:7E:4C:E9:DE:AC:C0:CE:7E:2C:79:4B"
#define FP_AGG_IDP2 "6A:91:2F:A2:38:05:92:9C:F4:69:CF:F0:EC:39:16:E6:71:00:" \
    "A0:F4:89:81:2F:93:24:32:EB:43:51:15:61:10"

#define REDIRECT BTSSO_BINDING_REDIRECT
#define POST BTSSO_BINDING_POST
#define SOAP "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
#define ARTIFACT "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact"
#define SIMPLESIGN "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST-SimpleSign"
#define NID_EMAIL "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
#define NID_UNSPEC "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
#define NID_PERSISTENT "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
#define NID_TRANSIENT "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
#define FMT_URI "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
#define CLAIMS "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
#define MSCLAIMS "http://schemas.microsoft.com/ws/2008/06/identity/claims/"
#define MAX_SIZE (1024 * 1024)

static apr_pool_t *pool;

static int setup(void **state)
{
    apr_pool_create(&pool, NULL);
    btsso_xml_init();
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy(pool);
    return 0;
}

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

static btsso_idp_metadata_t *parse_ok(const char *file, const char *entity)
{
    apr_size_t len;
    char *xml = slurp(apr_pstrcat(pool, MDDIR, file, NULL), &len);
    btsso_idp_metadata_t *md = NULL;
    btsso_error_t *e = btsso_metadata_parse(pool, xml, len, MAX_SIZE, entity,
                                            &md);

    if (e != NULL) {
        fail_msg("%s: %s", file, btsso_error_line(pool, e));
    }
    assert_non_null(md);
    return md;
}

static btsso_error_t *parse_buf_fails(const char *xml, apr_size_t len,
                                      apr_size_t max, const char *entity,
                                      const char *code, int status)
{
    btsso_idp_metadata_t *md = NULL;
    btsso_error_t *e = btsso_metadata_parse(pool, xml, len, max, entity, &md);

    if (e == NULL) {
        fail_msg("parse succeeded, expected %s", code);
    }
    assert_null(md);
    if (strcmp(e->code, code) != 0) {
        fail_msg("expected %s, got %s", code, btsso_error_line(pool, e));
    }
    assert_int_equal(e->status, status);
    assert_non_null(e->message);
    assert_true(*e->message != '\0');
    assert_non_null(e->detail);
    assert_true(*e->detail != '\0');
    return e;
}

static btsso_error_t *parse_file_fails(const char *file, const char *entity,
                                       const char *code, int status)
{
    apr_size_t len;
    char *xml = slurp(apr_pstrcat(pool, MDDIR, file, NULL), &len);

    return parse_buf_fails(xml, len, MAX_SIZE, entity, code, status);
}

static void assert_detail_has(const btsso_error_t *e, const char *part)
{
    if (strstr(e->detail, part) == NULL) {
        fail_msg("detail \"%s\" lacks \"%s\"", e->detail, part);
    }
}

static void assert_endpoint(const apr_array_header_t *eps, int i,
                            const char *binding, const char *location,
                            const char *response_location)
{
    const btsso_endpoint_t *ep;

    assert_true(i < eps->nelts);
    ep = &APR_ARRAY_IDX(eps, i, btsso_endpoint_t);
    assert_string_equal(ep->binding, binding);
    assert_string_equal(ep->location, location);
    if (response_location == NULL) {
        assert_null(ep->response_location);
    }
    else {
        assert_non_null(ep->response_location);
        assert_string_equal(ep->response_location, response_location);
    }
}

static const btsso_cert_t *cert_at(const btsso_idp_metadata_t *md, int i)
{
    assert_true(i < md->signing_certs->nelts);
    return APR_ARRAY_IDX(md->signing_certs, i, const btsso_cert_t *);
}

static void assert_nameids(const btsso_idp_metadata_t *md, int n, ...)
{
    va_list ap;
    int i;

    assert_int_equal(md->nameid_formats->nelts, n);
    va_start(ap, n);
    for (i = 0; i < n; i++) {
        assert_string_equal(APR_ARRAY_IDX(md->nameid_formats, i,
                                          const char *),
                            va_arg(ap, const char *));
    }
    va_end(ap);
}

/* name_format / friendly_name NULL in the call means "absent". */
static void assert_attr(const btsso_idp_metadata_t *md, int i,
                        const char *name, const char *name_format,
                        const char *friendly_name)
{
    const btsso_md_attribute_t *a;

    assert_true(i < md->attributes->nelts);
    a = &APR_ARRAY_IDX(md->attributes, i, btsso_md_attribute_t);
    assert_string_equal(a->name, name);
    if (name_format == NULL) {
        assert_null(a->name_format);
    }
    else {
        assert_non_null(a->name_format);
        assert_string_equal(a->name_format, name_format);
    }
    if (friendly_name == NULL) {
        assert_null(a->friendly_name);
    }
    else {
        assert_non_null(a->friendly_name);
        assert_string_equal(a->friendly_name, friendly_name);
    }
}

/* ---- real-world shapes --------------------------------------------------- */

static void test_adfs(void **state)
{
    btsso_idp_metadata_t *md = parse_ok("adfs.xml", NULL);
    const char *ls = "https://adfs.example.test/adfs/ls/";
    int i;

    assert_string_equal(md->entity_id,
                        "http://adfs.example.test/adfs/services/trust");
    assert_true(md->is_signed);
    assert_false(md->want_authn_requests_signed);
    assert_null(md->organization);
    /* the SPSSODescriptor's SLO and ACS are not the IdP's */
    assert_int_equal(md->sso->nelts, 2);
    assert_endpoint(md->sso, 0, REDIRECT, ls, NULL);
    assert_endpoint(md->sso, 1, POST, ls, NULL);
    assert_int_equal(md->slo->nelts, 2);
    assert_endpoint(md->slo, 0, REDIRECT, ls, NULL);
    assert_endpoint(md->slo, 1, POST, ls, NULL);
    /* the encryption KeyDescriptor is not a signing certificate */
    assert_int_equal(md->signing_certs->nelts, 1);
    assert_string_equal(cert_at(md, 0)->sha256, fp_hex(FP_ADFS_SIGNING));
    assert_string_equal(cert_at(md, 0)->subject,
                        "CN=ADFS Signing - adfs.example.test,O=ADFS Test,C=GB");
    for (i = 0; i < md->signing_certs->nelts; i++) {
        assert_string_not_equal(cert_at(md, i)->sha256,
                                fp_hex(FP_ADFS_ENCRYPTION));
    }
    assert_nameids(md, 3, NID_EMAIL, NID_PERSISTENT, NID_TRANSIENT);
    /* claims offered by the STS RoleDescriptor come first (document order),
     * the IDPSSODescriptor's saml:Attribute list adds NameFormat and Role;
     * the ApplicationService's ClaimTypesRequested is not an offer */
    assert_int_equal(md->attributes->nelts, 6);
    assert_attr(md, 0, CLAIMS "emailaddress", FMT_URI, "E-Mail Address");
    assert_attr(md, 1, CLAIMS "givenname", FMT_URI, "Given Name");
    assert_attr(md, 2, CLAIMS "name", FMT_URI, "Name");
    assert_attr(md, 3, CLAIMS "upn", FMT_URI, "UPN");
    assert_attr(md, 4, MSCLAIMS "groups", FMT_URI, "Group");
    assert_attr(md, 5, MSCLAIMS "role", FMT_URI, "Role");
}

static void test_entra(void **state)
{
    btsso_idp_metadata_t *md = parse_ok("entra.xml", NULL);
    const char *saml2 = "https://login.microsoftonline.com/"
                        "0b7e6f1c-2f7a-4c1e-9a3d-5d2c8e1f4a60/saml2";

    assert_string_equal(md->entity_id, "https://sts.windows.net/"
                        "0b7e6f1c-2f7a-4c1e-9a3d-5d2c8e1f4a60/");
    assert_true(md->is_signed);
    assert_int_equal(md->sso->nelts, 2);
    assert_endpoint(md->sso, 0, REDIRECT, saml2, NULL);
    assert_endpoint(md->sso, 1, POST, saml2, NULL);
    assert_int_equal(md->slo->nelts, 1);
    assert_endpoint(md->slo, 0, REDIRECT, saml2, NULL);
    assert_int_equal(md->signing_certs->nelts, 1);
    assert_string_equal(cert_at(md, 0)->sha256, fp_hex(FP_ENTRA));
    assert_string_equal(cert_at(md, 0)->subject,
                        "CN=Microsoft Azure Federated SSO Certificate Test");
    assert_nameids(md, 0);
    assert_int_equal(md->attributes->nelts, 9);
    assert_attr(md, 0, CLAIMS "name", NULL, "Name");
    assert_attr(md, 1, CLAIMS "nameidentifier", NULL, "Subject");
    assert_attr(md, 7, CLAIMS "emailaddress", NULL, "Email");
    assert_attr(md, 8, MSCLAIMS "groups", NULL, "Groups");
}

static void test_okta(void **state)
{
    btsso_idp_metadata_t *md = parse_ok("okta.xml", NULL);
    const char *sso = "https://example-test.okta.com/app/example-test_btsso_1/"
                      "exk1a2b3c4d5E6F7g8h9/sso/saml";

    assert_string_equal(md->entity_id,
                        "http://www.okta.com/exk1a2b3c4d5E6F7g8h9");
    assert_false(md->is_signed);
    assert_false(md->want_authn_requests_signed);
    assert_int_equal(md->sso->nelts, 2);
    assert_endpoint(md->sso, 0, POST, sso, NULL);
    assert_endpoint(md->sso, 1, REDIRECT, sso, NULL);
    assert_int_equal(md->slo->nelts, 0);
    assert_int_equal(md->signing_certs->nelts, 1);
    assert_string_equal(cert_at(md, 0)->sha256, fp_hex(FP_OKTA));
    assert_string_equal(cert_at(md, 0)->key_type, "RSA 2048");
    assert_nameids(md, 2, NID_EMAIL, NID_UNSPEC);
    assert_int_equal(md->attributes->nelts, 0);
    /* the binding the SP uses for AuthnRequests is found though listed 2nd */
    assert_ptr_equal(btsso_metadata_endpoint(md->sso, REDIRECT),
                     &APR_ARRAY_IDX(md->sso, 1, btsso_endpoint_t));
    assert_null(btsso_metadata_endpoint(md->slo, REDIRECT));
    assert_null(btsso_metadata_endpoint(md->sso, SOAP));
    assert_null(btsso_metadata_endpoint(NULL, REDIRECT));
    assert_null(btsso_metadata_endpoint(md->sso, NULL));
}

static void test_google(void **state)
{
    btsso_idp_metadata_t *md = parse_ok("google.xml", NULL);
    const char *sso = "https://accounts.google.com/o/saml2/idp?idpid=C01b2c3d4";

    assert_string_equal(md->entity_id,
                        "https://accounts.google.com/o/saml2?idpid=C01b2c3d4");
    assert_int_equal(md->sso->nelts, 2);
    assert_endpoint(md->sso, 0, REDIRECT, sso, NULL);
    assert_endpoint(md->sso, 1, POST, sso, NULL);
    assert_int_equal(md->slo->nelts, 0);
    /* KeyDescriptor without use="..." serves signing */
    assert_int_equal(md->signing_certs->nelts, 1);
    assert_string_equal(cert_at(md, 0)->sha256, fp_hex(FP_GOOGLE));
    assert_nameids(md, 1, NID_EMAIL);
}

static void test_keycloak(void **state)
{
    btsso_idp_metadata_t *md = parse_ok("keycloak.xml", NULL);
    const char *r = "https://keycloak.example.test/realms/btsso/protocol/saml";

    assert_string_equal(md->entity_id,
                        "https://keycloak.example.test/realms/btsso");
    assert_true(md->want_authn_requests_signed);
    assert_false(md->is_signed);
    assert_int_equal(md->sso->nelts, 4);
    assert_endpoint(md->sso, 0, POST, r, NULL);
    assert_endpoint(md->sso, 1, REDIRECT, r, NULL);
    assert_endpoint(md->sso, 2, SOAP, r, NULL);
    assert_endpoint(md->sso, 3, ARTIFACT, r, NULL);
    assert_int_equal(md->slo->nelts, 4);
    assert_endpoint(md->slo, 0, POST, r, NULL);
    assert_endpoint(md->slo, 1, REDIRECT, r,
                    "https://keycloak.example.test/realms/btsso/protocol/saml/"
                    "logout-response");
    assert_endpoint(md->slo, 2, ARTIFACT, r, NULL);
    assert_endpoint(md->slo, 3, SOAP, r, NULL);
    assert_int_equal(md->signing_certs->nelts, 1);
    assert_string_equal(cert_at(md, 0)->sha256, fp_hex(FP_KEYCLOAK));
    assert_string_equal(cert_at(md, 0)->subject, "CN=btsso-test");
    assert_nameids(md, 4, NID_PERSISTENT, NID_TRANSIENT, NID_UNSPEC,
                   NID_EMAIL);
    /* chosen by entityID inside the EntitiesDescriptor as well */
    md = parse_ok("keycloak.xml", "https://keycloak.example.test/realms/btsso");
    assert_string_equal(cert_at(md, 0)->sha256, fp_hex(FP_KEYCLOAK));
}

static void test_shibboleth(void **state)
{
    btsso_idp_metadata_t *md = parse_ok("shibboleth.xml", NULL);
    const char *h = "https://idp.shib.example.test/idp/profile/";
    const btsso_endpoint_t *redirect;

    assert_string_equal(md->entity_id,
                        "https://idp.shib.example.test/idp/shibboleth");
    assert_false(md->is_signed);
    /* the English display name, though the German one comes first */
    assert_string_equal(md->organization, "Example Test University");
    assert_int_equal(md->sso->nelts, 4);
    assert_endpoint(md->sso, 0, "urn:mace:shibboleth:1.0:profiles:AuthnRequest",
                    apr_pstrcat(pool, h, "Shibboleth/SSO", NULL), NULL);
    assert_endpoint(md->sso, 1, POST,
                    apr_pstrcat(pool, h, "SAML2/POST/SSO", NULL), NULL);
    assert_endpoint(md->sso, 2, SIMPLESIGN,
                    apr_pstrcat(pool, h, "SAML2/POST-SimpleSign/SSO", NULL),
                    NULL);
    redirect = btsso_metadata_endpoint(md->sso, REDIRECT);
    assert_non_null(redirect);
    assert_string_equal(redirect->location,
                        apr_pstrcat(pool, h, "SAML2/Redirect/SSO", NULL));
    assert_int_equal(md->slo->nelts, 4);
    assert_endpoint(md->slo, 0, REDIRECT,
                    apr_pstrcat(pool, h, "SAML2/Redirect/SLO", NULL), NULL);
    assert_endpoint(md->slo, 3, SOAP, "https://idp.shib.example.test:8443/"
                    "idp/profile/SAML2/SOAP/SLO", NULL);
    /* two signing certificates (rollover), the encryption one left out */
    assert_int_equal(md->signing_certs->nelts, 2);
    assert_string_equal(cert_at(md, 0)->sha256, fp_hex(FP_SHIB1));
    assert_string_equal(cert_at(md, 1)->sha256, fp_hex(FP_SHIB2));
    assert_string_equal(cert_at(md, 0)->key_type, "RSA 2048");
    assert_string_equal(cert_at(md, 1)->key_type, "RSA 3072");
    assert_string_equal(cert_at(md, 1)->subject, "CN=idp.shib.example.test");
    assert_nameids(md, 2, NID_TRANSIENT, NID_PERSISTENT);
    /* the AttributeAuthorityDescriptor's attributes */
    assert_int_equal(md->attributes->nelts, 3);
    assert_attr(md, 0, "urn:oid:1.3.6.1.4.1.5923.1.1.1.6", FMT_URI,
                "eduPersonPrincipalName");
    assert_attr(md, 1, "urn:oid:0.9.2342.19200300.100.1.3", FMT_URI, "mail");
    assert_attr(md, 2, "urn:oid:2.16.840.1.113730.3.1.241", FMT_URI,
                "displayName");
}

static void test_simplesamlphp(void **state)
{
    btsso_idp_metadata_t *md = parse_ok("simplesamlphp.xml", NULL);
    const char *h = "https://ssp.example.test/simplesaml/saml2/idp/";

    assert_string_equal(md->entity_id, apr_pstrcat(pool, h, "metadata.php",
                                                   NULL));
    assert_string_equal(md->organization, "SimpleSAMLphp Test IdP");
    assert_int_equal(md->sso->nelts, 1);
    assert_endpoint(md->sso, 0, REDIRECT,
                    apr_pstrcat(pool, h, "SSOService.php", NULL), NULL);
    assert_int_equal(md->slo->nelts, 1);
    assert_endpoint(md->slo, 0, REDIRECT,
                    apr_pstrcat(pool, h, "SingleLogoutService.php", NULL),
                    NULL);
    assert_int_equal(md->signing_certs->nelts, 1);
    assert_string_equal(cert_at(md, 0)->sha256, fp_hex(FP_SSP));
    assert_string_equal(cert_at(md, 0)->subject,
                        "CN=ssp.example.test,O=SimpleSAMLphp Test,C=NO");
    assert_nameids(md, 1, NID_TRANSIENT);
    /* "mail" is listed twice: once in the result */
    assert_int_equal(md->attributes->nelts, 4);
    assert_attr(md, 0, "urn:oid:0.9.2342.19200300.100.1.3", FMT_URI, "mail");
    assert_attr(md, 1, "urn:oid:2.5.4.42", FMT_URI, "givenName");
    assert_attr(md, 2, "urn:oid:2.5.4.4", FMT_URI, "sn");
    assert_attr(md, 3, "eduPersonAffiliation", NULL, NULL);
}

static void test_aggregate(void **state)
{
    btsso_idp_metadata_t *md;
    btsso_error_t *e;

    e = parse_file_fails("aggregate-two-idps.xml", NULL, "ambiguous_entity",
                         422);
    assert_detail_has(e, "https://idp1.agg.example.test/idp");
    assert_detail_has(e, "https://idp2.agg.example.test/idp");
    assert_null(strstr(e->detail, "sp.agg.example.test"));

    md = parse_ok("aggregate-two-idps.xml",
                  "https://idp1.agg.example.test/idp");
    assert_string_equal(md->entity_id, "https://idp1.agg.example.test/idp");
    assert_true(md->is_signed);     /* the signature is on the root */
    assert_endpoint(md->sso, 0, REDIRECT,
                    "https://idp1.agg.example.test/sso", NULL);
    /* same certificate in two KeyDescriptors: listed once */
    assert_int_equal(md->signing_certs->nelts, 1);
    assert_string_equal(cert_at(md, 0)->sha256, fp_hex(FP_AGG_IDP1));

    /* from the nested EntitiesDescriptor */
    md = parse_ok("aggregate-two-idps.xml",
                  "https://idp2.agg.example.test/idp");
    assert_string_equal(md->entity_id, "https://idp2.agg.example.test/idp");
    assert_true(md->is_signed);
    assert_int_equal(md->signing_certs->nelts, 1);
    assert_string_equal(cert_at(md, 0)->sha256, fp_hex(FP_AGG_IDP2));

    e = parse_file_fails("aggregate-two-idps.xml",
                         "https://sp.agg.example.test/shibboleth", "not_idp",
                         422);
    assert_detail_has(e, "https://sp.agg.example.test/shibboleth");
    e = parse_file_fails("aggregate-two-idps.xml",
                         "https://idp3.agg.example.test/idp",
                         "entity_not_found", 422);
    assert_detail_has(e, "https://idp3.agg.example.test/idp");
    /* no prefix or case-insensitive matching */
    parse_file_fails("aggregate-two-idps.xml",
                     "https://IDP1.agg.example.test/idp", "entity_not_found",
                     422);
}

static void test_entity_id_on_single_entity(void **state)
{
    btsso_idp_metadata_t *md = parse_ok(
        "okta.xml", "http://www.okta.com/exk1a2b3c4d5E6F7g8h9");

    assert_string_equal(md->entity_id,
                        "http://www.okta.com/exk1a2b3c4d5E6F7g8h9");
    parse_file_fails("okta.xml", "http://www.okta.com/other",
                     "entity_not_found", 422);
}

/* ---- broken and hostile ---------------------------------------------------- */

static void test_broken_fixtures(void **state)
{
    static const struct {
        const char *file;
        const char *code;
        int status;
        const char *detail_part;
    } cases[] = {
        { "not-xml.xml", "not_xml", 400, "line 1" },
        { "truncated.xml", "not_xml", 400, "line " },
        { "xxe.xml", "dtd_forbidden", 400, "before parsing" },
        { "billion-laughs.xml", "dtd_forbidden", 400, "before parsing" },
        { "xxe-utf16.xml", "dtd_forbidden", 400, "parser" },
        { "sp-only.xml", "not_idp", 422, "SAML:2.0:protocol" },
        { "saml11-only.xml", "not_idp", 422, "SAML:2.0:protocol" },
        { "bad-base64-cert.xml", "bad_certificate", 422,
          "KeyDescriptor #2 (use=signing" },
        { "missing-entityid.xml", "no_entity_id", 422, "entityID" },
        { "no-sso-endpoint.xml", "no_sso_endpoint", 422, SOAP },
        { "wrong-root.xml", "not_metadata", 422, "Response" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        btsso_error_t *e = parse_file_fails(cases[i].file, NULL,
                                            cases[i].code, cases[i].status);
        assert_detail_has(e, cases[i].detail_part);
    }
}

static void test_hostile_never_reads_files(void **state)
{
    apr_size_t len;
    char *xml = slurp(MDDIR "xxe.xml", &len);
    btsso_error_t *e = parse_buf_fails(xml, len, MAX_SIZE, NULL,
                                       "dtd_forbidden", 400);

    /* /etc/passwd content never reaches the error */
    assert_null(strstr(e->detail, "root:"));
}

static void test_inline_doctype_variants(void **state)
{
    static const char *docs[] = {
        /* DOCTYPE without any entity is refused as well */
        "<!DOCTYPE EntityDescriptor>"
        "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
        "entityID=\"x\"/>",
        /* external DTD */
        "<!DOCTYPE EntityDescriptor SYSTEM \"http://127.0.0.1:9/x.dtd\">"
        "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
        "entityID=\"x\"/>",
        /* parameter entities */
        "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY % p SYSTEM "
        "\"file:///etc/passwd\"> %p;]><d/>",
    };
    size_t i;

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        parse_buf_fails(docs[i], strlen(docs[i]), MAX_SIZE, NULL,
                        "dtd_forbidden", 400);
    }
}

static void test_empty(void **state)
{
    parse_buf_fails("", 0, MAX_SIZE, NULL, "empty", 400);
    parse_buf_fails(" \r\n\t ", 5, MAX_SIZE, NULL, "empty", 400);
    parse_buf_fails(NULL, 0, MAX_SIZE, NULL, "empty", 400);
}

static void test_size_bound(void **state)
{
    apr_size_t len;
    char *xml = slurp(MDDIR "okta.xml", &len);
    apr_size_t big_len = MAX_SIZE + 1;
    char *big = apr_palloc(pool, big_len);
    btsso_idp_metadata_t *md = NULL;
    btsso_error_t *e;

    /* exactly at the bound is fine, one byte over is not */
    assert_null(btsso_metadata_parse(pool, xml, len, len, NULL, &md));
    assert_non_null(md);
    parse_buf_fails(xml, len, len - 1, NULL, "too_large", 413);

    /* a valid document padded past the bound: refused before parsing */
    memset(big, ' ', big_len);
    memcpy(big, xml, len);
    e = parse_buf_fails(big, big_len, MAX_SIZE, NULL, "too_large", 413);
    assert_detail_has(e, "1048577");
    /* max_size 0 still means the 1 MiB default, never unbounded */
    parse_buf_fails(big, big_len, 0, NULL, "too_large", 413);
    md = NULL;
    assert_null(btsso_metadata_parse(pool, big, MAX_SIZE, 0, NULL, &md));
    assert_non_null(md);
}

static void test_wrong_namespace(void **state)
{
    static const char doc[] =
        "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:1.0:metadata\" "
        "entityID=\"https://x.example.test\"/>";
    static const char no_ns[] =
        "<EntityDescriptor entityID=\"https://x.example.test\"/>";
    btsso_error_t *e;

    e = parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL, "not_metadata",
                        422);
    assert_detail_has(e, "SAML:1.0:metadata");
    parse_buf_fails(no_ns, strlen(no_ns), MAX_SIZE, NULL, "not_metadata",
                    422);
}

static const char *idp_doc(const char *idpsso_inner)
{
    return apr_pstrcat(pool,
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\""
        " xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\""
        " entityID=\"https://inline.example.test/idp\">"
        "<md:IDPSSODescriptor protocolSupportEnumeration=\""
        "urn:oasis:names:tc:SAML:1.1:protocol "
        "urn:oasis:names:tc:SAML:2.0:protocol\">",
        idpsso_inner, "</md:IDPSSODescriptor></md:EntityDescriptor>", NULL);
}

static const char *key_descriptor(const char *use_attr, const char *b64)
{
    return apr_pstrcat(pool, "<md:KeyDescriptor", use_attr, ">"
                       "<ds:KeyInfo><ds:X509Data><ds:X509Certificate>", b64,
                       "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
                       "</md:KeyDescriptor>", NULL);
}

#define SSO_REDIRECT "<md:SingleSignOnService Binding=\"" REDIRECT \
                     "\" Location=\"https://inline.example.test/sso\"/>"

#define SSO_REDIRECT_UNPREFIXED "<SingleSignOnService Binding=\"" REDIRECT \
    "\" Location=\"https://inline.example.test/sso\"/>"

static void test_inline_cases(void **state)
{
    btsso_idp_metadata_t *md = NULL;
    btsso_error_t *e;
    const char *doc;

    /* no SingleSignOnService at all */
    doc = idp_doc("<md:NameIDFormat>x</md:NameIDFormat>");
    e = parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL, "no_sso_endpoint",
                        422);
    assert_detail_has(e, "found 0");

    /* an endpoint without Location cannot be used */
    doc = idp_doc("<md:SingleSignOnService Binding=\"" REDIRECT "\"/>");
    parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL, "no_sso_endpoint", 422);

    /* a broken certificate in an encryption KeyDescriptor is not used and
     * does not stop the import; no certificate at all is not an error
     * here (certificates can be added by hand) */
    doc = idp_doc(apr_pstrcat(pool, key_descriptor(" use=\"encryption\"",
                                                   "not base64!"),
                              SSO_REDIRECT, NULL));
    assert_null(btsso_metadata_parse(pool, doc, strlen(doc), MAX_SIZE, NULL,
                                     &md));
    assert_int_equal(md->signing_certs->nelts, 0);
    /* the protocol token is found in a list */
    assert_int_equal(md->sso->nelts, 1);

    /* valid base64, not a certificate: which KeyDescriptor, and why */
    doc = idp_doc(apr_pstrcat(pool, key_descriptor("", "aGVsbG8gd29ybGQ="),
                              SSO_REDIRECT, NULL));
    e = parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL, "bad_certificate",
                        422);
    assert_detail_has(e, "KeyDescriptor #1 (use=(none)");
    assert_detail_has(e, "not DER");

    /* browsers are only sent to http(s) endpoints */
    doc = idp_doc("<md:SingleSignOnService Binding=\"" REDIRECT "\" "
                  "Location=\"javascript:alert(1)\"/>"
                  "<md:SingleSignOnService Binding=\"" POST "\" "
                  "Location=\"data:text/html,x\"/>");
    parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL, "no_sso_endpoint", 422);
    doc = idp_doc(SSO_REDIRECT
                  "<md:SingleLogoutService Binding=\"" REDIRECT "\" "
                  "Location=\"https://inline.example.test/slo\" "
                  "ResponseLocation=\"javascript:alert(1)\"/>"
                  "<md:SingleLogoutService Binding=\"" POST "\" "
                  "Location=\"HTTPS://inline.example.test/slo\" "
                  "ResponseLocation=\"https://inline.example.test/slo-r\"/>");
    md = NULL;
    assert_null(btsso_metadata_parse(pool, doc, strlen(doc), MAX_SIZE, NULL,
                                     &md));
    assert_int_equal(md->slo->nelts, 1);
    assert_endpoint(md->slo, 0, POST, "HTTPS://inline.example.test/slo",
                    "https://inline.example.test/slo-r");

    /* in an aggregate, an SP without entityID is none of our business,
     * an IdP without one is an error */
    doc = "<EntitiesDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\">"
          "<EntityDescriptor><SPSSODescriptor protocolSupportEnumeration=\""
          "urn:oasis:names:tc:SAML:2.0:protocol\"/></EntityDescriptor>"
          "<EntityDescriptor entityID=\"https://idp.example.test\">"
          "<IDPSSODescriptor protocolSupportEnumeration=\""
          "urn:oasis:names:tc:SAML:2.0:protocol\">" SSO_REDIRECT_UNPREFIXED
          "</IDPSSODescriptor></EntityDescriptor></EntitiesDescriptor>";
    md = NULL;
    assert_null(btsso_metadata_parse(pool, doc, strlen(doc), MAX_SIZE, NULL,
                                     &md));
    assert_string_equal(md->entity_id, "https://idp.example.test");
    doc = "<EntitiesDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\">"
          "<EntityDescriptor><IDPSSODescriptor protocolSupportEnumeration=\""
          "urn:oasis:names:tc:SAML:2.0:protocol\">" SSO_REDIRECT_UNPREFIXED
          "</IDPSSODescriptor></EntityDescriptor></EntitiesDescriptor>";
    e = parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL, "no_entity_id",
                        422);
    assert_detail_has(e, "#1");

    /* a look-alike protocol URN is not SAML 2.0 */
    doc = "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
          "entityID=\"https://x.example.test\"><IDPSSODescriptor "
          "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocolX\">"
          "</IDPSSODescriptor></EntityDescriptor>";
    parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL, "not_idp", 422);

    /* an empty entityID is no entityID */
    doc = "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
          "entityID=\"  \"/>";
    parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL, "no_entity_id", 422);

    /* an undeclared entity reference is a well-formedness error */
    doc = "<EntityDescriptor xmlns=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
          "entityID=\"&xxe;\"/>";
    parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL, "not_xml", 400);
}

/* ---- any encoding in, UTF-8 out: the form that is stored ------------------ */

/* utf8 transcoded with iconv into `to` (e.g. "UTF-16LE"), after `prefix`
 * bytes (a BOM, or ""). */
static char *transcode(const char *to, const char *prefix,
                       apr_size_t prefix_len, const char *utf8,
                       apr_size_t *out_len)
{
    iconv_t cd = iconv_open(to, "UTF-8");
    apr_size_t in_left = strlen(utf8), cap = in_left * 4 + 16;
    char *out = apr_palloc(pool, cap + prefix_len);
    char *in = (char *)utf8, *w = out + prefix_len;
    size_t il = in_left, ol = cap;

    if (cd == (iconv_t)-1) {
        fail_msg("iconv_open %s", to);
    }
    memcpy(out, prefix, prefix_len);
    if (iconv(cd, &in, &il, &w, &ol) == (size_t)-1 || il != 0) {
        fail_msg("iconv to %s failed", to);
    }
    iconv_close(cd);
    *out_len = (apr_size_t)(w - out);
    return out;
}

/* The fixture without its XML declaration (which names its encoding). */
static const char *body_of(const char *xml)
{
    if (strncmp(xml, "<?xml", 5) == 0) {
        xml = strstr(xml, "?>") + 2;
    }
    while (*xml == '\n' || *xml == '\r' || *xml == ' ') {
        xml++;
    }
    return xml;
}

/* Exclusive canonical form, with comments, of a whole document: what a
 * signature's digest is computed over. */
static const char *c14n_of(const char *xml, apr_size_t len)
{
    xmlDocPtr doc = xmlReadMemory(xml, (int)len, "c14n.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR
                                  | XML_PARSE_NOWARNING);
    xmlChar *out = NULL;
    const char *copy;
    int n;

    assert_non_null(doc);
    n = xmlC14NDocDumpMemory(doc, NULL, XML_C14N_EXCLUSIVE_1_0, NULL, 1,
                             &out);
    assert_true(n > 0);
    copy = apr_pstrmemdup(pool, (const char *)out, (apr_size_t)n);
    xmlFree(out);
    xmlFreeDoc(doc);
    return copy;
}

static void assert_endpoints_equal(const apr_array_header_t *a,
                                   const apr_array_header_t *b)
{
    int i;

    assert_int_equal(a->nelts, b->nelts);
    for (i = 0; i < a->nelts; i++) {
        const btsso_endpoint_t *x = &APR_ARRAY_IDX(a, i, btsso_endpoint_t);
        assert_endpoint(b, i, x->binding, x->location, x->response_location);
    }
}

static void assert_same_facts(const btsso_idp_metadata_t *a,
                              const btsso_idp_metadata_t *b)
{
    int i;

    assert_string_equal(a->entity_id, b->entity_id);
    assert_endpoints_equal(a->sso, b->sso);
    assert_endpoints_equal(a->slo, b->slo);
    assert_int_equal(a->signing_certs->nelts, b->signing_certs->nelts);
    for (i = 0; i < a->signing_certs->nelts; i++) {
        assert_string_equal(cert_at(a, i)->sha256, cert_at(b, i)->sha256);
    }
    assert_int_equal(a->nameid_formats->nelts, b->nameid_formats->nelts);
    for (i = 0; i < a->nameid_formats->nelts; i++) {
        assert_string_equal(
            APR_ARRAY_IDX(a->nameid_formats, i, const char *),
            APR_ARRAY_IDX(b->nameid_formats, i, const char *));
    }
    assert_int_equal(a->attributes->nelts, b->attributes->nelts);
    for (i = 0; i < a->attributes->nelts; i++) {
        const btsso_md_attribute_t *x =
            &APR_ARRAY_IDX(a->attributes, i, btsso_md_attribute_t);
        assert_attr(b, i, x->name, x->name_format, x->friendly_name);
    }
    if (a->organization == NULL) {
        assert_null(b->organization);
    }
    else {
        assert_non_null(b->organization);
        assert_string_equal(a->organization, b->organization);
    }
    assert_int_equal(a->is_signed, b->is_signed);
    assert_int_equal(a->want_authn_requests_signed,
                     b->want_authn_requests_signed);
}

#define UTF8_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"

/*
 * Parse `in` (not UTF-8): the stored form is UTF-8 text that says so, has
 * no NUL, parses to the same facts as `reference` (and is then kept as it
 * is), and has the canonical form of the input, so a signature over the
 * input verifies over the stored form.
 */
static const btsso_idp_metadata_t *assert_converted(
    const char *what, const char *in, apr_size_t in_len,
    const btsso_idp_metadata_t *reference)
{
    btsso_idp_metadata_t *md = NULL, *again = NULL;
    btsso_error_t *e = btsso_metadata_parse(pool, in, in_len, MAX_SIZE, NULL,
                                            &md);

    if (e != NULL) {
        fail_msg("%s: %s", what, btsso_error_line(pool, e));
    }
    assert_non_null(md->xml);
    assert_true(md->xml != in);
    assert_int_equal(strlen(md->xml), md->xml_len);
    if (strncmp(md->xml, UTF8_DECL, strlen(UTF8_DECL)) != 0) {
        fail_msg("%s: stored form starts %.60s", what, md->xml);
    }
    assert_same_facts(reference, md);
    e = btsso_metadata_parse(pool, md->xml, md->xml_len, MAX_SIZE, NULL,
                             &again);
    if (e != NULL) {
        fail_msg("%s: stored form: %s", what, btsso_error_line(pool, e));
    }
    assert_same_facts(reference, again);
    /* UTF-8 now: kept byte for byte from here on */
    assert_ptr_equal(again->xml, md->xml);
    assert_int_equal(again->xml_len, md->xml_len);
    assert_string_equal(c14n_of(in, in_len),
                        c14n_of(md->xml, md->xml_len));
    return md;
}

static void test_utf8_stored_as_received(void **state)
{
    apr_size_t len;
    char *xml = slurp(MDDIR "okta.xml", &len);
    btsso_idp_metadata_t *md = NULL;
    char *bom = apr_pstrcat(pool, "\xEF\xBB\xBF", xml, NULL);

    /* the caller's bytes, not a copy and not re-serialized */
    assert_null(btsso_metadata_parse(pool, xml, len, MAX_SIZE, NULL, &md));
    assert_ptr_equal(md->xml, xml);
    assert_int_equal(md->xml_len, len);
    /* with a UTF-8 byte order mark: read back the same, so kept too */
    md = NULL;
    assert_null(btsso_metadata_parse(pool, bom, len + 3, MAX_SIZE, NULL,
                                     &md));
    assert_ptr_equal(md->xml, bom);
    assert_int_equal(md->xml_len, len + 3);
}

/* The base64 body of a PEM certificate of the fixtures. */
static const char *pem_b64(const char *name)
{
    apr_size_t len;
    char *pem = slurp(apr_pstrcat(pool, KEYS, name, NULL), &len);
    char *b = strstr(pem, "-----BEGIN CERTIFICATE-----");
    char *end, *w, *r;

    assert_non_null(b);
    b += strlen("-----BEGIN CERTIFICATE-----");
    end = strstr(b, "-----END CERTIFICATE-----");
    assert_non_null(end);
    *end = '\0';
    for (w = r = b; *r != '\0'; r++) {
        if (*r != '\n' && *r != '\r') {
            *w++ = *r;
        }
    }
    *w = '\0';
    return b;
}

/* Non-ASCII in attribute values and element content; a comment, CDATA and
 * characters only a character reference can carry through an attribute:
 * all of it is in the canonical form a signature covers. */
static const char *rich_doc(void)
{
    return apr_pstrcat(pool,
        "<!-- r\xC3\xA9sum\xC3\xA9 -->\n"
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\""
        " xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\""
        " xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\""
        " ID=\"_rich\" entityID=\"https://rich.example.test/idp\">\n"
        "  <md:IDPSSODescriptor protocolSupportEnumeration=\""
        "urn:oasis:names:tc:SAML:2.0:protocol\">\n",
        key_descriptor(" use=\"signing\"", pem_b64("okta.crt")),
        "    <md:NameIDFormat>" NID_EMAIL "</md:NameIDFormat>\n"
        "    " SSO_REDIRECT "\n"
        "    <saml:Attribute Name=\"urn:oid:2.5.4.42\" FriendlyName=\""
        "Pr\xC3\xA9nom\" NameFormat=\"" FMT_URI "\"/>\n"
        "    <saml:Attribute Name=\"x\" FriendlyName=\"gt&#62;apos&#39;"
        "lt&lt;amp&amp;quot&quot;\"/>\n"
        "  </md:IDPSSODescriptor>\n"
        "  <md:Organization><md:OrganizationName xml:lang=\"fr\">"
        "Soci\xC3\xA9t\xC3\xA9 <![CDATA[<G\xC3\xA9n\xC3\xA9rale>]]>"
        "</md:OrganizationName><md:OrganizationDisplayName xml:lang=\"en\">"
        "Soci\xC3\xA9t\xC3\xA9 G\xC3\xA9n\xC3\xA9rale &#x20AC;"
        "</md:OrganizationDisplayName></md:Organization>\r\n"
        "</md:EntityDescriptor>\n", NULL);
}

static void test_other_encodings_stored_as_utf8(void **state)
{
    static const struct {
        const char *what, *to, *prefix;
        apr_size_t prefix_len;
        const char *decl;   /* NULL: none */
    } cases[] = {
        /* what PowerShell's Out-File writes: a BOM, no declaration */
        { "UTF-16LE, BOM", "UTF-16LE", "\xFF\xFE", 2, NULL },
        { "UTF-16BE, BOM", "UTF-16BE", "\xFE\xFF", 2, NULL },
        { "UTF-16 declared, BOM", "UTF-16LE", "\xFF\xFE", 2,
          "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n" },
        { "UTF-16 declared, no BOM", "UTF-16BE", "", 0,
          "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n" },
        { "ISO-8859-1 declared", "ISO-8859-1", "", 0,
          "<?xml version='1.0' encoding='ISO-8859-1'?>\n" },
        { "windows-1252 declared", "WINDOWS-1252", "", 0,
          "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n" },
    };
    const char *rich = rich_doc();
    btsso_idp_metadata_t *reference = NULL;
    apr_size_t len;
    char *adfs = slurp(MDDIR "adfs.xml", &len);
    btsso_idp_metadata_t *adfs_ref = parse_ok("adfs.xml", NULL);
    btsso_error_t *e;
    size_t i;

    e = btsso_metadata_parse(pool, rich, strlen(rich), MAX_SIZE, NULL,
                             &reference);
    if (e != NULL) {
        fail_msg("rich: %s", btsso_error_line(pool, e));
    }
    assert_ptr_equal(reference->xml, rich);
    assert_string_equal(cert_at(reference, 0)->sha256, fp_hex(FP_OKTA));
    assert_string_equal(reference->organization,
                        "Soci\xC3\xA9t\xC3\xA9 G\xC3\xA9n\xC3\xA9rale "
                        "\xE2\x82\xAC");
    assert_attr(reference, 1, "x", NULL, "gt>apos'lt<amp&quot\"");
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *text = cases[i].decl != NULL
                           ? apr_pstrcat(pool, cases[i].decl, rich, NULL)
                           : rich;
        apr_size_t n;
        const char *in;
        const btsso_idp_metadata_t *md;

        if (strcmp(cases[i].to, "ISO-8859-1") == 0) {
            /* no euro sign in Latin-1: the same document with its
             * character reference left as a reference */
            text = apr_pstrcat(pool, cases[i].decl, rich, NULL);
            *strstr(text, "&#x20AC;") = '\0';
            text = apr_pstrcat(pool, text, "&#x20AC;",
                               strstr(rich, "&#x20AC;") + 8, NULL);
        }
        in = transcode(cases[i].to, cases[i].prefix, cases[i].prefix_len,
                       text, &n);
        md = assert_converted(cases[i].what, in, n, reference);
        assert_non_null(strstr(md->xml, "Pr\xC3\xA9nom"));
    }
    /* a real, signed export (ADFS) as PowerShell saves it */
    {
        apr_size_t n;
        const char *in = transcode("UTF-16LE", "\xFF\xFE", 2, body_of(adfs),
                                   &n);
        assert_converted("ADFS in UTF-16LE", in, n, adfs_ref);
    }
}

static void test_conversion_keeps_the_bounds(void **state)
{
    const char *rich = rich_doc();
    apr_size_t n, pad = 4000, i;
    char *many = apr_palloc(pool, pad * 2 + 1);
    const char *text, *in;
    btsso_idp_metadata_t *md = NULL;
    btsso_error_t *e;

    /* Latin-1 grows in UTF-8: what would not read back under the bound is
     * refused now, not found broken later */
    for (i = 0; i < pad; i++) {
        memcpy(many + 2 * i, "\xC3\xA9", 2);
    }
    many[pad * 2] = '\0';
    text = apr_pstrcat(pool, "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>",
                       "<!-- ", many, " -->", rich, NULL);
    *strstr(text, "&#x20AC;") = ' ';    /* keep it well-formed: no euro */
    in = transcode("ISO-8859-1", "", 0, text, &n);
    assert_null(btsso_metadata_parse(pool, in, n, n + pad + 100, NULL, &md));
    assert_true(md->xml_len > n + pad);
    e = parse_buf_fails(in, n, n + pad / 2, NULL, "too_large", 413);
    assert_detail_has(e, "once converted from ISO-8859-1 to UTF-8");

    /* the DOCTYPE scan sees only ASCII-compatible bytes; a "<!DOCTYPE" that
     * is harmless text in UTF-16 would be refused in the stored form */
    in = transcode("UTF-16LE", "\xFF\xFE", 2,
                   apr_pstrcat(pool, "<!-- <!DOCTYPE x> -->", rich, NULL),
                   &n);
    parse_buf_fails(in, n, MAX_SIZE, NULL, "dtd_forbidden", 400);
}

static void test_xml_init_settings(void **state)
{
    btsso_xml_init();
    btsso_xml_init();   /* idempotent */
    assert_int_equal(xmlSubstituteEntitiesDefaultValue, 0);
    assert_int_equal(xmlLoadExtDtdDefaultValue, 0);
    assert_ptr_equal(xmlGetExternalEntityLoader(),
                     xmlNoNetExternalEntityLoader);
}

/* ---- control characters and weak keys (issue 8, items 1 and 11a) ------- */

static const char *cert_body(const char *file)
{
    apr_size_t len;
    char *pem = slurp(apr_pstrcat(pool, TOP_SRCDIR "/t/fixtures/keys/", file,
                                  NULL), &len);
    char *b = strstr(pem, "-----BEGIN CERTIFICATE-----");
    char *e;

    assert_non_null(b);
    b += strlen("-----BEGIN CERTIFICATE-----");
    e = strstr(b, "-----END");
    assert_non_null(e);
    *e = '\0';
    return b;
}

static const char *inj_idp_doc(const char *entity, const char *cert_file,
                           const char *extra)
{
    return apr_psprintf(pool,
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:"
        "metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" "
        "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" "
        "entityID=\"%s\"><md:IDPSSODescriptor protocolSupportEnumeration="
        "\"urn:oasis:names:tc:SAML:2.0:protocol\"><md:KeyDescriptor "
        "use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>%s"
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        "%s<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:"
        "bindings:HTTP-Redirect\" Location=\"https://idp.example.test/sso\"/>"
        "</md:IDPSSODescriptor></md:EntityDescriptor>",
        entity, cert_body(cert_file), extra);
}

static void test_entity_id_control_characters(void **state)
{
    static const char *const bad[] = {
        "https://idp.example.test/x&#13;&#10;X-BTSSO-Account: victim",
        "https://idp.example.test/x&#10;y",
        "https://idp.example.test/&#9;x",
        "https://idp.example.test/x&#127;",
        "https://idp.example.test/x&#133;",
        "https://idp.example.test/x&#8232;",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *doc = inj_idp_doc(bad[i], "okta.crt", "");
        btsso_error_t *e = parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL,
                                           "bad_entity_id", 422);

        assert_null(strpbrk(e->detail, "\r\n"));
    }
    /* only the ends are trimmed, and only those are harmless */
    {
        const char *doc = inj_idp_doc("  https://idp.example.test/ok ",
                                  "okta.crt", "");
        btsso_idp_metadata_t *md = NULL;

        assert_null(btsso_metadata_parse(pool, doc, strlen(doc), MAX_SIZE,
                                         NULL, &md));
        assert_string_equal(md->entity_id, "https://idp.example.test/ok");
    }
}

static void test_control_characters_left_out(void **state)
{
    const char *doc = inj_idp_doc("https://idp.example.test/ok", "okta.crt",
        "<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:"
        "bindings:HTTP-Redirect\" Location=\"https://idp.example.test/slo"
        "&#13;&#10;Set-Cookie: x=1\"/>"
        "<md:NameIDFormat>urn:x&#10;y</md:NameIDFormat>"
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:"
        "emailAddress</md:NameIDFormat>"
        "<saml:Attribute Name=\"mail&#10;X-Evil\"/>"
        "<saml:Attribute Name=\"mail\"/>");
    btsso_idp_metadata_t *md = NULL;
    const btsso_md_attribute_t *a;

    assert_null(btsso_metadata_parse(pool, doc, strlen(doc), MAX_SIZE, NULL,
                                     &md));
    assert_int_equal(md->slo->nelts, 0);
    assert_int_equal(md->nameid_formats->nelts, 1);
    assert_int_equal(md->attributes->nelts, 1);
    a = &APR_ARRAY_IDX(md->attributes, 0, btsso_md_attribute_t);
    assert_string_equal(a->name, "mail");
}

static void test_weak_signing_key_refused(void **state)
{
    const char *doc = inj_idp_doc("https://idp.example.test/weak",
                              "weak-rsa1024.crt", "");
    btsso_error_t *e = parse_buf_fails(doc, strlen(doc), MAX_SIZE, NULL,
                                       "weak_key", 422);

    assert_detail_has(e, "KeyDescriptor #1");
    assert_detail_has(e, "RSA 1024");
    /* EC P-256 and RSA 3072 are fine */
    parse_ok("okta.xml", NULL);
    doc = inj_idp_doc("https://idp.example.test/ec", "ec-p256.crt", "");
    {
        btsso_idp_metadata_t *md = NULL;

        assert_null(btsso_metadata_parse(pool, doc, strlen(doc), MAX_SIZE,
                                         NULL, &md));
        assert_int_equal(md->signing_certs->nelts, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adfs),
        cmocka_unit_test(test_entra),
        cmocka_unit_test(test_okta),
        cmocka_unit_test(test_google),
        cmocka_unit_test(test_keycloak),
        cmocka_unit_test(test_shibboleth),
        cmocka_unit_test(test_simplesamlphp),
        cmocka_unit_test(test_aggregate),
        cmocka_unit_test(test_entity_id_on_single_entity),
        cmocka_unit_test(test_broken_fixtures),
        cmocka_unit_test(test_hostile_never_reads_files),
        cmocka_unit_test(test_inline_doctype_variants),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_size_bound),
        cmocka_unit_test(test_wrong_namespace),
        cmocka_unit_test(test_inline_cases),
        cmocka_unit_test(test_xml_init_settings),
        cmocka_unit_test(test_utf8_stored_as_received),
        cmocka_unit_test(test_other_encodings_stored_as_utf8),
        cmocka_unit_test(test_conversion_keeps_the_bounds),
        cmocka_unit_test(test_entity_id_control_characters),
        cmocka_unit_test(test_control_characters_left_out),
        cmocka_unit_test(test_weak_signing_key_refused),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, setup, teardown);
    xmlCleanupParser();
    apr_terminate();
    return rc;
}
