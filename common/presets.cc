#include "common/presets.h"

namespace reelfarm {

const std::vector<PresetInfo>& Presets() {
  static const std::vector<PresetInfo> kPresets = {
      {"master-prores", ".mov", true, true, true, false},
      {"master-dnxhr", ".mxf", true, true, false, false},
      {"web-h264", ".mp4", true, true, true, false},
      {"web-hevc", ".mp4", true, true, true, false},
      {"social-h264", ".mp4", true, true, true, false},
      {"thumbnail-jpg", ".jpg", true, false, false, true},
      {"audio-wav", ".wav", false, true, false, false},
  };
  return kPresets;
}

const PresetInfo* FindPreset(const std::string& name) {
  for (const auto& p : Presets()) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

}  // namespace reelfarm
