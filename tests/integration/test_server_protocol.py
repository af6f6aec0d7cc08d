"""The test server against docs/PROTOCOL.md, with raw HTTP requests: the facts the agent relies on."""
import http.client
import signal
import threading
import time
import unittest

from harness import ENDPOINT_PATH, Target, start_server, wait_until


class Request(threading.Thread):
    """One HTTP request on its own connection, in the background (the server holds requests)."""

    def __init__(self, port, method="GET", body=None, headers=None):
        super().__init__(daemon=True)
        self.port, self.method, self.body, self.headers = port, method, body, dict(headers or {})
        self.status = None
        self.response_headers = {}
        self.data = None
        self.started = threading.Event()
        self.done_at = None
        self.error = None
        self.start()
        self.started.wait(5)

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(self.method, ENDPOINT_PATH, body=self.body, headers=self.headers)
            self.started.set()
            response = conn.getresponse()
            self.status = response.status
            self.response_headers = {k.lower(): v for k, v in response.getheaders()}
            self.data = response.read()
        except OSError as e:
            self.error = e
        finally:
            self.done_at = time.monotonic()
            self.started.set()
            conn.close()

    def result(self, timeout=10):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"{self.method} still held after {timeout} s")
        if self.error is not None:
            raise AssertionError(f"{self.method} failed: {self.error!r}")
        return self.status


def post(port, seq, body):
    return Request(port, "POST", body, {"x-seq": str(seq), "Content-Type": "application/octet-stream"})


class ServerProtocol(unittest.TestCase):
    def setUp(self):
        self.target = Target()
        # --log-requests: the tests wait for the server to have held a request before the next goes
        # (requests on separate connections race otherwise, and the case under test may not happen).
        self.server, self.port = start_server(self.target.port, "--long-poll-ms", "300", "--disconnect-ms", "5000",
                                              "--log-requests")

    def tearDown(self):
        self.server.stop(signal.SIGKILL)
        self.target.close()

    def test_a_third_request_releases_the_oldest_with_429(self):
        first = Request(self.port)
        self.server.wait_for_line(r"held GET")
        second = Request(self.port)
        wait_until(lambda: self.server.count(r"held GET") == 2, 10, "the second GET held", self.server.cond)
        # Until a third arrives, both stay held (a 204 comes only after the long poll).
        third = post(self.port, 1, b"x")
        self.assertEqual(first.result(), 429)
        # The payload reached the target, whose echo went out on the oldest held request (second).
        self.assertEqual(second.result(), 200)
        self.assertEqual(second.data, b"x")
        self.assertEqual(second.response_headers["x-seq"], "1")
        self.assertIn(third.result(), (204, 200))

    def test_an_idle_request_gets_204_after_the_long_poll(self):
        start = time.monotonic()
        request = Request(self.port)
        self.assertEqual(request.result(), 204)
        # One to two poll timeouts (the server looks at held requests when its target read times out).
        self.assertGreaterEqual(request.done_at - start, 0.3)
        self.assertLess(request.done_at - start, 2.0)

    def test_payloads_reach_the_target_in_x_seq_order(self):
        requests = [Request(self.port)]
        self.target.wait_opened(1)
        requests.append(post(self.port, 2, b"world"))  # early: queued until x-seq 1 arrives
        self.server.wait_for_line(r"x-seq 2 early: queued")  # so the reorder map is surely used
        requests.append(post(self.port, 1, b"hello "))
        wait_until(lambda: self.target.received >= 11, 10, "11 bytes at the target", self.target.cond)
        # Collect the echo, in the server's x-seq order, from whichever requests carried it.
        payloads = {}
        while sum(len(p) for p in payloads.values()) < 11:
            for request in requests:
                if request.result() == 200:
                    payloads[int(request.response_headers["x-seq"])] = request.data
            requests = [Request(self.port)]
        echoed = b"".join(payloads[k] for k in sorted(payloads))
        self.assertEqual(echoed, b"hello world")

    def test_x_disconnect_closes_the_target_and_answers_held_requests_410(self):
        held = Request(self.port)
        self.target.wait_opened(1)
        disconnect = Request(self.port, "POST", b"", {"Content-Type": "application/x-disconnect"})
        self.assertEqual(held.result(), 410)
        self.assertEqual(disconnect.result(), 410)
        self.target.wait_closed(1, timeout=10)
        self.server.wait_for_line(r"target connection 1 closed: x-disconnect")

    def test_server_x_seq_restarts_at_1_with_a_new_target_connection(self):
        for connection in (1, 2):
            waiting = Request(self.port)
            self.target.wait_opened(connection)
            poster = post(self.port, 1, b"ping")
            statuses = {waiting.result(), poster.result()}
            answered = waiting if waiting.status == 200 else poster
            self.assertEqual(answered.response_headers.get("x-seq"), "1", statuses)
            Request(self.port, "POST", b"", {"Content-Type": "application/x-disconnect"}).result()
            self.target.wait_closed(connection)
            self.server.wait_for_line(rf"target connection {connection} closed")

    def test_more_than_100_early_payloads_fail_with_500(self):
        # x-seq 1 never comes: 100 payloads may wait for it, the 101st is too many. The 101st goes
        # alone, once the 100 are queued and answered: a request arriving after it would release it
        # with 429 before its failed forward could answer 500 (the reference can do the same).
        # One at a time, each once the last is queued: sent at once, some are released by the next
        # before their bodies are read (lost, as on the reference) and take no slot.
        requests = []
        for seq in range(2, 102):
            requests.append(post(self.port, seq, b"z"))
            self.server.wait_for_line(rf"x-seq {seq} early: queued", timeout=20)
        self.server.wait_for_line(r"queued, 100 of 100 slots used")
        statuses = [r.result(20) for r in requests]
        self.assertNotIn(500, statuses)
        self.assertEqual(post(self.port, 102, b"z").result(20), 500)
        self.server.wait_for_line(r"Too many messages queued")
        self.assertEqual(self.target.received, 0, "nothing reaches the target while x-seq 1 is missing")


if __name__ == "__main__":
    unittest.main()
