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

#include <exception>
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

    bool load(const std::string &dir, const WeightPlan &plan, std::string &err) {
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
        if (!vision_.init(backend_, config_, bound.vision, weights_, err)) return false;
        if (!text_.init(backend_, config_, bound.text, weights_, err)) return false;
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
                std::unique_ptr<Model> &out, std::string &err) {
    try {
        auto model = std::make_unique<Glm4vModel>(backend);
        if (!model->load(dir, plan, err)) return false;
        out = std::move(model);
        return true;
    } catch (const std::exception &e) {
        err = "load_model: " + dir + ": " + e.what();
        return false;
    }
}

}  // namespace vlm
