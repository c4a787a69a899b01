"""The project's home: the folder that holds its ZenML and MLflow state, resume states and logs.

`FERKIT_HOME` names it; otherwise an editable install knows its checkout and the home is
`<checkout>/.ferkit`, wherever a command runs from. ZenML's own config folder follows:
`ZENML_CONFIG_PATH` when set, else `<home>/zenml`. So does ZenML's repository (`.zen`, which
records the active stack): the checkout's own for the checkout's home, `<home>/repo` for any
other home, so that a run in another home (`make seeds`, a test) never switches the stack of
the checkout's. ZenML's source root (what step sources are named against, and the code a
Kubeflow or Kubernetes run uploads) is the checkout for every home, not that repository folder.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

HOME_ENV = "FERKIT_HOME"
ZENML_ENV = "ZENML_CONFIG_PATH"
REPOSITORY_ENV = "ZENML_REPOSITORY_PATH"
SOURCE_ROOT_ENV = "ZENML_CUSTOM_SOURCE_ROOT"


def project_root() -> Path | None:
    """The checkout this ferkit runs from (an editable install), or None for an installed wheel."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "configs").is_dir() else None


def ferkit_home(environ: MutableMapping[str, str] = os.environ) -> Path:
    """$FERKIT_HOME, else `<checkout>/.ferkit`, else `./.ferkit`."""
    if environ.get(HOME_ENV):
        return Path(environ[HOME_ENV]).expanduser().resolve()
    root = project_root()
    return (root if root is not None else Path.cwd()) / ".ferkit"


def zenml_config_path(environ: MutableMapping[str, str] = os.environ) -> Path:
    """ZenML's config folder: $ZENML_CONFIG_PATH, else `<home>/zenml`."""
    if environ.get(ZENML_ENV):
        return Path(environ[ZENML_ENV]).expanduser().resolve()
    return ferkit_home(environ) / "zenml"


def zenml_repository_path(environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """ZenML's repository folder: $ZENML_REPOSITORY_PATH; `<home>/repo` for a home other than the
    checkout's; `<ZenML config>/repo` for a ZenML config other than the home's (its stacks are
    not the ones the home's `.zen` names); None for the checkout's home with its own ZenML config
    (ZenML finds the checkout's `.zen` from the working folder, and cluster builds take their code
    from there)."""
    if environ.get(REPOSITORY_ENV):
        return Path(environ[REPOSITORY_ENV]).expanduser().resolve()
    root = project_root()
    home = ferkit_home(environ)
    config = zenml_config_path(environ)
    if config != home / "zenml":
        return config / "repo"
    return None if root is not None and home == root.resolve() / ".ferkit" else home / "repo"


def apply_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """Point ZenML at the project's home unless the environment already points it somewhere.

    Run at every interpreter start of the project's virtual environment (a `.pth` file that
    `make setup` writes), so `zenml` and `ferkit` typed in any shell and folder use the
    project's stack and never fall back to ZenML's global default.
    """
    environ.setdefault(ZENML_ENV, str(zenml_config_path(environ)))
    repository = zenml_repository_path(environ)
    if repository is not None:
        environ.setdefault(REPOSITORY_ENV, str(repository))
    root = project_root()
    if root is not None:  # else ZenML takes the repository folder, which holds no code, as the source root
        environ.setdefault(SOURCE_ROOT_ENV, str(root))
    environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
