"""Instructions counted by callgrind for one phase of a child process: the same count
however busy the machine is (only that process; the database's work is not in it).

The child warms up, prints READY and waits until the gate file exists; the counting is
switched on, the gate created, and the child does the measured work, prints one JSON line
and waits until the gate is gone, when the counting is already off.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# For the child: call `wait_for_gate(gate)` before the measured work and `wait_for_gate_removal(gate)` after.
CHILD_HELPERS = r"""
import os, time
def wait_for_gate(gate):
    print("READY", flush=True)
    while not os.path.exists(gate):
        time.sleep(0.05)
def wait_for_gate_removal(gate):
    while os.path.exists(gate):
        time.sleep(0.05)
"""


def count(code: str, args: list[str], *, env: dict, cwd: Path) -> tuple[dict, int]:
    """Runs `code` (given the gate's path as its first argument, then `args`) under callgrind;
    returns the JSON line it printed and the instructions of its measured phase."""
    with tempfile.TemporaryDirectory() as tmp:
        gate, counts = Path(tmp, "gate"), Path(tmp, "callgrind.out")
        child = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={counts}",
             sys.executable, "-c", CHILD_HELPERS + code, str(gate), *args],
            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip

        def switch(state: str) -> None:
            subprocess.run(["callgrind_control", "-i", state, str(child.pid)], check=True, capture_output=True)

        while (line := child.stdout.readline()) and line.strip() != "READY":
            pass
        switch("on")
        gate.touch()
        result = json.loads(child.stdout.readline())
        switch("off")
        gate.unlink()
        if child.wait():
            raise SystemExit("the counted process failed")
        total = int(re.search(r"^totals: (\d+)", counts.read_text(), re.MULTILINE).group(1))
    return result, total
