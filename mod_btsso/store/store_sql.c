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
 */
#include <stddef.h>

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

    /* ---- signins: sign-in records (refusals, last success, counts) ---- */
    { "btsso_signin_insert",
      "INSERT INTO sign_ins (account, reference, at, result, email,"
      " name_id, idp, detail)"
      " VALUES (%s, %s, CAST(%s AS BIGINT), %s, %s, %s, %s, %s)",
      "account, reference, at, result, email, name_id, idp, detail" },
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
      " VALUES (%s, %s, CAST(%s AS BIGINT), CAST(%s AS BIGINT),"
      " CAST(%s AS BIGINT))",
      "account, day, ok, failed, unrecorded" },
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
      " SELECT %s, %s, CAST(%s AS BIGINT), 'ok', %s, %s, %s, NULL"
      " WHERE NOT EXISTS (SELECT 1 FROM sign_ins"
      "  WHERE account = %s AND result = 'ok')",
      "account, reference, at, email, name_id, idp, account" },
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

const btsso_stmt_def_t *btsso_store_statements(void)
{
    return store_statements;
}
