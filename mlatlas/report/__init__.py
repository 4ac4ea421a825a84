"""The guide as a static site: `build_site(runs_dir, out)`, served by `mlatlas serve`."""

from mlatlas.report.site import build_site

__all__ = ["build_site"]
