"""matxfer: fast featurization and transfer learning for materials and molecules."""

from matxfer._core import __version__

__all__ = ["__version__"]
