#include "server/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/errmsg.h"

static int tchar(unsigned char c) { /* RFC 9110 token characters */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Bytes of the line starting at p (without CRLF / LF), or -1 when no line end within max. */
static long line_len(const char *p, size_t avail, size_t max) {
    size_t lim = avail < max + 2 ? avail : max + 2;
    const char *nl = memchr(p, '\n', lim);
    if (!nl) return -1;
    long n = (long)(nl - p);
    if (n > 0 && p[n - 1] == '\r') n--;
    return n;
}

static int bad(int status, char *err, size_t errlen, const char *msg) {
    snprintf(err, errlen, "%s", msg);
    return -status;
}

int http_parse_head(char *buf, size_t len, HttpRequest *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    if (err && errlen) err[0] = 0;
    /* Is the head complete? Look for the empty line within the limit first. */
    size_t scan = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
    size_t end = 0;
    for (size_t i = 0; i < scan; i++) {
        if (buf[i] != '\n') continue;
        if (i >= 1 && buf[i - 1] == '\n') { end = i + 1; break; }
        if (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n') { end = i + 1; break; }
    }
    if (!end) {
        /* incomplete: fail early on a line or head that is already too long */
        size_t start = 0;
        for (size_t i = 0; i < scan; i++)
            if (buf[i] == '\n') start = i + 1;
        if (scan - start > HTTP_MAX_LINE) return bad(start == 0 ? 414 : 431, err, errlen, "request line or header line too long");
        if (len >= HTTP_MAX_HEAD) return bad(431, err, errlen, "request head too large");
        return 0;
    }
    /* request line: METHOD SP target SP HTTP/1.x */
    char *p = buf;
    long n = line_len(p, end, HTTP_MAX_LINE);
    if (n < 0) return bad(414, err, errlen, "request line too long");
    if (n == 0) return bad(400, err, errlen, "empty request line");
    size_t off = (size_t)n + (p[n] == '\r' ? 2 : 1); /* the first header line */
    p[n] = 0;
    char *sp1 = strchr(p, ' ');
    if (!sp1) return bad(400, err, errlen, "malformed request line");
    *sp1 = 0;
    for (char *c = p; *c; c++)
        if (!tchar((unsigned char)*c)) return bad(400, err, errlen, "malformed method");
    if (!*p) return bad(400, err, errlen, "malformed method");
    char *target = sp1 + 1, *sp2 = strchr(target, ' ');
    if (!sp2 || sp2 == target) return bad(400, err, errlen, "malformed request line");
    *sp2 = 0;
    const char *ver = sp2 + 1;
    if (strncmp(ver, "HTTP/", 5)) return bad(400, err, errlen, "malformed HTTP version");
    if (strlen(ver) != 8 || ver[6] != '.' || ver[5] < '0' || ver[5] > '9' || ver[7] < '0' || ver[7] > '9')
        return bad(400, err, errlen, "malformed HTTP version");
    if (ver[5] != '1') return bad(505, err, errlen, "only HTTP/1.x is served");
    for (const char *c = target; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) return bad(400, err, errlen, "invalid character in the target");
    if (target[0] != '/') return bad(400, err, errlen, "the target must be a path");
    size_t plen = strcspn(target, "?#");
    if (plen >= sizeof r->path) return bad(414, err, errlen, "path too long");
    memcpy(r->path, target, plen);
    r->path[plen] = 0;
    r->method = p;
    r->target = target;
    r->minor = ver[7] - '0';
    r->keep_alive = r->minor >= 1;
    /* header lines */
    int have_len = 0, have_host = 0;
    for (;;) {
        if (off >= end) return bad(400, err, errlen, "malformed head");
        char *h = buf + off;
        long hl = line_len(h, end - off, HTTP_MAX_LINE);
        if (hl < 0) return bad(431, err, errlen, "header line too long");
        size_t next = off + (size_t)hl + (h[hl] == '\r' ? 2 : 1);
        if (hl == 0) break; /* the empty line */
        if (h[0] == ' ' || h[0] == '\t') return bad(400, err, errlen, "obsolete header line folding");
        if (r->n_headers == HTTP_MAX_HEADERS) return bad(431, err, errlen, "too many header lines");
        h[hl] = 0;
        char *colon = strchr(h, ':');
        if (!colon || colon == h) return bad(400, err, errlen, "malformed header line");
        *colon = 0;
        for (char *c = h; *c; c++)
            if (!tchar((unsigned char)*c)) return bad(400, err, errlen, "malformed header name");
        char *v = colon + 1, *ve = h + hl;
        while (*v == ' ' || *v == '\t') v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) *--ve = 0;
        for (char *c = v; *c; c++)
            if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) return bad(400, err, errlen, "invalid character in a header value");
        r->headers[r->n_headers++] = (HttpHeader){h, v};
        if (!strcasecmp(h, "content-length")) {
            long long x = 0;
            if (!*v) return bad(400, err, errlen, "malformed Content-Length");
            for (const char *c = v; *c; c++) {
                if (*c < '0' || *c > '9' || x > 1000000000000LL) return bad(400, err, errlen, "malformed Content-Length");
                x = x * 10 + (*c - '0');
            }
            if (have_len && x != r->content_length) return bad(400, err, errlen, "conflicting Content-Length headers");
            have_len = 1;
            r->content_length = x;
        } else if (!strcasecmp(h, "transfer-encoding")) {
            return bad(411, err, errlen, "request bodies need a Content-Length (no Transfer-Encoding)");
        } else if (!strcasecmp(h, "connection")) {
            if (strcasestr(v, "close")) r->keep_alive = 0;
            else if (strcasestr(v, "keep-alive")) r->keep_alive = 1;
        } else if (!strcasecmp(h, "host")) {
            have_host = 1;
        }
        off = next;
    }
    (void)have_host; /* RFC 9112 wants Host in 1.1; clients of a local API sometimes omit it */
    return (int)end;
}

const char *http_header(const HttpRequest *r, const char *name) {
    for (int i = 0; i < r->n_headers; i++)
        if (!strcasecmp(r->headers[i].name, name)) return r->headers[i].value;
    return NULL;
}

const char *http_reason(int s) {
    switch (s) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}
