/* The server's parsers of untrusted bytes and its JSON output: HTTP request heads (limits, every
 * refusal), OpenAI request validation, and the JSON string writer (escapes, invalid UTF-8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "server/http.h"
#include "server/oai.h"
#include "server/sbuf.h"
#include "tests/harness.h"

static int parse(const char *text, HttpRequest *r, char *err, size_t errlen) {
    static char buf[HTTP_MAX_HEAD * 3];
    size_t n = strlen(text);
    memcpy(buf, text, n + 1);
    return http_parse_head(buf, n, r, err, errlen);
}

static void test_heads(void) {
    HttpRequest r;
    char err[128];
    const char *ok = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length:  12 \r\n"
                     "Authorization: Bearer k\r\n\r\n{\"a\":1}";
    int n = parse(ok, &r, err, sizeof err);
    t_check(n == (int)(strstr(ok, "\r\n\r\n") - ok) + 4 && !strcmp(r.method, "POST") && !strcmp(r.path, "/v1/chat/completions") &&
                r.content_length == 12 && r.keep_alive && r.n_headers == 3 &&
                !strcmp(http_header(&r, "authorization"), "Bearer k"),
            "http_head_ok", "%d bytes, path %s, length %lld", n, r.path, r.content_length);
    t_check(parse("GET /health HTTP/1.0\n\n", &r, err, sizeof err) == 22 && !r.keep_alive && r.minor == 0,
            "http_head_lf_only_http10", "keep-alive %d", r.keep_alive);
    t_check(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r, err, sizeof err) > 0 && !r.keep_alive,
            "http_connection_close", NULL);
    t_check(parse("GET /health HTTP/1.1\r\nHost: a\r\n", &r, err, sizeof err) == 0, "http_head_incomplete", NULL);
    t_check(parse("", &r, err, sizeof err) == 0, "http_head_empty_needs_more", NULL);
    struct { const char *name, *text; int status; } bad[] = {
        {"no_version", "GET /\r\n\r\n", 400},
        {"bad_version", "GET / HTTP/2.0\r\n\r\n", 505},
        {"version_garbage", "GET / HTTP/1.x\r\n\r\n", 400},
        {"target_not_path", "GET http://x/ HTTP/1.1\r\n\r\n", 400},
        {"control_in_target", "GET /a\x01 HTTP/1.1\r\n\r\n", 400},
        {"bad_method", "G(T / HTTP/1.1\r\n\r\n", 400},
        {"empty_line_first", "\r\n\r\n", 400},
        {"header_no_colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 400},
        {"header_space_name", "GET / HTTP/1.1\r\nHo st: a\r\n\r\n", 400},
        {"header_folding", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400},
        {"header_control", "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400},
        {"content_length_sign", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        {"content_length_huge", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
        {"content_length_conflict", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse(bad[i].text, &r, err, sizeof err);
        char name[64];
        snprintf(name, sizeof name, "http_refuses_%s", bad[i].name);
        t_check(rc == -bad[i].status && err[0], name, "%d (%s)", -rc, err);
    }
    /* limits */
    static char big[HTTP_MAX_HEAD * 2 + 64];
    strcpy(big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS + 1; i++) strcat(big, "X-A: 1\r\n");
    strcat(big, "\r\n");
    t_check(parse(big, &r, err, sizeof err) == -431, "http_too_many_headers", "%s", err);
    strcpy(big, "GET / HTTP/1.1\r\nX-A: ");
    memset(big + strlen(big), 'a', HTTP_MAX_LINE + 10);
    big[16 + 5 + HTTP_MAX_LINE + 10] = 0;
    t_check(parse(big, &r, err, sizeof err) == -431, "http_long_line_refused_before_the_end", "%s", err);
    memset(big, 'a', HTTP_MAX_LINE + 10);
    big[0] = 'G';
    big[HTTP_MAX_LINE + 10] = 0;
    t_check(parse(big, &r, err, sizeof err) == -414, "http_long_request_line", "%s", err);
    strcpy(big, "GET / HTTP/1.1\r\n");
    while (strlen(big) < HTTP_MAX_HEAD + 100) strcat(big, "X-Long-Header-Name: 0123456789012345678901234567890123456789\r\n");
    t_check(parse(big, &r, err, sizeof err) == -431, "http_head_too_large", "%s", err);
}

static void test_requests(void) {
    OaiRequest r;
    const char *param;
    char err[256];
    const char *ok = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":"
                     "[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}],\"max_tokens\":5,\"temperature\":0,"
                     "\"top_p\":0.5,\"top_k\":3,\"min_p\":0.1,\"seed\":7,\"stop\":[\"x\",\"yz\"],\"stream\":true,"
                     "\"stream_options\":{\"include_usage\":true},\"presence_penalty\":1.5,\"frequency_penalty\":-1,\"n\":1}";
    int rc = oai_parse(ok, strlen(ok), 1, &r, &param, err, sizeof err);
    t_check(rc == 0 && r.n_msgs == 2 && !strcmp(r.msgs[1].content, "ab") && !strcmp(r.msgs[0].role, "system") &&
                r.max_tokens == 5 && r.temperature == 0 && r.top_p == 0.5f && r.top_k == 3 && r.min_p == 0.1f &&
                r.has_seed && r.seed == 7 && r.n_stop == 2 && !strcmp(r.stop[1], "yz") && r.stream && r.include_usage &&
                r.presence_penalty == 1.5f && r.frequency_penalty == -1,
            "oai_chat_request_fields", "%s", rc ? err : "");
    oai_free(&r);
    const char *dflt = "{\"messages\":[{\"role\":\"developer\",\"content\":\"d\"}]}";
    rc = oai_parse(dflt, strlen(dflt), 1, &r, &param, err, sizeof err);
    t_check(rc == 0 && r.max_tokens == -1 && r.temperature == 1 && r.top_p == 1 && !r.stream && !r.has_seed &&
                !strcmp(r.msgs[0].role, "system"),
            "oai_defaults_openai", "developer -> %s", rc ? err : r.msgs[0].role);
    oai_free(&r);
    const char *nul = "{\"messages\":[{\"role\":\"assistant\",\"content\":null},{\"role\":\"user\",\"content\":\"x\"}]}";
    rc = oai_parse(nul, strlen(nul), 1, &r, &param, err, sizeof err);
    t_check(rc == 0 && r.n_msgs == 2 && !strcmp(r.msgs[0].content, ""), "oai_null_content_is_empty", "%s", rc ? err : "");
    oai_free(&r);
    const char *ids = "{\"prompt\":[1,2,3],\"stop\":\"s\"}";
    rc = oai_parse(ids, strlen(ids), 0, &r, &param, err, sizeof err);
    t_check(rc == 0 && r.n_prompt_ids == 3 && r.prompt_ids[2] == 3 && r.n_stop == 1, "oai_completion_token_ids", NULL);
    oai_free(&r);
    struct { const char *name, *body, *param; int chat; } bad[] = {
        {"not_json", "{", NULL, 1},
        {"not_object", "[]", NULL, 1},
        {"no_messages", "{}", "messages", 1},
        {"empty_messages", "{\"messages\":[]}", "messages", 1},
        {"unknown_role", "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages", 1},
        {"content_number", "{\"messages\":[{\"role\":\"user\",\"content\":3}]}", "messages", 1},
        {"content_image", "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages", 1},
        {"content_nul", "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", "messages", 1},
        {"max_tokens_string", "{\"prompt\":\"a\",\"max_tokens\":\"5\"}", "max_tokens", 0},
        {"max_tokens_negative", "{\"prompt\":\"a\",\"max_tokens\":-1}", "max_tokens", 0},
        {"max_tokens_fraction", "{\"prompt\":\"a\",\"max_tokens\":1.5}", "max_tokens", 0},
        {"temperature_high", "{\"prompt\":\"a\",\"temperature\":2.5}", "temperature", 0},
        {"top_p_string", "{\"prompt\":\"a\",\"top_p\":\"1\"}", "top_p", 0},
        {"repeat_penalty_zero", "{\"prompt\":\"a\",\"repeat_penalty\":0}", "repeat_penalty", 0},
        {"n_two", "{\"prompt\":\"a\",\"n\":2}", "n", 0},
        {"stream_string", "{\"prompt\":\"a\",\"stream\":\"yes\"}", "stream", 0},
        {"stop_five", "{\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop", 0},
        {"stop_empty", "{\"prompt\":\"a\",\"stop\":[\"\"]}", "stop", 0},
        {"stop_number", "{\"prompt\":\"a\",\"stop\":[1]}", "stop", 0},
        {"prompt_missing", "{}", "prompt", 0},
        {"prompt_negative_id", "{\"prompt\":[1,-2]}", "prompt", 0},
        {"prompt_two_strings", "{\"prompt\":[\"a\",\"b\"]}", "prompt", 0},
        {"prompt_empty_ids", "{\"prompt\":[]}", "prompt", 0},
        {"model_number", "{\"prompt\":\"a\",\"model\":1}", "model", 0},
        {"stream_options_array", "{\"prompt\":\"a\",\"stream_options\":[]}", "stream_options", 0},
        {"invalid_utf8", "{\"prompt\":\"\xff\"}", NULL, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        param = "unset";
        rc = oai_parse(bad[i].body, strlen(bad[i].body), bad[i].chat, &r, &param, err, sizeof err);
        char name[64];
        snprintf(name, sizeof name, "oai_refuses_%s", bad[i].name);
        int param_ok = bad[i].param ? param && !strcmp(param, bad[i].param) : param == NULL;
        t_check(rc == -1 && err[0] && param_ok, name, "%s (param %s)", err, param ? param : "null");
    }
}

static void test_json_writer(void) {
    Sb b = {0};
    const char in[] = "a\"b\\c\n\t\x01\x1f" "\xc3\xa9" "\xe2\x98\x83" "\xf0\x9f\x98\x80" "\xff" "\xc3" "\xed\xa0\x80" "z";
    sb_json_str(&b, in, sizeof in - 1);
    const char *want = "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80"
                       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\"";
    t_check(b.n == strlen(want) && !memcmp(b.p, want, b.n), "json_writer_escapes_and_replaces_invalid_utf8", "%s", b.p);
    /* whatever the bytes, the result parses as one JSON string that decodes to valid UTF-8 */
    uint64_t rng = 1;
    int all_ok = 1;
    for (int k = 0; k < 2000 && all_ok; k++) {
        unsigned char raw[32];
        for (size_t i = 0; i < sizeof raw; i++) raw[i] = (unsigned char)(rng_next(&rng) >> 24);
        b.n = 0;
        sb_json_str(&b, (const char *)raw, sizeof raw);
        char err[128];
        Json *doc = json_parse(b.p, b.n, err, sizeof err);
        all_ok = doc && json_type(json_root(doc)) == JSON_STRING;
        json_free(doc);
    }
    t_check(all_ok, "json_writer_random_bytes_parse", "2000 random 32-byte strings");
    sb_free(&b);
    t_check(utf8_valid_prefix("ab\xe2\x98", 4) == 2 && utf8_valid_prefix("\xe2\x98\x83", 3) == 3, "utf8_valid_prefix", NULL);
    /* the response object */
    OaiMeta m = {"chatcmpl-1", "tiny", 1700000000, 1};
    oai_response(&b, &m, "hi \"x\"", 6, "stop", 3, 2, 1);
    char err[128];
    Json *doc = json_parse(b.p, b.n, err, sizeof err);
    const JsonValue *c0 = json_at(json_get(json_root(doc), "choices"), 0);
    long long pt = 0;
    json_int(json_get(json_get(json_root(doc), "usage"), "prompt_tokens"), &pt);
    t_check(doc && !strcmp(json_str(json_get(json_root(doc), "object"), NULL), "chat.completion") &&
                !strcmp(json_str(json_get(json_get(c0, "message"), "content"), NULL), "hi \"x\"") &&
                !strcmp(json_str(json_get(c0, "finish_reason"), NULL), "stop") && pt == 3,
            "oai_response_schema", "%s", b.p);
    json_free(doc);
    sb_free(&b);
}

int main(void) {
    test_heads();
    test_requests();
    test_json_writer();
    return t_failed_count ? 1 : 0;
}
