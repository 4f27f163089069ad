/* libFuzzer harness: st_parse_header on arbitrary bytes taken as a whole file, then checks
 * that every accepted tensor lies inside the file with a size matching its shape.
 * clang -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_safetensors.c \
 *     convert/safetensors.c base/json.c -lm */
#include "convert/safetensors.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    StFile f;
    memset(&f, 0, sizeof f);
    f.fd = -1;
    char err[512];
    err[0] = 0;
    if (st_parse_header(data, size, size, &f, err, sizeof err) == 0) {
        for (int i = 0; i < f.n; i++) {
            const StTensor *t = &f.tensors[i];
            if (t->begin < f.data_start || t->end < t->begin || t->end > size) __builtin_trap();
            uint64_t bytes = st_numel(t) * (t->dtype == ST_F32 ? 4 : 2);
            if (t->dtype != ST_OTHER && bytes != t->end - t->begin) __builtin_trap();
            if (st_find(&f, t->name) != t) __builtin_trap();
        }
        st_close(&f);
    } else if (!err[0] || strchr(err, '\n') || f.n || f.tensors) {
        __builtin_trap();
    }
    return 0;
}
