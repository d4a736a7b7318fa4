"""`emoji-ae app`: the model's three actions on a local web page, served on 127.0.0.1.

Python's own threaded HTTP server and one static page (page.html, no framework, nothing fetched
from the network): it starts as fast as the model loads and adds almost nothing to a request.
The page talks JSON to four routes: GET /api/info, POST /api/compose, /api/reconstruct and
/api/interpolate. Images travel as PNG data URLs, uploads included.
"""

import base64
import json
import sys
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from stages.lib.config import PipelineError
from stages.lib.recipes import split_terms
from stages.app.workbench import Workbench, png

PAGE = Path(__file__).with_name("page.html")
MAX_BODY = 16 * 2**20  # uploads arrive base64-encoded in the JSON body
HOST = "127.0.0.1"  # local use only: the page is never served to other machines


def data_url(image) -> str:
    return "data:image/png;base64," + base64.b64encode(png(image)).decode()


class Api:
    """The routes' work, on one loaded model package."""

    def __init__(self, bench: Workbench):
        self.bench = bench

    def term(self, spec: dict):
        """{"name": ...} or {"image": data URL, "label": file name} -> a Term."""
        if not isinstance(spec, dict):
            raise PipelineError("each term is {\"name\": ...} or {\"image\": a data URL}")
        if spec.get("image"):
            try:
                raw = base64.b64decode(str(spec["image"]).split(",", 1)[-1], validate=True)
            except ValueError:
                raise PipelineError(f"{spec.get('label') or 'the upload'} is not base64 image data") from None
            return self.bench.image_term(raw, str(spec.get("label") or "upload"))
        if not str(spec.get("name") or "").strip():
            raise PipelineError("a term is empty: pick an emoji or a concept, or upload an image")
        return self.bench.term(str(spec["name"]))

    def info(self, _body) -> dict:
        bench = self.bench
        examples = [{"recipe": r, "terms": [{"sign": s, "name": t} for s, t in split_terms(r)]} for r in bench.settings.get("recipes", [])]
        return {"model": str(bench.folder), "names": sorted(bench.names), "concepts": bench.concepts, "examples": examples,
                "slerp": bench.settings.get("slerp", []), "refine_steps": bench.settings["refine"]["steps"]}

    def compose(self, body: dict) -> dict:
        terms = [(1.0 if float(t.get("sign", 1)) >= 0 else -1.0, self.term(t)) for t in body.get("terms") or []]
        if not terms:
            raise PipelineError("the recipe has no terms")
        result = self.bench.compose(terms, float(body.get("alpha", 1.0)))
        return {"inputs": [{"sign": s, "label": t.label, "image": data_url(t.pixels)} for s, t in result.terms],
                "base": result.base.label, "composite": data_url(result.image), "pixel": data_url(result.pixel),
                "nearest": [{"name": n, "distance": d, "image": data_url(self.bench.pixels[n])} for n, d in result.nearest]}

    def reconstruct(self, body: dict) -> dict:
        term = self.term(body.get("term"))
        steps = body.get("steps")
        image, mse = self.bench.reconstruct(term, None if steps in (None, "") else max(0, int(steps)))
        return {"input": data_url(term.pixels), "reconstruction": data_url(image), "mse": mse}

    def interpolate(self, body: dict) -> dict:
        frames = self.bench.interpolate(self.term(body.get("start")), self.term(body.get("end")), int(body.get("steps", 7)))
        return {"frames": [data_url(f) for f in frames]}


def handler(api: Api) -> type:
    routes = {"/api/info": api.info, "/api/compose": api.compose, "/api/reconstruct": api.reconstruct,
              "/api/interpolate": api.interpolate}

    class Handler(BaseHTTPRequestHandler):
        def send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def answer(self, status: int, value: dict) -> None:
            self.send(status, json.dumps(value).encode(), "application/json")

        def do_GET(self):
            if self.path in ("/", "/index.html"):
                self.send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
            elif self.path == "/api/info":
                self.answer(200, api.info(None))
            else:
                self.answer(404, {"error": f"no page {self.path}"})

        def do_POST(self):
            route = routes.get(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if route is None:
                return self.answer(404, {"error": f"no route {self.path}"})
            if length > MAX_BODY:
                return self.answer(413, {"error": f"the request is over {MAX_BODY // 2**20} MiB: upload a smaller image"})
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                start = time.perf_counter()
                value = route(body if isinstance(body, dict) else {})
                self.answer(200, {**value, "server_ms": (time.perf_counter() - start) * 1000})
            except PipelineError as e:
                self.answer(400, {"error": str(e)})
            except (ValueError, TypeError, AttributeError) as e:  # malformed JSON or fields
                self.answer(400, {"error": f"malformed request: {type(e).__name__}: {e}"})
            except Exception as e:  # a bug: say so in the page, keep serving, log the traceback
                traceback.print_exc()
                self.answer(500, {"error": f"internal error: {type(e).__name__}: {e}"})

        def log_message(self, format, *args):  # quiet: one line per request would bury the URL
            pass

    return Handler


def serve(folder, port: int) -> None:
    """Load the package, then serve until Ctrl-C; prints the address once ready."""
    bench = Workbench(folder)
    try:
        server = ThreadingHTTPServer((HOST, port), handler(Api(bench)))
    except OSError as e:
        raise PipelineError(f"cannot listen on {HOST}:{port} ({e.strerror}): pick another --port, or 0 for any free one") from None
    print(f"emoji-ae app: http://{HOST}:{server.server_port}/ ({len(bench.names)} emoji of {bench.folder}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
