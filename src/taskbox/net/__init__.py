"""What every outgoing HTTP request of a run shares: the SSRF guard and the HTTP error taxonomy.

Why a package of its own: both the ``http``/``http-job`` executors (:mod:`taskbox.http`) and storage's
``http(s)://`` backend (:mod:`taskbox.storage.httpstore`) send requests to addresses built from inputs,
and storage sits below the executors' helpers. Keeping the guard here lets both use it without a layer
importing one above it.

Invariants:
    * Importing this package imports nothing; httpx is imported by :mod:`taskbox.net.guard` only.
"""
