/*
 * h_login.c - SP-initiated login: GET <SPPath>/login/<account>?return=...
 * and GET <SPPath>/test/<account>; both go to the IdP through
 * glue_signin.c, as AuthType BTSSO and discovery do.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>

#include "btsso_glue.h"
#include "btsso_acct.h"
#include "btsso_session.h"
#include "btsso_handlers.h"
#include "core/addressing.h"
#include "core/url.h"
#include "core/b64.h"
#include "saml/authnreq.h"

APLOG_USE_MODULE(btsso);

static int login_for_account(request_rec *r, const char *account, int test)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const btsso_acct_entry *e = NULL;
    btsso_error_t *err;
    const char *ret;

    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!btsso_account_id_ok(account)) {
        return HTTP_NOT_FOUND;
    }
    ret = btsso_return_arg(r);
    if (ret == NULL) {
        err = btsso_error_make(r->pool, 400, "bad_return",
            "The page to return to after sign-in is not part of this "
            "portal.", "refused return target (BTSSO0205)");
        btsso_signin_refused(r, APLOG_INFO, "BTSSO0254", "sign-in refused",
                             account, NULL, err, 0);
        return btsso_send_error_page(r, err);
    }
    err = btsso_acct_get(r, account, &e);
    if (err != NULL) {
        if (err->status == 404) {
            err->message = "There is no account of that name.";
            btsso_signin_refused(r, APLOG_INFO, "BTSSO0254",
                                 "sign-in refused", account, NULL, err, 0);
            return btsso_send_page(r, HTTP_NOT_FOUND, "Unknown account",
                                   err->message, NULL, NULL);
        }
        btsso_signin_refused(r, APLOG_ERR, "BTSSO0206", "sign-in refused",
                             account, NULL, err, 0);
        return btsso_send_error_page(r, err);
    }
    if (!e->account->sso_enabled && !test) {
        /* Accounts without SSO are never sent to an IdP. */
        if (sc->password_login_url != NULL) {
            return btsso_redirect(r, HTTP_MOVED_TEMPORARILY,
                                  sc->password_login_url);
        }
        err = btsso_error_make(r->pool, 403, "sso_disabled",
            "Single sign-on is not enabled for this account; sign in "
            "with your password.", "GET /login/%s", account);
        btsso_signin_refused(r, APLOG_INFO, "BTSSO0254", "sign-in refused",
                             account, e->idp ? e->idp->entity_id : NULL, err,
                             BTSSO_SIGNIN_RECORD);
        return btsso_send_page(r, HTTP_FORBIDDEN, "Single sign-on is off",
                               err->message, NULL, NULL);
    }
    return btsso_start_login(r, e, *ret ? ret : NULL, test);
}

int btsso_handle_login(request_rec *r, const char *account)
{
    return login_for_account(r, account, 0);
}

int btsso_handle_test(request_rec *r, const char *account)
{
    return login_for_account(r, account, 1);
}
