/*
 * session_record.c - the compact session record and the session's
 * attributes (session_record.h has the format and the rules).
 */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "core/session_record.h"
#include "core/b64.h"
#include "core/text.h"

#define N_STRINGS 8
#define N_INTS 6
#define VARINT_MAX_OCTETS 4         /* lengths stay below 2^28 */

/* ---- encoding ----------------------------------------------------------- */

typedef struct wbuf {
    unsigned char *p;
    apr_size_t len;
    apr_size_t cap;             /* 0 while only measuring */
} wbuf;

static void put_octets(wbuf *w, const void *data, apr_size_t n)
{
    if (w->cap != 0) {
        memcpy(w->p + w->len, data, n);
    }
    w->len += n;
}

static void put_varint(wbuf *w, apr_size_t v)
{
    unsigned char b[VARINT_MAX_OCTETS + 1];
    apr_size_t n = 0;

    do {
        b[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v != 0) {
            b[n] |= 0x80;
        }
        n++;
    } while (v != 0 && n < sizeof(b));
    put_octets(w, b, n);
}

static void put_string(wbuf *w, const char *s)
{
    apr_size_t n;

    if (s == NULL) {
        put_varint(w, 0);
        return;
    }
    n = strlen(s);
    put_varint(w, n + 1);
    put_octets(w, s, n + 1);    /* with its NUL */
}

static void put_int64(wbuf *w, apr_int64_t v)
{
    apr_uint64_t u = (apr_uint64_t)v;
    unsigned char b[8];
    int i;

    for (i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(u & 0xff);
        u >>= 8;
    }
    put_octets(w, b, 8);
}

/* Whether attrs lie within the bounds a decoder checks. */
static int attrs_within_bounds(const apr_array_header_t *attrs)
{
    apr_size_t octets = 0;
    int i, j;

    if (attrs == NULL) {
        return 1;
    }
    if (attrs->nelts > BTSSO_SESSION_MAX_ATTRS) {
        return 0;
    }
    for (i = 0; i < attrs->nelts; i++) {
        const btsso_session_attr_t *a = &APR_ARRAY_IDX(attrs, i,
                                                       btsso_session_attr_t);
        int n = a->values != NULL ? a->values->nelts : 0;

        if (a->name == NULL || n > BTSSO_SESSION_MAX_VALUES) {
            return 0;
        }
        octets += strlen(a->name);
        octets += a->friendly_name != NULL ? strlen(a->friendly_name) : 0;
        for (j = 0; j < n; j++) {
            const char *v = APR_ARRAY_IDX(a->values, j, const char *);

            if (v == NULL) {
                return 0;
            }
            octets += strlen(v);
        }
    }
    return octets <= BTSSO_SESSION_MAX_ATTR_OCTETS;
}

static void put_record(wbuf *w, const btsso_session_record_t *rec)
{
    const char *strings[N_STRINGS];
    apr_int64_t ints[N_INTS];
    const apr_array_header_t *attrs = rec->attributes;
    unsigned char head[2] = { BTSSO_SESSION_RECORD_MAGIC,
                              BTSSO_SESSION_RECORD_VERSION };
    int i, j, n;

    strings[0] = rec->sp_id;
    strings[1] = rec->account;
    strings[2] = rec->email;
    strings[3] = rec->extension;
    strings[4] = rec->name_id;
    strings[5] = rec->name_id_format;
    strings[6] = rec->idp;
    strings[7] = rec->session_index;
    ints[0] = rec->created;
    ints[1] = rec->expires;
    ints[2] = rec->last_seen;
    ints[3] = rec->epoch;
    ints[4] = rec->revoke_seq;
    ints[5] = rec->user_checked;
    put_octets(w, head, 2);
    for (i = 0; i < N_STRINGS; i++) {
        put_string(w, strings[i]);
    }
    for (i = 0; i < N_INTS; i++) {
        put_int64(w, ints[i]);
    }
    n = attrs != NULL ? attrs->nelts : 0;
    put_varint(w, (apr_size_t)n);
    for (i = 0; i < n; i++) {
        const btsso_session_attr_t *a = &APR_ARRAY_IDX(attrs, i,
                                                       btsso_session_attr_t);
        int nv = a->values != NULL ? a->values->nelts : 0;

        put_string(w, a->name);
        put_string(w, a->friendly_name);
        put_varint(w, (apr_size_t)nv);
        for (j = 0; j < nv; j++) {
            put_string(w, APR_ARRAY_IDX(a->values, j, const char *));
        }
    }
}

unsigned char *btsso_session_record_encode(apr_pool_t *p,
                                           const btsso_session_record_t *rec,
                                           apr_size_t *len)
{
    wbuf w = { NULL, 0, 0 };

    if (rec->sp_id == NULL || rec->account == NULL || rec->email == NULL
        || rec->name_id == NULL || rec->idp == NULL
        || !attrs_within_bounds(rec->attributes)) {
        return NULL;
    }
    /* measure, then write: one allocation of the exact size */
    put_record(&w, rec);
    if (w.len > BTSSO_SESSION_RECORD_MAX) {
        return NULL;
    }
    w.cap = w.len;
    w.len = 0;
    w.p = apr_palloc(p, w.cap);
    put_record(&w, rec);
    *len = w.len;
    return w.p;
}

/* ---- decoding ------------------------------------------------------------ */

typedef struct rbuf {
    const unsigned char *p;
    apr_size_t len;
    apr_size_t pos;
    int bad;
} rbuf;

static apr_size_t get_varint(rbuf *r)
{
    apr_size_t v = 0;
    int shift = 0, i;

    for (i = 0; i < VARINT_MAX_OCTETS; i++) {
        unsigned char b;

        if (r->pos >= r->len) {
            r->bad = 1;
            return 0;
        }
        b = r->p[r->pos++];
        v |= (apr_size_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80)) {
            /* canonical: no trailing zero group */
            if (i > 0 && b == 0) {
                r->bad = 1;
            }
            return v;
        }
    }
    r->bad = 1;
    return 0;
}

/* A string, NULL when absent; r->bad set when malformed. */
static const char *get_string(rbuf *r)
{
    apr_size_t n = get_varint(r);
    const char *s;

    if (r->bad || n == 0) {
        return NULL;
    }
    n--;                                /* octets before the NUL */
    if (n >= r->len - r->pos) {         /* room for n octets and the NUL */
        r->bad = 1;
        return NULL;
    }
    s = (const char *)r->p + r->pos;
    if (r->p[r->pos + n] != '\0' || memchr(s, '\0', n) != NULL) {
        r->bad = 1;
        return NULL;
    }
    r->pos += n + 1;
    return s;
}

static const char *get_required(rbuf *r)
{
    const char *s = get_string(r);

    if (s == NULL) {
        r->bad = 1;
    }
    return s;
}

static apr_int64_t get_int64(rbuf *r)
{
    apr_uint64_t u = 0;
    int i;

    if (r->len - r->pos < 8) {
        r->bad = 1;
        return 0;
    }
    for (i = 0; i < 8; i++) {
        u = u << 8 | r->p[r->pos++];
    }
    return (apr_int64_t)u;
}

int btsso_session_record_decode(apr_pool_t *p, const unsigned char *buf,
                                apr_size_t len, btsso_session_record_t *out)
{
    rbuf r = { buf, len, 0, 0 };
    apr_array_header_t *attrs;
    apr_size_t n, octets = 0, i, j;

    memset(out, 0, sizeof(*out));
    if (buf == NULL || len < 2 || len > BTSSO_SESSION_RECORD_MAX
        || buf[0] != BTSSO_SESSION_RECORD_MAGIC
        || buf[1] != BTSSO_SESSION_RECORD_VERSION) {
        return 0;
    }
    r.pos = 2;
    out->sp_id = get_required(&r);
    out->account = get_required(&r);
    out->email = get_required(&r);
    out->extension = get_string(&r);
    out->name_id = get_required(&r);
    out->name_id_format = get_string(&r);
    out->idp = get_required(&r);
    out->session_index = get_string(&r);
    out->created = get_int64(&r);
    out->expires = get_int64(&r);
    out->last_seen = get_int64(&r);
    out->epoch = get_int64(&r);
    out->revoke_seq = get_int64(&r);
    out->user_checked = get_int64(&r);
    n = get_varint(&r);
    if (r.bad || n > BTSSO_SESSION_MAX_ATTRS) {
        return 0;
    }
    attrs = apr_array_make(p, n > 0 ? (int)n : 1,
                           sizeof(btsso_session_attr_t));
    for (i = 0; i < n; i++) {
        btsso_session_attr_t *a = apr_array_push(attrs);
        apr_size_t nv;

        a->name = get_required(&r);
        a->friendly_name = get_string(&r);
        nv = get_varint(&r);
        if (r.bad || nv > BTSSO_SESSION_MAX_VALUES) {
            return 0;
        }
        octets += strlen(a->name);
        octets += a->friendly_name != NULL ? strlen(a->friendly_name) : 0;
        a->values = apr_array_make(p, nv > 0 ? (int)nv : 1,
                                   sizeof(const char *));
        for (j = 0; j < nv; j++) {
            const char *v = get_required(&r);

            if (r.bad) {
                return 0;
            }
            octets += strlen(v);
            APR_ARRAY_PUSH(a->values, const char *) = v;
        }
        if (octets > BTSSO_SESSION_MAX_ATTR_OCTETS) {
            return 0;
        }
    }
    if (r.bad || r.pos != r.len) {
        return 0;
    }
    out->attributes = attrs;
    return 1;
}

/* ---- bounding at the login ------------------------------------------------ */

static void note_drop(btsso_session_attrs_dropped_t *d, const char *name,
                      int attributes, int values)
{
    d->attributes += attributes;
    d->values += values;
    if (d->first == NULL) {
        d->first = name;
    }
}

apr_array_header_t *btsso_session_attrs_bound(
    apr_pool_t *p, const apr_array_header_t *in,
    btsso_session_attrs_dropped_t *dropped)
{
    apr_array_header_t *kept = apr_array_make(p, 8,
                                              sizeof(btsso_session_attr_t));
    apr_hash_t *by_name = apr_hash_make(p);
    apr_size_t octets = 0;
    int i, j;

    memset(dropped, 0, sizeof(*dropped));
    for (i = 0; in != NULL && i < in->nelts; i++) {
        const btsso_session_attr_t *a = &APR_ARRAY_IDX(in, i,
                                                       btsso_session_attr_t);
        int nv = a->values != NULL ? a->values->nelts : 0;
        btsso_session_attr_t *k;
        void *at;
        const char *fn;
        apr_size_t cost;

        if (a->name == NULL || *a->name == '\0') {
            note_drop(dropped, "", 1, nv);
            continue;
        }
        at = apr_hash_get(by_name, a->name, APR_HASH_KEY_STRING);
        if (at == NULL) {
            fn = a->friendly_name != NULL && *a->friendly_name != '\0'
                 ? a->friendly_name : NULL;
            cost = strlen(a->name) + (fn != NULL ? strlen(fn) : 0);
            if (kept->nelts >= BTSSO_SESSION_MAX_ATTRS
                || octets + cost > BTSSO_SESSION_MAX_ATTR_OCTETS) {
                note_drop(dropped, a->name, 1, nv);
                continue;
            }
            octets += cost;
            k = apr_array_push(kept);
            k->name = a->name;
            k->friendly_name = fn;
            k->values = apr_array_make(p, nv > 0 ? nv : 1,
                                       sizeof(const char *));
            /* the array may move as it grows: index by position */
            apr_hash_set(by_name, a->name, APR_HASH_KEY_STRING,
                         (void *)(apr_size_t)kept->nelts);
        }
        else {
            k = &APR_ARRAY_IDX(kept, (int)((apr_size_t)at - 1),
                               btsso_session_attr_t);
        }
        for (j = 0; j < nv; j++) {
            const char *v = APR_ARRAY_IDX(a->values, j, const char *);
            apr_size_t vl = v != NULL ? strlen(v) : 0;

            if (v == NULL || k->values->nelts >= BTSSO_SESSION_MAX_VALUES
                || octets + vl > BTSSO_SESSION_MAX_ATTR_OCTETS) {
                note_drop(dropped, a->name, 0, 1);
                continue;
            }
            octets += vl;
            APR_ARRAY_PUSH(k->values, const char *) = v;
        }
        if (at == NULL && nv > 0 && k->values->nelts == 0) {
            /* not one of its values fitted: no empty stand-in for it */
            octets -= strlen(k->name)
                      + (k->friendly_name ? strlen(k->friendly_name) : 0);
            apr_hash_set(by_name, a->name, APR_HASH_KEY_STRING, NULL);
            apr_array_pop(kept);
            dropped->attributes++;
        }
    }
    return kept;
}

/* ---- export ---------------------------------------------------------------- */

const char *btsso_session_attr_var(apr_pool_t *p,
                                   const btsso_session_attr_t *a)
{
    static const char prefix[] = "BTSSO_ATTR_";
    const char *src = a->friendly_name != NULL && *a->friendly_name != '\0'
                      ? a->friendly_name : a->name;
    const unsigned char *s = (const unsigned char *)(src ? src : "");
    char *out = apr_palloc(p, sizeof(prefix) + strlen((const char *)s));
    char *o = out + sizeof(prefix) - 1;

    memcpy(out, prefix, sizeof(prefix) - 1);
    for (; *s != '\0'; s++) {
        if (*s >= 'a' && *s <= 'z') {
            *o++ = (char)(*s - 'a' + 'A');
        }
        else if ((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')) {
            *o++ = (char)*s;
        }
        else if ((*s & 0xc0) != 0x80) {
            /* one '_' per character: UTF-8 continuation octets add none */
            *o++ = '_';
        }
    }
    *o = '\0';
    return out;
}

static int attr_has_control(const btsso_session_attr_t *a)
{
    int j;

    if (btsso_text_has_control(a->name)
        || btsso_text_has_control(a->friendly_name)) {
        return 1;
    }
    for (j = 0; a->values != NULL && j < a->values->nelts; j++) {
        if (btsso_text_has_control(APR_ARRAY_IDX(a->values, j,
                                                 const char *))) {
            return 1;
        }
    }
    return 0;
}

/* Whether x is one of the names an attribute exported as var with nv
 * values takes: var, var_N, var_1 ... var_nv. */
static int is_name_of(const char *x, const char *var, apr_size_t var_len,
                      int nv)
{
    const char *d;
    long i = 0;

    if (strncmp(x, var, var_len) != 0) {
        return 0;
    }
    x += var_len;
    if (*x == '\0') {
        return 1;
    }
    if (*x++ != '_') {
        return 0;
    }
    if (x[0] == 'N' && x[1] == '\0') {
        return 1;
    }
    if (*x < '1' || *x > '9') {
        return 0;       /* what %d makes: no sign, no leading zero */
    }
    for (d = x; *d >= '0' && *d <= '9' && d - x < 9; d++) {
        i = i * 10 + (*d - '0');
    }
    return *d == '\0' && i <= nv;
}

/* var + "_" + suffix (a number, or "N" when n < 0). */
static const char *var_name(apr_pool_t *p, const char *var,
                            apr_size_t var_len, int n)
{
    char *out = apr_palloc(p, var_len + 13), *o = out + var_len + 1;
    char digits[12];
    int k = 0;

    memcpy(out, var, var_len);
    out[var_len] = '_';
    if (n < 0) {
        *o++ = 'N';
    }
    else {
        do {
            digits[k++] = (char)('0' + n % 10);
            n /= 10;
        } while (n > 0);
        while (k > 0) {
            *o++ = digits[--k];
        }
    }
    *o = '\0';
    return out;
}

typedef struct taken_var {
    const char *var;
    apr_size_t len;
    int nv;
} taken_var;

/*
 * Without a hash of every name taken (that was most of a protected
 * request's cost here): two attributes clash when one's variable is one
 * of the other's names.  Their other names cannot meet: "_N" ends in a
 * letter, "_<i>" in a digit, and a value suffix is digits only.
 */
void btsso_session_attrs_env(apr_pool_t *p, const apr_array_header_t *attrs,
                             btsso_session_env_set_fn set,
                             btsso_session_env_skip_fn skip, void *ctx)
{
    taken_var *taken;
    int i, j, k, ntaken = 0;

    if (attrs == NULL || attrs->nelts == 0) {
        return;
    }
    taken = apr_palloc(p, sizeof(*taken) * (apr_size_t)attrs->nelts);
    for (i = 0; i < attrs->nelts; i++) {
        const btsso_session_attr_t *a = &APR_ARRAY_IDX(attrs, i,
                                                       btsso_session_attr_t);
        const char *var = btsso_session_attr_var(p, a);
        apr_size_t len = strlen(var);
        int nv = a->values != NULL ? a->values->nelts : 0;
        int clash = 0;

        if (attr_has_control(a)) {
            if (skip != NULL) {
                skip(ctx, a, var, BTSSO_ATTR_SKIP_CONTROL);
            }
            continue;
        }
        for (k = 0; k < ntaken && !clash; k++) {
            clash = is_name_of(var, taken[k].var, taken[k].len, taken[k].nv)
                    || is_name_of(taken[k].var, var, len, nv);
        }
        if (clash) {
            if (skip != NULL) {
                skip(ctx, a, var, BTSSO_ATTR_SKIP_TAKEN);
            }
            continue;
        }
        taken[ntaken].var = var;
        taken[ntaken].len = len;
        taken[ntaken].nv = nv;
        ntaken++;
        if (nv > 0) {
            set(ctx, var, APR_ARRAY_IDX(a->values, 0, const char *));
        }
        set(ctx, var_name(p, var, len, -1), apr_itoa(p, nv));
        for (j = 0; j < nv; j++) {
            set(ctx, var_name(p, var, len, j + 1),
                APR_ARRAY_IDX(a->values, j, const char *));
        }
    }
}

/* Append s as a JSON string. */
static char *json_string(char *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *c;

    *o++ = '"';
    for (c = (const unsigned char *)s; *c != '\0'; c++) {
        if (*c == '"' || *c == '\\') {
            *o++ = '\\';
            *o++ = (char)*c;
        }
        else if (*c < 0x20 || *c == 0x7f) {
            /* none get here (attributes with controls are left out), but
             * a JSON string must never hold one raw */
            memcpy(o, "\\u00", 4);
            o += 4;
            *o++ = hex[*c >> 4];
            *o++ = hex[*c & 15];
        }
        else {
            *o++ = (char)*c;
        }
    }
    *o++ = '"';
    return o;
}

const char *btsso_session_attrs_header(apr_pool_t *p,
                                       const apr_array_header_t *attrs)
{
    apr_hash_t *seen = apr_hash_make(p);
    apr_size_t room = 3;
    char *json, *o;
    int i, j, first = 1;

    /* worst case: every octet escaped as \u00XX (6 octets), plus quotes,
     * colons, commas and brackets */
    for (i = 0; attrs != NULL && i < attrs->nelts; i++) {
        const btsso_session_attr_t *a = &APR_ARRAY_IDX(attrs, i,
                                                       btsso_session_attr_t);

        room += 6 * strlen(a->name) + 6;
        for (j = 0; a->values != NULL && j < a->values->nelts; j++) {
            room += 6 * strlen(APR_ARRAY_IDX(a->values, j, const char *))
                    + 3;
        }
    }
    o = json = apr_palloc(p, room);
    *o++ = '{';
    for (i = 0; attrs != NULL && i < attrs->nelts; i++) {
        const btsso_session_attr_t *a = &APR_ARRAY_IDX(attrs, i,
                                                       btsso_session_attr_t);

        if (attr_has_control(a)
            || apr_hash_get(seen, a->name, APR_HASH_KEY_STRING) != NULL) {
            continue;
        }
        apr_hash_set(seen, a->name, APR_HASH_KEY_STRING, "");
        if (!first) {
            *o++ = ',';
        }
        first = 0;
        o = json_string(o, a->name);
        *o++ = ':';
        *o++ = '[';
        for (j = 0; a->values != NULL && j < a->values->nelts; j++) {
            if (j > 0) {
                *o++ = ',';
            }
            o = json_string(o, APR_ARRAY_IDX(a->values, j, const char *));
        }
        *o++ = ']';
    }
    *o++ = '}';
    return btsso_b64url_encode(p, (const unsigned char *)json,
                               (apr_size_t)(o - json));
}

int btsso_session_attrs_match(const apr_array_header_t *attrs,
                              const char *name, const char *const *wanted,
                              int n)
{
    int i, j, k;

    for (i = 0; attrs != NULL && i < attrs->nelts; i++) {
        const btsso_session_attr_t *a = &APR_ARRAY_IDX(attrs, i,
                                                       btsso_session_attr_t);

        if (strcmp(a->name, name) != 0
            && (a->friendly_name == NULL
                || strcmp(a->friendly_name, name) != 0)) {
            continue;
        }
        for (j = 0; a->values != NULL && j < a->values->nelts; j++) {
            const char *v = APR_ARRAY_IDX(a->values, j, const char *);

            for (k = 0; k < n; k++) {
                if (strcmp(v, wanted[k]) == 0) {
                    return 1;
                }
            }
        }
    }
    return 0;
}
