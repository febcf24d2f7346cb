#include "common/status.h"

namespace reelfarm {

std::string Status::ToString() const {
  const char* name = "OK";
  switch (code_) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: name = "Invalid argument"; break;
    case Code::kNotFound: name = "Not found"; break;
    case Code::kIOError: name = "I/O error"; break;
    case Code::kUnavailable: name = "Unavailable"; break;
    case Code::kInternal: name = "Internal"; break;
    case Code::kCancelled: name = "Cancelled"; break;
    case Code::kDeadlineExceeded: name = "Deadline exceeded"; break;
    case Code::kFailedPrecondition: name = "Failed precondition"; break;
    case Code::kDataLoss: name = "Data loss"; break;
  }
  return std::string(name) + ": " + message_;
}

}  // namespace reelfarm
