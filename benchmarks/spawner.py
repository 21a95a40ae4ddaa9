"""A tiny process that starts the measured processes, so their peak RSS is their own.

Linux carries a process's memory high-water mark across fork and exec: a child forked from the ~30 MiB
harness reports at least 30 MiB in ``ru_maxrss`` whatever it really used. Forked from this helper (run
with ``python -I -S``, builtins only, ~9 MiB: less than any Python child, ``python -c pass`` included),
the figure is the child's own. It also does the timing: fork to reap, ``os.wait4``.

Protocol on stdin/stdout, ``marshal``-encoded: in ``(argv, env, cwd, stdout_path, stderr_path or None)``,
out ``(wall_seconds, peak_rss_bytes, exit_code, cpu_seconds)`` (cpu: user + system). Ends at end of input.
"""

import marshal
import os
import sys
import time


def main() -> None:
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            argv, env, cwd, out_path, err_path = marshal.load(requests)
        except EOFError:
            return
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            try:
                os.chdir(cwd)
                os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
                os.dup2(os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
                os.dup2(os.open(err_path or os.devnull, os.O_WRONLY | os.O_NOCTTY), 2)
                os.closerange(3, 1024)
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)  # only reached when exec failed
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
        cpu = usage.ru_utime + usage.ru_stime
        marshal.dump((wall, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), cpu), answers)
        answers.flush()


if __name__ == "__main__":
    main()
