"""``anypool crawl`` against a real HTTP server on 127.0.0.1 (tests/_httpserver.py)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from anypool._apps import _crawl
from anypool._apps._crawl import CrawlOptions, Frontier, describe_error, parse_retry_after
from anypool._apps._urls import BadURL, check_url, host_of, links_in, url_key
from anypool._cli import main
from anypool._progress import NullProgress

from ._httpserver import Server, html

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["anypool", "httpx"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The test server; each test that uses it runs once per ``--transport``."""
    monkeypatch.setenv(TRANSPORT_VARIABLE, request.param)
    with Server() as running:
        yield running


#: Set by the ``server`` fixture: the ``--transport`` that crawl() passes.
TRANSPORT_VARIABLE = "ANYPOOL_TEST_CRAWL_TRANSPORT"


def crawl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], urls: list[str], *options: str
) -> tuple[int, list[dict[str, object]], str]:
    """Run ``anypool crawl`` on ``urls``; its exit status, JSON records and stderr."""
    source = tmp_path / "urls.txt"
    source.write_text("\n".join(urls) + "\n")
    out = tmp_path / "results.jsonl"
    transport = os.environ.get(TRANSPORT_VARIABLE, "anypool")
    status = main(
        [
            *("crawl", str(source), "--out", str(out), "--backoff", "0.01"),
            *("--transport", transport, *options),
        ]
    )
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return status, records, capsys.readouterr().err


def by_url(records: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {r["url"]: r for r in records}


# ── one URL at a time: what a line says ─────────────────────────────────────────


def test_each_url_gets_one_line_with_every_field(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [server.url(p) for p in ("/page/1", "/text/2", "/status/404", "/redirect?to=/page/3")]
    status, records, err = crawl(tmp_path, capsys, urls)
    assert status == 0
    assert len(records) == 4
    lines = by_url(records)
    page = lines[urls[0]]
    assert set(page) == {
        "url",
        "final_url",
        "status",
        "bytes",
        "content_type",
        "elapsed",
        "error",
        "attempts",
    }
    assert page["status"] == 200 and page["error"] is None and page["attempts"] == 1
    assert page["content_type"] == "text/html; charset=utf-8"
    assert page["bytes"] == len(html("page 1", ["/page/0"]))  # what the server sent
    assert isinstance(page["elapsed"], float) and page["elapsed"] > 0
    assert lines[urls[1]]["bytes"] == len("text 2\n")
    assert lines[urls[2]]["status"] == 404
    redirected = lines[urls[3]]
    assert redirected["status"] == 200 and redirected["final_url"] == server.url("/page/3")
    assert "crawl: 4 URLs in" in err
    assert "3 ok, 1 failed" in err
    assert "by status: 200 x 3, 404 x 1" in err


def test_a_500_is_retried_until_it_succeeds(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.url("/flaky/a?fails=2")
    _, records, _ = crawl(tmp_path, capsys, [url], "--retries", "2")
    assert records[0]["status"] == 200 and records[0]["attempts"] == 3
    assert server.site.hits["127.0.0.1/flaky/a"] == 3


def test_retries_run_out_and_the_last_status_is_kept(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.url("/flaky/b?fails=5&code=502")
    _, records, err = crawl(tmp_path, capsys, [url], "--retries", "1")
    assert records[0]["status"] == 502 and records[0]["attempts"] == 2
    assert records[0]["error"] is None  # a response came: the status says what went wrong
    assert "0 ok, 1 failed" in err


def test_a_4xx_is_not_retried(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, records, _ = crawl(tmp_path, capsys, [server.url("/status/404")], "--retries", "3")
    assert records[0]["attempts"] == 1
    assert server.site.hits["127.0.0.1/status/404"] == 1


def test_retry_after_on_429_is_waited_out(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, records, _ = crawl(tmp_path, capsys, [server.url("/busy/k?retry_after=1")])
    assert records[0]["status"] == 200 and records[0]["attempts"] == 2
    first, second = server.site.hit_times["127.0.0.1/busy/k"]
    assert second - first >= 0.95  # Retry-After: 1, not the 0.01 s back-off


def test_retry_after_on_503_is_waited_out(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, records, _ = crawl(tmp_path, capsys, [server.url("/busy/s?retry_after=0&code=503")])
    assert records[0]["status"] == 200 and records[0]["attempts"] == 2


def test_a_retry_after_too_long_is_not_waited_for(
    server: Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_crawl, "MAX_RETRY_AFTER", 0.5)
    start = time.monotonic()
    _, records, _ = crawl(tmp_path, capsys, [server.url("/busy/long?retry_after=30")])
    assert records[0]["status"] == 429 and records[0]["attempts"] == 1
    assert time.monotonic() - start < 20  # deadlock guard only: it did not wait 30 s


def test_a_hanging_server_times_out_and_others_still_finish(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [server.url("/hang"), server.url("/page/1")]
    status, records, err = crawl(tmp_path, capsys, urls, "--timeout", "0.3", "--retries", "1")
    assert status == 0
    hang = by_url(records)[urls[0]]
    assert hang["status"] is None
    assert hang["error"] == "timeout: no complete response within 0.3 s"
    assert hang["attempts"] == 2
    assert 0.6 <= float(hang["elapsed"]) < 10  # type: ignore[arg-type]
    assert by_url(records)[urls[1]]["status"] == 200
    assert "errors: timeout x 1" in err


def test_nothing_listening_is_a_connect_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _, records, err = crawl(tmp_path, capsys, [f"http://127.0.0.1:{port}/"], "--retries", "1")
    assert str(records[0]["error"]).startswith("connect: ")
    assert records[0]["attempts"] == 2
    assert "errors: connect x 1" in err


def test_a_redirect_loop_is_an_error_without_retries(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, records, _ = crawl(tmp_path, capsys, [server.url("/loop")])
    assert str(records[0]["error"]).startswith("redirects: ")
    assert records[0]["attempts"] == 1


# ── many at once: limits ────────────────────────────────────────────────────────


@pytest.mark.parametrize(("concurrency", "per_host"), [(20, 3), (5, 50)])
def test_per_host_and_total_limits_hold(
    server: Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    concurrency: int,
    per_host: int,
) -> None:
    urls = [
        server.url(f"/page/{i}?delay=0.05", host=host)
        for i in range(30)
        for host in ("127.0.0.1", "localhost")
    ]
    options = ("--concurrency", str(concurrency), "--per-host", str(per_host))
    _, records, _ = crawl(tmp_path, capsys, urls, *options)
    assert len(records) == 60 and all(r["status"] == 200 for r in records)
    seen = server.site.max_in_flight
    for host in ("127.0.0.1", "localhost"):
        assert 2 <= seen[host] <= min(per_host, concurrency), seen
    assert 2 <= server.site.max_total_in_flight <= concurrency


def test_over_a_hundred_connections_at_once(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = [server.url(f"/page/{i}?delay=0.2") for i in range(150)]
    options = ("--concurrency", "150", "--per-host", "150")
    _, records, _ = crawl(tmp_path, capsys, urls, *options)
    assert sum(r["status"] == 200 for r in records) == 150
    assert server.site.max_total_in_flight > 100


# ── links ───────────────────────────────────────────────────────────────────────


def fetched_paths(records: list[dict[str, object]]) -> set[str]:
    return {str(r["url"]).split(":", 2)[2].split("/", 1)[1] for r in records}


def test_depth_follows_links_once_each(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, records, _ = crawl(tmp_path, capsys, [server.url("/site/")], "--depth", "2")
    urls = [r["url"] for r in records]
    assert len(urls) == len(set(urls))  # /site/, /site/a and /site/b are linked twice
    assert set(urls) == {
        server.url("/site/"),
        server.url("/site/a"),
        server.url("/site/b"),
        server.url("/site/a/1"),
        server.url("/site/a/2"),
        server.url("/site/b/1"),
        server.url("/site/elsewhere", host="localhost"),
    }


def test_depth_zero_fetches_only_the_input(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, records, _ = crawl(tmp_path, capsys, [server.url("/site/")])
    assert [r["url"] for r in records] == [server.url("/site/")]


def test_same_host_keeps_to_the_host_it_started_on(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ("--depth", "5", "--same-host")
    _, records, _ = crawl(tmp_path, capsys, [server.url("/site/")], *options)
    assert {host_of(str(r["url"])) for r in records} == {f"127.0.0.1:{server.port}"}
    assert server.url("/site/a/deeper") in {r["url"] for r in records}
    assert len(records) == 7


def test_links_are_resolved_deduplicated_and_filtered() -> None:
    html = """<html><head><base href="/docs/"></head><body>
      <a href="intro">x</a> <a href="intro#part-2">same page</a>
      <a href="../up?q=1">up</a> <a href="https://Other.example/">other</a>
      <a href="mailto:me@example.com">mail</a> <a href="javascript:void(0)">js</a>
      <area href="map"> <a>no href</a> <a href="ftp://files.example/">ftp</a>
      <a href="http://[bad">broken</a></body>"""
    assert links_in(html, "http://site.example/start/page") == [
        "http://site.example/docs/intro",
        "http://site.example/up?q=1",
        "https://Other.example/",
        "http://site.example/docs/map",
    ]


def test_broken_html_gives_the_links_it_has() -> None:
    page = '<a href="/a">a</a><a href="/b"<<<><![CDATA[ <!-- never closed <a href="/c">'
    assert links_in(page, "http://h/") == ["http://h/a", "http://h/b"]


# ── input, output, resuming ─────────────────────────────────────────────────────


def test_bad_input_lines_are_reported_and_skipped(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        "# a comment",
        server.url("/page/1"),
        "ftp://files.example/x",
        "not a url",
        "",
        "http://",
        "http://host:port/",
        server.url("/page/2"),
        server.url("/page/1#same-page"),
    ]
    status, records, err = crawl(tmp_path, capsys, lines)
    assert status == 0
    assert {r["url"] for r in records} == {server.url("/page/1"), server.url("/page/2")}
    assert "urls.txt:3: skipped 'ftp://files.example/x': unsupported scheme 'ftp'" in err
    assert "urls.txt:4: skipped 'not a url': not a URL" in err
    assert "urls.txt:6: skipped 'http://': not a URL" in err
    assert "urls.txt:7: skipped 'http://host:port/': not a URL (Port could not be cast" in err
    assert "skipped: 1 duplicate(s), 4 bad input line(s)" in err


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("example.com/page", "not a URL"),
        ("file:///etc/passwd", "unsupported scheme 'file'"),
        ("https://:80/", "no host name"),
        ("http://h:99999/", "not a URL"),
    ],
)
def test_check_url_says_why(text: str, why: str) -> None:
    with pytest.raises(BadURL, match=why):
        check_url(text)


def test_url_keys_name_the_same_page_alike() -> None:
    assert url_key("HTTP://Example.COM:80") == url_key("http://example.com/")
    assert url_key("https://example.com:443/a?x=1") == "https://example.com/a?x=1"
    assert url_key("http://example.com:8080/a") != url_key("http://example.com/a")


def test_urls_from_standard_input(
    server: Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(server.url("/page/7") + "\nnope\n"))
    out = tmp_path / "out.jsonl"
    assert main(["crawl", "-", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["status"] == 200
    assert "<stdin>:2: skipped 'nope'" in capsys.readouterr().err


def test_a_second_run_skips_what_the_first_wrote(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = [server.url(f"/page/{i}") for i in range(5)]
    crawl(tmp_path, capsys, first)
    more = [*first, server.url("/page/5"), server.url("/page/6")]
    _, records, err = crawl(tmp_path, capsys, more)
    assert len(records) == 7
    assert sorted(r["url"] for r in records) == sorted(more)
    assert all(server.site.hits[f"127.0.0.1/page/{i}"] == 1 for i in range(7))
    assert "crawl: 2 URLs in" in err
    assert "5 already in" in err


def test_a_line_cut_short_by_a_killed_run_is_ignored_and_mended(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, out = tmp_path / "urls.txt", tmp_path / "results.jsonl"
    source.write_text(server.url("/page/1") + "\n" + server.url("/page/2") + "\n")
    done = {"url": server.url("/page/1"), "status": 200}
    out.write_text(json.dumps(done) + '\n{"url": "' + server.url("/page/2")[:12])
    assert main(["crawl", str(source), "--out", str(out)]) == 0
    assert "1 unreadable line(s) ignored" in capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert len(lines) == 3  # the cut line, ended; then page 2 on a line of its own
    assert json.loads(lines[2])["url"] == server.url("/page/2")
    assert server.site.hits["127.0.0.1/page/1"] == 0


def test_input_that_cannot_be_read_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out.jsonl")
    assert main(["crawl", str(tmp_path / "missing.txt"), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing.txt" in err and err.count("\n") == 1


def test_an_out_path_in_a_missing_directory_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "urls.txt").write_text("http://127.0.0.1/\n")
    out = str(tmp_path / "nowhere" / "out.jsonl")
    assert main(["crawl", str(tmp_path / "urls.txt"), "--out", out]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value"),
    [("--concurrency", "0"), ("--timeout", "-1"), ("--depth", "x"), ("--transport", "h2")],
)
def test_bad_options_are_usage_errors(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["crawl", "urls.txt", "--out", "o.jsonl", option, value])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


def test_progress_bar_can_be_asked_for(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, records, err = crawl(tmp_path, capsys, [server.url("/page/1")], "--progress")
    assert status == 0 and len(records) == 1
    assert "crawl" in err


def test_without_httpx_it_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    assert main(["crawl", "urls.txt", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: anypool crawl needs httpx, which is not installed: pip install 'anypool[apps]'\n"
    )


def test_help_works_without_the_apps_extra() -> None:
    code = (
        "import sys; sys.modules['httpx'] = sys.modules['PIL'] = None\n"
        "from anypool._cli import main\n"
        "main(['--help'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "crawl" in proc.stdout and "thumbs" in proc.stdout


def _wait_for_lines(out: Path, count: int, proc: subprocess.Popen[str]) -> None:
    """Until ``out`` has ``count`` lines (the fast pages of a crawl running in ``proc``)."""
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().count("\n") >= count):
        assert time.monotonic() < deadline, "the fast pages were never written"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)


def test_ctrl_c_writes_what_is_done_and_exits_cleanly(server: Server, tmp_path: Path) -> None:
    urls = [server.url(f"/page/{i}") for i in range(5)] + [server.url("/hang")] * 1
    urls += [server.url(f"/page/{i}?delay=30") for i in range(5, 8)]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        # --concurrency 4: the four slow fetches fill every slot when Ctrl-C comes
        [
            sys.executable,
            "-m",
            "anypool",
            "crawl",
            "urls.txt",
            "--out",
            str(out),
            "--concurrency",
            "4",
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_lines(out, 5, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted: 4 fetch(es) stopped and 0 URL(s) not started" in err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["url"] for r in lines) == sorted(urls[:5])


def test_a_second_ctrl_c_stops_at_once_without_a_traceback(server: Server, tmp_path: Path) -> None:
    urls = [server.url(f"/page/{i}") for i in range(5)]
    urls += [server.url(f"/page/{i}?delay=30") for i in range(5, 9)]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "anypool", "crawl", "urls.txt", "--out", str(out)]
    proc = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_lines(out, 5, proc)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    # 130 from the CLI, or killed by the SIGINT itself when the second one lands as the
    # interpreter exits (the shell shows both as 130)
    assert proc.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err
    assert took < 10  # not the 30 s the slow pages take
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["url"] for r in lines) == sorted(urls[:5])


# ── the pieces ──────────────────────────────────────────────────────────────────


def test_frontier_takes_hosts_in_turn_within_their_limit() -> None:
    frontier = Frontier(per_host=2)
    for i in range(3):
        frontier.push(f"http://a/{i}", 0)
    frontier.push("http://b/0", 1)
    taken = [frontier.pop() for _ in range(4)]
    assert taken == [("http://a/0", 0, "a"), ("http://b/0", 1, "b"), ("http://a/1", 0, "a"), None]
    frontier.done("a")
    assert frontier.pop() == ("http://a/2", 0, "a")
    assert frontier.pop() is None and frontier.waiting == 0


def test_retry_after_is_read_as_seconds_or_a_date() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 100))
    wait = parse_retry_after(later)
    assert wait is not None and 90 < wait <= 100
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-5") is None


def test_errors_are_described_by_kind() -> None:
    import httpx

    assert describe_error(TimeoutError(), 2.5) == "timeout: no complete response within 2.5 s"
    assert describe_error(httpx.ConnectError("refused"), 1) == "connect: refused"
    assert describe_error(httpx.RemoteProtocolError("cut"), 1) == "protocol: cut"
    assert describe_error(httpx.UnsupportedProtocol("ftp"), 1) == "UnsupportedProtocol: ftp"


def test_a_bug_in_one_fetch_is_recorded_and_the_crawl_goes_on(
    server: Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_fetch = _crawl._Session._fetch

    async def poisoned(self: object, url: str, client: object, want_html: bool) -> object:
        if url.endswith("/page/2"):
            raise RuntimeError("boom")
        return await real_fetch(self, url, client, want_html)  # type: ignore[arg-type]

    monkeypatch.setattr(_crawl._Session, "_fetch", poisoned)
    status, records, _ = crawl(tmp_path, capsys, [server.url(f"/page/{i}") for i in (1, 2, 3)])
    assert status == 0
    lines = by_url(records)
    assert lines[server.url("/page/2")]["error"] == "internal: RuntimeError: boom"
    assert lines[server.url("/page/1")]["status"] == lines[server.url("/page/3")]["status"] == 200


def test_the_light_transport_is_used_unless_a_proxy_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from anypool._apps._http import LightTransport

    def opened(transport: str) -> tuple[int, int, bool]:
        async def go() -> tuple[int, int, bool]:
            session = await _crawl._Session.open(CrawlOptions(concurrency=10, transport=transport))
            try:
                light = isinstance(session.clients[0]._transport, LightTransport)
                return len(session.clients), session.lane_share, light
            finally:
                await session.close()

        return asyncio.run(go())

    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name)
    assert opened("anypool") == (1, 0, True)
    assert opened("httpx") == (3, _crawl.LANE_SHARE, False)  # 10 fetches, 4 per client
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert opened("anypool") == (3, _crawl.LANE_SHARE, False)


class _FailingFile(io.StringIO):
    """An output file that fails on its third line, as a full disk would."""

    def write(self, text: str) -> int:
        if self.getvalue().count("\n") >= 2:
            raise OSError(28, "No space left on device")
        return super().write(text)


def test_an_output_file_that_fails_stops_the_crawl_with_its_error(server: Server) -> None:
    out = _FailingFile()
    urls = [server.url(f"/page/{i}") for i in range(20)]
    options = CrawlOptions(concurrency=4, per_host=4)
    with pytest.raises(OSError, match="No space left"):
        _crawl.crawl(urls, out, options, NullProgress())
    assert out.getvalue().count("\n") == 2  # what was written before stays written


def test_an_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="transport='h2': expected one of anypool, httpx"):
        CrawlOptions(transport="h2")
