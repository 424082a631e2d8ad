/*
 * response.h - validating a SAML 2.0 <samlp:Response> (Web Browser SSO
 * profile, HTTP-POST binding) received at the Assertion Consumer Service.
 *
 * This is the security core of mod_btsso.  It is a pure function of its
 * arguments: no request_rec, no I/O, no clock, no logging.  The caller
 * passes the SAMLResponse POST parameter, what it expects (audience, ACS
 * URL, IdP entityID, the account's usable certificates, "now", skew, the
 * request ID it sent), and gets back either the verified assertion facts or
 * a btsso_error_t with a stable code.
 *
 * What is enforced (see SPEC.md "Security baseline"):
 *   - size bounded before and after base64 decoding; no DTD (any DOCTYPE is
 *     refused), no entities, no network, no xml:id;
 *   - exactly one saml:Assertion or saml:EncryptedAssertion in the whole
 *     document, as a direct child of the Response; anything else (wrapped
 *     copies in Extensions/Object/Advice, nested assertions) is refused;
 *   - XML signatures: each signed element (Response, Assertion) carries
 *     exactly one ds:Signature as a direct child, with exactly one
 *     Reference whose URI is "#" + the ID of that very element; IDs are
 *     registered only for these elements and any duplicate ID in the
 *     document is refused; no ds:Signature anywhere else; transforms only
 *     enveloped-signature and exclusive c14n without comments; algorithms
 *     from the allow-list; no ds:Object; keys only from expect->trusted_certs
 *     (KeyInfo is never used to find a key; a KeyInfo with RetrievalMethod or
 *     any URI attribute is refused); the Response, the Assertion, or both
 *     must be signed, and every signature present must verify;
 *   - everything returned is read from the verified nodes themselves;
 *   - EncryptedAssertion: RSA-OAEP key transport with the SP key, AES-GCM or
 *     AES-CBC data; the decrypted Assertion is parsed with the same hardened
 *     parser and validated like a plain one;
 *   - Status Success; Issuer; Destination; bearer SubjectConfirmationData
 *     (Recipient, NotOnOrAfter, NotBefore, InResponseTo); Conditions
 *     (NotBefore, NotOnOrAfter, AudienceRestriction, no unknown condition);
 *     AuthnStatement (SessionNotOnOrAfter); IssueInstant not in the future.
 *
 * Replay is NOT handled here: after success, the caller records
 * assertion_id in its replay cache until assertion_not_on_or_after.
 *
 * Before first use call btsso_xmlsec_init() (xmlsec_glue.h).
 */
#ifndef BTSSO_RESPONSE_H
#define BTSSO_RESPONSE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include "core/btsso_error.h"
#include "crypto/cert.h"
#include "saml/xmlsec_glue.h"

/* ---- algorithm allow-lists (bit sets) ----------------------------------- */

/* ds:SignatureMethod */
#define BTSSO_SIG_RSA_SHA1      0x0001u
#define BTSSO_SIG_RSA_SHA256    0x0002u
#define BTSSO_SIG_RSA_SHA384    0x0004u
#define BTSSO_SIG_RSA_SHA512    0x0008u
#define BTSSO_SIG_ECDSA_SHA1    0x0010u
#define BTSSO_SIG_ECDSA_SHA256  0x0020u
#define BTSSO_SIG_ECDSA_SHA384  0x0040u
#define BTSSO_SIG_ECDSA_SHA512  0x0080u
/* What 0 in btsso_response_expect_t.sig_algs means: SHA-256 and stronger. */
#define BTSSO_SIG_DEFAULT (BTSSO_SIG_RSA_SHA256 | BTSSO_SIG_RSA_SHA384 | \
                           BTSSO_SIG_RSA_SHA512 | BTSSO_SIG_ECDSA_SHA256 | \
                           BTSSO_SIG_ECDSA_SHA384 | BTSSO_SIG_ECDSA_SHA512)

/* ds:DigestMethod */
#define BTSSO_DIGEST_SHA1       0x0001u
#define BTSSO_DIGEST_SHA256     0x0002u
#define BTSSO_DIGEST_SHA384     0x0004u
#define BTSSO_DIGEST_SHA512     0x0008u
/* What 0 in btsso_response_expect_t.digest_algs means. */
#define BTSSO_DIGEST_DEFAULT (BTSSO_DIGEST_SHA256 | BTSSO_DIGEST_SHA384 | \
                              BTSSO_DIGEST_SHA512)

/* Default bounds when max_size / max_xml_size are 0. */
#define BTSSO_RESPONSE_DEFAULT_MAX_B64   (512 * 1024)
#define BTSSO_RESPONSE_DEFAULT_MAX_XML   (384 * 1024)

/*
 * Turn one algorithm name of the BTSSOSignatureAlgorithms directive into
 * bits: "rsa-sha1", "rsa-sha256", "rsa-sha384", "rsa-sha512", "ecdsa-sha1",
 * "ecdsa-sha256", "ecdsa-sha384", "ecdsa-sha512" (case-insensitive).  A
 * "-sha1" name also allows the SHA-1 digest.  *sig_bits and *digest_bits
 * are OR-ed into.  Returns 0, or -1 for an unknown name.
 */
int btsso_response_alg_parse(const char *name, unsigned int *sig_bits,
                             unsigned int *digest_bits);

/* ---- what the caller expects --------------------------------------------- */

typedef struct btsso_response_expect_t {
    /* Our SP entityID: must appear in every AudienceRestriction. Required. */
    const char *sp_entity_id;
    /* The ACS URL this response was posted to: Response Destination and
     * bearer SubjectConfirmationData Recipient must equal it. Required. */
    const char *acs_url;
    /* The IdP entityID of the account (Issuer of Response and Assertion).
     * Required: use btsso_response_peek_issuer() to find the account. */
    const char *idp_entity_id;
    /* The account's usable certificates (const btsso_cert_t *; only der and
     * der_len are used).  The caller passes only the primary/secondary
     * certificates valid at `now`.  Empty or NULL: "no_usable_certificate". */
    const apr_array_header_t *trusted_certs;
    /* SP decryption keys (btsso_sp_key_t *, current then next; only the
     * first two are used) for an EncryptedAssertion: each tries at most
     * one EncryptedKey, the one whose KeyInfo carries its certificate,
     * else the first one naming no other SP key.  NULL/empty: encrypted
     * assertions are refused with "decrypt_no_key". */
    const apr_array_header_t *sp_keys;
    /* The clock, as APR time (microseconds since the epoch). */
    apr_time_t now;
    /* Allowed clock difference with the IdP, seconds (BTSSOClockSkew). */
    int clock_skew;
    /* ID of the AuthnRequest we sent (SP-initiated), or NULL. */
    const char *in_response_to;
    /* With in_response_to == NULL: non-zero accepts an unsolicited
     * (IdP-initiated) response, which must then carry no InResponseTo. */
    int allow_idp_initiated;
    /* BTSSO_SIG_* and BTSSO_DIGEST_* bit sets; 0 means the default. */
    unsigned int sig_algs;
    unsigned int digest_algs;
    /* Bounds on the base64 input and on the decoded XML (0: defaults). */
    apr_size_t max_size;
    apr_size_t max_xml_size;
} btsso_response_expect_t;

/* ---- what a valid response yields -------------------------------------- */

typedef struct btsso_attribute_t {
    const char *name;           /* Name="..." */
    const char *name_format;    /* NULL when absent */
    const char *friendly_name;  /* NULL when absent */
    /* const char *, document order, every value kept.  A value is the full
     * text of the AttributeValue (all text and CDATA nodes concatenated,
     * comments skipped, never truncated at a comment), leading/trailing
     * XML whitespace trimmed. */
    apr_array_header_t *values;
} btsso_attribute_t;

typedef struct btsso_assertion_t {
    const char *issuer;            /* the Assertion's Issuer */
    const char *name_id;           /* full text, trimmed */
    const char *name_id_format;    /* NULL when absent */
    const char *name_id_name_qualifier;     /* NULL when absent */
    const char *name_id_sp_name_qualifier;  /* NULL when absent */
    const char *session_index;     /* first AuthnStatement's, or NULL */
    const char *authn_context_class;  /* AuthnContextClassRef or NULL */
    const char *assertion_id;      /* for the replay cache */
    const char *response_id;
    const char *in_response_to;    /* NULL for IdP-initiated */
    apr_time_t issue_instant;      /* the Assertion's */
    apr_time_t authn_instant;      /* 0 when absent */
    apr_time_t session_not_on_or_after;  /* 0 when absent */
    /* Replay-cache expiry: the latest NotOnOrAfter among Conditions and the
     * accepted bearer SubjectConfirmationData. */
    apr_time_t assertion_not_on_or_after;
    int response_signed;           /* the Response signature verified */
    int assertion_signed;          /* the Assertion signature verified */
    int was_encrypted;             /* came as an EncryptedAssertion */
    /* The trusted certificate (an element of expect->trusted_certs) whose
     * key verified the signature read last (the Assertion's when both
     * are signed): which one "verified the login". */
    const btsso_cert_t *verified_by;
    /* btsso_attribute_t, document order over all AttributeStatements;
     * an attribute name present twice gives two entries. */
    apr_array_header_t *attributes;
} btsso_assertion_t;

/*
 * Validate a SAMLResponse.  `input` is the POST parameter value (base64,
 * whitespace allowed; text starting with '<' is taken as XML as is), `len`
 * its length.  On success *out is filled from the verified nodes and NULL
 * is returned.  All memory comes from p.  Thread-safe after
 * btsso_xmlsec_init(); writes nothing to stderr.
 *
 * Errors: e->message is safe to show to the user, e->detail (for the log)
 * names the element, ID or time involved, never key material.  Codes, in
 * the order the checks run (HTTP status):
 *   bad_expectation (500)  caller passed no sp_entity_id/acs_url/IdP
 *   empty (400), too_large (413), bad_base64 (400)
 *   dtd_forbidden (400)    any DOCTYPE, in the response or the decrypted
 *                          assertion (so no entity of any kind)
 *   not_xml (400)          not well-formed (line and libxml2 message)
 *   not_response (400)     root is not samlp:Response
 *   malformed (400)        Version not 2.0, ID missing or not an NCName,
 *                          IssueInstant or another time unparsable
 *   xml_id_forbidden       an xml:id attribute anywhere
 *   unsolicited            no request expected, IdP-initiated disallowed
 *   status_not_success     Status not Success (codes + message in detail)
 *   issuer_mismatch, no_issuer
 *   bad_issuer             Response or Assertion Issuer holds a control
 *                          character (core/text.h)
 *   issuer_format          Issuer/@Format present and not ...:entity
 *   destination_mismatch, destination_missing (signed Response only)
 *   in_response_to_mismatch, in_response_to_unexpected
 *   no_assertion, multiple_assertions, assertion_misplaced
 *   duplicate_id           another element carries a signed element's ID
 *   sig_misplaced          a ds:Signature that signs nothing consumed
 *   sig_multiple           two ds:Signature on one element
 *   sig_structure          ds:Object or anything unexpected in Signature
 *   sig_reference          not exactly one Reference, or its URI is not
 *                          "#" + the ID of the element the Signature is in
 *   sig_transform          c14n/transform other than exclusive c14n
 *                          without comments and enveloped-signature
 *   sig_algorithm          SignatureMethod/DigestMethod not allowed
 *   sig_keyinfo_forbidden  KeyInfo with RetrievalMethod or a URI
 *   no_usable_certificate  trusted_certs empty
 *   sig_invalid            no trusted certificate verifies the signature
 *   decrypt_no_key (500)   EncryptedAssertion but no sp_keys
 *   enc_algorithm          not RSA-OAEP(-MGF1P) / AES-CBC / AES-GCM
 *   too_many_encrypted_keys  more EncryptedKey elements than sp_keys
 *                          (refused before any RSA operation)
 *   decrypt_failed         one answer (same message and detail) for
 *                          every failure from the key transport up to the
 *                          decrypted Assertion's signature: no SP key
 *                          decrypts it, bad padding or tag, not XML, a
 *                          DOCTYPE, not an Assertion, any refusal of its
 *                          header, IDs or signature, and (only the
 *                          Response signed) an Issuer other than the
 *                          IdP's (no decryption oracle)
 *   not_signed             neither Response nor Assertion signed
 *   issued_in_future       IssueInstant > now + skew
 *   no_name_id, bad_name_id (element children, empty, or a control
 *                          character in the NameID or its qualifiers)
 *   bad_attribute          a control character in an attribute's Name,
 *                          NameFormat, FriendlyName or any value
 *   no_bearer, recipient_mismatch, confirmation_no_expiry,
 *   confirmation_expired, confirmation_not_yet_valid
 *   conditions_missing, not_yet_valid, expired, condition_unknown,
 *   audience_mismatch, audience_missing
 *   no_authn_statement, session_expired
 *   internal (500)         xmlsec could not create a context
 * All codes without a status above are 403.
 */
btsso_error_t *btsso_response_validate(apr_pool_t *p, const char *input,
                                       apr_size_t len,
                                       const btsso_response_expect_t *ex,
                                       btsso_assertion_t **out);

/*
 * Return the Issuer of a SAMLResponse before any trust decision, so the
 * caller can find the account (and its certificates) first.  Same decoding,
 * bounds and hardened parser as btsso_response_validate(); the Response's
 * Issuer, else the Issuer of its single plain Assertion.  NOTHING is
 * verified: use the value only to choose what to validate against.
 * max_size: bound on the base64 input (0: the default).
 * Errors: those of decoding/parsing, plus no_issuer and bad_issuer (403).
 */
btsso_error_t *btsso_response_peek_issuer(apr_pool_t *p, const char *input,
                                          apr_size_t len, apr_size_t max_size,
                                          const char **issuer);

/*
 * The same two steps on one parse (the global ACS peeks, then validates):
 * btsso_response_load decodes and parses as btsso_response_validate does
 * (max_b64/max_xml: 0 for the defaults) into a document owned by p;
 * btsso_response_doc_issuer is btsso_response_peek_issuer on it; and
 * btsso_response_validate_doc validates it with ex (whose max_size and
 * max_xml_size are then not used: the load applied its own).  A document
 * is validated at most once: a second call is refused (internal).
 */
typedef struct btsso_response_doc_t btsso_response_doc_t;

btsso_error_t *btsso_response_load(apr_pool_t *p, const char *input,
                                   apr_size_t len, apr_size_t max_b64,
                                   apr_size_t max_xml,
                                   btsso_response_doc_t **out);
btsso_error_t *btsso_response_doc_issuer(apr_pool_t *p,
                                         const btsso_response_doc_t *d,
                                         const char **issuer);
btsso_error_t *btsso_response_validate_doc(apr_pool_t *p,
                                           btsso_response_doc_t *d,
                                           const btsso_response_expect_t *ex,
                                           btsso_assertion_t **out);

/* Find an attribute by Name (exact) or, failing that, FriendlyName; NULL
 * when absent. */
const btsso_attribute_t *btsso_assertion_attribute(const btsso_assertion_t *a,
                                                   const char *name);

#endif /* BTSSO_RESPONSE_H */
