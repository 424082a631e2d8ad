/*
 * confval.c - directive value syntax shared by httpd and btssoctl.
 */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include "core/confval.h"

#define NOT_A_SIZE "is not a size (a number with an optional K, M or G suffix)"
#define NOT_A_DURATION "is not a duration (seconds, or a number with the " \
                       "unit ms, s, mi or h, as in 90s, 30mi, 8h)"

const char *btsso_confval_size(const char *arg, apr_off_t *out)
{
    char *end = NULL;
    apr_int64_t n, mult = 1;

    if (arg == NULL || !apr_isdigit(*arg)) {
        return NOT_A_SIZE;
    }
    n = apr_strtoi64(arg, &end, 10);
    if (end == NULL || n <= 0) {
        return NOT_A_SIZE;
    }
    if (*end != '\0') {
        switch (apr_toupper(*end)) {
        case 'K': mult = 1024; break;
        case 'M': mult = 1024 * 1024; break;
        case 'G': mult = 1024 * 1024 * 1024; break;
        default: return NOT_A_SIZE;
        }
        end++;
        if (!(*end == '\0'
              || (apr_toupper(end[0]) == 'B' && end[1] == '\0')
              || (apr_toupper(end[0]) == 'I' && apr_toupper(end[1]) == 'B'
                  && end[2] == '\0'))) {
            return NOT_A_SIZE;
        }
    }
    if (n > APR_INT64_MAX / mult) {
        return "is too large";
    }
    *out = (apr_off_t)(n * mult);
    return NULL;
}

const char *btsso_confval_metadata_size(const char *arg, apr_off_t *out)
{
    apr_off_t n;
    const char *err = btsso_confval_size(arg, &n);

    if (err != NULL) {
        return err;
    }
    if (n < 1024 || n > (apr_off_t)64 * 1024 * 1024) {
        return "must lie between 1K and 64M";
    }
    *out = n;
    return NULL;
}

const char *btsso_confval_duration(apr_pool_t *p, const char *arg,
                                   apr_interval_time_t min,
                                   apr_interval_time_t *out)
{
    char *end = NULL;
    apr_int64_t n;
    apr_interval_time_t t;

    if (arg == NULL || !apr_isdigit(*arg)) {
        return NOT_A_DURATION;
    }
    n = apr_strtoi64(arg, &end, 10);
    if (end == NULL || n < 0 || n > 366LL * 86400 * 1000) {
        return NOT_A_DURATION;
    }
    if (*end == '\0' || !strcasecmp(end, "s")) {
        t = apr_time_from_sec(n);
    }
    else if (!strcasecmp(end, "ms")) {
        t = (apr_interval_time_t)n * 1000;
    }
    else if (!strcasecmp(end, "mi") || !strcasecmp(end, "min")) {
        t = apr_time_from_sec(n * 60);
    }
    else if (!strcasecmp(end, "h")) {
        t = apr_time_from_sec(n * 3600);
    }
    else {
        return NOT_A_DURATION;
    }
    if (t < min) {
        return apr_psprintf(p, "is too short (at least %" APR_TIME_T_FMT
                            " s)", apr_time_sec(min));
    }
    *out = t;
    return NULL;
}
