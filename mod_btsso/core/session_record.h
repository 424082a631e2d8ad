/*
 * session_record.h - the session as it is kept in the session cache: a
 * compact, versioned binary record (no JSON: decoding it is on the path of
 * every protected request), and the attributes it carries -- bounded at
 * the login, exported as environment variables and one header, matched by
 * `Require btsso-attr`.
 *
 * Pure functions over pool memory: no request_rec, no I/O, no logging, so
 * the parser can be unit-tested and fuzzed (t/fuzz/fuzz_session.c).
 *
 * Record, version 1 (every integer big-endian):
 *
 *   0xB5 0x01                        magic, version
 *   8 strings                        sp_id account email extension name_id
 *                                    name_id_format idp session_index
 *   6 x int64                        created expires last_seen epoch
 *                                    revoke_seq user_checked (APR time, us,
 *                                    or plain numbers for epoch/revoke_seq)
 *   varint count, count attributes   each: name, friendly_name,
 *                                    varint n, n value strings
 *
 * A string is varint(length + 1) -- 0 for an absent one -- then its octets
 * and a NUL, so the decoder points into the buffer instead of copying; a
 * varint is unsigned LEB128, at most 4 octets, canonical.  The decoder
 * refuses anything else: another magic or version (an old JSON record
 * starts with '{'), a length past the end, a NUL inside a string or none
 * after it, a missing required string (sp_id, account, email, name_id,
 * idp, an attribute's name, a value), an overlong varint, attributes
 * beyond the bounds below, octets after the last attribute.
 */
#ifndef BTSSO_SESSION_RECORD_H
#define BTSSO_SESSION_RECORD_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

/* SPEC, Enforcement: what a session keeps of the assertion's attributes. */
#define BTSSO_SESSION_MAX_ATTRS       64
#define BTSSO_SESSION_MAX_VALUES      100
/* the octets of every kept Name, FriendlyName and value, together */
#define BTSSO_SESSION_MAX_ATTR_OCTETS 32768
/* a whole record: the attributes and their framing, and the rest */
#define BTSSO_SESSION_RECORD_MAX      65536

#define BTSSO_SESSION_RECORD_MAGIC    0xB5
#define BTSSO_SESSION_RECORD_VERSION  1

typedef struct btsso_session_attr_t {
    const char *name;           /* the assertion's Name */
    const char *friendly_name;  /* NULL when absent (or empty) */
    apr_array_header_t *values; /* const char *, document order */
} btsso_session_attr_t;

typedef struct btsso_session_record_t {
    const char *sp_id;
    const char *account;
    const char *email;
    const char *extension;      /* may be NULL */
    const char *name_id;
    const char *name_id_format; /* may be NULL */
    const char *idp;
    const char *session_index;  /* may be NULL */
    apr_time_t created;
    apr_time_t expires;
    apr_time_t last_seen;
    apr_int64_t epoch;
    apr_int64_t revoke_seq;
    apr_time_t user_checked;
    /* btsso_session_attr_t, within the bounds above; NULL: none */
    const apr_array_header_t *attributes;
} btsso_session_record_t;

/* The record of rec in pool memory, its length in *len; NULL when a
 * required string is missing, an attribute is beyond the bounds or the
 * record would exceed BTSSO_SESSION_RECORD_MAX. */
unsigned char *btsso_session_record_encode(apr_pool_t *p,
                                           const btsso_session_record_t *rec,
                                           apr_size_t *len);

/* Decode buf (len octets, which must stay alive and unchanged as long as
 * *out is used: its strings point into it).  1 decoded, 0 refused (see the
 * top of this file); *out is then unspecified. */
int btsso_session_record_decode(apr_pool_t *p, const unsigned char *buf,
                                apr_size_t len, btsso_session_record_t *out);

/* What btsso_session_attrs_bound() left out. */
typedef struct btsso_session_attrs_dropped_t {
    int attributes;             /* whole attributes */
    int values;                 /* values (of kept or dropped ones) */
    const char *first;          /* the Name of the first one concerned */
} btsso_session_attrs_dropped_t;

/*
 * The attributes of an assertion (btsso_session_attr_t, document order) as
 * a session keeps them: entries with the same Name merged into the first
 * (its FriendlyName kept), at most BTSSO_SESSION_MAX_ATTRS attributes and
 * BTSSO_SESSION_MAX_VALUES values each, BTSSO_SESSION_MAX_ATTR_OCTETS in
 * all.  What does not fit is left out and counted in *dropped; what comes
 * after it still goes in when it fits (a huge attribute does not push out
 * the small ones behind it).
 */
apr_array_header_t *btsso_session_attrs_bound(
    apr_pool_t *p, const apr_array_header_t *in,
    btsso_session_attrs_dropped_t *dropped);

/* "BTSSO_ATTR_" + the FriendlyName (else the Name), upper-cased, every
 * character (of UTF-8 text) outside [A-Z0-9] turned into one '_'. */
const char *btsso_session_attr_var(apr_pool_t *p,
                                   const btsso_session_attr_t *a);

/* Why btsso_session_attrs_env() skipped an attribute. */
#define BTSSO_ATTR_SKIP_TAKEN   1   /* a variable of it is another's */
#define BTSSO_ATTR_SKIP_CONTROL 2   /* a control character (core/text.h) */

typedef void (*btsso_session_env_set_fn)(void *ctx, const char *var,
                                         const char *value);
typedef void (*btsso_session_env_skip_fn)(void *ctx,
                                          const btsso_session_attr_t *a,
                                          const char *var, int why);

/*
 * The environment variables of the attributes: for each, in order, VAR
 * (the first value, when it has one), VAR_N (the count) and VAR_1..VAR_n,
 * VAR from btsso_session_attr_var().  An attribute any of whose variables
 * an earlier attribute already set is skipped whole (the first keeps the
 * name), as is one with a control character in a name or a value; skip
 * (may be NULL) hears of each.
 */
void btsso_session_attrs_env(apr_pool_t *p, const apr_array_header_t *attrs,
                             btsso_session_env_set_fn set,
                             btsso_session_env_skip_fn skip, void *ctx);

/* The JSON object {"<Name>": ["value", ...], ...} of the attributes
 * (compact, UTF-8 as it is, '"', '\\' and controls escaped; an attribute
 * with a control character, or a Name already used, left out), as
 * base64url without padding: the value of X-BTSSO-Attributes. */
const char *btsso_session_attrs_header(apr_pool_t *p,
                                       const apr_array_header_t *attrs);

/* Whether an attribute whose Name or FriendlyName is `name` holds one of
 * the n `wanted` values (exact comparison).  1 yes, 0 no. */
int btsso_session_attrs_match(const apr_array_header_t *attrs,
                              const char *name, const char *const *wanted,
                              int n);

#endif /* BTSSO_SESSION_RECORD_H */
