"""The request rules: what may be asked of which model, checked before anything is sent.

- ``models``: each model's rules (durations, resolutions, media limits), shared with the sandbox
- ``request``: ``VideoRequest`` and ``validate()``: flags or manifest values to a checked request
- ``media``: local images, audio and video identified by their content; ``mp4``: the MP4 container checks
  the downloader also uses
- ``task``: ``Task`` and the one ``Status`` vocabulary every protocol maps into
- ``manifest``: a batch's CSV/JSONL rows to typed request fields, with every problem kept per row

Pure rules: no network, no journal, nothing printed. Imports only ``wanvid.errors`` and ``wanvid.config``.
"""
