// Finishing a streaming package on the worker (docs/spec.md, "Streaming
// ladders"): what FFmpeg's hls muxer wrote into the attempt's temporary
// folder is checked rendition by rendition, the master playlist is written
// from what was measured, and every file is made durable and hashed, all
// before the folder is renamed to its final name.
#ifndef REELFARM_WORKER_PACKAGE_H_
#define REELFARM_WORKER_PACKAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/process_runner.h"
#include "common/status.h"
#include "proto/reelfarm.pb.h"

namespace reelfarm {

struct FinishedPackage {
  std::vector<pb::RenditionResult> renditions;
  std::vector<pb::PackageFile> files;  // every file, master included
  pb::MediaInfo media;                 // the master playlist, probed
  int64_t bytes = 0;                   // all files together
  std::string sha256;                  // of the file list (PackageListing)
};

// Checks the package `out` (JobOutput.package) that FFmpeg wrote into
// `folder`: each rendition's playlist is complete and names only files
// beside it, its segments exist, the picture renditions' segments have the
// same lengths (aligned), and ffprobe (HLS demuxer, our files only) finds
// what the plan expects. Then writes the master playlist, fsyncs every file
// and folder and hashes each file. InvalidArgument: the package is wrong
// (the same job makes it wrong again); other codes: this host's trouble.
StatusOr<FinishedPackage> FinishPackage(ProcessRunner& runner, const std::string& ffprobe,
                                        const std::string& folder, const pb::JobOutput& out);

// Whether `dir` holds a package as FinishPackage leaves one: master.m3u8
// and rendition folders of playlists, init and media segments, nothing else.
bool IsOurPackage(const std::string& dir);

// Puts the finished folder `from` at `to`: a rename; where `to` already
// holds an earlier package (IsOurPackage), an exchange of the two in one
// step (renameat2 RENAME_EXCHANGE; where the filesystem lacks it, the old
// one moved aside first), after which the old one is removed. Anything
// else at `to` is left alone: InvalidArgument. The caller fsyncs the parent.
Status PublishFolder(const std::string& from, const std::string& to);

}  // namespace reelfarm

#endif  // REELFARM_WORKER_PACKAGE_H_
