"""Reports generated from the runs store (never by rerunning models)."""

from sessbench.report.builder import write_report

__all__ = ["write_report"]
