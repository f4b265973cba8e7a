#!/usr/bin/env python3
"""Runs one benchmark command and records what it cost: peak host RSS and peak GPU memory.

usage: measure.py RESULT_FILE [--timeout S] -- COMMAND [ARGS...]

The command's stdout and stderr pass through untouched. Afterwards RESULT_FILE holds key=value lines:
  rc=N                exit status (124 when the timeout killed it, 128+signal when a signal did)
  wall_s=S            seconds it ran
  peak_rss_kib=N      its peak resident set (wait4's ru_maxrss: that process alone, not this script)
  gpu_peak_mib=N      peak of nvidia-smi's memory.used during the run minus the value just before it
                      (absent when there is no nvidia-smi); sampled every 100 ms, so a peak shorter
                      than that can be missed
llama-bench prints no memory figures, hmoe-bench prints its own; this gives both the same yardstick.
Python standard library only.
"""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time


def gpu_used_mib():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20).stdout
        return max(int(v) for v in out.split())
    except Exception:
        return None


class GpuSampler:
    """nvidia-smi in loop mode: one line per GPU every 100 ms; keeps the largest."""

    def __init__(self):
        self.peak = None
        self.proc = None
        if shutil.which("nvidia-smi") is None:
            return
        self.base = gpu_used_mib()
        if self.base is None:
            return
        self.peak = self.base
        self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                      "-lms", "100"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.peak = max(self.peak, int(line.strip()))
            except ValueError:
                pass

    def stop(self):
        if self.proc is None:
            return None
        time.sleep(0.3)  # one more sample after the command ended is harmless; the peak is what counts
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(timeout=2)
        return self.peak - self.base


def main():
    argv = sys.argv[1:]
    if len(argv) < 3 or "--" not in argv:
        sys.exit(__doc__)
    sep = argv.index("--")
    opts, cmd = argv[:sep], argv[sep + 1:]
    result, timeout = opts[0], None
    if len(opts) == 3 and opts[1] == "--timeout":
        timeout = float(opts[2])
    elif len(opts) != 1:
        sys.exit(__doc__)

    sampler = GpuSampler()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd)
    rc, rusage, killed = None, None, False
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            rc = os.waitstatus_to_exitcode(status)
            rusage = ru
            break
        if timeout is not None and time.monotonic() - t0 > timeout and not killed:
            proc.send_signal(signal.SIGTERM)
            killed = True
            t_kill = time.monotonic()
        if killed and time.monotonic() - t_kill > 10:
            proc.kill()
        time.sleep(0.05)
    proc.returncode = rc  # already reaped by wait4
    wall = time.monotonic() - t0
    gpu = sampler.stop()
    if killed:
        rc = 124
    elif rc < 0:
        rc = 128 - rc
    with open(result, "w") as f:
        f.write(f"rc={rc}\nwall_s={wall:.1f}\npeak_rss_kib={rusage.ru_maxrss}\n")
        if gpu is not None:
            f.write(f"gpu_peak_mib={gpu}\n")
    sys.exit(rc)


if __name__ == "__main__":
    main()
