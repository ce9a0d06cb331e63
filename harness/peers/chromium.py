"""Debian's headless Chromium as the person looking at a page: its DOM and a screenshot.

    with Chromium(workdir) as browser:
        dom = browser.dump_dom("http://127.0.0.1:9662/")      # the DOM after loading
        png = browser.screenshot("http://127.0.0.1:9662/")    # bytes of a PNG
        browser.fetched_for_pages()                           # what they tried to fetch
                                                              # from anywhere else

Each run is a fresh ``--user-data-dir`` and the flags that keep a browser from talking
to anybody by itself (no background networking, component updates, sync, first-run
pages). Everything that is not loopback goes to a proxy of ours (``Outside``) that
records the request and answers nothing, and no name resolves: so
``fetched_for_pages()`` lists every resource a page tried to load from elsewhere (the
browser's own calls home, which no flag stops, left out). ``png_pixels`` reads a
screenshot back (8-bit RGB/RGBA PNG, as Chromium writes them) without any library.
"""

import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import zlib
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--no-default-browser-check", "--hide-scrollbars", "--no-pings",
         "--disable-domain-reliability", "--disable-client-side-phishing-detection",
         "--disable-breakpad", "--safebrowsing-disable-auto-update",
         "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,"
         "MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater,"
         "InterestFeedContentSuggestions,SigninInterceptBubble")


# Where Chromium calls by itself whatever the flags say (component updates, account
# checks): Google's service hosts, which no page of ours names. The rest is the page's.
BROWSER_OWN = ("google.com", "googleapis.com", "gstatic.com")


def missing():
    return None if shutil.which(CHROMIUM) else f"{CHROMIUM} not found (apt-get install chromium)"


class Outside:
    """A proxy that records the first line of every request sent to it (a CONNECT for
    https, a GET for http) and closes the connection: the "internet" of the browser."""

    def __init__(self):
        self.requests = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    head = conn.recv(4096)
                except OSError:
                    head = b""
                if head:
                    self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))

    def close(self):
        self._sock.close()


class ChromiumError(Exception):
    pass


class Chromium:
    def __init__(self, workdir, width=1400, height=900, timeout=90):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = (width, height)
        self.timeout = timeout
        self.outside = []  # request lines that reached the stand-in proxy
        self._proxy = None
        self.runs = 0

    def __enter__(self):
        self._proxy = Outside()
        self.outside = self._proxy.requests
        return self

    def __exit__(self, *exc):
        if self._proxy is not None:
            self._proxy.close()

    def fetched_for_pages(self):
        """The request lines that reached the proxy, less the browser's own calls (to
        BROWSER_OWN): what the pages loaded tried to fetch from outside loopback."""
        found = []
        for line in self.outside:
            parts = line.split()
            target = parts[1] if len(parts) > 1 else ""
            host = target.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].lower()
            if not any(host == own or host.endswith("." + own) for own in BROWSER_OWN):
                found.append(line)
        return found

    def _run(self, url, *extra):
        problem = missing()
        if problem:
            raise ChromiumError(problem)
        self.runs += 1
        profile = tempfile.mkdtemp(prefix=f"profile{self.runs}-", dir=self.dir)
        width, height = self.size
        argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--proxy-server=http://127.0.0.1:{self._proxy.port}",
                # loopback bypasses the proxy (Chromium's implicit rule); no name resolves
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                *extra, url]
        proc = subprocess.run(argv, capture_output=True, timeout=self.timeout,
                              stdin=subprocess.DEVNULL, cwd=self.dir)
        if proc.returncode != 0:
            raise ChromiumError(f"chromium exited {proc.returncode}:"
                                f" {proc.stderr.decode(errors='replace')[-2000:]}")
        return proc

    def dump_dom(self, url):
        """The serialised DOM once the page loaded (``--dump-dom``)."""
        return self._run(url, "--dump-dom").stdout.decode("utf-8")

    def screenshot(self, url, name="screenshot.png"):
        """A PNG of the window (``--screenshot``): its bytes; the file stays in workdir."""
        path = self.dir / name
        self._run(url, f"--screenshot={path}")
        return path.read_bytes()


def png_pixels(data):
    """(width, height, rows): each row a list of (r, g, b) of an 8-bit RGB or RGBA,
    non-interlaced PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}")
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc
                                      else corner)) & 0xFF
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, channels)])
        previous = line
    return width, height, rows
