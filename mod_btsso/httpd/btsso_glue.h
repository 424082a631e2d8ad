/*
 * btsso_glue.h - what the httpd glue files share: the per-server runtime
 * built at post_config, log tags, and small request helpers.
 *
 * Log messages carry a stable tag "BTSSOnnnn" (tests assert on tags):
 *   00xx start-up and configuration     01xx store and account cache
 *   02xx SP endpoints (login, ACS)      03xx sessions and enforcement
 *   04xx admin API                      05xx logout
 *   06xx metadata refresh
 * (0250-0259 and 0140-0144: sign-in records, signin_record.c)
 */
#ifndef BTSSO_GLUE_H
#define BTSSO_GLUE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_dbd.h>
#include <mod_dbd.h>
#include <apr_thread_mutex.h>
#include <ap_socache.h>
#include <jansson.h>

#include "btsso_config.h"
#include "core/btsso_error.h"
#include "store/store.h"
#include "saml/xmlsec_glue.h"

extern module AP_MODULE_DECLARE_DATA btsso_module;

#define BTSSO_SP_HANDLER    "btsso-sp"
#define BTSSO_ADMIN_HANDLER "btsso-admin"
#define BTSSO_NOTE_SP       "btsso-sp-endpoint"
/* set by btsso_session_get: a session came but could not be checked now */
#define BTSSO_NOTE_UNVERIFIED "btsso-session-unverified"

#define BTSSO_SESSION_SHARDS_MAX 16

/*
 * The session cache's lock (made by mod_btsso.c at post_config, taken by
 * session.c): the mechanism httpd's Mutex directive gives btsso-session,
 * except that where that is a pthread mutex the module makes its own
 * (core/plock.h: APR's has priority inheritance, which made protected
 * requests convoy on it).
 */
typedef struct btsso_cache_lock {
    apr_global_mutex_t *apr;        /* NULL when own is used */
    struct btsso_plock_t *own;
} btsso_cache_lock;

void btsso_cache_lock_take(btsso_cache_lock *l, server_rec *s);
void btsso_cache_lock_give(btsso_cache_lock *l, server_rec *s);

typedef struct btsso_runtime {
    server_rec *s;
    btsso_spkey_t *spkey;            /* NULL without BTSSOSPPrivateKey */
    btsso_spkey_t *spkey_next;
    apr_array_header_t *dec_keys;    /* btsso_sp_key_t *, current then next */
    btsso_cache_lock *cache_mutex;   /* socache lock, when not MP-safe */
    btsso_cache_lock *replay_mutex;  /* the same, for the replay cache */
    /* replay marks also kept apart, where sessions cannot evict them
     * (session.c); NULL without mod_socache_shmcb */
    const ap_socache_provider_t *replay_provider;
    ap_socache_instance_t *replay_instance;
    /* NameID indexes and replay marks: the session cache, or on shmcb a
     * second shmcb beside it (session.c); under cache_mutex */
    const ap_socache_provider_t *index_provider;
    ap_socache_instance_t *index_instance;
    /* the sessions: one instance, or on shmcb up to
     * BTSSO_SESSION_SHARDS_MAX, a key's second octet picking one
     * (session.c); under cache_mutex */
    int session_shards;
    ap_socache_instance_t *session_shard[BTSSO_SESSION_SHARDS_MAX];
    struct btsso_acct_cache *accounts;  /* btsso_acct.h */
} btsso_runtime;

static APR_INLINE btsso_srv_cfg *btsso_srv(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &btsso_module);
}

static APR_INLINE btsso_dir_cfg *btsso_dir(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &btsso_module);
}

/* mod_dbd's functions, retrieved at post_config. */
extern ap_dbd_t *(*btsso_dbd_acquire)(request_rec *);
extern void (*btsso_dbd_prepare)(server_rec *, const char *, const char *);

/* A store on the request's pooled connection, or NULL (logged). */
btsso_store_t *btsso_request_store(request_rec *r);

/* Log a core error with its tag, account and detail. */
void btsso_log_error(request_rec *r, int level, const char *tag,
                     const char *account, const btsso_error_t *e);

/* Write body (reference taken) as the JSON response with status. */
int btsso_send_json(request_rec *r, int status, json_t *body);

/* Write a JSON error document {"error","message"} with e->status. */
int btsso_send_json_error(request_rec *r, const btsso_error_t *e);

/* An HTML page for people: title, a paragraph (escaped here), status. */
int btsso_send_page(request_rec *r, int status, const char *title,
                    const char *text, const char *link_href,
                    const char *link_text);

/* A sign-in failure page for people: e->message, a fitting status. */
int btsso_send_error_page(request_rec *r, const btsso_error_t *e);

/* ---- sign-in records (signin_record.c) ----
 * Every refusal of a sign-in goes through btsso_signin_refused(): it makes
 * the request's reference code (which btsso_send_page() then shows), logs
 * the tagged line with it, and records the refusal in the account's
 * sign-ins (rate-limited, see signin_record.c) when the account is known
 * to exist: flags BTSSO_SIGNIN_RECORD, or a btsso_signin_note() naming the
 * same account.  Returns the code. */
#define BTSSO_SIGNIN_RECORD 1   /* the account exists: record the refusal */
#define BTSSO_SIGNIN_TEST 2     /* a /test sign-in */
const char *btsso_signin_refused(request_rec *r, int level, const char *tag,
                                 const char *what, const char *account,
                                 const char *idp, const btsso_error_t *err,
                                 int flags);
/* What is known of the sign-in this request handles, for its record:
 * the (existing) account, the email and NameID when known, verified when
 * the IdP's signature verified.  NULL arguments keep what was noted. */
void btsso_signin_note(request_rec *r, const char *account,
                       const char *email, const char *name_id, int verified);
/* A login succeeded: counted in this process, written at most once per
 * BTSSOConfigTTL per account (store: the request's, or NULL).  Returns the
 * success's reference code (for the log line). */
const char *btsso_signin_succeeded(request_rec *r, btsso_store_t *store,
                                   const char *account, const char *email,
                                   const char *name_id, const char *idp,
                                   const char *cert_sha256);
/* Write this process's pending counts of account now (admin reads). */
void btsso_signin_flush(request_rec *r, btsso_store_t *store,
                        const char *account);
/* The request's reference code, made on first use; or NULL if none yet. */
const char *btsso_signin_reference(request_rec *r);
const char *btsso_signin_reference_if_any(request_rec *r);
void btsso_register_signin_hooks(apr_pool_t *p);

/* SP endpoint handlers (one file each). */
int btsso_handle_sp_metadata(request_rec *r, const char *account);
int btsso_sp_dispatch(request_rec *r, const char *rest);

/* Remove client-sent X-BTSSO-* request headers (auth.c). */
void btsso_strip_spoofed_headers(request_rec *r);

/* Hooks registered by auth.c and admin.c. */
void btsso_register_auth_hooks(apr_pool_t *p);
void btsso_register_admin_hooks(apr_pool_t *p);

#endif /* BTSSO_GLUE_H */
