/*
 * addressing.c - SP entityID and endpoint URLs of an account.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "core/addressing.h"

void btsso_sp_addressing(apr_pool_t *p, const char *base_url,
                         const char *sp_path, const char *global_entity_id,
                         const char *account, int shared,
                         btsso_sp_addr_t *out)
{
    const char *root = apr_pstrcat(p, base_url, sp_path, NULL);

    if (account != NULL && shared) {
        out->entity_id = apr_pstrcat(p, root, "/", account, NULL);
        out->acs_url = apr_pstrcat(p, root, "/acs/", account, NULL);
        out->metadata_url = apr_pstrcat(p, root, "/metadata/", account, NULL);
    }
    else {
        out->entity_id = global_entity_id ? global_entity_id : root;
        out->acs_url = apr_pstrcat(p, root, "/acs", NULL);
        out->metadata_url = apr_pstrcat(p, root, "/metadata", NULL);
    }
    out->slo_url = apr_pstrcat(p, root, "/slo", NULL);
}

int btsso_account_id_ok(const char *s)
{
    apr_size_t n = 0;

    if (s == NULL || !strcmp(s, ".") || !strcmp(s, "..")) {
        return 0;
    }
    for (; s[n] != '\0'; n++) {
        if (n >= 64 || !(apr_isalnum(s[n]) || s[n] == '.' || s[n] == '_'
                         || s[n] == '-')) {
            return 0;
        }
    }
    return n > 0;
}
