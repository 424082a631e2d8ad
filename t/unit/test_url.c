/*
 * test_url.c - redirect target checks, BTSSOBaseURL parsing, cookies.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "core/url.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif

#define BASE "https://portal.example.com"

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

static void assert_refused(const char *candidate, const char *base)
{
    const char *norm = "untouched";

    if (btsso_url_is_safe_return(pool, candidate, base, &norm)) {
        fail_msg("accepted unsafe return target '%s' (normalized '%s')",
                 candidate, norm);
    }
}

static void assert_accepted(const char *candidate, const char *base,
                            const char *expected)
{
    const char *norm = NULL;

    if (!btsso_url_is_safe_return(pool, candidate, base, &norm)) {
        fail_msg("refused safe return target '%s'", candidate);
    }
    assert_string_equal(norm, expected);
}

static void test_payload_file_refused(void **state)
{
    char line[4096];
    FILE *f = fopen(TOP_SRCDIR "/t/fixtures/open-redirect.txt", "rb");
    int count = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strlen(line);

        if (n > 0 && line[n - 1] == '\n') {
            line[--n] = '\0';
        }
        if (n == 0) {
            continue;
        }
        assert_refused(line, BASE);
        assert_refused(line, BASE "/");
        count++;
    }
    fclose(f);
    /* The list must actually have been read. */
    assert_true(count >= 80);
}

static void test_raw_controls_refused(void **state)
{
    static const char *payloads[] = {
        "/x\r\nSet-Cookie: a=b", "/\r\n", "\r\n/x", "/x\n", "/\t/evil.example",
        "/\x0b/evil.example", "/\x0c", "/x\x7f", "\x01/x", " /x", "/x ",
        "/x\xc2\xa0", "https://portal.example.com/x\r\nA: b",
        "https://portal.example.com\t/x", NULL
    };
    int i;

    for (i = 0; payloads[i] != NULL; i++) {
        assert_refused(payloads[i], BASE);
    }
}

static void test_length_bound(void **state)
{
    char *path = apr_palloc(pool, BTSSO_URL_MAX_RETURN + 2);

    memset(path, 'a', BTSSO_URL_MAX_RETURN + 1);
    path[0] = '/';
    path[BTSSO_URL_MAX_RETURN] = '\0';
    assert_accepted(path, BASE, path);
    path[BTSSO_URL_MAX_RETURN] = 'a';
    path[BTSSO_URL_MAX_RETURN + 1] = '\0';
    assert_refused(path, BASE);
    assert_refused("", BASE);
    assert_false(btsso_url_is_safe_return(pool, NULL, BASE, NULL));
}

static void test_local_paths_accepted(void **state)
{
    assert_accepted("/", BASE, "/");
    assert_accepted("/x?y#z", BASE, "/x?y#z");
    assert_accepted("/app/settings?tab=sso&x=1#top", BASE,
                    "/app/settings?tab=sso&x=1#top");
    assert_accepted("/search?q=a%20b", BASE, "/search?q=a%20b");
    assert_accepted("/caf%C3%A9", BASE, "/caf%C3%A9");
    assert_accepted("/a//b", BASE, "/a//b");
    assert_accepted("/x?next=//evil.example", BASE, "/x?next=//evil.example");
    assert_accepted("/x?next=%2F%2Fevil.example", BASE,
                    "/x?next=%2F%2Fevil.example");
    assert_accepted("/%41bc", BASE, "/%41bc");
    /* normalized_out may be NULL */
    assert_true(btsso_url_is_safe_return(pool, "/ok", BASE, NULL));
}

static void test_same_origin_urls_accepted(void **state)
{
    assert_accepted("https://portal.example.com/x", BASE,
                    "https://portal.example.com/x");
    assert_accepted("HTTPS://Portal.Example.COM:443/x?y#z", BASE,
                    "https://portal.example.com/x?y#z");
    assert_accepted("https://portal.example.com", BASE,
                    "https://portal.example.com/");
    assert_accepted("https://portal.example.com?a=b", BASE,
                    "https://portal.example.com/?a=b");
    assert_accepted("https://portal.example.com#f", BASE,
                    "https://portal.example.com/#f");
    assert_accepted("https://portal.example.com/x", "https://PORTAL.example.com:443/",
                    "https://portal.example.com/x");
}

static void test_ports_and_schemes(void **state)
{
    const char *b8443 = "https://portal.example.com:8443";
    const char *bhttp = "http://127.0.0.1:8080/";

    assert_accepted("https://portal.example.com:8443/x", b8443,
                    "https://portal.example.com:8443/x");
    assert_refused("https://portal.example.com/x", b8443);
    assert_refused("https://portal.example.com:443/x", b8443);
    assert_accepted("http://127.0.0.1:8080/a", bhttp, "http://127.0.0.1:8080/a");
    assert_refused("https://127.0.0.1:8080/a", bhttp);
    assert_refused("http://127.0.0.1/a", bhttp);
    assert_accepted("http://portal.example.com:80/a", "http://portal.example.com",
                    "http://portal.example.com/a");
    assert_accepted("https://[::1]:8443/a", "https://[::1]:8443",
                    "https://[::1]:8443/a");
    assert_refused("https://[::2]:8443/a", "https://[::1]:8443");
}

static void test_bad_base_refuses_everything(void **state)
{
    assert_refused("/x", NULL);
    assert_refused("/x", "");
    assert_refused("/x", "portal.example.com");
    assert_refused("/x", "https://portal.example.com/app");
}

static void test_base_url_parse(void **state)
{
    btsso_base_url_t *b = NULL;

    assert_null(btsso_base_url_parse(pool, "https://portal.example.com", &b));
    assert_string_equal(b->scheme, "https");
    assert_string_equal(b->host, "portal.example.com");
    assert_int_equal(b->port, 443);
    assert_string_equal(b->origin, "https://portal.example.com");

    assert_null(btsso_base_url_parse(pool, "HTTPS://Portal.Example.com:443/", &b));
    assert_string_equal(b->origin, "https://portal.example.com");

    assert_null(btsso_base_url_parse(pool, "http://127.0.0.1:8080", &b));
    assert_string_equal(b->scheme, "http");
    assert_int_equal(b->port, 8080);
    assert_string_equal(b->origin, "http://127.0.0.1:8080");

    assert_null(btsso_base_url_parse(pool, "https://[::1]:8443/", &b));
    assert_string_equal(b->host, "[::1]");
    assert_string_equal(b->origin, "https://[::1]:8443");
}

static void test_base_url_parse_refused(void **state)
{
    static const char *bad[] = {
        "", "portal.example.com", "ftp://portal.example.com", "https://",
        "https:///", "https://portal.example.com/app", "https://portal.example.com//",
        "https://portal.example.com?x=1", "https://portal.example.com#f",
        "https://user@portal.example.com", "https://u:p@portal.example.com",
        "https://portal.example.com:0", "https://portal.example.com:65536",
        "https://portal.example.com:abc", "https://portal.example.com:",
        "https://portal example.com", "https://portal.example.com\\",
        "https:portal.example.com", "//portal.example.com", "https://[::1",
        "https://[]", "javascript://portal.example.com", NULL
    };
    btsso_base_url_t *b;
    btsso_error_t *e;
    int i;

    e = btsso_base_url_parse(pool, NULL, &b);
    assert_non_null(e);
    for (i = 0; bad[i] != NULL; i++) {
        e = btsso_base_url_parse(pool, bad[i], &b);
        if (e == NULL) {
            fail_msg("accepted base URL '%s'", bad[i]);
        }
        assert_string_equal(e->code, "bad_base_url");
        assert_int_equal(e->status, 500);
    }
}

static void test_cookie_header(void **state)
{
    assert_string_equal(
        btsso_cookie_header(pool, "btsso_session", "abc123", "/", -1, 1, "Lax"),
        "btsso_session=abc123; Path=/; Secure; HttpOnly; SameSite=Lax");
    assert_string_equal(
        btsso_cookie_header(pool, "s", "v", "/app", 3600, 0, "Strict"),
        "s=v; Path=/app; Max-Age=3600; HttpOnly; SameSite=Strict");
    assert_string_equal(
        btsso_cookie_header(pool, "s", "", "/", 0, 1, NULL),
        "s=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; "
        "Secure; HttpOnly");
    /* SameSite=None without Secure is dropped by browsers: forced. */
    assert_string_equal(
        btsso_cookie_header(pool, "s", "v", "/", -1, 0, "None"),
        "s=v; Path=/; Secure; HttpOnly; SameSite=None");
}

static void test_cookie_header_refused(void **state)
{
    assert_null(btsso_cookie_header(pool, "", "v", "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, NULL, "v", "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "a b", "v", "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "a;b", "v", "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "a=b", "v", "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", "v;Domain=evil", "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", "a b", "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", "a,b", "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", "\"q\"", "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", "a\r\nX: y", "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", NULL, "/", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", "v", "app", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", "v", NULL, -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", "v", "/a;Domain=evil", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", "v", "/a\n", -1, 1, "Lax"));
    assert_null(btsso_cookie_header(pool, "s", "v", "/", -1, 1, "lax"));
    assert_null(btsso_cookie_header(pool, "s", "v", "/", -1, 1, "Lax; Domain=x"));
    assert_null(btsso_cookie_header(pool, "s", "v", "/", -2, 1, "Lax"));
}

static void test_cookie_find(void **state)
{
    const char *v = NULL;
    apr_size_t n = 0;

    assert_int_equal(btsso_cookie_find("a=1; btsso_session=abc; b=2",
                                       "btsso_session", &v, &n), 1);
    assert_int_equal(n, 3);
    assert_memory_equal(v, "abc", 3);
    /* a name that only starts the same, or ends the same, is another */
    v = NULL;
    assert_int_equal(btsso_cookie_find("btsso_session_x=1; xbtsso_session=2",
                                       "btsso_session", &v, &n), 0);
    assert_int_equal(btsso_cookie_find("btsso_session", "btsso_session", &v,
                                       &n), 0);
    /* blanks around, ',' as a separator, an empty value */
    assert_int_equal(btsso_cookie_find("x=1,\t btsso_session=abc \t;y",
                                       "btsso_session", &v, &n), 1);
    assert_int_equal(n, 3);
    v = NULL;
    assert_int_equal(btsso_cookie_find("btsso_session=", "btsso_session",
                                       &v, &n), 1);
    assert_int_equal(n, 0);
    /* twice: the same value counts once, another is refused */
    v = NULL;
    assert_int_equal(btsso_cookie_find("btsso_session=abc; btsso_session=abc",
                                       "btsso_session", &v, &n), 1);
    v = NULL;
    assert_int_equal(btsso_cookie_find("btsso_session=abc; btsso_session=abd",
                                       "btsso_session", &v, &n), -1);
    v = NULL;
    assert_int_equal(btsso_cookie_find("btsso_session=abc; btsso_session=ab",
                                       "btsso_session", &v, &n), -1);
    /* across two Cookie headers of one request */
    v = NULL;
    assert_int_equal(btsso_cookie_find("btsso_session=abc", "btsso_session",
                                       &v, &n), 1);
    assert_int_equal(btsso_cookie_find("z=9", "btsso_session", &v, &n), 1);
    assert_int_equal(btsso_cookie_find("btsso_session=abd", "btsso_session",
                                       &v, &n), -1);
    v = NULL;
    assert_int_equal(btsso_cookie_find("", "btsso_session", &v, &n), 0);
    assert_int_equal(btsso_cookie_find(";;, ,", "btsso_session", &v, &n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload_file_refused),
        cmocka_unit_test(test_raw_controls_refused),
        cmocka_unit_test(test_length_bound),
        cmocka_unit_test(test_local_paths_accepted),
        cmocka_unit_test(test_same_origin_urls_accepted),
        cmocka_unit_test(test_ports_and_schemes),
        cmocka_unit_test(test_bad_base_refuses_everything),
        cmocka_unit_test(test_base_url_parse),
        cmocka_unit_test(test_base_url_parse_refused),
        cmocka_unit_test(test_cookie_header),
        cmocka_unit_test(test_cookie_header_refused),
        cmocka_unit_test(test_cookie_find),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, setup, teardown);
}
