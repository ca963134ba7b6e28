// language.cpp: see language.h.
#include "tasks/language.h"
#include "tasks/task_text.h"

namespace vlm {

namespace {

bool is_cjk_ideograph(char32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x20000 && c <= 0x2FA1F);
}

bool is_latin_letter(char32_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7);
}

}  // namespace

TaskLanguage detect_language(const std::string &text) {
    size_t cjk = 0, latin_words = 0;
    bool in_word = false;
    for (const CodePoint &c : code_points(text)) {
        bool latin = is_latin_letter(c.cp);
        if (latin && !in_word) latin_words++;
        in_word = latin;
        if (is_cjk_ideograph(c.cp)) cjk++;
    }
    // A Latin word carries about as much as two Chinese characters, so weigh
    // words, not letters: "在 Kubernetes cluster 上部署模型" is Chinese with
    // English terms, "A visit to the 故宫 in Beijing" is English.
    if (cjk > 0 && cjk * 10 >= (cjk + 2 * latin_words) * 3) return TaskLanguage::ZH;
    return TaskLanguage::EN;
}

}  // namespace vlm
