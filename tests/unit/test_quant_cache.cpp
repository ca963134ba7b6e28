// test_quant_cache.cpp: the quantized-weights cache (model/quant_cache.h)
// through load_model, as a restart sees it: the first quantized load writes
// it, the next one maps it and quantizes nothing, with the same logits; a
// corrupt, truncated or foreign file is reported, removed and rebuilt,
// never used; a changed checkpoint gets a new key, so a stale file is never
// even opened.
#include "backend/backend_cpu.h"
#include "model/model.h"
#include "model/quant_cache.h"

#include "check_main.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

using namespace vlm;

namespace {

std::string fixture_model() { return std::string(std::getenv("VLM_FIXTURES")) + "/models/tiny-flash-bf16"; }

std::string make_tmp()
{
    char tmpl[] = "/tmp/vlm-quant-cache.XXXXXX";
    ck_assert(mkdtemp(tmpl) != nullptr);
    return tmpl;
}

std::vector<std::string> cache_files(const std::string &dir)
{
    std::vector<std::string> out;
    if (DIR *d = opendir(dir.c_str())) {
        while (dirent *e = readdir(d))
            if (std::strstr(e->d_name, ".vlmq")) out.push_back(dir + "/" + e->d_name);
        closedir(d);
    }
    return out;
}

// Loads `model_dir` with int4 weights cached in `cache_dir`; returns the
// load's note and the logits of a fixed prompt.
std::string load_and_run(const std::string &model_dir, const std::string &cache_dir, std::vector<float> &logits)
{
    BackendOptions opt;
    opt.n_threads = 2;
    std::string err, info;
    auto backend = make_cpu_backend(opt, err);
    ck_assert_msg(backend != nullptr, "%s", err.c_str());
    WeightPlan plan;
    plan.format = WeightFormat::Int4;
    plan.vision = plan.lm_head = true;
    plan.cache_dir = cache_dir;
    std::unique_ptr<Model> model;
    ck_assert_msg(load_model(model_dir, *backend, plan, model, err, &info), "%s", err.c_str());
    KvCache cache;
    ck_assert_msg(model->new_cache(16, cache, err), "%s", err.c_str());
    const std::vector<int32_t> ids = {1, 5, 9, 3, 7};
    std::vector<int32_t> pos;
    for (int plane = 0; plane < 3; plane++)
        for (int i = 0; i < 5; i++) pos.push_back(i);
    ck_assert_msg(model->forward(ids, pos, nullptr, 0, cache, true, logits, err), "%s", err.c_str());
    std::printf("load: %s\n", info.c_str());
    return info;
}

void copy_file(const std::string &from, const std::string &to)
{
    std::ifstream in(from, std::ios::binary);
    std::ofstream out(to, std::ios::binary);
    out << in.rdbuf();
}

}  // namespace

START_TEST(second_load_maps_the_cache)
{
    const std::string dir = make_tmp();
    std::vector<float> first, second;
    std::string info = load_and_run(fixture_model(), dir, first);
    ck_assert_msg(info.find("0 from the cache") != std::string::npos && info.find("cache written") != std::string::npos,
                  "%s", info.c_str());
    ck_assert_int_eq(int(cache_files(dir).size()), 1);
    info = load_and_run(fixture_model(), dir, second);
    ck_assert_msg(info.find(" 0 quantized at load") != std::string::npos, "%s", info.c_str());
    ck_assert(first == second);
    std::filesystem::remove_all(dir);
}
END_TEST

// Bytes flipped in a tensor, in the table, the file cut short, or another
// checkpoint's file under this key's name: never used, always rebuilt, the
// answer unchanged.
START_TEST(damaged_cache_is_rebuilt)
{
    const std::string dir = make_tmp();
    std::vector<float> ref, got;
    load_and_run(fixture_model(), dir, ref);
    const std::string path = cache_files(dir).at(0);
    std::ifstream in(path, std::ios::binary);
    const std::vector<char> good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    struct Damage {
        const char *what, *expect;
        size_t      pos;   // byte to flip; SIZE_MAX: truncate to half
    } damages[] = {
        {"tensor byte", "checksum mismatch", good.size() - 100},
        {"table byte", "header checksum", 80},
        {"truncated", "", SIZE_MAX},
        {"magic", "bad magic", 0},
    };
    for (const Damage &d : damages) {
        std::vector<char> bad = good;
        if (d.pos == SIZE_MAX) bad.resize(bad.size() / 2);
        else bad[d.pos] ^= 0x40;
        std::ofstream(path, std::ios::binary | std::ios::trunc).write(bad.data(), std::streamsize(bad.size()));
        const std::string info = load_and_run(fixture_model(), dir, got);
        ck_assert_msg(info.find("not used") != std::string::npos && info.find(d.expect) != std::string::npos &&
                          info.find("cache written") != std::string::npos,
                      "%s: %s", d.what, info.c_str());
        ck_assert_msg(got == ref, "%s: logits changed", d.what);
    }
    std::filesystem::remove_all(dir);
}
END_TEST

// A checkpoint whose bytes change (same names, sizes and shapes) has a new
// key: the old file is not opened, a new one is written beside it.
START_TEST(changed_checkpoint_never_reads_stale_cache)
{
    const std::string cache = make_tmp(), model = make_tmp();
    for (const char *f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                          "generation_config.json", "preprocessor_config.json"})
        copy_file(fixture_model() + "/" + f, model + "/" + f);
    std::vector<float> before, after;
    load_and_run(model, cache, before);
    {
        std::fstream st(model + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
        st.seekg(0, std::ios::end);
        const std::streamoff size = st.tellg();
        st.seekp(size - 64);  // inside the last tensor's data
        char c = 0;
        st.seekg(size - 64);
        st.read(&c, 1);
        c = char(c ^ 0x01);
        st.seekp(size - 64);
        st.write(&c, 1);
    }
    const std::string info = load_and_run(model, cache, after);
    ck_assert_msg(info.find("0 from the cache") != std::string::npos, "%s", info.c_str());
    ck_assert_int_eq(int(cache_files(cache).size()), 2);
    std::filesystem::remove_all(cache);
    std::filesystem::remove_all(model);
}
END_TEST

int main(int argc, char **argv)
{
    return vlm_check_main(argc, argv, "quant_cache", {
        {"cache", 120, {second_load_maps_the_cache, damaged_cache_is_rebuilt,
                        changed_checkpoint_never_reads_stale_cache}},
    });
}
