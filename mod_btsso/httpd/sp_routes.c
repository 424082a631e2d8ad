/*
 * sp_routes.c - which handler serves which path under BTSSOSPPath.
 */
#include <string.h>

#include <httpd.h>
#include <http_protocol.h>

#include "btsso_glue.h"
#include "btsso_handlers.h"

/* "/acs/acme" with prefix "/acs" -> "acme"; "" for "/acs"; NULL when the
 * path is not prefix or prefix/<one segment>. */
static const char *segment_after(const char *rest, const char *prefix)
{
    apr_size_t n = strlen(prefix);

    if (strncmp(rest, prefix, n) != 0) {
        return NULL;
    }
    if (rest[n] == '\0') {
        return "";
    }
    if (rest[n] == '/' && rest[n + 1] != '\0'
        && strchr(rest + n + 1, '/') == NULL) {
        return rest + n + 1;
    }
    return NULL;
}

int btsso_sp_dispatch(request_rec *r, const char *rest)
{
    const char *arg;

    if ((arg = segment_after(rest, "/metadata")) != NULL) {
        if (r->method_number != M_GET) {
            r->allowed = AP_METHOD_BIT << M_GET;
            return HTTP_METHOD_NOT_ALLOWED;
        }
        return btsso_handle_sp_metadata(r, *arg ? arg : NULL);
    }
    if ((arg = segment_after(rest, "/acs")) != NULL) {
        return btsso_handle_acs(r, *arg ? arg : NULL);
    }
    if ((arg = segment_after(rest, "/login")) != NULL) {
        return *arg ? btsso_handle_login(r, arg) : btsso_handle_discovery(r);
    }
    if ((arg = segment_after(rest, "/test")) != NULL && *arg) {
        return btsso_handle_test(r, arg);
    }
    if (!strcmp(rest, "/session")) {
        return btsso_handle_session(r);
    }
    if (!strcmp(rest, "/logout")) {
        return btsso_handle_logout(r);
    }
    if (!strcmp(rest, "/slo")) {
        return btsso_handle_slo(r);
    }
    return HTTP_NOT_FOUND;
}
