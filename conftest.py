"""pytest set-up shared by the unit tests and the nbval notebook run.

The notebook kernels inherit this process's environment, so the profile is set here:
``make test`` runs every notebook on the embedded default unless FASTRCNN_PROFILE says otherwise.
"""

import os

os.environ.setdefault("FASTRCNN_PROFILE", "embedded")
os.environ.setdefault("PYTHONHASHSEED", "0")
