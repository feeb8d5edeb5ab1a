"""Reference ML services of aiops.mlstack; the unit is chosen by MLSTACK_UNIT (docs/service-contract.md)."""

__version__ = "0.1.0"
