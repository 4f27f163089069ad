#include "base/fileio.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "base/cpu.h"
#include "base/errmsg.h"

/* Text inputs (prompts, standard input, perplexity and calibration texts, JSON files) are read
 * whole; an endless one (-f /dev/zero, a runaway pipe) would grow until the machine kills us.
 * So at most this much, or a quarter of the available memory when that is less: EFBIG beyond. */
#define READ_MAX ((size_t)1 << 30)

char *read_stream(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0, max = READ_MAX;
    unsigned long long avail = mem_available_bytes();
    if (avail && avail / 4 < max) max = (size_t)(avail / 4);
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap >= max) {
            free(buf);
            errno = EFBIG;
            return NULL;
        }
        errno = ENOMEM;
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) {
            free(buf);
            return NULL;
        }
        buf = nb;
        cap *= 2;
    }
    if (!buf || ferror(f)) {
        if (buf) errno = EIO;
        else errno = ENOMEM;
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

char *read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        errorf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = read_stream(f, len);
    int e = errno;
    fclose(f);
    if (!buf && e == EFBIG)
        errorf(err, errlen, "%s: too large (a text input is read whole: at most 1 GiB or a quarter "
               "of the available memory)", path);
    else if (!buf) errorf(err, errlen, "%s: %s", path, e == EIO ? "read error" : "out of memory");
    return buf;
}

/* Weights and the KV cache are streamed from memory for every token (attention walks hundreds
 * of MB of cache): through 4 KiB pages that is a TLB miss every 4 KiB (every few keys), so ask for
 * transparent huge pages. The kernel backs only the 2 MiB-aligned stretches of a mapping with them
 * and mmap aligns to a page: map 2 MiB more, keep the aligned n bytes, unmap the rest. Where THP is
 * off madvise does nothing; without anonymous mmap this is calloc (huge_free frees). */
#define HUGE_PAGE ((size_t)2 << 20)

void *huge_alloc(size_t n) {
    if (!n) n = 1;
#ifdef MAP_ANONYMOUS
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (n >= HUGE_PAGE && n <= SIZE_MAX / 2) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE), len = (n + page - 1) / page * page;
        uint8_t *raw = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED) return NULL;
        size_t head = (HUGE_PAGE - (uintptr_t)raw % HUGE_PAGE) % HUGE_PAGE;
        uint8_t *p = raw + head;
        if (head) munmap(raw, head);
        munmap(p + len, HUGE_PAGE - head);
        madvise(p, len, MADV_HUGEPAGE);
        return p;
    }
#endif
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, n, MADV_HUGEPAGE);
#endif
    return p;
#else
    return calloc(1, n);
#endif
}

void huge_free(void *p, size_t n) {
    if (!p) return;
#ifdef MAP_ANONYMOUS
    munmap(p, n ? n : 1);
#else
    (void)n;
    free(p);
#endif
}
