/*
 * h_slo.c - logout and SAML Single Logout (HTTP-Redirect and HTTP-POST
 * bindings, both directions):
 *   - GET <SPPath>/logout?return=...: ends the local session, then
 *     continues with a signed LogoutRequest to the IdP when it has an SLO
 *     endpoint (slo_start): over Redirect when the IdP offers it, else in
 *     the auto-submitting POST form;
 *   - GET or POST <SPPath>/slo: the IdP's LogoutResponse to it, or a
 *     LogoutRequest of the IdP's own, which ends the sessions it names and
 *     is answered with a signed LogoutResponse over the binding the IdP
 *     offers (Redirect first) at its ResponseLocation.
 *
 * Local logout never fails: whatever the IdP does (unreachable, a wrong
 * or unsigned answer, an error status), the person stays signed out here
 * and is told so.  An IdP's LogoutRequest ends nothing before its
 * signature verified against the account's usable certificates.
 *
 * Both bindings are verified as strictly: over Redirect the query-string
 * signature (btsso_redirect_verify), over POST the enveloped XML signature
 * by the rules that guard a Response (btsso_logout_parse_verified: one
 * signature on the root, referencing its ID, no wrapping, keys only from
 * the account's usable certificates, KeyInfo never followed), and the
 * message then used is the one read from the verified tree.  A message
 * without a signature is refused either way.
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
#include "core/addressing.h"
#include "saml/authnreq.h"
#include "saml/metadata.h"
#include "saml/response.h"
#include "saml/logout.h"

APLOG_USE_MODULE(btsso);

#define SIGNED_OUT_TITLE "Signed out"

/* BTSSOSignatureAlgorithms as the SigAlg URIs the Redirect binding uses. */
static const apr_array_header_t *allowed_sigalgs(request_rec *r)
{
    static const struct {
        unsigned int bit;
        const char *uri;
    } map[] = {
        { BTSSO_SIG_RSA_SHA1, "http://www.w3.org/2000/09/xmldsig#rsa-sha1" },
        { BTSSO_SIG_RSA_SHA256,
          "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" },
        { BTSSO_SIG_RSA_SHA384,
          "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" },
        { BTSSO_SIG_RSA_SHA512,
          "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" },
        { BTSSO_SIG_ECDSA_SHA1,
          "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1" },
        { BTSSO_SIG_ECDSA_SHA256,
          "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" },
        { BTSSO_SIG_ECDSA_SHA384,
          "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" },
        { BTSSO_SIG_ECDSA_SHA512,
          "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512" },
    };
    btsso_srv_cfg *sc = btsso_srv(r->server);
    unsigned int bits = (unsigned int)sc->signature_algorithms;
    apr_array_header_t *out;
    apr_size_t i;

    if (bits == 0) {
        return NULL;    /* authnreq's default: SHA-256 and stronger */
    }
    out = apr_array_make(r->pool, 8, sizeof(const char *));
    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (bits & map[i].bit) {
            APR_ARRAY_PUSH(out, const char *) = map[i].uri;
        }
    }
    return out;
}

/* The IdP's SLO endpoint: Redirect when it offers one, else POST (*post
 * set), else NULL. */
static const btsso_endpoint_t *idp_slo(const btsso_acct_entry *e, int *post)
{
    const btsso_endpoint_t *ep;

    *post = 0;
    if (e == NULL || e->idp == NULL || e->md == NULL || e->md->slo == NULL) {
        return NULL;
    }
    ep = btsso_metadata_endpoint(e->md->slo, BTSSO_BINDING_REDIRECT);
    if (ep == NULL) {
        ep = btsso_metadata_endpoint(e->md->slo, BTSSO_BINDING_POST);
        *post = ep != NULL;
    }
    return ep;
}

/* A logout message as it arrived: over Redirect (rm) or POST (the XML,
 * whose signature is inside). */
typedef struct slo_in_t {
    const btsso_redirect_msg_t *rm;     /* NULL over POST */
    const char *xml;                    /* POST: the decoded message */
    apr_size_t xml_len;
    const char *relay_state;
} slo_in_t;

/* Verify the message's signature with the account's usable certificates.
 * Over POST, *lm becomes the message read from the very tree whose
 * signature verified (what was read before only chose the account). */
static btsso_error_t *verify_in(request_rec *r, const slo_in_t *in,
                                const btsso_acct_entry *e, apr_time_t now,
                                const btsso_logout_msg_t **lm)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const apr_array_header_t *certs = btsso_acct_usable_certs(r->pool, e,
                                                              now);
    btsso_logout_msg_t *v = NULL;
    btsso_error_t *err;

    if (in->rm != NULL) {
        return btsso_redirect_verify(r->pool, in->rm, certs,
                                     allowed_sigalgs(r), now);
    }
    err = btsso_logout_parse_verified(r->pool, in->xml, in->xml_len, 0,
                                      certs,
                                      (unsigned int)sc->signature_algorithms,
                                      (unsigned int)sc->digest_algorithms,
                                      &v);
    if (err != NULL) {
        return err;
    }
    if (v->kind != (*lm)->kind || strcmp(v->issuer, (*lm)->issuer) != 0) {
        return btsso_error_make(r->pool, 500, "internal", "The sign-out "
                                "message was refused.", "the verified "
                                "message reads differently");
    }
    *lm = v;
    return NULL;
}

static int signed_out_page(request_rec *r, const char *text,
                           const char *target)
{
    return btsso_send_page(r, HTTP_OK, SIGNED_OUT_TITLE, text, target,
                           target ? "Continue" : NULL);
}

/* ---- SP-initiated: /logout continues here ------------------------------- */

static int slo_start(request_rec *r, const btsso_session_t *ss,
                     const char *target)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const btsso_acct_entry *e = NULL;
    const btsso_endpoint_t *slo;
    btsso_logoutreq_t req;
    btsso_sp_addr_t addr;
    btsso_pending_t pd;
    btsso_saml_msg_t *msg = NULL;
    btsso_error_t *err;
    const char *relay;
    int post = 0;

    err = btsso_acct_get(r, ss->account, &e);
    if (err != NULL) {
        btsso_log_error(r, APLOG_WARNING, "BTSSO0510", ss->account, err);
        return DECLINED;
    }
    /* The IdP that issued the session may have been replaced since: only
     * that one is asked to end it. */
    if (e->idp == NULL || strcmp(e->idp->entity_id, ss->idp) != 0
        || (slo = idp_slo(e, &post)) == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BTSSO0505: account %s: no HTTP-Redirect or HTTP-POST "
                      "SingleLogoutService of IdP %s: local logout only",
                      ss->account, ss->idp);
        return DECLINED;
    }
    btsso_sp_addressing(r->pool, sc->base_url, sc->sp_path, sc->sp_entity_id,
                        ss->account, e->idp->shared, &addr);
    memset(&req, 0, sizeof(req));
    req.sp_entity_id = addr.entity_id;
    req.destination = slo->location;
    req.name_id = ss->name_id;
    req.name_id_format = ss->name_id_format;
    req.session_index = ss->session_index;
    err = btsso_logoutreq_build(r->pool, &req, apr_time_now(), NULL, NULL,
                                &msg);
    if (err == NULL) {
        memset(&pd, 0, sizeof(pd));
        pd.request_id = msg->id;
        pd.account = ss->account;
        pd.return_to = target;
        relay = btsso_logout_pending_put(r, &pd);
        if (relay == NULL) {
            err = btsso_error_make(r->pool, 503, "session_store",
                                   "The sign-out could not be completed at "
                                   "your organisation.", "cannot store the "
                                   "pending LogoutRequest");
        }
        else if (post) {
            err = btsso_post_send(r, slo->location, "SAMLRequest", msg->xml,
                                  relay);
        }
        else {
            err = btsso_redirect_encode(r->pool, slo->location,
                                        "SAMLRequest", msg->xml, relay,
                                        sc->rt->spkey, NULL, &msg->url);
        }
    }
    if (err != NULL) {
        btsso_log_error(r, APLOG_WARNING, "BTSSO0511", ss->account, err);
        return DECLINED;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "BTSSO0502: account %s: LogoutRequest %s to IdP %s for "
                  "user %s%s", ss->account, msg->id, ss->idp, ss->email,
                  post ? " over HTTP-POST" : "");
    return post ? OK : btsso_redirect(r, HTTP_MOVED_TEMPORARILY, msg->url);
}

/* GET <SPPath>/logout */
int btsso_handle_logout(request_rec *r)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_session_t *ss;
    const char *ret;

    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ret = btsso_return_arg(r);
    if (ret == NULL) {
        ret = "";
    }
    ss = btsso_session_get(r);
    /* The local session ends first, whatever happens next: local logout
     * never fails. */
    btsso_session_destroy(r);
    if (ss != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BTSSO0501: logout: account %s, user %s", ss->account,
                      ss->email);
    }
    if (*ret == '\0') {
        ret = "/";
    }
    if (ret[0] == '/') {
        ret = apr_pstrcat(r->pool, sc->base_url, ret, NULL);
    }
    if (ss != NULL) {
        /* With an IdP SLO endpoint, on to the IdP (slo_start); any failure
         * there leaves the local logout done and ends at ret. */
        int rc = slo_start(r, ss, ret);

        if (rc != DECLINED) {
            return rc;
        }
    }
    return btsso_redirect(r, HTTP_MOVED_TEMPORARILY, ret);
}

/* ---- the IdP's answer to our LogoutRequest ------------------------------ */

static int logout_response(request_rec *r, const slo_in_t *in,
                           const btsso_logout_msg_t *lm)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const btsso_acct_entry *e = NULL;
    btsso_pending_t *pd;
    btsso_logout_expect_t ex;
    btsso_sp_addr_t addr;
    btsso_error_t *err = NULL;
    const char *target;
    apr_time_t now = apr_time_now();

    pd = btsso_logout_pending_take(r, in->relay_state);
    if (pd == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BTSSO0530: LogoutResponse %s from %s answers no "
                      "pending sign-out (RelayState unknown, used or "
                      "expired)", ap_escape_logitem(r->pool, lm->id),
                      ap_escape_logitem(r->pool, lm->issuer));
        return signed_out_page(r, "You are signed out of the portal.",
                               apr_pstrcat(r->pool, sc->base_url, "/", NULL));
    }
    target = pd->return_to ? pd->return_to
                           : apr_pstrcat(r->pool, sc->base_url, "/", NULL);
    err = btsso_acct_get(r, pd->account, &e);
    if (err == NULL && e->idp == NULL) {
        err = btsso_error_make(r->pool, 403, "no_idp", "The sign-out "
                               "message was refused.", "the account has no "
                               "IdP any more");
    }
    if (err == NULL) {
        err = verify_in(r, in, e, now, &lm);
    }
    if (err == NULL) {
        btsso_sp_addressing(r->pool, sc->base_url, sc->sp_path,
                            sc->sp_entity_id, pd->account, e->idp->shared,
                            &addr);
        memset(&ex, 0, sizeof(ex));
        ex.idp_entity_id = e->idp->entity_id;
        ex.slo_url = addr.slo_url;
        ex.require_destination = 1;
        ex.in_response_to = pd->request_id;
        ex.now = now;
        ex.clock_skew = (int)apr_time_sec(sc->clock_skew);
        err = btsso_logout_check(r->pool, lm, &ex);
    }
    if (err == NULL && !btsso_logout_status_ok(lm)) {
        err = btsso_error_make(r->pool, 403, "status_not_success",
                               "Your organisation did not confirm the "
                               "sign-out.", "status %s%s%s%s%s",
                               lm->status_code,
                               lm->status_subcode ? " / " : "",
                               lm->status_subcode ? lm->status_subcode : "",
                               lm->status_message ? ": " : "",
                               lm->status_message ? lm->status_message : "");
    }
    if (err != NULL) {
        btsso_log_error(r, APLOG_WARNING, "BTSSO0531", pd->account, err);
        return signed_out_page(r, "You are signed out of the portal, but "
                               "your organisation's sign-in service did not "
                               "confirm that it signed you out too. Close "
                               "your browser to end that session.", target);
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "BTSSO0503: account %s: IdP %s confirmed LogoutRequest %s%s",
                  pd->account, e->idp->entity_id, pd->request_id,
                  in->rm ? "" : " over HTTP-POST");
    return btsso_redirect(r, HTTP_MOVED_TEMPORARILY, target);
}

/* ---- a LogoutRequest the IdP sends ------------------------------------ */

/* The account an IdP's LogoutRequest is for: the account of the caller's
 * session when that session came from the same IdP (a shared account
 * beside a self-service one has the same Issuer), else the self-service
 * account of its Issuer. */
static btsso_error_t *request_account(request_rec *r,
                                      const btsso_logout_msg_t *lm,
                                      const char **account)
{
    btsso_session_t *ss;
    btsso_error_t *err;

    ss = btsso_session_get(r);
    if (ss != NULL && !strcmp(ss->idp, lm->issuer)) {
        *account = ss->account;
        return NULL;
    }
    err = btsso_acct_by_issuer(r, lm->issuer, account);
    if (err != NULL || *account != NULL) {
        return err;
    }
    return btsso_error_make(r->pool, 403, "unknown_idp", "The sign-out "
                            "message was refused.", "no account has IdP "
                            "entityID %s", lm->issuer);
}

static int idp_logout_request(request_rec *r, const slo_in_t *in,
                              const btsso_logout_msg_t *lm)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const btsso_acct_entry *e = NULL;
    const btsso_endpoint_t *slo;
    const char *account = NULL;
    btsso_logout_expect_t ex;
    btsso_logoutresp_t resp;
    btsso_sp_addr_t addr;
    btsso_saml_msg_t *out = NULL;
    btsso_error_t *err;
    apr_time_t now = apr_time_now();
    int ended, replay, post = 0;

    err = request_account(r, lm, &account);
    if (err == NULL) {
        err = btsso_acct_get(r, account, &e);
    }
    if (err == NULL && (e->idp == NULL
                        || strcmp(e->idp->entity_id, lm->issuer) != 0)) {
        err = btsso_error_make(r->pool, 403, "unknown_idp", "The sign-out "
                               "message was refused.", "IdP %s is not the "
                               "account's IdP", lm->issuer);
    }
    /* Nothing is ended, and nothing answered, before this verified. */
    if (err == NULL) {
        err = verify_in(r, in, e, now, &lm);
    }
    if (err == NULL) {
        btsso_sp_addressing(r->pool, sc->base_url, sc->sp_path,
                            sc->sp_entity_id, account, e->idp->shared,
                            &addr);
        memset(&ex, 0, sizeof(ex));
        ex.idp_entity_id = e->idp->entity_id;
        ex.slo_url = addr.slo_url;
        ex.require_destination = 1;
        ex.now = now;
        ex.clock_skew = (int)apr_time_sec(sc->clock_skew);
        err = btsso_logout_check(r->pool, lm, &ex);
    }
    if (err == NULL) {
        /* A replayed request must not end a later login without a
         * SessionIndex; remember it for as long as it could be taken. */
        replay = btsso_replay_check_and_mark(
            r, e->idp->entity_id, apr_pstrcat(r->pool, "logout:", lm->id,
                                              NULL),
            lm->issue_instant + apr_time_from_sec(600) + sc->clock_skew);
        if (replay != 0) {
            err = btsso_error_make(r->pool, replay > 0 ? 403 : 503,
                                   replay > 0 ? "replay" : "replay_cache",
                                   "The sign-out message was refused.",
                                   "LogoutRequest %s seen before", lm->id);
        }
    }
    if (err != NULL) {
        btsso_log_error(r, APLOG_WARNING, "BTSSO0523", account, err);
        return btsso_send_page(r, err->status == 503 ? 503 : HTTP_FORBIDDEN,
                               "Sign-out refused", err->message, NULL,
                               NULL);
    }

    ended = btsso_session_end_by_name_id(r, account, e->idp->entity_id,
                                         lm->name_id, lm->session_indexes);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "BTSSO0504: account %s: IdP %s LogoutRequest %s for "
                  "NameID %s ended %d session(s)%s", account,
                  e->idp->entity_id, lm->id,
                  ap_escape_logitem(r->pool, lm->name_id), ended,
                  in->rm ? "" : " (over HTTP-POST)");

    /* The answer goes over the binding the IdP offers (Redirect first),
     * whichever one the request came by, to its ResponseLocation. */
    slo = idp_slo(e, &post);
    if (slo == NULL) {
        return signed_out_page(r, "You are signed out of the portal.", NULL);
    }
    memset(&resp, 0, sizeof(resp));
    resp.sp_entity_id = addr.entity_id;
    resp.destination = slo->response_location ? slo->response_location
                                              : slo->location;
    resp.in_response_to = lm->id;
    if (post) {
        err = btsso_logoutresp_build(r->pool, &resp, now, NULL, NULL, &out);
        if (err == NULL) {
            err = btsso_post_send(r, resp.destination, "SAMLResponse",
                                  out->xml, in->relay_state);
        }
    }
    else {
        err = btsso_logoutresp_redirect(r->pool, &resp, in->relay_state,
                                        sc->rt->spkey, NULL, now, NULL, NULL,
                                        &out);
    }
    if (err != NULL) {
        btsso_log_error(r, APLOG_WARNING, "BTSSO0524", account, err);
        return signed_out_page(r, "You are signed out of the portal.", NULL);
    }
    return post ? OK : btsso_redirect(r, HTTP_MOVED_TEMPORARILY, out->url);
}

/* ---- GET and POST <SPPath>/slo --------------------------------------- */

int btsso_handle_slo(request_rec *r)
{
    btsso_redirect_msg_t *rm = NULL;
    btsso_post_form_t *pf = NULL;
    btsso_logout_msg_t *lm = NULL;
    btsso_error_t *err;
    slo_in_t in;
    const char *param = NULL;

    memset(&in, 0, sizeof(in));
    if (r->method_number == M_POST) {
        err = btsso_post_read(r, &pf);
        if (err == NULL) {
            in.xml = pf->xml;
            in.xml_len = pf->xml_len;
            in.relay_state = pf->relay_state;
            param = pf->param;
        }
    }
    else if (r->method_number == M_GET) {
        err = btsso_redirect_decode(r->pool, r->args ? r->args : "", 0, &rm);
        if (err == NULL) {
            in.rm = rm;
            in.xml = rm->xml;
            in.xml_len = rm->xml_len;
            in.relay_state = rm->relay_state;
            param = rm->param;
        }
    }
    else {
        r->allowed = (AP_METHOD_BIT << M_GET) | (AP_METHOD_BIT << M_POST);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    /* Read (not yet trusted) to find the account whose certificates
     * verify it; over POST it is read again from the verified tree. */
    if (err == NULL) {
        err = btsso_logout_parse(r->pool, in.xml, in.xml_len, 0, &lm);
    }
    if (err == NULL
        && (lm->kind == BTSSO_LOGOUT_REQUEST)
           != !strcmp(param, "SAMLRequest")) {
        err = btsso_error_make(r->pool, 400, "wrong_parameter",
                               "The sign-out message could not be read.",
                               "%s carried in %s", lm->kind
                               == BTSSO_LOGOUT_REQUEST ? "LogoutRequest"
                               : "LogoutResponse", param);
    }
    if (err != NULL) {
        btsso_log_error(r, APLOG_WARNING, "BTSSO0521", NULL, err);
        return btsso_send_page(r, err->status == 413 ? 413
                               : HTTP_BAD_REQUEST, "Sign-out failed",
                               err->message, NULL, NULL);
    }
    if (lm->kind == BTSSO_LOGOUT_RESPONSE) {
        return logout_response(r, &in, lm);
    }
    return idp_logout_request(r, &in, lm);
}
