// test_cuda_quant.cpp: the CUDA backend's Q8/Q4 matmul (kernels/gemv_quant.cu,
// kernels/dequant_quant.cu) beyond what the op table checks, on cuda-emu:
//  - a weight whose base is not 16-byte aligned (adopt_weight never makes
//    one, but a Tensor may point anywhere the checked front accepts) runs
//    the byte-wise load paths and gives bit-identical results;
//  - the prefill path (n > 16: w dequantized to bf16, x rounded to bf16,
//    cuBLAS) is not core/quant.h's product; its distance from
//    ref_matmul_quant is measured and held to the bound that follows from
//    its roundings (x to int8 blocks in the definition: <= scale_x / 2 per
//    element; x and w to bf16 here: <= 2^-9 relative each), while the GEMV
//    (n <= 16) matches ref_matmul_quant to float-summation error.
#include "test_rng.h"
#include "backend_cuda.h"
#include "core/cpu_ops_ref.h"
#include "core/quant.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include <check.h>

using namespace vlm;

namespace {

// A quantized (m, k) weight made from random bf16 values, on the host.
struct HostQuant {
    std::vector<uint8_t> bytes;
    Tensor t;
    HostQuant(DType dt, int64_t m, int64_t k, Rng &rng)
    {
        std::vector<uint16_t> src(size_t(m * k));
        for (auto &v : src) v = f32_to_bf16(0.5f * rng.uniform());
        bytes.assign(quant_tensor_bytes(dt, m, k), 0);
        t = Tensor{bytes.data(), dt, m, k, 0};
        quant_set_layout(t);
        quantize_rows(src.data(), DType::BF16, k, t, 0, m);
    }
};

std::unique_ptr<Backend> cuda_emu(int64_t gemv_max_rows)
{
    CudaPaths p;
    p.gemv_max_rows = gemv_max_rows;
    p.dequant_max_weights = 500;  // several chunks on the cuBLAS path
    std::string err;
    auto b = make_cuda_backend_paths(true, p, err);
    ck_assert_msg(b != nullptr, "%s", err.c_str());
    return b;
}

// y = x w^T on `b` with w placed `offset` bytes into a device allocation.
std::vector<float> run(Backend &b, const HostQuant &w, const std::vector<float> &x, int64_t n, size_t offset)
{
    const int64_t m = w.t.rows, k = w.t.cols;
    const size_t wbytes = quant_tensor_bytes(w.t.dtype, m, k);
    DeviceBuffer raw(b, DType::F32, 1, int64_t((wbytes + offset + 3) / 4));
    Tensor wd{static_cast<char *>(raw.t.data) + offset, w.t.dtype, m, k, 0};
    quant_set_layout(wd);
    b.upload(wd.data, w.bytes.data(), wbytes);
    DeviceBuffer xd(b, DType::F32, n, k), yd(b, DType::F32, n, m);
    b.upload(xd.t.data, x.data(), x.size() * sizeof(float));
    b.matmul(xd.t, wd, nullptr, yd.t);
    std::vector<float> y(size_t(n * m));
    b.download(y.data(), yd.t.data, y.size() * sizeof(float));
    ck_assert_msg(!b.failed(), "%s", b.fault_message().c_str());
    return y;
}

}  // namespace

START_TEST(unaligned_weight_base_gives_the_same_numbers)
{
    for (DType dt : {DType::Q8, DType::Q4})
        for (int64_t gemv_rows : {int64_t(16), int64_t(0)}) {  // gemv_quant.cu; dequant_quant.cu + cuBLAS
            auto b = cuda_emu(gemv_rows);
            Rng rng{uint64_t(dt == DType::Q8 ? 1 : 2)};
            const int64_t n = 5, m = 19, k = 80;
            HostQuant w(dt, m, k, rng);
            std::vector<float> x(size_t(n * k));
            for (auto &v : x) v = 2.0f * rng.uniform();
            const std::vector<float> aligned = run(*b, w, x, n, 0), unaligned = run(*b, w, x, n, 4);
            ck_assert_msg(std::memcmp(aligned.data(), unaligned.data(), aligned.size() * sizeof(float)) == 0,
                          "%s gemv_max_rows %lld: a weight at base + 4 gives other numbers", dtype_name(dt),
                          (long long)gemv_rows);
        }
}
END_TEST

START_TEST(prefill_path_within_its_rounding_of_the_definition)
{
    auto b = cuda_emu(16);
    for (DType dt : {DType::Q8, DType::Q4}) {
        Rng rng{uint64_t(dt == DType::Q8 ? 3 : 4)};
        const int64_t m = 24, k = 200;
        HostQuant w(dt, m, k, rng);
        for (int64_t n : {int64_t(16), int64_t(40)}) {
            std::vector<float> x(size_t(n * k));
            for (auto &v : x) v = 3.0f * rng.uniform();
            const std::vector<float> got = run(*b, w, x, n, 0);
            std::vector<float> ref(size_t(n * m));
            Tensor xt{x.data(), DType::F32, n, k, k}, yt{ref.data(), DType::F32, n, m, m};
            ref_matmul(xt, w.t, nullptr, yt);  // ref_matmul_quant
            double worst = 0, max_abs = 0;
            for (int64_t r = 0; r < n; ++r) {
                // Per element of x: the definition's int8 rounding error (scale_x / 2, and
                // the float error of x * (127 / amax)) and the prefill path's bf16 one.
                std::vector<double> ex(static_cast<size_t>(k));
                for (int64_t c0 = 0; c0 < k; c0 += kQuantBlock) {
                    const int64_t len = std::min<int64_t>(kQuantBlock, k - c0);
                    int8_t q[32];
                    float sx;
                    quantize_x_block(&x[size_t(r * k + c0)], len, q, sx);
                    for (int64_t i = 0; i < len; ++i) ex[size_t(c0 + i)] = 0.5 * sx * (1 + 1e-4);
                }
                for (int64_t o = 0; o < m; ++o) {
                    double bound = 0, mag = 0;
                    for (int64_t c = 0; c < k; ++c) {
                        const double xv = std::fabs(x[size_t(r * k + c)]), wv = std::fabs(quant_elem(w.t, o, c));
                        mag += xv * wv;
                        if (n > 16) bound += wv * ex[size_t(c)] + xv * wv * (2 * std::ldexp(1.0, -9));
                    }
                    bound += 1e-5 * mag;  // float summation in either
                    const double d = std::fabs(double(got[size_t(r * m + o)]) - ref[size_t(r * m + o)]);
                    max_abs = std::max(max_abs, d);
                    worst = std::max(worst, d / bound);
                }
            }
            std::printf("%s n=%lld (%s): max |y - ref_matmul_quant| %.3g, %.3f of the bound\n", dtype_name(dt),
                        (long long)n, n > 16 ? "bf16 dequant + cuBLAS" : "gemv_quant", max_abs, worst);
            ck_assert_msg(worst <= 1.0, "%s n=%lld: %.3f of the bound", dtype_name(dt), (long long)n, worst);
            if (n > 16) ck_assert_msg(max_abs > 0, "the prefill path is expected to differ from the definition");
        }
    }
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "cuda_quant", {
        {"cuda_quant", 120, {
            unaligned_weight_base_gives_the_same_numbers,
            prefill_path_within_its_rounding_of_the_definition,
        }},
    });
}
