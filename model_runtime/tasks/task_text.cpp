// task_text.cpp: see task_text.h.
#include "tasks/task_text.h"

#include "util/utf8.h"

namespace vlm {

std::vector<CodePoint> code_points(std::string_view s) {
    std::vector<CodePoint> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        utf8::ScanResult r = utf8::scan(s, i);
        out.push_back({r.kind == utf8::Scan::VALID ? char32_t(r.codepoint) : char32_t(0xFFFD), i, r.length});
        i += r.length;
    }
    return out;
}

bool is_space_cp(char32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
           c == 0xA0 || c == 0x3000;
}

std::string trim(const std::string &s) {
    std::vector<CodePoint> cps = code_points(s);
    size_t b = 0, e = cps.size();
    while (b < e && is_space_cp(cps[b].cp)) b++;
    while (e > b && is_space_cp(cps[e - 1].cp)) e--;
    if (b == e) return "";
    return s.substr(cps[b].offset, cps[e - 1].offset + cps[e - 1].size - cps[b].offset);
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool ends_with(std::string_view s, std::string_view p) {
    return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

bool istarts_with(std::string_view s, std::string_view p) {
    if (s.size() < p.size()) return false;
    for (size_t i = 0; i < p.size(); i++) {
        char a = s[i], b = p[i];
        if (a >= 'A' && a <= 'Z') a = char(a - 'A' + 'a');
        if (b >= 'A' && b <= 'Z') b = char(b - 'A' + 'a');
        if (a != b) return false;
    }
    return true;
}

}  // namespace vlm
