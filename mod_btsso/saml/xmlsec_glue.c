/*
 * xmlsec_glue.c - libxml2/xmlsec process set-up and SP decryption keys.
 */
#include <apr_strings.h>

#include <libxml/parser.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/errors.h>
#include <xmlsec/io.h>
#include <xmlsec/keys.h>
#include <xmlsec/crypto.h>

#include "saml/xmlsec_glue.h"

struct btsso_sp_key_t {
    xmlSecKeyPtr key;
};

static int xmlsec_init_count;

/* xmlsec reports every failure through this callback; the core library
 * does not log, and a hostile response must not be able to fill the error
 * log, so the reports are dropped: callers get a btsso_error_t instead. */
static void xmlsec_silent_errors(const char *file, int line, const char *func,
                                 const char *errorObject,
                                 const char *errorSubject, int reason,
                                 const char *msg)
{
}

btsso_error_t *btsso_xmlsec_init(apr_pool_t *p)
{
    if (xmlsec_init_count > 0) {
        xmlsec_init_count++;
        return NULL;
    }
    xmlInitParser();
    if (xmlSecInit() < 0) {
        return btsso_error_make(p, 500, "xmlsec_init",
                                "The XML security library failed to start.",
                                "xmlSecInit failed");
    }
    if (xmlSecCheckVersion() != 1) {
        xmlSecShutdown();
        return btsso_error_make(p, 500, "xmlsec_init",
                                "The XML security library failed to start.",
                                "xmlsec library version mismatch");
    }
    /* No file:, http:, ftp: loaders: a Reference or RetrievalMethod URI
     * that slipped past the tree checks still cannot fetch anything. */
    xmlSecIOCleanupCallbacks();
    if (xmlSecCryptoAppInit(NULL) < 0) {
        xmlSecShutdown();
        return btsso_error_make(p, 500, "xmlsec_init",
                                "The XML security library failed to start.",
                                "xmlSecCryptoAppInit failed");
    }
    if (xmlSecCryptoInit() < 0) {
        xmlSecCryptoAppShutdown();
        xmlSecShutdown();
        return btsso_error_make(p, 500, "xmlsec_init",
                                "The XML security library failed to start.",
                                "xmlSecCryptoInit failed");
    }
    xmlSecErrorsSetCallback(xmlsec_silent_errors);
    xmlSecErrorsDefaultCallbackEnableOutput(0);
    xmlsec_init_count = 1;
    return NULL;
}

void btsso_xmlsec_shutdown(void)
{
    if (xmlsec_init_count == 0) {
        return;
    }
    if (--xmlsec_init_count > 0) {
        return;
    }
    xmlSecCryptoShutdown();
    xmlSecCryptoAppShutdown();
    xmlSecShutdown();
}

static apr_status_t sp_key_cleanup(void *data)
{
    btsso_sp_key_t *k = data;

    if (k->key != NULL) {
        xmlSecKeyDestroy(k->key);
        k->key = NULL;
    }
    return APR_SUCCESS;
}

btsso_error_t *btsso_sp_key_load(apr_pool_t *p, const char *pem,
                                 apr_size_t len, btsso_sp_key_t **out)
{
    btsso_sp_key_t *k;
    xmlSecKeyPtr key;

    *out = NULL;
    if (pem == NULL || len == 0) {
        return btsso_error_make(p, 500, "bad_private_key",
                                "The SP private key could not be loaded.",
                                "empty key data");
    }
    key = xmlSecCryptoAppKeyLoadMemory((const xmlSecByte *)pem,
                                       (xmlSecSize)len,
                                       xmlSecKeyDataFormatPem, NULL, NULL,
                                       NULL);
    if (key == NULL) {
        return btsso_error_make(p, 500, "bad_private_key",
                                "The SP private key could not be loaded.",
                                "not an unencrypted PEM private key");
    }
    if ((xmlSecKeyGetType(key) & xmlSecKeyDataTypePrivate) == 0) {
        xmlSecKeyDestroy(key);
        return btsso_error_make(p, 500, "bad_private_key",
                                "The SP private key could not be loaded.",
                                "PEM data holds no private key");
    }
    k = apr_pcalloc(p, sizeof(*k));
    k->key = key;
    apr_pool_cleanup_register(p, k, sp_key_cleanup, apr_pool_cleanup_null);
    *out = k;
    return NULL;
}

void *btsso_sp_key_dup(const btsso_sp_key_t *k)
{
    if (k == NULL || k->key == NULL) {
        return NULL;
    }
    return xmlSecKeyDuplicate(k->key);
}
