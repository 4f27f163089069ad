/* Errors are values returned upward (-1) with a one-line message in a caller's buffer. The
 * layers below app/ do not print errors: phi.c, quant.c and app/run.c (the modes phi.c
 * dispatches to) print them, one line each. What else writes to stderr: progress lines
 * (convert, calib, perplexity), chat's notices (app/chat.c), and kernels_init's line about an
 * unknown or unsupported $PHI_ISA (kernels/dispatch.c). */
#ifndef PHI_ERRMSG_H
#define PHI_ERRMSG_H

#include <stddef.h>

/* Formats the message into err[errlen] (when err is not NULL) and returns -1. */
int errorf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* s[0..n) from an untrusted file made safe for a one-line message: printable ASCII only
 * (others become '?'), truncated with "..." to fit buf[cap]. Returns buf. */
const char *err_printable(const char *s, size_t n, char *buf, size_t cap);

#endif
