// backend_dtype.cpp: element sizes and printable names of the tensor dtypes.
// Only these two helpers of backend.h live here; the Tensor views, the
// backend factory and DeviceBuffer are implemented elsewhere.
#include "backend.h"

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

}  // namespace vlm
