/*
 * refcode.c - reference codes of refused sign-ins (refcode.h).
 */
#include <string.h>

#include <apr_general.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "core/refcode.h"

#define ALPHABET_SIZE ((int)(sizeof(BTSSO_REFCODE_ALPHABET) - 1))
#define CODE_CHARS 8

const char *btsso_refcode_new(apr_pool_t *p)
{
    /* 248 = 8 * 31: bytes at or above it are dropped so that every
     * character is equally likely */
    unsigned char rnd[32];
    char *out = apr_palloc(p, BTSSO_REFCODE_LEN + 1);
    int n = 0, i, tries;

    for (tries = 0; tries < 4 && n < CODE_CHARS; tries++) {
        if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
            return NULL;
        }
        for (i = 0; i < (int)sizeof(rnd) && n < CODE_CHARS; i++) {
            if (rnd[i] >= 248) {
                continue;
            }
            out[n < 4 ? n : n + 1] =
                BTSSO_REFCODE_ALPHABET[rnd[i] % ALPHABET_SIZE];
            n++;
        }
    }
    if (n < CODE_CHARS) {
        return NULL;
    }
    out[4] = '-';
    out[BTSSO_REFCODE_LEN] = '\0';
    return out;
}

const char *btsso_refcode_normalize(apr_pool_t *p, const char *text)
{
    char *out;
    int n = 0;

    if (text == NULL || strlen(text) > 32) {
        return NULL;
    }
    out = apr_palloc(p, BTSSO_REFCODE_LEN + 1);
    for (; *text != '\0'; text++) {
        char c = (char)apr_toupper((unsigned char)*text);

        if (c == '-' || c == ' ') {
            continue;
        }
        if (strchr(BTSSO_REFCODE_ALPHABET, c) == NULL || n == CODE_CHARS) {
            return NULL;
        }
        out[n < 4 ? n : n + 1] = c;
        n++;
    }
    if (n != CODE_CHARS) {
        return NULL;
    }
    out[4] = '-';
    out[BTSSO_REFCODE_LEN] = '\0';
    return out;
}
