/*
 * xmlparse.h - the one hardened libxml2 parse of mod_btsso: every XML
 * document that comes from outside (SAML responses, logout messages, IdP
 * metadata) goes through btsso_xml_parse().
 *
 * What it guarantees, whatever the input and whatever else is loaded into
 * the process:
 *   - size bounded before the parser sees a byte;
 *   - no DTD: a DOCTYPE stops the parser on the spot (SAX hook), before any
 *     entity is declared, loaded or expanded, in any encoding; no entity is
 *     ever substituted (no XML_PARSE_NOENT, DTDLOAD, DTDATTR, DTDVALID);
 *   - no network, no file: XML_PARSE_NONET and the process-wide external
 *     entity loader is libxml2's no-network one (btsso_xml_init);
 *   - quiet: nothing goes to stderr, not even through the thread's
 *     structured error handler; the reason comes back as a btsso_error_t;
 *   - libxml2's own limits stay on (no XML_PARSE_HUGE: depth, text size).
 */
#ifndef BTSSO_XMLPARSE_H
#define BTSSO_XMLPARSE_H

#include <apr_pools.h>
#include <libxml/tree.h>

#include "core/btsso_error.h"

/* Used when a caller passes max_len 0: a parse is never unbounded. */
#define BTSSO_XML_DEFAULT_MAX (1024 * 1024)

/* Call once per process before any parse (libxml2 init and process-wide
 * safe defaults; idempotent, thread-safe). btsso_xml_parse calls it too. */
void btsso_xml_init(void);

/*
 * Parse len bytes of buf.  On success *out is the document, owned by the
 * caller (xmlFreeDoc it, or register a pool cleanup).  Errors, each with
 * `message` (the caller's sentence for people) and an operator detail:
 *   empty 400, too_large 413 (len > max_len, or above INT_MAX),
 *   dtd_forbidden 400 (detail says "seen by the parser"),
 *   not_xml 400 (detail "line N: <libxml2 message>", one clipped line),
 *   internal 500 (out of memory).
 */
btsso_error_t *btsso_xml_parse(apr_pool_t *p, const char *buf,
                               apr_size_t len, apr_size_t max_len,
                               const char *message, xmlDocPtr *out);

#endif /* BTSSO_XMLPARSE_H */
