"""``python -m training`` -> :func:`training.train.main`."""
from __future__ import annotations

from training.train import main

raise SystemExit(main())
