/*
 * test_result.c - the result page of GET <SPPath>/test/<account>: what the IdP
 * sent and what mod_btsso made of it, so an administrator can check the
 * set-up before enforcing SSO.  No session is created.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>

#include "btsso_glue.h"
#include "btsso_handlers.h"

APLOG_USE_MODULE(btsso);

#define H(s) ap_escape_html(r->pool, (s) ? (s) : "")

/* Whether this success lets an administrator enable SSO (audit_trail.c). */
static void test_counted_note(request_rec *r)
{
    const char *n = apr_table_get(r->notes, BTSSO_NOTE_TEST);

    if (n == NULL) {
        return;
    }
    ap_rprintf(r, "<p id=\"counts\" class=\"%s\">%s</p>",
               strcmp(n, "counted") == 0 ? "ok" : "bad",
               strcmp(n, "counted") == 0
               ? "This test counts: an administrator of the account signed "
                 "in, so SSO can now be enabled."
               : strcmp(n, "not_admin") == 0
               ? "This test does not count for enabling SSO: the person "
                 "who signed in is not an administrator of this account. "
                 "An administrator must pass the test."
               : strcmp(n, "stale") == 0
               ? "This test does not count for enabling SSO: the settings "
                 "changed while it ran. Test again."
               : "This test could not be recorded; try again shortly.");
}

int btsso_send_test_result(request_rec *r, const char *account,
                           const btsso_assertion_t *a, const char *email,
                           const btsso_user_t *user,
                           const btsso_error_t *err)
{
    int i, j;

    r->status = HTTP_OK;
    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "Content-Security-Policy",
                   "default-src 'none'; style-src 'unsafe-inline'");
    ap_rprintf(r, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta "
               "charset=\"utf-8\"><title>SSO test: %s</title><style>"
               "body{font-family:system-ui,sans-serif;margin:2rem;"
               "color:#1d1d1f}table{border-collapse:collapse}"
               "td,th{border:1px solid #ccc;padding:.3rem .6rem;"
               "text-align:left;vertical-align:top}.ok{color:#0a7a2f}"
               ".bad{color:#b00020}</style></head><body>"
               "<h1>Single sign-on test for account %s</h1>",
               H(account), H(account));
    if (err == NULL && user != NULL) {
        ap_rprintf(r, "<p class=\"ok\" id=\"verdict\"><strong>Success.</strong>"
                   " This person would be signed in as user %s "
                   "(extension %s).</p>", H(user->email), H(user->extension));
        test_counted_note(r);
    }
    else {
        ap_rprintf(r, "<p class=\"bad\" id=\"verdict\"><strong>Sign-in would "
                   "fail:</strong> %s</p><p>Reason code: <code id=\"code\">%s"
                   "</code></p>", H(err ? err->message : "unknown"),
                   H(err ? err->code : "unknown"));
        if (err != NULL && err->detail != NULL) {
            ap_rprintf(r, "<p>Detail: <code id=\"detail\">%s</code></p>",
                       H(err->detail));
        }
        if (btsso_signin_reference_if_any(r) != NULL) {
            ap_rprintf(r, "<p>Reference: <code id=\"reference\">%s</code>"
                       " (in the error log and the account's sign-ins)</p>",
                       H(btsso_signin_reference_if_any(r)));
        }
    }
    if (a != NULL) {
        ap_rprintf(r, "<h2>What the identity provider sent</h2><table>"
                   "<tr><th>Issuer</th><td>%s</td></tr>"
                   "<tr><th>NameID</th><td id=\"nameid\">%s</td></tr>"
                   "<tr><th>NameID format</th><td>%s</td></tr>"
                   "<tr><th>Authentication context</th>"
                   "<td id=\"authn_context\">%s</td></tr>"
                   "<tr><th>Email used</th><td id=\"email\">%s</td></tr>"
                   "</table><h2>Attributes</h2><table id=\"attributes\">"
                   "<tr><th>Name</th><th>Friendly name</th><th>Values</th>"
                   "</tr>", H(a->issuer), H(a->name_id),
                   H(a->name_id_format), H(a->authn_context_class), H(email));
        for (i = 0; a->attributes != NULL && i < a->attributes->nelts; i++) {
            const btsso_attribute_t *at = &APR_ARRAY_IDX(a->attributes, i,
                                                         btsso_attribute_t);

            ap_rprintf(r, "<tr><td>%s</td><td>%s</td><td>", H(at->name),
                       H(at->friendly_name));
            for (j = 0; j < at->values->nelts; j++) {
                ap_rprintf(r, "%s%s", j ? "<br>" : "",
                           H(APR_ARRAY_IDX(at->values, j, const char *)));
            }
            ap_rputs("</td></tr>", r);
        }
        ap_rputs("</table>", r);
    }
    ap_rputs("<p>No session was created: this was only a test.</p>"
             "</body></html>\n", r);
    return OK;
}
