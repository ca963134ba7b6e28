// Unit tests for vlm-bulk's weak-alt heuristics, document scanners and rewriter, image source
// choice and resolution (on a temp directory tree), option parsing (no network) and the shrinking of images
// over the service's limits (decoded back with the runtime's decoders).
// Built and run by tests/bulk/run.sh before the end-to-end tests.
// The standard headers come first: check.h defines a `fail` macro that breaks <fstream>.
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <png.h>

#include "image/image.h"  // the runtime's decode_image, to read the shrunk copies back
#include "../../editor_plugin/bulk/image_shrink.h"

#include <check.h>
#include <unistd.h>

#include "../../editor_plugin/bulk/alt_quality.h"
#include "../../editor_plugin/bulk/doc_images.h"
#include "../../editor_plugin/bulk/image_source.h"
#include "../../editor_plugin/bulk/md_link_refs.h"
#include "../../editor_plugin/bulk/options.h"

namespace fs = std::filesystem;

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
    // Quotes are escaped too: after an unfinished "![](x" earlier in the paragraph they could read as a title.
    std::string expect = "# T\n\n![a \\[b\\] \\\"c\\\"](a.png) and ![x [nested] y](b.png \"t\")\n\n```\n![](c.png)\n```\n"
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
                            "```", "<!--", "-->", "\\", " ", ">", "/", "x", "<script>", "&amp;", "&#",
                            "[", "[]", "]:", "[x]: a.png\n", "\n[X]:\n <a b.png>", " data-src=", " srcset=",
                            "data:x", ",", "   ", "![x]", "![X][]", "![y][x]"};
    const size_t n_tokens = sizeof tokens / sizeof tokens[0];
    size_t refs_seen = 0, labels_seen = 0;
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
            for (const auto& r : refs) labels_seen += r.md_label.empty() ? 0 : 1;
            std::string out = apply_alt_edits(text, edits);
            // Every byte outside the alt spans is carried over, in order.
            size_t in_at = 0, out_at = 0;
            for (const auto& r : refs) {
                size_t keep = r.alt_begin - in_at;
                ck_assert(out.compare(out_at, keep, text, in_at, keep) == 0);
                out_at += keep;
                std::string repl = r.syntax == ImageSyntax::markdown
                                       ? (r.md_label.empty() ? "z" : "z][" + r.md_label)
                                       : (r.has_alt ? "alt=\"z\"" : " alt=\"z\"");
                ck_assert(out.compare(out_at, repl.size(), repl) == 0);
                out_at += repl.size();
                in_at = r.alt_end;
            }
            ck_assert(out.compare(out_at, std::string::npos, text, in_at, std::string::npos) == 0);
        }
    }
    std::printf("random scanner inputs: %zu image refs (%zu collapsed/shortcut references) in 6000 scans\n",
                refs_seen, labels_seen);
    ck_assert(refs_seen > 0 && labels_seen > 0);
}
END_TEST

// Lazy-loading markup: the real image is in data-src / data-lazy-src / data-original or srcset,
// src holds a placeholder. Only the alt attribute changes on rewrite.
START_TEST(lazy_html_images_use_the_real_source) {
    std::string html =
        "<img src=\"data:image/gif;base64,R0lGODlhAQABAAAAACw=\" data-src=\"real.jpg\" class=\"lazyload\">\n"
        "<img data-lazy-src='lazy.png' src='placeholder.png' alt=''>\n"
        "<img src=\"\" data-original=\"orig.webp\">\n"
        "<img srcset=\"a.jpg 1x, b.jpg 2x\" alt=\"IMG_1.jpg\">\n"
        "<img src=\"data:image/png;base64,AAAA\" srcset=\" small,v2.jpg 320w,large.jpg 1024w\">\n"
        "<img src=\"plain.png\" srcset=\"big.png 2x\">\n"
        "<img data-src=\"  \" src=\"data:,x\" data-srcset=\"ds.jpg 2x\">\n"
        "<img src=\"data:image/gif;base64,AA\">\n"
        "<img data-src=\"first.jpg\" data-lazy-src=\"second.jpg\" data-original=\"third.jpg\" src=\"p.jpg\">\n";
    auto refs = find_images(html, false);
    ck_assert_int_eq(refs.size(), 9);
    const char* want[] = {"real.jpg", "lazy.png", "orig.webp", "a.jpg", "small,v2.jpg", "plain.png", "ds.jpg",
                          "data:image/gif;base64,AA", "first.jpg"};
    for (size_t i = 0; i < refs.size(); ++i) EXPECT_TEXT(refs[i].src, want[i]);
    ck_assert_int_eq(refs[3].line, 4);
    std::vector<AltEdit> edits;
    for (const auto& r : refs) edits.push_back({&r, "A"});
    std::string out = apply_alt_edits(html, edits);
    std::string expect =
        "<img alt=\"A\" src=\"data:image/gif;base64,R0lGODlhAQABAAAAACw=\" data-src=\"real.jpg\" class=\"lazyload\">\n"
        "<img data-lazy-src='lazy.png' src='placeholder.png' alt=\"A\">\n"
        "<img alt=\"A\" src=\"\" data-original=\"orig.webp\">\n"
        "<img srcset=\"a.jpg 1x, b.jpg 2x\" alt=\"A\">\n"
        "<img alt=\"A\" src=\"data:image/png;base64,AAAA\" srcset=\" small,v2.jpg 320w,large.jpg 1024w\">\n"
        "<img alt=\"A\" src=\"plain.png\" srcset=\"big.png 2x\">\n"
        "<img alt=\"A\" data-src=\"  \" src=\"data:,x\" data-srcset=\"ds.jpg 2x\">\n"
        "<img alt=\"A\" src=\"data:image/gif;base64,AA\">\n"
        "<img alt=\"A\" data-src=\"first.jpg\" data-lazy-src=\"second.jpg\" data-original=\"third.jpg\" src=\"p.jpg\">\n";
    EXPECT_TEXT(out, expect);

    EXPECT_TEXT(first_srcset_url("a.jpg, b.jpg 2x"), "a.jpg");
    EXPECT_TEXT(first_srcset_url(" ,, \n a.jpg 1x"), "a.jpg");
    EXPECT_TEXT(first_srcset_url("x.png,"), "x.png");
    EXPECT_TEXT(first_srcset_url(" , "), "");
    EXPECT_TEXT(first_srcset_url(""), "");
    HtmlImageUrls none;
    EXPECT_TEXT(choose_html_image_src(none), "");
    HtmlImageUrls upper;
    upper.src = "DATA:image/gif;base64,AA";
    upper.srcset = "s.png 1x";
    EXPECT_TEXT(choose_html_image_src(upper), "s.png");  // the scheme is case-insensitive
}
END_TEST

// ![alt][id], ![alt][] and ![alt] resolve through [id]: url definitions anywhere in the file;
// labels match case-insensitively with collapsed whitespace; the first definition wins.
START_TEST(markdown_reference_images_resolve_and_rewrite) {
    std::string md =
        "# Refs\n\n"
        "Full: ![IMG_1.jpg][Hero  Shot] and collapsed: ![logo][] and shortcut: ![Map].\n"
        "Undefined: ![x][nope] ![nothing] and a link [Map] is not an image.\n"
        "Inline still works: ![](inline.png)\n\n"
        "```\n![map]\n[ignored]: fenced.png\n```\n"
        "`![map]` in a code span.\n\n"
        "[hero shot]: <images/hero shot.png> \"The hero\"\n"
        "  [LOGO]: /img/logo.png\n"
        "   'Logo title on the next line'\n"
        "[map]: maps/first.png\n"
        "[Map]: maps/second.png\n"
        "[weird]: <img/in-definition.png>\n"
        "[bad]: url \"title\" trailing\n"
        "![b][bad] ![w][weird] ![i][ignored]\n";
    auto refs = find_images(md, true);
    ck_assert_int_eq(refs.size(), 5);
    EXPECT_TEXT(refs[0].src, "images/hero shot.png");
    EXPECT_TEXT(refs[0].alt, "IMG_1.jpg");
    ck_assert(refs[0].md_label.empty());
    EXPECT_TEXT(refs[1].src, "/img/logo.png");
    EXPECT_TEXT(refs[1].md_label, "logo");
    EXPECT_TEXT(refs[2].src, "maps/first.png");
    EXPECT_TEXT(refs[2].md_label, "Map");
    EXPECT_TEXT(refs[3].src, "inline.png");
    EXPECT_TEXT(refs[4].src, "img/in-definition.png");  // the ![w][weird] use, not the definition line
    ck_assert_int_eq(refs[4].line, 20);

    std::vector<AltEdit> edits = {{&refs[0], "A hero [shot]"}, {&refs[1], "ACME logo"}, {&refs[2], "Trail map"}};
    std::string out = apply_alt_edits(md, edits);
    std::string expect = md;
    auto swap = [&](const std::string& from, const std::string& to) {
        size_t at = expect.find(from);
        ck_assert_msg(at != std::string::npos, "missing '%s'", from.c_str());
        expect.replace(at, from.size(), to);
    };
    swap("![IMG_1.jpg][Hero  Shot]", "![A hero \\[shot\\]][Hero  Shot]");
    swap("![logo][]", "![ACME logo][logo]");
    swap("![Map].", "![Trail map][Map].");
    EXPECT_TEXT(out, expect);
    // The rewritten document still resolves every image to the same file, with the new alts.
    auto again = find_images(out, true);
    ck_assert_int_eq(again.size(), refs.size());
    for (size_t i = 0; i < refs.size(); ++i) EXPECT_TEXT(again[i].src, refs[i].src);
    EXPECT_TEXT(again[0].alt, "A hero [shot]");
    EXPECT_TEXT(again[1].alt, "ACME logo");
    EXPECT_TEXT(again[2].alt, "Trail map");
    ck_assert(again[1].md_label.empty() && again[2].md_label.empty());  // now full references

    EXPECT_TEXT(normalize_link_label("  Hero \n\t Shot "), "hero shot");
    EXPECT_TEXT(normalize_link_label("a\\]b"), "a\\]b");
    EXPECT_TEXT(normalize_link_label("a]b"), "");
    EXPECT_TEXT(normalize_link_label(" \n "), "");
    EXPECT_TEXT(normalize_link_label(std::string(1000, 'x')), "");
    LinkRefs defs = find_link_definitions("[a]:\n  b.png\n    [c]: d.png\n[e]: f.png 'unterminated\n\n"
                                          "[g]: h.png\n'unterminated\n\n[i]: <j k.png>'t'\n[l]:\n\nm.png\n");
    // [c] is indented code; [e]'s title never closes on its own line; [l] has a blank line.
    ck_assert_int_eq(defs.dest.size(), 2);
    EXPECT_TEXT(defs.dest["a"], "b.png");
    EXPECT_TEXT(defs.dest["g"], "h.png");  // the bad title on the next line is just text
    ck_assert(defs.dest.count("i") == 0);  // the title must be separated from the URL
}
END_TEST

struct TempTree {
    fs::path root;
    TempTree() {
        char tmpl[] = "/tmp/vlm-bulk-units.XXXXXX";
        ck_assert(mkdtemp(tmpl) != nullptr);
        root = fs::canonical(tmpl);
    }
    ~TempTree() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
    void file(const std::string& rel) {
        fs::create_directories((root / rel).parent_path());
        std::ofstream(root / rel) << "x";
    }
};

// Site-root srcs are tried in DIR, each --static-dir, then static/ and public/; relative srcs
// only next to the document; nothing outside DIR, even through a symlink.
START_TEST(image_sources_resolve_inside_dir_only) {
    TempTree t;
    t.file("site/content/post/local.png");
    t.file("site/images/both.png");
    t.file("site/static/images/both.png");
    t.file("site/static/images/only-static.png");
    t.file("site/public/only-public.png");
    t.file("site/source/images/hexo.png");
    t.file("site/source/images/a b.png");
    t.file("outside/secret.png");
    fs::create_directory_symlink(t.root / "outside", t.root / "site/static/link");
    fs::path root = t.root / "site", doc = root / "content/post";

    std::vector<fs::path> dirs;
    std::string err;
    ck_assert(site_root_dirs(root, {}, dirs, err));
    ck_assert_int_eq(dirs.size(), 3);
    ck_assert(dirs[0] == root && dirs[1] == root / "static" && dirs[2] == root / "public");
    auto resolve = [&](const std::string& src) { return resolve_image_source(src, doc, root, dirs); };

    ImageSource s = resolve("local.png");
    ck_assert(s.kind == SourceKind::local_file && s.file == doc / "local.png");
    s = resolve("/images/both.png");
    ck_assert(s.kind == SourceKind::local_file && s.file == root / "images/both.png");  // DIR first
    s = resolve("/images/only-static.png?v=3#top");
    ck_assert(s.kind == SourceKind::local_file && s.file == root / "static/images/only-static.png");
    s = resolve("//only-public.png");  // protocol-relative: a host, not a path
    ck_assert(s.kind == SourceKind::remote_url);
    EXPECT_TEXT(s.url, "https://only-public.png");
    s = resolve("/only-public.png");
    ck_assert(s.kind == SourceKind::local_file && s.file == root / "public/only-public.png");
    s = resolve("/images/hexo.png");
    ck_assert(s.kind == SourceKind::missing);
    ck_assert_msg(s.message.find(root.string() + "/images/hexo.png") != std::string::npos
                  && s.message.find("static/ public/") != std::string::npos, "%s", s.message.c_str());
    s = resolve("/link/secret.png");  // static/link -> ../outside
    ck_assert(s.kind == SourceKind::skip);
    EXPECT_TEXT(s.message, "image outside DIR");
    s = resolve("/../outside/secret.png");
    ck_assert(s.kind == SourceKind::skip && s.message == "image outside DIR");
    s = resolve("../../../outside/secret.png");
    ck_assert(s.kind == SourceKind::skip && s.message == "image outside DIR");

    ck_assert(site_root_dirs(root, {"source", "static"}, dirs, err));
    ck_assert_int_eq(dirs.size(), 4);  // DIR, source, static, public (no duplicates)
    ck_assert(dirs[1] == root / "source" && dirs[2] == root / "static" && dirs[3] == root / "public");
    s = resolve("/images/hexo.png");
    ck_assert(s.kind == SourceKind::local_file && s.file == root / "source/images/hexo.png");
    s = resolve("/images/a%20b.png");
    ck_assert(s.kind == SourceKind::local_file && s.file == root / "source/images/a b.png");
    for (const char* bad : {"../outside", "missing", "/tmp", "static/link"}) {
        err.clear();
        ck_assert_msg(!site_root_dirs(root, {bad}, dirs, err), "accepted --static-dir %s", bad);
        ck_assert(err.find("--static-dir") != std::string::npos);
    }

    s = resolve("HTTPS://example.com/a.png");
    ck_assert(s.kind == SourceKind::remote_url && s.url == "HTTPS://example.com/a.png");
    s = resolve(" http://example.com/b.png ");
    ck_assert(s.kind == SourceKind::remote_url && s.url == "http://example.com/b.png");
    s = resolve("data:image/png;base64,AAAA");
    ck_assert(s.kind == SourceKind::skip && s.message.find("data:") == 0);
    s = resolve("ftp://example.com/c.png");
    ck_assert(s.kind == SourceKind::skip && s.message == "unsupported URL scheme");
    s = resolve("c:/x.png");
    ck_assert(s.kind == SourceKind::skip);
    s = resolve("");
    ck_assert(s.kind == SourceKind::skip && s.message == "no src");
    s = resolve("?only-a-query");
    ck_assert(s.kind == SourceKind::skip);
    s = resolve("a%00.png");
    ck_assert(s.kind == SourceKind::skip);
    s = resolve("missing.png");
    ck_assert(s.kind == SourceKind::missing && s.message.find("also tried") == std::string::npos);
}
END_TEST

START_TEST(files_options_parse) {
    auto parse = [](std::vector<std::string> args, Options& o, std::string& err) {
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        bool help = false;
        return parse_options(static_cast<int>(argv.size()), argv.data(), o, help, err);
    };
    Options o;
    std::string err;
    ck_assert(parse({"vlm-bulk", "files", "site", "--api-key", "k", "--static-dir", "static", "--fetch-remote",
                     "--static-dir", "source"}, o, err));
    ck_assert_int_eq(o.static_dirs.size(), 2);
    EXPECT_TEXT(o.static_dirs[0], "static");
    EXPECT_TEXT(o.static_dirs[1], "source");
    ck_assert(o.fetch_remote);
    Options d;
    ck_assert(parse({"vlm-bulk", "files", "site", "--api-key", "k"}, d, err));
    ck_assert(!d.fetch_remote && d.static_dirs.empty());
    Options w;
    ck_assert(!parse({"vlm-bulk", "wordpress", "--site", "http://x", "--user", "u", "--app-password", "p",
                      "--api-key", "k", "--fetch-remote"}, w, err));
    ck_assert_msg(err.find("--fetch-remote applies to files mode") == 0, "%s", err.c_str());
    Options m;
    ck_assert(!parse({"vlm-bulk", "files", "site", "--api-key", "k", "--static-dir"}, m, err));
    EXPECT_TEXT(err, "--static-dir needs a value");
    std::string usage = usage_text();
    ck_assert(usage.find("--static-dir D") != std::string::npos && usage.find("--fetch-remote") != std::string::npos);
}
END_TEST

// ---- image shrinking ----

static std::string fixture_bytes(const char* name) {
    const char* dir = std::getenv("VLM_FIXTURES");
    ck_assert_msg(dir && *dir, "VLM_FIXTURES is not set");
    std::ifstream f(std::string(dir) + "/images/" + name, std::ios::binary);
    ck_assert_msg(f.good(), "missing fixture %s", name);
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

static bool decode_back(const std::string& bytes, vlm::RgbImage& img) {
    std::string err;
    vlm::ImageLimits lim;
    lim.max_pixels = 200'000'000;
    lim.max_bytes = size_t{64} << 20;
    bool ok = vlm::decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), lim, img, err);
    ck_assert_msg(ok, "decode back: %s", err.c_str());
    return ok;
}

// A camera-like 6000x4000 JPEG (24 MP): gradients under per-pixel noise, so it compresses like a photo.
static std::string big_photo_jpeg(int w, int h) {
    std::vector<uint8_t> rgb(static_cast<size_t>(w) * h * 3);
    std::mt19937 rng(7);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint8_t* p = &rgb[(static_cast<size_t>(y) * w + x) * 3];
            const unsigned r = rng();
            p[0] = static_cast<uint8_t>(x * 200 / w + (r & 31));
            p[1] = static_cast<uint8_t>(y * 200 / h + ((r >> 5) & 31));
            p[2] = static_cast<uint8_t>((x + y) * 100 / (w + h) + ((r >> 10) & 63));
        }
    std::string jpeg, err;
    ck_assert_msg(encode_jpeg(rgb, w, h, 97, jpeg, err), "%s", err.c_str());
    return jpeg;
}

START_TEST(oversized_image_becomes_a_jpeg_within_limits) {
    const std::string original = big_photo_jpeg(6000, 4000);
    ck_assert_msg(original.size() > 10485760, "fixture is only %zu bytes", original.size());
    std::string bytes = original, mime = "image/jpeg", err;
    ShrinkInfo info;
    ck_assert_msg(fit_image_for_service(bytes, mime, ShrinkLimits{}, info, err), "%s", err.c_str());
    ck_assert(info.shrunk);
    EXPECT_TEXT(mime, "image/jpeg");
    ck_assert_uint_le(bytes.size(), 10485760);
    ck_assert(bytes.compare(0, 3, "\xff\xd8\xff") == 0);
    vlm::RgbImage img;
    decode_back(bytes, img);
    ck_assert_int_eq(img.width, info.out_width);
    ck_assert_int_eq(img.height, info.out_height);
    ck_assert_int_le(int64_t{img.width} * img.height, 16777216);
    ck_assert_int_gt(int64_t{img.width} * img.height, 16777216 * 9 / 10);  // shrunk to the cap, not far below
    ck_assert_msg(std::abs(static_cast<double>(img.width) / img.height - 1.5) < 0.002, "%dx%d", img.width,
                  img.height);
    // The box filter keeps the picture: the left-to-right red gradient survives (noise averages out).
    const auto red_at = [&](int x) {
        long sum = 0;
        for (int y = 0; y < img.height; y += 97) sum += img.rgb[(static_cast<size_t>(y) * img.width + x) * 3];
        return sum / ((img.height + 96) / 97);
    };
    ck_assert_int_lt(red_at(10), 40);
    ck_assert_int_gt(red_at(img.width - 10), 200);
}
END_TEST

START_TEST(images_within_limits_keep_their_bytes) {
    for (const char* name : {"photo.jpg", "tiny.png", "anim.gif", "photo_webp.webp", "exif6.jpg"}) {
        const std::string original = fixture_bytes(name);
        std::string bytes = original, mime, err;
        ShrinkInfo info;
        ck_assert_msg(fit_image_for_service(bytes, mime, ShrinkLimits{}, info, err), "%s: %s", name, err.c_str());
        ck_assert_msg(!info.shrunk && bytes == original, "%s was changed", name);
        ck_assert_msg(mime.rfind("image/", 0) == 0, "%s: mime '%s'", name, mime.c_str());
    }
    // Over the byte cap alone (pixels are fine): re-encoded at the same size.
    std::string bytes = fixture_bytes("photo.jpg"), mime, err;
    ShrinkLimits lim;
    lim.max_bytes = bytes.size() - 1;
    ShrinkInfo info;
    ck_assert_msg(fit_image_for_service(bytes, mime, lim, info, err), "%s", err.c_str());
    ck_assert(info.shrunk && bytes.size() <= lim.max_bytes);
    ck_assert_int_eq(info.out_width, info.src_width);
    ck_assert_int_eq(info.out_height, info.src_height);
}
END_TEST

START_TEST(quality_then_size_step_down_until_it_fits) {
    // Pure noise does not compress: quality 90 at full size is far over a 150 KB cap.
    std::vector<uint8_t> noise(600 * 600 * 3);
    std::mt19937 rng(11);
    for (uint8_t& v : noise) v = static_cast<uint8_t>(rng());
    std::string bytes, err, mime;
    ck_assert(encode_jpeg(noise, 600, 600, 95, bytes, err));
    ShrinkLimits lim;
    lim.max_bytes = 150000;
    ShrinkInfo info;
    ck_assert_msg(fit_image_for_service(bytes, mime, lim, info, err), "%s", err.c_str());
    ck_assert_uint_le(bytes.size(), lim.max_bytes);
    std::string q60;
    ck_assert(encode_jpeg(noise, 600, 600, 60, q60, err));
    ck_assert_uint_gt(q60.size(), lim.max_bytes);  // so every quality was tried at full size first
    ck_assert_int_lt(info.out_width, 600);
    ck_assert_int_eq(info.out_width, info.out_height);
    vlm::RgbImage img;
    decode_back(bytes, img);
    ck_assert_int_eq(img.width, info.out_width);
    // A cap nothing fits under: a clear failure, not a loop.
    bytes.clear();
    ck_assert(encode_jpeg(noise, 600, 600, 95, bytes, err));
    lim.max_bytes = 100;
    ck_assert(!fit_image_for_service(bytes, mime, lim, info, err));
    EXPECT_TEXT(err, "cannot encode the image under 100 bytes");
}
END_TEST

START_TEST(exif_orientation_is_applied_before_shrinking) {
    std::string bytes = fixture_bytes("exif6.jpg"), mime, err;
    int64_t w = 0, h = 0;
    ck_assert(probe_image_size(bytes, w, h, err));
    ck_assert_int_eq(w, 200);  // stored landscape, shown portrait
    ck_assert_int_eq(h, 120);
    ShrinkLimits lim;
    lim.max_pixels = 6000;
    ShrinkInfo info;
    ck_assert_msg(fit_image_for_service(bytes, mime, lim, info, err), "%s", err.c_str());
    vlm::RgbImage img;
    decode_back(bytes, img);
    ck_assert_int_le(int64_t{img.width} * img.height, 6000);
    ck_assert_msg(img.height > img.width, "not rotated: %dx%d", img.width, img.height);
    ck_assert_msg(std::abs(static_cast<double>(img.height) / img.width - 200.0 / 120) < 0.05, "%dx%d",
                  img.width, img.height);
    // The copy is upright by itself: it carries no EXIF for the service to apply a second time.
    ck_assert(bytes.find("Exif") == std::string::npos);
    // Same picture as the runtime's own upright decode, box-filtered the same way.
    vlm::RgbImage upright;
    decode_back(fixture_bytes("exif6.jpg"), upright);
    const std::vector<uint8_t> want = box_downscale(upright.rgb, upright.width, upright.height, img.width, img.height);
    double diff = 0;
    for (size_t i = 0; i < want.size(); ++i) diff += std::abs(int(want[i]) - int(img.rgb[i]));
    ck_assert_msg(diff / want.size() < 8, "mean difference %.1f", diff / want.size());
}
END_TEST

START_TEST(alpha_is_composited_over_white) {
    // 64x64 RGBA: left half transparent black, right half opaque red.
    png_image im;
    std::memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = 64;
    im.height = 64;
    im.format = PNG_FORMAT_RGBA;
    std::vector<uint8_t> px(64 * 64 * 4, 0);
    for (int y = 0; y < 64; ++y)
        for (int x = 32; x < 64; ++x) {
            px[(y * 64 + x) * 4] = 255;
            px[(y * 64 + x) * 4 + 3] = 255;
        }
    png_alloc_size_t size = 0;
    ck_assert(png_image_write_to_memory(&im, nullptr, &size, 0, px.data(), 0, nullptr));
    std::string bytes(size, '\0');
    ck_assert(png_image_write_to_memory(&im, bytes.data(), &size, 0, px.data(), 0, nullptr));
    bytes.resize(size);
    std::string mime, err;
    ShrinkLimits lim;
    lim.max_pixels = 1024;
    ShrinkInfo info;
    ck_assert_msg(fit_image_for_service(bytes, mime, lim, info, err), "%s", err.c_str());
    EXPECT_TEXT(mime, "image/jpeg");
    vlm::RgbImage img;
    decode_back(bytes, img);
    ck_assert_int_eq(img.width, 32);
    ck_assert_int_eq(img.height, 32);
    const uint8_t* left = &img.rgb[(16 * 32 + 4) * 3];
    const uint8_t* right = &img.rgb[(16 * 32 + 28) * 3];
    ck_assert_msg(left[0] > 240 && left[1] > 240 && left[2] > 240, "left %d,%d,%d", left[0], left[1], left[2]);
    ck_assert_msg(right[0] > 230 && right[1] < 25 && right[2] < 25, "right %d,%d,%d", right[0], right[1], right[2]);
}
END_TEST

START_TEST(box_filter_averages_areas) {
    int w = 0, h = 0;
    fit_pixels(6000, 4000, 16777216, w, h);
    ck_assert_int_le(int64_t{w} * h, 16777216);
    ck_assert_int_eq(w, 5016);
    ck_assert_int_eq(h, 3344);
    fit_pixels(100, 1, 10, w, h);
    ck_assert(w == 10 && h == 1);
    fit_pixels(1, 100, 10, w, h);
    ck_assert(w == 1 && h == 10);
    // 3x1 -> 2x1: each output covers 1.5 inputs.
    const std::vector<uint8_t> src = {0, 0, 0, 90, 90, 90, 180, 180, 180};
    const std::vector<uint8_t> out = box_downscale(src, 3, 1, 2, 1);
    ck_assert_int_eq(out[0], 30);   // (0 + 0.5 * 90) / 1.5
    ck_assert_int_eq(out[3], 150);  // (0.5 * 90 + 180) / 1.5
}
END_TEST

START_TEST(broken_images_fail_cleanly) {
    std::string big = big_photo_jpeg(1200, 800);
    ShrinkLimits lim;
    lim.max_pixels = 100000;  // forces a decode
    std::string bytes = big.substr(0, big.size() / 2), mime, err;
    ShrinkInfo info;
    ck_assert(!fit_image_for_service(bytes, mime, lim, info, err));
    ck_assert_msg(err.find("truncated") != std::string::npos || err.find("corrupt") != std::string::npos, "%s",
                  err.c_str());

    std::mt19937 rng(3);
    std::string garbage(4096, '\0');
    for (char& c : garbage) c = static_cast<char>(rng());
    garbage[0] = 'x';
    bytes = garbage;
    ck_assert(!fit_image_for_service(bytes, mime, lim, info, err));
    EXPECT_TEXT(err, "not a PNG, JPEG, GIF or WebP image");
    // JPEG magic then noise, over the byte cap: undecodable.
    bytes = "\xff\xd8\xff" + garbage;
    lim.max_bytes = 1000;
    ck_assert(!fit_image_for_service(bytes, mime, lim, info, err));
    ck_assert_msg(!err.empty(), "no reason given");
}
END_TEST

START_TEST(pixel_bombs_are_refused_from_the_header) {
    // A PNG whose IHDR claims 100000x100000 (10^10 pixels, 30 GB of RGB) and then ends.
    std::string png("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
    const unsigned char dims[] = {0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0, 0, 0, 0, 0};
    png.append(reinterpret_cast<const char*>(dims), sizeof dims);
    int64_t w = 0, h = 0;
    std::string err;
    ck_assert(probe_image_size(png, w, h, err));
    ck_assert(w == 100000 && h == 100000);
    std::string bytes = png, mime;
    ShrinkInfo info;
    ck_assert(!fit_image_for_service(bytes, mime, ShrinkLimits{}, info, err));
    ck_assert_msg(err.find("100000x100000") != std::string::npos, "%s", err.c_str());
    // A JPEG frame header claiming 65000x65000.
    const unsigned char sof[] = {0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, 0xfd, 0xe8, 0xfd, 0xe8, 3,
                                 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1};
    bytes.assign(reinterpret_cast<const char*>(sof), sizeof sof);
    ck_assert(!fit_image_for_service(bytes, mime, ShrinkLimits{}, info, err));
    ck_assert_msg(err.find("65000x65000") != std::string::npos, "%s", err.c_str());
}
END_TEST

#include "../unit/check_main.h"

int main(int argc, char** argv) {
    return vlm_check_main(argc, argv, "vlm_bulk", {
        {"core", 0, {
            weak_alts_are_recognised,
            markdown_scanner_skips_code_and_keeps_bytes,
            html_scanner_handles_attribute_forms,
            generated_text_is_cleaned,
            scanners_survive_random_input,
            lazy_html_images_use_the_real_source,
            markdown_reference_images_resolve_and_rewrite,
            image_sources_resolve_inside_dir_only,
            files_options_parse,
        }},
        {"shrink", 300, {  // 24 MP encodes and decodes, slow under the sanitizers
            oversized_image_becomes_a_jpeg_within_limits,
            images_within_limits_keep_their_bytes,
            quality_then_size_step_down_until_it_fits,
            exif_orientation_is_applied_before_shrinking,
            alpha_is_composited_over_white,
            box_filter_averages_areas,
            broken_images_fail_cleanly,
            pixel_bombs_are_refused_from_the_header,
        }},
    });
}
