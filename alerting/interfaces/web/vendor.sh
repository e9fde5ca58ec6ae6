#!/bin/sh
# Copy the browser libraries the console serves itself (no CDN) from node_modules into static/vendor.
# Run after `npm ci` in this folder; `make`/`sirena setup` may call it. Idempotent.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ ! -d node_modules/leaflet ] || [ ! -d node_modules/leaflet-draw ] || [ ! -d node_modules/uplot ]; then
  npm ci --no-audit --no-fund >/dev/null
fi
rm -rf static/vendor
mkdir -p static/vendor/leaflet static/vendor/leaflet-draw static/vendor/uplot
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css static/vendor/leaflet/
cp -R node_modules/leaflet/dist/images static/vendor/leaflet/
cp node_modules/leaflet-draw/dist/leaflet.draw.js node_modules/leaflet-draw/dist/leaflet.draw.css static/vendor/leaflet-draw/
cp -R node_modules/leaflet-draw/dist/images static/vendor/leaflet-draw/
cp node_modules/leaflet/LICENSE static/vendor/leaflet/LICENSE
# uPlot draws the after-action report's charts (the console page, and inlined into the HTML export).
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css node_modules/uplot/LICENSE \
  static/vendor/uplot/
cp node_modules/leaflet-draw/MIT-LICENSE.md static/vendor/leaflet-draw/LICENSE 2>/dev/null || true
echo "vendored: $(ls static/vendor)"
