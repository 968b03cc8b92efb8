"""Progress goes to stderr only on a terminal, and reports pages and objects as they arrive."""

from __future__ import annotations

import io

import httpx

from syncctl.source.graph import GraphClient, Request
from syncctl.source.progress import TerminalProgress, terminal_progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_when_not_a_terminal() -> None:
    assert terminal_progress(io.StringIO()) is None


def test_terminal_progress_overwrites_one_line_and_clears_it() -> None:
    stream = _Tty()
    progress = terminal_progress(stream)
    assert isinstance(progress, TerminalProgress)
    progress(pages=1, objects=999, current="/groups/x/transitiveMembers")
    progress(pages=2, objects=1500, current="/groups/x")
    progress.finish()
    text = stream.getvalue()
    assert "\n" not in text
    assert "reading Entra: 2 pages, 1500 objects" in text
    assert text.endswith("\r")


def test_graph_client_reports_each_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "skiptoken" in str(request.url):
            return httpx.Response(200, json={"value": [{"id": "b"}]})
        return httpx.Response(
            200,
            json={"value": [{"id": "a"}], "@odata.nextLink": "https://g.test/v1.0/u?$skiptoken=1"},
        )

    class Tokens:
        def token(self) -> str:
            return "t"

        def refresh(self) -> str:
            return "t"

    calls: list[tuple[int, int, str]] = []

    def progress(*, pages: int, objects: int, current: str) -> None:
        calls.append((pages, objects, current))

    client = GraphClient(
        httpx.Client(transport=httpx.MockTransport(handler)),
        "https://g.test/v1.0",
        Tokens(),
        progress=progress,
    )
    client.get_all(Request("/u"))
    assert calls == [(1, 1, "/u"), (2, 2, "/u")]
