"""The stdlib HTTP + SSE client, without Blender: event parsing, readable errors, and a follower that
reconnects with Last-Event-ID after the connection drops (against a small stdlib server that drops it)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from blender_addon.client import EngineClient, EngineError, EngineUnreachable, EventFollower, SSEParser
from blender_addon.state import catalog_from_health
from tests.blender_addon.conftest import Engine, free_port


def parse(text: str) -> list:
    parser = SSEParser()
    events = [parser.feed(line) for line in text.split("\n")]
    return [e for e in events if e is not None], parser


def test_sse_parser_follows_the_spec():
    events, parser = parse(
        "retry: 2000\n\n"
        ": keep-alive\n\n"
        'id: 7\nevent: progress\ndata: {"step": 3}\n\n'
        'id:8\nevent:status\ndata:{"state":\ndata: "done"}\n\n'
        "data: not json\n\n"
        "id: 9\nevent: progress\n\n"  # no data: not dispatched
    )
    assert [(e.id, e.type, e.data) for e in events] == [
        (7, "progress", {"step": 3}),
        (8, "status", {"state": "done"}),  # data lines joined with a newline
        (None, "message", {"text": "not json"}),
    ]
    assert parser.retry_ms == 2000


class FakeEngine:
    """Serves one job's events in two connections: events 1-3 then a dropped connection, then (expecting
    Last-Event-ID: 3) event 4, a final status. Also answers a job request with 422 JSON and one with HTML."""

    def __init__(self) -> None:
        self.seen_last_ids: list[str | None] = []
        self.auth: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                fake.auth.append(self.headers.get("Authorization"))
                if self.path == "/v1/jobs/abc/events":
                    last = self.headers.get("Last-Event-ID")
                    fake.seen_last_ids.append(last)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    if last == "0":
                        for i in (1, 2, 3):
                            self.wfile.write(f'id: {i}\nevent: progress\ndata: {{"step": {i}}}\n\n'.encode())
                        self.wfile.write(b'id: 4\nevent: progress\ndata: {"st')  # cut mid-event
                    else:
                        self.wfile.write(
                            b': keep-alive\n\nid: 4\nevent: status\ndata: {"state": "done", "final": true}\n\n'
                        )
                    self.wfile.flush()
                    self.close_connection = True
                elif self.path == "/v1/jobs/refused":
                    self._reply(422, json.dumps({"error": "unknown word(s) 'frog'"}).encode())
                elif self.path == "/v1/jobs/html":
                    self._reply(502, b"<html>bad gateway</html>", "text/html")
                else:
                    self._reply(404, json.dumps({"error": "no job"}).encode())

            def _reply(self, code: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[FakeEngine, EngineClient]]:
    f = FakeEngine()
    (tmp_path / "token").write_text("secret\n")
    yield f, EngineClient(f.url, tmp_path / "token", timeout=5)
    f.close()


def test_follower_reconnects_with_last_event_id_and_misses_nothing(fake):
    server, client = fake
    inbox: queue.Queue = queue.Queue()
    follower = EventFollower(client, "key", "abc", inbox.put, retry_delays=(0.05,)).start()
    messages = []
    while True:
        msg = inbox.get(timeout=10)
        messages.append(msg)
        if msg[0] == "stream_ended":
            break
    follower.stop(join=2)
    events = [m[2] for m in messages if m[0] == "event"]
    assert [e.id for e in events] == [1, 2, 3, 4]  # no duplicate, no gap, the half-sent event 4 re-sent
    assert events[-1].data == {"state": "done", "final": True}
    assert [m[0] for m in messages].count("stream_lost") == 1
    assert messages[-1] == ("stream_ended", "key", "final")
    assert server.seen_last_ids == ["0", "3"]
    assert set(server.auth) == {"Bearer secret"}
    assert not follower.alive


def test_follower_stops_for_an_unknown_job(fake):
    _, client = fake
    inbox: queue.Queue = queue.Queue()
    EventFollower(client, "key", "nope", inbox.put).start()
    assert inbox.get(timeout=10) == ("stream_ended", "key", "missing")


def test_errors_are_readable(fake, tmp_path: Path):
    _, client = fake
    with pytest.raises(EngineError, match="unknown word\\(s\\) 'frog'") as e:
        client.job("refused")
    assert e.value.status == 422
    with pytest.raises(EngineError, match="failed with HTTP 502") as e:
        client.job("html")
    assert e.value.status == 502
    missing = EngineClient(client.url, tmp_path / "no_such_token")
    with pytest.raises(EngineError, match="token file .* does not exist: start the engine once"):
        missing.jobs()
    nobody = EngineClient(f"http://127.0.0.1:{free_port()}", tmp_path / "token")
    with pytest.raises(EngineUnreachable, match="no engine answers at http://127.0.0.1:"):
        nobody.health()
    with pytest.raises(EngineError, match="not an http:// address"):
        EngineClient("ftp://example.org", None)


def test_client_against_the_real_engine(engine: Engine, tmp_path: Path):
    client = EngineClient(engine.url, engine.data_dir / "token")
    h = client.health()
    assert h["status"] == "ok"
    # The add-on's menus come from this answer: every method the engine registers, in its order.
    from engine.guidance import METHODS

    catalog = catalog_from_health(h)
    assert catalog.method_names == list(METHODS) and all(label for _, label, _ in catalog.methods)
    assert 1024 in catalog.texture_sizes and [p for p, _, _ in catalog.presets] == ["fast", "quality"]
    assert isinstance(client.jobs(), list)
    with pytest.raises(EngineError, match="invalid request: steps") as e:
        client.submit({"prompt": "a red cube", "steps": 0})
    assert e.value.status == 422
    wrong = EngineClient(engine.url, tmp_path / "token")
    (tmp_path / "token").write_text("wrong")
    with pytest.raises(EngineError, match="missing or wrong bearer token") as e:
        wrong.jobs()
    assert e.value.status == 401 and str(tmp_path / "token") in str(e.value)
