/*
 * test_cidr.c - CIDR parsing and matching, and the address classes the
 * metadata fetcher refuses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "core/cidr.h"

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

static const struct sockaddr *ip(const char *text)
{
    struct sockaddr_storage *ss = apr_pcalloc(pool, sizeof(*ss));

    if (btsso_ip_parse(text, ss) != 0) {
        fail_msg("test bug: '%s' is not a numeric address", text);
    }
    return (const struct sockaddr *)ss;
}

static btsso_cidr_list_t *list_of(const char *text)
{
    btsso_cidr_list_t *list = NULL;
    btsso_error_t *err = btsso_cidr_list_parse(pool, text, &list);

    if (err != NULL) {
        fail_msg("'%s' refused: %s", text, btsso_error_line(pool, err));
    }
    return list;
}

static void assert_bad(const char *text, const char *detail_part)
{
    btsso_cidr_list_t *list = btsso_cidr_list_make(pool);
    btsso_error_t *err = btsso_cidr_list_add(pool, list, text);

    if (err == NULL) {
        fail_msg("'%s' accepted as %s", text, btsso_cidr_list_text(pool, list));
    }
    assert_string_equal(err->code, "bad_cidr");
    assert_int_equal(err->status, 400);
    assert_non_null(err->detail);
    if (strstr(err->detail, detail_part) == NULL) {
        fail_msg("'%s': detail '%s' lacks '%s'", text, err->detail,
                 detail_part);
    }
    /* A refused entry leaves the list as it was. */
    assert_int_equal(btsso_cidr_list_count(list), 0);
}

static void test_parse_valid(void **state)
{
    static const struct { const char *in, *canonical; } cases[] = {
        { "10.0.0.0/8", "10.0.0.0/8" },
        { "192.168.1.1", "192.168.1.1/32" },
        { "0.0.0.0/0", "0.0.0.0/0" },
        { "172.16.0.0/12", "172.16.0.0/12" },
        { "::1", "::1/128" },
        { "fd00::/8", "fd00::/8" },
        { "2001:DB8:0:0::/32", "2001:db8::/32" },
        { "::/0", "::/0" },
        { "::ffff:10.0.0.0/104", "::ffff:10.0.0.0/104" },
        { "127.0.0.1/032", "127.0.0.1/32" },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        btsso_cidr_list_t *list = list_of(cases[i].in);
        assert_int_equal(btsso_cidr_list_count(list), 1);
        assert_string_equal(btsso_cidr_list_text(pool, list),
                            cases[i].canonical);
    }
}

static void test_parse_list_separators(void **state)
{
    btsso_cidr_list_t *list = list_of(" 10.0.0.0/8,192.168.0.0/16\t::1 ,, ");

    assert_int_equal(btsso_cidr_list_count(list), 3);
    assert_string_equal(btsso_cidr_list_text(pool, list),
                        "10.0.0.0/8 192.168.0.0/16 ::1/128");
    assert_int_equal(btsso_cidr_list_count(list_of("")), 0);
    assert_int_equal(btsso_cidr_list_count(NULL), 0);
    assert_string_equal(btsso_cidr_list_text(pool, NULL), "");
}

static void test_parse_list_error_names_entry(void **state)
{
    btsso_cidr_list_t *list = NULL;
    btsso_error_t *err = btsso_cidr_list_parse(pool, "10.0.0.0/8 10.0.0.0/33",
                                               &list);

    assert_non_null(err);
    assert_null(list);
    assert_string_equal(err->code, "bad_cidr");
    assert_non_null(strstr(err->detail, "'10.0.0.0/33'"));
}

static void test_parse_bad_prefix(void **state)
{
    assert_bad("10.0.0.0/33", "more than 32");
    assert_bad("::/129", "more than 128");
    assert_bad("10.0.0.0/", "prefix length must be a number 0..32");
    assert_bad("10.0.0.0/-1", "prefix length must be a number");
    assert_bad("10.0.0.0/+8", "prefix length must be a number");
    assert_bad("10.0.0.0/ 8", "prefix length must be a number");
    assert_bad("10.0.0.0/8/8", "prefix length must be a number");
    assert_bad("10.0.0.0/0x8", "prefix length must be a number");
    assert_bad("10.0.0.0/0008", "prefix length must be a number");
    assert_bad("fd00::/1000", "prefix length must be a number 0..128");
}

static void test_parse_bad_address(void **state)
{
    char long_text[200];

    assert_bad("", "empty");
    assert_bad("abc", "not an IPv4 address");
    assert_bad("256.0.0.1", "not an IPv4 address");
    assert_bad("10.0.0", "not an IPv4 address");
    /* Numeric tricks that inet_aton would take: refused in config. */
    assert_bad("127.1", "not an IPv4 address");
    assert_bad("0x7f.0.0.1", "not an IPv4 address");
    assert_bad("2130706433", "not an IPv4 address");
    assert_bad("0177.0.0.1", "not an IPv4 address");
    assert_bad(" 10.0.0.1", "not an IPv4 address");
    assert_bad("fe80::1%eth0", "not an IPv6 address");
    assert_bad("1:2:3:4:5:6:7:8:9", "not an IPv6 address");
    assert_bad("::g", "not an IPv6 address");
    assert_bad("/8", "not an IPv4 address");
    memset(long_text, '1', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    assert_bad(long_text, "too long");
}

static void test_parse_host_bits(void **state)
{
    assert_bad("10.1.2.3/8", "did you mean 10.0.0.0/8?");
    assert_bad("172.31.0.0/12", "did you mean 172.16.0.0/12?");
    assert_bad("fd00::1/8", "did you mean fd00::/8?");
    assert_bad("2001:db8:4000::/33", "did you mean 2001:db8::/33?");
}

static void test_match_v4(void **state)
{
    btsso_cidr_list_t *list = list_of("10.0.0.0/8 172.16.0.0/12 127.0.0.1");

    assert_true(btsso_cidr_list_match(list, ip("10.0.0.0")));
    assert_true(btsso_cidr_list_match(list, ip("10.255.255.255")));
    assert_false(btsso_cidr_list_match(list, ip("11.0.0.0")));
    assert_false(btsso_cidr_list_match(list, ip("9.255.255.255")));
    assert_true(btsso_cidr_list_match(list, ip("172.31.255.255")));
    assert_false(btsso_cidr_list_match(list, ip("172.32.0.0")));
    assert_false(btsso_cidr_list_match(list, ip("172.15.255.255")));
    assert_true(btsso_cidr_list_match(list, ip("127.0.0.1")));
    assert_false(btsso_cidr_list_match(list, ip("127.0.0.2")));
    assert_false(btsso_cidr_list_match(NULL, ip("10.0.0.1")));
    assert_false(btsso_cidr_list_match(list_of(""), ip("10.0.0.1")));
}

static void test_match_v6(void **state)
{
    btsso_cidr_list_t *list = list_of("fd00::/8 2001:db8::/33 ::1");

    assert_true(btsso_cidr_list_match(list, ip("fd12:3456::1")));
    assert_false(btsso_cidr_list_match(list, ip("fc00::1")));
    assert_false(btsso_cidr_list_match(list, ip("fe80::1")));
    assert_true(btsso_cidr_list_match(list, ip("2001:db8:7fff::1")));
    assert_false(btsso_cidr_list_match(list, ip("2001:db8:8000::1")));
    assert_true(btsso_cidr_list_match(list, ip("::1")));
    assert_false(btsso_cidr_list_match(list, ip("::2")));
    /* IPv6 ranges say nothing about IPv4 */
    assert_false(btsso_cidr_list_match(list, ip("127.0.0.1")));
}

static void test_match_mapped(void **state)
{
    /* An IPv4 range covers the IPv4-mapped spelling of its addresses ... */
    btsso_cidr_list_t *v4 = list_of("127.0.0.1/32");
    /* ... and a mapped range covers the plain IPv4 addresses. */
    btsso_cidr_list_t *mapped = list_of("::ffff:10.0.0.0/104");

    assert_true(btsso_cidr_list_match(v4, ip("::ffff:127.0.0.1")));
    assert_false(btsso_cidr_list_match(v4, ip("::ffff:127.0.0.2")));
    /* ::127.0.0.1 (IPv4-compatible) is another address */
    assert_false(btsso_cidr_list_match(v4, ip("::127.0.0.1")));
    assert_true(btsso_cidr_list_match(mapped, ip("10.9.8.7")));
    assert_true(btsso_cidr_list_match(mapped, ip("::ffff:10.9.8.7")));
    assert_false(btsso_cidr_list_match(mapped, ip("11.0.0.1")));
    /* 0.0.0.0/0 is all of IPv4, not all of IPv6; ::/0 is everything. */
    assert_true(btsso_cidr_list_match(list_of("0.0.0.0/0"), ip("8.8.8.8")));
    assert_false(btsso_cidr_list_match(list_of("0.0.0.0/0"),
                                       ip("2001:db8::1")));
    assert_true(btsso_cidr_list_match(list_of("::/0"), ip("8.8.8.8")));
    assert_true(btsso_cidr_list_match(list_of("::/0"), ip("2001:db8::1")));
}

static void test_match_other_family(void **state)
{
    struct sockaddr_un un;

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    assert_false(btsso_cidr_list_match(list_of("::/0 0.0.0.0/0"),
                                       (const struct sockaddr *)&un));
    assert_string_equal(btsso_ip_refusal_reason((const struct sockaddr *)&un),
                        "not an IP address");
    assert_string_equal(btsso_ip_refusal_reason(NULL), "not an IP address");
}

static void test_refusal_reasons(void **state)
{
    static const struct { const char *addr, *why; } cases[] = {
        { "127.0.0.1", "loopback" },
        { "127.255.255.254", "loopback" },
        { "10.1.2.3", "private" },
        { "172.16.0.1", "private" },
        { "172.31.255.255", "private" },
        { "172.32.0.1", NULL },
        { "192.168.0.1", "private" },
        { "169.254.169.254", "a cloud metadata service" },
        { "169.254.1.1", "link-local" },
        { "100.100.100.200", "a cloud metadata service" },
        { "192.0.0.192", "a cloud metadata service" },
        { "100.64.0.1", "CGNAT shared address space" },
        { "100.127.255.255", "CGNAT shared address space" },
        { "100.128.0.0", NULL },
        { "100.63.255.255", NULL },
        { "0.0.0.0", "unspecified (0.0.0.0/8)" },
        { "0.1.2.3", "unspecified (0.0.0.0/8)" },
        { "224.0.0.1", "multicast" },
        { "239.255.255.250", "multicast" },
        { "255.255.255.255", "broadcast" },
        { "240.0.0.1", "reserved" },
        { "198.18.0.1", "reserved (benchmarking)" },
        { "8.8.8.8", NULL },
        { "1.1.1.1", NULL },
        { "::1", "loopback" },
        { "::", "unspecified" },
        { "::ffff:127.0.0.1", "loopback" },
        { "::ffff:10.0.0.1", "private" },
        { "::ffff:169.254.169.254", "a cloud metadata service" },
        { "::ffff:100.64.0.1", "CGNAT shared address space" },
        { "::ffff:0.0.0.0", "unspecified (0.0.0.0/8)" },
        { "::ffff:8.8.8.8", NULL },
        { "::127.0.0.1", "reserved (IPv4-compatible, deprecated)" },
        { "fd00:ec2::254", "a cloud metadata service" },
        { "fd00:ec2::253", "private" },
        { "fc00::1", "private" },
        { "fdff:ffff::1", "private" },
        { "fe80::1", "link-local" },
        { "febf:ffff::1", "link-local" },
        { "fec0::1", "private (site-local, deprecated)" },
        { "ff02::1", "multicast" },
        { "64:ff9b::7f00:1", "loopback" },           /* NAT64 of 127.0.0.1 */
        { "64:ff9b::a9fe:a9fe", "a cloud metadata service" },
        { "64:ff9b::808:808", NULL },
        { "64:ff9b:1::1", "private (local-use NAT64)" },
        { "2002:7f00:1::1", "loopback" },            /* 6to4 of 127.0.0.1 */
        { "2002:c0a8:1::1", "private" },             /* 6to4 of 192.168.0.1 */
        { "2002:808:808::1", NULL },
        { "100::1", "reserved (discard-only)" },
        { "2001:db8::1", "reserved (documentation)" },
        { "2001:4860:4860::8888", NULL },
        { "2606:4700::1111", NULL },
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = btsso_ip_refusal_reason(ip(cases[i].addr));
        if (cases[i].why == NULL && why != NULL) {
            fail_msg("%s refused as '%s'", cases[i].addr, why);
        }
        if (cases[i].why != NULL
            && (why == NULL || strcmp(why, cases[i].why) != 0)) {
            fail_msg("%s: expected '%s', got '%s'", cases[i].addr,
                     cases[i].why, why != NULL ? why : "(allowed)");
        }
    }
}

static void test_ip_parse_and_text(void **state)
{
    struct sockaddr_storage ss;

    assert_int_equal(btsso_ip_parse("127.1", &ss), -1);
    assert_int_equal(btsso_ip_parse("2130706433", &ss), -1);
    assert_int_equal(btsso_ip_parse("localhost", &ss), -1);
    assert_int_equal(btsso_ip_parse("fe80::1%lo", &ss), -1);
    assert_int_equal(btsso_ip_parse(NULL, &ss), -1);
    assert_int_equal(btsso_ip_parse("192.0.2.7", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_string_equal(btsso_ip_text(pool, (struct sockaddr *)&ss),
                        "192.0.2.7");
    assert_int_equal(btsso_ip_parse("::FFFF:127.0.0.1", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_string_equal(btsso_ip_text(pool, (struct sockaddr *)&ss),
                        "::ffff:127.0.0.1");
    ss.ss_family = AF_UNIX;
    assert_string_equal(btsso_ip_text(pool, (struct sockaddr *)&ss),
                        "(unknown family 1)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_list_separators),
        cmocka_unit_test(test_parse_list_error_names_entry),
        cmocka_unit_test(test_parse_bad_prefix),
        cmocka_unit_test(test_parse_bad_address),
        cmocka_unit_test(test_parse_host_bits),
        cmocka_unit_test(test_match_v4),
        cmocka_unit_test(test_match_v6),
        cmocka_unit_test(test_match_mapped),
        cmocka_unit_test(test_match_other_family),
        cmocka_unit_test(test_refusal_reasons),
        cmocka_unit_test(test_ip_parse_and_text),
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests(tests, setup, teardown);
    apr_terminate();
    return failed;
}
