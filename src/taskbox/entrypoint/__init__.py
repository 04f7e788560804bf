"""The entrypoint: the ``taskbox`` command and the run pipeline behind it (see docs/architecture.md).

Who imports whom (no cycles): ``cli`` -> ``execute``/``fast_execute``/``run`` -> ``pipeline`` ->
``resolvers``/``template``/``function`` -> ``commit``/``signals``/``protofiles``; ``cmdline`` (the command
line, built and parsed) imports nothing of taskbox at import time.
"""

from taskbox import _protobuf_startup

_protobuf_startup.install()  # before any *_pb2: protobuf's unused pure-Python backend loads on use only (~15 ms)
