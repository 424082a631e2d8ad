/*
 * glue_util.c - what every handler needs: a store on the request's
 * connection (mod_dbd's functions, retrieved at post_config, live here),
 * tagged logging of core errors, JSON errors and pages for people, query
 * arguments and return targets, redirects, the discovery page's URL and
 * the SP metadata document, the session cache's lock.  Endpoint files (h_*.c) stand on these and
 * on glue_signin.c; nothing here calls an endpoint file.
 */
#include <errno.h>
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>
#include <apr_atomic.h>
#include <jansson.h>

#include "btsso_glue.h"
#include "btsso_handlers.h"
#include "core/addressing.h"
#include "core/b64.h"
#include "core/plock.h"
#include "core/url.h"
#include "saml/spmeta.h"

APLOG_USE_MODULE(btsso);

/* mod_dbd's functions, set by mod_btsso.c at post_config. */
ap_dbd_t *(*btsso_dbd_acquire)(request_rec *) = NULL;
void (*btsso_dbd_prepare)(server_rec *, const char *, const char *) = NULL;

/*
 * mod_dbd opens a connection and prepares every statement registered with
 * it in one go.  A connection that cannot be made (the database restarting,
 * its connection limit reached for a moment) fails the constructor and
 * the request would get a 503: try again for a while (10 ms doubling up to
 * 200 ms, about 3 s in all).  On SQLite the module prepares its statements
 * itself after setting the busy timeout (btsso_store_wrap): mod_dbd would
 * prepare with no busy handler and fail at once (AH00632 "database is
 * locked") while another connection holds a lock, a btssoctl write or the
 * WAL checkpoint of a graceful restart's last old connection.
 */
#define STORE_ATTEMPTS 20
#define STORE_RETRY_FIRST apr_time_from_msec(10)
#define STORE_RETRY_MAX apr_time_from_msec(200)

/*
 * A database that is down (PostgreSQL stopped, unreachable) is no brief
 * lock: once a whole round of retries has failed, requests try once each
 * (mod_dbd's connect is the probe) and answer 503 at once, instead of each
 * holding a worker for the ~3 s of retries -- under load that would take
 * every worker, pages that need no store included.  The first connection
 * made ends it.  Per process; a 32-bit flag read and written atomically.
 */
static apr_uint32_t store_down;

btsso_store_t *btsso_request_store(request_rec *r)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_store_t *st;
    ap_dbd_t *dbd;
    apr_interval_time_t wait = STORE_RETRY_FIRST;
    int attempts = apr_atomic_read32(&store_down) ? 1 : STORE_ATTEMPTS;
    int attempt;

    if (btsso_dbd_acquire == NULL) {
        return NULL;
    }
    for (attempt = 1; ; attempt++) {
        dbd = btsso_dbd_acquire(r);
        if (dbd != NULL || attempt >= attempts) {
            break;
        }
        apr_sleep(wait);
        wait = wait * 2 > STORE_RETRY_MAX ? STORE_RETRY_MAX : wait * 2;
    }
    if (dbd != NULL && apr_atomic_cas32(&store_down, 0, 1) == 1) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                      "BTSSO0120: database connections work again");
    }
    else if (dbd == NULL && attempts > 1) {
        apr_atomic_set32(&store_down, 1);
    }
    if (dbd != NULL && attempt > 1) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BTSSO0102: database connection made at attempt %d "
                      "(the store was locked)", attempt);
    }
    if (dbd == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BTSSO0101: no database connection from mod_dbd "
                      "(check DBDriver/DBDParams, and that 'btssoctl init' "
                      "created the schema: statements are prepared when "
                      "a connection opens)");
        return NULL;
    }
    st = btsso_store_wrap(r->pool, dbd->driver, dbd->handle, dbd->prepared,
                          dbd->pool);
    /* the SQL mod_dbd prepared (mod_btsso.c), should a reconnect lose it */
    btsso_store_set_sql(st, BTSSO_Q_USER, sc->user_query);
    btsso_store_set_sql(st, BTSSO_Q_DUPLICATES, sc->duplicate_email_query);
    btsso_store_set_sql(st, BTSSO_Q_ADMIN, sc->admin_query);
    btsso_store_set_sql(st, BTSSO_Q_ACCOUNT_BY_EMAIL,
                        sc->account_by_email_query);
    return st;
}

void btsso_log_error(request_rec *r, int level, const char *tag,
                     const char *account, const btsso_error_t *e)
{
    ap_log_rerror(APLOG_MARK, level, 0, r, "%s: account %s: %s: %s%s%s",
                  tag, account ? account : "-", e->code, e->message,
                  e->detail ? " -- " : "", e->detail ? e->detail : "");
}

int btsso_send_json(request_rec *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);

    json_decref(body);
    if (text == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    r->status = status;
    ap_set_content_type(r, "application/json");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_rputs(text, r);
    ap_rputc('\n', r);
    free(text);
    return OK;
}

int btsso_send_json_error(request_rec *r, const btsso_error_t *e)
{
    json_t *o = json_pack("{s:s, s:s}", "error", e->code,
                          "message", e->message);

    return btsso_send_json(r, e->status ? e->status : 500, o);
}

static const char page_style[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;"
    "background:#f4f5f7;color:#1d1d1f;margin:0}"
    "main{max-width:36rem;margin:4rem auto;background:#fff;padding:2rem;"
    "border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.12)}"
    "h1{font-size:1.3rem;margin-top:0}"
    "a.button{display:inline-block;margin-top:1rem;padding:.5rem 1rem;"
    "background:#5514b4;color:#fff;border-radius:4px;text-decoration:none}"
    "code{background:#eee;padding:0 .2rem}"
    ".ref{color:#555;font-size:.9rem}.ref code{font-size:1rem;"
    "letter-spacing:.05em}";

int btsso_send_page(request_rec *r, int status, const char *title,
                    const char *text, const char *link_href,
                    const char *link_text)
{
    r->status = status;
    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "Content-Security-Policy",
                   "default-src 'none'; style-src 'unsafe-inline'");
    ap_rprintf(r, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
               "<meta charset=\"utf-8\"><title>%s</title>"
               "<meta name=\"viewport\" content=\"width=device-width\">"
               "<style>%s</style></head><body><main><h1>%s</h1><p>%s</p>",
               ap_escape_html(r->pool, title), page_style,
               ap_escape_html(r->pool, title),
               ap_escape_html(r->pool, text));
    if (btsso_signin_reference_if_any(r) != NULL) {
        /* a refused sign-in: the code the log line and the account's
         * sign-ins carry (btsso_signin_refused) */
        ap_rprintf(r, "<p class=\"ref\">Reference: <code id=\"reference\">"
                   "%s</code><br>Quote it to your administrator or support "
                   "if you ask for help.</p>",
                   ap_escape_html(r->pool, btsso_signin_reference_if_any(r)));
    }
    if (link_href != NULL) {
        ap_rprintf(r, "<a class=\"button\" href=\"%s\">%s</a>",
                   ap_escape_html(r->pool, link_href),
                   ap_escape_html(r->pool, link_text ? link_text : link_href));
    }
    ap_rputs("</main></body></html>\n", r);
    return OK;
}

int btsso_send_error_page(request_rec *r, const btsso_error_t *e)
{
    int status = e->status;

    if (btsso_signin_reference_if_any(r) == NULL) {
        /* a refusal that did not go through btsso_signin_refused: its
         * code must still be in the log */
        btsso_signin_refused(r, APLOG_WARNING, "BTSSO0250",
                             "sign-in refused (not recorded)", NULL, NULL,
                             e, 0);
    }

    if (status != 400 && status != 403 && status != 404 && status != 409
        && status != 413 && status != 503) {
        status = status >= 500 ? 500 : 403;
    }
    return btsso_send_page(r, status, "Sign-in failed", e->message,
                           NULL, NULL);
}

/* ---- the session cache's lock (btsso_glue.h) ------------------------------ */

void btsso_cache_lock_take(btsso_cache_lock *l, server_rec *s)
{
    apr_status_t rv;
    int rc;

    if (l->own == NULL) {
        rv = apr_global_mutex_lock(l->apr);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         "BTSSO0015: cannot take the session cache lock");
        }
        return;
    }
    rc = btsso_plock_acquire(l->own);
    if (rc == 1) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "BTSSO0014: a process died holding the session cache "
                     "lock; the lock works again (what that process was "
                     "writing to the cache may be lost)");
    }
    else if (rc < 0) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, APR_FROM_OS_ERROR(errno), s,
                     "BTSSO0015: cannot take the session cache lock");
    }
}

void btsso_cache_lock_give(btsso_cache_lock *l, server_rec *s)
{
    apr_status_t rv = l->own == NULL ? apr_global_mutex_unlock(l->apr)
                      : btsso_plock_release(l->own) == 0 ? APR_SUCCESS
                      : APR_FROM_OS_ERROR(errno);

    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "BTSSO0015: cannot release the session cache lock");
    }
}

/* ---- request arguments, redirects, return targets ----------------------- */

/* The first value of name in application/x-www-form-urlencoded text q
 * of qlen octets (decoded, NUL-terminated, *vlen octets before the NUL,
 * which may hold NUL octets), or NULL: absent or badly encoded. */
const char *btsso_urlencoded_arg(apr_pool_t *p, const char *q,
                                 apr_size_t qlen, const char *name,
                                 apr_size_t *vlen)
{
    apr_size_t n = strlen(name);
    const char *end_all = q + qlen;

    while (q != NULL && q < end_all) {
        const char *end = memchr(q, '&', (apr_size_t)(end_all - q));
        apr_size_t len = end ? (apr_size_t)(end - q)
                             : (apr_size_t)(end_all - q);

        if (len > n && strncmp(q, name, n) == 0 && q[n] == '=') {
            char *v = NULL;

            /* Form decoding: '+' is a space, %XX any octet (ap_unescape_url
             * would refuse the %2F every encoded path holds). */
            if (btsso_pct_decode(p, q + n + 1, len - n - 1, &v, vlen)
                != NULL) {
                return NULL;
            }
            return v;
        }
        q = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Value of a query argument (decoded), or NULL.  A value with a NUL octet
 * is refused whole. */
const char *btsso_query_arg(request_rec *r, const char *name)
{
    apr_size_t vlen = 0;
    const char *v;

    if (r->args == NULL) {
        return NULL;
    }
    v = btsso_urlencoded_arg(r->pool, r->args, strlen(r->args), name, &vlen);
    return v != NULL && strlen(v) == vlen ? v : NULL;
}

/* ---- request bodies ------------------------------------------------------- */

/*
 * Read the whole body, at most max bytes.  A Content-Length above max is
 * refused before a byte is read; a chunked body as soon as it grows past
 * max.  After a refusal the connection is closed, not drained.
 */
btsso_error_t *btsso_read_body(request_rec *r, apr_size_t max, char **out,
                               apr_size_t *out_len)
{
    apr_size_t cap, n = 0;
    char *buf;
    int rc;

    if ((rc = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK)) != OK) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return btsso_error_make(r->pool, rc == HTTP_REQUEST_ENTITY_TOO_LARGE
                                ? 413 : 400, rc == HTTP_REQUEST_ENTITY_TOO_LARGE
                                ? "too_large" : "bad_request",
                                "The request body cannot be read.", NULL);
    }
    if (r->remaining > (apr_off_t)max) {
        r->connection->keepalive = AP_CONN_CLOSE;
        return btsso_error_make(r->pool, 413, "too_large",
                                "The upload is too large.",
                                "Content-Length %" APR_OFF_T_FMT " > %"
                                APR_SIZE_T_FMT, r->remaining, max);
    }
    if (!ap_should_client_block(r)) {
        *out = apr_pcalloc(r->pool, 1);
        *out_len = 0;
        return NULL;
    }
    cap = r->remaining > 0 ? (apr_size_t)r->remaining + 1 : 16384;
    if (cap > max + 1) {
        cap = max + 1;
    }
    buf = apr_palloc(r->pool, cap + 1);
    for (;;) {
        long got;

        if (n == cap) {
            apr_size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nbuf;
            if (ncap <= cap) {
                r->connection->keepalive = AP_CONN_CLOSE;
                return btsso_error_make(r->pool, 413, "too_large",
                                        "The upload is too large.",
                                        "body above %" APR_SIZE_T_FMT
                                        " bytes", max);
            }
            nbuf = apr_palloc(r->pool, ncap + 1);
            memcpy(nbuf, buf, n);
            buf = nbuf;
            cap = ncap;
        }
        got = ap_get_client_block(r, buf + n, cap - n);
        if (got < 0) {
            r->connection->keepalive = AP_CONN_CLOSE;
            return btsso_error_make(r->pool, 400, "bad_request",
                                    "The request body could not be read.",
                                    NULL);
        }
        if (got == 0) {
            break;
        }
        n += (apr_size_t)got;
        if (n > max) {
            r->connection->keepalive = AP_CONN_CLOSE;
            return btsso_error_make(r->pool, 413, "too_large",
                                    "The upload is too large.",
                                    "body above %" APR_SIZE_T_FMT " bytes",
                                    max);
        }
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return NULL;
}

int btsso_redirect(request_rec *r, int status, const char *location)
{
    apr_table_setn(r->headers_out, "Location", location);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    return status;
}

/* The validated ?return= of this request, "" when absent or too long
 * (the person then lands on "/"), NULL when bad. */
const char *btsso_return_arg(request_rec *r)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *ret = btsso_query_arg(r, "return");
    const char *norm = NULL;

    if (ret == NULL || *ret == '\0') {
        return "";
    }
    if (strlen(ret) > BTSSO_URL_MAX_RETURN) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BTSSO0241: return target of %" APR_SIZE_T_FMT
                      " octets not kept (at most %d): the sign-in lands "
                      "on /", strlen(ret), BTSSO_URL_MAX_RETURN);
        return "";
    }
    if (!btsso_url_is_safe_return(r->pool, ret, sc->base_url, &norm)) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r,
                      "BTSSO0205: refused return target %s: not a local "
                      "path nor on %s", ap_escape_logitem(r->pool, ret),
                      sc->base_url);
        return NULL;
    }
    return norm;
}

/* The discovery page's URL; return_to is carried along only when it is a
 * return target that may be used (checked here, again on the page, and
 * again after sign-in). */
const char *btsso_discovery_url(request_rec *r, const char *return_to)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *url = apr_pstrcat(r->pool, sc->base_url, sc->sp_path,
                                  "/login", NULL);

    if (return_to != NULL && *return_to != '\0'
        && btsso_url_is_safe_return(r->pool, return_to, sc->base_url,
                                    &return_to)) {
        url = apr_pstrcat(r->pool, url, "?return=",
                          btsso_pct_encode(r->pool, return_to,
                                           strlen(return_to)), NULL);
    }
    return url;
}

/* ---- the SP metadata (GET <SPPath>/metadata and the admin download) ---- */

const char *btsso_sp_metadata_xml(request_rec *r, const char *account,
                                  int shared, btsso_error_t **err)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_sp_addr_t addr;
    btsso_spmeta_t md;
    const char *xml = NULL;

    btsso_sp_addressing(r->pool, sc->base_url, sc->sp_path, sc->sp_entity_id,
                        account, shared, &addr);
    memset(&md, 0, sizeof(md));
    md.entity_id = addr.entity_id;
    md.acs_url = addr.acs_url;
    md.slo_url = addr.slo_url;
    if (sc->rt->spkey != NULL) {
        md.signing_current = btsso_spkey_cert(sc->rt->spkey);
        md.encryption = md.signing_current;
        md.authn_requests_signed = 1;
    }
    if (sc->rt->spkey_next != NULL) {
        md.signing_next = btsso_spkey_cert(sc->rt->spkey_next);
    }
    md.want_assertions_signed = 1;
    *err = btsso_spmeta_build(r->pool, &md, &xml);
    return xml;
}
