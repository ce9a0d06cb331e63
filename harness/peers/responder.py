"""A loopback HTTP responder that is never the bottleneck: one asyncio loop, one thread.

Load tests and the bench point hundreds of checks at it: each connection gets the
same bytes after the request's blank line, then a close. No thread per connection,
no parsing beyond the end of the header, so a run costs the server a few tens of
microseconds and the numbers measured are the client's.

    with Responder(http_response(SERVER1)) as web:
        web.address      # "127.0.0.1:PORT"
        web.served       # requests answered so far
"""

import asyncio
import threading


class Responder:
    def __init__(self, response, host="127.0.0.1", backlog=4096):
        self.response = response
        self.host = host
        self.backlog = backlog
        self.port = None
        self.served = 0
        self._loop = None
        self._thread = None
        self._server = None
        self._ready = threading.Event()

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True, name="responder")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the responder did not start")
        return self

    def _run(self):
        self._loop = asyncio.new_event_loop()
        self._server = self._loop.run_until_complete(asyncio.start_server(
            self._serve, self.host, 0, backlog=self.backlog))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    async def _serve(self, reader, writer):
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            writer.write(self.response)
            await writer.drain()
            self.served += 1
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ConnectionError):
            pass
        finally:
            writer.close()

    def stop(self):
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
