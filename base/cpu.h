#ifndef PHI_CPU_H
#define PHI_CPU_H
/* Physical cores (distinct core ids in sysfs), else the online CPU count, at least 1. */
int cpu_physical_cores(void);
/* Bytes of memory the kernel says can be had without swapping (MemAvailable), 0 if unknown. */
unsigned long long mem_available_bytes(void);
/* Seconds on the monotonic clock (for intervals only). */
double now_seconds(void);
#endif
