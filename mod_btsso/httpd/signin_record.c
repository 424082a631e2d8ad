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
 *   the time each certificate last verified a login, and written at the
 *   first success and then at most once per BTSSOConfigTTL (at least
 *   FLUSH_MIN) per account; the admin API writes this process's counts
 *   before it reads them.  A process that stops loses what it had not
 *   written yet (at most one interval's worth).
 * - Counts due to be written join the process's queue.  The sign-in that
 *   finds the queue not empty and nobody writing becomes the writer: it
 *   writes up to BATCH_MAX accounts per transaction, for up to
 *   WRITER_ROUNDS transactions, before it answers; sign-ins that queue
 *   counts meanwhile answer at once.  The first sign-ins of thousands of
 *   accounts (a cold start, a Monday morning) then cost a commit (on
 *   SQLite a sync to disk, under the database's one write lock) per batch
 *   rather than per sign-in.  What a writer leaves after its last round
 *   is written by the process's next sign-in.
 *
 * Nothing here stores a SAML message or a secret: the detail is the
 * error's operator detail, which names elements, IDs and times only.
 */
#include <stdlib.h>
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>

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
#define BATCH_MAX 64
#define WRITER_ROUNDS 8
#define FLUSH_WAIT apr_time_from_sec(2)

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
    int queued;                 /* in the queue of counts to write */
    bucket_t buckets[2];
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
/* The queue of entries whose counts are due, oldest first: a ring of
 * TRACKED_MAX (an entry is in it at most once). */
static acct_stats_t **due_ring;
static int due_head, due_n;
static int writing;             /* a sign-in of this process is writing */
static apr_thread_cond_t *written;  /* signalled when it stops */

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
    written = NULL;
    due_ring = NULL;
    due_n = 0;
    return APR_SUCCESS;
}

static void signin_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_pool_create(&stats_pool, pchild);
    if (apr_thread_mutex_create(&stats_mutex, APR_THREAD_MUTEX_DEFAULT,
                                stats_pool) != APR_SUCCESS) {
        stats_mutex = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "BTSSO0252: cannot make "
                     "the sign-in counters' mutex: this process records "
                     "no refusals and writes each success at once");
        return;
    }
    if (apr_thread_cond_create(&written, stats_pool) != APR_SUCCESS) {
        written = NULL;         /* the admin API then does not wait */
    }
    due_ring = apr_pcalloc(stats_pool, TRACKED_MAX * sizeof(*due_ring));
    due_head = due_n = 0;
    writing = 0;
    stats = apr_hash_make(stats_pool);
    apr_pool_cleanup_register(stats_pool, NULL, stats_gone,
                              apr_pool_cleanup_null);
}

void btsso_register_signin_hooks(apr_pool_t *p)
{
    ap_hook_child_init(signin_child_init, NULL, NULL, APR_HOOK_MIDDLE);
}

static int has_pending(const acct_stats_t *st);

/* An entry with nothing pending whose buckets are full again: forgetting
 * it loses nothing.  Under the mutex. */
static acct_stats_t *evictable(apr_time_t now)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, stats); hi; hi = apr_hash_next(hi)) {
        acct_stats_t *st = apr_hash_this_val(hi);

        if (!has_pending(st) && !st->queued
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
            st->certs[i].at = now;
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

/* ---- the queue of counts to write ---------------------------------------- */

/* Under the mutex: queue st's counts when they are due, and say whether
 * the caller is to write the queue (nobody else is). */
static int queue_if_due(request_rec *r, acct_stats_t *st, apr_time_t now)
{
    if (st->flushed == 0 || now - st->flushed >= flush_interval(r)) {
        if (!st->queued) {
            due_ring[(due_head + due_n) % TRACKED_MAX] = st;
            due_n++;
            st->queued = 1;
        }
        st->flushed = now;
    }
    if (due_n > 0 && !writing) {
        writing = 1;
        return 1;
    }
    return 0;
}

static void write_batch(request_rec *r, btsso_store_t *store, int n,
                        const char **accounts,
                        const btsso_signin_counts_t *counts)
{
    btsso_error_t *err;
    int i;

    err = btsso_store_signin_counts_add_many(store, n, accounts, counts);
    if (err == NULL) {
        return;
    }
    if (n == 1) {
        btsso_log_error(r, APLOG_WARNING, "BTSSO0253", accounts[0], err);
        return;
    }
    /* one account (deleted meanwhile, say) must not cost the others their
     * counts: each on its own, and only the failures are logged */
    for (i = 0; i < n; i++) {
        err = btsso_store_signin_counts_add(store, accounts[i], &counts[i]);
        if (err != NULL) {
            btsso_log_error(r, APLOG_WARNING, "BTSSO0253", accounts[i], err);
        }
    }
}

/* The caller is the writer (queue_if_due said so): write the queue,
 * BATCH_MAX accounts a transaction, WRITER_ROUNDS transactions at most. */
static void write_queue(request_rec *r, btsso_store_t *store)
{
    const char *accounts[BATCH_MAX];
    btsso_signin_counts_t counts[BATCH_MAX];
    int round, n;

    for (round = 0; round < WRITER_ROUNDS; round++) {
        apr_pool_t *tmp;

        apr_pool_create(&tmp, r->pool);
        apr_thread_mutex_lock(stats_mutex);
        n = 0;
        while (due_n > 0 && n < BATCH_MAX) {
            acct_stats_t *st = due_ring[due_head];

            due_head = (due_head + 1) % TRACKED_MAX;
            due_n--;
            st->queued = 0;
            if (has_pending(st)) {      /* the admin API may have written */
                take_pending(tmp, st, &counts[n]);
                accounts[n] = apr_pstrdup(tmp, st->account);
                n++;
            }
        }
        apr_thread_mutex_unlock(stats_mutex);
        if (n == 0) {
            apr_pool_destroy(tmp);
            break;
        }
        if (store == NULL) {
            store = btsso_request_store(r);     /* NULL: logged (BTSSO0101) */
        }
        if (store != NULL) {
            write_batch(r, store, n, accounts, counts);
        }
        apr_pool_destroy(tmp);
    }
    apr_thread_mutex_lock(stats_mutex);
    writing = 0;
    if (written != NULL) {
        apr_thread_cond_broadcast(written);
    }
    apr_thread_mutex_unlock(stats_mutex);
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
    btsso_signin_counts_t old;
    btsso_signin_t si;
    acct_stats_t *st;
    apr_time_t now = apr_time_now();
    int record, row = 0, writer = 0;

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
    if (stats_mutex != NULL) {
        apr_thread_mutex_lock(stats_mutex);
    }
    st = stats_of(account, now);
    if (st != NULL) {
        roll_day(r->pool, st, now, &old);
        st->failed++;
        row = take_token(&st->buckets[ctx && ctx->verified ? BUCKET_VERIFIED
                                                           : BUCKET_UNVERIFIED],
                         now);
        if (!row) {
            st->unrecorded++;
        }
        writer = queue_if_due(r, st, now);
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
    if (writer) {
        write_queue(r, NULL);
    }
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
    int writer = 0;

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
        writer = queue_if_due(r, st, now);
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
    if (writer) {
        write_queue(r, store);
    }
    return ref;
}

void btsso_signin_flush(request_rec *r, btsso_store_t *store,
                        const char *account)
{
    btsso_signin_counts_t due;
    acct_stats_t *st;

    memset(&due, 0, sizeof(due));
    if (stats_mutex != NULL) {
        apr_time_t until = apr_time_now() + FLUSH_WAIT;

        apr_thread_mutex_lock(stats_mutex);
        /* counts a sign-in is writing now are in the store before the
         * caller reads it */
        while (writing && written != NULL) {
            apr_time_t left = until - apr_time_now();

            if (left <= 0
                || apr_thread_cond_timedwait(written, stats_mutex, left)
                       == APR_TIMEUP) {
                break;
            }
        }
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
