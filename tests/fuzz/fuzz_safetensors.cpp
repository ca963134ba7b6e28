// fuzz_safetensors.cpp: libFuzzer target for the safetensors header parser.
// Feeds arbitrary bytes as a whole file and, when the parse succeeds, reads
// every byte of every tensor view so ASan flags any view that escapes the
// input. Does not cover the mmap / index.json layer (plain file I/O).
#include "model/safetensors.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::map<std::string, vlm::TensorView> views;
    std::string err;
    if (!vlm::parse_safetensors(data, size, "fuzz.safetensors", views, err)) {
        // A failure must explain itself and expose nothing.
        if (err.empty() || !views.empty()) __builtin_trap();
        return 0;
    }
    volatile uint8_t sink = 0;
    for (const auto &[name, tv] : views) {
        if (tv.name != name || size_t(tv.numel()) * vlm::dtype_size(tv.dtype) != tv.nbytes)
            __builtin_trap();
        const uint8_t *p = static_cast<const uint8_t *>(tv.data);
        if (tv.nbytes && (p < data || p + tv.nbytes > data + size)) __builtin_trap();
        for (size_t i = 0; i < tv.nbytes; ++i) sink = sink ^ p[i];
    }
    (void)sink;
    return 0;
}
