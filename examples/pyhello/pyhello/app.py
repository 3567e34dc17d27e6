"""A WSGI app: says which machine-environment and UID serve it and counts its visits in the
NFS-backed data folder."""
import os
from pathlib import Path

DATA = Path("/app/data")  # the NFS-backed data folder (compose binds it here)


def create_app():
    def app(environ, start_response):
        counter = DATA / "visits"
        try:
            visits = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(visits))
        except OSError as e:
            visits = f"not stored ({e.strerror})"
        body = (f"pyhello from {os.environ.get('TIN_MACHINE_NAME', '?')}-"
                f"{os.environ.get('TIN_SERVICE_ENVIRONMENT', '?')} uid {os.getuid()} "
                f"visits {visits} greeting {os.environ.get('PYHELLO_GREETING', '')}\n").encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app
