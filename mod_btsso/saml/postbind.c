/*
 * postbind.c - the HTTP-POST binding: enveloped signatures on the
 * messages we send, the auto-submitting form, and decoding what an IdP
 * posts (see postbind.h).
 */
#include <string.h>
#include <limits.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_uri.h>

#include <libxml/tree.h>
#include <libxml/valid.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>
#include <xmlsec/keys.h>
#include <xmlsec/transforms.h>
#include <xmlsec/templates.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/crypto.h>
#include <xmlsec/openssl/evp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "saml/postbind.h"
#include "saml/xmlparse.h"
#include "core/b64.h"

#define NS_SAML "urn:oasis:names:tc:SAML:2.0:assertion"
#define NS_DS   "http://www.w3.org/2000/09/xmldsig#"

#define MSG_INTERNAL "Internal error while building a SAML message."

/* ---- signing ----------------------------------------------------------- */

static xmlSecTransformId sig_transform(const char *uri)
{
    static const struct {
        const char *uri;
        int which;
    } map[] = {
        { BTSSO_SIGALG_RSA_SHA256, 1 }, { BTSSO_SIGALG_RSA_SHA384, 2 },
        { BTSSO_SIGALG_RSA_SHA512, 3 }, { BTSSO_SIGALG_ECDSA_SHA256, 4 },
        { BTSSO_SIGALG_ECDSA_SHA384, 5 }, { BTSSO_SIGALG_ECDSA_SHA512, 6 },
    };
    apr_size_t i;

    for (i = 0; uri != NULL && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(map[i].uri, uri) != 0) {
            continue;
        }
        switch (map[i].which) {
        case 1: return xmlSecTransformRsaSha256Id;
        case 2: return xmlSecTransformRsaSha384Id;
        case 3: return xmlSecTransformRsaSha512Id;
        case 4: return xmlSecTransformEcdsaSha256Id;
        case 5: return xmlSecTransformEcdsaSha384Id;
        default: return xmlSecTransformEcdsaSha512Id;
        }
    }
    return xmlSecTransformIdUnknown;
}

static apr_status_t free_doc(void *data)
{
    xmlFreeDoc((xmlDocPtr)data);
    return APR_SUCCESS;
}

static btsso_error_t *sign_failed(apr_pool_t *p, const char *what)
{
    return btsso_error_make(p, 500, "sign_failed", MSG_INTERNAL,
                            "XML signature: %s", what);
}

/* An xmlsec key holding (a reference to) the SP key's EVP_PKEY. */
static xmlSecKeyPtr xmlsec_key(const btsso_spkey_t *key)
{
    EVP_PKEY *pk = btsso_spkey_evp_pkey(key);
    xmlSecKeyDataPtr data;
    xmlSecKeyPtr k;

    if (pk == NULL || EVP_PKEY_up_ref(pk) != 1) {
        return NULL;
    }
    data = xmlSecOpenSSLEvpKeyAdopt(pk);
    if (data == NULL) {
        EVP_PKEY_free(pk);
        return NULL;
    }
    k = xmlSecKeyCreate();
    if (k == NULL || xmlSecKeySetValue(k, data) < 0) {
        xmlSecKeyDataDestroy(data);
        if (k != NULL) {
            xmlSecKeyDestroy(k);
        }
        return NULL;
    }
    return k;
}

btsso_error_t *btsso_post_sign(apr_pool_t *p, const char *xml,
                               const btsso_spkey_t *key, const char *sigalg,
                               const char **signed_xml)
{
    xmlDocPtr doc = NULL;
    xmlNodePtr root, issuer, sig, ref, ki, x509;
    xmlSecTransformId alg;
    xmlSecDSigCtxPtr ctx = NULL;
    xmlAttrPtr id_attr;
    xmlBufferPtr buf = NULL;
    const btsso_cert_t *cert;
    btsso_error_t *err;
    xmlChar *id = NULL;
    int rc;

    *signed_xml = NULL;
    if (xml == NULL || key == NULL) {
        return btsso_error_make(p, 500, "bad_message_params", MSG_INTERNAL,
                                "nothing to sign, or no key");
    }
    if (sigalg == NULL) {
        sigalg = btsso_spkey_default_sigalg(key);
    }
    alg = sig_transform(sigalg);
    if (alg == xmlSecTransformIdUnknown
        || !btsso_spkey_supports_sigalg(key, sigalg)) {
        return btsso_error_make(p, 500, "sigalg_unsupported", MSG_INTERNAL,
                                "cannot sign with %s", sigalg);
    }
    err = btsso_xml_parse(p, xml, strlen(xml), 0, MSG_INTERNAL, &doc);
    if (err != NULL) {
        return err;
    }
    apr_pool_cleanup_register(p, doc, free_doc, apr_pool_cleanup_null);
    root = xmlDocGetRootElement(doc);
    for (issuer = root->children; issuer != NULL; issuer = issuer->next) {
        if (issuer->type == XML_ELEMENT_NODE) {
            break;
        }
    }
    id_attr = xmlHasNsProp(root, BAD_CAST "ID", NULL);
    if (issuer == NULL || issuer->ns == NULL
        || !xmlStrEqual(issuer->ns->href, BAD_CAST NS_SAML)
        || !xmlStrEqual(issuer->name, BAD_CAST "Issuer") || id_attr == NULL
        || (id = xmlNodeGetContent((xmlNodePtr)id_attr)) == NULL) {
        return btsso_error_make(p, 500, "bad_message_params", MSG_INTERNAL,
                                "message without ID or without a leading "
                                "saml:Issuer");
    }
    if (xmlAddID(NULL, doc, id, id_attr) == NULL) {
        xmlFree(id);
        return sign_failed(p, "cannot register the ID");
    }
    sig = xmlSecTmplSignatureCreateNsPref(doc, xmlSecTransformExclC14NId,
                                          alg, NULL, BAD_CAST "ds");
    if (sig == NULL || xmlAddNextSibling(issuer, sig) == NULL) {
        xmlFree(id);
        if (sig != NULL) {
            xmlFreeNode(sig);
        }
        return sign_failed(p, "cannot make the template");
    }
    ref = xmlSecTmplSignatureAddReference(sig, xmlSecTransformSha256Id, NULL,
                                          BAD_CAST apr_pstrcat(p, "#",
                                          (const char *)id, NULL), NULL);
    xmlFree(id);
    if (ref == NULL
        || xmlSecTmplReferenceAddTransform(ref, xmlSecTransformEnvelopedId)
           == NULL
        || xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId)
           == NULL) {
        return sign_failed(p, "cannot add the reference");
    }
    ctx = xmlSecDSigCtxCreate(NULL);
    if (ctx == NULL) {
        return sign_failed(p, "no signature context");
    }
    ctx->signKey = xmlsec_key(key);
    if (ctx->signKey == NULL) {
        xmlSecDSigCtxDestroy(ctx);
        return sign_failed(p, "cannot load the SP key");
    }
    rc = xmlSecDSigCtxSign(ctx, sig);
    xmlSecDSigCtxDestroy(ctx);
    if (rc < 0) {
        return sign_failed(p, "xmlSecDSigCtxSign failed");
    }
    /* KeyInfo is outside SignedInfo (and removed by the enveloped
     * transform): added after signing, it tells the receiver which of our
     * certificates signed without being able to change what was signed. */
    cert = btsso_spkey_cert(key);
    if (cert != NULL && cert->der != NULL) {
        ki = xmlNewChild(sig, sig->ns, BAD_CAST "KeyInfo", NULL);
        x509 = ki ? xmlNewChild(ki, sig->ns, BAD_CAST "X509Data", NULL)
                  : NULL;
        if (x509 == NULL
            || xmlNewTextChild(x509, sig->ns, BAD_CAST "X509Certificate",
                               BAD_CAST btsso_b64_encode(p, cert->der,
                                                         cert->der_len))
               == NULL) {
            return sign_failed(p, "cannot add KeyInfo");
        }
    }
    buf = xmlBufferCreate();
    if (buf == NULL || xmlNodeDump(buf, doc, root, 0, 0) < 0) {
        if (buf != NULL) {
            xmlBufferFree(buf);
        }
        return sign_failed(p, "cannot serialise");
    }
    *signed_xml = apr_pstrmemdup(p, (const char *)xmlBufferContent(buf),
                                 (apr_size_t)xmlBufferLength(buf));
    xmlBufferFree(buf);
    return NULL;
}

/* ---- the page ---------------------------------------------------------- */

static void lower(char *s)
{
    for (; *s != '\0'; s++) {
        *s = (char)apr_tolower(*s);
    }
}

static int host_char_ok(char c)
{
    return apr_isalnum(c) || c == '-' || c == '.';
}

btsso_error_t *btsso_post_origin(apr_pool_t *p, const char *url,
                                 const char **origin)
{
    apr_uri_t u;
    const char *h;
    char *scheme, *host;
    apr_size_t i;

    *origin = NULL;
    if (url == NULL || apr_uri_parse(p, url, &u) != APR_SUCCESS
        || u.scheme == NULL || u.hostname == NULL || *u.hostname == '\0'
        || u.user != NULL || u.password != NULL) {
        return btsso_error_make(p, 500, "bad_endpoint", "The identity "
                                "provider endpoint is not usable.",
                                "'%s' is not an absolute URL with a host",
                                url ? url : "(none)");
    }
    scheme = apr_pstrdup(p, u.scheme);
    lower(scheme);
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        return btsso_error_make(p, 500, "bad_endpoint", "The identity "
                                "provider endpoint is not usable.",
                                "'%s' is not http(s)", url);
    }
    host = apr_pstrdup(p, u.hostname);
    lower(host);
    /* apr_uri_parse strips the brackets of an IPv6 literal */
    if (strchr(host, ':') != NULL) {
        for (h = host; *h != '\0'; h++) {
            if (!(apr_isxdigit(*h) || *h == ':' || *h == '.')) {
                break;
            }
        }
        if (*h != '\0') {
            host = NULL;
        }
        else {
            host = apr_pstrcat(p, "[", host, "]", NULL);
        }
    }
    else {
        for (i = 0; host[i] != '\0' && host_char_ok(host[i]); i++) {
        }
        if (host[i] != '\0') {
            host = NULL;
        }
    }
    if (host == NULL || (u.port_str != NULL && *u.port_str != '\0'
                         && strspn(u.port_str, "0123456789")
                            != strlen(u.port_str))) {
        return btsso_error_make(p, 500, "bad_endpoint", "The identity "
                                "provider endpoint is not usable.",
                                "'%s': host or port unfit for a "
                                "Content-Security-Policy", url);
    }
    *origin = apr_pstrcat(p, scheme, "://", host,
                          u.port_str && *u.port_str ? ":" : "",
                          u.port_str && *u.port_str ? u.port_str : "", NULL);
    return NULL;
}

/* Escape for an HTML attribute value or text: & < > " ' */
static const char *html_escape(apr_pool_t *p, const char *s)
{
    apr_size_t n = 0;
    const char *c;
    char *out, *o;

    for (c = s; *c != '\0'; c++) {
        n += (*c == '&' || *c == '<' || *c == '>' || *c == '"' || *c == '\'')
             ? 6 : 1;
    }
    o = out = apr_palloc(p, n + 1);
    for (c = s; *c != '\0'; c++) {
        const char *rep = NULL;

        switch (*c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep != NULL) {
            apr_size_t l = strlen(rep);

            memcpy(o, rep, l);
            o += l;
        }
        else {
            *o++ = *c;
        }
    }
    *o = '\0';
    return out;
}

static int openssl_random(void *baton, unsigned char *buf, apr_size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

btsso_error_t *btsso_post_page(apr_pool_t *p, const char *dest_url,
                               const char *sp_url,
                               const char *param, const char *xml,
                               const char *relay_state,
                               const btsso_spkey_t *key, const char *sigalg,
                               btsso_random_fn *rnd, void *rnd_baton,
                               btsso_post_page_t **out)
{
    btsso_post_page_t *pg;
    unsigned char octets[16];
    const char *origin, *sp_origin = NULL, *body, *title;
    btsso_error_t *err;

    *out = NULL;
    if (param == NULL || (strcmp(param, "SAMLRequest") != 0
                          && strcmp(param, "SAMLResponse") != 0)
        || xml == NULL || *xml == '\0') {
        return btsso_error_make(p, 500, "bad_message_params", MSG_INTERNAL,
                                "POST binding: no message or no parameter");
    }
    if ((err = btsso_post_origin(p, dest_url, &origin)) != NULL
        || (sp_url != NULL
            && (err = btsso_post_origin(p, sp_url, &sp_origin)) != NULL)) {
        return err;
    }
    if (sp_origin != NULL && strcmp(sp_origin, origin) == 0) {
        sp_origin = NULL;
    }
    if (strchr(dest_url, '#') != NULL) {
        return btsso_error_make(p, 500, "bad_endpoint", "The identity "
                                "provider endpoint is not usable.",
                                "'%s' holds a fragment", dest_url);
    }
    if (key != NULL
        && (err = btsso_post_sign(p, xml, key, sigalg, &xml)) != NULL) {
        return err;
    }
    if (rnd == NULL) {
        rnd = openssl_random;
    }
    if (rnd(rnd_baton, octets, sizeof(octets)) != 0) {
        return btsso_error_make(p, 500, "no_random", MSG_INTERNAL,
                                "the random source failed");
    }
    pg = apr_pcalloc(p, sizeof(*pg));
    pg->nonce = btsso_b64_encode(p, octets, sizeof(octets));
    pg->csp = apr_pstrcat(p, "default-src 'none'; script-src 'nonce-",
                          pg->nonce, "'; form-action ", origin,
                          sp_origin ? " " : "", sp_origin ? sp_origin : "",
                          "; base-uri 'none'; frame-ancestors 'none'", NULL);
    title = "Continue";
    body = btsso_b64_encode(p, xml, strlen(xml));
    pg->html = apr_pstrcat(p,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>", title, "</title>"
        "<meta name=\"referrer\" content=\"no-referrer\"></head><body>\n"
        "<form method=\"post\" action=\"", html_escape(p, dest_url), "\">\n"
        "<input type=\"hidden\" name=\"", param, "\" value=\"",
        html_escape(p, body), "\">\n",
        relay_state ? "<input type=\"hidden\" name=\"RelayState\" value=\""
                    : "",
        relay_state ? html_escape(p, relay_state) : "",
        relay_state ? "\">\n" : "",
        "<noscript><p>Your browser does not run scripts: press the button "
        "to continue.</p><button type=\"submit\">Continue</button>"
        "</noscript>\n</form>\n"
        "<script nonce=\"", pg->nonce, "\">document.forms[0].submit();"
        "</script>\n</body></html>\n", NULL);
    *out = pg;
    return NULL;
}

/* ---- receiving ---------------------------------------------------------- */

btsso_error_t *btsso_post_decode(apr_pool_t *p, const char *b64,
                                 apr_size_t len, apr_size_t max_b64,
                                 const char **xml, apr_size_t *xml_len)
{
    unsigned char *out = NULL;
    apr_size_t out_len = 0;
    btsso_error_t *err;

    *xml = NULL;
    *xml_len = 0;
    if (max_b64 == 0) {
        max_b64 = BTSSO_POST_MAX_B64;
    }
    if (b64 == NULL || len == 0) {
        return btsso_error_make(p, 400, "empty", "The sign-out message "
                                "could not be read.", "empty form value");
    }
    if (len > max_b64) {
        return btsso_error_make(p, 413, "too_large", "The sign-out message "
                                "could not be read.", "%" APR_SIZE_T_FMT
                                " octets of base64, at most %"
                                APR_SIZE_T_FMT, len, max_b64);
    }
    err = btsso_b64_decode(p, b64, len, &out, &out_len);
    if (err != NULL) {
        return err;
    }
    if (out_len == 0) {
        return btsso_error_make(p, 400, "empty", "The sign-out message "
                                "could not be read.", "decodes to nothing");
    }
    *xml = (const char *)out;
    *xml_len = out_len;
    return NULL;
}
