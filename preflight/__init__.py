"""dw-preflight: preflight checks for LLM services on DataWorks Serverless resource groups."""

__version__ = "0.1.0"

__all__ = ["__version__"]
