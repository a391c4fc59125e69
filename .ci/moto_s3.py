"""moto's S3 server for the tests, with writes made atomic.

moto checks a PUT's If-Match / If-None-Match and then stores the object in
two steps with nothing between them, on a threaded server: two writers can
both pass the check and the second silently replaces the first, which real
S3 never allows. One lock around each writing request (PUT, POST, DELETE)
gives moto S3's semantics, so tests/publish_s3.rs's concurrent conditional
writes test feedwire rather than that race. Reads stay concurrent.

    python3 .ci/moto_s3.py HOST PORT    (PORT 0: the kernel picks; logged)
"""

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

WRITES = {"PUT", "POST", "DELETE"}


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serialised(environ, start_response):
        if environ.get("REQUEST_METHOD") not in WRITES:
            return app(environ, start_response)
        with lock:
            # The whole answer is produced inside the lock: the object is
            # stored by the time the iterable is consumed.
            return list(app(environ, start_response))

    run_simple(host, port, serialised, threaded=True)


if __name__ == "__main__":
    main()
