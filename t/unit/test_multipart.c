/*
 * test_multipart.c - multipart/form-data splitting: what browsers and curl
 * send, binary contents, and every refusal.
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

#include "core/multipart.h"

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

static const char *boundary_of(const char *content_type)
{
    const char *b = NULL;
    btsso_error_t *err = btsso_multipart_boundary(pool, content_type, &b);

    if (err != NULL) {
        fail_msg("'%s' refused: %s", content_type,
                 btsso_error_line(pool, err));
    }
    return b;
}

static void assert_boundary_refused(const char *content_type,
                                    const char *code, int status)
{
    const char *b = NULL;
    btsso_error_t *err = btsso_multipart_boundary(pool, content_type, &b);

    if (err == NULL) {
        fail_msg("'%s' accepted with boundary '%s'",
                 content_type ? content_type : "(null)", b);
    }
    assert_string_equal(err->code, code);
    assert_int_equal(err->status, status);
}

static apr_array_header_t *parse_ok(const char *body, apr_size_t len,
                                    const char *boundary)
{
    apr_array_header_t *parts = NULL;
    btsso_error_t *err = btsso_multipart_parse(pool, body, len, boundary,
                                               &parts);

    if (err != NULL) {
        fail_msg("refused: %s", btsso_error_line(pool, err));
    }
    return parts;
}

static void assert_parse_refused(const char *body, const char *boundary,
                                 const char *detail_part)
{
    apr_array_header_t *parts = NULL;
    btsso_error_t *err = btsso_multipart_parse(pool, body, strlen(body),
                                               boundary, &parts);

    if (err == NULL) {
        fail_msg("accepted with %d parts: %s", parts->nelts, body);
    }
    assert_string_equal(err->code, "bad_multipart");
    assert_int_equal(err->status, 400);
    if (strstr(err->detail, detail_part) == NULL) {
        fail_msg("detail '%s' does not mention '%s'", err->detail,
                 detail_part);
    }
}

static void test_boundary_forms(void **state)
{
    assert_string_equal(boundary_of("multipart/form-data; boundary=abc"),
                        "abc");
    assert_string_equal(boundary_of("Multipart/Form-Data;BOUNDARY=\"a b:c\""),
                        "a b:c");
    assert_string_equal(boundary_of("multipart/form-data; charset=utf-8; "
                                    "boundary=----WebKitFormBoundaryx7Yq"),
                        "----WebKitFormBoundaryx7Yq");
    assert_string_equal(boundary_of("multipart/form-data; boundary=\"q=x\"; "
                                    "foo=\"a;b\""), "q=x");
}

static void test_boundary_refusals(void **state)
{
    char longb[100];

    assert_boundary_refused(NULL, "not_multipart", 415);
    assert_boundary_refused("application/xml", "not_multipart", 415);
    assert_boundary_refused("multipart/form-datax; boundary=a",
                            "not_multipart", 415);
    assert_boundary_refused("multipart/mixed; boundary=a", "not_multipart",
                            415);
    assert_boundary_refused("multipart/form-data", "bad_multipart", 400);
    assert_boundary_refused("multipart/form-data; boundary=",
                            "bad_multipart", 400);
    assert_boundary_refused("multipart/form-data; boundary=\"abc",
                            "bad_multipart", 400);
    assert_boundary_refused("multipart/form-data; boundary=\"abc \"",
                            "bad_multipart", 400);
    assert_boundary_refused("multipart/form-data; boundary=a<b",
                            "bad_multipart", 400);
    memset(longb, 'x', 71);
    longb[71] = '\0';
    assert_boundary_refused(apr_pstrcat(pool, "multipart/form-data; "
                                        "boundary=", longb, NULL),
                            "bad_multipart", 400);
    longb[70] = '\0';
    assert_string_equal(boundary_of(apr_pstrcat(pool, "multipart/form-data; "
                                                "boundary=", longb, NULL)),
                        longb);
}

/* What Chromium sends for <input type=file> plus a text field. */
static void test_browser_form(void **state)
{
    const char *body =
        "------WebKitFormBoundaryQ\r\n"
        "Content-Disposition: form-data; name=\"role\"\r\n"
        "\r\n"
        "secondary\r\n"
        "------WebKitFormBoundaryQ\r\n"
        "Content-Disposition: form-data; name=\"file\"; "
        "filename=\"idp \\\"x\\\".xml\"\r\n"
        "Content-Type: text/xml\r\n"
        "\r\n"
        "<md:EntityDescriptor/>\r\n\r\n"
        "------WebKitFormBoundaryQ--\r\n";
    apr_array_header_t *parts = parse_ok(body, strlen(body),
                                         "----WebKitFormBoundaryQ");
    const btsso_mp_part_t *f;

    assert_int_equal(parts->nelts, 2);
    f = btsso_multipart_find(parts, "role");
    assert_non_null(f);
    assert_int_equal(f->len, 9);
    assert_memory_equal(f->data, "secondary", 9);
    assert_null(f->filename);
    f = btsso_multipart_find(parts, "file");
    assert_non_null(f);
    assert_string_equal(f->filename, "idp \"x\".xml");
    assert_string_equal(f->content_type, "text/xml");
    /* a trailing CRLF inside the content stays part of the content */
    assert_int_equal(f->len, strlen("<md:EntityDescriptor/>\r\n"));
    assert_null(btsso_multipart_find(parts, "url"));
}

/* Preamble, epilogue, padding after the delimiter, empty content, binary
 * content with NUL bytes and a near-miss of the delimiter inside it. */
static void test_binary_and_edges(void **state)
{
    static const char body[] =
        "this is a preamble\r\n"
        "--XyZ  \r\n"
        "content-disposition: form-data; name=empty\r\n"
        "\r\n"
        "\r\n"
        "--XyZ\r\n"
        "Content-Disposition: form-data; name=\"file\"; filename=c.der\r\n"
        "\r\n"
        "\x30\x82\x00\x01\r\n--XyX\r\n-\r\n"
        "\r\n"
        "--XyZ--\r\n"
        "epilogue\r\n--XyZ\r\n";
    apr_array_header_t *parts = parse_ok(body, sizeof(body) - 1, "XyZ");
    const btsso_mp_part_t *f;

    assert_int_equal(parts->nelts, 2);
    f = btsso_multipart_find(parts, "empty");
    assert_int_equal(f->len, 0);
    f = btsso_multipart_find(parts, "file");
    assert_string_equal(f->filename, "c.der");
    assert_int_equal(f->len, 4 + 2 + 5 + 2 + 1 + 2);
    assert_memory_equal(f->data, "\x30\x82\x00\x01\r\n--XyX\r\n-\r\n",
                        f->len);
}

static void test_no_parts(void **state)
{
    apr_array_header_t *parts = parse_ok("--b--\r\n", 7, "b");

    assert_int_equal(parts->nelts, 0);
}

static void test_refusals(void **state)
{
    char *many;
    char *longhdr;
    int i;

    assert_parse_refused("", "b", "no opening");
    assert_parse_refused("--a\r\n", "b", "no opening");
    assert_parse_refused("--bX\r\n", "b", "not followed by CRLF");
    assert_parse_refused("--b\r\nContent-Disposition: form-data; "
                         "name=\"f\"\r\n\r\nabc", "b", "no closing");
    assert_parse_refused("--b\r\nContent-Disposition: form-data; "
                         "name=\"f\"\r\n\r\nabc\r\n--b", "b",
                         "not followed by CRLF");
    assert_parse_refused("--b\r\nContent-Disposition: form-data; "
                         "name=\"f\"", "b", "not terminated");
    assert_parse_refused("--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
                         "b", "Content-Disposition");
    assert_parse_refused("--b\r\n\r\nx\r\n--b--", "b", "Content-Disposition");
    assert_parse_refused("--b\r\nContent-Disposition: attachment; "
                         "name=f\r\n\r\nx\r\n--b--", "b",
                         "Content-Disposition");
    assert_parse_refused("--b\r\nContent-Disposition: form-data\r\n\r\n"
                         "x\r\n--b--", "b", "without a name");
    assert_parse_refused("--b\r\nContent-Disposition: form-data; "
                         "name=\"f\r\n\r\nx\r\n--b--", "b", "unterminated");
    assert_parse_refused("--b\r\nContent-Disposition: form-data; name=f; "
                         "filename=\"x\r\n\r\nx\r\n--b--", "b",
                         "unterminated quoted filename");
    assert_parse_refused("--b\r\nContent-Disposition: form-data;\r\n"
                         " name=f\r\n\r\nx\r\n--b--", "b", "folded");
    assert_parse_refused("--b\r\nno colon here\r\n\r\nx\r\n--b--", "b",
                         "colon");

    many = "";
    for (i = 0; i <= BTSSO_MP_MAX_PARTS; i++) {
        many = apr_pstrcat(pool, many, "--b\r\nContent-Disposition: "
                           "form-data; name=p\r\n\r\nx\r\n", NULL);
    }
    many = apr_pstrcat(pool, many, "--b--\r\n", NULL);
    assert_parse_refused(many, "b", "more than 16 parts");

    longhdr = apr_palloc(pool, BTSSO_MP_MAX_HEADER + 200);
    memset(longhdr, 'a', BTSSO_MP_MAX_HEADER + 100);
    longhdr[BTSSO_MP_MAX_HEADER + 100] = '\0';
    assert_parse_refused(apr_pstrcat(pool, "--b\r\nX-Long: ", longhdr,
                                     "\r\n\r\nx\r\n--b--", NULL), "b",
                         "too long");
}

/* A NUL inside the headers must not cut a header short unnoticed. */
static void test_nul_in_headers(void **state)
{
    static const char body[] =
        "--b\r\nContent-Disposition: form-data; name=\"a\0b\"\r\n\r\n"
        "x\r\n--b--";
    apr_array_header_t *parts = NULL;
    btsso_error_t *err = btsso_multipart_parse(pool, body, sizeof(body) - 1,
                                               "b", &parts);

    assert_non_null(err);
    assert_string_equal(err->code, "bad_multipart");
    assert_non_null(strstr(err->detail, "NUL"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary_forms),
        cmocka_unit_test(test_boundary_refusals),
        cmocka_unit_test(test_browser_form),
        cmocka_unit_test(test_binary_and_edges),
        cmocka_unit_test(test_no_parts),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_nul_in_headers),
    };

    apr_initialize();
    return cmocka_run_group_tests(tests, setup, teardown);
}
