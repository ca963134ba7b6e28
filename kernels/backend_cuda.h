// backend_cuda.h: the "cuda" backend (real GPU, nvcc build) and "cuda-emu"
// (the same source compiled by g++ against the SIMT emulator in kernels/emu).
#pragma once

#include "core/backend.h"

#include <memory>
#include <string>

namespace vlm {

// Creates the CUDA backend. `emulated` must match how this file was built
// (nvcc: false, g++ + emulator: true); otherwise nullptr and a reason.
std::unique_ptr<Backend> make_cuda_backend(bool emulated, const BackendOptions &opt,
                                           std::string &err);

// Whether this build runs kernels on the emulator.
bool cuda_backend_is_emulated();

}  // namespace vlm
