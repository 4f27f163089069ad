/* A small JSON reader for config.json, tokenizer.json and safetensors headers.
 * Parses into a tree owned by one Json object; strings are decoded UTF-8 (escapes and
 * surrogate pairs resolved) and may contain NUL, so their length is returned. Input is
 * untrusted: depth is limited, every error is a one-line message with the byte offset. */
#ifndef PHI_JSON_H
#define PHI_JSON_H

#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } JsonType;

typedef struct Json Json;
typedef struct JsonValue JsonValue;

#define JSON_MAX_DEPTH 256

/* Parse text[0..len). Returns the document or NULL with a message in err. */
Json *json_parse(const char *text, size_t len, char *err, size_t errlen);
/* Read and parse a whole file. */
Json *json_parse_file(const char *path, char *err, size_t errlen);
void json_free(Json *doc);

const JsonValue *json_root(const Json *doc);
JsonType json_type(const JsonValue *v); /* JSON_NULL for a NULL pointer */

/* Objects: lookup by key (first match; NULL when v is not an object or the key is absent),
 * and iteration by index. */
const JsonValue *json_get(const JsonValue *obj, const char *key);
size_t json_count(const JsonValue *v); /* items of an array / members of an object, else 0 */
const JsonValue *json_at(const JsonValue *arr, size_t i);        /* array item, or NULL */
const char *json_key_at(const JsonValue *obj, size_t i, size_t *len); /* object key, or NULL */
const JsonValue *json_value_at(const JsonValue *obj, size_t i);  /* object value, or NULL */

/* Scalars. json_str returns NULL when v is not a string (len may be NULL). */
const char *json_str(const JsonValue *v, size_t *len);
double json_num(const JsonValue *v, double dflt);  /* dflt when not a number */
int json_bool(const JsonValue *v, int dflt);       /* dflt when not a boolean */
/* Integer value: 0 and *out set when v is a number with an exact integer value in
 * [INT64_MIN, INT64_MAX]; -1 otherwise. */
int json_int(const JsonValue *v, long long *out);

#endif
