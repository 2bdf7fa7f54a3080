"""QC reports of restored shots (`dvface report`): `build` measures, `page` writes the HTML."""

from .build import build_report

__all__ = ["build_report"]
