/*
 * pending.c - encode, authenticate and check the record of a sign-in in
 * flight (see pending.h for the format).
 */
#include <string.h>

#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/pending.h"
#include "core/b64.h"

#define VERSION "v1"
#define FIELDS 7
#define MAC_LEN 32
/* a record is a few hundred octets plus a return target of at most
 * 2 KiB; anything much longer is not ours */
#define MAX_VALUE 8192

static int field_ok(const char *s, int may_be_empty)
{
    if (s == NULL || (*s == '\0' && !may_be_empty)) {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return 0;
        }
    }
    return 1;
}

int btsso_pending_relay_ok(const char *s)
{
    return s != NULL && strlen(s) == BTSSO_PENDING_RELAY_LEN
           && strspn(s, "0123456789abcdef") == BTSSO_PENDING_RELAY_LEN;
}

static int mac_of(const unsigned char *key, apr_size_t key_len,
                  const char *text, apr_size_t len, unsigned char *mac)
{
    unsigned int mac_len = 0;

    return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)text,
                len, mac, &mac_len) != NULL && mac_len == MAC_LEN;
}

btsso_error_t *btsso_pending_rec_encode(apr_pool_t *p,
                                        const unsigned char *key,
                                        apr_size_t key_len,
                                        const btsso_pending_rec_t *rec,
                                        const char **out)
{
    unsigned char mac[MAC_LEN];
    const char *payload, *text;

    if (!btsso_pending_relay_ok(rec->relay) || !field_ok(rec->request_id, 0)
        || !field_ok(rec->account, 0) || !field_ok(rec->sp_id, 0)
        || (rec->return_to != NULL && !field_ok(rec->return_to, 0))
        || key == NULL || key_len == 0) {
        return btsso_error_make(p, 500, "pending_encode",
                                "The sign-in could not be started.",
                                "a field of the pending record is missing "
                                "or holds a control character");
    }
    payload = apr_psprintf(p, "%s\n%s\n%s\n%s\n%d\n%" APR_TIME_T_FMT "\n%s",
                           rec->relay, rec->request_id, rec->account,
                           rec->return_to ? rec->return_to : "",
                           rec->test ? 1 : 0, apr_time_sec(rec->expires),
                           rec->sp_id);
    text = apr_pstrcat(p, VERSION ".",
                       btsso_b64url_encode(p, (const unsigned char *)payload,
                                     strlen(payload)), NULL);
    if (!mac_of(key, key_len, text, strlen(text), mac)) {
        return btsso_error_make(p, 500, "pending_encode",
                                "The sign-in could not be started.",
                                "HMAC failed");
    }
    *out = apr_pstrcat(p, text, ".", btsso_b64url_encode(p, mac, sizeof(mac)),
                       NULL);
    return NULL;
}

static btsso_error_t *invalid(apr_pool_t *p, const char *why)
{
    return btsso_error_make(p, 403, "pending_invalid",
                            "This sign-in cannot be completed: its record "
                            "in this browser is damaged or expired. Start "
                            "the sign-in again.", "pending cookie: %s", why);
}

/* Whole decimal seconds, no sign, no leading garbage. */
static int parse_seconds(const char *s, apr_time_t *out)
{
    apr_int64_t v;
    char *end = NULL;

    if (*s < '0' || *s > '9' || strlen(s) > 18) {
        return 0;
    }
    v = apr_strtoi64(s, &end, 10);
    if (end == NULL || *end != '\0' || v < 0) {
        return 0;
    }
    *out = apr_time_from_sec(v);
    return 1;
}

btsso_error_t *btsso_pending_rec_decode(apr_pool_t *p,
                                        const unsigned char *key,
                                        apr_size_t key_len,
                                        const char *value,
                                        const char *relay,
                                        const char *sp_id, apr_time_t now,
                                        btsso_pending_rec_t **out)
{
    unsigned char mac[MAC_LEN], *given = NULL, *payload = NULL;
    apr_size_t given_len = 0, payload_len = 0, len;
    const char *dot1, *dot2;
    char *fields[FIELDS], *s, *nl;
    btsso_pending_rec_t *rec;
    int i;

    if (value == NULL || key == NULL || (len = strlen(value)) > MAX_VALUE
        || strncmp(value, VERSION ".", sizeof(VERSION)) != 0) {
        return invalid(p, "not a version 1 record");
    }
    dot1 = value + sizeof(VERSION) - 1;
    dot2 = strrchr(value, '.');
    if (dot2 == dot1
        || !btsso_b64url_decode(p, dot2 + 1, len - (apr_size_t)(dot2 + 1 - value),
                          &given, &given_len)
        || given_len != MAC_LEN) {
        return invalid(p, "malformed");
    }
    /* the MAC first, in constant time; nothing is read before it held */
    if (!mac_of(key, key_len, value, (apr_size_t)(dot2 - value), mac)
        || CRYPTO_memcmp(mac, given, MAC_LEN) != 0) {
        return invalid(p, "MAC mismatch (altered, or made with another "
                       "key)");
    }
    if (!btsso_b64url_decode(p, dot1 + 1, (apr_size_t)(dot2 - dot1 - 1), &payload,
                       &payload_len)
        || strlen((const char *)payload) != payload_len) {
        return invalid(p, "malformed payload");
    }
    s = (char *)payload;
    for (i = 0; i < FIELDS; i++) {
        fields[i] = s;
        nl = strchr(s, '\n');
        if ((nl == NULL) != (i == FIELDS - 1)) {
            return invalid(p, "wrong number of fields");
        }
        if (nl != NULL) {
            *nl = '\0';
            s = nl + 1;
        }
    }
    rec = apr_pcalloc(p, sizeof(*rec));
    rec->relay = fields[0];
    rec->request_id = fields[1];
    rec->account = fields[2];
    rec->return_to = *fields[3] ? fields[3] : NULL;
    if (!btsso_pending_relay_ok(rec->relay) || !field_ok(rec->request_id, 0)
        || !field_ok(rec->account, 0) || !field_ok(fields[3], 1)
        || (strcmp(fields[4], "0") != 0 && strcmp(fields[4], "1") != 0)
        || !parse_seconds(fields[5], &rec->expires)
        || !field_ok(fields[6], 0)) {
        return invalid(p, "malformed field");
    }
    rec->test = fields[4][0] == '1';
    rec->sp_id = fields[6];
    if (relay == NULL || strcmp(rec->relay, relay) != 0) {
        return invalid(p, "record of another RelayState");
    }
    if (sp_id == NULL || strcmp(rec->sp_id, sp_id) != 0) {
        return invalid(p, "made by another SP (virtual host, base URL or "
                       "session store)");
    }
    if (now >= rec->expires) {
        return invalid(p, apr_psprintf(p, "expired %" APR_TIME_T_FMT
                                       " s ago",
                                       apr_time_sec(now - rec->expires)));
    }
    *out = rec;
    return NULL;
}
