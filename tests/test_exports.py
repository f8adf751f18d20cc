"""The public API is exactly __all__, sorted, and every public object says it is anypool's."""

from __future__ import annotations

import inspect

import anypool


def test_all_is_sorted_and_complete() -> None:
    public = {
        n
        for n in dir(anypool)
        if not n.startswith("_") and not inspect.ismodule(getattr(anypool, n))
    }
    assert len(anypool.__all__) == len(set(anypool.__all__))  # ruff's RUF022 keeps it sorted
    assert public - {"annotations"} == set(anypool.__all__) - {"__version__"}


def test_public_objects_belong_to_anypool() -> None:
    for name in anypool.__all__:
        obj = getattr(anypool, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ == "anypool", name
            assert obj.__doc__, f"{name} has no docstring"


def test_public_functions_and_classes_have_examples() -> None:
    for name in ("Executor", "map", "imap", "imap_unordered", "Failure", "TaskError"):
        assert "Example" in (getattr(anypool, name).__doc__ or ""), name
