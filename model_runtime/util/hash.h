// hash.h: the two hashes the runtime keys things by. SHA-256 (OpenSSL) names
// image bytes in the vision cache, the prefix cache and the coalescing key;
// mix64 (the splitmix64 finalizer) spreads 64-bit keys for hash tables and
// chained block hashes. Neither is used for security decisions here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace vlm {

using Sha256 = std::array<uint8_t, 32>;

// False only if OpenSSL fails (it does not for in-memory input).
bool sha256_of(const uint8_t *data, size_t size, Sha256 &out);

// SHA-256 of a whole file, read in 8 MiB chunks. False with a reason.
bool sha256_of_file(const std::string &path, Sha256 &out, std::string &err);

// Lower-case hex, 64 characters.
std::string hex_of(const Sha256 &d);

// splitmix64's finalizer: a bijection on 64 bits with full avalanche.
inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

}  // namespace vlm
