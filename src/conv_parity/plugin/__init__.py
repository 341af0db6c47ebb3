"""The pytest plugin (entry point ``conv_parity``; disable with ``-p no:conv_parity``).

A face that only re-exports: pytest finds the hooks and fixtures as attributes of this module.
``hooks`` holds what runs in every pytest process (options, state, parametrization, fixtures,
enforcement); ``recorder`` what runs where the report is written (report.json, the matrix).
"""

from conv_parity.plugin.hooks import (
    ConformanceFailure,
    KnownDiscrepancy,
    conv_assert,
    conv_engine,
    conv_filter_counter,
    conv_record_failures,
    describe,
    enforce,
    load_cases,
    mark_known,
    pytest_addoption,
    pytest_collection_finish,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_generate_tests,
    pytest_report_header,
    pytest_runtest_call,
    pytest_runtest_makereport,
    pytest_sessionfinish,
)

__all__ = [
    "ConformanceFailure", "KnownDiscrepancy", "conv_assert", "conv_engine",
    "conv_filter_counter", "conv_record_failures", "describe", "enforce", "load_cases",
    "mark_known", "pytest_addoption", "pytest_collection_finish", "pytest_collection_modifyitems",
    "pytest_configure", "pytest_generate_tests", "pytest_report_header", "pytest_runtest_call",
    "pytest_runtest_makereport", "pytest_sessionfinish",
]
