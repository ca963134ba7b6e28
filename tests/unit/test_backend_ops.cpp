// test_backend_ops.cpp: the op table (model_runtime/backend/op_suite.h) on
// every backend: each cpu kernel path this CPU has (scalar, AVX2, AVX-512,
// AVX-512 with vdpbf16ps), the cpu matmul with 1 and 3 threads and with
// exact f32 activations, and cuda-emu (the CUDA kernels and cuBLAS calls on
// the SIMT emulator) with its own kernel choice and with each other kernel
// forced onto every shape (matmul through cuBLAS with the bf16/f16
// conversion and the bias kernel, Q8/Q4 weights dequantized in small chunks; attention through the prefill kernel only,
// or the decode kernel only, unsplit). Every case against the reference;
// tolerances per op are stated in op_suite.h. One Check test per target,
// one line per case.
#include "backend/backend_cpu.h"
#include "backend/op_suite.h"
#include "backend_cuda.h"

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <check.h>

using namespace vlm;

namespace {

struct Target {
    std::string label;
    std::vector<Op> ops;  // empty: every op
    std::unique_ptr<Backend> backend;
    std::string skip;     // why this machine cannot run it
};

std::unique_ptr<Backend> cpu_path(CpuIsa isa, bool bf16_dot, int threads, std::string &skip)
{
    BackendOptions opt;
    opt.n_threads = threads;
    std::string err;
    if (bf16_dot && !cpu_has_avx512_bf16()) {
        skip = "this CPU lacks avx512_bf16";
        return nullptr;
    }
    auto b = make_cpu_backend_isa(opt, isa, bf16_dot, err);
    if (!b) skip = err;
    return b;
}

const int kTargets = 10;

Target target(int i)
{
    Target t;
    std::string err;
    const std::vector<Op> matmul = {Op::Matmul}, attention = {Op::Attention};
    switch (i) {
    case 0: t.label = "cpu/scalar"; t.backend = cpu_path(CpuIsa::Scalar, false, 2, t.skip); break;
    case 1: t.label = "cpu/avx2"; t.backend = cpu_path(CpuIsa::Avx2, false, 2, t.skip); break;
    case 2: t.label = "cpu/avx512"; t.backend = cpu_path(CpuIsa::Avx512, false, 2, t.skip); break;
    case 3: t.label = "cpu/avx512+bf16dot"; t.backend = cpu_path(CpuIsa::Avx512, true, 2, t.skip); break;
    case 4:
    case 5:
        t.label = std::string("cpu/") + cpu_isa_name(cpu_best_isa()) + (i == 4 ? " 1 thread" : " 3 threads");
        t.ops = matmul;
        t.backend = cpu_path(cpu_best_isa(), cpu_has_avx512_bf16(), i == 4 ? 1 : 3, t.skip);
        break;
    case 6: {
        t.label = "cpu exact_f32_activations";
        t.ops = matmul;
        BackendOptions opt;
        opt.n_threads = 2;
        opt.exact_f32_activations = true;
        t.backend = make_cpu_backend(opt, err);
        break;
    }
    case 7: t.label = "cuda-emu"; t.backend = make_cuda_backend(true, BackendOptions{}, err); break;
    case 8: {
        t.label = "cuda-emu cublas+prefill";
        t.ops = {Op::Matmul, Op::Attention};
        CudaPaths p;
        p.gemv_max_rows = 0;    // every matmul: convert.cu + bias_rows.cu + cublasGemmEx
        p.dequant_max_weights = 1000;  // Q8/Q4: dequant_quant.cu + GEMM over several chunks of rows
        p.decode_max_rows = 0;  // every attention: attention_prefill.cu
        t.backend = make_cuda_backend_paths(true, p, err);
        break;
    }
    case 9: {
        t.label = "cuda-emu decode";
        t.ops = attention;
        CudaPaths p;
        p.decode_max_rows = 65535;  // every attention: attention_decode.cu, one block per (head, row)
        p.split_kv = false;
        t.backend = make_cuda_backend_paths(true, p, err);
        break;
    }
    }
    if (!t.backend && t.skip.empty()) ck_abort_msg("%s: %s", t.label.c_str(), err.c_str());
    return t;
}

void run_target(Target t)
{
    if (!t.backend) {
        std::printf("[%s] SKIP: %s\n", t.label.c_str(), t.skip.c_str());
        return;
    }
    OpCases cases = op_suite_cases();
    SuiteTotals tot = run_op_suite(*t.backend, cases, t.label, t.ops, true, stdout);
    std::fflush(stdout);
    ck_assert_msg(tot.fail == 0, "%s: %d of %d cases failed", t.label.c_str(), tot.fail,
                  tot.pass + tot.fail + tot.skip);
    ck_assert_int_gt(tot.pass, 0);
}

}  // namespace

START_TEST(every_case_on_target)
{
    run_target(target(_i));
}
END_TEST

START_TEST(every_op_has_cases)
{
    OpCases cases = op_suite_cases();
    std::set<Op> seen;
    std::set<std::string> names;
    for (const auto &c : cases) {
        seen.insert(c->op());
        ck_assert_msg(names.insert(c->name()).second, "two cases named \"%s\"", c->name().c_str());
    }
    const Op all[] = {Op::Matmul, Op::RmsNorm,  Op::LayerNorm,  Op::Add,       Op::SiluMul,         Op::Gelu,
                      Op::Embed,  Op::RopeText, Op::RopeVision, Op::Attention, Op::PosEmbedBicubic, Op::Copy};
    for (Op op : all) ck_assert_msg(seen.count(op), "no case for %s", op_name(op));
    std::printf("%zu cases over %zu ops\n", cases.size(), seen.size());
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "backend_ops", {
        {"vs_reference", 1200, {
            every_op_has_cases,
            {every_case_on_target, 0, kTargets},
        }},
    });
}
