"""The store: what this machine remembers about tasks, so nothing paid for is lost or paid twice.

- ``journal``: the SQLite journal (schema and migrations, claims that keep two processes from paying for
  one request, ``.part`` bookkeeping, reads that never block a tab press)
- ``records``: journal rows from tasks and their updates, expiry, and the ``<video>.json`` sidecar

Below the gateway: it knows tasks and requests (``wanvid.rules``), never HTTP.
"""
