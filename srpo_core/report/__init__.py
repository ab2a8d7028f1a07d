"""`srpo report`: a Markdown report with PNG figures, computed from the registry only."""

from srpo_core.report.document import (
    FORMAT_MARKER,
    REPORT_FILE,
    SECTIONS,
    TIMESTAMP_PREFIX,
    Missing,
    Report,
    build_report,
    check_out_dir,
    check_report,
    missing_data,
    write_report,
)

__all__ = [
    "FORMAT_MARKER",
    "REPORT_FILE",
    "SECTIONS",
    "TIMESTAMP_PREFIX",
    "Missing",
    "Report",
    "build_report",
    "check_out_dir",
    "check_report",
    "missing_data",
    "write_report",
]
