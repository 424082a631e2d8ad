/*
 * h_metadata.c - GET <SPPath>/metadata and GET <SPPath>/metadata/<account>:
 * the SP metadata an IdP imports.  A self-service account's IdP imports the
 * global SP; an account of a shared IdP gets its own entityID and ACS.
 */
#include <string.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>

#include "btsso_glue.h"
#include "btsso_acct.h"
#include "btsso_handlers.h"
#include "core/addressing.h"
#include "saml/spmeta.h"

APLOG_USE_MODULE(btsso);

int btsso_handle_sp_metadata(request_rec *r, const char *account)
{
    const btsso_acct_entry *e = NULL;
    btsso_error_t *err = NULL;
    const char *xml;
    int shared = 0;

    if (account != NULL) {
        if (!btsso_account_id_ok(account)) {
            return HTTP_NOT_FOUND;
        }
        err = btsso_acct_get(r, account, &e);
        if (err != NULL) {
            if (err->status == 404) {
                return HTTP_NOT_FOUND;
            }
            btsso_log_error(r, APLOG_ERR, "BTSSO0230", account, err);
            return err->status >= 500 ? err->status : 500;
        }
        shared = e->idp != NULL && e->idp->shared;
    }
    xml = btsso_sp_metadata_xml(r, account, shared, &err);
    if (err != NULL) {
        btsso_log_error(r, APLOG_ERR, "BTSSO0231", account, err);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_set_content_type(r, "application/samlmetadata+xml");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    if (r->header_only) {
        return OK;
    }
    ap_rputs(xml, r);
    return OK;
}
