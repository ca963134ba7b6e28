// quant_cache.h: the on-disk copy of a model's quantized weights, so that a
// restart maps them instead of quantizing the checkpoint again (minutes for
// the full model on a small CPU).
//
// Keyed by what the quantized bytes depend on: the SHA-256 of every
// checkpoint file's contents, the weight plan (format, vision, lm_head), and
// the versions of the file format and of the quantizer. The file is
// <cache_dir>/<key hex>.vlmq, so a changed checkpoint or plan never finds a
// stale file; it is written to a temporary name and renamed into place, so a
// crash never leaves a half file under the real name.
//
// Layout (little-endian): magic "VLMQCACH", u32 version, u32 entry count,
// the 32-byte key, u64 table bytes, the table (per entry: u16 name length,
// name, u8 dtype, i64 rows, i64 cols, u64 offset, u64 bytes, u64 checksum),
// u64 checksum of everything before it; then each tensor's bytes (core/
// quant.h layout) at a 4096-aligned offset. The file is read as untrusted:
// every field is bounds-checked (fuzz target tests/fuzz/fuzz_quant_cache),
// and every tensor's checksum is verified before any of it is used; a file
// that fails any check is reported, removed and rebuilt, never used.
#pragma once

#include "core/backend.h"
#include "model/weight_plan.h"
#include "util/hash.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vlm {

constexpr uint32_t kQuantCacheVersion = 1;
// Bump whenever quantize_rows can produce different bytes for the same input.
constexpr uint32_t kQuantizerVersion = 1;

struct QuantCacheEntry {
    std::string name;
    DType       dtype = DType::Q8;
    int64_t     rows = 0, cols = 0;
    uint64_t    offset = 0, bytes = 0, checksum = 0;
};

// A fast 64-bit checksum of bytes (four independent multiply-rotate lanes);
// catches corruption, not tampering.
uint64_t quant_cache_checksum(const uint8_t *data, size_t size);

// Parses a cache file image: header, table and their checksum, each entry's
// dtype, shape, size (quant_tensor_bytes) and range inside the file. Does not
// read tensor bytes. False with a reason; `out` is then empty.
bool parse_quant_cache(const uint8_t *data, size_t size, Sha256 &key, std::vector<QuantCacheEntry> &out,
                       std::string &err);

// The key of `files` (checkpoint files, any order) under `plan`.
bool quant_cache_key(const std::vector<std::string> &files, const WeightPlan &plan, Sha256 &key,
                     std::string &err);

class QuantCache {
public:
    QuantCache() = default;
    ~QuantCache();
    QuantCache(const QuantCache &) = delete;
    QuantCache &operator=(const QuantCache &) = delete;

    // Maps `path` read-only and checks it: parse, key, every checksum. False
    // with the reason when it cannot be used (absent: errno-style reason).
    bool open(const std::string &path, const Sha256 &key, std::string &why);
    bool is_open() const { return map_ != nullptr; }
    // The bytes of tensor `name` as (dtype, rows, cols), or null.
    const uint8_t *find(const std::string &name, DType dtype, int64_t rows, int64_t cols) const;

    struct Item {
        std::string    name;
        DType          dtype;
        int64_t        rows, cols;
        const uint8_t *data;  // quant_tensor_bytes(dtype, rows, cols)
    };
    // Writes `items` as `path` (temporary file, fsync, rename).
    static bool write(const std::string &path, const Sha256 &key, const std::vector<Item> &items,
                      std::string &err);

private:
    void                        *map_ = nullptr;
    size_t                       size_ = 0;
    std::vector<QuantCacheEntry> entries_;
};

}  // namespace vlm
