/*
 * fuzz_common.h - what every harness in t/fuzz shares: APR and libxml2 set
 * up once, one pool per input (cleared after it), and the input split into
 * the message and an optional control block.
 *
 * Control block: when the input holds a NUL byte, the bytes after the LAST
 * NUL are options for the harness (clock offset, which expectation, ...)
 * and the message is what comes before it.  Seeds made from the test
 * fixtures hold no NUL, so they run with the default options; the fuzzer
 * learns to append "\0" + options and so reaches the checks that come
 * after a signature verified (times, audience, InResponseTo) with the
 * seeds' intact signatures.  The block itself cannot hold a NUL (the last
 * NUL ends the message), so option bytes are chosen to need none: a flag
 * byte 0x80 spells "no flags", and offsets are centred on 0x8080
 * (fuzz_opt_offset).
 *
 * FUZZ_CHECK(cond) aborts on a broken invariant: libFuzzer reports it as a
 * crash and keeps the input; the replay driver dies with it.
 */
#ifndef BTSSO_FUZZ_COMMON_H
#define BTSSO_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                    \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,     \
                    __LINE__, #cond);                                       \
            abort();                                                        \
        }                                                                   \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);

/* LeakSanitizer: what a harness sets up once (keys, certificates) lives
 * in the root pool, and Debian's APR takes pool memory from mmap, which
 * LeakSanitizer does not scan: objects only a pool points to look leaked
 * whenever libFuzzer's per-input leak check scans the heap.  Set-up runs
 * between FUZZ_LSAN_OFF() and FUZZ_LSAN_ON(), so its allocations are not
 * counted; everything an input allocates still is. */
#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_HAVE_LSAN 1
#endif
#endif
#ifdef FUZZ_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#define FUZZ_LSAN_OFF() __lsan_disable()
#define FUZZ_LSAN_ON() __lsan_enable()
#else
#define FUZZ_LSAN_OFF() ((void)0)
#define FUZZ_LSAN_ON() ((void)0)
#endif

static apr_pool_t *fuzz_root;

/* At exit the root pool goes, and with it what its cleanups free (the SP
 * key's xmlsec key). */
static void fuzz_root_destroy(void)
{
    if (fuzz_root != NULL) {
        apr_pool_destroy(fuzz_root);
        fuzz_root = NULL;
    }
}

/* APR once; the harness's own set-up is its business (done in
 * LLVMFuzzerInitialize, outside libFuzzer's per-input leak check). */
static inline apr_pool_t *fuzz_root_pool(void)
{
    if (fuzz_root == NULL) {
        if (apr_initialize() != APR_SUCCESS
            || apr_pool_create(&fuzz_root, NULL) != APR_SUCCESS) {
            abort();
        }
        atexit(fuzz_root_destroy);
    }
    return fuzz_root;
}

typedef struct fuzz_input_t {
    char *msg;                  /* NUL-terminated copy, pool-owned */
    size_t msg_len;
    const uint8_t *opt;         /* control block, may be empty */
    size_t opt_len;
} fuzz_input_t;

static inline void fuzz_split(apr_pool_t *p, const uint8_t *data, size_t size,
                       fuzz_input_t *in)
{
    const uint8_t *nul = NULL;
    size_t i;

    for (i = size; i > 0; i--) {
        if (data[i - 1] == 0) {
            nul = data + i - 1;
            break;
        }
    }
    in->msg_len = nul != NULL ? (size_t)(nul - data) : size;
    in->msg = apr_palloc(p, in->msg_len + 1);
    memcpy(in->msg, data, in->msg_len);
    in->msg[in->msg_len] = '\0';
    in->opt = nul != NULL ? nul + 1 : data + size;
    in->opt_len = nul != NULL ? size - in->msg_len - 1 : 0;
}

/* Option byte i, or 0 past the end. */
static inline unsigned fuzz_opt(const fuzz_input_t *in, size_t i)
{
    return i < in->opt_len ? in->opt[i] : 0u;
}

#ifdef FUZZ_LIBXML
#include <stdarg.h>
#include <libxml/xmlerror.h>

/* The core never writes to stderr (in httpd that is the error log, and a
 * hostile document must not reach it): every libxml2 call of the core runs
 * with a quiet structured error handler.  Anything that still falls
 * through to libxml2's generic handler, whose default prints to stderr,
 * aborts here so that the fuzzer reports it with its input. */
static void fuzz_generic_error(void *ctx, const char *msg, ...)
{
    va_list ap;

    (void)ctx;
    fputs("fuzz: libxml2 would have written to stderr: ", stderr);
    va_start(ap, msg);
    vfprintf(stderr, msg, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static inline void fuzz_trap_libxml_stderr(void)
{
    xmlSetGenericErrorFunc(NULL, fuzz_generic_error);
}
#endif

/* Options i and i+1 as a signed offset: 0x80 0x80 is 0, so no NUL is
 * needed for small values (range -32896..32895); 0 when absent. */
static inline int fuzz_opt_offset(const fuzz_input_t *in, size_t i)
{
    if (in->opt_len < i + 2) {
        return 0;
    }
    return (int)(fuzz_opt(in, i) << 8 | fuzz_opt(in, i + 1)) - 0x8080;
}

/* Read a whole file under TOP_SRCDIR into the pool (abort when missing:
 * a harness without its key would fuzz nothing useful). */
static inline char *fuzz_slurp(apr_pool_t *p, const char *rel, size_t *len)
{
    const char *path = apr_pstrcat(p, TOP_SRCDIR, "/", rel, NULL);
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "fuzz: cannot read %s\n", path);
        abort();
    }
    buf = apr_palloc(p, (apr_size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        abort();
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL) {
        *len = (size_t)n;
    }
    return buf;
}

#endif /* BTSSO_FUZZ_COMMON_H */
