"""Counting the /v1/alt-text requests nginx logged, for the vlm-bulk tests' "no duplicate
requests" checks (shared by test_bulk.py and test_bulk_wordpress.py)."""
import time


def alt_requests(access_log):
    with open(access_log, "rb") as f:
        return sum(1 for line in f if b'"POST /v1/alt-text ' in line)


def settled_alt_requests(access_log, quiet=0.5, limit=10.0):
    """alt_requests() once the log has stopped growing: a request the killed tool left in
    flight is logged (499) only when nginx notices, which can be after the kill returns."""
    last, since, deadline = alt_requests(access_log), time.time(), time.time() + limit
    while time.time() < deadline:
        time.sleep(0.05)
        now = alt_requests(access_log)
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            break
    return last
