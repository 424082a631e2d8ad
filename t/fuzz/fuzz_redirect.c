/*
 * fuzz_redirect.c - libFuzzer harness for the HTTP-Redirect binding
 * decoder btsso_redirect_decode() (saml/authnreq.c): the query string of
 * a LogoutRequest/LogoutResponse an IdP (or anyone) sends to the SLO
 * endpoint: query parsing, percent-decoding, base64 and raw inflate under
 * size and ratio bounds.
 *
 * Input: the raw query string.  Control block: opt[0] picks the bound on
 * the inflated XML (0: the default 256 KiB, else opt[0] * 64 octets).
 * What it decodes is then given to the logout parser and, when signed,
 * to btsso_redirect_verify() with the IdP's certificate (it must refuse:
 * the fuzzer cannot sign).  Checked: exactly one of SAMLRequest /
 * SAMLResponse; the XML is NUL-terminated, within the bound and the ratio;
 * signature and SigAlg come together with the signed octets, which are
 * "param=...[&RelayState=...]&SigAlg=..." and no longer than the query.
 */
#define FUZZ_LIBXML 1
#include "fuzz_common.h"

#include "saml/authnreq.h"
#include "saml/logout.h"
#include "saml/metadata.h"

static apr_array_header_t *certs;

static void setup(void)
{
    apr_pool_t *p = fuzz_root_pool();
    btsso_cert_t *c = NULL;
    size_t len;
    const char *pem;

    btsso_xml_init();
    pem = fuzz_slurp(p, "t/fixtures/keys/resp-idp-rsa.crt", &len);
    if (btsso_cert_parse(p, pem, len, &c) != NULL) {
        abort();
    }
    certs = apr_array_make(p, 1, sizeof(const btsso_cert_t *));
    APR_ARRAY_PUSH(certs, const btsso_cert_t *) = c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    FUZZ_LSAN_OFF();
    setup();
    fuzz_trap_libxml_stderr();
    FUZZ_LSAN_ON();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    fuzz_input_t in;
    btsso_redirect_msg_t *msg = NULL;
    btsso_logout_msg_t *lm = NULL;
    btsso_error_t *e;
    apr_size_t max_xml;

    if (apr_pool_create(&p, fuzz_root_pool()) != APR_SUCCESS) {
        abort();
    }
    fuzz_split(p, data, size, &in);
    max_xml = (apr_size_t)fuzz_opt(&in, 0) * 64;
    e = btsso_redirect_decode(p, in.msg, max_xml, &msg);
    if (e != NULL) {
        FUZZ_CHECK(e->code != NULL && e->message != NULL);
        FUZZ_CHECK(e->status == 400 || e->status == 413);
        apr_pool_destroy(p);
        return 0;
    }
    FUZZ_CHECK(msg != NULL && msg->param != NULL && msg->xml != NULL);
    FUZZ_CHECK(strcmp(msg->param, "SAMLRequest") == 0
               || strcmp(msg->param, "SAMLResponse") == 0);
    FUZZ_CHECK(msg->xml[msg->xml_len] == '\0');
    FUZZ_CHECK(msg->xml_len <= (max_xml ? max_xml : BTSSO_REDIRECT_MAX_XML));
    FUZZ_CHECK(msg->xml_len <= in.msg_len * BTSSO_REDIRECT_MAX_RATIO);
    FUZZ_CHECK((msg->sigalg == NULL) == (msg->signature == NULL));
    FUZZ_CHECK((msg->signature == NULL) == (msg->signed_octets == NULL));
    if (msg->signed_octets != NULL) {
        FUZZ_CHECK(msg->signed_len <= in.msg_len);
        FUZZ_CHECK(strlen(msg->signed_octets) == msg->signed_len);
        FUZZ_CHECK(strncmp(msg->signed_octets, msg->param,
                           strlen(msg->param)) == 0
                   && msg->signed_octets[strlen(msg->param)] == '=');
        FUZZ_CHECK(strstr(msg->signed_octets, "&SigAlg=") != NULL);
        e = btsso_redirect_verify(p, msg, certs, NULL,
                                  apr_time_from_sec(1768478400));
        FUZZ_CHECK(e != NULL && e->status == 403);
    } else {
        e = btsso_redirect_verify(p, msg, certs, NULL,
                                  apr_time_from_sec(1768478400));
        FUZZ_CHECK(e != NULL && strcmp(e->code, "unsigned") == 0);
    }
    e = btsso_logout_parse(p, msg->xml, msg->xml_len, 0, &lm);
    FUZZ_CHECK((e == NULL) == (lm != NULL));
    apr_pool_destroy(p);
    return 0;
}
