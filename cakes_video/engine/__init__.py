"""The training and testing loops and the pieces they are made of.

- setup.py: ``train(cfg)``: builds the Trainer (checks, model, weights, DDP, optimizer,
  schedule, loaders, writers) and its hooks in order, then runs it
- train.py: the loop alone: :class:`Trainer`, its steps, the :class:`Hook` points
- hooks.py: the periodic work as hooks: NaN stop, precise BN, validation, metric lines,
  best tracking and checkpoints, training curves, the run lock
- rundir.py: OUTPUT_DIR as one run's: its lock, the resume checked against its checkpoint
- testing.py: ``run_test(cfg)``, multi-view testing and its reports; evaluate.py: validation pass
- checkpointer.py: keep-last-N / best / resume / fine-tune on top of checkpoint/schema.py
- runtime.py: seeds, device, pre-run checks (failed videos: datasets/failures.py)
- monitor.py: log, metrics.jsonl, TensorBoard, progress bars; reports.py: CSV tables;
  plots.py: every engine figure
- predict.py: top-k classes of users' videos (files, folders, lists), whole or window by window,
  with a PyTorch or an exported model; export.py: ONNX / TorchScript files
- search.py: the CAKES search as a run (supernet, derivation, derived network)
- demo.py: the `make demo` job; cli.py: tool exits

Elsewhere: optimizers and LR schedules in cakes_video/solver.py, torchrun/DDP helpers in
cakes_video/utils/distributed.py, metrics in cakes_video/utils/metrics.py.
"""
