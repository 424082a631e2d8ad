/*
 * response.c - SAML 2.0 Response validation (see response.h for the rules).
 *
 * The error codes and their order are documented in response.h; the
 * user-facing message of each refusal is in the table `refusals` below.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/valid.h>
#include <libxml/globals.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/keys.h>
#include <xmlsec/keysdata.h>
#include <xmlsec/transforms.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlenc.h>
#include <xmlsec/crypto.h>
#include <xmlsec/openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "saml/response.h"
#include "saml/xmlparse.h"
#include "saml/xmldsig.h"
#include "core/b64.h"
#include "core/text.h"
#include "core/xstime.h"

#define NS_SAMLP "urn:oasis:names:tc:SAML:2.0:protocol"
#define NS_SAML  "urn:oasis:names:tc:SAML:2.0:assertion"
#define NS_DS    "http://www.w3.org/2000/09/xmldsig#"
#define NS_XENC  "http://www.w3.org/2001/04/xmlenc#"
#define NS_XENC11 "http://www.w3.org/2009/xmlenc11#"

#define STATUS_SUCCESS "urn:oasis:names:tc:SAML:2.0:status:Success"
#define CM_BEARER      "urn:oasis:names:tc:SAML:2.0:cm:bearer"
#define FMT_ENTITY     "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

#define ALG_EXC_C14N   "http://www.w3.org/2001/10/xml-exc-c14n#"
#define ALG_ENVELOPED  "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
#define ALG_RSA_OAEP_MGF1P "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
#define ENC_TYPE_ELEMENT "http://www.w3.org/2001/04/xmlenc#Element"

#define MSG_BAD_INPUT "The login response could not be read."
#define MSG_REFUSED \
    "The login response from your identity provider was refused."
#define MSG_SIG \
    "The login response is not correctly signed by your identity " \
    "provider."
#define MSG_INTERNAL \
    "The login response could not be checked because of a server " \
    "problem."

typedef struct sig_alg_t {
    const char *href;
    unsigned int bit;
    const char *name;
} sig_alg_t;

static const sig_alg_t sig_algs[] = {
    { "http://www.w3.org/2000/09/xmldsig#rsa-sha1", BTSSO_SIG_RSA_SHA1,
      "rsa-sha1" },
    { "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
      BTSSO_SIG_RSA_SHA256, "rsa-sha256" },
    { "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
      BTSSO_SIG_RSA_SHA384, "rsa-sha384" },
    { "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
      BTSSO_SIG_RSA_SHA512, "rsa-sha512" },
    { "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
      BTSSO_SIG_ECDSA_SHA1, "ecdsa-sha1" },
    { "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
      BTSSO_SIG_ECDSA_SHA256, "ecdsa-sha256" },
    { "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
      BTSSO_SIG_ECDSA_SHA384, "ecdsa-sha384" },
    { "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
      BTSSO_SIG_ECDSA_SHA512, "ecdsa-sha512" },
    { NULL, 0, NULL }
};

static const sig_alg_t digest_algs[] = {
    { "http://www.w3.org/2000/09/xmldsig#sha1", BTSSO_DIGEST_SHA1, "sha1" },
    { "http://www.w3.org/2001/04/xmlenc#sha256", BTSSO_DIGEST_SHA256,
      "sha256" },
    { "http://www.w3.org/2001/04/xmldsig-more#sha384", BTSSO_DIGEST_SHA384,
      "sha384" },
    { "http://www.w3.org/2001/04/xmlenc#sha512", BTSSO_DIGEST_SHA512,
      "sha512" },
    { NULL, 0, NULL }
};

/* One validation run: the pool, the expectation, and every libxml2 or
 * xmlsec object to free at the single exit. */
typedef struct vctx_t {
    apr_pool_t *p;
    const btsso_response_expect_t *ex;
    unsigned int sig_allowed;
    unsigned int digest_allowed;
    apr_time_t skew;
    xmlDocPtr doc;            /* the Response */
    xmlDocPtr plain_doc;      /* the decrypted Assertion, if any */
    const btsso_cert_t *verified_by;  /* the last signature's certificate */
} vctx_t;

/* ---- small helpers ------------------------------------------------------ */

int btsso_response_alg_parse(const char *name, unsigned int *sig_bits,
                             unsigned int *digest_bits)
{
    int i;

    for (i = 0; sig_algs[i].name != NULL; i++) {
        if (strcasecmp(name, sig_algs[i].name) == 0) {
            *sig_bits |= sig_algs[i].bit;
            if (sig_algs[i].bit & (BTSSO_SIG_RSA_SHA1 | BTSSO_SIG_ECDSA_SHA1)) {
                *digest_bits |= BTSSO_DIGEST_SHA1;
            }
            else if (sig_algs[i].bit & (BTSSO_SIG_RSA_SHA256 |
                                        BTSSO_SIG_ECDSA_SHA256)) {
                *digest_bits |= BTSSO_DIGEST_SHA256;
            }
            else if (sig_algs[i].bit & (BTSSO_SIG_RSA_SHA384 |
                                        BTSSO_SIG_ECDSA_SHA384)) {
                *digest_bits |= BTSSO_DIGEST_SHA384;
            }
            else {
                *digest_bits |= BTSSO_DIGEST_SHA512;
            }
            return 0;
        }
    }
    return -1;
}

static int is_elem(const xmlNode *n, const char *ns, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && n->ns != NULL
           && xmlStrEqual(n->ns->href, BAD_CAST ns)
           && xmlStrEqual(n->name, BAD_CAST name);
}

/* First child element with that name, and how many there are. */
static xmlNodePtr child_elem(const xmlNode *parent, const char *ns,
                             const char *name, int *count)
{
    xmlNodePtr c, first = NULL;
    int n = 0;

    for (c = parent->children; c != NULL; c = c->next) {
        if (is_elem(c, ns, name)) {
            if (first == NULL) {
                first = c;
            }
            n++;
        }
    }
    if (count != NULL) {
        *count = n;
    }
    return first;
}

/* An attribute without namespace, copied into the pool; NULL if absent. */
static const char *attr(apr_pool_t *p, const xmlNode *n, const char *name)
{
    xmlAttrPtr a = xmlHasNsProp(n, BAD_CAST name, NULL);
    xmlChar *v;
    const char *s;

    if (a == NULL || a->ns != NULL) {
        return NULL;
    }
    v = xmlNodeGetContent((xmlNodePtr)a);
    if (v == NULL) {
        return NULL;
    }
    s = apr_pstrdup(p, (const char *)v);
    xmlFree(v);
    return s;
}

static int is_xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * The whole text of an element: every text and CDATA node below it,
 * concatenated, comments and processing instructions skipped.  This is
 * what defeats the comment-split attack (CVE-2017-11427 family):
 * "user@evil.com<!---->.good.com" reads as "user@evil.com.good.com",
 * exactly what the signature covered.  Leading/trailing whitespace trimmed.
 */
static const char *text_of(apr_pool_t *p, const xmlNode *n)
{
    xmlChar *v = xmlNodeGetContent((xmlNodePtr)n);
    const char *s, *e;
    char *out;

    if (v == NULL) {
        return "";
    }
    s = (const char *)v;
    while (*s != '\0' && is_xml_space(*s)) {
        s++;
    }
    e = s + strlen(s);
    while (e > s && is_xml_space(e[-1])) {
        e--;
    }
    out = apr_pstrmemdup(p, s, (apr_size_t)(e - s));
    xmlFree(v);
    return out;
}

static int has_element_child(const xmlNode *n)
{
    const xmlNode *c;

    for (c = n->children; c != NULL; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            return 1;
        }
    }
    return 0;
}

/* Bound what goes into error details: values come from the attacker. */
static const char *clip(apr_pool_t *p, const char *s)
{
    apr_size_t i, len;
    char *out;

    if (s == NULL) {
        return "(absent)";
    }
    len = strlen(s);
    if (len > 200) {
        len = 200;
    }
    out = apr_pstrmemdup(p, s, len);
    for (i = 0; i < len; i++) {
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) {
            out[i] = '?';
        }
    }
    return len < strlen(s) ? apr_pstrcat(p, out, "...", NULL) : out;
}

static const char *fmt_time(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t x;

    if (apr_time_exp_gmt(&x, t) != APR_SUCCESS) {
        return "(unrepresentable time)";
    }
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                        x.tm_year + 1900, x.tm_mon + 1, x.tm_mday,
                        x.tm_hour, x.tm_min, x.tm_sec);
}

/* ---- errors ------------------------------------------------------------- */

/* What the user reads for each refusal (the operator reads the detail). */
typedef struct refusal_t {
    const char *code;
    const char *message;
} refusal_t;

#define MSG_EXPIRED \
    "The login response has expired; please log in again. If this " \
    "keeps happening, check the clocks of the identity provider and " \
    "this server."
#define MSG_EARLY \
    "The login response is not valid yet; check the clocks of the " \
    "identity provider and this server."

static const refusal_t refusals[] = {
    { "xml_id_forbidden",
      "The login response contains identifiers of a forbidden kind and "
      "was refused." },
    { "duplicate_id",
      "The login response contains duplicated identifiers and was refused"
      " as tampered." },
    { "unsolicited",
      "Logins started at the identity provider are not allowed here; "
      "please start the login from this site." },
    { "in_response_to_mismatch",
      "The login response does not answer the login request sent from "
      "this browser; please start the login again." },
    { "in_response_to_unexpected",
      "The login response answers a login request that this site did not "
      "send; please start the login again." },
    { "issuer_mismatch",
      "The login response comes from an identity provider other than the "
      "one configured for your account." },
    { "no_issuer", "The login response does not name its identity provider." },
    { "bad_issuer",
      "The login response names its identity provider in an unusable "
      "way." },
    { "issuer_format",
      "The login response names its identity provider in an unsupported "
      "format." },
    { "destination_mismatch",
      "The login response was sent for another address than this "
      "service's; check this service's ACS URL at the identity provider." },
    { "destination_missing",
      "The login response does not say where it was meant to be sent." },
    { "no_assertion", "The login response carries no assertion." },
    { "multiple_assertions",
      "The login response carries more than one assertion, which is not "
      "allowed." },
    { "assertion_misplaced",
      "The login response is malformed: its assertion is not where it "
      "must be." },
    { "sig_misplaced", MSG_SIG },
    { "sig_multiple", MSG_SIG },
    { "sig_structure", MSG_SIG },
    { "sig_reference", MSG_SIG },
    { "sig_transform", MSG_SIG },
    { "sig_keyinfo_forbidden", MSG_SIG },
    { "sig_algorithm",
      "The login response is signed with an algorithm this service does "
      "not accept (SHA-256 or stronger is required)." },
    { "sig_invalid",
      "The login response's signature does not match any certificate "
      "configured for your account." },
    { "not_signed",
      "The login response is not signed by your identity provider." },
    { "enc_algorithm",
      "The login assertion is encrypted with an algorithm this service "
      "does not accept." },
    { "too_many_encrypted_keys",
      "The login assertion is encrypted in a way this service does not "
      "accept (more encrypted keys than this service has keys)." },
    { "decrypt_failed",
      "The encrypted login assertion could not be decrypted; check the "
      "encryption certificate configured at the identity provider." },
    { "issued_in_future", MSG_EARLY },
    { "no_name_id",
      "The login assertion does not identify the user (no NameID)." },
    { "bad_name_id",
      "The login assertion identifies the user in an unusable way." },
    { "bad_attribute",
      "The login assertion carries an attribute that cannot be used "
      "(it contains control characters)." },
    { "no_bearer", "The login assertion cannot be used for a browser login." },
    { "recipient_mismatch",
      "The login assertion was issued for another address than this "
      "service's; check this service's ACS URL at the identity provider." },
    { "confirmation_no_expiry",
      "The login assertion has no expiry time and was refused." },
    { "confirmation_expired", MSG_EXPIRED },
    { "confirmation_not_yet_valid", MSG_EARLY },
    { "conditions_missing",
      "The login assertion does not say which service it is meant for." },
    { "audience_missing",
      "The login assertion does not say which service it is meant for." },
    { "audience_mismatch",
      "The login assertion was issued for another service; check this "
      "service's entity ID at the identity provider." },
    { "condition_unknown",
      "The login assertion carries a condition this service does not "
      "support." },
    { "not_yet_valid", MSG_EARLY },
    { "expired", MSG_EXPIRED },
    { "no_authn_statement",
      "The login assertion does not say how you were authenticated." },
    { "session_expired", MSG_EXPIRED },
    { NULL, NULL }
};

/* A 403 refusal: the user-facing message comes from the table above. */
static btsso_error_t *refuse(vctx_t *v, const char *code, const char *detail)
{
    const char *msg = MSG_REFUSED;
    int i;

    for (i = 0; refusals[i].code != NULL; i++) {
        if (strcmp(refusals[i].code, code) == 0) {
            msg = refusals[i].message;
            break;
        }
    }
    return btsso_error_make(v->p, 403, code, msg, "%s", detail);
}

static btsso_error_t *malformed(vctx_t *v, const char *detail)
{
    return btsso_error_make(v->p, 400, "malformed", MSG_BAD_INPUT, "%s",
                            detail);
}

/* Parse an optional time attribute: APR_SUCCESS with *out = 0 if absent. */
static btsso_error_t *time_attr(vctx_t *v, const xmlNode *n, const char *name,
                                apr_time_t *out)
{
    const char *s = attr(v->p, n, name);

    *out = 0;
    if (s == NULL) {
        return NULL;
    }
    if (btsso_xs_datetime(s, out) != 0) {
        return malformed(v, apr_psprintf(v->p, "%s/@%s is not a dateTime: %s",
                                         (const char *)n->name, name,
                                         clip(v->p, s)));
    }
    return NULL;
}

/* ---- decoding and hardened parsing ------------------------------------- */

/* Strict base64 (core/b64.c): alphabet, whitespace and final '='
 * padding only. */
static btsso_error_t *b64_decode(vctx_t *v, const char *in, apr_size_t len,
                                 char **out, apr_size_t *out_len)
{
    unsigned char *buf = NULL;
    btsso_error_t *e = btsso_b64_decode(v->p, in, len, &buf, out_len);

    if (e != NULL) {
        return btsso_error_make(v->p, 400, "bad_base64", MSG_BAD_INPUT,
                                "SAMLResponse is not base64: %s", e->detail);
    }
    *out = (char *)buf;
    return NULL;
}

static void quiet_structured_error(void *user, xmlErrorPtr error)
{
}

/* The shared hardened parse (saml/xmlparse.c: no DTD, no entity, no
 * network, quiet); sizes were bounded by the caller. */
static btsso_error_t *parse_hardened(apr_pool_t *p, const char *buf,
                                     apr_size_t len, xmlDocPtr *out)
{
    btsso_error_t *err = btsso_xml_parse(p, buf, len, (apr_size_t)INT_MAX,
                                         MSG_BAD_INPUT, out);

    if (err != NULL && strcmp(err->code, "empty") == 0) {
        err = btsso_error_make(p, 400, "not_xml", MSG_BAD_INPUT,
                               "not well-formed XML: no content");
    }
    return err;
}

static apr_status_t doc_cleanup(void *data)
{
    xmlFreeDoc((xmlDocPtr)data);
    return APR_SUCCESS;
}

/* Decode (base64 unless it already looks like XML) and parse. */
static btsso_error_t *load_document(apr_pool_t *p, const char *input,
                                    apr_size_t len, apr_size_t max_b64,
                                    apr_size_t max_xml, xmlDocPtr *out)
{
    vctx_t tmp = { 0 };
    char *xml = NULL;
    apr_size_t xml_len = 0, i = 0;
    btsso_error_t *err;

    tmp.p = p;
    *out = NULL;
    if (max_b64 == 0) {
        max_b64 = BTSSO_RESPONSE_DEFAULT_MAX_B64;
    }
    if (max_xml == 0) {
        max_xml = BTSSO_RESPONSE_DEFAULT_MAX_XML;
    }
    if (input == NULL || len == 0) {
        return btsso_error_make(p, 400, "empty", MSG_BAD_INPUT,
                                "no SAMLResponse");
    }
    if (len > max_b64) {
        return btsso_error_make(p, 413, "too_large", MSG_BAD_INPUT,
                                "SAMLResponse is %" APR_SIZE_T_FMT
                                " bytes, limit %" APR_SIZE_T_FMT, len,
                                max_b64);
    }
    while (i < len && is_xml_space(input[i])) {
        i++;
    }
    if (i < len && input[i] == '<') {
        xml = apr_pstrmemdup(p, input, len);
        xml_len = len;
    }
    else if ((err = b64_decode(&tmp, input, len, &xml, &xml_len)) != NULL) {
        return err;
    }
    if (xml_len == 0) {
        return btsso_error_make(p, 400, "empty", MSG_BAD_INPUT,
                                "SAMLResponse decodes to nothing");
    }
    if (xml_len > max_xml) {
        return btsso_error_make(p, 413, "too_large", MSG_BAD_INPUT,
                                "decoded response is %" APR_SIZE_T_FMT
                                " bytes, limit %" APR_SIZE_T_FMT, xml_len,
                                max_xml);
    }
    err = parse_hardened(p, xml, xml_len, out);
    if (err == NULL) {
        apr_pool_cleanup_register(p, *out, doc_cleanup,
                                  apr_pool_cleanup_null);
    }
    return err;
}

/* ---- whole-tree survey -------------------------------------------------- */

typedef struct survey_t {
    apr_array_header_t *assertions;   /* xmlNodePtr: Assertion/Encrypted */
    apr_array_header_t *signatures;   /* xmlNodePtr: ds:Signature */
    apr_array_header_t *id_attrs;     /* xmlAttrPtr: every ID="..." */
} survey_t;

static void survey_walk(xmlNodePtr n, survey_t *s)
{
    xmlNodePtr c;
    xmlAttrPtr a;

    for (; n != NULL; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (is_elem(n, NS_SAML, "Assertion")
            || is_elem(n, NS_SAML, "EncryptedAssertion")) {
            APR_ARRAY_PUSH(s->assertions, xmlNodePtr) = n;
        }
        if (is_elem(n, NS_DS, "Signature")) {
            APR_ARRAY_PUSH(s->signatures, xmlNodePtr) = n;
        }
        for (a = n->properties; a != NULL; a = a->next) {
            if (a->ns == NULL && xmlStrEqual(a->name, BAD_CAST "ID")) {
                APR_ARRAY_PUSH(s->id_attrs, xmlAttrPtr) = a;
            }
        }
        c = n->children;
        if (c != NULL) {
            /* libxml2 bounds nesting depth (256 without XML_PARSE_HUGE),
             * so this recursion is bounded too. */
            survey_walk(c, s);
        }
    }
}

static survey_t *survey(apr_pool_t *p, xmlNodePtr root)
{
    survey_t *s = apr_pcalloc(p, sizeof(*s));

    s->assertions = apr_array_make(p, 2, sizeof(xmlNodePtr));
    s->signatures = apr_array_make(p, 2, sizeof(xmlNodePtr));
    s->id_attrs = apr_array_make(p, 4, sizeof(xmlAttrPtr));
    survey_walk(root, s);
    return s;
}

/* xs:ID is an NCName.  Beyond the schema, this matters because xmlsec
 * resolves "#id" as the XPointer "xpointer(id('id'))": an ID holding a
 * quote or parenthesis could change that expression.  Only the ASCII
 * NCName subset every IdP uses is accepted. */
static int is_safe_id(const char *id)
{
    const unsigned char *c = (const unsigned char *)id;

    if (!(apr_isalpha(*c) || *c == '_')) {
        return 0;
    }
    for (c++; *c != '\0'; c++) {
        if (!(apr_isalnum(*c) || *c == '_' || *c == '-' || *c == '.')) {
            return 0;
        }
    }
    return (const char *)c - id <= 256;
}

/* Register `id` of `n` as the only element answering to it, so that the
 * Reference "#id" can resolve to nothing else.  Any other element with
 * the same ID value is refused (wrapping attacks rely on duplicates). */
static btsso_error_t *register_id(vctx_t *v, xmlDocPtr doc,
                                  const survey_t *s, xmlNodePtr n,
                                  const char *id)
{
    xmlAttrPtr a = xmlHasNsProp(n, BAD_CAST "ID", NULL);
    int i;

    if (!is_safe_id(id)) {
        return malformed(v, apr_psprintf(v->p, "<%s> ID %s is not an "
                                         "NCName", (const char *)n->name,
                                         clip(v->p, id)));
    }
    for (i = 0; i < s->id_attrs->nelts; i++) {
        xmlAttrPtr other = APR_ARRAY_IDX(s->id_attrs, i, xmlAttrPtr);
        xmlChar *val;
        int same;

        if (other == a) {
            continue;
        }
        val = xmlNodeGetContent((xmlNodePtr)other);
        same = val != NULL && xmlStrEqual(val, BAD_CAST id);
        xmlFree(val);
        if (same) {
            return refuse(v, "duplicate_id",
                          apr_psprintf(v->p, "ID %s is carried by <%s> and "
                                       "also by another element <%s>",
                                       clip(v->p, id),
                                       (const char *)n->name,
                                       (const char *)other->parent->name));
        }
    }
    if (xmlGetID(doc, BAD_CAST id) != NULL) {
        return refuse(v, "duplicate_id",
                      apr_psprintf(v->p, "ID %s is already registered",
                                   clip(v->p, id)));
    }
    if (a == NULL || xmlAddID(NULL, doc, BAD_CAST id, a) == NULL) {
        return btsso_error_make(v->p, 500, "internal", MSG_INTERNAL,
                                "could not register ID %s", clip(v->p, id));
    }
    return NULL;
}

/* Every ds:Signature must be a direct child of one of the allowed
 * parents, and each parent carries at most one. */
static btsso_error_t *check_signature_places(vctx_t *v, const survey_t *s,
                                             xmlNodePtr parent_a,
                                             xmlNodePtr parent_b)
{
    int i, count_a = 0, count_b = 0;

    for (i = 0; i < s->signatures->nelts; i++) {
        xmlNodePtr sig = APR_ARRAY_IDX(s->signatures, i, xmlNodePtr);

        if (parent_a != NULL && sig->parent == parent_a) {
            count_a++;
        }
        else if (parent_b != NULL && sig->parent == parent_b) {
            count_b++;
        }
        else {
            return refuse(v, "sig_misplaced",
                          apr_psprintf(v->p, "a ds:Signature inside <%s> "
                                       "(line %ld) signs nothing this "
                                       "service consumes",
                                       sig->parent != NULL
                                       ? (const char *)sig->parent->name
                                       : "?", xmlGetLineNo(sig)));
        }
    }
    if (count_a > 1 || count_b > 1) {
        return refuse(v, "sig_multiple",
                      apr_psprintf(v->p, "<%s> carries %d ds:Signature "
                                   "elements; exactly one is allowed",
                                   (const char *)(count_a > 1 ? parent_a
                                                  : parent_b)->name,
                                   count_a > 1 ? count_a : count_b));
    }
    return NULL;
}

/* ---- signature verification ------------------------------------------- */

static const sig_alg_t *find_alg(const sig_alg_t *table, const char *href)
{
    int i;

    for (i = 0; href != NULL && table[i].href != NULL; i++) {
        if (strcmp(table[i].href, href) == 0) {
            return &table[i];
        }
    }
    return NULL;
}

/* KeyInfo is never used to find the key; one that points anywhere (a
 * RetrievalMethod, any URI attribute, at any depth) is refused, not merely
 * ignored.  Depth is bounded by libxml2's nesting limit. */
static btsso_error_t *check_keyinfo(vctx_t *v, xmlNodePtr n, const char *what)
{
    xmlNodePtr c;
    xmlAttrPtr a;
    btsso_error_t *err;

    if (xmlStrEqual(n->name, BAD_CAST "RetrievalMethod")) {
        return refuse(v, "sig_keyinfo_forbidden",
                      apr_psprintf(v->p, "%s signature: KeyInfo holds a "
                                   "RetrievalMethod (not followed)", what));
    }
    for (a = n->properties; a != NULL; a = a->next) {
        if (xmlStrcasecmp(a->name, BAD_CAST "URI") == 0) {
            return refuse(v, "sig_keyinfo_forbidden",
                          apr_psprintf(v->p, "%s signature: KeyInfo element "
                                       "<%s> carries a URI (not followed)",
                                       what, (const char *)n->name));
        }
    }
    for (c = n->children; c != NULL; c = c->next) {
        if (c->type == XML_ELEMENT_NODE
            && (err = check_keyinfo(v, c, what)) != NULL) {
            return err;
        }
    }
    return NULL;
}

/* The shape of a ds:Signature, checked before any cryptography, so a
 * refusal names the precise reason (xmlsec's allow-lists below enforce
 * the same again). */
static btsso_error_t *check_signature_shape(vctx_t *v, xmlNodePtr sig,
                                            const char *id, const char *what)
{
    xmlNodePtr c, si = NULL, ref = NULL, t;
    int n_si = 0, n_sv = 0, n_ki = 0, n_ref = 0, saw_enveloped = 0;
    const char *alg, *uri;
    const sig_alg_t *a;

    for (c = sig->children; c != NULL; c = c->next) {
        if (c->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (is_elem(c, NS_DS, "SignedInfo") && n_sv == 0 && n_ki == 0) {
            si = c;
            n_si++;
        }
        else if (is_elem(c, NS_DS, "SignatureValue") && n_si == 1) {
            n_sv++;
        }
        else if (is_elem(c, NS_DS, "KeyInfo") && n_sv == 1) {
            btsso_error_t *err = check_keyinfo(v, c, what);

            if (err != NULL) {
                return err;
            }
            n_ki++;
        }
        else {
            return refuse(v, "sig_structure",
                          apr_psprintf(v->p, "%s signature: unexpected or "
                                       "misplaced <%s> in ds:Signature "
                                       "(ds:Object is not allowed)", what,
                                       (const char *)c->name));
        }
    }
    if (n_si != 1 || n_sv != 1 || n_ki > 1) {
        return refuse(v, "sig_structure",
                      apr_psprintf(v->p, "%s signature: needs one SignedInfo "
                                   "and one SignatureValue", what));
    }
    c = child_elem(si, NS_DS, "CanonicalizationMethod", NULL);
    alg = c != NULL ? attr(v->p, c, "Algorithm") : NULL;
    if (alg == NULL || strcmp(alg, ALG_EXC_C14N) != 0) {
        return refuse(v, "sig_transform",
                      apr_psprintf(v->p, "%s signature: CanonicalizationMethod "
                                   "%s is not exclusive c14n without "
                                   "comments", what, clip(v->p, alg)));
    }
    c = child_elem(si, NS_DS, "SignatureMethod", NULL);
    alg = c != NULL ? attr(v->p, c, "Algorithm") : NULL;
    a = find_alg(sig_algs, alg);
    if (a == NULL || !(a->bit & v->sig_allowed)) {
        return refuse(v, "sig_algorithm",
                      apr_psprintf(v->p, "%s signature: SignatureMethod %s "
                                   "is not allowed", what, clip(v->p, alg)));
    }
    for (c = si->children; c != NULL; c = c->next) {
        if (is_elem(c, NS_DS, "Reference")) {
            ref = c;
            n_ref++;
        }
    }
    if (n_ref != 1) {
        return refuse(v, "sig_reference",
                      apr_psprintf(v->p, "%s signature: %d References; "
                                   "exactly one is allowed", what, n_ref));
    }
    uri = attr(v->p, ref, "URI");
    if (uri == NULL || uri[0] != '#' || strcmp(uri + 1, id) != 0) {
        return refuse(v, "sig_reference",
                      apr_psprintf(v->p, "%s signature: Reference URI %s "
                                   "does not point at the signed <%s "
                                   "ID=\"%s\">", what, clip(v->p, uri),
                                   what, clip(v->p, id)));
    }
    c = child_elem(ref, NS_DS, "Transforms", NULL);
    for (t = c != NULL ? c->children : NULL; t != NULL; t = t->next) {
        if (t->type != XML_ELEMENT_NODE) {
            continue;
        }
        alg = is_elem(t, NS_DS, "Transform") ? attr(v->p, t, "Algorithm")
              : NULL;
        if (alg != NULL && strcmp(alg, ALG_ENVELOPED) == 0) {
            saw_enveloped = 1;
        }
        else if (alg == NULL || strcmp(alg, ALG_EXC_C14N) != 0) {
            return refuse(v, "sig_transform",
                          apr_psprintf(v->p, "%s signature: Transform %s is "
                                       "not allowed (only enveloped-"
                                       "signature and exclusive c14n "
                                       "without comments)", what,
                                       clip(v->p, alg)));
        }
    }
    if (!saw_enveloped) {
        return refuse(v, "sig_transform",
                      apr_psprintf(v->p, "%s signature: no enveloped-"
                                   "signature transform", what));
    }
    c = child_elem(ref, NS_DS, "DigestMethod", NULL);
    alg = c != NULL ? attr(v->p, c, "Algorithm") : NULL;
    a = find_alg(digest_algs, alg);
    if (a == NULL || !(a->bit & v->digest_allowed)) {
        return refuse(v, "sig_algorithm",
                      apr_psprintf(v->p, "%s signature: DigestMethod %s is "
                                   "not allowed", what, clip(v->p, alg)));
    }
    return NULL;
}

static int enable_sig(xmlSecDSigCtxPtr ctx, unsigned int on,
                      xmlSecTransformId id)
{
    return on ? xmlSecDSigCtxEnableSignatureTransform(ctx, id) : 0;
}

static int enable_ref(xmlSecDSigCtxPtr ctx, unsigned int on,
                      xmlSecTransformId id)
{
    return on ? xmlSecDSigCtxEnableReferenceTransform(ctx, id) : 0;
}

/* xmlsec's own allow-lists, the second line behind check_signature_shape:
 * SignedInfo may use exclusive c14n and the allowed signature methods,
 * a Reference enveloped-signature, exclusive c14n and allowed digests. */
static int enable_dsig_transforms(xmlSecDSigCtxPtr ctx, unsigned int sigs,
                                  unsigned int digests)
{
    int rc = 0;

    rc |= enable_sig(ctx, 1, xmlSecTransformExclC14NId);
    rc |= enable_sig(ctx, sigs & BTSSO_SIG_RSA_SHA1, xmlSecTransformRsaSha1Id);
    rc |= enable_sig(ctx, sigs & BTSSO_SIG_RSA_SHA256,
                     xmlSecTransformRsaSha256Id);
    rc |= enable_sig(ctx, sigs & BTSSO_SIG_RSA_SHA384,
                     xmlSecTransformRsaSha384Id);
    rc |= enable_sig(ctx, sigs & BTSSO_SIG_RSA_SHA512,
                     xmlSecTransformRsaSha512Id);
    rc |= enable_sig(ctx, sigs & BTSSO_SIG_ECDSA_SHA1,
                     xmlSecTransformEcdsaSha1Id);
    rc |= enable_sig(ctx, sigs & BTSSO_SIG_ECDSA_SHA256,
                     xmlSecTransformEcdsaSha256Id);
    rc |= enable_sig(ctx, sigs & BTSSO_SIG_ECDSA_SHA384,
                     xmlSecTransformEcdsaSha384Id);
    rc |= enable_sig(ctx, sigs & BTSSO_SIG_ECDSA_SHA512,
                     xmlSecTransformEcdsaSha512Id);
    rc |= enable_ref(ctx, 1, xmlSecTransformEnvelopedId);
    rc |= enable_ref(ctx, 1, xmlSecTransformExclC14NId);
    rc |= enable_ref(ctx, digests & BTSSO_DIGEST_SHA1, xmlSecTransformSha1Id);
    rc |= enable_ref(ctx, digests & BTSSO_DIGEST_SHA256,
                     xmlSecTransformSha256Id);
    rc |= enable_ref(ctx, digests & BTSSO_DIGEST_SHA384,
                     xmlSecTransformSha384Id);
    rc |= enable_ref(ctx, digests & BTSSO_DIGEST_SHA512,
                     xmlSecTransformSha512Id);
    return rc;
}

/* An xmlsec key around a ready public key: no DER parsed, no X.509 data
 * attached (nothing in a signature can reach for it), the EVP_PKEY shared
 * by reference. */
static xmlSecKeyPtr ready_key(btsso_cert_key_t *k)
{
    EVP_PKEY *pkey = (EVP_PKEY *)k;
    xmlSecKeyDataPtr data;
    xmlSecKeyPtr key;

    if (EVP_PKEY_up_ref(pkey) != 1) {
        return NULL;
    }
    data = xmlSecOpenSSLEvpKeyAdopt(pkey);
    if (data == NULL) {
        EVP_PKEY_free(pkey);
        return NULL;
    }
    key = xmlSecKeyCreate();
    if (key == NULL || xmlSecKeySetValue(key, data) < 0) {
        xmlSecKeyDataDestroy(data);
        if (key != NULL) {
            xmlSecKeyDestroy(key);
        }
        return NULL;
    }
    return key;
}

/* 1: the signature verifies with this certificate's key; 0: it does not;
 * -1: internal failure. */
static int verify_with_cert(vctx_t *v, xmlNodePtr sig, const char *id,
                            const btsso_cert_t *cert)
{
    xmlSecDSigCtxPtr ctx;
    xmlSecKeyPtr key;
    int ok = 0;

    key = cert->ready_key != NULL ? ready_key(cert->ready_key)
          : xmlSecCryptoAppKeyLoadMemory(cert->der, (xmlSecSize)cert->der_len,
                                         xmlSecKeyDataFormatCertDer, NULL,
                                         NULL, NULL);
    if (key == NULL) {
        return 0;   /* not a usable certificate: cannot verify anything */
    }
    ctx = xmlSecDSigCtxCreate(NULL);   /* no keys manager: nothing to
                                          look keys up in */
    if (ctx == NULL) {
        xmlSecKeyDestroy(key);
        return -1;
    }
    ctx->signKey = key;                /* owned by ctx from here on */
    ctx->enabledReferenceUris = xmlSecTransformUriTypeSameDocument;
    ctx->keyInfoReadCtx.maxRetrievalMethodLevel = 0;
    ctx->keyInfoReadCtx.maxEncryptedKeyLevel = 0;
    if (enable_dsig_transforms(ctx, v->sig_allowed, v->digest_allowed) != 0) {
        xmlSecDSigCtxDestroy(ctx);
        return -1;
    }
    if (xmlSecDSigCtxVerify(ctx, sig) == 0
        && ctx->status == xmlSecDSigStatusSucceeded
        && xmlSecPtrListGetSize(&ctx->signedInfoReferences) == 1) {
        xmlSecDSigReferenceCtxPtr ref =
            xmlSecPtrListGetItem(&ctx->signedInfoReferences, 0);

        /* Belt and braces: what xmlsec digested is "#id" itself. */
        ok = ref != NULL && ref->uri != NULL && ref->uri[0] == '#'
             && xmlStrEqual(ref->uri + 1, BAD_CAST id)
             && ref->status == xmlSecDSigStatusSucceeded;
    }
    xmlSecDSigCtxDestroy(ctx);
    return ok;
}

static btsso_error_t *verify_signature(vctx_t *v, xmlNodePtr sig,
                                       xmlNodePtr signed_elem, const char *id,
                                       const char *what)
{
    const apr_array_header_t *certs = v->ex->trusted_certs;
    btsso_error_t *err;
    int i, rc;

    if ((err = check_signature_shape(v, sig, id, what)) != NULL) {
        return err;
    }
    if (certs == NULL || certs->nelts == 0) {
        return btsso_error_make(v->p, 403, "no_usable_certificate",
                                "Single sign-on is not possible: no valid "
                                "identity provider certificate is "
                                "configured for this account.",
                                "no primary/secondary certificate valid now");
    }
    for (i = 0; i < certs->nelts; i++) {
        const btsso_cert_t *c = APR_ARRAY_IDX(certs, i, const btsso_cert_t *);

        if (c == NULL || c->der == NULL) {
            continue;
        }
        rc = verify_with_cert(v, sig, id, c);
        if (rc < 0) {
            return btsso_error_make(v->p, 500, "internal", MSG_INTERNAL,
                                    "xmlsec signature context failed");
        }
        if (rc == 1) {
            v->verified_by = c;
            return NULL;
        }
    }
    return refuse(v, "sig_invalid",
                  apr_psprintf(v->p, "%s ID=\"%s\": the signature does not "
                               "verify with any of the account's %d usable "
                               "certificate(s) (altered content, or signed "
                               "by another key)", what, clip(v->p, id),
                               certs->nelts));
}

/* ---- decryption ------------------------------------------------------- */

/*
 * No decryption oracle (Jager & Somorovsky, "How to break XML encryption",
 * CCS 2011).  XML Encryption's CBC mode has no integrity: whoever can tell
 * "wrong padding" from "right padding but not XML" from "XML but not an
 * Assertion" from any later refusal recovers the plaintext byte by byte
 * with a few queries per byte.  Every failure from the key transport up to
 * the authentication of the decrypted Assertion (its own signature; or,
 * when only the Response is signed, that it names the account's IdP, see
 * plain_issuer_is_idp()) therefore gets the one answer
 * dec_refusal(): same status, code, user message and detail (the detail
 * reaches a tenant administrator's test page, so it says nothing either).
 * A Response signature over the ciphertext does not lift that rule: every
 * tenant's IdP is trusted to sign its own Responses, the SP key is shared,
 * so one tenant's IdP can sign a Response around another tenant's
 * ciphertext.
 *
 * AES-GCM ciphertext relabelled aes*-cbc ("backwards compatibility
 * attacks", Jager, Paterson, Somorovsky, NDSS 2013): the key transport
 * does not bind the data algorithm (the attacker writes both
 * EncryptionMethod labels, and RSA-OAEP as IdPs use it carries no label),
 * so no check on the labels can tell a GCM session key from a CBC one.
 * What defeats the attack is that CBC decryption answers nothing but
 * dec_refusal().  On top of that the data algorithm must be one of the six
 * AES-CBC/GCM ones, the session key must have that algorithm's size (a
 * 256-bit GCM key relabelled aes128-cbc is refused like the rest), and the
 * data is decrypted with that one transform enabled only.
 *
 * Timing: the RSA operations run depend only on the configuration and on
 * the document's layout (every chosen EncryptedKey/SP key pair is tried,
 * even after one succeeded); when none yields a key of the right size, the
 * data is decrypted all the same with a random key (implicit rejection, as
 * TLS does against Bleichenbacher), so a bad key transport costs what a
 * bad padding costs.  RSA PKCS#1 v1.5 key transport (Bleichenbacher) is
 * refused by its algorithm before any RSA operation.
 *
 * CPU: each SP key (at most DEC_MAX_KEYS: current and next) tries at most
 * one EncryptedKey, the one whose KeyInfo names it, else the first one no
 * other SP key is named by; a document with more EncryptedKey elements
 * than SP keys is refused before any RSA operation; the EncryptedData is
 * decrypted once.
 */
#define DEC_MAX_KEYS 2
#define DEC_MAX_CERTS 4     /* X509Certificate elements looked at per key */
#define DEC_REFUSAL_DETAIL \
    "EncryptedAssertion: not decryptable with the SP key(s) into a " \
    "usable, signed saml:Assertion (one answer for every such failure)"

static btsso_error_t *dec_refusal(vctx_t *v)
{
    return refuse(v, "decrypt_failed", DEC_REFUSAL_DETAIL);
}

/* The transform of an allowed EncryptedData algorithm and its key size;
 * xmlSecTransformIdUnknown for any other algorithm. */
static xmlSecTransformId data_transform(const char *alg, apr_size_t *key_len)
{
    static const struct {
        const char *href;
        apr_size_t key_len;
    } algs[] = {
        { NS_XENC "aes128-cbc", 16 }, { NS_XENC "aes192-cbc", 24 },
        { NS_XENC "aes256-cbc", 32 }, { NS_XENC11 "aes128-gcm", 16 },
        { NS_XENC11 "aes192-gcm", 24 }, { NS_XENC11 "aes256-gcm", 32 },
    };
    int i;

    for (i = 0; alg != NULL && i < 6; i++) {
        if (strcmp(alg, algs[i].href) == 0) {
            *key_len = algs[i].key_len;
            switch (i) {
            case 0: return xmlSecTransformAes128CbcId;
            case 1: return xmlSecTransformAes192CbcId;
            case 2: return xmlSecTransformAes256CbcId;
            case 3: return xmlSecTransformAes128GcmId;
            case 4: return xmlSecTransformAes192GcmId;
            default: return xmlSecTransformAes256GcmId;
            }
        }
    }
    return xmlSecTransformIdUnknown;
}

/* 1 if the EncryptedKey's KeyInfo names this SP key: a ds:X509Certificate
 * whose public key is the SP key's (the SP key has no certificate of its
 * own here, so KeyName or X509IssuerSerial name nothing).  No RSA
 * operation: a certificate parse and a public-key comparison. */
static int ek_names_key(vctx_t *v, xmlNodePtr ek, const btsso_sp_key_t *spk)
{
    xmlNodePtr ki = child_elem(ek, NS_DS, "KeyInfo", NULL), xd, xc;
    xmlSecKeyPtr key;
    xmlSecKeyDataPtr kd;
    EVP_PKEY *sp_pub;
    int found = 0, certs = 0;

    if (ki == NULL || (key = btsso_sp_key_dup(spk)) == NULL) {
        return 0;
    }
    kd = xmlSecKeyGetValue(key);
    sp_pub = kd != NULL ? xmlSecOpenSSLEvpKeyDataGetEvp(kd) : NULL;
    for (xd = ki->children; sp_pub != NULL && xd != NULL && !found
         && certs < DEC_MAX_CERTS; xd = xd->next) {
        if (!is_elem(xd, NS_DS, "X509Data")) {
            continue;
        }
        for (xc = xd->children; xc != NULL && !found
             && certs < DEC_MAX_CERTS; xc = xc->next) {
            const char *b64;
            const unsigned char *pp;
            char *der;
            apr_size_t der_len;
            X509 *x;

            if (!is_elem(xc, NS_DS, "X509Certificate")) {
                continue;
            }
            certs++;
            b64 = text_of(v->p, xc);
            if (b64_decode(v, b64, strlen(b64), &der, &der_len) != NULL
                || der_len == 0) {
                continue;
            }
            pp = (const unsigned char *)der;
            x = d2i_X509(NULL, &pp, (long)der_len);
            if (x != NULL) {
                EVP_PKEY *pub = X509_get0_pubkey(x);

                found = pub != NULL && EVP_PKEY_eq(pub, sp_pub) == 1;
                X509_free(x);
            }
        }
    }
    xmlSecKeyDestroy(key);
    return found;
}

/* Decrypt one EncryptedKey with one SP key; the session key bytes are
 * copied into *out (pool; the caller wipes them).  0 on success. */
static int decrypt_session_key(vctx_t *v, xmlNodePtr ek,
                               const btsso_sp_key_t *spk,
                               unsigned char **out, apr_size_t *out_len)
{
    xmlSecEncCtxPtr ctx;
    xmlSecBufferPtr res;
    xmlSecKeyPtr key = btsso_sp_key_dup(spk);
    int rc = -1;

    if (key == NULL) {
        return -1;
    }
    ctx = xmlSecEncCtxCreate(NULL);
    if (ctx == NULL) {
        xmlSecKeyDestroy(key);
        return -1;
    }
    ctx->encKey = key;
    ctx->mode = xmlEncCtxModeEncryptedKey;
    ctx->transformCtx.enabledUris = xmlSecTransformUriTypeNone;
    ctx->keyInfoReadCtx.maxRetrievalMethodLevel = 0;
    ctx->keyInfoReadCtx.maxEncryptedKeyLevel = 0;
    if (xmlSecPtrListAdd(&ctx->transformCtx.enabledTransforms,
                         (void *)xmlSecTransformRsaOaepId) == 0) {
        res = xmlSecEncCtxDecryptToBuffer(ctx, ek);
        if (res != NULL && xmlSecBufferGetSize(res) > 0) {
            *out_len = xmlSecBufferGetSize(res);
            *out = apr_pmemdup(v->p, xmlSecBufferGetData(res), *out_len);
            OPENSSL_cleanse(xmlSecBufferGetData(res), *out_len);
            rc = 0;
        }
    }
    xmlSecEncCtxDestroy(ctx);
    return rc;
}

/* Decrypt EncryptedData with a session key, only the declared algorithm's
 * transform enabled; plaintext into the pool (the caller wipes it). */
static int decrypt_data(vctx_t *v, xmlNodePtr ed, xmlSecTransformId alg,
                        const unsigned char *k, apr_size_t klen,
                        char **out, apr_size_t *out_len)
{
    xmlSecEncCtxPtr ctx;
    xmlSecBufferPtr res;
    xmlSecKeyPtr key;
    int rc = -1;

    key = xmlSecKeyReadMemory(xmlSecKeyDataAesId, k, (xmlSecSize)klen);
    if (key == NULL) {
        return -1;
    }
    ctx = xmlSecEncCtxCreate(NULL);
    if (ctx == NULL) {
        xmlSecKeyDestroy(key);
        return -1;
    }
    ctx->encKey = key;
    ctx->transformCtx.enabledUris = xmlSecTransformUriTypeNone;
    ctx->keyInfoReadCtx.maxRetrievalMethodLevel = 0;
    ctx->keyInfoReadCtx.maxEncryptedKeyLevel = 0;
    if (xmlSecPtrListAdd(&ctx->transformCtx.enabledTransforms,
                         (void *)alg) == 0) {
        res = xmlSecEncCtxDecryptToBuffer(ctx, ed);
        if (res != NULL && xmlSecBufferGetSize(res) > 0) {
            *out_len = xmlSecBufferGetSize(res);
            *out = apr_pstrmemdup(v->p, (const char *)xmlSecBufferGetData(res),
                                  *out_len);
            OPENSSL_cleanse(xmlSecBufferGetData(res), *out_len);
            rc = 0;
        }
    }
    xmlSecEncCtxDestroy(ctx);
    return rc;
}

/* The ciphertext must be inline: a CipherReference would make xmlsec
 * fetch it from a URI. */
static btsso_error_t *check_cipher_data(vctx_t *v, xmlNodePtr n)
{
    xmlNodePtr cd = child_elem(n, NS_XENC, "CipherData", NULL);

    if (cd == NULL || child_elem(cd, NS_XENC, "CipherValue", NULL) == NULL
        || child_elem(cd, NS_XENC, "CipherReference", NULL) != NULL) {
        return refuse(v, "decrypt_failed",
                      apr_psprintf(v->p, "<%s> must carry its CipherValue "
                                   "inline (CipherReference is not "
                                   "followed)", (const char *)n->name));
    }
    return NULL;
}

static btsso_error_t *enc_method_of(vctx_t *v, xmlNodePtr n, const char **alg)
{
    xmlNodePtr m = child_elem(n, NS_XENC, "EncryptionMethod", NULL);

    *alg = m != NULL ? attr(v->p, m, "Algorithm") : NULL;
    if (*alg == NULL) {
        return refuse(v, "enc_algorithm",
                      apr_psprintf(v->p, "<%s> has no EncryptionMethod",
                                   (const char *)n->name));
    }
    return NULL;
}

/* The EncryptedKey elements: in EncryptedData/KeyInfo or beside
 * EncryptedData in the EncryptedAssertion (a RetrievalMethod pointing at
 * one is not followed: we look in both places ourselves).  Stores the
 * first DEC_MAX_KEYS, returns how many there are. */
static int collect_encrypted_keys(xmlNodePtr ea, xmlNodePtr ed,
                                  xmlNodePtr eks[DEC_MAX_KEYS])
{
    xmlNodePtr ki = child_elem(ed, NS_DS, "KeyInfo", NULL), c;
    int n = 0, pass;

    for (pass = 0; pass < 2; pass++) {
        c = pass == 0 ? (ki != NULL ? ki->children : NULL) : ea->children;
        for (; c != NULL; c = c->next) {
            if (is_elem(c, NS_XENC, "EncryptedKey")) {
                if (n < DEC_MAX_KEYS) {
                    eks[n] = c;
                }
                n++;
            }
        }
    }
    return n;
}

/* Which EncryptedKey each SP key tries (NULL: none): the one naming it,
 * else the first one that names no other SP key. */
static void pair_keys(vctx_t *v, xmlNodePtr eks[DEC_MAX_KEYS], int n_ek,
                      int n_keys, xmlNodePtr pick[DEC_MAX_KEYS])
{
    int named[DEC_MAX_KEYS][DEC_MAX_KEYS];
    int i, j, k;

    for (i = 0; i < n_ek; i++) {
        for (j = 0; j < n_keys; j++) {
            named[i][j] = ek_names_key(v, eks[i],
                                       APR_ARRAY_IDX(v->ex->sp_keys, j,
                                                     const btsso_sp_key_t *));
        }
    }
    for (j = 0; j < n_keys; j++) {
        pick[j] = NULL;
        for (i = 0; i < n_ek && pick[j] == NULL; i++) {
            if (named[i][j]) {
                pick[j] = eks[i];
            }
        }
        for (i = 0; i < n_ek && pick[j] == NULL; i++) {
            int other = 0;

            for (k = 0; k < n_keys; k++) {
                other |= k != j && named[i][k];
            }
            if (!other) {
                pick[j] = eks[i];
            }
        }
    }
}

/* A decrypted Assertion that only a Response signature covers names the
 * account's IdP as its Issuer.  A Response signature does not vouch for
 * the ciphertext inside (see above: another tenant's IdP can sign a
 * Response around this tenant's ciphertext, mauled), so until the
 * plaintext is known to come from the account's IdP, a refusal of its
 * content would still be an oracle. */
static int plain_issuer_is_idp(vctx_t *v, xmlNodePtr assertion)
{
    int n;
    xmlNodePtr iss = child_elem(assertion, NS_SAML, "Issuer", &n);

    return iss != NULL && n == 1 && !has_element_child(iss)
           && strcmp(text_of(v->p, iss), v->ex->idp_entity_id) == 0;
}

/* EncryptedAssertion -> the decrypted saml:Assertion, parsed with the same
 * hardened parser into a document of its own (v->plain_doc).  Refusals
 * about the document's layout (no key configured, algorithms, CipherData,
 * the number of EncryptedKeys) come before any RSA operation and name
 * their cause; everything from the key transport on is dec_refusal(). */
static btsso_error_t *decrypt_assertion(vctx_t *v, xmlNodePtr ea,
                                        xmlNodePtr *out)
{
    const apr_array_header_t *keys = v->ex->sp_keys;
    xmlNodePtr eks[DEC_MAX_KEYS], pick[DEC_MAX_KEYS], ed;
    xmlSecTransformId data_alg;
    const char *alg, *type;
    btsso_error_t *err;
    unsigned char session[32];
    apr_size_t key_len = 0, plain_len = 0;
    char *plain = NULL;
    int n_ed, n_ek, n_keys, i, j, have_key = 0, rc;

    if (keys == NULL || keys->nelts == 0) {
        return btsso_error_make(v->p, 500, "decrypt_no_key",
                                "The login response is encrypted, but no "
                                "decryption key is configured for this "
                                "service.",
                                "EncryptedAssertion received; set "
                                "BTSSOSPPrivateKey");
    }
    n_keys = keys->nelts < DEC_MAX_KEYS ? keys->nelts : DEC_MAX_KEYS;
    ed = child_elem(ea, NS_XENC, "EncryptedData", &n_ed);
    if (n_ed != 1) {
        return refuse(v, "decrypt_failed",
                      apr_psprintf(v->p, "EncryptedAssertion holds %d "
                                   "EncryptedData elements", n_ed));
    }
    type = attr(v->p, ed, "Type");
    if (type != NULL && strcmp(type, ENC_TYPE_ELEMENT) != 0) {
        return refuse(v, "decrypt_failed",
                      apr_psprintf(v->p, "EncryptedData Type %s is not "
                                   "Element", clip(v->p, type)));
    }
    if ((err = enc_method_of(v, ed, &alg)) != NULL
        || (err = check_cipher_data(v, ed)) != NULL) {
        return err;
    }
    data_alg = data_transform(alg, &key_len);
    if (data_alg == xmlSecTransformIdUnknown) {
        return refuse(v, "enc_algorithm",
                      apr_psprintf(v->p, "EncryptedData algorithm %s is not "
                                   "allowed (AES-GCM or AES-CBC)",
                                   clip(v->p, alg)));
    }
    n_ek = collect_encrypted_keys(ea, ed, eks);
    if (n_ek == 0) {
        return refuse(v, "decrypt_failed",
                      "EncryptedAssertion carries no EncryptedKey");
    }
    if (n_ek > n_keys) {
        return refuse(v, "too_many_encrypted_keys",
                      apr_psprintf(v->p, "EncryptedAssertion carries %d "
                                   "EncryptedKey elements for %d SP "
                                   "decryption key(s): refused before any "
                                   "decryption", n_ek, n_keys));
    }
    for (i = 0; i < n_ek; i++) {
        if ((err = enc_method_of(v, eks[i], &alg)) != NULL
            || (err = check_cipher_data(v, eks[i])) != NULL) {
            return err;
        }
        if (strcmp(alg, ALG_RSA_OAEP_MGF1P) != 0) {
            return refuse(v, "enc_algorithm",
                          apr_psprintf(v->p, "EncryptedKey algorithm %s is "
                                       "not allowed (RSA-OAEP only)",
                                       clip(v->p, alg)));
        }
    }

    /* From here on: no answer but dec_refusal(), and no shortcut. */
    pair_keys(v, eks, n_ek, n_keys, pick);
    memset(session, 0, sizeof(session));
    for (j = 0; j < n_keys; j++) {
        unsigned char *sk;
        apr_size_t sk_len;

        if (pick[j] == NULL
            || decrypt_session_key(v, pick[j],
                                   APR_ARRAY_IDX(keys, j,
                                                 const btsso_sp_key_t *),
                                   &sk, &sk_len) != 0) {
            continue;
        }
        if (!have_key && sk_len == key_len) {
            memcpy(session, sk, key_len);
            have_key = 1;
        }
        OPENSSL_cleanse(sk, sk_len);
    }
    if (!have_key && RAND_bytes(session, (int)key_len) != 1) {
        memset(session, 0x5a, key_len);     /* only timing depends on it */
    }
    rc = decrypt_data(v, ed, data_alg, session, key_len, &plain, &plain_len);
    OPENSSL_cleanse(session, sizeof(session));
    if (rc != 0 || !have_key) {
        if (rc == 0) {
            OPENSSL_cleanse(plain, plain_len);
        }
        return dec_refusal(v);
    }
    err = parse_hardened(v->p, plain, plain_len, &v->plain_doc);
    OPENSSL_cleanse(plain, plain_len);
    if (err != NULL) {
        return dec_refusal(v);
    }
    *out = xmlDocGetRootElement(v->plain_doc);
    if (!is_elem(*out, NS_SAML, "Assertion")) {
        return dec_refusal(v);
    }
    return NULL;
}

/* ---- the assertion's content ------------------------------------------- */

static btsso_error_t *check_issuer(vctx_t *v, xmlNodePtr issuer,
                                   const char *where)
{
    const char *val = text_of(v->p, issuer);
    const char *format = attr(v->p, issuer, "Format");

    /* Before comparing: a control character is refused as such, whatever
     * the configured entityID (it is never exported, logged or matched). */
    if (btsso_text_has_control(val)) {
        return refuse(v, "bad_issuer",
                      apr_psprintf(v->p, "%s Issuer contains a control "
                                   "character: %s", where, clip(v->p, val)));
    }
    /* SAML core 2.2.5: an Issuer's Format, when present, must be entity
     * (an Issuer in another format names no entity this SP can trust). */
    if (format != NULL && strcmp(format, FMT_ENTITY) != 0) {
        return refuse(v, "issuer_format",
                      apr_psprintf(v->p, "%s Issuer Format is %s, not %s",
                                   where, clip(v->p, format), FMT_ENTITY));
    }
    if (strcmp(val, v->ex->idp_entity_id) != 0) {
        return refuse(v, "issuer_mismatch",
                      apr_psprintf(v->p, "%s Issuer is %s, expected %s",
                                   where, clip(v->p, val),
                                   v->ex->idp_entity_id));
    }
    return NULL;
}

static btsso_error_t *check_in_response_to(vctx_t *v, const char *irt,
                                           const char *where)
{
    if (v->ex->in_response_to != NULL) {
        if (irt == NULL || strcmp(irt, v->ex->in_response_to) != 0) {
            return refuse(v, "in_response_to_mismatch",
                          apr_psprintf(v->p, "%s InResponseTo is %s, the "
                                       "request sent was %s", where,
                                       clip(v->p, irt),
                                       v->ex->in_response_to));
        }
    }
    else if (irt != NULL) {
        return refuse(v, "in_response_to_unexpected",
                      apr_psprintf(v->p, "%s InResponseTo=%s answers a "
                                   "request this login did not send",
                                   where, clip(v->p, irt)));
    }
    return NULL;
}

/* One bearer SubjectConfirmation: NULL if it confirms the subject. */
static btsso_error_t *check_bearer(vctx_t *v, xmlNodePtr sc,
                                   apr_time_t *not_on_or_after)
{
    xmlNodePtr scd = child_elem(sc, NS_SAML, "SubjectConfirmationData", NULL);
    const char *recipient;
    apr_time_t nb, noa, now = v->ex->now;
    btsso_error_t *err;

    if (scd == NULL) {
        return refuse(v, "confirmation_no_expiry",
                      "bearer SubjectConfirmation without "
                      "SubjectConfirmationData");
    }
    recipient = attr(v->p, scd, "Recipient");
    if (recipient == NULL || strcmp(recipient, v->ex->acs_url) != 0) {
        return refuse(v, "recipient_mismatch",
                      apr_psprintf(v->p, "SubjectConfirmationData Recipient "
                                   "is %s, expected %s",
                                   clip(v->p, recipient), v->ex->acs_url));
    }
    if ((err = time_attr(v, scd, "NotOnOrAfter", &noa)) != NULL
        || (err = time_attr(v, scd, "NotBefore", &nb)) != NULL) {
        return err;
    }
    if (noa == 0) {
        return refuse(v, "confirmation_no_expiry",
                      "SubjectConfirmationData has no NotOnOrAfter");
    }
    if (now - v->skew >= noa) {
        return refuse(v, "confirmation_expired",
                      apr_psprintf(v->p, "SubjectConfirmationData "
                                   "NotOnOrAfter %s passed (now %s, skew "
                                   "%d s)", fmt_time(v->p, noa),
                                   fmt_time(v->p, now), v->ex->clock_skew));
    }
    if (nb != 0 && now + v->skew < nb) {
        return refuse(v, "confirmation_not_yet_valid",
                      apr_psprintf(v->p, "SubjectConfirmationData NotBefore "
                                   "%s not reached (now %s, skew %d s)",
                                   fmt_time(v->p, nb), fmt_time(v->p, now),
                                   v->ex->clock_skew));
    }
    if ((err = check_in_response_to(v, attr(v->p, scd, "InResponseTo"),
                                     "SubjectConfirmationData")) != NULL) {
        return err;
    }
    *not_on_or_after = noa;
    return NULL;
}

static btsso_error_t *check_subject(vctx_t *v, xmlNodePtr assertion,
                                    btsso_assertion_t *a)
{
    xmlNodePtr subject, nid, sc;
    btsso_error_t *first_err = NULL, *err;
    apr_time_t noa = 0;
    int n_bearer = 0;

    subject = child_elem(assertion, NS_SAML, "Subject", NULL);
    if (subject == NULL) {
        return refuse(v, "no_name_id",
                      "Assertion has no Subject");
    }
    nid = child_elem(subject, NS_SAML, "NameID", NULL);
    if (nid == NULL) {
        return refuse(v, "no_name_id",
                      child_elem(subject, NS_SAML, "EncryptedID", NULL)
                      ? "Subject has an EncryptedID (not supported; "
                        "encrypt the whole assertion instead)"
                      : "Subject has no NameID");
    }
    if (has_element_child(nid)) {
        return refuse(v, "bad_name_id",
                      "NameID contains child elements");
    }
    a->name_id = text_of(v->p, nid);
    if (*a->name_id == '\0') {
        return refuse(v, "bad_name_id", "NameID is empty");
    }
    a->name_id_format = attr(v->p, nid, "Format");
    a->name_id_name_qualifier = attr(v->p, nid, "NameQualifier");
    a->name_id_sp_name_qualifier = attr(v->p, nid, "SPNameQualifier");
    /* Only the ends were trimmed: a CR/LF inside (&#13;&#10;) would split
     * an exported header or environment line. */
    if (btsso_text_has_control(a->name_id)
        || btsso_text_has_control(a->name_id_format)
        || btsso_text_has_control(a->name_id_name_qualifier)
        || btsso_text_has_control(a->name_id_sp_name_qualifier)) {
        return refuse(v, "bad_name_id",
                      apr_psprintf(v->p, "NameID (or one of its qualifiers) "
                                   "contains a control character: %s",
                                   clip(v->p, a->name_id)));
    }

    for (sc = subject->children; sc != NULL; sc = sc->next) {
        const char *method;

        if (!is_elem(sc, NS_SAML, "SubjectConfirmation")) {
            continue;
        }
        method = attr(v->p, sc, "Method");
        if (method == NULL || strcmp(method, CM_BEARER) != 0) {
            continue;
        }
        n_bearer++;
        err = check_bearer(v, sc, &noa);
        if (err == NULL) {
            if (noa > a->assertion_not_on_or_after) {
                a->assertion_not_on_or_after = noa;
            }
            return NULL;
        }
        if (first_err == NULL) {
            first_err = err;
        }
    }
    if (n_bearer == 0) {
        return refuse(v, "no_bearer",
                      "no SubjectConfirmation with Method bearer");
    }
    return first_err;
}

static btsso_error_t *check_conditions(vctx_t *v, xmlNodePtr assertion,
                                       btsso_assertion_t *a)
{
    xmlNodePtr cond, c, aud;
    apr_time_t nb, noa, now = v->ex->now;
    btsso_error_t *err;
    int n_cond, n_restrictions = 0;

    cond = child_elem(assertion, NS_SAML, "Conditions", &n_cond);
    if (cond == NULL || n_cond != 1) {
        return refuse(v, "conditions_missing",
                      apr_psprintf(v->p, "Assertion has %d Conditions "
                                   "elements; exactly one is required "
                                   "(with an AudienceRestriction)", n_cond));
    }
    if ((err = time_attr(v, cond, "NotBefore", &nb)) != NULL
        || (err = time_attr(v, cond, "NotOnOrAfter", &noa)) != NULL) {
        return err;
    }
    if (nb != 0 && now + v->skew < nb) {
        return refuse(v, "not_yet_valid",
                      apr_psprintf(v->p, "Conditions NotBefore %s not "
                                   "reached: now %s, skew %d s (check the "
                                   "IdP's clock)", fmt_time(v->p, nb),
                                   fmt_time(v->p, now), v->ex->clock_skew));
    }
    if (noa != 0 && now - v->skew >= noa) {
        return refuse(v, "expired",
                      apr_psprintf(v->p, "Conditions NotOnOrAfter %s passed: "
                                   "now %s, skew %d s", fmt_time(v->p, noa),
                                   fmt_time(v->p, now), v->ex->clock_skew));
    }
    if (noa > a->assertion_not_on_or_after) {
        a->assertion_not_on_or_after = noa;
    }
    for (c = cond->children; c != NULL; c = c->next) {
        int found = 0;

        if (c->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (is_elem(c, NS_SAML, "OneTimeUse")
            || is_elem(c, NS_SAML, "ProxyRestriction")) {
            /* OneTimeUse: the replay cache does exactly that; a proxy
             * restriction limits others, not us. */
            continue;
        }
        if (!is_elem(c, NS_SAML, "AudienceRestriction")) {
            return refuse(v, "condition_unknown",
                          apr_psprintf(v->p, "Conditions holds <%s>, which "
                                       "this service does not understand",
                                       (const char *)c->name));
        }
        n_restrictions++;
        for (aud = c->children; aud != NULL; aud = aud->next) {
            if (is_elem(aud, NS_SAML, "Audience")
                && strcmp(text_of(v->p, aud), v->ex->sp_entity_id) == 0) {
                found = 1;
            }
        }
        /* Several AudienceRestrictions must ALL be satisfied. */
        if (!found) {
            return refuse(v, "audience_mismatch",
                          apr_psprintf(v->p, "AudienceRestriction does not "
                                       "name %s (the IdP is configured "
                                       "with another SP entityID)",
                                       v->ex->sp_entity_id));
        }
    }
    if (n_restrictions == 0) {
        return refuse(v, "audience_missing",
                      "Conditions has no AudienceRestriction");
    }
    return NULL;
}

static btsso_error_t *read_authn_statement(vctx_t *v, xmlNodePtr assertion,
                                           btsso_assertion_t *a)
{
    xmlNodePtr st, ctx, ref;
    btsso_error_t *err;

    st = child_elem(assertion, NS_SAML, "AuthnStatement", NULL);
    if (st == NULL) {
        return refuse(v, "no_authn_statement",
                      "Assertion has no AuthnStatement");
    }
    if ((err = time_attr(v, st, "AuthnInstant", &a->authn_instant)) != NULL
        || (err = time_attr(v, st, "SessionNotOnOrAfter",
                            &a->session_not_on_or_after)) != NULL) {
        return err;
    }
    if (a->session_not_on_or_after != 0
        && v->ex->now - v->skew >= a->session_not_on_or_after) {
        return refuse(v, "session_expired",
                      apr_psprintf(v->p, "AuthnStatement SessionNotOnOrAfter "
                                   "%s passed",
                                   fmt_time(v->p,
                                            a->session_not_on_or_after)));
    }
    a->session_index = attr(v->p, st, "SessionIndex");
    ctx = child_elem(st, NS_SAML, "AuthnContext", NULL);
    ref = ctx != NULL ? child_elem(ctx, NS_SAML, "AuthnContextClassRef", NULL)
          : NULL;
    a->authn_context_class = ref != NULL ? text_of(v->p, ref) : NULL;
    return NULL;
}

static btsso_error_t *bad_attribute(vctx_t *v, const char *name,
                                    const char *what)
{
    return refuse(v, "bad_attribute",
                  apr_psprintf(v->p, "Attribute %s: its %s contains a "
                               "control character", clip(v->p, name),
                               what));
}

/* Every attribute, refusing the assertion when a name or value holds a
 * control character (they are exported as headers and environment). */
static btsso_error_t *read_attributes(vctx_t *v, xmlNodePtr assertion,
                                      btsso_assertion_t *a)
{
    xmlNodePtr st, at, val;

    a->attributes = apr_array_make(v->p, 8, sizeof(btsso_attribute_t));
    for (st = assertion->children; st != NULL; st = st->next) {
        if (!is_elem(st, NS_SAML, "AttributeStatement")) {
            continue;
        }
        for (at = st->children; at != NULL; at = at->next) {
            btsso_attribute_t *out;
            const char *name;

            if (!is_elem(at, NS_SAML, "Attribute")
                || (name = attr(v->p, at, "Name")) == NULL) {
                continue;
            }
            out = apr_array_push(a->attributes);
            out->name = name;
            out->name_format = attr(v->p, at, "NameFormat");
            out->friendly_name = attr(v->p, at, "FriendlyName");
            if (btsso_text_has_control(out->name)
                || btsso_text_has_control(out->name_format)
                || btsso_text_has_control(out->friendly_name)) {
                return bad_attribute(v, out->name, "name");
            }
            out->values = apr_array_make(v->p, 2, sizeof(const char *));
            for (val = at->children; val != NULL; val = val->next) {
                if (is_elem(val, NS_SAML, "AttributeValue")) {
                    const char *t = text_of(v->p, val);

                    if (btsso_text_has_control(t)) {
                        return bad_attribute(v, out->name, "value");
                    }
                    APR_ARRAY_PUSH(out->values, const char *) = t;
                }
            }
        }
    }
    return NULL;
}

const btsso_attribute_t *btsso_assertion_attribute(const btsso_assertion_t *a,
                                                   const char *name)
{
    int i;

    if (a == NULL || a->attributes == NULL || name == NULL) {
        return NULL;
    }
    for (i = 0; i < a->attributes->nelts; i++) {
        const btsso_attribute_t *at =
            &APR_ARRAY_IDX(a->attributes, i, btsso_attribute_t);

        if (strcmp(at->name, name) == 0) {
            return at;
        }
    }
    for (i = 0; i < a->attributes->nelts; i++) {
        const btsso_attribute_t *at =
            &APR_ARRAY_IDX(a->attributes, i, btsso_attribute_t);

        if (at->friendly_name != NULL && strcmp(at->friendly_name, name) == 0) {
            return at;
        }
    }
    return NULL;
}

/* Version, ID and IssueInstant of a Response or Assertion. */
static btsso_error_t *check_header(vctx_t *v, xmlNodePtr n, const char **id,
                                   apr_time_t *issue_instant)
{
    const char *version = attr(v->p, n, "Version");
    btsso_error_t *err;

    if (version == NULL || strcmp(version, "2.0") != 0) {
        return malformed(v, apr_psprintf(v->p, "<%s> Version is %s, not 2.0",
                                         (const char *)n->name,
                                         clip(v->p, version)));
    }
    *id = attr(v->p, n, "ID");
    if (*id == NULL || **id == '\0') {
        return malformed(v, apr_psprintf(v->p, "<%s> has no ID",
                                         (const char *)n->name));
    }
    if ((err = time_attr(v, n, "IssueInstant", issue_instant)) != NULL) {
        return err;
    }
    if (*issue_instant == 0) {
        return malformed(v, apr_psprintf(v->p, "<%s> has no IssueInstant",
                                         (const char *)n->name));
    }
    if (*issue_instant > v->ex->now + v->skew) {
        return refuse(v, "issued_in_future",
                      apr_psprintf(v->p, "<%s ID=\"%s\"> IssueInstant %s is "
                                   "%" APR_TIME_T_FMT " s in the future "
                                   "(skew %d s): check the IdP's clock",
                                   (const char *)n->name, clip(v->p, *id),
                                   fmt_time(v->p, *issue_instant),
                                   apr_time_sec(*issue_instant - v->ex->now),
                                   v->ex->clock_skew));
    }
    return NULL;
}

static btsso_error_t *check_status(vctx_t *v, xmlNodePtr resp)
{
    xmlNodePtr st = child_elem(resp, NS_SAMLP, "Status", NULL), code, sub,
               msg;
    const char *top, *second = NULL, *text = NULL;

    code = st != NULL ? child_elem(st, NS_SAMLP, "StatusCode", NULL) : NULL;
    top = code != NULL ? attr(v->p, code, "Value") : NULL;
    if (top != NULL && strcmp(top, STATUS_SUCCESS) == 0) {
        return NULL;
    }
    sub = code != NULL ? child_elem(code, NS_SAMLP, "StatusCode", NULL) : NULL;
    if (sub != NULL) {
        second = attr(v->p, sub, "Value");
    }
    msg = st != NULL ? child_elem(st, NS_SAMLP, "StatusMessage", NULL) : NULL;
    if (msg != NULL) {
        text = text_of(v->p, msg);
    }
    return btsso_error_make(v->p, 403, "status_not_success",
                            "Your identity provider did not log you in.",
                            "Status %s%s%s%s%s", clip(v->p, top),
                            second != NULL ? " / " : "",
                            second != NULL ? clip(v->p, second) : "",
                            text != NULL ? ": " : "",
                            text != NULL ? clip(v->p, text) : "");
}

/* ---- the validation ----------------------------------------------------- */

/* libxml2 reports some errors met inside xmlsec (c14n of a hostile
 * document, XPointer evaluation) through its per-thread global handlers,
 * which default to stderr: the httpd error log.  A hostile response must
 * not be able to write there, and the core does not log, so for the
 * duration of one call this thread's handler is swapped for a silent one
 * and restored afterwards (other users of libxml2 in the process keep
 * theirs). */
typedef struct quiet_errors_t {
    xmlStructuredErrorFunc saved_func;
    void *saved_ctx;
} quiet_errors_t;

static void quiet_errors_begin(quiet_errors_t *q)
{
    q->saved_func = xmlStructuredError;
    q->saved_ctx = xmlStructuredErrorContext;
    xmlSetStructuredErrorFunc(NULL, quiet_structured_error);
}

static void quiet_errors_end(const quiet_errors_t *q)
{
    xmlSetStructuredErrorFunc(q->saved_ctx, q->saved_func);
}

/* Validate v->doc, a document load_document() made. */
static btsso_error_t *validate(vctx_t *v, btsso_assertion_t *a)
{
    const btsso_response_expect_t *ex = v->ex;
    xmlNodePtr resp, issuer, assertion = NULL, rsig, asig;
    survey_t *s;
    btsso_error_t *err;
    const char *resp_id, *dest, *irt;
    apr_time_t resp_instant;
    int n, n_issuer;

    resp = xmlDocGetRootElement(v->doc);
    if (!is_elem(resp, NS_SAMLP, "Response")) {
        return btsso_error_make(v->p, 400, "not_response", MSG_BAD_INPUT,
                                "root element is <%s>, not samlp:Response",
                                resp != NULL ? (const char *)resp->name : "");
    }
    if ((err = check_header(v, resp, &resp_id, &resp_instant)) != NULL) {
        return err;
    }
    a->response_id = resp_id;
    if (v->doc->ids != NULL) {
        return refuse(v, "xml_id_forbidden",
                      "an xml:id attribute is present");
    }
    irt = attr(v->p, resp, "InResponseTo");
    if (ex->in_response_to == NULL && !ex->allow_idp_initiated && irt == NULL) {
        return refuse(v, "unsolicited",
                      "unsolicited (IdP-initiated) response, but "
                      "BTSSOAllowIdPInitiated is Off");
    }
    if ((err = check_status(v, resp)) != NULL) {
        return err;
    }
    issuer = child_elem(resp, NS_SAML, "Issuer", &n_issuer);
    if (n_issuer > 1) {
        return malformed(v, "Response has more than one Issuer");
    }
    if (issuer != NULL && (err = check_issuer(v, issuer, "Response")) != NULL) {
        return err;
    }
    dest = attr(v->p, resp, "Destination");
    if (dest != NULL && strcmp(dest, ex->acs_url) != 0) {
        return refuse(v, "destination_mismatch",
                      apr_psprintf(v->p, "Response Destination is %s, "
                                   "expected %s", clip(v->p, dest),
                                   ex->acs_url));
    }
    if ((err = check_in_response_to(v, irt, "Response")) != NULL) {
        return err;
    }
    a->in_response_to = irt;

    /* Exactly one assertion in the whole document, as a direct child. */
    s = survey(v->p, resp);
    if (s->assertions->nelts == 0) {
        return refuse(v, "no_assertion",
                      "Response carries no Assertion");
    }
    if (s->assertions->nelts > 1) {
        return refuse(v, "multiple_assertions",
                      apr_psprintf(v->p, "Response carries %d assertions "
                                   "(counting nested and wrapped ones); "
                                   "exactly one is accepted",
                                   s->assertions->nelts));
    }
    assertion = APR_ARRAY_IDX(s->assertions, 0, xmlNodePtr);
    if (assertion->parent != resp) {
        return refuse(v, "assertion_misplaced",
                      apr_psprintf(v->p, "the Assertion sits inside <%s>, "
                                   "not directly in the Response",
                                   (const char *)assertion->parent->name));
    }
    if ((err = register_id(v, v->doc, s, resp, resp_id)) != NULL) {
        return err;
    }
    if (is_elem(assertion, NS_SAML, "Assertion")) {
        const char *aid = attr(v->p, assertion, "ID");

        if (aid == NULL || *aid == '\0') {
            return malformed(v, "Assertion has no ID");
        }
        if ((err = register_id(v, v->doc, s, assertion, aid)) != NULL) {
            return err;
        }
        err = check_signature_places(v, s, resp, assertion);
    }
    else {
        err = check_signature_places(v, s, resp, NULL);
    }
    if (err != NULL) {
        return err;
    }

    /* The Response's own signature (covers everything, incl. an
     * EncryptedAssertion in its encrypted form). */
    rsig = child_elem(resp, NS_DS, "Signature", &n);
    if (rsig != NULL) {
        if ((err = verify_signature(v, rsig, resp, resp_id, "Response"))
            != NULL) {
            return err;
        }
        if (dest == NULL) {
            return refuse(v, "destination_missing",
                          "signed Response has no Destination");
        }
        a->response_signed = 1;
    }

    if (is_elem(assertion, NS_SAML, "EncryptedAssertion")) {
        survey_t *ps;
        const char *aid;

        /* Until the decrypted Assertion is authenticated (below), every
         * refusal depends on the plaintext: dec_refusal() only, or the
         * refusals would be a decryption oracle (see "decryption"). */
        a->was_encrypted = 1;
        if ((err = decrypt_assertion(v, assertion, &assertion)) != NULL) {
            return err;
        }
        if (v->plain_doc->ids != NULL) {
            return dec_refusal(v);   /* an xml:id attribute */
        }
        ps = survey(v->p, assertion);
        if (ps->assertions->nelts != 1) {
            return dec_refusal(v);   /* further assertions inside */
        }
        aid = attr(v->p, assertion, "ID");
        if (aid == NULL || *aid == '\0'
            || register_id(v, v->plain_doc, ps, assertion, aid) != NULL
            || check_signature_places(v, ps, assertion, NULL) != NULL) {
            return dec_refusal(v);
        }
    }

    if ((err = check_header(v, assertion, &a->assertion_id,
                            &a->issue_instant)) != NULL) {
        return a->was_encrypted ? dec_refusal(v) : err;
    }
    asig = child_elem(assertion, NS_DS, "Signature", NULL);
    if (asig != NULL) {
        if ((err = verify_signature(v, asig, assertion, a->assertion_id,
                                    "Assertion")) != NULL) {
            return a->was_encrypted ? dec_refusal(v) : err;
        }
        a->assertion_signed = 1;
    }
    if (!a->response_signed && !a->assertion_signed) {
        return a->was_encrypted ? dec_refusal(v)
               : refuse(v, "not_signed",
                        "neither the Response nor the Assertion is signed");
    }
    if (a->was_encrypted && !a->assertion_signed
        && !plain_issuer_is_idp(v, assertion)) {
        return dec_refusal(v);
    }

    /* From here on, everything is read from `assertion`, the node the
     * verified signature covers; never searched for in the document. */
    issuer = child_elem(assertion, NS_SAML, "Issuer", &n_issuer);
    if (issuer == NULL || n_issuer != 1) {
        return refuse(v, "no_issuer",
                      "Assertion needs exactly one Issuer");
    }
    if ((err = check_issuer(v, issuer, "Assertion")) != NULL) {
        return err;
    }
    a->issuer = text_of(v->p, issuer);
    if ((err = check_subject(v, assertion, a)) != NULL
        || (err = check_conditions(v, assertion, a)) != NULL
        || (err = read_authn_statement(v, assertion, a)) != NULL
        || (err = read_attributes(v, assertion, a)) != NULL) {
        return err;
    }
    return NULL;
}

struct btsso_response_doc_t {
    xmlDocPtr doc;              /* owned by the pool (doc_cleanup) */
    int validated;              /* validation registers IDs: once only */
};

/* Validate d->doc (or, d NULL, what input decodes to) against ex. */
static btsso_error_t *run_validate(apr_pool_t *p, btsso_response_doc_t *d,
                                   const char *input, apr_size_t len,
                                   const btsso_response_expect_t *ex,
                                   btsso_assertion_t **out)
{
    vctx_t v;
    btsso_assertion_t *a;
    btsso_error_t *err;
    quiet_errors_t quiet;

    *out = NULL;
    memset(&v, 0, sizeof(v));
    v.p = p;
    v.ex = ex;
    if (ex == NULL || ex->sp_entity_id == NULL || ex->acs_url == NULL
        || ex->idp_entity_id == NULL || ex->clock_skew < 0) {
        return btsso_error_make(p, 500, "bad_expectation", MSG_INTERNAL,
                                "btsso_response_validate needs sp_entity_id, "
                                "acs_url, idp_entity_id and a clock_skew "
                                ">= 0");
    }
    if (d != NULL && (d->validated || d->doc == NULL)) {
        return btsso_error_make(p, 500, "internal", MSG_INTERNAL,
                                "a loaded response is validated once");
    }
    v.sig_allowed = ex->sig_algs != 0 ? ex->sig_algs : BTSSO_SIG_DEFAULT;
    v.digest_allowed = ex->digest_algs != 0 ? ex->digest_algs
                       : BTSSO_DIGEST_DEFAULT;
    v.skew = apr_time_from_sec(ex->clock_skew);
    a = apr_pcalloc(p, sizeof(*a));
    quiet_errors_begin(&quiet);
    if (d != NULL) {
        d->validated = 1;
        v.doc = d->doc;
        err = validate(&v, a);
    }
    else if ((err = load_document(p, input, len, ex->max_size,
                                  ex->max_xml_size, &v.doc)) == NULL) {
        err = validate(&v, a);
    }
    /* v.doc is owned by a pool cleanup; the decrypted document and its
     * plaintext are freed now rather than lingering in the pool. */
    if (v.plain_doc != NULL) {
        xmlFreeDoc(v.plain_doc);
    }
    quiet_errors_end(&quiet);
    if (err == NULL) {
        a->verified_by = v.verified_by;
        *out = a;
    }
    return err;
}

btsso_error_t *btsso_response_validate(apr_pool_t *p, const char *input,
                                       apr_size_t len,
                                       const btsso_response_expect_t *ex,
                                       btsso_assertion_t **out)
{
    return run_validate(p, NULL, input, len, ex, out);
}

btsso_error_t *btsso_response_validate_doc(apr_pool_t *p,
                                           btsso_response_doc_t *d,
                                           const btsso_response_expect_t *ex,
                                           btsso_assertion_t **out)
{
    *out = NULL;
    if (d == NULL) {
        return btsso_error_make(p, 500, "internal", MSG_INTERNAL,
                                "no loaded response");
    }
    return run_validate(p, d, NULL, 0, ex, out);
}

btsso_error_t *btsso_response_load(apr_pool_t *p, const char *input,
                                   apr_size_t len, apr_size_t max_b64,
                                   apr_size_t max_xml,
                                   btsso_response_doc_t **out)
{
    btsso_response_doc_t *d = apr_pcalloc(p, sizeof(*d));
    btsso_error_t *err;
    quiet_errors_t quiet;

    *out = NULL;
    quiet_errors_begin(&quiet);
    err = load_document(p, input, len, max_b64, max_xml, &d->doc);
    quiet_errors_end(&quiet);
    if (err == NULL) {
        *out = d;
    }
    return err;
}

btsso_error_t *btsso_response_doc_issuer(apr_pool_t *p,
                                         const btsso_response_doc_t *d,
                                         const char **issuer)
{
    xmlNodePtr resp, iss, c;

    *issuer = NULL;
    resp = d != NULL && d->doc != NULL ? xmlDocGetRootElement(d->doc) : NULL;
    if (!is_elem(resp, NS_SAMLP, "Response")) {
        return btsso_error_make(p, 400, "not_response", MSG_BAD_INPUT,
                                "root element is <%s>, not samlp:Response",
                                resp != NULL ? (const char *)resp->name : "");
    }
    iss = child_elem(resp, NS_SAML, "Issuer", NULL);
    if (iss == NULL) {
        c = child_elem(resp, NS_SAML, "Assertion", NULL);
        iss = c != NULL ? child_elem(c, NS_SAML, "Issuer", NULL) : NULL;
    }
    if (iss != NULL && !has_element_child(iss)
        && btsso_text_has_control(text_of(p, iss))) {
        return btsso_error_make(p, 403, "bad_issuer",
                                "The login response names its identity "
                                "provider in an unusable way.",
                                "the Response's Issuer contains a control "
                                "character");
    }
    if (iss == NULL || has_element_child(iss)
        || *(*issuer = text_of(p, iss)) == '\0') {
        *issuer = NULL;
        return btsso_error_make(p, 403, "no_issuer",
                                "The login response does not name its "
                                "identity provider.",
                                "the Response names no Issuer, so the "
                                "account cannot be determined");
    }
    return NULL;
}

btsso_error_t *btsso_response_peek_issuer(apr_pool_t *p, const char *input,
                                          apr_size_t len, apr_size_t max_size,
                                          const char **issuer)
{
    btsso_response_doc_t *d;
    btsso_error_t *err;

    *issuer = NULL;
    if ((err = btsso_response_load(p, input, len, max_size, 0, &d)) != NULL) {
        return err;
    }
    return btsso_response_doc_issuer(p, d, issuer);
}

/* ---- the same signature rules for other root elements (xmldsig.h) ------ */

btsso_error_t *btsso_xmldsig_verify_root(apr_pool_t *p, xmlDocPtr doc,
                                         const apr_array_header_t *certs,
                                         unsigned int sig_bits,
                                         unsigned int digest_bits,
                                         const char *what,
                                         const char *message)
{
    btsso_response_expect_t ex;
    vctx_t v;
    quiet_errors_t quiet;
    xmlNodePtr root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
    btsso_error_t *err = NULL;
    const char *id;
    survey_t *s;

    memset(&ex, 0, sizeof(ex));
    memset(&v, 0, sizeof(v));
    ex.trusted_certs = certs;
    v.p = p;
    v.ex = &ex;
    v.doc = doc;
    v.sig_allowed = sig_bits != 0 ? sig_bits : BTSSO_SIG_DEFAULT;
    v.digest_allowed = digest_bits != 0 ? digest_bits
                                       : BTSSO_DIGEST_DEFAULT;
    if (root == NULL) {
        return btsso_error_make(p, 500, "internal", MSG_INTERNAL,
                                "no document to verify");
    }
    id = attr(p, root, "ID");
    if (id == NULL || *id == '\0') {
        return malformed(&v, apr_psprintf(p, "%s has no ID", what));
    }
    quiet_errors_begin(&quiet);
    s = survey(p, root);
    if (doc->ids != NULL) {
        err = refuse(&v, "xml_id_forbidden", "an xml:id attribute is "
                     "present");
    }
    else if (s->signatures->nelts == 0) {
        err = refuse(&v, "not_signed",
                     apr_psprintf(p, "%s ID=\"%s\" carries no XML signature "
                                  "(over HTTP-POST the signature is in the "
                                  "message, and it is required)", what,
                                  clip(p, id)));
    }
    else if ((err = register_id(&v, doc, s, root, id)) == NULL
             && (err = check_signature_places(&v, s, root, NULL)) == NULL) {
        err = verify_signature(&v, APR_ARRAY_IDX(s->signatures, 0,
                                                 xmlNodePtr),
                               root, id, what);
    }
    quiet_errors_end(&quiet);
    if (err != NULL && message != NULL && err->status == 403) {
        err->message = message;
    }
    return err;
}
