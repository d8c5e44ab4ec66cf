#include "test_driver/channel_owner.h"

#include "test_driver/logger.h"

namespace td {

MachineError PlainChannelOwner::channel_error(const std::string& step, const std::string& reason) {
  return MachineError(label_ + ": " + step + ": " + reason);
}

void PlainChannelOwner::log(const std::string& message) { rootlog().log(label_ + ": " + message); }

}  // namespace td
