/*
 * fetch.h - fetch IdP metadata from a URL, under a policy that keeps the
 * server from being turned against its own network (SSRF).
 *
 * Policy (SPEC "Fetching metadata from a URL"):
 *  - https only; http only with allow_http (BTSSOMetadataFetchHTTP On).
 *    Any other scheme (file:, ftp:, gopher:, dict:, ...) is refused before
 *    anything is sent, and curl itself is limited to the same protocols.
 *  - No connection to a loopback, private, link-local, CGNAT, multicast,
 *    broadcast, reserved or cloud-metadata address (or any IPv6 form
 *    embedding one, such as ::ffff:127.0.0.1) unless the address lies in
 *    the allow list (BTSSOMetadataFetchAllow).  The check is made on the
 *    socket address curl is about to connect to, inside curl's
 *    open-socket callback, so a second DNS answer (rebinding) or a numeric
 *    spelling ("http://2130706433/", "0x7f.1", "127.1") cannot slip past
 *    it.  Proxies from the environment are ignored for the same reason.
 *  - Redirects (301, 302, 303, 307, 308) are followed one by one, at most
 *    max_redirects of them; every new URL passes the same scheme check and
 *    its connection the same address check.  https -> http is refused
 *    unless allow_http.
 *  - The body is bounded by max_size: a Content-Length above it is refused
 *    before the body is read, and reading stops as soon as the body
 *    grows past it.  No content decoding is requested (no gzip bombs).
 *  - The whole fetch, redirects included, is bounded by timeout_sec.
 *  - TLS: peer and host name always verified, TLS 1.2 or later.
 *
 * No logging, no request_rec: every outcome is the return value.
 */
#ifndef BTSSO_FETCH_H
#define BTSSO_FETCH_H

#include <apr_pools.h>
#include "core/btsso_error.h"
#include "core/cidr.h"

#define BTSSO_FETCH_DEFAULT_MAX_SIZE       (1024 * 1024)  /* 1 MiB */
#define BTSSO_FETCH_DEFAULT_TIMEOUT_SEC    10
#define BTSSO_FETCH_DEFAULT_MAX_REDIRECTS  5

typedef struct {
    /* Largest body accepted, in bytes; 0 means the default (1 MiB). */
    apr_size_t max_size;
    /* Bound on the whole fetch including redirects, in seconds;
     * 0 or less means the default (10 s). */
    int timeout_sec;
    /* Non-zero allows http: URLs (and https -> http redirects). */
    int allow_http;
    /* Addresses allowed although their class is refused by default;
     * NULL for none.  Public addresses need no entry. */
    const btsso_cidr_list_t *allow;
    /* PEM file of trusted CA certificates; NULL: the system CAs. */
    const char *ca_file;
    /* Redirects followed at most; 0 follows none, negative means the
     * default (5). */
    int max_redirects;
} btsso_fetch_opts_t;

/* Initialise libcurl once per process.  Call it in a single-threaded phase
 * (httpd post_config, main() of a tool) before any btsso_fetch_url: curl's
 * global set-up is not thread-safe.  Calling it again is harmless.  The
 * matching curl_global_cleanup runs when pool p is destroyed (use a pool
 * that lives as long as the process uses the fetcher).
 * Error: "fetch_init_failed" (500). */
btsso_error_t *btsso_fetch_global_init(apr_pool_t *p);

/* Fill o with the defaults: 1 MiB, 10 s, https only, no allow list,
 * system CAs, 5 redirects. */
void btsso_fetch_opts_default(btsso_fetch_opts_t *o);

/* Fetch url (NULL o: the defaults).  On success returns NULL and sets
 * *body to the bytes received, allocated from p and followed by a NUL not
 * counted in *len, and *final_url (may be NULL) to the URL the body came
 * from after redirects.  Outputs are untouched on error.
 *
 * Errors, each with an operator detail naming what happened:
 *   "bad_url"          400  url is not an absolute URL curl can parse
 *   "url_not_allowed"  400  scheme refused (also on a redirect), or the
 *                           address is in a refused class and not in the
 *                           allow list ("address 127.0.0.1 is loopback;
 *                           add it to BTSSOMetadataFetchAllow to allow")
 *   "too_large"        413  Content-Length or the body exceeds max_size
 *   "fetch_failed"     502  connection, DNS, TLS or time-out failure (the
 *                           curl error in detail), a status other than
 *                           2xx (named in detail), or more redirects than
 *                           max_redirects
 *   "fetch_init_failed" 500 btsso_fetch_global_init was not called, or
 *                           curl could not set up the transfer */
btsso_error_t *btsso_fetch_url(apr_pool_t *p, const char *url,
                               const btsso_fetch_opts_t *o,
                               char **body, apr_size_t *len,
                               const char **final_url);

#endif /* BTSSO_FETCH_H */
