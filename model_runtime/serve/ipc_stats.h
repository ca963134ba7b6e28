// ipc_stats.h: the payload of a STATS record: the engine's metrics and the
// IPC counters as one JSON object (nginx turns it into vlmd_* lines on
// /metrics; vlm-run --stats prints it).
#pragma once

#include "serve/ipc_connection.h"

#include <string>

namespace vlm {

std::string stats_json(IpcServer &s);

}  // namespace vlm
