#!/usr/bin/env bash
# Re-vendor MathJax 3 into book/_extra/mathjax (served by Sphinx through html_extra_path,
# loaded through mathjax_path in _config.yml). Needs npm and the npm registry.
set -euo pipefail
version="${1:-3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/book/_extra/mathjax"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "mathjax@$version" >/dev/null && tar xzf mathjax-*.tgz)
src="$tmp/package"
rm -rf "$dest"
mkdir -p "$dest/output/chtml/fonts" "$dest/input/tex"
cp "$src/es5/tex-mml-chtml.js" "$dest/"
cp -r "$src/es5/output/chtml/fonts/woff-v2" "$dest/output/chtml/fonts/"
cp -r "$src/es5/input/tex/extensions" "$dest/input/tex/"
cp "$src/LICENSE" "$dest/LICENSE"
v="$(node -p "require('$src/package.json').version" 2>/dev/null || echo "$version")"
cat > "$dest/VERSION" <<TXT
MathJax $v (npm package "mathjax", es5 build), vendored for offline rendering.
Kept: tex-mml-chtml.js, output/chtml/fonts/woff-v2 (CHTML fonts),
input/tex/extensions (loaded on demand by the TeX autoload extension). LICENSE: Apache-2.0.
Refresh with: scripts/vendor_mathjax.sh
TXT
du -sh "$dest"
