/*
 * btssoctl - command line for support staff and operators: the same store,
 * checks and SP addressing as the module, read from the same httpd
 * configuration file (SPEC "Command line").
 *
 * Exit status 0 on success; 1 when a command is refused or fails, with one
 * line on stderr and nothing changed; 2 for a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pwd.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_lib.h>
#include <apr_time.h>
#include <jansson.h>

#include "core/btsso_error.h"
#include "core/addressing.h"
#include "core/cidr.h"
#include "core/refcode.h"
#include "crypto/cert.h"
#include "fetch/fetch.h"
#include "saml/metadata.h"
#include "saml/spmeta.h"
#include "store/store.h"
#include "store/refresh.h"
#include "saml/xmlsec_glue.h"
#include "saml/response.h"
#include "tools/httpd_conf.h"

#ifndef BTSSO_DEFAULT_CONF
#define BTSSO_DEFAULT_CONF "/etc/apache2/mods-available/btsso.conf"
#endif

#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define CERT_FILE_MAX (1024 * 1024)
#define DEFAULT_EXPIRING_DAYS 30
#define DEFAULT_SP_PATH "/sso"

static const char usage_text[] =
    "usage: btssoctl [-c FILE] [-d DRIVER] [-p PARAMS] [--json] COMMAND\n"
    "  init                                   create or upgrade the schema\n"
    "  account add ACCOUNT [--name NAME]      account list | account show ACCOUNT\n"
    "  account domain add|remove|list ACCOUNT [DOMAIN]   (support: domain claims)\n"
    "  user add ACCOUNT EXTENSION EMAIL [--kind user|call_queue] [--admin]\n"
    "  user list ACCOUNT\n"
    "  idp import ACCOUNT FILE|URL [--entity ENTITYID] [--shared]\n"
    "  idp show ACCOUNT\n"
    "  idp refresh ACCOUNT|--all\n"
    "  attr set ACCOUNT ATTRIBUTE|--name-id\n"
    "  cert add ACCOUNT FILE [--role primary|secondary|none]\n"
    "  cert list ACCOUNT | cert role ACCOUNT SHA256 ROLE | cert remove ACCOUNT SHA256\n"
    "  cert expiring [--days N]\n"
    "  enable ACCOUNT [--allow-password] | disable ACCOUNT\n"
    "  sp-metadata ACCOUNT\n"
    "  schema sqlite3|pgsql|mysql             print the schema as SQL\n"
    "  session revoke ACCOUNT [EMAIL]         end a user's sessions, or all\n"
    "  audit ACCOUNT [--since TIME]           the audit trail, newest first\n"
    "  sign-ins ACCOUNT [--failed] [--reference CODE] [--limit N] [--before NEXT]\n"
    "options:\n"
    "  -c FILE    httpd configuration file with DBDriver, DBDParams and the\n"
    "             BTSSO* directives (default " BTSSO_DEFAULT_CONF ")\n"
    "  -d DRIVER  store driver, sqlite3, pgsql or mysql (overrides DBDriver)\n"
    "  -p PARAMS  store parameters (overrides DBDParams)\n"
    "  --json     JSON output for show, list, audit, sign-ins and cert expiring\n"
    "exit status: 0 success; 1 refused or failed (one line on stderr, nothing\n"
    "changed); 2 usage error\n";

typedef struct ctl_t {
    apr_pool_t *p;
    int json;
    const char *conf_file;
    int conf_given;
    const char *driver;
    const char *params;
    btsso_httpd_conf_t *conf;
    btsso_store_t *store;
    const char *actor;
    apr_time_t now;
} ctl_t;

/* A command's words after the command name: positionals and --flags. */
typedef struct flag_spec_t {
    const char *name;           /* "--name" */
    int takes_value;
} flag_spec_t;

typedef struct cmd_args_t {
    apr_array_header_t *pos;    /* const char * */
    apr_hash_t *flags;          /* name -> value ("" for switches) */
} cmd_args_t;

/* ---- output helpers ----------------------------------------------------- */

/* Errors go out as one line: newlines in details become spaces. */
static const char *flat(apr_pool_t *p, const char *s)
{
    char *c, *out = apr_pstrdup(p, s != NULL ? s : "");

    for (c = out; *c != '\0'; c++) {
        if (*c == '\n' || *c == '\r' || *c == '\t') {
            *c = ' ';
        }
    }
    return out;
}

static const char *join(apr_pool_t *p, const apr_array_header_t *words,
                        const char *sep)
{
    const char *out = "";
    int i;

    for (i = 0; words != NULL && i < words->nelts; i++) {
        out = apr_pstrcat(p, out, i > 0 ? sep : "",
                          APR_ARRAY_IDX(words, i, const char *), NULL);
    }
    return out;
}

static int fail(ctl_t *ctl, const btsso_error_t *e)
{
    fprintf(stderr, "btssoctl: %s\n", flat(ctl->p, btsso_error_line(ctl->p,
                                                                     e)));
    return EXIT_REFUSED;
}

static int usage_error(ctl_t *ctl, const char *what)
{
    fprintf(stderr, "btssoctl: %s (see btssoctl --help)\n",
            flat(ctl->p, what));
    return EXIT_USAGE;
}

static const char *iso_time(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;
    char buf[32];
    apr_size_t len;

    apr_time_exp_gmt(&tm, t);
    apr_strftime(buf, &len, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return apr_pstrdup(p, buf);
}

static void print_json(json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (text != NULL) {
        puts(text);
        free(text);
    }
    json_decref(j);
}

static json_t *json_str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *json_words(const apr_array_header_t *words)
{
    json_t *a = json_array();
    int i;

    for (i = 0; words != NULL && i < words->nelts; i++) {
        json_array_append_new(a, json_string(APR_ARRAY_IDX(words, i,
                                                           const char *)));
    }
    return a;
}

static const char *cert_status(const btsso_cert_t *c, apr_time_t now)
{
    if (now < c->not_before) {
        return "not_yet_valid";
    }
    if (now > c->not_after) {
        return "expired";
    }
    return "valid";
}

/* ---- arguments ---------------------------------------------------------- */

static int parse_args(ctl_t *ctl, int argc, const char *const *argv,
                      int first, const flag_spec_t *specs, int min_pos,
                      int max_pos, cmd_args_t *out)
{
    int i;

    out->pos = apr_array_make(ctl->p, 4, sizeof(const char *));
    out->flags = apr_hash_make(ctl->p);
    for (i = first; i < argc; i++) {
        const char *a = argv[i];
        const flag_spec_t *f;
        const char *eq;
        apr_size_t n;

        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            APR_ARRAY_PUSH(out->pos, const char *) = a;
            continue;
        }
        eq = strchr(a, '=');
        n = eq != NULL ? (apr_size_t)(eq - a) : strlen(a);
        for (f = specs; f != NULL && f->name != NULL; f++) {
            if (strlen(f->name) == n && strncmp(f->name, a, n) == 0) {
                break;
            }
        }
        if (f == NULL || f->name == NULL) {
            return usage_error(ctl, apr_psprintf(ctl->p, "unknown option %s",
                                                 a));
        }
        if (f->takes_value) {
            const char *v;
            if (eq != NULL) {
                v = eq + 1;
            }
            else if (i + 1 < argc) {
                v = argv[++i];
            }
            else {
                return usage_error(ctl, apr_psprintf(ctl->p, "%s needs a "
                                                     "value", f->name));
            }
            apr_hash_set(out->flags, f->name, APR_HASH_KEY_STRING, v);
        }
        else if (eq != NULL) {
            return usage_error(ctl, apr_psprintf(ctl->p, "%s takes no value",
                                                 f->name));
        }
        else {
            apr_hash_set(out->flags, f->name, APR_HASH_KEY_STRING, "");
        }
    }
    if (out->pos->nelts < min_pos) {
        return usage_error(ctl, "missing arguments");
    }
    if (out->pos->nelts > max_pos) {
        return usage_error(ctl, apr_psprintf(
                               ctl->p, "unexpected argument %s",
                               APR_ARRAY_IDX(out->pos, max_pos,
                                             const char *)));
    }
    return 0;
}

static const char *pos(const cmd_args_t *a, int i)
{
    return i < a->pos->nelts ? APR_ARRAY_IDX(a->pos, i, const char *) : NULL;
}

static const char *flag(const cmd_args_t *a, const char *name)
{
    return apr_hash_get(a->flags, name, APR_HASH_KEY_STRING);
}

/* ---- set-up ------------------------------------------------------------- */

static btsso_error_t *load_conf(ctl_t *ctl)
{
    btsso_error_t *err;
    apr_finfo_t fi;

    if (ctl->conf != NULL) {
        return NULL;
    }
    if (!ctl->conf_given
        && apr_stat(&fi, ctl->conf_file, APR_FINFO_TYPE, ctl->p)
               != APR_SUCCESS) {
        /* no installed configuration: -d/-p alone must do */
        ctl->conf = apr_pcalloc(ctl->p, sizeof(*ctl->conf));
        ctl->conf->sql_overrides = apr_hash_make(ctl->p);
        return NULL;
    }
    err = btsso_httpd_conf_read(ctl->p, ctl->conf_file, &ctl->conf);
    return err;
}

static btsso_error_t *open_store(ctl_t *ctl)
{
    btsso_error_t *err;
    const char *driver, *params;

    if (ctl->store != NULL) {
        return NULL;
    }
    if ((err = load_conf(ctl)) != NULL) {
        return err;
    }
    driver = ctl->driver != NULL ? ctl->driver : ctl->conf->dbd_driver;
    params = ctl->params != NULL ? ctl->params : ctl->conf->dbd_params;
    if (driver == NULL || params == NULL) {
        return btsso_error_make(ctl->p, 400, "no_store",
                                "No account database is configured.",
                                "%s names no DBDriver/DBDParams; give -c FILE "
                                "or -d DRIVER -p PARAMS", ctl->conf_file);
    }
    return btsso_store_open(ctl->p, driver, params, ctl->conf->sql_overrides,
                            &ctl->store);
}

static btsso_error_t *read_bounded(apr_pool_t *p, const char *path,
                                   apr_size_t max, char **data,
                                   apr_size_t *len)
{
    apr_file_t *f;
    apr_status_t rv;
    apr_size_t got = 0, n;
    char *buf;
    char msg[120];

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, p);
    if (rv != APR_SUCCESS) {
        return btsso_error_make(p, 404, "no_file", "The file cannot be read.",
                                "%s: %s", path,
                                apr_strerror(rv, msg, sizeof(msg)));
    }
    /* one byte beyond the bound tells "too large" from "exactly max" */
    buf = apr_palloc(p, max + 2);
    do {
        n = max + 1 - got;
        rv = apr_file_read(f, buf + got, &n);
        got += n;
    } while (rv == APR_SUCCESS && n > 0 && got < max + 1);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF) {
        return btsso_error_make(p, 500, "no_file", "The file cannot be read.",
                                "%s: %s", path,
                                apr_strerror(rv, msg, sizeof(msg)));
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return NULL;
}

static apr_size_t metadata_max(const ctl_t *ctl)
{
    return ctl->conf->metadata_max_size > 0 ? ctl->conf->metadata_max_size
                                            : BTSSO_FETCH_DEFAULT_MAX_SIZE;
}

static btsso_error_t *fetch_opts(ctl_t *ctl, btsso_fetch_opts_t *o)
{
    btsso_error_t *err;
    btsso_cidr_list_t *allow = NULL;

    if ((err = btsso_fetch_global_init(ctl->p)) != NULL) {
        return err;
    }
    btsso_fetch_opts_default(o);
    o->max_size = metadata_max(ctl);
    if (ctl->conf->fetch_timeout_sec > 0) {
        o->timeout_sec = ctl->conf->fetch_timeout_sec;
    }
    o->allow_http = ctl->conf->fetch_http;
    if (ctl->conf->fetch_allow != NULL) {
        if ((err = btsso_cidr_list_parse(ctl->p, ctl->conf->fetch_allow,
                                         &allow)) != NULL) {
            return err;
        }
        o->allow = allow;
    }
    return NULL;
}

static int is_url(const char *s)
{
    return strstr(s, "://") != NULL;
}

/* ---- init and accounts -------------------------------------------------- */

static int cmd_init(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    cmd_args_t a;
    btsso_error_t *err;
    int from = 0, to = 0, rc;

    if ((rc = parse_args(ctl, argc, argv, at, NULL, 0, 0, &a)) != 0) {
        return rc;
    }
    if ((err = open_store(ctl)) != NULL
        || (err = btsso_store_init(ctl->store, &from, &to)) != NULL) {
        return fail(ctl, err);
    }
    if (from == to) {
        printf("schema is at version %d (%s), nothing to do\n", to,
               btsso_store_dialect(ctl->store));
    }
    else {
        printf("schema upgraded from version %d to %d (%s)\n", from, to,
               btsso_store_dialect(ctl->store));
    }
    return 0;
}

/* The DDL of init as a script, without a configuration or a store. */
static int cmd_schema(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    const char *sql;

    if (argc != at + 1) {
        return usage_error(ctl, "schema sqlite3|pgsql|mysql");
    }
    if ((sql = btsso_store_schema_sql(ctl->p, argv[at])) == NULL
        && btsso_store_driver_supported(argv[at])) {
        /* a schema step without DDL for this dialect (store.c) */
        return usage_error(ctl, apr_psprintf(ctl->p, "schema: a schema "
                                             "version has no %s form in "
                                             "this build", argv[at]));
    }
    if (sql == NULL) {
        return usage_error(ctl, apr_psprintf(ctl->p, "schema: unknown "
                                             "driver %s (sqlite3, pgsql or mysql)",
                                             argv[at]));
    }
    fputs(sql, stdout);
    return 0;
}

static json_t *account_json(const btsso_account_t *acc, apr_pool_t *p)
{
    json_t *o = json_object();

    json_object_set_new(o, "account", json_string(acc->account));
    json_object_set_new(o, "name", json_string(acc->name));
    json_object_set_new(o, "sso_enabled", json_boolean(acc->sso_enabled));
    json_object_set_new(o, "allow_password",
                        json_boolean(acc->allow_password));
    json_object_set_new(o, "version", json_integer(acc->version));
    json_object_set_new(o, "created", json_string(iso_time(p, acc->created)));
    json_object_set_new(o, "updated", json_string(iso_time(p, acc->updated)));
    return o;
}

static const char *email_mapping_text(const btsso_idp_t *idp)
{
    if (idp == NULL) {
        return NULL;
    }
    if (idp->email_from_name_id) {
        return "NameID";
    }
    return idp->email_attribute;
}

/* account domain add|remove|list ACCOUNT [DOMAIN]: support's claims. */
static int cmd_account_domain(ctl_t *ctl, int argc, const char *const *argv,
                              int at)
{
    const char *sub = at < argc ? argv[at] : "";
    cmd_args_t a;
    btsso_error_t *err;
    apr_array_header_t *list;
    int rc, i;

    if (strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0) {
        const char *norm;
        int add = sub[0] == 'a';

        if ((rc = parse_args(ctl, argc, argv, at + 1, NULL, 2, 2, &a)) != 0) {
            return rc;
        }
        if ((err = open_store(ctl)) != NULL) {
            return fail(ctl, err);
        }
        err = add ? btsso_store_domain_add(ctl->store, pos(&a, 0),
                                           pos(&a, 1), ctl->actor)
                  : btsso_store_domain_remove(ctl->store, pos(&a, 0),
                                              pos(&a, 1), ctl->actor);
        if (err != NULL) {
            return fail(ctl, err);
        }
        norm = btsso_domain_normalize(ctl->p, pos(&a, 1));
        printf("domain %s %s account %s\n", norm, add ? "claimed for"
                                                       : "released by",
               pos(&a, 0));
        return 0;
    }
    if (strcmp(sub, "list") == 0) {
        if ((rc = parse_args(ctl, argc, argv, at + 1, NULL, 1, 1, &a)) != 0) {
            return rc;
        }
        btsso_account_t *acc;
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                              &acc)) != NULL
            || (err = btsso_store_domain_list(ctl->store, ctl->p, pos(&a, 0),
                                              &list)) != NULL) {
            return fail(ctl, err);
        }
        if (ctl->json) {
            json_t *arr = json_array();
            for (i = 0; i < list->nelts; i++) {
                const btsso_domain_t *d = APR_ARRAY_IDX(list, i,
                                                        btsso_domain_t *);
                json_array_append_new(arr, json_pack(
                    "{s:s, s:s, s:s}", "domain", d->domain, "account",
                    d->account, "added", iso_time(ctl->p, d->added)));
            }
            print_json(arr);
            return 0;
        }
        printf("%-40s %s\n", "DOMAIN", "CLAIMED");
        for (i = 0; i < list->nelts; i++) {
            const btsso_domain_t *d = APR_ARRAY_IDX(list, i,
                                                    btsso_domain_t *);
            printf("%-40s %s\n", d->domain, iso_time(ctl->p, d->added));
        }
        return 0;
    }
    return usage_error(ctl, "account domain add|remove|list ACCOUNT "
                       "[DOMAIN]");
}

static int cmd_account(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    static const flag_spec_t add_flags[] = { { "--name", 1 }, { NULL, 0 } };
    const char *sub = at < argc ? argv[at] : "";
    cmd_args_t a;
    btsso_error_t *err;
    int rc, i;

    if (strcmp(sub, "add") == 0) {
        if ((rc = parse_args(ctl, argc, argv, at + 1, add_flags, 1, 1,
                             &a)) != 0) {
            return rc;
        }
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_account_add(ctl->store, pos(&a, 0),
                                              flag(&a, "--name"),
                                              ctl->actor)) != NULL) {
            return fail(ctl, err);
        }
        printf("account %s added\n", pos(&a, 0));
        return 0;
    }
    if (strcmp(sub, "domain") == 0) {
        return cmd_account_domain(ctl, argc, argv, at + 1);
    }
    if (strcmp(sub, "list") == 0) {
        apr_array_header_t *list;
        if ((rc = parse_args(ctl, argc, argv, at + 1, NULL, 0, 0, &a)) != 0) {
            return rc;
        }
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_account_list(ctl->store, ctl->p,
                                               &list)) != NULL) {
            return fail(ctl, err);
        }
        if (ctl->json) {
            json_t *arr = json_array();
            for (i = 0; i < list->nelts; i++) {
                json_array_append_new(arr, account_json(
                    APR_ARRAY_IDX(list, i, btsso_account_t *), ctl->p));
            }
            print_json(arr);
            return 0;
        }
        printf("%-24s %-4s %-8s %-7s %s\n", "ACCOUNT", "SSO", "PASSWORD",
               "VERSION", "NAME");
        for (i = 0; i < list->nelts; i++) {
            const btsso_account_t *acc = APR_ARRAY_IDX(list, i,
                                                       btsso_account_t *);
            printf("%-24s %-4s %-8s %-7" APR_INT64_T_FMT " %s\n",
                   acc->account, acc->sso_enabled ? "on" : "off",
                   acc->allow_password ? "allowed" : "refused", acc->version,
                   acc->name);
        }
        return 0;
    }
    if (strcmp(sub, "show") == 0) {
        btsso_account_t *acc;
        btsso_idp_t *idp;
        btsso_policy_t *pol;
        apr_array_header_t *certs, *missing;
        if ((rc = parse_args(ctl, argc, argv, at + 1, NULL, 1, 1, &a)) != 0) {
            return rc;
        }
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                              &acc)) != NULL
            || (err = btsso_store_idp_get(ctl->store, ctl->p, pos(&a, 0),
                                          &idp)) != NULL
            || (err = btsso_store_cert_list(ctl->store, ctl->p, pos(&a, 0),
                                            &certs)) != NULL
            || (err = btsso_store_policy_get(ctl->store, ctl->p, pos(&a, 0),
                                             &pol)) != NULL) {
            return fail(ctl, err);
        }
        missing = btsso_account_missing(ctl->p, idp, certs, ctl->now);
        if (ctl->json) {
            json_t *o = account_json(acc, ctl->p);
            json_object_set_new(o, "idp_entity_id",
                                json_str_or_null(idp ? idp->entity_id
                                                     : NULL));
            json_object_set_new(o, "idp_shared",
                                json_boolean(idp != NULL && idp->shared));
            json_object_set_new(o, "email_mapping",
                                json_str_or_null(email_mapping_text(idp)));
            json_object_set_new(o, "certificates",
                                json_integer(certs->nelts));
            json_object_set_new(o, "missing", json_words(missing));
            json_object_set_new(o, "policy", json_pack(
                "{s:o, s:b, s:b, s:o}", "authn_context",
                json_words(pol->authn_context), "request_authn_context",
                pol->request_authn_context, "force_authn", pol->force_authn,
                "session_max_age", pol->session_max_age > 0
                    ? json_integer(apr_time_sec(pol->session_max_age))
                    : json_null()));
            print_json(o);
            return 0;
        }
        printf("account:        %s\n", acc->account);
        printf("name:           %s\n", acc->name);
        printf("sso:            %s\n", acc->sso_enabled ? "enabled"
                                                         : "disabled");
        printf("password login: %s\n", acc->allow_password
                                        ? "allowed" : "refused while SSO is "
                                                      "enabled");
        printf("version:        %" APR_INT64_T_FMT "\n", acc->version);
        printf("created:        %s\n", iso_time(ctl->p, acc->created));
        printf("updated:        %s\n", iso_time(ctl->p, acc->updated));
        printf("idp:            %s%s\n", idp ? idp->entity_id : "(none)",
               idp && idp->shared ? " (shared)" : "");
        printf("email from:     %s\n", email_mapping_text(idp)
                                       ? email_mapping_text(idp) : "(unset)");
        printf("certificates:   %d\n", certs->nelts);
        printf("missing:        %s\n", missing->nelts > 0
                                       ? join(ctl->p, missing, ", ")
                                       : "(nothing)");
        printf("policy:         %s\n", btsso_policy_is_default(pol)
               ? "(server defaults)"
               : apr_psprintf(ctl->p, "authn_context=%s%s force_authn=%s "
                              "session_max_age=%s",
                              pol->authn_context->nelts > 0
                                  ? join(ctl->p, pol->authn_context, ",")
                                  : "(any)",
                              pol->request_authn_context ? " (requested)"
                                                         : "",
                              pol->force_authn ? "on" : "off",
                              pol->session_max_age > 0
                                  ? apr_psprintf(ctl->p, "%" APR_INT64_T_FMT
                                                 "s", (apr_int64_t)
                                                 apr_time_sec(
                                                     pol->session_max_age))
                                  : "(server)"));
        return 0;
    }
    return usage_error(ctl, "account add|list|show|domain");
}

/* ---- users -------------------------------------------------------------- */

static int cmd_user(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    static const flag_spec_t add_flags[] = {
        { "--kind", 1 }, { "--admin", 0 }, { NULL, 0 }
    };
    const char *sub = at < argc ? argv[at] : "";
    cmd_args_t a;
    btsso_error_t *err;
    int rc, i;

    if (strcmp(sub, "add") == 0) {
        const char *kind;
        if ((rc = parse_args(ctl, argc, argv, at + 1, add_flags, 3, 3,
                             &a)) != 0) {
            return rc;
        }
        kind = flag(&a, "--kind") != NULL ? flag(&a, "--kind") : "user";
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_user_add(ctl->store, pos(&a, 0), pos(&a, 1),
                                           pos(&a, 2), kind,
                                           flag(&a, "--admin") != NULL,
                                           ctl->actor)) != NULL) {
            return fail(ctl, err);
        }
        printf("%s %s added to account %s\n",
               strcmp(kind, "call_queue") == 0 ? "call queue" : "user",
               pos(&a, 1), pos(&a, 0));
        return 0;
    }
    if (strcmp(sub, "list") == 0) {
        apr_array_header_t *list;
        btsso_account_t *acc;
        if ((rc = parse_args(ctl, argc, argv, at + 1, NULL, 1, 1, &a)) != 0) {
            return rc;
        }
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                              &acc)) != NULL
            || (err = btsso_store_user_list(ctl->store, ctl->p, pos(&a, 0),
                                            &list)) != NULL) {
            return fail(ctl, err);
        }
        if (ctl->json) {
            json_t *arr = json_array();
            for (i = 0; i < list->nelts; i++) {
                const btsso_user_t *u = APR_ARRAY_IDX(list, i,
                                                      btsso_user_t *);
                json_t *o = json_object();
                json_object_set_new(o, "extension", json_string(u->extension));
                json_object_set_new(o, "kind", json_string(u->kind));
                json_object_set_new(o, "email", json_string(u->email));
                json_object_set_new(o, "is_admin", json_boolean(u->is_admin));
                json_array_append_new(arr, o);
            }
            print_json(arr);
            return 0;
        }
        printf("%-12s %-10s %-5s %s\n", "EXTENSION", "KIND", "ADMIN",
               "EMAIL");
        for (i = 0; i < list->nelts; i++) {
            const btsso_user_t *u = APR_ARRAY_IDX(list, i, btsso_user_t *);
            printf("%-12s %-10s %-5s %s\n", u->extension, u->kind,
                   u->is_admin ? "yes" : "no", u->email);
        }
        return 0;
    }
    return usage_error(ctl, "user add|list");
}

/* ---- IdP ---------------------------------------------------------------- */

static apr_status_t xmlsec_done(void *unused)
{
    btsso_xmlsec_shutdown();
    return APR_SUCCESS;
}

/* Metadata signatures are checked with xmlsec: set it up once. */
static btsso_error_t *need_xmlsec(ctl_t *ctl)
{
    static int done;
    btsso_error_t *err;

    if (done) {
        return NULL;
    }
    if ((err = btsso_xmlsec_init(ctl->p)) != NULL) {
        return err;
    }
    apr_pool_cleanup_register(ctl->p, NULL, xmlsec_done,
                              apr_pool_cleanup_null);
    done = 1;
    return NULL;
}

/* BTSSOMetadataRefreshInterval of the configuration (6 h unset). */
static apr_interval_time_t refresh_interval(const ctl_t *ctl)
{
    return ctl->conf->refresh_interval >= 0 ? ctl->conf->refresh_interval
                                            : apr_time_from_sec(6 * 3600);
}

static void print_cert_line(ctl_t *ctl, const btsso_stored_cert_t *sc)
{
    printf("  %s %-9s %-13s until %s  %s\n", sc->cert->sha256,
           btsso_cert_role_name(sc->role), cert_status(sc->cert, ctl->now),
           iso_time(ctl->p, sc->cert->not_after), sc->cert->subject);
}

/* Fetch or read, then parse: nothing is stored here. */
static btsso_error_t *load_metadata(ctl_t *ctl, const char *source,
                                    const char *entity,
                                    btsso_idp_metadata_t **md,
                                    const char **xml)
{
    btsso_error_t *err;
    char *data;
    apr_size_t len;

    if (is_url(source)) {
        btsso_fetch_opts_t o;
        if ((err = fetch_opts(ctl, &o)) != NULL
            || (err = btsso_fetch_url(ctl->p, source, &o, &data, &len,
                                      NULL)) != NULL) {
            return err;
        }
    }
    else if ((err = read_bounded(ctl->p, source, metadata_max(ctl), &data,
                                 &len)) != NULL) {
        return err;
    }
    if ((err = btsso_metadata_parse(ctl->p, data, len, metadata_max(ctl),
                                    entity, md)) != NULL) {
        return err;
    }
    /* the UTF-8 form that is stored, so that refresh compares like with
     * like whatever encoding the IdP serves */
    *xml = apr_pstrmemdup(ctl->p, (*md)->xml, (*md)->xml_len);
    return NULL;
}

static void print_import_summary(ctl_t *ctl, const char *account,
                                 const btsso_idp_metadata_t *md)
{
    apr_array_header_t *certs = NULL, *missing;
    btsso_idp_t *idp = NULL;
    int i;

    printf("account %s: IdP %s\n", account, md->entity_id);
    for (i = 0; i < md->sso->nelts; i++) {
        const btsso_endpoint_t *e = &APR_ARRAY_IDX(md->sso, i,
                                                   btsso_endpoint_t);
        printf("  SSO %s %s\n", e->binding, e->location);
    }
    if (btsso_store_cert_list(ctl->store, ctl->p, account, &certs) == NULL
        && btsso_store_idp_get(ctl->store, ctl->p, account, &idp) == NULL) {
        printf("certificates:\n");
        for (i = 0; i < certs->nelts; i++) {
            print_cert_line(ctl, APR_ARRAY_IDX(certs, i,
                                               btsso_stored_cert_t *));
        }
        missing = btsso_account_missing(ctl->p, idp, certs, ctl->now);
        if (missing->nelts > 0) {
            printf("still missing before SSO can be enabled: %s\n",
                   join(ctl->p, missing, ", "));
        }
    }
}

static int idp_import(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    static const flag_spec_t flags[] = {
        { "--entity", 1 }, { "--shared", 0 }, { NULL, 0 }
    };
    cmd_args_t a;
    btsso_error_t *err;
    btsso_idp_metadata_t *md;
    btsso_account_t *acc;
    btsso_md_trust_t facts;
    const char *xml, *source;
    int rc;

    if ((rc = parse_args(ctl, argc, argv, at, flags, 2, 2, &a)) != 0) {
        return rc;
    }
    source = pos(&a, 1);
    if ((err = open_store(ctl)) != NULL
        || (err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                          &acc)) != NULL
        || (err = load_metadata(ctl, source, flag(&a, "--entity"), &md,
                                &xml)) != NULL
        || (err = need_xmlsec(ctl)) != NULL
        /* validUntil, and a signature when this IdP's keys are trusted */
        || (err = btsso_refresh_check_upload(ctl->store, ctl->p, pos(&a, 0),
                                             md, 0, 0, ctl->now,
                                             &facts)) != NULL
        || (err = btsso_store_idp_set(ctl->store, pos(&a, 0), md, xml,
                                      is_url(source) ? source : NULL,
                                      flag(&a, "--shared") != NULL, 0,
                                      ctl->now, ctl->actor)) != NULL
        || (is_url(source)
            && (err = btsso_refresh_schedule_upload(
                    ctl->store, pos(&a, 0), &facts, refresh_interval(ctl),
                    ctl->now)) != NULL)) {
        return fail(ctl, err);
    }
    print_import_summary(ctl, pos(&a, 0), md);
    return 0;
}

static json_t *endpoints_json(const apr_array_header_t *eps)
{
    json_t *arr = json_array();
    int i;

    for (i = 0; eps != NULL && i < eps->nelts; i++) {
        const btsso_endpoint_t *e = &APR_ARRAY_IDX(eps, i, btsso_endpoint_t);
        json_t *o = json_object();
        json_object_set_new(o, "binding", json_string(e->binding));
        json_object_set_new(o, "location", json_string(e->location));
        if (e->response_location != NULL) {
            json_object_set_new(o, "response_location",
                                json_string(e->response_location));
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

static json_t *cert_json(ctl_t *ctl, const btsso_stored_cert_t *sc)
{
    json_t *o = json_object();

    json_object_set_new(o, "sha256", json_string(sc->cert->sha256));
    json_object_set_new(o, "role", json_string(btsso_cert_role_name(sc->role)));
    json_object_set_new(o, "status",
                        json_string(cert_status(sc->cert, ctl->now)));
    json_object_set_new(o, "subject", json_string(sc->cert->subject));
    json_object_set_new(o, "issuer", json_string(sc->cert->issuer));
    json_object_set_new(o, "not_before",
                        json_string(iso_time(ctl->p, sc->cert->not_before)));
    json_object_set_new(o, "not_after",
                        json_string(iso_time(ctl->p, sc->cert->not_after)));
    json_object_set_new(o, "key_type", json_str_or_null(sc->cert->key_type));
    json_object_set_new(o, "source", json_string(sc->source));
    json_object_set_new(o, "added", json_string(iso_time(ctl->p, sc->added)));
    return o;
}

static const char *sp_path(const ctl_t *ctl)
{
    return ctl->conf->sp_path != NULL ? ctl->conf->sp_path : DEFAULT_SP_PATH;
}

static int idp_show(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    cmd_args_t a;
    btsso_error_t *err;
    btsso_account_t *acc;
    btsso_idp_t *idp;
    btsso_idp_metadata_t *md = NULL;
    btsso_refresh_state_t *rs = NULL;
    apr_array_header_t *certs;
    btsso_sp_addr_t addr;
    int rc, i, have_addr;

    if ((rc = parse_args(ctl, argc, argv, at, NULL, 1, 1, &a)) != 0) {
        return rc;
    }
    if ((err = open_store(ctl)) != NULL
        || (err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                          &acc)) != NULL
        || (err = btsso_store_idp_get(ctl->store, ctl->p, pos(&a, 0),
                                      &idp)) != NULL) {
        return fail(ctl, err);
    }
    if (idp == NULL) {
        return fail(ctl, btsso_error_make(ctl->p, 404, "no_idp",
                                          "The account has no IdP.",
                                          "account %s", pos(&a, 0)));
    }
    if ((err = btsso_store_cert_list(ctl->store, ctl->p, pos(&a, 0),
                                     &certs)) != NULL
        || (idp->source_url != NULL
            && (err = btsso_store_refresh_get(ctl->store, ctl->p, pos(&a, 0),
                                              &rs)) != NULL)) {
        return fail(ctl, err);
    }
    /* the facts come from the stored copy, parsed as on upload */
    err = btsso_metadata_parse(ctl->p, idp->metadata_xml,
                               strlen(idp->metadata_xml),
                               strlen(idp->metadata_xml) + 1,
                               idp->entity_id, &md);
    if (err != NULL) {
        md = NULL;
    }
    have_addr = ctl->conf->base_url != NULL;
    if (have_addr) {
        btsso_sp_addressing(ctl->p, ctl->conf->base_url, sp_path(ctl),
                            ctl->conf->sp_entity_id, idp->account,
                            idp->shared, &addr);
    }
    if (ctl->json) {
        json_t *o = json_object(), *arr;
        json_object_set_new(o, "account", json_string(idp->account));
        json_object_set_new(o, "entity_id", json_string(idp->entity_id));
        json_object_set_new(o, "shared", json_boolean(idp->shared));
        json_object_set_new(o, "source_url",
                            json_str_or_null(idp->source_url));
        json_object_set_new(o, "email_attribute",
                            json_str_or_null(idp->email_attribute));
        json_object_set_new(o, "email_from_name_id",
                            json_boolean(idp->email_from_name_id));
        json_object_set_new(o, "updated",
                            json_string(iso_time(ctl->p, idp->updated)));
        if (have_addr) {
            json_object_set_new(o, "sp_entity_id",
                                json_string(addr.entity_id));
            json_object_set_new(o, "sp_acs_url", json_string(addr.acs_url));
        }
        if (md != NULL) {
            json_object_set_new(o, "sso", endpoints_json(md->sso));
            json_object_set_new(o, "slo", endpoints_json(md->slo));
            json_object_set_new(o, "nameid_formats",
                                json_words(md->nameid_formats));
            arr = json_array();
            for (i = 0; i < md->attributes->nelts; i++) {
                const btsso_md_attribute_t *at_ =
                    &APR_ARRAY_IDX(md->attributes, i, btsso_md_attribute_t);
                json_t *ao = json_object();
                json_object_set_new(ao, "name", json_string(at_->name));
                json_object_set_new(ao, "friendly_name",
                                    json_str_or_null(at_->friendly_name));
                json_array_append_new(arr, ao);
            }
            json_object_set_new(o, "attributes", arr);
        }
        else {
            json_object_set_new(o, "metadata_error",
                                json_string(err->code));
        }
        arr = json_array();
        for (i = 0; i < certs->nelts; i++) {
            json_array_append_new(arr, cert_json(ctl, APR_ARRAY_IDX(
                certs, i, btsso_stored_cert_t *)));
        }
        json_object_set_new(o, "certificates", arr);
        if (rs != NULL) {
            json_object_set_new(o, "refresh", json_pack(
                "{s:s?, s:s?, s:s?, s:i, s:s?}",
                "last_ok", rs->last_ok ? iso_time(ctl->p, rs->last_ok) : NULL,
                "last_attempt", rs->last_attempt
                    ? iso_time(ctl->p, rs->last_attempt) : NULL,
                "next", iso_time(ctl->p, rs->next_due),
                "failures", rs->failures, "last_error", rs->last_error));
        }
        print_json(o);
        return 0;
    }
    printf("account:      %s\n", idp->account);
    printf("entityID:     %s%s\n", idp->entity_id,
           idp->shared ? " (shared by support)" : "");
    printf("source:       %s\n", idp->source_url ? idp->source_url
                                                 : "uploaded file");
    printf("email from:   %s\n", email_mapping_text(idp)
                                 ? email_mapping_text(idp) : "(unset)");
    printf("updated:      %s\n", iso_time(ctl->p, idp->updated));
    if (have_addr) {
        printf("SP entityID:  %s\n", addr.entity_id);
        printf("SP ACS:       %s\n", addr.acs_url);
    }
    if (md != NULL) {
        for (i = 0; i < md->sso->nelts; i++) {
            const btsso_endpoint_t *e = &APR_ARRAY_IDX(md->sso, i,
                                                       btsso_endpoint_t);
            printf("SSO:          %s %s\n", e->binding, e->location);
        }
        for (i = 0; i < md->slo->nelts; i++) {
            const btsso_endpoint_t *e = &APR_ARRAY_IDX(md->slo, i,
                                                       btsso_endpoint_t);
            printf("SLO:          %s %s\n", e->binding, e->location);
        }
        for (i = 0; i < md->nameid_formats->nelts; i++) {
            printf("NameID:       %s\n",
                   APR_ARRAY_IDX(md->nameid_formats, i, const char *));
        }
        for (i = 0; i < md->attributes->nelts; i++) {
            const btsso_md_attribute_t *at_ =
                &APR_ARRAY_IDX(md->attributes, i, btsso_md_attribute_t);
            printf("attribute:    %s%s%s%s\n", at_->name,
                   at_->friendly_name ? " (" : "",
                   at_->friendly_name ? at_->friendly_name : "",
                   at_->friendly_name ? ")" : "");
        }
    }
    if (rs != NULL) {
        printf("refreshed:    %s, next %s%s%s\n",
               rs->last_ok ? iso_time(ctl->p, rs->last_ok) : "not yet",
               iso_time(ctl->p, rs->next_due),
               rs->last_error ? "; last attempt failed: " : "",
               rs->last_error ? rs->last_error : "");
    }
    printf("certificates:\n");
    for (i = 0; i < certs->nelts; i++) {
        print_cert_line(ctl, APR_ARRAY_IDX(certs, i, btsso_stored_cert_t *));
    }
    return 0;
}

static const char *cert_words(ctl_t *ctl, const apr_array_header_t *certs)
{
    apr_array_header_t *words = apr_array_make(ctl->p, 2, sizeof(char *));
    int i;

    for (i = 0; i < certs->nelts; i++) {
        const btsso_cert_t *c = APR_ARRAY_IDX(certs, i, btsso_cert_t *);
        APR_ARRAY_PUSH(words, const char *) =
            apr_psprintf(ctl->p, "%s (%s, until %s)", c->sha256, c->subject,
                         iso_time(ctl->p, c->not_after));
    }
    return join(ctl->p, words, "; ");
}

/*
 * Refresh one account from its URL, by the rules the module's own refresh
 * follows (store/refresh.h): on a fetch, parse, validUntil or signature
 * failure nothing is written but the schedule, the last good metadata
 * stays in use.  New signing certificates are added without a role; one
 * fills the secondary slot (when empty or no longer valid) only when the
 * document's signature verified with a certificate the account trusts.
 */
static btsso_error_t *refresh_one(ctl_t *ctl, const char *account,
                                  const char **report)
{
    btsso_refresh_opts_t o;
    btsso_refresh_report_t *rep = NULL;
    btsso_error_t *err;
    int waiting;

    memset(&o, 0, sizeof(o));
    if ((err = need_xmlsec(ctl)) != NULL
        || (err = fetch_opts(ctl, &o.fetch)) != NULL) {
        return err;
    }
    o.interval = refresh_interval(ctl);
    if (o.interval <= 0) {
        o.interval = apr_time_from_sec(6 * 3600);
    }
    o.actor = ctl->actor;
    if ((err = btsso_refresh_account(ctl->store, ctl->p, account, &o,
                                     ctl->now, &rep)) != NULL) {
        return err;
    }
    if (rep->error != NULL) {
        return rep->error;
    }
    if (!rep->changed) {
        *report = "unchanged";
        return NULL;
    }
    waiting = btsso_refresh_waiting(rep);
    *report = apr_psprintf(ctl->p, "refreshed; %s%s%s%s",
                           rep->added->nelts > 0
                           ? apr_pstrcat(ctl->p, "new signing certificates: ",
                                         cert_words(ctl, rep->added), NULL)
                           : "no new signing certificates",
                           rep->promoted != NULL ? "; secondary is now " : "",
                           rep->promoted != NULL ? rep->promoted : "",
                           waiting > 0
                           ? (rep->signature == BTSSO_MDSIG_VERIFIED
                              ? "; waiting for promotion (the secondary "
                                "slot is taken)"
                              : "; waiting for promotion (the metadata is "
                                "not signed by a certificate the account "
                                "trusts)") : "");
    return NULL;
}

static int idp_refresh(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    static const flag_spec_t flags[] = { { "--all", 0 }, { NULL, 0 } };
    cmd_args_t a;
    btsso_error_t *err;
    apr_array_header_t *accounts, *failures;
    int rc, i, all;

    if ((rc = parse_args(ctl, argc, argv, at, flags, 0, 1, &a)) != 0) {
        return rc;
    }
    all = flag(&a, "--all") != NULL;
    if (all == (pos(&a, 0) != NULL)) {
        return usage_error(ctl, "idp refresh takes an ACCOUNT or --all");
    }
    if ((err = open_store(ctl)) != NULL) {
        return fail(ctl, err);
    }
    if (all) {
        if ((err = btsso_store_url_accounts(ctl->store, ctl->p, &accounts))
            != NULL) {
            return fail(ctl, err);
        }
    }
    else {
        btsso_account_t *acc;
        if ((err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                           &acc)) != NULL) {
            return fail(ctl, err);
        }
        accounts = apr_array_make(ctl->p, 1, sizeof(const char *));
        APR_ARRAY_PUSH(accounts, const char *) = pos(&a, 0);
    }
    failures = apr_array_make(ctl->p, 1, sizeof(const char *));
    for (i = 0; i < accounts->nelts; i++) {
        const char *account = APR_ARRAY_IDX(accounts, i, const char *);
        const char *report = NULL;
        err = refresh_one(ctl, account, &report);
        if (err != NULL) {
            if (!all) {
                return fail(ctl, err);
            }
            printf("%s: failed, kept the last good metadata: %s\n", account,
                   flat(ctl->p, btsso_error_line(ctl->p, err)));
            APR_ARRAY_PUSH(failures, const char *) =
                apr_psprintf(ctl->p, "%s (%s)", account, err->code);
        }
        else {
            printf("%s: %s\n", account, report);
        }
    }
    if (failures->nelts > 0) {
        fprintf(stderr, "btssoctl: idp refresh failed for %d of %d "
                "accounts, the last good metadata stays in use: %s\n",
                failures->nelts, accounts->nelts,
                join(ctl->p, failures, ", "));
        return EXIT_REFUSED;
    }
    return 0;
}

static int cmd_idp(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    const char *sub = at < argc ? argv[at] : "";

    if (strcmp(sub, "import") == 0) {
        return idp_import(ctl, argc, argv, at + 1);
    }
    if (strcmp(sub, "show") == 0) {
        return idp_show(ctl, argc, argv, at + 1);
    }
    if (strcmp(sub, "refresh") == 0) {
        return idp_refresh(ctl, argc, argv, at + 1);
    }
    return usage_error(ctl, "idp import|show|refresh");
}

static int cmd_attr(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    static const flag_spec_t flags[] = { { "--name-id", 0 }, { NULL, 0 } };
    cmd_args_t a;
    btsso_error_t *err;
    int rc, name_id;

    if (at >= argc || strcmp(argv[at], "set") != 0) {
        return usage_error(ctl, "attr set ACCOUNT ATTRIBUTE|--name-id");
    }
    if ((rc = parse_args(ctl, argc, argv, at + 1, flags, 1, 2, &a)) != 0) {
        return rc;
    }
    name_id = flag(&a, "--name-id") != NULL;
    if (name_id == (pos(&a, 1) != NULL)) {
        return usage_error(ctl, "attr set takes an ATTRIBUTE or --name-id");
    }
    if ((err = open_store(ctl)) != NULL
        || (err = btsso_store_email_set(ctl->store, pos(&a, 0), pos(&a, 1),
                                        name_id, 0, ctl->actor)) != NULL) {
        return fail(ctl, err);
    }
    printf("account %s: email taken from %s\n", pos(&a, 0),
           name_id ? "the NameID" : pos(&a, 1));
    return 0;
}

/* ---- sessions -------------------------------------------------------------- */

/* Every node sees it within BTSSOConfigTTL (its account cache). */
static int cmd_session(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    cmd_args_t a;
    btsso_error_t *err;
    int rc;

    if (at >= argc || strcmp(argv[at], "revoke") != 0) {
        return usage_error(ctl, "session revoke ACCOUNT [EMAIL]");
    }
    if ((rc = parse_args(ctl, argc, argv, at + 1, NULL, 1, 2, &a)) != 0) {
        return rc;
    }
    if ((err = open_store(ctl)) != NULL
        || (err = btsso_store_sessions_revoke(ctl->store, pos(&a, 0),
                                              pos(&a, 1), ctl->now,
                                              ctl->actor)) != NULL) {
        return fail(ctl, err);
    }
    if (pos(&a, 1) != NULL) {
        printf("account %s: sessions of %s revoked (every node within "
               "BTSSOConfigTTL)\n", pos(&a, 0), pos(&a, 1));
    }
    else {
        printf("account %s: every session revoked (every node within "
               "BTSSOConfigTTL)\n", pos(&a, 0));
    }
    return 0;
}

/* ---- sign-ins ---------------------------------------------------------------- */

static json_t *signin_json(ctl_t *ctl, const btsso_signin_t *si)
{
    json_t *o = json_object();

    json_object_set_new(o, "reference", json_string(si->reference));
    json_object_set_new(o, "at", json_string(iso_time(ctl->p, si->at)));
    json_object_set_new(o, "result", json_string(si->result));
    json_object_set_new(o, "email", json_str_or_null(si->email));
    json_object_set_new(o, "name_id", json_str_or_null(si->name_id));
    json_object_set_new(o, "idp", json_str_or_null(si->idp));
    json_object_set_new(o, "detail", json_str_or_null(si->detail));
    return o;
}

/* What GET <account>/sign-ins shows; --before takes the "next" printed
 * after a full page.  Counts the module still holds in a process's memory
 * (at most BTSSOConfigTTL old) are not in the store yet. */
static int cmd_sign_ins(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    static const flag_spec_t specs[] = {
        { "--failed", 0 }, { "--reference", 1 }, { "--limit", 1 },
        { "--before", 1 }, { NULL, 0 }
    };
    btsso_signin_filter_t f;
    btsso_account_t *acc;
    apr_array_header_t *list;
    btsso_error_t *err;
    const char *v, *next = NULL;
    cmd_args_t a;
    int rc, more = 0, i;

    if ((rc = parse_args(ctl, argc, argv, at, specs, 1, 1, &a)) != 0) {
        return rc;
    }
    memset(&f, 0, sizeof(f));
    f.limit = 100;
    f.failed_only = flag(&a, "--failed") != NULL;
    if ((v = flag(&a, "--reference")) != NULL) {
        f.reference = btsso_refcode_normalize(ctl->p, v);
        if (f.reference == NULL) {
            return usage_error(ctl, apr_psprintf(ctl->p, "--reference %s: a "
                               "code has eight letters and digits, like "
                               "K7QX-M2PA", v));
        }
    }
    if ((v = flag(&a, "--limit")) != NULL) {
        char *end = NULL;
        apr_int64_t n = apr_strtoi64(v, &end, 10);

        if (end == NULL || *end != '\0' || n < 1
            || n > BTSSO_SIGNIN_LIST_MAX) {
            return usage_error(ctl, apr_psprintf(ctl->p, "--limit takes 1 "
                               "to %d", BTSSO_SIGNIN_LIST_MAX));
        }
        f.limit = (int)n;
    }
    if ((v = flag(&a, "--before")) != NULL) {
        const char *us = strchr(v, '_');
        char *end = NULL;
        apr_int64_t secs = us != NULL
            ? apr_strtoi64(apr_pstrmemdup(ctl->p, v, us - v), &end, 10) : -1;

        f.before_ref = us != NULL ? btsso_refcode_normalize(ctl->p, us + 1)
                                  : NULL;
        if (us == NULL || us == v || end == NULL || *end != '\0' || secs < 0
            || f.before_ref == NULL) {
            return usage_error(ctl, "--before takes the \"next\" of the "
                               "previous page");
        }
        f.before_at = apr_time_from_sec(secs);
    }
    if ((err = open_store(ctl)) != NULL
        || (err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                          &acc)) != NULL
        || (err = btsso_store_signin_list(ctl->store, ctl->p, pos(&a, 0), &f,
                                          &list, &more)) != NULL) {
        return fail(ctl, err);
    }
    if (more && list->nelts > 0) {
        const btsso_signin_t *last = APR_ARRAY_IDX(list, list->nelts - 1,
                                                   btsso_signin_t *);
        next = apr_psprintf(ctl->p, "%" APR_TIME_T_FMT "_%s",
                            apr_time_sec(last->at), last->reference);
    }
    if (ctl->json) {
        json_t *arr = json_array();
        for (i = 0; i < list->nelts; i++) {
            json_array_append_new(arr, signin_json(
                ctl, APR_ARRAY_IDX(list, i, btsso_signin_t *)));
        }
        print_json(json_pack("{s:o, s:o}", "sign_ins", arr, "next",
                             json_str_or_null(next)));
        return 0;
    }
    if (list->nelts == 0) {
        printf("account %s: no sign-ins recorded%s\n", pos(&a, 0),
               f.reference ? " with that reference" : "");
    }
    for (i = 0; i < list->nelts; i++) {
        const btsso_signin_t *si = APR_ARRAY_IDX(list, i, btsso_signin_t *);

        printf("%s  %s  %-22s %s%s%s\n", iso_time(ctl->p, si->at),
               si->reference, si->result,
               si->email ? si->email : (si->name_id ? si->name_id : "-"),
               si->detail ? "  " : "", si->detail ? si->detail : "");
    }
    if (next != NULL) {
        printf("more: btssoctl sign-ins %s --before %s\n", pos(&a, 0), next);
    }
    return 0;
}

/* ---- certificates ------------------------------------------------------- */

static int parse_role(ctl_t *ctl, const char *text, btsso_cert_role_e *role)
{
    if (btsso_cert_role_parse(text, role) != 0) {
        return usage_error(ctl, apr_psprintf(ctl->p, "role %s: use primary, "
                                             "secondary or none", text));
    }
    return 0;
}

static int cmd_cert(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    static const flag_spec_t add_flags[] = { { "--role", 1 }, { NULL, 0 } };
    static const flag_spec_t exp_flags[] = { { "--days", 1 }, { NULL, 0 } };
    const char *sub = at < argc ? argv[at] : "";
    cmd_args_t a;
    btsso_error_t *err;
    btsso_cert_role_e role = BTSSO_ROLE_NONE;
    int rc, i;

    if (strcmp(sub, "add") == 0) {
        btsso_cert_t *cert;
        btsso_account_t *acc;
        char *data;
        apr_size_t len;
        if ((rc = parse_args(ctl, argc, argv, at + 1, add_flags, 2, 2,
                             &a)) != 0
            || (flag(&a, "--role") != NULL
                && (rc = parse_role(ctl, flag(&a, "--role"), &role)) != 0)) {
            return rc;
        }
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                              &acc)) != NULL
            || (err = read_bounded(ctl->p, pos(&a, 1), CERT_FILE_MAX, &data,
                                   &len)) != NULL) {
            return fail(ctl, err);
        }
        if (len > CERT_FILE_MAX) {
            return fail(ctl, btsso_error_make(ctl->p, 413, "too_large",
                                              "The certificate file is too "
                                              "large.", "%s exceeds %d bytes",
                                              pos(&a, 1), CERT_FILE_MAX));
        }
        if ((err = btsso_cert_parse(ctl->p, data, len, &cert)) != NULL
            || (err = btsso_store_cert_add(ctl->store, pos(&a, 0), cert, role,
                                           "upload", 0, ctl->now,
                                           ctl->actor)) != NULL) {
            return fail(ctl, err);
        }
        printf("account %s: certificate %s (%s, %s until %s)%s%s\n",
               pos(&a, 0), cert->sha256, cert->subject,
               cert_status(cert, ctl->now),
               iso_time(ctl->p, cert->not_after),
               role != BTSSO_ROLE_NONE ? " is now " : "",
               role != BTSSO_ROLE_NONE ? btsso_cert_role_name(role) : "");
        return 0;
    }
    if (strcmp(sub, "list") == 0) {
        apr_array_header_t *certs;
        btsso_account_t *acc;
        if ((rc = parse_args(ctl, argc, argv, at + 1, NULL, 1, 1, &a)) != 0) {
            return rc;
        }
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                              &acc)) != NULL
            || (err = btsso_store_cert_list(ctl->store, ctl->p, pos(&a, 0),
                                            &certs)) != NULL) {
            return fail(ctl, err);
        }
        if (ctl->json) {
            json_t *arr = json_array();
            for (i = 0; i < certs->nelts; i++) {
                json_array_append_new(arr, cert_json(ctl, APR_ARRAY_IDX(
                    certs, i, btsso_stored_cert_t *)));
            }
            print_json(arr);
            return 0;
        }
        printf("  %-64s %-9s %-13s %-26s %s\n", "SHA256", "ROLE", "STATUS",
               "NOT AFTER", "SUBJECT");
        for (i = 0; i < certs->nelts; i++) {
            print_cert_line(ctl, APR_ARRAY_IDX(certs, i,
                                               btsso_stored_cert_t *));
        }
        return 0;
    }
    if (strcmp(sub, "role") == 0) {
        if ((rc = parse_args(ctl, argc, argv, at + 1, NULL, 3, 3, &a)) != 0
            || (rc = parse_role(ctl, pos(&a, 2), &role)) != 0) {
            return rc;
        }
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_cert_role(ctl->store, pos(&a, 0),
                                            pos(&a, 1), role, 0,
                                            ctl->actor)) != NULL) {
            return fail(ctl, err);
        }
        printf("account %s: certificate %s is now %s\n", pos(&a, 0),
               pos(&a, 1), btsso_cert_role_name(role));
        return 0;
    }
    if (strcmp(sub, "remove") == 0) {
        if ((rc = parse_args(ctl, argc, argv, at + 1, NULL, 2, 2, &a)) != 0) {
            return rc;
        }
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_cert_remove(ctl->store, pos(&a, 0),
                                              pos(&a, 1), 0,
                                              ctl->actor)) != NULL) {
            return fail(ctl, err);
        }
        printf("account %s: certificate %s removed\n", pos(&a, 0),
               pos(&a, 1));
        return 0;
    }
    if (strcmp(sub, "expiring") == 0) {
        apr_array_header_t *certs, *accounts;
        int days = DEFAULT_EXPIRING_DAYS;
        if ((rc = parse_args(ctl, argc, argv, at + 1, exp_flags, 0, 0,
                             &a)) != 0) {
            return rc;
        }
        if (flag(&a, "--days") != NULL) {
            char *end;
            long v = strtol(flag(&a, "--days"), &end, 10);
            if (*flag(&a, "--days") == '\0' || *end != '\0' || v < 0
                || v > 36500) {
                return usage_error(ctl, "--days takes a number of days "
                                        "(0-36500)");
            }
            days = (int)v;
        }
        if ((err = open_store(ctl)) != NULL
            || (err = btsso_store_cert_expiring(ctl->store, ctl->p, ctl->now,
                                                days, &certs,
                                                &accounts)) != NULL) {
            return fail(ctl, err);
        }
        if (ctl->json) {
            json_t *arr = json_array();
            for (i = 0; i < certs->nelts; i++) {
                const btsso_stored_cert_t *sc =
                    APR_ARRAY_IDX(certs, i, btsso_stored_cert_t *);
                json_t *o = json_object();
                json_object_set_new(o, "account", json_string(
                    APR_ARRAY_IDX(accounts, i, const char *)));
                json_object_set_new(o, "sha256",
                                    json_string(sc->cert->sha256));
                json_object_set_new(o, "subject",
                                    json_string(sc->cert->subject));
                json_object_set_new(o, "not_after", json_string(
                    iso_time(ctl->p, sc->cert->not_after)));
                json_object_set_new(o, "role", json_string(
                    btsso_cert_role_name(sc->role)));
                json_array_append_new(arr, o);
            }
            print_json(arr);
            return 0;
        }
        printf("%-24s %-64s %-20s %s\n", "ACCOUNT", "SHA256", "NOT AFTER",
               "SUBJECT");
        for (i = 0; i < certs->nelts; i++) {
            const btsso_stored_cert_t *sc =
                APR_ARRAY_IDX(certs, i, btsso_stored_cert_t *);
            printf("%-24s %-64s %-20s %s\n",
                   APR_ARRAY_IDX(accounts, i, const char *), sc->cert->sha256,
                   iso_time(ctl->p, sc->cert->not_after), sc->cert->subject);
        }
        return 0;
    }
    return usage_error(ctl, "cert add|list|role|remove|expiring");
}

/* ---- enabling ----------------------------------------------------------- */

static const char *dups_text(apr_pool_t *p, const apr_array_header_t *dups)
{
    apr_array_header_t *parts = apr_array_make(p, dups->nelts,
                                               sizeof(const char *));
    int i, j;

    for (i = 0; i < dups->nelts; i++) {
        const btsso_dup_email_t *d = APR_ARRAY_IDX(dups, i,
                                                   btsso_dup_email_t *);
        apr_array_header_t *exts = apr_array_make(p, d->holders->nelts,
                                                  sizeof(const char *));
        for (j = 0; j < d->holders->nelts; j++) {
            const btsso_user_t *u = APR_ARRAY_IDX(d->holders, j,
                                                  btsso_user_t *);
            APR_ARRAY_PUSH(exts, const char *) =
                u->kind != NULL && strcmp(u->kind, "call_queue") == 0
                ? apr_pstrcat(p, u->extension, " (call queue)", NULL)
                : u->extension;
        }
        APR_ARRAY_PUSH(parts, const char *) =
            apr_psprintf(p, "%s held by %s", d->email,
                         join(p, exts, ", "));
    }
    return join(p, parts, "; ");
}

static int cmd_enable(ctl_t *ctl, int argc, const char *const *argv, int at,
                      int enable)
{
    static const flag_spec_t flags[] = {
        { "--allow-password", 0 }, { NULL, 0 }
    };
    cmd_args_t a;
    btsso_error_t *err;
    apr_array_header_t *dups = NULL, *missing = NULL;
    int rc, allow;

    if ((rc = parse_args(ctl, argc, argv, at, enable ? flags : NULL, 1, 1,
                         &a)) != 0) {
        return rc;
    }
    allow = flag(&a, "--allow-password") != NULL;
    if ((err = open_store(ctl)) != NULL) {
        return fail(ctl, err);
    }
    err = btsso_store_set_enabled(ctl->store, ctl->p, pos(&a, 0), enable,
                                  allow, 0, ctl->now, ctl->actor, &dups,
                                  &missing);
    if (err != NULL && strcmp(err->code, "duplicate_emails") == 0) {
        fprintf(stderr, "btssoctl: duplicate_emails: SSO not enabled for "
                "%s, contact emails are shared: %s%s%s\n", pos(&a, 0),
                flat(ctl->p, dups_text(ctl->p, dups)),
                missing->nelts > 0 ? "; also missing: " : "",
                join(ctl->p, missing, ", "));
        return EXIT_REFUSED;
    }
    if (err != NULL && strcmp(err->code, "incomplete") == 0) {
        fprintf(stderr, "btssoctl: incomplete: SSO not enabled for %s, "
                "missing: %s\n", pos(&a, 0),
                join(ctl->p, missing, ", "));
        return EXIT_REFUSED;
    }
    if (err != NULL) {
        return fail(ctl, err);
    }
    if (enable) {
        printf("account %s: SSO enabled (%s)\n", pos(&a, 0),
               allow ? "password login still allowed"
                     : "password login refused");
    }
    else {
        printf("account %s: SSO disabled\n", pos(&a, 0));
    }
    return 0;
}

/* ---- SP metadata -------------------------------------------------------- */

static btsso_error_t *load_sp_cert(ctl_t *ctl, const char *path,
                                   btsso_cert_t **out)
{
    btsso_error_t *err;
    char *data;
    apr_size_t len;

    *out = NULL;
    if (path == NULL) {
        return NULL;
    }
    if ((err = read_bounded(ctl->p, path, CERT_FILE_MAX, &data, &len))
        != NULL) {
        return err;
    }
    return btsso_cert_parse(ctl->p, data, len, out);
}

static int cmd_sp_metadata(ctl_t *ctl, int argc, const char *const *argv,
                           int at)
{
    cmd_args_t a;
    btsso_error_t *err;
    btsso_account_t *acc;
    btsso_idp_t *idp;
    btsso_cert_t *current, *next;
    btsso_sp_addr_t addr;
    btsso_spmeta_t md;
    const char *xml;
    int rc;

    if ((rc = parse_args(ctl, argc, argv, at, NULL, 1, 1, &a)) != 0) {
        return rc;
    }
    if ((err = open_store(ctl)) != NULL
        || (err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                          &acc)) != NULL
        || (err = btsso_store_idp_get(ctl->store, ctl->p, pos(&a, 0),
                                      &idp)) != NULL) {
        return fail(ctl, err);
    }
    if (ctl->conf->base_url == NULL) {
        return fail(ctl, btsso_error_make(ctl->p, 400, "no_base_url",
                                          "BTSSOBaseURL is not set.",
                                          "%s has no BTSSOBaseURL",
                                          ctl->conf_file));
    }
    if ((err = load_sp_cert(ctl, ctl->conf->sp_certificate, &current))
            != NULL
        || (err = load_sp_cert(ctl, ctl->conf->sp_next_certificate, &next))
            != NULL) {
        return fail(ctl, err);
    }
    /* the same choices as the module's GET <SPPath>/metadata/<account> */
    btsso_sp_addressing(ctl->p, ctl->conf->base_url, sp_path(ctl),
                        ctl->conf->sp_entity_id, acc->account,
                        idp != NULL && idp->shared, &addr);
    memset(&md, 0, sizeof(md));
    md.entity_id = addr.entity_id;
    md.acs_url = addr.acs_url;
    md.slo_url = addr.slo_url;
    md.signing_current = current;
    md.signing_next = current != NULL ? next : NULL;
    md.encryption = current;
    md.authn_requests_signed = current != NULL;
    md.want_assertions_signed = 1;
    if ((err = btsso_spmeta_build(ctl->p, &md, &xml)) != NULL) {
        return fail(ctl, err);
    }
    fputs(xml, stdout);
    return 0;
}

/* ---- audit trail ---------------------------------------------------------- */

static int two_digits(const char *c, int *out)
{
    if (!apr_isdigit(c[0]) || !apr_isdigit(c[1])) {
        return 0;
    }
    *out = (c[0] - '0') * 10 + (c[1] - '0');
    return 1;
}

/* --since: unix seconds, or a UTC ISO 8601 date with an optional time:
 * YYYY-MM-DD, YYYY-MM-DDTHH:MM, YYYY-MM-DDTHH:MM:SS, each with an optional
 * trailing Z (a space may stand for the T).  No other offsets: what an
 * operator types means the same on every machine. */
static int parse_since(const char *v, apr_time_t *out)
{
    apr_time_exp_t tm;
    apr_int64_t n = 0;
    const char *c = v;
    int y1, y2, f;

    if (*v == '\0') {
        return 0;
    }
    for (c = v; apr_isdigit(*c) && c - v < 12; c++) {
        n = n * 10 + (*c - '0');
    }
    if (*c == '\0') {
        *out = apr_time_from_sec(n);
        return 1;
    }
    memset(&tm, 0, sizeof(tm));
    c = v;
    if (!two_digits(c, &y1) || !two_digits(c + 2, &y2) || c[4] != '-'
        || !two_digits(c + 5, &tm.tm_mon) || c[7] != '-'
        || !two_digits(c + 8, &tm.tm_mday)) {
        return 0;
    }
    tm.tm_year = y1 * 100 + y2 - 1900;
    tm.tm_mon -= 1;
    c += 10;
    if (*c == 'T' || *c == ' ') {
        if (!two_digits(c + 1, &tm.tm_hour) || c[3] != ':'
            || !two_digits(c + 4, &tm.tm_min)) {
            return 0;
        }
        c += 6;
        if (*c == ':') {
            if (!two_digits(c + 1, &tm.tm_sec)) {
                return 0;
            }
            c += 3;
        }
    }
    if (*c == 'Z') {
        c++;
    }
    if (*c != '\0' || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1
        || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59
        || tm.tm_sec > 60) {
        return 0;
    }
    f = apr_time_exp_gmt_get(out, &tm) == APR_SUCCESS;
    return f;
}

/* Every row since TIME (all without --since), newest first, read in
 * pages; text: one tab-separated line per row. */
static int cmd_audit(ctl_t *ctl, int argc, const char *const *argv, int at)
{
    static const flag_spec_t flags[] = {
        { "--since", 1 }, { NULL, 0 }
    };
    cmd_args_t a;
    btsso_error_t *err;
    btsso_account_t *acc;
    apr_array_header_t *rows;
    apr_int64_t next = 0;
    apr_time_t since = 0;
    json_t *list = NULL;
    int rc, i;

    if ((rc = parse_args(ctl, argc, argv, at, flags, 1, 1, &a)) != 0) {
        return rc;
    }
    if (flag(&a, "--since") != NULL && !parse_since(flag(&a, "--since"),
                                                    &since)) {
        return usage_error(ctl, "--since takes unix seconds or a UTC date "
                           "YYYY-MM-DD[THH:MM[:SS]][Z]");
    }
    if ((err = open_store(ctl)) != NULL
        || (err = btsso_store_account_get(ctl->store, ctl->p, pos(&a, 0),
                                          &acc)) != NULL) {
        return fail(ctl, err);
    }
    if (ctl->json) {
        list = json_array();
    }
    do {
        if ((err = btsso_store_audit_page(ctl->store, ctl->p, acc->account,
                                          next, since, BTSSO_AUDIT_PAGE_MAX,
                                          &rows, &next)) != NULL) {
            json_decref(list);
            return fail(ctl, err);
        }
        for (i = 0; i < rows->nelts; i++) {
            const btsso_audit_t *r = APR_ARRAY_IDX(rows, i, btsso_audit_t *);

            if (list != NULL) {
                json_array_append_new(list, json_pack(
                    "{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)r->id,
                    "at", iso_time(ctl->p, r->at), "actor", r->actor,
                    "action", r->action, "detail", r->detail));
            }
            else {
                printf("%s\t%s\t%s\t%s\n", iso_time(ctl->p, r->at),
                       flat(ctl->p, r->actor), flat(ctl->p, r->action),
                       flat(ctl->p, r->detail));
            }
        }
    } while (next > 0);
    if (list != NULL) {
        print_json(json_pack("{s:s, s:o}", "account", acc->account,
                             "audit", list));
    }
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static const char *invoking_user(apr_pool_t *p)
{
    struct passwd *pw = getpwuid(getuid());

    if (pw != NULL && pw->pw_name != NULL) {
        return apr_pstrcat(p, "btssoctl:", pw->pw_name, NULL);
    }
    return apr_psprintf(p, "btssoctl:uid=%lu", (unsigned long)getuid());
}

static int run(ctl_t *ctl, int argc, const char *const *argv)
{
    const char **rest = apr_palloc(ctl->p, sizeof(char *) * (argc + 1));
    const char *cmd;
    int n = 0, i;

    /* global options come before the command; --json may come anywhere */
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (n == 0 && (strcmp(a, "-c") == 0 || strcmp(a, "-d") == 0
                       || strcmp(a, "-p") == 0)) {
            if (i + 1 >= argc) {
                return usage_error(ctl, apr_psprintf(ctl->p, "%s needs a "
                                                     "value", a));
            }
            if (a[1] == 'c') {
                ctl->conf_file = argv[++i];
                ctl->conf_given = 1;
            }
            else if (a[1] == 'd') {
                ctl->driver = argv[++i];
            }
            else {
                ctl->params = argv[++i];
            }
        }
        else if (strcmp(a, "--json") == 0) {
            ctl->json = 1;
        }
        else if (n == 0 && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0
                            || strcmp(a, "help") == 0)) {
            fputs(usage_text, stdout);
            return 0;
        }
        else if (n == 0 && a[0] == '-') {
            return usage_error(ctl, apr_psprintf(ctl->p, "unknown option %s",
                                                 a));
        }
        else {
            rest[n++] = a;
        }
    }
    rest[n] = NULL;
    if (n == 0) {
        return usage_error(ctl, "no command given");
    }
    cmd = rest[0];
    argv = rest;
    argc = n;
    if (strcmp(cmd, "init") == 0) {
        return cmd_init(ctl, argc, argv, 1);
    }
    if (strcmp(cmd, "account") == 0) {
        return cmd_account(ctl, argc, argv, 1);
    }
    if (strcmp(cmd, "user") == 0) {
        return cmd_user(ctl, argc, argv, 1);
    }
    if (strcmp(cmd, "idp") == 0) {
        return cmd_idp(ctl, argc, argv, 1);
    }
    if (strcmp(cmd, "attr") == 0) {
        return cmd_attr(ctl, argc, argv, 1);
    }
    if (strcmp(cmd, "cert") == 0) {
        return cmd_cert(ctl, argc, argv, 1);
    }
    if (strcmp(cmd, "enable") == 0) {
        return cmd_enable(ctl, argc, argv, 1, 1);
    }
    if (strcmp(cmd, "disable") == 0) {
        return cmd_enable(ctl, argc, argv, 1, 0);
    }
    if (strcmp(cmd, "schema") == 0) {
        return cmd_schema(ctl, argc, argv, 1);
    }
    if (strcmp(cmd, "session") == 0) {
        return cmd_session(ctl, argc, argv, 1);
    }
    if (strcmp(cmd, "sign-ins") == 0) {
        return cmd_sign_ins(ctl, argc, argv, 1);
    }
    if (strcmp(cmd, "sp-metadata") == 0) {
        return cmd_sp_metadata(ctl, argc, argv, 1);
    }
    if (strcmp(cmd, "audit") == 0) {
        return cmd_audit(ctl, argc, argv, 1);
    }
    return usage_error(ctl, apr_psprintf(ctl->p, "unknown command %s", cmd));
}

int main(int argc, const char *const *argv)
{
    ctl_t ctl;
    int rc;

    apr_app_initialize(&argc, &argv, NULL);
    memset(&ctl, 0, sizeof(ctl));
    apr_pool_create(&ctl.p, NULL);
    ctl.conf_file = BTSSO_DEFAULT_CONF;
    ctl.actor = invoking_user(ctl.p);
    ctl.now = apr_time_now();
    btsso_xml_init();
    rc = run(&ctl, argc, argv);
    if (ctl.store != NULL) {
        btsso_store_close(ctl.store);
    }
    apr_pool_destroy(ctl.p);
    apr_terminate();
    return rc;
}
