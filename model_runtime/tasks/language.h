// language.h: which of the served languages (en, zh) an article is written
// in, for tasks asked with language "auto".
// Not here: other languages (a Japanese or French article is answered in
// English or Chinese), script detection beyond Han and Latin.
#pragma once

#include "tasks/task_kind.h"

#include <string>

namespace vlm {

// Chinese when CJK ideographs make up at least 30% of (ideographs + 2 x Latin
// words), English otherwise (also when there is no text). Japanese kanji
// count as CJK (only en and zh are served).
TaskLanguage detect_language(const std::string &text);

}  // namespace vlm
