"""Data contracts: what a dataset promises, versioned in the log and checked on every output.

Declare contracts in ``.datatrail/contracts.yaml`` (or ``.datatrail/contracts/*.yaml``),
call :func:`install` once, and every output of a dataset with a contract is checked
before it registers (see ``docs/contracts.md``).
"""

from datatrail.contracts._diff import Change, ContractDiff, diff_contracts
from datatrail.contracts._evaluate import Assertion, CheckResult, evaluate, to_arrow
from datatrail.contracts._install import ContractChecker, contracts_path, install, uninstall
from datatrail.contracts._spec import (
    ColumnSpec,
    Contract,
    ContractError,
    FreshnessSpec,
    LineageSpec,
    RowsSpec,
    contract_hash,
    load_contracts,
    parse_contracts,
    parse_duration,
)
from datatrail.contracts._versions import (
    ContractVersion,
    apply_contracts,
    contract_version,
    contract_versions,
    infer_contract,
    latest_contracts,
)

__all__ = [
    "Assertion",
    "Change",
    "CheckResult",
    "ColumnSpec",
    "Contract",
    "ContractChecker",
    "ContractDiff",
    "ContractError",
    "ContractVersion",
    "FreshnessSpec",
    "LineageSpec",
    "RowsSpec",
    "apply_contracts",
    "contract_hash",
    "contract_version",
    "contract_versions",
    "contracts_path",
    "diff_contracts",
    "evaluate",
    "infer_contract",
    "install",
    "latest_contracts",
    "load_contracts",
    "parse_contracts",
    "parse_duration",
    "to_arrow",
    "uninstall",
]
