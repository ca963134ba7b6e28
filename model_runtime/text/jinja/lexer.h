// lexer.h: splits a chat template into template data and the tokens inside
// {{ }} / {% %}, applying whitespace control the way jinja2.lexer does with
// transformers' settings (trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False): `-` / `+` modifiers, `{% raw %}`, comments,
// newline normalisation and Python string-literal escapes.
// Not supported (a load error): line statements/comments (transformers does not
// enable them), non-ASCII identifiers, \N{...} escapes, lone surrogates.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vlm::jinja {

enum class Tok : uint8_t {
    Data,         // template text, whitespace control applied
    VarBegin,     // {{
    VarEnd,       // }}
    BlockBegin,   // {%
    BlockEnd,     // %}
    Name,
    String,       // text: the decoded literal
    Int,
    Float,
    Op,           // text: the operator ("+", "//", "==", "(", ...)
    Eof,
};

struct Token {
    Tok type;
    int line;
    std::string text;
    int64_t ival = 0;
    double fval = 0;
};

// Tokenizes `source`; false with a message ("line N: ...") on a lexing error.
bool lex(std::string_view source, std::vector<Token> &out, std::string &err);

}  // namespace vlm::jinja
