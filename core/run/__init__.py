"""One training process and its model folder: the loop, what it builds (model, optimizer, schedule,
data), the folder's format, lock and checkpoints, the event log, the command channel, evaluation,
export and the folders' status as readers see it.

May import: `core.nn`, `core.optim`, `core.data`, `core.fused`, `core.config` and the shared
vocabulary; never `core.study`.
"""
