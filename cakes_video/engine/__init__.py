"""The training and testing loops and the pieces they are made of.

- train.py: ``train(cfg)``, the loop in small steps, with :class:`Hook` extension points
- setup.py: builds the Trainer (checks, model, weights, DDP, optimizer, schedule, loaders)
- testing.py: ``run_test(cfg)``, multi-view testing and its reports; evaluate.py: metrics
- schedule.py: optimizers, parameter groups, per-iteration LR schedules
- checkpointer.py: keep-last-N / best / resume / fine-tune on top of checkpoint/schema.py
- distributed.py, runtime.py: torchrun/DDP helpers, seeds, pre-run checks, precise BN
- monitor.py: log, metrics.jsonl, TensorBoard, progress bars; reports.py: CSV/PNG/JSON files
- predict.py: top-k classes of one video; demo.py: the `make demo` job; cli.py: tool exits
"""
