// cpu_bench.h: machine-limit probes used by bench-ops (cpu_bench_avx512.cpp).
// Each runs on the calling thread; bench-ops runs one per pool thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vlm {

// Reads `bytes` (64-byte aligned, multiple of 256) once; returns a value
// derived from the data so the reads cannot be optimised away.
float bench_stream_read_avx512(const void *data, size_t bytes);
// iters x 16 vdpbf16ps (each 16 lanes x 2 products = 64 flops).
float bench_dpbf16_loop_avx512(int64_t iters);
// iters x 16 vfmadd231ps zmm (each 32 flops).
float bench_fma_loop_avx512(int64_t iters);

}  // namespace vlm
