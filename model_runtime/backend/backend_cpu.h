// backend_cpu.h: the "cpu" backend: host memory, weights used in place from
// the mmap, ops threaded over rows on a persistent pool, matmul kernels picked
// at run time for AVX-512 (+bf16), AVX2+FMA or plain C++.
#pragma once

#include "core/backend.h"

#include <memory>
#include <string>

namespace vlm {

// Instruction-set paths of the cpu kernels, best last.
enum class CpuIsa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char *cpu_isa_name(CpuIsa isa);
// Best path this CPU supports (AVX-512 needs F/BW/VL/DQ; AVX2 needs FMA+F16C).
CpuIsa cpu_best_isa();
// Whether the CPU has avx512_bf16 (vdpbf16ps) for the large-n bf16 GEMM.
bool cpu_has_avx512_bf16();

// The cpu backend on the best path.
std::unique_ptr<Backend> make_cpu_backend(const BackendOptions &opt, std::string &err);
// Same with the kernel path forced (tests, benchmarks). Fails if the CPU lacks
// `isa`. `allow_bf16_dot` = false keeps AVX-512 off vdpbf16ps, like
// BackendOptions::exact_f32_activations (either one disables it).
std::unique_ptr<Backend> make_cpu_backend_isa(const BackendOptions &opt, CpuIsa isa,
                                              bool allow_bf16_dot, std::string &err);

}  // namespace vlm
