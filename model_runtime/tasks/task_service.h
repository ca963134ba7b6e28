// task_service.h: the task layer between vlmd's transport and its engine.
// A transport decodes a task request into TaskParams and hands it here with
// the sink its answer records go to; run_task turns the parameters into the
// chat request the engine runs and wraps the sink so that the transport
// sees one answer, never the model's draft:
//   - DELTA events are swallowed: a task's answer is post-processed as a
//     whole (a label, a quote or a cut can only be judged at the end), so
//     streaming the draft would only send bytes to be thrown away;
//   - DONE carries the post-processed answer (postprocess.h) with
//     whole_answer set and the answer's language; the engine already keeps
//     the whole generated text, so nothing is buffered twice;
//   - ERROR passes through unchanged.
// The same path serves alt_text, summary and seo_description; the kind
// picks the template and the post-processing rules.
// Not here: the engine (serve/engine.h), the wire format (serve/).
#pragma once

#include "generate/request.h"
#include "generate/request_events.h"
#include "tasks/task_request.h"
#include "tasks/templates.h"

#include <string>

namespace vlm {

// Builds the chat request for `params` into `req` (messages, images, chat
// options, max_tokens; the caller's sampling, stop strings and limits stay)
// and replaces `reply` by the task's sink (above). `templates` null: vlmd
// runs without prompt templates and refuses every task. False with a reason
// the client may read (a 400); then `req` and `reply` are unspecified.
bool run_task(const TaskTemplates *templates, const TaskParams &params, ChatRequest &req,
              EventSink &reply, std::string &err);

// The sink run_task installs, for a task already resolved; `reply` gets
// DONE once with the answer, or ERROR.
EventSink task_answer_sink(const ResolvedTask &task, EventSink reply);

}  // namespace vlm
