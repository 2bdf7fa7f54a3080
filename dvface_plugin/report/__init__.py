"""QC reports of restored shots (`dvface report`): `build` measures, `page` writes the HTML."""

from .build import ShotReport, build_report

__all__ = ["ShotReport", "build_report"]
