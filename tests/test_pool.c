/* Thread pool: every thread runs each job exactly once with the right (ith, nth), results are
 * visible to the caller, the sleep/wake paths work (pauses longer than the spin), and
 * pool_split covers a range exactly, pool_create_upto caps at the CPUs online. Also the big
 * buffers the pool's jobs work on (base/fileio.h huge_alloc): zeroed, writable, 2 MiB-aligned
 * when large, released whole by huge_free. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
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

/* Sizes on both sides of the 2 MiB line (and 0, which gets a page); after huge_free no page of
 * the buffer is mapped (msync: ENOMEM), which is what munmap(p, n) by a caller relies on. Under
 * qemu-user (PHI_EXEC: the cross builds' runs) that last check says nothing: qemu keeps the
 * guest's freed range reserved in its own address space, and msync there succeeds (seen with
 * qemu-arm), so it is left out and the line says so. */
static void test_huge_alloc(void) {
    const char *emu = getenv("PHI_EXEC");
    int check_unmap = !(emu && *emu);
    size_t mb2 = (size_t)2 << 20;
    size_t sizes[] = {0, 1, 4095, 4097, mb2 - 1, mb2, mb2 + 1, 5 * mb2 + 123, 24 * mb2};
    int ok = 1, aligned = 1;
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes && ok; i++) {
        size_t n = sizes[i];
        unsigned char *p = huge_alloc(n);
        if (!p) {
            ok = 0;
            break;
        }
        for (size_t k = 0; k < n && ok; k++) ok = p[k] == 0;
        if (n) p[0] = p[n - 1] = 1;
        if (n >= mb2 && (uintptr_t)p % mb2) aligned = 0;
        huge_free(p, n);
        for (size_t off = 0; check_unmap && off < (n ? n : 1) && ok; off += (size_t)page)
            ok = msync(p + off, 1, MS_ASYNC) == -1 && errno == ENOMEM;
    }
    huge_free(NULL, 123);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    ok = ok && aligned;
#endif
    t_check(ok, "huge_alloc", "0 B to 48 MiB: zeroed, writable, %s, %s",
            aligned ? "2 MiB-aligned from 2 MiB" : "not 2 MiB-aligned (no THP here)",
            check_unmap ? "unmapped whole by huge_free" : "release not checked (under qemu-user: msync cannot tell)");
}

int main(void) {
    test_huge_alloc();
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
