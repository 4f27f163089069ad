/* The int8 multiply-add peak of this CPU for the kernels in use, measured (kernels/peak.c). */
#ifndef PHI_KERNELS_PEAK_H
#define PHI_KERNELS_PEAK_H

#include <stdint.h>

#include "base/pool.h"

/* Operations per second (a product and its add are 2) of the int8 dot instruction that the
 * selected ISA's prompt tiles use for weight type wtype, on n_threads threads of pool (NULL: the
 * calling thread), or 0 for the scalar kernels; *how names the instruction. Takes about 20-50 ms. */
double int8_peak_ops(Pool *pool, int n_threads, uint32_t wtype, const char **how);

#endif
