/*
 * test_refcode.c - core/refcode: the reference codes of refused sign-ins
 * (shape, alphabet without look-alikes, spread, and reading back what a
 * person types).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include "core/refcode.h"

static apr_pool_t *pool;

static void test_shape_and_spread(void **state)
{
    apr_hash_t *seen = apr_hash_make(pool);
    int counts[256] = { 0 };
    int i, j;

    (void)state;
    for (i = 0; i < 5000; i++) {
        const char *c = btsso_refcode_new(pool);

        assert_non_null(c);
        assert_int_equal(strlen(c), BTSSO_REFCODE_LEN);
        assert_int_equal(c[4], '-');
        for (j = 0; j < BTSSO_REFCODE_LEN; j++) {
            if (j == 4) {
                continue;
            }
            /* never 0 O 1 I L, never lower case */
            assert_non_null(strchr(BTSSO_REFCODE_ALPHABET, c[j]));
            counts[(unsigned char)c[j]]++;
        }
        /* a fresh code reads back as itself */
        assert_string_equal(btsso_refcode_normalize(pool, c), c);
        assert_null(apr_hash_get(seen, c, APR_HASH_KEY_STRING));
        apr_hash_set(seen, c, APR_HASH_KEY_STRING, c);
    }
    /* 40000 characters over 31: each about 1290; none missing or doubled */
    for (j = 0; BTSSO_REFCODE_ALPHABET[j] != '\0'; j++) {
        int n = counts[(unsigned char)BTSSO_REFCODE_ALPHABET[j]];
        assert_true(n > 1000 && n < 1600);
    }
}

static void test_normalize(void **state)
{
    (void)state;
    assert_string_equal(btsso_refcode_normalize(pool, "k7qx-m2pa"),
                        "K7QX-M2PA");
    assert_string_equal(btsso_refcode_normalize(pool, "K7QXM2PA"),
                        "K7QX-M2PA");
    assert_string_equal(btsso_refcode_normalize(pool, " k7qx m2pa "),
                        "K7QX-M2PA");
    assert_null(btsso_refcode_normalize(pool, NULL));
    assert_null(btsso_refcode_normalize(pool, ""));
    assert_null(btsso_refcode_normalize(pool, "K7QX-M2P"));       /* short */
    assert_null(btsso_refcode_normalize(pool, "K7QX-M2PAA"));     /* long */
    assert_null(btsso_refcode_normalize(pool, "K0QX-M2PA"));      /* 0 */
    assert_null(btsso_refcode_normalize(pool, "KOQX-M2PA"));      /* O */
    assert_null(btsso_refcode_normalize(pool, "K1QX-M2PA"));      /* 1 */
    assert_null(btsso_refcode_normalize(pool, "KLQX-M2PA"));      /* L */
    assert_null(btsso_refcode_normalize(pool, "K7QX'M2PA"));
    assert_null(btsso_refcode_normalize(pool, "K7QX-M2PA' OR 1=1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_and_spread),
        cmocka_unit_test(test_normalize),
    };
    int rc;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}
