// test_tasks.cpp: the editor tasks (alt_text, summary, seo_description) as an
// author sees them: the shipped templates in conf/prompts load; broken
// template files are refused with a message naming the file and field; the
// language follows the article; the prompt sent to the model is exactly the
// expected GLM chat text; model output comes back clean (table tests in
// English and Chinese); and each task runs end to end on the tiny fixture
// model through generate(), its (meaningless) text post-processed.
#include "core/backend.h"
#include "text/chat_prompt.h"
#include "generate/generate.h"
#include "model/model.h"
#include "tasks/language.h"
#include "tasks/postprocess.h"
#include "tasks/task_request.h"
#include "tasks/task_service.h"
#include "tasks/templates.h"
#include "text/tokenizer.h"
#include "util/utf8.h"
#include "backend/registry.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <check.h>   // after the standard headers: it defines a fail() macro
#include "fixture_files.h"

using namespace vlm;

namespace {

using vlm_test::fixtures;
using vlm_test::read_text;

// conf/prompts lives beside tests/ in the source tree.
std::string prompts_dir() { return fixtures() + "/../../conf/prompts"; }

TaskTemplates shipped_templates() {
    TaskTemplates t;
    std::string err;
    ck_assert_msg(load_task_templates(prompts_dir(), t, err), "%s", err.c_str());
    return t;
}

ImageBytes fixture_image(const char *name) {
    std::string bytes = read_text(fixtures() + "/images/" + name);
    return ImageBytes::copy_of(std::vector<uint8_t>(bytes.begin(), bytes.end()));
}

// A minimal valid template with `field` of language `lang` replaced.
std::string template_json(const std::string &task, const std::string &patch_key = "",
                          const std::string &patch_value = "") {
    auto field = [&](const char *key, const char *value) {
        std::string v = patch_key == key ? patch_value : std::string("\"") + value + "\"";
        return std::string("\"") + key + "\": " + v;
    };
    std::string en = "{" + field("system", "You write.") + ", " +
                     field("user", "{title_section}{text_section}At most {max_chars}.") + ", " +
                     field("title_section", "Title: {title}\\n") + ", " +
                     field("text_section", "Text: {text}\\n") + ", " +
                     (patch_key == "max_chars" ? "\"max_chars\": " + patch_value
                                               : std::string("\"max_chars\": {\"default\": 100, \"min\": 10, \"max\": 200}")) +
                     "}";
    std::string zh = "{\"system\": \"你写。\", \"user\": \"{title_section}{text_section}不超过{max_chars}字。\", "
                     "\"title_section\": \"标题：{title}\\n\", \"text_section\": \"正文：{text}\\n\", "
                     "\"max_chars\": {\"default\": 50, \"min\": 10, \"max\": 100}}";
    std::string version = patch_key == "version" ? patch_value : "3";
    return "{\"task\": \"" + task + "\", \"version\": " + version + ", \"en\": " + en + ", \"zh\": " + zh + "}";
}

}  // namespace

// ------------------------------------------------------------ templates ---

START_TEST(shipped_templates_load)
{
    TaskTemplates t = shipped_templates();
    ck_assert_uint_eq(t.templates.size(), 3);
    for (TaskKind k : {TaskKind::ALT_TEXT, TaskKind::SUMMARY, TaskKind::SEO_DESCRIPTION}) {
        const TaskTemplate *tpl = t.find(k);
        ck_assert_msg(tpl != nullptr, "%s missing", task_kind_name(k));
        ck_assert_int_ge(tpl->version, 1);
        ck_assert(!tpl->en.system.empty() && !tpl->zh.system.empty());
        std::printf("template %s v%d: en default %d chars, zh default %d chars\n", task_kind_name(k),
                    tpl->version, tpl->en.default_max_chars, tpl->zh.default_max_chars);
    }
    // SEO: search engines show about 160 characters.
    ck_assert_int_le(t.find(TaskKind::SEO_DESCRIPTION)->en.max_max_chars, 160);
    ck_assert_int_ge(t.find(TaskKind::SEO_DESCRIPTION)->en.min_max_chars, 50);
    ck_assert_int_eq(t.find(TaskKind::ALT_TEXT)->en.default_max_chars, 125);
}
END_TEST

START_TEST(minimal_template_parses)
{
    TaskTemplate t;
    std::string err;
    ck_assert_msg(parse_task_template(template_json("summary"), "summary.json", t, err), "%s", err.c_str());
    ck_assert_int_eq(t.version, 3);
    ck_assert(t.kind == TaskKind::SUMMARY);
    ck_assert_int_eq(t.zh.default_max_chars, 50);
}
END_TEST

START_TEST(bad_templates_refused_with_messages)
{
    struct Case {
        std::string json, want;
    } cases[] = {
        {"{\"task\": ", "x.json:1: invalid JSON"},
        {"[1]", "top level must be an object"},
        {template_json("captions"), "\"task\" must be one of"},
        {template_json("chat"), "\"task\" must be one of"},
        {template_json("summary", "version", "0"), "\"version\" must be an integer"},
        {template_json("summary", "version", "\"2\""), "\"version\" must be an integer"},
        {template_json("summary", "user", "\"{title_section}{text_section}{titel}\""),
         "en.user: unknown placeholder {titel}"},
        {template_json("summary", "user", "\"{title_section} only\""),
         "en.user: must contain {text_section} exactly once"},
        {template_json("summary", "user", "\"{title_section}{text_section}{text_section}\""),
         "en.user: must contain {text_section} exactly once"},
        {template_json("summary", "title_section", "\"Title\""), "en.title_section: must contain {title}"},
        {template_json("summary", "text_section", "\"{title}\""),
         "en.text_section: unknown placeholder {title}"},
        {template_json("summary", "system", "\"Use {braces\""), "en.system: unterminated placeholder"},
        {template_json("summary", "system", "\"a } b\""), "en.system: unmatched '}'"},
        {template_json("summary", "system", "\"  \""), "en.system: empty"},
        {template_json("summary", "system", "7"), "en.system: must be a string"},
        {template_json("summary", "max_chars", "{\"default\": 300, \"min\": 10, \"max\": 200}"),
         "en.max_chars: needs min <= default <= max"},
        {template_json("summary", "max_chars", "{\"default\": 100, \"min\": 0, \"max\": 200}"),
         "en.max_chars.min: must be an integer"},
        {template_json("summary", "max_chars", "{\"default\": 100, \"min\": 10, \"max\": 200, \"hard\": 1}"),
         "en.max_chars: unknown key \"hard\""},
        {template_json("summary", "max_chars", "120"), "en.max_chars: must be an object"},
        {"{\"task\": \"summary\", \"version\": 1, \"en\": {}, \"zh\": {}}", "en.system: missing"},
        {"{\"task\": \"summary\", \"version\": 1, \"en\": {}}", "en.system: missing"},
        {"{\"task\": \"summary\", \"version\": 1, \"version\": 2}", "invalid JSON"},
        {"{\"task\": \"summary\", \"version\": 1, \"lang\": 2}", "x.json: unknown key \"lang\""},
    };
    for (const auto &c : cases) {
        TaskTemplate t;
        std::string err;
        ck_assert_msg(!parse_task_template(c.json, "x.json", t, err), "accepted: %s", c.json.c_str());
        ck_assert_msg(err.find(c.want) != std::string::npos, "message \"%s\" lacks \"%s\"", err.c_str(),
                      c.want.c_str());
        ck_assert_msg(err.rfind("x.json", 0) == 0, "message does not name the file: %s", err.c_str());
    }
    // The zh variant is checked as carefully (message names it).
    std::string zh_bad = template_json("summary");
    zh_bad.replace(zh_bad.find("不超过{max_chars}"), std::string("不超过{max_chars}").size(), "{maxchars}");
    TaskTemplate t;
    std::string err;
    ck_assert(!parse_task_template(zh_bad, "x.json", t, err));
    ck_assert_msg(err.find("zh.user: unknown placeholder {maxchars}") != std::string::npos, "%s", err.c_str());
}
END_TEST

START_TEST(template_directory_checks)
{
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / ("vlm_test_prompts_" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    TaskTemplates t;
    std::string err;
    ck_assert(!load_task_templates((dir / "missing").string(), t, err));
    ck_assert_msg(err.find("cannot open prompts directory") != std::string::npos, "%s", err.c_str());

    for (const char *f : {"alt_text", "summary", "seo_description"})
        std::ofstream(dir / (std::string(f) + ".json")) << template_json(f);
    ck_assert_msg(load_task_templates(dir.string(), t, err), "%s", err.c_str());

    std::ofstream(dir / "summary.json") << template_json("alt_text");   // wrong task in file
    ck_assert(!load_task_templates(dir.string(), t, err));
    ck_assert_msg(err.find("summary.json: \"task\" is \"alt_text\"") != std::string::npos, "%s", err.c_str());
    std::ofstream(dir / "summary.json") << template_json("summary");

    std::ofstream(dir / "sumary.json") << template_json("summary");     // misspelt extra file
    ck_assert(!load_task_templates(dir.string(), t, err));
    ck_assert_msg(err.find("sumary.json: not a task template") != std::string::npos, "%s", err.c_str());
    fs::remove(dir / "sumary.json");

    fs::remove(dir / "seo_description.json");
    ck_assert(!load_task_templates(dir.string(), t, err));
    ck_assert_msg(err.find("seo_description.json: No such file") != std::string::npos, "%s", err.c_str());
    fs::remove_all(dir);
}
END_TEST

// ------------------------------------------------------------ language ---

START_TEST(language_detection)
{
    struct Case {
        const char  *text;
        TaskLanguage want;
    } cases[] = {
        {"", TaskLanguage::EN},
        {"12345 !!! ---", TaskLanguage::EN},
        {"How we cut our build times in half", TaskLanguage::EN},
        {"我们如何把构建时间缩短一半", TaskLanguage::ZH},
        {"使用 GPU 进行 LLM 推理的五个技巧", TaskLanguage::ZH},
        {"在 Kubernetes cluster 上部署 GLM-4.6V-Flash 模型", TaskLanguage::ZH},
        {"A visit to the 故宫 (Forbidden City) in Beijing last spring with the family", TaskLanguage::EN},
        {"Café crème à la française", TaskLanguage::EN},
        {"日本語のテキスト", TaskLanguage::ZH},   // kanji count as CJK; documented limit
    };
    for (const auto &c : cases)
        ck_assert_msg(detect_language(c.text) == c.want, "\"%s\": got %s", c.text,
                      task_language_name(detect_language(c.text)));
}
END_TEST

// ----------------------------------------------------- request building ---

START_TEST(build_alt_text_prompt)
{
    TaskTemplates t = shipped_templates();
    TaskParams p;
    p.kind = TaskKind::ALT_TEXT;
    p.title = "Hiking the {text} trail\nin May";   // braces in user text stay literal
    p.text = "We reached the summit at dawn.";
    p.max_chars = 100;
    p.images.push_back(fixture_image("tiny.png"));
    ChatRequest req;
    ResolvedTask r;
    std::string err;
    ck_assert_msg(build_task_request(t, p, req, r, err), "%s", err.c_str());
    ck_assert(r.language == TaskLanguage::EN);
    ck_assert_int_eq(r.max_chars, 100);
    std::string tag = task_cache_tag(r),
                want_tag = "alt_text/en/v" + std::to_string(t.find(TaskKind::ALT_TEXT)->version);
    ck_assert_str_eq(tag.c_str(), want_tag.c_str());
    ck_assert_uint_eq(req.images.size(), 1);
    ck_assert(req.chat.enable_thinking.has_value() && !*req.chat.enable_thinking);   // set, and off
    ck_assert_int_eq(req.max_tokens, 100 / 3 + 32);
    std::string got = render_chat(req.messages, req.chat);
    std::string want =
        "[gMASK]<sop><|system|>\n" + t.find(TaskKind::ALT_TEXT)->en.system +
        "<|user|>\n<|begin_of_image|><|image|><|end_of_image|>"
        "The image appears in an article titled: Hiking the {text} trail in May\n"
        "Text around the image in the article:\nWe reached the summit at dawn.\n\n"
        "Write alt text for this image in English, at most 100 characters./nothink"
        "<|assistant|>\n<think></think>\n";
    ck_assert_msg(got == want, "rendered:\n%s\nwanted:\n%s", got.c_str(), want.c_str());
}
END_TEST

START_TEST(build_summary_prompt_zh_auto)
{
    TaskTemplates t = shipped_templates();
    TaskParams p;
    p.kind = TaskKind::SUMMARY;
    p.text = "今天我们发布了新版本。它更快，也更稳定。";
    ChatRequest req;
    ResolvedTask r;
    std::string err;
    ck_assert_msg(build_task_request(t, p, req, r, err), "%s", err.c_str());
    ck_assert(r.language == TaskLanguage::ZH);
    ck_assert_int_eq(r.max_chars, t.find(TaskKind::SUMMARY)->zh.default_max_chars);
    ck_assert_int_eq(req.max_tokens, r.max_chars + 32);
    std::string got = render_chat(req.messages, req.chat);
    std::string want = "[gMASK]<sop><|system|>\n" + t.find(TaskKind::SUMMARY)->zh.system +
                       "<|user|>\n正文：\n今天我们发布了新版本。它更快，也更稳定。\n\n"
                       "请用中文概括这篇文章，不超过" + std::to_string(r.max_chars) +
                       "个字。/nothink<|assistant|>\n<think></think>\n";
    ck_assert_msg(got == want, "rendered:\n%s\nwanted:\n%s", got.c_str(), want.c_str());
    // An explicit language wins over detection; a caller's max_tokens lowers.
    p.language = "en";
    p.max_tokens = 50;
    ck_assert(build_task_request(t, p, req, r, err));
    ck_assert(r.language == TaskLanguage::EN);
    ck_assert_int_eq(req.max_tokens, 50);
    ck_assert(render_chat(req.messages, req.chat).find("Summarise this article in English") != std::string::npos);
}
END_TEST

START_TEST(build_refusals)
{
    TaskTemplates t = shipped_templates();
    ChatRequest req;
    ResolvedTask r;
    std::string err;
    struct Case {
        TaskParams  p;
        const char *want;
    };
    std::vector<Case> cases;
    TaskParams alt;
    alt.kind = TaskKind::ALT_TEXT;
    cases.push_back({alt, "alt_text: needs exactly one image, got 0"});
    alt.images = {fixture_image("tiny.png"), fixture_image("tiny.png")};
    cases.push_back({alt, "needs exactly one image, got 2"});
    alt.images.resize(1);
    alt.max_chars = 5;
    cases.push_back({alt, "alt_text: max length 5 outside 20..400"});
    alt.max_chars = 0;
    alt.language = "fr";
    cases.push_back({alt, "language must be auto, en or zh"});
    TaskParams sum;
    sum.kind = TaskKind::SUMMARY;
    sum.text = "   ";
    cases.push_back({sum, "summary: needs article text or images"});
    TaskParams seo;
    seo.kind = TaskKind::SEO_DESCRIPTION;
    seo.text = "Some article.";
    seo.max_chars = 300;
    cases.push_back({seo, "max length 300 outside 50..160"});
    seo.max_chars = 0;
    seo.text = "bad \xff utf8";
    cases.push_back({seo, "not valid UTF-8"});
    TaskParams chat;
    chat.kind = TaskKind::CHAT;   // chat never goes through the task layer
    cases.push_back({chat, "chat is not a task"});
    for (const auto &c : cases) {
        ck_assert_msg(!build_task_request(t, c.p, req, r, err), "accepted: want %s", c.want);
        ck_assert_msg(err.find(c.want) != std::string::npos, "\"%s\" lacks \"%s\"", err.c_str(), c.want);
    }
}
END_TEST

// ------------------------------------------------------ post-processing ---

struct PostCase {
    TaskKind     kind;
    TaskLanguage lang;
    int          max_chars;
    const char  *in, *want;
};

static const TaskKind A = TaskKind::ALT_TEXT, S = TaskKind::SUMMARY, D = TaskKind::SEO_DESCRIPTION,
                      C = TaskKind::CHAT;
static const TaskLanguage EN = TaskLanguage::EN, ZH = TaskLanguage::ZH;

static const PostCase post_cases[] = {
    // thinking and tags, every kind
    {C, EN, 0, "<think>let me see</think>\nHello there", "Hello there"},
    {C, EN, 0, "reasoning without an opening tag</think>The answer", "The answer"},
    {C, EN, 0, "Partial answer<think>still thinking when tokens ran out", "Partial answer"},
    {C, EN, 0, "<think>a</think>One<think>b</think> two", "One two"},
    {C, EN, 0, "<answer><|begin_of_box|>42<|end_of_box|></answer>", "42"},
    {C, EN, 0, "Done<|endoftext|>", "Done"},
    {C, EN, 0, "keep a < b and a<|b", "keep a < b and a<|b"},
    {C, EN, 0, "**bold stays in chat**", "**bold stays in chat**"},
    // alt text: openings, labels, quotes, markdown, period
    {A, EN, 125, "<think>\n</think>\nAn image of a golden retriever running on a beach.",
     "A golden retriever running on a beach"},
    {A, EN, 125, "Image of a red bicycle leaning against a brick wall", "A red bicycle leaning against a brick wall"},
    {A, EN, 125, "A photo of two cups of coffee on a wooden table.", "Two cups of coffee on a wooden table"},
    {A, EN, 125, "This image shows a bar chart of monthly sales.", "A bar chart of monthly sales"},
    {A, EN, 125, "The picture shows: a mountain lake at dawn", "A mountain lake at dawn"},
    {A, EN, 125, "Alt text: \"Picture of a cat asleep on a sofa.\"", "A cat asleep on a sofa"},
    {A, EN, 125, "**Alt text:** A cat asleep on a sofa.", "A cat asleep on a sofa"},
    {A, EN, 125, "\"A cat asleep on a sofa\".", "A cat asleep on a sofa"},
    {A, EN, 125, "“A lighthouse on a cliff.”", "A lighthouse on a cliff"},
    {A, EN, 125, "- A lighthouse\non a cliff", "A lighthouse on a cliff"},
    {A, EN, 125, "Imagery of a forest canopy from above", "Imagery of a forest canopy from above"},
    {A, EN, 125, "Photographer holding a camera", "Photographer holding a camera"},
    {A, EN, 125, "Is this the end?", "Is this the end?"},
    {A, EN, 125, "A chart. Sales rose 20% in May.", "A chart. Sales rose 20% in May"},
    {A, EN, 125, "Loading...", "Loading..."},
    {A, EN, 125, "A \"big\" dog", "A \"big\" dog"},
    {A, EN, 40, "A golden retriever running along a sandy beach at sunset with a ball",
     "A golden retriever running along a sandy"},
    {A, EN, 40, "A golden retriever running along the sandy beach at sunset",
     "A golden retriever running along"},   // dangling "the" dropped
    {A, EN, 30, "A dog on the beach, with a ball in its mouth", "A dog on the beach"},
    {A, EN, 20, "Supercalifragilisticexpialidocious", "Supercalifragilistic"},
    // an alt text keeps a sentence end only when it keeps >= 60% of the limit
    {A, EN, 50, "A red kite. It hovers over a field of barley at noon in June.",
     "A red kite. It hovers over a field of barley"},
    {A, EN, 50, "A red kite hovering over a barley field. It is noon in June.",
     "A red kite hovering over a barley field"},
    // alt text, Chinese
    {A, ZH, 60, "图片显示了一只在草地上奔跑的金毛犬。", "一只在草地上奔跑的金毛犬"},
    {A, ZH, 60, "这是一张在草地上奔跑的金毛犬的照片。", "在草地上奔跑的金毛犬"},
    {A, ZH, 60, "这是一张风景图片，远处是雪山。", "风景，远处是雪山"},
    {A, ZH, 60, "这张图片展示了：一杯拿铁咖啡", "一杯拿铁咖啡"},
    {A, ZH, 60, "替代文本：“图中是一座红色的灯塔。”", "一座红色的灯塔"},
    {A, ZH, 60, "「图片中有两只猫」", "两只猫"},
    {A, ZH, 60, "这是北京故宫的角楼", "这是北京故宫的角楼"},
    {A, ZH, 12, "一只金毛犬在草地上奔跑，嘴里叼着一个红色的球", "一只金毛犬在草地上奔跑"},
    {A, ZH, 20, "一只金毛犬在草地上奔跑。它的嘴里叼着一个红色的球", "一只金毛犬在草地上奔跑"},
    {A, ZH, 5, "一只金毛犬在草地上奔跑", "一只金毛犬"},
    // summary: paragraphs kept, markdown and labels gone, length
    {S, EN, 0, "## Summary\n\nThe team **halved** build times.\n\n\n\nCaching did most of it.",
     "The team halved build times.\n\nCaching did most of it."},
    {S, EN, 0, "Summary: The team halved build times", "The team halved build times."},
    {S, EN, 100,
     "The team halved build times by caching dependencies. They also split the test suite across "
     "four machines and removed slow tests.",
     "The team halved build times by caching dependencies."},
    {S, EN, 60, "The team halved build times by caching dependencies and splitting tests across machines",
     "The team halved build times by caching dependencies…"},
    {S, ZH, 0, "摘要：团队把构建时间缩短了一半", "团队把构建时间缩短了一半。"},
    {S, ZH, 30, "团队通过缓存依赖把构建时间缩短了一半。他们还把测试分到四台机器上并删除了慢测试。",
     "团队通过缓存依赖把构建时间缩短了一半。"},
    {S, ZH, 20, "团队通过缓存依赖，把构建时间缩短了一半，并且把测试分到四台机器上",
     "团队通过缓存依赖，把构建时间缩短了一半。"},
    {S, ZH, 10, "团队通过缓存依赖把构建时间缩短了一半", "团队通过缓存依赖把…"},
    // SEO description: one line, within the limit
    {D, EN, 160, "Meta description: \"Learn how we halved CI build times with dependency caching and parallel tests.\"",
     "Learn how we halved CI build times with dependency caching and parallel tests."},
    {D, EN, 160, "Learn how we halved CI build times\nwith caching", "Learn how we halved CI build times with caching."},
    {D, EN, 80,
     "Learn how we halved CI build times with dependency caching, parallel tests and a few other tricks.",
     "Learn how we halved CI build times with dependency caching, parallel tests…"},
    {D, ZH, 80, "元描述：本文介绍我们如何通过依赖缓存和并行测试将持续集成的构建时间缩短一半。",
     "本文介绍我们如何通过依赖缓存和并行测试将持续集成的构建时间缩短一半。"},
    {D, ZH, 30, "本文介绍我们如何通过依赖缓存和并行测试，将持续集成的构建时间缩短一半，并分享经验。",
     "本文介绍我们如何通过依赖缓存和并行测试。"},
    // degenerate
    {A, EN, 125, "<think>only thinking", ""},
    {S, EN, 100, "   ", ""},
    {A, EN, 125, "\xff\xfe broken", "Broken"},   // not UTF-8: dropped, never U+FFFD in an alt
    {S, EN, 100, "Half \xe4\xb8 a character.", "Half a character."},
    {A, EN, 125, "A red\x12 kite\x7f over \xc2\x85the dunes", "A red kite over the dunes"},   // controls go
};

START_TEST(postprocess_table)
{
    const PostCase &c = post_cases[_i];
    std::string got = postprocess_task_output(c.kind, c.lang, c.in, c.max_chars);
    ck_assert_msg(got == c.want, "case %d (%s/%s/%d): \"%s\"\n  got:  \"%s\"\n  want: \"%s\"", _i,
                  task_kind_name(c.kind), task_language_name(c.lang), c.max_chars, c.in, got.c_str(), c.want);
    if (c.max_chars > 0)
        ck_assert_msg(utf8_length(got) <= size_t(c.max_chars), "case %d: %zu > %d code points", _i,
                      utf8_length(got), c.max_chars);
}
END_TEST

START_TEST(postprocess_never_exceeds_limit)
{
    // Long outputs of every kind and several limits: never over, never
    // invalid UTF-8, never ending in a comma.
    const char *long_en = "A long line of people waits outside the small bakery on a rainy morning, "
                          "umbrellas open, while the baker, flour on her apron, hands out warm loaves.";
    const char *long_zh = "清晨的小面包店外排着长队，人们撑着伞在雨中等待，面包师围裙上沾满面粉，正把刚出炉的面包递给顾客。";
    size_t checked = 0;
    for (TaskKind k : {A, S, D})
        for (int limit = 3; limit < 140; limit += 7)
            for (auto [lang, text] : {std::pair{EN, long_en}, std::pair{ZH, long_zh}}) {
                std::string got = postprocess_task_output(k, lang, text, limit);
                ck_assert_msg(utf8_length(got) <= size_t(limit), "%s/%d: %zu code points: %s",
                              task_kind_name(k), limit, utf8_length(got), got.c_str());
                ck_assert(!got.empty());
                ck_assert_msg(got.back() != ',' && got.find("，", got.size() - 3) == std::string::npos,
                              "ends in a comma: %s", got.c_str());
                checked++;
            }
    std::printf("length limit held for %zu (kind, language, limit) combinations\n", checked);
}
END_TEST

// ---------------------------------------------------------- task layer ---

// run_task: the chat request is built into the caller's request (its
// sampling kept), and what the engine reports reaches the transport as one
// DONE with the post-processed answer; the model's draft never does.
START_TEST(task_answer_is_one_final_event)
{
    TaskTemplates t = shipped_templates();
    TaskParams p;
    p.kind = TaskKind::ALT_TEXT;
    p.language = "en";
    p.max_chars = 100;
    p.images.push_back(fixture_image("tiny.png"));
    ChatRequest req;
    req.sampling.temperature = 0.5f;
    std::vector<EngineEvent> sent;
    EventSink sink = [&](const EngineEvent &ev) { sent.push_back(ev); };
    std::string err;
    ck_assert_msg(run_task(&t, p, req, sink, err), "%s", err.c_str());
    ck_assert_uint_eq(req.messages.size(), 2);
    ck_assert_uint_eq(req.images.size(), 1);
    ck_assert(req.sampling.temperature == 0.5f);

    EngineEvent d1, d2, done;
    d1.text = "An image of";
    d1.tokens = {1, 2, 3};
    d2.text = " a dog.";
    done.kind = EngineEvent::DONE;
    done.text = d1.text + d2.text;
    done.finish_reason = "stop";
    done.prompt_tokens = 40;
    done.completion_tokens = 5;
    sink(d1);
    sink(d2);
    ck_assert_msg(sent.empty(), "%zu events passed before DONE", sent.size());
    sink(done);
    ck_assert_uint_eq(sent.size(), 1);
    const EngineEvent &got = sent[0];
    ck_assert(got.kind == EngineEvent::DONE && got.whole_answer);
    ck_assert_str_eq(got.text.c_str(), "A dog");
    ck_assert_str_eq(got.language.c_str(), "en");
    ck_assert_str_eq(got.finish_reason.c_str(), "stop");
    ck_assert_int_eq(got.prompt_tokens, 40);
    ck_assert_int_eq(got.completion_tokens, 5);

    // An error passes through as it is.
    sent.clear();
    sink = [&](const EngineEvent &ev) { sent.push_back(ev); };
    ck_assert(run_task(&t, p, req, sink, err));
    EngineEvent fail;
    fail.kind = EngineEvent::ERROR;
    fail.error_status = 413;
    fail.error = "prompt too long";
    sink(d1);
    sink(fail);
    ck_assert_uint_eq(sent.size(), 1);
    ck_assert(sent[0].kind == EngineEvent::ERROR && !sent[0].whole_answer);
    ck_assert_int_eq(sent[0].error_status, 413);
    ck_assert_str_eq(sent[0].error.c_str(), "prompt too long");

    // Refusals are the request builder's, or "no templates".
    ck_assert(!run_task(nullptr, p, req, sink, err));
    ck_assert_msg(err.find("not available: vlmd has no prompt templates") != std::string::npos, "%s",
                  err.c_str());
    p.images.clear();
    ck_assert(!run_task(&t, p, req, sink, err));
    ck_assert_msg(err.find("needs exactly one image") != std::string::npos, "%s", err.c_str());
}
END_TEST

// ------------------------------------------------------------ end to end ---

START_TEST(tasks_end_to_end_on_tiny_model)
{
    std::string dir = fixtures() + "/models/tiny-flash";
    std::string err;
    BackendOptions bopt;
    bopt.n_threads = 2;
    std::unique_ptr<Backend> backend = make_backend("cpu", bopt, err);
    ck_assert_msg(backend != nullptr, "%s", err.c_str());
    auto tok = Tokenizer::load(dir + "/tokenizer.json", err);
    ck_assert_msg(tok != nullptr, "%s", err.c_str());
    std::unique_ptr<Model> model;
    ck_assert_msg(load_model(dir, *backend, model, err), "%s", err.c_str());
    TaskTemplates t = shipped_templates();

    struct Run {
        TaskKind    kind;
        const char *lang, *text;
        int         max_chars;
    } runs[] = {
        {TaskKind::ALT_TEXT, "auto", "A trip to the coast.", 20},
        {TaskKind::ALT_TEXT, "zh", "海边旅行。", 10},
        {TaskKind::SUMMARY, "auto", "今天我们发布了新版本。它更快，也更稳定。", 50},
        {TaskKind::SUMMARY, "en", "We released a new version. It is faster.", 100},
        {TaskKind::SEO_DESCRIPTION, "en", "We released a new version. It is faster.", 50},
        {TaskKind::SEO_DESCRIPTION, "zh", "今天我们发布了新版本。", 30},
    };
    for (const Run &run : runs) {
        TaskParams p;
        p.kind = run.kind;
        p.language = run.lang;
        p.title = "Release notes";
        p.text = run.text;
        p.max_chars = run.max_chars;
        p.images.push_back(fixture_image("tiny.png"));
        ChatRequest req;
        ResolvedTask r;
        ck_assert_msg(build_task_request(t, p, req, r, err), "%s", err.c_str());
        req.ignore_eos = true;   // the random model may stop at once; we want text
        GenerationResult out;
        ck_assert_msg(generate(*model, *tok, req, nullptr, out, err), "%s: %s", task_kind_name(run.kind),
                      err.c_str());
        ck_assert_int_eq(int(out.tokens.size()), req.max_tokens);
        // The random model may produce think tags; feed some in as a model
        // with thinking would, to check they never reach the author.
        std::string raw = "<think>" + out.text + "</think>" + out.text + "<think>" + out.text;
        std::string clean = postprocess_task_output(r.kind, r.language, raw, r.max_chars);
        ck_assert_msg(clean.find("<think>") == std::string::npos && clean.find("</think>") == std::string::npos,
                      "think tag left: %s", clean.c_str());
        ck_assert_msg(utf8_length(clean) <= size_t(r.max_chars), "%s: %zu > %d code points",
                      task_kind_name(run.kind), utf8_length(clean), r.max_chars);
        std::string plain = postprocess_task_output(r.kind, r.language, out.text, r.max_chars);
        ck_assert(utf8_length(plain) <= size_t(r.max_chars));
        std::printf("e2e %s/%s: %zu tokens, raw %zu code points -> %zu (limit %d)\n", task_kind_name(r.kind),
                    task_language_name(r.language), out.tokens.size(), utf8_length(out.text),
                    utf8_length(plain), r.max_chars);
    }
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv) {
    return vlm_check_main(argc, argv, "tasks", {
        {"tasks", 600, {
            shipped_templates_load,
            minimal_template_parses,
            bad_templates_refused_with_messages,
            template_directory_checks,
            language_detection,
            build_alt_text_prompt,
            build_summary_prompt_zh_auto,
            build_refusals,
            {postprocess_table, 0, int(sizeof post_cases / sizeof post_cases[0])},
            postprocess_never_exceeds_limit,
            task_answer_is_one_final_event,
            tasks_end_to_end_on_tiny_model,
        }},
    });
}
