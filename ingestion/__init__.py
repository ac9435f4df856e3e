"""Turning files into indexed, citable chunks.

Importing this package is cheap: loaders, the tokenizer, the embedder and
Chroma are imported by the functions that use them.
"""
