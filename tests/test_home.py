"""Where a ferkit home keeps ZenML's state: another home never switches the checkout's stack."""

from __future__ import annotations

from ferkit.home import apply_defaults, project_root, zenml_repository_path


def test_the_checkouts_home_uses_the_checkouts_repository_and_any_other_home_its_own(tmp_path):
    root = project_root()
    assert zenml_repository_path({"FERKIT_HOME": str(root / ".ferkit")}) is None
    assert zenml_repository_path({}) is None  # the checkout's home by default
    assert zenml_repository_path({"FERKIT_HOME": str(tmp_path)}) == tmp_path.resolve() / "repo"
    given = {"FERKIT_HOME": str(tmp_path), "ZENML_REPOSITORY_PATH": str(tmp_path / "elsewhere")}
    assert zenml_repository_path(given) == tmp_path / "elsewhere"

    environ = {"FERKIT_HOME": str(tmp_path)}
    apply_defaults(environ)
    assert environ["ZENML_REPOSITORY_PATH"] == str(tmp_path.resolve() / "repo")
    assert environ["ZENML_CONFIG_PATH"] == str(tmp_path.resolve() / "zenml")
    checkout = {"FERKIT_HOME": str(root / ".ferkit")}
    apply_defaults(checkout)
    assert "ZENML_REPOSITORY_PATH" not in checkout
