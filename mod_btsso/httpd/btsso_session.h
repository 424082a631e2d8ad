/*
 * btsso_session.h - sessions, pending requests and the replay cache
 * (session.c), all kept in the BTSSOSessionCache socache provider.
 */
#ifndef BTSSO_SESSION_H
#define BTSSO_SESSION_H

#include <httpd.h>
#include "btsso_config.h"
#include "core/btsso_error.h"

typedef struct btsso_session_t {
    const char *token;          /* cookie value; never logged */
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
} btsso_session_t;

typedef struct btsso_pending_t {
    const char *request_id;     /* ID of the AuthnRequest sent */
    const char *account;
    const char *return_to;      /* validated local target, or NULL */
    int test;                   /* a /test/<account> round trip */
} btsso_pending_t;

/* Create the BTSSOSessionCache instance (once per process). */
const char *btsso_session_cache_setup(server_rec *s, btsso_srv_cfg *sc,
                                      apr_pool_t *pconf, apr_pool_t *ptemp);

/* Hex text of nbytes random bytes (OpenSSL's CSPRNG); NULL on failure. */
const char *btsso_random_token(apr_pool_t *p, apr_size_t nbytes);

/* New session with a new id; sets the cookie. ss->expires may carry the
 * IdP's SessionNotOnOrAfter (capped by BTSSOSessionMaxAge). */
btsso_error_t *btsso_session_create(request_rec *r, btsso_session_t *ss);
/* The caller's live session, or NULL. */
btsso_session_t *btsso_session_get(request_rec *r);
/* End the caller's session and clear the cookie. */
void btsso_session_destroy(request_rec *r);

/* Remember a pending AuthnRequest; returns the RelayState token for it
 * (an opaque key, never a URL), or NULL. */
const char *btsso_pending_put(request_rec *r, const btsso_pending_t *pd);
/* Fetch and forget (usable once); NULL when unknown or expired. */
btsso_pending_t *btsso_pending_take(request_rec *r, const char *relay);

/* The same for a LogoutRequest we sent (request_id, account, return_to);
 * kept apart from AuthnRequests. */
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
