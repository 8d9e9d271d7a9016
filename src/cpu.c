// cpu.c: CPU detection (model name, features) and the process-wide kernel path (see cpu.h).
// x86-64 reads cpuid and xgetbv (the OS must save the AVX / AVX-512 registers too); arm64 reads
// the kernel's hwcaps on Linux (getauxval) and sysctl on macOS; wasm paths are fixed at build time.
#define _GNU_SOURCE // getauxval, and the other POSIX declarations
#include "cpu.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "base.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define PLM_CPU_X86 1
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif defined(__aarch64__)
#define PLM_CPU_ARM 1
#if defined(__APPLE__)
#include <sys/sysctl.h>
#elif defined(__linux__)
#include <sys/auxv.h>
#endif
#endif

typedef struct {
    char name[96];      // the model name, "unknown" when the system does not say
    char features[256]; // the features the kernels care about, space-separated
    int has[PLM_ISA_COUNT];
    int avxvnni_vex;         // plm_cpu_avxvnni_vex
    int slow[PLM_ISA_COUNT]; // supported, but plm_isa_best passes it over
} cpu_info;

static cpu_info g_cpu;
static pthread_once_t g_cpu_once = PTHREAD_ONCE_INIT;
static atomic_int g_active = -1; // -1: plm_isa_best()

static void add_feature(cpu_info *c, int present, const char *name) {
    if (!present) return;
    size_t n = strlen(c->features);
    snprintf(c->features + n, sizeof c->features - n, "%s%s", n ? " " : "", name);
}

#if PLM_CPU_X86
// xcr0: the register state the OS saves (bit 1 SSE, 2 AVX, 5-7 AVX-512); 0 without OSXSAVE
static unsigned long long xcr0(unsigned ecx1) {
    if (!(ecx1 & (1u << 27))) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (unsigned long long)hi << 32 | lo;
}

// amx_granted: 1 when the OS saves the tile registers (XCR0 bits 17, 18) and lets this process use
// them: Linux hands out the 8 KB of tile data per process on request (arch_prctl
// ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, which oneDNN makes too); elsewhere 0.
static int amx_granted(unsigned long long xcr0_bits) {
    if ((xcr0_bits >> 17 & 3) != 3) return 0;
#if defined(__linux__) && defined(SYS_arch_prctl)
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#else
    return 0;
#endif
}

static void detect(cpu_info *c) {
    unsigned a, b, ecx1 = 0, edx1 = 0, b7 = 0, c7 = 0, d7 = 0, a71 = 0, tmp;
    __get_cpuid(1, &a, &b, &ecx1, &edx1);
    if ((unsigned)__get_cpuid_max(0, NULL) >= 7u) {
        __cpuid_count(7, 0, a, b7, c7, d7);
        __cpuid_count(7, 1, a71, b, tmp, tmp);
    }
    const unsigned long long x = xcr0(ecx1);
    const int os_avx = (x & 6) == 6, os_avx512 = os_avx && (x & 0xE0) == 0xE0;
    const int avx = os_avx && (ecx1 >> 28 & 1), fma = avx && (ecx1 >> 12 & 1);
    const int f16c = avx && (ecx1 >> 29 & 1), avx2 = avx && (b7 >> 5 & 1);
    const int avxvnni = avx2 && (a71 >> 4 & 1);
    const int f = os_avx512 && (b7 >> 16 & 1), bw = f && (b7 >> 30 & 1), vl = f && (b7 >> 31 & 1);
    const int vnni = f && (c7 >> 11 & 1), bf16 = f && (a71 >> 5 & 1);
    const int amx = (d7 >> 24 & 1) && (d7 >> 25 & 1) && amx_granted(x); // AMX-TILE, AMX-INT8
    add_feature(c, ecx1 >> 20 & 1, "sse4.2");
    add_feature(c, avx, "avx");
    add_feature(c, avx2, "avx2");
    add_feature(c, fma, "fma");
    add_feature(c, f16c, "f16c");
    add_feature(c, avxvnni, "avxvnni");
    add_feature(c, f, "avx512f");
    add_feature(c, bw, "avx512bw");
    add_feature(c, vl, "avx512vl");
    add_feature(c, vnni, "avx512vnni");
    add_feature(c, bf16, "avx512bf16");
    add_feature(c, amx, "amx-int8");
    c->has[PLM_ISA_AVX2] = avx2 && fma && f16c;
    // avxvnni: VEX vpdpbusd ymm, or its EVEX twin (AVX512_VNNI + VL; cpu.h)
    c->has[PLM_ISA_AVXVNNI] = c->has[PLM_ISA_AVX2] && (avxvnni || (vl && vnni));
    c->avxvnni_vex = avxvnni;
    c->has[PLM_ISA_AVX512] = c->has[PLM_ISA_AVX2] && bw && vl && vnni;
    c->has[PLM_ISA_AMX] = c->has[PLM_ISA_AVX512] && amx;
    unsigned brand[12] = {0};
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u)
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2],
                        &brand[4 * i + 3]);
    char s[49] = {0};
    memcpy(s, brand, 48);
    const char *p = s;
    while (*p == ' ') p++;
    if (*p) snprintf(c->name, sizeof c->name, "%s", p);
}
#elif PLM_CPU_ARM
#if defined(__APPLE__)
static int sysctl_flag(const char *key) {
    int v = 0;
    size_t n = sizeof v;
    return sysctlbyname(key, &v, &n, NULL, 0) == 0 && v;
}
#endif

static void detect(cpu_info *c) {
    int dotprod = 0, i8mm = 0;
#if defined(__APPLE__)
    dotprod = sysctl_flag("hw.optional.arm.FEAT_DotProd");
    i8mm = sysctl_flag("hw.optional.arm.FEAT_I8MM");
    size_t n = sizeof c->name;
    if (sysctlbyname("machdep.cpu.brand_string", c->name, &n, NULL, 0) != 0) c->name[0] = 0;
#elif defined(__linux__)
    dotprod = (getauxval(AT_HWCAP) >> 20 & 1) != 0; // HWCAP_ASIMDDP
    i8mm = (getauxval(AT_HWCAP2) >> 13 & 1) != 0;   // HWCAP2_I8MM
    FILE *f = fopen("/proc/cpuinfo", "r");          // arm64 Linux names the core by part number
    char line[256];
    unsigned impl = 0, part = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "CPU implementer", 15)) sscanf(strchr(line, ':') + 1, "%x", &impl);
        if (!strncmp(line, "CPU part", 8)) sscanf(strchr(line, ':') + 1, "%x", &part);
    }
    if (f) fclose(f);
    if (impl) snprintf(c->name, sizeof c->name, "arm64 implementer 0x%02x part 0x%03x", impl, part);
#endif
    add_feature(c, 1, "neon");
    add_feature(c, dotprod, "dotprod");
    add_feature(c, i8mm, "i8mm");
    c->has[PLM_ISA_NEON] = 1;
    c->has[PLM_ISA_DOTPROD] = dotprod;
    c->has[PLM_ISA_I8MM] = dotprod && i8mm;
}
#else
static void detect(cpu_info *c) {
#if defined(__wasm_simd128__)
    snprintf(c->name, sizeof c->name, "WebAssembly");
    add_feature(c, 1, "simd128");
    c->has[PLM_ISA_WASM] = 1;
#if defined(__wasm_relaxed_simd__)
    add_feature(c, 1, "relaxed-simd");
    c->has[PLM_ISA_RELAXED] = 1;
    const int dot = plm_relaxed_dot_probe();
    add_feature(c, dot == 2, "relaxed-dot");
    c->has[PLM_ISA_RELAXED_DOT] = dot > 0;
    c->slow[PLM_ISA_RELAXED_DOT] = dot == 1;
#endif
#else
    (void)c;
#endif
}
#endif

static void cpu_init(void) {
    snprintf(g_cpu.name, sizeof g_cpu.name, "unknown");
    g_cpu.has[PLM_ISA_SCALAR] = 1;
    detect(&g_cpu);
}

static const cpu_info *cpu(void) {
    pthread_once(&g_cpu_once, cpu_init);
    return &g_cpu;
}

static const char *const isa_names[PLM_ISA_COUNT] = {
    "scalar",                                  // every build
    "avx2",   "avxvnni", "avx512",      "amx", // x86-64
    "neon",   "dotprod", "i8mm",               // arm64
    "wasm",   "relaxed", "relaxed-dot",        // wasm
};

const char *plm_isa_name(plm_isa isa) {
    return (unsigned)isa < PLM_ISA_COUNT ? isa_names[isa] : "?";
}

int plm_isa_supported(plm_isa isa) {
    return (unsigned)isa < PLM_ISA_COUNT && cpu()->has[isa];
}

plm_isa plm_isa_best(void) {
    for (int i = PLM_ISA_COUNT - 1; i > 0; i--)
        if (plm_isa_supported((plm_isa)i) && !cpu()->slow[i]) return (plm_isa)i;
    return PLM_ISA_SCALAR;
}

plm_isa plm_isa_active(void) {
    int a = atomic_load_explicit(&g_active, memory_order_relaxed);
    return a < 0 ? plm_isa_best() : (plm_isa)a;
}

int plm_cpu_avxvnni_vex(void) {
    return cpu()->avxvnni_vex;
}

// family: 1 x86, 2 arm64, 3 wasm (scalar is 0, in every family)
static int family(plm_isa isa) {
    return isa == PLM_ISA_SCALAR ? 0 : isa <= PLM_ISA_AMX ? 1 : isa <= PLM_ISA_I8MM ? 2 : 3;
}

int plm_isa_includes(plm_isa isa, plm_isa base) {
    return base == PLM_ISA_SCALAR || (family(isa) == family(base) && isa >= base);
}

// ---- public API ----

const char *plm_cpu_name(void) {
    return cpu()->name;
}
const char *plm_cpu_features(void) {
    return cpu()->features;
}
const char *plm_kernel_path(void) {
    return plm_isa_name(plm_isa_active());
}

plm_status plm_set_kernel_path(const char *name, plm_error *err) {
    if (!name || !strcmp(name, "") || !strcmp(name, "auto")) {
        atomic_store(&g_active, -1);
        return PLM_OK;
    }
    char have[128] = "";
    for (int i = 0; i < PLM_ISA_COUNT; i++) {
        if (!plm_isa_supported((plm_isa)i)) continue;
        size_t n = strlen(have);
        snprintf(have + n, sizeof have - n, "%s%s", n ? ", " : "", isa_names[i]);
    }
    for (int i = 0; i < PLM_ISA_COUNT; i++) {
        if (strcmp(name, isa_names[i])) continue;
        if (!plm_isa_supported((plm_isa)i))
            return plm_fail(err, PLM_ERR_UNSUPPORTED,
                            "kernel path '%s': not for this CPU (%s: %s); it runs: auto, %s", name,
                            cpu()->name, cpu()->features, have);
        atomic_store(&g_active, i);
        return PLM_OK;
    }
    return plm_fail(err, PLM_ERR_ARG, "kernel path '%s': unknown; this CPU runs: auto, %s", name,
                    have);
}
