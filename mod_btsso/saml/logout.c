/*
 * logout.c - parsing and checking the IdP's LogoutRequest/LogoutResponse
 * (see logout.h for the rules).
 */
#include <string.h>
#include <limits.h>
#include <apr_strings.h>
#include <apr_lib.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/globals.h>

#include "saml/logout.h"
#include "saml/xmlparse.h"
#include "saml/xmldsig.h"
#include "core/text.h"

#define NS_SAMLP "urn:oasis:names:tc:SAML:2.0:protocol"
#define NS_SAML  "urn:oasis:names:tc:SAML:2.0:assertion"
#define STATUS_SUCCESS "urn:oasis:names:tc:SAML:2.0:status:Success"

#define MSG_BAD "The sign-out message could not be read."
#define MSG_REFUSED "The sign-out message was refused."

/* A logout message is answered as soon as it arrives; one issued longer
 * ago than this (plus skew) is stale, whatever NotOnOrAfter says. */
#define MAX_AGE_SEC 600

/* ---- hardened parsing -------------------------------------------------- */

static apr_status_t free_doc(void *data)
{
    xmlFreeDoc((xmlDocPtr)data);
    return APR_SUCCESS;
}

/* The shared hardened parse (saml/xmlparse.c); the size was bounded by
 * the caller.  The document lives as long as p. */
static btsso_error_t *parse_doc(apr_pool_t *p, const char *xml,
                                apr_size_t len, xmlDocPtr *out)
{
    btsso_error_t *err = btsso_xml_parse(p, xml, len, (apr_size_t)INT_MAX,
                                         MSG_BAD, out);

    if (err != NULL) {
        return err;
    }
    apr_pool_cleanup_register(p, *out, free_doc, apr_pool_cleanup_null);
    return NULL;
}

/* ---- small readers ---------------------------------------------------- */

static int is_el(const xmlNode *n, const char *ns, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && n->ns != NULL
           && !strcmp((const char *)n->ns->href, ns)
           && !strcmp((const char *)n->name, name);
}

static const char *attr(apr_pool_t *p, xmlNodePtr n, const char *name)
{
    xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
    const char *out;

    if (v == NULL) {
        return NULL;
    }
    out = apr_pstrdup(p, (const char *)v);
    xmlFree(v);
    return out;
}

/* Text content of a simple element, XML whitespace trimmed; NULL when
 * the element has element children (SAML's string types have none). */
static const char *text_of(apr_pool_t *p, xmlNodePtr n)
{
    xmlNodePtr c;
    xmlChar *v;
    const char *s, *e;
    const char *out;

    for (c = n->children; c != NULL; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            return NULL;
        }
    }
    v = xmlNodeGetContent(n);
    if (v == NULL) {
        return "";
    }
    s = (const char *)v;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') {
        s++;
    }
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'
                     || e[-1] == '\n')) {
        e--;
    }
    out = apr_pstrmemdup(p, s, (apr_size_t)(e - s));
    xmlFree(v);
    return out;
}

/* An NCName as ID (ASCII subset: what IdPs generate). */
static int is_ncname(const char *s)
{
    apr_size_t i;

    if (s == NULL || !(apr_isalpha(s[0]) || s[0] == '_')) {
        return 0;
    }
    for (i = 1; s[i] != '\0'; i++) {
        if (!(apr_isalnum(s[i]) || s[i] == '_' || s[i] == '-'
              || s[i] == '.')) {
            return 0;
        }
    }
    return i <= 256;
}

/* xs:dateTime in UTC ("...Z", an offset, or no zone read as UTC);
 * 0 on success. */
static int parse_time(const char *s, apr_time_t *out)
{
    apr_time_exp_t t;
    int year, mon, day, hour, min, sec, n = 0, off = 0;
    apr_int64_t usec = 0, scale = 100000;
    apr_time_t v;

    if (s == NULL || strlen(s) < 19
        || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &hour,
                  &min, &sec, &n) != 6 || n != 19) {
        return -1;
    }
    s += 19;
    if (*s == '.') {
        s++;
        if (!apr_isdigit(*s)) {
            return -1;
        }
        for (; apr_isdigit(*s); s++) {
            usec += (*s - '0') * scale;
            scale /= 10;
        }
    }
    if (*s == 'Z') {
        s++;
    }
    else if (*s == '+' || *s == '-') {
        int sign = *s == '+' ? 1 : -1, oh, om;

        if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5
            || oh > 14 || om > 59) {
            return -1;
        }
        off = sign * (oh * 3600 + om * 60);
        s += 6;
    }
    if (*s != '\0' || year < 1970 || mon < 1 || mon > 12 || day < 1
        || day > 31 || hour > 23 || min > 59 || sec > 60) {
        return -1;
    }
    memset(&t, 0, sizeof(t));
    t.tm_year = year - 1900;
    t.tm_mon = mon - 1;
    t.tm_mday = day;
    t.tm_hour = hour;
    t.tm_min = min;
    t.tm_sec = sec;
    if (apr_time_exp_gmt_get(&v, &t) != APR_SUCCESS) {
        return -1;
    }
    *out = v + usec - apr_time_from_sec(off);
    return 0;
}

static btsso_error_t *malformed(apr_pool_t *p, const char *detail)
{
    return btsso_error_make(p, 400, "malformed", MSG_BAD, "%s", detail);
}

/* ---- the two messages ------------------------------------------------- */

static btsso_error_t *read_request_body(apr_pool_t *p, xmlNodePtr root,
                                        btsso_logout_msg_t *m)
{
    xmlNodePtr c;
    const char *v;
    int saw_id = 0;

    v = attr(p, root, "NotOnOrAfter");
    if (v != NULL && parse_time(v, &m->not_on_or_after) != 0) {
        return malformed(p, "LogoutRequest NotOnOrAfter is not a time");
    }
    m->reason = attr(p, root, "Reason");
    for (c = root->children; c != NULL; c = c->next) {
        if (is_el(c, NS_SAML, "EncryptedID") || is_el(c, NS_SAML, "BaseID")) {
            return btsso_error_make(p, 400, "encrypted_id_unsupported",
                MSG_BAD, "LogoutRequest identifies the user by %s; only a "
                "plain NameID is supported", (const char *)c->name);
        }
        if (is_el(c, NS_SAML, "NameID")) {
            if (saw_id++) {
                return malformed(p, "LogoutRequest has two NameID elements");
            }
            m->name_id = text_of(p, c);
            if (m->name_id == NULL || *m->name_id == '\0') {
                return btsso_error_make(p, 400, "no_name_id", MSG_BAD,
                                        "LogoutRequest NameID is empty or "
                                        "has element children");
            }
            m->name_id_format = attr(p, c, "Format");
            m->name_qualifier = attr(p, c, "NameQualifier");
            m->sp_name_qualifier = attr(p, c, "SPNameQualifier");
            if (btsso_text_has_control(m->name_id)) {
                return btsso_error_make(p, 400, "bad_name_id", MSG_BAD,
                                        "LogoutRequest NameID contains a "
                                        "control character");
            }
        }
        else if (is_el(c, NS_SAMLP, "SessionIndex")) {
            if (m->session_indexes->nelts
                >= BTSSO_LOGOUT_MAX_SESSION_INDEXES) {
                return malformed(p, "too many SessionIndex elements");
            }
            v = text_of(p, c);
            if (v == NULL || *v == '\0') {
                return malformed(p, "empty SessionIndex");
            }
            APR_ARRAY_PUSH(m->session_indexes, const char *) = v;
        }
    }
    if (m->name_id == NULL) {
        return btsso_error_make(p, 400, "no_name_id", MSG_BAD,
                                "LogoutRequest without saml:NameID");
    }
    return NULL;
}

static btsso_error_t *read_response_body(apr_pool_t *p, xmlNodePtr root,
                                         btsso_logout_msg_t *m)
{
    xmlNodePtr c, status = NULL, code = NULL, sub;

    m->in_response_to = attr(p, root, "InResponseTo");
    for (c = root->children; c != NULL; c = c->next) {
        if (is_el(c, NS_SAMLP, "Status")) {
            if (status != NULL) {
                return malformed(p, "LogoutResponse has two Status "
                                    "elements");
            }
            status = c;
        }
    }
    if (status == NULL) {
        return btsso_error_make(p, 400, "no_status", MSG_BAD,
                                "LogoutResponse without samlp:Status");
    }
    for (c = status->children; c != NULL; c = c->next) {
        if (is_el(c, NS_SAMLP, "StatusCode") && code == NULL) {
            code = c;
        }
        else if (is_el(c, NS_SAMLP, "StatusMessage")
                 && m->status_message == NULL) {
            m->status_message = text_of(p, c);
        }
    }
    if (code == NULL || (m->status_code = attr(p, code, "Value")) == NULL
        || *m->status_code == '\0') {
        return btsso_error_make(p, 400, "no_status", MSG_BAD,
                                "LogoutResponse Status has no StatusCode "
                                "Value");
    }
    for (sub = code->children; sub != NULL; sub = sub->next) {
        if (is_el(sub, NS_SAMLP, "StatusCode")) {
            m->status_subcode = attr(p, sub, "Value");
            break;
        }
    }
    return NULL;
}

/* Bound the input and parse it (the document lives as long as p). */
static btsso_error_t *load(apr_pool_t *p, const char *xml, apr_size_t len,
                           apr_size_t max_len, xmlDocPtr *doc)
{
    if (max_len == 0) {
        max_len = BTSSO_LOGOUT_MAX_XML;
    }
    if (xml == NULL || len == 0) {
        return btsso_error_make(p, 400, "empty", MSG_BAD,
                                "no sign-out message");
    }
    if (len > max_len || len > (apr_size_t)INT_MAX) {
        return btsso_error_make(p, 413, "too_large", MSG_BAD,
                                "%" APR_SIZE_T_FMT " octets, at most %"
                                APR_SIZE_T_FMT, len, max_len);
    }
    return parse_doc(p, xml, len, doc);
}

static btsso_error_t *read_message(apr_pool_t *p, xmlDocPtr doc,
                                   btsso_logout_msg_t **out)
{
    btsso_logout_msg_t *m;
    btsso_error_t *err;
    xmlNodePtr root, c;
    const char *v;
    int issuers = 0;

    root = xmlDocGetRootElement(doc);
    m = apr_pcalloc(p, sizeof(*m));
    m->session_indexes = apr_array_make(p, 1, sizeof(const char *));
    if (is_el(root, NS_SAMLP, "LogoutRequest")) {
        m->kind = BTSSO_LOGOUT_REQUEST;
    }
    else if (is_el(root, NS_SAMLP, "LogoutResponse")) {
        m->kind = BTSSO_LOGOUT_RESPONSE;
    }
    else {
        return btsso_error_make(p, 400, "not_logout", MSG_BAD,
                                "root element is {%s}%s, not a SAML 2.0 "
                                "LogoutRequest or LogoutResponse",
                                root && root->ns
                                ? (const char *)root->ns->href : "",
                                root ? (const char *)root->name : "");
    }
    v = attr(p, root, "Version");
    if (v == NULL || strcmp(v, "2.0") != 0) {
        return malformed(p, "Version is not 2.0");
    }
    m->id = attr(p, root, "ID");
    if (!is_ncname(m->id)) {
        return malformed(p, "ID missing or not an NCName");
    }
    if (parse_time(attr(p, root, "IssueInstant"), &m->issue_instant) != 0) {
        return malformed(p, "IssueInstant missing or not a time");
    }
    m->destination = attr(p, root, "Destination");
    for (c = root->children; c != NULL; c = c->next) {
        if (is_el(c, NS_SAML, "Issuer")) {
            if (issuers++) {
                return malformed(p, "two Issuer elements");
            }
            m->issuer = text_of(p, c);
        }
    }
    if (m->issuer == NULL || *m->issuer == '\0') {
        return btsso_error_make(p, 400, "no_issuer", MSG_BAD,
                                "%s without saml:Issuer",
                                (const char *)root->name);
    }
    if (btsso_text_has_control(m->issuer)) {
        return btsso_error_make(p, 400, "bad_issuer", MSG_BAD,
                                "%s Issuer contains a control character",
                                (const char *)root->name);
    }
    err = m->kind == BTSSO_LOGOUT_REQUEST ? read_request_body(p, root, m)
                                          : read_response_body(p, root, m);
    if (err != NULL) {
        return err;
    }
    *out = m;
    return NULL;
}

btsso_error_t *btsso_logout_parse(apr_pool_t *p, const char *xml,
                                  apr_size_t len, apr_size_t max_len,
                                  btsso_logout_msg_t **out)
{
    btsso_error_t *err;
    xmlDocPtr doc;

    *out = NULL;
    if ((err = load(p, xml, len, max_len, &doc)) != NULL) {
        return err;
    }
    return read_message(p, doc, out);
}

btsso_error_t *btsso_logout_parse_verified(apr_pool_t *p, const char *xml,
                                           apr_size_t len,
                                           apr_size_t max_len,
                                           const apr_array_header_t *certs,
                                           unsigned int sig_algs,
                                           unsigned int digest_algs,
                                           btsso_logout_msg_t **out)
{
    btsso_error_t *err;
    xmlDocPtr doc;
    xmlNodePtr root;

    *out = NULL;
    if ((err = load(p, xml, len, max_len, &doc)) != NULL) {
        return err;
    }
    root = xmlDocGetRootElement(doc);
    if (!is_el(root, NS_SAMLP, "LogoutRequest")
        && !is_el(root, NS_SAMLP, "LogoutResponse")) {
        /* read_message names the wrong root */
        return read_message(p, doc, out);
    }
    err = btsso_xmldsig_verify_root(p, doc, certs, sig_algs, digest_algs,
                                    (const char *)root->name,
                                    "The sign-out message is not correctly "
                                    "signed by your organisation's sign-in "
                                    "service.");
    if (err != NULL) {
        return err;
    }
    /* Everything returned comes from the tree whose signature verified. */
    return read_message(p, doc, out);
}

btsso_error_t *btsso_logout_check(apr_pool_t *p,
                                  const btsso_logout_msg_t *msg,
                                  const btsso_logout_expect_t *ex)
{
    apr_time_t skew = apr_time_from_sec(ex->clock_skew);

    if (ex->idp_entity_id == NULL || ex->slo_url == NULL) {
        return btsso_error_make(p, 500, "bad_expectation", MSG_REFUSED,
                                "no IdP entityID or SLO URL to check "
                                "against");
    }
    if (strcmp(msg->issuer, ex->idp_entity_id) != 0) {
        return btsso_error_make(p, 403, "issuer_mismatch", MSG_REFUSED,
                                "Issuer is '%s', expected '%s'",
                                msg->issuer, ex->idp_entity_id);
    }
    if (msg->destination == NULL) {
        if (ex->require_destination) {
            return btsso_error_make(p, 403, "destination_missing",
                                    MSG_REFUSED, "signed %s without "
                                    "Destination", msg->kind
                                    == BTSSO_LOGOUT_REQUEST
                                    ? "LogoutRequest" : "LogoutResponse");
        }
    }
    else if (strcmp(msg->destination, ex->slo_url) != 0) {
        return btsso_error_make(p, 403, "destination_mismatch", MSG_REFUSED,
                                "Destination is '%s', expected '%s'",
                                msg->destination, ex->slo_url);
    }
    if (msg->issue_instant > ex->now + skew) {
        return btsso_error_make(p, 403, "issued_in_future", MSG_REFUSED,
                                "IssueInstant is %" APR_TIME_T_FMT " s "
                                "ahead of this server's clock (check the "
                                "clocks)", apr_time_sec(msg->issue_instant
                                                        - ex->now));
    }
    if (msg->issue_instant + apr_time_from_sec(MAX_AGE_SEC) + skew
        < ex->now) {
        return btsso_error_make(p, 403, "message_too_old", MSG_REFUSED,
                                "IssueInstant is %" APR_TIME_T_FMT " s in "
                                "the past", apr_time_sec(ex->now
                                                         - msg->issue_instant));
    }
    if (msg->kind == BTSSO_LOGOUT_REQUEST && msg->not_on_or_after != 0
        && ex->now >= msg->not_on_or_after + skew) {
        return btsso_error_make(p, 403, "request_expired", MSG_REFUSED,
                                "NotOnOrAfter passed %" APR_TIME_T_FMT
                                " s ago", apr_time_sec(ex->now
                                                       - msg->not_on_or_after));
    }
    if (msg->kind == BTSSO_LOGOUT_RESPONSE && ex->in_response_to != NULL
        && (msg->in_response_to == NULL
            || strcmp(msg->in_response_to, ex->in_response_to) != 0)) {
        return btsso_error_make(p, 403, "in_response_to_mismatch",
                                MSG_REFUSED, "InResponseTo is '%s', our "
                                "LogoutRequest was '%s'",
                                msg->in_response_to ? msg->in_response_to
                                : "(none)", ex->in_response_to);
    }
    return NULL;
}

int btsso_logout_status_ok(const btsso_logout_msg_t *msg)
{
    return msg->kind == BTSSO_LOGOUT_RESPONSE && msg->status_code != NULL
           && !strcmp(msg->status_code, STATUS_SUCCESS);
}

int btsso_logout_covers_session(const btsso_logout_msg_t *msg,
                                const char *sid)
{
    int i;

    if (msg->session_indexes == NULL || msg->session_indexes->nelts == 0) {
        return 1;
    }
    if (sid == NULL) {
        return 0;
    }
    for (i = 0; i < msg->session_indexes->nelts; i++) {
        if (!strcmp(APR_ARRAY_IDX(msg->session_indexes, i, const char *),
                    sid)) {
            return 1;
        }
    }
    return 0;
}
