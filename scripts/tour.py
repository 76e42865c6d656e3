#!/usr/bin/env python3
"""Runs README.md's tour exactly as written, against the sample data, and fails on any command
that exits with a code the tour does not announce.

    scripts/tour.py PATH/TO/crm

Every line of the ```sh block under "## A tour" is one step, run by bash from the repository
root with `crm` meaning the given binary, in a sandbox (its own HOME and XDG directories, no
CRM_* variables from the caller). A step may say what it exits with in its comment, as in
`# … (exit 1)`; otherwise it must exit 0. A step ending in `&` starts a background process that
is given a moment to come up and is stopped when the tour ends. `export NAME=VALUE` steps set
the environment of the steps after them (a store they name is removed first, so every run starts
from nothing).
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tour_steps(readme):
    text = open(readme, encoding="utf-8").read()
    section = text.split("## A tour", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    steps = []
    for raw in block.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        command, comment = line, ""
        # A comment starts at "#" preceded by two spaces, outside quotes (the tour's style).
        match = re.search(r"\s{2,}#\s?(.*)$", line)
        if match:
            command, comment = line[: match.start()].rstrip(), match.group(1)
        expected = 1 if "(exit 1)" in comment else 0
        steps.append((command, expected))
    return steps


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    crm = os.path.abspath(sys.argv[1])
    sandbox = tempfile.mkdtemp(prefix="crm-tour-")
    bin_dir = os.path.join(sandbox, "bin")
    os.makedirs(bin_dir)
    os.symlink(crm, os.path.join(bin_dir, "crm"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_") and k not in ("RUST_LOG", "COLUMNS")}
    env.update(
        PATH=bin_dir + os.pathsep + env.get("PATH", ""),
        HOME=os.path.join(sandbox, "home"),
        XDG_CONFIG_HOME=os.path.join(sandbox, "xdg", "config"),
        XDG_DATA_HOME=os.path.join(sandbox, "xdg", "data"),
        NO_COLOR="1",
    )
    background = []
    failures = 0
    try:
        for command, expected in tour_steps(os.path.join(ROOT, "README.md")):
            if command.startswith("export "):
                name, _, value = command[len("export "):].partition("=")
                value = shlex.split(value)[0] if value else ""
                if name == "CRM_STORE":
                    for suffix in ("", "-wal", "-shm"):
                        if os.path.exists(value + suffix):
                            os.remove(value + suffix)
                env[name] = value
                print(f"$ {command}")
                continue
            if command.endswith("&"):
                print(f"$ {command}")
                proc = subprocess.Popen(
                    ["bash", "-c", "exec " + command[:-1].strip()],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=open(os.path.join(sandbox, f"background-{len(background)}.log"), "w"),
                    start_new_session=True,
                )
                background.append(proc)
                time.sleep(1.5)
                if proc.poll() is not None:
                    print(f"  FAILED: the background step exited at once with {proc.returncode}")
                    failures += 1
                continue
            started = time.monotonic()
            done = subprocess.run(
                ["bash", "-o", "pipefail", "-c", command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            took = time.monotonic() - started
            ok = done.returncode == expected
            print(f"$ {command}    [exit {done.returncode}, {took:.1f} s]")
            if not ok:
                failures += 1
                print(f"  FAILED: expected exit {expected}")
                for stream in (done.stdout, done.stderr):
                    for out in stream.strip().splitlines()[-15:]:
                        print(f"  | {out}")
    finally:
        for proc in background:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(sandbox, ignore_errors=True)
    if failures:
        sys.exit(f"README tour: {failures} step(s) failed")
    print("README tour: every step ran as written")


if __name__ == "__main__":
    main()
