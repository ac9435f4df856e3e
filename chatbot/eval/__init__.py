"""Benchmarks: dataset adapters, metrics, the evaluation runner and its reports.

`medchat eval DATASET PATH -o OUTDIR` calls `chatbot.eval.runner.run_eval`.
"""
