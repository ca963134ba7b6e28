// registry.cpp: make_backend's name lookup. The cpu backend is always built;
// the cuda backend comes from kernels/ (the emulator build here, nvcc on GPU
// hosts).
#include "backend/registry.h"

#include "backend/backend_cpu.h"
#include "backend_cuda.h"

namespace vlm {

std::unique_ptr<Backend> make_backend(const std::string &name, const BackendOptions &opt,
                                      std::string &err)
{
    if (name == "cpu") return make_cpu_backend(opt, err);
    if (name == "cuda" || name == "cuda-emu")
        return make_cuda_backend(name == "cuda-emu", opt, err);
    err = "unknown backend '" + name + "' (available: cpu, cuda, cuda-emu)";
    return nullptr;
}

}  // namespace vlm
