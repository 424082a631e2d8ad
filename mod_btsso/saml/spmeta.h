/*
 * spmeta.h - the SP's own SAML 2.0 metadata, as administrators download it
 * and import it into their IdP (GET <SPPath>/metadata[/<account>],
 * btssoctl sp-metadata).
 *
 * Built with the libxml2 tree API: every value is escaped by the
 * serializer, never pasted into markup.  The output validates against the
 * OASIS saml-schema-metadata-2.0.xsd (t/unit/test_spmeta.c checks it).
 */
#ifndef BTSSO_SPMETA_H
#define BTSSO_SPMETA_H

#include <apr_pools.h>
#include "core/btsso_error.h"
#include "crypto/cert.h"

typedef struct btsso_spmeta_t {
    const char *entity_id;      /* required, at most 1024 characters */
    const char *acs_url;        /* required: HTTP-POST ACS, index 0, default */
    const char *slo_url;        /* NULL: no SingleLogoutService; else the
                                   HTTP-Redirect binding at this URL */
    /* Signing certificates: current and, during SP key rollover, next.
     * Both NULL: no signing KeyDescriptor (AuthnRequests unsigned). */
    const btsso_cert_t *signing_current;
    const btsso_cert_t *signing_next;
    /* The certificate IdPs encrypt assertions to (usually the current
     * one); NULL: no encryption KeyDescriptor. */
    const btsso_cert_t *encryption;
    int want_assertions_signed;   /* WantAssertionsSigned */
    int authn_requests_signed;    /* AuthnRequestsSigned; needs a signing
                                     certificate */
    /* Optional md:Organization: name and URL together, display name
     * defaults to the name. */
    const char *org_name;
    const char *org_display_name;
    const char *org_url;
    /* Optional md:ContactPerson: needs an email ("mailto:" is added when
     * missing); type defaults to "technical". */
    const char *contact_type;     /* technical|support|administrative|
                                     billing|other */
    const char *contact_name;     /* GivenName, optional */
    const char *contact_email;
} btsso_spmeta_t;

/* Algorithms listed under the encryption KeyDescriptor, strongest first. */
#define BTSSO_ENC_AES256_GCM "http://www.w3.org/2009/xmlenc11#aes256-gcm"
#define BTSSO_ENC_AES128_GCM "http://www.w3.org/2009/xmlenc11#aes128-gcm"
#define BTSSO_ENC_AES256_CBC "http://www.w3.org/2001/04/xmlenc#aes256-cbc"
#define BTSSO_ENC_AES128_CBC "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
#define BTSSO_ENC_RSA_OAEP   "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"

/*
 * Build the md:EntityDescriptor as a UTF-8 XML document (with declaration,
 * indented).  NameIDFormats offered: emailAddress, unspecified, persistent.
 * Error "bad_metadata_params" (500) naming the field: entity_id or acs_url
 * missing, an URL not absolute http(s), a value not valid UTF-8, next
 * without current signing certificate, authn_requests_signed without one,
 * organization or contact incomplete, unknown contact type.
 */
btsso_error_t *btsso_spmeta_build(apr_pool_t *p, const btsso_spmeta_t *md,
                                  const char **xml_out);

#endif /* BTSSO_SPMETA_H */
