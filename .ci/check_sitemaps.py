#!/usr/bin/env python3
"""Interop check for the sitemaps: the `sitemap.xml`, `news-sitemap.xml`
(following their index files when they are indexes) and `robots.txt`
feedwire wrote parse as XML with Python's own parser (xml.etree), in the
sitemaps.org and Google News namespaces, and list exactly what they should:
the full sitemap every article `feedwire check --json` read, once, each with
a W3C `<lastmod>`; the news sitemap only those articles, each with its
publication (name and language), a publication date within the news window
and its title. With BASE_URL, the daemon serves the same bytes at the
site's root, and the IndexNow key file when the config sets a key.

Usage: check_sitemaps.py SITE_DIR CHECK_JSONL [BASE_URL] [--expect-index]
(SITE_DIR holds config.toml and the feeds folder it names; --expect-index:
both sitemaps must be indexes, for a build with small sitemaps.max_urls
and news_max_urls.)
"""
import datetime
import json
import pathlib
import sys
import tomllib
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
S = "{%s}" % SITEMAP_NS
N = "{%s}" % NEWS_NS


def w3c(text: str) -> datetime.datetime:
    when = datetime.datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return when


class Site:
    def __init__(self, root: pathlib.Path):
        cfg = tomllib.loads((root / "config.toml").read_text(encoding="utf-8"))
        site = cfg.get("site", {})
        self.base = site.get("base_url", "http://127.0.0.1:8080").rstrip("/")
        self.article_url = site.get("article_url", "") or "{base_url}/articles/{id}"
        self.publication = site.get("publication_name", "") or site.get("title", "feedwire")
        self.language = site.get("language", "vi")
        self.window_hours = cfg.get("sitemaps", {}).get("news_window_hours", 48)
        self.key = cfg.get("indexnow", {}).get("key", "")
        self.feeds = root / cfg.get("paths", {}).get("feeds", "feeds")

    def link(self, id_: str) -> str:
        quoted = urllib.parse.quote(id_, safe="-._~")
        return self.article_url.replace("{base_url}", self.base).replace("{id}", quoted)

    def local(self, loc: str) -> pathlib.Path:
        if not loc.startswith(self.base + "/"):
            raise ValueError(f"{loc} is not under site.base_url {self.base}")
        return self.feeds / loc[len(self.base) + 1 :]


def urls(site: Site, path: pathlib.Path, problems: list, news: bool) -> list:
    """The <url> elements of a sitemap, or of every file its index names."""
    root = ET.parse(path).getroot()
    if root.tag == S + "sitemapindex":
        out = []
        for entry in root.findall(S + "sitemap"):
            loc = entry.findtext(S + "loc")
            try:
                w3c(entry.findtext(S + "lastmod") or "")
            except ValueError as e:
                problems.append(f"{path.name}: index entry {loc}: lastmod {e}")
            out += urls(site, site.local(loc), problems, news)
        return out
    if root.tag != S + "urlset":
        problems.append(f"{path.name}: root is {root.tag}, not {S}urlset or sitemapindex")
        return []
    if news and NEWS_NS not in path.read_text(encoding="utf-8"):
        problems.append(f"{path.name}: does not declare {NEWS_NS}")
    return root.findall(S + "url")


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--expect-index"]
    expect_index = "--expect-index" in sys.argv
    site = Site(pathlib.Path(args[0]))
    articles = [json.loads(l) for l in open(args[1], encoding="utf-8") if l.strip()]
    articles = {a["id"]: a for a in articles if a["ok"]}
    http = args[2].rstrip("/") if len(args) > 2 else None
    by_link = {site.link(id_): a for id_, a in articles.items()}
    problems = []
    if expect_index:
        for name in ("sitemap.xml", "news-sitemap.xml"):
            if ET.parse(site.feeds / name).getroot().tag != S + "sitemapindex":
                problems.append(f"{name} is not a sitemap index")

    listed = []
    for u in urls(site, site.feeds / "sitemap.xml", problems, news=False):
        loc = u.findtext(S + "loc")
        listed.append(loc)
        try:
            w3c(u.findtext(S + "lastmod") or "")
        except ValueError as e:
            problems.append(f"sitemap: {loc}: lastmod {e}")
    if sorted(listed) != sorted(by_link):
        problems.append(
            f"sitemap lists {sorted(set(listed) - set(by_link))} it should not, "
            f"misses {sorted(set(by_link) - set(listed))}, or lists one twice"
        )

    now = datetime.datetime.now(datetime.timezone.utc)
    window = datetime.timedelta(hours=site.window_hours)
    news = urls(site, site.feeds / "news-sitemap.xml", problems, news=True)
    seen = set()
    for u in news:
        loc = u.findtext(S + "loc")
        item = u.find(N + "news")
        article = by_link.get(loc)
        if article is None or loc in seen:
            problems.append(f"news sitemap: {loc} is no article, or is listed twice")
            continue
        seen.add(loc)
        if item is None:
            problems.append(f"news sitemap: {loc} has no news:news")
            continue
        name = item.findtext(f"{N}publication/{N}name")
        language = item.findtext(f"{N}publication/{N}language")
        if name != site.publication:
            problems.append(f"news sitemap: {loc}: news:name {name!r}, not {site.publication!r}")
        if not language or not language[0].isalpha():
            problems.append(f"news sitemap: {loc}: news:language {language!r}")
        if item.findtext(N + "title") != article["title"]:
            problems.append(f"news sitemap: {loc}: news:title is not the article's title")
        try:
            published = w3c(item.findtext(N + "publication_date") or "")
            # A minute of slack for the build's own clock.
            if not now - window - datetime.timedelta(minutes=1) <= published <= now + datetime.timedelta(minutes=1):
                problems.append(f"news sitemap: {loc}: published {published}, outside the window")
        except ValueError as e:
            problems.append(f"news sitemap: {loc}: publication_date {e}")

    robots = (site.feeds / "robots.txt").read_text(encoding="utf-8")
    for name in ("sitemap.xml", "news-sitemap.xml"):
        if f"Sitemap: {site.base}/{name}" not in robots.splitlines():
            problems.append(f"robots.txt does not name {site.base}/{name}")

    served = 0
    if http:
        documents = ["sitemap.xml", "news-sitemap.xml", "robots.txt"]
        if site.key:
            documents.append(f"{site.key}.txt")
        for name in documents:
            with urllib.request.urlopen(f"{http}/{name}") as r:
                body, kind = r.read(), r.headers.get("Content-Type", "")
            if body != (site.feeds / name).read_bytes():
                problems.append(f"{http}/{name}: not the bytes on disk")
            want = "application/xml" if name.endswith(".xml") else "text/plain"
            if not kind.startswith(want):
                problems.append(f"{http}/{name}: Content-Type {kind!r}, not {want}")
            served += 1

    for p in problems:
        print(f"FAIL {p}")
    print(
        f"sitemaps: {len(listed)} article pages, {len(news)} in the news sitemap, "
        f"robots.txt names both{f', {served} documents served over HTTP' if http else ''}; "
        f"{len(problems)} problem(s)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
