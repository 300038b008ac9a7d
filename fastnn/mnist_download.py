"""Downloading one MNIST file from one mirror: checked, stored atomically, failures named.

pooch does the transfer, the md5 check and the atomic write; this module
gives it short timeouts, refuses HTML pages served as data, and turns what
went wrong into a few words for the user. pooch and requests are imported
only when a download is tried (0.15 s): a run that finds its data, or a
machine offline, never imports them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from . import idx
from .idx import DataError

#: (connect, read) seconds: an offline machine must fail fast, not hang.
TIMEOUT = (5, 30)

#: The reason given for a mirror whose host has no address.
HOST_NOT_FOUND = "host not found (offline?)"


class DownloadFailed(Exception):
    """A file could not be fetched from a mirror; ``reason`` says why, in a few words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def retrieve(url: str, md5: str, cache: Path) -> Path:
    """Download ``url`` into ``cache`` (kept under its own name) unless a copy of that md5 is there.

    Raises `DownloadFailed`.
    """
    if not host_resolves(url):
        raise DownloadFailed(HOST_NOT_FOUND)
    import pooch

    try:
        with _quiet(pooch.get_logger()):
            return Path(pooch.retrieve(url, known_hash=f"md5:{md5}", fname=url.rsplit("/", 1)[-1],
                                       path=cache, downloader=_fetch, progressbar=False))
    except (OSError, ValueError, DataError) as err:
        raise DownloadFailed(_why(err, md5)) from None


def host_resolves(url: str) -> bool:
    """False when the URL's host has no address and no proxy would resolve it for us.

    Checked before importing the downloader, so that an offline machine
    falls back to the sample quickly on every run; the download itself
    would fail with the same reason.
    """
    host = urlsplit(url).hostname
    if not host or _proxy_configured():
        return True
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    except OSError:  # something else went wrong: let the download report it
        return True
    return True


def _proxy_configured() -> bool:
    """Whether requests would go through a proxy (which resolves hosts itself)."""
    if any(value and name.lower().endswith("_proxy") and name.lower() != "no_proxy"
           for name, value in os.environ.items()):
        return True
    if sys.platform in ("darwin", "win32"):  # also system settings; urllib reads them (0.05 s)
        import urllib.request

        return bool(urllib.request.getproxies())
    return False


def _fetch(url: str, output_file, pooch_instance, check_only: bool = False):
    """pooch's HTTP downloader with short timeouts, refusing HTML pages served as data."""
    import pooch

    http = pooch.HTTPDownloader(progressbar=False, timeout=TIMEOUT)
    result = http(url, output_file, pooch_instance, check_only=check_only)
    if not check_only:
        with open(output_file, "rb") as f:
            if idx.looks_like_html(f.read(512)):
                # pooch deletes its temporary file when this propagates.
                raise DataError("served an HTML/XML page instead of the file (an error, login "
                                "or proxy page?)")
    return result


@contextlib.contextmanager
def _quiet(logger: logging.Logger):
    """Silence pooch's "Downloading ..." lines; fastnn reports through `note` and `log`."""
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _why(err: Exception, expected_md5: str) -> str:
    """A short reason for a failed download."""
    import requests

    text = str(err)
    if isinstance(err, DataError):
        return err.problem
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code} {err.response.reason or ''}".strip()
    if "IncompleteRead" in text or "Connection broken" in text:
        return "connection broken mid-transfer"
    if isinstance(err, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(err, requests.ConnectionError):
        if "NameResolution" in text or "resolve" in text:
            return HOST_NOT_FOUND
        if "refused" in text:
            return "connection refused"
        return "cannot connect"
    if isinstance(err, requests.Timeout):
        return "timed out"
    if isinstance(err, requests.RequestException):
        return f"{type(err).__name__}: {text}"
    if isinstance(err, ValueError) and "hash" in text:
        got = re.search(r"but got ([0-9a-fA-F]+)", text)
        return (f"checksum mismatch (md5 {got.group(1) if got else '?'}, expected "
                f"{expected_md5}): a corrupt or changed file")
    if isinstance(err, OSError):
        return f"cannot write the cache ({err.strerror or err})"
    return f"{type(err).__name__}: {text}"
