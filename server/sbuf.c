#include "server/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(Sb *b, size_t add) {
    if (b->oom) return -1;
    if (b->n + add + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + add + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void sb_put(Sb *b, const char *s, size_t n) {
    if (grow(b, n)) return;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void sb_puts(Sb *b, const char *s) { sb_put(b, s, strlen(s)); }

void sb_printf(Sb *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < sizeof tmp) {
        sb_put(b, tmp, (size_t)k);
        return;
    }
    if (grow(b, (size_t)k)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

/* Length of the valid UTF-8 sequence at s (s[0] >= 0x80), 0 if invalid or cut off. */
static size_t seq_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    size_t k;
    unsigned min;
    if (c >= 0xC2 && c <= 0xDF) k = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) k = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) k = 4, min = 0x10000;
    else return 0;
    if (avail < k) return 0;
    unsigned cp = c & (0x3F >> (k - 1));
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return k;
}

void sb_json_str(Sb *b, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    sb_put(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\') run++;
        if (run > i) {
            sb_put(b, str + i, run - i);
            i = run;
            continue;
        }
        unsigned c = s[i];
        if (c == '"') sb_put(b, "\\\"", 2), i++;
        else if (c == '\\') sb_put(b, "\\\\", 2), i++;
        else if (c == '\n') sb_put(b, "\\n", 2), i++;
        else if (c == '\r') sb_put(b, "\\r", 2), i++;
        else if (c == '\t') sb_put(b, "\\t", 2), i++;
        else if (c < 0x20) sb_printf(b, "\\u%04x", c), i++;
        else {
            size_t k = seq_len(s + i, n - i);
            if (k) sb_put(b, str + i, k), i += k;
            else sb_put(b, "\xEF\xBF\xBD", 3), i++; /* U+FFFD for each invalid byte */
        }
    }
    sb_put(b, "\"", 1);
}

void sb_free(Sb *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

void sb_consume(Sb *b, size_t n) {
    if (n >= b->n) {
        b->n = 0;
        if (b->p) b->p[0] = 0;
        return;
    }
    memmove(b->p, b->p + n, b->n - n + 1);
    b->n -= n;
}

size_t utf8_valid_prefix(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        size_t k = seq_len(s + i, n - i);
        if (!k) break;
        i += k;
    }
    return i;
}
