/* Safetensors reader: 8-byte little-endian header length, JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data.
 * Tensors are read with pread, a range of rows at a time, so converting needs no more memory
 * than the rows asked for. Everything in the header is validated against the file size. */
#ifndef PHI_SAFETENSORS_H
#define PHI_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ST_F32, ST_F16, ST_BF16, ST_OTHER } StDtype;

#define ST_MAX_DIMS 8

typedef struct {
    char *name;
    StDtype dtype;
    char dtype_name[16]; /* as written in the header, for error messages */
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    uint64_t begin, end; /* absolute file offsets of the data */
} StTensor;

typedef struct {
    int fd;
    char *path;
    uint64_t file_size;
    uint64_t data_start; /* 8 + header length */
    int n;
    StTensor *tensors;
} StFile;

/* Parse a header from memory: buf holds the first bytes of the file (at least 8 + header
 * length), file_size the whole file's size. Fills f->tensors (f->fd untouched). 0 or -1 + err. */
int st_parse_header(const uint8_t *buf, size_t buflen, uint64_t file_size, StFile *f,
                    char *err, size_t errlen);
int st_open(const char *path, StFile *f, char *err, size_t errlen);
void st_close(StFile *f);
const StTensor *st_find(const StFile *f, const char *name);
uint64_t st_numel(const StTensor *t);

/* Read elements [start, start + count) of t (row-major), converted to float32. */
int st_read_f32(const StFile *f, const StTensor *t, uint64_t start, uint64_t count, float *out,
                char *err, size_t errlen);

#endif
