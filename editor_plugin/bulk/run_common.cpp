// Checkpoint policy, preview diff, summary and exit code for both modes.
// Leaves out: a minimal-edit diff algorithm (we never add or remove lines, so a line-by-line
// comparison with a prefix/suffix fallback is enough).
#include "run_common.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace vlm::bulk {

namespace {

std::vector<std::string> split_lines(const std::string& s) {
    std::vector<std::string> lines;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t eol = s.find('\n', pos);
        if (eol == std::string::npos) eol = s.size();
        lines.push_back(s.substr(pos, eol - pos));
        pos = eol + 1;
    }
    return lines;
}

}  // namespace

VlmSettings settings_from(const Options& o) {
    VlmSettings s;
    s.endpoint = o.endpoint;
    s.api_key = o.api_key;
    s.language = o.language;
    s.max_length = o.max_length;
    s.max_retries = o.max_retries;
    return s;
}

int prepare_checkpoint(const Options& opts, Checkpoint& checkpoint) {
    checkpoint.set_enabled(!opts.dry_run);
    if (opts.resume) {
        if (!checkpoint.exists()) {
            if (!opts.quiet) std::fprintf(stderr, "vlm-bulk: --resume: no state file yet, starting fresh\n");
            return -1;
        }
        std::string err;
        if (!checkpoint.load(err)) {
            std::fprintf(stderr, "vlm-bulk: --resume: %s\n", err.c_str());
            return exit_usage;
        }
        return -1;
    }
    if (checkpoint.exists() && !opts.dry_run) {
        std::fprintf(stderr,
                     "vlm-bulk: a state file from an unfinished run exists; pass --resume to continue it "
                     "or delete it (or choose another --state)\n");
        return exit_usage;
    }
    return -1;
}

int preflight_service(const VlmSettings& settings) {
    VlmClient client(settings, 1);
    std::string err;
    AltStatus s = client.preflight(err);
    if (s == AltStatus::unreachable) {
        std::fprintf(stderr, "vlm-bulk: service unreachable: %s\n", err.c_str());
        return exit_service;
    }
    if (s == AltStatus::auth_failed) {
        std::fprintf(stderr, "vlm-bulk: authentication failed: %s\n", err.c_str());
        return exit_service;
    }
    return -1;
}

void print_preview(const std::string& name, const std::string& before, const std::string& after) {
    if (before == after) return;
    std::vector<std::string> a = split_lines(before), b = split_lines(after);
    std::printf("--- a/%s\n+++ b/%s\n", name.c_str(), name.c_str());
    if (a.size() == b.size()) {
        for (size_t i = 0; i < a.size(); ++i) {
            if (a[i] == b[i]) continue;
            std::printf("@@ -%zu +%zu @@\n-%s\n+%s\n", i + 1, i + 1, a[i].c_str(), b[i].c_str());
        }
        return;
    }
    size_t pre = 0;
    while (pre < a.size() && pre < b.size() && a[pre] == b[pre]) ++pre;
    size_t suf = 0;
    while (suf < a.size() - pre && suf < b.size() - pre && a[a.size() - 1 - suf] == b[b.size() - 1 - suf]) ++suf;
    std::printf("@@ -%zu,%zu +%zu,%zu @@\n", pre + 1, a.size() - pre - suf, pre + 1, b.size() - pre - suf);
    for (size_t i = pre; i < a.size() - suf; ++i) std::printf("-%s\n", a[i].c_str());
    for (size_t i = pre; i < b.size() - suf; ++i) std::printf("+%s\n", b[i].c_str());
}

int finish_run(const Options& opts, const std::vector<ReportRow>& unsorted, const RunSummary& summary,
               Checkpoint& checkpoint) {
    std::vector<ReportRow> rows = unsorted;
    std::stable_sort(rows.begin(), rows.end(), [](const ReportRow& a, const ReportRow& b) {
        return a.document != b.document ? a.document < b.document : a.line < b.line;
    });
    std::map<std::string, size_t> counts;
    for (const auto& r : rows) ++counts[r.status];
    if (!opts.report.empty()) {
        std::string err;
        if (!write_report(opts.report, rows, err)) std::fprintf(stderr, "vlm-bulk: report: %s\n", err.c_str());
    }
    if (!opts.quiet) {
        std::string line;
        for (const auto& [k, v] : counts) line += " " + k + "=" + std::to_string(v);
        std::fprintf(stderr, "vlm-bulk: done:%s requests=%zu\n", line.empty() ? " nothing to do" : line.c_str(),
                     summary.requests);
    }
    if (summary.fatal) {
        std::fprintf(stderr, "vlm-bulk: stopped early: %s (state kept; rerun with --resume)\n",
                     summary.fatal_reason.c_str());
        return exit_service;
    }
    bool problems = counts["failed"] + counts["conflict"] + counts["not_attempted"] > 0;
    if (!problems && !opts.dry_run) {
        std::string err;
        if (!checkpoint.remove_file(err)) std::fprintf(stderr, "vlm-bulk: %s\n", err.c_str());
    }
    return problems ? exit_some_failed : exit_ok;
}

}  // namespace vlm::bulk
