"""The public surface is small and pinned."""

import datatrail


def test_all_is_sorted_and_pinned():
    # The order is ruff's (RUF022): constants, classes, then the rest, each alphabetical.
    assert datatrail.__all__ == [
        "REDACTED",
        "ContractViolation",
        "DatasetRef",
        "DatatrailError",
        "Explanation",
        "FlushResult",
        "JobRef",
        "LineageEdge",
        "LineageGraph",
        "LineageNode",
        "PolicyDenied",
        "PolicyError",
        "RunHandle",
        "RunRecord",
        "Secret",
        "Trail",
        "__version__",
        "bind_context",
        "configure",
        "current_run",
        "file_dataset",
        "flush",
        "inmemory_dataset",
        "postgres_dataset",
        "run",
        "track",
    ]


def test_every_public_name_exists_and_is_documented():
    for name in datatrail.__all__:
        obj = getattr(datatrail, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_errors_share_one_root_and_builtin_bases():
    from datatrail import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.DatatrailError)
    assert issubclass(errors.InvalidEvent, ValueError)
    assert issubclass(errors.NodeNotFound, LookupError)
    assert issubclass(errors.UsageError, TypeError)
