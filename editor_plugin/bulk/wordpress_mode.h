// `vlm-bulk wordpress`: media library alt_text and <img alt> (plus a core/image block comment's
// "alt") inside posts/pages via the REST API with an application password. One request per
// attachment serves the library item and every post image linked to it (wp-image-N / block id);
// an empty in-post alt next to a human-written library alt gets the library's text. Items are
// re-read before writing: a post saved meanwhile is re-planned on the author's version (their
// alts win) and retried; a library alt edited meanwhile is kept and reported as a conflict.
// Leaves out: multisite network walks, posts open in the editor right now (Gutenberg's own copy
// may overwrite ours on its next save; each of our writes leaves a revision to compare).
#pragma once
#include "options.h"

namespace vlm::bulk {

int run_wordpress_mode(const Options& opts);

}  // namespace vlm::bulk
