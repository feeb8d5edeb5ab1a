"""Make the collection importable as ansible_collections.aiops.mlstack in unit tests."""

import sys
from pathlib import Path

_COLLECTIONS = Path(__file__).resolve().parents[2] / ".ansible" / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))
