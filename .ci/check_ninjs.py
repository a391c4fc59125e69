#!/usr/bin/env python3
"""Interop check for IPTC ninjs: every article's document feedwire wrote is
valid against the IPTC's ninjs 3.1 JSON Schema by Python's `jsonschema`
(formats checked), says what `feedwire check --json` read from the article,
and, with BASE_URL, is served at /ninjs/<id>.json with the same bytes and a
304 on revalidation.

Usage: check_ninjs.py FEEDS_DIR CHECK_JSONL [BASE_URL]
"""
import json
import pathlib
import sys
import urllib.error
import urllib.parse
import urllib.request

import jsonschema

SCHEMA = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/ninjs/ninjs-schema_3.1.json"


def get(url: str, headers: dict) -> tuple:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def main() -> int:
    feeds = pathlib.Path(sys.argv[1])
    articles = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
    articles = {a["id"]: a for a in articles if a["ok"]}
    base = sys.argv[3].rstrip("/") if len(sys.argv) > 3 else None
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    failures = checked = 0
    for id_, article in sorted(articles.items()):
        name = urllib.parse.quote(id_, safe="-._~:") + ".json"
        path = feeds / "ninjs" / name
        problems = []
        if not path.exists():
            problems.append(f"no {path}")
        else:
            body = path.read_bytes()
            doc = json.loads(body)
            problems += [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
            if doc.get("pubStatus") != "usable":
                problems.append(f"pubStatus {doc.get('pubStatus')!r}")
            if doc.get("headlines", [{}])[0].get("value") != article["title"]:
                problems.append("headline is not the title")
            if article.get("lead") and doc.get("descriptions", [{}])[0].get("value") != article["lead"]:
                problems.append("description is not the lead")
            if article.get("dateline") and doc.get("located") != article["dateline"]:
                problems.append("located is not the dateline")
            if article["authors"] and doc.get("by") != ", ".join(article["authors"]):
                problems.append("by is not the authors")
            if base:
                url = f"{base}/ninjs/{name}"
                status, headers, served = get(url, {})
                if status != 200 or served != body:
                    problems.append(f"{url}: status {status}, {'same' if served == body else 'other'} bytes")
                etag = headers.get("ETag") or headers.get("etag")
                again, _, _ = get(url, {"If-None-Match": etag or ""})
                if again != 304:
                    problems.append(f"{url}: revalidation gave {again}, not 304")
        if problems:
            failures += 1
            print(f"FAIL {id_}: " + "; ".join(problems))
        checked += 1
    where = " and over HTTP" if base else ""
    print(f"ninjs (Python jsonschema, IPTC 3.1 schema){where}: {checked} documents checked, {failures} failures")
    print(f"{checked - failures} passed, {failures} failed")
    return 1 if failures or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
