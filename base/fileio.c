#include "base/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
