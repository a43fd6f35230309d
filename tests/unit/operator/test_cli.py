"""smc-operator CLI: kopf's scoping flags."""

from __future__ import annotations

import pytest

from smc_operator.cli import build_parser


def test_namespace_list_and_all_namespaces_are_exclusive() -> None:
    args = build_parser().parse_args(["-n", "a", "--namespace", "b", "--standalone"])
    assert args.namespace == ["a", "b"] and args.standalone and not args.all_namespaces
    assert build_parser().parse_args(["-A"]).all_namespaces
    with pytest.raises(SystemExit):
        build_parser().parse_args(["-A", "-n", "x"])
    with pytest.raises(SystemExit):
        build_parser().parse_args([])
