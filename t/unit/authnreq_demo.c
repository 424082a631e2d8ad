/*
 * authnreq_demo.c - a small driver around the core library for the
 * interoperability tests in t/integration/test_authnreq_interop.py (pysaml2
 * on the other side).  Not installed; built by "make check".
 *
 *   authnreq_demo sp-metadata ENTITY ACS SLO [KEY CERT]
 *       print SP metadata (signing/encryption with CERT when given)
 *   authnreq_demo authn IDP_SSO_URL ENTITY ACS RELAY [KEY CERT [SIGALG]]
 *       print the HTTP-Redirect URL of an AuthnRequest (signed with KEY
 *       when given), then its ID on a second line
 *   authnreq_demo logout IDP_SLO_URL ENTITY NAMEID SESSION [KEY CERT]
 *       the same for a LogoutRequest
 *   authnreq_demo verify CERT QUERY
 *       decode a Redirect-binding query string, check its signature with
 *       CERT, print the message XML; exit 0 only when the signature holds
 *
 * Exit status 0 on success, 1 with "code: message (detail)" on stderr.
 */
#include <stdio.h>
#include <string.h>

#include <apr_general.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <libxml/parser.h>

#include "crypto/spkey.h"
#include "saml/authnreq.h"
#include "saml/spmeta.h"

static int report(apr_pool_t *p, btsso_error_t *e)
{
    fprintf(stderr, "%s\n", btsso_error_line(p, e));
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: authnreq_demo sp-metadata ENTITY ACS SLO "
            "[KEY CERT]\n"
            "       authnreq_demo authn IDP_SSO_URL ENTITY ACS RELAY "
            "[KEY CERT [SIGALG]]\n"
            "       authnreq_demo logout IDP_SLO_URL ENTITY NAMEID SESSION "
            "[KEY CERT]\n"
            "       authnreq_demo verify CERT QUERY\n");
    return 2;
}

static int load_key(apr_pool_t *p, int argc, char **argv, int at,
                    btsso_spkey_t **key)
{
    btsso_error_t *e;

    *key = NULL;
    if (argc <= at + 1) {
        return 0;
    }
    e = btsso_spkey_load(p, argv[at], argv[at + 1], key);
    return e != NULL ? report(p, e) : 0;
}

static int cmd_metadata(apr_pool_t *p, int argc, char **argv)
{
    btsso_spmeta_t md;
    btsso_spkey_t *key;
    btsso_error_t *e;
    const char *xml;

    if (argc < 5 || load_key(p, argc, argv, 5, &key) != 0) {
        return argc < 5 ? usage() : 1;
    }
    memset(&md, 0, sizeof(md));
    md.entity_id = argv[2];
    md.acs_url = argv[3];
    md.slo_url = argv[4];
    md.want_assertions_signed = 1;
    if (key != NULL) {
        md.signing_current = btsso_spkey_cert(key);
        md.encryption = btsso_spkey_cert(key);
        md.authn_requests_signed = 1;
    }
    if ((e = btsso_spmeta_build(p, &md, &xml)) != NULL) {
        return report(p, e);
    }
    fputs(xml, stdout);
    return 0;
}

static int cmd_authn(apr_pool_t *p, int argc, char **argv)
{
    btsso_authnreq_t req;
    btsso_spkey_t *key;
    btsso_saml_msg_t *msg;
    btsso_error_t *e;

    if (argc < 6 || load_key(p, argc, argv, 6, &key) != 0) {
        return argc < 6 ? usage() : 1;
    }
    memset(&req, 0, sizeof(req));
    req.idp_sso_url = argv[2];
    req.sp_entity_id = argv[3];
    req.acs_url = argv[4];
    req.nameid_format = BTSSO_NAMEID_EMAIL;
    e = btsso_authnreq_redirect(p, &req, *argv[5] != '\0' ? argv[5] : NULL,
                                key, argc > 8 ? argv[8] : NULL,
                                apr_time_now(), NULL, NULL, &msg);
    if (e != NULL) {
        return report(p, e);
    }
    printf("%s\n%s\n", msg->url, msg->id);
    return 0;
}

static int cmd_logout(apr_pool_t *p, int argc, char **argv)
{
    btsso_logoutreq_t req;
    btsso_spkey_t *key;
    btsso_saml_msg_t *msg;
    btsso_error_t *e;

    if (argc < 6 || load_key(p, argc, argv, 6, &key) != 0) {
        return argc < 6 ? usage() : 1;
    }
    memset(&req, 0, sizeof(req));
    req.destination = argv[2];
    req.sp_entity_id = argv[3];
    req.name_id = argv[4];
    req.name_id_format = BTSSO_NAMEID_EMAIL;
    req.session_index = argv[5];
    e = btsso_logoutreq_redirect(p, &req, NULL, key, NULL, apr_time_now(),
                                 NULL, NULL, &msg);
    if (e != NULL) {
        return report(p, e);
    }
    printf("%s\n%s\n", msg->url, msg->id);
    return 0;
}

static int cmd_verify(apr_pool_t *p, int argc, char **argv)
{
    apr_array_header_t *certs;
    btsso_cert_t *cert;
    btsso_redirect_msg_t *msg;
    btsso_error_t *e;
    apr_file_t *f;
    char buf[16384];
    apr_size_t n = sizeof(buf);

    if (argc != 4) {
        return usage();
    }
    if (apr_file_open(&f, argv[2], APR_FOPEN_READ, APR_OS_DEFAULT, p)
        != APR_SUCCESS) {
        fprintf(stderr, "cannot open %s\n", argv[2]);
        return 1;
    }
    apr_file_read_full(f, buf, n, &n);
    apr_file_close(f);
    if ((e = btsso_cert_parse(p, buf, n, &cert)) != NULL
        || (e = btsso_redirect_decode(p, argv[3], 0, &msg)) != NULL) {
        return report(p, e);
    }
    certs = apr_array_make(p, 1, sizeof(btsso_cert_t *));
    APR_ARRAY_PUSH(certs, btsso_cert_t *) = cert;
    if ((e = btsso_redirect_verify(p, msg, certs, NULL,
                                   apr_time_now())) != NULL) {
        return report(p, e);
    }
    printf("%s\n", msg->xml);
    return 0;
}

int main(int argc, char **argv)
{
    apr_pool_t *p;
    int rc;

    if (argc < 2) {
        return usage();
    }
    apr_initialize();
    xmlInitParser();
    apr_pool_create(&p, NULL);
    if (strcmp(argv[1], "sp-metadata") == 0) {
        rc = cmd_metadata(p, argc, argv);
    }
    else if (strcmp(argv[1], "authn") == 0) {
        rc = cmd_authn(p, argc, argv);
    }
    else if (strcmp(argv[1], "logout") == 0) {
        rc = cmd_logout(p, argc, argv);
    }
    else if (strcmp(argv[1], "verify") == 0) {
        rc = cmd_verify(p, argc, argv);
    }
    else {
        rc = usage();
    }
    apr_pool_destroy(p);
    xmlCleanupParser();
    apr_terminate();
    return rc;
}
