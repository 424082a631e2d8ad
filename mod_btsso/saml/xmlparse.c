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

/*
 * Each thread keeps one parser context for documents up to REUSE_MAX
 * octets (a Response, a LogoutRequest): creating a context -- its
 * dictionary, its buffers -- cost a tenth of a login.  The context is
 * dropped, and made again, after a failed parse and once its dictionary
 * (element and attribute names, short texts) has grown past DICT_MAX
 * entries, so that documents full of distinct names cannot make it grow
 * without bound; a thread that ends frees its own.  Larger documents
 * (metadata) get a context of their own, freed at once.
 */
#define REUSE_MAX (256 * 1024)
#define DICT_MAX 4096

static pthread_key_t ctxt_key;
static pthread_once_t ctxt_key_once = PTHREAD_ONCE_INIT;
static int ctxt_key_ok;

static void free_thread_ctxt(void *ctxt)
{
    xmlFreeParserCtxt(ctxt);
}

static void ctxt_key_init(void)
{
    ctxt_key_ok = pthread_key_create(&ctxt_key, free_thread_ctxt) == 0;
}

static xmlParserCtxtPtr new_ctxt(void)
{
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();

    if (ctxt != NULL) {
        ctxt->sax->internalSubset = refuse_subset;
        ctxt->sax->externalSubset = refuse_subset;
        ctxt->sax->entityDecl = refuse_entity;
        ctxt->sax->serror = quiet_error;
    }
    return ctxt;
}

/* This thread's context (*reused set), or a new one of the caller's. */
static xmlParserCtxtPtr take_ctxt(apr_size_t len, int *reused)
{
    xmlParserCtxtPtr ctxt = NULL;

    *reused = 0;
    if (len <= REUSE_MAX) {
        pthread_once(&ctxt_key_once, ctxt_key_init);
    }
    if (len <= REUSE_MAX && ctxt_key_ok) {
        ctxt = pthread_getspecific(ctxt_key);
        if (ctxt == NULL) {
            ctxt = new_ctxt();
            if (ctxt != NULL && pthread_setspecific(ctxt_key, ctxt) != 0) {
                return ctxt;        /* not kept: the caller frees it */
            }
        }
        *reused = ctxt != NULL;
        return ctxt;
    }
    return new_ctxt();
}

/* Done with the context: a kept one is reset (the copy of the document
 * it holds is freed) or, after a failure or when its dictionary is big,
 * dropped. */
static void give_ctxt(xmlParserCtxtPtr ctxt, int reused, int failed)
{
    ctxt->_private = NULL;
    if (reused && !failed && xmlDictSize(ctxt->dict) <= DICT_MAX) {
        xmlCtxtReset(ctxt);
        return;
    }
    if (reused) {
        pthread_setspecific(ctxt_key, NULL);
    }
    xmlFreeParserCtxt(ctxt);
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
    int reused;

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
    ctxt = take_ctxt(len, &reused);
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
    give_ctxt(ctxt, reused, err != NULL);
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
