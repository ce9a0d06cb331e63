"""The agent's HTTP endpoint as a component: what a client (or an attacker) can take from it.

Real sockets on loopback, the endpoint in this process (kachecks.agent.endpoint), a
route standing in for /metrics. The agent-level attacks (a slow-loris under a
1,024-descriptor limit, scrapers in a loop) are in test_attacks.py.
"""

import random
import socket
import subprocess
import threading
import time

import pytest

from kachecks.agent import endpoint, metrics, snapshot, stats
from kachecks.agent.config import parse
from kachecks.agent.schedule import Schedule
from kachecks.checks.result import Result


class Lines(list):
    def __call__(self, message, priority=6):
        self.append(message)


@pytest.fixture
def serve():
    made = []

    def serve(routes=None, **kw):
        log = Lines()
        server = endpoint.Endpoint(("127.0.0.1", 0), routes or {"/metrics": lambda: (
            "text/plain", b"kachecks_check_up 1\n")}, log, **kw)
        made.append(server)
        server.port = server._listener.getsockname()[1]
        server.lines = log
        return server

    yield serve
    for server in made:
        server.close()


def get(port, path="/metrics", method="GET", timeout=5):
    """(status line, headers dict, body) of one request."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body


def closed_within(sock, seconds):
    """Seconds until the peer closed ``sock`` (EOF or reset), or None if it stayed open."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def test_a_response_has_no_server_banner_and_closes_the_connection(serve):
    server = serve()
    status, headers, body = get(server.port)
    assert status == "HTTP/1.1 200 OK"
    assert body == b"kachecks_check_up 1\n"
    assert "Server" not in headers and "Date" not in headers
    assert headers == {"Content-Type": "text/plain", "Content-Length": str(len(body)),
                       "Connection": "close"}
    assert get(server.port, method="HEAD")[2] == b""
    assert get(server.port, "/other")[0] == "HTTP/1.1 404 Not Found"
    assert get(server.port, method="POST")[0] == "HTTP/1.1 405 Method Not Allowed"


def test_the_connection_after_the_limit_is_dropped_at_once_and_the_held_ones_expire(serve):
    server = serve(limit=16, deadline=2.0)
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(16)]
    try:
        end = time.monotonic() + 10
        while server.open < 16 and time.monotonic() < end:  # all accepted
            time.sleep(0.01)
        extra = socket.create_connection(("127.0.0.1", server.port))
        with extra:
            assert closed_within(extra, 1.0) is not None  # dropped, not queued
        assert server.refused >= 1
        waited = closed_within(held[0], 4.0)
        assert waited is not None and waited < 2.5  # held ones: closed at their deadline
        assert get(server.port)[0] == "HTTP/1.1 200 OK"  # and the endpoint serves again
    finally:
        for sock in held:
            sock.close()


def test_a_client_dripping_bytes_is_dropped_at_the_total_deadline_not_per_read(serve):
    server = serve(deadline=1.5)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        dropped = None
        while time.monotonic() - start < 5 and dropped is None:
            try:
                sock.sendall(b"X")  # one byte every 0.2 s: each read comes in time
            except (BrokenPipeError, ConnectionResetError):
                dropped = time.monotonic() - start
                break
            sock.settimeout(0.2)
            try:
                if sock.recv(1) == b"":
                    dropped = time.monotonic() - start
            except TimeoutError:
                pass
    assert dropped is not None and 1.3 < dropped < 2.5, dropped
    assert server.expired == 1


def test_an_oversized_request_head_is_refused(serve):
    server = serve()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 9000 + b"\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 431 ")


def test_a_failing_route_is_a_500_and_one_log_line_never_a_traceback(serve):
    def broken():
        raise ValueError("a bug")

    server = serve({"/metrics": broken})
    for _ in range(3):
        assert get(server.port)[0] == "HTTP/1.1 500 Internal Server Error"
    assert server.lines == ["metrics endpoint: /metrics: ValueError: a bug"]  # once


def test_the_listen_backlog_is_128(serve):
    server = serve()
    out = subprocess.run(["ss", "-Hltn", f"sport = :{server.port}"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "LISTEN" and int(out[2]) == endpoint.BACKLOG == 128  # Send-Q: the backlog


def test_closing_frees_the_port_for_a_reload_to_listen_on(serve):
    server = serve()
    port = server.port
    server.close()
    again = endpoint.Endpoint(("127.0.0.1", port), {}, Lines())
    again.close()


def test_metrics_render_from_the_snapshot_without_the_schedules_lock(serve):
    data = {"agent": {"metrics": ""}, "check": [
        {"name": "web1", "command": "kachecks-tcp 192.168.8.101:80"}]}
    specs = parse(data, "kachecks.toml").checks
    runs = []
    executor = type("Recorder", (), {"submit": runs.append})()
    schedule = Schedule(specs, 0.0, rng=random.Random(1), executor=executor,
                        publisher=lambda path, value: None, wallclock=lambda: 1.7e9)
    schedule.tick(0.0)
    schedule.complete(runs[0], Result(True, summary="connected"), 0.0, 0.002)
    current = [snapshot.take(schedule.checks, schedule.lateness, (), 1.7e9)]
    page = metrics.Page(lambda: current[0], clock=lambda: 0.0)  # renders take no time
    server = serve({"/metrics": page})
    served = []
    with stats.LOCK:  # a probe thread mid-answer, for as long as it likes
        thread = threading.Thread(target=lambda: served.append(get(server.port)))
        thread.start()
        thread.join(5)
    assert served and served[0][0] == "HTTP/1.1 200 OK"
    assert b'kachecks_check_up{check="web1"} 1.0' in served[0][2]
    assert page()[1] is page()[1]  # one render per snapshot: the same bytes until the next one
    first = page()[1]
    current[0] = snapshot.take(schedule.checks, schedule.lateness, (), 1.7e9 + 1)
    assert page()[1] is not first


def test_metrics_take_at_most_a_tenth_of_a_core_to_render():
    now = [100.0]

    def clock():
        now[0] += 0.05  # every reading: a render takes 0.05 s
        return now[0]

    taken = [snapshot.EMPTY]
    page = metrics.Page(lambda: taken[0], clock=clock)
    first = page()[1]
    taken[0] = snapshot.Snapshot((), snapshot.EMPTY.lateness, (), 1.0)  # a new one, at once
    assert page()[1] is first  # the last render is served until 9 x 0.05 s have passed
    now[0] += 0.45
    assert page()[1] is not first


def test_scrapers_in_a_loop_get_no_more_than_the_byte_rate(serve):
    page = b"x" * (256 << 10)
    server = serve({"/metrics": lambda: ("text/plain", page)}, rate=1 << 20)
    served = []
    stop = threading.Event()

    def scrape():
        while not stop.is_set():
            try:
                served.append(len(get(server.port)[2]))
            except OSError:
                pass

    scrapers = [threading.Thread(target=scrape) for _ in range(4)]
    start = time.monotonic()
    for thread in scrapers:
        thread.start()
    time.sleep(2)
    stop.set()
    for thread in scrapers:
        thread.join(10)
    elapsed = time.monotonic() - start
    assert served and set(served) == {len(page)}  # every answer whole
    # a second's worth at once, then the rate (and one page over it, the debt allowed)
    assert sum(served) <= (1 << 20) * (1 + elapsed) + len(page), (len(served), elapsed)
