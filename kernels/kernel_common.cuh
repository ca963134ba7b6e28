// kernel_common.cuh: device helpers shared by the kernels: dtype loads and
// rounding (bit-exact with cpu_ops_ref.cpp's conversions), warp and block
// reductions, 16-byte-load eligibility, and the launch-error check. No
// argument checks: the backend's checked front (core/backend_checked.cpp)
// has validated dtypes and shapes before any launcher runs. No
// cuda_fp16/cuda_bf16 types: half and bfloat16 are handled as raw bits so the
// same code compiles under the emulator.
#pragma once

#include "kernels.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace vlm::kern {

__host__ __device__ inline float u32_as_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

__host__ __device__ inline uint32_t f32_as_u32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

__host__ __device__ inline float bits_bf16_to_f32(uint16_t v)
{
    return u32_as_f32(uint32_t(v) << 16);
}

__host__ __device__ inline float bits_f16_to_f32(uint16_t h)
{
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {  // subnormal: value = man * 2^-24, exact in float
        float f = float(man) * 5.9604644775390625e-8f;
        bits = sign | f32_as_u32(f);
    }
    return u32_as_f32(bits);
}

__host__ __device__ inline uint16_t f32_to_bf16_bits(float f)
{
    uint32_t bits = f32_as_u32(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return uint16_t(bits >> 16);
}

__host__ __device__ inline uint16_t f32_to_f16_bits(float f)
{
    uint32_t bits = f32_as_u32(f);
    uint16_t sign = uint16_t((bits >> 16) & 0x8000u);
    uint32_t abs = bits & 0x7fffffffu;
    if (abs >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));
    if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00u);
    if (abs < 0x38800000u) {
        float scaled = rintf(u32_as_f32(abs) * 16777216.0f);  // ties to even
        return uint16_t(sign | uint16_t(scaled));
    }
    uint32_t man = abs & 0x7fffffu;
    uint32_t exp = (abs >> 23) - 112u;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return uint16_t(sign | h);
}

// Element i of a float tensor of any dtype, widened exactly.
__device__ inline float load_elem(const void *p, DType dt, size_t i)
{
    switch (dt) {
    case DType::F32: return static_cast<const float *>(p)[i];
    case DType::BF16: return bits_bf16_to_f32(static_cast<const uint16_t *>(p)[i]);
    case DType::F16: return bits_f16_to_f32(static_cast<const uint16_t *>(p)[i]);
    default: return 0.0f;
    }
}

// int64 min/max without relying on CUDA's overload set (int64_t is `long`
// on Linux; CUDA and the emulator overload long long).
__host__ __device__ inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__host__ __device__ inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

__device__ inline float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ inline float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread
// gets the result. `red` is 32 floats of shared memory.
__device__ inline float block_sum(float v, float *red)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_warp = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // red may still be read by a previous call
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < n_warp ? red[lane] : 0.0f;
    return warp_sum(v);
}

inline bool is_aligned16(const void *p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Whether every row of an f32 tensor can be read as float4.
inline bool rows_are_float4(const Tensor &t)
{
    return t.dtype == DType::F32 && is_aligned16(t.data) && t.cols % 4 == 0 && t.stride % 4 == 0;
}

// Turns the launch status into the bool + reason convention.
inline bool launch_ok(const char *op, std::string &err)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return true;
    err = std::string(op) + ": launch failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
    return false;
}

inline unsigned ceil_div(int64_t a, int64_t b) { return unsigned((a + b - 1) / b); }

}  // namespace vlm::kern
