/*
 * url.h - the one place that decides where mod_btsso may redirect a browser
 * and how its cookies are shaped (STYLE section 6).
 *
 * Every RelayState, return= parameter or other caller-influenced target goes
 * through btsso_url_is_safe_return() before it becomes a Location header;
 * every Set-Cookie value comes from btsso_cookie_header().  Open-redirect
 * payloads that must stay refused live in t/fixtures/open-redirect.txt.
 */
#ifndef BTSSO_URL_H
#define BTSSO_URL_H

#include <apr_pools.h>
#include "core/btsso_error.h"

/* Longest return target accepted, in octets. */
#define BTSSO_URL_MAX_RETURN 2048

/* A parsed BTSSOBaseURL. */
typedef struct btsso_base_url_t {
    const char *scheme;     /* "https" or "http", lowercase */
    const char *host;       /* lowercase; an IPv6 literal keeps its [] */
    int port;               /* explicit or the scheme's default */
    const char *origin;     /* "scheme://host[:port]", default port left out,
                               no trailing slash */
} btsso_base_url_t;

/*
 * Validate a BTSSOBaseURL value: scheme https or http, a host
 * (letters, digits, '.', '-', or a bracketed IPv6 literal), an optional port
 * 1-65535, and nothing after that but an optional single "/": no userinfo,
 * path, query or fragment.
 * Error: "bad_base_url" (500) with the reason in detail.
 */
btsso_error_t *btsso_base_url_parse(apr_pool_t *p, const char *value,
                                    btsso_base_url_t **out);

/*
 * Non-zero when candidate may be redirected to: a local absolute path
 * ("/x?y#z") or an absolute URL on exactly base_url's origin (same scheme,
 * host compared case-insensitively, same port with default ports
 * normalized).  Refused: empty, longer than BTSSO_URL_MAX_RETURN, any
 * control character, space or backslash (raw or percent-encoded), non-ASCII
 * octets, malformed percent-encoding, "//" or "/\" at the start (also when
 * percent-encoded, even twice), relative paths, other schemes, userinfo,
 * and anything when base_url itself does not parse.
 *
 * *normalized_out (may be NULL) receives the target to redirect to: a local
 * path unchanged, an absolute URL rewritten as base origin + path.
 */
int btsso_url_is_safe_return(apr_pool_t *p, const char *candidate,
                             const char *base_url,
                             const char **normalized_out);

/*
 * A Set-Cookie header value:
 *   name=value; Path=path[; Max-Age=N][; Secure]; HttpOnly[; SameSite=X]
 * max_age -1: a session cookie (no Max-Age); 0: deletes the cookie (also
 * sends an Expires date in 1970 for old browsers).  samesite is "Lax",
 * "Strict", "None" or NULL (attribute left out); "None" forces Secure, as
 * browsers drop SameSite=None cookies without it.  HttpOnly is always set.
 * NULL when an argument cannot be put in a cookie safely: name not an HTTP
 * token, value outside RFC 6265 cookie-octets, path not starting with '/'
 * or holding ';' or control characters, another samesite word, or
 * max_age < -1.
 */
const char *btsso_cookie_header(apr_pool_t *p, const char *name,
                                const char *value, const char *path,
                                long max_age, int secure,
                                const char *samesite);

/*
 * The value of cookie `name` in one Cookie request header: pairs split at
 * ';' and ',', blanks around a pair skipped, no unescaping.  Returns 1
 * (*value, *value_len point into header), 0 when absent, -1 when the
 * header names it twice with different values (*value unset): which one
 * a server or a proxy would pick is unknowable, so neither is used.  The
 * same cookie twice with one value counts once.  Called on each Cookie
 * header of a request with the previous answer in *value (NULL first).
 */
int btsso_cookie_find(const char *header, const char *name,
                      const char **value, apr_size_t *value_len);

#endif /* BTSSO_URL_H */
