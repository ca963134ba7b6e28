// Picks the real image URL of an <img> and resolves a src to a file inside DIR or an http(s) URL.
// Leaves out: reading or downloading the bytes (files_mode.cpp, image_download.cpp).
#include "image_source.h"

#include <algorithm>
#include <cctype>

namespace fs = std::filesystem;

namespace vlm::bulk {

namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

std::string trim(const std::string& s) {
    size_t b = 0, e = s.size();
    while (b < e && is_space(s[b])) ++b;
    while (e > b && is_space(s[e - 1])) --e;
    return s.substr(b, e - b);
}

bool has_scheme_prefix(const std::string& s, const char* scheme) {
    size_t n = std::char_traits<char>::length(scheme);
    if (s.size() < n) return false;
    for (size_t i = 0; i < n; ++i)
        if (std::tolower(static_cast<unsigned char>(s[i])) != scheme[i]) return false;
    return true;
}

// A usable candidate: not blank and not an inline data: placeholder.
bool usable(const std::string& url) {
    return !url.empty() && !has_scheme_prefix(url, "data:");
}

// True when `src` starts with a URL scheme ("http:", "data:", ...) or is protocol-relative.
bool has_scheme(const std::string& src) {
    if (src.rfind("//", 0) == 0) return true;
    size_t colon = src.find(':');
    if (colon == std::string::npos || colon == 0) return false;
    for (size_t i = 0; i < colon; ++i) {
        unsigned char c = static_cast<unsigned char>(src[i]);
        if (!(std::isalnum(c) || c == '+' || c == '-' || c == '.')) return false;
    }
    return std::isalpha(static_cast<unsigned char>(src[0])) != 0;
}

std::string percent_decode(const std::string& s) {
    auto hex = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
            i += 2;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

// `p` lies under `root` component by component (both canonical).
bool within(const fs::path& root, const fs::path& p) {
    auto r = root.begin(), q = p.begin();
    for (; r != root.end(); ++r, ++q)
        if (q == p.end() || *r != *q) return false;
    return true;
}

}  // namespace

std::string first_srcset_url(const std::string& srcset) {
    size_t i = 0;
    while (i < srcset.size() && (is_space(srcset[i]) || srcset[i] == ',')) ++i;
    size_t b = i;
    while (i < srcset.size() && !is_space(srcset[i])) ++i;
    size_t e = i;
    while (e > b && srcset[e - 1] == ',') --e;  // "a.jpg, b.jpg 2x": the comma ends the URL
    return srcset.substr(b, e - b);
}

std::string choose_html_image_src(const HtmlImageUrls& urls) {
    const std::string candidates[] = {trim(urls.data_src), trim(urls.data_lazy_src), trim(urls.data_original),
                                      trim(urls.src), first_srcset_url(urls.srcset),
                                      first_srcset_url(urls.data_srcset)};
    for (const auto& c : candidates)
        if (usable(c)) return c;
    return urls.src;
}

bool site_root_dirs(const fs::path& root, const std::vector<std::string>& static_dirs, std::vector<fs::path>& out,
                    std::string& err) {
    out.clear();
    out.push_back(root);
    auto add = [&](const fs::path& dir) {
        if (std::find(out.begin(), out.end(), dir) == out.end()) out.push_back(dir);
    };
    for (const auto& d : static_dirs) {
        std::error_code ec;
        fs::path rel(d);
        fs::path dir = fs::canonical(root / rel, ec);
        if (rel.is_absolute() || ec || !fs::is_directory(dir, ec) || !within(root, dir)) {
            err = "--static-dir " + d + ": not a directory inside " + root.string();
            return false;
        }
        add(dir);
    }
    for (const char* d : {"static", "public"}) {
        std::error_code ec;
        fs::path dir = fs::canonical(root / d, ec);
        if (!ec && fs::is_directory(dir, ec) && within(root, dir)) add(dir);
    }
    return true;
}

ImageSource resolve_image_source(const std::string& raw_src, const fs::path& doc_dir, const fs::path& root,
                                 const std::vector<fs::path>& root_dirs) {
    ImageSource s;
    std::string src = trim(raw_src);
    if (src.empty()) {
        s.message = "no src";
        return s;
    }
    if (has_scheme(src)) {
        if (has_scheme_prefix(src, "http://") || has_scheme_prefix(src, "https://")) {
            s.kind = SourceKind::remote_url;
            s.url = src;
        } else if (src.rfind("//", 0) == 0) {
            s.kind = SourceKind::remote_url;  // protocol-relative: a static site is served over https
            s.url = "https:" + src;
        } else {
            s.message = has_scheme_prefix(src, "data:") ? "data: URL image not processed"
                                                        : "unsupported URL scheme";
        }
        return s;
    }
    std::string local = percent_decode(src.substr(0, src.find_first_of("?#")));
    if (local.empty() || local.find('\0') != std::string::npos) {
        s.message = "src has no usable path";
        return s;
    }
    std::vector<fs::path> candidates;
    if (local[0] == '/') {
        std::string rest = local.substr(local.find_first_not_of('/') == std::string::npos
                                            ? local.size() : local.find_first_not_of('/'));
        for (const auto& dir : root_dirs) candidates.push_back(dir / rest);
    } else {
        candidates.push_back(doc_dir / local);
    }
    bool any_inside = false, exists_outside = false;
    fs::path first_inside;
    for (const auto& c : candidates) {
        std::error_code ec;
        fs::path canon = fs::weakly_canonical(c, ec);
        if (ec) continue;
        if (!within(root, canon)) {
            exists_outside = exists_outside || fs::exists(canon, ec);
            continue;
        }
        if (!any_inside) first_inside = canon;
        any_inside = true;
        if (fs::is_regular_file(canon, ec)) {
            s.kind = SourceKind::local_file;
            s.file = canon;
            return s;
        }
    }
    if (!any_inside || exists_outside) {  // a symlink out of DIR: say so rather than "not found"
        s.message = "image outside DIR";
        return s;
    }
    s.kind = SourceKind::missing;
    s.message = "image file not found: " + first_inside.string();
    if (candidates.size() > 1) {
        s.message += " (also tried";
        for (size_t i = 1; i < root_dirs.size(); ++i) s.message += " " + fs::relative(root_dirs[i], root).string() + "/";
        s.message += ")";
    }
    return s;
}

}  // namespace vlm::bulk
