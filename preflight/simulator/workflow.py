"""Ad hoc workflow instances: the submitted Shell script really runs, and its output becomes the task log."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field


@dataclass
class TaskRun:
    """One task instance of an ad hoc workflow and what it printed."""

    workflow_id: int
    task_id: int
    name: str
    resource_group_id: str
    script: str
    timeout_s: int
    status: str = "NotRun"
    log: str = ""
    started: float = field(default_factory=time.time)


class WorkflowRunner:
    """Runs submitted scripts one thread each, walking NotRun -> WaitResource -> Running -> Success/Failure."""

    def __init__(self, environment: dict[str, str], *, wait_resource_s: float = 0.05, mode: str = "run") -> None:
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

    def submit(self, name: str, resource_group_id: str, script: str, timeout_s: int) -> TaskRun:
        with self._lock:
            workflow_id, task_id = self._next, self._next + 1
            self._next += 2
            run = TaskRun(workflow_id, task_id, name, resource_group_id, script, timeout_s)
            self.tasks[task_id] = run
        threading.Thread(target=self._run, args=(run,), daemon=True).start()
        return run

    def by_workflow(self, workflow_id: int) -> TaskRun | None:
        return next((run for run in self.tasks.values() if run.workflow_id == workflow_id), None)

    def _log(self, run: TaskRun, text: str) -> None:
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        run.log += "".join(f"{stamp} INFO {line}\n" for line in text.splitlines())

    def _run(self, run: TaskRun) -> None:
        run.status = "WaitResource"
        self._log(run, f"Waiting for resources of {run.resource_group_id}")
        if self._stop.wait(3600 if self.mode == "hang" else self.wait_resource_s):
            return
        run.status = "Running"
        self._log(run, "Running shell task")
        if self.mode == "fail":
            self._log(run, "python3: command not found")
            run.status = "Failure"
            return
        with tempfile.TemporaryDirectory(prefix="preflight-task-") as home:
            path = os.path.join(home, "task.sh")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(run.script)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
                   **self.environment}
            process = subprocess.Popen(["/bin/sh", path], cwd=home, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT)
            self._processes.append(process)
            try:
                output, _ = process.communicate(timeout=run.timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
                self._log(run, output.decode("utf-8", "replace"))
                self._log(run, f"Task timed out after {run.timeout_s} s and was killed")
                run.status = "Failure"
                return
        text = output.decode("utf-8", "replace")
        if self.mode == "cut-lines":
            text = "\n".join(line[:1024] for line in text.splitlines())
        self._log(run, text)
        self._log(run, f"Exit code {process.returncode}")
        run.status = "Success" if process.returncode == 0 else "Failure"

    def stop(self) -> None:
        self._stop.set()
        for process in self._processes:
            if process.poll() is None:
                process.kill()


__all__ = ["TaskRun", "WorkflowRunner"]
