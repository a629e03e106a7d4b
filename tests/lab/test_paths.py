"""Where the book is, and how its paths are shown to a reader."""


def test_display_path_hides_the_build_machine(tmp_path, monkeypatch):
    from apalu.lab.paths import display_path

    (tmp_path / "_toc.yml").write_text("root: x\n")
    monkeypatch.setenv("APALU_BOOK_ROOT", str(tmp_path))
    assert display_path(tmp_path / "_build" / "results" / "x") == "_build/results/x"
    assert display_path("/elsewhere/out") == "/elsewhere/out"
