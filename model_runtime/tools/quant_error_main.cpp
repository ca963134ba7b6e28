// vlm-quant-error: how much the block-quantized formats (core/quant.h) lose on
// each weight matrix of a model. Opens a model directory (model.safetensors or
// a sharded index) or one .safetensors file, quantizes every 2-D float tensor
// (or only those named by --tensor) to Q8 and to Q4 with quantize_rows, and
// prints one JSON line per tensor:
//   {"name": ..., "dtype": "BF16", "shape": [rows, cols],
//    "q8": {"rel_rms": e8}, "q4": {"rel_rms": e4}}
// with rel_rms = ||W - deq(Q(W))||_F / ||W||_F summed in double over the real
// columns (not the zero padding of the last block); null when ||W|| is 0.
// tests/quant/check_quant_error.py compares these with ggml's q8_0/q4_0.
#include "core/backend.h"
#include "core/quant.h"
#include "core/cpu_ops_ref.h"
#include "model/safetensors.h"
#include "util/cli_numbers.h"

#include <jansson.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

const char *const usage =
    "usage: vlm-quant-error [--tensor NAME]... [--threads N] PATH\n"
    "\n"
    "  PATH           a model directory (model.safetensors or model.safetensors.index.json)\n"
    "                 or one .safetensors file\n"
    "  --tensor NAME  only this tensor (repeatable); it must exist and be a 2-D float tensor\n"
    "  --threads N    threads over rows (default: all CPUs)\n"
    "\n"
    "Prints one JSON line per 2-D float tensor: name, dtype, shape and, for Q8 and Q4,\n"
    "rel_rms = ||W - deq(Q(W))||_F / ||W||_F (null when ||W||_F is 0).\n";

[[noreturn]] void die(int code, const std::string &msg)
{
    std::fprintf(stderr, "vlm-quant-error: %s\n", msg.c_str());
    std::exit(code);
}

struct Options {
    std::string              path;
    std::vector<std::string> only;
    unsigned                 threads = 0;
};

Options parse_args(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) die(2, a + " needs a value\n" + usage);
            return argv[++i];
        };
        if (a == "--help" || a == "-h") {
            std::fputs(usage, stdout);
            std::exit(0);
        } else if (a == "--tensor") {
            const char *v = value();
            if (!*v) die(2, "--tensor: empty name");
            o.only.push_back(v);
        } else if (a == "--threads") {
            long n;
            const char *v = value();
            if (!vlm::parse_long_in(v, 1, 1024, n)) die(2, std::string("--threads: not in [1, 1024]: ") + v);
            o.threads = unsigned(n);
        } else if (!a.empty() && a[0] == '-') {
            die(2, "unknown option " + a + "\n" + usage);
        } else if (o.path.empty()) {
            o.path = a;
        } else {
            die(2, "more than one PATH given\n" + std::string(usage));
        }
    }
    if (o.path.empty()) die(2, std::string("no PATH given\n") + usage);
    if (o.threads == 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
    return o;
}

bool is_float_dtype(vlm::DType t)
{
    return t == vlm::DType::F32 || t == vlm::DType::BF16 || t == vlm::DType::F16;
}

float src_value(const void *data, vlm::DType t, size_t i)
{
    switch (t) {
    case vlm::DType::F32: return static_cast<const float *>(data)[i];
    case vlm::DType::BF16: return vlm::bf16_to_f32(static_cast<const uint16_t *>(data)[i]);
    default: return vlm::f16_to_f32(static_cast<const uint16_t *>(data)[i]);
    }
}

// Why `v` cannot be measured, or "" when it can.
std::string unusable(const vlm::TensorView &v)
{
    if (v.shape.size() != 2) return "is " + std::to_string(v.shape.size()) + "-D, not 2-D";
    if (!is_float_dtype(v.dtype)) return std::string("has dtype ") + vlm::dtype_name(v.dtype) + ", not F32/BF16/F16";
    const int64_t rows = v.shape[0], cols = v.shape[1];
    if (rows <= 0 || cols <= 0) return "is empty " + vlm::shape_string(v.shape);
    // The quantized copy must be addressable: rows * padded cols bytes.
    if (rows > std::numeric_limits<int64_t>::max() / vlm::quant_padded_cols(cols) / 2)
        return "is too large " + vlm::shape_string(v.shape);
    const size_t need = size_t(rows) * size_t(cols) * vlm::dtype_size(v.dtype);
    if (v.data == nullptr || v.nbytes != need)
        return "holds " + std::to_string(v.nbytes) + " bytes, not the " + std::to_string(need) + " of its shape";
    return "";
}

// Runs f(r0, r1) over [0, rows) split into `threads` contiguous chunks.
template <class F>
void parallel_rows(int64_t rows, unsigned threads, F f)
{
    const int64_t n = std::min<int64_t>(threads, rows);
    if (n <= 1) {
        f(int64_t(0), rows);
        return;
    }
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < n; t++) {
        const int64_t r0 = rows * t / n, r1 = rows * (t + 1) / n;
        pool.emplace_back([=, &f] { f(r0, r1); });
    }
    for (auto &th : pool) th.join();
}

// ||W - deq(Q(W))||_F^2 for W quantized to `qt`. Per-row sums are added in row
// order, so the result does not depend on the thread count.
double quant_sq_error(const vlm::TensorView &v, vlm::DType qt, unsigned threads)
{
    const int64_t rows = v.shape[0], cols = v.shape[1];
    std::unique_ptr<uint8_t[]> buf(new uint8_t[vlm::quant_tensor_bytes(qt, rows, cols)]);
    vlm::Tensor q;
    q.data = buf.get();
    q.dtype = qt;
    q.rows = rows;
    q.cols = cols;
    vlm::quant_set_layout(q);
    std::vector<double> row_err(size_t(rows), 0.0);
    parallel_rows(rows, threads, [&](int64_t r0, int64_t r1) {
        vlm::quantize_rows(v.data, v.dtype, cols, q, r0, r1);
        for (int64_t r = r0; r < r1; r++) {
            double s = 0.0;
            for (int64_t c = 0; c < cols; c++) {
                const double e = double(src_value(v.data, v.dtype, size_t(r) * size_t(cols) + size_t(c))) -
                                 double(vlm::quant_elem(q, r, c));
                s += e * e;
            }
            row_err[size_t(r)] = s;
        }
    });
    double sum = 0.0;
    for (double s : row_err) sum += s;
    return sum;
}

// ||W||_F^2, or -1 when W holds a NaN or an infinity.
double sq_norm(const vlm::TensorView &v, unsigned threads)
{
    const int64_t rows = v.shape[0], cols = v.shape[1];
    std::vector<double> row_sum(size_t(rows), 0.0);
    std::vector<char> row_bad(size_t(rows), 0);
    parallel_rows(rows, threads, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; r++) {
            double s = 0.0;
            for (int64_t c = 0; c < cols; c++) {
                const float x = src_value(v.data, v.dtype, size_t(r) * size_t(cols) + size_t(c));
                if (!std::isfinite(x)) row_bad[size_t(r)] = 1;
                s += double(x) * double(x);
            }
            row_sum[size_t(r)] = s;
        }
    });
    double sum = 0.0;
    for (int64_t r = 0; r < rows; r++) {
        if (row_bad[size_t(r)]) return -1.0;
        sum += row_sum[size_t(r)];
    }
    return sum;
}

json_t *format_result(double err_sq, double norm_sq)
{
    json_t *o = json_object();
    json_object_set_new(o, "rel_rms", norm_sq > 0.0 ? json_real(std::sqrt(err_sq / norm_sq)) : json_null());
    return o;
}

// Measures one tensor and prints its line; false with `err` set on a problem.
bool measure(const vlm::TensorView &v, unsigned threads, std::string &err)
{
    const double norm_sq = sq_norm(v, threads);
    if (norm_sq < 0.0) {
        err = v.name + " (" + v.file + "): holds a NaN or an infinity";
        return false;
    }
    const double e8 = quant_sq_error(v, vlm::DType::Q8, threads);
    const double e4 = quant_sq_error(v, vlm::DType::Q4, threads);
    json_t *line = json_object();
    json_object_set_new(line, "name", json_string(v.name.c_str()));
    json_object_set_new(line, "dtype", json_string(vlm::dtype_name(v.dtype)));
    json_object_set_new(line, "shape", json_pack("[II]", json_int_t(v.shape[0]), json_int_t(v.shape[1])));
    json_object_set_new(line, "q8", format_result(e8, norm_sq));
    json_object_set_new(line, "q4", format_result(e4, norm_sq));
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(line);
    if (!text) {
        err = v.name + ": could not format the result";
        return false;
    }
    std::printf("%s\n", text);
    std::fflush(stdout);
    std::free(text);
    return true;
}

}  // namespace

int main(int argc, char **argv)
{
    const Options opt = parse_args(argc, argv);
    struct stat st;
    if (::stat(opt.path.c_str(), &st) != 0) die(1, opt.path + ": " + std::strerror(errno));
    vlm::SafetensorsSet set;
    std::string err;
    const bool opened = S_ISDIR(st.st_mode) ? set.open_dir(opt.path, err) : set.open_file(opt.path, err);
    if (!opened) die(1, err);

    std::vector<const vlm::TensorView *> todo;
    if (!opt.only.empty()) {
        for (const std::string &name : opt.only) {
            const vlm::TensorView *v = set.find(name);
            if (!v) die(1, opt.path + ": no tensor named " + name);
            const std::string why = unusable(*v);
            if (!why.empty()) die(1, name + " " + why);
            todo.push_back(v);
        }
    } else {
        for (const auto &kv : set.tensors())  // sorted by name
            if (kv.second.shape.size() == 2 && is_float_dtype(kv.second.dtype)) {
                const std::string why = unusable(kv.second);
                if (!why.empty()) die(1, kv.first + " " + why);
                todo.push_back(&kv.second);
            }
        if (todo.empty()) die(1, opt.path + ": no 2-D float tensor");
    }
    for (const vlm::TensorView *v : todo)
        if (!measure(*v, opt.threads, err)) die(1, err);
    return 0;
}
