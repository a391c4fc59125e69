#!/usr/bin/env python3
"""Interop check: every feed feedwire wrote, read back by Python feedparser.

Usage: check_feeds.py FEEDS_DIR CHECK_JSONL
CHECK_JSONL is the output of `feedwire check --json` over the articles that
were built: it says which titles each feed must carry.
"""
import json
import pathlib
import sys
import unicodedata

import feedparser


def slug(name: str) -> str:
    # Mirror of feedwire's slug rule for the names in this corpus.
    s = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    s = "".join(c for c in s if unicodedata.category(c) != "Mn").lower()
    out, dash = [], False
    for c in s:
        if c.isascii() and c.isalnum():
            out.append(c)
            dash = False
        elif out and not dash:
            out.append("-")
            dash = True
    return "".join(out).strip("-")


def main() -> int:
    feeds = pathlib.Path(sys.argv[1])
    articles = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
    articles = [a for a in articles if a["ok"]]
    want = {"": sorted(a["title"] for a in articles)}
    for a in articles:
        for c in a["categories"]:
            want.setdefault(slug(c), []).append(a["title"])
    failures = 0
    checked = 0
    for folder, titles in sorted(want.items()):
        for name in ("rss.xml", "atom.xml", "feed.json"):
            path = feeds / folder / name
            if name == "feed.json":
                doc = json.loads(path.read_text(encoding="utf-8"))
                assert doc["version"] == "https://jsonfeed.org/version/1.1", path
                got = sorted(i["title"] for i in doc["items"])
            else:
                parsed = feedparser.parse(path.read_bytes())
                if parsed.bozo:
                    print(f"FAIL {path}: bozo {parsed.bozo_exception!r}")
                    failures += 1
                    continue
                got = sorted(e.title for e in parsed.entries)
                for e in parsed.entries:
                    if not e.get("id") or not e.get("published_parsed") or not e.get("link"):
                        print(f"FAIL {path}: entry {e.get('title')!r} lacks id, date or link")
                        failures += 1
            if got != sorted(titles):
                print(f"FAIL {path}: titles differ\n  got  {got}\n  want {sorted(titles)}")
                failures += 1
            checked += 1
    print(f"feedparser {feedparser.__version__}: {checked} feeds checked, {failures} failures")
    print(f"{checked - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
