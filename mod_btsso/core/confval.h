/*
 * confval.h - the value syntax of mod_btsso's directives, in one place, so
 * that httpd (config.c) and btssoctl (tools/httpd_conf.c), which both read
 * the same configuration file, accept and refuse exactly the same values.
 * Each parser returns NULL or the reason, worded to follow "'<value>' ".
 */
#ifndef BTSSO_CONFVAL_H
#define BTSSO_CONFVAL_H

#include <apr_pools.h>
#include <apr_time.h>

/* Sizes: a number with an optional K, M or G suffix (KB/KiB... accepted). */
const char *btsso_confval_size(const char *arg, apr_off_t *out);

/* BTSSOMetadataMaxSize: a size between 1K and 64M. */
const char *btsso_confval_metadata_size(const char *arg, apr_off_t *out);

/* Durations as httpd's ap_timeout_parameter_parse reads them: seconds, or
 * a number with the unit ms, s, mi (or min) or h; at least `min`. */
const char *btsso_confval_duration(apr_pool_t *p, const char *arg,
                                   apr_interval_time_t min,
                                   apr_interval_time_t *out);

#endif /* BTSSO_CONFVAL_H */
