// cuda_compat.h: the one header every kernel source (kernels/*.cu) and the CUDA backend include first.
// Under nvcc it pulls in the real CUDA runtime, bf16, cuBLAS and cuBLASLt headers; under g++ it pulls in
// the CPU SIMT emulator (kernels/emu/), which provides the same names. It leaves out everything not in
// the contract below (textures, cooperative groups, cudaMemcpyToSymbol, multi-GPU, unified memory).
//
// ---------------------------------------------------------------------------------------------------
// CONTRACT for kernel sources (the same file must compile with nvcc and with g++ -x c++):
//  * Launch:  VLM_LAUNCH(kernel, grid, block, smem_bytes, stream)(args...);
//             nvcc: kernel<<<grid, block, smem_bytes, stream>>>(args...). A templated kernel must be
//             parenthesised: VLM_LAUNCH((my_kernel<float, 128>), grid, block, 0, stream)(x, n);
//             Launch errors are read with cudaGetLastError() as on a GPU.
//  * Dynamic shared memory: VLM_DYNAMIC_SHARED(float, smem);  (nvcc: extern __shared__ float smem[]).
//    The emulator aligns it to 128 bytes. Static `__shared__ T x[N];` inside kernels and __device__
//    functions works as on a GPU: one instance per block, shared by its threads, uninitialised.
//  * Device side: threadIdx/blockIdx/blockDim/gridDim, warpSize (32), __syncthreads (also _count,
//    _and, _or), __syncwarp,
//    __shfl_sync/_xor/_down/_up (any trivially copyable T up to 8 bytes, optional width),
//    __ballot_sync/__any_sync/__all_sync, atomicAdd (int, unsigned, unsigned long long, float,
//    double), atomicSub, atomicMax/atomicMin (int, unsigned), atomicCAS, atomicExch, atomicAnd/Or/Xor,
//    __threadfence, math intrinsics (__expf, __logf, rsqrtf, __fdividef, __ldg, __popc, __clz, __ffs,
//    __float_as_int/__int_as_float/__float_as_uint/__uint_as_float, __dp4a (int and unsigned), min/max,
//    plus <math.h>),
//    __nv_bfloat16/__nv_bfloat162 (__float2bfloat16 = round-to-nearest-even, __bfloat162float,
//    __floats2bfloat162_rn, __float22bfloat162_rn, __bfloat1622float2, __low2float, __high2float),
//    __half (__float2half, __half2float), vector types float2/float4/int2/int4/uint2/uint4 with make_*.
//    Qualifiers: __device__ __host__ __global__ __forceinline__ __launch_bounds__(...)
//    __restrict__ __align__(n).
//  * Warp collectives: every lane named in the mask must exist (be inside blockDim) and reach the
//    same collective; the emulator reports a missing or exited lane as a divergence error. Compute
//    masks explicitly for a partial last warp.
//  * Emulator execution model (g++): each block's threads are fibers on one OS thread; a thread runs
//    until it reaches __syncthreads / a warp collective / its end, then the next one runs. Blocks run
//    one after another. Work is executed eagerly when enqueued on a stream (except while the stream
//    is being captured into a graph, where it is recorded). A kernel fault (barrier deadlock, a thread
//    that exited while others wait at __syncthreads, a shuffle naming an absent lane, a write into an
//    allocation's guard zone, a cuBLAS call reading outside device memory) prints a diagnostic naming
//    the kernel and aborts the process: it is a bug, not a recoverable error.
//  * Memory checking (g++): cudaMalloc memory is filled with 0xFF bytes (NaN in fp32/bf16/fp16),
//    surrounded by guard zones checked after every launch and at cudaFree (plain build), poisoned for
//    AddressSanitizer (sanitize build: out-of-bounds reads and writes fail at once), and, under
//    valgrind, marked undefined at cudaMalloc and no-access in the guard zones: valgrind reports an
//    uninitialised read where a kernel branches on it, and every device->host copy is checked for
//    definedness (VALGRIND_CHECK_MEM_IS_DEFINED), so uninitialised data cannot leave the device unseen.
//  * Limits checked at launch: block <= 1024 threads (x,y <= 1024, z <= 64), grid y,z <= 65535, no zero
//    dimension -> cudaErrorInvalidConfiguration; dynamic shared memory > 48 KB without
//    cudaFuncSetAttribute(MaxDynamicSharedMemorySize), or > 227 KB -> cudaErrorInvalidValue. The
//    emulator cannot see the size of static __shared__ arrays, so only the dynamic part is counted
//    (ptxas rejects static > 48 KB in the nvcc build, target kernels_nvcc).
//  * Not provided: __noinline__ (a macro would break libstdc++'s __attribute__((__noinline__))),
//    __activemask, cooperative groups.
//  * Tunables (environment): VLM_EMU_STACK_KB (fiber stack size, default 64, 256 under ASan).
// ---------------------------------------------------------------------------------------------------
#pragma once

#if defined(__CUDACC__)

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cublas_v2.h>
#include <cublasLt.h>

#define VLM_LAUNCH(kernel, grid, block, smem_bytes, stream) kernel<<<(grid), (block), (smem_bytes), (stream)>>>
#define VLM_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) T name[]
#define VLM_CUDA_EMULATED 0

#else

#include "emu/emu_runtime.h"
#include "emu/emu_bf16.h"
#include "emu/emu_device.h"
#include "emu/emu_cublas.h"

#define VLM_LAUNCH(kernel, grid, block, smem_bytes, stream) \
  ::vlm::emu::Launcher((kernel), #kernel, (grid), (block), (smem_bytes), (stream))
#define VLM_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::vlm::emu::dynamic_shared_memory())
#define VLM_CUDA_EMULATED 1

#endif
