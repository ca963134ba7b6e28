// mkmodel: writes a Hugging Face-style GLM-4.6V-Flash model directory with the
// real layer shapes but only a few layers, filled with small random bf16
// weights, for benchmarks (`make bench`). Output: config.json (transformers
// 5.x form), generation_config.json, preprocessor_config.json, sharded
// safetensors + model.safetensors.index.json, and mkmodel.stamp recording the
// tool version and arguments (so scripts can tell a stale directory).
// Not written: tokenizer files and chat template (benchmarks use synthetic
// token ids). The weights are noise: the outputs mean nothing, only the
// shapes, dtypes and bytes are real.
#include "core/backend.h"
#include "util/cli_numbers.h"
#include "model/safetensors.h"

#include <jansson.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

// Bump when the files written change (names, shapes, values, configs): bench
// scripts regenerate directories whose stamp differs.
constexpr int kMkmodelVersion = 1;

const char *const usage =
    "usage: mkmodel --out DIR --text-layers N --vision-depth M [--seed S]\n"
    "               [--dtype bf16] [--if-changed]\n"
    "\n"
    "  --out DIR          directory to write (created; must be empty or made by mkmodel)\n"
    "  --text-layers N    text decoder layers (the real model has 40)\n"
    "  --vision-depth M   vision blocks (the real model has 24)\n"
    "  --seed S           random seed (default 1)\n"
    "  --dtype bf16       weight dtype (only bf16, as the real checkpoint)\n"
    "  --if-changed       do nothing when DIR already holds this exact model\n";

// GLM-4.6V-Flash sizes and ids (research/glm4v.md section 1). Only the layer
// counts are chosen by the caller.
struct FlashShape {
    int64_t vocab = 151552, d_model = 4096, inter = 13696;
    int64_t n_head = 32, n_kv_head = 2, head_dim = 128;
    int64_t d_vis = 1536, vis_heads = 12, vis_inter = 13696, out_hidden = 4096;
    int64_t patch = 14, temporal = 2, merge = 2, image_size = 336, channels = 3;
};

struct Options {
    std::string out_dir;
    int         text_layers = -1;
    int         vision_depth = -1;
    uint64_t    seed = 1;
    bool        if_changed = false;
};

// One tensor of the model: its name, shape and how to fill it
// (value = offset + uniform(-amplitude, amplitude)).
struct TensorSpec {
    std::string          name;
    std::vector<int64_t> shape;
    float                offset = 0.0f;
    float                amplitude = 0.0f;
    uint64_t             stream = 0;   // per-tensor random stream id

    size_t numel() const
    {
        size_t n = 1;
        for (int64_t d : shape) n *= size_t(d);
        return n;
    }
};

// A group of tensors written as one safetensors file (bounds peak memory to
// the largest shard: the 1.2 GB embedding or lm_head).
struct ShardSpec {
    std::vector<TensorSpec> tensors;
};

[[noreturn]] void die(int code, const std::string &msg)
{
    std::fprintf(stderr, "mkmodel: %s\n", msg.c_str());
    std::exit(code);
}

Options parse_args(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> const char * {
            if (i + 1 >= argc) die(2, "missing value after " + a);
            return argv[++i];
        };
        long v = 0;
        if (a == "--out") {
            o.out_dir = value();
        } else if (a == "--text-layers") {
            if (!vlm::parse_long_in(value(), 1, 200, v)) die(2, "--text-layers wants 1..200");
            o.text_layers = int(v);
        } else if (a == "--vision-depth") {
            if (!vlm::parse_long_in(value(), 1, 200, v)) die(2, "--vision-depth wants 1..200");
            o.vision_depth = int(v);
        } else if (a == "--seed") {
            const char *s = value();
            char *end = nullptr;
            errno = 0;
            unsigned long long seed = std::strtoull(s, &end, 10);
            if (errno != 0 || end == s || *end != '\0') die(2, "--seed wants an unsigned integer");
            o.seed = seed;
        } else if (a == "--dtype") {
            std::string d = value();
            if (d != "bf16") die(2, "--dtype: only bf16 is supported (got " + d + ")");
        } else if (a == "--if-changed") {
            o.if_changed = true;
        } else if (a == "-h" || a == "--help") {
            std::fputs(usage, stdout);
            std::exit(0);
        } else {
            die(2, "unknown argument " + a + "\n" + usage);
        }
    }
    if (o.out_dir.empty() || o.text_layers < 0 || o.vision_depth < 0)
        die(2, std::string("--out, --text-layers and --vision-depth are required\n") + usage);
    return o;
}

// ---- random numbers ----------------------------------------------------------

uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint16_t f32_to_bf16_bits(float f)
{
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);   // round to nearest even; inputs are finite
    return uint16_t(u >> 16);
}

// Values are a pure function of (seed, tensor stream, chunk), so the output
// does not depend on the thread count.
constexpr size_t kChunk = size_t(1) << 20;

void fill_chunk(uint16_t *dst, size_t n, float offset, float amplitude, uint64_t state)
{
    if (state == 0) state = 1;
    const float scale = amplitude / 32768.0f;
    size_t i = 0;
    while (i < n) {
        // xorshift64*: one 64-bit draw gives four 16-bit uniforms.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        uint64_t r = state * 0x2545F4914F6CDD1Dull;
        for (int lane = 0; lane < 4 && i < n; ++lane, ++i) {
            int16_t q = int16_t(uint16_t(r >> (16 * lane)));
            dst[i] = f32_to_bf16_bits(offset + float(q) * scale);
        }
    }
}

void fill_tensor(uint16_t *dst, const TensorSpec &t, uint64_t seed, unsigned n_threads)
{
    const size_t n = t.numel();
    const size_t n_chunks = (n + kChunk - 1) / kChunk;
    auto work = [&](unsigned tid) {
        for (size_t c = tid; c < n_chunks; c += n_threads) {
            size_t begin = c * kChunk, len = std::min(kChunk, n - begin);
            uint64_t state = splitmix64(seed ^ splitmix64(t.stream * 0x100000001B3ull + c));
            fill_chunk(dst + begin, len, t.offset, t.amplitude, state);
        }
    };
    std::vector<std::thread> pool;
    for (unsigned tid = 1; tid < n_threads; ++tid) pool.emplace_back(work, tid);
    work(0);
    for (auto &th : pool) th.join();
}

// ---- the model's tensors -------------------------------------------------------

// std 0.02 like transformers' initializer_range: uniform(-a, a) has std a/sqrt(3).
constexpr float kWeightAmp = 0.0346f;
constexpr float kBiasAmp = 0.02f;
constexpr float kNormAmp = 0.1f;   // norm weights 1 +- 0.1 so a norm bug shows

std::vector<ShardSpec> model_shards(const FlashShape &s, int text_layers, int vision_depth)
{
    uint64_t stream = 0;
    auto weight = [&](std::string name, std::vector<int64_t> shape) {
        return TensorSpec{std::move(name), std::move(shape), 0.0f, kWeightAmp, ++stream};
    };
    auto bias = [&](std::string name, int64_t n) {
        return TensorSpec{std::move(name), {n}, 0.0f, kBiasAmp, ++stream};
    };
    auto norm = [&](std::string name, int64_t n) {
        return TensorSpec{std::move(name), {n}, 1.0f, kNormAmp, ++stream};
    };

    std::vector<ShardSpec> shards;
    const std::string lm = "model.language_model.";
    shards.push_back({{weight(lm + "embed_tokens.weight", {s.vocab, s.d_model})}});

    const int64_t q_dim = s.n_head * s.head_dim, kv_dim = s.n_kv_head * s.head_dim;
    for (int i = 0; i < text_layers; ++i) {
        const std::string p = lm + "layers." + std::to_string(i) + ".";
        shards.push_back({{
            norm(p + "input_layernorm.weight", s.d_model),
            weight(p + "self_attn.q_proj.weight", {q_dim, s.d_model}),
            bias(p + "self_attn.q_proj.bias", q_dim),
            weight(p + "self_attn.k_proj.weight", {kv_dim, s.d_model}),
            bias(p + "self_attn.k_proj.bias", kv_dim),
            weight(p + "self_attn.v_proj.weight", {kv_dim, s.d_model}),
            bias(p + "self_attn.v_proj.bias", kv_dim),
            weight(p + "self_attn.o_proj.weight", {s.d_model, q_dim}),
            norm(p + "post_self_attn_layernorm.weight", s.d_model),
            norm(p + "post_attention_layernorm.weight", s.d_model),
            weight(p + "mlp.gate_up_proj.weight", {2 * s.inter, s.d_model}),
            weight(p + "mlp.down_proj.weight", {s.d_model, s.inter}),
            norm(p + "post_mlp_layernorm.weight", s.d_model),
        }});
    }
    shards.push_back({{norm(lm + "norm.weight", s.d_model),
                       weight("lm_head.weight", {s.vocab, s.d_model})}});

    const std::string v = "model.visual.";
    const int64_t side = s.image_size / s.patch;
    ShardSpec vis;
    vis.tensors = {
        weight(v + "patch_embed.proj.weight", {s.d_vis, s.channels, s.temporal, s.patch, s.patch}),
        bias(v + "patch_embed.proj.bias", s.d_vis),
        norm(v + "post_conv_layernorm.weight", s.d_vis),
        weight(v + "embeddings.position_embedding.weight", {side * side, s.d_vis}),
    };
    for (int i = 0; i < vision_depth; ++i) {
        const std::string p = v + "blocks." + std::to_string(i) + ".";
        vis.tensors.push_back(norm(p + "norm1.weight", s.d_vis));
        vis.tensors.push_back(weight(p + "attn.qkv.weight", {3 * s.d_vis, s.d_vis}));
        vis.tensors.push_back(weight(p + "attn.proj.weight", {s.d_vis, s.d_vis}));
        vis.tensors.push_back(norm(p + "norm2.weight", s.d_vis));
        vis.tensors.push_back(weight(p + "mlp.gate_proj.weight", {s.out_hidden, s.d_vis}));
        vis.tensors.push_back(weight(p + "mlp.up_proj.weight", {s.out_hidden, s.d_vis}));
        vis.tensors.push_back(weight(p + "mlp.down_proj.weight", {s.d_vis, s.out_hidden}));
    }
    vis.tensors.push_back(norm(v + "post_layernorm.weight", s.d_vis));
    vis.tensors.push_back(weight(v + "downsample.weight", {s.out_hidden, s.d_vis, s.merge, s.merge}));
    vis.tensors.push_back(bias(v + "downsample.bias", s.out_hidden));
    vis.tensors.push_back(weight(v + "merger.proj.weight", {s.out_hidden, s.out_hidden}));
    vis.tensors.push_back(norm(v + "merger.post_projection_norm.weight", s.out_hidden));
    vis.tensors.push_back(bias(v + "merger.post_projection_norm.bias", s.out_hidden));
    vis.tensors.push_back(weight(v + "merger.gate_proj.weight", {s.vis_inter, s.out_hidden}));
    vis.tensors.push_back(weight(v + "merger.up_proj.weight", {s.vis_inter, s.out_hidden}));
    vis.tensors.push_back(weight(v + "merger.down_proj.weight", {s.out_hidden, s.vis_inter}));
    shards.push_back(std::move(vis));
    return shards;
}

// ---- JSON files -----------------------------------------------------------------

json_t *int_array(std::initializer_list<long long> v)
{
    json_t *a = json_array();
    for (long long x : v) json_array_append_new(a, json_integer(x));
    return a;
}

json_t *real_array(std::initializer_list<double> v)
{
    json_t *a = json_array();
    for (double x : v) json_array_append_new(a, json_real(x));
    return a;
}

// config.json as transformers 5.x's Glm4vConfig.save_pretrained writes it
// (rope_parameters inside text_config), minus the generic PretrainedConfig
// defaults (id2label, return_dict, ...).
json_t *make_config(const FlashShape &s, int text_layers, int vision_depth)
{
    json_t *text = json_object();
    json_object_set_new(text, "model_type", json_string("glm4v_text"));
    json_object_set_new(text, "vocab_size", json_integer(s.vocab));
    json_object_set_new(text, "hidden_size", json_integer(s.d_model));
    json_object_set_new(text, "intermediate_size", json_integer(s.inter));
    json_object_set_new(text, "num_hidden_layers", json_integer(text_layers));
    json_object_set_new(text, "num_attention_heads", json_integer(s.n_head));
    json_object_set_new(text, "num_key_value_heads", json_integer(s.n_kv_head));
    json_object_set_new(text, "hidden_act", json_string("silu"));
    json_object_set_new(text, "attention_bias", json_true());
    json_object_set_new(text, "attention_dropout", json_real(0.0));
    json_object_set_new(text, "rms_norm_eps", json_real(1e-5));
    json_object_set_new(text, "max_position_embeddings", json_integer(131072));
    json_object_set_new(text, "initializer_range", json_real(0.02));
    json_object_set_new(text, "use_cache", json_true());
    json_object_set_new(text, "eos_token_id", int_array({151329, 151336, 151338}));
    json_object_set_new(text, "pad_token_id", json_integer(151329));
    json_object_set_new(text, "dtype", json_string("bfloat16"));
    json_t *rope = json_object();
    json_object_set_new(rope, "rope_type", json_string("default"));
    json_object_set_new(rope, "rope_theta", json_real(500000.0));
    json_object_set_new(rope, "partial_rotary_factor", json_real(0.5));
    json_object_set_new(rope, "mrope_section", int_array({8, 12, 12}));
    json_object_set_new(text, "rope_parameters", rope);

    json_t *vis = json_object();
    json_object_set_new(vis, "model_type", json_string("glm4v_vision"));
    json_object_set_new(vis, "depth", json_integer(vision_depth));
    json_object_set_new(vis, "hidden_size", json_integer(s.d_vis));
    json_object_set_new(vis, "num_heads", json_integer(s.vis_heads));
    json_object_set_new(vis, "intermediate_size", json_integer(s.vis_inter));
    json_object_set_new(vis, "out_hidden_size", json_integer(s.out_hidden));
    json_object_set_new(vis, "patch_size", json_integer(s.patch));
    json_object_set_new(vis, "temporal_patch_size", json_integer(s.temporal));
    json_object_set_new(vis, "spatial_merge_size", json_integer(s.merge));
    json_object_set_new(vis, "image_size", json_integer(s.image_size));
    json_object_set_new(vis, "in_channels", json_integer(s.channels));
    json_object_set_new(vis, "hidden_act", json_string("silu"));
    json_object_set_new(vis, "attention_bias", json_false());
    json_object_set_new(vis, "attention_dropout", json_real(0.0));
    json_object_set_new(vis, "rms_norm_eps", json_real(1e-5));
    json_object_set_new(vis, "initializer_range", json_real(0.02));

    json_t *c = json_object();
    json_object_set_new(c, "architectures", json_pack("[s]", "Glm4vForConditionalGeneration"));
    json_object_set_new(c, "model_type", json_string("glm4v"));
    json_object_set_new(c, "dtype", json_string("bfloat16"));
    json_object_set_new(c, "image_start_token_id", json_integer(151339));
    json_object_set_new(c, "image_end_token_id", json_integer(151340));
    json_object_set_new(c, "video_start_token_id", json_integer(151341));
    json_object_set_new(c, "video_end_token_id", json_integer(151342));
    json_object_set_new(c, "image_token_id", json_integer(151363));
    json_object_set_new(c, "video_token_id", json_integer(151364));
    json_object_set_new(c, "tie_word_embeddings", json_false());
    json_object_set_new(c, "transformers_version", json_string("5.23.0"));
    json_object_set_new(c, "text_config", text);
    json_object_set_new(c, "vision_config", vis);
    return c;
}

// The official generation_config.json was not retrievable (glm4v.md section
// 9): eos/pad are the confirmed ids, the sampling values are the published
// presets for the Flash model (LM Studio), unconfirmed. Benchmarks ignore them.
json_t *make_generation_config()
{
    json_t *g = json_object();
    json_object_set_new(g, "do_sample", json_true());
    json_object_set_new(g, "eos_token_id", int_array({151329, 151336, 151338}));
    json_object_set_new(g, "pad_token_id", json_integer(151329));
    json_object_set_new(g, "temperature", json_real(0.8));
    json_object_set_new(g, "top_k", json_integer(2));
    json_object_set_new(g, "top_p", json_real(0.6));
    json_object_set_new(g, "transformers_version", json_string("5.23.0"));
    return g;
}

// preprocessor_config.json with the Flash checkpoint's values (glm4v.md 6.1).
json_t *make_preprocessor_config()
{
    json_t *p = json_object();
    json_t *size = json_object();
    json_object_set_new(size, "shortest_edge", json_integer(12544));
    json_object_set_new(size, "longest_edge", json_integer(9633792));
    json_object_set_new(p, "size", size);
    json_object_set_new(p, "do_rescale", json_true());
    json_object_set_new(p, "patch_size", json_integer(14));
    json_object_set_new(p, "temporal_patch_size", json_integer(2));
    json_object_set_new(p, "merge_size", json_integer(2));
    json_object_set_new(p, "image_mean", real_array({0.48145466, 0.4578275, 0.40821073}));
    json_object_set_new(p, "image_std", real_array({0.26862954, 0.26130258, 0.27577711}));
    json_object_set_new(p, "image_processor_type", json_string("Glm46VImageProcessor"));
    json_object_set_new(p, "processor_class", json_string("Glm46VProcessor"));
    return p;
}

bool write_json(const std::string &path, json_t *j, std::string &err)
{
    int rc = json_dump_file(j, path.c_str(), JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(j);
    if (rc != 0) {
        err = path + ": cannot write";
        return false;
    }
    return true;
}

bool write_text(const std::string &path, const std::string &text, std::string &err)
{
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
    f.close();
    if (!f) {
        err = path + ": cannot write";
        return false;
    }
    return true;
}

std::string read_text(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string stamp_text(const Options &o)
{
    return "vlm-mkmodel " + std::to_string(kMkmodelVersion) +
           " text_layers=" + std::to_string(o.text_layers) +
           " vision_depth=" + std::to_string(o.vision_depth) +
           " seed=" + std::to_string(o.seed) + " dtype=bf16\n";
}

// The directory must be new, empty, or one mkmodel made (it has a stamp);
// old shards are removed so a smaller model leaves no stale files behind.
bool prepare_dir(const std::string &dir, std::string &err)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(dir, ec)) {
        if (!fs::create_directories(dir, ec)) {
            err = dir + ": cannot create: " + ec.message();
            return false;
        }
        return true;
    }
    if (!fs::is_directory(dir, ec)) {
        err = dir + ": exists and is not a directory";
        return false;
    }
    const bool ours = fs::exists(fs::path(dir) / "mkmodel.stamp", ec);
    if (!ours && !fs::is_empty(dir, ec)) {
        err = dir + ": not empty and not made by mkmodel (no mkmodel.stamp); refusing to overwrite";
        return false;
    }
    for (const auto &e : fs::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("model-", 0) == 0 && name.size() > 12 &&
            name.compare(name.size() - 12, 12, ".safetensors") == 0)
            fs::remove(e.path(), ec);
    }
    return true;
}

}  // namespace

int main(int argc, char **argv)
{
    using clock = std::chrono::steady_clock;
    const Options opt = parse_args(argc, argv);
    const std::string dir = opt.out_dir;
    const std::string stamp = stamp_text(opt);
    const std::string stamp_path = dir + "/mkmodel.stamp";

    if (opt.if_changed && read_text(stamp_path) == stamp) {
        std::printf("mkmodel: %s is up to date (%s)\n", dir.c_str(),
                    stamp.substr(0, stamp.size() - 1).c_str());
        return 0;
    }

    std::string err;
    if (!prepare_dir(dir, err)) die(1, err);
    // Marks the directory as ours and incomplete until the final stamp.
    if (!write_text(stamp_path, "incomplete\n", err)) die(1, err);

    const FlashShape shape;
    if (!write_json(dir + "/config.json", make_config(shape, opt.text_layers, opt.vision_depth), err) ||
        !write_json(dir + "/generation_config.json", make_generation_config(), err) ||
        !write_json(dir + "/preprocessor_config.json", make_preprocessor_config(), err))
        die(1, err);

    const auto t0 = clock::now();
    const unsigned n_threads = std::max(1u, std::thread::hardware_concurrency());
    const std::vector<ShardSpec> shards = model_shards(shape, opt.text_layers, opt.vision_depth);
    const size_t n_shards = shards.size();

    json_t *weight_map = json_object();
    size_t total_bytes = 0;
    for (size_t si = 0; si < n_shards; ++si) {
        char fname[64];
        std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", si + 1, n_shards);

        const ShardSpec &shard = shards[si];
        std::vector<std::vector<uint16_t>> data(shard.tensors.size());
        std::vector<vlm::TensorToWrite> to_write;
        size_t shard_bytes = 0;
        for (size_t ti = 0; ti < shard.tensors.size(); ++ti) {
            const TensorSpec &t = shard.tensors[ti];
            data[ti].resize(t.numel());
            fill_tensor(data[ti].data(), t, opt.seed, n_threads);
            to_write.push_back({t.name, vlm::DType::BF16, t.shape, data[ti].data()});
            shard_bytes += t.numel() * 2;
            json_object_set_new(weight_map, t.name.c_str(), json_string(fname));
        }
        if (!vlm::write_safetensors(dir + "/" + fname, to_write, err))
            die(1, std::string(fname) + ": " + err);
        total_bytes += shard_bytes;
    }

    json_t *index = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "total_size", json_integer(json_int_t(total_bytes)));
    json_object_set_new(index, "metadata", meta);
    json_object_set_new(index, "weight_map", weight_map);
    if (!write_json(dir + "/model.safetensors.index.json", index, err)) die(1, err);
    if (!write_text(stamp_path, stamp, err)) die(1, err);

    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    std::printf("mkmodel: wrote %s: %d text layers, %d vision blocks, %zu shards, %.2f GB of bf16 "
                "weights in %.1f s\n",
                dir.c_str(), opt.text_layers, opt.vision_depth, n_shards, total_bytes / 1e9, secs);
    return 0;
}
