/*
 * mdsig.c - metadata signature, validUntil and cacheDuration (mdsig.h).
 *
 * The verification follows saml/response.c's: the signed element's ID is
 * registered by hand (the parser knows no ID attributes without a DTD),
 * the ds:Signature's shape is checked before any cryptography, and xmlsec
 * runs with a context that has no keys manager, the one key set by us,
 * same-document references only, and allow-lists of transforms.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include <libxml/tree.h>
#include <libxml/valid.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/keys.h>
#include <xmlsec/transforms.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/crypto.h>

#include "saml/mdsig.h"
#include "saml/response.h"
#include "saml/xmlparse.h"
#include "core/xstime.h"

#define NS_MD "urn:oasis:names:tc:SAML:2.0:metadata"
#define NS_DS "http://www.w3.org/2000/09/xmldsig#"
#define ALG_EXC_C14N  "http://www.w3.org/2001/10/xml-exc-c14n#"
#define ALG_ENVELOPED "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

/* at most this many signed elements around one entity are looked at */
#define MAX_CHAIN 8

typedef struct alg_t {
    const char *href;
    unsigned int bit;
} alg_t;

static const alg_t sig_algs[] = {
    { "http://www.w3.org/2000/09/xmldsig#rsa-sha1", BTSSO_SIG_RSA_SHA1 },
    { "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
      BTSSO_SIG_RSA_SHA256 },
    { "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
      BTSSO_SIG_RSA_SHA384 },
    { "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
      BTSSO_SIG_RSA_SHA512 },
    { "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
      BTSSO_SIG_ECDSA_SHA1 },
    { "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
      BTSSO_SIG_ECDSA_SHA256 },
    { "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
      BTSSO_SIG_ECDSA_SHA384 },
    { "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
      BTSSO_SIG_ECDSA_SHA512 },
    { NULL, 0 }
};

static const alg_t digest_algs[] = {
    { "http://www.w3.org/2000/09/xmldsig#sha1", BTSSO_DIGEST_SHA1 },
    { "http://www.w3.org/2001/04/xmlenc#sha256", BTSSO_DIGEST_SHA256 },
    { "http://www.w3.org/2001/04/xmldsig-more#sha384", BTSSO_DIGEST_SHA384 },
    { "http://www.w3.org/2001/04/xmlenc#sha512", BTSSO_DIGEST_SHA512 },
    { NULL, 0 }
};

const char *btsso_mdsig_name(btsso_mdsig_e s)
{
    switch (s) {
    case BTSSO_MDSIG_UNCHECKED: return "unchecked";
    case BTSSO_MDSIG_VERIFIED: return "verified";
    case BTSSO_MDSIG_FAILED: return "failed";
    default: return "none";
    }
}

/* ---- small helpers -------------------------------------------------------- */

static int is_elem(const xmlNode *n, const char *ns, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && n->ns != NULL
           && n->ns->href != NULL
           && xmlStrEqual(n->ns->href, BAD_CAST ns)
           && xmlStrEqual(n->name, BAD_CAST name);
}

static xmlNodePtr child(const xmlNode *parent, const char *ns,
                        const char *name)
{
    xmlNodePtr c;

    for (c = parent != NULL ? parent->children : NULL; c; c = c->next) {
        if (is_elem(c, ns, name)) {
            return c;
        }
    }
    return NULL;
}

/* An attribute without namespace, trimmed of XML white space; NULL when
 * absent. */
static const char *attr(apr_pool_t *p, const xmlNode *n, const char *name)
{
    xmlChar *v = xmlGetNoNsProp(n, BAD_CAST name);
    const char *s, *e;
    char *out;

    if (v == NULL) {
        return NULL;
    }
    s = (const char *)v;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
        s++;
    }
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'
                     || e[-1] == '\n')) {
        e--;
    }
    out = apr_pstrmemdup(p, s, e - s);
    xmlFree(v);
    return out;
}

static const char *clip(apr_pool_t *p, const char *s)
{
    if (s == NULL) {
        return "(none)";
    }
    return strlen(s) > 80 ? apr_pstrcat(p, apr_pstrndup(p, s, 80), "...",
                                        NULL) : s;
}

static const alg_t *find_alg(const alg_t *t, const char *href)
{
    for (; href != NULL && t->href != NULL; t++) {
        if (strcmp(t->href, href) == 0) {
            return t;
        }
    }
    return NULL;
}

/* ---- xs:duration (xs:dateTime: core/xstime.c) ----------------------------- */

/* "PnYnMnDTnHnMnS" (a year as 365 days, a month as 30); negative
 * durations refused.  Bounded to ten years. */
static int parse_duration(const char *s, apr_interval_time_t *out)
{
    apr_int64_t total = 0;
    int in_time = 0, any = 0;

    if (s == NULL || *s++ != 'P') {
        return -1;
    }
    while (*s != '\0') {
        apr_int64_t n = 0, mult;
        int nd = 0;

        if (*s == 'T') {
            if (in_time) {
                return -1;
            }
            in_time = 1;
            s++;
            continue;
        }
        while (apr_isdigit(*s) && nd < 12) {
            n = n * 10 + (*s++ - '0');
            nd++;
        }
        if (*s == '.' && in_time) {     /* fractional seconds: dropped */
            s++;
            while (apr_isdigit(*s)) {
                s++;
            }
        }
        if (nd == 0) {
            return -1;
        }
        switch (*s) {
        case 'Y': mult = in_time ? -1 : 365 * 86400; break;
        case 'M': mult = in_time ? 60 : 30 * 86400; break;
        case 'D': mult = in_time ? -1 : 86400; break;
        case 'H': mult = in_time ? 3600 : -1; break;
        case 'S': mult = in_time ? 1 : -1; break;
        default: mult = -1;
        }
        if (mult < 0) {
            return -1;
        }
        total += n * mult;
        if (total > (apr_int64_t)3650 * 86400) {
            total = (apr_int64_t)3650 * 86400;
        }
        any = 1;
        s++;
    }
    if (!any) {
        return -1;
    }
    *out = apr_time_from_sec(total);
    return 0;
}

/* ---- the signature --------------------------------------------------------- */

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

/* How many elements of the tree carry ID="id". */
static int count_id(const xmlNode *n, const char *id)
{
    int count = 0;

    for (; n != NULL; n = n->next) {
        xmlAttrPtr a;

        if (n->type != XML_ELEMENT_NODE) {
            continue;
        }
        for (a = n->properties; a != NULL; a = a->next) {
            if (a->ns == NULL && xmlStrEqual(a->name, BAD_CAST "ID")) {
                xmlChar *v = xmlNodeGetContent((xmlNodePtr)a);
                count += v != NULL && xmlStrEqual(v, BAD_CAST id);
                xmlFree(v);
            }
        }
        count += count_id(n->children, id);
    }
    return count;
}

/* Entities with this entityID, anywhere in the tree. */
static int count_entity(apr_pool_t *p, const xmlNode *n, const char *eid)
{
    int count = 0;

    for (; n != NULL; n = n->next) {
        if (is_elem(n, NS_MD, "EntityDescriptor")) {
            const char *v = attr(p, n, "entityID");
            count += v != NULL && strcmp(v, eid) == 0;
        }
        else if (is_elem(n, NS_MD, "EntitiesDescriptor")) {
            count += count_entity(p, n->children, eid);
        }
    }
    return count;
}

static const xmlNode *find_entity(apr_pool_t *p, const xmlNode *n,
                                  const char *eid)
{
    for (; n != NULL; n = n->next) {
        if (is_elem(n, NS_MD, "EntityDescriptor")) {
            const char *v = attr(p, n, "entityID");
            if (v != NULL && strcmp(v, eid) == 0) {
                return n;
            }
        }
        else if (is_elem(n, NS_MD, "EntitiesDescriptor")) {
            const xmlNode *f = find_entity(p, n->children, eid);
            if (f != NULL) {
                return f;
            }
        }
    }
    return NULL;
}

/* KeyInfo never names the key; one that points anywhere is refused. */
static const char *check_keyinfo(apr_pool_t *p, const xmlNode *n)
{
    const xmlNode *c;
    xmlAttrPtr a;
    const char *why;

    if (xmlStrEqual(n->name, BAD_CAST "RetrievalMethod")) {
        return "KeyInfo holds a RetrievalMethod (not followed)";
    }
    for (a = n->properties; a != NULL; a = a->next) {
        if (xmlStrcasecmp(a->name, BAD_CAST "URI") == 0) {
            return apr_psprintf(p, "KeyInfo element <%s> carries a URI (not "
                                "followed)", (const char *)n->name);
        }
    }
    for (c = n->children; c != NULL; c = c->next) {
        if (c->type == XML_ELEMENT_NODE
            && (why = check_keyinfo(p, c)) != NULL) {
            return why;
        }
    }
    return NULL;
}

/* NULL when the ds:Signature has the one allowed shape, else why not. */
static const char *check_shape(apr_pool_t *p, const xmlNode *sig,
                               const char *id, unsigned int sigs,
                               unsigned int digests)
{
    const xmlNode *c, *si = NULL, *ref = NULL, *t;
    int n_si = 0, n_sv = 0, n_ki = 0, n_ref = 0, enveloped = 0;
    const char *alg, *uri, *why;
    const alg_t *a;

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
            if ((why = check_keyinfo(p, c)) != NULL) {
                return why;
            }
            n_ki++;
        }
        else {
            return apr_psprintf(p, "unexpected or misplaced <%s> in "
                                "ds:Signature", (const char *)c->name);
        }
    }
    if (n_si != 1 || n_sv != 1 || n_ki > 1) {
        return "needs one SignedInfo and one SignatureValue";
    }
    c = child(si, NS_DS, "CanonicalizationMethod");
    alg = c != NULL ? attr(p, c, "Algorithm") : NULL;
    if (alg == NULL || strcmp(alg, ALG_EXC_C14N) != 0) {
        return apr_psprintf(p, "CanonicalizationMethod %s is not exclusive "
                            "c14n without comments", clip(p, alg));
    }
    c = child(si, NS_DS, "SignatureMethod");
    alg = c != NULL ? attr(p, c, "Algorithm") : NULL;
    a = find_alg(sig_algs, alg);
    if (a == NULL || !(a->bit & sigs)) {
        return apr_psprintf(p, "SignatureMethod %s is not allowed",
                            clip(p, alg));
    }
    for (c = si->children; c != NULL; c = c->next) {
        if (is_elem(c, NS_DS, "Reference")) {
            ref = c;
            n_ref++;
        }
    }
    if (n_ref != 1) {
        return apr_psprintf(p, "%d References; exactly one is allowed",
                            n_ref);
    }
    uri = attr(p, ref, "URI");
    if (uri == NULL || uri[0] != '#' || strcmp(uri + 1, id) != 0) {
        return apr_psprintf(p, "Reference URI %s does not point at the "
                            "signed element's ID %s", clip(p, uri),
                            clip(p, id));
    }
    c = child(ref, NS_DS, "Transforms");
    for (t = c != NULL ? c->children : NULL; t != NULL; t = t->next) {
        if (t->type != XML_ELEMENT_NODE) {
            continue;
        }
        alg = is_elem(t, NS_DS, "Transform") ? attr(p, t, "Algorithm") : NULL;
        if (alg != NULL && strcmp(alg, ALG_ENVELOPED) == 0) {
            enveloped = 1;
        }
        else if (alg == NULL || strcmp(alg, ALG_EXC_C14N) != 0) {
            return apr_psprintf(p, "Transform %s is not allowed (only "
                                "enveloped-signature and exclusive c14n)",
                                clip(p, alg));
        }
    }
    if (!enveloped) {
        return "no enveloped-signature transform";
    }
    c = child(ref, NS_DS, "DigestMethod");
    alg = c != NULL ? attr(p, c, "Algorithm") : NULL;
    a = find_alg(digest_algs, alg);
    if (a == NULL || !(a->bit & digests)) {
        return apr_psprintf(p, "DigestMethod %s is not allowed",
                            clip(p, alg));
    }
    return NULL;
}

static int enable(int (*fn)(xmlSecDSigCtxPtr, xmlSecTransformId),
                  xmlSecDSigCtxPtr ctx, unsigned int on, xmlSecTransformId id)
{
    return on ? fn(ctx, id) : 0;
}

static int enable_transforms(xmlSecDSigCtxPtr ctx, unsigned int s,
                             unsigned int d)
{
    int (*sig)(xmlSecDSigCtxPtr, xmlSecTransformId) =
        xmlSecDSigCtxEnableSignatureTransform;
    int (*ref)(xmlSecDSigCtxPtr, xmlSecTransformId) =
        xmlSecDSigCtxEnableReferenceTransform;
    int rc = 0;

    rc |= enable(sig, ctx, 1, xmlSecTransformExclC14NId);
    rc |= enable(sig, ctx, s & BTSSO_SIG_RSA_SHA1, xmlSecTransformRsaSha1Id);
    rc |= enable(sig, ctx, s & BTSSO_SIG_RSA_SHA256,
                 xmlSecTransformRsaSha256Id);
    rc |= enable(sig, ctx, s & BTSSO_SIG_RSA_SHA384,
                 xmlSecTransformRsaSha384Id);
    rc |= enable(sig, ctx, s & BTSSO_SIG_RSA_SHA512,
                 xmlSecTransformRsaSha512Id);
    rc |= enable(sig, ctx, s & BTSSO_SIG_ECDSA_SHA1,
                 xmlSecTransformEcdsaSha1Id);
    rc |= enable(sig, ctx, s & BTSSO_SIG_ECDSA_SHA256,
                 xmlSecTransformEcdsaSha256Id);
    rc |= enable(sig, ctx, s & BTSSO_SIG_ECDSA_SHA384,
                 xmlSecTransformEcdsaSha384Id);
    rc |= enable(sig, ctx, s & BTSSO_SIG_ECDSA_SHA512,
                 xmlSecTransformEcdsaSha512Id);
    rc |= enable(ref, ctx, 1, xmlSecTransformEnvelopedId);
    rc |= enable(ref, ctx, 1, xmlSecTransformExclC14NId);
    rc |= enable(ref, ctx, d & BTSSO_DIGEST_SHA1, xmlSecTransformSha1Id);
    rc |= enable(ref, ctx, d & BTSSO_DIGEST_SHA256, xmlSecTransformSha256Id);
    rc |= enable(ref, ctx, d & BTSSO_DIGEST_SHA384, xmlSecTransformSha384Id);
    rc |= enable(ref, ctx, d & BTSSO_DIGEST_SHA512, xmlSecTransformSha512Id);
    return rc;
}

/* 1 verifies with cert, 0 does not, -1 internal failure. */
static int verify_with(xmlNodePtr sig, const char *id,
                       const btsso_cert_t *cert, unsigned int s,
                       unsigned int d)
{
    xmlSecDSigCtxPtr ctx;
    xmlSecKeyPtr key;
    int ok = 0;

    key = xmlSecCryptoAppKeyLoadMemory(cert->der, (xmlSecSize)cert->der_len,
                                       xmlSecKeyDataFormatCertDer, NULL,
                                       NULL, NULL);
    if (key == NULL) {
        return 0;
    }
    ctx = xmlSecDSigCtxCreate(NULL);    /* no keys manager */
    if (ctx == NULL) {
        xmlSecKeyDestroy(key);
        return -1;
    }
    ctx->signKey = key;
    ctx->enabledReferenceUris = xmlSecTransformUriTypeSameDocument;
    ctx->keyInfoReadCtx.maxRetrievalMethodLevel = 0;
    ctx->keyInfoReadCtx.maxEncryptedKeyLevel = 0;
    if (enable_transforms(ctx, s, d) != 0) {
        xmlSecDSigCtxDestroy(ctx);
        return -1;
    }
    if (xmlSecDSigCtxVerify(ctx, sig) == 0
        && ctx->status == xmlSecDSigStatusSucceeded
        && xmlSecPtrListGetSize(&ctx->signedInfoReferences) == 1) {
        xmlSecDSigReferenceCtxPtr ref =
            xmlSecPtrListGetItem(&ctx->signedInfoReferences, 0);

        ok = ref != NULL && ref->uri != NULL && ref->uri[0] == '#'
             && xmlStrEqual(ref->uri + 1, BAD_CAST id)
             && ref->status == xmlSecDSigStatusSucceeded;
    }
    xmlSecDSigCtxDestroy(ctx);
    return ok;
}

/* One signed element: NULL and *signer set when it verifies with one of
 * trusted, else why not (an internal failure says so). */
static const char *verify_element(apr_pool_t *p, xmlDocPtr doc,
                                  xmlNodePtr elem, xmlNodePtr sig,
                                  const apr_array_header_t *trusted,
                                  unsigned int s, unsigned int d,
                                  const char **signer)
{
    const char *id = attr(p, elem, "ID");
    const char *why;
    xmlAttrPtr a;
    int i, rc;

    if (id == NULL || !is_safe_id(id)) {
        return apr_psprintf(p, "<%s> has no usable ID for the signature to "
                            "reference", (const char *)elem->name);
    }
    if (count_id(xmlDocGetRootElement(doc), id) != 1) {
        return apr_psprintf(p, "ID %s is carried by more than one element",
                            clip(p, id));
    }
    if ((why = check_shape(p, sig, id, s, d)) != NULL) {
        return why;
    }
    a = xmlHasNsProp(elem, BAD_CAST "ID", NULL);
    if (xmlGetID(doc, BAD_CAST id) == NULL
        && (a == NULL || xmlAddID(NULL, doc, BAD_CAST id, a) == NULL)) {
        return "internal: could not register the ID";
    }
    for (i = 0; i < trusted->nelts; i++) {
        const btsso_cert_t *c = APR_ARRAY_IDX(trusted, i, const btsso_cert_t *);

        if (c == NULL || c->der == NULL) {
            continue;
        }
        rc = verify_with(sig, id, c, s, d);
        if (rc < 0) {
            return "internal: xmlsec signature context failed";
        }
        if (rc == 1) {
            *signer = c->sha256;
            return NULL;
        }
    }
    return apr_psprintf(p, "the signature on <%s ID=\"%s\"> does not verify "
                        "with any of the %d certificate(s) the account "
                        "trusts (signed by another key, or altered)",
                        (const char *)elem->name, clip(p, id),
                        trusted->nelts);
}

/* ---- public ------------------------------------------------------------------ */

static apr_status_t free_doc(void *d)
{
    xmlFreeDoc(d);
    return APR_SUCCESS;
}

btsso_error_t *btsso_metadata_trust(apr_pool_t *p,
                                    const btsso_idp_metadata_t *md,
                                    const apr_array_header_t *trusted,
                                    unsigned int sig_allowed,
                                    unsigned int digest_allowed,
                                    btsso_md_trust_t *out)
{
    xmlDocPtr doc = NULL;
    xmlNodePtr chain[MAX_CHAIN], sigs[MAX_CHAIN];
    const xmlNode *entity;
    xmlNodePtr n;
    btsso_error_t *err;
    int depth = 0, signed_count = 0, i;
    const char *why = NULL;

    memset(out, 0, sizeof(*out));
    if (sig_allowed == 0) {
        sig_allowed = BTSSO_SIG_DEFAULT;
    }
    if (digest_allowed == 0) {
        digest_allowed = BTSSO_DIGEST_DEFAULT;
    }
    if (md == NULL || md->xml == NULL || md->entity_id == NULL) {
        return btsso_error_make(p, 500, "internal", "The metadata could not "
                                "be checked.", "no parsed metadata");
    }
    err = btsso_xml_parse(p, md->xml, md->xml_len, md->xml_len + 1,
                          "The metadata could not be read.", &doc);
    if (err != NULL) {
        return err;
    }
    apr_pool_cleanup_register(p, doc, free_doc, apr_pool_cleanup_null);
    entity = find_entity(p, xmlDocGetRootElement(doc), md->entity_id);
    if (entity == NULL) {
        return btsso_error_make(p, 500, "internal", "The metadata could not "
                                "be checked.", "entity %s not found again",
                                md->entity_id);
    }
    /* the entity and the EntitiesDescriptors around it, innermost first */
    for (n = (xmlNodePtr)entity; n != NULL && n->type == XML_ELEMENT_NODE
                                 && depth < MAX_CHAIN; n = n->parent) {
        const char *vu = attr(p, n, "validUntil");
        const char *cd = attr(p, n, "cacheDuration");
        apr_time_t t;
        apr_interval_time_t dur;
        xmlNodePtr c;
        int nsig = 0;

        if (vu != NULL) {
            if (btsso_xs_datetime(vu, &t) != 0) {
                return btsso_error_make(p, 422, "bad_valid_until",
                    "The metadata's validUntil is not a date and time.",
                    "<%s validUntil=\"%s\">: not an xs:dateTime",
                    (const char *)n->name, clip(p, vu));
            }
            if (out->valid_until == 0 || t < out->valid_until) {
                out->valid_until = t;
            }
        }
        if (cd != NULL && parse_duration(cd, &dur) == 0
            && (out->cache_duration == 0 || dur < out->cache_duration)) {
            out->cache_duration = dur;
        }
        chain[depth] = n;
        sigs[depth] = NULL;
        for (c = n->children; c != NULL; c = c->next) {
            if (is_elem(c, NS_DS, "Signature")) {
                sigs[depth] = c;
                nsig++;
            }
        }
        if (nsig > 1) {
            out->signature = BTSSO_MDSIG_FAILED;
            out->detail = apr_psprintf(p, "<%s> carries %d ds:Signature "
                                       "elements; exactly one is allowed",
                                       (const char *)n->name, nsig);
            return NULL;
        }
        signed_count += nsig;
        depth++;
    }
    if (signed_count == 0) {
        out->signature = BTSSO_MDSIG_NONE;
        return NULL;
    }
    if (trusted == NULL || trusted->nelts == 0) {
        out->signature = BTSSO_MDSIG_UNCHECKED;
        return NULL;
    }
    if (count_entity(p, xmlDocGetRootElement(doc), md->entity_id) != 1) {
        out->signature = BTSSO_MDSIG_FAILED;
        out->detail = apr_psprintf(p, "entityID %s occurs more than once in "
                                   "the document", clip(p, md->entity_id));
        return NULL;
    }
    for (i = 0; i < depth; i++) {
        const char *signer = NULL, *w;

        if (sigs[i] == NULL) {
            continue;
        }
        w = verify_element(p, doc, chain[i], sigs[i], trusted, sig_allowed,
                           digest_allowed, &signer);
        if (w == NULL) {
            out->signature = BTSSO_MDSIG_VERIFIED;
            out->signer = signer;
            return NULL;
        }
        if (why == NULL) {
            why = w;
        }
    }
    out->signature = BTSSO_MDSIG_FAILED;
    out->detail = why;
    return NULL;
}
