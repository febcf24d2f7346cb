// MediaInfoFromProbeJson and ProbeArgv on ffprobe JSON samples (trimmed from
// real ffprobe 5.1 output).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/probe.h"

namespace reelfarm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A phone clip: H.264 with a display matrix (ffprobe "rotation": 90 is
// counter-clockwise), AAC audio, an attached picture stream listed first.
constexpr const char* kPhoneClip = R"json({
 "streams": [
  {"index": 0, "codec_name": "mjpeg", "codec_type": "video", "width": 600, "height": 600,
   "pix_fmt": "yuvj420p", "r_frame_rate": "90000/1", "avg_frame_rate": "0/0",
   "disposition": {"default": 0, "attached_pic": 1}},
  {"index": 1, "codec_name": "h264", "profile": "High", "codec_type": "video",
   "width": 320, "height": 180, "pix_fmt": "yuv420p",
   "r_frame_rate": "30/1", "avg_frame_rate": "30000/1001", "duration": "1.001000",
   "disposition": {"default": 1, "attached_pic": 0},
   "side_data_list": [{"side_data_type": "Display Matrix", "rotation": 90}]},
  {"index": 2, "codec_name": "aac", "profile": "LC", "codec_type": "audio",
   "sample_rate": "48000", "channels": 2, "channel_layout": "stereo",
   "r_frame_rate": "0/0", "avg_frame_rate": "0/0", "duration": "1.000000"},
  {"index": 3, "codec_name": "opus", "codec_type": "audio", "sample_rate": "48000", "channels": 6}
 ],
 "format": {"filename": "file:clip.mov", "nb_streams": 4,
            "format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "1.024000", "size": "17244"}
})json";

TEST(MediaInfoTest, ReadsAPhoneClip) {
  StatusOr<pb::MediaInfo> info = MediaInfoFromProbeJson(kPhoneClip);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->format_name(), "mov,mp4,m4a,3gp,3g2,mj2");
  EXPECT_TRUE(info->has_video());
  EXPECT_EQ(info->video_codec(), "h264");  // not the attached picture
  EXPECT_EQ(info->width(), 320);
  EXPECT_EQ(info->height(), 180);
  EXPECT_EQ(info->pix_fmt(), "yuv420p");
  EXPECT_EQ(info->video_profile(), "High");
  EXPECT_EQ(info->fps_num(), 30000);  // avg_frame_rate wins over r_frame_rate
  EXPECT_EQ(info->fps_den(), 1001);
  EXPECT_EQ(info->rotation(), 270);             // 90 counter-clockwise = 270 clockwise
  EXPECT_DOUBLE_EQ(info->duration_s(), 1.024);  // the container's
  EXPECT_TRUE(info->has_audio());
  EXPECT_EQ(info->audio_codec(), "aac");  // the first audio stream
  EXPECT_EQ(info->audio_channels(), 2);
  EXPECT_EQ(info->audio_sample_rate(), 48000);
  EXPECT_FALSE(info->has_subtitle());
  EXPECT_EQ(info->subtitle_codec(), "");
}

TEST(MediaInfoTest, NormalisesRotationToClockwise) {
  auto rotation_of = [](const std::string& stream_extra) {
    std::string json = R"({"streams":[{"codec_type":"video","codec_name":"h264",)" + stream_extra +
                       R"(}],"format":{"format_name":"mov"}})";
    StatusOr<pb::MediaInfo> info = MediaInfoFromProbeJson(json);
    EXPECT_TRUE(info.ok());
    return info.ok() ? info->rotation() : -1;
  };
  EXPECT_EQ(rotation_of(R"("side_data_list":[{"rotation":-90}])"), 90);
  EXPECT_EQ(rotation_of(R"("side_data_list":[{"rotation":90}])"), 270);
  EXPECT_EQ(rotation_of(R"("side_data_list":[{"rotation":180}])"), 180);
  EXPECT_EQ(rotation_of(R"("side_data_list":[{"rotation":-180}])"), 180);
  EXPECT_EQ(rotation_of(R"("side_data_list":[{"side_data_type":"CPB properties"}])"), 0);
  // Legacy tag: already clockwise.
  EXPECT_EQ(rotation_of(R"("tags":{"rotate":"90"})"), 90);
  EXPECT_EQ(rotation_of(R"("tags":{"rotate":"-90"})"), 270);
  EXPECT_EQ(rotation_of(R"("tags":{"rotate":"450"})"), 90);
  EXPECT_EQ(rotation_of(R"("width":16)"), 0);
}

TEST(MediaInfoTest, FrameRateFallsBackToRFrameRate) {
  StatusOr<pb::MediaInfo> info = MediaInfoFromProbeJson(
      R"({"streams":[{"codec_type":"video","codec_name":"prores","avg_frame_rate":"0/0",
          "r_frame_rate":"50/2"}],"format":{"format_name":"mov"}})");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->fps_num(), 25);  // reduced
  EXPECT_EQ(info->fps_den(), 1);
}

TEST(MediaInfoTest, AudioOnlyWavWithStreamDuration) {
  StatusOr<pb::MediaInfo> info = MediaInfoFromProbeJson(R"({
    "streams":[{"index":0,"codec_name":"pcm_s24le","codec_type":"audio","sample_rate":"48000",
                "channels":2,"bits_per_sample":24,"duration":"2.000000"}],
    "format":{"format_name":"wav","duration":"N/A"}})");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->format_name(), "wav");
  EXPECT_FALSE(info->has_video());
  EXPECT_EQ(info->fps_num(), 0);
  EXPECT_TRUE(info->has_audio());
  EXPECT_EQ(info->audio_codec(), "pcm_s24le");
  EXPECT_DOUBLE_EQ(info->duration_s(), 2.0);  // "N/A" at the container -> the stream's
}

TEST(MediaInfoTest, SubtitleStream) {
  StatusOr<pb::MediaInfo> info = MediaInfoFromProbeJson(R"({
    "streams":[{"codec_type":"video","codec_name":"h264","width":1920,"height":1080},
               {"codec_type":"subtitle","codec_name":"mov_text"},
               {"codec_type":"subtitle","codec_name":"subrip"},
               {"codec_type":"data","codec_name":"bin_data"}],
    "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"10.5"}})");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->has_subtitle());
  EXPECT_EQ(info->subtitle_codec(), "mov_text");
  EXPECT_FALSE(info->has_audio());
  EXPECT_EQ(info->width(), 1920);
  EXPECT_DOUBLE_EQ(info->duration_s(), 10.5);
}

TEST(MediaInfoTest, EmptyProbeIsNotAnError) {
  // ffprobe prints this for a file with no streams; verification then fails
  // on has_video/has_audio, which names the problem better.
  StatusOr<pb::MediaInfo> info = MediaInfoFromProbeJson("{}");
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->has_video());
  EXPECT_FALSE(info->has_audio());
  EXPECT_EQ(info->duration_s(), 0);
}

TEST(MediaInfoTest, RejectsWhatIsNotJson) {
  for (const char* bad : {"", "not json", "[1,2]", "{\"streams\": [", "42"}) {
    StatusOr<pb::MediaInfo> info = MediaInfoFromProbeJson(bad);
    EXPECT_FALSE(info.ok()) << bad;
    EXPECT_EQ(info.status().code(), Status::Code::kInvalidArgument);
  }
}

TEST(MediaInfoTest, ToleratesOddFieldTypes) {
  // Wrong types must not throw; they read as absent.
  StatusOr<pb::MediaInfo> info = MediaInfoFromProbeJson(R"({
    "streams":[{"codec_type":"video","codec_name":7,"width":"wide","height":null,
                "avg_frame_rate":"x/y","disposition":"none"}, 5, "str"],
    "format":["not","an","object"]})");
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->has_video());
  EXPECT_EQ(info->video_codec(), "7");
  EXPECT_EQ(info->width(), 0);
  EXPECT_EQ(info->height(), 0);
  EXPECT_EQ(info->fps_num(), 0);
  EXPECT_EQ(info->format_name(), "");
}

TEST(ProbeArgvTest, FileProtocolOnlyAndLiteralPath) {
  EXPECT_THAT(ProbeArgv("ffprobe", "/media/in/clip.mov"),
              ElementsAre("ffprobe", "-v", "error", "-protocol_whitelist", "file", "-show_format",
                          "-show_streams", "-of", "json", "file:/media/in/clip.mov"));
  // Names that look like options or protocols stay plain files.
  EXPECT_EQ(ProbeArgv("ffprobe", "-i.mov").back(), "file:-i.mov");
  EXPECT_EQ(ProbeArgv("ffprobe", "http://x/y.m3u8").back(), "file:http://x/y.m3u8");
}

}  // namespace
}  // namespace reelfarm
