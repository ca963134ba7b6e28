// Markdown link reference definitions (`[id]: url "title"`), which reference-style images
// (![alt][id], ![alt][], ![alt]) point at.
// Leaves out: Unicode case folding of labels (ASCII only), definitions inside block quotes or
// list items, and the rule that a definition cannot interrupt a paragraph (we accept it there).
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vlm::bulk {

struct LinkRefs {
    std::map<std::string, std::string> dest;            // normalised label -> destination
    std::vector<std::pair<size_t, size_t>> spans;       // byte spans of the definitions, in order
};

// Labels match case-insensitively with whitespace runs collapsed and the ends trimmed; empty
// when the raw label is blank, longer than 999 bytes, or holds an unescaped bracket.
std::string normalize_link_label(const std::string& raw);

// Every definition at a line start (up to 3 spaces in) outside fenced code blocks; the first
// definition of a label wins. The destination may be in <angle brackets>; the title is
// checked but not kept.
LinkRefs find_link_definitions(const std::string& text);

}  // namespace vlm::bulk
