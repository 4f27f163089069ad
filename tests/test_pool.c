/* Thread pool: every thread runs each job exactly once with the right (ith, nth), results are
 * visible to the caller, the sleep/wake paths work (pauses longer than the spin), and
 * pool_split covers a range exactly, pool_create_upto caps at the CPUs online. */
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/pool.h"
#include "tests/harness.h"

#define MAXT 16

typedef struct {
    int nth_seen[MAXT];
    int runs[MAXT];
    long data[MAXT];
    atomic_int total;
} Job;

static void job_fn(void *arg, int ith, int nth) {
    Job *j = arg;
    j->nth_seen[ith] = nth;
    j->runs[ith]++;
    j->data[ith] += ith + 1; /* plain write: must be visible once pool_run returns */
    atomic_fetch_add(&j->total, 1);
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void test_threads(int n) {
    Pool *p = pool_create(n);
    Job j;
    memset(&j, 0, sizeof j);
    int iters = 3000, ok = p != NULL && pool_size(p) == n;
    for (int it = 0; it < iters && ok; it++) {
        pool_run(p, job_fn, &j);
        if (it % 500 == 0) sleep_us(2000); /* workers and caller fall asleep, then wake */
    }
    for (int i = 0; i < n && ok; i++)
        ok = j.runs[i] == iters && j.nth_seen[i] == n && j.data[i] == (long)iters * (i + 1);
    ok = ok && atomic_load(&j.total) == iters * n;
    t_check(ok, "pool_run", "threads=%d: %d jobs, each thread once per job", n, iters);
    sleep_us(1000); /* destroy while the workers sleep */
    pool_destroy(p);
}

static void test_split(void) {
    int ok = 1;
    for (int n = 0; n < 300 && ok; n += 7)
        for (int nth = 1; nth <= 9 && ok; nth++)
            for (int align = 1; align <= 16 && ok; align *= 4) {
                int next = 0;
                for (int ith = 0; ith < nth; ith++) {
                    int a, b;
                    pool_split(n, align, ith, nth, &a, &b);
                    if (a != next || b < a || (a % align && a != n)) ok = 0;
                    next = b;
                }
                if (next != n) ok = 0;
            }
    t_check(ok, "pool_split", "contiguous, aligned ranges covering [0, n)");
}

/* pool_create_upto(max): min(max, online CPUs) threads, NULL where that is one; the CPU count
 * read here from sysconf, as a user would check it. */
static void test_upto(void) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    int ok = 1;
    for (int max = 1; max <= 9; max++) {
        Pool *p = pool_create_upto(max);
        int want = cpus < max ? (int)cpus : max;
        if (want == 1 ? p != NULL : p == NULL || pool_size(p) != want) ok = 0;
        if (p) {
            Job j;
            memset(&j, 0, sizeof j);
            pool_run(p, job_fn, &j);
            for (int t = 0; t < want; t++)
                if (j.runs[t] != 1 || j.nth_seen[t] != want) ok = 0;
        }
        pool_destroy(p);
    }
    t_check(ok, "pool_create_upto", "max 1..9 on %ld online CPUs: min(max, CPUs) threads, NULL for one", cpus);
}

int main(void) {
    Job j;
    memset(&j, 0, sizeof j);
    pool_run(NULL, job_fn, &j);
    t_check(j.runs[0] == 1 && j.nth_seen[0] == 1 && pool_size(NULL) == 1, "pool_run NULL",
            "runs on the caller");
    int ns[] = {1, 2, 3, 7};
    for (int i = 0; i < 4; i++) test_threads(ns[i]);
    test_split();
    test_upto();
    return t_done();
}
