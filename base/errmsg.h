/* Errors are values returned upward with a one-line message; only main prints them. */
#ifndef PHI_ERRMSG_H
#define PHI_ERRMSG_H

#include <stddef.h>

/* Formats the message into err[errlen] (when err is not NULL) and returns -1. */
int errorf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* s[0..n) from an untrusted file made safe for a one-line message: printable ASCII only
 * (others become '?'), truncated with "..." to fit buf[cap]. Returns buf. */
const char *err_printable(const char *s, size_t n, char *buf, size_t cap);

#endif
