// test_emu.cpp: the CPU SIMT emulator (kernels/emu/) behaves like a CUDA device for the code we write:
// shared-memory reductions, warp shuffles and votes, atomics, dynamic shared memory, multi-dimensional
// grids, CUDA's error codes for invalid launches and copies, graph capture and replay, every cuBLAS /
// cuBLASLt call pattern against a naive reference, and loud failure of buggy kernels (divergent
// barriers, out-of-bounds writes, and - in a child process under valgrind or AddressSanitizer -
// uninitialised and out-of-bounds reads). Child modes: `test_emu --bad <case>` runs one bad kernel.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_compat.h"
#include "run_process.h"

// check.h defines a fail() macro that breaks <fstream>: include it last.
#include <check.h>

namespace {

// ---- kernels under test ----------------------------------------------------------------------------
__global__ void block_sum_kernel(const float* in, float* out, int n) {
  __shared__ float partial[256];
  unsigned tid = threadIdx.x;
  unsigned i = blockIdx.x * blockDim.x + tid;
  partial[tid] = i < static_cast<unsigned>(n) ? in[i] : 0.0f;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (tid < stride) partial[tid] += partial[tid + stride];
    __syncthreads();
  }
  if (tid == 0) out[blockIdx.x] = partial[0];
}

struct WarpResults {
  float xor_sum, down_sum;
  int up_scan, broadcast8;
  unsigned ballot;
  int any_odd, all_small;
};

__global__ void barrier_vote_kernel(const float* in, int* out, int n) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  bool positive = i < static_cast<unsigned>(n) && in[i] > 10.0f;
  int count = __syncthreads_count(positive);
  int all = __syncthreads_and(positive);
  int any = __syncthreads_or(positive);
  if (threadIdx.x == 0) {
    out[3 * blockIdx.x] = count;
    out[3 * blockIdx.x + 1] = all;
    out[3 * blockIdx.x + 2] = any;
  }
}

__global__ void warp_kernel(WarpResults* out) {
  unsigned lane = threadIdx.x % 32;
  float v = static_cast<float>(threadIdx.x);
  float xs = v;
  for (int o = 16; o > 0; o /= 2) xs += __shfl_xor_sync(0xffffffffu, xs, o);
  float ds = v;
  for (int o = 16; o > 0; o /= 2) ds += __shfl_down_sync(0xffffffffu, ds, o);
  int scan = static_cast<int>(lane) + 1;
  for (int o = 1; o < 32; o *= 2) {
    int other = __shfl_up_sync(0xffffffffu, scan, o);
    if (static_cast<int>(lane) >= o) scan += other;
  }
  int b8 = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x) * 10, 3, 8);  // lane 3 of each 8-lane group
  unsigned ballot = __ballot_sync(0xffffffffu, lane % 3 == 0);
  int any_odd = __any_sync(0xffffffffu, threadIdx.x == 37);
  int all_small = __all_sync(0xffffffffu, threadIdx.x < 40);
  WarpResults& r = out[threadIdx.x];
  r.xor_sum = xs;
  r.down_sum = ds;
  r.up_scan = scan;
  r.broadcast8 = b8;
  r.ballot = ballot;
  r.any_odd = any_odd;
  r.all_small = all_small;
}

// Partial warp: 48 threads, the second warp has 16 lanes and uses a 16-lane mask.
__global__ void partial_warp_kernel(int* out) {
  unsigned lane = threadIdx.x % 32;
  unsigned mask = threadIdx.x < 32 ? 0xffffffffu : 0x0000ffffu;
  int v = 1;
  for (int o = 8; o > 0; o /= 2) v += __shfl_xor_sync(mask, v, o);
  out[threadIdx.x] = v + static_cast<int>(lane) * 0;
}

__global__ void atomics_kernel(const int* keys, int n, int* histogram, float* fsum, int* imax, int* imin,
                               unsigned* counter, int* slots) {
  int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  atomicAdd(&histogram[keys[i] % 7], 1);
  atomicAdd(fsum, 0.5f);
  atomicMax(imax, keys[i]);
  atomicMin(imin, keys[i]);
  unsigned ticket = atomicAdd(counter, 1u);
  int expected = atomicCAS(&slots[ticket], -1, i);  // each ticket used once: CAS must see -1
  if (expected != -1) atomicExch(&slots[ticket], -2);
}

__global__ void reverse_dynamic_kernel(const int* in, int* out, int n) {
  VLM_DYNAMIC_SHARED(int, tile);
  int base = static_cast<int>(blockIdx.x * blockDim.x);
  int t = static_cast<int>(threadIdx.x);
  if (base + t < n) tile[t] = in[base + t];
  __syncthreads();
  int count = min(static_cast<int>(blockDim.x), n - base);
  if (t < count) out[base + t] = tile[count - 1 - t];
}

__global__ void big_smem_kernel(float* out) {
  VLM_DYNAMIC_SHARED(float, buf);
  buf[threadIdx.x] = 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = buf[0] + buf[blockDim.x - 1];
}

__global__ void grid3d_kernel(int* out) {
  unsigned bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  unsigned tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  atomicAdd(&out[bx * threads + tx], 1 + static_cast<int>(threadIdx.z * 100 + blockIdx.z * 1000));
}

__global__ void axpy_kernel(float a, const float* x, float* y, int n) {
  int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = a * x[i] + y[i];
}

// out[2i] = signed __dp4a(a[i], b[i], c[i]), out[2i + 1] = the unsigned overload on the same bits.
__global__ void dp4a_kernel(const int* a, const int* b, const int* c, int* out, int n) {
  int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  out[2 * i] = __dp4a(a[i], b[i], c[i]);
  out[2 * i + 1] = static_cast<int>(__dp4a(static_cast<unsigned>(a[i]), static_cast<unsigned>(b[i]),
                                           static_cast<unsigned>(c[i])));
}

// ---- deliberately bad kernels (run in child processes) ---------------------------------------------
__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x == 5) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}
__global__ void oob_write_kernel(float* out, int n) {
  int i = static_cast<int>(threadIdx.x);
  out[i] = 1.0f;  // launched with n + 1 threads
  (void)n;
}
__global__ void oob_read_kernel(const float* in, float* out, int n) {
  int i = static_cast<int>(threadIdx.x);
  float v = in[i];  // launched with n + 1 threads
  out[i < n ? i : 0] = v > 0.0f ? v : 0.0f;
}
__global__ void uninit_read_kernel(const float* in, float* out) {
  float v = in[threadIdx.x];  // `in` was cudaMalloc'd but never written
  out[threadIdx.x] = v * 2.0f;
}
__global__ void bad_mask_kernel(int* out) {
  // 48 threads but the second warp uses a full mask naming 16 lanes that do not exist.
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

float* device_floats(const std::vector<float>& h) {
  float* d = nullptr;
  ck_assert_int_eq(cudaMalloc(&d, h.size() * sizeof(float)), cudaSuccess);
  ck_assert_int_eq(cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

std::vector<float> host_floats(const float* d, size_t n) {
  std::vector<float> h(n);
  ck_assert_int_eq(cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
  return h;
}

// ---- tests -------------------------------------------------------------------------------------------
START_TEST(test_block_reduction_odd_size) {
  const int n = 1000, threads = 256, blocks = (n + threads - 1) / threads;
  std::vector<float> h(n);
  double expect = 0;
  for (int i = 0; i < n; ++i) expect += (h[i] = static_cast<float>((i * 37) % 101) * 0.25f);
  float* d_in = device_floats(h);
  float* d_out = nullptr;
  ck_assert_int_eq(cudaMalloc(&d_out, blocks * sizeof(float)), cudaSuccess);
  VLM_LAUNCH(block_sum_kernel, blocks, threads, 0, nullptr)(d_in, d_out, n);
  ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
  std::vector<float> partial = host_floats(d_out, blocks);
  double got = 0;
  for (float p : partial) got += p;
  printf("block reduction: got %.3f expect %.3f diff %.3g\n", got, expect, std::fabs(got - expect));
  ck_assert(std::fabs(got - expect) < 1e-3);
  int* d_votes;
  cudaMalloc(&d_votes, 3 * blocks * sizeof(int));
  VLM_LAUNCH(barrier_vote_kernel, blocks, threads, 0, nullptr)(d_in, d_votes, n);
  std::vector<int> votes(3 * blocks);
  cudaMemcpy(votes.data(), d_votes, votes.size() * sizeof(int), cudaMemcpyDeviceToHost);
  for (int b = 0; b < blocks; ++b) {
    int count = 0;
    for (int t = 0; t < threads; ++t) count += b * threads + t < n && h[b * threads + t] > 10.0f;
    ck_assert_int_eq(votes[3 * b], count);
    ck_assert_int_eq(votes[3 * b + 1], count == threads);
    ck_assert_int_eq(votes[3 * b + 2], count > 0);
  }
  cudaFree(d_votes);
  cudaFree(d_in);
  cudaFree(d_out);
}
END_TEST

START_TEST(test_warp_shuffles_and_votes) {
  const int threads = 64;
  WarpResults* d = nullptr;
  ck_assert_int_eq(cudaMalloc(&d, threads * sizeof(WarpResults)), cudaSuccess);
  VLM_LAUNCH(warp_kernel, 1, threads, 0, nullptr)(d);
  ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
  std::vector<WarpResults> r(threads);
  ck_assert_int_eq(cudaMemcpy(r.data(), d, threads * sizeof(WarpResults), cudaMemcpyDeviceToHost), cudaSuccess);
  for (int t = 0; t < threads; ++t) {
    int warp = t / 32, lane = t % 32;
    float warp_sum = 0;
    for (int l = 0; l < 32; ++l) warp_sum += static_cast<float>(warp * 32 + l);
    ck_assert_float_eq(r[t].xor_sum, warp_sum);
    if (lane == 0) ck_assert_float_eq(r[t].down_sum, warp_sum);
    ck_assert_int_eq(r[t].up_scan, (lane + 1) * (lane + 2) / 2);
    ck_assert_int_eq(r[t].broadcast8, (t - lane % 8 + 3) * 10);
    ck_assert_uint_eq(r[t].ballot, 0x49249249u);  // lanes 0,3,6,...,30
    ck_assert_int_eq(r[t].any_odd, warp == 1 ? 1 : 0);
    ck_assert_int_eq(r[t].all_small, warp == 0 ? 1 : 0);
  }
  int* dp = nullptr;
  ck_assert_int_eq(cudaMalloc(&dp, 48 * sizeof(int)), cudaSuccess);
  VLM_LAUNCH(partial_warp_kernel, 1, 48, 0, nullptr)(dp);
  std::vector<int> p(48);
  ck_assert_int_eq(cudaMemcpy(p.data(), dp, sizeof(int) * 48, cudaMemcpyDeviceToHost), cudaSuccess);
  for (int t = 0; t < 48; ++t) ck_assert_int_eq(p[t], 16);
  cudaFree(d);
  cudaFree(dp);
}
END_TEST

// __dp4a against a byte-by-byte reference in 64-bit arithmetic, wrapped to 32 bits: random words and
// the extremes (-128 * -128 four times, 255 * 255, accumulators near INT_MAX/INT_MIN that wrap).
START_TEST(test_dp4a) {
  std::vector<int> a, b, c;
  const int edge[][3] = {{int(0x80808080u), int(0x80808080u), 0},
                         {int(0x80808080u), 0x7f7f7f7f, 0},
                         {-1, -1, 0},
                         {int(0x80808080u), int(0x80808080u), 0x7fffffff},
                         {0x7f7f7f7f, int(0x81818181u), int(0x80000000u)},
                         {0x01020304, 0x05060708, -70}};
  for (const auto& e : edge) {
    a.push_back(e[0]);
    b.push_back(e[1]);
    c.push_back(e[2]);
  }
  uint64_t rng = 12345;
  auto next = [&rng] {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>(static_cast<uint32_t>(rng >> 32));
  };
  for (int i = 0; i < 200; ++i) {
    a.push_back(next());
    b.push_back(next());
    c.push_back(i % 2 ? next() : next() >> 12);
  }
  const int n = static_cast<int>(a.size());
  auto dev = [](const std::vector<int>& h) {
    int* d = nullptr;
    cudaMalloc(&d, h.size() * sizeof(int));
    cudaMemcpy(d, h.data(), h.size() * sizeof(int), cudaMemcpyHostToDevice);
    return d;
  };
  int *da = dev(a), *db = dev(b), *dc = dev(c), *dout = nullptr;
  cudaMalloc(&dout, 2 * n * sizeof(int));
  VLM_LAUNCH(dp4a_kernel, (n + 63) / 64, 64, 0, nullptr)(da, db, dc, dout, n);
  ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
  std::vector<int> out(2 * n);
  cudaMemcpy(out.data(), dout, out.size() * sizeof(int), cudaMemcpyDeviceToHost);
  for (int i = 0; i < n; ++i) {
    int8_t sa[4], sb[4];
    uint8_t ua[4], ub[4];
    memcpy(sa, &a[i], 4);
    memcpy(sb, &b[i], 4);
    memcpy(ua, &a[i], 4);
    memcpy(ub, &b[i], 4);
    int64_t s = c[i], u = static_cast<uint32_t>(c[i]);
    for (int j = 0; j < 4; ++j) {
      s += int64_t(sa[j]) * sb[j];
      u += int64_t(ua[j]) * ub[j];
    }
    ck_assert_int_eq(out[2 * i], static_cast<int32_t>(static_cast<uint32_t>(s)));
    ck_assert_int_eq(out[2 * i + 1], static_cast<int32_t>(static_cast<uint32_t>(u)));
  }
  ck_assert_int_eq(out[0], 4 * 128 * 128);
  ck_assert_int_eq(out[2 * 3], static_cast<int>(0x7fffffffu + 4u * 128 * 128));  // wrapped past INT_MAX
  cudaFree(da);
  cudaFree(db);
  cudaFree(dc);
  cudaFree(dout);
}
END_TEST

START_TEST(test_atomics) {
  const int n = 777;
  std::vector<int> keys(n);
  std::vector<int> expect_hist(7, 0);
  int kmax = -1, kmin = 1 << 30;
  for (int i = 0; i < n; ++i) {
    keys[i] = (i * 7919) % 1009;
    ++expect_hist[keys[i] % 7];
    kmax = std::max(kmax, keys[i]);
    kmin = std::min(kmin, keys[i]);
  }
  int *d_keys, *d_hist, *d_max, *d_min, *d_slots;
  float* d_fsum;
  unsigned* d_counter;
  cudaMalloc(&d_keys, n * sizeof(int));
  cudaMemcpy(d_keys, keys.data(), n * sizeof(int), cudaMemcpyHostToDevice);
  cudaMalloc(&d_hist, 7 * sizeof(int));
  cudaMemset(d_hist, 0, 7 * sizeof(int));
  cudaMalloc(&d_fsum, sizeof(float));
  cudaMemset(d_fsum, 0, sizeof(float));
  int init_max = -1, init_min = 1 << 30;
  cudaMalloc(&d_max, sizeof(int));
  cudaMemcpy(d_max, &init_max, sizeof(int), cudaMemcpyHostToDevice);
  cudaMalloc(&d_min, sizeof(int));
  cudaMemcpy(d_min, &init_min, sizeof(int), cudaMemcpyHostToDevice);
  cudaMalloc(&d_counter, sizeof(unsigned));
  cudaMemset(d_counter, 0, sizeof(unsigned));
  cudaMalloc(&d_slots, n * sizeof(int));
  cudaMemset(d_slots, 0xff, n * sizeof(int));
  VLM_LAUNCH(atomics_kernel, (n + 127) / 128, 128, 0, nullptr)(d_keys, n, d_hist, d_fsum, d_max, d_min, d_counter,
                                                              d_slots);
  ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
  std::vector<int> hist(7), slots(n);
  float fsum;
  int gmax, gmin;
  unsigned counter;
  cudaMemcpy(hist.data(), d_hist, 7 * sizeof(int), cudaMemcpyDeviceToHost);
  cudaMemcpy(&fsum, d_fsum, sizeof(float), cudaMemcpyDeviceToHost);
  cudaMemcpy(&gmax, d_max, sizeof(int), cudaMemcpyDeviceToHost);
  cudaMemcpy(&gmin, d_min, sizeof(int), cudaMemcpyDeviceToHost);
  cudaMemcpy(&counter, d_counter, sizeof(unsigned), cudaMemcpyDeviceToHost);
  cudaMemcpy(slots.data(), d_slots, n * sizeof(int), cudaMemcpyDeviceToHost);
  for (int b = 0; b < 7; ++b) ck_assert_int_eq(hist[b], expect_hist[b]);
  ck_assert_float_eq(fsum, 0.5f * n);
  ck_assert_int_eq(gmax, kmax);
  ck_assert_int_eq(gmin, kmin);
  ck_assert_uint_eq(counter, static_cast<unsigned>(n));
  std::vector<int> seen(n, 0);
  for (int s : slots) {
    ck_assert(s >= 0 && s < n);
    ++seen[s];
  }
  for (int c : seen) ck_assert_int_eq(c, 1);
  for (void* p : {(void*)d_keys, (void*)d_hist, (void*)d_fsum, (void*)d_max, (void*)d_min, (void*)d_counter,
                  (void*)d_slots})
    ck_assert_int_eq(cudaFree(p), cudaSuccess);
}
END_TEST

START_TEST(test_dynamic_shared_and_limits) {
  const int n = 1001, threads = 96;
  std::vector<int> h(n);
  for (int i = 0; i < n; ++i) h[i] = i * 3 + 1;
  int *d_in, *d_out;
  cudaMalloc(&d_in, n * sizeof(int));
  cudaMalloc(&d_out, n * sizeof(int));
  cudaMemcpy(d_in, h.data(), n * sizeof(int), cudaMemcpyHostToDevice);
  VLM_LAUNCH(reverse_dynamic_kernel, (n + threads - 1) / threads, threads, threads * sizeof(int), nullptr)(d_in, d_out,
                                                                                                          n);
  ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
  std::vector<int> out(n);
  cudaMemcpy(out.data(), d_out, n * sizeof(int), cudaMemcpyDeviceToHost);
  for (int b = 0; b * threads < n; ++b) {
    int count = std::min(threads, n - b * threads);
    for (int t = 0; t < count; ++t) ck_assert_int_eq(out[b * threads + t], h[b * threads + count - 1 - t]);
  }
  // More than 48 KB of dynamic shared memory needs the opt-in attribute; more than 227 KB never works.
  float* d_f;
  cudaMalloc(&d_f, sizeof(float));
  VLM_LAUNCH(big_smem_kernel, 1, 64, 64 * 1024, nullptr)(d_f);
  ck_assert_int_eq(cudaGetLastError(), cudaErrorInvalidValue);
  ck_assert_int_eq(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024),
                   cudaSuccess);
  VLM_LAUNCH(big_smem_kernel, 1, 64, 64 * 1024, nullptr)(d_f);
  ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
  float f = 0;
  cudaMemcpy(&f, d_f, sizeof f, cudaMemcpyDeviceToHost);
  ck_assert_float_eq(f, 2.0f);
  ck_assert_int_eq(cudaFuncSetAttribute(big_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024),
                   cudaErrorInvalidValue);
  cudaGetLastError();
  VLM_LAUNCH(big_smem_kernel, 1, 64, 228 * 1024, nullptr)(d_f);
  ck_assert_int_eq(cudaGetLastError(), cudaErrorInvalidValue);
  cudaFree(d_in);
  cudaFree(d_out);
  cudaFree(d_f);
}
END_TEST

START_TEST(test_3d_grid_covers_every_thread_once) {
  dim3 grid(3, 2, 2), block(4, 3, 2);
  const int total = 3 * 2 * 2 * 4 * 3 * 2;
  int* d;
  cudaMalloc(&d, total * sizeof(int));
  cudaMemset(d, 0, total * sizeof(int));
  VLM_LAUNCH(grid3d_kernel, grid, block, 0, nullptr)(d);
  ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
  std::vector<int> h(total);
  cudaMemcpy(h.data(), d, total * sizeof(int), cudaMemcpyDeviceToHost);
  for (int i = 0; i < total; ++i) {
    int t = i % 24, b = i / 24;
    int tz = t / 12, bz = b / 6;
    ck_assert_int_eq(h[i], 1 + tz * 100 + bz * 1000);
  }
  cudaFree(d);
}
END_TEST

START_TEST(test_invalid_launches) {
  float* d;
  cudaMalloc(&d, 64 * sizeof(float));
  struct Case {
    dim3 grid, block;
  } cases[] = {{dim3(1), dim3(1025)},        {dim3(1), dim3(32, 33)},     {dim3(1), dim3(1, 1, 65)},
               {dim3(0), dim3(32)},          {dim3(1), dim3(0)},          {dim3(1, 65536), dim3(32)},
               {dim3(1, 1, 65536), dim3(32)}, {dim3(1), dim3(2048, 1, 1)}};
  for (const Case& c : cases) {
    VLM_LAUNCH(axpy_kernel, c.grid, c.block, 0, nullptr)(1.0f, d, d, 64);
    ck_assert_int_eq(cudaPeekAtLastError(), cudaErrorInvalidConfiguration);
    ck_assert_int_eq(cudaGetLastError(), cudaErrorInvalidConfiguration);
    ck_assert_int_eq(cudaGetLastError(), cudaSuccess);  // not sticky
  }
  // A destroyed stream is an invalid handle.
  cudaStream_t s;
  ck_assert_int_eq(cudaStreamCreate(&s), cudaSuccess);
  ck_assert_int_eq(cudaStreamDestroy(s), cudaSuccess);
  ck_assert_int_eq(cudaStreamDestroy(s), cudaErrorInvalidResourceHandle);
  cudaGetLastError();
  cudaFree(d);
}
END_TEST

START_TEST(test_memcpy_and_free_errors) {
  float* d;
  ck_assert_int_eq(cudaMalloc(&d, 100 * sizeof(float)), cudaSuccess);
  std::vector<float> h(200, 1.0f);
  ck_assert_int_eq(cudaMemcpy(d, h.data(), 100 * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  ck_assert_int_eq(cudaMemcpy(d, h.data(), 101 * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  ck_assert_int_eq(cudaMemcpy(d + 50, h.data(), 51 * sizeof(float), cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  ck_assert_int_eq(cudaMemcpy(h.data(), d + 99, 2 * sizeof(float), cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  ck_assert_int_eq(cudaMemcpy(h.data(), h.data() + 100, 4, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  ck_assert_int_eq(cudaMemcpy(d, d + 1, 4, cudaMemcpyHostToDevice), cudaErrorInvalidValue);  // src is device
  ck_assert_int_eq(cudaMemcpy(d, h.data(), 4, static_cast<cudaMemcpyKind>(7)), cudaErrorInvalidMemcpyDirection);
  ck_assert_int_eq(cudaMemcpyAsync(h.data(), d, 400, cudaMemcpyDefault, nullptr), cudaSuccess);
  ck_assert_int_eq(cudaMemset(d + 10, 0, 91 * sizeof(float)), cudaErrorInvalidValue);
  ck_assert_int_eq(cudaMemcpy2DAsync(d, 40, h.data(), 40, 40, 10, cudaMemcpyHostToDevice, nullptr), cudaSuccess);
  ck_assert_int_eq(cudaMemcpy2DAsync(d, 40, h.data(), 40, 40, 11, cudaMemcpyHostToDevice, nullptr),
                   cudaErrorInvalidValue);
  ck_assert_int_eq(cudaMemcpy2DAsync(d, 16, h.data(), 40, 40, 2, cudaMemcpyHostToDevice, nullptr),
                   cudaErrorInvalidPitchValue);
  ck_assert_int_eq(cudaFree(d + 1), cudaErrorInvalidValue);
  ck_assert_int_eq(cudaFree(d), cudaSuccess);
  ck_assert_int_eq(cudaFree(d), cudaErrorInvalidValue);  // twice
  ck_assert_int_eq(cudaMemcpy(d, h.data(), 4, cudaMemcpyHostToDevice), cudaErrorInvalidValue);  // freed
  ck_assert_int_eq(cudaGetLastError(), cudaErrorInvalidValue);
  void* pinned;
  ck_assert_int_eq(cudaMallocHost(&pinned, 64), cudaSuccess);
  ck_assert_int_eq(cudaFreeHost(pinned), cudaSuccess);
  ck_assert_int_eq(cudaFreeHost(pinned), cudaErrorInvalidValue);
  cudaGetLastError();
  int count = 0;
  cudaDeviceProp prop;
  ck_assert_int_eq(cudaGetDeviceCount(&count), cudaSuccess);
  ck_assert_int_eq(count, 1);
  ck_assert_int_eq(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  ck_assert_int_eq(prop.major, 9);
  ck_assert_int_eq(prop.warpSize, 32);
  ck_assert_int_eq(cudaSetDevice(1), cudaErrorInvalidDevice);
  cudaGetLastError();
}
END_TEST

START_TEST(test_graph_capture_and_replay) {
  const int n = 300;
  std::vector<float> hx(n), hy(n);
  for (int i = 0; i < n; ++i) {
    hx[i] = static_cast<float>(i);
    hy[i] = 1.0f;
  }
  float* dx = device_floats(hx);
  float* dy = device_floats(hy);
  float* dz;
  cudaMalloc(&dz, n * sizeof(float));
  cudaMemset(dz, 0, n * sizeof(float));
  cudaStream_t s;
  cudaStreamCreate(&s);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  ck_assert_int_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  cudaStreamCaptureStatus status;
  ck_assert_int_eq(cudaStreamIsCapturing(s, &status), cudaSuccess);
  ck_assert_int_eq(status, cudaStreamCaptureStatusActive);
  float a = 2.0f;
  cudaEventRecord(e0, s);
  VLM_LAUNCH(axpy_kernel, (n + 127) / 128, 128, 0, s)(a, dx, dy, n);  // y = 2x + y
  a = 100.0f;  // the captured launch keeps the value at capture time
  ck_assert_int_eq(cudaMemcpyAsync(dz, dy, n * sizeof(float), cudaMemcpyDeviceToDevice, s), cudaSuccess);
  ck_assert_int_eq(cudaMemsetAsync(dy, 0, sizeof(float), s), cudaSuccess);
  cudaEventRecord(e1, s);
  ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
  // A synchronous copy while a global-mode capture is active is illegal, as on a GPU.
  std::vector<float> z(n);
  ck_assert_int_eq(cudaMemcpy(z.data(), dz, n * sizeof(float), cudaMemcpyDeviceToHost),
                   cudaErrorStreamCaptureUnsupported);
  cudaGraph_t graph;
  ck_assert_int_eq(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
  cudaGetLastError();
  // Capture again, cleanly this time.
  a = 2.0f;
  ck_assert_int_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  cudaEventRecord(e0, s);
  VLM_LAUNCH(axpy_kernel, (n + 127) / 128, 128, 0, s)(a, dx, dy, n);  // y = 2x + y
  a = 100.0f;  // the captured launch keeps the value at capture time
  ck_assert_int_eq(cudaMemcpyAsync(dz, dy, n * sizeof(float), cudaMemcpyDeviceToDevice, s), cudaSuccess);
  ck_assert_int_eq(cudaMemsetAsync(dy, 0, sizeof(float), s), cudaSuccess);
  cudaEventRecord(e1, s);
  ck_assert_int_eq(cudaGetLastError(), cudaSuccess);
  ck_assert_int_eq(cudaStreamEndCapture(s, &graph), cudaSuccess);
  // Nothing ran during capture.
  z = host_floats(dz, n);
  for (float v : z) ck_assert_float_eq(v, 0.0f);
  std::vector<float> y0 = host_floats(dy, n);
  for (float v : y0) ck_assert_float_eq(v, 1.0f);
  cudaGraphExec_t exec;
  ck_assert_int_eq(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ck_assert_int_eq(cudaGraphDestroy(graph), cudaSuccess);  // the executable graph stays valid
  for (int replay = 1; replay <= 2; ++replay) {
    ck_assert_int_eq(cudaGraphLaunch(exec, s), cudaSuccess);
    ck_assert_int_eq(cudaStreamSynchronize(s), cudaSuccess);
    z = host_floats(dz, n);
    std::vector<float> y = host_floats(dy, n);
    // Replay r: y[0] was zeroed after the previous replay, y[i>0] accumulated r times.
    for (int i = 0; i < n; ++i) {
      float expect_y_before_memset = (i == 0 ? (replay == 1 ? 1.0f : 0.0f) : 1.0f + 2.0f * i * (replay - 1)) + 2.0f * i;
      ck_assert_float_eq(z[i], expect_y_before_memset);
      ck_assert_float_eq(y[i], i == 0 ? 0.0f : expect_y_before_memset);
    }
  }
  float ms = -1;
  ck_assert_int_eq(cudaEventElapsedTime(&ms, e0, e1), cudaSuccess);
  ck_assert(ms >= 0.0f);
  // Synchronising a capturing stream is illegal and invalidates the capture.
  ck_assert_int_eq(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  ck_assert_int_eq(cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
  ck_assert_int_eq(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
  ck_assert_int_eq(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal), cudaErrorStreamCaptureUnsupported);
  cudaGetLastError();
  cudaGraphExecDestroy(exec);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(s);
  cudaFree(dx);
  cudaFree(dy);
  cudaFree(dz);
}
END_TEST

// ---- cuBLAS ------------------------------------------------------------------------------------------
uint16_t bf16_bits(float f) { return __float2bfloat16(f).__x; }
uint16_t half_bits(float f) { return __float2half(f).__x; }

struct TypedMatrix {
  cudaDataType_t type;
  std::vector<float> values;  // exactly representable in `type`
  std::vector<unsigned char> bytes;
};
size_t elem_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
float representable(float v, cudaDataType_t t) {
  if (t == CUDA_R_16BF) return __bfloat162float(__float2bfloat16(v));
  if (t == CUDA_R_16F) return __half2float(__float2half(v));
  return v;
}
TypedMatrix make_matrix(size_t count, cudaDataType_t t, unsigned seed) {
  TypedMatrix m{t, std::vector<float>(count), std::vector<unsigned char>(count * elem_size(t))};
  unsigned s = seed;
  for (size_t i = 0; i < count; ++i) {
    s = s * 1664525u + 1013904223u;
    float v = representable(static_cast<float>((s >> 8) % 2001) / 1000.0f - 1.0f, t);
    m.values[i] = v;
    if (t == CUDA_R_32F) memcpy(&m.bytes[i * 4], &v, 4);
    else {
      uint16_t b = t == CUDA_R_16BF ? bf16_bits(v) : half_bits(v);
      memcpy(&m.bytes[i * 2], &b, 2);
    }
  }
  return m;
}
void* upload(const TypedMatrix& m) {
  void* d;
  ck_assert_int_eq(cudaMalloc(&d, m.bytes.size()), cudaSuccess);
  ck_assert_int_eq(cudaMemcpy(d, m.bytes.data(), m.bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}
std::vector<float> download(const void* d, size_t count, cudaDataType_t t) {
  std::vector<unsigned char> bytes(count * elem_size(t));
  ck_assert_int_eq(cudaMemcpy(bytes.data(), d, bytes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) {
    if (t == CUDA_R_32F) memcpy(&out[i], &bytes[i * 4], 4);
    else {
      uint16_t b;
      memcpy(&b, &bytes[i * 2], 2);
      out[i] = t == CUDA_R_16BF ? __bfloat162float(__ushort_as_bfloat16(b)) : __half2float(__ushort_as_half(b));
    }
  }
  return out;
}
float round_like_compute(float v, cublasComputeType_t ct) {
  if (ct == CUBLAS_COMPUTE_32F_FAST_16BF) return representable(v, CUDA_R_16BF);
  if (ct == CUBLAS_COMPUTE_32F_FAST_16F) return representable(v, CUDA_R_16F);
  return v;
}

struct GemmCase {
  cudaDataType_t ab, c;
  cublasComputeType_t compute;
};

// Runs one (strided batched) GEMM and returns the max error relative to the output type's tolerance.
double run_gemm_case(cublasHandle_t h, const GemmCase& gc, cublasOperation_t ta, cublasOperation_t tb, int batch,
                     double* max_abs) {
  const int m = 13, n = 7, k = 19;
  const int arows = ta == CUBLAS_OP_N ? m : k, acols = ta == CUBLAS_OP_N ? k : m;
  const int brows = tb == CUBLAS_OP_N ? k : n, bcols = tb == CUBLAS_OP_N ? n : k;
  const int lda = arows + 3, ldb = brows + 1, ldc = m + 2;
  const long long sA = static_cast<long long>(lda) * acols + 5, sB = static_cast<long long>(ldb) * bcols + 2,
                  sC = static_cast<long long>(ldc) * n + 7;
  TypedMatrix A = make_matrix(sA * batch, gc.ab, 1), B = make_matrix(sB * batch, gc.ab, 2),
              C = make_matrix(sC * batch, gc.c, 3);
  void *dA = upload(A), *dB = upload(B), *dC = upload(C);
  const float alpha = 1.5f, beta = 0.5f;
  cublasStatus_t st = batch == 1 ? cublasGemmEx(h, ta, tb, m, n, k, &alpha, dA, gc.ab, lda, dB, gc.ab, ldb, &beta, dC,
                                                gc.c, ldc, gc.compute, CUBLAS_GEMM_DEFAULT)
                                 : cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, &alpha, dA, gc.ab, lda, sA, dB,
                                                              gc.ab, ldb, sB, &beta, dC, gc.c, ldc, sC, batch,
                                                              gc.compute, CUBLAS_GEMM_DEFAULT);
  ck_assert_int_eq(st, CUBLAS_STATUS_SUCCESS);
  std::vector<float> got = download(dC, sC * batch, gc.c);
  double worst = 0;
  for (int b = 0; b < batch; ++b)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < ldc; ++i) {
        size_t ci = b * sC + i + static_cast<size_t>(j) * ldc;
        if (i >= m) {  // padding rows between columns must be untouched
          ck_assert_float_eq(got[ci], C.values[ci]);
          continue;
        }
        double acc = 0;
        for (int p = 0; p < k; ++p) {
          float a = A.values[b * sA + (ta == CUBLAS_OP_N ? i + p * lda : p + i * lda)];
          float bb = B.values[b * sB + (tb == CUBLAS_OP_N ? p + j * ldb : j + p * ldb)];
          acc += double(round_like_compute(a, gc.compute)) * round_like_compute(bb, gc.compute);
        }
        double ref = alpha * acc + beta * C.values[ci];
        double diff = std::fabs(got[ci] - ref);
        *max_abs = std::max(*max_abs, diff);
        // fp32 output: accumulation-order error only; 16-bit outputs: one rounding (half an ulp) of the type.
        double tol = gc.c == CUDA_R_32F ? 1e-5 * (1 + std::fabs(ref))
                                        : (gc.c == CUDA_R_16BF ? 0.5 / 128 : 0.5 / 1024) * std::fabs(ref) * 1.01 + 1e-6;
        worst = std::max(worst, diff / tol);
      }
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(dC);
  return worst;
}

START_TEST(test_cublas_gemm_all_patterns) {
  cublasHandle_t h;
  ck_assert_int_eq(cublasCreate(&h), CUBLAS_STATUS_SUCCESS);
  cudaStream_t s;
  cudaStreamCreate(&s);
  ck_assert_int_eq(cublasSetStream(h, s), CUBLAS_STATUS_SUCCESS);
  ck_assert_int_eq(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
  const GemmCase cases[] = {{CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F},
                            {CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F},
                            {CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F},
                            {CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F},
                            {CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F},
                            {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_16BF},
                            {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_16F}};
  const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T};
  for (const GemmCase& gc : cases)
    for (cublasOperation_t ta : ops)
      for (cublasOperation_t tb : ops)
        for (int batch : {1, 3}) {
          double max_abs = 0;
          double worst = run_gemm_case(h, gc, ta, tb, batch, &max_abs);
          printf("gemm ab=%d c=%d compute=%d ta=%d tb=%d batch=%d: max abs diff %.3g (%.2f of tolerance)\n", gc.ab,
                 gc.c, gc.compute, ta, tb, batch, max_abs, worst);
          ck_assert_msg(worst <= 1.0, "gemm outside tolerance: %.3f", worst);
        }
  // Invalid arguments.
  float alpha = 1, beta = 0;
  void* d;
  cudaMalloc(&d, 4096);
  ck_assert_int_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8, 8, &alpha, d, CUDA_R_32F, 7, d, CUDA_R_32F, 8, &beta,
                                d, CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   CUBLAS_STATUS_INVALID_VALUE);  // lda < m
  ck_assert_int_eq(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, 8, 8, 4, &alpha, d, CUDA_R_32F, 3, d, CUDA_R_32F, 8, &beta,
                                d, CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   CUBLAS_STATUS_INVALID_VALUE);  // lda < k for op T
  ck_assert_int_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, 8, 8, 8, &alpha, d, CUDA_R_32F, 8, d, CUDA_R_32F, 7, &beta,
                                d, CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   CUBLAS_STATUS_INVALID_VALUE);  // ldb < n for op T
  ck_assert_int_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8, 8, &alpha, d, CUDA_R_32F, 8, d, CUDA_R_32F, 8, &beta,
                                d, CUDA_R_32F, 7, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   CUBLAS_STATUS_INVALID_VALUE);  // ldc < m
  ck_assert_int_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 8, 8, &alpha, d, CUDA_R_32F, 8, d, CUDA_R_32F, 8,
                                &beta, d, CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   CUBLAS_STATUS_INVALID_VALUE);
  ck_assert_int_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8, 8, &alpha, d, CUDA_R_32F, 8, d, CUDA_R_32F, 8, &beta,
                                d, CUDA_R_16BF, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   CUBLAS_STATUS_NOT_SUPPORTED);  // fp32 inputs cannot produce bf16
  ck_assert_int_eq(cublasGemmEx(nullptr, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8, 8, &alpha, d, CUDA_R_32F, 8, d, CUDA_R_32F, 8,
                                &beta, d, CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   CUBLAS_STATUS_NOT_INITIALIZED);
  // beta == 0: C is not read, so never-written (NaN-poisoned) C does not leak into the result.
  float* dC;
  cudaMalloc(&dC, 4 * sizeof(float));
  std::vector<float> ones(4, 1.0f);
  cudaMemcpy(d, ones.data(), 16, cudaMemcpyHostToDevice);
  ck_assert_int_eq(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &alpha, d, CUDA_R_32F, 2, d, CUDA_R_32F, 2, &beta,
                                dC, CUDA_R_32F, 2, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   CUBLAS_STATUS_SUCCESS);
  std::vector<float> c = host_floats(dC, 4);
  for (float v : c) ck_assert_float_eq(v, 2.0f);
  cudaFree(dC);
  cudaFree(d);
  cublasDestroy(h);
  cudaStreamDestroy(s);
}
END_TEST

START_TEST(test_cublaslt_bias_epilogue) {
  // D(m x n, bf16) = W^T(m x k) * X(k x n) + bias(m): the linear-layer pattern, with W stored k x m.
  const int m = 24, n = 5, k = 33;
  TypedMatrix W = make_matrix(k * m, CUDA_R_16BF, 11), X = make_matrix(k * n, CUDA_R_16BF, 12),
              bias = make_matrix(m, CUDA_R_16BF, 13);
  void *dW = upload(W), *dX = upload(X), *dBias = upload(bias), *dD;
  cudaMalloc(&dD, m * n * 2);
  cublasLtHandle_t lt;
  ck_assert_int_eq(cublasLtCreate(&lt), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulDesc_t desc;
  ck_assert_int_eq(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
  cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
  ck_assert_int_eq(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof opT),
                   CUBLAS_STATUS_SUCCESS);
  ck_assert_int_eq(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof opN),
                   CUBLAS_STATUS_SUCCESS);
  ck_assert_int_eq(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep),
                   CUBLAS_STATUS_SUCCESS);
  ck_assert_int_eq(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &dBias, sizeof dBias),
                   CUBLAS_STATUS_SUCCESS);
  cublasLtMatrixLayout_t lw, lx, ld;
  ck_assert_int_eq(cublasLtMatrixLayoutCreate(&lw, CUDA_R_16BF, k, m, k), CUBLAS_STATUS_SUCCESS);
  ck_assert_int_eq(cublasLtMatrixLayoutCreate(&lx, CUDA_R_16BF, k, n, k), CUBLAS_STATUS_SUCCESS);
  ck_assert_int_eq(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, m, n, m), CUBLAS_STATUS_SUCCESS);
  float alpha = 1.0f, beta = 0.0f;
  ck_assert_int_eq(cublasLtMatmul(lt, desc, &alpha, dW, lw, dX, lx, &beta, dD, ld, dD, ld, nullptr, nullptr, 0, nullptr),
                   CUBLAS_STATUS_SUCCESS);
  std::vector<float> got = download(dD, m * n, CUDA_R_16BF);
  double max_abs = 0, worst = 0;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      double acc = bias.values[i];
      for (int p = 0; p < k; ++p) acc += double(W.values[p + i * k]) * X.values[p + j * k];
      double diff = std::fabs(got[i + j * m] - acc);
      max_abs = std::max(max_abs, diff);
      worst = std::max(worst, diff / (0.5 / 128 * std::fabs(acc) * 1.01 + 1e-6));
    }
  printf("cublasLt bias epilogue: max abs diff %.3g (%.2f of tolerance)\n", max_abs, worst);
  ck_assert(worst <= 1.0);
  // Mismatched shapes are rejected.
  cublasLtMatrixLayout_t bad;
  cublasLtMatrixLayoutCreate(&bad, CUDA_R_16BF, k + 1, n, k + 1);
  ck_assert_int_eq(cublasLtMatmul(lt, desc, &alpha, dW, lw, dX, bad, &beta, dD, ld, dD, ld, nullptr, nullptr, 0, nullptr),
                   CUBLAS_STATUS_INVALID_VALUE);
  for (auto l : {lw, lx, ld, bad}) cublasLtMatrixLayoutDestroy(l);
  cublasLtMatmulDescDestroy(desc);
  cublasLtDestroy(lt);
  for (void* p : {dW, dX, dBias, dD}) cudaFree(p);
}
END_TEST

// ---- bad kernels in child processes ----------------------------------------------------------------
int run_bad_case(const std::string& which) {
  float* d;
  cudaMalloc(&d, 64 * sizeof(float));
  cudaMemset(d, 0, 64 * sizeof(float));
  float* out;
  cudaMalloc(&out, 64 * sizeof(float));
  cudaMemset(out, 0, 64 * sizeof(float));
  std::vector<float> h(64);
  if (which == "divergent-barrier") {
    VLM_LAUNCH(divergent_barrier_kernel, 1, 32, 0, nullptr)(out);
  } else if (which == "bad-mask") {
    VLM_LAUNCH(bad_mask_kernel, 1, 48, 0, nullptr)(reinterpret_cast<int*>(out));
  } else if (which == "oob-write") {
    VLM_LAUNCH(oob_write_kernel, 1, 65, 0, nullptr)(d, 64);
  } else if (which == "oob-read") {
    VLM_LAUNCH(oob_read_kernel, 1, 65, 0, nullptr)(d, out, 64);
    cudaMemcpy(h.data(), out, sizeof(float) * 64, cudaMemcpyDeviceToHost);
  } else if (which == "uninit-read") {
    float* never_written;
    cudaMalloc(&never_written, 64 * sizeof(float));
    VLM_LAUNCH(uninit_read_kernel, 1, 64, 0, nullptr)(never_written, out);
    cudaMemcpy(h.data(), out, sizeof(float) * 64, cudaMemcpyDeviceToHost);
    uint32_t bits;
    memcpy(&bits, &h[0], 4);
    printf("uninit result bits 0x%08x\n", bits);
    cudaFree(never_written);
  } else if (which == "good") {
    VLM_LAUNCH(axpy_kernel, 1, 64, 0, nullptr)(2.0f, d, out, 64);
    cudaMemcpy(h.data(), out, sizeof(float) * 64, cudaMemcpyDeviceToHost);
  } else {
    return 2;
  }
  cudaFree(d);
  cudaFree(out);
  return 0;
}

ProcessResult run_child(const std::vector<std::string>& prefix, const std::string& which) {
  std::vector<std::string> argv = prefix;
  argv.push_back("/proc/self/exe");
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  ck_assert(len > 0);
  self[len] = 0;
  argv.back() = self;
  argv.push_back("--bad");
  argv.push_back(which);
  return run_process(argv);
}

void expect_fault(const ProcessResult& r, const char* text) {
  printf("child exit %d signal %d, stderr: %.300s\n", r.exit_code, r.signal, r.err.c_str());
  ck_assert_msg(r.exit_code != 0, "bad kernel was not caught");
  ck_assert_msg(r.err.find(text) != std::string::npos, "expected '%s' in stderr", text);
}

START_TEST(test_divergence_is_fatal) {
  expect_fault(run_child({}, "divergent-barrier"), "divergent barrier");
  expect_fault(run_child({}, "bad-mask"), "do not exist in this partial warp");
}
END_TEST

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer build: the guard zones are poisoned, so the out-of-bounds read stops at once.
// Valgrind cannot run ASan binaries; the uninitialised read shows as the 0xFF poison (a NaN).
START_TEST(test_memory_errors_are_caught) {
  expect_fault(run_child({}, "oob-read"), "AddressSanitizer");
  expect_fault(run_child({}, "oob-write"), "AddressSanitizer");
  ProcessResult r = run_child({}, "uninit-read");
  printf("uninit child stdout: %s\n", r.out.c_str());
  ck_assert_int_eq(r.exit_code, 0);
  ck_assert(r.out.find("0xffffffff") != std::string::npos);
}
END_TEST
#else
// Plain build: the guard check after the launch catches the out-of-bounds write; valgrind catches the
// out-of-bounds read (guards are no-access) and the uninitialised read (fresh memory is undefined and
// device->host copies are checked), while a correct kernel runs clean under valgrind.
START_TEST(test_memory_errors_are_caught) {
  expect_fault(run_child({}, "oob-write"), "out-of-bounds write");
  const std::vector<std::string> vg = {"/usr/bin/valgrind", "--error-exitcode=99", "-q"};
  ProcessResult good = run_child(vg, "good");
  printf("valgrind good: exit %d, stderr: %.300s\n", good.exit_code, good.err.c_str());
  ck_assert_int_eq(good.exit_code, 0);
  ProcessResult uninit = run_child(vg, "uninit-read");
  expect_fault(uninit, "Uninitialised");
  ck_assert_int_eq(uninit.exit_code, 99);
  ProcessResult oob = run_child(vg, "oob-read");
  expect_fault(oob, "Invalid read");
  ck_assert_int_eq(oob.exit_code, 99);
}
END_TEST
#endif

}  // namespace

#include "check_main.h"

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--bad") return run_bad_case(argv[2]);
  return vlm_check_main(argc, argv, "emu", {
    {"emu", 120, {
      test_block_reduction_odd_size,
      test_warp_shuffles_and_votes,
      test_atomics,
      test_dp4a,
      test_dynamic_shared_and_limits,
      test_3d_grid_covers_every_thread_once,
      test_invalid_launches,
      test_memcpy_and_free_errors,
      test_graph_capture_and_replay,
      test_cublas_gemm_all_patterns,
      test_cublaslt_bias_epilogue,
      test_divergence_is_fatal,
      test_memory_errors_are_caught,
    }},
  });
}
