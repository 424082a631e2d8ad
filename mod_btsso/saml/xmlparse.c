/*
 * xmlparse.c - the hardened libxml2 parse shared by the response, logout
 * and metadata parsers (see xmlparse.h for what it guarantees).
 */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <apr_strings.h>

#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlIO.h>

#include "saml/xmlparse.h"

/* ---- process set-up ------------------------------------------------------ */

static pthread_once_t xml_init_once = PTHREAD_ONCE_INIT;

static void xml_init_process(void)
{
    xmlInitParser();
    /* These are libxml2's defaults already; set them explicitly so that no
     * other library loaded into httpd can have turned entity substitution
     * or external DTD loading on for parsers that do not pass options. */
    xmlSubstituteEntitiesDefault(0);
    xmlLoadExtDtdDefaultValue = 0;
    xmlThrDefSubstituteEntitiesDefaultValue(0);
    xmlThrDefLoadExtDtdDefaultValue(0);
    /* Whatever parser in the process resolves an external entity, it does
     * not go to the network. */
    xmlSetExternalEntityLoader(xmlNoNetExternalEntityLoader);
}

void btsso_xml_init(void)
{
    pthread_once(&xml_init_once, xml_init_process);
}

/* ---- the parse ------------------------------------------------------------ */

typedef struct parse_guard_t {
    int saw_dtd;
} parse_guard_t;

/* Called by the parser on "<!DOCTYPE" (internal or external subset):
 * stop right there, before any entity is declared, loaded or expanded. */
static void refuse_subset(void *ctx, const xmlChar *name,
                          const xmlChar *external_id,
                          const xmlChar *system_id)
{
    xmlParserCtxtPtr ctxt = ctx;
    parse_guard_t *g = ctxt->_private;

    g->saw_dtd = 1;
    xmlStopParser(ctxt);
}

static void refuse_entity(void *ctx, const xmlChar *name, int type,
                          const xmlChar *public_id, const xmlChar *system_id,
                          xmlChar *content)
{
    xmlParserCtxtPtr ctxt = ctx;
    parse_guard_t *g = ctxt->_private;

    g->saw_dtd = 1;
    xmlStopParser(ctxt);
}

static void quiet_error(void *user, xmlErrorPtr error)
{
}

/* libxml2 messages end with a newline and may quote the input: one short
 * line, control characters replaced. */
static const char *one_line(apr_pool_t *p, const char *s)
{
    char *c = apr_pstrndup(p, s, 200);
    apr_size_t i, n;

    n = strcspn(c, "\r\n");
    c[n] = '\0';
    for (i = 0; i < n; i++) {
        if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f) {
            c[i] = '?';
        }
    }
    return c;
}

btsso_error_t *btsso_xml_parse(apr_pool_t *p, const char *buf,
                               apr_size_t len, apr_size_t max_len,
                               const char *message, xmlDocPtr *out)
{
    xmlParserCtxtPtr ctxt;
    parse_guard_t guard = { 0 };
    xmlStructuredErrorFunc saved_func;
    void *saved_ctx;
    btsso_error_t *err = NULL;
    xmlDocPtr doc;

    *out = NULL;
    if (max_len == 0) {
        max_len = BTSSO_XML_DEFAULT_MAX;
    }
    if (buf == NULL || len == 0) {
        return btsso_error_make(p, 400, "empty", message, "no XML data");
    }
    if (len > max_len || len > (apr_size_t)INT_MAX) {
        return btsso_error_make(p, 413, "too_large", message,
                                "XML of %" APR_SIZE_T_FMT " bytes, the limit "
                                "is %" APR_SIZE_T_FMT, len, max_len);
    }
    btsso_xml_init();
    ctxt = xmlNewParserCtxt();
    if (ctxt == NULL) {
        return btsso_error_make(p, 500, "internal", message,
                                "xmlNewParserCtxt failed (out of memory)");
    }
    /* This thread's libxml2 error handler stays silent for the call:
     * hostile input must not reach httpd's error log through stderr. */
    saved_func = xmlStructuredError;
    saved_ctx = xmlStructuredErrorContext;
    xmlSetStructuredErrorFunc(NULL, quiet_error);
    ctxt->_private = &guard;
    ctxt->sax->internalSubset = refuse_subset;
    ctxt->sax->externalSubset = refuse_subset;
    ctxt->sax->entityDecl = refuse_entity;
    ctxt->sax->serror = quiet_error;
    doc = xmlCtxtReadMemory(ctxt, buf, (int)len, NULL, NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR
                            | XML_PARSE_NOWARNING);
    if (guard.saw_dtd || (doc != NULL && (doc->intSubset != NULL
                                          || doc->extSubset != NULL))) {
        err = btsso_error_make(p, 400, "dtd_forbidden", message,
                               "a DOCTYPE declaration (seen by the parser): "
                               "DTDs and entities are not allowed");
    }
    else if (doc == NULL || !ctxt->wellFormed) {
        const xmlError *e = &ctxt->lastError;

        err = btsso_error_make(p, 400, "not_xml", message,
                               "not well-formed XML: line %d: %s", e->line,
                               e->message != NULL ? one_line(p, e->message)
                                                  : "parse error");
    }
    xmlFreeParserCtxt(ctxt);
    xmlSetStructuredErrorFunc(saved_ctx, saved_func);
    if (err != NULL) {
        if (doc != NULL) {
            xmlFreeDoc(doc);
        }
        return err;
    }
    *out = doc;
    return NULL;
}
