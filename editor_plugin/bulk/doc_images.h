// Finds image references in Markdown and HTML text and rewrites their alt text in place,
// leaving every other byte untouched.
// Leaves out: reference-style Markdown images (![alt][id]), <picture>/<source>, CSS backgrounds.
#pragma once
#include <string>
#include <vector>

namespace vlm::bulk {

enum class ImageSyntax { markdown, html };

struct ImageRef {
    ImageSyntax syntax = ImageSyntax::html;
    std::string src;          // as written (HTML entities decoded)
    std::string alt;          // current alt, decoded; empty when missing
    bool has_alt = false;     // HTML: an alt attribute exists (Markdown: always true)
    size_t alt_begin = 0;     // byte span to replace: Markdown = text between [ and ];
    size_t alt_end = 0;       //   HTML = the whole alt attribute, or an empty span after "<img"
    size_t line = 1;          // 1-based line of the reference, for reports
    size_t tag_begin = 0;     // HTML: the whole <img ...> tag (WordPress mode looks at its class
    size_t tag_end = 0;       //   and at the block comment around it)
    std::string cls;          // HTML: class attribute, decoded
};

// Markdown files also get inline <img> tags; fenced code blocks, code spans and HTML comments
// are skipped. Refs come back in document order.
std::vector<ImageRef> find_images(const std::string& text, bool markdown);

// The text with each (ref, new_alt) replacement applied; edits must come from find_images on
// the same text. Only the alt spans change.
struct AltEdit {
    const ImageRef* ref;
    std::string new_alt;  // plain text, escaped here for the ref's syntax
};
std::string apply_alt_edits(const std::string& text, std::vector<AltEdit> edits);

// First Markdown "# " heading, HTML <title> or <h1>, for the request's title field.
std::string find_document_title(const std::string& text, bool markdown);

}  // namespace vlm::bulk
