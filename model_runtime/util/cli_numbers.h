// cli_numbers.h: strict parsing of numeric command-line values for the tools
// (vlm-run, mkmodel, bench-model): the whole string must be a number within
// [lo, hi]; anything else (trailing junk, overflow, NaN) is refused.
#pragma once

namespace vlm {

bool parse_long_in(const char *s, long lo, long hi, long &out);
bool parse_double_in(const char *s, double lo, double hi, double &out);

}  // namespace vlm
