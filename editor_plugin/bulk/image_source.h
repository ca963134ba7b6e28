// Which URL of an image reference is the real image, and where that URL points for `files DIR`:
// a file inside DIR (site-root paths also tried under the static folders), an http(s) URL, or
// nothing usable (with the reason for the report).
// Leaves out: <picture>/<source> candidates, choosing the largest srcset candidate, and CSS
// backgrounds; downloading (image_download.h).
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace vlm::bulk {

// Largest image read from disk or downloaded (bytes); the service caps uploads too.
constexpr size_t max_image_bytes = size_t{20} << 20;

// The URL attributes of one <img>, entity-decoded, empty when absent.
struct HtmlImageUrls {
    std::string src, data_src, data_lazy_src, data_original, srcset, data_srcset;
};

// Lazy-loading plugins park a placeholder (often a data: GIF) in src and the real image in a
// data-* attribute: data-src > data-lazy-src > data-original > src (unless empty or data:) >
// first srcset candidate > first data-srcset candidate; src as written when none is usable.
std::string choose_html_image_src(const HtmlImageUrls& urls);

// The URL of the first candidate of a srcset value ("a.jpg 1x, b.jpg 2x" -> "a.jpg"); empty
// when there is none. Commas inside a URL are kept (HTML's own splitting rule).
std::string first_srcset_url(const std::string& srcset);

enum class SourceKind {
    local_file,   // `file` is a regular file inside DIR
    remote_url,   // `url` is an absolute http(s) URL
    skip,         // nothing to describe (data: URL, other scheme, outside DIR): a skipped row
    missing,      // a local path that exists under none of the places tried: a failed row
};

struct ImageSource {
    SourceKind kind = SourceKind::skip;
    std::filesystem::path file;
    std::string url;
    std::string message;  // skip/missing: why, for the report
};

// Where a site-root src (/images/x.png) may live: DIR itself, then each --static-dir (relative
// to DIR), then DIR/static and DIR/public when they are directories. Every entry is canonical
// and inside `root`; false + err when a --static-dir is missing or leaves DIR.
bool site_root_dirs(const std::filesystem::path& root, const std::vector<std::string>& static_dirs,
                    std::vector<std::filesystem::path>& out, std::string& err);

// Resolves `src` from a document in `doc_dir`. Relative paths are tried against doc_dir only;
// site-root paths against each of `root_dirs` in order, first existing file wins. Every
// candidate must stay inside `root` after symlinks are resolved.
ImageSource resolve_image_source(const std::string& src, const std::filesystem::path& doc_dir,
                                 const std::filesystem::path& root,
                                 const std::vector<std::filesystem::path>& root_dirs);

}  // namespace vlm::bulk
