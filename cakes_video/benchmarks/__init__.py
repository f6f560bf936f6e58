"""Benchmarks: what models, convolutions and the data pipeline cost, measured alike.

Modules, each importing only those above it:

- timing.py: the one timing core (timed calls, warm-up, interleaved runs, first-call seconds,
  wall / CPU / CUDA-event clocks, median and best-of-N summaries, aligned text tables)
- execution.py: one ExecutionPath for every model of a run, each model's Entry, the timed call,
  SettingError (messages that name settings)
- breakdown.py: where a forward's time goes (hooked CAKES layers and dense convolutions)
- models.py: params, FLOPs, latency and fair comparisons of models named by specs; their tables
- conv_rates.py: the FLOP rate of each single convolution, per CPU call path
- data.py: decoding, training loader and multi-view test throughput
- predict_memory.py: peak memory of a windowed prediction, in a fresh process, by video length
- comparison.py: one model per temporal op, trained and tested on the synthetic benchmark
- cli.py: the tools' command lines (parsers, flag checks, each tool's main)

No module of the library outside this package imports it.
"""
