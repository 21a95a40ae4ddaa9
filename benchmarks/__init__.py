"""`make bench`: wanvid's performance targets, measured against the built-in sandbox (see README.md).

Not part of `make test`: it takes minutes and its figures depend on the machine.
"""
