"""Setup: pick a preset, adjust the experiment, and start it; invalid values are flagged inline."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Checkbox, Footer, Input, Label, OptionList, Select, Static

from neuraterm.core import config as config_mod
from neuraterm.core.activations import ACTIVATIONS
from neuraterm.core.backend import DEVICES
from neuraterm.core.data.registry import DATASETS
from neuraterm.core.errors import NeuratermError
from neuraterm.core.initializers import INITIALIZERS
from neuraterm.core.optimizers import OPTIMIZERS

SCHEDULES = ("constant", "linear", "exponential", "step", "cosine", "plateau")
# (widget id, config path, kind, choices)
FIELDS = [
    ("dataset", "data.dataset", "select", tuple(DATASETS)),
    ("limit", "data.limit", "int", None),
    ("hidden", "model.hidden", "ints", None),
    ("activation", "model.activation", "select", tuple(a for a in ACTIVATIONS if a != "identity")),
    ("batchnorm", "model.batchnorm", "bool", None),
    ("dropout", "model.dropout", "float", None),
    ("init", "model.init", "select", ("auto", *INITIALIZERS)),
    ("optimizer", "optimizer.name", "select", tuple(OPTIMIZERS)),
    ("lr", "optimizer.lr", "float", None),
    ("momentum", "optimizer.momentum", "float", None),
    ("nesterov", "optimizer.nesterov", "bool", None),
    ("beta1", "optimizer.beta1", "float", None),
    ("beta2", "optimizer.beta2", "float", None),
    ("weight_decay", "optimizer.weight_decay", "float", None),
    ("l2", "optimizer.l2", "float", None),
    ("schedule", "schedule.name", "select", SCHEDULES),
    ("batch_size", "train.batch_size", "int", None),
    ("epochs", "train.epochs", "int", None),
    ("early_stopping", "train.early_stopping", "int", None),
    ("device", "train.device", "select", DEVICES),
    ("tf32", "train.tf32", "bool", None),
]


def _get(values: dict, path: str):
    section, key = path.split(".")
    return values[section][key]


def _format(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


class SetupScreen(Screen):
    BINDINGS = [Binding("t", "start", "Train"), Binding("ctrl+r", "reset", "Reset to preset")]

    def compose(self) -> ComposeResult:
        with Horizontal(id="setup"):
            with Vertical(id="preset-pane"):
                yield Label("presets")
                yield OptionList(*self.app.service.preset_names(), id="presets")
                yield Static("", id="preset-description")
            with VerticalScroll(id="form"):
                for wid, path, kind, choices in FIELDS:
                    with Horizontal(classes="field"):
                        yield Label(wid.replace("_", " "), classes="field-label")
                        if wid == "dataset":
                            yield Select([(self.dataset_label(d), d[0]) for d in self.app.service.datasets()],
                                         id=wid, allow_blank=False, compact=True)
                        elif kind == "select":
                            yield Select([(c, c) for c in choices], id=wid, allow_blank=False, compact=True)
                        elif kind == "bool":
                            yield Checkbox("", id=wid, compact=True)
                        else:
                            yield Input(id=wid, compact=True)
        yield Static("", id="errors")
        yield Footer()

    @staticmethod
    def dataset_label(entry) -> str:
        name, classes, train, test, where = entry
        here = "here" if where != "download" else "download"
        return f"{name}  {classes} cls  {train + test:,} img  {here}"

    def on_mount(self) -> None:
        names = self.app.service.preset_names()
        start = self.app.initial_preset if self.app.initial_preset in names else "quick"
        self.base = self.app.service.load_preset(start)
        presets = self.query_one("#presets", OptionList)
        presets.highlighted = names.index(start) if start in names else 0
        self.fill(self.base)

    def fill(self, config: config_mod.Config) -> None:
        values = config.to_dict()
        self._filling = True
        for wid, path, kind, _ in FIELDS:
            widget = self.query_one(f"#{wid}")
            value = _get(values, path)
            if kind == "select":
                widget.value = value
            elif kind == "bool":
                widget.value = bool(value)
            else:
                widget.value = _format(value)
        self.query_one("#preset-description", Static).update(config.description)
        self._filling = False
        self.validate_form()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        name = str(event.option.prompt)
        if name == self.base.name:  # the highlight set on mount: keep whatever was typed since
            return
        self.base = self.app.service.load_preset(name)
        self.fill(self.base)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.validate_form()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.validate_form()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.validate_form()

    def build_config(self) -> config_mod.Config:
        """The preset with the form's values; raises NeuratermError naming the first bad field."""
        values = self.base.to_dict()
        for wid, path, kind, _ in FIELDS:
            widget = self.query_one(f"#{wid}")
            section, key = path.split(".")
            raw = widget.value
            try:
                if kind == "int":
                    value = int(raw)
                elif kind == "float":
                    value = float(raw)
                elif kind == "ints":
                    value = [int(v) for v in str(raw).replace(" ", "").split(",") if v]
                else:
                    value = raw
            except ValueError:
                raise NeuratermError(f"{wid.replace('_', ' ')}: {raw!r} is not a valid {kind}") from None
            values[section][key] = value
        return config_mod.from_dict(values, "setup")

    def validate_form(self) -> config_mod.Config | None:
        if getattr(self, "_filling", False):
            return None
        errors = self.query_one("#errors", Static)
        for widget in self.query("Input"):
            widget.remove_class("-invalid")
        try:
            config = self.build_config()
        except NeuratermError as exc:
            message = str(exc).removeprefix("setup: ")
            errors.update(f"[b red]✗[/] {message}")
            for wid, path, _, _ in FIELDS:
                if wid.replace("_", " ") in message or path.split(".")[1] in message.split(" ")[0]:
                    self.query_one(f"#{wid}").add_class("-invalid")
            self.add_class("-has-errors")
            return None
        errors.update("[green]✓[/] ready: press [b]t[/] to train")
        self.remove_class("-has-errors")
        return config

    def action_start(self) -> None:
        config = self.validate_form()
        if config is None:
            self.app.bell()
            return
        self.app.start_run(config)

    def action_reset(self) -> None:
        self.fill(self.base)
