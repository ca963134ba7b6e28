// task_text.h: the small text operations the task passes share, over UTF-8
// decoded by the runtime's one decoder (util/utf8.h): code points with their
// byte offsets, Unicode-aware trimming, prefix and suffix tests. Internal to
// tasks/ (templates, request building, language detection, post-processing).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace vlm {

struct CodePoint {
    char32_t cp;             // U+FFFD for bytes that are not UTF-8
    size_t   offset, size;   // bytes in the source string
};

// Every code point of `s`; each ill-formed subpart becomes one U+FFFD.
std::vector<CodePoint> code_points(std::string_view s);

// ASCII whitespace, NBSP and the ideographic space.
bool is_space_cp(char32_t c);

// Trims is_space_cp() code points at both ends.
std::string trim(const std::string &s);

bool starts_with(std::string_view s, std::string_view p);
bool ends_with(std::string_view s, std::string_view p);
bool istarts_with(std::string_view s, std::string_view p);   // ASCII case-insensitive

}  // namespace vlm
