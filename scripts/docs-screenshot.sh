#!/usr/bin/env bash
# Takes a screenshot of the interactive API reference (GET /docs) with
# Debian's headless Chromium, to look at what a person sees.
#
#   make run                              # in another terminal
#   scripts/docs-screenshot.sh            # writes /tmp/eventshop-docs.png
#   scripts/docs-screenshot.sh shot.png http://127.0.0.1:8080/docs
#
# Chromium is installed with apt-get when missing (as root). The page loads
# everything from the server itself, so no network is needed beyond it.
set -euo pipefail

out="${1:-${TMPDIR:-/tmp}/eventshop-docs.png}"
url="${2:-http://127.0.0.1:8080/docs}"
chromium=/usr/bin/chromium

if [[ ! -x "$chromium" ]]; then
	if [[ "$(id -u)" != 0 ]]; then
		echo "chromium is not installed; run as root to install it with apt-get" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# Is the page there at all? A refused connection or a 404 would otherwise
# give a screenshot of Chromium's error page.
code="$(curl -s -o /dev/null -w '%{http_code}' "$url" || true)"
if [[ "$code" != 200 ]]; then
	echo "$url answered ${code:-nothing} (want 200): is the server running (make run)?" >&2
	exit 1
fi

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
# --no-sandbox: Chromium's sandbox does not run as root.
# --virtual-time-budget: let the page fetch /openapi.json and render it
# before the shot.
"$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$profile" --screenshot="$out" --window-size=1400,900 \
	--virtual-time-budget=10000 "$url" 2>/dev/null
if [[ ! -s "$out" ]]; then
	echo "no screenshot was written to $out" >&2
	exit 1
fi
echo "$out"
