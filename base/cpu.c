#include "base/cpu.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Generation is bound by memory bandwidth and prompt processing by the SIMD units of each core,
 * so hyper-threads add nothing: count distinct (package, core) pairs. */
int cpu_physical_cores(void) {
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_cpu < 1) n_cpu = 1;
    enum { MAX_SEEN = 4096 };
    static const int none = -1;
    int seen[MAX_SEEN][2], n_seen = 0;
    for (long c = 0; c < n_cpu && c < MAX_SEEN; c++) {
        int ids[2] = {none, none};
        const char *files[2] = {"physical_package_id", "core_id"};
        for (int k = 0; k < 2; k++) {
            char path[128];
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/%s", c, files[k]);
            FILE *f = fopen(path, "r");
            if (!f || fscanf(f, "%d", &ids[k]) != 1) ids[k] = none;
            if (f) fclose(f);
        }
        if (ids[1] == none) return (int)n_cpu; /* no topology information */
        int dup = 0;
        for (int i = 0; i < n_seen && !dup; i++) dup = seen[i][0] == ids[0] && seen[i][1] == ids[1];
        if (!dup) {
            seen[n_seen][0] = ids[0];
            seen[n_seen][1] = ids[1];
            n_seen++;
        }
    }
    return n_seen > 0 ? n_seen : (int)n_cpu;
}

unsigned long long mem_available_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb * 1024;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
