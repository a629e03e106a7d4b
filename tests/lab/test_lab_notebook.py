"""apalu.lab.notebook.start_experiment: the set-up every experiment notebook runs."""

import torch

from apalu.lab.notebook import start_experiment


def test_start_experiment_sets_one_thread_and_returns_the_folder_and_a_timer(tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    try:
        out, clock = start_experiment("exp_x", str(tmp_path / "run"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert out == tmp_path / "run" and out.is_dir()
    assert 0 <= clock() < 60


def test_start_experiment_defaults_to_the_build_results_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("APALU_BOOK_ROOT", str(tmp_path))
    threads = torch.get_num_threads()
    try:
        out, _ = start_experiment("exp_x")
    finally:
        torch.set_num_threads(threads)
    assert out == tmp_path / "_build" / "results" / "exp_x" and out.is_dir()
