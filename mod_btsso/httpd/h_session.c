/*
 * h_session.c - GET <SPPath>/session: the caller's session as JSON.
 * (GET <SPPath>/logout lives with Single Logout, in h_slo.c.)
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
