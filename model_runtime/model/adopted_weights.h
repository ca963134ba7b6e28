// adopted_weights.h: owner of the device tensors the model makes from the
// mmapped safetensors views (backend.adopt_weight: in place on cpu, uploaded
// on devices) and of the few weight copies the model re-lays out at load.
// It releases them all, through the backend, when destroyed. It does not
// check names or shapes against the config: bind_model_weights did that.
#pragma once

#include "core/backend.h"
#include "model/quant_cache.h"
#include "model/safetensors.h"
#include "model/weight_plan.h"

#include <cstdint>
#include <memory>

#include <string>
#include <vector>

namespace vlm {

class AdoptedWeights {
public:
    explicit AdoptedWeights(Backend &backend) : backend_(&backend) {}
    // The plan the *_linear calls follow (default: every weight as stored).
    void set_plan(const WeightPlan &plan) { plan_ = plan; }
    const WeightPlan &plan() const { return plan_; }
    // Quantized weights found in `cache` (by name, dtype and shape) are used
    // from it instead of being made; it must outlive this store.
    void use_cache(const QuantCache *cache) { cache_ = cache; }
    // The quantized weights this store made (not those taken from a cache),
    // for writing a cache.
    const std::vector<QuantCache::Item> &made() const { return made_; }
    size_t cached_count() const { return cached_count_; }
    // Frees the host copies of quantized weights the backend copied to its
    // own memory (devices upload; the cpu backend uses them in place and
    // keeps them). Call after the cache is written: made() is then empty.
    void drop_uploaded_host_copies();
    ~AdoptedWeights();
    AdoptedWeights(const AdoptedWeights &) = delete;
    AdoptedWeights &operator=(const AdoptedWeights &) = delete;

    // `view` as a (rows, cols) row-major device tensor in its stored dtype;
    // rows * cols must equal its element count. Adopting the same host bytes
    // twice (tied embeddings) returns the first tensor. False with a reason
    // naming the tensor.
    bool adopt(const TensorView *view, int64_t rows, int64_t cols, Tensor &out,
               std::string &err);
    // A matrix for matmul (or the embedding table), in the dtype the plan
    // gives `role`: as adopt(), or quantized from the view (threads over
    // rows) into host memory this store keeps, then adopted from there; a
    // view quantized before (tied lm_head and embedding) is reused.
    bool adopt_linear(const TensorView *view, int64_t rows, int64_t cols, WeightRole role, Tensor &out,
                      std::string &err);
    // Bytes of quantized copies made so far (host memory held for them).
    size_t quantized_bytes() const { return quantized_bytes_; }
    // A 1-D weight (norm, bias) as (1, numel).
    bool adopt_row(const TensorView *view, Tensor &out, std::string &err);
    // `view` as (rows, cols), rows == view's first dimension.
    bool adopt_matrix(const TensorView *view, Tensor &out, std::string &err);
    // A device copy of host bytes (a re-laid-out weight), kept until
    // destruction.
    bool upload_copy(const void *host, DType dtype, int64_t rows, int64_t cols,
                     Tensor &out, std::string &err);

private:
    struct Entry {
        const void *host;   // nullptr for uploaded copies
        Tensor      t;
        bool        adopted;
        const void *source = nullptr;  // quantized copies: the checkpoint bytes they were made from
    };
    Backend           *backend_;
    std::vector<Entry> entries_;
    WeightPlan         plan_;
    // Quantized copies: the cpu backend uses them in place, others upload.
    std::vector<std::unique_ptr<uint8_t[]>> quantized_;
    size_t             quantized_bytes_ = 0;
    const QuantCache  *cache_ = nullptr;
    size_t             cached_count_ = 0;
    std::vector<QuantCache::Item> made_;
};

}  // namespace vlm
