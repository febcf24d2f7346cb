// The web board's files (coordinator/web/), embedded in the binary at build
// time: cmake/embed_web.cmake generates their definitions.
#ifndef REELFARM_COORDINATOR_WEB_ASSETS_H_
#define REELFARM_COORDINATOR_WEB_ASSETS_H_

#include <cstddef>

namespace reelfarm {

struct WebAsset {
  const char* name;  // the file's name in coordinator/web/, e.g. "app.js"
  const unsigned char* data;
  size_t size;  // bytes (data holds one more: a terminating 0)
};

extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

}  // namespace reelfarm

#endif  // REELFARM_COORDINATOR_WEB_ASSETS_H_
