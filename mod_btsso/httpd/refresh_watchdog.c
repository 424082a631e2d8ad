/*
 * refresh_watchdog.c - metadata refresh run by the module itself (SPEC
 * "Metadata refresh"): a mod_watchdog singleton, so that exactly one child
 * process of the server refreshes at any time (mod_watchdog holds a
 * process mutex for it; another child takes over when that one exits).
 *
 * Each tick asks the store which accounts are due (store/refresh.h keeps
 * the schedule in the store, so restarts and other nodes share it) and
 * claims each before fetching it, so a second node, or a second virtual
 * host on the same store, never fetches the same account at the same
 * time.  The rules are the core's (btsso_refresh_due), the same code as
 * `btssoctl idp refresh`; this file only connects them to httpd: the
 * store through mod_dbd's ap_dbd_open (a pooled connection of the
 * server, with the statements mod_dbd prepared for it, operator SQL
 * included) and the error log.  Processes see a change within
 * BTSSOConfigTTL, like any other change to the store.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_main.h>
#include <http_core.h>
#include <apr_dbd.h>
#include <mod_watchdog.h>
#include <mod_dbd.h>
#include <apr_optional.h>
#include <apr_strings.h>

#include "btsso_glue.h"
#include "btsso_refresh.h"
#include "saml/response.h"

APLOG_USE_MODULE(btsso);

#define WATCHDOG_NAME "btsso-refresh"
#define TICK_MIN apr_time_from_msec(500)
#define TICK_MAX apr_time_from_sec(60)
#define ACCOUNTS_PER_TICK 20

static APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *wd_get_instance;
static APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *wd_register;
static APR_OPTIONAL_FN_TYPE(ap_dbd_open) *dbd_open;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close;

static const char *iso(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t x;

    if (t <= 0 || apr_time_exp_gmt(&x, t) != APR_SUCCESS) {
        return NULL;
    }
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                        x.tm_year + 1900, x.tm_mon + 1, x.tm_mday,
                        x.tm_hour, x.tm_min, x.tm_sec);
}

static json_t *json_time(apr_pool_t *p, apr_time_t t)
{
    const char *s = iso(p, t);

    return s != NULL ? json_string(s) : json_null();
}

void btsso_refresh_opts(const btsso_srv_cfg *sc, btsso_refresh_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    btsso_fetch_opts_default(&o->fetch);
    o->fetch.max_size = (apr_size_t)sc->metadata_max_size;
    o->fetch.timeout_sec = (int)apr_time_sec(sc->metadata_fetch_timeout);
    if (o->fetch.timeout_sec <= 0) {
        o->fetch.timeout_sec = 1;
    }
    o->fetch.allow_http = sc->metadata_fetch_http;
    o->fetch.allow = sc->metadata_fetch_allow;
    o->interval = sc->metadata_refresh_interval;
    o->sig_allowed = (unsigned int)sc->signature_algorithms;
    o->digest_allowed = (unsigned int)sc->digest_algorithms;
    o->actor = BTSSO_REFRESH_ACTOR;
}

/* ---- the watchdog ---------------------------------------------------------- */

static const char *cert_list(apr_pool_t *p, const apr_array_header_t *certs)
{
    const char *out = "";
    int i;

    for (i = 0; i < certs->nelts; i++) {
        const btsso_cert_t *c = APR_ARRAY_IDX(certs, i, btsso_cert_t *);
        out = apr_psprintf(p, "%s%s%s (%s)", out, i ? ", " : "", c->sha256,
                           c->subject != NULL ? c->subject : "");
    }
    return out;
}

static void report(void *baton, const btsso_refresh_report_t *r)
{
    server_rec *s = baton;
    apr_pool_t *p = r->added->pool;
    const char *next = iso(p, r->next_due);

    if (r->error != NULL && strcmp(r->error->code, "conflict") == 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, "BTSSO0607: account %s: "
                     "the account changed while its metadata was being "
                     "refreshed; trying again at %s", r->account,
                     next ? next : "-");
        return;
    }
    if (r->error != NULL) {
        int refused = strcmp(r->error->code, "metadata_signature_invalid")
                      == 0 || strcmp(r->error->code, "metadata_expired") == 0;
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "%s: account %s: metadata refresh from %s %s (%d in a "
                     "row); the last good copy stays in force; next attempt "
                     "at %s: %s", refused ? "BTSSO0606" : "BTSSO0605",
                     r->account, r->url ? r->url : "-",
                     refused ? "refused the document" : "failed",
                     r->failures, next ? next : "-",
                     btsso_error_line(p, r->error));
        return;
    }
    if (!r->changed) {
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "BTSSO0610: account %s: "
                     "metadata at %s unchanged; next refresh at %s",
                     r->account, r->url, next ? next : "-");
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "BTSSO0602: account %s: "
                 "metadata refreshed from %s (signature %s), %d new "
                 "signing certificate(s)%s%s; next refresh at %s",
                 r->account, r->url, btsso_mdsig_name(r->signature),
                 r->added->nelts, r->added->nelts ? ": " : "",
                 cert_list(p, r->added), next ? next : "-");
    if (r->promoted != NULL) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "BTSSO0603: account %s: "
                     "certificate %s is now secondary: the refreshed "
                     "metadata's signature verified with trusted "
                     "certificate %s", r->account, r->promoted,
                     r->signer ? r->signer : "-");
    }
    if (btsso_refresh_waiting(r) > 0) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "BTSSO0604: account "
                     "%s: new IdP certificate(s) wait for an administrator "
                     "to give them a role (%s): %s", r->account,
                     r->signature == BTSSO_MDSIG_VERIFIED
                     ? "the secondary slot is taken"
                     : "the metadata is not signed by a certificate the "
                       "account trusts", cert_list(p, r->added));
    }
}

static apr_status_t refresh_tick(int state, void *data, apr_pool_t *pool)
{
    server_rec *s = data;
    btsso_srv_cfg *sc = btsso_srv(s);
    btsso_refresh_opts_t o;
    btsso_store_t *store;
    btsso_error_t *e;
    ap_dbd_t *db;

    if (state != AP_WATCHDOG_STATE_RUNNING) {
        return APR_SUCCESS;
    }
    db = dbd_open(pool, s);
    if (db == NULL) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "BTSSO0609: metadata "
                     "refresh: no connection to the account database "
                     "(mod_dbd); trying again at the next tick");
        return APR_SUCCESS;
    }
    store = btsso_store_wrap(pool, db->driver, db->handle, db->prepared,
                             db->pool);
    btsso_refresh_opts(sc, &o);
    e = btsso_refresh_due(store, pool, &o, apr_time_now(), ACCOUNTS_PER_TICK,
                          report, s);
    if (e != NULL) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "BTSSO0608: metadata "
                     "refresh: %s", btsso_error_line(pool, e));
    }
    dbd_close(s, db);
    /* never anything else: another status would stop the callback */
    return APR_SUCCESS;
}

/* How often the schedule is looked at: a fraction of the interval, so a
 * due account waits little, between half a second and a minute. */
static apr_interval_time_t tick_of(apr_interval_time_t interval)
{
    apr_interval_time_t t = interval / 60;

    return t < TICK_MIN ? TICK_MIN : (t > TICK_MAX ? TICK_MAX : t);
}

static int refresh_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                               apr_pool_t *ptemp, server_rec *base)
{
    ap_watchdog_t *wd = NULL;
    server_rec *s;
    apr_status_t rv;
    int wanted = 0;

    /* mod_watchdog only starts instances on the second pass */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    for (s = base; s != NULL; s = s->next) {
        btsso_srv_cfg *sc = btsso_srv(s);
        wanted |= sc->rt != NULL && sc->metadata_refresh_interval > 0;
    }
    if (!wanted) {
        return OK;
    }
    wd_get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    wd_register = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    if (wd_get_instance == NULL || wd_register == NULL) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, base, "BTSSO0601: "
                     "mod_watchdog is not loaded: metadata from URLs is not "
                     "refreshed by the module (load it with LoadModule "
                     "watchdog_module .../mod_watchdog.so, or set "
                     "BTSSOMetadataRefreshInterval 0 and refresh with "
                     "btssoctl idp refresh --all)");
        return OK;
    }
    if (dbd_open == NULL || dbd_close == NULL) {
        return OK;      /* BTSSO0002 says mod_dbd is missing */
    }
    rv = wd_get_instance(&wd, WATCHDOG_NAME, 0, 1, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, base, "BTSSO0611: cannot "
                     "create the metadata refresh watchdog");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (s = base; s != NULL; s = s->next) {
        btsso_srv_cfg *sc = btsso_srv(s);

        if (sc->rt == NULL || sc->metadata_refresh_interval <= 0) {
            continue;
        }
        rv = wd_register(wd, tick_of(sc->metadata_refresh_interval), s,
                         refresh_tick);
        if (rv != APR_SUCCESS && rv != APR_EEXIST) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, "BTSSO0611: cannot "
                         "register the metadata refresh watchdog");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, "BTSSO0612: metadata "
                     "refresh every %" APR_TIME_T_FMT " s (one process of "
                     "the server, mod_watchdog %s)",
                     apr_time_sec(sc->metadata_refresh_interval),
                     WATCHDOG_NAME);
    }
    return OK;
}

void btsso_register_refresh_hooks(apr_pool_t *p)
{
    /* before mod_watchdog's post_config (APR_HOOK_LAST), which starts
     * the instances that have callbacks */
    ap_hook_post_config(refresh_post_config, NULL, NULL, APR_HOOK_MIDDLE);
}

/* ---- the admin API's part --------------------------------------------------- */

btsso_error_t *btsso_refresh_upload_check(request_rec *r, btsso_store_t *st,
                                          const char *account,
                                          const btsso_idp_metadata_t *md,
                                          btsso_md_trust_t *facts)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_error_t *e;

    e = btsso_refresh_check_upload(st, r->pool, account, md,
                                   (unsigned int)sc->signature_algorithms,
                                   (unsigned int)sc->digest_algorithms,
                                   apr_time_now(), facts);
    if (e != NULL && e->status == 422) {
        btsso_log_error(r, APLOG_INFO, "BTSSO0613", account, e);
    }
    return e;
}

void btsso_refresh_uploaded(request_rec *r, btsso_store_t *st,
                            const char *account, const char *url,
                            const btsso_md_trust_t *facts)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_error_t *e;

    if (url == NULL) {
        return;
    }
    e = btsso_refresh_schedule_upload(st, account, facts,
                                      sc->metadata_refresh_interval,
                                      apr_time_now());
    if (e != NULL) {
        btsso_log_error(r, APLOG_WARNING, "BTSSO0614", account, e);
    }
}

json_t *btsso_refresh_json(request_rec *r, btsso_store_t *st,
                           const char *account, const btsso_idp_t *idp,
                           const btsso_idp_metadata_t *md,
                           const apr_array_header_t *certs)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_refresh_state_t *rs = NULL;
    btsso_md_trust_t facts;
    apr_time_t now = apr_time_now();
    json_t *o = json_object(), *waiting = json_array();
    int i, from_url = idp != NULL && idp->source_url != NULL;

    memset(&facts, 0, sizeof(facts));
    if (md != NULL) {
        /* what the copy in force says of itself (no key is tried) */
        (void)btsso_metadata_trust(r->pool, md, NULL, 0, 0, &facts);
    }
    if (from_url) {
        (void)btsso_store_refresh_get(st, r->pool, account, &rs);
    }
    json_object_set_new(o, "source_url",
                        from_url ? json_string(idp->source_url) : json_null());
    json_object_set_new(o, "automatic", json_boolean(
        from_url && sc->metadata_refresh_interval > 0));
    json_object_set_new(o, "interval", json_integer(
        apr_time_sec(sc->metadata_refresh_interval)));
    json_object_set_new(o, "last_ok", json_time(r->pool,
                                                rs ? rs->last_ok : 0));
    json_object_set_new(o, "last_attempt",
                        json_time(r->pool, rs ? rs->last_attempt : 0));
    json_object_set_new(o, "next", json_time(r->pool, rs != NULL
                                             && sc->metadata_refresh_interval
                                                > 0 ? rs->next_due : 0));
    json_object_set_new(o, "failures", json_integer(rs ? rs->failures : 0));
    json_object_set_new(o, "last_error", rs && rs->last_error
                        ? json_string(rs->last_error) : json_null());
    json_object_set_new(o, "signature", json_string(
        rs && rs->signature ? rs->signature
                            : btsso_mdsig_name(facts.signature)));
    json_object_set_new(o, "valid_until", json_time(r->pool,
                                                    facts.valid_until));
    json_object_set_new(o, "expired", json_boolean(
        facts.valid_until != 0 && facts.valid_until <= now));
    for (i = 0; certs != NULL && i < certs->nelts; i++) {
        const btsso_stored_cert_t *c =
            APR_ARRAY_IDX(certs, i, btsso_stored_cert_t *);
        if (c->role == BTSSO_ROLE_NONE && c->source != NULL
            && strcmp(c->source, "refresh") == 0
            && btsso_cert_is_valid_at(c->cert, now)) {
            json_array_append_new(waiting, json_string(c->cert->sha256));
        }
    }
    json_object_set_new(o, "waiting", waiting);
    return o;
}
