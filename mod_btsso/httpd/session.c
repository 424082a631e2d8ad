/*
 * session.c - sessions, pending LogoutRequests and the replay cache, all in
 * the socache provider named by BTSSOSessionCache.  Nothing an
 * unauthenticated client sends is stored here (pending AuthnRequests live
 * in the browser: pending.c), so no flood can evict a session or a replay
 * mark; a replay mark that cannot be recorded refuses the assertion.
 *
 * Keys are never the secret itself: a session is stored under
 * "s" + SHA-256(SP identity, cookie value), so a dump of the cache (or a memcached
 * listing) yields no usable cookie.  The socache instance lives in the
 * process pool, not in the configuration pool, so a graceful restart keeps
 * it: shmcb's shared memory stays mapped in the parent and is inherited by
 * the next generation of children, and nobody is logged out.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_core.h>
#include <ap_socache.h>
#include <util_cookies.h>
#include <ap_provider.h>
#include <apr_strings.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <jansson.h>

#include "btsso_glue.h"
#include "btsso_session.h"
#include "btsso_acct.h"
#include "core/url.h"
#include "core/session_record.h"

APLOG_USE_MODULE(btsso);

#define SESSION_TOKEN_BYTES 32     /* 256 random bits */
#define MAX_VALUE 8192

/* ---- the cache itself ------------------------------------------------------ */

typedef struct shared_cache {
    const ap_socache_provider_t *provider;
    ap_socache_instance_t *instance;
} shared_cache;

/*
 * The instance outlives graceful restarts (it lives in the process pool),
 * but the provider's code does not: httpd unloads and reloads every module
 * on a restart, so the provider is looked up afresh each generation, and
 * the instance is destroyed from a cleanup of the configuration pool -- run
 * while the provider is still loaded -- only when httpd really exits.
 */
static apr_status_t destroy_cache_on_exit(void *data)
{
    shared_cache *c = data;
    int state = ap_state_query(AP_SQ_MAIN_STATE);

    if (state == AP_SQ_MS_EXITING && c->instance != NULL) {
        c->provider->destroy(c->instance, NULL);
        c->instance = NULL;
    }
    return APR_SUCCESS;
}

/* Default: anonymous shared memory of 16 MiB (tens of thousands of
 * sessions), not shmcb's own 512 KiB.  The path only names the segment
 * where anonymous shared memory is unavailable. */
#define DEFAULT_SHMCB_SIZE 16777216

/*
 * One instance per key, created the first time a generation asks for it
 * and kept in the process pool for the next ones; destroyed when httpd
 * exits.  Errors name `what`.
 */
static const char *cache_open(server_rec *s, apr_pool_t *pconf,
                              apr_pool_t *ptemp, const char *key,
                              const char *name, const char *args,
                              const char *what, const char *ns,
                              struct ap_socache_hints *hints,
                              shared_cache **out)
{
    apr_pool_t *pp = s->process->pool;
    shared_cache *c = NULL;
    const char *err;
    apr_status_t rv;
    void *seen = NULL;

    apr_pool_userdata_get((void **)&c, key, pp);
    if (c == NULL) {
        c = apr_pcalloc(pp, sizeof(*c));
        apr_pool_userdata_set(c, apr_pstrdup(pp, key), apr_pool_cleanup_null,
                              pp);
    }
    c->provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                     AP_SOCACHE_PROVIDER_VERSION);
    if (c->provider == NULL) {
        return apr_psprintf(ptemp, "%s: socache provider '%s' is not loaded "
                            "(LoadModule socache_%s_module)", what, name,
                            name);
    }
    if (c->instance == NULL) {
        err = c->provider->create(&c->instance, args, ptemp, pp);
        if (err != NULL) {
            c->instance = NULL;
            return apr_pstrcat(ptemp, what, ": ", err, NULL);
        }
        rv = c->provider->init(c->instance, ns, hints, s, pp);
        if (rv != APR_SUCCESS) {
            c->instance = NULL;
            return apr_psprintf(ptemp, "%s: cannot initialise '%s' (%pm)",
                                what, args ? args : name, &rv);
        }
    }
    /* registered once per generation and per instance (several servers
     * may share one) */
    if (apr_pool_userdata_get(&seen, key, pconf) == APR_SUCCESS
        && seen == NULL) {
        apr_pool_userdata_set("", apr_pstrdup(pconf, key),
                              apr_pool_cleanup_null, pconf);
        apr_pool_cleanup_register(pconf, c, destroy_cache_on_exit,
                                  apr_pool_cleanup_null);
    }
    *out = c;
    return NULL;
}

/* The index shmcb's arguments from the session shmcb's: the same size, the
 * path (where anonymous shared memory is unavailable) with "-index". */
static const char *index_shmcb_args(apr_pool_t *p, const char *args)
{
    const char *paren = args != NULL ? strrchr(args, '(') : NULL;

    if (args == NULL || *args == '\0') {
        return args;
    }
    if (paren == NULL) {
        return apr_pstrcat(p, args, "-index", NULL);
    }
    if (paren == args) {
        return apr_pstrcat(p, ap_runtime_dir_relative(p, "btsso-index"),
                           paren, NULL);
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, args, paren - args), "-index",
                       paren, NULL);
}

/* Shard i's arguments from the session shmcb's "PATH(SIZE)": PATH, with
 * "-s<i>" after the first (an anonymous segment, "(SIZE)", stays
 * anonymous), and size octets. */
static const char *shard_args(apr_pool_t *p, const char *args, int i,
                              apr_size_t size)
{
    const char *paren = strrchr(args, '(');
    const char *path = apr_pstrmemdup(p, args, paren - args);

    return apr_psprintf(p, "%s%s(%" APR_SIZE_T_FMT ")", path,
                        i > 0 && *path != '\0' ? apr_psprintf(p, "-s%d", i)
                                                : "", size);
}

/*
 * How many shmcb segments the sessions are spread over.  shmcb finds an
 * entry by comparing the key of every entry of its sub-cache, each at
 * another place of the segment, and it makes at most 256 sub-caches, so a
 * protected request walked some 60 entries at 16,000 live sessions.  Each
 * shard has sub-caches of its own.  A shard is at least 6 MiB: shmcb then
 * makes 64 sub-caches of 96 KiB or more (with the hints below), and a
 * sub-cache must hold the largest session record (64 KiB).  A size that
 * cannot be read (shmcb's own default) stays one segment.
 */
#define SHARD_MIN_SIZE (6 * 1024 * 1024)

static int session_shard_count(const char *args, apr_size_t *shard_size)
{
    const char *paren = args != NULL ? strrchr(args, '(') : NULL;
    char *end = NULL;
    apr_int64_t size;
    int n = 1;

    if (paren == NULL) {
        return 1;
    }
    size = apr_strtoi64(paren + 1, &end, 10);
    if (end == NULL || *end != ')' || size <= 0) {
        return 1;
    }
    if (size / SHARD_MIN_SIZE > 1) {
        n = (int)(size / SHARD_MIN_SIZE < BTSSO_SESSION_SHARDS_MAX
                  ? size / SHARD_MIN_SIZE : BTSSO_SESSION_SHARDS_MAX);
    }
    *shard_size = (apr_size_t)(size / n);
    return n;
}

/*
 * Per distinct BTSSOSessionCache value: the session cache, and where the
 * NameID index and the replay marks go.  On memcache or redis that is the
 * session cache itself, which every node shares.  On shmcb (one machine)
 * it is a second shmcb of the same size: shmcb finds an entry by walking
 * every entry of its sub-cache, and each login leaves three (the session,
 * its NameID index, its assertion's replay mark), so a protected request
 * walked three times as far as it needs; and sessions no longer compete
 * with marks and indexes for room.
 */
const char *btsso_session_cache_setup(server_rec *s, btsso_srv_cfg *sc,
                                      apr_pool_t *pconf, apr_pool_t *ptemp)
{
    apr_pool_t *pp = s->process->pool;
    const char *key = apr_pstrcat(ptemp, "btsso-socache:",
                                  sc->session_cache, NULL);
    shared_cache *c = NULL, *ic = NULL;
    const char *name, *args = NULL, *sep, *err;
    apr_size_t shard_size = 0;
    int i, shards;
    /* keys: 32-byte digests; values: a session record of a few hundred
     * bytes (more with many attributes: up to BTSSO_SESSION_RECORD_MAX) */
    struct ap_socache_hints hints = { 32, 480, apr_time_from_sec(3600) };
    /* NameID indexes (~80 bytes a session) and replay marks (1 byte) */
    struct ap_socache_hints index_hints = { 32, 64, apr_time_from_sec(3600) };

    sep = ap_strchr_c(sc->session_cache, ':');
    if (sep != NULL) {
        name = apr_pstrmemdup(ptemp, sc->session_cache,
                              sep - sc->session_cache);
        args = apr_pstrdup(pp, sep + 1);
    }
    else {
        name = sc->session_cache;
        if (!strcmp(name, "shmcb")) {
            args = apr_psprintf(pp, "%s(%d)",
                                ap_runtime_dir_relative(pp, "btsso-sessions"),
                                DEFAULT_SHMCB_SIZE);
        }
    }
    shards = strcmp(name, "shmcb") == 0
        ? session_shard_count(args, &shard_size) : 1;
    for (i = 0; i < shards; i++) {
        err = cache_open(s, pconf, ptemp,
                         i == 0 ? key : apr_psprintf(ptemp, "%s#%d", key, i),
                         name,
                         shards == 1 ? args
                                     : shard_args(pp, args, i, shard_size),
                         "BTSSOSessionCache", "btsso", &hints, &c);
        if (err != NULL) {
            return err;
        }
        sc->rt->session_shard[i] = c->instance;
    }
    sc->rt->session_shards = shards;
    sc->socache_provider = c->provider;
    sc->rt->index_provider = c->provider;
    sc->rt->index_instance = c->instance;
    if (strcmp(name, "shmcb") == 0) {
        err = cache_open(s, pconf, ptemp,
                         apr_pstrcat(ptemp, "btsso-socache-index:",
                                     sc->session_cache, NULL),
                         name, index_shmcb_args(pp, args),
                         "BTSSOSessionCache (its NameID index)",
                         "btsso-index", &index_hints, &ic);
        if (err != NULL) {
            return err;
        }
        sc->rt->index_provider = ic->provider;
        sc->rt->index_instance = ic->instance;
    }
    return NULL;
}

/*
 * Cache keys: the hex SHA-256 of a type letter and the secret, never the
 * secret itself.  Kept as hex text (the callers compare and log them),
 * handed to the provider as the 32 raw digest bytes: shmcb picks its
 * sub-cache from the key's first byte, which must therefore be uniformly
 * spread -- a fixed prefix letter would crowd every session into one
 * sub-cache and evict them (and replay marks) after a few dozen logins.
 */
#define KEY_BYTES SHA256_DIGEST_LENGTH

/* SHA-256 fetched once per process, and a digest context kept per
 * thread: OpenSSL 3's one-shot SHA256() looks the algorithm up and
 * allocates a context at every call, which cost more than the digest of a
 * protected request's key. */
static EVP_MD *sha256_md;
static pthread_key_t sha256_ctx_key;
static int sha256_key_ok;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    sha256_key_ok = pthread_key_create(&sha256_ctx_key, sha256_ctx_free) == 0;
}

static void sha256(const char *in, apr_size_t len,
                   unsigned char md[SHA256_DIGEST_LENGTH])
{
    EVP_MD_CTX *ctx = NULL;

    pthread_once(&sha256_once, sha256_fetch);
    if (sha256_md != NULL && sha256_key_ok) {
        ctx = pthread_getspecific(sha256_ctx_key);
        if (ctx == NULL && (ctx = EVP_MD_CTX_new()) != NULL
            && pthread_setspecific(sha256_ctx_key, ctx) != 0) {
            EVP_MD_CTX_free(ctx);
            ctx = NULL;
        }
    }
    if (ctx == NULL || EVP_DigestInit_ex2(ctx, sha256_md, NULL) != 1
        || EVP_DigestUpdate(ctx, in, len) != 1
        || EVP_DigestFinal_ex(ctx, md, NULL) != 1) {
        SHA256((const unsigned char *)in, len, md);
    }
}

static const char *hashed_key(apr_pool_t *p, char prefix, const char *secret)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    static const char hex[] = "0123456789abcdef";
    char *out = apr_palloc(p, 2 * sizeof(md) + 1);
    char head[3] = { prefix, '\n', '\0' };
    const char *in = apr_pstrcat(p, head, secret, NULL);
    apr_size_t i;

    sha256(in, strlen(in), md);
    for (i = 0; i < sizeof(md); i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * sizeof(md)] = '\0';
    return out;
}

/* The raw digest of a hashed_key() text, written into buf (the text is
 * ours: 64 lowercase hex digits). */
static const unsigned char *raw_key(const char *key, unsigned char *buf)
{
    static const unsigned char hexv[256] = {
        ['0'] = 0, ['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4, ['5'] = 5,
        ['6'] = 6, ['7'] = 7, ['8'] = 8, ['9'] = 9, ['a'] = 10, ['b'] = 11,
        ['c'] = 12, ['d'] = 13, ['e'] = 14, ['f'] = 15
    };
    const unsigned char *k = (const unsigned char *)key;
    apr_size_t i, n = strlen(key) / 2;

    if (n > KEY_BYTES) {
        n = KEY_BYTES;
    }
    for (i = 0; i < n; i++) {
        buf[i] = (unsigned char)(hexv[k[2 * i]] << 4 | hexv[k[2 * i + 1]]);
    }
    return buf;
}

/* This SP's identity (pending.c); "" before post_config finished. */
static const char *sp_of(request_rec *r)
{
    const char *id = btsso_sp_id(r->server);

    return id != NULL ? id : "";
}

/* A session is stored under a key of its SP and its cookie: another SP
 * (virtual host) sharing the cache cannot even find it. */
/* The last key worked out on a connection: a browser sends the same
 * cookie on every request of its keep-alive connection, and the digest
 * was a fifth of what a protected request costs this module. */
typedef struct key_memo {
    const char *sp;                     /* sp_of() it was made for */
    char token[2 * SESSION_TOKEN_BYTES + 1];
    char key[2 * KEY_BYTES + 1];
    /* The record the cache last gave for that key on this connection and
     * the session it decoded to (in the connection's pool): the next
     * request that reads the same octets takes a copy instead of decoding
     * them again, and the variables its export made (a third of what a
     * protected request cost this module).  A record is kept only up to
     * MEMO_RECORD_MAX octets and MEMO_FILLS times per connection: the
     * connection's pool keeps what it was given until it closes. */
    const unsigned char *rec;
    apr_size_t rec_len;
    const btsso_session_t *ss;
    int fills;
} key_memo;

#define MEMO_RECORD_MAX 4096
#define MEMO_FILLS 8

static key_memo *conn_memo(request_rec *r)
{
    return ap_get_module_config(r->connection->conn_config, &btsso_module);
}

static const char *session_key(request_rec *r, const char *token)
{
    conn_rec *c = r->connection;
    key_memo *m = ap_get_module_config(c->conn_config, &btsso_module);
    const char *sp = sp_of(r), *key;

    if (m != NULL && m->sp == sp && strcmp(m->token, token) == 0) {
        return apr_pstrdup(r->pool, m->key);
    }
    key = hashed_key(r->pool, 's', apr_pstrcat(r->pool, sp, "\n", token,
                                               NULL));
    if (strlen(token) < sizeof(m->token) && strlen(key) < sizeof(m->key)) {
        if (m == NULL) {
            m = apr_pcalloc(c->pool, sizeof(*m));
            ap_set_module_config(c->conn_config, &btsso_module, m);
        }
        m->sp = sp;
        apr_cpystrn(m->token, token, sizeof(m->token));
        apr_cpystrn(m->key, key, sizeof(m->key));
        m->ss = NULL;           /* it was another cookie's */
    }
    return key;
}

static void cache_lock(btsso_srv_cfg *sc)
{
    if (sc->rt->cache_mutex != NULL) {
        btsso_cache_lock_take(sc->rt->cache_mutex, sc->rt->s);
    }
}

static void cache_unlock(btsso_srv_cfg *sc)
{
    if (sc->rt->cache_mutex != NULL) {
        btsso_cache_lock_give(sc->rt->cache_mutex, sc->rt->s);
    }
}

/* The session cache's instance for raw key k: on shmcb, the shard its
 * second octet picks (shmcb picks the sub-cache by the first; both octets
 * are a digest's, evenly spread). */
static ap_socache_instance_t *shard_of(const btsso_srv_cfg *sc,
                                       const unsigned char *k)
{
    return sc->rt->session_shard[k[1] % sc->rt->session_shards];
}

static apr_status_t cache_put_octets(request_rec *r, const char *key,
                                     const unsigned char *value,
                                     apr_size_t len, apr_time_t expiry);

static apr_status_t cache_put(request_rec *r, const char *key,
                              const char *value, apr_time_t expiry)
{
    return cache_put_octets(r, key, (const unsigned char *)value,
                            strlen(value), expiry);
}

static apr_status_t cache_put_octets(request_rec *r, const char *key,
                                     const unsigned char *value,
                                     apr_size_t len, apr_time_t expiry)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    unsigned char k[KEY_BYTES];
    apr_status_t rv;

    raw_key(key, k);
    cache_lock(sc);
    rv = sc->socache_provider->store(shard_of(sc, k), r->server, k,
                                     KEY_BYTES, expiry,
                                     (unsigned char *)value,
                                     (unsigned int)len, r->pool);
    cache_unlock(sc);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "BTSSO0301: cannot store in the session cache '%s' "
                      "(is it full or unreachable?)", sc->session_cache);
    }
    return rv;
}

/* The value under key (NUL-terminated, *out_len octets before it), or
 * NULL; at most max octets are read. */
static const unsigned char *cache_get(request_rec *r, const char *key,
                                      apr_size_t max, apr_size_t *out_len)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    unsigned char *buf = apr_palloc(r->pool, max + 1);
    unsigned int len = (unsigned int)max;
    unsigned char k[KEY_BYTES];
    apr_status_t rv;

    raw_key(key, k);
    cache_lock(sc);
    rv = sc->socache_provider->retrieve(shard_of(sc, k), r->server, k,
                                        KEY_BYTES, buf, &len, r->pool);
    cache_unlock(sc);
    if (rv != APR_SUCCESS) {
        if (!APR_STATUS_IS_NOTFOUND(rv)) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                          "BTSSO0302: cannot read the session cache '%s'",
                          sc->session_cache);
        }
        return NULL;
    }
    buf[len] = '\0';
    *out_len = len;
    return buf;
}

static void cache_del(request_rec *r, const char *key)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    unsigned char k[KEY_BYTES];

    raw_key(key, k);
    cache_lock(sc);
    sc->socache_provider->remove(shard_of(sc, k), r->server, k, KEY_BYTES,
                                 r->pool);
    cache_unlock(sc);
}

/* ---- tokens -------------------------------------------------------------------- */

const char *btsso_random_token(apr_pool_t *p, apr_size_t nbytes)
{
    unsigned char raw[64];
    static const char hex[] = "0123456789abcdef";
    char *out;
    apr_size_t i;

    if (nbytes > sizeof(raw) || RAND_bytes(raw, (int)nbytes) != 1) {
        return NULL;
    }
    out = apr_palloc(p, nbytes * 2 + 1);
    for (i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[nbytes * 2] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return out;
}


/* ---- sessions ---------------------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k, apr_pool_t *p)
{
    const char *v = json_string_value(json_object_get(o, k));

    return v ? apr_pstrdup(p, v) : NULL;
}

/*
 * The session as its compact record (core/session_record.h): a protected
 * request decodes it without jansson, pointing into the cache buffer.
 * A record of another format or version -- the JSON records of the
 * versions before it, left in a memcached or redis after an upgrade -- is
 * no session: the person signs in once more (sessions are short-lived).
 */
static unsigned char *session_to_record(apr_pool_t *p,
                                        const btsso_session_t *ss,
                                        apr_size_t *len)
{
    btsso_session_record_t rec;

    rec.sp_id = ss->sp_id;
    rec.account = ss->account;
    rec.email = ss->email;
    rec.extension = ss->extension;
    rec.name_id = ss->name_id;
    rec.name_id_format = ss->name_id_format;
    rec.idp = ss->idp;
    rec.session_index = ss->session_index;
    rec.created = ss->created;
    rec.expires = ss->expires;
    rec.last_seen = ss->last_seen;
    rec.epoch = ss->epoch;
    rec.revoke_seq = ss->revoke_seq;
    rec.user_checked = ss->user_checked;
    rec.attributes = ss->attributes;
    return btsso_session_record_encode(p, &rec, len);
}

static btsso_session_t *session_from_record(apr_pool_t *p,
                                            const unsigned char *buf,
                                            apr_size_t len)
{
    btsso_session_record_t rec;
    btsso_session_t *ss;

    if (!btsso_session_record_decode(p, buf, len, &rec)) {
        return NULL;
    }
    ss = apr_pcalloc(p, sizeof(*ss));
    ss->sp_id = rec.sp_id;
    ss->account = rec.account;
    ss->email = rec.email;
    ss->extension = rec.extension;
    ss->name_id = rec.name_id;
    ss->name_id_format = rec.name_id_format;
    ss->idp = rec.idp;
    ss->session_index = rec.session_index;
    ss->created = rec.created;
    ss->expires = rec.expires;
    ss->last_seen = rec.last_seen;
    ss->epoch = rec.epoch;
    ss->revoke_seq = rec.revoke_seq;
    ss->user_checked = rec.user_checked;
    ss->attributes = rec.attributes;
    return ss;
}

static apr_status_t session_store(request_rec *r, btsso_session_t *ss)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    apr_size_t len = 0;
    unsigned char *rec = session_to_record(r->pool, ss, &len);
    apr_time_t expiry = ss->last_seen + sc->session_idle_timeout;

    if (rec == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "BTSSO0343: account %s: the session cannot be "
                      "recorded (a value is missing, or the session "
                      "exceeds %d octets)", ss->account,
                      BTSSO_SESSION_RECORD_MAX);
        return APR_EINVAL;
    }
    if (expiry > ss->expires) {
        expiry = ss->expires;
    }
    return cache_put_octets(r, session_key(r, ss->token), rec, len, expiry);
}

typedef struct cookie_scan {
    const char *name;
    const char *value;
    apr_size_t len;
    int state;                  /* btsso_cookie_find's: 1, 0 or -1 */
} cookie_scan;

static int scan_cookie_header(void *ctx, const char *key, const char *value)
{
    cookie_scan *cs = ctx;

    cs->state = btsso_cookie_find(value, cs->name, &cs->value, &cs->len);
    return cs->state >= 0;      /* a conflict ends the scan */
}

/*
 * The session cookie's value, read from the Cookie headers in place
 * (ap_cookie_read copies and re-joins every cookie of the header: it was
 * a quarter of what a protected request costs this module).  As with
 * ap_cookie_read, the cookie sent twice with different values is no
 * session.
 */
static const char *session_cookie(request_rec *r)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    cookie_scan cs = { sc->cookie_name, NULL, 0, 0 };

    apr_table_do(scan_cookie_header, &cs, r->headers_in, "Cookie", NULL);
    /* Our tokens are 64 lowercase hex digits; anything else is not ours
     * and is not looked up. */
    if (cs.state != 1 || cs.len != 2 * SESSION_TOKEN_BYTES
        || strspn(cs.value, "0123456789abcdef") < 2 * SESSION_TOKEN_BYTES) {
        return NULL;
    }
    return apr_pstrmemdup(r->pool, cs.value, cs.len);
}

static void set_cookie(request_rec *r, const char *value, long max_age)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *hdr = btsso_cookie_header(r->pool, sc->cookie_name, value,
                                          "/", max_age, sc->cookie_secure,
                                          sc->cookie_samesite);

    /* NULL only for a name BTSSOCookieName would have refused already */
    if (hdr != NULL) {
        apr_table_addn(r->err_headers_out, "Set-Cookie", hdr);
    }
}

/* ---- the NameID index, for the IdP's LogoutRequest ---------------------------- */

/*
 * "n" + SHA-256(account, IdP, NameID) -> the sessions of that person, in
 * the order they were made: per session its cache key (a hash, not the
 * cookie), its expiry and the SessionIndex of its login.  An IdP's
 * LogoutRequest names the person and, usually, the SessionIndex of one
 * login; the list finds the sessions to end without a scan of the cache.
 *
 * Stored in a binary form read without a parser (a login rewrites the
 * list of its person: with JSON that was a sixth of a login's time for
 * someone signed in on many devices): the octet NAME_INDEX_FORMAT, then
 * per session 8 octets of expiry (seconds, big-endian), the 32 octets of
 * its key, 2 octets of SessionIndex length (0: none) and the SessionIndex.
 * The JSON lists of the versions before are still read.
 */
#define NAME_INDEX_MAX 32
#define NAME_INDEX_FORMAT 0x01
#define NAME_INDEX_SI_MAX 1024      /* a longer SessionIndex is not kept */

typedef struct name_item {
    apr_int64_t expires;            /* seconds */
    unsigned char key[KEY_BYTES];   /* the session's raw cache key */
    const char *si;                 /* SessionIndex, or NULL */
} name_item;

static const char *name_index_key(request_rec *r, const char *account,
                                  const char *idp, const char *name_id)
{
    return hashed_key(r->pool, 'n', apr_pstrcat(r->pool, sp_of(r), "\n",
                                                account, "\n", idp, "\n",
                                                name_id, NULL));
}

/* A list of the versions before: [{"k": hex key, "si": .., "e": ..}]. */
static void name_index_from_json(request_rec *r, const unsigned char *buf,
                                 apr_array_header_t *items)
{
    json_error_t jerr;
    json_t *list = json_loads((const char *)buf, 0, &jerr), *item;
    size_t i;

    if (list == NULL) {
        return;
    }
    json_array_foreach(list, i, item) {
        const char *k = json_string_value(json_object_get(item, "k"));
        const char *si = json_string_value(json_object_get(item, "si"));
        name_item *it;

        if (k == NULL || strlen(k) != 2 * KEY_BYTES
            || strspn(k, "0123456789abcdef") != 2 * KEY_BYTES) {
            continue;
        }
        it = apr_array_push(items);
        it->expires = json_integer_value(json_object_get(item, "e"));
        raw_key(k, it->key);
        it->si = si != NULL ? apr_pstrdup(r->pool, si) : NULL;
    }
    json_decref(list);
}

/* The index, read under the caller's lock; empty when absent or not
 * readable. */
static apr_array_header_t *name_index_read(request_rec *r, const char *key)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    unsigned char *buf = apr_palloc(r->pool, MAX_VALUE + 1);
    unsigned int len = MAX_VALUE;
    apr_array_header_t *items = apr_array_make(r->pool, 4, sizeof(name_item));
    apr_size_t at = 1;

    if (sc->rt->index_provider->retrieve(
            sc->rt->index_instance, r->server,
            raw_key(key, (unsigned char[KEY_BYTES]){0}), KEY_BYTES, buf, &len,
            r->pool) != APR_SUCCESS || len == 0) {
        return items;
    }
    buf[len] = '\0';
    if (buf[0] == '[') {
        name_index_from_json(r, buf, items);
        return items;
    }
    if (buf[0] != NAME_INDEX_FORMAT) {
        return items;
    }
    while (at + 8 + KEY_BYTES + 2 <= len) {
        name_item *it;
        apr_uint64_t e = 0;
        apr_size_t si_len, i;

        for (i = 0; i < 8; i++) {
            e = e << 8 | buf[at + i];
        }
        si_len = (apr_size_t)buf[at + 8 + KEY_BYTES] << 8
                 | buf[at + 9 + KEY_BYTES];
        if (at + 10 + KEY_BYTES + si_len > len) {
            break;      /* cut short: what came before still counts */
        }
        it = apr_array_push(items);
        it->expires = (apr_int64_t)e;
        memcpy(it->key, buf + at + 8, KEY_BYTES);
        it->si = si_len > 0 ? apr_pstrmemdup(r->pool,
                                             (const char *)buf + at + 10
                                             + KEY_BYTES, si_len)
                            : NULL;
        at += 10 + KEY_BYTES + si_len;
    }
    return items;
}

/* Writes the index (under the caller's lock), or removes it when empty;
 * it expires with its last session. */
static apr_status_t name_index_write(request_rec *r, const char *key,
                                     const apr_array_header_t *items)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    unsigned char *buf = apr_palloc(r->pool, MAX_VALUE), *o;
    apr_int64_t latest = 0;
    int i, first = 0;
    apr_size_t need = 1;

    /* the oldest go first when the list does not fit */
    for (i = items->nelts - 1; i >= 0; i--) {
        const name_item *it = &APR_ARRAY_IDX(items, i, name_item);
        apr_size_t one = 10 + KEY_BYTES + (it->si ? strlen(it->si) : 0);

        if (need + one > MAX_VALUE) {
            first = i + 1;
            break;
        }
        need += one;
    }
    if (first >= items->nelts) {
        return sc->rt->index_provider->remove(
            sc->rt->index_instance, r->server,
            raw_key(key, (unsigned char[KEY_BYTES]){0}), KEY_BYTES, r->pool);
    }
    o = buf;
    *o++ = NAME_INDEX_FORMAT;
    for (i = first; i < items->nelts; i++) {
        const name_item *it = &APR_ARRAY_IDX(items, i, name_item);
        apr_size_t si_len = it->si ? strlen(it->si) : 0;
        int b;

        for (b = 7; b >= 0; b--) {
            *o++ = (unsigned char)((apr_uint64_t)it->expires >> (8 * b));
        }
        memcpy(o, it->key, KEY_BYTES);
        o += KEY_BYTES;
        *o++ = (unsigned char)(si_len >> 8);
        *o++ = (unsigned char)si_len;
        memcpy(o, it->si ? it->si : "", si_len);
        o += si_len;
        latest = it->expires > latest ? it->expires : latest;
    }
    return sc->rt->index_provider->store(
        sc->rt->index_instance, r->server,
        raw_key(key, (unsigned char[KEY_BYTES]){0}), KEY_BYTES,
        apr_time_from_sec(latest), buf, (unsigned int)(o - buf), r->pool);
}

static void name_index_add(request_rec *r, const btsso_session_t *ss)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *key = name_index_key(r, ss->account, ss->idp,
                                     ss->name_id);
    apr_int64_t now = apr_time_sec(apr_time_now());
    apr_array_header_t *list, *kept;
    name_item *it;
    int i;
    apr_status_t rv;

    /* Read, prune and write under one lock: two logins of one person at
     * once must both be indexed. */
    cache_lock(sc);
    list = name_index_read(r, key);
    kept = apr_array_make(r->pool, list->nelts + 1, sizeof(name_item));
    for (i = 0; i < list->nelts; i++) {
        it = &APR_ARRAY_IDX(list, i, name_item);
        if (it->expires > now) {
            *(name_item *)apr_array_push(kept) = *it;
        }
    }
    /* the oldest login goes */
    i = kept->nelts >= NAME_INDEX_MAX ? kept->nelts - NAME_INDEX_MAX + 1 : 0;
    if (i > 0) {
        memmove(kept->elts, kept->elts + (apr_size_t)i * sizeof(name_item),
                (apr_size_t)(kept->nelts - i) * sizeof(name_item));
        kept->nelts -= i;
    }
    it = apr_array_push(kept);
    it->expires = apr_time_sec(ss->expires);
    raw_key(session_key(r, ss->token), it->key);
    it->si = ss->session_index != NULL
             && strlen(ss->session_index) <= NAME_INDEX_SI_MAX
             ? ss->session_index : NULL;
    rv = name_index_write(r, key, kept);
    cache_unlock(sc);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r,
                      "BTSSO0304: account %s: cannot index the session by "
                      "NameID in '%s'; the IdP will not be able to end it "
                      "by Single Logout", ss->account, sc->session_cache);
    }
}

int btsso_session_end_by_name_id(request_rec *r, const char *account,
                                 const char *idp, const char *name_id,
                                 const apr_array_header_t *session_indexes)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *key = name_index_key(r, account, idp, name_id);
    const char *mine = session_cookie(r);
    unsigned char my_key[KEY_BYTES];
    apr_array_header_t *list, *kept;
    int ended = 0, i, j;

    if (mine != NULL) {
        raw_key(session_key(r, mine), my_key);
    }
    cache_lock(sc);
    list = name_index_read(r, key);
    kept = apr_array_make(r->pool, list->nelts + 1, sizeof(name_item));
    for (i = 0; i < list->nelts; i++) {
        const name_item *it = &APR_ARRAY_IDX(list, i, name_item);
        int covered = session_indexes == NULL || session_indexes->nelts == 0;

        for (j = 0; !covered && it->si != NULL && j < session_indexes->nelts;
             j++) {
            covered = !strcmp(it->si, APR_ARRAY_IDX(session_indexes, j,
                                                    const char *));
        }
        if (!covered) {
            *(name_item *)apr_array_push(kept) = *it;
            continue;
        }
        sc->socache_provider->remove(shard_of(sc, it->key), r->server,
                                     it->key, KEY_BYTES, r->pool);
        ended++;
        if (mine != NULL && !memcmp(it->key, my_key, KEY_BYTES)) {
            /* the browser that brought the request holds one of them */
            ap_set_module_config(r->request_config, &btsso_module, NULL);
            set_cookie(r, "", 0);
        }
    }
    name_index_write(r, key, kept);
    cache_unlock(sc);
    return ended;
}

btsso_error_t *btsso_session_create(request_rec *r, btsso_session_t *ss)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    apr_time_t now = apr_time_now();
    const char *old = session_cookie(r);
    const btsso_acct_entry *e = NULL;
    btsso_error_t *err;

    /* A login always mints a new id (no fixation): any session the browser
     * brought along is ended first. */
    if (old != NULL) {
        cache_del(r, session_key(r, old));
    }
    ss->token = btsso_random_token(r->pool, SESSION_TOKEN_BYTES);
    if (ss->token == NULL) {
        return btsso_error_make(r->pool, 500, "internal",
                                "The login could not be completed.",
                                "no randomness for a session id");
    }
    /* What the session must keep matching (btsso_session_get): the ACS
     * has just used this entry, so this reads no store. */
    err = btsso_acct_get(r, ss->account, &e);
    if (err != NULL) {
        return err;
    }
    ss->epoch = e->account->sessions_epoch;
    ss->revoke_seq = e->account->revoke_seq;
    ss->sp_id = sp_of(r);
    ss->created = now;
    ss->last_seen = now;
    ss->user_checked = now;     /* the ACS has just found the user */
    if (ss->expires == 0 || ss->expires > now + sc->session_max_age) {
        ss->expires = now + sc->session_max_age;
    }
    if (session_store(r, ss) != APR_SUCCESS) {
        /* the cache is down or full (BTSSO0301): a moment later it may
         * take it, or another server of it may */
        return btsso_error_make(r->pool, 503, "session_store",
                                "The sign-in service is temporarily "
                                "unavailable; try again in a moment.",
                                "session cache '%s' refused the session",
                                sc->session_cache);
    }
    /* A session the IdP cannot name cannot be ended by it: no index. */
    if (ss->name_id != NULL && ss->idp != NULL) {
        name_index_add(r, ss);
    }
    /* A session cookie (no Max-Age): the server side bounds its life. */
    set_cookie(r, ss->token, -1);
    return NULL;
}

/* Whether two emails are the same as BTSSOUserQuery compares them
 * (lower(trim())); rev is already lowercased and trimmed. */
static int email_is(const char *rev, const char *email)
{
    apr_size_t n;

    while (*email == ' ') {
        email++;
    }
    n = strlen(email);
    while (n > 0 && email[n - 1] == ' ') {
        n--;
    }
    return strlen(rev) == n && strncasecmp(rev, email, n) == 0;
}

/*
 * Whether the session still follows its account: 1 yes, 0 it ended
 * (*why set), -1 cannot be told now (logged).  *dirty: the session
 * record changed and must be written back.
 */
static int session_follows(request_rec *r, btsso_session_t *ss,
                           apr_time_t now, const char **why, int *dirty)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const btsso_acct_entry *e = NULL;
    btsso_error_t *err;
    btsso_store_t *st;
    btsso_user_t *user = NULL;
    int i, n;

    err = btsso_acct_get(r, ss->account, &e);
    if (err != NULL && err->status == 404) {
        *why = "the account no longer exists";
        return 0;
    }
    if (err != NULL) {
        btsso_log_error(r, APLOG_ERR, "BTSSO0330", ss->account, err);
        return -1;
    }
    if (!e->account->sso_enabled) {
        *why = "SSO was disabled for the account";
        return 0;
    }
    if (e->idp == NULL || strcmp(e->idp->entity_id, ss->idp) != 0) {
        *why = "the account's IdP was replaced";
        return 0;
    }
    if (ss->epoch < e->account->sessions_epoch) {
        *why = "the account's sessions were revoked";
        return 0;
    }
    /* The policy's session cap, lowered since the session was made: it
     * ends earlier, and says so (BTSSO_SESSION_EXPIRES, /sso/session). */
    if (e->policy->session_max_age > 0
        && ss->created + e->policy->session_max_age < ss->expires) {
        ss->expires = ss->created + e->policy->session_max_age;
        *dirty = 1;
        if (now >= ss->expires) {
            *why = "the account's session cap (policy) is exceeded";
            return 0;
        }
    }
    n = e->revocations->nelts;
    for (i = 0; i < n; i++) {
        const btsso_revocation_t *v = &APR_ARRAY_IDX(e->revocations, i,
                                                     btsso_revocation_t);
        if (email_is(v->email, ss->email)) {
            if (v->seq > ss->revoke_seq) {
                *why = "the user's sessions were revoked";
                return 0;
            }
            break;
        }
    }
    if (i == n && e->revocations_truncated
        && (n == 0 || ss->revoke_seq
                      < APR_ARRAY_IDX(e->revocations, n - 1,
                                      btsso_revocation_t).seq)) {
        /* More revocations than the entry keeps, and this session is
         * older than the ones it kept: ask the store, once; the answer
         * holds up to the account's current number. */
        apr_int64_t seq = 0;

        st = btsso_request_store(r);
        err = st == NULL ? btsso_error_make(r->pool, 503,
                                            "store_unavailable", "-", NULL)
                         : btsso_store_session_revoked(st, r->pool,
                                                       ss->account,
                                                       ss->email, &seq);
        if (err != NULL) {
            btsso_log_error(r, APLOG_ERR, "BTSSO0330", ss->account, err);
            return -1;
        }
        if (seq > ss->revoke_seq) {
            *why = "the user's sessions were revoked";
            return 0;
        }
        if (e->account->revoke_seq > ss->revoke_seq) {
            ss->revoke_seq = e->account->revoke_seq;
            *dirty = 1;
        }
    }
    if (now - ss->user_checked >= sc->user_recheck) {
        st = btsso_request_store(r);
        err = st == NULL ? btsso_error_make(r->pool, 503,
                                            "store_unavailable", "-", NULL)
                         : btsso_store_user_by_email(st, r->pool,
                                                     ss->account, ss->email,
                                                     &user);
        if (err != NULL) {
            btsso_log_error(r, APLOG_ERR, "BTSSO0330", ss->account, err);
            return -1;
        }
        if (user == NULL) {
            *why = "BTSSOUserQuery no longer finds the user in the account";
            return 0;
        }
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "BTSSO0332: account %s: user %s looked up again "
                      "(BTSSOUserRecheck)", ss->account,
                      ap_escape_logitem(r->pool, ss->email));
        ss->user_checked = now;
        *dirty = 1;
    }
    return 1;
}

/*
 * The session the record rec decodes to, a copy of its own in r->pool;
 * NULL when it does not decode.  The same octets as the connection's last
 * record for this cookie give a copy of that decoding (the same octets
 * decode the same: everything checked of a session is checked again on the
 * copy); other octets are decoded, and kept for the next request when the
 * connection may keep one more.
 */
static btsso_session_t *session_from_memo(request_rec *r, const char *sp,
                                          const char *token,
                                          const unsigned char *rec,
                                          apr_size_t len)
{
    key_memo *m = conn_memo(r);
    btsso_session_t *ss, *copy;
    apr_pool_t *p;

    if (m != NULL && m->ss != NULL && m->sp == sp
        && m->rec_len == len && strcmp(m->token, token) == 0
        && memcmp(m->rec, rec, len) == 0) {
        copy = apr_pmemdup(r->pool, m->ss, sizeof(*copy));
        return copy;
    }
    if (m == NULL || m->sp != sp || strcmp(m->token, token) != 0
        || len > MEMO_RECORD_MAX || m->fills >= MEMO_FILLS) {
        ss = session_from_record(r->pool, rec, len);
        if (ss != NULL) {
            ss->exports = apr_pcalloc(r->pool, sizeof(*ss->exports));
            ss->exports->pool = r->pool;
            ss->exports->controls = -1;
        }
        return ss;
    }
    p = r->connection->pool;
    m->ss = NULL;
    m->fills++;
    ss = session_from_record(p, rec, len);
    if (ss == NULL) {
        return NULL;
    }
    ss->exports = apr_pcalloc(p, sizeof(*ss->exports));
    ss->exports->pool = p;
    ss->exports->controls = -1;
    m->rec = apr_pmemdup(p, rec, len);
    m->rec_len = len;
    m->ss = ss;
    copy = apr_pmemdup(r->pool, ss, sizeof(*copy));
    return copy;
}

btsso_session_t *btsso_session_get(request_rec *r)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *token;
    const unsigned char *rec;
    apr_size_t len = 0;
    btsso_session_t *ss;
    apr_time_t now;
    const char *sp, *why = NULL;
    int follows, dirty = 0;

    ss = ap_get_module_config(r->request_config, &btsso_module);
    if (ss != NULL) {
        return ss;
    }
    token = session_cookie(r);
    if (token == NULL) {
        return NULL;
    }
    rec = cache_get(r, session_key(r, token), BTSSO_SESSION_RECORD_MAX,
                    &len);
    if (rec == NULL) {
        return NULL;
    }
    sp = sp_of(r);
    ss = session_from_memo(r, sp, token, rec, len);
    if (ss == NULL) {
        /* an old module's JSON record, or one altered in the cache: no
         * session, and gone, so that this is said once */
        cache_del(r, session_key(r, token));
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BTSSO0344: a session record in '%s' is not one this "
                      "version reads (%s, %" APR_SIZE_T_FMT " octets): "
                      "treated as no session and removed",
                      sc->session_cache,
                      len > 0 && rec[0] == '{' ? "an older version's JSON"
                                               : "malformed", len);
        return NULL;
    }
    ss->token = token;
    /* The key names the SP already; the record says it again, so that a
     * cache shared with another SP cannot hand us its session. */
    if (ss->sp_id == NULL || strcmp(ss->sp_id, sp) != 0) {
        return NULL;
    }
    now = apr_time_now();
    if (now >= ss->expires || now >= ss->last_seen + sc->session_idle_timeout) {
        cache_del(r, session_key(r, token));
        return NULL;
    }
    follows = session_follows(r, ss, now, &why, &dirty);
    if (follows < 0) {
        /* cannot be told (the store is down): refused, but not ended;
         * enforcement answers 503 rather than sending the person to sign
         * in again, which needs the store too */
        apr_table_setn(r->notes, BTSSO_NOTE_UNVERIFIED, "1");
        return NULL;
    }
    if (follows == 0) {
        /* Ended for good: a later change (SSO enabled again, the user
         * back) revives nothing. */
        cache_del(r, session_key(r, token));
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BTSSO0331: account %s: session of %s ended: %s",
                      ss->account, ap_escape_logitem(r->pool, ss->email),
                      why);
        return NULL;
    }
    /* Refresh the idle clock at most once a minute: one cache write per
     * minute per user, not one per request. */
    if (now - ss->last_seen > apr_time_from_sec(60)) {
        ss->last_seen = now;
        dirty = 1;
    }
    if (dirty) {
        session_store(r, ss);
    }
    ap_set_module_config(r->request_config, &btsso_module, ss);
    return ss;
}

void btsso_session_destroy(request_rec *r)
{
    const char *token = session_cookie(r);

    if (token != NULL) {
        cache_del(r, session_key(r, token));
    }
    ap_set_module_config(r->request_config, &btsso_module, NULL);
    set_cookie(r, "", 0);
}

/* ---- pending LogoutRequests ------------------------------------------------------- */

/*
 * Only LogoutRequests are pending here: /logout makes one for a signed-in
 * user (and ends the session first), so their number is bounded by the
 * sessions.  Pending AuthnRequests -- which anyone can start -- live in
 * the browser (pending.c).
 */
#define PENDING_LIFETIME apr_time_from_sec(600)

static const char *logout_key(request_rec *r, const char *relay)
{
    return hashed_key(r->pool, 'l', apr_pstrcat(r->pool, sp_of(r), "\n",
                                                relay, NULL));
}

const char *btsso_logout_pending_put(request_rec *r,
                                     const btsso_pending_t *pd)
{
    const char *relay = btsso_random_token(r->pool, 16);
    json_t *o;
    char *text;
    apr_status_t rv;

    if (relay == NULL) {
        return NULL;
    }
    o = json_pack("{s:s, s:s, s:s?}", "id", pd->request_id,
                  "account", pd->account, "return", pd->return_to);
    if (o == NULL) {
        return NULL;
    }
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL) {
        return NULL;
    }
    rv = cache_put(r, logout_key(r, relay), text,
                   apr_time_now() + PENDING_LIFETIME);
    free(text);
    return rv == APR_SUCCESS ? relay : NULL;
}

btsso_pending_t *btsso_logout_pending_take(request_rec *r, const char *relay)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    unsigned char *buf = apr_palloc(r->pool, MAX_VALUE + 1);
    unsigned int len = MAX_VALUE;
    const char *key, *norm = NULL;
    json_error_t jerr;
    json_t *o;
    btsso_pending_t *pd;
    unsigned char k[KEY_BYTES];
    apr_status_t rv;

    if (relay == NULL || strlen(relay) != 32
        || strspn(relay, "0123456789abcdef") != 32) {
        return NULL;
    }
    key = logout_key(r, relay);
    /* Read and remove under one lock: a pending request is usable once. */
    cache_lock(sc);
    raw_key(key, k);
    rv = sc->socache_provider->retrieve(shard_of(sc, k), r->server, k,
                                        KEY_BYTES, buf, &len, r->pool);
    if (rv == APR_SUCCESS) {
        sc->socache_provider->remove(shard_of(sc, k), r->server, k,
                                     KEY_BYTES, r->pool);
    }
    cache_unlock(sc);
    if (rv != APR_SUCCESS) {
        return NULL;
    }
    buf[len] = '\0';
    o = json_loads((const char *)buf, 0, &jerr);
    if (o == NULL) {
        return NULL;
    }
    pd = apr_pcalloc(r->pool, sizeof(*pd));
    pd->request_id = jstr(o, "id", r->pool);
    pd->account = jstr(o, "account", r->pool);
    pd->return_to = jstr(o, "return", r->pool);
    json_decref(o);
    if (pd->request_id == NULL || pd->account == NULL) {
        return NULL;
    }
    /* checked when stored, and again now that it is used */
    if (pd->return_to != NULL
        && !btsso_url_is_safe_return(r->pool, pd->return_to, sc->base_url,
                                     &norm)) {
        pd->return_to = NULL;
    }
    else if (pd->return_to != NULL) {
        pd->return_to = norm;
    }
    return pd;
}

/* ---- replay cache -------------------------------------------------------------------- */

/*
 * Replay marks live where the NameID indexes do (the session cache, which
 * every node shares; on shmcb the index shmcb beside it), and also in a
 * shmcb of this machine's own that holds nothing else.  A cache that is
 * full evicts its oldest entries: in the session cache those were sessions
 * and the replay marks written beside them, so enough logins would let a
 * used assertion, still valid, in again.  Here only marks compete, each a
 * few dozen bytes for NotOnOrAfter plus the skew: 4 MiB hold tens of
 * thousands of logins within their validity.  An assertion is
 * a replay when either cache has seen it.
 */
#define REPLAY_SHMCB_SIZE 4194304
#define REPLAY_CACHE_KEY "btsso-replay-cache"

/* The replay cache's lock, unless the session cache's (the same mutex) is
 * held already. */
static void replay_lock(btsso_srv_cfg *sc)
{
    if (sc->rt->cache_mutex == NULL && sc->rt->replay_mutex != NULL) {
        btsso_cache_lock_take(sc->rt->replay_mutex, sc->rt->s);
    }
}

static void replay_unlock(btsso_srv_cfg *sc)
{
    if (sc->rt->cache_mutex == NULL && sc->rt->replay_mutex != NULL) {
        btsso_cache_lock_give(sc->rt->replay_mutex, sc->rt->s);
    }
}

const char *btsso_replay_cache_setup(server_rec *s, btsso_srv_cfg *sc,
                                     apr_pool_t *pconf, apr_pool_t *ptemp)
{
    apr_pool_t *pp = s->process->pool;
    struct ap_socache_hints hints = { 32, 1, apr_time_from_sec(600) };
    shared_cache *c = NULL;
    void *seen = NULL;
    const char *err;
    apr_status_t rv;

    sc->rt->replay_provider = NULL;
    sc->rt->replay_instance = NULL;
    apr_pool_userdata_get((void **)&c, REPLAY_CACHE_KEY, pp);
    if (c == NULL) {
        c = apr_pcalloc(pp, sizeof(*c));
        apr_pool_userdata_set(c, REPLAY_CACHE_KEY, apr_pool_cleanup_null, pp);
    }
    c->provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, "shmcb",
                                     AP_SOCACHE_PROVIDER_VERSION);
    if (c->provider == NULL) {
        return NULL;    /* the session cache's marks alone */
    }
    if (c->instance == NULL) {
        err = c->provider->create(&c->instance, apr_psprintf(ptemp, "%s(%d)",
            ap_runtime_dir_relative(ptemp, "btsso-replay"),
            REPLAY_SHMCB_SIZE), ptemp, pp);
        if (err != NULL) {
            c->instance = NULL;
            return apr_pstrcat(ptemp, "replay cache: ", err, NULL);
        }
        rv = c->provider->init(c->instance, "btsso-replay", &hints, s, pp);
        if (rv != APR_SUCCESS) {
            c->instance = NULL;
            return apr_psprintf(ptemp, "cannot initialise the replay cache "
                                "(%pm)", &rv);
        }
    }
    if (apr_pool_userdata_get(&seen, REPLAY_CACHE_KEY, pconf) == APR_SUCCESS
        && seen == NULL) {
        apr_pool_userdata_set("", REPLAY_CACHE_KEY, apr_pool_cleanup_null,
                              pconf);
        apr_pool_cleanup_register(pconf, c, destroy_cache_on_exit,
                                  apr_pool_cleanup_null);
    }
    sc->rt->replay_provider = c->provider;
    sc->rt->replay_instance = c->instance;
    return NULL;
}

int btsso_replay_check_and_mark(request_rec *r, const char *issuer,
                                const char *assertion_id, apr_time_t until)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    const char *key = hashed_key(r->pool, 'a',
                                 apr_pstrcat(r->pool, issuer, "\n",
                                             assertion_id, NULL));
    unsigned char buf[8];
    unsigned int len = sizeof(buf);
    apr_status_t rv;
    int seen;

    /* Remember it for as long as it could be accepted, plus the skew. */
    until += sc->clock_skew;
    cache_lock(sc);
    rv = sc->rt->index_provider->retrieve(
        sc->rt->index_instance, r->server,
        raw_key(key, (unsigned char[KEY_BYTES]){0}), KEY_BYTES, buf, &len,
        r->pool);
    seen = (rv == APR_SUCCESS);
    if (!seen && sc->rt->replay_provider != NULL) {
        unsigned int llen = sizeof(buf);

        replay_lock(sc);
        seen = sc->rt->replay_provider->retrieve(
            sc->rt->replay_instance, r->server,
            raw_key(key, (unsigned char[KEY_BYTES]){0}), KEY_BYTES, buf,
            &llen, r->pool) == APR_SUCCESS;
        replay_unlock(sc);
    }
    /* A cache that cannot say whether it saw the ID cannot vouch for it:
     * only "not found" is a first sighting. */
    if (!seen && APR_STATUS_IS_NOTFOUND(rv)) {
        rv = sc->rt->index_provider->store(
            sc->rt->index_instance, r->server,
            raw_key(key, (unsigned char[KEY_BYTES]){0}), KEY_BYTES, until,
            (unsigned char *)"1", 1, r->pool);
        if (rv == APR_SUCCESS && sc->rt->replay_provider != NULL) {
            apr_status_t lrv;

            replay_lock(sc);
            lrv = sc->rt->replay_provider->store(
                sc->rt->replay_instance, r->server,
                raw_key(key, (unsigned char[KEY_BYTES]){0}), KEY_BYTES,
                until, (unsigned char *)"1", 1, r->pool);
            replay_unlock(sc);
            if (lrv != APR_SUCCESS) {
                ap_log_rerror(APLOG_MARK, APLOG_DEBUG, lrv, r,
                              "BTSSO0350: assertion %s: not kept in the "
                              "local replay cache (the session cache has "
                              "it)", assertion_id);
            }
        }
    }
    cache_unlock(sc);
    if (seen) {
        return 1;
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r,
                      "BTSSO0303: cannot record assertion %s in the replay "
                      "cache; refusing it rather than risk a replay",
                      assertion_id);
        return -1;
    }
    return 0;
}
