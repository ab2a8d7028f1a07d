"""`srpo report`: a Markdown report with figures (PNG, SVG or PDF), computed from the registry
only."""

from srpo_core.report.document import (
    FIGURE_FORMATS,
    FORMAT_MARKER,
    REPORT_FILE,
    SECTIONS,
    TIMESTAMP_PREFIX,
    Missing,
    Report,
    build_report,
    check_out_dir,
    check_report,
    format_number,
    missing_data,
    write_report,
)

__all__ = [
    "FIGURE_FORMATS",
    "FORMAT_MARKER",
    "REPORT_FILE",
    "SECTIONS",
    "TIMESTAMP_PREFIX",
    "Missing",
    "Report",
    "build_report",
    "check_out_dir",
    "check_report",
    "format_number",
    "missing_data",
    "write_report",
]
