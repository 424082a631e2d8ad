/*
 * btsso_post.h - the HTTP-POST binding in the glue (post_binding.c):
 * sending a message in the auto-submitting form, and reading the form an
 * IdP posts to <SPPath>/slo.
 */
#ifndef BTSSO_POST_H
#define BTSSO_POST_H

#include <httpd.h>
#include "core/btsso_error.h"

/*
 * Send xml as param ("SAMLRequest"/"SAMLResponse") to dest_url in the
 * auto-submitting page (saml/postbind.h), signed with the SP key when one
 * is set, with RelayState relay (NULL: none).  Nothing is written unless
 * the page could be built: on error the caller answers.
 */
btsso_error_t *btsso_post_send(request_rec *r, const char *dest_url,
                               const char *param, const char *xml,
                               const char *relay);

typedef struct btsso_post_form_t {
    const char *param;          /* "SAMLRequest" or "SAMLResponse" */
    const char *xml;            /* base64-decoded, NOT parsed */
    apr_size_t xml_len;
    const char *relay_state;    /* NULL when absent */
} btsso_post_form_t;

/*
 * Read a POSTed SAML message: exactly one of SAMLRequest/SAMLResponse,
 * none of the SAML fields twice, RelayState at most 8 KiB, the body
 * bounded.  Errors: no_saml_message, duplicate_parameter,
 * relay_state_too_long, bad_form (400), too_large (413), bad_base64 (400).
 */
btsso_error_t *btsso_post_read(request_rec *r, btsso_post_form_t **out);

#endif /* BTSSO_POST_H */
