/*
 * logout.h - reading the Single Logout messages an IdP sends us: its
 * <samlp:LogoutRequest> (it ends sessions) and its <samlp:LogoutResponse>
 * (the answer to ours).
 *
 * Over HTTP-Redirect the signature covers the query string
 * (btsso_redirect_verify in authnreq.h), not the XML: btsso_logout_parse
 * then sees the XML after the signature was checked and only has to read
 * it safely.  Over HTTP-POST the signature is in the XML:
 * btsso_logout_parse_verified checks it on the very tree it then reads.  Hardened like response.c:
 * a size bound before parsing, any DOCTYPE refused, no entities, no
 * network, nothing written to stderr, and element children read only at
 * the places the schema puts them.
 *
 * Pure functions: no request_rec, no clock (the caller passes "now"), no
 * logging.  Call btsso_xml_init() (metadata.h) once per process first.
 */
#ifndef BTSSO_LOGOUT_H
#define BTSSO_LOGOUT_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include "core/btsso_error.h"

/* Default bound on the XML when max_len is 0. */
#define BTSSO_LOGOUT_MAX_XML (64 * 1024)
/* At most this many SessionIndex elements are read from one request. */
#define BTSSO_LOGOUT_MAX_SESSION_INDEXES 32

typedef enum {
    BTSSO_LOGOUT_REQUEST = 1,
    BTSSO_LOGOUT_RESPONSE = 2
} btsso_logout_kind_t;

typedef struct btsso_logout_msg_t {
    btsso_logout_kind_t kind;
    const char *id;                 /* ID (an NCName) */
    const char *issuer;             /* saml:Issuer text, trimmed */
    const char *destination;        /* NULL when absent */
    apr_time_t issue_instant;
    /* LogoutRequest only */
    apr_time_t not_on_or_after;     /* 0 when absent */
    const char *reason;             /* NULL when absent */
    const char *name_id;            /* trimmed text of saml:NameID */
    const char *name_id_format;     /* NULL when absent */
    const char *name_qualifier;     /* NULL when absent */
    const char *sp_name_qualifier;  /* NULL when absent */
    apr_array_header_t *session_indexes;  /* const char *, may be empty:
                                             then every session of NameID */
    /* LogoutResponse only */
    const char *in_response_to;     /* NULL when absent */
    const char *status_code;        /* top-level StatusCode Value */
    const char *status_subcode;     /* first nested StatusCode, or NULL */
    const char *status_message;     /* NULL when absent */
} btsso_logout_msg_t;

/*
 * Parse a LogoutRequest or LogoutResponse (no XML declaration needed).
 * Errors (400 unless noted): empty, too_large (413), dtd_forbidden,
 * not_xml, not_logout (root is neither samlp:LogoutRequest nor
 * samlp:LogoutResponse), malformed (Version not 2.0, ID missing or not an
 * NCName, IssueInstant or NotOnOrAfter unparsable, a child element twice
 * where the schema allows one, too many SessionIndex elements), no_issuer,
 * no_name_id (request without saml:NameID), encrypted_id_unsupported
 * (saml:EncryptedID or saml:BaseID instead of NameID), no_status
 * (response without Status/StatusCode Value).
 */
btsso_error_t *btsso_logout_parse(apr_pool_t *p, const char *xml,
                                  apr_size_t len, apr_size_t max_len,
                                  btsso_logout_msg_t **out);

/*
 * The same for a message received over the HTTP-POST binding, whose
 * signature is an enveloped XML signature on the root element: that
 * signature must verify with one of certs (const btsso_cert_t *: the
 * account's usable certificates) under the rules of saml/xmldsig.h
 * (sig_algs/digest_algs: BTSSO_SIG_* / BTSSO_DIGEST_* bits, 0 the
 * defaults) before anything is read; the message returned is read from
 * the verified tree.  An unsigned message is refused (not_signed, 403),
 * as the Redirect path refuses one without a query signature.  Errors:
 * those of btsso_logout_parse and btsso_xmldsig_verify_root.
 */
btsso_error_t *btsso_logout_parse_verified(apr_pool_t *p, const char *xml,
                                           apr_size_t len,
                                           apr_size_t max_len,
                                           const apr_array_header_t *certs,
                                           unsigned int sig_algs,
                                           unsigned int digest_algs,
                                           btsso_logout_msg_t **out);

typedef struct btsso_logout_expect_t {
    const char *idp_entity_id;   /* Issuer must equal it (required) */
    const char *slo_url;         /* Destination must equal it (required) */
    int require_destination;     /* Destination must be present (signed
                                    messages: bindings 3.4.5.2) */
    const char *in_response_to;  /* responses: the ID of our request;
                                    NULL: not checked */
    apr_time_t now;
    int clock_skew;              /* seconds */
} btsso_logout_expect_t;

/*
 * Check a parsed message against what the SP expects.  Errors (403):
 * bad_expectation (500), issuer_mismatch, destination_missing,
 * destination_mismatch, issued_in_future, request_expired (NotOnOrAfter
 * passed), message_too_old (IssueInstant older than 10 minutes + skew:
 * a logout message is answered at once), in_response_to_mismatch.
 * The status of a response is NOT judged here: see
 * btsso_logout_status_ok.
 */
btsso_error_t *btsso_logout_check(apr_pool_t *p,
                                  const btsso_logout_msg_t *msg,
                                  const btsso_logout_expect_t *ex);

/* Non-zero when a LogoutResponse reports Success. */
int btsso_logout_status_ok(const btsso_logout_msg_t *msg);

/* Non-zero when sid is one of the request's SessionIndex values, or the
 * request names none (then it covers every session of its NameID). */
int btsso_logout_covers_session(const btsso_logout_msg_t *msg,
                                const char *sid);

#endif /* BTSSO_LOGOUT_H */
