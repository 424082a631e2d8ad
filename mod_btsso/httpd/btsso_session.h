/*
 * btsso_session.h - sessions, pending LogoutRequests and the replay cache
 * (session.c), kept in the BTSSOSessionCache socache provider, and pending
 * AuthnRequests (pending.c), kept by the browser in a signed cookie.
 */
#ifndef BTSSO_SESSION_H
#define BTSSO_SESSION_H

#include <httpd.h>
#include "btsso_config.h"
#include "core/btsso_error.h"

/*
 * What exporting a session makes (auth.c, attrs.c), a function of its
 * record alone: made on the first request that exports it and kept as long
 * as the decoded session is (session.c keeps one per connection, for as
 * long as the cache holds the same record).
 */
typedef struct btsso_session_var_t {
    const char *name;
    const char *value;
} btsso_session_var_t;

typedef struct btsso_session_exports_t {
    apr_pool_t *pool;           /* where they are made */
    int controls;               /* bit i: auth.c's value i holds a control
                                 * character; -1 not looked at yet */
    /* btsso_session_var_t: the attributes' variables; NULL not made yet */
    const apr_array_header_t *attr_vars;
    /* const char *: attributes left out for a control character */
    const apr_array_header_t *attr_refused;
    const char *attrs_header;   /* X-BTSSO-Attributes; NULL not made yet */
} btsso_session_exports_t;

typedef struct btsso_session_t {
    const char *token;          /* cookie value; never logged */
    const char *sp_id;          /* the SP that made it (btsso_sp_id) */
    const char *account;
    const char *email;          /* as the user table holds it */
    const char *extension;      /* the user's extension, when known */
    const char *name_id;
    const char *name_id_format;
    const char *idp;            /* IdP entityID */
    const char *session_index;  /* for Single Logout */
    apr_time_t created;
    apr_time_t expires;         /* absolute end (max age or the IdP's) */
    apr_time_t last_seen;       /* for the idle timeout */
    /* Following the account (btsso_session_get): the account's
     * sessions_epoch and revoke_seq when it was made (set by
     * btsso_session_create), and when its user was last found by
     * BTSSOUserQuery. */
    apr_int64_t epoch;
    apr_int64_t revoke_seq;
    apr_time_t user_checked;
    /* btsso_session_attr_t (core/session_record.h): the assertion's
     * attributes within the bounds (btsso_session_attrs_bound); NULL or
     * empty: none */
    const apr_array_header_t *attributes;
    /* from btsso_session_get: what exporting it makes, kept with it; NULL
     * for a session made otherwise (nothing kept) */
    btsso_session_exports_t *exports;
} btsso_session_t;

typedef struct btsso_pending_t {
    const char *request_id;     /* ID of the AuthnRequest sent */
    const char *account;
    const char *return_to;      /* validated local target, or NULL */
    int test;                   /* a /test/<account> round trip */
    apr_time_t expires;         /* when it stops being usable */
} btsso_pending_t;

/* Create the BTSSOSessionCache instance (once per process). */
const char *btsso_session_cache_setup(server_rec *s, btsso_srv_cfg *sc,
                                      apr_pool_t *pconf, apr_pool_t *ptemp);

/* Create the replay-mark cache of this process (shmcb, once per process,
 * kept over graceful restarts); NULL, or why it failed.  Sets
 * sc->rt->replay_provider (left NULL when mod_socache_shmcb is not loaded). */
const char *btsso_replay_cache_setup(server_rec *s, btsso_srv_cfg *sc,
                                     apr_pool_t *pconf, apr_pool_t *ptemp);

/* Hex text of nbytes random bytes (OpenSSL's CSPRNG); NULL on failure. */
const char *btsso_random_token(apr_pool_t *p, apr_size_t nbytes);

/* New session with a new id; sets the cookie. ss->expires may carry the
 * IdP's SessionNotOnOrAfter (capped by BTSSOSessionMaxAge). */
btsso_error_t *btsso_session_create(request_rec *r, btsso_session_t *ss);
/* The caller's live session, or NULL.  A session follows its account:
 * it ends (is deleted, and stays ended) once SSO is disabled, the IdP's
 * entityID changed, the account's sessions or its user's were revoked
 * (all seen through the account cache, so within BTSSOConfigTTL and
 * without a store query while the entry is fresh), or once BTSSOUserQuery,
 * run again every BTSSOUserRecheck, no longer finds its user.  NULL also
 * when that cannot be told (store unavailable), without ending it. */
btsso_session_t *btsso_session_get(request_rec *r);
/* End the caller's session and clear the cookie. */
void btsso_session_destroy(request_rec *r);

/* pending.c: derive the pending-cookie key and the SP identity of every
 * server (post_config). */
int btsso_pending_init(apr_pool_t *pconf, server_rec *base);
/* The SP identity of s (hex): a hash of BTSSOBaseURL, BTSSOSPPath, the SP
 * entityID and BTSSOSessionCache.  Sessions and pending requests are valid
 * only at the SP that made them. */
const char *btsso_sp_id(const server_rec *s);

/* Remember a pending AuthnRequest in a cookie of this browser (bounded
 * number of them: the oldest go); returns the RelayState token naming it
 * (an opaque key, never a URL), or NULL. */
const char *btsso_pending_put(request_rec *r, const btsso_pending_t *pd);
/* The pending request the browser holds for relay, and the cookie is
 * cleared.  NULL with *invalid NULL: the browser holds none (another
 * browser started it, or it expired); NULL with *invalid set: it holds one
 * that does not verify (altered, expired, another SP's). */
btsso_pending_t *btsso_pending_take(request_rec *r, const char *relay,
                                    btsso_error_t **invalid);

/* A LogoutRequest we sent (request_id, account, return_to), kept in the
 * session cache: only a signed-in user can make one (/logout ends the
 * session first), so no unauthenticated flood reaches the cache. */
const char *btsso_logout_pending_put(request_rec *r,
                                     const btsso_pending_t *pd);
btsso_pending_t *btsso_logout_pending_take(request_rec *r,
                                           const char *relay);

/* End the sessions of account/IdP/NameID whose SessionIndex is one of
 * session_indexes (every one when that is NULL or empty), wherever the
 * browser holding them is; clears the caller's cookie when it held one of
 * them.  Returns how many were ended. */
int btsso_session_end_by_name_id(request_rec *r, const char *account,
                                 const char *idp, const char *name_id,
                                 const apr_array_header_t *session_indexes);

/* 0 first sighting (now recorded until `until`), 1 replay, -1 cache
 * failure (treat as refusal). */
int btsso_replay_check_and_mark(request_rec *r, const char *issuer,
                                const char *assertion_id, apr_time_t until);

#endif /* BTSSO_SESSION_H */
