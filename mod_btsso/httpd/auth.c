/*
 * auth.c - enforcement: AuthType BTSSO, and BTSSOPasswordGuard for
 * locations authenticated otherwise.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_auth.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "btsso_glue.h"
#include "btsso_acct.h"
#include "btsso_session.h"
#include "btsso_attrs.h"
#include "btsso_handlers.h"
#include "core/addressing.h"
#include "core/url.h"
#include "core/text.h"

APLOG_USE_MODULE(btsso);

#define AUTH_TYPE "BTSSO"

static const char *const header_names[] = {
    "X-BTSSO-Account", "X-BTSSO-Email", "X-BTSSO-Name-ID", "X-BTSSO-IdP",
    "X-BTSSO-Session-Expires", NULL
};

/* Whether a request header name is one of ours in any spelling: "X-BTSSO"
 * then '-' or '_' (or nothing), in any case, with '_' for '-' anywhere
 * ("X_BTSSO_Email", "x-btsso-email", "X-Btsso_Account"): CGI and many
 * backends fold '-' and '_' into the same variable name. */
static int is_btsso_header(const char *name)
{
    static const char prefix[] = "x-btsso";
    apr_size_t i;

    for (i = 0; i < sizeof(prefix) - 1; i++) {
        char c = name[i] == '_' ? '-' : apr_tolower(name[i]);

        if (c != prefix[i]) {
            return 0;
        }
    }
    return name[i] == '\0' || name[i] == '-' || name[i] == '_';
}

/* Incoming X-BTSSO-* headers are the client's, never ours: remove them
 * before anything downstream (CGI, proxy) can trust them. */
void btsso_strip_spoofed_headers(request_rec *r)
{
    const apr_array_header_t *h = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)h->elts;
    apr_array_header_t *doomed = apr_array_make(r->pool, 2,
                                                sizeof(const char *));
    int i;

    for (i = 0; i < h->nelts; i++) {
        if (e[i].key != NULL && is_btsso_header(e[i].key)) {
            APR_ARRAY_PUSH(doomed, const char *) = e[i].key;
        }
    }
    for (i = 0; i < doomed->nelts; i++) {
        apr_table_unset(r->headers_in, APR_ARRAY_IDX(doomed, i,
                                                     const char *));
    }
}

/*
 * Defence in depth: the ACS refuses control characters in what the IdP
 * asserts, but whatever a session holds (a session made by an older
 * module, a store tampered with), a value with a control character is
 * never put into the environment or a request header, where CR/LF would
 * add headers or smuggle a request to a proxied backend.
 */
/*
 * The session's variables.  Every BTSSO_* variable set before (SetEnvIf
 * on a request header, say, or a copy from the main request) goes first,
 * in one pass; then each is added, without the scan of the table that
 * setting one costs.
 */
static void export_session(request_rec *r, const btsso_session_t *ss,
                           int set_headers)
{
    const apr_array_header_t *env = apr_table_elts(r->subprocess_env);
    char expires[24];
    const char *values[6];
    int controls;
    static const char *const env_names[] = {
        "BTSSO_ACCOUNT", "BTSSO_EMAIL", "BTSSO_NAME_ID", "BTSSO_IDP",
        "BTSSO_SESSION_EXPIRES", NULL
    };
    int i;

    for (i = 0; i < env->nelts; i++) {
        const char *key = APR_ARRAY_IDX(env, i, apr_table_entry_t).key;

        if (key != NULL && strncasecmp(key, "BTSSO_", 6) == 0) {
            apr_table_unset(r->subprocess_env, key);
            i = -1;     /* the table moved: look again from the start */
        }
    }
    {
        /* the seconds, without a printf per request */
        apr_int64_t t = apr_time_sec(ss->expires);
        char *e = expires + sizeof(expires) - 1;

        *e = '\0';
        if (t < 0) {
            t = 0;
        }
        do {
            *--e = (char)('0' + t % 10);
            t /= 10;
        } while (t > 0 && e > expires);
        memmove(expires, e, (apr_size_t)(expires + sizeof(expires) - e));
    }
    values[0] = ss->account;
    values[1] = ss->email;
    values[2] = ss->name_id;
    values[3] = ss->idp;
    values[4] = apr_pstrdup(r->pool, expires);  /* digits only */
    values[5] = NULL;
    if (ss->exports != NULL && ss->exports->controls >= 0) {
        controls = ss->exports->controls;
    }
    else {
        for (i = 0, controls = 0; i < 4; i++) {
            if (values[i] != NULL && btsso_text_has_control(values[i])) {
                controls |= 1 << i;
            }
        }
        if (ss->exports != NULL) {
            ss->exports->controls = controls;
        }
    }
    for (i = 0; env_names[i] != NULL; i++) {
        if (values[i] == NULL) {
            continue;
        }
        if (controls & (1 << i)) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                          "BTSSO0313: session of account %s: %s holds a "
                          "control character; not exported",
                          ap_escape_logitem(r->pool, ss->account),
                          env_names[i]);
            apr_table_unset(r->headers_in, header_names[i]);
            continue;
        }
        apr_table_addn(r->subprocess_env, env_names[i], values[i]);
        if (set_headers) {
            apr_table_setn(r->headers_in, header_names[i], values[i]);
        }
    }
    btsso_attrs_export(r, ss, set_headers);
}

/* The account BTSSOAccount names for this request, or NULL. */
static const char *directed_account(request_rec *r)
{
    btsso_dir_cfg *dc = btsso_dir(r);
    const char *err = NULL;
    const char *v;

    if (dc->account == NULL) {
        return NULL;
    }
    v = ap_expr_str_exec(r, dc->account, &err);
    if (err != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BTSSO0310: BTSSOAccount could not be evaluated: %s",
                      err);
        return NULL;
    }
    if (v == NULL || *v == '\0') {
        return NULL;
    }
    if (!btsso_account_id_ok(v)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BTSSO0311: BTSSOAccount gave '%s', which is not an "
                      "account id", ap_escape_logitem(r->pool, v));
        return NULL;
    }
    return v;
}

/*
 * Where to return after sign-in: rebuilt from the path and query of this
 * request, never from its request line (an absolute-form request line
 * "GET http://evil.example/app/x" names another origin), and checked like
 * any other return target; NULL when it does not pass (too long, say):
 * the person then lands on "/".
 */
static const char *return_target(request_rec *r)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *path = r->main != NULL ? r->main->uri : r->uri;
    const char *args = r->main != NULL ? r->main->args : r->args;
    const char *target, *norm = NULL;

    if (path == NULL || path[0] != '/') {
        return NULL;
    }
    target = ap_escape_uri(r->pool, path);
    if (args != NULL && *args != '\0') {
        target = apr_pstrcat(r->pool, target, "?", args, NULL);
    }
    if (!btsso_url_is_safe_return(r->pool, target, sc->base_url, &norm)) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BTSSO0319: the requested URL (%" APR_SIZE_T_FMT
                      " octets) is not kept as the return target (too long,"
                      " or not a plain local path): the sign-in lands on /",
                      strlen(target));
        return NULL;
    }
    return norm;
}

/* The store cannot be reached: a page saying so (503), for people, with
 * a reference code that is also in the log line. */
static int unavailable_page(request_rec *r, const char *account)
{
    btsso_error_t *err = btsso_error_make(r->pool, 503, "store_unavailable",
        "The sign-in service is temporarily unavailable; try again in a "
        "moment.", "the session or the account could not be checked: the "
        "account store is unreachable");

    btsso_signin_refused(r, APLOG_WARNING, "BTSSO0351", "protected page",
                         account, NULL, err, 0);
    apr_table_setn(r->err_headers_out, "Retry-After", "5");
    btsso_send_page(r, HTTP_SERVICE_UNAVAILABLE, "Temporarily unavailable",
                    "The sign-in service is temporarily unavailable; try "
                    "again in a moment.", NULL, NULL);
    return DONE;
}

static int btsso_check_user(request_rec *r)
{
    btsso_dir_cfg *dc;
    btsso_session_t *ss;
    const char *type = ap_auth_type(r);
    const char *account;
    const btsso_acct_entry *e = NULL;
    const char *target;
    btsso_error_t *err;

    if (type == NULL || strcasecmp(type, AUTH_TYPE) != 0) {
        return DECLINED;
    }
    dc = btsso_dir(r);
    if (apr_table_get(r->notes, BTSSO_NOTE_SP) != NULL) {
        /* Our own endpoints (ACS, login, ...) must stay reachable inside a
         * protected location; they do their own checks. */
        r->user = "";
        r->ap_auth_type = AUTH_TYPE;
        return OK;
    }
    account = directed_account(r);
    ss = btsso_session_get(r);
    if (ss != NULL && (account == NULL || !strcmp(account, ss->account))) {
        r->user = apr_pstrdup(r->pool, ss->email);
        r->ap_auth_type = AUTH_TYPE;
        export_session(r, ss, btsso_dir_set_headers(dc));
        return OK;
    }
    if (ss == NULL && apr_table_get(r->notes, BTSSO_NOTE_UNVERIFIED)) {
        /* The session could not be checked (the store is down, logged as
         * BTSSO0330): signing in again would need the store too. */
        return unavailable_page(r, account);
    }
    /* Browsers (GET, and HEAD which is M_GET) are sent to sign in; other
     * requests cannot follow a redirect with their body. */
    if (r->method_number != M_GET) {
        return HTTP_UNAUTHORIZED;
    }
    target = return_target(r);
    if (account != NULL) {
        err = btsso_acct_get(r, account, &e);
        if (err == NULL && e->account->sso_enabled && e->idp != NULL) {
            int rc = btsso_start_login(r, e, target, 0);

            /* start_login answers with a redirect or an error page */
            return rc == OK ? DONE : rc;
        }
        if (err != NULL && err->status != 404) {
            btsso_log_error(r, APLOG_ERR, "BTSSO0312", account, err);
            if (err->status == 503) {
                return unavailable_page(r, account);
            }
        }
    }
    return btsso_redirect(r, HTTP_MOVED_TEMPORARILY,
                          btsso_discovery_url(r, target));
}

/* Whether account enforces SSO on password logins: 1 yes, 0 no (also for
 * an account that does not exist), -1 when it cannot be told (logged). */
static int guard_enforces(request_rec *r, const char *account)
{
    const btsso_acct_entry *e = NULL;
    btsso_error_t *err = btsso_acct_get(r, account, &e);

    if (err != NULL) {
        if (err->status == 404) {
            return 0;
        }
        btsso_log_error(r, APLOG_ERR, "BTSSO0321", account, err);
        return -1;
    }
    return e->account->sso_enabled && !e->account->allow_password;
}

/*
 * BTSSOPasswordGuard: the location is authenticated by something else
 * (Basic, Form...).  A password sign-in is refused when the account it
 * signs into enforces SSO (and does not allow passwords too).  That account
 * is the one BTSSOAccount names; without it, the one account the email
 * belongs to (the domain's claimant first).  When several accounts hold the
 * email and none claimed its domain, only all of them enforcing refuses:
 * an account that adds another's user to itself and enables SSO must not
 * lock that user out of their own account.
 */
static int btsso_password_guard(request_rec *r)
{
    btsso_dir_cfg *dc = btsso_dir(r);
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *type = ap_auth_type(r);
    const char *account, *link;
    btsso_email_accounts_t *ea = NULL;
    btsso_store_t *st;
    btsso_error_t *err;
    int enforces, i;

    if (!btsso_dir_password_guard(dc) || r->user == NULL || *r->user == '\0'
        || (type != NULL && !strcasecmp(type, AUTH_TYPE))
        || apr_table_get(r->notes, BTSSO_NOTE_SP) != NULL
        || r->main != NULL) {
        return DECLINED;
    }
    account = directed_account(r);
    if (account == NULL) {
        st = btsso_request_store(r);
        if (st == NULL) {
            return HTTP_SERVICE_UNAVAILABLE;
        }
        err = btsso_store_account_by_email(st, r->pool, r->user, &ea);
        if (err != NULL) {
            btsso_log_error(r, APLOG_ERR, "BTSSO0320", NULL, err);
            return HTTP_SERVICE_UNAVAILABLE;
        }
        account = ea->account;
    }
    if (account != NULL) {
        enforces = guard_enforces(r, account);
        link = apr_pstrcat(r->pool, sc->base_url, sc->sp_path, "/login/",
                           account, NULL);
    }
    else {
        /* None or several hold the email, and no claimant among them.
         * More than were read: some are unseen, so do not refuse. */
        enforces = ea->holders->nelts > 0 && !ea->truncated;
        for (i = 0; enforces == 1 && i < ea->holders->nelts; i++) {
            enforces = guard_enforces(r, APR_ARRAY_IDX(ea->holders, i,
                                                       const char *));
        }
        account = apr_array_pstrcat(r->pool, ea->holders, ',');
        link = btsso_discovery_url(r, NULL);
    }
    if (enforces < 0) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    if (!enforces) {
        return DECLINED;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "BTSSO0322: password sign-in refused for %s: account %s "
                  "enforces single sign-on",
                  ap_escape_logitem(r->pool, r->user), account);
    btsso_send_page(r, HTTP_FORBIDDEN, "Use single sign-on",
        "Your organisation requires single sign-on: passwords are not "
        "accepted for your account.", link, "Sign in with single sign-on");
    return DONE;
}

void btsso_register_auth_hooks(apr_pool_t *p)
{
    ap_hook_check_authn(btsso_check_user, NULL, NULL, APR_HOOK_MIDDLE,
                        AP_AUTH_INTERNAL_PER_CONF);
    ap_hook_fixups(btsso_password_guard, NULL, NULL, APR_HOOK_FIRST);
}
