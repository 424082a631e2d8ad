/*
 * btsso_error.c - error values of the core library.
 */
#include <stdarg.h>
#include <apr_strings.h>

#include "btsso_error.h"

btsso_error_t *btsso_error_make(apr_pool_t *p, int status, const char *code,
                                const char *message,
                                const char *detail_fmt, ...)
{
    btsso_error_t *e = apr_pcalloc(p, sizeof(*e));
    va_list ap;

    e->status = status;
    e->code = code;
    e->message = message;
    if (detail_fmt != NULL) {
        va_start(ap, detail_fmt);
        e->detail = apr_pvsprintf(p, detail_fmt, ap);
        va_end(ap);
    }
    return e;
}

const char *btsso_error_line(apr_pool_t *p, const btsso_error_t *e)
{
    if (e == NULL) {
        return "ok";
    }
    if (e->detail != NULL && *e->detail != '\0') {
        return apr_psprintf(p, "%s: %s (%s)", e->code, e->message, e->detail);
    }
    return apr_psprintf(p, "%s: %s", e->code, e->message);
}
