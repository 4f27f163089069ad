/* libFuzzer harness: the server's request parsing on arbitrary bytes. http_parse_head on the
 * input (every accepted head is checked for consistency), then the rest as a chat and as a
 * completion request body (oai_parse), and the JSON string writer on the raw bytes, whose output
 * must parse back as one JSON string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "server/http.h"
#include "server/oai.h"
#include "server/sbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    HttpRequest r;
    char err[256];
    int n = http_parse_head(buf, size, &r, err, sizeof err);
    if (n > 0) {
        if ((size_t)n > size || n > HTTP_MAX_HEAD || r.n_headers > HTTP_MAX_HEADERS || r.path[0] != '/' ||
            r.content_length < 0)
            __builtin_trap();
        for (int i = 0; i < r.n_headers; i++)
            if (!r.headers[i].name[0] || !http_header(&r, r.headers[i].name)) __builtin_trap();
    } else if (n < 0 && (n > -400 || n < -505 || !err[0])) {
        __builtin_trap();
    }
    const char *body = (const char *)data + (n > 0 ? n : 0);
    size_t blen = size - (n > 0 ? (size_t)n : 0);
    for (int chat = 0; chat < 2; chat++) {
        OaiRequest q;
        const char *param;
        if (oai_parse(body, blen, chat, &q, &param, err, sizeof err) == 0) {
            if (chat && q.n_msgs < 1) __builtin_trap();
            if (!chat && !q.prompt && q.n_prompt_ids < 1) __builtin_trap();
            oai_free(&q);
        } else if (!err[0]) {
            __builtin_trap();
        }
    }
    Sb b = {0};
    sb_json_str(&b, (const char *)data, size);
    Json *doc = json_parse(b.p, b.n, err, sizeof err);
    if (!b.oom && (!doc || json_type(json_root(doc)) != JSON_STRING)) __builtin_trap();
    json_free(doc);
    sb_free(&b);
    free(buf);
    return 0;
}
