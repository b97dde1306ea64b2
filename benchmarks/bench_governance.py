"""Governance: access decisions with 1,000 rules, cached and uncached, beside pycasbin and cedarpy.

One model, three engines. 1,000 rules: each of 500 roles may read the datasets
under its own folder (``/data/d<i>/*``), and 500 deny rules refuse each role's
``/data/d<i>/secret/*``; 500 principals hold one role each. The same 2,000
requests (half allowed, a quarter refused by a deny, a quarter by no allow) go
to datatrail's :class:`Engine` (uncached: a fresh decision each time; cached:
the same request again), to pycasbin (RBAC with deny-override and ``keyMatch``,
the enforcer built once) and to cedarpy (``permit``/``forbid`` with ``like``,
policy set and every entity parsed once). All three must agree on every outcome, or
the run fails. Targets: cached ≤ 5 µs p50, uncached ≤ 50 µs p50, ≥ 10x faster
than both rivals.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from benchmarks._harness import Result, percentile
from datatrail.governance import Engine, parse_policy

ROLES = 500
REQUESTS = 2_000
RATIO_TARGET = 10.0


def _policy_yaml() -> str:
    lines = ["roles:"]
    lines += [f"  r{i}: {{}}" for i in range(ROLES)]
    lines.append("principals:")
    lines += [f"  u{i}: {{roles: [r{i}]}}" for i in range(ROLES)]
    lines.append("access:")
    for i in range(ROLES):
        lines += [
            f"  - id: allow-{i}",
            "    effect: allow",
            "    actions: [read]",
            f"    roles: [r{i}]",
            f"    datasets: [{{namespace: file, name: '/data/d{i}/*'}}]",
            f"  - id: deny-{i}",
            "    effect: deny",
            "    actions: [read]",
            f"    roles: [r{i}]",
            f"    datasets: [{{namespace: file, name: '/data/d{i}/secret/*'}}]",
        ]
    return "\n".join(lines) + "\n"


def _requests(n: int) -> list[tuple[str, str]]:
    rng = random.Random(20261120)
    out = []
    for k in range(n):
        i = rng.randrange(ROLES)
        kind = k % 4
        if kind in (0, 1):
            path = f"/data/d{i}/t{k}.csv"  # allowed
        elif kind == 2:
            path = f"/data/d{i}/secret/t{k}.csv"  # denied by a deny rule
        else:
            path = f"/data/d{(i + 1) % ROLES}/t{k}.csv"  # no allow
        out.append((f"u{i}", path))
    return out


_CASBIN_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && r.act == p.act
"""


def _casbin() -> Callable[[str, str], bool]:
    import casbin

    model = casbin.Enforcer.new_model(text=_CASBIN_MODEL)
    enforcer = casbin.Enforcer(model)
    for i in range(ROLES):
        enforcer.add_policy(f"r{i}", f"/data/d{i}/*", "read", "allow")
        enforcer.add_policy(f"r{i}", f"/data/d{i}/secret/*", "read", "deny")
        enforcer.add_grouping_policy(f"u{i}", f"r{i}")

    def decide(principal: str, path: str) -> bool:
        return bool(enforcer.enforce(principal, path, "read"))

    return decide


def _cedar(paths: list[str]) -> Callable[[str, str], bool]:
    """Cedar with the policy set and every entity (users, roles, resources) parsed once."""
    import json

    import cedarpy

    text = []
    for i in range(ROLES):
        text.append(
            f'permit(principal in Role::"r{i}", action == Action::"read", resource) '
            f'when {{ resource.path like "/data/d{i}/*" }};'
        )
        text.append(
            f'forbid(principal in Role::"r{i}", action == Action::"read", resource) '
            f'when {{ resource.path like "/data/d{i}/secret/*" }};'
        )
    policies = cedarpy.PolicySet.from_str("\n".join(text))
    users = [
        {
            "uid": {"type": "User", "id": f"u{i}"},
            "attrs": {},
            "parents": [{"type": "Role", "id": f"r{i}"}],
        }
        for i in range(ROLES)
    ]
    roles = [
        {"uid": {"type": "Role", "id": f"r{i}"}, "attrs": {}, "parents": []} for i in range(ROLES)
    ]
    resources = [
        {"uid": {"type": "Dataset", "id": p}, "attrs": {"path": p}, "parents": []} for p in paths
    ]
    entities = cedarpy.Entities.from_json_str(json.dumps([*users, *roles, *resources]))

    def decide(principal: str, path: str) -> bool:
        request = {
            "principal": {"type": "User", "id": principal},
            "action": {"type": "Action", "id": "read"},
            "resource": {"type": "Dataset", "id": path},
            "context": {},
        }
        result = cedarpy.is_authorized(request, policies, entities)
        return bool(result.allowed)

    return decide


def _samples(fn: Callable[[str, str], object], requests: list[tuple[str, str]]) -> list[float]:
    out = []
    clock = time.perf_counter
    for principal, path in requests:
        start = clock()
        fn(principal, path)
        out.append(clock() - start)
    return out


def run(quick: bool) -> list[Result]:
    """Decision latency rows: cached, uncached, pycasbin, cedarpy."""
    policy = parse_policy(_policy_yaml())
    assert len(policy.access) == 2 * ROLES
    requests = _requests(REQUESTS // 4 if quick else REQUESTS)
    node = "dataset:file:"

    uncached_engine = Engine(policy, cache=False)

    def ours_uncached(principal: str, path: str) -> bool:
        return uncached_engine.decide(principal, "read", node + path).allowed

    cached_engine = Engine(policy)

    def ours_cached(principal: str, path: str) -> bool:
        return cached_engine.decide(principal, "read", node + path).allowed

    casbin_decide = _casbin()
    cedar_requests = requests[: max(100, len(requests) // 4)]
    cedar_decide = _cedar([path for _, path in cedar_requests])
    # Everyone must agree, or the comparison means nothing.
    expected = [ours_uncached(p, r) for p, r in requests]
    assert expected.count(True) == sum(1 for k in range(len(requests)) if k % 4 in (0, 1))
    assert [casbin_decide(p, r) for p, r in requests] == expected, "pycasbin disagrees"
    assert [cedar_decide(p, r) for p, r in cedar_requests] == expected[: len(cedar_requests)], (
        "cedarpy disagrees"
    )
    for p, r in requests:  # warm the cache
        ours_cached(p, r)
    rounds = 3
    uncached = statistics.median(
        percentile(_samples(ours_uncached, requests), 50) for _ in range(rounds)
    )
    cached = statistics.median(
        percentile(_samples(ours_cached, requests), 50) for _ in range(rounds)
    )
    casbin_p50 = percentile(_samples(casbin_decide, requests), 50)
    cedar_p50 = percentile(_samples(cedar_decide, cedar_requests), 50)
    us = 1e6
    worst_rival = min(casbin_p50, cedar_p50)
    return [
        Result(
            name="decision, 1,000 rules, cached (p50)",
            ours=cached * us,
            unit="µs",
            target="≤ 5 µs",
            ok=cached * us <= 5,
        ),
        Result(
            name="decision, 1,000 rules, uncached (p50)",
            ours=uncached * us,
            unit="µs",
            target="≤ 50 µs",
            ok=uncached * us <= 50,
        ),
        Result(
            name="uncached vs pycasbin (p50)",
            ours=uncached * us,
            unit="µs",
            baseline=casbin_p50 * us,
            baseline_name="pycasbin enforce",
            ratio=casbin_p50 / uncached,
            target="≥ 10x faster",
            ok=casbin_p50 / uncached >= RATIO_TARGET,
        ),
        Result(
            name="uncached vs cedarpy (p50)",
            ours=uncached * us,
            unit="µs",
            baseline=cedar_p50 * us,
            baseline_name="cedarpy is_authorized",
            ratio=cedar_p50 / uncached,
            target="≥ 10x faster",
            ok=cedar_p50 / uncached >= RATIO_TARGET,
            note=f"slowest rival {worst_rival * us:.1f} µs",
        ),
    ]
