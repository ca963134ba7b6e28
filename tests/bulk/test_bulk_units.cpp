// Unit tests for vlm-bulk's weak-alt heuristics, document scanners and rewriter (no network).
// Built and run by tests/bulk/run.sh before the end-to-end tests.
#include <check.h>

#include <cstdio>
#include <random>
#include <string>

#include "../../editor_plugin/bulk/alt_quality.h"
#include "../../editor_plugin/bulk/doc_images.h"

using namespace vlm::bulk;

// ck_assert_str_eq keeps the raw pointers past the full expression, so temporaries must not be
// passed to it; compare owned copies instead.
#define EXPECT_TEXT(actual, expected)                                                          \
    do {                                                                                       \
        const std::string got_ = (actual), want_ = (expected);                                 \
        ck_assert_msg(got_ == want_, "got '%s', want '%s'", got_.c_str(), want_.c_str());      \
    } while (0)

START_TEST(weak_alts_are_recognised) {
    const char* weak[] = {"", "  ", "IMG_1234.jpg", "IMG_1234", "DSC_0042", "image", "Photo", "PICTURE",
                          "screenshot", "Screenshot 2024-01-02 at 10.11.12", "图片", "截图", "123", "--- 42!",
                          "photo.png", "pxl_20230101_123456789"};
    for (const char* a : weak) ck_assert_msg(is_weak_alt(a, "x/y.png"), "should be weak: '%s'", a);
    ck_assert(is_weak_alt("sunset-beach", "img/sunset-beach.jpg"));  // the file's own name
    const char* human[] = {"A red bicycle leaning against a stone wall", "一只猫在窗台上晒太阳", "Logo of ACME Corp",
                           "Photo of the team at the 2023 offsite", "3D printer"};
    for (const char* a : human) ck_assert_msg(!is_weak_alt(a, "x/y.png"), "should be human: '%s'", a);
}
END_TEST

START_TEST(markdown_scanner_skips_code_and_keeps_bytes) {
    std::string md = "# T\n\n![](a.png) and ![x [nested] y](b.png \"t\")\n\n```\n![](c.png)\n```\n"
                     "`![](d.png)` \\![](e.png) ![Cover \\[draft\\]](f.png)\n<img src='g.png'>\n";
    auto refs = find_images(md, true);
    ck_assert_int_eq(refs.size(), 4);
    EXPECT_TEXT(refs[0].src, "a.png");
    EXPECT_TEXT(refs[1].alt, "x [nested] y");
    EXPECT_TEXT(refs[2].alt, "Cover [draft]");
    EXPECT_TEXT(refs[3].src, "g.png");
    ck_assert(!refs[3].has_alt);
    std::vector<AltEdit> edits = {{&refs[0], "a [b] \"c\""}, {&refs[3], "g & <h>"}};
    std::string out = apply_alt_edits(md, edits);
    std::string expect = "# T\n\n![a \\[b\\] \"c\"](a.png) and ![x [nested] y](b.png \"t\")\n\n```\n![](c.png)\n```\n"
                         "`![](d.png)` \\![](e.png) ![Cover \\[draft\\]](f.png)\n<img alt=\"g &amp; &lt;h&gt;\" src='g.png'>\n";
    EXPECT_TEXT(out, expect);
}
END_TEST

START_TEST(html_scanner_handles_attribute_forms) {
    std::string html = "<IMG SRC=\"a.png\" ALT=\"123\"><img alt=photo src=b.png/><!-- <img src=c.png> -->"
                       "<img\nsrc=\"d&amp;e.png\"\nalt='x &quot;y&quot;'><imgx src=z.png><img src=\"unterminated";
    auto refs = find_images(html, false);
    ck_assert_int_eq(refs.size(), 3);
    EXPECT_TEXT(refs[0].alt, "123");
    EXPECT_TEXT(refs[1].alt, "photo");
    ck_assert_str_eq(refs[1].src.c_str(), "b.png/");  // unquoted value runs to whitespace or '>'
    EXPECT_TEXT(refs[2].src, "d&e.png");
    EXPECT_TEXT(refs[2].alt, "x \"y\"");
    ck_assert_int_eq(refs[2].line, 1);  // the line where the tag starts
    std::vector<AltEdit> edits = {{&refs[0], "N"}, {&refs[1], "M"}};
    std::string out = apply_alt_edits(html, edits);
    ck_assert(out.rfind("<IMG SRC=\"a.png\" alt=\"N\"><img alt=\"M\" src=b.png/>", 0) == 0);
    EXPECT_TEXT(out.substr(out.find("<!--")), html.substr(html.find("<!--")));
}
END_TEST

START_TEST(generated_text_is_cleaned) {
    EXPECT_TEXT(clean_generated_alt("  a\n\tb  \x01 c \xff\xfe"), "a b c");
    EXPECT_TEXT(clean_generated_alt("猫\n在"), "猫 在");
    // backslashes would not survive WordPress's attachment meta: escapes become spaces, the rest go
    EXPECT_TEXT(clean_generated_alt("a\\nb \\\\c\\"), "a b c");
    EXPECT_TEXT(find_document_title("<title>A &amp; B</title>", false), "A & B");
    EXPECT_TEXT(find_document_title("intro\n# Heading one\n", true), "Heading one");
}
END_TEST

// Random bytes built from the syntax's own characters: the scanners must stay in bounds and every
// span must lie inside the text (ASan/UBSan builds turn any overrun into a failure).
START_TEST(scanners_survive_random_input) {
    std::mt19937 rng(1234);
    const char* tokens[] = {"![", "]", "(", ")", "<img", " src=", " alt=", "\"", "'", "a.png", "\n", "`",
                            "```", "<!--", "-->", "\\", " ", ">", "/", "x", "<script>", "&amp;", "&#"};
    const size_t n_tokens = sizeof tokens / sizeof tokens[0];
    size_t refs_seen = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        std::string text;
        size_t len = rng() % 60;
        for (size_t i = 0; i < len; ++i) text += tokens[rng() % n_tokens];
        for (bool md : {true, false}) {
            auto refs = find_images(text, md);
            std::vector<AltEdit> edits;
            for (const auto& r : refs) {
                ck_assert(r.alt_begin <= r.alt_end && r.alt_end <= text.size());
                edits.push_back({&r, "z"});
            }
            refs_seen += refs.size();
            std::string out = apply_alt_edits(text, edits);
            // Every byte outside the alt spans is carried over, in order.
            size_t in_at = 0, out_at = 0;
            for (const auto& r : refs) {
                size_t keep = r.alt_begin - in_at;
                ck_assert(out.compare(out_at, keep, text, in_at, keep) == 0);
                out_at += keep;
                std::string repl = r.syntax == ImageSyntax::markdown ? "z" : (r.has_alt ? "alt=\"z\"" : " alt=\"z\"");
                ck_assert(out.compare(out_at, repl.size(), repl) == 0);
                out_at += repl.size();
                in_at = r.alt_end;
            }
            ck_assert(out.compare(out_at, std::string::npos, text, in_at, std::string::npos) == 0);
        }
    }
    std::printf("random scanner inputs: %zu image refs found in 6000 scans\n", refs_seen);
    ck_assert(refs_seen > 0);
}
END_TEST

int main() {
    Suite* s = suite_create("vlm_bulk");
    TCase* tc = tcase_create("core");
    tcase_add_test(tc, weak_alts_are_recognised);
    tcase_add_test(tc, markdown_scanner_skips_code_and_keeps_bytes);
    tcase_add_test(tc, html_scanner_handles_attribute_forms);
    tcase_add_test(tc, generated_text_is_cleaned);
    tcase_add_test(tc, scanners_survive_random_input);
    suite_add_tcase(s, tc);
    SRunner* sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
