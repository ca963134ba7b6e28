// request.cpp: see request.h.
#include "generate/request.h"

namespace vlm {

ImageBytes ImageBytes::copy_of(std::vector<uint8_t> bytes)
{
    auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
    ImageBytes b;
    b.data = owned->data();
    b.size = owned->size();
    b.owner = owned;
    return b;
}

}  // namespace vlm
