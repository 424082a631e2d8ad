/*
 * fuzz_cookie.c - libFuzzer harness for btsso_cookie_header()
 * (core/url.c), the one place a Set-Cookie value is made.
 *
 * Why not the session-cookie reader: mod_btsso/httpd/session.c reads the
 * cookie with httpd's ap_cookie_read() on a request_rec and then only
 * checks that the value is 64 lowercase hex digits (strlen + strspn); there
 * is no pure parser of ours to fuzz there, and the glue stays out of the
 * core build.  What the core does own is the cookie writer, whose inputs
 * (the cookie name, path and SameSite from configuration, the value from
 * the session layer) must never let an attribute or a header be injected.
 *
 * Input: name, value, path and samesite separated by '\n' (samesite absent:
 * NULL).  Control block: opt[0] - 2 as the max-age (-1 without a block),
 * opt[1] bit 0 secure.
 * Checked on every header made: printable ASCII only (no CR/LF, no NUL),
 * it starts with name=value, the rest is only the attributes Path, Max-Age,
 * Expires, Secure, HttpOnly and SameSite, HttpOnly always there, Secure
 * whenever SameSite=None.
 */
#include "fuzz_common.h"

#include "core/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    fuzz_input_t in;
    char *field[4] = { NULL, NULL, NULL, NULL };
    char *s, *last;
    const char *hdr;
    long max_age;
    int secure, i, httponly = 0, has_secure = 0, none = 0;

    if (apr_pool_create(&p, fuzz_root_pool()) != APR_SUCCESS) {
        abort();
    }
    fuzz_split(p, data, size, &in);
    s = in.msg;
    for (i = 0; i < 4 && s != NULL; i++) {
        char *nl = strchr(s, '\n');

        field[i] = s;
        if (nl != NULL) {
            *nl = '\0';
            s = nl + 1;
        } else {
            s = NULL;
        }
    }
    /* 0x01 is -1 (a session cookie), 0x02 is 0 (delete): no NUL needed */
    max_age = in.opt_len > 0 ? (long)fuzz_opt(&in, 0) - 2 : -1;
    secure = (int)(fuzz_opt(&in, 1) & 1);
    hdr = btsso_cookie_header(p, field[0], field[1], field[2] ? field[2] : "",
                              max_age, secure, field[3]);
    if (hdr == NULL) {
        apr_pool_destroy(p);
        return 0;
    }
    for (s = (char *)hdr; *s != '\0'; s++) {
        FUZZ_CHECK((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f);
    }
    FUZZ_CHECK(strncmp(hdr, field[0], strlen(field[0])) == 0);
    FUZZ_CHECK(hdr[strlen(field[0])] == '=');
    FUZZ_CHECK(strncmp(hdr + strlen(field[0]) + 1, field[1],
                       strlen(field[1])) == 0);
    s = apr_pstrdup(p, hdr);
    (void)apr_strtok(s, ";", &last);           /* name=value */
    while ((s = apr_strtok(NULL, ";", &last)) != NULL) {
        FUZZ_CHECK(s[0] == ' ');
        s++;
        if (strcmp(s, "HttpOnly") == 0) {
            httponly++;
        } else if (strcmp(s, "Secure") == 0) {
            has_secure++;
        } else if (strcmp(s, "SameSite=None") == 0) {
            none = 1;
        } else {
            FUZZ_CHECK(strncmp(s, "Path=/", 6) == 0
                       || strncmp(s, "Max-Age=", 8) == 0
                       || strncmp(s, "Expires=", 8) == 0
                       || strcmp(s, "SameSite=Lax") == 0
                       || strcmp(s, "SameSite=Strict") == 0);
        }
    }
    FUZZ_CHECK(httponly == 1 && has_secure <= 1);
    FUZZ_CHECK(!none || has_secure == 1);
    FUZZ_CHECK(!secure || has_secure == 1);
    apr_pool_destroy(p);
    return 0;
}
