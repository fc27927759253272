"""Open pages of a built book in headless Chromium and report what rendered (standard library only).

A local ``http.server`` on 127.0.0.1 serves the book and logs every request. Each check loads a small harness
page from the same origin. The harness shows the target page in a full-window iframe, waits for its images and
for MathJax, and writes a JSON report into its own DOM, which ``chromium --dump-dom`` prints. The same Chromium
call saves a screenshot.

Every request a page makes, failed ones included, is listed in the page's resource timing, which the harness
reports; the server's log shows which of them it answered and with what status. Chromium is also told to use the
local server as its HTTP(S) proxy. Loopback addresses bypass a proxy, so the book loads directly, while a request
to any other host reaches the server as a proxy request and is refused: nothing leaves the machine. Chromium's
own background requests (update checks, account look-ups) are refused there too, which is why the proxy log is
kept for diagnosis, and the page's resource timing and a scan of the HTML and CSS decide what a page fetches.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--hide-scrollbars")
WINDOW = "1280,2000"
#: A phone-sized window: figures and tables must fit it without the page scrolling sideways.
NARROW_WINDOW = "420,2000"
#: A laptop's screen: the landing page's first two screens of this height hold its abstract and key figure.
SCREEN_WINDOW = "1280,800"
#: The narrowest window headless Chromium makes; a narrower page is an iframe of that width inside it.
MIN_WINDOW_WIDTH = 500
VIRTUAL_TIME_BUDGET_MS = 10000
HARNESS_PATH = "/__harness__.html"

HARNESS = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>harness</title>
<style>html, body { margin: 0; height: 100%; } iframe { border: 0; width: 100%; height: 100%; display: block; }
#report { display: none; }</style></head>
<body><iframe id="page"></iframe>
<script>
const target = new URLSearchParams(location.search).get("page");
// Text that must never reach a reader: a raw network or Python error.
const ERROR_TEXT = /urlopen error|Name or service not known|\\[Errno -?\\d+\\]|Traceback \\(most recent call last\\)/g;
const frame = document.getElementById("page");
// Headless Chromium will not make a window narrower than 500 px: a narrower page width is the iframe's.
const width = new URLSearchParams(location.search).get("width");
if (width) { frame.style.width = width + "px"; }
// Visible elements that reach past the right edge of the window, unless a container that scrolls by itself
// holds them (overflow-x auto or scroll, itself inside the window, and not a container of the page's title: a
// wide table or code block scrolls alone, while an article that scrolls sideways as a whole is cut off), or they
// sit in a fixed layer wholly outside the window (a closed off-canvas drawer). An element clipped by overflow
// hidden is cut off for the reader, so it counts.
function wideElements(w, d) {
  const vw = w.innerWidth, out = [];
  const title = d.querySelector("main h1, article h1, h1");
  for (const el of d.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || r.right <= vw + 1) { continue; }
    if (w.getComputedStyle(el).visibility === "hidden") { continue; }
    let held = false;
    for (let p = el.parentElement; p && p !== d.documentElement; p = p.parentElement) {
      const s = w.getComputedStyle(p), pr = p.getBoundingClientRect();
      if ((s.overflowX === "auto" || s.overflowX === "scroll") && pr.right <= vw + 1
          && !(title && p.contains(title))) { held = true; break; }
      if (s.position === "fixed" && (pr.left >= vw || pr.right <= 0)) { held = true; break; }
    }
    if (held) { continue; }
    const s = w.getComputedStyle(el);
    if (s.position === "fixed" && (r.left >= vw || r.right <= 0)) { continue; }
    const id = el.id ? "#" + el.id : "", cls = el.className && el.className.baseVal === undefined
      ? "." + String(el.className).trim().split(/\\s+/).join(".") : "";
    out.push(`${el.tagName.toLowerCase()}${id}${cls} right=${Math.round(r.right)}`);
  }
  return out.slice(0, 20);
}
// Where the landing page's abstract and key figure are, in page coordinates (null where absent).
function place(w, d, id) {
  const el = d.getElementById(id);
  if (!el) { return null; }
  const r = el.getBoundingClientRect();
  return {top: r.top + w.scrollY, bottom: r.bottom + w.scrollY};
}
function report(obj) {
  const pre = document.createElement("pre");
  pre.id = "report";
  pre.textContent = JSON.stringify(obj);
  document.body.appendChild(pre);
}
frame.addEventListener("load", async () => {
  try {
    const w = frame.contentWindow, d = frame.contentDocument;
    if (d.querySelector('meta[http-equiv="Refresh" i]')) { return; }  // a redirect: report on its target
    const images = Array.from(d.images);
    await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
      img.addEventListener("load", done); img.addEventListener("error", done);
    })));
    let mathjax = null;
    if (w.MathJax && w.MathJax.startup && w.MathJax.startup.promise) {
      try { await w.MathJax.startup.promise; mathjax = w.MathJax.version || "loaded"; }
      catch (e) { mathjax = "error: " + e; }
    }
    if (d.fonts && d.fonts.ready) { await d.fonts.ready; }
    const h1 = Array.from(d.querySelectorAll("main h1, h1")).find(h => h.textContent.trim());
    report({
      url: w.location.href,
      title: d.title,
      h1: h1 ? h1.textContent.replace(/[\\u00b6#]/g, "").trim() : null,
      images: images.map(img => ({src: img.getAttribute("src"), ok: img.complete && img.naturalWidth > 0})),
      math_source: d.querySelectorAll(".math").length,
      math_rendered: d.querySelectorAll("mjx-container").length,
      math_errors: d.querySelectorAll("mjx-merror").length,
      mathjax: mathjax,
      resources: w.performance.getEntriesByType("resource").map(e => e.name),
      scroll_width: Math.max(d.documentElement.scrollWidth, d.scrollingElement.scrollWidth),
      viewport_width: w.innerWidth,
      viewport_height: w.innerHeight,
      wide_elements: wideElements(w, d),
      abstract: place(w, d, "abstract"),
      key_figure: place(w, d, "key-figure"),
      headings: Array.from(d.querySelectorAll("main h2, article h2")).map(
        h => h.textContent.replace(/[\\u00b6#]/g, "").trim()),
      error_texts: (d.body.innerText.match(ERROR_TEXT) || []),
    });
  } catch (e) {
    report({error: String(e)});
  }
});
frame.src = "/" + target;
</script></body></html>
"""


@dataclass
class PageReport:
    """What one page rendered, as the harness saw it, plus what the server logged while it loaded."""

    page: str
    title: str | None = None
    h1: str | None = None
    images: list[dict] = field(default_factory=list)
    math_source: int = 0
    math_rendered: int = 0
    math_errors: int = 0
    mathjax: str | None = None
    resources: list[str] = field(default_factory=list)
    error: str | None = None
    screenshot: Path | None = None
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    scroll_width: int | None = None
    viewport_width: int | None = None
    viewport_height: int | None = None
    wide_elements: list[str] = field(default_factory=list)
    abstract: dict | None = None
    key_figure: dict | None = None
    headings: list[str] = field(default_factory=list)
    error_texts: list[str] = field(default_factory=list)

    @property
    def overflows(self) -> bool:
        """The page is wider than the window (a reader would scroll sideways), or a visible element reaches past
        its right edge outside a container that scrolls by itself (it is cut off)."""
        return bool(self.wide_elements) or (self.scroll_width is not None and self.viewport_width is not None
                                            and self.scroll_width > self.viewport_width)

    @property
    def broken_images(self) -> list[str]:
        return [img["src"] for img in self.images if not img["ok"]]

    @property
    def not_found(self) -> list[str]:
        return [path for _, path, status in self.requests if status >= 400]


def find_chromium() -> str | None:
    """``$UA_CHROMIUM``, else Debian's ``/usr/bin/chromium``, else a ``chromium`` on PATH."""
    for candidate in (os.environ.get("UA_CHROMIUM"), CHROMIUM, shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


class _Handler(SimpleHTTPRequestHandler):
    server: "BookServer"

    def log_message(self, format, *args):  # the server keeps its own log
        pass

    def _external(self, target: str) -> None:
        self.server.record(self.command, target, 403, external=True)
        self.send_error(403, "external request refused by the test server")

    def do_CONNECT(self):  # HTTPS through the proxy
        self._external(f"https://{self.path}")

    def send_response(self, code, message=None):
        self._status = code
        super().send_response(code, message)

    def do_GET(self):
        if self.path.startswith(("http://", "https://")):  # plain HTTP through the proxy
            return self._external(self.path)
        url = urlsplit(self.path)
        if url.path == HARNESS_PATH:
            body = HARNESS.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if url.path == "/favicon.ico":  # Chromium asks for one; the book has none
            self.send_response(204)
            self.end_headers()
            return
        self._status = 0
        super().do_GET()
        self.server.record("GET", url.path, self._status)

    def do_HEAD(self):
        if self.path.startswith(("http://", "https://")):
            return self._external(self.path)
        super().do_HEAD()

    def do_POST(self):
        if self.path.startswith(("http://", "https://")):
            return self._external(self.path)
        self.send_error(405)


class BookServer(ThreadingHTTPServer):
    """Serve ``root`` on 127.0.0.1 (a free port) in a thread; log every request. Use as a context manager."""

    daemon_threads = True

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.log: list[tuple[str, str, int]] = []
        self.external: list[str] = []
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=str(self.root)))
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, method: str, path: str, status: int, external: bool = False) -> None:
        with self._lock:
            if external:
                self.external.append(f"{method} {path}")
            else:
                self.log.append((method, path, status))

    def mark(self) -> tuple[int, int]:
        with self._lock:
            return len(self.log), len(self.external)

    def since(self, mark: tuple[int, int]) -> tuple[list, list]:
        with self._lock:
            return self.log[mark[0]:], self.external[mark[1]:]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


def _report_from_dom(dom: str) -> dict | None:
    m = re.search(r'<pre id="report">(.*?)</pre>', dom, re.S)
    return json.loads(html.unescape(m.group(1))) if m else None


def check_page(server: BookServer, page: str, *, chromium: str, screenshot: Path | None = None,
               timeout: float = 90, window: str = WINDOW) -> PageReport:
    """Load ``page`` (a path under the served root, e.g. ``book/method.html``) and report what rendered.

    ``window`` is the browser window's "WIDTH,HEIGHT" in CSS pixels (e.g. ``"420,2000"`` for a phone)."""
    mark = server.mark()
    page_width = int(window.split(",")[0])
    url = f"{server.origin}{HARNESS_PATH}?page={page}&width={page_width}"
    with tempfile.TemporaryDirectory(prefix="ua-chromium-") as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={max(page_width, MIN_WINDOW_WIDTH)},{window.split(',')[1]}",
               f"--proxy-server={server.origin}", f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}", "--dump-dom"]
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            cmd.append(f"--screenshot={screenshot}")
        proc = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=timeout)
    requests, external = server.since(mark)
    found = _report_from_dom(proc.stdout)
    report = PageReport(page=page, screenshot=screenshot, requests=[r for r in requests if r[1] != HARNESS_PATH],
                        external=external)
    if found is None:
        report.error = f"no report from the harness (chromium exit {proc.returncode}): {proc.stderr[-2000:]}"
        return report
    report.error = found.pop("error", None)
    found.pop("url", None)
    for key, value in found.items():
        setattr(report, key, value)
    return report


def outside(origin: str, urls: list[str]) -> list[str]:
    """The URLs that are not under ``origin`` (data: and blob: URLs count as inside)."""
    return [u for u in urls if not (u.startswith(origin + "/") or u.startswith(("data:", "blob:", "about:")))]


#: An absolute or protocol-relative URL whose host is not this machine.
OFF_SITE = re.compile(r"(https?:)?//(?!(127\.0\.0\.1|localhost)[:/])")
#: A URL on another host in CSS: ``url(//host/...)``, ``url("https://...")`` or ``@import "https://..."``.
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])((?:https?:)?//[^'")\s]+)""")


class _ExternalRefs(HTMLParser):
    """Collect URLs of things a page loads (script, stylesheet, image, frame, media) that point off-site."""

    ATTRS = {"script": ("src",), "link": ("href",), "img": ("src", "srcset"), "iframe": ("src",),
             "source": ("src", "srcset"), "video": ("src", "poster"), "audio": ("src",), "embed": ("src",),
             "object": ("data",), "input": ("src",)}

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in_style = tag == "style"
        if attrs.get("style"):
            self.found += [f"<{tag} style=url({u})>" for u in CSS_URL.findall(attrs["style"])]
        if tag == "link" and (attrs.get("rel") or "") in ("canonical", "alternate"):
            return  # metadata, never fetched by a browser
        for name in self.ATTRS.get(tag, ()):
            for value in re.split(r",\s*", attrs.get(name) or ""):
                value = value.strip().split(" ")[0]
                if OFF_SITE.match(value):
                    self.found.append(f"<{tag} {name}={value}>")

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.found += [f"<style> {u}" for u in CSS_URL.findall(data)]


def external_references(root: str | os.PathLike) -> dict[str, list[str]]:
    """Scan every HTML and CSS file under ``root`` for resources loaded from another host."""
    root = Path(root)
    out: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.html")):
        parser = _ExternalRefs()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        if parser.found:
            out[str(path.relative_to(root))] = parser.found
    for path in sorted(root.rglob("*.css")):
        found = CSS_URL.findall(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            out[str(path.relative_to(root))] = found
    return out
