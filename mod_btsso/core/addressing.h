/*
 * addressing.h - where an account's SP lives (SPEC "Addressing").
 *
 * Self-service accounts share the global SP entityID and ACS: the IdP's
 * entityID (the Response Issuer) tells accounts apart, which is why an IdP
 * entityID belongs to at most one self-service account.  Accounts of an IdP
 * shared by several accounts (support-configured) each get their own
 * entityID <base><path>/<account> and ACS <base><path>/acs/<account>, so
 * the IdP can address them apart.  Built from BTSSOBaseURL only, never from
 * a request's Host header.
 */
#ifndef BTSSO_ADDRESSING_H
#define BTSSO_ADDRESSING_H

#include <apr_pools.h>

typedef struct btsso_sp_addr_t {
    const char *entity_id;
    const char *acs_url;
    const char *slo_url;
    const char *metadata_url;
} btsso_sp_addr_t;

/* account NULL (or shared 0): the global SP. */
void btsso_sp_addressing(apr_pool_t *p, const char *base_url,
                         const char *sp_path, const char *global_entity_id,
                         const char *account, int shared,
                         btsso_sp_addr_t *out);

/* Non-zero when s is a well-formed account id: 1 to 64 of [A-Za-z0-9._-],
 * not "." or "..".  Account ids appear in URLs and SQL parameters. */
int btsso_account_id_ok(const char *s);

#endif /* BTSSO_ADDRESSING_H */
