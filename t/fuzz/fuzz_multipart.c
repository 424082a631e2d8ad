/*
 * fuzz_multipart.c - libFuzzer harness for the multipart/form-data parser
 * (core/multipart.c) behind the admin API's uploads.
 *
 * Input: the Content-Type header value, a newline, then the body.  The
 * boundary comes from btsso_multipart_boundary() on the first line; the
 * body is split with it.  Checked: the boundary obeys RFC 2046 (1-70
 * characters); there are at most BTSSO_MP_MAX_PARTS parts, each named,
 * each lying inside the body; an error is bad_multipart 400.
 */
#include "fuzz_common.h"

#include "core/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const uint8_t *nl = memchr(data, '\n', size);
    const char *ct, *boundary = NULL;
    char *body;
    size_t body_len;
    apr_array_header_t *parts = NULL;
    btsso_error_t *e;
    int i;

    if (nl == NULL) {
        return 0;
    }
    if (apr_pool_create(&p, fuzz_root_pool()) != APR_SUCCESS) {
        abort();
    }
    ct = apr_pstrndup(p, (const char *)data, (apr_size_t)(nl - data));
    e = btsso_multipart_boundary(p, ct, &boundary);
    if (e != NULL) {
        FUZZ_CHECK(e->code != NULL && (e->status == 415 || e->status == 400));
        apr_pool_destroy(p);
        return 0;
    }
    FUZZ_CHECK(boundary != NULL);
    FUZZ_CHECK(strlen(boundary) >= 1
               && strlen(boundary) <= BTSSO_MP_MAX_BOUNDARY);

    /* an exact-size copy of the body, not terminated: ASan sees any read
     * past its end */
    body_len = size - (size_t)(nl + 1 - data);
    body = malloc(body_len ? body_len : 1);
    memcpy(body, nl + 1, body_len);
    e = btsso_multipart_parse(p, body, body_len, boundary, &parts);
    if (e == NULL) {
        FUZZ_CHECK(parts != NULL && parts->nelts <= BTSSO_MP_MAX_PARTS);
        for (i = 0; i < parts->nelts; i++) {
            const btsso_mp_part_t *pt = &APR_ARRAY_IDX(parts, i,
                                                       btsso_mp_part_t);

            FUZZ_CHECK(pt->name != NULL);
            FUZZ_CHECK(pt->data >= body && pt->data <= body + body_len);
            FUZZ_CHECK(pt->len <= (size_t)(body + body_len - pt->data));
            FUZZ_CHECK(btsso_multipart_find(parts, pt->name) != NULL);
        }
    } else {
        FUZZ_CHECK(e->code != NULL && e->status == 400);
        FUZZ_CHECK(strcmp(e->code, "bad_multipart") == 0);
    }
    free(body);
    apr_pool_destroy(p);
    return 0;
}
