/*
 * audit_trail.c - reading the audit trail back (GET <account>/audit, JSON
 * pages or a CSV download) and recording the passing test logins that
 * PUT <account>/enabled asks for (SPEC "Admin").
 *
 * The CSV is meant to be opened in a spreadsheet: every cell is quoted, and
 * a cell that a spreadsheet would run as a formula (starting with = + - @,
 * a tab or a carriage return) gets a leading apostrophe.  An actor is an
 * email from an IdP and a detail may hold an entityID or a certificate
 * subject, so what a tenant's IdP wrote must never become a formula on a
 * support engineer's machine.
 */
#include <string.h>
#include <stdlib.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>
#include <apr_strings.h>
#include <jansson.h>

#include "btsso_glue.h"
#include "btsso_admin.h"
#include "btsso_handlers.h"

APLOG_USE_MODULE(btsso);

/* A CSV download walks the trail in pages of this many rows. */
#define CSV_PAGE BTSSO_AUDIT_PAGE_MAX
#define JSON_DEFAULT_LIMIT 50

static const char *iso_time(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;
    char buf[32];
    apr_size_t n = 0;

    apr_time_exp_gmt(&tm, t);
    apr_strftime(buf, &n, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return apr_pstrmemdup(p, buf, n);
}

/* A positive decimal number of at most 18 digits, else -1. */
static apr_int64_t positive_arg(const char *v)
{
    apr_int64_t n = 0;
    const char *c;

    if (v == NULL || *v == '\0' || strlen(v) > 18) {
        return -1;
    }
    for (c = v; *c != '\0'; c++) {
        if (*c < '0' || *c > '9') {
            return -1;
        }
        n = n * 10 + (*c - '0');
    }
    return n > 0 ? n : -1;
}

/* One CSV cell: quoted, quotes doubled, a formula trigger defused. */
static const char *csv_cell(apr_pool_t *p, const char *v)
{
    apr_size_t n = 0, len;
    const char *c;
    char *out, *o;

    if (v == NULL) {
        v = "";
    }
    len = strlen(v);
    for (c = v; *c != '\0'; c++) {
        n += *c == '"' ? 2 : 1;
    }
    o = out = apr_palloc(p, n + 4);
    *o++ = '"';
    if (len > 0 && strchr("=+-@\t\r", v[0]) != NULL) {
        *o++ = '\'';
    }
    for (c = v; *c != '\0'; c++) {
        if (*c == '"') {
            *o++ = '"';
        }
        *o++ = *c;
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

static void csv_row(request_rec *r, const btsso_audit_t *a)
{
    ap_rvputs(r, csv_cell(r->pool, apr_psprintf(r->pool, "%" APR_INT64_T_FMT,
                                                a->id)), ",",
              csv_cell(r->pool, iso_time(r->pool, a->at)), ",",
              csv_cell(r->pool, a->actor), ",",
              csv_cell(r->pool, a->action), ",",
              csv_cell(r->pool, a->detail), "\r\n", NULL);
}

static int send_csv(request_rec *r, btsso_store_t *st, const char *account,
                    apr_int64_t before, int limit)
{
    apr_array_header_t *rows;
    apr_int64_t next = before;
    btsso_error_t *e;
    int i, sent = 0;
    apr_pool_t *page;

    /* the first page before any byte is sent, so an error is a status */
    apr_pool_create(&page, r->pool);
    e = btsso_store_audit_page(st, page, account, next, 0,
                               limit > 0 && limit < CSV_PAGE ? limit
                                                             : CSV_PAGE,
                               &rows, &next);
    if (e != NULL) {
        btsso_log_error(r, APLOG_ERR, "BTSSO0440", account, e);
        return btsso_send_json_error(r, e);
    }
    ap_set_content_type(r, "text/csv; charset=utf-8");
    apr_table_setn(r->headers_out, "Content-Disposition", apr_pstrcat(
        r->pool, "attachment; filename=\"audit-", account, ".csv\"", NULL));
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rputs("\"id\",\"at\",\"actor\",\"action\",\"detail\"\r\n", r);
    for (;;) {
        for (i = 0; i < rows->nelts && (limit == 0 || sent < limit); i++) {
            csv_row(r, APR_ARRAY_IDX(rows, i, btsso_audit_t *));
            sent++;
        }
        if (next == 0 || (limit > 0 && sent >= limit)) {
            break;
        }
        apr_pool_clear(page);
        e = btsso_store_audit_page(st, page, account, next, 0, CSV_PAGE,
                                   &rows, &next);
        if (e != NULL) {
            /* the status is gone: cut the download short, loudly */
            btsso_log_error(r, APLOG_ERR, "BTSSO0440", account, e);
            r->connection->keepalive = AP_CONN_CLOSE;
            break;
        }
    }
    apr_pool_destroy(page);
    return OK;
}

int btsso_admin_get_audit(request_rec *r, btsso_store_t *st,
                          const char *account)
{
    const char *v_before = btsso_query_arg(r, "before");
    const char *v_limit = btsso_query_arg(r, "limit");
    const char *format = btsso_query_arg(r, "format");
    apr_array_header_t *rows;
    apr_int64_t before = 0, limit = 0, next = 0;
    btsso_error_t *e;
    json_t *list;
    int i;

    if ((v_before != NULL && (before = positive_arg(v_before)) < 0)
        || (v_limit != NULL && ((limit = positive_arg(v_limit)) < 0
                                || limit > BTSSO_AUDIT_PAGE_MAX))
        || (format != NULL && strcmp(format, "csv") != 0
            && strcmp(format, "json") != 0)) {
        return btsso_send_json_error(r, btsso_error_make(r->pool, 400,
            "bad_request", apr_psprintf(r->pool, "before is an audit id, "
            "limit 1 to %d, format csv or json.", BTSSO_AUDIT_PAGE_MAX),
            NULL));
    }
    if (format != NULL && strcmp(format, "csv") == 0) {
        return send_csv(r, st, account, before, (int)limit);
    }
    e = btsso_store_audit_page(st, r->pool, account, before, 0,
                               limit > 0 ? (int)limit : JSON_DEFAULT_LIMIT,
                               &rows, &next);
    if (e != NULL) {
        btsso_log_error(r, e->status >= 500 ? APLOG_ERR : APLOG_INFO,
                        "BTSSO0440", account, e);
        return btsso_send_json_error(r, e);
    }
    list = json_array();
    for (i = 0; i < rows->nelts; i++) {
        const btsso_audit_t *a = APR_ARRAY_IDX(rows, i, btsso_audit_t *);

        json_array_append_new(list, json_pack(
            "{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)a->id,
            "at", iso_time(r->pool, a->at), "actor", a->actor,
            "action", a->action, "detail", a->detail));
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    return btsso_send_json(r, 200, json_pack(
        "{s:o, s:o}", "audit", list,
        "next", next > 0 ? json_integer((json_int_t)next) : json_null()));
}

void btsso_test_record(request_rec *r, btsso_store_t *st,
                       const char *account, const btsso_acct_entry *e,
                       const char *email)
{
    btsso_error_t *err;
    int counted = 0;

    err = btsso_store_test_passed(st, account, email, e->account->version,
                                  apr_time_now(), &counted);
    if (err != NULL) {
        btsso_log_error(r, APLOG_ERR, "BTSSO0441", account, err);
        apr_table_setn(r->notes, BTSSO_NOTE_TEST, "error");
        return;
    }
    apr_table_setn(r->notes, BTSSO_NOTE_TEST, counted > 0 ? "counted"
                   : counted == 0 ? "not_admin" : "stale");
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "BTSSO0442: account %s: test login of %s %s", account,
                  ap_escape_logitem(r->pool, email),
                  counted > 0 ? "passed: SSO may now be enabled"
                  : counted == 0 ? "passed, but that email is no "
                                   "administrator of the account: it does "
                                   "not count for enabling SSO"
                  : "passed with settings older than the last change: "
                    "test again");
}
