/* libFuzzer harness: json_parse on arbitrary bytes, then a walk over the whole tree so every
 * accessor runs on whatever was accepted.
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_json.c base/json.c -lm */
#include "base/json.h"

#include <stdint.h>
#include <string.h>

static size_t walk(const JsonValue *v, int depth) {
    size_t n = 1, len = 0;
    long long x;
    switch (json_type(v)) {
    case JSON_ARRAY:
        for (size_t i = 0; i < json_count(v); i++) n += walk(json_at(v, i), depth + 1);
        break;
    case JSON_OBJECT:
        for (size_t i = 0; i < json_count(v); i++) {
            const char *k = json_key_at(v, i, &len);
            n += len + walk(json_value_at(v, i), depth + 1);
            /* first match by key must exist for keys without NUL */
            if (!memchr(k, 0, len) && !json_get(v, k)) __builtin_trap();
        }
        break;
    case JSON_STRING:
        if (json_str(v, &len)[len] != '\0') __builtin_trap();
        break;
    case JSON_NUMBER:
        n += (size_t)json_int(v, &x);
        break;
    default:
        n += (size_t)json_bool(v, 0);
    }
    if (depth > JSON_MAX_DEPTH) __builtin_trap();
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[256];
    Json *doc = json_parse((const char *)data, size, err, sizeof err);
    if (doc) walk(json_root(doc), 0);
    else if (!err[0] || strchr(err, '\n')) __builtin_trap();
    json_free(doc);
    return 0;
}
