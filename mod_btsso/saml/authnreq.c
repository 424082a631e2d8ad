/*
 * authnreq.c - SP-sent SAML messages and the HTTP-Redirect binding.
 */
#include <string.h>
#include <strings.h>

#include <apr_strings.h>
#include <libxml/tree.h>
#include <libxml/xmlsave.h>
#include <openssl/rand.h>

#include "core/b64.h"
#include "core/url.h"
#include "saml/authnreq.h"

#define NS_SAMLP "urn:oasis:names:tc:SAML:2.0:protocol"
#define NS_SAML  "urn:oasis:names:tc:SAML:2.0:assertion"
#define BINDING_HTTP_POST "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
#define ENCODING_DEFLATE "urn:oasis:names:tc:SAML:2.0:bindings:URL-Encoding:DEFLATE"

#define ID_RANDOM_OCTETS 16

/* ---- building --------------------------------------------------------- */

static btsso_error_t *param_error(apr_pool_t *p, const char *field,
                                  const char *why)
{
    return btsso_error_make(p, 500, "bad_message_params",
                            "Internal error while building a SAML message.",
                            "%s %s", field, why);
}

/* A required value: present, non-empty, valid UTF-8 (libxml2 would
 * otherwise serialize garbage). */
static btsso_error_t *check_text(apr_pool_t *p, const char *field,
                                 const char *value, int required)
{
    if (value == NULL || *value == '\0') {
        return required ? param_error(p, field, "is missing") : NULL;
    }
    if (!xmlCheckUTF8((const xmlChar *)value)) {
        return param_error(p, field, "is not valid UTF-8");
    }
    return NULL;
}

/* Destinations are absolute http(s) URLs without a fragment, since the
 * binding appends a query. */
static btsso_error_t *check_endpoint(apr_pool_t *p, const char *field,
                                     const char *url)
{
    const char *s;

    if (url == NULL || (strncasecmp(url, "https://", 8) != 0
                        && strncasecmp(url, "http://", 7) != 0)) {
        return btsso_error_make(p, 500, "bad_endpoint",
                                "The identity provider endpoint is not "
                                "usable.", "%s '%s' is not an absolute "
                                "http(s) URL", field, url != NULL ? url : "");
    }
    for (s = url; *s != '\0'; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f
            || *s == '#') {
            return btsso_error_make(p, 500, "bad_endpoint",
                                    "The identity provider endpoint is not "
                                    "usable.", "%s '%s' holds a fragment, "
                                    "space, control or non-ASCII character",
                                    field, url);
        }
    }
    return NULL;
}

static int openssl_random(void *baton, unsigned char *buf, apr_size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static btsso_error_t *make_id(apr_pool_t *p, btsso_random_fn *rnd,
                              void *baton, const char **id_out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char octets[ID_RANDOM_OCTETS];
    char *id = apr_palloc(p, 2 + 2 * ID_RANDOM_OCTETS);
    int i;

    if (rnd == NULL) {
        rnd = openssl_random;
    }
    if (rnd(baton, octets, sizeof(octets)) != 0) {
        return btsso_error_make(p, 500, "no_random",
                                "Internal error while building a SAML "
                                "message.", "the random source failed");
    }
    /* XML IDs are NCNames: they may not start with a digit. */
    id[0] = '_';
    for (i = 0; i < ID_RANDOM_OCTETS; i++) {
        id[1 + 2 * i] = hex[octets[i] >> 4];
        id[2 + 2 * i] = hex[octets[i] & 0x0f];
    }
    id[1 + 2 * ID_RANDOM_OCTETS] = '\0';
    *id_out = id;
    return NULL;
}

static const char *iso8601(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                        tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void set_prop(xmlNodePtr node, const char *name, const char *value)
{
    xmlNewProp(node, (const xmlChar *)name, (const xmlChar *)value);
}

/* Root element of a protocol message with the attributes all share, and
 * its saml:Issuer. */
static xmlNodePtr new_message(xmlDocPtr doc, const char *name,
                              const char *id, const char *instant,
                              const char *destination, const char *issuer,
                              xmlNsPtr *samlp_out, xmlNsPtr *saml_out)
{
    xmlNodePtr root = xmlNewDocNode(doc, NULL, (const xmlChar *)name, NULL);
    xmlNsPtr samlp, saml;

    xmlDocSetRootElement(doc, root);
    samlp = xmlNewNs(root, (const xmlChar *)NS_SAMLP, (const xmlChar *)"samlp");
    saml = xmlNewNs(root, (const xmlChar *)NS_SAML, (const xmlChar *)"saml");
    xmlSetNs(root, samlp);
    set_prop(root, "ID", id);
    set_prop(root, "Version", "2.0");
    set_prop(root, "IssueInstant", instant);
    set_prop(root, "Destination", destination);
    xmlNewTextChild(root, saml, (const xmlChar *)"Issuer",
                    (const xmlChar *)issuer);
    *samlp_out = samlp;
    *saml_out = saml;
    return root;
}

static btsso_error_t *serialize(apr_pool_t *p, xmlDocPtr doc,
                                const char **xml_out)
{
    xmlBufferPtr buf = xmlBufferCreate();
    xmlSaveCtxtPtr save;
    btsso_error_t *err = NULL;

    if (buf == NULL) {
        return btsso_error_make(p, 500, "xml_failed", "Internal error while "
                                "building a SAML message.", "out of memory");
    }
    save = xmlSaveToBuffer(buf, "UTF-8", XML_SAVE_NO_DECL | XML_SAVE_AS_XML);
    if (save == NULL || xmlSaveDoc(save, doc) < 0 || xmlSaveClose(save) < 0) {
        err = btsso_error_make(p, 500, "xml_failed", "Internal error while "
                               "building a SAML message.",
                               "serializing the message failed");
    }
    else {
        apr_size_t n = (apr_size_t)xmlBufferLength(buf);
        const char *s = (const char *)xmlBufferContent(buf);

        /* xmlsave ends the document with a newline: not part of it. */
        while (n > 0 && s[n - 1] == '\n') {
            n--;
        }
        *xml_out = apr_pstrmemdup(p, s, n);
    }
    xmlBufferFree(buf);
    return err;
}

/* The common tail: serialize, hand out, free the tree. */
static btsso_error_t *finish(apr_pool_t *p, xmlDocPtr doc, const char *id,
                             btsso_saml_msg_t **out)
{
    btsso_saml_msg_t *msg = apr_pcalloc(p, sizeof(*msg));
    btsso_error_t *err = serialize(p, doc, &msg->xml);

    xmlFreeDoc(doc);
    if (err == NULL) {
        msg->id = id;
        *out = msg;
    }
    return err;
}

btsso_error_t *btsso_authnreq_build(apr_pool_t *p, const btsso_authnreq_t *req,
                                    apr_time_t now, btsso_random_fn *rnd,
                                    void *rnd_baton, btsso_saml_msg_t **out)
{
    btsso_error_t *err;
    const char *id;
    xmlDocPtr doc;
    xmlNodePtr root, policy;
    xmlNsPtr samlp, saml;
    int i;

    for (i = 0; req->requested_classes != NULL
                && i < req->requested_classes->nelts; i++) {
        if ((err = check_text(p, "AuthnContextClassRef",
                              APR_ARRAY_IDX(req->requested_classes, i,
                                            const char *), 1)) != NULL) {
            return err;
        }
    }
    if ((err = check_text(p, "SP entityID", req->sp_entity_id, 1)) != NULL
        || (err = check_text(p, "NameID format", req->nameid_format, 0))
        || (err = check_endpoint(p, "IdP SSO URL", req->idp_sso_url)) != NULL
        || (err = check_endpoint(p, "ACS URL", req->acs_url)) != NULL
        || (err = make_id(p, rnd, rnd_baton, &id)) != NULL) {
        return err;
    }
    doc = xmlNewDoc((const xmlChar *)"1.0");
    root = new_message(doc, "AuthnRequest", id, iso8601(p, now),
                       req->idp_sso_url, req->sp_entity_id, &samlp, &saml);
    set_prop(root, "AssertionConsumerServiceURL", req->acs_url);
    set_prop(root, "ProtocolBinding", BINDING_HTTP_POST);
    if (req->force_authn) {
        set_prop(root, "ForceAuthn", "true");
    }
    if (req->is_passive) {
        set_prop(root, "IsPassive", "true");
    }
    policy = xmlNewChild(root, samlp, (const xmlChar *)"NameIDPolicy", NULL);
    set_prop(policy, "Format", req->nameid_format != NULL
             && *req->nameid_format != '\0' ? req->nameid_format
             : BTSSO_NAMEID_UNSPECIFIED);
    set_prop(policy, "AllowCreate", "true");
    /* After NameIDPolicy (and Conditions): the schema's order. */
    if (req->requested_classes != NULL && req->requested_classes->nelts > 0) {
        xmlNodePtr rac = xmlNewChild(root, samlp, (const xmlChar *)
                                     "RequestedAuthnContext", NULL);

        set_prop(rac, "Comparison", "exact");
        for (i = 0; i < req->requested_classes->nelts; i++) {
            xmlNewTextChild(rac, saml, (const xmlChar *)"AuthnContextClassRef",
                            (const xmlChar *)APR_ARRAY_IDX(
                                req->requested_classes, i, const char *));
        }
    }
    return finish(p, doc, id, out);
}

btsso_error_t *btsso_logoutreq_build(apr_pool_t *p,
                                     const btsso_logoutreq_t *req,
                                     apr_time_t now, btsso_random_fn *rnd,
                                     void *rnd_baton, btsso_saml_msg_t **out)
{
    btsso_error_t *err;
    const char *id;
    xmlDocPtr doc;
    xmlNodePtr root, name_id;
    xmlNsPtr samlp, saml;

    if ((err = check_text(p, "SP entityID", req->sp_entity_id, 1)) != NULL
        || (err = check_text(p, "NameID", req->name_id, 1)) != NULL
        || (err = check_text(p, "NameID format", req->name_id_format, 0))
        || (err = check_text(p, "NameQualifier", req->name_qualifier, 0))
        || (err = check_text(p, "SPNameQualifier", req->sp_name_qualifier, 0))
        || (err = check_text(p, "SessionIndex", req->session_index, 0))
        || (err = check_endpoint(p, "IdP SLO URL", req->destination)) != NULL
        || (err = make_id(p, rnd, rnd_baton, &id)) != NULL) {
        return err;
    }
    doc = xmlNewDoc((const xmlChar *)"1.0");
    root = new_message(doc, "LogoutRequest", id, iso8601(p, now),
                       req->destination, req->sp_entity_id, &samlp, &saml);
    name_id = xmlNewTextChild(root, saml, (const xmlChar *)"NameID",
                              (const xmlChar *)req->name_id);
    /* Echo the qualifiers the IdP asserted: IdPs match the NameID whole. */
    if (req->name_qualifier != NULL && *req->name_qualifier != '\0') {
        set_prop(name_id, "NameQualifier", req->name_qualifier);
    }
    if (req->sp_name_qualifier != NULL && *req->sp_name_qualifier != '\0') {
        set_prop(name_id, "SPNameQualifier", req->sp_name_qualifier);
    }
    if (req->name_id_format != NULL && *req->name_id_format != '\0') {
        set_prop(name_id, "Format", req->name_id_format);
    }
    if (req->session_index != NULL && *req->session_index != '\0') {
        xmlNewTextChild(root, samlp, (const xmlChar *)"SessionIndex",
                        (const xmlChar *)req->session_index);
    }
    return finish(p, doc, id, out);
}

btsso_error_t *btsso_logoutresp_build(apr_pool_t *p,
                                      const btsso_logoutresp_t *resp,
                                      apr_time_t now, btsso_random_fn *rnd,
                                      void *rnd_baton, btsso_saml_msg_t **out)
{
    btsso_error_t *err;
    const char *id;
    xmlDocPtr doc;
    xmlNodePtr root, status, code;
    xmlNsPtr samlp, saml;

    if ((err = check_text(p, "SP entityID", resp->sp_entity_id, 1)) != NULL
        || (err = check_text(p, "InResponseTo", resp->in_response_to, 1))
        || (err = check_text(p, "StatusCode", resp->status_code, 0)) != NULL
        || (err = check_text(p, "StatusMessage", resp->status_message, 0))
        || (err = check_endpoint(p, "IdP SLO URL", resp->destination))
        || (err = make_id(p, rnd, rnd_baton, &id)) != NULL) {
        return err;
    }
    doc = xmlNewDoc((const xmlChar *)"1.0");
    root = new_message(doc, "LogoutResponse", id, iso8601(p, now),
                       resp->destination, resp->sp_entity_id, &samlp, &saml);
    set_prop(root, "InResponseTo", resp->in_response_to);
    status = xmlNewChild(root, samlp, (const xmlChar *)"Status", NULL);
    code = xmlNewChild(status, samlp, (const xmlChar *)"StatusCode", NULL);
    set_prop(code, "Value", resp->status_code != NULL
             && *resp->status_code != '\0' ? resp->status_code
             : BTSSO_STATUS_SUCCESS);
    if (resp->status_message != NULL && *resp->status_message != '\0') {
        xmlNewTextChild(status, samlp, (const xmlChar *)"StatusMessage",
                        (const xmlChar *)resp->status_message);
    }
    return finish(p, doc, id, out);
}

/* ---- HTTP-Redirect encoding --------------------------------------------- */

btsso_error_t *btsso_redirect_encode(apr_pool_t *p, const char *dest_url,
                                     const char *param, const char *xml,
                                     const char *relay_state,
                                     const btsso_spkey_t *key,
                                     const char *sigalg, const char **url_out)
{
    btsso_error_t *err;
    unsigned char *deflated;
    apr_size_t deflated_len, dest_len;
    const unsigned char *sig;
    apr_size_t sig_len;
    const char *query, *joiner, *b64;

    if ((err = check_endpoint(p, "destination", dest_url)) != NULL) {
        return err;
    }
    if (param == NULL || (strcmp(param, "SAMLRequest") != 0
                          && strcmp(param, "SAMLResponse") != 0)) {
        return param_error(p, "parameter name", "is neither SAMLRequest "
                           "nor SAMLResponse");
    }
    if (xml == NULL || *xml == '\0') {
        return param_error(p, "message", "is missing");
    }
    if (relay_state != NULL && strlen(relay_state) > BTSSO_URL_MAX_RETURN) {
        return param_error(p, "RelayState", "is too long");
    }
    err = btsso_deflate_raw(p, xml, strlen(xml), &deflated, &deflated_len);
    if (err != NULL) {
        return err;
    }
    b64 = btsso_b64_encode(p, deflated, deflated_len);
    query = apr_pstrcat(p, param, "=", btsso_pct_encode(p, b64, strlen(b64)),
                        NULL);
    if (relay_state != NULL) {
        query = apr_pstrcat(p, query, "&RelayState=",
                            btsso_pct_encode(p, relay_state,
                                             strlen(relay_state)), NULL);
    }
    if (key != NULL) {
        if (sigalg == NULL) {
            sigalg = btsso_spkey_default_sigalg(key);
        }
        query = apr_pstrcat(p, query, "&SigAlg=",
                            btsso_pct_encode(p, sigalg, strlen(sigalg)),
                            NULL);
        /* Bindings 3.4.4.1: the signature covers these URL-encoded octets,
         * exactly as they go on the wire. */
        err = btsso_spkey_sign(p, key, query, strlen(query), sigalg, &sig,
                               &sig_len);
        if (err != NULL) {
            return err;
        }
        b64 = btsso_b64_encode(p, sig, sig_len);
        query = apr_pstrcat(p, query, "&Signature=",
                            btsso_pct_encode(p, b64, strlen(b64)), NULL);
    }
    dest_len = strlen(dest_url);
    if (strchr(dest_url, '?') == NULL) {
        joiner = "?";
    }
    else if (dest_url[dest_len - 1] == '?' || dest_url[dest_len - 1] == '&') {
        joiner = "";
    }
    else {
        joiner = "&";
    }
    *url_out = apr_pstrcat(p, dest_url, joiner, query, NULL);
    return NULL;
}

btsso_error_t *btsso_authnreq_redirect(apr_pool_t *p,
                                       const btsso_authnreq_t *req,
                                       const char *relay_state,
                                       const btsso_spkey_t *key,
                                       const char *sigalg, apr_time_t now,
                                       btsso_random_fn *rnd, void *rnd_baton,
                                       btsso_saml_msg_t **out)
{
    btsso_error_t *err = btsso_authnreq_build(p, req, now, rnd, rnd_baton,
                                              out);

    if (err == NULL) {
        err = btsso_redirect_encode(p, req->idp_sso_url, "SAMLRequest",
                                    (*out)->xml, relay_state, key, sigalg,
                                    &(*out)->url);
    }
    return err;
}

btsso_error_t *btsso_logoutreq_redirect(apr_pool_t *p,
                                        const btsso_logoutreq_t *req,
                                        const char *relay_state,
                                        const btsso_spkey_t *key,
                                        const char *sigalg, apr_time_t now,
                                        btsso_random_fn *rnd, void *rnd_baton,
                                        btsso_saml_msg_t **out)
{
    btsso_error_t *err = btsso_logoutreq_build(p, req, now, rnd, rnd_baton,
                                               out);

    if (err == NULL) {
        err = btsso_redirect_encode(p, req->destination, "SAMLRequest",
                                    (*out)->xml, relay_state, key, sigalg,
                                    &(*out)->url);
    }
    return err;
}

btsso_error_t *btsso_logoutresp_redirect(apr_pool_t *p,
                                         const btsso_logoutresp_t *resp,
                                         const char *relay_state,
                                         const btsso_spkey_t *key,
                                         const char *sigalg, apr_time_t now,
                                         btsso_random_fn *rnd,
                                         void *rnd_baton,
                                         btsso_saml_msg_t **out)
{
    btsso_error_t *err = btsso_logoutresp_build(p, resp, now, rnd, rnd_baton,
                                                out);

    if (err == NULL) {
        err = btsso_redirect_encode(p, resp->destination, "SAMLResponse",
                                    (*out)->xml, relay_state, key, sigalg,
                                    &(*out)->url);
    }
    return err;
}

/* ---- HTTP-Redirect decoding ------------------------------------------- */

/* One query parameter as received: raw text of "name=value" and the raw
 * value inside it. */
typedef struct raw_param_t {
    const char *pair;
    apr_size_t pair_len;
    const char *value;
    apr_size_t value_len;
} raw_param_t;

static btsso_error_t *decode_value(apr_pool_t *p, const raw_param_t *rp,
                                   char **out, apr_size_t *out_len)
{
    return btsso_pct_decode(p, rp->value, rp->value_len, out, out_len);
}

/* A base64 value: some senders leave '+' unencoded, which form decoding
 * turns into a space; base64 has no spaces, so put the '+' back (the
 * signature covers the raw octets, so this changes nothing it checks). */
static btsso_error_t *decode_b64_value(apr_pool_t *p, const raw_param_t *rp,
                                       unsigned char **out,
                                       apr_size_t *out_len)
{
    btsso_error_t *err;
    char *text;
    apr_size_t text_len, i;

    err = btsso_pct_decode(p, rp->value, rp->value_len, &text, &text_len);
    if (err != NULL) {
        return err;
    }
    for (i = 0; i < text_len; i++) {
        if (text[i] == ' ') {
            text[i] = '+';
        }
    }
    return btsso_b64_decode(p, text, text_len, out, out_len);
}

btsso_error_t *btsso_redirect_decode(apr_pool_t *p, const char *query,
                                     apr_size_t max_xml,
                                     btsso_redirect_msg_t **out)
{
    static const char *names[] = {
        "SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature",
        "SAMLEncoding"
    };
    enum { SAML_REQUEST, SAML_RESPONSE, RELAY_STATE, SIG_ALG, SIGNATURE,
           SAML_ENCODING, N_PARAMS };
    raw_param_t params[N_PARAMS];
    const raw_param_t *message;
    btsso_redirect_msg_t *msg;
    btsso_error_t *err;
    const char *s = query;
    char *text;
    unsigned char *deflated, *xml;
    apr_size_t text_len, deflated_len, xml_len;

    if (max_xml == 0) {
        max_xml = BTSSO_REDIRECT_MAX_XML;
    }
    memset(params, 0, sizeof(params));
    if (query == NULL) {
        query = s = "";
    }
    while (*s != '\0') {
        apr_size_t len = strcspn(s, "&");
        const char *eq = memchr(s, '=', len);
        apr_size_t name_len = eq != NULL ? (apr_size_t)(eq - s) : len;
        int i;

        for (i = 0; i < N_PARAMS; i++) {
            if (strlen(names[i]) == name_len
                && memcmp(names[i], s, name_len) == 0) {
                break;
            }
        }
        if (i < N_PARAMS) {
            if (params[i].pair != NULL) {
                return btsso_error_make(p, 400, "duplicate_parameter",
                                        "The SAML message is malformed.",
                                        "query parameter %s appears twice",
                                        names[i]);
            }
            params[i].pair = s;
            params[i].pair_len = len;
            params[i].value = eq != NULL ? eq + 1 : s + len;
            params[i].value_len = eq != NULL ? len - name_len - 1 : 0;
        }
        s += len;
        if (*s == '&') {
            s++;
        }
    }

    if ((params[SAML_REQUEST].pair == NULL)
        == (params[SAML_RESPONSE].pair == NULL)) {
        return btsso_error_make(p, 400, "no_saml_message",
                                "The request carries no SAML message.",
                                params[SAML_REQUEST].pair != NULL
                                ? "both SAMLRequest and SAMLResponse present"
                                : "neither SAMLRequest nor SAMLResponse "
                                  "present");
    }
    if ((params[SIG_ALG].pair == NULL) != (params[SIGNATURE].pair == NULL)) {
        return btsso_error_make(p, 400, "bad_signature_params",
                                "The SAML message signature is incomplete.",
                                "SigAlg and Signature must come together");
    }
    message = params[SAML_REQUEST].pair != NULL ? &params[SAML_REQUEST]
                                                 : &params[SAML_RESPONSE];
    msg = apr_pcalloc(p, sizeof(*msg));
    msg->param = message == &params[SAML_REQUEST] ? "SAMLRequest"
                                                  : "SAMLResponse";
    if (params[SAML_ENCODING].pair != NULL) {
        err = decode_value(p, &params[SAML_ENCODING], &text, &text_len);
        if (err != NULL) {
            return err;
        }
        if (strcmp(text, ENCODING_DEFLATE) != 0) {
            return btsso_error_make(p, 400, "unsupported_encoding",
                                    "The SAML message encoding is not "
                                    "supported.", "SAMLEncoding '%s'",
                                    text);
        }
    }
    /* Base64 of DEFLATE output can only be this long for an XML within the
     * bound: refuse earlier rather than decode megabytes. */
    if (message->value_len > 3 * (max_xml + 1024)) {
        return btsso_error_make(p, 413, "too_large",
                                "The message is too large.",
                                "%s of %" APR_SIZE_T_FMT " octets",
                                msg->param, message->value_len);
    }
    if ((err = decode_b64_value(p, message, &deflated,
                                &deflated_len)) != NULL
        || (err = btsso_inflate_raw(p, deflated, deflated_len, max_xml,
                                    BTSSO_REDIRECT_MAX_RATIO, &xml,
                                    &xml_len)) != NULL) {
        return err;
    }
    msg->xml = (const char *)xml;
    msg->xml_len = xml_len;

    if (params[RELAY_STATE].pair != NULL) {
        err = decode_value(p, &params[RELAY_STATE], &text, &text_len);
        if (err != NULL) {
            return err;
        }
        msg->relay_state = text;
    }
    if (params[SIG_ALG].pair != NULL) {
        unsigned char *sig;
        apr_size_t sig_len;
        char *signed_octets;

        if ((err = decode_value(p, &params[SIG_ALG], &text,
                                &text_len)) != NULL) {
            return err;
        }
        msg->sigalg = text;
        if ((err = decode_b64_value(p, &params[SIGNATURE], &sig,
                                    &sig_len)) != NULL) {
            return err;
        }
        if (sig_len == 0) {
            return btsso_error_make(p, 400, "bad_signature_params",
                                    "The SAML message signature is "
                                    "incomplete.", "empty Signature");
        }
        msg->signature = sig;
        msg->signature_len = sig_len;
        /* Bindings 3.4.4.1: the octets as received, in this order,
         * whatever order the parameters came in. */
        signed_octets = apr_pstrmemdup(p, message->pair, message->pair_len);
        if (params[RELAY_STATE].pair != NULL) {
            signed_octets = apr_pstrcat(p, signed_octets, "&",
                                        apr_pstrmemdup(
                                            p, params[RELAY_STATE].pair,
                                            params[RELAY_STATE].pair_len),
                                        NULL);
        }
        signed_octets = apr_pstrcat(p, signed_octets, "&",
                                    apr_pstrmemdup(p, params[SIG_ALG].pair,
                                                   params[SIG_ALG].pair_len),
                                    NULL);
        msg->signed_octets = signed_octets;
        msg->signed_len = strlen(signed_octets);
    }
    *out = msg;
    return NULL;
}

static int sigalg_allowed(const char *sigalg,
                          const apr_array_header_t *allowed)
{
    static const char *defaults[] = {
        BTSSO_SIGALG_RSA_SHA256, BTSSO_SIGALG_RSA_SHA384,
        BTSSO_SIGALG_RSA_SHA512, BTSSO_SIGALG_ECDSA_SHA256,
        BTSSO_SIGALG_ECDSA_SHA384, BTSSO_SIGALG_ECDSA_SHA512, NULL
    };
    int i;

    if (allowed == NULL) {
        for (i = 0; defaults[i] != NULL; i++) {
            if (strcmp(defaults[i], sigalg) == 0) {
                return 1;
            }
        }
        return 0;
    }
    for (i = 0; i < allowed->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(allowed, i, const char *), sigalg) == 0) {
            return 1;
        }
    }
    return 0;
}

btsso_error_t *btsso_redirect_verify(apr_pool_t *p,
                                     const btsso_redirect_msg_t *msg,
                                     const apr_array_header_t *certs,
                                     const apr_array_header_t *allowed_sigalgs,
                                     apr_time_t now)
{
    btsso_error_t *last = NULL;
    int i, tried = 0, mismatched = 0;

    if (msg->signature == NULL || msg->sigalg == NULL) {
        return btsso_error_make(p, 403, "unsigned",
                                "The SAML message is not signed.",
                                "%s without SigAlg/Signature", msg->param);
    }
    if (!sigalg_allowed(msg->sigalg, allowed_sigalgs)) {
        return btsso_error_make(p, 403, "sigalg_not_allowed",
                                "The SAML message is signed with an "
                                "algorithm that is not allowed.",
                                "SigAlg '%s' (see BTSSOSignatureAlgorithms)",
                                msg->sigalg);
    }
    for (i = 0; certs != NULL && i < certs->nelts; i++) {
        const btsso_cert_t *cert = APR_ARRAY_IDX(certs, i,
                                                 const btsso_cert_t *);

        if (!btsso_cert_is_valid_at(cert, now)) {
            continue;
        }
        tried++;
        last = btsso_sig_verify(p, cert, msg->signed_octets, msg->signed_len,
                                msg->sigalg, msg->signature,
                                msg->signature_len);
        if (last == NULL) {
            return NULL;
        }
        if (strcmp(last->code, "sig_invalid") != 0) {
            mismatched++;
        }
    }
    if (tried == 0) {
        return btsso_error_make(p, 403, "no_usable_certificate",
                                "No valid certificate is configured to "
                                "check the identity provider's signature.",
                                "%d certificate(s), none valid now",
                                certs != NULL ? certs->nelts : 0);
    }
    /* One certificate, or an algorithm none of them can check: its own
     * error says most; otherwise summarize. */
    if (tried == 1 || mismatched == tried) {
        return last;
    }
    return btsso_error_make(p, 403, "sig_invalid",
                            "The signature is not valid.",
                            "%s signature verifies with none of %d usable "
                            "certificates", msg->sigalg, tried);
}
