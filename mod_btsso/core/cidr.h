/*
 * cidr.h - IP address ranges (CIDR) and the address classes that the
 * metadata fetcher refuses by default.
 *
 * Every address is held in its 16-byte IPv6 form; an IPv4 address or range
 * becomes its IPv4-mapped form (::ffff:a.b.c.d, prefix + 96).  So
 * "127.0.0.1/32" matches both a connection to 127.0.0.1 and one to
 * ::ffff:127.0.0.1, which reach the same host.
 *
 * Used by the fetcher (fetch/fetch.c) on the address curl is about to
 * connect to, and by the BTSSOMetadataFetchAllow directive to check its
 * arguments at configuration time.
 */
#ifndef BTSSO_CIDR_H
#define BTSSO_CIDR_H

#include <sys/socket.h>
#include <apr_pools.h>
#include "core/btsso_error.h"

/* An ordered list of CIDR ranges; opaque, pool-owned. */
typedef struct btsso_cidr_list_t btsso_cidr_list_t;

/* An empty list. */
btsso_cidr_list_t *btsso_cidr_list_make(apr_pool_t *p);

/* Add one range: "a.b.c.d/n" (n 0..32), "v6addr/n" (n 0..128), or a bare
 * address (a single host: /32 or /128).  Strict: dotted-quad IPv4 only (no
 * "127.1", hex or octal forms), no zone ids ("fe80::1%eth0"), a decimal
 * prefix without sign, and no host bits set beyond the prefix
 * ("10.1.2.3/8" is refused: the detail suggests "10.0.0.0/8").
 * Error: "bad_cidr" (400), detail naming the offending text and why.
 * On error the list is unchanged. */
btsso_error_t *btsso_cidr_list_add(apr_pool_t *p, btsso_cidr_list_t *list,
                                   const char *text);

/* Parse a whole list separated by spaces, tabs or commas into a new list
 * (an empty text gives an empty list).  Error as btsso_cidr_list_add. */
btsso_error_t *btsso_cidr_list_parse(apr_pool_t *p, const char *text,
                                     btsso_cidr_list_t **out);

/* Number of ranges in the list (0 for NULL). */
int btsso_cidr_list_count(const btsso_cidr_list_t *list);

/* The ranges in canonical text ("10.0.0.0/8 fd00::/8"), for logs and
 * diagnostics; "" for an empty or NULL list. */
const char *btsso_cidr_list_text(apr_pool_t *p, const btsso_cidr_list_t *list);

/* Non-zero when the address of sa (AF_INET or AF_INET6; the port is
 * ignored) lies in one of the ranges.  NULL list or other families: 0. */
int btsso_cidr_list_match(const btsso_cidr_list_t *list,
                          const struct sockaddr *sa);

/* Why an address must not be fetched from by default, or NULL for an
 * ordinary public address.  The answer reads after "address X is ":
 * "loopback", "private", "link-local", "a cloud metadata service",
 * "CGNAT shared address space", "unspecified", "multicast", "broadcast",
 * "reserved", ...  IPv6 forms that embed an IPv4 address (IPv4-mapped
 * ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by the
 * embedded address; the deprecated IPv4-compatible ::/96 is refused whole.
 * Families other than AF_INET/AF_INET6 are "not an IP address". */
const char *btsso_ip_refusal_reason(const struct sockaddr *sa);

/* Parse a numeric IPv4 (dotted quad) or IPv6 address into *out (port 0).
 * Returns 0 on success, -1 when text is not such an address. */
int btsso_ip_parse(const char *text, struct sockaddr_storage *out);

/* Numeric text of the address of sa ("127.0.0.1", "::ffff:127.0.0.1");
 * "(unknown family N)" for other families. */
const char *btsso_ip_text(apr_pool_t *p, const struct sockaddr *sa);

#endif /* BTSSO_CIDR_H */
