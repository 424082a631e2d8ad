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

#define BTSSO_SCHEMA_VERSION 8

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
 * for SQLite and PostgreSQL; MySQL/MariaDB gets it rewritten (see the top
 * of store_sql.c and btsso_store_stmt_sql). */
const btsso_stmt_def_t *btsso_store_statements(void);

/* The SQL of d for a driver ("sqlite3", "pgsql", "mysql"; NULL or another
 * name: d->sql unchanged): the dialect's own text where store_sql.c has
 * one, else d->sql mechanically rewritten for the dialect. */
const char *btsso_store_stmt_sql(apr_pool_t *p, const char *dialect,
                                 const btsso_stmt_def_t *d);

/* The same rewrite for any text (what btsso_store_stmt_sql does when no
 * dialect text exists). */
const char *btsso_store_rewrite_sql(apr_pool_t *p, const char *dialect,
                                    const char *sql);

/* 1 for the drivers the store speaks: sqlite3, pgsql, mysql. */
int btsso_store_driver_supported(const char *driver);

/* Why DBDParams cannot serve the module's connections (mod_dbd's pool),
 * or NULL: on mysql, without reconnect=0 the client library reconnects a
 * connection the server dropped without its prepared statements and
 * session settings, and every statement on it fails from then on. */
const char *btsso_store_pool_params_problem(const char *driver,
                                            const char *params);

typedef struct btsso_store_t btsso_store_t;

/* Wrap a mod_dbd connection (ap_dbd_t): its prepared statements (label ->
 * apr_dbd_prepared_t*) are in `prepared`.  On a driver for which
 * btsso_store_prepares() and with conn_pool (the connection's pool, which
 * lives as long as the connection), the statements are not handed to
 * mod_dbd but prepared here when first used, kept in `prepared` and
 * conn_pool; a statement that does not prepare is the store unavailable
 * (503 store_unavailable). */
btsso_store_t *btsso_store_wrap(apr_pool_t *p, const apr_dbd_driver_t *driver,
                                apr_dbd_t *handle, apr_hash_t *prepared,
                                apr_pool_t *conn_pool);

/* 1 when the module prepares its statements on the driver's connections
 * itself (sqlite3: mod_dbd prepares as it opens a connection, before any
 * busy timeout can be set, and SQLite answers "database is locked" at once
 * while another connection holds a lock), 0 when mod_dbd does
 * (ap_dbd_prepare). */
int btsso_store_prepares(const char *driver);

/* The operator's SQL for a statement label (BTSSOUserQuery...) on a
 * wrapped connection, so that statements a reconnect lost are prepared
 * again as mod_dbd prepared them; sql NULL: the shipped default. */
void btsso_store_set_sql(btsso_store_t *s, const char *label,
                         const char *sql);

/* Open a connection ("sqlite3", "pgsql", "mysql") for btssoctl.  sql_overrides maps
 * the labels above to operator SQL (may be NULL).  Statements are prepared
 * on first use, so `init` works on an empty database. */
btsso_error_t *btsso_store_open(apr_pool_t *p, const char *driver,
                                const char *params, apr_hash_t *sql_overrides,
                                btsso_store_t **out);
void btsso_store_close(btsso_store_t *s);

/* "sqlite3", "pgsql" or "mysql" */
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
    apr_int64_t id;             /* btsso_store_audit_page only */
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

/* ---- audit (trail pages; enabling after a passing test) ----------------- */

#define BTSSO_AUDIT_PAGE_MAX 500

/* The account's audit rows, newest first: ids below before (0: from the
 * newest), made at or after since (0: any), at most limit (1..500, else
 * 100).  *next: the id to pass as before for the following page, 0 when
 * this page holds the oldest row. */
btsso_error_t *btsso_store_audit_page(btsso_store_t *s, apr_pool_t *p,
                                      const char *account,
                                      apr_int64_t before, apr_time_t since,
                                      int limit, apr_array_header_t **out,
                                      apr_int64_t *next); /* btsso_audit_t * */

typedef struct btsso_test_state_t {
    int passed;         /* a passing admin test counts for enabling now */
    int on_record;      /* one was ever recorded (at, by) */
    apr_time_t at;
    const char *by;     /* the email that signed in */
    apr_int64_t version, trust_version, tested_version;
    int sso_enabled;
} btsso_test_state_t;

/* Error not_found 404. */
btsso_error_t *btsso_store_test_state(btsso_store_t *s, apr_pool_t *p,
                                      const char *account,
                                      btsso_test_state_t *out);

/* A /test/<account> login succeeded for email with the settings of
 * version: when email administers the account (BTSSOAdminQuery) and no
 * IdP, certificate or mapping change came after version, it is recorded
 * (and audited, actor = email) and *counted is 1; 0: not an admin; -1:
 * the settings changed after version. */
btsso_error_t *btsso_store_test_passed(btsso_store_t *s, const char *account,
                                       const char *email,
                                       apr_int64_t version, apr_time_t now,
                                       int *counted);

/* btsso_store_set_enabled, with the admin API's test-login rule: turning
 * SSO on also needs a passing test (else 409 untested) unless
 * confirm_untested, which writes an sso.enable_untested audit row. */
btsso_error_t *btsso_store_set_enabled_tested(btsso_store_t *s,
                                              apr_pool_t *p,
                                              const char *account,
                                              int enabled, int allow_password,
                                              int confirm_untested,
                                              apr_int64_t expected_version,
                                              apr_time_t now,
                                              const char *actor,
                                              apr_array_header_t **dups,
                                              apr_array_header_t **missing);

/* ---- refresh (SPEC "Metadata refresh"; store/refresh.h has the rules) -- */

/* The schedule and last outcome of an account's metadata refresh. */
typedef struct btsso_refresh_state_t {
    const char *account;
    apr_time_t next_due;        /* 0: due now */
    int failures;               /* fetches failed in a row */
    apr_time_t last_attempt;    /* 0: never */
    apr_time_t last_ok;         /* 0: never */
    const char *last_error;     /* NULL when the last attempt worked */
    apr_time_t valid_until;     /* of the copy in force, 0 when none */
    const char *signature;      /* of the copy in force: "none",
                                   "verified", ... (saml/mdsig.h), or NULL */
} btsso_refresh_state_t;

/* *out NULL when the account has no schedule row. */
btsso_error_t *btsso_store_refresh_get(btsso_store_t *s, apr_pool_t *p,
                                       const char *account,
                                       btsso_refresh_state_t **out);
/* Writes st (a row per account, made when missing).  Not a change of the
 * configuration: no version bump, no audit row. */
btsso_error_t *btsso_store_refresh_put(btsso_store_t *s,
                                       const btsso_refresh_state_t *st);
/* Accounts with metadata from a URL whose refresh is due at now (a row is
 * made, due at once, for such an account that has none), earliest first,
 * at most limit; each a btsso_refresh_state_t *. */
btsso_error_t *btsso_store_refresh_due(btsso_store_t *s, apr_pool_t *p,
                                       apr_time_t now, int limit,
                                       apr_array_header_t **out);
/* Takes a due row for one refresh: moves next_due from seen to until only
 * when nobody moved it meanwhile (another process or node); *claimed 1
 * when this caller did. */
btsso_error_t *btsso_store_refresh_claim(btsso_store_t *s,
                                         const char *account,
                                         apr_time_t seen, apr_time_t until,
                                         apr_time_t now, int *claimed);
/*
 * What a refresh changes, in one transaction: the new metadata of the
 * same IdP (md->entity_id must be the stored one), the new signing
 * certificates (source "refresh", no role), promote (a sha256 among the
 * account's certificates, or NULL) made secondary, and st as the
 * schedule.  Audit "idp.refresh" (detail), "cert.add" per certificate,
 * "cert.role" for the promotion.  expected_version: conflict 409 when the
 * account changed since the refresh read it.
 */
btsso_error_t *btsso_store_idp_refreshed(btsso_store_t *s,
                                         const char *account,
                                         const btsso_idp_metadata_t *md,
                                         const apr_array_header_t *new_certs,
                                         const char *promote,
                                         const btsso_refresh_state_t *st,
                                         apr_int64_t expected_version,
                                         apr_time_t now, const char *actor,
                                         const char *detail);

/* ---- per-account policy (policy) ---------------------------------------- */

/* Bounds of a policy's required classes. */
#define BTSSO_POLICY_CLASSES_MAX 16
#define BTSSO_POLICY_CLASS_MAX   1024   /* bytes of one class URI */

/* SPEC "Per-account policy".  A field at its default (empty list, 0) keeps
 * the server-wide behaviour. */
typedef struct btsso_policy_t {
    /* const char *: AuthnContextClassRef URIs one of which every assertion
     * must carry (exact match); empty: any class, or none. */
    apr_array_header_t *authn_context;
    /* Also ask the IdP for them (RequestedAuthnContext, Comparison
     * "exact").  Off by default: Entra ID then refuses passkey and
     * Windows Hello sign-ins (AADSTS75011). */
    int request_authn_context;
    int force_authn;                     /* ForceAuthn="true" every login */
    apr_interval_time_t session_max_age; /* cap; 0: BTSSOSessionMaxAge */
    apr_time_t updated;                  /* 0 when never set */
} btsso_policy_t;

/* A policy with every field at its default. */
btsso_policy_t *btsso_policy_make(apr_pool_t *p);
/* Non-zero when every field is at its default. */
int btsso_policy_is_default(const btsso_policy_t *pol);
/* Whether class_ref is one of the policy's classes (any when the list is
 * empty); NULL (no AuthnContextClassRef) matches only an empty list. */
int btsso_policy_class_ok(const btsso_policy_t *pol, const char *class_ref);

/*
 * Check (and normalize: duplicates dropped, order kept) a policy: at most
 * BTSSO_POLICY_CLASSES_MAX classes, each an absolute URI (scheme ":" ...)
 * of printable ASCII without spaces, at most BTSSO_POLICY_CLASS_MAX bytes;
 * request_authn_context only with classes; session_max_age 0, or between
 * 1 s and max_age (BTSSOSessionMaxAge; 0: no upper bound).  Error:
 * bad_policy 400, message saying what is wrong.
 */
btsso_error_t *btsso_policy_check(apr_pool_t *p, btsso_policy_t *pol,
                                  apr_interval_time_t max_age);

/* The account's policy; never NULL (defaults when none is set).  No check
 * that the account exists. */
btsso_error_t *btsso_store_policy_get(btsso_store_t *s, apr_pool_t *p,
                                      const char *account,
                                      btsso_policy_t **out);
/* Replace the account's policy (checked with btsso_policy_check against
 * max_age).  Audit "policy.set".  Errors: bad_policy 400, not_found 404,
 * conflict 409 (expected_version). */
btsso_error_t *btsso_store_policy_set(btsso_store_t *s, const char *account,
                                      btsso_policy_t *pol,
                                      apr_interval_time_t max_age,
                                      apr_int64_t expected_version,
                                      apr_time_t now, const char *actor);

/* ---- signins: sign-in records --------------------------------------------------- */

/* Refusals of one account kept at most (the oldest beyond are pruned). */
#define BTSSO_SIGNIN_KEEP 1000
/* At most this many records per page of btsso_store_signin_list. */
#define BTSSO_SIGNIN_LIST_MAX 500

/* One sign-in: a refusal (result is its code) or the account's last
 * success (result "ok"). */
typedef struct btsso_signin_t {
    const char *reference;      /* e.g. "K7QX-M2PA" (core/refcode.h) */
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

/* The counts of n accounts (accounts[i] gets counts[i]) in one
 * transaction: one commit (one sync to disk on SQLite) for all of them.
 * Nothing is written when an account ID or a last success is not valid. */
btsso_error_t *btsso_store_signin_counts_add_many(
    btsso_store_t *s, int n, const char *const *accounts,
    const btsso_signin_counts_t *counts);

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
