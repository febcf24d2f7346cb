// Issue 12, tried against a real loopback farm (redis-server, the
// coordinator and worker binaries) with raw ZeroMQ DEALERs and raw TCP
// sockets as the attacker: forged results and hellos, oversized frames and
// bodies, slow HTTP clients.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "proto/reelfarm.pb.h"
#include "tests/support/delivery_checks.h"
#include "tests/support/local_farm.h"
#include "tests/support/media_fixtures.h"

namespace reelfarm::testing {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

const std::string kReelfarm = std::string(REELFARM_BIN_DIR) + "/reelfarm";

double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

// An "FFmpeg" that waits for `gate` to exist: the job stays running, for
// as long as the test needs, until the test opens the gate.
std::string GatedFfmpeg(const std::string& dir, const std::string& gate) {
  std::string wrapper = dir + "/gated-ffmpeg.sh";
  std::ofstream(wrapper) << "#!/bin/sh\nwhile [ ! -e '" << gate
                         << "' ]; do sleep 0.05; done\nexec ffmpeg \"$@\"\n";
  fs::permissions(wrapper, fs::perms::owner_all);
  return wrapper;
}

// One job (no analyse job of the source before it): the one the gated
// FFmpeg holds.
std::string WriteSpec(const std::string& dir) {
  std::string spec = dir + "/spec.yaml";
  std::ofstream(spec) << "version: 1\nname: forge\nsource: source.mov\noutput_dir: out\n"
                         "deliverables:\n  - {name: web, preset: web-h264, height: 120, "
                         "loudness: none, qc: none}\n";
  return spec;
}

// The first item of a delivery.
nlohmann::json Item(LocalFarm& farm, const std::string& id) {
  auto d = farm.Delivery(id);
  if (!d.is_object() || !d.contains("items") || d["items"].empty()) return {};
  return d["items"][0];
}

// A raw DEALER on the coordinator's ROUTER, optionally with CURVE keys.
class RawPeer {
 public:
  RawPeer(zmq::context_t& ctx, const std::string& endpoint, const std::string& curve_public = "",
          const std::string& curve_secret = "", const std::string& server_key = "")
      : sock_(ctx, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    if (!server_key.empty()) {
      sock_.set(zmq::sockopt::curve_serverkey, server_key);
      sock_.set(zmq::sockopt::curve_publickey, curve_public);
      sock_.set(zmq::sockopt::curve_secretkey, curve_secret);
    }
    sock_.connect(endpoint);
  }
  void Send(const pb::WorkerMessage& m) {
    std::string bytes = m.SerializeAsString();
    sock_.send(zmq::buffer(bytes), zmq::send_flags::none);
  }
  // Every message that arrives within `seconds`.
  std::vector<pb::CoordinatorMessage> Drain(double seconds) {
    std::vector<pb::CoordinatorMessage> out;
    auto end = SteadyClock::now() + std::chrono::duration<double>(seconds);
    while (SteadyClock::now() < end) {
      zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(20));
      zmq::message_t frame;
      while (sock_.recv(frame, zmq::recv_flags::dontwait)) {
        pb::CoordinatorMessage m;
        if (m.ParseFromArray(frame.data(), static_cast<int>(frame.size()))) out.push_back(m);
      }
    }
    return out;
  }
  zmq::socket_t& socket() { return sock_; }

 private:
  zmq::socket_t sock_;
};

pb::WorkerMessage ForgedResult(const std::string& job_id, uint64_t token,
                               const std::string& out_dir) {
  pb::WorkerMessage m;
  auto* r = m.mutable_result();
  r->set_job_id(job_id);
  r->set_token(token);
  r->set_ok(true);
  auto* o = r->add_outputs();
  o->set_deliverable("web");
  o->set_path(out_dir + "/web.mp4");
  o->set_bytes(1234);
  o->set_sha256(std::string(64, 'f'));
  return m;
}

pb::WorkerMessage HelloAs(const std::string& name) {
  pb::WorkerMessage m;
  m.mutable_hello()->set_name(name);
  m.mutable_hello()->set_slots(4);
  for (const char* e : {"libx264", "aac", "mjpeg", "pcm_s24le"}) m.mutable_hello()->add_encoders(e);
  return m;
}

// The coordinator's counter `series` (exact text before the value), or -1.
double MetricValue(LocalFarm& farm, const std::string& series) {
  std::string out;
  RunArgv({"curl", "-s", "http://127.0.0.1:" + std::to_string(farm.metrics_port()) + "/metrics"},
          &out);
  size_t at = out.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(out.substr(at + series.size() + 2));
}

int Count(const std::vector<pb::CoordinatorMessage>& ms,
          bool (pb::CoordinatorMessage::*has)() const) {
  int n = 0;
  for (const auto& m : ms) n += (m.*has)() ? 1 : 0;
  return n;
}

// Runs the issue's two attacks during a running job (held by a gated
// FFmpeg) on worker local-0; `attacker` is connected (with CURVE: admitted).
void AttackRunningJob(LocalFarm& farm, RawPeer& attacker, RawPeer& impostor,
                      const std::string& gate, bool attacker_said_hello) {
  auto id = farm.Submit(WriteSpec(farm.dir()));
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  ASSERT_TRUE(
      LocalFarm::WaitFor([&] { return Item(farm, *id).value("state", "") == "running"; }, 60))
      << farm.LogTail("coordinator");
  const std::string job = Item(farm, *id).value("job", "");
  ASSERT_EQ(Item(farm, *id).value("worker", ""), "local-0");

  // 1. Results for tokens 1..300 (small sequential numbers), no key.
  for (uint64_t token = 1; token <= 300; ++token) {
    attacker.Send(ForgedResult(job, token, farm.dir() + "/out"));
  }
  auto replies = attacker.Drain(1.0);
  if (attacker_said_hello) {
    // An admitted worker's results for superseded tokens are acknowledged
    // as stale (they change nothing); the current attempt's is not.
    EXPECT_EQ(Count(replies, &pb::CoordinatorMessage::has_result_ack), 299);
  } else {
    EXPECT_EQ(Count(replies, &pb::CoordinatorMessage::has_result_ack), 0)
        << "nothing it sent was recorded";
    EXPECT_GT(Count(replies, &pb::CoordinatorMessage::has_reconnect), 0);
  }
  // 2. Six hellos under the real worker's name, from another socket.
  for (int i = 0; i < 6; ++i) impostor.Send(HelloAs("local-0"));
  auto to_impostor = impostor.Drain(1.5);
  EXPECT_EQ(Count(to_impostor, &pb::CoordinatorMessage::has_assign), 0);
  EXPECT_EQ(Count(to_impostor, &pb::CoordinatorMessage::has_welcome), 0);
  EXPECT_EQ(Count(to_impostor, &pb::CoordinatorMessage::has_hello_refused), 6);

  auto item = Item(farm, *id);
  EXPECT_EQ(item.value("state", ""), "running") << item.dump();
  EXPECT_EQ(item.value("attempts", 0), 1) << "the real attempt was neither completed nor dropped";
  EXPECT_EQ(item.value("worker", ""), "local-0");
  EXPECT_GE(MetricValue(farm, "reelfarm_forged_messages_total{kind=\"result\"}"), 1);
  EXPECT_EQ(MetricValue(farm, "reelfarm_forged_messages_total{kind=\"hello\"}"), 6);
  std::stringstream log;
  log << std::ifstream(farm.dir() + "/coordinator.log").rdbuf();
  EXPECT_NE(log.str().find("refused a forged result"), std::string::npos);

  // The real worker finishes: delivered on its first attempt, the manifest
  // lists the file it made, which exists.
  std::ofstream(gate) << "go\n";
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        auto d = farm.Delivery(*id);
        return IsFinished(d) && fs::exists(farm.dir() + "/out/manifest.json");
      },
      120))
      << farm.LogTail("coordinator") << farm.LogTail("worker-0");
  auto d = farm.Delivery(*id);
  EXPECT_EQ(d.value("state", ""), "delivered");
  EXPECT_EQ(d["items"][0].value("attempts", 0), 1);
  EXPECT_NE(d["items"][0].value("sha256", ""), std::string(64, 'f'));
  auto manifest = nlohmann::json::parse(std::ifstream(farm.dir() + "/out/manifest.json"));
  EXPECT_NE(manifest.dump().find("web.mp4"), std::string::npos);
  EXPECT_TRUE(fs::exists(farm.dir() + "/out/web.mp4"));
  ExpectPublishedExactlyOnce(farm.dir() + "/out", d);
}

TEST(E2eHardening, ForgedResultsAndHellosFromRawDealersChangeNothing) {
  const std::string dir = MakeTempDir("reelfarm-forge");
  const std::string gate = dir + "/gate";
  LocalFarmOptions opts;
  opts.workers = 1;
  opts.extra_worker_args = {"--ffmpeg-override", GatedFfmpeg(dir, gate)};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  MakeTestSource(farm.dir(), "320x180", 2);
  zmq::context_t ctx(1);
  RawPeer attacker(ctx, farm.zmq_endpoint());  // never says hello
  RawPeer impostor(ctx, farm.zmq_endpoint());
  AttackRunningJob(farm, attacker, impostor, gate, /*attacker_said_hello=*/false);
  EXPECT_EQ(farm.LogTail("coordinator").find("worker_restarted"), std::string::npos);
  fs::remove_all(dir);
}

TEST(E2eHardening, WithCurveAnAdmittedWorkerCannotCompleteOrTakeOverAnothers) {
  const std::string keys = MakeTempDir("reelfarm-forge-keys");
  for (const char* who : {"coordinator", "good", "other"}) {
    std::string out;
    ASSERT_EQ(RunArgv({kReelfarm, "keys", keys + "/" + who}, &out), 0) << out;
  }
  auto read_first = [](const std::string& path) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line[0] != '#') return line;
    }
    return std::string();
  };
  std::ofstream(keys + "/allowed") << read_first(keys + "/good.pub") << "\n"
                                   << read_first(keys + "/other.pub") << "\n";
  const std::string gate = keys + "/gate";
  LocalFarmOptions opts;
  opts.workers = 1;
  opts.extra_coordinator_args = {"--curve-secret", keys + "/coordinator.key", "--curve-allow",
                                 keys + "/allowed"};
  opts.worker_args[0] = {"--curve-secret",          keys + "/good.key",  "--curve-server-key",
                         keys + "/coordinator.pub", "--ffmpeg-override", GatedFfmpeg(keys, gate)};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator") << farm.LogTail("worker-0");
  MakeTestSource(farm.dir(), "320x180", 2);
  zmq::context_t ctx(1);
  const std::string server = read_first(keys + "/coordinator.pub");
  const std::string other_pub = read_first(keys + "/other.pub");
  const std::string other_sec = read_first(keys + "/other.key");
  // "other" is on the allow-list and introduces itself under its own name,
  // with no encoders, so the job stays on local-0.
  RawPeer attacker(ctx, farm.zmq_endpoint(), other_pub, other_sec, server);
  pb::WorkerMessage hello;
  hello.mutable_hello()->set_name("intruder");
  hello.mutable_hello()->set_slots(1);
  attacker.Send(hello);
  ASSERT_EQ(Count(attacker.Drain(1.0), &pb::CoordinatorMessage::has_welcome), 1);
  RawPeer impostor(ctx, farm.zmq_endpoint(), other_pub, other_sec, server);
  AttackRunningJob(farm, attacker, impostor, gate, /*attacker_said_hello=*/true);
  fs::remove_all(keys);
}

// The peer's connection was dropped (ZMQ_EVENT_DISCONNECTED on its side).
bool WaitForDisconnect(zmq::context_t& ctx, zmq::socket_t& sock, const std::string& inproc,
                       double timeout_s) {
  zmq::socket_t mon(ctx, zmq::socket_type::pair);
  mon.connect(inproc);
  auto end = SteadyClock::now() + std::chrono::duration<double>(timeout_s);
  while (SteadyClock::now() < end) {
    zmq::pollitem_t item{mon.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(50));
    zmq::message_t event, addr;
    while (mon.recv(event, zmq::recv_flags::dontwait)) {
      (void)mon.recv(addr);
      uint16_t code;
      std::memcpy(&code, event.data(), sizeof(code));
      if (code == ZMQ_EVENT_DISCONNECTED) return true;
    }
  }
  return false;
}

// The process's peak resident memory so far (VmHWM), KiB.
int64_t PeakRssKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST(E2eHardening, FramesOverTheLimitAreDroppedUnread) {
  LocalFarmOptions opts;
  opts.workers = 0;
  // REELFARM_TEST_MAX_MESSAGE_BYTES=0 runs it as before the limit existed
  // (the test then fails: that is how its figures were measured).
  if (const char* limit = getenv("REELFARM_TEST_MAX_MESSAGE_BYTES")) {
    opts.extra_coordinator_args = {"--max-message-bytes", limit};
  }
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  zmq::context_t ctx(1);
  const int64_t rss_before = PeakRssKiB(farm.pid("coordinator"));

  // A valid Hello of 2 MiB (one huge GPU name) would list a worker "big".
  {
    RawPeer big(ctx, farm.zmq_endpoint());
    zmq_socket_monitor(big.socket().handle(), "inproc://mon-big", ZMQ_EVENT_DISCONNECTED);
    pb::WorkerMessage hello = HelloAs("big");
    hello.mutable_hello()->add_gpu_names(std::string(2 << 20, 'g'));
    big.Send(hello);
    EXPECT_TRUE(WaitForDisconnect(ctx, big.socket(), "inproc://mon-big", 10))
        << "the coordinator drops the connection";
    auto workers = farm.Get("/api/v1/workers")["workers"];
    EXPECT_TRUE(workers.empty()) << workers.dump();
  }
  // A frame as large as the test asks (default 64 MiB): the coordinator
  // does not grow by it.
  const char* env = getenv("REELFARM_TEST_FRAME_MB");
  const size_t frame_mb = env != nullptr ? std::stoul(env) : 64;
  {
    RawPeer huge(ctx, farm.zmq_endpoint());
    zmq_socket_monitor(huge.socket().handle(), "inproc://mon-huge", ZMQ_EVENT_DISCONNECTED);
    zmq::message_t frame(frame_mb << 20);
    std::memset(frame.data(), 'x', frame.size());
    huge.socket().send(frame, zmq::send_flags::none);
    EXPECT_TRUE(WaitForDisconnect(ctx, huge.socket(), "inproc://mon-huge", 30));
  }
  const int64_t rss_after = PeakRssKiB(farm.pid("coordinator"));
  std::cout << "[ figures ] coordinator peak RSS (VmHWM) before " << rss_before / 1024
            << " MiB, after a 2 MiB and a " << frame_mb << " MiB frame " << rss_after / 1024
            << " MiB\n";
  EXPECT_LT(rss_after - rss_before, 16 * 1024);
  // Still serving.
  RawPeer fine(ctx, farm.zmq_endpoint());
  fine.Send(HelloAs("fine"));
  EXPECT_EQ(Count(fine.Drain(1.0), &pb::CoordinatorMessage::has_welcome), 1);
}

// ---------------------------------------------------------------- HTTP ----

int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// What arrives until the peer closes or `timeout_s` passes; *closed tells.
std::string ReadUntilClosed(int fd, double timeout_s, bool* closed = nullptr) {
  std::string out;
  auto end = SteadyClock::now() + std::chrono::duration<double>(timeout_s);
  if (closed) *closed = false;
  while (SteadyClock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      if (closed) *closed = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// GET /healthz on a fresh connection: {status line, seconds}.
std::pair<std::string, double> Healthz(int port) {
  auto t0 = SteadyClock::now();
  int fd = ConnectLoopback(port);
  if (fd < 0) return {"connect failed", SecondsSince(t0)};
  SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string reply = ReadUntilClosed(fd, 10);
  close(fd);
  return {reply.substr(0, reply.find("\r\n")), SecondsSince(t0)};
}

TEST(E2eHardening, OversizedBodiesAre413UnreadAndBadFieldTypes400) {
  LocalFarmOptions opts;
  opts.workers = 0;
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  const int64_t rss_before = PeakRssKiB(farm.pid("coordinator"));

  // 300 MB declared, 1 KiB sent: refused at once, the rest never read.
  int fd = ConnectLoopback(farm.http_port());
  ASSERT_GE(fd, 0);
  auto t0 = SteadyClock::now();
  ASSERT_TRUE(SendAll(fd,
                      "POST /api/v1/deliveries HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      "application/json\r\nContent-Length: 300000000\r\n\r\n" +
                          std::string(1024, ' ')));
  bool closed = false;
  std::string reply = ReadUntilClosed(fd, 10, &closed);
  const double took = SecondsSince(t0);
  close(fd);
  EXPECT_EQ(reply.substr(0, 12), "HTTP/1.1 413") << reply;
  EXPECT_NE(reply.find("\"error\""), std::string::npos) << reply;
  EXPECT_TRUE(closed) << "the connection is closed after the refusal";
  EXPECT_LT(took, 2.0) << "answered without waiting for the body";
  std::cout << "[ figures ] 300 MB POST refused 413 in " << took << " s\n";
  EXPECT_LT(PeakRssKiB(farm.pid("coordinator")) - rss_before, 16 * 1024);

  // Headers past 64 KiB: refused (400) and closed, not accumulated.
  fd = ConnectLoopback(farm.http_port());
  ASSERT_GE(fd, 0);
  std::string headers = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 2000; ++i)
    headers += "X-Filler-" + std::to_string(i) + ": " + std::string(60, 'h') + "\r\n";
  SendAll(fd, headers);  // 130 KB, never finished
  reply = ReadUntilClosed(fd, 5, &closed);
  close(fd);
  EXPECT_EQ(reply.substr(0, 12), "HTTP/1.1 400") << reply.substr(0, 200);
  EXPECT_TRUE(closed);

  // A real client sending a 4 MiB+ body whole (curl) gets the same 413.
  {
    std::string out;
    std::string big = farm.dir() + "/big.json";
    std::ofstream(big) << nlohmann::json({{"spec", std::string(4 * 1024 * 1024 + 10, '#')},
                                          {"base_dir", "/tmp"}})
                              .dump();
    RunArgv({"curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-H",
             "Content-Type: application/json", "--data-binary", "@" + big,
             farm.api_url() + "/api/v1/deliveries"},
            &out);
    EXPECT_EQ(out.substr(out.rfind('\n') + 1), "413") << out.substr(0, 300);
  }

  // A wrongly typed optional field is the client's error, with a JSON body.
  for (const char* body : {R"({"spec": "version: 1", "spec_file": 5, "base_dir": "/tmp"})",
                           R"({"spec": "version: 1", "base_dir": ["/tmp"]})"}) {
    std::string out;
    RunArgv({"curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-H",
             "Content-Type: application/json", "--data-binary", body,
             farm.api_url() + "/api/v1/deliveries"},
            &out);
    EXPECT_EQ(out.substr(out.rfind('\n') + 1), "400") << out;
    auto json = nlohmann::json::parse(out.substr(0, out.rfind('\n')), nullptr, false);
    ASSERT_TRUE(json.is_object()) << out;
    EXPECT_NE(json.value("error", "").find("must be a string"), std::string::npos) << out;
  }
}

TEST(E2eHardening, SlowClientsDoNotStopTheApiAndAreCutOff) {
  LocalFarmOptions opts;
  opts.workers = 0;
  // The attack needs its sockets cut off within the test: 2 s per request.
  opts.extra_coordinator_args = {"--http-request-timeout-s", "2"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");

  // Three times the issue's attack (8 sockets, which took every thread of
  // httplib's pool): each sends a request line and then one header line
  // every 0.5 s, never finishing its headers.
  constexpr int kSlow = 24;
  std::vector<int> slow;
  for (int i = 0; i < kSlow; ++i) {
    int fd = ConnectLoopback(farm.http_port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, "GET /api/v1/deliveries HTTP/1.1\r\nHost: x\r\n"));
    slow.push_back(fd);
  }
  auto t0 = SteadyClock::now();
  double worst = 0;
  int answered = 0, rounds = 0;
  std::vector<bool> cut(kSlow, false);
  // While the attack goes on (until the server has cut every socket, at
  // most 5 s): /healthz answers, promptly, every round.
  while (SecondsSince(t0) < 5 && std::count(cut.begin(), cut.end(), true) < kSlow) {
    for (int i = 0; i < kSlow; ++i) {
      if (cut[i]) continue;
      if (!SendAll(slow[i], "X-Slow-" + std::to_string(rounds) + ": 1\r\n")) cut[i] = true;
      pollfd p{slow[i], POLLIN, 0};
      if (poll(&p, 1, 0) > 0) {
        char buf[512];
        if (recv(slow[i], buf, sizeof(buf), MSG_DONTWAIT) <= 0) cut[i] = true;
        // A 400 for the cut-off request, then the close.
      }
    }
    auto [status, secs] = Healthz(farm.http_port());
    EXPECT_EQ(status, "HTTP/1.1 200 OK") << "round " << rounds;
    answered += status == "HTTP/1.1 200 OK" ? 1 : 0;
    worst = std::max(worst, secs);
    ++rounds;
    // The attack's own pace: one header line per slow socket every 0.5 s.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  const double cut_after = SecondsSince(t0);
  std::cout << "[ figures ] " << kSlow << " slow sockets: /healthz answered " << answered << "/"
            << rounds << ", slowest " << worst * 1000 << " ms; all cut off after " << cut_after
            << " s (request limit 2 s)\n";
  EXPECT_GE(rounds, 3);
  EXPECT_LT(worst, 1.0);
  EXPECT_EQ(std::count(cut.begin(), cut.end(), true), kSlow)
      << "the server closes requests that do not arrive within the limit";
  EXPECT_LT(cut_after, 4.5);
  for (int fd : slow) close(fd);
}

TEST(E2eHardening, OneClientAddressHoldsALimitedNumberOfConnections) {
  LocalFarmOptions opts;
  opts.workers = 0;
  opts.extra_coordinator_args = {"--http-max-connections-per-client", "4"};
  LocalFarm farm(opts);
  ASSERT_TRUE(farm.Start().ok()) << farm.LogTail("coordinator");
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(ConnectLoopback(farm.http_port()));
    ASSERT_TRUE(SendAll(held.back(), "GET /healthz HTTP/1.1\r\nHost: x\r\n"));  // unfinished
  }
  // Let the server take all four before the fifth (a condition: the fifth
  // is refused; retried while the server may still be accepting them). The
  // server's threads take connections in any order, so a poll can win a
  // slot before the fourth held one, which is then refused: a held
  // connection that got an answer (or was closed) is opened again.
  std::string status;
  ASSERT_TRUE(LocalFarm::WaitFor(
      [&] {
        for (int& fd : held) {
          char c;
          if (recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) >= 0) {
            close(fd);
            fd = ConnectLoopback(farm.http_port());
            SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
          }
        }
        status = Healthz(farm.http_port()).first;
        return status == "HTTP/1.1 503 Service Unavailable";
      },
      5))
      << status;
  close(held.back());
  held.pop_back();
  ASSERT_TRUE(
      LocalFarm::WaitFor([&] { return Healthz(farm.http_port()).first == "HTTP/1.1 200 OK"; }, 5));
  for (int fd : held) close(fd);
}

}  // namespace
}  // namespace reelfarm::testing
