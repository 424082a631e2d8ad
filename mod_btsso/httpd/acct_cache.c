/*
 * acct_cache.c - each account's settings, kept for BTSSOConfigTTL so that a
 * login reads no database row and parses no metadata.
 *
 * An entry is one malloc'd block holding what a login needs (btsso_acct.h),
 * copied out of the store rows and the parsed metadata, which are then
 * freed: a 1 MiB metadata document costs a few KiB here.  Certificates are
 * not in it: each distinct one (by fingerprint and DER) is kept once per
 * process with its public key loaded, and shared by every entry that
 * carries it (accounts behind one IdP, a portal's shared IdPs), reference
 * counted by those entries.  Entries are reference counted too: the
 * table holds one reference, each request using it another until its pool
 * is cleaned up, so a replaced or evicted entry lives until its last
 * reader is done.
 *
 * The table is bounded by BTSSOAccountCacheSize, counted as the heap bytes
 * really held (blocks as malloc sized them, with the chunk header; a
 * public key at what OpenSSL holds for it, btsso_cert_key_cost; a shared
 * certificate once): the least recently used account goes first.  Unknown
 * accounts are remembered too (a flood of
 * /sso/login/<name> reads the store once per name and TTL), in their own
 * LRU list capped at a sixteenth of the size, so they never push a real
 * account out.
 *
 * Loads are single-flight: the first request that finds an account missing
 * or stale loads it outside the lock; concurrent requests wait for that
 * load (missing) or keep using the stale copy (refresh).  The loader takes
 * its database connection before it announces the load, so waiters that
 * hold connections of their own can never starve it (mod_dbd hands out at
 * most DBDMax per process and blocks for more).
 */
#include <string.h>
#include <stdlib.h>
#include <stddef.h>
#include <malloc.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_cond.h>

#include "btsso_glue.h"
#include "btsso_acct.h"

APLOG_USE_MODULE(btsso);

/* Unknown accounts may take this share of BTSSOAccountCacheSize. */
#define NEGATIVE_SHARE 16

typedef struct slot slot;
typedef struct flight flight;
typedef struct shared_cert shared_cert;

/* A certificate as entries carry it: one malloc'd block (its DER and
 * strings after it), in c->certs by fingerprint while some entry holds it.
 * cert comes first: an entry's btsso_cert_t * is the shared_cert *. */
struct shared_cert {
    btsso_cert_t cert;
    int refs;                   /* entries holding it */
    int listed;                 /* in c->certs (not a fingerprint clash) */
    apr_size_t charge;          /* block and key, in c->known.bytes */
};

/* One account in the table (malloc'd, the key at its end). */
struct slot {
    slot *prev, *next;          /* its LRU list, most recent first */
    btsso_acct_entry *entry;    /* NULL: unknown account, or first load */
    flight *flight;             /* a load in progress */
    apr_time_t loaded;          /* when entry/negative was read */
    apr_time_t used;            /* last request */
    apr_size_t charged;         /* bytes counted against the cache */
    int negative;               /* the store has no such account */
    int listed;                 /* on an LRU list */
    int dropped;                /* out of the table; the loader frees it */
    char key[1];
};

/* A load in progress, which other requests wait for. */
struct flight {
    int waiters;
    int done;
    btsso_acct_entry *entry;    /* result: one reference per waiter */
    int not_found;
    int status;                 /* store error, when neither */
    char *code, *message, *detail;      /* malloc'd */
};

typedef struct lru {
    slot *head, *tail;
    apr_size_t bytes, budget;
    int count;
} lru;

struct btsso_acct_cache {
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *loaded;      /* a flight is done */
    apr_hash_t *entries;            /* account -> slot * */
    apr_hash_t *certs;              /* sha256 hex -> shared_cert * */
    int ncerts;                     /* shared_cert blocks alive */
    lru known, unknown;
    apr_size_t max_bytes;
    apr_hash_t *issuers;            /* entity id -> issuer_entry * */
    apr_pool_t *pool;               /* issuer keys only */
    apr_interval_time_t ttl;
};

/* Sized to its account name (one per Issuer seen, up to 10,000). */
typedef struct issuer_entry {
    apr_time_t loaded;
    char account[1];                /* "" when none */
} issuer_entry;

static btsso_error_t *store_unavailable(request_rec *r)
{
    return btsso_error_make(r->pool, 503, "store_unavailable",
        "The sign-in service is temporarily unavailable; try again in a "
        "moment.", "no database connection (see mod_dbd errors)");
}

static btsso_error_t *not_found(request_rec *r, const char *account)
{
    return btsso_error_make(r->pool, 404, "not_found",
                            "There is no account of that name.",
                            "no account %s", account);
}

static int abort_on_oom(int rv)
{
    return rv;
}

btsso_acct_cache *btsso_acct_cache_create(apr_pool_t *p,
                                          apr_interval_time_t ttl,
                                          apr_size_t max_bytes)
{
    btsso_acct_cache *c = apr_pcalloc(p, sizeof(*c));

    apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p);
    apr_thread_cond_create(&c->loaded, p);
    apr_pool_create(&c->pool, p);
    c->entries = apr_hash_make(p);
    c->certs = apr_hash_make(p);
    c->issuers = apr_hash_make(c->pool);
    c->ttl = ttl;
    c->max_bytes = max_bytes;
    c->unknown.budget = max_bytes / NEGATIVE_SHARE;
    c->known.budget = max_bytes - c->unknown.budget;
    return c;
}

/* ---- the compact copy ------------------------------------------------------ */

/*
 * Two passes over the same copying code: the first allocates from a
 * scratch pool and counts, the second carves the counted bytes out of one
 * malloc'd block.  The code is deterministic, so the second pass fits.
 */
typedef struct flat {
    apr_pool_t *scratch;        /* first pass */
    char *base;                 /* second pass */
    apr_size_t used, cap;
} flat;

static void *flat_alloc(flat *f, apr_size_t n)
{
    void *p;

    n = APR_ALIGN_DEFAULT(n);
    if (f->base == NULL) {
        p = apr_pcalloc(f->scratch, n);
    }
    else {
        ap_assert(f->used + n <= f->cap);
        p = f->base + f->used;
        memset(p, 0, n);
    }
    f->used += n;
    return p;
}

static const char *flat_str(flat *f, const char *s)
{
    char *d;
    apr_size_t n;

    if (s == NULL) {
        return NULL;
    }
    n = strlen(s) + 1;
    d = flat_alloc(f, n);
    memcpy(d, s, n);
    return d;
}

/* What every entry would otherwise copy: the SAML bindings' names, and
 * empty lists (read-only: nothing pushes onto an entry's arrays), one
 * static copy each for the whole process. */
static const char *const well_known[] = {
    BTSSO_BINDING_REDIRECT,
    BTSSO_BINDING_POST,
    "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Artifact",
    "urn:oasis:names:tc:SAML:2.0:bindings:SOAP",
    "urn:oasis:names:tc:SAML:2.0:bindings:PAOS",
    "urn:oasis:names:tc:SAML:2.0:bindings:URI",
};

static apr_array_header_t empty_arrays[] = {
    { NULL, sizeof(void *), 0, 0, NULL },
    { NULL, sizeof(btsso_endpoint_t), 0, 0, NULL },
    { NULL, sizeof(btsso_md_attribute_t), 0, 0, NULL },
    { NULL, sizeof(btsso_revocation_t), 0, 0, NULL },
};

/* s itself when it is one of the well-known strings, else a copy. */
static const char *flat_name(flat *f, const char *s)
{
    apr_size_t i;

    for (i = 0; s != NULL && i < sizeof(well_known) / sizeof(*well_known);
         i++) {
        if (strcmp(s, well_known[i]) == 0) {
            return well_known[i];
        }
    }
    return flat_str(f, s);
}

static apr_array_header_t *flat_array(flat *f, int elt_size, int n)
{
    apr_array_header_t *a;
    apr_size_t i;

    for (i = 0; n == 0 && i < sizeof(empty_arrays) / sizeof(*empty_arrays);
         i++) {
        if (empty_arrays[i].elt_size == elt_size) {
            return &empty_arrays[i];
        }
    }
    a = flat_alloc(f, sizeof(*a));

    /* No pool: the entry is read-only, nothing may push onto it. */
    a->elt_size = elt_size;
    a->nelts = n;
    a->nalloc = n;
    a->elts = n > 0 ? flat_alloc(f, (apr_size_t)elt_size * (apr_size_t)n)
                    : NULL;
    return a;
}

/* The first endpoint of the HTTP-Redirect and of the HTTP-POST binding, in
 * document order: what btsso_metadata_endpoint() can return for the only
 * bindings the module asks it for (glue_signin.c, h_slo.c).  Artifact,
 * SOAP and the like would be bytes in every entry never read. */
static apr_array_header_t *flat_endpoints(flat *f,
                                          const apr_array_header_t *eps)
{
    apr_array_header_t *a;
    int i, j, n = 0;
    char *keep;

    if (eps == NULL) {
        return flat_array(f, sizeof(btsso_endpoint_t), 0);
    }
    keep = calloc(eps->nelts > 0 ? (apr_size_t)eps->nelts : 1, 1);
    ap_assert(keep != NULL);
    for (i = 0; i < eps->nelts; i++) {
        const btsso_endpoint_t *e = &APR_ARRAY_IDX(eps, i, btsso_endpoint_t);

        keep[i] = e->binding != NULL
                  && (strcmp(e->binding, BTSSO_BINDING_REDIRECT) == 0
                      || strcmp(e->binding, BTSSO_BINDING_POST) == 0);
        for (j = 0; keep[i] && j < i; j++) {
            const btsso_endpoint_t *o = &APR_ARRAY_IDX(eps, j,
                                                       btsso_endpoint_t);
            if (keep[j] && e->binding != NULL && o->binding != NULL
                && strcmp(e->binding, o->binding) == 0) {
                keep[i] = 0;
                break;
            }
        }
        n += keep[i];
    }
    a = flat_array(f, sizeof(btsso_endpoint_t), n);
    for (i = 0, j = 0; i < eps->nelts; i++) {
        const btsso_endpoint_t *e = &APR_ARRAY_IDX(eps, i, btsso_endpoint_t);
        btsso_endpoint_t *d;

        if (!keep[i]) {
            continue;
        }
        d = &APR_ARRAY_IDX(a, j, btsso_endpoint_t);
        d->binding = flat_name(f, e->binding);
        d->location = flat_str(f, e->location);
        d->response_location = flat_str(f, e->response_location);
        j++;
    }
    free(keep);
    return a;
}

/* Most accounts have none: the defaults, one copy for all of them. */
static const btsso_policy_t default_policy = {
    &empty_arrays[0], 0, 0, 0, 0
};

static const btsso_policy_t *flat_policy(flat *f, const btsso_policy_t *pol)
{
    btsso_policy_t *d;
    int i, n = pol->authn_context != NULL ? pol->authn_context->nelts : 0;

    if (btsso_policy_is_default(pol) && pol->updated == 0) {
        return &default_policy;
    }
    d = flat_alloc(f, sizeof(*d));

    *d = *pol;
    d->authn_context = flat_array(f, sizeof(const char *), n);
    for (i = 0; i < n; i++) {
        APR_ARRAY_IDX(d->authn_context, i, const char *) =
            flat_str(f, APR_ARRAY_IDX(pol->authn_context, i, const char *));
    }
    return d;
}

static btsso_acct_entry *flat_entry(flat *f, const btsso_account_t *acct,
                                    const btsso_idp_t *idp,
                                    const btsso_idp_metadata_t *md,
                                    const apr_array_header_t *certs,
                                    shared_cert *const *shared,
                                    const apr_array_header_t *revs,
                                    int revs_truncated,
                                    const btsso_policy_t *pol)
{
    btsso_acct_entry *e = flat_alloc(f, sizeof(*e));
    btsso_account_t *a = flat_alloc(f, sizeof(*a));
    apr_array_header_t *ca;
    int i, n = certs != NULL ? certs->nelts : 0;

    *a = *acct;
    a->account = flat_str(f, acct->account);
    a->name = flat_str(f, acct->name);
    e->account = a;
    if (idp != NULL) {
        btsso_idp_t *d = flat_alloc(f, sizeof(*d));

        *d = *idp;
        d->account = idp->account != NULL && a->account != NULL
                     && strcmp(idp->account, a->account) == 0
                     ? a->account : flat_str(f, idp->account);
        d->entity_id = flat_str(f, idp->entity_id);
        d->metadata_xml = NULL;
        d->source_url = flat_str(f, idp->source_url);
        d->email_attribute = flat_str(f, idp->email_attribute);
        e->idp = d;
    }
    if (idp != NULL && md != NULL) {
        btsso_idp_metadata_t *m = flat_alloc(f, sizeof(*m));

        m->entity_id = md->entity_id != NULL && e->idp->entity_id != NULL
                       && strcmp(md->entity_id, e->idp->entity_id) == 0
                       ? e->idp->entity_id : flat_str(f, md->entity_id);
        m->sso = flat_endpoints(f, md->sso);
        m->slo = flat_endpoints(f, md->slo);
        m->signing_certs = flat_array(f, sizeof(btsso_cert_t *), 0);
        m->nameid_formats = flat_array(f, sizeof(const char *), 0);
        m->attributes = flat_array(f, sizeof(btsso_md_attribute_t), 0);
        m->want_authn_requests_signed = md->want_authn_requests_signed;
        m->is_signed = md->is_signed;
        m->organization = NULL;
        e->md = m;
    }
    ca = flat_array(f, sizeof(btsso_stored_cert_t *), n);
    for (i = 0; i < n; i++) {
        const btsso_stored_cert_t *sc = APR_ARRAY_IDX(certs, i,
                                                      btsso_stored_cert_t *);
        btsso_stored_cert_t *d = flat_alloc(f, sizeof(*d));

        *d = *sc;
        d->cert = &shared[i]->cert;
        d->source = flat_str(f, sc->source);
        APR_ARRAY_IDX(ca, i, btsso_stored_cert_t *) = d;
    }
    e->certs = ca;
    n = revs != NULL ? revs->nelts : 0;
    ca = flat_array(f, sizeof(btsso_revocation_t), n);
    for (i = 0; i < n; i++) {
        const btsso_revocation_t *v = &APR_ARRAY_IDX(revs, i,
                                                     btsso_revocation_t);
        btsso_revocation_t *d = &APR_ARRAY_IDX(ca, i, btsso_revocation_t);

        *d = *v;
        d->email = flat_str(f, v->email);
    }
    e->revocations = ca;
    e->revocations_truncated = revs_truncated;
    e->policy = flat_policy(f, pol);
    return e;
}

/* ---- loading ------------------------------------------------------------------ */

/* What a malloc'd block of n bytes really takes of the heap: the size
 * malloc gave (its usable size) and the chunk header before it. */
static apr_size_t heap_cost(void *block, apr_size_t n)
{
    return (block != NULL ? malloc_usable_size(block) : n)
           + sizeof(apr_size_t);
}

/* ---- shared certificates ------------------------------------------------- */

static int same_cert(const btsso_cert_t *a, const btsso_cert_t *b)
{
    return a->der_len == b->der_len && memcmp(a->der, b->der, a->der_len) == 0;
}

static char *copy_str(char **at, const char *s)
{
    char *d = *at;
    apr_size_t n;

    if (s == NULL) {
        return NULL;
    }
    n = strlen(s) + 1;
    memcpy(d, s, n);
    *at += n;
    return d;
}

/* A new block (refs 0, not in the table) for a copy of c, its public key
 * loaded: outside the lock, the key parse being the costly part. */
static shared_cert *shared_cert_make(const btsso_cert_t *c)
{
    apr_size_t n = sizeof(shared_cert) + c->der_len;
    shared_cert *sh;
    char *at;

    n += c->sha256 != NULL ? strlen(c->sha256) + 1 : 0;
    n += c->subject != NULL ? strlen(c->subject) + 1 : 0;
    n += c->issuer != NULL ? strlen(c->issuer) + 1 : 0;
    n += c->key_type != NULL ? strlen(c->key_type) + 1 : 0;
    sh = malloc(n);
    if (sh == NULL) {
        return NULL;
    }
    memset(sh, 0, sizeof(*sh));
    sh->cert = *c;
    at = (char *)(sh + 1);
    memcpy(at, c->der, c->der_len);
    sh->cert.der = (const unsigned char *)at;
    at += c->der_len;
    sh->cert.sha256 = copy_str(&at, c->sha256);
    sh->cert.subject = copy_str(&at, c->subject);
    sh->cert.issuer = copy_str(&at, c->issuer);
    sh->cert.key_type = copy_str(&at, c->key_type);
    /* Loaded for every certificate, whatever role it has in the entries
     * holding it: the key is shared, a role is not.  Once per distinct
     * certificate and process, not once per verification (that DER-to-key
     * step was 40 % of a login). */
    sh->cert.ready_key = btsso_cert_key_load(&sh->cert);
    sh->charge = heap_cost(sh, n) + (sh->cert.ready_key != NULL
                                     ? btsso_cert_key_cost(&sh->cert) : 0);
    return sh;
}

static void shared_cert_destroy(shared_cert *sh)
{
    btsso_cert_key_free(sh->cert.ready_key);
    free(sh);
}

/* One reference more to sh, counted in the cache (locked). */
static void shared_cert_hold_locked(btsso_acct_cache *c, shared_cert *sh)
{
    if (sh->refs++ == 0) {
        c->known.bytes += sh->charge;
        c->ncerts++;
    }
}

static void shared_cert_release_locked(btsso_acct_cache *c, shared_cert *sh)
{
    if (--sh->refs > 0) {
        return;
    }
    if (sh->listed) {
        apr_hash_set(c->certs, sh->cert.sha256, APR_HASH_KEY_STRING, NULL);
    }
    c->known.bytes -= sh->charge;
    c->ncerts--;
    shared_cert_destroy(sh);
}

/* The table's block for c, if it holds one (locked). */
static shared_cert *shared_cert_find_locked(btsso_acct_cache *c,
                                            const btsso_cert_t *cert)
{
    shared_cert *sh;

    if (cert->sha256 == NULL) {
        return NULL;
    }
    sh = apr_hash_get(c->certs, cert->sha256, APR_HASH_KEY_STRING);
    return sh != NULL && same_cert(&sh->cert, cert) ? sh : NULL;
}

/* out[i]: a held reference to the shared block of certs[i], the table's or
 * a new one (in the table unless another certificate claims its
 * fingerprint).  NULL when out of memory, nothing held then. */
static shared_cert **certs_intern(btsso_acct_cache *c, apr_pool_t *p,
                                  const apr_array_header_t *certs)
{
    int i, n = certs != NULL ? certs->nelts : 0;
    shared_cert **out = apr_pcalloc(p, sizeof(*out) * (n > 0 ? n : 1));
    shared_cert *sh;
    int ok = 1;

    apr_thread_mutex_lock(c->lock);
    for (i = 0; i < n; i++) {
        const btsso_stored_cert_t *sc = APR_ARRAY_IDX(certs, i,
                                                      btsso_stored_cert_t *);
        if ((out[i] = shared_cert_find_locked(c, sc->cert)) != NULL) {
            shared_cert_hold_locked(c, out[i]);
        }
    }
    apr_thread_mutex_unlock(c->lock);
    for (i = 0; i < n; i++) {
        const btsso_stored_cert_t *sc = APR_ARRAY_IDX(certs, i,
                                                      btsso_stored_cert_t *);
        if (out[i] == NULL) {
            out[i] = shared_cert_make(sc->cert);
            ok = ok && out[i] != NULL;
            if (out[i] != NULL) {
                out[i]->refs = -1;      /* made here, not yet held */
            }
        }
    }
    apr_thread_mutex_lock(c->lock);
    for (i = 0; i < n; i++) {
        if (out[i] == NULL || out[i]->refs != -1) {
            continue;
        }
        out[i]->refs = 0;
        if (!ok) {
            shared_cert_destroy(out[i]);
            out[i] = NULL;
            continue;
        }
        /* another load (or an earlier certificate of this one) may have
         * put the same certificate in meanwhile */
        sh = shared_cert_find_locked(c, &out[i]->cert);
        if (sh != NULL) {
            shared_cert_destroy(out[i]);
            out[i] = sh;
        }
        else if (out[i]->cert.sha256 != NULL
                 && apr_hash_get(c->certs, out[i]->cert.sha256,
                                 APR_HASH_KEY_STRING) == NULL) {
            apr_hash_set(c->certs, out[i]->cert.sha256, APR_HASH_KEY_STRING,
                         out[i]);
            out[i]->listed = 1;
        }
        shared_cert_hold_locked(c, out[i]);
    }
    if (!ok) {
        for (i = 0; i < n; i++) {
            if (out[i] != NULL) {
                shared_cert_release_locked(c, out[i]);
            }
        }
    }
    apr_thread_mutex_unlock(c->lock);
    return ok ? out : NULL;
}

static void certs_release(btsso_acct_cache *c, shared_cert **sh, int n)
{
    int i;

    apr_thread_mutex_lock(c->lock);
    for (i = 0; i < n; i++) {
        shared_cert_release_locked(c, sh[i]);
    }
    apr_thread_mutex_unlock(c->lock);
}

/* Copy an error out of a pool that is about to go. */
static btsso_error_t *error_copy(apr_pool_t *p, const btsso_error_t *err)
{
    return btsso_error_make(p, err->status, apr_pstrdup(p, err->code),
                            apr_pstrdup(p, err->message),
                            err->detail ? "%s" : NULL, err->detail);
}

static apr_interval_time_t c_ttl(request_rec *r)
{
    return btsso_srv(r->server)->config_ttl;
}

/*
 * Read the account from the store and build its entry (refs 0, caller's to
 * set).  *missing is set, with no error, for an unknown account.
 */
static btsso_error_t *load_entry(request_rec *r, btsso_store_t *st,
                                 const char *account, int *missing,
                                 btsso_acct_entry **out,
                                 apr_size_t *xml_len)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    apr_pool_t *p;
    btsso_acct_entry *e;
    btsso_error_t *err;
    btsso_account_t *acct = NULL;
    btsso_idp_t *idp = NULL;
    apr_array_header_t *certs = NULL, *revs = NULL;
    btsso_idp_metadata_t *md = NULL;
    btsso_policy_t *pol = NULL;
    int revs_truncated = 0;
    shared_cert **shared;
    flat f;

    *missing = 0;
    *xml_len = 0;
    /* Scratch for rows and the parse, in its own allocator so that the
     * memory of a large metadata document goes back at once. */
    if (apr_pool_create_unmanaged_ex(&p, abort_on_oom, NULL) != APR_SUCCESS) {
        return btsso_error_make(r->pool, 500, "internal",
                                "Out of memory.", NULL);
    }
    err = btsso_store_account_get(st, p, account, &acct);
    if (err != NULL && err->status == 404) {
        apr_pool_destroy(p);
        *missing = 1;
        return NULL;
    }
    if (err == NULL) {
        err = btsso_store_idp_get(st, p, account, &idp);
    }
    if (err == NULL) {
        err = btsso_store_cert_list(st, p, account, &certs);
    }
    if (err == NULL) {
        /* A revocation older than the longest session life (and the
         * clock skew between nodes) can concern no live session. */
        err = btsso_store_session_revocations(
            st, p, account, apr_time_now() - sc->session_max_age
                            - sc->clock_skew - c_ttl(r),
            BTSSO_ACCT_REVOCATIONS, &revs, &revs_truncated);
    }
    if (err == NULL) {
        err = btsso_store_policy_get(st, p, account, &pol);
    }
    if (err == NULL && idp != NULL) {
        *xml_len = strlen(idp->metadata_xml);
        err = btsso_metadata_parse(p, idp->metadata_xml, *xml_len,
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
        err = error_copy(r->pool, err);
        apr_pool_destroy(p);
        return err;
    }
    shared = certs_intern(sc->rt->accounts, p, certs);
    if (shared == NULL) {
        apr_pool_destroy(p);
        return btsso_error_make(r->pool, 500, "internal",
                                "Out of memory.", NULL);
    }
    memset(&f, 0, sizeof(f));
    f.scratch = p;
    (void)flat_entry(&f, acct, idp, md, certs, shared, revs, revs_truncated,
                      pol);
    f.cap = f.used;
    f.used = 0;
    f.base = malloc(f.cap);
    if (f.base == NULL) {
        certs_release(sc->rt->accounts, shared,
                      certs != NULL ? certs->nelts : 0);
        apr_pool_destroy(p);
        return btsso_error_make(r->pool, 500, "internal",
                                "Out of memory.", NULL);
    }
    e = flat_entry(&f, acct, idp, md, certs, shared, revs, revs_truncated,
                   pol);
    /* the certificates are charged once each, as the shared blocks */
    e->size = heap_cost(f.base, f.cap);
    apr_pool_destroy(p);
    *out = e;
    return NULL;
}

/* ---- the table (all under c->lock) ------------------------------------------ */

/* An entry gives its certificates back: the table's copy of one goes
 * with its last entry. */
static void entry_free(btsso_acct_cache *c, btsso_acct_entry *e)
{
    int i;

    for (i = 0; e->certs != NULL && i < e->certs->nelts; i++) {
        btsso_stored_cert_t *sc = APR_ARRAY_IDX(e->certs, i,
                                                btsso_stored_cert_t *);
        shared_cert_release_locked(c, (shared_cert *)sc->cert);
    }
    free(e);
}

static void entry_release_locked(btsso_acct_cache *c, btsso_acct_entry *e)
{
    if (--e->refs == 0) {
        entry_free(c, e);
    }
}

static void lru_unlink(lru *l, slot *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    }
    else {
        l->head = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    else {
        l->tail = s->prev;
    }
    s->prev = s->next = NULL;
    l->bytes -= s->charged;
    l->count--;
    s->charged = 0;
    s->listed = 0;
}

static void lru_push(lru *l, slot *s, apr_size_t charge)
{
    s->prev = NULL;
    s->next = l->head;
    if (l->head != NULL) {
        l->head->prev = s;
    }
    l->head = s;
    if (l->tail == NULL) {
        l->tail = s;
    }
    s->charged = charge;
    l->bytes += charge;
    l->count++;
    s->listed = 1;
}

static lru *slot_list(btsso_acct_cache *c, slot *s)
{
    return s->negative ? &c->unknown : &c->known;
}

static void slot_touch(btsso_acct_cache *c, slot *s, apr_time_t now)
{
    lru *l = slot_list(c, s);
    apr_size_t charge = s->charged;

    s->used = now;
    if (s->listed && l->head != s) {
        lru_unlink(l, s);
        lru_push(l, s, charge);
    }
}

/* A slot's heap bytes: its block, as malloc rounds it, with the chunk
 * header, and the hash table's entry pointing at it (apr_hash_entry_t, five
 * words, from the process pool). */
static apr_size_t slot_size(const char *account)
{
    return APR_ALIGN(sizeof(slot) + strlen(account) + sizeof(apr_size_t),
                     16) + 5 * sizeof(void *);
}

/* Out of the table; freed now unless a load still refers to it. */
static void slot_drop(btsso_acct_cache *c, slot *s)
{
    if (s->listed) {
        lru_unlink(slot_list(c, s), s);
    }
    if (s->entry != NULL) {
        entry_release_locked(c, s->entry);
        s->entry = NULL;
    }
    /* The hash keeps the key pointer of the first set: remove the pair
     * before the memory holding the key goes. */
    if (!s->dropped) {
        apr_hash_set(c->entries, s->key, APR_HASH_KEY_STRING, NULL);
        s->dropped = 1;
    }
    if (s->flight == NULL) {
        free(s);
    }
}

static int cache_count(btsso_acct_cache *c)
{
    return c->known.count + c->unknown.count;
}

/* Evict least recently used slots of l until it fits its budget. */
static void lru_fit(request_rec *r, btsso_acct_cache *c, lru *l,
                    apr_time_t now)
{
    while (l->bytes > l->budget && l->tail != NULL) {
        slot *s = l->tail;
        apr_size_t was = s->charged;
        apr_time_t idle = now - s->used;
        char name[65];

        apr_cpystrn(name, s->key, sizeof(name));
        slot_drop(c, s);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BTSSO0112: account %s: evicted (%s, %" APR_SIZE_T_FMT
                      " bytes, unused for %" APR_TIME_T_FMT " ms); %"
                      APR_SIZE_T_FMT " of %" APR_SIZE_T_FMT " bytes in %d "
                      "accounts", name, l == &c->known ? "known" : "unknown",
                      was, apr_time_as_msec(idle),
                      c->known.bytes + c->unknown.bytes, c->max_bytes,
                      cache_count(c));
    }
}

/* Forget every issuer mapping and the memory that held them (locked). */
static void issuers_reset(btsso_acct_cache *c)
{
    apr_pool_clear(c->pool);
    c->issuers = apr_hash_make(c->pool);
}

/* ---- requests ---------------------------------------------------------------- */

typedef struct release_ctx {
    btsso_acct_cache *cache;
    btsso_acct_entry *entry;
} release_ctx;

static apr_status_t release_entry(void *data)
{
    release_ctx *rc = data;

    apr_thread_mutex_lock(rc->cache->lock);
    entry_release_locked(rc->cache, rc->entry);
    apr_thread_mutex_unlock(rc->cache->lock);
    return APR_SUCCESS;
}

/* Hand the request a reference it already owns, given back with r. */
static btsso_error_t *hold(request_rec *r, btsso_acct_cache *c,
                           btsso_acct_entry *e, const btsso_acct_entry **out)
{
    release_ctx *rc = apr_palloc(r->pool, sizeof(*rc));

    rc->cache = c;
    rc->entry = e;
    apr_pool_cleanup_register(r->pool, rc, release_entry,
                              apr_pool_cleanup_null);
    *out = e;
    return NULL;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void flight_free(flight *f)
{
    free(f->code);
    free(f->message);
    free(f->detail);
    free(f);
}

/* A waiter's copy of the error its loader met. */
static btsso_error_t *flight_error(request_rec *r, const flight *f)
{
    return btsso_error_make(r->pool, f->status ? f->status : 500,
        apr_pstrdup(r->pool, f->code ? f->code : "db_error"),
        apr_pstrdup(r->pool, f->message ? f->message
                                        : "The account database failed."),
        "%s (met by a concurrent load)", f->detail ? f->detail : "-");
}

static btsso_error_t *out_of_memory(request_rec *r)
{
    return btsso_error_make(r->pool, 500, "internal", "Out of memory.",
                            NULL);
}

/* The loader's result into the table (locked). */
static void publish(request_rec *r, btsso_acct_cache *c, slot *s,
                    const char *account, btsso_acct_entry *e, int missing,
                    apr_time_t now)
{
    if (s->dropped) {
        /* invalidated or evicted meanwhile: the result is this flight's */
        free(s);
        return;
    }
    if (s->listed) {
        lru_unlink(slot_list(c, s), s);
    }
    if (s->entry != NULL) {
        entry_release_locked(c, s->entry);
        s->entry = NULL;
    }
    s->loaded = now;
    s->used = now;
    s->negative = missing;
    if (missing) {
        lru_push(&c->unknown, s, slot_size(account));
        lru_fit(r, c, &c->unknown, now);
        return;
    }
    if (e->size + slot_size(account) > c->known.budget) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BTSSO0113: account %s: %" APR_SIZE_T_FMT " bytes of "
                      "settings, more than BTSSOAccountCacheSize keeps: "
                      "read from the store on every request", account,
                      e->size);
        slot_drop(c, s);
        return;
    }
    s->entry = e;
    e->refs++;
    lru_push(&c->known, s, e->size + slot_size(account));
    lru_fit(r, c, &c->known, now);
}

btsso_error_t *btsso_acct_get(request_rec *r, const char *account,
                              const btsso_acct_entry **out)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_acct_cache *c = sc->rt->accounts;
    btsso_acct_entry *e = NULL;
    btsso_store_t *st = NULL;
    btsso_error_t *err = NULL;
    slot *s;
    flight *f;
    apr_time_t now = apr_time_now();
    apr_size_t xml_len = 0;
    int missing = 0;

    apr_thread_mutex_lock(c->lock);
    for (;;) {
        s = apr_hash_get(c->entries, account, APR_HASH_KEY_STRING);
        if (s != NULL && s->flight == NULL && now - s->loaded < c->ttl) {
            slot_touch(c, s, now);
            if (s->negative) {
                apr_thread_mutex_unlock(c->lock);
                return not_found(r, account);
            }
            e = s->entry;
            e->refs++;
            apr_thread_mutex_unlock(c->lock);
            return hold(r, c, e, out);
        }
        if (s != NULL && s->flight != NULL && s->entry != NULL) {
            /* being refreshed: the copy it replaces will do meanwhile */
            slot_touch(c, s, now);
            e = s->entry;
            e->refs++;
            apr_thread_mutex_unlock(c->lock);
            return hold(r, c, e, out);
        }
        if (s != NULL && s->flight != NULL) {
            f = s->flight;
            f->waiters++;
            while (!f->done) {
                apr_thread_cond_wait(c->loaded, c->lock);
            }
            e = f->entry;       /* its reference was taken for us */
            if (e == NULL) {
                err = f->not_found ? not_found(r, account)
                                   : flight_error(r, f);
            }
            if (--f->waiters == 0) {
                flight_free(f);
            }
            apr_thread_mutex_unlock(c->lock);
            return e != NULL ? hold(r, c, e, out) : err;
        }
        if (st != NULL) {
            break;
        }
        /* A load is needed.  Take the connection before announcing the
         * load: requests that wait for it may hold every other one. */
        apr_thread_mutex_unlock(c->lock);
        st = btsso_request_store(r);
        if (st == NULL) {
            return store_unavailable(r);
        }
        apr_thread_mutex_lock(c->lock);
        now = apr_time_now();
    }

    if (s == NULL) {
        s = calloc(1, sizeof(*s) + strlen(account));
        if (s == NULL) {
            apr_thread_mutex_unlock(c->lock);
            return out_of_memory(r);
        }
        strcpy(s->key, account);
        apr_hash_set(c->entries, s->key, APR_HASH_KEY_STRING, s);
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        if (s->entry == NULL && !s->listed) {
            slot_drop(c, s);
        }
        apr_thread_mutex_unlock(c->lock);
        return out_of_memory(r);
    }
    s->flight = f;
    apr_thread_mutex_unlock(c->lock);

    err = load_entry(r, st, account, &missing, &e, &xml_len);
    now = apr_time_now();
    if (err == NULL && missing) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BTSSO0111: account %s: unknown, remembered for %"
                      APR_TIME_T_FMT " ms", account,
                      apr_time_as_msec(c->ttl));
    }

    apr_thread_mutex_lock(c->lock);
    s->flight = NULL;
    f->done = 1;
    if (err != NULL) {
        f->status = err->status;
        f->code = dup_or_null(err->code);
        f->message = dup_or_null(err->message);
        f->detail = dup_or_null(err->detail);
        /* Nothing kept, not even a stale copy: the next request tries
         * the store again. */
        slot_drop(c, s);
    }
    else {
        f->not_found = missing;
        if (!missing) {
            e->refs = 1 + f->waiters;   /* this request's and the waiters' */
            f->entry = e;
        }
        publish(r, c, s, account, e, missing, now);
        if (!missing) {
            /* what BTSSOAccountCacheSize bounds, right after this load
             * (and the evictions it made): the test reads it */
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          "BTSSO0110: account %s: loaded from the store (%"
                          APR_SIZE_T_FMT " bytes kept of %" APR_SIZE_T_FMT
                          " bytes of metadata); %" APR_SIZE_T_FMT " of %"
                          APR_SIZE_T_FMT " bytes in %d accounts, %d "
                          "certificates", account, e->size, xml_len,
                          c->known.bytes + c->unknown.bytes, c->max_bytes,
                          cache_count(c), c->ncerts);
        }
    }
    apr_thread_cond_broadcast(c->loaded);
    if (f->waiters == 0) {
        flight_free(f);
    }
    apr_thread_mutex_unlock(c->lock);

    if (err != NULL) {
        return err;
    }
    if (missing) {
        return not_found(r, account);
    }
    return hold(r, c, e, out);
}

void btsso_acct_invalidate(server_rec *s, const char *account)
{
    btsso_srv_cfg *sc = btsso_srv(s);
    btsso_acct_cache *c = sc->rt->accounts;
    slot *sl;

    apr_thread_mutex_lock(c->lock);
    sl = apr_hash_get(c->entries, account, APR_HASH_KEY_STRING);
    if (sl != NULL) {
        slot_drop(c, sl);
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
    if (found == NULL) {
        found = "";
    }
    if (ie != NULL && strlen(found) <= strlen(ie->account)) {
        strcpy(ie->account, found);
    }
    else {
        /* a longer name (an administrator's change made elsewhere) takes
         * a new entry; the pool goes at the next reset, as the table */
        issuer_entry *n = apr_palloc(c->pool, sizeof(*n) + strlen(found));

        strcpy(n->account, found);
        apr_hash_set(c->issuers, ie != NULL ? issuer
                                            : apr_pstrdup(c->pool, issuer),
                     APR_HASH_KEY_STRING, n);
        ie = n;
    }
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
