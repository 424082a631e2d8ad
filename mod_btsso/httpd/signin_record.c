/*
 * signin_record.c - reference codes and records of sign-ins (SPEC
 * "Enforcement": every refusal page shows a short reference code, the same
 * code is in the error log line and in the account's sign-ins).
 *
 * A login must not wait for bookkeeping, and an unauthenticated flood of
 * bad responses must neither fill the store nor slow the logins of others:
 *
 * - A refusal gets its row in the store (btsso_store_signin_add, pruned to
 *   BTSSO_SIGNIN_KEEP per account) only while the account's token bucket
 *   in this process has a token: ROW_BURST rows at once, then one per
 *   ROW_REFILL.  There are two buckets per account: refusals of responses
 *   whose IdP signature verified (a real person at the IdP: wrong user, a
 *   replay, a policy) and all others (anyone can post those), so a flood
 *   of forged responses cannot hide the refusals of real people.  Every
 *   refusal is counted per day; those given no row count as "unrecorded".
 *   The code is in the page and the log line in every case.
 * - Successes are counted in this process's memory, with the last one and
 *   the time each certificate last verified a login, and written by the
 *   process's own mod_watchdog thread: an account's first counts within
 *   FLUSH_MIN, then at most once per BTSSOConfigTTL (at least FLUSH_MIN)
 *   per account, so that no login waits for a store write (a login writing
 *   its account's first success itself made every login of a cold
 *   Monday-morning peak queue for SQLite's write lock).  Without
 *   mod_watchdog the login writes them itself, the first at once.  The
 *   admin API writes this process's counts before it reads them.  A
 *   process that stops loses what it had not written yet (at most one
 *   interval's worth).
 *
 * Nothing here stores a SAML message or a secret: the detail is the
 * error's operator detail, which names elements, IDs and times only.
 */
#include <stdlib.h>
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_main.h>
#include <http_core.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_optional.h>
#include <apr_dbd.h>
#include <mod_dbd.h>
#include <mod_watchdog.h>

#include "btsso_glue.h"
#include "core/addressing.h"
#include "core/refcode.h"

APLOG_USE_MODULE(btsso);

#define NOTE_REFERENCE "btsso-signin-reference"
#define CTX_KEY "btsso-signin-context"

#define ROW_BURST 20
#define ROW_REFILL apr_time_from_sec(3)
#define FLUSH_MIN apr_time_from_sec(1)
#define TRACKED_MAX 4096
#define CERTS_TRACKED 4

enum { BUCKET_UNVERIFIED = 0, BUCKET_VERIFIED = 1 };

typedef struct bucket_t {
    int tokens;
    apr_time_t refilled;
} bucket_t;

typedef struct cert_seen_t {
    char sha256[65];
    apr_time_t at;
} cert_seen_t;

/* One account's pending counts in this process. */
typedef struct acct_stats_t {
    char account[65];           /* the table's key */
    apr_time_t day;             /* a time in the UTC day counted, 0: none */
    char day_name[11];
    apr_int64_t ok, failed, unrecorded;
    int has_last;
    apr_time_t last_at;
    char last_ref[BTSSO_REFCODE_LEN + 1];
    char *last_email, *last_name_id, *last_idp;     /* malloc'ed */
    cert_seen_t certs[CERTS_TRACKED];
    int ncerts;
    apr_time_t flushed;         /* 0: never written */
    bucket_t buckets[2];
    server_rec *server;         /* whose store the watchdog writes to */
} acct_stats_t;

/* What a handler knows of the sign-in it is refusing (btsso_signin_note). */
typedef struct signin_ctx_t {
    const char *account;
    const char *email;
    const char *name_id;
    int verified;
} signin_ctx_t;

static apr_pool_t *stats_pool;
static apr_thread_mutex_t *stats_mutex;
static apr_hash_t *stats;       /* account -> acct_stats_t * */

#define WATCHDOG_NAME "btsso-signins"
/* Set at post_config (inherited by the children) when every child has a
 * watchdog thread that writes the counts: logins then write none. */
static int flusher;
static APR_OPTIONAL_FN_TYPE(ap_dbd_open) *dbd_open;
static APR_OPTIONAL_FN_TYPE(ap_dbd_close) *dbd_close;
/* mod_watchdog stops a child's thread only after the child's pool is gone,
 * with the counters and mod_dbd's connections: a tick runs holding
 * tick_mutex (in the process's pool, which outlives the child's), and a
 * pre-cleanup of the child's pool waits for it and stops the ticks. */
static apr_thread_mutex_t *tick_mutex;
static int ticks_stopped;
/* Since when the watchdog has found no database connection (0: it has);
 * COUNTS_PATIENCE later it says so as a warning. */
static apr_time_t conn_failing_since;
#define COUNTS_PATIENCE apr_time_from_sec(60)

/* ---- the process's table ---------------------------------------------- */

static apr_status_t stats_gone(void *data)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, stats); hi; hi = apr_hash_next(hi)) {
        acct_stats_t *st = apr_hash_this_val(hi);
        free(st->last_email);
        free(st->last_name_id);
        free(st->last_idp);
    }
    stats = NULL;
    stats_mutex = NULL;
    return APR_SUCCESS;
}

static apr_status_t stop_ticks(void *data)
{
    apr_thread_mutex_lock(tick_mutex);
    ticks_stopped = 1;
    apr_thread_mutex_unlock(tick_mutex);
    return APR_SUCCESS;
}

static void signin_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (flusher
        && apr_thread_mutex_create(&tick_mutex, APR_THREAD_MUTEX_DEFAULT,
                                   s->process->pool) == APR_SUCCESS) {
        apr_pool_pre_cleanup_register(pchild, NULL, stop_ticks);
    }
    apr_pool_create(&stats_pool, pchild);
    if (apr_thread_mutex_create(&stats_mutex, APR_THREAD_MUTEX_DEFAULT,
                                stats_pool) != APR_SUCCESS) {
        stats_mutex = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "BTSSO0252: cannot make "
                     "the sign-in counters' mutex: this process records "
                     "no refusals and writes each success at once");
        return;
    }
    stats = apr_hash_make(stats_pool);
    apr_pool_cleanup_register(stats_pool, NULL, stats_gone,
                              apr_pool_cleanup_null);
}

static int has_pending(const acct_stats_t *st);
static void take_pending(apr_pool_t *p, acct_stats_t *st,
                         btsso_signin_counts_t *c);
static acct_stats_t *stats_of(const char *account, apr_time_t now);
static char *dup_or_null(const char *s);
static void note_cert(acct_stats_t *st, const char *sha256, apr_time_t now);

typedef struct due_counts {
    const char *account;
    server_rec *server;
    btsso_signin_counts_t c;
} due_counts;

static int put_back(const due_counts *d, apr_time_t now);

/*
 * The watchdog's tick, in every child: the counts due (an account's first
 * ones, or an interval after its last write) taken under the mutex, then
 * written through a connection of mod_dbd's pool, outside any request.
 * Never at STOPPING: mod_dbd's pool may be gone by then.
 */
static apr_status_t signin_tick(int state, void *data, apr_pool_t *pool)
{
    apr_array_header_t *due;
    apr_hash_index_t *hi;
    apr_time_t now = apr_time_now();
    int i, j;

    if (state != AP_WATCHDOG_STATE_RUNNING || tick_mutex == NULL) {
        return APR_SUCCESS;
    }
    apr_thread_mutex_lock(tick_mutex);
    if (ticks_stopped || stats == NULL || stats_mutex == NULL) {
        apr_thread_mutex_unlock(tick_mutex);
        return APR_SUCCESS;
    }
    due = apr_array_make(pool, 8, sizeof(due_counts));
    apr_thread_mutex_lock(stats_mutex);
    for (hi = apr_hash_first(pool, stats); hi; hi = apr_hash_next(hi)) {
        acct_stats_t *st = apr_hash_this_val(hi);
        apr_interval_time_t interval;
        due_counts *d;

        if (!has_pending(st) || st->server == NULL) {
            continue;
        }
        interval = btsso_srv(st->server)->config_ttl;
        if (st->flushed != 0
            && now - st->flushed < (interval > FLUSH_MIN ? interval
                                                         : FLUSH_MIN)) {
            continue;
        }
        d = apr_array_push(due);
        d->account = apr_pstrdup(pool, st->account);
        d->server = st->server;
        take_pending(pool, st, &d->c);
        st->flushed = now;
    }
    apr_thread_mutex_unlock(stats_mutex);
    /* a connection per server whose counts are due (each server may have
     * a store of its own), in the order they come */
    for (i = 0; i < due->nelts; i++) {
        server_rec *s = APR_ARRAY_IDX(due, i, due_counts).server;
        btsso_store_t *store;
        ap_dbd_t *db;

        if (s == NULL) {
            continue;           /* written with an earlier server's */
        }
        /* a pooled connection found dead (the server restarted, or
         * dropped it) is thrown away by mod_dbd and fails only the one
         * that found it: the next is a new connection */
        db = dbd_open(pool, s);
        if (db == NULL) {
            apr_sleep(apr_time_from_msec(20));
            db = dbd_open(pool, s);
        }
        if (db == NULL) {
            int n = 0;

            /* kept for the next tick: a database restarting, or a pool of
             * dropped connections that each attempt empties by one, loses
             * nothing; said as a warning once it lasts */
            if (conn_failing_since == 0) {
                conn_failing_since = now;
            }
            apr_thread_mutex_lock(stats_mutex);
            for (j = i; j < due->nelts; j++) {
                due_counts *d = &APR_ARRAY_IDX(due, j, due_counts);

                if (d->server == s) {
                    n += put_back(d, now);
                    d->server = NULL;
                }
            }
            apr_thread_mutex_unlock(stats_mutex);
            ap_log_error(APLOG_MARK, now - conn_failing_since
                                     >= COUNTS_PATIENCE ? APLOG_WARNING
                                                        : APLOG_INFO,
                         0, s, "BTSSO0257: sign-in counts not written: no "
                         "connection to the account database (mod_dbd) for "
                         "%" APR_TIME_T_FMT " s; %d account(s) kept for the "
                         "next try", apr_time_sec(now - conn_failing_since),
                         n);
            continue;
        }
        conn_failing_since = 0;
        store = btsso_store_wrap(pool, db->driver, db->handle, db->prepared,
                                 db->pool);
        for (j = i; j < due->nelts; j++) {
            due_counts *d = &APR_ARRAY_IDX(due, j, due_counts);
            btsso_error_t *err;

            if (d->server != s) {
                continue;
            }
            d->server = NULL;
            if (d->c.day == 0 && d->c.last_ok == NULL && d->c.certs == NULL) {
                continue;
            }
            err = btsso_store_signin_counts_add(store, d->account, &d->c);
            if (err != NULL) {
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "BTSSO0253: "
                             "account %s: %s", d->account,
                             btsso_error_line(pool, err));
            }
        }
        dbd_close(s, db);
    }
    apr_thread_mutex_unlock(tick_mutex);
    /* never anything else: another status would stop the callback */
    return APR_SUCCESS;
}

/* Put counts taken for a write that could not be made back into the
 * table (under the mutex); 1 when kept, 0 when lost (the table is full,
 * or the day has changed since: they would count on another day). */
static int put_back(const due_counts *d, apr_time_t now)
{
    const btsso_signin_counts_t *c = &d->c;
    acct_stats_t *st = stats_of(d->account, now);
    char name[11];
    apr_time_exp_t tm;
    int i;

    if (st == NULL) {
        return 0;
    }
    if (c->day != 0) {
        apr_time_exp_gmt(&tm, c->day);
        apr_snprintf(name, sizeof(name), "%04d-%02d-%02d", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday);
        if (st->day != 0 && strcmp(name, st->day_name) != 0) {
            return 0;
        }
        st->day = c->day;
        memcpy(st->day_name, name, sizeof(name));
    }
    st->ok += c->ok;
    st->failed += c->failed;
    st->unrecorded += c->unrecorded;
    if (c->last_ok != NULL && (!st->has_last || st->last_at < c->last_ok->at)) {
        free(st->last_email);
        free(st->last_name_id);
        free(st->last_idp);
        st->has_last = 1;
        st->last_at = c->last_ok->at;
        apr_cpystrn(st->last_ref, c->last_ok->reference ? c->last_ok->reference
                                                        : "",
                    sizeof(st->last_ref));
        st->last_email = dup_or_null(c->last_ok->email);
        st->last_name_id = dup_or_null(c->last_ok->name_id);
        st->last_idp = dup_or_null(c->last_ok->idp);
    }
    for (i = 0; c->certs != NULL && i < c->certs->nelts; i++) {
        const btsso_signin_cert_seen_t *cs =
            &APR_ARRAY_IDX(c->certs, i, btsso_signin_cert_seen_t);

        note_cert(st, cs->sha256, cs->at);
    }
    if (st->server == NULL) {
        st->server = d->server;
    }
    st->flushed = 0;            /* due again at the next tick */
    return 1;
}

/* One watchdog of every child (not a singleton: each child has counts of
 * its own), for the first server that runs the module. */
static int signin_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *base)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get_instance;
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *reg;
    ap_watchdog_t *wd = NULL;
    server_rec *s;
    apr_status_t rv;

    flusher = 0;
    /* mod_watchdog only starts instances on the second pass */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    for (s = base; s != NULL && btsso_srv(s)->rt == NULL; s = s->next) {
    }
    get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    reg = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    dbd_open = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_open);
    dbd_close = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_close);
    if (s == NULL || get_instance == NULL || reg == NULL || dbd_open == NULL
        || dbd_close == NULL) {
        return OK;      /* logins write their counts themselves */
    }
    rv = get_instance(&wd, WATCHDOG_NAME, 0, 0, pconf);
    if (rv == APR_SUCCESS) {
        rv = reg(wd, FLUSH_MIN, NULL, signin_tick);
    }
    if (rv != APR_SUCCESS && rv != APR_EEXIST) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, base, "BTSSO0258: no "
                     "watchdog for the sign-in counts: logins write them "
                     "themselves");
        return OK;
    }
    flusher = 1;
    return OK;
}

void btsso_register_signin_hooks(apr_pool_t *p)
{
    ap_hook_child_init(signin_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    /* before mod_watchdog's post_config (APR_HOOK_LAST), which starts
     * the instances that have callbacks */
    ap_hook_post_config(signin_post_config, NULL, NULL, APR_HOOK_MIDDLE);
}


/* An entry with nothing pending whose buckets are full again: forgetting
 * it loses nothing.  Under the mutex. */
static acct_stats_t *evictable(apr_time_t now)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, stats); hi; hi = apr_hash_next(hi)) {
        acct_stats_t *st = apr_hash_this_val(hi);

        if (!has_pending(st)
            && now - st->buckets[0].refilled >= ROW_BURST * ROW_REFILL
            && now - st->buckets[1].refilled >= ROW_BURST * ROW_REFILL) {
            return st;
        }
    }
    return NULL;
}

/* Under the mutex.  NULL when the table is full of accounts with counts
 * pending (or absent): the caller then writes no row for a refusal. */
static acct_stats_t *stats_of(const char *account, apr_time_t now)
{
    acct_stats_t *st;

    if (stats == NULL || strlen(account) >= sizeof(st->account)) {
        return NULL;
    }
    st = apr_hash_get(stats, account, APR_HASH_KEY_STRING);
    if (st == NULL) {
        if (apr_hash_count(stats) >= TRACKED_MAX) {
            st = evictable(now);
            if (st == NULL) {
                return NULL;
            }
            apr_hash_set(stats, st->account, APR_HASH_KEY_STRING, NULL);
        }
        else {
            st = apr_palloc(stats_pool, sizeof(*st));
        }
        memset(st, 0, sizeof(*st));
        apr_cpystrn(st->account, account, sizeof(st->account));
        st->buckets[0].tokens = st->buckets[1].tokens = ROW_BURST;
        st->buckets[0].refilled = st->buckets[1].refilled = now;
        apr_hash_set(stats, st->account, APR_HASH_KEY_STRING, st);
    }
    return st;
}

static int take_token(bucket_t *b, apr_time_t now)
{
    if (now > b->refilled) {
        apr_int64_t add = (now - b->refilled) / ROW_REFILL;

        if (add > 0) {
            b->tokens = b->tokens + add > ROW_BURST ? ROW_BURST
                                                    : (int)(b->tokens + add);
            b->refilled += add * ROW_REFILL;
        }
    }
    else {
        b->refilled = now;      /* the clock went back */
    }
    if (b->tokens <= 0) {
        return 0;
    }
    b->tokens--;
    return 1;
}

static int has_pending(const acct_stats_t *st)
{
    return st->ok > 0 || st->failed > 0 || st->unrecorded > 0
           || st->has_last || st->ncerts > 0;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* Move st's pending counts into *c (allocated from p) and clear them.
 * Under the mutex. */
static void take_pending(apr_pool_t *p, acct_stats_t *st,
                         btsso_signin_counts_t *c)
{
    int i;

    memset(c, 0, sizeof(*c));
    c->day = st->day;
    c->ok = st->ok;
    c->failed = st->failed;
    c->unrecorded = st->unrecorded;
    if (st->has_last) {
        btsso_signin_t *l = apr_pcalloc(p, sizeof(*l));
        l->reference = apr_pstrdup(p, st->last_ref);
        l->at = st->last_at;
        l->result = "ok";
        l->email = st->last_email ? apr_pstrdup(p, st->last_email) : NULL;
        l->name_id = st->last_name_id ? apr_pstrdup(p, st->last_name_id)
                                      : NULL;
        l->idp = st->last_idp ? apr_pstrdup(p, st->last_idp) : NULL;
        c->last_ok = l;
    }
    if (st->ncerts > 0) {
        apr_array_header_t *a = apr_array_make(
            p, st->ncerts, sizeof(btsso_signin_cert_seen_t));
        for (i = 0; i < st->ncerts; i++) {
            btsso_signin_cert_seen_t *cs = apr_array_push(a);
            cs->sha256 = apr_pstrdup(p, st->certs[i].sha256);
            cs->at = st->certs[i].at;
        }
        c->certs = a;
    }
    st->ok = st->failed = st->unrecorded = 0;
    st->has_last = 0;
    free(st->last_email);
    free(st->last_name_id);
    free(st->last_idp);
    st->last_email = st->last_name_id = st->last_idp = NULL;
    st->ncerts = 0;
}

/* Count into today's slot; when the day changed, the old day's counts go
 * into *old (old->day set) first.  Under the mutex. */
static void roll_day(apr_pool_t *p, acct_stats_t *st, apr_time_t now,
                     btsso_signin_counts_t *old)
{
    char name[11];
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, now);
    apr_snprintf(name, sizeof(name), "%04d-%02d-%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday);
    if (st->day != 0 && strcmp(name, st->day_name) != 0
        && (st->ok > 0 || st->failed > 0 || st->unrecorded > 0)) {
        take_pending(p, st, old);
    }
    st->day = now;
    memcpy(st->day_name, name, sizeof(name));
}

static void note_cert(acct_stats_t *st, const char *sha256, apr_time_t now)
{
    int i, oldest = 0;

    if (sha256 == NULL || strlen(sha256) != 64) {
        return;
    }
    for (i = 0; i < st->ncerts; i++) {
        if (strcmp(st->certs[i].sha256, sha256) == 0) {
            if (now > st->certs[i].at) {
                st->certs[i].at = now;
            }
            return;
        }
        if (st->certs[i].at < st->certs[oldest].at) {
            oldest = i;
        }
    }
    i = st->ncerts < CERTS_TRACKED ? st->ncerts++ : oldest;
    memcpy(st->certs[i].sha256, sha256, 65);
    st->certs[i].at = now;
}

static apr_interval_time_t flush_interval(request_rec *r)
{
    apr_interval_time_t ttl = btsso_srv(r->server)->config_ttl;

    return ttl > FLUSH_MIN ? ttl : FLUSH_MIN;
}

static void write_counts(request_rec *r, btsso_store_t *store,
                         const char *account, const btsso_signin_counts_t *c)
{
    btsso_error_t *err;

    if (c->day == 0 && c->last_ok == NULL && c->certs == NULL) {
        return;
    }
    if (store == NULL) {
        store = btsso_request_store(r);
        if (store == NULL) {
            return;             /* logged (BTSSO0101) */
        }
    }
    err = btsso_store_signin_counts_add(store, account, c);
    if (err != NULL) {
        btsso_log_error(r, APLOG_WARNING, "BTSSO0253", account, err);
    }
}

/* ---- per request -------------------------------------------------------- */

const char *btsso_signin_reference(request_rec *r)
{
    const char *ref = apr_table_get(r->notes, NOTE_REFERENCE);

    if (ref == NULL) {
        ref = btsso_refcode_new(r->pool);
        if (ref == NULL) {
            /* no random bytes: still a code the log line carries */
            ref = apr_psprintf(r->pool, "T%" APR_TIME_T_FMT,
                               apr_time_now() % APR_INT64_C(100000000));
        }
        apr_table_setn(r->notes, NOTE_REFERENCE, ref);
    }
    return ref;
}

const char *btsso_signin_reference_if_any(request_rec *r)
{
    return apr_table_get(r->notes, NOTE_REFERENCE);
}

void btsso_signin_note(request_rec *r, const char *account,
                       const char *email, const char *name_id, int verified)
{
    signin_ctx_t *ctx = NULL;

    apr_pool_userdata_get((void **)&ctx, CTX_KEY, r->pool);
    if (ctx == NULL) {
        ctx = apr_pcalloc(r->pool, sizeof(*ctx));
        apr_pool_userdata_setn(ctx, CTX_KEY, NULL, r->pool);
    }
    if (account != NULL) {
        ctx->account = account;
    }
    if (email != NULL) {
        ctx->email = email;
    }
    if (name_id != NULL) {
        ctx->name_id = name_id;
    }
    ctx->verified |= verified;
}

const char *btsso_signin_refused(request_rec *r, int level, const char *tag,
                                 const char *what, const char *account,
                                 const char *idp, const btsso_error_t *err,
                                 int flags)
{
    const char *ref = btsso_signin_reference(r);
    signin_ctx_t *ctx = NULL;
    btsso_signin_counts_t old, due;
    btsso_signin_t si;
    acct_stats_t *st;
    apr_time_t now = apr_time_now();
    int record, row = 0;

    ap_log_rerror(APLOG_MARK, level, 0, r,
                  "%s: %s (reference %s): account %s, IdP %s: %s: %s%s%s",
                  tag, what ? what : "sign-in refused", ref,
                  account ? account : "-", idp ? idp : "-", err->code,
                  err->message, err->detail ? " -- " : "",
                  err->detail ? err->detail : "");
    apr_pool_userdata_get((void **)&ctx, CTX_KEY, r->pool);
    if (ctx != NULL && (account == NULL || ctx->account == NULL
                        || strcmp(ctx->account, account) != 0)) {
        ctx = NULL;
    }
    record = account != NULL && ((flags & BTSSO_SIGNIN_RECORD) || ctx);
    if (!record || !btsso_account_id_ok(account)
        || strcmp(err->code, "store_unavailable") == 0) {
        /* without the store there is nowhere to write it: the log line
         * is the record */
        return ref;
    }

    memset(&old, 0, sizeof(old));
    memset(&due, 0, sizeof(due));
    if (stats_mutex != NULL) {
        apr_thread_mutex_lock(stats_mutex);
    }
    st = stats_of(account, now);
    if (st != NULL) {
        roll_day(r->pool, st, now, &old);
        st->server = r->server;
        st->failed++;
        row = take_token(&st->buckets[ctx && ctx->verified ? BUCKET_VERIFIED
                                                           : BUCKET_UNVERIFIED],
                         now);
        if (!row) {
            st->unrecorded++;
        }
        if (!flusher
            && (st->flushed == 0 || now - st->flushed >= flush_interval(r))) {
            take_pending(r->pool, st, &due);
            st->flushed = now;
        }
    }
    if (stats_mutex != NULL) {
        apr_thread_mutex_unlock(stats_mutex);
    }
    if (old.day != 0) {
        write_counts(r, NULL, account, &old);
    }
    if (row) {
        btsso_store_t *store = btsso_request_store(r);
        btsso_error_t *e;

        memset(&si, 0, sizeof(si));
        si.reference = ref;
        si.at = now;
        si.result = err->code;
        si.email = ctx ? ctx->email : NULL;
        si.name_id = ctx ? ctx->name_id : NULL;
        si.idp = idp;
        si.detail = (flags & BTSSO_SIGNIN_TEST)
            ? apr_pstrcat(r->pool, "test sign-in: ",
                          err->detail ? err->detail : err->message, NULL)
            : err->detail;
        if (store != NULL) {
            e = btsso_store_signin_add(store, account, &si,
                                       BTSSO_SIGNIN_KEEP);
            if (e != NULL) {
                btsso_log_error(r, APLOG_WARNING, "BTSSO0251", account, e);
            }
        }
    }
    write_counts(r, NULL, account, &due);
    return ref;
}

const char *btsso_signin_succeeded(request_rec *r, btsso_store_t *store,
                                   const char *account, const char *email,
                                   const char *name_id, const char *idp,
                                   const char *cert_sha256)
{
    const char *ref = btsso_refcode_new(r->pool);
    btsso_signin_counts_t old, due;
    btsso_signin_t last;
    apr_array_header_t *certs;
    acct_stats_t *st;
    apr_time_t now = apr_time_now();

    if (ref == NULL) {
        ref = btsso_signin_reference(r);
    }
    memset(&old, 0, sizeof(old));
    memset(&due, 0, sizeof(due));
    if (stats_mutex != NULL) {
        apr_thread_mutex_lock(stats_mutex);
    }
    st = stats_of(account, now);
    if (st != NULL) {
        roll_day(r->pool, st, now, &old);
        st->server = r->server;
        st->ok++;
        free(st->last_email);
        free(st->last_name_id);
        free(st->last_idp);
        st->has_last = 1;
        st->last_at = now;
        apr_cpystrn(st->last_ref, ref, sizeof(st->last_ref));
        st->last_email = dup_or_null(email);
        st->last_name_id = dup_or_null(name_id);
        st->last_idp = dup_or_null(idp);
        note_cert(st, cert_sha256, now);
        if (!flusher
            && (st->flushed == 0 || now - st->flushed >= flush_interval(r))) {
            take_pending(r->pool, st, &due);
            st->flushed = now;
        }
    }
    if (stats_mutex != NULL) {
        apr_thread_mutex_unlock(stats_mutex);
    }
    if (st == NULL) {
        /* untracked (table full): written at once */
        memset(&last, 0, sizeof(last));
        last.reference = ref;
        last.at = now;
        last.result = "ok";
        last.email = email;
        last.name_id = name_id;
        last.idp = idp;
        due.day = now;
        due.ok = 1;
        due.last_ok = &last;
        if (cert_sha256 != NULL) {
            btsso_signin_cert_seen_t *cs;
            certs = apr_array_make(r->pool, 1, sizeof(*cs));
            cs = apr_array_push(certs);
            cs->sha256 = cert_sha256;
            cs->at = now;
            due.certs = certs;
        }
    }
    if (old.day != 0) {
        write_counts(r, store, account, &old);
    }
    write_counts(r, store, account, &due);
    return ref;
}

void btsso_signin_flush(request_rec *r, btsso_store_t *store,
                        const char *account)
{
    btsso_signin_counts_t due;
    acct_stats_t *st;

    memset(&due, 0, sizeof(due));
    if (stats_mutex != NULL) {
        apr_thread_mutex_lock(stats_mutex);
    }
    st = stats != NULL ? apr_hash_get(stats, account, APR_HASH_KEY_STRING)
                       : NULL;
    if (st != NULL && has_pending(st)) {
        take_pending(r->pool, st, &due);
        st->flushed = apr_time_now();
    }
    if (stats_mutex != NULL) {
        apr_thread_mutex_unlock(stats_mutex);
    }
    write_counts(r, store, account, &due);
}
