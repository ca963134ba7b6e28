// hash.cpp: see hash.h.
#include "util/hash.h"

#include <openssl/evp.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace vlm {

bool sha256_of(const uint8_t *data, size_t size, Sha256 &out) {
    unsigned int len = 0;
    return EVP_Digest(data, size, out.data(), &len, EVP_sha256(), nullptr) == 1 && len == 32;
}

bool sha256_of_file(const std::string &path, Sha256 &out, std::string &err) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = path + ": " + std::strerror(errno);
        return false;
    }
    std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX *)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    std::vector<uint8_t> buf(size_t(8) << 20);
    bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1;
    while (ok) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            err = path + ": " + std::strerror(errno);
            ok = false;
            break;
        }
        if (n == 0) break;
        ok = EVP_DigestUpdate(ctx.get(), buf.data(), size_t(n)) == 1;
    }
    ::close(fd);
    unsigned int len = 0;
    if (ok && (EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != 32)) ok = false;
    if (!ok && err.empty()) err = path + ": SHA-256 failed";
    return ok;
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
