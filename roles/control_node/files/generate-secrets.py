"""Create the cluster's missing secrets on the control node, each in its own 0600 file, never printing one.

usage: generate-secrets.py DIR [--archive ARCHIVE_DIR] NAME:LENGTH... [NAME:fernet]
Existing files are kept; with --archive (rotation) each named existing file is first moved into ARCHIVE_DIR
(0700) and replaced. Prints the names of the files it created, one per line.
"""

import base64
import os
import secrets
import string
import sys

ALPHABET = string.ascii_letters + string.digits


def main() -> int:
    directory, specs = sys.argv[1], sys.argv[2:]
    archive = None
    if specs[:1] == ["--archive"]:
        archive, specs = specs[1], specs[2:]
    folders = [directory] + ([os.path.dirname(archive), archive] if archive else [])
    for folder in folders:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    for spec in specs:
        name, _, kind = spec.partition(":")
        path = os.path.join(directory, name)
        if archive and os.path.exists(path):
            os.replace(path, os.path.join(archive, name))
        if os.path.exists(path):
            continue
        if kind == "fernet":
            value = base64.urlsafe_b64encode(os.urandom(32)).decode()
        else:
            value = "".join(secrets.choice(ALPHABET) for _ in range(int(kind)))
        tmp = f"{path}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        os.replace(tmp, path)
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
