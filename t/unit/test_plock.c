/*
 * test_plock.c - core/plock: the session cache's lock across processes.
 * It excludes (forked processes racing on a shared counter lose no
 * update), it survives a process that dies holding it, and it has no
 * priority inheritance: a thread that releases it while another waits can
 * take it straight back (a priority-inheriting mutex hands it to the
 * waiter in the kernel, which is what made protected requests convoy).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_pools.h>
#include <apr_shm.h>

#include "core/plock.h"

static apr_pool_t *pool;

static volatile long *shared_counter(apr_pool_t *p)
{
    apr_shm_t *shm;

    assert_int_equal(apr_shm_create(&shm, sizeof(long), NULL, p),
                     APR_SUCCESS);
    *(volatile long *)apr_shm_baseaddr_get(shm) = 0;
    return apr_shm_baseaddr_get(shm);
}

static void wait_child(pid_t pid, int want_status)
{
    int st;

    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), want_status);
}

#define PROCS 4
#define ROUNDS 20000

static void test_excludes_across_processes(void **state)
{
    apr_pool_t *p;
    btsso_plock_t *l;
    volatile long *counter;
    pid_t kids[PROCS];
    int i;

    (void)state;
    apr_pool_create(&p, pool);
    assert_int_equal(btsso_plock_create(&l, p), APR_SUCCESS);
    counter = shared_counter(p);
    for (i = 0; i < PROCS; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            int n, bad = 0;

            for (n = 0; n < ROUNDS; n++) {
                long v;

                bad |= btsso_plock_acquire(l) != 0;
                v = *counter;
                if (n % 64 == 0) {
                    sched_yield();      /* invite the others in */
                }
                *counter = v + 1;
                bad |= btsso_plock_release(l) != 0;
            }
            _exit(bad);
        }
    }
    for (i = 0; i < PROCS; i++) {
        wait_child(kids[i], 0);
    }
    assert_int_equal(*counter, (long)PROCS * ROUNDS);
    apr_pool_destroy(p);
}

static void test_survives_a_dead_owner(void **state)
{
    apr_pool_t *p;
    btsso_plock_t *l;
    pid_t kid;

    (void)state;
    apr_pool_create(&p, pool);
    assert_int_equal(btsso_plock_create(&l, p), APR_SUCCESS);
    kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        _exit(btsso_plock_acquire(l) == 0 ? 0 : 1);  /* dies holding it */
    }
    wait_child(kid, 0);
    assert_int_equal(btsso_plock_acquire(l), 1);     /* recovered */
    assert_int_equal(btsso_plock_release(l), 0);
    assert_int_equal(btsso_plock_acquire(l), 0);     /* and usable */
    assert_int_equal(btsso_plock_release(l), 0);

    /* killed, not exiting: the same */
    kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        if (btsso_plock_acquire(l) == 0) {
            pause();
        }
        _exit(1);
    }
    {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        int st;

        nanosleep(&ts, NULL);
        assert_int_equal(kill(kid, SIGKILL), 0);
        assert_int_equal(waitpid(kid, &st, 0), kid);
        assert_true(WIFSIGNALED(st));
    }
    assert_int_equal(btsso_plock_acquire(l), 1);
    assert_int_equal(btsso_plock_release(l), 0);
    apr_pool_destroy(p);
}

typedef struct {
    btsso_plock_t *l;
    volatile int waiting;
    volatile int got;
} waiter_t;

static void *waiter(void *data)
{
    waiter_t *w = data;

    w->waiting = 1;
    if (btsso_plock_acquire(w->l) == 0) {
        w->got = 1;
        btsso_plock_release(w->l);
    }
    return NULL;
}

static void test_no_hand_over_to_a_waiter(void **state)
{
    apr_pool_t *p;
    btsso_plock_t *l;
    int i, retaken = 0;

    (void)state;
    apr_pool_create(&p, pool);
    assert_int_equal(btsso_plock_create(&l, p), APR_SUCCESS);
    for (i = 0; i < 20; i++) {
        waiter_t w = { l, 0, 0 };
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        pthread_t t;

        assert_int_equal(btsso_plock_acquire(l), 0);
        assert_int_equal(pthread_create(&t, NULL, waiter, &w), 0);
        while (!w.waiting) {
            sched_yield();
        }
        nanosleep(&ts, NULL);           /* the waiter sleeps in the kernel */
        assert_int_equal(btsso_plock_release(l), 0);
        /* A priority-inheriting mutex now belongs to the waiter: taking
         * it back at once never succeeds.  This one is free until the
         * waiter runs, microseconds later. */
        if (btsso_plock_acquire(l) == 0) {
            retaken += !w.got;
            assert_int_equal(btsso_plock_release(l), 0);
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(w.got, 1);
    }
    assert_true(retaken > 0);
    apr_pool_destroy(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_excludes_across_processes),
        cmocka_unit_test(test_survives_a_dead_owner),
        cmocka_unit_test(test_no_hand_over_to_a_waiter),
    };
    int rc;

    alarm(120);     /* a lock that never comes back fails, not hangs */
    apr_initialize();
    apr_pool_create(&pool, NULL);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return rc;
}
