// fuzz_quant_cache.cpp: libFuzzer target for the quantized-weights cache
// parser (model/quant_cache.h), which reads a file from disk that may be
// truncated, corrupt or from another build. Each input is parsed twice: as
// a whole file, and as edits to a valid cache file (made once with
// QuantCache::write: pairs of (position, xor byte)), which reaches the
// table and range checks that random bytes rarely get past the header's
// checksum to. A parse that succeeds must describe only ranges inside its
// input, with sizes matching each entry's dtype and shape.
#include "core/quant.h"
#include "model/quant_cache.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

void check(const std::vector<uint8_t> &file)
{
    vlm::Sha256 key;
    std::vector<vlm::QuantCacheEntry> entries;
    std::string err;
    if (!vlm::parse_quant_cache(file.data(), file.size(), key, entries, err)) {
        if (err.empty() || !entries.empty()) __builtin_trap();
        return;
    }
    for (const vlm::QuantCacheEntry &e : entries) {
        if (e.offset > file.size() || e.bytes > file.size() - e.offset) __builtin_trap();
        if (e.bytes != vlm::quant_tensor_bytes(e.dtype, e.rows, e.cols)) __builtin_trap();
        volatile uint64_t sum = vlm::quant_cache_checksum(file.data() + e.offset, e.bytes);
        (void)sum;
    }
}

std::vector<uint8_t> valid_cache()
{
    std::vector<uint8_t> a(vlm::quant_tensor_bytes(vlm::DType::Q8, 3, 40), 7);
    std::vector<uint8_t> b(vlm::quant_tensor_bytes(vlm::DType::Q4, 2, 64), 9);
    std::vector<vlm::QuantCache::Item> items = {{"layer.q", vlm::DType::Q8, 3, 40, a.data()},
                                                {"layer.down", vlm::DType::Q4, 2, 64, b.data()}};
    vlm::Sha256 key{};
    std::string path = "/tmp/fuzz_quant_cache." + std::to_string(getpid()), err;
    if (!vlm::QuantCache::write(path, key, items, err)) {
        std::fprintf(stderr, "fuzz_quant_cache: %s\n", err.c_str());
        std::abort();
    }
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    unlink(path.c_str());
    return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const std::vector<uint8_t> base = valid_cache();
    check(std::vector<uint8_t>(data, data + size));
    std::vector<uint8_t> edited = base;
    for (size_t i = 0; i + 2 < size; i += 3) {
        const size_t pos = (size_t(data[i]) << 8 | data[i + 1]) % (edited.size() + 1);
        if (pos == edited.size()) edited.resize(data[i + 2] % 2 ? edited.size() / 2 : edited.size() + data[i + 2]);
        else edited[pos] ^= data[i + 2];
    }
    // Odd first byte: re-seal the header checksum after the edits, so the
    // edited table reaches the entry checks.
    if (size > 0 && (data[0] & 1) && edited.size() >= 56) {
        uint64_t table_bytes = 0;
        std::memcpy(&table_bytes, edited.data() + 48, 8);
        if (table_bytes <= edited.size() && 56 + table_bytes + 8 <= edited.size()) {
            const uint64_t sum = vlm::quant_cache_checksum(edited.data(), size_t(56 + table_bytes));
            std::memcpy(edited.data() + 56 + table_bytes, &sum, 8);
        }
    }
    check(edited);
    return 0;
}
