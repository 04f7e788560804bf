"""The core of the ``http`` executor: config, request building and templating, client and outputs.

Why: the executor module stays a thin adapter; each concern here is testable on its own.

Invariants:
    * Importing this package imports nothing heavy; httpx is imported by :mod:`taskbox.http.client`
      only (the SSRF guard and the error taxonomy live in :mod:`taskbox.net`).
"""
