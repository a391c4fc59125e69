#!/usr/bin/env python3
"""Interop check: every feed feedwire wrote, read back by Python feedparser.

Usage: check_feeds.py FEEDS_DIR CHECK_JSONL [--expect-archives]
CHECK_JSONL is the output of `feedwire check --json` over the articles that
were built: it says which titles each feed must carry.

Each feed is read as RFC 5005 archived feeds are meant to be read: from the
live document, following `prev-archive` (Atom, RSS) or `next_url` (JSON Feed)
to the oldest archive page. Every document must parse without a feedparser
complaint; every archive page must carry `fh:archive` in the feed head, link
back to the live document (`current`) and to itself (`self`); the chain must
not loop; and together the documents must hold each of the feed's articles
exactly once. With --expect-archives, at least one feed must have archive
pages (the build used a small feeds.max_items).
"""
import json
import pathlib
import sys
import unicodedata
import xml.etree.ElementTree as ET

import feedparser

HISTORY_NS = "http://purl.org/syndication/history/1.0"
MAX_CHAIN = 1000


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


def local_path(feeds: pathlib.Path, url: str) -> pathlib.Path:
    """The file a published URL names: everything after `/feeds/`."""
    marker = "/feeds/"
    if marker not in url:
        raise ValueError(f"{url} is not a feeds URL")
    return feeds / url.split(marker, 1)[1]


def has_archive_mark(data: bytes) -> bool:
    """`fh:archive` (namespace-checked) as a child of the feed head."""
    root = ET.fromstring(data)
    head = root.find("channel") if root.tag == "rss" else root
    return head is not None and head.find(f"{{{HISTORY_NS}}}archive") is not None


def rel_link(parsed, rel: str):
    hrefs = [l.get("href") for l in parsed.feed.get("links", []) if l.get("rel") == rel]
    if len(hrefs) > 1:
        raise ValueError(f"{len(hrefs)} links with rel={rel}")
    return hrefs[0] if hrefs else None


def walk(feeds: pathlib.Path, folder: str, name: str, problems: list):
    """Follow one feed's chain in one format; (titles, ids, archive pages)."""
    live = feeds / folder / name
    path, live_url = live, None
    titles, ids, pages, seen = [], [], 0, set()
    while path is not None:
        if path in seen or len(seen) >= MAX_CHAIN:
            problems.append(f"the chain loops or runs past {MAX_CHAIN} documents at {path}")
            break
        seen.add(path)
        is_page = path != live
        data = path.read_bytes()
        nxt = None
        if name == "feed.json":
            doc = json.loads(data.decode("utf-8"))
            if doc.get("version") != "https://jsonfeed.org/version/1.1":
                problems.append(f"{path}: not JSON Feed 1.1")
            if live_url is None:
                live_url = doc.get("feed_url")
            elif doc.get("feed_url") != live_url:
                problems.append(f"{path}: feed_url {doc.get('feed_url')} is not the live feed's {live_url}")
            for item in doc["items"]:
                titles.append(item["title"])
                ids.append(item["id"])
            nxt = doc.get("next_url")
        else:
            parsed = feedparser.parse(data)
            if parsed.bozo:
                problems.append(f"{path}: bozo {parsed.bozo_exception!r}")
                break
            for e in parsed.entries:
                if not e.get("id") or not e.get("published_parsed") or not e.get("link"):
                    problems.append(f"{path}: entry {e.get('title')!r} lacks id, date or link")
                titles.append(e.title)
                ids.append(e.id)
            self_url = rel_link(parsed, "self")
            if live_url is None:
                live_url = self_url
            mark = has_archive_mark(data)
            if is_page:
                if not mark:
                    problems.append(f"{path}: an archive page without fh:archive")
                if rel_link(parsed, "current") != live_url:
                    problems.append(f"{path}: rel=current is not {live_url}")
                if self_url is None or local_path(feeds, self_url) != path:
                    problems.append(f"{path}: rel=self {self_url} does not name this page")
            elif mark:
                problems.append(f"{path}: the live feed is marked fh:archive")
            nxt = rel_link(parsed, "prev-archive")
        if is_page:
            pages += 1
        path = local_path(feeds, nxt) if nxt else None
    return titles, ids, pages


def main() -> int:
    feeds = pathlib.Path(sys.argv[1])
    articles = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
    expect_archives = "--expect-archives" in sys.argv[3:]
    articles = [a for a in articles if a["ok"]]
    want = {"": sorted(a["title"] for a in articles)}
    for a in articles:
        for c in a["categories"]:
            want.setdefault(slug(c), []).append(a["title"])
    failures = 0
    checked = 0
    pages_seen = 0
    for folder, titles in sorted(want.items()):
        for name in ("rss.xml", "atom.xml", "feed.json"):
            problems = []
            got, ids, pages = walk(feeds, folder, name, problems)
            pages_seen += pages
            if len(set(ids)) != len(ids):
                problems.append(f"an entry appears more than once along the chain: {sorted(ids)}")
            if sorted(got) != sorted(titles):
                problems.append(f"titles differ\n  got  {sorted(got)}\n  want {sorted(titles)}")
            for p in problems:
                print(f"FAIL {feeds / folder / name}: {p}")
            failures += bool(problems)
            checked += 1
    if expect_archives and pages_seen == 0:
        print("FAIL no feed has archive pages, but the build was meant to archive")
        failures += 1
    print(f"feedparser {feedparser.__version__}: {checked} feeds checked "
          f"({pages_seen} archive pages followed), {failures} failures")
    print(f"{checked - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
