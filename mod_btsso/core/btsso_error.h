/*
 * btsso_error.h - the one error type of the mod_btsso core library.
 *
 * Core functions (SAML, metadata, certificates, store, fetch) never touch a
 * request_rec and never log by themselves: they return NULL on success or a
 * btsso_error_t allocated from the caller's pool.  The glue decides what the
 * user sees (message), what the operator reads in the log (tag + detail) and
 * which HTTP status or exit code fits (status).
 */
#ifndef BTSSO_ERROR_H
#define BTSSO_ERROR_H

#include <apr_pools.h>

typedef struct btsso_error_t {
    /* Stable machine code, snake_case ("not_xml", "sig_invalid", ...).
     * Used as the JSON "error" field and asserted on by tests. */
    const char *code;
    /* One sentence safe to show to an end user or administrator:
     * no internals, no secrets. */
    const char *message;
    /* Operator detail for the log; may name elements, IDs, times.
     * Never key material, never cookie or session values. */
    const char *detail;
    /* HTTP status that fits (400, 403, 409, 413, 422, 500, 502...). */
    int status;
} btsso_error_t;

/* Make an error.  detail_fmt may be NULL. */
btsso_error_t *btsso_error_make(apr_pool_t *p, int status, const char *code,
                                const char *message,
                                const char *detail_fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* One line "code: message (detail)" for command-line tools and logs. */
const char *btsso_error_line(apr_pool_t *p, const btsso_error_t *e);

#endif /* BTSSO_ERROR_H */
