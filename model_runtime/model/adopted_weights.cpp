// adopted_weights.cpp: see adopted_weights.h. Releases in reverse order of
// adoption; never touches tensor memory itself (upload_copy goes through the
// backend).
#include "model/adopted_weights.h"
#include "core/quant.h"

#include <algorithm>
#include <thread>

#include <sys/mman.h>
#include <unistd.h>

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

bool AdoptedWeights::adopt_linear(const TensorView *view, int64_t rows, int64_t cols, WeightRole role,
                                  Tensor &out, std::string &err) {
    if (view == nullptr) {
        err = "model: a required weight is missing";
        return false;
    }
    DType dt = planned_dtype(plan_, role, view->dtype);
    if (role == WeightRole::Embedding && !backend_->supports({Op::Embed, dt, 0})) dt = view->dtype;
    if (!dtype_is_quantized(dt)) return adopt(view, rows, cols, out, err);
    for (const Entry &e : entries_)
        if (e.source == view->data && e.t.dtype == dt && e.t.rows == rows && e.t.cols == cols) {
            out = e.t;
            return true;
        }
    if (rows <= 0 || cols <= 0 || view->numel() != rows * cols) return adopt(view, rows, cols, out, err);
    if (view->dtype != DType::F32 && view->dtype != DType::BF16 && view->dtype != DType::F16) {
        err = "model: weight " + view->name + " in " + view->file + " is " + dtype_name(view->dtype) +
              "; only float weights can be quantized";
        return false;
    }
    const size_t bytes = quant_tensor_bytes(dt, rows, cols);
    if (const uint8_t *cached = cache_ ? cache_->find(view->name, dt, rows, cols) : nullptr) {
        Tensor t = backend_->adopt_weight(cached, dt, rows, cols);
        if (t.empty()) {
            err = "model: backend could not place quantized weight " + view->name;
            return false;
        }
        entries_.push_back({cached, t, true, view->data});
        quantized_bytes_ += bytes;
        cached_count_++;
        out = t;
        return true;
    }
    std::unique_ptr<uint8_t[]> host(new (std::nothrow) uint8_t[bytes]);
    if (!host) {
        err = "model: out of memory quantizing " + view->name + " (" + std::to_string(bytes) + " bytes)";
        return false;
    }
    Tensor q;
    q.data = host.get();
    q.dtype = dt;
    q.rows = rows;
    q.cols = cols;
    quant_set_layout(q);
    unsigned n_threads = plan_.threads > 0 ? unsigned(plan_.threads) : std::max(1u, std::thread::hardware_concurrency());
    n_threads = unsigned(std::min<int64_t>(n_threads, (rows + 63) / 64));
    std::vector<std::thread> workers;
    for (unsigned i = 1; i < n_threads; i++)
        workers.emplace_back([&, i] {
            quantize_rows(view->data, view->dtype, cols, q, rows * i / n_threads, rows * (i + 1) / n_threads);
        });
    quantize_rows(view->data, view->dtype, cols, q, 0, rows / n_threads);
    for (std::thread &t : workers) t.join();
    Tensor t = backend_->adopt_weight(host.get(), dt, rows, cols);
    if (t.empty()) {
        err = "model: backend could not place quantized weight " + view->name;
        return false;
    }
    // The checkpoint's pages for this tensor are not read again (the file
    // mapping is read-only, so a later reader, a tied embedding, faults them
    // back in): give them back, so the resident size is the quantized one.
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(view->data) + page - 1) / page * page;
    const uintptr_t hi = (reinterpret_cast<uintptr_t>(view->data) + view->nbytes) / page * page;
    if (hi > lo) madvise(reinterpret_cast<void *>(lo), hi - lo, MADV_DONTNEED);
    entries_.push_back({host.get(), t, true, view->data});
    made_.push_back({view->name, dt, rows, cols, host.get()});
    quantized_.push_back(std::move(host));
    quantized_bytes_ += bytes;
    out = t;
    return true;
}

void AdoptedWeights::drop_uploaded_host_copies() {
    made_.clear();
    for (std::unique_ptr<uint8_t[]> &host : quantized_) {
        bool used_in_place = false;
        for (const Entry &e : entries_)
            if (e.t.data == host.get()) used_in_place = true;
        if (!used_in_place) host.reset();
    }
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
