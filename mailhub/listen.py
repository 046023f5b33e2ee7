"""Parsing of HOST:PORT listen addresses given to the SMTP commands."""

from django.core.management.base import CommandError


def parse_listen(value: str) -> tuple[str, int]:
    """``127.0.0.1:2525`` or ``[::1]:2525`` → (host, port); a clear CommandError otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"Invalid listen address {value!r}: use HOST:PORT, e.g. 127.0.0.1:2525.")
    return host.strip("[]") or "127.0.0.1", int(port)
