#!/usr/bin/env bash
# Browser check for feedwire's readable pages.
#
# Loads `/`, `/feeds/` and one article page of a running feedwire in headless
# Chromium, asserts the given Vietnamese headline is in the rendered DOM of
# `/` and of the article page, and saves phone-sized screenshots for a human
# (or an image diff) to look at.
#
# Usage: .ci/browser-check.sh BASE_URL OUT_DIR HEADLINE
#   BASE_URL  a running feedwire, e.g. http://127.0.0.1:8080
#   OUT_DIR   where the screenshots go, e.g. target/screenshots
#   HEADLINE  exact (NFC) headline text of an article the server holds
#
# Needs Debian packages `chromium` and `fonts-noto-core` (without the latter
# Vietnamese diacritics may render as boxes in the screenshots).
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: $0 BASE_URL OUT_DIR HEADLINE" >&2
    exit 2
fi
base=${1%/}
out=$2
headline=$3

chrome=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $chrome ]]; then
    echo "browser-check: chromium not found (apt-get install -y chromium fonts-noto-core)" >&2
    exit 2
fi

mkdir -p "$out"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
flags=(
    --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
    --disable-background-networking --disable-component-update --disable-sync
    --user-data-dir="$profile"
)

dump_dom() {
    timeout 90 "$chrome" "${flags[@]}" --dump-dom "$1" 2>/dev/null
}

screenshot() {
    local url=$1 file=$2
    rm -f "$file"
    timeout 90 "$chrome" "${flags[@]}" --hide-scrollbars --window-size=412,915 \
        --screenshot="$file" "$url" >/dev/null 2>&1 || true
    if [[ ! -s $file ]]; then
        echo "browser-check: FAIL no screenshot of $url" >&2
        exit 1
    fi
    echo "browser-check: saved $file"
}

# The serialised DOM escapes &, < and > in text; search for the same form.
needle=$(printf '%s' "$headline" | sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g')

expect_headline() {
    local what=$1 dom=$2
    if ! grep -qF -- "$needle" <<<"$dom"; then
        echo "browser-check: FAIL the headline is not in the DOM of $what" >&2
        exit 1
    fi
    echo "browser-check: ok headline rendered on $what"
}

home_dom=$(dump_dom "$base/")
if ! grep -qF '<html lang="vi"' <<<"$home_dom"; then
    echo "browser-check: FAIL $base/ did not load as a feedwire page" >&2
    exit 1
fi
expect_headline "/" "$home_dom"

feeds_dom=$(dump_dom "$base/feeds/")
if ! grep -qF 'type="application/rss+xml"' <<<"$feeds_dom"; then
    echo "browser-check: FAIL /feeds/ has no RSS autodiscovery link" >&2
    exit 1
fi
echo "browser-check: ok /feeds/ loaded"

# The article whose link text is the headline, else the first article link.
href=$(grep -oE '<a href="/articles/[^"]+">[^<]*</a>' <<<"$home_dom" | grep -F -- "$needle" | head -n1 |
    sed -E 's/^<a href="([^"]+)".*/\1/' || true)
if [[ -z $href ]]; then
    href=$(grep -oE 'href="/articles/[^"]+"' <<<"$home_dom" | head -n1 | sed -E 's/^href="([^"]+)"$/\1/' || true)
fi
if [[ -z $href ]]; then
    echo "browser-check: FAIL no article link on $base/" >&2
    exit 1
fi
href=${href//&amp;/&}
article_url="$base$href"
article_dom=$(dump_dom "$article_url")
expect_headline "$href" "$article_dom"

screenshot "$base/" "$out/home.png"
screenshot "$base/feeds/" "$out/feeds.png"
screenshot "$article_url" "$out/article.png"
echo "browser-check: all checks passed"
