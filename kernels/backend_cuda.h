// backend_cuda.h: the "cuda" backend (real GPU, nvcc build) and "cuda-emu"
// (the same source compiled by g++ against the SIMT emulator in kernels/emu).
#pragma once

#include "core/backend.h"

#include <cstdint>
#include <memory>
#include <string>

namespace vlm {

// Which kernel runs an op, by rows. The defaults are the product's choice;
// tests force the other kernels onto every shape (as the cpu backend's
// tests force each ISA path).
struct CudaPaths {
    int64_t gemv_max_rows   = 16;  // matmul: gemv.cu up to this many rows, cuBLAS above (0..16)
    int64_t decode_max_rows = 4;   // attention: attention_decode.cu up to this many query rows, prefill above
    bool    split_kv        = true;  // decode may split long key ranges over blocks (flash-decoding)
    // matmul on Q8/Q4 weights above gemv_max_rows: w is dequantized to bf16
    // this many weights at a time at most (whole rows, at least one), into a
    // reused scratch buffer (64 MiB by default); tests make it small to run
    // several chunks.
    int64_t dequant_max_weights = int64_t(1) << 25;
};

// Creates the CUDA backend. `emulated` must match how this file was built
// (nvcc: false, g++ + emulator: true); otherwise nullptr and a reason.
std::unique_ptr<Backend> make_cuda_backend(bool emulated, const BackendOptions &opt,
                                           std::string &err);
// The same with the kernel choice forced (tests).
std::unique_ptr<Backend> make_cuda_backend_paths(bool emulated, const CudaPaths &paths,
                                                 std::string &err);

// Whether this build runs kernels on the emulator.
bool cuda_backend_is_emulated();

}  // namespace vlm
