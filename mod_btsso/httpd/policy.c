/*
 * policy.c - the per-account policy (SPEC "Per-account policy") where the
 * glue meets it: the admin API's JSON, the ACS check of the assertion's
 * AuthnContextClassRef, the AuthnRequest's ForceAuthn and
 * RequestedAuthnContext, a new session's cap.  The policy comes from the
 * account cache (acct_cache.c): no store query per login.
 *
 * The classes are checked in what the IdP asserted, never only asked
 * for: RequestedAuthnContext is sent only when the administrator opts in,
 * because an IdP may refuse a request it cannot meet the way it was asked
 * (Entra ID answers AADSTS75011 to passkey and Windows Hello users).
 */
#include <string.h>

#include <httpd.h>
#include <http_log.h>
#include <apr_strings.h>

#include "btsso_glue.h"
#include "btsso_policy.h"

APLOG_USE_MODULE(btsso);

static btsso_error_t *wrong_type(apr_pool_t *p, const char *field,
                                 const char *want)
{
    return btsso_error_make(p, 400, "bad_policy", apr_psprintf(
        p, "\"%s\" must be %s (or left out for the server's behaviour).",
        field, want), "field %s", field);
}

btsso_error_t *btsso_policy_from_json(apr_pool_t *p, json_t *body,
                                      btsso_policy_t **out,
                                      const char **ignored)
{
    btsso_policy_t *pol = btsso_policy_make(p);
    const char *key, *skipped = NULL;
    json_t *v;
    size_t i;

    *out = NULL;
    *ignored = NULL;
    json_object_foreach(body, key, v) {
        if (json_is_null(v) || strcmp(key, "version") == 0) {
            continue;   /* "version" is the precondition (read_json) */
        }
        if (strcmp(key, "authn_context") == 0) {
            json_t *c;

            if (!json_is_array(v)) {
                return wrong_type(p, key, "a list of URIs");
            }
            if (json_array_size(v) > BTSSO_POLICY_CLASSES_MAX) {
                return btsso_error_make(p, 400, "bad_policy", apr_psprintf(
                    p, "List at most %d authentication context classes.",
                    BTSSO_POLICY_CLASSES_MAX), "%d classes",
                    (int)json_array_size(v));
            }
            json_array_foreach(v, i, c) {
                if (!json_is_string(c)
                    || strlen(json_string_value(c))
                       != json_string_length(c)) {
                    return wrong_type(p, key, "a list of URIs");
                }
                APR_ARRAY_PUSH(pol->authn_context, const char *) =
                    apr_pstrdup(p, json_string_value(c));
            }
        }
        else if (strcmp(key, "force_authn") == 0
                 || strcmp(key, "request_authn_context") == 0) {
            if (!json_is_boolean(v)) {
                return wrong_type(p, key, "true or false");
            }
            if (key[0] == 'f') {
                pol->force_authn = json_is_true(v);
            }
            else {
                pol->request_authn_context = json_is_true(v);
            }
        }
        else if (strcmp(key, "session_max_age") == 0) {
            json_int_t secs;

            if (!json_is_integer(v) || (secs = json_integer_value(v)) <= 0
                || secs > APR_INT64_C(100) * 365 * 86400) {
                return wrong_type(p, key, "a positive number of seconds");
            }
            pol->session_max_age = apr_time_from_sec((apr_int64_t)secs);
        }
        else if (skipped == NULL || strlen(skipped) < 200) {
            /* SPEC: an unknown field keeps the server-wide behaviour */
            skipped = skipped ? apr_pstrcat(p, skipped, ",", key, NULL)
                              : apr_pstrdup(p, key);
        }
    }
    *ignored = skipped;
    *out = pol;
    return NULL;
}

json_t *btsso_policy_json(apr_pool_t *p, const btsso_policy_t *pol,
                          apr_interval_time_t server_max_age)
{
    json_t *o = json_object(), *a = json_array();
    apr_interval_time_t effective = server_max_age;
    int i;

    for (i = 0; pol->authn_context != NULL && i < pol->authn_context->nelts;
         i++) {
        json_array_append_new(a, json_string(
            APR_ARRAY_IDX(pol->authn_context, i, const char *)));
    }
    if (pol->session_max_age > 0 && pol->session_max_age < effective) {
        effective = pol->session_max_age;
    }
    json_object_set_new(o, "authn_context", a);
    json_object_set_new(o, "request_authn_context",
                        json_boolean(pol->request_authn_context));
    json_object_set_new(o, "force_authn", json_boolean(pol->force_authn));
    json_object_set_new(o, "session_max_age", pol->session_max_age > 0
                        ? json_integer(apr_time_sec(pol->session_max_age))
                        : json_null());
    json_object_set_new(o, "server_session_max_age",
                        json_integer(apr_time_sec(server_max_age)));
    json_object_set_new(o, "effective_session_max_age",
                        json_integer(apr_time_sec(effective)));
    return o;
}

btsso_error_t *btsso_policy_check_assertion(request_rec *r,
                                            const btsso_acct_entry *e,
                                            const btsso_assertion_t *a)
{
    const btsso_policy_t *pol = e->policy;

    if (btsso_policy_class_ok(pol, a->authn_context_class)) {
        return NULL;
    }
    return btsso_error_make(r->pool, 403, "authn_context",
        "Your organisation requires a stronger sign-in for this service "
        "(such as multi-factor authentication). Sign in again with it, or "
        "contact your administrator.",
        "assertion %s carries AuthnContextClassRef %s; the account's policy "
        "requires one of: %s", a->assertion_id,
        a->authn_context_class != NULL
            ? apr_pstrcat(r->pool, "\"", ap_escape_logitem(
                  r->pool, a->authn_context_class), "\"", NULL)
            : "(none)",
        apr_array_pstrcat(r->pool, pol->authn_context, ' '));
}

void btsso_policy_authnreq(const btsso_acct_entry *e, int test,
                           btsso_authnreq_t *req)
{
    const btsso_policy_t *pol = e->policy;

    req->force_authn = test || (pol != NULL && pol->force_authn);
    if (pol != NULL && pol->request_authn_context) {
        req->requested_classes = pol->authn_context;
    }
}

apr_time_t btsso_policy_session_expiry(const btsso_acct_entry *e,
                                       apr_time_t expires, apr_time_t now)
{
    apr_interval_time_t cap = e->policy != NULL ? e->policy->session_max_age
                                                : 0;

    if (cap > 0 && (expires == 0 || expires > now + cap)) {
        return now + cap;
    }
    return expires;
}
