/*
 * btsso_keys.h - the module's own symmetric keys (keys.c), derived once
 * at post_config, never per request, never logged.
 */
#ifndef BTSSO_KEYS_H
#define BTSSO_KEYS_H

#include <httpd.h>

#define BTSSO_KEY_LEN 32

/* Labels: one key per purpose; a key made for one is useless for another. */
#define BTSSO_KEY_LABEL_CSRF    "mod_btsso admin CSRF token key v1"
#define BTSSO_KEY_LABEL_PENDING "mod_btsso pending sign-in cookie key v1"

/*
 * Fill out[BTSSO_KEY_LEN] with the key of server s for label: HKDF-SHA256
 * (salt "mod_btsso", info label) over
 *  - the DER of BTSSOSPPrivateKey, when s has one: every node of a cluster
 *    sharing the SP key derives the same key;
 *  - otherwise 32 random bytes made once in the httpd parent and kept in
 *    the process pool, so graceful restarts keep the key (a cluster
 *    without an SP key needs sticky sessions, or the SP key).
 * Call at post_config, after the SP keys are loaded.  0 on failure.
 */
int btsso_key_derive(server_rec *s, const char *label, unsigned char *out);

#endif /* BTSSO_KEYS_H */
