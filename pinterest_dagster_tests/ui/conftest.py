"""A failed UI test leaves a screenshot and the page's HTML in its tmp dir, named in the failure report."""

from __future__ import annotations

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    ui = item.funcargs.get("ui") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and ui is not None:
        saved = ui.save_page(item.funcargs["tmp_path"], "failure")
        report.sections.append(("UI at failure", "\n".join(str(path) for path in saved)))
    return report
