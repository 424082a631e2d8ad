/*
 * btsso_refresh.h - the httpd side of metadata refresh (refresh_watchdog.c):
 * the mod_watchdog singleton that runs store/refresh.h's rules, and what
 * the admin API needs of them (upload checks, the refresh block of GET
 * config).
 */
#ifndef BTSSO_REFRESH_GLUE_H
#define BTSSO_REFRESH_GLUE_H

#include <httpd.h>
#include <jansson.h>

#include "btsso_config.h"
#include "store/refresh.h"

/* Hooks: the watchdog callback, registered at post_config. */
void btsso_register_refresh_hooks(apr_pool_t *p);

/* The fetch policy and refresh settings of a server. */
void btsso_refresh_opts(const btsso_srv_cfg *sc, btsso_refresh_opts_t *o);

/* An upload (POST metadata) before it is stored: refusals 422 of
 * btsso_refresh_check_upload, logged. */
btsso_error_t *btsso_refresh_upload_check(request_rec *r, btsso_store_t *st,
                                          const char *account,
                                          const btsso_idp_metadata_t *md,
                                          btsso_md_trust_t *facts);

/* After an upload was stored: a URL's schedule starts over (a failure to
 * write it is logged, not an error: the watchdog makes the row). */
void btsso_refresh_uploaded(request_rec *r, btsso_store_t *st,
                            const char *account, const char *url,
                            const btsso_md_trust_t *facts);

/* The "refresh" object of GET config: source URL, schedule, last error,
 * validUntil of the copy in force (and whether it passed), certificates
 * added by a refresh that wait for a role.  md: the stored copy parsed
 * (NULL when it cannot be), certs: the account's. */
json_t *btsso_refresh_json(request_rec *r, btsso_store_t *st,
                           const char *account, const btsso_idp_t *idp,
                           const btsso_idp_metadata_t *md,
                           const apr_array_header_t *certs);

#endif /* BTSSO_REFRESH_GLUE_H */
