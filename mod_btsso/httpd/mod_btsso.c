/*
 * mod_btsso.c - module record, hooks, start-up.
 *
 * The glue stays thin: it reads configuration, owns process-wide state
 * (SP keys, session cache, account cache) and hands requests to one
 * handler file per endpoint.  SAML, metadata, certificates and the store
 * are the core library's business.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_provider.h>
#include <ap_socache.h>
#include <util_mutex.h>
#include <apr_dbd.h>
#include <mod_dbd.h>
#include <apr_optional.h>
#include <apr_strings.h>

#include "btsso_glue.h"
#include "core/addressing.h"
#include "core/plock.h"
#include "saml/metadata.h"
#include "btsso_session.h"
#include "btsso_attrs.h"
#include "btsso_acct.h"
#include "fetch/fetch.h"
#include "btsso_refresh.h"

#define BTSSO_MUTEX_TYPE "btsso-session"

/* ---- start-up ------------------------------------------------------------ */

static int btsso_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                            apr_pool_t *ptemp)
{
    /* A process-shared pthread mutex where APR has one: no system call
     * unless contended, where a file lock takes two per cache access (a
     * tenth of a protected request under load); the module then makes it
     * itself (cache_lock_create).  "Mutex ... default" (as Debian's
     * apache2.conf sets) overrides this; conf/btsso.conf names the type
     * itself so that it does not. */
#if APR_HAS_PROC_PTHREAD_SERIALIZE
    apr_status_t rv = ap_mutex_register(pconf, BTSSO_MUTEX_TYPE, NULL,
                                        APR_LOCK_PROC_PTHREAD, 0);
#else
    apr_status_t rv = ap_mutex_register(pconf, BTSSO_MUTEX_TYPE, NULL,
                                        APR_LOCK_DEFAULT, 0);
#endif

    if (rv != APR_SUCCESS) {
        ap_log_perror(APLOG_MARK, APLOG_CRIT, rv, plog,
                      "BTSSO0001: failed to register the %s mutex",
                      BTSSO_MUTEX_TYPE);
        return 500;
    }
    btsso_xml_init();
    return OK;
}

static const char *sql_for_label(const btsso_srv_cfg *sc, const char *label,
                                 const char *dflt)
{
    if (!strcmp(label, BTSSO_Q_USER)) {
        return sc->user_query;
    }
    if (!strcmp(label, BTSSO_Q_DUPLICATES)) {
        return sc->duplicate_email_query;
    }
    if (!strcmp(label, BTSSO_Q_ADMIN)) {
        return sc->admin_query;
    }
    if (!strcmp(label, BTSSO_Q_ACCOUNT_BY_EMAIL)) {
        return sc->account_by_email_query;
    }
    return dflt;
}

/*
 * Runs before mod_dbd's post_config, which hands each server the
 * statements registered with ap_dbd_prepare(): every connection of the
 * pool is then created with our statements already prepared.  Not on
 * SQLite (btsso_store_prepares): there mod_dbd would prepare before any
 * busy timeout is set, and a connection opened while another holds a lock
 * (a graceful restart's last old connection checkpointing the WAL, a
 * btssoctl write) fails at once with AH00632 "database is locked".
 */
static int btsso_prepare_sql(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp, server_rec *base)
{
    server_rec *s;
    const btsso_stmt_def_t *d;

    btsso_dbd_prepare = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_prepare);
    btsso_dbd_acquire = APR_RETRIEVE_OPTIONAL_FN(ap_dbd_acquire);
    if (btsso_dbd_prepare == NULL || btsso_dbd_acquire == NULL) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, base,
                     "BTSSO0002: mod_dbd is not loaded: load it before "
                     "mod_btsso (LoadModule dbd_module ...)");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (s = base; s != NULL; s = s->next) {
        btsso_srv_cfg *sc = btsso_srv(s);

        if (btsso_store_prepares(sc->dbd_driver)) {
            continue;           /* SQLite: btsso_store_wrap prepares */
        }
        for (d = btsso_store_statements(); d->label != NULL; d++) {
            const char *sql = sql_for_label(sc, d->label, d->sql);
            /* the shipped text in DBDriver's dialect; an operator's own
             * BTSSO*Query is their dialect already */
            if (sql == d->sql) {
                sql = btsso_store_stmt_sql(pconf, sc->dbd_driver, d);
            }
            btsso_dbd_prepare(s, sql, d->label);
        }
    }
    return OK;
}

static btsso_error_t *load_key_pair(apr_pool_t *p, const char *cert_file,
                                    const char *key_file,
                                    btsso_spkey_t **signing,
                                    btsso_sp_key_t **decrypting)
{
    btsso_error_t *e;
    char *pem;
    apr_size_t len;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;

    e = btsso_spkey_load(p, key_file, cert_file, signing);
    if (e != NULL) {
        return e;
    }
    rv = apr_file_open(&f, key_file, APR_READ, 0, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    }
    if (rv != APR_SUCCESS || fi.size > 1024 * 1024) {
        return btsso_error_make(p, 500, "key_unreadable",
                                "The SP private key cannot be read.",
                                "%s", key_file);
    }
    len = (apr_size_t)fi.size;
    pem = apr_palloc(p, len + 1);
    rv = apr_file_read_full(f, pem, len, &len);
    apr_file_close(f);
    if (rv != APR_SUCCESS) {
        return btsso_error_make(p, 500, "key_unreadable",
                                "The SP private key cannot be read.",
                                "%s", key_file);
    }
    pem[len] = '\0';
    e = btsso_sp_key_load(p, pem, len, decrypting);
    memset(pem, 0, len);
    return e;
}

static apr_status_t xmlsec_cleanup(void *unused)
{
    btsso_xmlsec_shutdown();
    return APR_SUCCESS;
}

/*
 * check_config runs before `apachectl configtest` reports "Syntax OK", so
 * everything that can be wrong with the configuration is found here:
 * missing settings, unusable SP keys.
 */
static int btsso_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *base)
{
    server_rec *s;
    btsso_error_t *e;
    const char *err;

    e = btsso_xmlsec_init(pconf);
    if (e != NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, base,
                     "BTSSO0004: %s", btsso_error_line(ptemp, e));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, NULL, xmlsec_cleanup,
                              apr_pool_cleanup_null);

    for (s = base; s != NULL; s = s->next) {
        btsso_srv_cfg *sc = btsso_srv(s);
        btsso_runtime *rt = apr_pcalloc(pconf, sizeof(*rt));

        err = btsso_config_resolve(pconf, s, sc);
        if (err != NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                         "BTSSO0003: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        rt->s = s;
        rt->dec_keys = apr_array_make(pconf, 2, sizeof(btsso_sp_key_t *));
        sc->rt = rt;
        if (sc->sp_key_file != NULL) {
            btsso_sp_key_t *dk = NULL;

            e = load_key_pair(pconf, sc->sp_cert_file, sc->sp_key_file,
                              &rt->spkey, &dk);
            if (e != NULL) {
                ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                             "BTSSO0005: BTSSOSPCertificate/BTSSOSPPrivateKey:"
                             " %s", btsso_error_line(ptemp, e));
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            APR_ARRAY_PUSH(rt->dec_keys, btsso_sp_key_t *) = dk;
        }
        if (sc->sp_next_key_file != NULL) {
            btsso_sp_key_t *dk = NULL;

            e = load_key_pair(pconf, sc->sp_next_cert_file,
                              sc->sp_next_key_file, &rt->spkey_next, &dk);
            if (e != NULL) {
                ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                             "BTSSO0006: BTSSOSPNextCertificate/"
                             "BTSSOSPNextPrivateKey: %s",
                             btsso_error_line(ptemp, e));
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            APR_ARRAY_PUSH(rt->dec_keys, btsso_sp_key_t *) = dk;
        }
    }
    return OK;
}

/*
 * The session cache's lock, in the process pool: the mechanism httpd's
 * Mutex directive gives btsso-session, except that a pthread mutex is the
 * module's own (core/plock.h), without the priority inheritance APR gives
 * its own.
 */
static apr_status_t cache_lock_create(server_rec *base,
                                      btsso_cache_lock **out)
{
    apr_pool_t *pp = base->process->pool;
    btsso_cache_lock *l = apr_pcalloc(pp, sizeof(*l));
    apr_status_t rv;

    *out = NULL;
    rv = ap_global_mutex_create(&l->apr, NULL, BTSSO_MUTEX_TYPE, NULL, base,
                                pp, 0);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (apr_global_mutex_mech(l->apr) == APR_LOCK_PROC_PTHREAD) {
        rv = btsso_plock_create(&l->own, pp);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        apr_global_mutex_destroy(l->apr);
        l->apr = NULL;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, base,
                 "BTSSO0016: session cache lock: %s",
                 l->own != NULL ? "pthread (robust, without priority "
                                  "inheritance)"
                                : apr_global_mutex_name(l->apr));
    *out = l;
    return APR_SUCCESS;
}

static int btsso_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp, server_rec *base)
{
    server_rec *s;
    apr_status_t rv;
    btsso_cache_lock *lock = NULL;
    int need_mutex = 0, need_replay_mutex = 0;
    const char *err;

    for (s = base; s != NULL; s = s->next) {
        btsso_srv_cfg *sc = btsso_srv(s);

        err = btsso_session_cache_setup(s, sc, pconf, ptemp);
        if (err != NULL) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "BTSSO0007: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (sc->socache_provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE) {
            need_mutex = 1;
        }
        err = btsso_replay_cache_setup(s, sc, pconf, ptemp);
        if (err != NULL) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, "BTSSO0007: %s", err);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        if (sc->rt->replay_provider != NULL
            && (sc->rt->replay_provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE)) {
            need_replay_mutex = 1;
        }
        sc->rt->accounts = btsso_acct_cache_create(
            pconf, sc->config_ttl, (apr_size_t)sc->account_cache_size);
    }

    if (need_mutex || need_replay_mutex) {
        /* Like the cache it guards, the lock outlives graceful restarts:
         * children of the old and the new generation must share it.  (A
         * key of its own: a module before 2026-12 kept an APR mutex under
         * "btsso-cache-mutex", which a graceful restart into this one
         * must not take for a btsso_cache_lock.) */
        apr_pool_userdata_get((void **)&lock, "btsso-cache-lock",
                              base->process->pool);
        if (lock == NULL) {
            rv = cache_lock_create(base, &lock);
            if (rv != APR_SUCCESS) {
                ap_log_error(APLOG_MARK, APLOG_CRIT, rv, base,
                             "BTSSO0009: cannot create the session cache "
                             "mutex");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
            apr_pool_userdata_set(lock, "btsso-cache-lock",
                                  apr_pool_cleanup_null, base->process->pool);
        }
    }

    for (s = base; s != NULL; s = s->next) {
        btsso_srv(s)->rt->cache_mutex = need_mutex ? lock : NULL;
        btsso_srv(s)->rt->replay_mutex = need_replay_mutex ? lock : NULL;
    }
    /* the pending sign-in cookie key and every server's SP identity */
    if (btsso_pending_init(pconf, base) != OK) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* metadata by URL (admin API): curl's global set-up is not
     * thread-safe, so it happens here, before any child runs */
    {
        btsso_error_t *fe = btsso_fetch_global_init(pconf);
        if (fe != NULL) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, base, "BTSSO0013: %s",
                         btsso_error_line(ptemp, fe));
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, base,
                 "BTSSO0011: ready, SP entityID %s", btsso_srv(base)->sp_entity_id);
    return OK;
}

static void btsso_child_init(apr_pool_t *p, server_rec *base)
{
    btsso_srv_cfg *sc = btsso_srv(base);
    btsso_cache_lock *lock;
    apr_global_mutex_t *mutex;
    apr_status_t rv;

    if (sc->rt == NULL
        || (sc->rt->cache_mutex == NULL && sc->rt->replay_mutex == NULL)) {
        return;
    }
    /* One lock serves every virtual host.  The module's own needs nothing
     * in a child; an APR mutex is attached to once, and every server
     * shares the one btsso_cache_lock, which holds the child's handle. */
    lock = sc->rt->cache_mutex != NULL ? sc->rt->cache_mutex
                                       : sc->rt->replay_mutex;
    if (lock->own != NULL) {
        return;
    }
    mutex = lock->apr;
    rv = apr_global_mutex_child_init(&mutex,
                                     apr_global_mutex_lockfile(mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, base,
                     "BTSSO0012: cannot attach to the session cache mutex");
        return;
    }
    lock->apr = mutex;
}

/*
 * X-BTSSO-* request headers are only ever ours (BTSSOSetHeaders): a copy
 * sent by a client is removed from every request, whatever location it is
 * for, so nothing downstream can be fooled by one.
 */
static int btsso_strip_headers(request_rec *r)
{
    btsso_strip_spoofed_headers(r);
    return DECLINED;
}

/* ---- SP endpoints ------------------------------------------------------------ */

/*
 * URIs under BTSSOSPPath are the module's: mark them, keep them off the
 * file system (no Directory walk, no file mapping).
 */
static int btsso_translate(request_rec *r)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    apr_size_t n;

    if (sc->sp_path == NULL || r->uri == NULL || r->uri[0] != '/') {
        return DECLINED;
    }
    n = strlen(sc->sp_path);
    if (strncmp(r->uri, sc->sp_path, n) != 0
        || (r->uri[n] != '/' && r->uri[n] != '\0')) {
        return DECLINED;
    }
    apr_table_setn(r->notes, BTSSO_NOTE_SP, r->uri + n);
    r->handler = BTSSO_SP_HANDLER;
    r->filename = apr_pstrcat(r->pool, BTSSO_SP_HANDLER ":", r->uri, NULL);
    return OK;
}

static int btsso_map_to_storage(request_rec *r)
{
    if (apr_table_get(r->notes, BTSSO_NOTE_SP) != NULL) {
        return OK;
    }
    return DECLINED;
}

static int btsso_sp_handler(request_rec *r)
{
    const char *rest = apr_table_get(r->notes, BTSSO_NOTE_SP);

    if (rest == NULL) {
        return DECLINED;
    }
    return btsso_sp_dispatch(r, rest);
}

/* ---- module record ---------------------------------------------------------- */

static void btsso_register_hooks(apr_pool_t *p)
{
    /* Our statements must be registered before mod_dbd's post_config. */
    static const char *const before_dbd[] = { "mod_dbd.c", NULL };

    ap_hook_pre_config(btsso_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(btsso_prepare_sql, NULL, before_dbd,
                        APR_HOOK_MIDDLE);
    ap_hook_check_config(btsso_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(btsso_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(btsso_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_read_request(btsso_strip_headers, NULL, NULL,
                              APR_HOOK_REALLY_FIRST);
    ap_hook_translate_name(btsso_translate, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(btsso_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(btsso_sp_handler, NULL, NULL, APR_HOOK_FIRST);
    btsso_register_auth_hooks(p);
    btsso_register_attr_hooks(p);     /* Require btsso-attr, btsso-account */
    btsso_register_admin_hooks(p);
    btsso_register_refresh_hooks(p);
    btsso_register_signin_hooks(p);
}

AP_DECLARE_MODULE(btsso) = {
    STANDARD20_MODULE_STUFF,
    btsso_create_dir_cfg,
    btsso_merge_dir_cfg,
    btsso_create_srv_cfg,
    btsso_merge_srv_cfg,
    btsso_cmds,
    btsso_register_hooks,
    AP_MODULE_FLAG_NONE
};
