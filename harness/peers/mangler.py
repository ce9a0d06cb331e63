"""A mangling proxy: a real peer's replies, mutated per connection, reproducibly.

``Mangler`` listens on loopback in front of one or more real peers (a
RawHTTPServer, a slapd). What the client sends passes through untouched;
what the peer says back is cut into frames (``stream``: everything up to
the peer's EOF, for HTTP and line protocols; ``ber``: one LDAPMessage
each) and most frames are mutated before they reach the client: bit
flips, byte replacement, truncation (then a close or a stall), random and
huge insertions, a duplicated segment, CR/LF games, a length made huge
(Content-Length, a chunk size, a number; a BER length), delivery in small
pieces or as a slow drip.

Connection ``index`` draws everything (which peer, which frames, which
mutations, where) from ``random.Random(f"{seed}/{index}")`` in frame
order, so its mangling is reproducible from (seed, index) alone, given the
same peer bytes; ``expect(index)`` says which index the next connection
gets (one mangler per sequence of runs, so that run k is connection k).

    with Mangler([(srv.host, srv.port)], seed=7) as mangler:
        mangler.expect(42)
        run_check(mangler.port)
        mangler.mutations(42)   # ['peer 0', 'frame 0 flip: byte 17 0x48->0x40', …]
"""

import random
import re
import socket
import threading
import time

from harness.peers.sockets import SocketPeer, pipe

# What a frame may suffer, and how often each is drawn (relative weights).
KINDS = {
    "flip": 3, "replace": 3, "truncate": 3, "insert": 2, "huge": 1, "duplicate": 2,
    "crlf": 2, "length": 3, "split": 2, "drip": 1,
}
# Chance that a frame is mutated at all, by framing: a reply of several LDAP messages
# mostly gets one mangled message, and some connections none (the controls).
RATES = {"stream": 0.85, "ber": 0.35}
HUGE_SIZES = (4095, 4096, 65536, 1 << 20, 4 << 20)
BAD_NUMBERS = (b"99999999999999999999999", b"18446744073709551615", b"18446744073709551616",
                b"4294967296", b"2147483648", b"-1", b"0", b"+7", b" 20", b"1e400", b"nan",
                b"ffffffffffffffff", b"")
BAD_BER_LENGTHS = (b"\x84\xff\xff\xff\xff", b"\x84\x7f\xff\xff\xff", b"\x88" + b"\xff" * 8,
                    b"\x80", b"\xff", b"\x85\x01\x00\x00\x00\x00", b"\x00", b"\x81\x7f")
SPECIAL_BYTES = b"\x00\xff\x80\x7f\r\n :%0\x84\x04"  # delimiters, BER tags, sign bits


class Delivery:
    """One frame on its way to the client: bytes, pace, and what follows it.

    ``pieces``: None (one write) or (largest piece, pause range in seconds);
    ``end``: None (go on), ``close`` (close the connection after it) or
    ``stall`` (say nothing more, keep the connection open).
    """

    __slots__ = ("data", "pieces", "end", "notes")

    def __init__(self, data):
        self.data = data
        self.pieces = None
        self.end = None
        self.notes = []


# -- mutations: each changes a Delivery, drawing from the connection's rng ---------------

HEAD = 48  # half of the positions drawn fall in a frame's first bytes, where parsers start


def _at(rng, data, tail=False):
    """A random position in ``data`` (``tail``: the end too), often near its start."""
    room = len(data) + (1 if tail else 0)
    if not room:
        return 0
    return rng.randrange(min(room, HEAD) if rng.random() < 0.5 else room)


def _bytes(rng, frame, counts, change):
    """Change a few bytes (how many: drawn from ``counts``), each to ``change(old)``."""
    data = bytearray(frame.data)
    changed = []
    for _ in range(rng.choice(counts)):
        if not data:
            break
        at = _at(rng, data)
        old, data[at] = data[at], change(data[at])
        changed.append(f"byte {at} {old:#04x}->{data[at]:#04x}")
    frame.data = bytes(data)
    return ", ".join(changed) or "no bytes"


def _flip(rng, frame, framing):
    return _bytes(rng, frame, (1, 1, 2, 3, 8), lambda old: old ^ (1 << rng.randrange(8)))


def _replace(rng, frame, framing):
    return _bytes(rng, frame, (1, 1, 2, 4, 8), lambda old: rng.choice(SPECIAL_BYTES)
                  if rng.random() < 0.5 else rng.randrange(256))


def _truncate(rng, frame, framing):
    cut = _at(rng, frame.data)
    whole = len(frame.data)
    frame.data = frame.data[:cut]
    frame.end = "stall" if rng.random() < 0.2 else "close"
    return f"at {cut} of {whole}, then {frame.end}"


def _insert(rng, frame, framing):
    at = _at(rng, frame.data, tail=True)
    run = rng.randbytes(rng.randint(1, 64))
    frame.data = frame.data[:at] + run + frame.data[at:]
    return f"{len(run)} random bytes at {at}"


def _huge(rng, frame, framing):
    at = _at(rng, frame.data, tail=True)
    size = rng.choice(HUGE_SIZES)
    fill = rng.choice((b"A", b"\0", b"\r\n", b"0", b"\x30\x84", None))
    run = rng.randbytes(size) if fill is None else (fill * size)[:size]
    frame.data = frame.data[:at] + run + frame.data[at:]
    return f"{size} bytes of {'random' if fill is None else repr(fill)} at {at}"


def _duplicate(rng, frame, framing):
    data = frame.data
    start = _at(rng, data)
    end = rng.randint(start, len(data)) if rng.random() < 0.7 else len(data)
    if rng.random() < 0.3:
        start, end = 0, len(data)  # the whole frame twice
    frame.data = data[:end] + data[start:end] + data[end:]
    return f"bytes {start}..{end}"


CRLF_GAMES = {
    "LF only": lambda rng, d: d.replace(b"\r\n", b"\n"),
    "CR only": lambda rng, d: d.replace(b"\r\n", b"\r"),
    "CR CR LF": lambda rng, d: d.replace(b"\r\n", b"\r\r\n"),
    "no header end": lambda rng, d: d.replace(b"\r\n\r\n", b"\r\n", 1),
    "early header end": lambda rng, d: _put(d, _at(rng, d, tail=True), b"\r\n\r\n"),
    "bare CR or LF": lambda rng, d: _put(d, _at(rng, d, tail=True), rng.choice((b"\r", b"\n"))),
    "many CRLF": lambda rng, d: _put(d, _at(rng, d, tail=True), b"\r\n" * rng.randint(2, 5000)),
    "header folding": lambda rng, d: d.replace(b"\r\n", b"\r\n ", rng.randint(1, 4)),
}


def _put(data, at, run):
    return data[:at] + run + data[at:]


def _crlf(rng, frame, framing):
    game = rng.choice(sorted(CRLF_GAMES))
    frame.data = CRLF_GAMES[game](rng, frame.data)
    return game


def _length(rng, frame, framing):
    if framing == "ber":
        fields = ber_lengths(frame.data)
        if fields:
            at, size = rng.choice(fields)
            new = rng.choice(BAD_BER_LENGTHS)
            frame.data = frame.data[:at] + new + frame.data[at + size:]
            return f"BER length at {at} := {new.hex()}"
    else:
        fields = number_fields(frame.data)
        if fields:
            (start, end), what = rng.choice(fields)
            new = rng.choice(BAD_NUMBERS)
            frame.data = frame.data[:start] + new + frame.data[end:]
            return f"{what} at {start} := {new!r}"
    return _replace(rng, frame, framing)  # nothing length-like in it


def _split(rng, frame, framing):
    frame.pieces = (rng.randint(1, 512), (0.0, 0.002))
    return f"pieces of up to {frame.pieces[0]} B"


def _drip(rng, frame, framing):
    frame.pieces = (rng.randint(1, 16), (0.005, rng.choice((0.02, 0.05, 0.1))))
    return f"up to {frame.pieces[0]} B per {frame.pieces[1][1] * 1000:.0f} ms at most"


MUTATIONS = {"flip": _flip, "replace": _replace, "truncate": _truncate, "insert": _insert,
             "huge": _huge, "duplicate": _duplicate, "crlf": _crlf, "length": _length,
             "split": _split, "drip": _drip}


def mangle(rng, data, framing="stream", rate=None):
    """``data`` (one frame) as connection ``rng`` delivers it: a Delivery; its ``notes``
    say what was done (none: a control frame, passed on as it came). ``rate``: the
    chance that it is mutated at all (default: RATES[framing])."""
    frame = Delivery(data)
    if rng.random() >= (RATES[framing] if rate is None else rate):
        return frame
    names = sorted(KINDS)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        kind = rng.choices(names, weights=[KINDS[n] for n in names])[0]
        frame.notes.append(f"{kind}: {MUTATIONS[kind](rng, frame, framing)}")
        if frame.end:
            break
    return frame


# -- where the lengths are ---------------------------------------------------------------

_NUMBER_FIELDS = (
    (re.compile(rb"(?i)content-length:[ \t]*(\d+)"), "Content-Length"),
    (re.compile(rb"(?:^|\r\n\r\n|\r\n)([0-9a-fA-F]+)\r\n(?=.)", re.S), "chunk size"),
    (re.compile(rb"(\d+)"), "number"),
)


def number_fields(data):
    """((start, end), what) of the length-like numbers in a text reply: the Content-Length
    values, else the chunk sizes, else every run of digits."""
    found = []
    for pattern, what in _NUMBER_FIELDS:
        found = [(m.span(1), what) for m in pattern.finditer(data)]
        if found:
            return found
    return found


def _ber_length(data, pos, end):
    """(bytes the BER length field at ``pos`` takes, the length it says), or None when it
    is indefinite or runs past ``end``."""
    if pos >= end:
        return None
    first = data[pos]
    size = 1 + (first & 0x7F if first & 0x80 else 0)
    if first == 0x80 or pos + size > end:
        return None
    return size, first if size == 1 else int.from_bytes(data[pos + 1:pos + size], "big")


def ber_lengths(data, depth=0, start=0, end=None):
    """(offset, size) of every BER length field in ``data`` (constructed values recursed
    into; a field that runs past the data ends the walk)."""
    end = len(data) if end is None else end
    found = []
    pos = start
    while pos < end and depth < 16:
        tag = data[pos]
        field = _ber_length(data, pos + 1, end)
        if field is None:
            break
        size, length = field
        found.append((pos + 1, size))
        content = pos + 1 + size
        if content + length > end:
            break
        if tag & 0x20:
            found += ber_lengths(data, depth + 1, content, content + length)
        pos = content + length
    return found


def ber_frames(buffer):
    """Complete BER values at the start of ``buffer``: (frames, rest)."""
    frames = []
    while True:
        field = _ber_length(buffer, 1, len(buffer))
        if field is None or len(buffer) < 1 + field[0] + field[1]:
            return frames, buffer
        total = 1 + field[0] + field[1]
        frames.append(bytes(buffer[:total]))
        buffer = buffer[total:]


FRAMERS = {
    "stream": lambda buffer: ([], buffer),  # one frame: all of it, at the peer's EOF
    "ber": ber_frames,
}


# -- the proxy ---------------------------------------------------------------------------

class Mangler(SocketPeer):
    """The proxy; see the module docstring.

    ``upstreams``: (host, port) of the real peers, one drawn per connection;
    ``framing``: ``stream`` or ``ber``; ``rate``: the chance that a frame is
    mutated (default RATES[framing]); ``drip_limit``: seconds a drip may
    last before the rest of the frame goes at once; ``stall_limit``: how
    long a stalled connection is held open at most.
    """

    def __init__(self, upstreams, seed, framing="stream", rate=None, drip_limit=3.0,
                 stall_limit=30.0):
        self.upstreams = list(upstreams)
        self.seed = seed
        self.framing = framing
        self.rate = rate
        self.drip_limit = drip_limit
        self.stall_limit = stall_limit
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._next = 0
        self._notes = {}
        self._done = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open = set()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def expect(self, index):
        """The next connection is connection ``index`` (later ones count on from it)."""
        with self._lock:
            self._next = index

    def mutations(self, index, within=5.0):
        """What was done to connection ``index``: the peer drawn, then one note per
        mutation (``frame N KIND: …``); None if there was no such connection. Waits
        up to ``within`` seconds for the connection to be over."""
        done = self._done.get(index)
        if done is None:
            return None
        done.wait(within)
        return list(self._notes[index])

    def close(self):
        self._stop.set()
        self.sock.close()
        with self._lock:
            for sock in list(self._open):
                _close(sock)
        for thread in list(self._threads):
            thread.join(5)

    # -- internals -------------------------------------------------------------------
    def _accept(self):
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:  # the 0.1 s poll, or closed
                continue
            client.settimeout(None)
            with self._lock:
                index, self._next = self._next, self._next + 1
                self._notes[index] = []
                self._done[index] = threading.Event()
                self._open.add(client)
            thread = threading.Thread(target=self._serve, args=(client, index), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, client, index):
        rng = random.Random(f"{self.seed}/{index}")
        notes = self._notes[index]
        which = rng.randrange(len(self.upstreams))
        notes.append(f"peer {which}")
        client_gone = threading.Event()
        try:
            peer = socket.create_connection(self.upstreams[which], timeout=30)
        except OSError as exc:
            notes.append(f"peer unreachable: {exc}")
            self._forget(client)
            self._done[index].set()
            return
        with self._lock:
            self._open.add(peer)
        pump = threading.Thread(target=self._pump, args=(client, peer, client_gone), daemon=True)
        pump.start()
        try:
            end = self._relay(rng, peer, client, notes)
            if end == "stall":
                client_gone.wait(self.stall_limit)
            elif end is None:
                client.shutdown(socket.SHUT_WR)
                client_gone.wait(self.stall_limit)  # let the client close first
        except OSError:  # the client hung up: nothing more to do for it
            pass
        finally:
            self._forget(client, peer)
            pump.join(5)
            self._done[index].set()

    def _relay(self, rng, peer, client, notes):
        """Frames from the peer, mangled, to the client; the last frame's ``end``."""
        buffer = b""
        frame_no = 0
        framer = FRAMERS[self.framing]
        while not self._stop.is_set():
            try:
                data = peer.recv(65536)
            except OSError:
                data = b""
            buffer += data
            frames, buffer = framer(buffer) if data else ([buffer] if buffer else [], b"")
            for frame in frames:
                delivery = mangle(rng, frame, self.framing, self.rate)
                notes.extend(f"frame {frame_no} {note}" for note in delivery.notes)
                frame_no += 1
                self._deliver(client, delivery)
                if delivery.end:
                    return delivery.end
            if not data:
                return None
        return "close"

    def _deliver(self, client, delivery):
        data = delivery.data
        if delivery.pieces is None:
            client.sendall(data)
            return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        largest, (low, high) = delivery.pieces
        rng = random.Random(len(data))  # pace only: what arrives does not depend on it
        limit = time.monotonic() + self.drip_limit
        pos = 0
        while pos < len(data):
            if time.monotonic() > limit:
                client.sendall(data[pos:])
                return
            size = rng.randint(1, largest)
            client.sendall(data[pos:pos + size])
            pos += size
            if self._stop.wait(rng.uniform(low, high)):
                return

    @staticmethod
    def _pump(client, peer, client_gone):
        """The client's bytes to the peer, untouched; ``client_gone`` at its EOF."""
        pipe(client, peer)
        client_gone.set()

    def _forget(self, *socks):
        with self._lock:
            for sock in socks:
                self._open.discard(sock)
                _close(sock)


def _close(sock):
    """Shut down (which wakes a thread blocked in recv on it), then close."""
    for end in (lambda: sock.shutdown(socket.SHUT_RDWR), sock.close):
        try:
            end()
        except OSError:
            pass
