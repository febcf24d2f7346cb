// SourceFactsFromProbeJson on ffprobe-shaped JSON samples.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "common/probe.h"

namespace reelfarm {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// A trimmed `ffprobe -show_format -show_streams -of json` of a 320x180 25 fps
// H.264 + stereo AAC mov, as FFmpeg 5.1 prints it (numbers as strings).
json PlainProbe() {
  return json::parse(R"({
    "streams": [
      {"index": 0, "codec_name": "h264", "codec_type": "video", "width": 320, "height": 180,
       "sample_aspect_ratio": "1:1", "display_aspect_ratio": "16:9", "pix_fmt": "yuv420p",
       "r_frame_rate": "25/1", "avg_frame_rate": "25/1", "time_base": "1/12800",
       "duration": "2.000000", "nb_frames": "50",
       "disposition": {"default": 1, "attached_pic": 0}},
      {"index": 1, "codec_name": "aac", "codec_type": "audio", "sample_fmt": "fltp",
       "sample_rate": "48000", "channels": 2, "channel_layout": "stereo",
       "r_frame_rate": "0/0", "avg_frame_rate": "0/0", "duration": "2.000000",
       "disposition": {"default": 1, "attached_pic": 0}}
    ],
    "format": {"filename": "/m/plain.mov", "nb_streams": 2,
               "format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "2.000000",
               "size": "163840", "bit_rate": "655360"}
  })");
}

pb::SourceFacts FactsOf(const json& j) {
  StatusOr<pb::SourceFacts> f = SourceFactsFromProbeJson(j.dump(), "/m/src.mov");
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  return f.ok() ? *f : pb::SourceFacts();
}

Status ErrorOf(const json& j) {
  StatusOr<pb::SourceFacts> f = SourceFactsFromProbeJson(j.dump(), "/m/src.mov");
  EXPECT_FALSE(f.ok());
  return f.status();
}

TEST(SourceFactsTest, PlainMov) {
  pb::SourceFacts f = FactsOf(PlainProbe());
  EXPECT_EQ(f.path(), "/m/src.mov");
  EXPECT_EQ(f.format_name(), "mov");  // the first name: usable with -f
  EXPECT_DOUBLE_EQ(f.duration_s(), 2.0);
  EXPECT_EQ(f.size_bytes(), 163840);
  EXPECT_TRUE(f.has_video());
  EXPECT_EQ(f.video_codec(), "h264");
  EXPECT_EQ(f.width(), 320);
  EXPECT_EQ(f.height(), 180);
  EXPECT_EQ(f.sar_num(), 1);
  EXPECT_EQ(f.sar_den(), 1);
  EXPECT_EQ(f.rotation(), 0);
  EXPECT_EQ(f.fps_num(), 25);
  EXPECT_EQ(f.fps_den(), 1);
  EXPECT_FALSE(f.variable_frame_rate());
  EXPECT_EQ(f.frame_count(), 50);
  EXPECT_EQ(f.pix_fmt(), "yuv420p");
  EXPECT_EQ(f.display_width(), 320);
  EXPECT_EQ(f.display_height(), 180);
  EXPECT_TRUE(f.has_audio());
  EXPECT_EQ(f.audio_codec(), "aac");
  EXPECT_EQ(f.audio_channels(), 2);
  EXPECT_EQ(f.audio_layout(), "stereo");
  EXPECT_EQ(f.audio_sample_rate(), 48000);
}

json WithRotationSideData(double rotation) {
  json j = PlainProbe();
  j["streams"][0]["side_data_list"] = json::array(
      {{{"side_data_type", "Display Matrix"}, {"displaymatrix", "..."}, {"rotation", rotation}}});
  return j;
}

TEST(SourceFactsTest, DisplayMatrixRotationIsCounterclockwise) {
  // ffprobe -90 (an upright-held phone): turn 90 degrees clockwise.
  pb::SourceFacts f = FactsOf(WithRotationSideData(-90));
  EXPECT_EQ(f.rotation(), 90);
  EXPECT_EQ(f.width(), 320);  // coded size stays
  EXPECT_EQ(f.height(), 180);
  EXPECT_EQ(f.display_width(), 180);
  EXPECT_EQ(f.display_height(), 320);

  EXPECT_EQ(FactsOf(WithRotationSideData(90)).rotation(), 270);
  EXPECT_EQ(FactsOf(WithRotationSideData(180)).rotation(), 180);
  EXPECT_EQ(FactsOf(WithRotationSideData(-180)).rotation(), 180);
  EXPECT_EQ(FactsOf(WithRotationSideData(270)).rotation(), 90);
  EXPECT_EQ(FactsOf(WithRotationSideData(-89.98)).rotation(), 90);
  EXPECT_EQ(FactsOf(WithRotationSideData(0)).rotation(), 0);
  EXPECT_EQ(FactsOf(WithRotationSideData(180)).display_width(), 320);
}

TEST(SourceFactsTest, LegacyRotateTagIsClockwise) {
  json j = PlainProbe();
  j["streams"][0]["tags"] = {{"rotate", "90"}, {"handler_name", "VideoHandler"}};
  pb::SourceFacts f = FactsOf(j);
  EXPECT_EQ(f.rotation(), 90);
  EXPECT_EQ(f.display_width(), 180);
  j["streams"][0]["tags"]["rotate"] = "270";
  EXPECT_EQ(FactsOf(j).rotation(), 270);
}

TEST(SourceFactsTest, NonSquarePixelsGiveSquareEvenDisplaySize) {
  json j = PlainProbe();
  j["streams"][0]["width"] = 720;
  j["streams"][0]["height"] = 480;
  j["streams"][0]["sample_aspect_ratio"] = "32:27";
  pb::SourceFacts f = FactsOf(j);
  EXPECT_EQ(f.sar_num(), 32);
  EXPECT_EQ(f.sar_den(), 27);
  EXPECT_EQ(f.display_width(), 854);  // 853.3 -> even
  EXPECT_EQ(f.display_height(), 480);
  // Turned: the pixel shape turns with it.
  j["streams"][0]["side_data_list"] = json::array({{{"rotation", -90}}});
  f = FactsOf(j);
  EXPECT_EQ(f.display_width(), 406);  // 480 * 27/32 = 405 -> 406
  EXPECT_EQ(f.display_height(), 720);
}

TEST(SourceFactsTest, UnknownSarIsSquare) {
  json j = PlainProbe();
  j["streams"][0]["sample_aspect_ratio"] = "0:1";
  EXPECT_EQ(FactsOf(j).sar_num(), 1);
  j["streams"][0].erase("sample_aspect_ratio");
  EXPECT_EQ(FactsOf(j).sar_den(), 1);
}

TEST(SourceFactsTest, OddSizeRoundsDisplayToEven) {
  json j = PlainProbe();
  j["streams"][0]["width"] = 321;
  j["streams"][0]["height"] = 181;
  pb::SourceFacts f = FactsOf(j);
  EXPECT_EQ(f.width(), 321);
  EXPECT_EQ(f.display_width() % 2, 0);
  EXPECT_EQ(f.display_height() % 2, 0);
  EXPECT_NEAR(f.display_width(), 321, 1);
  EXPECT_NEAR(f.display_height(), 181, 1);
}

TEST(SourceFactsTest, FrameRates) {
  json j = PlainProbe();
  j["streams"][0]["r_frame_rate"] = "24000/1001";
  j["streams"][0]["avg_frame_rate"] = "24000/1001";
  pb::SourceFacts f = FactsOf(j);
  EXPECT_EQ(f.fps_num(), 24000);
  EXPECT_EQ(f.fps_den(), 1001);
  EXPECT_FALSE(f.variable_frame_rate());
  EXPECT_EQ(f.frame_count(), 48);

  // Constant but stored inexactly: cleaned up to the common rate.
  j["streams"][0]["r_frame_rate"] = "2997/100";
  j["streams"][0]["avg_frame_rate"] = "2997/100";
  f = FactsOf(j);
  EXPECT_EQ(f.fps_num(), 30000);
  EXPECT_EQ(f.fps_den(), 1001);

  // Constant and uncommon: kept.
  j["streams"][0]["r_frame_rate"] = "25/2";
  j["streams"][0]["avg_frame_rate"] = "25/2";
  f = FactsOf(j);
  EXPECT_EQ(f.fps_num(), 25);
  EXPECT_EQ(f.fps_den(), 2);
  EXPECT_FALSE(f.variable_frame_rate());

  // avg missing: r is used.
  j["streams"][0]["r_frame_rate"] = "50/1";
  j["streams"][0]["avg_frame_rate"] = "0/0";
  EXPECT_EQ(FactsOf(j).fps_num(), 50);
}

TEST(SourceFactsTest, VariableFrameRateIsSnapped) {
  json j = PlainProbe();
  // What ffprobe reports for 30 fps with every fifth frame dropped.
  j["streams"][0]["r_frame_rate"] = "30/1";
  j["streams"][0]["avg_frame_rate"] = "1440/59";  // 24.41
  pb::SourceFacts f = FactsOf(j);
  EXPECT_TRUE(f.variable_frame_rate());
  EXPECT_EQ(f.fps_num(), 24);
  EXPECT_EQ(f.fps_den(), 1);

  j["streams"][0]["avg_frame_rate"] = "29600/1000";  // 29.6: nearest is 29.97
  f = FactsOf(j);
  EXPECT_TRUE(f.variable_frame_rate());
  EXPECT_EQ(f.fps_num(), 30000);
  EXPECT_EQ(f.fps_den(), 1001);

  j["streams"][0]["r_frame_rate"] = "90000/1";
  j["streams"][0]["avg_frame_rate"] = "173/10";  // 17.3: nothing common near
  f = FactsOf(j);
  EXPECT_TRUE(f.variable_frame_rate());
  EXPECT_EQ(f.fps_num(), 17);
  EXPECT_EQ(f.fps_den(), 1);
}

TEST(SourceFactsTest, AudioOnlyAndCoverArt) {
  json j = PlainProbe();
  j["format"]["format_name"] = "mp3";
  // Cover art is a video stream flagged attached_pic: not picture content.
  j["streams"][0]["codec_name"] = "mjpeg";
  j["streams"][0]["disposition"]["attached_pic"] = 1;
  j["streams"][1]["channels"] = 6;
  j["streams"][1]["channel_layout"] = "5.1";
  pb::SourceFacts f = FactsOf(j);
  EXPECT_FALSE(f.has_video());
  EXPECT_TRUE(f.has_audio());
  EXPECT_EQ(f.audio_channels(), 6);
  EXPECT_EQ(f.format_name(), "mp3");
}

TEST(SourceFactsTest, VideoOnly) {
  json j = PlainProbe();
  j["streams"].erase(1);
  pb::SourceFacts f = FactsOf(j);
  EXPECT_TRUE(f.has_video());
  EXPECT_FALSE(f.has_audio());
  EXPECT_EQ(f.audio_channels(), 0);
}

TEST(SourceFactsTest, DurationFallsBackToStreams) {
  json j = PlainProbe();
  j["format"].erase("duration");
  EXPECT_DOUBLE_EQ(FactsOf(j).duration_s(), 2.0);
}

TEST(SourceFactsTest, StreamsOfDifferentLengthsKeepTheirOwnDurations) {
  json j = PlainProbe();
  j["format"]["duration"] = "7.000000";
  j["streams"][0]["duration"] = "6.000000";
  j["streams"][1]["duration"] = "7.000000";
  pb::SourceFacts f = FactsOf(j);
  EXPECT_DOUBLE_EQ(f.duration_s(), 7.0);
  EXPECT_DOUBLE_EQ(f.video_duration_s(), 6.0);
  EXPECT_DOUBLE_EQ(f.audio_duration_s(), 7.0);
  EXPECT_EQ(f.frame_count(), 150) << "the picture's frames, not the container's length";
  j["streams"][0].erase("duration");  // unknown: the container's stands for it
  EXPECT_DOUBLE_EQ(FactsOf(j).video_duration_s(), 0);
  EXPECT_EQ(FactsOf(j).frame_count(), 175);
}

class DeniedFormatTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DeniedFormatTest, IsRefused) {
  json j = PlainProbe();
  j["format"]["format_name"] = GetParam();
  Status s = ErrorOf(j);
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("/m/src.mov"));
  EXPECT_THAT(s.message(), HasSubstr("demuxer"));
}

INSTANTIATE_TEST_SUITE_P(Formats, DeniedFormatTest,
                         ::testing::Values("hls", "applehttp", "concat", "image2", "png_pipe",
                                           "jpeg_pipe", "lavfi", "tty", "srt", "ass", "webvtt",
                                           "ffmetadata", "sdp", "rtp", "rtsp", "data", "image2pipe",
                                           "hls,applehttp"));

TEST(SourceFactsTest, NotMedia) {
  json j = PlainProbe();
  j["streams"] = json::array();
  EXPECT_THAT(ErrorOf(j).message(), HasSubstr("neither a video nor an audio"));

  j = PlainProbe();
  j["format"]["duration"] = "0.000000";
  j["streams"][0]["duration"] = "0";
  j["streams"][1]["duration"] = "N/A";
  EXPECT_THAT(ErrorOf(j).message(), HasSubstr("duration"));

  j = PlainProbe();
  j.erase("format");
  EXPECT_EQ(ErrorOf(j).code(), Status::Code::kInvalidArgument);

  EXPECT_FALSE(SourceFactsFromProbeJson("not json", "/m/x").ok());
  EXPECT_FALSE(SourceFactsFromProbeJson("[]", "/m/x").ok());
  EXPECT_FALSE(SourceFactsFromProbeJson("", "/m/x").ok());
}

TEST(SourceFactsTest, NonDeniedMultiNameFormatsPinTheFirst) {
  json j = PlainProbe();
  j["format"]["format_name"] = "matroska,webm";
  EXPECT_EQ(FactsOf(j).format_name(), "matroska");
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

pb::SourceFacts At25(double duration_s) {
  pb::SourceFacts f;
  f.set_fps_num(25);
  f.set_fps_den(1);
  f.set_duration_s(duration_s);
  return f;
}

std::string Packets(const std::vector<std::pair<double, bool>>& packets) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [pts, key] : packets) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.6f", pts);
    list.push_back({{"pts_time", text}, {"flags", key ? "K_" : "__"}});
  }
  return nlohmann::json{{"packets", list}}.dump();
}

// Packets of `seconds` at 25 fps with a key frame every `gop` frames.
std::string FixedGop(int gop, double seconds, double offset = 0) {
  std::vector<std::pair<double, bool>> p;
  for (int n = 0; n < seconds * 25; ++n) p.push_back({offset + n / 25.0, n % gop == 0});
  return Packets(p);
}

TEST(KeyFrameTest, AFixedGopIsAGridChunksCanStartOn) {
  pb::SourceFacts f = At25(60);
  ApplyKeyFramesFromProbeJson(FixedGop(50, 30), &f);
  EXPECT_DOUBLE_EQ(f.keyframe_interval_s(), 2.0);
  EXPECT_EQ(f.gop_frames(), 50);
  // A start offset (an edit list, a transport stream's clock) is the grid's
  // origin too.
  pb::SourceFacts g = At25(60);
  ApplyKeyFramesFromProbeJson(FixedGop(12, 30, 1.4), &g);
  EXPECT_EQ(g.gop_frames(), 12);
  EXPECT_NEAR(g.keyframe_interval_s(), 0.48, 1e-9);
}

TEST(KeyFrameTest, IrregularKeyFramesGiveTheLongestGapAndNoGrid) {
  // Scene cuts: key frames at 0, 3.2 s and 4 s; the window ends at 10 s.
  std::vector<std::pair<double, bool>> p;
  for (int n = 0; n < 250; ++n) p.push_back({n / 25.0, n == 0 || n == 80 || n == 100});
  pb::SourceFacts f = At25(60);
  ApplyKeyFramesFromProbeJson(Packets(p), &f);
  EXPECT_NEAR(f.keyframe_interval_s(), 6.0, 1e-9) << "the tail after the last key frame counts";
  EXPECT_EQ(f.gop_frames(), 0);
}

TEST(KeyFrameTest, OneKeyFrameInTheWindowMeansTheWholeWindow) {
  // x264's default: a key frame every 250 frames (10 s), probed over 8 s.
  pb::SourceFacts f = At25(8);
  ApplyKeyFramesFromProbeJson(FixedGop(250, 8), &f);
  EXPECT_NEAR(f.keyframe_interval_s(), 8.0, 1e-9);
  EXPECT_EQ(f.gop_frames(), 0);
}

TEST(KeyFrameTest, NothingUsableLeavesThemUnknown) {
  for (const char* text : {"", "[]", "{}", R"({"packets": []})", R"({"packets": [{"x": 1}]})"}) {
    pb::SourceFacts f = At25(10);
    ApplyKeyFramesFromProbeJson(text, &f);
    EXPECT_EQ(f.keyframe_interval_s(), 0) << text;
    EXPECT_EQ(f.gop_frames(), 0) << text;
  }
  EXPECT_TRUE(IsIntraOnlyCodec("prores"));
  EXPECT_TRUE(IsIntraOnlyCodec("dnxhd"));
  EXPECT_FALSE(IsIntraOnlyCodec("h264"));
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

// Issue 17: scan, colour, depth and the container's HDR metadata.
TEST(SourceFactsTest, ScanColourDepthAndContainerHdrMetadata) {
  json j = PlainProbe();
  json& v = j["streams"][0];
  v["pix_fmt"] = "yuv420p10le";
  v["field_order"] = "tt";
  v["color_primaries"] = "bt2020";
  v["color_transfer"] = "smpte2084";
  v["color_space"] = "bt2020nc";
  v["color_range"] = "tv";
  v["side_data_list"] = json::array({{{"side_data_type", "Content light level metadata"},
                                      {"max_content", 1000},
                                      {"max_average", 400}},
                                     {{"side_data_type", "Mastering display metadata"},
                                      {"red_x", "11408507/16777216"},
                                      {"red_y", "5368709/16777216"},
                                      {"green_x", "2222981/8388608"},
                                      {"green_y", "11576279/16777216"},
                                      {"blue_x", "5033165/33554432"},
                                      {"blue_y", "16106127/268435456"},
                                      {"white_point_x", "10492471/33554432"},
                                      {"white_point_y", "689963/2097152"},
                                      {"min_luminance", "209800/2098000053"},
                                      {"max_luminance", "1000/1"}}});
  pb::SourceFacts f = FactsOf(j);
  EXPECT_EQ(f.field_order(), "tt");
  EXPECT_EQ(f.color_primaries(), "bt2020");
  EXPECT_EQ(f.color_transfer(), "smpte2084");
  EXPECT_EQ(f.color_space(), "bt2020nc");
  EXPECT_EQ(f.color_range(), "tv");
  EXPECT_EQ(f.bit_depth(), 10);
  EXPECT_TRUE(f.hdr_metadata_in_container());
  EXPECT_EQ(f.mastering_display(),
            "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)");
  EXPECT_EQ(f.max_cll(), 1000);
  EXPECT_EQ(f.max_fall(), 400);

  // "unknown" is nothing said; an 8-bit picture without tags.
  pb::SourceFacts plain = FactsOf(PlainProbe());
  EXPECT_EQ(plain.field_order(), "");
  EXPECT_EQ(plain.color_transfer(), "");
  EXPECT_EQ(plain.bit_depth(), 8);
  EXPECT_FALSE(plain.hdr_metadata_in_container());
}

TEST(KeyFrameTest, FrameSideDataGivesHdr10Metadata) {
  pb::SourceFacts f;
  ApplyHdrFromProbeJson(R"({"frames": [{"side_data_list": [
      {"side_data_type": "Mastering display metadata", "red_x": "34000/50000",
       "red_y": "16000/50000", "green_x": "13250/50000", "green_y": "34500/50000",
       "blue_x": "7500/50000", "blue_y": "3000/50000", "white_point_x": "15635/50000",
       "white_point_y": "16450/50000", "min_luminance": "50/10000",
       "max_luminance": "40000000/10000"},
      {"side_data_type": "Content light level metadata", "max_content": 4000,
       "max_average": 1000}]}]})",
                        &f);
  EXPECT_EQ(f.mastering_display(),
            "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(40000000,50)");
  EXPECT_EQ(f.max_cll(), 4000);
  EXPECT_EQ(f.max_fall(), 1000);
  EXPECT_FALSE(f.hdr_metadata_in_container());
}

}  // namespace
}  // namespace reelfarm

namespace reelfarm {
namespace {

TEST(IdetTest, MostDecidedFramesSayTheFieldOrder) {
  auto said = [](int tff, int bff, int progressive) {
    return FieldOrderFromIdet(
        "[Parsed_idet_0 @ 0x55] Single frame detection: TFF: 1 BFF: 2 "
        "Progressive: 3 Undetermined: 4\n[Parsed_idet_0 @ 0x55] Multi "
        "frame detection: TFF: " +
        std::to_string(tff) + " BFF: " + std::to_string(bff) +
        " Progressive: " + std::to_string(progressive) + " Undetermined: 5\n");
  };
  EXPECT_EQ(said(40, 0, 2), "tt");
  EXPECT_EQ(said(3, 30, 5), "bb");
  EXPECT_EQ(said(0, 1, 50), "progressive");
  EXPECT_EQ(said(12, 0, 10), "") << "not clear either way";
  EXPECT_EQ(said(4, 0, 1), "") << "too few frames with fields";
  EXPECT_EQ(FieldOrderFromIdet("no idet here"), "");
  // Overruling a declared flag takes nine frames in ten: a moving 720p test
  // pattern flagged progressive (the demo's source) shows 35/9/17.
  auto against = [](int tff, int bff, int progressive) {
    return FieldOrderFromIdet(
        "Multi frame detection: TFF: " + std::to_string(tff) + " BFF: " + std::to_string(bff) +
            " Progressive: " + std::to_string(progressive) + " Undetermined: 0\n",
        /*against_flag=*/true);
  };
  EXPECT_EQ(against(35, 9, 17), "");
  EXPECT_EQ(against(61, 0, 0), "tt");
  EXPECT_EQ(against(2, 55, 3), "bb");
  EXPECT_EQ(against(1, 2, 58), "progressive");
  EXPECT_EQ(against(5, 0, 1), "") << "too few decided frames";
  std::vector<std::string> argv = IdetArgv("ffmpeg", "/m/a:b.mov", "mov", 3.25, 60);
  EXPECT_EQ(argv, (std::vector<std::string>{"ffmpeg",
                                            "-hide_banner",
                                            "-nostdin",
                                            "-nostats",
                                            "-loglevel",
                                            "info",
                                            "-protocol_whitelist",
                                            "file",
                                            "-f",
                                            "mov",
                                            "-ss",
                                            "3.250",
                                            "-i",
                                            "file:/m/a:b.mov",
                                            "-map",
                                            "0:v:0",
                                            "-vf",
                                            "idet",
                                            "-frames:v",
                                            "60",
                                            "-an",
                                            "-f",
                                            "null",
                                            "-"}));
}

}  // namespace
}  // namespace reelfarm
