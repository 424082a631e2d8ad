/*
 * keys.c - one place where the module's symmetric keys come from (see
 * btsso_keys.h): the admin CSRF token key (csrf.c) and the pending
 * sign-in cookie key (pending.c) are both labelled derivations of one
 * secret per server.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/x509.h>

#include "btsso_glue.h"
#include "btsso_keys.h"
#include "crypto/spkey.h"

#define RANDOM_SECRET_KEY "btsso-random-secret"
#define SALT "mod_btsso"

static int hkdf(const unsigned char *ikm, apr_size_t ikm_len,
                const char *label, unsigned char *out)
{
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    size_t out_len = BTSSO_KEY_LEN;
    int ok;

    ok = kctx != NULL
        && EVP_PKEY_derive_init(kctx) > 0
        && EVP_PKEY_CTX_set_hkdf_md(kctx, EVP_sha256()) > 0
        && EVP_PKEY_CTX_set1_hkdf_salt(kctx, (const unsigned char *)SALT,
                                       (int)strlen(SALT)) > 0
        && EVP_PKEY_CTX_set1_hkdf_key(kctx, ikm, (int)ikm_len) > 0
        && EVP_PKEY_CTX_add1_hkdf_info(kctx, (const unsigned char *)label,
                                       (int)strlen(label)) > 0
        && EVP_PKEY_derive(kctx, out, &out_len) > 0
        && out_len == BTSSO_KEY_LEN;
    EVP_PKEY_CTX_free(kctx);
    return ok;
}

/* 32 random bytes, made once per httpd parent (the process pool outlives
 * graceful restarts). */
static const unsigned char *random_secret(server_rec *s)
{
    apr_pool_t *pp = s->process->pool;
    unsigned char *secret = NULL;

    apr_pool_userdata_get((void **)&secret, RANDOM_SECRET_KEY, pp);
    if (secret == NULL) {
        secret = apr_palloc(pp, BTSSO_KEY_LEN);
        if (apr_generate_random_bytes(secret, BTSSO_KEY_LEN) != APR_SUCCESS) {
            return NULL;
        }
        apr_pool_userdata_set(secret, RANDOM_SECRET_KEY,
                              apr_pool_cleanup_null, pp);
    }
    return secret;
}

int btsso_key_derive(server_rec *s, const char *label, unsigned char *out)
{
    btsso_srv_cfg *sc = btsso_srv(s);
    const unsigned char *secret;
    unsigned char *der = NULL;
    int der_len, ok;

    if (sc->rt != NULL && sc->rt->spkey != NULL) {
        der_len = i2d_PrivateKey(btsso_spkey_evp_pkey(sc->rt->spkey), &der);
        if (der_len <= 0) {
            return 0;
        }
        ok = hkdf(der, (apr_size_t)der_len, label, out);
        OPENSSL_clear_free(der, (size_t)der_len);
        return ok;
    }
    secret = random_secret(s);
    return secret != NULL && hkdf(secret, BTSSO_KEY_LEN, label, out);
}
