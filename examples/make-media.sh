#!/bin/sh
# Makes the sample film the example specs refer to, with FFmpeg's lavfi
# generators: examples/media/launch.mov (10 s, 1280x720 25 fps H.264, stereo
# AAC) and examples/media/launch_en.srt (UTF-8). Safe to run again.
set -eu
dir="$(cd "$(dirname "$0")" && pwd)/media"
mkdir -p "$dir"
ffmpeg -nostdin -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=10" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
  -ac 2 -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac -b:a 128k \
  -shortest "$dir/launch.mov"
cat > "$dir/launch_en.srt" <<'SRT'
1
00:00:01,000 --> 00:00:04,000
Every film is delivered many ways.

2
00:00:05,000 --> 00:00:09,000
This one, by reelfarm.
SRT
echo "$dir/launch.mov"
