"""Setup: pick a preset, adjust the experiment, and start it; invalid values are flagged inline."""
from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Checkbox, Input, Label, OptionList, Select, Static
from textual.worker import Worker, WorkerState

from neuraterm.core import config as config_mod, toml_text
from neuraterm.core.backend import DEVICES
from neuraterm.core.errors import NeuratermError
from neuraterm.core.screen_text import markup
from neuraterm.core.optim.optimizers import OPTIMIZERS
from neuraterm.core.optim.schedules import SCHEDULES
from neuraterm.tui.screens.dialogs import ConfirmDialog, DatasetPathDialog
from neuraterm.tui.widgets.keys_footer import KeysFooter
from neuraterm.tui.widgets.number_field import NumberField
from neuraterm.tui.widgets.on_off_box import OnOffBox

KINDS = {"int": "whole number", "float": "number", "ints": "list of layer sizes like 64,32 or [64, 32]"}
# (widget id, config path, kind, choices)
FIELDS = [
    ("dataset", "data.dataset", "dataset", None),  # a listed name, or a path typed in a dialog
    ("limit", "data.limit", "int", None),
    ("hidden", "model.hidden", "ints", None),
    ("activation", "model.activation", "select", config_mod.ACTIVATION_CHOICES),
    ("batchnorm", "model.batchnorm", "bool", None),
    ("dropout", "model.dropout", "float", None),
    ("init", "model.init", "select", config_mod.INIT_CHOICES),
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
OTHER_DATASET = "\0other"  # the Select's last option: type a path instead


def _format(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def parse_ints(raw: str) -> list[int]:
    """Layer sizes as `64,32` or as the TOML list `[64, 32]`."""
    text = raw.strip()
    if text.startswith("["):
        value = toml_text.assigned(text)
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(text)
        return value
    return [int(v) for v in text.replace(" ", "").split(",") if v]


class SetupScreen(Screen):
    """The form starts from a preset (`base`). Letters are keys here even in a field: number fields
    type only digits and signs, and a dataset path is typed in a dialog. A preset is loaded as the
    highlight moves while the form is untouched; over edits it asks first."""

    dataset_problem: tuple[str, str | None] = ("", None)  # (a typed path, why it cannot be read)
    BINDINGS = [
        Binding("t", "start", "Train", tooltip="Train the configuration in the form"),
        Binding("ctrl+r", "reset", "Reset", tooltip="Reset the form to the preset"),
        Binding("escape", "leave_field", "Leave field", tooltip="Leave the field"),
    ]

    def compose(self) -> ComposeResult:
        with Horizontal(id="setup"):
            with Vertical(id="preset-pane"):
                yield Label("presets")
                yield OptionList(*self.app.service.preset_names(), id="presets")
                yield Static("", id="preset-description")
            with VerticalScroll(id="form", can_focus=False):  # Tab goes to its first field, not to the frame
                for wid, path, kind, choices in FIELDS:
                    with Horizontal(classes="field"):
                        yield Label(wid.replace("_", " "), classes="field-label")
                        if wid == "dataset":
                            yield Select(self.dataset_options(), id=wid, allow_blank=False, compact=True)
                        elif kind == "select":
                            yield Select([(c, c) for c in choices], id=wid, allow_blank=False, compact=True)
                        elif kind == "bool":
                            yield OnOffBox(id=wid, compact=True)
                        else:
                            yield NumberField(kind, id=wid, compact=True)
        yield Static("", id="errors")
        yield KeysFooter()

    def dataset_options(self, extra: str | None = None) -> list[tuple[str, str]]:
        if not hasattr(self, "listed_datasets"):  # looked up once: locating every dataset reads the disk
            self.listed_datasets = [(self.dataset_label(d), d[0]) for d in self.app.service.datasets()]
        options = list(self.listed_datasets)
        if extra and extra not in [value for _, value in options]:
            options.append((extra, extra))
        return options + [("a file or folder of your own…", OTHER_DATASET)]

    @staticmethod
    def dataset_label(entry) -> str:
        name, classes, train, test, where = entry
        here = "here" if where != "download" else "download"
        return f"{name}  {classes} cls  {train + test:,} img  {here}"

    def on_mount(self) -> None:
        names = self.app.service.preset_names()
        start = self.app.initial_preset if self.app.initial_preset in names else "quick"
        self.base = self.app.service.load_preset(start)
        self.dataset = self.base.data.dataset
        presets = self.query_one("#presets", OptionList)
        presets.highlighted = names.index(start) if start in names else 0
        self.fill(self.base)

    # -- the form ---------------------------------------------------------------------------
    def form_values(self) -> dict[str, object]:
        return {wid: self.query_one(f"#{wid}").value for wid, *_ in FIELDS}

    def edited(self) -> bool:
        return self.form_values() != self.filled

    def fill(self, config: config_mod.Config) -> None:
        values = config.to_dict()
        self._filling = True
        self.set_dataset(config.data.dataset)
        for wid, path, kind, _ in FIELDS:
            if wid == "dataset":
                continue
            widget = self.query_one(f"#{wid}")
            value = config_mod.value_at(values, path)
            if kind == "select":
                widget.value = value
            elif kind == "bool":
                widget.value = bool(value)
            else:
                widget.value = _format(value)
        self.query_one("#preset-description", Static).update(markup(config.description))
        self.filled = self.form_values()
        self._filling = False
        self.validate_form()

    def set_dataset(self, dataset: str) -> None:
        """A listed name or a path, kept as typed; a path gets an option of its own."""
        select = self.query_one("#dataset", Select)
        select.set_options(self.dataset_options(dataset))
        select.value = dataset
        self.dataset = dataset

    def load_preset(self, name: str) -> None:
        self.base = self.app.service.load_preset(name)
        self.fill(self.base)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        name = str(event.option.prompt)
        if name == self.base.name:
            self.query_one("#preset-description", Static).update(markup(self.base.description))
        elif not self.edited():
            self.load_preset(name)
        else:
            preview = self.app.service.load_preset(name)
            self.query_one("#preset-description", Static).update(
                f"{markup(preview.description)}\n[b]enter[/]: load it (the form has edits)")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        name = str(event.option.prompt)
        if name == self.base.name and not self.edited():
            return
        changed = ", ".join(wid.replace("_", " ") for wid, value in self.form_values().items()
                            if value != self.filled[wid])

        def answer(yes: bool | None) -> None:
            if yes:
                self.load_preset(name)
            else:
                names = self.app.service.preset_names()
                self.query_one("#presets", OptionList).highlighted = names.index(self.base.name)
        self.app.push_screen(ConfirmDialog(f"Load preset [b]{name}[/] over your edits ({changed})?",
                                           f"load {name}", "keep the form"), answer)

    def validate_soon(self) -> None:
        """Validate once after the current burst of changes: filling the form changes every field, and
        each change arrives as its own message (a validation builds a whole config)."""
        if not getattr(self, "_validation_pending", False):
            self._validation_pending = True
            self.call_later(self._validate_pending)

    def _validate_pending(self) -> None:
        self._validation_pending = False
        self.validate_form()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.validate_soon()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "dataset" and event.value == OTHER_DATASET:
            listed = {name for _, name in self.listed_datasets}

            def use(path: str | None) -> None:
                self.set_dataset(path or self.dataset)
                self.validate_form()
                if path:
                    self.check_dataset(path)
            self.app.push_screen(DatasetPathDialog("" if self.dataset in listed else self.dataset), use)
            return
        if event.select.id == "dataset":
            self.dataset = event.value  # a path's problem applies while it is the dataset (validate_form)
        self.validate_soon()

    @work(thread=True, exclusive=True, group="dataset", exit_on_error=False)
    def check_dataset(self, spec: str) -> tuple[str, str | None]:
        """A typed path checked at once, as the CLI would when training starts (in a thread: a CSV is
        parsed): (the path, its problem or None)."""
        return spec, self.app.service.dataset_problem(spec)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "dataset" and event.state == WorkerState.SUCCESS:
            spec, problem = event.worker.result
            if spec == self.dataset:
                self.dataset_problem = (spec, problem)
                self.validate_form()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.validate_soon()

    def build_config(self) -> config_mod.Config:
        """The preset with the form's values; raises NeuratermError naming the first bad field. A
        config that differs from the preset is named and described as an edit of it."""
        values = self.base.to_dict()
        for wid, path, kind, _ in FIELDS:
            section, key = path.split(".")
            raw = self.dataset if wid == "dataset" else self.query_one(f"#{wid}").value
            try:
                if kind == "int":
                    value = int(raw)
                elif kind == "float":
                    value = float(raw)
                elif kind == "ints":
                    value = parse_ints(str(raw))
                else:
                    value = raw
            except ValueError:
                raise NeuratermError(f"{wid.replace('_', ' ')}: {raw!r} is not a valid {KINDS[kind]}") from None
            values[section][key] = value
        base = self.base.to_dict()
        changes = [f"{path} = {_format(config_mod.value_at(values, path))}" for _, path, _, _ in FIELDS
                   if config_mod.value_at(values, path) != config_mod.value_at(base, path)]
        if changes:
            values["name"] = f"{self.base.name}-edited"
            values["description"] = f"{self.base.name}, edited: " + ", ".join(changes)
        return config_mod.from_dict(values, "setup")

    def validate_form(self) -> config_mod.Config | None:
        if getattr(self, "_filling", False):
            return None
        errors = self.query_one("#errors", Static)
        for widget in self.query("Input"):
            widget.remove_class("-invalid")
        try:
            config = self.build_config()
            spec, problem = self.dataset_problem
            if problem and spec == self.dataset:
                raise NeuratermError(f"dataset: {problem}")
        except NeuratermError as exc:
            message = str(exc).removeprefix("setup: ")
            errors.update(f"[b red]✗[/] {markup(message)}")
            for wid, path, _, _ in FIELDS:
                if wid.replace("_", " ") in message or path.split(".")[1] in message.split(" ")[0]:
                    self.query_one(f"#{wid}").add_class("-invalid")
            self.add_class("-has-errors")
            return None
        edited = "" if config.name == self.base.name else f"  ({markup(config.name)})"
        errors.update(f"[green]✓[/] ready: press [b]t[/] to train{edited}")
        self.remove_class("-has-errors")
        return config

    def on_descendant_focus(self, event) -> None:
        self.mark_current_field()

    def on_descendant_blur(self, event) -> None:
        self.mark_current_field()

    def mark_current_field(self) -> None:
        """The focused field's label in reverse video: a shade of background alone is lost on 16-color
        and NO_COLOR terminals."""
        focused = self.focused
        for label in self.query(".field-label"):
            label.set_class(focused is not None and focused.parent is label.parent, "-current")

    # -- actions ----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool:
        if action == "leave_field":
            return self.focused is not None and self.focused.id in {wid for wid, *_ in FIELDS}
        return True

    def action_leave_field(self) -> None:
        self.set_focus(None)

    def action_start(self) -> None:
        config = self.validate_form()
        if config is None:
            self.app.bell()
            return
        self.app.start_run(config)

    def action_reset(self) -> None:
        self.fill(self.base)
