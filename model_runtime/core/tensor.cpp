// tensor.cpp: the backend-independent parts of backend.h: dtype sizes and
// names, tensor views, DeviceBuffer, op and fault names, and the defaults of
// the optional Backend functions (adopt_weight, supports, matmul_rounds_x,
// recover) with the fault record they share. The checked op front is in
// backend_checked.cpp.
#include "core/backend.h"
#include "core/quant.h"

namespace vlm {

size_t dtype_size(DType t) {
    switch (t) {
    case DType::F32:  return 4;
    case DType::BF16: return 2;
    case DType::F16:  return 2;
    case DType::I32:  return 4;
    case DType::Q8:   return 1;
    case DType::Q4:   return 1;
    }
    return 0;  // unreachable for valid enum values
}

const char *dtype_name(DType t) {
    switch (t) {
    case DType::F32:  return "F32";
    case DType::BF16: return "BF16";
    case DType::F16:  return "F16";
    case DType::I32:  return "I32";
    case DType::Q8:   return "Q8";
    case DType::Q4:   return "Q4";
    }
    return "?";
}

const char *op_name(Op op) {
    switch (op) {
    case Op::Matmul:          return "matmul";
    case Op::RmsNorm:         return "rms_norm";
    case Op::LayerNorm:       return "layer_norm";
    case Op::Add:             return "add";
    case Op::SiluMul:         return "silu_mul";
    case Op::Gelu:            return "gelu";
    case Op::Embed:           return "embed";
    case Op::RopeText:        return "rope_text";
    case Op::RopeVision:      return "rope_vision";
    case Op::Attention:       return "attention";
    case Op::PosEmbedBicubic: return "add_pos_embed_bicubic";
    case Op::Copy:            return "copy";
    }
    return "?";
}

const char *fault_name(BackendFault f) {
    switch (f) {
    case BackendFault::None:        return "none";
    case BackendFault::BadArgument: return "bad argument";
    case BackendFault::Unsupported: return "unsupported";
    case BackendFault::Device:      return "device error";
    }
    return "?";
}

size_t Tensor::row_bytes() const
{
    if (dtype_is_quantized(dtype)) return quant_row_bytes(dtype, cols);
    return size_t(stride) * dtype_size(dtype);
}

Tensor Tensor::row_slice(int64_t r0, int64_t n) const
{
    Tensor v = *this;
    v.data = static_cast<char *>(data) + size_t(r0) * row_bytes();
    if (scales) v.scales = static_cast<uint16_t *>(scales) + size_t(r0) * size_t(quant_blocks(cols));
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
    const bool quantized = dtype_is_quantized(dtype);
    size_t bytes = quantized ? quant_tensor_bytes(dtype, rows, cols) : size_t(rows) * size_t(cols) * dtype_size(dtype);
    t.data = alloc(bytes);
    if (!t.data) return Tensor{};
    upload(t.data, host, bytes);
    t.dtype = dtype;
    t.rows = rows;
    t.cols = cols;
    t.stride = cols;
    if (quantized) quant_set_layout(t);
    return t;
}

void Backend::release_weight(Tensor &t)
{
    if (t.data) free(t.data);
    t = Tensor{};
}

bool Backend::supports(const OpQuery &q) const
{
    const bool is_float = q.dtype == DType::F32 || q.dtype == DType::BF16 || q.dtype == DType::F16;
    switch (q.op) {
    case Op::Copy:
        return true;
    case Op::Matmul:  // quantized weights only where a backend says so
    case Op::RmsNorm:
    case Op::LayerNorm:
    case Op::Embed:
    case Op::PosEmbedBicubic:
        return is_float;
    default:
        return q.dtype == DType::F32;
    }
}

bool Backend::matmul_rounds_x(DType, int64_t, int64_t) const { return false; }

bool Backend::recover(std::string &)
{
    clear_fault();
    return true;
}

void Backend::record_fault(BackendFault kind, std::string message)
{
    if (failed() || kind == BackendFault::None) return;
    fault_ = kind;
    fault_message_ = std::move(message);
}

void Backend::clear_fault()
{
    fault_ = BackendFault::None;
    fault_message_.clear();
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
