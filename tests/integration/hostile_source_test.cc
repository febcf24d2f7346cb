// Hostile sources (issue 3):
//  - HLS playlists, DASH manifests, SDP files and concat lists, under any file
//    name (a playlist renamed .mov, a list renamed .mp4), naming a listening
//    socket on 127.0.0.1, /etc/passwd and local media: refused by `reelfarm
//    plan`, `reelfarm run` and a coordinator's submit, before ffprobe opens
//    anything they name (the listener sees no connection, inotify sees no open
//    of the files they name, nothing of them shows in any message or output);
//  - truncated, empty, byte-flipped and not-media sources: refused at plan
//    time with a reason when ffprobe cannot read them; when ffprobe accepts
//    them (or the source is replaced after planning), the deliverable fails
//    once with a clear reason, is not retried, and nothing is published;
//  - FIFOs: a source replaced by a FIFO cannot hang ffprobe or a worker.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/output_cache.h"
#include "common/probe.h"
#include "common/process_runner.h"
#include "common/versions.h"
#include "tests/support/cli_run.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"
#include "worker/job_executor.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// A plain TCP listener on 127.0.0.1, polled without blocking.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd_, 16) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
      return;
    }
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() {
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }
  // Connections accepted so far (each is closed at once).
  int Accepted() {
    for (;;) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) break;
      close(c);
      ++accepted_;
    }
    return accepted_;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  int accepted_ = 0;
};

// Counts opens of watched files (inotify IN_OPEN), read without blocking.
class OpenWatch {
 public:
  OpenWatch() { fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC); }
  ~OpenWatch() {
    if (fd_ >= 0) close(fd_);
  }
  void Add(const std::string& path) {
    int wd = inotify_add_watch(fd_, path.c_str(), IN_OPEN);
    ASSERT_GE(wd, 0) << "inotify on " << path;
    names_[wd] = path;
  }
  // Paths opened since the last call.
  std::vector<std::string> Opened() {
    std::vector<std::string> out;
    alignas(inotify_event) char buf[4096];
    for (;;) {
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) break;
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        if (ev->mask & IN_OPEN) out.push_back(names_[ev->wd]);
        p += sizeof(inotify_event) + ev->len;
      }
    }
    return out;
  }

 private:
  int fd_ = -1;
  std::map<int, std::string> names_;
};

std::string Spec(const std::string& name, const std::string& source,
                 const std::string& deliverables =
                     "  - {name: web, preset: web-h264, height: 90}\n"
                     "  - {name: poster, preset: thumbnail-jpg}\n") {
  return "version: 1\nname: " + name + "\nsource: " + nlohmann::json(source).dump() +
         "\noutput_dir: out-" + name + "\ndeliverables:\n" + deliverables;
}

bool IsFinished(const nlohmann::json& d) {
  if (!d.is_object()) return false;
  std::string s = d.value("state", "");
  return s == "delivered" || s == "failed" || s == "cancelled";
}

// Files in `dir` other than the manifest (none when it does not exist).
// The item failed because a job it needed (the source's analysis) failed.
bool DependencyFailed(const nlohmann::json& item) {
  return item.value("error", "").rfind("a job it depends on failed: ", 0) == 0;
}

std::vector<std::string> PublishedFiles(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    // The manifests of versions and the output cache are no published files.
    const std::string name = it->path().filename().string();
    if (it->is_directory() && (name == kManifestsFolder || name == kDeliveryCacheFolder)) {
      it.disable_recursion_pending();
      continue;
    }
    if (name != "manifest.json") out.push_back(it->path().string());
  }
  return out;
}

class HostileSourceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir("reelfarm-hostile-src"));
    film_ = new std::string(GenerateSource(SourceKind::kPlain, *dir_ + "/film.mov", 1.0));
    // The same film with its index (moov) first, as a faststart file.
    faststart_ = new std::string(*dir_ + "/film-faststart.mov");
    int rc = RunArgv({"ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i",
                      *film_, "-c", "copy", "-movflags", "+faststart", *faststart_});
    EXPECT_EQ(rc, 0);
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    delete film_;
    delete faststart_;
  }
  void SetUp() override {
    ASSERT_FALSE(film_->empty());
    ASSERT_TRUE(fs::exists(*faststart_));
  }

  static std::string* dir_;
  static std::string* film_;
  static std::string* faststart_;
};

std::string* HostileSourceTest::dir_ = nullptr;
std::string* HostileSourceTest::film_ = nullptr;
std::string* HostileSourceTest::faststart_ = nullptr;

TEST_F(HostileSourceTest, PlaylistsAndListsUnderAnyNameAreRefusedBeforeFfprobeOpensAnything) {
  const std::string d = *dir_ + "/lists";
  fs::create_directories(d);
  // Local files the lists name: real media, so ffprobe's hls/concat demuxer
  // would read them if it ever got the list.
  fs::copy_file(*film_, d + "/secret.mov", fs::copy_options::overwrite_existing);
  ASSERT_EQ(RunArgv({"ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", *film_,
                     "-c", "copy", "-f", "mpegts", d + "/secret.ts"}),
            0);
  const std::string secret_bytes = ReadFileBytes(d + "/secret.mov").substr(0, 64);
  Listener listener;
  ASSERT_GT(listener.port(), 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(listener.port());
  const std::string tcp = "tcp://127.0.0.1:" + std::to_string(listener.port());

  const std::string id3 =
      std::string("ID3\x04\x00\x00\x00\x00\x00\x0a", 10) + std::string(10, '\0');
  const std::vector<std::pair<std::string, std::string>> files = {
      {"playlist.mov", "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n" + url +
                           "/a.ts\n#EXTINF:1,\n" + tcp +
                           "/b.ts\n#EXTINF:1,\nsecret.ts\n"
                           "#EXTINF:1,\nfile:/etc/passwd\n#EXT-X-ENDLIST\n"},
      {"playlist-local.mp4",
       "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nsecret.ts\n#EXT-X-ENDLIST\n"},
      {"playlist-id3.mov", id3 + "#EXTM3U\n#EXTINF:1,\nsecret.ts\n#EXT-X-ENDLIST\n"},
      {"playlist-bom.mkv", "\xEF\xBB\xBF#EXTM3U\n#EXTINF:1,\n" + url + "/a.ts\n"},
      {"list.mp4", "ffconcat version 1.0\nfile secret.mov\nfile /etc/passwd\n"},
      {"list-local.mov", "ffconcat version 1.0\nfile secret.mov\n"},
      {"list-noheader.mp4", "# my list\nfile 'secret.mov'\nfile '/etc/passwd'\n"},
      {"manifest.mp4",
       "<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" "
       "type=\"static\" mediaPresentationDuration=\"PT1S\"><BaseURL>" +
           url +
           "/</BaseURL><Period><AdaptationSet mimeType=\"video/mp4\">"
           "<Representation id=\"1\" bandwidth=\"1\"><BaseURL>secret.mov"
           "</BaseURL></Representation></AdaptationSet></Period></MPD>\n"},
      {"manifest-late.mov", "<?xml version=\"1.0\"?>\n<!-- " + std::string(6000, '-') +
                                " -->\n<MPD><BaseURL>" + url + "/</BaseURL></MPD>\n"},
      {"session.mov", "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video " +
                          std::to_string(listener.port()) +
                          " RTP/AVP 96\na=rtpmap:96 H264/90000\n"},
  };
  for (const auto& [name, text] : files) WriteAll(d + "/" + name, text);

  OpenWatch watch;
  watch.Add(d + "/secret.mov");
  watch.Add(d + "/secret.ts");

  LocalFarmOptions farm_options;
  farm_options.workers = 0;  // the coordinator's own check, nothing to run on
  LocalFarm farm(farm_options);
  ASSERT_TRUE(farm.Start().ok());

  int cases = 0, refused = 0;
  for (const auto& [name, text] : files) {
    SCOPED_TRACE(name);
    ++cases;
    const std::string source = d + "/" + name;
    EXPECT_NE(SourceContentProblem(source), "");
    const std::string spec = d + "/spec-" + name + ".yaml";
    const std::string stem =
        fs::path(name).stem().string() + "-" + fs::path(name).extension().string().substr(1);
    WriteAll(spec, Spec(stem, source));
    CliRun plan = RunCli({"plan", spec});
    EXPECT_EQ(plan.rc, 2) << plan.out << plan.err;
    EXPECT_NE(plan.err.find("refused"), std::string::npos) << plan.err;
    CliRun run = RunCli({"run", spec, "--workers", "1"});
    EXPECT_EQ(run.rc, 2) << run.out << run.err;
    auto submitted = farm.Submit(spec);
    EXPECT_FALSE(submitted.ok()) << "the coordinator accepted " << name;
    if (!submitted.ok()) {
      EXPECT_NE(submitted.status().message().find("refused"), std::string::npos)
          << submitted.status().message();
    }
    for (const std::string& msg : {plan.out + plan.err, run.out + run.err,
                                   submitted.ok() ? std::string() : submitted.status().message()}) {
      EXPECT_EQ(msg.find("root:"), std::string::npos) << "/etc/passwd leaked: " << msg;
      EXPECT_EQ(msg.find(secret_bytes), std::string::npos) << "secret.mov leaked";
    }
    EXPECT_FALSE(fs::exists(d + "/out-" + stem)) << "output folder created for " << name;
    if (plan.rc == 2 && run.rc == 2 && !submitted.ok()) ++refused;
  }
  EXPECT_EQ(listener.Accepted(), 0) << "something connected to the listener";
  EXPECT_EQ(watch.Opened(), std::vector<std::string>{}) << "a file a list names was opened";
  std::cout << cases << " playlist/list sources: " << refused
            << " refused by plan (exit 2), run (exit 2) and submit (422); listener connections: "
            << listener.Accepted() << "\n";

  // The watch and the listener really see opens and connections.
  { std::ifstream(d + "/secret.mov").get(); }
  EXPECT_EQ(watch.Opened(), std::vector<std::string>{d + "/secret.mov"});
  int c = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(listener.port()));
  ASSERT_EQ(connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(c);
  EXPECT_TRUE(LocalFarm::WaitFor([&] { return listener.Accepted() == 1; }, 5));
}

TEST_F(HostileSourceTest, UnreadableSourcesAreSpecErrorsWithAReason) {
  const std::string d = *dir_ + "/broken";
  fs::create_directories(d);
  const std::string plain = ReadFileBytes(*film_);  // index at the end
  std::string random(20000, '\0');
  std::mt19937 gen(7);
  for (char& ch : random) ch = static_cast<char>(gen());
  std::string flipped = plain;  // header and index bytes inverted
  for (size_t i = 0; i < 64; ++i) flipped[i] = static_cast<char>(~flipped[i]);
  for (size_t i = flipped.size() - 2000; i < flipped.size(); i += 7) {
    flipped[i] = static_cast<char>(~flipped[i]);
  }
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"empty.mov", "", "empty"},
      {"text.mov", std::string(200, 'x') + "\nnot a film\n", "ffprobe could not read"},
      {"random.mp4", random, "ffprobe could not read"},
      {"truncated.mov", plain.substr(0, plain.size() / 2), "moov atom not found"},
      {"flipped.mov", flipped, "ffprobe could not read"},
  };
  int refused = 0;
  for (const auto& [name, data, reason] : cases) {
    SCOPED_TRACE(name);
    WriteAll(d + "/" + name, data);
    const std::string stem = fs::path(name).stem().string();
    const std::string spec = d + "/spec-" + stem + ".yaml";
    WriteAll(spec, Spec(stem, d + "/" + name));
    CliRun plan = RunCli({"plan", spec});
    EXPECT_EQ(plan.rc, 2) << plan.out << plan.err;
    EXPECT_NE(plan.err.find(reason), std::string::npos) << plan.err;
    EXPECT_NE(plan.err.find("source"), std::string::npos) << plan.err;
    CliRun run = RunCli({"run", spec, "--workers", "1"});
    EXPECT_EQ(run.rc, 2) << run.out << run.err;
    EXPECT_FALSE(fs::exists(d + "/out-" + stem));
    if (plan.rc == 2 && run.rc == 2) ++refused;
  }
  std::cout << cases.size() << " broken sources: " << refused << " refused at plan (exit 2)\n";
}

// ffprobe reads a faststart file's index and accepts it; FFmpeg then runs
// out of data half-way (truncated), or decodes damaged data (bytes flipped
// after the index), concealing the errors and exiting 0. Either way the
// deliverable fails once with a reason, nothing is published, and `run`
// exits 3.
TEST_F(HostileSourceTest, DamagedMediaDataFailsOnceWithAReasonThroughRun) {
  const std::string d = *dir_ + "/damaged-run";
  fs::create_directories(d);
  const std::string data = ReadFileBytes(*faststart_);
  std::string flipped = data;
  size_t mdat = flipped.find("mdat");
  ASSERT_NE(mdat, std::string::npos);
  ASSERT_LT(flipped.find("moov"), mdat) << "the fixture must have its index first";
  for (size_t i = mdat + 2000; i < flipped.size(); i += 50)
    flipped[i] = static_cast<char>(~flipped[i]);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"cut", data.substr(0, data.size() / 2)},
      {"flipped", flipped},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    WriteAll(d + "/" + name + ".mov", bytes);
    const std::string spec = d + "/" + name + ".yaml";
    WriteAll(spec, Spec(name, d + "/" + name + ".mov",
                        "  - {name: web, preset: web-h264, height: 90}\n"));
    CliRun plan = RunCli({"plan", spec});
    ASSERT_EQ(plan.rc, 0) << "ffprobe was expected to accept " << name << ":\n" << plan.err;
    CliRun run = RunCli({"run", spec, "--workers", "1"});
    EXPECT_EQ(run.rc, 3) << run.out << run.err;
    const std::string out = d + "/out-" + name;
    std::ifstream in(out + "/manifest.json");
    nlohmann::json manifest = nlohmann::json::parse(in, nullptr, false);
    ASSERT_TRUE(manifest.is_object()) << run.out << run.err;
    ASSERT_EQ(manifest["deliverables"].size(), 1u);
    const auto& item = manifest["deliverables"][0];
    EXPECT_EQ(item.value("status", ""), "failed");
    // Found once: by the deliverable's own job, or by the source's analysis
    // before it (then the deliverable never ran).
    EXPECT_EQ(item.value("attempts", 0), DependencyFailed(item) ? 0 : 1)
        << "retried: " << item.dump();
    EXPECT_NE(item.value("error", ""), "") << item.dump();
    EXPECT_EQ(PublishedFiles(out), std::vector<std::string>{});
    std::cout << name << " faststart source via run: exit " << run.rc << ", attempts "
              << item.value("attempts", 0) << ", error: " << item.value("error", "") << "\n";
  }
}

// A good source planned by the coordinator, then replaced (before any worker
// runs) by a truncated, an empty and a not-media file: each job fails after
// one attempt (max attempts is 3), says the source cannot be decoded, and
// nothing is published.
TEST_F(HostileSourceTest, SourceCorruptedAfterPlanningFailsWithoutRetriesOnAFarm) {
  const std::string d = *dir_ + "/farm";
  fs::create_directories(d);
  LocalFarmOptions options;
  options.workers = 0;
  LocalFarm farm(options);
  ASSERT_TRUE(farm.Start().ok());
  const std::string plain = ReadFileBytes(*film_);
  const std::vector<std::pair<std::string, std::string>> corruptions = {
      {"truncated", plain.substr(0, plain.size() / 2)},
      {"empty", ""},
      {"not-media", std::string(5000, 'z')},
  };
  std::vector<std::pair<std::string, std::string>> ids;  // id, name
  for (const auto& [name, data] : corruptions) {
    fs::copy_file(*film_, d + "/" + name + ".mov", fs::copy_options::overwrite_existing);
    WriteAll(d + "/" + name + ".yaml", Spec(name, d + "/" + name + ".mov"));
    auto id = farm.Submit(d + "/" + name + ".yaml");
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    WriteAll(d + "/" + name + ".mov", data);
    ids.push_back({*id, name});
  }
  ASSERT_TRUE(farm.StartWorker(0).ok());
  for (const auto& [id, name] : ids) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(LocalFarm::WaitFor([&] { return IsFinished(farm.Delivery(id)); }, 120))
        << farm.Delivery(id).dump(2) << farm.LogTail("worker-0");
    auto delivery = farm.Delivery(id);
    EXPECT_EQ(delivery.value("state", ""), "failed");
    ASSERT_EQ(delivery["items"].size(), 2u);
    for (const auto& item : delivery["items"]) {
      EXPECT_EQ(item.value("state", ""), "failed") << item.dump();
      EXPECT_EQ(item.value("attempts", 0), DependencyFailed(item) ? 0 : 1)
          << "retry storm: " << item.dump();
      EXPECT_NE(item.value("error", "").find("cannot be decoded"), std::string::npos)
          << item.dump();
      std::cout << name << "/" << item.value("name", "") << ": attempts "
                << item.value("attempts", 0) << ", error: " << item.value("error", "") << "\n";
    }
    EXPECT_EQ(PublishedFiles(d + "/out-" + name), std::vector<std::string>{});
  }
}

TEST_F(HostileSourceTest, FifoSourceCannotHangTheProbe) {
  const std::string fifo = *dir_ + "/fifo.mov";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  PosixProcessRunner runner;
  // The content check does not open a FIFO for reading in blocking mode.
  auto refused = ProbeSource(runner, "ffprobe", fifo);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("not a regular file"), std::string::npos)
      << refused.status().message();
  // Had the FIFO appeared after that check, ffprobe itself is killed at its
  // limit (the same runner and limit the coordinator's submit uses).
  auto start = std::chrono::steady_clock::now();
  auto probed = RunProbe(runner, "ffprobe", fifo, /*timeout_s=*/1);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(probed.ok());
  EXPECT_EQ(probed.status().code(), Status::Code::kDeadlineExceeded) << probed.status().ToString();
  EXPECT_LT(took, 30);
  // And a spec naming a FIFO is a spec error.
  WriteAll(*dir_ + "/fifo.yaml", Spec("fifo", fifo));
  CliRun plan = RunCli({"plan", *dir_ + "/fifo.yaml"});
  EXPECT_EQ(plan.rc, 2) << plan.err;
  EXPECT_NE(plan.err.find("FIFO"), std::string::npos) << plan.err;
  fs::remove(fifo);
}

pb::Assign FifoAssign(const std::string& fifo, const std::string& out, bool listed_as_input,
                      double timeout_s) {
  pb::Assign a;
  a.set_token(7);
  a.set_attempt(1);
  pb::Job* job = a.mutable_job();
  job->set_id("fifo.0");
  for (const char* s : {"ffmpeg",  "-hide_banner", "-nostdin",  "-y",     "-loglevel",
                        "warning", "-nostats",     "-progress", "pipe:1", "-protocol_whitelist",
                        "file",    "-f",           "mov",       "-i",     fifo.c_str(),
                        "-c:v",    "libx264",      "-f",        "mp4",    out.c_str()}) {
    job->add_argv(s);
  }
  if (listed_as_input) job->add_inputs(fifo);
  job->set_media_duration_s(1);
  job->set_timeout_s(timeout_s);
  pb::JobOutput* o = job->add_outputs();
  o->set_deliverable("web");
  o->set_path(out);
  return a;
}

TEST_F(HostileSourceTest, FifoSourceCannotHangAWorker) {
  const std::string d = *dir_ + "/fifo-exec";
  fs::create_directories(d + "/out");
  const std::string fifo = d + "/source.mov";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  PosixProcessRunner runner;
  RealClock clock;
  JobExecutor executor(&runner, JobExecutorOptions{}, &clock);

  // The source the job names is a FIFO: refused before FFmpeg starts, and
  // not retried.
  auto start = std::chrono::steady_clock::now();
  pb::JobResult r =
      executor.Execute(FifoAssign(fifo, d + "/out/web.mp4", true, 30), nullptr, nullptr);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.retryable());
  EXPECT_NE(r.error().find("not a regular file"), std::string::npos) << r.error();
  EXPECT_LT(took, 30) << "waited for the timeout instead of refusing";

  // FFmpeg opening a FIFO nobody writes to (as if it appeared after every
  // check): the job's wall-clock limit kills it and says so.
  start = std::chrono::steady_clock::now();
  r = executor.Execute(FifoAssign(fifo, d + "/out/web.mp4", false, 1), nullptr, nullptr);
  took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error().find("timed out after 1 s"), std::string::npos) << r.error();
  EXPECT_LT(took, 30);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(d + "/out")) left.push_back(e.path().string());
  EXPECT_EQ(left, std::vector<std::string>{}) << "files left after the timeout";
  std::cout << "FIFO in the worker: refused up front; hung FFmpeg killed at its 1 s limit after "
            << took << " s: " << r.error() << "\n";
  fs::remove(fifo);
}

}  // namespace
}  // namespace reelfarm::testing
