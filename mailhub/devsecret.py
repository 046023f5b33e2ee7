"""The development secret key: made once per installation, kept in ``var/``, never in the code.

A constant key in the source would be the same on every quick start, so anyone could forge the
sessions and signed links of any installation left in debug mode.
"""

import os
import secrets
from pathlib import Path


def dev_secret_key(*, path: Path) -> str:
    """The key stored at ``path``, created (readable by its owner only) when missing.

    Several processes may start at once: the key is written to a private temporary file and
    linked into place, which fails if another process won; everyone then reads the winner's key.
    """
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip()
