"""The gateway layer over real HTTP on 127.0.0.1: the client, downloads, uploads, and every answer variant the
real gateway gives (its code and documents), hostile servers and networks included."""
