// The main() of every Check suite (tests/unit/test_*.cpp, tests/bulk/test_bulk_units.cpp),
// with a name filter so that ONE test can be run:
//
//   build/bin/test_tokenizer --list                 names, one per line: "tcase/test"
//   build/bin/test_tokenizer --only decode_is_byte_exact
//   build/bin/test_tokenizer --only 'stream_*' --only special_tokens_and_user_text
//   VLM_CHECK_ONLY=decode_is_byte_exact ctest --test-dir build/release -R '^test_tokenizer$' -V
//
// A pattern (fnmatch glob) selects the tests whose name, "tcase/test" or tcase matches it.
// VLM_CHECK_ONLY holds patterns separated by commas (for CTest, which runs the binary
// itself). A pattern that selects nothing is an error (exit 2), so a typo or a renamed
// test cannot pass as "0 checks, 0 failures".
//
// A suite is declared as a table of test cases, each with its timeout (0: Check's
// default, CK_DEFAULT_TIMEOUT) and its tests (the names START_TEST defines; a loop test
// is {name, start, end}):
//
//   int main(int argc, char **argv)
//   {
//       return vlm_check_main(argc, argv, "sampler", {
//           {"core", 0, {
//               greedy_picks_argmax_lowest_id_on_ties,
//               {postprocess_table, 0, 7},
//           }},
//       });
//   }
//
// Setup a suite needs before its tests (temp directories, signals) stays in main(),
// before the call. Run outside CTest, the binary gets the environment CTest would give
// it (VLM_FIXTURES, VLM_BIN, CK_DEFAULT_TIMEOUT) from VLM_CHECK_DEFAULT_* definitions
// (tests/CMakeLists.txt), unless the variables are already set; a main() that reads them
// before calling vlm_check_main calls vlm_check_default_env() first.
#pragma once

#include <fnmatch.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include <check.h>  // after the standard headers: it defines a fail() macro

struct VlmCheckTest {
    VlmCheckTest(const TTest *t) : test(t) {}
    VlmCheckTest(const TTest *t, int start, int end) : test(t), loop_start(start), loop_end(end) {}
    const TTest *test;
    int loop_start = 0, loop_end = 1;
};

struct VlmCheckCase {
    const char *name;
    int timeout_s;  // 0: Check's default (CK_DEFAULT_TIMEOUT, else 4 s)
    std::vector<VlmCheckTest> tests;
};

namespace vlm_check_detail {

inline void default_env(const char *name, const char *value)
{
    if (value && *value) setenv(name, value, 0);
}

inline void split_patterns(const char *list, std::vector<std::string> &out)
{
    std::string cur;
    for (const char *p = list;; p++) {
        if (*p == ',' || *p == '\0') {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
            if (*p == '\0') break;
        } else {
            cur += *p;
        }
    }
}

inline bool matches(const std::string &pattern, const char *tcase, const char *test)
{
    const std::string full = std::string(tcase) + "/" + test;
    return fnmatch(pattern.c_str(), test, 0) == 0 || fnmatch(pattern.c_str(), full.c_str(), 0) == 0 ||
           fnmatch(pattern.c_str(), tcase, 0) == 0;
}

inline int usage(const char *prog, FILE *to, int code)
{
    std::fprintf(to,
                 "usage: %s [--list] [--only PATTERN]...\n"
                 "  --list          print every test as tcase/test and exit\n"
                 "  --only PATTERN  run only the tests whose name, tcase/test or tcase matches\n"
                 "                  the glob PATTERN (repeatable; VLM_CHECK_ONLY=P1,P2 does the same)\n",
                 prog);
    return code;
}

}  // namespace vlm_check_detail

// Sets VLM_FIXTURES, VLM_BIN and CK_DEFAULT_TIMEOUT to what CTest would set, where they are
// unset. vlm_check_main calls it; a main() that reads them before that calls it first.
inline void vlm_check_default_env()
{
    using vlm_check_detail::default_env;
#ifdef VLM_CHECK_DEFAULT_FIXTURES
    default_env("VLM_FIXTURES", VLM_CHECK_DEFAULT_FIXTURES);
#endif
#ifdef VLM_CHECK_DEFAULT_BIN
    default_env("VLM_BIN", VLM_CHECK_DEFAULT_BIN);
#endif
#ifdef VLM_CHECK_DEFAULT_TIMEOUT
    default_env("CK_DEFAULT_TIMEOUT", VLM_CHECK_DEFAULT_TIMEOUT);
#endif
}

// Builds the suite from the table (only the selected tests), runs it and returns the exit
// code for main: 0 all passed, 1 a test failed, 2 bad arguments or a pattern that
// selects no test.
inline int vlm_check_main(int argc, char **argv, const char *suite_name,
                          std::initializer_list<VlmCheckCase> cases)
{
    using namespace vlm_check_detail;
    vlm_check_default_env();

    bool list = false;
    std::vector<std::string> patterns;
    if (const char *env = std::getenv("VLM_CHECK_ONLY")) split_patterns(env, patterns);
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--list") == 0) {
            list = true;
        } else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            patterns.push_back(argv[++i]);
        } else if (std::strncmp(argv[i], "--only=", 7) == 0) {
            patterns.push_back(argv[i] + 7);
        } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
            return usage(argv[0], stdout, 0);
        } else {
            std::fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], argv[i]);
            return usage(argv[0], stderr, 2);
        }
    }

    // Which tests the patterns select, and whether each pattern selected any.
    std::vector<bool> used(patterns.size(), false);
    std::vector<std::vector<bool>> take;
    for (const VlmCheckCase &c : cases) {
        take.emplace_back();
        for (const VlmCheckTest &t : c.tests) {
            bool yes = patterns.empty();
            for (size_t i = 0; i < patterns.size(); i++) {
                if (matches(patterns[i], c.name, t.test->name)) used[i] = yes = true;
            }
            take.back().push_back(yes);
        }
    }
    for (size_t i = 0; i < patterns.size(); i++) {
        if (!used[i]) {
            std::fprintf(stderr, "%s: no test matches '%s' (--list shows them)\n", argv[0],
                         patterns[i].c_str());
            return 2;
        }
    }

    if (list) {
        size_t ci = 0;
        for (const VlmCheckCase &c : cases) {
            size_t ti = 0;
            for (const VlmCheckTest &t : c.tests)
                if (take[ci][ti++]) std::printf("%s/%s\n", c.name, t.test->name);
            ci++;
        }
        return 0;
    }

    Suite *suite = suite_create(suite_name);
    int selected = 0;  // test runs, counting each iteration of a loop test
    size_t ci = 0;
    for (const VlmCheckCase &c : cases) {
        TCase *tc = nullptr;
        size_t ti = 0;
        for (const VlmCheckTest &t : c.tests) {
            if (!take[ci][ti++]) continue;
            if (!tc) {
                tc = tcase_create(c.name);
                if (c.timeout_s > 0) tcase_set_timeout(tc, c.timeout_s);
                suite_add_tcase(suite, tc);
            }
            tcase_add_loop_test(tc, t.test, t.loop_start, t.loop_end);
            selected += t.loop_end - t.loop_start;
        }
        ci++;
    }

    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    const int failed = srunner_ntests_failed(runner);
    const int ran = srunner_ntests_run(runner);
    srunner_free(runner);
    if (ran < selected) {
        // e.g. CK_RUN_CASE narrowed the run further: say so rather than look complete
        std::fprintf(stderr, "%s: only %d of the %d selected tests ran\n", argv[0], ran, selected);
    }
    return failed == 0 ? 0 : 1;
}
