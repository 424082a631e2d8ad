/*
 * store_sql.c - every SQL statement of the account store, by label.
 *
 * One text serves SQLite and PostgreSQL.  APR DBD's pgsql driver declares
 * each %s parameter as varchar, so a parameter compared with or stored into
 * a number column is wrapped in CAST(... AS BIGINT/INTEGER); SQLite accepts
 * the same casts.  Nullable text columns are read through COALESCE(x, '')
 * because the pgsql driver returns "" for NULL while the sqlite3 driver
 * returns NULL; the store treats "" as absent for those columns.
 *
 * Labels are PostgreSQL identifiers (the pgsql driver runs PREPARE <label>).
 *
 * MySQL/MariaDB (driver "mysql") gets the same text, rewritten when it is
 * prepared (btsso_store_rewrite_sql, for btssoctl and for the module's
 * ap_dbd_prepare alike):
 *   LIMIT CAST(%s AS INTEGER|BIGINT)  ->  LIMIT %s
 *         (MySQL takes only a literal or a bare parameter marker after LIMIT;
 *          MariaDB converts the driver's text parameter itself)
 *   CAST(... AS BIGINT|INTEGER)       ->  CAST(... AS SIGNED)
 * and each connection runs with sql_mode ANSI_QUOTES and PIPES_AS_CONCAT
 * (so 'a' || 'b' concatenates and "x" is an identifier, as in standard
 * SQL), utf8mb4 and READ COMMITTED.  So, writing a new statement:
 *   - numbers as CAST(%s AS BIGINT) / CAST(%s AS INTEGER), LIMIT as
 *     LIMIT CAST(%s AS INTEGER): nothing else to do for MySQL;
 *   - text the rewrite cannot turn into MySQL (an upsert, INSERT ... ON
 *     CONFLICT, is INSERT ... ON DUPLICATE KEY UPDATE there; RETURNING;
 *     count(*) FILTER; strpos(); a CAST to another type; length(), which
 *     counts bytes on MySQL) gets its MySQL text in dialect_statements[]
 *     below, under the same label and with the same parameters in the
 *     same order (test_store checks both);
 *   - an UPDATE's row count on MySQL is the rows it changed, not those it
 *     matched: do not count on 1 from an UPDATE that may set a column to
 *     the value it already has;
 *   - text columns compare byte for byte (utf8mb4_bin) but with PAD SPACE:
 *     'a' = 'a ' there.  Compare trimmed values, or values the store
 *     validated, as all statements here do.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include <stdlib.h>

#include <apr_strings.h>
#include <apr_lib.h>

#include "store/store.h"

static const btsso_stmt_def_t store_statements[] = {
    /* ---- overridable by directive: keep to the documented params ---- */
    { BTSSO_Q_USER,
      "SELECT extension, email FROM users"
      " WHERE account = %s AND lower(trim(email)) = lower(trim(%s))"
      " ORDER BY extension",
      "account, email -> rows (extension, email)" },
    { BTSSO_Q_DUPLICATES,
      "SELECT lower(trim(u.email)), u.extension, u.kind FROM users u"
      " WHERE u.account = %s AND lower(trim(u.email)) IN"
      " (SELECT lower(trim(d.email)) FROM users d"
      "  WHERE d.account = u.account"
      "  GROUP BY lower(trim(d.email)) HAVING count(*) > 1)"
      " ORDER BY 1, 2",
      "account -> rows (lowercased trimmed email, extension, kind)" },
    /* The email only, never an extension: extensions repeat across
     * accounts, so Basic user "101" would administer every account whose
     * extension 101 is an admin. */
    { BTSSO_Q_ADMIN,
      "SELECT extension, email FROM users"
      " WHERE account = %s AND is_admin = 1"
      " AND lower(trim(email)) = lower(trim(%s))",
      "account, remote_user -> a row (extension, email) when remote_user"
      " administers account (the email re-checked ASCII-only)" },
    /* Every account holding the email, not "the preferred" one: which
     * account an email belongs to is decided in store.c (a domain's
     * claimant first, else the only holder), never by an order one
     * account's settings can change.  51 rows: one beyond the 50 read
     * tells that there were more.  The email comes back so that store.c
     * re-checks it ASCII-only (SQL's lower() may fold U+212A onto k). */
    { BTSSO_Q_ACCOUNT_BY_EMAIL,
      "SELECT DISTINCT account, email FROM users"
      " WHERE lower(trim(email)) = lower(trim(%s))"
      " ORDER BY account LIMIT 51",
      "email -> rows (account, email): every account holding the email" },

    /* ---- accounts ---- */
    { "btsso_account_insert",
      "INSERT INTO accounts (account, name, sso_enabled, allow_password,"
      " version, created, updated)"
      " VALUES (%s, %s, 0, 0, 1, CAST(%s AS BIGINT), CAST(%s AS BIGINT))",
      "account, name, created, updated" },
    { "btsso_account_get",
      "SELECT account, name, sso_enabled, allow_password, version, created,"
      " updated, sessions_epoch, revoke_seq FROM accounts WHERE account = %s",
      "account" },
    { "btsso_account_list",
      "SELECT account, name, sso_enabled, allow_password, version, created,"
      " updated, sessions_epoch, revoke_seq FROM accounts ORDER BY account",
      "" },
    { "btsso_account_bump",
      "UPDATE accounts SET version = version + 1,"
      " updated = CAST(%s AS BIGINT) WHERE account = %s",
      "updated, account" },
    { "btsso_account_bump_if",
      "UPDATE accounts SET version = version + 1,"
      " updated = CAST(%s AS BIGINT)"
      " WHERE account = %s AND version = CAST(%s AS BIGINT)",
      "updated, account, expected version" },
    { "btsso_account_enable",
      "UPDATE accounts SET sso_enabled = CAST(%s AS INTEGER),"
      " allow_password = CAST(%s AS INTEGER) WHERE account = %s",
      "sso_enabled, allow_password, account" },

    { "btsso_account_sessions_end",
      "UPDATE accounts SET sessions_epoch = sessions_epoch + 1"
      " WHERE account = %s",
      "account" },
    { "btsso_account_revoke_seq",
      "UPDATE accounts SET revoke_seq = revoke_seq + 1 WHERE account = %s",
      "account" },

    /* ---- session revocations of single users ---- */
    { "btsso_revocation_delete",
      "DELETE FROM session_revocations WHERE account = %s AND email = %s",
      "account, lowercased trimmed email" },
    { "btsso_revocation_insert",
      "INSERT INTO session_revocations (account, email, seq, revoked)"
      " VALUES (%s, %s, CAST(%s AS BIGINT), CAST(%s AS BIGINT))",
      "account, lowercased trimmed email, seq, revoked" },
    { "btsso_revocation_recent",
      "SELECT email, seq, revoked FROM session_revocations"
      " WHERE account = %s AND revoked >= CAST(%s AS BIGINT)"
      " ORDER BY seq DESC LIMIT CAST(%s AS INTEGER)",
      "account, unix time bound, limit" },
    { "btsso_revocation_get",
      "SELECT seq FROM session_revocations"
      " WHERE account = %s AND email = lower(trim(%s))",
      "account, email" },

    /* ---- users ---- */
    { "btsso_user_insert",
      "INSERT INTO users (account, extension, kind, email, is_admin)"
      " VALUES (%s, %s, %s, %s, CAST(%s AS INTEGER))",
      "account, extension, kind, email, is_admin" },
    { "btsso_user_exists",
      "SELECT extension FROM users WHERE account = %s AND extension = %s",
      "account, extension" },
    { "btsso_user_holders",
      "SELECT extension FROM users"
      " WHERE account = %s AND lower(trim(email)) = lower(trim(%s))"
      " ORDER BY extension",
      "account, email" },
    { "btsso_user_list",
      "SELECT account, extension, kind, email, is_admin FROM users"
      " WHERE account = %s ORDER BY extension",
      "account" },

    /* ---- domain claims ---- */
    { "btsso_domain_get",
      "SELECT domain, account, added FROM domains WHERE domain = %s",
      "domain" },
    { "btsso_domain_insert",
      "INSERT INTO domains (domain, account, added)"
      " VALUES (%s, %s, CAST(%s AS BIGINT))",
      "domain, account, added" },
    { "btsso_domain_delete",
      "DELETE FROM domains WHERE domain = %s AND account = %s",
      "domain, account" },
    { "btsso_domain_list",
      "SELECT domain, account, added FROM domains WHERE account = %s"
      " ORDER BY domain",
      "account" },

    /* ---- IdP ---- */
    { "btsso_idp_get",
      "SELECT account, entity_id, shared, metadata_xml,"
      " COALESCE(source_url, ''), COALESCE(email_attribute, ''),"
      " email_from_name_id, updated FROM idp WHERE account = %s",
      "account" },
    { "btsso_idp_others",
      "SELECT account, shared FROM idp"
      " WHERE entity_id = %s AND account <> %s ORDER BY account",
      "entity_id, account" },
    { "btsso_idp_insert",
      "INSERT INTO idp (account, entity_id, shared, metadata_xml, source_url,"
      " email_attribute, email_from_name_id, updated)"
      " VALUES (%s, %s, CAST(%s AS INTEGER), %s, %s, NULL, 0,"
      " CAST(%s AS BIGINT))",
      "account, entity_id, shared, metadata_xml, source_url, updated" },
    { "btsso_idp_update",
      "UPDATE idp SET entity_id = %s, shared = CAST(%s AS INTEGER),"
      " metadata_xml = %s, source_url = %s, updated = CAST(%s AS BIGINT)"
      " WHERE account = %s",
      "entity_id, shared, metadata_xml, source_url, updated, account" },
    { "btsso_idp_email",
      "UPDATE idp SET email_attribute = %s,"
      " email_from_name_id = CAST(%s AS INTEGER),"
      " updated = CAST(%s AS BIGINT) WHERE account = %s",
      "email_attribute, email_from_name_id, updated, account" },
    { "btsso_idp_by_issuer",
      "SELECT account FROM idp WHERE entity_id = %s AND shared = 0"
      " ORDER BY account",
      "entity_id" },
    { "btsso_idp_url_accounts",
      "SELECT account FROM idp"
      " WHERE source_url IS NOT NULL AND source_url <> '' ORDER BY account",
      "" },

    /* ---- certificates ---- */
    { "btsso_cert_insert",
      "INSERT INTO certificates (account, sha256, role, der, subject, issuer,"
      " not_before, not_after, source, added)"
      " VALUES (%s, %s, %s, %s, %s, %s, CAST(%s AS BIGINT),"
      " CAST(%s AS BIGINT), %s, CAST(%s AS BIGINT))",
      "account, sha256, role, der, subject, issuer, not_before, not_after,"
      " source, added" },
    { "btsso_cert_get",
      "SELECT role FROM certificates WHERE account = %s AND sha256 = %s",
      "account, sha256" },
    { "btsso_cert_list",
      "SELECT account, sha256, role, der, source, added FROM certificates"
      " WHERE account = %s"
      " ORDER BY CASE role WHEN 'primary' THEN 0 WHEN 'secondary' THEN 1"
      " ELSE 2 END, added, sha256",
      "account" },
    { "btsso_cert_clear_role",
      "UPDATE certificates SET role = 'none'"
      " WHERE account = %s AND role = %s",
      "account, role" },
    { "btsso_cert_set_role",
      "UPDATE certificates SET role = %s WHERE account = %s AND sha256 = %s",
      "role, account, sha256" },
    { "btsso_cert_delete",
      "DELETE FROM certificates WHERE account = %s AND sha256 = %s",
      "account, sha256" },
    { "btsso_cert_expiring",
      "SELECT account, sha256, role, der, source, added FROM certificates"
      " WHERE not_after < CAST(%s AS BIGINT)"
      " ORDER BY not_after, account, sha256",
      "unix time bound" },

    /* ---- audit ---- */
    { "btsso_audit_insert",
      "INSERT INTO audit (at, account, actor, action, detail)"
      " VALUES (CAST(%s AS BIGINT), %s, %s, %s, %s)",
      "at, account, actor, action, detail" },
    { "btsso_audit_list",
      "SELECT at, COALESCE(account, ''), actor, action, COALESCE(detail, '')"
      " FROM audit WHERE account = %s ORDER BY id DESC"
      " LIMIT CAST(%s AS INTEGER)",
      "account, limit" },
    { "btsso_audit_list_all",
      "SELECT at, COALESCE(account, ''), actor, action, COALESCE(detail, '')"
      " FROM audit ORDER BY id DESC LIMIT CAST(%s AS INTEGER)",
      "limit" },

    /* ---- audit: trail pages, the test-login rule of enabling ---- */
    { "btsso_audit_page",
      "SELECT id, at, actor, action, COALESCE(detail, '') FROM audit"
      " WHERE account = %s AND id < CAST(%s AS BIGINT)"
      " AND at >= CAST(%s AS BIGINT)"
      " ORDER BY id DESC LIMIT CAST(%s AS INTEGER)",
      "account, id bound, unix time bound, limit" },
    { "btsso_trust_changed",
      "UPDATE accounts SET trust_version = version WHERE account = %s",
      "account" },
    { "btsso_trust_get",
      "SELECT version, trust_version, tested_version, COALESCE(tested_at, 0),"
      " COALESCE(tested_by, ''), sso_enabled FROM accounts WHERE account = %s",
      "account" },
    { "btsso_trust_tested",
      "UPDATE accounts SET tested_version = CAST(%s AS BIGINT),"
      " tested_at = CAST(%s AS BIGINT), tested_by = %s"
      " WHERE account = %s AND trust_version <= CAST(%s AS BIGINT)",
      "settings version tested, at, email, account, settings version" },

    /* ---- refresh ---- */
    { "btsso_refresh_get",
      "SELECT account, next_due, failures, last_attempt, last_ok,"
      " COALESCE(last_error, ''), valid_until, COALESCE(signature, '')"
      " FROM idp_refresh WHERE account = %s",
      "account" },
    { "btsso_refresh_update",
      "UPDATE idp_refresh SET next_due = CAST(%s AS BIGINT),"
      " failures = CAST(%s AS INTEGER), last_attempt = CAST(%s AS BIGINT),"
      " last_ok = CAST(%s AS BIGINT), last_error = %s,"
      " valid_until = CAST(%s AS BIGINT), signature = %s WHERE account = %s",
      "next_due, failures, last_attempt, last_ok, last_error, valid_until,"
      " signature, account" },
    { "btsso_refresh_insert",
      "INSERT INTO idp_refresh (next_due, failures, last_attempt, last_ok,"
      " last_error, valid_until, signature, account)"
      " VALUES (CAST(%s AS BIGINT), CAST(%s AS INTEGER), CAST(%s AS BIGINT),"
      " CAST(%s AS BIGINT), %s, CAST(%s AS BIGINT), %s, %s)",
      "next_due, failures, last_attempt, last_ok, last_error, valid_until,"
      " signature, account" },
    { "btsso_refresh_unseeded",
      "SELECT i.account FROM idp i"
      " WHERE i.source_url IS NOT NULL AND i.source_url <> ''"
      " AND NOT EXISTS (SELECT 1 FROM idp_refresh r"
      "                 WHERE r.account = i.account) LIMIT 1",
      "" },
    { "btsso_refresh_seed",
      "INSERT INTO idp_refresh (account, next_due)"
      " SELECT i.account, 0 FROM idp i"
      " WHERE i.source_url IS NOT NULL AND i.source_url <> ''"
      " AND NOT EXISTS (SELECT 1 FROM idp_refresh r"
      "                 WHERE r.account = i.account)",
      "" },
    { "btsso_refresh_due",
      "SELECT r.account, r.next_due, r.failures, r.last_attempt, r.last_ok,"
      " COALESCE(r.last_error, ''), r.valid_until,"
      " COALESCE(r.signature, '')"
      " FROM idp_refresh r JOIN idp i ON i.account = r.account"
      " WHERE i.source_url IS NOT NULL AND i.source_url <> ''"
      " AND r.next_due <= CAST(%s AS BIGINT)"
      " ORDER BY r.next_due, r.account LIMIT CAST(%s AS INTEGER)",
      "now, limit" },
    { "btsso_refresh_claim",
      "UPDATE idp_refresh SET next_due = CAST(%s AS BIGINT),"
      " last_attempt = CAST(%s AS BIGINT)"
      " WHERE account = %s AND next_due = CAST(%s AS BIGINT)",
      "until, now, account, seen" },
    { "btsso_idp_refresh_xml",
      "UPDATE idp SET metadata_xml = %s, updated = CAST(%s AS BIGINT)"
      " WHERE account = %s AND entity_id = %s",
      "metadata_xml, updated, account, entity_id" },

    /* ---- per-account policy (policy) ---- */
    { "btsso_policy_get",
      "SELECT authn_context, request_authn_context, force_authn,"
      " session_max_age, updated FROM account_policy WHERE account = %s",
      "account" },
    { "btsso_policy_delete",
      "DELETE FROM account_policy WHERE account = %s",
      "account" },
    { "btsso_policy_insert",
      "INSERT INTO account_policy (account, authn_context,"
      " request_authn_context, force_authn, session_max_age, updated)"
      " VALUES (%s, %s, CAST(%s AS INTEGER), CAST(%s AS INTEGER),"
      " CAST(%s AS BIGINT), CAST(%s AS BIGINT))",
      "account, space-separated class URIs, request_authn_context,"
      " force_authn, session_max_age seconds, updated" },

    /* ---- signins: sign-in records (refusals, last success, counts) ---- */
    /* httpd's writes of sign-in rows insert nothing for an account
     * deleted meanwhile (httpd's SQLite connections do not enforce the
     * foreign keys, and on the other databases the insert would fail) */
    { "btsso_signin_insert",
      "INSERT INTO sign_ins (account, reference, at, result, email,"
      " name_id, idp, detail)"
      " SELECT account, %s, CAST(%s AS BIGINT), %s, %s, %s, %s, %s"
      " FROM accounts WHERE account = %s",
      "reference, at, result, email, name_id, idp, detail, account" },
    /* the newest refusal beyond the bound: it and every older one go */
    { "btsso_signin_prune_mark",
      "SELECT at, reference FROM sign_ins"
      " WHERE account = %s AND result <> 'ok'"
      " ORDER BY at DESC, reference DESC"
      " LIMIT 1 OFFSET CAST(%s AS INTEGER)",
      "account, how many refusals to keep" },
    { "btsso_signin_prune",
      "DELETE FROM sign_ins WHERE account = %s AND result <> 'ok'"
      " AND (at < CAST(%s AS BIGINT)"
      "      OR (at = CAST(%s AS BIGINT) AND reference <= %s))",
      "account, at, at, reference of the newest row to drop" },
    /* Newest first; '' and '0' switch a filter off; the cursor is the
     * (at, reference) of the last row of the previous page. */
    { "btsso_signin_list",
      "SELECT reference, at, result, COALESCE(email, ''),"
      " COALESCE(name_id, ''), COALESCE(idp, ''), COALESCE(detail, '')"
      " FROM sign_ins WHERE account = %s"
      " AND (%s = '' OR reference = %s)"
      " AND (%s = '0' OR result <> 'ok')"
      " AND (at < CAST(%s AS BIGINT)"
      "      OR (at = CAST(%s AS BIGINT) AND reference < %s))"
      " ORDER BY at DESC, reference DESC LIMIT CAST(%s AS INTEGER)",
      "account, reference, reference, failed only (0/1), before at,"
      " before at, before reference, limit" },
    { "btsso_signin_day_add",
      "UPDATE sign_in_days SET ok = ok + CAST(%s AS BIGINT),"
      " failed = failed + CAST(%s AS BIGINT),"
      " unrecorded = unrecorded + CAST(%s AS BIGINT)"
      " WHERE account = %s AND day = %s",
      "ok, failed, unrecorded, account, day" },
    { "btsso_signin_day_insert",
      "INSERT INTO sign_in_days (account, day, ok, failed, unrecorded)"
      " SELECT account, %s, CAST(%s AS BIGINT), CAST(%s AS BIGINT),"
      " CAST(%s AS BIGINT) FROM accounts WHERE account = %s",
      "day, ok, failed, unrecorded, account" },
    { "btsso_signin_days",
      "SELECT day, ok, failed, unrecorded FROM sign_in_days"
      " WHERE account = %s ORDER BY day DESC LIMIT CAST(%s AS INTEGER)",
      "account, days" },
    /* the last success: one row per account (sign_ins_last_ok), the
     * newest of the nodes' wins */
    { "btsso_signin_ok_drop",
      "DELETE FROM sign_ins WHERE account = %s AND result = 'ok'"
      " AND at <= CAST(%s AS BIGINT)",
      "account, at" },
    { "btsso_signin_ok_insert",
      "INSERT INTO sign_ins (account, reference, at, result, email,"
      " name_id, idp, detail)"
      " SELECT account, %s, CAST(%s AS BIGINT), 'ok', %s, %s, %s, NULL"
      " FROM accounts WHERE account = %s AND NOT EXISTS"
      " (SELECT 1 FROM sign_ins WHERE account = %s AND result = 'ok')",
      "reference, at, email, name_id, idp, account, account" },
    { "btsso_signin_last_ok",
      "SELECT reference, at, result, COALESCE(email, ''),"
      " COALESCE(name_id, ''), COALESCE(idp, ''), COALESCE(detail, '')"
      " FROM sign_ins WHERE account = %s AND result = 'ok'",
      "account" },
    { "btsso_signin_cert_verified",
      "UPDATE certificates SET last_verified = CAST(%s AS BIGINT)"
      " WHERE account = %s AND sha256 = %s"
      " AND last_verified < CAST(%s AS BIGINT)",
      "at, account, sha256, at" },
    { "btsso_signin_cert_times",
      "SELECT sha256, last_verified FROM certificates WHERE account = %s",
      "account" },

    { NULL, NULL, NULL }
};

/* A dialect's own text for a statement the rewrite cannot produce:
 * { label, dialect, sql }.  None is needed yet. */
typedef struct dialect_stmt_t {
    const char *label;
    const char *dialect;
    const char *sql;
} dialect_stmt_t;

static const dialect_stmt_t dialect_statements[] = {
    /* LIMIT/OFFSET take a plain parameter in MySQL, no CAST */
    { "btsso_signin_prune_mark", "mysql",
      "SELECT at, reference FROM sign_ins"
      " WHERE account = %s AND result <> 'ok'"
      " ORDER BY at DESC, reference DESC LIMIT 1 OFFSET %s" },
    { NULL, NULL, NULL }
};

const btsso_stmt_def_t *btsso_store_statements(void)
{
    return store_statements;
}

int btsso_store_driver_supported(const char *driver)
{
    return driver != NULL && (strcmp(driver, "sqlite3") == 0
                              || strcmp(driver, "pgsql") == 0
                              || strcmp(driver, "mysql") == 0);
}

/* The value of key in APR DBD mysql params, parsed as apr_dbd_mysql does
 * (key=value pairs, values end at " \r\n\t;|,", the last one wins). */
static const char *mysql_param(const char *params, const char *key,
                               apr_size_t *vlen)
{
    static const char delims[] = " \r\n\t;|,";
    const char *eq, *k, *v, *found = NULL;
    apr_size_t klen = strlen(key);

    for (eq = strchr(params, '='); eq != NULL; eq = strchr(eq + 1, '=')) {
        for (k = eq; k > params && k[-1] == ' '; k--) {
        }
        if ((apr_size_t)(k - params) < klen
            || strncasecmp(k - klen, key, klen) != 0
            || (k - klen > params && apr_isalpha(k[-(int)klen - 1]))) {
            continue;
        }
        for (v = eq + 1; *v == ' '; v++) {
        }
        found = v;
        *vlen = strcspn(v, delims);
    }
    return found;
}

const char *btsso_store_pool_params_problem(const char *driver,
                                            const char *params)
{
    const char *v;
    apr_size_t n = 0;

    if (driver == NULL || strcmp(driver, "mysql") != 0 || params == NULL) {
        return NULL;
    }
    v = mysql_param(params, "reconnect", &n);
    if (v == NULL || n == 0 || atoi(v) != 0) {
        return "DBDParams for DBDriver mysql needs reconnect=0: with the "
               "driver's default (reconnect=1) a connection the database "
               "server dropped comes back without the prepared statements "
               "and every request on it fails; with reconnect=0 mod_dbd "
               "replaces it";
    }
    v = mysql_param(params, "flags", &n);
    if (v == NULL || n != strlen("CLIENT_FOUND_ROWS")
        || strncmp(v, "CLIENT_FOUND_ROWS", n) != 0) {
        return "DBDParams for DBDriver mysql needs flags=CLIENT_FOUND_ROWS: "
               "without it MySQL counts an UPDATE that leaves a row as it "
               "was as matching nothing, and the store would then insert "
               "that row a second time";
    }
    return NULL;
}

/* Case-insensitive prefix match of what at s. */
static int at_word(const char *s, const char *what)
{
    return strncasecmp(s, what, strlen(what)) == 0;
}

/* "LIMIT CAST(%s AS INTEGER)" at s: the length of the whole match. */
static apr_size_t limit_cast_len(const char *s)
{
    static const char *const forms[] = {
        "LIMIT CAST(%s AS INTEGER)", "LIMIT CAST(%s AS BIGINT)", NULL
    };
    int i;

    for (i = 0; forms[i] != NULL; i++) {
        if (at_word(s, forms[i])) {
            return strlen(forms[i]);
        }
    }
    return 0;
}

const char *btsso_store_rewrite_sql(apr_pool_t *p, const char *dialect,
                                    const char *sql)
{
    apr_size_t n;
    char *out, *o;
    const char *c;

    if (sql == NULL || dialect == NULL || strcmp(dialect, "mysql") != 0) {
        return sql;
    }
    /* the output is never longer than the input */
    out = o = apr_palloc(p, strlen(sql) + 1);
    for (c = sql; *c != '\0';) {
        if ((n = limit_cast_len(c)) != 0) {
            memcpy(o, "LIMIT %s", 8);
            o += 8;
            c += n;
        }
        else if (at_word(c, " AS BIGINT)") || at_word(c, " AS INTEGER)")) {
            memcpy(o, " AS SIGNED)", 11);
            o += 11;
            c += at_word(c, " AS BIGINT)") ? 11 : 12;
        }
        else {
            *o++ = *c++;
        }
    }
    *o = '\0';
    return out;
}

const char *btsso_store_stmt_sql(apr_pool_t *p, const char *dialect,
                                 const btsso_stmt_def_t *d)
{
    const dialect_stmt_t *x;

    if (dialect != NULL) {
        for (x = dialect_statements; x->label != NULL; x++) {
            if (strcmp(x->label, d->label) == 0
                && strcmp(x->dialect, dialect) == 0) {
                return x->sql;
            }
        }
    }
    return btsso_store_rewrite_sql(p, dialect, d->sql);
}
