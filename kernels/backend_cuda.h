// backend_cuda.h: the "cuda" backend (real GPU, nvcc build) and "cuda-emu"
// (the same source compiled by g++ against the SIMT emulator in kernels/emu),
// and the kernel/model self-test behind `vlm-run --selftest`.
#pragma once

#include "backend.h"

#include <memory>
#include <string>

namespace vlm {

// Creates the CUDA backend. `emulated` must match how this file was built
// (nvcc: false, g++ + emulator: true); otherwise nullptr and a reason.
std::unique_ptr<Backend> make_cuda_backend(bool emulated, const BackendOptions &opt,
                                           std::string &err);

// Whether this build runs kernels on the emulator.
bool cuda_backend_is_emulated();

// Compares every op of `cuda` with the cpu backend on random inputs and one
// model step of the model in `model_dir` (skipped when empty); prints a
// pass/fail table to stdout. Returns 0 when everything passes, else 1.
int run_cuda_selftest(Backend &cuda, const std::string &model_dir);

}  // namespace vlm
