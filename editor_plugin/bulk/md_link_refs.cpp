// A bounded line-by-line pass that collects `[label]: destination "title"` definitions.
// Leaves out: everything else CommonMark does with these lines (they are never rewritten).
#include "md_link_refs.h"

#include <cctype>

namespace vlm::bulk {

namespace {

constexpr size_t max_label_bytes = 999;  // CommonMark's limit

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// End of the line holding `pos` (the '\n' or text.size()).
size_t line_end(const std::string& text, size_t pos) {
    size_t e = text.find('\n', pos);
    return e == std::string::npos ? text.size() : e;
}

// Skips spaces/tabs; true when only those remain before the end of the line.
bool rest_of_line_blank(const std::string& text, size_t pos, size_t& eol) {
    while (pos < text.size() && (is_blank(text[pos]) || text[pos] == '\r')) ++pos;
    eol = pos;
    return pos >= text.size() || text[pos] == '\n';
}

// A title at `pos` ("...", '...' or (...)); returns the position after it or npos. It may span
// lines but not a blank line.
size_t parse_title(const std::string& text, size_t pos) {
    if (pos >= text.size()) return std::string::npos;
    char open = text[pos];
    if (open != '"' && open != '\'' && open != '(') return std::string::npos;
    char close = open == '(' ? ')' : open;
    for (size_t i = pos + 1; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\\') { ++i; continue; }
        if (c == close) return i + 1;
        if (open == '(' && c == '(') return std::string::npos;
        if (c == '\n') {
            size_t eol = 0;
            if (rest_of_line_blank(text, i + 1, eol)) return std::string::npos;
        }
    }
    return std::string::npos;
}

// Parses a definition whose '[' is at `pos`; on success stores it and returns the position just
// past its last line (after the '\n'), else npos.
size_t parse_definition(const std::string& text, size_t pos, LinkRefs& refs) {
    size_t i = pos + 1;
    while (i < text.size() && text[i] != ']') {
        if (text[i] == '[' || i - pos > max_label_bytes + 1) return std::string::npos;
        if (text[i] == '\\') ++i;
        ++i;
    }
    if (i + 1 >= text.size() || text[i] != ']' || text[i + 1] != ':') return std::string::npos;
    std::string label = normalize_link_label(text.substr(pos + 1, i - pos - 1));
    if (label.empty()) return std::string::npos;
    i += 2;
    // Whitespace before the destination, with at most one line break.
    while (i < text.size() && is_blank(text[i])) ++i;
    if (i < text.size() && text[i] == '\r') ++i;
    if (i < text.size() && text[i] == '\n') ++i;
    while (i < text.size() && is_blank(text[i])) ++i;
    if (i >= text.size()) return std::string::npos;
    std::string dest;
    if (text[i] == '<') {
        size_t close = i + 1;
        while (close < text.size() && text[close] != '>' && text[close] != '\n' && text[close] != '<') {
            if (text[close] == '\\') ++close;
            ++close;
        }
        if (close >= text.size() || text[close] != '>') return std::string::npos;
        dest = text.substr(i + 1, close - i - 1);
        i = close + 1;
    } else {
        size_t b = i;
        while (i < text.size() && !is_ws(text[i]) && static_cast<unsigned char>(text[i]) >= 0x20) ++i;
        if (i == b) return std::string::npos;
        dest = text.substr(b, i - b);
    }
    size_t after_dest = i;
    size_t eol = 0;
    size_t end = std::string::npos;
    if (rest_of_line_blank(text, after_dest, eol)) {
        // Valid as it stands; a title may still follow on the next line.
        end = eol < text.size() ? eol + 1 : eol;
        size_t t = end;
        while (t < text.size() && is_blank(text[t])) ++t;
        size_t title_end = parse_title(text, t);
        size_t title_eol = 0;
        if (title_end != std::string::npos && rest_of_line_blank(text, title_end, title_eol))
            end = title_eol < text.size() ? title_eol + 1 : title_eol;
    } else {
        size_t t = after_dest;
        while (t < text.size() && is_blank(text[t])) ++t;
        if (t == after_dest) return std::string::npos;  // the title must be separated from the URL
        size_t title_end = parse_title(text, t);
        if (title_end == std::string::npos || !rest_of_line_blank(text, title_end, eol)) return std::string::npos;
        end = eol < text.size() ? eol + 1 : eol;
    }
    refs.dest.emplace(label, dest);  // the first definition of a label wins
    refs.spans.emplace_back(pos, end);
    return end;
}

}  // namespace

std::string normalize_link_label(const std::string& raw) {
    if (raw.size() > max_label_bytes) return {};
    std::string out;
    bool pending_space = false;
    for (size_t i = 0; i < raw.size(); ++i) {
        char c = raw[i];
        if (c == '[' || c == ']') return {};
        if (is_ws(c)) {
            pending_space = !out.empty();
            continue;
        }
        if (pending_space) out.push_back(' ');
        pending_space = false;
        if (c == '\\' && i + 1 < raw.size()) {
            out.push_back(c);
            c = raw[++i];  // an escaped bracket belongs to the label
        }
        out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return out;
}

LinkRefs find_link_definitions(const std::string& text) {
    LinkRefs refs;
    std::string fence;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = line_end(text, pos);
        size_t s = pos;
        while (s < eol && text[s] == ' ') ++s;
        if (!fence.empty()) {
            if (text.compare(s, 3, fence) == 0) fence.clear();
        } else if (text.compare(s, 3, "```") == 0 || text.compare(s, 3, "~~~") == 0) {
            fence = text.substr(s, 3);
        } else if (s - pos <= 3 && s < eol && text[s] == '[') {
            size_t next = parse_definition(text, s, refs);
            if (next != std::string::npos) {
                pos = next;
                continue;
            }
        }
        pos = eol + 1;
    }
    return refs;
}

}  // namespace vlm::bulk
