// cpu_features.c: print the x86 SIMD features onnxruntime's MLAS dispatches on, as CPUID reports
// them to this process (under qemu-x86_64 -cpu MODEL: the emulated CPU's). Not a test by itself:
// tests/onnx_avx2.test.sh compiles and runs it to check that the emulated CPU has AVX2 and neither
// AVX-512 nor any VNNI. Prints e.g. "avx2 1 fma 1 avx512f 0 avx512bw 0 avx512vnni 0 avxvnni 0".
#include <stdio.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

int main(void) {
    unsigned a, b, c, d, b7 = 0, c7 = 0, a71 = 0, c1 = 0;
    if (__get_cpuid(1, &a, &b, &c1, &d) && __get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b7, c7, d);
        __cpuid_count(7, 1, a71, b, c, d);
    }
    printf("avx2 %d fma %d avx512f %d avx512bw %d avx512vnni %d avxvnni %d\n", !!(b7 & 1u << 5),
           !!(c1 & 1u << 12), !!(b7 & 1u << 16), !!(b7 & 1u << 30), !!(c7 & 1u << 11),
           !!(a71 & 1u << 4));
    return 0;
}
#else
int main(void) {
    printf("not x86\n");
    return 1;
}
#endif
