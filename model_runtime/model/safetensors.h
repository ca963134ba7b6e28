// safetensors.h: memory-mapped safetensors files, single or sharded through
// model.safetensors.index.json. Headers are untrusted input: the header length,
// the JSON, every dtype, shape and offset are checked against the file size
// before any tensor is exposed, and errors name the file and the tensor.
#pragma once

#include "core/backend.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace vlm {

struct TensorView {
    std::string          name;
    std::string          file;    // path of the shard holding it
    DType                dtype = DType::F32;
    std::vector<int64_t> shape;
    const void          *data = nullptr;  // into the mapping, 2-byte aligned or better
    size_t               nbytes = 0;

    int64_t numel() const;
};

class SafetensorsSet {
public:
    SafetensorsSet();
    ~SafetensorsSet();
    SafetensorsSet(const SafetensorsSet &) = delete;
    SafetensorsSet &operator=(const SafetensorsSet &) = delete;

    // Opens `dir`/model.safetensors.index.json when present, else
    // `dir`/model.safetensors. False with a reason on any problem.
    bool open_dir(const std::string &dir, std::string &err);
    // Opens one file (used by tests and tools).
    bool open_file(const std::string &path, std::string &err);

    const TensorView *find(const std::string &name) const;
    const std::map<std::string, TensorView> &tensors() const { return tensors_; }

private:
    struct Mapping;
    std::vector<std::unique_ptr<Mapping>>  maps_;
    std::map<std::string, TensorView>      tensors_;
};

// Parses a safetensors header from `bytes` (the whole file, `size` bytes) into
// views pointing inside it. Exposed for the fuzz target and unit tests.
// "[2, 3]": a shape as error messages print it.
std::string shape_string(const std::vector<int64_t> &shape);

bool parse_safetensors(const uint8_t *bytes, size_t size, const std::string &file,
                       std::map<std::string, TensorView> &out, std::string &err);

// Writes tensors (row-major data in host memory) to a safetensors file; used by
// the benchmark's model generator and tests.
struct TensorToWrite {
    std::string          name;
    DType                dtype;
    std::vector<int64_t> shape;
    const void          *data;
};
bool write_safetensors(const std::string &path,
                       const std::vector<TensorToWrite> &tensors,
                       std::string &err);

}  // namespace vlm
