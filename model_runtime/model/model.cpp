// model.cpp: load_model and the Model implementation: reads the Hugging Face
// model directory (config files, safetensors), binds and adopts the weights,
// and delegates to the vision encoder and the text decoder. Calls are
// serialised per model (the decoder keeps its scratch between calls).
// Backend failures (backend.h: a refused op or a device error) are checked
// here, once per call: a call whose ops failed returns false with the
// backend's reason and leaves the fault set, so the caller can tell a
// device error (503) from a bad request; the next call first recovers the
// backend, and fails at once while the device cannot recover.
// Leaves out: tokenizer and image preprocessing (their own modules).
#include "model/model.h"

#include "model/adopted_weights.h"
#include "model/model_weights.h"
#include "model/text_decoder.h"
#include "model/vision_encoder.h"

#include <algorithm>
#include <exception>
#include <unistd.h>
#include <mutex>
#include <sys/stat.h>

namespace vlm {

namespace {

bool is_directory(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

class Glm4vModel final : public Model {
public:
    explicit Glm4vModel(Backend &backend) : backend_(backend), weights_(backend) {}

    bool load(const std::string &dir, const WeightPlan &plan, std::string &err, std::string &info) {
        if (!is_directory(dir)) {
            err = "load_model: " + dir + " is not a directory";
            return false;
        }
        if (!load_model_config(dir + "/config.json", config_, err)) return false;
        const std::string gen_path = dir + "/generation_config.json";
        if (is_file(gen_path) && !load_generation_config(gen_path, generation_, err))
            return false;
        const std::string pre_path = dir + "/preprocessor_config.json";
        if (is_file(pre_path) && !load_preprocessor_config(pre_path, preprocessor_, err))
            return false;
        if (!tensors_.open_dir(dir, err)) return false;
        ModelWeights bound;
        if (!bind_model_weights(tensors_, config_, bound, err)) return false;
        if (!check_backend_supports(backend_, config_, bound, err)) return false;
        if (plan.quantized() && !backend_.supports({Op::Matmul, weight_format_dtype(plan.format), 0})) {
            err = std::string("load_model: the ") + backend_.name() + " backend cannot run " +
                  weight_format_name(plan.format) + " weights";
            return false;
        }
        weights_.set_plan(plan);
        std::string cache_path;
        if (plan.quantized() && !plan.cache_dir.empty()) open_cache(plan, cache_path, info);
        if (!vision_.init(backend_, config_, bound.vision, weights_, err)) return false;
        if (!text_.init(backend_, config_, bound.text, weights_, err)) return false;
        if (plan.quantized()) {
            finish_cache(plan, cache_path, info);
            weights_.drop_uploaded_host_copies();
        }
        return finish("load_model", true, err);
    }

    const ModelConfig &config() const override { return config_; }
    const PreprocessorConfig &preprocessor() const override { return preprocessor_; }
    const GenerationConfig &generation() const override { return generation_; }
    Backend &backend() override { return backend_; }

    bool encode_images(const PixelBatch &px, std::vector<float> &out,
                       std::string &err) override {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!start("encode_images", err)) return false;
        try {
            return finish("encode_images", vision_.encode(px, out, err), err);
        } catch (const std::exception &e) {
            err = std::string("encode_images: ") + e.what();
            return false;
        }
    }

    bool new_cache(int64_t capacity, KvCache &cache, std::string &err) override {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!start("new_cache", err)) return false;
        try {
            return finish("new_cache", text_.new_cache(capacity, cache, err), err);
        } catch (const std::exception &e) {
            err = std::string("new_cache: ") + e.what();
            return false;
        }
    }

    bool forward(const std::vector<int32_t> &ids,
                 const std::vector<int32_t> &positions,
                 const float *image_embeds, int64_t n_image_rows, KvCache &cache,
                 bool all_logits, std::vector<float> &logits,
                 std::string &err) override {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!start("forward", err)) return false;
        try {
            return finish("forward",
                          text_.forward(ids, positions, image_embeds, n_image_rows, cache,
                                        all_logits, logits, err),
                          err);
        } catch (const std::exception &e) {
            err = std::string("forward: ") + e.what();
            return false;
        }
    }

    bool new_kv_pool(int64_t n_blocks, int block_tokens, KvPool &pool,
                     std::string &err) override {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!start("new_kv_pool", err)) return false;
        try {
            return finish("new_kv_pool", text_.new_kv_pool(n_blocks, block_tokens, pool, err),
                          err);
        } catch (const std::exception &e) {
            err = std::string("new_kv_pool: ") + e.what();
            return false;
        }
    }

    bool forward_batch(const std::vector<SeqStep> &steps, KvPool &pool,
                       std::vector<float> &logits, std::string &err) override {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!start("forward_batch", err)) return false;
        try {
            return finish("forward_batch", text_.forward_batch(steps, pool, logits, err), err);
        } catch (const std::exception &e) {
            err = std::string("forward_batch: ") + e.what();
            return false;
        }
    }

private:
    // A call begins on a working backend: a fault left by the previous call
    // (which that call's caller has seen) is cleared, unless the device
    // cannot recover; then this call fails with the reason.
    bool start(const char *what, std::string &err) {
        if (!backend_.failed()) return true;
        std::string why;
        if (backend_.recover(why)) return true;
        err = std::string(what) + ": " + why;
        return false;
    }

    // The quantized-weights cache for this checkpoint and plan: used when it
    // passes every check, else noted (and a bad file removed) so that
    // finish_cache writes a fresh one.
    void open_cache(const WeightPlan &plan, std::string &path, std::string &info) {
        std::vector<std::string> files;
        for (const auto &[name, tv] : tensors_.tensors())
            if (std::find(files.begin(), files.end(), tv.file) == files.end()) files.push_back(tv.file);
        Sha256 &key = cache_key_;
        std::string why;
        if (!quant_cache_key(files, plan, key, why)) {
            info = "quantized-weights cache off: " + why;
            return;
        }
        path = plan.cache_dir + "/" + hex_of(key) + ".vlmq";
        struct stat st;
        if (::stat(path.c_str(), &st) != 0) return;  // none yet: finish_cache writes it
        if (cache_.open(path, key, why)) {
            weights_.use_cache(&cache_);
            return;
        }
        info = "quantized-weights cache " + path + " not used (" + why + "), rebuilt; ";
        ::unlink(path.c_str());
    }

    void finish_cache(const WeightPlan &plan, const std::string &path, std::string &info) {
        const size_t made = weights_.made().size(), cached = weights_.cached_count();
        info += std::string(weight_format_name(plan.format)) + " weights: " + std::to_string(made) +
                " quantized at load, " + std::to_string(cached) + " from the cache";
        if (path.empty() || made == 0) return;
        ::mkdir(plan.cache_dir.c_str(), 0755);  // one level; an error shows up in write
        std::string why;
        if (QuantCache::write(path, cache_key_, weights_.made(), why)) info += "; cache written to " + path;
        else info += "; cache not written: " + why;
    }

    // A call whose ops failed on the backend fails with the backend's reason
    // (the fault stays set for the caller to classify).
    bool finish(const char *what, bool ok, std::string &err) {
        if (!backend_.failed()) return ok;
        err = std::string(what) + ": " + backend_.fault_message();
        return false;
    }

    // Declaration order is destruction order reversed: the decoders' scratch
    // goes first, then the adopted weights, then the mappings they point into.
    Backend           &backend_;
    ModelConfig        config_;
    GenerationConfig   generation_;
    PreprocessorConfig preprocessor_;
    SafetensorsSet     tensors_;
    QuantCache         cache_;     // mapped quantized weights (outlives weights_)
    Sha256             cache_key_{};
    AdoptedWeights     weights_;
    VisionEncoder      vision_;
    TextDecoder        text_;
    std::mutex         mutex_;
};

}  // namespace

bool load_model(const std::string &dir, Backend &backend,
                std::unique_ptr<Model> &out, std::string &err) {
    return load_model(dir, backend, WeightPlan{}, out, err);
}

bool load_model(const std::string &dir, Backend &backend, const WeightPlan &plan,
                std::unique_ptr<Model> &out, std::string &err, std::string *info) {
    try {
        auto model = std::make_unique<Glm4vModel>(backend);
        std::string note;
        if (!model->load(dir, plan, err, note)) return false;
        if (info) *info = note;
        out = std::move(model);
        return true;
    } catch (const std::exception &e) {
        err = "load_model: " + dir + ": " + e.what();
        return false;
    }
}

}  // namespace vlm
