/*
 * refresh.c - metadata refresh and the upload checks (refresh.h).
 */
#include <string.h>
#include <apr_strings.h>

#include "store/refresh.h"

#define MIN_DELAY apr_time_from_sec(1)
#define BACKOFF_CAP_FLOOR apr_time_from_sec(3600)
/* how long a claim keeps other processes off an account being fetched */
#define CLAIM_SLACK apr_time_from_sec(60)

/* ---- schedule -------------------------------------------------------------- */

/* Never more often than 1/60 of the interval, and at most once a second:
 * a document cannot make the module hammer its IdP (cacheDuration PT0S). */
static apr_interval_time_t min_delay(apr_interval_time_t interval)
{
    apr_interval_time_t d = interval / 60;

    return d < MIN_DELAY ? MIN_DELAY : d;
}

apr_time_t btsso_refresh_next_ok(apr_interval_time_t interval,
                                 const btsso_md_trust_t *facts,
                                 apr_time_t now)
{
    apr_interval_time_t delay = interval;
    apr_interval_time_t floor = min_delay(interval);

    if (facts != NULL && facts->cache_duration > 0
        && facts->cache_duration < delay) {
        delay = facts->cache_duration;
    }
    if (facts != NULL && facts->valid_until > now
        && facts->valid_until - now < delay) {
        /* ahead of the expiry, with time for a retry or two */
        delay = (facts->valid_until - now) / 2;
    }
    return now + (delay < floor ? floor : delay);
}

/* Exponential back-off from 1/60 of the interval, doubling with each
 * failure in a row, up to the interval (at least an hour). */
apr_time_t btsso_refresh_next_failed(apr_interval_time_t interval,
                                     int failures, apr_time_t now)
{
    apr_interval_time_t delay = min_delay(interval);
    apr_interval_time_t cap = interval > BACKOFF_CAP_FLOOR
                              ? interval : BACKOFF_CAP_FLOOR;
    int i;

    for (i = 1; i < failures && delay < cap; i++) {
        delay *= 2;
    }
    return now + (delay > cap ? cap : delay);
}

apr_array_header_t *btsso_refresh_trusted(apr_pool_t *p,
                                          const apr_array_header_t *stored,
                                          apr_time_t now)
{
    apr_array_header_t *out = apr_array_make(p, 2, sizeof(btsso_cert_t *));
    int i;

    for (i = 0; stored != NULL && i < stored->nelts; i++) {
        const btsso_stored_cert_t *sc =
            APR_ARRAY_IDX(stored, i, btsso_stored_cert_t *);
        if (sc->role != BTSSO_ROLE_NONE && sc->cert != NULL
            && btsso_cert_is_valid_at(sc->cert, now)) {
            APR_ARRAY_PUSH(out, const btsso_cert_t *) = sc->cert;
        }
    }
    return out;
}

static const btsso_stored_cert_t *stored_cert(const apr_array_header_t *l,
                                              const char *sha256)
{
    int i;

    for (i = 0; i < l->nelts; i++) {
        const btsso_stored_cert_t *sc =
            APR_ARRAY_IDX(l, i, btsso_stored_cert_t *);
        if (strcmp(sc->cert->sha256, sha256) == 0) {
            return sc;
        }
    }
    return NULL;
}

static const btsso_stored_cert_t *role_holder(const apr_array_header_t *l,
                                              btsso_cert_role_e role)
{
    int i;

    for (i = 0; i < l->nelts; i++) {
        const btsso_stored_cert_t *sc =
            APR_ARRAY_IDX(l, i, btsso_stored_cert_t *);
        if (sc->role == role) {
            return sc;
        }
    }
    return NULL;
}

static btsso_error_t *expired(apr_pool_t *p, apr_time_t valid_until,
                              apr_time_t now)
{
    char when[APR_RFC822_DATE_LEN];

    apr_rfc822_date(when, valid_until);
    return btsso_error_make(p, 422, "metadata_expired",
        "The metadata has expired (its validUntil has passed): get a "
        "current copy from the identity provider.",
        "validUntil %s is %" APR_TIME_T_FMT " s in the past", when,
        apr_time_sec(now - valid_until));
}

static btsso_error_t *bad_signature(apr_pool_t *p, const char *detail)
{
    return btsso_error_make(p, 422, "metadata_signature_invalid",
        "The metadata is signed, but not by a certificate this account "
        "trusts for this identity provider. If the identity provider "
        "changed its signing key, add its new certificate by hand first.",
        "%s", detail != NULL ? detail : "signature does not verify");
}

/* ---- refresh --------------------------------------------------------------- */

int btsso_refresh_waiting(const btsso_refresh_report_t *r)
{
    int i, n = 0;

    for (i = 0; r->added != NULL && i < r->added->nelts; i++) {
        const btsso_cert_t *c = APR_ARRAY_IDX(r->added, i, btsso_cert_t *);
        n += r->promoted == NULL || strcmp(c->sha256, r->promoted) != 0;
    }
    return n;
}

static const char *flat_error(apr_pool_t *p, const btsso_error_t *e)
{
    char *s = apr_pstrcat(p, e->code, e->detail ? ": " : "",
                          e->detail ? e->detail : "", NULL), *c;

    for (c = s; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20) {
            *c = ' ';
        }
    }
    return strlen(s) > 500 ? apr_pstrndup(p, s, 500) : s;
}

static btsso_refresh_state_t *state_from(apr_pool_t *p, const char *account,
                                         const btsso_refresh_state_t *old)
{
    btsso_refresh_state_t *st = apr_pcalloc(p, sizeof(*st));

    if (old != NULL) {
        *st = *old;
    }
    st->account = account;
    return st;
}

static btsso_error_t *record_failure(btsso_store_t *s, apr_pool_t *p,
                                     const btsso_refresh_opts_t *o,
                                     btsso_refresh_report_t *rep,
                                     const btsso_refresh_state_t *old,
                                     btsso_error_t *why, apr_time_t now)
{
    btsso_refresh_state_t *st = state_from(p, rep->account, old);

    st->failures++;
    st->last_attempt = now;
    st->last_error = flat_error(p, why);
    st->next_due = btsso_refresh_next_failed(o->interval, st->failures, now);
    rep->error = why;
    rep->failures = st->failures;
    rep->next_due = st->next_due;
    return btsso_store_refresh_put(s, st);
}

btsso_error_t *btsso_refresh_account(btsso_store_t *s, apr_pool_t *p,
                                     const char *account,
                                     const btsso_refresh_opts_t *o,
                                     apr_time_t now,
                                     btsso_refresh_report_t **out)
{
    btsso_refresh_report_t *rep = apr_pcalloc(p, sizeof(*rep));
    btsso_account_t *acc;
    btsso_idp_t *idp;
    btsso_refresh_state_t *old = NULL, *st;
    btsso_idp_metadata_t *md = NULL;
    btsso_md_trust_t facts;
    apr_array_header_t *stored = NULL;
    btsso_error_t *err, *why = NULL;
    const btsso_stored_cert_t *secondary;
    const char *detail;
    char *body = NULL;
    apr_size_t len = 0;
    int i;

    *out = rep;
    rep->account = account;
    rep->added = apr_array_make(p, 2, sizeof(btsso_cert_t *));
    if ((err = btsso_store_account_get(s, p, account, &acc)) != NULL
        || (err = btsso_store_idp_get(s, p, account, &idp)) != NULL) {
        return err;
    }
    if (idp == NULL || idp->source_url == NULL) {
        return btsso_error_make(p, 409, "not_from_url",
                                "The IdP metadata of this account was not "
                                "fetched from a URL.", "account %s",
                                account);
    }
    rep->url = idp->source_url;
    if ((err = btsso_store_refresh_get(s, p, account, &old)) != NULL
        || (err = btsso_store_cert_list(s, p, account, &stored)) != NULL) {
        return err;
    }
    why = btsso_fetch_url(p, idp->source_url, &o->fetch, &body, &len, NULL);
    if (why == NULL) {
        why = btsso_metadata_parse(p, body, len, o->fetch.max_size,
                                   idp->entity_id, &md);
    }
    if (why == NULL) {
        why = btsso_metadata_trust(p, md, btsso_refresh_trusted(p, stored,
                                                                now),
                                   o->sig_allowed, o->digest_allowed,
                                   &facts);
    }
    if (why == NULL) {
        rep->signature = facts.signature;
        rep->signer = facts.signer;
        if (facts.valid_until != 0 && facts.valid_until <= now) {
            why = expired(p, facts.valid_until, now);
        }
    }
    if (why == NULL && md->xml_len == strlen(idp->metadata_xml)
        && memcmp(md->xml, idp->metadata_xml, md->xml_len) == 0) {
        /* the copy in force: nothing to change but the schedule */
        st = state_from(p, account, old);
        st->failures = 0;
        st->last_attempt = st->last_ok = now;
        st->last_error = NULL;
        st->valid_until = facts.valid_until;
        if (st->signature == NULL) {
            st->signature = btsso_mdsig_name(facts.signature);
        }
        st->next_due = btsso_refresh_next_ok(o->interval, &facts, now);
        rep->next_due = st->next_due;
        return btsso_store_refresh_put(s, st);
    }
    if (why == NULL && facts.signature == BTSSO_MDSIG_FAILED) {
        why = bad_signature(p, facts.detail);
    }
    if (why != NULL) {
        return record_failure(s, p, o, rep, old, why, now);
    }

    /* new certificates, and the one that may fill the secondary slot */
    secondary = role_holder(stored, BTSSO_ROLE_SECONDARY);
    for (i = 0; i < md->signing_certs->nelts; i++) {
        const btsso_cert_t *c = APR_ARRAY_IDX(md->signing_certs, i,
                                              btsso_cert_t *);
        const btsso_stored_cert_t *have = stored_cert(stored, c->sha256);

        if (have == NULL) {
            APR_ARRAY_PUSH(rep->added, const btsso_cert_t *) = c;
        }
        if (rep->promoted == NULL && facts.signature == BTSSO_MDSIG_VERIFIED
            && btsso_cert_is_valid_at(c, now)
            && (have == NULL || (have->role == BTSSO_ROLE_NONE
                                 && strcmp(have->source, "refresh") == 0))
            && (secondary == NULL
                || !btsso_cert_is_valid_at(secondary->cert, now))) {
            rep->promoted = c->sha256;
        }
    }
    st = state_from(p, account, old);
    st->failures = 0;
    st->last_attempt = st->last_ok = now;
    st->last_error = NULL;
    st->valid_until = facts.valid_until;
    st->signature = btsso_mdsig_name(facts.signature);
    st->next_due = btsso_refresh_next_ok(o->interval, &facts, now);
    detail = apr_psprintf(p, "source=%s signature=%s%s%s new_certificates=%d"
                          "%s%s", idp->source_url,
                          btsso_mdsig_name(facts.signature),
                          facts.signer ? " signer=" : "",
                          facts.signer ? facts.signer : "",
                          rep->added->nelts,
                          rep->promoted ? " secondary=" : "",
                          rep->promoted ? rep->promoted : "");
    err = btsso_store_idp_refreshed(s, account, md, rep->added, rep->promoted,
                                    st, acc->version, now,
                                    o->actor != NULL ? o->actor
                                                     : BTSSO_REFRESH_ACTOR,
                                    detail);
    if (err != NULL && strcmp(err->code, "conflict") == 0) {
        /* an administrator changed the account meanwhile: the decision
         * was made on what they replaced; try again soon, no failure */
        st = state_from(p, account, old);
        st->last_attempt = now;
        st->next_due = now + min_delay(o->interval);
        rep->error = err;
        rep->added->nelts = 0;
        rep->promoted = NULL;
        rep->next_due = st->next_due;
        return btsso_store_refresh_put(s, st);
    }
    if (err != NULL) {
        return err;
    }
    rep->changed = 1;
    rep->next_due = st->next_due;
    return NULL;
}

btsso_error_t *btsso_refresh_due(btsso_store_t *s, apr_pool_t *p,
                                 const btsso_refresh_opts_t *o,
                                 apr_time_t now, int max,
                                 btsso_refresh_report_fn *fn, void *baton)
{
    apr_array_header_t *due;
    btsso_error_t *err;
    apr_interval_time_t lease;
    int i;

    if ((err = btsso_store_refresh_due(s, p, now, max, &due)) != NULL) {
        return err;
    }
    lease = apr_time_from_sec(o->fetch.timeout_sec > 0
                              ? o->fetch.timeout_sec
                              : BTSSO_FETCH_DEFAULT_TIMEOUT_SEC)
            + CLAIM_SLACK;
    for (i = 0; i < due->nelts; i++) {
        const btsso_refresh_state_t *d =
            APR_ARRAY_IDX(due, i, btsso_refresh_state_t *);
        btsso_refresh_report_t *rep = NULL;
        apr_pool_t *one;
        int claimed = 0;

        apr_pool_create(&one, p);
        err = btsso_store_refresh_claim(s, d->account, d->next_due,
                                        now + lease, now, &claimed);
        if (err == NULL && claimed) {
            err = btsso_refresh_account(s, one, d->account, o,
                                        apr_time_now(), &rep);
            if (err != NULL && rep != NULL && rep->error == NULL) {
                /* the account cannot be refreshed (its IdP changed
                 * meanwhile) or the store failed: report, go on */
                rep->error = err;
                err = NULL;
            }
            if (rep != NULL && fn != NULL) {
                fn(baton, rep);
            }
        }
        apr_pool_destroy(one);
        if (err != NULL) {
            return err;
        }
    }
    return NULL;
}

/* ---- uploads ---------------------------------------------------------------- */

btsso_error_t *btsso_refresh_check_upload(btsso_store_t *s, apr_pool_t *p,
                                          const char *account,
                                          const btsso_idp_metadata_t *md,
                                          unsigned int sig_allowed,
                                          unsigned int digest_allowed,
                                          apr_time_t now,
                                          btsso_md_trust_t *facts)
{
    btsso_md_trust_t local;
    btsso_idp_t *idp = NULL;
    apr_array_header_t *stored = NULL, *trusted = NULL;
    btsso_error_t *err;

    if (facts == NULL) {
        facts = &local;
    }
    if ((err = btsso_store_idp_get(s, p, account, &idp)) != NULL) {
        return err;
    }
    if (idp != NULL && strcmp(idp->entity_id, md->entity_id) == 0) {
        /* the account trusts certificates of this IdP: a signature must
         * verify with one of them */
        if ((err = btsso_store_cert_list(s, p, account, &stored)) != NULL) {
            return err;
        }
        trusted = btsso_refresh_trusted(p, stored, now);
    }
    if ((err = btsso_metadata_trust(p, md, trusted, sig_allowed,
                                    digest_allowed, facts)) != NULL) {
        return err;
    }
    if (facts->valid_until != 0 && facts->valid_until <= now) {
        return expired(p, facts->valid_until, now);
    }
    if (facts->signature == BTSSO_MDSIG_FAILED) {
        return bad_signature(p, facts->detail);
    }
    return NULL;
}

btsso_error_t *btsso_refresh_schedule_upload(btsso_store_t *s,
                                             const char *account,
                                             const btsso_md_trust_t *facts,
                                             apr_interval_time_t interval,
                                             apr_time_t now)
{
    btsso_refresh_state_t st;

    memset(&st, 0, sizeof(st));
    st.account = account;
    st.last_attempt = st.last_ok = now;
    st.valid_until = facts != NULL ? facts->valid_until : 0;
    st.signature = facts != NULL ? btsso_mdsig_name(facts->signature) : NULL;
    /* refresh off: never due (the watchdog does not run anyway) */
    st.next_due = interval > 0 ? btsso_refresh_next_ok(interval, facts, now)
                               : now + apr_time_from_sec(10LL * 366 * 86400);
    return btsso_store_refresh_put(s, &st);
}
