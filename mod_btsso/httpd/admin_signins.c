/*
 * admin_signins.c - the account's sign-ins in the admin API: GET
 * <account>/sign-ins (filters, paging) and the sign-in part of GET
 * config (counts per day, the last success and refusal, when each
 * certificate last verified a login, and whether logins have moved to the
 * secondary certificate).  admin.c routes and authorizes; this process's
 * pending counts are written first so that what is read includes them.
 */
#include <stdlib.h>
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>
#include <jansson.h>

#include "btsso_glue.h"
#include "btsso_admin.h"
#include "btsso_handlers.h"
#include "core/refcode.h"

APLOG_USE_MODULE(btsso);

#define CONFIG_DAYS 14

static const char *iso(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;
    char buf[32];
    apr_size_t n = 0;

    apr_time_exp_gmt(&tm, t);
    apr_strftime(buf, &n, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return apr_pstrmemdup(p, buf, n);
}

static json_t *str_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? json_string(s) : json_null();
}

json_t *btsso_signin_json(apr_pool_t *p, const btsso_signin_t *si)
{
    json_t *o = json_object();

    json_object_set_new(o, "reference", json_string(si->reference));
    json_object_set_new(o, "at", json_string(iso(p, si->at)));
    json_object_set_new(o, "result", json_string(si->result));
    json_object_set_new(o, "email", str_or_null(si->email));
    json_object_set_new(o, "name_id", str_or_null(si->name_id));
    json_object_set_new(o, "idp", str_or_null(si->idp));
    json_object_set_new(o, "detail", str_or_null(si->detail));
    return o;
}

static int bad_request(request_rec *r, const char *message)
{
    return btsso_send_json(r, 400, json_pack("{s:s, s:s}", "error",
                                             "bad_request", "message",
                                             message));
}

/* "<unix seconds>_<reference>", the "next" of the previous page. */
static int parse_cursor(apr_pool_t *p, const char *text, apr_time_t *at,
                        const char **ref)
{
    const char *us = strchr(text, '_');
    char *end = NULL;
    apr_int64_t secs;

    if (us == NULL || us == text) {
        return 0;
    }
    secs = apr_strtoi64(apr_pstrmemdup(p, text, us - text), &end, 10);
    if (end == NULL || *end != '\0' || secs < 0) {
        return 0;
    }
    *ref = btsso_refcode_normalize(p, us + 1);
    *at = apr_time_from_sec(secs);
    return *ref != NULL;
}

int btsso_admin_sign_ins(request_rec *r, btsso_store_t *store,
                         const char *account)
{
    btsso_signin_filter_t f;
    apr_array_header_t *list;
    btsso_error_t *e;
    const char *v;
    json_t *a, *body;
    int more = 0, i;

    memset(&f, 0, sizeof(f));
    f.limit = 100;
    if ((v = btsso_query_arg(r, "result")) != NULL && *v != '\0') {
        if (strcmp(v, "failed") == 0) {
            f.failed_only = 1;
        }
        else if (strcmp(v, "all") != 0) {
            return bad_request(r, "result is failed or all.");
        }
    }
    if ((v = btsso_query_arg(r, "reference")) != NULL && *v != '\0') {
        f.reference = btsso_refcode_normalize(r->pool, v);
        if (f.reference == NULL) {
            return bad_request(r, "A reference code has eight letters and "
                               "digits, like K7QX-M2PA.");
        }
    }
    if ((v = btsso_query_arg(r, "limit")) != NULL && *v != '\0') {
        char *end = NULL;
        apr_int64_t n = apr_strtoi64(v, &end, 10);

        if (end == NULL || *end != '\0' || n < 1
            || n > BTSSO_SIGNIN_LIST_MAX) {
            return bad_request(r, apr_psprintf(r->pool, "limit is a number "
                               "from 1 to %d.", BTSSO_SIGNIN_LIST_MAX));
        }
        f.limit = (int)n;
    }
    if ((v = btsso_query_arg(r, "before")) != NULL && *v != '\0') {
        if (!parse_cursor(r->pool, v, &f.before_at, &f.before_ref)) {
            return bad_request(r, "before takes the \"next\" of the "
                               "previous page.");
        }
    }
    btsso_signin_flush(r, store, account);
    e = btsso_store_signin_list(store, r->pool, account, &f, &list, &more);
    if (e != NULL) {
        btsso_log_error(r, APLOG_ERR, "BTSSO0256", account, e);
        return btsso_send_json_error(r, e);
    }
    a = json_array();
    for (i = 0; i < list->nelts; i++) {
        json_array_append_new(a, btsso_signin_json(
            r->pool, APR_ARRAY_IDX(list, i, btsso_signin_t *)));
    }
    body = json_object();
    json_object_set_new(body, "sign_ins", a);
    if (more && list->nelts > 0) {
        const btsso_signin_t *last = APR_ARRAY_IDX(list, list->nelts - 1,
                                                   btsso_signin_t *);
        json_object_set_new(body, "next", json_string(apr_psprintf(
            r->pool, "%" APR_TIME_T_FMT "_%s", apr_time_sec(last->at),
            last->reference)));
    }
    else {
        json_object_set_new(body, "next", json_null());
    }
    return btsso_send_json(r, 200, body);
}

/* The time a certificate of config's list last verified a login. */
static apr_time_t verified_at(const btsso_signin_summary_t *sum,
                              const char *sha256)
{
    apr_time_t *t = sha256 != NULL
        ? apr_hash_get(sum->cert_verified, sha256, APR_HASH_KEY_STRING)
        : NULL;

    return t != NULL ? *t : 0;
}

void btsso_admin_signins_config(request_rec *r, btsso_store_t *store,
                                const char *account, json_t *config)
{
    btsso_signin_summary_t *sum = NULL;
    btsso_error_t *e;
    json_t *o, *days, *certs;
    apr_time_t primary = 0, secondary = 0;
    int has_secondary = 0, i;
    size_t k;

    btsso_signin_flush(r, store, account);
    e = btsso_store_signin_summary(store, r->pool, account, CONFIG_DAYS,
                                   &sum);
    if (e != NULL) {
        /* the rest of the state is still worth showing */
        btsso_log_error(r, APLOG_ERR, "BTSSO0256", account, e);
        json_object_set_new(config, "sign_ins", json_null());
        return;
    }
    o = json_object();
    json_object_set_new(o, "last", sum->last_ok
                        ? btsso_signin_json(r->pool, sum->last_ok)
                        : json_null());
    json_object_set_new(o, "last_failed", sum->last_failed
                        ? btsso_signin_json(r->pool, sum->last_failed)
                        : json_null());
    days = json_array();
    for (i = 0; i < sum->days->nelts; i++) {
        const btsso_signin_day_t *d = &APR_ARRAY_IDX(sum->days, i,
                                                     btsso_signin_day_t);
        json_array_append_new(days, json_pack(
            "{s:s, s:I, s:I, s:I}", "day", d->day, "ok", (json_int_t)d->ok,
            "failed", (json_int_t)d->failed, "unrecorded",
            (json_int_t)d->unrecorded));
    }
    json_object_set_new(o, "days", days);
    json_object_set_new(o, "counted_every", json_integer(apr_time_sec(
        btsso_srv(r->server)->config_ttl > apr_time_from_sec(1)
        ? btsso_srv(r->server)->config_ttl : apr_time_from_sec(1))));

    certs = json_object_get(config, "certificates");
    for (k = 0; json_is_array(certs) && k < json_array_size(certs); k++) {
        json_t *c = json_array_get(certs, k);
        const char *sha = json_string_value(json_object_get(c, "sha256"));
        const char *role = json_string_value(json_object_get(c, "role"));
        apr_time_t t = verified_at(sum, sha);

        json_object_set_new(c, "last_verified",
                            t ? json_string(iso(r->pool, t)) : json_null());
        if (role != NULL && strcmp(role, "primary") == 0) {
            primary = t;
        }
        else if (role != NULL && strcmp(role, "secondary") == 0) {
            secondary = t;
            has_secondary = json_is_true(json_object_get(c, "usable"));
        }
    }
    /* Logins have moved to the secondary certificate (the IdP rolled its
     * key over): it should become the primary before the old one goes. */
    json_object_set_new(o, "promote_secondary",
                        json_boolean(has_secondary && secondary > primary));
    json_object_set_new(config, "sign_ins", o);
}
