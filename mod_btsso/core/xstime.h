/*
 * xstime.h - xs:dateTime as SAML and metadata write it.
 */
#ifndef BTSSO_XSTIME_H
#define BTSSO_XSTIME_H

#include <apr_time.h>

/* "YYYY-MM-DDThh:mm:ss[.fraction][Z|+hh:mm|-hh:mm]" (no zone: UTC) into
 * APR time, microseconds kept.  0 on success, -1 for anything else
 * (missing fields, a month, day, hour, minute or second out of range, an
 * offset beyond 14:59, trailing text). */
int btsso_xs_datetime(const char *s, apr_time_t *out);

#endif /* BTSSO_XSTIME_H */
