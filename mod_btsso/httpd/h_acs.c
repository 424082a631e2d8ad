/*
 * h_acs.c - the Assertion Consumer Service: POST <SPPath>/acs and
 * POST <SPPath>/acs/<account> (HTTP-POST binding).
 *
 * Order matters: the Issuer (unverified) only chooses which account's
 * certificates to verify against; the assertion ID enters the replay cache
 * only after the signature verified, so a forged copy posted first cannot
 * burn the genuine response.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <util_script.h>
#include <apr_strings.h>

#include "btsso_glue.h"
#include "btsso_acct.h"
#include "btsso_session.h"
#include "btsso_attrs.h"
#include "btsso_handlers.h"
#include "btsso_policy.h"
#include "core/addressing.h"
#include "core/pending.h"
#include "core/url.h"
#include "saml/response.h"

APLOG_USE_MODULE(btsso);

#define ACS_MAX_BODY (1024 * 1024)

typedef struct acs_form {
    const char *saml_response;
    apr_size_t saml_response_len;
    const char *relay_state;
} acs_form;

/*
 * The form's SAMLResponse and RelayState (the first of each).  A body that
 * is no urlencoded form has neither (and is discarded).  Read whole and
 * searched in place: ap_parse_form_data builds a brigade per field, one
 * octet at a time, which cost 4% of a login.
 */
static int read_form(request_rec *r, acs_form *f)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    static const char form_type[] = "application/x-www-form-urlencoded";
    btsso_error_t *e;
    apr_size_t len = 0, relay_len = 0;
    char *body = NULL;

    memset(f, 0, sizeof(*f));
    if (ct == NULL || strncasecmp(ct, form_type, sizeof(form_type) - 1) != 0
        || (ct[sizeof(form_type) - 1] != '\0'
            && ct[sizeof(form_type) - 1] != ';'
            && ct[sizeof(form_type) - 1] != ' ')) {
        return ap_discard_request_body(r);
    }
    e = btsso_read_body(r, ACS_MAX_BODY, &body, &len);
    if (e != NULL) {
        return e->status == 413 ? HTTP_REQUEST_ENTITY_TOO_LARGE
                                : HTTP_BAD_REQUEST;
    }
    f->saml_response = btsso_urlencoded_arg(r->pool, body, len,
                                            "SAMLResponse",
                                            &f->saml_response_len);
    f->relay_state = btsso_urlencoded_arg(r->pool, body, len, "RelayState",
                                          &relay_len);
    if (f->relay_state != NULL && strlen(f->relay_state) != relay_len) {
        return HTTP_BAD_REQUEST;        /* a NUL octet in it */
    }
    return OK;
}

/* The email of the assertion per the account's mapping (first value). */
static const char *assertion_email(const btsso_acct_entry *e,
                                   const btsso_assertion_t *a)
{
    const btsso_attribute_t *attr;

    if (e->idp->email_from_name_id || e->idp->email_attribute == NULL) {
        return e->idp->email_from_name_id ? a->name_id : NULL;
    }
    attr = btsso_assertion_attribute(a, e->idp->email_attribute);
    if (attr == NULL || attr->values->nelts == 0) {
        return NULL;
    }
    return APR_ARRAY_IDX(attr->values, 0, const char *);
}

/* Every refusal: its reference code in the log line, the page and (for
 * an account noted by btsso_signin_note) the account's sign-ins. */
static int fail(request_rec *r, const char *account, const char *idp,
                btsso_error_t *err, int test)
{
    btsso_signin_refused(r, APLOG_WARNING, "BTSSO0210", "login refused",
                         account, idp, err, test ? BTSSO_SIGNIN_TEST : 0);
    if (test) {
        return btsso_send_test_result(r, account, NULL, NULL, NULL, err);
    }
    if (err->status != 400 && err->status != 503 && err->status != 500) {
        err->status = 403;
    }
    return btsso_send_error_page(r, err);
}

int btsso_handle_acs(request_rec *r, const char *path_account)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const btsso_acct_entry *e = NULL;
    btsso_response_expect_t ex;
    btsso_assertion_t *a = NULL;
    btsso_pending_t *pd = NULL;
    btsso_sp_addr_t addr;
    btsso_error_t *err;
    btsso_store_t *st;
    btsso_user_t *user = NULL;
    btsso_session_t ss;
    acs_form form;
    const char *account = path_account;
    const char *issuer = NULL;
    btsso_response_doc_t *rdoc = NULL;  /* parsed for the Issuer (global ACS) */
    const char *email;
    const char *reference;
    const char *target = NULL;
    apr_time_t now = apr_time_now();
    int rc, test = 0, replay;

    if (r->method_number != M_POST) {
        r->allowed = AP_METHOD_BIT << M_POST;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (account != NULL && !btsso_account_id_ok(account)) {
        return HTTP_NOT_FOUND;
    }
    rc = read_form(r, &form);
    if (rc != OK) {
        if (rc != HTTP_BAD_REQUEST && rc != HTTP_REQUEST_ENTITY_TOO_LARGE) {
            return rc;
        }
        return fail(r, account, NULL, btsso_error_make(r->pool, rc,
                    rc == HTTP_BAD_REQUEST ? "bad_form" : "too_large",
                    rc == HTTP_BAD_REQUEST
                    ? "The sign-in response could not be read."
                    : "The sign-in response is too large.",
                    "POST body not read as a form (HTTP %d)", rc), 0);
    }
    if (form.saml_response == NULL) {
        return fail(r, account, NULL, btsso_error_make(r->pool, 400,
                    "no_response", "The sign-in response is missing.",
                    "POST without SAMLResponse"), 0);
    }

    /* RelayState: the opaque token naming this browser's pending-request
     * cookie, or (IdP-initiated) a target path, which must be local. */
    if (form.relay_state != NULL && *form.relay_state != '\0') {
        if (btsso_pending_relay_ok(form.relay_state)) {
            btsso_error_t *invalid = NULL;

            pd = btsso_pending_take(r, form.relay_state, &invalid);
            if (invalid != NULL) {
                return fail(r, account, NULL, invalid, 0);
            }
            if (pd != NULL) {
                target = pd->return_to;
                test = pd->test;
            }
            /* else: started in another browser, expired, or an IdP's own
             * token; only an unsolicited response can still pass */
        }
        else {
            const char *norm = NULL;

            if (btsso_url_is_safe_return(r->pool, form.relay_state,
                                         sc->base_url, &norm)) {
                target = norm;
            }
            else {
                ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                              "BTSSO0211: RelayState is neither a pending "
                              "request nor a local target: ignored");
            }
        }
    }

    if (account == NULL) {
        /* Parsed once: the same document is validated below. */
        err = btsso_response_load(r->pool, form.saml_response,
                                  form.saml_response_len, 0, 0, &rdoc);
        if (err == NULL) {
            err = btsso_response_doc_issuer(r->pool, rdoc, &issuer);
        }
        if (err != NULL) {
            return fail(r, NULL, NULL, err, test);
        }
        if (pd != NULL && test) {
            account = pd->account;
        }
        else {
            err = btsso_acct_by_issuer(r, issuer, &account);
            if (err != NULL) {
                return fail(r, NULL, issuer, err, test);
            }
            if (account == NULL) {
                return fail(r, NULL, issuer, btsso_error_make(r->pool, 403,
                    "unknown_idp", "This identity provider is not set up "
                    "for any account.", "no self-service account has IdP "
                    "entityID %s", issuer), test);
            }
        }
    }
    if (pd != NULL && strcmp(pd->account, account) != 0) {
        return fail(r, account, issuer, btsso_error_make(r->pool, 403,
            "account_mismatch", "The sign-in response does not belong to "
            "the sign-in that was started.", "pending request was for "
            "account %s", pd->account), test);
    }

    err = btsso_acct_get(r, account, &e);
    if (err != NULL) {
        if (err->status == 404) {
            err->message = "There is no such account.";
        }
        return fail(r, account, issuer, err, test);
    }
    btsso_signin_note(r, account, NULL, NULL, 0);
    if (e->idp == NULL) {
        return fail(r, account, issuer, btsso_error_make(r->pool, 403,
            "no_idp", "Single sign-on is not set up for this account.",
            NULL), test);
    }
    if (!e->account->sso_enabled && !test) {
        return fail(r, account, e->idp->entity_id, btsso_error_make(r->pool,
            403, "sso_disabled", "Single sign-on is not enabled for this "
            "account.", NULL), 0);
    }

    btsso_sp_addressing(r->pool, sc->base_url, sc->sp_path, sc->sp_entity_id,
                        account, e->idp->shared, &addr);
    memset(&ex, 0, sizeof(ex));
    ex.sp_entity_id = addr.entity_id;
    ex.acs_url = addr.acs_url;
    ex.idp_entity_id = e->idp->entity_id;
    ex.trusted_certs = btsso_acct_usable_certs(r->pool, e, now);
    ex.sp_keys = sc->rt->dec_keys;
    ex.now = now;
    ex.clock_skew = (int)apr_time_sec(sc->clock_skew);
    ex.in_response_to = pd ? pd->request_id : NULL;
    ex.allow_idp_initiated = sc->allow_idp_initiated;
    ex.sig_algs = (unsigned int)sc->signature_algorithms;
    ex.digest_algs = (unsigned int)sc->digest_algorithms;

    if (ex.trusted_certs->nelts == 0) {
        int any = e->certs != NULL && e->certs->nelts > 0;

        return fail(r, account, e->idp->entity_id, btsso_error_make(r->pool,
            403, "no_usable_certificate", any
            ? "Your organisation's SSO certificate has expired; contact "
              "your administrator."
            : "Your organisation's SSO certificate is not set up; contact "
              "your administrator.",
            "no primary/secondary certificate of the account is valid now"),
            test);
    }

    err = rdoc != NULL ? btsso_response_validate_doc(r->pool, rdoc, &ex, &a)
          : btsso_response_validate(r->pool, form.saml_response,
                                    form.saml_response_len, &ex, &a);
    if (err != NULL && pd == NULL
        && !strcmp(err->code, "in_response_to_unexpected")) {
        /* It answers an AuthnRequest, but this browser holds no pending
         * request: started elsewhere (login CSRF), or too long ago. */
        err = btsso_error_make(r->pool, 403, "other_browser",
            "This sign-in was not started in this browser, or it took too "
            "long. Start the sign-in again from this browser.",
            "%s (no pending-request cookie for RelayState %s)",
            err->detail ? err->detail : err->code,
            form.relay_state && btsso_pending_relay_ok(form.relay_state)
            ? form.relay_state : "-");
    }
    if (err != NULL) {
        return fail(r, account, e->idp->entity_id, err, test);
    }

    btsso_signin_note(r, account, NULL, a->name_id, 1);
    /* Signature verified: now, and only now, the ID may burn. */
    replay = btsso_replay_check_and_mark(r, e->idp->entity_id,
                                         a->assertion_id,
                                         a->assertion_not_on_or_after);
    if (replay != 0) {
        return fail(r, account, e->idp->entity_id, btsso_error_make(r->pool,
            replay > 0 ? 403 : 503, replay > 0 ? "replay" : "replay_cache",
            replay > 0 ? "This sign-in response was already used; sign in "
                         "again."
                       : "The sign-in service is temporarily unavailable; "
                         "try again in a moment.",
            "assertion %s", a->assertion_id), test);
    }

    /* One response per AuthnRequest: the browser forgot the cookie, and
     * the request ID is burnt here too (after the signature verified). */
    if (pd != NULL) {
        replay = btsso_replay_check_and_mark(
            r, apr_pstrcat(r->pool, "AuthnRequest of ", btsso_sp_id(r->server),
                           NULL), pd->request_id, pd->expires);
        if (replay != 0) {
            return fail(r, account, e->idp->entity_id,
                btsso_error_make(r->pool, replay > 0 ? 403 : 503,
                    replay > 0 ? "replay" : "replay_cache",
                    replay > 0 ? "This sign-in was already completed; sign "
                                 "in again."
                               : "The sign-in service is temporarily "
                                 "unavailable; try again in a moment.",
                    "AuthnRequest %s%s", pd->request_id,
                    replay > 0 ? " answered twice" : ""), test);
        }
    }

    /* The account's policy: the class the IdP asserted, not the one asked
     * for, decides. */
    if ((err = btsso_policy_check_assertion(r, e, a)) != NULL) {
        if (test) {
            return btsso_send_test_result(r, account, a, NULL, NULL, err);
        }
        return fail(r, account, e->idp->entity_id, err, 0);
    }

    email = assertion_email(e, a);
    btsso_signin_note(r, account, email, NULL, 0);
    if (email == NULL || *email == '\0') {
        err = btsso_error_make(r->pool, 403, "no_email",
            "Your organisation's identity provider did not send your "
            "email address; contact your administrator.",
            "assertion %s has no %s", a->assertion_id,
            e->idp->email_from_name_id ? "NameID"
            : e->idp->email_attribute ? apr_psprintf(r->pool,
                  "attribute '%s'", e->idp->email_attribute)
            : "email mapping (none configured)");
        if (test) {
            /* the result page says it all to the administrator testing */
            btsso_signin_refused(r, APLOG_INFO, "BTSSO0210",
                                 "test login refused", account,
                                 e->idp->entity_id, err, BTSSO_SIGNIN_TEST);
            return btsso_send_test_result(r, account, a, NULL, NULL, err);
        }
        return fail(r, account, e->idp->entity_id, err, 0);
    }
    st = btsso_request_store(r);
    if (st == NULL) {
        return fail(r, account, e->idp->entity_id, btsso_error_make(r->pool,
            503, "store_unavailable", "The sign-in service is temporarily "
            "unavailable; try again in a moment.", NULL), test);
    }
    err = btsso_store_user_by_email(st, r->pool, account, email, &user);
    if (err == NULL && user == NULL) {
        err = btsso_error_make(r->pool, 403, "no_such_user",
            "No such user in this account: your email address is not "
            "registered for it; contact your administrator.",
            "email %s (assertion %s)", email, a->assertion_id);
    }
    if (test) {
        if (err == NULL) {
            btsso_test_record(r, st, account, e, email);
        }
        if (err != NULL) {
            /* the result page says it all to the administrator testing */
            btsso_signin_refused(r, APLOG_INFO, "BTSSO0210",
                                 "test login refused", account,
                                 e->idp->entity_id, err, BTSSO_SIGNIN_TEST);
        }
        return btsso_send_test_result(r, account, a, email, user, err);
    }
    if (err != NULL) {
        return fail(r, account, e->idp->entity_id, err, 0);
    }

    memset(&ss, 0, sizeof(ss));
    ss.account = account;
    ss.email = user->email;
    ss.extension = user->extension;
    ss.name_id = a->name_id;
    ss.name_id_format = a->name_id_format;
    ss.idp = e->idp->entity_id;
    ss.session_index = a->session_index;
    ss.expires = btsso_policy_session_expiry(e, a->session_not_on_or_after,
                                             now);
    ss.attributes = btsso_attrs_for_session(r, account, a);
    err = btsso_session_create(r, &ss);
    if (err != NULL) {
        return fail(r, account, e->idp->entity_id, err, 0);
    }
    /* Counted apart from the log line: below LogLevel info, httpd's
     * ap_log_rerror does not evaluate its arguments. */
    reference = btsso_signin_succeeded(r, st, account, user->email,
                                       a->name_id, e->idp->entity_id,
                                       a->verified_by
                                       ? a->verified_by->sha256 : NULL);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "BTSSO0212: login (reference %s): account %s, user %s "
                  "(extension %s), IdP %s, assertion %s%s",
                  reference, account, user->email,
                  user->extension ? user->extension : "-", e->idp->entity_id,
                  a->assertion_id, pd ? "" : " (IdP-initiated)");
    /* Checked when stored, and again now that it is used. */
    if (target != NULL) {
        const char *norm = NULL;

        target = btsso_url_is_safe_return(r->pool, target, sc->base_url,
                                          &norm) ? norm : NULL;
    }
    if (target == NULL) {
        target = "/";
    }
    if (target[0] == '/') {
        target = apr_pstrcat(r->pool, sc->base_url, target, NULL);
    }
    return btsso_redirect(r, HTTP_SEE_OTHER, target);
}
