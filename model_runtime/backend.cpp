// backend.cpp: the backend-independent parts of backend.h: tensor views,
// DeviceBuffer, the default weight adoption, and make_backend's name lookup.
// dtype_size/dtype_name live in backend_dtype.cpp.
#include "backend.h"
#include "backend_cpu.h"
#include "backend_cuda.h"   // kernels/: the emulator build here, nvcc on GPU hosts

namespace vlm {

Tensor Tensor::row_slice(int64_t r0, int64_t n) const
{
    Tensor v = *this;
    v.data = static_cast<char *>(data) + size_t(r0) * row_bytes();
    v.rows = n;
    return v;
}

Tensor Tensor::col_slice(int64_t c0, int64_t n) const
{
    Tensor v = *this;
    v.data = static_cast<char *>(data) + size_t(c0) * dtype_size(dtype);
    v.cols = n;
    return v;
}

Tensor Backend::adopt_weight(const void *host, DType dtype, int64_t rows, int64_t cols)
{
    Tensor t;
    size_t bytes = size_t(rows) * size_t(cols) * dtype_size(dtype);
    t.data = alloc(bytes);
    if (!t.data) return Tensor{};
    upload(t.data, host, bytes);
    t.dtype = dtype;
    t.rows = rows;
    t.cols = cols;
    t.stride = cols;
    return t;
}

void Backend::release_weight(Tensor &t)
{
    if (t.data) free(t.data);
    t = Tensor{};
}

DeviceBuffer::DeviceBuffer(Backend &b, DType dtype, int64_t rows, int64_t cols)
    : backend(&b)
{
    t.dtype = dtype;
    t.rows = rows;
    t.cols = cols;
    t.stride = cols;
    t.data = b.alloc(size_t(rows) * size_t(cols) * dtype_size(dtype));
}

DeviceBuffer::DeviceBuffer(DeviceBuffer &&o) noexcept : backend(o.backend), t(o.t)
{
    o.backend = nullptr;
    o.t = Tensor{};
}

DeviceBuffer &DeviceBuffer::operator=(DeviceBuffer &&o) noexcept
{
    if (this != &o) {
        if (backend && t.data) backend->free(t.data);
        backend = o.backend;
        t = o.t;
        o.backend = nullptr;
        o.t = Tensor{};
    }
    return *this;
}

DeviceBuffer::~DeviceBuffer()
{
    if (backend && t.data) backend->free(t.data);
}

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
