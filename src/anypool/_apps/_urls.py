"""URLs for ``anypool crawl``: checking input lines, a canonical key for de-duplication,
and the links of an HTML page (stdlib ``html.parser``)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

__all__ = ["BadURL", "check_url", "host_of", "key_and_host", "links_in", "url_key"]

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Schemes of links that are not web pages; named as such even without "//".
OTHER_SCHEMES = ("mailto", "javascript", "data", "tel", "file", "ftp", "about")


class BadURL(ValueError):
    """An input line that cannot be crawled; the message says why."""


def check_url(text: str) -> str:
    """``text`` as a URL to fetch (fragment dropped), or :class:`BadURL` saying why not."""
    url = urldefrag(text.strip())[0]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise BadURL(f"not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        if "://" in url or scheme in OTHER_SCHEMES:
            raise BadURL(f"unsupported scheme {parts.scheme!r} (only http and https)")
        raise BadURL("not a URL (expected http://host/... or https://host/...)")
    if not parts.hostname:
        raise BadURL("not a URL (no host name)")
    return url


def url_key(url: str) -> str:
    """The same string for URLs that name the same page: scheme and host in lower case,
    the default port and the fragment dropped, an empty path as ``/``."""
    return key_and_host(url)[0]


def host_of(url: str) -> str:
    """``host`` or ``host:port`` (a port other than the scheme's default), in lower case:
    what the per-host limit counts."""
    return key_and_host(url)[1]


def key_and_host(url: str) -> tuple[str, str]:
    """:func:`url_key` and :func:`host_of` at once (one parse: the crawl does this for
    every URL it queues)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6
    port = parts.port
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, "")), host


class _LinkParser(HTMLParser):
    """Collects ``<a href>`` and ``<area href>`` targets, honouring ``<base href>``."""

    def __init__(self, base: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = base
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if not href:
            return
        if tag == "base":
            self.base = urljoin(self.base, href.strip())
        elif tag in ("a", "area"):
            self.hrefs.append(urljoin(self.base, href.strip()))


def links_in(html: str, page_url: str) -> list[str]:
    """The http(s) links of an HTML page as absolute URLs without fragments, in page
    order, each once. Malformed HTML gives what could be read, never an error."""
    parser = _LinkParser(page_url)
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):
        pass  # html.parser gives up on some broken markup: keep the links found so far
    seen: dict[str, None] = {}
    for href in parser.hrefs:
        try:
            url = check_url(href)
        except BadURL:
            continue  # mailto:, javascript:, ftp:, nonsense
        seen.setdefault(url, None)
    return list(seen)
