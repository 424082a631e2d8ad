/*
 * btsso_policy.h - the per-account policy in the httpd glue (policy.c):
 * the admin API's JSON form, the ACS check and what a login asks for.
 * The record and its checks are the store's (store.h btsso_policy_t).
 */
#ifndef BTSSO_POLICY_H
#define BTSSO_POLICY_H

#include <httpd.h>
#include <jansson.h>
#include "btsso_acct.h"
#include "saml/authnreq.h"
#include "saml/response.h"

/* PUT <account>/policy's body as a policy (not yet checked against
 * BTSSOSessionMaxAge: btsso_store_policy_set does).  A missing or null
 * field is the server-wide behaviour; other fields are ignored (listed in
 * *ignored, comma-separated, or NULL).  Error: bad_policy 400 for a field
 * of the wrong type. */
btsso_error_t *btsso_policy_from_json(apr_pool_t *p, json_t *body,
                                      btsso_policy_t **out,
                                      const char **ignored);

/* The policy as GET config shows it; server_max_age: BTSSOSessionMaxAge. */
json_t *btsso_policy_json(apr_pool_t *p, const btsso_policy_t *pol,
                          apr_interval_time_t server_max_age);

/* NULL when the assertion meets the account's policy, else the refusal
 * (authn_context 403; the detail names the class received). */
btsso_error_t *btsso_policy_check_assertion(request_rec *r,
                                            const btsso_acct_entry *e,
                                            const btsso_assertion_t *a);

/* What an AuthnRequest of the account asks for: ForceAuthn (always for a
 * test sign-in, so an administrator can sign in as someone else) and, when
 * the administrator opted in, RequestedAuthnContext. */
void btsso_policy_authnreq(const btsso_acct_entry *e, int test,
                           btsso_authnreq_t *req);

/* A new session's end: expires (the IdP's SessionNotOnOrAfter, or 0)
 * capped by the policy's session lifetime from now. */
apr_time_t btsso_policy_session_expiry(const btsso_acct_entry *e,
                                       apr_time_t expires, apr_time_t now);

#endif /* BTSSO_POLICY_H */
