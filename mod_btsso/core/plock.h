/*
 * plock.h - a lock shared by the processes forked after it is made: a
 * process-shared, robust pthread mutex WITHOUT priority inheritance, in
 * anonymous shared memory.
 *
 * Why not APR's "pthread" process mutex: APR makes it robust and
 * priority-inheriting (PTHREAD_PRIO_INHERIT).  A priority-inheriting mutex
 * is a PI futex: when a thread waits, the kernel hands the lock to that
 * waiter at the next unlock, so a thread that unlocks and comes back for
 * the lock a microsecond later waits until the woken thread has run; no
 * other thread may take it meanwhile.  Every cache access of a protected
 * request takes this lock, and on two cores with dozens of threads that
 * hand-over turned into a convoy: some 0.5 kernel calls and a quarter of
 * the throughput lost per protected request at 32 connections
 * (docs/performance.md).  A plain robust mutex lets the running thread
 * take a free lock at once (a compare-and-swap, no system call), sleeps
 * only when it must, and still survives a process that dies holding it.
 *
 * Made in the parent before it forks; children use it as inherited.
 */
#ifndef BTSSO_PLOCK_H
#define BTSSO_PLOCK_H

#include <apr_pools.h>
#include <apr_errno.h>

typedef struct btsso_plock_t btsso_plock_t;

/* A new lock in p.  Its memory is unmapped when p is cleared, and nothing
 * else: no cleanup of this file's runs then, so that p may be httpd's
 * process pool, which outlives the module's code (httpd unloads modules
 * before it destroys that pool); a process-shared mutex needs no
 * pthread_mutex_destroy on Linux. */
apr_status_t btsso_plock_create(btsso_plock_t **out, apr_pool_t *p);

/* 0: taken.  1: taken from a process or thread that died holding it (what
 * the lock guards may be half-written; the lock itself is usable again).
 * -1: not taken, errno says why (ENOTRECOVERABLE should not happen: a
 * dead owner is always recovered from here). */
int btsso_plock_acquire(btsso_plock_t *l);

/* 0, or -1 with errno (EPERM: not the owner). */
int btsso_plock_release(btsso_plock_t *l);

#endif /* BTSSO_PLOCK_H */
