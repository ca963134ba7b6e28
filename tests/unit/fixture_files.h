// fixture_files.h: where tests/fixtures is (VLM_FIXTURES, set by CTest) and
// how a Check suite reads a file from it, failing the test when it cannot.
#pragma once

#include <check.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace vlm_test {

inline std::string fixtures() {
    const char *d = std::getenv("VLM_FIXTURES");
    return d ? d : "(VLM_FIXTURES unset)";
}

inline std::string read_text(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    ck_assert_msg(f.good(), "cannot read %s", path.c_str());
    return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace vlm_test
