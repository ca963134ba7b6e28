// quant_cache.cpp: see quant_cache.h.
#include "model/quant_cache.h"
#include "core/quant.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vlm {
namespace {

constexpr char kMagic[8] = {'V', 'L', 'M', 'Q', 'C', 'A', 'C', 'H'};
constexpr size_t kAlign = 4096;
constexpr uint32_t kMaxEntries = 1u << 20;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Bounds-checked little-endian reader over the untrusted image.
struct Reader {
    const uint8_t *p;
    size_t         size, pos = 0;
    bool take(void *dst, size_t n)
    {
        if (n > size - pos) return false;
        std::memcpy(dst, p + pos, n);
        pos += n;
        return true;
    }
    template <class T> bool get(T &v) { return take(&v, sizeof v); }
};

struct Writer {
    std::vector<uint8_t> b;
    void put(const void *p, size_t n) { b.insert(b.end(), static_cast<const uint8_t *>(p), static_cast<const uint8_t *>(p) + n); }
    template <class T> void put(const T &v) { put(&v, sizeof v); }
};

bool write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        const ssize_t w = ::write(fd, p, std::min(n, size_t(1) << 30));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= size_t(w);
    }
    return true;
}

}  // namespace

uint64_t quant_cache_checksum(const uint8_t *data, size_t size)
{
    const uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full;
    uint64_t lane[4] = {P1 + P2, P2, 0, 0 - P1};
    size_t i = 0;
    for (; i + 32 <= size; i += 32)
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            std::memcpy(&w, data + i + size_t(l) * 8, 8);
            lane[l] = rotl(lane[l] + w * P2, 31) * P1;
        }
    uint64_t h = rotl(lane[0], 1) + rotl(lane[1], 7) + rotl(lane[2], 12) + rotl(lane[3], 18);
    for (; i < size; i++) h = rotl(h ^ (data[i] * P1), 11) * P2;
    return mix64(h ^ uint64_t(size));
}

bool parse_quant_cache(const uint8_t *data, size_t size, Sha256 &key, std::vector<QuantCacheEntry> &out,
                       std::string &err)
{
    out.clear();
    Reader r{data, size};
    char magic[8];
    uint32_t version = 0, count = 0;
    uint64_t table_bytes = 0;
    if (!r.take(magic, 8) || std::memcmp(magic, kMagic, 8) != 0) {
        err = "not a vlm quantized-weights cache (bad magic)";
        return false;
    }
    if (!r.get(version) || version != kQuantCacheVersion) {
        err = "cache format version " + std::to_string(version) + ", this build reads " +
              std::to_string(kQuantCacheVersion);
        return false;
    }
    if (!r.get(count) || count > kMaxEntries || !r.take(key.data(), key.size()) || !r.get(table_bytes) ||
        table_bytes > size - r.pos || table_bytes + 8 > size - r.pos) {
        err = "truncated or oversized header";
        return false;
    }
    const size_t table_start = r.pos, table_end = r.pos + size_t(table_bytes);
    uint64_t stored = 0;
    std::memcpy(&stored, data + table_end, 8);
    if (quant_cache_checksum(data, table_end) != stored) {
        err = "header checksum mismatch";
        return false;
    }
    Reader t{data, table_end, table_start};
    std::vector<QuantCacheEntry> entries;
    for (uint32_t i = 0; i < count; i++) {
        QuantCacheEntry e;
        uint16_t name_len = 0;
        uint8_t dt = 0;
        if (!t.get(name_len)) break;
        e.name.resize(name_len);
        if (!t.take(e.name.data(), name_len) || !t.get(dt) || !t.get(e.rows) || !t.get(e.cols) ||
            !t.get(e.offset) || !t.get(e.bytes) || !t.get(e.checksum)) {
            err = "table entry " + std::to_string(i) + " is truncated";
            return false;
        }
        e.dtype = DType(dt);
        if (!dtype_is_quantized(e.dtype) || e.rows <= 0 || e.cols <= 0 || e.rows > (int64_t(1) << 31) ||
            e.cols > (int64_t(1) << 31) || e.bytes != quant_tensor_bytes(e.dtype, e.rows, e.cols) ||
            e.offset % kAlign != 0 || e.offset < table_end + 8 || e.offset > size || e.bytes > size - e.offset) {
            err = "table entry " + std::to_string(i) + " (" + e.name + ") has a bad dtype, shape or range";
            return false;
        }
        entries.push_back(std::move(e));
    }
    if (entries.size() != count || t.pos != table_end) {
        err = "table size does not match its entries";
        return false;
    }
    out = std::move(entries);
    return true;
}

bool quant_cache_key(const std::vector<std::string> &files, const WeightPlan &plan, Sha256 &key, std::string &err)
{
    std::vector<std::string> sorted = files;
    std::sort(sorted.begin(), sorted.end());
    std::string text = "vlm quantized weights cache " + std::to_string(kQuantCacheVersion) + " quantizer " +
                       std::to_string(kQuantizerVersion) + " block " + std::to_string(kQuantBlock) + " format " +
                       weight_format_name(plan.format) + " vision " + (plan.vision ? "1" : "0") + " lm_head " +
                       (plan.lm_head ? "1" : "0") + "\n";
    for (const std::string &f : sorted) {
        Sha256 h;
        if (!sha256_of_file(f, h, err)) return false;
        const size_t slash = f.rfind('/');
        text += (slash == std::string::npos ? f : f.substr(slash + 1)) + " " + hex_of(h) + "\n";
    }
    return sha256_of(reinterpret_cast<const uint8_t *>(text.data()), text.size(), key);
}

QuantCache::~QuantCache()
{
    if (map_) ::munmap(map_, size_);
}

bool QuantCache::open(const std::string &path, const Sha256 &key, std::string &why)
{
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        why = std::strerror(errno);
        return false;
    }
    struct stat st;
    if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
        why = "empty file";
        ::close(fd);
        return false;
    }
    void *m = ::mmap(nullptr, size_t(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) {
        why = std::string("mmap: ") + std::strerror(errno);
        return false;
    }
    const uint8_t *data = static_cast<const uint8_t *>(m);
    const size_t size = size_t(st.st_size);
    Sha256 file_key;
    std::vector<QuantCacheEntry> entries;
    bool ok = parse_quant_cache(data, size, file_key, entries, why);
    if (ok && file_key != key) {
        why = "made for other weights (key " + hex_of(file_key).substr(0, 12) + ")";
        ok = false;
    }
    for (size_t i = 0; ok && i < entries.size(); i++)
        if (quant_cache_checksum(data + entries[i].offset, entries[i].bytes) != entries[i].checksum) {
            why = "tensor " + entries[i].name + ": checksum mismatch (the file is corrupt)";
            ok = false;
        }
    if (!ok) {
        ::munmap(m, size);
        return false;
    }
    if (map_) ::munmap(map_, size_);
    map_ = m;
    size_ = size;
    entries_ = std::move(entries);
    return true;
}

const uint8_t *QuantCache::find(const std::string &name, DType dtype, int64_t rows, int64_t cols) const
{
    for (const QuantCacheEntry &e : entries_)
        if (e.name == name && e.dtype == dtype && e.rows == rows && e.cols == cols)
            return static_cast<const uint8_t *>(map_) + e.offset;
    return nullptr;
}

bool QuantCache::write(const std::string &path, const Sha256 &key, const std::vector<Item> &items, std::string &err)
{
    Writer table;
    std::vector<uint64_t> sizes;
    for (const Item &it : items) {
        if (it.name.size() > 65535) {
            err = "tensor name too long for the cache: " + it.name.substr(0, 40);
            return false;
        }
        sizes.push_back(quant_tensor_bytes(it.dtype, it.rows, it.cols));
    }
    // Table entries have a fixed size per name, so offsets are known before writing.
    size_t table_bytes = 0;
    for (const Item &it : items) table_bytes += 2 + it.name.size() + 1 + 8 * 5;
    const size_t header = 8 + 4 + 4 + 32 + 8;
    uint64_t offset = (header + table_bytes + 8 + kAlign - 1) / kAlign * kAlign;
    std::vector<uint64_t> offsets;
    for (size_t i = 0; i < items.size(); i++) {
        const Item &it = items[i];
        offsets.push_back(offset);
        table.put(uint16_t(it.name.size()));
        table.put(it.name.data(), it.name.size());
        table.put(uint8_t(it.dtype));
        table.put(it.rows);
        table.put(it.cols);
        table.put(offset);
        table.put(sizes[i]);
        table.put(quant_cache_checksum(it.data, sizes[i]));
        offset = (offset + sizes[i] + kAlign - 1) / kAlign * kAlign;
    }
    Writer head;
    head.put(kMagic, 8);
    head.put(kQuantCacheVersion);
    head.put(uint32_t(items.size()));
    head.put(key.data(), key.size());
    head.put(uint64_t(table.b.size()));
    head.put(table.b.data(), table.b.size());
    head.put(quant_cache_checksum(head.b.data(), head.b.size()));

    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        err = tmp + ": " + std::strerror(errno);
        return false;
    }
    bool ok = write_all(fd, head.b.data(), head.b.size());
    static const uint8_t zeros[kAlign] = {};
    size_t pos = head.b.size();
    for (size_t i = 0; ok && i < items.size(); i++) {
        ok = write_all(fd, zeros, size_t(offsets[i] - pos)) && write_all(fd, items[i].data, sizes[i]);
        pos = size_t(offsets[i] + sizes[i]);
    }
    ok = ok && ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
        err = path + ": " + std::strerror(ok ? errno : saved);
        ::unlink(tmp.c_str());
        return false;
    }
    return true;
}

}  // namespace vlm
