"""Lineage coverage: which functions read or write data without recording lineage."""

from datatrail.coverage._static import (
    CoverageReport,
    DataCall,
    FunctionCoverage,
    analyze,
    analyze_source,
)

__all__ = ["CoverageReport", "DataCall", "FunctionCoverage", "analyze", "analyze_source"]
