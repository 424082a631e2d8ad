/*
 * btsso_admin.h - what the admin handler files share (admin.c, csrf.c,
 * admin_page.c).  The handler is "SetHandler btsso-admin"; SPEC's JSON API
 * lives below it, one account per path segment.
 */
#ifndef BTSSO_ADMIN_H
#define BTSSO_ADMIN_H

#include <httpd.h>
#include "store/store.h"

/* How long a CSRF token from GET config stays valid. */
#define BTSSO_CSRF_LIFETIME apr_time_from_sec(12 * 3600)

/*
 * csrf.c: derive each server's token key, once, at post_config.  With
 * BTSSOSPPrivateKey the key is HKDF-SHA256 over the SP private key, so
 * every node of a cluster (same SP key) accepts every node's tokens;
 * without it a random key is made once per httpd parent and kept across
 * graceful restarts.  Returns OK or HTTP_INTERNAL_SERVER_ERROR (logged).
 */
int btsso_csrf_init(apr_pool_t *pconf, server_rec *base);

/* A token for user administering account: "v1.<expiry>.<hex HMAC>".
 * session_account is the account of the caller's AuthType BTSSO session,
 * "-" (or NULL) when the admin location is authenticated otherwise. */
const char *btsso_csrf_token(request_rec *r, const char *user,
                             const char *account, const char *session_account);

/* Non-zero when token is a live token of this server for user, account
 * and session_account (HMAC compared in constant time). */
int btsso_csrf_valid(request_rec *r, const char *user, const char *account,
                     const char *session_account, const char *token);

/* admin_signins.c: GET /<account>/sign-ins, and the "sign_ins" part of
 * GET config (also each certificate's "last_verified"). */
#include <jansson.h>
#include "store/store.h"
int btsso_admin_sign_ins(request_rec *r, btsso_store_t *store,
                         const char *account);
void btsso_admin_signins_config(request_rec *r, btsso_store_t *store,
                                const char *account, json_t *config);
json_t *btsso_signin_json(apr_pool_t *p, const btsso_signin_t *si);

/* admin_page.c: GET /<account>/, the set-up page. */
int btsso_admin_send_page(request_rec *r, const char *account);

/* audit_trail.c: GET /<account>/audit (JSON pages, ?format=csv). */
int btsso_admin_get_audit(request_rec *r, btsso_store_t *st,
                          const char *account);

#endif /* BTSSO_ADMIN_H */
