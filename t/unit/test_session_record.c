/*
 * test_session_record.c - core/session_record: the compact session record
 * (round trip, every refusal), the attribute bounds, the environment names
 * and their clashes, the X-BTSSO-Attributes value, Require matching.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "core/session_record.h"
#include "core/b64.h"

static apr_pool_t *pool;

static apr_array_header_t *vals(int n, ...)
{
    apr_array_header_t *a = apr_array_make(pool, 2, sizeof(const char *));
    va_list ap;
    int i;

    va_start(ap, n);
    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(a, const char *) = va_arg(ap, const char *);
    }
    va_end(ap);
    return a;
}

static void add_attr(apr_array_header_t *attrs, const char *name,
                     const char *fn, apr_array_header_t *v)
{
    btsso_session_attr_t *a = apr_array_push(attrs);

    a->name = name;
    a->friendly_name = fn;
    a->values = v;
}

static btsso_session_record_t sample(void)
{
    btsso_session_record_t r;
    apr_array_header_t *attrs = apr_array_make(pool, 4,
                                               sizeof(btsso_session_attr_t));

    memset(&r, 0, sizeof(r));
    r.sp_id = "0123abcd";
    r.account = "acme";
    r.email = "ann@example.com";
    r.extension = "100";
    r.name_id = "ann@example.com";
    r.name_id_format = NULL;
    r.idp = "https://idp.example.test/idp";
    r.session_index = "_si-1";
    r.created = APR_INT64_C(1764633600123456);
    r.expires = APR_INT64_C(1764662400000000);
    r.last_seen = APR_INT64_C(1764633601000000);
    r.epoch = 7;
    r.revoke_seq = -1;
    r.user_checked = APR_INT64_C(1764633602000000);
    add_attr(attrs, "urn:oid:0.9.2342.19200300.100.1.3", "mail",
             vals(1, "ann@example.com"));
    add_attr(attrs, "groups", NULL, vals(3, "Sales", "Support", ""));
    add_attr(attrs, "empty", NULL, vals(0));
    add_attr(attrs, "dn", "displayName", vals(1, "J\xc3\xbcrgen"));
    r.attributes = attrs;
    return r;
}

static void test_round_trip(void **state)
{
    btsso_session_record_t r = sample(), back;
    apr_size_t len = 0;
    unsigned char *rec = btsso_session_record_encode(pool, &r, &len);
    const btsso_session_attr_t *a;

    assert_non_null(rec);
    assert_int_equal(rec[0], BTSSO_SESSION_RECORD_MAGIC);
    assert_int_equal(rec[1], BTSSO_SESSION_RECORD_VERSION);
    assert_true(btsso_session_record_decode(pool, rec, len, &back));
    assert_string_equal(back.sp_id, r.sp_id);
    assert_string_equal(back.account, "acme");
    assert_string_equal(back.email, r.email);
    assert_string_equal(back.extension, "100");
    assert_string_equal(back.name_id, r.name_id);
    assert_null(back.name_id_format);
    assert_string_equal(back.idp, r.idp);
    assert_string_equal(back.session_index, "_si-1");
    assert_true(back.created == r.created);
    assert_true(back.expires == r.expires);
    assert_true(back.last_seen == r.last_seen);
    assert_true(back.epoch == 7);
    assert_true(back.revoke_seq == -1);
    assert_true(back.user_checked == r.user_checked);
    assert_int_equal(back.attributes->nelts, 4);
    a = &APR_ARRAY_IDX(back.attributes, 1, btsso_session_attr_t);
    assert_string_equal(a->name, "groups");
    assert_null(a->friendly_name);
    assert_int_equal(a->values->nelts, 3);
    assert_string_equal(APR_ARRAY_IDX(a->values, 1, const char *),
                        "Support");
    assert_string_equal(APR_ARRAY_IDX(a->values, 2, const char *), "");
    a = &APR_ARRAY_IDX(back.attributes, 2, btsso_session_attr_t);
    assert_int_equal(a->values->nelts, 0);
    /* no attributes at all */
    r.attributes = NULL;
    rec = btsso_session_record_encode(pool, &r, &len);
    assert_non_null(rec);
    assert_true(btsso_session_record_decode(pool, rec, len, &back));
    assert_int_equal(back.attributes->nelts, 0);
}

static void test_refusals(void **state)
{
    btsso_session_record_t r = sample(), back;
    apr_size_t len = 0, i;
    unsigned char *rec = btsso_session_record_encode(pool, &r, &len);
    unsigned char *bad = apr_palloc(pool, len + 1);
    static const char json[] = "{\"sp\":\"x\",\"account\":\"acme\"}";

    /* every proper prefix is refused, and octets after the end */
    for (i = 0; i < len; i++) {
        if (btsso_session_record_decode(pool, rec, i, &back)) {
            fail_msg("prefix of %zu octets accepted", (size_t)i);
        }
    }
    memcpy(bad, rec, len);
    bad[len] = 0;
    assert_false(btsso_session_record_decode(pool, bad, len + 1, &back));
    /* an old JSON record, another magic, another version */
    assert_false(btsso_session_record_decode(
        pool, (const unsigned char *)json, sizeof(json) - 1, &back));
    memcpy(bad, rec, len);
    bad[0] = '{';
    assert_false(btsso_session_record_decode(pool, bad, len, &back));
    memcpy(bad, rec, len);
    bad[1] = 2;
    assert_false(btsso_session_record_decode(pool, bad, len, &back));
    /* a string without its NUL, or with one inside: the sp_id "0123abcd"
     * starts at offset 3 (its length octet is 9) */
    memcpy(bad, rec, len);
    assert_int_equal(bad[2], 9);
    bad[3 + 8] = 'x';
    assert_false(btsso_session_record_decode(pool, bad, len, &back));
    memcpy(bad, rec, len);
    bad[3 + 2] = '\0';
    assert_false(btsso_session_record_decode(pool, bad, len, &back));
    /* a required string absent */
    memcpy(bad, rec, len);
    bad[2] = 0;
    assert_false(btsso_session_record_decode(pool, bad, len, &back));
    /* NULL, empty */
    assert_false(btsso_session_record_decode(pool, NULL, 0, &back));
    assert_false(btsso_session_record_decode(pool, rec, 0, &back));
    /* the encoder refuses what the decoder would */
    r.account = NULL;
    assert_null(btsso_session_record_encode(pool, &r, &len));
}

static void test_overlong_varint(void **state)
{
    /* the sp_id length 9 spelled in two octets (0x89 0x00): refused */
    btsso_session_record_t r = sample(), back;
    apr_size_t len = 0;
    unsigned char *rec = btsso_session_record_encode(pool, &r, &len);
    unsigned char *bad = apr_palloc(pool, len + 1);

    bad[0] = rec[0];
    bad[1] = rec[1];
    bad[2] = 0x89;
    bad[3] = 0x00;
    memcpy(bad + 4, rec + 3, len - 3);
    assert_false(btsso_session_record_decode(pool, bad, len + 1, &back));
}

static void test_decoder_bounds(void **state)
{
    btsso_session_record_t r = sample(), back;
    apr_array_header_t *attrs = apr_array_make(pool, 70,
                                               sizeof(btsso_session_attr_t));
    apr_array_header_t *many = apr_array_make(pool, 101,
                                              sizeof(const char *));
    apr_size_t len;
    int i;

    for (i = 0; i < BTSSO_SESSION_MAX_ATTRS + 1; i++) {
        add_attr(attrs, apr_psprintf(pool, "a%d", i), NULL, vals(1, "v"));
    }
    r.attributes = attrs;
    assert_null(btsso_session_record_encode(pool, &r, &len));
    for (i = 0; i < BTSSO_SESSION_MAX_VALUES + 1; i++) {
        APR_ARRAY_PUSH(many, const char *) = "v";
    }
    attrs = apr_array_make(pool, 1, sizeof(btsso_session_attr_t));
    add_attr(attrs, "groups", NULL, many);
    r.attributes = attrs;
    assert_null(btsso_session_record_encode(pool, &r, &len));
    /* and at the bounds exactly, both ways */
    apr_array_pop(many);
    {
        unsigned char *rec = btsso_session_record_encode(pool, &r, &len);

        assert_non_null(rec);
        assert_true(btsso_session_record_decode(pool, rec, len, &back));
        assert_int_equal(APR_ARRAY_IDX(back.attributes, 0,
                                       btsso_session_attr_t).values->nelts,
                         BTSSO_SESSION_MAX_VALUES);
    }
}

static void test_bound(void **state)
{
    apr_array_header_t *in = apr_array_make(pool, 80,
                                            sizeof(btsso_session_attr_t));
    apr_array_header_t *many = apr_array_make(pool, 120,
                                              sizeof(const char *));
    const apr_array_header_t *kept;
    btsso_session_attrs_dropped_t d;
    char *big = apr_palloc(pool, 20001);
    int i;

    /* merging: the same Name twice gives one attribute, the first's
     * FriendlyName */
    add_attr(in, "groups", "grp", vals(2, "a", "b"));
    add_attr(in, "mail", "", vals(1, "m"));
    add_attr(in, "groups", "other", vals(1, "c"));
    kept = btsso_session_attrs_bound(pool, in, &d);
    assert_int_equal(kept->nelts, 2);
    assert_int_equal(d.attributes + d.values, 0);
    assert_string_equal(APR_ARRAY_IDX(kept, 0, btsso_session_attr_t)
                        .friendly_name, "grp");
    assert_int_equal(APR_ARRAY_IDX(kept, 0, btsso_session_attr_t)
                     .values->nelts, 3);
    assert_null(APR_ARRAY_IDX(kept, 1, btsso_session_attr_t).friendly_name);

    /* 65 attributes: the 65th dropped */
    in->nelts = 0;
    for (i = 0; i < 65; i++) {
        add_attr(in, apr_psprintf(pool, "a%02d", i), NULL, vals(1, "v"));
    }
    kept = btsso_session_attrs_bound(pool, in, &d);
    assert_int_equal(kept->nelts, 64);
    assert_int_equal(d.attributes, 1);
    assert_int_equal(d.values, 1);
    assert_string_equal(d.first, "a64");

    /* 101 values: the 101st dropped, what follows kept */
    in->nelts = 0;
    for (i = 0; i < 101; i++) {
        APR_ARRAY_PUSH(many, const char *) = apr_psprintf(pool, "g%d", i);
    }
    add_attr(in, "groups", NULL, many);
    add_attr(in, "after", NULL, vals(1, "kept"));
    kept = btsso_session_attrs_bound(pool, in, &d);
    assert_int_equal(kept->nelts, 2);
    assert_int_equal(APR_ARRAY_IDX(kept, 0, btsso_session_attr_t)
                     .values->nelts, 100);
    assert_int_equal(d.attributes, 0);
    assert_int_equal(d.values, 1);

    /* 32 KiB in all: a value that does not fit goes, smaller ones after
     * it still fit */
    memset(big, 'x', 20000);
    big[20000] = '\0';
    in->nelts = 0;
    add_attr(in, "b1", NULL, vals(1, big));
    add_attr(in, "b2", NULL, vals(1, big));
    add_attr(in, "small", NULL, vals(1, "s"));
    add_attr(in, "b3", NULL, vals(0));          /* no value: kept */
    kept = btsso_session_attrs_bound(pool, in, &d);
    assert_int_equal(kept->nelts, 3);
    assert_string_equal(APR_ARRAY_IDX(kept, 1, btsso_session_attr_t).name,
                        "small");
    assert_string_equal(APR_ARRAY_IDX(kept, 2, btsso_session_attr_t).name,
                        "b3");
    assert_int_equal(d.attributes, 1);
    assert_int_equal(d.values, 1);
    assert_string_equal(d.first, "b2");
    {
        btsso_session_record_t r = sample(), back;
        apr_size_t len;
        unsigned char *rec;

        r.attributes = kept;
        rec = btsso_session_record_encode(pool, &r, &len);
        assert_non_null(rec);
        assert_true(btsso_session_record_decode(pool, rec, len, &back));
    }
}

typedef struct envs {
    apr_table_t *set;
    int taken, control;
} envs;

static void env_set(void *ctx, const char *var, const char *value)
{
    envs *e = ctx;

    assert_null(apr_table_get(e->set, var));
    apr_table_set(e->set, var, value);
}

static void env_skip(void *ctx, const btsso_session_attr_t *a,
                     const char *var, int why)
{
    envs *e = ctx;

    if (why == BTSSO_ATTR_SKIP_TAKEN) {
        e->taken++;
    }
    else {
        e->control++;
    }
}

static void test_env(void **state)
{
    apr_array_header_t *attrs = apr_array_make(pool, 8,
                                               sizeof(btsso_session_attr_t));
    btsso_session_attr_t one = { "x", "e-Mail.2", NULL };
    envs e = { apr_table_make(pool, 8), 0, 0 };

    assert_string_equal(btsso_session_attr_var(pool, &one),
                        "BTSSO_ATTR_E_MAIL_2");
    one.friendly_name = NULL;
    one.name = "Abteilung-\xc3\xa4\xe6\x97\xa5";    /* 'ä', U+65E5 */
    assert_string_equal(btsso_session_attr_var(pool, &one),
                        "BTSSO_ATTR_ABTEILUNG___");
    one.friendly_name = "";
    one.name = "http://schemas.xmlsoap.org/claims/Group";
    assert_string_equal(btsso_session_attr_var(pool, &one),
                        "BTSSO_ATTR_HTTP___SCHEMAS_XMLSOAP_ORG_CLAIMS_GROUP");

    add_attr(attrs, "groups", NULL, vals(2, "Sales", "Support"));
    add_attr(attrs, "GROUPS", NULL, vals(1, "clash"));
    add_attr(attrs, "groups_N", NULL, vals(1, "7"));
    add_attr(attrs, "groups_3", NULL, vals(1, "third"));   /* free */
    add_attr(attrs, "evil", NULL, vals(1, "a\r\nX-Evil: 1"));
    add_attr(attrs, "none", NULL, vals(0));
    btsso_session_attrs_env(pool, attrs, env_set, env_skip, &e);
    assert_string_equal(apr_table_get(e.set, "BTSSO_ATTR_GROUPS"), "Sales");
    assert_string_equal(apr_table_get(e.set, "BTSSO_ATTR_GROUPS_N"), "2");
    assert_string_equal(apr_table_get(e.set, "BTSSO_ATTR_GROUPS_1"),
                        "Sales");
    assert_string_equal(apr_table_get(e.set, "BTSSO_ATTR_GROUPS_2"),
                        "Support");
    assert_string_equal(apr_table_get(e.set, "BTSSO_ATTR_GROUPS_3"),
                        "third");
    assert_null(apr_table_get(e.set, "BTSSO_ATTR_EVIL"));
    assert_null(apr_table_get(e.set, "BTSSO_ATTR_NONE"));
    assert_string_equal(apr_table_get(e.set, "BTSSO_ATTR_NONE_N"), "0");
    assert_int_equal(e.taken, 2);
    assert_int_equal(e.control, 1);
}

/* The clash rule against its plain reading, on random sets of names
 * that run into each other: an attribute is exported unless one of its
 * names (VAR, VAR_N, VAR_1..VAR_n) is a name of one exported before. */
static void test_env_clashes_random(void **state)
{
    static const char *names[] = { "a", "a_1", "a_2", "a_N", "a_1_1",
                                   "a_12", "a_1_N", "b", "a_0", "a_01" };
    static const char *v[] = { "v1", "v2", "v3", "v4", "v5", "v6", "v7",
                               "v8", "v9", "v10", "v11", "v12", "v13" };
    unsigned int seed = 7;
    int round;

    for (round = 0; round < 3000; round++) {
        apr_array_header_t *attrs = apr_array_make(pool, 8,
                                                   sizeof(btsso_session_attr_t));
        apr_table_t *want = apr_table_make(pool, 16);
        apr_table_t *expect = apr_table_make(pool, 16);
        envs e = { apr_table_make(pool, 16), 0, 0 };
        int n = 1 + (int)(rand_r(&seed) % 5), i, j, taken = 0;

        for (i = 0; i < n; i++) {
            apr_array_header_t *vs = apr_array_make(pool, 2,
                                                    sizeof(const char *));
            int nv = (int)(rand_r(&seed) % 14);
            char *up, *c;
            const char **mine;
            int clash = 0;

            for (j = 0; j < nv; j++) {
                APR_ARRAY_PUSH(vs, const char *) = v[j % 13];
            }
            add_attr(attrs, names[rand_r(&seed) % 10], NULL, vs);
            up = apr_pstrcat(pool, "BTSSO_ATTR_",
                             APR_ARRAY_IDX(attrs, i,
                                           btsso_session_attr_t).name, NULL);
            for (c = up; *c; c++) {
                *c = *c >= 'a' && *c <= 'z' ? (char)(*c - 32) : *c;
            }
            mine = apr_palloc(pool, sizeof(char *) * (nv + 2));
            mine[0] = up;
            mine[1] = apr_pstrcat(pool, up, "_N", NULL);
            for (j = 0; j < nv; j++) {
                mine[j + 2] = apr_psprintf(pool, "%s_%d", up, j + 1);
            }
            for (j = 0; j < nv + 2; j++) {
                clash |= apr_table_get(want, mine[j]) != NULL;
            }
            if (clash) {
                taken++;
                continue;
            }
            for (j = 0; j < nv + 2; j++) {
                apr_table_set(want, mine[j], "");
            }
            if (nv > 0) {
                apr_table_set(expect, up, v[0]);
            }
            apr_table_set(expect, mine[1], apr_itoa(pool, nv));
            for (j = 0; j < nv; j++) {
                apr_table_set(expect, mine[j + 2], v[j % 13]);
            }
        }
        btsso_session_attrs_env(pool, attrs, env_set, env_skip, &e);
        assert_int_equal(e.taken, taken);
        /* exactly what was expected: VAR (when there is a value), VAR_N
         * and VAR_<i> of each exported attribute */
        assert_int_equal(apr_table_elts(e.set)->nelts,
                         apr_table_elts(expect)->nelts);
        for (i = 0; i < apr_table_elts(expect)->nelts; i++) {
            const apr_table_entry_t *t = &APR_ARRAY_IDX(
                apr_table_elts(expect), i, apr_table_entry_t);
            const char *got = apr_table_get(e.set, t->key);

            if (got == NULL || strcmp(got, t->val) != 0) {
                fail_msg("round %d: %s is %s, want %s", round, t->key,
                         got ? got : "unset", t->val);
            }
        }
    }
}

static void test_header_and_match(void **state)
{
    apr_array_header_t *attrs = apr_array_make(pool, 8,
                                               sizeof(btsso_session_attr_t));
    const char *hdr;
    unsigned char *json;
    apr_size_t len;
    const char *want[] = { "Finance", "Support" };
    const char *staff[] = { "staff" };

    assert_string_equal(btsso_session_attrs_header(pool, NULL), "e30");
    add_attr(attrs, "groups", NULL, vals(2, "Sales", "Support"));
    add_attr(attrs, "urn:oid:1", "dn", vals(1, "a \"q\" \\ \xc3\xbc"));
    add_attr(attrs, "evil", NULL, vals(1, "a\nb"));
    hdr = btsso_session_attrs_header(pool, attrs);
    assert_true(btsso_b64url_decode(pool, hdr, strlen(hdr), &json, &len));
    assert_string_equal((const char *)json,
                        "{\"groups\":[\"Sales\",\"Support\"],"
                        "\"urn:oid:1\":[\"a \\\"q\\\" \\\\ \xc3\xbc\"]}");
    /* Require btsso-attr: by Name or FriendlyName, any value, exactly */
    assert_true(btsso_session_attrs_match(attrs, "groups", want, 2));
    assert_false(btsso_session_attrs_match(attrs, "groups", want, 1));
    assert_false(btsso_session_attrs_match(attrs, "Groups", want, 2));
    assert_false(btsso_session_attrs_match(attrs, "dn", staff, 1));
    staff[0] = "a \"q\" \\ \xc3\xbc";
    assert_true(btsso_session_attrs_match(attrs, "dn", staff, 1));
    assert_true(btsso_session_attrs_match(attrs, "urn:oid:1", staff, 1));
    assert_false(btsso_session_attrs_match(NULL, "groups", want, 2));
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overlong_varint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_decoder_bounds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_clashes_random, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_header_and_match, setup,
                                        teardown),
    };
    int rc;

    apr_initialize();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
