// GPU work in the coordinator's state machine (docs/gpu.md): GPU slots next
// to CPU slots, late binding of a job's argv, GPU-only jobs, and a GPU
// encoder that does not open. Hand-made messages, injected time.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "coordinator/eta.h"
#include "coordinator/farm_state.h"
#include "coordinator/manifest.h"

namespace reelfarm {
namespace {

using google::protobuf::util::MessageDifferencer;

class GpuRoutingTest : public ::testing::Test {
 protected:
  GpuRoutingTest() : farm_(FarmOptions{}) {}

  // A web-h264 job: CPU argv (libx264) and, unless `mode` is "cpu", a GPU
  // variant (h264_nvenc); "gpu": the variant is the job (GPU slots only).
  static JobRecord Job(const std::string& id, const std::string& mode = "auto") {
    JobRecord j;
    j.job.set_id(id);
    j.job.set_kind("encode");
    for (const char* a : {"ffmpeg", "-c:v", "libx264", "/out/web.mp4"}) j.job.add_argv(a);
    j.job.mutable_needs()->add_encoders("libx264");
    j.job.mutable_needs()->add_encoders("aac");
    auto* out = j.job.add_outputs();
    out->set_deliverable("web");
    out->set_preset("web-h264");
    out->mutable_cache()->set_key("k");
    if (mode != "cpu") {
      pb::GpuVariant* g = j.job.mutable_gpu();
      for (const char* a : {"ffmpeg", "-c:v", "h264_nvenc", "/out/web.mp4"}) g->add_argv(a);
      g->mutable_needs()->add_encoders("h264_nvenc");
      g->mutable_needs()->add_encoders("aac");
      g->mutable_needs()->set_gpu(true);
    }
    if (mode == "gpu") {
      j.job.mutable_argv()->Swap(j.job.mutable_gpu()->mutable_argv());
      *j.job.mutable_needs() = j.job.gpu().needs();
      j.job.clear_gpu();
    }
    j.delivery_id = "d";
    return j;
  }

  void Add(std::vector<JobRecord> jobs) {
    DeliveryRecord d;
    d.id = "d";
    d.name = "d";
    for (size_t k = 0; k < jobs.size(); ++k) jobs[k].seq = k;
    for (auto& j : jobs) PackJob(&j);
    Effects fx;
    farm_.AddDelivery(d, std::move(jobs), now_, &fx);
  }

  void Hello(const std::string& peer, const std::string& name, int slots, int gpu_slots,
             std::vector<std::string> encoders = {"libx264", "aac", "h264_nvenc"}) {
    pb::WorkerMessage m;
    auto* h = m.mutable_hello();
    h->set_name(name);
    h->set_slots(slots);
    h->set_gpu_slots(gpu_slots);
    for (auto& e : encoders) h->add_encoders(e);
    Effects fx;
    farm_.OnMessage(peer, m, now_, &fx);
  }

  struct Sent {
    std::string peer;
    pb::Assign assign;
  };
  std::vector<Sent> Tick() {
    Effects fx;
    farm_.Tick(now_, &fx);
    std::vector<Sent> out;
    for (const auto& m : fx.messages) {
      if (m.message.has_assign()) out.push_back({m.peer, m.Whole().assign()});
    }
    return out;
  }

  Effects Report(const Sent& s, pb::JobResult r) {
    r.set_job_id(s.assign.job().id());
    r.set_token(s.assign.token());
    r.set_attempt_key(s.assign.attempt_key());
    pb::WorkerMessage m;
    *m.mutable_result() = std::move(r);
    Effects fx;
    farm_.OnMessage(s.peer, m, now_, &fx);
    return fx;
  }

  static std::string Encoder(const pb::Assign& a) { return a.job().argv(2); }

  FarmState farm_;
  SteadyTime now_ = SteadyTime(std::chrono::hours(1));
};

TEST_F(GpuRoutingTest, AnAutoJobTakesAFreeGpuSlotWithItsGpuArgvAndTheNextACpuSlot) {
  Hello("p1", "w1", 1, 1);
  Add({Job("d.j0"), Job("d.j1"), Job("d.j2")});
  auto sent = Tick();
  ASSERT_EQ(sent.size(), 2u);  // one GPU slot and one CPU slot, both on w1
  EXPECT_TRUE(sent[0].assign.gpu());
  EXPECT_EQ(Encoder(sent[0].assign), "h264_nvenc");
  EXPECT_TRUE(sent[0].assign.job().needs().gpu());
  EXPECT_FALSE(sent[0].assign.job().has_gpu());  // only the argv it runs is sent
  // A GPU's output is not kept under the CPU settings' cache key.
  EXPECT_FALSE(sent[0].assign.job().outputs(0).has_cache());
  EXPECT_FALSE(sent[1].assign.gpu());
  EXPECT_EQ(Encoder(sent[1].assign), "libx264");
  EXPECT_TRUE(sent[1].assign.job().outputs(0).has_cache());
  const WorkerRecord& w = farm_.workers().at("w1");
  EXPECT_EQ(w.running_gpu.size(), 1u);
  EXPECT_EQ(w.cpu_running(), 1);
  EXPECT_EQ(WorkersJson(farm_, now_)["workers"][0]["state"], "busy");
}

TEST_F(GpuRoutingTest, AWorkerWithoutGpuSlotsRunsTheCpuArgv) {
  Hello("p1", "w1", 1, 0);
  Add({Job("d.j0")});
  auto sent = Tick();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_FALSE(sent[0].assign.gpu());
  EXPECT_EQ(Encoder(sent[0].assign), "libx264");
}

TEST_F(GpuRoutingTest, ACpuSlotIsSentTheStoredJobWithoutItsGpuVariant) {
  Hello("p1", "w1", 2, 0);
  JobRecord spliced = Job("d.j0");
  JobRecord odd = Job("d.j1");
  pb::Job expected0 = spliced.job, expected1 = odd.job;
  expected0.clear_gpu();
  expected1.clear_gpu();
  // A payload not laid out as the serializer writes it (a field after the
  // variant, as a newer version's record might have) is parsed and rebuilt.
  odd.payload = odd.job.SerializeAsString();
  odd.payload += std::string("\xf8\x06\x01", 3);  // field 111, varint 1
  Add({spliced, odd});
  auto sent = Tick();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_TRUE(MessageDifferencer::Equals(sent[0].assign.job(), expected0))
      << sent[0].assign.job().DebugString();
  EXPECT_EQ(sent[1].assign.job().id(), "d.j1");
  EXPECT_FALSE(sent[1].assign.job().has_gpu());
  EXPECT_EQ(Encoder(sent[1].assign), "libx264");
  EXPECT_EQ(sent[0].assign.token() + 1, sent[1].assign.token());
}

TEST_F(GpuRoutingTest, ACpuJobNeverTakesAGpuSlot) {
  Hello("p1", "w1", 1, 4);
  Add({Job("d.j0", "cpu"), Job("d.j1", "cpu")});
  auto sent = Tick();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_FALSE(sent[0].assign.gpu());
}

TEST_F(GpuRoutingTest, AGpuOnlyJobWaitsForAGpuWorkerAndSaysWhy) {
  Hello("p1", "cpu-only", 4, 0, {"libx264", "aac"});
  Add({Job("d.j0", "gpu")});
  EXPECT_TRUE(Tick().empty());
  nlohmann::json d = DeliveryDetailJson(farm_, *farm_.FindDelivery("d"));
  ASSERT_EQ(d["items"].size(), 1u);
  const std::string why = d["items"][0].value("waiting_for", "");
  EXPECT_NE(why.find("a GPU slot with h264_nvenc"), std::string::npos) << why;
  Hello("p2", "gpu", 1, 2);
  auto sent = Tick();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].peer, "p2");
  EXPECT_TRUE(sent[0].assign.gpu());
  EXPECT_EQ(Encoder(sent[0].assign), "h264_nvenc");
}

TEST_F(GpuRoutingTest, AGpuEncoderThatDoesNotOpenRunsTheJobAgainOnTheCpuBlamingNoOne) {
  Hello("p1", "w1", 1, 1);
  Add({Job("d.j0")});
  auto sent = Tick();
  ASSERT_EQ(sent.size(), 1u);
  ASSERT_TRUE(sent[0].assign.gpu());
  pb::JobResult r;
  r.set_ok(false);
  r.set_retryable(true);
  r.set_gpu(true);
  r.set_gpu_unavailable(true);
  r.set_error("the GPU encoder could not be used: Cannot load libcuda.so.1");
  Effects fx = Report(sent[0], r);
  ASSERT_EQ(fx.events.size(), 1u);
  EXPECT_EQ(fx.events[0].reason, "gpu_unavailable");
  const WorkerRecord& w = farm_.workers().at("w1");
  EXPECT_TRUE(w.gpu_closed);
  EXPECT_EQ(w.failure_streak, 0);
  EXPECT_EQ(farm_.FindJob("d.j0")->attempts, 0);  // not counted
  // At once (no backoff), on the CPU slot, with the CPU argv.
  auto again = Tick();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_FALSE(again[0].assign.gpu());
  EXPECT_EQ(Encoder(again[0].assign), "libx264");
  EXPECT_EQ(again[0].assign.attempt(), 1);
  // A new hello (the worker restarted, probed again) opens its GPU slots.
  Hello("p1", "w1", 1, 1);
  EXPECT_FALSE(farm_.workers().at("w1").gpu_closed);
}

TEST_F(GpuRoutingTest, AGpuOnlyJobWhoseGpuFailsWaitsForAnotherGpuWorker) {
  Hello("p1", "w1", 1, 1);
  Add({Job("d.j0", "gpu")});
  auto sent = Tick();
  ASSERT_EQ(sent.size(), 1u);
  pb::JobResult r;
  r.set_ok(false);
  r.set_retryable(true);
  r.set_gpu(true);
  r.set_gpu_unavailable(true);
  Report(sent[0], r);
  EXPECT_TRUE(Tick().empty());  // its CPU slot is free, but it needs a GPU
  EXPECT_EQ(farm_.FindJob("d.j0")->state, JobState::kQueued);
  EXPECT_NE(farm_.Unrunnable(*farm_.FindJob("d.j0")), "");
  Hello("p2", "w2", 1, 1);
  auto moved = Tick();
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].peer, "p2");
}

TEST_F(GpuRoutingTest, AJobNoConnectedWorkerCanRunHasNoEta) {
  Hello("p1", "cpu-only", 1, 0, {"libx264", "aac"});
  Add({Job("d.j0", "cpu"), Job("d.j1", "gpu")});
  auto sent = Tick();
  ASSERT_EQ(sent.size(), 1u);
  pb::JobResult r;
  r.set_ok(true);
  r.set_encode_seconds(10);  // the farm has measured web-h264 now
  Report(sent[0], r);
  Eta eta = EstimateEta(farm_, now_);
  EXPECT_FALSE(eta.job_seconds.count("d.j1")) << eta.job_seconds.at("d.j1");
  EXPECT_FALSE(eta.delivery_seconds.count("d"));
}

TEST_F(GpuRoutingTest, TheManifestNamesTheEncoderThatMadeEachFile) {
  Hello("p1", "w1", 0, 1);
  Add({Job("d.j0")});
  auto sent = Tick();
  ASSERT_EQ(sent.size(), 1u);
  pb::JobResult r;
  r.set_ok(true);
  r.set_gpu(true);
  auto* out = r.add_outputs();
  out->set_deliverable("web");
  Report(sent[0], r);
  nlohmann::json m = BuildManifest(farm_, *farm_.FindDelivery("d"));
  ASSERT_EQ(m["deliverables"].size(), 1u);
  EXPECT_EQ(m["deliverables"][0]["encoder"], "h264_nvenc");
  EXPECT_EQ(m["deliverables"][0]["gpu"], true);
}

TEST_F(GpuRoutingTest, EachOutputOfADecodeOnceGroupNamesItsOwnEncoder) {
  Hello("p1", "w1", 1, 0);
  JobRecord group = Job("d.j0", "cpu");
  group.job.set_kind("group");
  auto* hevc = group.job.add_outputs();
  hevc->set_deliverable("hevc");
  hevc->set_preset("web-hevc");
  Add({group});
  auto sent = Tick();
  ASSERT_EQ(sent.size(), 1u);
  pb::JobResult r;
  r.set_ok(true);
  Report(sent[0], r);
  nlohmann::json m = BuildManifest(farm_, *farm_.FindDelivery("d"));
  ASSERT_EQ(m["deliverables"].size(), 2u);
  EXPECT_EQ(m["deliverables"][0]["encoder"], "libx264");
  EXPECT_EQ(m["deliverables"][1]["encoder"], "libx265");
}

}  // namespace
}  // namespace reelfarm
