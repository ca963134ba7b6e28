// bench-model: end-to-end speed of the model on this machine, against the
// machine's own limits. Loads a model directory (normally a few-layer model
// with the real GLM-4.6V-Flash shapes made by mkmodel) and measures
//   decode   batch 1, one token per forward over a ~256-token KV cache:
//            tokens/s, weight bytes streamed per token, GB/s, % of bandwidth
//   prefill  512 tokens: tokens/s, GFLOP/s, % of the bf16 peak
//   vision   one 448x448 and one 1024x1024 image: images/s, GFLOP/s
// each repeated (best and median printed), then extrapolates every figure to
// the full 40-layer / 24-block model from the time measured per layer (a
// profiling wrapper around the backend attributes each op to a layer or to
// the fixed parts). Machine limits come from bench-ops via --bandwidth-gbs /
// --bf16-peak-gflops / --fp32-peak-gflops; when absent they are measured here
// (streaming read of 1 GiB; register-only vdpbf16ps / vfmadd loops).
// Prints a readable report and `BENCH key=value ...` lines for scripts.
// Leaves out: batching, sampling, tokenizer, image decoding (synthetic ids and
// pixels), and nginx/IPC (other benchmarks).
#include "core/backend.h"
#include "util/cli_numbers.h"
#include "image/image.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "model/weight_plan.h"
#include "core/quant.h"
#include "backend/registry.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

const char *const usage =
    "usage: bench-model --model DIR [--threads N] [--backend cpu]\n"
    "                   [--bandwidth-gbs X] [--bf16-peak-gflops X] [--fp32-peak-gflops X]\n"
    "                   [--prefill-tokens N] [--decode-context N] [--decode-steps N]\n"
    "                   [--decode-reps N] [--prefill-reps N] [--vision-reps N]\n"
    "                   [--full-text-layers N] [--full-vision-depth N] [--phase-budget-s S]\n"
    "                   [--no-vision]\n"
    "\n"
    "  --model DIR             model directory (e.g. made by mkmodel)\n"
    "  --threads N             backend threads (default: all CPUs)\n"
    "  --bandwidth-gbs X       machine read bandwidth (from bench-ops); measured here if absent\n"
    "  --bf16-peak-gflops X    machine bf16 dot peak, all threads (from bench-ops)\n"
    "  --fp32-peak-gflops X    machine fp32 FMA peak, all threads (from bench-ops)\n"
    "  --prefill-tokens N      prompt length for prefill (default 512)\n"
    "  --decode-context N      KV-cache tokens before decoding (default 256)\n"
    "  --decode-steps N        tokens per decode repetition (default 16)\n"
    "  --decode-reps N         decode repetitions (default 5)\n"
    "  --prefill-reps N        prefill repetitions (default 2)\n"
    "  --vision-reps N         repetitions per image size (default 2)\n"
    "  --full-text-layers N    layers of the model to extrapolate to (default 40)\n"
    "  --full-vision-depth N   vision blocks of the model to extrapolate to (default 24)\n"
    "  --phase-budget-s S      stop repeating a measurement after S seconds (default 30;\n"
    "                          one repetition always runs)\n"
    "  --no-vision             skip the vision encoder\n"
    "  --weights FMT           bf16 (default), int8 or int4 (model/weight_plan.h)\n"
    "  --quantize-vision       with int8/int4: the vision tower's linear layers too\n"
    "  --quantize-lm-head      with int8/int4: the lm_head too\n";

struct Options {
    vlm::WeightPlan plan;
    std::string model_dir;
    std::string backend = "cpu";
    int         threads = 0;
    double      bandwidth_gbs = 0, bf16_peak_gflops = 0, fp32_peak_gflops = 0;
    int         prefill_tokens = 512;
    int         decode_context = 256;
    int         decode_steps = 16;
    int         decode_reps = 5;
    int         prefill_reps = 2;
    int         vision_reps = 2;
    int         full_text_layers = 40;
    int         full_vision_depth = 24;
    double      phase_budget_s = 30;
    bool        vision = true;
};

[[noreturn]] void die(int code, const std::string &msg)
{
    std::fprintf(stderr, "bench-model: %s\n", msg.c_str());
    std::exit(code);
}

bool parse_positive_double(const char *s, double &out)
{
    char *end = nullptr;
    errno = 0;
    double v = std::strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0) || !std::isfinite(v)) return false;
    out = v;
    return true;
}

Options parse_args(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) die(2, "missing value after " + a);
            return argv[++i];
        };
        auto int_arg = [&](long lo, long hi) {
            long v = 0;
            if (!vlm::parse_long_in(value(), lo, hi, v))
                die(2, a + " wants an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
            return int(v);
        };
        auto real_arg = [&]() {
            double v = 0;
            if (!parse_positive_double(value(), v)) die(2, a + " wants a positive number");
            return v;
        };
        if (a == "--model") o.model_dir = value();
        else if (a == "--backend") o.backend = value();
        else if (a == "--threads") o.threads = int_arg(0, 1024);
        else if (a == "--bandwidth-gbs") o.bandwidth_gbs = real_arg();
        else if (a == "--bf16-peak-gflops") o.bf16_peak_gflops = real_arg();
        else if (a == "--fp32-peak-gflops") o.fp32_peak_gflops = real_arg();
        else if (a == "--prefill-tokens") o.prefill_tokens = int_arg(1, 32768);
        else if (a == "--decode-context") o.decode_context = int_arg(1, 32768);
        else if (a == "--decode-steps") o.decode_steps = int_arg(1, 4096);
        else if (a == "--decode-reps") o.decode_reps = int_arg(1, 1000);
        else if (a == "--prefill-reps") o.prefill_reps = int_arg(1, 1000);
        else if (a == "--vision-reps") o.vision_reps = int_arg(1, 1000);
        else if (a == "--full-text-layers") o.full_text_layers = int_arg(1, 1000);
        else if (a == "--full-vision-depth") o.full_vision_depth = int_arg(1, 1000);
        else if (a == "--phase-budget-s") o.phase_budget_s = real_arg();
        else if (a == "--no-vision") o.vision = false;
        else if (a == "--weights") {
            if (!vlm::parse_weight_format(value(), o.plan.format)) die(2, "--weights wants bf16, int8 or int4");
        } else if (a == "--quantize-vision") o.plan.vision = true;
        else if (a == "--quantize-lm-head") o.plan.lm_head = true;
        else if (a == "-h" || a == "--help") {
            std::fputs(usage, stdout);
            std::exit(0);
        } else die(2, "unknown argument " + a + "\n" + usage);
    }
    if (o.model_dir.empty()) die(2, std::string("--model is required\n") + usage);
    return o;
}

// VmRSS of this process, GB (0 when /proc is not there).
double resident_gb()
{
    FILE *f = std::fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (std::fgets(line, sizeof line, f))
        if (std::strncmp(line, "VmRSS:", 6) == 0) kb = std::atof(line + 6);
    std::fclose(f);
    return kb * 1024 / 1e9;
}

double seconds_since(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double best_of(const std::vector<double> &v) { return *std::max_element(v.begin(), v.end()); }

double median_of(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// ---- which tensor is which ---------------------------------------------------

// Where a weight belongs: the repeated units (text layers, vision blocks) are
// what the full model has more of; everything else is a fixed part.
enum class Part : uint8_t { Unknown, TextLayer, TextFixed, VisionBlock, VisionFixed };

struct PartTag {
    Part part = Part::Unknown;
    int  index = -1;   // layer or block number
};

// Parses "<prefix><number>." at the start of `name`.
bool layer_index(const std::string &name, const std::string &prefix, int &out)
{
    if (name.compare(0, prefix.size(), prefix) != 0) return false;
    size_t i = prefix.size(), start = i;
    long v = 0;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9' && i - start < 6)
        v = v * 10 + (name[i++] - '0');
    if (i == start || i >= name.size() || name[i] != '.') return false;
    out = int(v);
    return true;
}

PartTag tag_of_name(const std::string &name)
{
    PartTag t;
    if (layer_index(name, "model.language_model.layers.", t.index) ||
        layer_index(name, "model.layers.", t.index))
        t.part = Part::TextLayer;
    else if (layer_index(name, "model.visual.blocks.", t.index))
        t.part = Part::VisionBlock;
    else if (name.compare(0, 13, "model.visual.") == 0)
        t.part = Part::VisionFixed;
    else
        t.part = Part::TextFixed;
    return t;
}

// FNV-1a over the first (at most 128) of `avail` bytes, keyed by the
// tensor's size: random weights differ from the first value.
uint64_t fingerprint_prefix(const void *p, size_t avail, size_t nbytes)
{
    const auto *b = static_cast<const uint8_t *>(p);
    uint64_t h = 1469598103934665603ull ^ nbytes;
    for (size_t i = 0; i < std::min<size_t>(avail, 128); ++i) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

uint64_t fingerprint(const void *p, size_t nbytes) { return fingerprint_prefix(p, nbytes, nbytes); }

// The role a checkpoint tensor has in a weight plan (model/weight_plan.h),
// from its name: the linear layers' weights, which a quantized plan holds
// quantized.
vlm::WeightRole role_of_name(const std::string &name, const vlm::TensorView &v)
{
    if (v.shape.size() != 2) return vlm::WeightRole::Other;
    if (name == "lm_head.weight") return vlm::WeightRole::LmHead;
    if (name.find("embed_tokens.weight") != std::string::npos) return vlm::WeightRole::Embedding;
    const PartTag tag = tag_of_name(name);
    const bool linear = name.size() > 12 && name.compare(name.size() - 12, 12, "_proj.weight") == 0;
    if (tag.part == Part::TextLayer && linear) return vlm::WeightRole::TextLinear;
    if ((tag.part == Part::VisionBlock || tag.part == Part::VisionFixed) &&
        (linear || name.find(".attn.qkv.weight") != std::string::npos ||
         name.find(".attn.proj.weight") != std::string::npos || name.find("merger.proj.weight") != std::string::npos))
        return vlm::WeightRole::VisionLinear;
    return vlm::WeightRole::Other;
}

// Byte counts per part under the weight plan (quantized tensors at their
// quantized size), and fingerprints of every tensor as the model adopts it
// so the profiler can recognise the host bytes (the file mapping, or the
// quantized copy: its first row is quantized here the same way).
struct WeightCatalog {
    std::unordered_map<uint64_t, PartTag> by_fingerprint;
    std::map<int, size_t> text_layer_bytes, vision_block_bytes;
    size_t embed_bytes = 0, final_norm_bytes = 0, lm_head_bytes = 0;
    size_t text_fixed_other_bytes = 0, vision_fixed_bytes = 0, total_bytes = 0;

    bool build(const std::string &dir, const vlm::WeightPlan &plan, std::string &err)
    {
        vlm::SafetensorsSet st;
        if (!st.open_dir(dir, err)) return false;
        std::unordered_map<uint64_t, int> seen;
        const vlm::TensorView *embed = nullptr;
        auto remember = [&](uint64_t fp, PartTag tag) {
            if (++seen[fp] == 1) by_fingerprint[fp] = tag;
            else by_fingerprint[fp] = PartTag{};   // ambiguous: leave unattributed
        };
        for (const auto &[name, view] : st.tensors()) {
            const PartTag tag = tag_of_name(name);
            const vlm::DType dt = vlm::planned_dtype(plan, role_of_name(name, view), view.dtype);
            size_t nbytes = view.nbytes;
            if (vlm::dtype_is_quantized(dt)) {
                const int64_t rows = view.shape[0], cols = view.numel() / rows;
                nbytes = vlm::quant_tensor_bytes(dt, rows, cols);
                remember(quantized_fingerprint(view, dt, rows, cols), tag);
            }
            total_bytes += nbytes;
            switch (tag.part) {
            case Part::TextLayer: text_layer_bytes[tag.index] += nbytes; break;
            case Part::VisionBlock: vision_block_bytes[tag.index] += nbytes; break;
            case Part::VisionFixed: vision_fixed_bytes += nbytes; break;
            default:
                if (name.find("embed_tokens") != std::string::npos) {
                    embed_bytes += nbytes;
                    embed = &view;
                } else if (name == "lm_head.weight") lm_head_bytes += nbytes;
                else if (name == "model.language_model.norm.weight" || name == "model.norm.weight")
                    final_norm_bytes += nbytes;
                else text_fixed_other_bytes += nbytes;
            }
            // Reads one byte per page so every weight is in the page cache
            // before timing: a cold page costs a disk read inside an op.
            const auto *bytes = static_cast<const volatile uint8_t *>(view.data);
            for (size_t off = 0; off < view.nbytes; off += 4096) (void)bytes[off];
            remember(fingerprint(view.data, view.nbytes), tag);
        }
        // A tied lm_head is the embedding, read once per decode step (a
        // quantized copy of it when the plan quantizes the lm_head).
        if (lm_head_bytes == 0 && embed) {
            const vlm::DType dt = vlm::planned_dtype(plan, vlm::WeightRole::LmHead, embed->dtype);
            lm_head_bytes = embed_bytes;
            if (vlm::dtype_is_quantized(dt)) {
                const int64_t rows = embed->shape[0], cols = embed->numel() / rows;
                lm_head_bytes = vlm::quant_tensor_bytes(dt, rows, cols);
                total_bytes += lm_head_bytes;
                remember(quantized_fingerprint(*embed, dt, rows, cols), PartTag{});
            }
        }
        return true;
    }

    // The fingerprint of `view` quantized to `dt`: its first row, quantized
    // alone, is the start of the quantized tensor's bytes.
    static uint64_t quantized_fingerprint(const vlm::TensorView &view, vlm::DType dt, int64_t rows, int64_t cols)
    {
        std::vector<uint8_t> row(vlm::quant_tensor_bytes(dt, 1, cols));
        vlm::Tensor t;
        t.data = row.data();
        t.dtype = dt;
        t.rows = 1;
        t.cols = cols;
        vlm::quant_set_layout(t);
        vlm::quantize_rows(view.data, view.dtype, cols, t, 0, 1);
        return fingerprint_prefix(row.data(), vlm::quant_row_bytes(dt, cols), vlm::quant_tensor_bytes(dt, rows, cols));
    }

    size_t text_layers_total() const
    {
        size_t s = 0;
        for (const auto &kv : text_layer_bytes) s += kv.second;
        return s;
    }
    size_t vision_blocks_total() const
    {
        size_t s = 0;
        for (const auto &kv : vision_block_bytes) s += kv.second;
        return s;
    }
};

// ---- profiling backend ---------------------------------------------------------

// Forwards every call to the real backend and charges the time of each op to
// the part of the model it belongs to: ops with a weight (matmul, norms,
// embedding, position table) set the current part; weightless ops (attention,
// rope, add, silu_mul, copies) belong to the part of the weight used last, as
// they sit inside the same layer. The cpu backend is synchronous, so the time
// around each call is the op's time; a device backend would need a sync here.
class ProfilingBackend final : public vlm::Backend {
public:
    ProfilingBackend(vlm::Backend &inner, const WeightCatalog &catalog)
        : inner_(inner), catalog_(catalog) {}

    struct Totals {
        double repeated_s = 0;   // text layers / vision blocks
        double other_s = 0;      // ops of the fixed parts (and unattributed)
        std::map<int, double> per_unit_s;
        std::map<std::string, double> per_op_s;
    };

    void reset() { totals_ = Totals{}; current_ = PartTag{}; }
    const Totals &totals() const { return totals_; }
    size_t recognised_weights() const { return ranges_.size(); }

    const char *name() const override { return inner_.name(); }
    void *alloc(size_t bytes) override { return inner_.alloc(bytes); }
    void free(void *ptr) override { inner_.free(ptr); }
    void upload(void *dst, const void *src, size_t bytes) override
    {
        Timed t(*this, "upload", nullptr);
        inner_.upload(dst, src, bytes);
    }
    void download(void *dst, const void *src, size_t bytes) override
    {
        Timed t(*this, "download", nullptr);
        inner_.download(dst, src, bytes);
    }
    void run_copy(const vlm::Tensor &src, vlm::Tensor &dst) override
    {
        Timed t(*this, "copy", nullptr);
        inner_.copy(src, dst);
    }
    vlm::Tensor adopt_weight(const void *host, vlm::DType dtype, int64_t rows,
                             int64_t cols) override
    {
        vlm::Tensor t = inner_.adopt_weight(host, dtype, rows, cols);
        const size_t nbytes = vlm::dtype_is_quantized(dtype) ? vlm::quant_tensor_bytes(dtype, rows, cols)
                                                             : size_t(rows) * size_t(cols) * vlm::dtype_size(dtype);
        const size_t avail = vlm::dtype_is_quantized(dtype) ? vlm::quant_row_bytes(dtype, cols) : nbytes;
        auto it = catalog_.by_fingerprint.find(fingerprint_prefix(host, avail, nbytes));
        if (it != catalog_.by_fingerprint.end() && it->second.part != Part::Unknown && t.data)
            ranges_[uintptr_t(t.data)] = Range{uintptr_t(t.data) + nbytes, it->second};
        return t;
    }
    void release_weight(vlm::Tensor &t) override
    {
        ranges_.erase(uintptr_t(t.data));
        inner_.release_weight(t);
    }
    void run_matmul(const vlm::Tensor &x, const vlm::Tensor &w, const vlm::Tensor *bias,
                    vlm::Tensor &y) override
    {
        Timed t(*this, "matmul", w.data);
        inner_.matmul(x, w, bias, y);
    }
    void run_rms_norm(const vlm::Tensor &x, const vlm::Tensor &w, float eps,
                      vlm::Tensor &y) override
    {
        Timed t(*this, "rms_norm", w.data);
        inner_.rms_norm(x, w, eps, y);
    }
    void run_layer_norm(const vlm::Tensor &x, const vlm::Tensor &w, const vlm::Tensor &b,
                        float eps, vlm::Tensor &y) override
    {
        Timed t(*this, "layer_norm", w.data);
        inner_.layer_norm(x, w, b, eps, y);
    }
    void run_add(const vlm::Tensor &a, const vlm::Tensor &b, vlm::Tensor &y) override
    {
        Timed t(*this, "add", nullptr);
        inner_.add(a, b, y);
    }
    void run_silu_mul(const vlm::Tensor &gate, const vlm::Tensor &up, vlm::Tensor &y) override
    {
        Timed t(*this, "silu_mul", nullptr);
        inner_.silu_mul(gate, up, y);
    }
    void run_gelu(const vlm::Tensor &x, vlm::Tensor &y) override
    {
        Timed t(*this, "gelu", nullptr);
        inner_.gelu(x, y);
    }
    void run_embed(const vlm::Tensor &table, const int32_t *ids, int64_t n,
                   vlm::Tensor &y) override
    {
        Timed t(*this, "embed", table.data);
        inner_.embed(table, ids, n, y);
    }
    void run_rope_text(vlm::Tensor &x, const int32_t *positions,
                       const vlm::TextRopeParams &p) override
    {
        Timed t(*this, "rope_text", nullptr);
        inner_.rope_text(x, positions, p);
    }
    void run_rope_vision(vlm::Tensor &x, const int32_t *row, const int32_t *col, int n_head,
                         int head_dim, double theta) override
    {
        Timed t(*this, "rope_vision", nullptr);
        inner_.rope_vision(x, row, col, n_head, head_dim, theta);
    }
    void run_attention(const vlm::Tensor &q, const vlm::Tensor &k, const vlm::Tensor &v,
                       const vlm::AttentionParams &p, vlm::Tensor &out) override
    {
        Timed t(*this, "attention", nullptr);
        inner_.attention(q, k, v, p, out);
    }
    void run_add_pos_embed_bicubic(const vlm::Tensor &table, int side, const int32_t *row,
                                   const int32_t *col, const int32_t *grid_h,
                                   const int32_t *grid_w, vlm::Tensor &y) override
    {
        Timed t(*this, "pos_embed", table.data);
        inner_.add_pos_embed_bicubic(table, side, row, col, grid_h, grid_w, y);
    }
    void synchronize() override { inner_.synchronize(); }
    bool supports(const vlm::OpQuery &q) const override { return inner_.supports(q); }
    bool matmul_rounds_x(vlm::DType w, int64_t n, int64_t k) const override
    {
        return inner_.matmul_rounds_x(w, n, k);
    }
    bool recover(std::string &err) override
    {
        if (!inner_.recover(err)) return false;
        clear_fault();
        return true;
    }

private:
    struct Range {
        uintptr_t end;
        PartTag   tag;
    };

    // Times one op; a recognised weight switches the current part first.
    struct Timed {
        ProfilingBackend &pb;
        const char       *op;
        Clock::time_point t0;
        Timed(ProfilingBackend &b, const char *name, const void *weight)
            : pb(b), op(name), t0(Clock::now())
        {
            if (weight) pb.enter_weight(weight);
        }
        ~Timed()
        {
            pb.charge(op, seconds_since(t0));
            // The inner backend's checked front ran the op; its fault is ours.
            if (pb.inner_.failed()) pb.record_fault(pb.inner_.fault(), pb.inner_.fault_message());
        }
    };

    void enter_weight(const void *w)
    {
        const uintptr_t p = uintptr_t(w);
        auto it = ranges_.upper_bound(p);
        if (it == ranges_.begin()) return;
        --it;
        if (p < it->second.end) current_ = it->second.tag;
    }

    void charge(const char *op, double s)
    {
        totals_.per_op_s[op] += s;
        if (current_.part == Part::TextLayer || current_.part == Part::VisionBlock) {
            totals_.repeated_s += s;
            totals_.per_unit_s[current_.index] += s;
        } else {
            totals_.other_s += s;
        }
    }

    vlm::Backend        &inner_;
    const WeightCatalog &catalog_;
    std::map<uintptr_t, Range> ranges_;   // adopted device range start -> part
    PartTag              current_;
    Totals               totals_;
};

// ---- machine limits (used only when bench-ops did not provide them) ------------

unsigned thread_count(int requested)
{
    if (requested > 0) return unsigned(requested);
    return std::max(1u, std::thread::hardware_concurrency());
}

__attribute__((target("avx512f"))) uint64_t read_stream_avx512(const uint64_t *p, size_t n)
{
    __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_xor_si512(acc0, _mm512_load_si512(p + i));
        acc1 = _mm512_xor_si512(acc1, _mm512_load_si512(p + i + 8));
        acc2 = _mm512_xor_si512(acc2, _mm512_load_si512(p + i + 16));
        acc3 = _mm512_xor_si512(acc3, _mm512_load_si512(p + i + 24));
    }
    acc0 = _mm512_xor_si512(_mm512_xor_si512(acc0, acc1), _mm512_xor_si512(acc2, acc3));
    uint64_t lanes[8];
    _mm512_storeu_si512(lanes, acc0);
    uint64_t r = 0;
    for (uint64_t v : lanes) r ^= v;
    for (; i < n; ++i) r ^= p[i];
    return r;
}

uint64_t read_stream_scalar(const uint64_t *p, size_t n)
{
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        a ^= p[i];
        b ^= p[i + 1];
        c ^= p[i + 2];
        d ^= p[i + 3];
    }
    for (; i < n; ++i) a ^= p[i];
    return a ^ b ^ c ^ d;
}

// Best of several multi-threaded passes reading 1 GiB (far beyond the caches).
double measure_read_bandwidth_gbs(unsigned n_threads)
{
    const size_t bytes = size_t(1) << 30, words = bytes / 8;
    auto *buf = static_cast<uint64_t *>(std::aligned_alloc(64, bytes));
    if (!buf) return 0;
    for (size_t i = 0; i < words; ++i) buf[i] = i * 0x9E3779B97F4A7C15ull;
    const bool avx512 = __builtin_cpu_supports("avx512f");
    std::atomic<uint64_t> sink{0};
    double best = 0;
    for (int pass = 0; pass < 5; ++pass) {
        const size_t per = (words / n_threads) & ~size_t(31);
        auto t0 = Clock::now();
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < n_threads; ++t) {
            pool.emplace_back([&, t] {
                const size_t begin = t * per, n = (t + 1 == n_threads) ? words - begin : per;
                sink ^= avx512 ? read_stream_avx512(buf + begin, n)
                               : read_stream_scalar(buf + begin, n);
            });
        }
        for (auto &th : pool) th.join();
        best = std::max(best, bytes / seconds_since(t0) / 1e9);
    }
    std::free(buf);
    return sink.load() == 42 ? best + 1e-12 : best;   // keeps the reads alive
}

// Register-only loops: 12 independent accumulators hide the FMA latency.
__attribute__((target("avx512f,avx512bf16"))) float bf16_dot_loop(long iters)
{
    __m512 acc[12];
    for (auto &a : acc) a = _mm512_setzero_ps();
    const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3F80);   // 1.0 bf16
    const __m512bh y = (__m512bh)_mm512_set1_epi16(0x3A83);   // ~0.001
    for (long i = 0; i < iters; ++i)
        for (auto &a : acc) a = _mm512_dpbf16_ps(a, x, y);
    __m512 s = acc[0];
    for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, acc[k]);
    float lanes[16];
    _mm512_storeu_ps(lanes, s);
    return lanes[0] + lanes[15];
}

__attribute__((target("avx512f"))) float fp32_fma_loop(long iters)
{
    __m512 acc[12];
    for (auto &a : acc) a = _mm512_setzero_ps();
    const __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1e-3f);
    for (long i = 0; i < iters; ++i)
        for (auto &a : acc) a = _mm512_fmadd_ps(x, y, a);
    __m512 s = acc[0];
    for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, acc[k]);
    float lanes[16];
    _mm512_storeu_ps(lanes, s);
    return lanes[0] + lanes[15];
}

// GFLOP/s of `loop` on n_threads threads; flops_per_iter per thread-iteration.
template <class Loop>
double measure_peak_gflops(unsigned n_threads, Loop loop, double flops_per_iter)
{
    const long iters = 20'000'000;
    double best = 0;
    std::atomic<float> sink{0};
    for (int pass = 0; pass < 3; ++pass) {
        auto t0 = Clock::now();
        std::vector<std::thread> pool;
        for (unsigned t = 0; t < n_threads; ++t)
            pool.emplace_back([&] { sink = sink + loop(iters); });
        for (auto &th : pool) th.join();
        best = std::max(best, flops_per_iter * iters * n_threads / seconds_since(t0) / 1e9);
    }
    return best;
}

// ---- work accounting -------------------------------------------------------------

// Matmul weights of one text layer: q, k, v, o, gate_up, down.
double text_layer_params(const vlm::TextConfig &t)
{
    const double d = t.hidden_size, q = double(t.num_attention_heads) * t.head_dim,
                 kv = double(t.num_key_value_heads) * t.head_dim, inter = t.intermediate_size;
    return d * (q + 2 * kv) + q * d + d * 2 * inter + inter * d;
}

// Prefill of n tokens from an empty cache, logits for the last token only.
double prefill_flops(const vlm::TextConfig &t, int layers, double n)
{
    const double attn = 2.0 * t.num_attention_heads * t.head_dim * n * (n + 1);   // causal QK + PV
    return layers * (2.0 * text_layer_params(t) * n + attn) +
           2.0 * double(t.vocab_size) * t.hidden_size;
}

struct VisionFlops {
    double per_block = 0, fixed = 0;
};

VisionFlops vision_flops(const vlm::VisionConfig &v, double n_patch, int patch_dim)
{
    const double d = v.hidden_size, out = v.out_hidden_size, inter = v.intermediate_size;
    const double m2 = double(v.spatial_merge_size) * v.spatial_merge_size, n_tok = n_patch / m2;
    VisionFlops f;
    f.per_block = 2.0 * n_patch * (4 * d * d + 3 * d * out) + 4.0 * n_patch * n_patch * d;
    f.fixed = 2.0 * n_patch * patch_dim * d +            // patch embedding (conv as matmul)
              2.0 * n_tok * (m2 * d) * out +             // 2x2 downsample conv
              2.0 * n_tok * (out * out + 3 * out * inter);   // merger
    return f;
}

// Time of the full model from a measured call: the repeated part scales with
// the number of layers, the rest stays.
double extrapolate(double measured_s, double repeated_fraction, int layers, int full_layers)
{
    return measured_s * (1 - repeated_fraction) + measured_s * repeated_fraction * full_layers / layers;
}

struct Stats {
    std::vector<double> rates;   // per repetition, units/s
    double repeated_fraction = 0;
    std::map<std::string, double> per_op_s;
    double total_s = 0;
};

void absorb_profile(Stats &s, const ProfilingBackend &pb, double wall_s)
{
    const auto &t = pb.totals();
    s.total_s += wall_s;
    s.repeated_fraction += t.repeated_s;   // summed now, divided by total at the end
    for (const auto &[op, secs] : t.per_op_s) s.per_op_s[op] += secs;
}

void finish_profile(Stats &s)
{
    s.repeated_fraction = s.total_s > 0 ? std::min(1.0, s.repeated_fraction / s.total_s) : 0;
}

std::string op_breakdown(const Stats &s)
{
    std::vector<std::pair<double, std::string>> v;
    for (const auto &[op, secs] : s.per_op_s) v.push_back({secs, op});
    std::sort(v.rbegin(), v.rend());
    std::string out;
    char buf[64];
    for (const auto &[secs, op] : v) {
        if (secs / s.total_s < 0.005) continue;
        std::snprintf(buf, sizeof buf, "%s%s %.0f%%", out.empty() ? "" : ", ", op.c_str(),
                      100 * secs / s.total_s);
        out += buf;
    }
    return out;
}

std::vector<int32_t> synthetic_ids(size_t n, int vocab, uint64_t &state)
{
    // Ordinary (non-special) ids: the GLM special tokens start at 151329.
    const uint32_t limit = uint32_t(std::min(vocab, 151000));
    std::vector<int32_t> ids(n);
    for (auto &id : ids) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        id = int32_t(state % limit);
    }
    return ids;
}

std::vector<int32_t> text_positions(int64_t first, size_t n)
{
    std::vector<int32_t> pos(3 * n);
    for (size_t plane = 0; plane < 3; ++plane)
        for (size_t i = 0; i < n; ++i) pos[plane * n + i] = int32_t(first + int64_t(i));
    return pos;
}

bool all_finite(const std::vector<float> &v)
{
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return !v.empty();
}

}  // namespace

int main(int argc, char **argv)
{
    const Options opt = parse_args(argc, argv);
    const unsigned n_threads = thread_count(opt.threads);
    std::string err;

    // ---- machine limits ----
    double bandwidth = opt.bandwidth_gbs, bf16_peak = opt.bf16_peak_gflops,
           fp32_peak = opt.fp32_peak_gflops;
    const char *bw_source = "bench-ops", *peak_source = "bench-ops";
    if (bandwidth <= 0) {
        bandwidth = measure_read_bandwidth_gbs(n_threads);
        bw_source = "measured here: 1 GiB streaming read";
    }
    if (bf16_peak <= 0 || fp32_peak <= 0) {
        peak_source = "measured here: register-only loops";
        if (fp32_peak <= 0 && __builtin_cpu_supports("avx512f"))
            fp32_peak = measure_peak_gflops(n_threads, fp32_fma_loop, 12 * 32.0);
        if (bf16_peak <= 0 && __builtin_cpu_supports("avx512bf16"))
            bf16_peak = measure_peak_gflops(n_threads, bf16_dot_loop, 12 * 64.0);
    }
    std::printf("machine: %u threads, read bandwidth %.1f GB/s (%s)\n", n_threads, bandwidth, bw_source);
    std::printf("         bf16 dot peak %.0f GFLOP/s, fp32 FMA peak %.0f GFLOP/s (%s)\n", bf16_peak,
                fp32_peak, peak_source);

    // ---- model ----
    WeightCatalog catalog;
    auto t_catalog = Clock::now();
    if (!catalog.build(opt.model_dir, opt.plan, err)) die(1, err);
    const double catalog_s = seconds_since(t_catalog);
    vlm::BackendOptions bopt;
    bopt.n_threads = opt.threads;
    std::unique_ptr<vlm::Backend> real_backend = vlm::make_backend(opt.backend, bopt, err);
    if (!real_backend) die(1, err);
    ProfilingBackend backend(*real_backend, catalog);

    auto t_load = Clock::now();
    std::unique_ptr<vlm::Model> model;
    vlm::WeightPlan plan = opt.plan;
    plan.threads = opt.threads;
    if (!vlm::load_model(opt.model_dir, backend, plan, model, err)) die(1, err);
    const vlm::ModelConfig &cfg = model->config();
    const vlm::TextConfig &tc = cfg.text;
    const vlm::VisionConfig &vc = cfg.vision;
    const int layers = tc.num_hidden_layers, depth = vc.depth;
    std::printf("model: %s: %d text layers, %d vision blocks, %.2f GB of weights, read into the page "
                "cache in %.1f s, loaded in %.2f s (%zu weights recognised by the profiler)\n",
                opt.model_dir.c_str(), layers, depth, catalog.total_bytes / 1e9, catalog_s,
                seconds_since(t_load), backend.recognised_weights());
    std::printf("       extrapolations below are to %d text layers / %d vision blocks: measured time "
                "per layer x layers + measured fixed parts\n",
                opt.full_text_layers, opt.full_vision_depth);
    // Weights as held (plan), and the full model's by the same per-layer rule.
    const double full_weight_bytes =
        double(catalog.total_bytes - catalog.text_layers_total() - catalog.vision_blocks_total()) +
        (layers > 0 ? double(catalog.text_layers_total()) / layers * opt.full_text_layers : 0.0) +
        (depth > 0 ? double(catalog.vision_blocks_total()) / depth * opt.full_vision_depth : 0.0);
    const double rss_gb = resident_gb();
    std::printf("weights: %s%s%s: %.2f GB held (resident after load %.2f GB); full model %.2f GB\n",
                vlm::weight_format_name(opt.plan.format), opt.plan.vision ? " +vision" : "",
                opt.plan.lm_head ? " +lm_head" : "", catalog.total_bytes / 1e9, rss_gb, full_weight_bytes / 1e9);
    std::printf("BENCH weights=%s weight_gb=%.3f resident_gb=%.3f full_weight_gb=%.3f\n",
                vlm::weight_format_name(opt.plan.format), catalog.total_bytes / 1e9, rss_gb,
                full_weight_bytes / 1e9);

    uint64_t rng = 0x1234567ull;
    const int64_t capacity = std::max<int64_t>(opt.prefill_tokens,
                                               int64_t(opt.decode_context) + opt.decode_steps) + 8;
    vlm::KvCache cache;
    if (!model->new_cache(capacity, cache, err)) die(1, err);
    std::vector<float> logits;

    // Warm-up: touches every text weight once (page cache -> mapping).
    {
        auto ids = synthetic_ids(8, tc.vocab_size, rng);
        if (!model->forward(ids, text_positions(0, ids.size()), nullptr, 0, cache, false, logits, err))
            die(1, "warm-up: " + err);
    }

    // ---- prefill ----
    Stats prefill;
    const double pf_flops = prefill_flops(tc, layers, opt.prefill_tokens);
    auto phase_start = Clock::now();
    for (int r = 0; r < opt.prefill_reps; ++r) {
        if (r > 0 && seconds_since(phase_start) > opt.phase_budget_s) break;
        auto ids = synthetic_ids(size_t(opt.prefill_tokens), tc.vocab_size, rng);
        auto pos = text_positions(0, ids.size());
        cache.n_past = 0;
        backend.reset();
        auto t0 = Clock::now();
        if (!model->forward(ids, pos, nullptr, 0, cache, false, logits, err)) die(1, "prefill: " + err);
        const double s = seconds_since(t0);
        prefill.rates.push_back(opt.prefill_tokens / s);
        absorb_profile(prefill, backend, s);
    }
    finish_profile(prefill);
    const bool logits_ok = all_finite(logits);

    // ---- decode ----
    // The prefill above left >= decode_context valid cache rows; each
    // repetition rewinds to that context and decodes decode_steps tokens.
    Stats decode;
    const int64_t ctx = std::min<int64_t>(opt.decode_context, opt.prefill_tokens);
    phase_start = Clock::now();
    for (int r = 0; r < opt.decode_reps; ++r) {
        if (r > 0 && seconds_since(phase_start) > opt.phase_budget_s) break;
        cache.n_past = ctx;
        auto ids = synthetic_ids(size_t(opt.decode_steps), tc.vocab_size, rng);
        backend.reset();
        auto t0 = Clock::now();
        for (int s = 0; s < opt.decode_steps; ++s) {
            std::vector<int32_t> one{ids[size_t(s)]};
            if (!model->forward(one, text_positions(cache.n_past, 1), nullptr, 0, cache, false, logits, err))
                die(1, "decode: " + err);
        }
        const double s = seconds_since(t0);
        decode.rates.push_back(opt.decode_steps / s);
        absorb_profile(decode, backend, s);
    }
    finish_profile(decode);

    // Weight bytes one decode step streams: all layers, final norm, lm_head
    // (one embedding row is negligible). KV reads are reported, not counted.
    const double step_bytes = double(catalog.text_layers_total() + catalog.final_norm_bytes +
                                     catalog.lm_head_bytes + catalog.text_fixed_other_bytes);
    const double layer_bytes = layers > 0 ? double(catalog.text_layers_total()) / layers : 0;
    const double full_step_bytes = step_bytes + layer_bytes * (opt.full_text_layers - layers);
    const double kv_bytes = 2.0 * layers * (ctx + opt.decode_steps / 2.0) *
                            tc.num_key_value_heads * tc.head_dim * sizeof(float);

    const double dec_best = best_of(decode.rates), dec_med = median_of(decode.rates);
    const double dec_gbs = step_bytes * dec_best / 1e9;
    const double dec_frac = bandwidth > 0 ? dec_gbs / bandwidth : 0;
    const double dec_full_s = extrapolate(1 / dec_best, decode.repeated_fraction, layers, opt.full_text_layers);
    const double dec_full_bound = bandwidth > 0 ? bandwidth * 1e9 / full_step_bytes : 0;

    std::printf("\ndecode (batch 1, context %lld, %d tokens x %d reps, logits of the last token):\n",
                (long long)ctx, opt.decode_steps, int(decode.rates.size()));
    std::printf("  %.2f tok/s best, %.2f median (%.1f ms/token); %.3f GB of weights per token "
                "(+%.1f MB KV cache)\n",
                dec_best, dec_med, 1000 / dec_best, step_bytes / 1e9, kv_bytes / 1e6);
    std::printf("  %.1f GB/s achieved = %.0f%% of the %.1f GB/s read bandwidth (bound %.2f tok/s)\n",
                dec_gbs, 100 * dec_frac, bandwidth, bandwidth * 1e9 / step_bytes);
    std::printf("  time in layers %.0f%%; ops: %s\n", 100 * decode.repeated_fraction,
                op_breakdown(decode).c_str());
    std::printf("  extrapolated to %d layers: %.2f tok/s (%.0f ms/token, %.2f GB/token; bound %.2f tok/s)\n",
                opt.full_text_layers, 1 / dec_full_s, 1000 * dec_full_s, full_step_bytes / 1e9,
                dec_full_bound);

    const double pf_best = best_of(prefill.rates), pf_med = median_of(prefill.rates);
    const double pf_gflops = pf_flops * pf_best / opt.prefill_tokens / 1e9;
    const double pf_full_s = extrapolate(opt.prefill_tokens / pf_best, prefill.repeated_fraction, layers,
                                         opt.full_text_layers);
    const double pf_full_flops = prefill_flops(tc, opt.full_text_layers, opt.prefill_tokens);
    std::printf("\nprefill (%d tokens, %d reps):\n", opt.prefill_tokens, int(prefill.rates.size()));
    std::printf("  %.1f tok/s best, %.1f median; %.1f GFLOP per call, %.0f GFLOP/s = %.0f%% of the bf16 "
                "peak\n",
                pf_best, pf_med, pf_flops / 1e9, pf_gflops, bf16_peak > 0 ? 100 * pf_gflops / bf16_peak : 0);
    std::printf("  time in layers %.0f%%; ops: %s\n", 100 * prefill.repeated_fraction,
                op_breakdown(prefill).c_str());
    std::printf("  extrapolated to %d layers: %.1f tok/s (%.2f s for %d tokens, %.0f GFLOP/s)\n",
                opt.full_text_layers, opt.prefill_tokens / pf_full_s, pf_full_s, opt.prefill_tokens,
                pf_full_flops / pf_full_s / 1e9);
    if (!logits_ok) std::printf("  WARNING: prefill logits are not all finite\n");

    std::printf("\nBENCH bandwidth_gbs=%.2f bf16_peak_gflops=%.1f fp32_peak_gflops=%.1f threads=%u\n",
                bandwidth, bf16_peak, fp32_peak, n_threads);
    std::printf("BENCH text_layers=%d vision_depth=%d full_text_layers=%d full_vision_depth=%d\n", layers,
                depth, opt.full_text_layers, opt.full_vision_depth);
    std::printf("BENCH decode_tok_s=%.3f decode_tok_s_median=%.3f decode_gb_per_tok=%.4f decode_gbs=%.2f "
                "decode_bw_pct=%.1f decode_full_tok_s=%.3f decode_full_bound_tok_s=%.3f\n",
                dec_best, dec_med, step_bytes / 1e9, dec_gbs, 100 * dec_frac, 1 / dec_full_s, dec_full_bound);
    std::printf("BENCH prefill_tokens=%d prefill_tok_s=%.2f prefill_tok_s_median=%.2f prefill_gflops=%.1f "
                "prefill_peak_pct=%.1f prefill_full_tok_s=%.2f\n",
                opt.prefill_tokens, pf_best, pf_med, pf_gflops,
                bf16_peak > 0 ? 100 * pf_gflops / bf16_peak : 0, opt.prefill_tokens / pf_full_s);
    std::fflush(stdout);

    // ---- vision ----
    if (!opt.vision) return 0;
    const int patch_dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size * vc.patch_size;
    bool warmed = false;
    for (int side : {448, 1024}) {
        int h = 0, w = 0;
        if (!vlm::smart_resize(side, side, model->preprocessor(), h, w, err)) die(1, "smart_resize: " + err);
        vlm::PixelBatch px;
        px.patch_dim = patch_dim;
        px.grids.push_back(vlm::ImageGrid{1, h / vc.patch_size, w / vc.patch_size});
        px.n_patch = int64_t(px.grids[0].h) * px.grids[0].w;
        px.values.resize(size_t(px.n_patch) * size_t(patch_dim));
        uint64_t s = 0x9E3779B97F4A7C15ull;
        for (float &v : px.values) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            v = float(int64_t(s % 4001) - 2000) / 1000.0f;   // normalised pixels lie in ~[-2, 2]
        }
        std::vector<float> feats;
        if (!warmed) {
            if (!model->encode_images(px, feats, err)) die(1, "vision warm-up: " + err);
            warmed = true;
        }
        Stats vis;
        phase_start = Clock::now();
        for (int r = 0; r < opt.vision_reps; ++r) {
            if (r > 0 && seconds_since(phase_start) > opt.phase_budget_s) break;
            backend.reset();
            auto t0 = Clock::now();
            if (!model->encode_images(px, feats, err)) die(1, "vision: " + err);
            const double secs = seconds_since(t0);
            vis.rates.push_back(1 / secs);
            absorb_profile(vis, backend, secs);
        }
        finish_profile(vis);
        const VisionFlops vf = vision_flops(vc, double(px.n_patch), patch_dim);
        const double flops = vf.fixed + depth * vf.per_block;
        const double full_flops = vf.fixed + opt.full_vision_depth * vf.per_block;
        const double best = best_of(vis.rates), med = median_of(vis.rates);
        const double gflops = flops * best / 1e9;
        const double full_s = extrapolate(1 / best, vis.repeated_fraction, depth, opt.full_vision_depth);
        std::printf("\nvision %dx%d -> %dx%d, grid %dx%d = %lld patches, %lld image tokens (%d reps):\n",
                    side, side, w, h, px.grids[0].h, px.grids[0].w, (long long)px.n_patch,
                    (long long)feats.size() / std::max(1, tc.hidden_size), int(vis.rates.size()));
        std::printf("  %.2f images/s best, %.2f median (%.0f ms); %.0f GFLOP per image, %.0f GFLOP/s = "
                    "%.0f%% of the bf16 peak%s\n",
                    best, med, 1000 / best, flops / 1e9, gflops, bf16_peak > 0 ? 100 * gflops / bf16_peak : 0,
                    all_finite(feats) ? "" : "  WARNING: output not finite");
        std::printf("  time in blocks %.0f%%; ops: %s\n", 100 * vis.repeated_fraction,
                    op_breakdown(vis).c_str());
        std::printf("  extrapolated to %d blocks: %.3f images/s (%.2f s per image, %.0f GFLOP/s)\n",
                    opt.full_vision_depth, 1 / full_s, full_s, full_flops / full_s / 1e9);
        std::printf("BENCH vision%d_grid=%dx%d vision%d_img_s=%.4f vision%d_img_s_median=%.4f "
                    "vision%d_gflops=%.1f vision%d_peak_pct=%.1f vision%d_full_img_s=%.4f "
                    "vision%d_full_s=%.3f\n",
                    side, px.grids[0].h, px.grids[0].w, side, best, side, med, side, gflops, side,
                    bf16_peak > 0 ? 100 * gflops / bf16_peak : 0, side, 1 / full_s, side, full_s);
        std::fflush(stdout);
    }
    return 0;
}
