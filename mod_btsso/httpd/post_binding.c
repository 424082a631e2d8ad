/*
 * post_binding.c - the HTTP-POST binding in the glue: the auto-submitting
 * page goes out with its nonce CSP and no-store; a POSTed SAML message is
 * read strictly (see btsso_post.h).
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>
#include <util_script.h>
#include <apr_strings.h>

#include "btsso_glue.h"
#include "btsso_post.h"
#include "saml/postbind.h"

APLOG_USE_MODULE(btsso);

/* What an IdP posts is one base64 message of at most BTSSO_POST_MAX_B64
 * octets, a RelayState and perhaps SigAlg-like noise. */
#define POST_MAX_BODY (BTSSO_POST_MAX_B64 + 16 * 1024)
#define POST_MAX_RELAY 8192
#define MSG_BAD "The sign-out message could not be read."

btsso_error_t *btsso_post_send(request_rec *r, const char *dest_url,
                               const char *param, const char *xml,
                               const char *relay)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_post_page_t *pg = NULL;
    btsso_error_t *err;

    err = btsso_post_page(r->pool, dest_url, sc->base_url, param, xml, relay,
                          sc->rt->spkey, NULL, NULL, NULL, &pg);
    if (err != NULL) {
        return err;
    }
    r->status = HTTP_OK;
    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Pragma", "no-cache");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
    apr_table_setn(r->headers_out, "Content-Security-Policy", pg->csp);
    ap_rputs(pg->html, r);
    return NULL;
}

static btsso_error_t *bad(request_rec *r, const char *code,
                          const char *detail)
{
    return btsso_error_make(r->pool, 400, code, MSG_BAD, "%s", detail);
}

btsso_error_t *btsso_post_read(request_rec *r, btsso_post_form_t **out)
{
    apr_array_header_t *pairs = NULL;
    btsso_post_form_t *f;
    const char *b64 = NULL;
    apr_size_t b64_len = 0;
    btsso_error_t *err;
    int rc, n_msg = 0, n_relay = 0;

    *out = NULL;
    rc = ap_parse_form_data(r, NULL, &pairs, 16, POST_MAX_BODY);
    if (rc == HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return btsso_error_make(r->pool, 413, "too_large", MSG_BAD,
                                "form body over %d octets", POST_MAX_BODY);
    }
    if (rc != OK || pairs == NULL) {
        return bad(r, "bad_form", "the body is not a form");
    }
    f = apr_pcalloc(r->pool, sizeof(*f));
    while (pairs->nelts > 0) {
        ap_form_pair_t *pair = (ap_form_pair_t *)apr_array_pop(pairs);
        int is_req = !strcmp(pair->name, "SAMLRequest");
        int is_resp = !strcmp(pair->name, "SAMLResponse");
        int is_relay = !strcmp(pair->name, "RelayState");
        apr_off_t len;
        apr_size_t size;
        char *buf;

        if (!is_req && !is_resp && !is_relay) {
            continue;
        }
        apr_brigade_length(pair->value, 1, &len);
        if (len < 0 || len > POST_MAX_BODY) {
            return btsso_error_make(r->pool, 413, "too_large", MSG_BAD,
                                    "form field over %d octets",
                                    POST_MAX_BODY);
        }
        size = (apr_size_t)len;
        buf = apr_palloc(r->pool, size + 1);
        apr_brigade_flatten(pair->value, buf, &size);
        buf[size] = '\0';
        if (is_relay) {
            if (n_relay++) {
                return bad(r, "duplicate_parameter", "RelayState twice");
            }
            if (size > POST_MAX_RELAY || strlen(buf) != size) {
                return bad(r, "relay_state_too_long", "RelayState over 8 "
                           "KiB or holding a NUL octet");
            }
            f->relay_state = buf;
            continue;
        }
        if (n_msg++) {
            return bad(r, "duplicate_parameter", "more than one SAMLRequest "
                       "or SAMLResponse field");
        }
        f->param = is_req ? "SAMLRequest" : "SAMLResponse";
        b64 = buf;
        b64_len = size;
    }
    if (f->param == NULL) {
        return bad(r, "no_saml_message", "neither SAMLRequest nor "
                   "SAMLResponse in the form");
    }
    err = btsso_post_decode(r->pool, b64, b64_len, 0, &f->xml, &f->xml_len);
    if (err != NULL) {
        return err;
    }
    *out = f;
    return NULL;
}
