"""A loopback S3 endpoint that lists as many objects as a test wants without holding them: keys, sizes and
ETags are computed per page on request, so a mirror of a whole large collection (8 million objects) costs
nothing to build. Object bodies are not served (listings only). It counts the requests and the objects it
listed, so a test can check how much of the store a call looked at.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGE = 1000
OBJECT_BYTES = 500_000
ETAG = "0" * 32


@dataclass
class HugeStore:
    base: str = ""
    counts: dict[str, int] = field(default_factory=dict)  # "<bucket>/<prefix>" -> objects under it
    requests: int = 0
    objects_listed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def page(self, bucket: str, prefix: str, start: int) -> bytes:
        total = self.counts.get(f"{bucket}/{prefix}", 0)
        end = min(total, start + PAGE)
        with self._lock:
            self.requests += 1
            self.objects_listed += max(0, end - start)
        contents = "".join(
            f"<Contents><Key>{prefix}{i:08d}.dcm</Key><Size>{OBJECT_BYTES}</Size>"
            f"<ETag>&quot;{ETAG}&quot;</ETag></Contents>"
            for i in range(start, end)
        )
        more = end < total
        token = f"<NextContinuationToken>{end}</NextContinuationToken>" if more else ""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>{token}{contents}</ListBucketResult>"
        ).encode()


@contextmanager
def serve_huge_store() -> Iterator[HugeStore]:
    store = HugeStore()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            parts = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parts.query)
            bucket = parts.path.strip("/").split("/")[0]
            if "list-type" not in query:
                self.send_error(404)
                return
            body = store.page(
                bucket, query.get("prefix", [""])[0], int(query.get("continuation-token", ["0"])[0])
            )
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    store.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield store
    finally:
        httpd.shutdown()
        httpd.server_close()
