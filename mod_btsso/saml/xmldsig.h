/*
 * xmldsig.h - the XML signature rules of response.c, for a signed message
 * that is not a Response: a LogoutRequest or LogoutResponse received over
 * the HTTP-POST binding, whose signature travels in the XML.
 *
 * The rules are the very ones a Response signature meets (same code in
 * response.c): the root element carries an ID and exactly one ds:Signature
 * as a direct child, there is no other ds:Signature anywhere in the
 * document, no other element carries the same ID value and no xml:id is
 * present, exactly one Reference whose URI is "#" + the root's ID,
 * transforms enveloped-signature and exclusive c14n only, the algorithms
 * of the allow-lists, no ds:Object, the key only from certs (KeyInfo never
 * used; a RetrievalMethod or any URI in it refused).
 */
#ifndef BTSSO_XMLDSIG_H
#define BTSSO_XMLDSIG_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <libxml/tree.h>
#include "core/btsso_error.h"

/*
 * Verify the enveloped signature of doc's root element with the first of
 * certs (const btsso_cert_t *) that verifies it.  sig_algs/digest_algs:
 * BTSSO_SIG_* / BTSSO_DIGEST_* bits (response.h), 0 the defaults.  what
 * names the element in details ("LogoutRequest").  message, when not
 * NULL, replaces the user-facing message of a refusal.
 * Errors: malformed (400: no ID or not an NCName), not_signed (403),
 * xml_id_forbidden, duplicate_id, sig_misplaced, sig_multiple,
 * sig_structure, sig_reference, sig_transform, sig_keyinfo_forbidden,
 * sig_algorithm, sig_invalid, no_usable_certificate (all 403), internal
 * (500).
 */
btsso_error_t *btsso_xmldsig_verify_root(apr_pool_t *p, xmlDocPtr doc,
                                         const apr_array_header_t *certs,
                                         unsigned int sig_algs,
                                         unsigned int digest_algs,
                                         const char *what,
                                         const char *message);

#endif /* BTSSO_XMLDSIG_H */
