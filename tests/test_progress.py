"""The status file a running chapter writes and the runner prints."""

import time

import torch
from torch import nn

from netshrink import progress, train


def test_update_merges_fields_and_a_new_stage_drops_the_last_models_epochs(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    progress.update(stage="nothing written")  # no $NETSHRINK_STATUS: a no-op
    assert not path.exists()
    monkeypatch.setenv(progress.ENV, str(path))
    progress.training("mlp on MNIST", 3, 15, 20.0)
    status = progress.read(path)
    assert (status["model"], status["epoch"], status["epochs"], status["seconds_left"]) == (
        "mlp on MNIST",
        3,
        15,
        240.0,
    )
    assert "training mlp on MNIST epoch 3/15, 4.0 min left for it" in progress.describe(status, 20)
    progress.update(stage="sensitivity of features.3")
    status = progress.read(path)
    assert status["stage"] == "sensitivity of features.3" and "model" not in status
    assert progress.describe({"cell": 7, "stage": "x", "updated": time.time()}, 20).startswith(
        "cell 7/20 · x"
    )


def test_unreadable_status_reads_as_none(tmp_path):
    (tmp_path / "s.json").write_text("[1, 2")
    assert progress.read(tmp_path / "s.json") is None and progress.read(tmp_path / "missing.json") is None
    assert progress.describe({}) == "starting"


def test_fit_reports_every_epoch_with_the_time_left(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    monkeypatch.setenv(progress.ENV, str(path))
    seen = []
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
    train.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, 3, progress=False, desc="tiny",
              on_epoch_end=lambda epoch, hist: seen.append(progress.read(path)))  # fmt: skip
    assert [(s["model"], s["epoch"], s["epochs"]) for s in seen] == [
        ("tiny", 1, 3),
        ("tiny", 2, 3),
        ("tiny", 3, 3),
    ]
    assert all(s["seconds_left"] >= 0 for s in seen) and seen[-1]["seconds_left"] == 0


def test_the_cell_reported_is_the_running_cell():
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history database in the home folder
    shell = InteractiveShell.instance(config=config)
    try:
        shell.run_cell("x = 1", store_history=True)
        result = shell.run_cell("from netshrink import progress\ncell = progress._cell()", store_history=True)
        assert result.success and shell.user_ns["cell"] == result.execution_count == 2
    finally:
        InteractiveShell.clear_instance()


def test_models_trained_outside_the_cache_reach_the_one_listener():
    from netshrink import progress

    heard = []
    progress.model_trained("nobody listens", 1.0)
    progress.listen_for_models(lambda what, s: heard.append(("first", what)))
    progress.listen_for_models(lambda what, s: heard.append(("second", what, s)))  # replaces the first
    progress.model_trained("an MLP", 2.5)
    progress.listen_for_models(None)
    progress.model_trained("after", 1.0)
    assert heard == [("second", "an MLP", 2.5)]
