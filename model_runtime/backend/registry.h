// registry.h: backends by name, for programs and tests. The model layer never
// includes this: it is handed a Backend.
#pragma once

#include "core/backend.h"

#include <memory>
#include <string>

namespace vlm {

// Creates a backend by name ("cpu", "cuda", "cuda-emu"); nullptr and a reason
// when unknown or unavailable in this build.
std::unique_ptr<Backend> make_backend(const std::string &name,
                                      const BackendOptions &opt,
                                      std::string &err);

}  // namespace vlm
