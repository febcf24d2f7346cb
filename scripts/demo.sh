#!/usr/bin/env bash
# Runs a demo delivery with the embedded farm (`reelfarm run`): generates a
# 10 s 1280x720 25 fps sample source (FFmpeg lavfi: testsrc2 + sine, H.264 +
# AAC in .mov) and an English SRT, writes a spec that uses every preset (two
# masters, web H.264/HEVC, 9:16 / 1:1 / 4:5 social crops, burned and soft
# subtitles, a poster frame, a WAV), runs it on 2 local workers and prints
# where the deliverables are.
#
# Usage (from anywhere, after a build): scripts/demo.sh [DEMO_DIR]
#   DEMO_DIR   default ./demo under the repository root (ignored by git)
#   BUILD_DIR  the build folder, default build (binaries in $BUILD_DIR/bin)
#   WORKERS    local workers, default 2
set -euo pipefail
cd "$(dirname "$0")/.."

demo_dir="${1:-${DEMO_DIR:-demo}}"
reelfarm="${BUILD_DIR:-build}/bin/reelfarm"
workers="${WORKERS:-2}"

if [[ ! -x "$reelfarm" ]]; then
  echo "demo: $reelfarm not found; build first (scripts/build.sh)" >&2
  exit 1
fi
for tool in ffmpeg ffprobe redis-server; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is not installed (scripts/install-deps.sh)" >&2; exit 1; }
done

mkdir -p "$demo_dir/media"
source_file="$demo_dir/media/sample.mov"
if [[ ! -s "$source_file" ]]; then
  echo "demo: generating a 10 s 1280x720 sample source in $source_file"
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=25:duration=10" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=10" \
    -map 0:v -map 1:a -c:v libx264 -preset veryfast -pix_fmt yuv420p \
    -c:a aac -ac 2 -b:a 128k -shortest "$source_file.tmp.mov"
  mv "$source_file.tmp.mov" "$source_file"
fi

cat > "$demo_dir/media/sample_en.srt" <<'SRT'
1
00:00:00,500 --> 00:00:03,500
Welcome to the reelfarm demo.

2
00:00:04,000 --> 00:00:07,000
One source, many deliverables.

3
00:00:07,500 --> 00:00:09,500
Every file verified and checksummed.
SRT

cat > "$demo_dir/demo.yaml" <<'YAML'
# The reelfarm demo: one generated source, every preset.
version: 1
name: demo
source: media/sample.mov
output_dir: out
subtitles:
  en: media/sample_en.srt
deliverables:
  - name: master
    preset: master-prores
  - name: master-dnxhr
    preset: master-dnxhr
  - name: web-720
    preset: web-h264
    height: 720
  - name: web-hevc-540
    preset: web-hevc
    height: 540
  - name: reel-9x16
    preset: social-h264
    aspect: "9:16"
    height: 640
  - name: square-1x1
    preset: social-h264
    aspect: "1:1"
    height: 480
  - name: feed-4x5
    preset: social-h264
    aspect: "4:5"
    height: 500
    focus: {x: 0.5, y: 0.4}
  - name: web-720-en-burned
    preset: web-h264
    height: 720
    subtitles: {language: en, mode: burn}
  - name: web-360-en-soft
    preset: web-h264
    height: 360
    subtitles: {language: en, mode: soft}
  - name: poster
    preset: thumbnail-jpg
    at: "00:00:05"
  - name: audio
    preset: audio-wav
YAML

# A fresh output folder each time, so the listing below is this run's.
rm -rf "${demo_dir:?}/out"

echo "demo: running $demo_dir/demo.yaml on $workers local workers"
set +e
"$reelfarm" run "$demo_dir/demo.yaml" --workers "$workers"
code=$?
set -e

if [[ -d "$demo_dir/out" ]]; then
  echo
  echo "demo: the deliverables are in $(cd "$demo_dir/out" && pwd):"
  ls -l "$demo_dir/out"
fi
exit "$code"
