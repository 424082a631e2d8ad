/*
 * multipart.h - a small, bounded multipart/form-data parser (RFC 7578) for
 * the admin API's uploads (IdP metadata, certificates).
 *
 * The caller has already read the whole body under its own size cap; this
 * parser only splits it.  Part contents are binary-safe (a DER certificate
 * may hold NUL bytes): each part points into the body, with its length.
 * Bounds: at most BTSSO_MP_MAX_PARTS parts and BTSSO_MP_MAX_HEADER bytes of
 * headers per part, so a hostile body cannot make the parser allocate more
 * than a small multiple of its own size.
 */
#ifndef BTSSO_MULTIPART_H
#define BTSSO_MULTIPART_H

#include <apr_pools.h>
#include <apr_tables.h>
#include "core/btsso_error.h"

#define BTSSO_MP_MAX_PARTS   16
#define BTSSO_MP_MAX_HEADER  8192
#define BTSSO_MP_MAX_BOUNDARY 70    /* RFC 2046 */

typedef struct btsso_mp_part_t {
    const char *name;           /* Content-Disposition name="..." */
    const char *filename;       /* filename="..." or NULL */
    const char *content_type;   /* Content-Type of the part or NULL */
    const char *data;           /* points into the body; not terminated */
    apr_size_t len;
} btsso_mp_part_t;

/*
 * The boundary of a "multipart/form-data; boundary=..." Content-Type
 * (quoted or not, any parameter order, case-insensitive names).
 * Errors: not_multipart 415 (another media type), bad_multipart 400 (no
 * boundary, or one longer than 70 characters or with characters RFC 2046
 * does not allow).
 */
btsso_error_t *btsso_multipart_boundary(apr_pool_t *p,
                                        const char *content_type,
                                        const char **boundary);

/*
 * Split body into parts (btsso_mp_part_t, in order).  The preamble and
 * epilogue are ignored; the closing delimiter is required (a truncated
 * body is refused).  Error: bad_multipart 400 with a detail saying what
 * is wrong (no opening delimiter, header too long, no Content-Disposition
 * name, too many parts, no closing delimiter).
 */
btsso_error_t *btsso_multipart_parse(apr_pool_t *p, const char *body,
                                     apr_size_t len, const char *boundary,
                                     apr_array_header_t **parts);

/* The first part named name, or NULL. */
const btsso_mp_part_t *btsso_multipart_find(const apr_array_header_t *parts,
                                            const char *name);

#endif /* BTSSO_MULTIPART_H */
