/*
 * glue_signin.c - sending a browser to its IdP to sign in: the one path
 * that /login/<account>, /test/<account>, discovery and AuthType BTSSO
 * all take (an AuthnRequest, the pending sign-in cookie, the redirect).
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
#include "btsso_post.h"
#include "btsso_policy.h"
#include "core/addressing.h"
#include "core/url.h"
#include "saml/authnreq.h"

APLOG_USE_MODULE(btsso);

/*
 * The return target to remember for a sign-in: return_to when it is a
 * local path or a URL on BTSSOBaseURL's origin of at most
 * BTSSO_URL_MAX_RETURN octets (normalized), else NULL (the person lands
 * on "/" after signing in).
 */
static const char *storable_return(request_rec *r, const char *return_to)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *norm = NULL;

    if (return_to == NULL || *return_to == '\0') {
        return NULL;
    }
    if (!btsso_url_is_safe_return(r->pool, return_to, sc->base_url, &norm)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BTSSO0241: return target not kept (%" APR_SIZE_T_FMT
                      " octets, not a local path nor on %s, or longer than "
                      "%d): the sign-in lands on /", strlen(return_to),
                      sc->base_url, BTSSO_URL_MAX_RETURN);
        return NULL;
    }
    return norm;
}

/*
 * Send the browser to the account's IdP with a fresh AuthnRequest.  The
 * return target is checked here again (NULL: none); the pending request
 * goes into a cookie of this browser (pending.c), never into the cache.
 */
int btsso_start_login(request_rec *r, const btsso_acct_entry *e,
                      const char *return_to, int test)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const btsso_endpoint_t *sso;
    btsso_authnreq_t req;
    btsso_sp_addr_t addr;
    btsso_pending_t pd;
    btsso_saml_msg_t *msg = NULL;
    btsso_error_t *err;
    const char *relay;
    const char *account = e->account->account;
    int post = 0;

    if (e->idp == NULL || e->md == NULL) {
        err = btsso_error_make(r->pool, 409, "no_idp",
            "Single sign-on is not set up for this account yet.",
            "account has no IdP metadata");
        btsso_signin_refused(r, APLOG_WARNING, "BTSSO0201", "sign-in refused",
                             account, e->idp ? e->idp->entity_id : NULL,
                             err, BTSSO_SIGNIN_RECORD);
        return btsso_send_error_page(r, err);
    }
    /* Redirect when the IdP offers it, else the HTTP-POST form. */
    sso = btsso_metadata_endpoint(e->md->sso, BTSSO_BINDING_REDIRECT);
    if (sso == NULL) {
        sso = btsso_metadata_endpoint(e->md->sso, BTSSO_BINDING_POST);
        post = sso != NULL;
    }
    if (sso == NULL) {
        err = btsso_error_make(r->pool, 409, "no_redirect_sso",
            "Your organisation's identity provider cannot be reached "
            "for sign-in; contact your administrator.",
            "IdP %s offers no HTTP-Redirect nor HTTP-POST "
            "SingleSignOnService", e->idp->entity_id);
        btsso_signin_refused(r, APLOG_WARNING, "BTSSO0202", "sign-in refused",
                             account, e->idp ? e->idp->entity_id : NULL,
                             err, BTSSO_SIGNIN_RECORD);
        return btsso_send_error_page(r, err);
    }
    btsso_sp_addressing(r->pool, sc->base_url, sc->sp_path, sc->sp_entity_id,
                        account, e->idp->shared, &addr);
    memset(&req, 0, sizeof(req));
    req.sp_entity_id = addr.entity_id;
    req.idp_sso_url = sso->location;
    req.acs_url = addr.acs_url;
    req.nameid_format = NULL;
    /* ForceAuthn (always for /test), RequestedAuthnContext when opted in */
    btsso_policy_authnreq(e, test, &req);

    /* The request ID is needed in the pending record before the URL is
     * built, and the RelayState key in the URL: build, remember, encode. */
    err = btsso_authnreq_build(r->pool, &req, apr_time_now(), NULL, NULL,
                               &msg);
    if (err == NULL) {
        memset(&pd, 0, sizeof(pd));
        pd.request_id = msg->id;
        pd.account = account;
        pd.return_to = storable_return(r, return_to);
        pd.test = test;
        relay = btsso_pending_put(r, &pd);
        if (relay == NULL) {
            err = btsso_error_make(r->pool, 500, "pending",
                "The sign-in could not be started; try again in a "
                "moment.", "cannot make the pending sign-in cookie");
        }
        else if (post) {
            err = btsso_post_send(r, sso->location, "SAMLRequest", msg->xml,
                                  relay);
        }
        else {
            err = btsso_redirect_encode(r->pool, sso->location,
                                        "SAMLRequest", msg->xml, relay,
                                        sc->rt->spkey, NULL, &msg->url);
        }
    }
    if (err != NULL) {
        btsso_signin_refused(r, APLOG_ERR, "BTSSO0203", "sign-in refused",
                             account, e->idp ? e->idp->entity_id : NULL,
                             err, BTSSO_SIGNIN_RECORD);
        return btsso_send_error_page(r, err);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "BTSSO0204: account %s: AuthnRequest %s to %s%s%s", account,
                  msg->id, e->idp->entity_id, test ? " (test)" : "",
                  post ? " over HTTP-POST" : "");
    return post ? OK : btsso_redirect(r, HTTP_MOVED_TEMPORARILY, msg->url);
}
