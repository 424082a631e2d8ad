/*
 * btsso_handlers.h - the SP endpoint handlers, one file each, and the
 * request helpers they share.
 */
#ifndef BTSSO_HANDLERS_H
#define BTSSO_HANDLERS_H

#include <httpd.h>
#include "btsso_acct.h"
#include "store/store.h"
#include "saml/response.h"

/* ---- helpers the endpoints stand on (never an endpoint's code) ---------- */

/* glue_util.c: request arguments, redirects, return targets. */
const char *btsso_query_arg(request_rec *r, const char *name);
const char *btsso_urlencoded_arg(apr_pool_t *p, const char *q,
                                 apr_size_t qlen, const char *name,
                                 apr_size_t *vlen);
/* glue_util.c: the whole request body, at most max octets (413
 * "too_large" above it, 400 "bad_request" when it cannot be read; the
 * connection is then closed), NUL-terminated. */
btsso_error_t *btsso_read_body(request_rec *r, apr_size_t max, char **out,
                               apr_size_t *out_len);
const char *btsso_return_arg(request_rec *r);
int btsso_redirect(request_rec *r, int status, const char *location);
const char *btsso_discovery_url(request_rec *r, const char *return_to);
/* glue_util.c: the SP metadata for an account (NULL: global). */
const char *btsso_sp_metadata_xml(request_rec *r, const char *account,
                                  int shared, btsso_error_t **err);

/* glue_signin.c: send the browser to the account's IdP. */
int btsso_start_login(request_rec *r, const btsso_acct_entry *e,
                      const char *return_to, int test);

/* test_result.c: the result page of a /test/<account> round trip. */
int btsso_send_test_result(request_rec *r, const char *account,
                           const btsso_assertion_t *a, const char *email,
                           const btsso_user_t *user,
                           const btsso_error_t *err);

/* audit_trail.c: a /test/<account> login succeeded for email (checked with
 * e's settings): record it when email administers the account, for
 * PUT enabled's test rule; the outcome goes to r->notes BTSSO_NOTE_TEST
 * ("counted", "not_admin", "stale", "error") for the result page. */
#define BTSSO_NOTE_TEST "btsso-test-counted"
void btsso_test_record(request_rec *r, btsso_store_t *st,
                       const char *account, const btsso_acct_entry *e,
                       const char *email);

/* ---- the endpoints, one file each (sp_routes.c dispatches) -------------- */

/* h_login.c */
int btsso_handle_login(request_rec *r, const char *account);
int btsso_handle_test(request_rec *r, const char *account);

/* h_discovery.c */
int btsso_handle_discovery(request_rec *r);

/* h_acs.c */
int btsso_handle_acs(request_rec *r, const char *path_account);

/* h_session.c */
int btsso_handle_session(request_rec *r);

/* h_slo.c: GET /logout (local logout, then Single Logout at the IdP) and
 * GET /slo (the IdP's LogoutResponse or LogoutRequest). */
int btsso_handle_logout(request_rec *r);
int btsso_handle_slo(request_rec *r);

#endif /* BTSSO_HANDLERS_H */
