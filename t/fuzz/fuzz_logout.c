/*
 * fuzz_logout.c - libFuzzer harness for the Single Logout parsers
 * (saml/logout.c): btsso_logout_parse() on the LogoutRequest or
 * LogoutResponse XML an IdP sends, then btsso_logout_check(),
 * btsso_logout_status_ok() and btsso_logout_covers_session().
 *
 * Input: the XML.  Control block: opt[0] bit 0 requires Destination,
 * bit 1 expects InResponseTo "_ours"; opt[1..2] a clock offset in minutes
 * (0x8080 being 0) from 2023-11-14T22:13:20Z (t/unit/test_logout.c's NOW).
 * Checked: a parsed message has its kind's fields (ID, Issuer; NameID for
 * a request, a status code for a response), at most
 * BTSSO_LOGOUT_MAX_SESSION_INDEXES session indexes; a message the check
 * accepts names the expected issuer and destination.
 */
#define FUZZ_LIBXML 1
#include "fuzz_common.h"

#include "saml/logout.h"
#include "saml/metadata.h"

#define IDP "https://idp.example.org/saml"
#define SLO "https://portal.example.com/sso/slo"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    FUZZ_LSAN_OFF();
    fuzz_root_pool();
    btsso_xml_init();
    fuzz_trap_libxml_stderr();
    FUZZ_LSAN_ON();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    fuzz_input_t in;
    btsso_logout_msg_t *m = NULL;
    btsso_logout_expect_t ex;
    btsso_error_t *e;
    char *xml;
    int minutes, i;

    if (apr_pool_create(&p, fuzz_root_pool()) != APR_SUCCESS) {
        abort();
    }
    fuzz_split(p, data, size, &in);
    /* an exact-size, unterminated copy: ASan sees any read past len */
    xml = malloc(in.msg_len ? in.msg_len : 1);
    memcpy(xml, in.msg, in.msg_len);
    e = btsso_logout_parse(p, xml, in.msg_len, 0, &m);
    free(xml);
    if (e != NULL) {
        FUZZ_CHECK(e->code != NULL && e->message != NULL);
        FUZZ_CHECK(e->status == 400 || e->status == 413);
        apr_pool_destroy(p);
        return 0;
    }
    FUZZ_CHECK(m != NULL && m->id != NULL && m->issuer != NULL);
    if (m->kind == BTSSO_LOGOUT_REQUEST) {
        FUZZ_CHECK(m->name_id != NULL && m->session_indexes != NULL);
        FUZZ_CHECK(m->session_indexes->nelts
                   <= BTSSO_LOGOUT_MAX_SESSION_INDEXES);
        for (i = 0; i < m->session_indexes->nelts; i++) {
            const char *sid = APR_ARRAY_IDX(m->session_indexes, i,
                                            const char *);

            FUZZ_CHECK(sid != NULL);
            FUZZ_CHECK(btsso_logout_covers_session(m, sid));
        }
        (void)btsso_logout_covers_session(m, "_s1");
    } else {
        FUZZ_CHECK(m->kind == BTSSO_LOGOUT_RESPONSE);
        FUZZ_CHECK(m->status_code != NULL);
        (void)btsso_logout_status_ok(m);
    }

    minutes = fuzz_opt_offset(&in, 1);
    memset(&ex, 0, sizeof(ex));
    ex.idp_entity_id = IDP;
    ex.slo_url = SLO;
    ex.require_destination = (int)(fuzz_opt(&in, 0) & 1);
    ex.in_response_to = (fuzz_opt(&in, 0) & 2) ? "_ours" : NULL;
    ex.now = apr_time_from_sec(APR_INT64_C(1700000000)
                               + (apr_time_t)minutes * 60);
    ex.clock_skew = 180;
    e = btsso_logout_check(p, m, &ex);
    if (e == NULL) {
        FUZZ_CHECK(strcmp(m->issuer, IDP) == 0);
        FUZZ_CHECK(m->destination == NULL
                   || strcmp(m->destination, SLO) == 0);
        FUZZ_CHECK(!ex.require_destination || m->destination != NULL);
        if (ex.in_response_to != NULL && m->kind == BTSSO_LOGOUT_RESPONSE) {
            FUZZ_CHECK(m->in_response_to != NULL
                       && strcmp(m->in_response_to, "_ours") == 0);
        }
    } else {
        FUZZ_CHECK(e->code != NULL
                   && (e->status == 403 || e->status == 500));
    }
    apr_pool_destroy(p);
    return 0;
}
