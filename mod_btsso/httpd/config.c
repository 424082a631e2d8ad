/*
 * config.c - directives of mod_btsso: parse, validate, merge, default.
 *
 * A bad value fails `apachectl configtest` with a message that starts with
 * the directive's name.  Defaults live in resolve_defaults() only.
 */
#include <ctype.h>
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <ap_provider.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_uri.h>
#include <apr_file_info.h>

#include "btsso_config.h"
#include "core/url.h"
#include "core/confval.h"
#include "store/store.h"
#include "saml/response.h"

/* ---- defaults (the only place they live) -------------------------------- */

#define DEF_SP_PATH            "/sso"
#define DEF_SESSION_CACHE      "shmcb"
#define DEF_SESSION_MAX_AGE    apr_time_from_sec(8 * 3600)
#define DEF_SESSION_IDLE       apr_time_from_sec(3600)
#define DEF_USER_RECHECK       apr_time_from_sec(300)
#define DEF_COOKIE_NAME        "btsso_session"
#define DEF_COOKIE_SECURE      1
#define DEF_COOKIE_SAMESITE    "Lax"
#define DEF_CLOCK_SKEW         apr_time_from_sec(180)
#define DEF_CONFIG_TTL         apr_time_from_sec(10)
#define DEF_ACCOUNT_CACHE_SIZE ((apr_off_t)32 * 1024 * 1024)
#define DEF_SIGALGS            BTSSO_SIG_DEFAULT
#define DEF_DIGESTS            BTSSO_DIGEST_DEFAULT
#define DEF_ALLOW_IDP_INIT     1
#define DEF_METADATA_MAX       ((apr_off_t)1024 * 1024)
#define DEF_FETCH_TIMEOUT      apr_time_from_sec(10)
#define DEF_FETCH_HTTP         0
#define DEF_REFRESH_INTERVAL   apr_time_from_sec(6 * 3600)
#define DEF_PASSWORD_GUARD     0
#define DEF_SET_HEADERS        0

#define MERGE_PTR(f)  c->f = add->f ? add->f : base->f
#define MERGE_INT(f)  c->f = add->f != BTSSO_UNSET ? add->f : base->f

/* ---- create / merge --------------------------------------------------------- */

void *btsso_create_srv_cfg(apr_pool_t *p, server_rec *s)
{
    btsso_srv_cfg *c = apr_pcalloc(p, sizeof(*c));

    c->session_max_age = BTSSO_UNSET;
    c->session_idle_timeout = BTSSO_UNSET;
    c->user_recheck = BTSSO_UNSET;
    c->cookie_secure = BTSSO_UNSET;
    c->clock_skew = BTSSO_UNSET;
    c->config_ttl = BTSSO_UNSET;
    c->account_cache_size = BTSSO_UNSET;
    c->signature_algorithms = BTSSO_UNSET;
    c->digest_algorithms = BTSSO_UNSET;
    c->allow_idp_initiated = BTSSO_UNSET;
    c->metadata_max_size = BTSSO_UNSET;
    c->metadata_fetch_timeout = BTSSO_UNSET;
    c->metadata_fetch_http = BTSSO_UNSET;
    c->metadata_refresh_interval = BTSSO_UNSET;
    return c;
}

void *btsso_merge_srv_cfg(apr_pool_t *p, void *basev, void *addv)
{
    btsso_srv_cfg *base = basev, *add = addv;
    btsso_srv_cfg *c = apr_pcalloc(p, sizeof(*c));

    MERGE_PTR(base_url);
    MERGE_PTR(sp_path);
    MERGE_PTR(sp_entity_id);
    MERGE_PTR(sp_cert_file);
    MERGE_PTR(sp_key_file);
    MERGE_PTR(sp_next_cert_file);
    MERGE_PTR(sp_next_key_file);
    MERGE_PTR(session_cache);
    MERGE_INT(session_max_age);
    MERGE_INT(session_idle_timeout);
    MERGE_INT(user_recheck);
    MERGE_PTR(cookie_name);
    MERGE_INT(cookie_secure);
    MERGE_PTR(cookie_samesite);
    MERGE_INT(clock_skew);
    MERGE_INT(config_ttl);
    MERGE_INT(account_cache_size);
    if (add->signature_algorithms != BTSSO_UNSET) {
        c->signature_algorithms = add->signature_algorithms;
        c->digest_algorithms = add->digest_algorithms;
    }
    else {
        c->signature_algorithms = base->signature_algorithms;
        c->digest_algorithms = base->digest_algorithms;
    }
    MERGE_INT(allow_idp_initiated);
    MERGE_PTR(user_query);
    MERGE_PTR(duplicate_email_query);
    MERGE_PTR(admin_query);
    MERGE_PTR(account_by_email_query);
    MERGE_PTR(dbd_driver);
    MERGE_PTR(dbd_params);
    MERGE_INT(metadata_max_size);
    MERGE_INT(metadata_fetch_timeout);
    MERGE_INT(metadata_fetch_http);
    MERGE_PTR(metadata_fetch_allow);
    MERGE_INT(metadata_refresh_interval);
    MERGE_PTR(password_login_url);
    /* rt: never merged, built per server at post_config */
    return c;
}

void *btsso_create_dir_cfg(apr_pool_t *p, char *dir)
{
    btsso_dir_cfg *c = apr_pcalloc(p, sizeof(*c));

    c->password_guard = BTSSO_UNSET;
    c->set_headers = BTSSO_UNSET;
    return c;
}

void *btsso_merge_dir_cfg(apr_pool_t *p, void *basev, void *addv)
{
    btsso_dir_cfg *base = basev, *add = addv;
    btsso_dir_cfg *c = apr_pcalloc(p, sizeof(*c));

    MERGE_PTR(account);
    MERGE_INT(password_guard);
    MERGE_INT(set_headers);
    return c;
}

/* ---- defaults -------------------------------------------------------------------- */

static const char *default_sql(const char *label)
{
    const btsso_stmt_def_t *d;

    for (d = btsso_store_statements(); d->label != NULL; d++) {
        if (strcmp(d->label, label) == 0) {
            return d->sql;
        }
    }
    return NULL;
}

const char *btsso_config_resolve(apr_pool_t *p, server_rec *s,
                                 btsso_srv_cfg *sc)
{
    if (sc->base_url == NULL) {
        return "BTSSOBaseURL is not set: the module needs the portal's "
               "public base URL (for example https://portal.example.com)";
    }
    if (sc->sp_path == NULL) {
        sc->sp_path = DEF_SP_PATH;
    }
    if (sc->sp_entity_id == NULL) {
        sc->sp_entity_id = apr_pstrcat(p, sc->base_url, sc->sp_path, NULL);
    }
    if ((sc->sp_cert_file == NULL) != (sc->sp_key_file == NULL)) {
        return "BTSSOSPCertificate and BTSSOSPPrivateKey go together: "
               "set both or neither";
    }
    if ((sc->sp_next_cert_file == NULL) != (sc->sp_next_key_file == NULL)) {
        return "BTSSOSPNextCertificate and BTSSOSPNextPrivateKey go "
               "together: set both or neither";
    }
    if (sc->sp_next_cert_file != NULL && sc->sp_cert_file == NULL) {
        return "BTSSOSPNextCertificate needs BTSSOSPCertificate: the next "
               "key is for rollover from a current one";
    }
    if (sc->session_cache == NULL) {
        sc->session_cache = DEF_SESSION_CACHE;
    }
    if (sc->session_max_age == BTSSO_UNSET) {
        sc->session_max_age = DEF_SESSION_MAX_AGE;
    }
    if (sc->session_idle_timeout == BTSSO_UNSET) {
        sc->session_idle_timeout = DEF_SESSION_IDLE;
    }
    if (sc->user_recheck == BTSSO_UNSET) {
        sc->user_recheck = DEF_USER_RECHECK;
    }
    if (sc->cookie_name == NULL) {
        sc->cookie_name = DEF_COOKIE_NAME;
    }
    if (sc->cookie_secure == BTSSO_UNSET) {
        sc->cookie_secure = DEF_COOKIE_SECURE;
    }
    if (sc->cookie_samesite == NULL) {
        sc->cookie_samesite = DEF_COOKIE_SAMESITE;
    }
    if (strcmp(sc->cookie_samesite, "None") == 0 && !sc->cookie_secure) {
        return "BTSSOCookieSameSite None needs BTSSOCookieSecure On: "
               "browsers drop SameSite=None cookies without Secure";
    }
    if (sc->clock_skew == BTSSO_UNSET) {
        sc->clock_skew = DEF_CLOCK_SKEW;
    }
    if (sc->config_ttl == BTSSO_UNSET) {
        sc->config_ttl = DEF_CONFIG_TTL;
    }
    if (sc->account_cache_size == BTSSO_UNSET) {
        sc->account_cache_size = DEF_ACCOUNT_CACHE_SIZE;
    }
    if (sc->signature_algorithms == BTSSO_UNSET) {
        sc->signature_algorithms = DEF_SIGALGS;
        sc->digest_algorithms = DEF_DIGESTS;
    }
    if (sc->allow_idp_initiated == BTSSO_UNSET) {
        sc->allow_idp_initiated = DEF_ALLOW_IDP_INIT;
    }
    /* sc->dbd_driver stays NULL without a DBDriver (or when mod_btsso is
     * loaded before mod_dbd): the statements keep their sqlite3/pgsql
     * text, which the mysql driver refuses to prepare */
    if (sc->dbd_driver != NULL && strcmp(sc->dbd_driver, "mysql") == 0
        && btsso_store_schema_sql(p, "mysql") == NULL) {
        return "DBDriver mysql: a schema version of this build has no "
               "MySQL form yet (btssoctl schema mysql fails too)";
    }
    /* sc->dbd_params: only checked, never logged (it holds a password) */
    if (btsso_store_pool_params_problem(sc->dbd_driver,
                                        sc->dbd_params) != NULL) {
        return btsso_store_pool_params_problem(sc->dbd_driver,
                                               sc->dbd_params);
    }
    if (sc->user_query == NULL) {
        sc->user_query = default_sql(BTSSO_Q_USER);
    }
    if (sc->duplicate_email_query == NULL) {
        sc->duplicate_email_query = default_sql(BTSSO_Q_DUPLICATES);
    }
    if (sc->admin_query == NULL) {
        sc->admin_query = default_sql(BTSSO_Q_ADMIN);
    }
    if (sc->account_by_email_query == NULL) {
        sc->account_by_email_query = default_sql(BTSSO_Q_ACCOUNT_BY_EMAIL);
    }
    if (sc->metadata_max_size == BTSSO_UNSET) {
        sc->metadata_max_size = DEF_METADATA_MAX;
    }
    if (sc->metadata_fetch_timeout == BTSSO_UNSET) {
        sc->metadata_fetch_timeout = DEF_FETCH_TIMEOUT;
    }
    if (sc->metadata_fetch_http == BTSSO_UNSET) {
        sc->metadata_fetch_http = DEF_FETCH_HTTP;
    }
    if (sc->metadata_refresh_interval == BTSSO_UNSET) {
        sc->metadata_refresh_interval = DEF_REFRESH_INTERVAL;
    }
    /* Left NULL on purpose, meaning "none":
     *   sc->metadata_fetch_allow: no exception to the address policy;
     *   sc->password_login_url: discovery answers with a page instead. */
    return NULL;
}

int btsso_dir_password_guard(const btsso_dir_cfg *dc)
{
    return dc->password_guard == BTSSO_UNSET ? DEF_PASSWORD_GUARD
                                             : dc->password_guard;
}

int btsso_dir_set_headers(const btsso_dir_cfg *dc)
{
    return dc->set_headers == BTSSO_UNSET ? DEF_SET_HEADERS : dc->set_headers;
}

/* ---- value parsers ------------------------------------------------------------------ */

#define SRV(cmd) ((btsso_srv_cfg *)ap_get_module_config( \
                      (cmd)->server->module_config, &btsso_module))

extern module AP_MODULE_DECLARE_DATA btsso_module;

static const char *bad(cmd_parms *cmd, const char *arg,
                       const char *why)
{
    return apr_psprintf(cmd->pool, "%s: '%s' %s", cmd->cmd->name, arg, why);
}

static const char *check_server_scope(cmd_parms *cmd)
{
    return ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
}

static const char *parse_duration(cmd_parms *cmd, const char *arg,
                                  apr_interval_time_t min,
                                  apr_interval_time_t *out)
{
    const char *why = btsso_confval_duration(cmd->pool, arg, min, out);

    return why ? bad(cmd, arg, why) : NULL;
}

static const char *set_base_url(cmd_parms *cmd, void *dummy, const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    btsso_base_url_t *base = NULL;
    btsso_error_t *e;

    if (err != NULL) {
        return err;
    }
    e = btsso_base_url_parse(cmd->pool, arg, &base);
    if (e != NULL) {
        return bad(cmd, arg, apr_pstrcat(cmd->pool, "is not a usable "
                   "base URL: ", e->message,
                   e->detail ? apr_pstrcat(cmd->pool, " (", e->detail, ")",
                                           NULL) : "", NULL));
    }
    sc->base_url = base->origin;
    return NULL;
}

static const char *set_sp_path(cmd_parms *cmd, void *dummy, const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    const char *c;
    apr_size_t len = strlen(arg);

    if (err != NULL) {
        return err;
    }
    if (arg[0] != '/' || len < 2 || arg[len - 1] == '/') {
        return bad(cmd, arg, "must be a path that starts with / and "
                   "does not end with / (for example /sso)");
    }
    for (c = arg; *c; c++) {
        if (!(apr_isalnum(*c) || strchr("/-._~", *c) != NULL)) {
            return bad(cmd, arg, "may hold only letters, digits and "
                       "/ - . _ ~");
        }
        if (c[0] == '/' && c[1] == '/') {
            return bad(cmd, arg, "must not contain //");
        }
    }
    if (strstr(arg, "/../") != NULL || strstr(arg, "/./") != NULL
        || (len >= 3 && strcmp(arg + len - 3, "/..") == 0)) {
        return bad(cmd, arg, "must not contain . or .. segments");
    }
    sc->sp_path = arg;
    return NULL;
}

static const char *set_sp_entity_id(cmd_parms *cmd, void *dummy,
                                    const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    apr_uri_t uri;
    const char *c;

    if (err != NULL) {
        return err;
    }
    if (strlen(arg) > 1024) {
        return bad(cmd, arg, "is longer than SAML's 1024 characters");
    }
    for (c = arg; *c; c++) {
        if (apr_iscntrl(*c) || apr_isspace(*c)) {
            return bad(cmd, arg, "contains white space or control "
                       "characters");
        }
    }
    if (apr_uri_parse(cmd->pool, arg, &uri) != APR_SUCCESS
        || uri.scheme == NULL) {
        return bad(cmd, arg, "is not an absolute URI "
                   "(for example https://portal.example.com/sso)");
    }
    sc->sp_entity_id = arg;
    return NULL;
}

static const char *set_readable_file(cmd_parms *cmd, void *dummy,
                                     const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    const char *path;
    apr_finfo_t fi;
    int offset = (int)(apr_uintptr_t)cmd->info;

    if (err != NULL) {
        return err;
    }
    path = ap_server_root_relative(cmd->pool, arg);
    if (path == NULL
        || apr_stat(&fi, path, APR_FINFO_TYPE, cmd->temp_pool) != APR_SUCCESS
        || fi.filetype != APR_REG) {
        return bad(cmd, arg, "is not a readable file");
    }
    *(const char **)((char *)sc + offset) = path;
    return NULL;
}

static const char *set_session_cache(cmd_parms *cmd, void *dummy,
                                     const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    const char *sep, *name;

    if (err != NULL) {
        return err;
    }
    sep = ap_strchr_c(arg, ':');
    name = sep ? apr_pstrmemdup(cmd->temp_pool, arg, sep - arg) : arg;
    /* The instance itself is made at post_config, in the process pool, so
     * that it outlives graceful restarts (session.c). */
    if (ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                           AP_SOCACHE_PROVIDER_VERSION) == NULL) {
        return bad(cmd, arg, apr_psprintf(cmd->pool,
                   "names no loaded socache provider: load "
                   "mod_socache_%s first (LoadModule socache_%s_module)",
                   name, name));
    }
    sc->session_cache = arg;
    return NULL;
}

static const char *set_duration(cmd_parms *cmd, void *dummy, const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    int offset = (int)(apr_uintptr_t)cmd->info;
    apr_interval_time_t min = apr_time_from_sec(1);

    if (err != NULL) {
        return err;
    }
    if (offset == APR_OFFSETOF(btsso_srv_cfg, clock_skew)
        || offset == APR_OFFSETOF(btsso_srv_cfg, config_ttl)
        || offset == APR_OFFSETOF(btsso_srv_cfg, user_recheck)
        || offset == APR_OFFSETOF(btsso_srv_cfg, metadata_refresh_interval)) {
        min = 0;
    }
    return parse_duration(cmd, arg, min,
                          (apr_interval_time_t *)((char *)sc + offset));
}

static const char *set_cookie_name(cmd_parms *cmd, void *dummy,
                                   const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    const char *c;

    if (err != NULL) {
        return err;
    }
    if (*arg == '\0' || strlen(arg) > 64) {
        return bad(cmd, arg, "must be 1 to 64 characters");
    }
    for (c = arg; *c; c++) {
        if (!(apr_isalnum(*c) || *c == '_' || *c == '-' || *c == '.')) {
            return bad(cmd, arg, "may hold only letters, digits, "
                       "_ - and . (a cookie token)");
        }
    }
    sc->cookie_name = arg;
    return NULL;
}

static const char *set_samesite(cmd_parms *cmd, void *dummy, const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);

    if (err != NULL) {
        return err;
    }
    if (!strcasecmp(arg, "Lax")) {
        sc->cookie_samesite = "Lax";
    }
    else if (!strcasecmp(arg, "Strict")) {
        sc->cookie_samesite = "Strict";
    }
    else if (!strcasecmp(arg, "None")) {
        sc->cookie_samesite = "None";
    }
    else {
        return bad(cmd, arg, "must be Lax, Strict or None");
    }
    return NULL;
}

static const char *set_srv_flag(cmd_parms *cmd, void *dummy, int flag)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    int offset = (int)(apr_uintptr_t)cmd->info;

    if (err != NULL) {
        return err;
    }
    *(int *)((char *)sc + offset) = flag ? 1 : 0;
    return NULL;
}

/* How many %s a query must hold, and what they are. */
typedef struct {
    const char *directive;
    int nparams;
    const char *params;
} sql_shape_t;

static const sql_shape_t sql_shapes[] = {
    { "BTSSOUserQuery", 2, "account, email" },
    { "BTSSODuplicateEmailQuery", 1, "account" },
    { "BTSSOAdminQuery", 2, "account, REMOTE_USER" },
    { "BTSSOAccountByEmailQuery", 1, "email" },
    { NULL, 0, NULL }
};

/* DBDriver belongs to mod_dbd.  httpd offers a directive to each module
 * that declares it, the module loaded last first, until one does not
 * return DECLINE_CMD: mod_btsso, loaded after mod_dbd, notes the driver
 * and declines, and mod_dbd then sets it as ever.  The driver picks the
 * SQL dialect of the statements handed to ap_dbd_prepare. */
static const char *peek_dbd_driver(cmd_parms *cmd, void *dummy,
                                   const char *arg)
{
    (void)dummy;
    SRV(cmd)->dbd_driver = apr_pstrdup(cmd->pool, arg);
    return DECLINE_CMD;
}

/* DBDParams, the same way: for the checks of btsso_config_resolve. */
static const char *peek_dbd_params(cmd_parms *cmd, void *dummy,
                                   const char *arg)
{
    (void)dummy;
    SRV(cmd)->dbd_params = apr_pstrdup(cmd->pool, arg);
    return DECLINE_CMD;
}

static const char *set_sql(cmd_parms *cmd, void *dummy, const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    int offset = (int)(apr_uintptr_t)cmd->info;
    const sql_shape_t *shape;
    const char *c;
    int n = 0;

    if (err != NULL) {
        return err;
    }
    for (shape = sql_shapes; shape->directive != NULL; shape++) {
        if (!strcasecmp(shape->directive, cmd->cmd->name)) {
            break;
        }
    }
    for (c = arg; apr_isspace(*c); c++) {
    }
    if (strncasecmp(c, "SELECT", 6) != 0 || !apr_isspace(c[6])) {
        return bad(cmd, arg, "must be a SELECT statement");
    }
    for (c = arg; *c; c++) {
        if (*c == ';' ) {
            return bad(cmd, arg, "must be a single statement (no ;)");
        }
        if (*c == '%') {
            if (c[1] == 's') {
                n++;
                c++;
            }
            else if (c[1] == '%') {
                c++;
            }
            else {
                return bad(cmd, arg, "may use only %s placeholders "
                           "(APR DBD); write a literal % as %%");
            }
        }
    }
    if (shape->directive != NULL && n != shape->nparams) {
        return bad(cmd, arg, apr_psprintf(cmd->pool,
                   "must have exactly %d %%s placeholder%s (%s), not %d",
                   shape->nparams, shape->nparams == 1 ? "" : "s",
                   shape->params, n));
    }
    *(const char **)((char *)sc + offset) = arg;
    return NULL;
}

static const char *set_size(cmd_parms *cmd, void *dummy, const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    apr_off_t n;

    if (err != NULL) {
        return err;
    }
    err = btsso_confval_metadata_size(arg, &n);
    if (err != NULL) {
        return bad(cmd, arg, err);
    }
    sc->metadata_max_size = n;
    return NULL;
}

static const char *set_account_cache_size(cmd_parms *cmd, void *dummy,
                                          const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    apr_off_t n;

    if (err != NULL) {
        return err;
    }
    err = btsso_confval_size(arg, &n);
    if (err != NULL) {
        return bad(cmd, arg, err);
    }
    /* Below 64K not even a handful of accounts fit; above 4G is a typo. */
    if (n < 64 * 1024 || n > (apr_off_t)4 * 1024 * 1024 * 1024) {
        return bad(cmd, arg, "must lie between 64K and 4G");
    }
    sc->account_cache_size = n;
    return NULL;
}

static const char *add_fetch_allow(cmd_parms *cmd, void *dummy,
                                   const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    btsso_error_t *e;

    if (err != NULL) {
        return err;
    }
    if (sc->metadata_fetch_allow == NULL) {
        sc->metadata_fetch_allow = btsso_cidr_list_make(cmd->pool);
    }
    e = btsso_cidr_list_add(cmd->pool, sc->metadata_fetch_allow, arg);
    if (e != NULL) {
        return bad(cmd, arg, apr_pstrcat(cmd->pool,
                   "is not an address or CIDR block (", e->message,
                   e->detail ? ": " : "", e->detail ? e->detail : "", ")",
                   NULL));
    }
    return NULL;
}

static const char *set_sigalgs(cmd_parms *cmd, void *dummy, int argc,
                               char *const argv[])
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    unsigned int sig = 0, digest = 0;
    int i;

    if (err != NULL) {
        return err;
    }
    if (argc == 0) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name,
                           ": needs at least one algorithm", NULL);
    }
    for (i = 0; i < argc; i++) {
        if (btsso_response_alg_parse(argv[i], &sig, &digest) != 0) {
            return apr_psprintf(cmd->pool, "%s: '%s' is not one of "
                                "rsa-sha256, rsa-sha384, rsa-sha512, "
                                "ecdsa-sha256, ecdsa-sha384, ecdsa-sha512, "
                                "rsa-sha1, ecdsa-sha1", cmd->cmd->name,
                                argv[i]);
        }
    }
    /* SHA-256 and stronger digests stay allowed whatever the signature
     * algorithms: IdPs sign with one algorithm and digest with another. */
    sc->signature_algorithms = (int)sig;
    sc->digest_algorithms = (int)(digest | BTSSO_DIGEST_DEFAULT);
    return NULL;
}

static const char *set_password_login_url(cmd_parms *cmd, void *dummy,
                                          const char *arg)
{
    btsso_srv_cfg *sc = SRV(cmd);
    const char *err = check_server_scope(cmd);
    apr_uri_t uri;

    if (err != NULL) {
        return err;
    }
    if (arg[0] == '/' && arg[1] != '/' && arg[1] != '\\') {
        sc->password_login_url = arg;
        return NULL;
    }
    if (apr_uri_parse(cmd->pool, arg, &uri) != APR_SUCCESS
        || uri.scheme == NULL || uri.hostname == NULL
        || (strcasecmp(uri.scheme, "https") && strcasecmp(uri.scheme, "http"))) {
        return bad(cmd, arg, "must be a local path (/login) or an "
                   "http(s) URL");
    }
    sc->password_login_url = arg;
    return NULL;
}

/* ---- directory scope --------------------------------------------------------- */

static const char *set_account_expr(cmd_parms *cmd, void *dcfg,
                                    const char *arg)
{
    btsso_dir_cfg *dc = dcfg;
    const char *err = NULL;

    dc->account = ap_expr_parse_cmd(cmd, arg, AP_EXPR_FLAG_STRING_RESULT,
                                    &err, NULL);
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a valid expression: "
                            "%s", cmd->cmd->name, arg, err);
    }
    return NULL;
}

static const char *set_dir_flag(cmd_parms *cmd, void *dcfg, int flag)
{
    int offset = (int)(apr_uintptr_t)cmd->info;

    *(int *)((char *)dcfg + offset) = flag ? 1 : 0;
    return NULL;
}

/* ---- the table ------------------------------------------------------------------- */

#define SRV_OFF(f) (void *)APR_OFFSETOF(btsso_srv_cfg, f)
#define DIR_OFF(f) (void *)APR_OFFSETOF(btsso_dir_cfg, f)

const command_rec btsso_cmds[] = {
    AP_INIT_TAKE1("BTSSOBaseURL", set_base_url, NULL, RSRC_CONF,
        "Public base URL of the portal: https:// or http://, a host, an "
        "optional port, no path, e.g. https://portal.example.com (default "
        "none: required; never taken from the Host header)"),
    AP_INIT_TAKE1("BTSSOSPPath", set_sp_path, NULL, RSRC_CONF,
        "Path under which the SP endpoints are served: starts with /, no "
        "trailing /, letters, digits and / - . _ ~ (default /sso)"),
    AP_INIT_TAKE1("BTSSOSPEntityID", set_sp_entity_id, NULL, RSRC_CONF,
        "SP entityID of self-service accounts: an absolute URI, at most 1024 "
        "characters (default <BTSSOBaseURL><BTSSOSPPath>)"),
    AP_INIT_TAKE1("BTSSOSPCertificate", set_readable_file,
        SRV_OFF(sp_cert_file), RSRC_CONF,
        "PEM file of the SP signing/encryption certificate; set with "
        "BTSSOSPPrivateKey (default none: requests go unsigned)"),
    AP_INIT_TAKE1("BTSSOSPPrivateKey", set_readable_file,
        SRV_OFF(sp_key_file), RSRC_CONF,
        "PEM file of the SP private key, unencrypted, matching "
        "BTSSOSPCertificate (default none)"),
    AP_INIT_TAKE1("BTSSOSPNextCertificate", set_readable_file,
        SRV_OFF(sp_next_cert_file), RSRC_CONF,
        "PEM file of the next SP certificate, published ahead of a key "
        "rollover; needs BTSSOSPCertificate (default none)"),
    AP_INIT_TAKE1("BTSSOSPNextPrivateKey", set_readable_file,
        SRV_OFF(sp_next_key_file), RSRC_CONF,
        "PEM file of the next SP private key, unencrypted, tried second for "
        "decryption (default none)"),
    AP_INIT_TAKE1("BTSSOSessionCache", set_session_cache, NULL, RSRC_CONF,
        "socache provider[:args] holding sessions: shmcb[:path(size)], "
        "memcache:host:port[,...], redis:host:port (default shmcb)"),
    AP_INIT_TAKE1("BTSSOSessionMaxAge", set_duration,
        SRV_OFF(session_max_age), RSRC_CONF,
        "Longest life of a session: a duration (90, 90s, 30mi, 8h), at least "
        "1s (default 8h)"),
    AP_INIT_TAKE1("BTSSOSessionIdleTimeout", set_duration,
        SRV_OFF(session_idle_timeout), RSRC_CONF,
        "A session unused this long ends: a duration (90, 90s, 30mi, 8h), at "
        "least 1s (default 1h)"),
    AP_INIT_TAKE1("BTSSOUserRecheck", set_duration,
        SRV_OFF(user_recheck), RSRC_CONF,
        "How often a session's user is looked up again with BTSSOUserQuery;"
        " a duration (300, 5mi), 0: on every request (default 300s)"),
    AP_INIT_TAKE1("BTSSOCookieName", set_cookie_name, NULL, RSRC_CONF,
        "Name of the session cookie: 1-64 letters, digits, _ - . (default "
        "btsso_session)"),
    AP_INIT_FLAG("BTSSOCookieSecure", set_srv_flag,
        SRV_OFF(cookie_secure), RSRC_CONF,
        "Mark the session cookie Secure: On or Off (default On)"),
    AP_INIT_TAKE1("BTSSOCookieSameSite", set_samesite, NULL, RSRC_CONF,
        "SameSite of the session cookie: Lax, Strict or None; None needs "
        "BTSSOCookieSecure On (default Lax)"),
    AP_INIT_TAKE1("BTSSOClockSkew", set_duration,
        SRV_OFF(clock_skew), RSRC_CONF,
        "Clock difference tolerated with IdPs: a duration (90, 90s, 3mi, "
        "1h), 0 allowed (default 180s)"),
    AP_INIT_TAKE1("BTSSOConfigTTL", set_duration,
        SRV_OFF(config_ttl), RSRC_CONF,
        "How long an account's settings are cached per process: a duration "
        "(10, 10s, 1mi), 0 = read the store every time (default 10s)"),
    AP_INIT_TAKE1("BTSSOAccountCacheSize", set_account_cache_size, NULL,
        RSRC_CONF, "How much parsed account configuration one process "
        "keeps, least recently used out first: a size (64K to 4G; 512K, "
        "32M, 1G) (default 32M)"),
    /* mod_dbd's own directive, seen first by mod_btsso (loaded after it) */
    AP_INIT_TAKE1("DBDriver", peek_dbd_driver, NULL, RSRC_CONF,
                  "mod_dbd's driver, read by mod_btsso too to prepare its "
                  "statements in that SQL dialect: sqlite3, pgsql or mysql "
                  "(default: none, the sqlite3/pgsql text)"),
    AP_INIT_TAKE1("DBDParams", peek_dbd_params, NULL, RSRC_CONF,
                  "mod_dbd's connection parameters, checked by mod_btsso "
                  "too: mysql needs reconnect=0 and "
                  "flags=CLIENT_FOUND_ROWS (default: none)"),
    AP_INIT_TAKE1("BTSSOUserQuery", set_sql, SRV_OFF(user_query), RSRC_CONF,
        "SQL SELECT, 2 %s: (account, email) -> extension, email of the user "
        "(default: the shipped users table)"),
    AP_INIT_TAKE1("BTSSODuplicateEmailQuery", set_sql,
        SRV_OFF(duplicate_email_query), RSRC_CONF,
        "SQL SELECT, 1 %s: (account) -> email, extension, kind of shared "
        "contact emails (default: the shipped users table)"),
    AP_INIT_TAKE1("BTSSOAdminQuery", set_sql, SRV_OFF(admin_query), RSRC_CONF,
        "SQL SELECT, 2 %s: (account, REMOTE_USER) -> a row when an "
        "administrator (default: the shipped users table)"),
    AP_INIT_TAKE1("BTSSOAccountByEmailQuery", set_sql,
        SRV_OFF(account_by_email_query), RSRC_CONF,
        "SQL SELECT, 1 %s: (email) -> account (default: the shipped users "
        "and accounts tables)"),
    AP_INIT_TAKE1("BTSSOMetadataMaxSize", set_size, NULL, RSRC_CONF,
        "Largest IdP metadata accepted: bytes with an optional K, M or G "
        "suffix, 1K to 64M (default 1M)"),
    AP_INIT_TAKE1("BTSSOMetadataFetchTimeout", set_duration,
        SRV_OFF(metadata_fetch_timeout), RSRC_CONF,
        "Time limit for fetching metadata by URL: a duration (10, 10s, 1mi), "
        "at least 1s (default 10s)"),
    AP_INIT_FLAG("BTSSOMetadataFetchHTTP", set_srv_flag,
        SRV_OFF(metadata_fetch_http), RSRC_CONF,
        "Allow plain http:// metadata URLs: On or Off (default Off: https "
        "only)"),
    AP_INIT_ITERATE("BTSSOMetadataFetchAllow", add_fetch_allow, NULL,
        RSRC_CONF,
        "Addresses/CIDR blocks (IPv4 or IPv6, several allowed) metadata may "
        "be fetched from despite being loopback/private/link-local (default "
        "none)"),
    AP_INIT_TAKE1("BTSSOMetadataRefreshInterval", set_duration,
        SRV_OFF(metadata_refresh_interval), RSRC_CONF,
        "How often metadata fetched from a URL is fetched again by the "
        "module (sooner when its cacheDuration/validUntil says so): a "
        "duration (90s, 30mi, 6h), 0 = off (default 6h)"),
    AP_INIT_TAKE_ARGV("BTSSOSignatureAlgorithms", set_sigalgs, NULL,
        RSRC_CONF,
        "Accepted signature algorithms, one or more of rsa-sha256 rsa-sha384 "
        "rsa-sha512 ecdsa-sha256 ecdsa-sha384 ecdsa-sha512 rsa-sha1 "
        "ecdsa-sha1 (default the six SHA-2 ones)"),
    AP_INIT_FLAG("BTSSOAllowIdPInitiated", set_srv_flag,
        SRV_OFF(allow_idp_initiated), RSRC_CONF,
        "Accept unsolicited (IdP-initiated) responses: On or Off (default "
        "On)"),
    AP_INIT_TAKE1("BTSSOPasswordLoginURL", set_password_login_url, NULL,
        RSRC_CONF,
        "Where discovery sends users of accounts without SSO: a local /path "
        "or an http(s) URL (default none: discovery shows a message)"),
    AP_INIT_TAKE1("BTSSOAccount", set_account_expr, NULL, OR_AUTHCFG,
        "ap_expr giving the account whose IdP a browser without session is "
        "sent to, e.g. %{env:PORTAL_ACCOUNT} (default none: the discovery "
        "page)"),
    AP_INIT_FLAG("BTSSOPasswordGuard", set_dir_flag, DIR_OFF(password_guard),
        OR_AUTHCFG,
        "Refuse password-authenticated users of SSO-enforced accounts: On or "
        "Off (default Off)"),
    AP_INIT_FLAG("BTSSOSetHeaders", set_dir_flag, DIR_OFF(set_headers),
        OR_AUTHCFG,
        "Pass the session as X-BTSSO-* request headers: On or Off (default "
        "Off)"),
    { NULL }
};
