/*
 * btsso_acct.h - the per-process cache of account settings (acct_cache.c).
 */
#ifndef BTSSO_ACCT_H
#define BTSSO_ACCT_H

#include <httpd.h>
#include "store/store.h"
#include "saml/metadata.h"

typedef struct btsso_acct_cache btsso_acct_cache;

/* User revocations an entry keeps (btsso_acct_entry.revocations). */
#define BTSSO_ACCT_REVOCATIONS 64

/*
 * What a login needs of an account, copied out of the store rows into one
 * compact block.  Not kept: idp->metadata_xml (NULL; the admin API reads
 * the store), and of the parsed metadata only entity_id, sso and slo (the
 * first HTTP-Redirect and HTTP-POST endpoint, so btsso_metadata_endpoint()
 * answers for those two bindings as on the full list) and the two flags;
 * its other arrays are empty (shared, read-only) and organization is NULL.
 * certs holds every stored certificate; the btsso_cert_t each points at
 * is the process's one copy of that certificate, shared by the entries
 * that carry it, its ready_key loaded.  Empty lists and a default policy
 * are static: nothing may write through an entry.
 */
typedef struct btsso_acct_entry {
    const btsso_account_t *account;
    const btsso_idp_t *idp;             /* NULL: no IdP configured */
    const btsso_idp_metadata_t *md;     /* NULL when idp is */
    const apr_array_header_t *certs;    /* btsso_stored_cert_t * */
    /* The account's user revocations recent enough to matter (made within
     * BTSSOSessionMaxAge), newest first, at most BTSSO_ACCT_REVOCATIONS;
     * revocations_truncated: older ones exist that are not here. */
    const apr_array_header_t *revocations;  /* btsso_revocation_t */
    int revocations_truncated;
    /* The account's policy (PUT <account>/policy); never NULL: defaults
     * when none is set. */
    const btsso_policy_t *policy;
    /* private (acct_cache.c) */
    apr_size_t size;                    /* bytes of the block */
    int refs;                           /* table + requests holding it */
} btsso_acct_entry;

/* max_bytes: BTSSOAccountCacheSize. */
btsso_acct_cache *btsso_acct_cache_create(apr_pool_t *p,
                                          apr_interval_time_t ttl,
                                          apr_size_t max_bytes);

/* The account's settings, valid for the life of r.  Errors: not_found
 * (404) for an unknown account, store errors.  Concurrent requests for an
 * account that must be (re)loaded read the store once: one loads, the
 * others wait for it or, during a refresh, use the copy it replaces. */
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
