"""Report pieces rendered while a run goes on: the same documents, from pieces done in the loop's idle moments."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from preflight import aio
from preflight.model import RunReport, Status
from preflight.report import formats, write_reports
from preflight.report.base import Pieces
from tests.report.test_formats import result, sample


def many() -> RunReport:
    base = sample()
    extra = tuple(result(f"endpoint.check{n}", Status.WARN if n % 3 else Status.PASS, f"summary {n} | <b>",
                         service=f"svc{n % 4}", start=float(n), remediation="Do this.",
                         evidence={"n": n, "nan": float("nan")}) for n in range(40))
    return RunReport(tool=base.tool, started_at=base.started_at, duration_ms=base.duration_ms,
                     config_path=base.config_path, notes=base.notes, results=base.results + extra)


def test_documents_from_pieces_are_the_documents_rendered_at_once() -> None:
    run = many()
    pieces = Pieces()
    for finished in run.results:
        pieces.add(finished)
    while pieces.pending():
        pieces.work(0.0)  # at least one result per slice
    assert pieces.rendered() == len(run.results)
    for report_format in formats():
        assert report_format.render(run, pieces) == report_format.render(run), report_format.name


def test_a_piece_belongs_to_its_very_result() -> None:
    run, twin = sample(), sample()  # equal results, other objects
    pieces = Pieces()
    pieces.add(run.results[1])
    pieces.work(1.0)
    assert all(pieces.get(name, run.results[1]) is not None for name in ("json", "junit", "markdown", "html"))
    assert pieces.get("html", twin.results[1]) is None and pieces.get("html", run.results[0]) is None


def test_written_files_are_the_same_with_pieces(tmp_path: Path) -> None:
    run = many()
    pieces = Pieces()
    for finished in run.results[::2]:  # half of them done during the run
        pieces.add(finished)
        pieces.work(1.0)
    with_pieces = write_reports(run, tmp_path / "a", pieces=pieces, parallel=True)
    without = write_reports(run, tmp_path / "b", parallel=False)
    assert [p.read_bytes() for p in with_pieces] == [p.read_bytes() for p in without]


class Counting:
    def __init__(self, slices: int, seconds: float = 0.0) -> None:
        self.left = slices
        self.seconds = seconds
        self.budgets: list[float] = []

    def pending(self) -> bool:
        return self.left > 0

    def work(self, budget_s: float) -> None:
        self.budgets.append(budget_s)
        self.left -= 1
        time.sleep(self.seconds)


def test_idle_work_is_done_while_the_loop_waits() -> None:
    idle = Counting(5)

    async def wait() -> str:
        await asyncio.sleep(0.05)
        return "done"

    assert aio.run(wait(), idle=idle) == "done"
    assert len(idle.budgets) == 5 and set(idle.budgets) == {aio.IDLE_SLICE_S}


def test_endless_idle_work_does_not_hold_up_the_loop() -> None:
    idle = Counting(10**9, seconds=0.002)

    async def exchange(port: int) -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"ping\n")
        await writer.drain()
        await reader.readline()
        writer.close()
        return time.monotonic() - started

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    async def main() -> float:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        async with server:
            await asyncio.sleep(0.02)
            return await exchange(server.sockets[0].getsockname()[1])

    started = time.monotonic()
    round_trip = aio.run(main(), idle=idle)
    assert round_trip < 0.2 and time.monotonic() - started < 1.0
    assert len(idle.budgets) > 3  # the loop kept coming back for slices



@pytest.mark.parametrize("form", ["json", "console"])
def test_a_run_renders_pieces_while_it_goes_on(form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from preflight.cli import main
    from preflight.simulator.harness import Simulator
    from preflight.simulator.scenarios import get_scenario

    slices: list[int] = []
    real_work = Pieces.work

    def work(self: Pieces, budget_s: float) -> None:
        real_work(self, budget_s)
        slices.append(self.rendered())

    monkeypatch.setattr(Pieces, "work", work)
    with Simulator(get_scenario("healthy"), run_scripts=False) as simulator:
        for name, value in simulator.environ().items():
            monkeypatch.setenv(name, value)
        config = tmp_path / "sim.yaml"
        config.write_text(simulator.config_text())
        code = main(["run", "-c", str(config), "--format", form, "--report-dir", str(tmp_path / "r")])
    capsys.readouterr()
    assert code == 0 and slices and slices[-1] > 0
