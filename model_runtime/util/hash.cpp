// hash.cpp: see hash.h.
#include "util/hash.h"

#include <openssl/evp.h>

namespace vlm {

bool sha256_of(const uint8_t *data, size_t size, Sha256 &out) {
    unsigned int len = 0;
    return EVP_Digest(data, size, out.data(), &len, EVP_sha256(), nullptr) == 1 && len == 32;
}

std::string hex_of(const Sha256 &d) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(64);
    for (uint8_t b : d) {
        s += digits[b >> 4];
        s += digits[b & 15];
    }
    return s;
}

}  // namespace vlm
