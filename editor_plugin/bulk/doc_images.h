// Finds image references in Markdown and HTML text and rewrites their alt text in place,
// leaving every other byte untouched (except that ![alt][] and ![alt] gain an explicit label).
// Markdown: inline ![alt](src) and reference-style ![alt][id], ![alt][] and ![alt] (when a
// `[id]: url` definition exists, see md_link_refs.h). HTML: <img>, with lazy-loading attributes
// and srcset (see image_source.h for which URL is the image).
// Leaves out: <picture>/<source>, CSS backgrounds, images in Markdown link definitions' titles,
// Markdown images whose alt is wrapped over several lines (rewriting it on one line could drop a
// line that means something else: a fence, a heading, a definition).
#pragma once
#include <string>
#include <vector>

namespace vlm::bulk {

enum class ImageSyntax { markdown, html };

struct ImageRef {
    ImageSyntax syntax = ImageSyntax::html;
    std::string src;          // the image's URL as written (HTML entities decoded): for <img>
                              //   the real one behind lazy-loading (choose_html_image_src), for
                              //   a Markdown reference its definition's destination
    std::string alt;          // current alt, decoded; empty when missing
    bool has_alt = false;     // HTML: an alt attribute exists (Markdown: always true)
    size_t alt_begin = 0;     // byte span to replace: Markdown = text between [ and ];
    size_t alt_end = 0;       //   HTML = the whole alt attribute, or an empty span after "<img"
    size_t line = 1;          // 1-based line of the reference, for reports
    size_t tag_begin = 0;     // HTML: the whole <img ...> tag (WordPress mode looks at its class
    size_t tag_end = 0;       //   and at the block comment around it)
    std::string cls;          // HTML: class attribute, decoded
    bool in_markdown = false; // found in a Markdown file (an <img> there is escaped more)
    std::string md_label;     // Markdown ![alt][] and ![alt]: the alt doubles as the label, so the
                              //   rewrite writes "new alt][label" (alt_end of ![alt][] then
                              //   covers "alt][") and the reference still resolves
};

// Markdown files also get inline <img> tags; fenced code blocks, code spans, HTML comments and
// link definition lines are skipped. Refs come back in document order.
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
