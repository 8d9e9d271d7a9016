// cpu.h: which CPU this is, and which instruction-set path the kernels take.
//
// A path names the widest instructions a kernel may use. Paths form three families, each ordered
// from narrow to wide; a path includes the ones before it in its family (avx512 may use anything
// avx2 may), and every kernel picks its widest implementation that the active path includes, down
// to the scalar reference, which every build has:
//   x86-64: avx2 (AVX2 + FMA) < avxvnni (+ 256-bit VNNI) < avx512 (AVX-512 F, BW, VL, VNNI)
//           < amx (+ AMX-TILE and AMX-INT8 tile matrix multiplies)
//   arm64:  neon (Advanced SIMD) < dotprod (+ SDOT) < i8mm (+ SMMLA)
//   wasm:   wasm (SIMD128) < relaxed (+ relaxed SIMD); fixed when the module is built
// The active path is process-wide: the best one this CPU runs, or the one plm_set_kernel_path
// chose (the CLI reads PLM_ISA). Set it before starting work; kernels read it at each call.
#ifndef PLM_CPU_H
#define PLM_CPU_H

#include "pocketlm.h"

// For the kernels of every path: PLM_INLINE always inlines (a tile's shape becomes constants);
// UNROLL fully unrolls a loop over a tile's tokens, rows or heads. Their bounds are constants at
// each call site, but -O2 does not unroll nests this deep: without it the accumulators live on the
// stack (f32 prefill at T = 128 on 1 thread: ~55 GFLOP/s without it, ~200 with it and the 4 x 6
// tile; decode attention over 3 query heads: twice the time).
#define PLM_INLINE static inline __attribute__((always_inline))
#define UNROLL     _Pragma("GCC unroll 8")

typedef enum {
    PLM_ISA_SCALAR = 0,  // plain C: the reference every other path is tested against
    PLM_ISA_AVX2,        // x86-64 AVX2 + FMA + F16C (Haswell, Zen 1 and later)
    PLM_ISA_AVXVNNI,     // + vpdpbusd on 256 bits: AVX-VNNI (Alder Lake) or AVX512_VNNI + VL
    PLM_ISA_AVX512,      // AVX-512 F, BW, VL and VNNI (Ice Lake, Zen 4)
    PLM_ISA_AMX,         // + AMX-TILE and AMX-INT8, the OS granting tile data (Sapphire Rapids)
    PLM_ISA_NEON,        // arm64 Advanced SIMD (every arm64 CPU)
    PLM_ISA_DOTPROD,     // + SDOT (Armv8.2 dotprod: Cortex-A76, Apple M1, Graviton 2)
    PLM_ISA_I8MM,        // + SMMLA (Armv8.6 i8mm: Apple M2, Graviton 3)
    PLM_ISA_WASM,        // wasm SIMD128
    PLM_ISA_RELAXED,     // + relaxed SIMD (i16x8.relaxed_dot_i8x16_i7x16_s, relaxed madd)
    PLM_ISA_RELAXED_DOT, // + i32x4.relaxed_dot_i8x16_i7x16_add_s, where the engine computes it right
    PLM_ISA_COUNT
} plm_isa;

const char *plm_isa_name(plm_isa isa); // "scalar", "avx2", ..., "relaxed-dot"
// plm_isa_supported: 1 when this build has the path and this CPU can run it.
int plm_isa_supported(plm_isa isa);
plm_isa plm_isa_best(void);   // the widest supported path (relaxed-dot only where it is fast)
plm_isa plm_isa_active(void); // the path kernels take now (plm_isa_best() unless set)
// plm_isa_includes: 1 when path isa may use the instructions of path base (same family, at least
// as wide; every path includes scalar).
int plm_isa_includes(plm_isa isa, plm_isa base);
// plm_cpu_avxvnni_vex: which twin of its Q8_0 kernels the avxvnni path runs (matmul_q8_x86.h): 1
// the VEX-encoded vpdpbusd of AVX-VNNI (Alder Lake .. Arrow Lake); 0 the EVEX-encoded one of
// AVX512_VNNI + AVX512VL, the same operation on the same 256 bits, so the path also runs (and is
// tested) on a CPU with AVX-512 VNNI but without AVX-VNNI (Ice Lake, Zen 4).
int plm_cpu_avxvnni_vex(void);
#if defined(__wasm_relaxed_simd__)
// plm_relaxed_dot_probe (matmul_wasm.c): how this engine computes i32x4.relaxed_dot_i8x16_i7x16_add_s
// in the code running the probe: 0 wrong (node 20's baseline compiler), 1 right but emulated (x86
// without VNNI: pmaddubsw, pmaddwd, paddd), 2 right and one instruction (x86 VNNI, arm64 sdot).
int plm_relaxed_dot_probe(void);
#endif

#endif
