// adopted_weights.h: owner of the device tensors the model makes from the
// mmapped safetensors views (backend.adopt_weight: in place on cpu, uploaded
// on devices) and of the few weight copies the model re-lays out at load.
// It releases them all, through the backend, when destroyed. It does not
// check names or shapes against the config: bind_model_weights did that.
#pragma once

#include "core/backend.h"
#include "model/safetensors.h"

#include <string>
#include <vector>

namespace vlm {

class AdoptedWeights {
public:
    explicit AdoptedWeights(Backend &backend) : backend_(&backend) {}
    ~AdoptedWeights();
    AdoptedWeights(const AdoptedWeights &) = delete;
    AdoptedWeights &operator=(const AdoptedWeights &) = delete;

    // `view` as a (rows, cols) row-major device tensor in its stored dtype;
    // rows * cols must equal its element count. Adopting the same host bytes
    // twice (tied embeddings) returns the first tensor. False with a reason
    // naming the tensor.
    bool adopt(const TensorView *view, int64_t rows, int64_t cols, Tensor &out,
               std::string &err);
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
    };
    Backend           *backend_;
    std::vector<Entry> entries_;
};

}  // namespace vlm
