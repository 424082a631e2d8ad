/*
 * test_spkey.c - SP key loading, signing, and raw signature verification.
 *
 * RSA signatures are checked with the openssl command line on the exact
 * octets, ECDSA ones with OpenSSL's low-level ECDSA_do_verify: both
 * independent of the code under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto/spkey.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif
#define SP TOP_SRCDIR "/t/fixtures/sp/"

static apr_pool_t *pool;

static int setup(void **state)
{
    apr_pool_create(&pool, NULL);
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy(pool);
    return 0;
}

static btsso_spkey_t *load_ok(const char *key, const char *cert)
{
    btsso_spkey_t *k = NULL;
    btsso_error_t *e = btsso_spkey_load(pool, key, cert, &k);

    if (e != NULL) {
        fail_msg("%s", btsso_error_line(pool, e));
    }
    assert_non_null(k);
    return k;
}

static void assert_load_error(const char *key, const char *cert,
                              const char *code)
{
    btsso_spkey_t *k = NULL;
    btsso_error_t *e = btsso_spkey_load(pool, key, cert, &k);

    if (e == NULL) {
        fail_msg("loading %s + %s succeeded, expected %s", key, cert, code);
    }
    assert_string_equal(e->code, code);
    assert_int_equal(e->status, 500);
    assert_non_null(e->detail);
    assert_null(k);
}

static void test_load_rsa(void **state)
{
    btsso_spkey_t *k = load_ok(SP "sp-current.key", SP "sp-current.crt");
    const btsso_cert_t *c = btsso_spkey_cert(k);

    assert_string_equal(btsso_spkey_type(k), "RSA");
    assert_string_equal(btsso_spkey_default_sigalg(k), BTSSO_SIGALG_RSA_SHA256);
    assert_non_null(c);
    assert_non_null(strstr(c->subject, "mod_btsso test SP current"));
    assert_int_equal(strlen(c->sha256), 64);
    /* The accessor is a real EVP_PKEY for crypto-internal users. */
    assert_int_equal(EVP_PKEY_get_base_id(btsso_spkey_evp_pkey(k)),
                     EVP_PKEY_RSA);
    assert_int_equal(EVP_PKEY_get_bits(btsso_spkey_evp_pkey(k)), 2048);

    k = load_ok(SP "sp-current-pkcs1.key", SP "sp-current.crt");
    assert_string_equal(btsso_spkey_type(k), "RSA");
    k = load_ok(SP "sp-next.key", SP "sp-next.crt");
    assert_non_null(strstr(btsso_spkey_cert(k)->subject, "next"));
}

static void test_load_ec(void **state)
{
    btsso_spkey_t *k = load_ok(SP "sp-ec.key", SP "sp-ec.crt");

    assert_string_equal(btsso_spkey_type(k), "EC");
    assert_string_equal(btsso_spkey_default_sigalg(k),
                        BTSSO_SIGALG_ECDSA_SHA256);
    assert_true(btsso_spkey_supports_sigalg(k, BTSSO_SIGALG_ECDSA_SHA384));
    assert_false(btsso_spkey_supports_sigalg(k, BTSSO_SIGALG_RSA_SHA256));
}

static void test_load_errors(void **state)
{
    btsso_spkey_t *k = NULL;
    btsso_error_t *e;

    assert_load_error(SP "sp-current-encrypted.key", SP "sp-current.crt",
                      "key_encrypted");
    assert_load_error(SP "sp-current-encrypted-legacy.key",
                      SP "sp-current.crt", "key_encrypted");
    assert_load_error(SP "no-such.key", SP "sp-current.crt",
                      "key_unreadable");
    assert_load_error(SP "sp-current.key", SP "no-such.crt",
                      "cert_unreadable");
    assert_load_error(SP "sp-current.crt", SP "sp-current.crt",
                      "key_invalid");
    assert_load_error(SP "sp-current.key", SP "sp-current.key",
                      "bad_certificate");
    assert_load_error(SP "sp-ec.key", SP "sp-current.crt", "key_mismatch");

    e = btsso_spkey_load(pool, SP "sp-current.key", SP "sp-next.crt", &k);
    assert_non_null(e);
    assert_string_equal(e->code, "key_mismatch");
    /* The operator must see which two files disagree. */
    assert_non_null(strstr(e->detail, "sp-current.key"));
    assert_non_null(strstr(e->detail, "sp-next.crt"));
    assert_null(k);

    e = btsso_spkey_load_pem(pool, "", 0, "empty", "", 0, "empty", &k);
    assert_non_null(e);
    assert_string_equal(e->code, "key_invalid");
}

/* A key made on the fly, as PEM in pool memory. */
static const char *pem_of(EVP_PKEY *pk)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data;
    long n;
    const char *out;

    assert_int_equal(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL,
                                              NULL), 1);
    n = BIO_get_mem_data(b, &data);
    out = apr_pstrmemdup(pool, data, (apr_size_t)n);
    BIO_free(b);
    EVP_PKEY_free(pk);
    return out;
}

static void test_load_unsupported(void **state)
{
    const char *cert = "unused";
    btsso_spkey_t *k = NULL;
    btsso_error_t *e;
    const char *pem;

    pem = pem_of(EVP_RSA_gen(1024));
    e = btsso_spkey_load_pem(pool, pem, strlen(pem), "weak.key", cert,
                             strlen(cert), "c", &k);
    assert_non_null(e);
    assert_string_equal(e->code, "key_unsupported");
    assert_non_null(strstr(e->detail, "1024"));

    pem = pem_of(EVP_EC_gen("secp256k1"));
    e = btsso_spkey_load_pem(pool, pem, strlen(pem), "k1.key", cert,
                             strlen(cert), "c", &k);
    assert_non_null(e);
    assert_string_equal(e->code, "key_unsupported");

    pem = pem_of(EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
    e = btsso_spkey_load_pem(pool, pem, strlen(pem), "ed.key", cert,
                             strlen(cert), "c", &k);
    assert_non_null(e);
    assert_string_equal(e->code, "key_unsupported");
    assert_null(k);
}

static const char *write_temp(const void *data, size_t len)
{
    char *path = apr_pstrdup(pool, "/tmp/btsso-spkey-XXXXXX");
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

/* openssl dgst -verify on the exact octets: exit status 0 when valid. */
static int openssl_cli_verify(const char *digest, const char *cert_file,
                              const void *data, size_t len,
                              const unsigned char *sig, size_t sig_len)
{
    const char *data_file = write_temp(data, len);
    const char *sig_file = write_temp(sig, sig_len);
    const char *pub_file = apr_pstrcat(pool, data_file, ".pub", NULL);
    const char *cmd;
    int rc;

    cmd = apr_psprintf(pool, "openssl x509 -in '%s' -pubkey -noout > '%s' && "
                       "openssl dgst -%s -verify '%s' -signature '%s' '%s' "
                       ">/dev/null 2>&1", cert_file, pub_file, digest,
                       pub_file, sig_file, data_file);
    rc = system(cmd);
    unlink(data_file);
    unlink(sig_file);
    unlink(pub_file);
    return rc;
}

static void test_sign_rsa_verified_by_openssl_cli(void **state)
{
    static const char msg[] = "SAMLRequest=abc%2B&RelayState=%2Fx&SigAlg="
                              "http%3A%2F%2Fwww.w3.org";
    static const struct {
        const char *uri, *digest;
    } algs[] = {
        { BTSSO_SIGALG_RSA_SHA256, "sha256" },
        { BTSSO_SIGALG_RSA_SHA384, "sha384" },
        { BTSSO_SIGALG_RSA_SHA512, "sha512" },
    };
    btsso_spkey_t *k = load_ok(SP "sp-current.key", SP "sp-current.crt");
    const unsigned char *sig;
    apr_size_t sig_len;
    size_t i;

    for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        assert_null(btsso_spkey_sign(pool, k, msg, strlen(msg), algs[i].uri,
                                     &sig, &sig_len));
        assert_int_equal(sig_len, 256);
        assert_int_equal(openssl_cli_verify(algs[i].digest,
                                            SP "sp-current.crt", msg,
                                            strlen(msg), sig, sig_len), 0);
        /* one octet less signed: must not verify */
        assert_int_not_equal(openssl_cli_verify(algs[i].digest,
                                                SP "sp-current.crt", msg,
                                                strlen(msg) - 1, sig,
                                                sig_len), 0);
        /* another key's certificate: must not verify */
        assert_int_not_equal(openssl_cli_verify(algs[i].digest,
                                                SP "sp-next.crt", msg,
                                                strlen(msg), sig, sig_len), 0);
    }
    /* NULL algorithm: the key's default, RSA-SHA256 */
    assert_null(btsso_spkey_sign(pool, k, msg, strlen(msg), NULL, &sig,
                                 &sig_len));
    assert_int_equal(openssl_cli_verify("sha256", SP "sp-current.crt", msg,
                                        strlen(msg), sig, sig_len), 0);
}

/* ECDSA r||s checked on a digest made here, through EVP_PKEY_verify on a
 * DER signature assembled here. */
static int independent_ecdsa_verify(const char *cert_file, const void *data,
                                    size_t len, const unsigned char *sig,
                                    size_t sig_len)
{
    FILE *f = fopen(cert_file, "r");
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(X509_get0_pubkey(x), NULL);
    unsigned char md[32];
    unsigned int md_len = 0;
    ECDSA_SIG *es = ECDSA_SIG_new();
    unsigned char *der = NULL;
    int der_len, rc;

    fclose(f);
    assert_int_equal(sig_len, 64);
    ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
    der_len = i2d_ECDSA_SIG(es, &der);
    EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL);
    assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
    rc = EVP_PKEY_verify(ctx, der, (size_t)der_len, md, md_len);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    EVP_PKEY_CTX_free(ctx);
    X509_free(x);
    return rc;
}

static void test_sign_ecdsa(void **state)
{
    static const char msg[] = "SAMLRequest=xyz&SigAlg=ecdsa";
    btsso_spkey_t *k = load_ok(SP "sp-ec.key", SP "sp-ec.crt");
    const unsigned char *sig;
    apr_size_t sig_len;

    assert_null(btsso_spkey_sign(pool, k, msg, strlen(msg), NULL, &sig,
                                 &sig_len));
    assert_int_equal(sig_len, 64);
    assert_int_equal(independent_ecdsa_verify(SP "sp-ec.crt", msg,
                                              strlen(msg), sig, sig_len), 1);
    assert_int_not_equal(independent_ecdsa_verify(SP "sp-ec.crt", msg,
                                                  strlen(msg) - 1, sig,
                                                  sig_len), 1);
    assert_null(btsso_sig_verify(pool, btsso_spkey_cert(k), msg, strlen(msg),
                                 BTSSO_SIGALG_ECDSA_SHA256, sig, sig_len));
    /* SHA-384 with a P-256 key: still r||s of 32 octets each */
    assert_null(btsso_spkey_sign(pool, k, msg, strlen(msg),
                                 BTSSO_SIGALG_ECDSA_SHA384, &sig, &sig_len));
    assert_int_equal(sig_len, 64);
    assert_null(btsso_sig_verify(pool, btsso_spkey_cert(k), msg, strlen(msg),
                                 BTSSO_SIGALG_ECDSA_SHA384, sig, sig_len));
}

static void test_sign_refuses_algorithms(void **state)
{
    btsso_spkey_t *rsa = load_ok(SP "sp-current.key", SP "sp-current.crt");
    btsso_spkey_t *ec = load_ok(SP "sp-ec.key", SP "sp-ec.crt");
    const unsigned char *sig = NULL;
    apr_size_t sig_len = 0;
    btsso_error_t *e;

    e = btsso_spkey_sign(pool, rsa, "x", 1, BTSSO_SIGALG_RSA_SHA1, &sig,
                         &sig_len);
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_unsupported");
    e = btsso_spkey_sign(pool, rsa, "x", 1, BTSSO_SIGALG_ECDSA_SHA256, &sig,
                         &sig_len);
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_unsupported");
    e = btsso_spkey_sign(pool, ec, "x", 1, BTSSO_SIGALG_RSA_SHA256, &sig,
                         &sig_len);
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_unsupported");
    e = btsso_spkey_sign(pool, ec, "x", 1, "urn:nonsense", &sig, &sig_len);
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_unsupported");
    assert_null(sig);
}

static void test_verify(void **state)
{
    static const char msg[] = "SAMLResponse=abc&SigAlg=x";
    btsso_spkey_t *k = load_ok(SP "sp-current.key", SP "sp-current.crt");
    btsso_spkey_t *next = load_ok(SP "sp-next.key", SP "sp-next.crt");
    btsso_spkey_t *ec = load_ok(SP "sp-ec.key", SP "sp-ec.crt");
    const unsigned char *sig;
    unsigned char *bad;
    apr_size_t sig_len;
    btsso_error_t *e;

    assert_null(btsso_spkey_sign(pool, k, msg, strlen(msg),
                                 BTSSO_SIGALG_RSA_SHA512, &sig, &sig_len));
    assert_null(btsso_sig_verify(pool, btsso_spkey_cert(k), msg, strlen(msg),
                                 BTSSO_SIGALG_RSA_SHA512, sig, sig_len));

    e = btsso_sig_verify(pool, btsso_spkey_cert(k), msg, strlen(msg),
                         BTSSO_SIGALG_RSA_SHA256, sig, sig_len);
    assert_non_null(e);
    assert_string_equal(e->code, "sig_invalid");

    e = btsso_sig_verify(pool, btsso_spkey_cert(next), msg, strlen(msg),
                         BTSSO_SIGALG_RSA_SHA512, sig, sig_len);
    assert_non_null(e);
    assert_string_equal(e->code, "sig_invalid");
    assert_int_equal(e->status, 403);

    bad = apr_pmemdup(pool, sig, sig_len);
    bad[10] ^= 0x01;
    e = btsso_sig_verify(pool, btsso_spkey_cert(k), msg, strlen(msg),
                         BTSSO_SIGALG_RSA_SHA512, bad, sig_len);
    assert_non_null(e);
    assert_string_equal(e->code, "sig_invalid");

    e = btsso_sig_verify(pool, btsso_spkey_cert(k), msg, strlen(msg),
                         "urn:unknown", sig, sig_len);
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_unsupported");
    e = btsso_sig_verify(pool, btsso_spkey_cert(k), msg, strlen(msg),
                         NULL, sig, sig_len);
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_unsupported");

    /* an RSA algorithm claimed for an EC certificate */
    e = btsso_sig_verify(pool, btsso_spkey_cert(ec), msg, strlen(msg),
                         BTSSO_SIGALG_RSA_SHA512, sig, sig_len);
    assert_non_null(e);
    assert_string_equal(e->code, "sigalg_unsupported");

    /* ECDSA value of the wrong length */
    e = btsso_sig_verify(pool, btsso_spkey_cert(ec), msg, strlen(msg),
                         BTSSO_SIGALG_ECDSA_SHA256, sig, 63);
    assert_non_null(e);
    assert_string_equal(e->code, "sig_invalid");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_rsa),
        cmocka_unit_test(test_load_ec),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load_unsupported),
        cmocka_unit_test(test_sign_rsa_verified_by_openssl_cli),
        cmocka_unit_test(test_sign_ecdsa),
        cmocka_unit_test(test_sign_refuses_algorithms),
        cmocka_unit_test(test_verify),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, setup, teardown);
}
