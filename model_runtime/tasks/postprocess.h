// postprocess.h: makes a task's generated text fit for direct use in the
// editor: an alt attribute, an excerpt, a meta description. The model's
// text is a draft; this is the answer.
// Not here: generation, the request (task_request.h), deciding whether an
// image is decorative (the author decides in the editor).
//
// Lengths are counted in Unicode code points: one Chinese character is one.
#pragma once

#include "tasks/task_kind.h"

#include <string>

namespace vlm {

// For every kind: thinking removed (<think>...</think> blocks, reasoning
// before a stray </think>, an unclosed <think> to the end), <answer>/box
// tags and stray special tokens removed.
// For the tasks additionally: markdown emphasis/heading/bullet markers,
// labels ("Alt text:", "摘要："), wrapping quotes removed; whitespace
// normalised (one line for alt_text and seo_description); bytes that are not
// UTF-8 and control characters dropped; trimmed to max_chars code points at
// a sentence end (.!?。！？) if that keeps enough of the text (60% of the
// limit for alt text, 40% otherwise), else at a clause boundary ；，、
// (Chinese), else at a word boundary (dangling "the"/"and"... dropped), else
// hard at a code point.
// alt_text: "image of"/"a photo of"/"图片显示"/"这是一张…的图片" openings
// removed, first letter capitalised, no trailing full stop ("." or "。"; the
// alt is a phrase read inline and a stop after a mid-sentence cut would
// mislead; "?" and "!" stay). summary/seo_description: ends in sentence
// punctuation: "。" after a Chinese clause cut, "…" after a word or hard
// cut, a full stop when the model left it out (all within max_chars).
// SEO's 50-character minimum is asked of the model by the template; it is
// not padded here. The result may be empty (only thinking, or nothing).
// max_chars <= 0: no trimming.
std::string postprocess_task_output(TaskKind kind, TaskLanguage language,
                                    const std::string &text, int max_chars);

}  // namespace vlm
