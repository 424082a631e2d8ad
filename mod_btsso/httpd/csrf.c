/*
 * csrf.c - the X-CSRF-Token of the admin API.
 *
 * A token is "v1.<expiry seconds>.<hex HMAC-SHA256>" over the user, the
 * account, the session's account ("-" unless the admin location is
 * authenticated by AuthType BTSSO: an email repeats across accounts) and
 * the expiry, under a per-server key.  It binds the token to one
 * administrator of one account, signed in to one account or by other
 * means: a token read by one admin, under one session account (or for one
 * account) is worthless for another.  The key is derived once at
 * post_config (never per request) and never logged, by keys.c
 * (btsso_key_derive, label BTSSO_KEY_LABEL_CSRF): from BTSSOSPPrivateKey,
 * so all nodes of a cluster sharing the SP key accept each other's
 * tokens, else from a random secret of the httpd parent that graceful
 * restarts keep.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "btsso_glue.h"
#include "btsso_admin.h"
#include "btsso_keys.h"

APLOG_USE_MODULE(btsso);

#define CSRF_KEY_LEN BTSSO_KEY_LEN

/* server_rec * -> unsigned char[CSRF_KEY_LEN]; rebuilt at every
 * post_config in pconf, read-only once children run. */
static apr_hash_t *csrf_keys;

int btsso_csrf_init(apr_pool_t *pconf, server_rec *base)
{
    server_rec *s;

    csrf_keys = apr_hash_make(pconf);
    for (s = base; s != NULL; s = s->next) {
        btsso_srv_cfg *sc = btsso_srv(s);
        unsigned char *key;

        key = apr_palloc(pconf, CSRF_KEY_LEN);
        if (!btsso_key_derive(s, BTSSO_KEY_LABEL_CSRF, key)) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                         "BTSSO0420: cannot derive the admin CSRF key%s",
                         sc->rt != NULL && sc->rt->spkey != NULL
                         ? " from BTSSOSPPrivateKey" : " (no random bytes)");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_hash_set(csrf_keys, apr_pmemdup(pconf, &s, sizeof(s)),
                     sizeof(s), key);
    }
    return OK;
}

static const unsigned char *key_of(const server_rec *s)
{
    if (csrf_keys == NULL) {
        return NULL;
    }
    return apr_hash_get(csrf_keys, &s, sizeof(s));
}

/* Lowercase hex HMAC of user, account, session account and expiry; NULL
 * without a key.  The NUL separators keep ("ab","c") and ("a","bc") apart;
 * four fields never read as the three of an older token. */
static const char *token_mac(request_rec *r, const char *user,
                             const char *account, const char *session_account,
                             const char *expiry)
{
    const unsigned char *key = key_of(r->server);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    const char *fields[4];
    apr_size_t lens[4], n = 3, at;
    char *msg, *hex;
    unsigned int i;

    if (key == NULL) {
        return NULL;
    }
    fields[0] = user;
    fields[1] = account;
    fields[2] = session_account != NULL ? session_account : "-";
    fields[3] = expiry;
    for (i = 0; i < 4; i++) {
        lens[i] = strlen(fields[i]);
        n += lens[i] + (i < 3 ? 1 : 0);
    }
    msg = apr_palloc(r->pool, n);
    memcpy(msg, "v1", 3);
    for (at = 3, i = 0; i < 4; i++) {
        memcpy(msg + at, fields[i], lens[i] + (i < 3 ? 1 : 0));
        at += lens[i] + (i < 3 ? 1 : 0);
    }
    if (HMAC(EVP_sha256(), key, CSRF_KEY_LEN, (const unsigned char *)msg, n,
             mac, &mac_len) == NULL) {
        return NULL;
    }
    hex = apr_palloc(r->pool, mac_len * 2 + 1);
    for (i = 0; i < mac_len; i++) {
        static const char digits[] = "0123456789abcdef";
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 15];
    }
    hex[2 * mac_len] = '\0';
    return hex;
}

const char *btsso_csrf_token(request_rec *r, const char *user,
                             const char *account, const char *session_account)
{
    const char *expiry = apr_psprintf(r->pool, "%" APR_TIME_T_FMT,
                                      apr_time_sec(apr_time_now()
                                                   + BTSSO_CSRF_LIFETIME));
    const char *mac = token_mac(r, user, account, session_account, expiry);

    return mac ? apr_pstrcat(r->pool, "v1.", expiry, ".", mac, NULL) : NULL;
}

int btsso_csrf_valid(request_rec *r, const char *user, const char *account,
                     const char *session_account, const char *token)
{
    const char *dot, *expected;
    char *expiry;
    apr_int64_t exp_sec;
    char *end = NULL;

    if (token == NULL || strncmp(token, "v1.", 3) != 0) {
        return 0;
    }
    dot = strchr(token + 3, '.');
    if (dot == NULL || dot == token + 3 || dot - token > 3 + 20
        || strlen(dot + 1) != 64) {
        return 0;
    }
    expiry = apr_pstrmemdup(r->pool, token + 3, (apr_size_t)(dot - token - 3));
    exp_sec = apr_strtoi64(expiry, &end, 10);
    if (end == NULL || *end != '\0' || expiry[0] < '0' || expiry[0] > '9'
        || exp_sec <= apr_time_sec(apr_time_now())) {
        return 0;
    }
    expected = token_mac(r, user, account, session_account, expiry);
    return expected != NULL && CRYPTO_memcmp(expected, dot + 1, 64) == 0;
}
