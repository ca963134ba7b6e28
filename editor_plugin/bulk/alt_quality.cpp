// Weak-alt heuristics and escaping for the two document syntaxes we rewrite.
// Leaves out: language detection and any model-based quality scoring.
#include "alt_quality.h"

#include "util/utf8.h"

#include <cstring>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <vector>

namespace vlm::bulk {

namespace {

std::string lower_ascii(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::string trim(const std::string& s) {
    size_t b = 0, e = s.size();
    while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
    while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
    return s.substr(b, e - b);
}

std::string base_name(std::string src) {
    size_t cut = src.find_first_of("?#");
    if (cut != std::string::npos) src.resize(cut);
    size_t slash = src.find_last_of('/');
    return slash == std::string::npos ? src : src.substr(slash + 1);
}

bool has_image_extension(const std::string& lower) {
    static const char* exts[] = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".svg",
                                 ".tif", ".tiff", ".heic", ".avif"};
    for (const char* e : exts) {
        size_t n = std::char_traits<char>::length(e);
        if (lower.size() >= n && lower.compare(lower.size() - n, n, e) == 0) return true;
    }
    return false;
}

// Camera/phone/screenshot tool names: a short prefix, an optional separator, then digits.
bool looks_like_camera_name(const std::string& lower) {
    static const char* prefixes[] = {"img", "dsc", "dscn", "dscf", "pxl", "dcim", "photo", "image",
                                     "screenshot", "screen shot", "pic", "picture", "wp", "mvimg",
                                     "gopr", "p"};
    for (const char* p : prefixes) {
        std::string pre(p);
        if (lower.rfind(pre, 0) != 0) continue;
        std::string rest = lower.substr(pre.size());
        if (rest.empty()) continue;
        // The rest must be a timestamp/counter: digits and separators, plus the few words tools
        // put in names ("Screenshot 2024-01-02 at 10.11.12 PM").
        bool has_digit = false, ok = true;
        std::string word;
        for (size_t k = 0; k <= rest.size() && ok; ++k) {
            unsigned char c = k < rest.size() ? static_cast<unsigned char>(rest[k]) : ' ';
            if (std::isalpha(c)) { word.push_back(static_cast<char>(c)); continue; }
            if (!word.empty()) {
                ok = word == "at" || word == "am" || word == "pm" || word == "from";
                word.clear();
            }
            if (std::isdigit(c)) has_digit = true;
            else if (!(c == '_' || c == '-' || c == ' ' || c == '.' || c == ':' || c == ',' || c == '(' || c == ')'))
                ok = false;
        }
        if (ok && has_digit) return true;
    }
    return false;
}

}  // namespace

bool is_weak_alt(const std::string& alt_raw, const std::string& src) {
    std::string alt = trim(alt_raw);
    if (alt.empty()) return true;
    std::string lower = lower_ascii(alt);
    static const char* generic[] = {"image", "img", "photo", "picture", "pic", "screenshot",
                                    "screen shot", "graphic", "figure", "untitled", "placeholder",
                                    "alt", "alt text", "logo", "icon", "banner", "thumbnail",
                                    "图片", "图像", "照片", "截图", "插图", "image description"};
    for (const char* g : generic)
        if (lower == g) return true;
    bool only_punct_digits = std::all_of(lower.begin(), lower.end(), [](unsigned char c) {
        return c < 0x80 && (std::isdigit(c) || std::ispunct(c) || std::isspace(c));
    });
    if (only_punct_digits) return true;
    if (has_image_extension(lower) && lower.find(' ') == std::string::npos) return true;
    if (looks_like_camera_name(lower)) return true;
    std::string base = lower_ascii(base_name(src));
    if (!base.empty()) {
        size_t dot = base.find_last_of('.');
        std::string stem = dot == std::string::npos ? base : base.substr(0, dot);
        if (lower == base || lower == stem) return true;
    }
    return false;
}

std::string clean_generated_alt(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    bool pending_space = false;
    size_t i = 0;
    while (i < text.size()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        const vlm::utf8::ScanResult r = vlm::utf8::scan(text, i);
        size_t len = r.kind == vlm::utf8::Scan::VALID ? r.length : 0;
        if (len == 0) { ++i; continue; }
        if (len == 1 && (c < 0x20 || c == 0x7F || c == ' ')) {
            pending_space = !out.empty();
            ++i;
            continue;
        }
        // WordPress strips backslashes from attachment alt (REST meta is unslashed) but keeps
        // them in post HTML, so one would make the library and in-post alt differ. A model's
        // "\n" is a line break it meant to write: a space, like a real one.
        if (c == '\\') {
            char next = i + 1 < text.size() ? text[i + 1] : '\0';
            if (next == 'n' || next == 't' || next == 'r') {
                pending_space = !out.empty();
                i += 2;
            } else {
                ++i;
            }
            continue;
        }
        if (pending_space) { out.push_back(' '); pending_space = false; }
        // A backquote in Markdown can close a code span opened earlier in the file, even
        // escaped, and swallow the images after it: alt text has no use for one.
        if (c == '`') out.push_back('\'');
        else out.append(text, i, len);
        i += len;
    }
    return out;
}

std::string escape_html_attr(const std::string& text, bool in_markdown) {
    std::string out;
    for (char c : text) {
        // In a Markdown file brackets and parentheses could complete an unfinished
        // ![...](...) before the tag; as entities they read the same.
        if (in_markdown && (c == '[' || c == ']' || c == '(' || c == ')')) {
            out += c == '[' ? "&#91;" : c == ']' ? "&#93;" : c == '(' ? "&#40;" : "&#41;";
            continue;
        }
        switch (c) {
            case '&': out += "&amp;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '`': out += "&#96;"; break;  // in a Markdown file it could close a code span
            default: out.push_back(c);
        }
    }
    return out;
}

std::string escape_markdown_alt(const std::string& text) {
    std::string out;
    for (char c : text) {
        // Everything that could start or end Markdown syntax around it (code spans, emphasis,
        // links, a title or ')' that would complete an earlier unfinished image, entities,
        // raw HTML) is escaped; CommonMark renders an escaped punctuation mark as itself.
        if (std::strchr("\\[]*_`()\"'<>!&", c) != nullptr && c != '\0') out.push_back('\\');
        out.push_back(c);
    }
    return out;
}

std::string decode_html_entities(const std::string& text) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '&') { out.push_back(text[i]); continue; }
        size_t semi = text.find(';', i);
        if (semi == std::string::npos || semi - i > 10) { out.push_back('&'); continue; }
        std::string ent = text.substr(i + 1, semi - i - 1);
        uint32_t cp = 0;
        if (ent == "amp") cp = '&';
        else if (ent == "lt") cp = '<';
        else if (ent == "gt") cp = '>';
        else if (ent == "quot") cp = '"';
        else if (ent == "apos") cp = '\'';
        else if (ent == "nbsp") cp = ' ';
        else if (ent.size() > 1 && ent[0] == '#') {
            bool hex = ent[1] == 'x' || ent[1] == 'X';
            std::string digits = ent.substr(hex ? 2 : 1);
            if (digits.empty() || digits.size() > 7) { out.push_back('&'); continue; }
            for (char d : digits) {
                int v = std::isdigit(static_cast<unsigned char>(d)) ? d - '0'
                        : hex && std::isxdigit(static_cast<unsigned char>(d)) ? (std::tolower(d) - 'a' + 10) : -1;
                if (v < 0) { cp = 0; break; }
                cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
            }
        }
        if (cp == 0 || cp > 0x10FFFF) { out.push_back('&'); continue; }
        if (cp < 0x80) out.push_back(static_cast<char>(cp));
        else if (cp < 0x800) { out.push_back(static_cast<char>(0xC0 | (cp >> 6))); out.push_back(static_cast<char>(0x80 | (cp & 0x3F))); }
        else if (cp < 0x10000) { out.push_back(static_cast<char>(0xE0 | (cp >> 12))); out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F))); out.push_back(static_cast<char>(0x80 | (cp & 0x3F))); }
        else { out.push_back(static_cast<char>(0xF0 | (cp >> 18))); out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F))); out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F))); out.push_back(static_cast<char>(0x80 | (cp & 0x3F))); }
        i = semi;
    }
    return out;
}

}  // namespace vlm::bulk
