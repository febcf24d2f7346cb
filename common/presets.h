// The preset table (docs/spec.md): shared by spec validation and the planner.
#ifndef REELFARM_COMMON_PRESETS_H_
#define REELFARM_COMMON_PRESETS_H_

#include <string>
#include <vector>

namespace reelfarm {

struct PresetInfo {
  std::string name;       // "master-prores"
  std::string extension;  // ".mov"
  bool has_video;
  bool has_audio;
  bool soft_subtitles;    // the container can carry a mov_text track
  bool still;             // one frame (thumbnail)
};

// Every preset, in documentation order.
const std::vector<PresetInfo>& Presets();
// nullptr when unknown.
const PresetInfo* FindPreset(const std::string& name);

}  // namespace reelfarm

#endif  // REELFARM_COMMON_PRESETS_H_
