/*
 * refresh.h - the rules of metadata refresh (SPEC "Metadata refresh"), in
 * one place for the module's watchdog and `btssoctl idp refresh`, and the
 * checks an upload of metadata gets.  No httpd, no logging: outcomes are
 * reports and errors.
 *
 *  - Metadata that came from a URL is fetched again under the same policy
 *    as on upload (fetch/fetch.h: SSRF rules, size, time, redirects).
 *  - A failed fetch (or a document refused below) changes nothing but the
 *    schedule: the last good copy stays in force; the next attempt backs
 *    off (refresh_retry_delay).
 *  - A document whose validUntil has passed is refused.
 *  - A signed document whose signature does not verify with a certificate
 *    the account trusts (primary or secondary, valid now) is refused.
 *  - New signing certificates are added without a role (source
 *    "refresh").  One of them gets the secondary role, when that slot is
 *    empty or holds a certificate that is no longer valid, only when the
 *    document's signature verified with a trusted certificate; otherwise
 *    it waits for an administrator to promote it.
 *  - The next refresh is due after BTSSOMetadataRefreshInterval, sooner
 *    when the document's cacheDuration is shorter or its validUntil comes
 *    first, never sooner than 1/60 of the interval (at least 1 s).
 */
#ifndef BTSSO_REFRESH_H
#define BTSSO_REFRESH_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "core/btsso_error.h"
#include "fetch/fetch.h"
#include "saml/mdsig.h"
#include "store/store.h"

#define BTSSO_REFRESH_ACTOR "refresh"

typedef struct btsso_refresh_opts_t {
    btsso_fetch_opts_t fetch;       /* max_size bounds the document too */
    apr_interval_time_t interval;   /* BTSSOMetadataRefreshInterval, > 0 */
    unsigned int sig_allowed;       /* BTSSO_SIG_* (0: the default) */
    unsigned int digest_allowed;    /* BTSSO_DIGEST_* (0: the default) */
    const char *actor;              /* audit actor of the changes */
} btsso_refresh_opts_t;

typedef struct btsso_refresh_report_t {
    const char *account;
    const char *url;
    int changed;                    /* new metadata stored */
    apr_array_header_t *added;      /* btsso_cert_t *: new certificates */
    const char *promoted;           /* sha256 made secondary, or NULL */
    btsso_mdsig_e signature;        /* of the fetched document */
    const char *signer;             /* sha256 that verified it */
    btsso_error_t *error;           /* why nothing changed, or NULL */
    int failures;                   /* in a row, after this attempt */
    apr_time_t next_due;
} btsso_refresh_report_t;

/*
 * Refresh one account now.  Returns an error only when the account cannot
 * be refreshed at all (not_found 404, not_from_url 409) or the store
 * fails; a fetch or document refusal is (*out)->error, recorded in the
 * schedule.  now: the clock of the decisions.
 */
btsso_error_t *btsso_refresh_account(btsso_store_t *s, apr_pool_t *p,
                                     const char *account,
                                     const btsso_refresh_opts_t *o,
                                     apr_time_t now,
                                     btsso_refresh_report_t **out);

typedef void btsso_refresh_report_fn(void *baton,
                                     const btsso_refresh_report_t *r);

/* One pass of the watchdog: every due account (at most max), each claimed
 * first so that no other process or node refreshes it too, refreshed, and
 * reported to fn.  An error only when the store fails. */
btsso_error_t *btsso_refresh_due(btsso_store_t *s, apr_pool_t *p,
                                 const btsso_refresh_opts_t *o,
                                 apr_time_t now, int max,
                                 btsso_refresh_report_fn *fn, void *baton);

/*
 * The checks of an upload (admin API, btssoctl idp import) before
 * btsso_store_idp_set: metadata_expired 422 when validUntil has passed;
 * metadata_signature_invalid 422 when the document is signed, the account
 * already trusts certificates of the same IdP (entityID), and the
 * signature verifies with none of them.  *facts (may be NULL) gets what
 * the document says.
 */
btsso_error_t *btsso_refresh_check_upload(btsso_store_t *s, apr_pool_t *p,
                                          const char *account,
                                          const btsso_idp_metadata_t *md,
                                          unsigned int sig_allowed,
                                          unsigned int digest_allowed,
                                          apr_time_t now,
                                          btsso_md_trust_t *facts);

/* After metadata was stored from a URL by an upload: its schedule starts
 * over from the document (interval 0: refresh is off, the row still
 * records validUntil). */
btsso_error_t *btsso_refresh_schedule_upload(btsso_store_t *s,
                                             const char *account,
                                             const btsso_md_trust_t *facts,
                                             apr_interval_time_t interval,
                                             apr_time_t now);

/* When the next refresh is due after a good fetch / after the failures-th
 * failure in a row. */
apr_time_t btsso_refresh_next_ok(apr_interval_time_t interval,
                                 const btsso_md_trust_t *facts,
                                 apr_time_t now);
apr_time_t btsso_refresh_next_failed(apr_interval_time_t interval,
                                     int failures, apr_time_t now);

/* How many of r->added were left without a role (all but the promoted
 * one): they wait for an administrator. */
int btsso_refresh_waiting(const btsso_refresh_report_t *r);

/* The usable (primary or secondary, valid at now) certificates among
 * stored ones, as btsso_cert_t *. */
apr_array_header_t *btsso_refresh_trusted(apr_pool_t *p,
                                          const apr_array_header_t *stored,
                                          apr_time_t now);

#endif /* BTSSO_REFRESH_H */
