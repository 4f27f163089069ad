/* JSON reader: valid documents of every kind, malformed input, and the real tokenizer.json. */
#include "base/json.h"
#include "tests/harness.h"

#include <math.h>
#include <string.h>
#include <time.h>

/* Sanitizer or unoptimised builds get a looser time limit. */
#if defined(__SANITIZE_ADDRESS__) || !defined(__OPTIMIZE__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif

static char err[256];

static Json *parse(const char *s) { return json_parse(s, strlen(s), err, sizeof err); }

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

/* The document must fail with a one-line "json: ... at byte N" message. */
static void expect_bad(const char *name, const char *s, size_t len) {
    err[0] = '\0';
    Json *d = json_parse(s, len, err, sizeof err);
    t_check(!d && one_line(err) && strncmp(err, "json: ", 6) == 0 && strstr(err, " at byte "), name,
            "%s", d ? "accepted" : err);
    json_free(d);
}

static void test_scalars(void) {
    Json *d = parse(" true ");
    t_check(d && json_type(json_root(d)) == JSON_BOOL && json_bool(json_root(d), 0) == 1, "json_true", "");
    json_free(d);
    d = parse("false");
    t_check(d && json_bool(json_root(d), 1) == 0, "json_false", "");
    json_free(d);
    d = parse("null");
    t_check(d && json_type(json_root(d)) == JSON_NULL && json_bool(json_root(d), 7) == 7, "json_null", "");
    json_free(d);

    static const struct { const char *text; double value; } nums[] = {
        {"0", 0}, {"-0", -0.0}, {"1", 1}, {"-17", -17}, {"3.25", 3.25}, {"1e3", 1000},
        {"1E+2", 100}, {"25e-2", 0.25}, {"-0.5e1", -5}, {"1e-5", 1e-5}, {"10000.0", 10000},
        {"1.7976931348623157e308", 1.7976931348623157e308}, {"4.9e-324", 4.9e-324},
        {"1e-400", 0}, {"123456789012345678901234567890", 1.2345678901234568e29},
        {"0.1", 0.1}, {"7.848013401031494", 7.848013401031494},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        d = parse(nums[i].text);
        double v = d ? json_num(json_root(d), NAN) : NAN;
        if (!d || v != nums[i].value || signbit(v) != signbit(nums[i].value)) {
            printf("  number %s -> %.17g (%s)\n", nums[i].text, v, d ? "" : err);
            ok = 0;
        }
        json_free(d);
    }
    t_check(ok, "json_numbers", "%zu literals exact", sizeof nums / sizeof nums[0]);

    static const struct { const char *text; int ok; long long value; } ints[] = {
        {"32000", 1, 32000}, {"-5", 1, -5}, {"4096.0", 1, 4096}, {"1e3", 1, 1000}, {"0.5", 0, 0},
        {"9223372036854775807", 1, 9223372036854775807LL},
        {"-9223372036854775808", 1, (-9223372036854775807LL - 1)},
        {"9223372036854775808", 0, 0}, {"1e19", 0, 0}, {"\"5\"", 0, 0},
        {"9007199254740993", 1, 9007199254740993LL},
    };
    ok = 1;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        d = parse(ints[i].text);
        long long x = 0;
        int rc = d ? json_int(json_root(d), &x) : -2;
        if ((rc == 0) != ints[i].ok || (rc == 0 && x != ints[i].value)) {
            printf("  int %s -> rc %d, %lld\n", ints[i].text, rc, x);
            ok = 0;
        }
        json_free(d);
    }
    t_check(ok, "json_int", "exact integers, range and non-integers");

    /* beyond the double range: JSON has no infinity, so refused (decision: error, never inf) */
    expect_bad("json_huge_number", "1e400", 5);
    expect_bad("json_huge_negative", "[-1e999]", 8);
}

static void test_strings(void) {
    const char *s = "\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\"";
    Json *d = parse(s);
    size_t n = 0;
    const char *v = d ? json_str(json_root(d), &n) : NULL;
    t_check(v && n == 17 && memcmp(v, "a\"b\\c/d\be\ff\ng\rh\ti", 17) == 0 && v[n] == 0,
            "json_simple_escapes", "%s", d ? "" : err);
    json_free(d);

    d = parse("\"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\\u0000x\"");
    v = d ? json_str(json_root(d), &n) : NULL;
    t_check(v && n == 1 + 2 + 3 + 4 + 1 + 1 && memcmp(v, "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\0x", n) == 0,
            "json_unicode_escapes", "BMP, surrogate pair, NUL kept (len %zu)", n);
    json_free(d);

    d = parse("\"\xE2\x96\x81the \xF0\x9F\x98\x80\"");
    v = d ? json_str(json_root(d), &n) : NULL;
    t_check(v && n == 11 && memcmp(v, "\xE2\x96\x81the \xF0\x9F\x98\x80", n) == 0, "json_raw_utf8", "");
    json_free(d);

    d = parse("\"\"");
    v = d ? json_str(json_root(d), &n) : NULL;
    t_check(v && n == 0 && v[0] == 0, "json_empty_string", "");
    t_check(json_str(NULL, NULL) == NULL && json_num(NULL, 2.5) == 2.5, "json_null_pointer_accessors", "");
    json_free(d);
}

static void test_containers(void) {
    const char *doc = "{\"a\": [1, 2, {\"b\": null}], \"c\": {}, \"d\": [], \"\": \"empty\", "
                      "\"a\": \"dup\", \"n\\u0000k\": 5}";
    Json *d = parse(doc);
    const JsonValue *r = d ? json_root(d) : NULL;
    t_check(json_type(r) == JSON_OBJECT && json_count(r) == 6, "json_object_count", "%s", d ? "" : err);
    const JsonValue *a = json_get(r, "a");
    t_check(json_type(a) == JSON_ARRAY && json_count(a) == 3 && json_num(json_at(a, 1), 0) == 2 &&
                json_type(json_get(json_at(a, 2), "b")) == JSON_NULL && json_at(a, 3) == NULL,
            "json_nested", "first duplicate key wins, nested lookup");
    t_check(json_type(json_get(r, "c")) == JSON_OBJECT && json_count(json_get(r, "c")) == 0 &&
                json_count(json_get(r, "d")) == 0 && json_get(r, "zz") == NULL,
            "json_empty_containers", "");
    size_t kl;
    const char *k = json_key_at(r, 5, &kl);
    t_check(k && kl == 3 && memcmp(k, "n\0k", 3) == 0 && json_num(json_value_at(r, 5), 0) == 5,
            "json_key_at", "key with NUL");
    t_check(json_str(json_get(r, ""), NULL) && strcmp(json_str(json_get(r, ""), NULL), "empty") == 0,
            "json_empty_key", "");
    t_check(json_key_at(a, 0, NULL) == NULL && json_at(r, 0) == NULL && json_value_at(r, 6) == NULL &&
                json_get(a, "a") == NULL && json_count(json_at(a, 0)) == 0,
            "json_type_mismatch", "accessors return NULL/0 on the wrong type");
    json_free(d);

    /* nesting exactly at the limit is accepted, one more is refused */
    char *deep = malloc(2 * 10000 + 1);
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        memset(deep, '[', (size_t)depth);
        memset(deep + depth, ']', (size_t)depth);
        d = json_parse(deep, 2 * (size_t)depth, err, sizeof err);
        if (depth == JSON_MAX_DEPTH) t_check(d != NULL, "json_depth_limit_ok", "%d levels", depth);
        else t_check(!d && strstr(err, "nesting"), "json_depth_limit_exceeded", "%s", err);
        json_free(d);
    }
    memset(deep, '[', 10000);
    memset(deep + 10000, ']', 10000);
    expect_bad("json_depth_10000", deep, 20000);
    for (int i = 0; i < 10000; i++) memcpy(deep + 2 * i, "{\"", 2);
    expect_bad("json_depth_10000_objects", deep, 20000);
    free(deep);
}

static void test_bad(void) {
    static const struct { const char *name, *text; } bad[] = {
        {"empty", ""}, {"whitespace_only", "  \n"}, {"trailing_comma_array", "[1,2,]"},
        {"trailing_comma_object", "{\"a\":1,}"}, {"leading_zero", "012"}, {"leading_zero_neg", "-01"},
        {"plus_sign", "+1"}, {"bare_dot", ".5"}, {"dot_no_digits", "1."}, {"exp_no_digits", "1e"},
        {"exp_sign_only", "1e+"}, {"hex", "0x10"}, {"nan", "NaN"}, {"infinity", "Infinity"},
        {"neg_alone", "-"}, {"single_quotes", "'a'"}, {"bad_escape", "\"\\x\""},
        {"short_u_escape", "\"\\u12\""}, {"bad_hex_u", "\"\\u12G4\""},
        {"lone_high_surrogate", "\"\\ud800\""}, {"lone_low_surrogate", "\"\\udc00\""},
        {"high_then_non_low", "\"\\ud800\\u0041\""}, {"high_then_text", "\"\\ud800abcdef\""},
        {"control_char", "\"a\tb\""}, {"newline_in_string", "\"a\nb\""},
        {"unterminated_string", "\"abc"}, {"unterminated_array", "[1, 2"},
        {"unterminated_object", "{\"a\": 1"}, {"missing_colon", "{\"a\" 1}"},
        {"missing_value", "{\"a\":}"}, {"non_string_key", "{1: 2}"}, {"two_values", "1 2"},
        {"trailing_garbage", "{} x"}, {"truex", "truex"}, {"tru", "tru"}, {"nul", "nul"},
        {"capital_true", "True"}, {"comment", "[1] // c"}, {"missing_comma", "[1 2]"},
        {"double_comma", "[1,,2]"}, {"leading_comma", "[,1]"}, {"colon_in_array", "[1:2]"},
        {"overlong_utf8", "\"\xC0\xAF\""}, {"utf8_surrogate", "\"\xED\xA0\x80\""},
        {"utf8_too_big", "\"\xF4\x90\x80\x80\""}, {"utf8_truncated", "\"\xE2\x96\""},
        {"utf8_stray_continuation", "\"\x80\""}, {"bom", "\xEF\xBB\xBF{}"},
        {"vertical_tab_ws", "\v1"},
    };
    char name[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(name, sizeof name, "json_bad_%s", bad[i].name);
        expect_bad(name, bad[i].text, strlen(bad[i].text));
    }
    expect_bad("json_bad_embedded_nul", "[1,\0 2]", 7);

    /* every proper prefix of a valid document is an error, never a crash */
    const char *doc = "{\"k\": [true, false, null, -1.5e-3, \"s\\u00e9\\ud83d\\ude00\"], "
                      "\"o\": {\"x\": {}}, \"e\": []}";
    size_t len = strlen(doc);
    Json *d = json_parse(doc, len, err, sizeof err);
    t_check(d != NULL, "json_sample_doc", "%s", d ? "" : err);
    json_free(d);
    int all = 1;
    for (size_t cut = 0; cut < len; cut++) {
        char *copy = malloc(cut + 1); /* exact size, so ASan sees any over-read */
        memcpy(copy, doc, cut);
        d = json_parse(copy, cut, err, sizeof err);
        if (d || !one_line(err)) {
            printf("  prefix %zu accepted\n", cut);
            all = 0;
        }
        json_free(d);
        free(copy);
    }
    t_check(all, "json_truncated_prefixes", "%zu prefixes rejected", len);

    err[0] = 0;
    char path[512];
    snprintf(path, sizeof path, "%s/no-such-file.json", t_tmp_dir());
    Json *missing = json_parse_file(path, err, sizeof err);
    t_check(!missing && strstr(err, "no-such-file.json") && one_line(err), "json_parse_file_missing", "%s", err);
}

/* Random byte edits of a valid document: each must parse or fail cleanly. */
static void test_mutations(void) {
    const char *doc = "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83d\\ude00\"], \"b\": {\"c\": []}}";
    static const char alphabet[] = "{}[]\":,\\u0123456789.eE+-tfnrl \x80\xC3\xA9\xED\xF4\x01";
    size_t len = strlen(doc);
    t_seed(12345);
    int ok = 1, parsed = 0;
    char *buf = malloc(len);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, doc, len);
        int edits = 1 + (int)((t_randf() + 1) * 2);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)((t_randf() + 1) * 0.5f * (float)len) % len;
            buf[at] = alphabet[(size_t)((t_randf() + 1) * 0.5f * (float)(sizeof alphabet - 1)) %
                               (sizeof alphabet - 1)];
        }
        err[0] = 0;
        Json *d = json_parse(buf, len, err, sizeof err);
        if (d) parsed++;
        else if (!one_line(err)) ok = 0;
        json_free(d);
    }
    free(buf);
    t_check(ok, "json_random_edits", "20000 mutated documents, %d still valid, rest clean errors", parsed);
}

static void test_tokenizer(void) {
    const char *dir = t_data_dir();
    if (!dir) {
        t_skip("json_tokenizer", "no test data folder (PHI_DATA or ../shared/data)");
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/phi3-tokenizer/phi-3-mini/tokenizer.json", dir);
    /* best of three, so a busy machine does not fail the timing */
    double ms = 1e9;
    Json *d = NULL;
    for (int rep = 0; rep < 3; rep++) {
        struct timespec t0, t1;
        json_free(d);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        d = json_parse_file(path, err, sizeof err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double t = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (t < ms) ms = t;
    }
    if (!t_check(d != NULL, "json_tokenizer_parse", "%s", d ? "" : err)) return;
    const JsonValue *model = json_get(json_root(d), "model");
    const JsonValue *vocab = json_get(model, "vocab");
    const JsonValue *merges = json_get(model, "merges");
    const char *type = json_str(json_get(model, "type"), NULL);
    long long the = -1, unk = -1;
    json_int(json_get(vocab, "\xE2\x96\x81the"), &the);
    json_int(json_get(vocab, "<unk>"), &unk);
    t_check(json_count(vocab) == 32000 && the == 278 && unk == 0 && type && strcmp(type, "BPE") == 0,
            "json_tokenizer_vocab", "%zu entries, '\xE2\x96\x81the' = %lld, type %s", json_count(vocab), the,
            type ? type : "?");
    size_t kl;
    const char *k0 = json_key_at(vocab, 278, &kl);
    t_check(k0 && kl == 6 && memcmp(k0, "\xE2\x96\x81the", 6) == 0, "json_tokenizer_index", "vocab key #278");
    t_check(json_count(merges) > 50000 && json_type(json_at(merges, 0)) != JSON_NULL, "json_tokenizer_merges",
            "%zu merges", json_count(merges));
    double limit = SLOW_BUILD ? 2000 : 100;
    t_check(ms < limit, "json_tokenizer_speed", "%.1f ms for 1.8 MB (limit %.0f)", ms, limit);
    json_free(d);
}

int main(void) {
    test_scalars();
    test_strings();
    test_containers();
    test_bad();
    test_mutations();
    test_tokenizer();
    return t_done();
}
