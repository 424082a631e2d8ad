/*
 * fuzz_metadata.c - libFuzzer harness for btsso_metadata_parse()
 * (saml/metadata.c): IdP metadata an administrator uploads or the fetcher
 * downloads from a URL (hostile when the URL or the network is).
 *
 * The input is the document.  It is parsed with no entity chosen and, when
 * that finds several IdPs, again for the first entityID the error lists
 * and for a fixed one.  Checked: a parsed IdP has an entityID, an SSO
 * endpoint with a binding and a location, and certificates with DER and a
 * 64-digit fingerprint; an error has a code, a message and a 4xx status.
 */
#define FUZZ_LIBXML 1
#include "fuzz_common.h"

#include "saml/metadata.h"

static void check(btsso_error_t *e, btsso_idp_metadata_t *md)
{
    int i;

    if (e != NULL) {
        FUZZ_CHECK(e->code != NULL && e->message != NULL);
        FUZZ_CHECK(e->status >= 400 && e->status < 500);
        return;
    }
    FUZZ_CHECK(md != NULL && md->entity_id != NULL);
    FUZZ_CHECK(md->sso != NULL && md->sso->nelts > 0);
    for (i = 0; i < md->sso->nelts; i++) {
        const btsso_endpoint_t *ep = &APR_ARRAY_IDX(md->sso, i,
                                                    btsso_endpoint_t);

        FUZZ_CHECK(ep->binding != NULL && ep->location != NULL);
    }
    for (i = 0; md->slo != NULL && i < md->slo->nelts; i++) {
        const btsso_endpoint_t *ep = &APR_ARRAY_IDX(md->slo, i,
                                                    btsso_endpoint_t);

        FUZZ_CHECK(ep->binding != NULL && ep->location != NULL);
    }
    for (i = 0; md->signing_certs != NULL && i < md->signing_certs->nelts;
         i++) {
        const btsso_cert_t *c = APR_ARRAY_IDX(md->signing_certs, i,
                                              const btsso_cert_t *);

        FUZZ_CHECK(c != NULL && c->der != NULL && c->der_len > 0);
        FUZZ_CHECK(c->sha256 != NULL && strlen(c->sha256) == 64);
    }
    for (i = 0; md->attributes != NULL && i < md->attributes->nelts; i++) {
        FUZZ_CHECK(APR_ARRAY_IDX(md->attributes, i,
                                 btsso_md_attribute_t).name != NULL);
    }
    (void)btsso_metadata_endpoint(md->sso, BTSSO_BINDING_REDIRECT);
    (void)btsso_metadata_endpoint(md->slo, BTSSO_BINDING_POST);
}

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
    btsso_idp_metadata_t *md = NULL;
    btsso_error_t *e, *e2;
    char *xml;

    if (apr_pool_create(&p, fuzz_root_pool()) != APR_SUCCESS) {
        abort();
    }
    /* an exact-size copy: ASan sees any read past len */
    xml = malloc(size ? size : 1);
    memcpy(xml, data, size);
    e = btsso_metadata_parse(p, xml, size, 1024 * 1024, NULL, &md);
    check(e, md);
    if (e != NULL && strcmp(e->code, "ambiguous_entity") == 0) {
        md = NULL;
        e2 = btsso_metadata_parse(p, xml, size, 1024 * 1024,
                                  "https://idp2.agg.example.test/idp", &md);
        check(e2, md);
        if (e->detail != NULL) {
            /* the first entityID the detail lists ("N IdP entities: A B") */
            const char *s = strstr(e->detail, ": ");
            if (s != NULL) {
                s += 2;
                const char *end = s + strcspn(s, " ,;)\"'");
                md = NULL;
                e2 = btsso_metadata_parse(p, xml, size, 1024 * 1024,
                                          apr_pstrndup(p, s,
                                                       (apr_size_t)(end - s)),
                                          &md);
                check(e2, md);
            }
        }
    }
    free(xml);
    apr_pool_destroy(p);
    return 0;
}
