"""The table model fed engine records directly (no engine needed): what each cell shows."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from gui.pipeline import events as ev
from gui.pipeline.project import load
from gui.window.image_model import COL_BUILD, COL_ENABLED, COL_NAME, COL_PUSH, COL_STATUS, \
    PROBLEMS_ROLE, PROGRESS_ROLE, ImageTableModel
from tests.helpers import write_image, write_project

ROLES = [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole, Qt.ItemDataRole.ToolTipRole,
         Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole,
         Qt.ItemDataRole.CheckStateRole, PROGRESS_ROLE, PROBLEMS_ROLE]


def model_for(tmp_path: Path, qapp) -> ImageTableModel:
    write_image(tmp_path, "api")
    write_image(tmp_path, "web")
    return ImageTableModel(load(write_project(tmp_path, [{"name": "api", "context": "api"},
                                                         {"name": "web", "context": "web"}],
                                              registry="localhost:5000")))


def test_every_cell_and_role_answers(tmp_path: Path, qapp) -> None:
    model = model_for(tmp_path, qapp)
    for _ in range(200):  # a refcount bug in a Qt binding shows up as a crash here
        for row in range(model.rowCount()):
            for column in range(model.columnCount()):
                for role in ROLES:
                    model.index(row, column).data(role)
    assert model.index(0, COL_NAME).data() == "api"
    assert model.index(0, COL_ENABLED).data(Qt.ItemDataRole.CheckStateRole) == Qt.CheckState.Checked
    assert model.index(0, COL_BUILD).data(PROGRESS_ROLE) is None  # no bar before a run


def test_records_drive_status_and_progress(tmp_path: Path, qapp) -> None:
    model = model_for(tmp_path, qapp)
    keys = {"api": model.uid(0), "web": model.uid(1)}
    changed: list[int] = []
    model.dataChanged.connect(lambda top, bottom, roles=(): changed.append(top.row()))
    model.start_rows([model.uid(0), model.uid(1)], [], {})
    assert model.index(0, COL_STATUS).data() == "queued"
    model.apply_events([ev.BuildStarted("api", 1, 100.0), ev.BuildStep("api", 2, 4, "RUN x")], keys)
    assert model.index(0, COL_STATUS).data() == "building step 2/4"
    assert model.index(0, COL_BUILD).data(PROGRESS_ROLE) == 0.5
    model.apply_events([ev.BuildDone("api", "sha256:1"), ev.PushStarted("api", 1, 101.0),
                        ev.PushProgress("api", 30, 120)], keys)
    assert model.index(0, COL_STATUS).data() == "pushing"
    assert model.index(0, COL_BUILD).data(PROGRESS_ROLE) == 1.0
    assert model.index(0, COL_PUSH).data(PROGRESS_ROLE) == 0.25
    failure = ev.Failure(ev.FailureKind.NETWORK, "EOF", "retrying usually helps")
    model.apply_events([ev.RetryScheduled("api", ev.Stage.PUSH, 2, 4.0, failure)], keys)
    assert model.index(0, COL_STATUS).data() == "waiting to push — retry 2 in 4 s (network error)"
    model.apply_events([ev.PushStarted("api", 2, 106.0), ev.PushDone("api", "sha256:d")], keys)
    assert model.index(0, COL_STATUS).data() == "pushed"
    assert model.index(0, COL_STATUS).data(Qt.ItemDataRole.ToolTipRole) == "sha256:d"
    model.apply_events([ev.BuildStarted("web", 1, 100.0),
                        ev.BuildFailed("web", ev.Failure(ev.FailureKind.BUILD_STEP, "boom", "fix it"))], keys)
    assert model.index(1, COL_STATUS).data() == "failed: build step failed — boom"
    assert model.index(1, COL_STATUS).data(Qt.ItemDataRole.ToolTipRole) == "boom\nWhat to do: fix it"
    assert model.counts() == {"enabled": 2, "built": 1, "pushed": 1, "failed": 1, "cancelled": 0, "active": 0,
                              "retryable": 1, "run": 2, "run_done": 2, "run_failed": 1}
    assert set(changed) == {0, 1}


def test_log_lines_alone_repaint_no_row(tmp_path: Path, qapp) -> None:
    """A build printing thousands of lines a second changes nothing a row shows: its rows
    are not repainted for them (the window's table painting was a tenth of the GUI
    thread while one image streamed), yet the log view still learns the row changed."""
    model = model_for(tmp_path, qapp)
    keys = {"api": model.uid(0), "web": model.uid(1)}
    model.start_rows([model.uid(0), model.uid(1)], [], {})
    model.apply_events([ev.BuildStarted("api", 1, 100.0)], keys)
    changed: list[int] = []
    model.dataChanged.connect(lambda top, bottom, roles=(): changed.append(top.row()))
    lines = [ev.LogLine("api", ev.Stage.BUILD, f"line {n}") for n in range(50)] + [ev.LogGap("api", 9)]
    assert model.apply_events(lines, keys) == {model.uid(0)}
    assert changed == []
    assert model.state(0).log_lines == 59
    assert model.apply_events([ev.LogLine("web", ev.Stage.BUILD, "x"), ev.BuildStep("api", 1, 3, "RUN y")],
                              keys) == {model.uid(0), model.uid(1)}
    assert changed == [0]  # the step shows; web's line does not


def test_the_elapsed_tick_repaints_rows_under_way_only(tmp_path: Path, qapp) -> None:
    """The tick walks the rows under way, a set kept as records, runs, removals and undo
    change rows: a row under way must tick, a queued or finished one must not."""
    model = model_for(tmp_path, qapp)
    api, web = model.uid(0), model.uid(1)
    keys = {"api": api, "web": web}
    ticked: list[int] = []
    model.dataChanged.connect(lambda top, bottom, roles=(): ticked.append(model.uid(top.row())))

    def tick() -> list[int]:
        ticked.clear()
        model.tick_elapsed()
        return sorted(ticked)

    assert tick() == []
    model.start_rows([api, web], [], {})
    model.apply_events([ev.BuildStarted("web", 1, 100.0)], keys)
    assert tick() == [web]  # api is queued: its time does not move
    failure = ev.Failure(ev.FailureKind.NETWORK, "EOF", "retrying usually helps")
    model.apply_events([ev.BuildStarted("api", 1, 100.0), ev.RetryScheduled("web", ev.Stage.BUILD, 2, 4.0, failure)],
                       keys)
    assert tick() == [api]  # web went back to the queue
    model.apply_events([ev.BuildStarted("web", 2, 105.0), ev.BuildDone("web", "sha256:1"),
                        ev.PushStarted("web", 1, 106.0)], keys)
    assert tick() == sorted([api, web])
    model.apply_events([ev.PushFailed("web", failure)], keys)
    assert tick() == [api]
    taken = model.take_rows([api])  # removed while it builds...
    assert tick() == []
    for position, row in taken:  # ...and brought back by undo
        model.insert_rows(position, [row])
    assert tick() == [api]
    model.apply_events([ev.BuildFailed("api", failure)], keys)
    model.start_rows([web], [web], {})  # Retry failed: web's kept build is pushed again
    assert tick() == [web]  # waiting to push counts
    model.set_project(model._project)
    assert tick() == []


def test_edits_become_commands_and_revalidate_only_what_they_touch(tmp_path: Path, qapp) -> None:
    from gui.window.document import ProjectDocument

    write_image(tmp_path, "api")
    write_image(tmp_path, "web")
    document = ProjectDocument()
    document.show(load(write_project(tmp_path, [{"name": "api", "context": "api"},
                                                {"name": "web", "context": "web"}], registry="localhost:5000")))
    model = document.model
    assert model.setData(model.index(1, COL_NAME), "api")
    assert not model.setData(model.index(1, COL_NAME), "api"), "nothing changed, nothing to undo"
    assert model.problems(0) == []  # the first holder of a ref keeps it; the later row is the duplicate
    assert model.problems(1) == ["duplicate reference api:latest (another image has the same name and tag)"]
    assert model.invalid_enabled_rows()
    assert model.setData(model.index(1, COL_ENABLED), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert document.undo.count() == 2 and document.modified
    document.undo.undo()
    document.undo.undo()
    assert not document.modified and model.invalid_enabled_rows() == []


def test_a_final_outcome_clears_the_retry_note(tmp_path: Path, qapp) -> None:
    model = model_for(tmp_path, qapp)
    keys = {"api": model.uid(0)}
    failure = ev.Failure(ev.FailureKind.UNREACHABLE, "connection refused", "check the registry")
    model.start_rows([model.uid(0)], [], {})
    model.apply_events([ev.RetryScheduled("api", ev.Stage.PUSH, 2, 4.0, failure), ev.PushFailed("api", failure)],
                       keys)
    assert model.index(0, COL_STATUS).data() == "failed: registry unreachable — connection refused"


def test_counts_follow_edits_removals_undo_and_new_runs(tmp_path: Path, qapp) -> None:
    """The counts are kept as rows change, never recounted per batch: after every kind of
    change they must equal a fresh count."""
    model = model_for(tmp_path, qapp)
    keys = {"api": model.uid(0), "web": model.uid(1)}

    def agrees() -> dict[str, int]:
        kept = model.counts()
        model._recount()
        assert model.counts() == kept
        return kept

    model.start_rows([model.uid(0), model.uid(1)], [], {})
    model.apply_events([ev.BuildStarted("web", 1, 1.0),
                        ev.BuildFailed("web", ev.Failure(ev.FailureKind.BUILD_STEP, "boom", "fix it"))], keys)
    assert agrees()["retryable"] == 1
    model.set_field(model.uid(1), "enabled", False)  # a disabled failure is not retried
    assert (agrees()["retryable"], model.counts()["enabled"]) == (0, 1)
    model.set_field(model.uid(1), "enabled", True)
    taken = model.take_rows([model.uid(1)])  # removed, then brought back by undo
    assert (agrees()["failed"], model.counts()["run"]) == (0, 1)
    model.insert_rows(taken[0][0], [row for _, row in taken])
    assert (agrees()["failed"], model.counts()["run"], model.counts()["active"]) == (1, 2, 1)
    model.start_rows([model.uid(1)], [], {})  # a retry of the failed one alone: a run of one
    assert (agrees()["run"], model.counts()["failed"], model.counts()["run_done"]) == (1, 0, 0)
    model.set_project(model.project)  # another project: nothing run yet
    assert (agrees()["run"], model.counts()["active"]) == (0, 0)
