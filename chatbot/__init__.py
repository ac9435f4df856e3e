"""medchat: retrieval-augmented medical question answering with cited sources.

Importing this package is cheap: no model, torch, Chroma or Gradio is touched
until a function that needs it is called.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
