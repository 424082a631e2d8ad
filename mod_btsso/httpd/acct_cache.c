/*
 * acct_cache.c - each account's settings, parsed once and kept for
 * BTSSOConfigTTL, so that a login reads no file and parses no metadata.
 *
 * An entry owns an unmanaged pool holding the account row, the IdP row, the
 * parsed metadata and the certificates.  Requests hold a reference until
 * their pool is cleaned up; a stale entry is replaced in the table and freed
 * when its last reader is done.  Loading happens outside the lock, so a slow
 * database never blocks logins of other accounts that are cached.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "btsso_glue.h"
#include "btsso_acct.h"

APLOG_USE_MODULE(btsso);

struct btsso_acct_cache {
    apr_thread_mutex_t *lock;
    apr_hash_t *entries;            /* account -> btsso_acct_entry * */
    apr_hash_t *issuers;            /* entity id -> issuer_entry * */
    apr_pool_t *pool;               /* issuer keys and entries only */
    apr_interval_time_t ttl;
};

typedef struct issuer_entry {
    char account[65];               /* "" when none */
    apr_time_t loaded;
} issuer_entry;

static btsso_error_t *store_unavailable(request_rec *r)
{
    return btsso_error_make(r->pool, 503, "store_unavailable",
        "The sign-in service is temporarily unavailable; try again in a "
        "moment.", "no database connection (see mod_dbd errors)");
}

static int abort_on_oom(int rv)
{
    return rv;
}

btsso_acct_cache *btsso_acct_cache_create(apr_pool_t *p,
                                          apr_interval_time_t ttl)
{
    btsso_acct_cache *c = apr_pcalloc(p, sizeof(*c));

    apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p);
    apr_pool_create(&c->pool, p);
    c->entries = apr_hash_make(p);
    c->issuers = apr_hash_make(c->pool);
    c->ttl = ttl;
    return c;
}

/* Forget every issuer mapping and the memory that held them (locked). */
static void issuers_reset(btsso_acct_cache *c)
{
    apr_pool_clear(c->pool);
    c->issuers = apr_hash_make(c->pool);
}

static void entry_release_locked(btsso_acct_entry *e)
{
    if (--e->refs == 0 && e->stale) {
        apr_pool_destroy(e->pool);
    }
}

typedef struct release_ctx {
    btsso_acct_cache *cache;
    btsso_acct_entry *entry;
} release_ctx;

static apr_status_t release_entry(void *data)
{
    release_ctx *rc = data;

    apr_thread_mutex_lock(rc->cache->lock);
    entry_release_locked(rc->entry);
    apr_thread_mutex_unlock(rc->cache->lock);
    return APR_SUCCESS;
}

static btsso_error_t *load_entry(request_rec *r, btsso_store_t *st,
                                 const char *account, btsso_acct_entry **out)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    apr_pool_t *p;
    btsso_acct_entry *e;
    btsso_error_t *err;
    btsso_account_t *acct = NULL;
    btsso_idp_t *idp = NULL;
    apr_array_header_t *certs = NULL;
    btsso_idp_metadata_t *md = NULL;

    if (apr_pool_create_unmanaged_ex(&p, abort_on_oom, NULL) != APR_SUCCESS) {
        return btsso_error_make(r->pool, 500, "internal",
                                "Out of memory.", NULL);
    }
    err = btsso_store_account_get(st, p, account, &acct);
    if (err == NULL) {
        err = btsso_store_idp_get(st, p, account, &idp);
    }
    if (err == NULL) {
        err = btsso_store_cert_list(st, p, account, &certs);
    }
    if (err == NULL && idp != NULL) {
        err = btsso_metadata_parse(p, idp->metadata_xml,
                                   strlen(idp->metadata_xml),
                                   (apr_size_t)sc->metadata_max_size,
                                   idp->entity_id, &md);
        if (err != NULL) {
            /* The stored copy parsed when it was saved; failing now means
             * a parser change or a damaged row: the operator must look. */
            err = btsso_error_make(r->pool, 500, "stored_metadata_broken",
                "Your organisation's SSO configuration cannot be read; "
                "contact your administrator.",
                "stored metadata of account %s no longer parses: %s",
                account, btsso_error_line(r->pool, err));
        }
    }
    if (err != NULL) {
        /* Errors were allocated from p: copy before it goes away. */
        btsso_error_t *copy = btsso_error_make(r->pool, err->status,
            apr_pstrdup(r->pool, err->code),
            apr_pstrdup(r->pool, err->message),
            err->detail ? "%s" : NULL, err->detail);
        apr_pool_destroy(p);
        return copy;
    }
    e = apr_pcalloc(p, sizeof(*e));
    e->pool = p;
    e->account = acct;
    e->idp = idp;
    e->md = md;
    e->certs = certs;
    e->loaded = apr_time_now();
    *out = e;
    return NULL;
}

btsso_error_t *btsso_acct_get(request_rec *r, const char *account,
                              const btsso_acct_entry **out)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_acct_cache *c = sc->rt->accounts;
    btsso_acct_entry *e, *fresh = NULL, *old;
    btsso_store_t *st;
    btsso_error_t *err;
    release_ctx *rc;
    apr_time_t now = apr_time_now();

    apr_thread_mutex_lock(c->lock);
    e = apr_hash_get(c->entries, account, APR_HASH_KEY_STRING);
    if (e != NULL && now - e->loaded < c->ttl) {
        e->refs++;
        apr_thread_mutex_unlock(c->lock);
        goto hold;
    }
    apr_thread_mutex_unlock(c->lock);

    st = btsso_request_store(r);
    if (st == NULL) {
        return store_unavailable(r);
    }
    err = load_entry(r, st, account, &fresh);
    if (err != NULL) {
        return err;
    }

    apr_thread_mutex_lock(c->lock);
    old = apr_hash_get(c->entries, account, APR_HASH_KEY_STRING);
    if (old != NULL) {
        old->stale = 1;
        if (old->refs == 0) {
            apr_pool_destroy(old->pool);
        }
    }
    apr_hash_set(c->entries, apr_pstrdup(fresh->pool, account),
                 APR_HASH_KEY_STRING, fresh);
    fresh->refs = 2;    /* the table's and this request's */
    e = fresh;
    apr_thread_mutex_unlock(c->lock);

hold:
    rc = apr_palloc(r->pool, sizeof(*rc));
    rc->cache = c;
    rc->entry = e;
    apr_pool_cleanup_register(r->pool, rc, release_entry,
                              apr_pool_cleanup_null);
    *out = e;
    return NULL;
}

/*
 * entry_release_locked() frees a stale entry when refs drops to 0; the
 * table's own reference is dropped when an entry is replaced, so "stale"
 * plus refs==0 means nobody can reach it any more.
 */

void btsso_acct_invalidate(server_rec *s, const char *account)
{
    btsso_srv_cfg *sc = btsso_srv(s);
    btsso_acct_cache *c = sc->rt->accounts;
    btsso_acct_entry *e;

    apr_thread_mutex_lock(c->lock);
    e = apr_hash_get(c->entries, account, APR_HASH_KEY_STRING);
    if (e != NULL) {
        apr_hash_set(c->entries, account, APR_HASH_KEY_STRING, NULL);
        e->stale = 1;
        entry_release_locked(e);
    }
    issuers_reset(c);
    apr_thread_mutex_unlock(c->lock);
}

btsso_error_t *btsso_acct_by_issuer(request_rec *r, const char *issuer,
                                    const char **account)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_acct_cache *c = sc->rt->accounts;
    issuer_entry *ie;
    btsso_store_t *st;
    btsso_error_t *err;
    const char *found = NULL;
    apr_time_t now = apr_time_now();

    apr_thread_mutex_lock(c->lock);
    ie = apr_hash_get(c->issuers, issuer, APR_HASH_KEY_STRING);
    if (ie != NULL && now - ie->loaded < c->ttl) {
        *account = ie->account[0] ? apr_pstrdup(r->pool, ie->account) : NULL;
        apr_thread_mutex_unlock(c->lock);
        return NULL;
    }
    apr_thread_mutex_unlock(c->lock);

    st = btsso_request_store(r);
    if (st == NULL) {
        return store_unavailable(r);
    }
    err = btsso_store_account_by_issuer(st, r->pool, issuer, &found);
    if (err != NULL) {
        return err;
    }
    *account = found;
    if (strlen(issuer) > 1024) {
        return NULL;    /* not worth a cache slot; never a real entityID */
    }
    apr_thread_mutex_lock(c->lock);
    /* The table is bounded: an attacker posting random Issuers must not
     * grow it without limit. */
    if (apr_hash_count(c->issuers) >= 10000) {
        issuers_reset(c);
    }
    ie = apr_hash_get(c->issuers, issuer, APR_HASH_KEY_STRING);
    if (ie == NULL) {
        ie = apr_pcalloc(c->pool, sizeof(*ie));
        apr_hash_set(c->issuers, apr_pstrdup(c->pool, issuer),
                     APR_HASH_KEY_STRING, ie);
    }
    apr_cpystrn(ie->account, found ? found : "", sizeof(ie->account));
    ie->loaded = now;
    apr_thread_mutex_unlock(c->lock);
    return NULL;
}

apr_array_header_t *btsso_acct_usable_certs(apr_pool_t *p,
                                            const btsso_acct_entry *e,
                                            apr_time_t now)
{
    apr_array_header_t *out = apr_array_make(p, 2, sizeof(btsso_cert_t *));
    int i;

    for (i = 0; e->certs != NULL && i < e->certs->nelts; i++) {
        btsso_stored_cert_t *sc = APR_ARRAY_IDX(e->certs, i,
                                                btsso_stored_cert_t *);

        if (sc->role != BTSSO_ROLE_NONE
            && btsso_cert_is_valid_at(sc->cert, now)) {
            APR_ARRAY_PUSH(out, btsso_cert_t *) = sc->cert;
        }
    }
    return out;
}
