#!/usr/bin/env bash
# Vendors the Swagger UI files that GET /docs serves (embedded in the binary,
# so the page needs no CDN) from the npm package swagger-ui-dist, with its
# licence, into docs/reference/swagger-ui/, and records the version in
# docs/reference/README.md.
#
#   scripts/update-docs-assets.sh            # the version pinned below
#   scripts/update-docs-assets.sh 5.36.0     # another version
#
# It needs npm (it runs `npm pack`, which only downloads the package's
# tarball). Afterwards: go test ./docs/, and look at the page
# (scripts/docs-screenshot.sh) before committing.
set -euo pipefail
cd "$(dirname "$0")/.."

version="${1:-5.35.0}"
pkg=swagger-ui-dist
dest=docs/reference/swagger-ui
# Only what the page loads, and the licences. Not the maps, the ES builds,
# the standalone preset (the page uses the base layout) or the sample
# index.html and initializer (docs/reference has the page's own).
files=(swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
tar -xzf "$tmp/$pkg-$version.tgz" -C "$tmp"
got="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$tmp/package/package.json" | head -n1)"
if [[ "$got" != "$version" ]]; then
	echo "npm gave $pkg $got, asked for $version" >&2
	exit 1
fi

rm -rf "$dest"
mkdir -p "$dest"
for f in "${files[@]}"; do
	cp "$tmp/package/$f" "$dest/$f"
done
echo "$pkg@$version" >"$dest/VERSION"

# The version line of docs/reference/README.md.
readme=docs/reference/README.md
if [[ -f "$readme" ]]; then
	sed -i "s/^Vendored: \`$pkg@[^\`]*\`/Vendored: \`$pkg@$version\`/" "$readme"
fi
echo "vendored $pkg@$version into $dest:"
ls -l "$dest"
