/*
 * h_discovery.c - GET <SPPath>/login: a person types an email, the account
 * is found by it; an SSO-enabled account goes to its IdP, anything else to
 * BTSSOPasswordLoginURL.  Unknown emails and accounts without SSO take the
 * same path, so the page tells no more than the redirect itself.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>

#include "btsso_glue.h"
#include "btsso_acct.h"
#include "btsso_handlers.h"
#include "core/b64.h"
#include "core/url.h"

APLOG_USE_MODULE(btsso);

static int show_form(request_rec *r, const char *ret, const char *notice)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);

    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    /* No form-action: browsers apply it to the redirects that follow a
     * submission too, and this form's answer is a redirect to the IdP of
     * the account (any origin). */
    apr_table_setn(r->headers_out, "Content-Security-Policy",
                   "default-src 'none'; style-src 'unsafe-inline'; "
                   "frame-ancestors 'none'; base-uri 'none'");
    ap_rprintf(r, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset="
               "\"utf-8\"><title>Sign in</title><meta name=\"viewport\" "
               "content=\"width=device-width\"><style>"
               "body{font-family:system-ui,sans-serif;background:#f4f5f7;"
               "margin:0}main{max-width:26rem;margin:5rem auto;"
               "background:#fff;padding:2rem;border-radius:8px;"
               "box-shadow:0 1px 4px rgba(0,0,0,.12)}input{width:100%%;"
               "box-sizing:border-box;padding:.6rem;margin:.5rem 0 1rem;"
               "font-size:1rem}button{padding:.6rem 1.2rem;font-size:1rem;"
               "background:#5514b4;color:#fff;border:0;border-radius:4px}"
               ".notice{color:#b00020}</style></head><body><main>"
               "<h1>Sign in</h1>%s%s%s<form method=\"get\" action=\"%s%s/login\">"
               "<label for=\"email\">Work email</label>"
               "<input id=\"email\" name=\"email\" type=\"email\" "
               "autocomplete=\"username\" required autofocus>",
               notice ? "<p class=\"notice\">" : "",
               notice ? ap_escape_html(r->pool, notice) : "",
               notice ? "</p>" : "",
               ap_escape_html(r->pool, sc->base_url),
               ap_escape_html(r->pool, sc->sp_path));
    if (ret != NULL && *ret != '\0') {
        ap_rprintf(r, "<input type=\"hidden\" name=\"return\" value=\"%s\">",
                   ap_escape_html(r->pool, ret));
    }
    ap_rputs("<button type=\"submit\">Continue</button></form></main>"
             "</body></html>\n", r);
    return OK;
}

int btsso_handle_discovery(request_rec *r)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *ret, *email, *account = NULL;
    const btsso_acct_entry *e = NULL;
    btsso_email_accounts_t *ea = NULL;
    btsso_store_t *st;
    btsso_error_t *err;

    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ret = btsso_return_arg(r);
    if (ret == NULL) {
        err = btsso_error_make(r->pool, 400, "bad_return",
            "The page to return to after sign-in is not part of this "
            "portal.", "refused return target (BTSSO0205)");
        btsso_signin_refused(r, APLOG_INFO, "BTSSO0254", "sign-in refused",
                             NULL, NULL, err, 0);
        return btsso_send_error_page(r, err);
    }
    email = btsso_query_arg(r, "email");
    if (email == NULL || *email == '\0') {
        return show_form(r, ret, NULL);
    }
    if (strlen(email) > 254 || strchr(email, '@') == NULL) {
        return show_form(r, ret, "Enter your work email address.");
    }
    st = btsso_request_store(r);
    if (st == NULL) {
        err = btsso_error_make(r->pool, 503, "store_unavailable",
            "The sign-in service is temporarily unavailable; try again in "
            "a moment.", "no database connection (BTSSO0101)");
        btsso_signin_refused(r, APLOG_WARNING, "BTSSO0255",
                             "sign-in refused", NULL, NULL, err, 0);
        return btsso_send_error_page(r, err);
    }
    /* Only the one account the email belongs to (a domain's claimant
     * first) may take it to an IdP: an email several accounts hold goes
     * the password way, or one account could send another's users to its
     * own IdP. */
    err = btsso_store_account_by_email(st, r->pool, email, &ea);
    if (err != NULL) {
        btsso_log_error(r, APLOG_ERR, "BTSSO0220", NULL, err);
    }
    else {
        account = ea->account;
    }
    if (account != NULL) {
        err = btsso_acct_get(r, account, &e);
        if (err != NULL) {
            btsso_log_error(r, APLOG_ERR, "BTSSO0221", account, err);
            e = NULL;
        }
    }
    if (e != NULL && e->account->sso_enabled && e->idp != NULL) {
        return btsso_start_login(r, e, *ret ? ret : NULL, 0);
    }
    /* Unknown email, one held by several accounts, or an account without
     * SSO: the same answer. */
    if (sc->password_login_url != NULL) {
        const char *url = sc->password_login_url;

        if (*ret != '\0') {
            url = apr_pstrcat(r->pool, url, strchr(url, '?') ? "&" : "?",
                              "return=", btsso_pct_encode(r->pool, ret,
                              strlen(ret)), NULL);
        }
        return btsso_redirect(r, HTTP_MOVED_TEMPORARILY, url);
    }
    return btsso_send_page(r, HTTP_OK, "Sign in with your password",
        "Single sign-on is not used for this address: sign in with your "
        "password.", NULL, NULL);
}
