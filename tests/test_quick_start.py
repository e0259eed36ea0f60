"""The README's quick start on stock Debian 12 and 13, up to the virtualenv (issue 29).

For each distro, a container made from a copy of the lab's debootstrap base image (a minimal Debian: no git, no make,
no python3-venv) runs the quick start's commands as the README gives them: install git and make, clone the project,
then `make venv`, and the virtualenv's CLI and ansible-playbook must work.

The README's quick start is the one place for those commands: a fenced ```sh block under the heading
`## Quick start` whose lines are, in order, QUICK_START below (the apt-get lines may start with sudo, and comments
are ignored). The test reads them from there.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from airflow_cluster.lab.images import ensure_base

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DISTROS = ("bookworm", "trixie")
# For each distro's container: apt, the clone, `make venv` (pip downloads ~150 MB) and the two checks.
TIMEOUT = 15 * 60
# The shape of the quick start's commands; <url> stands for any URL, replaced by the repository under test.
QUICK_START = (
    ("apt-get", "update"),
    ("apt-get", "install", "-y", "git", "make"),
    ("git", "clone", "<url>", "airflow-cluster"),
    ("cd", "airflow-cluster"),
    ("make", "demo"),
    ("make", "test"),
)
# Where the containers see the repository under test, and the host's CA bundle.
SRC = "/src"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_IN_CONTAINER = "/run/host-ca.crt"


class QuickStartError(Exception):
    """The README's quick start is missing or differs from QUICK_START."""


def quick_start_commands(readme: str) -> list[list[str]]:
    """The commands of the ```sh block under `## Quick start`, each split into words; raises QuickStartError
    when there is no such block or its commands are not QUICK_START's, in that order."""
    expected = "\n".join(shlex.join(c) for c in QUICK_START)
    lines = readme.splitlines()
    try:
        start = lines.index("## Quick start")
    except ValueError:
        raise QuickStartError(f"README.md has no heading '## Quick start' followed by:\n{expected}") from None
    block = None
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("#"):
            break
        if lines[i].strip() == "```sh":
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
            block = lines[i + 1 : end]
            break
    if block is None:
        raise QuickStartError(f"README.md's quick start has no ```sh block with:\n{expected}")
    commands = [shlex.split(line, comments=True) for line in block if not line.lstrip().startswith("#")]
    commands = [c[1:] if c[:1] == ["sudo"] else c for c in commands if c]
    shapes = [tuple("<url>" if (c[:2] == ["git", "clone"] and i == 2) else w for i, w in enumerate(c))
              for c in commands]
    if shapes != list(QUICK_START):
        got = "\n".join(shlex.join(c) for c in commands)
        raise QuickStartError(f"README.md's quick start block should be:\n{expected}\nbut it is:\n{got}")
    return commands


def container_script(commands: list[list[str]]) -> str:
    """The quick start's commands as the container runs them."""
    update, install, clone, cd, _demo, _test = commands
    return "\n".join([
        "set -euxo pipefail",
        shlex.join(update),
        shlex.join(install),
        shlex.join([*clone[:2], SRC, *clone[3:]]),
        shlex.join(cd),
        # `make demo` starts the lab's machines, which cannot run inside this container. Its prerequisites are
        # host-deps and venv: venv is where a stock system lacked something (python3-venv) and the part a control
        # node needs on its own; the lab's packages are installed the same way by the same Makefile.
        "make venv",
        ".venv/bin/airflow-cluster --help >/dev/null",
        ".venv/bin/ansible-playbook -i inventory/sample --syntax-check playbooks/site.yml",
        'echo "quick start passed in ${SECONDS}s"',
    ])


def work_tree_snapshot(scratch: Path) -> Path:
    """A bare clone of the repository under test whose HEAD is a commit of the work tree as it is now (uncommitted
    changes, deleted files and untracked files that are not ignored included), so the container clones it as a user
    clones the project and gets this work tree's Makefile. The repository itself is not written to: the commit is
    made in the clone, with an index of its own."""
    repo = scratch / "src.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(ROOT), str(repo)], check=True)
    env = dict(os.environ, GIT_DIR=str(repo), GIT_WORK_TREE=str(ROOT), GIT_INDEX_FILE=str(scratch / "index"),
               GIT_AUTHOR_NAME="quick start test", GIT_AUTHOR_EMAIL="test@localhost",
               GIT_COMMITTER_NAME="quick start test", GIT_COMMITTER_EMAIL="test@localhost")

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], env=env, check=True, capture_output=True, text=True).stdout.strip()

    git("read-tree", "HEAD")  # tracked files stay, even ignored ones
    git("add", "-A")
    commit = git("commit-tree", git("write-tree"), "-p", "HEAD", "-m", "The work tree under test")
    git("update-ref", "HEAD", commit)
    return repo


def nspawn_command(root: Path, src: Path, script: str) -> list[str]:
    """Runs script in the rootfs root (no boot) on the host's network and DNS."""
    cmd = ["systemd-nspawn", "-D", str(root), "--register=no", "--keep-unit", "--pipe", "-q", "--chdir=/root",
           # The base image's resolv.conf is empty on purpose (lab machines have no DNS); this container resolves
           # names as the host does.
           "--resolv-conf=copy-host", f"--bind-ro={src}:{SRC}",
           "--setenv=DEBIAN_FRONTEND=noninteractive",
           "--setenv=PIP_DISABLE_PIP_VERSION_CHECK=1", "--setenv=PIP_DEFAULT_TIMEOUT=180"]
    if CA_BUNDLE.exists():
        # The network's trust, not something added to Debian: where HTTPS goes through an egress proxy, only the
        # host's bundle trusts its certificate. On a network without one this is the same as Debian's bundle.
        cmd += [f"--bind-ro={CA_BUNDLE}:{CA_IN_CONTAINER}"]
        cmd += [f"--setenv={name}={CA_IN_CONTAINER}"
                for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO")]
    return [*cmd, "bash", "-c", script]


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.mark.lab
def test_the_quick_start_makes_the_virtualenv_on_stock_debian(capsys):
    assert os.geteuid() == 0, "the quick start's containers need root"
    try:
        commands = quick_start_commands(README.read_text())
    except QuickStartError as e:
        pytest.fail(str(e))
    script = container_script(commands)

    # The base images are built once (debootstrap, about a minute) and cached for the lab tests that follow.
    started = time.monotonic()
    with ThreadPoolExecutor(len(DISTROS)) as pool:
        bases = dict(zip(DISTROS, pool.map(ensure_base, DISTROS), strict=True))
    base_seconds = time.monotonic() - started

    scratch = Path(tempfile.mkdtemp(prefix="airflow-cluster-quick-start-", dir="/var/tmp"))
    logs = {d: scratch / f"{d}.log" for d in DISTROS}
    procs: dict[str, subprocess.Popen] = {}
    seconds: dict[str, float] = {}
    tails: dict[str, str] = {}
    try:
        src = work_tree_snapshot(scratch)
        for distro in DISTROS:
            # A name of its own per container: nspawn keeps per-machine state under the directory's name.
            root = scratch / f"quick-start-{distro}"
            subprocess.run(["cp", "-a", "--reflink=auto", str(bases[distro]), str(root)], check=True)
            with logs[distro].open("w") as log:
                procs[distro] = subprocess.Popen(nspawn_command(root, src, script), stdin=subprocess.DEVNULL,
                                                 stdout=log, stderr=subprocess.STDOUT)
        # Both run at once; a pidfd per container says which one ended, so each has its own time.
        started = time.monotonic()
        deadline = started + TIMEOUT
        pending = {os.pidfd_open(p.pid): d for d, p in procs.items()}
        try:
            while pending:
                ready, _, _ = select.select(list(pending), [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    break
                for fd in ready:
                    distro = pending.pop(fd)
                    os.close(fd)
                    procs[distro].wait()
                    seconds[distro] = time.monotonic() - started
        finally:
            for fd in pending:
                os.close(fd)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()  # nspawn kills the container's processes with it
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        tails = {d: tail(logs[d]) for d in procs}
        shutil.rmtree(scratch, ignore_errors=True)

    failures = []
    for distro, proc in procs.items():
        if distro not in seconds:
            failures.append(f"{distro}: no result within {TIMEOUT}s; the last lines:\n{tails[distro]}")
        elif proc.returncode != 0:
            failures.append(f"{distro}: exit {proc.returncode} after {seconds[distro]:.0f}s; the last lines:\n"
                            f"{tails[distro]}")
    with capsys.disabled():
        print(f"\nquick start: base images {base_seconds:.0f}s, then "
              + ", ".join(f"{d} {s:.0f}s" for d, s in seconds.items()) + " (at once)")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def test_the_quick_start_block_is_read_as_agreed():
    block = "\n".join(["## Quick start", "", "As root:", "", "```sh", "# the tools", "apt-get update",
                       "sudo apt-get install -y git make",
                       "git clone https://example.com/x.git airflow-cluster", "cd airflow-cluster",
                       "make demo   # the lab", "make test", "```"])
    commands = quick_start_commands(block)
    assert commands[:2] == [["apt-get", "update"], ["apt-get", "install", "-y", "git", "make"]]
    script = container_script(commands)
    assert f"git clone {SRC} airflow-cluster\ncd airflow-cluster\nmake venv\n" in script
    assert "make demo" not in script and "make test" not in script
    with pytest.raises(QuickStartError, match="block should be"):
        quick_start_commands(block.replace("cd airflow-cluster\n", ""))
    with pytest.raises(QuickStartError, match="no ```sh block"):
        quick_start_commands("## Quick start\n\nmake demo\n\n## Next\n```sh\nmake test\n```\n")
    with pytest.raises(QuickStartError, match="no heading"):
        quick_start_commands("# airflow-cluster\n")
