/*
 * fuzz_url.c - libFuzzer harness for the return-target check
 * btsso_url_is_safe_return() and btsso_base_url_parse() (core/url.c):
 * every RelayState and return= value goes through it before it becomes a
 * Location header, so a mistake is an open redirect.
 *
 * Input: the candidate target.  Control block (fuzz_common.h): opt[0]
 * picks one of four base URLs; when more bytes follow, they are the base
 * URL itself (fuzzing btsso_base_url_parse too).
 *
 * The oracle is what a browser does with the Location value (WHATWG URL):
 * it drops tab/CR/LF anywhere and C0 controls and spaces at both ends,
 * reads '\' as '/', so a target that then starts with "//" leaves the
 * site, and so does one with a scheme.  An accepted target must be a
 * local path that stays local after that, or an absolute URL beginning
 * with exactly the base origin and '/'; it must itself be accepted again
 * (idempotent), hold no octet outside printable ASCII and fit
 * BTSSO_URL_MAX_RETURN plus the origin.
 */
#include "fuzz_common.h"

#include "core/url.h"

static const char *const bases[4] = {
    "https://portal.example.test",
    "http://portal.example.test:8080/",
    "https://[::1]:8443",
    "https://PORTAL.Example.test:443/",
};

/* The browser's view of a local target: 1 when it stays on the site. */
static int browser_stays_local(apr_pool_t *p, const char *t)
{
    size_t n = strlen(t), i, j = 0;
    char *s = apr_palloc(p, n + 1);
    size_t start = 0, end = n;

    while (start < end && (unsigned char)t[start] <= 0x20) {
        start++;
    }
    while (end > start && (unsigned char)t[end - 1] <= 0x20) {
        end--;
    }
    for (i = start; i < end; i++) {
        char c = t[i];

        if (c == '\t' || c == '\n' || c == '\r') {
            continue;
        }
        s[j++] = c == '\\' ? '/' : c;
    }
    s[j] = '\0';
    if (s[0] != '/') {
        return 0;               /* relative or with a scheme */
    }
    return s[1] != '/';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    fuzz_input_t in;
    const char *base_url, *norm = NULL, *again = NULL;
    btsso_base_url_t *base = NULL;
    btsso_error_t *e;
    const char *s;

    if (apr_pool_create(&p, fuzz_root_pool()) != APR_SUCCESS) {
        abort();
    }
    fuzz_split(p, data, size, &in);
    if (in.opt_len > 1) {
        base_url = apr_pstrndup(p, (const char *)in.opt + 1, in.opt_len - 1);
    } else {
        base_url = bases[fuzz_opt(&in, 0) & 3];
    }
    e = btsso_base_url_parse(p, base_url, &base);
    if (e != NULL) {
        FUZZ_CHECK(strcmp(e->code, "bad_base_url") == 0);
        FUZZ_CHECK(!btsso_url_is_safe_return(p, in.msg, base_url, &norm));
        apr_pool_destroy(p);
        return 0;
    }
    FUZZ_CHECK(base->origin != NULL && base->host != NULL);
    FUZZ_CHECK(base->port >= 1 && base->port <= 65535);
    FUZZ_CHECK(strcmp(base->scheme, "https") == 0
               || strcmp(base->scheme, "http") == 0);
    /* the origin is scheme://host[:port] and nothing else */
    FUZZ_CHECK(strchr(base->origin + strlen(base->scheme) + 3, '/') == NULL);
    FUZZ_CHECK(strchr(base->origin, '@') == NULL);

    if (btsso_url_is_safe_return(p, in.msg, base_url, &norm)) {
        FUZZ_CHECK(norm != NULL);
        FUZZ_CHECK(strlen(norm) <= BTSSO_URL_MAX_RETURN
                                   + strlen(base->origin) + 1);
        for (s = norm; *s != '\0'; s++) {
            FUZZ_CHECK((unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f
                       && *s != '\\');
        }
        if (norm[0] == '/') {
            FUZZ_CHECK(browser_stays_local(p, norm));
        } else {
            size_t ol = strlen(base->origin);

            FUZZ_CHECK(strncmp(norm, base->origin, ol) == 0);
            FUZZ_CHECK(norm[ol] == '/');
            FUZZ_CHECK(browser_stays_local(p, norm + ol));
        }
        FUZZ_CHECK(btsso_url_is_safe_return(p, norm, base_url, &again));
        FUZZ_CHECK(strcmp(again, norm) == 0);
    }
    apr_pool_destroy(p);
    return 0;
}
