"""Optional triage scores, one module each; every module here registers its score with
:func:`interp.triage.registry.register` at import (the registry imports them all). Modules stay torch-free at
import time: a score's heavy imports go inside its ``compute``."""
