/* Tiny test harness. Every check prints one line:
 *   PASS name: details | FAIL name: details | SKIP name: reason
 * tests/run.sh counts these lines over all test programs and prints the closing summary.
 * A program exits 1 if any of its checks failed. */
#ifndef PHI_HARNESS_H
#define PHI_HARNESS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/stat.h>

#include "base/fileio.h"
#include "base/rng.h"

static int t_failed_count;

static __attribute__((unused)) void t_vline(const char *tag, const char *name, const char *fmt, va_list ap) {
    printf("%s %s", tag, name);
    if (fmt && *fmt) {
        printf(": ");
        vprintf(fmt, ap);
    }
    printf("\n");
    fflush(stdout);
}

/* Records a check: PASS when cond is true, FAIL otherwise. Returns cond. */
static __attribute__((unused)) int t_check(int cond, const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    t_vline(cond ? "PASS" : "FAIL", name, fmt, ap);
    va_end(ap);
    if (!cond) t_failed_count++;
    return cond;
}

static __attribute__((unused)) void t_skip(const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    t_vline("SKIP", name, fmt, ap);
    va_end(ap);
}

/* Folder of the shared test data (PHI_DATA, else ../shared/data), or NULL if absent. */
static __attribute__((unused)) const char *t_data_dir(void) {
    const char *d = getenv("PHI_DATA");
    if (!d || !*d) d = "../shared/data";
    struct stat st;
    return stat(d, &st) == 0 && S_ISDIR(st.st_mode) ? d : NULL;
}

/* Scratch folder for files a test writes (PHI_TMP, else build/tmp); created on demand. */
static __attribute__((unused)) const char *t_tmp_dir(void) {
    const char *d = getenv("PHI_TMP");
    if (!d || !*d) d = "build/tmp";
    mkdir(d, 0755);
    return d;
}

/* Nonzero under an emulator (PHI_EXEC names it: the board legs' qemu-user, 50-100x slower than
 * native). Sweeps whose work is the same C on every ISA (draft lengths, thread counts, windows)
 * then take one or two points each; make test and make asan run them in full. */
static __attribute__((unused)) int t_emulated(void) {
    const char *e = getenv("PHI_EXEC");
    return e && *e;
}

static __attribute__((unused)) int t_done(void) { return t_failed_count ? 1 : 0; }

/* Deterministic random numbers for test inputs (base/rng.h's xorshift64*). */
static uint64_t t_rng_state = 0x9E3779B97F4A7C15ull;
static __attribute__((unused)) void t_seed(unsigned long long s) { t_rng_state = s ? s : 1; }
static __attribute__((unused)) float t_randf(void) { /* uniform in [-1, 1) */
    return (float)((rng_next(&t_rng_state) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* The whole file (base/fileio.c's read_file), NULL when it cannot be read. */
static __attribute__((unused)) uint8_t *t_read_all(const char *path, uint64_t *size) {
    size_t n = 0;
    char e[256];
    uint8_t *b = (uint8_t *)read_file(path, &n, e, sizeof e);
    *size = b ? (uint64_t)n : 0;
    return b;
}

#endif
