// vlm-run --check-model: passes on the fixture models and on a directory
// with the real GLM-4.6V-Flash config.json structure split into shards
// (made here from tiny-flash, which then gives tiny-flash's golden tokens);
// each broken directory (made here: a copy with one thing broken) fails with
// exit 1 and one line naming the problem. Also the chat template: loaded by
// vlm_jinja and rendered, or the built-in format with a note.
#include "model/safetensors.h"
#include "run_process.h"
#include "tools/check_model.h"

#include <jansson.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <check.h>   // after the standard headers: it defines a fail() macro

namespace fs = std::filesystem;

static std::string fixtures, bin, temp_root;

static std::string model(const char *name) { return fixtures + "/models/" + name; }

static std::string copy_model(const char *name, const std::string &as)
{
    const std::string dst = temp_root + "/" + as;
    fs::remove_all(dst);
    fs::create_directories(dst);
    for (const auto &e : fs::directory_iterator(model(name)))
        if (e.is_regular_file()) fs::copy_file(e.path(), dst + "/" + e.path().filename().string());
    return dst;
}

static std::string read_all(const std::string &path)
{
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

static void write_all(const std::string &path, const std::string &text)
{
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

static void replace_in(const std::string &path, const std::string &from, const std::string &to)
{
    std::string s = read_all(path);
    const size_t at = s.find(from);
    ck_assert_msg(at != std::string::npos, "test bug: '%s' not in %s", from.c_str(), path.c_str());
    write_all(path, s.replace(at, from.size(), to));
}

static ProcessResult check(const std::string &dir)
{
    ProcessResult r = run_process({bin + "/vlm-run", "--check-model", dir});
    std::printf("--- vlm-run --check-model %s: exit %d\n%s%s", dir.c_str(), r.exit_code, r.out.c_str(),
                r.err.c_str());
    return r;
}

static void expect_ok(const std::string &dir)
{
    ProcessResult r = check(dir);
    ck_assert_msg(r.exit_code == 0, "%s: exit %d: %s", dir.c_str(), r.exit_code, r.err.c_str());
    ck_assert(r.out.find("model directory is usable") != std::string::npos);
    ck_assert(r.out.find("memory on cpu: weights") != std::string::npos);
}

static void expect_problem(const std::string &dir, const std::string &needle)
{
    ProcessResult r = check(dir);
    ck_assert_msg(r.exit_code == 1, "%s: exit %d, expected 1", dir.c_str(), r.exit_code);
    ck_assert_msg(r.err.rfind("vlm-run: ", 0) == 0 && r.err.find('\n') == r.err.size() - 1,
                  "not one line: '%s'", r.err.c_str());
    ck_assert_msg(r.err.find(needle) != std::string::npos, "'%s' lacks '%s'", r.err.c_str(), needle.c_str());
}

// tiny-flash's weights in three shards with an index, and a config.json with
// every key of GLM-4.6V-Flash's own (transformers 4.57 layout, as the hub
// file; research/glm4v.md section 1.1) at tiny-flash's sizes.
static std::string make_real_structure_sharded()
{
    const std::string dir = copy_model("tiny-flash", "tiny-flash-real-sharded");
    vlm::SafetensorsSet st;
    std::string err;
    ck_assert_msg(st.open_file(dir + "/model.safetensors", err), "%s", err.c_str());
    std::vector<std::vector<vlm::TensorToWrite>> shards(3);
    json_t *map = json_object();
    int64_t total = 0, i = 0;
    for (const auto &[name, tv] : st.tensors()) {
        const int s = name.find("visual") != std::string::npos ? 0 : (i++ % 2) + 1;
        shards[size_t(s)].push_back({name, tv.dtype, tv.shape, tv.data});
        char file[64];
        std::snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, 3);
        json_object_set_new(map, name.c_str(), json_string(file));
        total += int64_t(tv.nbytes);
    }
    for (int s = 0; s < 3; ++s) {
        char file[64];
        std::snprintf(file, sizeof file, "/model-%05d-of-%05d.safetensors", s + 1, 3);
        ck_assert_msg(vlm::write_safetensors(dir + file, shards[size_t(s)], err), "%s", err.c_str());
    }
    json_t *index = json_pack("{s:{s:I},s:o}", "metadata", "total_size", json_int_t(total), "weight_map", map);
    ck_assert(json_dump_file(index, (dir + "/model.safetensors.index.json").c_str(), JSON_INDENT(2)) == 0);
    json_decref(index);
    fs::remove(dir + "/model.safetensors");
    write_all(dir + "/config.json", R"({
  "architectures": ["Glm4vForConditionalGeneration"],
  "image_end_token_id": 1475,
  "image_start_token_id": 1474,
  "image_token_id": 1498,
  "model_type": "glm4v",
  "text_config": {
    "attention_bias": true,
    "attention_dropout": 0.0,
    "eos_token_id": [1464, 1471, 1473],
    "hidden_act": "silu",
    "hidden_size": 64,
    "image_token_id": null,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "max_position_embeddings": 4096,
    "model_type": "glm4v_text",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "num_key_value_heads": 2,
    "pad_token_id": 1464,
    "partial_rotary_factor": 0.5,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"mrope_section": [2, 1, 1], "rope_type": "default"},
    "rope_theta": 500000,
    "torch_dtype": "float32",
    "use_cache": true,
    "video_token_id": null,
    "vocab_size": 1500
  },
  "tie_word_embeddings": false,
  "torch_dtype": "float32",
  "transformers_version": "4.57.1",
  "video_end_token_id": 1477,
  "video_start_token_id": 1476,
  "video_token_id": 1499,
  "vision_config": {
    "attention_bias": false,
    "attention_dropout": 0.0,
    "depth": 2,
    "hidden_act": "silu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 32,
    "image_size": 84,
    "in_channels": 3,
    "initializer_range": 0.02,
    "intermediate_size": 48,
    "model_type": "glm4v",
    "num_heads": 2,
    "out_hidden_size": 64,
    "patch_size": 14,
    "rms_norm_eps": 1e-05,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2
  }
}
)");
    return dir;
}

START_TEST(fixture_models_pass)
{
    for (const char *m : {"tiny-flash", "tiny-alt", "tiny-flash-bf16"}) expect_ok(model(m));
}
END_TEST

START_TEST(real_structure_sharded_directory_passes_and_runs)
{
    const std::string dir = make_real_structure_sharded();
    expect_ok(dir);
    ProcessResult r = check(dir);
    ck_assert(r.out.find("in 3 file(s)") != std::string::npos);
    // Same weights as tiny-flash: transformers' greedy tokens for en_photo.
    json_error_t jerr;
    json_t *cases = json_load_file((model("tiny-flash") + "/golden/cases.json").c_str(), 0, &jerr);
    ck_assert(cases);
    json_t *c = json_array_get(json_object_get(cases, "cases"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(c, "name")), "en_photo");
    ProcessResult g = run_process({bin + "/vlm-run", "--model", dir, "--json", "--ignore-eos", "--max-tokens", "32",
                                   "--image", fixtures + "/images/photo.jpg", "--prompt",
                                   json_string_value(json_object_get(c, "user"))});
    ck_assert_msg(g.exit_code == 0, "%s", g.err.c_str());
    json_t *out = json_loads(g.out.c_str(), 0, &jerr);
    ck_assert(out);
    ck_assert(json_equal(json_object_get(out, "tokens"), json_object_get(c, "greedy_tokens")));
    std::printf("sharded real-structure directory: 32 greedy tokens identical to transformers'\n");
    json_decref(out);
    json_decref(cases);
}
END_TEST

START_TEST(broken_directories_fail_with_one_line)
{
    // A truncated shard.
    std::string dir = make_real_structure_sharded();
    const std::string shard = dir + "/model-00002-of-00003.safetensors";
    fs::resize_file(shard, fs::file_size(shard) / 2);
    expect_problem(dir, "model-00002-of-00003.safetensors: tensor");

    // A missing tensor (renamed in the header: it is then also unexpected).
    dir = copy_model("tiny-flash", "missing-tensor");
    replace_in(dir + "/model.safetensors", "model.language_model.norm.weight", "model.language_model.norX.weight");
    expect_problem(dir, "missing tensor model.language_model.norm.weight");

    // A wrong dtype (F32 -> I32, same size, on a norm weight).
    dir = copy_model("tiny-flash", "wrong-dtype");
    {
        std::string s = read_all(dir + "/model.safetensors");
        const size_t at = s.find("\"model.language_model.norm.weight\"");
        ck_assert(at != std::string::npos);
        const size_t d = s.find("\"F32\"", at);
        s.replace(d, 5, "\"I32\"");
        write_all(dir + "/model.safetensors", s);
    }
    expect_problem(dir, "tensor model.language_model.norm.weight: the cpu backend cannot run rms_norm with I32");

    // A template error.
    dir = copy_model("tiny-flash", "template-error");
    write_all(dir + "/chat_template.jinja", read_all(dir + "/chat_template.jinja") + "{% if messages %}oops\n");
    expect_problem(dir, "chat_template.jinja: line");

    // config.json disagreeing with the weights.
    dir = copy_model("tiny-flash", "config-disagrees");
    replace_in(dir + "/config.json", "\"intermediate_size\": 128", "\"intermediate_size\": 96");
    expect_problem(dir, "config.json and the weights disagree");

    // config.json's image token disagreeing with the tokenizer's.
    dir = copy_model("tiny-flash", "image-token-disagrees");
    replace_in(dir + "/config.json", "\"image_token_id\": 1498", "\"image_token_id\": 1497");
    expect_problem(dir, "image_token_id 1497 but the tokenizer's <|image|> is 1498");

    // A missing or unparseable file.
    dir = copy_model("tiny-flash", "no-tokenizer");
    fs::remove(dir + "/tokenizer.json");
    expect_problem(dir, "tokenizer.json: not found");
    dir = copy_model("tiny-flash", "bad-generation-config");
    write_all(dir + "/generation_config.json", "{\"eos_token_id\": [1464,");
    expect_problem(dir, "generation_config.json: invalid JSON");
}
END_TEST

// The template is loaded by vlm_jinja and really rendered: an unsupported
// construct fails with its line, a template that raises on the sample
// conversation fails with the template's line, and a directory without a
// template passes with a note that the built-in format is used.
START_TEST(chat_template_is_loaded_and_rendered)
{
    std::string dir = copy_model("tiny-flash", "template-include");
    write_all(dir + "/chat_template.jinja", "{{ '[gMASK]<sop>' }}\n{%- for m in messages %}\n{% include 'turn.jinja' %}\n"
                                            "{%- endfor %}");
    expect_problem(dir, "chat_template.jinja: line 3: ");
    ck_assert(check(dir).err.find("include") != std::string::npos);

    dir = copy_model("tiny-flash", "template-raises");
    write_all(dir + "/chat_template.jinja",
              "{%- for m in messages %}{% if m.role == 'assistant' %}\n{{ raise_exception('no assistant turns') }}"
              "{% endif %}{{ m.role }}{% endfor %}");
    expect_problem(dir, "cannot render a sample conversation: chat template " + dir +
                            "/chat_template.jinja: line 2: TemplateError: no assistant turns");

    dir = copy_model("tiny-flash", "template-in-processor-config");
    std::filesystem::remove(dir + "/chat_template.jinja");
    json_t *pc = json_object();
    json_object_set_new(pc, "chat_template", json_string(read_all(model("tiny-flash") + "/chat_template.jinja").c_str()));
    ck_assert_int_eq(json_dump_file(pc, (dir + "/processor_config.json").c_str(), 0), 0);
    json_decref(pc);
    expect_ok(dir);
    ck_assert(check(dir).out.find("ok    chat template (" + dir + "/processor_config.json)") != std::string::npos);

    dir = copy_model("tiny-flash", "no-template");
    std::filesystem::remove(dir + "/chat_template.jinja");
    expect_ok(dir);
    ProcessResult r = check(dir);
    ck_assert(r.out.find("chat template (none in the directory: built-in GLM-4.6V format)") != std::string::npos);
    ck_assert(r.out.find("note  no chat template in processor_config.json") != std::string::npos);
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv)
{
    vlm_check_default_env();
    const char *f = std::getenv("VLM_FIXTURES"), *b = std::getenv("VLM_BIN");
    if (!f || !b) {
        std::fprintf(stderr, "VLM_FIXTURES and VLM_BIN must be set\n");
        return 1;
    }
    fixtures = f;
    bin = b;
    char tmpl[] = "/tmp/vlm_test_check_model_XXXXXX";
    if (!mkdtemp(tmpl)) return 1;
    temp_root = tmpl;
    const int status = vlm_check_main(argc, argv, "check_model", {
        {"check_model", 300, {
            fixture_models_pass,
            real_structure_sharded_directory_passes_and_runs,
            broken_directories_fail_with_one_line,
            chat_template_is_loaded_and_rendered,
        }},
    });
    fs::remove_all(temp_root);
    return status;
}
