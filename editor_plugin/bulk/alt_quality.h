// Decides whether an existing alt text is missing or weak (so a generated one may replace it),
// and makes generated text safe for HTML attributes and Markdown image brackets.
// Leaves out: judging whether a human-written description is accurate.
#pragma once
#include <string>

namespace vlm::bulk {

// True for empty text, file names (IMG_1234.jpg, DSC0001, the src's own base name), generic
// words ("image", "photo", "picture", "screenshot", "图片", ...) and digits/punctuation only.
bool is_weak_alt(const std::string& alt, const std::string& src);

// Collapses whitespace/control characters (and "\n"-style escapes) to single spaces, drops other
// backslashes (WordPress would strip them from attachment alt), turns backquotes (which could
// close a Markdown code span) into apostrophes and trims; keeps well-formed UTF-8 only.
std::string clean_generated_alt(const std::string& text);

// For an alt="..." value; in_markdown: the <img> is in a Markdown file (brackets too).
std::string escape_html_attr(const std::string& text, bool in_markdown = false);
std::string escape_markdown_alt(const std::string& text);
std::string decode_html_entities(const std::string& text);

}  // namespace vlm::bulk
