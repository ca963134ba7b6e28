// adopted_weights.cpp: see adopted_weights.h. Releases in reverse order of
// adoption; never touches tensor memory itself (upload_copy goes through the
// backend).
#include "model/adopted_weights.h"

namespace vlm {

AdoptedWeights::~AdoptedWeights() {
    for (size_t i = entries_.size(); i-- > 0;) {
        Entry &e = entries_[i];
        if (e.adopted) backend_->release_weight(e.t);
        else backend_->free(e.t.data);
    }
}

bool AdoptedWeights::adopt(const TensorView *view, int64_t rows, int64_t cols,
                           Tensor &out, std::string &err) {
    if (view == nullptr) {
        err = "model: a required weight is missing";
        return false;
    }
    if (rows <= 0 || cols <= 0 || view->numel() != rows * cols) {
        err = "model: weight " + view->name + " in " + view->file + " has " +
              std::to_string(view->numel()) + " elements, expected " +
              std::to_string(rows) + "x" + std::to_string(cols);
        return false;
    }
    for (const Entry &e : entries_) {
        if (e.adopted && e.host == view->data && e.t.dtype == view->dtype &&
            e.t.rows == rows && e.t.cols == cols) {
            out = e.t;
            return true;
        }
    }
    Tensor t = backend_->adopt_weight(view->data, view->dtype, rows, cols);
    if (t.empty()) {
        err = "model: backend could not place weight " + view->name;
        return false;
    }
    entries_.push_back({view->data, t, true});
    out = t;
    return true;
}

bool AdoptedWeights::adopt_row(const TensorView *view, Tensor &out,
                               std::string &err) {
    if (view == nullptr) {
        err = "model: a required weight is missing";
        return false;
    }
    return adopt(view, 1, view->numel(), out, err);
}

bool AdoptedWeights::adopt_matrix(const TensorView *view, Tensor &out,
                                  std::string &err) {
    if (view == nullptr || view->shape.empty() || view->shape[0] <= 0) {
        err = "model: weight " + (view ? view->name : std::string("(missing)")) +
              " is not a matrix";
        return false;
    }
    return adopt(view, view->shape[0], view->numel() / view->shape[0], out, err);
}

bool AdoptedWeights::upload_copy(const void *host, DType dtype, int64_t rows,
                                 int64_t cols, Tensor &out, std::string &err) {
    size_t bytes = size_t(rows) * size_t(cols) * dtype_size(dtype);
    void *dev = backend_->alloc(bytes);
    if (dev == nullptr) {
        err = "model: out of device memory for a " + std::to_string(bytes) +
              "-byte weight copy";
        return false;
    }
    backend_->upload(dev, host, bytes);
    Tensor t;
    t.data = dev;
    t.dtype = dtype;
    t.rows = rows;
    t.cols = cols;
    t.stride = cols;
    entries_.push_back({nullptr, t, false});
    out = t;
    return true;
}

}  // namespace vlm
