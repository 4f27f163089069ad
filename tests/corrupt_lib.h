/* The corrupt-input corpus machinery shared by tests/test_corrupt.c (model, tokenizer and GGUF
 * files) and tests/test_corrupt_io.c (adapters, HTTP requests): a case runner that classifies
 * each case as rejected with one line / accepted / bad, and the generic mutations (truncation,
 * byte flips, crafted fields, random damage, JSON token mutations). Static: one includer per
 * test program. */
#ifndef PHI_TESTS_CORRUPT_LIB_H
#define PHI_TESTS_CORRUPT_LIB_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/rng.h"
#include "tests/harness.h"

/* ---- the case runner ---- */

typedef int (*Parser)(const uint8_t *buf, size_t n, char *err, size_t errlen);

typedef struct {
    const char *name;
    Parser parse;
    long cases, rejected, accepted, bad;
} Format;

static const char *g_case; /* what the running case is, for the alarm's message */
static const char *g_write_dir; /* --write: where the phi-file cases go */
static long g_written, g_seen, g_stride = 1; /* --write writes every g_stride-th case */

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FAIL corrupt: a case hung (over 20 s): ";
    if (write(1, msg, sizeof msg - 1) < 0 || write(1, g_case, strlen(g_case)) < 0 || write(1, "\n", 1) < 0) _exit(1);
    _exit(1);
}

/* One case: an exact-size heap copy (64-byte aligned, as a mapping is), so that ASan sees any read
 * past its end. */
static void run_case(Format *f, const uint8_t *buf, size_t n, const char *what) {
    if (g_write_dir) { /* --write: the case is a file for tests/corrupt.sh */
        if (g_seen++ % g_stride) return;
        char path[512];
        snprintf(path, sizeof path, "%s/%05ld-%s.phi", g_write_dir, g_written++, what);
        for (char *c = path + strlen(g_write_dir) + 1; *c; c++)
            if (*c == '/' || *c == ' ') *c = '_';
        FILE *o = fopen(path, "wb");
        if (!o || fwrite(buf, 1, n, o) != n || fclose(o)) t_check(0, "corrupt_write", "%s", path);
        return;
    }
    uint8_t *copy = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!copy) abort();
    memcpy(copy, buf, n);
    char err[1024];
    err[0] = 0;
    g_case = what;
    alarm(20);
    int rc = f->parse(copy, n, err, sizeof err);
    alarm(0);
    free(copy);
    f->cases++;
    if (rc == 0) {
        f->accepted++;
    } else if (rc == -1 && err[0] && !strchr(err, '\n')) {
        f->rejected++;
    } else {
        if (f->bad++ < 5) t_check(0, f->name, "case %s: rc %d, message '%s'", what, rc, err);
    }
}

static void report(Format *f) {
    t_check(f->bad == 0 && f->cases > 0, f->name, "%ld cases: %ld rejected with one line, %ld accepted and ran, %ld bad",
            f->cases, f->rejected, f->accepted, f->bad);
}

/* ---- generic mutations ---- */

static uint64_t rd_le(const uint8_t *p, int w) {
    uint64_t v = 0;
    for (int i = w - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static void wr_le(uint8_t *p, uint64_t v, int w) {
    for (int i = 0; i < w; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void truncate_at(Format *f, const uint8_t *buf, size_t n, size_t at, const char *where) {
    if (at >= n) return;
    char what[160];
    snprintf(what, sizeof what, "truncated at %zu (%s)", at, where);
    run_case(f, buf, at, what);
}

/* The byte at off set to a few values that break structure. */
static void flip_byte(Format *f, uint8_t *buf, size_t n, size_t off, const char *where) {
    if (off >= n) return;
    static const uint8_t vals[] = {0x00, 0xff, 0x80, 0x7f};
    uint8_t keep = buf[off];
    char what[160];
    for (size_t k = 0; k < sizeof vals; k++) {
        if (vals[k] == keep) continue;
        buf[off] = vals[k];
        snprintf(what, sizeof what, "byte %zu (%s) = 0x%02x", off, where, vals[k]);
        run_case(f, buf, n, what);
    }
    buf[off] = keep;
}

/* The field of w bytes at off set to crafted values: small, huge, sign bits, the file size, NaN
 * and infinities as float bit patterns, and the extra values given (other offsets: overlaps). */
static void craft_field(Format *f, uint8_t *buf, size_t n, size_t off, int w, const char *where,
                        const uint64_t *extra, int n_extra) {
    if (off + (size_t)w > n) return;
    uint64_t vals[24] = {0, 1, 2, 0x7fffffffu, 0x80000000u, 0xffffffffu, (uint64_t)n, (uint64_t)n + 1};
    int k = 8;
    if (w == 8) {
        vals[k++] = 1ull << 32;
        vals[k++] = 1ull << 63;
        vals[k++] = ~0ull;
    } else {
        vals[k++] = 0x7fc00000u; /* NaN */
        vals[k++] = 0x7f800000u; /* +inf */
        vals[k++] = 0xff800000u; /* -inf */
    }
    for (int i = 0; i < n_extra && k < 24; i++) vals[k++] = extra[i];
    uint64_t keep = rd_le(buf + off, w);
    char what[160];
    for (int i = 0; i < k; i++) {
        uint64_t v = w == 4 ? (uint32_t)vals[i] : vals[i];
        if (v == keep) continue;
        wr_le(buf + off, v, w);
        snprintf(what, sizeof what, "%s at %zu = %llu", where, off, (unsigned long long)v);
        run_case(f, buf, n, what);
    }
    wr_le(buf + off, keep, w);
}

/* count random single-byte changes in [lo, hi) and count random truncations */
static void random_damage(Format *f, uint8_t *buf, size_t n, size_t lo, size_t hi, int count, uint64_t seed) {
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 1;
    char what[160];
    if (hi > n) hi = n;
    for (int i = 0; i < count && hi > lo; i++) {
        size_t off = lo + rng_next(&r) % (hi - lo);
        uint8_t keep = buf[off], v = (uint8_t)rng_next(&r);
        if (v == keep) v ^= 1;
        buf[off] = v;
        snprintf(what, sizeof what, "random byte %zu = 0x%02x", off, v);
        run_case(f, buf, n, what);
        buf[off] = keep;
    }
    for (int i = 0; i < count && n > 1; i++) {
        size_t at = 1 + rng_next(&r) % (n - 1);
        snprintf(what, sizeof what, "random truncation at %zu", at);
        run_case(f, buf, at, what);
    }
}

/* ---- JSON text mutations (config.json, tokenizer.json, the safetensors header) ----
 * wrap(text) builds the bytes the parser sees; here the text is changed token by token. */

typedef size_t (*Wrap)(const char *text, size_t len, uint8_t **out, void *ctx);

static void json_case(Format *f, Wrap wrap, void *ctx, const char *text, size_t len, const char *what) {
    uint8_t *b;
    size_t n = wrap(text, len, &b, ctx);
    run_case(f, b, n, what);
    free(b);
}

/* text[0..a) + rep + text[b..len) */
static void json_splice(Format *f, Wrap wrap, void *ctx, const char *t, size_t len, size_t a, size_t b,
                        const char *rep, size_t rlen, const char *what) {
    char *s = malloc(len - (b - a) + rlen + 1);
    if (!s) abort();
    memcpy(s, t, a);
    memcpy(s + a, rep, rlen);
    memcpy(s + a + rlen, t + b, len - b);
    json_case(f, wrap, ctx, s, len - (b - a) + rlen, what);
    free(s);
}

/* Up to cap sampled positions of the tokens of each kind, mutated. */
static void json_mutations(Format *f, Wrap wrap, void *ctx, const char *t, size_t len, int cap) {
    size_t *structural = malloc(len * sizeof *structural), *numbers = malloc(len * sizeof *numbers),
           *strings = malloc(len * sizeof *strings);
    size_t ns = 0, nn = 0, nq = 0;
    if (!structural || !numbers || !strings) abort();
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
            strings[nq++] = i;
        }
        if (strchr("{}[]:,\"", c)) structural[ns++] = i;
        else if ((c == '-' || (c >= '0' && c <= '9')) && i > 0 && !strchr("0123456789.eE+-", t[i - 1]))
            numbers[nn++] = i;
    }
    char what[160];
    size_t step = ns > (size_t)cap ? ns / (size_t)cap : 1;
    for (size_t k = 0; k < ns; k += step) {
        size_t i = structural[k];
        snprintf(what, sizeof what, "truncated at JSON token %zu", i);
        json_case(f, wrap, ctx, t, i, what);
        snprintf(what, sizeof what, "JSON '%c' at %zu deleted", t[i], i);
        json_splice(f, wrap, ctx, t, len, i, i + 1, "", 0, what);
        const char *other = strchr("{}[]:,\"", t[i]) + 1;
        if (!*other) other = "{";
        snprintf(what, sizeof what, "JSON '%c' at %zu -> '%c'", t[i], i, *other);
        json_splice(f, wrap, ctx, t, len, i, i + 1, other, 1, what);
    }
    static const char *nums[] = {"0", "-1", "2147483648", "4294967296", "18446744073709551616",
                                 "9223372036854775807", "1e999", "-1e999", "0.5", "-0.0", "NaN", "1e-999"};
    step = nn > (size_t)cap / 4 ? nn / ((size_t)cap / 4) : 1;
    for (size_t k = 0; k < nn; k += step) {
        size_t a = numbers[k], b = a + 1;
        while (b < len && strchr("0123456789.eE+-", t[b])) b++;
        for (size_t v = 0; v < sizeof nums / sizeof *nums; v++) {
            snprintf(what, sizeof what, "JSON number at %zu -> %s", a, nums[v]);
            json_splice(f, wrap, ctx, t, len, a, b, nums[v], strlen(nums[v]), what);
        }
    }
    step = nq > (size_t)cap / 4 ? nq / ((size_t)cap / 4) : 1;
    for (size_t k = 0; k < nq; k += step) {
        size_t a = strings[k], b = a + 1;
        while (b < len && t[b] != '"') b += t[b] == '\\' ? 2 : 1;
        if (b >= len) break;
        snprintf(what, sizeof what, "JSON string at %zu emptied", a);
        json_splice(f, wrap, ctx, t, len, a + 1, b, "", 0, what);
        snprintf(what, sizeof what, "JSON string at %zu: invalid UTF-8", a);
        json_splice(f, wrap, ctx, t, len, a + 1, a + 1, "\xff\xc3", 2, what);
        snprintf(what, sizeof what, "JSON string at %zu: bad escape", a);
        json_splice(f, wrap, ctx, t, len, a + 1, a + 1, "\\u12", 4, what);
    }
    /* deep nesting before the document, and a document of nothing */
    size_t deep = 100000;
    char *d = malloc(deep + len);
    if (!d) abort();
    memset(d, '[', deep);
    memcpy(d + deep, t, len);
    json_case(f, wrap, ctx, d, deep + len, "100000 '[' before the document");
    free(d);
    json_case(f, wrap, ctx, "", 0, "empty");
    json_case(f, wrap, ctx, "null", 4, "null");
    json_case(f, wrap, ctx, "[]", 2, "an array");
    free(structural);
    free(numbers);
    free(strings);
}

static size_t wrap_plain(const char *text, size_t len, uint8_t **out, void *ctx) {
    (void)ctx;
    *out = malloc(len ? len : 1);
    if (!*out) abort();
    memcpy(*out, text, len);
    return len;
}


/* A file of ../shared/data (rel: its path there), malloc'd; NULL when absent. */
static char *read_data(const char *rel, size_t *n) {
    const char *d = t_data_dir();
    if (!d) return NULL;
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/%s", d, rel);
    return read_file(path, n, err, sizeof err);
}

#endif
