// emu_bf16.h: __nv_bfloat16, __nv_bfloat162 and __half for g++ builds of kernel sources, with the
// conversions of cuda_bf16.h / cuda_fp16.h: float -> bf16/fp16 round to nearest even, NaN kept NaN.
// __hadd/__hmul/... go through float and round once; no operator overloads (they would make
// `bf16 * 2.0f` ambiguous next to the implicit float conversion).
// Leaves out: __half2 arithmetic, the rz/rd/ru conversion families except __float2bfloat16_rz.
#pragma once

#include <stdint.h>
#include <math.h>
#include <string.h>

#include "emu_runtime.h"

namespace vlm::emu {
inline uint16_t float_to_bf16_bits_rn(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_bits_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
uint16_t float_to_half_bits_rn(float f);
float half_bits_to_float(uint16_t h);
}  // namespace vlm::emu

struct __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(::vlm::emu::float_to_bf16_bits_rn(f)) {}
  __nv_bfloat16(double f) : __x(::vlm::emu::float_to_bf16_bits_rn(static_cast<float>(f))) {}
  __nv_bfloat16(int i) : __x(::vlm::emu::float_to_bf16_bits_rn(static_cast<float>(i))) {}
  operator float() const { return ::vlm::emu::bf16_bits_to_float(__x); }
};
struct __attribute__((aligned(4))) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

inline __nv_bfloat16 __float2bfloat16(float f) {
  __nv_bfloat16 r;
  r.__x = ::vlm::emu::float_to_bf16_bits_rn(f);
  return r;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rz(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  __nv_bfloat16 r;
  r.__x = static_cast<unsigned short>(u >> 16);
  return r;
}
inline float __bfloat162float(__nv_bfloat16 b) { return ::vlm::emu::bf16_bits_to_float(b.__x); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
  __nv_bfloat16 r;
  r.__x = u;
  return r;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162{__float2bfloat16(a), __float2bfloat16(b)};
}
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __floats2bfloat162_rn(f.x, f.y); }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162{a, b}; }
inline __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 a) { return __nv_bfloat162{a, a}; }
inline float2 __bfloat1622float2(__nv_bfloat162 v) {
  return float2{__bfloat162float(v.x), __bfloat162float(v.y)};
}
inline float __low2float(__nv_bfloat162 v) { return __bfloat162float(v.x); }
inline float __high2float(__nv_bfloat162 v) { return __bfloat162float(v.y); }
inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 v) { return v.x; }
inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 v) { return v.y; }
inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return __float2bfloat16(float(a) + float(b)); }
inline __nv_bfloat16 __hsub(__nv_bfloat16 a, __nv_bfloat16 b) { return __float2bfloat16(float(a) - float(b)); }
inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return __float2bfloat16(float(a) * float(b)); }
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
  return __float2bfloat16(fmaf(float(a), float(b), float(c)));
}

struct __half {
  unsigned short __x;
  __half() = default;
  __half(float f) : __x(::vlm::emu::float_to_half_bits_rn(f)) {}
  __half(double f) : __x(::vlm::emu::float_to_half_bits_rn(static_cast<float>(f))) {}
  operator float() const { return ::vlm::emu::half_bits_to_float(__x); }
};
struct __attribute__((aligned(4))) __half2 {
  __half x, y;
};
typedef __half half;
typedef __half2 half2;
inline __half __float2half(float f) {
  __half r;
  r.__x = ::vlm::emu::float_to_half_bits_rn(f);
  return r;
}
inline __half __float2half_rn(float f) { return __float2half(f); }
inline float __half2float(__half h) { return ::vlm::emu::half_bits_to_float(h.__x); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__float2half(a), __float2half(b)}; }
inline float2 __half22float2(__half2 v) { return float2{__half2float(v.x), __half2float(v.y)}; }
inline __half __ushort_as_half(unsigned short u) {
  __half r;
  r.__x = u;
  return r;
}
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
