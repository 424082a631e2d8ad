/*
 * attrs.c - the assertion's attributes kept with the session (SPEC,
 * Enforcement: "Attributes"), and the authz providers on them.
 *
 * At the login the attributes are bounded (core/session_record.c) and
 * whatever is dropped is logged, with the attributes whose environment
 * names clash (the first one keeps the name): once per login, not on every
 * request.  On a protected request they become BTSSO_ATTR_* variables and,
 * with BTSSOSetHeaders On, one header X-BTSSO-Attributes (base64url of a
 * JSON object: data, never header syntax).
 *
 * `Require btsso-attr NAME VALUE...` and `Require btsso-account
 * ACCOUNT...` are httpd authz providers, so they combine with
 * <RequireAll>/<RequireAny>/<RequireNone> like any other.  Without a
 * session they answer AUTHZ_DENIED_NO_USER: httpd then runs
 * authentication, which sends a browser to sign in (AuthType BTSSO).
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_request.h>
#include <mod_auth.h>
#include <ap_provider.h>
#include <apr_strings.h>

#include "btsso_glue.h"
#include "btsso_attrs.h"
#include "core/addressing.h"
#include "core/session_record.h"

APLOG_USE_MODULE(btsso);

#define AUTH_TYPE "BTSSO"
#define ATTRS_HEADER "X-BTSSO-Attributes"

/* ---- at the login ------------------------------------------------------- */

typedef struct login_ctx {
    request_rec *r;
    const char *account;
} login_ctx;

static void no_set(void *ctx, const char *var, const char *value)
{
}

static void login_skip(void *ctx, const btsso_session_attr_t *a,
                       const char *var, int why)
{
    login_ctx *c = ctx;

    if (why == BTSSO_ATTR_SKIP_TAKEN) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, c->r,
                      "BTSSO0341: account %s: attribute '%s' is not "
                      "exported to the environment: %s (or one of its "
                      "_N/_<i> variables) is already another attribute's; "
                      "it stays in X-BTSSO-Attributes and for Require "
                      "btsso-attr", c->account,
                      ap_escape_logitem(c->r->pool, a->name), var);
    }
}

const apr_array_header_t *btsso_attrs_for_session(request_rec *r,
                                                  const char *account,
                                                  const btsso_assertion_t *a)
{
    apr_array_header_t *in;
    const apr_array_header_t *kept;
    btsso_session_attrs_dropped_t dropped;
    login_ctx c = { r, account };
    int i;

    if (a->attributes == NULL || a->attributes->nelts == 0) {
        return NULL;
    }
    in = apr_array_make(r->pool, a->attributes->nelts,
                        sizeof(btsso_session_attr_t));
    for (i = 0; i < a->attributes->nelts; i++) {
        const btsso_attribute_t *src = &APR_ARRAY_IDX(a->attributes, i,
                                                      btsso_attribute_t);
        btsso_session_attr_t *dst = apr_array_push(in);

        dst->name = src->name;
        dst->friendly_name = src->friendly_name;
        dst->values = src->values;
    }
    kept = btsso_session_attrs_bound(r->pool, in, &dropped);
    if (dropped.attributes > 0 || dropped.values > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BTSSO0340: account %s: assertion %s: %d attribute(s) "
                      "and %d value(s) beyond the session's bounds (%d "
                      "attributes, %d values each, %d octets in all) were "
                      "dropped, the first from '%s'; the login goes on "
                      "without them", account, a->assertion_id,
                      dropped.attributes, dropped.values,
                      BTSSO_SESSION_MAX_ATTRS, BTSSO_SESSION_MAX_VALUES,
                      BTSSO_SESSION_MAX_ATTR_OCTETS,
                      ap_escape_logitem(r->pool, dropped.first));
    }
    /* the clashes, said once now rather than on every request */
    btsso_session_attrs_env(r->pool, kept, no_set, login_skip, &c);
    return kept;
}

/* ---- on a protected request ------------------------------------------------ */

typedef struct export_ctx {
    apr_pool_t *pool;
    apr_array_header_t *vars;       /* btsso_session_var_t */
    apr_array_header_t *refused;    /* const char * */
} export_ctx;

static void export_set(void *ctx, const char *var, const char *value)
{
    export_ctx *c = ctx;
    btsso_session_var_t *v = apr_array_push(c->vars);

    v->name = var;
    v->value = value;
}

static void export_skip(void *ctx, const btsso_session_attr_t *a,
                        const char *var, int why)
{
    export_ctx *c = ctx;

    if (why == BTSSO_ATTR_SKIP_CONTROL) {
        APR_ARRAY_PUSH(c->refused, const char *) = a->name;
    }
}

void btsso_attrs_export(request_rec *r, const btsso_session_t *ss,
                        int set_headers)
{
    btsso_session_exports_t *x = ss->exports;
    const apr_array_header_t *vars, *refused;
    const char *header;
    int i;

    if (x != NULL && x->attr_vars != NULL) {
        vars = x->attr_vars;
        refused = x->attr_refused;
    }
    else {
        export_ctx c;

        c.pool = x != NULL ? x->pool : r->pool;
        c.vars = apr_array_make(c.pool, 8, sizeof(btsso_session_var_t));
        c.refused = apr_array_make(c.pool, 1, sizeof(const char *));
        btsso_session_attrs_env(c.pool, ss->attributes, export_set,
                                export_skip, &c);
        vars = c.vars;
        refused = c.refused;
        if (x != NULL) {
            x->attr_vars = vars;
            x->attr_refused = refused;
        }
    }
    for (i = 0; i < refused->nelts; i++) {
        /* the ACS refuses these (bad_attribute): a record made otherwise */
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BTSSO0342: session of account %s: attribute %s holds "
                      "a control character; not exported",
                      ap_escape_logitem(r->pool, ss->account),
                      ap_escape_logitem(r->pool, APR_ARRAY_IDX(refused, i,
                                                               const char *)));
    }
    /* added, not set: the caller (auth.c export_session) removed every
     * BTSSO_* first, and the variables of one session are distinct */
    for (i = 0; i < vars->nelts; i++) {
        const btsso_session_var_t *v = &APR_ARRAY_IDX(vars, i,
                                                      btsso_session_var_t);

        apr_table_addn(r->subprocess_env, v->name, v->value);
    }
    if (set_headers) {
        header = x != NULL ? x->attrs_header : NULL;
        if (header == NULL) {
            header = btsso_session_attrs_header(x != NULL ? x->pool : r->pool,
                                                ss->attributes);
            if (x != NULL) {
                x->attrs_header = header;
            }
        }
        apr_table_setn(r->headers_in, ATTRS_HEADER, header);
    }
}


/* ---- Require btsso-attr, Require btsso-account ---------------------------- */

/* The words of a Require line (quotes as httpd's own directives take
 * them), as a NULL-terminated array. */
static const char **require_words(apr_pool_t *p, const char *line, int *n)
{
    apr_array_header_t *w = apr_array_make(p, 4, sizeof(const char *));
    const char *t = line, *word;

    while (*(word = ap_getword_conf(p, &t)) != '\0') {
        APR_ARRAY_PUSH(w, const char *) = word;
    }
    *n = w->nelts;
    APR_ARRAY_PUSH(w, const char *) = NULL;
    return (const char **)w->elts;
}

static const char *attr_parse(cmd_parms *cmd, const char *line,
                              const void **parsed)
{
    int n;
    const char **w = require_words(cmd->pool, line, &n);

    if (n < 2) {
        return "Require btsso-attr needs an attribute name (its Name or "
               "FriendlyName) and at least one value: Require btsso-attr "
               "NAME VALUE...";
    }
    *parsed = w;
    return NULL;
}

static const char *account_parse(cmd_parms *cmd, const char *line,
                                 const void **parsed)
{
    int n, i;
    const char **w = require_words(cmd->pool, line, &n);

    if (n < 1) {
        return "Require btsso-account needs at least one account: Require "
               "btsso-account ACCOUNT...";
    }
    for (i = 0; i < n; i++) {
        if (!btsso_account_id_ok(w[i])) {
            return apr_psprintf(cmd->pool, "Require btsso-account: '%s' is "
                                "not an account id (1 to 64 letters, "
                                "digits, '.', '_', '-')", w[i]);
        }
    }
    *parsed = w;
    return NULL;
}

/*
 * The session the providers judge, or NULL with *status the answer:
 * GRANTED for the module's own endpoints (they must stay reachable, as
 * with Require valid-user), DENIED_NO_USER before authentication or
 * without a session, DENIED for a user authenticated otherwise (a Basic
 * user has no assertion, whatever session cookie the browser brings).
 */
static const btsso_session_t *judged_session(request_rec *r,
                                             authz_status *status)
{
    const char *type = ap_auth_type(r);
    const btsso_session_t *ss;

    if (apr_table_get(r->notes, BTSSO_NOTE_SP) != NULL) {
        *status = AUTHZ_GRANTED;
        return NULL;
    }
    if (r->user == NULL) {
        *status = AUTHZ_DENIED_NO_USER;
        return NULL;
    }
    if (type == NULL || strcasecmp(type, AUTH_TYPE) != 0) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BTSSO0345: Require btsso-attr/btsso-account on a "
                      "location authenticated by %s, not AuthType BTSSO: "
                      "denied", type ? type : "nothing");
        *status = AUTHZ_DENIED;
        return NULL;
    }
    ss = btsso_session_get(r);
    if (ss == NULL) {
        *status = AUTHZ_DENIED_NO_USER;
        return NULL;
    }
    return ss;
}

static authz_status attr_check(request_rec *r, const char *line,
                               const void *parsed)
{
    const char *const *w = parsed;
    const btsso_session_t *ss;
    authz_status status = AUTHZ_DENIED;
    int n;

    ss = judged_session(r, &status);
    if (ss == NULL) {
        return status;
    }
    for (n = 0; w[n] != NULL; n++) {
    }
    return btsso_session_attrs_match(ss->attributes, w[0], w + 1, n - 1)
           ? AUTHZ_GRANTED : AUTHZ_DENIED;
}

static authz_status account_check(request_rec *r, const char *line,
                                  const void *parsed)
{
    const char *const *w = parsed;
    const btsso_session_t *ss;
    authz_status status = AUTHZ_DENIED;
    int i;

    ss = judged_session(r, &status);
    if (ss == NULL) {
        return status;
    }
    for (i = 0; w[i] != NULL; i++) {
        if (strcmp(w[i], ss->account) == 0) {
            return AUTHZ_GRANTED;
        }
    }
    return AUTHZ_DENIED;
}

static const authz_provider attr_provider = { attr_check, attr_parse };
static const authz_provider account_provider = { account_check,
                                                 account_parse };

void btsso_register_attr_hooks(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "btsso-attr",
                              AUTHZ_PROVIDER_VERSION, &attr_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, "btsso-account",
                              AUTHZ_PROVIDER_VERSION, &account_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
}
