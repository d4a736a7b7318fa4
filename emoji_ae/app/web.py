"""`emoji-ae app`: the model's three actions on a local web page, served on 127.0.0.1.

Starlette routes under uvicorn and one static page (page.html, nothing fetched from the network).
The page talks JSON to five routes: GET /api/info, POST /api/compose, /api/reconstruct,
/api/interpolate and /api/attribute. Images travel as PNG data URLs, uploads included.

Any page the user's browser opens can reach a server on 127.0.0.1, so (docs/design.md, "The page"):
only requests addressed to this server's own names are answered (Host), POSTs come from its own
page (Origin, Sec-Fetch-Site, a JSON content type that a foreign page cannot send without a
preflight this server never grants); a term is a name, a concept or an upload, never a path; every
field has a range; a request gets a time budget to arrive and a place in a short queue for the
model, or a "busy" answer at once.
"""

import base64
import json
import socket
import sys
import time
import traceback
from importlib.resources import files

import anyio
import anyio.to_thread
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emoji_ae.app.limits import (
    MAX_UPLOAD,
    MAX_UPLOAD_SIDE,
    AttributeBody,
    ComposeBody,
    InterpolateBody,
    ReconstructBody,
    Term,
    problem,
)
from emoji_ae.app.workbench import Workbench, png
from emoji_ae.config import PipelineError
from emoji_ae.recipes import split_terms

HOST = "127.0.0.1"  # local use only: the page is never served to other machines
LOCAL_NAMES = ("127.0.0.1", "localhost")
MAX_BODY = 8 * 2**20  # the whole JSON body, uploads included (base64)
MAX_DIGITS = 30  # of a number in the JSON body
ARRIVAL_S = 10.0  # a request's body must arrive within this
PATIENCE_S = 5.0  # longest wait for the model before the busy answer
MAX_WAITING = 64  # requests queued for the model; one more gets the busy answer at once
MAX_CONNECTIONS = 128  # uvicorn answers 503 beyond this many at once
BACKLOG = 1024  # connections the kernel holds before uvicorn accepts them: a burst is queued, not reset
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src "
                               "data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}


# --- the routes' work ------------------------------------------------------------------------


def data_url(image) -> str:
    return "data:image/png;base64," + base64.b64encode(png(image)).decode()


class Api:
    """The routes' work on one loaded model package; each method runs alone on the model."""

    def __init__(self, bench: Workbench):
        self.bench = bench

    def term(self, spec: Term):
        if spec.image:
            try:
                raw = base64.b64decode(spec.image.split(",", 1)[-1], validate=True)
            except ValueError:
                raise PipelineError(f"{spec.label or 'the upload'} is not base64 image data") from None
            if len(raw) > MAX_UPLOAD:
                raise PipelineError(
                    f"{spec.label or 'the upload'} is over {MAX_UPLOAD // 2**20} MiB: upload a smaller image"
                )
            return self.bench.image_term(raw, spec.label or "upload", max_side=MAX_UPLOAD_SIDE)
        if not (spec.name or "").strip():
            raise PipelineError("a term is empty: pick an emoji or a concept, or upload an image")
        return self.bench.term(spec.name, paths=False)

    def info(self) -> dict:
        bench = self.bench
        examples = [
            {"recipe": r, "terms": [{"sign": s, "name": t} for s, t in split_terms(r)]}
            for r in bench.settings.get("recipes", [])
        ]
        return {
            "model": bench.folder.name,
            "names": sorted(bench.names),
            "concepts": bench.concepts,
            "examples": examples,
            "slerp": bench.settings.get("slerp", []),
            "refine_steps": bench.settings["refine"]["steps"],
            "attributes": list(bench.attributes),
        }

    def compose(self, body: ComposeBody) -> dict:
        terms = [(1.0 if t.sign >= 0 else -1.0, self.term(t)) for t in body.terms]
        result = self.bench.compose(terms, body.alpha)
        return {
            "inputs": [{"sign": s, "label": t.label, "image": data_url(t.pixels)} for s, t in result.terms],
            "base": result.base.label,
            "composite": data_url(result.image),
            "pixel": data_url(result.pixel),
            "nearest": [{"name": n, "distance": d, "image": data_url(self.bench.pixels(n))} for n, d in result.nearest],
        }

    def reconstruct(self, body: ReconstructBody) -> dict:
        term = self.term(body.term)
        image, mse = self.bench.reconstruct(term, body.steps)
        return {"input": data_url(term.pixels), "reconstruction": data_url(image), "mse": mse}

    def attribute(self, body: AttributeBody) -> dict:
        term = self.term(body.term)
        image = self.bench.set_attribute(term, body.attribute, body.amount)
        return {
            "input": data_url(term.pixels),
            "decoded": data_url(self.bench.set_attribute(term, body.attribute, 0.0)),
            "image": data_url(image),
        }

    def interpolate(self, body: InterpolateBody) -> dict:
        frames = self.bench.interpolate(self.term(body.start), self.term(body.end), body.steps)
        return {"frames": [data_url(f) for f in frames]}


def answer(status: int, value: dict, **headers) -> JSONResponse:
    return JSONResponse(value, status, headers={**SECURITY_HEADERS, **headers})


class Busy(Exception):
    """The model's queue is full, or the wait for it ran past PATIENCE_S."""


class Model:
    """The model, one request at a time (torch modules are not re-entrant), behind a short queue."""

    def __init__(self):
        self.lock, self.waiting = anyio.Lock(), 0

    async def run(self, work):
        if self.waiting >= MAX_WAITING:
            raise Busy
        self.waiting += 1
        try:
            with anyio.move_on_after(PATIENCE_S) as wait:
                await self.lock.acquire()
        finally:
            self.waiting -= 1
        if wait.cancelled_caught:
            raise Busy
        try:
            return await anyio.to_thread.run_sync(work)
        finally:
            self.lock.release()


async def read_body(request: Request) -> bytes:
    """The body, at most MAX_BODY bytes, arrived within ARRIVAL_S (a slow sender holds nothing of the model)."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY:
        raise HTTPException(413, f"the request is over {MAX_BODY // 2**20} MiB: upload a smaller image")
    chunks, size = [], 0
    with anyio.fail_after(ARRIVAL_S):
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY:
                raise HTTPException(413, f"the request is over {MAX_BODY // 2**20} MiB: upload a smaller image")
            chunks.append(chunk)
    return b"".join(chunks)


class Malformed(ValueError):
    """A body that is not the JSON a route takes; its message is the one-line reason."""


def parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:  # int() of a long digit string costs time quadratic in its length
        raise Malformed(
            f"malformed request: a number of {len(text)} digits; none of this page's fields needs over {MAX_DIGITS}"
        )
    return int(text)


def parse_body(raw: bytes, schema: type[BaseModel]) -> BaseModel:
    """The body as `schema`: UTF-8 JSON (RFC 8259), integers of at most MAX_DIGITS digits, nesting
    under Python's recursion limit; a Malformed with the reason for anything else."""
    try:
        text = raw.decode("utf-8") if raw.strip() else "{}"
    except UnicodeDecodeError:
        raise Malformed("malformed request: the body is not UTF-8 text; send JSON") from None
    try:
        value = json.loads(text, parse_int=parse_int)
    except json.JSONDecodeError as e:
        raise Malformed(f"malformed request: not JSON ({e.msg})") from None
    except RecursionError:
        raise Malformed(
            "malformed request: the JSON is nested too deeply; no field of this page nests over 3 levels"
        ) from None
    try:
        return schema.model_validate(value)
    except ValidationError as e:
        raise Malformed(problem(e, schema)) from None
    except RecursionError:
        raise Malformed("malformed request: the JSON is nested too deeply") from None


def post_route(work, schema: type[BaseModel], model: Model):
    async def endpoint(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return answer(415, {"error": "send the request as JSON (Content-Type: application/json)"})
        try:
            raw = await read_body(request)
        except TimeoutError:
            return answer(408, {"error": f"the request did not arrive within {ARRIVAL_S:g} s"})
        except ClientDisconnect:  # the sender left before its body was whole: nobody to answer
            return Response(status_code=400)
        try:
            body = parse_body(raw, schema)
        except Malformed as e:
            return answer(400, {"error": str(e)})
        start = time.perf_counter()
        try:
            value = await model.run(lambda: work(body))
        except Busy:
            return answer(
                503, {"error": "the model is busy with other requests: try again in a moment"}, **{"Retry-After": "1"}
            )
        except PipelineError as e:
            return answer(400, {"error": str(e)})
        except Exception as e:  # a bug: say so in the page, keep serving, log the traceback
            traceback.print_exc()
            return answer(500, {"error": f"internal error: {type(e).__name__}"})
        return answer(200, {**value, "server_ms": (time.perf_counter() - start) * 1000})
    return endpoint


class LocalOnly:
    """ASGI middleware: Host must name this server (127.0.0.1 or localhost, at its port), else 421
    (DNS rebinding); a POST must come from its own page: an Origin, when sent, equal to
    http://<that host>, and no cross-site Sec-Fetch-Site, else 403."""

    def __init__(self, app, port_of):
        self.app, self.port_of = app, port_of

    def allowed(self) -> set[str]:
        port = self.port_of()
        return {f"{name}:{port}" for name in LOCAL_NAMES} | (set(LOCAL_NAMES) if port == 80 else set())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        hosts = self.allowed()
        if headers.get("host", "").lower() not in hosts:
            refused = answer(
                421,
                {
                    "error": "this page answers only requests to its own address, http://127.0.0.1 or localhost at "
                             "its port"
                },
            )
            return await refused(scope, receive, send)
        origin, site = headers.get("origin"), headers.get("sec-fetch-site", "same-origin")
        if scope["method"] != "GET" and ((origin is not None and origin.lower() not in {f"http://{h}" for h in hosts})
                                         or site not in ("same-origin", "none")):
            return await answer(403, {"error": "only the page itself may send requests to it"})(scope, receive, send)
        return await self.app(scope, receive, send)


def application(bench: Workbench, port_of) -> LocalOnly:
    """The page and its routes behind the local-only check; port_of() gives the port it serves."""
    api, model, page = Api(bench), Model(), files("emoji_ae.app").joinpath("page.html").read_bytes()

    async def index(request: Request) -> Response:
        return Response(page, 200, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    async def info(request: Request) -> Response:
        return answer(200, api.info())

    async def http_error(request: Request, error: HTTPException) -> Response:
        return answer(
            error.status_code,
            {"error": error.detail if error.status_code == 413 else f"no {request.method} route {request.url.path}"},
        )

    routes = [Route("/", index), Route("/index.html", index), Route("/api/info", info),
              Route("/api/compose", post_route(api.compose, ComposeBody, model), methods=["POST"]),
              Route("/api/reconstruct", post_route(api.reconstruct, ReconstructBody, model), methods=["POST"]),
              Route("/api/interpolate", post_route(api.interpolate, InterpolateBody, model), methods=["POST"]),
              Route("/api/attribute", post_route(api.attribute, AttributeBody, model), methods=["POST"])]
    return LocalOnly(Starlette(routes=routes, exception_handlers={HTTPException: http_error}), port_of)


def listen(port: int) -> socket.socket:
    """The listening socket, bound before anything prints its address: a busy port is one line."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError as e:
        sock.close()
        raise PipelineError(
            f"cannot listen on {HOST}:{port} ({e.strerror}): pick another --port, or 0 for any free one"
        ) from None
    sock.listen(BACKLOG)
    return sock


def server(bench: Workbench, sock: socket.socket):
    import uvicorn

    port = sock.getsockname()[1]
    config = uvicorn.Config(
        application(bench, lambda: port),
        log_level="warning",
        access_log=False,
        backlog=BACKLOG,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,  # Ctrl-C stops within seconds, whatever a browser keeps open
        h11_max_incomplete_event_size=16 * 1024,
    )
    return uvicorn.Server(config)


def serve(folder, port: int) -> None:
    """Load the package, then serve until Ctrl-C; prints the address once ready."""
    bench = Workbench(folder)
    sock = listen(port)
    print(
        f"emoji-ae app: http://{HOST}:{sock.getsockname()[1]}/ ({len(bench.names)} emoji of {bench.folder}; Ctrl-C "
        "stops)",
        flush=True,
    )
    try:
        server(bench, sock).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        print("stopped", file=sys.stderr)
