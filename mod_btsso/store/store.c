/*
 * store.c - the account store over APR DBD (SQLite, PostgreSQL and
 * MySQL/MariaDB).
 *
 * Every change runs in one transaction that first bumps the account's
 * version (taking the row's write lock, and checking expected_version in
 * the same UPDATE, so two admins cannot both win), then does its work and
 * writes an audit row.  Any error rolls the whole transaction back.  Result
 * sets are always read to their end, which both drivers need to free the
 * connection for the next statement.
 *
 * The UPDATE comes first, not a SELECT ... FOR UPDATE: an UPDATE takes the
 * row's write lock and reads the latest committed row in every dialect and
 * isolation level (SQLite's one writer, PostgreSQL's READ COMMITTED, InnoDB
 * whatever the server's default), so no dialect needs a locking read.  On
 * MySQL/MariaDB each connection is set to READ COMMITTED (mysql_session_sql
 * below) so that what the change reads after the lock is what is committed
 * now, as on PostgreSQL, not a REPEATABLE READ snapshot.
 *
 * Nothing here logs: errors carry apr_dbd_error() text in their detail.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* dladdr */
#endif
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>

#include <apr_strings.h>
#include <apr_lib.h>
#include <apr_time.h>
#include <sqlite3.h>

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
    const char *const *mysql;   /* NULL: not ported yet; init refuses */
} schema_step_t;

/* MySQL/MariaDB (the mysql arrays), for whoever ports a step:
 *  - every table ends with MYSQL_TABLE: InnoDB, utf8mb4 with the binary
 *    collation utf8mb4_bin, so that comparisons are exact code point
 *    comparisons as on SQLite and PostgreSQL (a _ci collation would make
 *    'e' equal 'é' and 'K' equal 'k' without anyone asking);
 *  - indexed text is VARCHAR(n) with 4 * (sum of n) <= 3072 bytes per
 *    index (InnoDB's key limit), else an index prefix col(n); TEXT cannot
 *    be indexed; long documents are MEDIUMTEXT (TEXT holds 64 KiB);
 *  - indexes go inside CREATE TABLE (KEY/UNIQUE KEY), foreign keys as
 *    table constraints (an inline column REFERENCES is ignored by MySQL);
 *  - there are no partial or expression indexes: index a STORED generated
 *    column instead (see certificates.role_unique and users.email_key);
 *  - auto numbers are BIGINT AUTO_INCREMENT; flags stay INTEGER 0/1;
 *  - triggers are BEGIN ... END bodies raising SIGNAL SQLSTATE '45000';
 *  - MySQL commits each DDL statement on its own, so a step is not
 *    atomic there: keep steps to few statements, one per table. */
#define MYSQL_TABLE " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

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

/* Same tables as above.  users.email_key (lower(trim(email)), stored) is
 * what the indexes and the trigger compare; certificates.role_unique is
 * the role unless 'none' (NULL, which a unique key does not compare), the
 * partial unique index of the other dialects. */
static const char *const v1_mysql[] = {
    "CREATE TABLE accounts ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " sso_enabled INTEGER NOT NULL DEFAULT 0 CHECK (sso_enabled IN (0, 1)),"
    " allow_password INTEGER NOT NULL DEFAULT 0"
    "  CHECK (allow_password IN (0, 1)),"
    " version BIGINT NOT NULL DEFAULT 1,"
    " created BIGINT NOT NULL,"
    " updated BIGINT NOT NULL)" MYSQL_TABLE,

    "CREATE TABLE idp ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY,"
    " entity_id VARCHAR(1024) NOT NULL,"
    " shared INTEGER NOT NULL DEFAULT 0 CHECK (shared IN (0, 1)),"
    " metadata_xml MEDIUMTEXT NOT NULL,"
    " source_url TEXT,"
    " email_attribute TEXT,"
    " email_from_name_id INTEGER NOT NULL DEFAULT 0"
    "  CHECK (email_from_name_id IN (0, 1)),"
    " updated BIGINT NOT NULL,"
    " KEY idp_entity_id (entity_id(512)),"
    " FOREIGN KEY (account) REFERENCES accounts (account)"
    "  ON DELETE CASCADE)" MYSQL_TABLE,

    "CREATE TABLE certificates ("
    " account VARCHAR(64) NOT NULL,"
    " sha256 CHAR(64) NOT NULL,"
    " role VARCHAR(16) NOT NULL DEFAULT 'none'"
    "  CHECK (role IN ('primary', 'secondary', 'none')),"
    " role_unique VARCHAR(16) AS (NULLIF(role, 'none')) STORED,"
    " der TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " issuer TEXT NOT NULL,"
    " not_before BIGINT NOT NULL,"
    " not_after BIGINT NOT NULL,"
    " source VARCHAR(16) NOT NULL,"
    " added BIGINT NOT NULL,"
    " PRIMARY KEY (account, sha256),"
    " UNIQUE KEY certificates_one_role (account, role_unique),"
    " KEY certificates_not_after (not_after),"
    " FOREIGN KEY (account) REFERENCES accounts (account)"
    "  ON DELETE CASCADE)" MYSQL_TABLE,

    "CREATE TABLE users ("
    " account VARCHAR(64) NOT NULL,"
    " extension VARCHAR(64) NOT NULL,"
    " kind VARCHAR(16) NOT NULL DEFAULT 'user'"
    "  CHECK (kind IN ('user', 'call_queue')),"
    " email VARCHAR(320) NOT NULL,"
    " email_key VARCHAR(320) AS (lower(trim(email))) STORED,"
    " is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),"
    " PRIMARY KEY (account, extension),"
    " KEY users_email (account, email_key),"
    " KEY users_email_any (email_key),"
    " FOREIGN KEY (account) REFERENCES accounts (account)"
    "  ON DELETE CASCADE)" MYSQL_TABLE,

    "CREATE TRIGGER users_unique_email_insert BEFORE INSERT ON users"
    " FOR EACH ROW"
    " BEGIN"
    "  IF EXISTS (SELECT 1 FROM accounts a"
    "             WHERE a.account = NEW.account AND a.sso_enabled = 1)"
    "   AND EXISTS (SELECT 1 FROM users u WHERE u.account = NEW.account"
    "               AND u.email_key = lower(trim(NEW.email))) THEN"
    "   SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'duplicate_email: the"
    " email is already used in this SSO-enabled account';"
    "  END IF;"
    " END",
    /* MySQL has no UPDATE OF: the check runs when the account or the
     * email actually changes (NULL-safe <=>, byte for byte). */
    "CREATE TRIGGER users_unique_email_update BEFORE UPDATE ON users"
    " FOR EACH ROW"
    " BEGIN"
    "  IF NOT (NEW.account <=> OLD.account AND NEW.email <=> OLD.email)"
    "   AND EXISTS (SELECT 1 FROM accounts a"
    "               WHERE a.account = NEW.account AND a.sso_enabled = 1)"
    "   AND EXISTS (SELECT 1 FROM users u WHERE u.account = NEW.account"
    "               AND u.email_key = lower(trim(NEW.email))"
    "               AND NOT (u.account = OLD.account"
    "                        AND u.extension = OLD.extension)) THEN"
    "   SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'duplicate_email: the"
    " email is already used in this SSO-enabled account';"
    "  END IF;"
    " END",

    "CREATE TABLE audit ("
    " id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " at BIGINT NOT NULL,"
    " account VARCHAR(64),"
    " actor TEXT NOT NULL,"
    " action VARCHAR(64) NOT NULL,"
    " detail MEDIUMTEXT,"
    " KEY audit_account (account, id))" MYSQL_TABLE,
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

static const char *const v2_mysql[] = {
    "CREATE TABLE domains ("
    " domain VARCHAR(253) NOT NULL PRIMARY KEY,"
    " account VARCHAR(64) NOT NULL,"
    " added BIGINT NOT NULL,"
    " KEY domains_account (account, domain),"
    " FOREIGN KEY (account) REFERENCES accounts (account)"
    "  ON DELETE CASCADE)" MYSQL_TABLE,
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

/* The two columns in one ALTER (one implicit commit, both or neither). */
static const char *const v3_mysql[] = {
    "ALTER TABLE accounts"
    " ADD COLUMN sessions_epoch BIGINT NOT NULL DEFAULT 1,"
    " ADD COLUMN revoke_seq BIGINT NOT NULL DEFAULT 0",
    "CREATE TABLE session_revocations ("
    " account VARCHAR(64) NOT NULL,"
    " email VARCHAR(254) NOT NULL,"
    " seq BIGINT NOT NULL,"
    " revoked BIGINT NOT NULL,"
    " PRIMARY KEY (account, email),"
    " KEY session_revocations_seq (account, seq),"
    " FOREIGN KEY (account) REFERENCES accounts (account)"
    "  ON DELETE CASCADE)" MYSQL_TABLE,
    NULL
};

/* ---- version 4 ---------------------------------------------------------- */

/* Sign-in records (SPEC "Enforcement"): every refusal of a sign-in as one
 * row (bounded per account: the module prunes the oldest beyond its
 * bound, and rate-limits the rows it writes), the last success of each
 * account as the one row whose result is 'ok', counts per account and UTC
 * day ('YYYY-MM-DD'; unrecorded: refusals counted but given no row, by
 * the rate limit), and per certificate the time it last verified a
 * login.  reference is the code the refusal page showed (such as "K7QX-M2PA"). */
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

/* MySQL has no partial index: ok_account (the account on its 'ok' row,
 * NULL on every refusal) carries the one-success-per-account rule. */
static const char *const v4_mysql[] = {
    "CREATE TABLE sign_ins ("
    " account VARCHAR(64) NOT NULL,"
    " reference VARCHAR(16) NOT NULL,"
    " at BIGINT NOT NULL,"
    " result VARCHAR(64) NOT NULL,"
    " email VARCHAR(254),"
    " name_id TEXT,"
    " idp TEXT,"
    " detail TEXT,"
    " ok_account VARCHAR(64) AS"
    "  (CASE WHEN result = 'ok' THEN account END) STORED,"
    " PRIMARY KEY (account, reference),"
    " KEY sign_ins_at (account, at, reference),"
    " UNIQUE KEY sign_ins_last_ok (ok_account),"
    " FOREIGN KEY (account) REFERENCES accounts (account)"
    "  ON DELETE CASCADE)" MYSQL_TABLE,
    "CREATE TABLE sign_in_days ("
    " account VARCHAR(64) NOT NULL,"
    " day VARCHAR(10) NOT NULL,"
    " ok BIGINT NOT NULL DEFAULT 0,"
    " failed BIGINT NOT NULL DEFAULT 0,"
    " unrecorded BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (account, day),"
    " FOREIGN KEY (account) REFERENCES accounts (account)"
    "  ON DELETE CASCADE)" MYSQL_TABLE,
    "ALTER TABLE certificates ADD COLUMN last_verified BIGINT NOT NULL"
    " DEFAULT 0",
    NULL
};

/* ---- version 5 (audit) -------------------------------------------------- */

/* Enabling SSO after a passing test (SPEC "PUT enabled", 409 untested).
 * trust_version is the account version of the last change to what decides
 * who may sign in (IdP, its certificates, the email mapping); a test login
 * made with the settings of version V counts while V >= trust_version.
 * tested_version/at/by: the last such test whose email maps to an admin. */
static const char *const v5_sqlite3[] = {
    "ALTER TABLE accounts ADD COLUMN trust_version BIGINT NOT NULL"
    " DEFAULT 0",
    "ALTER TABLE accounts ADD COLUMN tested_version BIGINT NOT NULL"
    " DEFAULT 0",
    "ALTER TABLE accounts ADD COLUMN tested_at BIGINT",
    "ALTER TABLE accounts ADD COLUMN tested_by VARCHAR(254)",
    NULL
};

static const char *const v5_pgsql[] = {
    "ALTER TABLE accounts ADD COLUMN trust_version BIGINT NOT NULL"
    " DEFAULT 0",
    "ALTER TABLE accounts ADD COLUMN tested_version BIGINT NOT NULL"
    " DEFAULT 0",
    "ALTER TABLE accounts ADD COLUMN tested_at BIGINT",
    "ALTER TABLE accounts ADD COLUMN tested_by VARCHAR(254)",
    NULL
};

static const char *const v5_mysql[] = {
    "ALTER TABLE accounts"
    " ADD COLUMN trust_version BIGINT NOT NULL DEFAULT 0,"
    " ADD COLUMN tested_version BIGINT NOT NULL DEFAULT 0,"
    " ADD COLUMN tested_at BIGINT,"
    " ADD COLUMN tested_by VARCHAR(254)",
    NULL
};

/* ---- version 6 (policy) ------------------------------------------------ */

/* Per-account policy (PUT <account>/policy): no row, or a default field,
 * is the server-wide behaviour.  authn_context holds the required
 * AuthnContextClassRef URIs separated by single spaces (URIs hold none),
 * '' for any class; session_max_age is seconds, 0 for BTSSOSessionMaxAge.
 * No DEFAULT on the TEXT column (MySQL refuses one there). */
static const char *const v6_sqlite3[] = {
    "CREATE TABLE account_policy ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " authn_context TEXT NOT NULL,"
    " request_authn_context INTEGER NOT NULL DEFAULT 0"
    "  CHECK (request_authn_context IN (0, 1)),"
    " force_authn INTEGER NOT NULL DEFAULT 0 CHECK (force_authn IN (0, 1)),"
    " session_max_age BIGINT NOT NULL DEFAULT 0"
    "  CHECK (session_max_age >= 0),"
    " updated BIGINT NOT NULL)",
    NULL
};

static const char *const v6_pgsql[] = {
    "CREATE TABLE account_policy ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " authn_context TEXT NOT NULL,"
    " request_authn_context INTEGER NOT NULL DEFAULT 0"
    "  CHECK (request_authn_context IN (0, 1)),"
    " force_authn INTEGER NOT NULL DEFAULT 0 CHECK (force_authn IN (0, 1)),"
    " session_max_age BIGINT NOT NULL DEFAULT 0"
    "  CHECK (session_max_age >= 0),"
    " updated BIGINT NOT NULL)",
    NULL
};

static const char *const v6_mysql[] = {
    "CREATE TABLE account_policy ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY,"
    " authn_context TEXT NOT NULL,"
    " request_authn_context INTEGER NOT NULL DEFAULT 0"
    "  CHECK (request_authn_context IN (0, 1)),"
    " force_authn INTEGER NOT NULL DEFAULT 0 CHECK (force_authn IN (0, 1)),"
    " session_max_age BIGINT NOT NULL DEFAULT 0"
    "  CHECK (session_max_age >= 0),"
    " updated BIGINT NOT NULL,"
    " FOREIGN KEY (account) REFERENCES accounts (account)"
    "  ON DELETE CASCADE)" MYSQL_TABLE,
    NULL
};

/* ---- version 7 (refresh) -------------------------------------------------- */

/* The schedule of the metadata refresh (SPEC "Metadata refresh"), one row
 * per account whose metadata came from a URL: when it is due next, how
 * many fetches failed in a row (the back-off), when it last worked, what
 * went wrong last, and the validUntil and signature state of the copy in
 * force.  Kept in the store, not in a process, so that a restart or a
 * second node does not fetch everything again at once; a process claims
 * a due row by moving next_due with a compare-and-set UPDATE. */
static const char *const v7_sqlite3[] = {
    "CREATE TABLE idp_refresh ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " next_due BIGINT NOT NULL DEFAULT 0,"
    " failures INTEGER NOT NULL DEFAULT 0,"
    " last_attempt BIGINT NOT NULL DEFAULT 0,"
    " last_ok BIGINT NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " valid_until BIGINT NOT NULL DEFAULT 0,"
    " signature VARCHAR(16))",
    "CREATE INDEX idp_refresh_due ON idp_refresh (next_due)",
    NULL
};

static const char *const v7_pgsql[] = {
    "CREATE TABLE idp_refresh ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY"
    "  REFERENCES accounts (account) ON DELETE CASCADE,"
    " next_due BIGINT NOT NULL DEFAULT 0,"
    " failures INTEGER NOT NULL DEFAULT 0,"
    " last_attempt BIGINT NOT NULL DEFAULT 0,"
    " last_ok BIGINT NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " valid_until BIGINT NOT NULL DEFAULT 0,"
    " signature VARCHAR(16))",
    "CREATE INDEX idp_refresh_due ON idp_refresh (next_due)",
    NULL
};

/* MySQL: the same table, its index inside CREATE TABLE. */
static const char *const v7_mysql[] = {
    "CREATE TABLE idp_refresh ("
    " account VARCHAR(64) NOT NULL PRIMARY KEY,"
    " next_due BIGINT NOT NULL DEFAULT 0,"
    " failures INTEGER NOT NULL DEFAULT 0,"
    " last_attempt BIGINT NOT NULL DEFAULT 0,"
    " last_ok BIGINT NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " valid_until BIGINT NOT NULL DEFAULT 0,"
    " signature VARCHAR(16),"
    " KEY idp_refresh_due (next_due),"
    " FOREIGN KEY (account) REFERENCES accounts (account)"
    "  ON DELETE CASCADE)" MYSQL_TABLE,
    NULL
};

/* v8: the users' email index also holds the extension.  The user query
 * (BTSSOUserQuery's default) and the holders' query order by extension:
 * without it, SQLite preferred the primary key (account, extension),
 * which gives that order, and read every user of the account at every
 * login -- 24,000 users made a login take 70 ms.  With the extension in
 * the email index, that index both finds the email and gives the order. */
static const char *const v8_sqlite3[] = {
    "DROP INDEX users_email",
    "CREATE INDEX users_email ON users (account, lower(trim(email)),"
    " extension)",
    NULL
};

static const char *const v8_pgsql[] = {
    "DROP INDEX users_email",
    "CREATE INDEX users_email ON users (account, lower(trim(email)),"
    " extension)",
    NULL
};

/* MySQL: nothing to do.  InnoDB appends the primary key's columns not in
 * a secondary index to it, so users_email (account, email_key) already
 * ends with the extension. */
static const char *const v8_mysql[] = {
    NULL
};

/* A step without its mysql array still builds (the lead ports DDL at
 * merge): btsso_store_init and btssoctl schema then refuse MySQL with
 * "schema step N has no mysql form", and test_store's test_schema_dialects
 * fails until the array is written. */
static const schema_step_t schema_steps[] = {
    { 1, v1_sqlite3, v1_pgsql, v1_mysql },
    { 2, v2_sqlite3, v2_pgsql, v2_mysql },
    { 3, v3_sqlite3, v3_pgsql, v3_mysql },
    { 4, v4_sqlite3, v4_pgsql, v4_mysql },
    { 5, v5_sqlite3, v5_pgsql, v5_mysql },
    { 6, v6_sqlite3, v6_pgsql, v6_mysql },
    { 7, v7_sqlite3, v7_pgsql, v7_mysql },
    { 8, v8_sqlite3, v8_pgsql, v8_mysql },
};

#define SCHEMA_STEP_COUNT \
    ((int)(sizeof(schema_steps) / sizeof(schema_steps[0])))

/* ---- connection --------------------------------------------------------- */

#define SQLITE_BUSY_TIMEOUT_MS 10000
/* The page cache of one httpd SQLite connection, KiB (PRAGMA cache_size
 * takes it negated), set once per connection unless DBDInitSQL already
 * chose another size than SQLite's default (-2000, 2000 KiB).  SQLite's
 * default, times DBDMax connections per process, was most of a process's
 * memory after many distinct accounts had signed in (16 MiB of 31 with
 * DBDMax 8; docs/performance.md), and bought nothing: a login reads a few
 * rows by index, other accounts' pages are never read again soon, and
 * another process's write throws the cache away anyway. */
#define SQLITE_CACHE_KIB 256
#define SQLITE_DEFAULT_CACHE "-2000"
#define AUDIT_DEFAULT_LIMIT 100
#define SECONDS_PER_DAY 86400

struct btsso_store_t {
    apr_pool_t *pool;
    const apr_dbd_driver_t *driver;
    apr_dbd_t *handle;
    apr_hash_t *prepared;       /* label -> apr_dbd_prepared_t * */
    apr_hash_t *overrides;      /* label -> operator SQL (open only) */
    const char *dialect;
    int prepare_on_demand;      /* btsso_store_open: yes; wrap: mod_dbd did,
                                 * except on SQLite (btsso_store_prepares) */
    int in_txn;                 /* between txn_begin and txn_end */
    apr_pool_t *stmt_pool;      /* where statements prepared on demand live:
                                 * the connection's pool */
    int dbd_conn;               /* a mod_dbd connection (wrap) */
    int closed;
    int random;                 /* the `random` of apr_dbd_[p]select */
    int is_mysql;
    btsso_error_t *broken;      /* the connection could not be set up */
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

/*
 * A statement that failed because the connection is gone (the database was
 * restarted, stopped, or the network dropped) is the service being briefly
 * unavailable (503), not a fault of the module (500): the caller shows a
 * "try again" page.  apr_dbd_check_conn tells (PostgreSQL: it tries one
 * reconnect, as mod_dbd's own check does; what that loses is repaired by
 * statements_restored below).
 */
static btsso_error_t *unavailable(btsso_store_t *s, const char *what,
                                  const char *why)
{
    return btsso_error_make(s->pool, 503, "store_unavailable",
                            "The service is temporarily unavailable: the "
                            "account database cannot be reached; try again "
                            "in a moment.", "%s: connection lost or reset: "
                            "%s", what, one_line(s->pool, why));
}

static btsso_error_t *db_error(btsso_store_t *s, int rv, const char *what)
{
    /* copied: libpq's buffer changes with the next call on the handle */
    const char *msg = apr_pstrdup(s->pool, apr_dbd_error(s->driver,
                                                         s->handle, rv));

    /* A full filesystem (SQLITE_FULL; PostgreSQL's "could not extend
     * file": No space left on device): the change is rolled back whole,
     * which the administrator is told, and the operator sees why. */
    if ((strcmp(s->dialect, "sqlite3") == 0 && (rv & 0xff) == 13)
        || (msg != NULL && (strstr(msg, "disk is full") != NULL
                            || strstr(msg, "No space left on device")
                               != NULL))) {
        return btsso_error_make(s->pool, 507, "store_full",
                                "The account database is out of space; "
                                "nothing was changed.  Try again later, or "
                                "tell your service provider.",
                                "%s: %s (free space where the database "
                                "lives)", what, one_line(s->pool, msg));
    }
    if (apr_dbd_check_conn(s->driver, s->pool, s->handle) != APR_SUCCESS) {
        return unavailable(s, what, msg);
    }
    return btsso_error_make(s->pool, 500, "db_error",
                            "The account database failed.", "%s: %s", what,
                            one_line(s->pool, msg));
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

static const btsso_stmt_def_t *stmt_def(const char *label)
{
    const btsso_stmt_def_t *d;

    for (d = btsso_store_statements(); d->label != NULL; d++) {
        if (strcmp(d->label, label) == 0) {
            return d;
        }
    }
    return NULL;
}

static const char *default_sql(const char *label)
{
    const btsso_stmt_def_t *d = stmt_def(label);

    return d != NULL ? d->sql : NULL;
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

/* The key of label's statement in s->prepared; *sql: the operator's SQL
 * for it, if any (prepared on demand only). */
static const char *stmt_key(btsso_store_t *s, const char *label,
                            const char **sql)
{
    /* operator SQL is the operator's dialect already: never rewritten */
    *sql = s->prepare_on_demand
           ? apr_hash_get(s->overrides, label, APR_HASH_KEY_STRING) : NULL;
    if (*sql != NULL && s->dbd_conn) {
        /* mod_dbd hands one connection to every virtual host with the same
         * DBDParams, whatever each one's BTSSO*Query: the statement is
         * known by its text too */
        return apr_pstrcat(s->pool, label, "\n", *sql, NULL);
    }
    return label;
}

static btsso_error_t *stmt_get(btsso_store_t *s, const char *label,
                               apr_dbd_prepared_t **out)
{
    const char *sql, *key;
    int rv;

    if (s->broken != NULL) {
        return s->broken;
    }
    key = stmt_key(s, label, &sql);
    *out = apr_hash_get(s->prepared, key, APR_HASH_KEY_STRING);
    if (*out != NULL) {
        return NULL;
    }
    if (!s->prepare_on_demand) {
        return btsso_error_make(s->pool, 500, "not_prepared",
                                "The account database is not set up.",
                                "statement %s was not prepared on this "
                                "connection", label);
    }
    if (sql == NULL && stmt_def(label) != NULL) {
        sql = btsso_store_stmt_sql(s->pool, s->dialect, stmt_def(label));
    }
    if (sql == NULL) {
        return btsso_error_make(s->pool, 500, "not_prepared",
                                "The account database is not set up.",
                                "no SQL for statement %s", label);
    }
    rv = apr_dbd_prepare(s->driver, s->stmt_pool, s->handle, sql, label,
                         out);
    if (rv != 0) {
        *out = NULL;
        if (s->dbd_conn) {
            /* httpd's connection: as when mod_dbd could not prepare (no
             * schema, a BTSSO*Query that does not prepare, a lock held
             * past the busy timeout), the store cannot serve */
            return btsso_error_make(s->pool, 503, "store_unavailable",
                                    "The service is temporarily unavailable: "
                                    "the account database cannot be "
                                    "reached; try again in a moment.",
                                    "prepare %s: %s (is the schema there: "
                                    "btssoctl init; does the BTSSO*Query "
                                    "prepare?)", label,
                                    one_line(s->pool,
                                             apr_dbd_error(s->driver,
                                                           s->handle, rv)));
        }
        return db_error(s, rv, apr_psprintf(s->pool, "prepare %s", label));
    }
    apr_hash_set(s->prepared, apr_pstrdup(s->stmt_pool, key),
                 APR_HASH_KEY_STRING, *out);
    return NULL;
}

/*
 * PostgreSQL keeps prepared statements in the server session.  When the
 * server restarts while a pooled connection sits idle, mod_dbd's check of
 * that connection (apr_dbd_check_conn: PQreset) reconnects it, and every
 * statement mod_dbd prepared is gone: each request on that connection
 * would fail "prepared statement ... does not exist" until httpd restarts.
 * After a failed statement: a connection that cannot be made good again
 * is the store being unavailable (-1); otherwise prepare the statement
 * again under its label, which works only when the server no longer had
 * it, and then prepare the whole set again (a failure for one that exists
 * is harmless) and say so (1).  0: a genuine error.  Inside a transaction
 * nothing is repaired (any error aborts it, and apr_dbd refuses every
 * later statement of it): the change fails, the next read repairs.
 */
static int statements_restored(btsso_store_t *s, const char *label)
{
    apr_dbd_prepared_t *stmt = NULL;
    apr_hash_index_t *hi;
    apr_pool_t *tmp;
    const char *sql;
    int ok;

    if (apr_dbd_check_conn(s->driver, s->pool, s->handle) != APR_SUCCESS) {
        return -1;
    }
    if (s->prepare_on_demand || strcmp(s->dialect, "pgsql") != 0
        || apr_pool_create(&tmp, s->pool) != APR_SUCCESS) {
        return 0;
    }
    sql = apr_hash_get(s->overrides, label, APR_HASH_KEY_STRING);
    ok = (sql != NULL || (sql = default_sql(label)) != NULL)
         && apr_dbd_prepare(s->driver, tmp, s->handle, sql, label,
                            &stmt) == 0;
    for (hi = ok ? apr_hash_first(tmp, s->prepared) : NULL; hi != NULL;
         hi = apr_hash_next(hi)) {
        const void *key;
        const char *other;

        apr_hash_this(hi, &key, NULL, NULL);
        other = apr_hash_get(s->overrides, key, APR_HASH_KEY_STRING);
        if (strcmp(key, label) != 0
            && (other != NULL || (other = default_sql(key)) != NULL)) {
            (void)apr_dbd_prepare(s->driver, tmp, s->handle, other, key,
                                  &stmt);
        }
    }
    apr_pool_destroy(tmp);
    return ok;
}

void btsso_store_set_sql(btsso_store_t *s, const char *label,
                         const char *sql)
{
    if (sql != NULL) {
        apr_hash_set(s->overrides, label, APR_HASH_KEY_STRING, sql);
    }
}

/* SQLite: statements expired by a schema change (below raw_select). */
static int sqlite_stmt_expired(btsso_store_t *s);
static void sqlite_schema_check(btsso_store_t *s);

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
    if (rv != 0 && sqlite_stmt_expired(s) && !s->in_txn
        && stmt_get(s, label, &stmt) == NULL) {
        rv = apr_dbd_pquery(s->driver, p, s->handle, &n, stmt, nargs, args);
    }
    if (rv != 0) {
        /* A change is not retried: one on a connection that broke may have
         * been applied before it did. */
        const char *why = apr_pstrdup(s->pool, apr_dbd_error(
            s->driver, s->handle, rv));
        int lost = statements_restored(s, label);

        if (lost != 0) {
            return unavailable(s, label, why);
        }
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
            const char *v = NULL;
            if (s->is_mysql) {
                /* apr_dbd_mysql fetches a prepared statement's column into
                 * a buffer of min(column size, fldsz) + 1 bytes and leaves
                 * a value that fills it unterminated; datum_get terminates
                 * it (a value that long is cut at fldsz - 1 bytes, see the
                 * operator guide's fldsz). */
                if (apr_dbd_datum_get(s->driver, row, i, APR_DBD_TYPE_STRING,
                                      &v) != APR_SUCCESS) {
                    v = NULL;   /* APR_ENOENT: SQL NULL */
                }
            }
            else {
                v = apr_dbd_get_entry(s->driver, row, i);
            }
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
     * instead of ending the row loop early as if the set were empty.  Not
     * on mysql, whose driver then returns no row for "the next row" (-1);
     * it reports errors here either way. */
    rv = apr_dbd_pselect(s->driver, p, s->handle, &res, stmt, s->random,
                         nargs, args);
    if (rv != 0 && sqlite_stmt_expired(s) && !s->in_txn
        && stmt_get(s, label, &stmt) == NULL) {
        res = NULL;
        rv = apr_dbd_pselect(s->driver, p, s->handle, &res, stmt, s->random,
                             nargs, args);
    }
    if (rv != 0) {
        const char *why = apr_pstrdup(s->pool, apr_dbd_error(
            s->driver, s->handle, rv));
        int lost = statements_restored(s, label);

        if (lost > 0) {         /* a read runs again on the repaired set */
            res = NULL;
            rv = apr_dbd_pselect(s->driver, p, s->handle, &res, stmt, 1,
                                 nargs, args);
        }
        if (lost < 0 || (lost > 0 && rv != 0)) {
            return unavailable(s, label, why);
        }
    }
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
    int rv = apr_dbd_select(s->driver, p, s->handle, &res, sql, s->random);

    if (rv != 0) {
        return db_error(s, rv, apr_psprintf(s->pool, "\"%s\"", sql));
    }
    return drain(s, p, res, rows);
}

/*
 * apr_dbd_sqlite3 prepares with the legacy sqlite3_prepare: once the
 * schema changes (btssoctl init upgrading it, or an operator's VACUUM,
 * CREATE INDEX or ANALYZE), a statement prepared before fails its next
 * run with SQLITE_SCHEMA and every later one with "not an error", for as
 * long as the connection lives, and httpd's connections live as long as
 * httpd.  The store's statements on SQLite are prepared on demand
 * (stmt_get): the connection's set remembers the schema version it was
 * prepared under, and a set prepared under another is forgotten, to be
 * prepared again as statements are used.  This is checked before each
 * transaction (any error fails a transaction whole), and after a failed
 * statement when SQLite says the schema changed; that run changed
 * nothing, so the caller runs it again outside a transaction.  Expired
 * statements' memory goes with the connection's pool.
 */
static const char sqlite_schema_mark[] = "btsso:sqlite-schema";

static apr_int64_t sqlite_schema_version(btsso_store_t *s)
{
    apr_array_header_t *rows;
    apr_pool_t *tmp;
    apr_int64_t v = -1;

    if (apr_pool_create(&tmp, s->pool) != APR_SUCCESS) {
        return -1;
    }
    if (raw_select(s, tmp, "PRAGMA schema_version", &rows) == NULL
        && rows->nelts == 1) {
        v = col_i64(&APR_ARRAY_IDX(rows, 0, db_row_t), 0);
    }
    apr_pool_destroy(tmp);
    return v;
}

/* Forget the store's statements of this connection (not the marks, nor
 * statements other modules had mod_dbd prepare on it). */
static void sqlite_statements_forget(btsso_store_t *s)
{
    apr_hash_index_t *hi;
    apr_pool_t *tmp;

    if (apr_pool_create(&tmp, s->pool) != APR_SUCCESS) {
        return;
    }
    for (hi = apr_hash_first(tmp, s->prepared); hi; hi = apr_hash_next(hi)) {
        const char *key = apr_hash_this_key(hi);
        const char *nl = strchr(key, '\n');
        const char *label = nl != NULL ? apr_pstrndup(tmp, key,
                                                      (apr_size_t)(nl - key))
                                       : key;

        if (stmt_def(label) != NULL) {
            apr_hash_set(s->prepared, key, APR_HASH_KEY_STRING, NULL);
        }
    }
    apr_pool_destroy(tmp);
}

static void sqlite_schema_check(btsso_store_t *s)
{
    apr_int64_t *had, now;

    if (!s->prepare_on_demand || strcmp(s->dialect, "sqlite3") != 0
        || (now = sqlite_schema_version(s)) < 0) {
        return;
    }
    had = apr_hash_get(s->prepared, sqlite_schema_mark, APR_HASH_KEY_STRING);
    if (had == NULL) {
        had = apr_palloc(s->stmt_pool, sizeof(*had));
        apr_hash_set(s->prepared, sqlite_schema_mark, APR_HASH_KEY_STRING,
                     had);
    }
    else if (*had == now) {
        return;
    }
    sqlite_statements_forget(s);
    *had = now;
}

/* After a failed statement: 1 when it failed because the schema changed
 * (its connection's statements are then forgotten). */
static int sqlite_stmt_expired(btsso_store_t *s)
{
    sqlite3 *db;

    if (!s->prepare_on_demand || strcmp(s->dialect, "sqlite3") != 0) {
        return 0;
    }
    db = apr_dbd_native_handle(s->driver, s->handle);
    if (db == NULL || sqlite3_errcode(db) != SQLITE_SCHEMA) {
        return 0;
    }
    sqlite_schema_check(s);
    return 1;
}

/*
 * On PostgreSQL the module sends BEGIN, COMMIT and ROLLBACK itself:
 * apr_dbd_pgsql allocates its transaction only when BEGIN succeeds and
 * then dereferences it in any case, so a BEGIN failing with a result (a
 * connection PostgreSQL has closed, or is terminating while it shuts
 * down) crashed the process (test_faults.py's PostgreSQL outage).  The
 * server itself refuses every statement after an error until ROLLBACK, as
 * the driver would; pg_txn marks such a transaction.
 */
static char pg_txn_mark;
#define PG_TXN ((apr_dbd_transaction_t *)(void *)&pg_txn_mark)

static btsso_error_t *txn_begin(btsso_store_t *s, apr_pool_t *p,
                                apr_dbd_transaction_t **txn)
{
    int rv, n = 0;

    *txn = NULL;
    if (strcmp(s->dialect, "pgsql") == 0) {
        rv = apr_dbd_query(s->driver, s->handle, &n, "BEGIN");
        if (rv != 0) {
            return db_error(s, rv, "begin transaction");
        }
        *txn = PG_TXN;
        s->in_txn = 1;
        return NULL;
    }
    sqlite_schema_check(s);
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
    s->in_txn = 1;
    return NULL;
}

/* Commit when err is NULL and rollback is 0; otherwise roll back and
 * hand err on. */
static btsso_error_t *txn_end(btsso_store_t *s, apr_pool_t *p,
                              apr_dbd_transaction_t *txn, btsso_error_t *err,
                              int rollback)
{
    int rv, n = 0;

    s->in_txn = 0;
    if (txn == PG_TXN) {
        rv = apr_dbd_query(s->driver, s->handle, &n,
                           err != NULL || rollback ? "ROLLBACK" : "COMMIT");
    }
    else {
        if (err != NULL || rollback) {
            apr_dbd_transaction_mode_set(s->driver, txn,
                                         APR_DBD_TRANSACTION_ROLLBACK);
        }
        rv = apr_dbd_transaction_end(s->driver, p, txn);
    }
    if (err != NULL) {
        return err;
    }
    if (rv != 0) {
        return db_error(s, rv, rollback ? "rollback" : "commit");
    }
    return NULL;
}

/* What every MySQL/MariaDB connection of the store runs first, whatever
 * the server's defaults: utf8mb4 on the wire (the schema's columns are
 * utf8mb4_bin), standard SQL for the statements (ANSI_QUOTES,
 * PIPES_AS_CONCAT), refusals instead of silent truncation
 * (STRICT_ALL_TABLES), READ COMMITTED, what the locking of bump_version
 * assumes (see the top of this file), and a login waiting for a writer's
 * row lock as long as on SQLite (SQLITE_BUSY_TIMEOUT_MS), not InnoDB's
 * 50 s. */
static const char *const mysql_session_sql[] = {
    "SET NAMES utf8mb4 COLLATE utf8mb4_bin",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION,ANSI_QUOTES,PIPES_AS_CONCAT'",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION innodb_lock_wait_timeout = 10",
    NULL
};

/*
 * Waiting for another writer on SQLite.  APR-util's sqlite3 driver holds
 * one mutex of its own, for the whole process, around every call into
 * SQLite (apr_dbd_mutex_lock, declared in apr_dbd_internal.h, which
 * Debian does not install), and SQLite sleeps in its busy handler inside
 * that call.  With "PRAGMA busy_timeout" a query waiting for a writer of
 * another process stalled every store query of this process until the
 * writer was done, and a query waiting for a writer of THIS process (a
 * transaction between two statements: the sign-in counts) waited the full
 * timeout, 10 s, for a writer that was itself waiting for the mutex.
 * This handler sleeps with the mutex released, as the driver does between
 * its own retries, and gives up after the same SQLITE_BUSY_TIMEOUT_MS.
 * Every path into SQLite that can call it holds the mutex.
 */
apr_status_t apr_dbd_mutex_lock(void);
apr_status_t apr_dbd_mutex_unlock(void);

static int sqlite_busy_wait(void *ctx, int count)
{
    /* 1, 2, 5, 10, 15, 20, 25 ms, then 50 ms a time: about SQLite's own */
    static const int steps[] = { 1, 2, 5, 10, 15, 20, 25 };
    const int n = (int)(sizeof(steps) / sizeof(steps[0]));
    int waited = 0, i, ms;

    for (i = 0; i < count && i < n; i++) {
        waited += steps[i];
    }
    if (count > n) {
        waited += (count - n) * 50;
    }
    if (waited >= SQLITE_BUSY_TIMEOUT_MS) {
        return 0;
    }
    ms = count < n ? steps[count] : 50;
    apr_dbd_mutex_unlock();
    apr_sleep(apr_time_from_msec(ms));
    apr_dbd_mutex_lock();
    return 1;
}

/* The busy handler on an SQLite connection of the store; NULL, or why
 * not. */
static btsso_error_t *sqlite_busy_setup(btsso_store_t *s, apr_pool_t *p)
{
    sqlite3 *db = apr_dbd_native_handle(s->driver, s->handle);

    if (db == NULL || sqlite3_busy_handler(db, sqlite_busy_wait, NULL)
                      != SQLITE_OK) {
        return btsso_error_make(p, 503, "store_unavailable",
                                "The account store is unavailable.",
                                "cannot set the SQLite busy handler");
    }
    return NULL;
}

/* Marks, in mod_dbd's per-connection statement hash, a connection that
 * ran mysql_session_sql (mod_dbd makes a new hash with a new connection). */
static const char mysql_session_mark[] = "btsso:mysql-session";
/* In the same hash: this SQLite connection has its busy timeout. */
static const char sqlite_busy_mark[] = "btsso:sqlite-busy";
static const char sqlite_cache_mark[] = "btsso:sqlite-cache";

/* Once per httpd SQLite connection: its page cache to SQLITE_CACHE_KIB
 * when nothing (DBDInitSQL) set another size.  Best effort: a failure
 * leaves SQLite's default and is tried again by the next request. */
static void sqlite_cache_setup(btsso_store_t *s, apr_pool_t *p,
                               apr_hash_t *prepared)
{
    apr_array_header_t *rows;
    const char *have;

    if (apr_hash_get(prepared, sqlite_cache_mark, APR_HASH_KEY_STRING)
        != NULL) {
        return;
    }
    if (raw_select(s, p, "PRAGMA cache_size", &rows) != NULL
        || rows->nelts != 1
        || APR_ARRAY_IDX(rows, 0, db_row_t).ncols != 1) {
        return;
    }
    have = APR_ARRAY_IDX(rows, 0, db_row_t).col[0];
    if (have != NULL && strcmp(have, SQLITE_DEFAULT_CACHE) == 0
        && raw_select(s, p, "PRAGMA cache_size = -"
                      APR_STRINGIFY(SQLITE_CACHE_KIB), &rows) != NULL) {
        return;
    }
    apr_hash_set(prepared, sqlite_cache_mark, APR_HASH_KEY_STRING,
                 sqlite_cache_mark);
}

static btsso_error_t *mysql_session_setup(btsso_store_t *s)
{
    const char *const *sql;
    btsso_error_t *err;

    for (sql = mysql_session_sql; *sql != NULL; sql++) {
        if ((err = raw_exec(s, *sql)) != NULL) {
            return btsso_error_make(s->pool, 500, "db_error",
                                    "The account database failed.",
                                    "setting up the mysql session: %s",
                                    err->detail);
        }
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

int btsso_store_prepares(const char *driver)
{
    return driver != NULL && strcmp(driver, "sqlite3") == 0;
}

btsso_store_t *btsso_store_wrap(apr_pool_t *p, const apr_dbd_driver_t *driver,
                                apr_dbd_t *handle, apr_hash_t *prepared,
                                apr_pool_t *conn_pool)
{
    btsso_store_t *s = apr_pcalloc(p, sizeof(*s));

    s->pool = p;
    s->driver = driver;
    s->handle = handle;
    s->prepared = prepared != NULL ? prepared : apr_hash_make(p);
    s->overrides = apr_hash_make(p);
    s->dialect = apr_dbd_name(driver);
    s->dbd_conn = 1;
    /* SQLite: statements prepared as requests need them, on the
     * connection's pool, once its busy timeout is set below (mod_dbd
     * prepares with none) */
    s->prepare_on_demand = conn_pool != NULL && prepared != NULL
                           && btsso_store_prepares(s->dialect);
    s->stmt_pool = s->prepare_on_demand ? conn_pool : p;
    s->closed = 1;              /* mod_dbd owns the connection */
    s->is_mysql = strcmp(s->dialect, "mysql") == 0;
    s->random = !s->is_mysql;
    if (s->is_mysql && prepared != NULL
        && apr_hash_get(prepared, mysql_session_mark,
                        APR_HASH_KEY_STRING) == NULL) {
        /* once per connection; a failure fails every statement of this
         * request and is tried again by the next one */
        s->broken = mysql_session_setup(s);
        if (s->broken == NULL) {
            apr_hash_set(prepared, mysql_session_mark, APR_HASH_KEY_STRING,
                         mysql_session_mark);
        }
    }
    if (strcmp(s->dialect, "sqlite3") == 0
        && (prepared == NULL
            || apr_hash_get(prepared, sqlite_busy_mark,
                            APR_HASH_KEY_STRING) == NULL)) {
        /* apr_dbd_sqlite3 sets no busy handler: wait for a writer (btssoctl,
         * another process) as btssoctl does instead of failing a login
         * with "database is locked".  Once per connection (the setting is
         * the connection's; a query per request cost 3% of a login); an
         * error only leaves the driver's own few retries, and is tried
         * again by the next request.  Foreign keys stay as mod_dbd left
         * them (off on SQLite): turning them on expires the statements
         * already prepared on the connection (test_store saw the next
         * one fail); the statements httpd writes rows with insert nothing
         * for an account that is gone. */
        if (sqlite_busy_setup(s, p) == NULL && prepared != NULL) {
            apr_hash_set(prepared, sqlite_busy_mark, APR_HASH_KEY_STRING,
                         sqlite_busy_mark);
        }
    }
    if (strcmp(s->dialect, "sqlite3") == 0 && prepared != NULL) {
        sqlite_cache_setup(s, p, prepared);
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

/* The MySQL/MariaDB client library keeps what mysql_library_init made for
 * the life of the process (mysql_library_end frees it; apr_dbd_mysql never
 * calls it), and apr_terminate unloads the driver, and the library with it,
 * at exit: what the library's globals held then shows as leaked, failing
 * btssoctl under LeakSanitizer.  Keep the driver, and so its library,
 * loaded until the process ends, as httpd does anyway. */
static void pin_driver(const apr_dbd_driver_t *drv)
{
#if defined(RTLD_NODELETE) && defined(RTLD_NOLOAD)
    Dl_info info;

    if (dladdr((const void *)drv, &info) != 0 && info.dli_fname != NULL) {
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    }
#else
    (void)drv;
#endif
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
    if (!btsso_store_driver_supported(driver)) {
        return btsso_error_make(p, 400, "bad_driver",
                                "The database driver is not supported.",
                                "driver %s: use sqlite3, pgsql or mysql",
                                driver);
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
                                apr_strerror(rv, buf, sizeof(buf)), driver);
    }
    if (strcmp(driver, "mysql") == 0) {
        pin_driver(drv);
        /* UPDATE counts the rows it matched, not only those it changed
         * (what SQLite and PostgreSQL report, and what "update, else
         * insert" needs); the last flags= of the string wins. */
        params = apr_pstrcat(p, params, " flags=CLIENT_FOUND_ROWS", NULL);
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
    s->stmt_pool = p;
    s->is_mysql = strcmp(s->dialect, "mysql") == 0;
    s->random = !s->is_mysql;
    apr_pool_cleanup_register(p, s, store_cleanup, apr_pool_cleanup_null);

    if (s->is_mysql && (err = mysql_session_setup(s)) != NULL) {
        btsso_store_close(s);
        return err;
    }

    if (strcmp(s->dialect, "sqlite3") == 0) {
        /* btssoctl and httpd share the file: wait for a writer instead of
         * failing at once, and enforce the schema's foreign keys. */
        if ((err = sqlite_busy_setup(s, p)) != NULL
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

static const char schema_version_ddl_mysql[] =
    "CREATE TABLE IF NOT EXISTS btsso_schema_version ("
    " version INTEGER NOT NULL PRIMARY KEY,"
    " applied BIGINT NOT NULL)" MYSQL_TABLE;

typedef enum { DIALECT_NONE, DIALECT_SQLITE3, DIALECT_PGSQL,
               DIALECT_MYSQL } dialect_t;

static dialect_t dialect_of(const char *name)
{
    if (name == NULL) {
        return DIALECT_NONE;
    }
    if (strcmp(name, "sqlite3") == 0) {
        return DIALECT_SQLITE3;
    }
    if (strcmp(name, "pgsql") == 0) {
        return DIALECT_PGSQL;
    }
    if (strcmp(name, "mysql") == 0) {
        return DIALECT_MYSQL;
    }
    return DIALECT_NONE;
}

static const char *const *step_sql(const schema_step_t *step, dialect_t d)
{
    switch (d) {
    case DIALECT_SQLITE3:
        return step->sqlite3;
    case DIALECT_PGSQL:
        return step->pgsql;
    case DIALECT_MYSQL:
        return step->mysql;
    default:
        return NULL;
    }
}

/* The first step without DDL for the dialect, or 0. */
static int unported_step(dialect_t d)
{
    int i;

    for (i = 0; i < SCHEMA_STEP_COUNT; i++) {
        if (step_sql(&schema_steps[i], d) == NULL) {
            return schema_steps[i].version;
        }
    }
    return 0;
}

const char *btsso_store_schema_sql(apr_pool_t *p, const char *dialect)
{
    dialect_t d = dialect_of(dialect);
    const char *out;
    int i;

    if (d == DIALECT_NONE || unported_step(d) != 0) {
        return NULL;
    }
    out = apr_psprintf(p, "-- mod_btsso account store, schema version %d "
                       "(%s), as `btssoctl init` creates it.\n"
                       "-- Generated by `btssoctl schema %s`; run it on an "
                       "empty database.\n", BTSSO_SCHEMA_VERSION, dialect,
                       dialect);
    if (d == DIALECT_SQLITE3) {
        out = apr_pstrcat(p, out, "PRAGMA journal_mode = WAL;\n", NULL);
    }
    if (d == DIALECT_MYSQL) {
        /* the session btssoctl init runs in; triggers keep the sql_mode
         * they were created under */
        out = apr_pstrcat(p, out, "-- For the mysql/mariadb client: "
                          "mariadb DBNAME < btsso-mysql.sql.  MySQL commits\n"
                          "-- each DDL statement on its own: on an error, "
                          "drop what the failed version\n"
                          "-- created before running the file again.\n",
                          NULL);
        for (i = 0; mysql_session_sql[i] != NULL; i++) {
            out = apr_pstrcat(p, out, mysql_session_sql[i], ";\n", NULL);
        }
    }
    out = apr_pstrcat(p, out, d == DIALECT_MYSQL ? schema_version_ddl_mysql
                                                 : schema_version_ddl,
                      ";\n", NULL);
    for (i = 0; i < SCHEMA_STEP_COUNT; i++) {
        const schema_step_t *step = &schema_steps[i];
        const char *const *sql;

        out = apr_psprintf(p, "%s\n-- version %d\nBEGIN;\n", out,
                           step->version);
        for (sql = step_sql(step, d); *sql != NULL; sql++) {
            if (d == DIALECT_MYSQL && strstr(*sql, " BEGIN ") != NULL) {
                /* a trigger body holds ";": the client splits on them */
                out = apr_pstrcat(p, out, "DELIMITER //\n", *sql,
                                  " //\nDELIMITER ;\n", NULL);
            }
            else {
                out = apr_pstrcat(p, out, *sql, ";\n", NULL);
            }
        }
        out = apr_psprintf(p, "%sINSERT INTO btsso_schema_version (version, "
                           "applied) VALUES (%d, 0);\nCOMMIT;\n", out,
                           step->version);
    }
    return out;
}

static int step_recorded(const apr_array_header_t *rows, int version)
{
    int i;

    for (i = 0; i < rows->nelts; i++) {
        if (col_i64(&APR_ARRAY_IDX(rows, i, db_row_t), 0) == version) {
            return 1;
        }
    }
    return 0;
}

btsso_error_t *btsso_store_init(btsso_store_t *s, int *from, int *to)
{
    apr_pool_t *tmp;
    apr_array_header_t *rows;
    btsso_error_t *err = NULL;
    dialect_t d = dialect_of(s->dialect);
    int current, i;

    if (d == DIALECT_NONE) {
        return btsso_error_make(s->pool, 500, "bad_driver",
                                "The database driver is not supported.",
                                "no schema for driver %s", s->dialect);
    }
    if (s->broken != NULL) {
        return s->broken;
    }
    apr_pool_create(&tmp, s->pool);
    if (d == DIALECT_SQLITE3) {
        /* WAL lets httpd read while btssoctl writes; it is a property of
         * the file, so setting it once here is enough. */
        if ((err = raw_select(s, tmp, "PRAGMA journal_mode = WAL",
                              &rows)) != NULL) {
            goto done;
        }
    }
    if ((err = raw_exec(s, d == DIALECT_MYSQL ? schema_version_ddl_mysql
                                              : schema_version_ddl)) != NULL) {
        goto done;
    }
    /* Every step not on record runs, in order: a step is recorded by
     * number, so one missing below the newest (a database made while a
     * release's steps were being numbered) is still applied. */
    if ((err = raw_select(s, tmp, "SELECT version FROM btsso_schema_version",
                          &rows)) != NULL) {
        goto done;
    }
    current = 0;
    for (i = 0; i < rows->nelts; i++) {
        int v = (int)col_i64(&APR_ARRAY_IDX(rows, i, db_row_t), 0);

        current = v > current ? v : current;
    }
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

        if (step_recorded(rows, step->version)) {
            continue;
        }
        if ((sql = step_sql(step, d)) == NULL) {
            err = btsso_error_make(s->pool, 500, "schema_unported",
                                   "This program cannot create the account "
                                   "database on this driver.",
                                   "schema step %d has no %s form",
                                   step->version, s->dialect);
            goto done;
        }
        if ((err = txn_begin(s, tmp, &txn)) != NULL) {
            goto done;
        }
        for (; *sql != NULL && err == NULL; sql++) {
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
        current = step->version > current ? step->version : current;
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

/* audit section: the change alters who may sign in (see v5); and the
 * test-login rule of enabling */
static btsso_error_t *trust_changed(btsso_store_t *s, apr_pool_t *p,
                                    const char *account);
static btsso_error_t *test_gate(btsso_store_t *s, apr_pool_t *p,
                                const char *account, int confirmed,
                                int *untested);

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
    int i, added = 0, trust = 0;

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
    /* the same document again (a refresh finding nothing new) leaves a
     * passing test standing */
    trust = old == NULL || old->shared != (shared != 0)
            || strcmp(old->metadata_xml, xml) != 0;
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
        trust = 1;
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
    if (err == NULL && (trust || added > 0)) {
        err = trust_changed(s, tmp, account);
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
        err = trust_changed(s, tmp, account);
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
        err = trust_changed(s, tmp, account);
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
        err = trust_changed(s, tmp, account);
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
        err = trust_changed(s, tmp, account);
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

/* test_rule: 0 none (btssoctl), 1 a passing test login is required, 2 the
 * administrator enables without one (confirm_untested, audited). */
static btsso_error_t *set_enabled(btsso_store_t *s, apr_pool_t *p,
                                  const char *account, int enabled,
                                  int allow_password,
                                  apr_int64_t expected_version,
                                  apr_time_t now, const char *actor,
                                  int test_rule, apr_array_header_t **dups,
                                  apr_array_header_t **missing)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *found_dups = NULL, *found_missing = NULL, *certs;
    btsso_idp_t *idp = NULL;
    btsso_error_t *err;
    int untested = 0;

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
        if (err == NULL && test_rule != 0) {
            err = test_gate(s, tmp, account, test_rule == 2, &untested);
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
    if (err == NULL && untested) {
        err = audit_write(s, tmp, now, account, actor, "sso.enable_untested",
                          "confirm_untested: enabled without a passing "
                          "test login since the last IdP, certificate or "
                          "email mapping change");
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_set_enabled(btsso_store_t *s, apr_pool_t *p,
                                       const char *account, int enabled,
                                       int allow_password,
                                       apr_int64_t expected_version,
                                       apr_time_t now, const char *actor,
                                       apr_array_header_t **dups,
                                       apr_array_header_t **missing)
{
    return set_enabled(s, p, account, enabled, allow_password,
                       expected_version, now, actor, 0, dups, missing);
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

/* ---- audit (the trail read back; enabling after a passing test) ------- */

#define AUDIT_NO_BOUND "9223372036854775807"

btsso_error_t *btsso_store_audit_page(btsso_store_t *s, apr_pool_t *p,
                                      const char *account,
                                      apr_int64_t before, apr_time_t since,
                                      int limit, apr_array_header_t **out,
                                      apr_int64_t *next)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    int i;

    *out = apr_array_make(p, 16, sizeof(btsso_audit_t *));
    *next = 0;
    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if (limit < 1) {
        limit = AUDIT_DEFAULT_LIMIT;
    }
    if (limit > BTSSO_AUDIT_PAGE_MAX) {
        limit = BTSSO_AUDIT_PAGE_MAX;
    }
    /* one row beyond the page tells whether there is a next one */
    err = db_select(s, p, "btsso_audit_page", &rows,
                    ARGS(account, before > 0 ? i64(p, before)
                                             : AUDIT_NO_BOUND,
                         i64(p, since > 0 ? apr_time_sec(since) : 0),
                         apr_itoa(p, limit + 1)));
    if (err != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts && i < limit; i++) {
        const db_row_t *r = &APR_ARRAY_IDX(rows, i, db_row_t);
        btsso_audit_t *a = apr_pcalloc(p, sizeof(*a));

        a->id = col_i64(r, 0);
        a->at = apr_time_from_sec(col_i64(r, 1));
        a->account = account;
        a->actor = col_text(r, 2);
        a->action = col_text(r, 3);
        a->detail = col_text(r, 4);
        APR_ARRAY_PUSH(*out, btsso_audit_t *) = a;
    }
    if (rows->nelts > limit && limit > 0) {
        *next = APR_ARRAY_IDX(*out, limit - 1, btsso_audit_t *)->id;
    }
    return NULL;
}

static btsso_error_t *trust_changed(btsso_store_t *s, apr_pool_t *p,
                                    const char *account)
{
    /* after bump_version, in the same transaction: the new version */
    return db_exec(s, p, "btsso_trust_changed", NULL, ARGS(account));
}

static btsso_error_t *test_state_read(btsso_store_t *s, apr_pool_t *p,
                                      const char *account,
                                      btsso_test_state_t *out)
{
    apr_array_header_t *rows;
    const db_row_t *r;
    btsso_error_t *err;

    memset(out, 0, sizeof(*out));
    if ((err = db_select(s, p, "btsso_trust_get", &rows,
                         ARGS(account))) != NULL) {
        return err;
    }
    if (rows->nelts == 0) {
        return not_found(s, account);
    }
    r = &APR_ARRAY_IDX(rows, 0, db_row_t);
    out->version = col_i64(r, 0);
    out->trust_version = col_i64(r, 1);
    out->tested_version = col_i64(r, 2);
    out->on_record = col_i64(r, 3) > 0;
    out->at = apr_time_from_sec(col_i64(r, 3));
    out->by = out->on_record ? col_text(r, 4) : NULL;
    out->sso_enabled = col_i64(r, 5) != 0;
    out->passed = out->on_record && out->tested_version > 0
                  && out->tested_version >= out->trust_version;
    return NULL;
}

btsso_error_t *btsso_store_test_state(btsso_store_t *s, apr_pool_t *p,
                                      const char *account,
                                      btsso_test_state_t *out)
{
    btsso_error_t *err;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    return test_state_read(s, p, account, out);
}

/* Inside set_enabled's transaction, after the account row is locked: only
 * turning SSO on needs the test; changing allow_password of an enabled
 * account does not. */
static btsso_error_t *test_gate(btsso_store_t *s, apr_pool_t *p,
                                const char *account, int confirmed,
                                int *untested)
{
    btsso_test_state_t ts;
    btsso_error_t *err;

    *untested = 0;
    if ((err = test_state_read(s, p, account, &ts)) != NULL
        || ts.sso_enabled || ts.passed) {
        return err;
    }
    if (confirmed) {
        *untested = 1;
        return NULL;
    }
    return btsso_error_make(s->pool, 409, "untested",
                            "Test the login first: no test login of an "
                            "administrator of this account has succeeded "
                            "since the IdP, its certificates or the email "
                            "mapping last changed.",
                            "account %s: %s", account,
                            ts.on_record ? "the last passing test is older "
                                           "than the last change"
                                         : "no passing test on record");
}

btsso_error_t *btsso_store_set_enabled_tested(btsso_store_t *s,
                                              apr_pool_t *p,
                                              const char *account,
                                              int enabled, int allow_password,
                                              int confirm_untested,
                                              apr_int64_t expected_version,
                                              apr_time_t now,
                                              const char *actor,
                                              apr_array_header_t **dups,
                                              apr_array_header_t **missing)
{
    return set_enabled(s, p, account, enabled, allow_password,
                       expected_version, now, actor,
                       confirm_untested ? 2 : 1, dups, missing);
}

btsso_error_t *btsso_store_test_passed(btsso_store_t *s, const char *account,
                                       const char *email,
                                       apr_int64_t version, apr_time_t now,
                                       int *counted)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    btsso_error_t *err;
    int is_admin = 0, n = 0;

    *counted = 0;
    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if (email == NULL || !printable(email, 254) || version < 1) {
        return NULL;
    }
    if ((err = btsso_store_is_admin(s, account, email, &is_admin)) != NULL
        || !is_admin) {
        return err;
    }
    apr_pool_create(&tmp, s->pool);
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    /* Counts only when the settings the login was checked with (version)
     * hold every trust change; a copy cached from before the last change
     * proves nothing about the current settings. */
    err = db_exec(s, tmp, "btsso_trust_tested", &n,
                  ARGS(i64(tmp, version), i64(tmp, apr_time_sec(now)), email,
                       account, i64(tmp, version)));
    if (err == NULL && n == 1) {
        err = audit_write(s, tmp, now, account, email, "sso.test_passed",
                          apr_psprintf(tmp, "email=%s settings_version=%"
                                       APR_INT64_T_FMT, email, version));
    }
    err = txn_end(s, tmp, txn, err, 0);
    if (err == NULL) {
        *counted = n == 1 ? 1 : -1;
    }
done:
    apr_pool_destroy(tmp);
    return err;
}

/* ---- refresh ------------------------------------------------------------ */

static btsso_refresh_state_t *refresh_from_row(apr_pool_t *p,
                                               const db_row_t *r)
{
    btsso_refresh_state_t *st = apr_pcalloc(p, sizeof(*st));

    st->account = col_text(r, 0);
    st->next_due = apr_time_from_sec(col_i64(r, 1));
    st->failures = (int)col_i64(r, 2);
    st->last_attempt = apr_time_from_sec(col_i64(r, 3));
    st->last_ok = apr_time_from_sec(col_i64(r, 4));
    st->last_error = col_opt(r, 5);
    st->valid_until = apr_time_from_sec(col_i64(r, 6));
    st->signature = col_opt(r, 7);
    return st;
}

btsso_error_t *btsso_store_refresh_get(btsso_store_t *s, apr_pool_t *p,
                                       const char *account,
                                       btsso_refresh_state_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;

    *out = NULL;
    if ((err = db_select(s, p, "btsso_refresh_get", &rows, ARGS(account)))
        != NULL) {
        return err;
    }
    if (rows->nelts > 0) {
        *out = refresh_from_row(p, &APR_ARRAY_IDX(rows, 0, db_row_t));
    }
    return NULL;
}

static btsso_error_t *refresh_write(btsso_store_t *s, apr_pool_t *p,
                                    const btsso_refresh_state_t *st)
{
    const char *error = st->last_error != NULL && *st->last_error != '\0'
                        ? st->last_error : NULL;
    btsso_error_t *err;
    int n = 0;
#define REFRESH_ARGS \
    ARGS(i64(p, apr_time_sec(st->next_due)), apr_itoa(p, st->failures), \
         i64(p, apr_time_sec(st->last_attempt)),                        \
         i64(p, apr_time_sec(st->last_ok)), error,                      \
         i64(p, apr_time_sec(st->valid_until)), st->signature,          \
         st->account)

    err = db_exec(s, p, "btsso_refresh_update", &n, REFRESH_ARGS);
    if (err == NULL && n == 0) {
        err = db_exec(s, p, "btsso_refresh_insert", NULL, REFRESH_ARGS);
    }
#undef REFRESH_ARGS
    return err;
}

btsso_error_t *btsso_store_refresh_put(btsso_store_t *s,
                                       const btsso_refresh_state_t *st)
{
    apr_pool_t *tmp;
    btsso_error_t *err;

    if ((err = check_account_id(s, st->account)) != NULL) {
        return err;
    }
    apr_pool_create(&tmp, s->pool);
    err = refresh_write(s, tmp, st);
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_refresh_due(btsso_store_t *s, apr_pool_t *p,
                                       apr_time_t now, int limit,
                                       apr_array_header_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    int i;

    *out = apr_array_make(p, 4, sizeof(btsso_refresh_state_t *));
    /* rows for accounts that have none (made before v7, or by a writer
     * that does not schedule): looked for first, so that a pass with
     * nothing to add writes nothing */
    if ((err = db_select(s, p, "btsso_refresh_unseeded", &rows, NULL, 0))
        != NULL
        || (rows->nelts > 0
            && (err = db_exec(s, p, "btsso_refresh_seed", NULL, NULL, 0))
               != NULL)
        || (err = db_select(s, p, "btsso_refresh_due", &rows,
                            ARGS(i64(p, apr_time_sec(now)),
                                 apr_itoa(p, limit > 0 ? limit : 100))))
           != NULL) {
        return err;
    }
    for (i = 0; i < rows->nelts; i++) {
        APR_ARRAY_PUSH(*out, btsso_refresh_state_t *) =
            refresh_from_row(p, &APR_ARRAY_IDX(rows, i, db_row_t));
    }
    return NULL;
}

btsso_error_t *btsso_store_refresh_claim(btsso_store_t *s,
                                         const char *account,
                                         apr_time_t seen, apr_time_t until,
                                         apr_time_t now, int *claimed)
{
    apr_pool_t *tmp;
    btsso_error_t *err;
    int n = 0;

    *claimed = 0;
    apr_pool_create(&tmp, s->pool);
    err = db_exec(s, tmp, "btsso_refresh_claim", &n,
                  ARGS(i64(tmp, apr_time_sec(until)),
                       i64(tmp, apr_time_sec(now)), account,
                       i64(tmp, apr_time_sec(seen))));
    *claimed = err == NULL && n == 1;
    apr_pool_destroy(tmp);
    return err;
}

btsso_error_t *btsso_store_idp_refreshed(btsso_store_t *s,
                                         const char *account,
                                         const btsso_idp_metadata_t *md,
                                         const apr_array_header_t *new_certs,
                                         const char *promote,
                                         const btsso_refresh_state_t *st,
                                         apr_int64_t expected_version,
                                         apr_time_t now, const char *actor,
                                         const char *detail)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    apr_array_header_t *stored = NULL;
    btsso_error_t *err;
    int i, n = 0;

    if ((err = check_account_id(s, account)) != NULL) {
        return err;
    }
    if (md == NULL || md->xml == NULL || md->entity_id == NULL) {
        return btsso_error_make(s->pool, 400, "bad_metadata",
                                "The IdP metadata is missing.",
                                "idp_refreshed needs parsed metadata");
    }
    apr_pool_create(&tmp, s->pool);
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    err = bump_version(s, tmp, account, expected_version, now);
    if (err == NULL) {
        err = db_exec(s, tmp, "btsso_idp_refresh_xml", &n,
                      ARGS(apr_pstrmemdup(tmp, md->xml, md->xml_len),
                           i64(tmp, apr_time_sec(now)), account,
                           md->entity_id));
    }
    if (err == NULL && n != 1) {
        err = btsso_error_make(s->pool, 409, "conflict",
                               "The configuration was changed meanwhile.",
                               "account %s no longer has IdP %s", account,
                               md->entity_id);
    }
    if (err == NULL) {
        err = btsso_store_cert_list(s, tmp, account, &stored);
    }
    for (i = 0; err == NULL && new_certs != NULL && i < new_certs->nelts;
         i++) {
        const btsso_cert_t *c = APR_ARRAY_IDX(new_certs, i, btsso_cert_t *);
        if (cert_listed(stored, c->sha256)) {
            continue;
        }
        err = cert_insert(s, tmp, account, c, BTSSO_ROLE_NONE, "refresh",
                          now);
        if (err == NULL) {
            err = audit_write(s, tmp, now, account, actor, "cert.add",
                              apr_psprintf(tmp, "sha256=%s role=none "
                                           "source=refresh subject=%s",
                                           c->sha256, c->subject != NULL
                                           ? c->subject : ""));
        }
    }
    if (err == NULL && promote != NULL) {
        err = cert_assign(s, tmp, account, promote, BTSSO_ROLE_SECONDARY);
        if (err == NULL) {
            /* the certificates that verify changed: an earlier test login
             * no longer vouches for enabling (audit's test rule) */
            err = trust_changed(s, tmp, account);
        }
        if (err == NULL) {
            err = audit_write(s, tmp, now, account, actor, "cert.role",
                              apr_psprintf(tmp, "sha256=%s role=secondary "
                                           "(refreshed metadata signed by "
                                           "a trusted certificate)",
                                           promote));
        }
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor, "idp.refresh",
                          detail);
    }
    if (err == NULL && st != NULL) {
        err = refresh_write(s, tmp, st);
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
}

/* ---- policy ------------------------------------------------------------- */

btsso_policy_t *btsso_policy_make(apr_pool_t *p)
{
    btsso_policy_t *pol = apr_pcalloc(p, sizeof(*pol));

    pol->authn_context = apr_array_make(p, 1, sizeof(const char *));
    return pol;
}

int btsso_policy_is_default(const btsso_policy_t *pol)
{
    return (pol->authn_context == NULL || pol->authn_context->nelts == 0)
           && !pol->request_authn_context && !pol->force_authn
           && pol->session_max_age == 0;
}

int btsso_policy_class_ok(const btsso_policy_t *pol, const char *class_ref)
{
    int i;

    if (pol == NULL || pol->authn_context == NULL
        || pol->authn_context->nelts == 0) {
        return 1;
    }
    if (class_ref == NULL) {
        return 0;
    }
    for (i = 0; i < pol->authn_context->nelts; i++) {
        if (strcmp(APR_ARRAY_IDX(pol->authn_context, i, const char *),
                   class_ref) == 0) {
            return 1;
        }
    }
    return 0;
}

/* An absolute URI as the policy keeps it: scheme ":" and something, all
 * printable ASCII without spaces (the stored list is space-separated). */
static int policy_uri_ok(const char *u)
{
    const char *c;

    if (u == NULL || !apr_isalpha((unsigned char)u[0])) {
        return 0;
    }
    for (c = u + 1; *c != ':'; c++) {
        if (!apr_isalnum((unsigned char)*c) && *c != '+' && *c != '-'
            && *c != '.') {
            return 0;
        }
    }
    if (c[1] == '\0') {
        return 0;
    }
    for (c = u; *c != '\0'; c++) {
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

static btsso_error_t *bad_policy(apr_pool_t *p, const char *message,
                                 const char *detail)
{
    return btsso_error_make(p, 400, "bad_policy", message, "%s", detail);
}

btsso_error_t *btsso_policy_check(apr_pool_t *p, btsso_policy_t *pol,
                                  apr_interval_time_t max_age)
{
    apr_array_header_t *kept;
    int i, j;

    if (pol->authn_context == NULL) {
        pol->authn_context = apr_array_make(p, 1, sizeof(const char *));
    }
    if (pol->authn_context->nelts > BTSSO_POLICY_CLASSES_MAX) {
        return bad_policy(p, apr_psprintf(p, "List at most %d "
                          "authentication context classes.",
                          BTSSO_POLICY_CLASSES_MAX),
                          apr_psprintf(p, "%d classes",
                                       pol->authn_context->nelts));
    }
    kept = apr_array_make(p, pol->authn_context->nelts,
                          sizeof(const char *));
    for (i = 0; i < pol->authn_context->nelts; i++) {
        const char *u = APR_ARRAY_IDX(pol->authn_context, i, const char *);

        if (u == NULL || strlen(u) > BTSSO_POLICY_CLASS_MAX
            || !policy_uri_ok(u)) {
            return bad_policy(p, apr_psprintf(p, "Each authentication "
                              "context class is a URI (such as "
                              "urn:oasis:names:tc:SAML:2.0:ac:classes:"
                              "PasswordProtectedTransport) of at most %d "
                              "characters, without spaces or control "
                              "characters.", BTSSO_POLICY_CLASS_MAX),
                              apr_psprintf(p, "class %d is not a URI", i + 1));
        }
        for (j = 0; j < kept->nelts; j++) {
            if (strcmp(APR_ARRAY_IDX(kept, j, const char *), u) == 0) {
                break;
            }
        }
        if (j == kept->nelts) {
            APR_ARRAY_PUSH(kept, const char *) = u;
        }
    }
    pol->authn_context = kept;
    if (pol->request_authn_context && kept->nelts == 0) {
        return bad_policy(p, "Asking the identity provider for an "
                          "authentication context needs the classes to ask "
                          "for: list them in authn_context.",
                          "request_authn_context without classes");
    }
    if (pol->session_max_age < 0
        || (pol->session_max_age > 0
            && pol->session_max_age < apr_time_from_sec(1))
        || (max_age > 0 && pol->session_max_age > max_age)) {
        return bad_policy(p, apr_psprintf(p, "The session lifetime is a "
                          "number of seconds from 1 to %" APR_INT64_T_FMT
                          " (the server's longest, BTSSOSessionMaxAge).",
                          (apr_int64_t)apr_time_sec(max_age)),
                          apr_psprintf(p, "session_max_age %" APR_INT64_T_FMT
                                       " s", (apr_int64_t)apr_time_sec(
                                           pol->session_max_age)));
    }
    return NULL;
}

btsso_error_t *btsso_store_policy_get(btsso_store_t *s, apr_pool_t *p,
                                      const char *account,
                                      btsso_policy_t **out)
{
    apr_array_header_t *rows;
    btsso_error_t *err;
    btsso_policy_t *pol = btsso_policy_make(p);
    const db_row_t *r;
    char *list, *tok, *last = NULL;

    *out = pol;
    if ((err = db_select(s, p, "btsso_policy_get", &rows,
                         ARGS(account))) != NULL) {
        return err;
    }
    if (rows->nelts == 0) {
        return NULL;
    }
    r = &APR_ARRAY_IDX(rows, 0, db_row_t);
    list = apr_pstrdup(p, col_text(r, 0));
    for (tok = apr_strtok(list, " ", &last); tok != NULL;
         tok = apr_strtok(NULL, " ", &last)) {
        APR_ARRAY_PUSH(pol->authn_context, const char *) = tok;
    }
    pol->request_authn_context = col_i64(r, 1) != 0;
    pol->force_authn = col_i64(r, 2) != 0;
    pol->session_max_age = apr_time_from_sec(col_i64(r, 3));
    pol->updated = apr_time_from_sec(col_i64(r, 4));
    return NULL;
}

btsso_error_t *btsso_store_policy_set(btsso_store_t *s, const char *account,
                                      btsso_policy_t *pol,
                                      apr_interval_time_t max_age,
                                      apr_int64_t expected_version,
                                      apr_time_t now, const char *actor)
{
    apr_pool_t *tmp;
    apr_dbd_transaction_t *txn;
    btsso_error_t *err;
    const char *classes, *secs;

    if ((err = check_account_id(s, account)) != NULL
        || (err = btsso_policy_check(s->pool, pol, max_age)) != NULL) {
        return err;
    }
    apr_pool_create(&tmp, s->pool);
    classes = apr_array_pstrcat(tmp, pol->authn_context, ' ');
    secs = i64(tmp, apr_time_sec(pol->session_max_age));
    if ((err = txn_begin(s, tmp, &txn)) != NULL) {
        goto done;
    }
    err = bump_version(s, tmp, account, expected_version, now);
    if (err == NULL) {
        err = db_exec(s, tmp, "btsso_policy_delete", NULL, ARGS(account));
    }
    /* no row: the server-wide behaviour */
    if (err == NULL && !btsso_policy_is_default(pol)) {
        err = db_exec(s, tmp, "btsso_policy_insert", NULL,
                      ARGS(account, classes,
                           pol->request_authn_context ? "1" : "0",
                           pol->force_authn ? "1" : "0", secs,
                           i64(tmp, apr_time_sec(now))));
    }
    if (err == NULL) {
        err = audit_write(s, tmp, now, account, actor, "policy.set",
                          apr_psprintf(tmp, "authn_context=%s "
                                       "request_authn_context=%d "
                                       "force_authn=%d session_max_age=%s",
                                       *classes ? classes : "-",
                                       pol->request_authn_context ? 1 : 0,
                                       pol->force_authn ? 1 : 0, secs));
    }
    err = txn_end(s, tmp, txn, err, 0);
done:
    apr_pool_destroy(tmp);
    return err;
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
    int n = 0;

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
    err = db_exec(s, tmp, "btsso_signin_insert", &n,
                  ARGS(si->reference,
                       i64(tmp, apr_time_sec(si->at)), si->result,
                       clipped(tmp, si->email, 254),
                       clipped(tmp, si->name_id, 1024),
                       clipped(tmp, si->idp, 1024),
                       clipped(tmp, si->detail, 2048), account));
    /* n == 0: the account is gone, and its rows with it */
    if (err == NULL && n > 0 && keep > 0) {
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
            /* inserts nothing for an account deleted meanwhile */
            err = db_exec(s, tmp, "btsso_signin_day_insert", NULL,
                          ARGS(day, ok, failed, unrec, account));
        }
    }
    if (err == NULL && c->last_ok != NULL) {
        const btsso_signin_t *l = c->last_ok;
        const char *at = i64(tmp, apr_time_sec(l->at));

        err = db_exec(s, tmp, "btsso_signin_ok_drop", NULL,
                      ARGS(account, at));
        if (err == NULL) {
            err = db_exec(s, tmp, "btsso_signin_ok_insert", NULL,
                          ARGS(l->reference, at,
                               clipped(tmp, l->email, 254),
                               clipped(tmp, l->name_id, 1024),
                               clipped(tmp, l->idp, 1024), account,
                               account));
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
    return btsso_store_signin_counts_add_many(s, 1, &account, c);
}

btsso_error_t *btsso_store_signin_counts_add_many(
    btsso_store_t *s, int n, const char *const *accounts,
    const btsso_signin_counts_t *counts)
{
    btsso_error_t *err;
    int attempt, i;

    for (i = 0; i < n; i++) {
        if ((err = check_account_id(s, accounts[i])) != NULL) {
            return err;
        }
        if (counts[i].last_ok != NULL
            && ((err = signin_check(s, accounts[i], counts[i].last_ok))
                != NULL)) {
            return err;
        }
    }
    if (n <= 0) {
        return NULL;
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
            btsso_error_t *w = NULL;

            for (i = 0; w == NULL && i < n; i++) {
                w = counts_write(s, tmp, accounts[i], &counts[i]);
            }
            err = txn_end(s, tmp, txn, w, 0);
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
