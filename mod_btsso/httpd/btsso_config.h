/*
 * btsso_config.h - server and directory configuration of mod_btsso.
 *
 * Every field starts "unset" (NULL, BTSSO_UNSET or -1) so that merging is
 * always `add set ? add : base`; defaults are resolved in one place
 * (btsso_config_resolve(), at post_config), never scattered over handlers.
 * t/check-config.sh fails `make check` when a field of either struct has no
 * default or no merge rule.
 */
#ifndef BTSSO_CONFIG_H
#define BTSSO_CONFIG_H

#include <httpd.h>
#include <http_config.h>
#include <ap_expr.h>
#include <ap_socache.h>
#include <apr_global_mutex.h>

#include "core/cidr.h"
#include "crypto/spkey.h"

#define BTSSO_UNSET (-1)

typedef struct btsso_srv_cfg {
    /* addressing */
    const char *base_url;           /* BTSSOBaseURL, no trailing slash */
    const char *sp_path;            /* BTSSOSPPath, "/sso" */
    const char *sp_entity_id;       /* BTSSOSPEntityID, <base><path> */
    /* SP keys */
    const char *sp_cert_file;
    const char *sp_key_file;
    const char *sp_next_cert_file;
    const char *sp_next_key_file;
    /* sessions */
    const char *session_cache;      /* "provider[:args]", "shmcb" */
    apr_interval_time_t session_max_age;     /* 8h */
    apr_interval_time_t session_idle_timeout; /* 1h */
    apr_interval_time_t user_recheck; /* BTSSOUserRecheck, 300 s */
    const char *cookie_name;        /* "btsso_session" */
    int cookie_secure;              /* On */
    const char *cookie_samesite;    /* "Lax" */
    /* validation */
    apr_interval_time_t clock_skew; /* 180 s */
    apr_interval_time_t config_ttl; /* 10 s */
    apr_off_t account_cache_size;   /* BTSSOAccountCacheSize, 32 MiB */
    int signature_algorithms;       /* BTSSO_SIG_* (saml/response.h) */
    int digest_algorithms;          /* BTSSO_DIGEST_*, merged with the above */
    int allow_idp_initiated;        /* On */
    /* SQL */
    const char *dbd_driver;         /* mod_dbd's DBDriver, read too: dialect */
    const char *dbd_params;         /* mod_dbd's DBDParams, read too: checks */
    const char *user_query;
    const char *duplicate_email_query;
    const char *admin_query;
    const char *account_by_email_query;
    /* metadata upload and fetch */
    apr_off_t metadata_max_size;    /* 1 MiB */
    apr_interval_time_t metadata_fetch_timeout; /* 10 s */
    int metadata_fetch_http;        /* Off */
    btsso_cidr_list_t *metadata_fetch_allow;
    apr_interval_time_t metadata_refresh_interval; /* 6h, 0 off */
    /* login */
    const char *password_login_url;

    /* runtime, not configuration (not merged; set at post_config) */
    struct btsso_runtime *rt;
    const ap_socache_provider_t *socache_provider;
} btsso_srv_cfg;

typedef struct btsso_dir_cfg {
    ap_expr_info_t *account;        /* BTSSOAccount */
    int password_guard;             /* BTSSOPasswordGuard, Off */
    int set_headers;                /* BTSSOSetHeaders, Off */
} btsso_dir_cfg;

/* Directive table, create/merge functions (config.c). */
extern const command_rec btsso_cmds[];
void *btsso_create_srv_cfg(apr_pool_t *p, server_rec *s);
void *btsso_merge_srv_cfg(apr_pool_t *p, void *basev, void *addv);
void *btsso_create_dir_cfg(apr_pool_t *p, char *dir);
void *btsso_merge_dir_cfg(apr_pool_t *p, void *basev, void *addv);

/* Fill every unset field with its default.  Returns an error message for a
 * configuration that cannot work (missing BTSSOBaseURL, key without
 * certificate, ...), or NULL. */
const char *btsso_config_resolve(apr_pool_t *p, server_rec *s,
                                 btsso_srv_cfg *sc);

/* Directory settings with their defaults applied. */
int btsso_dir_password_guard(const btsso_dir_cfg *dc);
int btsso_dir_set_headers(const btsso_dir_cfg *dc);


#endif /* BTSSO_CONFIG_H */
