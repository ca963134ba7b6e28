// `vlm-bulk wordpress`: media library alt_text and <img alt> inside posts/pages via the REST API
// with an application password; posts are re-fetched before writing and skipped as conflicts
// when their modified_gmt changed since they were read.
// Leaves out: sites without /wp-json/ permalinks (?rest_route=), multisite network walks.
#pragma once
#include "options.h"

namespace vlm::bulk {

int run_wordpress_mode(const Options& opts);

}  // namespace vlm::bulk
