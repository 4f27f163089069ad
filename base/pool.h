/* Persistent thread pool: threads are started once; pool_run hands every thread (the caller
 * included) the same function and returns when all have finished. Idle workers spin briefly and
 * then sleep, so back-to-back calls (one per matrix per token) cost a few microseconds. */
#ifndef PHI_POOL_H
#define PHI_POOL_H

typedef struct Pool Pool;

typedef void (*PoolFn)(void *arg, int ith, int nth);

/* n_threads counts the caller: n_threads - 1 workers are started. n_threads <= 0 picks the
 * number of online CPUs. NULL on failure. */
Pool *pool_create(int n_threads);
/* Runs fn(arg, ith, nth) for ith = 0..nth-1, ith 0 on the calling thread. A NULL pool runs
 * fn(arg, 0, 1). Calls must not overlap (one caller at a time), and fn must not call pool_run
 * on the same pool. */
void pool_run(Pool *p, PoolFn fn, void *arg);
/* For one-off work split across the machine (reading and converting model files): a pool of
 * every online CPU up to max, caller included, or NULL where that is one thread (or pool_create
 * fails), which pool_run then runs on the caller alone. */
Pool *pool_create_upto(int max);
/* Threads, caller included (1 for NULL). */
int pool_size(const Pool *p);
void pool_destroy(Pool *p);

/* Splits n items among nth threads as evenly as possible, in multiples of `align` items (the
 * last range takes the remainder): sets [*i0, *i1) for thread ith. */
void pool_split(int n, int align, int ith, int nth, int *i0, int *i1);

#endif
