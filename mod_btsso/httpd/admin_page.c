/*
 * admin_page.c - GET /<account>/: the self-service SSO set-up page.
 *
 * One self-contained HTML page (admin_page.html, turned into a C string at
 * build time): its style and script are inline and run under a strict
 * Content-Security-Policy with a fresh nonce per response, so nothing but
 * this page's own code runs and it can talk only to its own origin.  The
 * page holds no data: its script reads GET config and renders every value
 * as text (never as markup).
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>
#include <apr_base64.h>

#include "btsso_glue.h"
#include "btsso_admin.h"

APLOG_USE_MODULE(btsso);

static const char admin_page[] =
#include "mod_btsso/httpd/admin_page_html.h"
    ;

#define NONCE_MARK "@NONCE@"
#define NONCE_BYTES 18

int btsso_admin_send_page(request_rec *r, const char *account)
{
    unsigned char raw[NONCE_BYTES];
    char nonce[32];
    const char *at, *mark;
    apr_size_t mark_len = strlen(NONCE_MARK);

    if (apr_generate_random_bytes(raw, sizeof(raw)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BTSSO0422: account %s: no random bytes for the page "
                      "nonce", account);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* base64 of 18 bytes: 24 characters, no padding */
    apr_base64_encode(nonce, (const char *)raw, NONCE_BYTES);
    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->headers_out, "Content-Security-Policy", apr_psprintf(
        r->pool, "default-src 'none'; script-src 'nonce-%s'; "
        "style-src 'nonce-%s'; connect-src 'self'; img-src 'self' data:; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        nonce, nonce));
    apr_table_setn(r->headers_out, "X-Frame-Options", "DENY");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "Referrer-Policy", "no-referrer");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (r->header_only) {
        return OK;
    }
    for (at = admin_page; (mark = strstr(at, NONCE_MARK)) != NULL;
         at = mark + mark_len) {
        ap_rwrite(at, (int)(mark - at), r);
        ap_rputs(nonce, r);
    }
    ap_rputs(at, r);
    return OK;
}
