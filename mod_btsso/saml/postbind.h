/*
 * postbind.h - the SAML HTTP-POST binding (bindings section 3.5) for the
 * messages the SP sends (AuthnRequest when the IdP offers only POST,
 * LogoutRequest, LogoutResponse) and for the ones it receives at /slo.
 *
 * Outgoing: the message gets an enveloped XML signature (exclusive c14n,
 * SHA-256 digest, the SP key's default signature method) when an SP key is
 * set, is base64-encoded, and travels in an auto-submitting HTML form.
 * The page is built here with every value HTML-escaped; the glue sends it
 * with the Content-Security-Policy btsso_post_csp() returns, whose
 * per-response script nonce is the only script the page may run and whose
 * form-action admits the IdP endpoint's origin only.
 *
 * Incoming: the SAMLRequest/SAMLResponse form value is base64 (no
 * DEFLATE); btsso_post_decode bounds and decodes it, and the XML goes to
 * the hardened parser with its signature checked by the rules of
 * saml/xmldsig.h (see btsso_logout_parse_verified in logout.h).
 *
 * Pure functions: no request_rec, no logging; randomness from a caller's
 * source (NULL: OpenSSL's RAND_bytes).  Call btsso_xmlsec_init() first.
 */
#ifndef BTSSO_POSTBIND_H
#define BTSSO_POSTBIND_H

#include <apr_pools.h>
#include "core/btsso_error.h"
#include "crypto/spkey.h"
#include "saml/authnreq.h"

/* Largest base64 form value btsso_post_decode accepts by default. */
#define BTSSO_POST_MAX_B64 (256 * 1024)

/*
 * Sign xml (a message this SP built: one root element with an ID and a
 * saml:Issuer first child) with an enveloped ds:Signature placed right
 * after the Issuer, as the SAML schema wants it: one Reference "#ID",
 * transforms enveloped-signature and exclusive c14n, DigestMethod SHA-256,
 * SignatureMethod sigalg (NULL: the key's default), and a KeyInfo with the
 * SP certificate (informative only: receivers take the key from our
 * metadata).  Errors (500): sign_failed, sigalg_unsupported,
 * bad_message_params (not our kind of message).
 */
btsso_error_t *btsso_post_sign(apr_pool_t *p, const char *xml,
                               const btsso_spkey_t *key, const char *sigalg,
                               const char **signed_xml);

/*
 * The origin ("scheme://host[:port]", lower-cased, the port only when the
 * URL names one) of an absolute http(s) URL, fit to be a CSP
 * source-expression.  Errors (500): bad_endpoint.
 */
btsso_error_t *btsso_post_origin(apr_pool_t *p, const char *url,
                                 const char **origin);

/* The page and what to send it with. */
typedef struct btsso_post_page_t {
    const char *html;       /* the whole document */
    const char *csp;        /* Content-Security-Policy header value */
    const char *nonce;      /* the script nonce (base64, 128 random bits) */
} btsso_post_page_t;

/*
 * Build the auto-submitting page that POSTs param ("SAMLRequest" or
 * "SAMLResponse") = base64(xml) and, when not NULL, RelayState to
 * dest_url.  With key, xml is signed first (btsso_post_sign).  The CSP is
 *   default-src 'none'; script-src 'nonce-N';
 *   form-action <dest origin> [<sp origin>]; base-uri 'none';
 *   frame-ancestors 'none'
 * form-action governs not only the form's action but every redirect that
 * answers the submission (Chromium enforces it so): an IdP that receives
 * our LogoutResponse and then sends the browser back to us (its ReturnTo
 * or the RelayState target, on BTSSOBaseURL) would be blocked without
 * the SP's own origin, given as sp_url (any URL on it, NULL: none).  A
 * redirect to a third origin stays blocked: the form can only lead to the
 * IdP and back.  Without JavaScript a <noscript> button submits the form.
 * Errors: bad_endpoint, bad_message_params, no_random, and those of
 * btsso_post_sign (all 500).
 */
btsso_error_t *btsso_post_page(apr_pool_t *p, const char *dest_url,
                               const char *sp_url,
                               const char *param, const char *xml,
                               const char *relay_state,
                               const btsso_spkey_t *key, const char *sigalg,
                               btsso_random_fn *rnd, void *rnd_baton,
                               btsso_post_page_t **out);

/*
 * Decode a received form value: strict base64 (whitespace skipped), at
 * most max_b64 octets (0: BTSSO_POST_MAX_B64).  The XML is NUL-terminated
 * and NOT parsed.  Errors: empty (400), too_large (413), bad_base64 (400).
 */
btsso_error_t *btsso_post_decode(apr_pool_t *p, const char *b64,
                                 apr_size_t len, apr_size_t max_b64,
                                 const char **xml, apr_size_t *xml_len);

#endif /* BTSSO_POSTBIND_H */
