// Pieces both modes share: checkpoint setup rules, the dry-run preview, the final report and
// the exit code.
// Leaves out: anything mode-specific (where documents come from and how they are saved).
#pragma once
#include <string>
#include <vector>

#include "checkpoint.h"
#include "job_runner.h"
#include "options.h"
#include "report.h"

namespace vlm::bulk {

enum ExitCode { exit_ok = 0, exit_some_failed = 1, exit_usage = 2, exit_service = 3 };

// Loads the state for --resume, refuses to clobber an unfinished run's state without it.
// Returns -1 to continue, or an exit code.
int prepare_checkpoint(const Options& opts, Checkpoint& checkpoint);

// Checks the endpoint and key before any work; -1 to continue, or exit_service.
int preflight_service(const VlmSettings& settings);

VlmSettings settings_from(const Options& opts);

// Prints a unified-diff-like preview of the changed lines to stdout.
void print_preview(const std::string& name, const std::string& before, const std::string& after);

// Writes the report, prints a one-line summary, deletes the state file when everything is done,
// and returns the exit code.
int finish_run(const Options& opts, const std::vector<ReportRow>& rows, const RunSummary& summary,
               Checkpoint& checkpoint);

}  // namespace vlm::bulk
