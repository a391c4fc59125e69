#!/usr/bin/env python3
"""Interop over HTTP: Python feedparser fetches every feed from a running
feedwire, gets the same entries as the files on disk, and a second fetch with
the validators (ETag, Last-Modified) gets 304.

Usage: check_http.py BASE_URL FEEDS_DIR
"""
import pathlib
import sys

import feedparser


def main() -> int:
    base, feeds = sys.argv[1].rstrip("/"), pathlib.Path(sys.argv[2])
    failures = checked = 0
    for path in sorted(feeds.rglob("*.xml")):
        rel = path.relative_to(feeds).as_posix()
        # The sitemaps live at the site's root, not under /feeds/, and are
        # no feeds: check_sitemaps.py checks them.
        if rel in ("sitemap.xml", "news-sitemap.xml") or rel.startswith("sitemaps/"):
            continue
        url = f"{base}/feeds/{rel}"
        over_http = feedparser.parse(url)
        on_disk = feedparser.parse(path.read_bytes())
        problems = []
        if over_http.bozo:
            problems.append(f"bozo {over_http.bozo_exception!r}")
        if over_http.get("status") != 200:
            problems.append(f"status {over_http.get('status')}")
        http_items = [(e.id, e.title) for e in over_http.entries]
        disk_items = [(e.id, e.title) for e in on_disk.entries]
        if http_items != disk_items:
            problems.append(f"entries differ from {path}")
        again = feedparser.parse(url, etag=over_http.get("etag"), modified=over_http.get("modified"))
        if again.get("status") != 304:
            problems.append(f"second fetch with validators gave {again.get('status')}, not 304")
        if problems:
            failures += 1
            print(f"FAIL {url}: " + "; ".join(problems))
        checked += 1
    print(f"feedparser over HTTP: {checked} feeds checked, {failures} failures")
    print(f"{checked - failures} passed, {failures} failed")
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
