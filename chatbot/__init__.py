"""medchat: retrieval-augmented medical question answering with cited sources.

Importing this package is cheap: no model, torch, Chroma or Gradio is touched
until a function that needs it is called.
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

__all__ = ["__version__"]

# sentence-transformers imports peft, which imports bitsandbytes, which warns on every CPU-only
# start that an optional kernel package is missing. medchat never runs bitsandbytes on a CPU, so the
# sentence is noise in front of every command's output. The filter sits on the logger that emits it
# (a handler filter would miss commands that print before logging is configured).
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    lambda record: "kernels" not in record.getMessage()
)
