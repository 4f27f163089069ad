/* Reading whole files and streams (prompts, texts, tokenizer files), and the big buffers that
 * hold a model's weights or KV cache. */
#ifndef PHI_FILEIO_H
#define PHI_FILEIO_H

#include <stddef.h>
#include <stdio.h>

/* The whole stream, NUL-terminated (malloc'd); *len excludes the NUL. NULL on a read error or
 * out of memory. */
char *read_stream(FILE *f, size_t *len);
/* The whole file; NULL with "PATH: reason" in err. */
char *read_file(const char *path, size_t *len, char *err, size_t errlen);

/* n zeroed bytes backed by transparent huge pages where the kernel allows (2 MiB-aligned when n is
 * 2 MiB or more); NULL with errno on failure. Where mmap exists it is an anonymous mapping of n
 * bytes that munmap(p, n) releases, as huge_free does. */
void *huge_alloc(size_t n);
void huge_free(void *p, size_t n);

#endif
