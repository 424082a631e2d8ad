/*
 * spmeta.c - SP metadata (md:EntityDescriptor with one SPSSODescriptor).
 */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <libxml/tree.h>

#include "saml/authnreq.h"
#include "saml/spmeta.h"

#define NS_MD  "urn:oasis:names:tc:SAML:2.0:metadata"
#define NS_DS  "http://www.w3.org/2000/09/xmldsig#"
#define PROTOCOL_SAML2 "urn:oasis:names:tc:SAML:2.0:protocol"
#define BINDING_REDIRECT "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
#define BINDING_POST "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
/* SAML core 8.3.6: an entityID is at most 1024 characters. */
#define ENTITY_ID_MAX 1024

static btsso_error_t *bad(apr_pool_t *p, const char *field, const char *why)
{
    return btsso_error_make(p, 500, "bad_metadata_params",
                            "The SP metadata cannot be built from this "
                            "configuration.", "%s %s", field, why);
}

static btsso_error_t *check_text(apr_pool_t *p, const char *field,
                                 const char *value, int required)
{
    if (value == NULL || *value == '\0') {
        return required ? bad(p, field, "is missing") : NULL;
    }
    if (!xmlCheckUTF8((const xmlChar *)value)) {
        return bad(p, field, "is not valid UTF-8");
    }
    return NULL;
}

static btsso_error_t *check_url(apr_pool_t *p, const char *field,
                                const char *url, int required)
{
    const char *s;

    if (url == NULL || *url == '\0') {
        return required ? bad(p, field, "is missing") : NULL;
    }
    if (strncasecmp(url, "https://", 8) != 0
        && strncasecmp(url, "http://", 7) != 0) {
        return bad(p, field, apr_psprintf(p, "'%s' is not an absolute "
                                          "http(s) URL", url));
    }
    for (s = url; *s != '\0'; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) {
            return bad(p, field, "holds a space, control or non-ASCII "
                       "character");
        }
    }
    return NULL;
}

static int is_contact_type(const char *s)
{
    static const char *types[] = {
        "technical", "support", "administrative", "billing", "other", NULL
    };
    int i;

    for (i = 0; types[i] != NULL; i++) {
        if (strcmp(types[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

static btsso_error_t *check_params(apr_pool_t *p, const btsso_spmeta_t *md)
{
    btsso_error_t *err;

    if ((err = check_text(p, "entityID", md->entity_id, 1)) != NULL
        || (err = check_url(p, "ACS URL", md->acs_url, 1)) != NULL
        || (err = check_url(p, "SLO URL", md->slo_url, 0)) != NULL
        || (err = check_text(p, "organization name", md->org_name, 0))
        || (err = check_text(p, "organization display name",
                             md->org_display_name, 0)) != NULL
        || (err = check_url(p, "organization URL", md->org_url, 0)) != NULL
        || (err = check_text(p, "contact name", md->contact_name, 0))
        || (err = check_text(p, "contact email", md->contact_email, 0))) {
        return err;
    }
    if (strlen(md->entity_id) > ENTITY_ID_MAX) {
        return bad(p, "entityID", "is longer than 1024 characters");
    }
    if (md->signing_next != NULL && md->signing_current == NULL) {
        return bad(p, "next signing certificate", "is set without a "
                   "current one");
    }
    if (md->authn_requests_signed && md->signing_current == NULL) {
        return bad(p, "AuthnRequestsSigned", "needs a signing certificate");
    }
    if ((md->org_name != NULL && *md->org_name != '\0')
        != (md->org_url != NULL && *md->org_url != '\0')) {
        return bad(p, "organization", "needs both a name and a URL");
    }
    if (md->org_display_name != NULL && *md->org_display_name != '\0'
        && (md->org_name == NULL || *md->org_name == '\0')) {
        return bad(p, "organization display name", "is set without a name");
    }
    if ((md->contact_type != NULL || md->contact_name != NULL)
        && (md->contact_email == NULL || *md->contact_email == '\0')) {
        return bad(p, "contact", "needs an email address");
    }
    if (md->contact_type != NULL && !is_contact_type(md->contact_type)) {
        return bad(p, "contact type", apr_psprintf(p, "'%s' is not one of "
                   "technical, support, administrative, billing, other",
                   md->contact_type));
    }
    return NULL;
}

static xmlNodePtr add(xmlNodePtr parent, xmlNsPtr ns, const char *name,
                      const char *text)
{
    return xmlNewTextChild(parent, ns, (const xmlChar *)name,
                           (const xmlChar *)text);
}

static void set_prop(xmlNodePtr node, const char *name, const char *value)
{
    xmlNewProp(node, (const xmlChar *)name, (const xmlChar *)value);
}

static xmlNodePtr add_key_descriptor(apr_pool_t *p, xmlNodePtr sso,
                                     xmlNsPtr md_ns, xmlNsPtr ds_ns,
                                     const char *use,
                                     const btsso_cert_t *cert)
{
    xmlNodePtr kd = add(sso, md_ns, "KeyDescriptor", NULL);
    xmlNodePtr ki = add(kd, ds_ns, "KeyInfo", NULL);
    xmlNodePtr x509 = add(ki, ds_ns, "X509Data", NULL);

    set_prop(kd, "use", use);
    add(x509, ds_ns, "X509Certificate", btsso_cert_b64(p, cert));
    return kd;
}

static void add_endpoint(xmlNodePtr sso, xmlNsPtr md_ns, const char *name,
                         const char *binding, const char *location)
{
    xmlNodePtr ep = add(sso, md_ns, name, NULL);

    set_prop(ep, "Binding", binding);
    set_prop(ep, "Location", location);
}

/* md:Organization children carry xml:lang. */
static void add_localized(xmlNodePtr parent, xmlNsPtr md_ns, const char *name,
                          const char *text)
{
    xmlNodePtr n = add(parent, md_ns, name, text);

    xmlNodeSetLang(n, (const xmlChar *)"en");
}

btsso_error_t *btsso_spmeta_build(apr_pool_t *p, const btsso_spmeta_t *md,
                                  const char **xml_out)
{
    static const char *enc_methods[] = {
        BTSSO_ENC_AES256_GCM, BTSSO_ENC_AES128_GCM, BTSSO_ENC_AES256_CBC,
        BTSSO_ENC_AES128_CBC, BTSSO_ENC_RSA_OAEP, NULL
    };
    static const char *nameid_formats[] = {
        BTSSO_NAMEID_EMAIL, BTSSO_NAMEID_UNSPECIFIED, BTSSO_NAMEID_PERSISTENT,
        NULL
    };
    btsso_error_t *err;
    xmlDocPtr doc;
    xmlNodePtr root, sso, kd, n;
    xmlNsPtr md_ns, ds_ns;
    xmlChar *buf = NULL;
    int len = 0, i;

    if ((err = check_params(p, md)) != NULL) {
        return err;
    }
    doc = xmlNewDoc((const xmlChar *)"1.0");
    root = xmlNewDocNode(doc, NULL, (const xmlChar *)"EntityDescriptor", NULL);
    xmlDocSetRootElement(doc, root);
    md_ns = xmlNewNs(root, (const xmlChar *)NS_MD, (const xmlChar *)"md");
    ds_ns = xmlNewNs(root, (const xmlChar *)NS_DS, (const xmlChar *)"ds");
    xmlSetNs(root, md_ns);
    set_prop(root, "entityID", md->entity_id);

    sso = add(root, md_ns, "SPSSODescriptor", NULL);
    set_prop(sso, "AuthnRequestsSigned",
             md->authn_requests_signed ? "true" : "false");
    set_prop(sso, "WantAssertionsSigned",
             md->want_assertions_signed ? "true" : "false");
    set_prop(sso, "protocolSupportEnumeration", PROTOCOL_SAML2);

    if (md->signing_current != NULL) {
        add_key_descriptor(p, sso, md_ns, ds_ns, "signing",
                           md->signing_current);
    }
    if (md->signing_next != NULL) {
        add_key_descriptor(p, sso, md_ns, ds_ns, "signing", md->signing_next);
    }
    if (md->encryption != NULL) {
        kd = add_key_descriptor(p, sso, md_ns, ds_ns, "encryption",
                                md->encryption);
        for (i = 0; enc_methods[i] != NULL; i++) {
            n = add(kd, md_ns, "EncryptionMethod", NULL);
            set_prop(n, "Algorithm", enc_methods[i]);
        }
    }
    /* /slo serves both bindings; Redirect first, as most IdPs take the
     * first one they support. */
    if (md->slo_url != NULL && *md->slo_url != '\0') {
        add_endpoint(sso, md_ns, "SingleLogoutService", BINDING_REDIRECT,
                     md->slo_url);
        add_endpoint(sso, md_ns, "SingleLogoutService", BINDING_POST,
                     md->slo_url);
    }
    for (i = 0; nameid_formats[i] != NULL; i++) {
        add(sso, md_ns, "NameIDFormat", nameid_formats[i]);
    }
    n = add(sso, md_ns, "AssertionConsumerService", NULL);
    set_prop(n, "Binding", BINDING_POST);
    set_prop(n, "Location", md->acs_url);
    set_prop(n, "index", "0");
    set_prop(n, "isDefault", "true");

    if (md->org_name != NULL && *md->org_name != '\0') {
        n = add(root, md_ns, "Organization", NULL);
        add_localized(n, md_ns, "OrganizationName", md->org_name);
        add_localized(n, md_ns, "OrganizationDisplayName",
                      md->org_display_name != NULL
                      && *md->org_display_name != '\0'
                      ? md->org_display_name : md->org_name);
        add_localized(n, md_ns, "OrganizationURL", md->org_url);
    }
    if (md->contact_email != NULL && *md->contact_email != '\0') {
        n = add(root, md_ns, "ContactPerson", NULL);
        set_prop(n, "contactType", md->contact_type != NULL
                 ? md->contact_type : "technical");
        if (md->contact_name != NULL && *md->contact_name != '\0') {
            add(n, md_ns, "GivenName", md->contact_name);
        }
        add(n, md_ns, "EmailAddress",
            strncmp(md->contact_email, "mailto:", 7) == 0
            ? md->contact_email
            : apr_pstrcat(p, "mailto:", md->contact_email, NULL));
    }

    xmlDocDumpFormatMemoryEnc(doc, &buf, &len, "UTF-8", 1);
    xmlFreeDoc(doc);
    if (buf == NULL) {
        return btsso_error_make(p, 500, "xml_failed", "Internal error while "
                                "building the SP metadata.",
                                "serializing the metadata failed");
    }
    *xml_out = apr_pstrmemdup(p, (const char *)buf, (apr_size_t)len);
    xmlFree(buf);
    return NULL;
}
