/*
 * httpd_conf.c - read the BTSSO*, DBDriver and DBDParams directives from an
 * httpd configuration file, the way httpd would see them (see the header
 * for the subset of httpd's syntax understood).
 */
#include <ctype.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_lib.h>
#include <apr_tables.h>

#include "tools/httpd_conf.h"
#include "core/confval.h"
#include "core/url.h"
#include "core/cidr.h"
#include "store/store.h"

#define CONF_MAX_LINE    16384  /* a logical line, continuations included */
#define CONF_MAX_DEPTH   16     /* Include nesting */

typedef struct reader_t {
    apr_pool_t *p;
    btsso_httpd_conf_t *conf;
    const char *server_root;
    apr_array_header_t *allow;  /* const char *, BTSSOMetadataFetchAllow */
} reader_t;

static btsso_error_t *syntax_error(apr_pool_t *p, const char *file, int line,
                                   const char *what)
{
    return btsso_error_make(p, 400, "conf_syntax",
                            "The httpd configuration could not be read.",
                            "%s:%d: %s", file, line, what);
}

static btsso_error_t *value_error(apr_pool_t *p, const char *file, int line,
                                  const char *directive, const char *what)
{
    return btsso_error_make(p, 400, "conf_value",
                            "A directive in the httpd configuration has a "
                            "bad value.", "%s:%d: %s: %s", file, line,
                            directive, what);
}

apr_int64_t btsso_httpd_conf_size(const char *text)
{
    apr_off_t v;

    return btsso_confval_size(text, &v) == NULL ? (apr_int64_t)v : -1;
}

/* ${VAR} from the environment, as httpd does with its own defines. */
static const char *expand_vars(apr_pool_t *p, const char *line)
{
    const char *start, *end;
    const char *out = "";
    const char *rest = line;

    while ((start = strstr(rest, "${")) != NULL
           && (end = strchr(start + 2, '}')) != NULL) {
        const char *name = apr_pstrmemdup(p, start + 2, end - start - 2);
        const char *value = getenv(name);
        out = apr_pstrcat(p, out, apr_pstrmemdup(p, rest, start - rest),
                          value != NULL ? value
                                        : apr_pstrmemdup(p, start,
                                                         end - start + 1),
                          NULL);
        rest = end + 1;
    }
    return apr_pstrcat(p, out, rest, NULL);
}

/* Split a logical line into words like httpd's ap_getword_conf. */
static btsso_error_t *split_words(apr_pool_t *p, const char *file, int lineno,
                                  const char *line, apr_array_header_t **out)
{
    apr_array_header_t *words = apr_array_make(p, 4, sizeof(const char *));
    const char *c = line;

    while (*c != '\0') {
        char *word, *w;
        while (apr_isspace(*c)) {
            c++;
        }
        if (*c == '\0') {
            break;
        }
        word = w = apr_palloc(p, strlen(c) + 1);
        if (*c == '"' || *c == '\'') {
            char quote = *c++;
            while (*c != '\0' && *c != quote) {
                if (*c == '\\' && (c[1] == quote || c[1] == '\\')) {
                    c++;
                }
                *w++ = *c++;
            }
            if (*c != quote) {
                return syntax_error(p, file, lineno, "unterminated quote");
            }
            c++;
        }
        else {
            while (*c != '\0' && !apr_isspace(*c)) {
                *w++ = *c++;
            }
        }
        *w = '\0';
        APR_ARRAY_PUSH(words, const char *) = word;
    }
    *out = words;
    return NULL;
}

static const char *dir_of(apr_pool_t *p, const char *file)
{
    const char *slash = strrchr(file, '/');

    if (slash == NULL) {
        return ".";
    }
    if (slash == file) {
        return "/";
    }
    return apr_pstrmemdup(p, file, slash - file);
}

static const char *resolve(apr_pool_t *p, const char *base_dir,
                           const char *path)
{
    if (path[0] == '/') {
        return path;
    }
    return apr_pstrcat(p, base_dir, "/", path, NULL);
}

static btsso_error_t *read_file(reader_t *r, const char *file, int depth,
                                int optional);

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A directory's files, sorted, as httpd includes them. */
static btsso_error_t *read_dir(reader_t *r, const char *dir, int depth)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_array_header_t *names = apr_array_make(r->p, 8, sizeof(char *));
    btsso_error_t *err;
    int i;

    if (apr_dir_open(&d, dir, r->p) != APR_SUCCESS) {
        return btsso_error_make(r->p, 404, "conf_missing",
                                "The httpd configuration file was not "
                                "found.", "cannot read directory %s", dir);
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d)
           == APR_SUCCESS) {
        if (fi.name[0] == '.' || fi.filetype == APR_DIR) {
            continue;
        }
        APR_ARRAY_PUSH(names, char *) = apr_pstrcat(r->p, dir, "/", fi.name,
                                                    NULL);
    }
    apr_dir_close(d);
    qsort(names->elts, names->nelts, sizeof(char *), compare_strings);
    for (i = 0; i < names->nelts; i++) {
        if ((err = read_file(r, APR_ARRAY_IDX(names, i, char *), depth,
                             0)) != NULL) {
            return err;
        }
    }
    return NULL;
}

static btsso_error_t *include(reader_t *r, const char *file, int lineno,
                              const char *pattern, int depth, int optional)
{
    const char *path = resolve(r->p, dir_of(r->p, file), pattern);
    btsso_error_t *err = NULL;
    apr_finfo_t fi;

    if (depth >= CONF_MAX_DEPTH) {
        return syntax_error(r->p, file, lineno,
                            "Include nested too deeply (a loop?)");
    }
    if (strpbrk(path, "*?[") != NULL) {
        glob_t g;
        size_t i;
        int rc = glob(path, 0, NULL, &g);
        if (rc == GLOB_NOMATCH) {
            globfree(&g);
            return optional ? NULL
                            : syntax_error(r->p, file, lineno,
                                           apr_psprintf(r->p, "Include %s "
                                                        "matches no file",
                                                        path));
        }
        if (rc != 0) {
            globfree(&g);
            return syntax_error(r->p, file, lineno,
                                apr_psprintf(r->p, "cannot expand %s", path));
        }
        for (i = 0; i < g.gl_pathc && err == NULL; i++) {
            if (apr_stat(&fi, g.gl_pathv[i], APR_FINFO_TYPE, r->p)
                    == APR_SUCCESS && fi.filetype == APR_DIR) {
                continue;
            }
            err = read_file(r, apr_pstrdup(r->p, g.gl_pathv[i]), depth + 1,
                            0);
        }
        globfree(&g);
        return err;
    }
    if (apr_stat(&fi, path, APR_FINFO_TYPE, r->p) != APR_SUCCESS) {
        return optional ? NULL
                        : syntax_error(r->p, file, lineno,
                                       apr_psprintf(r->p, "Include %s: no "
                                                    "such file", path));
    }
    if (fi.filetype == APR_DIR) {
        return read_dir(r, path, depth + 1);
    }
    return read_file(r, path, depth + 1, 0);
}

static int is_per_dir_section(const char *name)
{
    static const char *const sections[] = {
        "location", "locationmatch", "directory", "directorymatch", "files",
        "filesmatch", "if", "elseif", "else", "limit", "limitexcept", NULL
    };
    int i;

    for (i = 0; sections[i] != NULL; i++) {
        if (strcasecmp(name, sections[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *sql_label_of(const char *directive)
{
    if (strcasecmp(directive, "BTSSOUserQuery") == 0) {
        return BTSSO_Q_USER;
    }
    if (strcasecmp(directive, "BTSSODuplicateEmailQuery") == 0) {
        return BTSSO_Q_DUPLICATES;
    }
    if (strcasecmp(directive, "BTSSOAdminQuery") == 0) {
        return BTSSO_Q_ADMIN;
    }
    if (strcasecmp(directive, "BTSSOAccountByEmailQuery") == 0) {
        return BTSSO_Q_ACCOUNT_BY_EMAIL;
    }
    return NULL;
}

/* One directive of the server scope. */
static btsso_error_t *directive(reader_t *r, const char *file, int lineno,
                                apr_array_header_t *words)
{
    const char *name = APR_ARRAY_IDX(words, 0, const char *);
    int nargs = words->nelts - 1;
    const char *arg = nargs > 0 ? APR_ARRAY_IDX(words, 1, const char *) : "";
    btsso_httpd_conf_t *c = r->conf;
    const char *label;
    int i;

#define ONE_ARG()                                                          \
    do {                                                                   \
        if (nargs != 1) {                                                  \
            return value_error(r->p, file, lineno, name,                   \
                               "takes one argument");                      \
        }                                                                  \
    } while (0)

    if (strcasecmp(name, "ServerRoot") == 0) {
        ONE_ARG();
        r->server_root = arg;
    }
    else if (strcasecmp(name, "DBDriver") == 0) {
        ONE_ARG();
        c->dbd_driver = arg;
    }
    else if (strcasecmp(name, "DBDParams") == 0) {
        ONE_ARG();
        c->dbd_params = arg;
    }
    else if (strcasecmp(name, "BTSSOBaseURL") == 0) {
        btsso_base_url_t *u = NULL;
        btsso_error_t *e;
        ONE_ARG();
        /* the very check httpd makes (core/url.h) */
        e = btsso_base_url_parse(r->p, arg, &u);
        if (e != NULL) {
            return value_error(r->p, file, lineno, name,
                               apr_pstrcat(r->p, "is not a usable base URL: ",
                                           e->detail ? e->detail : e->message,
                                           NULL));
        }
        c->base_url = u->origin;
    }
    else if (strcasecmp(name, "BTSSOSPPath") == 0) {
        ONE_ARG();
        if (arg[0] != '/') {
            return value_error(r->p, file, lineno, name,
                               "must start with /");
        }
        c->sp_path = arg;
    }
    else if (strcasecmp(name, "BTSSOSPEntityID") == 0) {
        ONE_ARG();
        c->sp_entity_id = arg;
    }
    else if (strcasecmp(name, "BTSSOSPCertificate") == 0
             || strcasecmp(name, "BTSSOSPNextCertificate") == 0) {
        const char *path;
        ONE_ARG();
        path = resolve(r->p, r->server_root != NULL ? r->server_root
                                                    : dir_of(r->p, file),
                       arg);
        if (strcasecmp(name, "BTSSOSPCertificate") == 0) {
            c->sp_certificate = path;
        }
        else {
            c->sp_next_certificate = path;
        }
    }
    else if (strcasecmp(name, "BTSSOMetadataMaxSize") == 0) {
        apr_off_t v;
        const char *why;
        ONE_ARG();
        why = btsso_confval_metadata_size(arg, &v);
        if (why != NULL) {
            return value_error(r->p, file, lineno, name, why);
        }
        c->metadata_max_size = (apr_size_t)v;
    }
    else if (strcasecmp(name, "BTSSOMetadataFetchTimeout") == 0) {
        apr_interval_time_t v;
        const char *why;
        ONE_ARG();
        why = btsso_confval_duration(r->p, arg, apr_time_from_sec(1), &v);
        if (why != NULL) {
            return value_error(r->p, file, lineno, name, why);
        }
        c->fetch_timeout_sec = (int)apr_time_sec(v);
    }
    else if (strcasecmp(name, "BTSSOMetadataRefreshInterval") == 0) {
        apr_interval_time_t v;
        const char *why;
        ONE_ARG();
        why = btsso_confval_duration(r->p, arg, 0, &v);
        if (why != NULL) {
            return value_error(r->p, file, lineno, name, why);
        }
        c->refresh_interval = v;
    }
    else if (strcasecmp(name, "BTSSOMetadataFetchHTTP") == 0) {
        ONE_ARG();
        if (strcasecmp(arg, "on") == 0) {
            c->fetch_http = 1;
        }
        else if (strcasecmp(arg, "off") == 0) {
            c->fetch_http = 0;
        }
        else {
            return value_error(r->p, file, lineno, name, "On or Off");
        }
    }
    else if (strcasecmp(name, "BTSSOMetadataFetchAllow") == 0) {
        btsso_cidr_list_t *list;
        btsso_error_t *err;
        if (nargs < 1) {
            return value_error(r->p, file, lineno, name,
                               "takes one or more CIDR ranges");
        }
        for (i = 1; i < words->nelts; i++) {
            const char *range = APR_ARRAY_IDX(words, i, const char *);
            err = btsso_cidr_list_parse(r->p, range, &list);
            if (err != NULL) {
                return value_error(r->p, file, lineno, name,
                                   err->detail != NULL ? err->detail
                                                       : err->message);
            }
            APR_ARRAY_PUSH(r->allow, const char *) = range;
        }
        c->fetch_allow = apr_array_pstrcat(r->p, r->allow, ' ');
    }
    else if ((label = sql_label_of(name)) != NULL) {
        ONE_ARG();
        apr_hash_set(c->sql_overrides, label, APR_HASH_KEY_STRING, arg);
    }
#undef ONE_ARG
    return NULL;
}

static btsso_error_t *read_file(reader_t *r, const char *file, int depth,
                                int optional)
{
    apr_file_t *f;
    char buf[CONF_MAX_LINE];
    char *logical = NULL;
    apr_size_t logical_len = 0;
    int lineno = 0, start_line = 0, skip_depth = 0;
    btsso_error_t *err = NULL;
    apr_status_t rv;

    rv = apr_file_open(&f, file, APR_FOPEN_READ | APR_FOPEN_BUFFERED, 0,
                       r->p);
    if (rv != APR_SUCCESS) {
        char msg[120];
        if (optional) {
            return NULL;
        }
        return btsso_error_make(r->p, 404, "conf_missing",
                                "The httpd configuration file was not "
                                "found.", "%s: %s", file,
                                apr_strerror(rv, msg, sizeof(msg)));
    }
    logical = apr_palloc(r->p, CONF_MAX_LINE);
    while (err == NULL
           && apr_file_gets(buf, sizeof(buf), f) == APR_SUCCESS) {
        apr_size_t n = strlen(buf);
        int continued;
        char *line;

        lineno++;
        if (n == sizeof(buf) - 1 && buf[n - 1] != '\n') {
            err = syntax_error(r->p, file, lineno, "line too long");
            break;
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
            buf[--n] = '\0';
        }
        continued = n > 0 && buf[n - 1] == '\\';
        if (continued) {
            buf[--n] = '\0';
        }
        if (logical_len == 0) {
            start_line = lineno;
        }
        if (logical_len + n + 1 >= CONF_MAX_LINE) {
            err = syntax_error(r->p, file, lineno, "line too long");
            break;
        }
        memcpy(logical + logical_len, buf, n);
        logical_len += n;
        logical[logical_len] = '\0';
        if (continued) {
            continue;
        }
        line = logical;
        logical_len = 0;
        while (apr_isspace(*line)) {
            line++;
        }
        if (*line == '\0' || *line == '#') {
            continue;
        }
        if (line[0] == '<') {
            /* section tags: read through, or skip per-directory ones */
            int closing = line[1] == '/';
            const char *tag = line + 1 + closing;
            apr_size_t len = strcspn(tag, " \t>");
            char *name = apr_pstrmemdup(r->p, tag, len);
            if (is_per_dir_section(name)) {
                skip_depth += closing ? -1 : 1;
                if (skip_depth < 0) {
                    err = syntax_error(r->p, file, start_line,
                                       apr_psprintf(r->p, "</%s> without "
                                                    "<%s>", name, name));
                }
            }
            continue;
        }
        if (skip_depth > 0) {
            continue;
        }
        {
            apr_array_header_t *words = NULL;
            const char *name;
            err = split_words(r->p, file, start_line,
                              expand_vars(r->p, line), &words);
            if (err != NULL || words->nelts == 0) {
                continue;
            }
            name = APR_ARRAY_IDX(words, 0, const char *);
            if (strcasecmp(name, "Include") == 0
                || strcasecmp(name, "IncludeOptional") == 0) {
                int i;
                int opt = strcasecmp(name, "IncludeOptional") == 0;
                if (words->nelts < 2) {
                    err = syntax_error(r->p, file, start_line,
                                       "Include needs a file name");
                }
                for (i = 1; err == NULL && i < words->nelts; i++) {
                    err = include(r, file, start_line,
                                  APR_ARRAY_IDX(words, i, const char *),
                                  depth, opt);
                }
            }
            else {
                err = directive(r, file, start_line, words);
            }
        }
    }
    apr_file_close(f);
    if (err == NULL && logical_len > 0) {
        err = syntax_error(r->p, file, lineno,
                           "file ends inside a continued line");
    }
    return err;
}

btsso_error_t *btsso_httpd_conf_read(apr_pool_t *p, const char *file,
                                     btsso_httpd_conf_t **out)
{
    reader_t r;
    btsso_error_t *err;

    memset(&r, 0, sizeof(r));
    r.p = p;
    r.conf = apr_pcalloc(p, sizeof(*r.conf));
    r.conf->sql_overrides = apr_hash_make(p);
    r.conf->refresh_interval = -1;
    r.allow = apr_array_make(p, 2, sizeof(const char *));
    *out = NULL;
    if ((err = read_file(&r, file, 0, 0)) != NULL) {
        return err;
    }
    *out = r.conf;
    return NULL;
}
