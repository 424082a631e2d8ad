/*
 * store.c - the account store over APR DBD (SQLite and PostgreSQL).
 *
 * Every change runs in one transaction that first bumps the account's
 * version (taking the row's write lock, and checking expected_version in
 * the same UPDATE, so two admins cannot both win), then does its work and
 * writes an audit row.  Any error rolls the whole transaction back.  Result
 * sets are always read to their end, which both drivers need to free the
 * connection for the next statement.
 *
 * Nothing here logs: errors carry apr_dbd_error() text in their detail.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_lib.h>

#include "store/store.h"
#include "core/text.h"

/* The shipped schema, per dialect, as upgrade steps.
 *
 * Step N takes a database from version N-1 to N.  A new schema version is
 * one more element in schema_steps[] (and BTSSO_SCHEMA_VERSION in store.h);
 * existing steps never change, because deployed databases already ran them.
 * btsso_store_init runs each missing step in its own transaction and
 * records it in btsso_schema_version, whose primary key makes two
 * concurrent upgrades of the same step fail instead of both applying it. */
typedef struct schema_step_t {
    int version;
    const char *const *sqlite3;
    const char *const *pgsql;
} schema_step_t;

/* ---- version 1 ---------------------------------------------------------- */

/* Times are BIGINT unix seconds; flags are INTEGER 0/1 (not BOOLEAN, so the
 * two drivers return the same text).  The users trigger holds every writer,
 * the portal's own included, to unique contact emails while SSO is on. */
static const char *const v1_sqlite3[] = {
    "CREATE TABLE accounts ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY,"
    " name TEXT NOT NULL DEFAULT '',"
    " sso_enabled INTEGER NOT NULL DEFAULT 0 CHECK (sso_enabled IN (0, 1)),"
    " allow_password INTEGER NOT NULL DEFAULT 0"
    "  CHECK (allow_password IN (0, 1)),"
    " version BIGINT NOT NULL DEFAULT 1,"
    " created BIGINT NOT NULL,"
    " updated BIGINT NOT NULL)",

    "CREATE TABLE idp ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " entity_id TEXT NOT NULL,"
    " shared INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),"
    " metadata_xml TEXT NOT NULL,"
    " source_url TEXT,"
    " email_attribute TEXT,"
    " email_from_name_id INTEGER NOT NULL DEFAULT 0"
    "  CHECK (email_from_name_id IN (0, 1)),"
    " updated BIGINT NOT NULL)",
    "CREATE INDEX idp_entity_id ON idp (entity_id)",

    "CREATE TABLE certificates ("
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " sha256 CHAR(64) NOT NULL,"
    " role VARCHAR(16) NOT NULL DEFAULT 'none'"
    "  CHECK (role IN ('primary', 'secondary', 'none')),"
    " der TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " issuer TEXT NOT NULL,"
    " not_before BIGINT NOT NULL,"
    " not_after BIGINT NOT NULL,"
    " source VARCHAR(16) NOT NULL,"
    " added BIGINT NOT NULL,"
    " PRIMARY KEY (account, sha256))",
    "CREATE UNIQUE INDEX certificates_one_role ON certificates (account, role)"
    " WHERE role <> 'none'",
    "CREATE INDEX certificates_not_after ON certificates (not_after)",

    "CREATE TABLE users ("
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " extension VARCHAR(64) NOT NULL,"
    " kind VARCHAR(16) NOT NULL DEFAULT 'user'"
    "  CHECK (kind IN ('user', 'call_queue')),"
    " email TEXT NOT NULL,"
    " is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),"
    " PRIMARY KEY (account, extension))",
    "CREATE INDEX users_email ON users (account, lower(trim(email)))",
    "CREATE INDEX users_email_any ON users (lower(trim(email)))",

    "CREATE TRIGGER users_unique_email_insert BEFORE INSERT ON users"
    " WHEN EXISTS (SELECT 1 FROM accounts a"
    "              WHERE a.account = NEW.account AND a.sso_enabled = 1)"
    "  AND EXISTS (SELECT 1 FROM users u WHERE u.account = NEW.account"
    "              AND lower(trim(u.email)) = lower(trim(NEW.email)))"
    " BEGIN"
    "  SELECT RAISE(ABORT, 'duplicate_email: the email is already used in"
    " this SSO-enabled account');"
    " END",
    "CREATE TRIGGER users_unique_email_update"
    " BEFORE UPDATE OF account, email ON users"
    " WHEN EXISTS (SELECT 1 FROM accounts a"
    "              WHERE a.account = NEW.account AND a.sso_enabled = 1)"
    "  AND EXISTS (SELECT 1 FROM users u WHERE u.account = NEW.account"
    "              AND lower(trim(u.email)) = lower(trim(NEW.email))"
    "              AND NOT (u.account = OLD.account"
    "                       AND u.extension = OLD.extension))"
    " BEGIN"
    "  SELECT RAISE(ABORT, 'duplicate_email: the email is already used in"
    " this SSO-enabled account');"
    " END",

    "CREATE TABLE audit ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at BIGINT NOT NULL,"
    " account VARCHAR(64),"
    " actor TEXT NOT NULL,"
    " action VARCHAR(64) NOT NULL,"
    " detail TEXT)",
    "CREATE INDEX audit_account ON audit (account, id)",
    NULL
};

static const char *const v1_pgsql[] = {
    "CREATE TABLE accounts ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY,"
    " name TEXT NOT NULL DEFAULT '',"
    " sso_enabled INTEGER NOT NULL DEFAULT 0 CHECK (sso_enabled IN (0, 1)),"
    " allow_password INTEGER NOT NULL DEFAULT 0"
    "  CHECK (allow_password IN (0, 1)),"
    " version BIGINT NOT NULL DEFAULT 1,"
    " created BIGINT NOT NULL,"
    " updated BIGINT NOT NULL)",

    "CREATE TABLE idp ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " entity_id TEXT NOT NULL,"
    " shared INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),"
    " metadata_xml TEXT NOT NULL,"
    " source_url TEXT,"
    " email_attribute TEXT,"
    " email_from_name_id INTEGER NOT NULL DEFAULT 0"
    "  CHECK (email_from_name_id IN (0, 1)),"
    " updated BIGINT NOT NULL)",
    "CREATE INDEX idp_entity_id ON idp (entity_id)",

    "CREATE TABLE certificates ("
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " sha256 CHAR(64) NOT NULL,"
    " role VARCHAR(16) NOT NULL DEFAULT 'none'"
    "  CHECK (role IN ('primary', 'secondary', 'none')),"
    " der TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " issuer TEXT NOT NULL,"
    " not_before BIGINT NOT NULL,"
    " not_after BIGINT NOT NULL,"
    " source VARCHAR(16) NOT NULL,"
    " added BIGINT NOT NULL,"
    " PRIMARY KEY (account, sha256))",
    "CREATE UNIQUE INDEX certificates_one_role ON certificates (account, role)"
    " WHERE role <> 'none'",
    "CREATE INDEX certificates_not_after ON certificates (not_after)",

    "CREATE TABLE users ("
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " extension VARCHAR(64) NOT NULL,"
    " kind VARCHAR(16) NOT NULL DEFAULT 'user'"
    "  CHECK (kind IN ('user', 'call_queue')),"
    " email TEXT NOT NULL,"
    " is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),"
    " PRIMARY KEY (account, extension))",
    "CREATE INDEX users_email ON users (account, lower(trim(email)))",
    "CREATE INDEX users_email_any ON users (lower(trim(email)))",

    "CREATE FUNCTION btsso_users_unique_email() RETURNS trigger"
    " LANGUAGE plpgsql AS $$"
    " BEGIN"
    "  IF NOT EXISTS (SELECT 1 FROM accounts a"
    "                 WHERE a.account = NEW.account AND a.sso_enabled = 1)"
    "  THEN"
    "   RETURN NEW;"
    "  END IF;"
    "  IF TG_OP = 'INSERT' THEN"
    "   IF EXISTS (SELECT 1 FROM users u WHERE u.account = NEW.account"
    "              AND lower(trim(u.email)) = lower(trim(NEW.email))) THEN"
    "    RAISE EXCEPTION 'duplicate_email: the email is already used in"
    " this SSO-enabled account' USING ERRCODE = 'unique_violation';"
    "   END IF;"
    "  ELSIF EXISTS (SELECT 1 FROM users u WHERE u.account = NEW.account"
    "                AND lower(trim(u.email)) = lower(trim(NEW.email))"
    "                AND NOT (u.account = OLD.account"
    "                         AND u.extension = OLD.extension)) THEN"
    "   RAISE EXCEPTION 'duplicate_email: the email is already used in"
    " this SSO-enabled account' USING ERRCODE = 'unique_violation';"
    "  END IF;"
    "  RETURN NEW;"
    " END $$",
    "CREATE TRIGGER users_unique_email"
    " BEFORE INSERT OR UPDATE OF account, email ON users"
    " FOR EACH ROW EXECUTE FUNCTION btsso_users_unique_email()",

    "CREATE TABLE audit ("
    " id BIGSERIAL PRIMARY KEY,"
    " at BIGINT NOT NULL,"
    " account VARCHAR(64),"
    " actor TEXT NOT NULL,"
    " action VARCHAR(64) NOT NULL,"
    " detail TEXT)",
    "CREATE INDEX audit_account ON audit (account, id)",
    NULL
};

/* ---- version 2 ---------------------------------------------------------- */

/* Domains claimed by an account (by support, btssoctl account domain): the
 * claimant comes first, among the accounts holding an email at the domain,
 * for discovery and BTSSOPasswordGuard.  One account per domain: the
 * primary key refuses a second claim even from a racing writer.  Domains
 * are stored lowercased, without a trailing dot. */
static const char *const v2_sqlite3[] = {
    "CREATE TABLE domains ("
    " domain VARCHAR(253) NOT NULL PRIMARY KEY,"
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " added BIGINT NOT NULL)",
    "CREATE INDEX domains_account ON domains (account, domain)",
    NULL
};

static const char *const v2_pgsql[] = {
    "CREATE TABLE domains ("
    " domain VARCHAR(253) NOT NULL PRIMARY KEY,"
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " added BIGINT NOT NULL)",
    "CREATE INDEX domains_account ON domains (account, domain)",
    NULL
};

/* ---- version 3 ---------------------------------------------------------- */

/* Sessions follow the account (SPEC "Enforcement").  sessions_epoch grows
 * whenever every session of the account must end (SSO disabled, the IdP's
 * entityID changed, btssoctl session revoke / POST sessions/revoke of the
 * whole account); a session remembers the epoch it was made in.
 * revoke_seq numbers the revocations of single users: a user's row holds
 * the number of their last revocation, and a session remembers the number
 * current when it was made, so it ends when its user's row is newer.  Both
 * only grow: re-enabling SSO revives nothing. */
static const char *const v3_sqlite3[] = {
    "ALTER TABLE accounts ADD COLUMN sessions_epoch BIGINT NOT NULL"
    " DEFAULT 1",
    "ALTER TABLE accounts ADD COLUMN revoke_seq BIGINT NOT NULL DEFAULT 0",
    "CREATE TABLE session_revocations ("
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " email VARCHAR(254) NOT NULL,"
    " seq BIGINT NOT NULL,"
    " revoked BIGINT NOT NULL,"
    " PRIMARY KEY (account, email))",
    "CREATE INDEX session_revocations_seq ON session_revocations"
    " (account, seq)",
    NULL
};

static const char *const v3_pgsql[] = {
    "ALTER TABLE accounts ADD COLUMN sessions_epoch BIGINT NOT NULL"
    " DEFAULT 1",
    "ALTER TABLE accounts ADD COLUMN revoke_seq BIGINT NOT NULL DEFAULT 0",
    "CREATE TABLE session_revocations ("
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " email VARCHAR(254) NOT NULL,"
    " seq BIGINT NOT NULL,"
    " revoked BIGINT NOT NULL,"
    " PRIMARY KEY (account, email))",
    "CREATE INDEX session_revocations_seq ON session_revocations"
    " (account, seq)",
    NULL
};

/* ---- version 4 ---------------------------------------------------------- */

/* Sign-in records (SPEC "Enforcement"): every refusal of a sign-in as one
 * row (bounded per account: the module prunes the oldest beyond its
 * bound, and rate-limits the rows it writes), the last success of each
 * account as the one row whose result is 'ok', counts per account and UTC
 * day ('YYYY-MM-DD'; unrecorded: refusals counted but given no row, by
 * the rate limit), and per certificate the time it last verified a
 * login.  reference is the code the refusal page showed ("XXXX-XXXX"). */
static const char *const v4_sqlite3[] = {
    "CREATE TABLE sign_ins ("
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " reference VARCHAR(16) NOT NULL,"
    " at BIGINT NOT NULL,"
    " result VARCHAR(64) NOT NULL,"
    " email VARCHAR(254),"
    " name_id TEXT,"
    " idp TEXT,"
    " detail TEXT,"
    " PRIMARY KEY (account, reference))",
    "CREATE INDEX sign_ins_at ON sign_ins (account, at, reference)",
    "CREATE UNIQUE INDEX sign_ins_last_ok ON sign_ins (account)"
    " WHERE result = 'ok'",
    "CREATE TABLE sign_in_days ("
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " day VARCHAR(10) NOT NULL,"
    " ok BIGINT NOT NULL DEFAULT 0,"
    " failed BIGINT NOT NULL DEFAULT 0,"
    " unrecorded BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (account, day))",
    "ALTER TABLE certificates ADD COLUMN last_verified BIGINT NOT NULL"
    " DEFAULT 0",
    NULL
};

static const char *const v4_pgsql[] = {
    "CREATE TABLE sign_ins ("
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " reference VARCHAR(16) NOT NULL,"
    " at BIGINT NOT NULL,"
    " result VARCHAR(64) NOT NULL,"
    " email VARCHAR(254),"
    " name_id TEXT,"
    " idp TEXT,"
    " detail TEXT,"
    " PRIMARY KEY (account, reference))",
    "CREATE INDEX sign_ins_at ON sign_ins (account, at, reference)",
    "CREATE UNIQUE INDEX sign_ins_last_ok ON sign_ins (account)"
    " WHERE result = 'ok'",
    "CREATE TABLE sign_in_days ("
    " account VARCHAR(64) NOT NULL"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " day VARCHAR(10) NOT NULL,"
    " ok BIGINT NOT NULL DEFAULT 0,"
    " failed BIGINT NOT NULL DEFAULT 0,"
    " unrecorded BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (account, day))",
    "ALTER TABLE certificates ADD COLUMN last_verified BIGINT NOT NULL"
    " DEFAULT 0",
    NULL
};

static const schema_step_t schema_steps[] = {
    { 1, v1_sqlite3, v1_pgsql },
    { 2, v2_sqlite3, v2_pgsql },
    { 3, v3_sqlite3, v3_pgsql },
    { 4, v4_sqlite3, v4_pgsql },
};

#define SCHEMA_STEP_COUNT \
    ((int)(sizeof(schema_steps) / sizeof(schema_steps[0])))

/* ---- connection --------------------------------------------------------- */

#define SQLITE_BUSY_TIMEOUT_MS 10000
#define AUDIT_DEFAULT_LIMIT 100
#define SECONDS_PER_DAY 86400

struct btsso_store_t {
    apr_pool_t *pool;
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_hash_t *prepared;       /* label -> apr_dbd_prepared_t * */
    apr_hash_t *overrides;      /* label -> operator SQL (open only) */
    const char *dialect;
    int prepare_on_demand;      /* btsso_store_open: yes; wrap: mod_dbd did */
    int closed;
};

typedef struct db_row_t {
    int ncols;
    const char **col;           /* NULL for SQL NULL (sqlite3 only) */
} db_row_t;

#define ARGS(...) (const char *[]){ __VA_ARGS__ }, \
    (int)(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *))

static const char *one_line(apr_pool_t *p, const char *text)
{
    char *s, *c;
    apr_size_t n;

    if (text == NULL) {
        return "(no driver message)";
    }
    s = apr_pstrdup(p, text);
    for (c = s; *c != '\0'; c++) {
        if (*c == '\n' || *c == '\r' || *c == '\t') {
            *c = ' ';
        }
    }
    n = strlen(s);
    while (n > 0 && s[n - 1] == ' ') {
        s[--n] = '\0';
    }
    return s;
}

static btsso_error_t *db_error(btsso_store_t *s, int rv, const char *what)
{
    return btsso_error_make(s->pool, 500, "db_error",
                            "The account database failed.", "%s: %s", what,
                            one_line(s->pool, apr_dbd_error(s->driver,
                                                            s->handle, rv)));
}

static const char *i64(apr_pool_t *p, apr_int64_t v)
{
    return apr_psprintf(p, "%" APR_INT64_T_FMT, v);
}

static apr_int64_t col_i64(const db_row_t *r, int i)
{
    if (i >= r->ncols || r->col[i] == NULL) {
        return 0;
    }
    return apr_atoi64(r->col[i]);
}

/* Text column; "" for NULL. */
static const char *col_text(const db_row_t *r, int i)
{
    if (i >= r->ncols || r->col[i] == NULL) {
        return "";
    }
    return r->col[i];
}

/* Optional text column read through COALESCE(x, ''): NULL when absent. */
static const char *col_opt(const db_row_t *r, int i)
{
    const char *v = col_text(r, i);
    return *v == '\0' ? NULL : v;
}

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

/* Placeholders the way apr_dbd_prepare counts them: '%' + letter. */
static int count_placeholders(const char *sql)
{
    int n = 0;

    for (; *sql != '\0'; sql++) {
        if (sql[0] == '%' && sql[1] == '%') {
            sql++;
        }
        else if (sql[0] == '%' && apr_isalpha(sql[1])) {
            n++;
        }
    }
    return n;
}

static btsso_error_t *stmt_get(btsso_store_t *s, const char *label,
                               apr_dbd_prepared_t **out)
{
    const char *sql;
    int rv;

    *out = apr_hash_get(s->prepared, label, APR_HASH_KEY_STRING);
    if (*out != NULL) {
        return NULL;
    }
    if (!s->prepare_on_demand) {
        return btsso_error_make(s->pool, 500, "not_prepared",
                                "The account database is not set up.",
                                "statement %s was not prepared on this "
                                "connection", label);
    }
    sql = apr_hash_get(s->overrides, label, APR_HASH_KEY_STRING);
    if (sql == NULL) {
        sql = default_sql(label);
    }
    if (sql == NULL) {
        return btsso_error_make(s->pool, 500, "not_prepared",
                                "The account database is not set up.",
                                "no SQL for statement %s", label);
    }
    rv = apr_dbd_prepare(s->driver, s->pool, s->handle, sql, label, out);
    if (rv != 0) {
        *out = NULL;
        return db_error(s, rv, apr_psprintf(s->pool, "prepare %s", label));
    }
    apr_hash_set(s->prepared, apr_pstrdup(s->pool, label),
                 APR_HASH_KEY_STRING, *out);
    return NULL;
}

static btsso_error_t *db_exec(btsso_store_t *s, apr_pool_t *p,
                              const char *label, int *nrows,
                              const char **args, int nargs)
{
    apr_dbd_prepared_t *stmt;
    btsso_error_t *err;
    int n = 0, rv;

    if ((err = stmt_get(s, label, &stmt)) != NULL) {
        return err;
    }
    rv = apr_dbd_pquery(s->driver, p, s->handle, &n, stmt, nargs, args);
    if (rv != 0) {
        return db_error(s, rv, label);
    }
    if (nrows != NULL) {
        *nrows = n;
    }
    return NULL;
}

/* Reads every row (drivers need the set drained) into db_row_t copies. */
static btsso_error_t *drain(btsso_store_t *s, apr_pool_t *p,
                            apr_dbd_results_t *res, apr_array_header_t **rows)
{
    apr_dbd_row_t *row = NULL;
    int ncols = apr_dbd_num_cols(s->driver, res);
    int i;

    *rows = apr_array_make(p, 4, sizeof(db_row_t));
    while (apr_dbd_get_row(s->driver, p, res, &row, -1) == 0) {
        db_row_t *r = apr_array_push(*rows);
        r->ncols = ncols;
        r->col = apr_pcalloc(p, sizeof(const char *) * (ncols > 0 ? ncols : 1));
        for (i = 0; i < ncols; i++) {
            const char *v = apr_dbd_get_entry(s->driver, row, i);
            r->col[i] = v != NULL ? apr_pstrdup(p, v) : NULL;
        }
    }
    return NULL;
}

static btsso_error_t *db_select(btsso_store_t *s, apr_pool_t *p,
                                const char *label, apr_array_header_t **rows,
                                const char **args, int nargs)
{
    apr_dbd_prepared_t *stmt;
    apr_dbd_results_t *res = NULL;
    btsso_error_t *err;
    int rv;

    if ((err = stmt_get(s, label, &stmt)) != NULL) {
        return err;
    }
    /* Random access: the pgsql driver then reports execution errors here
     * instead of ending the row loop early as if the set were empty. */
    rv = apr_dbd_pselect(s->driver, p, s->handle, &res, stmt, 1, nargs, args);
    if (rv != 0) {
        return db_error(s, rv, label);
    }
    return drain(s, p, res, rows);
}

/* Unprepared SQL: only the constant schema text goes through here. */
static btsso_error_t *raw_exec(btsso_store_t *s, const char *sql)
{
    int n = 0;
    int rv = apr_dbd_query(s->driver, s->handle, &n, sql);

    if (rv != 0) {
        return db_error(s, rv, apr_psprintf(s->pool, "schema statement "
                                            "\"%.60s...\"", sql));
    }
    return NULL;
}

static btsso_error_t *raw_select(btsso_store_t *s, apr_pool_t *p,
                                 const char *sql, apr_array_header_t **rows)
{
    apr_dbd_results_t *res = NULL;
    int rv = apr_dbd_select(s->driver, p, s->handle, &res, sql, 1);

    if (rv != 0) {
        return db_error(s, rv, apr_psprintf(s->pool, "\"%s\"", sql));
    }
    return drain(s, p, res, rows);
}

static btsso_error_t *txn_begin(btsso_store_t *s, apr_pool_t *p,
                                apr_dbd_transaction_t **txn)
{
    int rv;

    *txn = NULL;
    rv = apr_dbd_transaction_start(s->driver, p, s->handle, txn);
    if (rv != 0) {
        btsso_error_t *err = db_error(s, rv, "begin transaction");
        if (*txn != NULL) {
            /* the driver attaches the transaction even when BEGIN fails */
            apr_dbd_transaction_mode_set(s->driver, *txn,
                                         APR_DBD_TRANSACTION_ROLLBACK);
            apr_dbd_transaction_end(s->driver, p, *txn);
            *txn = NULL;
        }
        return err;
    }
    return NULL;
}

/* Commit when err is NULL and rollback is 0; otherwise roll back and
 * hand err on. */
static btsso_error_t *txn_end(btsso_store_t *s, apr_pool_t *p,
                              apr_dbd_transaction_t *txn, btsso_error_t *err,
                              int rollback)
{
    int rv;

    if (err != NULL || rollback) {
        apr_dbd_transaction_mode_set(s->driver, txn,
                                     APR_DBD_TRANSACTION_ROLLBACK);
    }
    rv = apr_dbd_transaction_end(s->driver, p, txn);
    if (err != NULL) {
        return err;
    }
    if (rv != 0) {
        return db_error(s, rv, rollback ? "rollback" : "commit");
    }
    return NULL;
}

static apr_status_t store_cleanup(void *data)
{
    btsso_store_t *s = data;

    if (!s->closed) {
        s->closed = 1;
        apr_dbd_close(s->driver, s->handle);
    }
    return APR_SUCCESS;
}

btsso_store_t *btsso_store_wrap(apr_pool_t *p, const apr_dbd_driver_t *driver,
                                apr_dbd_t *handle, apr_hash_t *prepared)
{
    btsso_store_t *s = apr_pcalloc(p, sizeof(*s));

    s->pool = p;
    s->driver = driver;
    s->handle = handle;
    s->prepared = prepared != NULL ? prepared : apr_hash_make(p);
    s->overrides = apr_hash_make(p);
    s->dialect = apr_dbd_name(driver);
    s->prepare_on_demand = 0;
    s->closed = 1;              /* mod_dbd owns the connection */
    if (strcmp(s->dialect, "sqlite3") == 0) {
        /* apr_dbd_sqlite3 sets no busy handler: wait for a writer (btssoctl,
         * another process) as btssoctl does instead of failing a login
         * with "database is locked".  Cheap (no schema read); an error
         * only leaves the driver's own few retries. */
        apr_array_header_t *rows;
        (void)raw_select(s, p, "PRAGMA busy_timeout = "
                         APR_STRINGIFY(SQLITE_BUSY_TIMEOUT_MS), &rows);
    }
    return s;
}

static int is_overridable(const char *label)
{
    return strcmp(label, BTSSO_Q_USER) == 0
        || strcmp(label, BTSSO_Q_DUPLICATES) == 0
        || strcmp(label, BTSSO_Q_ADMIN) == 0
        || strcmp(label, BTSSO_Q_ACCOUNT_BY_EMAIL) == 0;
}

static btsso_error_t *check_overrides(apr_pool_t *p, apr_hash_t *overrides)
{
    apr_hash_index_t *hi;

    if (overrides == NULL) {
        return NULL;
    }
    for (hi = apr_hash_first(p, overrides); hi; hi = apr_hash_next(hi)) {
        const void *key;
        void *val;
        int want, have;

        apr_hash_this(hi, &key, NULL, &val);
        if (!is_overridable(key)) {
            return btsso_error_make(p, 400, "bad_query",
                                    "A query override is not valid.",
                                    "%s is not an overridable statement",
                                    (const char *)key);
        }
        want = count_placeholders(default_sql(key));
        have = count_placeholders(val);
        if (want != have) {
            return btsso_error_make(p, 400, "bad_query",
                                    "A query override is not valid.",
                                    "%s takes %d parameters, the override "
                                    "has %d", (const char *)key, want, have);
        }
    }
    return NULL;
}

btsso_error_t *btsso_store_open(apr_pool_t *p, const char *driver,
                                const char *params, apr_hash_t *sql_overrides,
                                btsso_store_t **out)
{
    const apr_dbd_driver_t *drv = NULL;
    apr_dbd_t *handle = NULL;
    const char *open_error = NULL;
    btsso_store_t *s;
    btsso_error_t *err;
    apr_status_t rv;

    *out = NULL;
    if (driver == NULL || params == NULL) {
        return btsso_error_make(p, 400, "no_store",
                                "No account database is configured.",
                                "DBDriver and DBDParams are needed");
    }
    if (strcmp(driver, "sqlite3") != 0 && strcmp(driver, "pgsql") != 0) {
        return btsso_error_make(p, 400, "bad_driver",
                                "The database driver is not supported.",
                                "driver %s: use sqlite3 or pgsql", driver);
    }
    if ((err = check_overrides(p, sql_overrides)) != NULL) {
        return err;
    }
    apr_dbd_init(p);
    rv = apr_dbd_get_driver(p, driver, &drv);
    if (rv != APR_SUCCESS) {
        char buf[120];
        return btsso_error_make(p, 500, "no_driver",
                                "The database driver could not be loaded.",
                                "apr_dbd_get_driver(%s): %s (install "
                                "libaprutil1-dbd-%s)", driver,
                                apr_strerror(rv, buf, sizeof(buf)),
                                strcmp(driver, "pgsql") == 0 ? "pgsql"
                                                             : "sqlite3");
    }
    rv = apr_dbd_open_ex(drv, p, params, &handle, &open_error);
    if (rv != APR_SUCCESS || handle == NULL) {
        return btsso_error_make(p, 500, "db_open",
                                "The account database could not be opened.",
                                "%s: %s", driver,
                                one_line(p, open_error != NULL
                                         ? open_error : "open failed"));
    }

    s = apr_pcalloc(p, sizeof(*s));
    s->pool = p;
    s->driver = drv;
    s->handle = handle;
    s->prepared = apr_hash_make(p);
    s->overrides = sql_overrides != NULL ? apr_hash_copy(p, sql_overrides)
                                         : apr_hash_make(p);
    s->dialect = apr_dbd_name(drv);
    s->prepare_on_demand = 1;
    apr_pool_cleanup_register(p, s, store_cleanup, apr_pool_cleanup_null);

    if (strcmp(s->dialect, "sqlite3") == 0) {
        /* btssoctl and httpd share the file: wait for a writer instead of
         * failing at once, and enforce the schema's foreign keys. */
        apr_array_header_t *rows;
        if ((err = raw_select(s, p, "PRAGMA busy_timeout = "
                              APR_STRINGIFY(SQLITE_BUSY_TIMEOUT_MS),
                              &rows)) != NULL
            || (err = raw_exec(s, "PRAGMA foreign_keys = ON")) != NULL) {
            btsso_store_close(s);
            return err;
        }
    }
    *out = s;
    return NULL;
}

void btsso_store_close(btsso_store_t *s)
{
    if (s != NULL && !s->closed) {
        apr_pool_cleanup_run(s->pool, s, store_cleanup);
    }
}

const char *btsso_store_dialect(const btsso_store_t *s)
{
    return s->dialect;
}

/* ---- schema ------------------------------------------------------------- */

static const char schema_version_ddl[] =
    "CREATE TABLE IF NOT EXISTS btsso_schema_version ("
    " version INTEGER NOT NULL PRIMARY KEY,"
    " applied BIGINT NOT NULL)";

const char *btsso_store_schema_sql(apr_pool_t *p, const char *dialect)
{
    int is_pg, i;
    const char *out;

    if (dialect == NULL) {
        return NULL;
    }
    is_pg = strcmp(dialect, "pgsql") == 0;
    if (!is_pg && strcmp(dialect, "sqlite3") != 0) {
        return NULL;
    }
    out = apr_psprintf(p, "-- mod_btsso account store, schema version %d "
                       "(%s), as `btssoctl init` creates it.\n"
                       "-- Generated by `btssoctl schema %s`; run it on an "
                       "empty database.\n", BTSSO_SCHEMA_VERSION, dialect,
                       dialect);
    if (!is_pg) {
        out = apr_pstrcat(p, out, "PRAGMA journal_mode = WAL;\n", NULL);
    }
    out = apr_pstrcat(p, out, schema_version_ddl, ";\n", NULL);
    for (i = 0; i < SCHEMA_STEP_COUNT; i++) {
        const schema_step_t *step = &schema_steps[i];
        const char *const *sql;

        out = apr_psprintf(p, "%s\n-- version %d\nBEGIN;\n", out,
                           step->version);
        for (sql = is_pg ? step->pgsql : step->sqlite3; *sql != NULL; sql++) {
            out = apr_pstrcat(p, out, *sql, ";\n", NULL);
        }
        out = apr_psprintf(p, "%sINSERT INTO btsso_schema_version (version, "
                           "applied) VALUES (%d, 0);\nCOMMIT;\n", out,
                           step->version);
    }
    return out;
}

btsso_error_t *btsso_store_init(btsso_store_t *s, int *from, int *to)
{
    apr_pool_t *tmp;
    apr_array_header_t *rows;
    btsso_error_t *err = NULL;
    int current, i, is_pg;

    is_pg = strcmp(s->dialect, "pgsql") == 0;
    if (!is_pg && strcmp(s->dialect, "sqlite3") != 0) {
        return btsso_error_make(s->pool, 500, "bad_driver",
                                "The database driver is not supported.",
                                "no schema for driver %s", s->dialect);
    }
    apr_pool_create(&tmp, s->pool);
    if (!is_pg) {
        /* WAL lets httpd read while btssoctl writes; it is a property of
         * the file, so setting it once here is enough. */
        if ((err = raw_select(s, tmp, "PRAGMA journal_mode = WAL",
                              &rows)) != NULL) {
            goto done;
        }
    }
    if ((err = raw_exec(s, schema_version_ddl)) != NULL) {
        goto done;
    }
    if ((err = raw_select(s, tmp, "SELECT COALESCE(MAX(version), 0)"
                          " FROM btsso_schema_version", &rows)) != NULL) {
        goto done;
    }
    current = rows->nelts > 0 ? (int)col_i64(&APR_ARRAY_IDX(rows, 0, db_row_t),
                                             0) : 0;
    if (from != NULL) {
        *from = current;
    }
    if (current > BTSSO_SCHEMA_VERSION) {
        err = btsso_error_make(s->pool, 500, "schema_too_new",
                               "The account database is newer than this "
                               "program.", "schema version %d, this build "
                               "knows up to %d", current,
                               BTSSO_SCHEMA_VERSION);
        goto done;
    }
    for (i = 0; i < SCHEMA_STEP_COUNT; i++) {
        const schema_step_t *step = &schema_steps[i];
        const char *const *sql;
        apr_dbd_transaction_t *txn;

        if (step->version <= current) {
            continue;
        }
        if ((err = txn_begin(s, tmp, &txn)) != NULL) {
            goto done;
        }
        for (sql = is_pg ? step->pgsql : step->sqlite3;
             *sql != NULL && err == NULL; sql++) {
            err = raw_exec(s, *sql);
        }
        if (err == NULL) {
            err = raw_exec(s, apr_psprintf(tmp, "INSERT INTO "
                                           "btsso_schema_version (version, "
                                           "applied) VALUES (%d, %"
                                           APR_INT64_T_FMT ")", step->version,
                                           (apr_int64_t)apr_time_sec(
                                               apr_time_now())));
        }
        if ((err = txn_end(s, tmp, txn, err, 0)) != NULL) {
            err = btsso_error_make(s->pool, err->status, err->code,
                                   err->message, "upgrade to schema version "
                                   "%d: %s", step->version, err->detail);
            goto done;
        }
        current = step->version;
    }
    if (to != NULL) {
        *to = current;
    }
done:
    apr_pool_destroy(tmp);
    return err;
}

/* ---- validation --------------------------------------------------------- */

static int valid_id(const char *s, const char *extra)
{
    apr_size_t n = 0;

    if (s == NULL) {
        return 0;
    }
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!apr_isalnum(c) && strchr(extra, c) == NULL) {
            return 0;
        }
        if (n >= 64) {
            return 0;
        }
    }
    return n >= 1;
}

static btsso_error_t *check_account_id(btsso_store_t *s, const char *account)
{
    /* "." and ".." would be path segments in the account's URLs */
    if (!valid_id(account, "._-") || strcmp(account, ".") == 0
        || strcmp(account, "..") == 0) {
        return btsso_error_make(s->pool, 400, "bad_account",
                                "The account id is not valid.",
                                "account ids are 1-64 characters of "
                                "A-Z a-z 0-9 . _ -");
    }
    return NULL;
}

/* Printable text without control characters, at most max bytes. */
static int printable(const char *s, apr_size_t max)
{
    apr_size_t n;

    if (s == NULL) {
        return 0;
    }
    for (n = 0; s[n] != '\0'; n++) {
        if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || n >= max) {
            return 0;
        }
    }
    return 1;
}

/* Trims spaces (as SQL trim() does) and checks the shape of an address:
 * one '@', something on both sides, no whitespace or control characters. */
static const char *normalized_email(apr_pool_t *p, const char *email)
{
    const char *start, *end, *at = NULL, *c;

    if (email == NULL) {
        return NULL;
    }
    start = email;
    while (*start == ' ') {
        start++;
    }
    end = start + strlen(start);
    while (end > start && end[-1] == ' ') {
        end--;
    }
    if (end - start < 3 || end - start > 254) {
        return NULL;
    }
    for (c = start; c < end; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch <= 0x20 || ch == 0x7f || ch == '<' || ch == '>' || ch == '"'
            || ch == ',' || ch == ';' || ch == '\\') {
            return NULL;
        }
        if (ch == '@') {
            if (at != NULL) {
                return NULL;
            }
            at = c;
        }
    }
    if (at == NULL || at == start || at == end - 1) {
        return NULL;
    }
    return apr_pstrmemdup(p, start, end - start);
}

/* ---- shared steps of every change --------------------------------------- */

static btsso_error_t *not_found(btsso_store_t *s, const char *account)
{
    return btsso_error_make(s->pool, 404, "not_found",
                            "No such account.", "account %s", account);
}

/* First statement of every change: bumps the version (and with it takes
 * the account's write lock), checking expected_version atomically. */
static btsso_error_t *bump_version(btsso_store_t *s, apr_pool_t *p,
                                   const char *account,
                                   apr_int64_t expected_version,
                                   apr_time_t now)
{
    const char *at = i64(p, apr_time_sec(now));
    apr_array_header_t *rows;
    btsso_error_t *err;
    int n = 0;

    if (expected_version == 0) {
        err = db_exec(s, p, "btsso_account_bump", &n, ARGS(at, account));
    }
    else {
        err = db_exec(s, p, "btsso_account_bump_if", &n,
                      ARGS(at, account, i64(p, expected_version)));
    }
    if (err != NULL) {
        return err;
    }
    if (n == 1) {
        return NULL;
    }
    if ((err = db_select(s, p, "btsso_account_get", &rows,
                         ARGS(account))) != NULL) {
        return err;
    }
    if (rows->nelts == 0) {
        return not_found(s, account);
    }
    return btsso_error_make(s->pool, 409, "conflict",
                            "The configuration was changed meanwhile; "
                            "reload and try again.",
                            "account %s is at version %" APR_INT64_T_FMT
                            ", the change expected %" APR_INT64_T_FMT,
                            account,
                            col_i64(&APR_ARRAY_IDX(rows, 0, db_row_t), 4),
                            expected_version);
}

static btsso_error_t *audit_write(btsso_store_t *s, apr_pool_t *p,
                                  apr_time_t now, const char *account,
                                  const char *actor, const char *action,
                                  const char *detail)
{
    return db_exec(s, p, "btsso_audit_insert", NULL,
                   ARGS(i64(p, apr_time_sec(now)), account,
                        actor != NULL && *actor != '\0' ? actor : "unknown",
                        action, detail));
}

/* ---- accounts ----------------------------------------------------------- */

static btsso_account_t *account_from_row(apr_pool_t *p, const db_row_t *r)
{
    btsso_account_t *a = apr_pcalloc(p, sizeof(*a));

    a->account = col_text(r, 0);
    a->name = col_text(r, 1);
    a->sso_enabled = col_i64(r, 2) != 0;
    a->allow_password = col_i64(r, 3) != 0;
    a->version = col_i64(r, 4);
    a->created = apr_time_from_sec(col_i64(r, 5));
    a->updated = apr_time_from_sec(col_i64(r, 6));
    a->sessions_epoch = col_i64(r, 7);
    a->revoke_seq = col_i64(r, 8);
    return a;
}

btsso_error_t *btsso_store_account_add(btsso_store_t *s, const char *account,
                                       const char *name, const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *rows;
    btsso_error_t *err;
    apr_time_t now = apr_time_now();
    const char *at;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if (name == NULL || *name == '\0') {
        name = account;
    }
    if (!printable(name, 200)) {
        return btsso_error_make(s->pool, 400, "bad_name",
                                "The account name is not valid.",
                                "names are at most 200 bytes without "
                                "control characters");
    }
    apr_pool_create(&tmp, s->pool);
    at = i64(tmp, apr_time_sec(now));
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    err = db_select(s, tmp, "btsso_account_get", &rows, ARGS(account));
    if (err == NULL && rows->nelts > 0) {
        err = btsso_error_make(s->pool, 409, "exists",
                               "The account already exists.",
                               "account %s", account);
    }
    if (err == NULL) {
        err = db_exec(s, tmp, "btsso_account_insert", NULL,
                      ARGS(account, name, at, at));
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor, "account.add",
                          apr_psprintf(tmp, "name=%s", name));
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_account_get(btsso_store_t *s, apr_pool_t *p,
                                       const char *account,
                                       btsso_account_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;

    *out = NULL;
    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if ((err = db_select(s, p, "btsso_account_get", &rows,
                         ARGS(account))) != NULL) {
        return err;
    }
    if (rows->nelts == 0) {
        return not_found(s, account);
    }
    *out = account_from_row(p, &APR_ARRAY_IDX(rows, 0, db_row_t));
    return NULL;
}

btsso_error_t *btsso_store_account_list(btsso_store_t *s, apr_pool_t *p,
                                        apr_array_header_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    int i;

    *out = apr_array_make(p, 4, sizeof(btsso_account_t *));
    if ((err = db_select(s, p, "btsso_account_list", &rows, NULL, 0))
        != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*out, btsso_account_t *) =
            account_from_row(p, &APR_ARRAY_IDX(rows, i, db_row_t));
    }
    return NULL;
}

/* ---- users -------------------------------------------------------------- */

static btsso_error_t *duplicate_email_error(btsso_store_t *s,
                                            const char *account,
                                            const char *email,
                                            const char *holders)
{
    return btsso_error_make(s->pool, 409, "duplicate_email",
                            "This email is already used by another user of "
                            "the account, and SSO is enabled for it.",
                            "account %s: %s is held by extension %s",
                            account, email, holders);
}

btsso_error_t *btsso_store_user_add(btsso_store_t *s, const char *account,
                                    const char *extension, const char *email,
                                    const char *kind, int is_admin,
                                    const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *rows;
    btsso_error_t *err;
    apr_time_t now = apr_time_now();
    const char *norm;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if (!valid_id(extension, "._-+#*")) {
        return btsso_error_make(s->pool, 400, "bad_extension",
                                "The extension is not valid.",
                                "extensions are 1-64 characters of "
                                "A-Z a-z 0-9 . _ - + # *");
    }
    if (kind == NULL) {
        kind = "user";
    }
    if (strcmp(kind, "user") != 0 && strcmp(kind, "call_queue") != 0) {
        return btsso_error_make(s->pool, 400, "bad_kind",
                                "The kind must be user or call_queue.",
                                "kind %s", kind);
    }
    apr_pool_create(&tmp, s->pool);
    norm = normalized_email(tmp, email);
    if (norm == NULL) {
        err = btsso_error_make(s->pool, 400, "bad_email",
                               "The email address is not valid.", NULL);
        goto done;
    }
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    err = bump_version(s, tmp, account, 0, now);
    if (err == NULL) {
        err = db_select(s, tmp, "btsso_user_exists", &rows,
                        ARGS(account, extension));
        if (err == NULL && rows->nelts > 0) {
            err = btsso_error_make(s->pool, 409, "exists",
                                   "The extension already exists in the "
                                   "account.", "account %s extension %s",
                                   account, extension);
        }
    }
    if (err == NULL) {
        err = db_select(s, tmp, "btsso_account_get", &rows, ARGS(account));
    }
    if (err == NULL && rows->nelts > 0
        && col_i64(&APR_ARRAY_IDX(rows, 0, db_row_t), 2) != 0) {
        err = db_select(s, tmp, "btsso_user_holders", &rows,
                        ARGS(account, norm));
        if (err == NULL && rows->nelts > 0) {
            err = duplicate_email_error(
                s, account, norm,
                col_text(&APR_ARRAY_IDX(rows, 0, db_row_t), 0));
        }
    }
    if (err == NULL) {
        err = db_exec(s, tmp, "btsso_user_insert", NULL,
                      ARGS(account, extension, kind, norm,
                           is_admin ? "1" : "0"));
        if (err != NULL && err->detail != NULL
            && strstr(err->detail, "duplicate_email") != NULL) {
            /* the trigger caught a writer that raced us */
            err = duplicate_email_error(s, account, norm, "(another)");
        }
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor, "user.add",
                          apr_psprintf(tmp, "extension=%s kind=%s email=%s "
                                       "admin=%d", extension, kind, norm,
                                       is_admin ? 1 : 0));
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_user_list(btsso_store_t *s, apr_pool_t *p,
                                     const char *account,
                                     apr_array_header_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    int i;

    *out = apr_array_make(p, 4, sizeof(btsso_user_t *));
    if ((err = check_account_id(s, account)) != NULL
        || (err = db_select(s, p, "btsso_user_list", &rows,
                            ARGS(account))) != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts; i++) {
        const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);
        btsso_user_t *u = apr_pcalloc(p, sizeof(*u));
        u->account = col_text(r, 0);
        u->extension = col_text(r, 1);
        u->kind = col_text(r, 2);
        u->email = col_text(r, 3);
        u->is_admin = col_i64(r, 4) != 0;
        APR_ARRAY_PUSH(*out, btsso_user_t *) = u;
    }
    return NULL;
}

static btsso_error_t *short_row(btsso_store_t *s, const char *label, int want)
{
    return btsso_error_make(s->pool, 500, "bad_query",
                            "The account database query is not valid.",
                            "%s must return at least %d columns", label,
                            want);
}

btsso_error_t *btsso_store_user_by_email(btsso_store_t *s, apr_pool_t *p,
                                         const char *account,
                                         const char *email,
                                         btsso_user_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    const db_row_t *r;
    btsso_user_t *u;
    int i;

    *out = NULL;
    if (account == NULL || email == NULL) {
        return NULL;
    }
    if ((err = db_select(s, p, BTSSO_Q_USER, &rows,
                         ARGS(account, email))) != NULL) {
        return err;
    }
    /* SQL's lower() may fold non-ASCII onto ASCII (PostgreSQL folds U+212A
     * KELVIN SIGN onto 'k'): the match is decided here, ASCII-only, on the
     * email the query returned.  The first row that truly matches wins. */
    r = NULL;
    for (i = 0; i < rows->nelts; i++) {
        const db_row_t *c = &APR_ARRAY_IDX(rows, i, db_row_t);

        if (c->ncols < 2) {
            return short_row(s, BTSSO_Q_USER, 2);
        }
        if (btsso_email_equal(col_text(c, 1), email)) {
            r = c;
            break;
        }
    }
    if (r == NULL) {
        return NULL;
    }
    u = apr_pcalloc(p, sizeof(*u));
    u->account = apr_pstrdup(p, account);
    u->extension = col_text(r, 0);
    u->email = col_text(r, 1);
    u->kind = NULL;             /* the query does not say */
    *out = u;
    return NULL;
}

btsso_error_t *btsso_store_is_admin(btsso_store_t *s, const char *account,
                                    const char *remote_user, int *is_admin)
{
    apr_pool_t *tmp;
    apr_array_header_t *rows;
    btsso_error_t *err;

    *is_admin = 0;
    if (account == NULL || remote_user == NULL || *remote_user == '\0') {
        return NULL;
    }
    apr_pool_create(&tmp, s->pool);
    err = db_select(s, tmp, BTSSO_Q_ADMIN, &rows, ARGS(account, remote_user));
    if (err == NULL) {
        int i;

        /* A query that returns (extension, email) is re-checked: the
         * extension exactly, the email ASCII-only (see user_by_email).  A
         * one-column query is taken at its word. */
        for (i = 0; i < rows->nelts && !*is_admin; i++) {
            const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);

            *is_admin = r->ncols < 2
                        || strcmp(col_text(r, 0), remote_user) == 0
                        || btsso_email_equal(col_text(r, 1), remote_user);
        }
    }
    apr_pool_destroy(tmp);
    return err;
}

/* The domain of an email, lowercased: what follows its last '@'. */
static const char *email_domain(apr_pool_t *p, const char *email)
{
    const char *at = strrchr(email, '@');
    char *d, *c;
    apr_size_t n;

    if (at == NULL) {
        return NULL;
    }
    d = apr_pstrdup(p, at + 1);
    n = strlen(d);
    while (n > 0 && d[n - 1] == ' ') {
        d[--n] = '\0';
    }
    for (c = d; *c != '\0'; c++) {
        *c = (char)apr_tolower((unsigned char)*c);
    }
    return d;
}

btsso_error_t *btsso_store_account_by_email(btsso_store_t *s, apr_pool_t *p,
                                            const char *email,
                                            btsso_email_accounts_t **out)
{
    btsso_email_accounts_t *ea = apr_pcalloc(p, sizeof(*ea));
    apr_array_header_t *rows;
    apr_hash_t *seen;
    btsso_error_t *err;
    const char *domain;
    int i;

    ea->holders = apr_array_make(p, 2, sizeof(const char *));
    *out = NULL;
    if (email == NULL || *email == '\0') {
        *out = ea;
        return NULL;
    }
    if ((err = db_select(s, p, BTSSO_Q_ACCOUNT_BY_EMAIL, &rows,
                         ARGS(email))) != NULL) {
        return err;
    }
    /* Distinct here too: an operator's query may repeat an account. */
    seen = apr_hash_make(p);
    for (i = 0; i < rows->nelts; i++) {
        const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);
        const char *acc = col_opt(r, 0);

        if (acc == NULL || apr_hash_get(seen, acc, APR_HASH_KEY_STRING)) {
            continue;
        }
        /* A query that also returns the email (the default does) is
         * re-checked ASCII-only, as in btsso_store_user_by_email: SQL's
         * lower() may fold non-ASCII onto ASCII. */
        if (r->ncols >= 2 && !btsso_email_equal(col_text(r, 1), email)) {
            continue;
        }
        if (ea->holders->nelts >= BTSSO_EMAIL_ACCOUNTS_MAX) {
            ea->truncated = 1;
            break;
        }
        apr_hash_set(seen, acc, APR_HASH_KEY_STRING, acc);
        APR_ARRAY_PUSH(ea->holders, const char *) = acc;
    }
    domain = email_domain(p, email);
    if (domain != NULL && btsso_domain_normalize(p, domain) != NULL) {
        if ((err = btsso_store_domain_owner(s, p, domain,
                                            &ea->claimant)) != NULL) {
            return err;
        }
    }
    if (ea->claimant != NULL) {
        btsso_user_t *u = NULL;

        /* The account's own user query says whether it holds the email
         * (the holders list is bounded; this is not). */
        if ((err = btsso_store_user_by_email(s, p, ea->claimant, email,
                                             &u)) != NULL) {
            return err;
        }
        ea->claimant_holds = u != NULL;
    }
    if (ea->claimant_holds) {
        ea->account = ea->claimant;
    }
    else if (ea->holders->nelts == 1 && !ea->truncated) {
        ea->account = APR_ARRAY_IDX(ea->holders, 0, const char *);
    }
    *out = ea;
    return NULL;
}

/* ---- domain claims ------------------------------------------------------ */

const char *btsso_domain_normalize(apr_pool_t *p, const char *domain)
{
    char *d, *c;
    apr_size_t n, label = 0;
    int labels = 1;

    if (domain == NULL) {
        return NULL;
    }
    d = apr_pstrdup(p, domain);
    n = strlen(d);
    if (n > 0 && d[n - 1] == '.') {
        d[--n] = '\0';
    }
    if (n == 0 || n > 253) {
        return NULL;
    }
    for (c = d; *c != '\0'; c++) {
        unsigned char ch = (unsigned char)apr_tolower((unsigned char)*c);

        *c = (char)ch;
        if (ch == '.') {
            if (label == 0 || c[-1] == '-') {
                return NULL;
            }
            label = 0;
            labels++;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
              || ch == '-')) {
            return NULL;
        }
        if (ch == '-' && label == 0) {
            return NULL;
        }
        if (++label > 63) {
            return NULL;
        }
    }
    if (label == 0 || c[-1] == '-' || labels < 2) {
        return NULL;
    }
    return d;
}

static btsso_error_t *bad_domain(btsso_store_t *s)
{
    return btsso_error_make(s->pool, 400, "bad_domain",
                            "The domain name is not valid.",
                            "a domain is a DNS name of at least two labels "
                            "of a-z 0-9 - (no wildcards)");
}

static btsso_domain_t *domain_from_row(apr_pool_t *p, const db_row_t *r)
{
    btsso_domain_t *d = apr_pcalloc(p, sizeof(*d));

    d->domain = col_text(r, 0);
    d->account = col_text(r, 1);
    d->added = apr_time_from_sec(col_i64(r, 2));
    return d;
}

btsso_error_t *btsso_store_domain_owner(btsso_store_t *s, apr_pool_t *p,
                                        const char *domain,
                                        const char **account)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    const char *norm = btsso_domain_normalize(p, domain);

    *account = NULL;
    if (norm == NULL) {
        return NULL;
    }
    if ((err = db_select(s, p, "btsso_domain_get", &rows,
                         ARGS(norm))) != NULL) {
        return err;
    }
    if (rows->nelts > 0) {
        *account = col_opt(&APR_ARRAY_IDX(rows, 0, db_row_t), 1);
    }
    return NULL;
}

btsso_error_t *btsso_store_domain_add(btsso_store_t *s, const char *account,
                                      const char *domain, const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *rows;
    btsso_error_t *err;
    apr_time_t now = apr_time_now();
    const char *norm;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    apr_pool_create(&tmp, s->pool);
    if ((norm = btsso_domain_normalize(tmp, domain)) == NULL) {
        err = bad_domain(s);
        goto done;
    }
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    /* Bumping first: 404 for no account, and the config's version moves,
     * since the config shows the domains. */
    err = bump_version(s, tmp, account, 0, now);
    if (err == NULL) {
        err = db_select(s, tmp, "btsso_domain_get", &rows, ARGS(norm));
    }
    if (err == NULL && rows->nelts > 0) {
        const char *holder = col_text(&APR_ARRAY_IDX(rows, 0, db_row_t), 1);
        err = btsso_error_make(s->pool, 409, "domain_claimed",
                               strcmp(holder, account) == 0
                               ? "The account already claimed this domain."
                               : "Another account already claimed this "
                                 "domain.",
                               "%s is claimed by account %s", norm, holder);
    }
    if (err == NULL) {
        err = db_exec(s, tmp, "btsso_domain_insert", NULL,
                      ARGS(norm, account, i64(tmp, apr_time_sec(now))));
        if (err != NULL) {
            /* the primary key caught a writer that raced us */
            err = btsso_error_make(s->pool, 409, "domain_claimed",
                                   "Another account already claimed this "
                                   "domain.", "%s: %s", norm, err->detail);
        }
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor, "domain.add",
                          apr_psprintf(tmp, "domain=%s", norm));
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_domain_remove(btsso_store_t *s,
                                         const char *account,
                                         const char *domain,
                                         const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    btsso_error_t *err;
    apr_time_t now = apr_time_now();
    const char *norm;
    int n = 0;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    apr_pool_create(&tmp, s->pool);
    if ((norm = btsso_domain_normalize(tmp, domain)) == NULL) {
        err = bad_domain(s);
        goto done;
    }
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    err = bump_version(s, tmp, account, 0, now);
    if (err == NULL) {
        err = db_exec(s, tmp, "btsso_domain_delete", &n,
                      ARGS(norm, account));
    }
    if (err == NULL && n == 0) {
        err = btsso_error_make(s->pool, 404, "domain_not_claimed",
                               "The account has not claimed this domain.",
                               "account %s, domain %s", account, norm);
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor, "domain.remove",
                          apr_psprintf(tmp, "domain=%s", norm));
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_domain_list(btsso_store_t *s, apr_pool_t *p,
                                       const char *account,
                                       apr_array_header_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    int i;

    *out = apr_array_make(p, 2, sizeof(btsso_domain_t *));
    if ((err = check_account_id(s, account)) != NULL
        || (err = db_select(s, p, "btsso_domain_list", &rows,
                            ARGS(account))) != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*out, btsso_domain_t *) =
            domain_from_row(p, &APR_ARRAY_IDX(rows, i, db_row_t));
    }
    return NULL;
}

static int compare_dups(const void *a, const void *b)
{
    const btsso_dup_email_t *x = *(btsso_dup_email_t *const *)a;
    const btsso_dup_email_t *y = *(btsso_dup_email_t *const *)b;
    return strcmp(x->email, y->email);
}

btsso_error_t *btsso_store_duplicate_emails(btsso_store_t *s, apr_pool_t *p,
                                            const char *account,
                                            apr_array_header_t **out)
{
    apr_array_header_t *rows;
    apr_hash_t *by_email;
    btsso_error_t *err;
    int i;

    *out = apr_array_make(p, 4, sizeof(btsso_dup_email_t *));
    if ((err = db_select(s, p, BTSSO_Q_DUPLICATES, &rows,
                         ARGS(account))) != NULL) {
        return err;
    }
    /* Grouped here rather than trusting an operator query's ORDER BY. */
    by_email = apr_hash_make(p);
    for (i = 0; i < rows->nelts; i++) {
        const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);
        btsso_dup_email_t *d;
        btsso_user_t *u;

        if (r->ncols < 2) {
            return short_row(s, BTSSO_Q_DUPLICATES, 2);
        }
        d = apr_hash_get(by_email, col_text(r, 0), APR_HASH_KEY_STRING);
        if (d == NULL) {
            d = apr_pcalloc(p, sizeof(*d));
            d->email = col_text(r, 0);
            d->holders = apr_array_make(p, 2, sizeof(btsso_user_t *));
            apr_hash_set(by_email, d->email, APR_HASH_KEY_STRING, d);
            APR_ARRAY_PUSH(*out, btsso_dup_email_t *) = d;
        }
        u = apr_pcalloc(p, sizeof(*u));
        u->account = apr_pstrdup(p, account);
        u->extension = col_text(r, 1);
        u->kind = r->ncols > 2 ? col_text(r, 2) : NULL;
        u->email = d->email;
        APR_ARRAY_PUSH(d->holders, btsso_user_t *) = u;
    }
    qsort((*out)->elts, (*out)->nelts, sizeof(btsso_dup_email_t *),
          compare_dups);
    return NULL;
}

/* ---- IdP ---------------------------------------------------------------- */

static btsso_idp_t *idp_from_row(apr_pool_t *p, const db_row_t *r)
{
    btsso_idp_t *i = apr_pcalloc(p, sizeof(*i));

    i->account = col_text(r, 0);
    i->entity_id = col_text(r, 1);
    i->shared = col_i64(r, 2) != 0;
    i->metadata_xml = col_text(r, 3);
    i->source_url = col_opt(r, 4);
    i->email_attribute = col_opt(r, 5);
    i->email_from_name_id = col_i64(r, 6) != 0;
    i->updated = apr_time_from_sec(col_i64(r, 7));
    return i;
}

btsso_error_t *btsso_store_idp_get(btsso_store_t *s, apr_pool_t *p,
                                   const char *account, btsso_idp_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;

    *out = NULL;
    if ((err = db_select(s, p, "btsso_idp_get", &rows, ARGS(account)))
        != NULL) {
        return err;
    }
    if (rows->nelts > 0) {
        *out = idp_from_row(p, &APR_ARRAY_IDX(rows, 0, db_row_t));
    }
    return NULL;
}

btsso_error_t *btsso_store_account_by_issuer(btsso_store_t *s, apr_pool_t *p,
                                             const char *entity_id,
                                             const char **account)
{
    apr_array_header_t *rows;
    btsso_error_t *err;

    *account = NULL;
    if (entity_id == NULL) {
        return NULL;
    }
    if ((err = db_select(s, p, "btsso_idp_by_issuer", &rows,
                         ARGS(entity_id))) != NULL) {
        return err;
    }
    if (rows->nelts > 0) {
        *account = col_opt(&APR_ARRAY_IDX(rows, 0, db_row_t), 0);
    }
    return NULL;
}

btsso_error_t *btsso_store_url_accounts(btsso_store_t *s, apr_pool_t *p,
                                        apr_array_header_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    int i;

    *out = apr_array_make(p, 4, sizeof(const char *));
    if ((err = db_select(s, p, "btsso_idp_url_accounts", &rows, NULL, 0))
        != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*out, const char *) =
            col_text(&APR_ARRAY_IDX(rows, i, db_row_t), 0);
    }
    return NULL;
}

/* ---- certificates (helpers used by idp_set too) ------------------------- */

static btsso_error_t *stored_cert_from_row(btsso_store_t *s, apr_pool_t *p,
                                           const db_row_t *r,
                                           btsso_stored_cert_t **out)
{
    btsso_stored_cert_t *sc = apr_pcalloc(p, sizeof(*sc));
    btsso_error_t *err;

    /* columns: account, sha256, role, der, source, added */
    err = btsso_cert_parse_b64(p, col_text(r, 3), &sc->cert);
    if (err != NULL) {
        return btsso_error_make(s->pool, 500, "db_corrupt",
                                "A stored certificate could not be read.",
                                "account %s certificate %s: %s",
                                col_text(r, 0), col_text(r, 1),
                                err->detail != NULL ? err->detail : err->code);
    }
    if (btsso_cert_role_parse(col_text(r, 2), &sc->role) != 0) {
        sc->role = BTSSO_ROLE_NONE;
    }
    sc->source = col_text(r, 4);
    sc->added = apr_time_from_sec(col_i64(r, 5));
    *out = sc;
    return NULL;
}

static btsso_error_t *certs_from_rows(btsso_store_t *s, apr_pool_t *p,
                                      const apr_array_header_t *rows,
                                      apr_array_header_t **certs,
                                      apr_array_header_t **accounts)
{
    btsso_error_t *err;
    int i;

    *certs = apr_array_make(p, rows->nelts + 1,
                            sizeof(btsso_stored_cert_t *));
    if (accounts != NULL) {
        *accounts = apr_array_make(p, rows->nelts + 1, sizeof(const char *));
    }
    for (i = 0; i < rows->nelts; i++) {
        const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);
        btsso_stored_cert_t *sc = NULL;
        if ((err = stored_cert_from_row(s, p, r, &sc)) != NULL) {
            return err;
        }
        APR_ARRAY_PUSH(*certs, btsso_stored_cert_t *) = sc;
        if (accounts != NULL) {
            APR_ARRAY_PUSH(*accounts, const char *) = col_text(r, 0);
        }
    }
    return NULL;
}

btsso_error_t *btsso_store_cert_list(btsso_store_t *s, apr_pool_t *p,
                                     const char *account,
                                     apr_array_header_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;

    *out = apr_array_make(p, 1, sizeof(btsso_stored_cert_t *));
    if ((err = db_select(s, p, "btsso_cert_list", &rows, ARGS(account)))
        != NULL) {
        return err;
    }
    return certs_from_rows(s, p, rows, out, NULL);
}

static btsso_error_t *cert_insert(btsso_store_t *s, apr_pool_t *p,
                                  const char *account,
                                  const btsso_cert_t *cert,
                                  btsso_cert_role_e role, const char *source,
                                  apr_time_t now)
{
    return db_exec(s, p, "btsso_cert_insert", NULL,
                   ARGS(account, cert->sha256, btsso_cert_role_name(role),
                        btsso_cert_b64(p, cert),
                        cert->subject != NULL ? cert->subject : "",
                        cert->issuer != NULL ? cert->issuer : "",
                        i64(p, apr_time_sec(cert->not_before)),
                        i64(p, apr_time_sec(cert->not_after)),
                        source, i64(p, apr_time_sec(now))));
}

/* Gives role to sha256, taking it from whichever certificate held it. */
static btsso_error_t *cert_assign(btsso_store_t *s, apr_pool_t *p,
                                  const char *account, const char *sha256,
                                  btsso_cert_role_e role)
{
    btsso_error_t *err;

    if (role != BTSSO_ROLE_NONE) {
        err = db_exec(s, p, "btsso_cert_clear_role", NULL,
                      ARGS(account, btsso_cert_role_name(role)));
        if (err != NULL) {
            return err;
        }
    }
    return db_exec(s, p, "btsso_cert_set_role", NULL,
                   ARGS(btsso_cert_role_name(role), account, sha256));
}

static int has_usable_signing_cert(const apr_array_header_t *certs,
                                   apr_time_t now)
{
    int i;

    for (i = 0; certs != NULL && i < certs->nelts; i++) {
        const btsso_stored_cert_t *sc =
            APR_ARRAY_IDX(certs, i, btsso_stored_cert_t *);
        if (sc->role != BTSSO_ROLE_NONE && sc->cert != NULL
            && btsso_cert_is_valid_at(sc->cert, now)) {
            return 1;
        }
    }
    return 0;
}

static int cert_listed(const apr_array_header_t *certs, const char *sha256)
{
    int i;

    for (i = 0; i < certs->nelts; i++) {
        const btsso_stored_cert_t *sc =
            APR_ARRAY_IDX(certs, i, btsso_stored_cert_t *);
        if (strcmp(sc->cert->sha256, sha256) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- IdP changes -------------------------------------------------------- */

/*
 * Whether setting entity_id on an account whose IdP is `old` is refused
 * because another account holds it (other_shared: how that one holds it).
 *
 * On the global ACS the Issuer names the account, so an entityID has at
 * most one self-service (non-shared) holder.  Shared accounts have their
 * own SP entityID and ACS, so support may add one whatever else holds the
 * entityID: the self-service holder keeps the global addresses and is not
 * touched.  Without sharing, an entityID another account holds is refused
 * (self-service, and btssoctl without --shared), except for the account
 * that already is its self-service holder: it keeps managing its own IdP
 * (fresh metadata, refresh) while shared accounts sit beside it.  Another
 * self-service holder is refused in every case.
 */
static int entity_refused(const btsso_idp_t *old, const char *entity_id,
                          int shared, int other_shared)
{
    if (shared) {
        return 0;
    }
    if (!other_shared) {
        return 1;
    }
    return old == NULL || old->shared
           || strcmp(old->entity_id, entity_id) != 0;
}

btsso_error_t *btsso_store_idp_set(btsso_store_t *s, const char *account,
                                   const btsso_idp_metadata_t *md,
                                   const char *xml, const char *source_url,
                                   int shared, apr_int64_t expected_version,
                                   apr_time_t now, const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *rows, *stored = NULL;
    btsso_idp_t *old = NULL;
    btsso_error_t *err;
    const char *at;
    int i, added = 0;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if (md == NULL || md->entity_id == NULL || *md->entity_id == '\0'
        || (xml == NULL && md->xml == NULL)) {
        return btsso_error_make(s->pool, 400, "bad_metadata",
                                "The IdP metadata is missing.",
                                "idp_set needs parsed metadata and its XML");
    }
    if (source_url != NULL && *source_url == '\0') {
        source_url = NULL;
    }
    apr_pool_create(&tmp, s->pool);
    /* What is kept is the UTF-8 form the parser made of the document (the
     * bytes received when they were UTF-8 already), whatever the caller
     * received: UTF-16 is no C string, and the stored copy must read back
     * with the facts md holds. */
    if (md->xml != NULL) {
        xml = apr_pstrmemdup(tmp, md->xml, md->xml_len);
    }
    at = i64(tmp, apr_time_sec(now));
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    err = bump_version(s, tmp, account, expected_version, now);
    if (err == NULL) {
        err = btsso_store_idp_get(s, tmp, account, &old);
    }
    if (err == NULL) {
        err = db_select(s, tmp, "btsso_idp_others", &rows,
                        ARGS(md->entity_id, account));
    }
    for (i = 0; err == NULL && i < rows->nelts; i++) {
        const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);
        if (entity_refused(old, md->entity_id, shared, col_i64(r, 1) != 0)) {
            err = btsso_error_make(s->pool, 409, "entity_in_use",
                                   "This IdP is already configured for "
                                   "another account; contact support to "
                                   "share it between accounts.",
                                   "entityID %s is held by account %s%s",
                                   md->entity_id, col_text(r, 0),
                                   col_i64(r, 1) ? " (shared)" : "");
        }
    }
    if (err == NULL && old == NULL) {
        err = db_exec(s, tmp, "btsso_idp_insert", NULL,
                      ARGS(account, md->entity_id, shared ? "1" : "0", xml,
                           source_url, at));
    }
    else if (err == NULL) {
        err = db_exec(s, tmp, "btsso_idp_update", NULL,
                      ARGS(md->entity_id, shared ? "1" : "0", xml,
                           source_url, at, account));
    }
    if (err == NULL && old != NULL
        && strcmp(old->entity_id, md->entity_id) != 0) {
        /* Another IdP (say after a compromise): the sessions the old one
         * vouched for end. */
        err = db_exec(s, tmp, "btsso_account_sessions_end", NULL,
                      ARGS(account));
    }
    if (err == NULL) {
        err = btsso_store_cert_list(s, tmp, account, &stored);
    }
    for (i = 0; err == NULL && md->signing_certs != NULL
                && i < md->signing_certs->nelts; i++) {
        const btsso_cert_t *c = APR_ARRAY_IDX(md->signing_certs, i,
                                              btsso_cert_t *);
        if (!cert_listed(stored, c->sha256)) {
            err = cert_insert(s, tmp, account, c, BTSSO_ROLE_NONE,
                              "metadata", now);
            added++;
        }
    }
    if (err == NULL
        && (old == NULL || strcmp(old->entity_id, md->entity_id) != 0
            || !has_usable_signing_cert(stored, now))) {
        /* A new IdP must not be verified with the old IdP's keys. */
        int assigned = 0;
        err = db_exec(s, tmp, "btsso_cert_clear_role", NULL,
                      ARGS(account, "primary"));
        if (err == NULL) {
            err = db_exec(s, tmp, "btsso_cert_clear_role", NULL,
                          ARGS(account, "secondary"));
        }
        for (i = 0; err == NULL && md->signing_certs != NULL
                    && i < md->signing_certs->nelts && assigned < 2; i++) {
            const btsso_cert_t *c = APR_ARRAY_IDX(md->signing_certs, i,
                                                  btsso_cert_t *);
            if (btsso_cert_is_valid_at(c, now)) {
                err = db_exec(s, tmp, "btsso_cert_set_role", NULL,
                              ARGS(assigned == 0 ? "primary" : "secondary",
                                   account, c->sha256));
                assigned++;
            }
        }
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor, "idp.set",
                          apr_psprintf(tmp, "entity_id=%s shared=%d "
                                       "source=%s new_certificates=%d",
                                       md->entity_id, shared ? 1 : 0,
                                       source_url != NULL ? source_url
                                                          : "upload",
                                       added));
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_email_set(btsso_store_t *s, const char *account,
                                     const char *attribute, int name_id,
                                     apr_int64_t expected_version,
                                     const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    btsso_idp_t *idp = NULL;
    btsso_error_t *err;
    apr_time_t now = apr_time_now();

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if (attribute != NULL && *attribute == '\0') {
        attribute = NULL;
    }
    if ((name_id && attribute != NULL) || (!name_id && attribute == NULL)
        || (attribute != NULL
            && (!printable(attribute, 512) || attribute[0] == ' '
                || attribute[strlen(attribute) - 1] == ' '))) {
        return btsso_error_make(s->pool, 400, "bad_attribute",
                                "Choose one attribute name, or the NameID.",
                                "attribute names are 1-512 printable "
                                "characters; name_id excludes an attribute");
    }
    apr_pool_create(&tmp, s->pool);
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    err = bump_version(s, tmp, account, expected_version, now);
    if (err == NULL) {
        err = btsso_store_idp_get(s, tmp, account, &idp);
    }
    if (err == NULL && idp == NULL) {
        err = btsso_error_make(s->pool, 409, "no_idp",
                               "Upload the IdP metadata first.",
                               "account %s has no IdP", account);
    }
    if (err == NULL) {
        err = db_exec(s, tmp, "btsso_idp_email", NULL,
                      ARGS(attribute, name_id ? "1" : "0",
                           i64(tmp, apr_time_sec(now)), account));
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor, "idp.email",
                          name_id ? "name_id"
                                  : apr_psprintf(tmp, "attribute=%s",
                                                 attribute));
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

/* ---- certificate changes ------------------------------------------------ */

static btsso_error_t *check_role(btsso_store_t *s, btsso_cert_role_e role)
{
    if (role != BTSSO_ROLE_NONE && role != BTSSO_ROLE_PRIMARY
        && role != BTSSO_ROLE_SECONDARY) {
        return btsso_error_make(s->pool, 400, "bad_role",
                                "The role must be primary, secondary or "
                                "none.", NULL);
    }
    return NULL;
}

btsso_error_t *btsso_store_cert_add(btsso_store_t *s, const char *account,
                                    const btsso_cert_t *cert,
                                    btsso_cert_role_e role, const char *source,
                                    apr_int64_t expected_version,
                                    apr_time_t now, const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *rows;
    btsso_error_t *err;
    const char *action = NULL;

    if ((err = check_account_id(s, account)) != NULL
        || (err = check_role(s, role)) != NULL) {
        return err;
    }
    if (cert == NULL || cert->der == NULL || cert->der_len == 0
        || !btsso_cert_is_fingerprint(cert->sha256)) {
        return btsso_error_make(s->pool, 400, "bad_certificate",
                                "The certificate is missing.", NULL);
    }
    if (source == NULL || (strcmp(source, "metadata") != 0
                           && strcmp(source, "upload") != 0
                           && strcmp(source, "refresh") != 0)) {
        return btsso_error_make(s->pool, 400, "bad_source",
                                "The certificate source is not valid.",
                                "source must be metadata, upload or refresh");
    }
    apr_pool_create(&tmp, s->pool);
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    err = bump_version(s, tmp, account, expected_version, now);
    if (err == NULL) {
        err = db_select(s, tmp, "btsso_cert_get", &rows,
                        ARGS(account, cert->sha256));
    }
    if (err == NULL && rows->nelts == 0) {
        if (role != BTSSO_ROLE_NONE) {
            err = db_exec(s, tmp, "btsso_cert_clear_role", NULL,
                          ARGS(account, btsso_cert_role_name(role)));
        }
        if (err == NULL) {
            err = cert_insert(s, tmp, account, cert, role, source, now);
        }
        action = "cert.add";
    }
    else if (err == NULL && role != BTSSO_ROLE_NONE
             && strcmp(col_text(&APR_ARRAY_IDX(rows, 0, db_row_t), 0),
                       btsso_cert_role_name(role)) != 0) {
        err = cert_assign(s, tmp, account, cert->sha256, role);
        action = "cert.role";
    }
    if (err == NULL && action != NULL) {
        err = audit_write(s, tmp, now, account, actor, action,
                          apr_psprintf(tmp, "sha256=%s role=%s source=%s "
                                       "subject=%s", cert->sha256,
                                       btsso_cert_role_name(role), source,
                                       cert->subject != NULL ? cert->subject
                                                             : ""));
    }
    /* Already stored with nothing to change: leave the version alone. */
    err = txn_end(s, tmp, txn, err, action == NULL);
done:
    apr_pool_destroy(tmp);
    return err;
}

static btsso_error_t *check_fingerprint(btsso_store_t *s, apr_pool_t *p,
                                        const char *sha256, const char **lc)
{
    char *c;

    if (!btsso_cert_is_fingerprint(sha256)) {
        return btsso_error_make(s->pool, 400, "bad_fingerprint",
                                "A certificate is named by the 64 hex digits "
                                "of its SHA-256 fingerprint.", NULL);
    }
    *lc = c = apr_pstrdup(p, sha256);
    for (; *c != '\0'; c++) {
        *c = (char)apr_tolower(*c);
    }
    return NULL;
}

static btsso_error_t *no_cert(btsso_store_t *s, const char *account,
                              const char *sha256)
{
    return btsso_error_make(s->pool, 404, "not_found",
                            "No such certificate.",
                            "account %s certificate %s", account, sha256);
}

/*
 * While SSO is enforced, a change must not leave the account without a
 * usable certificate: nobody could sign in any more, administrators
 * included.  Checked inside the change's transaction, after the change.
 */
static btsso_error_t *keep_usable_cert(btsso_store_t *s, apr_pool_t *tmp,
                                       const char *account, apr_time_t now)
{
    apr_array_header_t *rows, *certs;
    btsso_error_t *err;

    err = db_select(s, tmp, "btsso_account_get", &rows, ARGS(account));
    if (err != NULL || rows->nelts == 0
        || col_i64(&APR_ARRAY_IDX(rows, 0, db_row_t), 2) == 0) {
        return err;
    }
    err = btsso_store_cert_list(s, tmp, account, &certs);
    if (err == NULL && !has_usable_signing_cert(certs, now)) {
        err = btsso_error_make(s->pool, 409, "last_usable_certificate",
            "This is the last valid primary or secondary certificate of an "
            "account that enforces SSO: add and promote its successor "
            "first, or disable SSO.", "account %s", account);
    }
    return err;
}

btsso_error_t *btsso_store_cert_role(btsso_store_t *s, const char *account,
                                     const char *sha256, btsso_cert_role_e role,
                                     apr_int64_t expected_version,
                                     const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *rows;
    btsso_error_t *err;
    apr_time_t now = apr_time_now();
    const char *fp;
    int unchanged = 0;

    if ((err = check_account_id(s, account)) != NULL
        || (err = check_role(s, role)) != NULL) {
        return err;
    }
    apr_pool_create(&tmp, s->pool);
    if ((err = check_fingerprint(s, tmp, sha256, &fp)) != NULL
        || (err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    err = bump_version(s, tmp, account, expected_version, now);
    if (err == NULL) {
        err = db_select(s, tmp, "btsso_cert_get", &rows, ARGS(account, fp));
    }
    if (err == NULL && rows->nelts == 0) {
        err = no_cert(s, account, fp);
    }
    if (err == NULL) {
        unchanged = strcmp(col_text(&APR_ARRAY_IDX(rows, 0, db_row_t), 0),
                           btsso_cert_role_name(role)) == 0;
    }
    if (err == NULL && !unchanged) {
        err = cert_assign(s, tmp, account, fp, role);
    }
    if (err == NULL && !unchanged) {
        err = keep_usable_cert(s, tmp, account, now);
    }
    if (err == NULL && !unchanged) {
        err = audit_write(s, tmp, now, account, actor, "cert.role",
                          apr_psprintf(tmp, "sha256=%s role=%s", fp,
                                       btsso_cert_role_name(role)));
    }
    err = txn_end(s, tmp, txn, err, unchanged);
done:
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_cert_remove(btsso_store_t *s, const char *account,
                                       const char *sha256,
                                       apr_int64_t expected_version,
                                       const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    btsso_error_t *err;
    apr_time_t now = apr_time_now();
    const char *fp;
    int n = 0;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    apr_pool_create(&tmp, s->pool);
    if ((err = check_fingerprint(s, tmp, sha256, &fp)) != NULL
        || (err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    err = bump_version(s, tmp, account, expected_version, now);
    if (err == NULL) {
        err = db_exec(s, tmp, "btsso_cert_delete", &n, ARGS(account, fp));
    }
    if (err == NULL && n == 0) {
        err = no_cert(s, account, fp);
    }
    if (err == NULL) {
        err = keep_usable_cert(s, tmp, account, now);
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor, "cert.remove",
                          apr_psprintf(tmp, "sha256=%s", fp));
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_cert_expiring(btsso_store_t *s, apr_pool_t *p,
                                         apr_time_t now, int days,
                                         apr_array_header_t **certs,
                                         apr_array_header_t **accounts)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    apr_int64_t bound = (apr_int64_t)apr_time_sec(now)
                        + (apr_int64_t)(days > 0 ? days : 0) * SECONDS_PER_DAY;

    *certs = apr_array_make(p, 1, sizeof(btsso_stored_cert_t *));
    *accounts = apr_array_make(p, 1, sizeof(const char *));
    if ((err = db_select(s, p, "btsso_cert_expiring", &rows,
                         ARGS(i64(p, bound)))) != NULL) {
        return err;
    }
    return certs_from_rows(s, p, rows, certs, accounts);
}

/* ---- enabling ----------------------------------------------------------- */

apr_array_header_t *btsso_account_missing(apr_pool_t *p,
                                          const btsso_idp_t *idp,
                                          const apr_array_header_t *certs,
                                          apr_time_t now)
{
    apr_array_header_t *missing = apr_array_make(p, 3, sizeof(const char *));

    if (idp == NULL) {
        APR_ARRAY_PUSH(missing, const char *) = "idp";
    }
    if (idp == NULL || (!idp->email_from_name_id
                        && (idp->email_attribute == NULL
                            || *idp->email_attribute == '\0'))) {
        APR_ARRAY_PUSH(missing, const char *) = "email_mapping";
    }
    if (!has_usable_signing_cert(certs, now)) {
        APR_ARRAY_PUSH(missing, const char *) = "usable_certificate";
    }
    return missing;
}

static const char *joined(apr_pool_t *p, const apr_array_header_t *words)
{
    return apr_array_pstrcat(p, words, ',');
}

btsso_error_t *btsso_store_set_enabled(btsso_store_t *s, apr_pool_t *p,
                                       const char *account, int enabled,
                                       int allow_password,
                                       apr_int64_t expected_version,
                                       apr_time_t now, const char *actor,
                                       apr_array_header_t **dups,
                                       apr_array_header_t **missing)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *found_dups = NULL, *found_missing = NULL, *certs;
    btsso_idp_t *idp = NULL;
    btsso_error_t *err;

    if (dups != NULL) {
        *dups = apr_array_make(p, 1, sizeof(btsso_dup_email_t *));
    }
    if (missing != NULL) {
        *missing = apr_array_make(p, 1, sizeof(const char *));
    }
    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    apr_pool_create(&tmp, s->pool);
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    /* Bumping first locks the account row, so a user added meanwhile
     * either commits before our duplicate check or meets the trigger. */
    err = bump_version(s, tmp, account, expected_version, now);
    if (err == NULL && enabled) {
        err = btsso_store_duplicate_emails(s, p, account, &found_dups);
        if (err == NULL) {
            err = btsso_store_idp_get(s, p, account, &idp);
        }
        if (err == NULL) {
            err = btsso_store_cert_list(s, p, account, &certs);
        }
        if (err == NULL) {
            found_missing = btsso_account_missing(p, idp, certs, now);
            if (dups != NULL) {
                *dups = found_dups;
            }
            if (missing != NULL) {
                *missing = found_missing;
            }
        }
        if (err == NULL && found_dups->nelts > 0) {
            apr_array_header_t *emails =
                apr_array_make(tmp, found_dups->nelts, sizeof(const char *));
            int i;
            for (i = 0; i < found_dups->nelts; i++) {
                APR_ARRAY_PUSH(emails, const char *) =
                    APR_ARRAY_IDX(found_dups, i, btsso_dup_email_t *)->email;
            }
            err = btsso_error_make(s->pool, 409, "duplicate_emails",
                                   "Users of this account share contact "
                                   "emails; make them unique before "
                                   "enabling SSO.", "account %s: %s",
                                   account, joined(tmp, emails));
        }
        else if (err == NULL && found_missing->nelts > 0) {
            err = btsso_error_make(s->pool, 409, "incomplete",
                                   "The SSO configuration is incomplete.",
                                   "account %s misses %s", account,
                                   joined(tmp, found_missing));
        }
    }
    if (err == NULL) {
        err = db_exec(s, tmp, "btsso_account_enable", NULL,
                      ARGS(enabled ? "1" : "0", allow_password ? "1" : "0",
                           account));
    }
    if (err == NULL && !enabled) {
        /* every session of the account ends (and stays ended) */
        err = db_exec(s, tmp, "btsso_account_sessions_end", NULL,
                      ARGS(account));
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor,
                          enabled ? "sso.enable" : "sso.disable",
                          apr_psprintf(tmp, "allow_password=%d",
                                       allow_password ? 1 : 0));
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

/* ---- sessions -------------------------------------------------------------- */

btsso_error_t *btsso_store_sessions_revoke(btsso_store_t *s,
                                           const char *account,
                                           const char *email,
                                           apr_time_t now, const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *rows;
    btsso_error_t *err;
    const char *norm = NULL, *seq;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if (email != NULL) {
        const char *n = normalized_email(s->pool, email);
        char *c;

        if (n == NULL) {
            return btsso_error_make(s->pool, 400, "bad_email",
                                    "The email address is not valid.",
                                    "email '%s'", email);
        }
        /* stored as BTSSOUserQuery compares: lower(trim()) */
        norm = c = apr_pstrdup(s->pool, n);
        for (; *c != '\0'; c++) {
            *c = (char)apr_tolower((unsigned char)*c);
        }
    }
    apr_pool_create(&tmp, s->pool);
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    /* Bumping first: 404 for no account, and the account row's lock
     * orders concurrent revocations. */
    err = bump_version(s, tmp, account, 0, now);
    if (err == NULL && norm == NULL) {
        err = db_exec(s, tmp, "btsso_account_sessions_end", NULL,
                      ARGS(account));
    }
    else if (err == NULL) {
        err = db_exec(s, tmp, "btsso_account_revoke_seq", NULL,
                      ARGS(account));
        if (err == NULL) {
            err = db_select(s, tmp, "btsso_account_get", &rows,
                            ARGS(account));
        }
        if (err == NULL && rows->nelts == 0) {
            err = not_found(s, account);
        }
        if (err == NULL) {
            seq = i64(tmp, col_i64(&APR_ARRAY_IDX(rows, 0, db_row_t), 8));
            err = db_exec(s, tmp, "btsso_revocation_delete", NULL,
                          ARGS(account, norm));
            if (err == NULL) {
                err = db_exec(s, tmp, "btsso_revocation_insert", NULL,
                              ARGS(account, norm, seq,
                                   i64(tmp, apr_time_sec(now))));
            }
        }
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor,
                          norm ? "sessions.revoke_user"
                               : "sessions.revoke_all",
                          norm ? apr_psprintf(tmp, "email=%s", norm) : "");
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_session_revocations(btsso_store_t *s,
                                               apr_pool_t *p,
                                               const char *account,
                                               apr_time_t since, int limit,
                                               apr_array_header_t **out,
                                               int *truncated)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    int i;

    *out = apr_array_make(p, 4, sizeof(btsso_revocation_t));
    *truncated = 0;
    if (limit < 1) {
        limit = 1;
    }
    if ((err = db_select(s, p, "btsso_revocation_recent", &rows,
                         ARGS(account, i64(p, apr_time_sec(since)),
                              apr_itoa(p, limit + 1)))) != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts; i++) {
        const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);
        btsso_revocation_t *v;

        if (i == limit) {
            *truncated = 1;
            break;
        }
        v = apr_array_push(*out);
        v->email = col_text(r, 0);
        v->seq = col_i64(r, 1);
        v->revoked = apr_time_from_sec(col_i64(r, 2));
    }
    return NULL;
}

btsso_error_t *btsso_store_session_revoked(btsso_store_t *s, apr_pool_t *p,
                                           const char *account,
                                           const char *email,
                                           apr_int64_t *seq)
{
    apr_array_header_t *rows;
    btsso_error_t *err;

    *seq = 0;
    if ((err = db_select(s, p, "btsso_revocation_get", &rows,
                         ARGS(account, email))) != NULL) {
        return err;
    }
    if (rows->nelts > 0) {
        *seq = col_i64(&APR_ARRAY_IDX(rows, 0, db_row_t), 0);
    }
    return NULL;
}

/* ---- audit -------------------------------------------------------------- */

btsso_error_t *btsso_store_audit_list(btsso_store_t *s, apr_pool_t *p,
                                      const char *account, int limit,
                                      apr_array_header_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    const char *lim;
    int i;

    *out = apr_array_make(p, 4, sizeof(btsso_audit_t *));
    lim = apr_itoa(p, limit > 0 ? limit : AUDIT_DEFAULT_LIMIT);
    if (account != NULL) {
        err = db_select(s, p, "btsso_audit_list", &rows, ARGS(account, lim));
    }
    else {
        err = db_select(s, p, "btsso_audit_list_all", &rows, ARGS(lim));
    }
    if (err != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts; i++) {
        const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);
        btsso_audit_t *a = apr_pcalloc(p, sizeof(*a));
        a->at = apr_time_from_sec(col_i64(r, 0));
        a->account = col_opt(r, 1);
        a->actor = col_text(r, 2);
        a->action = col_text(r, 3);
        a->detail = col_text(r, 4);
        APR_ARRAY_PUSH(*out, btsso_audit_t *) = a;
    }
    return NULL;
}

/* ---- signins ------------------------------------------------------------ */

#define SIGNIN_LIST_DEFAULT 100
#define SIGNIN_TRIES 2

const char *btsso_signin_day(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02d", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday);
}

/* At most max bytes of text, cut on a UTF-8 character boundary, control
 * characters turned into spaces (a record is read in a terminal and on
 * a page; what an IdP sent must not steer either); NULL stays NULL. */
static const char *clipped(apr_pool_t *p, const char *text, apr_size_t max)
{
    apr_size_t n;
    char *out, *c;

    if (text == NULL) {
        return NULL;
    }
    n = strlen(text);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    out = apr_pstrmemdup(p, text, n);
    for (c = out; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            *c = ' ';
        }
    }
    return out;
}

static btsso_error_t *bad_signin(btsso_store_t *s, const char *what)
{
    return btsso_error_make(s->pool, 400, "bad_signin",
                            "The sign-in record is not valid.", "%s", what);
}

static btsso_error_t *signin_check(btsso_store_t *s, const char *account,
                                   const btsso_signin_t *si)
{
    btsso_error_t *err;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if (si == NULL || !valid_id(si->reference, "-")
        || strlen(si->reference) > 16) {
        return bad_signin(s, "reference: 1-16 characters of A-Z 0-9 -");
    }
    if (si->result == NULL || !valid_id(si->result, "._-")) {
        return bad_signin(s, "result: a code of A-Z a-z 0-9 . _ -");
    }
    return NULL;
}

btsso_error_t *btsso_store_signin_add(btsso_store_t *s, const char *account,
                                      const btsso_signin_t *si, int keep)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *rows;
    btsso_error_t *err;

    if ((err = signin_check(s, account, si)) != NULL) {
        return err;
    }
    if (strcmp(si->result, "ok") == 0) {
        return bad_signin(s, "a success is counted, not recorded as a "
                          "refusal");
    }
    apr_pool_create(&tmp, s->pool);
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    /* the first statement writes: SQLite then takes the write lock at
     * once instead of failing to upgrade a read */
    err = db_exec(s, tmp, "btsso_signin_insert", NULL,
                  ARGS(account, si->reference,
                       i64(tmp, apr_time_sec(si->at)), si->result,
                       clipped(tmp, si->email, 254),
                       clipped(tmp, si->name_id, 1024),
                       clipped(tmp, si->idp, 1024),
                       clipped(tmp, si->detail, 2048)));
    if (err == NULL && keep > 0) {
        err = db_select(s, tmp, "btsso_signin_prune_mark", &rows,
                        ARGS(account, apr_itoa(tmp, keep)));
        if (err == NULL && rows->nelts > 0) {
            const db_row_t *r = &APR_ARRAY_IDX(rows, 0, db_row_t);
            const char *at = i64(tmp, col_i64(r, 0));

            err = db_exec(s, tmp, "btsso_signin_prune", NULL,
                          ARGS(account, at, at, col_text(r, 1)));
        }
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

static btsso_error_t *counts_write(btsso_store_t *s, apr_pool_t *tmp,
                                   const char *account,
                                   const btsso_signin_counts_t *c)
{
    btsso_error_t *err = NULL;
    int n = 0, i;

    if (c->ok > 0 || c->failed > 0 || c->unrecorded > 0) {
        const char *day = btsso_signin_day(tmp, c->day);
        const char *ok = i64(tmp, c->ok), *failed = i64(tmp, c->failed);
        const char *unrec = i64(tmp, c->unrecorded);

        err = db_exec(s, tmp, "btsso_signin_day_add", &n,
                      ARGS(ok, failed, unrec, account, day));
        if (err == NULL && n == 0) {
            err = db_exec(s, tmp, "btsso_signin_day_insert", NULL,
                          ARGS(account, day, ok, failed, unrec));
        }
    }
    if (err == NULL && c->last_ok != NULL) {
        const btsso_signin_t *l = c->last_ok;
        const char *at = i64(tmp, apr_time_sec(l->at));

        err = db_exec(s, tmp, "btsso_signin_ok_drop", NULL,
                      ARGS(account, at));
        if (err == NULL) {
            err = db_exec(s, tmp, "btsso_signin_ok_insert", NULL,
                          ARGS(account, l->reference, at,
                               clipped(tmp, l->email, 254),
                               clipped(tmp, l->name_id, 1024),
                               clipped(tmp, l->idp, 1024), account));
        }
    }
    for (i = 0; err == NULL && c->certs != NULL && i < c->certs->nelts; i++) {
        const btsso_signin_cert_seen_t *cs =
            &APR_ARRAY_IDX(c->certs, i, btsso_signin_cert_seen_t);
        const char *at = i64(tmp, apr_time_sec(cs->at));

        if (cs->sha256 != NULL) {
            err = db_exec(s, tmp, "btsso_signin_cert_verified", NULL,
                          ARGS(at, account, cs->sha256, at));
        }
    }
    return err;
}

btsso_error_t *btsso_store_signin_counts_add(btsso_store_t *s,
                                             const char *account,
                                             const btsso_signin_counts_t *c)
{
    btsso_error_t *err;
    int attempt;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if (c->last_ok != NULL
        && ((err = signin_check(s, account, c->last_ok)) != NULL)) {
        return err;
    }
    /* Two nodes making the same day's row (or the last success) at once:
     * one insert loses to the other's key; the second try then updates
     * the row the winner made. */
    for (attempt = 1; attempt <= SIGNIN_TRIES; attempt++) {
        apr_pool_t *tmp;
        apr_dbd_transaction_t *txn;

        apr_pool_create(&tmp, s->pool);
        err = txn_begin(s, tmp, &txn);
        if (err == NULL) {
            err = txn_end(s, tmp, txn, counts_write(s, tmp, account, c), 0);
        }
        apr_pool_destroy(tmp);
        if (err == NULL) {
            break;
        }
    }
    return err;
}

static btsso_signin_t *signin_from_row(apr_pool_t *p, const db_row_t *r)
{
    btsso_signin_t *si = apr_pcalloc(p, sizeof(*si));

    si->reference = col_text(r, 0);
    si->at = apr_time_from_sec(col_i64(r, 1));
    si->result = col_text(r, 2);
    si->email = col_opt(r, 3);
    si->name_id = col_opt(r, 4);
    si->idp = col_opt(r, 5);
    si->detail = col_opt(r, 6);
    return si;
}

btsso_error_t *btsso_store_signin_list(btsso_store_t *s, apr_pool_t *p,
                                       const char *account,
                                       const btsso_signin_filter_t *f,
                                       apr_array_header_t **out, int *more)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    const char *before_at, *before_ref;
    int limit, i;

    *out = apr_array_make(p, 8, sizeof(btsso_signin_t *));
    if (more != NULL) {
        *more = 0;
    }
    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    limit = f != NULL ? f->limit : 0;
    if (limit <= 0 || limit > BTSSO_SIGNIN_LIST_MAX) {
        limit = SIGNIN_LIST_DEFAULT;
    }
    if (f != NULL && f->before_ref != NULL) {
        before_at = i64(p, apr_time_sec(f->before_at));
        before_ref = f->before_ref;
    }
    else {
        before_at = "9223372036854775807";
        before_ref = "";
    }
    err = db_select(s, p, "btsso_signin_list", &rows,
                    ARGS(account,
                         f != NULL && f->reference ? f->reference : "",
                         f != NULL && f->reference ? f->reference : "",
                         f != NULL && f->failed_only ? "1" : "0",
                         before_at, before_at, before_ref,
                         apr_itoa(p, limit + 1)));
    if (err != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts && i < limit; i++) {
        APR_ARRAY_PUSH(*out, btsso_signin_t *) =
            signin_from_row(p, &APR_ARRAY_IDX(rows, i, db_row_t));
    }
    if (more != NULL) {
        *more = rows->nelts > limit;
    }
    return NULL;
}

btsso_error_t *btsso_store_signin_summary(btsso_store_t *s, apr_pool_t *p,
                                          const char *account, int days,
                                          btsso_signin_summary_t **out)
{
    btsso_signin_summary_t *sum = apr_pcalloc(p, sizeof(*sum));
    btsso_signin_filter_t f;
    apr_array_header_t *rows;
    btsso_error_t *err;
    int i;

    *out = NULL;
    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    sum->days = apr_array_make(p, 8, sizeof(btsso_signin_day_t));
    sum->cert_verified = apr_hash_make(p);
    if ((err = db_select(s, p, "btsso_signin_days", &rows,
                         ARGS(account, apr_itoa(p, days > 0 ? days : 1))))
        != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts; i++) {
        const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);
        btsso_signin_day_t *d = apr_array_push(sum->days);

        d->day = col_text(r, 0);
        d->ok = col_i64(r, 1);
        d->failed = col_i64(r, 2);
        d->unrecorded = col_i64(r, 3);
    }
    if ((err = db_select(s, p, "btsso_signin_last_ok", &rows,
                         ARGS(account))) != NULL) {
        return err;
    }
    if (rows->nelts > 0) {
        sum->last_ok = signin_from_row(p, &APR_ARRAY_IDX(rows, 0, db_row_t));
    }
    memset(&f, 0, sizeof(f));
    f.failed_only = 1;
    f.limit = 1;
    if ((err = btsso_store_signin_list(s, p, account, &f, &rows, NULL))
        != NULL) {
        return err;
    }
    if (rows->nelts > 0) {
        sum->last_failed = APR_ARRAY_IDX(rows, 0, btsso_signin_t *);
    }
    if ((err = db_select(s, p, "btsso_signin_cert_times", &rows,
                         ARGS(account))) != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts; i++) {
        const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);
        apr_time_t *t = apr_palloc(p, sizeof(*t));

        *t = col_i64(r, 1) > 0 ? apr_time_from_sec(col_i64(r, 1)) : 0;
        apr_hash_set(sum->cert_verified, col_text(r, 0), APR_HASH_KEY_STRING,
                     t);
    }
    *out = sum;
    return NULL;
}
