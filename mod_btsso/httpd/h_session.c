/*
 * h_session.c - GET <SPPath>/session (the caller's session as JSON) and
 * GET <SPPath>/logout?return=... (ends the local session, then Single
 * Logout at the IdP when it has an SLO endpoint: h_slo.c).
 */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>
#include <jansson.h>

#include "btsso_glue.h"
#include "btsso_session.h"
#include "btsso_handlers.h"

APLOG_USE_MODULE(btsso);

int btsso_handle_session(request_rec *r)
{
    btsso_session_t *ss;
    char when[APR_RFC822_DATE_LEN];

    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ss = btsso_session_get(r);
    if (ss == NULL) {
        return btsso_send_json(r, HTTP_UNAUTHORIZED,
                               json_pack("{s:s, s:s}", "error", "no_session",
                                         "message", "You are not signed in."));
    }
    apr_rfc822_date(when, ss->expires);
    return btsso_send_json(r, HTTP_OK, json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:s, s:s?}",
        "account", ss->account, "email", ss->email, "name_id", ss->name_id,
        "idp", ss->idp, "expires", (json_int_t)apr_time_sec(ss->expires),
        "expires_http", when, "extension", ss->extension));
}

int btsso_handle_logout(request_rec *r)
{
    btsso_srv_cfg *sc = btsso_srv(r->server);
    btsso_session_t *ss;
    const char *ret;

    if (r->method_number != M_GET) {
        r->allowed = AP_METHOD_BIT << M_GET;
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ret = btsso_return_arg(r);
    if (ret == NULL) {
        ret = "";
    }
    ss = btsso_session_get(r);
    /* The local session ends first, whatever happens next: local logout
     * never fails. */
    btsso_session_destroy(r);
    if (ss != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                      "BTSSO0501: logout: account %s, user %s", ss->account,
                      ss->email);
    }
    if (*ret == '\0') {
        ret = "/";
    }
    if (ret[0] == '/') {
        ret = apr_pstrcat(r->pool, sc->base_url, ret, NULL);
    }
    if (ss != NULL) {
        /* With an IdP SLO endpoint, on to the IdP (h_slo.c); any failure
         * there leaves the local logout done and ends at ret. */
        int rc = btsso_slo_start(r, ss, ret);

        if (rc != DECLINED) {
            return rc;
        }
    }
    return btsso_redirect(r, HTTP_MOVED_TEMPORARILY, ret);
}
