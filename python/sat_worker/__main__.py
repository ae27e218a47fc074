"""`python -m sat_worker`: one worker serving the protocol on stdin/stdout."""

from .server import serve

serve()
