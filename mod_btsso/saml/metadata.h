/*
 * metadata.h - parsing an IdP's SAML 2.0 metadata.
 *
 * libxml2 with no DTD loading, no entity substitution, no network access and
 * a size bound checked before parsing.  Accepts an md:EntityDescriptor, or an
 * md:EntitiesDescriptor (nested too) from which one IdP is chosen by entityID.
 */
#ifndef BTSSO_METADATA_H
#define BTSSO_METADATA_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "core/btsso_error.h"
#include "crypto/cert.h"

#define BTSSO_BINDING_REDIRECT "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
#define BTSSO_BINDING_POST     "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"

typedef struct btsso_endpoint_t {
    const char *binding;            /* full URN */
    const char *location;
    const char *response_location;  /* NULL when absent */
} btsso_endpoint_t;

typedef struct btsso_md_attribute_t {
    const char *name;               /* Name="..." (required) */
    const char *name_format;        /* NULL when absent */
    const char *friendly_name;      /* NULL when absent */
} btsso_md_attribute_t;

typedef struct btsso_idp_metadata_t {
    const char *entity_id;
    apr_array_header_t *sso;            /* btsso_endpoint_t, document order */
    apr_array_header_t *slo;            /* btsso_endpoint_t, document order */
    apr_array_header_t *signing_certs;  /* btsso_cert_t *, document order,
                                           duplicates (same sha256) removed */
    apr_array_header_t *nameid_formats; /* const char * */
    apr_array_header_t *attributes;     /* btsso_md_attribute_t, from
                                           saml:Attribute children of the
                                           IDPSSODescriptor and of
                                           RoleDescriptor/AttributeAuthority
                                           descriptors of the same entity;
                                           unique by name */
    int want_authn_requests_signed;
    int is_signed;                      /* a ds:Signature is present on the
                                           chosen entity or the document */
    const char *organization;           /* OrganizationDisplayName or NULL */
    const char *xml;                    /* the whole document as UTF-8
                                           text, xml_len bytes, the form to
                                           store: the caller's input itself
                                           (not copied, not necessarily
                                           NUL-terminated) when it was UTF-8
                                           already, else its UTF-8
                                           re-serialization (same infoset,
                                           so same canonical form) */
    apr_size_t xml_len;
} btsso_idp_metadata_t;

/*
 * Parse metadata.  entity_id chooses one entity of an EntitiesDescriptor
 * (NULL: the document must hold exactly one IdP entity).  max_size bounds
 * len before anything is parsed.
 *
 * Errors (code, status):
 *   too_large 413, empty 400, not_xml 400 (libxml2's message and line in
 *   detail), dtd_forbidden 400 (any DOCTYPE/ENTITY), not_metadata 422 (root
 *   is neither EntityDescriptor nor EntitiesDescriptor in the SAML metadata
 *   namespace), no_entity_id 422, ambiguous_entity 422 (several IdPs, none
 *   chosen: detail lists their entityIDs), entity_not_found 422,
 *   not_idp 422 (no IDPSSODescriptor supporting SAML 2.0 protocol, e.g. SP
 *   metadata), no_sso_endpoint 422, bad_certificate 422 (which
 *   KeyDescriptor and why), weak_key / key_unsupported 422 (a signing
 *   certificate's key is below RSA 2048 / EC P-256, or neither RSA nor EC),
 *   bad_entity_id 422 (the chosen entityID holds a control character).
 * Endpoints, attribute names and NameID formats holding a control
 * character are left out.
 *
 * Any encoding XML allows is read (UTF-16 with a BOM, as Windows tools
 * write it, or declared; ISO-8859-1 and others declared); (*out)->xml is
 * the document in UTF-8, what a store keeps so that it reads back with the
 * same facts.  That form must fit max_size too (too_large 413 otherwise),
 * since the stored copy is parsed again under the same bound.
 */
btsso_error_t *btsso_metadata_parse(apr_pool_t *p, const char *xml,
                                    apr_size_t len, apr_size_t max_size,
                                    const char *entity_id,
                                    btsso_idp_metadata_t **out);

/* First endpoint with that binding, or NULL. */
const btsso_endpoint_t *btsso_metadata_endpoint(const apr_array_header_t *eps,
                                                const char *binding);

/* Call once per process before any parse (libxml2 init; idempotent).
 * Defined with the shared hardened parser in saml/xmlparse.c. */
void btsso_xml_init(void);

#endif /* BTSSO_METADATA_H */
