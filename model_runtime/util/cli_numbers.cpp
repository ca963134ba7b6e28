// cli_numbers.cpp: see cli_numbers.h.
#include "util/cli_numbers.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace vlm {

bool parse_long_in(const char *s, long lo, long hi, long &out)
{
    char *end = nullptr;
    errno = 0;
    long v = std::strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return false;
    out = v;
    return true;
}

bool parse_double_in(const char *s, double lo, double hi, double &out)
{
    char *end = nullptr;
    errno = 0;
    double v = std::strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !std::isfinite(v) || v < lo || v > hi)
        return false;
    out = v;
    return true;
}

}  // namespace vlm
