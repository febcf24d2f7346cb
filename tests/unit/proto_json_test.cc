#include "common/proto_json.h"

#include <gtest/gtest.h>

#include <limits>

#include "proto/reelfarm.pb.h"

namespace reelfarm {
namespace {

// The reflection's JSON must be the printer's, text for text: cache keys
// are hashes of it, and a different text would miss every cached output.
void ExpectSameAsPrinter(const google::protobuf::Message& m) {
  EXPECT_EQ(ProtoJson(m).dump(), ProtoJsonByPrinter(m).dump()) << m.DebugString();
}

TEST(ProtoJsonTest, EmptyMessagesAndDefaults) {
  ExpectSameAsPrinter(pb::MediaInfo());
  ExpectSameAsPrinter(pb::QcGates());
  pb::QcGates with_empty_child;
  with_empty_child.mutable_loudness();  // present, every field default
  ExpectSameAsPrinter(with_empty_child);
  EXPECT_EQ(ProtoJson(with_empty_child).dump(), R"({"loudness":{}})");
}

TEST(ProtoJsonTest, NumbersKeepThePrintersTextAndType) {
  for (double v : {25.0, 0.1, -3.5, -0.0, 1e21, 1e15, 123456789012345678.0, 1e-7, 2.0 / 3.0, -24.0,
                   0.5, std::numeric_limits<double>::max(), std::numeric_limits<double>::min()}) {
    pb::QcGates q;
    q.set_black_max_s(v);
    q.mutable_loudness()->set_integrated_lufs(v);
    ExpectSameAsPrinter(q);
  }
  pb::MediaInfo m;
  m.set_width(1920);
  m.set_height(-1);
  m.set_duration_s(12.0);
  m.set_has_video(true);
  m.set_video_codec("h264 \"main\" \\ é \n");
  ExpectSameAsPrinter(m);
  // 12.0 is printed "12": an integer, as the printer's text parses.
  EXPECT_EQ(ProtoJson(m)["duration_s"].dump(), "12");
}

TEST(ProtoJsonTest, RepeatedAndNestedMessages) {
  pb::Job job;
  job.set_id("d-1.3");
  job.set_kind("encode");
  for (const char* a : {"ffmpeg", "-i", "/in/a b.mov", "-crf", "23"}) job.add_argv(a);
  job.set_cost(2.75);
  job.set_memory_mb(512);
  job.set_timeout_s(3600);
  auto* out = job.add_outputs();
  out->set_deliverable("web");
  out->mutable_expect()->set_fps_num(25);
  out->mutable_expect()->set_fps_den(1);
  out->mutable_qc()->set_ssim_min(0.97);
  auto* package = out->mutable_package();
  package->set_segment_s(6);
  package->add_renditions()->set_name("v1080");
  package->add_renditions()->mutable_expect()->set_width(640);
  job.add_outputs();  // an empty element
  job.mutable_needs()->add_encoders("libx264");
  ExpectSameAsPrinter(job);
}

TEST(ProtoJsonTest, WhatOnlyThePrinterWritesTakesItsWay) {
  pb::JobResult r;  // 64-bit integers (strings in JSON) and bytes (base64)
  r.set_job_id("d-1.3");
  r.set_token(1ull << 60);
  r.set_attempt_key(std::string("\x01\xff\x00k", 4));
  r.add_outputs()->set_bytes(123456789012);
  ExpectSameAsPrinter(r);
  EXPECT_EQ(ProtoJson(r)["token"], std::to_string(1ull << 60));
  pb::QcGates q;
  q.set_black_max_s(std::numeric_limits<double>::infinity());
  ExpectSameAsPrinter(q);
  EXPECT_EQ(ProtoJson(q)["black_max_s"], "Infinity");
}

}  // namespace
}  // namespace reelfarm
