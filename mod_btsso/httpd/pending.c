/*
 * pending.c - sign-ins in flight, kept by the browser (issue 8).
 *
 * Nothing an unauthenticated client sends is stored on the server: a
 * pending AuthnRequest (from /login/<account>, discovery, /test or an
 * AuthType BTSSO redirect) lives in a cookie
 *
 *     <BTSSOCookieName>_pending_<RelayState> = <record>
 *
 * whose record (core/pending.c) is authenticated with HMAC-SHA256 under a
 * key derived from the SP key (keys.c), names the RelayState, the request
 * ID, the account, the validated return target, the test flag, an expiry
 * and the SP identity.  The RelayState sent to the IdP is only the opaque
 * token naming the cookie (32 hex digits, well under SAML's 80 bytes).
 *
 * This binds the sign-in to the browser that started it (login CSRF): a
 * response posted from another browser finds no cookie.  The ACS POST
 * comes from the IdP's origin, so the cookie is SameSite=None, which
 * browsers accept only with Secure; Chromium (and Firefox) keep Secure
 * cookies set by http://localhost and loopback addresses, so a
 * development set-up on http://localhost works too.  Path=/ so that every
 * place a sign-in starts sees the cookies already there and keeps their
 * number bounded (several tabs may sign in at once).
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <util_cookies.h>
#include <apr_strings.h>
#include <apr_hash.h>
#include <openssl/sha.h>

#include "btsso_glue.h"
#include "btsso_keys.h"
#include "btsso_session.h"
#include "core/pending.h"
#include "core/url.h"

APLOG_USE_MODULE(btsso);

#define PENDING_LIFETIME 600             /* seconds */
#define PENDING_MAX 4                    /* cookies per browser */
#define PENDING_BUDGET 6144              /* octets of them per request */
#define PENDING_INFIX "_pending_"

typedef struct pending_conf {
    unsigned char key[BTSSO_KEY_LEN];
    const char *sp_id;
    const char *prefix;                  /* cookie name up to the token */
    int secure;                          /* Secure and SameSite=None */
} pending_conf;

/* server_rec * -> pending_conf; rebuilt at every post_config. */
static apr_hash_t *confs;

static int loopback_host(const char *host)
{
    return !strcmp(host, "localhost") || !strncmp(host, "127.", 4)
           || !strcmp(host, "[::1]");
}

/*
 * The SP identity: what makes one SP (virtual host) another.  Two nodes
 * of a cluster (same base URL, entityID and shared session store) are one
 * SP; two virtual hosts with their own BTSSOBaseURL are two.
 */
static const char *sp_identity(apr_pool_t *p, const btsso_srv_cfg *sc)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    const char *in = apr_pstrcat(p, "btsso-sp-v1\n", sc->base_url, "\n",
                                 sc->sp_path, "\n", sc->sp_entity_id, "\n",
                                 sc->session_cache, NULL);
    char *hex = apr_palloc(p, 33);
    int i;

    SHA256((const unsigned char *)in, strlen(in), md);
    for (i = 0; i < 16; i++) {
        apr_snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    return hex;
}

int btsso_pending_init(apr_pool_t *pconf, server_rec *base)
{
    server_rec *s;

    confs = apr_hash_make(pconf);
    for (s = base; s != NULL; s = s->next) {
        btsso_srv_cfg *sc = btsso_srv(s);
        pending_conf *pc = apr_pcalloc(pconf, sizeof(*pc));
        btsso_base_url_t *bu = NULL;

        if (!btsso_key_derive(s, BTSSO_KEY_LABEL_PENDING, pc->key)) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                         "BTSSO0020: cannot derive the pending sign-in "
                         "cookie key%s", sc->rt && sc->rt->spkey
                         ? " from BTSSOSPPrivateKey" : " (no random bytes)");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        pc->sp_id = sp_identity(pconf, sc);
        pc->prefix = apr_pstrcat(pconf, sc->cookie_name, PENDING_INFIX,
                                 NULL);
        pc->secure = sc->cookie_secure
            || (btsso_base_url_parse(pconf, sc->base_url, &bu) == NULL
                && loopback_host(bu->host));
        if (!pc->secure && s == base) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         "BTSSO0021: BTSSOCookieSecure Off on %s: the "
                         "sign-in cookie cannot be SameSite=None, so "
                         "browsers may not send it with the IdP's "
                         "cross-site POST; use https", sc->base_url);
        }
        apr_hash_set(confs, apr_pmemdup(pconf, &s, sizeof(s)), sizeof(s),
                     pc);
    }
    return OK;
}

static const pending_conf *conf_of(const server_rec *s)
{
    return confs != NULL ? apr_hash_get(confs, &s, sizeof(s)) : NULL;
}

const char *btsso_sp_id(const server_rec *s)
{
    const pending_conf *pc = conf_of(s);

    return pc != NULL ? pc->sp_id : NULL;
}

static void set_pending_cookie(request_rec *r, const pending_conf *pc,
                               const char *relay, const char *value,
                               long max_age)
{
    const char *hdr = btsso_cookie_header(
        r->pool, apr_pstrcat(r->pool, pc->prefix, relay, NULL), value, "/",
        max_age, pc->secure, pc->secure ? "None" : NULL);

    if (hdr != NULL) {
        apr_table_addn(r->err_headers_out, "Set-Cookie", hdr);
    }
}

typedef struct held_cookie {
    const char *relay;
    apr_size_t size;            /* name=value; in the Cookie header */
    apr_time_t expires;         /* 0 when it does not verify */
} held_cookie;

typedef struct cookie_walk {
    request_rec *r;
    const pending_conf *pc;
    apr_array_header_t *held;
} cookie_walk;

/* One Cookie header: collect our pending cookies. */
static int collect(void *data, const char *key, const char *header)
{
    cookie_walk *w = data;
    apr_size_t plen = strlen(w->pc->prefix);
    const char *s = header;

    while (s != NULL && *s != '\0') {
        const char *end = strchr(s, ';');
        apr_size_t len = end ? (apr_size_t)(end - s) : strlen(s);
        const char *eq;

        while (len > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        eq = memchr(s, '=', len);
        if (eq != NULL && (apr_size_t)(eq - s) == plen
                          + BTSSO_PENDING_RELAY_LEN
            && strncmp(s, w->pc->prefix, plen) == 0) {
            held_cookie *h = apr_array_push(w->held);
            const char *value = apr_pstrmemdup(w->r->pool, eq + 1,
                                               len - (apr_size_t)(eq + 1 - s));
            btsso_pending_rec_t *rec = NULL;

            h->relay = apr_pstrmemdup(w->r->pool, s + plen,
                                      BTSSO_PENDING_RELAY_LEN);
            h->size = len + 2;
            h->expires = 0;
            if (btsso_pending_relay_ok(h->relay)
                && btsso_pending_rec_decode(w->r->pool, w->pc->key,
                                            BTSSO_KEY_LEN, value, h->relay,
                                            w->pc->sp_id, apr_time_now(),
                                            &rec) == NULL) {
                h->expires = rec->expires;
            }
        }
        s = end ? end + 1 : NULL;
    }
    return 1;
}

/*
 * Make room for a new cookie of new_size octets: the oldest pending
 * cookies (those that do not verify first) go until at most PENDING_MAX
 * remain, new one included, within PENDING_BUDGET octets.
 */
static void trim_held(request_rec *r, const pending_conf *pc,
                      apr_size_t new_size)
{
    cookie_walk w = { r, pc, apr_array_make(r->pool, 4,
                                            sizeof(held_cookie)) };
    apr_size_t total = new_size;
    int count, i;

    apr_table_do(collect, &w, r->headers_in, "Cookie", NULL);
    count = w.held->nelts + 1;
    for (i = 0; i < w.held->nelts; i++) {
        total += APR_ARRAY_IDX(w.held, i, held_cookie).size;
    }
    while ((count > PENDING_MAX || total > PENDING_BUDGET) && count > 1) {
        held_cookie *oldest = NULL;

        for (i = 0; i < w.held->nelts; i++) {
            held_cookie *h = &APR_ARRAY_IDX(w.held, i, held_cookie);

            if (h->relay != NULL
                && (oldest == NULL || h->expires < oldest->expires)) {
                oldest = h;
            }
        }
        if (oldest == NULL) {
            break;
        }
        set_pending_cookie(r, pc, oldest->relay, "", 0);
        total -= oldest->size;
        oldest->relay = NULL;
        count--;
    }
}

const char *btsso_pending_put(request_rec *r, const btsso_pending_t *pd)
{
    const pending_conf *pc = conf_of(r->server);
    btsso_pending_rec_t rec;
    btsso_error_t *err;
    const char *value;

    if (pc == NULL) {
        return NULL;
    }
    memset(&rec, 0, sizeof(rec));
    rec.relay = btsso_random_token(r->pool, BTSSO_PENDING_RELAY_LEN / 2);
    rec.request_id = pd->request_id;
    rec.account = pd->account;
    rec.return_to = pd->return_to;
    rec.test = pd->test;
    rec.expires = apr_time_from_sec(apr_time_sec(apr_time_now())
                                    + PENDING_LIFETIME);
    rec.sp_id = pc->sp_id;
    if (rec.relay == NULL) {
        return NULL;
    }
    err = btsso_pending_rec_encode(r->pool, pc->key, BTSSO_KEY_LEN, &rec,
                                   &value);
    if (err != NULL) {
        btsso_log_error(r, APLOG_ERR, "BTSSO0240", pd->account, err);
        return NULL;
    }
    trim_held(r, pc, strlen(pc->prefix) + BTSSO_PENDING_RELAY_LEN + 1
                     + strlen(value) + 2);
    set_pending_cookie(r, pc, rec.relay, value, PENDING_LIFETIME);
    return rec.relay;
}

btsso_pending_t *btsso_pending_take(request_rec *r, const char *relay,
                                    btsso_error_t **invalid)
{
    const pending_conf *pc = conf_of(r->server);
    btsso_pending_rec_t *rec = NULL;
    btsso_pending_t *pd;
    const char *value = NULL;

    *invalid = NULL;
    if (pc == NULL || !btsso_pending_relay_ok(relay)
        || ap_cookie_read(r, apr_pstrcat(r->pool, pc->prefix, relay, NULL),
                          &value, 0) != APR_SUCCESS || value == NULL) {
        return NULL;
    }
    /* Used or not, it is done with: the browser forgets it. */
    set_pending_cookie(r, pc, relay, "", 0);
    *invalid = btsso_pending_rec_decode(r->pool, pc->key, BTSSO_KEY_LEN,
                                        value, relay, pc->sp_id,
                                        apr_time_now(), &rec);
    if (*invalid != NULL) {
        return NULL;
    }
    pd = apr_pcalloc(r->pool, sizeof(*pd));
    pd->request_id = rec->request_id;
    pd->account = rec->account;
    pd->return_to = rec->return_to;
    pd->test = rec->test;
    pd->expires = rec->expires;
    return pd;
}
