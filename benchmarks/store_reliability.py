"""Kills, concurrent writers, hostile input and leaks on small stores: what survives, with totals.

    python benchmarks/store_reliability.py [--kills 4] [--pairs 3] [--check-images 300]

1. Kills (``benchmarks/kill_cases.py``): every writing command (ingest, ingest --update, augment,
   sync, generator training) is SIGKILLed ``--kills`` times at random moments, then run to the
   end; after ``store repair`` the store must check clean and equal an uninterrupted run's digest.
2. Concurrent writers: ``--pairs`` times, two ``augment run`` with different plans start at once
   on one store (writer lock wait 0); the synthetic set left must be exactly one plan, complete.
3. Bad inputs: hostile grades, names, paths, images, damaged stores and mismatched pseudonyms,
   each must be answered by one line (exit code not 0), no traceback, nothing written.
4. Leaks: a tiny experiment on a folder set named after patients, with ``pseudonymise = true``
   and keys in its settings; every file it writes is searched for the names and the keys.
5. ``store check`` on ``--check-images`` images at 256 px: full (every image hashed) vs ``--quick``.

Prints figures and a totals line; asserts nothing. The figures depend on the machine's load.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.kill_cases import (  # noqa: E402
    CASES,
    _folder_set,
    environment,
    medaug,
    pseudonymised_experiment,
    run_case,
)

KEY = "sk-RELIABILITYLEAK0123456789"
PSEUDONYM_KEY = "reliability-pseudonym-key-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--check-images", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="medaug-reliability-"))
    env = environment(work)
    try:
        kills, lost, cases = _kills(work, env, args.kills, rng)
        _pairs(work, env, args.pairs)
        bad, clear = _bad_inputs(work, env)
        leaked = _leaks(work, env)
        _check_timing(work, args.check_images)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cases += args.pairs + bad + 1  # kill cases, writer pairs, bad inputs, the leak experiment
    print(f"TOTALS: kills tried {kills}, cases {cases}, bad inputs {bad} ({clear} answered in one line), "
          f"data lost {lost}, secrets or names leaked {leaked}")


def _kills(work: Path, env: dict[str, str], kills: int, rng: random.Random) -> tuple[int, int, int]:
    total = lost = 0
    for case in CASES.values():
        outcome = run_case(case, work / "kills", env, kills=kills, rng=rng)
        total += outcome.kills
        lost += outcome.data_lost
        print(f"kill {case.name}: {outcome.kills} SIGKILLs (uninterrupted {outcome.seconds:.1f} s); "
              f"{len(outcome.left_after_kills)} leftover(s) before repair {outcome.left_after_kills[:2]}; "
              f"after repair {len(outcome.problems_after_repair)} problem(s); final rc {outcome.final_rc}; digest "
              f"{'EQUALS' if outcome.digest_equal else 'DIFFERS FROM'} the uninterrupted run's")
    return total, lost, len(CASES)


def _pairs(work: Path, env: dict[str, str], pairs: int) -> None:
    base = work / "pairs-base"
    medaug("data", "phantom", "--store", str(base), "--n", "40", "--size", "48", env=env)
    refused = serialised = intact = 0
    policies = (["--target-total", "120"], ["--multiply", "2"])
    for pair in range(pairs):
        store = work / f"pair{pair}"
        shutil.copytree(base, store)
        (store / "store.json").unlink()
        procs = [subprocess.Popen([*_cli(), "augment", "run", "--store", str(store), *policy], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for policy in policies]
        results = [(p.wait(), p.stderr.read()) for p in procs]
        refused += sum(code == 2 and "being written by" in err for code, err in results)
        serialised += all(code == 0 for code, _ in results)
        intact += any(_holds_exactly(store, policy, env) for policy in policies)
    print(f"concurrent writers: {pairs} pairs; {refused} second writer(s) refused in one line, "
          f"{serialised} pair(s) ran one after the other; {intact}/{pairs} stores hold exactly the "
          "finishing plan's images")


def _cli() -> list[str]:
    from benchmarks.kill_cases import CLI

    return CLI


def _holds_exactly(store: Path, policy: list[str], env: dict[str, str]) -> bool:
    """Whether re-running ``policy`` on a copy of ``store`` generates nothing and removes nothing."""
    copy = store.with_name(store.name + "-copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(store, copy)
    again = medaug("augment", "run", "--store", str(copy), *policy, env=env).stdout
    return " 0 generated" in again and "stale removed" not in again


def _bad_inputs(work: Path, env: dict[str, str]) -> tuple[int, int]:
    """Each hostile input must fail (exit not 0) with one line and no traceback."""
    root = work / "bad"
    _folder_set(root, n=12)
    csv = root / "labels.csv"
    header, first, *rest = csv.read_text().splitlines()
    name, _, split = first.split(",")
    tries: list[tuple[str, list[str]]] = []

    def row_case(label: str, row: str) -> None:
        path = root / f"{label}.csv"
        path.write_text("\n".join([header, row, *rest]) + "\n")
        tries.append((label, ["data", "ingest", "folder", str(root / "images"), "--csv", str(path), "--store",
                              str(root / f"s-{label}"), "--split-column", "split"]))

    for label, grade in (("superscript", "²"), ("dashes", "--2"), ("fraction", "2.5"), ("empty", ""),
                         ("arabic", "٢"), ("plus", "+2"), ("five", "5")):
        row_case(f"grade-{label}", f"{name},{grade},{split}")
    row_case("traversal", f"../{name},1,{split}")
    row_case("absolute", f"/etc/{name},1,{split}")
    row_case("split", f"{name},1,holdout")
    (root / "images" / "dot.png").write_bytes(_png(1, 1))
    row_case("tiny-image", f"dot.png,1,{split}")
    (root / "images" / "empty.png").write_bytes(b"")
    row_case("empty-image", f"empty.png,1,{split}")
    for label, run_name in (("run-name-parent", "../../victim"), ("run-name-absolute", "/tmp/victim")):
        path = root / f"{label}.toml"
        path.write_text(f'name = "{run_name}"\n[experiment]\narms = ["none"]\n')
        tries.append((label, ["experiment", "run", str(path), "--fresh"]))
    store = root / "damaged"
    medaug("data", "phantom", "--store", str(store), "--n", "10", "--size", "32", env=env)
    images = sorted(store.rglob("*.png"))
    images[0].write_bytes(b"")
    data = bytearray(images[1].read_bytes())
    data[len(data) // 2] ^= 1
    images[1].write_bytes(bytes(data))
    tries.append(("damaged-store", ["store", "check", str(store)]))
    plain = root / "plain"
    medaug("data", "ingest", "folder", str(root / "images"), "--csv", str(csv), "--store", str(plain),
           "--split-column", "split", "--lenient", env=env)
    tries.append(("pseudonyms-into-plain", ["data", "ingest", "folder", str(root / "images"), "--csv", str(csv),
                                            "--store", str(plain), "--split-column", "split", "--lenient",
                                            "--pseudonymise"]))
    keyed = {**env, "MEDAUG_PSEUDONYM_KEY": PSEUDONYM_KEY}
    clear = 0
    for label, command in tries:
        result = medaug(*command, env=keyed, check=False)
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")]
        one = result.returncode != 0 and "Traceback" not in result.stderr and (
            len(lines) == 1 or label == "damaged-store")
        clear += one
        if not one:
            print(f"bad input {label}: rc {result.returncode}: {result.stderr.strip()[:300]}")
    print(f"bad inputs: {len(tries)} tried, {clear} answered by one line without a traceback")
    return len(tries), clear


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (170, 80, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _leaks(work: Path, env: dict[str, str]) -> int:
    """Names and keys found in the files a pseudonymised experiment with keys in its settings wrote."""
    root = work / "leaks"
    _folder_set(root, n=30)
    names = []
    for image in sorted((root / "images").glob("*.png")):
        patient = f"PATIENT{image.stem[3:]}SMITH"
        image.rename(image.with_name(f"{patient}.png"))
        names.append(patient)
    csv = root / "labels.csv"
    text = csv.read_text()
    for number, patient in enumerate(names):
        text = text.replace(f"eye{number:03d}.png", f"{patient}.png")
    csv.write_text(text)
    openai = f'generators = {{ openai = {{ api_key = "{KEY}" }} }}\n'
    (root / "exp.toml").write_text(pseudonymised_experiment("leaks", root / "images", csv, PSEUDONYM_KEY, openai))
    result = medaug("experiment", "run", str(root / "exp.toml"), env={**env, "MEDAUG_LOG_LEVEL": "debug"}, check=False)
    needles = [*names, KEY, PSEUDONYM_KEY]
    found = {str(p.relative_to(work)): [n for n in needles if n.encode() in p.read_bytes()]
             for p in (work / "work").rglob("*") if p.is_file()}
    found = {path: hits for path, hits in found.items() if hits}
    in_output = [n for n in needles if n in result.stdout + result.stderr]
    leaked = sum(len(hits) for hits in found.values()) + len(in_output)
    print(f"leaks: experiment rc {result.returncode}; {len(names)} patient names and 2 keys searched in "
          f"{sum(1 for p in (work / 'work').rglob('*') if p.is_file())} files and the output: {leaked} found "
          f"{list(found.items())[:2]}{in_output[:2]}")
    return leaked + (result.returncode != 0)


def _check_timing(work: Path, images: int) -> None:
    from medaug.adapters.datasets.phantom import PhantomSource
    from medaug.adapters.stores.local import LocalImageStore
    from medaug.application.services.ingest import ingest
    from medaug.composition.factories import build_preprocessor
    from medaug.composition.settings import Settings

    store = LocalImageStore(work / "timing")
    ingest(PhantomSource(n=images, seed=1, size=256), build_preprocessor(Settings(), 256), store, seed=0)
    size = sum(p.stat().st_size for p in store.root.rglob("*.png"))
    timings = {}
    for quick in (True, False, True, False):
        fresh = LocalImageStore(store.root)
        start = time.perf_counter()
        problems = fresh.check(quick=quick)
        timings[quick] = time.perf_counter() - start
        if problems:
            print(f"store check found {len(problems)} problem(s) on a fresh store: {problems[:2]}")
    print(f"store check on {images} images at 256 px ({size / 1e6:.1f} MB): full {timings[False]:.2f} s "
          f"({timings[False] / images * 1000:.2f} ms/image), --quick {timings[True]:.2f} s (second runs, warm cache)")


if __name__ == "__main__":
    main()
