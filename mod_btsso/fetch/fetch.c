/*
 * fetch.c - the metadata URL fetcher (libcurl), with its SSRF policy.
 *
 * The address check lives in curl's open-socket callback: it judges the
 * very sockaddr curl is about to connect() to, after curl's own resolving
 * and URL parsing.  Checking a separate getaddrinfo() answer instead would
 * let a DNS server answer "public" first and "127.0.0.1" second.
 *
 * Redirects are followed here, not by curl, so that each hop gets the same
 * scheme check and an error that says which hop was refused.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <curl/curl.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "fetch.h"

/* Longest URL accepted, from the administrator or a Location header. */
#define FETCH_URL_MAX 8192
/* Buffer to start with when the length is unknown. */
#define FETCH_INITIAL_BUFFER (16 * 1024)

static int curl_ready;

typedef struct {
    apr_pool_t *p;
    CURL *curl;
    const btsso_cidr_list_t *allow;
    apr_size_t max_size;

    /* per hop */
    const char *refused_detail;  /* first address refused by policy */
    int sockets_opened;          /* addresses that passed the policy */
    int status_is_final_2xx;     /* headers of a 2xx response were seen */
    int stopped_for_status;      /* we aborted a non-2xx response */
    int too_large;
    curl_off_t declared_length;  /* Content-Length, -1 when absent */
    const char *location;        /* Location of the final response block */

    char *body;                  /* malloc'ed, freed at the exit label */
    apr_size_t body_len;
    apr_size_t body_cap;
    char errbuf[CURL_ERROR_SIZE];
} fetch_ctx_t;

static apr_status_t curl_global_done(void *unused)
{
    (void)unused;
    curl_global_cleanup();
    curl_ready = 0;
    return APR_SUCCESS;
}

btsso_error_t *btsso_fetch_global_init(apr_pool_t *p)
{
    CURLcode rc;

    if (curl_ready) {
        return NULL;
    }
    rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        return btsso_error_make(p, 500, "fetch_init_failed",
                                "The URL fetcher could not be initialised.",
                                "curl_global_init: %s",
                                curl_easy_strerror(rc));
    }
    curl_ready = 1;
    apr_pool_cleanup_register(p, NULL, curl_global_done,
                              apr_pool_cleanup_null);
    return NULL;
}

void btsso_fetch_opts_default(btsso_fetch_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->max_size = BTSSO_FETCH_DEFAULT_MAX_SIZE;
    o->timeout_sec = BTSSO_FETCH_DEFAULT_TIMEOUT_SEC;
    o->allow_http = 0;
    o->allow = NULL;
    o->ca_file = NULL;
    o->max_redirects = BTSSO_FETCH_DEFAULT_MAX_REDIRECTS;
}

static btsso_error_t *not_allowed(apr_pool_t *p, const char *detail)
{
    return btsso_error_make(p, 400, "url_not_allowed",
                            "This URL may not be fetched.", "%s", detail);
}

/* The fetch ran out of BTSSOMetadataFetchTimeout: said so to the
 * administrator (an IdP server that accepts and never answers, or
 * answers a byte at a time, looks otherwise like any other failure). */
static btsso_error_t *fetch_timed_out(apr_pool_t *p, int seconds,
                                      const char *detail)
{
    return btsso_error_make(p, 502, "fetch_failed",
                            apr_psprintf(p, "The server of the URL did not "
                                         "answer within %d s; nothing was "
                                         "changed.", seconds),
                            "%s", detail);
}

static btsso_error_t *fetch_failed(apr_pool_t *p, const char *detail)
{
    return btsso_error_make(p, 502, "fetch_failed",
                            "The metadata could not be fetched from the URL.",
                            "%s", detail);
}

/* Parse url with curl's own parser (what it will fetch is what we check),
 * refuse schemes other than https (and http when allowed), and hand back
 * the normalised URL plus a copy without password for messages.
 * from_scheme is the scheme of the URL that redirected here, or NULL. */
static btsso_error_t *check_url(apr_pool_t *p, const char *url,
                                int allow_http, const char *from_scheme,
                                const char **normalised,
                                const char **scheme_out,
                                const char **shown)
{
    btsso_error_t *err = NULL;
    CURLU *u = NULL;
    CURLUcode uc;
    char *scheme = NULL;
    char *full = NULL;
    char *redacted = NULL;
    int is_https;
    int is_http;

    if (url == NULL || *url == '\0') {
        return btsso_error_make(p, 400, "bad_url", "The URL is not valid.",
                                "empty URL");
    }
    if (strlen(url) > FETCH_URL_MAX) {
        return btsso_error_make(p, 400, "bad_url", "The URL is not valid.",
                                "URL longer than %d characters",
                                FETCH_URL_MAX);
    }
    u = curl_url();
    if (u == NULL) {
        return btsso_error_make(p, 500, "fetch_init_failed",
                                "The URL fetcher could not be initialised.",
                                "curl_url: out of memory");
    }
    /* Accept any scheme at parse time so that a refused one is reported
     * as refused, not as unparsable. */
    uc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        err = btsso_error_make(p, 400, "bad_url", "The URL is not valid.",
                               "%s", curl_url_strerror(uc));
        goto done;
    }
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        err = btsso_error_make(p, 400, "bad_url", "The URL is not valid.",
                               "no scheme");
        goto done;
    }
    is_https = strcasecmp(scheme, "https") == 0;
    is_http = strcasecmp(scheme, "http") == 0;
    if (!is_https && !(is_http && allow_http)) {
        const char *why = apr_psprintf(p,
            "scheme %s is not allowed: https only%s", scheme,
            is_http ? "; http needs BTSSOMetadataFetchHTTP On" : "");
        if (from_scheme != NULL) {
            err = not_allowed(p, apr_psprintf(p,
                "redirect from %s to %s refused: %s",
                from_scheme, scheme, why));
        }
        else {
            err = not_allowed(p, why);
        }
        goto done;
    }
    if (curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK) {
        err = btsso_error_make(p, 400, "bad_url", "The URL is not valid.",
                               "cannot be normalised");
        goto done;
    }
    *normalised = apr_pstrdup(p, full);
    *scheme_out = is_https ? "https" : "http";
    /* Messages name the URL, but never a password in it. */
    if (curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_URL, &redacted, 0) == CURLUE_OK) {
        *shown = apr_pstrdup(p, redacted);
    }
    else {
        *shown = "(URL)";
    }

done:
    curl_free(redacted);
    curl_free(full);
    curl_free(scheme);
    curl_url_cleanup(u);
    return err;
}

/* curl asks us for every socket it wants to connect with; address is the
 * exact destination.  Refusing here means nothing is ever sent there. */
static curl_socket_t open_checked_socket(void *clientp, curlsocktype purpose,
                                         struct curl_sockaddr *address)
{
    fetch_ctx_t *ctx = clientp;
    const struct sockaddr *sa = &address->addr;
    const char *why;
    curl_socket_t s;

    if (purpose != CURLSOCKTYPE_IPCXN
        || (address->family != AF_INET && address->family != AF_INET6)
        || (address->family == AF_INET
            && address->addrlen < sizeof(struct sockaddr_in))
        || (address->family == AF_INET6
            && address->addrlen < sizeof(struct sockaddr_in6))) {
        if (ctx->refused_detail == NULL) {
            ctx->refused_detail = apr_psprintf(ctx->p,
                "socket of family %d refused: only IPv4/IPv6 connections",
                address->family);
        }
        return CURL_SOCKET_BAD;
    }
    why = btsso_ip_refusal_reason(sa);
    if (why != NULL && !btsso_cidr_list_match(ctx->allow, sa)) {
        if (ctx->refused_detail == NULL) {
            ctx->refused_detail = apr_psprintf(ctx->p,
                "address %s is %s; add it to BTSSOMetadataFetchAllow "
                "to allow", btsso_ip_text(ctx->p, sa), why);
        }
        return CURL_SOCKET_BAD;
    }
    s = socket(address->family, address->socktype | SOCK_CLOEXEC,
               address->protocol);
    if (s != CURL_SOCKET_BAD) {
        ctx->sockets_opened++;
    }
    return s;
}

/* Keep the Location header ourselves: curl only computes its redirect
 * target for a transfer that completes, and a redirect body is never read
 * here.  Longer values than a URL may be are cut, then refused as URLs. */
static void remember_location(fetch_ctx_t *ctx, const char *data, size_t n)
{
    static const char name[] = "location:";
    size_t start = sizeof(name) - 1;
    size_t end = n;

    if (n < start || strncasecmp(data, name, start) != 0
        || ctx->location != NULL) {
        return;
    }
    while (start < end && (data[start] == ' ' || data[start] == '\t')) {
        start++;
    }
    while (end > start && (data[end - 1] == '\r' || data[end - 1] == '\n'
                           || data[end - 1] == ' ' || data[end - 1] == '\t')) {
        end--;
    }
    if (end - start > FETCH_URL_MAX + 1) {
        end = start + FETCH_URL_MAX + 1;
    }
    ctx->location = apr_pstrndup(ctx->p, data + start, end - start);
}

/* At the end of each header block decide whether the body is wanted:
 * only a 2xx body is, and only when its declared length fits. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    fetch_ctx_t *ctx = userdata;
    size_t n = size * nmemb;
    long code = 0;

    if (n > 2 || (n > 0 && data[0] != '\r' && data[0] != '\n')) {
        remember_location(ctx, data, n);
        return n;
    }
    curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 100 && code < 200) {
        ctx->location = NULL;   /* interim response; the real one follows */
        return n;
    }
    if (code < 200 || code > 299) {
        /* Redirect target and status are known now; the body of an error
         * or redirect response is not needed, so it is not read. */
        ctx->stopped_for_status = 1;
        return 0;
    }
    ctx->status_is_final_2xx = 1;
    curl_easy_getinfo(ctx->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                      &ctx->declared_length);
    if (ctx->declared_length >= 0
        && (curl_off_t)ctx->max_size < ctx->declared_length) {
        ctx->too_large = 1;
        return 0;
    }
    return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    fetch_ctx_t *ctx = userdata;
    size_t n = size * nmemb;

    if (!ctx->status_is_final_2xx) {
        ctx->stopped_for_status = 1;
        return 0;
    }
    if (n > ctx->max_size - ctx->body_len) {
        ctx->too_large = 1;
        return 0;
    }
    if (ctx->body_len + n > ctx->body_cap) {
        apr_size_t cap = ctx->body_cap != 0 ? ctx->body_cap : FETCH_INITIAL_BUFFER;
        char *grown;
        if (ctx->body_cap == 0 && ctx->declared_length > 0) {
            cap = (apr_size_t)ctx->declared_length;
        }
        while (cap < ctx->body_len + n) {
            cap = cap > ctx->max_size / 2 ? ctx->max_size : cap * 2;
        }
        grown = realloc(ctx->body, cap);
        if (grown == NULL) {
            return 0;           /* CURLE_WRITE_ERROR, reported as failed */
        }
        ctx->body = grown;
        ctx->body_cap = cap;
    }
    memcpy(ctx->body + ctx->body_len, data, n);
    ctx->body_len += n;
    return n;
}

/* Resolve a (possibly relative) Location against the URL that sent it,
 * the way a browser or curl's own redirect code would. */
static const char *resolve_location(apr_pool_t *p, const char *base,
                                    const char *location)
{
    CURLU *u = curl_url();
    char *resolved = NULL;
    const char *out = NULL;

    if (u == NULL) {
        return NULL;
    }
    if (curl_url_set(u, CURLUPART_URL, base, CURLU_NON_SUPPORT_SCHEME)
            == CURLUE_OK
        && curl_url_set(u, CURLUPART_URL, location, CURLU_NON_SUPPORT_SCHEME)
            == CURLUE_OK
        && curl_url_get(u, CURLUPART_URL, &resolved, 0) == CURLUE_OK) {
        out = apr_pstrdup(p, resolved);
    }
    curl_free(resolved);
    curl_url_cleanup(u);
    return out;
}

static int is_followed_redirect(long code)
{
    return code == 301 || code == 302 || code == 303 || code == 307
        || code == 308;
}

static btsso_error_t *setup_handle(apr_pool_t *p, fetch_ctx_t *ctx,
                                   const btsso_fetch_opts_t *o,
                                   struct curl_slist *headers)
{
    CURL *c = ctx->curl;
    const char *protocols = o->allow_http ? "http,https" : "https";
    CURLcode rc = CURLE_OK;

    /* Stop at the first option curl refuses; report that one. */
#define SET(opt, val) \
    do { \
        if (rc == CURLE_OK) { \
            rc = curl_easy_setopt(c, opt, val); \
        } \
    } while (0)
    SET(CURLOPT_PROTOCOLS_STR, protocols);
    SET(CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    /* A proxy from the environment would make the open-socket check see
     * the proxy's address instead of the destination. */
    SET(CURLOPT_PROXY, "");
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_checked_socket);
    SET(CURLOPT_OPENSOCKETDATA, ctx);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, ctx);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, ctx);
    SET(CURLOPT_ERRORBUFFER, ctx->errbuf);
    SET(CURLOPT_HTTPGET, 1L);
    SET(CURLOPT_HTTPHEADER, headers);
    SET(CURLOPT_USERAGENT, "mod_btsso metadata fetcher");
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (o->ca_file != NULL) {
        SET(CURLOPT_CAINFO, o->ca_file);
    }
#undef SET
    if (rc != CURLE_OK) {
        return btsso_error_make(p, 500, "fetch_init_failed",
                                "The URL fetcher could not be initialised.",
                                "curl_easy_setopt: %s",
                                curl_easy_strerror(rc));
    }
    return NULL;
}

btsso_error_t *btsso_fetch_url(apr_pool_t *p, const char *url,
                               const btsso_fetch_opts_t *o,
                               char **body, apr_size_t *len,
                               const char **final_url)
{
    btsso_fetch_opts_t defaults;
    btsso_fetch_opts_t opts;
    btsso_error_t *err = NULL;
    fetch_ctx_t *ctx;
    struct curl_slist *headers = NULL;
    const char *current;
    const char *scheme;
    const char *shown;
    apr_time_t deadline;
    int redirects = 0;

    btsso_fetch_opts_default(&defaults);
    opts = o != NULL ? *o : defaults;
    if (opts.max_size == 0) {
        opts.max_size = defaults.max_size;
    }
    if (opts.timeout_sec <= 0) {
        opts.timeout_sec = defaults.timeout_sec;
    }
    if (opts.max_redirects < 0) {
        opts.max_redirects = defaults.max_redirects;
    }

    err = check_url(p, url, opts.allow_http, NULL, &current, &scheme, &shown);
    if (err != NULL) {
        return err;
    }
    if (!curl_ready) {
        return btsso_error_make(p, 500, "fetch_init_failed",
                                "The URL fetcher could not be initialised.",
                                "btsso_fetch_global_init was not called");
    }

    ctx = apr_pcalloc(p, sizeof(*ctx));
    ctx->p = p;
    ctx->allow = opts.allow;
    ctx->max_size = opts.max_size;
    ctx->curl = curl_easy_init();
    if (ctx->curl == NULL) {
        return btsso_error_make(p, 500, "fetch_init_failed",
                                "The URL fetcher could not be initialised.",
                                "curl_easy_init failed");
    }
    headers = curl_slist_append(NULL, "Accept: application/samlmetadata+xml, "
                                "application/xml;q=0.9, text/xml;q=0.8, "
                                "*/*;q=0.1");
    if (headers == NULL) {
        err = btsso_error_make(p, 500, "fetch_init_failed",
                               "The URL fetcher could not be initialised.",
                               "curl_slist_append: out of memory");
        goto done;
    }
    err = setup_handle(p, ctx, &opts, headers);
    if (err != NULL) {
        goto done;
    }

    deadline = apr_time_now() + apr_time_from_sec(opts.timeout_sec);
    for (;;) {
        apr_interval_time_t left = deadline - apr_time_now();
        long left_ms = (long)apr_time_as_msec(left);
        long code = 0;
        const char *location;
        const char *next;
        const char *next_scheme;
        const char *next_shown;
        CURLcode rc;

        if (left_ms <= 0) {
            err = fetch_timed_out(p, opts.timeout_sec, apr_psprintf(p,
                "timed out after %d s (limit BTSSOMetadataFetchTimeout) "
                "before fetching %s", opts.timeout_sec, shown));
            goto done;
        }
        ctx->refused_detail = NULL;
        ctx->sockets_opened = 0;
        ctx->status_is_final_2xx = 0;
        ctx->stopped_for_status = 0;
        ctx->too_large = 0;
        ctx->declared_length = -1;
        ctx->location = NULL;
        ctx->body_len = 0;
        ctx->errbuf[0] = '\0';
        if (curl_easy_setopt(ctx->curl, CURLOPT_URL, current) != CURLE_OK
            || curl_easy_setopt(ctx->curl, CURLOPT_TIMEOUT_MS, left_ms)
               != CURLE_OK
            || curl_easy_setopt(ctx->curl, CURLOPT_CONNECTTIMEOUT_MS, left_ms)
               != CURLE_OK) {
            err = btsso_error_make(p, 500, "fetch_init_failed",
                                   "The URL fetcher could not be initialised.",
                                   "curl_easy_setopt failed for %s", shown);
            goto done;
        }

        rc = curl_easy_perform(ctx->curl);
        curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &code);

        if (rc != CURLE_OK && ctx->refused_detail != NULL
            && ctx->sockets_opened == 0) {
            err = not_allowed(p, ctx->refused_detail);
            goto done;
        }
        if (ctx->too_large) {
            if (ctx->declared_length > (curl_off_t)opts.max_size) {
                err = btsso_error_make(p, 413, "too_large",
                    "The metadata is larger than allowed.",
                    "%s declares Content-Length %" CURL_FORMAT_CURL_OFF_T
                    " bytes, more than the limit of %" APR_SIZE_T_FMT
                    " (BTSSOMetadataMaxSize)", shown, ctx->declared_length,
                    opts.max_size);
            }
            else {
                err = btsso_error_make(p, 413, "too_large",
                    "The metadata is larger than allowed.",
                    "body of %s exceeds the limit of %" APR_SIZE_T_FMT
                    " bytes (BTSSOMetadataMaxSize)", shown, opts.max_size);
            }
            goto done;
        }
        if (rc != CURLE_OK && !ctx->stopped_for_status) {
            const char *why = ctx->errbuf[0] != '\0'
                ? ctx->errbuf : curl_easy_strerror(rc);
            if (rc == CURLE_OPERATION_TIMEDOUT) {
                err = fetch_timed_out(p, opts.timeout_sec, apr_psprintf(p,
                    "timed out after %d s (limit BTSSOMetadataFetchTimeout) "
                    "fetching %s: %s", opts.timeout_sec, shown, why));
            }
            else {
                err = fetch_failed(p, apr_psprintf(p, "fetching %s: %s",
                                                   shown, why));
            }
            goto done;
        }
        if (code >= 200 && code <= 299) {
            break;
        }
        if (!is_followed_redirect(code)) {
            err = fetch_failed(p, apr_psprintf(p,
                "%s answered HTTP status %ld", shown, code));
            goto done;
        }
        if (ctx->location == NULL || *ctx->location == '\0') {
            err = fetch_failed(p, apr_psprintf(p,
                "%s answered HTTP status %ld without a Location", shown,
                code));
            goto done;
        }
        location = resolve_location(p, current, ctx->location);
        if (location == NULL) {
            err = fetch_failed(p, apr_psprintf(p,
                "%s answered HTTP status %ld with an invalid Location",
                shown, code));
            goto done;
        }
        if (redirects >= opts.max_redirects) {
            err = fetch_failed(p, apr_psprintf(p,
                "too many redirects: more than %d, the last from %s",
                opts.max_redirects, shown));
            goto done;
        }
        err = check_url(p, location, opts.allow_http, scheme, &next,
                        &next_scheme, &next_shown);
        if (err != NULL) {
            if (err->detail != NULL) {
                err->detail = apr_psprintf(p, "%s (redirected from %s)",
                                           err->detail, shown);
            }
            goto done;
        }
        redirects++;
        current = next;
        scheme = next_scheme;
        shown = next_shown;
    }

    *body = apr_palloc(p, ctx->body_len + 1);
    if (ctx->body_len > 0) {
        memcpy(*body, ctx->body, ctx->body_len);
    }
    (*body)[ctx->body_len] = '\0';
    *len = ctx->body_len;
    if (final_url != NULL) {
        *final_url = current;
    }

done:
    curl_easy_cleanup(ctx->curl);
    curl_slist_free_all(headers);
    free(ctx->body);
    return err;
}
