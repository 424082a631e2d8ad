/*
 * b64.h - octet encodings the SAML bindings need: base64, percent-encoding
 * and raw DEFLATE (RFC 1951, no zlib header), as the HTTP-Redirect binding
 * stacks them.  Pure functions over pool memory; nothing here logs.
 */
#ifndef BTSSO_B64_H
#define BTSSO_B64_H

#include <apr_pools.h>
#include "core/btsso_error.h"

/* Base64 (RFC 4648 section 4) with padding, on one line. */
const char *btsso_b64_encode(apr_pool_t *p, const void *data, apr_size_t len);

/*
 * Strict base64 decode: ASCII whitespace is skipped (XML text and PEM bodies
 * carry line breaks), anything else outside the alphabet, misplaced padding
 * or a truncated final group is refused.  The output is NUL-terminated
 * (not counted in *out_len) so decoded text can be used as a C string.
 * Error: "bad_base64" (400).
 */
btsso_error_t *btsso_b64_decode(apr_pool_t *p, const char *s, apr_size_t len,
                                unsigned char **out, apr_size_t *out_len);

/* Base64url (RFC 4648 section 5) without padding, as cookies carry it. */
char *btsso_b64url_encode(apr_pool_t *p, const unsigned char *in,
                          apr_size_t len);
/* Strict base64url decode: unpadded, canonical (unused low bits zero),
 * nothing outside the alphabet.  NUL-terminated output.  1 ok, 0 refused. */
int btsso_b64url_decode(apr_pool_t *p, const char *in, apr_size_t len,
                        unsigned char **out, apr_size_t *out_len);

/* Percent-encode every octet except RFC 3986 unreserved characters
 * (ALPHA DIGIT - . _ ~), with uppercase hex digits. */
const char *btsso_pct_encode(apr_pool_t *p, const void *data, apr_size_t len);

/*
 * Decode application/x-www-form-urlencoded text: %XX and '+' as space.
 * A '%' not followed by two hex digits is refused ("bad_encoding", 400).
 * The output is NUL-terminated (not counted in *out_len); it may contain
 * NUL octets, so binary callers use *out_len.
 */
btsso_error_t *btsso_pct_decode(apr_pool_t *p, const char *s, apr_size_t len,
                                char **out, apr_size_t *out_len);

/* Raw DEFLATE at the best compression level.  Error: "deflate_failed" (500). */
btsso_error_t *btsso_deflate_raw(apr_pool_t *p, const void *in, apr_size_t len,
                                 unsigned char **out, apr_size_t *out_len);

/*
 * Raw INFLATE, bounded: output beyond max_out octets, or more than
 * max_ratio times the input size, stops inflation and is refused before
 * the memory is spent (decompression bombs).  The output is
 * NUL-terminated (not counted in *out_len).
 * Errors: "inflate_failed" (400: not raw DEFLATE, truncated, trailing
 * garbage), "too_large" (413: a bound hit).
 */
btsso_error_t *btsso_inflate_raw(apr_pool_t *p, const void *in, apr_size_t len,
                                 apr_size_t max_out, unsigned max_ratio,
                                 unsigned char **out, apr_size_t *out_len);

#endif /* BTSSO_B64_H */
