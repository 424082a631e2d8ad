/*
 * metadata.c - reading an IdP's SAML 2.0 metadata into the facts the
 * administrator is shown and the SP needs (entityID, endpoints, signing
 * certificates, NameID formats, attributes).
 *
 * The input comes from an administrator's upload or from a URL, so it is
 * hostile until proven otherwise: its size is bounded before parsing, any
 * DOCTYPE is refused (no DTD means no entity expansion and no external
 * entity), and libxml2 runs without network access.
 */
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlIO.h>

#include "saml/metadata.h"

#define NS_MD   "urn:oasis:names:tc:SAML:2.0:metadata"
#define NS_SAML "urn:oasis:names:tc:SAML:2.0:assertion"
#define NS_DS   "http://www.w3.org/2000/09/xmldsig#"
#define NS_FED  "http://docs.oasis-open.org/wsfed/federation/200706"
#define NS_AUTH "http://docs.oasis-open.org/wsfed/authorization/200706"
#define SAML2_PROTOCOL "urn:oasis:names:tc:SAML:2.0:protocol"

/* BTSSOMetadataMaxSize's default; used when a caller passes 0 so that a
 * parse is never unbounded. */
#define DEFAULT_MAX_SIZE (1024 * 1024)

/* ---- libxml2 set-up -------------------------------------------------------- */

static pthread_once_t xml_init_once = PTHREAD_ONCE_INIT;

static void xml_init_process(void)
{
    xmlInitParser();
    /* These are libxml2's defaults already; set them explicitly so that no
     * other library loaded into httpd can have turned entity substitution
     * or external DTD loading on for parsers that do not pass options. */
    xmlSubstituteEntitiesDefault(0);
    xmlLoadExtDtdDefaultValue = 0;
    xmlThrDefSubstituteEntitiesDefaultValue(0);
    xmlThrDefLoadExtDtdDefaultValue(0);
    /* Whatever parser in the process resolves an external entity, it does
     * not go to the network. */
    xmlSetExternalEntityLoader(xmlNoNetExternalEntityLoader);
}

void btsso_xml_init(void)
{
    pthread_once(&xml_init_once, xml_init_process);
}

/* ---- small DOM helpers ----------------------------------------------------- */

static int is_element(const xmlNode *n, const char *ns, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && n->ns != NULL
           && n->ns->href != NULL
           && strcmp((const char *)n->ns->href, ns) == 0
           && strcmp((const char *)n->name, name) == 0;
}

static const char *trim_dup(apr_pool_t *p, const char *s)
{
    const char *end;

    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
        s++;
    }
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'
                       || end[-1] == '\n')) {
        end--;
    }
    return apr_pstrmemdup(p, s, (apr_size_t)(end - s));
}

/* Unqualified attribute as a trimmed pool string, NULL when absent. */
static const char *attr_value(apr_pool_t *p, const xmlNode *n,
                              const char *name)
{
    xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
    const char *copy;

    if (v == NULL) {
        return NULL;
    }
    copy = trim_dup(p, (const char *)v);
    xmlFree(v);
    return copy;
}

/* Text content, trimmed; "" when empty. */
static const char *text_value(apr_pool_t *p, const xmlNode *n)
{
    xmlChar *v = xmlNodeGetContent(n);
    const char *copy;

    if (v == NULL) {
        return "";
    }
    copy = trim_dup(p, (const char *)v);
    xmlFree(v);
    return copy;
}

static int has_token(const char *list, const char *token)
{
    apr_size_t tlen = strlen(token);
    const char *s = list;

    while (s != NULL && *s != '\0') {
        apr_size_t n;

        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
            s++;
        }
        n = strcspn(s, " \t\r\n");
        if (n == tlen && strncmp(s, token, n) == 0) {
            return 1;
        }
        s += n;
    }
    return 0;
}

static int is_true(const char *v)
{
    return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* ---- parsing ---------------------------------------------------------------- */

/* libxml2 errors are read from the parser context; nothing is printed. */
static void quiet_xml_error(void *user, xmlErrorPtr error)
{
}

typedef struct parse_guard_t {
    int doctype_seen;
} parse_guard_t;

/*
 * SAX hook called when the parser meets "<!DOCTYPE", before any of the
 * internal subset is read: stop right there, so no entity is ever declared,
 * whatever the document's encoding (the byte scan below sees only ASCII
 * compatible encodings).
 */
static void refuse_doctype(void *ctx, const xmlChar *name,
                           const xmlChar *external_id,
                           const xmlChar *system_id)
{
    xmlParserCtxtPtr ctxt = ctx;
    parse_guard_t *guard = ctxt->_private;

    guard->doctype_seen = 1;
    xmlStopParser(ctxt);
}

/* Also matches inside a comment or CDATA section: refusing such a rare
 * document is the safe side of the line. */
static int contains_doctype(const char *xml, apr_size_t len)
{
    static const char marker[] = "<!DOCTYPE";
    static const char entity[] = "<!ENTITY";
    apr_size_t i;

    for (i = 0; i + sizeof(entity) - 1 <= len; i++) {
        if (xml[i] != '<' || i + 1 >= len || xml[i + 1] != '!') {
            continue;
        }
        if ((i + sizeof(marker) - 1 <= len
             && memcmp(xml + i, marker, sizeof(marker) - 1) == 0)
            || memcmp(xml + i, entity, sizeof(entity) - 1) == 0) {
            return 1;
        }
    }
    return 0;
}

static int is_blank(const char *xml, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (xml[i] != ' ' && xml[i] != '\t' && xml[i] != '\r'
            && xml[i] != '\n') {
            return 0;
        }
    }
    return 1;
}

static btsso_error_t *err_dtd(apr_pool_t *p, const char *how)
{
    return btsso_error_make(p, 400, "dtd_forbidden",
                            "The metadata contains a DOCTYPE declaration, "
                            "which is not allowed.",
                            "DOCTYPE/ENTITY declarations are refused (%s)",
                            how);
}

/* ---- entity selection -------------------------------------------------------- */

static const xmlNode *saml2_idp_descriptor(const xmlNode *entity)
{
    const xmlNode *c;

    for (c = entity->children; c != NULL; c = c->next) {
        if (is_element(c, NS_MD, "IDPSSODescriptor")) {
            xmlChar *protocols = xmlGetNoNsProp(c, (const xmlChar *)
                                                "protocolSupportEnumeration");
            int saml2 = protocols != NULL
                        && has_token((const char *)protocols, SAML2_PROTOCOL);

            xmlFree(protocols);
            if (saml2) {
                return c;
            }
        }
    }
    return NULL;
}

/* Every EntityDescriptor, in document order, through nested
 * EntitiesDescriptors (libxml2 bounds the nesting depth). */
static void collect_entities(const xmlNode *node, apr_array_header_t *out)
{
    const xmlNode *c;

    if (is_element(node, NS_MD, "EntityDescriptor")) {
        APR_ARRAY_PUSH(out, const xmlNode *) = node;
        return;
    }
    for (c = node->children; c != NULL; c = c->next) {
        if (is_element(c, NS_MD, "EntityDescriptor")
            || is_element(c, NS_MD, "EntitiesDescriptor")) {
            collect_entities(c, out);
        }
    }
}

static btsso_error_t *choose_entity(apr_pool_t *p, const xmlNode *root,
                                    const char *wanted,
                                    const xmlNode **entity_out,
                                    const char **entity_id_out)
{
    apr_array_header_t *entities = apr_array_make(p, 4, sizeof(xmlNode *));
    apr_array_header_t *idp_ids = apr_array_make(p, 4, sizeof(char *));
    const xmlNode *only_idp = NULL;
    const char *only_idp_id = NULL;
    int i;

    collect_entities(root, entities);

    for (i = 0; i < entities->nelts; i++) {
        const xmlNode *e = APR_ARRAY_IDX(entities, i, const xmlNode *);
        const char *id = attr_value(p, e, "entityID");
        int idp = saml2_idp_descriptor(e) != NULL;

        if (id == NULL || *id == '\0') {
            /* An entity nobody could address is fatal when it is the whole
             * document or an IdP; a nameless SP in an aggregate is not
             * ours to judge. */
            if (e == root || idp) {
                return btsso_error_make(p, 422, "no_entity_id",
                    "The metadata has no entityID.",
                    "EntityDescriptor #%d (line %ld) has no entityID "
                    "attribute", i + 1, xmlGetLineNo(e));
            }
            continue;
        }
        if (wanted != NULL) {
            if (strcmp(id, wanted) == 0) {
                if (!idp) {
                    return btsso_error_make(p, 422, "not_idp",
                        "The metadata does not describe a SAML 2.0 "
                        "identity provider.",
                        "entity %s has no IDPSSODescriptor supporting %s",
                        id, SAML2_PROTOCOL);
                }
                *entity_out = e;
                *entity_id_out = id;
                return NULL;
            }
            continue;
        }
        if (idp) {
            APR_ARRAY_PUSH(idp_ids, const char *) = id;
            only_idp = e;
            only_idp_id = id;
        }
    }

    if (wanted != NULL) {
        return btsso_error_make(p, 422, "entity_not_found",
            "The chosen entityID is not in the metadata.",
            "no EntityDescriptor with entityID %s among %d entities",
            wanted, entities->nelts);
    }
    if (idp_ids->nelts == 0) {
        return btsso_error_make(p, 422, "not_idp",
            "The metadata does not describe a SAML 2.0 identity provider.",
            "none of the %d entities has an IDPSSODescriptor supporting %s "
            "(SP metadata, or a SAML 1.1-only IdP?)",
            entities->nelts, SAML2_PROTOCOL);
    }
    if (idp_ids->nelts > 1) {
        return btsso_error_make(p, 422, "ambiguous_entity",
            "The metadata describes several identity providers; choose one "
            "by its entityID.",
            "%d IdP entities: %s", idp_ids->nelts,
            apr_array_pstrcat(p, idp_ids, ' '));
    }
    *entity_out = only_idp;
    *entity_id_out = only_idp_id;
    return NULL;
}

/* ---- facts of the chosen entity ----------------------------------------------- */

/* Endpoints are where browsers get sent: only absolute http(s) URLs. */
static int is_http_url(const char *s)
{
    return s != NULL
           && ((strncasecmp(s, "https://", 8) == 0 && s[8] != '\0')
               || (strncasecmp(s, "http://", 7) == 0 && s[7] != '\0'));
}

static void collect_endpoints(apr_pool_t *p, const xmlNode *idpsso,
                              const char *element, apr_array_header_t *out)
{
    const xmlNode *c;

    for (c = idpsso->children; c != NULL; c = c->next) {
        btsso_endpoint_t *ep;
        const char *binding;
        const char *location;
        const char *response_location;

        if (!is_element(c, NS_MD, element)) {
            continue;
        }
        binding = attr_value(p, c, "Binding");
        location = attr_value(p, c, "Location");
        response_location = attr_value(p, c, "ResponseLocation");
        /* Binding and Location are required by the schema, and a browser
         * is only ever sent to an http(s) URL (never "javascript:" or
         * "data:"); an endpoint failing that cannot be used, so it is
         * left out rather than shown or followed. */
        if (binding == NULL || *binding == '\0' || !is_http_url(location)
            || (response_location != NULL
                && !is_http_url(response_location))) {
            continue;
        }
        ep = apr_array_push(out);
        ep->binding = binding;
        ep->location = location;
        ep->response_location = response_location;
    }
}

static btsso_error_t *collect_signing_certs(apr_pool_t *p,
                                            const xmlNode *idpsso,
                                            apr_array_header_t *out)
{
    apr_hash_t *seen = apr_hash_make(p);
    const xmlNode *kd;
    int kd_index = 0;

    for (kd = idpsso->children; kd != NULL; kd = kd->next) {
        const xmlNode *keyinfo;
        const char *use;
        int cert_index = 0;

        if (!is_element(kd, NS_MD, "KeyDescriptor")) {
            continue;
        }
        kd_index++;
        use = attr_value(p, kd, "use");
        /* No use attribute means the key serves both purposes. */
        if (use != NULL && strcmp(use, "signing") != 0) {
            continue;
        }
        for (keyinfo = kd->children; keyinfo != NULL;
             keyinfo = keyinfo->next) {
            const xmlNode *x509data;

            if (!is_element(keyinfo, NS_DS, "KeyInfo")) {
                continue;
            }
            for (x509data = keyinfo->children; x509data != NULL;
                 x509data = x509data->next) {
                const xmlNode *xc;

                if (!is_element(x509data, NS_DS, "X509Data")) {
                    continue;
                }
                for (xc = x509data->children; xc != NULL; xc = xc->next) {
                    btsso_cert_t *cert = NULL;
                    btsso_error_t *err;

                    if (!is_element(xc, NS_DS, "X509Certificate")) {
                        continue;
                    }
                    cert_index++;
                    err = btsso_cert_parse_b64(p, text_value(p, xc), &cert);
                    if (err != NULL) {
                        return btsso_error_make(p, 422, "bad_certificate",
                            "A signing certificate in the metadata could "
                            "not be read.",
                            "KeyDescriptor #%d (use=%s, line %ld) of the "
                            "IDPSSODescriptor, X509Certificate #%d: %s",
                            kd_index, use != NULL ? use : "(none)",
                            xmlGetLineNo(kd), cert_index,
                            err->detail != NULL ? err->detail
                                                : err->message);
                    }
                    if (apr_hash_get(seen, cert->sha256,
                                     APR_HASH_KEY_STRING) == NULL) {
                        apr_hash_set(seen, cert->sha256, APR_HASH_KEY_STRING,
                                     cert);
                        APR_ARRAY_PUSH(out, btsso_cert_t *) = cert;
                    }
                }
            }
        }
    }
    return NULL;
}

static void collect_nameid_formats(apr_pool_t *p, const xmlNode *idpsso,
                                   apr_array_header_t *out)
{
    apr_hash_t *seen = apr_hash_make(p);
    const xmlNode *c;

    for (c = idpsso->children; c != NULL; c = c->next) {
        const char *format;

        if (!is_element(c, NS_MD, "NameIDFormat")) {
            continue;
        }
        format = text_value(p, c);
        if (*format == '\0'
            || apr_hash_get(seen, format, APR_HASH_KEY_STRING) != NULL) {
            continue;
        }
        apr_hash_set(seen, format, APR_HASH_KEY_STRING, format);
        APR_ARRAY_PUSH(out, const char *) = format;
    }
}

typedef struct attr_list_t {
    apr_array_header_t *items;  /* btsso_md_attribute_t */
    apr_hash_t *by_name;        /* name -> index + 1 (as apr_size_t) */
} attr_list_t;

/*
 * The first mention of a name fixes its place in the list; a later mention
 * (ADFS lists each claim both as a WS-Fed ClaimType and as a
 * saml:Attribute) only fills in what the first one lacked.
 */
static void attr_add(apr_pool_t *p, attr_list_t *list, const char *name,
                     const char *name_format, const char *friendly_name)
{
    apr_size_t *slot;
    btsso_md_attribute_t *a;

    if (name == NULL || *name == '\0') {
        return;
    }
    slot = apr_hash_get(list->by_name, name, APR_HASH_KEY_STRING);
    if (slot != NULL) {
        a = &APR_ARRAY_IDX(list->items, (int)*slot, btsso_md_attribute_t);
        if (a->name_format == NULL) {
            a->name_format = name_format;
        }
        if (a->friendly_name == NULL) {
            a->friendly_name = friendly_name;
        }
        return;
    }
    slot = apr_palloc(p, sizeof(*slot));
    *slot = (apr_size_t)list->items->nelts;
    a = apr_array_push(list->items);
    a->name = name;
    a->name_format = name_format;
    a->friendly_name = friendly_name;
    apr_hash_set(list->by_name, name, APR_HASH_KEY_STRING, slot);
}

static void collect_saml_attributes(apr_pool_t *p, const xmlNode *parent,
                                    attr_list_t *list)
{
    const xmlNode *c;

    for (c = parent->children; c != NULL; c = c->next) {
        if (is_element(c, NS_SAML, "Attribute")) {
            const char *friendly = attr_value(p, c, "FriendlyName");

            attr_add(p, list, attr_value(p, c, "Name"),
                     attr_value(p, c, "NameFormat"),
                     friendly != NULL && *friendly != '\0' ? friendly : NULL);
        }
    }
}

/* ADFS and Entra ID list the claims they issue only as WS-Federation
 * fed:ClaimTypesOffered of a RoleDescriptor; those claim URIs are the
 * attribute names their SAML assertions carry. */
static void collect_claims_offered(apr_pool_t *p, const xmlNode *role,
                                   attr_list_t *list)
{
    const xmlNode *offered;

    for (offered = role->children; offered != NULL;
         offered = offered->next) {
        const xmlNode *ct;

        if (!is_element(offered, NS_FED, "ClaimTypesOffered")) {
            continue;
        }
        for (ct = offered->children; ct != NULL; ct = ct->next) {
            const xmlNode *d;
            const char *display = NULL;

            if (!is_element(ct, NS_AUTH, "ClaimType")) {
                continue;
            }
            for (d = ct->children; d != NULL; d = d->next) {
                if (is_element(d, NS_AUTH, "DisplayName")) {
                    display = text_value(p, d);
                    if (*display == '\0') {
                        display = NULL;
                    }
                    break;
                }
            }
            attr_add(p, list, attr_value(p, ct, "Uri"), NULL, display);
        }
    }
}

static void collect_attributes(apr_pool_t *p, const xmlNode *entity,
                               const xmlNode *idpsso,
                               apr_array_header_t *out)
{
    attr_list_t list;
    const xmlNode *c;

    list.items = out;
    list.by_name = apr_hash_make(p);
    for (c = entity->children; c != NULL; c = c->next) {
        if (c == idpsso) {
            collect_saml_attributes(p, c, &list);
        }
        else if (is_element(c, NS_MD, "AttributeAuthorityDescriptor")) {
            collect_saml_attributes(p, c, &list);
        }
        else if (is_element(c, NS_MD, "RoleDescriptor")) {
            collect_saml_attributes(p, c, &list);
            collect_claims_offered(p, c, &list);
        }
    }
}

static const char *organization_name(apr_pool_t *p, const xmlNode *entity)
{
    const xmlNode *org;
    const char *first = NULL;

    for (org = entity->children; org != NULL; org = org->next) {
        const xmlNode *c;

        if (!is_element(org, NS_MD, "Organization")) {
            continue;
        }
        for (c = org->children; c != NULL; c = c->next) {
            xmlChar *lang;
            int english;
            const char *name;

            if (!is_element(c, NS_MD, "OrganizationDisplayName")) {
                continue;
            }
            name = text_value(p, c);
            if (*name == '\0') {
                continue;
            }
            lang = xmlGetNsProp(c, (const xmlChar *)"lang",
                                XML_XML_NAMESPACE);
            english = lang != NULL
                      && (strcmp((const char *)lang, "en") == 0
                          || strncmp((const char *)lang, "en-", 3) == 0);
            xmlFree(lang);
            if (english) {
                return name;
            }
            if (first == NULL) {
                first = name;
            }
        }
    }
    return first;
}

/*
 * Whether a ds:Signature sits on the entity or on an EntitiesDescriptor
 * around it.  This is a fact shown to the administrator, not a trust
 * decision: the signature is NOT verified here.  The keys that verify
 * assertions are the ones the administrator uploads or confirms, and
 * trusting the metadata is the administrator's act of uploading it.
 */
static int has_signature(const xmlNode *entity)
{
    const xmlNode *n;

    for (n = entity; n != NULL && n->type == XML_ELEMENT_NODE;
         n = n->parent) {
        const xmlNode *c;

        for (c = n->children; c != NULL; c = c->next) {
            if (is_element(c, NS_DS, "Signature")) {
                return 1;
            }
        }
    }
    return 0;
}

static btsso_error_t *read_entity(apr_pool_t *p, const xmlNode *entity,
                                  const char *entity_id,
                                  btsso_idp_metadata_t **out)
{
    const xmlNode *idpsso = saml2_idp_descriptor(entity);
    btsso_idp_metadata_t *md;
    btsso_error_t *err;
    int usable_sso = 0;
    int i;

    md = apr_pcalloc(p, sizeof(*md));
    md->entity_id = entity_id;
    md->sso = apr_array_make(p, 4, sizeof(btsso_endpoint_t));
    md->slo = apr_array_make(p, 4, sizeof(btsso_endpoint_t));
    md->signing_certs = apr_array_make(p, 2, sizeof(btsso_cert_t *));
    md->nameid_formats = apr_array_make(p, 4, sizeof(const char *));
    md->attributes = apr_array_make(p, 8, sizeof(btsso_md_attribute_t));

    collect_endpoints(p, idpsso, "SingleSignOnService", md->sso);
    for (i = 0; i < md->sso->nelts; i++) {
        const btsso_endpoint_t *ep = &APR_ARRAY_IDX(md->sso, i,
                                                    btsso_endpoint_t);
        if (strcmp(ep->binding, BTSSO_BINDING_REDIRECT) == 0
            || strcmp(ep->binding, BTSSO_BINDING_POST) == 0) {
            usable_sso = 1;
        }
    }
    if (!usable_sso) {
        apr_array_header_t *bindings = apr_array_make(p, 4, sizeof(char *));

        for (i = 0; i < md->sso->nelts; i++) {
            APR_ARRAY_PUSH(bindings, const char *) =
                APR_ARRAY_IDX(md->sso, i, btsso_endpoint_t).binding;
        }
        return btsso_error_make(p, 422, "no_sso_endpoint",
            "The identity provider metadata has no single sign-on endpoint "
            "this service can use.",
            "entity %s: no SingleSignOnService with the HTTP-Redirect or "
            "HTTP-POST binding (found %d: %s)", entity_id, md->sso->nelts,
            md->sso->nelts > 0 ? apr_array_pstrcat(p, bindings, ' ')
                               : "none");
    }
    collect_endpoints(p, idpsso, "SingleLogoutService", md->slo);

    err = collect_signing_certs(p, idpsso, md->signing_certs);
    if (err != NULL) {
        return err;
    }
    collect_nameid_formats(p, idpsso, md->nameid_formats);
    collect_attributes(p, entity, idpsso, md->attributes);
    md->want_authn_requests_signed =
        is_true(attr_value(p, idpsso, "WantAuthnRequestsSigned"));
    md->is_signed = has_signature(entity);
    md->organization = organization_name(p, entity);
    *out = md;
    return NULL;
}

/* ---- public ------------------------------------------------------------------ */

btsso_error_t *btsso_metadata_parse(apr_pool_t *p, const char *xml,
                                    apr_size_t len, apr_size_t max_size,
                                    const char *entity_id,
                                    btsso_idp_metadata_t **out)
{
    btsso_error_t *err = NULL;
    xmlParserCtxtPtr ctxt = NULL;
    xmlDocPtr doc = NULL;
    const xmlNode *root;
    const xmlNode *entity = NULL;
    const char *chosen_id = NULL;
    parse_guard_t guard;
    xmlStructuredErrorFunc saved_func;
    void *saved_ctx;

    *out = NULL;
    if (max_size == 0) {
        max_size = DEFAULT_MAX_SIZE;
    }
    if (len > max_size || len > (apr_size_t)INT_MAX) {
        return btsso_error_make(p, 413, "too_large",
                                "The metadata is too large.",
                                "%" APR_SIZE_T_FMT " bytes, the limit is %"
                                APR_SIZE_T_FMT, len, max_size);
    }
    if (xml == NULL || len == 0 || is_blank(xml, len)) {
        return btsso_error_make(p, 400, "empty", "The metadata is empty.",
                                "%" APR_SIZE_T_FMT " bytes, no content",
                                len);
    }
    if (contains_doctype(xml, len)) {
        return err_dtd(p, "found in the text before parsing");
    }

    btsso_xml_init();
    ctxt = xmlNewParserCtxt();
    if (ctxt == NULL) {
        err = btsso_error_make(p, 500, "internal_error",
                               "The metadata could not be read.",
                               "xmlNewParserCtxt failed (out of memory)");
        goto done;
    }
    guard.doctype_seen = 0;
    ctxt->_private = &guard;
    ctxt->sax->internalSubset = refuse_doctype;
    ctxt->sax->externalSubset = refuse_doctype;

    /* NONET: nothing is fetched; no NOENT/DTDLOAD/DTDATTR: no entity is
     * substituted and no DTD read.  NOERROR/NOWARNING: the core never
     * writes to stderr; the error is taken from the context instead.
     * NOERROR does not cover errors libxml2 raises without the context
     * (an encoding declaration whose conversion fails on the bytes:
     * "input conversion failed ...", "I/O error : encoder error" went to
     * stderr, i.e. httpd's error log; found by t/fuzz/fuzz_metadata), so
     * this thread's structured handler is quiet for the call, as in
     * response.c and logout.c. */
    saved_func = xmlStructuredError;
    saved_ctx = xmlStructuredErrorContext;
    xmlSetStructuredErrorFunc(NULL, quiet_xml_error);
    doc = xmlCtxtReadMemory(ctxt, xml, (int)len, "metadata.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR
                            | XML_PARSE_NOWARNING);
    xmlSetStructuredErrorFunc(saved_ctx, saved_func);
    if (guard.doctype_seen) {
        err = err_dtd(p, "seen by the parser");
        goto done;
    }
    if (doc == NULL) {
        const xmlError *xe = xmlCtxtGetLastError(ctxt);

        err = btsso_error_make(p, 400, "not_xml",
                               "The metadata is not well-formed XML.",
                               "line %d: %s",
                               xe != NULL ? xe->line : 0,
                               xe != NULL && xe->message != NULL
                                   ? trim_dup(p, xe->message)
                                   : "parse error");
        goto done;
    }
    if (doc->intSubset != NULL || doc->extSubset != NULL) {
        err = err_dtd(p, "DTD attached to the parsed document");
        goto done;
    }

    root = xmlDocGetRootElement(doc);
    if (!is_element(root, NS_MD, "EntityDescriptor")
        && !is_element(root, NS_MD, "EntitiesDescriptor")) {
        err = btsso_error_make(p, 422, "not_metadata",
            "This is not SAML 2.0 metadata.",
            "root element is {%s}%s, expected EntityDescriptor or "
            "EntitiesDescriptor in %s",
            root != NULL && root->ns != NULL && root->ns->href != NULL
                ? (const char *)root->ns->href : "",
            root != NULL ? (const char *)root->name : "(none)", NS_MD);
        goto done;
    }

    err = choose_entity(p, root, entity_id, &entity, &chosen_id);
    if (err != NULL) {
        goto done;
    }
    err = read_entity(p, entity, chosen_id, out);

done:
    /* Every string handed out was copied into the pool above. */
    if (doc != NULL) {
        xmlFreeDoc(doc);
    }
    if (ctxt != NULL) {
        xmlFreeParserCtxt(ctxt);
    }
    return err;
}

const btsso_endpoint_t *btsso_metadata_endpoint(const apr_array_header_t *eps,
                                                const char *binding)
{
    int i;

    if (eps == NULL || binding == NULL) {
        return NULL;
    }
    for (i = 0; i < eps->nelts; i++) {
        const btsso_endpoint_t *ep = &APR_ARRAY_IDX(eps, i, btsso_endpoint_t);

        if (strcmp(ep->binding, binding) == 0) {
            return ep;
        }
    }
    return NULL;
}
