#!/usr/bin/env python3
"""Lifecycle interop: kill, correct and reinstate articles of a built site
with the real CLI, rebuild, and read the feeds back with Python feedparser.

Usage: check_lifecycle.py SITE_DIR FEEDWIRE_BIN CHECK_JSONL
SITE_DIR holds config.toml, articles/ and the built feeds/ (a copy: it is
changed). CHECK_JSONL is `feedwire check --json` over its articles.
"""
import json
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import feedparser

AT = "http://purl.org/atompub/tombstones/1.0"


def run(bin_, site, *args):
    out = subprocess.run([bin_, *args], cwd=site, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"feedwire {' '.join(args)} failed: {out.stderr}")
    return out.stdout


def main() -> int:
    site, bin_ = pathlib.Path(sys.argv[1]), str(pathlib.Path(sys.argv[2]).resolve())
    articles = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8") if l.strip()]
    articles = [a for a in articles if a["ok"]]
    killed, corrected = articles[0], articles[1]
    failures = []

    run(bin_, site, "kill", killed["id"], "--reason", "Số liệu chưa được kiểm chứng")
    run(bin_, site, "correct", corrected["id"], "--note", "Sửa tên nhân vật ở đoạn hai.")
    run(bin_, site, "build")
    atom_path = site / "feeds" / "atom.xml"
    parsed = feedparser.parse(atom_path.read_bytes())
    if parsed.bozo:
        failures.append(f"atom.xml with a tombstone: bozo {parsed.bozo_exception!r}")
    titles = [e.title for e in parsed.entries]
    if killed["title"] in titles:
        failures.append("the killed article is still in atom.xml")
    stones = ET.parse(atom_path).getroot().findall(f"{{{AT}}}deleted-entry")
    if len(stones) != 1 or not stones[0].get("ref", "").endswith(killed["id"]):
        failures.append(f"atom.xml: expected one at:deleted-entry for {killed['id']}, got {len(stones)}")
    elif stones[0].findtext(f"{{{AT}}}comment") != "Số liệu chưa được kiểm chứng":
        failures.append("at:comment does not carry the reason")
    entry = next((e for e in parsed.entries if e.title == corrected["title"]), None)
    if entry is None or "Sửa tên nhân vật" not in entry.content[0].value:
        failures.append("the correction note is not at the end of the corrected entry")
    for name in ("rss.xml",):
        p = feedparser.parse((site / "feeds" / name).read_bytes())
        if p.bozo or killed["title"] in [e.title for e in p.entries]:
            failures.append(f"{name}: bozo or still has the killed article")

    run(bin_, site, "reinstate", killed["id"])
    run(bin_, site, "build")
    parsed = feedparser.parse(atom_path.read_bytes())
    if killed["title"] not in [e.title for e in parsed.entries]:
        failures.append("the reinstated article is not back")
    if ET.parse(atom_path).getroot().findall(f"{{{AT}}}deleted-entry"):
        failures.append("the tombstone stayed after reinstate")

    for f in failures:
        print("FAIL", f)
    print(f"lifecycle through feedparser {feedparser.__version__}: {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
