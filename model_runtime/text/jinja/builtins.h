// builtins.h: the filters, tests and methods a template may use, by id. The
// parser resolves names here so that an unknown or unsupported one fails at
// load with its line; builtins.cpp implements them with jinja2's semantics.
#pragma once

#include "text/jinja/value.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vlm::jinja {

enum class FilterId : uint8_t {
    Abs, Attr, Capitalize, Center, Count, Default, Dictsort, Escape, First, Float,
    Forceescape, Format, Indent, Int, Items, Join, Last, Length, List, Lower, Map,
    Max, Min, Reject, Rejectattr, Replace, Reverse, Round, Safe, Select, Selectattr,
    Sort, String, Sum, Title, Tojson, Trim, Truncate, Unique, Upper,
};

enum class TestId : uint8_t {
    Boolean, Callable, Defined, Divisibleby, Eq, Escaped, Even, False, Filter, Float,
    Ge, Gt, In, Integer, Iterable, Le, Lower, Lt, Mapping, Ne, None, Number, Odd,
    Sameas, Sequence, String, Test, True, Undefined, Upper,
};

// Look a filter / test name up: its id, or -1 with `why` set (unknown, or a
// real jinja2 filter this implementation leaves out).
int find_filter(const std::string &name, std::string &why);
int find_test(const std::string &name, std::string &why);

// A Python method called on a str / list / dict that this implementation does
// not provide: the parser rejects `x.name(...)` for these at load.
bool is_unsupported_method(std::string_view name);

// Whether `name` is a method of some str / list / dict / loop value: when it is
// not, `obj.name` on a dict is a plain key lookup (resolved once at parse time).
bool is_any_method_name(std::string_view name);

using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;

}  // namespace vlm::jinja
