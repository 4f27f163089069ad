/* HTTP/1.1 request heads, parsed in place from untrusted bytes with hard limits (RFC 9112):
 * the request line and every header line at most HTTP_MAX_LINE bytes, at most HTTP_MAX_HEADERS
 * headers, the whole head at most HTTP_MAX_HEAD bytes. Bodies are Content-Length only (a
 * chunked request body is refused with 411, as many servers do). */
#ifndef PHI_SERVER_HTTP_H
#define PHI_SERVER_HTTP_H

#include <stddef.h>

#define HTTP_MAX_HEAD 16384
#define HTTP_MAX_LINE 8192
#define HTTP_MAX_HEADERS 64

typedef struct {
    const char *name, *value; /* NUL-terminated, inside the parsed buffer; value trimmed */
} HttpHeader;

typedef struct {
    const char *method;        /* "GET", "POST", ... */
    const char *target;        /* as sent, e.g. "/v1/models?x=1" */
    char path[256];            /* target without query string */
    int minor;                 /* HTTP/1.<minor> */
    HttpHeader headers[HTTP_MAX_HEADERS];
    int n_headers;
    long long content_length;  /* 0 when absent */
    int keep_alive;            /* the client lets the connection stay open */
} HttpRequest;

/* Parse the head at the start of buf[0..len) (modified in place: lines are NUL-terminated).
 * Returns the head's length (through the empty line) when complete, 0 when more bytes are
 * needed (and none of the limits is exceeded yet), or minus an HTTP status (-400 ...) for a bad head
 * (400 malformed, 411 chunked body, 414 long target, 431 headers too large or many, 501
 * unknown method form, 505 not HTTP/1.x) with a one-line reason in err. */
int http_parse_head(char *buf, size_t len, HttpRequest *r, char *err, size_t errlen);

/* A header's value (case-insensitive name), or NULL. */
const char *http_header(const HttpRequest *r, const char *name);

/* The reason phrase of a status code ("OK", "Bad Request", ...). */
const char *http_reason(int status);

#endif
