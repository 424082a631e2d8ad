/*
 * url.c - redirect targets, BTSSOBaseURL and Set-Cookie values.
 *
 * The return-target check is deliberately stricter than URL syntax: it
 * refuses whatever some browser might turn into another origin (tabs and
 * newlines browsers strip, backslashes they read as slashes, "//host"
 * they read as network paths, percent-encodings a later hop may decode),
 * rather than modelling each browser.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "core/url.h"

/* Rounds of percent-decoding a target is checked through: enough for the
 * double and triple encodings seen in open-redirect payload lists. */
#define DECODE_ROUNDS 4

static void lowercase_ascii(char *s)
{
    for (; *s != '\0'; s++) {
        *s = (char)apr_tolower(*s);
    }
}

static int is_host_char(char c)
{
    return apr_isalnum(c) || c == '.' || c == '-';
}

static int default_port(const char *scheme)
{
    return strcmp(scheme, "https") == 0 ? 443 : 80;
}

/*
 * Parse "host[:port]" from s up to end.  The host is returned lowercased.
 * -1 when the authority is anything else (userinfo, empty host, bad port).
 */
static int parse_authority(apr_pool_t *p, const char *s, const char *end,
                           const char *scheme, const char **host_out,
                           int *port_out)
{
    const char *host_end;
    char *host;
    int port;

    if (s == end) {
        return -1;
    }
    if (*s == '[') {
        host_end = s + 1;
        while (host_end < end && (apr_isxdigit(*host_end) || *host_end == ':'
                                  || *host_end == '.')) {
            host_end++;
        }
        if (host_end == end || *host_end != ']' || host_end == s + 1) {
            return -1;
        }
        host_end++;
    }
    else {
        host_end = s;
        while (host_end < end && is_host_char(*host_end)) {
            host_end++;
        }
        if (host_end == s) {
            return -1;
        }
    }
    if (host_end == end) {
        port = default_port(scheme);
    }
    else {
        const char *d = host_end + 1;

        if (*host_end != ':' || d == end || end - d > 5) {
            return -1;
        }
        port = 0;
        for (; d < end; d++) {
            if (!apr_isdigit(*d)) {
                return -1;
            }
            port = port * 10 + (*d - '0');
        }
        if (port < 1 || port > 65535) {
            return -1;
        }
    }
    host = apr_pstrmemdup(p, s, (apr_size_t)(host_end - s));
    lowercase_ascii(host);
    *host_out = host;
    *port_out = port;
    return 0;
}

static const char *make_origin(apr_pool_t *p, const char *scheme,
                               const char *host, int port)
{
    if (port == default_port(scheme)) {
        return apr_pstrcat(p, scheme, "://", host, NULL);
    }
    return apr_psprintf(p, "%s://%s:%d", scheme, host, port);
}

/* Length of "scheme:" at the start of s (letters, digits, + - . after a
 * letter), or 0 when s does not start with a scheme. */
static apr_size_t scheme_length(const char *s)
{
    apr_size_t i = 0;

    if (!apr_isalpha(s[0])) {
        return 0;
    }
    while (apr_isalnum(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.') {
        i++;
    }
    return s[i] == ':' ? i : 0;
}

btsso_error_t *btsso_base_url_parse(apr_pool_t *p, const char *value,
                                    btsso_base_url_t **out)
{
    btsso_base_url_t *base;
    apr_size_t scheme_len;
    const char *auth, *auth_end;
    char *scheme;

    if (value == NULL || *value == '\0') {
        return btsso_error_make(p, 500, "bad_base_url",
                                "The base URL is empty.", NULL);
    }
    scheme_len = scheme_length(value);
    if (scheme_len == 0 || strncmp(value + scheme_len, "://", 3) != 0) {
        return btsso_error_make(p, 500, "bad_base_url",
                                "The base URL must start with https:// or "
                                "http://.", "value '%s'", value);
    }
    scheme = apr_pstrmemdup(p, value, scheme_len);
    lowercase_ascii(scheme);
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        return btsso_error_make(p, 500, "bad_base_url",
                                "The base URL must start with https:// or "
                                "http://.", "scheme '%s'", scheme);
    }
    auth = value + scheme_len + 3;
    auth_end = auth + strcspn(auth, "/?#");
    base = apr_pcalloc(p, sizeof(*base));
    base->scheme = scheme;
    if (parse_authority(p, auth, auth_end, scheme, &base->host,
                        &base->port) != 0) {
        return btsso_error_make(p, 500, "bad_base_url",
                                "The base URL needs a host name and may "
                                "have a port, nothing else (no user name).",
                                "authority '%.*s'", (int)(auth_end - auth),
                                auth);
    }
    if (*auth_end != '\0' && strcmp(auth_end, "/") != 0) {
        return btsso_error_make(p, 500, "bad_base_url",
                                "The base URL may not have a path, query "
                                "or fragment.", "'%s' after the host",
                                auth_end);
    }
    base->origin = make_origin(p, scheme, base->host, base->port);
    *out = base;
    return NULL;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)apr_tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* One round of %XX decoding; a '%' without two hex digits stays literal
 * (callers check well-formedness of the raw input themselves). */
static char *pct_decode_once(apr_pool_t *p, const char *s, int *changed)
{
    char *out = apr_palloc(p, strlen(s) + 1);
    char *o = out;

    *changed = 0;
    while (*s != '\0') {
        if (s[0] == '%' && hex_digit(s[1]) >= 0 && hex_digit(s[2]) >= 0) {
            char c = (char)((hex_digit(s[1]) << 4) | hex_digit(s[2]));

            /* A decoded NUL would end the C string and hide what follows:
             * keep a control octet that the caller refuses instead. */
            *o++ = c == '\0' ? '\x01' : c;
            s += 3;
            *changed = 1;
        }
        else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

/* Checks on a local absolute path ("/x?y#z"), raw as received. */
static int is_safe_local_path(apr_pool_t *p, const char *path)
{
    const char *s;
    const char *decoded = path;
    int round;

    for (s = path; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c <= 0x20 || c >= 0x7f || c == '\\') {
            return 0;
        }
        if (c == '%' && (hex_digit(s[1]) < 0 || hex_digit(s[2]) < 0)) {
            return 0;
        }
    }
    for (round = 0; round <= DECODE_ROUNDS; round++) {
        int changed = 0;

        if (decoded[0] != '/' || decoded[1] == '/' || decoded[1] == '\\') {
            return 0;
        }
        for (s = decoded; *s != '\0'; s++) {
            unsigned char c = (unsigned char)*s;

            if (c < 0x20 || c == 0x7f) {
                return 0;
            }
        }
        if (round == DECODE_ROUNDS) {
            break;
        }
        decoded = pct_decode_once(p, decoded, &changed);
        if (!changed) {
            break;
        }
    }
    return 1;
}

int btsso_url_is_safe_return(apr_pool_t *p, const char *candidate,
                             const char *base_url,
                             const char **normalized_out)
{
    btsso_base_url_t *base;
    apr_size_t len, scheme_len;
    const char *auth, *auth_end, *host, *rest;
    char *scheme;
    int port;

    if (candidate == NULL || base_url == NULL) {
        return 0;
    }
    len = strlen(candidate);
    if (len == 0 || len > BTSSO_URL_MAX_RETURN) {
        return 0;
    }
    if (btsso_base_url_parse(p, base_url, &base) != NULL) {
        return 0;
    }
    if (candidate[0] == '/') {
        if (!is_safe_local_path(p, candidate)) {
            return 0;
        }
        if (normalized_out != NULL) {
            *normalized_out = candidate;
        }
        return 1;
    }

    scheme_len = scheme_length(candidate);
    if (scheme_len == 0 || strncmp(candidate + scheme_len, "://", 3) != 0) {
        return 0;
    }
    scheme = apr_pstrmemdup(p, candidate, scheme_len);
    lowercase_ascii(scheme);
    if (strcmp(scheme, base->scheme) != 0) {
        return 0;
    }
    auth = candidate + scheme_len + 3;
    auth_end = auth + strcspn(auth, "/?#\\");
    if (parse_authority(p, auth, auth_end, scheme, &host, &port) != 0) {
        return 0;
    }
    if (strcmp(host, base->host) != 0 || port != base->port) {
        return 0;
    }
    rest = auth_end;
    if (*rest != '/') {
        rest = apr_pstrcat(p, "/", rest, NULL);
    }
    if (!is_safe_local_path(p, rest)) {
        return 0;
    }
    if (normalized_out != NULL) {
        *normalized_out = apr_pstrcat(p, base->origin, rest, NULL);
    }
    return 1;
}

/* RFC 7230 tchar */
static int is_token_char(unsigned char c)
{
    return apr_isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* RFC 6265 cookie-octet */
static int is_cookie_octet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a)
        || (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

const char *btsso_cookie_header(apr_pool_t *p, const char *name,
                                const char *value, const char *path,
                                long max_age, int secure,
                                const char *samesite)
{
    const char *s;
    const char *age = "";

    if (name == NULL || *name == '\0' || value == NULL || path == NULL
        || path[0] != '/' || max_age < -1) {
        return NULL;
    }
    for (s = name; *s != '\0'; s++) {
        if (!is_token_char((unsigned char)*s)) {
            return NULL;
        }
    }
    for (s = value; *s != '\0'; s++) {
        if (!is_cookie_octet((unsigned char)*s)) {
            return NULL;
        }
    }
    for (s = path; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c < 0x20 || c >= 0x7f || c == ';') {
            return NULL;
        }
    }
    if (samesite != NULL) {
        if (strcmp(samesite, "None") == 0) {
            secure = 1;
        }
        else if (strcmp(samesite, "Lax") != 0
                 && strcmp(samesite, "Strict") != 0) {
            return NULL;
        }
    }
    if (max_age == 0) {
        age = "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT";
    }
    else if (max_age > 0) {
        age = apr_psprintf(p, "; Max-Age=%ld", max_age);
    }
    return apr_pstrcat(p, name, "=", value, "; Path=", path, age,
                       secure ? "; Secure" : "", "; HttpOnly",
                       samesite != NULL ? "; SameSite=" : "",
                       samesite != NULL ? samesite : "", NULL);
}

int btsso_cookie_find(const char *header, const char *name,
                      const char **value, apr_size_t *value_len)
{
    apr_size_t nlen = strlen(name);
    const char *c = header;
    int found = *value != NULL;

    while (c != NULL && *c != '\0') {
        const char *end = c + strcspn(c, ";,"), *v;
        apr_size_t vlen;

        while (c < end && (*c == ' ' || *c == '\t')) {
            c++;
        }
        if ((apr_size_t)(end - c) > nlen && strncmp(c, name, nlen) == 0
            && c[nlen] == '=') {
            v = c + nlen + 1;
            vlen = (apr_size_t)(end - v);
            while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t')) {
                vlen--;
            }
            if (found && (vlen != *value_len
                          || strncmp(v, *value, vlen) != 0)) {
                return -1;
            }
            *value = v;
            *value_len = vlen;
            found = 1;
        }
        c = *end != '\0' ? end + 1 : NULL;
    }
    return found;
}
