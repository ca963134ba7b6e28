// link_check_main.cpp: `vlm-cuda-selftest [MODEL_DIR]`, built only by
// kernels/nvcc_link_check.sh: the real-CUDA build of the kernels, the CUDA
// backend and the self-test, linked against cuBLAS and the CUDA runtime.
// On a machine with a GPU it runs the self-test table; without one it says
// why the backend is unavailable and exits 2 (which still proves the link).
#include "backend_cuda.h"

#include <cstdio>
#include <string>

int main(int argc, char **argv)
{
    std::string err;
    vlm::BackendOptions opt;
    auto cuda = vlm::make_cuda_backend(false, opt, err);
    if (!cuda) {
        std::fprintf(stderr, "vlm-cuda-selftest: %s\n", err.c_str());
        return 2;
    }
    return vlm::run_cuda_selftest(*cuda, argc > 1 ? argv[1] : "");
}
