"""The gateway: everything that goes over the network.

- ``client``: the requests session (auth only to the gateway, timeouts, retries, rate-limit ``Gate``,
  error answers to typed errors, ``bounded`` deadlines)
- ``protocols``: native (DashScope) and unified (OpenAI-style) routes, bodies and answers → ``Task``
- ``service``: submit, query, ``check_outcome``, ``fetch_video``, dry runs — one call per gateway action
- ``body``: the create body streamed, base64 of local files produced piece by piece
- ``download``: the resumable, verified download to ``<target>.part``, renamed into place
- ``upload``: local audio/video put in the user's S3-compatible bucket and sent by presigned URL

Progress and notes go to a ``wanvid.report.Reporter``; nothing here prints.
"""
