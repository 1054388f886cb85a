"""What the pytest suites under secret-service/tests share (desktop/, portal/)."""

import time


def wait_for(what, predicate, timeout=20.0, step=0.1):
    """predicate()'s first true value, polled every `step` s; AssertionError after `timeout` s."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)
