/*
 * refcode.h - the short reference code of a refused sign-in, which the
 * refusal page shows, the error log line carries and the account's
 * sign-in records are found by (SPEC "Enforcement").
 *
 * Eight characters from an alphabet without look-alikes (no 0/O, 1/I/L),
 * written as two groups of four joined by a dash ("K7QX-M2PA"), so that
 * a person can read it out over the phone:
 * 31^8 (about 2^39.6) codes, random, so one account's codes do not
 * collide in practice and a code tells nothing about another sign-in.
 */
#ifndef BTSSO_REFCODE_H
#define BTSSO_REFCODE_H

#include <apr_pools.h>

#define BTSSO_REFCODE_ALPHABET "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
#define BTSSO_REFCODE_LEN 9         /* four, a dash, four */

/* A fresh code, or NULL when the system has no random bytes to give. */
const char *btsso_refcode_new(apr_pool_t *p);

/* A code as a person may type it (any case, with or without the dash or
 * spaces) in its one written form, or NULL when it cannot be one. */
const char *btsso_refcode_normalize(apr_pool_t *p, const char *text);

#endif /* BTSSO_REFCODE_H */
