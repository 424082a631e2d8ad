/*
 * test_store.c - the account store on a temporary SQLite file and, when
 * BTSSO_TEST_PGSQL holds APR DBD pgsql params (t/lib/pgtmp.sh start DIR
 * prints them), the same suite again on PostgreSQL; when BTSSO_TEST_MYSQL
 * holds APR DBD mysql params (t/lib/mariadbtmp.sh start DIR), again on
 * MySQL/MariaDB (its user may drop and create the database named).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <ctype.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_file_io.h>

#include "store/store.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif

#define ACTOR "test:unit"

static apr_pool_t *root_pool;
static const char *backend_driver;      /* "sqlite3", "pgsql", "mysql" */
static const char *backend_params;

typedef struct fx_t {
    apr_pool_t *p;
    const char *params;
    btsso_store_t *s;
} fx_t;

/* ---- helpers -------------------------------------------------------------- */

static void ok(btsso_error_t *e, const char *what)
{
    if (e != NULL) {
        fail_msg("%s: %s", what, btsso_error_line(root_pool, e));
    }
}

static void expect_err(btsso_error_t *e, const char *code, int status)
{
    if (e == NULL) {
        fail_msg("expected error %s, got success", code);
    }
    if (strcmp(e->code, code) != 0 || e->status != status) {
        fail_msg("expected %s/%d, got %s", code, status,
                 btsso_error_line(root_pool, e));
    }
}

/* A second, plain APR DBD connection: the "portal" writing behind the
 * store's back, and the place to reset the PostgreSQL schema. */
static apr_dbd_t *raw_open(apr_pool_t *p, const char *params,
                           const apr_dbd_driver_t **drv)
{
    apr_dbd_t *h = NULL;
    const char *err = NULL;

    assert_int_equal(apr_dbd_get_driver(p, backend_driver, drv), APR_SUCCESS);
    if (apr_dbd_open_ex(*drv, p, params, &h, &err) != APR_SUCCESS) {
        fail_msg("raw open: %s", err ? err : "?");
    }
    return h;
}

static int raw_exec(apr_pool_t *p, const char *params, const char *sql,
                    const char **error)
{
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h = raw_open(p, params, &drv);
    int n = 0;
    int rv = apr_dbd_query(drv, h, &n, sql);

    if (error != NULL) {
        *error = rv != 0 ? apr_pstrdup(p, apr_dbd_error(drv, h, rv)) : NULL;
    }
    apr_dbd_close(drv, h);
    return rv;
}

static int raw_count(apr_pool_t *p, const char *params, const char *sql)
{
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h = raw_open(p, params, &drv);
    apr_dbd_results_t *res = NULL;
    apr_dbd_row_t *row = NULL;
    int count = -1;

    /* not random on mysql: its driver then returns no "next" row */
    if (apr_dbd_select(drv, p, h, &res, sql,
                       strcmp(backend_driver, "mysql") != 0) != 0) {
        fail_msg("raw select %s: %s", sql, apr_dbd_error(drv, h, 1));
    }
    while (apr_dbd_get_row(drv, p, res, &row, -1) == 0) {
        count = atoi(apr_dbd_get_entry(drv, row, 0));
    }
    apr_dbd_close(drv, h);
    return count;
}

/* sql with its first two %s replaced by a and b. */
static const char *sql_subst(apr_pool_t *p, const char *sql,
                                    const char *a, const char *b)
{
    const char *one = strstr(sql, "%s"), *two;

    if (one == NULL || (two = strstr(one + 2, "%s")) == NULL) {
        return sql;
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, sql, (apr_size_t)(one - sql)), a,
                       apr_pstrmemdup(p, one + 2, (apr_size_t)(two - one - 2)),
                       b, two + 2, NULL);
}

static btsso_cert_t *fixture_cert(apr_pool_t *p, const char *name)
{
    const char *path = apr_pstrcat(p, TOP_SRCDIR, "/t/fixtures/keys/", name,
                                   ".crt", NULL);
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;
    apr_size_t len;
    btsso_cert_t *c = NULL;

    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, p) != APR_SUCCESS) {
        fail_msg("cannot open %s", path);
    }
    apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    len = (apr_size_t)fi.size;
    buf = apr_palloc(p, len + 1);
    assert_int_equal(apr_file_read_full(f, buf, len, NULL), APR_SUCCESS);
    apr_file_close(f);
    ok(btsso_cert_parse(p, buf, len, &c), path);
    return c;
}

/* Metadata as the parser would hand it over; the store reads only the
 * entityID and the signing certificates. */
static btsso_idp_metadata_t *md_make(apr_pool_t *p, const char *entity_id,
                                     ...)
{
    btsso_idp_metadata_t *md = apr_pcalloc(p, sizeof(*md));
    const char *name;
    va_list ap;

    md->entity_id = entity_id;
    md->sso = apr_array_make(p, 1, sizeof(btsso_endpoint_t));
    md->slo = apr_array_make(p, 1, sizeof(btsso_endpoint_t));
    md->nameid_formats = apr_array_make(p, 1, sizeof(const char *));
    md->attributes = apr_array_make(p, 1, sizeof(btsso_md_attribute_t));
    md->signing_certs = apr_array_make(p, 2, sizeof(btsso_cert_t *));
    va_start(ap, entity_id);
    while ((name = va_arg(ap, const char *)) != NULL) {
        APR_ARRAY_PUSH(md->signing_certs, btsso_cert_t *) =
            fixture_cert(p, name);
    }
    va_end(ap);
    return md;
}

static const char *xml_for(apr_pool_t *p, const char *entity_id)
{
    return apr_psprintf(p, "<md:EntityDescriptor entityID=\"%s\"/>",
                        entity_id);
}

static btsso_account_t *account(fx_t *f, const char *id)
{
    btsso_account_t *a = NULL;
    ok(btsso_store_account_get(f->s, f->p, id, &a), "account_get");
    return a;
}

static int audit_count(fx_t *f, const char *id)
{
    apr_array_header_t *rows;
    ok(btsso_store_audit_list(f->s, f->p, id, 1000, &rows), "audit_list");
    return rows->nelts;
}

static const char *role_of(fx_t *f, const char *id, const char *sha256)
{
    apr_array_header_t *certs;
    int i;

    ok(btsso_store_cert_list(f->s, f->p, id, &certs), "cert_list");
    for (i = 0; i < certs->nelts; i++) {
        btsso_stored_cert_t *sc = APR_ARRAY_IDX(certs, i,
                                                btsso_stored_cert_t *);
        if (strcmp(sc->cert->sha256, sha256) == 0) {
            return btsso_cert_role_name(sc->role);
        }
    }
    return "absent";
}

static const char *missing_str(apr_pool_t *p, const apr_array_header_t *m)
{
    return apr_array_pstrcat(p, m, ',');
}

/* An account ready to enable: IdP with okta (primary) and entra
 * (secondary) certificates, email from the "mail" attribute. */
static void ready_account(fx_t *f, const char *id, const char *entity)
{
    apr_time_t now = apr_time_now();
    ok(btsso_store_account_add(f->s, id, NULL, ACTOR), "account_add");
    ok(btsso_store_idp_set(f->s, id, md_make(f->p, entity, "okta", "entra",
                                             NULL),
                           xml_for(f->p, entity), NULL, 0, 0, now, ACTOR),
       "idp_set");
    ok(btsso_store_email_set(f->s, id, "mail", 0, 0, ACTOR), "email_set");
}

/* ---- fixtures --------------------------------------------------------------- */

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    int from = -1, to = -1;

    apr_pool_create(&f->p, root_pool);
    if (strcmp(backend_driver, "sqlite3") == 0) {
        char path[] = "/tmp/btsso-test-store-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        f->params = apr_pstrdup(f->p, path);
    }
    else if (strcmp(backend_driver, "mysql") == 0) {
        /* a new, empty database, on one connection (it names the
         * database it drops) */
        const apr_dbd_driver_t *drv;
        const char *db = strstr(backend_params, "dbname=");
        apr_dbd_t *h;
        int n = 0;
        char *name;

        assert_non_null(db);
        name = apr_pstrdup(f->p, db + 7);
        name[strcspn(name, " ")] = '\0';
        f->params = backend_params;
        h = raw_open(f->p, f->params, &drv);
        if (apr_dbd_query(drv, h, &n, apr_pstrcat(f->p, "DROP DATABASE IF "
                                                  "EXISTS ", name, NULL)) != 0
            || apr_dbd_query(drv, h, &n, apr_pstrcat(f->p, "CREATE DATABASE ",
                                                     name, NULL)) != 0) {
            fail_msg("reset mysql database: %s", apr_dbd_error(drv, h, 1));
        }
        apr_dbd_close(drv, h);
    }
    else {
        const char *error;
        f->params = backend_params;
        if (raw_exec(f->p, f->params, "DROP SCHEMA IF EXISTS public CASCADE",
                     &error) != 0
            || raw_exec(f->p, f->params, "CREATE SCHEMA public",
                        &error) != 0) {
            fail_msg("reset pgsql schema: %s", error);
        }
    }
    ok(btsso_store_open(f->p, backend_driver, f->params, NULL, &f->s),
       "open");
    ok(btsso_store_init(f->s, &from, &to), "init");
    assert_int_equal(from, 0);
    assert_int_equal(to, BTSSO_SCHEMA_VERSION);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;

    btsso_store_close(f->s);
    if (strcmp(backend_driver, "sqlite3") == 0) {
        unlink(f->params);
        unlink(apr_pstrcat(f->p, f->params, "-wal", NULL));
        unlink(apr_pstrcat(f->p, f->params, "-shm", NULL));
    }
    apr_pool_destroy(f->p);
    free(f);
    return 0;
}

/* ---- schema and statements ---------------------------------------------------- */

static void test_init_idempotent(void **state)
{
    fx_t *f = *state;
    btsso_store_t *again;
    int from = -1, to = -1;

    assert_string_equal(btsso_store_dialect(f->s), backend_driver);
    ok(btsso_store_init(f->s, &from, &to), "second init");
    assert_int_equal(from, BTSSO_SCHEMA_VERSION);
    assert_int_equal(to, BTSSO_SCHEMA_VERSION);
    /* a second connection (httpd beside btssoctl) sees the same schema */
    ok(btsso_store_open(f->p, backend_driver, f->params, NULL, &again),
       "open again");
    ok(btsso_store_init(again, &from, &to), "init on second connection");
    assert_int_equal(from, BTSSO_SCHEMA_VERSION);
    btsso_store_close(again);
    /* one row per step (step numbers need not be contiguous) */
    assert_int_equal(raw_count(f->p, f->params,
                               "SELECT max(version) FROM "
                               "btsso_schema_version"),
                     BTSSO_SCHEMA_VERSION);
    assert_int_equal(raw_count(f->p, f->params,
                               "SELECT count(*) - count(DISTINCT version) "
                               "FROM btsso_schema_version"), 0);
}

static void test_schema_too_new(void **state)
{
    fx_t *f = *state;
    int from = -1, to = -1;

    assert_int_equal(raw_exec(f->p, f->params,
                              "INSERT INTO btsso_schema_version (version, "
                              "applied) VALUES (99, 0)", NULL), 0);
    expect_err(btsso_store_init(f->s, &from, &to), "schema_too_new", 500);
    assert_int_equal(from, 99);
}

static int placeholders(const char *sql)
{
    int n = 0;
    for (; *sql; sql++) {
        if (sql[0] == '%' && sql[1] == 's') {
            n++;
        }
    }
    return n;
}

static void test_statements(void **state)
{
    const btsso_stmt_def_t *d;
    apr_hash_t *seen = apr_hash_make(root_pool);
    int found = 0;

    (void)state;
    for (d = btsso_store_statements(); d->label != NULL; d++) {
        assert_non_null(d->sql);
        assert_non_null(d->params);
        assert_null(apr_hash_get(seen, d->label, APR_HASH_KEY_STRING));
        apr_hash_set(seen, d->label, APR_HASH_KEY_STRING, d);
        assert_true(strlen(d->label) < 64);
        if (strcmp(d->label, BTSSO_Q_USER) == 0
            || strcmp(d->label, BTSSO_Q_ADMIN) == 0) {
            assert_int_equal(placeholders(d->sql), 2);
            found++;
        }
        if (strcmp(d->label, BTSSO_Q_DUPLICATES) == 0
            || strcmp(d->label, BTSSO_Q_ACCOUNT_BY_EMAIL) == 0) {
            assert_int_equal(placeholders(d->sql), 1);
            found++;
        }
    }
    assert_int_equal(found, 4);
}

/* Every schema step has DDL for every dialect (a step without its mysql
 * array makes btsso_store_schema_sql return NULL), and the statements'
 * MySQL text is what the rule at the top of store_sql.c promises. */
static void test_dialect_sql(void **state)
{
    static const char *const dialects[] = { "sqlite3", "pgsql", "mysql" };
    const btsso_stmt_def_t *d;
    apr_pool_t *p;
    size_t i;

    (void)state;
    apr_pool_create(&p, root_pool);
    for (i = 0; i < sizeof(dialects) / sizeof(dialects[0]); i++) {
        const char *sql = btsso_store_schema_sql(p, dialects[i]);
        if (sql == NULL) {
            fail_msg("btsso_store_schema_sql(%s): a schema step has no %s "
                     "DDL (store.c schema_steps[])", dialects[i],
                     dialects[i]);
        }
        assert_non_null(strstr(sql, apr_psprintf(p, "VALUES (%d, 0)",
                                                 BTSSO_SCHEMA_VERSION)));
        assert_true(btsso_store_driver_supported(dialects[i]));
    }
    assert_null(btsso_store_schema_sql(p, "oracle"));
    assert_false(btsso_store_driver_supported("oracle"));
    for (d = btsso_store_statements(); d->label != NULL; d++) {
        const char *my = btsso_store_stmt_sql(p, "mysql", d);
        assert_ptr_equal(btsso_store_stmt_sql(p, "sqlite3", d), d->sql);
        assert_ptr_equal(btsso_store_stmt_sql(p, "pgsql", d), d->sql);
        assert_ptr_equal(btsso_store_stmt_sql(p, NULL, d), d->sql);
        if (strstr(my, " AS BIGINT)") || strstr(my, " AS INTEGER)")
            || strstr(my, "LIMIT CAST(") || strstr(my, "ON CONFLICT")) {
            fail_msg("%s: no MySQL form: %s", d->label, my);
        }
        assert_int_equal(placeholders(my), placeholders(d->sql));
    }
    assert_string_equal(btsso_store_rewrite_sql(p, "mysql",
                        "SELECT a FROM t WHERE n = CAST(%s AS BIGINT)"
                        " AND f = cast(%s as integer)"
                        " ORDER BY a LIMIT CAST(%s AS INTEGER)"),
                        "SELECT a FROM t WHERE n = CAST(%s AS SIGNED)"
                        " AND f = cast(%s AS SIGNED)"
                        " ORDER BY a LIMIT %s");
    assert_string_equal(btsso_store_rewrite_sql(p, "pgsql",
                                                "LIMIT CAST(%s AS INTEGER)"),
                        "LIMIT CAST(%s AS INTEGER)");
    /* the pool's DBDParams: mysql needs reconnect=0 and found rows */
    assert_null(btsso_store_pool_params_problem("pgsql", "host=x"));
    assert_null(btsso_store_pool_params_problem("mysql",
                                                "host=x reconnect=0 "
                                                "flags=CLIENT_FOUND_ROWS"));
    assert_null(btsso_store_pool_params_problem("mysql",
                                                "reconnect = 0,host=x;"
                                                "flags=CLIENT_FOUND_ROWS"));
    assert_null(btsso_store_pool_params_problem("mysql",
                                                "flags=CLIENT_FOUND_ROWS "
                                                "reconnect=1 reconnect=0"));
    assert_non_null(btsso_store_pool_params_problem("mysql",
                                                    "host=x reconnect=0"));
    assert_non_null(btsso_store_pool_params_problem("mysql",
                                                    "reconnect=0 "
                                                    "flags=CLIENT_FOUND"));
    assert_non_null(btsso_store_pool_params_problem("mysql", "host=x"));
    assert_non_null(btsso_store_pool_params_problem("mysql",
                                                    "host=x reconnect=1"));
    assert_non_null(btsso_store_pool_params_problem("mysql",
                                                    "noreconnect=0"));
    assert_non_null(btsso_store_pool_params_problem("mysql",
                                                    "reconnect=0 reconnect=1"));
    apr_pool_destroy(p);
}

static void test_open_errors(void **state)
{
    fx_t *f = *state;
    btsso_store_t *s = NULL;
    apr_hash_t *ov = apr_hash_make(f->p);

    expect_err(btsso_store_open(f->p, "mysqlx", "x", NULL, &s), "bad_driver",
               400);
    expect_err(btsso_store_open(f->p, "sqlite3", NULL, NULL, &s), "no_store",
               400);
    if (strcmp(backend_driver, "sqlite3") == 0) {
        expect_err(btsso_store_open(f->p, "sqlite3",
                                    "/nonexistent-dir/x/y.db", NULL, &s),
                   "db_open", 500);
    }
    else if (strcmp(backend_driver, "mysql") == 0) {
        expect_err(btsso_store_open(f->p, "mysql",
                                    "host=127.0.0.1 port=1 user=nobody "
                                    "dbname=x", NULL, &s),
                   "db_open", 500);
    }
    else {
        expect_err(btsso_store_open(f->p, "pgsql",
                                    "host=127.0.0.1 port=1 user=nobody "
                                    "connect_timeout=2", NULL, &s),
                   "db_open", 500);
    }
    assert_null(s);
    apr_hash_set(ov, BTSSO_Q_USER, APR_HASH_KEY_STRING,
                 "SELECT extension, email FROM users WHERE account = %s");
    expect_err(btsso_store_open(f->p, backend_driver, f->params, ov, &s),
               "bad_query", 400);
    ov = apr_hash_make(f->p);
    apr_hash_set(ov, "btsso_account_get", APR_HASH_KEY_STRING,
                 "SELECT 1 FROM accounts WHERE account = %s");
    expect_err(btsso_store_open(f->p, backend_driver, f->params, ov, &s),
               "bad_query", 400);
}

static void test_override_and_wrap(void **state)
{
    fx_t *f = *state;
    btsso_store_t *s2, *wrapped;
    btsso_user_t *u;
    apr_hash_t *ov = apr_hash_make(f->p);
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
    apr_hash_t *prepared;
    apr_dbd_prepared_t *stmt = NULL;
    const btsso_stmt_def_t *d;
    int admin = -1;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    ok(btsso_store_user_add(f->s, "acme", "100", "Bob@Example.com", "user",
                            0, ACTOR), "user");
    /* an operator query that compares exactly */
    apr_hash_set(ov, BTSSO_Q_USER, APR_HASH_KEY_STRING,
                 "SELECT extension, email FROM users"
                 " WHERE account = %s AND email = %s");
    ok(btsso_store_open(f->p, backend_driver, f->params, ov, &s2), "open ov");
    ok(btsso_store_user_by_email(s2, f->p, "acme", "bob@example.com", &u),
       "by email");
    assert_null(u);
    ok(btsso_store_user_by_email(s2, f->p, "acme", "Bob@Example.com", &u),
       "by email exact");
    assert_non_null(u);
    assert_string_equal(u->extension, "100");
    btsso_store_close(s2);

    /* wrap: what the module does with mod_dbd's prepared statements */
    h = raw_open(f->p, f->params, &drv);
    wrapped = btsso_store_wrap(f->p, drv, h, apr_hash_make(f->p), NULL);
    expect_err(btsso_store_is_admin(wrapped, "acme", "100", &admin),
               "not_prepared", 500);
    prepared = apr_hash_make(f->p);
    for (d = btsso_store_statements(); d->label != NULL; d++) {
        stmt = NULL;
        /* the text the module hands ap_dbd_prepare for this driver */
        assert_int_equal(apr_dbd_prepare(drv, f->p, h,
                                         btsso_store_stmt_sql(f->p,
                                                              backend_driver,
                                                              d),
                                         d->label, &stmt), 0);
        apr_hash_set(prepared, d->label, APR_HASH_KEY_STRING, stmt);
    }
    wrapped = btsso_store_wrap(f->p, drv, h, prepared, NULL);
    assert_string_equal(btsso_store_dialect(wrapped), backend_driver);
    ok(btsso_store_user_by_email(wrapped, f->p, "acme", " BOB@example.COM ",
                                 &u), "wrapped by email");
    assert_non_null(u);
    assert_string_equal(u->extension, "100");
    btsso_store_close(wrapped);         /* does not close mod_dbd's handle */
    ok(btsso_store_user_by_email(wrapped, f->p, "acme", "bob@example.com",
                                 &u), "still open");
    apr_dbd_close(drv, h);
}

typedef struct {
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
} dbd_conn_t;

/* as mod_dbd closes a connection: a cleanup of its pool registered before
 * any statement's, so that the statements are finalized first */
static apr_status_t dbd_conn_close(void *data)
{
    dbd_conn_t *c = data;

    apr_dbd_close(c->drv, c->h);
    return APR_SUCCESS;
}

/* A connection as mod_dbd keeps one: its own pool, closed by a cleanup
 * of that pool registered before any statement's, and its (empty) hash of
 * prepared statements. */
static apr_pool_t *dbd_like_conn(fx_t *f, const apr_dbd_driver_t **drv,
                                 apr_dbd_t **h, apr_hash_t **prepared)
{
    apr_pool_t *conn;
    dbd_conn_t *c;

    assert_int_equal(apr_pool_create(&conn, f->p), APR_SUCCESS);
    *h = raw_open(conn, f->params, drv);
    c = apr_palloc(conn, sizeof(*c));
    c->drv = *drv;
    c->h = *h;
    apr_pool_cleanup_register(conn, c, dbd_conn_close, apr_pool_cleanup_null);
    *prepared = apr_hash_make(conn);
    return conn;
}

/* SQLite: httpd's connections prepare the module's statements themselves
 * (after the busy timeout), on the connection's pool, each vhost's operator
 * SQL under its own key; the other drivers keep mod_dbd's. */
static void test_wrap_prepares_on_sqlite(void **state)
{
    fx_t *f = *state;
    btsso_store_t *w;
    btsso_user_t *u;
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
    apr_pool_t *conn;
    apr_hash_t *prepared;
    const char *exact = "SELECT extension, email FROM users"
                        " WHERE account = %s AND email = %s";
    unsigned int n;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    ok(btsso_store_user_add(f->s, "acme", "100", "Bob@Example.com", "user",
                            0, ACTOR), "user");
    conn = dbd_like_conn(f, &drv, &h, &prepared);
    w = btsso_store_wrap(f->p, drv, h, prepared, conn);
    if (!btsso_store_prepares(backend_driver)) {
        assert_int_equal(btsso_store_prepares("sqlite3"), 1);
        expect_err(btsso_store_user_by_email(w, f->p, "acme",
                                             "bob@example.com", &u),
                   "not_prepared", 500);
        apr_pool_destroy(conn);
        return;
    }
    ok(btsso_store_user_by_email(w, f->p, "acme", "bob@example.com", &u),
       "default query");
    assert_non_null(u);
    assert_non_null(apr_hash_get(prepared, BTSSO_Q_USER,
                                 APR_HASH_KEY_STRING));
    n = apr_hash_count(prepared);

    /* another vhost on the same connection, with its own BTSSOUserQuery */
    w = btsso_store_wrap(f->p, drv, h, prepared, conn);
    btsso_store_set_sql(w, BTSSO_Q_USER, exact);
    ok(btsso_store_user_by_email(w, f->p, "acme", "bob@example.com", &u),
       "override");
    assert_null(u);
    ok(btsso_store_user_by_email(w, f->p, "acme", "Bob@Example.com", &u),
       "override exact");
    assert_non_null(u);
    assert_int_equal(apr_hash_count(prepared), n + 1);

    /* and the first one still gets its own */
    w = btsso_store_wrap(f->p, drv, h, prepared, conn);
    ok(btsso_store_user_by_email(w, f->p, "acme", "bob@example.com", &u),
       "default again");
    assert_non_null(u);
    assert_int_equal(apr_hash_count(prepared), n + 1);

    /* SQL that does not prepare: the store cannot serve (503), and the
     * connection keeps serving the rest */
    w = btsso_store_wrap(f->p, drv, h, prepared, conn);
    btsso_store_set_sql(w, BTSSO_Q_USER, "SELECT extension, email FROM"
                        " no_such_table WHERE a = %s AND b = %s");
    expect_err(btsso_store_user_by_email(w, f->p, "acme", "bob@example.com",
                                         &u), "store_unavailable", 503);
    w = btsso_store_wrap(f->p, drv, h, prepared, conn);
    ok(btsso_store_user_by_email(w, f->p, "acme", "bob@example.com", &u),
       "after a failure");
    assert_non_null(u);
    /* the statements live and go with the connection's pool */
    apr_pool_destroy(conn);
}

/* SQLite: a schema change by another connection (btssoctl init, VACUUM,
 * CREATE INDEX) expires every statement apr_dbd_sqlite3 prepared before
 * it, for good; the store prepares them again: reads, changes (in a
 * transaction) and statements first run inside one, on httpd's
 * connections and on btssoctl's own. */
static void test_sqlite_schema_change(void **state)
{
    fx_t *f = *state;
    btsso_store_t *w;
    btsso_user_t *u;
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
    apr_pool_t *conn;
    apr_hash_t *prepared;
    int i;

    if (strcmp(backend_driver, "sqlite3") != 0) {
        skip();
    }
    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    ok(btsso_store_user_add(f->s, "acme", "100", "bob@example.com", "user",
                            0, ACTOR), "user");
    conn = dbd_like_conn(f, &drv, &h, &prepared);
    w = btsso_store_wrap(f->p, drv, h, prepared, conn);
    ok(btsso_store_user_by_email(w, f->p, "acme", "bob@example.com", &u),
       "before");
    assert_non_null(u);
    ok(btsso_store_user_add(w, "acme", "101", "carl@example.com", "user", 0,
                            ACTOR), "change before");
    for (i = 0; i < 3; i++) {
        assert_int_equal(raw_exec(f->p, f->params, i == 0
                                  ? "CREATE INDEX test_idx ON users (kind)"
                                  : i == 1 ? "VACUUM" : "ANALYZE", NULL), 0);
        w = btsso_store_wrap(f->p, drv, h, prepared, conn);
        ok(btsso_store_user_by_email(w, f->p, "acme", "bob@example.com", &u),
           "read after a schema change");
        assert_non_null(u);
        ok(btsso_store_user_add(w, "acme", apr_itoa(f->p, 102 + i),
                                apr_psprintf(f->p, "u%d@example.com", i),
                                "user", 0, ACTOR), "change after");
        /* btssoctl's own connection too */
        ok(btsso_store_user_by_email(f->s, f->p, "acme", "bob@example.com",
                                     &u), "btssoctl read");
        assert_non_null(u);
        ok(btsso_store_user_add(f->s, "acme", apr_itoa(f->p, 202 + i),
                                apr_psprintf(f->p, "v%d@example.com", i),
                                "user", 0, ACTOR), "btssoctl change");
    }
    apr_pool_destroy(conn);
}

/* ---- non-ASCII case folding (issue 8, item 11b) ------------------------ */

#define KELVIN_KATE "\xe2\x84\xaa" "ate@example.com"   /* U+212A */

static void check_kelvin(btsso_store_t *s, apr_pool_t *p)
{
    btsso_user_t *u = NULL;
    btsso_email_accounts_t *acct = NULL;
    int admin = -1;

    ok(btsso_store_user_by_email(s, p, "acme", KELVIN_KATE, &u), "kelvin");
    assert_null(u);
    ok(btsso_store_account_by_email(s, p, KELVIN_KATE, &acct), "kelvin acc");
    assert_null(acct->account);
    assert_int_equal(acct->holders->nelts, 0);
    ok(btsso_store_is_admin(s, "acme", KELVIN_KATE, &admin), "kelvin adm");
    assert_int_equal(admin, 0);
    /* the ASCII address, in another case, still matches */
    ok(btsso_store_user_by_email(s, p, "acme", " KATE@example.COM", &u),
       "kate");
    assert_non_null(u);
    assert_string_equal(u->extension, "100");
    ok(btsso_store_account_by_email(s, p, "Kate@Example.com", &acct), "acc");
    assert_non_null(acct->account);
    assert_string_equal(acct->account, "acme");
    ok(btsso_store_is_admin(s, "acme", "KATE@example.com", &admin), "adm");
    assert_int_equal(admin, 1);
}

/* Accented addresses are other addresses in every dialect: a MySQL _ci
 * collation would make "café" equal "cafe" (refusing the second user as
 * a duplicate, reporting both as one email); the MySQL schema is
 * utf8mb4_bin, so only lower() folds case. */
#define CAFE_ACUTE "caf\xc3\xa9@example.com"     /* é */
#define CAFE_GRAVE "caf\xc3\xa8@example.com"     /* è */

static void test_accents_stay_distinct(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *dups;
    btsso_user_t *u = NULL;
    const char *error = NULL;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    assert_int_equal(raw_exec(f->p, f->params, "UPDATE accounts SET "
                              "sso_enabled = 1 WHERE account = 'acme'",
                              &error), 0);
    ok(btsso_store_user_add(f->s, "acme", "100", "cafe@example.com", "user",
                            0, ACTOR), "cafe");
    ok(btsso_store_user_add(f->s, "acme", "101", CAFE_ACUTE, "user", 0,
                            ACTOR), "cafe acute");
    /* the portal writing directly: the trigger compares the same way */
    assert_int_equal(raw_exec(f->p, f->params,
                              "INSERT INTO users (account, extension, kind, "
                              "email, is_admin) VALUES ('acme', '102', "
                              "'user', '" CAFE_GRAVE "', 0)", &error), 0);
    assert_int_not_equal(raw_exec(f->p, f->params,
                                  "INSERT INTO users (account, extension, "
                                  "kind, email, is_admin) VALUES ('acme', "
                                  "'103', 'user', ' CAFE@example.com', 0)",
                                  &error), 0);
    assert_non_null(strstr(error, "duplicate_email"));
    expect_err(btsso_store_user_add(f->s, "acme", "104", "Cafe@Example.com",
                                    "user", 0, ACTOR), "duplicate_email", 409);
    ok(btsso_store_duplicate_emails(f->s, f->p, "acme", &dups), "dups");
    assert_int_equal(dups->nelts, 0);
    ok(btsso_store_user_by_email(f->s, f->p, "acme", CAFE_ACUTE, &u), "by");
    assert_non_null(u);
    assert_string_equal(u->extension, "101");
    ok(btsso_store_user_by_email(f->s, f->p, "acme", "CAFE@example.com", &u),
       "by ascii");
    assert_non_null(u);
    assert_string_equal(u->extension, "100");
}

/* apr_dbd_mysql fetches a column into a buffer of fldsz (1 MiB - 1) + 1
 * bytes and leaves a value that fills it unterminated: read with
 * apr_dbd_get_entry, the copy ran past the buffer (into whatever the pool
 * held next).  The store reads through apr_dbd_datum_get, which cuts the
 * value at fldsz bytes instead (the operator guide: raise fldsz with
 * BTSSOMetadataMaxSize).  Other drivers return the whole value. */
static void test_long_text_read_back_bounded(void **state)
{
    fx_t *f = *state;
    btsso_idp_t *idp = NULL;
    const char *error = NULL;
    size_t want = 1100000;

    ready_account(f, "acme", "https://idp");
    if (raw_exec(f->p, f->params, apr_psprintf(f->p,
                 strcmp(backend_driver, "mysql") == 0
                 ? "UPDATE idp SET metadata_xml = REPEAT('x', %d)"
                   " WHERE account = 'acme'"
                 : strcmp(backend_driver, "pgsql") == 0
                 ? "UPDATE idp SET metadata_xml = repeat('x', %d)"
                   " WHERE account = 'acme'"
                 : "UPDATE idp SET metadata_xml = replace(hex(zeroblob(%d)),"
                   " '00', 'x') WHERE account = 'acme'", (int)want),
                 &error) != 0) {
        fail_msg("long metadata: %s", error);
    }
    ok(btsso_store_idp_get(f->s, f->p, "acme", &idp), "idp get");
    assert_non_null(idp);
    if (strcmp(backend_driver, "mysql") == 0) {
        want = 1048575;     /* fldsz's default */
    }
    assert_int_equal(strlen(idp->metadata_xml), want);
    assert_string_equal(idp->entity_id, "https://idp");
}

static void test_non_ascii_never_folds_onto_ascii(void **state)
{
    fx_t *f = *state;
    apr_hash_t *ov = apr_hash_make(f->p);
    btsso_store_t *s2;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    ok(btsso_store_user_add(f->s, "acme", "100", "kate@example.com", "user",
                            1, ACTOR), "user");
    /* the default queries (on PostgreSQL, lower() does fold U+212A) */
    check_kelvin(f->s, f->p);
    /* operator queries that match more than they should: the store still
     * decides on the returned email, ASCII-only */
    apr_hash_set(ov, BTSSO_Q_USER, APR_HASH_KEY_STRING,
                 "SELECT extension, email FROM users"
                 " WHERE account = %s AND length(%s) > 0");
    apr_hash_set(ov, BTSSO_Q_ACCOUNT_BY_EMAIL, APR_HASH_KEY_STRING,
                 "SELECT account, email FROM users WHERE length(%s) > 0");
    apr_hash_set(ov, BTSSO_Q_ADMIN, APR_HASH_KEY_STRING,
                 "SELECT extension, email FROM users"
                 " WHERE account = %s AND is_admin = 1 AND length(%s) > 0");
    ok(btsso_store_open(f->p, backend_driver, f->params, ov, &s2), "open ov");
    check_kelvin(s2, f->p);
    btsso_store_close(s2);
}

/* ---- accounts and users --------------------------------------------------------- */

static void test_accounts(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *list;
    btsso_account_t *a;
    char long_id[66];

    ok(btsso_store_account_add(f->s, "zeta", "Zeta Ltd", ACTOR), "add zeta");
    ok(btsso_store_account_add(f->s, "acme.co_1-x", NULL, ACTOR), "add acme");
    expect_err(btsso_store_account_add(f->s, "zeta", NULL, ACTOR), "exists",
               409);
    expect_err(btsso_store_account_add(f->s, "bad id", NULL, ACTOR),
               "bad_account", 400);
    expect_err(btsso_store_account_add(f->s, "", NULL, ACTOR), "bad_account",
               400);
    expect_err(btsso_store_account_add(f->s, "..", NULL, ACTOR),
               "bad_account", 400);
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    expect_err(btsso_store_account_add(f->s, long_id, NULL, ACTOR),
               "bad_account", 400);
    long_id[64] = '\0';
    ok(btsso_store_account_add(f->s, long_id, NULL, ACTOR), "64 chars");
    expect_err(btsso_store_account_add(f->s, "x", "bad\nname", ACTOR),
               "bad_name", 400);

    a = account(f, "zeta");
    assert_string_equal(a->name, "Zeta Ltd");
    assert_int_equal(a->version, 1);
    assert_int_equal(a->sso_enabled, 0);
    assert_int_equal(a->allow_password, 0);
    assert_true(a->created > 0 && a->created == a->updated);
    assert_string_equal(account(f, "acme.co_1-x")->name, "acme.co_1-x");
    expect_err(btsso_store_account_get(f->s, f->p, "nope", &a), "not_found",
               404);
    assert_null(a);

    ok(btsso_store_account_list(f->s, f->p, &list), "list");
    assert_int_equal(list->nelts, 3);
    assert_string_equal(APR_ARRAY_IDX(list, 0, btsso_account_t *)->account,
                        long_id);
    assert_string_equal(APR_ARRAY_IDX(list, 1, btsso_account_t *)->account,
                        "acme.co_1-x");
    assert_string_equal(APR_ARRAY_IDX(list, 2, btsso_account_t *)->account,
                        "zeta");
}

static void test_users(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *list;
    btsso_user_t *u, *first;
    btsso_email_accounts_t *ea;
    int admin = -1;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    ok(btsso_store_account_add(f->s, "other", NULL, ACTOR), "add other");
    ok(btsso_store_user_add(f->s, "acme", "200", "  Carol@Example.COM ",
                            "user", 1, ACTOR), "carol");
    ok(btsso_store_user_add(f->s, "acme", "100", "bob@example.com", NULL, 0,
                            ACTOR), "bob");
    ok(btsso_store_user_add(f->s, "acme", "q1", "queue@example.com",
                            "call_queue", 0, ACTOR), "queue");
    assert_int_equal(account(f, "acme")->version, 4);

    expect_err(btsso_store_user_add(f->s, "acme", "100", "x@example.com",
                                    "user", 0, ACTOR), "exists", 409);
    expect_err(btsso_store_user_add(f->s, "nope", "100", "x@example.com",
                                    "user", 0, ACTOR), "not_found", 404);
    expect_err(btsso_store_user_add(f->s, "acme", "101", "not-an-email",
                                    "user", 0, ACTOR), "bad_email", 400);
    expect_err(btsso_store_user_add(f->s, "acme", "101", "a@b@c.com",
                                    "user", 0, ACTOR), "bad_email", 400);
    expect_err(btsso_store_user_add(f->s, "acme", "101", "a b@c.com",
                                    "user", 0, ACTOR), "bad_email", 400);
    expect_err(btsso_store_user_add(f->s, "acme", "101", NULL, "user", 0,
                                    ACTOR), "bad_email", 400);
    expect_err(btsso_store_user_add(f->s, "acme", "101", "x@example.com",
                                    "robot", 0, ACTOR), "bad_kind", 400);
    expect_err(btsso_store_user_add(f->s, "acme", "1 01", "x@example.com",
                                    "user", 0, ACTOR), "bad_extension", 400);
    assert_int_equal(account(f, "acme")->version, 4);

    ok(btsso_store_user_list(f->s, f->p, "acme", &list), "list");
    assert_int_equal(list->nelts, 3);
    first = APR_ARRAY_IDX(list, 0, btsso_user_t *);
    assert_string_equal(first->extension, "100");
    assert_string_equal(first->kind, "user");
    u = APR_ARRAY_IDX(list, 1, btsso_user_t *);
    assert_string_equal(u->extension, "200");
    assert_string_equal(u->email, "Carol@Example.COM");   /* trimmed */
    assert_int_equal(u->is_admin, 1);
    assert_string_equal(APR_ARRAY_IDX(list, 2, btsso_user_t *)->kind,
                        "call_queue");

    ok(btsso_store_user_by_email(f->s, f->p, "acme", " carol@example.com",
                                 &u), "by email");
    assert_non_null(u);
    assert_string_equal(u->extension, "200");
    assert_string_equal(u->account, "acme");
    ok(btsso_store_user_by_email(f->s, f->p, "other", "carol@example.com",
                                 &u), "by email other account");
    assert_null(u);

    ok(btsso_store_is_admin(f->s, "acme", "CAROL@example.com", &admin),
       "admin by email");
    assert_int_equal(admin, 1);
    ok(btsso_store_is_admin(f->s, "acme", " Carol@Example.com ", &admin),
       "admin by email, trimmed");
    assert_int_equal(admin, 1);
    /* never by extension: extensions repeat across accounts */
    ok(btsso_store_is_admin(f->s, "acme", "200", &admin), "not by ext");
    assert_int_equal(admin, 0);
    ok(btsso_store_is_admin(f->s, "acme", "bob@example.com", &admin),
       "not admin");
    assert_int_equal(admin, 0);
    ok(btsso_store_is_admin(f->s, "other", "200", &admin), "other account");
    assert_int_equal(admin, 0);

    ok(btsso_store_account_by_email(f->s, f->p, "QUEUE@example.com ", &ea),
       "account by email");
    assert_non_null(ea->account);
    assert_string_equal(ea->account, "acme");
    ok(btsso_store_account_by_email(f->s, f->p, "nobody@example.com", &ea),
       "no account");
    assert_null(ea->account);
    assert_int_equal(ea->holders->nelts, 0);
}

/* ---- which account an email belongs to, and domain claims --------------- */

static const char *holder(const btsso_email_accounts_t *ea, int i)
{
    return APR_ARRAY_IDX(ea->holders, i, const char *);
}

static void test_email_held_by_several(void **state)
{
    fx_t *f = *state;
    btsso_email_accounts_t *ea;

    ok(btsso_store_account_add(f->s, "alpha", NULL, ACTOR), "alpha");
    ok(btsso_store_account_add(f->s, "mallory", NULL, ACTOR), "mallory");
    ok(btsso_store_user_add(f->s, "alpha", "1", "kate@corp.example", "user",
                            0, ACTOR), "kate in alpha");
    ok(btsso_store_user_add(f->s, "alpha", "2", "boss@corp.example", "user",
                            0, ACTOR), "boss in alpha");
    ok(btsso_store_account_by_email(f->s, f->p, "Kate@Corp.Example", &ea),
       "sole holder");
    assert_string_equal(ea->account, "alpha");
    assert_null(ea->claimant);

    /* mallory adds kate to itself, twice over */
    ok(btsso_store_user_add(f->s, "mallory", "7", "kate@corp.example",
                            "user", 0, ACTOR), "kate in mallory");
    ok(btsso_store_user_add(f->s, "mallory", "8", " KATE@corp.example",
                            "user", 0, ACTOR), "kate again in mallory");
    ok(btsso_store_account_by_email(f->s, f->p, "kate@corp.example", &ea),
       "two holders");
    assert_null(ea->account);
    assert_int_equal(ea->holders->nelts, 2);
    assert_string_equal(holder(ea, 0), "alpha");
    assert_string_equal(holder(ea, 1), "mallory");
    assert_int_equal(ea->truncated, 0);

    /* the claimant comes first when it holds the email ... */
    ok(btsso_store_domain_add(f->s, "alpha", "corp.example", ACTOR), "claim");
    ok(btsso_store_account_by_email(f->s, f->p, "kate@CORP.example", &ea),
       "claimed");
    assert_string_equal(ea->account, "alpha");
    assert_string_equal(ea->claimant, "alpha");
    assert_int_equal(ea->claimant_holds, 1);
    /* ... and only then: an email only mallory holds stays mallory's */
    ok(btsso_store_user_add(f->s, "mallory", "9", "solo@corp.example",
                            "user", 0, ACTOR), "solo");
    ok(btsso_store_account_by_email(f->s, f->p, "solo@corp.example", &ea),
       "claimant does not hold");
    assert_string_equal(ea->account, "mallory");
    assert_string_equal(ea->claimant, "alpha");
    assert_int_equal(ea->claimant_holds, 0);
    /* an unknown email at the claimed domain belongs to nobody */
    ok(btsso_store_account_by_email(f->s, f->p, "new@corp.example", &ea),
       "unknown at claimed domain");
    assert_null(ea->account);
    /* no '@' (a user name): no domain, only the holders */
    ok(btsso_store_account_by_email(f->s, f->p, "kate", &ea), "no domain");
    assert_null(ea->account);
    assert_null(ea->claimant);
}

static void test_email_holders_bounded(void **state)
{
    fx_t *f = *state;
    btsso_email_accounts_t *ea;
    int i;

    for (i = 0; i < BTSSO_EMAIL_ACCOUNTS_MAX + 2; i++) {
        const char *acc = apr_psprintf(f->p, "acc%03d", i);
        ok(btsso_store_account_add(f->s, acc, NULL, ACTOR), "add");
        ok(btsso_store_user_add(f->s, acc, "1", "many@example.com", "user",
                                0, ACTOR), "user");
    }
    ok(btsso_store_account_by_email(f->s, f->p, "many@example.com", &ea),
       "many holders");
    assert_int_equal(ea->holders->nelts, BTSSO_EMAIL_ACCOUNTS_MAX);
    assert_int_equal(ea->truncated, 1);
    assert_null(ea->account);
    /* a claim still decides, whatever the bound left out */
    ok(btsso_store_domain_add(f->s, "acc051", "example.com", ACTOR), "claim");
    ok(btsso_store_account_by_email(f->s, f->p, "many@example.com", &ea),
       "claimed");
    assert_string_equal(ea->account, "acc051");
}

static void test_domains(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *list;
    const char *owner;
    btsso_account_t *acc;
    apr_int64_t v;
    static const char *const bad[] = {
        "corp", "", ".", "-corp.example", "corp-.example", "corp..example",
        ".corp.example", "c%rp.example", "corp_x.example", "*.corp.example",
        "corp.example/x", "k\xc3\xb6rp.example", "corp .example", NULL
    };
    int i;

    assert_string_equal(btsso_domain_normalize(f->p, "Corp.Example."),
                        "corp.example");
    assert_string_equal(btsso_domain_normalize(f->p, "xn--krp-7qa.example"),
                        "xn--krp-7qa.example");
    for (i = 0; bad[i] != NULL; i++) {
        assert_null(btsso_domain_normalize(f->p, bad[i]));
    }
    assert_null(btsso_domain_normalize(
        f->p, apr_pstrcat(f->p, "a.", apr_psprintf(f->p, "%064d", 0),
                          ".example", NULL)));
    assert_non_null(btsso_domain_normalize(
        f->p, apr_pstrcat(f->p, apr_psprintf(f->p, "%063d", 0), ".example",
                          NULL)));

    ok(btsso_store_account_add(f->s, "alpha", NULL, ACTOR), "alpha");
    ok(btsso_store_account_add(f->s, "mallory", NULL, ACTOR), "mallory");
    ok(btsso_store_account_get(f->s, f->p, "alpha", &acc), "get");
    v = acc->version;
    ok(btsso_store_domain_add(f->s, "alpha", "Corp.Example", ACTOR), "claim");
    ok(btsso_store_account_get(f->s, f->p, "alpha", &acc), "get");
    assert_true(acc->version > v);
    ok(btsso_store_domain_add(f->s, "alpha", "b.example", ACTOR), "claim 2");
    expect_err(btsso_store_domain_add(f->s, "mallory", "corp.EXAMPLE",
                                      ACTOR), "domain_claimed", 409);
    expect_err(btsso_store_domain_add(f->s, "alpha", "corp.example", ACTOR),
               "domain_claimed", 409);
    expect_err(btsso_store_domain_add(f->s, "nosuch", "c.example", ACTOR),
               "not_found", 404);
    expect_err(btsso_store_domain_add(f->s, "alpha", "corp", ACTOR),
               "bad_domain", 400);
    expect_err(btsso_store_domain_add(f->s, "../x", "c.example", ACTOR),
               "bad_account", 400);
    ok(btsso_store_domain_list(f->s, f->p, "alpha", &list), "list");
    assert_int_equal(list->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(list, 0, btsso_domain_t *)->domain,
                        "b.example");
    assert_string_equal(APR_ARRAY_IDX(list, 1, btsso_domain_t *)->domain,
                        "corp.example");
    assert_string_equal(APR_ARRAY_IDX(list, 1, btsso_domain_t *)->account,
                        "alpha");
    ok(btsso_store_domain_list(f->s, f->p, "mallory", &list), "list none");
    assert_int_equal(list->nelts, 0);
    ok(btsso_store_domain_owner(f->s, f->p, "CORP.example", &owner), "owner");
    assert_string_equal(owner, "alpha");
    ok(btsso_store_domain_owner(f->s, f->p, "x.example", &owner), "none");
    assert_null(owner);

    /* the table itself holds one account per domain */
    assert_int_not_equal(raw_exec(f->p, f->params,
                                  "INSERT INTO domains (domain, account, "
                                  "added) VALUES ('corp.example', "
                                  "'mallory', 0)", NULL), 0);

    expect_err(btsso_store_domain_remove(f->s, "mallory", "corp.example",
                                         ACTOR), "domain_not_claimed", 404);
    ok(btsso_store_domain_remove(f->s, "alpha", "CORP.example", ACTOR),
       "remove");
    expect_err(btsso_store_domain_remove(f->s, "alpha", "corp.example",
                                         ACTOR), "domain_not_claimed", 404);
    ok(btsso_store_domain_add(f->s, "mallory", "corp.example", ACTOR),
       "now free");
    assert_int_equal(raw_count(f->p, f->params,
                               "SELECT count(*) FROM audit WHERE action IN "
                               "('domain.add', 'domain.remove')"), 4);
}

/* Takes a new database back to version 3 (before the test-login rule). */
static void downgrade_to_v3(fx_t *f)
{
    static const char *const cols[] = {
        "trust_version", "tested_version", "tested_at", "tested_by", NULL
    };
    int i;

    /* v7: the refresh schedule; v6: the policy */
    assert_int_equal(raw_exec(f->p, f->params, "DROP TABLE idp_refresh",
                              NULL), 0);
    assert_int_equal(raw_exec(f->p, f->params, "DROP TABLE account_policy",
                              NULL), 0);
    /* v5: the test-login rule */
    for (i = 0; cols[i] != NULL; i++) {
        assert_int_equal(raw_exec(f->p, f->params, apr_pstrcat(f->p,
                                  "ALTER TABLE accounts DROP COLUMN ",
                                  cols[i], NULL), NULL), 0);
    }
    /* v4: the sign-in records */
    assert_int_equal(raw_exec(f->p, f->params, "DROP TABLE sign_ins", NULL),
                     0);
    assert_int_equal(raw_exec(f->p, f->params, "DROP TABLE sign_in_days",
                              NULL), 0);
    assert_int_equal(raw_exec(f->p, f->params, "ALTER TABLE certificates "
                              "DROP COLUMN last_verified", NULL), 0);
    assert_int_equal(raw_exec(f->p, f->params, "DELETE FROM "
                              "btsso_schema_version WHERE version > 3",
                              NULL), 0);
}

/* Takes a new database back to version 2 (before sessions followed the
 * account). */
/* Undo schema step 6 (policy), so that the older steps can be undone. */
static void downgrade_policy(fx_t *f)
{
    assert_int_equal(raw_exec(f->p, f->params,
                              "DROP TABLE account_policy", NULL), 0);
    assert_int_equal(raw_exec(f->p, f->params, "DELETE FROM "
                              "btsso_schema_version WHERE version = 6",
                              NULL), 0);
}

static void downgrade_to_v2(fx_t *f)
{
    downgrade_to_v3(f);
    assert_int_equal(raw_exec(f->p, f->params,
                              "DROP TABLE session_revocations", NULL), 0);
    assert_int_equal(raw_exec(f->p, f->params, "ALTER TABLE accounts DROP "
                              "COLUMN sessions_epoch", NULL), 0);
    assert_int_equal(raw_exec(f->p, f->params, "ALTER TABLE accounts DROP "
                              "COLUMN revoke_seq", NULL), 0);
    assert_int_equal(raw_exec(f->p, f->params, "DELETE FROM "
                              "btsso_schema_version WHERE version = 3",
                              NULL), 0);
}

static void test_upgrade_v1_to_v2(void **state)
{
    fx_t *f = *state;
    int from = -1, to = -1;

    /* a database at version 1, as deployed before domain claims */
    downgrade_to_v2(f);
    assert_int_equal(raw_exec(f->p, f->params, "DROP TABLE domains", NULL),
                     0);
    assert_int_equal(raw_exec(f->p, f->params, "DELETE FROM "
                              "btsso_schema_version WHERE version = 2",
                              NULL), 0);
    /* a fresh connection, as btssoctl init is (SQLite reports a schema
     * changed under an open connection) */
    btsso_store_close(f->s);
    ok(btsso_store_open(f->p, backend_driver, f->params, NULL, &f->s),
       "reopen");
    ok(btsso_store_init(f->s, &from, &to), "upgrade");
    assert_int_equal(from, 1);
    assert_int_equal(to, BTSSO_SCHEMA_VERSION);
    ok(btsso_store_account_add(f->s, "alpha", NULL, ACTOR), "alpha");
    ok(btsso_store_domain_add(f->s, "alpha", "corp.example", ACTOR),
       "claim after upgrade");
    ok(btsso_store_init(f->s, &from, &to), "again");
    assert_int_equal(from, BTSSO_SCHEMA_VERSION);
}

static void test_upgrade_v2_to_v3(void **state)
{
    fx_t *f = *state;
    btsso_account_t *a;
    int from = -1, to = -1;

    ok(btsso_store_account_add(f->s, "alpha", NULL, ACTOR), "alpha");
    downgrade_to_v2(f);
    btsso_store_close(f->s);
    ok(btsso_store_open(f->p, backend_driver, f->params, NULL, &f->s),
       "reopen");
    ok(btsso_store_init(f->s, &from, &to), "upgrade");
    assert_int_equal(from, 2);
    assert_int_equal(to, BTSSO_SCHEMA_VERSION);
    /* accounts made before keep their rows, at epoch 1 */
    ok(btsso_store_account_get(f->s, f->p, "alpha", &a), "get");
    assert_int_equal(a->sessions_epoch, 1);
    assert_int_equal(a->revoke_seq, 0);
    ok(btsso_store_sessions_revoke(f->s, "alpha", "a@corp.example",
                                   apr_time_now(), ACTOR), "revoke");
}

/* v5: accounts made before keep their rows, with no test on record; a
 * test counts only for an admin and only with settings that hold the last
 * trust change; audit pages. */
static void test_upgrade_v3_to_v5_and_test_rule(void **state)
{
    fx_t *f = *state;
    btsso_test_state_t ts;
    apr_array_header_t *rows;
    apr_int64_t next, v;
    int from = -1, to = -1, counted = 9, i;

    ok(btsso_store_account_add(f->s, "alpha", NULL, ACTOR), "alpha");
    ok(btsso_store_user_add(f->s, "alpha", "1", "adm@corp.example", "user",
                            1, ACTOR), "admin");
    ok(btsso_store_user_add(f->s, "alpha", "2", "usr@corp.example", "user",
                            0, ACTOR), "user");
    downgrade_to_v3(f);
    btsso_store_close(f->s);
    ok(btsso_store_open(f->p, backend_driver, f->params, NULL, &f->s),
       "reopen");
    ok(btsso_store_init(f->s, &from, &to), "upgrade");
    assert_int_equal(from, 3);
    assert_int_equal(to, BTSSO_SCHEMA_VERSION);
    ok(btsso_store_test_state(f->s, f->p, "alpha", &ts), "state");
    assert_false(ts.passed);
    assert_false(ts.on_record);
    assert_null(ts.by);
    v = ts.version;
    ok(btsso_store_test_passed(f->s, "alpha", "usr@corp.example", v,
                               apr_time_now(), &counted), "user test");
    assert_int_equal(counted, 0);
    ok(btsso_store_test_passed(f->s, "alpha", "ADM@corp.example", v,
                               apr_time_now(), &counted), "admin test");
    assert_int_equal(counted, 1);
    ok(btsso_store_test_state(f->s, f->p, "alpha", &ts), "state");
    assert_true(ts.passed);
    assert_string_equal(ts.by, "ADM@corp.example");
    expect_err(btsso_store_test_state(f->s, f->p, "nosuch", &ts),
               "not_found", 404);
    /* audit pages: newest first, before/next, since */
    ok(btsso_store_audit_page(f->s, f->p, "alpha", 0, 0, 2, &rows, &next),
       "page 1");
    assert_int_equal(rows->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(rows, 0, btsso_audit_t *)->action,
                        "sso.test_passed");
    assert_int_equal(next, APR_ARRAY_IDX(rows, 1, btsso_audit_t *)->id);
    ok(btsso_store_audit_page(f->s, f->p, "alpha", next, 0, 100, &rows,
                              &next), "page 2");
    assert_int_equal(next, 0);
    for (i = 0; i < rows->nelts; i++) {
        assert_true(APR_ARRAY_IDX(rows, i, btsso_audit_t *)->id
                    < APR_ARRAY_IDX(rows, 0, btsso_audit_t *)->id + 1);
    }
    assert_string_equal(APR_ARRAY_IDX(rows, rows->nelts - 1,
                                      btsso_audit_t *)->action,
                        "account.add");
    ok(btsso_store_audit_page(f->s, f->p, "alpha", 0,
                              apr_time_now() + apr_time_from_sec(60), 10,
                              &rows, &next), "since the future");
    assert_int_equal(rows->nelts, 0);
}

static apr_int64_t epoch_of(fx_t *f, const char *account)
{
    btsso_account_t *a;

    ok(btsso_store_account_get(f->s, f->p, account, &a), "account_get");
    return a->sessions_epoch;
}

static void test_sessions_revoke(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_now();
    apr_array_header_t *revs;
    btsso_account_t *a;
    btsso_revocation_t *v;
    apr_int64_t seq;
    int truncated = -1;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    ok(btsso_store_account_add(f->s, "other", NULL, ACTOR), "add other");
    ok(btsso_store_account_get(f->s, f->p, "acme", &a), "get");
    assert_int_equal(a->sessions_epoch, 1);
    assert_int_equal(a->revoke_seq, 0);
    ok(btsso_store_session_revocations(f->s, f->p, "acme", 0, 10, &revs,
                                       &truncated), "none yet");
    assert_int_equal(revs->nelts, 0);
    assert_int_equal(truncated, 0);

    /* every session: the epoch grows, nothing else */
    ok(btsso_store_sessions_revoke(f->s, "acme", NULL, now, ACTOR), "all");
    ok(btsso_store_account_get(f->s, f->p, "acme", &a), "get");
    assert_int_equal(a->sessions_epoch, 2);
    assert_int_equal(a->revoke_seq, 0);
    assert_int_equal(epoch_of(f, "other"), 1);

    /* one user, stored as BTSSOUserQuery compares */
    ok(btsso_store_sessions_revoke(f->s, "acme", " Ann@Example.COM ", now,
                                   ACTOR), "ann");
    ok(btsso_store_sessions_revoke(f->s, "acme", "bob@example.com", now,
                                   ACTOR), "bob");
    ok(btsso_store_sessions_revoke(f->s, "acme", "ann@example.com", now,
                                   ACTOR), "ann again");
    ok(btsso_store_account_get(f->s, f->p, "acme", &a), "get");
    assert_int_equal(a->sessions_epoch, 2);
    assert_int_equal(a->revoke_seq, 3);
    ok(btsso_store_session_revocations(f->s, f->p, "acme",
                                       now - apr_time_from_sec(60), 10,
                                       &revs, &truncated), "list");
    assert_int_equal(revs->nelts, 2);   /* one row per user */
    assert_int_equal(truncated, 0);
    v = &APR_ARRAY_IDX(revs, 0, btsso_revocation_t);
    assert_string_equal(v->email, "ann@example.com");
    assert_int_equal(v->seq, 3);
    v = &APR_ARRAY_IDX(revs, 1, btsso_revocation_t);
    assert_string_equal(v->email, "bob@example.com");
    assert_int_equal(v->seq, 2);
    ok(btsso_store_session_revocations(f->s, f->p, "acme",
                                       now - apr_time_from_sec(60), 1,
                                       &revs, &truncated), "bounded");
    assert_int_equal(revs->nelts, 1);
    assert_int_equal(truncated, 1);
    assert_string_equal(APR_ARRAY_IDX(revs, 0, btsso_revocation_t).email,
                        "ann@example.com");
    ok(btsso_store_session_revocations(f->s, f->p, "acme",
                                       now + apr_time_from_sec(60), 10,
                                       &revs, &truncated), "too old");
    assert_int_equal(revs->nelts, 0);
    ok(btsso_store_session_revocations(f->s, f->p, "other", 0, 10, &revs,
                                       &truncated), "other account");
    assert_int_equal(revs->nelts, 0);
    ok(btsso_store_session_revoked(f->s, f->p, "acme", " ANN@example.com",
                                   &seq), "revoked");
    assert_int_equal(seq, 3);
    ok(btsso_store_session_revoked(f->s, f->p, "other", "ann@example.com",
                                   &seq), "not in other");
    assert_int_equal(seq, 0);

    expect_err(btsso_store_sessions_revoke(f->s, "nosuch", NULL, now, ACTOR),
               "not_found", 404);
    expect_err(btsso_store_sessions_revoke(f->s, "acme", "no-at-sign", now,
                                           ACTOR), "bad_email", 400);
    assert_int_equal(raw_count(f->p, f->params,
                               "SELECT count(*) FROM audit WHERE account = "
                               "'acme' AND action = 'sessions.revoke_all'"),
                     1);
    assert_int_equal(raw_count(f->p, f->params,
                               "SELECT count(*) FROM audit WHERE account = "
                               "'acme' AND action = 'sessions.revoke_user'"
                               " AND detail = 'email=ann@example.com'"), 2);
}

static void test_sessions_end_on_disable_and_new_idp(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_now();

    ready_account(f, "acme", "https://idp.example.com/1");
    assert_int_equal(epoch_of(f, "acme"), 1);
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0, now, ACTOR,
                               NULL, NULL), "enable");
    assert_int_equal(epoch_of(f, "acme"), 1);
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 0, 0, 0, now, ACTOR,
                               NULL, NULL), "disable");
    assert_int_equal(epoch_of(f, "acme"), 2);
    /* enabling again revives nothing: the epoch only grows */
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0, now, ACTOR,
                               NULL, NULL), "enable again");
    assert_int_equal(epoch_of(f, "acme"), 2);
    /* the same IdP's metadata again: sessions live on */
    ok(btsso_store_idp_set(f->s, "acme",
                           md_make(f->p, "https://idp.example.com/1", "okta",
                                   "entra", NULL),
                           xml_for(f->p, "https://idp.example.com/1"), NULL,
                           0, 0, now, ACTOR), "same idp");
    assert_int_equal(epoch_of(f, "acme"), 2);
    /* another IdP: they end */
    ok(btsso_store_idp_set(f->s, "acme",
                           md_make(f->p, "https://idp.example.com/2", "okta",
                                   "entra", NULL),
                           xml_for(f->p, "https://idp.example.com/2"), NULL,
                           0, 0, now, ACTOR), "new idp");
    assert_int_equal(epoch_of(f, "acme"), 3);
    /* a refused change bumps nothing */
    expect_err(btsso_store_set_enabled(f->s, f->p, "acme", 0, 0, 1, now,
                                       ACTOR, NULL, NULL), "conflict", 409);
    assert_int_equal(epoch_of(f, "acme"), 3);
}

static void test_duplicates(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *dups;
    btsso_dup_email_t *d;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    ok(btsso_store_user_add(f->s, "acme", "100", "Alice@Example.com", "user",
                            0, ACTOR), "a1");
    ok(btsso_store_user_add(f->s, "acme", "q9", " alice@example.COM ",
                            "call_queue", 0, ACTOR), "a2");
    ok(btsso_store_user_add(f->s, "acme", "300", "bob@example.com", "user",
                            0, ACTOR), "b1");
    ok(btsso_store_user_add(f->s, "acme", "301", "BOB@example.com", "user",
                            0, ACTOR), "b2");
    ok(btsso_store_user_add(f->s, "acme", "302", "bob@EXAMPLE.com", "user",
                            0, ACTOR), "b3");
    ok(btsso_store_user_add(f->s, "acme", "400", "carol@example.com", "user",
                            0, ACTOR), "c");

    ok(btsso_store_duplicate_emails(f->s, f->p, "acme", &dups), "dups");
    assert_int_equal(dups->nelts, 2);
    d = APR_ARRAY_IDX(dups, 0, btsso_dup_email_t *);
    assert_string_equal(d->email, "alice@example.com");
    assert_int_equal(d->holders->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(d->holders, 0, btsso_user_t *)->extension,
                        "100");
    assert_string_equal(APR_ARRAY_IDX(d->holders, 1, btsso_user_t *)->kind,
                        "call_queue");
    d = APR_ARRAY_IDX(dups, 1, btsso_dup_email_t *);
    assert_string_equal(d->email, "bob@example.com");
    assert_int_equal(d->holders->nelts, 3);

    ok(btsso_store_duplicate_emails(f->s, f->p, "nope", &dups), "none");
    assert_int_equal(dups->nelts, 0);
}

/* ---- enabling ------------------------------------------------------------------------- */

static void test_enable_refused_duplicates(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *dups = NULL, *missing = NULL;
    int audits;

    ready_account(f, "acme", "https://idp.example.com/acme");
    ok(btsso_store_user_add(f->s, "acme", "100", "alice@example.com", "user",
                            0, ACTOR), "a1");
    ok(btsso_store_user_add(f->s, "acme", "101", "Alice@Example.com ",
                            "user", 0, ACTOR), "a2");
    audits = audit_count(f, "acme");
    expect_err(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0,
                                       apr_time_now(), ACTOR, &dups,
                                       &missing),
               "duplicate_emails", 409);
    assert_int_equal(dups->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(dups, 0, btsso_dup_email_t *)->email,
                        "alice@example.com");
    assert_int_equal(missing->nelts, 0);
    assert_int_equal(account(f, "acme")->sso_enabled, 0);
    assert_int_equal(account(f, "acme")->version, 5);
    assert_int_equal(audit_count(f, "acme"), audits);
    /* either out pointer may be NULL */
    expect_err(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0,
                                       apr_time_now(), ACTOR, NULL, NULL),
               "duplicate_emails", 409);
}

static void test_enable_and_user_refusal(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *dups = NULL, *missing = NULL, *list;
    btsso_account_t *a;
    int audits;
    const char *variants[] = { "alice@example.com", "ALICE@EXAMPLE.COM",
                               "  Alice@Example.Com", "alice@example.com  " };
    size_t i;

    ready_account(f, "acme", "https://idp.example.com/acme");
    ok(btsso_store_user_add(f->s, "acme", "100", "Alice@Example.com", "user",
                            0, ACTOR), "alice");
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 1, 1, 0, apr_time_now(),
                               ACTOR, &dups, &missing), "enable");
    a = account(f, "acme");
    assert_int_equal(a->sso_enabled, 1);
    assert_int_equal(a->allow_password, 1);
    audits = audit_count(f, "acme");

    for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        expect_err(btsso_store_user_add(f->s, "acme", "200", variants[i],
                                        "call_queue", 0, ACTOR),
                   "duplicate_email", 409);
    }
    ok(btsso_store_user_list(f->s, f->p, "acme", &list), "list");
    assert_int_equal(list->nelts, 1);
    assert_int_equal(account(f, "acme")->version, a->version);
    assert_int_equal(audit_count(f, "acme"), audits);
    ok(btsso_store_user_add(f->s, "acme", "200", "other@example.com", "user",
                            0, ACTOR), "unique email still fine");

    /* disabling always works, even with duplicates present */
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 0, 0, 0, apr_time_now(),
                               ACTOR, NULL, NULL), "disable");
    assert_int_equal(account(f, "acme")->sso_enabled, 0);
    ok(btsso_store_user_add(f->s, "acme", "300", "ALICE@example.com", "user",
                            0, ACTOR), "duplicate allowed while disabled");
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 0, 0, 0, apr_time_now(),
                               ACTOR, NULL, NULL), "disable with dups");
}

/*
 * The user lookup of every login (BTSSOUserQuery's default, and the
 * holders' query) finds the email through its index on SQLite, even in an
 * account of thousands of users and before any ANALYZE: with the order by
 * extension, SQLite used to prefer the primary key and read every user of
 * the account (schema v8).  PostgreSQL and MySQL plan with statistics.
 */
static void test_user_lookup_uses_email_index(void **state)
{
    fx_t *f = *state;
    const btsso_stmt_def_t *d;
    const apr_dbd_driver_t *drv;
    apr_dbd_t *h;
    int checked = 0;

    if (strcmp(backend_driver, "sqlite3") != 0) {
        skip();
    }
    ready_account(f, "acme", "https://idp.example.com/acme");
    h = raw_open(f->p, f->params, &drv);
    for (d = btsso_store_statements(); d->label != NULL; d++) {
        apr_dbd_results_t *res = NULL;
        apr_dbd_row_t *row = NULL;
        const char *sql, *plan = "";
        char *q;

        if (strcmp(d->label, BTSSO_Q_USER) != 0
            && strcmp(d->label, "btsso_user_holders") != 0) {
            continue;
        }
        /* the two parameters as literals */
        q = apr_pstrdup(f->p, d->sql);
        sql = apr_psprintf(f->p, "EXPLAIN QUERY PLAN %s", q);
        sql = sql_subst(f->p, sql, "'acme'", "'a@example.com'");
        if (apr_dbd_select(drv, f->p, h, &res, sql, 1) != 0) {
            fail_msg("%s: %s", sql, apr_dbd_error(drv, h, 1));
        }
        while (apr_dbd_get_row(drv, f->p, res, &row, -1) == 0) {
            plan = apr_pstrcat(f->p, plan, apr_dbd_get_entry(drv, row, 3),
                               "\n", NULL);
        }
        if (strstr(plan, "USING INDEX users_email ") == NULL
            || strstr(plan, "TEMP B-TREE") != NULL) {
            fail_msg("%s: plan\n%s", d->label, plan);
        }
        checked++;
    }
    apr_dbd_close(drv, h);
    assert_int_equal(checked, 2);
}

static void test_trigger_raw_writes(void **state)
{
    fx_t *f = *state;
    const char *error = NULL;

    ready_account(f, "acme", "https://idp.example.com/acme");
    ok(btsso_store_user_add(f->s, "acme", "100", "alice@example.com", "user",
                            0, ACTOR), "alice");
    ok(btsso_store_user_add(f->s, "acme", "101", "bob@example.com", "user",
                            0, ACTOR), "bob");
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0, apr_time_now(),
                               ACTOR, NULL, NULL), "enable");

    /* the portal inserting directly is held to the rule as well */
    assert_int_not_equal(raw_exec(f->p, f->params,
                                  "INSERT INTO users (account, extension, "
                                  "kind, email, is_admin) VALUES ('acme', "
                                  "'102', 'user', ' ALICE@example.com', 0)",
                                  &error), 0);
    assert_non_null(strstr(error, "duplicate_email"));
    assert_int_not_equal(raw_exec(f->p, f->params,
                                  "UPDATE users SET email = 'Alice@Example.com'"
                                  " WHERE account = 'acme' AND extension = "
                                  "'101'", &error), 0);
    assert_non_null(strstr(error, "duplicate_email"));
    /* updating a user's own row to a variant of its own email is fine */
    assert_int_equal(raw_exec(f->p, f->params,
                              "UPDATE users SET email = 'ALICE@example.com'"
                              " WHERE account = 'acme' AND extension = '100'",
                              &error), 0);
    assert_int_equal(raw_exec(f->p, f->params,
                              "INSERT INTO users (account, extension, kind, "
                              "email, is_admin) VALUES ('acme', '102', "
                              "'user', 'carol@example.com', 0)", &error), 0);
    assert_int_equal(raw_count(f->p, f->params, "SELECT count(*) FROM users "
                               "WHERE account = 'acme'"), 3);
    /* another account, or SSO off: no restriction */
    ok(btsso_store_account_add(f->s, "other", NULL, ACTOR), "other");
    assert_int_equal(raw_exec(f->p, f->params,
                              "INSERT INTO users (account, extension, kind, "
                              "email, is_admin) VALUES ('other', '1', 'user',"
                              " 'alice@example.com', 0)", &error), 0);
    assert_int_equal(raw_exec(f->p, f->params,
                              "INSERT INTO users (account, extension, kind, "
                              "email, is_admin) VALUES ('other', '2', 'user',"
                              " 'alice@example.com', 0)", &error), 0);
    /* the CHECK on kind */
    assert_int_not_equal(raw_exec(f->p, f->params,
                                  "INSERT INTO users (account, extension, "
                                  "kind, email, is_admin) VALUES ('other', "
                                  "'3', 'robot', 'r@example.com', 0)",
                                  &error), 0);
}

static void test_incomplete(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *dups = NULL, *missing = NULL;
    apr_time_t now = apr_time_now();
    btsso_idp_t *idp;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    expect_err(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0, now,
                                       ACTOR, &dups, &missing),
               "incomplete", 409);
    assert_string_equal(missing_str(f->p, missing),
                        "idp,email_mapping,usable_certificate");
    assert_int_equal(dups->nelts, 0);

    ok(btsso_store_idp_set(f->s, "acme",
                           md_make(f->p, "https://idp.example.com", "okta",
                                   NULL),
                           "<x/>", NULL, 0, 0, now, ACTOR), "idp");
    expect_err(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0, now,
                                       ACTOR, &dups, &missing),
               "incomplete", 409);
    assert_string_equal(missing_str(f->p, missing), "email_mapping");

    ok(btsso_store_email_set(f->s, "acme", NULL, 1, 0, ACTOR), "name_id");
    ok(btsso_store_idp_get(f->s, f->p, "acme", &idp), "idp_get");
    assert_int_equal(idp->email_from_name_id, 1);
    assert_null(idp->email_attribute);
    ok(btsso_store_cert_role(f->s, "acme", fixture_cert(f->p, "okta")->sha256,
                             BTSSO_ROLE_NONE, 0, ACTOR), "drop role");
    expect_err(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0, now,
                                       ACTOR, &dups, &missing),
               "incomplete", 409);
    assert_string_equal(missing_str(f->p, missing), "usable_certificate");
    assert_int_equal(account(f, "acme")->sso_enabled, 0);

    ok(btsso_store_cert_role(f->s, "acme", fixture_cert(f->p, "okta")->sha256,
                             BTSSO_ROLE_SECONDARY, 0, ACTOR), "secondary");
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0, now, ACTOR, &dups,
                               &missing), "enable with secondary only");
    assert_int_equal(missing->nelts, 0);
    assert_int_equal(account(f, "acme")->sso_enabled, 1);
    expect_err(btsso_store_set_enabled(f->s, f->p, "nope", 1, 0, 0, now,
                                       ACTOR, &dups, &missing),
               "not_found", 404);
}

static void test_missing_pure(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_now();
    btsso_idp_t idp;
    apr_array_header_t *certs = apr_array_make(f->p, 2,
                                               sizeof(btsso_stored_cert_t *));
    btsso_stored_cert_t good = { NULL, BTSSO_ROLE_PRIMARY, "upload", 0 };
    btsso_stored_cert_t unassigned = { NULL, BTSSO_ROLE_NONE, "upload", 0 };

    good.cert = fixture_cert(f->p, "okta");
    unassigned.cert = fixture_cert(f->p, "entra");
    memset(&idp, 0, sizeof(idp));
    idp.entity_id = "https://idp";

    assert_string_equal(missing_str(f->p, btsso_account_missing(f->p, NULL,
                                                                NULL, now)),
                        "idp,email_mapping,usable_certificate");
    assert_string_equal(missing_str(f->p, btsso_account_missing(f->p, &idp,
                                                                certs, now)),
                        "email_mapping,usable_certificate");
    idp.email_attribute = "";
    APR_ARRAY_PUSH(certs, btsso_stored_cert_t *) = &unassigned;
    assert_string_equal(missing_str(f->p, btsso_account_missing(f->p, &idp,
                                                                certs, now)),
                        "email_mapping,usable_certificate");
    idp.email_attribute = "mail";
    APR_ARRAY_PUSH(certs, btsso_stored_cert_t *) = &good;
    assert_int_equal(btsso_account_missing(f->p, &idp, certs, now)->nelts, 0);
    idp.email_attribute = NULL;
    idp.email_from_name_id = 1;
    assert_int_equal(btsso_account_missing(f->p, &idp, certs, now)->nelts, 0);
    /* the same certificate, looked at after it expired */
    assert_string_equal(missing_str(f->p, btsso_account_missing(
                            f->p, &idp, certs,
                            good.cert->not_after + apr_time_from_sec(1))),
                        "usable_certificate");
    /* and before it was valid */
    assert_string_equal(missing_str(f->p, btsso_account_missing(
                            f->p, &idp, certs,
                            good.cert->not_before - apr_time_from_sec(1))),
                        "usable_certificate");
}

static void test_expired_only(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *dups = NULL, *missing = NULL;
    apr_time_t now = apr_time_now();
    btsso_cert_t *expired = fixture_cert(f->p, "expired");
    btsso_cert_t *notyet = fixture_cert(f->p, "notyet");

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    ok(btsso_store_idp_set(f->s, "acme",
                           md_make(f->p, "https://idp.example.com", "expired",
                                   "notyet", NULL),
                           "<x/>", NULL, 0, 0, now, ACTOR), "idp");
    /* neither is valid now, so neither was given a role */
    assert_string_equal(role_of(f, "acme", expired->sha256), "none");
    assert_string_equal(role_of(f, "acme", notyet->sha256), "none");
    ok(btsso_store_email_set(f->s, "acme", "mail", 0, 0, ACTOR), "email");
    ok(btsso_store_cert_role(f->s, "acme", expired->sha256,
                             BTSSO_ROLE_PRIMARY, 0, ACTOR), "primary");
    ok(btsso_store_cert_role(f->s, "acme", notyet->sha256,
                             BTSSO_ROLE_SECONDARY, 0, ACTOR), "secondary");
    expect_err(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0, now,
                                       ACTOR, &dups, &missing),
               "incomplete", 409);
    assert_string_equal(missing_str(f->p, missing), "usable_certificate");
}

/* ---- IdP ---------------------------------------------------------------------------- */

static void test_idp_set_get(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_now();
    btsso_cert_t *okta = fixture_cert(f->p, "okta");
    btsso_cert_t *entra = fixture_cert(f->p, "entra");
    btsso_cert_t *google = fixture_cert(f->p, "google");
    apr_array_header_t *certs, *urls;
    btsso_idp_t *idp;
    btsso_stored_cert_t *sc;
    const char *acct;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    ok(btsso_store_idp_get(f->s, f->p, "acme", &idp), "no idp yet");
    assert_null(idp);
    ok(btsso_store_idp_set(f->s, "acme",
                           md_make(f->p, "https://idp.example.com/1",
                                   "expired", "okta", "entra", "google",
                                   NULL),
                           "<md:EntityDescriptor/>",
                           "https://idp.example.com/md", 0, 0, now, ACTOR),
       "idp_set");
    ok(btsso_store_idp_get(f->s, f->p, "acme", &idp), "idp_get");
    assert_non_null(idp);
    assert_string_equal(idp->account, "acme");
    assert_string_equal(idp->entity_id, "https://idp.example.com/1");
    assert_string_equal(idp->metadata_xml, "<md:EntityDescriptor/>");
    assert_string_equal(idp->source_url, "https://idp.example.com/md");
    assert_null(idp->email_attribute);
    assert_int_equal(idp->email_from_name_id, 0);
    assert_int_equal(idp->shared, 0);
    assert_int_equal(apr_time_sec(idp->updated), apr_time_sec(now));
    /* first two valid-now certificates in document order */
    assert_string_equal(role_of(f, "acme", okta->sha256), "primary");
    assert_string_equal(role_of(f, "acme", entra->sha256), "secondary");
    assert_string_equal(role_of(f, "acme", google->sha256), "none");
    ok(btsso_store_cert_list(f->s, f->p, "acme", &certs), "list");
    assert_int_equal(certs->nelts, 4);
    sc = APR_ARRAY_IDX(certs, 0, btsso_stored_cert_t *);
    assert_int_equal(sc->role, BTSSO_ROLE_PRIMARY);
    assert_string_equal(sc->source, "metadata");
    assert_int_equal(sc->cert->der_len, okta->der_len);
    assert_memory_equal(sc->cert->der, okta->der, okta->der_len);
    assert_string_equal(sc->cert->subject, okta->subject);

    ok(btsso_store_url_accounts(f->s, f->p, &urls), "url accounts");
    assert_int_equal(urls->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(urls, 0, const char *), "acme");
    ok(btsso_store_account_by_issuer(f->s, f->p, "https://idp.example.com/1",
                                     &acct), "by issuer");
    assert_string_equal(acct, "acme");
    ok(btsso_store_account_by_issuer(f->s, f->p, "https://other", &acct),
       "unknown issuer");
    assert_null(acct);

    /* the same IdP again (a refresh), roles usable: roles stay, mapping
     * stays, the upload replaces the URL */
    ok(btsso_store_email_set(f->s, "acme", "mail", 0, 0, ACTOR), "email");
    ok(btsso_store_cert_role(f->s, "acme", google->sha256,
                             BTSSO_ROLE_PRIMARY, 0, ACTOR), "google primary");
    ok(btsso_store_idp_set(f->s, "acme",
                           md_make(f->p, "https://idp.example.com/1", "okta",
                                   NULL),
                           "<again/>", NULL, 0, 0, now, ACTOR), "again");
    assert_string_equal(role_of(f, "acme", google->sha256), "primary");
    assert_string_equal(role_of(f, "acme", entra->sha256), "secondary");
    ok(btsso_store_idp_get(f->s, f->p, "acme", &idp), "idp_get");
    assert_string_equal(idp->email_attribute, "mail");
    assert_null(idp->source_url);
    ok(btsso_store_url_accounts(f->s, f->p, &urls), "url accounts");
    assert_int_equal(urls->nelts, 0);

    /* a different IdP: the old keys lose their roles */
    ok(btsso_store_idp_set(f->s, "acme",
                           md_make(f->p, "https://idp.example.com/2", "entra",
                                   NULL),
                           "<two/>", NULL, 0, 0, now, ACTOR), "new idp");
    assert_string_equal(role_of(f, "acme", entra->sha256), "primary");
    assert_string_equal(role_of(f, "acme", google->sha256), "none");
    assert_string_equal(role_of(f, "acme", okta->sha256), "none");

    expect_err(btsso_store_idp_set(f->s, "nope",
                                   md_make(f->p, "https://x", NULL), "<x/>",
                                   NULL, 0, 0, now, ACTOR), "not_found", 404);
    expect_err(btsso_store_idp_set(f->s, "acme", NULL, "<x/>", NULL, 0, 0,
                                   now, ACTOR), "bad_metadata", 400);
}

static void test_entity_in_use(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_now();
    const char *entity = "https://idp.shared.example.com";
    btsso_idp_metadata_t *md = md_make(f->p, entity, "okta", NULL);
    btsso_idp_t *idp;
    btsso_error_t *e;
    const char *acct;

    ok(btsso_store_account_add(f->s, "a", NULL, ACTOR), "a");
    ok(btsso_store_account_add(f->s, "b", NULL, ACTOR), "b");
    ok(btsso_store_account_add(f->s, "c", NULL, ACTOR), "c");
    ok(btsso_store_idp_set(f->s, "a", md, "<a/>", NULL, 0, 0, now, ACTOR),
       "a self-service");
    e = btsso_store_idp_set(f->s, "b", md, "<b/>", NULL, 0, 0, now, ACTOR);
    expect_err(e, "entity_in_use", 409);
    assert_non_null(strstr(e->message, "support"));
    ok(btsso_store_idp_get(f->s, f->p, "b", &idp), "b idp");
    assert_null(idp);
    assert_int_equal(account(f, "b")->version, 1);
    assert_int_equal(audit_count(f, "b"), 1);

    /* support shares it beside a, which keeps its self-service (global)
     * addressing and is not touched */
    ok(btsso_store_idp_set(f->s, "b", md, "<b/>", NULL, 1, 0, now, ACTOR),
       "b shared beside a");
    ok(btsso_store_idp_get(f->s, f->p, "b", &idp), "b idp");
    assert_int_equal(idp->shared, 1);
    ok(btsso_store_idp_get(f->s, f->p, "a", &idp), "a idp");
    assert_int_equal(idp->shared, 0);
    assert_string_equal(idp->metadata_xml, "<a/>");
    assert_int_equal(account(f, "a")->version, 2);
    ok(btsso_store_account_by_issuer(f->s, f->p, entity, &acct), "issuer");
    assert_non_null(acct);
    assert_string_equal(acct, "a");
    /* a second self-service holder is refused: the Issuer would be
     * ambiguous; so is b turning self-service */
    expect_err(btsso_store_idp_set(f->s, "c", md, "<c/>", NULL, 0, 0, now,
                                   ACTOR), "entity_in_use", 409);
    expect_err(btsso_store_idp_set(f->s, "b", md, "<b/>", NULL, 0, 0, now,
                                   ACTOR), "entity_in_use", 409);
    /* a keeps managing its own IdP (fresh metadata, refresh) */
    ok(btsso_store_idp_set(f->s, "a", md, "<a2/>", NULL, 0, 0, now, ACTOR),
       "a re-imported");
    ok(btsso_store_idp_get(f->s, f->p, "a", &idp), "a idp");
    assert_int_equal(idp->shared, 0);
    assert_string_equal(idp->metadata_xml, "<a2/>");

    /* support turns a into a shared IdP too: now no account is found by
     * the Issuer, and self-service c is still refused */
    ok(btsso_store_idp_set(f->s, "a", md, "<a/>", NULL, 1, 0, now, ACTOR),
       "a shared");
    ok(btsso_store_account_by_issuer(f->s, f->p, entity, &acct), "issuer");
    assert_null(acct);
    expect_err(btsso_store_idp_set(f->s, "c", md, "<c/>", NULL, 0, 0, now,
                                   ACTOR), "entity_in_use", 409);
    /* nor may a return to self-service while b shares it */
    expect_err(btsso_store_idp_set(f->s, "a", md, "<a/>", NULL, 0, 0, now,
                                   ACTOR), "entity_in_use", 409);

    /* the parser's UTF-8 form of the document is what is stored */
    md->xml = "<stored-form/>trailing";
    md->xml_len = strlen("<stored-form/>");
    ok(btsso_store_idp_set(f->s, "c", md, "\xff\xfe<", NULL, 1, 0, now,
                           ACTOR), "c shared");
    ok(btsso_store_idp_get(f->s, f->p, "c", &idp), "c idp");
    assert_string_equal(idp->metadata_xml, "<stored-form/>");
}

static void test_email_set(void **state)
{
    fx_t *f = *state;
    btsso_idp_t *idp;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    expect_err(btsso_store_email_set(f->s, "acme", "mail", 0, 0, ACTOR),
               "no_idp", 409);
    assert_int_equal(account(f, "acme")->version, 1);
    ok(btsso_store_idp_set(f->s, "acme",
                           md_make(f->p, "https://idp", "okta", NULL), "<x/>",
                           NULL, 0, 0, apr_time_now(), ACTOR), "idp");
    expect_err(btsso_store_email_set(f->s, "acme", NULL, 0, 0, ACTOR),
               "bad_attribute", 400);
    expect_err(btsso_store_email_set(f->s, "acme", "mail", 1, 0, ACTOR),
               "bad_attribute", 400);
    expect_err(btsso_store_email_set(f->s, "acme", "ma\til", 0, 0, ACTOR),
               "bad_attribute", 400);
    ok(btsso_store_email_set(f->s, "acme",
                             "http://schemas.xmlsoap.org/ws/2005/05/identity/"
                             "claims/emailaddress", 0, 0, ACTOR), "claim");
    ok(btsso_store_idp_get(f->s, f->p, "acme", &idp), "get");
    assert_string_equal(idp->email_attribute,
                        "http://schemas.xmlsoap.org/ws/2005/05/identity/"
                        "claims/emailaddress");
    assert_int_equal(idp->email_from_name_id, 0);
    ok(btsso_store_email_set(f->s, "acme", NULL, 1, 0, ACTOR), "name id");
    ok(btsso_store_idp_get(f->s, f->p, "acme", &idp), "get");
    assert_null(idp->email_attribute);
    assert_int_equal(idp->email_from_name_id, 1);
    expect_err(btsso_store_email_set(f->s, "nope", "mail", 0, 0, ACTOR),
               "not_found", 404);
}

/* ---- certificates ---------------------------------------------------------------------- */

static void test_cert_roles(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_now();
    btsso_cert_t *okta = fixture_cert(f->p, "okta");
    btsso_cert_t *entra = fixture_cert(f->p, "entra");
    btsso_cert_t *google = fixture_cert(f->p, "google");
    btsso_cert_t *keycloak = fixture_cert(f->p, "keycloak");
    apr_array_header_t *certs;
    apr_int64_t v;
    char upper[65];
    int i, primaries, secondaries;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    ok(btsso_store_cert_add(f->s, "acme", okta, BTSSO_ROLE_PRIMARY, "upload",
                            0, now, ACTOR), "okta primary");
    ok(btsso_store_cert_add(f->s, "acme", entra, BTSSO_ROLE_SECONDARY,
                            "upload", 0, now, ACTOR), "entra secondary");
    ok(btsso_store_cert_add(f->s, "acme", google, BTSSO_ROLE_NONE, "upload",
                            0, now, ACTOR), "google none");
    /* giving a role takes it from its holder */
    ok(btsso_store_cert_add(f->s, "acme", keycloak, BTSSO_ROLE_PRIMARY,
                            "upload", 0, now, ACTOR), "keycloak primary");
    assert_string_equal(role_of(f, "acme", okta->sha256), "none");
    assert_string_equal(role_of(f, "acme", keycloak->sha256), "primary");
    /* already stored: only a role changes it */
    v = account(f, "acme")->version;
    ok(btsso_store_cert_add(f->s, "acme", google, BTSSO_ROLE_NONE, "upload",
                            0, now, ACTOR), "again, no role");
    assert_int_equal(account(f, "acme")->version, v);
    ok(btsso_store_cert_add(f->s, "acme", google, BTSSO_ROLE_SECONDARY,
                            "upload", 0, now, ACTOR), "again, secondary");
    assert_string_equal(role_of(f, "acme", google->sha256), "secondary");
    assert_string_equal(role_of(f, "acme", entra->sha256), "none");

    /* cert_role, with an upper-case fingerprint */
    for (i = 0; i < 64; i++) {
        upper[i] = (char)toupper((unsigned char)entra->sha256[i]);
    }
    upper[64] = '\0';
    ok(btsso_store_cert_role(f->s, "acme", upper, BTSSO_ROLE_PRIMARY, 0,
                             ACTOR), "entra primary");
    assert_string_equal(role_of(f, "acme", entra->sha256), "primary");
    assert_string_equal(role_of(f, "acme", keycloak->sha256), "none");
    v = account(f, "acme")->version;
    ok(btsso_store_cert_role(f->s, "acme", entra->sha256, BTSSO_ROLE_PRIMARY,
                             0, ACTOR), "same role");
    assert_int_equal(account(f, "acme")->version, v);

    ok(btsso_store_cert_list(f->s, f->p, "acme", &certs), "list");
    assert_int_equal(certs->nelts, 4);
    primaries = secondaries = 0;
    for (i = 0; i < certs->nelts; i++) {
        btsso_stored_cert_t *sc = APR_ARRAY_IDX(certs, i,
                                                btsso_stored_cert_t *);
        primaries += sc->role == BTSSO_ROLE_PRIMARY;
        secondaries += sc->role == BTSSO_ROLE_SECONDARY;
        assert_string_equal(sc->source, "upload");
    }
    assert_int_equal(primaries, 1);
    assert_int_equal(secondaries, 1);
    assert_int_equal(APR_ARRAY_IDX(certs, 0, btsso_stored_cert_t *)->role,
                     BTSSO_ROLE_PRIMARY);

    expect_err(btsso_store_cert_role(f->s, "acme", "abc", BTSSO_ROLE_PRIMARY,
                                     0, ACTOR), "bad_fingerprint", 400);
    expect_err(btsso_store_cert_role(f->s, "acme",
                                     fixture_cert(f->p, "expired")->sha256,
                                     BTSSO_ROLE_PRIMARY, 0, ACTOR),
               "not_found", 404);
    expect_err(btsso_store_cert_role(f->s, "acme", entra->sha256,
                                     (btsso_cert_role_e)7, 0, ACTOR),
               "bad_role", 400);
    expect_err(btsso_store_cert_add(f->s, "acme", okta, BTSSO_ROLE_NONE,
                                    "somewhere", 0, now, ACTOR),
               "bad_source", 400);
    expect_err(btsso_store_cert_add(f->s, "nope", okta, BTSSO_ROLE_NONE,
                                    "upload", 0, now, ACTOR),
               "not_found", 404);

    /* the partial unique index holds even against a raw writer */
    assert_int_not_equal(raw_exec(f->p, f->params,
                                  "UPDATE certificates SET role = 'primary'",
                                  NULL), 0);

    ok(btsso_store_cert_remove(f->s, "acme", entra->sha256, 0, ACTOR),
       "remove");
    assert_string_equal(role_of(f, "acme", entra->sha256), "absent");
    expect_err(btsso_store_cert_remove(f->s, "acme", entra->sha256, 0, ACTOR),
               "not_found", 404);
    expect_err(btsso_store_cert_remove(f->s, "acme", "zz", 0, ACTOR),
               "bad_fingerprint", 400);
}

static void test_cert_expiring(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_now();
    btsso_cert_t *expired = fixture_cert(f->p, "expired");
    btsso_cert_t *okta = fixture_cert(f->p, "okta");
    apr_array_header_t *certs, *accounts;

    ok(btsso_store_account_add(f->s, "a", NULL, ACTOR), "a");
    ok(btsso_store_account_add(f->s, "b", NULL, ACTOR), "b");
    ok(btsso_store_cert_add(f->s, "a", okta, BTSSO_ROLE_PRIMARY, "upload", 0,
                            now, ACTOR), "okta");
    ok(btsso_store_cert_add(f->s, "b", expired, BTSSO_ROLE_PRIMARY, "upload",
                            0, now, ACTOR), "expired");
    ok(btsso_store_cert_expiring(f->s, f->p, now, 30, &certs, &accounts),
       "30 days");
    assert_int_equal(certs->nelts, 1);
    assert_int_equal(accounts->nelts, 1);
    assert_string_equal(APR_ARRAY_IDX(accounts, 0, const char *), "b");
    assert_string_equal(APR_ARRAY_IDX(certs, 0, btsso_stored_cert_t *)
                            ->cert->sha256, expired->sha256);
    /* okta ends in 2046: about 7300 days from its start */
    ok(btsso_store_cert_expiring(f->s, f->p, now, 7400, &certs, &accounts),
       "7400 days");
    assert_int_equal(certs->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(accounts, 1, const char *), "a");
}

/* ---- concurrency, rollback, audit ----------------------------------------------------- */

static void test_version_conflict(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_now();
    btsso_account_t *a;
    btsso_idp_t *idp;
    apr_array_header_t *missing = NULL;

    ready_account(f, "acme", "https://idp");
    a = account(f, "acme");
    assert_int_equal(a->version, 3);
    expect_err(btsso_store_email_set(f->s, "acme", "upn", 0, 2, ACTOR),
               "conflict", 409);
    expect_err(btsso_store_idp_set(f->s, "acme",
                                   md_make(f->p, "https://idp", NULL), "<x/>",
                                   NULL, 0, 99, now, ACTOR), "conflict", 409);
    expect_err(btsso_store_cert_add(f->s, "acme",
                                    fixture_cert(f->p, "google"),
                                    BTSSO_ROLE_NONE, "upload", 1, now, ACTOR),
               "conflict", 409);
    expect_err(btsso_store_cert_role(f->s, "acme",
                                     fixture_cert(f->p, "okta")->sha256,
                                     BTSSO_ROLE_NONE, 1, ACTOR),
               "conflict", 409);
    expect_err(btsso_store_cert_remove(f->s, "acme",
                                       fixture_cert(f->p, "okta")->sha256, 1,
                                       ACTOR), "conflict", 409);
    expect_err(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 1, now,
                                       ACTOR, NULL, &missing),
               "conflict", 409);
    assert_int_equal(account(f, "acme")->version, 3);
    ok(btsso_store_idp_get(f->s, f->p, "acme", &idp), "get");
    assert_string_equal(idp->email_attribute, "mail");

    ok(btsso_store_email_set(f->s, "acme", "upn", 0, 3, ACTOR), "matching");
    assert_int_equal(account(f, "acme")->version, 4);
    expect_err(btsso_store_email_set(f->s, "acme", "mail", 0, 3, ACTOR),
               "conflict", 409);
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 4, now, ACTOR, NULL,
                               NULL), "enable at 4");
    expect_err(btsso_store_email_set(f->s, "nope", "mail", 0, 3, ACTOR),
               "not_found", 404);
}

static void test_rollback(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_now();
    btsso_idp_metadata_t *md = md_make(f->p, "https://idp", "okta", "entra",
                                       NULL);
    apr_array_header_t *certs;
    btsso_idp_t *idp;
    btsso_error_t *e;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "add");
    /* the same certificate twice: the second INSERT fails on the primary
     * key after the IdP row and the first certificate were written */
    APR_ARRAY_PUSH(md->signing_certs, btsso_cert_t *) =
        APR_ARRAY_IDX(md->signing_certs, 0, btsso_cert_t *);
    e = btsso_store_idp_set(f->s, "acme", md, "<x/>", NULL, 0, 0, now, ACTOR);
    expect_err(e, "db_error", 500);
    assert_non_null(e->detail);
    ok(btsso_store_idp_get(f->s, f->p, "acme", &idp), "get");
    assert_null(idp);
    ok(btsso_store_cert_list(f->s, f->p, "acme", &certs), "certs");
    assert_int_equal(certs->nelts, 0);
    assert_int_equal(account(f, "acme")->version, 1);
    assert_int_equal(audit_count(f, "acme"), 1);
    /* the connection is usable afterwards */
    md->signing_certs->nelts = 2;
    ok(btsso_store_idp_set(f->s, "acme", md, "<x/>", NULL, 0, 0, now, ACTOR),
       "after rollback");
    ok(btsso_store_cert_list(f->s, f->p, "acme", &certs), "certs");
    assert_int_equal(certs->nelts, 2);
    assert_int_equal(account(f, "acme")->version, 2);
}

static void test_audit(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *rows;
    btsso_audit_t *a;
    const char *expect[] = { "sso.disable", "sso.enable", "user.add",
                             "cert.remove", "cert.role", "cert.add",
                             "idp.email", "idp.set", "account.add" };
    btsso_cert_t *google = fixture_cert(f->p, "google");
    apr_time_t now = apr_time_now();
    size_t i;

    ready_account(f, "acme", "https://idp");
    ok(btsso_store_cert_add(f->s, "acme", google, BTSSO_ROLE_NONE, "upload",
                            0, now, "alice"), "cert add");
    ok(btsso_store_cert_role(f->s, "acme", google->sha256,
                             BTSSO_ROLE_SECONDARY, 0, ACTOR), "role");
    ok(btsso_store_cert_remove(f->s, "acme", google->sha256, 0, ACTOR),
       "remove");
    ok(btsso_store_user_add(f->s, "acme", "100", "a@example.com", "user", 0,
                            ACTOR), "user");
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 1, 0, 0, now, ACTOR, NULL,
                               NULL), "enable");
    ok(btsso_store_set_enabled(f->s, f->p, "acme", 0, 0, 0, now, ACTOR, NULL,
                               NULL), "disable");
    ok(btsso_store_account_add(f->s, "other", NULL, "bob"), "other");

    ok(btsso_store_audit_list(f->s, f->p, "acme", 0, &rows), "audit");
    assert_int_equal(rows->nelts, (int)(sizeof(expect) / sizeof(expect[0])));
    for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        a = APR_ARRAY_IDX(rows, i, btsso_audit_t *);
        assert_string_equal(a->action, expect[i]);
        assert_string_equal(a->account, "acme");
        assert_true(a->at > 0);
    }
    a = APR_ARRAY_IDX(rows, 5, btsso_audit_t *);
    assert_string_equal(a->actor, "alice");
    assert_non_null(strstr(a->detail, google->sha256));
    a = APR_ARRAY_IDX(rows, 8, btsso_audit_t *);
    assert_string_equal(a->actor, ACTOR);

    ok(btsso_store_audit_list(f->s, f->p, "acme", 2, &rows), "limit");
    assert_int_equal(rows->nelts, 2);
    ok(btsso_store_audit_list(f->s, f->p, NULL, 0, &rows), "all");
    assert_int_equal(rows->nelts, 10);
    a = APR_ARRAY_IDX(rows, 0, btsso_audit_t *);
    assert_string_equal(a->account, "other");
    assert_string_equal(a->actor, "bob");
}

/* ---- refresh schedule (v7) ---------------------------------------------------- */

static void test_refresh_rows(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_from_sec(apr_time_sec(apr_time_now()));
    btsso_idp_metadata_t *md;
    btsso_refresh_state_t st, *got = NULL;
    apr_array_header_t *due, *added;
    apr_int64_t v;
    int claimed = -1;
    const char *url = "https://idp.example.com/md";

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "acme");
    ok(btsso_store_account_add(f->s, "filed", NULL, ACTOR), "filed");
    md = md_make(f->p, "https://idp.example.com/1", "okta", NULL);
    ok(btsso_store_idp_set(f->s, "acme", md,
                           xml_for(f->p, "https://idp.example.com/1"), url,
                           0, 0, now, ACTOR), "idp from a URL");
    ok(btsso_store_idp_set(f->s, "filed", md,
                           xml_for(f->p, "https://idp.example.com/1"), NULL,
                           1, 0, now, ACTOR), "idp from a file");
    /* an account from a URL without a row is due at once; a file is not */
    ok(btsso_store_refresh_due(f->s, f->p, now, 10, &due), "due");
    assert_int_equal(due->nelts, 1);
    got = APR_ARRAY_IDX(due, 0, btsso_refresh_state_t *);
    assert_string_equal(got->account, "acme");
    assert_int_equal(got->next_due, 0);
    /* one claim wins, a second with the same view loses */
    ok(btsso_store_refresh_claim(f->s, "acme", 0, now + apr_time_from_sec(60),
                                 now, &claimed), "claim");
    assert_int_equal(claimed, 1);
    ok(btsso_store_refresh_claim(f->s, "acme", 0, now + apr_time_from_sec(60),
                                 now, &claimed), "claim again");
    assert_int_equal(claimed, 0);
    ok(btsso_store_refresh_due(f->s, f->p, now, 10, &due), "due after");
    assert_int_equal(due->nelts, 0);
    /* the outcome, read back; NULL error stays NULL */
    memset(&st, 0, sizeof(st));
    st.account = "acme";
    st.next_due = now + apr_time_from_sec(3600);
    st.failures = 2;
    st.last_attempt = now;
    st.last_error = "fetch_failed: boom";
    st.valid_until = now + apr_time_from_sec(86400);
    st.signature = "none";
    ok(btsso_store_refresh_put(f->s, &st), "put");
    ok(btsso_store_refresh_get(f->s, f->p, "acme", &got), "get");
    assert_non_null(got);
    assert_int_equal(got->next_due, st.next_due);
    assert_int_equal(got->failures, 2);
    assert_string_equal(got->last_error, "fetch_failed: boom");
    assert_int_equal(got->valid_until, st.valid_until);
    assert_string_equal(got->signature, "none");
    ok(btsso_store_refresh_get(f->s, f->p, "filed", &got), "get none");
    assert_null(got);
    /* a refresh's change: new certificate, promoted, audited, scheduled;
     * the account's version guards it */
    v = account(f, "acme")->version;
    md = md_make(f->p, "https://idp.example.com/1", "okta", "entra", NULL);
    md->xml = "<md:EntityDescriptor entityID=\"https://idp.example.com/1\""
              " ID=\"_2\"/>";
    md->xml_len = strlen(md->xml);
    added = apr_array_make(f->p, 1, sizeof(btsso_cert_t *));
    APR_ARRAY_PUSH(added, btsso_cert_t *) =
        APR_ARRAY_IDX(md->signing_certs, 1, btsso_cert_t *);
    st.failures = 0;
    st.last_error = NULL;
    st.signature = "verified";
    assert_non_null(btsso_store_idp_refreshed(
        f->s, "acme", md, added, NULL, &st, v + 1, now, "refresh", "x"));
    ok(btsso_store_idp_refreshed(f->s, "acme", md, added,
                                 APR_ARRAY_IDX(added, 0, btsso_cert_t *)
                                     ->sha256, &st, v, now, "refresh",
                                 "source=test"), "refreshed");
    assert_int_equal(account(f, "acme")->version, v + 1);
    assert_string_equal(role_of(f, "acme", APR_ARRAY_IDX(
        added, 0, btsso_cert_t *)->sha256), "secondary");
    ok(btsso_store_refresh_get(f->s, f->p, "acme", &got), "get after");
    assert_null(got->last_error);
    assert_string_equal(got->signature, "verified");
    assert_int_equal(raw_count(f->p, f->params,
                               "SELECT count(*) FROM audit WHERE actor = "
                               "'refresh'"), 3);
    assert_int_equal(raw_count(f->p, f->params,
                               "SELECT count(*) FROM certificates WHERE "
                               "source = 'refresh'"), 1);
}

/* ---- policy ------------------------------------------------------------ */

static btsso_policy_t *policy_of(fx_t *f, const char *account)
{
    btsso_policy_t *pol = NULL;

    ok(btsso_store_policy_get(f->s, f->p, account, &pol), "policy_get");
    assert_non_null(pol);
    return pol;
}

#define MFA "http://schemas.microsoft.com/claims/multipleauthn"
#define PPT "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
#define EIGHT_H apr_time_from_sec(8 * 3600)

static void test_policy(void **state)
{
    fx_t *f = *state;
    apr_time_t now = apr_time_now();
    btsso_policy_t *pol;
    btsso_account_t *a;
    apr_int64_t v;
    int i;

    ok(btsso_store_account_add(f->s, "acme", NULL, ACTOR), "acme");
    pol = policy_of(f, "acme");             /* none set: the defaults */
    assert_true(btsso_policy_is_default(pol));
    assert_true(btsso_policy_class_ok(pol, NULL));
    assert_true(btsso_policy_class_ok(pol, PPT));

    pol = btsso_policy_make(f->p);
    APR_ARRAY_PUSH(pol->authn_context, const char *) = MFA;
    APR_ARRAY_PUSH(pol->authn_context, const char *) = PPT;
    APR_ARRAY_PUSH(pol->authn_context, const char *) = MFA;  /* dropped */
    pol->force_authn = 1;
    pol->request_authn_context = 1;
    pol->session_max_age = apr_time_from_sec(3600);
    ok(btsso_store_account_get(f->s, f->p, "acme", &a), "get");
    v = a->version;
    ok(btsso_store_policy_set(f->s, "acme", pol, EIGHT_H, v, now, "bob"),
       "set");
    pol = policy_of(f, "acme");
    assert_int_equal(pol->authn_context->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(pol->authn_context, 0, const char *),
                        MFA);
    assert_string_equal(APR_ARRAY_IDX(pol->authn_context, 1, const char *),
                        PPT);
    assert_true(pol->force_authn);
    assert_true(pol->request_authn_context);
    assert_true(pol->session_max_age == apr_time_from_sec(3600));
    assert_true(btsso_policy_class_ok(pol, MFA));
    assert_false(btsso_policy_class_ok(pol, NULL));
    assert_false(btsso_policy_class_ok(pol,
        "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"));
    assert_false(btsso_policy_class_ok(pol, "HTTP://schemas.microsoft.com/"
                                            "claims/multipleauthn"));
    assert_int_equal(raw_count(f->p, f->params,
                               "SELECT count(*) FROM audit WHERE account = "
                               "'acme' AND action = 'policy.set' AND actor ="
                               " 'bob'"), 1);
    /* the version moved: a change from the old one is a conflict */
    expect_err(btsso_store_policy_set(f->s, "acme", btsso_policy_make(f->p),
                                      EIGHT_H, v, now, "bob"),
               "conflict", 409);
    assert_int_equal(policy_of(f, "acme")->authn_context->nelts, 2);

    /* refusals change nothing */
    pol = btsso_policy_make(f->p);
    pol->session_max_age = EIGHT_H + apr_time_from_sec(1);
    expect_err(btsso_store_policy_set(f->s, "acme", pol, EIGHT_H, 0, now,
                                      "bob"), "bad_policy", 400);
    pol->session_max_age = -1;
    expect_err(btsso_policy_check(f->p, pol, EIGHT_H), "bad_policy", 400);
    pol->session_max_age = 0;
    pol->request_authn_context = 1;             /* nothing to request */
    expect_err(btsso_policy_check(f->p, pol, EIGHT_H), "bad_policy", 400);
    pol->request_authn_context = 0;
    {
        static const char *const bad[] = {
            "", "multipleauthn", "urn:", ":x", "1urn:x", "urn:a b",
            "urn:a\nb", "urn:a\tb", "urn:\xc3\xa9", "urn:x\x7f", NULL
        };
        for (i = 0; bad[i] != NULL; i++) {
            apr_array_clear(pol->authn_context);
            APR_ARRAY_PUSH(pol->authn_context, const char *) = bad[i];
            expect_err(btsso_store_policy_set(f->s, "acme", pol, EIGHT_H, 0,
                                              now, "bob"), "bad_policy", 400);
        }
    }
    apr_array_clear(pol->authn_context);
    APR_ARRAY_PUSH(pol->authn_context, const char *) =
        apr_psprintf(f->p, "urn:%01021d", 0);           /* 1024 + 1 */
    expect_err(btsso_policy_check(f->p, pol, EIGHT_H), "bad_policy", 400);
    apr_array_clear(pol->authn_context);
    for (i = 0; i <= BTSSO_POLICY_CLASSES_MAX; i++) {
        APR_ARRAY_PUSH(pol->authn_context, const char *) =
            apr_psprintf(f->p, "urn:x:%d", i);
    }
    expect_err(btsso_policy_check(f->p, pol, EIGHT_H), "bad_policy", 400);
    pol = policy_of(f, "acme");
    assert_int_equal(pol->authn_context->nelts, 2);
    assert_true(pol->session_max_age == apr_time_from_sec(3600));

    /* an all-default policy leaves no row: the server-wide behaviour */
    ok(btsso_store_policy_set(f->s, "acme", btsso_policy_make(f->p), EIGHT_H,
                              0, now, "bob"), "clear");
    assert_true(btsso_policy_is_default(policy_of(f, "acme")));
    assert_int_equal(raw_count(f->p, f->params,
                               "SELECT count(*) FROM account_policy"), 0);
    expect_err(btsso_store_policy_set(f->s, "nosuch", btsso_policy_make(f->p),
                                      EIGHT_H, 0, now, "bob"),
               "not_found", 404);
}

static void test_upgrade_v3_to_policy(void **state)
{
    fx_t *f = *state;
    btsso_policy_t *pol;
    int from = -1, to = -1;

    ok(btsso_store_account_add(f->s, "alpha", NULL, ACTOR), "alpha");
    downgrade_policy(f);
    btsso_store_close(f->s);
    ok(btsso_store_open(f->p, backend_driver, f->params, NULL, &f->s),
       "reopen");
    ok(btsso_store_init(f->s, &from, &to), "upgrade");
    assert_int_equal(to, BTSSO_SCHEMA_VERSION);
    assert_true(btsso_policy_is_default(policy_of(f, "alpha")));
    pol = btsso_policy_make(f->p);
    pol->force_authn = 1;
    ok(btsso_store_policy_set(f->s, "alpha", pol, EIGHT_H, 0, apr_time_now(),
                              ACTOR), "set after upgrade");
    assert_true(policy_of(f, "alpha")->force_authn);
}

/* ---- signins: sign-in records ---------------------------------------------------------- */

static btsso_signin_t *refusal(apr_pool_t *p, const char *ref, apr_int64_t at,
                               const char *result)
{
    btsso_signin_t *si = apr_pcalloc(p, sizeof(*si));

    si->reference = ref;
    si->at = apr_time_from_sec(at);
    si->result = result;
    si->email = "ann@corp.example";
    si->name_id = "ann";
    si->idp = "https://idp.corp.example";
    si->detail = "Assertion ID=\"_a1\": the signature does not verify";
    return si;
}

static void test_signins_list_and_filters(void **state)
{
    fx_t *f = *state;
    btsso_signin_filter_t flt;
    apr_array_header_t *list;
    btsso_signin_t *si, okrow;
    btsso_signin_counts_t c;
    char ref[16];
    int more = 0, i;

    ok(btsso_store_account_add(f->s, "alpha", NULL, ACTOR), "alpha");
    ok(btsso_store_account_add(f->s, "beta", NULL, ACTOR), "beta");
    for (i = 0; i < 7; i++) {
        apr_snprintf(ref, sizeof(ref), "AAAA-AAA%c", "2345678"[i]);
        ok(btsso_store_signin_add(f->s, "alpha",
                                  refusal(f->p, apr_pstrdup(f->p, ref),
                                          1000 + i / 2, "sig_invalid"),
                                  BTSSO_SIGNIN_KEEP), "add");
    }
    ok(btsso_store_signin_add(f->s, "beta", refusal(f->p, "BBBB-BBBB", 5000,
                                                    "no_such_user"),
                              BTSSO_SIGNIN_KEEP), "beta's");
    /* a success is counted, never added as a refusal */
    expect_err(btsso_store_signin_add(f->s, "alpha",
                                      refusal(f->p, "CCCC-CCCC", 1, "ok"),
                                      0), "bad_signin", 400);
    expect_err(btsso_store_signin_add(f->s, "alpha",
                                      refusal(f->p, "bad ref!", 1, "x"),
                                      0), "bad_signin", 400);
    memset(&okrow, 0, sizeof(okrow));
    okrow.reference = "OKOK-2222";
    okrow.at = apr_time_from_sec(2000);
    okrow.result = "ok";
    okrow.email = "bob@corp.example";
    memset(&c, 0, sizeof(c));
    c.day = apr_time_from_sec(2000);
    c.ok = 1;
    c.last_ok = &okrow;
    ok(btsso_store_signin_counts_add(f->s, "alpha", &c), "counts");

    /* newest first, ties broken by reference; the success among them */
    memset(&flt, 0, sizeof(flt));
    ok(btsso_store_signin_list(f->s, f->p, "alpha", &flt, &list, &more),
       "list");
    assert_int_equal(list->nelts, 8);
    assert_int_equal(more, 0);
    si = APR_ARRAY_IDX(list, 0, btsso_signin_t *);
    assert_string_equal(si->result, "ok");
    assert_string_equal(si->email, "bob@corp.example");
    assert_null(si->detail);
    si = APR_ARRAY_IDX(list, 1, btsso_signin_t *);
    assert_string_equal(si->reference, "AAAA-AAA8");
    assert_string_equal(si->detail,
                        "Assertion ID=\"_a1\": the signature does not verify");
    assert_int_equal(apr_time_sec(si->at), 1003);
    si = APR_ARRAY_IDX(list, 2, btsso_signin_t *);
    assert_string_equal(si->reference, "AAAA-AAA7");

    flt.failed_only = 1;
    ok(btsso_store_signin_list(f->s, f->p, "alpha", &flt, &list, &more),
       "failed");
    assert_int_equal(list->nelts, 7);

    /* pages of 3 through the cursor: every row once, in order */
    {
        const char *seen = "";
        int pages = 0;

        flt.limit = 3;
        flt.before_ref = NULL;
        do {
            ok(btsso_store_signin_list(f->s, f->p, "alpha", &flt, &list,
                                       &more), "page");
            for (i = 0; i < list->nelts; i++) {
                si = APR_ARRAY_IDX(list, i, btsso_signin_t *);
                seen = apr_pstrcat(f->p, seen, si->reference + 8, NULL);
            }
            if (list->nelts > 0) {
                si = APR_ARRAY_IDX(list, list->nelts - 1, btsso_signin_t *);
                flt.before_at = si->at;
                flt.before_ref = si->reference;
            }
            pages++;
        } while (more && pages < 10);
        assert_string_equal(seen, "8765432");
        assert_int_equal(pages, 3);
    }

    memset(&flt, 0, sizeof(flt));
    flt.reference = "AAAA-AAA5";
    ok(btsso_store_signin_list(f->s, f->p, "alpha", &flt, &list, &more),
       "by reference");
    assert_int_equal(list->nelts, 1);
    /* another account's code is not found through this one */
    flt.reference = "BBBB-BBBB";
    ok(btsso_store_signin_list(f->s, f->p, "alpha", &flt, &list, &more),
       "other account's code");
    assert_int_equal(list->nelts, 0);
}

static void test_signins_bounded(void **state)
{
    fx_t *f = *state;
    btsso_signin_filter_t flt;
    apr_array_header_t *list;
    int more = 0, i;

    ok(btsso_store_account_add(f->s, "alpha", NULL, ACTOR), "alpha");
    for (i = 0; i < 12; i++) {
        /* several in one second: the bound is exact all the same */
        ok(btsso_store_signin_add(f->s, "alpha",
                                  refusal(f->p, apr_psprintf(f->p,
                                          "DDDD-DD%02d", 22 + i),
                                          100 + i / 4, "expired"), 5),
           "add");
    }
    assert_int_equal(raw_count(f->p, f->params,
                               "SELECT count(*) FROM sign_ins"), 5);
    memset(&flt, 0, sizeof(flt));
    ok(btsso_store_signin_list(f->s, f->p, "alpha", &flt, &list, &more),
       "list");
    assert_int_equal(list->nelts, 5);
    assert_string_equal(APR_ARRAY_IDX(list, 0, btsso_signin_t *)->reference,
                        "DDDD-DD33");
    assert_string_equal(APR_ARRAY_IDX(list, 4, btsso_signin_t *)->reference,
                        "DDDD-DD29");
    /* what an IdP sent cannot steer a terminal or a page */
    {
        btsso_signin_t *si = refusal(f->p, "EEEE-EEEE", 200, "no_such_user");
        si->email = "ann@corp.example\r\nX-Evil: 1";
        si->detail = apr_pstrcat(f->p, "x\x1b[31m", NULL);
        ok(btsso_store_signin_add(f->s, "alpha", si, 5), "control chars");
        flt.reference = "EEEE-EEEE";
        ok(btsso_store_signin_list(f->s, f->p, "alpha", &flt, &list, &more),
           "get");
        assert_string_equal(APR_ARRAY_IDX(list, 0, btsso_signin_t *)->email,
                            "ann@corp.example  X-Evil: 1");
        assert_string_equal(APR_ARRAY_IDX(list, 0, btsso_signin_t *)->detail,
                            "x [31m");
    }
}

static void test_signins_counts(void **state)
{
    fx_t *f = *state;
    btsso_signin_summary_t *sum;
    btsso_signin_counts_t c;
    btsso_signin_t last, older;
    btsso_signin_cert_seen_t *cs;
    apr_array_header_t *certs, *stored;
    apr_time_t day1 = apr_time_from_sec(1764633600);   /* 2025-12-02 */
    apr_time_t day2 = day1 + apr_time_from_sec(86400);
    const char *okta_sha;
    apr_time_t *t;

    ready_account(f, "alpha", "https://idp.corp.example");
    ok(btsso_store_cert_list(f->s, f->p, "alpha", &stored), "certs");
    okta_sha = APR_ARRAY_IDX(stored, 0, btsso_stored_cert_t *)->cert->sha256;

    memset(&last, 0, sizeof(last));
    last.reference = "LAST-2222";
    last.at = day1 + apr_time_from_sec(60);
    last.result = "ok";
    last.email = "ann@corp.example";
    last.idp = "https://idp.corp.example";
    certs = apr_array_make(f->p, 2, sizeof(btsso_signin_cert_seen_t));
    cs = apr_array_push(certs);
    cs->sha256 = okta_sha;
    cs->at = day1 + apr_time_from_sec(60);
    memset(&c, 0, sizeof(c));
    c.day = day1;
    c.ok = 3;
    c.failed = 2;
    c.unrecorded = 1;
    c.last_ok = &last;
    c.certs = certs;
    ok(btsso_store_signin_counts_add(f->s, "alpha", &c), "day 1");
    c.ok = 4;
    c.failed = 0;
    c.unrecorded = 0;
    /* a node whose last success is older than the stored one: no change */
    older = last;
    older.reference = "OLDR-2222";
    older.at = day1;
    older.email = "old@corp.example";
    c.last_ok = &older;
    cs->at = day1;                  /* the certificate's time never goes back */
    ok(btsso_store_signin_counts_add(f->s, "alpha", &c), "day 1 again");
    memset(&c, 0, sizeof(c));
    c.day = day2;
    c.failed = 5;
    ok(btsso_store_signin_counts_add(f->s, "alpha", &c), "day 2");

    ok(btsso_store_signin_summary(f->s, f->p, "alpha", 7, &sum), "summary");
    assert_int_equal(sum->days->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(sum->days, 0, btsso_signin_day_t).day,
                        "2025-12-03");
    assert_int_equal(APR_ARRAY_IDX(sum->days, 0, btsso_signin_day_t).failed,
                     5);
    assert_string_equal(APR_ARRAY_IDX(sum->days, 1, btsso_signin_day_t).day,
                        "2025-12-02");
    assert_int_equal(APR_ARRAY_IDX(sum->days, 1, btsso_signin_day_t).ok, 7);
    assert_int_equal(APR_ARRAY_IDX(sum->days, 1, btsso_signin_day_t).failed,
                     2);
    assert_int_equal(
        APR_ARRAY_IDX(sum->days, 1, btsso_signin_day_t).unrecorded, 1);
    assert_non_null(sum->last_ok);
    assert_string_equal(sum->last_ok->reference, "LAST-2222");
    assert_string_equal(sum->last_ok->email, "ann@corp.example");
    assert_null(sum->last_failed);
    t = apr_hash_get(sum->cert_verified, okta_sha, APR_HASH_KEY_STRING);
    assert_non_null(t);
    assert_true(*t == day1 + apr_time_from_sec(60));
    /* the other certificate never verified a login */
    t = apr_hash_get(sum->cert_verified,
                     APR_ARRAY_IDX(stored, 1, btsso_stored_cert_t *)
                         ->cert->sha256, APR_HASH_KEY_STRING);
    assert_non_null(t);
    assert_true(*t == 0);
    /* one last-success row per account, whatever the nodes sent */
    assert_int_equal(raw_count(f->p, f->params, "SELECT count(*) FROM "
                               "sign_ins WHERE result = 'ok'"), 1);
    /* a newer success replaces it */
    last.reference = "NEWR-2222";
    last.at = day2;
    memset(&c, 0, sizeof(c));
    c.day = day2;
    c.ok = 1;
    c.last_ok = &last;
    ok(btsso_store_signin_counts_add(f->s, "alpha", &c), "newer");
    ok(btsso_store_signin_summary(f->s, f->p, "alpha", 1, &sum), "summary");
    assert_int_equal(sum->days->nelts, 1);
    assert_string_equal(sum->last_ok->reference, "NEWR-2222");
    assert_int_equal(raw_count(f->p, f->params, "SELECT count(*) FROM "
                               "sign_ins WHERE result = 'ok'"), 1);
    /* deleting the account takes its records along */
    assert_int_equal(raw_exec(f->p, f->params, "DELETE FROM sign_in_days",
                              NULL), 0);
}

static void test_upgrade_v3_to_v4(void **state)
{
    fx_t *f = *state;
    apr_array_header_t *certs;
    btsso_signin_summary_t *sum;
    int from = -1, to = -1;

    ready_account(f, "alpha", "https://idp.corp.example");
    downgrade_to_v3(f);
    btsso_store_close(f->s);
    ok(btsso_store_open(f->p, backend_driver, f->params, NULL, &f->s),
       "reopen");
    ok(btsso_store_init(f->s, &from, &to), "upgrade");
    assert_int_equal(from, 3);
    assert_int_equal(to, BTSSO_SCHEMA_VERSION);
    /* certificates stored before have never verified a login */
    ok(btsso_store_cert_list(f->s, f->p, "alpha", &certs), "certs");
    assert_int_equal(certs->nelts, 2);
    ok(btsso_store_signin_summary(f->s, f->p, "alpha", 7, &sum), "summary");
    assert_int_equal(apr_hash_count(sum->cert_verified), 2);
    assert_null(sum->last_ok);
    ok(btsso_store_signin_add(f->s, "alpha", refusal(f->p, "FFFF-FFFF", 1,
                                                     "expired"), 10), "add");
}

/* ---- main ------------------------------------------------------------------------------ */

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static const struct CMUnitTest store_tests[] = {
    T(test_init_idempotent),
    T(test_schema_too_new),
    cmocka_unit_test(test_statements),
    cmocka_unit_test(test_dialect_sql),
    T(test_open_errors),
    T(test_override_and_wrap),
    T(test_wrap_prepares_on_sqlite),
    T(test_sqlite_schema_change),
    T(test_accounts),
    T(test_non_ascii_never_folds_onto_ascii),
    T(test_accents_stay_distinct),
    T(test_long_text_read_back_bounded),
    T(test_users),
    T(test_duplicates),
    T(test_enable_refused_duplicates),
    T(test_enable_and_user_refusal),
    T(test_trigger_raw_writes),
    T(test_user_lookup_uses_email_index),
    T(test_incomplete),
    T(test_missing_pure),
    T(test_expired_only),
    T(test_idp_set_get),
    T(test_entity_in_use),
    T(test_email_set),
    T(test_cert_roles),
    T(test_cert_expiring),
    T(test_version_conflict),
    T(test_rollback),
    T(test_audit),
    T(test_email_held_by_several),
    T(test_email_holders_bounded),
    T(test_domains),
    T(test_upgrade_v1_to_v2),
    T(test_upgrade_v2_to_v3),
    T(test_upgrade_v3_to_v5_and_test_rule),
    T(test_sessions_revoke),
    T(test_sessions_end_on_disable_and_new_idp),
    T(test_refresh_rows),
    T(test_policy),
    T(test_upgrade_v3_to_policy),
    T(test_signins_list_and_filters),
    T(test_signins_bounded),
    T(test_signins_counts),
    T(test_upgrade_v3_to_v4),
};

int main(void)
{
    int failed;
    const char *pg = getenv("BTSSO_TEST_PGSQL");
    const char *my = getenv("BTSSO_TEST_MYSQL");

    apr_initialize();
    apr_pool_create(&root_pool, NULL);
    apr_dbd_init(root_pool);

    backend_driver = "sqlite3";
    failed = cmocka_run_group_tests_name("store on sqlite3", store_tests,
                                         NULL, NULL);
    if (pg != NULL && *pg != '\0') {
        backend_driver = "pgsql";
        backend_params = pg;
        failed += cmocka_run_group_tests_name("store on pgsql", store_tests,
                                              NULL, NULL);
    }
    else {
        printf("store on pgsql: skipped (set BTSSO_TEST_PGSQL to APR DBD "
               "pgsql params, e.g. from t/lib/pgtmp.sh start DIR)\n");
    }
    if (my != NULL && *my != '\0') {
        backend_driver = "mysql";
        backend_params = my;
        failed += cmocka_run_group_tests_name("store on mysql", store_tests,
                                              NULL, NULL);
    }
    else {
        printf("store on mysql: skipped (set BTSSO_TEST_MYSQL to APR DBD "
               "mysql params, e.g. from t/lib/mariadbtmp.sh start DIR)\n");
    }
    apr_pool_destroy(root_pool);
    apr_terminate();
    return failed;
}
