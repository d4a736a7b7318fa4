"""The page as an attacker and a crowd meet it: requests with foreign Host and Origin headers, path
terms, out-of-range and malformed fields, bodies of a malformed structure (not UTF-8, deeply nested,
endless numbers, mutated bytes), thin pictures, oversized bodies, a slow sender and a bounded burst.
Shared by the page's tests on a small package (tests/test_app.py), on the tiny pipeline's package
(tests/test_app_e2e.py) and on the default one (tests/test_reproduction.py)."""

import base64
import http.client
import io
import json
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

BUSY = "the model is busy"
TIMEOUT = 30  # seconds any one answer may take: a bound on the test, not a speed target


def request(url: str, method: str, path: str, body=None, headers=None, raw: bytes | None = None) -> tuple[int, dict]:
    """One request with exactly these headers (Host too, when given); the status and JSON answer."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=TIMEOUT)
    sent = {"Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    try:
        connection.putrequest(method, path, skip_host="Host" in sent, skip_accept_encoding=True)
        for key, value in sent.items():
            connection.putheader(key, value)
        if data is not None and "Content-Length" not in sent:
            connection.putheader("Content-Length", str(len(data)))
        connection.endheaders(data)
        response = connection.getresponse()
        payload = response.read()
        try:
            return response.status, json.loads(payload)
        except ValueError:
            return response.status, {"text": payload.decode(errors="replace")}
    finally:
        connection.close()


def compose_body(recipe_terms: list[str]) -> dict:
    return {"alpha": 1, "terms": [{"sign": -1 if i % 2 else 1, "name": n} for i, n in enumerate(recipe_terms)]}


def assert_foreign_hosts_and_origins_are_refused(url: str, terms: list[str]) -> None:
    port = urlsplit(url).port
    body = compose_body(terms)
    for host in (
        "evil.example",
        f"evil.example:{port}",
        f"127.0.0.1.evil.example:{port}",
        f"127.0.0.1:{port + 1}",
        "localhost",
    ):
        for method, path, sent in (("GET", "/", None), ("GET", "/api/info", None), ("POST", "/api/compose", body)):
            status, value = request(url, method, path, sent, {"Host": host})
            assert status == 421 and "own address" in value["error"], (host, path, status, value)
    for origin in ("http://evil.example", "null", f"http://evil.example:{port}", f"https://127.0.0.1:{port}"):
        status, value = request(url, "POST", "/api/compose", body, {"Origin": origin})
        assert status == 403 and "only the page itself" in value["error"], (origin, status, value)
        status, _ = request(url, "POST", "/api/compose", raw=json.dumps(body).encode(),
                            headers={"Origin": origin, "Content-Type": "text/plain"})  # a "simple" cross-origin POST
        assert status == 403, (origin, status)
    status, _ = request(url, "POST", "/api/compose", body, {"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, value = request(
        url, "POST", "/api/compose", raw=json.dumps(body).encode(), headers={"Content-Type": "text/plain"}
    )
    assert status == 415 and "JSON" in value["error"]
    for own in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):  # the page itself, by either name
        host = own.removeprefix("http://")
        status, value = request(
            url, "POST", "/api/compose", body, {"Origin": own, "Host": host, "Sec-Fetch-Site": "same-origin"}
        )
        assert status == 200, (own, value)


def assert_paths_are_refused(url: str, image_on_disk: str) -> None:
    """A term naming a file (one that exists, too) is refused and nothing of the file comes back."""
    for name in (
        image_on_disk,
        "/etc/passwd",
        "../../etc/hosts",
        "~/.ssh/id_rsa",
        "C:\\Windows\\win.ini",
        "picture.png",
    ):
        status, value = request(url, "POST", "/api/reconstruct", {"term": {"name": name}, "steps": 0})
        assert status == 400 and "upload the image" in value["error"] and "reconstruction" not in value, (name, value)
    status, value = request(url, "POST", "/api/compose", {"terms": [{"sign": 1, "name": image_on_disk}]})
    assert status == 400 and "composite" not in value


def assert_fields_are_bounded(url: str, terms: list[str]) -> None:
    name = {"name": terms[0]}
    cases = [
        ("/api/reconstruct", {"term": name, "steps": 10**9}, "steps must be from 0 to 500"),
        ("/api/reconstruct", {"term": name, "steps": -1}, "steps must be from 0 to 500"),
        ("/api/interpolate", {"start": name, "end": name, "steps": 10**6}, "steps must be from 2 to 20"),
        ("/api/compose", {**compose_body(terms), "alpha": 1e6}, "alpha must be from -2 to 3"),
        ("/api/compose", {"terms": [{"sign": 1, **name}] * 50}, "terms: from 1 to 8 items, got 50"),
        ("/api/compose", {"terms": []}, "terms: from 1 to 8 items, got 0"),
        (
            "/api/compose",
            {"terms": [{"sign": 1, "name": "x" * 5000}]},
            "terms.0.name: String should have at most 200 characters",
        ),
        (
            "/api/compose",
            {"terms": [{"sign": 1, **name, "path": "/etc/passwd"}]},
            "terms.0.path: Extra inputs are not permitted",
        ),
        ("/api/reconstruct", {"term": name, "steps": "many"}, "steps: Input should be a valid integer"),
        ("/api/compose", [1, 2], "the request: Input should be a valid dictionary"),
    ]
    for path, body, message in cases:
        status, value = request(url, "POST", path, body)
        assert status == 400 and value["error"].startswith(message), (path, status, value)
    status, value = request(url, "POST", "/api/compose", raw=b'{"terms": [')
    assert status == 400 and value["error"].startswith("malformed request: not JSON")
    status, value = request(url, "POST", "/api/compose", raw=b'{"alpha": NaN, "terms": [{"name": "a"}]}')
    assert status == 400 and "alpha" in value["error"]


def thin_upload(side: int = 5000) -> str:
    """A PNG data URL of a few kilobytes whose picture is 2 x `side` pixels, with a line drawn down
    it: padded to a square before resizing, it would need side^2 pixels of memory."""
    image = Image.new("RGBA", (2, side), (0, 0, 0, 0))
    ImageDraw.Draw(image).line((0, 0, 1, side - 1), fill=(200, 30, 30, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def assert_malformed_bodies_are_refused(url: str, terms: list[str]) -> None:
    """Bodies whose structure, not size, is wrong: not UTF-8, nested too deeply, a number of
    thousands of digits, odd JSON at the top, a lone surrogate, a thin picture; then seeded byte
    mutations of a valid body. Every answer is 4xx (or 200 where a mutation is still valid), never 5xx."""
    cases = [
        (b'\xff\xfe{"terms": []}', "not UTF-8"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b'{"terms": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "nested too deeply"),
        (b'{"alpha": 1' + b"0" * 5_000 + b', "terms": []}', "digits"),
        (b"null", "Input should be a valid dictionary"),
        (b'"terms"', "Input should be a valid dictionary"),
        (b'{"terms": [{"name": "\\ud800"}]}', "terms.0.name"),
        (b'{"terms": ["a plain string"]}', "terms.0"),
    ]
    for path in ("/api/compose", "/api/reconstruct", "/api/interpolate"):
        for raw, reason in cases:
            status, value = request(url, "POST", path, raw=raw)
            assert status == 400, (path, raw[:40], status, value)
            assert reason in value["error"] or path != "/api/compose", (raw[:40], value)
    for body in ({"term": {"image": thin_upload(), "label": "thin.png"}}, {"term": {"image": thin_upload(100_000)}}):
        status, value = request(url, "POST", "/api/reconstruct", body)
        assert status == 400 and "pixels a side" in value["error"], value
    valid = json.dumps(compose_body(terms)).encode()
    rng = random.Random(53)
    for _ in range(40):
        mutated = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        status, value = request(url, "POST", "/api/compose", raw=bytes(mutated))
        assert status == 200 or 400 <= status < 500, (bytes(mutated), status, value)
    status, value = request(url, "POST", "/api/compose", compose_body(terms))
    assert status == 200


def exchange(url: str, head: str, chunks=()) -> tuple[int, dict]:
    """Raw bytes on a socket: a request's head and body chunks, then the answer, read whole. The
    body is never sent past what the server reads, so its answer is not lost to a reset."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=TIMEOUT) as sock:
        sock.sendall(head.replace("{netloc}", address.netloc).encode())
        for chunk in chunks:
            sock.sendall(chunk)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def assert_oversized_bodies_are_refused(url: str) -> None:
    head = "POST /api/compose HTTP/1.1\r\nHost: {netloc}\r\nContent-Type: application/json\r\n"
    status, value = exchange(url, head + f"Content-Length: {9 * 2**20}\r\n\r\n")  # refused on its declared length
    assert status == 413 and "over 8 MiB" in value["error"]
    chunk = 2**20  # no length declared: counted as it comes; the last byte crosses the bound and nothing follows it
    chunks = [f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n" for _ in range(8)] + [b"1\r\n "]
    status, value = exchange(url, head + "Transfer-Encoding: chunked\r\n\r\n", chunks)
    assert status == 413 and "over 8 MiB" in value["error"]
    upload = "data:image/png;base64," + "A" * (3 * 2**20)  # one image over its own bound, the body under it
    status, value = request(url, "POST", "/api/reconstruct", {"term": {"image": upload, "label": "huge.png"}})
    assert status == 400 and "at most" in value["error"]


def slow_sender(url: str) -> socket.socket:
    """A connection that declares a body and sends only a byte of it: it must hold nothing up."""
    address = urlsplit(url)
    sock = socket.create_connection((address.hostname, address.port), timeout=TIMEOUT)
    sock.sendall(f"POST /api/compose HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: 1000\r\n\r\n{{".encode())
    return sock


def burst(url: str, body: dict, n: int = 50) -> list:
    """n compositions at once, from n connections: each one's status, or the exception it met."""
    start = threading.Barrier(n)

    def one(_):
        start.wait(timeout=TIMEOUT)
        try:
            return request(url, "POST", "/api/compose", body)
        except OSError as e:  # a reset or refused connection: what must never happen
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def assert_burst_is_answered(url: str, terms: list[str], n: int = 50) -> tuple[int, float]:
    """Every request of the burst answered (200, or the busy answer), none reset; the next ordinary
    one answered. Returns how many were composed and the seconds the next request took."""
    answers = burst(url, compose_body(terms), n)
    failed = [a for a in answers if isinstance(a, Exception)]
    assert not failed, f"{len(failed)} of {n} connections failed: {failed[:3]}"
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 503}, statuses
    assert all(BUSY in value["error"] for status, value in answers if status == 503)
    started = time.perf_counter()
    status, value = request(url, "POST", "/api/compose", compose_body(terms))
    assert status == 200 and value["composite"].startswith("data:image/png;base64,")
    return statuses.count(200), time.perf_counter() - started


def assert_slow_senders_hold_nothing(url: str, terms: list[str]) -> None:
    sockets = [slow_sender(url) for _ in range(3)]
    try:
        status, _ = request(url, "POST", "/api/compose", compose_body(terms))
        assert status == 200
    finally:
        for sock in sockets:
            sock.close()


def assert_safe(url: str, terms: list[str], image_on_disk: str) -> None:
    """Every check above, then the page still answers an ordinary request."""
    assert_foreign_hosts_and_origins_are_refused(url, terms)
    assert_paths_are_refused(url, image_on_disk)
    assert_fields_are_bounded(url, terms)
    assert_malformed_bodies_are_refused(url, terms)
    assert_oversized_bodies_are_refused(url)
    assert_slow_senders_hold_nothing(url, terms)
    assert_burst_is_answered(url, terms)
