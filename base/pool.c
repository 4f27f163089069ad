/* Persistent thread pool.
 *
 * A call publishes (fn, arg) and bumps a generation counter; workers spin on the counter for a
 * short while after each job (the next matrix of a token follows within microseconds), then
 * sleep on a condition variable. Completion is a countdown the caller spins on the same way.
 * Sleeping is announced through counters read after the publishing store (both seq_cst), so a
 * waker only takes the mutex when somebody may actually be asleep. */
#include "base/pool.h"

#include "base/cpu.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

#define SPIN_S 200e-6 /* spin this long before sleeping (a token's matrices come closer) */

struct Pool {
    int n;
    pthread_t *threads;
    PoolFn fn;
    void *arg;
    atomic_uint gen;      /* bumped once per job */
    atomic_int pending;   /* workers that have not finished the current job */
    atomic_int stop;
    atomic_int sleepers;  /* workers asleep or about to sleep on wake */
    atomic_int caller_asleep;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* workers: new generation */
    pthread_cond_t done; /* caller: pending reached 0 */
};

typedef struct {
    Pool *p;
    int ith;
} WorkerArg;

/* One step of a wait loop: pause, and after the first few hundred steps also yield the CPU
 * (when there are more threads than cores, the thread being waited for may need this one);
 * returns 1 once SPIN_S seconds have passed. */
static int spin_step(unsigned i, double *t0) {
    cpu_relax();
    if (i < 256) return 0;
    if ((i & 15) == 0) sched_yield();
    if ((i & 63) == 0) {
        double t = now_seconds();
        if (!*t0) *t0 = t;
        else if (t - *t0 > SPIN_S) return 1;
    }
    return 0;
}

/* Spins until the generation differs from old (or stop), up to SPIN_S; 1 if it changed. */
static int spin_gen(Pool *p, unsigned old) {
    double t0 = 0;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&p->gen, memory_order_acquire) != old || atomic_load(&p->stop))
            return 1;
        if (spin_step(i, &t0)) return 0;
    }
}

static void *worker_main(void *varg) {
    WorkerArg wa = *(WorkerArg *)varg;
    free(varg);
    Pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        if (!spin_gen(p, seen)) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        p->fn(p->arg, wa.ith, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1 &&
            atomic_load(&p->caller_asleep)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

static int online_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

Pool *pool_create_upto(int max) {
    int n = online_cpus();
    if (n > max) n = max;
    return n > 1 ? pool_create(n) : NULL;
}

Pool *pool_create(int n_threads) {
    if (n_threads <= 0) n_threads = online_cpus();
    Pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->n = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->caller_asleep, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!p->threads) {
        pool_destroy(p);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        WorkerArg *wa = malloc(sizeof(*wa));
        if (!wa) goto fail;
        wa->p = p;
        wa->ith = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
            free(wa);
            goto fail;
        }
    }
    return p;
fail:
    /* Keep the threads that started: the pool just runs with fewer of them. */
    for (int i = 1; i < n_threads; i++)
        if (!p->threads[i]) {
            p->n = i;
            break;
        }
    return p;
}

void pool_run(Pool *p, PoolFn fn, void *arg) {
    if (!p || p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store(&p->pending, p->n - 1);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: ordered before the sleepers check */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, p->n);
    double t0 = 0;
    for (unsigned i = 1; atomic_load_explicit(&p->pending, memory_order_acquire) != 0; i++) {
        if (spin_step(i, &t0)) {
            pthread_mutex_lock(&p->mu);
            atomic_store(&p->caller_asleep, 1);
            while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->done, &p->mu);
            atomic_store(&p->caller_asleep, 0);
            pthread_mutex_unlock(&p->mu);
            break;
        }
    }
}

int pool_size(const Pool *p) { return p ? p->n : 1; }

void pool_destroy(Pool *p) {
    if (!p) return;
    if (p->threads) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->stop, 1);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
        free(p->threads);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p);
}

void pool_split(int n, int align, int ith, int nth, int *i0, int *i1) {
    if (align < 1) align = 1;
    int units = (n + align - 1) / align;
    int a = (int)((long long)units * ith / nth), b = (int)((long long)units * (ith + 1) / nth);
    *i0 = a * align < n ? a * align : n;
    *i1 = b * align < n ? b * align : n;
}
