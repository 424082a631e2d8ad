/*
 * authnreq.h - SAML protocol messages the SP sends (AuthnRequest,
 * LogoutRequest, LogoutResponse) and the HTTP-Redirect binding both ways
 * (SAML 2.0 bindings section 3.4): raw DEFLATE, base64, URL-encoding and the
 * query-string signature over the exact URL-encoded octets.
 *
 * Pure functions: the time comes in as "now", randomness from a caller's
 * source (or OpenSSL's RAND_bytes), nothing logs.  The XML is built with the
 * libxml2 tree API, so caller values are always escaped.
 */
#ifndef BTSSO_AUTHNREQ_H
#define BTSSO_AUTHNREQ_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include "core/btsso_error.h"
#include "crypto/cert.h"
#include "crypto/spkey.h"

#define BTSSO_NAMEID_UNSPECIFIED \
    "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
#define BTSSO_NAMEID_EMAIL \
    "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
#define BTSSO_NAMEID_PERSISTENT \
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
#define BTSSO_NAMEID_TRANSIENT \
    "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"

#define BTSSO_STATUS_SUCCESS "urn:oasis:names:tc:SAML:2.0:status:Success"
#define BTSSO_STATUS_REQUESTER "urn:oasis:names:tc:SAML:2.0:status:Requester"
#define BTSSO_STATUS_RESPONDER "urn:oasis:names:tc:SAML:2.0:status:Responder"

/* Largest inflated message btsso_redirect_decode accepts by default, and
 * the largest inflation ratio (deflated XML rarely exceeds 1:15). */
#define BTSSO_REDIRECT_MAX_XML   (256 * 1024)
#define BTSSO_REDIRECT_MAX_RATIO 100

/*
 * A source of random octets: fill buf with len octets, return 0 on
 * success.  Tests pass a fixed source; NULL everywhere means RAND_bytes.
 */
typedef int btsso_random_fn(void *baton, unsigned char *buf, apr_size_t len);

typedef struct btsso_authnreq_t {
    const char *sp_entity_id;   /* Issuer */
    const char *idp_sso_url;    /* Destination and redirect target; may
                                   already carry a query */
    const char *acs_url;        /* AssertionConsumerServiceURL */
    const char *nameid_format;  /* NameIDPolicy Format; NULL: unspecified */
    int force_authn;            /* ForceAuthn="true" when non-zero */
    int is_passive;             /* IsPassive="true" when non-zero */
    /* RequestedAuthnContext Comparison="exact" with these
     * AuthnContextClassRef URIs (const char *); NULL or empty: none. */
    const apr_array_header_t *requested_classes;
} btsso_authnreq_t;

typedef struct btsso_logoutreq_t {
    const char *sp_entity_id;      /* Issuer */
    const char *destination;       /* the IdP's SLO endpoint */
    const char *name_id;           /* the NameID the IdP asserted */
    const char *name_id_format;    /* NULL: no Format attribute */
    const char *name_qualifier;    /* NULL: left out */
    const char *sp_name_qualifier; /* NULL: left out */
    const char *session_index;     /* NULL: left out */
} btsso_logoutreq_t;

typedef struct btsso_logoutresp_t {
    const char *sp_entity_id;    /* Issuer */
    const char *destination;     /* the IdP's SLO (response) endpoint */
    const char *in_response_to;  /* ID of the IdP's LogoutRequest */
    const char *status_code;     /* NULL: Success */
    const char *status_message;  /* NULL: left out */
} btsso_logoutresp_t;

/* A message the SP built. */
typedef struct btsso_saml_msg_t {
    const char *id;     /* "_" + 32 hex digits (128 random bits); keep it to
                           check InResponseTo */
    const char *xml;    /* the message, no XML declaration */
    const char *url;    /* redirect URL; NULL from the *_build functions */
} btsso_saml_msg_t;

/*
 * Build the messages.  IssueInstant is now (UTC, whole seconds).  Required
 * fields missing or not valid UTF-8: "bad_message_params" (500, detail
 * names the field); Destination not an absolute http(s) URL or holding a
 * fragment: "bad_endpoint" (500); the random source failing: "no_random"
 * (500).
 */
btsso_error_t *btsso_authnreq_build(apr_pool_t *p, const btsso_authnreq_t *req,
                                    apr_time_t now, btsso_random_fn *rnd,
                                    void *rnd_baton, btsso_saml_msg_t **out);
btsso_error_t *btsso_logoutreq_build(apr_pool_t *p,
                                     const btsso_logoutreq_t *req,
                                     apr_time_t now, btsso_random_fn *rnd,
                                     void *rnd_baton, btsso_saml_msg_t **out);
btsso_error_t *btsso_logoutresp_build(apr_pool_t *p,
                                      const btsso_logoutresp_t *resp,
                                      apr_time_t now, btsso_random_fn *rnd,
                                      void *rnd_baton, btsso_saml_msg_t **out);

/*
 * Encode xml for the HTTP-Redirect binding as parameter param
 * ("SAMLRequest" or "SAMLResponse") and return the full URL:
 *   dest_url ('?' or, when it already has a query, '&')
 *   param=...[&RelayState=...][&SigAlg=...&Signature=...]
 * With key, the signature covers exactly the URL-encoded
 * "param=..[&RelayState=..]&SigAlg=.." octets (bindings 3.4.4.1); sigalg
 * NULL means the key's default.  Without key the URL is unsigned.
 * relay_state may be NULL; SAML limits it to 80 octets, which IdPs seldom
 * enforce, so it is not checked here beyond BTSSO_URL_MAX_RETURN.
 * Errors: bad_endpoint, bad_message_params, sigalg_unsupported,
 * sign_failed, deflate_failed (all 500).
 */
btsso_error_t *btsso_redirect_encode(apr_pool_t *p, const char *dest_url,
                                     const char *param, const char *xml,
                                     const char *relay_state,
                                     const btsso_spkey_t *key,
                                     const char *sigalg, const char **url_out);

/* Build and encode in one go; (*out)->url is the redirect URL. */
btsso_error_t *btsso_authnreq_redirect(apr_pool_t *p,
                                       const btsso_authnreq_t *req,
                                       const char *relay_state,
                                       const btsso_spkey_t *key,
                                       const char *sigalg, apr_time_t now,
                                       btsso_random_fn *rnd, void *rnd_baton,
                                       btsso_saml_msg_t **out);
btsso_error_t *btsso_logoutreq_redirect(apr_pool_t *p,
                                        const btsso_logoutreq_t *req,
                                        const char *relay_state,
                                        const btsso_spkey_t *key,
                                        const char *sigalg, apr_time_t now,
                                        btsso_random_fn *rnd, void *rnd_baton,
                                        btsso_saml_msg_t **out);
btsso_error_t *btsso_logoutresp_redirect(apr_pool_t *p,
                                         const btsso_logoutresp_t *resp,
                                         const char *relay_state,
                                         const btsso_spkey_t *key,
                                         const char *sigalg, apr_time_t now,
                                         btsso_random_fn *rnd,
                                         void *rnd_baton,
                                         btsso_saml_msg_t **out);

/* A message received through the HTTP-Redirect binding. */
typedef struct btsso_redirect_msg_t {
    const char *param;          /* "SAMLRequest" or "SAMLResponse" */
    const char *xml;            /* inflated, NUL-terminated, NOT parsed:
                                   parse it with the hardened parser */
    apr_size_t xml_len;
    const char *relay_state;    /* decoded; NULL when absent */
    const char *sigalg;         /* decoded; NULL when unsigned */
    const unsigned char *signature;  /* NULL when unsigned */
    apr_size_t signature_len;
    const char *signed_octets;  /* "param=..[&RelayState=..]&SigAlg=.." as
                                   received, byte for byte; NULL unsigned */
    apr_size_t signed_len;
} btsso_redirect_msg_t;

/*
 * Decode a raw query string (as received, without '?').  Exactly one of
 * SAMLRequest / SAMLResponse; SigAlg and Signature together or not at all;
 * none of the SAML parameters twice (parameter pollution); other parameters
 * ignored.  SAMLEncoding, when present, must be the DEFLATE URN.  The XML
 * may inflate to at most max_xml octets (0: BTSSO_REDIRECT_MAX_XML) and
 * BTSSO_REDIRECT_MAX_RATIO times its compressed size.
 * Errors (400 unless noted): no_saml_message, duplicate_parameter,
 * bad_signature_params, bad_encoding, bad_base64, inflate_failed,
 * too_large (413), unsupported_encoding.
 */
btsso_error_t *btsso_redirect_decode(apr_pool_t *p, const char *query,
                                     apr_size_t max_xml,
                                     btsso_redirect_msg_t **out);

/*
 * Verify the Redirect-binding signature of msg with the first certificate
 * (btsso_cert_t *) that is valid at now and verifies it.  allowed_sigalgs
 * (const char *) NULL means RSA-SHA256/384/512 and ECDSA-SHA256/384/512.
 * Errors (all 403): unsigned (no signature where one is needed),
 * sigalg_not_allowed, no_usable_certificate (none given, or none valid at
 * now), sig_invalid (no certificate verifies; detail counts them),
 * sigalg_unsupported (the algorithm fits none of the certificates).
 */
btsso_error_t *btsso_redirect_verify(apr_pool_t *p,
                                     const btsso_redirect_msg_t *msg,
                                     const apr_array_header_t *certs,
                                     const apr_array_header_t *allowed_sigalgs,
                                     apr_time_t now);

#endif /* BTSSO_AUTHNREQ_H */
