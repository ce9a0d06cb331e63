"""Streaming HTTP response reader with keepalived's exact digest rules.

Feed it each read as it arrives (``feed``); it never keeps the body, so
memory is flat whatever the body size. The rules are keepalived's
(check_http.c ``http_process_response``, lib/html.c), because a digest must
match HTTP_GET's byte for byte:

* the header ends at the first CRLFCRLF of the bytes accumulated so far and
  must do so within 4095 bytes (``room()`` drops to 0: keepalived then reads
  0 bytes, takes that as EOF and reports "no data");
* the "first buffer" is everything accumulated when the header end is
  seen, body bytes of that read included; the status code and a
  case-sensitive ``Content-Length:`` are searched in it (C string rules:
  the search stops at a NUL byte), the value parsed like ``strtoul`` and
  valid only when followed by CR, LF or the end of the buffer;
* only body bytes are hashed, at most Content-Length of them, raw
  (no chunk or content decoding); the status code does not matter here.

Hooks, all optional:

* ``observer``: an object with ``header_pending()`` (each read before the
  header end), ``header(raw)`` (the header, final CRLFCRLF included) and
  ``body(data, first)`` (the hashed part of each read; ``first`` for the
  body bytes that came with the header). genhash -v prints from these.
* ``on_body(data)``: every body byte as received (not cut at
  Content-Length), one call per read. ``data`` may be a memoryview over a
  reused buffer: copy what you keep. For a streamed regex, for instance.
* ``body_prefix``: keep the first N body bytes in ``body_prefix`` (bounded,
  for a regex over the start of the page without a callback).
"""

HEADER_LIMIT = 4095  # keepalived: MAX_BUFFER_LENGTH (4096) - 1 for the NUL
_SIZE_MAX = 2**64 - 1  # keepalived's "no Content-Length"
_C_SPACE = b" \t\n\v\f\r"


def strtoul(buf, pos):
    """C ``strtoul(buf + pos, &end, 10)`` on bytes: (value, end)."""
    n = len(buf)
    i = pos
    while i < n and buf[i] in _C_SPACE:
        i += 1
    negative = False
    if i < n and buf[i] in b"+-":
        negative = buf[i] == 0x2D
        i += 1
    j = i
    while j < n and 0x30 <= buf[j] <= 0x39:
        j += 1
    if j == i:
        return 0, pos
    value = int(buf[i:j])
    if value > _SIZE_MAX:
        return _SIZE_MAX, j
    return ((-value) % 2**64 if negative else value), j


def c_string(buf):
    """The part of ``buf`` a C string function sees (up to the first NUL)."""
    nul = buf.find(b"\0")
    return buf if nul < 0 else buf[:nul]


def content_length(first_buffer):
    """keepalived's extract_content_length: an int, or None when absent/invalid."""
    text = c_string(first_buffer)
    at = text.find(b"Content-Length:")
    if at < 0:
        return None
    value, end = strtoul(text, at + 15)
    if end < len(text) and text[end] not in b"\r\n":
        return None
    return None if value == _SIZE_MAX else value


def status_code(first_buffer):
    """keepalived's extract_status_code: 3 digits followed by a space, else 0."""
    buf = first_buffer
    n = len(buf)
    i = 0
    while i < n and buf[i] not in b" \r":
        i += 1
    if i >= n or buf[i] != 0x20:
        return 0
    i += 1
    if i + 3 >= n or buf[i] == 0x20 or buf[i + 3] != 0x20:
        return 0
    value, end = strtoul(buf[:i + 3], i)
    return value if end == i + 3 else 0


def parse_headers(raw):
    """Lenient (name, value) pairs from a raw header block, latin-1 text."""
    pairs = []
    for line in raw.split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip():
            pairs.append((name.strip().decode("latin-1"), value.strip().decode("latin-1")))
    return tuple(pairs)


def find_header(headers, name):
    """First value of header ``name`` (case-insensitive) in (name, value) pairs, or None."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


class ResponseReader:
    """Feed reads with ``feed``; read the outcome from the attributes."""

    def __init__(self, algorithms=("md5",), fast_start=False, observer=None,
                 on_body=None, body_prefix=0):
        self._hashers = []
        if algorithms:  # none for a check without --digest: no hash module to load
            from kachecks.http import digests

            self._hashers = [(name, digests.new(name, fast_start)) for name in algorithms]
        self._pending = bytearray()
        self._observer = observer
        self._on_body = on_body
        self._prefix_limit = body_prefix
        self.body_prefix = b""
        self.header_complete = False
        self.raw_header = b""
        self.status = 0
        self.reason = ""
        self.headers = ()
        self.content_length = None
        self.body_bytes = 0  # every body byte received
        self.hashed_bytes = 0  # body bytes that went into the digest
        self.total_bytes = 0
        self.reads = 0

    def room(self, read_size=HEADER_LIMIT):
        """How many bytes the next read may ask for; 0 means stop (header too long)."""
        if self.header_complete:
            return read_size
        return min(read_size, HEADER_LIMIT - len(self._pending))

    def feed(self, data):
        self.reads += 1
        self.total_bytes += len(data)
        if self.header_complete:
            self._body(data, False)
            return
        if self._observer is not None:
            self._observer.header_pending()
        self._pending += data
        end = self._pending.find(b"\r\n\r\n")
        if end < 0:
            return
        first = bytes(self._pending)
        self._pending = bytearray()
        end += 4
        self.header_complete = True
        self.raw_header = first[:end]
        self.status = status_code(first)
        self.content_length = content_length(first)
        status_line = first[:first.find(b"\r\n")]
        self.reason = status_line.split(b" ", 2)[2].decode("latin-1") if status_line.count(b" ") >= 2 else ""
        self.headers = parse_headers(self.raw_header[:-4])
        if self._observer is not None:
            self._observer.header(self.raw_header)
        self._body(memoryview(first)[end:], True)

    def skip(self, size):
        """``size`` body bytes received and thrown away unseen (``fetch`` when nothing needs
        them: no digest, no observer, no callback, no prefix): counted, nothing else."""
        self.reads += 1
        self.total_bytes += size
        self.body_bytes += size
        if self.content_length is None:
            self.hashed_bytes += size
        else:
            self.hashed_bytes = min(self.content_length, self.body_bytes)

    def _body(self, data, first):
        size = len(data)
        if not size:
            return
        if self._on_body is not None:
            self._on_body(data)
        if len(self.body_prefix) < self._prefix_limit:
            self.body_prefix += bytes(data[:self._prefix_limit - len(self.body_prefix)])
        limit = self.content_length
        seen = self.body_bytes
        self.body_bytes = seen + size
        if limit is not None and limit <= seen:
            return
        if limit is not None and limit < seen + size:
            data = data[:limit - seen]
        for _name, hasher in self._hashers:
            hasher.update(data)
        self.hashed_bytes += len(data)
        if self._observer is not None:
            self._observer.body(data, first)

    def header(self, name):
        return find_header(self.headers, name)

    def digests(self):
        """{algorithm: hex digest} of the hashed body bytes."""
        return {name: hasher.hexdigest() for name, hasher in self._hashers}

    def raw_digests(self):
        """{algorithm: digest bytes} (genhash -v dumps them)."""
        return {name: hasher.digest() for name, hasher in self._hashers}
