"""Kills and concurrent writers on a small phantom store: what survives, with counts.

    python benchmarks/store_reliability.py [--kills 8] [--pairs 3]

1. Kills: ``augment run`` is SIGKILLed at random moments ``--kills`` times, then run to the end;
   the store's digest is compared with an uninterrupted run's, and ``store check`` counts
   leftovers (temporary files, images without records, damaged manifest lines) after the kills.
2. Concurrent writers: ``--pairs`` times, two ``augment run`` with different plans start at once
   on one store (writer lock wait 0: the second is refused, or they happen not to overlap); the
   synthetic set left must be exactly one of the two plans, complete.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-c", "from medaug.cli.app import main; main()", "--quiet"]


def medaug(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=check)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="medaug-reliability-"))
    env = {**os.environ, "MEDAUG_WORK_DIR": str(work / "work"), "MEDAUG_IMAGE_SIZE": "48", "MEDAUG_LOG_LEVEL": "error",
           "MEDAUG_STORE__LOCK_WAIT_SECONDS": "0"}
    base = work / "base"
    medaug("data", "phantom", "--store", str(base), "--n", str(args.n), "--size", "48", env=env)
    plan = ["augment", "run", "--target-total", "120"]

    reference = work / "reference"
    shutil.copytree(base, reference)
    (reference / "store.json").unlink()
    start = time.perf_counter()
    medaug(*plan, "--store", str(reference), env=env)
    uninterrupted = time.perf_counter() - start
    want = medaug("store", "digest", str(reference), env=env).stdout.split("digest ")[-1].strip()

    killed = work / "killed"
    shutil.copytree(base, killed)
    (killed / "store.json").unlink()
    kills = 0
    for _ in range(args.kills):
        proc = subprocess.Popen([*CLI, *plan, "--store", str(killed)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, max(1.0, uninterrupted)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    check = medaug("store", "check", str(killed), env=env, check=False)
    leftovers = [line for line in check.stdout.splitlines() if ": " in line and "problem(s)" not in line]
    medaug(*plan, "--store", str(killed), env=env)
    got = medaug("store", "digest", str(killed), env=env).stdout.split("digest ")[-1].strip()
    print(f"kills: {kills} SIGKILLs of augment run (uninterrupted run {uninterrupted:.1f} s); "
          f"check after kills: {len(leftovers)} problem(s) {leftovers[:3]}; "
          f"digest after re-run {'EQUALS' if got == want else 'DIFFERS FROM'} the uninterrupted run's")

    refused = serialised = intact = 0
    for pair in range(args.pairs):
        store = work / f"pair{pair}"
        shutil.copytree(base, store)
        (store / "store.json").unlink()
        procs = [subprocess.Popen([*CLI, "augment", "run", "--store", str(store), *policy], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for policy in (["--target-total", "120"], ["--multiply", "2"])]
        results = [(p.wait(), p.stderr.read()) for p in procs]
        refused += sum(code == 2 and "being written by" in err for code, err in results)
        serialised += all(code == 0 for code, _ in results)
        intact += any(_holds_exactly(store, policy, env) for policy in (["--target-total", "120"], ["--multiply", "2"]))
    print(f"concurrent writers: {args.pairs} pairs; {refused} second writer(s) refused in one line, "
          f"{serialised} pair(s) ran one after the other; {intact}/{args.pairs} stores hold exactly the "
          "finishing plan's images (a re-run generates 0 and removes 0)")
    shutil.rmtree(work, ignore_errors=True)


def _holds_exactly(store: Path, policy: list[str], env: dict[str, str]) -> bool:
    """Whether re-running ``policy`` on a copy of ``store`` generates nothing and removes nothing."""
    copy = store.with_name(store.name + "-copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(store, copy)
    again = medaug("augment", "run", "--store", str(copy), *policy, env=env).stdout
    return " 0 generated" in again and "stale removed" not in again


if __name__ == "__main__":
    main()
