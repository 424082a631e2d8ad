/*
 * test_fetch.c - the metadata URL fetcher against real local servers.
 *
 * t/lib/https_server.py runs as a child process (HTTPS with a CA made at
 * start-up, and plain HTTP, both on 127.0.0.1).  Because every server is
 * on loopback, the positive cases pass an allow list holding 127.0.0.1/32
 * and the refusal cases pass none: the loopback refusal itself is tested
 * against a live server, and /seen proves the request never arrived.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <jansson.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "fetch/fetch.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif

#define FIXTURE TOP_SRCDIR "/t/fixtures/fetch/idp-metadata.xml"
#define FIXTURE_PATH "/file/idp-metadata.xml"

static struct {
    pid_t pid;
    int stdin_fd;               /* closing it also stops the server */
    int https_port;
    int http_port;
    char ca_file[512];
    char other_ca_file[512];
} server = { -1, -1, 0, 0, "", "" };

static apr_pool_t *process_pool;   /* lives while curl is initialised */
static apr_pool_t *pool;           /* per test */

/* ---- the server child --------------------------------------------------- */

static void stop_server(void)
{
    if (server.stdin_fd >= 0) {
        close(server.stdin_fd);
        server.stdin_fd = -1;
    }
    if (server.pid > 0) {
        int status;
        kill(server.pid, SIGTERM);
        while (waitpid(server.pid, &status, 0) < 0 && errno == EINTR) {
        }
        server.pid = -1;
    }
}

static int read_line(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t used = 0;

    while (used + 1 < size) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        ssize_t n;
        if (poll(&pfd, 1, timeout_ms) <= 0) {
            return -1;
        }
        n = read(fd, buf + used, 1);
        if (n <= 0) {
            return -1;
        }
        if (buf[used] == '\n') {
            buf[used] = '\0';
            return 0;
        }
        used++;
    }
    return -1;
}

static int start_server(void)
{
    int to_child[2];
    int from_child[2];
    char line[2048];
    json_t *info;
    json_error_t jerr;
    int ok;

    if (pipe(to_child) != 0 || pipe(from_child) != 0) {
        return -1;
    }
    server.pid = fork();
    if (server.pid < 0) {
        return -1;
    }
    if (server.pid == 0) {
        dup2(to_child[0], 0);
        dup2(from_child[1], 1);
        close(to_child[0]);
        close(to_child[1]);
        close(from_child[0]);
        close(from_child[1]);
        execl("/usr/bin/python3", "python3",
              TOP_SRCDIR "/t/lib/https_server.py",
              "--files", TOP_SRCDIR "/t/fixtures/fetch", (char *)NULL);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    server.stdin_fd = to_child[1];
    if (read_line(from_child[0], line, sizeof(line), 60000) != 0) {
        close(from_child[0]);
        fprintf(stderr, "https_server.py did not start\n");
        stop_server();
        return -1;
    }
    close(from_child[0]);
    info = json_loads(line, 0, &jerr);
    ok = info != NULL
        && json_unpack(info, "{s:i, s:i}", "https_port", &server.https_port,
                       "http_port", &server.http_port) == 0
        && json_is_string(json_object_get(info, "ca_file"))
        && json_is_string(json_object_get(info, "other_ca_file"));
    if (ok) {
        snprintf(server.ca_file, sizeof(server.ca_file), "%s",
                 json_string_value(json_object_get(info, "ca_file")));
        snprintf(server.other_ca_file, sizeof(server.other_ca_file), "%s",
                 json_string_value(json_object_get(info, "other_ca_file")));
    }
    json_decref(info);
    if (!ok) {
        fprintf(stderr, "https_server.py said: %s\n", line);
        stop_server();
        return -1;
    }
    return 0;
}

static int group_setup(void **state)
{
    btsso_error_t *err;

    apr_pool_create(&process_pool, NULL);
    err = btsso_fetch_global_init(process_pool);
    if (err != NULL) {
        fprintf(stderr, "%s\n", btsso_error_line(process_pool, err));
        return -1;
    }
    /* A second call is harmless. */
    if (btsso_fetch_global_init(process_pool) != NULL) {
        return -1;
    }
    return start_server();
}

static int group_teardown(void **state)
{
    stop_server();
    apr_pool_destroy(process_pool);
    return 0;
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

/* ---- helpers ------------------------------------------------------------ */

static const char *https_url(const char *path)
{
    return apr_psprintf(pool, "https://127.0.0.1:%d%s", server.https_port,
                        path);
}

static const char *http_url(const char *path)
{
    return apr_psprintf(pool, "http://127.0.0.1:%d%s", server.http_port,
                        path);
}

static const btsso_cidr_list_t *cidrs(const char *text)
{
    btsso_cidr_list_t *list = NULL;
    assert_null(btsso_cidr_list_parse(pool, text, &list));
    return list;
}

/* Options for a fetch the policy should let through: the test CA, and
 * 127.0.0.1 (only) allowed. */
static btsso_fetch_opts_t allowed_opts(void)
{
    btsso_fetch_opts_t o;

    btsso_fetch_opts_default(&o);
    o.ca_file = server.ca_file;
    o.allow = cidrs("127.0.0.1/32");
    o.timeout_sec = 5;
    return o;
}

/* Options with no allow list: everything on loopback must be refused. */
static btsso_fetch_opts_t refusing_opts(void)
{
    btsso_fetch_opts_t o = allowed_opts();
    o.allow = NULL;
    return o;
}

static const char *fixture_text(void)
{
    FILE *f = fopen(FIXTURE, "rb");
    char *buf = apr_pcalloc(pool, 65536);
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, 65535, f);
    fclose(f);
    assert_true(n > 100);
    return buf;
}

static void expect_ok(const char *url, const btsso_fetch_opts_t *o,
                      const char *expected_body, const char *expected_final)
{
    char *body = NULL;
    apr_size_t len = 0;
    const char *final_url = NULL;
    btsso_error_t *err = btsso_fetch_url(pool, url, o, &body, &len,
                                         &final_url);

    if (err != NULL) {
        fail_msg("%s: %s", url, btsso_error_line(pool, err));
    }
    assert_non_null(body);
    assert_int_equal(len, strlen(expected_body));
    assert_string_equal(body, expected_body);
    if (expected_final != NULL) {
        assert_string_equal(final_url, expected_final);
    }
}

static btsso_error_t *expect_error(const char *url, const btsso_fetch_opts_t *o,
                                   const char *code, int status,
                                   const char *detail_part)
{
    char *body = (char *)"untouched";
    apr_size_t len = 12345;
    const char *final_url = "untouched";
    btsso_error_t *err = btsso_fetch_url(pool, url, o, &body, &len,
                                         &final_url);

    if (err == NULL) {
        fail_msg("%s was fetched (%lu bytes), expected %s", url,
                 (unsigned long)len, code);
    }
    if (strcmp(err->code, code) != 0 || err->status != status) {
        fail_msg("%s: expected %s/%d, got %s/%d: %s", url, code, status,
                 err->code, err->status, btsso_error_line(pool, err));
    }
    if (detail_part != NULL
        && (err->detail == NULL || strstr(err->detail, detail_part) == NULL)) {
        fail_msg("%s: detail lacks '%s': %s", url, detail_part,
                 btsso_error_line(pool, err));
    }
    assert_non_null(err->message);
    /* outputs untouched on error */
    assert_string_equal(body, "untouched");
    assert_int_equal(len, 12345);
    assert_string_equal(final_url, "untouched");
    return err;
}

static const char *url_escape(const char *s)
{
    char *out = apr_palloc(pool, strlen(s) * 3 + 1);
    char *o = out;

    for (; *s != '\0'; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
            || (*s >= '0' && *s <= '9') || *s == '/' || *s == '-'
            || *s == '.') {
            *o++ = *s;
        }
        else {
            o += sprintf(o, "%%%02X", (unsigned char)*s);
        }
    }
    *o = '\0';
    return out;
}

/* Did the server receive a request for path (with query)? */
static int server_saw(const char *path)
{
    btsso_fetch_opts_t o = allowed_opts();
    char *body = NULL;
    apr_size_t len = 0;
    const char *url = https_url(apr_pstrcat(pool, "/seen?path=",
                                            url_escape(path), NULL));
    btsso_error_t *err = btsso_fetch_url(pool, url, &o, &body, &len, NULL);

    if (err != NULL) {
        fail_msg("/seen: %s", btsso_error_line(pool, err));
    }
    if (strcmp(body, "yes") == 0) {
        return 1;
    }
    assert_string_equal(body, "no");
    return 0;
}

/* ---- before initialisation (first group, no server) --------------------- */

static void test_not_initialised(void **state)
{
    btsso_fetch_opts_t o;

    btsso_fetch_opts_default(&o);
    expect_error("https://127.0.0.1:1/", &o, "fetch_init_failed", 500,
                 "btsso_fetch_global_init was not called");
}

/* ---- success ------------------------------------------------------------ */

static void test_https_ok_with_test_ca(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    expect_ok(https_url(FIXTURE_PATH), &o, fixture_text(),
              https_url(FIXTURE_PATH));
    /* NULL final_url is accepted */
    {
        char *body;
        apr_size_t len;
        assert_null(btsso_fetch_url(pool, https_url(FIXTURE_PATH), &o,
                                    &body, &len, NULL));
    }
}

static void test_exact_max_size_ok(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    char *expected = apr_palloc(pool, 1001);

    memset(expected, 'x', 1000);
    expected[1000] = '\0';
    o.max_size = 1000;
    expect_ok(https_url("/big?size=1000&mode=length"), &o, expected, NULL);
    expect_ok(https_url("/big?size=1000&mode=close"), &o, expected, NULL);
    expect_ok(https_url("/big?size=1000&mode=chunked"), &o, expected, NULL);
    expect_ok(https_url("/big?size=0&mode=length"), &o, "", NULL);
}

static void test_body_larger_than_buffer_steps(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    apr_size_t size = 300000;
    char *expected = apr_palloc(pool, size + 1);

    memset(expected, 'x', size);
    expected[size] = '\0';
    expect_ok(https_url("/big?size=300000&mode=chunked"), &o, expected, NULL);
    expect_ok(https_url("/big?size=300000&mode=length"), &o, expected, NULL);
}

/* ---- scheme ------------------------------------------------------------- */

static void test_http_refused_by_default(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    const char *path = FIXTURE_PATH "?probe=http-refused";

    expect_error(http_url(path), &o, "url_not_allowed", 400,
                 "scheme http is not allowed: https only; http needs "
                 "BTSSOMetadataFetchHTTP On");
    assert_false(server_saw(path));
}

static void test_http_allowed_with_allow_http(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    o.allow_http = 1;
    expect_ok(http_url(FIXTURE_PATH), &o, fixture_text(),
              http_url(FIXTURE_PATH));
    /* https keeps working */
    expect_ok(https_url(FIXTURE_PATH), &o, fixture_text(), NULL);
}

static void test_other_schemes_refused(void **state)
{
    static const char *const urls[] = {
        "file:///etc/passwd", "FILE:///etc/passwd", "ftp://127.0.0.1/x",
        "gopher://127.0.0.1:70/_GET", "dict://127.0.0.1:11211/stat",
        "ldap://127.0.0.1/", "smb://127.0.0.1/share", "tftp://127.0.0.1/x",
        "scp://127.0.0.1/etc/passwd", "telnet://127.0.0.1:23/",
        "javascript://127.0.0.1/%0aalert(1)",
    };
    btsso_fetch_opts_t o = allowed_opts();
    size_t i;

    o.allow_http = 1;
    o.allow = cidrs("0.0.0.0/0 ::/0");
    for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        expect_error(urls[i], &o, "url_not_allowed", 400, "is not allowed");
    }
    expect_error("file:///etc/passwd", &o, "url_not_allowed", 400,
                 "scheme file is not allowed: https only");
}

static void test_bad_urls(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    char *huge = apr_palloc(pool, 9000);

    memset(huge, 'a', 8999);
    huge[8999] = '\0';
    memcpy(huge, "https://", 8);
    expect_error("", &o, "bad_url", 400, "empty URL");
    expect_error(NULL, &o, "bad_url", 400, "empty URL");
    expect_error("not a url", &o, "bad_url", 400, NULL);
    expect_error("127.0.0.1/file", &o, "bad_url", 400, NULL);
    expect_error("https://", &o, "bad_url", 400, NULL);
    expect_error("https://127.0.0.1:99999/", &o, "bad_url", 400, NULL);
    expect_error("https://exa mple.com/", &o, "bad_url", 400, NULL);
    expect_error("https://example.com/\r\nX-Injected: 1", &o, "bad_url", 400,
                 NULL);
    expect_error(huge, &o, "bad_url", 400, "longer than 8192");
}

/* ---- addresses ---------------------------------------------------------- */

static void test_loopback_refused(void **state)
{
    btsso_fetch_opts_t o = refusing_opts();
    const char *path = FIXTURE_PATH "?probe=loopback-refused";
    btsso_error_t *err;

    err = expect_error(https_url(path), &o, "url_not_allowed", 400, NULL);
    assert_string_equal(err->detail,
                        "address 127.0.0.1 is loopback; add it to "
                        "BTSSOMetadataFetchAllow to allow");
    /* refused before connecting: the server never saw the request */
    assert_false(server_saw(path));
    /* the same request with the allow list does arrive */
    o = allowed_opts();
    expect_ok(https_url(path), &o, fixture_text(), NULL);
    assert_true(server_saw(path));
}

static void test_allow_list_must_cover_the_address(void **state)
{
    btsso_fetch_opts_t o = refusing_opts();

    /* lists that do not cover 127.0.0.1 */
    o.allow = cidrs("10.0.0.0/8 127.0.0.2/32 ::1");
    expect_error(https_url(FIXTURE_PATH), &o, "url_not_allowed", 400,
                 "address 127.0.0.1 is loopback");
    /* lists that do, in other spellings */
    o.allow = cidrs("127.0.0.0/8");
    expect_ok(https_url(FIXTURE_PATH), &o, fixture_text(), NULL);
    o.allow = cidrs("::ffff:127.0.0.1/128");
    expect_ok(https_url(FIXTURE_PATH), &o, fixture_text(), NULL);
}

static void test_localhost_name_refused(void **state)
{
    btsso_fetch_opts_t o = refusing_opts();
    const char *url = apr_psprintf(pool, "https://localhost:%d%s",
                                   server.https_port, FIXTURE_PATH);

    /* curl resolves the name; the policy judges what it resolved to */
    expect_error(url, &o, "url_not_allowed", 400, " is loopback; add it");
}

static void test_numeric_tricks_refused(void **state)
{
    static const char *const hosts[] = {
        "2130706433", "0x7f.1", "127.1", "0x7f000001", "017700000001",
        "0177.0.0.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
        "[::1]", "[0:0:0:0:0:ffff:127.0.0.1]",
    };
    btsso_fetch_opts_t o = refusing_opts();
    size_t i;

    o.allow_http = 1;
    for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        const char *path = apr_psprintf(pool, "%s?probe=trick-%d",
                                        FIXTURE_PATH, (int)i);
        const char *url = apr_psprintf(pool, "http://%s:%d%s", hosts[i],
                                       server.http_port, path);
        expect_error(url, &o, "url_not_allowed", 400, " is loopback; add it");
        assert_false(server_saw(path));
    }
    /* The IPv4 tricks do land on the test server once 127.0.0.1 is
     * allowed: the refusal above was about the address curl reached. */
    o.allow = cidrs("127.0.0.1/32");
    for (i = 0; i < 6; i++) {
        const char *url = apr_psprintf(pool, "http://%s:%d%s", hosts[i],
                                       server.http_port, FIXTURE_PATH);
        expect_ok(url, &o, fixture_text(), NULL);
    }
}

static void test_other_refused_addresses(void **state)
{
    static const char *const urls[] = {
        "https://169.254.169.254/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "https://100.100.100.200/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://10.0.0.1/", "https://192.168.1.1/", "https://172.16.0.1/",
        "https://100.64.0.1/", "https://0.0.0.0/", "https://0/",
        "https://224.0.0.1/", "https://255.255.255.255/",
        "https://[fe80::1]/", "https://[fc00::1]/",
        "https://[::ffff:169.254.169.254]/", "https://[::ffff:10.0.0.1]/",
        "https://2852039166/",      /* 169.254.169.254 as one number */
    };
    btsso_fetch_opts_t o = refusing_opts();
    size_t i;

    o.allow_http = 1;
    o.timeout_sec = 2;
    for (i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        expect_error(urls[i], &o, "url_not_allowed", 400,
                     "add it to BTSSOMetadataFetchAllow to allow");
    }
    expect_error("http://169.254.169.254/", &o, "url_not_allowed", 400,
                 "address 169.254.169.254 is a cloud metadata service");
    expect_error("http://[::ffff:a9fe:a9fe]/", &o, "url_not_allowed", 400,
                 "address ::ffff:169.254.169.254 is a cloud metadata "
                 "service");
}

/* ---- redirects ---------------------------------------------------------- */

static void test_redirect_followed(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    const char *codes[] = { "301", "302", "303", "307", "308" };
    size_t i;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        expect_ok(https_url(apr_psprintf(pool, "/redirect?code=%s&to=%s",
                                         codes[i], FIXTURE_PATH)),
                  &o, fixture_text(), https_url(FIXTURE_PATH));
    }
    /* absolute Location */
    expect_ok(https_url(apr_pstrcat(pool, "/redirect?to=",
                                    url_escape(https_url(FIXTURE_PATH)),
                                    NULL)),
              &o, fixture_text(), https_url(FIXTURE_PATH));
}

static void test_redirect_to_unlisted_address_refused(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();   /* 127.0.0.1/32 only */
    const char *target = apr_psprintf(pool, "https://127.0.0.2:%d%s",
                                      server.https_port, FIXTURE_PATH);
    const char *url = https_url(apr_pstrcat(pool, "/redirect?to=",
                                            url_escape(target), NULL));

    expect_error(url, &o, "url_not_allowed", 400,
                 "address 127.0.0.2 is loopback; add it to "
                 "BTSSOMetadataFetchAllow to allow");
    /* and to the cloud metadata service */
    url = https_url("/redirect?to=http%3A%2F%2F169.254.169.254%2F");
    o.allow_http = 1;
    expect_error(url, &o, "url_not_allowed", 400,
                 "address 169.254.169.254 is a cloud metadata service");
}

static void test_redirect_https_to_http(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    const char *target = http_url(FIXTURE_PATH "?probe=downgrade");
    const char *url = https_url(apr_pstrcat(pool, "/redirect?to=",
                                            url_escape(target), NULL));

    expect_error(url, &o, "url_not_allowed", 400,
                 "redirect from https to http refused: scheme http is not "
                 "allowed");
    assert_false(server_saw(FIXTURE_PATH "?probe=downgrade"));
    o.allow_http = 1;
    expect_ok(url, &o, fixture_text(), target);
}

static void test_redirect_to_other_scheme_refused(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    o.allow_http = 1;
    expect_error(https_url("/redirect?to=file%3A%2F%2F%2Fetc%2Fpasswd"), &o,
                 "url_not_allowed", 400,
                 "redirect from https to file refused");
    expect_error(https_url("/redirect?to=gopher%3A%2F%2F127.0.0.1%3A25%2F_x"),
                 &o, "url_not_allowed", 400,
                 "redirect from https to gopher refused");
}

static void test_redirect_invalid_location(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    expect_error(https_url("/redirect?to=https%3A%2F%2F%5B%3A%3A1"), &o,
                 "fetch_failed", 502, "answered HTTP status 302 with an "
                 "invalid Location");
    expect_error(https_url("/redirect?to=%20"), &o, "fetch_failed", 502,
                 "without a Location");
}

static void test_redirect_loop(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    expect_error(https_url("/loop"), &o, "fetch_failed", 502,
                 "too many redirects: more than 5");
}

static void test_redirect_limit(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    o.max_redirects = 3;
    expect_ok(https_url("/chain?n=3"), &o, "chain end\n",
              https_url("/chain?n=0"));
    expect_error(https_url("/chain?n=4"), &o, "fetch_failed", 502,
                 "too many redirects: more than 3");
    o.max_redirects = 0;
    expect_ok(https_url("/chain?n=0"), &o, "chain end\n", NULL);
    expect_error(https_url("/chain?n=1"), &o, "fetch_failed", 502,
                 "too many redirects: more than 0");
    /* negative means the default of 5 */
    o.max_redirects = -1;
    expect_ok(https_url("/chain?n=5"), &o, "chain end\n", NULL);
    expect_error(https_url("/chain?n=6"), &o, "fetch_failed", 502,
                 "too many redirects: more than 5");
}

/* ---- size --------------------------------------------------------------- */

static void test_too_large_declared(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    apr_time_t start = apr_time_now();

    /* The server declares 2 MB and then sends nothing for 10 s: only a
     * client that honours Content-Length answers within the timeout. */
    o.max_size = 1000;
    o.timeout_sec = 5;
    expect_error(https_url("/declare?length=2000000"), &o, "too_large", 413,
                 "declares Content-Length 2000000 bytes, more than the "
                 "limit of 1000");
    assert_true(apr_time_now() - start < apr_time_from_sec(3));
    /* the default limit is 1 MiB */
    o = allowed_opts();
    o.max_size = 0;
    expect_error(https_url("/declare?length=1048577"), &o, "too_large", 413,
                 "limit of 1048576");
}

static void test_too_large_streamed(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    o.max_size = 1000;
    expect_error(https_url("/big?size=1001&mode=close"), &o, "too_large", 413,
                 "exceeds the limit of 1000 bytes");
    expect_error(https_url("/big?size=1001&mode=chunked"), &o, "too_large",
                 413, "exceeds the limit of 1000 bytes");
    /* far beyond the limit: reading stops early */
    expect_error(https_url("/big?size=50000000&mode=chunked"), &o,
                 "too_large", 413, "exceeds the limit");
}

/* ---- time --------------------------------------------------------------- */

static void test_slow_server_times_out(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    apr_time_t start = apr_time_now();

    o.timeout_sec = 1;
    expect_error(https_url("/slow?delay=4"), &o, "fetch_failed", 502,
                 "timed out after 1 s");
    assert_true(apr_time_now() - start < apr_time_from_msec(2500));
    start = apr_time_now();
    expect_error(https_url("/stall-body"), &o, "fetch_failed", 502,
                 "timed out after 1 s");
    assert_true(apr_time_now() - start < apr_time_from_msec(2500));
}

static void test_timeout_spans_redirects(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    /* Each hop alone fits in the limit; together they do not: the limit
     * is on the whole fetch, not per hop. */
    o.timeout_sec = 1;
    expect_error(https_url("/redirect?delay=0.6&to=%2Fslow%3Fdelay%3D0.6"),
                 &o, "fetch_failed", 502, "timed out after 1 s");
    expect_ok(https_url("/redirect?delay=0.2&to=%2Fslow%3Fdelay%3D0.2"),
              &o, "slow\n", NULL);
}

/* ---- TLS ---------------------------------------------------------------- */

static void test_bad_tls(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    /* system CAs do not know the throwaway test CA */
    o.ca_file = NULL;
    expect_error(https_url(FIXTURE_PATH), &o, "fetch_failed", 502,
                 "SSL certificate problem");
    /* nor does an unrelated CA */
    o.ca_file = server.other_ca_file;
    expect_error(https_url(FIXTURE_PATH), &o, "fetch_failed", 502,
                 "SSL certificate problem");
    /* a CA file that cannot be read fails closed */
    o.ca_file = TOP_SRCDIR "/t/fixtures/fetch/no-such-ca.pem";
    expect_error(https_url(FIXTURE_PATH), &o, "fetch_failed", 502,
                 "no-such-ca.pem");
}

static void test_tls_host_name_checked(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    const char *url = apr_psprintf(pool, "https://localhost:%d%s",
                                   server.https_port, FIXTURE_PATH);

    /* the certificate names IP 127.0.0.1 and 127.0.0.2, not "localhost" */
    o.allow = cidrs("127.0.0.1/32 ::1/128");
    expect_error(url, &o, "fetch_failed", 502,
                 "no alternative certificate subject name matches target "
                 "host name 'localhost'");
}

/* ---- statuses ----------------------------------------------------------- */

static void test_non_2xx(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    expect_error(https_url("/status?code=404"), &o, "fetch_failed", 502,
                 "answered HTTP status 404");
    expect_error(https_url("/file/no-such-file.xml"), &o, "fetch_failed", 502,
                 "answered HTTP status 404");
    expect_error(https_url("/status?code=500"), &o, "fetch_failed", 502,
                 "answered HTTP status 500");
    expect_error(https_url("/status?code=304"), &o, "fetch_failed", 502,
                 "answered HTTP status 304");
    expect_error(https_url("/status?code=302"), &o, "fetch_failed", 502,
                 "without a Location");
    /* a huge error body does not turn into too_large */
    o.max_size = 10;
    expect_error(https_url("/status?code=403"), &o, "fetch_failed", 502,
                 "answered HTTP status 403");
}

/* ---- hygiene ------------------------------------------------------------ */

static void test_password_never_in_detail(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    const char *url = apr_psprintf(pool,
        "https://user:s3cr3t-pw@127.0.0.1:%d/status?code=404",
        server.https_port);
    btsso_error_t *err;

    err = expect_error(url, &o, "fetch_failed", 502, "status 404");
    assert_null(strstr(err->detail, "s3cr3t-pw"));
    err = expect_error(apr_psprintf(pool,
                                    "http://user:s3cr3t-pw@127.0.0.1:%d/",
                                    server.http_port),
                       &o, "url_not_allowed", 400, NULL);
    assert_null(strstr(err->detail, "s3cr3t-pw"));
}

static void test_proxy_environment_ignored(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();
    static const char *const vars[] = {
        "https_proxy", "HTTPS_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"
    };
    size_t i;

    /* A proxy would put its own address in front of the policy check. */
    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        setenv(vars[i], "http://127.0.0.1:1", 1);
    }
    o.allow_http = 1;
    expect_ok(https_url(FIXTURE_PATH), &o, fixture_text(), NULL);
    expect_ok(http_url(FIXTURE_PATH), &o, fixture_text(), NULL);
    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        unsetenv(vars[i]);
    }
}

static void test_connection_refused(void **state)
{
    btsso_fetch_opts_t o = allowed_opts();

    /* allowed address, nobody listening: a fetch failure, not a refusal */
    expect_error("https://127.0.0.1:1/", &o, "fetch_failed", 502,
                 "fetching https://127.0.0.1:1/");
}

int main(void)
{
    const struct CMUnitTest before_init[] = {
        cmocka_unit_test_setup_teardown(test_not_initialised, setup,
                                        teardown),
    };
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_https_ok_with_test_ca),
        T(test_exact_max_size_ok),
        T(test_body_larger_than_buffer_steps),
        T(test_http_refused_by_default),
        T(test_http_allowed_with_allow_http),
        T(test_other_schemes_refused),
        T(test_bad_urls),
        T(test_loopback_refused),
        T(test_allow_list_must_cover_the_address),
        T(test_localhost_name_refused),
        T(test_numeric_tricks_refused),
        T(test_other_refused_addresses),
        T(test_redirect_followed),
        T(test_redirect_to_unlisted_address_refused),
        T(test_redirect_https_to_http),
        T(test_redirect_to_other_scheme_refused),
        T(test_redirect_invalid_location),
        T(test_redirect_loop),
        T(test_redirect_limit),
        T(test_too_large_declared),
        T(test_too_large_streamed),
        T(test_slow_server_times_out),
        T(test_timeout_spans_redirects),
        T(test_bad_tls),
        T(test_tls_host_name_checked),
        T(test_non_2xx),
        T(test_password_never_in_detail),
        T(test_proxy_environment_ignored),
        T(test_connection_refused),
#undef T
    };
    int failed;

    apr_initialize();
    failed = cmocka_run_group_tests_name("before_init", before_init, NULL,
                                         NULL);
    failed += cmocka_run_group_tests_name("fetch", tests, group_setup,
                                          group_teardown);
    apr_terminate();
    return failed;
}
