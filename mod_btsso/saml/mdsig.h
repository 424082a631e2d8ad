/*
 * mdsig.h - what an IdP metadata document says about its own standing:
 * its XML signature, checked with keys the account already trusts, and
 * its validUntil and cacheDuration.
 *
 * The signature rules are those of SAML responses (saml/response.c): one
 * ds:Signature per signed element, SignedInfo and Reference in exclusive
 * c14n, only the enveloped-signature and exclusive c14n transforms, one
 * Reference whose URI is "#ID" of the signed element, an ID no other
 * element carries, the algorithms of BTSSOSignatureAlgorithms, keys only
 * from the certificates given (never from KeyInfo; a KeyInfo that points
 * anywhere, RetrievalMethod or any URI, fails the signature).  The signed
 * element is the EntityDescriptor the parser consumed or an
 * EntitiesDescriptor around it, so what verified covers what is used; an
 * entityID that occurs twice in the document is never treated as signed.
 */
#ifndef BTSSO_MDSIG_H
#define BTSSO_MDSIG_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include "core/btsso_error.h"
#include "saml/metadata.h"

typedef enum {
    BTSSO_MDSIG_NONE = 0,   /* no ds:Signature over the entity */
    BTSSO_MDSIG_UNCHECKED,  /* signed, but no certificate to check with */
    BTSSO_MDSIG_VERIFIED,   /* verifies with one of the certificates */
    BTSSO_MDSIG_FAILED      /* signed, and does not verify with them */
} btsso_mdsig_e;

typedef struct btsso_md_trust_t {
    btsso_mdsig_e signature;
    const char *signer;          /* VERIFIED: sha256 of the certificate */
    const char *detail;          /* FAILED: why, for the operator */
    apr_time_t valid_until;      /* 0 when none: the earliest validUntil of
                                    the entity and of what encloses it */
    apr_interval_time_t cache_duration; /* 0 when none: the shortest */
} btsso_md_trust_t;

/*
 * Inspect md (from btsso_metadata_parse; its UTF-8 form md->xml is read
 * again with the hardened parser).  trusted: btsso_cert_t * the signature
 * may verify with (NULL or empty: the signature is not checked, only
 * found).  sig_allowed/digest_allowed: BTSSO_SIG_* / BTSSO_DIGEST_* bits
 * (0: the defaults).
 *
 * Errors: bad_valid_until 422 (a validUntil that is no xs:dateTime), and
 * the parser's own (internal trouble only: md was parsed before).  An
 * unreadable cacheDuration is ignored (it is only a hint).
 */
btsso_error_t *btsso_metadata_trust(apr_pool_t *p,
                                    const btsso_idp_metadata_t *md,
                                    const apr_array_header_t *trusted,
                                    unsigned int sig_allowed,
                                    unsigned int digest_allowed,
                                    btsso_md_trust_t *out);

/* "none", "unchecked", "verified", "failed" */
const char *btsso_mdsig_name(btsso_mdsig_e s);

#endif /* BTSSO_MDSIG_H */
