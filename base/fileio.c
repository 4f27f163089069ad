#include "base/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/errmsg.h"

char *read_stream(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, 2 * cap + 1);
        if (!nb) {
            free(buf);
            return NULL;
        }
        buf = nb;
        cap *= 2;
    }
    if (!buf || ferror(f)) {
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
    fclose(f);
    if (!buf) errorf(err, errlen, "%s: read error or out of memory", path);
    return buf;
}
