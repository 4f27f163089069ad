/* A growing byte buffer for responses, and the JSON string writer: every string the server
 * writes into JSON goes through sb_json_str, which escapes '"', '\\' and control characters and
 * replaces bytes that are not valid UTF-8 with U+FFFD, so a response is always valid JSON. */
#ifndef PHI_SERVER_SBUF_H
#define PHI_SERVER_SBUF_H

#include <stddef.h>

typedef struct {
    char *p;    /* NUL-terminated when n > 0 or after any append */
    size_t n, cap;
    int oom;    /* an allocation failed: the content is incomplete */
} Sb;

void sb_put(Sb *b, const char *s, size_t n);
void sb_puts(Sb *b, const char *s);
void sb_printf(Sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "s" as a JSON string literal (with the quotes). */
void sb_json_str(Sb *b, const char *s, size_t n);
void sb_free(Sb *b);
/* Drop the first n bytes. */
void sb_consume(Sb *b, size_t n);

/* Length of the longest prefix of s[0..n) that is whole valid UTF-8 characters, not cutting one
 * that is complete at the end (a partial trailing sequence is excluded). */
size_t utf8_valid_prefix(const char *s, size_t n);

#endif
