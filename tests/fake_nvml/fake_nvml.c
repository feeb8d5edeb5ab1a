/*
 * FAKE libnvidia-ml.so.1 for tests: NOT NVIDIA's library, no GPU behind it.
 *
 * It exports the NVML entry points that nvidia-ml-py's pynvml calls for
 * aiops.mlstack.gpu_facts, with the real NVML signatures, so that the real
 * loading path (ctypes.CDLL("libnvidia-ml.so.1") found via LD_LIBRARY_PATH)
 * and pynvml's real struct marshalling run in tests on machines without GPUs.
 *
 * It describes three NVIDIA TITAN X (Pascal) boards, 12 GiB each, driver
 * 580.95.05, CUDA 13.0. Environment knobs (read at nvmlInit):
 *   FAKE_NVML_GPU_COUNT   number of boards (default 3, at most 8)
 *   FAKE_NVML_USED_MIB    memory used on board i is USED + 1000*i MiB (default 100)
 *   FAKE_NVML_INIT_ERROR  an NVML return code nvmlInit fails with (e.g. 9,
 *                         NVML_ERROR_DRIVER_NOT_LOADED)
 * Build: gcc -shared -fPIC -o libnvidia-ml.so.1 fake_nvml.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct fake_device { int index; } *nvmlDevice_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define MAX_GPUS 8
#define MIB (1024ULL * 1024ULL)

static struct fake_device devices[MAX_GPUS];
static int gpu_count = 3;
static unsigned long long used_mib = 100;

static nvmlReturn_t device_ok(nvmlDevice_t d) {
    return (d && d->index >= 0 && d->index < gpu_count) ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    const char *err = getenv("FAKE_NVML_INIT_ERROR");
    if (err && *err) return atoi(err);
    const char *count = getenv("FAKE_NVML_GPU_COUNT");
    const char *used = getenv("FAKE_NVML_USED_MIB");
    gpu_count = count ? atoi(count) : 3;
    if (gpu_count < 0) gpu_count = 0;
    if (gpu_count > MAX_GPUS) gpu_count = MAX_GPUS;
    used_mib = used ? strtoull(used, NULL, 10) : 100;
    for (int i = 0; i < MAX_GPUS; i++) devices[i].index = i;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlShutdown(void) { return NVML_SUCCESS; }
const char *nvmlErrorString(nvmlReturn_t r) { return r == 9 ? "Driver Not Loaded" : "fake NVML error"; }

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    snprintf(version, length, "%s", "580.95.05");
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) { *v = 13000; return NVML_SUCCESS; }
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = 13000; return NVML_SUCCESS; }
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) { *count = (unsigned int)gpu_count; return NVML_SUCCESS; }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    if ((int)index >= gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length) {
    if (device_ok(d)) return NVML_ERROR_INVALID_ARGUMENT;
    snprintf(name, length, "%s", "NVIDIA TITAN X (Pascal)");
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length) {
    if (device_ok(d)) return NVML_ERROR_INVALID_ARGUMENT;
    snprintf(uuid, length, "GPU-fa4e0000-0000-4000-8000-00000000000%d", d->index);
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor) {
    if (device_ok(d)) return NVML_ERROR_INVALID_ARGUMENT;
    *major = 6; *minor = 1;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    if (device_ok(d)) return NVML_ERROR_INVALID_ARGUMENT;
    m->total = 12288ULL * MIB;
    m->used = (used_mib + 1000ULL * (unsigned long long)d->index) * MIB;
    if (m->used > m->total) m->used = m->total;
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
    if (device_ok(d)) return NVML_ERROR_INVALID_ARGUMENT;
    u->gpu = 5u * (unsigned int)d->index; u->memory = 2u * (unsigned int)d->index;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t) {
    (void)sensor;
    if (device_ok(d)) return NVML_ERROR_INVALID_ARGUMENT;
    *t = 35u + (unsigned int)d->index;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
    if (device_ok(d)) return NVML_ERROR_INVALID_ARGUMENT;
    *mw = 15000u + 1000u * (unsigned int)d->index;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *mw) {
    if (device_ok(d)) return NVML_ERROR_INVALID_ARGUMENT;
    *mw = 250000u;
    return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t d, int *mode) {
    if (device_ok(d)) return NVML_ERROR_INVALID_ARGUMENT;
    *mode = 1;
    return NVML_SUCCESS;
}
/* Board 0 runs one compute process (pid 4242, 512 MiB); the others none. */
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *infos) {
    if (device_ok(d)) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned int n = d->index == 0 ? 1u : 0u;
    if (n == 0) { *count = 0; return NVML_SUCCESS; }
    if (infos == NULL || *count < n) { *count = n; return NVML_ERROR_INSUFFICIENT_SIZE; }
    memset(infos, 0, sizeof(*infos) * n);
    infos[0].pid = 4242; infos[0].usedGpuMemory = 512ULL * MIB;
    *count = n;
    return NVML_SUCCESS;
}
