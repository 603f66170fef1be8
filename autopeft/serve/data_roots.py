"""DataRoots: the only files a request may name are inside the folders the operator gave with --data-root.

A submitted search space or audit request names models, task data and checkpoints. Each must be a built-in
name (`minilm`, `task: {name: demo}`) or an absolute path that, with every symlink followed, lies inside a data
root. Relative paths, `~`, `..` parts and hub downloads are refused: a request never reads an arbitrary file
of the server's machine, and never makes it download anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autopeft.errors import CheckpointError
from autopeft.models import BUILTIN_MODELS, resolve_model_path
from autopeft.search_space import SearchSpace
from autopeft.serve.service_error import bad_request

TASK_PATH_KEYS = ("path", "train_file", "dev_file")


@dataclass(frozen=True)
class DataRoots:
    """Resolved data-root folders; empty means only built-in models and the demo task."""

    roots: tuple[Path, ...] = ()

    @classmethod
    def of(cls, folders: tuple[Path, ...]) -> DataRoots:
        return cls(tuple(folder.resolve() for folder in folders))

    def check_space(self, space: SearchSpace) -> None:
        """Every model and data path of `space` is allowed, or a 400 naming its key."""
        self.check_model(space.model, f"{space.source}: model")
        if space.task.name == "hub":
            raise bad_request(
                f"{space.source}: task.name: 'hub' downloads a data set, which the service never does; "
                f"expected demo, a GLUE task or file, with paths {self.rule}"
            )
        for key in TASK_PATH_KEYS:
            value = getattr(space.task, key)
            if value is not None:
                self.check_path(str(value), f"{space.source}: task.{key}")

    def check_model(self, name: str, where: str) -> None:
        """A built-in model name, its installed folder, or a folder inside a data root."""
        if name in BUILTIN_MODELS or _is_builtin_folder(name):
            return
        self.check_path(name, where, f"a built-in model name ({', '.join(sorted(BUILTIN_MODELS))}) or ")

    def check_path(self, text: str, where: str, alternative: str = "") -> Path:
        """`text` as a resolved absolute path inside a data root, or a 400 that states the rule."""
        refusal = bad_request(f"{where}: expected {alternative}an absolute path {self.rule}, got {text!r}")
        if "\x00" in text or not text:
            raise refusal
        path = Path(text)
        if not path.is_absolute():
            raise refusal
        if ".." in path.parts:
            raise bad_request(f"{where}: '..' is not allowed in paths; expected a path {self.rule}")
        resolved = path.resolve()
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            raise refusal
        return resolved

    @property
    def rule(self) -> str:
        if not self.roots:
            return "inside a data root (this server has no --data-root, so only built-in names are allowed)"
        return f"inside a data root ({', '.join(str(root) for root in self.roots)})"


def _is_builtin_folder(name: str) -> bool:
    """True for the installed folder of a built-in model, which adapters record as their base."""
    for builtin in BUILTIN_MODELS:
        try:
            if Path(name).resolve() == resolve_model_path(builtin).resolve():
                return True
        except CheckpointError:  # the package of a built-in model is not installed: it allows nothing
            continue
    return False
