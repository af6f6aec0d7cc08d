"""A TCP relay on 127.0.0.1 that behaves like a slow link: each direction delays every byte by a
one-way delay and caps the rate, so the server reads bodies as they trickle in, the way it does
across a real network. Used by the lossless tests and the benchmark."""
import collections
import socket
import threading
import time


class _Wire:
    """One direction of the link, shared by every connection across it: the rate cap is the link's,
    as on a real one, not each connection's."""

    def __init__(self, bytes_per_s):
        self.bytes_per_s = bytes_per_s
        self.free_at = 0.0  # when the wire is free for the next chunk
        self.lock = threading.Lock()

    def take(self, size):
        """Books `size` bytes on the wire; returns when their last byte has left."""
        with self.lock:
            self.free_at = max(time.monotonic(), self.free_at) + size / self.bytes_per_s
            return self.free_at


class _Direction:
    """One direction of one relayed connection: bytes read from `src` reach `dst` after the delay,
    no faster than the wire carries them."""

    def __init__(self, src, dst, delay_s, wire):
        self.src, self.dst = src, dst
        self.delay_s, self.wire = delay_s, wire
        self.queue = collections.deque()  # (due time, bytes); None: the source closed
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self):
        try:
            while True:
                # Read no faster than the link carries, so that the sender's socket fills as on a
                # real link (its kernel sees the bytes unacknowledged), instead of all at once.
                with self.cond:
                    while self.wire.free_at - time.monotonic() > self.delay_s / 4:
                        self.cond.wait(self.wire.free_at - time.monotonic() - self.delay_s / 4)
                data = self.src.recv(16384)
                if not data:
                    break
                left_at = self.wire.take(len(data))
                with self.cond:
                    self.queue.append((left_at + self.delay_s, data))
                    self.cond.notify()
        except OSError:
            pass
        with self.cond:
            self.queue.append((time.monotonic() + self.delay_s, None))
            self.cond.notify()

    def _write(self):
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                due, data = self.queue[0]
                left = due - time.monotonic()
                if left > 0:
                    self.cond.wait(left)  # the link's delay itself, not a guess
                    continue
                self.queue.popleft()
            try:
                if data is None:
                    self.dst.shutdown(socket.SHUT_WR)
                    return
                self.dst.sendall(data)
            except OSError:
                try:
                    self.src.close()
                except OSError:
                    pass
                return


class Link:
    """Listens on 127.0.0.1:0 (`port`) and relays each connection to 127.0.0.1:`target_port` with
    `delay_ms` each way and at most `mbit` Mbit/s each way, for all its connections together."""

    def __init__(self, target_port, delay_ms=20, mbit=100, handshake=False):
        self.target_port = target_port
        # handshake: a new connection carries nothing for one round trip, as TCP's SYN and SYN-ACK
        # cost on a real link (the benchmark's connect-to-first-byte figure needs it).
        self.handshake = handshake
        self.delay_s = delay_ms / 1000
        self.up, self.down = _Wire(mbit * 1e6 / 8), _Wire(mbit * 1e6 / 8)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client):
        if self.handshake:
            time.sleep(2 * self.delay_s)  # the link's round trip itself, not a guess
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)  # little kept on our side
        self.conns += [client, upstream]
        _Direction(client, upstream, self.delay_s, self.up)
        _Direction(upstream, client, self.delay_s, self.down)

    def close(self):
        self.sock.close()
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass
