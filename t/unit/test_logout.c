/*
 * test_logout.c - the parser and checks for the IdP's LogoutRequest and
 * LogoutResponse (saml/logout.c): what is read, every refusal, the time
 * window edges, and hostile input (DTDs, truncations, noise on stderr).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "saml/logout.h"
#include "saml/metadata.h"

#define IDP "https://idp.example.org/saml"
#define SLO "https://portal.example.com/sso/slo"

static apr_pool_t *pool;
/* 2023-11-14T22:13:20Z */
static const apr_time_t NOW = APR_INT64_C(1700000000) * APR_USEC_PER_SEC;

#define REQ_HEAD \
    "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:" \
    "protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" "
#define ISSUER "<saml:Issuer>" IDP "</saml:Issuer>"

static const char good_request[] =
    REQ_HEAD "ID=\"_lr1\" Version=\"2.0\" IssueInstant=\"2023-11-14T22:13:10Z\""
    " Destination=\"" SLO "\" NotOnOrAfter=\"2023-11-14T22:18:20Z\""
    " Reason=\"urn:oasis:names:tc:SAML:2.0:logout:user\">"
    "<saml:Issuer> " IDP " </saml:Issuer>"
    "<saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:"
    "emailAddress\" NameQualifier=\"" IDP "\" SPNameQualifier=\"https://"
    "portal.example.com/sso\">ann@example.com</saml:NameID>"
    "<samlp:SessionIndex>_s1</samlp:SessionIndex>"
    "<samlp:SessionIndex>\n_s2\n</samlp:SessionIndex>"
    "</samlp:LogoutRequest>";

#define RESP_HEAD \
    "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:" \
    "protocol\" xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" "

static const char good_response[] =
    RESP_HEAD "ID=\"_resp1\" Version=\"2.0\" IssueInstant=\"2023-11-14T"
    "22:13:20.250+00:00\" Destination=\"" SLO "\" InResponseTo=\"_ours\">"
    ISSUER "<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:"
    "SAML:2.0:status:Success\"/></samlp:Status></samlp:LogoutResponse>";

static int setup(void **state)
{
    apr_pool_create(&pool, NULL);
    btsso_xml_init();
    return 0;
}

static int teardown(void **state)
{
    apr_pool_destroy(pool);
    return 0;
}

static btsso_error_t *parse(const char *xml, btsso_logout_msg_t **m)
{
    return btsso_logout_parse(pool, xml, strlen(xml), 0, m);
}

static void expect_code(const char *xml, const char *code, int status)
{
    btsso_logout_msg_t *m = NULL;
    btsso_error_t *e = parse(xml, &m);

    if (e == NULL) {
        fail_msg("accepted, expected %s: %s", code, xml);
    }
    assert_string_equal(e->code, code);
    assert_int_equal(e->status, status);
    assert_null(m);
    assert_non_null(e->message);
}

static btsso_logout_expect_t expectation(void)
{
    btsso_logout_expect_t ex;

    memset(&ex, 0, sizeof(ex));
    ex.idp_entity_id = IDP;
    ex.slo_url = SLO;
    ex.require_destination = 1;
    ex.now = NOW;
    ex.clock_skew = 180;
    return ex;
}

/* ---- what is read ------------------------------------------------------ */

static void test_request_fields(void **state)
{
    btsso_logout_msg_t *m = NULL;

    assert_null(parse(good_request, &m));
    assert_int_equal(m->kind, BTSSO_LOGOUT_REQUEST);
    assert_string_equal(m->id, "_lr1");
    assert_string_equal(m->issuer, IDP);      /* trimmed */
    assert_string_equal(m->destination, SLO);
    assert_true(m->issue_instant == NOW - apr_time_from_sec(10));
    assert_true(m->not_on_or_after == NOW + apr_time_from_sec(300));
    assert_string_equal(m->reason, "urn:oasis:names:tc:SAML:2.0:logout:user");
    assert_string_equal(m->name_id, "ann@example.com");
    assert_string_equal(m->name_id_format,
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress");
    assert_string_equal(m->name_qualifier, IDP);
    assert_string_equal(m->sp_name_qualifier, "https://portal.example.com/sso");
    assert_int_equal(m->session_indexes->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(m->session_indexes, 0, const char *),
                        "_s1");
    assert_string_equal(APR_ARRAY_IDX(m->session_indexes, 1, const char *),
                        "_s2");
    assert_null(m->status_code);
    assert_false(btsso_logout_status_ok(m));
}

static void test_request_minimal(void **state)
{
    btsso_logout_msg_t *m = NULL;

    assert_null(parse(REQ_HEAD "ID=\"a1\" Version=\"2.0\" IssueInstant=\""
                      "2023-11-14T22:13:20\">" ISSUER "<saml:NameID>x"
                      "</saml:NameID></samlp:LogoutRequest>", &m));
    assert_null(m->destination);
    assert_null(m->name_id_format);
    assert_null(m->reason);
    assert_int_equal(m->not_on_or_after, 0);
    assert_int_equal(m->session_indexes->nelts, 0);
    /* no zone is read as UTC */
    assert_true(m->issue_instant == NOW);
}

static void test_response_fields(void **state)
{
    btsso_logout_msg_t *m = NULL;

    assert_null(parse(good_response, &m));
    assert_int_equal(m->kind, BTSSO_LOGOUT_RESPONSE);
    assert_string_equal(m->id, "_resp1");
    assert_string_equal(m->in_response_to, "_ours");
    assert_true(m->issue_instant == NOW + 250000);
    assert_true(btsso_logout_status_ok(m));
    assert_null(m->status_subcode);
    assert_null(m->name_id);
}

static void test_response_failure_status(void **state)
{
    btsso_logout_msg_t *m = NULL;

    assert_null(parse(RESP_HEAD "ID=\"r2\" Version=\"2.0\" IssueInstant=\""
        "2023-11-14T23:13:20+01:00\">" ISSUER "<samlp:Status>"
        "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:"
        "Responder\"><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:"
        "status:PartialLogout\"/></samlp:StatusCode><samlp:StatusMessage>"
        " not everywhere </samlp:StatusMessage></samlp:Status>"
        "</samlp:LogoutResponse>", &m));
    assert_true(m->issue_instant == NOW);     /* +01:00 offset applied */
    assert_false(btsso_logout_status_ok(m));
    assert_string_equal(m->status_code,
                        "urn:oasis:names:tc:SAML:2.0:status:Responder");
    assert_string_equal(m->status_subcode,
                        "urn:oasis:names:tc:SAML:2.0:status:PartialLogout");
    assert_string_equal(m->status_message, "not everywhere");
    assert_null(m->in_response_to);
}

/* ---- refusals while reading -------------------------------------------- */

static void test_refusals(void **state)
{
    btsso_logout_msg_t *m = NULL;
    btsso_error_t *e;
    apr_size_t i;
    char *many;

    expect_code("", "empty", 400);
    e = btsso_logout_parse(pool, good_request, strlen(good_request), 100, &m);
    assert_non_null(e);
    assert_string_equal(e->code, "too_large");
    assert_int_equal(e->status, 413);
    expect_code("<!DOCTYPE x [<!ENTITY e \"boom\">]>" REQ_HEAD "ID=\"a\" "
                "Version=\"2.0\" IssueInstant=\"2023-11-14T22:13:20Z\">"
                "<saml:Issuer>&e;</saml:Issuer><saml:NameID>x</saml:NameID>"
                "</samlp:LogoutRequest>", "dtd_forbidden", 400);
    expect_code("<!DOCTYPE samlp:LogoutRequest SYSTEM \"http://127.0.0.1:9/x"
                ".dtd\">" REQ_HEAD "/>", "dtd_forbidden", 400);
    expect_code("<samlp:LogoutRequest", "not_xml", 400);
    expect_code(REQ_HEAD "ID=\"a\">&undefined;</samlp:LogoutRequest>",
                "not_xml", 400);
    expect_code("<samlp:AuthnRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:"
                "2.0:protocol\"/>", "not_logout", 400);
    expect_code("<LogoutRequest ID=\"a\" Version=\"2.0\"/>", "not_logout",
                400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"1.1\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\">" ISSUER "<saml:NameID>x</saml:NameID>"
                "</samlp:LogoutRequest>", "malformed", 400);
    expect_code(REQ_HEAD "Version=\"2.0\" IssueInstant=\"2023-11-14T22:13:20"
                "Z\">" ISSUER "<saml:NameID>x</saml:NameID>"
                "</samlp:LogoutRequest>", "malformed", 400);
    expect_code(REQ_HEAD "ID=\"a')or('1\" Version=\"2.0\" IssueInstant=\""
                "2023-11-14T22:13:20Z\">" ISSUER "<saml:NameID>x"
                "</saml:NameID></samlp:LogoutRequest>", "malformed", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"yesterday"
                "\">" ISSUER "<saml:NameID>x</saml:NameID>"
                "</samlp:LogoutRequest>", "malformed", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-13-14"
                "T22:13:20Z\">" ISSUER "<saml:NameID>x</saml:NameID>"
                "</samlp:LogoutRequest>", "malformed", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\" NotOnOrAfter=\"soon\">" ISSUER "<saml:NameID>x"
                "</saml:NameID></samlp:LogoutRequest>", "malformed", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\"><saml:NameID>x</saml:NameID>"
                "</samlp:LogoutRequest>", "no_issuer", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\"><saml:Issuer> </saml:Issuer><saml:NameID>x"
                "</saml:NameID></samlp:LogoutRequest>", "no_issuer", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\">" ISSUER ISSUER "<saml:NameID>x</saml:NameID>"
                "</samlp:LogoutRequest>", "malformed", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\">" ISSUER "</samlp:LogoutRequest>",
                "no_name_id", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\">" ISSUER "<saml:NameID><x/>ann</saml:NameID>"
                "</samlp:LogoutRequest>", "no_name_id", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\">" ISSUER "<saml:EncryptedID/>"
                "</samlp:LogoutRequest>", "encrypted_id_unsupported", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\">" ISSUER "<saml:NameID>x</saml:NameID>"
                "<saml:NameID>y</saml:NameID></samlp:LogoutRequest>",
                "malformed", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\">" ISSUER "<saml:NameID>x</saml:NameID>"
                "<samlp:SessionIndex/></samlp:LogoutRequest>",
                "malformed", 400);
    many = apr_pstrcat(pool, REQ_HEAD "ID=\"a\" Version=\"2.0\" "
                       "IssueInstant=\"2023-11-14T22:13:20Z\">" ISSUER
                       "<saml:NameID>x</saml:NameID>", NULL);
    for (i = 0; i <= BTSSO_LOGOUT_MAX_SESSION_INDEXES; i++) {
        many = apr_pstrcat(pool, many, "<samlp:SessionIndex>s"
                           "</samlp:SessionIndex>", NULL);
    }
    expect_code(apr_pstrcat(pool, many, "</samlp:LogoutRequest>", NULL),
                "malformed", 400);
    expect_code(RESP_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-"
                "14T22:13:20Z\">" ISSUER "</samlp:LogoutResponse>",
                "no_status", 400);
    expect_code(RESP_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-"
                "14T22:13:20Z\">" ISSUER "<samlp:Status><samlp:StatusCode/>"
                "</samlp:Status></samlp:LogoutResponse>", "no_status", 400);
    expect_code(RESP_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-"
                "14T22:13:20Z\">" ISSUER "<samlp:Status><samlp:StatusCode "
                "Value=\"x\"/></samlp:Status><samlp:Status/>"
                "</samlp:LogoutResponse>", "malformed", 400);
}

/* A wrapped NameID (inside Extensions) is not the request's NameID. */
static void test_nameid_only_direct_child(void **state)
{
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\"2023-11-14"
                "T22:13:20Z\">" ISSUER "<samlp:Extensions><saml:NameID>"
                "victim@example.com</saml:NameID></samlp:Extensions>"
                "</samlp:LogoutRequest>", "no_name_id", 400);
}

/* Every truncation of a valid message is refused or read, never crashes,
 * and nothing reaches stderr (httpd's error log). */
static void test_truncations_are_quiet(void **state)
{
    int fds[2], saved;
    apr_size_t n, len = strlen(good_request);
    ssize_t got;
    char buf[64];

    assert_int_equal(pipe(fds), 0);
    fflush(stderr);
    saved = dup(2);
    dup2(fds[1], 2);
    for (n = 1; n < len; n++) {
        btsso_logout_msg_t *m = NULL;
        btsso_error_t *e = btsso_logout_parse(pool, good_request, n, 0, &m);

        assert_true((e == NULL) != (m == NULL));
    }
    expect_code("<!DOCTYPE a [<!ENTITY % p SYSTEM \"file:///etc/passwd\">"
                "%p;]><a/>", "dtd_forbidden", 400);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    got = read(fds[0], buf, sizeof(buf));
    close(fds[0]);
    assert_true(got <= 0);
}

/* ---- checks ------------------------------------------------------------ */

static void check_code(const btsso_logout_msg_t *m,
                       const btsso_logout_expect_t *ex, const char *code)
{
    btsso_error_t *e = btsso_logout_check(pool, m, ex);

    if (code == NULL) {
        if (e != NULL) {
            fail_msg("refused: %s (%s)", e->code, e->detail);
        }
        return;
    }
    if (e == NULL) {
        fail_msg("accepted, expected %s", code);
    }
    assert_string_equal(e->code, code);
}

static void test_check_request(void **state)
{
    btsso_logout_msg_t *m = NULL;
    btsso_logout_expect_t ex = expectation();

    assert_null(parse(good_request, &m));
    check_code(m, &ex, NULL);

    ex.idp_entity_id = "https://other.example.org/saml";
    check_code(m, &ex, "issuer_mismatch");
    ex = expectation();
    ex.slo_url = "https://portal.example.com/sso/slo/acme";
    check_code(m, &ex, "destination_mismatch");
    ex = expectation();
    ex.slo_url = NULL;
    check_code(m, &ex, "bad_expectation");

    /* NotOnOrAfter is NOW+300: accepted until NOW+300+skew (exclusive) */
    ex = expectation();
    ex.now = NOW + apr_time_from_sec(300 + 180) - 1;
    check_code(m, &ex, NULL);
    ex.now = NOW + apr_time_from_sec(300 + 180);
    check_code(m, &ex, "request_expired");

    /* IssueInstant is NOW-10: from NOW-10-skew on */
    ex = expectation();
    ex.now = NOW - apr_time_from_sec(10 + 180);
    check_code(m, &ex, NULL);
    ex.now = NOW - apr_time_from_sec(10 + 180) - 1;
    check_code(m, &ex, "issued_in_future");
}

static void test_check_destination_and_age(void **state)
{
    btsso_logout_msg_t *m = NULL;
    btsso_logout_expect_t ex = expectation();

    assert_null(parse(REQ_HEAD "ID=\"a1\" Version=\"2.0\" IssueInstant=\""
                      "2023-11-14T22:13:20Z\">" ISSUER "<saml:NameID>x"
                      "</saml:NameID></samlp:LogoutRequest>", &m));
    check_code(m, &ex, "destination_missing");
    ex.require_destination = 0;
    check_code(m, &ex, NULL);
    /* no NotOnOrAfter: the age bound still applies (600 s + skew) */
    ex.now = NOW + apr_time_from_sec(600 + 180);
    check_code(m, &ex, NULL);
    ex.now = NOW + apr_time_from_sec(600 + 180) + 1;
    check_code(m, &ex, "message_too_old");
}

static void test_check_response(void **state)
{
    btsso_logout_msg_t *m = NULL;
    btsso_logout_expect_t ex = expectation();

    assert_null(parse(good_response, &m));
    ex.in_response_to = "_ours";
    check_code(m, &ex, NULL);
    ex.in_response_to = "_someone_elses";
    check_code(m, &ex, "in_response_to_mismatch");
    assert_null(parse(RESP_HEAD "ID=\"r3\" Version=\"2.0\" IssueInstant=\""
                      "2023-11-14T22:13:20Z\" Destination=\"" SLO "\">"
                      ISSUER "<samlp:Status><samlp:StatusCode Value=\"urn:"
                      "oasis:names:tc:SAML:2.0:status:Success\"/>"
                      "</samlp:Status></samlp:LogoutResponse>", &m));
    check_code(m, &ex, "in_response_to_mismatch");
    ex.in_response_to = NULL;
    check_code(m, &ex, NULL);
}

static void test_covers_session(void **state)
{
    btsso_logout_msg_t *m = NULL;

    assert_null(parse(good_request, &m));
    assert_true(btsso_logout_covers_session(m, "_s1"));
    assert_true(btsso_logout_covers_session(m, "_s2"));
    assert_false(btsso_logout_covers_session(m, "_s3"));
    assert_false(btsso_logout_covers_session(m, "_s"));
    assert_false(btsso_logout_covers_session(m, NULL));
    assert_null(parse(REQ_HEAD "ID=\"a1\" Version=\"2.0\" IssueInstant=\""
                      "2023-11-14T22:13:20Z\">" ISSUER "<saml:NameID>x"
                      "</saml:NameID></samlp:LogoutRequest>", &m));
    assert_true(btsso_logout_covers_session(m, "_anything"));
    assert_true(btsso_logout_covers_session(m, NULL));
}

/* Control characters in the Issuer or NameID (issue 8, item 1). */
static void test_control_characters(void **state)
{
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\""
                "2023-11-14T22:13:10Z\"><saml:Issuer>" IDP "&#13;&#10;x"
                "</saml:Issuer><saml:NameID>ann@example.com</saml:NameID>"
                "</samlp:LogoutRequest>", "bad_issuer", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\""
                "2023-11-14T22:13:10Z\">" ISSUER "<saml:NameID>ann@example"
                ".com&#10;X-Evil: 1</saml:NameID></samlp:LogoutRequest>",
                "bad_name_id", 400);
    expect_code(REQ_HEAD "ID=\"a\" Version=\"2.0\" IssueInstant=\""
                "2023-11-14T22:13:10Z\">" ISSUER "<saml:NameID>ann@&#9;"
                "example.com</saml:NameID></samlp:LogoutRequest>",
                "bad_name_id", 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_request_minimal),
        cmocka_unit_test(test_response_fields),
        cmocka_unit_test(test_response_failure_status),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_nameid_only_direct_child),
        cmocka_unit_test(test_truncations_are_quiet),
        cmocka_unit_test(test_check_request),
        cmocka_unit_test(test_check_destination_and_age),
        cmocka_unit_test(test_check_response),
        cmocka_unit_test(test_covers_session),
        cmocka_unit_test(test_control_characters),
    };

    apr_initialize();
    atexit(apr_terminate);
    return cmocka_run_group_tests(tests, setup, teardown);
}
