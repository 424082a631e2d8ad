/*
 * httpd_conf.h - what btssoctl needs from the httpd configuration file that
 * httpd itself reads (one source of truth for the store and addressing).
 *
 * A small reader of httpd's syntax, not a copy of httpd: one directive per
 * line, "\" at the end of a line continues it, "#" starts a comment line,
 * arguments may be quoted with " or ' (backslash escapes the quote),
 * ${VAR} is replaced from the environment, directive names are
 * case-insensitive.  Include and IncludeOptional take a file, a directory
 * or a wildcard, relative to the including file's directory.  Section tags
 * (<IfModule>, <VirtualHost>, ...) are read through, except <Location*>,
 * <Directory*>, <Files*> and <If*> expression sections whose directives are
 * per-directory and skipped.  When a directive appears more than once, the
 * last one wins (BTSSOMetadataFetchAllow accumulates).
 */
#ifndef BTSSO_HTTPD_CONF_H
#define BTSSO_HTTPD_CONF_H

#include <apr_pools.h>
#include <apr_hash.h>
#include "core/btsso_error.h"

typedef struct btsso_httpd_conf_t {
    const char *dbd_driver;         /* DBDriver */
    const char *dbd_params;         /* DBDParams */
    const char *base_url;           /* BTSSOBaseURL */
    const char *sp_path;            /* BTSSOSPPath, NULL when unset */
    const char *sp_entity_id;       /* BTSSOSPEntityID, NULL when unset */
    const char *sp_certificate;     /* BTSSOSPCertificate (path) */
    const char *sp_next_certificate;/* BTSSOSPNextCertificate (path) */
    apr_size_t metadata_max_size;   /* BTSSOMetadataMaxSize, 0 when unset */
    int fetch_timeout_sec;          /* BTSSOMetadataFetchTimeout, 0 unset */
    int fetch_http;                 /* BTSSOMetadataFetchHTTP, 0/1 */
    apr_interval_time_t refresh_interval; /* BTSSOMetadataRefreshInterval,
                                       -1 when unset */
    const char *fetch_allow;        /* BTSSOMetadataFetchAllow, ranges
                                       joined by spaces, NULL when unset */
    apr_hash_t *sql_overrides;      /* store label -> SQL of the
                                       BTSSO*Query directives */
} btsso_httpd_conf_t;

/*
 * Read file (and what it includes).  Errors: conf_missing 404 (file cannot
 * be opened), conf_syntax 400 and conf_value 400 with "file:line" and the
 * directive in the detail.
 */
btsso_error_t *btsso_httpd_conf_read(apr_pool_t *p, const char *file,
                                     btsso_httpd_conf_t **out);

/* "1048576", "512K", "1M", "1G" -> bytes; -1 when not a size. */
apr_int64_t btsso_httpd_conf_size(const char *text);

#endif /* BTSSO_HTTPD_CONF_H */
