#include "common/qc.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace reelfarm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

pb::Segment Seg(double a, double b) {
  pb::Segment s;
  s.set_start_s(a);
  s.set_end_s(b);
  return s;
}

// What FFmpeg 5.1 logged for a 14 s source: black 3-6 s (frozen too), a
// held frame 8.16-11 s that freezedetect reports in two touching parts,
// silence 8-12 s, a tone at -30 LUFS.
const char* kLog[] = {
    "[freezedetect @ 0x55] lavfi.freezedetect.freeze_start: 3",
    "[blackdetect @ 0x55] black_start:3 black_end:6 black_duration:3",
    "[freezedetect @ 0x55] lavfi.freezedetect.freeze_duration: 3",
    "[freezedetect @ 0x55] lavfi.freezedetect.freeze_end: 6",
    "[silencedetect @ 0x55] silence_start: 7.99996",
    "[freezedetect @ 0x55] lavfi.freezedetect.freeze_start: 8.16",
    "[freezedetect @ 0x55] lavfi.freezedetect.freeze_end: 10",
    "[freezedetect @ 0x55] lavfi.freezedetect.freeze_start: 10",
    "[freezedetect @ 0x55] lavfi.freezedetect.freeze_end: 11",
    "[silencedetect @ 0x55] silence_end: 12.0107 | silence_duration: 4.01071",
    "video:161kB audio:10500kB subtitle:0kB other streams:0kB global headers:0kB",
    "[Parsed_loudnorm_5 @ 0x55] ",
    "{",
    "\t\"input_i\" : \"-29.98\",",
    "\t\"input_tp\" : \"-29.63\",",
    "\t\"input_lra\" : \"4.80\",",
    "\t\"input_thresh\" : \"-39.98\",",
    "\t\"output_i\" : \"-22.19\",",
    "\t\"normalization_type\" : \"dynamic\",",
    "\t\"target_offset\" : \"-1.81\"",
    "}",
};

DetectorOptions All() {
  DetectorOptions o;
  o.video = o.audio = o.loudness = true;
  return o;
}

pb::MediaAnalysis Parse(const std::vector<std::string>& lines, DetectorOptions o = All(),
                        double duration = 14) {
  AnalysisParser p(o);
  for (const auto& l : lines) p.Feed(l);
  return p.Finish(duration);
}

TEST(QcTest, TheParserReadsEveryDetectorAndJoinsTouchingReports) {
  pb::MediaAnalysis a = Parse({std::begin(kLog), std::end(kLog)});
  EXPECT_TRUE(a.video_analysed());
  EXPECT_TRUE(a.audio_analysed());
  ASSERT_TRUE(a.loudness_measured());
  EXPECT_FALSE(a.silent());
  EXPECT_DOUBLE_EQ(a.integrated_lufs(), -29.98);
  EXPECT_DOUBLE_EQ(a.true_peak_db(), -29.63);
  EXPECT_DOUBLE_EQ(a.lra(), 4.80);
  EXPECT_DOUBLE_EQ(a.threshold_lufs(), -39.98);
  ASSERT_EQ(a.black_size(), 1);
  EXPECT_DOUBLE_EQ(a.black(0).start_s(), 3);
  EXPECT_DOUBLE_EQ(a.black(0).end_s(), 6);
  ASSERT_EQ(a.freeze_size(), 2);
  EXPECT_DOUBLE_EQ(a.freeze(1).start_s(), 8.16);
  EXPECT_DOUBLE_EQ(a.freeze(1).end_s(), 11);  // 8.16-10 and 10-11 are one hold
  ASSERT_EQ(a.silence_size(), 1);
  EXPECT_NEAR(a.silence(0).end_s(), 12.0107, 1e-9);
}

TEST(QcTest, SegmentsStillOpenAtTheEndCloseThereAndSilenceIsSilent) {
  pb::MediaAnalysis a = Parse({"[freezedetect @ 0x1] lavfi.freezedetect.freeze_start: 9.5",
                               "[silencedetect @ 0x2] silence_start: -0.02", "{",
                               "\"input_i\" : \"-inf\",", "\"input_tp\" : \"-inf\",",
                               "\"input_lra\" : \"0.00\",", "\"input_thresh\" : \"-70.00\"", "}"},
                              All(), 12);
  ASSERT_EQ(a.freeze_size(), 1);
  EXPECT_DOUBLE_EQ(a.freeze(0).end_s(), 12);
  ASSERT_EQ(a.silence_size(), 1);
  EXPECT_DOUBLE_EQ(a.silence(0).start_s(), 0);
  EXPECT_TRUE(a.loudness_measured());
  EXPECT_TRUE(a.silent());
}

TEST(QcTest, SegmentsAreBoundedWhateverTheLogSays) {
  std::vector<std::string> lines;
  for (int i = 0; i < 3000; ++i) {
    lines.push_back("[blackdetect @ 0x1] black_start:" + std::to_string(i * 2) +
                    " black_end:" + std::to_string(i * 2 + 1));
  }
  EXPECT_EQ(Parse(lines, All(), 1e6).black_size(), AnalysisParser::kMaxSegments);
}

TEST(QcTest, DetectorArgsMeasureFromZeroIntoTheNullMuxer) {
  DetectorOptions o = All();
  o.black_min_s = 1;
  o.silence_threshold_db = -46;
  std::vector<std::string> args = DetectorArgs(o);
  ASSERT_GE(args.size(), 2u);
  EXPECT_EQ(args[0], "-filter_complex");
  EXPECT_EQ(args[1],
            "[0:v:0]setpts=PTS-STARTPTS,blackdetect=d=1.000,freezedetect=d=2.000[v];"
            "[0:a:0]asetpts=PTS-STARTPTS,silencedetect=n=-46.00dB:d=2.000,"
            "loudnorm=print_format=json[a]");
  EXPECT_THAT(args, ::testing::ElementsAre("-filter_complex", args[1], "-map", "[v]", "-map", "[a]",
                                           "-f", "null", "-"));
  DetectorOptions seen = DetectorsIn(args);
  EXPECT_TRUE(seen.video && seen.audio && seen.loudness);
  o.video = o.audio = false;
  seen = DetectorsIn(DetectorArgs(o));
  EXPECT_FALSE(seen.video || seen.audio);
  EXPECT_TRUE(seen.loudness);
}

pb::MediaAnalysis Measured(double i, double tp, double lra) {
  pb::MediaAnalysis m;
  m.set_loudness_measured(true);
  m.set_integrated_lufs(i);
  m.set_true_peak_db(tp);
  m.set_lra(lra);
  m.set_threshold_lufs(i - 10);
  return m;
}

TEST(QcTest, LoudnormIsLinearFromTheMeasurementAndKeepsTheSourcesRange) {
  pb::LoudnessTarget web = *LoudnessStandard("web");
  EXPECT_EQ(LoudnormFilter(web, Measured(-29.98, -29.63, 4.8)),
            "loudnorm=I=-16.0:TP=-1.0:LRA=6.0:measured_I=-29.98:measured_TP=-29.63:"
            "measured_LRA=4.80:measured_thresh=-39.98:offset=0:linear=true:print_format=none");
  // A steady tone measures a range of 0, which loudnorm reads as "not given".
  EXPECT_THAT(LoudnormFilter(web, Measured(-30, -27, 0)), HasSubstr(":measured_LRA=0.10:"));
  pb::LoudnessTarget ranged = web;
  ranged.set_lra(7);
  EXPECT_THAT(LoudnormFilter(ranged, Measured(-30, -27, 12)), HasSubstr(":LRA=7.0:"));
  pb::MediaAnalysis silent = Measured(-70, -100, 0);
  silent.set_silent(true);
  EXPECT_EQ(LoudnormFilter(web, silent), "anull");
  EXPECT_EQ(LoudnormFilter(web, pb::MediaAnalysis()), "anull");
  EXPECT_DOUBLE_EQ(NormalisationGain(web, Measured(-30, -27, 3)), 14);
  EXPECT_DOUBLE_EQ(NormalisationGain(web, silent), 0);
}

TEST(QcTest, StandardsAreTheirPublishedFigures) {
  EXPECT_EQ(LoudnessStandard("ebu-r128")->integrated_lufs(), -23);
  EXPECT_EQ(LoudnessStandard("ebu-r128")->true_peak_db(), -1);
  EXPECT_EQ(LoudnessStandard("atsc-a85")->integrated_lufs(), -24);
  EXPECT_EQ(LoudnessStandard("atsc-a85")->true_peak_db(), -2);
  EXPECT_EQ(LoudnessStandard("web")->integrated_lufs(), -16);
  EXPECT_EQ(LoudnessStandard("social")->integrated_lufs(), -14);
  EXPECT_FALSE(LoudnessStandard("r128").has_value());
}

pb::Job JobWithOutputs(int outputs, int normalised) {
  pb::Job job;
  for (int i = 0; i < outputs; ++i) {
    pb::JobOutput* out = job.add_outputs();
    if (i == normalised) *out->mutable_normalise() = *LoudnessStandard("social");
  }
  return job;
}

TEST(QcTest, FillLoudnormReplacesOnlyItsPlaceholders) {
  pb::Job job = JobWithOutputs(2, 1);
  pb::MediaAnalysis m = Measured(-30, -27, 3);
  auto filled = FillLoudnorm(
      {"ffmpeg", "-af", "{loudnorm:1}", "-f", "mp4", "/out/{loudnorm:1}.mp4"}, job, &m);
  ASSERT_TRUE(filled.ok()) << filled.status().message();
  EXPECT_THAT((*filled)[2], HasSubstr("loudnorm=I=-14.0:TP=-1.0:"));
  EXPECT_EQ((*filled)[5], "/out/{loudnorm:1}.mp4");  // not a placeholder: left alone

  EXPECT_FALSE(FillLoudnorm({"ffmpeg", "-af", "{loudnorm:0}"}, job, &m).ok());  // no target
  EXPECT_FALSE(FillLoudnorm({"ffmpeg", "-af", "{loudnorm:7}"}, job, &m).ok());
  auto missing = FillLoudnorm({"ffmpeg", "-af", "{loudnorm:1}"}, job, nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("measurement did not reach it"));
  EXPECT_TRUE(FillLoudnorm({"ffmpeg", "-i", "x"}, job, nullptr).ok());  // nothing to fill
}

pb::QcGates Gates() {
  pb::QcGates g;
  g.set_check_loudness(true);
  *g.mutable_loudness() = *LoudnessStandard("web");
  g.set_loudness_tolerance_lu(1);
  g.set_black_max_s(2);
  g.set_freeze_max_s(5);
  g.set_silence_max_s(2);
  g.set_allow_in_source(true);
  return g;
}

const pb::QcGateResult* Gate(const pb::QcReport& r, const std::string& name) {
  for (const auto& g : r.gates()) {
    if (g.gate() == name) return &g;
  }
  return nullptr;
}

TEST(QcTest, GatesPassWithinToleranceAndExcuseWhatTheSourceHas) {
  pb::MediaAnalysis source = Measured(-30, -29.6, 4.8);
  source.set_video_analysed(true);
  source.set_audio_analysed(true);
  *source.add_black() = Seg(3, 6);
  *source.add_silence() = Seg(8, 12.01);
  pb::MediaAnalysis out = Measured(-16.4, -15.5, 4.7);
  out.set_video_analysed(true);
  out.set_audio_analysed(true);
  *out.add_black() = Seg(3.04, 6.04);  // a frame late: the encoder's timing
  *out.add_silence() = Seg(8, 12.2);

  pb::QcReport r = EvaluateQc(Gates(), out, &source, 14);
  EXPECT_TRUE(r.passed()) << QcFailureSummary(r);
  EXPECT_EQ(QcFailureSummary(r), "");
  EXPECT_DOUBLE_EQ(r.gain_db(), 14);
  EXPECT_EQ(Gate(r, "loudness")->measured(), "-16.4 LUFS");
  EXPECT_THAT(Gate(r, "black")->measured(), HasSubstr("as in the source"));

  // Without the source's excuse the same black and silence fail, named.
  pb::QcGates strict = Gates();
  strict.set_allow_in_source(false);
  r = EvaluateQc(strict, out, &source, 14);
  EXPECT_FALSE(r.passed());
  EXPECT_FALSE(Gate(r, "black")->passed());
  EXPECT_FALSE(Gate(r, "silence")->passed());
  EXPECT_TRUE(Gate(r, "freeze")->passed());
  EXPECT_THAT(QcFailureSummary(r),
              HasSubstr("QC gate black failed: 3.00 s of black from 3.04 s (at most 2.00 s)"));
}

TEST(QcTest, LoudnessOffTargetOrPeaksOverTheCeilingFail) {
  pb::QcReport r = EvaluateQc(Gates(), Measured(-17.2, -3, 5), nullptr, 0);
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(QcFailureSummary(r), "QC gate loudness failed: -17.2 LUFS (-16.0 LUFS +-1.0 LU (web))");
  r = EvaluateQc(Gates(), Measured(-16, -0.4, 5), nullptr, 0);
  EXPECT_FALSE(Gate(r, "true_peak")->passed());
  EXPECT_TRUE(Gate(r, "loudness")->passed());
  EXPECT_EQ(Gate(r, "true_peak")->measured(), "-0.4 dBTP");
}

TEST(QcTest, ASilentOutputPassesOnlyWhenTheSourceIsSilentToo) {
  pb::MediaAnalysis silent;
  silent.set_loudness_measured(true);
  silent.set_silent(true);
  EXPECT_FALSE(EvaluateQc(Gates(), silent, nullptr, 0).passed());
  pb::QcReport r = EvaluateQc(Gates(), silent, &silent, 0);
  EXPECT_TRUE(r.passed());
  EXPECT_EQ(Gate(r, "loudness")->measured(), "silent, as the source");
}

TEST(QcTest, OnlyTheUncoveredPartOfASegmentCounts) {
  pb::MediaAnalysis source;
  source.set_video_analysed(true);
  *source.add_black() = Seg(10, 13);
  pb::MediaAnalysis out;
  out.set_video_analysed(true);
  *out.add_black() = Seg(10, 16);  // 3 s more black than the source has
  pb::QcGates g;
  g.set_black_max_s(2);
  g.set_allow_in_source(true);
  pb::QcReport r = EvaluateQc(g, out, &source, 0);
  ASSERT_FALSE(r.passed());
  EXPECT_THAT(Gate(r, "black")->measured(),
              HasSubstr("6.00 s of black from 10.00 s (2.50 s of it not in the source)"));
  *out.mutable_black(0) = Seg(10, 14);  // 1 s more (0.5 s past the slack): allowed
  EXPECT_TRUE(EvaluateQc(g, out, &source, 0).passed());
  // Gates not asked for are not judged; a pass without video judges none.
  pb::QcGates none;
  EXPECT_EQ(EvaluateQc(none, out, &source, 0).gates_size(), 0);
  out.set_video_analysed(false);
  EXPECT_EQ(EvaluateQc(g, out, &source, 0).gates_size(), 0);
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

// ---- SSIM / PSNR floors against the source --------------------------------------------

TEST(QcQualityTest, ThePassComparesSampledFramesOfTheOutputAndTheSourceThroughItsChain) {
  pb::QcGates gates;
  gates.set_ssim_min(0.95);
  gates.set_reference_filter("scale=640:360,setsar=1,format=yuv420p");
  gates.set_sample_every(25);
  DetectorOptions o = QcDetectors(gates, true, false, -60);
  ASSERT_TRUE(o.quality);
  EXPECT_FALSE(o.video) << "no black or freeze gate here";
  std::vector<std::string> args = DetectorArgs(o);
  EXPECT_EQ(args[1],
            "[0:v:0]setpts=PTS-STARTPTS,select='not(mod(n\\,25))',split[q0][q1];"
            "[1:v:0]setpts=PTS-STARTPTS,scale=640:360,setsar=1,format=yuv420p,"
            "select='not(mod(n\\,25))',split[r0][r1];[q0][r0]ssim[qs];[q1][r1]psnr[qp]");
  EXPECT_THAT(args, ::testing::ElementsAre("-filter_complex", args[1], "-map", "[qs]", "-map",
                                           "[qp]", "-f", "null", "-"));
  // With the picture detectors, the picture is split between them.
  gates.set_black_max_s(2);
  args = DetectorArgs(QcDetectors(gates, true, false, -60));
  EXPECT_THAT(args[1], ::testing::StartsWith(
                           "[0:v:0]setpts=PTS-STARTPTS,split[pd][pq];[pd]blackdetect=d=1.000,"));
  EXPECT_THAT(args[1], ::testing::HasSubstr(";[pq]select="));
  // No reference chain (a plan without one), or no picture: no comparison.
  gates.clear_reference_filter();
  EXPECT_FALSE(QcDetectors(gates, true, false, -60).quality);
  gates.set_reference_filter("null");
  EXPECT_FALSE(QcDetectors(gates, false, true, -60).quality);
}

TEST(QcQualityTest, TheParserReadsSsimAndPsnrSummaries) {
  DetectorOptions o;
  o.quality = true;
  AnalysisParser parser(o);
  parser.Feed(
      "[Parsed_psnr_10 @ 0x5587e40fa500] PSNR y:46.35 u:45.47 v:45.20 average:45.986567 "
      "min:43.75 max:50.48");
  parser.Feed(
      "[Parsed_ssim_9 @ 0x5587e40f98c0] SSIM Y:0.996236 (24.24) U:0.997427 (25.89) "
      "V:0.997998 (26.98) All:0.996728 (24.852404)");
  pb::MediaAnalysis m = parser.Finish(8);
  EXPECT_TRUE(m.quality_measured());
  EXPECT_DOUBLE_EQ(m.ssim(), 0.996728);
  EXPECT_DOUBLE_EQ(m.psnr_db(), 45.986567);
  AnalysisParser same(o);
  same.Feed(
      "[Parsed_ssim_1 @ 0x1] SSIM Y:1.000000 (inf) U:1.000000 (inf) V:1.000000 (inf) "
      "All:1.000000 (inf)");
  same.Feed("[Parsed_psnr_2 @ 0x2] PSNR y:inf u:inf v:inf average:inf min:inf max:inf");
  m = same.Finish(8);
  EXPECT_DOUBLE_EQ(m.ssim(), 1.0);
  EXPECT_DOUBLE_EQ(m.psnr_db(), kIdenticalPsnrDb);
}

TEST(QcQualityTest, FloorsPassAtOrAboveAndFailBelowOrUnmeasured) {
  pb::QcGates gates;
  gates.set_ssim_min(0.95);
  gates.set_psnr_min_db(40);
  pb::MediaAnalysis m;
  m.set_quality_measured(true);
  m.set_ssim(0.97);
  m.set_psnr_db(38.5);
  pb::QcReport r = EvaluateQc(gates, m, nullptr, 0);
  EXPECT_FALSE(r.passed());
  ASSERT_EQ(r.gates_size(), 2);
  EXPECT_EQ(r.gates(0).gate(), "ssim");
  EXPECT_TRUE(r.gates(0).passed());
  EXPECT_EQ(r.gates(0).measured(), "0.9700");
  EXPECT_EQ(r.gates(1).gate(), "psnr");
  EXPECT_FALSE(r.gates(1).passed());
  EXPECT_EQ(QcFailureSummary(r),
            "QC gate psnr failed: 38.50 dB (at least 40 dB against the source)");
  m.set_quality_measured(false);
  r = EvaluateQc(gates, m, nullptr, 0);
  EXPECT_FALSE(r.gates(0).passed());
  EXPECT_EQ(r.gates(0).measured(), "not measured");
}

}  // namespace
}  // namespace reelfarm
