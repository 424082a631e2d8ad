/*
 * xstime.c - xs:dateTime parsing, one code for responses and metadata
 * (validUntil), independent of the C library's time zone.
 */
#include <apr_lib.h>

#include "core/xstime.h"

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static long days_from_civil(long y, unsigned m, unsigned d)
{
    long era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

static int read_digits(const char **s, int n, int *out)
{
    int v = 0, i;

    for (i = 0; i < n; i++) {
        if (!apr_isdigit((*s)[i])) {
            return -1;
        }
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return 0;
}

/* xs:dateTime "YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm|-hh:mm]"; SAML requires
 * UTC, a missing zone is read as UTC.  0 on success. */
int btsso_xs_datetime(const char *s, apr_time_t *out)
{
    int year, mon, day, hour, min, sec, tzh = 0, tzm = 0, sign = 0;
    apr_int64_t usec = 0, scale = 100000;
    apr_int64_t secs;

    if (s == NULL || read_digits(&s, 4, &year) < 0 || *s++ != '-'
        || read_digits(&s, 2, &mon) < 0 || *s++ != '-'
        || read_digits(&s, 2, &day) < 0 || *s++ != 'T'
        || read_digits(&s, 2, &hour) < 0 || *s++ != ':'
        || read_digits(&s, 2, &min) < 0 || *s++ != ':'
        || read_digits(&s, 2, &sec) < 0) {
        return -1;
    }
    if (*s == '.') {
        s++;
        if (!apr_isdigit(*s)) {
            return -1;
        }
        while (apr_isdigit(*s)) {
            usec += (*s - '0') * scale;
            scale /= 10;
            s++;
        }
    }
    if (*s == 'Z') {
        s++;
    }
    else if (*s == '+' || *s == '-') {
        sign = *s == '+' ? 1 : -1;
        s++;
        if (read_digits(&s, 2, &tzh) < 0 || *s++ != ':'
            || read_digits(&s, 2, &tzm) < 0 || tzh > 14 || tzm > 59) {
            return -1;
        }
    }
    if (*s != '\0' || mon < 1 || mon > 12 || day < 1 || day > 31
        || hour > 23 || min > 59 || sec > 60) {
        return -1;
    }
    secs = (apr_int64_t)days_from_civil(year, (unsigned)mon, (unsigned)day)
           * 86400 + hour * 3600 + min * 60 + sec;
    secs -= sign * (tzh * 3600 + tzm * 60);
    *out = apr_time_from_sec(secs) + usec;
    return 0;
}

