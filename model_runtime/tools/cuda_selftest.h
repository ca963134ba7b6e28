// cuda_selftest.h: `vlm-run --selftest` (and kernels/nvcc/link_check_main.cpp
// on GPU hosts): every op of a CUDA backend against the cpu backend on random
// inputs, then one model step, as a pass/fail table on stdout.
#pragma once

#include "core/backend.h"

#include <string>

namespace vlm {

// Compares every op of `cuda` with the cpu backend on random inputs and one
// model step of the model in `model_dir` (skipped when empty); prints a
// pass/fail table to stdout. Returns 0 when everything passes, else 1.
int run_cuda_selftest(Backend &cuda, const std::string &model_dir);

}  // namespace vlm
