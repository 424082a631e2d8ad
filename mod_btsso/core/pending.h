/*
 * pending.h - the record of a sign-in in flight, as the browser keeps it.
 *
 * A pending AuthnRequest is not stored on the server (an unauthenticated
 * client could otherwise fill the cache that holds sessions and replay
 * marks): it travels in a short-lived cookie, authenticated with
 * HMAC-SHA256 under a key of the SP.  The text is
 *
 *     "v1." base64url(payload) "." base64url(HMAC(key, "v1." base64url(payload)))
 *
 * where payload is the fields below joined by "\n" (no field may hold a
 * control character).  The MAC is compared in constant time before any
 * field is read.  Nothing is secret in it: the browser already knows its
 * return target; what matters is that it cannot be changed or made up.
 */
#ifndef BTSSO_PENDING_H
#define BTSSO_PENDING_H

#include <apr_pools.h>
#include <apr_time.h>
#include "core/btsso_error.h"

/* Length of a RelayState token: 32 lowercase hex digits (128 bits). */
#define BTSSO_PENDING_RELAY_LEN 32

typedef struct btsso_pending_rec_t {
    const char *relay;          /* the RelayState token that names it */
    const char *request_id;     /* ID of the AuthnRequest sent */
    const char *account;
    const char *return_to;      /* validated target, or NULL */
    int test;                   /* a /test/<account> round trip */
    apr_time_t expires;         /* whole seconds */
    const char *sp_id;          /* the SP that made it */
} btsso_pending_rec_t;

/* Non-zero when s is a well-formed RelayState token. */
int btsso_pending_relay_ok(const char *s);

/*
 * Encode and authenticate rec under key (key_len octets).  Error
 * "pending_encode" (500) when a field is missing or holds a control
 * character.
 */
btsso_error_t *btsso_pending_rec_encode(apr_pool_t *p,
                                        const unsigned char *key,
                                        apr_size_t key_len,
                                        const btsso_pending_rec_t *rec,
                                        const char **out);

/*
 * Verify and decode value, then check it is the record of relay, made by
 * sp_id, and not expired at now.  Errors (all 403, code
 * "pending_invalid", the reason in detail): malformed, MAC mismatch,
 * another RelayState, another SP, expired.
 */
btsso_error_t *btsso_pending_rec_decode(apr_pool_t *p,
                                        const unsigned char *key,
                                        apr_size_t key_len,
                                        const char *value,
                                        const char *relay,
                                        const char *sp_id, apr_time_t now,
                                        btsso_pending_rec_t **out);

#endif /* BTSSO_PENDING_H */
