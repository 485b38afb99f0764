#include <cstdint>

#include "python/ops/current_stream.h"

namespace dilated {
namespace torch_ops {

void* CurrentStream(int32_t /*device_index*/) { return nullptr; }

}  // namespace torch_ops
}  // namespace dilated
