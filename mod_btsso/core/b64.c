/*
 * b64.c - base64, percent-encoding and raw DEFLATE for the SAML bindings.
 */
#include <limits.h>
#include <string.h>
#include <zlib.h>
#include <apr_strings.h>

#include "core/b64.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const char *btsso_b64_encode(apr_pool_t *p, const void *data, apr_size_t len)
{
    const unsigned char *in = data;
    char *out = apr_palloc(p, ((len + 2) / 3) * 4 + 1);
    char *o = out;
    apr_size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *o++ = b64_alphabet[in[i] >> 2];
        *o++ = b64_alphabet[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
        *o++ = b64_alphabet[((in[i + 1] & 0x0f) << 2) | (in[i + 2] >> 6)];
        *o++ = b64_alphabet[in[i + 2] & 0x3f];
    }
    if (len - i == 1) {
        *o++ = b64_alphabet[in[i] >> 2];
        *o++ = b64_alphabet[(in[i] & 0x03) << 4];
        *o++ = '=';
        *o++ = '=';
    }
    else if (len - i == 2) {
        *o++ = b64_alphabet[in[i] >> 2];
        *o++ = b64_alphabet[((in[i] & 0x03) << 4) | (in[i + 1] >> 4)];
        *o++ = b64_alphabet[(in[i + 1] & 0x0f) << 2];
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

/* Each octet's sextet (0-63), or B64_SPACE (XML whitespace, skipped),
 * B64_PAD ('='), B64_BAD. */
#define B64_SPACE 64
#define B64_PAD 65
#define B64_BAD 255
static const unsigned char b64_table[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 64, 64, 255,
    255, 64, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 64, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 62, 255, 255, 255, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 255, 255,
    255, 65, 255, 255, 255, 0, 1, 2, 3, 4, 5, 6,
    7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
    19, 20, 21, 22, 23, 24, 25, 255, 255, 255, 255, 255,
    255, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36,
    37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48,
    49, 50, 51, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255,
};

btsso_error_t *btsso_b64_decode(apr_pool_t *p, const char *s, apr_size_t len,
                                unsigned char **out, apr_size_t *out_len)
{
    unsigned char *buf = apr_palloc(p, (len / 4) * 3 + 4);
    apr_size_t n = 0, i;
    unsigned long acc = 0;
    int group = 0;      /* sextets collected in the current quantum */
    int padding = 0;    /* '=' seen: only '=' and whitespace may follow */
    const char *why = NULL;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned int v;

        /* The common case, a whole quantum of four data octets at the
         * start of a group, in one step. */
        if (group == 0 && padding == 0 && i + 4 <= len) {
            unsigned int a = b64_table[c],
                         b = b64_table[(unsigned char)s[i + 1]],
                         d = b64_table[(unsigned char)s[i + 2]],
                         e = b64_table[(unsigned char)s[i + 3]];

            if ((a | b | d | e) < 64) {
                unsigned long q = (unsigned long)a << 18 | b << 12
                                  | d << 6 | e;

                buf[n++] = (unsigned char)(q >> 16);
                buf[n++] = (unsigned char)(q >> 8);
                buf[n++] = (unsigned char)q;
                i += 3;
                continue;
            }
        }
        v = b64_table[c];
        if (v == B64_SPACE) {
            continue;
        }
        if (v == B64_PAD) {
            /* Padding completes a quantum of 2 or 3 sextets, never more. */
            if ((group < 2 && padding == 0) || group + padding + 1 > 4) {
                why = "too much '=' padding";
                goto bad;
            }
            padding++;
            continue;
        }
        if (padding != 0) {
            why = "data after '=' padding";
            goto bad;
        }
        if (v == B64_BAD) {
            why = apr_psprintf(p, "invalid character 0x%02x", c);
            goto bad;
        }
        acc = (acc << 6) | (unsigned long)v;
        group++;
        if (group == 4) {
            buf[n++] = (unsigned char)(acc >> 16);
            buf[n++] = (unsigned char)(acc >> 8);
            buf[n++] = (unsigned char)acc;
            acc = 0;
            group = 0;
        }
    }
    if ((padding != 0 && group + padding != 4) || group == 1) {
        why = "truncated: the last group is incomplete";
        goto bad;
    }
    if (group == 2) {
        buf[n++] = (unsigned char)(acc >> 4);
    }
    else if (group == 3) {
        buf[n++] = (unsigned char)(acc >> 10);
        buf[n++] = (unsigned char)(acc >> 2);
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return NULL;

bad:
    return btsso_error_make(p, 400, "bad_base64",
                            "The message is not valid base64.",
                            "%s at offset %" APR_SIZE_T_FMT, why, i);
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
        || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
        || c == '~';
}

const char *btsso_pct_encode(apr_pool_t *p, const void *data, apr_size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *in = data;
    char *out = apr_palloc(p, len * 3 + 1);
    char *o = out;
    apr_size_t i;

    for (i = 0; i < len; i++) {
        if (is_unreserved(in[i])) {
            *o++ = (char)in[i];
        }
        else {
            *o++ = '%';
            *o++ = hex[in[i] >> 4];
            *o++ = hex[in[i] & 0x0f];
        }
    }
    *o = '\0';
    return out;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

btsso_error_t *btsso_pct_decode(apr_pool_t *p, const char *s, apr_size_t len,
                                char **out, apr_size_t *out_len)
{
    char *buf = apr_palloc(p, len + 1);
    apr_size_t n = 0, i = 0;

    /* Run by run: what lies before the next '%' is copied at once, its
     * '+' made spaces (a SAMLResponse is some 10 KB of base64 with a %2B,
     * %2F or %3D every 30 octets or so; octet by octet, decoding it was a
     * twentieth of a login). */
    while (i < len) {
        const char *pct = memchr(s + i, '%', len - i);
        apr_size_t run = pct != NULL ? (apr_size_t)(pct - (s + i)) : len - i;
        char *o = buf + n, *plus = memchr(s + i, '+', run) != NULL ? o : NULL;
        int hi, lo;

        memcpy(o, s + i, run);
        while (plus != NULL
               && (plus = memchr(plus, '+', (apr_size_t)(o + run - plus)))
                  != NULL) {
            *plus++ = ' ';
        }
        n += run;
        i += run;
        if (i == len) {
            break;
        }
        /* s[i] is '%' */
        if (len - i < 3) {
            goto bad;
        }
        hi = hex_value((unsigned char)s[i + 1]);
        lo = hex_value((unsigned char)s[i + 2]);
        if (hi < 0 || lo < 0) {
            goto bad;
        }
        buf[n++] = (char)((hi << 4) | lo);
        i += 3;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return NULL;

bad:
    return btsso_error_make(p, 400, "bad_encoding",
                            "The request carries a malformed URL encoding.",
                            "'%%' not followed by two hex digits at offset %"
                            APR_SIZE_T_FMT, i);
}

btsso_error_t *btsso_deflate_raw(apr_pool_t *p, const void *in, apr_size_t len,
                                 unsigned char **out, apr_size_t *out_len)
{
    z_stream zs;
    unsigned char *buf;
    uLong bound;
    int rc;

    memset(&zs, 0, sizeof(zs));
    /* Negative window bits: raw DEFLATE, as SAML bindings 3.4.4.1 wants. */
    rc = deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8,
                      Z_DEFAULT_STRATEGY);
    if (rc != Z_OK) {
        return btsso_error_make(p, 500, "deflate_failed",
                                "Internal error while encoding a message.",
                                "deflateInit2: %d", rc);
    }
    bound = deflateBound(&zs, (uLong)len);
    buf = apr_palloc(p, bound + 1);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = buf;
    zs.avail_out = (uInt)bound;
    rc = deflate(&zs, Z_FINISH);
    *out_len = zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        return btsso_error_make(p, 500, "deflate_failed",
                                "Internal error while encoding a message.",
                                "deflate: %d", rc);
    }
    buf[*out_len] = '\0';
    *out = buf;
    return NULL;
}

btsso_error_t *btsso_inflate_raw(apr_pool_t *p, const void *in, apr_size_t len,
                                 apr_size_t max_out, unsigned max_ratio,
                                 unsigned char **out, apr_size_t *out_len)
{
    btsso_error_t *err = NULL;
    z_stream zs;
    unsigned char *buf;
    apr_size_t limit = max_out;
    int rc;

    if (len > UINT_MAX / 2 || max_out > UINT_MAX / 2) {
        return btsso_error_make(p, 413, "too_large",
                                "The message is too large.",
                                "%" APR_SIZE_T_FMT " compressed octets", len);
    }
    if (max_ratio > 0 && len < limit / max_ratio) {
        limit = len * max_ratio;
    }
    memset(&zs, 0, sizeof(zs));
    rc = inflateInit2(&zs, -MAX_WBITS);
    if (rc != Z_OK) {
        return btsso_error_make(p, 500, "inflate_failed",
                                "Internal error while decoding a message.",
                                "inflateInit2: %d", rc);
    }
    /* One octet more than the limit: filling it proves the bound exceeded
     * without ever holding more than limit + 1 octets. */
    buf = apr_palloc(p, limit + 2);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = buf;
    zs.avail_out = (uInt)(limit + 1);
    rc = inflate(&zs, Z_FINISH);
    if (zs.total_out > limit
        || (rc != Z_STREAM_END && zs.avail_out == 0
            && (rc == Z_BUF_ERROR || rc == Z_OK))) {
        /* The spare octet got filled, or output stopped for want of
         * room: more than limit octets would come out. */
        err = btsso_error_make(p, 413, "too_large",
                               "The message is too large.",
                               "inflated size exceeds %" APR_SIZE_T_FMT
                               " octets (from %" APR_SIZE_T_FMT
                               " compressed)", limit, len);
    }
    else if (rc == Z_STREAM_END) {
        if (zs.avail_in != 0) {
            err = btsso_error_make(p, 400, "inflate_failed",
                                   "The message is not validly compressed.",
                                   "%u octets of trailing garbage after the "
                                   "DEFLATE stream", zs.avail_in);
        }
        else {
            *out_len = zs.total_out;
            buf[*out_len] = '\0';
            *out = buf;
        }
    }
    else {
        err = btsso_error_make(p, 400, "inflate_failed",
                               "The message is not validly compressed.",
                               "inflate: %d (%s)", rc,
                               zs.msg != NULL ? zs.msg : "truncated stream");
    }
    inflateEnd(&zs);
    return err;
}

/* ---- base64url (RFC 4648 section 5), unpadded ---------------------------- */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *btsso_b64url_encode(apr_pool_t *p, const unsigned char *in,
                          apr_size_t len)
{
    char *out = apr_palloc(p, (len + 2) / 3 * 4 + 1);
    char *o = out;
    apr_size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *o++ = b64url_alphabet[in[i] >> 2];
        *o++ = b64url_alphabet[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *o++ = b64url_alphabet[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        *o++ = b64url_alphabet[in[i + 2] & 63];
    }
    if (len - i == 1) {
        *o++ = b64url_alphabet[in[i] >> 2];
        *o++ = b64url_alphabet[(in[i] & 3) << 4];
    }
    else if (len - i == 2) {
        *o++ = b64url_alphabet[in[i] >> 2];
        *o++ = b64url_alphabet[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *o++ = b64url_alphabet[(in[i + 1] & 15) << 2];
    }
    *o = '\0';
    return out;
}

static int b64url_value(char c)
{
    const char *at = c != '\0' ? strchr(b64url_alphabet, c) : NULL;

    return at != NULL ? (int)(at - b64url_alphabet) : -1;
}

/* Strict: unpadded, canonical (unused low bits zero).  NUL-terminated. */
int btsso_b64url_decode(apr_pool_t *p, const char *in, apr_size_t len,
                        unsigned char **out, apr_size_t *out_len)
{
    unsigned char *buf;
    apr_size_t i, n = 0;
    unsigned int acc = 0;
    int bits = 0;

    if (len % 4 == 1) {
        return 0;
    }
    buf = apr_palloc(p, len * 3 / 4 + 1);
    for (i = 0; i < len; i++) {
        int v = b64url_value(in[i]);

        if (v < 0) {
            return 0;
        }
        acc = (acc << 6) | (unsigned int)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) {
        return 0;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 1;
}
