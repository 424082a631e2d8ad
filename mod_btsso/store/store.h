/*
 * store.h - the account store (APR DBD), shared by the module and btssoctl.
 *
 * Every statement is an APR DBD prepared statement registered under a label
 * (see btsso_store_statements()).  The module registers them with mod_dbd's
 * ap_dbd_prepare() at configuration time and wraps each acquired connection
 * with btsso_store_wrap(); btssoctl opens its own connection with
 * btsso_store_open().  Every change runs in one transaction, bumps the
 * account's version (optimistic concurrency for the admin API) and writes an
 * audit row; on any error nothing is written.
 */
#ifndef BTSSO_STORE_H
#define BTSSO_STORE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_hash.h>
#include <apr_time.h>
#include <apr_dbd.h>
#include "core/btsso_error.h"
#include "crypto/cert.h"
#include "saml/metadata.h"

#define BTSSO_SCHEMA_VERSION 4

/* Labels of the statements an operator may override by directive. */
#define BTSSO_Q_USER            "btsso_user"       /* BTSSOUserQuery */
#define BTSSO_Q_DUPLICATES      "btsso_duplicates" /* BTSSODuplicateEmailQuery */
#define BTSSO_Q_ADMIN           "btsso_admin"      /* BTSSOAdminQuery */
#define BTSSO_Q_ACCOUNT_BY_EMAIL "btsso_by_email"  /* BTSSOAccountByEmailQuery */

typedef struct btsso_stmt_def_t {
    const char *label;
    const char *sql;        /* APR DBD syntax: %s placeholders */
    const char *params;     /* what the %s are, for docs and errors */
} btsso_stmt_def_t;

/* The statements, terminated by {NULL, NULL, NULL}.  The SQL is the same
 * for SQLite and PostgreSQL. */
const btsso_stmt_def_t *btsso_store_statements(void);

typedef struct btsso_store_t btsso_store_t;

/* Wrap a connection whose prepared statements (label -> apr_dbd_prepared_t*)
 * are already in `prepared` (mod_dbd's ap_dbd_t). */
btsso_store_t *btsso_store_wrap(apr_pool_t *p, const apr_dbd_driver_t *driver,
                                apr_dbd_t *handle, apr_hash_t *prepared);

/* Open a connection ("sqlite3", "pgsql") for btssoctl.  sql_overrides maps
 * the labels above to operator SQL (may be NULL).  Statements are prepared
 * on first use, so `init` works on an empty database. */
btsso_error_t *btsso_store_open(apr_pool_t *p, const char *driver,
                                const char *params, apr_hash_t *sql_overrides,
                                btsso_store_t **out);
void btsso_store_close(btsso_store_t *s);

/* "sqlite3" or "pgsql" */
const char *btsso_store_dialect(const btsso_store_t *s);

/* Create or upgrade the schema to BTSSO_SCHEMA_VERSION (DDL run directly,
 * not prepared).  *from is 0 for a new database. */
btsso_error_t *btsso_store_init(btsso_store_t *s, int *from, int *to);

/* The same schema as one SQL script (statements ending in ";"), for a DBA
 * who creates it by hand and for the packaged .sql files; NULL for an
 * unknown dialect.  A database made with it is at BTSSO_SCHEMA_VERSION. */
const char *btsso_store_schema_sql(apr_pool_t *p, const char *dialect);

/* ---- records ---------------------------------------------------------- */

typedef struct btsso_account_t {
    const char *account;
    const char *name;
    int sso_enabled;
    int allow_password;
    apr_int64_t version;        /* bumped by every change */
    apr_time_t created;
    apr_time_t updated;
    apr_int64_t sessions_epoch; /* grows when every session must end */
    apr_int64_t revoke_seq;     /* number of the last user revocation */
} btsso_account_t;

typedef struct btsso_idp_t {
    const char *account;
    const char *entity_id;
    int shared;
    const char *metadata_xml;   /* last good metadata, as uploaded */
    const char *source_url;     /* NULL unless fetched from a URL */
    const char *email_attribute;/* NULL when unset */
    int email_from_name_id;
    apr_time_t updated;
} btsso_idp_t;

typedef struct btsso_stored_cert_t {
    btsso_cert_t *cert;
    btsso_cert_role_e role;
    const char *source;         /* "metadata", "upload", "refresh" */
    apr_time_t added;
} btsso_stored_cert_t;

typedef struct btsso_user_t {
    const char *account;
    const char *extension;
    const char *kind;           /* "user" or "call_queue" */
    const char *email;
    int is_admin;
} btsso_user_t;

typedef struct btsso_dup_email_t {
    const char *email;              /* lowercased, trimmed */
    apr_array_header_t *holders;    /* btsso_user_t * */
} btsso_dup_email_t;

typedef struct btsso_audit_t {
    apr_time_t at;
    const char *account;
    const char *actor;
    const char *action;
    const char *detail;
} btsso_audit_t;

/* ---- accounts and users ------------------------------------------------ */

/* Errors: exists 409, bad_account 400 (ids: [A-Za-z0-9._-]{1,64}). */
btsso_error_t *btsso_store_account_add(btsso_store_t *s, const char *account,
                                       const char *name, const char *actor);
/* Error not_found 404. */
btsso_error_t *btsso_store_account_get(btsso_store_t *s, apr_pool_t *p,
                                       const char *account,
                                       btsso_account_t **out);
btsso_error_t *btsso_store_account_list(btsso_store_t *s, apr_pool_t *p,
                                        apr_array_header_t **out);

/* kind "user" or "call_queue".  While SSO is enabled for the account, an
 * email already used in it (case-insensitive, trimmed) is refused:
 * duplicate_email 409.  Also: not_found 404, exists 409, bad_email 400. */
btsso_error_t *btsso_store_user_add(btsso_store_t *s, const char *account,
                                    const char *extension, const char *email,
                                    const char *kind, int is_admin,
                                    const char *actor);
btsso_error_t *btsso_store_user_list(btsso_store_t *s, apr_pool_t *p,
                                     const char *account,
                                     apr_array_header_t **out);
/* Through BTSSO_Q_USER (account, email) -> first (extension, email) row;
 * *out NULL when no user matches. */
btsso_error_t *btsso_store_user_by_email(btsso_store_t *s, apr_pool_t *p,
                                         const char *account,
                                         const char *email,
                                         btsso_user_t **out);
/* Through BTSSO_Q_ADMIN (account, remote_user) -> *is_admin. */
btsso_error_t *btsso_store_is_admin(btsso_store_t *s, const char *account,
                                    const char *remote_user, int *is_admin);
/* At most this many accounts holding one email are read. */
#define BTSSO_EMAIL_ACCOUNTS_MAX 50

/* Which accounts an email belongs to. */
typedef struct btsso_email_accounts_t {
    /* The one account the email belongs to: the account that claimed the
     * email's domain when it holds the email (BTSSO_Q_USER), else the only
     * account holding it; NULL when none or several hold it. */
    const char *account;
    const char *claimant;        /* claimed the email's domain, or NULL */
    int claimant_holds;          /* ... and holds the email */
    apr_array_header_t *holders; /* const char *: distinct accounts holding
                                  * the email (BTSSO_Q_ACCOUNT_BY_EMAIL),
                                  * at most BTSSO_EMAIL_ACCOUNTS_MAX */
    int truncated;               /* more held it than were read */
} btsso_email_accounts_t;

/* Through BTSSO_Q_ACCOUNT_BY_EMAIL (email -> rows whose first column is
 * an account holding the email), the domains table and BTSSO_Q_USER.
 * *out is never NULL on success.  No account ever reaches another's
 * users through this: an account that adds someone else's email to itself
 * only makes the email "held by several" (out->account NULL). */
btsso_error_t *btsso_store_account_by_email(btsso_store_t *s, apr_pool_t *p,
                                            const char *email,
                                            btsso_email_accounts_t **out);

/* ---- domain claims ------------------------------------------------------ */

typedef struct btsso_domain_t {
    const char *domain;          /* lowercased */
    const char *account;
    apr_time_t added;
} btsso_domain_t;

/* A domain name as stored ("Corp.Example." -> "corp.example"), or NULL when
 * it is not a DNS name of at least two labels of a-z 0-9 - (no wildcards,
 * no underscores, labels 1-63, at most 253 in all). */
const char *btsso_domain_normalize(apr_pool_t *p, const char *domain);
/* Claims domain for account (support only).  409 domain_claimed when any
 * account (this one included) already holds it; 404 for no account. */
btsso_error_t *btsso_store_domain_add(btsso_store_t *s, const char *account,
                                      const char *domain, const char *actor);
/* 404 domain_not_claimed unless account holds the claim. */
btsso_error_t *btsso_store_domain_remove(btsso_store_t *s,
                                         const char *account,
                                         const char *domain,
                                         const char *actor);
/* btsso_domain_t *, sorted by domain. */
btsso_error_t *btsso_store_domain_list(btsso_store_t *s, apr_pool_t *p,
                                       const char *account,
                                       apr_array_header_t **out);
/* The account that claimed domain (normalized first), or NULL. */
btsso_error_t *btsso_store_domain_owner(btsso_store_t *s, apr_pool_t *p,
                                        const char *domain,
                                        const char **account);
/* Through BTSSO_Q_DUPLICATES (account): btsso_dup_email_t, sorted. */
btsso_error_t *btsso_store_duplicate_emails(btsso_store_t *s, apr_pool_t *p,
                                            const char *account,
                                            apr_array_header_t **out);

/* ---- IdP configuration ---------------------------------------------------- */

/*
 * Store parsed metadata for the account (replacing any previous IdP).
 * shared (support's --shared) is accepted whatever else holds the entityID:
 * a self-service holder keeps the global ACS and is not touched.  Without
 * it, refused with entity_in_use 409 (message says to contact support)
 * when another account holds the same entityID, shared or not, unless
 * this account already is its self-service holder (and no other account
 * is: there is at most one).
 * What is stored is md->xml (the UTF-8 form btsso_metadata_parse made of
 * the document) when set, else xml.
 * The metadata's signing certificates are added (source "metadata"); when
 * the IdP changed or no usable primary/secondary is set, the first two
 * valid-now metadata certificates, in document order, become primary and
 * secondary.  expected_version: 0 to skip the check, else conflict 409 when
 * the account's version differs.
 */
btsso_error_t *btsso_store_idp_set(btsso_store_t *s, const char *account,
                                   const btsso_idp_metadata_t *md,
                                   const char *xml, const char *source_url,
                                   int shared, apr_int64_t expected_version,
                                   apr_time_t now, const char *actor);
/* *out NULL when no IdP is configured. */
btsso_error_t *btsso_store_idp_get(btsso_store_t *s, apr_pool_t *p,
                                   const char *account, btsso_idp_t **out);
/* The self-service (non-shared) account of an IdP entityID, or NULL. */
btsso_error_t *btsso_store_account_by_issuer(btsso_store_t *s, apr_pool_t *p,
                                             const char *entity_id,
                                             const char **account);
/* Accounts whose IdP metadata came from a URL (for idp refresh --all). */
btsso_error_t *btsso_store_url_accounts(btsso_store_t *s, apr_pool_t *p,
                                        apr_array_header_t **out);

/* attribute NULL and name_id 1: the NameID carries the email.
 * Errors: no_idp 409, bad_attribute 400. */
btsso_error_t *btsso_store_email_set(btsso_store_t *s, const char *account,
                                     const char *attribute, int name_id,
                                     apr_int64_t expected_version,
                                     const char *actor);

/* ---- certificates ------------------------------------------------------------ */

/* Adds (or, when already stored, only changes the role when role is not
 * NONE).  Giving a role takes it from the certificate that held it. */
btsso_error_t *btsso_store_cert_add(btsso_store_t *s, const char *account,
                                    const btsso_cert_t *cert,
                                    btsso_cert_role_e role, const char *source,
                                    apr_int64_t expected_version,
                                    apr_time_t now, const char *actor);
btsso_error_t *btsso_store_cert_list(btsso_store_t *s, apr_pool_t *p,
                                     const char *account,
                                     apr_array_header_t **out); /* btsso_stored_cert_t * */
/* Errors: not_found 404. */
btsso_error_t *btsso_store_cert_role(btsso_store_t *s, const char *account,
                                     const char *sha256, btsso_cert_role_e role,
                                     apr_int64_t expected_version,
                                     const char *actor);
btsso_error_t *btsso_store_cert_remove(btsso_store_t *s, const char *account,
                                       const char *sha256,
                                       apr_int64_t expected_version,
                                       const char *actor);
/* Certificates of any account whose not_after < now + days; each element
 * a btsso_stored_cert_t * whose cert is set, with account in *accounts
 * (parallel array of const char *). */
btsso_error_t *btsso_store_cert_expiring(btsso_store_t *s, apr_pool_t *p,
                                         apr_time_t now, int days,
                                         apr_array_header_t **certs,
                                         apr_array_header_t **accounts);

/* ---- enabling ------------------------------------------------------------------- */

/* What keeps the account from SSO: any of "idp", "email_mapping",
 * "usable_certificate" (a primary or secondary valid at now).  Pure. */
apr_array_header_t *btsso_account_missing(apr_pool_t *p,
                                          const btsso_idp_t *idp,
                                          const apr_array_header_t *certs,
                                          apr_time_t now);

/*
 * Enable or disable SSO.  Enabling is refused with duplicate_emails 409
 * (*dups set) or incomplete 409 (*missing set); either out pointer may be
 * NULL.  Disabling always works.
 */
btsso_error_t *btsso_store_set_enabled(btsso_store_t *s, apr_pool_t *p,
                                       const char *account, int enabled,
                                       int allow_password,
                                       apr_int64_t expected_version,
                                       apr_time_t now, const char *actor,
                                       apr_array_header_t **dups,
                                       apr_array_header_t **missing);

/* ---- sessions ------------------------------------------------------------------- */

/* A revocation of one user's sessions: sessions of the account made before
 * revocation number seq (their revoke_seq < seq) of that email end. */
typedef struct btsso_revocation_t {
    const char *email;          /* lowercased, trimmed */
    apr_int64_t seq;
    apr_time_t revoked;
} btsso_revocation_t;

/*
 * End sessions of the account (SPEC "Sessions follow the account"): email
 * NULL, every one (sessions_epoch grows); else those of that user
 * (revoke_seq grows and the user's revocation row takes its number).
 * Sessions made later are not affected.  Audit "sessions.revoke_all" or
 * "sessions.revoke_user".  Errors: not_found 404, bad_email 400.
 * Disabling SSO and changing the IdP's entityID also grow sessions_epoch.
 */
btsso_error_t *btsso_store_sessions_revoke(btsso_store_t *s,
                                           const char *account,
                                           const char *email,
                                           apr_time_t now, const char *actor);
/* User revocations of the account made at or after since, newest (highest
 * seq) first, at most limit of them (*truncated: there were more). */
btsso_error_t *btsso_store_session_revocations(btsso_store_t *s,
                                               apr_pool_t *p,
                                               const char *account,
                                               apr_time_t since, int limit,
                                               apr_array_header_t **out,
                                               int *truncated);
/* The number of the last revocation of email's sessions, 0 when none. */
btsso_error_t *btsso_store_session_revoked(btsso_store_t *s, apr_pool_t *p,
                                           const char *account,
                                           const char *email,
                                           apr_int64_t *seq);

/* ---- audit ----------------------------------------------------------------------- */

btsso_error_t *btsso_store_audit_list(btsso_store_t *s, apr_pool_t *p,
                                      const char *account, int limit,
                                      apr_array_header_t **out); /* btsso_audit_t * */

/* ---- signins: sign-in records --------------------------------------------------- */

/* Refusals of one account kept at most (the oldest beyond are pruned). */
#define BTSSO_SIGNIN_KEEP 1000
/* At most this many records per page of btsso_store_signin_list. */
#define BTSSO_SIGNIN_LIST_MAX 500

/* One sign-in: a refusal (result is its code) or the account's last
 * success (result "ok"). */
typedef struct btsso_signin_t {
    const char *reference;      /* "XXXX-XXXX" (core/refcode.h) */
    apr_time_t at;              /* whole seconds */
    const char *result;         /* "ok" or the refusal's code */
    const char *email;          /* NULL when not known */
    const char *name_id;        /* NULL when not known */
    const char *idp;            /* entityID, NULL when not known */
    const char *detail;         /* the operator detail, NULL for none */
} btsso_signin_t;

/*
 * Record a refusal of a sign-in of account (si->result is not "ok") and
 * prune the account's refusals to the newest `keep`.  Texts are clipped
 * (email 254, name_id and idp 1024, detail 2048 bytes) and control
 * characters become spaces.  Errors: bad_signin 400, store errors.
 */
btsso_error_t *btsso_store_signin_add(btsso_store_t *s, const char *account,
                                      const btsso_signin_t *si, int keep);

/* What one process counted for one account since it last wrote. */
typedef struct btsso_signin_cert_seen_t {
    const char *sha256;
    apr_time_t at;              /* when it last verified a login */
} btsso_signin_cert_seen_t;

typedef struct btsso_signin_counts_t {
    apr_time_t day;             /* any time in the UTC day counted */
    apr_int64_t ok, failed, unrecorded;
    const btsso_signin_t *last_ok;  /* NULL: no success to note */
    const apr_array_header_t *certs; /* btsso_signin_cert_seen_t, or NULL */
} btsso_signin_counts_t;

/* Add the counts to the account's day, make last_ok the account's last
 * success unless a newer one is stored, and move each certificate's
 * last_verified forward.  One transaction. */
btsso_error_t *btsso_store_signin_counts_add(btsso_store_t *s,
                                             const char *account,
                                             const btsso_signin_counts_t *c);

typedef struct btsso_signin_filter_t {
    int failed_only;            /* refusals only */
    const char *reference;      /* normalized code, NULL: any */
    apr_time_t before_at;       /* cursor (0: from the newest) */
    const char *before_ref;
    int limit;                  /* 1..BTSSO_SIGNIN_LIST_MAX (else 100) */
} btsso_signin_filter_t;

/* The account's sign-ins, newest first (btsso_signin_t *); *more is set
 * when a further page exists (its cursor: the last element's at and
 * reference). */
btsso_error_t *btsso_store_signin_list(btsso_store_t *s, apr_pool_t *p,
                                       const char *account,
                                       const btsso_signin_filter_t *f,
                                       apr_array_header_t **out, int *more);

typedef struct btsso_signin_day_t {
    const char *day;            /* "YYYY-MM-DD", UTC */
    apr_int64_t ok, failed, unrecorded;
} btsso_signin_day_t;

typedef struct btsso_signin_summary_t {
    btsso_signin_t *last_ok;        /* NULL when none */
    btsso_signin_t *last_failed;    /* NULL when none */
    apr_array_header_t *days;       /* btsso_signin_day_t, newest first */
    apr_hash_t *cert_verified;      /* sha256 -> apr_time_t * (0: never) */
} btsso_signin_summary_t;

/* The counts of the last `days` days that have any, the last success and
 * refusal, and when each certificate last verified a login. */
btsso_error_t *btsso_store_signin_summary(btsso_store_t *s, apr_pool_t *p,
                                          const char *account, int days,
                                          btsso_signin_summary_t **out);

/* "YYYY-MM-DD" of t in UTC. */
const char *btsso_signin_day(apr_pool_t *p, apr_time_t t);

#endif /* BTSSO_STORE_H */
