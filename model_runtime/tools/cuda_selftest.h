// cuda_selftest.h: `vlm-run --backend cuda --selftest` (built with nvcc by
// kernels/nvcc_link_check.sh on GPU hosts): the op table (backend/op_suite.h)
// on a CUDA backend against the reference, then one model step against the
// cpu backend, as a pass/fail table on stdout.
#pragma once

#include "core/backend.h"

#include <string>

namespace vlm {

// Runs the op table on `cuda` (unless `op_table` is false) and compares one
// model step of the model in `model_dir` (skipped when empty) with the cpu
// backend; prints the results to stdout. Returns 0 when everything passes,
// else 1.
int run_cuda_selftest(Backend &cuda, const std::string &model_dir, bool op_table = true);

}  // namespace vlm
