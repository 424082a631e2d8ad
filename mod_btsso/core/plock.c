/*
 * plock.c - a robust process-shared mutex without priority inheritance
 * (plock.h says why).
 */
#include <errno.h>
#include <pthread.h>

#include <apr_shm.h>

#include "core/plock.h"

struct btsso_plock_t {
    pthread_mutex_t *m;         /* in the shared segment */
    apr_shm_t *shm;
};

apr_status_t btsso_plock_create(btsso_plock_t **out, apr_pool_t *p)
{
    btsso_plock_t *l = apr_pcalloc(p, sizeof(*l));
    pthread_mutexattr_t a;
    apr_status_t rv;
    int rc;

    *out = NULL;
    /* anonymous: inherited by fork, no file to leave behind */
    rv = apr_shm_create(&l->shm, sizeof(pthread_mutex_t), NULL, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    l->m = apr_shm_baseaddr_get(l->shm);
    if ((rc = pthread_mutexattr_init(&a)) != 0) {
        return rc;
    }
    rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (rc == 0) {
        rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    }
    if (rc == 0) {
        /* said, not left to a default: the point of this lock */
        rc = pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_NONE);
    }
    if (rc == 0) {
        rc = pthread_mutex_init(l->m, &a);
    }
    pthread_mutexattr_destroy(&a);
    if (rc != 0) {
        l->m = NULL;
        return rc;
    }
    *out = l;
    return APR_SUCCESS;
}

int btsso_plock_acquire(btsso_plock_t *l)
{
    int rc = pthread_mutex_lock(l->m);

    if (rc == 0) {
        return 0;
    }
    if (rc == EOWNERDEAD) {
        /* The owner died holding it: ours now, marked usable again. */
        rc = pthread_mutex_consistent(l->m);
        if (rc == 0) {
            return 1;
        }
        pthread_mutex_unlock(l->m);
    }
    errno = rc;
    return -1;
}

int btsso_plock_release(btsso_plock_t *l)
{
    int rc = pthread_mutex_unlock(l->m);

    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}
