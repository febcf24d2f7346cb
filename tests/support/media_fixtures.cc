#include "tests/support/media_fixtures.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace reelfarm::testing {
namespace {

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", s);
  return buf;
}

}  // namespace

std::vector<std::string> LavfiArgv(const std::vector<std::string>& inputs,
                                   const std::vector<std::string>& rest) {
  std::vector<std::string> argv = {"ffmpeg", "-hide_banner", "-nostdin",
                                   "-y",     "-loglevel",    "error"};
  for (const auto& in : inputs) argv.insert(argv.end(), {"-f", "lavfi", "-i", in});
  argv.insert(argv.end(), rest.begin(), rest.end());
  return argv;
}

namespace {

// The argv that writes `kind` into `path` (a mov), except the rotation step.
std::vector<std::string> GenerateArgv(SourceKind kind, const std::string& path, double seconds) {
  const std::string d = Seconds(seconds);
  std::string rate = "25";
  if (kind == SourceKind::kFps23976) rate = "24000/1001";
  if (kind == SourceKind::kVfr) rate = "30";
  const bool audio = kind != SourceKind::kNoAudio;
  std::vector<std::string> inputs = {"testsrc2=size=320x180:rate=" + rate + ":duration=" + d};
  if (audio) inputs.push_back("sine=frequency=440:sample_rate=48000:duration=" + d);
  std::vector<std::string> argv = LavfiArgv(inputs, {});
  argv.insert(argv.end(), {"-map", "0:v:0"});
  if (audio) argv.insert(argv.end(), {"-map", "1:a:0"});
  std::string pix_fmt = "yuv420p";
  switch (kind) {
    case SourceKind::kOddSize:
      // testsrc2 only draws even sizes; 4:4:4 lets x264 keep 321x181.
      argv.insert(argv.end(), {"-vf", "scale=321:181,setsar=1"});
      pix_fmt = "yuv444p";
      break;
    case SourceKind::kVfr:
      // Drop every fifth frame of 30 fps and keep the timestamps: frames
      // arrive 1/30 or 2/30 s apart, about 24 fps on average.
      argv.insert(argv.end(), {"-vf", "select='not(eq(mod(n\\,5)\\,4))'", "-fps_mode", "vfr"});
      break;
    default:
      break;
  }
  argv.insert(argv.end(), {"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt});
  if (audio) {
    argv.insert(argv.end(), {"-c:a", "aac", "-ac", kind == SourceKind::kSurround51 ? "6" : "2"});
  }
  argv.insert(argv.end(), {"-f", "mov", path});
  return argv;
}

}  // namespace

std::string GenerateSource(SourceKind kind, const std::string& path, double seconds) {
  std::string target = kind == SourceKind::kRotated ? path + ".upright.mov" : path;
  if (RunArgv(GenerateArgv(kind, target, seconds)) != 0) {
    ADD_FAILURE() << "ffmpeg could not generate a test source at " << target;
    return "";
  }
  if (kind == SourceKind::kRotated) {
    // FFmpeg 5.1 turns the rotate tag into a display matrix that ffprobe
    // shows as "rotation": 90 (counterclockwise), i.e. the picture is shown
    // upright after turning it 270 degrees clockwise; 180x320 either way.
    int rc =
        RunArgv({"ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", target,
                 "-map", "0", "-c", "copy", "-metadata:s:v:0", "rotate=90", "-f", "mov", path});
    std::remove(target.c_str());
    if (rc != 0) {
      ADD_FAILURE() << "ffmpeg could not write the rotated test source " << path;
      return "";
    }
  }
  return path;
}

std::string WriteSrt(const std::string& path, bool bom) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (bom) out << "\xEF\xBB\xBF";
  out << "1\n00:00:00,000 --> 00:00:00,900\nHello, world\n\n"
      << "2\n00:00:01,000 --> 00:00:01,900\nSecond cue: caf\xC3\xA9\n\n";
  out.close();
  if (!out) ADD_FAILURE() << "could not write " << path;
  return path;
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string MakeTempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  std::string templ = base + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << templ << "): " << std::strerror(errno);
    return "";
  }
  return std::string(buf.data());
}

int RunArgv(const std::vector<std::string>& argv, std::string* out) {
  if (argv.empty()) return -1;
  int pipe_fds[2] = {-1, -1};
  if (out != nullptr && pipe(pipe_fds) != 0) return -1;
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    if (out != nullptr) {
      close(pipe_fds[0]);
      close(pipe_fds[1]);
    }
    return -1;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    if (out != nullptr) {
      dup2(pipe_fds[1], STDOUT_FILENO);
      close(pipe_fds[0]);
      close(pipe_fds[1]);
    }
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  if (out != nullptr) {
    close(pipe_fds[1]);
    out->clear();
    char buf[65536];
    for (;;) {
      ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
      if (n > 0) {
        out->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        break;
      }
    }
    close(pipe_fds[0]);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace reelfarm::testing
