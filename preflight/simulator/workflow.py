"""Ad hoc workflow instances: the submitted Shell script really runs, and its output becomes the task log."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

# A script that prints without end must not fill the simulator's memory; DataWorks also cuts long logs.
LOG_CAP_BYTES = 4 * 1024 * 1024
MODES = ("run", "fail", "hang", "cut-lines")


@dataclass
class TaskRun:
    """One task instance of an ad hoc workflow and what it printed.

    Not frozen on purpose: it is the live record a runner thread advances while API threads read it.
    """

    workflow_id: int
    task_id: int
    name: str
    resource_group_id: str
    script: str
    timeout_s: int
    status: str = "NotRun"
    log: str = ""
    exit_code: int | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    biz_date: int | None = None  # the submission's BizDate (epoch ms); ListTaskInstances lists by it


def _stamp() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


class WorkflowRunner:
    """Runs submitted scripts one thread each, walking NotRun -> WaitResource -> Running -> Success/Failure."""

    def __init__(self, environment: dict[str, str], *, wait_resource_s: float = 0.05, mode: str = "run") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown task mode {mode!r}; one of {', '.join(MODES)}")
        self.environment = environment
        self.wait_resource_s = wait_resource_s
        # run: as DataWorks would; fail: no python3 on the group; hang: never gets resources;
        # cut-lines: the log store cuts long lines, as some do.
        self.mode = mode
        self.tasks: dict[int, TaskRun] = {}
        self._next = 800000001
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._processes: list[subprocess.Popen[bytes]] = []

    def submit(self, name: str, resource_group_id: str, script: str, timeout_s: int, *,
               biz_date: int | None = None) -> TaskRun:
        with self._lock:
            workflow_id, task_id = self._next, self._next + 1
            self._next += 2
            run = TaskRun(workflow_id, task_id, name, resource_group_id, script, max(1, timeout_s),
                          biz_date=biz_date)
            self.tasks[task_id] = run
        threading.Thread(target=self._run, args=(run,), name=f"adhoc-{task_id}", daemon=True).start()
        return run

    def by_workflow(self, workflow_id: int) -> TaskRun | None:
        with self._lock:
            return next((run for run in self.tasks.values() if run.workflow_id == workflow_id), None)

    def _log(self, run: TaskRun, text: str) -> None:
        stamp = _stamp()
        run.log += "".join(f"{stamp} INFO {line}\n" for line in text.splitlines())

    def _finish(self, run: TaskRun, status: str) -> None:
        run.finished = time.time()
        run.status = status

    def _run(self, run: TaskRun) -> None:
        # A follower polls; NotRun and WaitResource each last a moment so it can see them.
        if self._stop.wait(self.wait_resource_s):
            return
        run.status = "WaitResource"
        self._log(run, f"Waiting for resources of {run.resource_group_id}")
        if self._stop.wait(3600 if self.mode == "hang" else self.wait_resource_s):
            return
        run.started = time.time()
        run.status = "Running"
        self._log(run, f"Running shell task {run.name} (timeout {run.timeout_s} s)")
        if self.mode == "fail":
            self._log(run, "/bin/sh: 1: python3: not found")
            self._finish(run, "Failure")
            return
        with tempfile.TemporaryDirectory(prefix="preflight-task-") as home:
            code, text, timed_out = self._execute(run, home)
        if self.mode == "cut-lines":
            text = "\n".join(line[:1024] for line in text.splitlines())
        self._log(run, text)
        run.exit_code = code
        if timed_out:
            self._log(run, f"Task timed out after {run.timeout_s} s and was killed")
            self._finish(run, "Failure")
            return
        self._log(run, f"Exit code {code}")
        self._finish(run, "Success" if code == 0 else "Failure")

    def _execute(self, run: TaskRun, home: str) -> tuple[int, str, bool]:
        """Run the script with /bin/sh in a clean environment; return exit code, output and whether it timed out."""
        script_path = os.path.join(home, "task.sh")
        output_path = os.path.join(home, "output.log")
        with open(script_path, "w", encoding="utf-8") as handle:
            handle.write(run.script)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
               **self.environment}
        with open(output_path, "wb") as output:
            # Its own session, so a timeout kills the children too: a killed sh whose `sleep` lives on
            # would otherwise keep the task going.
            process = subprocess.Popen(["/bin/sh", script_path], cwd=home, env=env, stdin=subprocess.DEVNULL,
                                       stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
            with self._lock:
                self._processes.append(process)
            timed_out = False
            try:
                code = process.wait(timeout=run.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(process)
                code = process.wait()
            finally:
                with self._lock:
                    self._processes.remove(process)
        with open(output_path, "rb") as output:
            data = output.read(LOG_CAP_BYTES + 1)
        text = data[:LOG_CAP_BYTES].decode("utf-8", "replace")
        if len(data) > LOG_CAP_BYTES:
            text += f"\n[log cut at {LOG_CAP_BYTES} bytes]"
        return code, text, timed_out

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            running = list(self._processes)
        for process in running:
            _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # The group may be gone already: the task ended between the timeout and the kill.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


__all__ = ["LOG_CAP_BYTES", "MODES", "TaskRun", "WorkflowRunner"]
