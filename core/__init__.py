"""The engine and everything that runs it, in wings whose layers `pyproject.toml`'s import contract
checks (top to bottom; a wing imports only from wings below it):

- `study/`  many runs compared: study files, member folders, runners, results, figures
- `run/`    one training process and its model folder: trainer, build, checkpoints, event log, commands
- `config`  the run's settings, checked against the names the engine wings define
- `fused/`, `optim/`  the fused training step; optimizers and schedules
- `nn/`, `data/`  the autograd engine and layers; datasets, splits, batches
- `backend`, `metrics`, `toml_text`, `errors`  shared vocabulary

Nothing here imports textual, click or rich: the engine is usable from plain Python and from the
GPU machines that have no UI packages installed.
"""
