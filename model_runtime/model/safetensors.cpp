// safetensors.cpp: reads safetensors files through read-only private mmaps,
// single or sharded (model.safetensors.index.json), and writes them.
// The header is untrusted: every length, dtype, shape and offset is checked
// before a view is handed out. Tensors stored misaligned (headers without
// padding) are copied to aligned memory so views are always naturally
// aligned. Not handled: dtypes other than F32, BF16, F16
// and I32; files that need byte swapping (we assume a little-endian host).
#include "model/safetensors.h"

#include <jansson.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <utility>

namespace vlm {

namespace {

// Real headers are a few hundred KB; anything this large is corruption or an
// attack, and we refuse before asking jansson to parse it.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

// Frees a jansson value when leaving scope.
struct JsonRef {
    json_t *j = nullptr;
    explicit JsonRef(json_t *v) : j(v) {}
    ~JsonRef() { if (j) json_decref(j); }
    JsonRef(const JsonRef &) = delete;
    JsonRef &operator=(const JsonRef &) = delete;
};

bool dtype_from_string(const char *s, DType &out) {
    if (!strcmp(s, "F32"))  { out = DType::F32;  return true; }
    if (!strcmp(s, "BF16")) { out = DType::BF16; return true; }
    if (!strcmp(s, "F16"))  { out = DType::F16;  return true; }
    if (!strcmp(s, "I32"))  { out = DType::I32;  return true; }
    return false;
}

// A JSON integer >= 0, as uint64. Reals, negatives and other types fail.
bool json_nonneg_int(const json_t *v, uint64_t &out) {
    if (!json_is_integer(v)) return false;
    json_int_t x = json_integer_value(v);
    if (x < 0) return false;
    out = uint64_t(x);
    return true;
}

// Parses one tensor entry of the header; `data_size` bounds the offsets.
bool parse_entry(const std::string &file, const char *name, json_t *entry,
                 const uint8_t *data, uint64_t data_size, TensorView &tv,
                 uint64_t &begin, std::string &err) {
    const std::string where = file + ": tensor " + name + ": ";
    if (!json_is_object(entry)) {
        err = where + "header entry is not a JSON object";
        return false;
    }
    json_t *jdtype = json_object_get(entry, "dtype");
    json_t *jshape = json_object_get(entry, "shape");
    json_t *joffs = json_object_get(entry, "data_offsets");
    if (!json_is_string(jdtype)) {
        err = where + "missing or non-string \"dtype\"";
        return false;
    }
    if (!dtype_from_string(json_string_value(jdtype), tv.dtype)) {
        err = where + "unsupported dtype \"" + json_string_value(jdtype) +
              "\" (supported: F32, BF16, F16, I32)";
        return false;
    }
    if (!json_is_array(jshape)) {
        err = where + "missing or non-array \"shape\"";
        return false;
    }
    // Element count, kept below INT64_MAX so numel() and byte sizes fit.
    uint64_t numel = 1;
    bool overflow = false;
    tv.shape.clear();
    for (size_t i = 0; i < json_array_size(jshape); ++i) {
        uint64_t d = 0;
        if (!json_nonneg_int(json_array_get(jshape, i), d)) {
            err = where + "shape entry " + std::to_string(i) +
                  " is not a non-negative integer";
            return false;
        }
        tv.shape.push_back(int64_t(d));
        if (__builtin_mul_overflow(numel, d, &numel) || numel > uint64_t(INT64_MAX))
            overflow = true;
    }
    uint64_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(numel, uint64_t(dtype_size(tv.dtype)), &nbytes)) {
        err = where + "shape " + shape_string(tv.shape) + " overflows the element count";
        return false;
    }
    if (!json_is_array(joffs) || json_array_size(joffs) != 2) {
        err = where + "\"data_offsets\" is not an array [begin, end]";
        return false;
    }
    uint64_t b = 0, e = 0;
    if (!json_nonneg_int(json_array_get(joffs, 0), b) ||
        !json_nonneg_int(json_array_get(joffs, 1), e) || b > e) {
        err = where + "\"data_offsets\" must be integers [begin, end] with 0 <= begin <= end";
        return false;
    }
    if (e > data_size) {
        err = where + "offsets outside the file: [" + std::to_string(b) + ", " +
              std::to_string(e) + "] but the data section has " +
              std::to_string(data_size) + " bytes";
        return false;
    }
    if (e - b != nbytes) {
        err = where + "byte length " + std::to_string(e - b) + " does not match shape " +
              shape_string(tv.shape) + " x " + dtype_name(tv.dtype) + " = " +
              std::to_string(nbytes) + " bytes";
        return false;
    }
    tv.name = name;
    tv.file = file;
    tv.data = data + b;
    tv.nbytes = size_t(nbytes);
    begin = b;
    return true;
}

}  // namespace

int64_t TensorView::numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;  // bounded by the parser
    return n;
}

bool parse_safetensors(const uint8_t *bytes, size_t size, const std::string &file,
                       std::map<std::string, TensorView> &out, std::string &err) {
    out.clear();
    if (size < 8) {
        err = file + ": truncated file: " + std::to_string(size) +
              " bytes, a safetensors file needs at least 8";
        return false;
    }
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
    if (header_len > kMaxHeaderBytes) {
        err = file + ": absurd header length " + std::to_string(header_len) +
              " (limit " + std::to_string(kMaxHeaderBytes) + ")";
        return false;
    }
    if (header_len > size - 8) {
        err = file + ": header length " + std::to_string(header_len) +
              " goes beyond the end of the file (" + std::to_string(size) +
              " bytes); the file is truncated or not safetensors";
        return false;
    }
    json_error_t jerr;
    JsonRef root(json_loadb(reinterpret_cast<const char *>(bytes + 8), size_t(header_len),
                            JSON_REJECT_DUPLICATES, &jerr));
    if (!root.j) {
        err = file + ": header is not valid JSON: " + jerr.text + " (at byte " +
              std::to_string(jerr.position) + ")";
        return false;
    }
    if (!json_is_object(root.j)) {
        err = file + ": header JSON is not an object";
        return false;
    }
    const uint8_t *data = bytes + 8 + header_len;
    const uint64_t data_size = size - 8 - header_len;

    std::vector<std::pair<uint64_t, const TensorView *>> ranges;  // (begin, view)
    const char *key;
    json_t *value;
    json_object_foreach(root.j, key, value) {
        if (!strcmp(key, "__metadata__")) {
            // Free-form string map; we only check its type.
            if (!json_is_object(value)) {
                err = file + ": \"__metadata__\" is not a JSON object";
                out.clear();
                return false;
            }
            continue;
        }
        TensorView tv;
        uint64_t begin = 0;
        if (!parse_entry(file, key, value, data, data_size, tv, begin, err)) {
            out.clear();
            return false;
        }
        auto [it, inserted] = out.emplace(tv.name, std::move(tv));
        (void)inserted;  // duplicates were rejected by the JSON parser
        if (it->second.nbytes > 0) ranges.emplace_back(begin, &it->second);
    }
    // Two tensors sharing bytes would alias each other's weights.
    std::sort(ranges.begin(), ranges.end(),
              [](const auto &a, const auto &b) { return a.first < b.first; });
    for (size_t i = 1; i < ranges.size(); ++i) {
        const auto &prev = ranges[i - 1];
        if (prev.first + prev.second->nbytes > ranges[i].first) {
            err = file + ": tensor " + ranges[i].second->name + ": data overlaps tensor " +
                  prev.second->name;
            out.clear();
            return false;
        }
    }
    return true;
}

// ---------------------------------------------------------------------------
// Memory-mapped files

struct SafetensorsSet::Mapping {
    void  *addr = nullptr;
    size_t size = 0;
    // Aligned copies of tensors whose bytes sit misaligned in the file (legal
    // for writers that do not pad the header); views point here instead.
    std::vector<void *> aligned_copies;
    ~Mapping() {
        for (void *p : aligned_copies) free(p);
        if (addr) munmap(addr, size);
    }
};

SafetensorsSet::SafetensorsSet() = default;
SafetensorsSet::~SafetensorsSet() {
    tensors_.clear();  // views die before the mappings they point into
    maps_.clear();
}

namespace {

bool file_exists(const std::string &path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

bool SafetensorsSet::open_file(const std::string &path, std::string &err) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = path + ": cannot open: " + strerror(errno);
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = path + ": not a regular file";
        ::close(fd);
        return false;
    }
    auto map = std::make_unique<Mapping>();
    map->size = size_t(st.st_size);
    if (map->size < 8) {
        ::close(fd);
        err = path + ": truncated file: " + std::to_string(map->size) +
              " bytes, a safetensors file needs at least 8";
        return false;
    }
    void *addr = mmap(nullptr, map->size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);  // the mapping keeps the file alive
    if (addr == MAP_FAILED) {
        err = path + ": mmap failed: " + strerror(errno);
        return false;
    }
    map->addr = addr;

    std::map<std::string, TensorView> found;
    if (!parse_safetensors(static_cast<const uint8_t *>(addr), map->size, path, found, err))
        return false;
    for (auto &[name, tv] : found) {
        auto it = tensors_.find(name);
        if (it != tensors_.end()) {
            err = path + ": tensor " + name + ": also present in " + it->second.file;
            return false;
        }
    }
    for (auto &[name, tv] : found) {
        if (tv.nbytes > 0 && uintptr_t(tv.data) % dtype_size(tv.dtype) != 0) {
            size_t padded = (tv.nbytes + 63) / 64 * 64;
            void *copy = aligned_alloc(64, padded);
            if (!copy) {
                err = path + ": tensor " + name + ": out of memory aligning " +
                      std::to_string(tv.nbytes) + " bytes";
                return false;
            }
            memcpy(copy, tv.data, tv.nbytes);
            map->aligned_copies.push_back(copy);
            tv.data = copy;
        }
    }
    for (auto &[name, tv] : found) tensors_.emplace(name, std::move(tv));
    maps_.push_back(std::move(map));
    return true;
}

bool SafetensorsSet::open_dir(const std::string &dir, std::string &err) {
    const std::string index_path = dir + "/model.safetensors.index.json";
    const std::string single_path = dir + "/model.safetensors";
    if (!file_exists(index_path)) {
        if (!file_exists(single_path)) {
            err = "model directory " + dir +
                  ": neither model.safetensors.index.json nor model.safetensors found";
            return false;
        }
        return open_file(single_path, err);
    }

    json_error_t jerr;
    JsonRef root(json_load_file(index_path.c_str(), JSON_REJECT_DUPLICATES, &jerr));
    if (!root.j) {
        err = index_path + ": invalid JSON: " + jerr.text + " (line " +
              std::to_string(jerr.line) + ")";
        return false;
    }
    json_t *weight_map = json_object_get(root.j, "weight_map");
    if (!json_is_object(weight_map)) {
        err = index_path + ": missing or non-object \"weight_map\"";
        return false;
    }
    // Shard names come from the file: keep them inside `dir`.
    std::vector<std::pair<std::string, std::string>> wanted;  // (tensor, shard)
    std::set<std::string> shards;
    const char *key;
    json_t *value;
    json_object_foreach(weight_map, key, value) {
        if (!json_is_string(value)) {
            err = index_path + ": tensor " + key + ": shard name is not a string";
            return false;
        }
        std::string shard = json_string_value(value);
        if (shard.empty() || shard.find('/') != std::string::npos || shard == "." ||
            shard == "..") {
            err = index_path + ": tensor " + key + ": invalid shard file name \"" + shard + "\"";
            return false;
        }
        wanted.emplace_back(key, shard);
        shards.insert(shard);
    }
    if (wanted.empty()) {
        err = index_path + ": \"weight_map\" lists no tensors";
        return false;
    }
    for (const std::string &shard : shards) {
        const std::string path = dir + "/" + shard;
        if (!file_exists(path)) {
            err = index_path + ": shard " + shard + " listed in weight_map is missing (" +
                  path + ")";
            return false;
        }
        if (!open_file(path, err)) return false;
    }
    for (const auto &[name, shard] : wanted) {
        const std::string path = dir + "/" + shard;
        auto it = tensors_.find(name);
        if (it == tensors_.end() || it->second.file != path) {
            err = path + ": tensor " + name +
                  ": listed in model.safetensors.index.json but absent from this shard";
            return false;
        }
    }
    return true;
}

const TensorView *SafetensorsSet::find(const std::string &name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------
// Writer

bool write_safetensors(const std::string &path, const std::vector<TensorToWrite> &tensors,
                       std::string &err) {
    // Larger elements first, so every tensor lands on its natural alignment
    // given the 8-byte aligned data section (the reference library does the same).
    std::vector<const TensorToWrite *> order;
    std::set<std::string> names;
    for (const TensorToWrite &t : tensors) {
        if (t.name.empty() || t.name == "__metadata__" || !names.insert(t.name).second) {
            err = path + ": tensor " + t.name + ": empty, reserved or duplicate name";
            return false;
        }
        order.push_back(&t);
    }
    std::stable_sort(order.begin(), order.end(), [](const TensorToWrite *a, const TensorToWrite *b) {
        return dtype_size(a->dtype) > dtype_size(b->dtype);
    });

    JsonRef header(json_object());
    json_object_set_new(header.j, "__metadata__", json_pack("{s:s}", "format", "pt"));
    std::vector<size_t> sizes;
    uint64_t offset = 0;
    for (const TensorToWrite *t : order) {
        uint64_t bytes = dtype_size(t->dtype);
        json_t *shape = json_array();
        for (int64_t d : t->shape) {
            if (d < 0 || __builtin_mul_overflow(bytes, uint64_t(d), &bytes)) {
                json_decref(shape);
                err = path + ": tensor " + t->name + ": invalid shape " + shape_string(t->shape);
                return false;
            }
            json_array_append_new(shape, json_integer(d));
        }
        if (bytes > 0 && t->data == nullptr) {
            json_decref(shape);
            err = path + ": tensor " + t->name + ": no data";
            return false;
        }
        json_t *entry = json_object();
        json_object_set_new(entry, "dtype", json_string(dtype_name(t->dtype)));
        json_object_set_new(entry, "shape", shape);
        json_object_set_new(entry, "data_offsets",
                            json_pack("[II]", json_int_t(offset), json_int_t(offset + bytes)));
        json_object_set_new(header.j, t->name.c_str(), entry);
        sizes.push_back(size_t(bytes));
        offset += bytes;
    }
    char *text = json_dumps(header.j, JSON_COMPACT);
    if (!text) {
        err = path + ": cannot serialize the header";
        return false;
    }
    std::string hdr(text);
    free(text);
    // Spaces are valid JSON padding; they align the data section to 8 bytes.
    while ((8 + hdr.size()) % 8 != 0) hdr.push_back(' ');

    const std::string tmp = path + ".tmp";
    FILE *f = fopen(tmp.c_str(), "wb");
    if (!f) {
        err = tmp + ": cannot create: " + strerror(errno);
        return false;
    }
    uint8_t len_le[8];
    uint64_t n = hdr.size();
    for (int i = 0; i < 8; ++i) len_le[i] = uint8_t(n >> (8 * i));
    bool ok = fwrite(len_le, 1, 8, f) == 8 && fwrite(hdr.data(), 1, hdr.size(), f) == hdr.size();
    // Straight from the caller's buffers: no staging copy of large tensors.
    for (size_t i = 0; ok && i < order.size(); ++i)
        ok = sizes[i] == 0 || fwrite(order[i]->data, 1, sizes[i], f) == sizes[i];
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        err = tmp + ": write failed: " + strerror(errno);
        unlink(tmp.c_str());
        return false;
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        err = path + ": cannot rename from " + tmp + ": " + strerror(errno);
        unlink(tmp.c_str());
        return false;
    }
    return true;
}

std::string shape_string(const std::vector<int64_t> &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

}  // namespace vlm
