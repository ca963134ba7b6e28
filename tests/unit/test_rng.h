// test_rng.h: the suites' deterministic test data: a 64-bit LCG (Knuth's
// MMIX constants) giving uniform floats in [-1, 1) and, by Box-Muller,
// roughly normal ones. Same seed, same numbers, on every machine.
#pragma once

#include <cmath>
#include <cstdint>

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 6364136223846793005ull + 1442695040888963407ull) {}
    float uniform()  // [-1, 1)
    {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return float(int32_t(s >> 32)) / 2147483648.0f;
    }
    float normal()  // Box-Muller, enough for test data
    {
        float u1 = (uniform() + 1.0f) * 0.5f + 1e-7f, u2 = uniform();
        return std::sqrt(-2.0f * std::log(u1)) * std::cos(3.14159265f * u2);
    }
};
