/*
 * btsso_attrs.h - the assertion's attributes kept with the session
 * (attrs.c): bounded at the login, exported on protected requests, and the
 * authz providers `Require btsso-attr` and `Require btsso-account`.
 */
#ifndef BTSSO_ATTRS_H
#define BTSSO_ATTRS_H

#include <httpd.h>
#include "btsso_session.h"
#include "saml/response.h"

/* What the session keeps of a's attributes (within the bounds; what is
 * dropped, and attributes whose environment names clash, logged once
 * here, at the login). */
const apr_array_header_t *btsso_attrs_for_session(request_rec *r,
                                                  const char *account,
                                                  const btsso_assertion_t *a);

/* BTSSO_ATTR_* into the environment (added: the caller has removed every
 * BTSSO_* variable) and, with set_headers, the request header
 * X-BTSSO-Attributes. */
void btsso_attrs_export(request_rec *r, const btsso_session_t *ss,
                        int set_headers);

/* The authz providers btsso-attr and btsso-account. */
void btsso_register_attr_hooks(apr_pool_t *p);

#endif /* BTSSO_ATTRS_H */
