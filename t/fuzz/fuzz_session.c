/*
 * fuzz_session.c - libFuzzer harness for btsso_session_record_decode()
 * (core/session_record.c): the session record read back from the session
 * cache on every protected request.  The cache is ours, but memcached and
 * redis are reachable over the network, and a record of another version
 * (or one altered there) must be refused, never misread.
 *
 * Input: the record as the cache returns it (no control block).
 * Checked on every record that decodes:
 *   - it encodes back to exactly the same octets (the format is canonical:
 *     one record, one encoding), so nothing was skipped or misread;
 *   - the required strings are there, the attributes within the bounds;
 *   - every environment variable name it exports is "BTSSO_ATTR_" then
 *     only [A-Z0-9_], no value holds a control character, and the
 *     X-BTSSO-Attributes value is base64url only;
 *   - Require btsso-attr matching runs over it (the first attribute's first
 *     value matches itself).
 */
#include "fuzz_common.h"

#include "core/session_record.h"
#include "core/text.h"

static void check_var(void *ctx, const char *var, const char *value)
{
    const char *c;

    FUZZ_CHECK(strncmp(var, "BTSSO_ATTR_", 11) == 0);
    for (c = var; *c != '\0'; c++) {
        FUZZ_CHECK((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
                   || *c == '_');
    }
    FUZZ_CHECK(!btsso_text_has_control(value));
    (*(int *)ctx)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    btsso_session_record_t rec;
    unsigned char *again;
    apr_size_t len = 0;
    const char *hdr, *c;
    int vars = 0, i;

    if (apr_pool_create(&p, fuzz_root_pool()) != APR_SUCCESS) {
        abort();
    }
    if (!btsso_session_record_decode(p, data, size, &rec)) {
        apr_pool_destroy(p);
        return 0;
    }
    FUZZ_CHECK(rec.sp_id != NULL && rec.account != NULL
               && rec.email != NULL && rec.name_id != NULL
               && rec.idp != NULL && rec.attributes != NULL);
    FUZZ_CHECK(rec.attributes->nelts <= BTSSO_SESSION_MAX_ATTRS);
    again = btsso_session_record_encode(p, &rec, &len);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(len == size && memcmp(again, data, size) == 0);
    btsso_session_attrs_env(p, rec.attributes, check_var, NULL, &vars);
    hdr = btsso_session_attrs_header(p, rec.attributes);
    for (c = hdr; *c != '\0'; c++) {
        FUZZ_CHECK((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z')
                   || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_');
    }
    for (i = 0; i < rec.attributes->nelts; i++) {
        const btsso_session_attr_t *a = &APR_ARRAY_IDX(
            rec.attributes, i, btsso_session_attr_t);

        FUZZ_CHECK(a->name != NULL);
        FUZZ_CHECK(a->values->nelts <= BTSSO_SESSION_MAX_VALUES);
        if (a->values->nelts > 0) {
            const char *v = APR_ARRAY_IDX(a->values, 0, const char *);

            FUZZ_CHECK(btsso_session_attrs_match(rec.attributes, a->name,
                                                 &v, 1));
        }
    }
    apr_pool_destroy(p);
    return 0;
}
