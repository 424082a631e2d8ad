/*
 * btsso_acct.h - the per-process cache of account settings (acct_cache.c).
 */
#ifndef BTSSO_ACCT_H
#define BTSSO_ACCT_H

#include <httpd.h>
#include "store/store.h"
#include "saml/metadata.h"

typedef struct btsso_acct_cache btsso_acct_cache;

typedef struct btsso_acct_entry {
    const btsso_account_t *account;
    const btsso_idp_t *idp;             /* NULL: no IdP configured */
    const btsso_idp_metadata_t *md;     /* parsed idp->metadata_xml */
    const apr_array_header_t *certs;    /* btsso_stored_cert_t * */
    /* private */
    apr_pool_t *pool;
    apr_time_t loaded;
    int refs;
    int stale;
} btsso_acct_entry;

btsso_acct_cache *btsso_acct_cache_create(apr_pool_t *p,
                                          apr_interval_time_t ttl);

/* The account's settings, valid for the life of r.  Errors: not_found
 * (404) for an unknown account, store errors. */
btsso_error_t *btsso_acct_get(request_rec *r, const char *account,
                              const btsso_acct_entry **out);

/* Drop this process's copy after a change made through it. */
void btsso_acct_invalidate(server_rec *s, const char *account);

/* The self-service account of an IdP entityID (NULL when none). */
btsso_error_t *btsso_acct_by_issuer(request_rec *r, const char *issuer,
                                    const char **account);

/* Primary/secondary certificates valid at now (btsso_cert_t *). */
apr_array_header_t *btsso_acct_usable_certs(apr_pool_t *p,
                                            const btsso_acct_entry *e,
                                            apr_time_t now);

#endif /* BTSSO_ACCT_H */
