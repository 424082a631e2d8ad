/*
 * admin.c - "SetHandler btsso-admin": the self-service SSO set-up API and
 * page (SPEC "Admin").  Routing, authorization, CSRF and version checks,
 * bounded request bodies, and one function per endpoint.
 *
 * Paths are read from the right, so the handler works at any location:
 *   .../<account>/                       the set-up page
 *   .../<account>/<endpoint>             config, metadata, email-attribute,
 *                                        certificates, sp-metadata,
 *                                        duplicate-emails, enabled,
 *                                        policy, audit (audit_trail.c),
 *                                        sign-ins (admin_signins.c)
 *   .../<account>/certificates/<sha256>  one certificate
 *   .../<account>/sessions/revoke        end sessions (POST)
 *
 * Every request: REMOTE_USER must administer the account per
 * BTSSOAdminQuery (else 403, also for an unknown account, so ids cannot be
 * probed).  When the location is authenticated by AuthType BTSSO,
 * REMOTE_USER is only an email, and an email is unique only within one
 * account: the session's account must then be the path's account (else
 * 403), or an administrator of one account could add a victim admin's
 * email to it, sign in through its own IdP and administer the victim's
 * account in that admin's name.  Every change: X-CSRF-Token from GET
 * config (else 403), bound to the user, the account and the session's
 * account ("-" without AuthType BTSSO).  A change may name the version it
 * was made from, as If-Match: "<version>" (or a JSON "version"); when that
 * is not the current version: 412 precondition_failed and nothing changes,
 * so two administrators never overwrite each other silently.  Without
 * one, the change applies to the current settings (SPEC).  A change
 * answers with the new state (as GET config).  The store writes the audit
 * row (actor = REMOTE_USER) in the change's transaction.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_strings.h>
#include <jansson.h>

#include "btsso_glue.h"
#include "btsso_acct.h"
#include "btsso_admin.h"
#include "btsso_handlers.h"
#include "btsso_policy.h"
#include "btsso_session.h"
#include "core/addressing.h"
#include "core/b64.h"
#include "core/multipart.h"
#include "crypto/cert.h"
#include "fetch/fetch.h"
#include "btsso_refresh.h"
#include "saml/metadata.h"

APLOG_USE_MODULE(btsso);

#define JSON_BODY_MAX (64 * 1024)
#define EXPIRING_DAYS 30

typedef struct admin_req {
    request_rec *r;
    btsso_srv_cfg *sc;
    btsso_store_t *store;
    const char *account;
    const char *user;
    const char *session_account;    /* AuthType BTSSO session's, or "-" */
    const char *endpoint;       /* "" for the page */
    const char *arg;            /* the fingerprint of certificates/<sha> */
    apr_int64_t version;        /* expected version of a change, 0: any */
    int version_unmatchable;    /* a precondition no version can meet */
} admin_req;

static const char *const endpoints[] = {
    "config", "metadata", "email-attribute", "certificates", "sp-metadata",
    "duplicate-emails", "enabled", "audit", "policy", "sign-ins", NULL
};

/* ---- small helpers ------------------------------------------------------- */

static btsso_error_t *err_make(admin_req *ar, int status, const char *code,
                               const char *message)
{
    return btsso_error_make(ar->r->pool, status, code, message, NULL);
}

static const char *iso_time(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;
    char buf[32];
    apr_size_t n = 0;

    apr_time_exp_gmt(&tm, t);
    apr_strftime(buf, &n, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return apr_pstrmemdup(p, buf, n);
}

static json_t *json_str_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? json_string(s) : json_null();
}

static int is_endpoint(const char *seg)
{
    int i;

    for (i = 0; endpoints[i] != NULL; i++) {
        if (strcmp(seg, endpoints[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The last path segment of uri[0..len) and where it starts. */
static const char *last_segment(apr_pool_t *p, const char *uri,
                                apr_size_t len, apr_size_t *start)
{
    apr_size_t i = len;

    while (i > 0 && uri[i - 1] != '/') {
        i--;
    }
    *start = i;
    return apr_pstrmemdup(p, uri + i, len - i);
}

/* Fill account/endpoint/arg from r->uri; 0 when the path fits no route. */
static int parse_route(admin_req *ar)
{
    const char *uri = ar->r->uri;
    apr_size_t len = strlen(uri), at;
    const char *seg;

    ar->endpoint = "";
    if (len > 0 && uri[len - 1] == '/') {
        len--;
    }
    else {
        seg = last_segment(ar->r->pool, uri, len, &at);
        if (at == 0) {
            return 0;
        }
        len = at - 1;
        if (is_endpoint(seg)) {
            ar->endpoint = seg;
        }
        else {
            /* certificates/<sha256>, sessions/revoke */
            const char *prev = last_segment(ar->r->pool, uri, len, &at);
            if (at == 0) {
                return 0;
            }
            if (strcmp(prev, "sessions") == 0 && strcmp(seg, "revoke") == 0) {
                ar->endpoint = "sessions/revoke";
            }
            else if (strcmp(prev, "certificates") == 0) {
                ar->endpoint = "certificates";
                ar->arg = seg;
            }
            else {
                return 0;
            }
            len = at - 1;
        }
    }
    ar->account = last_segment(ar->r->pool, uri, len, &at);
    return at > 0 && *ar->account != '\0';
}

static void log_refusal(admin_req *ar, const char *tag, const char *what)
{
    ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, ar->r,
                  "%s: account %s: %s %s refused for user %s: %s", tag,
                  ar->account, ar->r->method, ar->r->uri,
                  ar->user ? ar->user : "(none)", what);
}

static btsso_error_t *stale(admin_req *ar, const char *detail)
{
    /* perhaps refused before its body was read: do not drain it */
    ar->r->connection->keepalive = AP_CONN_CLOSE;
    return btsso_error_make(ar->r->pool, 412, "precondition_failed",
                            "These settings changed meanwhile, so your "
                            "change was not saved: reload the page, check "
                            "them and repeat your change.", "%s", detail);
}

/* The store refuses a change whose expected version is no longer the
 * account's (409 conflict, checked in the change's transaction): to the
 * client that is a failed If-Match. */
static btsso_error_t *api_error(admin_req *ar, btsso_error_t *e)
{
    if (e != NULL && e->status == 409 && strcmp(e->code, "conflict") == 0) {
        return stale(ar, e->detail ? e->detail : "version changed");
    }
    return e;
}

/* A store error the administrator cannot fix is the operator's business. */
static int send_error(admin_req *ar, btsso_error_t *e)
{
    e = api_error(ar, e);
    if (e->status >= 500 && e->status != 502) {
        btsso_log_error(ar->r, APLOG_ERR, "BTSSO0401", ar->account, e);
    }
    else {
        btsso_log_error(ar->r, APLOG_INFO, "BTSSO0409", ar->account, e);
    }
    return btsso_send_json_error(ar->r, e);
}

/* ---- request bodies ------------------------------------------------------- */

static apr_size_t upload_max(const admin_req *ar)
{
    return (apr_size_t)ar->sc->metadata_max_size;
}

/* Non-zero when the request's media type is type (parameters ignored). */
static int content_type_is(request_rec *r, const char *type)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    apr_size_t n = strlen(type);

    if (ct == NULL) {
        return 0;
    }
    while (*ct == ' ') {
        ct++;
    }
    return strncasecmp(ct, type, n) == 0
           && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static apr_status_t json_release(void *j)
{
    json_decref(j);
    return APR_SUCCESS;
}

/* A JSON object body, with the "version" it may carry: the same
 * precondition as If-Match (both sent: both must name the same version;
 * null is as absent). */
static btsso_error_t *read_json(admin_req *ar, json_t **out)
{
    btsso_error_t *e;
    json_error_t jerr;
    json_t *j, *v;
    char *body;
    apr_size_t len;

    if ((e = btsso_read_body(ar->r, JSON_BODY_MAX, &body, &len)) != NULL) {
        return e;
    }
    j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        return btsso_error_make(ar->r->pool, 400, "bad_json",
                                "The request is not a JSON object.",
                                "%s", j == NULL ? jerr.text : "not an object");
    }
    apr_pool_cleanup_register(ar->r->pool, j, json_release,
                              apr_pool_cleanup_null);
    v = json_object_get(j, "version");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0
            || (ar->version != 0 && ar->version != json_integer_value(v))) {
            ar->version_unmatchable = 1;
        }
        else {
            ar->version = json_integer_value(v);
        }
    }
    *out = j;
    return NULL;
}

/* application/x-www-form-urlencoded field, or NULL. */
static const char *form_field(apr_pool_t *p, const char *body,
                              const char *name)
{
    apr_size_t n = strlen(name);
    const char *q = body;

    while (q != NULL && *q != '\0') {
        const char *end = strchr(q, '&');
        apr_size_t len = end ? (apr_size_t)(end - q) : strlen(q);

        if (len > n && strncmp(q, name, n) == 0 && q[n] == '=') {
            char *v = NULL;
            apr_size_t vlen = 0;
            if (btsso_pct_decode(p, q + n + 1, len - n - 1, &v, &vlen)
                != NULL || strlen(v) != vlen) {
                return NULL;
            }
            return v;
        }
        q = end ? end + 1 : NULL;
    }
    return NULL;
}

/* "If-Match: 7", "\"7\"" or W/"7" -> 7; 0 when absent or "*" (any
 * current settings); -1 when no version can match it (malformed, a list). */
static apr_int64_t if_match_version(request_rec *r)
{
    const char *h = apr_table_get(r->headers_in, "If-Match");
    char *digits, *end = NULL;
    apr_size_t n;
    apr_int64_t v;

    if (h == NULL) {
        return 0;
    }
    while (*h == ' ' || *h == '\t') {
        h++;
    }
    if (h[0] == '*' && h[1 + strspn(h + 1, " \t")] == '\0') {
        return 0;
    }
    if (strncmp(h, "W/", 2) == 0) {
        h += 2;
    }
    digits = apr_pstrdup(r->pool, h);
    n = strlen(digits);
    while (n > 0 && digits[n - 1] == ' ') {
        digits[--n] = '\0';
    }
    if (n >= 2 && digits[0] == '"' && digits[n - 1] == '"') {
        digits[n - 1] = '\0';
        digits++;
    }
    if (*digits < '0' || *digits > '9') {
        return -1;
    }
    v = apr_strtoi64(digits, &end, 10);
    return end != NULL && *end == '\0' && v > 0 ? v : -1;
}

/*
 * The precondition a change may carry (If-Match or a JSON "version"):
 * NULL when it names the current version or there is none.  Checked
 * before any work (reading an upload, fetching a URL); the store checks it
 * again, atomically, when it writes.
 */
static btsso_error_t *precondition(admin_req *ar)
{
    btsso_account_t *acc = NULL;
    btsso_error_t *e;

    if (ar->version_unmatchable) {
        return stale(ar, "the precondition names no version of the account");
    }
    if (ar->version == 0) {
        return NULL;
    }
    if ((e = btsso_store_account_get(ar->store, ar->r->pool, ar->account,
                                     &acc)) != NULL) {
        return e;
    }
    if (acc->version != ar->version) {
        return stale(ar, apr_psprintf(ar->r->pool, "version %" APR_INT64_T_FMT
                                      " expected, %" APR_INT64_T_FMT
                                      " current", ar->version,
                                      (apr_int64_t)acc->version));
    }
    return NULL;
}

/* ---- the state document (GET config) -------------------------------------- */

static json_t *cert_json(apr_pool_t *p, const btsso_stored_cert_t *sc,
                         apr_time_t now)
{
    const btsso_cert_t *c = sc->cert;
    json_t *o = json_object();
    const char *status;
    apr_int64_t days_left = (apr_int64_t)((c->not_after - now)
                                          / apr_time_from_sec(86400));
    int valid = btsso_cert_is_valid_at(c, now);

    if (now < c->not_before) {
        status = "not_yet_valid";
    }
    else if (!valid) {
        status = "expired";
    }
    else if (c->not_after - now < apr_time_from_sec(EXPIRING_DAYS * 86400)) {
        status = "expiring";
    }
    else {
        status = "valid";
    }
    json_object_set_new(o, "sha256", json_string(c->sha256));
    json_object_set_new(o, "role", json_string(btsso_cert_role_name(sc->role)));
    json_object_set_new(o, "subject", json_string(c->subject));
    json_object_set_new(o, "issuer", json_string(c->issuer));
    json_object_set_new(o, "key_type", json_str_or_null(c->key_type));
    json_object_set_new(o, "not_before", json_string(iso_time(p,
                                                              c->not_before)));
    json_object_set_new(o, "not_after", json_string(iso_time(p, c->not_after)));
    json_object_set_new(o, "days_left", json_integer(days_left));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "usable", json_boolean(valid
                                                  && sc->role
                                                     != BTSSO_ROLE_NONE));
    json_object_set_new(o, "source", json_str_or_null(sc->source));
    json_object_set_new(o, "added", json_string(iso_time(p, sc->added)));
    return o;
}

static json_t *endpoints_json(const apr_array_header_t *eps)
{
    json_t *a = json_array();
    int i;

    for (i = 0; i < eps->nelts; i++) {
        const btsso_endpoint_t *e = &APR_ARRAY_IDX(eps, i, btsso_endpoint_t);
        json_t *o = json_object();
        json_object_set_new(o, "binding", json_string(e->binding));
        json_object_set_new(o, "location", json_string(e->location));
        json_object_set_new(o, "response_location",
                            json_str_or_null(e->response_location));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *idp_json(apr_pool_t *p, const btsso_idp_t *idp,
                        const btsso_idp_metadata_t *md)
{
    json_t *o = json_object(), *a;
    int i;

    json_object_set_new(o, "entity_id", json_string(idp->entity_id));
    json_object_set_new(o, "shared", json_boolean(idp->shared));
    json_object_set_new(o, "source_url", json_str_or_null(idp->source_url));
    json_object_set_new(o, "updated", json_string(iso_time(p, idp->updated)));
    if (md == NULL) {
        return o;
    }
    json_object_set_new(o, "organization", json_str_or_null(md->organization));
    json_object_set_new(o, "signed", json_boolean(md->is_signed));
    json_object_set_new(o, "want_authn_requests_signed",
                        json_boolean(md->want_authn_requests_signed));
    json_object_set_new(o, "sso", endpoints_json(md->sso));
    json_object_set_new(o, "slo", endpoints_json(md->slo));
    a = json_array();
    for (i = 0; i < md->nameid_formats->nelts; i++) {
        json_array_append_new(a, json_string(
            APR_ARRAY_IDX(md->nameid_formats, i, const char *)));
    }
    json_object_set_new(o, "nameid_formats", a);
    a = json_array();
    for (i = 0; i < md->attributes->nelts; i++) {
        const btsso_md_attribute_t *at =
            &APR_ARRAY_IDX(md->attributes, i, btsso_md_attribute_t);
        json_t *ao = json_object();
        json_object_set_new(ao, "name", json_string(at->name));
        json_object_set_new(ao, "friendly_name",
                            json_str_or_null(at->friendly_name));
        json_object_set_new(ao, "name_format",
                            json_str_or_null(at->name_format));
        json_array_append_new(a, ao);
    }
    json_object_set_new(o, "attributes", a);
    a = json_array();
    for (i = 0; i < md->signing_certs->nelts; i++) {
        json_array_append_new(a, json_string(
            APR_ARRAY_IDX(md->signing_certs, i, btsso_cert_t *)->sha256));
    }
    json_object_set_new(o, "signing_certificates", a);
    return o;
}

static json_t *dups_json(const apr_array_header_t *dups)
{
    json_t *a = json_array();
    int i, j;

    for (i = 0; dups != NULL && i < dups->nelts; i++) {
        const btsso_dup_email_t *d = APR_ARRAY_IDX(dups, i,
                                                   btsso_dup_email_t *);
        json_t *o = json_object(), *holders = json_array();
        for (j = 0; j < d->holders->nelts; j++) {
            const btsso_user_t *u = APR_ARRAY_IDX(d->holders, j,
                                                  btsso_user_t *);
            json_t *h = json_object();
            json_object_set_new(h, "extension", json_str_or_null(u->extension));
            json_object_set_new(h, "kind", json_str_or_null(u->kind));
            json_array_append_new(holders, h);
        }
        json_object_set_new(o, "email", json_string(d->email));
        json_object_set_new(o, "holders", holders);
        json_array_append_new(a, o);
    }
    return a;
}

static const char *missing_words(const char *code)
{
    if (strcmp(code, "idp") == 0) {
        return "the IdP metadata";
    }
    if (strcmp(code, "email_mapping") == 0) {
        return "the attribute that carries the email";
    }
    if (strcmp(code, "usable_certificate") == 0) {
        return "a valid primary or secondary signing certificate";
    }
    return code;
}

static json_t *missing_json(const apr_array_header_t *missing)
{
    json_t *a = json_array();
    int i;

    for (i = 0; missing != NULL && i < missing->nelts; i++) {
        json_array_append_new(a, json_string(
            APR_ARRAY_IDX(missing, i, const char *)));
    }
    return a;
}

static const char *missing_text(apr_pool_t *p,
                                const apr_array_header_t *missing)
{
    const char *text = "";
    int i;

    for (i = 0; i < missing->nelts; i++) {
        text = apr_pstrcat(p, text, i == 0 ? "" : (i + 1 == missing->nelts
                                                   ? " and " : ", "),
                           missing_words(APR_ARRAY_IDX(missing, i,
                                                       const char *)),
                           NULL);
    }
    return text;
}

/* Whether an administrator's test login counts for enabling SSO now
 * (SPEC "PUT enabled"), and the last one on record. */
static btsso_error_t *test_json(admin_req *ar, json_t **out)
{
    btsso_test_state_t ts;
    btsso_error_t *e;

    if ((e = btsso_store_test_state(ar->store, ar->r->pool, ar->account,
                                    &ts)) != NULL) {
        return e;
    }
    *out = json_pack("{s:b, s:o, s:o, s:b}", "passed", ts.passed,
                     "by", json_str_or_null(ts.by),
                     "at", ts.on_record ? json_string(iso_time(ar->r->pool,
                                                               ts.at))
                                        : json_null(),
                     "outdated", ts.on_record && !ts.passed);
    return NULL;
}

/* The state of the account, read straight from the store (not the
 * per-process cache) so that the version matches what is shown. */
static btsso_error_t *config_json(admin_req *ar, json_t **out)
{
    request_rec *r = ar->r;
    btsso_srv_cfg *sc = ar->sc;
    btsso_account_t *acc;
    btsso_idp_t *idp = NULL;
    btsso_idp_metadata_t *md = NULL;
    btsso_policy_t *policy = NULL;
    apr_array_header_t *certs, *missing, *domains;
    btsso_sp_addr_t addr;
    apr_time_t now = apr_time_now();
    btsso_error_t *e;
    json_t *o, *a, *email;
    const char *token;
    int i;

    if ((e = btsso_store_account_get(ar->store, r->pool, ar->account, &acc))
            != NULL
        || (e = btsso_store_idp_get(ar->store, r->pool, ar->account, &idp))
            != NULL
        || (e = btsso_store_cert_list(ar->store, r->pool, ar->account,
                                      &certs)) != NULL
        || (e = btsso_store_domain_list(ar->store, r->pool, ar->account,
                                        &domains)) != NULL
        || (e = btsso_store_policy_get(ar->store, r->pool, ar->account,
                                       &policy)) != NULL) {
        return e;
    }
    token = btsso_csrf_token(r, ar->user, ar->account, ar->session_account);
    if (token == NULL) {
        return btsso_error_make(r->pool, 500, "csrf_unavailable",
                                "The server cannot issue a form token.",
                                "no CSRF key for this server");
    }
    o = json_object();
    json_object_set_new(o, "account", json_string(acc->account));
    json_object_set_new(o, "name", json_str_or_null(acc->name));
    json_object_set_new(o, "user", json_string(ar->user));
    json_object_set_new(o, "version", json_integer(acc->version));
    json_object_set_new(o, "enabled", json_boolean(acc->sso_enabled));
    json_object_set_new(o, "allow_password",
                        json_boolean(acc->allow_password));
    /* read-only here: support claims domains (btssoctl account domain) */
    a = json_array();
    for (i = 0; i < domains->nelts; i++) {
        json_array_append_new(a, json_string(APR_ARRAY_IDX(
            domains, i, btsso_domain_t *)->domain));
    }
    json_object_set_new(o, "domains", a);
    if (idp != NULL) {
        btsso_error_t *pe = btsso_metadata_parse(
            r->pool, idp->metadata_xml, strlen(idp->metadata_xml),
            (apr_size_t)sc->metadata_max_size, idp->entity_id, &md);
        json_t *io = idp_json(r->pool, idp, pe == NULL ? md : NULL);
        if (pe != NULL) {
            json_object_set_new(io, "metadata_error", json_string(pe->code));
        }
        json_object_set_new(o, "idp", io);
        json_object_set_new(o, "refresh", btsso_refresh_json(
            r, ar->store, ar->account, idp, pe == NULL ? md : NULL, certs));
    }
    else {
        json_object_set_new(o, "idp", json_null());
    }
    email = json_object();
    json_object_set_new(email, "attribute",
                        json_str_or_null(idp ? idp->email_attribute : NULL));
    json_object_set_new(email, "name_id",
                        json_boolean(idp && idp->email_from_name_id));
    json_object_set_new(o, "email", email);
    a = json_array();
    for (i = 0; i < certs->nelts; i++) {
        json_array_append_new(a, cert_json(r->pool, APR_ARRAY_IDX(
            certs, i, btsso_stored_cert_t *), now));
    }
    json_object_set_new(o, "certificates", a);
    json_object_set_new(o, "policy", btsso_policy_json(r->pool, policy,
                                                       sc->session_max_age));
    missing = btsso_account_missing(r->pool, idp, certs, now);
    json_object_set_new(o, "missing", missing_json(missing));
    json_object_set_new(o, "missing_text",
                        json_string(missing_text(r->pool, missing)));
    btsso_sp_addressing(r->pool, sc->base_url, sc->sp_path, sc->sp_entity_id,
                        ar->account, idp != NULL && idp->shared, &addr);
    json_object_set_new(o, "sp", json_pack("{s:s, s:s, s:s}",
                                           "entity_id", addr.entity_id,
                                           "acs_url", addr.acs_url,
                                           "metadata_url", addr.metadata_url));
    json_object_set_new(o, "test_url", json_string(apr_pstrcat(
        r->pool, sc->base_url, sc->sp_path, "/test/", ar->account, NULL)));
    if ((e = test_json(ar, &a)) != NULL) {
        json_decref(o);
        return e;
    }
    json_object_set_new(o, "sso_test", a);
    json_object_set_new(o, "csrf_token", json_string(token));
    json_object_set_new(o, "max_upload", json_integer(sc->metadata_max_size));
    btsso_admin_signins_config(r, ar->store, ar->account, o);
    *out = o;
    return NULL;
}

static int send_config(admin_req *ar)
{
    json_t *o = NULL;
    btsso_error_t *e = config_json(ar, &o);

    if (e != NULL) {
        return send_error(ar, e);
    }
    apr_table_setn(ar->r->headers_out, "ETag", apr_psprintf(
        ar->r->pool, "\"%" APR_INT64_T_FMT "\"",
        (apr_int64_t)json_integer_value(json_object_get(o, "version"))));
    return btsso_send_json(ar->r, 200, o);
}

/* After a change: this process forgets its copy; others within
 * BTSSOConfigTTL. */
static int changed(admin_req *ar)
{
    btsso_acct_invalidate(ar->r->server, ar->account);
    return send_config(ar);
}

/* ---- metadata -------------------------------------------------------------- */

static btsso_error_t *fetch_metadata(admin_req *ar, const char *url,
                                     char **xml, apr_size_t *len)
{
    btsso_fetch_opts_t o;
    btsso_error_t *e;

    btsso_fetch_opts_default(&o);
    o.max_size = upload_max(ar);
    o.timeout_sec = (int)apr_time_sec(ar->sc->metadata_fetch_timeout);
    if (o.timeout_sec <= 0) {
        o.timeout_sec = 1;
    }
    o.allow_http = ar->sc->metadata_fetch_http;
    o.allow = ar->sc->metadata_fetch_allow;
    e = btsso_fetch_url(ar->r->pool, url, &o, xml, len, NULL);
    if (e != NULL && strcmp(e->code, "url_not_allowed") == 0) {
        /* possibly someone probing the internal network: the operator
         * should see it, with the address (in the detail) */
        btsso_log_error(ar->r, APLOG_WARNING, "BTSSO0411", ar->account, e);
    }
    return e;
}

static int post_metadata(admin_req *ar)
{
    request_rec *r = ar->r;
    const char *url = NULL, *entity = NULL;
    btsso_idp_metadata_t *md = NULL;
    btsso_idp_t *current = NULL;
    btsso_md_trust_t facts;
    btsso_error_t *e;
    char *xml = NULL;
    apr_size_t len = 0;
    int shared;

    if (!content_type_is(r, "application/json")
        && (e = precondition(ar)) != NULL) {
        return send_error(ar, e);
    }
    if (content_type_is(r, "multipart/form-data")) {
        const char *boundary;
        apr_array_header_t *parts;
        const btsso_mp_part_t *f;
        char *body;
        apr_size_t blen;

        if ((e = btsso_multipart_boundary(r->pool, apr_table_get(
                r->headers_in, "Content-Type"), &boundary)) != NULL
            /* room for the form's own framing around a maximal file */
            || (e = btsso_read_body(ar->r, upload_max(ar) + 16384, &body, &blen))
                != NULL
            || (e = btsso_multipart_parse(r->pool, body, blen, boundary,
                                          &parts)) != NULL) {
            return send_error(ar, e);
        }
        if ((f = btsso_multipart_find(parts, "entity_id")) != NULL
            && f->len > 0) {
            entity = apr_pstrmemdup(r->pool, f->data, f->len);
        }
        if ((f = btsso_multipart_find(parts, "file")) != NULL) {
            if (f->len > upload_max(ar)) {
                return send_error(ar, btsso_error_make(
                    r->pool, 413, "too_large", "The upload is too large.",
                    NULL));
            }
            xml = apr_pstrmemdup(r->pool, f->data, f->len);
            len = f->len;
        }
        else if ((f = btsso_multipart_find(parts, "url")) != NULL) {
            url = apr_pstrmemdup(r->pool, f->data, f->len);
        }
        else {
            return send_error(ar, err_make(ar, 400, "no_file",
                                           "Choose a metadata file or give "
                                           "a URL."));
        }
    }
    else if (content_type_is(r, "application/json")) {
        json_t *j;
        if ((e = read_json(ar, &j)) != NULL) {
            return send_error(ar, e);
        }
        url = json_string_value(json_object_get(j, "url"));
        entity = json_string_value(json_object_get(j, "entity_id"));
        if (url == NULL) {
            return send_error(ar, err_make(ar, 400, "no_url",
                                           "Give the metadata URL as "
                                           "\"url\"."));
        }
    }
    else if (content_type_is(r, "application/x-www-form-urlencoded")) {
        char *body;
        apr_size_t blen;
        if ((e = btsso_read_body(ar->r, JSON_BODY_MAX, &body, &blen)) != NULL) {
            return send_error(ar, e);
        }
        url = form_field(r->pool, body, "url");
        entity = form_field(r->pool, body, "entity_id");
        if (url == NULL) {
            return send_error(ar, err_make(ar, 400, "no_url",
                                           "Give the metadata URL as "
                                           "\"url\"."));
        }
    }
    else if ((e = btsso_read_body(ar->r, upload_max(ar), &xml, &len)) != NULL) {
        return send_error(ar, e);
    }
    if (content_type_is(r, "application/json")
        && (e = precondition(ar)) != NULL) {
        return send_error(ar, e);     /* before fetching anything */
    }
    if (url != NULL && (e = fetch_metadata(ar, url, &xml, &len)) != NULL) {
        return send_error(ar, e);
    }
    if (entity != NULL && *entity == '\0') {
        entity = NULL;
    }
    if ((e = btsso_metadata_parse(r->pool, xml, len, upload_max(ar), entity,
                                  &md)) != NULL
        || (e = btsso_store_idp_get(ar->store, r->pool, ar->account,
                                    &current)) != NULL
        /* validUntil, and a signature when this IdP's keys are trusted */
        || (e = btsso_refresh_upload_check(r, ar->store, ar->account, md,
                                           &facts)) != NULL) {
        return send_error(ar, e);
    }
    /* New metadata of the same IdP keeps a support-configured sharing (and
     * with it the account's own entityID and ACS, which the IdP knows);
     * another IdP makes the account self-service. */
    shared = current != NULL && current->shared
             && strcmp(current->entity_id, md->entity_id) == 0;
    if ((e = btsso_store_idp_set(ar->store, ar->account, md, xml, url, shared,
                                 ar->version, apr_time_now(), ar->user))
            != NULL) {
        if (strcmp(e->code, "entity_in_use") == 0) {
            /* The page's "Contact Customer Support" box names the entityID
             * of the document the administrator sent (never which account
             * holds it). */
            json_t *body = json_pack("{s:s, s:s}", "error", e->code,
                                     "message", e->message);
            btsso_log_error(r, APLOG_INFO, "BTSSO0409", ar->account, e);
            json_object_set_new(body, "entity_id",
                                json_string(md->entity_id));
            return btsso_send_json(r, e->status, body);
        }
        return send_error(ar, e);
    }
    btsso_refresh_uploaded(r, ar->store, ar->account, url, &facts);
    return changed(ar);
}

/* ---- email attribute ------------------------------------------------------- */

static int put_email_attribute(admin_req *ar)
{
    btsso_error_t *e;
    json_t *j, *name_id;
    const char *attribute;

    if ((e = read_json(ar, &j)) != NULL || (e = precondition(ar)) != NULL) {
        return send_error(ar, e);
    }
    attribute = json_string_value(json_object_get(j, "attribute"));
    name_id = json_object_get(j, "name_id");
    if ((attribute == NULL) == !json_is_true(name_id)) {
        return send_error(ar, err_make(ar, 400, "bad_attribute",
                                       "Choose one attribute name, or the "
                                       "NameID."));
    }
    if ((e = btsso_store_email_set(ar->store, ar->account, attribute,
                                   json_is_true(name_id), ar->version,
                                   ar->user)) != NULL) {
        return send_error(ar, e);
    }
    return changed(ar);
}

/* ---- certificates ------------------------------------------------------------ */

static btsso_error_t *role_of(admin_req *ar, const char *text,
                              btsso_cert_role_e *role)
{
    if (text == NULL || *text == '\0') {
        *role = BTSSO_ROLE_NONE;
        return NULL;
    }
    if (btsso_cert_role_parse(text, role) != 0) {
        return err_make(ar, 400, "bad_role",
                        "The role is primary, secondary or none.");
    }
    return NULL;
}

static int post_certificate(admin_req *ar)
{
    request_rec *r = ar->r;
    const char *role_text = btsso_query_arg(r, "role");
    btsso_cert_role_e role;
    btsso_cert_t *cert;
    btsso_error_t *e;
    const char *data;
    apr_size_t len;

    if ((e = precondition(ar)) != NULL) {
        return send_error(ar, e);
    }
    if (content_type_is(r, "multipart/form-data")) {
        const char *boundary;
        apr_array_header_t *parts;
        const btsso_mp_part_t *f;
        char *body;
        apr_size_t blen;

        if ((e = btsso_multipart_boundary(r->pool, apr_table_get(
                r->headers_in, "Content-Type"), &boundary)) != NULL
            || (e = btsso_read_body(ar->r, upload_max(ar), &body, &blen)) != NULL
            || (e = btsso_multipart_parse(r->pool, body, blen, boundary,
                                          &parts)) != NULL) {
            return send_error(ar, e);
        }
        if ((f = btsso_multipart_find(parts, "role")) != NULL) {
            role_text = apr_pstrmemdup(r->pool, f->data, f->len);
        }
        if ((f = btsso_multipart_find(parts, "file")) == NULL) {
            return send_error(ar, err_make(ar, 400, "no_file",
                                           "Choose a certificate file."));
        }
        data = f->data;
        len = f->len;
    }
    else {
        char *body;
        if ((e = btsso_read_body(ar->r, upload_max(ar), &body, &len)) != NULL) {
            return send_error(ar, e);
        }
        data = body;
    }
    if ((e = role_of(ar, role_text, &role)) != NULL
        || (e = btsso_cert_parse(r->pool, data, len, &cert)) != NULL
        || (e = btsso_store_cert_add(ar->store, ar->account, cert, role,
                                     "upload", ar->version, apr_time_now(),
                                     ar->user)) != NULL) {
        return send_error(ar, e);
    }
    return changed(ar);
}

static int change_certificate(admin_req *ar)
{
    btsso_error_t *e;
    btsso_cert_role_e role;
    char *sha256 = apr_pstrdup(ar->r->pool, ar->arg);

    if (!btsso_cert_is_fingerprint(sha256)) {
        return send_error(ar, err_make(ar, 404, "not_found",
                                       "No such certificate."));
    }
    ap_str_tolower(sha256);
    if (ar->r->method_number == M_DELETE) {
        if ((e = precondition(ar)) != NULL
            || (e = btsso_store_cert_remove(ar->store, ar->account, sha256,
                                            ar->version, ar->user)) != NULL) {
            return send_error(ar, e);
        }
    }
    else {
        json_t *j;
        if ((e = read_json(ar, &j)) != NULL || (e = precondition(ar)) != NULL
            || (e = role_of(ar, json_string_value(json_object_get(j, "role")),
                            &role)) != NULL) {
            return send_error(ar, e);
        }
        if (!json_is_string(json_object_get(j, "role"))) {
            return send_error(ar, err_make(ar, 400, "bad_role",
                                           "The role is primary, secondary "
                                           "or none."));
        }
        if ((e = btsso_store_cert_role(ar->store, ar->account, sha256, role,
                                       ar->version, ar->user)) != NULL) {
            return send_error(ar, e);
        }
    }
    return changed(ar);
}

/* ---- SP metadata, duplicates, enabling --------------------------------------- */

static int get_sp_metadata(admin_req *ar)
{
    request_rec *r = ar->r;
    btsso_idp_t *idp = NULL;
    btsso_error_t *e;
    const char *xml;

    if ((e = btsso_store_idp_get(ar->store, r->pool, ar->account, &idp))
        != NULL) {
        return send_error(ar, e);
    }
    xml = btsso_sp_metadata_xml(r, ar->account, idp != NULL && idp->shared,
                                &e);
    if (e != NULL) {
        return send_error(ar, e);
    }
    ap_set_content_type(r, "application/samlmetadata+xml");
    apr_table_setn(r->headers_out, "Content-Disposition", apr_psprintf(
        r->pool, "attachment; filename=\"sp-metadata-%s.xml\"", ar->account));
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    if (!r->header_only) {
        ap_rputs(xml, r);
    }
    return OK;
}

static int get_duplicates(admin_req *ar)
{
    apr_array_header_t *dups;
    btsso_error_t *e;

    if ((e = btsso_store_duplicate_emails(ar->store, ar->r->pool,
                                          ar->account, &dups)) != NULL) {
        return send_error(ar, e);
    }
    return btsso_send_json(ar->r, 200, json_pack("{s:o}", "duplicates",
                                                 dups_json(dups)));
}

static int put_enabled(admin_req *ar)
{
    request_rec *r = ar->r;
    apr_array_header_t *dups = NULL, *missing = NULL;
    btsso_error_t *e;
    json_t *j, *body;

    if ((e = read_json(ar, &j)) != NULL || (e = precondition(ar)) != NULL) {
        return send_error(ar, e);
    }
    if (!json_is_boolean(json_object_get(j, "enabled"))
        || (json_object_get(j, "allow_password") != NULL
            && !json_is_boolean(json_object_get(j, "allow_password")))
        || (json_object_get(j, "confirm_untested") != NULL
            && !json_is_boolean(json_object_get(j, "confirm_untested")))) {
        return send_error(ar, err_make(ar, 400, "bad_request",
                                       "Send \"enabled\" (and optionally "
                                       "\"allow_password\", "
                                       "\"confirm_untested\") as true or "
                                       "false."));
    }
    /* turning SSO on needs a passing test login of an admin (audit_trail.c
     * records it), unless confirm_untested */
    e = btsso_store_set_enabled_tested(
        ar->store, r->pool, ar->account,
        json_is_true(json_object_get(j, "enabled")),
        json_is_true(json_object_get(j, "allow_password")),
        json_is_true(json_object_get(j, "confirm_untested")),
        ar->version, apr_time_now(), ar->user, &dups, &missing);
    if (e == NULL) {
        return changed(ar);
    }
    e = api_error(ar, e);
    btsso_log_error(r, APLOG_INFO, "BTSSO0409", ar->account, e);
    body = json_pack("{s:s, s:s}", "error", e->code, "message", e->message);
    if (strcmp(e->code, "duplicate_emails") == 0) {
        int i;
        const char *list = "";
        for (i = 0; i < dups->nelts; i++) {
            list = apr_pstrcat(r->pool, list, i ? ", " : "",
                               APR_ARRAY_IDX(dups, i,
                                             btsso_dup_email_t *)->email,
                               NULL);
        }
        json_object_set_new(body, "duplicates", dups_json(dups));
        json_object_set_new(body, "message", json_string(apr_pstrcat(
            r->pool, "SSO cannot be enabled while users of this account "
            "share a contact email: ", list, ". Give each user and call "
            "queue its own email first.", NULL)));
    }
    else if (strcmp(e->code, "untested") == 0) {
        json_object_set_new(body, "test_url", json_string(apr_pstrcat(
            r->pool, ar->sc->base_url, ar->sc->sp_path, "/test/",
            ar->account, NULL)));
    }
    else if (strcmp(e->code, "incomplete") == 0) {
        json_object_set_new(body, "missing", missing_json(missing));
        json_object_set_new(body, "message", json_string(apr_pstrcat(
            r->pool, "SSO cannot be enabled yet: it still needs ",
            missing_text(r->pool, missing), ".", NULL)));
    }
    return btsso_send_json(r, e->status, body);
}

/* PUT policy: replaces the account's policy (a field left out is the
 * server-wide behaviour).  Sessions older than a lowered cap end within
 * BTSSOConfigTTL (session.c). */
static int put_policy(admin_req *ar)
{
    btsso_policy_t *pol = NULL;
    btsso_error_t *e;
    const char *ignored = NULL;
    json_t *j;

    if ((e = read_json(ar, &j)) != NULL || (e = precondition(ar)) != NULL
        || (e = btsso_policy_from_json(ar->r->pool, j, &pol, &ignored))
            != NULL
        || (e = btsso_store_policy_set(ar->store, ar->account, pol,
                                       ar->sc->session_max_age, ar->version,
                                       apr_time_now(), ar->user)) != NULL) {
        return send_error(ar, e);
    }
    if (ignored != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, ar->r,
                      "BTSSO0450: account %s: policy fields ignored "
                      "(unknown): %s", ar->account,
                      ap_escape_logitem(ar->r->pool, ignored));
    }
    return changed(ar);
}

/* POST sessions/revoke {"email": "..."} or {}: end that user's sessions
 * of this account, or every one, on every node within BTSSOConfigTTL
 * (sessions follow the account cache: session.c). */
static int post_sessions_revoke(admin_req *ar)
{
    request_rec *r = ar->r;
    btsso_error_t *e;
    json_t *j, *email;

    if ((e = read_json(ar, &j)) != NULL) {
        return send_error(ar, e);
    }
    email = json_object_get(j, "email");
    if (email != NULL && !json_is_null(email) && !json_is_string(email)) {
        return send_error(ar, err_make(ar, 400, "bad_request",
                                       "Send {\"email\": \"<email>\"} to "
                                       "end one user's sessions, or {} to "
                                       "end every session of the "
                                       "account."));
    }
    e = btsso_store_sessions_revoke(ar->store, ar->account,
                                    json_is_string(email)
                                        ? json_string_value(email) : NULL,
                                    apr_time_now(), ar->user);
    if (e != NULL) {
        return send_error(ar, e);
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "BTSSO0430: account %s: %s revoked %s", ar->account,
                  ap_escape_logitem(r->pool, ar->user),
                  json_is_string(email)
                      ? apr_pstrcat(r->pool, "the sessions of ",
                                    ap_escape_logitem(r->pool,
                                        json_string_value(email)), NULL)
                      : "every session");
    /* this process at once; the others within BTSSOConfigTTL */
    btsso_acct_invalidate(r->server, ar->account);
    return btsso_send_json(r, 200, json_pack("{s:s}", "revoked",
                                             json_is_string(email)
                                                 ? "user" : "account"));
}

/* ---- the handler ----------------------------------------------------------------- */

static int method_not_allowed(request_rec *r, apr_int64_t allowed)
{
    r->allowed = allowed;
    return HTTP_METHOD_NOT_ALLOWED;
}

#define BIT(m) (AP_METHOD_BIT << (m))

static int dispatch(admin_req *ar)
{
    request_rec *r = ar->r;
    int m = r->method_number;
    const char *ep = ar->endpoint;

    if (ar->arg != NULL) {
        if (m != M_PUT && m != M_DELETE) {
            return method_not_allowed(r, BIT(M_PUT) | BIT(M_DELETE));
        }
        return change_certificate(ar);
    }
    if (!strcmp(ep, "audit")) {
        if (m != M_GET) {
            return method_not_allowed(r, BIT(M_GET));
        }
        return btsso_admin_get_audit(r, ar->store, ar->account);
    }
    if (*ep == '\0' || !strcmp(ep, "config") || !strcmp(ep, "sp-metadata")
        || !strcmp(ep, "duplicate-emails")) {
        if (m != M_GET) {
            return method_not_allowed(r, BIT(M_GET));
        }
        if (*ep == '\0') {
            return btsso_admin_send_page(r, ar->account);
        }
        if (!strcmp(ep, "config")) {
            return send_config(ar);
        }
        return !strcmp(ep, "sp-metadata") ? get_sp_metadata(ar)
                                          : get_duplicates(ar);
    }
    if (!strcmp(ep, "sign-ins")) {
        if (m != M_GET) {
            return method_not_allowed(r, BIT(M_GET));
        }
        return btsso_admin_sign_ins(r, ar->store, ar->account);
    }
    if (!strcmp(ep, "sessions/revoke")) {
        if (m != M_POST) {
            return method_not_allowed(r, BIT(M_POST));
        }
        return post_sessions_revoke(ar);
    }
    if (!strcmp(ep, "metadata") || !strcmp(ep, "certificates")) {
        if (m != M_POST) {
            return method_not_allowed(r, BIT(M_POST));
        }
        return !strcmp(ep, "metadata") ? post_metadata(ar)
                                       : post_certificate(ar);
    }
    if (m != M_PUT) {
        return method_not_allowed(r, BIT(M_PUT));
    }
    if (!strcmp(ep, "policy")) {
        return put_policy(ar);
    }
    return !strcmp(ep, "enabled") ? put_enabled(ar) : put_email_attribute(ar);
}

/* A refusal before routing to an endpoint: people opening the page get a
 * page, the API gets JSON. */
static int refuse(admin_req *ar, const btsso_error_t *e)
{
    if (*ar->endpoint == '\0') {
        return btsso_send_page(ar->r, e->status, "Single Sign-on",
                               e->message, NULL, NULL);
    }
    return btsso_send_json_error(ar->r, e);
}

static int btsso_admin_handler(request_rec *r)
{
    admin_req ar;
    btsso_error_t *e;
    int is_admin = 0;

    if (r->handler == NULL || strcmp(r->handler, BTSSO_ADMIN_HANDLER) != 0) {
        return DECLINED;
    }
    memset(&ar, 0, sizeof(ar));
    ar.r = r;
    ar.sc = btsso_srv(r->server);
    ar.user = r->user;
    if (!parse_route(&ar) || !btsso_account_id_ok(ar.account)) {
        return HTTP_NOT_FOUND;
    }
    if (ar.user == NULL || *ar.user == '\0') {
        log_refusal(&ar, "BTSSO0402", "no REMOTE_USER: put the admin "
                    "location behind httpd authentication");
        return refuse(&ar, err_make(&ar, 403, "forbidden",
            "Sign in to the portal as an administrator of this account."));
    }
    ar.session_account = "-";
    if (ap_auth_type(r) != NULL && strcasecmp(ap_auth_type(r), "BTSSO") == 0) {
        /* REMOTE_USER is the email of a session of some account; that
         * email may administer this account, but an email means one person
         * only within one account: the session must be of this account. */
        btsso_session_t *ss = btsso_session_get(r);

        if (ss == NULL || ss->account == NULL
            || strcmp(ss->account, ar.account) != 0) {
            r->connection->keepalive = AP_CONN_CLOSE;  /* do not drain */
            log_refusal(&ar, "BTSSO0405", apr_pstrcat(r->pool,
                        "the AuthType BTSSO session is of account ",
                        ss && ss->account ? ss->account : "(none)",
                        ", not of the account administered", NULL));
            return refuse(&ar, err_make(&ar, 403, "forbidden",
                "You are signed in to another account: sign in to this "
                "account to administer it."));
        }
        ar.session_account = ss->account;
    }
    if ((ar.store = btsso_request_store(r)) == NULL) {
        return btsso_send_json_error(r, err_make(&ar, 503, "unavailable",
            "The account store is unavailable; try again shortly."));
    }
    if ((e = btsso_store_is_admin(ar.store, ar.account, ar.user, &is_admin))
        != NULL) {
        return send_error(&ar, e);
    }
    if (!is_admin) {
        r->connection->keepalive = AP_CONN_CLOSE;  /* do not drain a body */
        log_refusal(&ar, "BTSSO0403", "not an administrator of this account "
                    "(BTSSOAdminQuery)");
        return refuse(&ar, err_make(&ar, 403, "forbidden",
            "You are not an administrator of this account."));
    }
    if (r->method_number != M_GET) {
        /* every change: a token bound to this user, account and session
         * account */
        if (!btsso_csrf_valid(r, ar.user, ar.account, ar.session_account,
                              apr_table_get(r->headers_in, "X-CSRF-Token"))) {
            log_refusal(&ar, "BTSSO0404", "missing or invalid X-CSRF-Token");
            r->connection->keepalive = AP_CONN_CLOSE;
            return btsso_send_json_error(r, err_make(&ar, 403, "csrf",
                "The form expired or did not come from this page; reload "
                "the page and try again."));
        }
        ar.version = if_match_version(r);
        if (ar.version < 0) {
            ar.version = 0;
            ar.version_unmatchable = 1;
        }
    }
    return dispatch(&ar);
}

static int btsso_admin_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                                   apr_pool_t *ptemp, server_rec *base)
{
    return btsso_csrf_init(pconf, base);
}

void btsso_register_admin_hooks(apr_pool_t *p)
{
    ap_hook_post_config(btsso_admin_post_config, NULL, NULL,
                        APR_HOOK_MIDDLE);
    ap_hook_handler(btsso_admin_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
