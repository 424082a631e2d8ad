/*
 * spkey.c - the SP signing key: load once, check it against its
 * certificate, sign and verify raw octets (HTTP-Redirect binding).
 */
#include <limits.h>
#include <string.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "crypto/spkey.h"

/* PEM key and certificate files are a few KiB; anything far larger is not
 * what the directive should point at. */
#define PEM_FILE_MAX (256 * 1024)

struct btsso_spkey_t {
    EVP_PKEY *pkey;
    const btsso_cert_t *cert;
    const char *type;            /* "RSA" or "EC" */
    const char *default_sigalg;
    apr_size_t ec_field_len;     /* octets of r and of s; 0 for RSA */
};

typedef struct sigalg_t {
    const char *uri;
    const char *digest;
    int key_type;               /* EVP_PKEY_RSA or EVP_PKEY_EC */
    int signable;               /* 0: verify only (SHA-1, kept for IdPs an
                                   operator explicitly allows) */
} sigalg_t;

static const sigalg_t sigalgs[] = {
    { BTSSO_SIGALG_RSA_SHA256, "SHA256", EVP_PKEY_RSA, 1 },
    { BTSSO_SIGALG_RSA_SHA384, "SHA384", EVP_PKEY_RSA, 1 },
    { BTSSO_SIGALG_RSA_SHA512, "SHA512", EVP_PKEY_RSA, 1 },
    { BTSSO_SIGALG_ECDSA_SHA256, "SHA256", EVP_PKEY_EC, 1 },
    { BTSSO_SIGALG_ECDSA_SHA384, "SHA384", EVP_PKEY_EC, 1 },
    { BTSSO_SIGALG_ECDSA_SHA512, "SHA512", EVP_PKEY_EC, 1 },
    { BTSSO_SIGALG_RSA_SHA1, "SHA1", EVP_PKEY_RSA, 0 },
    { NULL, NULL, 0, 0 }
};

static const sigalg_t *sigalg_find(const char *uri)
{
    int i;

    for (i = 0; uri != NULL && sigalgs[i].uri != NULL; i++) {
        if (strcmp(sigalgs[i].uri, uri) == 0) {
            return &sigalgs[i];
        }
    }
    return NULL;
}

/* The first queued OpenSSL error as text, and the queue emptied so it
 * cannot be blamed on a later, unrelated call. */
static const char *openssl_reason(apr_pool_t *p)
{
    char buf[256];
    unsigned long e = ERR_peek_last_error();

    if (e == 0) {
        return "no OpenSSL detail";
    }
    ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return apr_pstrdup(p, buf);
}

static apr_status_t pkey_cleanup(void *data)
{
    EVP_PKEY_free(data);
    return APR_SUCCESS;
}

/* Pass-phrase callback: never prompt on a terminal (httpd may run
 * detached), just record that a pass phrase was wanted. */
static int refuse_passphrase(char *buf, int size, int rwflag, void *u)
{
    *(int *)u = 1;
    return -1;
}

static btsso_error_t *read_pem_file(apr_pool_t *p, const char *path,
                                    const char *what, const char *code,
                                    char **out, apr_size_t *out_len)
{
    apr_file_t *f;
    apr_finfo_t info;
    apr_status_t rv;
    char *buf;
    apr_size_t n;
    char errbuf[128];

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return btsso_error_make(p, 500, code, "The SP key or certificate "
                                "file cannot be read.", "%s %s: %s", what,
                                path, apr_strerror(rv, errbuf, sizeof(errbuf)));
    }
    rv = apr_file_info_get(&info, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS && (info.size <= 0 || info.size > PEM_FILE_MAX)) {
        apr_file_close(f);
        return btsso_error_make(p, 500, code, "The SP key or certificate "
                                "file cannot be read.", "%s %s: size %"
                                APR_OFF_T_FMT " is not that of a PEM file",
                                what, path, info.size);
    }
    if (rv == APR_SUCCESS) {
        n = (apr_size_t)info.size;
        buf = apr_palloc(p, n + 1);
        rv = apr_file_read_full(f, buf, n, &n);
    }
    apr_file_close(f);
    if (rv != APR_SUCCESS) {
        return btsso_error_make(p, 500, code, "The SP key or certificate "
                                "file cannot be read.", "%s %s: %s", what,
                                path, apr_strerror(rv, errbuf, sizeof(errbuf)));
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return NULL;
}

static int contains(const char *hay, apr_size_t len, const char *needle)
{
    apr_size_t n = strlen(needle), i;

    for (i = 0; i + n <= len; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Key facts that depend on the key type; NULL when the key is one
 * mod_btsso does not sign with. */
static btsso_error_t *classify_key(apr_pool_t *p, btsso_spkey_t *k,
                                   const char *key_name)
{
    int bits = EVP_PKEY_get_bits(k->pkey);
    char group[64];
    size_t group_len = 0;

    switch (EVP_PKEY_get_base_id(k->pkey)) {
    case EVP_PKEY_RSA:
        if (bits < 2048) {
            return btsso_error_make(p, 500, "key_unsupported",
                                    "The SP key is too weak.",
                                    "%s: RSA key of %d bits; at least 2048 "
                                    "are needed", key_name, bits);
        }
        k->type = "RSA";
        k->default_sigalg = BTSSO_SIGALG_RSA_SHA256;
        return NULL;
    case EVP_PKEY_EC:
        if (!EVP_PKEY_get_utf8_string_param(k->pkey,
                                            OSSL_PKEY_PARAM_GROUP_NAME,
                                            group, sizeof(group),
                                            &group_len)) {
            group[0] = '\0';
        }
        k->type = "EC";
        if (strcmp(group, "prime256v1") == 0) {
            k->default_sigalg = BTSSO_SIGALG_ECDSA_SHA256;
            k->ec_field_len = 32;
        }
        else if (strcmp(group, "secp384r1") == 0) {
            k->default_sigalg = BTSSO_SIGALG_ECDSA_SHA384;
            k->ec_field_len = 48;
        }
        else if (strcmp(group, "secp521r1") == 0) {
            k->default_sigalg = BTSSO_SIGALG_ECDSA_SHA512;
            k->ec_field_len = 66;
        }
        else {
            return btsso_error_make(p, 500, "key_unsupported",
                                    "The SP key type is not supported.",
                                    "%s: EC curve '%s'; use P-256, P-384 or "
                                    "P-521", key_name, group);
        }
        return NULL;
    default:
        return btsso_error_make(p, 500, "key_unsupported",
                                "The SP key type is not supported.",
                                "%s: key type %s; use RSA or EC", key_name,
                                OBJ_nid2sn(EVP_PKEY_get_base_id(k->pkey)));
    }
}

btsso_error_t *btsso_spkey_load_pem(apr_pool_t *p,
                                    const char *key_pem, apr_size_t key_len,
                                    const char *key_name,
                                    const char *cert_pem, apr_size_t cert_len,
                                    const char *cert_name,
                                    btsso_spkey_t **out)
{
    btsso_spkey_t *k = apr_pcalloc(p, sizeof(*k));
    btsso_cert_t *cert = NULL;
    btsso_error_t *err = NULL;
    const unsigned char *der;
    BIO *bio = NULL;
    X509 *x509 = NULL;
    int wanted_passphrase = 0;

    if (contains(key_pem, key_len, "-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(key_pem, key_len, "Proc-Type: 4,ENCRYPTED")) {
        return btsso_error_make(p, 500, "key_encrypted",
                                "The SP private key is encrypted; mod_btsso "
                                "needs it unencrypted (readable by root "
                                "only).", "%s is protected by a pass phrase",
                                key_name);
    }
    if (key_len > INT_MAX || cert_len > INT_MAX) {
        return btsso_error_make(p, 500, "key_invalid",
                                "The SP private key cannot be read.",
                                "%s: too large", key_name);
    }
    bio = BIO_new_mem_buf(key_pem, (int)key_len);
    if (bio == NULL) {
        err = btsso_error_make(p, 500, "key_invalid",
                               "The SP private key cannot be read.",
                               "%s: %s", key_name, openssl_reason(p));
        goto done;
    }
    k->pkey = PEM_read_bio_PrivateKey(bio, NULL, refuse_passphrase,
                                      &wanted_passphrase);
    if (k->pkey == NULL) {
        if (wanted_passphrase) {
            ERR_clear_error();
            err = btsso_error_make(p, 500, "key_encrypted",
                                   "The SP private key is encrypted; "
                                   "mod_btsso needs it unencrypted (readable "
                                   "by root only).", "%s is protected by a "
                                   "pass phrase", key_name);
        }
        else {
            err = btsso_error_make(p, 500, "key_invalid",
                                   "The SP private key cannot be read.",
                                   "%s is not a PEM private key: %s",
                                   key_name, openssl_reason(p));
        }
        goto done;
    }
    apr_pool_cleanup_register(p, k->pkey, pkey_cleanup,
                              apr_pool_cleanup_null);
    err = classify_key(p, k, key_name);
    if (err != NULL) {
        goto done;
    }

    err = btsso_cert_parse(p, cert_pem, cert_len, &cert);
    if (err != NULL) {
        err = btsso_error_make(p, 500, err->code, "The SP certificate "
                               "cannot be read.", "%s: %s", cert_name,
                               err->detail != NULL ? err->detail : err->message);
        goto done;
    }
    der = cert->der;
    x509 = d2i_X509(NULL, &der, (long)cert->der_len);
    if (x509 == NULL) {
        err = btsso_error_make(p, 500, "bad_certificate", "The SP "
                               "certificate cannot be read.", "%s: %s",
                               cert_name, openssl_reason(p));
        goto done;
    }
    if (EVP_PKEY_eq(k->pkey, X509_get0_pubkey(x509)) != 1) {
        ERR_clear_error();
        err = btsso_error_make(p, 500, "key_mismatch", "The SP private key "
                               "does not belong to the SP certificate.",
                               "private key %s does not match the public "
                               "key of certificate %s (%s)", key_name,
                               cert_name, cert->subject);
        goto done;
    }
    k->cert = cert;
    *out = k;

done:
    X509_free(x509);
    BIO_free(bio);
    return err;
}

btsso_error_t *btsso_spkey_load(apr_pool_t *p, const char *key_file,
                                const char *cert_file, btsso_spkey_t **out)
{
    btsso_error_t *err;
    char *key_pem, *cert_pem;
    apr_size_t key_len, cert_len;

    err = read_pem_file(p, key_file, "private key", "key_unreadable",
                        &key_pem, &key_len);
    if (err == NULL) {
        err = read_pem_file(p, cert_file, "certificate", "cert_unreadable",
                            &cert_pem, &cert_len);
    }
    if (err == NULL) {
        err = btsso_spkey_load_pem(p, key_pem, key_len, key_file,
                                   cert_pem, cert_len, cert_file, out);
    }
    return err;
}

const btsso_cert_t *btsso_spkey_cert(const btsso_spkey_t *key)
{
    return key->cert;
}

const char *btsso_spkey_type(const btsso_spkey_t *key)
{
    return key->type;
}

const char *btsso_spkey_default_sigalg(const btsso_spkey_t *key)
{
    return key->default_sigalg;
}

void *btsso_spkey_evp_pkey(const btsso_spkey_t *key)
{
    return key->pkey;
}

int btsso_spkey_supports_sigalg(const btsso_spkey_t *key,
                                const char *sigalg_uri)
{
    const sigalg_t *alg = sigalg_find(sigalg_uri);

    return alg != NULL && alg->signable
        && alg->key_type == EVP_PKEY_get_base_id(key->pkey);
}

/* DER ECDSA-Sig-Value -> r || s, each left-padded to field_len. */
static int ecdsa_der_to_raw(const unsigned char *der, size_t der_len,
                            unsigned char *raw, apr_size_t field_len)
{
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &der, (long)der_len);
    const BIGNUM *r, *s;
    int ok;

    if (sig == NULL) {
        return 0;
    }
    ECDSA_SIG_get0(sig, &r, &s);
    ok = BN_bn2binpad(r, raw, (int)field_len) == (int)field_len
        && BN_bn2binpad(s, raw + field_len, (int)field_len) == (int)field_len;
    ECDSA_SIG_free(sig);
    return ok;
}

btsso_error_t *btsso_spkey_sign(apr_pool_t *p, const btsso_spkey_t *key,
                                const void *data, apr_size_t len,
                                const char *sigalg_uri,
                                const unsigned char **sig_out,
                                apr_size_t *sig_len_out)
{
    const sigalg_t *alg;
    btsso_error_t *err = NULL;
    EVP_MD_CTX *ctx = NULL;
    unsigned char *sig = NULL;
    size_t sig_len = 0;

    if (sigalg_uri == NULL) {
        sigalg_uri = key->default_sigalg;
    }
    if (!btsso_spkey_supports_sigalg(key, sigalg_uri)) {
        return btsso_error_make(p, 500, "sigalg_unsupported",
                                "The signature algorithm is not supported.",
                                "cannot sign with '%s' using an %s key",
                                sigalg_uri, key->type);
    }
    alg = sigalg_find(sigalg_uri);
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL
        || EVP_DigestSignInit_ex(ctx, NULL, alg->digest, NULL, NULL,
                                 key->pkey, NULL) != 1
        || EVP_DigestSign(ctx, NULL, &sig_len, data, len) != 1) {
        goto fail;
    }
    sig = OPENSSL_malloc(sig_len);
    if (sig == NULL || EVP_DigestSign(ctx, sig, &sig_len, data, len) != 1) {
        goto fail;
    }
    if (key->ec_field_len != 0) {
        unsigned char *raw = apr_palloc(p, 2 * key->ec_field_len);

        if (!ecdsa_der_to_raw(sig, sig_len, raw, key->ec_field_len)) {
            goto fail;
        }
        *sig_out = raw;
        *sig_len_out = 2 * key->ec_field_len;
    }
    else {
        *sig_out = apr_pmemdup(p, sig, sig_len);
        *sig_len_out = sig_len;
    }
    goto done;

fail:
    err = btsso_error_make(p, 500, "sign_failed",
                           "Internal error while signing a message.",
                           "%s: %s", sigalg_uri, openssl_reason(p));
done:
    OPENSSL_free(sig);
    EVP_MD_CTX_free(ctx);
    return err;
}

/* r || s -> DER ECDSA-Sig-Value, for OpenSSL's verifier. */
static unsigned char *ecdsa_raw_to_der(apr_pool_t *p, const unsigned char *raw,
                                       apr_size_t raw_len, apr_size_t *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)(raw_len / 2), NULL);
    BIGNUM *s = BN_bin2bn(raw + raw_len / 2, (int)(raw_len / 2), NULL);
    unsigned char *der = NULL, *out = NULL;
    int n;

    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return NULL;
    }
    n = i2d_ECDSA_SIG(sig, &der);
    if (n > 0) {
        out = apr_pmemdup(p, der, (apr_size_t)n);
        *der_len = (apr_size_t)n;
    }
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    return out;
}

btsso_error_t *btsso_sig_verify(apr_pool_t *p, const btsso_cert_t *cert,
                                const void *data, apr_size_t len,
                                const char *sigalg_uri,
                                const unsigned char *sig, apr_size_t sig_len)
{
    const sigalg_t *alg = sigalg_find(sigalg_uri);
    btsso_error_t *err = NULL;
    const unsigned char *der = cert->der;
    X509 *x509 = NULL;
    EVP_PKEY *pub;
    EVP_MD_CTX *ctx = NULL;
    int rc;

    if (alg == NULL) {
        return btsso_error_make(p, 403, "sigalg_unsupported",
                                "The signature algorithm is not supported.",
                                "SigAlg '%s'", sigalg_uri != NULL
                                ? sigalg_uri : "(none)");
    }
    x509 = d2i_X509(NULL, &der, (long)cert->der_len);
    pub = x509 != NULL ? X509_get0_pubkey(x509) : NULL;
    if (pub == NULL) {
        err = btsso_error_make(p, 403, "bad_certificate",
                               "A configured certificate cannot be used.",
                               "certificate %s: %s", cert->sha256,
                               openssl_reason(p));
        goto done;
    }
    if (EVP_PKEY_get_base_id(pub) != alg->key_type) {
        err = btsso_error_make(p, 403, "sigalg_unsupported",
                               "The signature algorithm does not fit the "
                               "certificate.", "SigAlg '%s' with a %s key "
                               "(certificate %s)", sigalg_uri,
                               OBJ_nid2sn(EVP_PKEY_get_base_id(pub)),
                               cert->sha256);
        goto done;
    }
    if (alg->key_type == EVP_PKEY_EC) {
        apr_size_t field_len = (apr_size_t)(EVP_PKEY_get_bits(pub) + 7) / 8;

        if (sig_len != 2 * field_len) {
            err = btsso_error_make(p, 403, "sig_invalid",
                                   "The signature is not valid.",
                                   "ECDSA signature of %" APR_SIZE_T_FMT
                                   " octets, expected %" APR_SIZE_T_FMT,
                                   sig_len, 2 * field_len);
            goto done;
        }
        sig = ecdsa_raw_to_der(p, sig, sig_len, &sig_len);
        if (sig == NULL) {
            err = btsso_error_make(p, 403, "sig_invalid",
                                   "The signature is not valid.",
                                   "ECDSA signature: %s", openssl_reason(p));
            goto done;
        }
    }
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestVerifyInit_ex(ctx, NULL, alg->digest, NULL,
                                               NULL, pub, NULL) != 1) {
        err = btsso_error_make(p, 500, "verify_failed",
                               "Internal error while checking a signature.",
                               "%s: %s", sigalg_uri, openssl_reason(p));
        goto done;
    }
    rc = EVP_DigestVerify(ctx, sig, sig_len, data, len);
    if (rc != 1) {
        ERR_clear_error();
        err = btsso_error_make(p, 403, "sig_invalid",
                               "The signature is not valid.",
                               "%s signature does not verify with "
                               "certificate %s (%s)", sigalg_uri,
                               cert->sha256, cert->subject);
    }

done:
    EVP_MD_CTX_free(ctx);
    X509_free(x509);
    return err;
}
