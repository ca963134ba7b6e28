// tensor.cpp: the backend-independent parts of backend.h: dtype sizes and
// names, tensor views, DeviceBuffer and the default weight adoption.
#include "core/backend.h"

namespace vlm {

size_t dtype_size(DType t) {
    switch (t) {
    case DType::F32:  return 4;
    case DType::BF16: return 2;
    case DType::F16:  return 2;
    case DType::I32:  return 4;
    }
    return 0;  // unreachable for valid enum values
}

const char *dtype_name(DType t) {
    switch (t) {
    case DType::F32:  return "F32";
    case DType::BF16: return "BF16";
    case DType::F16:  return "F16";
    case DType::I32:  return "I32";
    }
    return "?";
}

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

}  // namespace vlm
