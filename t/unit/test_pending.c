/*
 * test_pending.c - the authenticated record of a sign-in in flight
 * (core/pending.c): round trip, and every alteration refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "core/pending.h"

static apr_pool_t *pool;
static const unsigned char key[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char other_key[32] = "0123456789abcdef0123456789abcdeX";

#define RELAY "00112233445566778899aabbccddeeff"
#define SP "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"
#define NOW apr_time_from_sec(1700000000)

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

static btsso_pending_rec_t sample(void)
{
    btsso_pending_rec_t rec;

    memset(&rec, 0, sizeof(rec));
    rec.relay = RELAY;
    rec.request_id = "_a1b2c3";
    rec.account = "acme";
    rec.return_to = "/app/x?y=1;z=\"2\",3";
    rec.test = 1;
    rec.expires = NOW + apr_time_from_sec(600);
    rec.sp_id = SP;
    return rec;
}

static const char *encoded(const btsso_pending_rec_t *rec)
{
    const char *v = NULL;

    assert_null(btsso_pending_rec_encode(pool, key, sizeof(key), rec, &v));
    assert_non_null(v);
    return v;
}

static void assert_invalid(const char *value, const char *relay,
                           const char *sp, apr_time_t now, const char *why)
{
    btsso_pending_rec_t *out = NULL;
    btsso_error_t *e = btsso_pending_rec_decode(pool, key, sizeof(key), value,
                                                relay, sp, now, &out);

    if (e == NULL) {
        fail_msg("accepted '%s'", value);
    }
    assert_string_equal(e->code, "pending_invalid");
    assert_int_equal(e->status, 403);
    if (why != NULL && strstr(e->detail, why) == NULL) {
        fail_msg("detail '%s' does not say '%s'", e->detail, why);
    }
    assert_null(out);
}

static void test_round_trip(void **state)
{
    btsso_pending_rec_t rec = sample(), *out = NULL;
    const char *v = encoded(&rec);
    const char *s;

    /* a cookie value: RFC 6265 cookie-octets only, and bounded */
    for (s = v; *s; s++) {
        assert_true(*s > 0x20 && *s < 0x7f && *s != '"' && *s != ','
                    && *s != ';' && *s != '\\');
    }
    assert_true(strncmp(v, "v1.", 3) == 0);
    assert_null(btsso_pending_rec_decode(pool, key, sizeof(key), v, RELAY, SP,
                                         NOW, &out));
    assert_string_equal(out->relay, RELAY);
    assert_string_equal(out->request_id, "_a1b2c3");
    assert_string_equal(out->account, "acme");
    assert_string_equal(out->return_to, rec.return_to);
    assert_int_equal(out->test, 1);
    assert_true(out->expires == rec.expires);
    assert_string_equal(out->sp_id, SP);

    rec.return_to = NULL;
    rec.test = 0;
    v = encoded(&rec);
    assert_null(btsso_pending_rec_decode(pool, key, sizeof(key), v, RELAY, SP,
                                         NOW, &out));
    assert_null(out->return_to);
    assert_int_equal(out->test, 0);
}

static void test_long_return_stays_cookie_sized(void **state)
{
    btsso_pending_rec_t rec = sample();
    char *ret = apr_palloc(pool, 2049);

    memset(ret, 'a', 2048);
    ret[0] = '/';
    ret[2048] = '\0';
    rec.return_to = ret;
    assert_true(strlen(encoded(&rec)) < 3100);
}

static void test_every_bit_flip_refused(void **state)
{
    btsso_pending_rec_t rec = sample();
    const char *v = encoded(&rec);
    apr_size_t i, n = strlen(v);
    int bit;

    for (i = 0; i < n; i++) {
        for (bit = 0; bit < 7; bit++) {
            char *t = apr_pstrdup(pool, v);

            t[i] ^= (char)(1 << bit);
            if (strcmp(t, v) == 0) {
                continue;
            }
            assert_invalid(t, RELAY, SP, NOW, NULL);
        }
    }
}

static void test_checks(void **state)
{
    btsso_pending_rec_t rec = sample(), *out = NULL;
    const char *v = encoded(&rec);
    btsso_error_t *e;

    assert_invalid(v, "ffffffffffffffffffffffffffffffff", SP, NOW,
                   "another RelayState");
    assert_invalid(v, RELAY, "1f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f", NOW,
                   "another SP");
    assert_invalid(v, RELAY, SP, rec.expires, "expired");
    assert_invalid(v, RELAY, SP, rec.expires + apr_time_from_sec(1),
                   "expired");
    assert_invalid(v, NULL, SP, NOW, NULL);
    assert_invalid(v, RELAY, NULL, NOW, NULL);
    /* another key (another SP key, another node without the SP key) */
    e = btsso_pending_rec_decode(pool, other_key, sizeof(other_key), v, RELAY,
                                 SP, NOW, &out);
    assert_non_null(e);
    assert_non_null(strstr(e->detail, "MAC"));
}

static void test_malformed_refused(void **state)
{
    btsso_pending_rec_t rec = sample();
    const char *v = encoded(&rec);
    const char *dot = strrchr(v, '.');

    assert_invalid("", RELAY, SP, NOW, NULL);
    assert_invalid("v1", RELAY, SP, NOW, NULL);
    assert_invalid("v1.", RELAY, SP, NOW, NULL);
    assert_invalid("v1..", RELAY, SP, NOW, NULL);
    assert_invalid(apr_pstrcat(pool, "v2", v + 2, NULL), RELAY, SP, NOW,
                   NULL);
    assert_invalid(apr_pstrndup(pool, v, (apr_size_t)(dot - v)), RELAY, SP,
                   NOW, NULL);
    assert_invalid(apr_pstrndup(pool, v, strlen(v) - 1), RELAY, SP, NOW,
                   NULL);
    assert_invalid(apr_pstrcat(pool, v, "A", NULL), RELAY, SP, NOW, NULL);
    assert_invalid(apr_pstrcat(pool, v, "=", NULL), RELAY, SP, NOW, NULL);
}

static void test_encode_refuses_bad_fields(void **state)
{
    btsso_pending_rec_t rec = sample();
    const char *v = NULL;

    rec.return_to = "/a\nb";
    assert_non_null(btsso_pending_rec_encode(pool, key, sizeof(key), &rec,
                                             &v));
    rec = sample();
    rec.account = "";
    assert_non_null(btsso_pending_rec_encode(pool, key, sizeof(key), &rec,
                                             &v));
    rec = sample();
    rec.relay = "short";
    assert_non_null(btsso_pending_rec_encode(pool, key, sizeof(key), &rec,
                                             &v));
    rec = sample();
    rec.sp_id = NULL;
    assert_non_null(btsso_pending_rec_encode(pool, key, sizeof(key), &rec,
                                             &v));
}

static void test_relay_ok(void **state)
{
    assert_true(btsso_pending_relay_ok(RELAY));
    assert_false(btsso_pending_relay_ok(NULL));
    assert_false(btsso_pending_relay_ok(""));
    assert_false(btsso_pending_relay_ok("00112233445566778899AABBCCDDEEFF"));
    assert_false(btsso_pending_relay_ok(RELAY "0"));
    assert_false(btsso_pending_relay_ok("/app/"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_long_return_stays_cookie_sized),
        cmocka_unit_test(test_every_bit_flip_refused),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_encode_refuses_bad_fields),
        cmocka_unit_test(test_relay_ok),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, setup, teardown);
}
