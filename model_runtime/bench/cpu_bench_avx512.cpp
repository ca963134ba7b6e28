// cpu_bench_avx512.cpp: machine-limit probes for bench-ops (AVX-512 only):
// a streaming read, and register-resident vdpbf16ps / vfmadd loops that give
// the per-core bf16 dot-product and fp32 FMA peaks. Not used by the model.
#include "bench/cpu_bench.h"

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

namespace vlm {

float bench_stream_read_avx512(const void *data, size_t bytes)
{
    const char *p = static_cast<const char *>(data);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i + 256 <= bytes; i += 256) {
        s0 = _mm512_add_ps(s0, _mm512_load_ps(reinterpret_cast<const float *>(p + i)));
        s1 = _mm512_add_ps(s1, _mm512_load_ps(reinterpret_cast<const float *>(p + i + 64)));
        s2 = _mm512_add_ps(s2, _mm512_load_ps(reinterpret_cast<const float *>(p + i + 128)));
        s3 = _mm512_add_ps(s3, _mm512_load_ps(reinterpret_cast<const float *>(p + i + 192)));
    }
    alignas(64) float out[16];
    _mm512_store_ps(out, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    return out[0];
}

// 16 independent accumulators hide the instruction latency.
float bench_dpbf16_loop_avx512(int64_t iters)
{
    __m512 acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps(float(i));
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x00010001);
    for (int64_t it = 0; it < iters; it++) {
        for (int i = 0; i < 16; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(a));  // keep the loop from being folded
    }
    __m512 s = acc[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, acc[i]);
    alignas(64) float out[16];
    _mm512_store_ps(out, s);
    return out[0];
}

float bench_fma_loop_avx512(int64_t iters)
{
    __m512 acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps(float(i));
    __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-7f);
    for (int64_t it = 0; it < iters; it++) {
        for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(a));
    }
    __m512 s = acc[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, acc[i]);
    alignas(64) float out[16];
    _mm512_store_ps(out, s);
    return out[0];
}

}  // namespace vlm
