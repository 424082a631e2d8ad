/*
 * xmlsec_glue.h - process-wide set-up of libxml2 + xmlsec (OpenSSL backend)
 * for mod_btsso, and the SP's decryption keys.
 *
 * Set-up makes xmlsec safe for hostile input: its I/O callbacks (file,
 * http, ftp) are removed so no URI can ever be loaded, and its error
 * output is silenced (the core library never logs; errors come back as
 * btsso_error_t values).
 */
#ifndef BTSSO_XMLSEC_GLUE_H
#define BTSSO_XMLSEC_GLUE_H

#include <apr_pools.h>
#include "core/btsso_error.h"

/* Initialise libxml2 and xmlsec once per process (idempotent, counts
 * calls; call from the parent before threads start, e.g. post_config).
 * Errors: "xmlsec_init" (500) naming the step that failed. */
btsso_error_t *btsso_xmlsec_init(apr_pool_t *p);

/* Undo one btsso_xmlsec_init(); the last call shuts xmlsec down. */
void btsso_xmlsec_shutdown(void);

/* An SP private key usable to decrypt EncryptedAssertions (opaque; no
 * OpenSSL or xmlsec type leaks).  Loaded once, at configuration time. */
typedef struct btsso_sp_key_t btsso_sp_key_t;

/* Load a PEM private key (PKCS#8 or PKCS#1, RSA; unencrypted) from memory.
 * The key lives until p is cleared.  Errors: "bad_private_key" (500). */
btsso_error_t *btsso_sp_key_load(apr_pool_t *p, const char *pem,
                                 apr_size_t len, btsso_sp_key_t **out);

/* For response.c: a fresh xmlSecKeyPtr copy (returned as void * to keep
 * xmlsec out of this header); the caller destroys it with
 * xmlSecKeyDestroy().  NULL on allocation failure. */
void *btsso_sp_key_dup(const btsso_sp_key_t *k);

#endif /* BTSSO_XMLSEC_GLUE_H */
