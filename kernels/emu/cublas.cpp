// cublas.cpp: cuBLAS GemmEx / GemmStridedBatchedEx / Sgemm and the cuBLASLt matmul on the CPU.
// Column-major, op(A) m x k, op(B) k x n, C m x n; products accumulated in double, the result
// alpha*AB + beta*C formed in fp32 and rounded once to the output type (C is not read when beta == 0,
// as cuBLAS). FAST_16BF / FAST_16F / FAST_TF32 round fp32 inputs as the tensor cores would. Operands
// outside device memory are an illegal address: the emulator faults. Leaves out: ROW-order Lt layouts.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../cuda_compat.h"
#include "emu_internal.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
};
struct cublasLtContext {};
struct cublasLtMatmulDescOpaque_t {
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaDataType_t scale = CUDA_R_32F;
  cublasOperation_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int64_t bias_batch_stride = 0;
  int bias_type = -1;
};
struct cublasLtMatrixLayoutOpaque_t {
  cudaDataType_t type = CUDA_R_32F;
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0;
  int order = CUBLASLT_ORDER_COL;
  int batch = 1;
  int64_t batch_stride = 0;
};
struct cublasLtMatmulPreferenceOpaque_t {};

namespace vlm::emu {
namespace {

size_t type_size(cudaDataType_t t) {
  switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_16BF:
    case CUDA_R_16F: return 2;
    default: return 0;
  }
}

float load(const void* p, cudaDataType_t t, size_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    case CUDA_R_16BF: return bf16_bits_to_float(static_cast<const uint16_t*>(p)[i]);
    default: return half_bits_to_float(static_cast<const uint16_t*>(p)[i]);
  }
}
void store(void* p, cudaDataType_t t, size_t i, float v) {
  switch (t) {
    case CUDA_R_32F: static_cast<float*>(p)[i] = v; break;
    case CUDA_R_16BF: static_cast<uint16_t*>(p)[i] = float_to_bf16_bits_rn(v); break;
    default: static_cast<uint16_t*>(p)[i] = float_to_half_bits_rn(v); break;
  }
}
float round_input(float v, cublasComputeType_t ct) {
  switch (ct) {
    case CUBLAS_COMPUTE_32F_FAST_16BF: return bf16_bits_to_float(float_to_bf16_bits_rn(v));
    case CUBLAS_COMPUTE_32F_FAST_16F: return half_bits_to_float(float_to_half_bits_rn(v));
    case CUBLAS_COMPUTE_32F_FAST_TF32: {
      uint32_t u;
      memcpy(&u, &v, 4);
      if ((u & 0x7fffffffu) < 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
      memcpy(&v, &u, 4);
      return v;
    }
    default: return v;
  }
}

struct GemmArgs {
  cublasOperation_t transa, transb;
  int m, n, k;
  float alpha, beta;
  const void* A; cudaDataType_t Atype; int64_t lda; int64_t strideA;
  const void* B; cudaDataType_t Btype; int64_t ldb; int64_t strideB;
  const void* C; cudaDataType_t Ctype; int64_t ldc; int64_t strideC;
  void* D; cudaDataType_t Dtype; int64_t ldd; int64_t strideD;
  int batch;
  cublasComputeType_t compute;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr; cudaDataType_t bias_type = CUDA_R_32F; int64_t bias_stride = 0;
};

// Type combinations cuBLAS accepts with 32F compute (A and B share a type).
bool supported(const GemmArgs& g) {
  bool fast = g.compute == CUBLAS_COMPUTE_32F_FAST_16BF || g.compute == CUBLAS_COMPUTE_32F_FAST_16F ||
              g.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  if (g.compute != CUBLAS_COMPUTE_32F && g.compute != CUBLAS_COMPUTE_32F_PEDANTIC && !fast) return false;
  if (g.Atype != g.Btype || g.Ctype != g.Dtype || type_size(g.Atype) == 0 || type_size(g.Ctype) == 0) return false;
  if (fast) return g.Atype == CUDA_R_32F && g.Ctype == CUDA_R_32F;
  if (g.Atype == CUDA_R_32F) return g.Ctype == CUDA_R_32F;
  return g.Ctype == g.Atype || g.Ctype == CUDA_R_32F;
}

// Bytes spanned by a column-major rows x cols matrix with leading dimension ld, over `batch` strides.
size_t span_bytes(int64_t rows, int64_t cols, int64_t ld, int64_t stride, int batch, cudaDataType_t t) {
  if (rows == 0 || cols == 0 || batch == 0) return 0;
  int64_t last = (cols - 1) * ld + rows - 1 + static_cast<int64_t>(batch - 1) * stride;
  return static_cast<size_t>(last + 1) * type_size(t);
}

void check_operand(const void* p, size_t bytes, const char* what, const char* api) {
  if (bytes && !device_range_ok(p, bytes))
    fault(std::string(api) + ": operand " + what + " (" + std::to_string(bytes) +
          " bytes) is not inside one device allocation (illegal address)");
}

float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

void run_gemm(const GemmArgs& g) {
  const size_t m = g.m, n = g.n, k = g.k;
  std::vector<float> a(m * k), bt(n * k);
  for (int b = 0; b < g.batch; ++b) {
    const int64_t oa = b * g.strideA, ob = b * g.strideB, oc = b * g.strideC, od = b * g.strideD;
    for (size_t i = 0; i < m; ++i)
      for (size_t p = 0; p < k; ++p) {
        size_t idx = g.transa == CUBLAS_OP_N ? i + p * g.lda : p + i * g.lda;
        a[i * k + p] = round_input(load(g.A, g.Atype, oa + idx), g.compute);
      }
    for (size_t j = 0; j < n; ++j)
      for (size_t p = 0; p < k; ++p) {
        size_t idx = g.transb == CUBLAS_OP_N ? p + j * g.ldb : j + p * g.ldb;
        bt[j * k + p] = round_input(load(g.B, g.Btype, ob + idx), g.compute);
      }
    for (size_t j = 0; j < n; ++j)
      for (size_t i = 0; i < m; ++i) {
        const float* ar = &a[i * k];
        const float* br = &bt[j * k];
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        size_t p = 0;
        for (; p + 4 <= k; p += 4) {
          s0 += double(ar[p]) * br[p];
          s1 += double(ar[p + 1]) * br[p + 1];
          s2 += double(ar[p + 2]) * br[p + 2];
          s3 += double(ar[p + 3]) * br[p + 3];
        }
        for (; p < k; ++p) s0 += double(ar[p]) * br[p];
        float v = g.alpha * static_cast<float>((s0 + s1) + (s2 + s3));
        if (g.beta != 0.0f) v += g.beta * load(g.C, g.Ctype, oc + i + j * g.ldc);
        if (g.epilogue & CUBLASLT_EPILOGUE_BIAS) v += load(g.bias, g.bias_type, b * g.bias_stride + i);
        if ((g.epilogue & ~CUBLASLT_EPILOGUE_BIAS) == CUBLASLT_EPILOGUE_RELU) v = v > 0.0f ? v : 0.0f;
        if ((g.epilogue & ~CUBLASLT_EPILOGUE_BIAS) == CUBLASLT_EPILOGUE_GELU) v = gelu_tanh(v);
        store(g.D, g.Dtype, od + i + j * g.ldd, v);
      }
  }
}

cublasStatus_t submit(const GemmArgs& g, cudaStream_t stream, const char* api) {
  const int64_t arows = g.transa == CUBLAS_OP_N ? g.m : g.k, acols = g.transa == CUBLAS_OP_N ? g.k : g.m;
  const int64_t brows = g.transb == CUBLAS_OP_N ? g.k : g.n, bcols = g.transb == CUBLAS_OP_N ? g.n : g.k;
  check_operand(g.A, g.k ? span_bytes(arows, acols, g.lda, g.strideA, g.batch, g.Atype) : 0, "A", api);
  check_operand(g.B, g.k ? span_bytes(brows, bcols, g.ldb, g.strideB, g.batch, g.Btype) : 0, "B", api);
  if (g.beta != 0.0f) check_operand(g.C, span_bytes(g.m, g.n, g.ldc, g.strideC, g.batch, g.Ctype), "C", api);
  check_operand(g.D, span_bytes(g.m, g.n, g.ldd, g.strideD, g.batch, g.Dtype), "C/D (output)", api);
  if (g.epilogue & CUBLASLT_EPILOGUE_BIAS)
    check_operand(g.bias, span_bytes(g.m, 1, g.m, g.bias_stride, g.batch, g.bias_type), "bias", api);
  if (g.m == 0 || g.n == 0 || g.batch == 0) return CUBLAS_STATUS_SUCCESS;
  cudaError_t e = enqueue(stream, api, [g] { run_gemm(g); });
  return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

cublasStatus_t gemm_common(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const void* alpha, const void* A, cudaDataType Atype, int lda, long long sA,
                           const void* B, cudaDataType Btype, int ldb, long long sB, const void* beta, void* C,
                           cudaDataType Ctype, int ldc, long long sC, int batch, cublasComputeType_t ct,
                           const char* api) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!valid_op(ta) || !valid_op(tb) || m < 0 || n < 0 || k < 0 || batch < 0 || !alpha || !beta)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k) || ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) ||
      ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  GemmArgs g{};
  g.transa = ta == CUBLAS_OP_C ? CUBLAS_OP_T : ta;  // real types: conjugate transpose == transpose
  g.transb = tb == CUBLAS_OP_C ? CUBLAS_OP_T : tb;
  g.m = m, g.n = n, g.k = k;
  g.alpha = *static_cast<const float*>(alpha);
  g.beta = *static_cast<const float*>(beta);
  g.A = A, g.Atype = Atype, g.lda = lda, g.strideA = sA;
  g.B = B, g.Btype = Btype, g.ldb = ldb, g.strideB = sB;
  g.C = C, g.Ctype = Ctype, g.ldc = ldc, g.strideC = sC;
  g.D = C, g.Dtype = Ctype, g.ldd = ldc, g.strideD = sC;
  g.batch = batch;
  g.compute = ct;
  if (!supported(g)) return CUBLAS_STATUS_NOT_SUPPORTED;
  return submit(g, h->stream, api);
}

}  // namespace
}  // namespace vlm::emu

using namespace vlm::emu;

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetStream(cublasHandle_t h, cudaStream_t* s) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!s) return CUBLAS_STATUS_INVALID_VALUE;
  *s = h->stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t* mode) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = h->math;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetPointerMode(cublasHandle_t h, cublasPointerMode_t mode) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void*, size_t) {
  return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
const char* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}
const char* cublasGetStatusString(cublasStatus_t s) { return cublasGetStatusName(s); }

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t ct, cublasGemmAlgo_t) {
  return gemm_common(h, ta, tb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype, ldc, 0, 1, ct,
                     "cublasGemmEx");
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                          int k, const void* alpha, const void* A, cudaDataType Atype, int lda,
                                          long long sA, const void* B, cudaDataType Btype, int ldb, long long sB,
                                          const void* beta, void* C, cudaDataType Ctype, int ldc, long long sC,
                                          int batch, cublasComputeType_t ct, cublasGemmAlgo_t) {
  return gemm_common(h, ta, tb, m, n, k, alpha, A, Atype, lda, sA, B, Btype, ldb, sB, beta, C, Ctype, ldc, sC, batch,
                     ct, "cublasGemmStridedBatchedEx");
}
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                           const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                           float* C, int ldc) {
  return gemm_common(h, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, 0, B, CUDA_R_32F, ldb, 0, beta, C, CUDA_R_32F,
                     ldc, 0, 1, h && h->math == CUBLAS_TF32_TENSOR_OP_MATH ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                          : CUBLAS_COMPUTE_32F,
                     "cublasSgemm");
}

// ---- cuBLASLt ------------------------------------------------------------------------------------------
cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
  if (!h) return CUBLAS_STATUS_INVALID_VALUE;
  *h = new cublasLtContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t ct, cudaDataType_t scale) {
  if (!d) return CUBLAS_STATUS_INVALID_VALUE;
  *d = new cublasLtMatmulDescOpaque_t;
  (*d)->compute = ct;
  (*d)->scale = scale;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  if (!d || !buf) return CUBLAS_STATUS_INVALID_VALUE;
  auto get32 = [&](int32_t* out) {
    if (size != 4) return false;
    memcpy(out, buf, 4);
    return true;
  };
  int32_t v = 0;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
      if (!get32(&v)) return CUBLAS_STATUS_INVALID_VALUE;
      d->transa = static_cast<cublasOperation_t>(v);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_TRANSB:
      if (!get32(&v)) return CUBLAS_STATUS_INVALID_VALUE;
      d->transb = static_cast<cublasOperation_t>(v);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      if (!get32(&v)) return CUBLAS_STATUS_INVALID_VALUE;
      d->epilogue = static_cast<cublasLtEpilogue_t>(v);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      if (size != sizeof(void*)) return CUBLAS_STATUS_INVALID_VALUE;
      memcpy(&d->bias, buf, sizeof(void*));
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE:
      if (size != 8) return CUBLAS_STATUS_INVALID_VALUE;
      memcpy(&d->bias_batch_stride, buf, 8);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
      if (!get32(&v)) return CUBLAS_STATUS_INVALID_VALUE;
      d->bias_type = v;
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
      if (!get32(&v)) return CUBLAS_STATUS_INVALID_VALUE;
      d->compute = static_cast<cublasComputeType_t>(v);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
      if (!get32(&v)) return CUBLAS_STATUS_INVALID_VALUE;
      d->scale = static_cast<cudaDataType_t>(v);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE:
      if (!get32(&v)) return CUBLAS_STATUS_INVALID_VALUE;
      return v == 0 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
  if (!l) return CUBLAS_STATUS_INVALID_VALUE;
  if (rows > (1u << 31) || cols > (1u << 31) || ld < 0) return CUBLAS_STATUS_INVALID_VALUE;
  *l = new cublasLtMatrixLayoutOpaque_t;
  (*l)->type = type;
  (*l)->rows = rows;
  (*l)->cols = cols;
  (*l)->ld = ld;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
  if (!l || !buf) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_ORDER:
      if (size != 4) return CUBLAS_STATUS_INVALID_VALUE;
      memcpy(&l->order, buf, 4);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
      if (size != 4) return CUBLAS_STATUS_INVALID_VALUE;
      memcpy(&l->batch, buf, 4);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
      if (size != 8) return CUBLAS_STATUS_INVALID_VALUE;
      memcpy(&l->batch_stride, buf, 8);
      return CUBLAS_STATUS_SUCCESS;
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  if (!p) return CUBLAS_STATUS_INVALID_VALUE;
  *p = new cublasLtMatmulPreferenceOpaque_t;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t, const void* buf, size_t) {
  return p && buf ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatmulPreference_t, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!d || requested < 1 || !results || !returned) return CUBLAS_STATUS_INVALID_VALUE;
  memset(&results[0], 0, sizeof results[0]);
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t Al, const void* B, cublasLtMatrixLayout_t Bl, const void* beta,
                              const void* C, cublasLtMatrixLayout_t Cl, void* D, cublasLtMatrixLayout_t Dl,
                              const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t stream) {
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!d || !Al || !Bl || !Cl || !Dl || !alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  if (Al->order != CUBLASLT_ORDER_COL || Bl->order != CUBLASLT_ORDER_COL || Cl->order != CUBLASLT_ORDER_COL ||
      Dl->order != CUBLASLT_ORDER_COL || d->scale != CUDA_R_32F)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (!valid_op(d->transa) || !valid_op(d->transb)) return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = d->transa != CUBLAS_OP_N, tb = d->transb != CUBLAS_OP_N;
  const uint64_t m = ta ? Al->cols : Al->rows, k = ta ? Al->rows : Al->cols;
  const uint64_t kb = tb ? Bl->cols : Bl->rows, n = tb ? Bl->rows : Bl->cols;
  if (k != kb || Cl->rows != m || Cl->cols != n || Dl->rows != m || Dl->cols != n) return CUBLAS_STATUS_INVALID_VALUE;
  for (auto* l : {Al, Bl, Cl, Dl})
    if (l->ld < static_cast<int64_t>(std::max<uint64_t>(1, l->rows))) return CUBLAS_STATUS_INVALID_VALUE;
  const int batch = Dl->batch;
  if (Al->batch != batch || Bl->batch != batch || Cl->batch != batch || batch < 1) return CUBLAS_STATUS_INVALID_VALUE;
  const int ep = d->epilogue;
  if (ep != CUBLASLT_EPILOGUE_DEFAULT && ep != CUBLASLT_EPILOGUE_RELU && ep != CUBLASLT_EPILOGUE_BIAS &&
      ep != CUBLASLT_EPILOGUE_RELU_BIAS && ep != CUBLASLT_EPILOGUE_GELU && ep != CUBLASLT_EPILOGUE_GELU_BIAS)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  GemmArgs g{};
  g.transa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  g.transb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  g.m = static_cast<int>(m), g.n = static_cast<int>(n), g.k = static_cast<int>(k);
  g.alpha = *static_cast<const float*>(alpha);
  g.beta = *static_cast<const float*>(beta);
  g.A = A, g.Atype = Al->type, g.lda = Al->ld, g.strideA = Al->batch_stride;
  g.B = B, g.Btype = Bl->type, g.ldb = Bl->ld, g.strideB = Bl->batch_stride;
  g.C = C, g.Ctype = Cl->type, g.ldc = Cl->ld, g.strideC = Cl->batch_stride;
  g.D = D, g.Dtype = Dl->type, g.ldd = Dl->ld, g.strideD = Dl->batch_stride;
  g.batch = batch;
  g.compute = d->compute;
  g.epilogue = static_cast<cublasLtEpilogue_t>(ep);
  if (ep & CUBLASLT_EPILOGUE_BIAS) {
    if (!d->bias) return CUBLAS_STATUS_INVALID_VALUE;
    g.bias = d->bias;
    g.bias_type = d->bias_type >= 0 ? static_cast<cudaDataType_t>(d->bias_type) : Dl->type;
    g.bias_stride = d->bias_batch_stride;
    if (type_size(g.bias_type) == 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (!supported(g)) return CUBLAS_STATUS_NOT_SUPPORTED;
  return submit(g, stream, "cublasLtMatmul");
}
