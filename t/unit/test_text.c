/*
 * test_text.c - core/text (control characters, ASCII-only email equality)
 * and saml/xmlparse (the one hardened libxml2 parse).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/dict.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "core/text.h"
#include "saml/xmlparse.h"

static apr_pool_t *pool;

static void test_has_control(void **state)
{
    static const char *const dirty[] = {
        "a\rb", "a\nb", "a\r\nX-BTSSO-Account: v", "\tx", "x\x01", "x\x1f",
        "x\x7f", "x\xc2\x80", "x\xc2\x85y", "x\xc2\x9f", "x\xe2\x80\xa8",
        "x\xe2\x80\xa9y", "\x1b[31m",
    };
    static const char *const clean[] = {
        "", "alice@example.com", "https://idp.example.test/x?a=b&c",
        "J\xc3\xbcrgen",            /* U+00FC */
        "x\xc2\xa0y",               /* U+00A0 NO-BREAK SPACE: printable */
        "\xe2\x84\xaa" "ate@example.com",   /* U+212A: not a control */
        "x\xe2\x80\xa7", "x\xe2\x80\xaa",   /* U+2027, U+202A */
        "x\xc2", "x\xe2\x80",       /* truncated sequences: no overread */
        "a b ~",
    };
    size_t i;

    for (i = 0; i < sizeof(dirty) / sizeof(dirty[0]); i++) {
        if (!btsso_text_has_control(dirty[i])) {
            fail_msg("dirty #%zu not detected", i);
        }
    }
    for (i = 0; i < sizeof(clean) / sizeof(clean[0]); i++) {
        if (btsso_text_has_control(clean[i])) {
            fail_msg("clean #%zu flagged", i);
        }
    }
    assert_false(btsso_text_has_control(NULL));
}

static void test_email_equal(void **state)
{
    assert_true(btsso_email_equal("kate@example.com", "kate@example.com"));
    assert_true(btsso_email_equal("KATE@Example.COM", "kate@example.com"));
    assert_true(btsso_email_equal("  kate@example.com ", "kate@example.com"));
    /* U+212A KELVIN SIGN never folds onto 'k' (PostgreSQL's lower() does) */
    assert_false(btsso_email_equal("\xe2\x84\xaa" "ate@example.com",
                                   "kate@example.com"));
    /* nor U+0130 / U+0131 (dotted/dotless i) onto 'i' */
    assert_false(btsso_email_equal("\xc4\xb0" "nes@example.com",
                                   "ines@example.com"));
    assert_false(btsso_email_equal("\xc4\xb1" "nes@example.com",
                                   "ines@example.com"));
    /* non-ASCII compares exactly, also with itself in another case */
    assert_true(btsso_email_equal("j\xc3\xbcrgen@x.de", "J\xc3\xbcrgen@x.de"));
    assert_false(btsso_email_equal("j\xc3\xbcrgen@x.de", "J\xc3\x9crgen@x.de"));
    /* only spaces are trimmed (as SQL trim()) */
    assert_false(btsso_email_equal("kate@example.com\t", "kate@example.com"));
    assert_false(btsso_email_equal("kate@example.co", "kate@example.com"));
    assert_false(btsso_email_equal("kate@example.com", NULL));
    assert_false(btsso_email_equal(NULL, NULL));
    /* '@' and '[' are not letters: no folding across 0x40/0x60 */
    assert_false(btsso_email_equal("a@b", "a`b"));
    assert_false(btsso_email_equal("a[b", "a{b"));
}

/* ---- the hardened parse ------------------------------------------------- */

static btsso_error_t *parse(const char *xml, apr_size_t max, xmlDocPtr *doc)
{
    return btsso_xml_parse(pool, xml, strlen(xml), max, "msg", doc);
}

static void expect_refused(const char *xml, const char *code, int status)
{
    xmlDocPtr doc = (xmlDocPtr)1;
    btsso_error_t *e = parse(xml, 0, &doc);

    if (e == NULL) {
        fail_msg("accepted: %s", xml);
    }
    if (strcmp(e->code, code) != 0) {
        fail_msg("%s: got %s, want %s", xml, e->code, code);
    }
    assert_int_equal(e->status, status);
    assert_string_equal(e->message, "msg");
    assert_null(doc);
}

static void test_parse_ok(void **state)
{
    xmlDocPtr doc = NULL;

    assert_null(parse("<a>x&amp;y<b/></a>", 0, &doc));
    assert_non_null(doc);
    assert_string_equal((const char *)xmlDocGetRootElement(doc)->name, "a");
    xmlFreeDoc(doc);
}

static void test_parse_refusals(void **state)
{
    expect_refused("<!DOCTYPE a><a/>", "dtd_forbidden", 400);
    expect_refused("<!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>",
                   "dtd_forbidden", 400);
    expect_refused("<!DOCTYPE a SYSTEM \"http://127.0.0.1:9/x.dtd\"><a/>",
                   "dtd_forbidden", 400);
    expect_refused("<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY % p SYSTEM "
                   "\"file:///etc/passwd\"> %p;]><d/>", "dtd_forbidden", 400);
    expect_refused("<a>&undefined;</a>", "not_xml", 400);
    expect_refused("<a>", "not_xml", 400);
    expect_refused("<a>&#0;</a>", "not_xml", 400);
    expect_refused("<a>&#1;</a>", "not_xml", 400);
    expect_refused("", "empty", 400);
}

static void test_parse_size_bound(void **state)
{
    const char *xml = "<a>0123456789</a>";
    xmlDocPtr doc = NULL;
    btsso_error_t *e;

    e = parse(xml, strlen(xml) - 1, &doc);
    assert_non_null(e);
    assert_string_equal(e->code, "too_large");
    assert_int_equal(e->status, 413);
    assert_null(parse(xml, strlen(xml), &doc));
    xmlFreeDoc(doc);
}

static void test_parse_not_xml_detail_one_line(void **state)
{
    xmlDocPtr doc = NULL;
    btsso_error_t *e = parse("<a>\n<b>\n</a>", 0, &doc);

    assert_non_null(e);
    assert_string_equal(e->code, "not_xml");
    assert_non_null(strstr(e->detail, "line "));
    assert_null(strpbrk(e->detail, "\r\n"));
}

/* Quiet: nothing reaches stderr, whatever the input. */
static void test_parse_quiet(void **state)
{
    int saved = dup(2), devnull_pipe[2];
    char buf[256];
    ssize_t n;
    xmlDocPtr doc = NULL;

    assert_int_equal(pipe(devnull_pipe), 0);
    fflush(stderr);
    dup2(devnull_pipe[1], 2);
    parse("<a><b></a>", 0, &doc);
    parse("<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a>&e;</a>",
          0, &doc);
    parse("<a>&e;</a>", 0, &doc);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(devnull_pipe[1]);
    n = read(devnull_pipe[0], buf, sizeof(buf));
    close(devnull_pipe[0]);
    assert_int_equal(n, 0);
}

/*
 * The thread's parser context is reused (xmlparse.c): a refusal leaves
 * nothing behind for the next document, a document stays valid after
 * later parses on the thread, and documents full of distinct names do not
 * grow the context's dictionary without bound.
 */
static void test_parse_reused_context(void **state)
{
    xmlDocPtr kept = NULL, doc = NULL;
    const xmlChar *kept_name;
    char xml[128];
    int i;

    assert_null(parse("<keep attr=\"v\"><inner>t</inner></keep>", 0, &kept));
    kept_name = xmlDocGetRootElement(kept)->name;
    for (i = 0; i < 200; i++) {
        expect_refused("<!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>",
                       "dtd_forbidden", 400);
        assert_null(parse("<a>ok</a>", 0, &doc));
        assert_string_equal((const char *)xmlDocGetRootElement(doc)->name,
                            "a");
        xmlFreeDoc(doc);
        expect_refused("<a><b></a>", "not_xml", 400);
        expect_refused("<!DOCTYPE a><a/>", "dtd_forbidden", 400);
        assert_null(parse("<b x=\"1\"/>", 0, &doc));
        xmlFreeDoc(doc);
    }
    /* distinct names, many more than the dictionary is allowed to keep */
    for (i = 0; i < 20000; i++) {
        snprintf(xml, sizeof(xml), "<e%d a%d=\"v%d\">w%d</e%d>", i, i, i, i,
                 i);
        assert_null(parse(xml, 0, &doc));
        if (i == 19999) {
            assert_true(xmlDictSize(doc->dict) <= 4096 + 8);
        }
        xmlFreeDoc(doc);
    }
    assert_ptr_equal(xmlDocGetRootElement(kept)->name, kept_name);
    assert_string_equal((const char *)kept_name, "keep");
    assert_string_equal((const char *)xmlDocGetRootElement(kept)
                            ->children->children->content, "t");
    xmlFreeDoc(kept);
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
        cmocka_unit_test(test_has_control),
        cmocka_unit_test(test_email_equal),
        cmocka_unit_test_setup_teardown(test_parse_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_size_bound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_parse_not_xml_detail_one_line,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_quiet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_reused_context, setup,
                                        teardown),
    };
    int rc;

    apr_initialize();
    btsso_xml_init();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_terminate();
    return rc;
}
