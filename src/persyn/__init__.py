"""persyn: personalised SFT data for one student model (PerSyn, arXiv 2510.10925).

A calibration set is answered by every teacher; each response is scored for quality and for
learnability by the student; a Bradley–Terry router learns which teacher suits each prompt; then
only the routed teacher answers each remaining prompt (Route-then-Generate).

``import persyn`` stays light: torch and transformers are imported only by the stages that
need them.
"""

from persyn.core.errors import ConfigError, InputError, MissingAssetError, PersynError

__version__ = "0.1.0"

__all__ = ["ConfigError", "InputError", "MissingAssetError", "PersynError", "__version__"]
