// Model directory loader: safetensors files (single, sharded, corrupt),
// config.json in the transformers 4.5x and 5.x forms, generation and
// preprocessor configs, binding every tensor by name and shape, and asking
// the backend about every weight's dtype. Each failure case checks the
// message a user would read, not just "false".
#include "backend/registry.h"
#include "model/model.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "model/safetensors.h"

#include <check.h>

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace vlm;

namespace {

// All temp dirs live under one root made by main() and removed at exit.
std::string g_temp_root;

std::string make_temp_dir() {
    std::string tmpl = g_temp_root + "/case_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    ck_assert_msg(mkdtemp(buf.data()) != nullptr, "mkdtemp failed");
    return buf.data();
}

void write_file(const std::string &path, const std::string &bytes) {
    FILE *f = fopen(path.c_str(), "wb");
    ck_assert_msg(f != nullptr, "cannot write %s", path.c_str());
    ck_assert_uint_eq(fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
    fclose(f);
}

// A safetensors file from a header text and `data_len` zero bytes of data.
std::string raw_safetensors(const std::string &header, size_t data_len, uint64_t len_field) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint8_t(len_field >> (8 * i)));
    return out + header + std::string(data_len, '\0');
}
std::string raw_safetensors(const std::string &header, size_t data_len) {
    return raw_safetensors(header, data_len, header.size());
}

// Parses `bytes` expecting failure; returns the message.
std::string parse_error(const std::string &bytes) {
    // Copy into 8-aligned storage, as a mapping would be page aligned.
    std::vector<uint64_t> store(bytes.size() / 8 + 1);
    memcpy(store.data(), bytes.data(), bytes.size());
    std::map<std::string, TensorView> views;
    std::string err;
    bool ok = parse_safetensors(reinterpret_cast<const uint8_t *>(store.data()), bytes.size(),
                                "bad.safetensors", views, err);
    ck_assert_msg(!ok, "parse unexpectedly succeeded");
    ck_assert_msg(views.empty(), "views left after a failed parse");
    printf("  error: %s\n", err.c_str());
    return err;
}

#define ck_assert_contains(hay, needle)                                                  \
    ck_assert_msg(std::string(hay).find(needle) != std::string::npos,                    \
                  "expected \"%s\" in \"%s\"", std::string(needle).c_str(),              \
                  std::string(hay).c_str())

// ---- tiny model description shared by the config and binding tests ----

const char *kVisionJson =
    "\"vision_config\": {\"depth\": 2, \"hidden_size\": 32, \"num_heads\": 2,"
    " \"intermediate_size\": 48, \"out_hidden_size\": 64, \"patch_size\": 14,"
    " \"temporal_patch_size\": 2, \"spatial_merge_size\": 2, \"image_size\": 112,"
    " \"in_channels\": 3, \"rms_norm_eps\": 1e-05, \"attention_bias\": false,"
    " \"hidden_act\": \"silu\", \"model_type\": \"glm4v_vision\"}";

const char *kIdsJson =
    "\"model_type\": \"glm4v\", \"image_token_id\": 500, \"video_token_id\": 501,"
    " \"image_start_token_id\": 502, \"image_end_token_id\": 503,"
    " \"video_start_token_id\": 504, \"video_end_token_id\": 505";

const char *kTextCommon =
    "\"vocab_size\": 512, \"hidden_size\": 64, \"intermediate_size\": 96,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
    " \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05, \"eos_token_id\": [0, 1, 2],"
    " \"pad_token_id\": 0, \"model_type\": \"glm4v_text\"";

// transformers 4.5x: rope_theta / partial_rotary_factor beside rope_scaling.
std::string config_v4(const std::string &text_extra = "", const std::string &top_extra = "") {
    return std::string("{") + kIdsJson + ", \"tie_word_embeddings\": false, " + kVisionJson +
           ", \"text_config\": {" + kTextCommon +
           ", \"rope_theta\": 500000.0, \"partial_rotary_factor\": 0.5,"
           " \"rope_scaling\": {\"type\": \"default\", \"mrope_section\": [2, 1, 1]}" +
           text_extra + "}" + top_extra + "}";
}

// transformers 5.x: everything inside text_config.rope_parameters.
std::string config_v5(const std::string &rope = "\"rope_type\": \"default\", \"rope_theta\": "
                                                "500000, \"partial_rotary_factor\": 0.5,"
                                                " \"mrope_section\": [2, 1, 1]",
                      const std::string &text_extra = "") {
    return std::string("{") + kIdsJson + ", \"tie_word_embeddings\": false, " + kVisionJson +
           ", \"text_config\": {" + kTextCommon + ", \"rope_parameters\": {" + rope + "}" +
           text_extra + "}, \"transformers_version\": \"5.23.0\"}";
}

// `s` with the first `from` replaced by `to` (which must occur).
std::string sub(std::string s, const std::string &from, const std::string &to) {
    size_t at = s.find(from);
    ck_assert_msg(at != std::string::npos, "test bug: \"%s\" not in config", from.c_str());
    return s.replace(at, from.size(), to);
}

ModelConfig load_config_text(const std::string &json) {
    std::string dir = make_temp_dir();
    write_file(dir + "/config.json", json);
    ModelConfig c;
    std::string err;
    ck_assert_msg(load_model_config(dir + "/config.json", c, err), "config failed: %s",
                  err.c_str());
    return c;
}

std::string config_error(const std::string &json) {
    std::string dir = make_temp_dir();
    write_file(dir + "/config.json", json);
    ModelConfig c;
    std::string err;
    ck_assert_msg(!load_model_config(dir + "/config.json", c, err), "config unexpectedly loaded");
    ck_assert_contains(err, dir + "/config.json");
    printf("  error: %s\n", err.c_str());
    return err;
}

// Every tensor the tiny model needs (transformers' save_pretrained names).
struct NamedShape {
    std::string name;
    std::vector<int64_t> shape;
};
std::vector<NamedShape> tiny_model_tensors(const ModelConfig &c, bool split_mlp) {
    const int64_t dv = c.vision.hidden_size, out = c.vision.out_hidden_size;
    const int64_t vi = c.vision.intermediate_size, d = c.text.hidden_size;
    const int64_t hd = c.text.head_dim, nq = c.text.num_attention_heads * hd;
    const int64_t nkv = c.text.num_key_value_heads * hd, inter = c.text.intermediate_size;
    const int64_t side = c.vision.image_size / c.vision.patch_size;
    std::vector<NamedShape> t = {
        {"model.visual.patch_embed.proj.weight", {dv, 3, 2, 14, 14}},
        {"model.visual.patch_embed.proj.bias", {dv}},
        {"model.visual.post_conv_layernorm.weight", {dv}},
        {"model.visual.embeddings.position_embedding.weight", {side * side, dv}},
        {"model.visual.post_layernorm.weight", {dv}},
        {"model.visual.downsample.weight", {out, dv, 2, 2}},
        {"model.visual.downsample.bias", {out}},
        {"model.visual.merger.proj.weight", {out, out}},
        {"model.visual.merger.post_projection_norm.weight", {out}},
        {"model.visual.merger.post_projection_norm.bias", {out}},
        {"model.visual.merger.gate_proj.weight", {vi, out}},
        {"model.visual.merger.up_proj.weight", {vi, out}},
        {"model.visual.merger.down_proj.weight", {out, vi}},
        {"model.language_model.embed_tokens.weight", {c.text.vocab_size, d}},
        {"model.language_model.norm.weight", {d}},
        {"lm_head.weight", {c.text.vocab_size, d}},
    };
    for (int i = 0; i < c.vision.depth; ++i) {
        std::string p = "model.visual.blocks." + std::to_string(i) + ".";
        t.push_back({p + "norm1.weight", {dv}});
        t.push_back({p + "norm2.weight", {dv}});
        t.push_back({p + "attn.qkv.weight", {3 * dv, dv}});
        t.push_back({p + "attn.proj.weight", {dv, dv}});
        t.push_back({p + "mlp.gate_proj.weight", {out, dv}});
        t.push_back({p + "mlp.up_proj.weight", {out, dv}});
        t.push_back({p + "mlp.down_proj.weight", {dv, out}});
    }
    for (int i = 0; i < c.text.num_hidden_layers; ++i) {
        std::string p = "model.language_model.layers." + std::to_string(i) + ".";
        for (const char *n : {"input_layernorm", "post_self_attn_layernorm",
                              "post_attention_layernorm", "post_mlp_layernorm"})
            t.push_back({p + n + ".weight", {d}});
        t.push_back({p + "self_attn.q_proj.weight", {nq, d}});
        t.push_back({p + "self_attn.q_proj.bias", {nq}});
        t.push_back({p + "self_attn.k_proj.weight", {nkv, d}});
        t.push_back({p + "self_attn.k_proj.bias", {nkv}});
        t.push_back({p + "self_attn.v_proj.weight", {nkv, d}});
        t.push_back({p + "self_attn.v_proj.bias", {nkv}});
        t.push_back({p + "self_attn.o_proj.weight", {d, nq}});
        t.push_back({p + "mlp.down_proj.weight", {d, inter}});
        if (split_mlp) {
            t.push_back({p + "mlp.gate_proj.weight", {inter, d}});
            t.push_back({p + "mlp.up_proj.weight", {inter, d}});
        } else {
            t.push_back({p + "mlp.gate_up_proj.weight", {2 * inter, d}});
        }
    }
    return t;
}

// Writes the tensors (bf16 zeros; I32 for the one named `i32_name`) as one
// model.safetensors in `dir`.
void write_model(const std::string &dir, const std::vector<NamedShape> &tensors,
                 const std::string &i32_name = "") {
    size_t max_elems = 1;
    for (const auto &t : tensors) {
        size_t n = 1;
        for (int64_t x : t.shape) n *= size_t(x);
        if (n > max_elems) max_elems = n;
    }
    std::vector<uint32_t> zeros(max_elems, 0);
    std::vector<TensorToWrite> w;
    for (const auto &t : tensors)
        w.push_back({t.name, t.name == i32_name ? DType::I32 : DType::BF16, t.shape, zeros.data()});
    std::string err;
    ck_assert_msg(write_safetensors(dir + "/model.safetensors", w, err), "%s", err.c_str());
}

std::string bind_error(const std::vector<NamedShape> &tensors, const ModelConfig &c) {
    std::string dir = make_temp_dir();
    write_model(dir, tensors);
    SafetensorsSet st;
    std::string err;
    ck_assert_msg(st.open_dir(dir, err), "%s", err.c_str());
    ModelWeights w;
    ck_assert_msg(!bind_model_weights(st, c, w, err), "bind unexpectedly succeeded");
    printf("  error: %s\n", err.c_str());
    return err;
}

}  // namespace

// ---------------------------------------------------------------------------
// safetensors

START_TEST(write_then_read_round_trips_values)
{
    std::string dir = make_temp_dir();
    std::vector<float> f32 = {1.5f, -2.25f, 3.0f, 1e-30f, -0.0f, 65504.0f};
    std::vector<uint16_t> bf16 = {0x3f80, 0xc000, 0x7f80, 0x0001, 0x1234};  // odd count
    std::vector<uint16_t> f16 = {0x3c00, 0xbc00, 0x7bff};
    std::vector<int32_t> i32 = {7, -9};
    std::string err;
    ck_assert_msg(write_safetensors(dir + "/t.safetensors",
                                    {{"b.half", DType::BF16, {5}, bf16.data()},
                                     {"a.float", DType::F32, {2, 3}, f32.data()},
                                     {"c.f16", DType::F16, {1, 3}, f16.data()},
                                     {"d.ids", DType::I32, {2}, i32.data()},
                                     {"e.empty", DType::F32, {0, 4}, nullptr}},
                                    err),
                  "%s", err.c_str());
    SafetensorsSet st;
    ck_assert_msg(st.open_file(dir + "/t.safetensors", err), "%s", err.c_str());
    ck_assert_uint_eq(st.tensors().size(), 5);

    const TensorView *a = st.find("a.float");
    ck_assert_ptr_nonnull(a);
    ck_assert(a->dtype == DType::F32);
    ck_assert(a->shape == std::vector<int64_t>({2, 3}));
    ck_assert_int_eq(a->numel(), 6);
    ck_assert_uint_eq(a->nbytes, 24);
    ck_assert_uint_eq(uintptr_t(a->data) % 4, 0);
    double max_diff = 0;
    for (size_t i = 0; i < f32.size(); ++i)
        max_diff = std::fmax(max_diff, std::fabs(double(static_cast<const float *>(a->data)[i]) -
                                                 double(f32[i])));
    printf("  round trip F32 max abs diff %g\n", max_diff);
    ck_assert(max_diff == 0.0);

    const TensorView *b = st.find("b.half");
    ck_assert(b && b->dtype == DType::BF16 && b->nbytes == 10);
    ck_assert_int_eq(memcmp(b->data, bf16.data(), 10), 0);
    const TensorView *c = st.find("c.f16");
    ck_assert(c && c->dtype == DType::F16 && c->shape == std::vector<int64_t>({1, 3}));
    ck_assert_int_eq(memcmp(c->data, f16.data(), 6), 0);
    const TensorView *d = st.find("d.ids");
    ck_assert(d && d->dtype == DType::I32);
    ck_assert_int_eq(static_cast<const int32_t *>(d->data)[1], -9);
    ck_assert_uint_eq(uintptr_t(d->data) % 4, 0);
    const TensorView *e = st.find("e.empty");
    ck_assert(e && e->nbytes == 0 && e->numel() == 0);
    ck_assert_ptr_null(st.find("missing"));
    ck_assert(a->file == dir + "/t.safetensors");

    // The header is padded so the data section starts 8-byte aligned.
    FILE *fp = fopen((dir + "/t.safetensors").c_str(), "rb");
    uint8_t len[8];
    ck_assert_uint_eq(fread(len, 1, 8, fp), 8);
    fclose(fp);
    ck_assert_uint_eq(len[0] % 8, 0);
}
END_TEST

START_TEST(truncated_file_is_rejected)
{
    std::string err = parse_error(std::string("\x10\x00\x00", 3));
    ck_assert_contains(err, "bad.safetensors");
    ck_assert_contains(err, "truncated");
    // Through the file API as well (an empty file cannot be mapped).
    std::string dir = make_temp_dir();
    write_file(dir + "/empty.safetensors", "");
    SafetensorsSet st;
    ck_assert(!st.open_file(dir + "/empty.safetensors", err));
    ck_assert_contains(err, "empty.safetensors: truncated");
    // Data cut short after a valid header.
    std::string hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    err = parse_error(raw_safetensors(hdr, 8));
    ck_assert_contains(err, "tensor w: offsets outside the file");
}
END_TEST

START_TEST(absurd_header_length_is_rejected)
{
    std::string err = parse_error(raw_safetensors("{}", 0, uint64_t(1) << 40));
    ck_assert_contains(err, "bad.safetensors: absurd header length 1099511627776");
    err = parse_error(raw_safetensors("{}", 0, ~uint64_t(0)));
    ck_assert_contains(err, "absurd header length");
}
END_TEST

START_TEST(header_length_beyond_file_is_rejected)
{
    std::string err = parse_error(raw_safetensors("{}", 0, 1000));
    ck_assert_contains(err, "bad.safetensors: header length 1000 goes beyond the end of the file");
}
END_TEST

START_TEST(bad_json_is_rejected)
{
    std::string err = parse_error(raw_safetensors("{\"w\": {\"dtype\": ", 0));
    ck_assert_contains(err, "bad.safetensors: header is not valid JSON");
    err = parse_error(raw_safetensors("[1, 2, 3]", 0));
    ck_assert_contains(err, "header JSON is not an object");
    err = parse_error(raw_safetensors("{\"w\": 5}", 0));
    ck_assert_contains(err, "tensor w: header entry is not a JSON object");
    err = parse_error(raw_safetensors(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
        "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8));
    ck_assert_contains(err, "not valid JSON");  // duplicate key
    err = parse_error(raw_safetensors("{\"__metadata__\": [1]}", 0));
    ck_assert_contains(err, "__metadata__");
}
END_TEST

START_TEST(metadata_is_skipped)
{
    std::string bytes = raw_safetensors(
        "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],"
        "\"data_offsets\":[0,8]}}",
        8);
    std::vector<uint64_t> store(bytes.size() / 8 + 1);
    memcpy(store.data(), bytes.data(), bytes.size());
    std::map<std::string, TensorView> views;
    std::string err;
    ck_assert_msg(parse_safetensors(reinterpret_cast<const uint8_t *>(store.data()), bytes.size(),
                                    "ok.safetensors", views, err),
                  "%s", err.c_str());
    ck_assert_uint_eq(views.size(), 1);
    ck_assert(views.count("w") == 1);
}
END_TEST

START_TEST(unknown_dtype_is_named)
{
    std::string err = parse_error(raw_safetensors(
        "{\"layer.w\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8));
    ck_assert_contains(err, "bad.safetensors: tensor layer.w: unsupported dtype \"F64\"");
}
END_TEST

START_TEST(bad_shapes_are_rejected)
{
    std::string err = parse_error(raw_safetensors(
        "{\"neg\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,0]}}", 0));
    ck_assert_contains(err, "tensor neg: shape entry 1 is not a non-negative integer");
    err = parse_error(raw_safetensors(
        "{\"big\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
        "\"data_offsets\":[0,0]}}", 0));
    ck_assert_contains(err, "tensor big: shape [4294967296, 4294967296, 16] overflows");
    err = parse_error(raw_safetensors(
        "{\"big\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}",
        0));
    ck_assert_contains(err, "overflows");
    err = parse_error(raw_safetensors(
        "{\"r\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4));
    ck_assert_contains(err, "tensor r: shape entry 0");
}
END_TEST

START_TEST(offsets_outside_file_are_rejected)
{
    std::string err = parse_error(raw_safetensors(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4096,4104]}}", 16));
    ck_assert_contains(err, "bad.safetensors: tensor w: offsets outside the file");
    err = parse_error(raw_safetensors(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 16));
    ck_assert_contains(err, "tensor w: \"data_offsets\" must be integers [begin, end]");
    err = parse_error(raw_safetensors(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 16));
    ck_assert_contains(err, "tensor w: \"data_offsets\" is not an array [begin, end]");
    err = parse_error(raw_safetensors(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[-8,-8]}}", 16));
    ck_assert_contains(err, "tensor w: \"data_offsets\"");
}
END_TEST

START_TEST(size_mismatch_and_overlap_are_rejected)
{
    std::string err = parse_error(raw_safetensors(
        "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3,3],\"data_offsets\":[0,16]}}", 16));
    ck_assert_contains(err, "tensor w: byte length 16 does not match shape [3, 3] x BF16 = 18");
    err = parse_error(raw_safetensors(
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16));
    ck_assert_contains(err, "bad.safetensors: tensor b: data overlaps tensor a");
}
END_TEST

START_TEST(unaligned_tensors_are_served_aligned)
{
    // No header padding and an F32 tensor at data offset 2: legal, but the
    // values would sit misaligned in the mapping.
    std::string hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]},"
                      "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}}";
    while ((8 + hdr.size()) % 4 != 0) hdr += " ";
    float vals[2] = {3.5f, -7.25f};
    std::string data(10, '\0');
    data[0] = 0x00;
    data[1] = 0x3c;  // f16 1.0
    memcpy(&data[2], vals, 8);
    std::string bytes = raw_safetensors(hdr, 0) + data;
    std::string dir = make_temp_dir(), err;
    write_file(dir + "/u.safetensors", bytes);
    SafetensorsSet st;
    ck_assert_msg(st.open_file(dir + "/u.safetensors", err), "%s", err.c_str());
    const TensorView *f = st.find("f");
    ck_assert(f != nullptr);
    ck_assert_uint_eq(uintptr_t(f->data) % 4, 0);
    const float *fv = static_cast<const float *>(f->data);
    double diff = std::fmax(std::fabs(fv[0] - 3.5), std::fabs(fv[1] + 7.25));
    printf("  unaligned F32 served aligned, max abs diff %g\n", diff);
    ck_assert(diff == 0.0);
    const TensorView *h = st.find("h");
    ck_assert(h && static_cast<const uint16_t *>(h->data)[0] == 0x3c00);
}
END_TEST

START_TEST(sharded_set_opens_through_index)
{
    std::string dir = make_temp_dir();
    std::vector<float> a = {1, 2, 3, 4}, b = {5, 6};
    std::string err;
    ck_assert(write_safetensors(dir + "/model-00001-of-00002.safetensors",
                                {{"x.a", DType::F32, {2, 2}, a.data()}}, err));
    ck_assert(write_safetensors(dir + "/model-00002-of-00002.safetensors",
                                {{"x.b", DType::F32, {2}, b.data()}}, err));
    write_file(dir + "/model.safetensors.index.json",
               "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {"
               "\"x.a\": \"model-00001-of-00002.safetensors\","
               "\"x.b\": \"model-00002-of-00002.safetensors\"}}");
    SafetensorsSet st;
    ck_assert_msg(st.open_dir(dir, err), "%s", err.c_str());
    ck_assert_uint_eq(st.tensors().size(), 2);
    const TensorView *vb = st.find("x.b");
    ck_assert(vb != nullptr);
    ck_assert(vb->file == dir + "/model-00002-of-00002.safetensors");
    ck_assert(static_cast<const float *>(vb->data)[1] == 6.0f);
    ck_assert(static_cast<const float *>(st.find("x.a")->data)[3] == 4.0f);

    // A tensor the index places in a shard that does not hold it.
    write_file(dir + "/model.safetensors.index.json",
               "{\"weight_map\": {\"x.a\": \"model-00001-of-00002.safetensors\","
               "\"x.b\": \"model-00002-of-00002.safetensors\","
               "\"x.c\": \"model-00002-of-00002.safetensors\"}}");
    SafetensorsSet st2;
    ck_assert(!st2.open_dir(dir, err));
    printf("  error: %s\n", err.c_str());
    ck_assert_contains(err, dir + "/model-00002-of-00002.safetensors: tensor x.c: listed in "
                                  "model.safetensors.index.json but absent from this shard");

    // A shard listed in the index that is not on disk.
    write_file(dir + "/model.safetensors.index.json",
               "{\"weight_map\": {\"x.a\": \"model-00001-of-00002.safetensors\","
               "\"x.d\": \"model-00003-of-00002.safetensors\"}}");
    SafetensorsSet st3;
    ck_assert(!st3.open_dir(dir, err));
    printf("  error: %s\n", err.c_str());
    ck_assert_contains(err, "model.safetensors.index.json: shard model-00003-of-00002.safetensors "
                            "listed in weight_map is missing");

    // Shard names may not leave the directory.
    write_file(dir + "/model.safetensors.index.json",
               "{\"weight_map\": {\"x.a\": \"../etc/passwd\"}}");
    SafetensorsSet st4;
    ck_assert(!st4.open_dir(dir, err));
    ck_assert_contains(err, "tensor x.a: invalid shard file name");

    // No weights at all.
    std::string empty = make_temp_dir();
    SafetensorsSet st5;
    ck_assert(!st5.open_dir(empty, err));
    ck_assert_contains(err, "model directory " + empty +
                                ": neither model.safetensors.index.json nor model.safetensors");
}
END_TEST

// ---------------------------------------------------------------------------
// config.json

START_TEST(config_forms_4x_and_5x_agree)
{
    ModelConfig a = load_config_text(config_v4());
    ModelConfig b = load_config_text(config_v5());
    for (const ModelConfig *c : {&a, &b}) {
        ck_assert_int_eq(c->text.vocab_size, 512);
        ck_assert_int_eq(c->text.hidden_size, 64);
        ck_assert_int_eq(c->text.intermediate_size, 96);
        ck_assert_int_eq(c->text.num_hidden_layers, 2);
        ck_assert_int_eq(c->text.num_attention_heads, 4);
        ck_assert_int_eq(c->text.num_key_value_heads, 2);
        ck_assert_int_eq(c->text.head_dim, 16);
        ck_assert_int_eq(c->text.rotary_dim, 8);
        ck_assert(c->text.rope_theta == 500000.0);
        ck_assert(c->text.partial_rotary_factor == 0.5);
        ck_assert_int_eq(c->text.mrope_section[0], 2);
        ck_assert_int_eq(c->text.mrope_section[1], 1);
        ck_assert_int_eq(c->text.mrope_section[2], 1);
        ck_assert(c->text.attention_bias);
        ck_assert_int_eq(c->text.max_position_embeddings, 4096);
        ck_assert_int_eq(c->vision.depth, 2);
        ck_assert_int_eq(c->vision.hidden_size, 32);
        ck_assert_int_eq(c->vision.num_heads, 2);
        ck_assert_int_eq(c->vision.head_dim, 16);
        ck_assert_int_eq(c->vision.intermediate_size, 48);
        ck_assert_int_eq(c->vision.out_hidden_size, 64);
        ck_assert_int_eq(c->vision.image_size, 112);
        ck_assert_int_eq(c->vision.spatial_merge_size, 2);
        ck_assert(!c->vision.attention_bias);
        ck_assert_int_eq(c->image_token_id, 500);
        ck_assert_int_eq(c->video_end_token_id, 505);
        ck_assert_uint_eq(c->eos_token_ids.size(), 3);
        ck_assert_int_eq(c->eos_token_ids[2], 2);
        ck_assert_int_eq(c->pad_token_id, 0);
        ck_assert(!c->tie_word_embeddings);
    }
    // 4.5x flat rope keys at the top level, and a pre-5 tie flag in text_config.
    std::string flat = std::string("{") + kIdsJson + ", " + kVisionJson + ", \"text_config\": {" +
                       kTextCommon + ", \"tie_word_embeddings\": true}, \"rope_theta\": 250000,"
                       " \"partial_rotary_factor\": 0.5,"
                       " \"rope_scaling\": {\"rope_type\": \"default\", \"mrope_section\": [2,1,1]}}";
    ModelConfig f = load_config_text(flat);
    ck_assert(f.text.rope_theta == 250000.0);
    ck_assert_int_eq(f.text.rotary_dim, 8);
    ck_assert(f.tie_word_embeddings);
    // No partial_rotary_factor anywhere: transformers rotates the whole head.
    ModelConfig full = load_config_text(sub(
        config_v5("\"rope_type\": \"default\", \"rope_theta\": 10000, \"mrope_section\": [4, 2, 2]"),
        "\"eos_token_id\": [0, 1, 2]", "\"eos_token_id\": 7"));
    ck_assert_int_eq(full.text.rotary_dim, 16);
    ck_assert_uint_eq(full.eos_token_ids.size(), 1);
    ck_assert_int_eq(full.eos_token_ids[0], 7);
}
END_TEST

START_TEST(invalid_configs_are_explained)
{
    std::string err = config_error(config_v5(
        "\"rope_type\": \"default\", \"rope_theta\": 500000, \"partial_rotary_factor\": 0.5,"
        " \"mrope_section\": [2, 2, 1]"));
    ck_assert_contains(err, "mrope_section [2, 2, 1] sums to 5 but rotary_dim / 2 = 4");
    // Without mrope_section transformers uses [8, 12, 12], too wide for this head.
    err = config_error(config_v5("\"rope_type\": \"default\", \"partial_rotary_factor\": 0.5"));
    ck_assert_contains(err, "mrope_section [8, 12, 12] sums to 32");
    err = config_error(config_v5("\"rope_type\": \"yarn\", \"factor\": 4.0"));
    ck_assert_contains(err, "text_config.rope_parameters.rope_type: RoPE type \"yarn\" is not supported");
    err = config_error(sub(config_v4(", \"num_attention_heads\": 5"),
                           "\"num_attention_heads\": 4,", ""));
    ck_assert_contains(err, "num_attention_heads 5 does not divide hidden_size 64");
    err = config_error(sub(config_v4(", \"num_key_value_heads\": 3"),
                           "\"num_key_value_heads\": 2,", ""));
    ck_assert_contains(err, "num_attention_heads 4 is not a multiple of num_key_value_heads 3");
    err = config_error(sub(config_v4(), "\"out_hidden_size\": 64", "\"out_hidden_size\": 48"));
    ck_assert_contains(err, "vision_config.out_hidden_size 48 must equal text_config.hidden_size 64");
    err = config_error(sub(config_v4(), "\"image_token_id\": 500", "\"image_token_id\": 512"));
    ck_assert_contains(err, "image_token_id 512 is outside the vocabulary [0, 512)");
    err = config_error(sub(config_v4(), "\"vocab_size\": 512, ", ""));
    ck_assert_contains(err, "text_config.vocab_size: missing required field");
    err = config_error(sub(config_v4(), "\"hidden_size\": 64", "\"hidden_size\": \"64\""));
    ck_assert_contains(err, "text_config.hidden_size: expected an integer");
    err = config_error(sub(config_v4(), "\"depth\": 2", "\"depth\": 0"));
    ck_assert_contains(err, "vision_config.depth: must be positive");
    err = config_error(sub(config_v4(), "\"partial_rotary_factor\": 0.5",
                           "\"partial_rotary_factor\": 0.3125"));  // 16 * 0.3125 = 5
    ck_assert_contains(err, "must be even");
    err = config_error(config_v4(", \"head_dim\": 32"));
    ck_assert_contains(err, "text_config.head_dim 32 differs");
    err = config_error("{\"text_config\": ");
    ck_assert_contains(err, "invalid JSON");

    ModelConfig c;
    ck_assert(!load_model_config("/nonexistent/dir/config.json", c, err));
    ck_assert_contains(err, "/nonexistent/dir/config.json: config.json not found");
}
END_TEST

START_TEST(generation_and_preprocessor_configs)
{
    std::string dir = make_temp_dir(), err;
    GenerationConfig g;
    ck_assert(load_generation_config(dir + "/generation_config.json", g, err));  // absent
    // transformers' global defaults when the file is absent.
    ck_assert(g.eos_token_ids.empty() && !g.has_eos && !g.file_present && !g.do_sample);
    ck_assert(g.top_k == 50 && g.temperature == 1.0 && g.top_p == 1.0 && g.repetition_penalty == 1.0);
    write_file(dir + "/generation_config.json",
               "{\"eos_token_id\": [3, 4], \"pad_token_id\": 3, \"do_sample\": true,"
               " \"temperature\": 0.8, \"top_p\": 0.6, \"top_k\": 2, \"max_new_tokens\": 77,"
               " \"repetition_penalty\": 1.1, \"transformers_version\": \"5.23.0\"}");
    ck_assert_msg(load_generation_config(dir + "/generation_config.json", g, err), "%s",
                  err.c_str());
    ck_assert_uint_eq(g.eos_token_ids.size(), 2);
    ck_assert_int_eq(g.eos_token_ids[1], 4);
    ck_assert(g.do_sample && std::fabs(g.temperature - 0.8) < 1e-12 && g.top_k == 2);
    ck_assert(std::fabs(g.top_p - 0.6) < 1e-12 && g.max_new_tokens == 77 && g.pad_token_id == 3);
    ck_assert(g.file_present && g.has_eos && std::fabs(g.repetition_penalty - 1.1) < 1e-12);
    write_file(dir + "/generation_config.json", "{\"repetition_penalty\": 0}");
    GenerationConfig g3;
    ck_assert(!load_generation_config(dir + "/generation_config.json", g3, err));
    ck_assert_contains(err, "generation_config.json: repetition_penalty: must be positive");

    // Which ids end generation: generation_config.json's list when the file
    // sets one (every id in it, whatever config.json says), else config.json's,
    // else the tokenizer's eos_token.
    ModelConfig mc;
    mc.eos_token_ids = {1, 2};
    GenerationConfig none, listed;
    listed.has_eos = true;
    listed.eos_token_ids = {7, 5, 7};
    ck_assert(stop_token_ids(mc, listed, 9) == std::vector<int>({5, 7}));
    ck_assert(stop_token_ids(mc, none, 9) == std::vector<int>({1, 2}));
    mc.eos_token_ids.clear();
    ck_assert(stop_token_ids(mc, none, 9) == std::vector<int>({9}));
    ck_assert(stop_token_ids(mc, none, -1).empty());
    write_file(dir + "/generation_config.json", "{\"eos_token_id\": 9}");
    GenerationConfig g2;
    ck_assert(load_generation_config(dir + "/generation_config.json", g2, err));
    ck_assert(g2.eos_token_ids.size() == 1 && g2.eos_token_ids[0] == 9);
    write_file(dir + "/generation_config.json", "{\"top_p\": 1.5}");
    ck_assert(!load_generation_config(dir + "/generation_config.json", g2, err));
    ck_assert_contains(err, "generation_config.json: top_p: must be in (0, 1]");

    PreprocessorConfig p;
    ck_assert(load_preprocessor_config(dir + "/preprocessor_config.json", p, err));  // absent
    ck_assert_int_eq(p.min_pixels, 112 * 112);
    ck_assert_int_eq(p.max_pixels, 28 * 28 * 15000);
    write_file(dir + "/preprocessor_config.json",
               "{\"size\": {\"shortest_edge\": 12544, \"longest_edge\": 9633792},"
               " \"do_rescale\": true, \"patch_size\": 14, \"temporal_patch_size\": 2,"
               " \"merge_size\": 2, \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": [0.25, 0.5, 1],"
               " \"rescale_factor\": 0.00392156862745098, \"do_convert_rgb\": false,"
               " \"image_processor_type\": \"Glm46VImageProcessor\"}");
    ck_assert_msg(load_preprocessor_config(dir + "/preprocessor_config.json", p, err), "%s",
                  err.c_str());
    ck_assert_int_eq(p.min_pixels, 12544);
    ck_assert_int_eq(p.max_pixels, 9633792);
    ck_assert(p.image_mean[0] == 0.5f && p.image_std[0] == 0.25f && p.image_std[2] == 1.0f);
    ck_assert(!p.do_convert_rgb && p.do_normalize);
    write_file(dir + "/preprocessor_config.json", "{\"min_pixels\": 3136, \"max_pixels\": 1003520}");
    PreprocessorConfig q;
    ck_assert(load_preprocessor_config(dir + "/preprocessor_config.json", q, err));
    ck_assert_int_eq(q.min_pixels, 3136);
    ck_assert_int_eq(q.max_pixels, 1003520);
    write_file(dir + "/preprocessor_config.json", "{\"image_std\": [1, 0, 1]}");
    ck_assert(!load_preprocessor_config(dir + "/preprocessor_config.json", q, err));
    ck_assert_contains(err, "preprocessor_config.json: image_std: entries must be non-zero");
    write_file(dir + "/preprocessor_config.json", "{\"image_mean\": [1, 2]}");
    ck_assert(!load_preprocessor_config(dir + "/preprocessor_config.json", q, err));
    ck_assert_contains(err, "image_mean: expected a list of 3 numbers");
}
END_TEST

// ---------------------------------------------------------------------------
// binding

START_TEST(bind_finds_every_tensor)
{
    ModelConfig c = load_config_text(config_v5());
    std::string dir = make_temp_dir(), err;
    write_model(dir, tiny_model_tensors(c, false));
    SafetensorsSet st;
    ck_assert_msg(st.open_dir(dir, err), "%s", err.c_str());
    ModelWeights w;
    ck_assert_msg(bind_model_weights(st, c, w, err), "%s", err.c_str());
    ck_assert_uint_eq(w.vision.blocks.size(), 2);
    ck_assert_uint_eq(w.text.layers.size(), 2);
    ck_assert(w.text.layers[1].gate_up && !w.text.layers[1].gate);
    ck_assert(w.text.lm_head && w.text.lm_head != w.text.embed);
    ck_assert(w.vision.pos_embed->shape == std::vector<int64_t>({64, 32}));
    ck_assert(w.vision.blocks[1].qkv_bias == nullptr);
    ck_assert(w.text.layers[0].k_bias->shape == std::vector<int64_t>({32}));

    // Split gate/up, tied embeddings (no lm_head), pre-4.52 names.
    std::vector<NamedShape> old = tiny_model_tensors(c, true);
    std::vector<NamedShape> renamed;
    for (NamedShape t : old) {
        if (t.name == "lm_head.weight") continue;
        if (t.name.rfind("model.language_model.", 0) == 0)
            t.name = "model." + t.name.substr(strlen("model.language_model."));
        else if (t.name.rfind("model.visual.", 0) == 0)
            t.name = t.name.substr(strlen("model."));
        renamed.push_back(t);
    }
    ModelConfig tied = c;
    tied.tie_word_embeddings = true;
    std::string dir2 = make_temp_dir();
    write_model(dir2, renamed);
    SafetensorsSet st2;
    ck_assert_msg(st2.open_dir(dir2, err), "%s", err.c_str());
    ModelWeights w2;
    ck_assert_msg(bind_model_weights(st2, tied, w2, err), "%s", err.c_str());
    ck_assert(w2.text.layers[0].gate && w2.text.layers[0].up && !w2.text.layers[0].gate_up);
    ck_assert(w2.text.lm_head == w2.text.embed);
    ck_assert_str_eq(w2.text.embed->name.c_str(), "model.embed_tokens.weight");
}
END_TEST

START_TEST(bind_reports_missing_and_misshapen_tensors)
{
    ModelConfig c = load_config_text(config_v5());
    std::vector<NamedShape> t = tiny_model_tensors(c, false);
    std::vector<NamedShape> missing;
    for (const auto &x : t)
        if (x.name != "model.language_model.layers.1.self_attn.v_proj.bias") missing.push_back(x);
    std::string err = bind_error(missing, c);
    ck_assert_contains(err, "model directory ");
    ck_assert_contains(err, ": missing tensor model.language_model.layers.1.self_attn.v_proj.bias "
                            "(expected shape [32])");

    std::vector<NamedShape> wrong = t;
    for (auto &x : wrong)
        if (x.name == "model.visual.blocks.0.mlp.up_proj.weight") x.shape = {48, 32};
    err = bind_error(wrong, c);
    ck_assert_contains(err, "/model.safetensors: tensor model.visual.blocks.0.mlp.up_proj.weight: "
                            "expected shape [64, 32], found [48, 32]");

    // Untied model without lm_head.
    std::vector<NamedShape> no_head;
    for (const auto &x : t)
        if (x.name != "lm_head.weight") no_head.push_back(x);
    err = bind_error(no_head, c);
    ck_assert_contains(err, "missing tensor lm_head.weight (expected shape [512, 64])");
}
END_TEST

// The loader asks the backend (Backend::supports) instead of assuming: an I32
// weight is bound (safetensors and the shapes are fine) and then refused by
// name because no backend multiplies by it; a head size beyond the CUDA
// attention kernels is refused on cuda-emu and loads on cpu.
START_TEST(load_asks_the_backend)
{
    std::string err;
    BackendOptions bo;
    bo.n_threads = 2;
    auto cpu = make_backend("cpu", bo, err);
    auto cuda = make_backend("cuda-emu", bo, err);
    ck_assert_msg(cpu && cuda, "%s", err.c_str());

    const std::string cfg = config_v5();
    ModelConfig c = load_config_text(cfg);
    std::string dir = make_temp_dir();
    write_file(dir + "/config.json", cfg);
    const std::string bad = "model.language_model.layers.1.mlp.down_proj.weight";
    write_model(dir, tiny_model_tensors(c, false), bad);
    std::unique_ptr<Model> m;
    ck_assert(!load_model(dir, *cpu, m, err));
    printf("  error: %s\n", err.c_str());
    ck_assert_contains(err, "/model.safetensors: tensor " + bad +
                                ": the cpu backend cannot run matmul with I32 weights");

    // head_dim 160 (hidden 320 over 2 heads), rotary 8 of it.
    std::string big = sub(sub(sub(config_v5("\"rope_type\": \"default\", \"rope_theta\": 500000, "
                                            "\"partial_rotary_factor\": 0.05, \"mrope_section\": [2, 1, 1]"),
                                  "\"hidden_size\": 64", "\"hidden_size\": 320"),
                              "\"num_attention_heads\": 4, \"num_key_value_heads\": 2",
                              "\"num_attention_heads\": 2, \"num_key_value_heads\": 1"),
                          "\"out_hidden_size\": 64", "\"out_hidden_size\": 320");
    ModelConfig cb = load_config_text(big);
    ck_assert_int_eq(cb.text.head_dim, 160);
    std::string dir2 = make_temp_dir();
    write_file(dir2 + "/config.json", big);
    write_model(dir2, tiny_model_tensors(cb, false));
    ck_assert(!load_model(dir2, *cuda, m, err));
    printf("  error: %s\n", err.c_str());
    ck_assert_contains(err, "the cuda-emu backend cannot run the text attention with head_dim 160");
    ck_assert_msg(load_model(dir2, *cpu, m, err), "%s", err.c_str());
}
END_TEST

// ---------------------------------------------------------------------------
// fixture models made by tests/reference (transformers save_pretrained)

START_TEST(fixture_models_load_and_bind)
{
    const char *fx = getenv("VLM_FIXTURES");
    ck_assert_msg(fx && *fx, "VLM_FIXTURES is not set");
    const char *names[] = {"tiny-flash", "tiny-alt", "tiny-flash-bf16"};
    for (const char *name : names) {
        std::string dir = std::string(fx) + "/models/" + name;
        struct stat sb;
        ck_assert_msg(stat((dir + "/config.json").c_str(), &sb) == 0,
                      "fixture model %s is missing (run make fixtures)", dir.c_str());
        ModelConfig c;
        GenerationConfig g;
        PreprocessorConfig p;
        std::string err;
        ck_assert_msg(load_model_config(dir + "/config.json", c, err), "%s", err.c_str());
        ck_assert_msg(load_generation_config(dir + "/generation_config.json", g, err), "%s",
                      err.c_str());
        ck_assert_msg(load_preprocessor_config(dir + "/preprocessor_config.json", p, err), "%s",
                      err.c_str());
        SafetensorsSet st;
        ck_assert_msg(st.open_dir(dir, err), "%s", err.c_str());
        ModelWeights w;
        ck_assert_msg(bind_model_weights(st, c, w, err), "%s", err.c_str());
        ck_assert_int_eq(int(w.text.layers.size()), c.text.num_hidden_layers);
        ck_assert_int_eq(int(w.vision.blocks.size()), c.vision.depth);
        printf("  %s: %zu tensors, %d layers, rotary %d of %d, embed %s\n", name,
               st.tensors().size(), c.text.num_hidden_layers, c.text.rotary_dim, c.text.head_dim,
               dtype_name(w.text.embed->dtype));
    }
}
END_TEST

static int remove_entry(const char *path, const struct stat *, int, struct FTW *) {
    return remove(path);
}

#include "check_main.h"

int main(int argc, char **argv) {
    const char *base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vlm_test_loader_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!mkdtemp(buf.data())) {
        perror("mkdtemp");
        return 1;
    }
    g_temp_root = buf.data();
    const int status = vlm_check_main(argc, argv, "loader", {
        {"safetensors", 0, {
            write_then_read_round_trips_values,
            truncated_file_is_rejected,
            absurd_header_length_is_rejected,
            header_length_beyond_file_is_rejected,
            bad_json_is_rejected,
            metadata_is_skipped,
            unknown_dtype_is_named,
            bad_shapes_are_rejected,
            offsets_outside_file_are_rejected,
            size_mismatch_and_overlap_are_rejected,
            unaligned_tensors_are_served_aligned,
            sharded_set_opens_through_index,
        }},
        {"config", 0, {
            config_forms_4x_and_5x_agree,
            invalid_configs_are_explained,
            generation_and_preprocessor_configs,
        }},
        {"bind", 0, {
            bind_finds_every_tensor,
            bind_reports_missing_and_misshapen_tensors,
            load_asks_the_backend,
            fixture_models_load_and_bind,
        }},
    });
    nftw(g_temp_root.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}
