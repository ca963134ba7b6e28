// parser.h: tokens -> Program, following jinja2.parser.Parser rule for rule
// (precedence, tuples, filters/tests, call arguments, statements). Everything
// jinja2 would reject is rejected; constructs this implementation leaves out
// (template inheritance and includes, `recursive` loops, `*args` / `**kwargs`
// in calls, lipsum/cycler/joiner, extensions transformers does not load) fail
// here with the construct and its line, never at render time.
#pragma once

#include "text/jinja/ast.h"
#include "text/jinja/lexer.h"

#include <string>
#include <vector>

namespace vlm::jinja {

// Nesting bound for statements and expressions, so that hostile input cannot
// exhaust the stack while parsing (or later while rendering).
constexpr int kMaxParseDepth = 128;

bool parse(const std::vector<Token> &tokens, Program &prog, std::string &err);

}  // namespace vlm::jinja
