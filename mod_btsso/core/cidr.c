/*
 * cidr.c - IP ranges and the address classes refused by the fetcher.
 *
 * All matching happens on the 16-byte IPv6 form (IPv4 as ::ffff:a.b.c.d),
 * so an IPv4 range also covers the IPv4-mapped spelling of its addresses:
 * a socket to ::ffff:127.0.0.1 reaches 127.0.0.1, and must be judged as it.
 */
#include <string.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "cidr.h"

/* INET6_ADDRSTRLEN plus "/128" and room to spare; longer text is no CIDR. */
#define CIDR_TEXT_MAX 64

typedef struct {
    unsigned char addr[16];
    unsigned int prefix;        /* 0..128, over the 16-byte form */
    int entered_as_v4;          /* print back as a.b.c.d/n */
} cidr_range_t;

struct btsso_cidr_list_t {
    apr_array_header_t *ranges; /* of cidr_range_t */
};

static const unsigned char v4_mapped_prefix[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

/* The 16-byte form of a socket address; -1 for non-IP families. */
static int sockaddr_to_v6_bytes(const struct sockaddr *sa,
                                unsigned char out[16])
{
    if (sa == NULL) {
        return -1;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        memcpy(out, v4_mapped_prefix, 12);
        memcpy(out + 12, &sin->sin_addr.s_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        memcpy(out, sin6->sin6_addr.s6_addr, 16);
        return 0;
    }
    return -1;
}

/* Non-zero when the first prefix_bits bits of a and b are equal. */
static int bits_equal(const unsigned char *a, const unsigned char *b,
                      unsigned int prefix_bits)
{
    unsigned int full_bytes = prefix_bits / 8;
    unsigned int rest_bits = prefix_bits % 8;

    if (memcmp(a, b, full_bytes) != 0) {
        return 0;
    }
    if (rest_bits != 0) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest_bits));
        if ((a[full_bytes] & mask) != (b[full_bytes] & mask)) {
            return 0;
        }
    }
    return 1;
}

/* Clear every bit after prefix_bits; returns non-zero when any was set. */
static int clear_host_bits(unsigned char addr[16], unsigned int prefix_bits)
{
    int had_host_bits = 0;
    unsigned int i;

    for (i = 0; i < 16; i++) {
        unsigned int byte_start = i * 8;
        unsigned char keep;
        if (byte_start + 8 <= prefix_bits) {
            continue;
        }
        keep = byte_start >= prefix_bits
            ? 0 : (unsigned char)(0xff << (8 - (prefix_bits - byte_start)));
        if ((addr[i] & (unsigned char)~keep) != 0) {
            had_host_bits = 1;
        }
        addr[i] &= keep;
    }
    return had_host_bits;
}

static const char *range_text(apr_pool_t *p, const cidr_range_t *r)
{
    char buf[INET6_ADDRSTRLEN];

    if (r->entered_as_v4) {
        inet_ntop(AF_INET, r->addr + 12, buf, sizeof(buf));
        return apr_psprintf(p, "%s/%u", buf, r->prefix - 96);
    }
    inet_ntop(AF_INET6, r->addr, buf, sizeof(buf));
    return apr_psprintf(p, "%s/%u", buf, r->prefix);
}

static btsso_error_t *bad_cidr(apr_pool_t *p, const char *text,
                               const char *why)
{
    return btsso_error_make(p, 400, "bad_cidr",
                            "Not a valid IP address range (CIDR).",
                            "'%s': %s", text, why);
}

/* Parse one "addr[/prefix]" strictly into *out. */
static btsso_error_t *parse_range(apr_pool_t *p, const char *text,
                                  cidr_range_t *out)
{
    char addr_text[CIDR_TEXT_MAX];
    const char *slash;
    const char *prefix_text = NULL;
    size_t addr_len;
    unsigned int max_prefix;
    unsigned int prefix;
    cidr_range_t r;

    memset(&r, 0, sizeof(r));
    if (strlen(text) >= CIDR_TEXT_MAX) {
        return bad_cidr(p, apr_pstrndup(p, text, CIDR_TEXT_MAX), "too long");
    }
    slash = strchr(text, '/');
    addr_len = slash != NULL ? (size_t)(slash - text) : strlen(text);
    memcpy(addr_text, text, addr_len);
    addr_text[addr_len] = '\0';
    if (slash != NULL) {
        prefix_text = slash + 1;
    }

    if (strchr(addr_text, ':') != NULL) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, addr_text, &a6) != 1) {
            return bad_cidr(p, text, "not an IPv6 address");
        }
        memcpy(r.addr, a6.s6_addr, 16);
        max_prefix = 128;
    }
    else {
        struct in_addr a4;
        /* inet_pton, unlike inet_aton, takes dotted quads only: no
         * "127.1", "0x7f.1" or "2130706433" in an operator's allow list. */
        if (inet_pton(AF_INET, addr_text, &a4) != 1) {
            return bad_cidr(p, text,
                            "not an IPv4 address (dotted quad a.b.c.d) "
                            "nor an IPv6 address");
        }
        memcpy(r.addr, v4_mapped_prefix, 12);
        memcpy(r.addr + 12, &a4.s_addr, 4);
        r.entered_as_v4 = 1;
        max_prefix = 32;
    }

    if (prefix_text == NULL) {
        prefix = max_prefix;
    }
    else {
        size_t n = strlen(prefix_text);
        size_t i;
        if (n == 0 || n > 3) {
            return bad_cidr(p, text, apr_psprintf(p,
                            "prefix length must be a number 0..%u",
                            max_prefix));
        }
        prefix = 0;
        for (i = 0; i < n; i++) {
            if (prefix_text[i] < '0' || prefix_text[i] > '9') {
                return bad_cidr(p, text, apr_psprintf(p,
                                "prefix length must be a number 0..%u",
                                max_prefix));
            }
            prefix = prefix * 10 + (unsigned int)(prefix_text[i] - '0');
        }
        if (prefix > max_prefix) {
            return bad_cidr(p, text, apr_psprintf(p,
                            "prefix length %u is more than %u",
                            prefix, max_prefix));
        }
    }
    r.prefix = r.entered_as_v4 ? prefix + 96 : prefix;

    /* A range with host bits set is most likely a typo (10.1.2.3/8 for
     * 10.1.2.3/32?); guessing either way could open more than meant. */
    if (clear_host_bits(r.addr, r.prefix)) {
        return bad_cidr(p, text, apr_psprintf(p,
                        "host bits set beyond the prefix; did you mean %s?",
                        range_text(p, &r)));
    }
    *out = r;
    return NULL;
}

btsso_cidr_list_t *btsso_cidr_list_make(apr_pool_t *p)
{
    btsso_cidr_list_t *list = apr_pcalloc(p, sizeof(*list));
    list->ranges = apr_array_make(p, 4, sizeof(cidr_range_t));
    return list;
}

btsso_error_t *btsso_cidr_list_add(apr_pool_t *p, btsso_cidr_list_t *list,
                                   const char *text)
{
    cidr_range_t r;
    btsso_error_t *err;

    if (text == NULL || *text == '\0') {
        return bad_cidr(p, "", "empty");
    }
    err = parse_range(p, text, &r);
    if (err != NULL) {
        return err;
    }
    *(cidr_range_t *)apr_array_push(list->ranges) = r;
    return NULL;
}

btsso_error_t *btsso_cidr_list_parse(apr_pool_t *p, const char *text,
                                     btsso_cidr_list_t **out)
{
    static const char separators[] = " \t\r\n,";
    btsso_cidr_list_t *list = btsso_cidr_list_make(p);
    char *copy = apr_pstrdup(p, text != NULL ? text : "");
    char *state = NULL;
    char *token;

    for (token = apr_strtok(copy, separators, &state); token != NULL;
         token = apr_strtok(NULL, separators, &state)) {
        btsso_error_t *err = btsso_cidr_list_add(p, list, token);
        if (err != NULL) {
            return err;
        }
    }
    *out = list;
    return NULL;
}

int btsso_cidr_list_count(const btsso_cidr_list_t *list)
{
    return list != NULL ? list->ranges->nelts : 0;
}

const char *btsso_cidr_list_text(apr_pool_t *p, const btsso_cidr_list_t *list)
{
    const char *text = "";
    int i;

    for (i = 0; i < btsso_cidr_list_count(list); i++) {
        const cidr_range_t *r = &APR_ARRAY_IDX(list->ranges, i, cidr_range_t);
        text = apr_pstrcat(p, text, i > 0 ? " " : "", range_text(p, r), NULL);
    }
    return text;
}

int btsso_cidr_list_match(const btsso_cidr_list_t *list,
                          const struct sockaddr *sa)
{
    unsigned char addr[16];
    int i;

    if (list == NULL || sockaddr_to_v6_bytes(sa, addr) != 0) {
        return 0;
    }
    for (i = 0; i < list->ranges->nelts; i++) {
        const cidr_range_t *r = &APR_ARRAY_IDX(list->ranges, i, cidr_range_t);
        if (bits_equal(addr, r->addr, r->prefix)) {
            return 1;
        }
    }
    return 0;
}

/* ---- address classes ---------------------------------------------------- */

typedef struct {
    uint32_t net;               /* host byte order */
    unsigned int bits;
    const char *why;
} v4_class_t;

/* First match wins: the specific entries come before the ranges that
 * contain them (the metadata service inside link-local and CGNAT). */
static const v4_class_t v4_classes[] = {
    { 0xA9FEA9FEu, 32, "a cloud metadata service" },   /* 169.254.169.254 */
    { 0x646464C8u, 32, "a cloud metadata service" },   /* 100.100.100.200 */
    { 0xC00000C0u, 32, "a cloud metadata service" },   /* 192.0.0.192 */
    { 0xFFFFFFFFu, 32, "broadcast" },                  /* 255.255.255.255 */
    { 0x00000000u, 8, "unspecified (0.0.0.0/8)" },
    { 0x0A000000u, 8, "private" },                     /* 10/8 */
    { 0x64400000u, 10, "CGNAT shared address space" }, /* 100.64/10 */
    { 0x7F000000u, 8, "loopback" },                    /* 127/8 */
    { 0xA9FE0000u, 16, "link-local" },                 /* 169.254/16 */
    { 0xAC100000u, 12, "private" },                    /* 172.16/12 */
    { 0xC0000000u, 24, "reserved (IETF protocol assignments)" },
    { 0xC0000200u, 24, "reserved (documentation)" },   /* 192.0.2/24 */
    { 0xC0A80000u, 16, "private" },                    /* 192.168/16 */
    { 0xC6120000u, 15, "reserved (benchmarking)" },    /* 198.18/15 */
    { 0xC6336400u, 24, "reserved (documentation)" },   /* 198.51.100/24 */
    { 0xCB007100u, 24, "reserved (documentation)" },   /* 203.0.113/24 */
    { 0xE0000000u, 4, "multicast" },                   /* 224/4 */
    { 0xF0000000u, 4, "reserved" },                    /* 240/4 */
};

static const char *v4_refusal_reason(const unsigned char a[4])
{
    uint32_t addr = ((uint32_t)a[0] << 24) | ((uint32_t)a[1] << 16)
                  | ((uint32_t)a[2] << 8) | (uint32_t)a[3];
    size_t i;

    for (i = 0; i < sizeof(v4_classes) / sizeof(v4_classes[0]); i++) {
        uint32_t mask = v4_classes[i].bits == 0
            ? 0 : 0xFFFFFFFFu << (32 - v4_classes[i].bits);
        if ((addr & mask) == v4_classes[i].net) {
            return v4_classes[i].why;
        }
    }
    return NULL;
}

typedef struct {
    unsigned char net[16];
    unsigned int bits;
    const char *why;            /* NULL: judge the embedded IPv4 address */
    int embedded_v4_at;         /* byte offset of that address */
} v6_class_t;

static const v6_class_t v6_classes[] = {
    { {0}, 128, "unspecified", 0 },
    { {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback", 0 },
    { {0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54}, 128,
      "a cloud metadata service", 0 },
    /* ::ffff:0:0/96 IPv4-mapped */
    { {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96, NULL, 12 },
    /* ::/96 IPv4-compatible: deprecated, and some stacks still tunnel it */
    { {0}, 96, "reserved (IPv4-compatible, deprecated)", 0 },
    /* 64:ff9b:1::/48 local-use NAT64 */
    { {0, 0x64, 0xff, 0x9b, 0, 0x01}, 48, "private (local-use NAT64)", 0 },
    /* 64:ff9b::/96 well-known NAT64 prefix */
    { {0, 0x64, 0xff, 0x9b}, 96, NULL, 12 },
    { {0x01, 0x00}, 64, "reserved (discard-only)", 0 },         /* 100::/64 */
    { {0x20, 0x01, 0x0d, 0xb8}, 32, "reserved (documentation)", 0 },
    { {0x20, 0x02}, 16, NULL, 2 },                              /* 6to4 */
    { {0xfc}, 7, "private", 0 },                                /* fc00::/7 */
    { {0xfe, 0x80}, 10, "link-local", 0 },                      /* fe80::/10 */
    { {0xfe, 0xc0}, 10, "private (site-local, deprecated)", 0 },
    { {0xff}, 8, "multicast", 0 },                              /* ff00::/8 */
};

const char *btsso_ip_refusal_reason(const struct sockaddr *sa)
{
    unsigned char addr[16];
    size_t i;

    if (sockaddr_to_v6_bytes(sa, addr) != 0) {
        return "not an IP address";
    }
    for (i = 0; i < sizeof(v6_classes) / sizeof(v6_classes[0]); i++) {
        const v6_class_t *c = &v6_classes[i];
        if (!bits_equal(addr, c->net, c->bits)) {
            continue;
        }
        if (c->why != NULL) {
            return c->why;
        }
        return v4_refusal_reason(addr + c->embedded_v4_at);
    }
    return NULL;
}

int btsso_ip_parse(const char *text, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL) {
        return -1;
    }
    if (strchr(text, ':') == NULL) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        sin->sin_family = AF_INET;
        return inet_pton(AF_INET, text, &sin->sin_addr) == 1 ? 0 : -1;
    }
    else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        sin6->sin6_family = AF_INET6;
        return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1 ? 0 : -1;
    }
}

const char *btsso_ip_text(apr_pool_t *p, const struct sockaddr *sa)
{
    char buf[INET6_ADDRSTRLEN];

    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
        return apr_pstrdup(p, buf);
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
        return apr_pstrdup(p, buf);
    }
    return apr_psprintf(p, "(unknown family %d)",
                        sa != NULL ? (int)sa->sa_family : -1);
}
