// Streaming packages' pure parts: ladders, rung bit rates, playlists, codec
// strings, the master playlist.
#include "common/hls.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace reelfarm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(HlsLadder, DefaultRungsAreThoseAtOrUnderTheSource) {
  EXPECT_THAT(DefaultLadder(1080), ElementsAre(1080, 720, 480, 360));
  EXPECT_THAT(DefaultLadder(2160), ElementsAre(2160, 1440, 1080, 720, 480, 360));
  EXPECT_THAT(DefaultLadder(800), ElementsAre(720, 480, 360));
  EXPECT_THAT(DefaultLadder(240), ElementsAre(240));  // under the lowest rung: its own
  EXPECT_THAT(DefaultLadder(241), ElementsAre(240));  // even
}

TEST(HlsLadder, RatesFollowTheTableByPixelsAndFrameRate) {
  EXPECT_EQ(RungMaxrateKbps("h264", 1920, 1080, 25), 7800);
  EXPECT_EQ(RungMaxrateKbps("hevc", 1920, 1080, 25), 5800);
  EXPECT_EQ(RungMaxrateKbps("h264", 1280, 720, 30), 4500);
  EXPECT_EQ(RungMaxrateKbps("h264", 1280, 720, 50), 6750);  // 1.5x above 30 fps
  EXPECT_EQ(RungMaxrateKbps("h264", 640, 360, 25), 730);
  // 9:16 1080x1920 has the pixels of 16:9 1080p.
  EXPECT_EQ(RungMaxrateKbps("h264", 1080, 1920, 25), 7800);
  // A 4:3 480-line rung: fewer pixels than 16:9 480p, less rate.
  EXPECT_LT(RungMaxrateKbps("h264", 640, 480, 25), RungMaxrateKbps("h264", 854, 480, 25));
}

constexpr char kPlaylist[] =
    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n"
    "#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init_0.mp4\"\n"
    "#EXTINF:4.000000,\nseg_00000.m4s\n#EXTINF:4.000000,\nseg_00001.m4s\n"
    "#EXTINF:1.520000,\nseg_00002.m4s\n#EXT-X-ENDLIST\n";

TEST(HlsPlaylist, ReadsSegmentsAndTheInitSegment) {
  StatusOr<MediaPlaylist> p = ReadMediaPlaylist(kPlaylist);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->map_uri, "init_0.mp4");
  EXPECT_TRUE(p->ended);
  ASSERT_EQ(p->segments.size(), 3u);
  EXPECT_EQ(p->segments[1].uri, "seg_00001.m4s");
  EXPECT_DOUBLE_EQ(p->segments[2].duration_s, 1.52);
}

TEST(HlsPlaylist, RefusesAnythingThatLeavesThePackage) {
  for (const char* uri : {"../secret.m4s", "/etc/passwd", "http://169.254.169.254/x",
                          "file:seg.m4s", ".hidden.m4s", "sub/seg.m4s"}) {
    std::string text = std::string("#EXTM3U\n#EXTINF:4.0,\n") + uri + "\n#EXT-X-ENDLIST\n";
    StatusOr<MediaPlaylist> p = ReadMediaPlaylist(text);
    EXPECT_FALSE(p.ok()) << uri;
  }
  std::string map = "#EXTM3U\n#EXT-X-MAP:URI=\"../init.mp4\"\n#EXTINF:4.0,\nseg.m4s\n";
  EXPECT_THAT(ReadMediaPlaylist(map).status().message(), HasSubstr("EXT-X-MAP"));
  EXPECT_FALSE(ReadMediaPlaylist("not a playlist\n").ok());
  EXPECT_FALSE(ReadMediaPlaylist("#EXTM3U\nseg.m4s\n").ok());         // no EXTINF
  EXPECT_FALSE(ReadMediaPlaylist("#EXTM3U\n#EXT-X-ENDLIST\n").ok());  // no segment
  EXPECT_FALSE(ReadMediaPlaylist("#EXTM3U\n#EXTINF:-1,\nseg.m4s\n").ok());
}

TEST(HlsPlaylist, IncompleteWithoutEndList) {
  StatusOr<MediaPlaylist> p = ReadMediaPlaylist("#EXTM3U\n#EXTINF:4.0,\nseg.m4s\n");
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->ended);
}

TEST(HlsBandwidth, PeakIsTheLargestFullSegmentAverageIsAll) {
  StatusOr<MediaPlaylist> p = ReadMediaPlaylist(kPlaylist);
  ASSERT_TRUE(p.ok());
  // 4 s of 1 MB, 4 s of 2 MB, then a short last segment of 1.52 s, 0.95 MB
  // (its own rate, 5 Mbit/s, is not the stream's peak: a short end).
  Bandwidth b = MeasureBandwidth(*p, {1000000, 2000000, 950000});
  EXPECT_EQ(b.peak_bps, 4000000);
  EXPECT_EQ(b.average_bps, std::llround(3950000 * 8 / 9.52));
  // A last segment of at least half the others' length counts.
  p->segments[2].duration_s = 3.5;
  b = MeasureBandwidth(*p, {1000000, 1500000, 2000000});
  EXPECT_EQ(b.peak_bps, std::llround(2000000 * 8 / 3.5));
}

TEST(HlsCodecs, StringsFromTheConfigurationRecords) {
  // avcC of an x264 High profile level 3.1 stream, as ffprobe -show_data prints it.
  const std::string avcc =
      "\n00000000: 0164 001f ffe1 001a 6764 001f acd9 4050  .d......gd....@P\n"
      "00000010: 05bb 0110 0000 0300 1000 0003 0320 f183  ............. ..\n";
  std::vector<uint8_t> bytes = ParseHexDump(avcc);
  ASSERT_EQ(bytes.size(), 32u);
  EXPECT_EQ(bytes[1], 0x64);
  EXPECT_EQ(*CodecString("h264", bytes), "avc1.64001f");
  // hvcC of x265 Main, level 3.1, constraint byte 0xB0 (progressive source,
  // non-packed, frame only).
  std::vector<uint8_t> hvcc = {0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0xb0,
                               0x00, 0x00, 0x00, 0x00, 0x00, 0x5d};
  EXPECT_EQ(*CodecString("hevc", hvcc), "hvc1.1.6.L93.B0");
  hvcc[1] = 0x22;  // high tier, Main 10
  hvcc[2] = 0x20;
  hvcc[12] = 0x99;
  EXPECT_EQ(*CodecString("hevc", hvcc), "hvc1.2.4.H153.B0");
  EXPECT_EQ(*CodecString("aac", {}), "mp4a.40.2");
  EXPECT_FALSE(CodecString("h264", {}).ok());
  EXPECT_FALSE(CodecString("vp9", {1, 2, 3, 4}).ok());
}

TEST(HlsMaster, ListsRenditionsWithTheAudioGroupAdded) {
  pb::RenditionResult v;
  v.set_playlist("v720/index.m3u8");
  v.set_codecs("avc1.64001f");
  v.set_width(1280);
  v.set_height(720);
  v.set_peak_bps(3000000);
  v.set_average_bps(2500000);
  pb::RenditionResult a;
  a.set_playlist("audio/index.m3u8");
  a.set_codecs("mp4a.40.2");
  a.set_peak_bps(130000);
  a.set_average_bps(128000);
  const std::string m = MasterPlaylist({v}, &a, 25, 2);
  EXPECT_EQ(m,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n"
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Main\",DEFAULT=YES,AUTOSELECT=YES,"
            "CHANNELS=\"2\",URI=\"audio/index.m3u8\"\n"
            "#EXT-X-STREAM-INF:BANDWIDTH=3130000,AVERAGE-BANDWIDTH=2628000,"
            "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=25.000,"
            "AUDIO=\"audio\"\nv720/index.m3u8\n");
  const std::string silent = MasterPlaylist({v}, nullptr, 29.97, 0);
  EXPECT_THAT(silent, HasSubstr("BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2500000,"
                                "CODECS=\"avc1.64001f\",RESOLUTION=1280x720,FRAME-RATE=29.970\n"));
  EXPECT_EQ(silent.find("AUDIO"), std::string::npos);
}

TEST(HlsPackage, ListingIsSha256sumsFormatSortedByPath) {
  pb::PackageFile a, b;
  a.set_relative_path("v720/seg_00000.m4s");
  a.set_sha256("aa");
  b.set_relative_path("master.m3u8");
  b.set_sha256("bb");
  EXPECT_EQ(PackageListing({a, b}), "bb  master.m3u8\naa  v720/seg_00000.m4s\n");
}

}  // namespace
}  // namespace reelfarm
