/*
 * multipart.c - bounded multipart/form-data splitting (RFC 7578, RFC 2046).
 *
 * Pure: no I/O, no logging.  The body is never copied; parts point into it.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "core/multipart.h"

static btsso_error_t *bad(apr_pool_t *p, const char *why)
{
    return btsso_error_make(p, 400, "bad_multipart",
                            "The upload could not be read as a form.",
                            "%s", why);
}

/* First occurrence of needle in hay (binary-safe), or NULL. */
static const char *find_bytes(const char *hay, apr_size_t hay_len,
                              const char *needle, apr_size_t needle_len)
{
    const char *end, *at;

    if (needle_len == 0 || hay_len < needle_len) {
        return NULL;
    }
    end = hay + (hay_len - needle_len) + 1;
    at = hay;
    while (at < end) {
        at = memchr(at, needle[0], (apr_size_t)(end - at));
        if (at == NULL) {
            return NULL;
        }
        if (memcmp(at, needle, needle_len) == 0) {
            return at;
        }
        at++;
    }
    return NULL;
}

static int is_bchar(char c)
{
    return apr_isalnum(c) || strchr("'()+_,-./:=? ", c) != NULL;
}

/*
 * Value of parameter `want` in a header value's parameter list
 * ("type; a=b; c=\"d\"").  Returns NULL when absent; *malformed is set
 * for an unterminated quoted string.  Parameter names compare
 * case-insensitively; a quoted value may contain ';' and backslash escapes.
 */
static const char *param_value(apr_pool_t *p, const char *header,
                               const char *want, int *malformed)
{
    const char *s = strchr(header, ';');
    apr_size_t want_len = strlen(want);

    *malformed = 0;
    while (s != NULL && *s == ';') {
        const char *name;
        apr_size_t name_len;
        char *value;
        apr_size_t vlen = 0;

        s++;
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        name = s;
        while (*s != '\0' && *s != '=' && *s != ';') {
            s++;
        }
        name_len = (apr_size_t)(s - name);
        while (name_len > 0 && (name[name_len - 1] == ' '
                                || name[name_len - 1] == '\t')) {
            name_len--;
        }
        if (*s != '=') {
            continue;           /* a bare word: not a parameter we use */
        }
        s++;
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        value = apr_palloc(p, strlen(s) + 1);
        if (*s == '"') {
            s++;
            while (*s != '\0' && *s != '"') {
                if (*s == '\\' && s[1] != '\0') {
                    s++;
                }
                value[vlen++] = *s++;
            }
            if (*s != '"') {
                *malformed = 1;
                return NULL;
            }
            s++;
            while (*s != '\0' && *s != ';') {
                s++;
            }
        }
        else {
            while (*s != '\0' && *s != ';') {
                value[vlen++] = *s++;
            }
            while (vlen > 0 && (value[vlen - 1] == ' '
                                || value[vlen - 1] == '\t')) {
                vlen--;
            }
        }
        value[vlen] = '\0';
        if (name_len == want_len && strncasecmp(name, want, want_len) == 0) {
            return value;
        }
    }
    return NULL;
}

/* Non-zero when the header value's type (before any ';') is `type`. */
static int type_is(const char *header, const char *type)
{
    apr_size_t n = strlen(type);

    while (*header == ' ' || *header == '\t') {
        header++;
    }
    if (strncasecmp(header, type, n) != 0) {
        return 0;
    }
    header += n;
    while (*header == ' ' || *header == '\t') {
        header++;
    }
    return *header == '\0' || *header == ';';
}

btsso_error_t *btsso_multipart_boundary(apr_pool_t *p,
                                        const char *content_type,
                                        const char **boundary)
{
    const char *b;
    apr_size_t i, n;
    int malformed;

    if (content_type == NULL || !type_is(content_type, "multipart/form-data")) {
        return btsso_error_make(p, 415, "not_multipart",
                                "Send the file as a multipart form.",
                                "Content-Type is %s",
                                content_type ? content_type : "absent");
    }
    b = param_value(p, content_type, "boundary", &malformed);
    if (b == NULL) {
        return bad(p, malformed ? "unterminated quoted boundary"
                                : "no boundary parameter");
    }
    n = strlen(b);
    if (n == 0 || n > BTSSO_MP_MAX_BOUNDARY || b[n - 1] == ' ') {
        return bad(p, "boundary must be 1-70 characters, not ending in a "
                      "space");
    }
    for (i = 0; i < n; i++) {
        if (!is_bchar(b[i])) {
            return bad(p, "boundary holds a character RFC 2046 does not "
                          "allow");
        }
    }
    *boundary = b;
    return NULL;
}

/*
 * After a delimiter: "--" closes the body (*closed = 1); otherwise optional
 * linear white space and CRLF.  Returns the position after them or NULL.
 */
static const char *after_delimiter(const char *at, const char *end,
                                   int *closed)
{
    *closed = 0;
    if (end - at >= 2 && at[0] == '-' && at[1] == '-') {
        *closed = 1;
        return at + 2;
    }
    while (at < end && (*at == ' ' || *at == '\t')) {
        at++;
    }
    if (end - at >= 2 && at[0] == '\r' && at[1] == '\n') {
        return at + 2;
    }
    return NULL;
}

/* Parse the header block [start, end) (lines separated by CRLF). */
static btsso_error_t *part_headers(apr_pool_t *p, const char *start,
                                   apr_size_t len, btsso_mp_part_t *part)
{
    char *block = apr_pstrmemdup(p, start, len);
    char *line, *next;
    const char *disposition = NULL;
    int malformed;

    if (memchr(start, '\0', len) != NULL) {
        return bad(p, "NUL byte in part headers");
    }
    for (line = block; line != NULL && *line != '\0'; line = next) {
        char *colon;
        char *value;

        next = strstr(line, "\r\n");
        if (next != NULL) {
            *next = '\0';
            next += 2;
        }
        if (*line == ' ' || *line == '\t') {
            return bad(p, "folded part header");
        }
        colon = strchr(line, ':');
        if (colon == NULL) {
            return bad(p, "part header line without a colon");
        }
        *colon = '\0';
        value = colon + 1;
        while (*value == ' ' || *value == '\t') {
            value++;
        }
        if (strcasecmp(line, "Content-Disposition") == 0) {
            disposition = value;
        }
        else if (strcasecmp(line, "Content-Type") == 0) {
            part->content_type = value;
        }
    }
    if (disposition == NULL || !type_is(disposition, "form-data")) {
        return bad(p, "part without Content-Disposition: form-data");
    }
    part->name = param_value(p, disposition, "name", &malformed);
    if (part->name == NULL) {
        return bad(p, malformed ? "unterminated quoted string in "
                                  "Content-Disposition"
                                : "part without a name");
    }
    part->filename = param_value(p, disposition, "filename", &malformed);
    if (malformed) {
        return bad(p, "unterminated quoted filename");
    }
    return NULL;
}

btsso_error_t *btsso_multipart_parse(apr_pool_t *p, const char *body,
                                     apr_size_t len, const char *boundary,
                                     apr_array_header_t **parts)
{
    const char *end = body + len;
    const char *dash_boundary = apr_pstrcat(p, "--", boundary, NULL);
    const char *delimiter = apr_pstrcat(p, "\r\n--", boundary, NULL);
    apr_size_t dash_len = strlen(dash_boundary);
    apr_size_t delim_len = dash_len + 2;
    apr_array_header_t *out;
    const char *at;
    int closed;

    if (len >= dash_len && memcmp(body, dash_boundary, dash_len) == 0) {
        at = body + dash_len;
    }
    else {
        at = find_bytes(body, len, delimiter, delim_len);
        if (at == NULL) {
            return bad(p, "no opening boundary delimiter");
        }
        at += delim_len;
    }
    out = apr_array_make(p, 2, sizeof(btsso_mp_part_t));
    for (;;) {
        const char *headers_end, *next;
        btsso_mp_part_t *part;
        btsso_error_t *err;
        apr_size_t window;

        at = after_delimiter(at, end, &closed);
        if (at == NULL) {
            return bad(p, "boundary delimiter not followed by CRLF or '--'");
        }
        if (closed) {
            break;
        }
        if (out->nelts >= BTSSO_MP_MAX_PARTS) {
            return bad(p, apr_psprintf(p, "more than %d parts",
                                       BTSSO_MP_MAX_PARTS));
        }
        part = apr_array_push(out);
        memset(part, 0, sizeof(*part));
        if (end - at >= 2 && at[0] == '\r' && at[1] == '\n') {
            headers_end = at;           /* no headers at all */
        }
        else {
            window = (apr_size_t)(end - at);
            if (window > BTSSO_MP_MAX_HEADER + 4) {
                window = BTSSO_MP_MAX_HEADER + 4;
            }
            headers_end = find_bytes(at, window, "\r\n\r\n", 4);
            if (headers_end == NULL) {
                return bad(p, window > BTSSO_MP_MAX_HEADER
                              ? "part headers too long"
                              : "part headers not terminated");
            }
            if ((err = part_headers(p, at, (apr_size_t)(headers_end - at),
                                    part)) != NULL) {
                return err;
            }
            headers_end += 2;
        }
        if (part->name == NULL) {
            return bad(p, "part without Content-Disposition: form-data");
        }
        at = headers_end + 2;
        next = find_bytes(at, (apr_size_t)(end - at), delimiter, delim_len);
        if (next == NULL) {
            return bad(p, "no closing boundary delimiter (truncated body?)");
        }
        part->data = at;
        part->len = (apr_size_t)(next - at);
        at = next + delim_len;
    }
    *parts = out;
    return NULL;
}

const btsso_mp_part_t *btsso_multipart_find(const apr_array_header_t *parts,
                                            const char *name)
{
    int i;

    for (i = 0; i < parts->nelts; i++) {
        const btsso_mp_part_t *part = &APR_ARRAY_IDX(parts, i,
                                                     btsso_mp_part_t);
        if (strcmp(part->name, name) == 0) {
            return part;
        }
    }
    return NULL;
}
