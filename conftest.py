"""pytest set-up shared by the unit tests and the nbval notebook run.

The notebook kernels inherit this process's environment, so the profile is set here:
``make test`` runs every notebook on the embedded default unless FASTRCNN_PROFILE says otherwise.
"""

import os
import tempfile

os.environ.setdefault("FASTRCNN_PROFILE", "embedded")
os.environ.setdefault("PYTHONHASHSEED", "0")
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads
# slow every other process (and the notebooks' kernels, which inherit this) several-fold. They
# spin briefly first (GOMP_SPINCOUNT 10000, about 0.1 ms): a thread put to sleep after every
# operation costs a wake-up on the next, which tripled the time of RoI pooling's hundreds of
# small operations (9 ms -> 24 ms for 2000 RoIs on 2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
# Reports written by notebooks under test go to a scratch folder, never into the user's reports/
# (only `make course` writes there).
os.environ.setdefault(
    "FASTRCNN_REPORTS",
    os.path.join(tempfile.gettempdir(), f"fastrcnn-lite-test-reports-{os.getuid()}"),
)
