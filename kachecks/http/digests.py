"""Hash objects for the body digest, chosen for start-up or for throughput.

``hashlib`` loads OpenSSL's libcrypto (about 5 ms of CPU at start-up) but
hashes MD5 ~30 % and SHA-256 ~6x faster than CPython's built-in modules.
A check forked every few seconds on a small page wants ``fast_start``;
genhash on a big body wants throughput. Same digests either way.
"""

ALGORITHMS = ("md5", "sha1", "sha256")
HEX_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256"}


def new(algorithm, fast_start=False):
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown hash algorithm {algorithm!r}")
    if fast_start:
        if algorithm == "md5":
            import _md5

            return _md5.md5()
        if algorithm == "sha1":
            import _sha1

            return _sha1.sha1()
        try:
            import _sha2 as module  # Python >= 3.12
        except ImportError:
            import _sha256 as module
        return module.sha256()
    import hashlib

    return hashlib.new(algorithm)


def algorithm_for_hex(hexdigest):
    """md5, sha1 or sha256 from a hex digest's length (None if none fits)."""
    return HEX_LENGTHS.get(len(hexdigest))
